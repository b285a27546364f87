//! # mobile-ffi: the API the tpsync phone apps call
//!
//! A thin facade over [`sync_core`] (records, queries, history, conflicts,
//! the checklist, sync as bytes, bundles) and [`tpsync_client`] (the
//! built-in HTTP sync), exported through [uniffi](https://mozilla.github.io/uniffi-rs/)
//! for Kotlin (Android), Swift (iOS) and Python (the tests). Apps never
//! see Automerge: they see typed records ([`sync_core::records`]), record
//! ids, and [`TpError`].
//!
//! The entry points: [`sign_in`], then [`SchoolStore::open`] for the
//! school; read and write records offline; [`SchoolStore::sync`] when the
//! network allows, or [`SchoolStore::start_exchange`] /
//! [`SchoolStore::answer_exchange`] over Bluetooth or the app's own HTTP,
//! or [`SchoolStore::export_bundle`] / [`SchoolStore::import_bundle`] on a
//! file. Every write is on the device's disk before the call returns.
//! Photos and scans: [`SchoolStore::attach_file`] keeps the bytes on the
//! phone and queues them; every sync sends them after the records, and
//! [`SchoolStore::fetch_attachment`] brings another device's onto this one.
//!
//! Two namespaces are generated from this one library: `tpsync` (this
//! crate) and `tpsync_core` (the records and their codes, derived in
//! sync-core behind its `uniffi` feature, so they are declared once).

uniffi::setup_scaffolding!("tpsync");

mod attachments;
mod error;
mod store;
mod sync;
mod values;

pub use attachments::{
    AttachmentInfo, AttachmentLimitsView, FetchedAttachment, TransferDirection, TransferItem,
    TransferObserver, TransferReport,
};
pub use error::TpError;
pub use store::{SchoolStore, StoreConfig};
pub use sync::{
    sign_in, BundleReport, CancelToken, Credentials, Exchange, Session, SyncObserver,
    SyncProgressView, SyncReport, SyncStatus,
};
pub use values::{FieldConflictView, FieldValue, HistoryEntry};

pub use sync_core;
