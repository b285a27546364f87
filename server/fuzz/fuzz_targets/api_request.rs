//! Every other endpoint that reads outside bytes, through the real router:
//! path segments and query strings (reports, exports, ledgers, attachment
//! lists), JSON bodies (review steps, upload start, refresh), raw bodies
//! (ledger import, school list import — both as dry runs), chunk frames
//! (attachment upload, raw and built here from the input), the `Range`
//! header, and the dashboard pages' cookies and forms. The contract: never a
//! 5xx but 503/504; every API 4xx/5xx a problem document with a code and its
//! status (the dashboard's errors are pages, so only their status is
//! checked).
//!
//! Input: byte 0 picks the endpoint (see `ENDPOINTS`), byte 1 the caller
//! (teacher of school A, of B, the county, the administrator, nobody, or A's
//! token altered), then up to five fields split at `\n`: path segment 1,
//! path segment 2, query string, a header (Range, Content-Type, cookies or
//! the piece size, by endpoint), and the body (which may hold `\n`). An
//! empty path segment is replaced by a valid one (school A, the fixture's
//! attachment, …) so inputs reach past the path.
#![no_main]

use axum::body::Body;
use axum::http::{HeaderValue, Request};
use libfuzzer_sys::fuzz_target;
use tpsync_server_fuzz::{
    check_api_answer, path_segment, query_string, run, server, violated, SCHOOL_A,
};

/// (method, path with `{1}` and `{2}` for the segments, default of `{1}`,
/// default of `{2}`, what the header field is, body kind)
#[derive(Clone, Copy)]
enum Header {
    None,
    ContentType,
    Range,
    Cookie,
    PieceSize,
}

#[derive(Clone, Copy)]
enum BodyKind {
    Empty,
    Json,
    Raw,
    Frames,
    Built,
    Form,
}

use BodyKind as B;
use Header as H;

const TOWNSHIP: &str = "430123101";

#[rustfmt::skip]
const ENDPOINTS: &[(&str, &str, &str, &str, Header, BodyKind)] = &[
    ("GET", "/v1/reports/county", "", "", H::None, B::Empty),
    ("GET", "/v1/reports/townships/{1}", TOWNSHIP, "", H::None, B::Empty),
    ("GET", "/v1/reports/schools/{1}", SCHOOL_A, "", H::None, B::Empty),
    ("GET", "/v1/reports/gaps", "", "", H::None, B::Empty),
    ("GET", "/v1/reports/freshness", "", "", H::None, B::Empty),
    ("POST", "/v1/schools/{1}/review", SCHOOL_A, "", H::None, B::Json),
    ("GET", "/v1/schools/{1}/sections/{2}/changes", SCHOOL_A, "equipment", H::None, B::Empty),
    ("POST", "/v1/townships/{1}/review", TOWNSHIP, "", H::None, B::Json),
    ("GET", "/v1/exports/{1}", "report.csv", "", H::None, B::Empty),
    ("GET", "/v1/schools/{1}/ledgers/{2}", SCHOOL_A, "books.csv", H::None, B::Empty),
    ("POST", "/v1/schools/{1}/ledgers/{2}/import", SCHOOL_A, "books", H::ContentType, B::Raw),
    ("GET", "/v1/schools/{1}/attachments", SCHOOL_A, "", H::None, B::Empty),
    ("GET", "/v1/schools/{1}/attachments/limits", SCHOOL_A, "", H::None, B::Empty),
    ("POST", "/v1/schools/{1}/blobs/{2}", SCHOOL_A, "", H::None, B::Json),
    ("PUT", "/v1/schools/{1}/blobs/{2}", SCHOOL_A, "", H::ContentType, B::Frames),
    ("PUT", "/v1/schools/{1}/blobs/{2}", SCHOOL_A, "", H::PieceSize, B::Built),
    ("GET", "/v1/schools/{1}/blobs/{2}", SCHOOL_A, "", H::Range, B::Empty),
    ("POST", "/v1/admin/schools/import", "", "", H::ContentType, B::Raw),
    ("POST", "/v1/auth/refresh", "", "", H::None, B::Json),
    ("GET", "/v1/me", "", "", H::None, B::Empty),
    ("GET", "/ui/county", "", "", H::Cookie, B::Empty),
    ("GET", "/ui/townships/{1}", TOWNSHIP, "", H::Cookie, B::Empty),
    ("GET", "/ui/schools/{1}", SCHOOL_A, "", H::Cookie, B::Empty),
    ("POST", "/ui/schools/{1}/review", SCHOOL_A, "", H::Cookie, B::Form),
    ("GET", "/ui/gaps", "", "", H::Cookie, B::Empty),
    ("GET", "/ui/freshness", "", "", H::Cookie, B::Empty),
    ("GET", "/ui/schools/{1}/blobs/{2}", SCHOOL_A, "", H::Cookie, B::Empty),
    // Any path (segment 1, as given) with the method segment 2 names.
    ("ANY", "/{1}", "v1/sync/ws", "GET", H::Cookie, B::Raw),
];

