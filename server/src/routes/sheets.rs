//! Excel and CSV: every report and every ledger exported with Chinese
//! headers (`tpsync-sheets`), and an existing equipment or book ledger
//! imported from .xlsx or CSV — a preview first (`?dry_run=true`: what would
//! be created, each bad row with its line and column), then the import,
//! which creates the good rows and nothing from the bad ones.

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sync_core::indicators::Verdict;
use sync_core::records::{
    ArchiveBox, ArchiveItem, Book, ChecklistRow, EquipmentItem, ImprovementPlan, StocktakeLine,
    StocktakeSession,
};
use sync_core::{DocId, DocKind, EditContext, RecordDoc, RecordId, SchoolId};
use tpsync_accounts::Caller;
use tpsync_reports::{verdict_label, AreaReport, SchoolReport};
use tpsync_sheets::{
    archive_tables, books_table, checklist_tables, equipment_table, preview_import,
    stocktake_table, to_csv, to_xlsx, Cell, LedgerKind, LedgerRecord, SheetFormat, Table,
};

use super::blocking;
use super::reports::{freshness_list, gaps_report, school_report, view, StaleDevice, View};
use crate::auth::Authed;
use crate::{now_ms, ApiError, AppState, Changed};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/exports/{file}", get(export_report))
        .route("/schools/{code}/ledgers/{file}", get(export_ledger))
        .route(
            "/schools/{code}/ledgers/{ledger}/import",
            post(import_ledger),
        )
}

fn split_file(file: &str) -> Result<(&str, SheetFormat), ApiError> {
    let (name, ext) = file.rsplit_once('.').unwrap_or((file, ""));
    let format = match ext {
        "xlsx" => SheetFormat::Xlsx,
        "csv" => SheetFormat::Csv,
        _ => {
            return Err(ApiError::bad_request(format!(
                "'{file}': ask for .xlsx or .csv"
            )))
        }
    };
    Ok((name, format))
}

