//! Least privilege, checked on the wire: every role (teacher, township,
//! county, admin) × every document (the teacher's school's six kinds,
//! another school of the same township, a school of another township, an
//! unregistered school, the county template) × read (a heads-only probe)
//! and write (a push carrying one valid change).
//!
//! Allowed exactly as docs/http-api.md and the accounts rules say: a teacher
//! reads and writes their school and reads the template; a township its
//! schools and reads the template; the county reads every registered school,
//! writes their review documents and reads and writes the template; an
//! administrator syncs nothing. Inside a review document each level records
//! only its own steps under its own name: the probe's review write is a
//! township approval, so it lands for the township user only. Every
//! refusal is a 403 problem document naming the document, `/v1/me` lists the
//! same scope, and no refused write reaches the server: the county's full
//! read afterwards has every allowed change and none of the refused ones,
//! and after the server stops its store holds nothing of the unregistered
//! school. A request mixing an allowed and a refused write applies neither,
//! and a refusal over the WebSocket leaves the socket usable.

use std::collections::BTreeSet;

use sync_core::store::{KeyPrefix, SledStorage, Storage};
use sync_core::sync::Message;
use sync_core::RecordDoc;
use sync_core::{ChangeHash, DocId, DocKind, Replica, SchoolId};
use tpsync_client::Tokens;
use tpsync_tests::county::{self, County};
use tpsync_tests::frames::{self, push_since, request, valid_change};
use tpsync_tests::http::{expect_problem, post_sync};
use tpsync_tests::phone::{fresh_view, has_change, server_peer, Phone};
use tpsync_tests::server::TestServer;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Teacher,
    Township,
    County,
    Admin,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Whose {
    /// School 0: the teacher's own school, in the township user's township.
    Own,
    /// School 1: same township, another school.
    SameTownship,
    /// School 2: another township.
    OtherTownship,
    /// A school code not in the county's list.
    Unregistered,
    Template,
}

/// (may read, may write the document, the probe's write lands), from the
/// contract. The probe's write to a review document is a township's
/// approval of a section, recorded under the caller's own name.
fn allowed(role: Role, whose: Whose, kind: DocKind) -> (bool, bool, bool) {
    let (read, write) = allowed_doc(role, whose);
    let write = write || (role == Role::County && read && kind == DocKind::Review);
    let lands = write && (kind != DocKind::Review || role == Role::Township);
    (read, write, lands)
}

/// (may read, may write) by document owner alone.
fn allowed_doc(role: Role, whose: Whose) -> (bool, bool) {
    use Role::*;
    use Whose::*;
    match (role, whose) {
        (Admin, _) => (false, false),
        (_, Unregistered) => (false, false),
        (Teacher, Own) => (true, true),
        (Teacher, SameTownship | OtherTownship) => (false, false),
        (Township, Own | SameTownship) => (true, true),
        (Township, OtherTownship) => (false, false),
        (County, Own | SameTownship | OtherTownship) => (true, false),
        (Teacher | Township, Template) => (true, false),
        (County, Template) => (true, true),
    }
}

fn docs_of(whose: Whose) -> Vec<DocId> {
    match whose {
        Whose::Own => county::school_docs(0),
        Whose::SameTownship => county::school_docs(1),
        Whose::OtherTownship => county::school_docs(2),
        Whose::Unregistered => {
            DocId::all_for_school(&SchoolId::new(county::UNREGISTERED_SCHOOL).unwrap())
        }
        Whose::Template => vec![county::template()],
    }
}

const ROLES: [Role; 4] = [Role::Teacher, Role::Township, Role::County, Role::Admin];
const WHOSE: [Whose; 5] = [
    Whose::Own,
    Whose::SameTownship,
    Whose::OtherTownship,
    Whose::Unregistered,
    Whose::Template,
];

fn tokens(fx: &County, role: Role) -> &Tokens {
    match role {
        Role::Teacher => &fx.teachers[0],
        Role::Township => &fx.townships[0],
        Role::County => &fx.county,
        Role::Admin => &fx.admin,
    }
}

/// A refusal: 403 problem JSON whose `problems` name exactly `doc`.
fn assert_refused(raw: &tpsync_tests::http::Raw, doc: &DocId, what: &str) {
    let v = raw.problem(403, "forbidden");
    let problems = v["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no problems: {v}"));
    assert_eq!(problems.len(), 1, "{what}: {v}");
    assert_eq!(problems[0]["doc"], doc.to_string(), "{what}: {v}");
    assert_eq!(problems[0]["code"], "forbidden", "{what}: {v}");
    assert!(
        v["detail"].as_str().unwrap().contains(&doc.to_string()),
        "{what}: the detail names the document: {v}"
    );
}

/// An accepted exchange: a tpsync response frame.
fn assert_answered(raw: &tpsync_tests::http::Raw, what: &str) {
    assert_eq!(raw.status, 200, "{what}: {}", raw.text());
    assert_eq!(
        raw.content_type.as_deref(),
        Some("application/x-tpsync"),
        "{what}"
    );
    match Message::decode(&raw.body) {
        Ok(Message::Response(_)) => {}
        other => panic!("{what}: not a response frame: {other:?}"),
    }
}

