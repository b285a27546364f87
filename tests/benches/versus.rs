//! tpsync against the automerge-repo stack, side by side, on the same
//! Automerge documents, on this machine, in one run.
//!
//! ```text
//! cargo bench -p tpsync-tests --bench versus
//! TPSYNC_VERSUS_DEVICES=50 cargo bench -p tpsync-tests --bench versus   # a smaller county
//! ```
//!
//! The documents are generated once by sync-core's reference workload (the
//! brief's teaching point: profile, 300 equipment items, 2,000 books, 120
//! archive items, 60 checklist rows, one change per record as a teacher
//! enters them; then a day's work of 50 edits made offline) and cached under
//! `target/tpsync-bench/versus-v1/` as plain Automerge files: each
//! document's `save()`, and the day's changes as raw change chunks. Both
//! systems load exactly these bytes; at the end both servers are checked to
//! hold exactly the heads the generator recorded.
//!
//! - **tpsync**: the release `tpsync serve` (sled) and the Rust client with
//!   a sled store per device, over HTTP; devices hold access tokens (signing
//!   in is a one-time step automerge-repo has no counterpart for, so it is
//!   left out of both).
//! - **automerge-repo 2.5.6** (JS, from npm, pinned in
//!   `tests/versus/package-lock.json`; `npm ci` runs when
//!   `tests/versus/node_modules` is missing): the reference sync server
//!   (`NodeWSServerAdapter`, `NodeFSStorageAdapter`), and devices that are
//!   `Repo`s with NodeFS storage and the WebSocket client adapter, all in
//!   one Node process (`tests/versus/devices.mjs`).
//!
//! Workloads, each measured on a freshly started server process:
//! 1. **initial sync**: a new device fetches one teaching point's 7
//!    documents from the server.
//! 2. **day's incremental sync**: that device, after a day's 50 offline
//!    edits, syncs (documents loaded from its store before the timer).
//! 3. **300 devices at once**: 300 teaching points, each device having
//!    fetched its school and made its day's edits offline, all sync at once.
//!
//! Figures: bytes each way and TCP connections are counted by a proxy
//! between devices and server (`tpsync_tests::proxy`), so HTTP headers,
//! WebSocket framing and tokens are included. Round trips are counted by
//! running the same sync a second time, from the same saved state of server
//! and device, through the proxy with 300 ms added each way (a 2G link's
//! 600 ms RTT): the proxy counts each time a connection's traffic turns from
//! device→server to server→device, plus one for each TCP connection opened
//! (its handshake). Modeled 2G time = round trips × 600 ms + all bytes at
//! 50 kbit/s. Wall time is on loopback without added latency (for 300
//! devices: the slowest device, and p50/p99 per device). Server CPU seconds
//! (user + system, from /proc) cover the workload only; server peak RSS is
//! the process's VmHWM, startup included. Devices run on the same two cores
//! as the server.
//!
//! Targets (issue 8): tpsync ahead on every row; for the day's work at
//! least 3× fewer round trips and 2× fewer bytes; server peak RSS at least
//! 3× lower in the 300-device run. Printed PASS/MISS; a miss exits non-zero.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sync_core::harness::Rng;
use sync_core::store::{MemoryStorage, SledStorage, Storage, StorageKey};
use sync_core::workload::{build_teaching_point, days_work, Clock, TeachingPointSize};
use sync_core::{DeviceId, DocId, PeerId, Replica, SchoolId};
use tpsync_client::{Client, ClientConfig, NewUser, Role};
use tpsync_tests::proxy::{FaultPlan, FaultyProxy};
use tpsync_tests::server::tpsync;

/// A 2G link: 600 ms round trip, 50 kbit/s.
const ONE_WAY: Duration = Duration::from_millis(300);
const RTT_S: f64 = 0.6;
const LINK_BYTES_PER_S: f64 = 50_000.0 / 8.0;
const PASSWORD: &str = "bench-password-1";
const COUNTY: &str = "430123";
const TOWNSHIPS: usize = 12;
/// Devices fetching their schools together while the county run is set up.
const SETUP_BATCH: usize = 25;

// ---------------------------------------------------------------------------
// The documents, generated once.

fn school(i: usize) -> SchoolId {
    SchoolId::new(format!("43012{i:05}")).expect("school code")
}

fn scope(i: usize) -> Vec<DocId> {
    DocId::all_for_school(&school(i))
}

fn target_dir() -> PathBuf {
    // target/release/deps/versus-… → target
    let exe = std::env::current_exe().expect("bench path");
    exe.ancestors().nth(3).expect("target dir").to_owned()
}

fn corpus_dir() -> PathBuf {
    target_dir().join("tpsync-bench").join("versus-v1")
}

/// One document of one school, as files both systems load.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct DocFiles {
    /// tpsync's document id, `school.<code>.<kind>`; automerge-repo's
    /// documents get their own ids when imported.
    name: String,
    /// `Automerge::save()` of the teaching point as built.
    save: PathBuf,
    /// The day's changes to this document, raw change chunks end to end.
    day: Option<PathBuf>,
    heads_built: Vec<String>,
    heads_after_day: Vec<String>,
}

