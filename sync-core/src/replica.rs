//! [`Replica`]: the documents one device (or the server) holds, loaded on
//! demand from a [`Storage`], with every write durable before it returns.

use std::collections::BTreeMap;

use automerge::{ActorId, Automerge, ChangeHash, ReadDoc};
use serde::{Deserialize, Serialize};

use crate::document::RecordDoc;
use crate::error::{Error, Result, StorageError};
use crate::ids::{DocId, PeerId};
use crate::store::{KeyPrefix, Storage, StorageKey};

/// How many incremental chunks a document may gather before it is compacted
/// into one snapshot.
pub const DEFAULT_COMPACT_AFTER: usize = 64;

pub(crate) struct Loaded {
    pub(crate) doc: RecordDoc,
    /// Heads of what is durably stored.
    pub(crate) saved_heads: Vec<ChangeHash>,
    /// Keys whose content is in `doc`: loaded at open or written by us. The
    /// only keys a compaction may delete.
    pub(crate) owned_keys: Vec<StorageKey>,
    pub(crate) incrementals: usize,
    /// Bytes of this document in storage (what was loaded plus written).
    pub(crate) stored_bytes: usize,
}

/// What this replica knows of one peer's copy of one document.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PeerDocState {
    /// The peer's heads after our last completed exchange, if any.
    pub their_heads: Option<Vec<[u8; 32]>>,
    /// A request for this document was sent and its answer never processed:
    /// what the peer has is uncertain, so the next sync asks before sending.
    pub in_flight: bool,
    /// Automerge's own sync state, while falling back to its protocol.
    pub automerge: Option<Vec<u8>>,
}

/// The documents held by one device or server, over one storage.
pub struct Replica<S: Storage> {
    storage: S,
    actor: ActorId,
    docs: BTreeMap<DocId, Loaded>,
    compact_after: usize,
}

impl<S: Storage> Replica<S> {
    /// Opens a replica over `storage`. Loads nothing until a document is asked
    /// for. Edits made through this replica use a fresh actor id, so a store
    /// restored from a backup can never reuse a sequence number.
    pub fn open(storage: S) -> Self {
        Self::with_actor(storage, ActorId::random())
    }

    /// Opens with a given actor (deterministic tests). Never give two opens
    /// the same actor: a replica refuses incoming changes under its own actor
    /// as forged.
    pub fn with_actor(storage: S, actor: ActorId) -> Self {
        Self {
            storage,
            actor,
            docs: BTreeMap::new(),
            compact_after: DEFAULT_COMPACT_AFTER,
        }
    }

    /// Sets how many incremental chunks trigger a compaction.
    pub fn set_compact_after(&mut self, n: usize) {
        self.compact_after = n.max(1);
    }

    pub fn storage(&self) -> &S {
        &self.storage
    }

    pub fn actor(&self) -> &ActorId {
        &self.actor
    }

    /// The ids of the documents loaded into memory so far.
    pub fn loaded(&self) -> impl Iterator<Item = &DocId> {
        self.docs.keys()
    }

    /// The heads of a document already in memory.
    pub fn loaded_heads(&self, id: &DocId) -> Option<Vec<ChangeHash>> {
        self.docs.get(id).map(|l| l.doc.heads())
    }

    /// Drops a document from memory (it stays stored).
    pub fn unload(&mut self, id: &DocId) {
        self.docs.remove(id);
    }

    fn load(&mut self, id: &DocId) -> Result<&mut Loaded> {
        if !self.docs.contains_key(id) {
            let loaded = read_from_storage(&self.storage, &self.actor, id)?;
            self.docs.insert(id.clone(), loaded);
        }
        Ok(self.docs.get_mut(id).expect("just inserted"))
    }
}

