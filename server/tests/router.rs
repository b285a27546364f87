//! The router without a socket (`oneshot`): the OpenAPI description names
//! only routes that exist, and every error, even axum's own, is a problem
//! document with a stable code.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;
use tpsync_server::{app, open, ServerConfig};

fn state(dir: &std::path::Path) -> tpsync_server::AppState {
    open(ServerConfig::new(dir)).unwrap()
}

async fn call(
    state: &tpsync_server::AppState,
    method: &str,
    path: &str,
) -> (StatusCode, String, serde_json::Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .extension(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            9,
        ))))
        .body(Body::from("{}"))
        .unwrap();
    let resp = app(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        ct,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn every_described_route_exists() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let doc = tpsync_server::openapi::document();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 18, "{} paths", paths.len());
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let concrete = path.replace("{id}", "phone-1");
            let (status, ct, _) = call(&st, &method.to_uppercase(), &concrete).await;
            assert!(
                status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is described but answers {status}"
            );
            if status.is_client_error() || status.is_server_error() {
                assert!(
                    ct.starts_with("application/problem+json"),
                    "{method} {path}: {ct}"
                );
            }
        }
    }
}

#[tokio::test]
async fn errors_are_problem_documents_with_stable_codes() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let (s, ct, p) = call(&st, "GET", "/v1/nothing-here").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(ct.starts_with("application/problem+json"));
    assert_eq!(p["code"], "not_found");
    assert_eq!(p["status"], 404);

    let (s, _, p) = call(&st, "DELETE", "/v1/sync").await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(p["code"], "method_not_allowed");

    let (s, _, p) = call(&st, "POST", "/v1/sync").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(p["code"], "unauthorized");
    assert!(p["detail"]
        .as_str()
        .unwrap()
        .contains("Authorization: Bearer"));

    // A JSON body missing fields: axum's rejection, reshaped.
    let (s, _, p) = call(&st, "POST", "/v1/auth/login").await;
    assert!(s.is_client_error());
    assert_eq!(p["code"], "bad_request");
    assert!(p["detail"].as_str().unwrap().contains("username"), "{p}");

    let (s, _, p) = call(&st, "GET", "/v1/admin/users").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{p}");
}

#[tokio::test]
async fn health_and_metrics_answer() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let (s, _, h) = call(&st, "GET", "/healthz").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["status"], "ok");
    let req = Request::builder()
        .uri("/metrics")
        .body(Body::empty())
        .unwrap();
    let resp = app(st.clone()).oneshot(req).await.unwrap();
    let text = String::from_utf8(
        axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(text.contains("tpsync_docs_loaded"), "{text}");
    assert!(text.contains("tpsync_sync_duration_seconds"), "{text}");
}

/// The other direction: every route the routers register is described, so
/// a route added without its description fails here.
#[test]
fn every_route_is_described() {
    let sources: [(&str, &str); 7] = [
        ("", include_str!("../src/routes/ops.rs")),
        ("/v1", include_str!("../src/routes/auth.rs")),
        ("/v1", include_str!("../src/routes/sync.rs")),
        ("/v1", include_str!("../src/routes/reports.rs")),
        ("/v1", include_str!("../src/routes/blobs.rs")),
        ("/v1", include_str!("../src/routes/sheets.rs")),
        ("/v1/admin", include_str!("../src/routes/admin.rs")),
    ];
    let doc = tpsync_server::openapi::document();
    let paths = doc["paths"].as_object().unwrap();
    let mut seen = 0;
    for (prefix, src) in sources {
        // `.route(` and the path literal may be split over lines by rustfmt.
        for piece in src.split(".route(").skip(1) {
            let literal = piece.trim_start();
            let Some(rest) = literal.strip_prefix('"') else {
                continue;
            };
            let path = &rest[..rest.find('"').unwrap()];
            let full = format!("{prefix}{path}");
            assert!(
                paths.contains_key(&full),
                "{full} is served but missing from the OpenAPI description (server/src/openapi.rs)"
            );
            seen += 1;
        }
    }
    assert!(
        seen >= 28,
        "only {seen} routes found: has the router's shape changed?"
    );
}