#[test]
fn every_role_reads_and_writes_exactly_what_the_rules_allow() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(dir.path());
    let fx = County::setup(&server);
    let client = server.client();

    // Allowed writes, and refused writes, by the change they carried.
    let mut applied: Vec<(DocId, ChangeHash, String)> = Vec::new();
    let mut refused: Vec<(DocId, ChangeHash, String)> = Vec::new();
    let mut checked = 0;
    for role in ROLES {
        let t = tokens(&fx, role);
        let scope = client.me(&t.access_token).unwrap().scope;
        // Review steps are recorded under the caller's own name.
        // (only the township's probe may land in a review document; other
        // roles keep an ASCII probe name).
        let who = if role == Role::Township {
            t.user.username.clone()
        } else {
            format!("probe-{role:?}").to_lowercase()
        };
        for whose in WHOSE {
            for doc in docs_of(whose) {
                let (may_read, may_write, lands) = allowed(role, whose, doc.kind());
                let what = format!("{role:?} on {doc} ({whose:?})");
                assert_eq!(
                    scope.read.contains(&doc) || scope.write.contains(&doc),
                    may_read,
                    "{what}: /v1/me read scope"
                );
                assert_eq!(
                    scope.write.contains(&doc),
                    may_write,
                    "{what}: /v1/me write scope"
                );

                let read = post_sync(
                    &server.url,
                    &t.access_token,
                    Some("application/x-tpsync"),
                    &frames::probe(&doc),
                );
                if may_read {
                    assert_answered(&read, &format!("read by {what}"));
                } else {
                    assert_refused(&read, &doc, &format!("read by {what}"));
                }

                let w = frames::write(&doc, &who);
                let write = post_sync(
                    &server.url,
                    &t.access_token,
                    Some("application/x-tpsync"),
                    &w.frame,
                );
                if lands {
                    assert_answered(&write, &format!("write by {what}"));
                    applied.push((doc.clone(), w.change, what));
                } else {
                    assert_refused(&write, &doc, &format!("write by {what}"));
                    refused.push((doc.clone(), w.change, what));
                }
                checked += 2;
            }
        }
    }
    assert_eq!(checked, 4 * (4 * DocKind::SCHOOL_KINDS.len() + 1) * 2);

    // A request with an allowed and a refused write: refused whole, the
    // refusal names only the forbidden document, and neither is applied.
    let own = county::school_docs(0)[2].clone();
    let other = county::school_docs(2)[2].clone();
    let (own_doc, own_change) = valid_change(&own, "mixed");
    let (other_doc, other_change) = valid_change(&other, "mixed");
    let mixed = request(vec![
        (
            own.clone(),
            push_since(&own_doc, &[RecordDoc::genesis_hash(&own)]),
        ),
        (
            other.clone(),
            push_since(&other_doc, &[RecordDoc::genesis_hash(&other)]),
        ),
    ]);
    let r = post_sync(
        &server.url,
        &fx.teachers[0].access_token,
        Some("application/x-tpsync"),
        &mixed,
    );
    assert_refused(&r, &other, "mixed request");
    refused.push((
        own,
        own_change,
        "the allowed half of a refused request".into(),
    ));
    refused.push((other, other_change, "the refused half".into()));

    // The county's full read: every allowed change is there, no refused one.
    let mut view = fresh_view(&client, &fx.county, None).expect("the county reads everything");
    for (doc, change, what) in &applied {
        assert!(
            has_change(&mut view, doc, *change),
            "allowed write missing: {what}"
        );
    }
    for (doc, change, what) in &refused {
        if doc.school_id().map(|s| s.as_str()) == Some(county::UNREGISTERED_SCHOOL) {
            continue; // checked in the store below
        }
        assert!(
            !has_change(&mut view, doc, *change),
            "a refused write was applied: {what}"
        );
    }

    // After a clean stop, the server's store holds nothing of the
    // unregistered school.
    let status = server.stop();
    assert!(status.success(), "clean stop: {status}");
    let store = SledStorage::open(dir.path().join("db")).expect("open the server's store");
    for doc in docs_of(Whose::Unregistered) {
        let chunks = store.load_range(&KeyPrefix::Doc(doc.clone())).unwrap();
        assert!(
            chunks.is_empty(),
            "{doc} was stored: {} chunk(s)",
            chunks.len()
        );
    }
    let mut replica = Replica::open(store);
    for (doc, change, what) in &refused {
        assert!(
            !has_change(&mut replica, doc, *change),
            "a refused write is in the server's store: {what}"
        );
    }
    let written: BTreeSet<DocId> = applied.iter().map(|(d, _, _)| d.clone()).collect();
    println!(
        "{checked} requests checked: {} writes applied to {} documents, {} refused",
        applied.len(),
        written.len(),
        refused.len()
    );
}

#[test]
fn a_refusal_over_the_websocket_keeps_the_socket_usable() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let fx = County::setup(&server);
    let client = server.client();
    let mut ws = client.connect_ws(&fx.teachers[0].access_token).unwrap();

    // A teacher pushes into another township's school over the socket.
    let other = county::school_docs(2)[2].clone();
    let w = frames::write(&other, "ws-intruder");
    let (detail, problems) = expect_problem(ws.sync_round(&w.frame), 403, "forbidden");
    assert_eq!(problems.len(), 1, "{detail}");
    assert_eq!(problems[0].doc.as_deref(), Some(other.to_string().as_str()));

    // The same socket then syncs the teacher's own school.
    let mut phone = Phone::new(fx.teachers[0].clone());
    let s0 = county::school(0);
    let id = phone.add_book(&s0, 1);
    ws.sync(
        &mut phone.replica,
        &server_peer(),
        &county::school_docs(0),
        None,
        None,
    )
    .expect("the socket is still usable after a refusal");
    let mut view = fresh_view(&client, &fx.county, None).unwrap();
    assert!(tpsync_tests::phone::book_ids(&mut view, &s0).contains(&id));
    assert!(
        !has_change(&mut view, &other, w.change),
        "the refused push was not applied"
    );
    ws.close();
}
