//! The soak test: many devices syncing for minutes through a bad network
//! while the server is SIGKILLed and restarted on a schedule.
//!
//! A county of schools is set up through the admin API, with one teacher
//! account per school signed in on three devices (each its own device id
//! and in-memory replica), so the devices of a school edit the same
//! documents, and often the same records, at the same time. Every device is
//! a thread that loops: a few edits (入册 a book, 上架 a book of its school,
//! now and then 清点 an equipment item), then a sync over HTTP through the
//! [`FaultyProxy`], then a pause. The proxy delays every chunk (20–200 ms
//! each way), cuts connections after a random number of bytes, drops 5 % of
//! new connections and duplicates 5 % (the server gets every request on
//! them twice). An error is counted and the device goes on, as a phone
//! does. A change is acknowledged once its hash is among the device's heads
//! when a sync returns `Ok`.
//!
//! Every `TPSYNC_SOAK_RESTART_S` seconds the server is killed with SIGKILL
//! and restarted on the same data directory (a new port; the proxy follows
//! with `set_upstream`). Before the proxy points at the new server, so
//! before any device can push anything again, the county user reads the
//! whole county into a fresh replica, directly.
//!
//! Proven:
//! - after every kill, every change any device had acknowledged is on the
//!   restarted server, every document validates, and nothing the server had
//!   at the previous kill is gone (its history only grows, no record erased
//!   or replaced);
//! - devices see only transport errors (cut, refused or timed out
//!   connections, a busy server), never a refusal or an answer that does
//!   not decode;
//! - the system recovers after every restart: syncs succeed between any two
//!   kills;
//! - after the soak, a last kill, and faults off: every device converges
//!   (all push, then all pull, until a round moves nothing), every device
//!   has the server's heads for every document of its scope, the server
//!   holds exactly the books and equipment items the devices created, and
//!   every document validates on both sides.
//!
//! It prints one report line (devices, duration, restarts, syncs attempted,
//! ok, failed by kind, error rate, p50/p99 of successful syncs, the proxy's
//! counters). Timing is reported, never asserted.
//!
//! The default is short enough for CI (120 devices, 60 s, a kill every 15 s;
//! about 1.5 minutes in a debug build on two cores).
//! The full soak (300 devices for 10 minutes, a kill every minute):
//!
//! ```text
//! TPSYNC_SOAK_DEVICES=300 TPSYNC_SOAK_SECS=600 TPSYNC_SOAK_RESTART_S=60 \
//!     cargo test --release -p tpsync-tests --test soak -- --nocapture
//! ```
//!
//! Other knobs: `TPSYNC_SOAK_SEED` (proxy draws and device choices),
//! `TPSYNC_SOAK_THINK_MS` (a device's pause between rounds, `LO-HI`).

#![cfg(unix)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use automerge::{ChangeHash, ReadDoc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sync_core::records::{Book, EquipmentItem};
use sync_core::schema::Record;
use sync_core::store::MemoryStorage;
use sync_core::workload::{sample_book, sample_equipment};
use sync_core::{DeviceId, DocId, DocKind, EditContext, RecordId, Replica, SchoolId};
use tpsync_client::{Client, ClientConfig, ClientError, NewUser, Role, Tokens};
use tpsync_tests::phone::{fresh_view, heads, now_ms, server_peer};
use tpsync_tests::proxy::{FaultPlan, FaultyProxy};
use tpsync_tests::server::TestServer;

const PASSWORD: &str = "soak-password-42";
const COUNTY_CODE: &str = "430123";
/// Devices per school, all signed in as the school's one teacher.
const PER_SCHOOL: usize = 3;
/// Schools per township.
const SCHOOLS_PER_TOWNSHIP: usize = 10;
/// Threads that create accounts and sign devices in (argon2 on the server).
const SETUP_THREADS: usize = 4;

/// The soak's size, from the environment.
#[derive(Clone, Debug)]
struct Params {
    devices: usize,
    secs: u64,
    restart_s: u64,
    seed: u64,
    /// A device's pause between two rounds, in ms (drawn uniformly).
    think_ms: (u64, u64),
}

