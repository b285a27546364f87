//! Resident memory of sled under the server's write pattern, without
//! Automerge: how much of the server's RSS is the store's own.
//!
//!     cargo run --release -p tpsync-server --example sled_memory

fn rss_mib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let cache_mb: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(32);
    let db = sled::Config::new()
        .path(dir.path().join("db"))
        .cache_capacity(cache_mb << 20)
        .mode(sled::Mode::LowSpace)
        .open()
        .unwrap();
    println!("start: {} MiB", rss_mib());
    let mut written = 0usize;
    for school in 0..300 {
        for doc in 0..6 {
            // A first upload: one snapshot; then a day's chunks and peer states.
            // A first upload arrives as one chunk of raw changes (about 1.5 MB
            // for the books of a teaching point).
            let snap = vec![(school * 7 + doc) as u8; if doc == 2 { 1_500_000 } else { 150_000 }];
            db.insert(format!("doc/{school}/{doc}/snapshot"), snap.clone())
                .unwrap();
            db.flush().unwrap();
            written += snap.len();
            for n in 0..20 {
                let chunk = vec![n as u8; 1_500];
                db.insert(format!("doc/{school}/{doc}/inc/{n}"), chunk.clone())
                    .unwrap();
                db.insert(format!("peer/{school}/{doc}"), vec![1u8; 200])
                    .unwrap();
                db.flush().unwrap();
                written += chunk.len();
            }
        }
    }
    println!(
        "after writing {} MiB in {} flushes: {} MiB resident (sled cache {} MiB)",
        written >> 20,
        300 * 6 * 21,
        rss_mib(),
        cache_mb
    );
}
