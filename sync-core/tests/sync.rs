//! The sync protocol end to end between in-memory replicas: the common
//! incremental case, cuts, lost memory, restored backups, refusals, bundles.

use automerge::transaction::Transactable;
use automerge::{ReadDoc, ROOT};
use sync_core::harness::{Faults, Network, Outcome};
use sync_core::records::{StocktakeLine, StocktakeResult};
use sync_core::store::MemoryStorage;
use sync_core::sync::{
    export_bundle, import_bundle, respond, AllowAll, BundleScope, ChangeData, DocRequest,
    DocSetPolicy, Message, ResponderLimits, SyncSession,
};
use sync_core::workload::{sample_book, sample_equipment};
use sync_core::{DocId, DocKind, RecordId, Replica, SchoolId};

fn school() -> SchoolId {
    SchoolId::new("4301230001").unwrap()
}

fn doc(kind: DocKind) -> DocId {
    DocId::school(&school(), kind).unwrap()
}

fn add_books(net: &mut Network, peer: usize, n: std::ops::Range<u32>) -> Vec<RecordId> {
    let id = doc(DocKind::Books);
    n.map(|i| {
        let rid = RecordId::random();
        let ctx = net.peers[peer].ctx();
        net.peers[peer]
            .replica
            .edit(&id, |d| d.insert(&ctx, rid, &sample_book(i as usize)))
            .unwrap();
        rid
    })
    .collect()
}

fn done(o: Outcome) -> sync_core::sync::SyncStats {
    match o {
        Outcome::Done(s) => s,
        Outcome::Cut(s) => panic!("expected a clean sync, got a cut after {s:?}"),
    }
}

#[test]
fn devices_that_never_met_merge_both_sets_of_records() {
    let mut net = Network::new(2, &school(), 1);
    let a = add_books(&mut net, 0, 0..5);
    let b = add_books(&mut net, 1, 100..105);
    // Each also counts the same equipment item in a stocktake: lines add up.
    for p in 0..2 {
        let ctx = net.peers[p].ctx();
        let dev = net.peers[p].device.to_string();
        net.peers[p]
            .replica
            .edit(&doc(DocKind::Equipment), |d| {
                d.insert(
                    &ctx,
                    RecordId::random(),
                    &StocktakeLine {
                        session: RecordId::from_u128(1),
                        item: None,
                        description: Some("投影仪".into()),
                        recorded_qty: 1,
                        counted_qty: 1,
                        result: StocktakeResult::Match,
                        counted_by_device: dev,
                        note: None,
                    },
                )
            })
            .unwrap();
    }
    done(net.sync(0, 1, Faults::NONE).unwrap());
    assert!(net.converged().unwrap());
    for p in 0..2 {
        let ids = net.record_ids(p).unwrap();
        for r in a.iter().chain(&b) {
            assert!(ids.iter().any(|(_, _, id)| id == r), "peer {p} lacks {r}");
        }
        let lines = net.peers[p]
            .replica
            .doc(&doc(DocKind::Equipment))
            .unwrap()
            .list::<StocktakeLine>()
            .unwrap();
        assert_eq!(
            lines.len(),
            2,
            "two phones counting add lines, never overwrite"
        );
    }
}

#[test]
fn the_daily_incremental_sync_is_one_round_trip() {
    let mut net = Network::new(2, &school(), 2);
    add_books(&mut net, 0, 0..50);
    let first = done(net.sync(0, 1, Faults::NONE).unwrap());
    assert_eq!(first.round_trips, 1, "{first:?}");
    // A day's edits on both sides, then one sync.
    add_books(&mut net, 0, 50..60);
    add_books(&mut net, 1, 60..63);
    let day = done(net.sync(0, 1, Faults::NONE).unwrap());
    assert_eq!(day.round_trips, 1, "{day:?}");
    assert_eq!(day.changes_sent, 10);
    assert_eq!(day.changes_received, 3);
    assert_eq!(day.fallbacks, 0);
    assert!(net.converged().unwrap());
    // Nothing new: still one round trip, and only heads cross.
    let idle = done(net.sync(0, 1, Faults::NONE).unwrap());
    assert_eq!(
        (idle.round_trips, idle.changes_sent, idle.changes_received),
        (1, 0, 0)
    );
    // Only heads cross: about 15 bytes a settled document.
    let docs = sync_core::DocKind::SCHOOL_KINDS.len() as u64;
    assert!(idle.bytes_received < 20 * docs, "{idle:?}");
}

