//! One sub-router per feature, nested under one `Router`.

mod admin;
mod auth;
pub(crate) mod blobs;
mod ops;
pub(crate) mod reports;
pub(crate) mod sheets;
mod sync;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tower_http::trace::TraceLayer;

use crate::AppState;

/// Largest JSON body outside sync and imports.
const MAX_JSON_BYTES: usize = 64 << 10;

pub fn router(state: AppState) -> Router {
    let max_body = state.config.max_body_bytes;
    let max_blob = state.config.blobs.max_blob_bytes;
    Router::new()
        .merge(ops::router())
        .nest(
            "/v1",
            Router::new()
                .merge(auth::router().layer(DefaultBodyLimit::max(MAX_JSON_BYTES)))
                .merge(sync::router().layer(DefaultBodyLimit::max(max_body)))
                .merge(reports::router().layer(DefaultBodyLimit::max(MAX_JSON_BYTES)))
                // Frames add 36 bytes per chunk of at least 1 KiB.
                .merge(blobs::router(
                    (max_blob as usize).saturating_add(max_blob as usize / 28 + (64 << 10)),
                ))
                .merge(
                    sheets::router().layer(DefaultBodyLimit::max(tpsync_sheets::MAX_INPUT_BYTES)),
                )
                .nest(
                    "/admin",
                    admin::router().layer(DefaultBodyLimit::max(max_body)),
                ),
        )
        .layer(axum::middleware::from_fn(
            crate::problem::problems_everywhere,
        ))
        // The HTML pages, after the problem-document layer: their errors are
        // pages. Its fallback (problem documents outside /ui/) is the app's.
        .merge(crate::ui::router())
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Runs blocking work (argon2, sled, Automerge) off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::ApiError> + Send + 'static,
) -> Result<T, crate::ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(crate::ApiError::internal)?
}
