//! Crash test: a real sled store written by a child process that is killed
//! with SIGKILL at random moments, round after round, on one data directory.
//!
//! Each round spawns `crash-writer` (see `src/bin/crash_writer.rs`) on the
//! same directory, lets it write for a random 20–400 ms and kills it. Later
//! rounds therefore reopen a store that was killed mid-write, often in the
//! middle of a compaction. After every kill the test reopens the store itself
//! and proves:
//!
//! - the store opens, the Books document loads without error and passes
//!   schema validation;
//! - every insert the child reported as `DURABLE`, in any round so far, is
//!   there with its registration number;
//! - every book's shelf shows the last `UPDATED` value reported for it, or a
//!   newer one whose report the kill cut off, never an older one;
//! - nothing appeared that was never written: registration numbers are exactly
//!   `TS00000000..` without gaps or duplicates, and there is at most one
//!   unreported insert per kill (the one in flight). The gapless numbering
//!   also catches a chunk that is stored but silently left out when the
//!   document loads;
//! - compaction leaves no chunks behind beyond what interrupted compactions
//!   explain.
//!
//! What this does not prove: SIGKILL ends the process but keeps the kernel's
//! page cache, so written-but-not-fsynced data survives it. A missing `fsync`
//! would pass here; only a power cut (or a VM snapshot) would show it. What
//! it does prove is that a write is committed to sled, not only buffered in
//! the process, before `Replica::edit` acknowledges it, and that the store
//! reopens cleanly after a kill at any moment.

#![cfg(unix)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rand::Rng;
use sync_core::records::Book;
use sync_core::store::{KeyPrefix, SledStorage, Storage, StorageKey};
use sync_core::{DocId, DocKind, RecordId, Replica, SchoolId};
use tpsync_tests::CRASH_COMPACT_AFTER;

/// How many times the child is started and killed on the same directory.
const ROUNDS: usize = 12;
/// How long the child may write before it is killed, in ms (chosen at random).
const RUN_MS: std::ops::RangeInclusive<u64> = 20..=400;
const SCHOOL: &str = "4301230001";
/// SIGKILL's number, for checking the child died of our kill.
const SIGKILL: i32 = 9;

fn books_doc() -> DocId {
    DocId::school(&SchoolId::new(SCHOOL).expect("school code"), DocKind::Books)
        .expect("books doc id")
}

/// Everything the child has acknowledged so far, over all rounds.
#[derive(Default)]
struct Reported {
    /// Inserted books: id → registration number.
    inserts: BTreeMap<RecordId, String>,
    /// Shelf updates: id → the last shelf reported for it.
    shelves: BTreeMap<RecordId, String>,
    updates: usize,
}

/// What the store held after a kill.
struct Stored {
    books: usize,
    snapshots: usize,
    incrementals: usize,
}

impl Stored {
    /// Whether the kill evidently landed inside a compaction: its new snapshot
    /// was written but older chunks were not all deleted yet. (A kill between
    /// the last deletion and the next write cannot be told from none.)
    fn mid_compaction(&self) -> bool {
        self.snapshots > 1 || self.incrementals >= CRASH_COMPACT_AFTER
    }
}

/// What one round of the child reported.
struct Round {
    ran_ms: u64,
    inserts: usize,
    updates: usize,
}

/// Reads a child's stdout line by line until it closes. A last line without
/// its newline was cut off by the kill and is not a report, so it is dropped.
fn collect_lines(out: impl Read + Send + 'static) -> JoinHandle<Vec<String>> {
    thread::spawn(move || {
        let mut reader = BufReader::new(out);
        let mut lines = Vec::new();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) => break,
                Ok(_) if buf.ends_with(b"\n") => {
                    buf.pop();
                    lines.push(String::from_utf8(buf.clone()).expect("child output is UTF-8"));
                }
                Ok(_) => break,
                Err(e) => panic!("reading the child's output: {e}"),
            }
        }
        lines
    })
}

/// Starts the child on `dir`, lets it write for a random while, SIGKILLs it
/// and records what it acknowledged before dying.
fn run_and_kill(dir: &Path, round: usize, reported: &mut Reported) -> Round {
    let ran_ms = rand::thread_rng().gen_range(RUN_MS);
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash-writer"))
        .arg(dir)
        .arg(SCHOOL)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn crash-writer");
    let stdout = collect_lines(child.stdout.take().expect("piped stdout"));
    let mut stderr = child.stderr.take().expect("piped stderr");
    let stderr = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });

    thread::sleep(Duration::from_millis(ran_ms));
    let early = child.try_wait().expect("poll crash-writer");
    if early.is_none() {
        child.kill().expect("SIGKILL crash-writer");
    }
    let status = child.wait().expect("reap crash-writer");
    let lines = stdout.join().expect("stdout reader");
    let stderr = stderr.join().expect("stderr reader");
    assert_eq!(
        status.signal(),
        Some(SIGKILL),
        "round {round}: crash-writer ended by itself ({status}) instead of being killed:\n{stderr}"
    );

    let (mut inserts, mut updates) = (0, 0);
    for line in lines {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["DURABLE", id, reg_no] => {
                let id: RecordId = id.parse().expect("record id in DURABLE");
                let old = reported.inserts.insert(id, (*reg_no).to_owned());
                assert!(old.is_none(), "round {round}: record {id} inserted twice");
                inserts += 1;
            }
            ["UPDATED", id, shelf] => {
                let id: RecordId = id.parse().expect("record id in UPDATED");
                reported.shelves.insert(id, (*shelf).to_owned());
                reported.updates += 1;
                updates += 1;
            }
            _ => panic!("round {round}: unexpected line from crash-writer: {line:?}"),
        }
    }
    Round {
        ran_ms,
        inserts,
        updates,
    }
}

