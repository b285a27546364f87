//! The server's read model ([`tpsync_reports::ReadModel`]) and the task that
//! keeps it current.
//!
//! At start the task reads the school list and every registered school's
//! documents once (on the blocking pool, through the hub, so the cache bound
//! holds); after that it follows the change notices every commit sends
//! ([`crate::Changed`]) and re-reads only the documents named. Requests read
//! the model under a short read lock; nothing recomputes the county per
//! request. Until the first build is done, report requests get a 503 saying
//! how far it is.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use sync_core::{DocId, DocKind, SchoolId};
use tokio::sync::{broadcast::error::RecvError, mpsc};
use tpsync_accounts::Role;
use tpsync_reports::{DeviceSeen, ReadModel, SchoolMeta};

use crate::{ApiError, AppState};

/// Name of the sled tree holding each device's last completed sync.
pub const LAST_SYNC_TREE: &str = "tpsync.last_sync";

/// The read model and how far its first build is.
pub struct Reports {
    model: RwLock<ReadModel>,
    ready: AtomicBool,
    built: AtomicUsize,
    to_build: AtomicUsize,
    registry: mpsc::UnboundedSender<()>,
    registry_rx: parking_lot::Mutex<Option<mpsc::UnboundedReceiver<()>>>,
}

impl Default for Reports {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Reports {
            model: RwLock::new(ReadModel::default()),
            ready: AtomicBool::new(false),
            built: AtomicUsize::new(0),
            to_build: AtomicUsize::new(0),
            registry: tx,
            registry_rx: parking_lot::Mutex::new(Some(rx)),
        }
    }
}

impl Reports {
    /// Reads the model, or says the first build is still running.
    pub fn read<T>(&self, f: impl FnOnce(&ReadModel) -> T) -> Result<T, ApiError> {
        if !self.ready.load(Ordering::Acquire) {
            return Err(ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "reports_building",
                format!(
                    "the reports are being built after a restart ({} of {} schools read); try again in a few seconds",
                    self.built.load(Ordering::Relaxed),
                    self.to_build.load(Ordering::Relaxed)
                ),
            ));
        }
        Ok(f(&self.model.read()))
    }

    /// The school list changed (an import): the task re-reads it.
    pub fn registry_changed(&self) {
        let _ = self.registry.send(());
    }
}

/// Re-reads documents into the model (blocking: loads through the hub).
pub fn apply_docs(st: &AppState, docs: &[DocId]) {
    for id in docs {
        let r = st.hub.read(id, |d| st.reports.model.write().apply(d));
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(doc = %id, error = %e, "reports could not read a document")
            }
            Err(e) => tracing::error!(doc = %id, error = %e, "reports could not load a document"),
        }
    }
}

/// Reads the school list and the county template (blocking), and returns
/// the documents of schools the model did not have.
fn refresh_registry(st: &AppState) -> Result<Vec<DocId>, String> {
    let county = st.accounts.county().map_err(|e| e.to_string())?;
    let townships: BTreeMap<String, String> = st
        .accounts
        .townships()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|t| (t.code.as_str().to_owned(), t.name))
        .collect();
    let schools = st.accounts.schools().map_err(|e| e.to_string())?;
    let known: Vec<SchoolId> = st.reports.model.read().school_codes(None);
    let metas: Vec<SchoolMeta> = schools
        .iter()
        .map(|s| SchoolMeta {
            code: s.code.clone(),
            name: s.name.clone(),
            township: s.township.as_str().to_owned(),
            township_name: townships
                .get(s.township.as_str())
                .cloned()
                .unwrap_or_else(|| s.township.as_str().to_owned()),
            school_type: s.school_type,
        })
        .collect();
    st.reports.model.write().set_registry(
        county.as_ref().map(|c| c.name.as_str()).unwrap_or(""),
        townships,
        metas,
    );
    let mut docs = Vec::new();
    if let Some(c) = &county {
        docs.push(DocId::template(&c.code));
    }
    for s in schools.iter().filter(|s| !known.contains(&s.code)) {
        docs.extend(DocId::all_for_school(&s.code));
    }
    Ok(docs)
}

