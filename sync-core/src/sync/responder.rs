//! The responding side of a sync: takes one request's bytes, gives one
//! response's bytes. Stateless between calls except for what it stores in the
//! replica (Automerge sync states while a peer falls back to that protocol).

use std::collections::BTreeSet;

use automerge::sync::{self, SyncDoc};

use super::apply::{
    apply_data, changes_since, check_result, check_storable, decode_sync_message,
    decode_sync_state, generate_sync_message, guarded, has_all, must_keep,
};
use super::policy::{Access, AccessPolicy};
use super::wire::{from_wire, to_wire, ChangeData, DocReply, DocRequest, Message, Problem};
use crate::document::RecordDoc;
use crate::error::Result;
use crate::ids::{DocId, PeerId};
use crate::replica::{PeerDocState, Replica};
use crate::store::Storage;
use automerge::ChangeHash;

/// What a responder needs of whoever holds the documents: a [`Replica`] on a
/// device, or the server's concurrent [`crate::hub::Hub`].
pub trait SyncHost {
    /// A document, loaded if need be.
    fn doc(&mut self, id: &DocId) -> Result<&RecordDoc>;
    /// The document's current heads if known without loading it, else `None`.
    fn known_heads(&mut self, id: &DocId) -> Option<Vec<ChangeHash>>;
    /// Replaces documents with updated versions, durably, in one atomic write.
    fn commit_docs(&mut self, docs: Vec<RecordDoc>) -> Result<()>;
    fn peer_state(&mut self, peer: &PeerId, id: &DocId) -> Result<PeerDocState>;
    fn set_peer_states(&mut self, peer: &PeerId, states: &[(DocId, PeerDocState)]) -> Result<()>;
}

impl<S: Storage> SyncHost for Replica<S> {
    fn doc(&mut self, id: &DocId) -> Result<&RecordDoc> {
        Replica::doc(self, id)
    }
    fn known_heads(&mut self, id: &DocId) -> Option<Vec<ChangeHash>> {
        self.loaded_heads(id)
    }
    fn commit_docs(&mut self, docs: Vec<RecordDoc>) -> Result<()> {
        Replica::commit_docs(self, docs)
    }
    fn peer_state(&mut self, peer: &PeerId, id: &DocId) -> Result<PeerDocState> {
        Replica::peer_state(self, peer, id)
    }
    fn set_peer_states(&mut self, peer: &PeerId, states: &[(DocId, PeerDocState)]) -> Result<()> {
        Replica::set_peer_states(self, peer, states)
    }
}

/// A decoded, well-formed sync request: each document once.
pub type RequestDocs = Vec<(DocId, DocRequest)>;

/// Decodes a request and checks its shape (size, document count, no
/// document twice). `Err` is the refusal to send back.
pub fn decode_request(
    limits: &ResponderLimits,
    request: &[u8],
) -> std::result::Result<RequestDocs, Vec<Problem>> {
    let docs = match Message::decode_limited(request, limits.max_decoded) {
        Ok(Message::Request(docs)) => docs,
        Ok(_) => {
            return Err(vec![Problem::new(
                None,
                "malformed",
                "expected a sync request",
            )])
        }
        Err(e) => {
            let code = if matches!(e, crate::DecodeError::TooLarge { .. }) {
                "too_large"
            } else {
                "malformed"
            };
            return Err(vec![Problem::new(None, code, e.to_string())]);
        }
    };
    if docs.len() > limits.max_docs {
        return Err(vec![Problem::new(
            None,
            "too_large",
            format!(
                "{} documents in one request; at most {}",
                docs.len(),
                limits.max_docs
            ),
        )]);
    }
    let mut seen = BTreeSet::new();
    for (id, _) in &docs {
        if !seen.insert(id) {
            return Err(vec![Problem::new(
                Some(id),
                "malformed",
                "document listed twice",
            )]);
        }
    }
    Ok(docs)
}

/// Whether answering this document's request may change it (it carries
/// changes), so the host must hold it for writing.
pub fn request_writes(req: &DocRequest) -> bool {
    match req {
        DocRequest::Push { data, .. } => !data.is_empty(),
        DocRequest::Automerge(_) => true,
        DocRequest::Probe { .. } => false,
    }
}

/// The outcome of answering one request.
#[derive(Debug)]
pub struct Answer {
    /// The response frame to send back (a `Response` or a `Refused`).
    pub bytes: Vec<u8>,
    /// Documents whose content changed (committed durably).
    pub changed: Vec<DocId>,
    /// Why the request was refused, if it was; nothing of it was applied.
    pub refused: Option<Vec<Problem>>,
}