/// Reopens the store the child was killed in and checks it against everything
/// acknowledged so far (see the module docs). `kills` is how many rounds have
/// ended in a kill. The store is closed (its file lock released) when this
/// returns, so the next child can open it.
fn verify(dir: &Path, kills: usize, reported: &Reported) -> Stored {
    let doc_id = books_doc();
    let storage = SledStorage::open(dir)
        .unwrap_or_else(|e| panic!("after kill {kills}: the store does not reopen: {e}"));

    let chunks = storage
        .load_range(&KeyPrefix::Doc(doc_id.clone()))
        .unwrap_or_else(|e| panic!("after kill {kills}: cannot list chunks: {e}"));
    let snapshots = chunks
        .iter()
        .filter(|(k, _)| matches!(k, StorageKey::Snapshot { .. }))
        .count();
    let incrementals = chunks.len() - snapshots;
    // A compaction writes its snapshot, then deletes the older chunks one by
    // one; each kill inside one can leave one extra snapshot and one extra
    // incremental behind (the next run folds them in).
    assert!(
        snapshots <= 1 + kills && incrementals <= CRASH_COMPACT_AFTER + kills,
        "after kill {kills}: compaction leaks chunks: {snapshots} snapshots, {incrementals} incrementals"
    );

    let mut replica = Replica::open(storage);
    let doc = replica
        .doc(&doc_id)
        .unwrap_or_else(|e| panic!("after kill {kills}: the document does not load: {e}"));
    doc.validate()
        .unwrap_or_else(|e| panic!("after kill {kills}: stored document is invalid: {e}"));
    let books: BTreeMap<RecordId, Book> = doc
        .list::<Book>()
        .unwrap_or_else(|e| panic!("after kill {kills}: books do not read back: {e}"))
        .into_iter()
        .collect();

    for (id, reg_no) in &reported.inserts {
        let book = books.get(id).unwrap_or_else(|| {
            panic!("after kill {kills}: acknowledged insert {id} ({reg_no}) was lost")
        });
        assert_eq!(&book.reg_no, reg_no, "after kill {kills}: book {id}");
    }
    for (id, shelf) in &reported.shelves {
        let stored = books[id].shelf.as_deref().unwrap_or("");
        // Shelf names are `S` + the writer's zero-padded counter, so a later
        // update sorts after an earlier one. A newer value is an update made
        // durable just before the kill, whose report was cut off.
        assert!(
            stored >= shelf.as_str(),
            "after kill {kills}: acknowledged update of {id} to {shelf} was lost (shelf is {stored:?})"
        );
    }

    // Every stored book was written by the child, in order: numbers are
    // exactly 0..n, so no write was lost even where no report said so.
    let reg_nos: BTreeSet<&str> = books.values().map(|b| b.reg_no.as_str()).collect();
    let expected: BTreeSet<String> = (0..books.len()).map(|n| format!("TS{n:08}")).collect();
    assert!(
        reg_nos.len() == books.len()
            && reg_nos
                .iter()
                .copied()
                .eq(expected.iter().map(String::as_str)),
        "after kill {kills}: registration numbers are not exactly TS00000000..{}",
        books.len()
    );
    let unreported = books.len() - reported.inserts.len();
    assert!(
        unreported <= kills,
        "after kill {kills}: {unreported} books were stored that were never reported"
    );
    Stored {
        books: books.len(),
        snapshots,
        incrementals,
    }
}

/// The crash test itself: see the module docs.
#[test]
fn acknowledged_writes_survive_sigkill_at_random_moments() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut reported = Reported::default();
    let mut rounds_with_writes = 0;
    let mut rounds_with_compaction = 0;
    let mut kills_mid_compaction = 0;

    for round in 1..=ROUNDS {
        let r = run_and_kill(dir.path(), round, &mut reported);
        let stored = verify(dir.path(), round, &reported);
        if r.inserts > 0 {
            rounds_with_writes += 1;
        }
        if r.inserts + r.updates >= CRASH_COMPACT_AFTER {
            rounds_with_compaction += 1;
            if stored.mid_compaction() {
                kills_mid_compaction += 1;
            }
        }
        println!(
            "round {round:2}: killed after {:3} ms, {:4} inserts and {:3} updates acknowledged; \
             {} books in {} snapshot(s) + {} incremental(s){}",
            r.ran_ms,
            r.inserts,
            r.updates,
            stored.books,
            stored.snapshots,
            stored.incrementals,
            if stored.mid_compaction() {
                " (killed mid-compaction)"
            } else {
                ""
            }
        );
    }

    println!(
        "crash test: {} acknowledged inserts and {} acknowledged updates checked after {ROUNDS} kills \
         ({rounds_with_writes} rounds wrote, {rounds_with_compaction} compacted, \
         {kills_mid_compaction} evidently killed mid-compaction) in {:.1?}",
        reported.inserts.len(),
        reported.updates,
        started.elapsed()
    );
    assert!(
        rounds_with_writes >= ROUNDS / 2,
        "only {rounds_with_writes} of {ROUNDS} rounds wrote anything: the test proves too little"
    );
    assert!(
        rounds_with_compaction > 0,
        "no round ran long enough to compact: kills never hit a compaction"
    );
}
