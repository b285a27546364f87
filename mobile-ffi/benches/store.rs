//! Phone-side store benchmark on the brief's reference teaching point, through
//! the same Rust functions the apps call over the FFI ([`SchoolStore`]).
//!
//!     cargo bench -p mobile-ffi --bench store
//!
//! Targets of the mobile-ffi issue:
//!
//! - open a teaching point's store and list its 2,000 books in under 100 ms;
//! - peak RSS under 40 MB;
//! - one local write made durable in under 5 ms (median).
//!
//! The store is prepared once, the way a phone holds it after its first
//! sync: the reference teaching point (profile, 300 equipment items, 2,000
//! books, 120 archive items, 60 checklist rows and their edit history) built
//! on one replica, then carried into a fresh [`SchoolStore`] as a bundle. It
//! is cached under `target/tpsync-bench/mobile-store-v1/` (set
//! `TPSYNC_BENCH_REBUILD=1` to build it again).
//!
//! Every measured run is a child process (this binary re-executed with
//! `TPSYNC_BENCH_PHASE`) over a fresh copy of that store, so its peak RSS
//! (`VmHWM`) is that of the measured work alone, with the system allocator
//! the phones use. A `measure` child opens the store, lists every book (cold:
//! the document is loaded from disk), lists again (warm), asks for the first
//! page of 50 by title, then makes durable writes (book creates, edits and
//! status changes, each timed alone) and reopens the store to check them. A
//! `screen` child opens the store and asks for the first page of 50 only,
//! what a list screen shows first. A `breakdown` child times the steps of a
//! cold list one by one with sync-core's public functions.
//!
//! "Durable" is what `SchoolStore` promises: sled's flush before the call
//! returns (on Linux, `sync_file_range` on the log). A VM's disk answers that
//! in tens of microseconds; a phone's flash is slower.
//!
//! Knobs: `TPSYNC_BENCH_RUNS` (measure children, default 15),
//! `TPSYNC_BENCH_SCREEN_RUNS` (default 5), `TPSYNC_BENCH_WRITES` (per measure
//! child, default 200).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use mobile_ffi::sync_core::harness::Rng;
use mobile_ffi::sync_core::records::{AnyRecord, Book, RecordKind, RecordQuery};
use mobile_ffi::sync_core::store::{MemoryStorage, SledStorage};
use mobile_ffi::sync_core::sync::{export_bundle, BundleScope};
use mobile_ffi::sync_core::workload::{
    build_teaching_point, sample_book, Clock, TeachingPointSize,
};
use mobile_ffi::sync_core::{DocId, DocKind, Replica, SchoolId};
use mobile_ffi::{SchoolStore, StoreConfig};

const SCHOOL: &str = "4301230001";
const COUNTY: &str = "430123";
const BOOKS: usize = TeachingPointSize::REFERENCE.books;
const PAGE: u32 = 50;

const TARGET_OPEN_LIST_MS: f64 = 100.0;
const TARGET_RSS_MB: f64 = 40.0;
const TARGET_WRITE_MS: f64 = 5.0;

const PHASE_ENV: &str = "TPSYNC_BENCH_PHASE";
const STORE_ENV: &str = "TPSYNC_BENCH_STORE";
const WRITES_ENV: &str = "TPSYNC_BENCH_WRITES";
const RUNS_ENV: &str = "TPSYNC_BENCH_RUNS";
const SCREEN_RUNS_ENV: &str = "TPSYNC_BENCH_SCREEN_RUNS";
const REBUILD_ENV: &str = "TPSYNC_BENCH_REBUILD";
/// Each line a child reports starts with this.
const REPORT: &str = "tpsync-bench:";

fn main() {
    match std::env::var(PHASE_ENV).as_deref() {
        Ok("measure") => return measure_child(),
        Ok("screen") => return screen_child(),
        Ok("breakdown") => return breakdown_child(),
        _ => {}
    }
    // `cargo bench` passes `--bench`; a test run of every target does not,
    // and should not spend two minutes here.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("store bench: run with `cargo bench -p mobile-ffi --bench store`");
        return;
    }
    parent();
}

// ----- the measured children ----------------------------------------------