#[test]
fn a_cut_sync_resumes_without_resending_what_arrived() {
    let mut net = Network::new(2, &school(), 3);
    add_books(&mut net, 0, 0..3);
    done(net.sync(0, 1, Faults::NONE).unwrap());
    add_books(&mut net, 0, 3..40);
    // The responder gets and stores the changes; the answer is lost.
    let cut = net
        .sync(
            0,
            1,
            Faults {
                drop_response: 1.0,
                ..Faults::NONE
            },
        )
        .unwrap();
    assert!(matches!(cut, Outcome::Cut(_)));
    assert_eq!(
        net.record_ids(1).unwrap().len(),
        40,
        "the responder kept what arrived"
    );
    let resumed = done(net.sync(0, 1, Faults::NONE).unwrap());
    assert_eq!(resumed.changes_sent, 0, "nothing resent: {resumed:?}");
    assert!(net.converged().unwrap());
    // And the next day is back to one round trip.
    add_books(&mut net, 0, 40..41);
    assert_eq!(done(net.sync(0, 1, Faults::NONE).unwrap()).round_trips, 1);
}

#[test]
fn lost_memory_falls_back_to_automerge_sync_and_converges() {
    let mut net = Network::new(2, &school(), 4);
    add_books(&mut net, 0, 0..200);
    done(net.sync(0, 1, Faults::NONE).unwrap());
    add_books(&mut net, 0, 200..205);
    add_books(&mut net, 1, 300..302);
    // Peer 0 forgets everything it knew of peer 1 (a reinstalled app).
    let p1 = net.peers[1].id.clone();
    net.peers[0].replica.forget_peer(&p1).unwrap();
    let s = done(net.sync(0, 1, Faults::NONE).unwrap());
    assert!(s.fallbacks >= 1, "{s:?}");
    assert!(
        s.changes_sent < 50,
        "the bloom filter kept it from resending everything: {s:?}"
    );
    assert!(net.converged().unwrap());
    assert_eq!(net.record_ids(0).unwrap().len(), 207);
}

#[test]
fn a_responder_restored_from_an_old_backup_gets_its_lost_changes_back() {
    let mut net = Network::new(2, &school(), 5);
    add_books(&mut net, 0, 0..10);
    done(net.sync(0, 1, Faults::NONE).unwrap());
    let backup = net.peers[1].storage.snapshot_copy();
    add_books(&mut net, 0, 10..20);
    done(net.sync(0, 1, Faults::NONE).unwrap());
    // The server's disk dies; it is restored from the old backup.
    net.peers[1].storage = backup.clone();
    net.peers[1].replica = Replica::open(backup);
    assert_eq!(net.record_ids(1).unwrap().len(), 10);
    add_books(&mut net, 0, 20..21);
    let s = done(net.sync(0, 1, Faults::NONE).unwrap());
    assert!(s.fallbacks >= 1, "memory was wrong, so it fell back: {s:?}");
    assert!(net.converged().unwrap());
    assert_eq!(net.record_ids(1).unwrap().len(), 21);
}

