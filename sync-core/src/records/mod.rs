//! The records a school keeps, in the domain's own words.
//!
//! Every record kind lives in one collection (a map keyed by [`crate::RecordId`])
//! of one document kind. Removal is always a status with a reason; there is no
//! delete. Money is in fen (分), never a float.

mod any;
mod archive;
mod attachment;
mod books;
mod checklist;
mod equipment;
mod profile;
mod query;
mod review;
mod template;

pub use any::{status_codes, AnyRecord, RecordKind};
pub use archive::{ArchiveBox, ArchiveItem, ArchiveItemStatus, BoxStatus, Retention};
pub use attachment::{AttachedTo, Attachment, AttachmentStatus};
pub use books::{Book, BookStatus};
pub use checklist::{ChecklistRow, ChecklistRowStatus, ImprovementPlan, PlanStatus, ValueSource};
pub use equipment::{
    EquipmentItem, EquipmentStatus, StocktakeCount, StocktakeLine, StocktakeResult,
    StocktakeSession, StocktakeStatus,
};
pub use profile::{SchoolProfile, SchoolType};
pub use query::{isbn13, FieldEquals, RecordPage, RecordQuery, StoredRecord};
pub use review::{review_level, ReviewAction, ReviewEvent, ReviewLevel, Section};
pub use template::{
    CatalogueEntry, EntryStatus, IndicatorTemplate, Stage, TeachingPointPolicy, TemplateSettings,
};

use crate::ids::DocKind;
use crate::schema::{Record, RecordSpec};

/// Every record kind, for validation and tooling.
pub const ALL_SPECS: &[RecordSpec] = &[
    SchoolProfile::SPEC,
    EquipmentItem::SPEC,
    StocktakeSession::SPEC,
    StocktakeLine::SPEC,
    Book::SPEC,
    ArchiveItem::SPEC,
    ArchiveBox::SPEC,
    ChecklistRow::SPEC,
    ImprovementPlan::SPEC,
    ReviewEvent::SPEC,
    Attachment::SPEC,
    IndicatorTemplate::SPEC,
    CatalogueEntry::SPEC,
    TemplateSettings::SPEC,
];

/// The record kinds held in one kind of document.
pub fn specs_for(kind: DocKind) -> impl Iterator<Item = &'static RecordSpec> {
    ALL_SPECS.iter().filter(move |s| s.doc_kind == kind)
}

/// The record kind stored under `collection` in a document of `kind`.
pub fn spec_for_collection(kind: DocKind, collection: &str) -> Option<&'static RecordSpec> {
    specs_for(kind).find(|s| s.collection == collection)
}

#[cfg(test)]
pub(crate) mod samples {
    //! One filled-in sample of every record kind, used to check specs against
    //! structs and by other tests.
    use super::*;
    use crate::RecordId;

    pub fn equipment(n: u32) -> EquipmentItem {
        EquipmentItem {
            asset_no: format!("YQ-{n:05}"),
            name: "学生显微镜".into(),
            category_code: Some("03040401".into()),
            brand: Some("江南".into()),
            model: Some("XSP-02".into()),
            spec: Some("640倍".into()),
            unit: Some("台".into()),
            quantity: 12,
            unit_price_fen: 38_000,
            funding_source: Some("薄改项目".into()),
            keeper: Some("李老师".into()),
            room: Some("科学室".into()),
            acquired_on: Some("2024-09-01".into()),
            status: EquipmentStatus::InUse,
            status_reason: None,
            status_date: None,
        }
    }

    pub fn book(n: u32) -> Book {
        Book {
            reg_no: format!("TS{n:06}"),
            isbn: Some("9787020002207".into()),
            title: "红楼梦".into(),
            author: Some("曹雪芹".into()),
            publisher: Some("人民文学出版社".into()),
            pub_year: Some(2008),
            clc_class: Some("I242.4".into()),
            price_fen: Some(5_970),
            copies: 1,
            shelf: Some("A-3".into()),
            received_on: Some("2025-03-01".into()),
            status: BookStatus::OnShelf,
            status_reason: None,
            status_date: None,
        }
    }