fuzz_target!(init: { tpsync_server_fuzz::init(); server(); }, |data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    run("api_request", || one(data[0], data[1], &data[2..]));
});

fn one(which: u8, who: u8, rest: &[u8]) {
    let s = server();
    let (method, template, d1, d2, header, body_kind) =
        ENDPOINTS[usize::from(which) % ENDPOINTS.len()];
    let mut fields = rest.splitn(5, |&b| b == b'\n');
    let mut field = || fields.next().unwrap_or_default();
    let (f1, f2, query, head, body) = (field(), field(), field(), field(), field());

    let photo = s.photo_hash.as_str();
    let d2 = if d2.is_empty() && template.contains("blobs") {
        photo
    } else {
        d2
    };
    let any = method == "ANY";
    let seg1 = if f1.is_empty() {
        d1.to_owned()
    } else if any {
        // The path as given, made valid.
        query_string(f1).replace('?', "%3F")
    } else {
        path_segment(f1)
    };
    let seg2 = if f2.is_empty() {
        d2.to_owned()
    } else {
        path_segment(f2)
    };
    let method = if any {
        std::str::from_utf8(f2)
            .ok()
            .filter(|m| !m.is_empty())
            .unwrap_or(d2)
    } else {
        method
    };
    let mut uri = template.replace("{1}", &seg1).replace("{2}", &seg2);
    // Imports here are dry runs: the fixture's registry and ledgers stay as
    // they are (the import itself is `ledger_import` and `schools_csv`).
    let dry = template.ends_with("/import");
    if dry || !query.is_empty() {
        uri.push('?');
        if dry {
            uri.push_str("dry_run=true&");
        }
        uri.push_str(&query_string(query));
    }
    let token = match who % 6 {
        0 => Some(s.teacher_a.access_token.clone()),
        1 => Some(s.teacher_b.access_token.clone()),
        2 => Some(s.county_user.access_token.clone()),
        3 => Some(s.admin.access_token.clone()),
        4 => None,
        _ => {
            let mut t = s.teacher_a.access_token.clone().into_bytes();
            let at = usize::from(who) % 40 + 10;
            t[at] = if t[at] == b'x' { b'y' } else { b'x' };
            Some(String::from_utf8(t).unwrap())
        }
    };
    let ui = uri.starts_with("/ui") || (any && !uri.starts_with("/v1"));
    let Ok(mut req) = Request::builder().method(method).uri(&uri).body(()) else {
        return;
    };
    let h = req.headers_mut();
    if let Some(t) = &token {
        if ui {
            h.insert(
                "cookie",
                HeaderValue::from_str(&format!("tpsync_access={t}")).unwrap(),
            );
        } else {
            h.insert(
                "authorization",
                HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
            );
        }
    }
    let value = || HeaderValue::from_bytes(head).ok();
    match header {
        H::None | H::PieceSize => {}
        H::ContentType => {
            if let Some(v) = value() {
                h.insert("content-type", v);
            }
        }
        H::Range => {
            if let Some(v) = value() {
                h.insert("range", v);
            }
            if query.first() == Some(&b'f') {
                h.insert(
                    "accept",
                    HeaderValue::from_static("application/vnd.tpsync.frames"),
                );
            }
        }
        H::Cookie => {
            if let Some(v) = value() {
                h.append("cookie", v);
            }
        }
    }
    let body = match body_kind {
        B::Empty => Vec::new(),
        B::Json => {
            h.insert("content-type", HeaderValue::from_static("application/json"));
            body.to_vec()
        }
        B::Form => {
            h.insert(
                "content-type",
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
            body.to_vec()
        }
        B::Raw => body.to_vec(),
        B::Frames => {
            if !h.contains_key("content-type") {
                h.insert(
                    "content-type",
                    HeaderValue::from_static("application/vnd.tpsync.frames"),
                );
            }
            body.to_vec()
        }
        B::Built => {
            // Well-formed frames of the body's bytes, then maybe a damaged
            // tail: reaches the upload's offsets and writes, not only the
            // frame decoder (which `sync-core/fuzz`'s blob_frames covers).
            h.insert(
                "content-type",
                HeaderValue::from_static("application/vnd.tpsync.frames"),
            );
            let piece = 1 + head.first().map_or(1024, |&b| usize::from(b) * 16);
            let mut out = Vec::new();
            for chunk in body.chunks(piece) {
                tpsync_blobs::encode_frame(chunk, &mut out);
            }
            if head.get(1).is_some_and(|b| b & 1 == 1) && !out.is_empty() {
                let n = out.len();
                out[n / 2] ^= 0x5a;
            }
            out
        }
    };
    let (parts, ()) = req.into_parts();
    let req = Request::from_parts(parts, Body::from(body));
    let a = s.call(req);
    let what = format!("{method} {uri}");
    if tpsync_server_fuzz::verbose() {
        eprintln!("{what} -> {}", a.status);
    }
    if ui {
        if a.status.is_server_error() && a.status != 503 && a.status != 504 {
            violated(format!("{what}: a page answered {}", a.status));
        }
    } else {
        check_api_answer(&what, &a);
    }
}