/// Loads a document from its stored chunks (or its genesis if none), to be
/// edited as `actor`.
pub(crate) fn read_from_storage<S: Storage>(
    storage: &S,
    actor: &ActorId,
    id: &DocId,
) -> Result<Loaded> {
    {
        let chunks = storage.load_range(&KeyPrefix::Doc(id.clone()))?;
        if chunks.is_empty() {
            let mut doc = RecordDoc::genesis(id.clone());
            doc.set_actor(actor.clone());
            return Ok(Loaded {
                doc,
                saved_heads: Vec::new(),
                owned_keys: Vec::new(),
                incrementals: 0,
                stored_bytes: 0,
            });
        }
        // Snapshots first, then incremental chunks; loaded strictly, so a
        // damaged chunk is an error, never a silently partial document.
        let mut bytes = Vec::new();
        let mut owned_keys = Vec::new();
        let mut incrementals = 0;
        for (key, data) in chunks
            .iter()
            .filter(|(k, _)| matches!(k, StorageKey::Snapshot { .. }))
        {
            bytes.extend_from_slice(data);
            owned_keys.push(key.clone());
        }
        for (key, data) in chunks
            .iter()
            .filter(|(k, _)| matches!(k, StorageKey::Incremental { .. }))
        {
            bytes.extend_from_slice(data);
            owned_keys.push(key.clone());
            incrementals += 1;
        }
        // Stored bytes are ours, but a damaged disk is outside: a panic in
        // Automerge's decoder becomes an error too.
        let loaded =
            std::panic::catch_unwind(|| Automerge::load(&bytes).map_err(|e| e.to_string()))
                .unwrap_or_else(|_| Err("the decoder failed".into()));
        let am = loaded.map_err(|e| {
            Error::Storage(StorageError::Backend(format!(
                "stored data of {id} does not load ({e}); restore the data directory from a backup"
            )))
        })?;
        // Automerge holds back changes whose dependencies are missing instead
        // of failing; a stored chunk that does not attach means another was
        // lost. Refuse to open, or a compaction would delete the orphan.
        let missing = am.get_missing_deps(&[]);
        if !missing.is_empty() {
            return Err(Error::Storage(StorageError::Backend(format!(
                "stored data of {id} is incomplete: {} change(s) it depends on are missing; restore the data directory from a backup",
                missing.len()
            ))));
        }
        let mut doc = RecordDoc::from_automerge(id.clone(), am);
        doc.set_actor(actor.clone());
        let saved_heads = doc.heads();
        Ok(Loaded {
            doc,
            saved_heads,
            owned_keys,
            incrementals,
            stored_bytes: bytes.len(),
        })
    }
}

impl<S: Storage> Replica<S> {
    /// A document, loaded from storage on first use (or created from its
    /// genesis change if this replica has never seen it).
    pub fn doc(&mut self, id: &DocId) -> Result<&RecordDoc> {
        Ok(&self.load(id)?.doc)
    }

    /// Changes a document and makes the change durable before returning. If
    /// `f` fails, whatever it had already committed is still saved.
    pub fn edit<T>(
        &mut self,
        id: &DocId,
        f: impl FnOnce(&mut RecordDoc) -> Result<T>,
    ) -> Result<T> {
        let loaded = self.load(id)?;
        let out = f(&mut loaded.doc);
        self.persist(std::slice::from_ref(id))?;
        out
    }

    /// Replaces documents with updated versions (from a sync or a bundle) and
    /// makes all of them durable in one atomic write.
    pub(crate) fn commit_docs(&mut self, docs: Vec<RecordDoc>) -> Result<()> {
        let ids: Vec<DocId> = docs.iter().map(|d| d.id().clone()).collect();
        for mut doc in docs {
            doc.set_actor(self.actor.clone());
            let id = doc.id().clone();
            self.load(&id)?.doc = doc;
        }
        self.persist(&ids)
    }

