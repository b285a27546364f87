//! Bad input gets a clear problem answer with the right status and code,
//! changes nothing, and the server keeps serving: malformed frames and
//! random bytes (400 `malformed`), a wrong or missing content type (415),
//! oversized bodies and a decompression bomb (413 `too_large`, with a small
//! `--max-body-kb`), and changes that leave a document off its schema — a
//! record missing required fields, a field of the wrong type, an erased
//! record, a replaced collection — forged with Automerge on a copy of a
//! phone's document (422 `invalid`, each naming the document, nothing of
//! the request applied). After each, a normal sync succeeds and `/healthz`
//! is ok.

use std::io::Write as _;

use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ObjType, ReadDoc, ROOT};
use rand::RngCore;
use serde_json::json;
use sync_core::records::Book;
use sync_core::sync::{ChangeData, DocRequest, Message};
use sync_core::{ChangeHash, DocId, RecordDoc, RecordId};
use tpsync_client::ClientError;
use tpsync_tests::county::{self, County};
use tpsync_tests::frames::{self, push_since, request, wire_heads};
use tpsync_tests::http::{self, post_sync, Raw};
use tpsync_tests::phone::{book_ids, books, fresh_view, has_change, heads, Phone};
use tpsync_tests::server::TestServer;

const SYNC_CT: Option<&str> = Some("application/x-tpsync");

/// The server still answers: `/healthz` is ok and `phone` syncs a new book.
fn still_serving(server: &TestServer, phone: &mut Phone, n: usize) {
    let client = server.client();
    let h = client.health().expect("/healthz answers");
    assert_eq!(h["status"], "ok", "{h}");
    let s0 = county::school(0);
    let id = phone.add_book(&s0, n);
    phone
        .sync(&client, &county::school_docs(0))
        .expect("a normal sync after bad input");
    let mut view = fresh_view(&client, &phone.tokens, Some(&[books(&s0)])).unwrap();
    assert!(
        book_ids(&mut view, &s0).contains(&id),
        "the normal sync landed"
    );
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

#[test]
fn malformed_frames_and_wrong_content_types() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let fx = County::setup(&server);
    let t = &fx.teachers[0].access_token;
    let own_books = books(&county::school(0));
    let good = frames::write(&own_books, "good");

    let mut twice = Vec::new();
    for _ in 0..2 {
        twice.push((
            own_books.clone(),
            DocRequest::Probe {
                heads: wire_heads(&[RecordDoc::genesis_hash(&own_books)]),
            },
        ));
    }
    let garbage_change = request(vec![(
        own_books.clone(),
        DocRequest::Push {
            heads: wire_heads(&[RecordDoc::genesis_hash(&own_books)]),
            data: ChangeData::Changes(vec![b"\x85\x6f\x4a\x83 not a change".to_vec()]),
        },
    )]);
    let garbage_packed_doc = request(vec![(
        own_books.clone(),
        DocRequest::Push {
            heads: vec![],
            data: ChangeData::Document(random_bytes(300)),
        },
    )]);
    let garbage_automerge = request(vec![(
        own_books.clone(),
        DocRequest::Automerge(vec![0x42, 1, 2, 3]),
    )]);
    let mut bad_deflate = b"TPSY\x01\x01".to_vec();
    bad_deflate.extend(random_bytes(200));
    let cases: Vec<(&str, Vec<u8>, Option<&DocId>)> = vec![
        ("an empty body", vec![], None),
        ("random bytes", random_bytes(1000), None),
        (
            "an HTTP request in the body",
            b"POST /v1/sync HTTP/1.1\r\n\r\n".to_vec(),
            None,
        ),
        (
            "an unknown frame version",
            b"TPSY\x09\x00hello".to_vec(),
            None,
        ),
        ("unknown frame flags", b"TPSY\x01\x80hello".to_vec(), None),
        ("a broken deflate stream", bad_deflate, None),
        (
            "a cut frame",
            good.frame[..good.frame.len() / 2].to_vec(),
            None,
        ),
        ("a response frame", Message::Response(vec![]).encode(), None),
        ("a document listed twice", request(twice), Some(&own_books)),
        (
            "a change that is not a change",
            garbage_change,
            Some(&own_books),
        ),
        (
            "a document save that is noise",
            garbage_packed_doc,
            Some(&own_books),
        ),
        (
            "a broken automerge sync message",
            garbage_automerge,
            Some(&own_books),
        ),
    ];
    for (what, body, doc) in &cases {
        let r = post_sync(&server.url, t, SYNC_CT, body);
        let v = r.problem(400, "malformed");
        if let Some(doc) = doc {
            assert_eq!(v["problems"][0]["doc"], doc.to_string(), "{what}: {v}");
        }
        println!("{what}: 400 malformed: {}", v["detail"]);
    }

    // A valid frame, but not declared as one.
    for ct in [
        Some("application/json"),
        Some("text/plain"),
        Some("application/octet-stream"),
        None,
    ] {
        let r = post_sync(&server.url, t, ct, &good.frame);
        let v = r.problem(415, "unsupported_media_type");
        println!("content type {ct:?}: 415: {}", v["detail"]);
    }

    // Problem documents everywhere, also for what axum answers itself.
    http::get(&server.url, "/v1/no-such-thing", &[]).problem(404, "not_found");
    let auth = format!("Bearer {t}");
    http::get(&server.url, "/v1/sync", &[("Authorization", auth.as_str())])
        .problem(405, "method_not_allowed");
    http::post(
        &server.url,
        "/v1/auth/login",
        &[("Content-Type", "application/json")],
        b"{\"username\": \"li\", ",
    )
    .problem(400, "bad_request");

    // Nothing of it was applied: the server's books are still the genesis.
    let client = server.client();
    let mut view = fresh_view(&client, &fx.county, None).unwrap();
    assert_eq!(
        heads(&mut view, &own_books),
        vec![RecordDoc::genesis_hash(&own_books)],
        "bad requests changed the books document"
    );
    let mut phone = Phone::new(fx.teachers[0].clone());
    still_serving(&server, &mut phone, 1);
}

