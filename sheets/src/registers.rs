//! The school's other records as tables, for export only: the archive
//! (档案目录 and 档案盒), the standardization checklist (对指标 and
//! 整改计划) and the stocktakes (盘点记录). Unlike the two ledgers they are
//! not imported: they are built on the phone against the county's catalogue
//! and template, not kept in Excel beforehand.
//!
//! Rows are sorted by what a clerk looks things up by (catalogue code, box
//! number, indicator code, stocktake date), then by record id, so the same
//! records always give the same file. Records withdrawn or retired are
//! listed with their status and reason: a removal is a status, and the
//! export shows it.

use std::collections::HashMap;

use sync_core::records::{
    ArchiveBox, ArchiveItem, ArchiveItemStatus, BoxStatus, CatalogueEntry, ChecklistRow,
    ChecklistRowStatus, EquipmentItem, ImprovementPlan, PlanStatus, Retention, StocktakeLine,
    StocktakeResult, StocktakeSession, StocktakeStatus, ValueSource,
};
use sync_core::RecordId;

use crate::table::{Cell, Table};

/// 缺失 收集中 已归档 撤销
pub fn archive_status_word(s: ArchiveItemStatus) -> &'static str {
    match s {
        ArchiveItemStatus::Missing => "缺失",
        ArchiveItemStatus::Collecting => "收集中",
        ArchiveItemStatus::Filed => "已归档",
        ArchiveItemStatus::Withdrawn => "撤销",
    }
}

/// 永久 30年 10年
pub fn retention_word(r: Retention) -> &'static str {
    match r {
        Retention::Permanent => "永久",
        Retention::Years30 => "30年",
        Retention::Years10 => "10年",
    }
}

fn box_status_word(s: BoxStatus) -> &'static str {
    match s {
        BoxStatus::Active => "在用",
        BoxStatus::Retired => "撤盒",
    }
}

fn plan_status_word(s: PlanStatus) -> &'static str {
    match s {
        PlanStatus::Planned => "计划中",
        PlanStatus::InProgress => "进行中",
        PlanStatus::Done => "已完成",
        PlanStatus::Dropped => "放弃",
    }
}

/// 相符 盘盈 盘亏 损坏
pub fn stocktake_result_word(r: StocktakeResult) -> &'static str {
    match r {
        StocktakeResult::Match => "相符",
        StocktakeResult::Surplus => "盘盈",
        StocktakeResult::Shortage => "盘亏",
        StocktakeResult::Damaged => "损坏",
    }
}

fn text(s: &str) -> Cell {
    Cell::Text(s.to_owned())
}

fn opt(v: &Option<String>) -> Cell {
    Cell::opt_text(v.as_deref())
}

fn headers<const N: usize>(h: [&str; N]) -> Vec<String> {
    h.map(String::from).to_vec()
}

/// The archive as two tables: 档案目录 (one row per archive item, with the
/// catalogue entry it answers, its status and where it is filed) and 档案盒
/// (one row per box with its spine fields). `catalogue` is the county
/// template's catalogue; an item whose entry is not in it shows the entry's
/// id and comes last, so nothing is silently dropped.
pub fn archive_tables(
    items: &[(RecordId, ArchiveItem)],
    boxes: &[(RecordId, ArchiveBox)],
    catalogue: &[(RecordId, CatalogueEntry)],
) -> Vec<Table> {
    let entries: HashMap<RecordId, &CatalogueEntry> =
        catalogue.iter().map(|(id, e)| (*id, e)).collect();
    let box_no: HashMap<RecordId, &str> = boxes
        .iter()
        .map(|(id, b)| (*id, b.box_no.as_str()))
        .collect();
    let mut list = Table::new(
        "档案目录",
        headers([
            "目录编号",
            "档案名称",
            "类别",
            "保管期限",
            "状态",
            "盒号",
            "卷内序号",
            "题名",
            "文号",
            "日期",
            "页数",
            "备注",
            "状态原因",
        ]),
    );
    // Items whose entry is not in the catalogue come last.
    let mut sorted: Vec<(bool, String, &RecordId, &ArchiveItem)> = items
        .iter()
        .map(|(id, item)| match entries.get(&item.catalogue_entry) {
            Some(e) => (false, e.code.clone(), id, item),
            None => (true, item.catalogue_entry.to_string(), id, item),
        })
        .collect();
    sorted.sort_by(|a, b| (a.0, &a.1, a.2).cmp(&(b.0, &b.1, b.2)));
    for (_, code, _, item) in sorted {
        let entry = entries.get(&item.catalogue_entry);
        list.rows.push(vec![
            Cell::Text(code),
            entry.map_or(Cell::Text("(目录中没有此条目)".into()), |e| {
                text(&e.title)
            }),
            entry.map_or(Cell::Empty, |e| opt(&e.category)),
            entry
                .and_then(|e| e.retention)
                .map_or(Cell::Empty, |r| text(retention_word(r))),
            text(archive_status_word(item.status)),
            item.box_id.map_or(Cell::Empty, |b| match box_no.get(&b) {
                Some(no) => text(no),
                None => Cell::Text(format!("(盒 {b} 不存在)")),
            }),
            opt(&item.folder_no),
            opt(&item.title),
            opt(&item.document_no),
            opt(&item.doc_date),
            item.pages.map_or(Cell::Empty, |p| Cell::Integer(p.into())),
            opt(&item.note),
            opt(&item.status_reason),
        ]);
    }
    let mut box_table = Table::new(
        "档案盒",
        headers([
            "盒号",
            "年度",
            "保管期限",
            "类别",
            "起始件号",
            "终止件号",
            "状态",
            "状态原因",
        ]),
    );
    let mut sorted: Vec<&(RecordId, ArchiveBox)> = boxes.iter().collect();
    sorted.sort_by(|(ia, a), (ib, b)| (&a.box_no, ia).cmp(&(&b.box_no, ib)));
    for (_, b) in sorted {
        box_table.rows.push(vec![
            text(&b.box_no),
            Cell::Integer(b.year.into()),
            text(retention_word(b.retention)),
            text(&b.category),
            opt(&b.first_item_no),
            opt(&b.last_item_no),
            text(box_status_word(b.status)),
            opt(&b.status_reason),
        ]);
    }
    vec![list, box_table]
}