impl Params {
    fn from_env() -> Params {
        let num = |name: &str, default: u64| -> u64 {
            match std::env::var(name) {
                Ok(v) => v
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
                Err(_) => default,
            }
        };
        let think_ms = match std::env::var("TPSYNC_SOAK_THINK_MS") {
            Ok(v) => {
                let (lo, hi) = v
                    .split_once('-')
                    .unwrap_or_else(|| panic!("TPSYNC_SOAK_THINK_MS={v:?} is not LO-HI"));
                let p = |s: &str| s.trim().parse::<u64>().expect("TPSYNC_SOAK_THINK_MS");
                (p(lo).min(p(hi)), p(lo).max(p(hi)))
            }
            Err(_) => (500, 2_500),
        };
        let p = Params {
            devices: num("TPSYNC_SOAK_DEVICES", 120) as usize,
            secs: num("TPSYNC_SOAK_SECS", 60),
            restart_s: num("TPSYNC_SOAK_RESTART_S", 15),
            seed: num("TPSYNC_SOAK_SEED", 20_261_120),
            think_ms,
        };
        assert!(p.devices >= 1 && p.secs >= 1 && p.restart_s >= 1, "{p:?}");
        p
    }

    fn schools(&self) -> usize {
        self.devices.div_ceil(PER_SCHOOL)
    }
}

/// What the proxy does during the soak.
fn soak_plan(seed: u64) -> FaultPlan {
    FaultPlan {
        seed,
        // A connection carries several syncs (the client keeps it open), so
        // a budget of a few to a hundred kilobytes cuts one sync in ten or so.
        cut_after_bytes: Some((1_000, 120_000)),
        latency: Some((Duration::from_millis(20), Duration::from_millis(200))),
        drop_connections: 0.05,
        duplicate_requests: 0.05,
        // No corrupted bytes. A damaged sync frame is refused (every one of
        // the ~490 single-byte flips of a push frame tried was), but the
        // proxy flips bytes anywhere in the HTTP stream: a damaged header,
        // token or length gives a 400, a 401 or a stalled exchange, which
        // this test could not tell from a bug it must report.
        ..FaultPlan::default()
    }
}

fn school(i: usize) -> SchoolId {
    SchoolId::new(format!("43012{i:05}")).expect("school code")
}

fn teacher(i: usize) -> String {
    format!("soak-teacher-{i}")
}

const COUNTY_USER: &str = "soak-county";

/// A client with the timeouts of a phone on a bad link, shortened for a test.
fn device_client(url: &str) -> Client {
    Client::new(
        url,
        ClientConfig {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(15),
            ..ClientConfig::default()
        },
    )
    .expect("a valid address")
}

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .parse()
        .unwrap_or_else(|e| panic!("server address {url}: {e}"))
}

/// Runs `f` on `items` with a few threads; the results in item order.
fn parallel<T: Send, R: Send>(items: Vec<T>, threads: usize, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let n = items.len();
    let queue = Mutex::new(items.into_iter().enumerate().collect::<Vec<_>>());
    let out = Mutex::new((0..n).map(|_| None).collect::<Vec<Option<R>>>());
    thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let Some((i, item)) = queue.lock().unwrap().pop() else {
                    break;
                };
                let r = f(item);
                out.lock().unwrap()[i] = Some(r);
            });
        }
    });
    out.into_inner()
        .unwrap()
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
}

/// The accounts: the administrator, the county with its schools, one
/// teacher per school, the county user. Returns the county user's tokens.
fn set_up_county(server: &TestServer, p: &Params) -> (Client, Tokens) {
    let client = server.client();
    let code = server.setup_code.as_deref().expect("a setup code");
    client
        .setup(code, "admin", PASSWORD)
        .expect("create the administrator");
    let admin = client
        .login(
            "admin",
            PASSWORD,
            &DeviceId::new("soak-admin").unwrap(),
            None,
        )
        .expect("admin login")
        .access_token;
    client
        .create_county(&admin, COUNTY_CODE, "青山县")
        .expect("create the county");
    let mut csv =
        String::from("school_code,name,type,township_code,township_name,grade1,grade2,grade3\n");
    for i in 0..p.schools() {
        let t = i / SCHOOLS_PER_TOWNSHIP;
        csv.push_str(&format!(
            "{},第{i}教学点,teaching_point,T{t:02},第{t}乡,9,7,8\n",
            school(i)
        ));
    }
    let report = client
        .import_schools(&admin, csv.as_bytes(), false)
        .expect("import the schools");
    assert_eq!(report.schools_created as usize, p.schools(), "{report:?}");
    let mut users: Vec<(String, Role, String)> = (0..p.schools())
        .map(|i| (teacher(i), Role::Teacher, school(i).to_string()))
        .collect();
    users.push((COUNTY_USER.into(), Role::County, COUNTY_CODE.into()));
    parallel(users, SETUP_THREADS, |(username, role, unit)| {
        client
            .create_user(
                &admin,
                &NewUser {
                    username: username.clone(),
                    password: PASSWORD.into(),
                    role,
                    unit: Some(unit),
                },
            )
            .unwrap_or_else(|e| panic!("create {username}: {e}"))
    });
    let county = client
        .login(
            COUNTY_USER,
            PASSWORD,
            &DeviceId::new("soak-county-pc").unwrap(),
            None,
        )
        .expect("county login");
    (client, county)
}

