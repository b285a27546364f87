//! Health, metrics and the OpenAPI description.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
}

async fn healthz(State(st): State<AppState>) -> Json<Value> {
    let stats = st.hub.stats();
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "docs_loaded": stats.docs_loaded,
        "uptime_s": st.started.elapsed().as_secs(),
    }))
}

async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.render(&st.hub.stats()),
    )
}

async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}
