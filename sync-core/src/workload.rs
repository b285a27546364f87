//! The reference workloads of the design brief, for benchmarks and tests:
//! a teaching point (profile, 300 equipment items, 2,000 books, 120 archive
//! items, 60 checklist rows, with their edit history) and a day's work (50
//! edits across its documents, made offline).
//!
//! Deterministic given the seed. Each edit also returns the JSON of what was
//! edited, the yardstick the day's sync bytes are measured against.

use serde_json::{json, Value};

use crate::error::Result;
use crate::harness::Rng;
use crate::ids::{DocId, DocKind, RecordId, SchoolId};
use crate::records::*;
use crate::replica::Replica;
use crate::store::Storage;
use crate::EditContext;

/// Sizes of the reference teaching point.
#[derive(Clone, Copy, Debug)]
pub struct TeachingPointSize {
    pub equipment: usize,
    pub books: usize,
    pub archive_items: usize,
    pub checklist_rows: usize,
}

impl TeachingPointSize {
    /// The brief's reference teaching point.
    pub const REFERENCE: Self = Self {
        equipment: 300,
        books: 2000,
        archive_items: 120,
        checklist_rows: 60,
    };
}

/// What was built, so a day's work can pick records to edit.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct TeachingPoint {
    pub school: Option<SchoolId>,
    pub equipment: Vec<RecordId>,
    pub books: Vec<RecordId>,
    pub archive_items: Vec<RecordId>,
    pub boxes: Vec<RecordId>,
    pub checklist_rows: Vec<RecordId>,
    pub stocktake: Option<RecordId>,
    /// How many durable edits (one change each) building it took.
    pub edits: usize,
}

/// Hands out edit contexts with a clock that moves a minute per edit.
pub struct Clock {
    pub ctx: EditContext,
}

impl Clock {
    pub fn new(user: &str, device: &str, start_ms: i64) -> Self {
        Self {
            ctx: EditContext {
                user: user.parse().expect("valid user id"),
                device: device.parse().expect("valid device id"),
                now_ms: start_ms,
            },
        }
    }
    pub fn tick(&mut self) -> EditContext {
        self.ctx.now_ms += 60_000;
        self.ctx.clone()
    }
}

const TITLES: &[&str] = &[
    "西游记",
    "水浒传",
    "三国演义",
    "红楼梦",
    "十万个为什么",
    "安徒生童话",
    "格林童话",
    "昆虫记",
    "稻草人",
    "小王子",
];
const PUBLISHERS: &[&str] = &[
    "人民文学出版社",
    "少年儿童出版社",
    "中华书局",
    "商务印书馆",
    "湖南少年儿童出版社",
];
const EQUIPMENT: &[(&str, &str, i64)] = &[
    ("学生显微镜", "03040401", 38_000),
    ("地球仪", "03010203", 6_500),
    ("天平", "03020107", 12_000),
    ("投影仪", "05010101", 320_000),
    ("电子琴", "07010301", 98_000),
    ("篮球", "06020101", 9_000),
];