#[test]
fn a_device_restored_from_a_backup_catches_up_in_one_round_trip() {
    let mut net = Network::new(2, &school(), 6);
    add_books(&mut net, 0, 0..10);
    done(net.sync(0, 1, Faults::NONE).unwrap());
    let backup = net.peers[0].storage.snapshot_copy();
    add_books(&mut net, 0, 10..20);
    done(net.sync(0, 1, Faults::NONE).unwrap());
    net.peers[0].storage = backup.clone();
    net.peers[0].replica = Replica::open(backup);
    let s = done(net.sync(0, 1, Faults::NONE).unwrap());
    assert_eq!(s.round_trips, 1, "{s:?}");
    assert!(net.converged().unwrap());
    assert_eq!(net.record_ids(0).unwrap().len(), 20);
}

/// A request that pushes one valid change and one that breaks the schema.
fn poisoned_request(replica: &mut Replica<MemoryStorage>) -> Vec<u8> {
    let books = doc(DocKind::Books);
    let good_doc = doc(DocKind::Equipment);
    let mut am = replica.doc(&books).unwrap().automerge().clone();
    let before = am.get_heads();
    let coll = am.get(ROOT, "books").unwrap().unwrap().1;
    let mut tx = am.transaction();
    let rec = tx
        .put_object(
            &coll,
            RecordId::random().to_string(),
            automerge::ObjType::Map,
        )
        .unwrap();
    tx.put(&rec, "title", "no reg_no, negative copies").unwrap();
    tx.put(&rec, "copies", -1).unwrap();
    tx.commit();
    let bad: Vec<Vec<u8>> = am
        .get_changes(&before)
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect();
    let mut eq = replica.doc(&good_doc).unwrap().clone();
    let ctx = sync_core::EditContext {
        user: "u".parse().unwrap(),
        device: "d".parse().unwrap(),
        now_ms: 5,
    };
    let eb = eq.heads();
    eq.insert(&ctx, RecordId::random(), &sample_equipment(1))
        .unwrap();
    let good: Vec<Vec<u8>> = eq
        .automerge()
        .get_changes(&eb)
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect();
    Message::Request(vec![
        (
            good_doc,
            DocRequest::Push {
                heads: vec![eq.heads()[0].0],
                data: ChangeData::Changes(good),
            },
        ),
        (
            books,
            DocRequest::Push {
                heads: vec![am.get_heads()[0].0],
                data: ChangeData::Changes(bad),
            },
        ),
    ])
    .encode()
}

fn snapshot(r: &mut Replica<MemoryStorage>) -> Vec<Vec<automerge::ChangeHash>> {
    DocId::all_for_school(&school())
        .iter()
        .map(|d| r.doc(d).unwrap().heads())
        .collect()
}

#[test]
fn an_off_schema_push_is_refused_whole_and_changes_nothing() {
    let mut client = Replica::open(MemoryStorage::new());
    let server_store = MemoryStorage::new();
    let mut server = Replica::open(server_store.clone());
    let req = poisoned_request(&mut client);
    let before = snapshot(&mut server);
    let keys_before = server_store.len();
    let resp = respond(
        &mut server,
        &"phone".parse().unwrap(),
        &AllowAll,
        &ResponderLimits::default(),
        &req,
    )
    .unwrap();
    let Message::Refused(problems) = Message::decode(&resp).unwrap() else {
        panic!("expected a refusal")
    };
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].code, "off_schema");
    assert!(
        problems[0].message.contains("copies") && problems[0].message.contains("reg_no"),
        "{}",
        problems[0].message
    );
    assert_eq!(
        snapshot(&mut server),
        before,
        "the valid document in the same request was not applied either"
    );
    assert_eq!(server_store.len(), keys_before, "nothing was written");
}

