//! File bundles: what a peer lacks, as bytes to carry on a USB stick or send
//! over any channel, imported idempotently. The same frames and the same
//! apply-and-validate path as the network protocol.

use std::collections::BTreeMap;

use automerge::ChangeHash;

use super::apply::{apply_data, changes_since, check_result, must_keep};
use super::policy::{Access, AccessPolicy};
use super::wire::{from_wire, ChangeData, Message, Problem};
use crate::error::{Error, Result};
use crate::ids::{DocId, PeerId};
use crate::replica::Replica;
use crate::store::Storage;

/// Which changes a bundle carries.
#[derive(Clone, Debug)]
pub enum BundleScope {
    /// Every change of each document.
    Everything,
    /// The changes since these heads, per document (documents not listed:
    /// everything).
    Since(BTreeMap<DocId, Vec<ChangeHash>>),
    /// What we do not know the peer to have, from our sync memory of it.
    PeerLacks(PeerId),
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Documents that changed.
    pub docs_changed: Vec<DocId>,
    /// Documents in the bundle that were already up to date.
    pub docs_unchanged: Vec<DocId>,
}

/// Builds a bundle of `docs`.
pub fn export_bundle<S: Storage>(
    replica: &mut Replica<S>,
    docs: &[DocId],
    scope: &BundleScope,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(docs.len());
    for id in docs {
        let since: Vec<ChangeHash> = match scope {
            BundleScope::Everything => Vec::new(),
            BundleScope::Since(map) => map.get(id).cloned().unwrap_or_default(),
            BundleScope::PeerLacks(peer) => replica
                .peer_state(peer, id)?
                .their_heads
                .map(|h| from_wire(&h))
                .unwrap_or_default(),
        };
        let doc = replica.doc(id)?;
        let data = if since.is_empty() {
            ChangeData::Document(doc.save())
        } else {
            changes_since(doc, &since)
        };
        out.push((id.clone(), data));
    }
    Ok(Message::Bundle(out).encode())
}

/// Imports a bundle: every document is checked against `policy` and the
/// schema; all are committed in one durable write, or none is. Importing the
/// same bundle twice changes nothing the second time.
pub fn import_bundle<S: Storage>(
    replica: &mut Replica<S>,
    policy: &dyn AccessPolicy,
    bytes: &[u8],
) -> Result<ImportReport> {
    let docs = match Message::decode(bytes)? {
        Message::Bundle(d) => d,
        _ => {
            return Err(Error::Protocol(
                "this is a sync message, not a bundle".into(),
            ))
        }
    };
    let mut problems: Vec<Problem> = Vec::new();
    let mut changed = Vec::new();
    let mut report = ImportReport::default();
    for (id, data) in &docs {
        if let Err(why) = policy.check(id, Access::Write) {
            problems.push(Problem::new(Some(id), "forbidden", why));
            continue;
        }
        let before = replica.doc(id)?.clone();
        let mut after = before.clone();
        match apply_data(&mut after, data).and_then(|_| check_result(&before, &after)) {
            Err(p) => problems.push(p),
            Ok(()) if must_keep(&before, &after) => {
                report.docs_changed.push(id.clone());
                changed.push(after);
            }
            Ok(()) => report.docs_unchanged.push(id.clone()),
        }
    }
    if !problems.is_empty() {
        let text = problems
            .iter()
            .map(|p| {
                format!(
                    "{} ({}): {}",
                    p.code,
                    p.doc.as_deref().unwrap_or("-"),
                    p.message
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        return Err(Error::Refused(format!(
            "bundle not imported, nothing changed: {text}"
        )));
    }
    replica.commit_docs(changed)?;
    Ok(report)
}