    /// Writes what changed in `ids` since their last save, in one atomic,
    /// durable write; then compacts any document with too many chunks.
    fn persist(&mut self, ids: &[DocId]) -> Result<()> {
        let mut writes = Vec::new();
        for id in ids {
            let l = self.docs.get(id).expect("persist a loaded doc");
            if let Some((key, bytes, heads)) = pending_chunk(id, l) {
                writes.push((id.clone(), key, bytes, heads));
            }
        }
        if writes.is_empty() {
            return Ok(());
        }
        let entries: Vec<(StorageKey, Vec<u8>)> = writes
            .iter()
            .map(|(_, k, b, _)| (k.clone(), b.clone()))
            .collect();
        self.storage.put_many(&entries)?;
        let mut to_compact = Vec::new();
        for (id, key, bytes, heads) in writes {
            let l = self.docs.get_mut(&id).expect("loaded");
            written(&self.storage, l, key, bytes.len(), heads)?;
            if l.incrementals >= self.compact_after {
                to_compact.push(id);
            }
        }
        for id in to_compact {
            self.compact(&id)?;
        }
        Ok(())
    }

    /// Folds a document's chunks into one snapshot. Deletes only the keys this
    /// replica loaded or wrote, so chunks added by another writer meanwhile
    /// are kept.
    pub fn compact(&mut self, id: &DocId) -> Result<()> {
        self.persist_if_loaded(id)?;
        let Some(l) = self.docs.get_mut(id) else {
            return Ok(());
        };
        compact_loaded(&self.storage, id, l)
    }

    fn persist_if_loaded(&mut self, id: &DocId) -> Result<()> {
        let Some((key, bytes, heads)) = self.docs.get(id).and_then(|l| pending_chunk(id, l)) else {
            return Ok(());
        };
        self.storage.put(&key, &bytes)?;
        let l = self.docs.get_mut(id).expect("loaded");
        written(&self.storage, l, key, bytes.len(), heads)
    }

    /// What we know of `peer`'s copy of `doc`.
    pub fn peer_state(&self, peer: &PeerId, doc: &DocId) -> Result<PeerDocState> {
        load_peer_state(&self.storage, peer, doc)
    }

    /// How many changes of `doc` `peer` is not known to have: every change
    /// past the heads it had after our last completed exchange (past the
    /// genesis change if we never completed one). Changes from a bundle or
    /// another phone count too, until this peer has them.
    pub fn unsent_changes(&mut self, peer: &PeerId, doc: &DocId) -> Result<usize> {
        let state = self.peer_state(peer, doc)?;
        let theirs: Vec<ChangeHash> = match &state.their_heads {
            Some(heads) => heads.iter().map(|h| ChangeHash(*h)).collect(),
            None => vec![RecordDoc::genesis_hash(doc)],
        };
        let am = self.doc(doc)?.automerge();
        // Heads we do not hold (the peer has changes we lack) say nothing
        // about what it lacks; count from those we hold.
        let known: Vec<ChangeHash> = theirs
            .into_iter()
            .filter(|h| am.get_change_meta_by_hash(h).is_some())
            .collect();
        Ok(am.get_changes_meta(&known).len())
    }

    /// Saves what we know of `peer`'s documents, atomically and durably.
    pub fn set_peer_states(&self, peer: &PeerId, states: &[(DocId, PeerDocState)]) -> Result<()> {
        store_peer_states(&self.storage, peer, states)
    }

    /// Forgets everything known of a peer (a device reset, or a test of the
    /// fallback path).
    pub fn forget_peer(&self, peer: &PeerId) -> Result<()> {
        for (key, _) in self.storage.load_range(&KeyPrefix::Peer(peer.clone()))? {
            self.storage.delete(&key)?;
        }
        Ok(())
    }
}

/// What a store knows of `peer`'s copy of `doc`.
pub(crate) fn load_peer_state<S: Storage>(
    storage: &S,
    peer: &PeerId,
    doc: &DocId,
) -> Result<PeerDocState> {
    let key = StorageKey::Peer {
        peer: peer.clone(),
        doc: doc.clone(),
    };
    match storage.load(&key)? {
        // A state we cannot read is only a lost optimisation: start afresh.
        Some(bytes) => Ok(postcard::from_bytes(&bytes).unwrap_or_default()),
        None => Ok(PeerDocState::default()),
    }
}