fn file_response(name: &str, format: SheetFormat, bytes: Vec<u8>) -> Response {
    let ascii = format!("{name}.{}", format.extension());
    (
        [
            (header::CONTENT_TYPE, format.content_type().to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{ascii}\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

fn ledger_kind(name: &str) -> Result<LedgerKind, ApiError> {
    match name {
        "equipment" => Ok(LedgerKind::Equipment),
        "books" => Ok(LedgerKind::Books),
        _ => Err(ApiError::bad_request(format!(
            "'{name}' is not a ledger: equipment or books"
        ))),
    }
}

fn num(x: Option<f64>) -> Cell {
    x.map(Cell::Number).unwrap_or(Cell::Empty)
}

/// The tables of an area report: schools, indicators per stage, townships.
fn area_tables(r: &AreaReport) -> Vec<Table> {
    let mut schools = Table::new(
        "学校",
        [
            "学校标识码",
            "学校名称",
            "乡镇",
            "类型",
            "学生数",
            "资源配置",
            "已通过部分",
            "整体审核",
            "问题数",
        ]
        .map(String::from)
        .to_vec(),
    );
    schools.title = Some(format!("{} 学校一览", r.name));
    for row in &r.rows {
        schools.rows.push(vec![
            Cell::Text(row.code.clone()),
            Cell::Text(row.name.clone()),
            Cell::Text(row.township_name.clone()),
            Cell::Text(row.school_type_label.into()),
            Cell::Integer(row.students as i64),
            Cell::Text(
                row.verdicts
                    .iter()
                    .map(|(s, v)| format!("{}{v}", tpsync_reports::rollup::stage_label(*s)))
                    .collect::<Vec<_>>()
                    .join("；"),
            ),
            Cell::Integer(row.sections_approved as i64),
            Cell::Text(row.whole_label.into()),
            Cell::Integer(row.gaps as i64),
        ]);
    }
    let mut ind = Table::new(
        "指标与差异系数",
        [
            "学段",
            "指标",
            "名称",
            "标准",
            "有值学校数",
            "达标学校数",
            "最小值",
            "最大值",
            "加权平均",
            "差异系数",
            "差异系数上限",
            "是否达标",
        ]
        .map(String::from)
        .to_vec(),
    );
    ind.title = Some(format!("{} 资源配置指标与差异系数", r.name));
    for st in &r.stages {
        for i in &st.indicators {
            ind.rows.push(vec![
                Cell::Text(st.stage_label.into()),
                Cell::Text(i.code.clone()),
                Cell::Text(i.name.clone()),
                num(i.threshold),
                Cell::Integer(i.schools_with_value as i64),
                Cell::Integer(i.schools_meeting as i64),
                num(i.min),
                num(i.max),
                num(i.cv.mean),
                num(i.cv.cv),
                num(i.cv_limit),
                Cell::Text(match i.cv_within {
                    Some(true) => "是".into(),
                    Some(false) => "否".into(),
                    None => "无法判定".into(),
                }),
            ]);
        }
    }
    let mut tables = vec![schools, ind];
    if !r.townships.is_empty() {
        let mut t = Table::new(
            "乡镇",
            [
                "乡镇代码",
                "乡镇",
                "学校数",
                "达标",
                "未达标",
                "无法判定",
                "已报县",
                "已验收",
                "部分应交",
                "部分已交",
                "部分已通过",
                "按时提交",
            ]
            .map(String::from)
            .to_vec(),
        );
        for l in &r.townships {
            t.rows.push(vec![
                Cell::Text(l.code.clone()),
                Cell::Text(l.name.clone()),
                Cell::Integer(l.schools as i64),
                Cell::Integer(l.pass as i64),
                Cell::Integer(l.fail as i64),
                Cell::Integer(l.undetermined as i64),
                Cell::Integer(l.submitted as i64),
                Cell::Integer(l.accepted as i64),
                Cell::Integer(l.sections.expected as i64),
                Cell::Integer(l.sections.submitted as i64),
                Cell::Integer(l.sections.approved as i64),
                Cell::Integer(l.sections.on_time as i64),
            ]);
        }
        tables.push(t);
    }
    tables
}

#[derive(Deserialize)]
pub(crate) struct ExportQuery {
    pub township: Option<String>,
    /// For `school.xlsx`: the school's code.
    pub school: Option<String>,
    /// For CSV: which table (0-based) of a report of several.
    pub table: Option<usize>,
    pub stale_days: Option<u32>,
}

async fn export_report(
    State(st): State<AppState>,
    Authed(caller): Authed,
    Path(file): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    report_file(&st, &caller, &file, q).await
}

/// A report as a file, `file` being `<report>.<xlsx|csv>`: for the API
/// and for the dashboard's download links.
pub(crate) async fn report_file(
    st: &AppState,
    caller: &Caller,
    file: &str,
    q: ExportQuery,
) -> Result<Response, ApiError> {
    let (name, format) = split_file(file)?;
    let tables = match name {
        "report" => {
            let v = view(&caller)?;
            let report = match (&v, &q.township) {
                (View::County, None) => Some(st.reports.read(|m| m.county())?),
                (v, Some(t)) if v.sees_township(t) => st.reports.read(|m| m.township(t))?,
                (View::Township(t), None) => st.reports.read(|m| m.township(t))?,
                _ => return Err(ApiError::forbidden("that report is not in your area")),
            }
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such township"))?;
            area_tables(&report)
        }
        "gaps" => {
            let g = gaps_report(&st, &caller, q.township.clone(), q.stale_days).await?;
            let mut tables = gap_tables(g.schools.iter().map(|s| (s.school.name.as_str(), &s.gaps)));
            let mut dev = freshness_table(&g.stale_devices);
            dev.sheet = "未同步设备".into();
            tables.push(dev);
            tables
        }
        "school" => {
            let code = q.school.as_deref().ok_or_else(|| {
                ApiError::bad_request("school.xlsx needs ?school=<the school's code>")
            })?;
            school_tables(&school_report(&st, &caller, code)?)
        }
        "freshness" => {
            let devices = freshness_list(&st, &caller, q.township.clone(), q.stale_days).await?;
            vec![freshness_table(&devices)]
        }
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no report '{other}': report, school (?school=), gaps or freshness, as .xlsx or .csv"),
            ))
        }
    };
    let bytes = match format {
        SheetFormat::Xlsx => to_xlsx(&tables).map_err(ApiError::internal)?,
        SheetFormat::Csv => csv_of(&tables, q.table)?,
    };
    Ok(file_response(name, format, bytes))
}

/// A school's report: its verdict per stage, every indicator against its
/// threshold, its review state and its gaps.
fn school_tables(r: &SchoolReport) -> Vec<Table> {
    use tpsync_reports::rollup::stage_label;
    let title = format!("{}（{}）", r.meta.name, r.meta.code);
    let mut verdicts = Table::new(
        "结论",
        ["学段", "学生数", "结论", "达标项数(R1–R7)", "说明"]
            .map(String::from)
            .to_vec(),
    );
    verdicts.title = Some(format!("{title} 资源配置评估"));
    let mut indicators = Table::new(
        "指标",
        [
            "学段",
            "指标",
            "名称",
            "单位",
            "计入7项",
            "标准",
            "现值",
            "计算值",
            "填报值",
            "是否达标",
            "达到标准的比例",
            "差距",
            "依据",
            "整改措施",
            "完成期限",
        ]
        .map(String::from)
        .to_vec(),
    );
    indicators.title = Some(format!("{title} 指标"));
    for stage in &r.evaluation.stages {
        let met = match &stage.verdict {
            Verdict::Pass { met, .. }
            | Verdict::Fail { met, .. }
            | Verdict::Undetermined { met, .. } => *met,
        };
        let mut notes = stage.notes.clone();
        match &stage.verdict {
            Verdict::Fail { reason, .. } => notes.insert(0, reason.clone()),
            Verdict::Undetermined { missing, .. } => {
                notes.extend(missing.iter().map(|m| format!("{}：{}", m.code, m.reason)))
            }
            Verdict::Pass { .. } => {}
        }
        verdicts.rows.push(vec![
            Cell::Text(stage_label(stage.stage).into()),
            Cell::Integer(stage.students.into()),
            Cell::Text(verdict_label(&stage.verdict).into()),
            Cell::Integer(met.into()),
            Cell::Text(notes.join("；")),
        ]);
        for i in stage.indicators.iter().chain(std::iter::once(&stage.books)) {
            indicators.rows.push(vec![
                Cell::Text(stage_label(stage.stage).into()),
                Cell::Text(i.code.clone()),
                Cell::Text(i.name.clone()),
                Cell::opt_text(i.unit.as_deref()),
                Cell::Text(if i.counted { "是" } else { "否" }.into()),
                num(i.threshold),
                num(i.value),
                num(i.computed),
                num(i.typed),
                Cell::Text(
                    match i.meets {
                        Some(true) => "是",
                        Some(false) => "否",
                        None => "无法判定",
                    }
                    .into(),
                ),
                i.ratio.map_or(Cell::Empty, Cell::Percent),
                i.shortfall.as_ref().map_or(Cell::Empty, |s| {
                    Cell::Text(format!("{} {}", s.amount, s.unit))
                }),
                Cell::Text(i.basis.clone()),
                Cell::Text(
                    i.plans
                        .iter()
                        .map(|p| p.action.clone())
                        .collect::<Vec<_>>()
                        .join("；"),
                ),
                Cell::opt_text(i.plans.first().and_then(|p| p.due_on.as_deref())),
            ]);
        }
    }
    let mut review = Table::new(
        "审核",
        ["部分", "状态", "退回意见", "通过后有修改", "不能提交的原因"]
            .map(String::from)
            .to_vec(),
    );
    for sec in &r.review {
        let problems = r
            .submission_problems
            .iter()
            .find(|(s, _)| *s == sec.section)
            .map(|(_, p)| p.join("；"))
            .unwrap_or_default();
        review.rows.push(vec![
            Cell::Text(sec.label.into()),
            Cell::Text(sec.status_label.into()),
            Cell::opt_text(sec.return_comment.as_deref()),
            Cell::Text(if sec.edited_since_approval { "是" } else { "" }.into()),
            Cell::Text(problems),
        ]);
    }
    let mut tables = vec![verdicts, indicators, review];
    tables.extend(gap_tables([(r.meta.name.as_str(), &r.gaps)]));
    tables
}

/// Every device and its last sync (同步情况).
fn freshness_table(devices: &[StaleDevice]) -> Table {
    let mut t = Table::new(
        "同步情况",
        ["学校", "乡镇", "用户", "设备", "距上次同步天数"]
            .map(String::from)
            .to_vec(),
    );
    for d in devices {
        t.rows.push(vec![
            Cell::opt_text(d.school_name.as_deref()),
            Cell::opt_text(d.township.as_deref()),
            Cell::Text(d.device.username.clone()),
            Cell::Text(d.device.device.clone()),
            match d.days_since_sync {
                Some(n) => Cell::Integer(n as i64),
                None => Cell::Text("从未同步".into()),
            },
        ]);
    }
    t
}

/// The gap tables (未达标指标, 档案缺漏, 盘点差异) of some schools, each row
/// naming its school.
fn gap_tables<'a>(
    schools: impl IntoIterator<Item = (&'a str, &'a tpsync_reports::SchoolGaps)>,
) -> Vec<Table> {
    let mut below = Table::new(
        "未达标指标",
        [
            "学校",
            "学段",
            "指标",
            "名称",
            "现值",
            "标准",
            "差距",
            "整改措施",
            "完成期限",
            "无计划",
        ]
        .map(String::from)
        .to_vec(),
    );
    let mut archive = Table::new(
        "档案缺漏",
        ["学校", "目录编号", "档案名称", "问题"]
            .map(String::from)
            .to_vec(),
    );
    let mut stock = Table::new(
        "盘点差异",
        [
            "学校",
            "盘点",
            "物品",
            "账面数量",
            "实盘数量",
            "结果",
            "盘点设备",
        ]
        .map(String::from)
        .to_vec(),
    );
    for (school_name, gaps) in schools {
        for b in &gaps.below_threshold {
            below.rows.push(vec![
                Cell::Text(school_name.to_owned()),
                Cell::Text(tpsync_reports::rollup::stage_label(b.stage).into()),
                Cell::Text(b.code.clone()),
                Cell::Text(b.name.clone()),
                num(b.value),
                num(b.threshold),
                Cell::opt_text(b.shortfall.as_deref()),
                Cell::Text(
                    b.plans
                        .iter()
                        .map(|p| p.action.clone())
                        .collect::<Vec<_>>()
                        .join("；"),
                ),
                Cell::opt_text(b.due_on.as_deref()),
                Cell::Text(if b.no_plan { "是" } else { "" }.into()),
            ]);
        }
        for a in &gaps.archive {
            archive.rows.push(vec![
                Cell::Text(school_name.to_owned()),
                Cell::Text(a.code.clone()),
                Cell::Text(a.title.clone()),
                Cell::Text(a.problem.clone()),
            ]);
        }
        for l in &gaps.stocktake {
            stock.rows.push(vec![
                Cell::Text(school_name.to_owned()),
                Cell::Text(l.session.clone()),
                Cell::Text(l.item.clone()),
                Cell::Integer(l.recorded_qty as i64),
                Cell::Integer(l.counted_qty as i64),
                Cell::Text(l.result_label.into()),
                Cell::Text(l.counted_by.clone()),
            ]);
        }
    }
    vec![below, archive, stock]
}