/// Limits a responder enforces on each request.
#[derive(Clone, Debug)]
pub struct ResponderLimits {
    /// Largest request once decompressed.
    pub max_decoded: usize,
    /// Most documents in one request.
    pub max_docs: usize,
}

impl Default for ResponderLimits {
    fn default() -> Self {
        Self {
            max_decoded: super::wire::DEFAULT_MAX_DECODED,
            max_docs: 20_000,
        }
    }
}

/// Answers one sync request from `peer`.
///
/// Every document is checked against `policy`; incoming changes are applied to
/// copies, validated, and committed durably, all or nothing, before the
/// response is returned. A refusal is itself a response (a `Refused` message
/// naming each problem); `Err` means local storage failed.
pub fn respond<H: SyncHost>(
    host: &mut H,
    peer: &PeerId,
    policy: &dyn AccessPolicy,
    limits: &ResponderLimits,
    request: &[u8],
) -> Result<Vec<u8>> {
    Ok(answer(host, peer, policy, limits, request)?.bytes)
}

/// [`respond`], also telling which documents changed and why a request was
/// refused (for a server's notifications and status codes).
pub fn answer<H: SyncHost>(
    host: &mut H,
    peer: &PeerId,
    policy: &dyn AccessPolicy,
    limits: &ResponderLimits,
    request: &[u8],
) -> Result<Answer> {
    match decode_request(limits, request) {
        Ok(docs) => answer_decoded(host, peer, policy, docs),
        Err(problems) => Ok(refusal(problems)),
    }
}

pub(crate) fn refusal(problems: Vec<Problem>) -> Answer {
    Answer {
        bytes: Message::Refused(problems.clone()).encode(),
        changed: Vec::new(),
        refused: Some(problems),
    }
}

/// Answers an already decoded request (see [`decode_request`]).
pub fn answer_decoded<H: SyncHost>(
    host: &mut H,
    peer: &PeerId,
    policy: &dyn AccessPolicy,
    docs: RequestDocs,
) -> Result<Answer> {
    match respond_inner(host, peer, policy, docs)? {
        Ok((m, changed)) => Ok(Answer {
            bytes: m.encode(),
            changed,
            refused: None,
        }),
        Err(problems) => Ok(refusal(problems)),
    }
}

