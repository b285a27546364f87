//! Backups with the real command line: `tpsync admin backup` (a process)
//! while phones sync, `tpsync restore` into a new directory, and a server
//! started on it.
//!
//! Proven: the restored server has every record whose sync was acknowledged
//! before the backup began, and the accounts, signing keys and devices
//! of that moment (a token issued before the backup still works there); the
//! phones, which hold changes the backup lacks, bring it up to date with an
//! ordinary sync; a backup restores only into an empty directory; a
//! damaged, cut or foreign file is refused whole and writes nothing.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use sync_core::{RecordId, SchoolId};
use tpsync_tests::county::{self, County, ADMIN, PASSWORD};
use tpsync_tests::phone::{book_ids, fresh_view, Phone};
use tpsync_tests::server::{run_tpsync, test_client, tpsync, TestServer};

/// Books acknowledged by the server, with when.
type AckLog = Arc<Mutex<Vec<(RecordId, SchoolId, Instant)>>>;

fn syncing_phone(
    mut phone: Phone,
    school: usize,
    url: String,
    stop: Arc<AtomicBool>,
    acked: AckLog,
) -> Phone {
    let client = test_client(&url);
    let s = county::school(school);
    let scope = county::school_docs(school);
    let mut n = 0;
    let mut pending = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        pending.push(phone.add_book(&s, school * 10_000 + n));
        phone
            .sync(&client, &scope)
            .unwrap_or_else(|e| panic!("{} syncs during the backup: {e}", phone.device()));
        let now = Instant::now();
        acked
            .lock()
            .unwrap()
            .extend(pending.drain(..).map(|id| (id, s.clone(), now)));
        thread::sleep(Duration::from_millis(5));
    }
    phone
}

fn restore(from: &Path, to: &Path) -> std::process::Output {
    run_tpsync(&[
        "restore",
        "--from",
        from.to_str().unwrap(),
        "--data",
        to.to_str().unwrap(),
    ])
}

