//! [`Hub`]: the documents of a whole county, held by a server that answers
//! many peers at once.
//!
//! A [`crate::Replica`] belongs to one device and one thread. The hub is the
//! server's counterpart: every document has its own read-write lock, so
//! syncs of different schools run in parallel and the county template, which
//! every request reads, is only ever shared. A request takes all its locks
//! up front in document-id order (no deadlock), reads what it only reads,
//! writes what it brings changes to, and commits all of them in one atomic,
//! durable write before it answers.
//!
//! Loaded documents live in a cache with a memory bound: least recently
//! used documents that no request holds are dropped (they stay stored).
//! The heads of every document seen are remembered, so a request whose
//! document is already settled is answered without loading it. Compaction
//! is not on the request path: the host calls [`Hub::compact_due`] from a
//! background task.
//!
//! Like the rest of sync-core this does no network I/O and starts no
//! threads; the host calls it from its own (blocking) threads.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use automerge::{ActorId, ChangeHash};
use parking_lot::{Mutex, RawRwLock, RwLock};

type ReadGuard = parking_lot::lock_api::ArcRwLockReadGuard<RawRwLock, Option<Loaded>>;
type WriteGuard = parking_lot::lock_api::ArcRwLockWriteGuard<RawRwLock, Option<Loaded>>;

use crate::document::RecordDoc;
use crate::error::{Error, Result};
use crate::ids::{DocId, PeerId};
use crate::replica::{
    compact_loaded, load_peer_state, pending_chunk, read_from_storage, store_peer_states, written,
    Loaded, PeerDocState,
};
use crate::store::{Storage, StorageKey};
use crate::sync::wire::{from_wire, Problem};
use crate::sync::{
    answer_decoded, decode_request, refusal, request_writes, settled_candidate, Access,
    AccessPolicy, Answer, ResponderLimits, SyncHost,
};

/// How a hub holds documents in memory.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// The memory the loaded documents may take, estimated (see
    /// `memory_per_stored_byte`).
    pub cache_bytes: usize,
    /// How many incremental chunks make a document due for compaction.
    pub compact_after: usize,
    /// Estimated bytes of memory a loaded document takes per byte it takes in
    /// storage (Automerge's compressed columnar format expands in memory).
    /// Measured on the reference teaching point: see `memory_estimate` in
    /// the tests and the server benchmark.
    pub memory_per_stored_byte: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            cache_bytes: 96 << 20,
            compact_after: crate::DEFAULT_COMPACT_AFTER,
            memory_per_stored_byte: 20,
        }
    }
}

/// Counters for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HubStats {
    pub docs_loaded: usize,
    pub estimated_bytes: usize,
    pub loads: u64,
    pub evictions: u64,
    pub commits: u64,
    pub compactions: u64,
    pub settled_without_loading: u64,
}

struct Entry {
    slot: Arc<RwLock<Option<Loaded>>>,
    last_used: AtomicU64,
    estimated: AtomicUsize,
}

#[derive(Default)]
struct Counters {
    loads: AtomicU64,
    evictions: AtomicU64,
    commits: AtomicU64,
    compactions: AtomicU64,
    settled: AtomicU64,
}

/// A server's documents: loaded on demand, locked per document, bounded in
/// memory, every commit durable before the answer.
pub struct Hub<S: Storage> {
    storage: S,
    actor: ActorId,
    config: HubConfig,
    entries: Mutex<HashMap<DocId, Arc<Entry>>>,
    heads: Mutex<HashMap<DocId, Vec<ChangeHash>>>,
    tick: AtomicU64,
    counters: Counters,
}

enum Hold {
    Read(ReadGuard),
    Write(WriteGuard),
}

impl Hold {
    fn loaded(&self) -> &Loaded {
        match self {
            Hold::Read(g) => g.as_ref().expect("held documents are loaded"),
            Hold::Write(g) => g.as_ref().expect("held documents are loaded"),
        }
    }
}

