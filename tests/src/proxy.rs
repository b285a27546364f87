//! A fault-injecting TCP proxy for end-to-end tests and benchmarks.
//!
//! [`FaultyProxy`] sits between a client and a real server on loopback and
//! forwards bytes both ways, while doing what a bad mobile link does: it cuts
//! connections part-way through, flips bytes, delays every chunk, drops
//! connections as soon as they open, and duplicates connections (the server
//! gets every request of a duplicated connection twice, as from a client that
//! retries or a middlebox that repeats). The tests of resumable attachment
//! uploads and the 2G benchmark use it to check that the client gets a whole,
//! correct attachment across many broken connections, and to count what each
//! retry cost on the wire; the soak test runs many devices through it.
//!
//! What it does is set by a [`FaultPlan`] and is deterministic for a given
//! seed where the traffic allows: the n-th connection gets the same cut
//! point, the same drop and duplicate decisions and the same delay draws
//! every run, and the corrupted bytes sit at fixed offsets of each
//! direction's stream. (How the delays fall on the bytes depends on how the
//! kernel splits the stream into reads, so that part is not.)
//!
//! It uses std threads and blocking sockets: one thread accepts, and each
//! connection has two pump threads, one per direction, each forwarding in
//! reads of at most 8 KiB. With a latency each pump also has a delivery
//! thread that writes the chunks it read once their time comes, so reading
//! goes on while earlier chunks wait. A duplicated connection has two more
//! threads: one writes the copy, one reads and discards its answers.
//!
//! The proxy forwards to one upstream address at a time; a server restarted
//! on a new port is followed with [`FaultyProxy::set_upstream`].

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::SeqCst};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The size of each pump's read buffer, so the largest chunk forwarded at once.
const BUF_SIZE: usize = 8 * 1024;

/// How many chunks a delayed direction holds at most (2 MiB): a pump that
/// gets that far ahead of its delivery waits, as on a real link whose
/// buffers are full.
const DELAY_QUEUE_CHUNKS: usize = 256;

/// A duplicate connection is closed once the client's side of the original
/// has ended and the duplicate has been quiet (no byte either way) this long:
/// long enough for the server to answer the copy of the last request.
const DUP_QUIET: Duration = Duration::from_secs(5);

/// …and at the latest this long after the client's side ended.
const DUP_LINGER_MAX: Duration = Duration::from_secs(60);

/// Where the draws of the faults added after the cuts start from the seed,
/// so that a seed's cut points stayed what they were.
const FAULT_STREAM: u64 = 0xD1B5_4A32_D192_ED03;

/// What tells the down direction's delay draws from the up direction's.
const DOWN_STREAM: u64 = 0x8CB9_2BA7_2F3D_8DD7;

/// What the proxy does to the traffic. Deterministic for a given seed.
/// The default does nothing to it.
#[derive(Clone, Debug, Default)]
pub struct FaultPlan {
    /// The seed of every draw (cut points, drops, duplicates, delays), so
    /// that a failing run can be repeated.
    pub seed: u64,
    /// Cut each connection (shut down both sides, abruptly) after a number of
    /// bytes, counted in both directions together, drawn uniformly from this
    /// inclusive range for each new connection. None: never cut.
    pub cut_after_bytes: Option<(u64, u64)>,
    /// Flip one byte (xor 0xFF) at each of these offsets of the client→server
    /// stream, offsets counted cumulatively over all connections since start.
    pub corrupt_up_at: Vec<u64>,
    /// The same for the server→client stream.
    pub corrupt_down_at: Vec<u64>,
    /// A one-way delay added to every chunk forwarded, in each direction,
    /// drawn uniformly from this inclusive range for each chunk. A chunk is
    /// never delivered before the one read before it in its direction, so
    /// bytes keep their order; delays do not add up (a burst of chunks read
    /// at once arrives about one delay later). A close, half-close or cut is
    /// passed on after the bytes read before it. A fixed delay is
    /// `Some((d, d))`; None: no delay.
    pub latency: Option<(Duration, Duration)>,
    /// The probability (0.0–1.0) that a new connection is accepted and
    /// closed at once, without connecting upstream.
    pub drop_connections: f64,
    /// The probability (0.0–1.0) that a new connection is duplicated: it is
    /// forwarded as usual, and a second upstream connection gets a copy of
    /// every byte the original delivers to the server (so the server sees
    /// each request twice); the second connection's answers are discarded.
    /// The copy is closed once the original's client side has ended and the
    /// copy has been quiet for a few seconds, so the server answers the last
    /// copied request in full.
    pub duplicate_requests: f64,
}

/// A TCP proxy on `127.0.0.1` that forwards to one upstream address and
/// injects the faults of a [`FaultPlan`].
///
/// It counts what it forwards, so that tests can check what a transfer cost.
/// Dropping it stops it and closes every connection still open.
pub struct FaultyProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

/// What the accept thread, the pumps and the handle share.
struct Shared {
    /// Where new connections go.
    upstream: Mutex<SocketAddr>,
    plan: Mutex<PlanState>,
    /// Bytes forwarded client→server; also the next global up offset.
    up: AtomicU64,
    /// Bytes forwarded server→client; also the next global down offset.
    down: AtomicU64,
    connections: AtomicU64,
    cuts: AtomicU64,
    corruptions: AtomicU64,
    drops: AtomicU64,
    duplicates: AtomicU64,
    /// Times a connection's traffic turned from client→server to
    /// server→client (see [`FaultyProxy::turns`]).
    turns: AtomicU64,
    stop: AtomicBool,
    /// Connections whose pumps are running, by id, so that drop can close them.
    live: Mutex<HashMap<u64, Arc<Conn>>>,
}

