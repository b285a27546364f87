//! Applying changes from outside (a peer, a bundle) to a copy of a document,
//! and checking the result before anything is committed. Shared by the
//! responder, the initiator and bundle import, so every path into a replica
//! holds data to the same rules.

use std::panic::{catch_unwind, AssertUnwindSafe};

use automerge::sync::{self, SyncDoc};
use automerge::{Automerge, Change, ChangeHash};

use super::wire::{ChangeData, Problem};
use crate::document::RecordDoc;

impl Problem {
    pub(crate) fn new(doc: Option<&crate::DocId>, code: &str, message: impl Into<String>) -> Self {
        Problem {
            doc: doc.map(|d| d.to_string()),
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// Runs automerge on untrusted input. Automerge's decoders are fuzzed
/// upstream, but a panic on a peer's bytes must never take down a server or
/// an app: it becomes a `malformed` problem instead.
pub(crate) fn guarded<T>(
    doc: &crate::DocId,
    what: &str,
    f: impl FnOnce() -> Result<T, String>,
) -> Result<T, Problem> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Problem::new(
            Some(doc),
            "malformed",
            format!("{what} does not decode: {e}"),
        )),
        Err(_) => Err(Problem::new(
            Some(doc),
            "malformed",
            format!("{what} could not be processed"),
        )),
    }
}

/// Decodes and applies change data to `doc` (a copy). Changes whose
/// dependencies are missing are held back by Automerge and do not appear in
/// the heads. Returns how many changes were offered.
pub(crate) fn apply_data(doc: &mut RecordDoc, data: &ChangeData) -> Result<usize, Problem> {
    let before = doc.heads();
    let n = apply_data_inner(doc, data)?;
    if n > 0 {
        check_storable(doc, &before)?;
    }
    Ok(n)
}

/// Automerge accepts some forged changes (valid checksum, inconsistent
/// content) and only panics later, when they are saved, sent on, or loaded
/// again. Run those paths now, on the copy, so such a change is refused
/// before anything is committed.
///
/// Also refuses changes under this replica's own actor that it does not
/// already hold: every replica edits as a fresh actor, so such a change is
/// forged, and storing it would leave a document that no longer loads.
pub(crate) fn check_storable(doc: &RecordDoc, since: &[ChangeHash]) -> Result<(), Problem> {
    let am = doc.automerge();
    let own = am.get_actor().clone();
    guarded(doc.id(), "the changes", || {
        let new = am.get_changes(since);
        if new.iter().any(|c| *c.actor_id() == own) {
            return Err(
                "a change claims to be this device's own, but this device never made it".into(),
            );
        }
        // What is stored must load again. Automerge accepts some forged
        // changes (valid checksums, inconsistent content) that it then
        // cannot save, or saves into a document it cannot load (a change
        // skipping its author's previous one; ops whose heads do not match):
        // save and reload the copy to be sure. A cheaper ancestry check was
        // tried and the decoder properties found forgeries it let through.
        let reloaded = Automerge::load(&doc.save()).map_err(|e| e.to_string())?;
        if reloaded.get_heads() != am.get_heads() {
            return Err("the changes do not survive a save and reload".into());
        }
        Ok(())
    })
}

fn apply_data_inner(doc: &mut RecordDoc, data: &ChangeData) -> Result<usize, Problem> {
    let id = doc.id().clone();
    match data {
        ChangeData::None => Ok(0),
        ChangeData::Packed(packed) => {
            let chunks = super::packed::unpack(packed)
                .map_err(|e| Problem::new(Some(&id), "malformed", e))?;
            apply_data_inner(doc, &ChangeData::Changes(chunks))
        }
        ChangeData::Changes(chunks) => {
            let changes = guarded(&id, "a change", || {
                chunks
                    .iter()
                    .map(|c| Change::from_bytes(c.clone()).map_err(|e| e.to_string()))
                    .collect::<Result<Vec<_>, _>>()
            })?;
            let n = changes.len();
            let am = doc.automerge_mut();
            guarded(&id, "the changes", || {
                am.apply_changes(changes).map_err(|e| e.to_string())
            })?;
            Ok(n)
        }
        ChangeData::Document(bytes) => {
            let mut other = guarded(&id, "the document", || {
                Automerge::load(bytes).map_err(|e| e.to_string())
            })?;
            let n = guarded(&id, "the document", || Ok(other.get_changes(&[]).len()))?;
            let am = doc.automerge_mut();
            guarded(&id, "the document", || {
                am.merge(&mut other).map(|_| ()).map_err(|e| e.to_string())
            })?;
            Ok(n)
        }
    }
}

