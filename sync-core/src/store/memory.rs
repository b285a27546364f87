//! An in-memory [`Storage`] for tests and simulations. Clones share data, like
//! several handles on one disk.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::{KeyPrefix, Storage, StorageKey};
use crate::error::StorageError;

#[derive(Clone, Default, Debug)]
pub struct MemoryStorage {
    inner: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
}

impl MemoryStorage {
    pub fn new() -> Self {
        Self::default()
    }

    /// A deep copy that no longer shares data with this one (a backup).
    pub fn snapshot_copy(&self) -> Self {
        Self {
            inner: Arc::new(Mutex::new(self.lock().clone())),
        }
    }

    /// How many keys are stored.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        // A panic while holding the lock leaves the map consistent (every
        // operation is one map call), so a poisoned lock is safe to reuse.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Storage for MemoryStorage {
    fn load(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.lock().get(&key.to_path()).cloned())
    }

    fn load_range(&self, prefix: &KeyPrefix) -> Result<Vec<(StorageKey, Vec<u8>)>, StorageError> {
        let p = prefix.to_path();
        self.lock()
            .range(p.clone()..)
            .take_while(|(k, _)| k.starts_with(&p))
            .map(|(k, v)| Ok((StorageKey::parse(k)?, v.clone())))
            .collect()
    }

    fn put(&self, key: &StorageKey, data: &[u8]) -> Result<(), StorageError> {
        self.lock().insert(key.to_path(), data.to_vec());
        Ok(())
    }

    fn put_many(&self, entries: &[(StorageKey, Vec<u8>)]) -> Result<(), StorageError> {
        let mut map = self.lock();
        for (k, v) in entries {
            map.insert(k.to_path(), v.clone());
        }
        Ok(())
    }

    fn delete(&self, key: &StorageKey) -> Result<(), StorageError> {
        self.lock().remove(&key.to_path());
        Ok(())
    }
}
