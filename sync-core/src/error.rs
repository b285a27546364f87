//! Errors. Each says what went wrong and, where it helps, what to do.

use crate::ids::{DocId, RecordId};
use crate::schema::Violation;

/// An id that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("bad {what} {value:?}: {why}")]
    BadCode {
        what: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("bad document id {value:?}: {why}")]
    BadDocId { value: String, why: &'static str },
    #[error("bad record id {value:?}: expected 32 lowercase hex digits")]
    BadRecordId { value: String },
}

/// The storage under a replica failed. The write it was part of did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage backend failed: {0}; check the data directory's disk space and permissions")]
    Backend(String),
    #[error("corrupt storage key {0:?}: it was not written by tpsync")]
    BadKey(String),
}

/// A document or record that breaks its schema, found on read or validation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("document {doc} is off its schema: {}", render_violations(.violations))]
pub struct SchemaError {
    pub doc: DocId,
    pub violations: Vec<Violation>,
}

fn render_violations(v: &[Violation]) -> String {
    let mut s = v
        .iter()
        .take(5)
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join("; ");
    if v.len() > 5 {
        s.push_str(&format!("; and {} more", v.len() - 5));
    }
    s
}

/// Bytes from outside (a peer, a bundle file) that do not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a tpsync message: the first bytes are not the tpsync magic; was this file or request meant for tpsync?")]
    BadMagic,
    #[error("unsupported tpsync message version {0}; upgrade this app or the server so both speak the same version")]
    UnsupportedVersion(u8),
    #[error("message is larger than {limit} bytes once decompressed; split the sync into smaller batches")]
    TooLarge { limit: usize },
    #[error("message is truncated or corrupt: {0}")]
    Corrupt(String),
    #[error("automerge data for {doc} does not decode: {reason}")]
    Automerge { doc: String, reason: String },
}

/// Anything sync-core can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Id(#[from] IdError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("record {id} not found in {doc}")]
    RecordNotFound { doc: DocId, id: RecordId },
    #[error("record {id} already exists in {doc}; records are never replaced, update it instead")]
    RecordExists { doc: DocId, id: RecordId },
    #[error("{kind} records live in {expected} documents, not in {doc}")]
    WrongDocument {
        kind: &'static str,
        expected: &'static str,
        doc: DocId,
    },
    #[error("{kind}.{field}: {problem}")]
    InvalidValue {
        kind: &'static str,
        field: &'static str,
        problem: String,
    },
    #[error("field {field:?} is not a field of {kind}")]
    UnknownField { kind: &'static str, field: String },
    #[error("access to {doc} refused: {reason}")]
    AccessDenied { doc: DocId, reason: String },
    #[error("the peer refused the sync: {0}")]
    Refused(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("automerge failed on {doc}: {reason}")]
    Automerge { doc: DocId, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
