//! # sync-core
//!
//! The heart of tpsync: typed school records over Automerge documents, a
//! durable local store, and a sans-IO batched sync protocol.
//!
//! ```
//! use sync_core::{DocId, DocKind, EditContext, RecordDoc, RecordId, SchoolId};
//! use sync_core::records::{Book, BookStatus};
//!
//! let school = SchoolId::new("4301230001").unwrap();
//! let ctx = EditContext {
//!     user: "teacher-1".parse().unwrap(),
//!     device: "phone-1".parse().unwrap(),
//!     now_ms: 1_700_000_000_000,
//! };
//! let mut books = RecordDoc::genesis(DocId::school(&school, DocKind::Books).unwrap());
//! let id = RecordId::random();
//! books.insert(&ctx, id, &Book {
//!     reg_no: "TS000001".into(), isbn: None, title: "西游记".into(), author: None,
//!     publisher: None, pub_year: None, clc_class: None, price_fen: None, copies: 2,
//!     shelf: Some("A-1".into()), received_on: None, status: BookStatus::OnShelf,
//!     status_reason: None, status_date: None,
//! }).unwrap();
//! // Weeding (剔旧) is a status change with a reason, never a delete.
//! books.update::<Book>(&ctx, id, |b| {
//!     b.status = BookStatus::Weeded;
//!     b.status_reason = Some("破损".into());
//! }).unwrap();
//! assert_eq!(books.get::<Book>(id).unwrap().unwrap().status, BookStatus::Weeded);
//! // History: the creation, the five fields set, then status and its reason.
//! assert_eq!(books.history(&<Book as sync_core::Record>::SPEC, id).unwrap().len(), 1 + 5 + 2);
//! ```

// With the "uniffi" feature the records, their codes and record ids are
// uniffi types, so the mobile FFI exposes them as they are (mobile-ffi).
#[cfg(feature = "uniffi")]
uniffi::setup_scaffolding!("tpsync_core");

mod document;
mod error;
pub mod harness;
mod hub;
mod ids;
pub mod indicators;
pub mod records;
mod replica;
pub mod schema;
pub mod store;
pub mod sync;
pub mod workload;

pub use document::{
    genesis_actor, ChangeAuthor, EditContext, FieldChange, FieldConflict, RecordDoc, SCHEMA_VERSION,
};
pub use error::{DecodeError, Error, IdError, Result, SchemaError, StorageError};
pub use hub::{Hub, HubConfig, HubStats};
pub use ids::{CountyId, DeviceId, DocId, DocKind, DocOwner, PeerId, RecordId, SchoolId, UserId};
pub use replica::{PeerDocState, Replica, DEFAULT_COMPACT_AFTER};
pub use schema::{Record, RecordSpec};

pub use automerge::{ActorId, ChangeHash};