/// The checklist as two tables: 对指标 (one row per checklist row: the
/// indicator's code, the school's value and where it came from) and 整改计划
/// (one row per plan, with the indicator of the row it closes). Thresholds
/// are the county template's and are in the reports, not here.
pub fn checklist_tables(
    rows: &[(RecordId, ChecklistRow)],
    plans: &[(RecordId, ImprovementPlan)],
) -> Vec<Table> {
    let mut rows_table = Table::new(
        "对指标",
        headers([
            "指标",
            "数值",
            "来源",
            "佐证材料",
            "备注",
            "状态",
            "状态原因",
        ]),
    );
    let mut sorted: Vec<&(RecordId, ChecklistRow)> = rows.iter().collect();
    sorted.sort_by(|(ia, a), (ib, b)| (&a.indicator_code, ia).cmp(&(&b.indicator_code, ib)));
    for (_, r) in sorted {
        rows_table.rows.push(vec![
            text(&r.indicator_code),
            r.value.map_or(Cell::Empty, Cell::Number),
            text(match r.value_source {
                ValueSource::Typed => "填报",
                ValueSource::Computed => "计算",
            }),
            opt(&r.evidence),
            opt(&r.note),
            text(match r.status {
                ChecklistRowStatus::Active => "有效",
                ChecklistRowStatus::Withdrawn => "撤销",
            }),
            opt(&r.status_reason),
        ]);
    }
    let code_of: HashMap<RecordId, &str> = rows
        .iter()
        .map(|(id, r)| (*id, r.indicator_code.as_str()))
        .collect();
    let mut plans_table = Table::new(
        "整改计划",
        headers(["指标", "措施", "完成期限", "责任人", "状态", "状态原因"]),
    );
    let mut sorted: Vec<(String, &RecordId, &ImprovementPlan)> = plans
        .iter()
        .map(|(id, p)| {
            let code = code_of
                .get(&p.row)
                .map_or_else(|| format!("(行 {} 不存在)", p.row), |c| (*c).to_owned());
            (code, id, p)
        })
        .collect();
    sorted.sort_by(|a, b| (&a.0, &a.2.due_on, a.1).cmp(&(&b.0, &b.2.due_on, b.1)));
    for (code, _, p) in sorted {
        plans_table.rows.push(vec![
            Cell::Text(code),
            text(&p.action),
            opt(&p.due_on),
            opt(&p.responsible),
            text(plan_status_word(p.status)),
            opt(&p.status_reason),
        ]);
    }
    vec![rows_table, plans_table]
}