#[test]
fn a_document_outside_the_policy_is_refused_by_name() {
    let mut net = Network::new(2, &school(), 7);
    add_books(&mut net, 0, 0..2);
    let mut policy = DocSetPolicy::default();
    policy.writable.insert(doc(DocKind::Equipment));
    let mut session = SyncSession::new(
        net.peers[1].id.clone(),
        [doc(DocKind::Equipment), doc(DocKind::Books)],
    );
    let req = session
        .next_request(&mut net.peers[0].replica)
        .unwrap()
        .unwrap();
    let from = net.peers[0].id.clone();
    let resp = respond(
        &mut net.peers[1].replica,
        &from,
        &policy,
        &ResponderLimits::default(),
        &req,
    )
    .unwrap();
    let err = session
        .receive(&mut net.peers[0].replica, &resp)
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("forbidden") && text.contains("school.4301230001.books"),
        "{text}"
    );
    assert!(net.record_ids(1).unwrap().is_empty());
}

#[test]
fn malformed_requests_get_an_error_and_change_nothing() {
    let store = MemoryStorage::new();
    let mut server = Replica::open(store.clone());
    let peer = "phone".parse().unwrap();
    let tiny = ResponderLimits {
        max_decoded: 1024,
        max_docs: 2,
    };
    let big = Message::Request(vec![(
        doc(DocKind::Books),
        DocRequest::Push {
            heads: vec![],
            data: ChangeData::Changes(vec![vec![7; 4096]]),
        },
    )])
    .encode();
    let many = Message::Request(
        DocId::all_for_school(&school())
            .into_iter()
            .map(|d| (d, DocRequest::Probe { heads: vec![] }))
            .collect(),
    )
    .encode();
    let garbage_change = Message::Request(vec![(
        doc(DocKind::Books),
        DocRequest::Push {
            heads: vec![],
            data: ChangeData::Changes(vec![b"\x85\x6f\x4a\x83 nonsense".to_vec()]),
        },
    )])
    .encode();
    let garbage_am = Message::Request(vec![(
        doc(DocKind::Books),
        DocRequest::Automerge(vec![0x42, 1, 2, 3]),
    )])
    .encode();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "malformed"),
        ("http", b"POST /sync HTTP/1.1".to_vec(), "malformed"),
        ("truncated", big[..big.len() / 2].to_vec(), "malformed"),
        ("oversized", big.clone(), "too_large"),
        ("too many docs", many, "too_large"),
        ("garbage change", garbage_change, "malformed"),
        ("garbage automerge", garbage_am, "malformed"),
        (
            "a response",
            Message::Response(vec![]).encode(),
            "malformed",
        ),
    ];
    for (name, bytes, code) in cases {
        let limits = if name == "garbage change" || name == "garbage automerge" {
            ResponderLimits::default()
        } else {
            tiny.clone()
        };
        let resp = respond(&mut server, &peer, &AllowAll, &limits, &bytes).unwrap();
        match Message::decode(&resp).unwrap() {
            Message::Refused(p) => assert_eq!(p[0].code, code, "{name}: {p:?}"),
            other => panic!("{name}: expected a refusal, got {other:?}"),
        }
    }
    assert!(store.is_empty(), "nothing was written");
}

#[test]
fn bundles_carry_changes_between_devices_that_have_no_network() {
    let mut net = Network::new(3, &school(), 8);
    add_books(&mut net, 0, 0..30);
    let scope = net.scope.clone();
    let bundle =
        export_bundle(&mut net.peers[0].replica, &scope, &BundleScope::Everything).unwrap();
    let first = import_bundle(&mut net.peers[1].replica, &AllowAll, &bundle).unwrap();
    assert!(first.docs_changed.contains(&doc(DocKind::Books)));
    let again = import_bundle(&mut net.peers[1].replica, &AllowAll, &bundle).unwrap();
    assert!(
        again.docs_changed.is_empty(),
        "importing twice changes nothing"
    );
    assert_eq!(net.record_ids(1).unwrap().len(), 30);
    // What peer 2 lacks, after one sync it already had: only the new books.
    done(net.sync(0, 2, Faults::NONE).unwrap());
    add_books(&mut net, 0, 30..32);
    let p2 = net.peers[2].id.clone();
    let small = export_bundle(
        &mut net.peers[0].replica,
        &scope,
        &BundleScope::PeerLacks(p2),
    )
    .unwrap();
    assert!(
        small.len() * 4 < bundle.len(),
        "{} vs {}",
        small.len(),
        bundle.len()
    );
    import_bundle(&mut net.peers[2].replica, &AllowAll, &small).unwrap();
    assert_eq!(net.record_ids(2).unwrap().len(), 32);
    // A bundle for documents the importer may not write is refused whole.
    let mut policy = DocSetPolicy::default();
    policy.writable.insert(doc(DocKind::Equipment));
    let err = import_bundle(&mut net.peers[1].replica, &policy, &small).unwrap_err();
    assert!(err.to_string().contains("forbidden"), "{err}");
    assert!(import_bundle(&mut net.peers[1].replica, &AllowAll, b"TPSY\x01\x00garbage").is_err());
}

