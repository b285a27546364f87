//! Account administration: the county, the school list, users, devices,
//! signing keys, backups. Admin role only.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use sync_core::CountyId;
use tpsync_accounts::{County, Device, KeyInfo, NewUser, School, SchoolImport, User};

use super::auth::device_id;
use super::blocking;
use crate::auth::Admin;
use crate::{now_ms, ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/county", post(set_county))
        .route("/schools/import", post(import_schools))
        .route("/schools", get(schools))
        .route("/users", post(create_user).get(users))
        .route("/devices", get(devices))
        .route("/devices/{id}/revoke", post(revoke_device))
        .route("/keys/rotate", post(rotate_key))
        .route("/backup", get(backup))
}

#[derive(Deserialize)]
struct CountyBody {
    code: String,
    name: String,
}

async fn set_county(
    State(st): State<AppState>,
    Admin(_): Admin,
    Json(b): Json<CountyBody>,
) -> Result<Json<County>, ApiError> {
    let code = CountyId::new(&b.code)
        .map_err(|e| ApiError::bad_request(format!("county code {:?}: {e}", b.code)))?;
    blocking(move || {
        let _g = st.write_gate.read();
        Ok(Json(st.accounts.set_county(code, &b.name)?))
    })
    .await
}

#[derive(Deserialize)]
struct ImportQuery {
    #[serde(default)]
    dry_run: bool,
}

async fn import_schools(
    State(st): State<AppState>,
    Admin(_): Admin,
    Query(q): Query<ImportQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let st2 = st.clone();
    let report: SchoolImport = blocking(move || {
        let _g = st.write_gate.read();
        Ok(st.accounts.import_schools_csv(&body, q.dry_run)?)
    })
    .await?;
    if report.errors.is_empty() {
        if !q.dry_run {
            st2.reports.registry_changed();
        }
        return Ok(Json(report).into_response());
    }
    let mut e = ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
        format!(
            "{} row(s) of the school list are wrong; nothing was imported. Fix them and import again",
            report.errors.len()
        ),
    );
    if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(&report) {
        e.extra = Some(map);
    }
    Err(e)
}

async fn schools(
    State(st): State<AppState>,
    Admin(_): Admin,
) -> Result<Json<Vec<School>>, ApiError> {
    Ok(Json(st.accounts.schools()?))
}

async fn create_user(
    State(st): State<AppState>,
    Admin(_): Admin,
    Json(new): Json<NewUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    blocking(move || {
        let _g = st.write_gate.read();
        Ok((
            StatusCode::CREATED,
            Json(st.accounts.create_user(new, now_ms())?),
        ))
    })
    .await
}

async fn users(State(st): State<AppState>, Admin(_): Admin) -> Result<Json<Vec<User>>, ApiError> {
    Ok(Json(st.accounts.users()?))
}

async fn devices(
    State(st): State<AppState>,
    Admin(_): Admin,
) -> Result<Json<Vec<Device>>, ApiError> {
    Ok(Json(st.accounts.devices()?))
}

async fn revoke_device(
    State(st): State<AppState>,
    Admin(a): Admin,
    Path(id): Path<String>,
) -> Result<Json<Device>, ApiError> {
    let id = device_id(&id)?;
    let d = blocking(move || {
        let _g = st.write_gate.read();
        Ok(st.accounts.revoke_device(&id, now_ms())?)
    })
    .await?;
    tracing::warn!(device = %d.id, by = %a.username, "device revoked");
    Ok(Json(d))
}

async fn rotate_key(
    State(st): State<AppState>,
    Admin(a): Admin,
) -> Result<Json<KeyInfo>, ApiError> {
    let k = blocking(move || {
        let _g = st.write_gate.read();
        Ok(st.accounts.rotate_signing_key(now_ms())?)
    })
    .await?;
    tracing::warn!(kid = %k.kid, by = %a.username, "signing key rotated");
    Ok(Json(k))
}

async fn backup(State(st): State<AppState>, Admin(a): Admin) -> Result<Response, ApiError> {
    // Written to a file in the data directory, then streamed: a county's
    // backup is tens of MiB of records and gigabytes of photos, which should
    // not sit in the server's memory.
    let path = st
        .config
        .data
        .join(format!("{}{}.tmp", crate::BACKUP_TMP_PREFIX, now_ms()));
    let p = path.clone();
    let (n, len) = blocking(move || {
        // Exclusive: no write lands while the copy is taken.
        let _g = st.write_gate.write();
        st.db.flush().map_err(ApiError::internal)?;
        let file = std::fs::File::create(&p).map_err(ApiError::internal)?;
        let mut out = std::io::BufWriter::new(file);
        let n = crate::backup::export(&st.db, Some(st.blobs.store()), &mut out)
            .map_err(ApiError::internal)?;
        let file = out.into_inner().map_err(ApiError::internal)?;
        let len = file.metadata().map_err(ApiError::internal)?.len();
        Ok((n, len))
    })
    .await
    .inspect_err(|_| {
        let _ = std::fs::remove_file(&path);
    })?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(ApiError::internal);
    // Unlinked while open: the stream still reads it, and nothing is left
    // behind whatever happens to the download.
    let _ = std::fs::remove_file(&path);
    let file = file?;
    tracing::info!(entries = n.entries, blobs = n.blobs, bytes = len, by = %a.username, "backup taken");
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"tpsync-{}.backup\"", now_ms()),
            ),
        ],
        axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(file)),
    )
        .into_response())
}