#[test]
fn json_bodies_that_do_not_fit_are_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let _fx = County::setup(&server);
    // Well-formed JSON with a field missing, and with a field of the wrong
    // type: the contract's code for a wrong request is `bad_request` (400).
    for body in [
        json!({"username": "li", "password": "x"}),
        json!({"username": "li", "password": 7, "device_id": "p1"}),
    ] {
        let r = http::post(
            &server.url,
            "/v1/auth/login",
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        );
        r.problem(400, "bad_request");
    }
    // JSON sent as text: the wrong content type.
    let r = http::post(
        &server.url,
        "/v1/auth/login",
        &[("Content-Type", "text/plain")],
        json!({"username": "li", "password": "x", "device_id": "p1"})
            .to_string()
            .as_bytes(),
    );
    r.problem(415, "unsupported_media_type");
}

#[test]
fn oversized_bodies_and_a_decompression_bomb_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(dir.path(), &["--max-body-kb", "256"]);
    let fx = County::setup(&server);
    let t = &fx.teachers[0].access_token;
    let own_books = books(&county::school(0));

    // Random bytes over the limit: refused before they are read as a frame.
    let r = post_sync(&server.url, t, SYNC_CT, &random_bytes(300 << 10));
    let v = r.problem(413, "too_large");
    println!("300 KiB body: {}", v["detail"]);

    // A well-formed frame over the limit (incompressible changes).
    let big = request(vec![(
        own_books.clone(),
        DocRequest::Push {
            heads: vec![],
            data: ChangeData::Changes(vec![random_bytes(200 << 10), random_bytes(100 << 10)]),
        },
    )]);
    assert!(big.len() > 256 << 10);
    post_sync(&server.url, t, SYNC_CT, &big).problem(413, "too_large");

    // A frame under the limit that inflates past the 64 MiB the server
    // decodes at most: refused without inflating it all.
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..70 {
        enc.write_all(&zeros).unwrap();
    }
    let mut bomb = b"TPSY\x01\x01".to_vec();
    bomb.extend(enc.finish().unwrap());
    assert!(
        bomb.len() < 256 << 10,
        "the bomb fits the body limit: {}",
        bomb.len()
    );
    let v = post_sync(&server.url, t, SYNC_CT, &bomb).problem(413, "too_large");
    println!(
        "decompression bomb of {} bytes: {}",
        bomb.len(),
        v["detail"]
    );

    // The JSON endpoints have their own small limit.
    let huge_name = "x".repeat(100 << 10);
    let body = json!({"username": huge_name, "password": "p", "device_id": "p1"});
    let r = http::post(
        &server.url,
        "/v1/auth/login",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    r.problem(413, "too_large");

    // Over the WebSocket: a message over the limit ends that socket only.
    let client = server.client();
    let mut ws = client.connect_ws(t).unwrap();
    let r = ws.sync_round(&big);
    assert!(
        matches!(
            r,
            Err(ClientError::ConnectionLost(_) | ClientError::Problem { .. })
        ),
        "an oversized WebSocket message is refused: {r:?}"
    );
    let mut phone = Phone::new(fx.teachers[0].clone());
    let mut ws = client.connect_ws(t).expect("a new socket");
    phone.add_book(&county::school(0), 5);
    ws.sync(
        &mut phone.replica,
        &tpsync_tests::phone::server_peer(),
        &county::school_docs(0),
        None,
        None,
    )
    .expect("a normal sync over a new socket");

    let mut view = fresh_view(&client, &fx.county, None).unwrap();
    assert_eq!(
        book_ids(&mut view, &county::school(0)).len(),
        1,
        "only the normal book"
    );
    still_serving(&server, &mut phone, 2);
}