impl<S: Storage> Hub<S> {
    /// A hub over `storage`, editing (if ever) as a fresh actor.
    pub fn new(storage: S, config: HubConfig) -> Self {
        Self {
            storage,
            actor: ActorId::random(),
            config,
            entries: Mutex::new(HashMap::new()),
            heads: Mutex::new(HashMap::new()),
            tick: AtomicU64::new(0),
            counters: Counters::default(),
        }
    }

    pub fn storage(&self) -> &S {
        &self.storage
    }

    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// Answers one sync request from `peer` (see [`crate::sync::respond`]):
    /// access checked for every document before anything is loaded, changes
    /// applied to copies, validated, committed all or nothing and durably.
    pub fn answer(
        &self,
        peer: &PeerId,
        policy: &dyn AccessPolicy,
        limits: &ResponderLimits,
        request: &[u8],
    ) -> Result<Answer> {
        let docs = match decode_request(limits, request) {
            Ok(d) => d,
            Err(problems) => return Ok(refusal(problems)),
        };
        // Refuse forbidden documents before loading anything.
        let forbidden: Vec<Problem> = docs
            .iter()
            .filter_map(|(id, req)| {
                let access = if request_writes(req) {
                    Access::Write
                } else {
                    Access::Read
                };
                policy
                    .check(id, access)
                    .err()
                    .map(|why| Problem::new(Some(id), "forbidden", why))
            })
            .collect();
        if !forbidden.is_empty() {
            return Ok(refusal(forbidden));
        }

        // Plan: which documents to hold, and how. Sorted by id: every
        // request locks in the same order, so none waits on another in a
        // cycle.
        let mut plan: BTreeMap<DocId, bool> = BTreeMap::new();
        let mut settled: BTreeMap<DocId, Vec<ChangeHash>> = BTreeMap::new();
        {
            let heads = self.heads.lock();
            for (id, req) in &docs {
                let mine = settled_candidate(req)
                    .zip(heads.get(id))
                    .filter(|(stated, mine)| from_wire(stated) == **mine);
                match mine {
                    Some((_, mine)) => {
                        settled.insert(id.clone(), mine.clone());
                    }
                    None => {
                        plan.insert(id.clone(), request_writes(req));
                    }
                }
            }
        }
        self.counters
            .settled
            .fetch_add(settled.len() as u64, Ordering::Relaxed);
        let mut held = BTreeMap::new();
        for (id, write) in plan {
            let hold = self.hold(&id, write)?;
            held.insert(id, hold);
        }
        let mut host = Held {
            hub: self,
            held,
            settled,
        };
        let answer = answer_decoded(&mut host, peer, policy, docs)?;
        drop(host);
        self.evict_to_budget();
        Ok(answer)
    }

    /// Reads a document (loading it if need be).
    pub fn read<T>(&self, id: &DocId, f: impl FnOnce(&RecordDoc) -> T) -> Result<T> {
        let hold = self.hold(id, false)?;
        let out = f(&hold.loaded().doc);
        drop(hold);
        self.evict_to_budget();
        Ok(out)
    }

    /// Edits a stored document as the server itself (a review step, a
    /// ledger import): `f` changes a copy, which is validated against the
    /// stored version (nothing erased, every record on schema) and committed
    /// durably before this returns. If `f` or the validation fails, or the
    /// store refuses the write, nothing changes. Returns `f`'s result and
    /// whether the document changed.
    pub fn edit<T>(
        &self,
        id: &DocId,
        f: impl FnOnce(&mut RecordDoc) -> Result<T>,
    ) -> Result<(T, bool)> {
        let out = self.edit_held(id, f);
        self.evict_to_budget();
        out
    }

    fn edit_held<T>(
        &self,
        id: &DocId,
        f: impl FnOnce(&mut RecordDoc) -> Result<T>,
    ) -> Result<(T, bool)> {
        let Hold::Write(mut guard) = self.hold(id, true)? else {
            unreachable!("held for writing")
        };
        let l = guard.as_mut().expect("held documents are loaded");
        let before = l.doc.heads();
        let mut copy = l.doc.clone();
        copy.set_actor(self.actor.clone());
        let out = f(&mut copy)?;
        copy.validate_since(&before)?;
        let previous = std::mem::replace(&mut l.doc, copy);
        let Some((key, bytes, heads)) = pending_chunk(id, l) else {
            return Ok((out, false));
        };
        if let Err(e) = self.storage.put_many(&[(key.clone(), bytes.clone())]) {
            l.doc = previous;
            return Err(e.into());
        }
        self.counters.commits.fetch_add(1, Ordering::Relaxed);
        written(&self.storage, l, key, bytes.len(), heads.clone())?;
        let estimate = self.estimate(l);
        if let Some(e) = self.entries.lock().get(id) {
            e.estimated.store(estimate, Ordering::Relaxed);
        }
        self.heads.lock().insert(id.clone(), heads);
        Ok((out, true))
    }

