//! The embedded default [`Storage`]: sled, flushed to disk before every write
//! returns.
//!
//! Why sled: a pure-Rust embedded store (no C toolchain for Android or iOS
//! cross-builds), crash-safe with atomic batches and ordered prefix scans,
//! which is all this trait needs.

use std::path::Path;

use super::{KeyPrefix, Storage, StorageKey};
use crate::error::StorageError;

#[derive(Clone, Debug)]
pub struct SledStorage {
    db: sled::Db,
}

fn backend(e: sled::Error) -> StorageError {
    StorageError::Backend(e.to_string())
}

impl SledStorage {
    /// Opens (or creates) a store in the directory `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        let db = sled::Config::new()
            .path(path.as_ref())
            .mode(sled::Mode::LowSpace)
            .open()
            .map_err(|e| {
                StorageError::Backend(format!(
                    "cannot open the store at {}: {e}",
                    path.as_ref().display()
                ))
            })?;
        Ok(Self { db })
    }

    /// Stores documents in the default tree of an open database the host
    /// shares with its own trees (the server keeps its accounts beside the
    /// documents, so one backup holds both).
    pub fn from_db(db: sled::Db) -> Self {
        Self { db }
    }

    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.db.flush().map(|_| ()).map_err(backend)
    }
}

impl Storage for SledStorage {
    fn load(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .db
            .get(key.to_path().as_bytes())
            .map_err(backend)?
            .map(|v| v.to_vec()))
    }

    fn load_range(&self, prefix: &KeyPrefix) -> Result<Vec<(StorageKey, Vec<u8>)>, StorageError> {
        self.db
            .scan_prefix(prefix.to_path().as_bytes())
            .map(|kv| {
                let (k, v) = kv.map_err(backend)?;
                let path = std::str::from_utf8(&k)
                    .map_err(|_| StorageError::BadKey(String::from_utf8_lossy(&k).into_owned()))?;
                Ok((StorageKey::parse(path)?, v.to_vec()))
            })
            .collect()
    }

    fn put(&self, key: &StorageKey, data: &[u8]) -> Result<(), StorageError> {
        self.db
            .insert(key.to_path().as_bytes(), data)
            .map_err(backend)?;
        self.flush()
    }

    fn put_many(&self, entries: &[(StorageKey, Vec<u8>)]) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for (k, v) in entries {
            batch.insert(k.to_path().as_bytes(), v.as_slice());
        }
        self.db.apply_batch(batch).map_err(backend)?;
        self.flush()
    }

    fn delete(&self, key: &StorageKey) -> Result<(), StorageError> {
        self.db.remove(key.to_path().as_bytes()).map_err(backend)?;
        self.flush()
    }
}
