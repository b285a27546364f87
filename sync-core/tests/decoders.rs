//! Requirement: "Every decoder is total: any byte string decodes or returns an
//! error; none panics."
//!
//! Every entry point that takes bytes (or text) from outside is fed
//!
//! * fully random bytes, and
//! * mutated valid inputs: real requests, responses and bundles produced by
//!   real sessions over replicas holding books, with bits flipped, ranges
//!   truncated, inserted, removed and duplicated, at three depths:
//!   the frame (mostly stops at the deflate layer), the postcard payload
//!   (re-framed, raw or deflated), and the Automerge bytes inside the message
//!   (changes, whole documents, Automerge sync messages and the changes inside
//!   them, with chunk checksums re-computed so the mutation reaches
//!   Automerge's column decoders), re-encoded with `Message::encode`.
//!
//! Besides "no panic", each property checks the contract around it: a refused
//! request writes nothing, a failed import or receive changes nothing stored,
//! and whatever is accepted reloads from storage and is on its schema.
//!
//! Case counts: `TPSYNC_DECODER_CASES` sets the base count per property; else
//! a quarter of `TPSYNC_PROPTEST_CASES` (which the heavier convergence
//! property uses); else 256. Each property runs 2 to 16 times the base, by
//! how cheap its cases are (about 10 s in all on 2 cores in the dev profile).
//! `TPSYNC_DECODERS_BACKTRACE=1` adds a backtrace to the report of a panic.
//! Run with `--nocapture` to see, per property, how its inputs ended (which
//! refusal, which error) and how many panics sync-core contained.
//!
//! The last section holds one regression test per bug these properties
//! found (nine, all fixed), with its minimal input.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Once, OnceLock};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use sha2::{Digest, Sha256};
use sync_core::records::{Book, BookStatus};
use sync_core::store::{KeyPrefix, MemoryStorage, Storage, StorageKey};
use sync_core::sync::packed::{self, Dep, PackedChange};
use sync_core::sync::{
    export_bundle, import_bundle, respond, AllowAll, BundleScope, ChangeData, DocReply, DocRequest,
    Message, ResponderLimits, SyncSession,
};
use sync_core::{
    ActorId, ChangeHash, CountyId, DocId, DocKind, EditContext, PeerDocState, PeerId, RecordDoc,
    RecordId, Replica, SchoolId,
};

// ---------------------------------------------------------------------------
// Running properties: case counts, panic capture, outcome statistics.
// ---------------------------------------------------------------------------

fn base_cases() -> u32 {
    let env = |k: &str| std::env::var(k).ok().and_then(|s| s.parse::<u32>().ok());
    env("TPSYNC_DECODER_CASES")
        .or_else(|| env("TPSYNC_PROPTEST_CASES").map(|n| n / 4))
        .unwrap_or(256)
        .max(1)
}

thread_local! {
    /// Set while running code under test: panics are then recorded, not printed.
    static QUIET: Cell<bool> = const { Cell::new(false) };
    /// The last panic on this thread, with its location.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Panics on this thread (contained or not) while QUIET.
    static PANICS: Cell<usize> = const { Cell::new(0) };
    /// How the inputs of the running property ended, by class.
    static OUTCOMES: RefCell<BTreeMap<String, usize>> = const { RefCell::new(BTreeMap::new()) };
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.with(|q| q.get()) {
                let payload = info.payload();
                let msg = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "<non-string panic payload>".into());
                let at = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                let trace = if std::env::var_os("TPSYNC_DECODERS_BACKTRACE").is_some() {
                    format!("\n{}", std::backtrace::Backtrace::force_capture())
                } else {
                    String::new()
                };
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{msg} (at {at}){trace}")));
                PANICS.with(|n| n.set(n.get() + 1));
            } else {
                default(info);
            }
        }));
    });
}

/// Runs code under test; a panic that escapes it fails the property.
fn guard<T>(what: &str, f: impl FnOnce() -> T) -> Result<Option<T>, TestCaseError> {
    install_panic_hook();
    QUIET.with(|q| q.set(true));
    LAST_PANIC.with(|p| p.borrow_mut().take());
    let r = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    match r {
        Ok(v) => Ok(Some(v)),
        Err(_) => {
            let panic = LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| "unknown panic".into());
            Err(TestCaseError::fail(format!("{what} panicked: {panic}")))
        }
    }
}

fn note(class: impl Into<String>) {
    OUTCOMES.with(|o| *o.borrow_mut().entry(class.into()).or_default() += 1);
}

/// A short, stable class for an error message (its first few words).
fn class_of(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().take(7).collect();
    words
        .join(" ")
        .chars()
        .filter(|c| !c.is_ascii_digit())
        .collect()
}

fn run<S: Strategy>(
    name: &str,
    weight: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    install_panic_hook();
    OUTCOMES.with(|o| o.borrow_mut().clear());
    PANICS.with(|n| n.set(0));
    let cases = base_cases() * weight;
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2048,
        ..Config::default()
    };
    let started = std::time::Instant::now();
    let result = TestRunner::new(config).run(&strategy, test);
    let mut report = format!(
        "{name}: {cases} cases in {:.1?}; panics raised inside the code under test: {} (contained unless reported)\n",
        started.elapsed(),
        PANICS.with(|n| n.get())
    );
    OUTCOMES.with(|o| {
        for (class, n) in o.borrow().iter() {
            report.push_str(&format!("    {n:6}  {class}\n"));
        }
    });
    eprint!("{report}");
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

// ---------------------------------------------------------------------------
// Fixtures: real replicas, real sessions, real messages.
// ---------------------------------------------------------------------------

fn school() -> SchoolId {
    SchoolId::new("4301230001").unwrap()
}

fn doc(kind: DocKind) -> DocId {
    DocId::school(&school(), kind).unwrap()
}

fn books() -> DocId {
    doc(DocKind::Books)
}

fn scope() -> Vec<DocId> {
    vec![doc(DocKind::Books), doc(DocKind::Equipment)]
}

fn client_peer() -> PeerId {
    "phone-1".parse().unwrap()
}

fn server_peer() -> PeerId {
    "server".parse().unwrap()
}

fn actor(n: u8) -> ActorId {
    ActorId::from(vec![n; 16])
}

fn ctx(n: u32) -> EditContext {
    EditContext {
        user: "teacher-1".parse().unwrap(),
        device: "phone-1".parse().unwrap(),
        now_ms: 1_700_000_000_000 + i64::from(n) * 1000,
    }
}

fn book(n: u32) -> Book {
    Book {
        reg_no: format!("TS{n:06}"),
        isbn: None,
        title: format!("书{n}"),
        author: Some("吴承恩".into()),
        publisher: None,
        pub_year: Some(2001),
        clc_class: None,
        price_fen: Some(1000),
        copies: 1,
        shelf: Some("A-1".into()),
        received_on: None,
        status: BookStatus::OnShelf,
        status_reason: None,
        status_date: None,
    }
}

/// A store whose Books document holds `n` books written by actor `who`.
fn store_with_books(n: u32, who: u8) -> MemoryStorage {
    let store = MemoryStorage::new();
    let mut r = Replica::with_actor(store.clone(), actor(who));
    let id = books();
    for i in 0..n {
        let rid = RecordId::from_u128((u128::from(who) << 64) | u128::from(i));
        r.edit(&id, |d| d.insert(&ctx(i), rid, &book(i))).unwrap();
    }
    store
}

fn first_request(client: &MemoryStorage) -> Vec<u8> {
    let mut r = Replica::with_actor(client.snapshot_copy(), actor(0x31));
    let mut s = SyncSession::new(server_peer(), scope());
    s.next_request(&mut r).unwrap().expect("something to sync")
}

fn respond_on(server: &MemoryStorage, request: &[u8]) -> Vec<u8> {
    let mut r = Replica::with_actor(server.snapshot_copy(), actor(0x32));
    respond(
        &mut r,
        &client_peer(),
        &AllowAll,
        &ResponderLimits::default(),
        request,
    )
    .unwrap()
}

/// Runs a whole clean sync between copies of `client` and `server`; returns
/// every request and response, and both stores afterwards.
fn full_sync(client: &MemoryStorage, server: &MemoryStorage) -> Synced {
    let cstore = client.snapshot_copy();
    let sstore = server.snapshot_copy();
    let mut c = Replica::with_actor(cstore.clone(), actor(0x31));
    let mut s = Replica::with_actor(sstore.clone(), actor(0x32));
    let mut session = SyncSession::new(server_peer(), scope());
    let (mut reqs, mut resps) = (Vec::new(), Vec::new());
    while let Some(req) = session.next_request(&mut c).unwrap() {
        let resp = respond(
            &mut s,
            &client_peer(),
            &AllowAll,
            &ResponderLimits::default(),
            &req,
        )
        .unwrap();
        session.receive(&mut c, &resp).unwrap();
        reqs.push(req);
        resps.push(resp);
    }
    Synced {
        requests: reqs,
        responses: resps,
        client: cstore,
        server: sstore,
    }
}

struct Synced {
    requests: Vec<Vec<u8>>,
    responses: Vec<Vec<u8>>,
    client: MemoryStorage,
    server: MemoryStorage,
}

struct Fixture {
    /// The responder's store: three books of its own, and Automerge sync
    /// state for the client from an earlier exchange.
    server: MemoryStorage,
    /// Heads of every school document in `server`, sorted.
    server_heads: Vec<Vec<ChangeHash>>,
    /// Client stores, each with the response `server` gives to the first
    /// request of a fresh session over it.
    first_rounds: Vec<(MemoryStorage, Vec<u8>)>,
    /// Every valid frame seen: requests, responses, refusals, bundles.
    frames: Vec<Vec<u8>>,
    requests: Vec<Message>,
    responses: Vec<Message>,
    bundles: Vec<Message>,
    /// A request carrying an Automerge sync message.
    automerge_request: Vec<u8>,
    /// Every Automerge blob in any of the messages (changes, documents, sync
    /// messages), for transplanting between messages.
    blobs: Vec<Vec<u8>>,
    /// Stores holding incremental chunks and snapshots.
    chunk_stores: Vec<MemoryStorage>,
    /// Valid stored peer states (postcard) and Automerge sync states.
    peer_states: Vec<Vec<u8>>,
    am_states: Vec<Vec<u8>>,
}

