//! Prometheus metrics (the `prometheus-client` crate: the Prometheus
//! project's own Rust client, with an explicit registry rather than global
//! state, so several servers in one test process do not mix their figures).

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub transport: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Code {
    pub code: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub syncs: Family<Outcome, Counter>,
    pub sync_seconds: Histogram,
    pub sync_bytes_in: Counter,
    pub sync_bytes_out: Counter,
    pub auth_refusals: Family<Code, Counter>,
    pub logins: Family<Code, Counter>,
    pub ws_connections: Gauge,
    pub blob_bytes_received: Counter,
    pub blob_bytes_sent: Counter,
    pub blob_chunks_refused: Counter,
    docs_loaded: Gauge,
    cache_estimated_bytes: Gauge,
    doc_loads: Gauge,
    doc_evictions: Gauge,
    doc_commits: Gauge,
    doc_compactions: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tpsync");
        let syncs = Family::<Outcome, Counter>::default();
        registry.register("syncs", "Sync requests answered", syncs.clone());
        let sync_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "sync_duration_seconds",
            "Time to answer one sync request",
            sync_seconds.clone(),
        );
        let sync_bytes_in = Counter::default();
        registry.register(
            "sync_received_bytes",
            "Sync request bytes",
            sync_bytes_in.clone(),
        );
        let sync_bytes_out = Counter::default();
        registry.register(
            "sync_sent_bytes",
            "Sync response bytes",
            sync_bytes_out.clone(),
        );
        let auth_refusals = Family::<Code, Counter>::default();
        registry.register(
            "auth_refusals",
            "Requests refused at authentication",
            auth_refusals.clone(),
        );
        let logins = Family::<Code, Counter>::default();
        registry.register("logins", "Sign-in attempts by outcome", logins.clone());
        let ws_connections = Gauge::default();
        registry.register(
            "websocket_connections",
            "Open WebSocket connections",
            ws_connections.clone(),
        );
        let blob_bytes_received = Counter::default();
        registry.register(
            "attachment_received_bytes",
            "Attachment bytes stored from uploads (verified chunks)",
            blob_bytes_received.clone(),
        );
        let blob_bytes_sent = Counter::default();
        registry.register(
            "attachment_sent_bytes",
            "Attachment bytes sent in downloads",
            blob_bytes_sent.clone(),
        );
        let blob_chunks_refused = Counter::default();
        registry.register(
            "attachment_chunks_refused",
            "Upload chunks refused as damaged",
            blob_chunks_refused.clone(),
        );
        let g = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let docs_loaded = g(&mut registry, "docs_loaded", "Documents loaded in memory");
        let cache_estimated_bytes = g(
            &mut registry,
            "cache_estimated_bytes",
            "Estimated memory of loaded documents",
        );
        let doc_loads = g(
            &mut registry,
            "doc_loads",
            "Documents loaded from storage since start",
        );
        let doc_evictions = g(
            &mut registry,
            "doc_evictions",
            "Documents dropped from memory since start",
        );
        let doc_commits = g(
            &mut registry,
            "doc_commits",
            "Durable commits of incoming changes since start",
        );
        let doc_compactions = g(&mut registry, "doc_compactions", "Compactions since start");
        Self {
            registry,
            syncs,
            sync_seconds,
            sync_bytes_in,
            sync_bytes_out,
            auth_refusals,
            logins,
            ws_connections,
            blob_bytes_received,
            blob_bytes_sent,
            blob_chunks_refused,
            docs_loaded,
            cache_estimated_bytes,
            doc_loads,
            doc_evictions,
            doc_commits,
            doc_compactions,
        }
    }

    pub fn auth_refused(&self, code: &'static str) {
        self.auth_refusals.get_or_create(&Code { code }).inc();
    }

    pub fn blob_bytes_in(&self, n: u64) {
        self.blob_bytes_received.inc_by(n);
    }

    pub fn blob_bytes_out(&self, n: u64) {
        self.blob_bytes_sent.inc_by(n);
    }

    pub fn blob_chunk_refused(&self) {
        self.blob_chunks_refused.inc();
    }

    /// The text exposition, with the hub's figures as of now.
    pub fn render(&self, hub: &sync_core::HubStats) -> String {
        self.docs_loaded.set(hub.docs_loaded as i64);
        self.cache_estimated_bytes.set(hub.estimated_bytes as i64);
        self.doc_loads.set(hub.loads as i64);
        self.doc_evictions.set(hub.evictions as i64);
        self.doc_commits.set(hub.commits as i64);
        self.doc_compactions.set(hub.compactions as i64);
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
