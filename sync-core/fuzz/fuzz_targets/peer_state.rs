//! Garbage stored as a peer state: `Replica::peer_state` is Ok, a session
//! over it goes on (its request is answered by a responder that keeps its
//! contract), and a responder holding it answers an Automerge request.
//!
//! Input: one byte choosing the initiator, then the stored bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sync_core::store::{Storage, StorageKey};
use sync_core::sync::SyncSession;
use sync_core::Replica;
use sync_core_fuzz::{
    actor, books, check_respond, client_peer, fixture, run, scope, server_peer, violated,
};

fuzz_target!(init: sync_core_fuzz::init(), |data: &[u8]| {
    let Some((&which, garbage)) = data.split_first() else { return };
    run("peer_state", || {
        let f = fixture();
        let store = f.clients[usize::from(which) % f.clients.len()].snapshot_copy();
        store.put(&StorageKey::Peer { peer: server_peer(), doc: books() }, garbage).unwrap();
        let mut r = Replica::with_actor(store, actor(0x31));
        if let Err(e) = r.peer_state(&server_peer(), &books()) {
            violated(format!("peer_state failed on garbage: {e}"));
        }
        let mut session = SyncSession::new(server_peer(), scope());
        if let Ok(Some(req)) = session.next_request(&mut r) {
            check_respond(&f.server, &f.server_heads, &req);
        }
        let server = f.server.snapshot_copy();
        server.put(&StorageKey::Peer { peer: client_peer(), doc: books() }, garbage).unwrap();
        check_respond(&server, &f.server_heads, &f.automerge_request);
    });
});