/// Saves what a store knows of `peer`'s documents, atomically and durably.
pub(crate) fn store_peer_states<S: Storage>(
    storage: &S,
    peer: &PeerId,
    states: &[(DocId, PeerDocState)],
) -> Result<()> {
    if states.is_empty() {
        return Ok(());
    }
    let entries: Vec<(StorageKey, Vec<u8>)> = states
        .iter()
        .map(|(doc, st)| {
            (
                StorageKey::Peer {
                    peer: peer.clone(),
                    doc: doc.clone(),
                },
                postcard::to_stdvec(st).expect("peer state serializes"),
            )
        })
        .collect();
    Ok(storage.put_many(&entries)?)
}

/// Folds a saved document's chunks into one snapshot, deleting only the keys
/// it loaded or wrote.
pub(crate) fn compact_loaded<S: Storage>(storage: &S, id: &DocId, l: &mut Loaded) -> Result<()> {
    let bytes = l.doc.save();
    let key = StorageKey::snapshot(id, &l.doc.heads());
    storage.put(&key, &bytes)?;
    l.stored_bytes = bytes.len();
    for old in l.owned_keys.drain(..) {
        if old != key {
            storage.delete(&old)?;
        }
    }
    l.owned_keys.push(key);
    l.incrementals = 0;
    Ok(())
}

/// Above this many bytes of raw changes, a write stores the whole document
/// compressed instead (a first upload: 1.5 MB of raw changes become a
/// 70 KB snapshot).
pub(crate) const LARGE_CHUNK: usize = 32 << 10;

/// What to write for the changes made to a loaded document since it was
/// last saved: its key, its bytes and the heads it brings the store to. An
/// incremental chunk of raw changes; or, for a document's first write or a
/// large batch, a compressed snapshot of the whole document.
pub(crate) fn pending_chunk(
    id: &DocId,
    l: &Loaded,
) -> Option<(StorageKey, Vec<u8>, Vec<ChangeHash>)> {
    let heads = l.doc.heads();
    if heads == l.saved_heads {
        return None;
    }
    let bytes = l.doc.automerge().save_after(&l.saved_heads);
    if bytes.is_empty() {
        return None;
    }
    if l.saved_heads.is_empty() || bytes.len() > LARGE_CHUNK {
        return Some((StorageKey::snapshot(id, &heads), l.doc.save(), heads));
    }
    Some((StorageKey::incremental(id, &bytes), bytes, heads))
}

