//! tpsync's county server: the HTTP and WebSocket face of the sync core, with
//! accounts and access rules, on one embedded sled database.
//!
//! Shape (after axum's examples): [`open`] builds the [`AppState`] from a
//! [`ServerConfig`]; [`app`] is the `Router`; [`run`] serves it on a
//! listener the caller bound, until a shutdown future resolves, so tests bind
//! `127.0.0.1:0`. Blocking work (Automerge, sled flushes, argon2) runs on
//! tokio's blocking pool, never on the async workers.
//!
//! The only crate that knows HTTP and JSON problem documents is this one;
//! sync-core stays sans-IO and the accounts crate knows nothing of HTTP.

#![recursion_limit = "256"]

pub mod auth;
pub mod backup;
pub mod blobs;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod reports;
mod routes;
pub mod ui;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use parking_lot::RwLock;
use sync_core::store::SledStorage;
use sync_core::sync::ResponderLimits;
use sync_core::{DeviceId, DocId, Hub, HubConfig};
use tokio::sync::broadcast;
use tpsync_accounts::{Accounts, AuthConfig};

pub use problem::ApiError;

/// Everything the server is configured with (flags and environment).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The data directory: one sled database holding documents and accounts.
    pub data: PathBuf,
    /// Estimated memory the loaded documents may take.
    pub cache_bytes: usize,
    /// sled's own page cache.
    pub sled_cache_bytes: u64,
    /// Largest request body (compressed, as sent).
    pub max_body_bytes: usize,
    /// Largest request once decompressed, and most documents per request.
    pub limits: ResponderLimits,
    /// How long one request may take before the client gets a `timeout`.
    pub request_timeout: Duration,
    pub auth: AuthConfig,
    /// How often the background task compacts documents.
    pub compact_every: Duration,
    /// Sync requests answered at the same time; more wait their turn. Each
    /// one holds copies of the documents it changes, so this bounds memory
    /// as well as CPU contention.
    pub max_concurrent_syncs: usize,
    /// Attachment size limit and per-school quota.
    pub blobs: blobs::BlobConfig,
}

impl ServerConfig {
    pub fn new(data: impl Into<PathBuf>) -> Self {
        Self {
            data: data.into(),
            cache_bytes: 48 << 20,
            sled_cache_bytes: 32 << 20,
            max_body_bytes: 16 << 20,
            limits: ResponderLimits {
                max_decoded: 64 << 20,
                max_docs: 5_000,
            },
            request_timeout: Duration::from_secs(60),
            auth: AuthConfig::default(),
            compact_every: Duration::from_secs(5),
            // Answering is CPU work (Automerge) plus a flush: one per core
            // keeps the cores busy, and more only adds copies of documents
            // in memory.
            max_concurrent_syncs: std::thread::available_parallelism()
                .map(|n| n.get().max(2))
                .unwrap_or(2),
            blobs: blobs::BlobConfig::default(),
        }
    }
}

/// A change notice for WebSocket subscribers: which documents changed, and
/// which device's sync changed them (it needs no notice).
#[derive(Clone, Debug)]
pub struct Changed {
    pub docs: Vec<DocId>,
    pub by: DeviceId,
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<ServerConfig>,
    pub db: sled::Db,
    pub hub: Arc<Hub<SledStorage>>,
    pub accounts: Accounts,
    pub metrics: Arc<metrics::Metrics>,
    pub changes: broadcast::Sender<Arc<Changed>>,
    /// Writes hold it shared; a backup holds it exclusively, so what it
    /// copies is one consistent moment.
    pub write_gate: Arc<RwLock<()>>,
    /// Admits `max_concurrent_syncs` syncs at a time.
    pub sync_slots: Arc<tokio::sync::Semaphore>,
    pub started: Instant,
    /// The township and county reports, kept current by a background task.
    pub reports: reports::Shared,
    /// Attachment bytes (outside sled) and their bookkeeping.
    pub blobs: Arc<blobs::Blobs>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Backups being written start with this name in the data directory.
pub const BACKUP_TMP_PREFIX: &str = "backup-in-progress-";

/// Opens the data directory and builds the state.
pub fn open(config: ServerConfig) -> Result<AppState, String> {
    std::fs::create_dir_all(&config.data).map_err(|e| {
        format!(
            "cannot create the data directory {}: {e}",
            config.data.display()
        )
    })?;
    // A backup cut short by a crash leaves its temporary file: remove it.
    if let Ok(dir) = std::fs::read_dir(&config.data) {
        for e in dir.flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with(BACKUP_TMP_PREFIX)
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let db = sled::Config::new()
        .path(config.data.join("db"))
        .cache_capacity(config.sled_cache_bytes)
        .mode(sled::Mode::LowSpace)
        .open()
        .map_err(|e| {
            format!(
                "cannot open the database in {}: {e} (is another tpsync server running on it?)",
                config.data.display()
            )
        })?;
    let accounts = Accounts::open(&db, config.auth.clone()).map_err(|e| e.to_string())?;
    let hub = Hub::new(
        SledStorage::from_db(db.clone()),
        HubConfig {
            cache_bytes: config.cache_bytes,
            ..HubConfig::default()
        },
    );
    let blobs = blobs::Blobs::open(&config.data, &db, config.blobs)?;
    let (changes, _) = broadcast::channel(1024);
    let sync_slots = Arc::new(tokio::sync::Semaphore::new(
        config.max_concurrent_syncs.max(1),
    ));
    Ok(AppState {
        config: Arc::new(config),
        db,
        hub: Arc::new(hub),
        accounts,
        metrics: Arc::new(metrics::Metrics::new()),
        changes,
        write_gate: Arc::new(RwLock::new(())),
        sync_slots,
        started: Instant::now(),
        reports: Arc::new(reports::Reports::default()),
        blobs: Arc::new(blobs),
    })
}

/// The whole HTTP API.
pub fn app(state: AppState) -> Router {
    routes::router(state)
}

/// Serves `state` on `listener` until `shutdown` resolves; then stops
/// accepting, lets requests in flight finish, and flushes the database.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let compactor = tokio::spawn(compact_in_background(state.clone()));
    let reporter = tokio::spawn(reports::keep_current(state.clone()));
    let db = state.db.clone();
    let router = app(state);
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    compactor.abort();
    reporter.abort();
    db.flush_async().await.map_err(std::io::Error::other)?;
    tracing::info!("stopped; everything flushed");
    Ok(())
}

async fn compact_in_background(state: AppState) {
    let mut tick = tokio::time::interval(state.config.compact_every);
    loop {
        tick.tick().await;
        let s = state.clone();
        let r = tokio::task::spawn_blocking(move || {
            let _gate = s.write_gate.read();
            s.hub.compact_due()
        })
        .await;
        match r {
            Ok(Ok(n)) if n > 0 => tracing::debug!(documents = n, "compacted"),
            Ok(Err(e)) => tracing::error!(error = %e, "compaction failed"),
            _ => {}
        }
    }
}