/// Builds the model, then follows change notices until the server stops.
pub async fn keep_current(st: AppState) {
    let mut changes = st.changes.subscribe();
    let Some(mut registry) = st.reports.registry_rx.lock().take() else {
        return;
    };
    let s = st.clone();
    let built = tokio::task::spawn_blocking(move || -> Result<(), String> {
        let docs = refresh_registry(&s)?;
        s.reports.to_build.store(
            docs.iter().filter(|d| d.kind() == DocKind::Review).count(),
            Ordering::Relaxed,
        );
        // The template comes first in the list: every evaluation reads it.
        for d in &docs {
            apply_docs(&s, std::slice::from_ref(d));
            if d.kind() == DocKind::Review {
                s.reports.built.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    })
    .await;
    match built {
        Ok(Ok(())) => tracing::info!("reports built"),
        Ok(Err(e)) => tracing::error!(error = %e, "reports: cannot read the school list"),
        Err(e) => tracing::error!(error = %e, "reports: the first build failed"),
    }
    st.reports.ready.store(true, Ordering::Release);
    loop {
        tokio::select! {
            notice = changes.recv() => {
                let docs = match notice {
                    Ok(c) => c.docs.clone(),
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "reports fell behind the change notices; re-reading everything");
                        let s = st.clone();
                        let _ = tokio::task::spawn_blocking(move || {
                            let mut all = Vec::new();
                            if let Ok(Some(c)) = s.accounts.county() {
                                all.push(DocId::template(&c.code));
                            }
                            for code in s.reports.model.read().school_codes(None) {
                                all.extend(DocId::all_for_school(&code));
                            }
                            apply_docs(&s, &all);
                        }).await;
                        continue;
                    }
                    Err(RecvError::Closed) => return,
                };
                let s = st.clone();
                let _ = tokio::task::spawn_blocking(move || apply_docs(&s, &docs)).await;
            }
            some = registry.recv() => {
                if some.is_none() { return; }
                let s = st.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    match refresh_registry(&s) {
                        Ok(docs) => apply_docs(&s, &docs),
                        Err(e) => tracing::error!(error = %e, "reports: cannot read the school list"),
                    }
                }).await;
            }
        }
    }
}

/// Every teacher device's last sync, for the freshness report (blocking).
pub fn devices_seen(st: &AppState) -> Result<Vec<DeviceSeen>, ApiError> {
    let users: BTreeMap<_, _> = st
        .accounts
        .users()?
        .into_iter()
        .map(|u| (u.id.clone(), u))
        .collect();
    let tree = st
        .db
        .open_tree(LAST_SYNC_TREE)
        .map_err(ApiError::internal)?;
    let mut out = Vec::new();
    for d in st.accounts.devices()? {
        if d.revoked_ms.is_some() {
            continue;
        }
        let Some(user) = users.get(&d.user) else {
            continue;
        };
        if user.role != Role::Teacher || user.disabled {
            continue;
        }
        // A browser signed in to the dashboard (`web-…`) is not a device
        // that records or syncs: it is no sign of a phone left behind.
        if d.id.as_str().starts_with("web-") {
            continue;
        }
        let last_sync_ms = tree
            .get(d.id.as_str().as_bytes())
            .ok()
            .flatten()
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes);
        out.push(DeviceSeen {
            device: d.id.as_str().to_owned(),
            username: user.username.clone(),
            school: user.unit.clone(),
            last_sync_ms,
            last_seen_ms: d.last_seen_ms,
        });
    }
    Ok(out)
}

/// Records a device's completed sync (best effort: a lost record only makes
/// the freshness report older).
pub fn record_sync(st: &AppState, device: &str, now_ms: u64) {
    if let Ok(tree) = st.db.open_tree(LAST_SYNC_TREE) {
        let _ = tree.insert(device.as_bytes(), &now_ms.to_be_bytes());
    }
}

/// The state shared by the task and the handlers.
pub type Shared = Arc<Reports>;