fn respond_inner<H: SyncHost>(
    replica: &mut H,
    peer: &PeerId,
    policy: &dyn AccessPolicy,
    docs: RequestDocs,
) -> Result<std::result::Result<(Message, Vec<DocId>), Vec<Problem>>> {
    // Phase 1: check access and apply everything to copies.
    let mut problems = Vec::new();
    let mut changed: Vec<RecordDoc> = Vec::new();
    let mut changed_ids: Vec<DocId> = Vec::new();
    let mut am_states: Vec<(DocId, sync::State)> = Vec::new();
    for (id, req) in &docs {
        let incoming_am = match req {
            DocRequest::Automerge(bytes) => match decode_sync_message(id, bytes) {
                Ok(m) => Some(m),
                Err(p) => {
                    problems.push(p);
                    continue;
                }
            },
            _ => None,
        };
        let writes = match req {
            DocRequest::Push { data, .. } => !data.is_empty(),
            DocRequest::Automerge(_) => incoming_am.as_ref().is_some_and(|m| !m.changes.is_empty()),
            DocRequest::Probe { .. } => false,
        };
        let access = if writes { Access::Write } else { Access::Read };
        if let Err(why) = policy.check(id, access) {
            problems.push(Problem::new(Some(id), "forbidden", why));
            continue;
        }
        if !problems.is_empty() {
            continue; // The request is refused anyway; only gather reasons.
        }
        let incoming = match req {
            DocRequest::Push { data, .. } => !data.is_empty(),
            DocRequest::Automerge(_) => true,
            DocRequest::Probe { .. } => false,
        };
        if !incoming {
            continue; // Nothing to apply: no copy needed.
        }
        let before = replica.doc(id)?.clone();
        let mut after = before.clone();
        let applied = match (req, incoming_am) {
            (DocRequest::Push { data, .. }, _) => apply_data(&mut after, data).map(|_| ()),
            (DocRequest::Automerge(_), Some(msg)) => {
                let mut state = load_am_state(&replica.peer_state(peer, id)?);
                let am = after.automerge_mut();
                let r = guarded(id, "the automerge sync message", || {
                    am.receive_sync_message(&mut state, msg)
                        .map_err(|e| e.to_string())
                })
                // Answering reads what the peer told us: try it on the copy
                // now, so a hostile message is refused before anything is
                // committed.
                .and_then(|_| generate_sync_message(&after, &mut state.clone()).map(|_| ()))
                .and_then(|_| check_storable(&after, &before.heads()));
                am_states.push((id.clone(), state));
                r
            }
            _ => Ok(()),
        };
        let checked = applied
            .and_then(|_| check_result(&before, &after))
            .and_then(|_| {
                policy
                    .check_write(&before, &after)
                    .map_err(|why| Problem::new(Some(id), "forbidden", why))
            });
        if let Err(p) = checked {
            problems.push(p);
            continue;
        }
        if after.heads() != before.heads() {
            changed_ids.push(id.clone());
        }
        if must_keep(&before, &after) {
            changed.push(after);
        }
    }
    if !problems.is_empty() {
        return Ok(Err(problems));
    }

    // Phase 2: commit durably, all documents in one write.
    replica.commit_docs(changed)?;

    // Phase 3: answer each document.
    let mut replies = Vec::with_capacity(docs.len());
    let mut peer_states = Vec::new();
    for (id, req) in docs {
        // Nothing new either way, known without loading the document.
        if let Some(heads) = settled_candidate(&req) {
            if replica
                .known_heads(&id)
                .is_some_and(|mine| to_wire(&mine) == *heads)
            {
                replies.push((
                    id,
                    DocReply::Changes {
                        heads: None,
                        data: ChangeData::None,
                    },
                ));
                continue;
            }
        }
        let doc = replica.doc(&id)?;
        let reply = match req {
            DocRequest::Push { heads, .. } | DocRequest::Probe { heads }
                if has_all(doc, &from_wire(&heads)) =>
            {
                let mine = to_wire(&doc.heads());
                let data = changes_since(doc, &from_wire(&heads));
                if data.is_empty() && mine == heads {
                    DocReply::Changes {
                        heads: None,
                        data: ChangeData::None,
                    }
                } else {
                    DocReply::Changes {
                        heads: Some(mine),
                        data,
                    }
                }
            }
            // We do not hold all the prober's changes: give only our heads;
            // it pushes what we lack, or falls back if we both diverged.
            DocRequest::Probe { .. } => DocReply::Changes {
                heads: Some(to_wire(&doc.heads())),
                data: ChangeData::None,
            },
            DocRequest::Push { .. } => {
                // The pushed changes do not attach to our history: the peer's
                // memory of what we have is wrong (we were restored from a
                // backup, or it was). Fall back to Automerge's protocol.
                let mut state = sync::State::new();
                let msg = generate_sync_message(doc, &mut state).unwrap_or(None);
                peer_states.push((id.clone(), am_peer_state(&state)));
                DocReply::Automerge(msg.map(|m| m.encode()))
            }
            DocRequest::Automerge(_) => {
                let mut state = am_states
                    .iter()
                    .position(|(d, _)| *d == id)
                    .map(|i| am_states.swap_remove(i).1)
                    .unwrap_or_default();
                // Tried on the copy in phase 1; should it still fail, the
                // peer gets no message and falls back to probing.
                let msg = generate_sync_message(doc, &mut state).unwrap_or(None);
                peer_states.push((id.clone(), am_peer_state(&state)));
                DocReply::Automerge(msg.map(|m| m.encode()))
            }
        };
        replies.push((id, reply));
    }
    replica.set_peer_states(peer, &peer_states)?;
    Ok(Ok((Message::Response(replies), changed_ids)))
}

/// The heads a request states when it brings no changes (nothing to apply).
pub(crate) fn settled_candidate(req: &DocRequest) -> Option<&Vec<[u8; 32]>> {
    match req {
        DocRequest::Push { heads, data } if data.is_empty() => Some(heads),
        DocRequest::Probe { heads } => Some(heads),
        _ => None,
    }
}

pub(crate) fn load_am_state(st: &PeerDocState) -> sync::State {
    decode_sync_state(st.automerge.as_deref())
}

fn am_peer_state(state: &sync::State) -> PeerDocState {
    PeerDocState {
        their_heads: None,
        in_flight: false,
        automerge: Some(state.encode()),
    }
}
