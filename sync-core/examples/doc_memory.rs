//! How much memory a loaded reference teaching point takes, per byte it
//! takes in storage: the figure behind `HubConfig::memory_per_stored_byte`.
//!
//!     cargo run --release -p sync-core --example doc_memory

use std::time::Instant;

use sync_core::harness::Rng;
use sync_core::store::{MemoryStorage, Storage};
use sync_core::workload::{build_teaching_point, Clock, TeachingPointSize};
use sync_core::{DocId, Replica, SchoolId};

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let school = SchoolId::new("4301230001").unwrap();
    let storage = MemoryStorage::new();
    let t = Instant::now();
    {
        let mut phone = Replica::open(storage.clone());
        let tp = build_teaching_point(
            &mut phone,
            &school,
            TeachingPointSize::REFERENCE,
            &mut Clock::new("teacher", "phone", 1_700_000_000_000),
            &mut Rng::new(1),
        )
        .unwrap();
        for id in DocId::all_for_school(&school) {
            phone.compact(&id).unwrap();
        }
        println!("built {} edits in {:?}", tp.edits, t.elapsed());
    }
    let stored: usize = DocId::all_for_school(&school)
        .iter()
        .map(|id| {
            storage
                .load_range(&sync_core::store::KeyPrefix::Doc(id.clone()))
                .unwrap()
                .iter()
                .map(|(_, v)| v.len())
                .sum::<usize>()
        })
        .sum();
    let mut replicas = Vec::new();
    let before = rss_kib();
    let n = 10;
    for _ in 0..n {
        let mut r = Replica::open(storage.clone());
        for id in DocId::all_for_school(&school) {
            r.doc(&id).unwrap();
        }
        replicas.push(r);
    }
    let after = rss_kib();
    let per = (after - before) * 1024 / n;
    println!(
        "stored {stored} B; loaded in memory ≈ {} KiB each ({} bytes per stored byte)",
        per / 1024,
        per / stored as u64
    );
}
