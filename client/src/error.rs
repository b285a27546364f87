//! [`ClientError`]: every way a call can fail, each a typed value with a
//! message a teacher or a clerk can act on. Nothing in this crate panics on
//! what the network or the server sends.

use std::fmt;
use std::io;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::types::SchoolImportReport;

/// One document-level problem inside a server's problem answer (for a
/// refused sync: which document, and why).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemItem {
    /// The document concerned, if one.
    #[serde(default)]
    pub doc: Option<String>,
    /// A stable code (`forbidden`, `invalid`, `malformed`, …).
    #[serde(default)]
    pub code: String,
    /// What went wrong, for a person.
    #[serde(default)]
    pub message: String,
}

impl fmt::Display for ProblemItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.doc {
            Some(doc) => write!(f, "{doc}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Anything a [`crate::Client`] or [`crate::WsSession`] call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server address itself is wrong; nothing was sent.
    #[error("the server address {url:?} is not valid: {reason} (expected something like http://192.168.1.10:8080)")]
    InvalidUrl { url: String, reason: String },

    /// Something given to the call cannot be sent (a device id or token
    /// with characters HTTP does not allow, a missing password, …).
    #[error("{0}")]
    InvalidInput(String),

    /// The server was never reached: the name does not resolve, the
    /// connection was refused, or it could not be set up within
    /// [`crate::ClientConfig::connect_timeout`]. Nothing was sent.
    #[error("cannot reach the server: {0}; check the network connection and the server address, then try again")]
    Unreachable(String),

    /// Connected, but the server did not answer within
    /// [`crate::ClientConfig::request_timeout`] (or the transfer stalled for
    /// [`crate::ClientConfig::idle_timeout`]). The request may or may not
    /// have been applied; a sync is safe to run again.
    #[error("the server did not answer in time; the connection may be slow or busy, try again")]
    Timeout,

    /// The connection broke in the middle of an exchange. The request may
    /// or may not have been applied; a sync is safe to run again.
    #[error("the connection to the server was cut ({0}); try again: the next sync picks up where this one stopped")]
    ConnectionLost(String),

    /// The secure connection could not be set up (certificate not trusted,
    /// wrong host name, clock far off, …).
    #[error("the secure connection to the server failed: {0}; check the server address and this device's date and time")]
    Tls(String),

    /// The server answered with an error (an RFC 9457 problem, or any
    /// non-2xx answer, which becomes one). Nothing of the request was
    /// applied.
    #[error("{}", render_problem(.status, .detail, .problems))]
    Problem {
        /// The HTTP status.
        status: u16,
        /// The stable code (`unauthorized`, `token_expired`, `forbidden`,
        /// …, see docs/http-api.md); derived from the status when the
        /// answer was not a problem document.
        code: String,
        /// The problem's title, if it had one.
        title: Option<String>,
        /// What went wrong, for a person.
        detail: String,
        /// Per-document problems (a refused sync).
        problems: Vec<ProblemItem>,
        /// When to try again (`Retry-After` or `retry_after_s`).
        retry_after: Option<Duration>,
        /// The whole answer body: the problem JSON (with any extension
        /// fields, such as an import's row errors), a JSON string for a
        /// text body, or `null`.
        body: Value,
    },

    /// The server's answer was not what the API promises (not a tpsync
    /// frame, JSON that does not fit, a redirect, …).
    #[error("the server's answer was not understood: {0}")]
    Protocol(String),

    /// The local sync engine failed: local storage, or the server's frame
    /// did not decode or validate (then nothing of it was applied).
    #[error(transparent)]
    Sync(#[from] sync_core::Error),

    /// The caller's cancel flag was set; stopped between two rounds.
    #[error("the sync was cancelled")]
    Cancelled,

    /// A local file or output failed (reading the CSV, writing a backup).
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

fn render_problem(status: &u16, detail: &str, problems: &[ProblemItem]) -> String {
    let mut s = if detail.is_empty() {
        format!("the server answered with an error (HTTP {status})")
    } else {
        detail.to_owned()
    };
    for p in problems.iter().take(10) {
        s.push_str("\n  - ");
        s.push_str(&p.to_string());
    }
    if problems.len() > 10 {
        s.push_str(&format!("\n  … and {} more", problems.len() - 10));
    }
    s
}

impl ClientError {
    /// The server's stable problem code (`token_expired`, `forbidden`, …),
    /// or `None` for an error that did not come from the server.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Problem { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status of a server error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Problem { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True when the same call may well succeed later unchanged: the
    /// network failed, or the server was busy or briefly unavailable.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Unreachable(_) | ClientError::Timeout | ClientError::ConnectionLost(_) => {
                true
            }
            ClientError::Problem { status, .. } => {
                matches!(status, 408 | 429 | 502 | 503 | 504)
            }
            _ => false,
        }
    }

    /// True when the access token must be refreshed (or the user must sign
    /// in again) before retrying.
    pub fn needs_login(&self) -> bool {
        matches!(
            self.code(),
            Some("unauthorized" | "token_expired" | "token_invalid")
        )
    }

