//! The real `tpsync` binary as a child process: [`TestServer`] runs
//! `tpsync serve` on `127.0.0.1:0`, and [`tpsync`] runs any other command
//! (the admin command line, `restore`).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use tpsync_client::{Client, ClientConfig};

/// How long a server may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a SIGTERM'd server may take to finish and exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of a server's log (stderr) is kept for failure messages.
const LOG_KEEP_BYTES: usize = 64 * 1024;

static BIN: OnceLock<PathBuf> = OnceLock::new();

/// The `tpsync` binary, built once per test process.
///
/// It sits at `target/<profile>/tpsync`, beside the `deps/` folder that holds
/// the running test executable. The first call runs [`build_workspace`], so
/// the tests never run against a stale server.
///
/// - `TPSYNC_BIN=/path/to/tpsync` uses that binary and builds nothing.
/// - `TPSYNC_SKIP_BUILD=1` uses the binary in the target directory as it is.
/// - If the build fails (the workspace is mid-edit) and a binary exists, it
///   is used with a loud warning; with no binary at all the tests fail.
pub fn tpsync_bin() -> &'static Path {
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("TPSYNC_BIN") {
            return PathBuf::from(p);
        }
        let profile_dir = profile_dir();
        let bin = profile_dir.join(format!("tpsync{}", std::env::consts::EXE_SUFFIX));
        if std::env::var_os("TPSYNC_SKIP_BUILD").is_some() && bin.exists() {
            return bin;
        }
        if let Err(err) = build_workspace() {
            if bin.exists() {
                eprintln!(
                    "WARNING: building the workspace failed; the tests run against the \
                     EXISTING, POSSIBLY STALE binary {}:\n{err}",
                    bin.display()
                );
            } else {
                panic!("cannot build the tpsync binary:\n{err}");
            }
        }
        assert!(bin.exists(), "no tpsync binary at {}", bin.display());
        bin
    })
}

/// The profile folder of the running test executable (`target/debug`, …):
/// where Cargo puts the workspace's binaries and libraries.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let deps = exe.parent().expect("the test executable's folder");
    if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().expect("the profile folder").to_owned()
    } else {
        deps.to_owned()
    }
}

static BUILT: OnceLock<Result<(), String>> = OnceLock::new();

/// Builds the workspace's libraries and binaries (the server, the mobile
/// library, `uniffi-bindgen`) into the running test's target folder and
/// profile, once per test process.
///
/// It runs `cargo build --workspace --lib --bins --tests`: selecting the
/// test targets makes Cargo unify features exactly as `cargo test
/// --workspace` does, so after that command everything here is already
/// fresh (only `uniffi-bindgen`, which has no integration tests, is linked)
/// and the next `cargo test` rebuilds nothing. A narrower `cargo build -p …`
/// would resolve other features and rebuild half the dependency tree, twice
/// per test run. Cargo does not hold its build lock while tests run, so
/// this does not deadlock.
pub fn build_workspace() -> Result<(), String> {
    BUILT
        .get_or_init(|| {
            let started = Instant::now();
            let out = cargo(&[
                "build",
                "--quiet",
                "--workspace",
                "--lib",
                "--bins",
                "--tests",
            ]);
            if started.elapsed() > Duration::from_secs(10) {
                eprintln!("built the workspace in {:.1?}", started.elapsed());
            }
            if out.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).into_owned())
            }
        })
        .clone()
}

/// `cargo ARGS --profile <the running test's>` in this workspace, into the
/// running test's target folder.
fn cargo(args: &[&str]) -> Output {
    let profile_dir = profile_dir();
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_owned(),
        Some(other) => other.to_owned(),
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace folder");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    Command::new(cargo)
        .args(args)
        .args(["--profile", &profile])
        .env(
            "CARGO_TARGET_DIR",
            profile_dir.parent().expect("the target folder"),
        )
        .current_dir(workspace)
        .stdin(Stdio::null())
        .output()
        .expect("run cargo")
}

