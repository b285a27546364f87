//! `respond`: any request bytes get a Refused or Response frame; a refused
//! request writes nothing; what is accepted reloads and is on its schema.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sync_core_fuzz::{check_respond, fixture, run};

fuzz_target!(init: sync_core_fuzz::init(), |data: &[u8]| {
    run("respond", || {
        let f = fixture();
        check_respond(&f.server, &f.server_heads, data);
    });
});
