//! The whole story against the real server over HTTP and WebSocket.
//!
//! Two phones of one school record offline (different records, and both put
//! the same book on different shelves), then sync: both end with the union
//! and the same heads, and the concurrent shelves are a visible conflict
//! with both values and both devices in the history. The township syncs its
//! schools and sees the merged data (and nothing of the other township);
//! it resolves the conflict and the phones get the resolution. The county
//! sees every record of every school. A township client on the WebSocket
//! gets a `changed` notice within 1 s of a teacher's HTTP sync, none for a
//! school of another township, and its follow-up sync over the socket
//! brings the change.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use sync_core::records::Book;
use sync_core::{DocId, DocKind, Record, RecordId};
use tpsync_tests::county::{self, County};
use tpsync_tests::phone::{book_ids, books, fresh_view, heads, server_peer, Phone};
use tpsync_tests::server::TestServer;

#[test]
fn two_phones_a_township_and_the_county_over_http_and_websocket() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let fx = County::setup(&server);
    let client = server.client();
    let s0 = county::school(0);
    let scope0 = county::school_docs(0);

    // --- Two phones of school 0, first online once so both know book X.
    let mut a = Phone::new(fx.teachers[0].clone());
    let mut b = Phone::new(fx.login(&county::teacher_name(0), "phone-0-b"));
    let x = a.add_book(&s0, 1);
    a.sync(&client, &scope0).expect("phone A's first sync");
    b.sync(&client, &scope0).expect("phone B's first sync");
    assert!(b.book(&s0, x).is_some(), "phone B got book X");

    // --- Offline: different records on each phone, and both shelve X.
    let mut from_a: Vec<RecordId> = (10..14).map(|n| a.add_book(&s0, n)).collect();
    let item = a.add_equipment(&s0, 1);
    let from_b: Vec<RecordId> = (20..23).map(|n| b.add_book(&s0, n)).collect();
    a.shelve(&s0, x, "A-1");
    b.shelve(&s0, x, "B-7");

    // --- Sync: A, B, then A again picks up B's records.
    let sa = a.sync(&client, &scope0).expect("phone A syncs");
    assert!(sa.changes_sent >= 6, "A pushed its edits: {sa:?}");
    b.sync(&client, &scope0).expect("phone B syncs");
    a.sync(&client, &scope0).expect("phone A syncs again");
    from_a.push(x);
    let union: BTreeSet<RecordId> = from_a.iter().chain(&from_b).copied().collect();
    for (name, p) in [("A", &mut a), ("B", &mut b)] {
        let ids: BTreeSet<RecordId> = book_ids(&mut p.replica, &s0).into_iter().collect();
        assert_eq!(
            ids, union,
            "phone {name} holds the union of both phones' books"
        );
        assert!(
            p.equipment(&s0, item).is_some(),
            "phone {name} has A's equipment item"
        );
    }
    for d in &scope0 {
        assert_eq!(
            a.heads(d),
            b.heads(d),
            "{d}: both phones have the same heads"
        );
    }

    // --- The conflict is visible on both phones, with the same winner.
    let shelf_conflict = |p: &mut Phone| {
        let doc = p.replica.doc(&books(&s0)).unwrap();
        let c = doc.conflicts(&Book::SPEC, x).unwrap();
        let winner = doc.get::<Book>(x).unwrap().unwrap().shelf;
        (c, winner)
    };
    let (ca, wa) = shelf_conflict(&mut a);
    let (cb, wb) = shelf_conflict(&mut b);
    assert_eq!(ca.len(), 1, "one conflicting field on A: {ca:?}");
    assert_eq!(ca[0].field, "shelf");
    let values: BTreeSet<String> = ca[0]
        .values
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        values,
        ["A-1".to_owned(), "B-7".to_owned()].into(),
        "both shelves kept"
    );
    assert_eq!(ca, cb, "B sees the same conflict");
    assert_eq!(wa, wb, "both phones show the same winner");

    // --- The township of school 0 syncs its schools and sees the merged data.
    let town0 = &fx.townships[0];
    let me = client.me(&town0.access_token).unwrap();
    let expected_scope: BTreeSet<DocId> = county::school_docs(0)
        .into_iter()
        .chain(county::school_docs(1))
        .chain([county::template()])
        .collect();
    assert_eq!(
        me.scope.all().into_iter().collect::<BTreeSet<_>>(),
        expected_scope,
        "the township reads its two schools and the template, nothing else"
    );
    let mut town = Phone::new(town0.clone());
    town.sync_all(&client).expect("township syncs its schools");
    let ids: BTreeSet<RecordId> = book_ids(&mut town.replica, &s0).into_iter().collect();
    assert_eq!(ids, union, "the township sees the merged books of school 0");
    for d in &scope0 {
        assert_eq!(town.heads(d), a.heads(d), "{d}: township = phones");
    }
    let (ct, _) = shelf_conflict(&mut town);
    assert_eq!(ct, ca, "the township sees the conflict too");
    let history = town
        .replica
        .doc(&books(&s0))
        .unwrap()
        .history(&Book::SPEC, x)
        .unwrap();
    let shelf_devices: BTreeSet<String> = history
        .iter()
        .filter(|h| h.field.as_deref() == Some("shelf"))
        .map(|h| h.author.as_ref().expect("author").device.clone())
        .collect();
    assert_eq!(
        shelf_devices,
        ["phone-0-a".to_owned(), "phone-0-b".to_owned()].into(),
        "the history names both devices: {history:?}"
    );

    // The township resolves the conflict; the phones get the resolution.
    let ctx = town.ctx();
    town.replica
        .edit(&books(&s0), |d| {
            d.resolve_conflict(&ctx, &Book::SPEC, x, "shelf", &serde_json::json!("B-7"))
        })
        .unwrap();
    town.sync_all(&client)
        .expect("township pushes the resolution");
    a.sync(&client, &scope0).unwrap();
    let (ca, wa) = shelf_conflict(&mut a);
    assert!(ca.is_empty(), "resolved on phone A: {ca:?}");
    assert_eq!(wa.as_deref(), Some("B-7"));

    // --- Every other school records something; the county sees it all.
    let mut others = Vec::new();
    for i in 1..county::SCHOOLS.len() {
        let mut p = Phone::new(fx.teachers[i].clone());
        let s = county::school(i);
        let id = p.add_book(&s, 100 + i);
        p.sync(&client, &county::school_docs(i))
            .unwrap_or_else(|e| panic!("teacher of school {i} syncs: {e}"));
        others.push((s, id));
    }
    let mut view = fresh_view(&client, &fx.county, None).expect("county syncs everything");
    let ids: BTreeSet<RecordId> = book_ids(&mut view, &s0).into_iter().collect();
    assert_eq!(ids, union, "the county sees school 0's merged books");
    for (s, id) in &others {
        assert!(
            book_ids(&mut view, s).contains(id),
            "the county sees school {s}'s book"
        );
    }
    for d in &scope0 {
        assert_eq!(heads(&mut view, d), a.heads(d), "{d}: county = phone A");
    }

    // --- WebSocket: the township is told of a teacher's HTTP sync.
    let mut ws = client
        .connect_ws(&town0.access_token)
        .expect("township opens the sync WebSocket");
    let town_scope = me.scope.all();
    ws.sync(&mut town.replica, &server_peer(), &town_scope, None, None)
        .expect("township syncs over the socket");
    // Stale notices from the syncs above (if any) are dropped.
    while ws
        .wait_changed(Duration::from_millis(200))
        .unwrap()
        .is_some()
    {}

    let s1 = county::school(1);
    let mut t1 = Phone::new(fx.teachers[1].clone());
    t1.sync(&client, &county::school_docs(1)).unwrap();
    let new_book = t1.add_book(&s1, 555);
    let synced_at = Instant::now();
    t1.sync(&client, &county::school_docs(1))
        .expect("the teacher's HTTP sync");
    let notice = ws
        .wait_changed(Duration::from_secs(1))
        .expect("the socket stays usable");
    let waited = synced_at.elapsed();
    let docs = notice.unwrap_or_else(|| {
        panic!(
            "no `changed` notice within 1 s of the teacher's sync; log:\n{}",
            server.log()
        )
    });
    assert!(
        waited <= Duration::from_secs(1),
        "the notice took {waited:?}"
    );
    let s1_books = DocId::school(&s1, DocKind::Books).unwrap();
    assert!(
        docs.contains(&s1_books),
        "the notice names {s1_books}: {docs:?}"
    );
    assert!(
        docs.iter().all(|d| town_scope.contains(d)),
        "a notice names only documents the township may read: {docs:?}"
    );
    assert!(
        !book_ids(&mut town.replica, &s1).contains(&new_book),
        "the township does not have the new book before it syncs"
    );
    let stats = ws
        .sync(&mut town.replica, &server_peer(), &docs, None, None)
        .expect("the follow-up sync over the socket");
    assert!(stats.changes_received >= 1, "{stats:?}");
    assert!(
        book_ids(&mut town.replica, &s1).contains(&new_book),
        "the follow-up sync brought the teacher's new book"
    );

    // A school of the other township changes: no notice for this township.
    let mut t2 = Phone::new(fx.teachers[2].clone());
    t2.add_book(&county::school(2), 777);
    t2.sync(&client, &county::school_docs(2)).unwrap();
    let none = ws.wait_changed(Duration::from_millis(500)).unwrap();
    assert_eq!(none, None, "no notice about another township's school");
    ws.close();

    println!("server story in {:.1?}", started.elapsed());
}
