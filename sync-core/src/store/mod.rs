//! Durable storage: a small fallible key-value trait over typed keys.
//!
//! Automerge data is kept per document as content-addressed incremental
//! chunks plus compacted snapshots:
//!
//! ```text
//! doc/<doc-id>/inc/<sha256 of the chunk>     one or more changes
//! doc/<doc-id>/snap/<sha256 of the heads>    a whole-document save
//! peer/<peer-id>/<doc-id>                    what we know that peer has
//! ```
//!
//! Several writers may share one storage: a compaction writes its snapshot,
//! then deletes only the keys it loaded itself, so a chunk another writer
//! added meanwhile survives.

mod memory;
#[cfg(feature = "sled")]
mod sled_store;

pub use memory::MemoryStorage;
#[cfg(feature = "sled")]
pub use sled_store::SledStorage;

use std::fmt;

use sha2::{Digest, Sha256};

use crate::error::StorageError;
use crate::ids::{DocId, PeerId};

/// A storage key. Written out as a `/`-separated path; no component of any
/// id can contain `/`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StorageKey {
    /// Changes saved incrementally, keyed by the hash of their bytes.
    Incremental { doc: DocId, hash: String },
    /// A compacted whole-document save, keyed by the hash of its heads.
    Snapshot { doc: DocId, hash: String },
    /// Our sync state for one peer and document.
    Peer { peer: PeerId, doc: DocId },
}

/// A range of keys, for [`Storage::load_range`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyPrefix {
    /// Every chunk and snapshot of one document.
    Doc(DocId),
    /// Every document's data (to list what is stored).
    AllDocs,
    /// Everything we know of one peer.
    Peer(PeerId),
}

impl StorageKey {
    /// The key for an incremental chunk with these bytes.
    pub fn incremental(doc: &DocId, bytes: &[u8]) -> Self {
        StorageKey::Incremental {
            doc: doc.clone(),
            hash: hex::encode(Sha256::digest(bytes)),
        }
    }

    /// The key for a snapshot at these heads.
    pub fn snapshot(doc: &DocId, heads: &[automerge::ChangeHash]) -> Self {
        let mut sorted = heads.to_vec();
        sorted.sort();
        let mut h = Sha256::new();
        for head in &sorted {
            h.update(head.0);
        }
        StorageKey::Snapshot {
            doc: doc.clone(),
            hash: hex::encode(h.finalize()),
        }
    }

    pub fn to_path(&self) -> String {
        self.to_string()
    }

    /// Parses a path written by [`StorageKey::to_path`].
    pub fn parse(path: &str) -> Result<Self, StorageError> {
        let bad = || StorageError::BadKey(path.chars().take(120).collect());
        let parts: Vec<&str> = path.split('/').collect();
        let hex64 = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
        match parts.as_slice() {
            ["doc", doc, "inc", hash] if hex64(hash) => Ok(StorageKey::Incremental {
                doc: doc.parse().map_err(|_| bad())?,
                hash: (*hash).to_owned(),
            }),
            ["doc", doc, "snap", hash] if hex64(hash) => Ok(StorageKey::Snapshot {
                doc: doc.parse().map_err(|_| bad())?,
                hash: (*hash).to_owned(),
            }),
            ["peer", peer, doc] => Ok(StorageKey::Peer {
                peer: peer.parse().map_err(|_| bad())?,
                doc: doc.parse().map_err(|_| bad())?,
            }),
            _ => Err(bad()),
        }
    }

    /// The document this key belongs to.
    pub fn doc(&self) -> &DocId {
        match self {
            StorageKey::Incremental { doc, .. }
            | StorageKey::Snapshot { doc, .. }
            | StorageKey::Peer { doc, .. } => doc,
        }
    }
}

impl fmt::Display for StorageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageKey::Incremental { doc, hash } => write!(f, "doc/{doc}/inc/{hash}"),
            StorageKey::Snapshot { doc, hash } => write!(f, "doc/{doc}/snap/{hash}"),
            StorageKey::Peer { peer, doc } => write!(f, "peer/{peer}/{doc}"),
        }
    }
}

impl KeyPrefix {
    pub fn to_path(&self) -> String {
        match self {
            KeyPrefix::Doc(doc) => format!("doc/{doc}/"),
            KeyPrefix::AllDocs => "doc/".to_owned(),
            KeyPrefix::Peer(peer) => format!("peer/{peer}/"),
        }
    }
}

/// A durable key-value store. Every method is fallible; a write returns only
/// once it is durable (on disk, flushed), so an acknowledged change survives a
/// crash. Implementations must be safe to share between threads.
pub trait Storage: Send + Sync {
    fn load(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, StorageError>;
    /// Every key under `prefix`, in key order.
    fn load_range(&self, prefix: &KeyPrefix) -> Result<Vec<(StorageKey, Vec<u8>)>, StorageError>;
    /// Writes one value durably.
    fn put(&self, key: &StorageKey, data: &[u8]) -> Result<(), StorageError>;
    /// Writes several values atomically and durably: after a crash, all or
    /// none of them are there.
    fn put_many(&self, entries: &[(StorageKey, Vec<u8>)]) -> Result<(), StorageError>;
    /// Deletes one value durably. Deleting a missing key is not an error.
    fn delete(&self, key: &StorageKey) -> Result<(), StorageError>;
}

impl<S: Storage + ?Sized> Storage for std::sync::Arc<S> {
    fn load(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, StorageError> {
        (**self).load(key)
    }
    fn load_range(&self, prefix: &KeyPrefix) -> Result<Vec<(StorageKey, Vec<u8>)>, StorageError> {
        (**self).load_range(prefix)
    }
    fn put(&self, key: &StorageKey, data: &[u8]) -> Result<(), StorageError> {
        (**self).put(key, data)
    }
    fn put_many(&self, entries: &[(StorageKey, Vec<u8>)]) -> Result<(), StorageError> {
        (**self).put_many(entries)
    }
    fn delete(&self, key: &StorageKey) -> Result<(), StorageError> {
        (**self).delete(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DocKind, SchoolId};

    #[test]
    fn keys_round_trip_and_foreign_paths_are_refused() {
        let doc = DocId::school(&SchoolId::new("4301230001").unwrap(), DocKind::Books).unwrap();
        let keys = [
            StorageKey::incremental(&doc, b"abc"),
            StorageKey::snapshot(&doc, &[]),
            StorageKey::Peer {
                peer: "server".parse().unwrap(),
                doc: doc.clone(),
            },
        ];
        for k in keys {
            assert_eq!(StorageKey::parse(&k.to_path()).unwrap(), k);
            assert!(
                k.to_path()
                    .starts_with(&KeyPrefix::Doc(doc.clone()).to_path())
                    || matches!(k, StorageKey::Peer { .. })
            );
        }
        for bad in [
            "",
            "doc",
            "doc/x/inc/abc",
            "doc/school.1.books/inc/zz",
            "peer/a",
            "other/a/b",
        ] {
            assert!(StorageKey::parse(bad).is_err(), "{bad}");
        }
    }
}