/// Counters of one device.
#[derive(Default)]
struct Tally {
    attempts: u64,
    ok: u64,
    /// Failures by kind.
    failed: BTreeMap<&'static str, u64>,
    /// Failures that are not the network's or a busy server's.
    unexpected: Vec<String>,
    /// Each successful sync's duration.
    latencies: Vec<Duration>,
    /// Round trips and Automerge fallbacks of the successful syncs.
    round_trips: u64,
    fallbacks: u64,
    /// The first few messages of each kind of failure, for the report.
    samples: BTreeMap<&'static str, Vec<String>>,
}

/// What a failed sync says about the system: the network's doing (or a
/// busy server) is expected in this test; anything else is not.
fn kind(e: &ClientError) -> (&'static str, bool) {
    match e {
        ClientError::Unreachable(_) => ("unreachable", true),
        ClientError::ConnectionLost(_) => ("cut", true),
        ClientError::Timeout => ("timeout", true),
        ClientError::Problem { status: 503, .. } => ("busy", true),
        ClientError::Problem { .. } => ("refused", false),
        ClientError::Sync(sync_core::Error::Protocol(m)) if m.contains("did not settle") => {
            ("unsettled", true)
        }
        ClientError::Sync(_) => ("sync-engine", false),
        ClientError::Protocol(_) => ("protocol", false),
        _ => ("other", false),
    }
}

/// Every change hash a device has seen in its heads when a sync returned
/// `Ok`, by document: what the server has acknowledged.
type Acked = Arc<Mutex<BTreeMap<DocId, BTreeSet<ChangeHash>>>>;

/// What the device threads and the main thread share.
struct Shared {
    stop: AtomicBool,
    /// Incremented at each restart; syncs are counted per epoch.
    epoch: AtomicUsize,
    /// Set from a kill until the proxy points at the restarted server.
    down: AtomicBool,
    epochs: Mutex<BTreeMap<usize, EpochTally>>,
}

/// Syncs of one epoch (from one restart to the next), by how they ended.
#[derive(Clone, Copy, Debug, Default)]
struct EpochTally {
    ok: u64,
    failed: u64,
    /// Failures of syncs that started or ended while the server was down.
    failed_while_down: u64,
}

/// CPU seconds (user and system) a process has used so far, from /proc.
fn cpu_s(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime, in USER_HZ (100 on Linux).
    (ticks(11) + ticks(12)) / 100.0
}

struct Device {
    index: usize,
    school: usize,
    tokens: Tokens,
    scope: Vec<DocId>,
    replica: Replica<MemoryStorage>,
    rng: StdRng,
    rounds: usize,
    /// Records this device created: (document, id).
    created: Vec<(DocId, RecordId)>,
    acked: Acked,
    tally: Tally,
}

impl Device {
    fn ctx(&self) -> EditContext {
        EditContext {
            user: self.tokens.user.id.parse().expect("user id"),
            device: self.tokens.device_id.clone(),
            now_ms: now_ms(),
        }
    }

    fn doc(&self, kind: DocKind) -> DocId {
        DocId::school(&school(self.school), kind).expect("doc id")
    }

