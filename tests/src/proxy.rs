//! A fault-injecting TCP proxy for end-to-end tests and benchmarks.
//!
//! [`FaultyProxy`] sits between a client and a real server on loopback and
//! forwards bytes both ways, while doing what a bad mobile link does: it cuts
//! connections part-way through and flips bytes. The tests of resumable
//! attachment uploads and the 2G benchmark use it to check that the client
//! gets a whole, correct attachment across many broken connections, and to
//! count what each retry cost on the wire.
//!
//! What it does is set by a [`FaultPlan`] and is deterministic for a given
//! seed: the n-th connection gets the same cut point every run, and the
//! corrupted bytes sit at fixed offsets of each direction's stream.
//!
//! It uses std threads and blocking sockets: one thread accepts, and each
//! connection has two pump threads, one per direction, each forwarding in
//! reads of at most 8 KiB.

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// The size of each pump's read buffer, so the largest chunk forwarded at once.
const BUF_SIZE: usize = 8 * 1024;

/// What the proxy does to the traffic. Deterministic for a given seed.
#[derive(Clone, Debug, Default)]
pub struct FaultPlan {
    /// The seed of the draws of [`cut_after_bytes`](Self::cut_after_bytes),
    /// so that a failing run can be repeated.
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
    upstream: SocketAddr,
    plan: Mutex<PlanState>,
    /// Bytes forwarded client→server; also the next global up offset.
    up: AtomicU64,
    /// Bytes forwarded server→client; also the next global down offset.
    down: AtomicU64,
    connections: AtomicU64,
    cuts: AtomicU64,
    corruptions: AtomicU64,
    stop: AtomicBool,
    /// Connections whose pumps are running, by id, so that drop can close them.
    live: Mutex<HashMap<u64, Arc<Conn>>>,
}

/// The plan in force for new connections, with its random state.
struct PlanState {
    cut_after_bytes: Option<(u64, u64)>,
    rng: u64,
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
}

#[derive(Clone, Copy)]
enum Dir {
    Up,
    Down,
}

impl FaultyProxy {
    /// Listens on `127.0.0.1:0` and forwards each connection it accepts to
    /// `upstream`, with the faults of `plan`.
    pub fn start(upstream: SocketAddr, plan: FaultPlan) -> io::Result<FaultyProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            plan: Mutex::new(PlanState::new(&plan)),
            up: AtomicU64::new(0),
            down: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
            corruptions: AtomicU64::new(0),
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

    /// Bytes forwarded client→server so far, over all connections, cut and
    /// partial ones included. A byte counts once it is handed to the socket.
    pub fn bytes_up(&self) -> u64 {
        self.shared.up.load(SeqCst)
    }

    /// Bytes forwarded server→client so far, counted as for
    /// [`bytes_up`](Self::bytes_up).
    pub fn bytes_down(&self) -> u64 {
        self.shared.down.load(SeqCst)
    }

    /// Connections accepted so far.
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

    /// Replaces the plan for connections opened from now on; connections
    /// already open keep theirs. The counters, and the global offsets the
    /// corruptions refer to, carry on. The cut draws restart from the new
    /// seed.
    pub fn set_plan(&self, plan: FaultPlan) {
        *lock(&self.shared.plan) = PlanState::new(&plan);
    }
}

impl Drop for FaultyProxy {
    /// Stops accepting and closes the live connections abruptly. Pump threads
    /// are not waited for: with their sockets shut down they end at once.
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
        // n-th draw.
        let (budget, corrupt) = {
            let mut plan = lock(&shared.plan);
            (plan.next_budget(), plan.corrupt.clone())
        };
        let id = next_id;
        next_id += 1;
        let conn_shared = shared.clone();
        // If the thread cannot be spawned the client is dropped, so closed.
        let _ = thread::Builder::new()
            .name("faulty-proxy-up".into())
            .spawn(move || run_connection(conn_shared, client, id, budget, corrupt));
    }
}

/// Connects to the upstream, then pumps client→server on this thread and
/// server→client on another.
fn run_connection(
    shared: Arc<Shared>,
    client: TcpStream,
    id: u64,
    budget: u64,
    corrupt: Arc<Corruptions>,
) {
    let server = match TcpStream::connect(shared.upstream) {
        Ok(server) => server,
        Err(_) => {
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
    };
    // The proxy must not add Nagle delays of its own to small writes.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let conn = Arc::new(Conn {
        id,
        client,
        server,
        budget: AtomicU64::new(budget),
        cut: AtomicBool::new(false),
        corrupt,
        pumps_left: AtomicU8::new(2),
    });
    {
        let mut live = lock(&shared.live);
        if shared.stop.load(SeqCst) {
            conn.close_abruptly();
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
        lock(&shared.live).remove(&id);
        return;
    }
    pump(&shared, &conn, Dir::Up);
}

/// Forwards one direction of `conn` until the source ends, either side
/// breaks, or the budget runs out.
fn pump(shared: &Shared, conn: &Conn, dir: Dir) {
    let (mut from, mut to, forwarded, offsets) = match dir {
        Dir::Up => (&conn.client, &conn.server, &shared.up, &conn.corrupt.up),
        Dir::Down => (&conn.server, &conn.client, &shared.down, &conn.corrupt.down),
    };
    let mut buf = [0u8; BUF_SIZE];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => {
                // A normal close: pass the half-close on, and let the other
                // direction carry on (an HTTP answer after the request).
                let _ = to.shutdown(Shutdown::Write);
                break;
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                conn.close_abruptly();
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
            let flipped = flip(chunk, base, offsets);
            if flipped > 0 {
                shared.corruptions.fetch_add(flipped, SeqCst);
            }
            if to.write_all(chunk).is_err() {
                conn.close_abruptly();
                break;
            }
        }
        if allowed < n {
            if !conn.cut.swap(true, SeqCst) {
                shared.cuts.fetch_add(1, SeqCst);
            }
            conn.close_abruptly();
            break;
        }
    }
    if conn.pumps_left.fetch_sub(1, SeqCst) == 1 {
        lock(&shared.live).remove(&conn.id);
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
}