    /// The report of a refused school import (HTTP 422 whose body carries
    /// the row errors), if this is one.
    pub fn import_report(&self) -> Option<SchoolImportReport> {
        match self {
            ClientError::Problem { body, .. } if body.get("errors").is_some() => {
                serde_json::from_value(body.clone()).ok()
            }
            _ => None,
        }
    }

    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        ClientError::Io {
            what: what.into(),
            source,
        }
    }
}

/// The most a non-2xx answer's body is read (the problem document).
pub(crate) const MAX_PROBLEM_BODY: u64 = 256 * 1024;

/// Builds a [`ClientError::Problem`] from a non-2xx answer: an RFC 9457
/// problem document when the body is one, otherwise a problem derived from
/// the status (with a short excerpt of a text body).
pub(crate) fn problem_from_answer(
    status: u16,
    content_type: Option<&str>,
    retry_after_header: Option<&str>,
    location: Option<&str>,
    body: &[u8],
) -> ClientError {
    let header_retry = retry_after_header
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let json = serde_json::from_slice::<Value>(body)
        .ok()
        .filter(Value::is_object);
    if let Some(v) = json {
        let str_field = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let code = str_field("code")
            .or_else(|| {
                str_field("type").and_then(|t| {
                    t.rsplit_once("/problems/")
                        .map(|(_, c)| c.to_owned())
                        .filter(|c| !c.is_empty())
                })
            })
            .unwrap_or_else(|| code_for_status(status).to_owned());
        let title = str_field("title");
        let problems: Vec<ProblemItem> = v
            .get("problems")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|p| serde_json::from_value(p.clone()).ok())
                    .collect()
            })
            .unwrap_or_default();
        let detail = str_field("detail")
            .filter(|d| !d.is_empty())
            .or_else(|| title.clone())
            .unwrap_or_else(|| default_detail(status, location));
        let retry_after = v
            .get("retry_after_s")
            .and_then(Value::as_f64)
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
            .or(header_retry);
        return ClientError::Problem {
            status,
            code,
            title,
            detail,
            problems,
            retry_after,
            body: v,
        };
    }
    // Not a problem document: a proxy's page, a plain-text error, nothing.
    let text = String::from_utf8_lossy(body);
    let is_text = content_type.is_none_or(|c| c.starts_with("text/plain"));
    let excerpt: String = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .chars()
        .take(200)
        .collect();
    let mut detail = default_detail(status, location);
    if is_text && !excerpt.is_empty() {
        detail.push_str(&format!(" ({excerpt})"));
    }
    ClientError::Problem {
        status,
        code: code_for_status(status).to_owned(),
        title: None,
        detail,
        problems: Vec::new(),
        retry_after: header_retry,
        body: if text.is_empty() {
            Value::Null
        } else {
            Value::String(text.into_owned())
        },
    }
}

/// The contract's stable code for a status, for answers that carry none.
pub(crate) fn code_for_status(status: u16) -> &'static str {
    match status {
        300..=399 => "redirect",
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        408 | 503 | 504 => "timeout",
        409 => "conflict",
        413 => "too_large",
        422 => "invalid",
        429 => "rate_limited",
        500..=599 => "internal",
        _ => "http_error",
    }
}