#[test]
fn a_large_offline_document_is_uploaded_whole_after_one_probe() {
    let mut net = Network::new(2, &school(), 9);
    add_books(&mut net, 0, 0..300);
    let s = done(net.sync(0, 1, Faults::NONE).unwrap());
    assert_eq!(
        (s.round_trips, s.fallbacks),
        (2, 0),
        "probe, then one exact push: {s:?}"
    );
    let save = net.peers[0]
        .replica
        .doc(&doc(DocKind::Books))
        .unwrap()
        .automerge()
        .save()
        .len() as u64;
    assert!(
        s.bytes_sent < save + 1_000,
        "sent {} for a {save}-byte document",
        s.bytes_sent
    );
    assert!(net.converged().unwrap());
}

#[test]
fn a_change_whose_dependency_is_missing_is_kept_until_the_dependency_arrives() {
    use automerge::sync::{State, SyncDoc};
    let books = doc(DocKind::Books);
    let ctx = sync_core::EditContext {
        user: "u".parse().unwrap(),
        device: "d".parse().unwrap(),
        now_ms: 1,
    };
    // B has two books, the second change depending on the first. Actor
    // and ids are fixed: the bloom filter below is probabilistic, and with
    // random change hashes about one run in a hundred found the second
    // change a false positive too (and sent nothing).
    let mut b = Replica::with_actor(
        MemoryStorage::new(),
        automerge::ActorId::from(&b"missing-dep-test-b"[..]),
    );
    for n in 0..2 {
        b.edit(&books, |d| {
            d.insert(
                &ctx,
                RecordId::from_u128(0xb00c + n as u128),
                &sample_book(n),
            )
            .map(|_| ())
        })
        .unwrap();
    }
    let b_doc = b.doc(&books).unwrap().automerge().clone();
    // B wrongly believes the peer has the first book (as a bloom filter false
    // positive would make it), so its message carries only the second.
    let mut fake_peer = sync_core::RecordDoc::genesis(books.clone())
        .automerge()
        .clone();
    let first =
        b_doc.get_changes(&[sync_core::RecordDoc::genesis(books.clone()).heads()[0]])[0].clone();
    fake_peer.apply_changes([first.clone()]).unwrap();
    let (mut b_state, mut fake_state) = (State::new(), State::new());
    let hello = fake_peer.generate_sync_message(&mut fake_state).unwrap();
    b_doc
        .clone()
        .receive_sync_message(&mut b_state, hello)
        .unwrap();
    let only_second = b_doc.generate_sync_message(&mut b_state).unwrap();
    assert_eq!(only_second.changes.len(), 1);

    let mut a = Replica::open(MemoryStorage::new());
    let mut session = SyncSession::new("b".parse().unwrap(), [books.clone()]);
    session.next_request(&mut a).unwrap().unwrap();
    let crafted = Message::Response(vec![(
        books.clone(),
        sync_core::sync::DocReply::Automerge(Some(only_second.encode())),
    )])
    .encode();
    session.receive(&mut a, &crafted).unwrap();
    assert!(
        a.doc(&books).unwrap().has_held_back_changes(),
        "the orphan change is kept in memory"
    );
    let next = session.next_request(&mut a).unwrap().unwrap();
    let Message::Request(reqs) = Message::decode(&next).unwrap() else {
        panic!("a request")
    };
    assert!(
        matches!(reqs[0].1, DocRequest::Automerge(_)),
        "still Automerge's protocol"
    );
    // Finishing against the real B converges with both books.
    let resp = respond(
        &mut b,
        &"a".parse().unwrap(),
        &AllowAll,
        &ResponderLimits::default(),
        &next,
    )
    .unwrap();
    session.receive(&mut a, &resp).unwrap();
    while let Some(req) = session.next_request(&mut a).unwrap() {
        let resp = respond(
            &mut b,
            &"a".parse().unwrap(),
            &AllowAll,
            &ResponderLimits::default(),
            &req,
        )
        .unwrap();
        session.receive(&mut a, &resp).unwrap();
    }
    assert_eq!(
        a.doc(&books)
            .unwrap()
            .list::<sync_core::records::Book>()
            .unwrap()
            .len(),
        2
    );
    assert!(!a.doc(&books).unwrap().has_held_back_changes());
}

