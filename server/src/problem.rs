//! The server's one public error: an RFC 9457 problem document with a stable
//! code. Every error leaves the server through [`ApiError`]'s
//! `IntoResponse`; internals are logged, never shown.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sync_core::sync::Problem as SyncProblem;
use tpsync_accounts::AccountsError;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// One document's problem in a refused sync request.
#[derive(Clone, Debug, Serialize)]
pub struct DocProblem {
    pub doc: Option<String>,
    pub code: String,
    pub message: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ApiError {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub code: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<DocProblem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
    /// Extra members (an import's row errors).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
}

fn title(code: &str) -> &'static str {
    match code {
        "unauthorized" => "Sign in first",
        "token_expired" => "The access token expired",
        "token_invalid" => "The access token is not valid",
        "device_revoked" => "This device was revoked",
        "invalid_credentials" => "Wrong username or password",
        "rate_limited" => "Too many attempts",
        "forbidden" => "Not allowed",
        "malformed" => "The request could not be read",
        "bad_request" => "The request is wrong",
        "too_large" => "The request is too large",
        "invalid" => "The changes break the records' rules",
        "not_found" => "Not found",
        "conflict" => "Conflicts with what is stored",
        "setup_done" => "Set up already",
        "timeout" => "The request took too long",
        "unsupported_media_type" => "Wrong content type",
        "method_not_allowed" => "Method not allowed",
        "not_ready" => "Not ready for this review step",
        "not_allowed_now" => "This review step does not fit the section's state",
        "not_approved" => "The section is not approved",
        "reports_building" => "The reports are being built",
        "not_referenced" => "No record names this attachment",
        "attachment_too_large" => "The attachment is too large",
        "quota_exceeded" => "The school's attachment quota is used up",
        "upload_not_started" => "The upload was not started",
        "upload_busy" => "Another request is working on this upload",
        "offset_mismatch" => "The upload is elsewhere",
        "past_end" => "More bytes than the attachment has",
        "chunk_corrupt" => "A chunk was damaged on the way",
        "attachment_mismatch" => "The bytes do not match the attachment's name",
        _ => "Internal error",
    }
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("https://tpsync.dev/problems/{code}"),
            title: title(code).to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_owned(),
            problems: Vec::new(),
            retry_after_s: None,
            extra: None,
        }
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", detail)
    }

    /// An internal failure: logged in full, shown as a plain sentence.
    pub fn internal(what: impl std::fmt::Display) -> Self {
        tracing::error!(error = %what, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed to handle this request; it was logged, try again later",
        )
    }

    /// A refused sync request: the status follows the gravest problem.
    pub fn refused(problems: &[SyncProblem]) -> Self {
        let has = |c: &str| problems.iter().any(|p| p.code == c);
        let (status, code) = if has("forbidden") {
            (StatusCode::FORBIDDEN, "forbidden")
        } else if has("too_large") {
            (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
        } else if has("malformed") {
            (StatusCode::BAD_REQUEST, "malformed")
        } else {
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid")
        };
        let detail = problems
            .iter()
            .map(|p| match &p.doc {
                Some(d) => format!("{d}: {}", p.message),
                None => p.message.clone(),
            })
            .collect::<Vec<_>>()
            .join("; ");
        let mut e = Self::new(
            status,
            code,
            format!("the sync request was refused and nothing of it was applied: {detail}"),
        );
        e.problems = problems
            .iter()
            .map(|p| DocProblem {
                doc: p.doc.clone(),
                code: p.code.clone(),
                message: p.message.clone(),
            })
            .collect();
        e
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<AccountsError> for ApiError {
    fn from(e: AccountsError) -> Self {
        if let AccountsError::Internal(what) = &e {
            return ApiError::internal(what);
        }
        let status =
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut out = ApiError::new(status, e.code(), e.to_string());
        out.retry_after_s = e.retry_after_s();
        out
    }
}

impl From<sync_core::Error> for ApiError {
    fn from(e: sync_core::Error) -> Self {
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry = self.retry_after_s;
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut resp = (status, body).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(s) = retry {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

/// Middleware: any error answer that is not a problem document yet (axum's
/// own rejections: unknown route, wrong method, unreadable JSON) becomes
/// one, so clients parse a single error shape.
pub async fn problems_everywhere(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if status.as_u16() < 400 {
        return resp;
    }
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if is_problem || status == StatusCode::SWITCHING_PROTOCOLS {
        return resp;
    }
    // axum answers a JSON body that does not fit its type with 422; our
    // own 422 (`invalid`) means changes that break the records' rules, so
    // a body of the wrong shape is a plain 400 `bad_request`.
    let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
        StatusCode::BAD_REQUEST
    } else {
        status
    };
    let body = axum::body::to_bytes(resp.into_body(), 64 << 10)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).trim().to_owned();
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        s if s.is_client_error() => "bad_request",
        _ => "internal",
    };
    let detail = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned()
    } else {
        text
    };
    ApiError::new(status, code, detail).into_response()
}
