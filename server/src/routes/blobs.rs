//! Attachment bytes over HTTP: limits, resumable upload in verified chunk
//! frames, and download (whole, by range, or framed).
//!
//! ```text
//! GET  /v1/schools/{code}/attachments          the school's attachment records, and which are on the server
//! GET  /v1/schools/{code}/attachments/limits   size limit, quota, used
//! POST /v1/schools/{code}/blobs/{hash}         {"size": n} → start or look up an upload: {received, complete}
//! PUT  /v1/schools/{code}/blobs/{hash}?offset=n   body: chunk frames from byte n
//! GET  /v1/schools/{code}/blobs/{hash}         the bytes (Range: bytes=n- → 206), or with
//!                                               Accept: application/vnd.tpsync.frames, frames from ?offset=n
//! ```
//!
//! A blob is uploaded only after the records naming it (sync first), and is
//! served only to callers who may read the school's attachments document,
//! when a record of that school names it and that school sent its bytes.

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sync_core::records::Attachment;
use sync_core::sync::{Access, AccessPolicy};
use sync_core::{DocId, DocKind, RecordId, SchoolId};
use tpsync_accounts::Caller;
use tpsync_blobs::{encode_frame, BlobHash, FrameDecoder, DEFAULT_FRAME_BYTES};

use super::blocking;
use crate::auth::Authed;
use crate::blobs::{attachments_naming, Limits, Refusal, UploadState};
use crate::{ApiError, AppState};

/// The media type of a chunk-frame body, both ways.
pub const FRAMES_CONTENT_TYPE: &str = "application/vnd.tpsync.frames";

/// How long a request waits for another request on the same upload (one
/// cut a moment ago, still storing what arrived before the cut).
const UPLOAD_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

pub fn router(max_upload_body: usize) -> Router<AppState> {
    Router::new()
        .route("/schools/{code}/attachments", get(list_attachments))
        .route("/schools/{code}/attachments/limits", get(limits))
        .route(
            "/schools/{code}/blobs/{hash}",
            post(begin)
                .put(upload)
                .get(download)
                .layer(DefaultBodyLimit::max(max_upload_body)),
        )
}

fn parse_school(code: &str) -> Result<SchoolId, ApiError> {
    code.parse()
        .map_err(|e| ApiError::bad_request(format!("'{code}' is not a school code: {e}")))
}

fn parse_hash(hash: &str) -> Result<BlobHash, ApiError> {
    hash.parse()
        .map_err(|e: tpsync_blobs::ParseBlobHashError| ApiError::bad_request(e.to_string()))
}

/// May the caller read (or write) the school's attachments?
fn check(
    st: &AppState,
    caller: &Caller,
    school: &SchoolId,
    access: Access,
) -> Result<(), ApiError> {
    let policy = st.accounts.policy(caller)?;
    let doc = DocId::school(school, DocKind::Attachments).map_err(ApiError::internal)?;
    policy.check(&doc, access).map_err(|why| {
        ApiError::forbidden(format!(
            "you may not {} the attachments of school {school}: {why}",
            if access == Access::Write {
                "upload"
            } else {
                "read"
            }
        ))
    })
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        let msg = r.to_string();
        match r {
            Refusal::NotReferenced { .. } => {
                ApiError::new(StatusCode::CONFLICT, "not_referenced", msg)
            }
            Refusal::TooLarge { size, max } => {
                let mut e =
                    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "attachment_too_large", msg);
                e.extra = Some(extra(&[("size", size), ("max_attachment_bytes", max)]));
                e
            }
            Refusal::OverQuota {
                quota,
                used,
                needed,
                ..
            } => {
                let mut e = ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "quota_exceeded", msg);
                e.extra = Some(extra(&[
                    ("quota_bytes", quota),
                    ("used_bytes", used),
                    ("needed_bytes", needed),
                ]));
                e
            }
            Refusal::NotStarted(_) => {
                ApiError::new(StatusCode::CONFLICT, "upload_not_started", msg)
            }
            Refusal::NotHeld(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", msg),
            Refusal::Busy(_) => {
                let mut e = ApiError::new(StatusCode::CONFLICT, "upload_busy", msg);
                e.retry_after_s = Some(5);
                e
            }
            Refusal::Blob(tpsync_blobs::BlobError::OffsetMismatch { expected, .. }) => {
                let mut e = ApiError::new(StatusCode::CONFLICT, "offset_mismatch", msg);
                e.extra = Some(extra(&[("received", expected)]));
                e
            }
            Refusal::Blob(tpsync_blobs::BlobError::PastEnd { .. }) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "past_end", msg)
            }
            Refusal::Blob(tpsync_blobs::BlobError::Mismatch { .. }) => {
                let mut e =
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "attachment_mismatch", msg);
                e.extra = Some(extra(&[("received", 0)]));
                e
            }
            Refusal::Blob(other) => ApiError::internal(other),
            Refusal::Storage(s) => ApiError::internal(s),
        }
    }
}

