//! `POST /v1/sync` through the real router (`tpsync_server::app`, sled, a
//! county with two schools, real access tokens): any request gets a 2xx
//! whose body is a response frame, or a 4xx problem document with a code
//! (503/504 only for overload); nothing but a 2xx changes what is stored.
//!
//! Input: byte 0 picks the variation, byte 1 is its parameter, the rest is
//! the body (a seed is `00 00` followed by a real request frame).
//!
//! * byte 0 bits 0–2, the caller: 0 teacher of school A, 1 teacher of school
//!   B, 2 the county, 3 A's token altered before its signature (byte 1
//!   picks where), 4 no token, 5 A's token in `?access_token=`, 6
//!   `bearer` in lower case with extra spaces, 7 `Basic` or bytes that are
//!   not text;
//! * bits 3–4, Content-Type: the sync type, none, `application/json`, the
//!   sync type with a parameter;
//! * bits 5–6, Content-Length: none, right, too large by byte 1, 2^40;
//! * bit 7: another method than POST (byte 1 picks it).
#![no_main]

use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use sync_core::sync::Message;
use tpsync_server_fuzz::{check_api_answer, run, server, violated};

fuzz_target!(init: { tpsync_server_fuzz::init(); server(); }, |data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (flags, param, body) = (data[0], data[1], &data[2..]);
    run("sync_request", || one(flags, param, body));
});

fn one(flags: u8, param: u8, body: &[u8]) {
    let s = server();
    let mut uri = "/v1/sync".to_owned();
    let mut auth: Option<HeaderValue> = None;
    let token_ok = matches!(flags & 7, 0 | 1 | 2 | 5 | 6);
    let a = &s.teacher_a.access_token;
    match flags & 7 {
        0 => auth = Some(bearer(a)),
        1 => auth = Some(bearer(&s.teacher_b.access_token)),
        2 => auth = Some(bearer(&s.county_user.access_token)),
        3 => {
            // Change one character of the header or the claims: what the
            // signature covers.
            let signed = a.rfind('.').unwrap();
            let at = usize::from(param) % signed;
            let mut t = a.clone().into_bytes();
            t[at] = if t[at] == b'A' { b'B' } else { b'A' };
            auth = Some(bearer(&String::from_utf8(t).unwrap()));
        }
        4 => {}
        5 => uri.push_str(&format!("?access_token={a}")),
        6 => auth = Some(HeaderValue::from_str(&format!("bearer   {a}  ")).unwrap()),
        _ => {
            auth = Some(if param & 1 == 0 {
                HeaderValue::from_str(&format!("Basic {a}")).unwrap()
            } else {
                HeaderValue::from_bytes(b"Bearer \xff\x80token").unwrap()
            })
        }
    }
    let mut req = Request::builder().uri(&uri);
    let post = flags & 0x80 == 0;
    req = req.method(if post {
        "POST"
    } else {
        ["GET", "PUT", "DELETE", "PATCH"][usize::from(param) % 4]
    });
    if let Some(v) = auth {
        req = req.header("authorization", v);
    }
    let sync_type = match (flags >> 3) & 3 {
        0 => Some("application/x-tpsync"),
        1 => None,
        2 => Some("application/json"),
        _ => Some("application/x-tpsync; version=1"),
    };
    if let Some(ct) = sync_type {
        req = req.header("content-type", ct);
    }
    match (flags >> 5) & 3 {
        0 => {}
        1 => req = req.header("content-length", body.len()),
        2 => req = req.header("content-length", body.len() + 1 + usize::from(param)),
        _ => req = req.header("content-length", 1u64 << 40),
    }
    let req = req.body(Body::from(body.to_vec())).unwrap();

    let docs = s.watched_docs();
    let before = s.snapshot(&docs);
    let a = s.call(req);
    let what = format!("POST /v1/sync (flags {flags:#04x})");
    check_api_answer(&what, &a);
    if tpsync_server_fuzz::verbose() {
        eprintln!("{what} -> {}", a.status);
    }

    if a.status.is_success() {
        if !post || !token_ok || !sync_type.is_some_and(|t| t.starts_with("application/x-tpsync")) {
            violated(format!(
                "{what}: answered {} to a request it must refuse",
                a.status
            ));
        }
        if !a.content_type().starts_with("application/x-tpsync") {
            violated(format!(
                "{what}: a 2xx answer of type {:?}",
                a.content_type()
            ));
        }
        match Message::decode(&a.body) {
            Ok(Message::Response(_)) => {}
            other => violated(format!(
                "{what}: a 2xx body is not a response frame: {other:?}"
            )),
        }
        return;
    }
    if post && !token_ok && a.status != StatusCode::UNAUTHORIZED {
        violated(format!("{what}: a bad or missing token got {}", a.status));
    }
    let after = s.snapshot(&docs);
    if after != before {
        violated(format!(
            "{what}: a {} answer changed what is stored: {}",
            a.status,
            String::from_utf8_lossy(&a.body)
        ));
    }
}

fn bearer(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {token}")).unwrap()
}