/// Every stocktake line (盘点记录), one row per counted item per device,
/// with its session and the ledger item it counted (asset number and name;
/// for an unlisted find, its description). Sorted by the session's start
/// date and title, then asset number.
pub fn stocktake_table(
    sessions: &[(RecordId, StocktakeSession)],
    lines: &[(RecordId, StocktakeLine)],
    items: &[(RecordId, EquipmentItem)],
) -> Table {
    let sessions: HashMap<RecordId, &StocktakeSession> =
        sessions.iter().map(|(id, s)| (*id, s)).collect();
    let items: HashMap<RecordId, &EquipmentItem> = items.iter().map(|(id, i)| (*id, i)).collect();
    let mut t = Table::new(
        "盘点记录",
        headers([
            "盘点",
            "存放地点",
            "开始日期",
            "盘点状态",
            "资产编号",
            "名称",
            "账面数量",
            "实盘数量",
            "结果",
            "盘点设备",
            "备注",
        ]),
    );
    type Key<'a> = (String, String, String, &'a RecordId);
    let mut sorted: Vec<(Key, &StocktakeLine)> = lines
        .iter()
        .map(|(id, l)| {
            let s = sessions.get(&l.session);
            let asset = l
                .item
                .and_then(|i| items.get(&i))
                .map_or_else(String::new, |i| i.asset_no.clone());
            (
                (
                    s.map_or_else(String::new, |s| s.started_on.clone()),
                    s.map_or_else(String::new, |s| s.title.clone()),
                    asset,
                    id,
                ),
                l,
            )
        })
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, l) in sorted {
        let s = sessions.get(&l.session);
        let item = l.item.and_then(|i| items.get(&i));
        t.rows.push(vec![
            s.map_or_else(
                || Cell::Text(format!("(盘点 {} 不存在)", l.session)),
                |s| text(&s.title),
            ),
            s.map_or(Cell::Empty, |s| opt(&s.room)),
            s.map_or(Cell::Empty, |s| text(&s.started_on)),
            s.map_or(Cell::Empty, |s| {
                text(match s.status {
                    StocktakeStatus::Open => "进行中",
                    StocktakeStatus::Closed => "已结束",
                })
            }),
            item.map_or(Cell::Empty, |i| text(&i.asset_no)),
            match (item, &l.description) {
                (Some(i), _) => text(&i.name),
                (None, Some(d)) => text(d),
                (None, None) => match l.item {
                    Some(id) => Cell::Text(format!("(台账中没有 {id})")),
                    None => Cell::Empty,
                },
            },
            Cell::Integer(l.recorded_qty.into()),
            Cell::Integer(l.counted_qty.into()),
            text(stocktake_result_word(l.result)),
            text(&l.counted_by_device),
            opt(&l.note),
        ]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{read_tables, to_xlsx, SheetFormat};
    use sync_core::records::EquipmentStatus;

    fn id(n: u128) -> RecordId {
        RecordId::from_u128(n)
    }

    fn entry(code: &str, title: &str) -> CatalogueEntry {
        CatalogueEntry {
            code: code.into(),
            title: title.into(),
            category: Some("办学条件".into()),
            retention: Some(Retention::Permanent),
            indicator_code: None,
            status: sync_core::records::EntryStatus::Active,
        }
    }

    fn item(entry: u128, status: ArchiveItemStatus, box_id: Option<u128>) -> ArchiveItem {
        ArchiveItem {
            catalogue_entry: id(entry),
            status,
            box_id: box_id.map(id),
            folder_no: Some("3".into()),
            title: Some("校舍面积测量表".into()),
            document_no: None,
            doc_date: Some("2025-09-01".into()),
            pages: Some(4),
            note: None,
            status_reason: None,
        }
    }

    #[test]
    fn archive_lists_every_item_by_catalogue_code_with_its_box_and_withdrawn_ones_with_their_reason(
    ) {
        let catalogue = vec![
            (id(10), entry("B-02", "校舍")),
            (id(11), entry("A-01", "学籍")),
        ];
        let boxes = vec![(
            id(20),
            ArchiveBox {
                box_no: "2025-001".into(),
                year: 2025,
                retention: Retention::Years30,
                category: "办学条件".into(),
                first_item_no: Some("1".into()),
                last_item_no: Some("12".into()),
                status: BoxStatus::Active,
                status_reason: None,
            },
        )];
        let mut withdrawn = item(11, ArchiveItemStatus::Withdrawn, None);
        withdrawn.status_reason = Some("重复录入".into());
        let items = vec![
            (id(1), item(10, ArchiveItemStatus::Filed, Some(20))),
            (id(2), withdrawn),
            (id(3), item(99, ArchiveItemStatus::Missing, None)),
        ];
        let tables = archive_tables(&items, &boxes, &catalogue);
        let list = &tables[0];
        assert_eq!(list.rows.len(), 3, "nothing is left out");
        // sorted by catalogue code: A-01, B-02, then the unknown entry's id
        assert_eq!(list.cell(0, "目录编号"), &Cell::Text("A-01".into()));
        assert_eq!(list.cell(0, "状态"), &Cell::Text("撤销".into()));
        assert_eq!(list.cell(0, "状态原因"), &Cell::Text("重复录入".into()));
        assert_eq!(list.cell(1, "档案名称"), &Cell::Text("校舍".into()));
        assert_eq!(list.cell(1, "盒号"), &Cell::Text("2025-001".into()));
        assert_eq!(list.cell(1, "保管期限"), &Cell::Text("永久".into()));
        assert_eq!(list.cell(1, "页数"), &Cell::Integer(4));
        assert_eq!(
            list.cell(2, "档案名称"),
            &Cell::Text("(目录中没有此条目)".into())
        );
        assert_eq!(tables[1].cell(0, "保管期限"), &Cell::Text("30年".into()));
        assert_eq!(tables[1].cell(0, "年度"), &Cell::Integer(2025));

        // and it survives a round trip through a workbook
        let back = read_tables(&to_xlsx(&tables).unwrap(), SheetFormat::Xlsx).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].cell(1, "盒号"), &Cell::Text("2025-001".into()));
    }

    #[test]
    fn checklist_gives_rows_by_indicator_and_plans_under_the_indicator_they_close() {
        let row = |code: &str, value: Option<f64>| ChecklistRow {
            indicator_code: code.into(),
            value,
            value_source: ValueSource::Typed,
            evidence: None,
            note: None,
            status: ChecklistRowStatus::Active,
            status_reason: None,
        };
        let rows = vec![(id(2), row("R6", Some(1850.5))), (id(1), row("R1", None))];
        let plan = |row: u128, due: &str| ImprovementPlan {
            row: id(row),
            action: "申请县级配备资金".into(),
            due_on: Some(due.into()),
            responsible: Some("王老师".into()),
            status: PlanStatus::InProgress,
            status_reason: None,
        };
        let plans = vec![
            (id(5), plan(2, "2026-12-31")),
            (id(6), plan(2, "2026-06-30")),
        ];
        let t = checklist_tables(&rows, &plans);
        assert_eq!(t[0].cell(0, "指标"), &Cell::Text("R1".into()));
        assert_eq!(t[0].cell(0, "数值"), &Cell::Empty);
        assert_eq!(t[0].cell(1, "数值"), &Cell::Number(1850.5));
        assert_eq!(t[0].cell(1, "来源"), &Cell::Text("填报".into()));
        assert_eq!(t[1].rows.len(), 2);
        assert_eq!(t[1].cell(0, "指标"), &Cell::Text("R6".into()));
        assert_eq!(
            t[1].cell(0, "完成期限"),
            &Cell::Text("2026-06-30".into()),
            "earliest due first"
        );
        assert_eq!(t[1].cell(1, "状态"), &Cell::Text("进行中".into()));
    }

    #[test]
    fn stocktake_lines_show_the_item_counted_and_unlisted_finds_by_description() {
        let sessions = vec![(
            id(30),
            StocktakeSession {
                title: "2026年秋季盘点".into(),
                room: Some("科学室".into()),
                started_on: "2026-10-08".into(),
                status: StocktakeStatus::Closed,
                closed_on: Some("2026-10-09".into()),
            },
        )];
        let items = vec![(
            id(40),
            EquipmentItem {
                asset_no: "YQ-00007".into(),
                name: "学生显微镜".into(),
                category_code: None,
                brand: None,
                model: None,
                spec: None,
                unit: Some("台".into()),
                quantity: 12,
                unit_price_fen: 38_000,
                funding_source: None,
                keeper: None,
                room: None,
                acquired_on: None,
                status: EquipmentStatus::InUse,
                status_reason: None,
                status_date: None,
            },
        )];
        let line = |item: Option<u128>, desc: Option<&str>, rec, cnt, result| StocktakeLine {
            session: id(30),
            item: item.map(id),
            description: desc.map(String::from),
            recorded_qty: rec,
            counted_qty: cnt,
            result,
            counted_by_device: "phone-a".into(),
            note: None,
        };
        let lines = vec![
            (
                id(1),
                line(Some(40), None, 12, 11, StocktakeResult::Shortage),
            ),
            (
                id(2),
                line(None, Some("地球仪"), 0, 1, StocktakeResult::Surplus),
            ),
        ];
        let t = stocktake_table(&sessions, &lines, &items);
        assert_eq!(t.rows.len(), 2);
        // the unlisted find has no asset number, so it sorts first
        assert_eq!(t.cell(0, "名称"), &Cell::Text("地球仪".into()));
        assert_eq!(t.cell(0, "结果"), &Cell::Text("盘盈".into()));
        assert_eq!(t.cell(1, "资产编号"), &Cell::Text("YQ-00007".into()));
        assert_eq!(t.cell(1, "实盘数量"), &Cell::Integer(11));
        assert_eq!(t.cell(1, "结果"), &Cell::Text("盘亏".into()));
        assert_eq!(t.cell(1, "盘点状态"), &Cell::Text("已结束".into()));
    }
}