    /// A document's heads, without loading it if they are known.
    pub fn heads(&self, id: &DocId) -> Result<Vec<ChangeHash>> {
        if let Some(h) = self.heads.lock().get(id) {
            return Ok(h.clone());
        }
        self.read(id, |d| d.heads())
    }

    fn entry(&self, id: &DocId) -> Arc<Entry> {
        let mut entries = self.entries.lock();
        entries
            .entry(id.clone())
            .or_insert_with(|| {
                Arc::new(Entry {
                    slot: Arc::new(RwLock::new(None)),
                    last_used: AtomicU64::new(0),
                    estimated: AtomicUsize::new(0),
                })
            })
            .clone()
    }

    /// Locks a document for reading or writing, loading it first if need be.
    fn hold(&self, id: &DocId, write: bool) -> Result<Hold> {
        let entry = self.entry(id);
        entry
            .last_used
            .store(self.tick.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        if !write {
            // Already loaded: share it (every phone reads the template).
            let g = entry.slot.read_arc();
            if g.is_some() {
                return Ok(Hold::Read(g));
            }
        }
        let mut guard = entry.slot.write_arc();
        if guard.is_none() {
            let loaded = read_from_storage(&self.storage, &self.actor, id)?;
            entry
                .estimated
                .store(self.estimate(&loaded), Ordering::Relaxed);
            self.heads.lock().insert(id.clone(), loaded.doc.heads());
            self.counters.loads.fetch_add(1, Ordering::Relaxed);
            *guard = Some(loaded);
        }
        Ok(if write {
            Hold::Write(guard)
        } else {
            Hold::Read(parking_lot::lock_api::ArcRwLockWriteGuard::downgrade(guard))
        })
    }

    fn estimate(&self, l: &Loaded) -> usize {
        // A floor for the document object itself and its skeleton.
        (l.stored_bytes * self.config.memory_per_stored_byte).max(16 << 10)
    }

    /// Drops least recently used documents no request holds until the
    /// estimate fits the budget.
    pub fn evict_to_budget(&self) {
        let mut entries = self.entries.lock();
        let total: usize = entries
            .values()
            .map(|e| e.estimated.load(Ordering::Relaxed))
            .sum();
        if total <= self.config.cache_bytes {
            return;
        }
        let mut order: Vec<(u64, DocId)> = entries
            .iter()
            .map(|(id, e)| (e.last_used.load(Ordering::Relaxed), id.clone()))
            .collect();
        order.sort();
        let mut over = total - self.config.cache_bytes;
        for (_, id) in order {
            if over == 0 {
                break;
            }
            let e = &entries[&id];
            // Only the map holds it: no request is using it, and none can
            // start to while we hold the map's lock.
            if Arc::strong_count(e) == 1 && Arc::strong_count(&e.slot) == 1 {
                let size = e.estimated.load(Ordering::Relaxed);
                entries.remove(&id);
                over = over.saturating_sub(size);
                self.counters.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Compacts every loaded document with `compact_after` chunks or more
    /// that no request holds right now. Returns how many were compacted.
    pub fn compact_due(&self) -> Result<usize> {
        let due: Vec<(DocId, Arc<Entry>)> = self
            .entries
            .lock()
            .iter()
            .map(|(id, e)| (id.clone(), e.clone()))
            .collect();
        let mut n = 0;
        for (id, e) in due {
            let Some(mut guard) = e.slot.try_write_arc() else {
                continue;
            };
            let Some(l) = guard.as_mut() else { continue };
            if l.incrementals < self.config.compact_after {
                continue;
            }
            compact_loaded(&self.storage, &id, l)?;
            e.estimated.store(self.estimate(l), Ordering::Relaxed);
            self.counters.compactions.fetch_add(1, Ordering::Relaxed);
            n += 1;
        }
        Ok(n)
    }

    pub fn stats(&self) -> HubStats {
        let entries = self.entries.lock();
        HubStats {
            docs_loaded: entries.len(),
            estimated_bytes: entries
                .values()
                .map(|e| e.estimated.load(Ordering::Relaxed))
                .sum(),
            loads: self.counters.loads.load(Ordering::Relaxed),
            evictions: self.counters.evictions.load(Ordering::Relaxed),
            commits: self.counters.commits.load(Ordering::Relaxed),
            compactions: self.counters.compactions.load(Ordering::Relaxed),
            settled_without_loading: self.counters.settled.load(Ordering::Relaxed),
        }
    }
}

/// The documents one request holds, as the responder's host.
struct Held<'a, S: Storage> {
    hub: &'a Hub<S>,
    held: BTreeMap<DocId, Hold>,
    /// Documents the request named as settled, with the heads seen when it
    /// was planned; not held.
    settled: BTreeMap<DocId, Vec<ChangeHash>>,
}

impl<S: Storage> SyncHost for Held<'_, S> {
    fn doc(&mut self, id: &DocId) -> Result<&RecordDoc> {
        self.held
            .get(id)
            .map(|h| &h.loaded().doc)
            .ok_or_else(|| Error::Protocol(format!("{id} is not held by this request")))
    }

    fn known_heads(&mut self, id: &DocId) -> Option<Vec<ChangeHash>> {
        match self.held.get(id) {
            Some(h) => Some(h.loaded().doc.heads()),
            None => self.settled.get(id).cloned(),
        }
    }

    fn commit_docs(&mut self, docs: Vec<RecordDoc>) -> Result<()> {
        let mut writes = Vec::new();
        for mut doc in docs {
            let id = doc.id().clone();
            let Some(Hold::Write(guard)) = self.held.get_mut(&id) else {
                return Err(Error::Protocol(format!(
                    "{id} changed but was held only for reading"
                )));
            };
            let l = guard.as_mut().expect("held documents are loaded");
            doc.set_actor(self.hub.actor.clone());
            l.doc = doc;
            if let Some(w) = pending_chunk(&id, l) {
                writes.push((id, w));
            }
        }
        if writes.is_empty() {
            return Ok(());
        }
        let entries: Vec<(StorageKey, Vec<u8>)> = writes
            .iter()
            .map(|(_, (k, b, _))| (k.clone(), b.clone()))
            .collect();
        if let Err(e) = self.hub.storage.put_many(&entries) {
            // Nothing was stored: forget the in-memory copies, so what is
            // held matches the store (they reload on next use).
            for (id, _) in &writes {
                if let Some(Hold::Write(guard)) = self.held.get_mut(id) {
                    **guard = None;
                }
                self.hub.heads.lock().remove(id);
            }
            return Err(e.into());
        }
        self.hub.counters.commits.fetch_add(1, Ordering::Relaxed);
        for (id, (key, bytes, heads)) in writes {
            let Some(Hold::Write(guard)) = self.held.get_mut(&id) else {
                unreachable!("checked above")
            };
            let l = guard.as_mut().expect("held documents are loaded");
            written(&self.hub.storage, l, key, bytes.len(), heads.clone())?;
            let estimate = self.hub.estimate(l);
            if let Some(e) = self.hub.entries.lock().get(&id) {
                e.estimated.store(estimate, Ordering::Relaxed);
            }
            self.hub.heads.lock().insert(id, heads);
        }
        Ok(())
    }

    fn peer_state(&mut self, peer: &PeerId, id: &DocId) -> Result<PeerDocState> {
        load_peer_state(&self.hub.storage, peer, id)
    }

    fn set_peer_states(&mut self, peer: &PeerId, states: &[(DocId, PeerDocState)]) -> Result<()> {
        store_peer_states(&self.hub.storage, peer, states)
    }
}