fn default_detail(status: u16, location: Option<&str>) -> String {
    match status {
        300..=399 => match location {
            Some(l) => format!("the server sent this request elsewhere ({l}); use that address as the server address"),
            None => format!("the server answered with a redirect (HTTP {status}); check the server address"),
        },
        400 => "the server could not use the request (HTTP 400)".into(),
        401 => "the server did not accept the sign-in; sign in again".into(),
        403 => "this account may not do that (HTTP 403)".into(),
        404 => "the server does not know this address (HTTP 404); is the server address right, and is it a tpsync server?".into(),
        409 => "that already exists or was already done (HTTP 409)".into(),
        422 => "the data does not pass the server's checks (HTTP 422); nothing was changed".into(),
        408 => "the server gave up waiting for the request (HTTP 408); try again".into(),
        413 => "the request is too large for the server (HTTP 413)".into(),
        429 => "the server is busy; try again in a moment (HTTP 429)".into(),
        502 | 504 => format!("a gateway between this device and the server could not reach it (HTTP {status}); try again later"),
        503 => "the server is busy or starting; try again in a moment (HTTP 503)".into(),
        500..=599 => format!("the server had a problem (HTTP {status}); try again later, and tell the administrator if it persists"),
        _ => format!("the server answered with an error (HTTP {status})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_document_is_parsed_with_its_items() {
        let body = br#"{"type":"https://tpsync.dev/problems/forbidden","title":"Forbidden",
            "status":403,"detail":"you may not write these documents","code":"forbidden",
            "problems":[{"doc":"school.4301230001.books","code":"forbidden","message":"you may not write school.4301230001.books"},
                        {"code":"malformed","message":"no doc"}, 17]}"#;
        let e = problem_from_answer(403, Some("application/problem+json"), None, None, body);
        let ClientError::Problem {
            status,
            code,
            title,
            detail,
            problems,
            retry_after,
            body,
        } = &e
        else {
            panic!("{e:?}")
        };
        assert_eq!(*status, 403);
        assert_eq!(code, "forbidden");
        assert_eq!(title.as_deref(), Some("Forbidden"));
        assert_eq!(detail, "you may not write these documents");
        assert_eq!(problems.len(), 2, "the bad item is skipped, not fatal");
        assert_eq!(problems[0].doc.as_deref(), Some("school.4301230001.books"));
        assert_eq!(problems[1].doc, None);
        assert_eq!(*retry_after, None);
        assert_eq!(body["status"], 403);
        assert_eq!(e.code(), Some("forbidden"));
        assert!(!e.is_retryable());
        let shown = e.to_string();
        assert!(
            shown.starts_with("you may not write these documents"),
            "{shown}"
        );
        assert!(
            shown.contains("school.4301230001.books: you may not write"),
            "{shown}"
        );
    }

    #[test]
    fn the_code_falls_back_to_the_type_then_the_status() {
        let e = problem_from_answer(
            401,
            None,
            None,
            None,
            br#"{"type":"https://tpsync.dev/problems/token_expired","detail":"sign in again"}"#,
        );
        assert_eq!(e.code(), Some("token_expired"));
        assert!(e.needs_login());
        let e = problem_from_answer(409, None, None, None, br#"{"title":"Setup done"}"#);
        assert_eq!(e.code(), Some("conflict"));
        assert_eq!(e.to_string(), "Setup done");
    }

    #[test]
    fn retry_after_comes_from_the_body_or_the_header() {
        let e = problem_from_answer(
            429,
            None,
            Some("7"),
            None,
            br#"{"code":"rate_limited","detail":"slow down","retry_after_s":3}"#,
        );
        assert!(
            matches!(e, ClientError::Problem { retry_after: Some(d), .. } if d == Duration::from_secs(3))
        );
        assert!(e.is_retryable());
        let e = problem_from_answer(429, None, Some(" 7 "), None, b"");
        assert!(
            matches!(e, ClientError::Problem { retry_after: Some(d), .. } if d == Duration::from_secs(7))
        );
    }

    #[test]
    fn a_non_json_error_is_still_typed() {
        let html = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>";
        let e = problem_from_answer(502, Some("text/html"), None, None, html);
        let ClientError::Problem {
            status,
            code,
            detail,
            body,
            ..
        } = &e
        else {
            panic!("{e:?}")
        };
        assert_eq!((*status, code.as_str()), (502, "internal"));
        assert!(detail.contains("gateway"), "{detail}");
        assert!(!detail.contains("<html>"), "HTML is not shown: {detail}");
        assert!(body.as_str().unwrap().contains("nginx"));
        assert!(e.is_retryable());

        let e = problem_from_answer(500, Some("text/plain"), None, None, b"\n  disk full\nmore");
        assert!(e.to_string().contains("(disk full)"), "{e}");

        let e = problem_from_answer(413, None, None, None, b"");
        assert_eq!(e.code(), Some("too_large"));
        assert!(matches!(
            e,
            ClientError::Problem {
                body: Value::Null,
                ..
            }
        ));

        let e = problem_from_answer(
            301,
            Some("text/html"),
            None,
            Some("https://tpsync.example/"),
            b"",
        );
        assert!(e.to_string().contains("https://tpsync.example/"), "{e}");
        // Invalid UTF-8 and a JSON array are not problem documents either.
        let e = problem_from_answer(400, None, None, None, &[0xff, 0xfe, b'[']);
        assert_eq!(e.code(), Some("bad_request"));
        let e = problem_from_answer(400, None, None, None, b"[1,2]");
        assert_eq!(e.code(), Some("bad_request"));
    }

    #[test]
    fn an_import_report_stays_available() {
        let body = br#"{"type":"https://tpsync.dev/problems/invalid","code":"invalid","status":422,
            "detail":"2 rows have errors; nothing was imported",
            "townships_created":0,"schools_created":0,"schools_updated":0,
            "errors":[{"line":3,"column":"code","message":"not a school code"},
                      {"line":9,"column":2,"message":"name is empty"}]}"#;
        let e = problem_from_answer(422, Some("application/problem+json"), None, None, body);
        let report = e.import_report().expect("report");
        assert_eq!(report.errors.len(), 2);
        assert_eq!(
            report.errors[0].to_string(),
            "line 3, column code: not a school code"
        );
        assert_eq!(
            report.errors[1].to_string(),
            "line 9, column 2: name is empty"
        );
        // The same body without problem fields (the contract's "same body").
        let body = br#"{"townships_created":0,"schools_created":0,"schools_updated":0,
            "errors":[{"line":4,"message":"duplicate"}]}"#;
        let e = problem_from_answer(422, Some("application/json"), None, None, body);
        assert_eq!(e.code(), Some("invalid"));
        assert_eq!(
            e.import_report().unwrap().errors[0].to_string(),
            "line 4: duplicate"
        );
        assert!(problem_from_answer(403, None, None, None, b"{}")
            .import_report()
            .is_none());
    }
}