fn heads_of(store: &MemoryStorage) -> Vec<Vec<ChangeHash>> {
    let mut r = Replica::with_actor(store.clone(), actor(0x40));
    DocId::all_for_school(&school())
        .iter()
        .map(|d| {
            let mut h = r.doc(d).unwrap().heads();
            h.sort();
            h
        })
        .collect()
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(build_fixture)
}

fn build_fixture() -> Fixture {
    // Clients: 2 books (pushed as packed changes), 5 (pushed as a whole
    // document), 5 with a request in flight (probed), 70 (probed first: too
    // many changes to push without memory of the peer; the server has books
    // of its own, so they diverged and fall back to Automerge's protocol).
    let c2 = store_with_books(2, 1);
    let c5 = store_with_books(5, 3);
    let c5_cut = c5.snapshot_copy();
    {
        let mut r = Replica::with_actor(c5_cut.clone(), actor(0x31));
        SyncSession::new(server_peer(), scope())
            .next_request(&mut r)
            .unwrap()
            .unwrap();
    }
    let c70 = store_with_books(70, 4);

    // The server: three books of its own.
    let server = store_with_books(3, 2);
    // A fallback exchange (it leaves Automerge sync states behind).
    let pre = full_sync(&c70, &server);
    let server_heads = heads_of(&server);

    let mut first_rounds = Vec::new();
    let mut request_frames = Vec::new();
    let mut response_frames = Vec::new();
    let mut synced = Vec::new();
    let take =
        |x: Synced, rf: &mut Vec<Vec<u8>>, sf: &mut Vec<Vec<u8>>, synced: &mut Vec<Synced>| {
            rf.extend(x.requests.iter().cloned());
            sf.extend(x.responses.iter().cloned());
            synced.push(x);
        };
    for c in [&c2, &c5, &c5_cut, &c70] {
        let req = first_request(c);
        let resp = respond_on(&server, &req);
        first_rounds.push((c.snapshot_copy(), resp));
        take(
            full_sync(c, &server),
            &mut request_frames,
            &mut response_frames,
            &mut synced,
        );
    }
    take(pre, &mut request_frames, &mut response_frames, &mut synced);
    // A client that synced before and has two new books: it pushes changes
    // the (unsynced) server cannot attach, so the server falls back.
    let c5_more = synced[1].client.snapshot_copy();
    {
        let mut r = Replica::with_actor(c5_more.clone(), actor(3));
        for i in 100..102 {
            r.edit(&books(), |d| {
                d.insert(
                    &ctx(i),
                    RecordId::from_u128(0x5000 + u128::from(i)),
                    &book(i),
                )
            })
            .unwrap();
        }
    }
    let resp = respond_on(&server, &first_request(&c5_more));
    first_rounds.push((c5_more.snapshot_copy(), resp));
    take(
        full_sync(&c5_more, &server),
        &mut request_frames,
        &mut response_frames,
        &mut synced,
    );
    // A client that remembers the server, syncing with an older copy of it.
    let again = synced[0].client.snapshot_copy();
    take(
        full_sync(&again, &server),
        &mut request_frames,
        &mut response_frames,
        &mut synced,
    );

    let mut bundle_frames = Vec::new();
    {
        let mut r = Replica::with_actor(c5.snapshot_copy(), actor(0x33));
        bundle_frames.push(export_bundle(&mut r, &scope(), &BundleScope::Everything).unwrap());
        let mut r = Replica::with_actor(c2.snapshot_copy(), actor(0x33));
        let since = BTreeMap::from([(books(), vec![RecordDoc::genesis_hash(&books())])]);
        bundle_frames.push(export_bundle(&mut r, &scope(), &BundleScope::Since(since)).unwrap());
        // What the server lacks, from a client that synced and then added a book.
        let mut r = Replica::with_actor(synced[3].client.snapshot_copy(), actor(0x33));
        r.edit(&books(), |d| {
            d.insert(&ctx(500), RecordId::from_u128(0x7777), &book(500))
        })
        .unwrap();
        bundle_frames
            .push(export_bundle(&mut r, &scope(), &BundleScope::PeerLacks(server_peer())).unwrap());
    }

    let decode = |f: &Vec<u8>| Message::decode(f).expect("valid frame");
    let requests: Vec<Message> = request_frames.iter().map(decode).collect();
    let responses: Vec<Message> = response_frames.iter().map(decode).collect();
    let bundles: Vec<Message> = bundle_frames.iter().map(decode).collect();
    let refusal = Message::decode(&respond_on(&server, b"TPSY\x01\x00\x00")).unwrap();
    assert!(matches!(refusal, Message::Refused(_)));
    let mut frames = Vec::new();
    for m in requests
        .iter()
        .chain(&responses)
        .chain(&bundles)
        .chain([&refusal])
    {
        frames.push(m.encode());
        frames.push(raw_frame(&postcard::to_stdvec(m).unwrap()));
    }
    frames.sort();
    frames.dedup();
    let automerge_request = requests
        .iter()
        .find(|m| matches!(m, Message::Request(d) if d.iter().any(|(_, r)| matches!(r, DocRequest::Automerge(_)))))
        .expect("some request carries an Automerge sync message")
        .encode();

    let mut blobs = Vec::new();
    for m in requests.iter().chain(&responses).chain(&bundles) {
        let mut m = m.clone();
        for (_, b) in blobs_mut(&mut m) {
            blobs.push(b.clone());
        }
    }
    blobs.sort();
    blobs.dedup();

    let mut peer_states = Vec::new();
    for x in &synced {
        for (store, peer) in [(&x.server, client_peer()), (&x.client, server_peer())] {
            for (_, bytes) in store.load_range(&KeyPrefix::Peer(peer)).unwrap() {
                peer_states.push(bytes);
            }
        }
    }
    peer_states.sort();
    peer_states.dedup();
    let mut am_states: Vec<Vec<u8>> = peer_states
        .iter()
        .filter_map(|b| postcard::from_bytes::<PeerDocState>(b).unwrap().automerge)
        .collect();
    am_states.sort();
    am_states.dedup();
    assert!(
        !am_states.is_empty(),
        "the fallback left Automerge sync states"
    );

    for m in &requests {
        let Message::Request(docs) = m else {
            panic!("a request")
        };
        assert!(!docs.is_empty());
    }
    let kinds = |ms: &[Message]| {
        let mut k = Vec::new();
        for m in ms {
            let mut m = m.clone();
            for (kind, b) in blobs_mut(&mut m) {
                k.push(match kind {
                    Blob::Sync => "sync",
                    Blob::PackedRest => "packed",
                    Blob::Chunk if b.get(8) == Some(&0) => "document",
                    Blob::Chunk => "change",
                });
            }
        }
        k.sort();
        k.dedup();
        k
    };
    let (kr, ks, kb) = (kinds(&requests), kinds(&responses), kinds(&bundles));
    for (what, kinds, want) in [
        ("requests", &kr, &["document", "packed", "sync"][..]),
        ("responses", &ks, &["packed", "sync"]),
        ("bundles", &kb, &["document", "packed"]),
    ] {
        for w in want {
            assert!(kinds.contains(w), "the {what} carry {w} blobs: {kinds:?}");
        }
    }

    let chunk_stores = synced
        .iter()
        .flat_map(|x| [x.client.clone(), x.server.clone()])
        .chain([c2, c5, c70])
        .collect();
    Fixture {
        server,
        server_heads,
        first_rounds,
        frames,
        requests,
        responses,
        bundles,
        automerge_request,
        blobs,
        chunk_stores,
        peer_states,
        am_states,
    }
}

/// A frame with an uncompressed payload.
fn raw_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = b"TPSY\x01\x00".to_vec();
    f.extend_from_slice(payload);
    f
}

/// A frame with a deflated payload.
fn deflated_frame(payload: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(payload).unwrap();
    let mut f = b"TPSY\x01\x01".to_vec();
    f.extend_from_slice(&enc.finish().unwrap());
    f
}

// ---------------------------------------------------------------------------
// Mutations.
// ---------------------------------------------------------------------------

/// Values that tend to break decoders: extreme LEB128 lengths, sign bits,
/// chunk magic.
const INTERESTING: &[&[u8]] = &[
    &[0x00],
    &[0xff],
    &[0x7f],
    &[0x80],
    &[0x01],
    &[0xff, 0xff, 0xff, 0xff, 0x0f],
    &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
    &[0xfe, 0xff, 0xff, 0xff, 0x07],
    &[0x85, 0x6f, 0x4a, 0x83],
    &[0x00, 0x00, 0x00, 0x00],
];

#[derive(Clone, Debug)]
enum Mutation {
    FlipBit(Index, u8),
    SetByte(Index, u8),
    Interesting(Index, Index),
    Truncate(Index),
    Insert(Index, Vec<u8>),
    Remove(Index, usize),
    /// Copy `[from, from + len)` to before `to`.
    Duplicate(Index, Index, usize),
    Swap(Index, Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        5 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, v)| Mutation::SetByte(i, v)),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(i, k)| Mutation::Interesting(i, k)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), vec(any::<u8>(), 1..16)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => (any::<Index>(), 1usize..64).prop_map(|(i, n)| Mutation::Remove(i, n)),
        1 => (any::<Index>(), any::<Index>(), 1usize..300).prop_map(|(a, b, n)| Mutation::Duplicate(a, b, n)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Swap(a, b)),
    ]
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    vec(mutation(), 1..5)
}