/// The plan in force for new connections, with its random state.
struct PlanState {
    cut_after_bytes: Option<(u64, u64)>,
    rng: u64,
    /// The draws of drops, duplicates and delay seeds.
    fault_rng: u64,
    latency: Option<(Duration, Duration)>,
    drop_connections: f64,
    duplicate_requests: f64,
    corrupt: Arc<Corruptions>,
}

/// What a new connection gets, drawn in accept order.
struct ConnPlan {
    budget: u64,
    drop: bool,
    duplicate: bool,
    latency: Option<(Duration, Duration)>,
    latency_seed: u64,
    corrupt: Arc<Corruptions>,
}

/// Global offsets to flip, sorted and without duplicates.
struct Corruptions {
    up: Vec<u64>,
    down: Vec<u64>,
}

/// One proxied connection, shared by its two pumps.
struct Conn {
    id: u64,
    client: TcpStream,
    server: TcpStream,
    /// Bytes that may still be forwarded, both directions together.
    budget: AtomicU64,
    /// Set once the proxy has cut this connection, so it counts one cut.
    cut: AtomicBool,
    corrupt: Arc<Corruptions>,
    /// Pumps still running; the last one out unregisters the connection.
    pumps_left: AtomicU8,
    /// The direction of the last bytes read on this connection: 0 none
    /// yet, 1 client→server, 2 server→client.
    last_dir: AtomicU8,
    latency: Option<(Duration, Duration)>,
    latency_seed: u64,
    /// The copy of what the server gets, for the duplicate connection, if
    /// this one is duplicated. Taken (closing the copy's queue) when the up
    /// direction ends.
    duplicate: Mutex<Option<Sender<Vec<u8>>>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    Up,
    Down,
}

/// What a pump passes on: bytes, or how its source ended.
enum Event<'a> {
    Data(&'a [u8]),
    /// The source ended normally: half-close the destination.
    HalfClose,
    /// The source broke, or the proxy cut the connection: close both sides.
    Abort,
}

/// An event waiting in a delayed direction's queue until `at`.
struct Delivery {
    at: Instant,
    what: Delayed,
}

enum Delayed {
    Data(Vec<u8>),
    HalfClose,
    Abort,
}

/// Where a pump puts what it reads: straight onto the other socket, or
/// into the delivery queue of a delayed direction.
enum Sink {
    Direct,
    Delayed {
        queue: SyncSender<Delivery>,
        rng: u64,
        range: (Duration, Duration),
        /// The delivery time of the previous event (never go before it).
        last: Instant,
    },
}

impl FaultyProxy {
    /// Listens on `127.0.0.1:0` and forwards each connection it accepts to
    /// `upstream`, with the faults of `plan`.
    pub fn start(upstream: SocketAddr, plan: FaultPlan) -> io::Result<FaultyProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream: Mutex::new(upstream),
            plan: Mutex::new(PlanState::new(&plan)),
            up: AtomicU64::new(0),
            down: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
            corruptions: AtomicU64::new(0),
            drops: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            turns: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            live: Mutex::new(HashMap::new()),
        });
        let accept = {
            let shared = shared.clone();
            thread::Builder::new()
                .name("faulty-proxy-accept".into())
                .spawn(move || accept_loop(listener, shared))?
        };
        Ok(FaultyProxy {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// The address the proxy listens on; clients connect here instead of to
    /// the upstream.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy's base URL, `http://127.0.0.1:PORT`, for HTTP clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where new connections are forwarded.
    pub fn upstream(&self) -> SocketAddr {
        *lock(&self.shared.upstream)
    }

    /// Forwards connections opened from now on to `upstream` (a server
    /// restarted on a new port); connections already open keep theirs.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *lock(&self.shared.upstream) = upstream;
    }

    /// Bytes forwarded client→server so far, over all connections, cut and
    /// partial ones included. A byte counts once it is handed to the socket
    /// (with a latency: once it is queued for delivery). Copies sent to
    /// duplicate connections are not counted.
    pub fn bytes_up(&self) -> u64 {
        self.shared.up.load(SeqCst)
    }

    /// Bytes forwarded server→client so far, counted as for
    /// [`bytes_up`](Self::bytes_up).
    pub fn bytes_down(&self) -> u64 {
        self.shared.down.load(SeqCst)
    }

    /// Connections accepted so far, dropped ones included.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(SeqCst)
    }

    /// Connections the proxy cut on purpose so far (not those that either
    /// side closed or broke).
    pub fn cuts(&self) -> u64 {
        self.shared.cuts.load(SeqCst)
    }

    /// Bytes flipped so far, both directions together.
    pub fn corruptions(&self) -> u64 {
        self.shared.corruptions.load(SeqCst)
    }

    /// Connections closed on purpose as soon as they were accepted.
    pub fn drops(&self) -> u64 {
        self.shared.drops.load(SeqCst)
    }

    /// How many times, over all connections, the traffic turned from
    /// client→server to server→client (the first bytes a server sends on a
    /// connection count as one): with a latency added, the round trips the
    /// client waited for. Counted when the proxy reads the bytes.
    pub fn turns(&self) -> u64 {
        self.shared.turns.load(SeqCst)
    }

    /// Connections duplicated so far (whose copy did connect upstream).
    pub fn duplicates(&self) -> u64 {
        self.shared.duplicates.load(SeqCst)
    }

    /// Replaces the plan for connections opened from now on; connections
    /// already open keep theirs. The counters, and the global offsets the
    /// corruptions refer to, carry on. The draws restart from the new seed.
    pub fn set_plan(&self, plan: FaultPlan) {
        *lock(&self.shared.plan) = PlanState::new(&plan);
    }
}

