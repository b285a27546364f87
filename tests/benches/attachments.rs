//! Photos over a 2G link that drops: 100 photos of 300 KB uploaded by a
//! teacher's phone to the real `tpsync serve`, through the fault-injecting
//! proxy that cuts each connection after a random number of bytes.
//!
//! The link is emulated by bytes, not by waiting: at 50 kbit/s a link that
//! drops every `T` seconds on average carries `T × 6250` bytes between
//! drops, so each connection is cut after a number of bytes drawn
//! uniformly from 0.2–1.8 times that. Bytes are counted by the proxy as
//! they cross it (headers, resent and lost bytes included). Air time is
//! modeled as all bytes at 50 kbit/s plus 600 ms per request.
//!
//! Target (issue 7): bytes sent ÷ bytes of the photos ≤ 1.05 on a link that
//! drops every 30 s. Printed PASS/MISS; a miss exits non-zero.
//!
//! ```text
//! cargo bench -p tpsync-tests --bench attachments
//! TPSYNC_BENCH_PHOTOS=20 cargo bench -p tpsync-tests --bench attachments   # quicker
//! ```

use std::time::Instant;

use tpsync_blobs::BlobHash;
use tpsync_client::{Client, ClientConfig};
use tpsync_tests::county::{self, County};
use tpsync_tests::phone::{photo, Phone};
use tpsync_tests::proxy::{FaultPlan, FaultyProxy};
use tpsync_tests::server::TestServer;

const PHOTO_BYTES: usize = 300_000;
const LINK_BYTES_PER_S: f64 = 50_000.0 / 8.0;
const RTT_S: f64 = 0.6;

struct Row {
    link: String,
    photos: usize,
    photo_bytes: u64,
    up: u64,
    down: u64,
    cuts: u64,
    requests: u64,
    wall_s: f64,
}

fn main() {
    let n: usize = std::env::var("TPSYNC_BENCH_PHOTOS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(data.path());
    let county = County::setup(&server);
    let school = county::school(1);
    let token = county.teachers[1].access_token.clone();
    let mut phone = Phone::new(county.teachers[1].clone());
    let dir = tempfile::tempdir().unwrap();

    // (label, mean seconds of air time between drops)
    let links: [(&str, Option<f64>); 4] = [
        ("no drops", None),
        ("drops every ~120 s", Some(120.0)),
        ("drops every ~30 s", Some(30.0)),
        ("drops every ~10 s", Some(10.0)),
    ];
    let mut rows = Vec::new();
    for (li, (label, every)) in links.iter().enumerate() {
        // Fresh photos per link (the server keeps what it has), their
        // records synced first, as the phone does.
        let mut files = Vec::new();
        for i in 0..n {
            let bytes = photo(PHOTO_BYTES, (li * 10_000 + i) as u64 + 1);
            let hash = BlobHash::of(&bytes);
            let item = phone.add_equipment(&school, li * 10_000 + i);
            phone.attach_photo(&school, item, &hash.to_hex(), PHOTO_BYTES as u64, i);
            let path = dir.path().join(format!("{hash}.jpg"));
            std::fs::write(&path, &bytes).unwrap();
            files.push((hash, path));
        }
        phone.sync_all(&county.client).expect("records first");

        let cut = every.map(|s| {
            let mean = s * LINK_BYTES_PER_S;
            ((0.2 * mean) as u64, (1.8 * mean) as u64)
        });
        let proxy = FaultyProxy::start(
            server.url.trim_start_matches("http://").parse().unwrap(),
            FaultPlan {
                seed: 42 + li as u64,
                cut_after_bytes: cut,
                ..FaultPlan::default()
            },
        )
        .unwrap();
        let client = Client::new(&proxy.url(), ClientConfig::default()).unwrap();
        let mut requests = 0u64;
        let started = Instant::now();
        for (hash, path) in &files {
            // `on_progress` hears once per attempt (after its POST, which
            // precedes a PUT) and once at the end.
            let mut calls = 0u64;
            let done = client
                .upload_file(&token, school.as_str(), hash, path, 100, &mut |_| {
                    calls += 1
                })
                .unwrap_or_else(|e| panic!("upload over '{label}': {e}"));
            assert!(done.complete);
            requests += 2 * calls.saturating_sub(1);
        }
        rows.push(Row {
            link: label.to_string(),
            photos: n,
            photo_bytes: (n * PHOTO_BYTES) as u64,
            up: proxy.bytes_up(),
            down: proxy.bytes_down(),
            cuts: proxy.cuts(),
            requests,
            wall_s: started.elapsed().as_secs_f64(),
        });
    }

    println!(
        "\n{n} photos × {PHOTO_BYTES} bytes, 50 kbit/s emulated, one phone, `tpsync serve` on loopback\n"
    );
    println!("| link | cuts | requests | bytes up | up ÷ photos | bytes down | modeled air time | wall (loopback) |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let ratio = r.up as f64 / r.photo_bytes as f64;
        let air = (r.up + r.down) as f64 / LINK_BYTES_PER_S + r.requests as f64 * RTT_S;
        let ideal = r.photo_bytes as f64 / LINK_BYTES_PER_S;
        println!(
            "| {} | {} | {} | {} | {:.4} | {} | {:.0} s ({:.2}× the photos alone) | {:.1} s |",
            r.link,
            r.cuts,
            r.requests,
            r.up,
            ratio,
            r.down,
            air,
            air / ideal,
            r.wall_s
        );
        let _ = r.photos;
    }
    let target = rows
        .iter()
        .find(|r| r.link.contains("30 s"))
        .map(|r| r.up as f64 / r.photo_bytes as f64)
        .unwrap();
    let pass = target <= 1.05;
    println!(
        "\ntarget: bytes sent ÷ bytes of the photos ≤ 1.05 on a link dropping every ~30 s: {target:.4} {}",
        if pass { "PASS" } else { "MISS" }
    );
    if !pass {
        std::process::exit(1);
    }
}