fn school_access(
    st: &AppState,
    caller: &Caller,
    school: &SchoolId,
    write: bool,
) -> Result<(), ApiError> {
    let v = view(caller)?;
    let ok = st.reports.read(|m| v.sees_school(m, school))?;
    if !ok {
        return Err(ApiError::forbidden(format!(
            "school {school} is not in your area"
        )));
    }
    if write && matches!(v, View::County) {
        return Err(ApiError::forbidden(
            "the county reads ledgers; the school or its township imports them",
        ));
    }
    Ok(())
}

/// What a school's records can be exported as: the two ledgers (also
/// importable) and the registers built on the phone (export only).
#[derive(Clone, Copy)]
enum Register {
    Equipment,
    Books,
    Archive,
    Checklist,
    Stocktake,
}

fn register(name: &str) -> Result<Register, ApiError> {
    Ok(match name {
        "equipment" => Register::Equipment,
        "books" => Register::Books,
        "archive" => Register::Archive,
        "checklist" => Register::Checklist,
        "stocktake" => Register::Stocktake,
        _ => {
            return Err(ApiError::bad_request(format!(
                "'{name}' is not a register: equipment, books, archive, checklist or stocktake"
            )))
        }
    })
}

#[derive(Deserialize)]
pub(crate) struct LedgerExportQuery {
    /// For CSV: which table (0-based) of a register of several (archive:
    /// items, boxes; checklist: rows, plans).
    pub table: Option<usize>,
}