/// Checks a document after outside changes: on its schema, and nothing that
/// `before` had was erased or replaced.
pub(crate) fn check_result(before: &RecordDoc, after: &RecordDoc) -> Result<(), Problem> {
    if before.heads() == after.heads() {
        return Ok(());
    }
    let id = after.id();
    after
        .validate_since(&before.heads())
        .and_then(|_| after.check_nothing_erased(before))
        .map_err(|e| {
            Problem::new(
                Some(id),
                "off_schema",
                format!("{e}; the change was refused and nothing was applied"),
            )
        })
}

/// The changes `doc` has that a peer at `their` heads lacks, in the most
/// compact form: a whole-document save when the peer has nothing but the
/// genesis change, else the individual changes.
pub(crate) fn changes_since(doc: &RecordDoc, their: &[ChangeHash]) -> ChangeData {
    let known: Vec<ChangeHash> = their
        .iter()
        .filter(|h| doc.automerge().get_change_meta_by_hash(h).is_some())
        .copied()
        .collect();
    let changes = doc.automerge().get_changes(&known);
    if changes.is_empty() {
        return ChangeData::None;
    }
    let genesis = RecordDoc::genesis_hash(doc.id());
    let peer_has_nothing = known.iter().all(|h| *h == genesis);
    if peer_has_nothing && changes.len() > 2 {
        ChangeData::Document(doc.save())
    } else {
        let chunks: Vec<&[u8]> = changes.iter().map(|c| c.raw_bytes()).collect();
        ChangeData::Packed(super::packed::pack(&chunks))
    }
}

/// Whether `doc` holds every change in `heads`.
pub(crate) fn has_all(doc: &RecordDoc, heads: &[ChangeHash]) -> bool {
    heads
        .iter()
        .all(|h| doc.automerge().get_change_meta_by_hash(h).is_some())
}

/// Whether a copy that outside changes were applied to must replace the
/// document: its heads moved, or Automerge holds back changes waiting for
/// their dependencies. Those must stay in memory so the next sync message
/// asks for the missing changes instead of receiving the same ones again.
pub(crate) fn must_keep(before: &RecordDoc, after: &RecordDoc) -> bool {
    after.heads() != before.heads() || after.has_held_back_changes()
}

/// Decodes a peer's Automerge sync message and puts its hash lists in the
/// sorted order Automerge's own encoders assume.
pub(crate) fn decode_sync_message(
    doc: &crate::DocId,
    bytes: &[u8],
) -> Result<sync::Message, Problem> {
    let mut m = guarded(doc, "the automerge sync message", || {
        sync::Message::decode(bytes).map_err(|e| e.to_string())
    })?;
    m.heads.sort();
    m.heads.dedup();
    m.need.sort();
    m.need.dedup();
    for have in &mut m.have {
        have.last_sync.sort();
        have.last_sync.dedup();
        check_bloom(doc, &have.bloom)?;
    }
    Ok(m)
}

/// The most bits per entry and probes a peer's bloom filter may ask for.
/// Automerge itself uses 10 and 7; answering costs work in proportion to
/// the probes, which the peer chooses.
const MAX_BLOOM_BITS_PER_ENTRY: u64 = 64;
const MAX_BLOOM_PROBES: u64 = 32;

fn check_bloom(doc: &crate::DocId, bloom: &sync::BloomFilter) -> Result<(), Problem> {
    let bytes = bloom.to_bytes();
    if bytes.is_empty() {
        return Ok(()); // An empty filter.
    }
    let mut r = &bytes[..];
    let mut next = || leb128::read::unsigned(&mut r).ok();
    let (entries, bits, probes) = (next(), next(), next());
    match (entries, bits, probes) {
        (Some(e), Some(b), Some(p))
            if e > 0
                && (1..=MAX_BLOOM_BITS_PER_ENTRY).contains(&b)
                && (1..=MAX_BLOOM_PROBES).contains(&p) =>
        {
            Ok(())
        }
        _ => Err(Problem::new(
            Some(doc),
            "malformed",
            format!("the automerge sync message's bloom filter is out of range (at most {MAX_BLOOM_BITS_PER_ENTRY} bits per entry and {MAX_BLOOM_PROBES} probes)"),
        )),
    }
}

/// Automerge's sync state as stored, with its hash lists sorted.
pub(crate) fn decode_sync_state(bytes: Option<&[u8]>) -> sync::State {
    let mut st = bytes
        .and_then(|b| sync::State::decode(b).ok())
        .unwrap_or_default();
    st.shared_heads.sort();
    st.shared_heads.dedup();
    st
}

/// Automerge's `generate_sync_message`, which reads what the peer told us
/// (its bloom filter among it): a peer's malformed filter must become a
/// refusal, not a panic.
pub(crate) fn generate_sync_message(
    doc: &RecordDoc,
    state: &mut sync::State,
) -> Result<Option<sync::Message>, Problem> {
    let id = doc.id().clone();
    let am = doc.automerge();
    guarded(&id, "the peer's automerge sync state", || {
        Ok(am.generate_sync_message(state))
    })
}
