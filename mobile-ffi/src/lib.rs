//! The API mobile apps will call through uniffi: a thin facade over
//! [`sync_core`] with no logic of its own. Empty until the mobile-ffi issue;
//! the crate exists so the workspace has its final shape.

pub use sync_core;
