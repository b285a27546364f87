//! Access policy: which documents a peer may read and write. The sync core
//! asks it for every document in every message; the server builds one from
//! the caller's token, a phone from its signed-in user.

use std::collections::BTreeSet;

use crate::ids::DocId;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

pub trait AccessPolicy {
    /// `Ok` if allowed; `Err` says why not, for a person.
    fn check(&self, doc: &DocId, access: Access) -> Result<(), String>;

    /// Checks what a write brings to a document it may write (`before` the
    /// stored version, `after` with the caller's changes applied, already
    /// on schema). The default allows anything the schema allows; a server
    /// uses it for rules about content, such as who may record which review
    /// step.
    fn check_write(
        &self,
        _before: &crate::RecordDoc,
        _after: &crate::RecordDoc,
    ) -> Result<(), String> {
        Ok(())
    }
}

/// Allows everything (a device syncing with itself, tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAll;

impl AccessPolicy for AllowAll {
    fn check(&self, _: &DocId, _: Access) -> Result<(), String> {
        Ok(())
    }
}

/// Explicit sets of readable and writable documents. Writable implies
/// readable.
#[derive(Clone, Debug, Default)]
pub struct DocSetPolicy {
    pub readable: BTreeSet<DocId>,
    pub writable: BTreeSet<DocId>,
}

impl AccessPolicy for DocSetPolicy {
    fn check(&self, doc: &DocId, access: Access) -> Result<(), String> {
        let ok = match access {
            Access::Read => self.readable.contains(doc) || self.writable.contains(doc),
            Access::Write => self.writable.contains(doc),
        };
        if ok {
            Ok(())
        } else {
            Err(match access {
                Access::Read => format!("you may not read {doc}"),
                Access::Write => format!("you may not write {doc}"),
            })
        }
    }
}