fn config(path: &Path, user: &str, device: &str) -> StoreConfig {
    StoreConfig {
        path: path.to_str().expect("a UTF-8 path").to_owned(),
        school_code: SCHOOL.into(),
        county_code: Some(COUNTY.into()),
        username: user.into(),
        device_id: device.into(),
    }
}

fn child_store_path() -> PathBuf {
    PathBuf::from(std::env::var_os(STORE_ENV).expect("the parent names the store"))
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn report(key: &str, value: impl std::fmt::Display) {
    println!("{REPORT} {key} {value}");
}

fn first_page() -> RecordQuery {
    RecordQuery {
        sort_by: Some("title".into()),
        limit: PAGE,
        ..RecordQuery::all(RecordKind::Book)
    }
}

fn measure_child() {
    let path = child_store_path();
    let writes: usize = env_usize(WRITES_ENV, 200);
    report("rss_start_kib", status_kib("VmRSS:"));

    let t = Instant::now();
    let store = SchoolStore::open(config(&path, "teacher-2", "phone-2")).expect("open the store");
    let open = t.elapsed();
    let t = Instant::now();
    let all = store
        .list(RecordQuery::all(RecordKind::Book))
        .expect("list the books");
    let list = t.elapsed();
    assert_eq!(all.records.len(), BOOKS, "every book listed");
    assert_eq!(all.total as usize, BOOKS);
    report("open_us", open.as_micros());
    report("list_us", list.as_micros());
    report("hwm_open_list_kib", status_kib("VmHWM:"));

    let t = Instant::now();
    let again = store
        .list(RecordQuery::all(RecordKind::Book))
        .expect("list the books again");
    report("list_warm_us", t.elapsed().as_micros());
    assert_eq!(again.records.len(), BOOKS);
    drop(again);
    let t = Instant::now();
    let page = store.list(first_page()).expect("a page of books");
    report("page_warm_us", t.elapsed().as_micros());
    assert_eq!(page.records.len(), PAGE as usize);
    assert_eq!(page.total as usize, BOOKS);

    // Durable writes, as a teacher makes them: a new book, an edit (the
    // book moved shelf) and a status change (weeded), in turn, each timed
    // alone. Every call returns only once the change is on disk.
    let mut times = Vec::with_capacity(writes);
    let mut created = 0;
    for i in 0..writes {
        let target = &all.records[(i * 7) % BOOKS];
        let id = target.id.to_string();
        match i % 3 {
            0 => {
                let record = AnyRecord::Book {
                    record: sample_book(100_000 + i),
                };
                let t = Instant::now();
                store.create(record).expect("create a book");
                times.push(('c', t.elapsed()));
                created += 1;
            }
            1 => {
                let base = target.record.clone();
                let AnyRecord::Book { record } = &base else {
                    panic!("a book query returned another kind");
                };
                let edited = AnyRecord::Book {
                    record: Book {
                        shelf: Some(format!("Z-{i}")),
                        ..record.clone()
                    },
                };
                let t = Instant::now();
                let changed = store.update(id, base, edited).expect("edit a book");
                times.push(('u', t.elapsed()));
                assert!(changed);
            }
            _ => {
                let t = Instant::now();
                let changed = store
                    .set_status(
                        RecordKind::Book,
                        id,
                        "weeded".into(),
                        Some("破损严重".into()),
                        Some("2025-11-21".into()),
                    )
                    .expect("weed a book");
                times.push(('s', t.elapsed()));
                assert!(changed);
            }
        }
    }
    report("hwm_end_kib", status_kib("VmHWM:"));
    let line: Vec<String> = times
        .iter()
        .map(|(k, d)| format!("{k}{}", d.as_micros()))
        .collect();
    report("write_us", line.join(" "));

    // The writes are on disk: a reopened store sees them (not measured).
    drop((all, page, store));
    let store = SchoolStore::open(config(&path, "teacher-2", "phone-2")).expect("reopen");
    let n = store
        .list(RecordQuery::all(RecordKind::Book))
        .expect("list after reopen")
        .records
        .len();
    assert_eq!(n, BOOKS + created, "every created book is stored");
    report("verified", n);
}

fn screen_child() {
    let path = child_store_path();
    let t = Instant::now();
    let store = SchoolStore::open(config(&path, "teacher-2", "phone-2")).expect("open the store");
    let page = store.list(first_page()).expect("a page of books");
    report("open_page_us", t.elapsed().as_micros());
    assert_eq!(page.records.len(), PAGE as usize);
    report("hwm_kib", status_kib("VmHWM:"));
}

/// Where a cold list's time goes, step by step, with sync-core's own public
/// functions over the same store (what `SchoolStore::list` does inside).
fn breakdown_child() {
    let path = child_store_path();
    let t = Instant::now();
    let storage = SledStorage::open(&path).expect("open sled");
    report("sled_open_us", t.elapsed().as_micros());
    let mut replica = Replica::open(storage);
    let id = DocId::school(&SchoolId::new(SCHOOL).expect("a code"), DocKind::Books).expect("an id");
    let t = Instant::now();
    let doc = replica.doc(&id).expect("load the books");
    report("load_doc_us", t.elapsed().as_micros());
    let t = Instant::now();
    let records = doc.list_any(RecordKind::Book).expect("read the books");
    report("read_records_us", t.elapsed().as_micros());
    assert_eq!(records.len(), BOOKS);
    let t = Instant::now();
    let json: Vec<_> = records.iter().map(|(_, r)| r.to_json()).collect();
    report("to_json_us", t.elapsed().as_micros());
    let t = Instant::now();
    let conflicted = doc
        .conflicted_records(RecordKind::Book.spec())
        .expect("conflicts");
    report("conflicted_records_us", t.elapsed().as_micros());
    assert!(conflicted.is_empty());
    let t = Instant::now();
    let mut titles: Vec<&str> = json
        .iter()
        .map(|j| j.get("title").and_then(|t| t.as_str()).unwrap_or(""))
        .collect();
    titles.sort_unstable();
    report("sort_titles_us", t.elapsed().as_micros());
    let t = Instant::now();
    drop(titles);
    drop((json, records));
    report("drop_us", t.elapsed().as_micros());
}

// ----- the parent: prepare, run children, report ---------------------------

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn bench_root() -> PathBuf {
    // target/release/deps/store-… → target/tpsync-bench/mobile-store-v1
    let exe = std::env::current_exe().expect("the bench's own path");
    exe.ancestors()
        .nth(3)
        .expect("target/<profile>/deps/<bench>")
        .join("tpsync-bench")
        .join("mobile-store-v1")
}

/// The teaching point's store after its first sync, built once.
fn prepared_store(root: &Path) -> PathBuf {
    let store = root.join("store");
    let ready = root.join("store.ready");
    if ready.exists() && store.exists() && std::env::var_os(REBUILD_ENV).is_none() {
        println!("store: cached at {}", store.display());
        return store;
    }
    let _ = std::fs::remove_file(&ready);
    let _ = std::fs::remove_dir_all(&store);
    let tmp = root.join("store.tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(root).expect("create the bench directory");

    let t = Instant::now();
    let school = SchoolId::new(SCHOOL).expect("a school code");
    let mut author = Replica::open(MemoryStorage::new());
    let tp = build_teaching_point(
        &mut author,
        &school,
        TeachingPointSize::REFERENCE,
        &mut Clock::new("teacher-1", "phone-1", 1_763_000_000_000),
        &mut Rng::new(42),
    )
    .expect("build the teaching point");
    let docs = DocId::all_for_school(&school);
    let bundle = export_bundle(&mut author, &docs, &BundleScope::Everything).expect("a bundle");
    drop(author);
    let phone = SchoolStore::open(config(&tmp, "teacher-1", "phone-1")).expect("a new store");
    phone
        .import_bundle(bundle.clone())
        .expect("import the bundle");
    drop(phone);
    std::fs::rename(&tmp, &store).expect("move the store in place");
    std::fs::write(&ready, "reference teaching point, seed 42\n").expect("mark the store ready");
    println!(
        "store: built {} edits, bundle of {} KiB imported, in {:.1} s → {}",
        tp.edits,
        bundle.len() / 1024,
        t.elapsed().as_secs_f64(),
        store.display()
    );
    store
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a run directory");
    for entry in std::fs::read_dir(from).expect("read the prepared store") {
        let entry = entry.expect("a directory entry");
        let dest = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).expect("copy a store file");
        }
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Runs one child over a fresh copy of the store; returns its report.
fn run_child(
    phase: &str,
    prepared: &Path,
    runs_dir: &Path,
    writes: usize,
) -> BTreeMap<String, String> {
    let run = tempfile::tempdir_in(runs_dir).expect("a run directory");
    let path = run.path().join("store");
    copy_dir(prepared, &path);
    let out = Command::new(std::env::current_exe().expect("the bench's own path"))
        .env(PHASE_ENV, phase)
        .env(STORE_ENV, &path)
        .env(WRITES_ENV, writes.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("run a measured child");
    assert!(
        out.status.success(),
        "the {phase} child failed: {}",
        out.status
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix(REPORT))
        .filter_map(|l| l.trim().split_once(' '))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn num(r: &BTreeMap<String, String>, key: &str) -> f64 {
    r.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("the child reported no {key}"))
}

/// The nearest-rank percentile `p` (0–100) of `v`.
fn pct(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
    s[rank.min(s.len()) - 1]
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

fn parent() {
    let runs = env_usize(RUNS_ENV, 15).max(1);
    let screen_runs = env_usize(SCREEN_RUNS_ENV, 5);
    let writes = env_usize(WRITES_ENV, 200);
    let started = Instant::now();
    println!("tpsync mobile store benchmark — reference teaching point (300 equipment, 2000 books, 120 archive items, 60 checklist rows, with history)");
    println!(
        "command: {RUNS_ENV}={runs} {SCREEN_RUNS_ENV}={screen_runs} {WRITES_ENV}={writes} cargo bench -p mobile-ffi --bench store"
    );

    let root = bench_root();
    let prepared = prepared_store(&root);
    println!(
        "store on disk: {} KiB (sled, as after the first sync)",
        dir_bytes(&prepared) / 1024
    );
    let runs_dir = root.join("runs");
    let _ = std::fs::remove_dir_all(&runs_dir);
    std::fs::create_dir_all(&runs_dir).expect("create the runs directory");

    let mut open = Vec::new();
    let mut list = Vec::new();
    let mut open_list = Vec::new();
    let mut list_warm = Vec::new();
    let mut page_warm = Vec::new();
    let mut rss_start = Vec::new();
    let mut hwm_open_list = Vec::new();
    let mut hwm_end = Vec::new();
    let mut write_ms: Vec<f64> = Vec::new();
    let mut by_kind: BTreeMap<char, Vec<f64>> = BTreeMap::new();
    for _ in 0..runs {
        let r = run_child("measure", &prepared, &runs_dir, writes);
        let o = num(&r, "open_us") / 1000.0;
        let l = num(&r, "list_us") / 1000.0;
        open.push(o);
        list.push(l);
        open_list.push(o + l);
        list_warm.push(num(&r, "list_warm_us") / 1000.0);
        page_warm.push(num(&r, "page_warm_us") / 1000.0);
        rss_start.push(num(&r, "rss_start_kib") / 1024.0);
        hwm_open_list.push(num(&r, "hwm_open_list_kib") / 1024.0);
        hwm_end.push(num(&r, "hwm_end_kib") / 1024.0);
        for w in r
            .get("write_us")
            .map(String::as_str)
            .unwrap_or("")
            .split_whitespace()
        {
            let mut chars = w.chars();
            let kind = chars.next().expect("a write kind");
            let ms = chars.as_str().parse::<f64>().expect("microseconds") / 1000.0;
            write_ms.push(ms);
            by_kind.entry(kind).or_default().push(ms);
        }
    }
    let mut open_page = Vec::new();
    let mut hwm_screen = Vec::new();
    for _ in 0..screen_runs {
        let r = run_child("screen", &prepared, &runs_dir, 0);
        open_page.push(num(&r, "open_page_us") / 1000.0);
        hwm_screen.push(num(&r, "hwm_kib") / 1024.0);
    }
    let breakdown_runs = screen_runs.max(3);
    let mut steps: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for _ in 0..breakdown_runs {
        for (k, v) in run_child("breakdown", &prepared, &runs_dir, 0) {
            steps
                .entry(k)
                .or_default()
                .push(v.parse::<f64>().expect("µs") / 1000.0);
        }
    }
    let _ = std::fs::remove_dir_all(&runs_dir);

    let row = |name: &str, v: &[f64], unit: &str| {
        println!(
            "  {name:<44} median {:>8.2} {unit}   p90 {:>8.2} {unit}   max {:>8.2} {unit}",
            pct(v, 50.0),
            pct(v, 90.0),
            pct(v, 100.0)
        );
    };
    println!();
    println!("{runs} measure children (fresh copy of the store each, system allocator):");
    row("open (SchoolStore::open)", &open, "ms");
    row("list 2000 books, cold (loads the document)", &list, "ms");
    row("open + list 2000 books", &open_list, "ms");
    row("list 2000 books again, warm", &list_warm, "ms");
    row("page of 50 by title, warm", &page_warm, "ms");
    if !open_page.is_empty() {
        row(
            &format!("open + page of 50 by title, cold ({screen_runs} runs)"),
            &open_page,
            "ms",
        );
    }
    row("RSS at process start", &rss_start, "MiB");
    row("peak RSS after open + list", &hwm_open_list, "MiB");
    row(
        &format!("peak RSS after {writes} writes too"),
        &hwm_end,
        "MiB",
    );
    if !hwm_screen.is_empty() {
        row("peak RSS, open + page of 50", &hwm_screen, "MiB");
    }
    println!();
    println!(
        "where a cold list goes ({breakdown_runs} children, sync-core's functions one by one):"
    );
    for (key, name) in [
        ("sled_open_us", "sled open"),
        ("load_doc_us", "load the books document (Automerge::load)"),
        ("read_records_us", "read 2000 books (list_any)"),
        ("to_json_us", "2000 records to JSON (query's filter/sort)"),
        (
            "conflicted_records_us",
            "conflicted_records (scan every book)",
        ),
        ("sort_titles_us", "sort 2000 titles"),
        ("drop_us", "free the lot"),
    ] {
        if let Some(v) = steps.get(key) {
            row(name, v, "ms");
        }
    }
    println!();
    if !write_ms.is_empty() {
        let slow = write_ms.iter().filter(|&&w| w >= TARGET_WRITE_MS).count();
        println!(
            "{} durable writes ({writes} per child; {slow} took ≥ {TARGET_WRITE_MS} ms):",
            write_ms.len()
        );
        row("any write", &write_ms, "ms");
        for (kind, v) in &by_kind {
            let name = match kind {
                'c' => "create a book",
                'u' => "update a book (shelf)",
                's' => "set_status weeded",
                _ => "other",
            };
            row(name, v, "ms");
        }
        println!();
    }

    let ol = pct(&open_list, 50.0);
    let rss = pct(&hwm_end, 100.0).max(pct(&hwm_open_list, 100.0));
    let wm = if write_ms.is_empty() {
        f64::NAN
    } else {
        pct(&write_ms, 50.0)
    };
    println!("targets:");
    println!(
        "  {}  open + list 2000 books < {TARGET_OPEN_LIST_MS} ms: median {ol:.1} ms (p90 {:.1} ms)",
        verdict(ol < TARGET_OPEN_LIST_MS),
        pct(&open_list, 90.0)
    );
    println!(
        "  {}  peak RSS < {TARGET_RSS_MB} MB (= {:.1} MiB): max {rss:.1} MiB over all children (median {:.1} MiB)",
        verdict(rss * 1.048_576 < TARGET_RSS_MB),
        TARGET_RSS_MB / 1.048_576,
        pct(&hwm_end, 50.0)
    );
    println!(
        "  {}  durable write median < {TARGET_WRITE_MS} ms: {wm:.2} ms (p90 {:.2} ms)",
        verdict(wm < TARGET_WRITE_MS),
        if write_ms.is_empty() {
            f64::NAN
        } else {
            pct(&write_ms, 90.0)
        }
    );
    println!("({:.0} s in all)", started.elapsed().as_secs_f64());
}