    /// A sample of every kind, as (spec, JSON of the struct).
    pub fn all() -> Vec<(RecordSpec, serde_json::Value)> {
        let id = RecordId::from_u128(7);
        let j = |v: serde_json::Result<serde_json::Value>| v.unwrap();
        vec![
            (
                SchoolProfile::SPEC,
                j(serde_json::to_value(SchoolProfile {
                    school_code: Some("4301230001".into()),
                    name: Some("青山村教学点".into()),
                    school_type: Some(SchoolType::TeachingPoint),
                    township: Some("青山镇".into()),
                    parent_school: Some("4301230000".into()),
                    students_grade_1: Some(8),
                    students_grade_2: Some(7),
                    students_grade_3: Some(6),
                    students_grade_4: Some(0),
                    students_grade_5: Some(0),
                    students_grade_6: Some(0),
                    students_grade_7: None,
                    students_grade_8: None,
                    students_grade_9: None,
                    classes: Some(2),
                    teachers_total: Some(2),
                    teachers_qualified: Some(2),
                    teachers_key: Some(0),
                    teachers_pe_arts: Some(0),
                    teaching_area_m2: Some(180.5),
                    sports_area_m2: Some(400.0),
                    multimedia_classrooms: Some(1),
                })),
            ),
            (EquipmentItem::SPEC, j(serde_json::to_value(equipment(1)))),
            (
                StocktakeSession::SPEC,
                j(serde_json::to_value(StocktakeSession {
                    title: "2025年秋季盘点".into(),
                    room: Some("科学室".into()),
                    started_on: "2025-10-01".into(),
                    status: StocktakeStatus::Open,
                    closed_on: None,
                })),
            ),
            (
                StocktakeLine::SPEC,
                j(serde_json::to_value(StocktakeLine {
                    session: id,
                    item: Some(id),
                    description: None,
                    recorded_qty: 12,
                    counted_qty: 11,
                    result: StocktakeResult::Shortage,
                    counted_by_device: "phone-1".into(),
                    note: Some("一台借给中心校".into()),
                })),
            ),
            (Book::SPEC, j(serde_json::to_value(book(1)))),
            (
                ArchiveItem::SPEC,
                j(serde_json::to_value(ArchiveItem {
                    catalogue_entry: id,
                    status: ArchiveItemStatus::Filed,
                    box_id: Some(id),
                    folder_no: Some("3".into()),
                    title: Some("2025年教师培训记录".into()),
                    document_no: Some("青教〔2025〕3号".into()),
                    doc_date: Some("2025-04-01".into()),
                    pages: Some(12),
                    note: None,
                    status_reason: None,
                })),
            ),
            (
                ArchiveBox::SPEC,
                j(serde_json::to_value(ArchiveBox {
                    box_no: "2025-Y-01".into(),
                    year: 2025,
                    retention: Retention::Permanent,
                    category: "资源配置".into(),
                    first_item_no: Some("1".into()),
                    last_item_no: Some("24".into()),
                    status: BoxStatus::Active,
                    status_reason: None,
                })),
            ),
            (
                ChecklistRow::SPEC,
                j(serde_json::to_value(ChecklistRow {
                    indicator_code: "R6".into(),
                    value: Some(2150.0),
                    value_source: ValueSource::Computed,
                    evidence: Some("设备台账".into()),
                    note: None,
                    status: ChecklistRowStatus::Active,
                    status_reason: None,
                })),
            ),
            (
                ImprovementPlan::SPEC,
                j(serde_json::to_value(ImprovementPlan {
                    row: id,
                    action: "申请多媒体教室".into(),
                    due_on: Some("2026-06-30".into()),
                    responsible: Some("王校长".into()),
                    status: PlanStatus::Planned,
                    status_reason: None,
                })),
            ),
            (
                ReviewEvent::SPEC,
                j(serde_json::to_value(ReviewEvent {
                    section: Section::Equipment,
                    action: ReviewAction::Return,
                    comment: Some("缺少照片".into()),
                    frozen_heads: Some("a".repeat(64)),
                    by_user: "township-7".into(),
                    at: 1_700_000_000_000,
                })),
            ),
            (
                Attachment::SPEC,
                j(serde_json::to_value(Attachment {
                    target_kind: AttachedTo::EquipmentItem,
                    target: id,
                    sha256: "b".repeat(64),
                    size: 301_234,
                    media_type: "image/jpeg".into(),
                    file_name: Some("IMG_0042.jpg".into()),
                    caption: Some("显微镜铭牌".into()),
                    preview_sha256: Some("c".repeat(64)),
                    preview_size: Some(8_000),
                    taken_on: Some("2026-11-20".into()),
                    status: AttachmentStatus::Active,
                    status_reason: None,
                })),
            ),
            (
                IndicatorTemplate::SPEC,
                j(serde_json::to_value(IndicatorTemplate {
                    code: "R6".into(),
                    name: "生均教学仪器设备值".into(),
                    stage: Stage::Primary,
                    threshold: 2000.0,
                    unit: Some("元".into()),
                    status: EntryStatus::Active,
                })),
            ),
            (
                CatalogueEntry::SPEC,
                j(serde_json::to_value(CatalogueEntry {
                    code: "A-01".into(),
                    title: "学校章程".into(),
                    category: Some("管理".into()),
                    retention: Some(Retention::Years30),
                    indicator_code: None,
                    status: EntryStatus::Active,
                })),
            ),
            (
                TemplateSettings::SPEC,
                j(serde_json::to_value(TemplateSettings {
                    teaching_point_policy: Some(TeachingPointPolicy::ExcludeUnder),
                    teaching_point_min_students: Some(50),
                    cv_limit_primary: Some(0.5),
                    cv_limit_junior: Some(0.45),
                    books_per_student_primary: Some(25.0),
                    books_per_student_junior: Some(35.0),
                    review_due: Some("2026-12-15".into()),
                })),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_matches_its_struct() {
        let samples = samples::all();
        assert_eq!(samples.len(), ALL_SPECS.len(), "a sample for every kind");
        for (spec, json) in samples {
            let obj = json.as_object().unwrap();
            for (k, v) in obj {
                let f = spec
                    .field(k)
                    .unwrap_or_else(|| panic!("{}.{k} has no FieldSpec", spec.name));
                assert!(
                    crate::schema::json_to_scalar(f.ty, v).is_ok(),
                    "{}.{k} = {v} does not fit its spec",
                    spec.name
                );
                if f.required {
                    assert!(!v.is_null(), "{}.{k} is required but null", spec.name);
                }
            }
            for f in spec.fields {
                assert!(
                    obj.contains_key(f.name),
                    "{}.{} not in struct",
                    spec.name,
                    f.name
                );
            }
        }
    }

    #[test]
    fn collections_are_unique_per_document_kind() {
        for a in ALL_SPECS {
            for b in ALL_SPECS {
                if a.name != b.name && a.doc_kind == b.doc_kind {
                    assert_ne!(a.collection, b.collection);
                }
            }
        }
    }
}
