//! `tpsync_server::backup::restore` (the `tpsync restore` command) on any
//! file: a restore, or an error that says so; never a panic. What it
//! promises: a damaged file restores nothing, so after an error the data
//! directory holds no database and no attachments; after a restore the
//! database and the blob store hold what the file held.
//!
//! Input: byte 0 picks the mode, the rest is the file (or its body).
//!
//! * mode bit 0: write the right SHA-256 after the body (libFuzzer cannot
//!   find a SHA-256 by itself; a forged or buggy file can have one);
//! * mode bit 1: put the version-2 header line (`TPSYNC-BACKUP 2\n`) first;
//! * mode bit 2: the data directory exists already (empty) before the
//!   restore.
#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use tpsync_server::backup::restore;
use tpsync_server_fuzz::{run, temp_dir, violated};

fn work() -> &'static std::path::Path {
    static W: OnceLock<std::path::PathBuf> = OnceLock::new();
    W.get_or_init(|| temp_dir("restore"))
}

fuzz_target!(init: { tpsync_server_fuzz::init(); work(); }, |data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut file = Vec::new();
    if mode & 2 != 0 {
        file.extend_from_slice(b"TPSYNC-BACKUP 2\n");
    }
    file.extend_from_slice(rest);
    if mode & 1 != 0 {
        let digest = Sha256::digest(&file);
        file.extend_from_slice(&digest);
    }
    run("backup_restore", || one(mode, &file));
});

fn one(mode: u8, file: &[u8]) {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let from = work().join("in.backup");
    std::fs::write(&from, file).unwrap();
    let data = work().join(format!("data-{n}"));
    if mode & 4 != 0 {
        std::fs::create_dir_all(&data).unwrap();
    }
    match restore(&from, &data) {
        Err(e) => {
            if e.trim().is_empty() {
                violated("a failed restore with an empty message".into());
            }
            // "nothing was restored": no database, no attachments.
            for part in ["db", "blobs"] {
                if data.join(part).exists() {
                    violated(format!(
                        "a failed restore left {part}/ in the data directory: {e}"
                    ));
                }
            }
        }
        Ok(counts) => {
            // What the file held is there (a key given twice is stored once,
            // so at most as many as counted).
            let db = open_again(&data.join("db"));
            let mut entries = 0u64;
            for name in db.tree_names() {
                entries += db.open_tree(&name).unwrap().len() as u64;
            }
            if entries > counts.entries || (counts.entries > 0 && entries == 0) {
                violated(format!(
                    "restored {counts:?} but the database holds {entries} entries"
                ));
            }
            drop(db);
            let blobs = if data.join("blobs").exists() {
                tpsync_blobs::BlobStore::open(data.join("blobs"))
                    .unwrap()
                    .list()
                    .unwrap()
                    .len() as u64
            } else {
                0
            };
            if blobs > counts.blobs || (counts.blobs > 0 && blobs == 0) {
                violated(format!(
                    "restored {counts:?} but the blob store holds {blobs}"
                ));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&data);
}

/// Opens the restored database. sled 0.34 releases its file lock on its own
/// threads a moment after the last handle is dropped (spacejam/sled#1289),
/// so a lock held for a little while is waited for (seen: up to 10 ms,
/// with the machine busy; the error's kind is `Other`, not `WouldBlock`).
fn open_again(path: &std::path::Path) -> sled::Db {
    let mut tries = 0;
    loop {
        match sled::open(path) {
            Ok(db) => return db,
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock") && tries < 500 =>
            {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => violated(format!("the restored database does not open: {e}")),
        }
    }
}
