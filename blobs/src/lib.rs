//! Attachment bytes, kept outside the Automerge documents.
//!
//! A photo or scan is named by the SHA-256 of its bytes ([`BlobHash`]); records
//! refer to it by that name, so the same file attached twice is stored once
//! and a copy can always be checked against its name. Both the phone and the
//! server keep blobs in a [`BlobStore`]: plain files under a directory, never
//! large values in sled (which rewrites values on compaction and keeps them in
//! its page cache).
//!
//! Bytes travel in [`frames`]: each chunk carries its own SHA-256, so a chunk
//! damaged on the way is refused on its own and fetched again, and the receiver
//! keeps every verified chunk before it, durably, so a cut transfer resumes
//! from the last chunk it acknowledged. The whole blob is checked against its
//! name before it joins the store.
//!
//! Knows nothing of HTTP, accounts or documents.

mod error;
pub mod frames;
mod hash;
mod store;

pub use error::BlobError;
pub use frames::{encode_frame, FrameDecoder, FrameError, DEFAULT_FRAME_BYTES, FRAME_HEADER_BYTES};
pub use hash::{BlobHash, BlobHasher, ParseBlobHashError};
pub use store::{BlobStore, Finished};
