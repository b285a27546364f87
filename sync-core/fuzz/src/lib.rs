//! Shared code of the fuzz targets: fixtures (real replicas with books), the
//! contract each entry point must keep, and panic handling.
//!
//! libfuzzer-sys installs a panic hook that aborts on *any* panic, including
//! panics inside Automerge that sync-core catches on purpose (`guarded` turns
//! them into a `malformed` refusal). [`init`] replaces it: contained panics are
//! counted and ignored; a panic that escapes an entry point is printed and
//! aborts (a crash for libFuzzer). Environment:
//!
//! * `TPSYNC_FUZZ_ABORT_ON_CONTAINED=1`: abort on contained panics too (to
//!   hunt for Automerge panics that sync-core survives).
//! * `TPSYNC_FUZZ_BACKTRACE=1`: print a backtrace with an escaping panic.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use sync_core::records::{Book, BookStatus};
use sync_core::store::{KeyPrefix, MemoryStorage, Storage, StorageKey};
use sync_core::sync::{respond, AllowAll, DocRequest, Message, ResponderLimits, SyncSession};
use sync_core::{
    ActorId, ChangeHash, DocId, DocKind, EditContext, PeerId, RecordId, Replica, SchoolId,
};

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Call from `fuzz_target!(init: ...)`.
pub fn init() {
    let abort_on_contained =
        std::env::var("TPSYNC_FUZZ_ABORT_ON_CONTAINED").is_ok_and(|v| v != "0");
    let backtrace = std::env::var("TPSYNC_FUZZ_BACKTRACE").is_ok_and(|v| v != "0");
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if abort_on_contained {
            default(info);
            std::process::abort();
        }
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
        let trace = if backtrace {
            format!("\n{}", std::backtrace::Backtrace::force_capture())
        } else {
            String::new()
        };
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{msg} (at {at}){trace}")));
    }));
    let _ = fixture();
}

/// Runs one input of `target`; a panic escaping `f` is a crash.
pub fn run(target: &str, f: impl FnOnce()) {
    LAST_PANIC.with(|p| p.borrow_mut().take());
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        let panic = LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| "unknown panic".into());
        eprintln!("{target}: a decoder panicked: {panic}");
        std::process::abort();
    }
}

/// A broken contract that is not a panic.
#[track_caller]
pub fn violated(what: String) -> ! {
    eprintln!("contract violated: {what}");
    std::process::abort();
}

// ---------------------------------------------------------------------------
// Fixtures.
// ---------------------------------------------------------------------------

pub fn school() -> SchoolId {
    SchoolId::new("4301230001").unwrap()
}

pub fn books() -> DocId {
    DocId::school(&school(), DocKind::Books).unwrap()
}

pub fn scope() -> Vec<DocId> {
    vec![
        books(),
        DocId::school(&school(), DocKind::Equipment).unwrap(),
    ]
}

pub fn client_peer() -> PeerId {
    "phone-1".parse().unwrap()
}

pub fn server_peer() -> PeerId {
    "server".parse().unwrap()
}

pub fn actor(n: u8) -> ActorId {
    ActorId::from(vec![n; 16])
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

pub fn store_with_books(n: u32, who: u8) -> MemoryStorage {
    let store = MemoryStorage::new();
    let mut r = Replica::with_actor(store.clone(), actor(who));
    for i in 0..n {
        let ctx = EditContext {
            user: "teacher-1".parse().unwrap(),
            device: "phone-1".parse().unwrap(),
            now_ms: 1_700_000_000_000 + i64::from(i) * 1000,
        };
        let rid = RecordId::from_u128((u128::from(who) << 64) | u128::from(i));
        r.edit(&books(), |d| d.insert(&ctx, rid, &book(i))).unwrap();
    }
    store
}

pub struct Fixture {
    /// The responder: three books of its own.
    pub server: MemoryStorage,
    pub server_heads: BTreeMap<DocId, Vec<ChangeHash>>,
    /// Initiators with 2, 5 and 70 books (push, whole document, probe).
    pub clients: Vec<MemoryStorage>,
    /// A request carrying an Automerge sync message (from a fallback).
    pub automerge_request: Vec<u8>,
}

/// Sorted heads of every school document in `store`.
pub fn heads_of(store: &MemoryStorage) -> BTreeMap<DocId, Vec<ChangeHash>> {
    let mut r = Replica::with_actor(store.clone(), actor(0x40));
    DocId::all_for_school(&school())
        .into_iter()
        .map(|d| {
            let mut h = r.doc(&d).unwrap().heads();
            h.sort();
            (d, h)
        })
        .collect()
}

pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let server = store_with_books(3, 2);
        let clients = vec![
            store_with_books(2, 1),
            store_with_books(5, 3),
            store_with_books(70, 4),
        ];
        // Sync the 70-book client (they diverged: Automerge's protocol) and
        // keep its first Automerge request.
        let mut c = Replica::with_actor(clients[2].snapshot_copy(), actor(0x31));
        let mut s = Replica::with_actor(server.snapshot_copy(), actor(0x32));
        let mut session = SyncSession::new(server_peer(), scope());
        let mut automerge_request = None;
        while let Some(req) = session.next_request(&mut c).unwrap() {
            let is_am = matches!(Message::decode(&req), Ok(Message::Request(d))
                if d.iter().any(|(_, r)| matches!(r, DocRequest::Automerge(_))));
            if is_am && automerge_request.is_none() {
                automerge_request = Some(req.clone());
            }
            let resp = respond(
                &mut s,
                &client_peer(),
                &AllowAll,
                &ResponderLimits::default(),
                &req,
            )
            .unwrap();
            session.receive(&mut c, &resp).unwrap();
        }
        Fixture {
            server_heads: heads_of(&server),
            server,
            clients,
            automerge_request: automerge_request
                .expect("the fallback sends an Automerge sync message"),
        }
    })
}