/// Builds the reference teaching point in `replica`, one change per record
/// (as a teacher enters them), plus a share of later edits as history.
pub fn build_teaching_point<S: Storage>(
    replica: &mut Replica<S>,
    school: &SchoolId,
    size: TeachingPointSize,
    clock: &mut Clock,
    rng: &mut Rng,
) -> Result<TeachingPoint> {
    let doc = |k| DocId::school(school, k).expect("school doc id");
    let mut tp = TeachingPoint {
        school: Some(school.clone()),
        ..Default::default()
    };
    let ctx = clock.tick();
    replica.edit(&doc(DocKind::Profile), |d| {
        d.update_singleton::<SchoolProfile>(&ctx, |p| {
            p.school_code = Some(school.to_string());
            p.name = Some("青山村教学点".into());
            p.school_type = Some(SchoolType::TeachingPoint);
            p.township = Some("青山镇".into());
            p.students_grade_1 = Some(9);
            p.students_grade_2 = Some(7);
            p.students_grade_3 = Some(8);
            p.classes = Some(3);
            p.teachers_total = Some(2);
            p.teachers_qualified = Some(2);
            p.teaching_area_m2 = Some(160.0);
            p.sports_area_m2 = Some(600.0);
            p.multimedia_classrooms = Some(1);
        })
    })?;
    tp.edits += 1;
    for n in 0..size.equipment {
        let (name, cat, price) = EQUIPMENT[rng.below(EQUIPMENT.len())];
        let id = rng.record_id();
        let ctx = clock.tick();
        let item = EquipmentItem {
            asset_no: format!("YQ-2024-{n:04}"),
            name: name.into(),
            category_code: Some(cat.into()),
            brand: None,
            model: Some(format!("M{}", rng.below(90) + 10)),
            spec: None,
            unit: Some("台".into()),
            quantity: 1 + rng.below(20) as u32,
            unit_price_fen: price,
            funding_source: Some("薄改项目".into()),
            keeper: Some("李老师".into()),
            room: Some(["科学室", "多功能室", "器材室"][rng.below(3)].into()),
            acquired_on: Some(format!(
                "2024-{:02}-{:02}",
                1 + rng.below(12),
                1 + rng.below(28)
            )),
            status: EquipmentStatus::InUse,
            status_reason: None,
            status_date: None,
        };
        replica.edit(&doc(DocKind::Equipment), |d| d.insert(&ctx, id, &item))?;
        tp.edits += 1;
        tp.equipment.push(id);
    }
    for n in 0..size.books {
        let id = rng.record_id();
        let ctx = clock.tick();
        let book = Book {
            reg_no: format!("TS{n:06}"),
            isbn: Some(format!("97875{:08}", rng.below(100_000_000))),
            title: format!(
                "{}（第{}册）",
                TITLES[rng.below(TITLES.len())],
                1 + rng.below(5)
            ),
            author: None,
            publisher: Some(PUBLISHERS[rng.below(PUBLISHERS.len())].into()),
            pub_year: Some(2010 + rng.below(15) as u32),
            clc_class: Some(format!("I{}", 200 + rng.below(100))),
            price_fen: Some(1_000 + rng.below(5_000) as i64),
            copies: 1,
            shelf: None,
            received_on: Some("2025-03-01".into()),
            status: BookStatus::OnShelf,
            status_reason: None,
            status_date: None,
        };
        replica.edit(&doc(DocKind::Books), |d| d.insert(&ctx, id, &book))?;
        tp.edits += 1;
        tp.books.push(id);
    }
    // History: every book later shelved (上架), a tenth of the equipment moved.
    for (i, id) in tp.books.clone().iter().enumerate() {
        let ctx = clock.tick();
        let shelf = format!(
            "{}-{}",
            (b'A' + (i / 200) as u8) as char,
            1 + (i % 200) / 20
        );
        replica.edit(&doc(DocKind::Books), |d| {
            d.update::<Book>(&ctx, *id, |b| b.shelf = Some(shelf))
        })?;
        tp.edits += 1;
    }
    for id in tp.equipment.clone().iter().step_by(10) {
        let ctx = clock.tick();
        replica.edit(&doc(DocKind::Equipment), |d| {
            d.update::<EquipmentItem>(&ctx, *id, |e| e.room = Some("器材室".into()))
        })?;
        tp.edits += 1;
    }
    for b in 0..6u32 {
        let id = RecordId::from_u128(0xB0 + b as u128);
        let ctx = clock.tick();
        let bx = ArchiveBox {
            box_no: format!("2025-{b:02}"),
            year: 2025,
            retention: Retention::Permanent,
            category: "资源配置".into(),
            first_item_no: Some(format!("{}", b * 20 + 1)),
            last_item_no: Some(format!("{}", b * 20 + 20)),
            status: BoxStatus::Active,
            status_reason: None,
        };
        replica.edit(&doc(DocKind::Archive), |d| d.insert(&ctx, id, &bx))?;
        tp.edits += 1;
        tp.boxes.push(id);
    }
    for n in 0..size.archive_items {
        let id = rng.record_id();
        let ctx = clock.tick();
        let filed = rng.chance(0.6);
        let item = ArchiveItem {
            catalogue_entry: RecordId::from_u128(0xCA7_0000 + n as u128),
            status: if filed {
                ArchiveItemStatus::Filed
            } else {
                ArchiveItemStatus::Missing
            },
            box_id: filed.then(|| tp.boxes[n % tp.boxes.len()]),
            folder_no: filed.then(|| format!("{}", n % 20 + 1)),
            title: Some(format!("档案材料 {n}")),
            document_no: None,
            doc_date: None,
            pages: filed.then_some(1 + rng.below(30) as u32),
            note: None,
            status_reason: None,
        };
        replica.edit(&doc(DocKind::Archive), |d| d.insert(&ctx, id, &item))?;
        tp.edits += 1;
        tp.archive_items.push(id);
    }
    for n in 0..size.checklist_rows {
        let id = rng.record_id();
        let ctx = clock.tick();
        let row = ChecklistRow {
            indicator_code: format!("C{:02}", n + 1),
            value: Some(rng.below(1000) as f64 / 10.0),
            value_source: ValueSource::Typed,
            evidence: Some("见档案盒".into()),
            note: None,
            status: ChecklistRowStatus::Active,
            status_reason: None,
        };
        replica.edit(&doc(DocKind::Checklist), |d| d.insert(&ctx, id, &row))?;
        tp.edits += 1;
        tp.checklist_rows.push(id);
    }
    let st = RecordId::from_u128(0x5700);
    let ctx = clock.tick();
    replica.edit(&doc(DocKind::Equipment), |d| {
        d.insert(
            &ctx,
            st,
            &StocktakeSession {
                title: "2025年秋季盘点".into(),
                room: None,
                started_on: "2025-11-20".into(),
                status: StocktakeStatus::Open,
                closed_on: None,
            },
        )
    })?;
    tp.edits += 1;
    tp.stocktake = Some(st);
    Ok(tp)
}

