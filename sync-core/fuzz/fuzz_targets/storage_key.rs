//! `StorageKey::parse` and the ids' `FromStr`: any text parses or is an error,
//! and what parses writes out as the same text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sync_core::store::StorageKey;
use sync_core::{DocId, PeerId, RecordId, SchoolId};
use sync_core_fuzz::{run, violated};

fuzz_target!(init: sync_core_fuzz::init(), |data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let s: &str = &s;
    run("storage_key", || {
        if let Ok(k) = StorageKey::parse(s) {
            if k.to_path() != s {
                violated(format!("key {s:?} writes out as {:?}", k.to_path()));
            }
            let _ = k.doc();
        }
        if let Ok(d) = s.parse::<DocId>() {
            if d.to_string() != s {
                violated(format!("doc id {s:?} writes out as {d}"));
            }
        }
        if let Ok(r) = s.parse::<RecordId>() {
            if r.to_string() != s {
                violated(format!("record id {s:?} writes out as {r}"));
            }
        }
        if let Ok(c) = s.parse::<SchoolId>() {
            if c.to_string() != s {
                violated(format!("school id {s:?} writes out as {c}"));
            }
        }
        if let Ok(p) = s.parse::<PeerId>() {
            if p.as_str() != s {
                violated(format!("peer id {s:?} writes out as {p}"));
            }
        }
    });
});
