//! The one sync loop, shared by HTTP and the WebSocket: the same loop as
//! `sync_core::sync::sync_local`, with a transport that can fail.

use std::sync::atomic::{AtomicBool, Ordering};

use sync_core::store::Storage;
use sync_core::sync::{SyncSession, SyncStats};
use sync_core::{DocId, PeerId, Replica};

use crate::error::ClientError;
use crate::types::SyncProgress;

/// Drives a [`SyncSession`] until every document is settled, sending each
/// request with `round`.
///
/// A round that fails (cut, timeout, refusal) is abandoned before the error
/// is returned: the documents it carried are probed before anything is
/// sent again, in this session or the next (the replica also remembers
/// durably that a request was in flight), so a retry neither loses nor
/// resends changes.
pub(crate) fn run<S: Storage>(
    replica: &mut Replica<S>,
    server_peer: &PeerId,
    scope: &[DocId],
    progress: Option<&mut dyn FnMut(&SyncProgress)>,
    cancel: Option<&AtomicBool>,
    round: impl FnMut(&[u8]) -> Result<Vec<u8>, ClientError>,
) -> Result<SyncStats, ClientError> {
    run_with(
        &mut |f| f(&mut *replica),
        server_peer,
        scope,
        progress,
        cancel,
        round,
    )
}

/// [`run`] over a replica shared between threads: the lock is held while a
/// request is built and while a response is applied, never while waiting
/// for the network, so an app's writes go on during a slow sync. A write
/// made between a request and its response is sent in a later round (the
/// response records the peer's heads, not ours).
pub(crate) fn run_shared<S: Storage>(
    replica: &parking_lot::Mutex<Replica<S>>,
    server_peer: &PeerId,
    scope: &[DocId],
    progress: Option<&mut dyn FnMut(&SyncProgress)>,
    cancel: Option<&AtomicBool>,
    round: impl FnMut(&[u8]) -> Result<Vec<u8>, ClientError>,
) -> Result<SyncStats, ClientError> {
    run_with(
        &mut |f| f(&mut replica.lock()),
        server_peer,
        scope,
        progress,
        cancel,
        round,
    )
}

/// Runs `f` with the replica, however it is held.
type WithReplica<'a, S> = dyn FnMut(&mut dyn FnMut(&mut Replica<S>)) + 'a;

fn run_with<S: Storage>(
    with: &mut WithReplica<'_, S>,
    server_peer: &PeerId,
    scope: &[DocId],
    mut progress: Option<&mut dyn FnMut(&SyncProgress)>,
    cancel: Option<&AtomicBool>,
    mut round: impl FnMut(&[u8]) -> Result<Vec<u8>, ClientError>,
) -> Result<SyncStats, ClientError> {
    let mut session = SyncSession::new(server_peer.clone(), scope.iter().cloned());
    loop {
        if cancel.is_some_and(|c| c.load(Ordering::Acquire)) {
            return Err(ClientError::Cancelled);
        }
        let mut next = None;
        with(&mut |r| next = Some(session.next_request(r)));
        let Some(request) = next.expect("ran")? else {
            return Ok(session.stats().clone());
        };
        let response = match round(&request) {
            Ok(r) => r,
            Err(e) => {
                session.abandon();
                return Err(e);
            }
        };
        let mut received = None;
        with(&mut |r| received = Some(session.receive(r, &response)));
        received.expect("ran")?;
        if let Some(report) = progress.as_deref_mut() {
            let s = session.stats();
            report(&SyncProgress {
                round: s.round_trips,
                bytes_sent: s.bytes_sent,
                bytes_received: s.bytes_received,
                changes_sent: s.changes_sent,
                changes_received: s.changes_received,
            });
        }
    }
}
