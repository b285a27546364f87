//! A sync storm with the server SIGKILLed at random moments.
//!
//! Ten phones of four schools (two or three per school) each add books and
//! shelve them in a loop, syncing over HTTP after every edit. The server is
//! killed with SIGKILL at random moments, five times, and restarted on the
//! same data directory (on a new port; the phones follow). Every edit made
//! before a sync that returned `Ok` is acknowledged.
//!
//! Proven:
//! - after every kill, the restarted server holds every record acknowledged
//!   before the kill (read by the county user into a fresh replica), and
//!   after the storm every record acknowledged at all, before any phone
//!   syncs again (so a lost write cannot be healed by a re-push);
//! - phones see only transport errors while the server dies (never a
//!   refusal or a frame that does not decode);
//! - after two clean final syncs of every phone, the server has exactly the
//!   books the phones created, every document validates, and every phone
//!   has the same heads as the server for every document of its school;
//! - each shelf on the server is the last one its phone set.

#![cfg(unix)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use rand::Rng;
use sync_core::records::Book;
use sync_core::{RecordId, SchoolId};
use tpsync_client::ClientError;
use tpsync_tests::county::{self, County};
use tpsync_tests::phone::{book_ids, books, fresh_view, heads, Phone};
use tpsync_tests::server::{test_client, TestServer};

const PHONES: usize = 10;
const KILLS: usize = 5;
/// How long the storm runs between restarts and kills, in ms.
const RUN_MS: std::ops::RangeInclusive<u64> = 300..=1_200;

/// What the phones have acknowledged, shared with the main thread.
#[derive(Default)]
struct Acked {
    /// Books whose insert was acknowledged: id → school.
    books: BTreeMap<RecordId, SchoolId>,
}

#[derive(Default, Debug)]
struct Tally {
    syncs_ok: usize,
    unreachable: usize,
    cut: usize,
    timeout: usize,
    other: Vec<String>,
}

struct PhoneRun {
    phone: Phone,
    school: SchoolId,
    /// Every book this phone created, and the last shelf it set for each.
    created: BTreeMap<RecordId, Option<String>>,
    tally: Tally,
}

fn storm_phone(
    mut phone: Phone,
    school: SchoolId,
    index: usize,
    url: Arc<RwLock<String>>,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Acked>>,
) -> PhoneRun {
    let scope = county::school_docs(
        county::SCHOOLS
            .iter()
            .position(|s| s.0 == school.as_str())
            .unwrap(),
    );
    let mut rng = rand::thread_rng();
    let mut created: BTreeMap<RecordId, Option<String>> = BTreeMap::new();
    let mut pending: Vec<RecordId> = Vec::new();
    let mut tally = Tally::default();
    let mut n = 0;
    let mut client_url = String::new();
    let mut client = None;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let id = phone.add_book(&school, index * 100_000 + n);
        created.insert(id, None);
        pending.push(id);
        if n % 3 == 0 {
            // 上架: shelve one of this phone's books.
            let ids: Vec<RecordId> = created.keys().copied().collect();
            let target = ids[rng.gen_range(0..ids.len())];
            let shelf = format!("S{index}-{n:05}");
            phone.shelve(&school, target, &shelf);
            created.insert(target, Some(shelf));
        }
        let now = url.read().unwrap().clone();
        if now != client_url {
            client = Some(test_client(&now));
            client_url = now;
        }
        match phone.sync(client.as_ref().unwrap(), &scope) {
            Ok(_) => {
                tally.syncs_ok += 1;
                let mut a = acked.lock().unwrap();
                for id in pending.drain(..) {
                    a.books.insert(id, school.clone());
                }
            }
            Err(e) => {
                match &e {
                    ClientError::Unreachable(_) => tally.unreachable += 1,
                    ClientError::ConnectionLost(_) => tally.cut += 1,
                    ClientError::Timeout => tally.timeout += 1,
                    other => tally.other.push(format!("{other:?}")),
                }
                thread::sleep(Duration::from_millis(30));
            }
        }
        thread::sleep(Duration::from_millis(rng.gen_range(0..20)));
    }
    PhoneRun {
        phone,
        school,
        created,
        tally,
    }
}

/// Every acknowledged book is on the server, as the county reads it.
fn check_acked(server: &TestServer, fx: &County, acked: &BTreeMap<RecordId, SchoolId>, when: &str) {
    let client = server.client();
    let mut view = fresh_view(&client, &fx.county, None)
        .unwrap_or_else(|e| panic!("{when}: the county's read failed: {e}"));
    let mut on_server: BTreeMap<SchoolId, BTreeSet<RecordId>> = BTreeMap::new();
    for i in 0..county::SCHOOLS.len() {
        let s = county::school(i);
        on_server.insert(s.clone(), book_ids(&mut view, &s).into_iter().collect());
    }
    let lost: Vec<&RecordId> = acked
        .iter()
        .filter(|(id, s)| !on_server[*s].contains(id))
        .map(|(id, _)| id)
        .collect();
    assert!(
        lost.is_empty(),
        "{when}: {} of {} acknowledged books are not on the server, e.g. {:?}; server log:\n{}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)],
        server.log()
    );
}

