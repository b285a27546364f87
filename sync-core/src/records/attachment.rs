//! Attachments (附件): photos of equipment, scans of archive documents.
//!
//! A record here names a blob by its SHA-256 and says which record it belongs
//! to; the bytes never enter a document (they live in `tpsync-blobs` stores
//! on the phone and the server, and travel after the records). Removing an
//! attachment is a status with a reason, like every other removal: the name
//! stays, so the county can still see what was once attached.

use crate::schema::{opt, req, Choice, FieldType::*};
use crate::{choice, record, RecordId};

choice! {
    /// The kind of record an attachment belongs to.
    pub enum AttachedTo {
        /// 学校概况
        SchoolProfile = "school_profile",
        /// 仪器设备
        EquipmentItem = "equipment_item",
        /// 盘点
        StocktakeSession = "stocktake_session",
        /// 图书
        Book = "book",
        /// 档案条目 (scans of the evidence)
        ArchiveItem = "archive_item",
        /// 档案盒 (a photo of the spine)
        ArchiveBox = "archive_box",
        /// 标准化建设 (evidence for a figure)
        ChecklistRow = "checklist_row",
        /// 补短板
        ImprovementPlan = "improvement_plan",
    }
}

choice! {
    /// Whether an attachment still counts.
    pub enum AttachmentStatus {
        /// 有效
        Active = "active",
        /// 已移除 (wrong photo, duplicate; kept with a reason)
        Removed = "removed",
    }
}

record! {
    /// 附件: one photo or scan attached to a record of the school.
    pub struct Attachment in Attachments."attachments" {
        /// What kind of record it belongs to.
        target_kind: AttachedTo = req(Enum(AttachedTo::VALUES)),
        /// The record it belongs to.
        target: RecordId = req(Ref),
        /// SHA-256 of the bytes: the blob's name.
        sha256: String = req(Sha256),
        /// Size of the bytes.
        size: u64 = req(Count),
        /// Media type, e.g. `image/jpeg`, `application/pdf`.
        media_type: String = req(Text),
        /// The file's name on the phone (文件名), for people.
        file_name: Option<String> = opt(Text),
        /// 说明
        caption: Option<String> = opt(Text),
        /// A small JPEG preview (thumbnail) that travels ahead of the full
        /// file; it is served as `image/jpeg`.
        preview_sha256: Option<String> = opt(Sha256),
        preview_size: Option<u64> = opt(Count),
        /// 拍摄日期
        taken_on: Option<String> = opt(Date),
        status: AttachmentStatus = req(Enum(AttachmentStatus::VALUES)),
        status_reason: Option<String> = opt(Text),
    }
}

impl Attachment {
    /// The blob names this attachment refers to: the file and its preview.
    pub fn blob_names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.sha256.as_str()).chain(self.preview_sha256.as_deref())
    }
}
