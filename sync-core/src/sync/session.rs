//! The initiating side of a sync: a state machine the host drives.
//!
//! ```text
//! let mut s = SyncSession::new(peer, scope);
//! while let Some(request) = s.next_request(&mut replica)? {
//!     let response = transport(request);      // HTTP, Bluetooth, a file…
//!     s.receive(&mut replica, &response)?;
//! }
//! ```
//!
//! One request carries every unsettled document in scope. In the common case
//! (we remember the peer's heads from last time) every document settles in
//! one round trip. A cut exchange resumes with a heads-only probe, so what
//! already arrived is not sent again. Missing or wrong memory falls back to
//! Automerge's own sync protocol for the documents concerned.

use std::borrow::Cow;
use std::collections::BTreeMap;

use automerge::sync::{self, SyncDoc};
use automerge::ChangeHash;

use super::apply::{
    apply_data, changes_since, check_result, check_storable, decode_sync_message,
    generate_sync_message, guarded, has_all, must_keep,
};
use super::responder::load_am_state;
use super::wire::{from_wire, to_wire, ChangeData, DocReply, DocRequest, Message};
use crate::document::RecordDoc;
use crate::error::{Error, Result};
use crate::ids::{DocId, PeerId};
use crate::replica::{PeerDocState, Replica};
use crate::store::Storage;

/// With no memory of a peer, a document with at most this many changes of
/// its own is simply pushed (one round trip). A larger one first probes with
/// its heads: if the peer is only behind, the next round pushes exactly what
/// it lacks (a compact whole-document save when it has nothing); if both
/// sides diverged (a restored backup), Automerge's bloom-filter protocol
/// finds the difference.
pub const PUSH_WITHOUT_MEMORY_LIMIT: usize = 64;

/// Rounds after which a session gives up (continuous concurrent edits).
pub const DEFAULT_MAX_ROUNDS: u32 = 24;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Start,
    Push,
    Probe,
    Automerge,
    Settled,
}

#[derive(Debug)]
struct DocRun {
    phase: Phase,
    /// Heads we declared in the request in flight.
    declared: Vec<ChangeHash>,
    am_state: Option<sync::State>,
    /// The peer's last Automerge reply carried no message.
    peer_idle: bool,
}

/// Counters of one session, for progress and benchmarks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    pub round_trips: u32,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub changes_sent: u64,
    pub changes_received: u64,
    /// Documents that needed Automerge's fallback protocol.
    pub fallbacks: u32,
}

/// One sync run with one peer over a fixed scope of documents.
#[derive(Debug)]
pub struct SyncSession {
    peer: PeerId,
    docs: BTreeMap<DocId, DocRun>,
    awaiting: Option<Vec<DocId>>,
    max_rounds: u32,
    stats: SyncStats,
}

impl SyncSession {
    pub fn new(peer: PeerId, scope: impl IntoIterator<Item = DocId>) -> Self {
        let docs = scope
            .into_iter()
            .map(|d| {
                (
                    d,
                    DocRun {
                        phase: Phase::Start,
                        declared: Vec::new(),
                        am_state: None,
                        peer_idle: false,
                    },
                )
            })
            .collect();
        Self {
            peer,
            docs,
            awaiting: None,
            max_rounds: DEFAULT_MAX_ROUNDS,
            stats: SyncStats::default(),
        }
    }

    pub fn stats(&self) -> &SyncStats {
        &self.stats
    }

    /// True once every document in scope is settled.
    pub fn is_done(&self) -> bool {
        self.docs.values().all(|r| r.phase == Phase::Settled)
    }

    /// Forgets the request in flight (its response will never come: the
    /// connection was cut). Its documents will be probed before anything is
    /// sent again, in this session or the next.
    pub fn abandon(&mut self) {
        if let Some(ids) = self.awaiting.take() {
            self.probe_next(&ids);
        }
    }

    fn probe_next(&mut self, ids: &[DocId]) {
        for id in ids {
            if let Some(run) = self.docs.get_mut(id) {
                run.phase = Phase::Probe;
                run.am_state = None;
            }
        }
    }

