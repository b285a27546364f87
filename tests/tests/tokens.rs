//! Access tokens and sign-in against the real server: forged tokens (signed
//! with another key, under an unknown key id, `alg: none`), a tampered
//! payload, expiry, signing-key rotation, refresh-token replacement,
//! sign-out, device revocation (at once, for sync, refresh, sign-in and an
//! open WebSocket), and the sign-in rate limits (429 with `Retry-After`).
//! Every refused write is checked to have changed nothing.

use std::thread;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sync_core::{ChangeHash, DocId};
use tpsync_client::{ClientError, Tokens};
use tpsync_tests::county::{self, County, PASSWORD};
use tpsync_tests::frames::{self, Write};
use tpsync_tests::http::{self, expect_problem, post_sync};
use tpsync_tests::phone::{fresh_view, has_change, Phone};
use tpsync_tests::server::TestServer;

const SYNC_CT: Option<&str> = Some("application/x-tpsync");

fn parts(token: &str) -> (Value, Value, String) {
    let p: Vec<&str> = token.split('.').collect();
    assert_eq!(p.len(), 3, "a JWT has three parts");
    let dec = |s: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).expect("base64url")).expect("JSON")
    };
    (dec(p[0]), dec(p[1]), p[2].to_owned())
}

fn enc(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

/// A token with `claims`, signed HS256 with `secret` under `kid`.
fn forge(claims: &Value, kid: Option<&str>, secret: &[u8]) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

/// Sends `w` with `access` and checks it is refused with 401 `code`.
fn refused_write(server: &TestServer, access: &str, w: &Write, code: &str, what: &str) {
    let r = post_sync(&server.url, access, SYNC_CT, &w.frame);
    let v = r.problem(401, code);
    println!("{what}: 401 {code}: {}", v["detail"]);
}

/// None of `changes` reached the server (the county reads everything).
fn none_applied(server: &TestServer, county: &Tokens, changes: &[(DocId, ChangeHash, String)]) {
    let mut view = fresh_view(&server.client(), county, None).unwrap();
    for (doc, change, what) in changes {
        assert!(!has_change(&mut view, doc, *change), "applied: {what}");
    }
}

#[test]
fn forged_and_tampered_tokens_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let fx = County::setup(&server);
    let real = &fx.teachers[0].access_token;
    let (header, claims, _sig) = parts(real);
    let kid = header["kid"].as_str().expect("the token names its key");
    assert_eq!(header["alg"], "HS256");
    let own_books = county::school_docs(0)[2].clone();
    let other_books = county::school_docs(2)[2].clone();
    let mut attempts = Vec::new();

    // The real token works.
    let ok = frames::write(&own_books, "real");
    let r = post_sync(&server.url, real, SYNC_CT, &ok.frame);
    assert_eq!(r.status, 200, "{}", r.text());

    // Signed with another key under the real key id.
    let forged = forge(&claims, Some(kid), &[7u8; 32]);
    let w = frames::write(&own_books, "forged");
    refused_write(
        &server,
        &forged,
        &w,
        "token_invalid",
        "another key, real kid",
    );
    attempts.push((w.doc, w.change, "forged with another key".to_owned()));

    // Under a key id the server never issued.
    let w = frames::write(&own_books, "forged");
    refused_write(
        &server,
        &forge(&claims, Some("0123456789abcdef"), &[9u8; 32]),
        &w,
        "token_invalid",
        "unknown kid",
    );
    attempts.push((w.doc, w.change, "forged under an unknown kid".to_owned()));

    // The real signature over a tampered payload: the teacher makes itself
    // a township user of another township to write there.
    let mut elevated = claims.clone();
    elevated["role"] = json!("county");
    elevated["unit"] = json!(county::COUNTY_CODE);
    let p: Vec<&str> = real.split('.').collect();
    let tampered = format!("{}.{}.{}", p[0], enc(&elevated), p[2]);
    let w = frames::write(&other_books, "tampered");
    refused_write(&server, &tampered, &w, "token_invalid", "tampered payload");
    attempts.push((w.doc, w.change, "tampered payload".to_owned()));
    // Also a later expiry, same signature.
    let mut longer = claims.clone();
    longer["exp"] = json!(claims["exp"].as_u64().unwrap() + 365 * 24 * 3600);
    let w = frames::write(&own_books, "tampered");
    refused_write(
        &server,
        &format!("{}.{}.{}", p[0], enc(&longer), p[2]),
        &w,
        "token_invalid",
        "extended expiry",
    );
    attempts.push((w.doc, w.change, "extended expiry".to_owned()));

    // `alg: none`, unsigned.
    let none_header = json!({"alg": "none", "typ": "JWT", "kid": kid});
    let w = frames::write(&own_books, "unsigned");
    refused_write(
        &server,
        &format!("{}.{}.", enc(&none_header), enc(&claims)),
        &w,
        "token_invalid",
        "alg none",
    );
    attempts.push((w.doc, w.change, "alg none".to_owned()));

    // Not a token at all; no token; another scheme.
    let w = frames::write(&own_books, "garbage");
    refused_write(&server, "not-a-token", &w, "token_invalid", "garbage");
    attempts.push((w.doc, w.change, "garbage token".to_owned()));
    let r = http::post(
        &server.url,
        "/v1/sync",
        &[("Content-Type", "application/x-tpsync")],
        &w.frame,
    );
    r.problem(401, "unauthorized");
    let basic = format!("Basic {}", URL_SAFE_NO_PAD.encode("admin:pw"));
    let r = http::post(
        &server.url,
        "/v1/sync",
        &[
            ("Content-Type", "application/x-tpsync"),
            ("Authorization", basic.as_str()),
        ],
        &w.frame,
    );
    r.problem(401, "unauthorized");

    // The typed client and the WebSocket see the same codes.
    let client = server.client();
    expect_problem(client.me(&forged), 401, "token_invalid");
    expect_problem(client.me(&tampered), 401, "token_invalid");
    expect_problem(client.connect_ws(&forged), 401, "token_invalid");

    none_applied(&server, &fx.county, &attempts);
    let mut view = fresh_view(&client, &fx.county, None).unwrap();
    assert!(
        has_change(&mut view, &own_books, ok.change),
        "the real token's write landed"
    );
}