    /// A few edits, as a teacher makes between two syncs: 入册 a book, often
    /// 上架 a book of the school (perhaps one another device is shelving
    /// right now), now and then 清点 an equipment item.
    fn edit(&mut self) {
        self.rounds += 1;
        let n = self.index * 100_000 + self.rounds;
        let books = self.doc(DocKind::Books);
        let id = RecordId::random();
        let ctx = self.ctx();
        self.replica
            .edit(&books, |d| d.insert(&ctx, id, &sample_book(n)))
            .expect("insert a book");
        self.created.push((books.clone(), id));
        if self.rng.gen_bool(0.6) {
            let ids = self
                .replica
                .doc(&books)
                .expect("load books")
                .record_ids(&Book::SPEC)
                .expect("list books");
            let target = ids[self.rng.gen_range(0..ids.len())];
            let shelf = format!("S{}-{}", self.index, self.rounds);
            let ctx = self.ctx();
            self.replica
                .edit(&books, |d| {
                    d.update::<Book>(&ctx, target, |b| b.shelf = Some(shelf))
                })
                .expect("shelve a book");
        }
        if self.rounds % 3 == 0 {
            let equipment = self.doc(DocKind::Equipment);
            let id = RecordId::random();
            let ctx = self.ctx();
            self.replica
                .edit(&equipment, |d| d.insert(&ctx, id, &sample_equipment(n)))
                .expect("insert an equipment item");
            self.created.push((equipment, id));
        }
    }

    fn sync(&mut self, client: &Client) -> Result<sync_core::sync::SyncStats, ClientError> {
        client.sync(
            &self.tokens.access_token,
            &mut self.replica,
            &server_peer(),
            &self.scope,
            None,
            None,
        )
    }

    /// Notes the heads of every document in scope as acknowledged.
    fn note_acked(&mut self) {
        let mut now = Vec::new();
        for d in &self.scope {
            now.push((d.clone(), heads(&mut self.replica, d)));
        }
        let mut acked = self.acked.lock().unwrap();
        for (d, hs) in now {
            acked.entry(d).or_default().extend(hs);
        }
    }

    /// The soak loop, until told to stop.
    fn run(&mut self, url: &str, shared: &Shared, think_ms: (u64, u64)) {
        let client = device_client(url);
        // Not all at once at the start.
        let first = self.rng.gen_range(0..=think_ms.1);
        self.pause(shared, first);
        while !shared.stop.load(Ordering::Relaxed) {
            self.edit();
            self.tally.attempts += 1;
            let epoch = shared.epoch.load(Ordering::SeqCst);
            let down_at_start = shared.down.load(Ordering::SeqCst);
            let started = Instant::now();
            match self.sync(&client) {
                Ok(stats) => {
                    self.tally.latencies.push(started.elapsed());
                    self.tally.round_trips += u64::from(stats.round_trips);
                    self.tally.fallbacks += u64::from(stats.fallbacks);
                    self.tally.ok += 1;
                    self.note_acked();
                    shared.epochs.lock().unwrap().entry(epoch).or_default().ok += 1;
                }
                Err(e) => {
                    let (kind, expected) = kind(&e);
                    *self.tally.failed.entry(kind).or_default() += 1;
                    {
                        let down = down_at_start || shared.down.load(Ordering::SeqCst);
                        let mut epochs = shared.epochs.lock().unwrap();
                        let tally = epochs.entry(epoch).or_default();
                        tally.failed += 1;
                        tally.failed_while_down += u64::from(down);
                    }
                    let samples = self.tally.samples.entry(kind).or_default();
                    if samples.len() < 3 {
                        samples.push(e.to_string());
                    }
                    if !expected {
                        self.tally.unexpected.push(format!(
                            "device {} (school {}), sync {}: {kind}: {e:?}",
                            self.tokens.device_id,
                            school(self.school),
                            self.tally.attempts
                        ));
                    }
                    // A phone waits a little after an error, then goes on.
                    let wait = self.rng.gen_range(100..=1_000);
                    self.pause(shared, wait);
                }
            }
            let think = self.rng.gen_range(think_ms.0..=think_ms.1);
            self.pause(shared, think);
        }
    }

    fn pause(&self, shared: &Shared, ms: u64) {
        let until = Instant::now() + Duration::from_millis(ms);
        while !shared.stop.load(Ordering::Relaxed) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            thread::sleep(left.min(Duration::from_millis(100)));
        }
    }
}

