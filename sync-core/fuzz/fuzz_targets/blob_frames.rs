//! `tpsync_blobs::FrameDecoder` (attachment chunks, both ways) and
//! `BlobHash::from_str`: any bytes, fed in any pieces, yield only frames whose
//! SHA-256 matches, in order, or an error; never a panic, never a frame over
//! the limit. Byte 0 picks the frame limit, byte 1 the piece size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use sync_core_fuzz::{run, violated};
use tpsync_blobs::{BlobHash, FrameDecoder, FRAME_HEADER_BYTES};

fuzz_target!(init: sync_core_fuzz::init(), |data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let max = 1 + (data[0] as usize) * 64;
    let piece = 1 + data[1] as usize;
    let wire = &data[2..];
    run("blob_frames", || {
        let mut d = FrameDecoder::new(max);
        let mut consumed = 0usize;
        let mut fed = 0usize;
        'feed: for chunk in wire.chunks(piece) {
            d.push(chunk);
            fed += chunk.len();
            loop {
                match d.next_frame() {
                    Ok(Some(f)) => {
                        if f.is_empty() || f.len() > max {
                            violated(format!("a frame of {} bytes passed a limit of {max}", f.len()));
                        }
                        // The frame is the bytes after its header, and matches
                        // the digest written there.
                        let at = consumed + FRAME_HEADER_BYTES;
                        if &wire[at..at + f.len()] != f
                            || Sha256::digest(f).as_slice() != &wire[consumed + 4..at]
                        {
                            violated("a frame does not match its digest or its place".into());
                        }
                        consumed = at + f.len();
                    }
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
            if d.pending() != fed - consumed {
                violated(format!("pending {} but {} bytes unread", d.pending(), fed - consumed));
            }
        }
        if let Ok(text) = std::str::from_utf8(wire) {
            if let Ok(h) = text.parse::<BlobHash>() {
                if h.to_string() != text.to_ascii_lowercase() {
                    violated(format!("blob name {text:?} writes out as {h}"));
                }
            }
        }
    });
});