#[test]
fn expiry_and_key_rotation() {
    // Access tokens live 3 s here (exp is in whole seconds, so a token of
    // `--access-ttl-s 1` can expire a millisecond after it is issued: too
    // tight for a loaded machine). A replaced key keeps verifying for the
    // same 3 s.
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(dir.path(), &["--access-ttl-s", "3"]);
    let fx = County::setup(&server);
    let client = server.client();
    let own_books = county::school_docs(0)[2].clone();

    let before = county::login(&client, &county::teacher_name(0), "phone-0-b");
    let old_kid = parts(&before.access_token).0["kid"].clone();
    let admin = county::login(&client, county::ADMIN, "admin-pc");
    let key = client
        .rotate_key(&admin.access_token)
        .expect("rotate the key");
    assert_ne!(json!(key.kid), old_kid, "a new key id");

    // A token signed with the replaced key still works until it expires.
    let w = frames::write(&own_books, "before-rotation");
    let r = post_sync(&server.url, &before.access_token, SYNC_CT, &w.frame);
    assert_eq!(
        r.status,
        200,
        "a pre-rotation token works after the rotation: {}",
        r.text()
    );
    let after = county::login(&client, &county::teacher_name(0), "phone-0-c");
    assert_eq!(
        parts(&after.access_token).0["kid"],
        json!(key.kid),
        "new tokens use the new key"
    );
    client.me(&after.access_token).expect("a new token works");

    thread::sleep(Duration::from_millis(3_100));
    let mut attempts = Vec::new();
    for (t, what) in [
        (&before, "pre-rotation token"),
        (&after, "post-rotation token"),
    ] {
        let w = frames::write(&own_books, "expired");
        refused_write(&server, &t.access_token, &w, "token_expired", what);
        attempts.push((w.doc.clone(), w.change, format!("expired {what}")));
        let e = client.me(&t.access_token);
        assert!(
            matches!(&e, Err(e) if e.needs_login()),
            "{what}: the client is told to refresh: {e:?}"
        );
        expect_problem(client.connect_ws(&t.access_token), 401, "token_expired");
    }

    // The refresh token still works and gives a working access token.
    let fresh = client
        .refresh(&before.refresh_token)
        .expect("refresh after expiry");
    let r = post_sync(
        &server.url,
        &fresh.access_token,
        SYNC_CT,
        &frames::probe(&own_books),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let county = client.refresh(&fx.county.refresh_token).unwrap();
    none_applied(&server, &county, &attempts);
}

/// docs/http-api.md: the refresh token is replaced; for 10 minutes, and
/// only while the new one is unused, the previous one still works (a reply
/// lost on 2G); an old token presented after that ends the device's
/// session. Signing out ends it too.
#[test]
fn refresh_replaces_the_refresh_token_reuse_and_logout_end_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let fx = County::setup(&server);
    let client = server.client();
    let t1: Tokens = fx.teachers[0].clone();

    let t2 = client.refresh(&t1.refresh_token).expect("refresh");
    assert_ne!(
        t2.refresh_token, t1.refresh_token,
        "the refresh token is replaced"
    );
    assert_eq!(t2.device_id, t1.device_id);
    client
        .me(&t2.access_token)
        .expect("the new access token works");
    // The reply was "lost": the phone presents the old token again, within
    // the grace and before the new one was used.
    let t3 = client
        .refresh(&t1.refresh_token)
        .expect("the replaced token works while its successor is unused");
    assert_ne!(t3.refresh_token, t2.refresh_token);
    // The phone uses the newest token; from then on the first one is
    // retired.
    let t4 = client
        .refresh(&t3.refresh_token)
        .expect("the newest refresh token works");
    client.me(&t4.access_token).expect("its access token works");
    expect_problem(client.refresh("00ff"), 401, "token_invalid");
    let (detail, _) = expect_problem(client.refresh(&t1.refresh_token), 401, "token_invalid");
    println!("a retired refresh token: {detail}");
    // Reuse of a retired token ends the device's session at once: the
    // current access and refresh tokens stop working.
    let w = frames::write(&county::school_docs(0)[2], "after-reuse");
    refused_write(
        &server,
        &t4.access_token,
        &w,
        "token_invalid",
        "session ended by reuse",
    );
    expect_problem(client.refresh(&t4.refresh_token), 401, "token_invalid");

    // The teacher signs in again; signing out ends that session as well.
    let t5 = county::login(&client, &county::teacher_name(0), t1.device_id.as_str());
    client.me(&t5.access_token).expect("signed in again");
    client.logout(&t5.access_token).expect("logout");
    let w2 = frames::write(&county::school_docs(0)[2], "after-logout");
    refused_write(
        &server,
        &t5.access_token,
        &w2,
        "token_invalid",
        "signed-out session",
    );
    expect_problem(client.refresh(&t5.refresh_token), 401, "token_invalid");
    none_applied(
        &server,
        &fx.county,
        &[
            (w.doc, w.change, "write after reuse".into()),
            (w2.doc, w2.change, "write after logout".into()),
        ],
    );
}

