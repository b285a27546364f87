//! The sans-IO sync protocol: bytes in, bytes out, no sockets, no runtime.
//! The host (server, phone, test harness) moves the bytes.

mod apply;
mod bundle;
pub mod packed;
mod policy;
mod responder;
mod session;
pub mod wire;

pub use bundle::{export_bundle, import_bundle, BundleScope, ImportReport};
pub use policy::{Access, AccessPolicy, AllowAll, DocSetPolicy};
pub use responder::{respond, ResponderLimits};
pub use session::{SyncSession, SyncStats, DEFAULT_MAX_ROUNDS, PUSH_WITHOUT_MEMORY_LIMIT};
pub use wire::{ChangeData, DocReply, DocRequest, Message, Problem};