impl Drop for FaultyProxy {
    /// Stops accepting and closes the live connections abruptly. Pump threads
    /// are not waited for: with their sockets shut down they end at once
    /// (a delivery thread once its current delay is over; a duplicate within
    /// 50 ms).
    fn drop(&mut self) {
        self.shared.stop.store(true, SeqCst);
        // Wake the accept thread with a connection of our own; it sees the
        // stop flag and ends. Without the wake-up it could not be joined.
        let woke = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok();
        if let Some(accept) = self.accept.take() {
            if woke {
                let _ = accept.join();
            }
        }
        // A connection still setting up sees the stop flag when it registers
        // (under this same lock) and closes itself.
        let live = std::mem::take(&mut *lock(&self.shared.live));
        for conn in live.values() {
            conn.close_abruptly();
        }
    }
}

impl PlanState {
    fn new(plan: &FaultPlan) -> PlanState {
        let sorted = |offsets: &[u64]| {
            let mut v = offsets.to_vec();
            v.sort_unstable();
            v.dedup();
            v
        };
        PlanState {
            cut_after_bytes: plan.cut_after_bytes.map(|(a, b)| (a.min(b), a.max(b))),
            rng: plan.seed,
            fault_rng: plan.seed ^ FAULT_STREAM,
            latency: plan.latency.map(|(a, b)| (a.min(b), a.max(b))),
            drop_connections: plan.drop_connections,
            duplicate_requests: plan.duplicate_requests,
            corrupt: Arc::new(Corruptions {
                up: sorted(&plan.corrupt_up_at),
                down: sorted(&plan.corrupt_down_at),
            }),
        }
    }

    /// The byte budget of the next connection (`u64::MAX`: unlimited).
    fn next_budget(&mut self) -> u64 {
        match self.cut_after_bytes {
            None => u64::MAX,
            Some((lo, hi)) => {
                let span = u128::from(hi - lo) + 1;
                let r = u128::from(splitmix64(&mut self.rng));
                lo + ((r * span) >> 64) as u64
            }
        }
    }

    /// Everything the next connection gets. Every draw is made whatever the
    /// probabilities, so the n-th connection's draws depend only on the seed.
    fn next_conn(&mut self) -> ConnPlan {
        let budget = self.next_budget();
        let drop = chance(&mut self.fault_rng, self.drop_connections);
        let duplicate = chance(&mut self.fault_rng, self.duplicate_requests);
        let latency_seed = splitmix64(&mut self.fault_rng);
        ConnPlan {
            budget,
            drop,
            duplicate,
            latency: self.latency,
            latency_seed,
            corrupt: self.corrupt.clone(),
        }
    }
}

/// SplitMix64: a small, fast generator, enough for drawing cut points and
/// deterministic across platforms and versions.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// True with probability `p` (0 or less: never; 1 or more: always).
fn chance(rng: &mut u64, p: f64) -> bool {
    let u = (splitmix64(rng) >> 11) as f64 / (1u64 << 53) as f64;
    u < p
}

/// A delay drawn uniformly from the inclusive range `lo..=hi` (`lo <= hi`).
fn draw_delay(rng: &mut u64, (lo, hi): (Duration, Duration)) -> Duration {
    let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    let (lo, hi) = (nanos(lo), nanos(hi));
    let span = u128::from(hi - lo) + 1;
    let r = u128::from(splitmix64(rng));
    Duration::from_nanos(lo + ((r * span) >> 64) as u64)
}

