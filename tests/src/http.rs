//! Raw HTTP (for what the typed client deliberately cannot send) and checks
//! of RFC 9457 problem answers, raw or typed.

use serde_json::Value;
use tpsync_client::{ClientError, ProblemItem};

/// An answer as it came: status, selected headers, body.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub content_type: Option<String>,
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
}

impl Raw {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as a problem document with `status` and `code`: checks the
    /// media type and every member the contract requires, and returns it.
    pub fn problem(&self, status: u16, code: &str) -> Value {
        assert_eq!(
            self.status,
            status,
            "expected {status} {code}, got {}: {}",
            self.status,
            self.text()
        );
        assert_eq!(
            self.content_type.as_deref(),
            Some("application/problem+json"),
            "a {status} answer is not problem JSON: {}",
            self.text()
        );
        let v: Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("problem body is not JSON ({e}): {}", self.text()));
        assert_eq!(v["code"], code, "{v}");
        assert_eq!(v["status"], status, "{v}");
        assert_eq!(
            v["type"],
            format!("https://tpsync.dev/problems/{code}"),
            "{v}"
        );
        assert!(
            v["title"].as_str().is_some_and(|t| !t.is_empty()),
            "no title: {v}"
        );
        assert!(
            v["detail"].as_str().is_some_and(|t| !t.is_empty()),
            "no detail: {v}"
        );
        v
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .new_agent()
}

fn finish(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Raw {
    let mut resp = r.unwrap_or_else(|e| panic!("HTTP request failed: {e}"));
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header("content-type").map(|c| {
        c.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    let retry_after = header("retry-after");
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .unwrap_or_else(|e| panic!("reading the answer failed: {e}"));
    Raw {
        status: resp.status().as_u16(),
        content_type,
        retry_after,
        body,
    }
}

/// `POST base+path` with the given headers and body, as is.
pub fn post(base: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Raw {
    let mut req = agent().post(format!("{base}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    finish(req.send(body))
}

/// `PUT base+path` with the given headers and body, as is.
pub fn put(base: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Raw {
    let mut req = agent().put(format!("{base}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    finish(req.send(body))
}

/// `GET base+path` with the given headers.
pub fn get(base: &str, path: &str, headers: &[(&str, &str)]) -> Raw {
    let mut req = agent().get(format!("{base}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    finish(req.call())
}

/// `POST /v1/sync` with a bearer token, a content type (if any) and a body.
pub fn post_sync(base: &str, access: &str, content_type: Option<&str>, body: &[u8]) -> Raw {
    let auth = format!("Bearer {access}");
    let mut headers = vec![("Authorization", auth.as_str())];
    if let Some(ct) = content_type {
        headers.push(("Content-Type", ct));
    }
    post(base, "/v1/sync", &headers, body)
}

/// A typed client error that must be the server's problem `status`/`code`;
/// returns its detail and per-document problems.
pub fn expect_problem<T: std::fmt::Debug>(
    r: Result<T, ClientError>,
    status: u16,
    code: &str,
) -> (String, Vec<ProblemItem>) {
    match r {
        Err(ClientError::Problem {
            status: s,
            code: c,
            detail,
            problems,
            body,
            ..
        }) => {
            assert_eq!(
                (s, c.as_str()),
                (status, code),
                "expected {status} {code}, got {s} {c}: {detail} ({body})"
            );
            assert!(
                body.is_object(),
                "a {status} answer must be a problem document, got {body}"
            );
            (detail, problems)
        }
        other => panic!("expected the problem {status} {code}, got {other:?}"),
    }
}