/// A forged change whose dependencies skip its author's previous change
/// applies, but the document would then never load again from storage (a
/// full load orders changes by dependency, and Automerge then refuses the
/// author's sequence). It is refused, and nothing is stored.
#[test]
fn a_change_that_skips_its_authors_previous_change_is_refused() {
    let books = doc(DocKind::Books);
    let ctx = sync_core::EditContext {
        user: "u".parse().unwrap(),
        device: "d".parse().unwrap(),
        now_ms: 1,
    };
    let mut phone = Replica::open(MemoryStorage::new());
    for n in 0..3 {
        phone
            .edit(&books, |d| {
                d.insert(&ctx, RecordId::random(), &sample_book(n))
                    .map(|_| ())
            })
            .unwrap();
    }
    let am = phone.doc(&books).unwrap().automerge().clone();
    let genesis = sync_core::RecordDoc::genesis_hash(&books);
    let own = am.get_changes(&[genesis]);
    assert_eq!(own.len(), 3);
    // The server has the first two; the third arrives forged to depend on the first only.
    let server_store = MemoryStorage::new();
    let mut server = Replica::open(server_store.clone());
    let first_two: Vec<Vec<u8>> = own[..2].iter().map(|c| c.raw_bytes().to_vec()).collect();
    let push = |data: Vec<Vec<u8>>, heads: [u8; 32]| {
        Message::Request(vec![(
            books.clone(),
            DocRequest::Push {
                heads: vec![heads],
                data: ChangeData::Changes(data),
            },
        )])
        .encode()
    };
    let peer = "phone".parse().unwrap();
    let ok = respond(
        &mut server,
        &peer,
        &AllowAll,
        &ResponderLimits::default(),
        &push(first_two, own[1].hash().0),
    )
    .unwrap();
    assert!(matches!(
        Message::decode(&ok).unwrap(),
        Message::Response(_)
    ));
    let mut forged = own[2].decode();
    forged.deps = vec![own[0].hash()];
    forged.hash = None;
    let forged = automerge::Change::from(forged);
    let keys_before = server_store.len();
    let resp = respond(
        &mut server,
        &peer,
        &AllowAll,
        &ResponderLimits::default(),
        &push(vec![forged.raw_bytes().to_vec()], forged.hash().0),
    )
    .unwrap();
    match Message::decode(&resp).unwrap() {
        Message::Refused(p) => assert_eq!(p[0].code, "malformed", "{p:?}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(server_store.len(), keys_before, "nothing stored");
    let mut reopened = Replica::open(server_store);
    assert_eq!(
        reopened
            .doc(&books)
            .unwrap()
            .list::<sync_core::records::Book>()
            .unwrap()
            .len(),
        2
    );
}