/// A `tpsync` command with a clean environment (no `TPSYNC_*` variables
/// leak in from the developer's shell).
pub fn tpsync() -> Command {
    let mut cmd = Command::new(tpsync_bin());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("TPSYNC_") {
            cmd.env_remove(k);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs a `tpsync` command to its end.
pub fn run_tpsync(args: &[&str]) -> Output {
    tpsync().args(args).output().expect("run tpsync")
}

/// A client with timeouts fit for tests on one machine.
pub fn test_client(url: &str) -> Client {
    Client::new(
        url,
        ClientConfig {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(20),
            ..ClientConfig::default()
        },
    )
    .expect("a valid server address")
}

/// A running `tpsync serve` child process.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The first-start setup code, if the server printed one (no
    /// administrator yet).
    pub setup_code: Option<String>,
    pub data: PathBuf,
    /// The extra `serve` flags it was started with (kept for a restart).
    pub args: Vec<String>,
    child: Option<Child>,
    log: Arc<Mutex<VecDeque<u8>>>,
}

impl TestServer {
    /// `tpsync serve --data DATA --listen 127.0.0.1:0`.
    pub fn start(data: &Path) -> Self {
        Self::start_with(data, &[])
    }

    /// [`Self::start`] with extra `serve` flags (`--access-ttl-s 1`, …).
    pub fn start_with(data: &Path, args: &[&str]) -> Self {
        let mut child = tpsync()
            .arg("serve")
            .arg("--data")
            .arg(data)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tpsync serve");
        let log = Arc::new(Mutex::new(VecDeque::new()));
        keep_log(child.stderr.take().expect("piped stderr"), log.clone());
        let lines = read_lines(child.stdout.take().expect("piped stdout"));
        let mut server = TestServer {
            url: String::new(),
            setup_code: None,
            data: data.to_owned(),
            args: args.iter().map(|s| s.to_string()).collect(),
            child: Some(child),
            log,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("tpsync listening on ") {
                        server.url = url.trim().to_owned();
                        break;
                    }
                    server.note_setup_line(&line);
                }
                Err(e) => {
                    let status = server
                        .child
                        .as_mut()
                        .and_then(|c| c.try_wait().ok().flatten());
                    panic!(
                        "tpsync serve on {} printed no listening line ({e:?}, exit status {status:?}); log:\n{}",
                        data.display(),
                        server.log()
                    );
                }
            }
        }
        assert!(
            server.url.starts_with("http://127.0.0.1:"),
            "unexpected listening line: {}",
            server.url
        );
        // The setup line is printed after the listening line but before the
        // server accepts its first connection: once /healthz answers, it is
        // in the pipe if it was printed at all.
        server.wait_healthy(Duration::from_secs(20));
        match lines.recv_timeout(Duration::from_millis(250)) {
            Ok(line) => server.note_setup_line(&line),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
        }
        // Anything else on stdout is a contract breach (logs go to stderr);
        // keep draining so the child never blocks on a full pipe.
        thread::spawn(move || {
            for line in lines {
                eprintln!("tpsync stdout (unexpected): {line}");
            }
        });
        server
    }

    fn note_setup_line(&mut self, line: &str) {
        if line.starts_with("no administrator yet") {
            let code = line
                .split_whitespace()
                .skip_while(|w| *w != "--code")
                .nth(1)
                .unwrap_or_else(|| panic!("no --code in the setup line: {line}"));
            self.setup_code = Some(code.to_owned());
        } else {
            panic!("unexpected line on the server's stdout: {line:?}");
        }
    }

    /// Polls `/healthz` until it answers `{"status":"ok"}`.
    pub fn wait_healthy(&mut self, within: Duration) {
        let client = test_client(&self.url);
        let deadline = Instant::now() + within;
        loop {
            match client.health() {
                Ok(v) if v["status"] == "ok" => return,
                other => {
                    if Instant::now() > deadline {
                        panic!(
                            "{} is not healthy: {other:?}; log:\n{}",
                            self.url,
                            self.log()
                        );
                    }
                    if let Some(status) = self
                        .child
                        .as_mut()
                        .and_then(|c| c.try_wait().ok().flatten())
                    {
                        panic!("tpsync serve exited ({status}); log:\n{}", self.log());
                    }
                    thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    /// A client of this server (see [`test_client`]).
    pub fn client(&self) -> Client {
        test_client(&self.url)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait for a graceful exit. Returns the exit status;
    /// panics if the server does not exit within 30 s.
    pub fn stop(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("the server is running");
        // SAFETY: plain kill(2) on our own child's pid, which has not been
        // reaped yet (so it cannot have been reused).
        let r = unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(r, 0, "SIGTERM failed: {}", std::io::Error::last_os_error());
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = c.try_wait().expect("poll the server") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!(
                    "the server did not exit within {STOP_TIMEOUT:?} of SIGTERM; log:\n{}",
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// A new server on the same data directory with the same flags (a new
    /// port). The old one must be stopped or killed first.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill the server first");
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let next = TestServer::start_with(&self.data, &args);
        *self = next;
    }

    /// The last 64 KiB of the server's log (stderr).
    pub fn log(&self) -> String {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let (a, b) = log.as_slices();
        let mut bytes = a.to_vec();
        bytes.extend_from_slice(b);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn read_lines(out: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn keep_log(mut err: impl Read + Send + 'static, log: Arc<Mutex<VecDeque<u8>>>) {
    thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match err.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut l = log.lock().unwrap_or_else(|e| e.into_inner());
                    l.extend(&buf[..n]);
                    let over = l.len().saturating_sub(LOG_KEEP_BYTES);
                    l.drain(..over);
                }
            }
        }
    });
}