/// Records in `l` that `key` (holding `heads`) is now stored. A snapshot
/// holds everything, so the chunks it replaces (only ones this holder
/// loaded or wrote) are deleted, as in a compaction.
pub(crate) fn written<S: Storage>(
    storage: &S,
    l: &mut Loaded,
    key: StorageKey,
    len: usize,
    heads: Vec<ChangeHash>,
) -> Result<()> {
    l.saved_heads = heads;
    if matches!(key, StorageKey::Snapshot { .. }) {
        for old in l.owned_keys.drain(..) {
            if old != key {
                storage.delete(&old)?;
            }
        }
        l.owned_keys.push(key);
        l.incrementals = 0;
        l.stored_bytes = len;
    } else {
        l.owned_keys.push(key);
        l.incrementals += 1;
        l.stored_bytes += len;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{samples, Book, EquipmentItem};
    use crate::store::MemoryStorage;
    use crate::{DocKind, EditContext, RecordId, SchoolId};

    fn ctx() -> EditContext {
        EditContext {
            user: "u1".parse().unwrap(),
            device: "d1".parse().unwrap(),
            now_ms: 1,
        }
    }

    fn books_id() -> DocId {
        DocId::school(&SchoolId::new("4301230001").unwrap(), DocKind::Books).unwrap()
    }

    #[test]
    fn writes_are_stored_and_reload_after_compaction() {
        let storage = MemoryStorage::new();
        let mut r = Replica::open(storage.clone());
        r.set_compact_after(5);
        let id = books_id();
        let mut ids = Vec::new();
        for n in 0..12 {
            let rid = RecordId::random();
            r.edit(&id, |d| d.insert(&ctx(), rid, &samples::book(n)))
                .unwrap();
            ids.push(rid);
        }
        let chunks = storage.load_range(&KeyPrefix::Doc(id.clone())).unwrap();
        assert!(
            chunks.len() < 6,
            "compaction folded chunks: {}",
            chunks.len()
        );
        let mut again = Replica::open(storage);
        let listed: Vec<RecordId> = again
            .doc(&id)
            .unwrap()
            .list::<Book>()
            .unwrap()
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        for rid in ids {
            assert!(listed.contains(&rid));
        }
    }

    #[test]
    fn two_writers_compacting_never_lose_each_others_chunks() {
        let storage = MemoryStorage::new();
        let id = books_id();
        let mut a = Replica::open(storage.clone());
        let mut b = Replica::open(storage.clone());
        a.set_compact_after(3);
        b.set_compact_after(3);
        let mut all = Vec::new();
        for n in 0..10 {
            let (ra, rb) = (RecordId::random(), RecordId::random());
            a.edit(&id, |d| d.insert(&ctx(), ra, &samples::book(n)))
                .unwrap();
            b.edit(&id, |d| d.insert(&ctx(), rb, &samples::book(100 + n)))
                .unwrap();
            all.extend([ra, rb]);
        }
        a.compact(&id).unwrap();
        b.compact(&id).unwrap();
        let mut c = Replica::open(storage);
        let listed: Vec<RecordId> = c
            .doc(&id)
            .unwrap()
            .list::<Book>()
            .unwrap()
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        for rid in all {
            assert!(listed.contains(&rid), "record {rid} lost");
        }
    }

    #[test]
    fn opening_loads_only_the_documents_asked_for() {
        let storage = MemoryStorage::new();
        let school = SchoolId::new("4301230001").unwrap();
        let mut r = Replica::open(storage.clone());
        for doc in DocId::all_for_school(&school) {
            r.edit(&doc, |d| {
                if d.kind() == DocKind::Equipment {
                    d.insert(&ctx(), RecordId::random(), &samples::equipment(1))
                        .map(|_| ())
                } else {
                    Ok(())
                }
            })
            .unwrap();
        }
        let mut again = Replica::open(storage);
        let eq = DocId::school(&school, DocKind::Equipment).unwrap();
        assert_eq!(
            again
                .doc(&eq)
                .unwrap()
                .list::<EquipmentItem>()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(again.loaded().collect::<Vec<_>>(), vec![&eq]);
    }

    #[test]
    fn a_lost_chunk_is_an_error_not_a_silently_shorter_document() {
        let storage = MemoryStorage::new();
        let id = books_id();
        let mut r = Replica::open(storage.clone());
        r.edit(&id, |d| {
            d.insert(&ctx(), RecordId::random(), &samples::book(1))
        })
        .unwrap();
        r.compact(&id).unwrap();
        for n in 2..4 {
            r.edit(&id, |d| {
                d.insert(&ctx(), RecordId::random(), &samples::book(n))
            })
            .unwrap();
        }
        let incs: Vec<StorageKey> = storage
            .load_range(&KeyPrefix::Doc(id.clone()))
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| matches!(k, StorageKey::Incremental { .. }))
            .collect();
        assert_eq!(incs.len(), 2);
        // Lose the chunk the other depends on (each holds one change; the
        // earlier one has the lower sequence number).
        let seq = |k: &StorageKey| {
            automerge::Change::from_bytes(storage.load(k).unwrap().unwrap())
                .unwrap()
                .seq()
        };
        let c1 = incs.iter().min_by_key(|k| seq(k)).unwrap().clone();
        storage.delete(&c1).unwrap();
        let mut again = Replica::open(storage);
        let err = again.doc(&id).map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("incomplete"), "{err}");
    }

    #[test]
    fn a_corrupt_chunk_is_an_error_not_a_partial_document() {
        let storage = MemoryStorage::new();
        let id = books_id();
        let mut r = Replica::open(storage.clone());
        r.edit(&id, |d| {
            d.insert(&ctx(), RecordId::random(), &samples::book(1))
        })
        .unwrap();
        storage
            .put(&StorageKey::incremental(&id, b"garbage"), b"garbage")
            .unwrap();
        let mut again = Replica::open(storage);
        let err = again.doc(&id).map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("does not load"), "{err}");
    }
}