fn meta_path(i: usize) -> PathBuf {
    corpus_dir().join(format!("s{i}")).join("meta.json")
}

fn generate(i: usize) {
    let dir = corpus_dir().join(format!("s{i}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut replica = Replica::open(MemoryStorage::new());
    let sch = school(i);
    let tp = build_teaching_point(
        &mut replica,
        &sch,
        TeachingPointSize::REFERENCE,
        &mut Clock::new("teacher", &format!("phone-{i}"), 1_763_000_000_000),
        &mut Rng::new(i as u64),
    )
    .unwrap();
    let mut built = BTreeMap::new();
    for d in scope(i) {
        let doc = replica.doc(&d).unwrap();
        built.insert(d.clone(), (doc.save(), doc.heads()));
    }
    days_work(
        &mut replica,
        &tp,
        50,
        &mut Clock::new("teacher", &format!("phone-{i}"), 1_764_000_000_000),
        &mut Rng::new(1000 + i as u64),
    )
    .unwrap();
    let mut docs = Vec::new();
    for d in scope(i) {
        let (save, heads0) = &built[&d];
        let kind = d.to_string().rsplit('.').next().unwrap().to_owned();
        let save_path = dir.join(format!("{kind}.automerge"));
        std::fs::write(&save_path, save).unwrap();
        let doc = replica.doc(&d).unwrap();
        let mut day = Vec::new();
        for c in doc.automerge().get_changes(heads0) {
            day.extend_from_slice(c.raw_bytes());
        }
        let day_path = (!day.is_empty()).then(|| {
            let p = dir.join(format!("{kind}.day"));
            std::fs::write(&p, &day).unwrap();
            p
        });
        docs.push(DocFiles {
            name: d.to_string(),
            save: save_path,
            day: day_path,
            heads_built: hex_heads(heads0),
            heads_after_day: hex_heads(&doc.heads()),
        });
    }
    let tmp = dir.join("meta.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&docs).unwrap()).unwrap();
    std::fs::rename(tmp, meta_path(i)).unwrap();
}

fn hex_heads(h: &[sync_core::ChangeHash]) -> Vec<String> {
    let mut v: Vec<String> = h.iter().map(|h| h.to_string()).collect();
    v.sort();
    v
}

fn load_meta(i: usize) -> Vec<DocFiles> {
    serde_json::from_slice(&std::fs::read(meta_path(i)).unwrap()).unwrap()
}

fn ensure_corpus(schools: usize) {
    let missing: Vec<usize> = (0..schools).filter(|i| !meta_path(*i).exists()).collect();
    if missing.is_empty() {
        return;
    }
    println!(
        "generating {} teaching points into {} (cached for next runs)…",
        missing.len(),
        corpus_dir().display()
    );
    let t = Instant::now();
    let next = Arc::new(Mutex::new(missing));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let next = next.clone();
            thread::spawn(move || loop {
                let Some(i) = next.lock().unwrap().pop() else {
                    break;
                };
                generate(i);
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    println!("generated in {:.0} s", t.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------
// Processes and what /proc says of them.

/// CPU seconds (user + system) and peak RSS in KiB of a process.
fn proc_stat(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |k: usize| f.get(k).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    ((ticks(11) + ticks(12)) / 100.0, hwm)
}

/// Waits until a freshly started server has finished what it does at
/// start (tpsync builds its report read model; Node compiles), so that the
/// CPU counted is the workload's: no CPU tick for 500 ms, or 30 s at most.
fn wait_idle(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = proc_stat(pid).0;
    let mut quiet = 0;
    while quiet < 5 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
        let now = proc_stat(pid).0;
        quiet = if now == last { quiet + 1 } else { 0 };
        last = now;
    }
}

fn sigterm_and_wait(child: &mut Child) {
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success(), "cp -a {} {}", from.display(), to.display());
}

/// A server under test, either kind.
struct ServerProc {
    child: Child,
    addr: SocketAddr,
    /// tpsync only: the first-start setup code.
    setup_code: Option<String>,
}

impl Drop for ServerProc {
    /// A bench that fails leaves no server behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProc {
    fn pid(&self) -> u32 {
        self.child.id()
    }
    fn stop(mut self) {
        sigterm_and_wait(&mut self.child);
    }
}

fn start_tpsync(data: &Path) -> ServerProc {
    let mut child = tpsync()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--access-ttl-s",
            "86400",
        ])
        .arg("--data")
        .arg(data)
        .args(["--login-attempts-per-ip", "1000000"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn tpsync serve");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines.next().unwrap().unwrap();
    let url = url.trim_start_matches("tpsync listening on http://").trim();
    let addr: SocketAddr = url.parse().unwrap();
    let mut setup_code = None;
    // On a first start the next line names the setup code; later starts
    // print nothing more, so read it on a thread that does not block us.
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    if let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
        setup_code = l
            .split_whitespace()
            .skip_while(|w| *w != "--code")
            .nth(1)
            .map(str::to_owned);
    }
    ServerProc {
        child,
        addr,
        setup_code,
    }
}

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("versus")
}

fn ensure_node_modules() {
    if js_dir().join("node_modules").join("@automerge").exists() {
        return;
    }
    println!("installing automerge-repo from npm (npm ci in tests/versus)…");
    let npm = |args: &[&str]| {
        Command::new("npm")
            .args(args)
            .current_dir(js_dir())
            .status()
            .expect("npm (Node.js 20 or newer) is needed for the automerge-repo side")
            .success()
    };
    if npm(&["ci", "--no-audit", "--no-fund"]) {
        return;
    }
    // `npm ci` refuses a lock file naming optional packages the registry
    // does not serve (seen: a mirror without cbor-extract's per-platform
    // prebuilds, which cbor-x only uses when present). `npm install`
    // installs the same locked versions and skips what is missing.
    println!("npm ci failed; installing the locked versions with npm install instead…");
    assert!(
        npm(&["install", "--no-audit", "--no-fund", "--no-save"]),
        "npm install failed in {}",
        js_dir().display()
    );
}

fn node() -> Command {
    let mut c = Command::new("node");
    c.current_dir(js_dir());
    c
}

fn start_repo_server(storage: &Path) -> ServerProc {
    let mut child = node()
        .arg("server.mjs")
        .arg("--storage")
        .arg(storage)
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn node server.mjs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    let port = v["listening"].as_u64().expect("listening port") as u16;
    thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    ServerProc {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        setup_code: None,
    }
}

/// Runs a Node script to the end and returns its stdout's JSON lines.
fn run_node(script: &str, args: &[&str]) -> Vec<Value> {
    let (ok, lines) = run_node_lenient(script, args);
    assert!(ok, "node {script} {args:?} failed: {lines:?}");
    lines
}

/// Runs a script; whether it exited 0, and its JSON lines.
fn run_node_lenient(script: &str, args: &[&str]) -> (bool, Vec<Value>) {
    let out = node()
        .arg(script)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .expect("run node");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (out.status.success(), lines)
}

// ---------------------------------------------------------------------------
// One workload's figures.

#[derive(Clone, Debug, Default)]
struct Figures {
    devices: usize,
    up: u64,
    down: u64,
    connections: u64,
    /// Turns device→server→device counted under 300 ms one-way latency,
    /// plus one per TCP connection of that run; per device.
    round_trips: f64,
    /// The slowest device, and each device's time, on loopback.
    wall: Duration,
    per_device: Vec<Duration>,
    server_cpu_s: f64,
    server_peak_kib: u64,
}

impl Figures {
    fn bytes_per_device(&self) -> f64 {
        (self.up + self.down) as f64 / self.devices as f64
    }
    fn modeled_2g_s(&self) -> f64 {
        self.round_trips * RTT_S + self.bytes_per_device() / LINK_BYTES_PER_S
    }
    fn pct(&self, p: f64) -> Duration {
        let mut l = self.per_device.clone();
        l.sort();
        l[((l.len() as f64 - 1.0) * p).round() as usize]
    }
}

/// What one pass through the proxy measured.
struct Pass {
    up: u64,
    down: u64,
    connections: u64,
    turns: u64,
    per_device: Vec<Duration>,
    cpu_s: f64,
    peak_kib: u64,
}

fn proxy_for(server: &ServerProc, latency: bool) -> FaultyProxy {
    FaultyProxy::start(
        server.addr,
        FaultPlan {
            latency: latency.then_some((ONE_WAY, ONE_WAY)),
            ..FaultPlan::default()
        },
    )
    .expect("start the proxy")
}

/// Runs `work` (which returns each device's time) against a fresh start of
/// a server through a proxy, and reads what the proxy and /proc saw.
fn pass(
    server: ServerProc,
    latency: bool,
    work: impl FnOnce(&str) -> Vec<Duration>,
    url_scheme: &str,
) -> Pass {
    let proxy = proxy_for(&server, latency);
    let url = format!("{url_scheme}://{}", proxy.addr());
    wait_idle(server.pid());
    let (cpu0, _) = proc_stat(server.pid());
    let per_device = work(&url);
    let (cpu1, peak_kib) = proc_stat(server.pid());
    let p = Pass {
        up: proxy.bytes_up(),
        down: proxy.bytes_down(),
        connections: proxy.connections(),
        turns: proxy.turns(),
        per_device,
        cpu_s: cpu1 - cpu0,
        peak_kib,
    };
    drop(proxy);
    server.stop();
    p
}

fn figures(loopback: Pass, lat: Pass) -> Figures {
    let n = loopback.per_device.len();
    Figures {
        devices: n,
        up: loopback.up,
        down: loopback.down,
        connections: loopback.connections,
        round_trips: (lat.turns + lat.connections) as f64 / n as f64,
        wall: loopback
            .per_device
            .iter()
            .copied()
            .max()
            .unwrap_or_default(),
        per_device: loopback.per_device,
        server_cpu_s: loopback.cpu_s,
        server_peak_kib: loopback.peak_kib,
    }
}

// ---------------------------------------------------------------------------
// tpsync.

struct TpsyncRun {
    data: PathBuf,
    devices: PathBuf,
    tokens: BTreeMap<usize, String>,
}

fn server_peer() -> PeerId {
    PeerId::new("server").unwrap()
}

fn open_device(dir: &Path) -> Replica<SledStorage> {
    Replica::open(SledStorage::open(dir).expect("open the device's sled store"))
}

/// Syncs until done, retrying a busy server's `timeout` as a phone would.
fn tp_sync(url: &str, token: &str, replica: &mut Replica<SledStorage>, scope: &[DocId]) {
    let client = Client::new(url, ClientConfig::default()).unwrap();
    let mut tries = 0;
    loop {
        tries += 1;
        match client.sync(token, replica, &server_peer(), scope, None, None) {
            Ok(_) => return,
            Err(e) if e.is_retryable() && tries < 10 => thread::sleep(Duration::from_secs(1)),
            Err(e) => panic!("tpsync sync failed after {tries} tries: {e}"),
        }
    }
}

impl TpsyncRun {
    /// A county with `schools` teaching points, one teacher each signed in on
    /// their phone; every school's documents uploaded from the generated
    /// files through the real sync path.
    fn setup(root: &Path, schools: usize) -> Self {
        let data = root.join("tpsync-server");
        let devices = root.join("tpsync-devices");
        std::fs::create_dir_all(&devices).unwrap();
        let server = start_tpsync(&data);
        let url = format!("http://{}", server.addr);
        let admin = Client::new(&url, ClientConfig::default()).unwrap();
        admin
            .setup(server.setup_code.as_deref().unwrap(), "admin", PASSWORD)
            .unwrap();
        let a = admin
            .login(
                "admin",
                PASSWORD,
                &DeviceId::new("bench-admin").unwrap(),
                None,
            )
            .unwrap()
            .access_token;
        admin.create_county(&a, COUNTY, "青山县").unwrap();
        let mut csv = String::from(
            "school_code,name,type,township_code,township_name,grade1,grade2,grade3\n",
        );
        for i in 0..schools {
            let t = i % TOWNSHIPS;
            csv.push_str(&format!(
                "{},第{i}教学点,teaching_point,T{t:02},第{t}乡,9,7,8\n",
                school(i)
            ));
        }
        admin.import_schools(&a, csv.as_bytes(), false).unwrap();
        println!("tpsync: {schools} teachers signing in and uploading their schools…");
        let tokens = Arc::new(Mutex::new(BTreeMap::new()));
        let next = Arc::new(Mutex::new((0..schools).collect::<Vec<_>>()));
        let workers: Vec<_> = (0..3)
            .map(|_| {
                let (tokens, next, url, a) = (tokens.clone(), next.clone(), url.clone(), a.clone());
                thread::spawn(move || {
                    let c = Client::new(&url, ClientConfig::default()).unwrap();
                    loop {
                        let Some(i) = next.lock().unwrap().pop() else {
                            break;
                        };
                        let user = format!("teacher{i}");
                        c.create_user(
                            &a,
                            &NewUser {
                                username: user.clone(),
                                password: PASSWORD.into(),
                                role: Role::Teacher,
                                unit: Some(school(i).to_string()),
                            },
                        )
                        .unwrap();
                        let token = c
                            .login(
                                &user,
                                PASSWORD,
                                &DeviceId::new(format!("phone-{i}")).unwrap(),
                                None,
                            )
                            .unwrap()
                            .access_token;
                        // The uploader: the generated files in a store.
                        let storage = MemoryStorage::new();
                        for f in load_meta(i) {
                            let d: DocId = f.name.parse().unwrap();
                            let bytes = std::fs::read(&f.save).unwrap();
                            storage
                                .put(&StorageKey::incremental(&d, &bytes), &bytes)
                                .unwrap();
                        }
                        let mut up = Replica::open(storage);
                        c.sync(&token, &mut up, &server_peer(), &scope(i), None, None)
                            .unwrap();
                        tokens.lock().unwrap().insert(i, token);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        server.stop();
        let tokens = tokens.lock().unwrap().clone();
        TpsyncRun {
            data,
            devices,
            tokens,
        }
    }

    fn device_dir(&self, i: usize, tag: &str) -> PathBuf {
        self.devices.join(format!("{tag}-{i}"))
    }

    /// New devices of `schools` fetch their school; each one's time.
    fn initial(&self, url: &str, schools: &[usize], tag: &str) -> Vec<Duration> {
        self.all_at_once(url, schools, tag, false)
    }

    /// The devices apply their day's changes offline, as the phone's own
    /// writes: incremental chunks in its store.
    fn edit(&self, schools: &[usize], tag: &str) {
        for &i in schools {
            let storage = SledStorage::open(self.device_dir(i, tag)).unwrap();
            for f in load_meta(i) {
                if let Some(day) = &f.day {
                    let d: DocId = f.name.parse().unwrap();
                    let bytes = std::fs::read(day).unwrap();
                    storage
                        .put(&StorageKey::incremental(&d, &bytes), &bytes)
                        .unwrap();
                }
            }
            let mut r = Replica::open(storage);
            for f in load_meta(i) {
                let d: DocId = f.name.parse().unwrap();
                assert_eq!(
                    hex_heads(&r.doc(&d).unwrap().heads()),
                    f.heads_after_day,
                    "the day's changes of {} apply",
                    f.name
                );
            }
        }
    }

    /// The devices sync their stores, all released at once; each device's
    /// documents are loaded before its clock starts.
    fn all_at_once(
        &self,
        url: &str,
        schools: &[usize],
        tag: &str,
        load_first: bool,
    ) -> Vec<Duration> {
        let barrier = Arc::new(Barrier::new(schools.len()));
        let handles: Vec<_> = schools
            .iter()
            .map(|&i| {
                let (barrier, url) = (barrier.clone(), url.to_owned());
                let token = self.tokens[&i].clone();
                let dir = self.device_dir(i, tag);
                thread::spawn(move || {
                    let mut r = open_device(&dir);
                    let sc = scope(i);
                    if load_first {
                        for d in &sc {
                            r.doc(d).unwrap();
                        }
                    }
                    barrier.wait();
                    let t = Instant::now();
                    tp_sync(&url, &token, &mut r, &sc);
                    let took = t.elapsed();
                    for f in load_meta(i) {
                        let d: DocId = f.name.parse().unwrap();
                        let want = if load_first {
                            &f.heads_after_day
                        } else {
                            &f.heads_built
                        };
                        let heads = hex_heads(&r.doc(&d).unwrap().heads());
                        assert_eq!(&heads, want, "tpsync device {i}: {} after sync", f.name);
                        if load_first {
                            let mut peer: Vec<String> = r
                                .peer_state(&server_peer(), &d)
                                .unwrap()
                                .their_heads
                                .unwrap_or_default()
                                .iter()
                                .map(hex::encode)
                                .collect();
                            peer.sort();
                            assert_eq!(&peer, want, "tpsync server acknowledged {}", f.name);
                        }
                    }
                    took
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    }
}

// ---------------------------------------------------------------------------
// automerge-repo.

struct RepoRun {
    storage: PathBuf,
    devices: PathBuf,
    urls: BTreeMap<String, String>,
    jobs: PathBuf,
}

impl RepoRun {
    /// The server's storage seeded with every school's generated files (the
    /// server's own storage adapter, offline).
    fn setup(root: &Path, schools: usize) -> Self {
        let storage = root.join("repo-server");
        let devices = root.join("repo-devices");
        let jobs = root.join("repo-jobs");
        std::fs::create_dir_all(&devices).unwrap();
        std::fs::create_dir_all(&jobs).unwrap();
        println!("automerge-repo: seeding the server's storage with {schools} schools…");
        let mut urls = BTreeMap::new();
        for chunk in (0..schools).collect::<Vec<_>>().chunks(50) {
            let docs: Vec<Value> = chunk
                .iter()
                .flat_map(|&i| load_meta(i))
                .map(|f| json!({"name": f.name, "path": f.save}))
                .collect();
            let file = jobs.join("seed.json");
            std::fs::write(&file, serde_json::to_vec(&docs).unwrap()).unwrap();
            let out = run_node(
                "seed.mjs",
                &[
                    "--storage",
                    storage.to_str().unwrap(),
                    "--docs",
                    file.to_str().unwrap(),
                ],
            );
            let last = out.last().expect("seed.mjs output");
            for (name, url) in last["urls"].as_object().expect("urls") {
                urls.insert(name.clone(), url.as_str().unwrap().to_owned());
            }
        }
        RepoRun {
            storage,
            devices,
            urls,
            jobs,
        }
    }

    fn device_dir(&self, i: usize, tag: &str) -> PathBuf {
        self.devices.join(format!("{tag}-{i}"))
    }

    /// Runs devices.mjs in `mode` for these schools; each device's time.
    /// The times of the devices that succeeded, and the others' errors.
    #[allow(clippy::type_complexity)]
    fn job_lenient(
        &self,
        mode: &str,
        url: &str,
        schools: &[usize],
        tag: &str,
    ) -> (Vec<Duration>, Vec<(usize, String)>) {
        let devices: Vec<Value> = schools
            .iter()
            .map(|&i| {
                let docs: Vec<Value> = load_meta(i)
                    .into_iter()
                    .map(|f| {
                        json!({
                            "name": f.name,
                            "url": self.urls[&f.name],
                            "heads": (if mode == "initial" { &f.heads_built } else { &f.heads_after_day }),
                            "changes": (if mode == "edit" { f.day.clone() } else { None }),
                        })
                    })
                    .collect();
                json!({"id": format!("d{i}"), "storage": self.device_dir(i, tag), "docs": docs})
            })
            .collect();
        let job = json!({"mode": mode, "server": url, "devices": devices});
        let file = self.jobs.join(format!("{mode}-{tag}.json"));
        let mut f = std::fs::File::create(&file).unwrap();
        f.write_all(&serde_json::to_vec(&job).unwrap()).unwrap();
        drop(f);
        let (_, out) = run_node_lenient("devices.mjs", &["--job", file.to_str().unwrap()]);
        let mut times = Vec::new();
        let mut failed = Vec::new();
        for v in out.iter().filter(|v| v.get("id").is_some()) {
            let i: usize = v["id"].as_str().unwrap()[1..].parse().unwrap();
            if v["ok"] == json!(true) {
                times.push(Duration::from_secs_f64(v["ms"].as_f64().unwrap() / 1000.0));
            } else {
                failed.push((i, v["error"].as_str().unwrap_or("?").to_owned()));
            }
        }
        assert_eq!(
            times.len() + failed.len(),
            schools.len(),
            "every device reported: {out:?}"
        );
        (times, failed)
    }

    /// As [`RepoRun::job_lenient`], every device required to succeed.
    fn job(&self, mode: &str, url: &str, schools: &[usize], tag: &str) -> Vec<Duration> {
        let (times, failed) = self.job_lenient(mode, url, schools, tag);
        assert!(
            failed.is_empty(),
            "automerge-repo devices failed in {mode}: {failed:?}"
        );
        times
    }

    /// The heads the server's storage holds, read offline after a run.
    fn server_heads(&self, schools: &[usize]) -> BTreeMap<String, Vec<String>> {
        let urls: BTreeMap<&String, &String> = schools
            .iter()
            .flat_map(|&i| load_meta(i))
            .map(|f| self.urls.get_key_value(&f.name).unwrap())
            .collect();
        let file = self.jobs.join("urls.json");
        std::fs::write(&file, serde_json::to_vec(&urls).unwrap()).unwrap();
        let out = run_node(
            "heads.mjs",
            &[
                "--storage",
                self.storage.to_str().unwrap(),
                "--urls",
                file.to_str().unwrap(),
            ],
        );
        let mut heads = BTreeMap::new();
        for (name, h) in out.last().unwrap()["heads"].as_object().unwrap() {
            let mut v: Vec<String> = h
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_owned())
                .collect();
            v.sort();
            heads.insert(name.clone(), v);
        }
        heads
    }
}

// ---------------------------------------------------------------------------
// The three workloads, for one system.

/// What a system is driven through: start its server; run a mode.
trait System {
    fn name(&self) -> &'static str;
    fn start(&self) -> ServerProc;
    fn scheme(&self) -> &'static str;
    fn server_dir(&self) -> &Path;
    fn device_dir(&self, i: usize, tag: &str) -> PathBuf;
    fn initial(&self, url: &str, schools: &[usize], tag: &str) -> Vec<Duration>;
    fn edit(&self, schools: &[usize], tag: &str);
    fn sync(&self, url: &str, schools: &[usize], tag: &str) -> Vec<Duration>;
}

impl System for TpsyncRun {
    fn name(&self) -> &'static str {
        "tpsync"
    }
    fn start(&self) -> ServerProc {
        start_tpsync(&self.data)
    }
    fn scheme(&self) -> &'static str {
        "http"
    }
    fn server_dir(&self) -> &Path {
        &self.data
    }
    fn device_dir(&self, i: usize, tag: &str) -> PathBuf {
        TpsyncRun::device_dir(self, i, tag)
    }
    fn initial(&self, url: &str, schools: &[usize], tag: &str) -> Vec<Duration> {
        TpsyncRun::initial(self, url, schools, tag)
    }
    fn edit(&self, schools: &[usize], tag: &str) {
        TpsyncRun::edit(self, schools, tag)
    }
    fn sync(&self, url: &str, schools: &[usize], tag: &str) -> Vec<Duration> {
        self.all_at_once(url, schools, tag, true)
    }
}

impl System for RepoRun {
    fn name(&self) -> &'static str {
        "automerge-repo"
    }
    fn start(&self) -> ServerProc {
        start_repo_server(&self.storage)
    }
    fn scheme(&self) -> &'static str {
        "ws"
    }
    fn server_dir(&self) -> &Path {
        &self.storage
    }
    fn device_dir(&self, i: usize, tag: &str) -> PathBuf {
        RepoRun::device_dir(self, i, tag)
    }
    fn initial(&self, url: &str, schools: &[usize], tag: &str) -> Vec<Duration> {
        if tag != "county" {
            return self.job("initial", url, schools, tag);
        }
        // The county's setup is not measured. A device whose socket the
        // busy server dropped while it asked for its documents has them
        // marked unavailable and never asks again (seen with 25 new devices
        // at once); as an app would on its next start, it starts over.
        let mut left: Vec<usize> = schools.to_vec();
        for attempt in 1..=4 {
            let (_, failed) = self.job_lenient("initial", url, &left, tag);
            if failed.is_empty() {
                return Vec::new();
            }
            println!(
                "automerge-repo: {} of {} devices did not get their documents (attempt {attempt}); they start over: {:?}",
                failed.len(),
                left.len(),
                failed.iter().map(|(i, e)| format!("d{i}: {e}")).collect::<Vec<_>>()
            );
            left = failed.into_iter().map(|(i, _)| i).collect();
            for &i in &left {
                let _ = std::fs::remove_dir_all(self.device_dir(i, tag));
            }
        }
        panic!("automerge-repo: devices {left:?} never got their documents in 4 attempts");
    }
    fn edit(&self, schools: &[usize], tag: &str) {
        self.job("edit", "ws://127.0.0.1:9", schools, tag);
    }
    fn sync(&self, url: &str, schools: &[usize], tag: &str) -> Vec<Duration> {
        self.job("sync", url, schools, tag)
    }
}

/// Saves the server's and these devices' directories, so that the latency
/// pass starts from exactly the state the loopback pass started from.
struct Saved {
    pairs: Vec<(PathBuf, PathBuf)>,
}

impl Saved {
    fn take(sys: &dyn System, schools: &[usize], tag: &str) -> Saved {
        let mut dirs = vec![sys.server_dir().to_owned()];
        dirs.extend(schools.iter().map(|&i| sys.device_dir(i, tag)));
        let pairs = dirs
            .into_iter()
            .map(|d| {
                let saved = d.with_extension("saved");
                copy_dir(&d, &saved);
                (d, saved)
            })
            .collect();
        Saved { pairs }
    }
    fn restore(&self) {
        for (d, saved) in &self.pairs {
            copy_dir(saved, d);
        }
    }
    fn discard(self) {
        for (_, saved) in self.pairs {
            let _ = std::fs::remove_dir_all(saved);
        }
    }
}

struct Results {
    initial: Figures,
    day: Figures,
    county: Figures,
}

fn run_system(sys: &dyn System, county: &[usize]) -> Results {
    let name = sys.name();
    let one = [0usize];

    // 1. A new device fetches teaching point 0: on loopback, then a second
    //    new device through the 2G latency.
    println!("{name}: initial sync…");
    let l = pass(
        sys.start(),
        false,
        |u| sys.initial(u, &one, "one"),
        sys.scheme(),
    );
    let t = pass(
        sys.start(),
        true,
        |u| sys.initial(u, &one, "one-lat"),
        sys.scheme(),
    );
    let initial = figures(l, t);

    // 2. The first device's day's work, offline; then it syncs. The latency
    //    pass replays the same sync from the saved state.
    println!("{name}: day's incremental sync…");
    sys.edit(&one, "one");
    let saved = Saved::take(sys, &one, "one");
    let l = pass(
        sys.start(),
        false,
        |u| sys.sync(u, &one, "one"),
        sys.scheme(),
    );
    saved.restore();
    let t = pass(
        sys.start(),
        true,
        |u| sys.sync(u, &one, "one"),
        sys.scheme(),
    );
    saved.discard();
    let day = figures(l, t);

    // 3. The county: each device fetches its school (not measured), makes
    //    its day's work offline, then all sync at once.
    println!("{name}: {} devices fetch their schools…", county.len());
    // In batches: automerge-repo's server, asked by 300 new devices at once,
    // left connections to time out (ETIMEDOUT) while it loaded documents.
    // This setup is not measured, so both systems get the same easy pace.
    let s = sys.start();
    let url = format!("{}://{}", sys.scheme(), s.addr);
    for batch in county.chunks(SETUP_BATCH) {
        sys.initial(&url, batch, "county");
    }
    s.stop();
    sys.edit(county, "county");
    let saved = Saved::take(sys, county, "county");
    println!("{name}: {} devices sync their day at once…", county.len());
    let l = pass(
        sys.start(),
        false,
        |u| sys.sync(u, county, "county"),
        sys.scheme(),
    );
    saved.restore();
    let t = pass(
        sys.start(),
        true,
        |u| sys.sync(u, county, "county"),
        sys.scheme(),
    );
    saved.discard();
    let county = figures(l, t);
    Results {
        initial,
        day,
        county,
    }
}

// ---------------------------------------------------------------------------
// The table.

fn kib(b: f64) -> String {
    if b >= 10.0 * 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / 1024.0 / 1024.0)
    } else {
        format!("{:.1} KiB", b / 1024.0)
    }
}

fn secs(s: f64) -> String {
    if s < 1.0 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

struct Table {
    misses: Vec<String>,
}

impl Table {
    /// One row: lower is better for every figure here.
    fn row(&mut self, workload: &str, what: &str, tp: f64, am: f64, show: fn(f64) -> String) {
        let ratio = if tp > 0.0 { am / tp } else { f64::INFINITY };
        let ahead = tp < am;
        println!(
            "  {what:<28} {:>14} {:>16} {:>9}  {}",
            show(tp),
            show(am),
            if ratio.is_finite() {
                format!("{ratio:.1}×")
            } else {
                "—".into()
            },
            if ahead { "" } else { "← MISS: not ahead" }
        );
        if !ahead {
            self.misses.push(format!("{workload}: {what}"));
        }
    }

    fn workload(&mut self, title: &str, tp: &Figures, am: &Figures) {
        println!("\n{title}");
        println!(
            "  {:<28} {:>14} {:>16} {:>9}",
            "", "tpsync", "automerge-repo", "ratio"
        );
        let per = |f: &Figures, b: u64| b as f64 / f.devices as f64;
        self.row(
            title,
            "bytes up (per device)",
            per(tp, tp.up),
            per(am, am.up),
            kib,
        );
        self.row(
            title,
            "bytes down (per device)",
            per(tp, tp.down),
            per(am, am.down),
            kib,
        );
        self.row(
            title,
            "round trips (per device)",
            tp.round_trips,
            am.round_trips,
            |x| format!("{x:.1}"),
        );
        self.row(
            title,
            "modeled 2G time (per device)",
            tp.modeled_2g_s(),
            am.modeled_2g_s(),
            secs,
        );
        if tp.devices > 1 {
            self.row(
                title,
                "wall, loopback, p50 device",
                tp.pct(0.5).as_secs_f64(),
                am.pct(0.5).as_secs_f64(),
                secs,
            );
            self.row(
                title,
                "wall, loopback, p99 device",
                tp.pct(0.99).as_secs_f64(),
                am.pct(0.99).as_secs_f64(),
                secs,
            );
        }
        self.row(
            title,
            "wall, loopback (all done)",
            tp.wall.as_secs_f64(),
            am.wall.as_secs_f64(),
            secs,
        );
        self.row(title, "server CPU", tp.server_cpu_s, am.server_cpu_s, |s| {
            format!("{s:.2} s")
        });
        self.row(
            title,
            "server peak RSS",
            tp.server_peak_kib as f64,
            am.server_peak_kib as f64,
            |k| format!("{:.1} MiB", k / 1024.0),
        );
        println!(
            "  (TCP connections: tpsync {}, automerge-repo {})",
            tp.connections, am.connections
        );
    }

    fn target(&mut self, what: &str, pass: bool, figure: String) {
        println!("{} {what}: {figure}", if pass { "PASS" } else { "MISS" });
        if !pass {
            self.misses.push(what.to_owned());
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: usize = std::env::var("TPSYNC_VERSUS_DEVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    // School 0 is the single teaching point; 1..=n the county's devices.
    ensure_corpus(n + 1);
    ensure_node_modules();
    let county: Vec<usize> = (1..=n).collect();
    let root = tempfile::Builder::new()
        .prefix("tpsync-versus-")
        .tempdir_in(target_dir())
        .unwrap();

    let am = RepoRun::setup(root.path(), n + 1);
    let am_results = run_system(&am, &county);
    let tp = TpsyncRun::setup(root.path(), n + 1);
    let tp_results = run_system(&tp, &county);

    // Both servers end with exactly the documents the generator recorded.
    let mut all = vec![0usize];
    all.extend(&county);
    let am_heads = am.server_heads(&all);
    for &i in &all {
        for f in load_meta(i) {
            assert_eq!(
                am_heads.get(&f.name),
                Some(&f.heads_after_day),
                "automerge-repo's server holds {} after the day",
                f.name
            );
        }
    }
    println!(
        "\nchecked: both servers hold every one of the {} documents with the generator's heads",
        all.len() * 7
    );

    println!(
        "\ntpsync vs automerge-repo 2.5.6 — the brief's teaching point (7 documents, 2,000 books), \
         a day = 50 edits; {n} devices in the county run; 2G = 600 ms RTT, 50 kbit/s"
    );
    let mut t = Table { misses: Vec::new() };
    t.workload(
        "1. one teaching point's initial sync",
        &tp_results.initial,
        &am_results.initial,
    );
    t.workload(
        "2. a day's incremental sync (50 edits)",
        &tp_results.day,
        &am_results.day,
    );
    t.workload(
        &format!("3. {n} devices at once, each its day's work"),
        &tp_results.county,
        &am_results.county,
    );
    println!();
    let (tpd, amd) = (&tp_results.day, &am_results.day);
    t.target(
        "day's work: at least 3× fewer round trips",
        amd.round_trips >= 3.0 * tpd.round_trips,
        format!("{:.1} vs {:.1}", tpd.round_trips, amd.round_trips),
    );
    t.target(
        "day's work: at least 2× fewer bytes",
        amd.bytes_per_device() >= 2.0 * tpd.bytes_per_device(),
        format!(
            "{} vs {}",
            kib(tpd.bytes_per_device()),
            kib(amd.bytes_per_device())
        ),
    );
    let (tpc, amc) = (&tp_results.county, &am_results.county);
    t.target(
        &format!("{n} devices: server peak RSS at least 3× lower"),
        amc.server_peak_kib >= 3 * tpc.server_peak_kib,
        format!(
            "{:.1} MiB vs {:.1} MiB",
            tpc.server_peak_kib as f64 / 1024.0,
            amc.server_peak_kib as f64 / 1024.0
        ),
    );
    if !t.misses.is_empty() {
        println!("\nMISSED: {}", t.misses.join("; "));
        std::process::exit(1);
    }
}