#[test]
fn a_backup_taken_while_phones_sync_restores_into_a_working_server() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let mut server = TestServer::start(&dir_a);
    let fx = County::setup(&server);
    let stop = Arc::new(AtomicBool::new(false));
    let acked: AckLog = Arc::default();
    let phones: Vec<_> = (0..3)
        .map(|i| {
            let phone = Phone::new(fx.login(&county::teacher_name(i), &format!("bk-{i}")));
            let (url, stop, acked) = (server.url.clone(), stop.clone(), acked.clone());
            thread::spawn(move || syncing_phone(phone, i, url, stop, acked))
        })
        .collect();
    thread::sleep(Duration::from_millis(500));

    // The backup, through the admin command line, while the phones sync.
    let file = tmp.path().join("county.backup");
    let backup_began = Instant::now();
    let out = tpsync()
        .args(["admin", "backup", "--out"])
        .arg(&file)
        .args(["--server", &server.url, "--user", ADMIN])
        .env("TPSYNC_ADMIN_PASSWORD", PASSWORD)
        .output()
        .expect("run tpsync admin backup");
    let backup_done = Instant::now();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "backup failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Backup written to"), "{stdout}");
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let mut phones: Vec<Phone> = phones.into_iter().map(|t| t.join().unwrap()).collect();
    let acked = acked.lock().unwrap().clone();
    let before: Vec<&(RecordId, SchoolId, Instant)> =
        acked.iter().filter(|(_, _, t)| *t < backup_began).collect();
    let during = acked
        .iter()
        .filter(|(_, _, t)| *t >= backup_began && *t <= backup_done)
        .count();
    assert!(before.len() >= 3, "the phones synced before the backup");
    let users_a = server.client().users(&fx.admin.access_token).unwrap();
    assert_eq!(server.stop().code(), Some(0), "clean stop");

    // Restore into a new directory.
    let out = restore(&file, &dir_b);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "restore failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("restored"), "{stdout}");
    // Never over an existing database.
    let again = restore(&file, &dir_b);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // The restored server: no setup code (the administrator came along),
    // the same accounts, and a token issued before the backup works.
    let mut restored = TestServer::start(&dir_b);
    assert_eq!(
        restored.setup_code, None,
        "the restored server has its administrator"
    );
    let client = restored.client();
    let users_b = client
        .users(&fx.admin.access_token)
        .expect("the admin token works");
    assert_eq!(users_b, users_a, "the same accounts");
    let mut view = fresh_view(&client, &fx.county, None)
        .expect("the county's pre-backup token works on the restored server");
    let mut missing = Vec::new();
    for (id, s, _) in &before {
        if !book_ids(&mut view, s).contains(id) {
            missing.push(*id);
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} books acknowledged before the backup began are not in it: {:?}",
        missing.len(),
        before.len(),
        &missing[..missing.len().min(5)]
    );
    let after_total: usize = (0..3)
        .map(|i| book_ids(&mut view, &county::school(i)).len())
        .sum();
    println!(
        "backup: {} books acknowledged before it began (all restored), {during} during it, {} in all; the restored server holds {after_total}",
        before.len(),
        acked.len()
    );

    // The phones hold changes the backup lacks: an ordinary sync brings the
    // restored server up to date.
    for (i, p) in phones.iter_mut().enumerate() {
        p.sync(&client, &county::school_docs(i))
            .unwrap_or_else(|e| panic!("{} syncs with the restored server: {e}", p.device()));
    }
    let mut view = fresh_view(&client, &fx.county, None).unwrap();
    for (i, p) in phones.iter_mut().enumerate() {
        let s = county::school(i);
        let mine: BTreeSet<RecordId> = book_ids(&mut p.replica, &s).into_iter().collect();
        let theirs: BTreeSet<RecordId> = book_ids(&mut view, &s).into_iter().collect();
        assert_eq!(
            theirs, mine,
            "school {s}: the restored server caught up with the phone"
        );
    }
    assert!(acked
        .iter()
        .all(|(id, s, _)| book_ids(&mut view, s).contains(id)));
    assert_eq!(restored.stop().code(), Some(0));
    println!("backup test in {:.1?}", started.elapsed());
}

#[test]
fn a_damaged_backup_is_refused_and_restores_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::start(&tmp.path().join("a"));
    let fx = County::setup(&server);
    let mut phone = Phone::new(fx.teachers[0].clone());
    phone.add_book(&county::school(0), 1);
    phone
        .sync(&server.client(), &county::school_docs(0))
        .unwrap();
    let file = tmp.path().join("good.backup");
    let mut f = std::fs::File::create(&file).unwrap();
    server
        .client()
        .backup(&fx.admin.access_token, &mut f)
        .expect("download a backup");
    drop(f);
    let good = std::fs::read(&file).unwrap();
    assert!(good.starts_with(b"TPSYNC-BACKUP 2\n"), "a backup file");

    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x20;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("one flipped byte", flipped),
        ("cut short", good[..good.len() - 100].to_vec()),
        ("its checksum cut off", good[..good.len() - 32].to_vec()),
        ("empty", Vec::new()),
        ("a CSV file", county::schools_csv().into_bytes()),
    ];
    for (what, bytes) in cases {
        let bad = tmp.path().join("bad.backup");
        std::fs::write(&bad, &bytes).unwrap();
        let target = tmp
            .path()
            .join(format!("restore-{}", what.replace(' ', "-")));
        let out = restore(&bad, &target);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: refused: {stderr}");
        assert!(stderr.contains("nothing was restored"), "{what}: {stderr}");
        assert!(
            !target.join("db").exists(),
            "{what}: a database was written"
        );
    }
    // A missing file is a clear error too.
    let out = restore(&tmp.path().join("nope.backup"), &tmp.path().join("x"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
    // The good file still restores.
    let out = restore(&file, &tmp.path().join("ok"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
