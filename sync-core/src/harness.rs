//! A deterministic in-memory multi-peer harness: peers with in-memory
//! replicas, links that drop, duplicate, delay and cut messages, and a loop
//! that runs until every replica is equal. Used by the property tests, the
//! benchmark, and anyone checking a change to the protocol.
//!
//! Everything random comes from one seed, so a failing case replays exactly.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::Result;
use crate::ids::{DeviceId, DocId, PeerId, RecordId, SchoolId};
use crate::replica::Replica;
use crate::store::MemoryStorage;
use crate::sync::{respond, AllowAll, ResponderLimits, SyncSession, SyncStats};
use crate::{ChangeHash, EditContext};

/// A tiny seeded generator (SplitMix64): deterministic, no dependency.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    /// A record id drawn from this generator (replayable, unlike
    /// [`RecordId::random`]).
    pub fn record_id(&mut self) -> RecordId {
        RecordId::from_u128(((self.next_u64() as u128) << 64) | self.next_u64() as u128)
    }
}

/// How a link misbehaves, as probabilities per message.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// The request never reaches the responder.
    pub drop_request: f64,
    /// The responder handles the request but the answer is lost (a cut
    /// connection).
    pub drop_response: f64,
    /// The request reaches the responder twice.
    pub duplicate: f64,
    /// An old request, held back, reaches the responder late.
    pub replay_stale: f64,
}

impl Faults {
    pub const NONE: Faults = Faults {
        drop_request: 0.0,
        drop_response: 0.0,
        duplicate: 0.0,
        replay_stale: 0.0,
    };
    pub const HARSH: Faults = Faults {
        drop_request: 0.15,
        drop_response: 0.15,
        duplicate: 0.2,
        replay_stale: 0.2,
    };
}

/// One simulated device.
pub struct Peer {
    pub id: PeerId,
    pub device: DeviceId,
    pub replica: Replica<MemoryStorage>,
    pub storage: MemoryStorage,
    clock: i64,
}

impl Peer {
    /// An edit context with this device's clock, advanced by one second.
    pub fn ctx(&mut self) -> EditContext {
        self.clock += 1000;
        EditContext {
            user: format!("user-{}", self.device)
                .parse()
                .expect("valid user id"),
            device: self.device.clone(),
            now_ms: self.clock,
        }
    }
}

/// How one sync attempt between two peers ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every document settled.
    Done(SyncStats),
    /// The link failed; the session was abandoned.
    Cut(SyncStats),
}

/// Peers sharing a scope of documents, and the links between them.
pub struct Network {
    pub peers: Vec<Peer>,
    pub scope: Vec<DocId>,
    rng: Rng,
    stale: Vec<(usize, usize, Vec<u8>)>,
}

impl Network {
    /// `n` peers holding every document of `school`.
    pub fn new(n: usize, school: &SchoolId, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let peers = (0..n)
            .map(|i| {
                let storage = MemoryStorage::new();
                let bits = ((rng.next_u64() as u128) << 64) | rng.next_u64() as u128;
                let actor = crate::ActorId::from(&bits.to_be_bytes()[..]);
                Peer {
                    id: format!("peer-{i}").parse().expect("valid peer id"),
                    device: format!("device-{i}").parse().expect("valid device id"),
                    replica: Replica::with_actor(storage.clone(), actor),
                    storage,
                    clock: 1_700_000_000_000 + i as i64,
                }
            })
            .collect();
        Self {
            peers,
            scope: DocId::all_for_school(school),
            rng,
            stale: Vec::new(),
        }
    }

    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// Peer `a` syncs with peer `b` (a initiates) over a link with `faults`.
    pub fn sync(&mut self, a: usize, b: usize, faults: Faults) -> Result<Outcome> {
        assert_ne!(a, b, "a peer does not sync with itself");
        let mut session = SyncSession::new(self.peers[b].id.clone(), self.scope.clone());
        while let Some(req) = session.next_request(&mut self.peers[a].replica)? {
            if self.rng.chance(faults.replay_stale) && !self.stale.is_empty() {
                let i = self.rng.below(self.stale.len());
                let (from, to, old) = self.stale.swap_remove(i);
                let (pf, pt) = two_mut(&mut self.peers, from, to);
                let from_id = pf.id.clone();
                respond(
                    &mut pt.replica,
                    &from_id,
                    &AllowAll,
                    &ResponderLimits::default(),
                    &old,
                )?;
            }
            let (pa, pb) = two_mut(&mut self.peers, a, b);
            if self.rng.chance(faults.replay_stale) {
                self.stale.push((a, b, req.clone()));
            }
            if self.rng.chance(faults.drop_request) {
                session.abandon();
                return Ok(Outcome::Cut(session.stats().clone()));
            }
            let mut resp = respond(
                &mut pb.replica,
                &pa.id,
                &AllowAll,
                &ResponderLimits::default(),
                &req,
            )?;
            if self.rng.chance(faults.duplicate) {
                resp = respond(
                    &mut pb.replica,
                    &pa.id,
                    &AllowAll,
                    &ResponderLimits::default(),
                    &req,
                )?;
            }
            if self.rng.chance(faults.drop_response) {
                session.abandon();
                return Ok(Outcome::Cut(session.stats().clone()));
            }
            session.receive(&mut pa.replica, &resp)?;
        }
        Ok(Outcome::Done(session.stats().clone()))
    }

    /// Heads of every document at every peer.
    pub fn heads(&mut self) -> Result<Vec<BTreeMap<DocId, Vec<ChangeHash>>>> {
        let scope = self.scope.clone();
        self.peers
            .iter_mut()
            .map(|p| {
                scope
                    .iter()
                    .map(|d| {
                        let mut h = p.replica.doc(d)?.heads();
                        h.sort();
                        Ok((d.clone(), h))
                    })
                    .collect()
            })
            .collect()
    }

    /// Whether every peer holds the same heads for every document.
    pub fn converged(&mut self) -> Result<bool> {
        let heads = self.heads()?;
        Ok(heads.windows(2).all(|w| w[0] == w[1]))
    }

    /// Syncs every ordered pair over clean links until all replicas are equal
    /// or `max_passes` passes have run. Returns the passes used.
    pub fn run_until_quiet(&mut self, max_passes: usize) -> Result<usize> {
        for pass in 0..max_passes {
            if self.converged()? {
                return Ok(pass);
            }
            for a in 0..self.peers.len() {
                for b in 0..self.peers.len() {
                    if a != b {
                        self.sync(a, b, Faults::NONE)?;
                    }
                }
            }
        }
        Ok(max_passes)
    }

    /// Every record id in every document at peer `i`.
    pub fn record_ids(&mut self, i: usize) -> Result<BTreeSet<(DocId, String, RecordId)>> {
        let mut out = BTreeSet::new();
        for d in self.scope.clone() {
            let doc = self.peers[i].replica.doc(&d)?;
            for spec in crate::records::specs_for(d.kind()).filter(|s| !s.singleton) {
                for id in doc.record_ids(spec)? {
                    out.insert((d.clone(), spec.collection.to_owned(), id));
                }
            }
        }
        Ok(out)
    }
}

fn two_mut<T>(v: &mut [T], a: usize, b: usize) -> (&mut T, &mut T) {
    assert_ne!(a, b);
    if a < b {
        let (l, r) = v.split_at_mut(b);
        (&mut l[a], &mut r[0])
    } else {
        let (l, r) = v.split_at_mut(a);
        (&mut r[0], &mut l[b])
    }
}