fn extra(pairs: &[(&str, u64)]) -> serde_json::Map<String, serde_json::Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
        .collect()
}

async fn limits(
    State(st): State<AppState>,
    Authed(caller): Authed,
    Path(code): Path<String>,
) -> Result<Json<Limits>, ApiError> {
    let school = parse_school(&code)?;
    check(&st, &caller, &school, Access::Read)?;
    let l = blocking(move || {
        let named =
            crate::blobs::active_blob_names(&st.hub, &school).map_err(ApiError::internal)?;
        Ok(st.blobs.limits(&school, &named)?)
    })
    .await?;
    Ok(Json(l))
}

/// One attachment record as the county's list shows it.
#[derive(Serialize)]
struct AttachmentView {
    id: RecordId,
    /// The record's fields, as stored.
    #[serde(flatten)]
    attachment: Attachment,
    /// Whether the server has the bytes (the phone may not have sent them yet).
    stored: bool,
    preview_stored: bool,
    /// Where to fetch the bytes, when stored.
    url: String,
    preview_url: Option<String>,
}

#[derive(Deserialize)]
struct ListQuery {
    /// Only the attachments of this record.
    record: Option<RecordId>,
}

async fn list_attachments(
    State(st): State<AppState>,
    Authed(caller): Authed,
    Path(code): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<AttachmentView>>, ApiError> {
    let school = parse_school(&code)?;
    check(&st, &caller, &school, Access::Read)?;
    let out = blocking(move || {
        let id = DocId::school(&school, DocKind::Attachments).map_err(ApiError::internal)?;
        let list = st
            .hub
            .read(&id, |d| d.list::<Attachment>())
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
        let mut out = Vec::new();
        for (rid, a) in list {
            if q.record.is_some_and(|r| r != a.target) {
                continue;
            }
            let held = |h: &str| -> Result<bool, ApiError> {
                match h.parse::<BlobHash>() {
                    Ok(h) => Ok(st.blobs.holds(&school, &h)?),
                    Err(_) => Ok(false),
                }
            };
            let url = |h: &str| format!("/v1/schools/{school}/blobs/{h}");
            out.push(AttachmentView {
                id: rid,
                stored: held(&a.sha256)?,
                preview_stored: match &a.preview_sha256 {
                    Some(p) => held(p)?,
                    None => false,
                },
                url: url(&a.sha256),
                preview_url: a.preview_sha256.as_deref().map(url),
                attachment: a,
            });
        }
        Ok(out)
    })
    .await?;
    Ok(Json(out))
}

#[derive(Deserialize)]
struct BeginBody {
    size: u64,
}

async fn begin(
    State(st): State<AppState>,
    Authed(caller): Authed,
    Path((code, hash)): Path<(String, String)>,
    Json(body): Json<BeginBody>,
) -> Result<Json<UploadState>, ApiError> {
    let school = parse_school(&code)?;
    let hash = parse_hash(&hash)?;
    check(&st, &caller, &school, Access::Write)?;
    let guard = st
        .blobs
        .lock_upload(&school, &hash, UPLOAD_PATIENCE)
        .await?;
    let state = blocking(move || {
        let _guard = guard;
        let named = attachments_naming(&st.hub, &school, &hash).map_err(ApiError::internal)?;
        let referenced = named.iter().any(|(size, _)| *size == body.size);
        Ok(st.blobs.begin(&school, &hash, body.size, referenced)?)
    })
    .await?;
    Ok(Json(state))
}

#[derive(Deserialize)]
struct OffsetQuery {
    #[serde(default)]
    offset: u64,
    /// Frame size a framed download should use (clamped to 1 KiB…the
    /// server's largest frame); the client fits it to its link.
    frame: Option<usize>,
}

/// Receives chunk frames from `offset`. Each verified frame is synced to
/// disk before the next is read, so after a cut the upload resumes from the
/// last whole frame (`POST` tells where). A damaged frame ends the request
/// with `chunk_corrupt` and the bytes stored so far.
async fn upload(
    State(st): State<AppState>,
    Authed(caller): Authed,
    Path((code, hash)): Path<(String, String)>,
    Query(q): Query<OffsetQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<UploadState>, ApiError> {
    let school = parse_school(&code)?;
    let hash = parse_hash(&hash)?;
    check(&st, &caller, &school, Access::Write)?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with(FRAMES_CONTENT_TYPE) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send the bytes as chunk frames with Content-Type: {FRAMES_CONTENT_TYPE}"),
        ));
    }
    let blobs = st.blobs.clone();
    let guard = std::sync::Arc::new(blobs.lock_upload(&school, &hash, UPLOAD_PATIENCE).await?);
    let (size, received) = {
        let (s, h) = (school.clone(), hash);
        let b = blobs.clone();
        blocking(move || Ok((b.upload_size(&s, &h)?, b.received(&s, &h)))).await?
    };
    // Starting before the stored length is fine (those bytes are skipped);
    // starting past it would leave a hole.
    if q.offset > received {
        return Err(Refusal::Blob(tpsync_blobs::BlobError::OffsetMismatch {
            hash,
            expected: received,
            got: q.offset,
        })
        .into());
    }
    let mut decoder = FrameDecoder::new(blobs.config.max_frame_bytes);
    let mut state = UploadState {
        hash,
        size,
        received,
        complete: received == size,
    };
    // Where the next frame of this body starts.
    let mut at = q.offset;
    let mut stream = body.into_data_stream();
    'read: while let Some(piece) = stream.next().await {
        let Ok(piece) = piece else {
            // The client went away mid-frame: what was stored stays.
            break;
        };
        decoder.push(&piece);
        loop {
            let frame = match decoder.next_frame() {
                Ok(Some(f)) => Bytes::copy_from_slice(f),
                Ok(None) => break,
                Err(e) => {
                    let mut err = ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "chunk_corrupt",
                        format!(
                            "{e}; {} bytes are stored, resume from there",
                            state.received
                        ),
                    );
                    err.extra = Some(extra(&[("received", state.received)]));
                    st.metrics.blob_chunk_refused();
                    return Err(err);
                }
            };
            let (b, s, h, w) = (blobs.clone(), school.clone(), hash, guard.clone());
            let n = frame.len() as u64;
            let from = at;
            at += n;
            // The write and its fsync run on the blocking pool.
            let gate = st.write_gate.clone();
            state = blocking(move || {
                // A backup copies the bookkeeping and the blobs as one moment.
                let _g = gate.read();
                Ok(b.write_chunk(&w, &s, &h, size, from, &frame)?)
            })
            .await?;
            st.metrics.blob_bytes_in(n);
            if state.complete {
                break 'read;
            }
        }
    }
    drop(guard);
    Ok(Json(state))
}

