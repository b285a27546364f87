//! Hand-built sync request frames: a read (a heads-only probe), a write (a
//! push carrying one valid change of the document's kind), and pushes of
//! arbitrary changes, for access and bad-input tests that must say exactly
//! what a request carries.

use sync_core::records::{
    ArchiveBox, AttachedTo, Attachment, AttachmentStatus, BoxStatus, ChecklistRow,
    ChecklistRowStatus, EntryStatus, IndicatorTemplate, Retention, ReviewAction, ReviewEvent,
    SchoolProfile, Section, Stage, ValueSource,
};
use sync_core::sync::{ChangeData, DocRequest, Message};
use sync_core::workload::{sample_book, sample_equipment};
use sync_core::{ChangeHash, DocId, DocKind, EditContext, RecordDoc, RecordId};

use crate::phone::now_ms;

/// Heads as the wire carries them: sorted raw hashes.
pub fn wire_heads(heads: &[ChangeHash]) -> Vec<[u8; 32]> {
    let mut h: Vec<[u8; 32]> = heads.iter().map(|h| h.0).collect();
    h.sort();
    h
}

/// A request frame of the given documents.
pub fn request(docs: Vec<(DocId, DocRequest)>) -> Vec<u8> {
    Message::Request(docs).encode()
}

/// A read: "I have the genesis change only; what do you have?"
pub fn probe(doc: &DocId) -> Vec<u8> {
    request(vec![(
        doc.clone(),
        DocRequest::Probe {
            heads: wire_heads(&[RecordDoc::genesis_hash(doc)]),
        },
    )])
}

/// One document's push of every change `doc` has since `since`.
pub fn push_since(doc: &RecordDoc, since: &[ChangeHash]) -> DocRequest {
    let changes: Vec<Vec<u8>> = doc
        .automerge()
        .get_changes(since)
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect();
    DocRequest::Push {
        heads: wire_heads(&doc.heads()),
        data: ChangeData::Changes(changes),
    }
}

/// A write prepared for one document: the frame, and the hash of the one
/// change it carries (to look for on the server afterwards).
pub struct Write {
    pub doc: DocId,
    pub change: ChangeHash,
    pub frame: Vec<u8>,
}

fn ctx(who: &str) -> EditContext {
    EditContext {
        user: who.parse().expect("user id"),
        device: who.parse().expect("device id"),
        now_ms: now_ms(),
    }
}

/// A valid change of `doc`'s kind on top of its genesis, made by `who`:
/// a profile name, an equipment item, a book, an archive box, a checklist
/// row, a review step, or a template indicator.
pub fn valid_change(doc: &DocId, who: &str) -> (RecordDoc, ChangeHash) {
    let mut d = RecordDoc::genesis(doc.clone());
    let ctx = ctx(who);
    let id = RecordId::random();
    let n = (now_ms() % 100_000) as usize;
    let hash = match doc.kind() {
        DocKind::Profile => {
            let name = format!("{who} 写的校名");
            d.update_singleton::<SchoolProfile>(&ctx, |p| p.name = Some(name))
                .expect("profile edit");
            d.heads()[0]
        }
        DocKind::Equipment => d.insert(&ctx, id, &sample_equipment(n)).expect("insert"),
        DocKind::Books => d.insert(&ctx, id, &sample_book(n)).expect("insert"),
        DocKind::Archive => d
            .insert(
                &ctx,
                id,
                &ArchiveBox {
                    box_no: format!("2025-{n:05}"),
                    year: 2025,
                    retention: Retention::Permanent,
                    category: "资源配置".into(),
                    first_item_no: None,
                    last_item_no: None,
                    status: BoxStatus::Active,
                    status_reason: None,
                },
            )
            .expect("insert"),
        DocKind::Checklist => d
            .insert(
                &ctx,
                id,
                &ChecklistRow {
                    indicator_code: "R6".into(),
                    value: Some(2150.0),
                    value_source: ValueSource::Typed,
                    evidence: Some("设备台账".into()),
                    note: None,
                    status: ChecklistRowStatus::Active,
                    status_reason: None,
                },
            )
            .expect("insert"),
        DocKind::Review => d
            .insert(
                &ctx,
                id,
                &ReviewEvent {
                    section: Section::Books,
                    action: ReviewAction::Approve,
                    comment: Some("同意".into()),
                    frozen_heads: None,
                    by_user: who.into(),
                    at: ctx.now_ms,
                },
            )
            .expect("insert"),
        DocKind::Attachments => d
            .insert(
                &ctx,
                id,
                &Attachment {
                    target_kind: AttachedTo::EquipmentItem,
                    target: RecordId::random(),
                    sha256: format!("{:064x}", n),
                    size: 300_000,
                    media_type: "image/jpeg".into(),
                    file_name: Some("IMG_0001.jpg".into()),
                    caption: None,
                    preview_sha256: None,
                    preview_size: None,
                    taken_on: None,
                    status: AttachmentStatus::Active,
                    status_reason: None,
                },
            )
            .expect("insert"),
        DocKind::Template => d
            .insert(
                &ctx,
                id,
                &IndicatorTemplate {
                    code: format!("R{n}"),
                    name: "生均教学仪器设备值".into(),
                    stage: Stage::Primary,
                    threshold: 2000.0,
                    unit: Some("元".into()),
                    status: EntryStatus::Active,
                },
            )
            .expect("insert"),
    };
    (d, hash)
}

/// A write: a push of one valid change of `doc`'s kind (see
/// [`valid_change`]).
pub fn write(doc: &DocId, who: &str) -> Write {
    let (d, change) = valid_change(doc, who);
    let genesis = RecordDoc::genesis_hash(doc);
    Write {
        doc: doc.clone(),
        change,
        frame: request(vec![(doc.clone(), push_since(&d, &[genesis]))]),
    }
}