/// Locks, ignoring poisoning: a pump that panicked leaves nothing half-done
/// in the guarded data.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut next_id = 0u64;
    loop {
        let accepted = listener.accept();
        if shared.stop.load(SeqCst) {
            return;
        }
        let client = match accepted {
            Ok((client, _)) => client,
            // Out of descriptors and the like: wait, do not spin.
            Err(_) => {
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        shared.connections.fetch_add(1, SeqCst);
        // Drawn here, in accept order, so the n-th connection always gets the
        // n-th draws.
        let plan = lock(&shared.plan).next_conn();
        if plan.drop {
            shared.drops.fetch_add(1, SeqCst);
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let id = next_id;
        next_id += 1;
        let conn_shared = shared.clone();
        // If the thread cannot be spawned the client is dropped, so closed.
        let _ = thread::Builder::new()
            .name("faulty-proxy-up".into())
            .spawn(move || run_connection(conn_shared, client, id, plan));
    }
}

/// Connects to the upstream (twice for a duplicated connection), then pumps
/// client→server on this thread and server→client on another.
fn run_connection(shared: Arc<Shared>, client: TcpStream, id: u64, plan: ConnPlan) {
    let upstream = *lock(&shared.upstream);
    let server = match TcpStream::connect(upstream) {
        Ok(server) => server,
        Err(_) => {
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
    };
    // The proxy must not add Nagle delays of its own to small writes.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let duplicate = if plan.duplicate {
        start_duplicate(&shared, upstream)
    } else {
        None
    };
    let conn = Arc::new(Conn {
        id,
        client,
        server,
        budget: AtomicU64::new(plan.budget),
        cut: AtomicBool::new(false),
        corrupt: plan.corrupt,
        pumps_left: AtomicU8::new(2),
        last_dir: AtomicU8::new(0),
        latency: plan.latency,
        latency_seed: plan.latency_seed,
        duplicate: Mutex::new(duplicate),
    });
    {
        let mut live = lock(&shared.live);
        if shared.stop.load(SeqCst) {
            conn.close_abruptly();
            conn.end_duplicate();
            return;
        }
        live.insert(id, conn.clone());
    }
    let down = {
        let shared = shared.clone();
        let conn = conn.clone();
        thread::Builder::new()
            .name("faulty-proxy-down".into())
            .spawn(move || pump(&shared, &conn, Dir::Down))
    };
    if down.is_err() {
        conn.close_abruptly();
        conn.end_duplicate();
        lock(&shared.live).remove(&id);
        return;
    }
    pump(&shared, &conn, Dir::Up);
}

/// The duplicate of a connection: a second upstream connection that a
/// writer thread feeds with copies of what the original delivers upstream,
/// and whose answers a reader thread discards. Returns the writer's queue,
/// or None if the copy could not be set up (then it is not counted).
fn start_duplicate(shared: &Arc<Shared>, upstream: SocketAddr) -> Option<Sender<Vec<u8>>> {
    let stream = TcpStream::connect(upstream).ok()?;
    let _ = stream.set_nodelay(true);
    let dup = Arc::new(Duplicate {
        stream,
        born: Instant::now(),
        active_ms: AtomicU64::new(0),
        reader_done: AtomicBool::new(false),
    });
    let reader = {
        let dup = dup.clone();
        thread::Builder::new()
            .name("faulty-proxy-dup-read".into())
            .spawn(move || dup.discard_answers())
    };
    if reader.is_err() {
        return None;
    }
    let (tx, rx) = mpsc::channel();
    let writer = {
        let dup = dup.clone();
        let shared = shared.clone();
        thread::Builder::new()
            .name("faulty-proxy-dup-write".into())
            .spawn(move || dup.write_copies(&shared, rx))
    };
    if writer.is_err() {
        // Wakes the reader, which then ends.
        let _ = dup.stream.shutdown(Shutdown::Both);
        return None;
    }
    shared.duplicates.fetch_add(1, SeqCst);
    Some(tx)
}

/// A duplicate connection (see [`start_duplicate`]).
struct Duplicate {
    stream: TcpStream,
    born: Instant,
    /// When a byte last went either way, in ms since `born`.
    active_ms: AtomicU64,
    /// Set once the server closed the copy (or it broke).
    reader_done: AtomicBool,
}

impl Duplicate {
    fn touch(&self) {
        self.active_ms
            .fetch_max(self.born.elapsed().as_millis() as u64, SeqCst);
    }

    fn quiet_for(&self) -> Duration {
        self.born
            .elapsed()
            .saturating_sub(Duration::from_millis(self.active_ms.load(SeqCst)))
    }

    fn discard_answers(&self) {
        let mut buf = [0u8; BUF_SIZE];
        loop {
            match (&self.stream).read(&mut buf) {
                Ok(0) => break,
                Ok(_) => self.touch(),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        self.reader_done.store(true, SeqCst);
    }

    /// Writes the copies until the original's up direction ends, then keeps
    /// the copy open until the server has answered (it went quiet, or
    /// closed), and closes it.
    fn write_copies(&self, shared: &Shared, copies: Receiver<Vec<u8>>) {
        let mut broken = false;
        for chunk in copies {
            if !broken {
                self.touch();
                broken = (&self.stream).write_all(&chunk).is_err();
            }
        }
        let ended = Instant::now();
        while !broken
            && !self.reader_done.load(SeqCst)
            && !shared.stop.load(SeqCst)
            && self.quiet_for() < DUP_QUIET
            && ended.elapsed() < DUP_LINGER_MAX
        {
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// Forwards one direction of `conn` until the source ends, either side
/// breaks, or the budget runs out; with a latency, through a delivery
/// thread, and returns once that has delivered everything.
fn pump(shared: &Shared, conn: &Conn, dir: Dir) {
    match conn.latency {
        None => forward(shared, conn, dir, &mut Sink::Direct),
        Some(range) => {
            let (queue, deliveries) = mpsc::sync_channel(DELAY_QUEUE_CHUNKS);
            thread::scope(|s| {
                let delivery = thread::Builder::new()
                    .name("faulty-proxy-delay".into())
                    .spawn_scoped(s, || deliver(conn, dir, deliveries));
                if delivery.is_err() {
                    conn.close_abruptly();
                    return;
                }
                let salt = match dir {
                    Dir::Up => 0,
                    Dir::Down => DOWN_STREAM,
                };
                let mut sink = Sink::Delayed {
                    queue,
                    rng: conn.latency_seed ^ salt,
                    range,
                    last: Instant::now(),
                };
                forward(shared, conn, dir, &mut sink);
                // Dropping the sink closes the queue: the delivery thread
                // ends after the last event, and the scope waits for it.
            });
        }
    }
    if dir == Dir::Up {
        conn.end_duplicate();
    }
    if conn.pumps_left.fetch_sub(1, SeqCst) == 1 {
        lock(&shared.live).remove(&conn.id);
    }
}

/// Reads one direction of `conn` and hands what it reads to `sink`.
fn forward(shared: &Shared, conn: &Conn, dir: Dir, sink: &mut Sink) {
    let (mut from, forwarded, offsets) = match dir {
        Dir::Up => (&conn.client, &shared.up, &conn.corrupt.up),
        Dir::Down => (&conn.server, &shared.down, &conn.corrupt.down),
    };
    let mut buf = [0u8; BUF_SIZE];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => {
                // A normal close: pass the half-close on, and let the other
                // direction carry on (an HTTP answer after the request).
                sink.send(conn, dir, Event::HalfClose);
                break;
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                sink.send(conn, dir, Event::Abort);
                break;
            }
        };
        let allowed = conn.take_budget(n as u64) as usize;
        if allowed > 0 {
            let chunk = &mut buf[..allowed];
            // fetch_add reserves a contiguous range of global offsets for
            // this chunk, unique even with other connections' pumps of the
            // same direction running at once.
            let base = forwarded.fetch_add(allowed as u64, SeqCst);
            let now = if dir == Dir::Up { 1 } else { 2 };
            if conn.last_dir.swap(now, SeqCst) != 2 && now == 2 {
                shared.turns.fetch_add(1, SeqCst);
            }
            let flipped = flip(chunk, base, offsets);
            if flipped > 0 {
                shared.corruptions.fetch_add(flipped, SeqCst);
            }
            if !sink.send(conn, dir, Event::Data(chunk)) {
                break;
            }
        }
        if allowed < n {
            if !conn.cut.swap(true, SeqCst) {
                shared.cuts.fetch_add(1, SeqCst);
            }
            sink.send(conn, dir, Event::Abort);
            break;
        }
    }
}

impl Sink {
    /// Passes `event` on, now or into the delivery queue. False once the
    /// connection is broken (nothing more can be delivered).
    fn send(&mut self, conn: &Conn, dir: Dir, event: Event<'_>) -> bool {
        match self {
            Sink::Direct => match event {
                Event::Data(bytes) => conn.deliver(dir, bytes),
                Event::HalfClose => {
                    let _ = conn.dest(dir).shutdown(Shutdown::Write);
                    true
                }
                Event::Abort => {
                    conn.close_abruptly();
                    false
                }
            },
            Sink::Delayed {
                queue,
                rng,
                range,
                last,
            } => {
                let at = (Instant::now() + draw_delay(rng, *range)).max(*last);
                *last = at;
                let what = match event {
                    Event::Data(bytes) => Delayed::Data(bytes.to_vec()),
                    Event::HalfClose => Delayed::HalfClose,
                    Event::Abort => Delayed::Abort,
                };
                queue.send(Delivery { at, what }).is_ok()
            }
        }
    }
}

/// The delivery thread of a delayed direction: waits for each event's time
/// and passes it on, in queue order.
fn deliver(conn: &Conn, dir: Dir, deliveries: Receiver<Delivery>) {
    for Delivery { at, what } in deliveries {
        let now = Instant::now();
        if at > now {
            thread::sleep(at - now);
        }
        match what {
            Delayed::Data(bytes) => {
                if !conn.deliver(dir, &bytes) {
                    return;
                }
            }
            Delayed::HalfClose => {
                let _ = conn.dest(dir).shutdown(Shutdown::Write);
            }
            Delayed::Abort => {
                conn.close_abruptly();
                return;
            }
        }
    }
}

/// Flips the bytes of `chunk`, which starts at global offset `base`, whose
/// offsets are in `offsets` (sorted). Returns how many it flipped.
fn flip(chunk: &mut [u8], base: u64, offsets: &[u64]) -> u64 {
    let end = base + chunk.len() as u64;
    let first = offsets.partition_point(|&o| o < base);
    let mut flipped = 0;
    for &o in offsets[first..].iter().take_while(|&&o| o < end) {
        chunk[(o - base) as usize] ^= 0xFF;
        flipped += 1;
    }
    flipped
}

impl Conn {
    /// Takes up to `want` bytes from the budget; returns how many it got.
    fn take_budget(&self, want: u64) -> u64 {
        match self
            .budget
            .fetch_update(SeqCst, SeqCst, |left| Some(left - left.min(want)))
        {
            Ok(left) | Err(left) => left.min(want),
        }
    }

    /// The socket a direction writes to.
    fn dest(&self, dir: Dir) -> &TcpStream {
        match dir {
            Dir::Up => &self.server,
            Dir::Down => &self.client,
        }
    }

    /// Writes `bytes` to the direction's destination (and, going up, to
    /// the duplicate's queue). False, with the connection closed, if the
    /// write failed.
    fn deliver(&self, dir: Dir, bytes: &[u8]) -> bool {
        if self.dest(dir).write_all(bytes).is_err() {
            self.close_abruptly();
            return false;
        }
        if dir == Dir::Up {
            if let Some(copy) = lock(&self.duplicate).as_ref() {
                let _ = copy.send(bytes.to_vec());
            }
        }
        true
    }

    /// Closes the duplicate's queue: it gets nothing more, and closes once
    /// the server has answered what it got.
    fn end_duplicate(&self) {
        lock(&self.duplicate).take();
    }

    /// Shuts both sockets down in both directions, which also wakes both
    /// pumps out of their reads and writes.
    fn close_abruptly(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// An echo server on `127.0.0.1:0`: each connection gets back what it
    /// sends, and a half-close once the client half-closes.
    fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                thread::spawn(move || {
                    let mut buf = [0u8; BUF_SIZE];
                    loop {
                        match (&stream).read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if (&stream).write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = stream.shutdown(Shutdown::Write);
                });
            }
        });
        addr
    }

    /// Every connection's bytes as an upstream received them, in accept order.
    type Received = Arc<Mutex<Vec<Arc<Mutex<Vec<u8>>>>>>;

    /// An echo server that also keeps what each connection sent.
    fn recording_server() -> (SocketAddr, Received) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let received: Received = Arc::default();
        let all = received.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let mine = Arc::new(Mutex::new(Vec::new()));
                lock(&all).push(mine.clone());
                thread::spawn(move || {
                    let mut buf = [0u8; BUF_SIZE];
                    loop {
                        match (&stream).read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                lock(&mine).extend_from_slice(&buf[..n]);
                                if (&stream).write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = stream.shutdown(Shutdown::Write);
                });
            }
        });
        (addr, received)
    }

    /// A server that answers every connection with `tag` and closes it.
    fn tag_server(tag: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.write_all(tag);
            }
        });
        addr
    }

    fn pattern(seed: u64, len: usize) -> Vec<u8> {
        let mut state = seed;
        (0..len).map(|_| splitmix64(&mut state) as u8).collect()
    }

    /// Sends `data` over a new connection to `addr`, half-closes, and returns
    /// what came back before the end of the stream (or an error: a cut).
    fn exchange(addr: SocketAddr, data: &[u8]) -> Vec<u8> {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        thread::scope(|s| {
            s.spawn(|| {
                // A cut may fail the write; what got through is checked by
                // the caller.
                let _ = (&stream).write_all(data);
                let _ = stream.shutdown(Shutdown::Write);
            });
            let mut got = Vec::new();
            let mut buf = [0u8; BUF_SIZE];
            loop {
                match (&stream).read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        panic!("no end of stream after 30 s")
                    }
                    Err(_) => break,
                }
            }
            got
        })
    }

    #[test]
    fn proxy_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<FaultyProxy>();
    }

    #[test]
    fn without_faults_a_megabyte_goes_through_unchanged() {
        let proxy = FaultyProxy::start(echo_server(), FaultPlan::default()).unwrap();
        let data = pattern(1, 1 << 20);
        let got = exchange(proxy.addr(), &data);
        assert!(got == data, "echo differs ({} bytes back)", got.len());
        assert_eq!(proxy.bytes_up(), 1 << 20);
        assert_eq!(proxy.bytes_down(), 1 << 20);
        assert_eq!(proxy.connections(), 1);
        assert_eq!(proxy.cuts(), 0);
        assert_eq!(proxy.corruptions(), 0);
        assert!(proxy.url().starts_with("http://127.0.0.1:"));
    }

    #[test]
    fn a_connection_is_cut_after_exactly_its_budget() {
        let plan = FaultPlan {
            cut_after_bytes: Some((1000, 1000)),
            ..FaultPlan::default()
        };
        let proxy = FaultyProxy::start(echo_server(), plan).unwrap();
        let data = pattern(2, 5000);
        let got = exchange(proxy.addr(), &data);
        assert_eq!(proxy.bytes_up() + proxy.bytes_down(), 1000);
        assert_eq!(proxy.cuts(), 1);
        assert_eq!(proxy.connections(), 1);
        assert_eq!(got.len() as u64, proxy.bytes_down());
        assert_eq!(got[..], data[..got.len()]);
    }

    #[test]
    fn corruption_offsets_are_global_over_connections() {
        let plan = FaultPlan {
            corrupt_up_at: vec![10, 70_000],
            ..FaultPlan::default()
        };
        let proxy = FaultyProxy::start(echo_server(), plan).unwrap();
        for (i, flipped_at) in [(0u64, 10usize), (1, 20_000)] {
            let data = pattern(3 + i, 50_000);
            let got = exchange(proxy.addr(), &data);
            let mut want = data.clone();
            want[flipped_at] ^= 0xFF;
            assert_eq!(got.len(), want.len());
            let differ: Vec<usize> = (0..got.len()).filter(|&j| got[j] != data[j]).collect();
            assert_eq!(differ, [flipped_at], "connection {i}");
            assert!(got == want);
        }
        assert_eq!(proxy.corruptions(), 2);
        assert_eq!(proxy.bytes_up(), 100_000);
        assert_eq!(proxy.bytes_down(), 100_000);
        assert_eq!(proxy.connections(), 2);
    }

    #[test]
    fn concurrent_connections_flip_each_offset_once() {
        // Every 1000th byte of the up stream, over 4 × 100 000 bytes sent at
        // once: each offset lands in exactly one connection's chunk.
        let offsets: Vec<u64> = (0..400).map(|k| k * 1000 + 7).collect();
        let plan = FaultPlan {
            corrupt_up_at: offsets.clone(),
            ..FaultPlan::default()
        };
        let proxy = FaultyProxy::start(echo_server(), plan).unwrap();
        let flipped: usize = thread::scope(|s| {
            let handles: Vec<_> = (0..4u64)
                .map(|i| {
                    let addr = proxy.addr();
                    s.spawn(move || {
                        let data = pattern(10 + i, 100_000);
                        let got = exchange(addr, &data);
                        assert_eq!(got.len(), data.len());
                        (0..got.len()).filter(|&j| got[j] != data[j]).count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(flipped, offsets.len());
        assert_eq!(proxy.corruptions(), offsets.len() as u64);
        assert_eq!(proxy.bytes_up(), 400_000);
    }

    #[test]
    fn drop_returns_promptly_with_an_idle_connection_open() {
        let proxy = FaultyProxy::start(echo_server(), FaultPlan::default()).unwrap();
        let mut client = TcpStream::connect(proxy.addr()).unwrap();
        client.write_all(b"ping").unwrap();
        let mut echo = [0u8; 4];
        client.read_exact(&mut echo).unwrap();
        assert_eq!(&echo, b"ping");
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();

        let started = Instant::now();
        drop(proxy);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "drop took {:?}",
            started.elapsed()
        );
        // The client sees its connection end rather than hang.
        let mut buf = [0u8; 16];
        match client.read(&mut buf) {
            Ok(0) => {}
            Err(e) if !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            other => panic!("connection still open after drop: {other:?}"),
        }
    }

    #[test]
    fn cut_points_are_deterministic_and_in_range() {
        let plan = FaultPlan {
            seed: 42,
            cut_after_bytes: Some((100, 200)),
            ..FaultPlan::default()
        };
        let draws = |plan: &FaultPlan| {
            let mut state = PlanState::new(plan);
            (0..1000).map(|_| state.next_budget()).collect::<Vec<_>>()
        };
        let a = draws(&plan);
        assert_eq!(a, draws(&plan));
        assert!(a.iter().all(|b| (100..=200).contains(b)));
        assert!(a.contains(&100) && a.contains(&200));
        let full = FaultPlan {
            cut_after_bytes: Some((0, u64::MAX)),
            ..FaultPlan::default()
        };
        draws(&full);
        assert_eq!(draws(&FaultPlan::default())[0], u64::MAX);
    }
    #[test]
    fn latency_delays_each_chunk_once_and_keeps_the_order() {
        let delay = Duration::from_millis(300);
        let plan = FaultPlan {
            latency: Some((delay, delay)),
            ..FaultPlan::default()
        };
        let proxy = FaultyProxy::start(echo_server(), plan).unwrap();

        // One small round trip: one delay up, one down.
        let mut client = TcpStream::connect(proxy.addr()).unwrap();
        client.set_nodelay(true).unwrap();
        let started = Instant::now();
        client.write_all(b"ping").unwrap();
        let mut echo = [0u8; 4];
        client.read_exact(&mut echo).unwrap();
        let rtt = started.elapsed();
        assert_eq!(&echo, b"ping");
        assert!(rtt >= 2 * delay, "round trip {rtt:?}");
        drop(client);

        // A megabyte is at least 128 chunks each way. Delays that added up
        // would take 128 × 2 × 300 ms; delays per chunk that overlap take
        // about one round trip. The half-close after it arrives after the
        // bytes (or the echo would be short).
        let data = pattern(20, 1 << 20);
        let started = Instant::now();
        let got = exchange(proxy.addr(), &data);
        let took = started.elapsed();
        assert!(got == data, "echo differs ({} bytes back)", got.len());
        assert!(took >= 2 * delay, "a megabyte took {took:?}");
        assert!(
            took < Duration::from_secs(8),
            "a megabyte took {took:?}: the delays add up"
        );
    }

    #[test]
    fn random_delays_never_reorder_bytes() {
        let plan = FaultPlan {
            seed: 5,
            latency: Some((Duration::from_millis(0), Duration::from_millis(40))),
            ..FaultPlan::default()
        };
        let proxy = FaultyProxy::start(echo_server(), plan).unwrap();
        thread::scope(|s| {
            for i in 0..4u64 {
                let addr = proxy.addr();
                s.spawn(move || {
                    let data = pattern(30 + i, 300_000);
                    let got = exchange(addr, &data);
                    assert!(got == data, "connection {i}: echo differs");
                });
            }
        });
        // A small message and its half-close arrive in order too.
        for i in 0..20u64 {
            let data = pattern(40 + i, 10 + i as usize);
            assert_eq!(exchange(proxy.addr(), &data), data);
        }
        assert_eq!(proxy.bytes_up(), 4 * 300_000 + (10..30).sum::<u64>());
    }

    #[test]
    fn a_cut_with_latency_comes_after_the_bytes_before_it() {
        let plan = FaultPlan {
            cut_after_bytes: Some((1000, 1000)),
            latency: Some((Duration::from_millis(50), Duration::from_millis(50))),
            ..FaultPlan::default()
        };
        let proxy = FaultyProxy::start(echo_server(), plan).unwrap();
        let data = pattern(2, 5000);
        let got = exchange(proxy.addr(), &data);
        assert_eq!(proxy.bytes_up() + proxy.bytes_down(), 1000);
        assert_eq!(proxy.cuts(), 1);
        assert_eq!(got[..], data[..got.len()]);
    }

    #[test]
    fn dropped_connections_never_reach_the_upstream() {
        let (upstream, received) = recording_server();
        let plan = FaultPlan {
            drop_connections: 1.0,
            ..FaultPlan::default()
        };
        let proxy = FaultyProxy::start(upstream, plan).unwrap();
        for _ in 0..3 {
            let mut client = TcpStream::connect(proxy.addr()).unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let _ = client.write_all(b"GET / HTTP/1.1\r\n\r\n");
            let mut buf = [0u8; 16];
            match client.read(&mut buf) {
                Ok(0) => {}
                Err(e) if !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                other => panic!("a dropped connection answered: {other:?}"),
            }
        }
        assert_eq!(proxy.drops(), 3);
        assert_eq!(proxy.connections(), 3);
        assert_eq!(proxy.bytes_up(), 0);
        thread::sleep(Duration::from_millis(100));
        assert_eq!(lock(&received).len(), 0, "the upstream saw a connection");

        // Back to no drops for new connections.
        proxy.set_plan(FaultPlan::default());
        let data = pattern(7, 1000);
        assert_eq!(exchange(proxy.addr(), &data), data);
        assert_eq!(proxy.drops(), 3);
    }

    #[test]
    fn duplicated_connections_send_the_upstream_everything_twice() {
        let (upstream, received) = recording_server();
        let plan = FaultPlan {
            duplicate_requests: 1.0,
            ..FaultPlan::default()
        };
        let proxy = FaultyProxy::start(upstream, plan).unwrap();
        let data = pattern(8, 100_000);
        // The client gets one answer: the copy's is discarded.
        let got = exchange(proxy.addr(), &data);
        assert!(got == data, "echo differs ({} bytes back)", got.len());
        assert_eq!(proxy.duplicates(), 1);
        assert_eq!(proxy.connections(), 1);
        assert_eq!(proxy.bytes_up(), 100_000);
        assert_eq!(proxy.bytes_down(), 100_000);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let seen: Vec<Vec<u8>> = lock(&received).iter().map(|c| lock(c).clone()).collect();
            if seen.len() == 2 && seen.iter().all(|c| *c == data) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the upstream saw {:?} bytes on its connections",
                seen.iter().map(Vec::len).collect::<Vec<_>>()
            );
            thread::sleep(Duration::from_millis(20));
        }

        // With a latency the copy gets the same bytes.
        proxy.set_plan(FaultPlan {
            duplicate_requests: 1.0,
            latency: Some((Duration::from_millis(1), Duration::from_millis(20))),
            ..FaultPlan::default()
        });
        let data2 = pattern(9, 50_000);
        assert_eq!(exchange(proxy.addr(), &data2), data2);
        assert_eq!(proxy.duplicates(), 2);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let seen: Vec<Vec<u8>> = lock(&received).iter().map(|c| lock(c).clone()).collect();
            if seen.len() == 4 && seen[2..].iter().all(|c| *c == data2) {
                break;
            }
            assert!(Instant::now() < deadline, "the copy did not arrive");
            thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn set_upstream_moves_new_connections() {
        let (a, b) = (tag_server(b"A"), tag_server(b"B"));
        let proxy = FaultyProxy::start(a, FaultPlan::default()).unwrap();
        assert_eq!(exchange(proxy.addr(), b""), b"A");
        proxy.set_upstream(b);
        assert_eq!(proxy.upstream(), b);
        assert_eq!(exchange(proxy.addr(), b""), b"B");
        assert_eq!(proxy.connections(), 2);
    }

    #[test]
    fn drops_and_duplicates_are_deterministic_and_leave_the_cuts_alone() {
        let plan = FaultPlan {
            seed: 7,
            cut_after_bytes: Some((100, 200)),
            drop_connections: 0.3,
            duplicate_requests: 0.1,
            latency: Some((Duration::from_millis(20), Duration::from_millis(200))),
            ..FaultPlan::default()
        };
        let draws = |plan: &FaultPlan| {
            let mut state = PlanState::new(plan);
            (0..2000)
                .map(|_| {
                    let c = state.next_conn();
                    (c.budget, c.drop, c.duplicate, c.latency_seed)
                })
                .collect::<Vec<_>>()
        };
        let a = draws(&plan);
        assert_eq!(a, draws(&plan));
        let drops = a.iter().filter(|c| c.1).count();
        let dups = a.iter().filter(|c| c.2).count();
        assert!((450..750).contains(&drops), "{drops} drops of 2000");
        assert!((120..280).contains(&dups), "{dups} duplicates of 2000");
        // The cut points are those of the same seed without the new faults.
        let cuts_only = FaultPlan {
            seed: 7,
            cut_after_bytes: Some((100, 200)),
            ..FaultPlan::default()
        };
        let mut state = PlanState::new(&cuts_only);
        let budgets: Vec<u64> = (0..2000).map(|_| state.next_budget()).collect();
        assert_eq!(a.iter().map(|c| c.0).collect::<Vec<_>>(), budgets);
        // Never and always.
        let mut never = PlanState::new(&FaultPlan::default());
        assert!((0..1000).all(|_| {
            let c = never.next_conn();
            !c.drop && !c.duplicate && c.latency.is_none()
        }));
        let mut always = PlanState::new(&FaultPlan {
            drop_connections: 1.0,
            duplicate_requests: 1.0,
            ..FaultPlan::default()
        });
        assert!((0..1000).all(|_| {
            let c = always.next_conn();
            c.drop && c.duplicate
        }));
        // Delays stay in their range, both ends included.
        let mut rng = 3;
        let range = (Duration::from_nanos(10), Duration::from_nanos(12));
        let d: Vec<Duration> = (0..1000).map(|_| draw_delay(&mut rng, range)).collect();
        assert!(d.iter().all(|d| (range.0..=range.1).contains(d)));
        assert!(d.contains(&range.0) && d.contains(&range.1));
    }
}
