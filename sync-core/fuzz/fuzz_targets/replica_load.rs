//! A replica loading stored chunks: `Replica::open(storage).doc(&doc)` is Ok
//! or Err, and a document that loads can be read.
//!
//! Input: one mode byte, then the chunk. Mode % 4: 0 the only chunk, stored
//! as an incremental; 1 the only chunk, stored as a snapshot; 2 and 3 an extra
//! incremental next to a real document's chunks (5 or 70 books). Mode & 4:
//! re-compute the chunk checksums first (libFuzzer cannot find a SHA-256
//! prefix by itself; a forged file can).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sync_core::records::Book;
use sync_core::store::{KeyPrefix, MemoryStorage, Storage, StorageKey};
use sync_core::Replica;
use sync_core_fuzz::{books, fix_checksums, fixture, run};

fuzz_target!(init: sync_core_fuzz::init(), |data: &[u8]| {
    let Some((&mode, chunk)) = data.split_first() else { return };
    let mut chunk = chunk.to_vec();
    if mode & 4 != 0 {
        fix_checksums(&mut chunk);
    }
    let chunk = &chunk[..];
    run("replica_load", || {
        let d = books();
        let storage = match mode % 4 {
            0 | 1 => MemoryStorage::new(),
            n => {
                let from = &fixture().clients[usize::from(n - 1)];
                let s = MemoryStorage::new();
                s.put_many(&from.load_range(&KeyPrefix::Doc(d.clone())).unwrap()).unwrap();
                s
            }
        };
        let key = if mode % 4 == 1 {
            StorageKey::Snapshot { doc: d.clone(), hash: "0".repeat(64) }
        } else {
            StorageKey::incremental(&d, chunk)
        };
        storage.put(&key, chunk).unwrap();
        let mut r = Replica::open(storage);
        if let Ok(doc) = r.doc(&d) {
            let _ = doc.heads();
            let _ = doc.validate();
            let _ = doc.list::<Book>();
        }
    });
});
