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
    mut progress: Option<&mut dyn FnMut(&SyncProgress)>,
    cancel: Option<&AtomicBool>,
    mut round: impl FnMut(&[u8]) -> Result<Vec<u8>, ClientError>,
) -> Result<SyncStats, ClientError> {
    let mut session = SyncSession::new(server_peer.clone(), scope.iter().cloned());
    loop {
        if cancel.is_some_and(|c| c.load(Ordering::Acquire)) {
            return Err(ClientError::Cancelled);
        }
        let Some(request) = session.next_request(replica)? else {
            return Ok(session.stats().clone());
        };
        let response = match round(&request) {
            Ok(r) => r,
            Err(e) => {
                session.abandon();
                return Err(e);
            }
        };
        session.receive(replica, &response)?;
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
