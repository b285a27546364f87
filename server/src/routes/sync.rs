//! Sync over HTTP (one request per round, for phones) and over WebSocket
//! (for clients that stay online, with change notices pushed to them).

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use sync_core::sync::{Access, AccessPolicy, Answer};
use sync_core::PeerId;
use tokio::sync::broadcast::error::RecvError;
use tpsync_accounts::Caller;

use crate::auth::Authed;
use crate::metrics::Outcome;
use crate::{now_ms, ApiError, AppState, Changed};

pub const SYNC_CONTENT_TYPE: &str = "application/x-tpsync";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sync", post(sync_http))
        .route("/sync/ws", get(sync_ws))
}

async fn sync_http(
    State(st): State<AppState>,
    Authed(caller): Authed,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with(SYNC_CONTENT_TYPE) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send the sync request frame as {SYNC_CONTENT_TYPE}, not {ct:?}"),
        ));
    }
    let max = st.config.max_body_bytes;
    let bytes = axum::body::to_bytes(body, max).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the request body is over {max} bytes; sync fewer documents per request"),
        )
    })?;
    let answer = sync_once(&st, &caller, bytes, "http").await?;
    if let Some(problems) = answer.refused {
        return Err(ApiError::refused(&problems));
    }
    Ok(([(header::CONTENT_TYPE, SYNC_CONTENT_TYPE)], answer.bytes).into_response())
}

/// Answers one request on the blocking pool, with the request timeout,
/// metrics and the change notice.
async fn sync_once(
    st: &AppState,
    caller: &Caller,
    bytes: Bytes,
    transport: &'static str,
) -> Result<Answer, ApiError> {
    let started = Instant::now();
    let policy = st.accounts.policy(caller)?;
    let peer = PeerId::new(caller.device.as_str()).map_err(ApiError::internal)?;
    let st2 = st.clone();
    let n_in = bytes.len();
    let slots = st.sync_slots.clone();
    let work = async move {
        let _slot = slots.acquire_owned().await.map_err(ApiError::internal)?;
        let joined = tokio::task::spawn_blocking(move || {
            let _gate = st2.write_gate.read();
            st2.hub.answer(&peer, &policy, &st2.config.limits, &bytes)
        })
        .await;
        joined.map_err(ApiError::internal)
    };
    let result = match tokio::time::timeout(st.config.request_timeout, work).await {
        Err(_) => {
            st.metrics
                .syncs
                .get_or_create(&Outcome {
                    transport,
                    outcome: "timeout",
                })
                .inc();
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "the server is busy and the sync took too long; sync again (nothing is lost: the next sync picks up where this one stopped)",
            ));
        }
        Ok(joined) => joined?,
    };
    let answer = match result {
        Ok(a) => a,
        Err(e) => {
            st.metrics
                .syncs
                .get_or_create(&Outcome {
                    transport,
                    outcome: "error",
                })
                .inc();
            return Err(ApiError::internal(e));
        }
    };
    let outcome = if answer.refused.is_some() {
        "refused"
    } else {
        "ok"
    };
    st.metrics
        .syncs
        .get_or_create(&Outcome { transport, outcome })
        .inc();
    st.metrics
        .sync_seconds
        .observe(started.elapsed().as_secs_f64());
    st.metrics.sync_bytes_in.inc_by(n_in as u64);
    st.metrics.sync_bytes_out.inc_by(answer.bytes.len() as u64);
    if let Some(p) = &answer.refused {
        tracing::info!(device = %caller.device, user = %caller.username, problems = ?p, "sync refused");
    }
    if answer.refused.is_none() {
        crate::reports::record_sync(st, caller.device.as_str(), now_ms());
    }
    if !answer.changed.is_empty() {
        tracing::debug!(device = %caller.device, docs = answer.changed.len(), "documents changed");
        let _ = st.changes.send(Arc::new(Changed {
            docs: answer.changed.clone(),
            by: caller.device.clone(),
        }));
    }
    Ok(answer)
}

async fn sync_ws(
    State(st): State<AppState>,
    Authed(caller): Authed,
    parts: axum::http::request::Parts,
    ws: WebSocketUpgrade,
) -> Response {
    // Keep the token: every message re-checks it (expiry, a revoked device).
    let token = crate::auth::token(&parts).unwrap_or_default();
    let max = st.config.max_body_bytes;
    ws.max_message_size(max)
        .on_upgrade(move |socket| ws_session(st, caller, token, socket))
}

fn problem_text(e: &ApiError) -> String {
    let mut v = serde_json::to_value(e).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("type".into(), json!("problem"));
        o.insert("problem_type".into(), json!(e.kind));
    }
    v.to_string()
}

async fn ws_session(st: AppState, caller: Caller, token: String, socket: WebSocket) {
    st.metrics.ws_connections.inc();
    let (mut tx, mut rx) = socket.split();
    let mut changes = st.changes.subscribe();
    let policy = match st.accounts.policy(&caller) {
        Ok(p) => p,
        Err(e) => {
            let _ = tx
                .send(WsMessage::Text(problem_text(&e.into()).into()))
                .await;
            st.metrics.ws_connections.dec();
            return;
        }
    };
    tracing::debug!(device = %caller.device, "websocket open");
    loop {
        tokio::select! {
            msg = rx.next() => {
                let bytes = match msg {
                    Some(Ok(WsMessage::Binary(b))) => b,
                    Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(WsMessage::Text(_))) => {
                        let e = ApiError::bad_request("send sync request frames as binary messages");
                        if tx.send(WsMessage::Text(problem_text(&e).into())).await.is_err() { break; }
                        continue;
                    }
                    Some(Ok(_)) => continue, // ping/pong: answered by axum
                };
                // The token may have expired or the device been revoked
                // since the connection opened.
                if let Err(e) = st.accounts.verify(&token, now_ms()) {
                    let _ = tx.send(WsMessage::Text(problem_text(&e.into()).into())).await;
                    break;
                }
                let out = match sync_once(&st, &caller, bytes, "websocket").await {
                    Ok(a) => match a.refused {
                        None => WsMessage::Binary(a.bytes.into()),
                        Some(p) => WsMessage::Text(problem_text(&ApiError::refused(&p)).into()),
                    },
                    Err(e) => WsMessage::Text(problem_text(&e).into()),
                };
                if tx.send(out).await.is_err() { break; }
            }
            ch = changes.recv() => {
                let docs: Vec<String> = match ch {
                    Ok(c) if c.by == caller.device => continue,
                    Ok(c) => c.docs.iter()
                        .filter(|d| policy.check(d, Access::Read).is_ok())
                        .map(|d| d.to_string())
                        .collect(),
                    // Fell behind: tell the client to sync everything it reads.
                    Err(RecvError::Lagged(_)) => match st.accounts.scope(&caller) {
                        Ok(s) => s.read.iter().map(|d| d.to_string()).collect(),
                        Err(_) => continue,
                    },
                    Err(RecvError::Closed) => break,
                };
                if docs.is_empty() { continue; }
                let text = json!({"type": "changed", "docs": docs}).to_string();
                if tx.send(WsMessage::Text(text.into())).await.is_err() { break; }
            }
        }
    }
    st.metrics.ws_connections.dec();
    tracing::debug!(device = %caller.device, "websocket closed");
}