#[test]
fn a_revoked_device_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let fx = County::setup(&server);
    let client = server.client();
    let s0 = county::school(0);
    let scope = county::school_docs(0);

    let mut lost = Phone::new(fx.teachers[0].clone());
    let mut other = Phone::new(fx.login(&county::teacher_name(0), "phone-0-b"));
    lost.add_book(&s0, 1);
    lost.sync(&client, &scope).expect("syncs before it is lost");
    let mut ws = client
        .connect_ws(&lost.tokens.access_token)
        .expect("socket open");

    let revoked = client
        .revoke_device(&fx.admin.access_token, lost.device())
        .expect("revoke the lost phone");
    assert_eq!(revoked.id.as_deref(), Some(lost.device()));

    // Its access token has not expired, yet every use is refused at once.
    let stolen = lost.add_book(&s0, 2);
    let (detail, _) = expect_problem(lost.sync(&client, &scope), 401, "device_revoked");
    println!("revoked: {detail}");
    expect_problem(
        client.refresh(&lost.tokens.refresh_token),
        401,
        "device_revoked",
    );
    expect_problem(
        client.login(
            &county::teacher_name(0),
            PASSWORD,
            &lost.tokens.device_id,
            None,
        ),
        401,
        "device_revoked",
    );
    // The open socket re-checks the token on every message.
    let w = frames::write(&scope[2], "revoked-ws");
    match ws.sync_round(&w.frame) {
        Err(ClientError::Problem { code, .. }) => assert_eq!(code, "device_revoked"),
        other => panic!("a revoked device's socket must be refused: {other:?}"),
    }

    // The teacher's other phone is unaffected.
    other
        .sync(&client, &scope)
        .expect("another device of the same user still syncs");
    let mut view = fresh_view(&client, &fx.county, None).unwrap();
    assert!(
        !tpsync_tests::phone::book_ids(&mut view, &s0).contains(&stolen),
        "the revoked phone's write was not applied"
    );
    assert!(!has_change(&mut view, &w.doc, w.change), "nor the socket's");
}

#[test]
fn sign_in_is_rate_limited_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let _fx = County::setup(&server); // 8 sign-ins from 127.0.0.1
    let login = |user: &str, password: &str| {
        let body = json!({"username": user, "password": password, "device_id": "guesser"});
        http::post(
            &server.url,
            "/v1/auth/login",
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
    };

    // Five wrong passwords for one user, then even the right one waits.
    let victim = county::teacher_name(1);
    for i in 0..5 {
        login(&victim, &format!("wrong-password-{i}")).problem(401, "invalid_credentials");
    }
    let r = login(&victim, PASSWORD);
    let v = r.problem(429, "rate_limited");
    let retry: u64 = r
        .retry_after
        .as_deref()
        .expect("a Retry-After header")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=900).contains(&retry), "Retry-After {retry}");
    assert_eq!(v["retry_after_s"], retry, "{v}");

    // Per address: at most 30 attempts a minute, whoever they are for. So
    // far: the fixture's sign-ins and the five wrong passwords (the refused
    // attempt is not counted).
    let mut counted = county::SETUP_LOGINS + 5;
    while counted < 30 {
        counted += 1;
        login(&format!("nobody-{counted}"), "wrong-password").problem(401, "invalid_credentials");
    }
    let r = login("nobody-31", "wrong-password");
    r.problem(429, "rate_limited");
    assert!(r.retry_after.is_some(), "Retry-After on the address limit");
    // Now even another user's right password waits.
    login(&county::teacher_name(2), PASSWORD).problem(429, "rate_limited");
}