fn mutate(bytes: &mut Vec<u8>, muts: &[Mutation]) {
    for m in muts {
        let len = bytes.len();
        match m {
            Mutation::Insert(i, b) => {
                let at = i.index(len + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            _ if len == 0 => {}
            Mutation::FlipBit(i, b) => bytes[i.index(len)] ^= 1 << b,
            Mutation::SetByte(i, v) => bytes[i.index(len)] = *v,
            Mutation::Interesting(i, k) => {
                let at = i.index(len);
                let i = k.index(INTERESTING.len());
                for (j, b) in INTERESTING[i].iter().enumerate() {
                    if let Some(x) = bytes.get_mut(at + j) {
                        *x = *b;
                    }
                }
            }
            Mutation::Truncate(i) => bytes.truncate(i.index(len)),
            Mutation::Remove(i, n) => {
                let at = i.index(len);
                bytes.drain(at..(at + n).min(len));
            }
            Mutation::Duplicate(from, to, n) => {
                let at = from.index(len);
                let chunk = bytes[at..(at + n).min(len)].to_vec();
                let to = to.index(len + 1);
                bytes.splice(to..to, chunk);
            }
            Mutation::Swap(a, b) => bytes.swap(a.index(len), b.index(len)),
        }
    }
}

const CHUNK_MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

fn read_leb(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, b) in bytes.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f).checked_shl(7 * i as u32)?;
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// Re-computes the checksum of each Automerge chunk in `bytes` (they are
/// checked on load), so that a mutation reaches the decoders behind it.
/// Compressed chunks are skipped: their checksum covers the inflated data.
fn fix_checksums(bytes: &mut [u8]) {
    let mut pos = 0;
    while bytes.len() >= pos + 9 && bytes[pos..pos + 4] == CHUNK_MAGIC {
        let typ = bytes[pos + 8];
        let Some((len, n)) = read_leb(&bytes[pos + 9..]) else {
            return;
        };
        let start = pos + 9 + n;
        let Some(end) = usize::try_from(len).ok().and_then(|l| start.checked_add(l)) else {
            return;
        };
        if end > bytes.len() {
            return;
        }
        if typ != 2 {
            let mut header = vec![typ];
            let mut l = len;
            loop {
                let b = (l & 0x7f) as u8;
                l >>= 7;
                if l == 0 {
                    header.push(b);
                    break;
                }
                header.push(b | 0x80);
            }
            let mut h = Sha256::new();
            h.update(&header);
            h.update(&bytes[start..end]);
            bytes[pos + 4..pos + 8].copy_from_slice(&h.finalize()[..4]);
        }
        pos = end;
    }
}

/// What a blob inside a message is.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Blob {
    /// An Automerge chunk: a change or a whole document.
    Chunk,
    /// An Automerge sync message.
    Sync,
    /// The body of a packed change (its checksum is rebuilt on unpacking).
    PackedRest,
}

/// Every Automerge blob in a message.
fn blobs_mut(m: &mut Message) -> Vec<(Blob, &mut Vec<u8>)> {
    fn data<'a>(d: &'a mut ChangeData, out: &mut Vec<(Blob, &'a mut Vec<u8>)>) {
        match d {
            ChangeData::None => {}
            ChangeData::Changes(c) => out.extend(c.iter_mut().map(|b| (Blob::Chunk, b))),
            ChangeData::Packed(p) => out.extend(p.iter_mut().map(|c| match c {
                PackedChange::Packed { rest, .. } => (Blob::PackedRest, rest),
                PackedChange::Raw(b) => (Blob::Chunk, b),
            })),
            ChangeData::Document(b) => out.push((Blob::Chunk, b)),
        }
    }
    let mut out = Vec::new();
    match m {
        Message::Request(docs) => {
            for (_, r) in docs {
                match r {
                    DocRequest::Push { data: d, .. } => data(d, &mut out),
                    DocRequest::Probe { .. } => {}
                    DocRequest::Automerge(b) => out.push((Blob::Sync, b)),
                }
            }
        }
        Message::Response(docs) => {
            for (_, r) in docs {
                match r {
                    DocReply::Changes { data: d, .. } => data(d, &mut out),
                    DocReply::Automerge(Some(b)) => out.push((Blob::Sync, b)),
                    DocReply::Automerge(None) => {}
                }
            }
        }
        Message::Bundle(docs) => {
            for (_, d) in docs {
                data(d, &mut out);
            }
        }
        Message::Refused(_) => {}
    }
    out
}

/// The chunks a change list stands for (packed bodies unpacked, or as they
/// are if they do not unpack).
fn chunks_of(d: ChangeData) -> Vec<Vec<u8>> {
    match d {
        ChangeData::None => Vec::new(),
        ChangeData::Changes(c) => c,
        ChangeData::Packed(p) => packed::unpack(&p).unwrap_or_else(|_| {
            p.into_iter()
                .map(|c| match c {
                    PackedChange::Packed { rest, .. } => rest,
                    PackedChange::Raw(b) => b,
                })
                .collect()
        }),
        ChangeData::Document(b) => vec![b],
    }
}

fn datas_mut(m: &mut Message) -> Vec<&mut ChangeData> {
    match m {
        Message::Request(docs) => docs
            .iter_mut()
            .filter_map(|(_, r)| match r {
                DocRequest::Push { data, .. } => Some(data),
                _ => None,
            })
            .collect(),
        Message::Response(docs) => docs
            .iter_mut()
            .filter_map(|(_, r)| match r {
                DocReply::Changes { data, .. } => Some(data),
                _ => None,
            })
            .collect(),
        Message::Bundle(docs) => docs.iter_mut().map(|(_, d)| d).collect(),
        Message::Refused(_) => Vec::new(),
    }
}

