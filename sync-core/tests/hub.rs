//! The server's concurrent [`Hub`]: many devices of many schools syncing at
//! once from threads, a tiny memory budget that forces evictions, settled
//! documents answered without loading, refusals before loading.

use std::sync::Arc;
use std::thread;

use sync_core::store::{MemoryStorage, Storage};
use sync_core::sync::{AllowAll, DocSetPolicy, ResponderLimits, SyncSession};
use sync_core::workload::{sample_book, sample_equipment};
use sync_core::{
    CountyId, DocId, DocKind, EditContext, Hub, HubConfig, PeerId, RecordId, Replica, SchoolId,
};

fn ctx(device: &str, n: i64) -> EditContext {
    EditContext {
        user: "teacher".parse().unwrap(),
        device: device.parse().unwrap(),
        now_ms: 1_700_000_000_000 + n,
    }
}

fn school(n: usize) -> SchoolId {
    SchoolId::new(format!("43012300{n:02}")).unwrap()
}

fn scope(s: &SchoolId) -> Vec<DocId> {
    let mut docs = DocId::all_for_school(s);
    docs.push(DocId::template(&CountyId::new("430123").unwrap()));
    docs
}

/// Runs one device's whole session against the hub.
fn sync<S: Storage>(
    phone: &mut Replica<MemoryStorage>,
    phone_id: &PeerId,
    hub: &Hub<S>,
    scope: &[DocId],
) -> sync_core::sync::SyncStats {
    let mut session = SyncSession::new(PeerId::new("server").unwrap(), scope.to_vec());
    let limits = ResponderLimits::default();
    while let Some(req) = session.next_request(phone).unwrap() {
        let a = hub.answer(phone_id, &AllowAll, &limits, &req).unwrap();
        assert!(a.refused.is_none(), "{:?}", a.refused);
        session.receive(phone, &a.bytes).unwrap();
    }
    session.stats().clone()
}

fn add_records(phone: &mut Replica<MemoryStorage>, s: &SchoolId, dev: &str, n: usize) {
    let books = DocId::school(s, DocKind::Books).unwrap();
    let eq = DocId::school(s, DocKind::Equipment).unwrap();
    for i in 0..n {
        phone
            .edit(&books, |d| {
                d.insert(&ctx(dev, i as i64), RecordId::random(), &sample_book(i))
            })
            .unwrap();
        phone
            .edit(&eq, |d| {
                d.insert(
                    &ctx(dev, i as i64),
                    RecordId::random(),
                    &sample_equipment(i),
                )
            })
            .unwrap();
    }
}

fn counts(r: &mut Replica<MemoryStorage>, s: &SchoolId) -> (usize, usize) {
    let books = DocId::school(s, DocKind::Books).unwrap();
    let eq = DocId::school(s, DocKind::Equipment).unwrap();
    (
        r.doc(&books)
            .unwrap()
            .record_ids(&<sync_core::records::Book as sync_core::Record>::SPEC)
            .unwrap()
            .len(),
        r.doc(&eq)
            .unwrap()
            .record_ids(&<sync_core::records::EquipmentItem as sync_core::Record>::SPEC)
            .unwrap()
            .len(),
    )
}