/// One table for CSV, or the error naming how many there are.
fn csv_of(tables: &[Table], table: Option<usize>) -> Result<Vec<u8>, ApiError> {
    let i = table.unwrap_or(0);
    let t = tables.get(i).ok_or_else(|| {
        ApiError::bad_request(format!(
            "this export has {} table(s) (table=0…{})",
            tables.len(),
            tables.len().saturating_sub(1)
        ))
    })?;
    Ok(to_csv(t))
}

async fn export_ledger(
    State(st): State<AppState>,
    Authed(caller): Authed,
    Path((code, file)): Path<(String, String)>,
    Query(q): Query<LedgerExportQuery>,
) -> Result<Response, ApiError> {
    register_file(st, &caller, &code, &file, q).await
}

/// One of a school's registers as a file, `file` being
/// `<register>.<xlsx|csv>`: for the API and for the dashboard's download
/// links.
pub(crate) async fn register_file(
    st: AppState,
    caller: &Caller,
    code: &str,
    file: &str,
    q: LedgerExportQuery,
) -> Result<Response, ApiError> {
    let school: SchoolId = code
        .parse()
        .map_err(|e| ApiError::bad_request(format!("'{code}' is not a school code: {e}")))?;
    let (name, format) = split_file(&file)?;
    let which = register(name)?;
    school_access(&st, &caller, &school, false)?;
    let catalogue = match which {
        Register::Archive => st.reports.read(|m| m.template().catalogue.clone())?,
        _ => Vec::new(),
    };
    let bytes = blocking(move || {
        let doc_kind = match which {
            Register::Equipment | Register::Stocktake => DocKind::Equipment,
            Register::Books => DocKind::Books,
            Register::Archive => DocKind::Archive,
            Register::Checklist => DocKind::Checklist,
        };
        let build = |d: &RecordDoc| -> sync_core::Result<Vec<Table>> {
            Ok(match which {
                Register::Equipment => vec![equipment_table(&d.list::<EquipmentItem>()?)],
                Register::Books => vec![books_table(&d.list::<Book>()?)],
                Register::Archive => archive_tables(
                    &d.list::<ArchiveItem>()?,
                    &d.list::<ArchiveBox>()?,
                    &catalogue,
                ),
                Register::Checklist => {
                    checklist_tables(&d.list::<ChecklistRow>()?, &d.list::<ImprovementPlan>()?)
                }
                Register::Stocktake => vec![stocktake_table(
                    &d.list::<StocktakeSession>()?,
                    &d.list::<StocktakeLine>()?,
                    &d.list::<EquipmentItem>()?,
                )],
            })
        };
        let id = DocId::school(&school, doc_kind).map_err(ApiError::internal)?;
        let tables = st
            .hub
            .read(&id, build)
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
        match format {
            SheetFormat::Xlsx => to_xlsx(&tables).map_err(ApiError::internal),
            SheetFormat::Csv => csv_of(&tables, q.table),
        }
    })
    .await?;
    Ok(file_response(&format!("{code}-{name}"), format, bytes))
}