/// The school this blob is served for, after the access checks: the caller
/// may read the school's attachments, a record there names the blob, and
/// the school sent its bytes.
async fn servable(
    st: &AppState,
    caller: &Caller,
    code: &str,
    hash: &str,
) -> Result<(SchoolId, BlobHash, String, u64), ApiError> {
    let school = parse_school(code)?;
    let hash = parse_hash(hash)?;
    check(st, caller, &school, Access::Read)?;
    let st2 = st.clone();
    let s = school.clone();
    let (media, size) = blocking(move || {
        let named = attachments_naming(&st2.hub, &s, &hash).map_err(ApiError::internal)?;
        let Some((_, media)) = named.into_iter().next() else {
            return Err(Refusal::NotHeld(hash).into());
        };
        if !st2.blobs.holds(&s, &hash)? {
            return Err(Refusal::NotHeld(hash).into());
        }
        let size = st2
            .blobs
            .store()
            .size_of(&hash)
            .ok_or(Refusal::NotHeld(hash))?;
        Ok((media, size))
    })
    .await?;
    Ok((school, hash, media, size))
}

/// The start of a `Range: bytes=n-` (or `bytes=n-m`, end ignored: the rest
/// is sent), if any.
fn range_start(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(v) = headers.get(header::RANGE) else {
        return Ok(None);
    };
    let v = v.to_str().unwrap_or("");
    let start = v
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, _)| a.trim().parse::<u64>().ok())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Range {v:?} is not understood; send bytes=<first byte>-"
            ))
        })?;
    Ok(Some(start))
}