#[test]
fn many_schools_sync_at_once_and_everything_is_stored() {
    let storage = MemoryStorage::new();
    // A budget far below what 8 schools take: evictions happen mid-run.
    let hub = Arc::new(Hub::new(
        storage.clone(),
        HubConfig {
            cache_bytes: 64 << 10,
            ..HubConfig::default()
        },
    ));
    let mut handles = Vec::new();
    for s in 0..8 {
        let hub = hub.clone();
        handles.push(thread::spawn(move || {
            let sch = school(s);
            let sc = scope(&sch);
            // Two phones of the same school, each recording offline, each
            // syncing three times; they end with each other's records.
            let mut a = Replica::open(MemoryStorage::new());
            let mut b = Replica::open(MemoryStorage::new());
            let (ia, ib) = (
                PeerId::new(format!("a{s}")).unwrap(),
                PeerId::new(format!("b{s}")).unwrap(),
            );
            for round in 0..3 {
                add_records(&mut a, &sch, "pa", 3 + round);
                add_records(&mut b, &sch, "pb", 2);
                sync(&mut a, &ia, &hub, &sc);
                sync(&mut b, &ib, &hub, &sc);
            }
            sync(&mut a, &ia, &hub, &sc);
            let expect = (3 + 4 + 5 + 2 * 3, 3 + 4 + 5 + 2 * 3);
            assert_eq!(counts(&mut a, &sch), expect);
            assert_eq!(counts(&mut b, &sch), expect);
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    let stats = hub.stats();
    assert!(
        stats.evictions > 0,
        "the budget forced evictions: {stats:?}"
    );
    assert!(stats.settled_without_loading > 0, "{stats:?}");
    // A new server process over the same storage holds everything.
    let mut fresh = Replica::open(storage);
    for s in 0..8 {
        assert_eq!(counts(&mut fresh, &school(s)), (18, 18));
    }
}

#[test]
fn a_settled_device_is_answered_without_loading_and_a_forbidden_one_before_loading() {
    let hub = Hub::new(MemoryStorage::new(), HubConfig::default());
    let sch = school(1);
    let sc = scope(&sch);
    let mut phone = Replica::open(MemoryStorage::new());
    let id = PeerId::new("p").unwrap();
    add_records(&mut phone, &sch, "p", 3);
    sync(&mut phone, &id, &hub, &sc);
    // Everything evicted (a restart of the cache): a settled sync loads nothing.
    let hub2 = Hub::new(
        hub.storage().clone(),
        HubConfig {
            cache_bytes: 0,
            ..HubConfig::default()
        },
    );
    sync(&mut phone, &id, &hub2, &sc); // learns every head (loads them)
    let loads = hub2.stats().loads;
    let stats = sync(&mut phone, &id, &hub2, &sc);
    assert_eq!(stats.round_trips, 1);
    assert_eq!(hub2.stats().loads, loads, "no document was loaded again");
    assert_eq!(hub2.stats().docs_loaded, 0, "the budget of 0 keeps nothing");

    // A request for a document the caller may not read: refused, nothing loaded.
    let other = DocId::school(&school(2), DocKind::Books).unwrap();
    let policy = DocSetPolicy {
        readable: sc.iter().cloned().collect(),
        writable: sc.iter().cloned().collect(),
    };
    let mut session = SyncSession::new(PeerId::new("server").unwrap(), vec![other.clone()]);
    let req = session.next_request(&mut phone).unwrap().unwrap();
    let before = hub2.stats().loads;
    let a = hub2
        .answer(&id, &policy, &ResponderLimits::default(), &req)
        .unwrap();
    let problems = a.refused.expect("refused");
    assert_eq!(problems[0].code, "forbidden");
    assert_eq!(problems[0].doc.as_deref(), Some(other.to_string().as_str()));
    assert_eq!(hub2.stats().loads, before);
}

#[test]
fn compaction_folds_chunks_and_the_store_still_loads() {
    let storage = MemoryStorage::new();
    let hub = Hub::new(
        storage.clone(),
        HubConfig {
            compact_after: 3,
            ..HubConfig::default()
        },
    );
    let sch = school(3);
    let sc = scope(&sch);
    let mut phone = Replica::open(MemoryStorage::new());
    let id = PeerId::new("p").unwrap();
    for _ in 0..5 {
        add_records(&mut phone, &sch, "p", 1);
        sync(&mut phone, &id, &hub, &sc);
    }
    let books = DocId::school(&sch, DocKind::Books).unwrap();
    let chunks = |s: &MemoryStorage| {
        s.load_range(&sync_core::store::KeyPrefix::Doc(books.clone()))
            .unwrap()
            .len()
    };
    assert!(chunks(&storage) >= 5);
    assert!(hub.compact_due().unwrap() >= 1);
    assert_eq!(chunks(&storage), 1);
    let mut fresh = Replica::open(storage);
    assert_eq!(counts(&mut fresh, &sch), (5, 5));
}

#[test]
fn changed_documents_are_reported_for_notifications() {
    let hub = Hub::new(MemoryStorage::new(), HubConfig::default());
    let sch = school(4);
    let sc = scope(&sch);
    let mut phone = Replica::open(MemoryStorage::new());
    let id = PeerId::new("p").unwrap();
    let books = DocId::school(&sch, DocKind::Books).unwrap();
    phone
        .edit(&books, |d| {
            d.insert(&ctx("p", 1), RecordId::random(), &sample_book(1))
        })
        .unwrap();
    let mut session = SyncSession::new(PeerId::new("server").unwrap(), sc.clone());
    let mut changed = Vec::new();
    while let Some(req) = session.next_request(&mut phone).unwrap() {
        let a = hub
            .answer(&id, &AllowAll, &ResponderLimits::default(), &req)
            .unwrap();
        changed.extend(a.changed);
        session.receive(&mut phone, &a.bytes).unwrap();
    }
    assert_eq!(changed, vec![books]);
}
