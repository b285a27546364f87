//! `SyncSession::receive` after `next_request`: any response bytes are Ok or
//! Err; an Err changes nothing stored; the session goes on (its next request
//! is answered by a responder that keeps its own contract).
//!
//! Input: one byte choosing the initiator (2, 5 or 70 books), then the
//! response.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sync_core::sync::SyncSession;
use sync_core::Replica;
use sync_core_fuzz::{
    actor, check_reloads, check_respond, dump, fixture, run, scope, server_peer, violated,
};

fuzz_target!(init: sync_core_fuzz::init(), |data: &[u8]| {
    let Some((&which, response)) = data.split_first() else { return };
    run("session_receive", || {
        let f = fixture();
        let store = f.clients[usize::from(which) % f.clients.len()].snapshot_copy();
        let mut client = Replica::with_actor(store.clone(), actor(0x31));
        let mut session = SyncSession::new(server_peer(), scope());
        session.next_request(&mut client).unwrap().expect("a request");
        let before = dump(&store);
        match session.receive(&mut client, response) {
            Err(e) => {
                if dump(&store) != before {
                    violated(format!("a failed receive changed storage: {e}"));
                }
            }
            Ok(()) => check_reloads(&store, &mut client),
        }
        if let Ok(Some(req)) = session.next_request(&mut client) {
            check_respond(&f.server, &f.server_heads, &req);
        }
    });
});