async fn download(
    State(st): State<AppState>,
    Authed(caller): Authed,
    Path((code, hash)): Path<(String, String)>,
    Query(q): Query<OffsetQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let frame = q.frame.unwrap_or(DEFAULT_FRAME_BYTES);
    serve_blob_framed(&st, &caller, &code, &hash, q.offset, frame, &headers).await
}

/// Answers a download of blob `hash` of school `code` for `caller` after
/// the access checks (the dashboard pages call it with their cookie
/// session's caller): the raw bytes with `Range` support, or chunk frames
/// from `offset` when `headers` accept them.
pub(crate) async fn serve_blob(
    st: &AppState,
    caller: &Caller,
    code: &str,
    hash: &str,
    offset: u64,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    serve_blob_framed(st, caller, code, hash, offset, DEFAULT_FRAME_BYTES, headers).await
}

/// [`serve_blob`] with the frame size of a framed answer.
async fn serve_blob_framed(
    st: &AppState,
    caller: &Caller,
    code: &str,
    hash: &str,
    offset: u64,
    frame: usize,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let q = OffsetQuery {
        offset,
        frame: None,
    };
    let frame = frame.clamp(1024, st.blobs.config.max_frame_bytes);
    let (_school, hash, media, size) = servable(st, caller, code, hash).await?;
    let framed = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains(FRAMES_CONTENT_TYPE));
    let start = if framed {
        q.offset
    } else {
        range_start(headers)?.unwrap_or(0)
    };
    if start > size || (start == size && size > 0 && !framed) {
        let mut r = ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "bad_request",
            format!("the blob has {size} bytes; byte {start} is past its end"),
        )
        .into_response();
        r.headers_mut().insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes */{size}")).expect("ascii"),
        );
        return Ok(r);
    }
    let store = st.blobs.store().clone();
    let metrics = st.metrics.clone();
    let chunk = if framed { frame } else { 64 << 10 };
    // Reads the file a chunk at a time on the blocking pool: a 20 MB scan
    // never sits whole in memory.
    let stream = futures_util::stream::unfold(start, move |at| {
        let store = store.clone();
        let metrics = metrics.clone();
        async move {
            if at >= size {
                return None;
            }
            let read =
                tokio::task::spawn_blocking(move || store.read_range(&hash, at, chunk)).await;
            let bytes = match read {
                Ok(Ok(b)) if !b.is_empty() => b,
                Ok(Ok(_)) => return None,
                Ok(Err(e)) => return Some((Err(std::io::Error::other(e.to_string())), size)),
                Err(e) => return Some((Err(std::io::Error::other(e.to_string())), size)),
            };
            let next = at + bytes.len() as u64;
            metrics.blob_bytes_out(bytes.len() as u64);
            let out = if framed {
                let mut f = Vec::with_capacity(bytes.len() + tpsync_blobs::FRAME_HEADER_BYTES);
                encode_frame(&bytes, &mut f);
                f
            } else {
                bytes
            };
            Some((Ok::<_, std::io::Error>(Bytes::from(out)), next))
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&format!("\"{hash}\"")).expect("hex"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::HeaderName::from_static("x-blob-size"),
        HeaderValue::from(size),
    );
    if framed {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(FRAMES_CONTENT_TYPE),
        );
    } else {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(&media)
                .unwrap_or(HeaderValue::from_static("application/octet-stream")),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(size - start));
        h.insert(
            header::HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        );
        // The media type is what a phone wrote: only images and PDFs show
        // in place; anything else (HTML, SVG…) downloads, and nothing runs.
        let shown = matches!(
            media.split(';').next().unwrap_or("").trim(),
            "image/jpeg" | "image/png" | "image/webp" | "image/gif" | "application/pdf"
        );
        h.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static(if shown { "inline" } else { "attachment" }),
        );
        // (Chromium will not show a PDF under `sandbox`; a PDF runs no
        // script in its viewer.)
        if !media.starts_with("application/pdf") {
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; img-src 'self'; sandbox"),
            );
        }
        if start > 0 {
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            resp.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes {start}-{}/{size}", size - 1))
                    .expect("ascii"),
            );
        }
    }
    Ok(resp)
}
