//! Sign-in, token refresh, sign-out, first administrator, and `me`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use sync_core::DeviceId;
use tpsync_accounts::{Tokens, User};

use super::blocking;
use crate::auth::Authed;
use crate::metrics::Code;
use crate::{now_ms, ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/setup", post(setup))
        .route("/auth/login", post(login))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
        .route("/me", get(me))
}

#[derive(Deserialize)]
struct SetupBody {
    code: String,
    username: String,
    password: String,
}

async fn setup(
    State(st): State<AppState>,
    Json(b): Json<SetupBody>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let user = blocking(move || {
        let _g = st.write_gate.read();
        Ok(st
            .accounts
            .setup(&b.code, &b.username, &b.password, now_ms())?)
    })
    .await?;
    tracing::info!(username = %user.username, "first administrator created");
    Ok((StatusCode::CREATED, Json(user)))
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
    device_id: String,
    device_name: Option<String>,
}

pub(crate) fn device_id(s: &str) -> Result<DeviceId, ApiError> {
    DeviceId::new(s).map_err(|e| {
        ApiError::bad_request(format!(
            "device_id {s:?} is not usable: {e}; use 1–32 letters, digits or '-'"
        ))
    })
}

async fn login(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Json(b): Json<LoginBody>,
) -> Result<Json<Tokens>, ApiError> {
    let device = device_id(&b.device_id)?;
    let metrics = st.metrics.clone();
    let r = blocking(move || {
        let _g = st.write_gate.read();
        Ok(st.accounts.login(
            &b.username,
            &b.password,
            &device,
            b.device_name.as_deref(),
            Some(addr.ip()),
            now_ms(),
        ))
    })
    .await?;
    let code = match &r {
        Ok(_) => "ok",
        Err(e) => e.code(),
    };
    metrics.logins.get_or_create(&Code { code }).inc();
    Ok(Json(r?))
}

#[derive(Deserialize)]
struct RefreshBody {
    refresh_token: String,
}

async fn refresh(
    State(st): State<AppState>,
    Json(b): Json<RefreshBody>,
) -> Result<Json<Tokens>, ApiError> {
    blocking(move || {
        let _g = st.write_gate.read();
        Ok(Json(st.accounts.refresh(&b.refresh_token, now_ms())?))
    })
    .await
}

async fn logout(State(st): State<AppState>, Authed(c): Authed) -> Result<StatusCode, ApiError> {
    blocking(move || {
        let _g = st.write_gate.read();
        st.accounts.logout(&c, now_ms())?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

async fn me(State(st): State<AppState>, Authed(c): Authed) -> Result<Json<Value>, ApiError> {
    let scope = st.accounts.scope(&c)?;
    Ok(Json(json!({
        "user": {"id": c.user, "username": c.username, "role": c.role, "unit": c.unit},
        "device_id": c.device,
        "scope": scope,
    })))
}