    /// The next request to send, or `None` when every document is settled.
    pub fn next_request<S: Storage>(
        &mut self,
        replica: &mut Replica<S>,
    ) -> Result<Option<Vec<u8>>> {
        if self.awaiting.is_some() {
            return Err(Error::Protocol(
                "a request is still in flight: pass its response to receive(), or call abandon() if it was lost".into(),
            ));
        }
        if self.is_done() {
            return Ok(None);
        }
        if self.stats.round_trips >= self.max_rounds {
            return Err(Error::Protocol(format!(
                "sync did not settle in {} round trips; documents are changing faster than they sync, try again",
                self.max_rounds
            )));
        }
        let mut entries = Vec::new();
        let mut to_save = Vec::new();
        let ids: Vec<DocId> = self.docs.keys().cloned().collect();
        for id in ids {
            let run = self.docs.get_mut(&id).expect("in scope");
            if run.phase == Phase::Settled {
                continue;
            }
            let mut state = replica.peer_state(&self.peer, &id)?;
            let doc = replica.doc(&id)?;
            let heads = doc.heads();
            if run.phase == Phase::Start {
                run.phase = if state.in_flight {
                    Phase::Probe
                } else if state.automerge.is_some() && state.their_heads.is_none() {
                    Phase::Automerge
                } else if state.their_heads.is_some() {
                    Phase::Push
                } else {
                    let genesis = RecordDoc::genesis_hash(&id);
                    let own = doc.automerge().get_changes(&[genesis]).len();
                    if own <= PUSH_WITHOUT_MEMORY_LIMIT {
                        Phase::Push
                    } else {
                        Phase::Probe
                    }
                };
            }
            let req = match run.phase {
                Phase::Push => {
                    let their = match &state.their_heads {
                        Some(h) => from_wire(h),
                        None => vec![RecordDoc::genesis_hash(&id)],
                    };
                    let data = changes_since(doc, &their);
                    if !data.is_empty() {
                        state.in_flight = true;
                        to_save.push((id.clone(), state));
                        self.stats.changes_sent += count(&data);
                    }
                    DocRequest::Push {
                        heads: to_wire(&heads),
                        data,
                    }
                }
                Phase::Probe => DocRequest::Probe {
                    heads: to_wire(&heads),
                },
                Phase::Automerge => {
                    let am = run.am_state.get_or_insert_with(|| load_am_state(&state));
                    let generated = match generate_sync_message(doc, am) {
                        Ok(m) => m,
                        Err(p) => {
                            // The peer's last message left a state Automerge
                            // cannot answer from: forget it and probe.
                            run.am_state = None;
                            run.phase = Phase::Probe;
                            return Err(Error::Refused(p.message));
                        }
                    };
                    match generated {
                        Some(msg) => {
                            self.stats.changes_sent += msg.changes.len() as u64;
                            DocRequest::Automerge(msg.encode())
                        }
                        None if run.peer_idle
                            || am.their_heads.as_ref().is_some_and(|t| same_set(t, &heads)) =>
                        {
                            let their = am.their_heads.clone().unwrap_or_default();
                            run.phase = Phase::Settled;
                            to_save.push((
                                id.clone(),
                                PeerDocState {
                                    their_heads: Some(to_wire(&their)),
                                    in_flight: false,
                                    automerge: None,
                                },
                            ));
                            continue;
                        }
                        None => {
                            run.phase = Phase::Probe;
                            DocRequest::Probe {
                                heads: to_wire(&heads),
                            }
                        }
                    }
                }
                Phase::Start | Phase::Settled => unreachable!("decided above"),
            };
            run.declared = heads;
            entries.push((id, req));
        }
        // Remember, durably, that changes are on their way: if the answer
        // never comes, the next sync probes instead of sending them again.
        replica.set_peer_states(&self.peer, &to_save)?;
        if entries.is_empty() {
            return Ok(None);
        }
        self.awaiting = Some(entries.iter().map(|(d, _)| d.clone()).collect());
        let bytes = Message::Request(entries).encode();
        self.stats.bytes_sent += bytes.len() as u64;
        Ok(Some(bytes))
    }

    /// Takes the response to the request in flight. Nothing of a response
    /// that fails validation is applied.
    pub fn receive<S: Storage>(&mut self, replica: &mut Replica<S>, response: &[u8]) -> Result<()> {
        let Some(sent) = self.awaiting.take() else {
            return Err(Error::Protocol(
                "a response arrived with no request in flight".into(),
            ));
        };
        self.stats.bytes_received += response.len() as u64;
        self.stats.round_trips += 1;
        let result = self.receive_inner(replica, response, &sent);
        if result.is_err() {
            // Whatever the peer did with our request is unknown: ask first
            // next time.
            self.probe_next(&sent);
        }
        result
    }