#[derive(Deserialize)]
struct ImportQuery {
    #[serde(default)]
    dry_run: bool,
    /// The uploaded file's name, to tell .xlsx from .csv (else by content).
    filename: Option<String>,
}

#[derive(Serialize)]
struct ImportRowView {
    line: usize,
    key: String,
    name: String,
}

#[derive(Serialize)]
struct RowErrorView {
    line: usize,
    column: Option<String>,
    message: String,
}

#[derive(Serialize)]
struct ImportOutcome {
    dry_run: bool,
    total_rows: usize,
    /// What is (or would be) created.
    created: Vec<ImportRowView>,
    /// Rows with errors: nothing is created from them.
    errors: Vec<RowErrorView>,
    unknown_columns: Vec<String>,
}

async fn import_ledger(
    State(st): State<AppState>,
    Authed(caller): Authed,
    Path((code, ledger)): Path<(String, String)>,
    Query(q): Query<ImportQuery>,
    body: Bytes,
) -> Result<Json<ImportOutcome>, ApiError> {
    let school: SchoolId = code
        .parse()
        .map_err(|e| ApiError::bad_request(format!("'{code}' is not a school code: {e}")))?;
    let kind = ledger_kind(&ledger)?;
    school_access(&st, &caller, &school, true)?;
    let format = SheetFormat::detect(q.filename.as_deref(), &body)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string()))?;
    let outcome = blocking(move || {
        let doc_kind = match kind {
            LedgerKind::Equipment => DocKind::Equipment,
            LedgerKind::Books => DocKind::Books,
        };
        let id = DocId::school(&school, doc_kind).map_err(ApiError::internal)?;
        let existing: BTreeSet<String> = st
            .hub
            .read(&id, |d| -> sync_core::Result<BTreeSet<String>> {
                Ok(match kind {
                    LedgerKind::Equipment => d
                        .list::<EquipmentItem>()?
                        .into_iter()
                        .map(|(_, e)| e.asset_no)
                        .collect(),
                    LedgerKind::Books => d
                        .list::<Book>()?
                        .into_iter()
                        .map(|(_, b)| b.reg_no)
                        .collect(),
                })
            })
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
        let preview = preview_import(kind, &body, format, &existing).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!("{e}; nothing was imported"),
            )
        })?;
        let created: Vec<ImportRowView> = preview
            .rows
            .iter()
            .map(|r| ImportRowView {
                line: r.line,
                key: r.record.key().to_string(),
                name: match &r.record {
                    LedgerRecord::Equipment(e) => e.name.clone(),
                    LedgerRecord::Book(b) => b.title.clone(),
                },
            })
            .collect();
        if !q.dry_run && !preview.rows.is_empty() {
            let ctx = EditContext {
                user: caller.user.as_str().parse().map_err(ApiError::internal)?,
                device: caller.device.clone(),
                now_ms: now_ms() as i64,
            };
            let _gate = st.write_gate.read();
            st.hub
                .edit(&id, |d| {
                    for r in &preview.rows {
                        match &r.record {
                            LedgerRecord::Equipment(e) => {
                                d.insert(&ctx, RecordId::random(), e)?;
                            }
                            LedgerRecord::Book(b) => {
                                d.insert(&ctx, RecordId::random(), b)?;
                            }
                        }
                    }
                    Ok(())
                })
                .map_err(ApiError::internal)?;
            crate::reports::apply_docs(&st, std::slice::from_ref(&id));
            let _ = st.changes.send(std::sync::Arc::new(Changed {
                docs: vec![id],
                by: caller.device.clone(),
            }));
        }
        Ok(ImportOutcome {
            dry_run: q.dry_run,
            total_rows: preview.total_rows,
            created,
            errors: preview
                .errors
                .into_iter()
                .map(|e| RowErrorView {
                    line: e.line,
                    column: e.column,
                    message: e.message,
                })
                .collect(),
            unknown_columns: preview.unknown_columns,
        })
    })
    .await?;
    Ok(Json(outcome))
}