#[test]
fn acknowledged_syncs_survive_sigkill_of_the_server_during_a_storm() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(dir.path());
    let mut fx = County::setup(&server);
    let url = Arc::new(RwLock::new(server.url.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Acked::default()));

    let mut threads = Vec::new();
    for i in 0..PHONES {
        let school = i % county::SCHOOLS.len();
        let tokens = fx.login(&county::teacher_name(school), &format!("storm-{i}"));
        let phone = Phone::new(tokens);
        let (url, stop, acked) = (url.clone(), stop.clone(), acked.clone());
        threads.push(thread::spawn(move || {
            storm_phone(phone, county::school(school), i, url, stop, acked)
        }));
    }

    let mut rng = rand::thread_rng();
    for kill in 1..=KILLS {
        thread::sleep(Duration::from_millis(rng.gen_range(RUN_MS)));
        server.kill();
        // Everything acknowledged so far was acknowledged by the dead server.
        let before_kill = acked.lock().unwrap().books.clone();
        thread::sleep(Duration::from_millis(rng.gen_range(0..150)));
        server.restart();
        *url.write().unwrap() = server.url.clone();
        fx.with_client(server.client());
        check_acked(&server, &fx, &before_kill, &format!("after kill {kill}"));
        println!(
            "kill {kill}: {} acknowledged books survived; restarted on {}",
            before_kill.len(),
            server.url
        );
    }
    thread::sleep(Duration::from_millis(rng.gen_range(RUN_MS)));
    stop.store(true, Ordering::Relaxed);
    let mut runs: Vec<PhoneRun> = threads
        .into_iter()
        .map(|t| t.join().expect("phone thread"))
        .collect();

    // Every acknowledged edit is on the server before anyone syncs again.
    let all_acked = acked.lock().unwrap().books.clone();
    check_acked(&server, &fx, &all_acked, "after the storm");

    let mut total = Tally::default();
    for r in &runs {
        total.syncs_ok += r.tally.syncs_ok;
        total.unreachable += r.tally.unreachable;
        total.cut += r.tally.cut;
        total.timeout += r.tally.timeout;
        total.other.extend(r.tally.other.iter().cloned());
    }
    println!(
        "storm: {} books created, {} acknowledged; {} syncs ok, {} unreachable, {} cut, {} timed out",
        runs.iter().map(|r| r.created.len()).sum::<usize>(),
        all_acked.len(),
        total.syncs_ok,
        total.unreachable,
        total.cut,
        total.timeout
    );
    assert!(
        total.other.is_empty(),
        "phones got errors other than transport failures while the server died: {:#?}\nserver log:\n{}",
        total.other,
        server.log()
    );
    assert!(
        total.syncs_ok >= PHONES * 2 && all_acked.len() >= PHONES,
        "the storm proved too little: {total:?}"
    );

    // Two clean final syncs: the first pushes what is left, the second
    // brings every phone what the others pushed.
    let client = server.client();
    for pass in 1..=2 {
        for r in &mut runs {
            let i = county::SCHOOLS
                .iter()
                .position(|s| s.0 == r.school.as_str())
                .unwrap();
            r.phone
                .sync(&client, &county::school_docs(i))
                .unwrap_or_else(|e| panic!("final sync {pass} of {}: {e}", r.phone.device()));
        }
    }
    let mut view = fresh_view(&client, &fx.county, None).unwrap();
    for i in 0..county::SCHOOLS.len() {
        let s = county::school(i);
        let created: BTreeSet<RecordId> = runs
            .iter()
            .filter(|r| r.school == s)
            .flat_map(|r| r.created.keys().copied())
            .collect();
        let on_server: BTreeSet<RecordId> = book_ids(&mut view, &s).into_iter().collect();
        assert_eq!(
            on_server, created,
            "school {s}: the server has exactly the phones' books"
        );
        for d in county::school_docs(i) {
            view.doc(&d)
                .unwrap()
                .validate()
                .unwrap_or_else(|e| panic!("{d} on the server is invalid: {e}"));
            let server_heads = heads(&mut view, &d);
            for r in runs.iter_mut().filter(|r| r.school == s) {
                assert_eq!(
                    r.phone.heads(&d),
                    server_heads,
                    "{d}: {} has not converged with the server",
                    r.phone.device()
                );
            }
        }
    }
    for r in &runs {
        let doc = view.doc(&books(&r.school)).unwrap();
        for (id, shelf) in &r.created {
            let book: Book = doc.get(*id).unwrap().expect("the book");
            assert_eq!(
                &book.shelf,
                shelf,
                "book {id} of {}: last shelf",
                r.phone.device()
            );
        }
    }
    let status = server.stop();
    assert!(status.success(), "clean stop after the storm: {status}");
    println!(
        "server crash test: {KILLS} kills, {} acknowledged books checked, converged in {:.1?}",
        all_acked.len(),
        started.elapsed()
    );
}
