//! `import_bundle`: any bytes import or are an error; an error changes nothing
//! stored; what is imported reloads and is on its schema.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sync_core::sync::{import_bundle, AllowAll};
use sync_core::Replica;
use sync_core_fuzz::{actor, check_reloads, dump, fixture, run, violated};

fuzz_target!(init: sync_core_fuzz::init(), |data: &[u8]| {
    run("import_bundle", || {
        let store = fixture().server.snapshot_copy();
        let before = dump(&store);
        let mut r = Replica::with_actor(store.clone(), actor(0x36));
        match import_bundle(&mut r, &AllowAll, data) {
            Err(e) => {
                if dump(&store) != before {
                    violated(format!("a failed import changed storage: {e}"));
                }
            }
            Ok(_) => check_reloads(&store, &mut r),
        }
    });
});