    fn receive_inner<S: Storage>(
        &mut self,
        replica: &mut Replica<S>,
        response: &[u8],
        sent: &[DocId],
    ) -> Result<()> {
        let replies = match Message::decode(response) {
            Ok(Message::Response(r)) => r,
            Ok(Message::Refused(problems)) => {
                let text = problems
                    .iter()
                    .map(|p| {
                        format!(
                            "{}{}: {}",
                            p.code,
                            p.doc
                                .as_ref()
                                .map(|d| format!(" ({d})"))
                                .unwrap_or_default(),
                            p.message
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(Error::Refused(text));
            }
            Ok(_) => return Err(Error::Protocol("expected a sync response".into())),
            Err(e) => return Err(e.into()),
        };
        let mut changed = Vec::new();
        let mut states = Vec::new();
        let mut next_phase = Vec::new();
        for (id, reply) in replies {
            if !sent.contains(&id) {
                return Err(Error::Protocol(format!(
                    "the response names {id}, which was not asked for"
                )));
            }
            let run = self.docs.get_mut(&id).expect("sent docs are in scope");
            let incoming = match &reply {
                DocReply::Changes { data, .. } => !data.is_empty(),
                DocReply::Automerge(msg) => msg.is_some(),
            };
            // Only a reply that brings changes needs a copy to apply them to.
            let current = replica.doc(&id)?;
            let before = incoming.then(|| current.clone());
            let mut after = Cow::Borrowed(current);
            match reply {
                DocReply::Changes { heads, data } => {
                    self.stats.changes_received += count(&data);
                    if incoming {
                        apply_data(after.to_mut(), &data).map_err(|p| Error::Refused(p.message))?;
                    }
                    let their = heads
                        .map(|h| from_wire(&h))
                        .unwrap_or_else(|| run.declared.clone());
                    let diverged = !has_all(&after, &their);
                    let phase = if diverged {
                        // Each side has changes the other lacks and neither
                        // knows which: Automerge's protocol finds them.
                        self.stats.fallbacks += 1;
                        Phase::Automerge
                    } else if after.automerge().get_changes(&their).is_empty() {
                        Phase::Settled
                    } else {
                        Phase::Push
                    };
                    states.push((
                        id.clone(),
                        PeerDocState {
                            their_heads: (!diverged).then(|| to_wire(&their)),
                            in_flight: false,
                            automerge: None,
                        },
                    ));
                    next_phase.push((id.clone(), phase, None, false));
                }
                DocReply::Automerge(msg) => {
                    if run.phase != Phase::Automerge {
                        self.stats.fallbacks += 1;
                    }
                    let mut am = run.am_state.take().unwrap_or_default();
                    let idle = msg.is_none();
                    if let Some(bytes) = msg {
                        let m = decode_sync_message(&id, &bytes)
                            .map_err(|p| Error::Refused(p.message))?;
                        self.stats.changes_received += m.changes.len() as u64;
                        let a = after.to_mut().automerge_mut();
                        guarded(&id, "the automerge sync message", || {
                            a.receive_sync_message(&mut am, m)
                                .map_err(|e| e.to_string())
                        })
                        .and_then(|_| {
                            check_storable(&after, &before.as_ref().expect("incoming").heads())
                        })
                        .map_err(|p| Error::Refused(p.message))?;
                    }
                    states.push((
                        id.clone(),
                        PeerDocState {
                            their_heads: None,
                            in_flight: false,
                            automerge: Some(am.encode()),
                        },
                    ));
                    next_phase.push((id.clone(), Phase::Automerge, Some(am), idle));
                }
            }
            if let Some(before) = before {
                check_result(&before, &after).map_err(|p| {
                    Error::Refused(format!(
                        "the peer sent data that breaks the schema: {}",
                        p.message
                    ))
                })?;
                if must_keep(&before, &after) {
                    changed.push(after.into_owned());
                }
            }
        }
        replica.commit_docs(changed)?;
        replica.set_peer_states(&self.peer, &states)?;
        for (id, phase, am, idle) in next_phase {
            let run = self.docs.get_mut(&id).expect("in scope");
            run.phase = phase;
            run.am_state = am;
            run.peer_idle = idle;
        }
        Ok(())
    }
}

fn same_set(a: &[ChangeHash], b: &[ChangeHash]) -> bool {
    a.len() == b.len() && a.iter().all(|h| b.contains(h))
}

fn count(data: &ChangeData) -> u64 {
    match data {
        ChangeData::None => 0,
        ChangeData::Changes(c) => c.len() as u64,
        ChangeData::Packed(c) => c.len() as u64,
        ChangeData::Document(_) => 1,
    }
}