// ---------------------------------------------------------------------------
// Contracts.
// ---------------------------------------------------------------------------

pub fn dump(store: &MemoryStorage) -> Vec<(StorageKey, Vec<u8>)> {
    let mut all = store.load_range(&KeyPrefix::AllDocs).unwrap();
    for peer in [client_peer(), server_peer()] {
        all.extend(store.load_range(&KeyPrefix::Peer(peer)).unwrap());
    }
    all
}

/// What is stored reloads, equals what is in memory, and is on its schema
/// (for every document the replica loaded: no other can have changed).
pub fn check_reloads(store: &MemoryStorage, replica: &mut Replica<MemoryStorage>) {
    let mut again = Replica::with_actor(store.clone(), actor(0x50));
    let loaded: Vec<DocId> = replica.loaded().cloned().collect();
    for d in loaded {
        let mut mem = replica
            .doc(&d)
            .unwrap_or_else(|e| violated(format!("{d} in memory: {e}")))
            .heads();
        let reloaded = match again.doc(&d) {
            Ok(r) => r,
            // bug_a_received_change_is_stored_that_no_longer_loads
            Err(e) => violated(format!("{d} does not reload: {e}")),
        };
        let mut disk = reloaded.heads();
        mem.sort();
        disk.sort();
        if mem != disk {
            violated(format!("{d} in memory and on disk differ"));
        }
        if let Err(e) = reloaded.validate() {
            violated(format!("{d} was stored off its schema: {e}"));
        }
    }
}

/// `respond` answers anything with a refusal or a response; a refusal
/// changes nothing.
pub fn check_respond(
    server_base: &MemoryStorage,
    expected_heads: &BTreeMap<DocId, Vec<ChangeHash>>,
    request: &[u8],
) {
    let store = server_base.snapshot_copy();
    let before = dump(&store);
    let keys_before = store.len();
    let mut server = Replica::with_actor(store.clone(), actor(0x32));
    let out = respond(
        &mut server,
        &client_peer(),
        &AllowAll,
        &ResponderLimits::default(),
        request,
    )
    .unwrap_or_else(|e| violated(format!("respond returned Err over a MemoryStorage: {e}")));
    match Message::decode(&out) {
        Ok(Message::Refused(problems)) => {
            if problems.is_empty() {
                violated("a refusal with no problem".into());
            }
            if store.len() != keys_before || dump(&store) != before {
                violated(format!("a refused request wrote to storage: {problems:?}"));
            }
            let loaded: Vec<DocId> = server.loaded().cloned().collect();
            for d in loaded.iter().filter(|d| expected_heads.contains_key(d)) {
                let mut h = server.doc(d).unwrap().heads();
                h.sort();
                if h != expected_heads[d] {
                    violated(format!("a refused request changed {d} in memory"));
                }
            }
        }
        Ok(Message::Response(_)) => check_reloads(&store, &mut server),
        other => violated(format!(
            "respond gave neither a refusal nor a response: {other:?}"
        )),
    }
}

/// Re-computes the checksum of each Automerge chunk in `bytes`, as a forged
/// (or unlucky) file would have it, so that mutations reach the decoders
/// behind the checksum. Compressed chunks (type 2) are left alone.
pub fn fix_checksums(bytes: &mut [u8]) {
    const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
    let mut pos = 0;
    while bytes.len() >= pos + 9 && bytes[pos..pos + 4] == MAGIC {
        let typ = bytes[pos + 8];
        let mut len: u64 = 0;
        let mut n = 0;
        loop {
            let Some(&b) = bytes.get(pos + 9 + n) else {
                return;
            };
            let Some(part) = u64::from(b & 0x7f).checked_shl(7 * n as u32) else {
                return;
            };
            len |= part;
            n += 1;
            if b & 0x80 == 0 || n == 10 {
                break;
            }
        }
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
