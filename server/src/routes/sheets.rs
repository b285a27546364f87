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
use sync_core::records::{Book, EquipmentItem};
use sync_core::{DocId, DocKind, EditContext, RecordDoc, RecordId, SchoolId};
use tpsync_accounts::Caller;
use tpsync_reports::AreaReport;
use tpsync_sheets::{
    books_table, equipment_table, preview_import, to_csv, to_xlsx, Cell, LedgerKind, LedgerRecord,
    SheetFormat, Table,
};

use super::blocking;
use super::reports::{gaps_report, view, View};
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
struct ExportQuery {
    township: Option<String>,
    /// For CSV: which table (0-based) of a report of several.
    table: Option<usize>,
    stale_days: Option<u32>,
}

async fn export_report(
    State(st): State<AppState>,
    Authed(caller): Authed,
    Path(file): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let (name, format) = split_file(&file)?;
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
            for s in &g.schools {
                for b in &s.gaps.below_threshold {
                    below.rows.push(vec![
                        Cell::Text(s.school.name.clone()),
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
                for a in &s.gaps.archive {
                    archive.rows.push(vec![
                        Cell::Text(s.school.name.clone()),
                        Cell::Text(a.code.clone()),
                        Cell::Text(a.title.clone()),
                        Cell::Text(a.problem.clone()),
                    ]);
                }
                for l in &s.gaps.stocktake {
                    stock.rows.push(vec![
                        Cell::Text(s.school.name.clone()),
                        Cell::Text(l.session.clone()),
                        Cell::Text(l.item.clone()),
                        Cell::Integer(l.recorded_qty as i64),
                        Cell::Integer(l.counted_qty as i64),
                        Cell::Text(l.result_label.into()),
                        Cell::Text(l.counted_by.clone()),
                    ]);
                }
            }
            let mut dev = Table::new(
                "未同步设备",
                ["学校", "乡镇", "用户", "设备", "距上次同步天数"]
                    .map(String::from)
                    .to_vec(),
            );
            for d in &g.stale_devices {
                dev.rows.push(vec![
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
            vec![below, archive, stock, dev]
        }
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no report '{other}': report.xlsx / report.csv, gaps.xlsx / gaps.csv"),
            ))
        }
    };
    let bytes = match format {
        SheetFormat::Xlsx => to_xlsx(&tables).map_err(ApiError::internal)?,
        SheetFormat::Csv => {
            let i = q.table.unwrap_or(0);
            let t = tables.get(i).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "this report has {} tables (table=0…)",
                    tables.len()
                ))
            })?;
            to_csv(t)
        }
    };
    Ok(file_response(name, format, bytes))
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

async fn export_ledger(
    State(st): State<AppState>,
    Authed(caller): Authed,
    Path((code, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let school: SchoolId = code
        .parse()
        .map_err(|e| ApiError::bad_request(format!("'{code}' is not a school code: {e}")))?;
    let (name, format) = split_file(&file)?;
    let kind = ledger_kind(name)?;
    school_access(&st, &caller, &school, false)?;
    let bytes = blocking(move || {
        let (doc_kind, build): (DocKind, fn(&RecordDoc) -> sync_core::Result<Table>) = match kind {
            LedgerKind::Equipment => (DocKind::Equipment, |d| {
                Ok(equipment_table(&d.list::<EquipmentItem>()?))
            }),
            LedgerKind::Books => (DocKind::Books, |d| Ok(books_table(&d.list::<Book>()?))),
        };
        let id = DocId::school(&school, doc_kind).map_err(ApiError::internal)?;
        let table = st
            .hub
            .read(&id, build)
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
        match format {
            SheetFormat::Xlsx => to_xlsx(&[table]).map_err(ApiError::internal),
            SheetFormat::Csv => Ok(to_csv(&table)),
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
