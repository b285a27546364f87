//! `Message::decode` and `Message::decode_limited`: any bytes decode or are an
//! error; what decodes re-encodes to itself; the limit holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sync_core::sync::Message;
use sync_core_fuzz::{run, violated};

fuzz_target!(init: sync_core_fuzz::init(), |data: &[u8]| {
    run("wire_decode", || {
        let full = Message::decode(data);
        if let Ok(m) = &full {
            let again = Message::decode(&m.encode());
            if again.as_ref() != Ok(m) {
                violated(format!("re-encoding changed the message: {again:?}"));
            }
        }
        for limit in [0, 64, 4096] {
            if let Ok(m) = Message::decode_limited(data, limit) {
                let size = postcard::to_stdvec(&m).unwrap().len();
                if size > limit {
                    violated(format!("decode_limited({limit}) accepted a {size}-byte message"));
                }
                if full.as_ref() != Ok(&m) {
                    violated("the limit changed what decoded".into());
                }
            }
        }
    });
});