fn heads_mut(m: &mut Message) -> Vec<&mut Vec<[u8; 32]>> {
    match m {
        Message::Request(docs) => docs
            .iter_mut()
            .filter_map(|(_, r)| match r {
                DocRequest::Push { heads, .. } | DocRequest::Probe { heads } => Some(heads),
                DocRequest::Automerge(_) => None,
            })
            .collect(),
        Message::Response(docs) => docs
            .iter_mut()
            .filter_map(|(_, r)| match r {
                DocReply::Changes { heads: Some(h), .. } => Some(h),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn doc_ids_mut(m: &mut Message) -> Vec<&mut DocId> {
    match m {
        Message::Request(docs) => docs.iter_mut().map(|(d, _)| d).collect(),
        Message::Response(docs) => docs.iter_mut().map(|(d, _)| d).collect(),
        Message::Bundle(docs) => docs.iter_mut().map(|(d, _)| d).collect(),
        Message::Refused(_) => Vec::new(),
    }
}

/// A change to a valid message below the frame.
#[derive(Clone, Debug)]
enum Tweak {
    /// Mutate one blob's bytes, optionally re-computing chunk checksums.
    Blob {
        which: Index,
        muts: Vec<Mutation>,
        fix: bool,
    },
    /// Mutate one change inside an Automerge sync message and re-encode it.
    SyncChange {
        which: Index,
        change: Index,
        muts: Vec<Mutation>,
        fix: bool,
    },
    /// Replace one blob with another blob from any valid message.
    Transplant { which: Index, from: Index },
    /// Append a blob from any valid message as an extra change.
    ExtraChange { which: Index, from: Index },
    /// Drop one change of a list of changes.
    DropChange { which: Index, change: Index },
    /// Re-express a change list: 0 as chunks, 1 packed, 2 as one document
    /// (the chunks concatenated).
    Reshape { which: Index, to: u8 },
    /// Set or add a dependency of a packed change.
    Dep {
        which: Index,
        change: Index,
        at: Index,
        dep: Dep,
        add: bool,
    },
    /// Set or add a head.
    Head {
        which: Index,
        at: Index,
        value: [u8; 32],
        add: bool,
    },
    /// Move an entry to another document.
    Retarget { which: Index, kind: Index },
}

fn tweak() -> impl Strategy<Value = Tweak> {
    let idx = any::<Index>;
    prop_oneof![
        6 => (idx(), mutations(), prop::bool::weighted(0.6)).prop_map(|(which, muts, fix)| Tweak::Blob { which, muts, fix }),
        3 => (idx(), idx(), mutations(), prop::bool::weighted(0.7))
            .prop_map(|(which, change, muts, fix)| Tweak::SyncChange { which, change, muts, fix }),
        1 => (idx(), idx()).prop_map(|(which, from)| Tweak::Transplant { which, from }),
        1 => (idx(), idx()).prop_map(|(which, from)| Tweak::ExtraChange { which, from }),
        1 => (idx(), idx()).prop_map(|(which, change)| Tweak::DropChange { which, change }),
        1 => (idx(), 0u8..3).prop_map(|(which, to)| Tweak::Reshape { which, to }),
        2 => (idx(), idx(), idx(), dep(), any::<bool>()).prop_map(|(which, change, at, dep, add)| Tweak::Dep { which, change, at, dep, add }),
        1 => (idx(), idx(), any::<[u8; 32]>(), any::<bool>()).prop_map(|(which, at, value, add)| Tweak::Head { which, at, value, add }),
        1 => (idx(), idx()).prop_map(|(which, kind)| Tweak::Retarget { which, kind }),
    ]
}

fn dep() -> impl Strategy<Value = Dep> {
    prop_oneof![
        (0u32..8).prop_map(Dep::Earlier),
        any::<u32>().prop_map(Dep::Earlier),
        any::<[u8; 32]>().prop_map(Dep::Hash),
    ]
}

fn apply_tweak(m: &mut Message, t: &Tweak, pool: &[Vec<u8>]) {
    match t {
        Tweak::Blob { which, muts, fix } => {
            let mut b = blobs_mut(m);
            if !b.is_empty() {
                let i = which.index(b.len());
                let (_, blob) = &mut b[i];
                mutate(blob, muts);
                if *fix {
                    fix_checksums(blob);
                }
            }
        }
        Tweak::SyncChange {
            which,
            change,
            muts,
            fix,
        } => {
            let mut b: Vec<_> = blobs_mut(m)
                .into_iter()
                .filter(|(k, _)| *k == Blob::Sync)
                .collect();
            if b.is_empty() {
                return;
            }
            let i = which.index(b.len());
            let (_, blob) = &mut b[i];
            let Ok(mut msg) = automerge::sync::Message::decode(&blob[..]) else {
                return;
            };
            let mut chunks: Vec<Vec<u8>> = msg.changes.iter().map(|c| c.to_vec()).collect();
            if chunks.is_empty() {
                // Give it something to chew on: a real change or document.
                let i = change.index(pool.len());
                chunks.push(pool[i].clone());
            }
            let i = change.index(chunks.len());
            mutate(&mut chunks[i], muts);
            if *fix {
                fix_checksums(&mut chunks[i]);
            }
            msg.changes = chunks.into();
            // Automerge's encoder debug-asserts sorted hashes (a mutated
            // blob need not have them sorted).
            msg.heads.sort();
            msg.need.sort();
            for h in &mut msg.have {
                h.last_sync.sort();
            }
            **blob = msg.encode();
        }
        Tweak::Transplant { which, from } => {
            let mut b = blobs_mut(m);
            if !b.is_empty() {
                let i = which.index(b.len());
                let (_, blob) = &mut b[i];
                let i = from.index(pool.len());
                **blob = pool[i].clone();
            }
        }
        Tweak::ExtraChange { which, from } => {
            let mut d = datas_mut(m);
            if !d.is_empty() {
                let i = which.index(d.len());
                let data = &mut d[i];
                let i = from.index(pool.len());
                let extra = pool[i].clone();
                match &mut **data {
                    ChangeData::Changes(c) => c.push(extra),
                    ChangeData::Packed(p) => p.push(PackedChange::Raw(extra)),
                    other => *other = ChangeData::Changes(vec![extra]),
                }
            }
        }
        Tweak::DropChange { which, change } => {
            let mut d = datas_mut(m);
            if !d.is_empty() {
                let i = which.index(d.len());
                match &mut *d[i] {
                    ChangeData::Changes(c) if !c.is_empty() => {
                        c.remove(change.index(c.len()));
                    }
                    ChangeData::Packed(p) if !p.is_empty() => {
                        p.remove(change.index(p.len()));
                    }
                    _ => {}
                }
            }
        }
        Tweak::Reshape { which, to } => {
            let mut d = datas_mut(m);
            if !d.is_empty() {
                let i = which.index(d.len());
                let data = &mut d[i];
                let chunks = chunks_of(std::mem::replace(&mut **data, ChangeData::None));
                **data = match to {
                    0 => ChangeData::Changes(chunks),
                    1 => ChangeData::Packed(packed::pack(
                        &chunks.iter().map(|c| &c[..]).collect::<Vec<_>>(),
                    )),
                    _ => ChangeData::Document(chunks.concat()),
                };
            }
        }
        Tweak::Dep {
            which,
            change,
            at,
            dep,
            add,
        } => {
            let mut lists: Vec<&mut Vec<PackedChange>> = datas_mut(m)
                .into_iter()
                .filter_map(|d| match d {
                    ChangeData::Packed(p) if !p.is_empty() => Some(p),
                    _ => None,
                })
                .collect();
            if !lists.is_empty() {
                let i = which.index(lists.len());
                let list = &mut lists[i];
                let i = change.index(list.len());
                if let PackedChange::Packed { deps, .. } = &mut list[i] {
                    if *add || deps.is_empty() {
                        deps.push(dep.clone());
                    } else {
                        let j = at.index(deps.len());
                        deps[j] = dep.clone();
                    }
                }
            }
        }
        Tweak::Head {
            which,
            at,
            value,
            add,
        } => {
            let mut h = heads_mut(m);
            if !h.is_empty() {
                let i = which.index(h.len());
                let heads = &mut h[i];
                if *add || heads.is_empty() {
                    heads.push(*value);
                } else {
                    let i = at.index(heads.len());
                    heads[i] = *value;
                }
            }
        }
        Tweak::Retarget { which, kind } => {
            let mut ids = doc_ids_mut(m);
            if !ids.is_empty() {
                let k = kind.index(DocKind::SCHOOL_KINDS.len() + 1);
                let i = which.index(ids.len());
                *ids[i] = match DocKind::SCHOOL_KINDS.get(k) {
                    Some(kind) => doc(*kind),
                    None => DocId::template(&CountyId::new("430123").unwrap()),
                };
            }
        }
    }
}

/// A frame built from a valid message by one of three kinds of damage.
#[derive(Clone, Debug)]
enum Damage {
    /// The frame's own bytes.
    Frame(Vec<Mutation>),
    /// The postcard payload, re-framed raw or deflated.
    Payload(Vec<Mutation>, bool),
    /// The Automerge bytes and fields inside the message, re-encoded.
    Inner(Vec<Tweak>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        2 => mutations().prop_map(Damage::Frame),
        2 => (mutations(), any::<bool>()).prop_map(|(m, d)| Damage::Payload(m, d)),
        6 => vec(tweak(), 1..4).prop_map(Damage::Inner),
    ]
}

fn damaged(m: &Message, d: &Damage) -> Vec<u8> {
    match d {
        Damage::Frame(muts) => {
            let mut f = m.encode();
            mutate(&mut f, muts);
            f
        }
        Damage::Payload(muts, deflate) => {
            let mut p = postcard::to_stdvec(m).unwrap();
            mutate(&mut p, muts);
            if *deflate {
                deflated_frame(&p)
            } else {
                raw_frame(&p)
            }
        }
        Damage::Inner(tweaks) => {
            let mut m = m.clone();
            for t in tweaks {
                apply_tweak(&mut m, t, &fixture().blobs);
            }
            m.encode()
        }
    }
}

/// Fully random inputs, some behind a valid frame header.
fn random_frame() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..600),
        (0u8..4, vec(any::<u8>(), 0..600)).prop_map(|(flags, body)| {
            let mut f = b"TPSY\x01".to_vec();
            f.push(flags);
            f.extend(body);
            f
        }),
        vec(any::<u8>(), 0..600).prop_map(|p| raw_frame(&p)),
        vec(any::<u8>(), 0..600).prop_map(|p| deflated_frame(&p)),
        // A plausible message head: variant tag, one entry, a doc id string.
        (0u8..5, vec(any::<u8>(), 0..600)).prop_map(|(tag, rest)| {
            let mut p = vec![tag, 1, 23];
            p.extend_from_slice(b"school.4301230001.books");
            p.extend(rest);
            raw_frame(&p)
        }),
    ]
}

// ---------------------------------------------------------------------------
// Contracts.
// ---------------------------------------------------------------------------

fn dump(store: &MemoryStorage) -> Vec<(StorageKey, Vec<u8>)> {
    let mut all = store.load_range(&KeyPrefix::AllDocs).unwrap();
    for peer in [client_peer(), server_peer()] {
        all.extend(store.load_range(&KeyPrefix::Peer(peer)).unwrap());
    }
    all
}

/// What was durably stored reloads, equals what the replica holds in memory,
/// and is on its schema.
fn check_reloads(
    store: &MemoryStorage,
    replica: &mut Replica<MemoryStorage>,
) -> Result<(), TestCaseError> {
    let mut again = Replica::with_actor(store.clone(), actor(0x50));
    for d in DocId::all_for_school(&school()) {
        let mut mem = replica
            .doc(&d)
            .map_err(|e| TestCaseError::fail(format!("{d} in memory: {e}")))?
            .heads();
        let reloaded = match again.doc(&d) {
            Ok(r) => r,
            Err(e) => return Err(TestCaseError::fail(format!("{d} does not reload: {e}"))),
        };
        let mut disk = reloaded.heads();
        mem.sort();
        disk.sort();
        prop_assert_eq!(mem, disk, "{} in memory and on disk differ", d);
        prop_assert!(
            reloaded.validate().is_ok(),
            "{} was stored off its schema: {:?}",
            d,
            reloaded.validate()
        );
    }
    Ok(())
}

/// `respond` answers any bytes with a Refused or Response frame; a refusal
/// writes nothing and changes nothing; an answer leaves a loadable store.
fn check_respond(
    server_base: &MemoryStorage,
    expected_heads: &[Vec<ChangeHash>],
    request: &[u8],
) -> Result<(), TestCaseError> {
    let store = server_base.snapshot_copy();
    let before = dump(&store);
    let keys_before = store.len();
    let mut server = Replica::with_actor(store.clone(), actor(0x32));
    let Some(out) = guard("respond", || {
        respond(
            &mut server,
            &client_peer(),
            &AllowAll,
            &ResponderLimits::default(),
            request,
        )
    })?
    else {
        return Ok(());
    };
    let out = out.map_err(|e| {
        TestCaseError::fail(format!("respond returned Err over a MemoryStorage: {e}"))
    })?;
    let Some(decoded) = guard("decoding respond's own output", || Message::decode(&out))? else {
        return Ok(());
    };
    match decoded {
        Ok(Message::Refused(problems)) => {
            prop_assert!(!problems.is_empty(), "a refusal names its problems");
            note(format!(
                "refused: {} — {}",
                problems[0].code,
                class_of(problems[0].message.split(':').next().unwrap_or(""))
            ));
            prop_assert_eq!(
                store.len(),
                keys_before,
                "a refused request wrote to storage"
            );
            prop_assert!(dump(&store) == before, "a refused request changed storage");
            for (d, want) in DocId::all_for_school(&school()).iter().zip(expected_heads) {
                let mut h = server
                    .doc(d)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?
                    .heads();
                h.sort();
                prop_assert_eq!(&h, want, "a refused request changed {} in memory", d);
            }
        }
        Ok(Message::Response(_)) => {
            note(if dump(&store) == before {
                "response, nothing stored"
            } else {
                "response, stored"
            });
            check_reloads(&store, &mut server)?;
        }
        other => {
            return Err(TestCaseError::fail(format!(
                "respond gave neither a refusal nor a response: {other:?}"
            )))
        }
    }
    Ok(())
}

/// `SyncSession::receive` takes any bytes: an error changes nothing stored;
/// success leaves a loadable store. The session stays usable.
fn check_receive(client_base: &MemoryStorage, response: &[u8]) -> Result<(), TestCaseError> {
    let store = client_base.snapshot_copy();
    let mut client = Replica::with_actor(store.clone(), actor(0x31));
    let mut session = SyncSession::new(server_peer(), scope());
    session
        .next_request(&mut client)
        .unwrap()
        .expect("a request");
    let before = dump(&store);
    let Some(result) = guard("SyncSession::receive", || {
        session.receive(&mut client, response)
    })?
    else {
        return Ok(());
    };
    match result {
        Err(e) => {
            note(format!("error: {}", class_of(&e.to_string())));
            prop_assert!(
                dump(&store) == before,
                "a failed receive changed storage: {}",
                e
            );
        }
        Ok(()) => {
            note("ok");
            check_reloads(&store, &mut client)?;
        }
    }
    // Whatever it took in, the session goes on without panicking.
    let next = guard("SyncSession::next_request after receive", || {
        session.next_request(&mut client)
    })?;
    if let Some(Ok(Some(req))) = next {
        let f = fixture();
        check_respond(&f.server, &f.server_heads, &req)?;
    }
    Ok(())
}

/// `import_bundle` takes any bytes: an error changes nothing stored; success
/// leaves a loadable store.
fn check_import(base: &MemoryStorage, bundle: &[u8]) -> Result<(), TestCaseError> {
    let store = base.snapshot_copy();
    let before = dump(&store);
    let mut r = Replica::with_actor(store.clone(), actor(0x36));
    let Some(result) = guard("import_bundle", || import_bundle(&mut r, &AllowAll, bundle))? else {
        return Ok(());
    };
    match result {
        Err(e) => {
            note(format!("error: {}", class_of(&e.to_string())));
            prop_assert!(
                dump(&store) == before,
                "a failed import changed storage: {}",
                e
            );
        }
        Ok(report) => {
            note(if report.docs_changed.is_empty() {
                "imported, unchanged"
            } else {
                "imported, changed"
            });
            check_reloads(&store, &mut r)?;
        }
    }
    Ok(())
}

fn check_wire(bytes: &[u8], limit: usize) -> Result<(), TestCaseError> {
    let Some(full) = guard("Message::decode", || Message::decode(bytes))? else {
        return Ok(());
    };
    let Some(limited) = guard("Message::decode_limited", || {
        Message::decode_limited(bytes, limit)
    })?
    else {
        return Ok(());
    };
    match &full {
        Ok(m) => {
            note("decoded");
            // What decodes re-encodes to something that decodes to it.
            let again = Message::decode(&m.encode());
            prop_assert!(
                again.as_ref() == Ok(m),
                "re-encoding changed the message: {:?}",
                again
            );
        }
        Err(e) => note(format!("error: {}", class_of(&e.to_string()))),
    }
    if let Ok(m) = &limited {
        let size = postcard::to_stdvec(m).unwrap().len();
        prop_assert!(
            size <= limit,
            "decode_limited({limit}) accepted a {size}-byte message"
        );
        prop_assert!(full.as_ref() == Ok(m), "the limit changed what decoded");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// 1. The wire frame.
// ---------------------------------------------------------------------------

fn limit() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(usize::MAX),
        Just(0usize),
        0usize..4096,
        Just(sync_core::sync::wire::DEFAULT_MAX_DECODED),
        Just(usize::MAX - 1)
    ]
}

#[test]
fn wire_decode_random_bytes() {
    run(
        "wire_decode_random_bytes",
        8,
        (random_frame(), limit()),
        |(bytes, limit)| check_wire(&bytes, limit),
    );
}

#[test]
fn wire_decode_mutated_messages() {
    let f = fixture();
    let all: Vec<Message> = f
        .requests
        .iter()
        .chain(&f.responses)
        .chain(&f.bundles)
        .cloned()
        .collect();
    let frames = f.frames.clone();
    let strategy = prop_oneof![
        (prop::sample::select(all), damage(), limit()).prop_map(|(m, d, l)| (damaged(&m, &d), l)),
        (prop::sample::select(frames), mutations(), limit()).prop_map(|(mut fr, muts, l)| {
            mutate(&mut fr, &muts);
            (fr, l)
        }),
    ];
    run(
        "wire_decode_mutated_messages",
        8,
        strategy,
        |(bytes, limit)| check_wire(&bytes, limit),
    );
}

// ---------------------------------------------------------------------------
// 2. The responder.
// ---------------------------------------------------------------------------

#[test]
fn respond_random_bytes() {
    let f = fixture();
    run("respond_random_bytes", 4, random_frame(), |bytes| {
        check_respond(&f.server, &f.server_heads, &bytes)
    });
}

#[test]
fn respond_mutated_requests() {
    let f = fixture();
    let strategy =
        (prop::sample::select(f.requests.clone()), damage()).prop_map(|(m, d)| damaged(&m, &d));
    run("respond_mutated_requests", 4, strategy, |bytes| {
        check_respond(&f.server, &f.server_heads, &bytes)
    });
}

// ---------------------------------------------------------------------------
// 3. The initiator receiving a response.
// ---------------------------------------------------------------------------

#[test]
fn session_receive_random_bytes() {
    let f = fixture();
    let strategy = (0..f.first_rounds.len(), random_frame());
    run("session_receive_random_bytes", 2, strategy, |(i, bytes)| {
        check_receive(&f.first_rounds[i].0, &bytes)
    });
}

#[test]
fn session_receive_mutated_responses() {
    let f = fixture();
    let strategy = (0..f.first_rounds.len(), damage(), any::<Index>()).prop_map(|(i, d, other)| {
        // Mostly the response to this very request; sometimes any response.
        let resp = Message::decode(&f.first_rounds[i].1).unwrap();
        let m = if other.index(4) == 0 {
            f.responses[other.index(f.responses.len())].clone()
        } else {
            resp
        };
        (i, damaged(&m, &d))
    });
    run(
        "session_receive_mutated_responses",
        4,
        strategy,
        |(i, bytes)| check_receive(&f.first_rounds[i].0, &bytes),
    );
}

// ---------------------------------------------------------------------------
// 4. Bundles.
// ---------------------------------------------------------------------------

#[test]
fn import_bundle_random_bytes() {
    let f = fixture();
    run("import_bundle_random_bytes", 4, random_frame(), |bytes| {
        check_import(&f.server, &bytes)
    });
}

#[test]
fn import_bundle_mutated_bundles() {
    let f = fixture();
    let strategy = (
        prop::sample::select(f.bundles.clone()),
        damage(),
        any::<bool>(),
    )
        .prop_map(|(m, d, empty)| (damaged(&m, &d), empty));
    run(
        "import_bundle_mutated_bundles",
        4,
        strategy,
        |(bytes, empty)| {
            let empty_store = MemoryStorage::new();
            check_import(if empty { &empty_store } else { &f.server }, &bytes)
        },
    );
}

// ---------------------------------------------------------------------------
// 5. Storage keys and ids.
// ---------------------------------------------------------------------------

fn id_seeds() -> Vec<String> {
    let d = books();
    vec![
        d.to_string(),
        "county.430123.template".into(),
        "school.a-B-9.review".into(),
        "0123456789abcdef0123456789abcdef".into(),
        "4301230001".into(),
        StorageKey::incremental(&d, b"x").to_path(),
        StorageKey::snapshot(&d, &[]).to_path(),
        StorageKey::Peer {
            peer: server_peer(),
            doc: d.clone(),
        }
        .to_path(),
        KeyPrefix::Doc(d).to_path(),
    ]
}

fn check_text(s: &str) -> Result<(), TestCaseError> {
    let Some(()) = guard("parsing ids and keys", || -> Result<(), TestCaseError> {
        if let Ok(k) = StorageKey::parse(s) {
            note("storage key");
            prop_assert_eq!(k.to_path(), s, "a parsed key writes out differently");
            let _ = k.doc();
        }
        if let Ok(d) = s.parse::<DocId>() {
            note("doc id");
            prop_assert_eq!(d.to_string(), s, "a parsed doc id writes out differently");
            prop_assert_eq!(DocId::try_from(s.to_string()).ok(), Some(d));
        }
        if let Ok(r) = s.parse::<RecordId>() {
            note("record id");
            prop_assert_eq!(
                r.to_string(),
                s,
                "a parsed record id writes out differently"
            );
        }
        if let Ok(c) = s.parse::<SchoolId>() {
            note("school id");
            prop_assert_eq!(
                c.to_string(),
                s,
                "a parsed school id writes out differently"
            );
        }
        if let Ok(p) = s.parse::<PeerId>() {
            prop_assert_eq!(p.as_str(), s);
        }
        Ok(())
    })?
    .transpose()?
    else {
        return Ok(());
    };
    Ok(())
}

/// Text built from the parts of ids and keys, most of it almost valid.
fn id_like() -> impl Strategy<Value = String> {
    let code = prop_oneof![4 => "[A-Za-z0-9-]{1,32}", 1 => "[A-Za-z0-9./-]{0,34}", 1 => ".{0,8}"];
    let owner = prop_oneof![4 => Just("school".to_string()), 2 => Just("county".to_string()), 1 => "[a-z]{0,7}"];
    let kind = prop_oneof![
        6 => prop::sample::select(vec!["profile", "equipment", "books", "archive", "checklist", "review", "template"])
            .prop_map(String::from),
        1 => "[a-z_]{0,10}",
    ];
    let doc = (owner, code.clone(), kind).prop_map(|(o, c, k)| format!("{o}.{c}.{k}"));
    let hex = prop_oneof![4 => "[0-9a-f]{64}", 1 => "[0-9a-fA-F]{62,66}", 1 => "[0-9a-gA-G]{64}"];
    let record =
        prop_oneof![3 => "[0-9a-f]{32}", 1 => "[0-9a-fA-F]{31,33}", 1 => "[+-]?[0-9a-f]{31}"];
    prop_oneof![
        doc.clone(),
        (
            doc.clone(),
            prop::sample::select(vec!["inc", "snap", "peer", ""]),
            hex
        )
            .prop_map(|(d, k, h)| format!("doc/{d}/{k}/{h}")),
        (code.clone(), doc).prop_map(|(p, d)| format!("peer/{p}/{d}")),
        record,
        code,
    ]
}

#[test]
fn ids_and_storage_keys_parse_or_refuse() {
    let strategy = prop_oneof![
        1 => any::<String>(),
        1 => "[a-z0-9./A-F-]{0,80}",
        4 => id_like(),
        2 => (prop::sample::select(id_seeds()), mutations()).prop_map(|(s, muts)| {
            let mut b = s.into_bytes();
            mutate(&mut b, &muts);
            String::from_utf8_lossy(&b).into_owned()
        }),
    ];
    run("ids_and_storage_keys_parse_or_refuse", 16, strategy, |s| {
        check_text(&s)
    });
}

// ---------------------------------------------------------------------------
// 6. A replica loading stored chunks.
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Stored {
    /// One chunk of random bytes.
    Random(Vec<u8>),
    /// A real document's chunks, one of them damaged, maybe with its checksum
    /// re-computed; the damaged chunk is stored under a fresh key (or dropped).
    Damaged {
        store: Index,
        chunk: Index,
        muts: Vec<Mutation>,
        fix: bool,
        only_it: bool,
        drop: bool,
    },
    /// A real document's chunks plus one random chunk.
    Extra { store: Index, bytes: Vec<u8> },
}

fn stored() -> impl Strategy<Value = Stored> {
    prop_oneof![
        1 => vec(any::<u8>(), 0..400).prop_map(Stored::Random),
        5 => (any::<Index>(), any::<Index>(), mutations(), prop::bool::weighted(0.7), any::<bool>(), prop::bool::weighted(0.1))
            .prop_map(|(store, chunk, muts, fix, only_it, drop)| Stored::Damaged { store, chunk, muts, fix, only_it, drop }),
        1 => (any::<Index>(), vec(any::<u8>(), 0..64)).prop_map(|(store, bytes)| Stored::Extra { store, bytes }),
    ]
}

fn stored_entries(s: &Stored) -> Vec<(StorageKey, Vec<u8>)> {
    let f = fixture();
    let d = books();
    let doc_chunks = |i: &Index| {
        f.chunk_stores[i.index(f.chunk_stores.len())]
            .load_range(&KeyPrefix::Doc(d.clone()))
            .unwrap()
    };
    match s {
        Stored::Random(b) => vec![(StorageKey::incremental(&d, b), b.clone())],
        Stored::Damaged {
            store,
            chunk,
            muts,
            fix,
            only_it,
            drop,
        } => {
            let mut chunks = doc_chunks(store);
            let i = chunk.index(chunks.len());
            let (key, mut bytes) = chunks.remove(i);
            if *drop {
                return chunks;
            }
            mutate(&mut bytes, muts);
            if *fix {
                fix_checksums(&mut bytes);
            }
            let key = match key {
                StorageKey::Snapshot { doc, .. } => StorageKey::Snapshot {
                    doc,
                    hash: hex_sha(&bytes),
                },
                _ => StorageKey::incremental(&d, &bytes),
            };
            if *only_it {
                chunks.clear();
            }
            chunks.push((key, bytes));
            chunks
        }
        Stored::Extra { store, bytes } => {
            let mut chunks = doc_chunks(store);
            chunks.push((StorageKey::incremental(&d, bytes), bytes.clone()));
            chunks
        }
    }
}

fn hex_sha(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn check_load(entries: &[(StorageKey, Vec<u8>)]) -> Result<(), TestCaseError> {
    let storage = MemoryStorage::new();
    storage.put_many(entries).unwrap();
    let mut r = Replica::open(storage);
    let d = books();
    guard("Replica::doc loading stored chunks", || match r.doc(&d) {
        Err(e) => note(format!("error: {}", class_of(&e.to_string()))),
        Ok(doc) => {
            // A document that loads can be read.
            let _ = doc.heads();
            let valid = doc.validate().is_ok();
            let _ = doc.list::<Book>();
            note(if valid {
                "loaded, valid"
            } else {
                "loaded, off schema"
            });
        }
    })?;
    Ok(())
}

#[test]
fn replica_loads_stored_chunks_or_refuses() {
    run("replica_loads_stored_chunks_or_refuses", 4, stored(), |s| {
        check_load(&stored_entries(&s))
    });
}

// ---------------------------------------------------------------------------
// 7. Stored peer states.
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum PeerGarbage {
    Random(Vec<u8>),
    Mutated(Index, Vec<Mutation>),
    /// A well-formed state around a damaged Automerge sync state.
    Wrapped {
        am: Index,
        muts: Vec<Mutation>,
        heads: Option<Vec<[u8; 32]>>,
        in_flight: bool,
    },
}

fn peer_garbage() -> impl Strategy<Value = PeerGarbage> {
    prop_oneof![
        vec(any::<u8>(), 0..200).prop_map(PeerGarbage::Random),
        (any::<Index>(), mutations()).prop_map(|(i, m)| PeerGarbage::Mutated(i, m)),
        (
            any::<Index>(),
            mutations(),
            proptest::option::of(vec(any::<[u8; 32]>(), 0..3)),
            any::<bool>()
        )
            .prop_map(|(am, muts, heads, in_flight)| PeerGarbage::Wrapped {
                am,
                muts,
                heads,
                in_flight
            }),
    ]
}

fn peer_garbage_bytes(g: &PeerGarbage) -> Vec<u8> {
    let f = fixture();
    match g {
        PeerGarbage::Random(b) => b.clone(),
        PeerGarbage::Mutated(i, muts) => {
            let mut b = f.peer_states[i.index(f.peer_states.len())].clone();
            mutate(&mut b, muts);
            b
        }
        PeerGarbage::Wrapped {
            am,
            muts,
            heads,
            in_flight,
        } => {
            let mut a = f.am_states[am.index(f.am_states.len())].clone();
            mutate(&mut a, muts);
            postcard::to_stdvec(&PeerDocState {
                their_heads: heads.clone(),
                in_flight: *in_flight,
                automerge: Some(a),
            })
            .unwrap()
        }
    }
}

#[test]
fn stored_peer_state_garbage_is_survived() {
    let f = fixture();
    let strategy = (peer_garbage(), 0..f.first_rounds.len());
    run(
        "stored_peer_state_garbage_is_survived",
        2,
        strategy,
        |(g, client)| {
            let garbage = peer_garbage_bytes(&g);
            // The initiator's memory of the server is garbage.
            let store = f.first_rounds[client].0.snapshot_copy();
            store
                .put(
                    &StorageKey::Peer {
                        peer: server_peer(),
                        doc: books(),
                    },
                    &garbage,
                )
                .unwrap();
            let mut r = Replica::with_actor(store, actor(0x31));
            let st = guard("Replica::peer_state", || {
                r.peer_state(&server_peer(), &books())
            })?;
            if let Some(st) = st {
                prop_assert!(st.is_ok(), "peer_state failed on garbage: {:?}", st);
            }
            let mut session = SyncSession::new(server_peer(), scope());
            let req = guard(
                "SyncSession::next_request over a garbage peer state",
                || session.next_request(&mut r),
            )?;
            match req {
                Some(Ok(Some(req))) => {
                    note("initiator: request");
                    check_respond(&f.server, &f.server_heads, &req)?;
                }
                Some(Ok(None)) => note("initiator: nothing to send"),
                Some(Err(e)) => note(format!("initiator error: {}", class_of(&e.to_string()))),
                None => {}
            }
            // The responder's memory of the client is garbage.
            let server = f.server.snapshot_copy();
            server
                .put(
                    &StorageKey::Peer {
                        peer: client_peer(),
                        doc: books(),
                    },
                    &garbage,
                )
                .unwrap();
            let heads = heads_of(&server);
            check_respond(&server, &heads, &f.automerge_request)?;
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------
// Bugs these properties found, one test each with a minimal input; all were
// fixed and these keep them fixed.
// ---------------------------------------------------------------------------

/// Builds an Automerge sync message whose one `have` carries a bloom filter
/// claiming entries but with zero bits per entry (so zero bytes of bits).
fn sync_message_with_empty_bloom() -> Vec<u8> {
    let mut m = vec![0x42]; // MESSAGE_TYPE_SYNC
    m.push(0); // heads: none
    m.push(0); // need: none
    m.push(1); // one have
    m.push(0); // last_sync: none
    m.extend([3, 1, 0, 7]); // bloom, 3 bytes: 1 entry, 0 bits per entry, 7 probes
    m.push(0); // changes: none
    m
}

#[test]
fn responder_survives_an_automerge_bloom_filter_with_no_bits() {
    // Was: respond panicked. Request: [(books, Automerge([0x42, 0, 0, 1, 0,
    // 3, 1, 0, 7, 0]))]. The message was received (guarded), then phase 3
    // called generate_sync_message outside any guard, and
    // BloomFilter::contains_hash computed `x % (8 * bits.len())` = `x % 0`.
    let mut server = Replica::with_actor(store_with_books(1, 9), actor(9));
    let req = Message::Request(vec![(
        books(),
        DocRequest::Automerge(sync_message_with_empty_bloom()),
    )])
    .encode();
    let r = catch_unwind(AssertUnwindSafe(|| {
        respond(
            &mut server,
            &client_peer(),
            &AllowAll,
            &ResponderLimits::default(),
            &req,
        )
    }));
    assert!(
        r.is_ok(),
        "respond panicked on a hostile Automerge sync message"
    );
}

#[test]
fn initiator_survives_an_automerge_reply_with_a_bloom_filter_with_no_bits() {
    // Was: SyncSession::next_request panicked (the same division by zero).
    let mut r = Replica::with_actor(store_with_books(2, 8), actor(8));
    let mut session = SyncSession::new(server_peer(), scope());
    session.next_request(&mut r).unwrap().unwrap();
    let resp = Message::Response(vec![(
        books(),
        DocReply::Automerge(Some(sync_message_with_empty_bloom())),
    )])
    .encode();
    let got = catch_unwind(AssertUnwindSafe(|| {
        let received = session.receive(&mut r, &resp);
        (received.is_ok(), session.next_request(&mut r).is_ok())
    }));
    assert!(
        got.is_ok(),
        "the session panicked after a hostile Automerge reply"
    );
}

#[test]
fn decode_limited_takes_a_limit_of_usize_max() {
    // Was: `max_decoded as u64 + 1` overflowed: a panic in debug builds; in
    // release `take(0)`, so every deflated frame was refused as corrupt.
    let m = Message::Refused(vec![]);
    for f in [
        m.encode(),
        deflated_frame(&postcard::to_stdvec(&m).unwrap()),
    ] {
        let r = catch_unwind(|| Message::decode_limited(&f, usize::MAX));
        assert!(
            matches!(r, Ok(Ok(Message::Refused(_)))),
            "a limit of usize::MAX means no limit: {r:?}"
        );
    }
}

/// Every single-bit flip of every chunk of a one-book document, with chunk
/// checksums re-computed (as a forged or unlucky file would have them).
#[test]
fn replica_survives_every_single_bit_flip_of_a_stored_chunk() {
    install_panic_hook();
    // Was: Replica::doc panicked inside Automerge::load (unguarded in
    // Replica::read_from_storage) for 184 of the 3312 flips. Minimal input:
    // the one chunk of `store_with_books(1, 1)`, bit 1 of byte 28 flipped,
    // checksum re-computed: "called `Option::unwrap()` on a `None` value" in
    // automerge's op_set2/change/batch.rs (import_ops); other flips hit
    // `InvalidActorIndex` unwraps, "Obj .. Missing from Index",
    // `validate_op_order` and `change.seq() == 1` assertions, and hexane's
    // "RawColumnIter::take would cross slab boundary".
    let store = store_with_books(1, 1);
    let chunks = store.load_range(&KeyPrefix::Doc(books())).unwrap();
    let mut panics = Vec::new();
    for (ci, (_, bytes)) in chunks.iter().enumerate() {
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            fix_checksums(&mut b);
            let storage = MemoryStorage::new();
            for (cj, (_, other)) in chunks.iter().enumerate() {
                let c = if cj == ci { &b } else { other };
                storage
                    .put(&StorageKey::incremental(&books(), c), c)
                    .unwrap();
            }
            let mut r = Replica::open(storage);
            if let Err(e) = guard("loading", || r.doc(&books()).map(|_| ())) {
                panics.push(format!("chunk {ci} byte {} bit {}: {e}", bit / 8, bit % 8));
            }
        }
    }
    assert!(
        panics.is_empty(),
        "{} bit flips make Replica::doc panic, e.g. {}",
        panics.len(),
        panics[0]
    );
}

/// The two changes of `store_with_books(2, 1)` after genesis, packed, with
/// one bit of one change body flipped (the packed form rebuilds hashes and
/// checksums, so the flipped change reaches Automerge and the other still
/// attaches to it).
fn packed_with_flip(change: usize, byte: usize, bit: u8) -> ChangeData {
    let mut r = Replica::with_actor(store_with_books(2, 1), actor(1));
    let doc = r.doc(&books()).unwrap();
    let chunks: Vec<Vec<u8>> = doc
        .automerge()
        .get_changes(&[RecordDoc::genesis_hash(&books())])
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect();
    let mut p = packed::pack(&chunks.iter().map(|c| &c[..]).collect::<Vec<_>>());
    let PackedChange::Packed { rest, .. } = &mut p[change] else {
        panic!("packs")
    };
    rest[byte] ^= 1 << bit;
    ChangeData::Packed(p)
}

/// Runs `f`; the panic message if it panics.
fn panic_of(f: impl FnOnce()) -> Option<String> {
    install_panic_hook();
    QUIET.with(|q| q.set(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    r.err().map(|_| {
        LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_default()
    })
}

#[test]
fn changes_automerge_accepts_but_cannot_save_are_refused() {
    // Was: import_bundle, respond and SyncSession::receive panicked. Minimal
    // input: change 0, byte 94, bit 0 of `packed_with_flip` (one of 75 of
    // the 4016 single-bit flips of the two change bodies). Automerge's
    // apply_changes accepted the change, the document validated, then
    // `save_after` in `Replica::persist` (outside any guard, after the
    // in-memory document was already replaced) panicked: `called
    // Result::unwrap() on an Err value: ChangeGraph(MissingDep(..))` in
    // automerge's op_set2/change/collector.rs.
    let mut failures = Vec::new();
    let data = packed_with_flip(0, 94, 0);
    let bundle = Message::Bundle(vec![(books(), data.clone())]).encode();
    for (name, base) in [
        ("empty", MemoryStorage::new()),
        ("3 books", store_with_books(3, 2)),
    ] {
        let mut r = Replica::with_actor(base, actor(9));
        if let Some(p) = panic_of(|| drop(import_bundle(&mut r, &AllowAll, &bundle))) {
            failures.push(format!("import_bundle into {name}: {p}"));
        }
    }
    let req = Message::Request(vec![(
        books(),
        DocRequest::Push {
            heads: vec![],
            data: data.clone(),
        },
    )])
    .encode();
    let mut server = Replica::with_actor(MemoryStorage::new(), actor(9));
    if let Some(p) = panic_of(|| {
        drop(respond(
            &mut server,
            &client_peer(),
            &AllowAll,
            &ResponderLimits::default(),
            &req,
        ))
    }) {
        failures.push(format!("respond: {p}"));
    }
    let mut client = Replica::with_actor(MemoryStorage::new(), actor(9));
    let mut session = SyncSession::new(server_peer(), scope());
    session.next_request(&mut client).unwrap().unwrap();
    let resp = Message::Response(vec![(books(), DocReply::Changes { heads: None, data })]).encode();
    if let Some(p) = panic_of(|| drop(session.receive(&mut client, &resp))) {
        failures.push(format!("SyncSession::receive: {p}"));
    }
    // And how common it is.
    let mut flips = 0;
    let mut panics = 0;
    for change in 0..2 {
        let ChangeData::Packed(p) = packed_with_flip(change, 0, 0) else {
            unreachable!()
        };
        let PackedChange::Packed { rest, .. } = &p[change] else {
            unreachable!()
        };
        for bit in 0..rest.len() * 8 {
            let bundle = Message::Bundle(vec![(
                books(),
                packed_with_flip(change, bit / 8, (bit % 8) as u8),
            )])
            .encode();
            let mut r = Replica::with_actor(MemoryStorage::new(), actor(9));
            flips += 1;
            panics +=
                usize::from(panic_of(|| drop(import_bundle(&mut r, &AllowAll, &bundle))).is_some());
        }
    }
    assert!(failures.is_empty(), "{panics} of {flips} single-bit flips make import_bundle panic; with change 0 byte 94 bit 0: {failures:#?}");
}

#[test]
fn unsorted_heads_from_a_peer_or_from_storage_are_survived() {
    // Was (debug builds only): a panic, "hashes were not sorted", the
    // debug_assert in automerge's `encode_hashes`.
    let mut failures = Vec::new();
    // (a) A peer's Automerge sync message naming two changes the responder
    // has, in descending order: they become the shared heads, and phase 3
    // encodes them (generate_sync_message, State::encode) outside any guard.
    let store = store_with_books(3, 2);
    let mut server = Replica::with_actor(store, actor(2));
    let mut hashes: Vec<ChangeHash> = server
        .doc(&books())
        .unwrap()
        .automerge()
        .get_changes(&[])
        .iter()
        .map(|c| c.hash())
        .collect();
    hashes.sort();
    let mut msg = vec![0x42, 2];
    msg.extend(hashes[1].0);
    msg.extend(hashes[0].0);
    msg.extend([0, 0, 0]); // need, have, changes: none
    let req = Message::Request(vec![(books(), DocRequest::Automerge(msg))]).encode();
    if catch_unwind(AssertUnwindSafe(|| {
        respond(
            &mut server,
            &client_peer(),
            &AllowAll,
            &ResponderLimits::default(),
            &req,
        )
        .is_ok()
    }))
    .is_err()
    {
        failures.push("respond, to a sync message with unsorted heads");
    }
    // (b) A stored Automerge sync state with unsorted shared heads.
    let store = store_with_books(2, 1);
    let mut state = vec![0x43, 2];
    state.extend([0xff; 32]);
    state.extend([0x00; 32]);
    let garbage = PeerDocState {
        their_heads: None,
        in_flight: false,
        automerge: Some(state),
    };
    store
        .put(
            &StorageKey::Peer {
                peer: server_peer(),
                doc: books(),
            },
            &postcard::to_stdvec(&garbage).unwrap(),
        )
        .unwrap();
    let mut client = Replica::with_actor(store, actor(1));
    let mut session = SyncSession::new(server_peer(), scope());
    if catch_unwind(AssertUnwindSafe(|| {
        session.next_request(&mut client).is_ok()
    }))
    .is_err()
    {
        failures.push("next_request, over a stored sync state with unsorted shared heads");
    }
    assert!(failures.is_empty(), "panicked: {failures:?}");
}

#[test]
fn a_document_automerge_loads_but_cannot_list_is_refused() {
    // The Equipment document as a bundle carries it (genesis only, 229
    // bytes), byte 98 set from 6 to 46, checksum re-computed: Automerge::load (guarded)
    // accepts it, then `other.get_changes(&[])` in apply_data's Document arm
    // (not guarded) panics: `called Result::unwrap() on an Err value:
    // MissingOps` in automerge's op_set2/change/collector.rs.
    let equipment = doc(DocKind::Equipment);
    let mut r = Replica::with_actor(MemoryStorage::new(), actor(7));
    let bundle = export_bundle(
        &mut r,
        std::slice::from_ref(&equipment),
        &BundleScope::Everything,
    )
    .unwrap();
    let Message::Bundle(mut docs) = Message::decode(&bundle).unwrap() else {
        unreachable!()
    };
    let ChangeData::Document(bytes) = &mut docs[0].1 else {
        panic!("a whole document")
    };
    assert_eq!((bytes.len(), bytes[98]), (229, 6));
    bytes[98] = 46;
    fix_checksums(bytes);
    let data = docs[0].1.clone();
    let mut failures = Vec::new();
    let bundle = Message::Bundle(vec![(equipment.clone(), data.clone())]).encode();
    let mut r = Replica::with_actor(store_with_books(3, 2), actor(9));
    if let Some(p) = panic_of(|| drop(import_bundle(&mut r, &AllowAll, &bundle))) {
        failures.push(format!("import_bundle: {p}"));
    }
    let req = Message::Request(vec![(
        equipment.clone(),
        DocRequest::Push {
            heads: vec![],
            data: data.clone(),
        },
    )])
    .encode();
    let mut server = Replica::with_actor(MemoryStorage::new(), actor(9));
    let limits = ResponderLimits::default();
    if let Some(p) = panic_of(|| {
        drop(respond(
            &mut server,
            &client_peer(),
            &AllowAll,
            &limits,
            &req,
        ))
    }) {
        failures.push(format!("respond: {p}"));
    }
    let mut client = Replica::with_actor(MemoryStorage::new(), actor(9));
    let mut session = SyncSession::new(server_peer(), scope());
    session.next_request(&mut client).unwrap().unwrap();
    let resp =
        Message::Response(vec![(equipment, DocReply::Changes { heads: None, data })]).encode();
    if let Some(p) = panic_of(|| drop(session.receive(&mut client, &resp))) {
        failures.push(format!("SyncSession::receive: {p}"));
    }
    assert!(failures.is_empty(), "panicked: {failures:#?}");
}

#[test]
fn a_received_change_that_would_not_reload_is_refused() {
    // The client (5 books, actor 3) asks the server (3 books, actor 2); the
    // server's reply packs its 3 changes. The body of the third is replaced
    // by the body of a change the client itself made later (actor 3, seq 6,
    // on top of a sync with the server), keeping `deps: [Earlier(1)]`.
    // Automerge applies it, it validates and saves (`check_storable`), it is
    // committed, and receive returns Ok; but the stored chunks no longer
    // load: Automerge::load panics (`assertion left == right failed` in
    // ChangeGraph::add_changes), now caught, so every later `Replica::doc`
    // fails with "stored data .. does not load (the decoder failed)".
    let client = store_with_books(5, 3);
    let server = store_with_books(3, 2);
    // The client's 6th change, made after syncing with the server.
    let synced = full_sync(&client, &server).client;
    let mut r = Replica::with_actor(synced.clone(), actor(3));
    let before = r.doc(&books()).unwrap().heads();
    let rid = RecordId::from_u128(0x5000 + 100);
    r.edit(&books(), |d| d.insert(&ctx(100), rid, &book(100)))
        .unwrap();
    let sixth = r.doc(&books()).unwrap().automerge().get_changes(&before)[0]
        .raw_bytes()
        .to_vec();
    let PackedChange::Packed {
        rest: sixth_rest, ..
    } = packed::pack(&[&sixth[..]]).remove(0)
    else {
        panic!("packs")
    };
    // The server's reply, its third change's body swapped for the sixth's.
    let mut reply = Message::decode(&respond_on(&server, &first_request(&client))).unwrap();
    let Message::Response(docs) = &mut reply else {
        panic!("a response")
    };
    let (
        _,
        DocReply::Changes {
            data: ChangeData::Packed(p),
            ..
        },
    ) = docs.iter_mut().find(|(d, _)| *d == books()).unwrap()
    else {
        panic!("packed changes")
    };
    assert_eq!(p.len(), 3);
    let PackedChange::Packed { rest, deps } = &mut p[2] else {
        panic!("packed")
    };
    assert_eq!(deps, &vec![Dep::Earlier(1)]);
    *rest = sixth_rest;
    let reply = reply.encode();

    let store = client.snapshot_copy();
    let mut c = Replica::with_actor(store.clone(), actor(3));
    let mut session = SyncSession::new(server_peer(), scope());
    session.next_request(&mut c).unwrap().unwrap();
    let received = session.receive(&mut c, &reply);
    let reloaded = Replica::with_actor(store, actor(4))
        .doc(&books())
        .map(|_| ())
        .map_err(|e| e.to_string());
    assert!(
        received.is_err() || reloaded.is_ok(),
        "receive accepted the reply ({received:?}) and the stored document no longer loads: {reloaded:?}"
    );
}

/// An Automerge sync message whose one `have` carries a bloom filter of one
/// entry, 8 bits per entry (one byte of bits) and `probes` probes.
fn sync_message_with_probes(probes: u32) -> Vec<u8> {
    let mut bloom = vec![1, 8];
    let mut p = probes;
    loop {
        let b = (p & 0x7f) as u8;
        p >>= 7;
        if p == 0 {
            bloom.push(b);
            break;
        }
        bloom.push(b | 0x80);
    }
    bloom.push(0xff);
    let mut m = vec![0x42, 0, 0, 1, 0]; // sync, no heads, no need, one have, no last_sync
    m.push(bloom.len() as u8);
    m.extend(bloom);
    m.push(0); // no changes
    m
}

/// A peer's bloom filter with a probe count it picked (Automerge does work
/// per probe for every change it considers sending, and u32::MAX probes
/// would allocate 17 GB per change) is refused before any work is done.
#[test]
fn a_bloom_filter_with_a_huge_probe_count_is_refused() {
    let mut server = Replica::with_actor(store_with_books(3, 2), actor(9));
    let msg = sync_message_with_probes(20_000_000);
    let req = Message::Request(vec![(books(), DocRequest::Automerge(msg))]).encode();
    assert!(req.len() < 64, "{}", req.len());
    let out = respond(
        &mut server,
        &client_peer(),
        &AllowAll,
        &ResponderLimits::default(),
        &req,
    )
    .unwrap();
    match Message::decode(&out).unwrap() {
        Message::Refused(p) => assert!(
            p[0].message.contains("bloom filter is out of range"),
            "{p:?}"
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Writes a seed corpus for the cargo-fuzz targets in `sync-core/fuzz`
/// (their fixtures are the same replicas as here): every valid frame, raw and
/// deflated, each stored chunk, key and peer state.
#[test]
#[ignore = "tool, not a test: writes sync-core/fuzz/corpus; run with --ignored"]
fn write_fuzz_seed_corpus() {
    let f = fixture();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let write = |target: &str, items: &[Vec<u8>]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for item in items {
            std::fs::write(dir.join(hex_sha(item)), item).unwrap();
        }
        eprintln!("{target}: {} seeds", items.len());
    };
    let frames = |ms: &[Message]| -> Vec<Vec<u8>> {
        ms.iter()
            .flat_map(|m| [m.encode(), raw_frame(&postcard::to_stdvec(m).unwrap())])
            .collect()
    };
    let prefixed = |p: u8, items: Vec<Vec<u8>>| -> Vec<Vec<u8>> {
        items.into_iter().map(|i| [vec![p], i].concat()).collect()
    };
    write("wire_decode", &f.frames);
    write("respond", &frames(&f.requests));
    // The fuzz target's initiators are these fixtures' c2, c5 and c70
    // (first_rounds 0, 1 and 3): byte 0 picks one.
    let mut receive = Vec::new();
    for (pick, round) in [(0u8, 0usize), (1, 1), (2, 3)] {
        let m = Message::decode(&f.first_rounds[round].1).unwrap();
        receive.extend(prefixed(pick, frames(&[m])));
    }
    receive.extend(prefixed(1, frames(&f.responses)));
    write("session_receive", &receive);
    write("import_bundle", &frames(&f.bundles));
    write(
        "storage_key",
        &id_seeds()
            .into_iter()
            .map(String::into_bytes)
            .collect::<Vec<_>>(),
    );
    let mut chunks = Vec::new();
    for s in &f.chunk_stores {
        for (_, b) in s.load_range(&KeyPrefix::Doc(books())).unwrap() {
            chunks.push(b);
        }
    }
    chunks.sort();
    chunks.dedup();
    // Byte 0 picks the layout; 4 also re-computes checksums (see the target).
    write(
        "replica_load",
        &[prefixed(0, chunks.clone()), prefixed(4, chunks)].concat(),
    );
    let mut states = f.peer_states.clone();
    states.extend(f.am_states.iter().cloned());
    write(
        "peer_state",
        &[prefixed(0, states.clone()), prefixed(2, states)].concat(),
    );
}