/// A day's work: `n` edits across the school's documents, each its own
/// durable change. Returns the JSON of each edit (what a plain JSON API would
/// have had to send).
pub fn days_work<S: Storage>(
    replica: &mut Replica<S>,
    tp: &TeachingPoint,
    n: usize,
    clock: &mut Clock,
    rng: &mut Rng,
) -> Result<Vec<Value>> {
    let school = tp.school.as_ref().expect("built teaching point");
    let doc = |k| DocId::school(school, k).expect("school doc id");
    let mut edits = Vec::with_capacity(n);
    for i in 0..n {
        let ctx = clock.tick();
        let edit = match i % 10 {
            0 | 1 => {
                let id = rng.record_id();
                let book = Book {
                    reg_no: format!("TS{:06}", 900_000 + i),
                    isbn: Some(format!("97875{:08}", rng.below(100_000_000))),
                    title: format!("{}（新到）", TITLES[rng.below(TITLES.len())]),
                    author: None,
                    publisher: Some(PUBLISHERS[rng.below(PUBLISHERS.len())].into()),
                    pub_year: Some(2025),
                    clc_class: Some("I287".into()),
                    price_fen: Some(2_800),
                    copies: 1,
                    shelf: Some("D-1".into()),
                    received_on: Some("2025-11-21".into()),
                    status: BookStatus::OnShelf,
                    status_reason: None,
                    status_date: None,
                };
                replica.edit(&doc(DocKind::Books), |d| d.insert(&ctx, id, &book))?;
                json!({"doc": doc(DocKind::Books), "id": id, "insert": book})
            }
            2 => {
                let id = tp.books[rng.below(tp.books.len())];
                let shelf = format!("C-{}", rng.below(9) + 1);
                replica.edit(&doc(DocKind::Books), |d| {
                    d.update::<Book>(&ctx, id, |b| b.shelf = Some(shelf.clone()))
                })?;
                json!({"doc": doc(DocKind::Books), "id": id, "set": {"shelf": shelf}})
            }
            3 => {
                let id = tp.equipment[rng.below(tp.equipment.len())];
                let line = StocktakeLine {
                    session: tp.stocktake.expect("stocktake"),
                    item: Some(id),
                    description: None,
                    recorded_qty: 4,
                    counted_qty: 3,
                    result: StocktakeResult::Shortage,
                    counted_by_device: ctx.device.to_string(),
                    note: None,
                };
                let lid = rng.record_id();
                replica.edit(&doc(DocKind::Equipment), |d| d.insert(&ctx, lid, &line))?;
                json!({"doc": doc(DocKind::Equipment), "id": lid, "insert": line})
            }
            4 => {
                let id = tp.equipment[rng.below(tp.equipment.len())];
                replica.edit(&doc(DocKind::Equipment), |d| {
                    d.update::<EquipmentItem>(&ctx, id, |e| {
                        e.status = EquipmentStatus::Scrapped;
                        e.status_reason = Some("损坏无法维修".into());
                        e.status_date = Some("2025-11-21".into());
                    })
                })?;
                json!({"doc": doc(DocKind::Equipment), "id": id, "set": {"status": "scrapped", "status_reason": "损坏无法维修", "status_date": "2025-11-21"}})
            }
            5 => {
                let id = tp.equipment[rng.below(tp.equipment.len())];
                let q = 1 + rng.below(20) as u32;
                replica.edit(&doc(DocKind::Equipment), |d| {
                    d.update::<EquipmentItem>(&ctx, id, |e| e.quantity = q)
                })?;
                json!({"doc": doc(DocKind::Equipment), "id": id, "set": {"quantity": q}})
            }
            6 => {
                let id = tp.archive_items[rng.below(tp.archive_items.len())];
                let bx = tp.boxes[rng.below(tp.boxes.len())];
                replica.edit(&doc(DocKind::Archive), |d| {
                    d.update::<ArchiveItem>(&ctx, id, |a| {
                        a.status = ArchiveItemStatus::Filed;
                        a.box_id = Some(bx);
                        a.folder_no = Some("7".into());
                    })
                })?;
                json!({"doc": doc(DocKind::Archive), "id": id, "set": {"status": "filed", "box_id": bx, "folder_no": "7"}})
            }
            7 => {
                let id = tp.checklist_rows[rng.below(tp.checklist_rows.len())];
                let v = rng.below(10_000) as f64 / 10.0;
                replica.edit(&doc(DocKind::Checklist), |d| {
                    d.update::<ChecklistRow>(&ctx, id, |r| r.value = Some(v))
                })?;
                json!({"doc": doc(DocKind::Checklist), "id": id, "set": {"value": v}})
            }
            8 => {
                let row = tp.checklist_rows[rng.below(tp.checklist_rows.len())];
                let pid = rng.record_id();
                let plan = ImprovementPlan {
                    row,
                    action: "申请配备音乐器材".into(),
                    due_on: Some("2026-06-30".into()),
                    responsible: Some("王老师".into()),
                    status: PlanStatus::Planned,
                    status_reason: None,
                };
                replica.edit(&doc(DocKind::Checklist), |d| d.insert(&ctx, pid, &plan))?;
                json!({"doc": doc(DocKind::Checklist), "id": pid, "insert": plan})
            }
            _ => {
                let s = 5 + rng.below(10) as u32;
                replica.edit(&doc(DocKind::Profile), |d| {
                    d.update_singleton::<SchoolProfile>(&ctx, |p| p.students_grade_4 = Some(s))
                })?;
                json!({"doc": doc(DocKind::Profile), "set": {"students_grade_4": s}})
            }
        };
        edits.push(edit);
    }
    Ok(edits)
}

/// A plain book on the shelf, numbered `n` (for tests and examples).
pub fn sample_book(n: usize) -> Book {
    Book {
        reg_no: format!("TS{n:06}"),
        isbn: None,
        title: format!("书{n}"),
        author: None,
        publisher: None,
        pub_year: None,
        clc_class: None,
        price_fen: Some(1_000),
        copies: 1,
        shelf: None,
        received_on: None,
        status: BookStatus::OnShelf,
        status_reason: None,
        status_date: None,
    }
}

/// A plain equipment item in use, numbered `n` (for tests and examples).
pub fn sample_equipment(n: usize) -> EquipmentItem {
    EquipmentItem {
        asset_no: format!("YQ{n:05}"),
        name: "天平".into(),
        category_code: None,
        brand: None,
        model: None,
        spec: None,
        unit: Some("台".into()),
        quantity: 1,
        unit_price_fen: 12_000,
        funding_source: None,
        keeper: None,
        room: None,
        acquired_on: None,
        status: EquipmentStatus::InUse,
        status_reason: None,
        status_date: None,
    }
}