/// A forged push: `edit` applied with Automerge to a copy of `phone`'s
/// document (under a new actor), sent as the changes since the phone's
/// heads.
fn forged(
    phone: &mut Phone,
    doc: &DocId,
    edit: impl FnOnce(&mut Automerge),
) -> (DocRequest, Vec<ChangeHash>) {
    let mut am = phone.replica.doc(doc).unwrap().automerge().clone();
    am.set_actor(ActorId::random());
    let before = am.get_heads();
    edit(&mut am);
    let forged = RecordDoc::from_automerge(doc.clone(), am);
    let new_heads = forged.heads();
    assert_ne!(new_heads, before, "the forgery made a change");
    (push_since(&forged, &before), new_heads)
}

fn books_map(am: &Automerge) -> automerge::ObjId {
    am.get(ROOT, "books").unwrap().expect("books collection").1
}

fn record_obj(am: &Automerge, id: RecordId) -> automerge::ObjId {
    let coll = books_map(am);
    am.get(&coll, id.to_string())
        .unwrap()
        .expect("the record")
        .1
}

#[test]
fn off_schema_changes_are_refused_whole_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let fx = County::setup(&server);
    let client = server.client();
    let s0 = county::school(0);
    let own_books = books(&s0);
    let mut phone = Phone::new(fx.teachers[0].clone());
    let x = phone.add_book(&s0, 1);
    phone.sync(&client, &county::school_docs(0)).unwrap();
    let server_heads = phone.heads(&own_books);

    type Forgery = Box<dyn FnOnce(&mut Automerge)>;
    let cases: Vec<(&str, Forgery, &[&str])> = vec![
        (
            "a record missing its required fields",
            Box::new(|am: &mut Automerge| {
                let coll = books_map(am);
                let mut tx = am.transaction();
                let rec = tx
                    .put_object(&coll, RecordId::random().to_string(), ObjType::Map)
                    .unwrap();
                tx.put(&rec, "title", "没有登记号").unwrap();
                tx.commit();
            }),
            &["reg_no"],
        ),
        (
            "a field of the wrong type",
            Box::new(move |am: &mut Automerge| {
                let rec = record_obj(am, x);
                let mut tx = am.transaction();
                tx.put(&rec, "copies", "很多").unwrap();
                tx.commit();
            }),
            &["copies"],
        ),
        (
            "an erased record",
            Box::new(move |am: &mut Automerge| {
                let coll = books_map(am);
                let mut tx = am.transaction();
                tx.delete(&coll, x.to_string()).unwrap();
                tx.commit();
            }),
            &[],
        ),
        (
            "an erased field",
            Box::new(move |am: &mut Automerge| {
                let rec = record_obj(am, x);
                let mut tx = am.transaction();
                tx.delete(&rec, "reg_no").unwrap();
                tx.commit();
            }),
            &[],
        ),
        (
            "a replaced collection",
            Box::new(|am: &mut Automerge| {
                let mut tx = am.transaction();
                tx.put_object(ROOT, "books", ObjType::Map).unwrap();
                tx.commit();
            }),
            &[],
        ),
    ];
    for (what, edit, words) in cases {
        // Each forged push travels with a valid push of another document:
        // neither may be applied.
        let (bad, bad_heads) = forged(&mut phone, &own_books, edit);
        let eq = DocId::school(&s0, sync_core::DocKind::Equipment).unwrap();
        let (good_doc, good_change) = frames::valid_change(&eq, "bystander");
        let req = request(vec![
            (
                eq.clone(),
                push_since(&good_doc, &[RecordDoc::genesis_hash(&eq)]),
            ),
            (own_books.clone(), bad),
        ]);
        let r: Raw = post_sync(&server.url, &fx.teachers[0].access_token, SYNC_CT, &req);
        let v = r.problem(422, "invalid");
        let problems = v["problems"].as_array().expect("problems");
        assert_eq!(problems.len(), 1, "{what}: {v}");
        assert_eq!(problems[0]["doc"], own_books.to_string(), "{what}: {v}");
        let message = problems[0]["message"].as_str().unwrap();
        for w in words {
            assert!(
                message.contains(w),
                "{what}: the problem names {w}: {message}"
            );
        }
        println!("{what}: 422 {}: {message}", problems[0]["code"]);

        let mut view = fresh_view(&client, &fx.county, None).unwrap();
        assert_eq!(
            heads(&mut view, &own_books),
            server_heads,
            "{what}: the books document changed"
        );
        assert!(
            bad_heads
                .iter()
                .all(|h| !has_change(&mut view, &own_books, *h)),
            "{what}: the forged change is on the server"
        );
        assert!(
            !has_change(&mut view, &eq, good_change),
            "{what}: the valid half of the refused request was applied"
        );
        let book = view.doc(&own_books).unwrap().get::<Book>(x).unwrap();
        assert_eq!(book.map(|b| b.reg_no), Some("TS000001".into()), "{what}");
    }
    still_serving(&server, &mut phone, 2);
}