/// Every document of the county: each school's, and the template.
fn all_docs(p: &Params) -> Vec<DocId> {
    let mut docs: Vec<DocId> = (0..p.schools())
        .flat_map(|i| DocId::all_for_school(&school(i)))
        .collect();
    docs.push(DocId::template(
        &sync_core::CountyId::new(COUNTY_CODE).unwrap(),
    ));
    docs
}

/// The server's whole county as the county user reads it into a fresh
/// replica, directly (not through the proxy). A read may need a retry while
/// the server settles.
fn county_view(
    server: &TestServer,
    county: &Tokens,
    docs: &[DocId],
    when: &str,
) -> Replica<MemoryStorage> {
    let client = server.client();
    let mut last = None;
    for _ in 0..5 {
        match fresh_view(&client, county, Some(docs)) {
            Ok(view) => return view,
            Err(e) => {
                last = Some(e);
                thread::sleep(Duration::from_millis(500));
            }
        }
    }
    panic!(
        "{when}: the county user cannot read the county: {:?}; server log:\n{}",
        last.unwrap(),
        server.log()
    );
}

/// The checks after a kill and restart, before any device can reach the
/// new server: every acknowledged change is there, every document
/// validates, and nothing the server had at the previous check is gone.
/// Returns the server's view, for the next check, and how many acknowledged
/// hashes it checked.
fn check_after_restart(
    server: &TestServer,
    county: &Tokens,
    docs: &[DocId],
    acked: &[(String, Acked)],
    previous: Option<&mut Replica<MemoryStorage>>,
    when: &str,
) -> (Replica<MemoryStorage>, usize) {
    let snapshot: Vec<(String, BTreeMap<DocId, BTreeSet<ChangeHash>>)> = acked
        .iter()
        .map(|(device, a)| (device.clone(), a.lock().unwrap().clone()))
        .collect();
    let mut view = county_view(server, county, docs, when);
    let mut lost = Vec::new();
    let mut checked = 0;
    for (device, per_doc) in &snapshot {
        for (d, hashes) in per_doc {
            let doc = view.doc(d).expect("load a document");
            for h in hashes {
                checked += 1;
                if doc.automerge().get_change_by_hash(h).is_none() {
                    lost.push(format!("device {device}: {d}: change {h}"));
                }
            }
        }
    }
    assert!(
        lost.is_empty(),
        "{when}: {} acknowledged changes are not on the restarted server, e.g.:\n  {}\nserver log:\n{}",
        lost.len(),
        lost[..lost.len().min(10)].join("\n  "),
        server.log()
    );
    for d in docs {
        view.doc(d)
            .unwrap()
            .validate()
            .unwrap_or_else(|e| panic!("{when}: {d} on the server does not validate: {e}"));
    }
    if let Some(previous) = previous {
        for d in docs {
            let before_heads = heads(previous, d);
            let before = previous.doc(d).unwrap().clone();
            let now = view.doc(d).unwrap();
            for h in &before_heads {
                assert!(
                    now.automerge().get_change_by_hash(h).is_some(),
                    "{when}: {d}: the server had change {h} at the previous restart and lost it"
                );
            }
            now.check_nothing_erased(&before).unwrap_or_else(|e| {
                panic!("{when}: {d}: a record the server had at the previous restart is gone: {e}")
            });
        }
    }
    (view, checked)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

#[test]
fn devices_converge_through_a_faulty_network_and_server_crashes() {
    let p = Params::from_env();
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start_with(
        dir.path(),
        &[
            // No token refresh during the soak, and sign-ins all from one
            // address.
            "--access-ttl-s",
            "86400",
            "--login-attempts-per-ip",
            "1000000",
        ],
    );
    let (setup_client, county) = set_up_county(&server, &p);
    let docs = all_docs(&p);

    // Every device signs in (directly), and learns its scope.
    let signed_in = parallel((0..p.devices).collect(), SETUP_THREADS, |k| {
        let device = DeviceId::new(format!("soak-{k:04}")).unwrap();
        let s = k / PER_SCHOOL;
        let tokens = setup_client
            .login(&teacher(s), PASSWORD, &device, Some(&format!("phone {k}")))
            .unwrap_or_else(|e| panic!("sign in device {k}: {e}"));
        let scope = setup_client
            .me(&tokens.access_token)
            .unwrap_or_else(|e| panic!("scope of device {k}: {e}"))
            .scope
            .all();
        (k, s, tokens, scope)
    });
    let setup_time = started.elapsed();

    let proxy = FaultyProxy::start(addr_of(&server.url), soak_plan(p.seed)).unwrap();
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        epoch: AtomicUsize::new(0),
        down: AtomicBool::new(false),
        epochs: Mutex::new(BTreeMap::new()),
    });
    let mut acked: Vec<(String, Acked)> = Vec::new();
    let mut threads = Vec::new();
    for (k, s, tokens, scope) in signed_in {
        assert!(
            scope.contains(&DocId::school(&school(s), DocKind::Books).unwrap()),
            "device {k}'s scope lacks its school's books: {scope:?}"
        );
        let device_acked = Acked::default();
        acked.push((tokens.device_id.to_string(), device_acked.clone()));
        let mut device = Device {
            index: k,
            school: s,
            tokens,
            scope,
            replica: Replica::open(MemoryStorage::new()),
            rng: StdRng::seed_from_u64(p.seed ^ (k as u64).wrapping_mul(0x9E37_79B9)),
            rounds: 0,
            created: Vec::new(),
            acked: device_acked,
            tally: Tally::default(),
        };
        let (shared, url, think) = (shared.clone(), proxy.url(), p.think_ms);
        threads.push(
            thread::Builder::new()
                .name(format!("device-{k}"))
                .spawn(move || {
                    device.run(&url, &shared, think);
                    device
                })
                .expect("spawn a device"),
        );
    }

    // The storm: a SIGKILL every restart_s, each checked before the devices
    // reach the new server.
    let soak_started = Instant::now();
    let deadline = soak_started + Duration::from_secs(p.secs);
    // Kills on a fixed grid: at restart_s, 2 × restart_s, … before the end
    // (a kill whose checks overran its slot comes as soon as they are done).
    let kills = ((p.secs - 1) / p.restart_s) as usize;
    let mut restarts = 0usize;
    let mut view: Option<Replica<MemoryStorage>> = None;
    let mut acked_checked = 0;
    let mut downtime = Vec::new();
    let server_pid = |server: &TestServer| server.pid().expect("running").to_string();
    // Per epoch: wall time, server CPU and this process's CPU (the devices
    // and the proxy), from the moment the devices reach the server to the
    // kill.
    let mut epoch_cpu: Vec<(Duration, f64, f64)> = Vec::new();
    let mut base = (Instant::now(), cpu_s(&server_pid(&server)), cpu_s("self"));
    while restarts < kills {
        let at = soak_started + Duration::from_secs(p.restart_s * (restarts as u64 + 1));
        thread::sleep(at.saturating_duration_since(Instant::now()));
        let down = Instant::now();
        epoch_cpu.push((
            base.0.elapsed(),
            cpu_s(&server_pid(&server)) - base.1,
            cpu_s("self") - base.2,
        ));
        shared.down.store(true, Ordering::SeqCst);
        server.kill();
        // Answers the dead server had already sent are still in the proxy's
        // delay queues: let them arrive, so the acknowledgements they carry
        // are in the snapshot.
        thread::sleep(Duration::from_millis(500));
        server.restart();
        restarts += 1;
        let when = format!("after restart {restarts}");
        let (v, checked) =
            check_after_restart(&server, &county, &docs, &acked, view.as_mut(), &when);
        view = Some(v);
        acked_checked = checked;
        shared.epoch.fetch_add(1, Ordering::SeqCst);
        base = (Instant::now(), cpu_s(&server_pid(&server)), cpu_s("self"));
        proxy.set_upstream(addr_of(&server.url));
        shared.down.store(false, Ordering::SeqCst);
        downtime.push(down.elapsed());
        println!(
            "soak: {when} at {:.0} s: {checked} acknowledged hashes on the server, down {:.1} s",
            soak_started.elapsed().as_secs_f64(),
            down.elapsed().as_secs_f64()
        );
    }
    thread::sleep(deadline.saturating_duration_since(Instant::now()));
    shared.stop.store(true, Ordering::Relaxed);
    epoch_cpu.push((
        base.0.elapsed(),
        cpu_s(&server_pid(&server)) - base.1,
        cpu_s("self") - base.2,
    ));
    let mut devices: Vec<Device> = threads
        .into_iter()
        .map(|t| t.join().expect("a device thread panicked"))
        .collect();
    let soak_time = soak_started.elapsed();

    // A last kill with every device stopped: everything acknowledged is on
    // disk, not only in the server's memory.
    server.kill();
    server.restart();
    let (v, checked) = check_after_restart(
        &server,
        &county,
        &docs,
        &acked,
        view.as_mut(),
        "after the soak and a last kill",
    );
    let mut view = v;
    acked_checked = acked_checked.max(checked);
    proxy.set_upstream(addr_of(&server.url));

    // Faults off; fresh clients so no connection keeps the old plan. All
    // push, then all pull, until a round moves nothing.
    proxy.set_plan(FaultPlan::default());
    let mut final_rounds = 0;
    let mut moved_per_round = Vec::new();
    loop {
        final_rounds += 1;
        assert!(
            final_rounds <= 5,
            "the devices did not converge in 4 clean rounds"
        );
        let url = proxy.url();
        let moved: u64 = parallel(
            devices.iter_mut().collect(),
            SETUP_THREADS,
            |d: &mut Device| {
                let client = device_client(&url);
                let mut tries = 0;
                loop {
                    tries += 1;
                    match d.sync(&client) {
                        Ok(s) => break s.changes_sent + s.changes_received,
                        Err(e) if e.is_retryable() && tries < 5 => {
                            thread::sleep(Duration::from_millis(500))
                        }
                        Err(e) => panic!(
                            "final sync {final_rounds} of {} failed (try {tries}): {e:?}",
                            d.tokens.device_id
                        ),
                    }
                }
            },
        )
        .into_iter()
        .sum();
        moved_per_round.push(moved);
        if final_rounds >= 2 && moved == 0 {
            break;
        }
    }

    // Converged: every device has the server's heads for its whole scope,
    // and the server has exactly the records the devices created.
    let mut server_now = county_view(&server, &county, &docs, "after the final syncs");
    for d in &docs {
        let doc = server_now.doc(d).unwrap();
        doc.validate()
            .unwrap_or_else(|e| panic!("{d} on the server does not validate at the end: {e}"));
        doc.check_nothing_erased(view.doc(d).unwrap())
            .unwrap_or_else(|e| panic!("{d}: the final syncs erased a record: {e}"));
    }
    for dev in &mut devices {
        for d in dev.scope.clone() {
            let mine = heads(&mut dev.replica, &d);
            let theirs = heads(&mut server_now, &d);
            assert_eq!(
                mine, theirs,
                "device {} has not converged with the server on {d}",
                dev.tokens.device_id
            );
            dev.replica.doc(&d).unwrap().validate().unwrap_or_else(|e| {
                panic!(
                    "{d} on device {} does not validate: {e}",
                    dev.tokens.device_id
                )
            });
        }
    }
    let mut books_created = 0;
    let mut items_created = 0;
    for s in 0..p.schools() {
        for (kind, ids_on_server) in [
            (
                DocKind::Books,
                server_now
                    .doc(&DocId::school(&school(s), DocKind::Books).unwrap())
                    .unwrap()
                    .record_ids(&Book::SPEC)
                    .unwrap(),
            ),
            (
                DocKind::Equipment,
                server_now
                    .doc(&DocId::school(&school(s), DocKind::Equipment).unwrap())
                    .unwrap()
                    .record_ids(&EquipmentItem::SPEC)
                    .unwrap(),
            ),
        ] {
            let doc = DocId::school(&school(s), kind).unwrap();
            let created: BTreeSet<RecordId> = devices
                .iter()
                .filter(|d| d.school == s)
                .flat_map(|d| d.created.iter())
                .filter(|(d, _)| *d == doc)
                .map(|(_, id)| *id)
                .collect();
            match kind {
                DocKind::Books => books_created += created.len(),
                _ => items_created += created.len(),
            }
            let on_server: BTreeSet<RecordId> = ids_on_server.into_iter().collect();
            let missing: Vec<_> = created.difference(&on_server).collect();
            let unknown: Vec<_> = on_server.difference(&created).collect();
            assert!(
                missing.is_empty() && unknown.is_empty(),
                "{doc}: the server lacks {} records the devices created (e.g. {:?}) and has {} no device created (e.g. {:?})",
                missing.len(),
                missing.first(),
                unknown.len(),
                unknown.first()
            );
        }
    }

    // The report.
    let mut total = Tally::default();
    for d in &devices {
        total.attempts += d.tally.attempts;
        total.ok += d.tally.ok;
        for (k, n) in &d.tally.failed {
            *total.failed.entry(k).or_default() += n;
        }
        total.unexpected.extend(d.tally.unexpected.iter().cloned());
        total.latencies.extend(&d.tally.latencies);
        total.round_trips += d.tally.round_trips;
        total.fallbacks += d.tally.fallbacks;
        for (k, m) in &d.tally.samples {
            let all = total.samples.entry(k).or_default();
            all.extend(m.iter().take(3 - all.len().min(3)).cloned());
        }
    }
    total.latencies.sort();
    let failed: u64 = total.failed.values().sum();
    let per_epoch = shared.epochs.lock().unwrap().clone();
    let while_down: u64 = per_epoch.values().map(|e| e.failed_while_down).sum();
    downtime.sort();
    println!(
        "soak report: {} devices ({} schools), {:.0} s soak (setup {:.0} s, total {:.0} s), {} restarts (+1 final) down max {:.1} s; \
         syncs {} attempted, {} ok, {} failed {:?}, error rate {:.1}% ({:.1}% while the server was up); ok sync p50 {} p99 {} max {}, {} round trips, {} automerge fallbacks; \
         {} acknowledged hashes checked, {} books and {} equipment items created, changes moved per final round {:?}; \
         proxy: {} connections, {} cuts, {} drops, {} duplicates, {} KiB up, {} KiB down",
        p.devices,
        p.schools(),
        soak_time.as_secs_f64(),
        setup_time.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        restarts,
        downtime.last().copied().unwrap_or_default().as_secs_f64(),
        total.attempts,
        total.ok,
        failed,
        total.failed,
        100.0 * failed as f64 / total.attempts.max(1) as f64,
        100.0 * (failed - while_down) as f64 / (total.attempts - while_down).max(1) as f64,
        ms(pct(&total.latencies, 0.5)),
        ms(pct(&total.latencies, 0.99)),
        ms(total.latencies.last().copied().unwrap_or_default()),
        total.round_trips,
        total.fallbacks,
        acked_checked,
        books_created,
        items_created,
        moved_per_round,
        proxy.connections(),
        proxy.cuts(),
        proxy.drops(),
        proxy.duplicates(),
        proxy.bytes_up() / 1024,
        proxy.bytes_down() / 1024,
    );
    for (epoch, (wall, server_cpu, own_cpu)) in epoch_cpu.iter().enumerate() {
        let e = per_epoch.get(&epoch).copied().unwrap_or_default();
        println!(
            "soak: epoch {epoch}: {:.0} s up, {} ok syncs ({:.1}/s), {} failed ({} while down); \
             server CPU {:.1} s ({:.1} ms per ok sync), test process CPU {:.1} s",
            wall.as_secs_f64(),
            e.ok,
            e.ok as f64 / wall.as_secs_f64().max(0.001),
            e.failed,
            e.failed_while_down,
            server_cpu,
            1e3 * server_cpu / e.ok.max(1) as f64,
            own_cpu,
        );
    }

    for (k, m) in &total.samples {
        println!("soak: {k} failures, e.g.: {m:?}");
    }
    assert!(
        total.unexpected.is_empty(),
        "{} syncs failed with something other than the network or a busy server, e.g.:\n  {}\nserver log:\n{}",
        total.unexpected.len(),
        total.unexpected[..total.unexpected.len().min(10)].join("\n  "),
        server.log()
    );
    // The soak must have exercised what it claims to.
    assert_eq!(restarts, kills, "restarts done");
    for epoch in 0..=restarts {
        assert!(
            per_epoch.get(&epoch).is_some_and(|e| e.ok > 0),
            "no sync succeeded between restart {epoch} and the next: {per_epoch:?}"
        );
    }
    assert!(proxy.cuts() > 0, "the proxy cut no connection");
    assert!(proxy.drops() > 0, "the proxy dropped no connection");
    assert!(proxy.duplicates() > 0, "the proxy duplicated no connection");
    assert!(acked_checked > 0, "nothing was acknowledged");
    let status = server.stop();
    assert!(status.success(), "clean stop after the soak: {status}");
}
