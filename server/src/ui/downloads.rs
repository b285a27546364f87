//! Download links on the pages: the same spreadsheets as `/v1/exports/…`
//! and `/v1/schools/{code}/ledgers/…` ([`crate::routes::sheets`]), for a
//! browser signed in with its session cookies instead of a bearer token.
//! Same access rules; a refusal is the error page.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::{html, Markup};

use super::school::with_session_cookies;
use super::{enc, Session};
use crate::routes::sheets::{register_file, report_file, ExportQuery, LedgerExportQuery};
use crate::AppState;

/// `/ui/exports/{file}`: a report (`report`, `school`, `gaps`, `freshness`).
pub(crate) async fn report(
    State(st): State<AppState>,
    s: Session,
    Path(file): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Response {
    match report_file(&st, &s.caller, &file, q).await {
        Ok(resp) => with_session_cookies(&s, resp),
        Err(e) => s.error(e),
    }
}

/// `/ui/schools/{code}/ledgers/{file}`: one of a school's registers.
pub(crate) async fn register(
    State(st): State<AppState>,
    s: Session,
    Path((code, file)): Path<(String, String)>,
    Query(q): Query<LedgerExportQuery>,
) -> Response {
    match register_file(st, &s.caller, &code, &file, q).await {
        Ok(resp) => with_session_cookies(&s, resp),
        Err(e) => s.error(e),
    }
}

/// "下载 Excel · CSV" for a report; `query` is the export's query string
/// without the leading `?` (may be empty).
pub(crate) fn report_links(name: &str, query: &str) -> Markup {
    let q = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    html! {
        span.downloads {
            "下载："
            a data-testid=(format!("download-{name}-xlsx")) href=(format!("/ui/exports/{name}.xlsx{q}")) { "Excel" }
            " · "
            a data-testid=(format!("download-{name}-csv")) href=(format!("/ui/exports/{name}.csv{q}")) { "CSV" }
        }
    }
}

/// The school's registers as Excel files.
pub(crate) fn register_links(code: &str) -> Markup {
    let registers = [
        ("equipment", "仪器设备台账"),
        ("books", "图书登记簿"),
        ("stocktake", "盘点记录"),
        ("archive", "档案目录"),
        ("checklist", "对指标与整改计划"),
    ];
    html! {
        p.downloads data-testid="register-downloads" {
            "下载台账（Excel）："
            @for (i, (name, label)) in registers.iter().enumerate() {
                @if i > 0 { " · " }
                a data-testid=(format!("download-{name}")) href=(format!("/ui/schools/{}/ledgers/{name}.xlsx", enc(code))) { (label) }
            }
        }
    }
}
