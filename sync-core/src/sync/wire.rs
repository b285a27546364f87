//! The wire format: every message, request, response or bundle, is one frame.
//!
//! ```text
//! frame   = "TPSY" version:u8 flags:u8 payload
//! payload = postcard(Message), deflated when flags & 1
//! ```
//!
//! Decoding is total: any byte string decodes or returns a [`DecodeError`];
//! none panics, and a decompression bomb stops at the size limit.

use std::io::Read;

use automerge::ChangeHash;
use serde::{Deserialize, Serialize};

use crate::error::DecodeError;
use crate::ids::DocId;

pub const MAGIC: &[u8; 4] = b"TPSY";
pub const VERSION: u8 = 1;
const FLAG_DEFLATE: u8 = 1;

/// The largest message accepted once decompressed (64 MiB): a county's whole
/// data fits many times over; anything larger is refused, not allocated.
pub const DEFAULT_MAX_DECODED: usize = 64 * 1024 * 1024;

/// A set of change hashes (a document's heads).
pub type Heads = Vec<[u8; 32]>;

pub(crate) fn to_wire(heads: &[ChangeHash]) -> Heads {
    let mut h: Heads = heads.iter().map(|h| h.0).collect();
    h.sort();
    h
}

/// Heads from a peer or from storage, sorted (Automerge's encoders assume
/// sorted hashes) and without duplicates.
pub(crate) fn from_wire(heads: &[[u8; 32]]) -> Vec<ChangeHash> {
    let mut h: Vec<ChangeHash> = heads.iter().map(|h| ChangeHash(*h)).collect();
    h.sort();
    h.dedup();
    h
}

/// Changes of one document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ChangeData {
    /// Nothing.
    None,
    /// Individual Automerge changes, each its own chunk.
    Changes(Vec<Vec<u8>>),
    /// Individual changes in causal order, packed (see [`super::packed`]).
    Packed(Vec<super::packed::PackedChange>),
    /// A whole-document save (compact; used when the receiver has nothing
    /// but the genesis change).
    Document(Vec<u8>),
}

impl ChangeData {
    pub fn is_empty(&self) -> bool {
        match self {
            ChangeData::None => true,
            ChangeData::Changes(c) => c.is_empty(),
            ChangeData::Packed(c) => c.is_empty(),
            ChangeData::Document(_) => false,
        }
    }
}

/// What an initiator says about one document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DocRequest {
    /// The common case: my heads, and the changes I believe you lack.
    Push { heads: Heads, data: ChangeData },
    /// I am unsure what you have (the last exchange was cut): here are my
    /// heads; send me what I lack and tell me yours.
    Probe { heads: Heads },
    /// One message of Automerge's own sync protocol (the fallback).
    Automerge(Vec<u8>),
}

/// What a responder answers about one document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DocReply {
    /// What you lack, and my heads (`None`: the same as the heads you sent,
    /// and `data` is empty).
    Changes {
        heads: Option<Heads>,
        data: ChangeData,
    },
    /// Continue with Automerge's sync protocol for this document (my message,
    /// if I have one).
    Automerge(Option<Vec<u8>>),
}

/// Why a responder refused a request. Nothing of a refused request was
/// applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// The document concerned, if one.
    pub doc: Option<String>,
    /// A stable code: `malformed`, `forbidden`, `off_schema`, `too_large`, …
    pub code: String,
    /// What went wrong and what to do, for a person.
    pub message: String,
}

/// A message between peers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    Request(Vec<(DocId, DocRequest)>),
    Response(Vec<(DocId, DocReply)>),
    Refused(Vec<Problem>),
    /// A file bundle: changes to import, no answer expected.
    Bundle(Vec<(DocId, ChangeData)>),
}

impl Message {
    /// Encodes a frame, deflated when that makes it smaller.
    pub fn encode(&self) -> Vec<u8> {
        let raw = postcard::to_stdvec(self).expect("messages serialize");
        let mut out = Vec::with_capacity(raw.len() / 2 + 6);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        let mut enc =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut enc, &raw).expect("deflate into a Vec");
        let deflated = enc.finish().expect("deflate into a Vec");
        if deflated.len() < raw.len() {
            out.push(FLAG_DEFLATE);
            out.extend_from_slice(&deflated);
        } else {
            out.push(0);
            out.extend_from_slice(&raw);
        }
        out
    }

    /// Decodes a frame; refuses anything over `max_decoded` bytes once
    /// decompressed.
    pub fn decode_limited(bytes: &[u8], max_decoded: usize) -> Result<Self, DecodeError> {
        if bytes.len() < 6 || &bytes[..4] != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        if bytes[4] != VERSION {
            return Err(DecodeError::UnsupportedVersion(bytes[4]));
        }
        let flags = bytes[5];
        let body = &bytes[6..];
        if flags & !FLAG_DEFLATE != 0 {
            return Err(DecodeError::Corrupt(format!("unknown flags {flags:#04x}")));
        }
        let inflated;
        let payload = if flags & FLAG_DEFLATE != 0 {
            let mut out = Vec::new();
            flate2::read::DeflateDecoder::new(body)
                .take((max_decoded as u64).saturating_add(1))
                .read_to_end(&mut out)
                .map_err(|e| DecodeError::Corrupt(format!("bad compression: {e}")))?;
            inflated = out;
            &inflated[..]
        } else {
            body
        };
        if payload.len() > max_decoded {
            return Err(DecodeError::TooLarge { limit: max_decoded });
        }
        postcard::from_bytes(payload).map_err(|e| DecodeError::Corrupt(e.to_string()))
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_limited(bytes, DEFAULT_MAX_DECODED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Message {
        let doc: DocId = "school.4301230001.books".parse().unwrap();
        Message::Request(vec![
            (
                doc.clone(),
                DocRequest::Push {
                    heads: vec![[7; 32]],
                    data: ChangeData::Changes(vec![vec![1, 2, 3]; 40]),
                },
            ),
            (doc, DocRequest::Probe { heads: vec![] }),
        ])
    }

    #[test]
    fn frames_round_trip() {
        let m = sample();
        assert_eq!(Message::decode(&m.encode()).unwrap(), m);
    }

    #[test]
    fn foreign_and_broken_frames_are_errors() {
        assert_eq!(Message::decode(b""), Err(DecodeError::BadMagic));
        assert_eq!(
            Message::decode(b"GET / HTTP/1.1"),
            Err(DecodeError::BadMagic)
        );
        assert_eq!(
            Message::decode(b"TPSY\x09\x00"),
            Err(DecodeError::UnsupportedVersion(9))
        );
        let mut f = sample().encode();
        f.truncate(f.len() / 2);
        assert!(Message::decode(&f).is_err());
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_limit() {
        let big = Message::Bundle(vec![(
            "school.1.books".parse().unwrap(),
            ChangeData::Document(vec![0; 1 << 20]),
        )]);
        let f = big.encode();
        assert!(f.len() < 10_000, "zeros compress");
        assert_eq!(
            Message::decode_limited(&f, 1 << 16),
            Err(DecodeError::TooLarge { limit: 1 << 16 })
        );
    }
}
