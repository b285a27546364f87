//! [`BlobError`].

use std::path::PathBuf;

use crate::BlobHash;

/// What went wrong with a blob, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The disk refused (full, read-only, permissions).
    #[error("blob store: {action} {path}: {source} (check free space and permissions)")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A chunk was offered for a place the receiver is not at: resume from
    /// `expected`.
    #[error("blob {hash}: a chunk at byte {got} was offered, but {expected} bytes are stored; resume from byte {expected}")]
    OffsetMismatch {
        hash: BlobHash,
        expected: u64,
        got: u64,
    },
    /// The bytes would run past the blob's declared size.
    #[error("blob {hash}: {got} bytes would exceed its declared size of {size} bytes")]
    PastEnd { hash: BlobHash, size: u64, got: u64 },
    /// The whole blob does not have the SHA-256 it was sent under. The
    /// partial copy is discarded; send it again from the start.
    #[error("blob {expected}: the bytes received hash to {actual}; the copy was discarded, send it again")]
    Mismatch {
        expected: BlobHash,
        actual: BlobHash,
    },
    /// Larger than allowed.
    #[error("the file has {size} bytes, more than the {max} bytes allowed for an attachment")]
    TooLarge { size: u64, max: u64 },
    /// Not in the store.
    #[error("blob {0} is not stored here")]
    Missing(BlobHash),
}

impl BlobError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| BlobError::Io {
            action,
            path,
            source,
        }
    }
}
