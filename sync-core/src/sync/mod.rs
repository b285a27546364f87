//! The sans-IO sync protocol: bytes in, bytes out, no sockets, no runtime.
//! The host (server, phone, test harness) moves the bytes.

mod apply;
mod bundle;
pub mod packed;
mod policy;
mod responder;
mod session;
pub mod wire;

pub use bundle::{export_bundle, import_bundle, BundleScope, ImportReport};
pub use policy::{Access, AccessPolicy, AllowAll, DocSetPolicy};
pub use responder::{
    answer, answer_decoded, decode_request, request_writes, respond, Answer, RequestDocs,
    ResponderLimits, SyncHost,
};
pub(crate) use responder::{refusal, settled_candidate};
pub use session::{SyncSession, SyncStats, DEFAULT_MAX_ROUNDS, PUSH_WITHOUT_MEMORY_LIMIT};
pub use wire::{ChangeData, DocReply, DocRequest, Message, Problem};

use crate::error::Result;
use crate::ids::{DocId, PeerId};
use crate::replica::Replica;
use crate::store::Storage;

/// Runs a whole session between two replicas in one process: `initiator`
/// syncs `scope` with `responder`, which checks `policy`. For tools that
/// hold both stores (the command line), tests and benchmarks.
pub fn sync_local<A: Storage, B: Storage>(
    initiator: &mut Replica<A>,
    initiator_id: &PeerId,
    responder: &mut Replica<B>,
    responder_id: &PeerId,
    policy: &dyn AccessPolicy,
    scope: &[DocId],
) -> Result<SyncStats> {
    let mut session = SyncSession::new(responder_id.clone(), scope.to_vec());
    let limits = ResponderLimits::default();
    while let Some(req) = session.next_request(initiator)? {
        let resp = respond(responder, initiator_id, policy, &limits, &req)?;
        session.receive(initiator, &resp)?;
    }
    Ok(session.stats().clone())
}
