//! What a township clerk chases every week: the gaps page (`/ui/gaps`:
//! indicators below threshold with their plans and due dates, archive
//! items missing, stocktake discrepancies, devices not synced for N days)
//! and the freshness page (`/ui/freshness`: every school's devices and
//! their last sync). Teachers find both on their school's page.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;
use tpsync_reports::SchoolGaps;

use super::downloads::report_links;
use super::format::{date_passed, datetime, num_opt, overdue, plan_status_label};
use super::{enc, Session};
use crate::routes::blocking;
use crate::routes::reports::{devices_in, gaps_report, view, StaleDevice, View};
use crate::{now_ms, ApiError, AppState};

/// Default for "not synced for N days".
const DEFAULT_DAYS: u32 = 7;

#[derive(Deserialize)]
pub(crate) struct AreaQuery {
    township: Option<String>,
    days: Option<String>,
}

impl AreaQuery {
    fn township(&self) -> Option<String> {
        self.township
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
    }

    fn days(&self) -> u32 {
        self.days
            .as_deref()
            .and_then(|d| d.trim().parse::<u32>().ok())
            .unwrap_or(DEFAULT_DAYS)
            .min(3650)
    }
}

/// The townships a county user may filter by (code, name).
fn townships(st: &AppState) -> Vec<(String, String)> {
    st.reports
        .read(|m| {
            m.township_codes()
                .map(|(c, n)| (c.clone(), n.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn filter_form(
    action: &str,
    v: &View,
    all: &[(String, String)],
    township: Option<&str>,
    days: Option<u32>,
) -> Markup {
    html! {
        form.filters method="get" action=(action) data-testid="filters" {
            @if matches!(v, View::County) {
                label { "乡镇 "
                    select name="township" {
                        option value="" selected[township.is_none()] { "全县" }
                        @for (code, name) in all {
                            option value=(code) selected[township == Some(code.as_str())] { (name) }
                        }
                    }
                }
            }
            @if let Some(d) = days {
                label { "未同步超过 " input type="number" name="days" min="0" max="3650" value=(d); " 天" }
            }
            button type="submit" { "筛选" }
        }
    }
}

/// `GET /ui/gaps?township=&days=7`
pub(crate) async fn gaps(
    State(st): State<AppState>,
    s: Session,
    Query(q): Query<AreaQuery>,
) -> Response {
    let v = match view(&s.caller) {
        Ok(v) => v,
        Err(e) => return s.error(e),
    };
    if let View::School(code) = &v {
        return s.redirect(&format!("/ui/schools/{}#gaps", enc(code)));
    }
    let township = q.township();
    if let Some(t) = &township {
        if !v.sees_township(t) {
            return s.error(ApiError::forbidden(format!(
                "乡镇 {t} 不归您管理；您只能查看自己负责的乡镇。"
            )));
        }
    }
    let days = q.days();
    let report = match gaps_report(&st, &s.caller, township.clone(), Some(days)).await {
        Ok(r) => r,
        Err(e) => return s.error(e),
    };
    let now = now_ms();
    let all = townships(&st);
    let area_name = area_name(&v, township.as_deref(), &all);
    let below: usize = report
        .schools
        .iter()
        .map(|g| g.gaps.below_threshold.len())
        .sum();
    let overdue_n: usize = report
        .schools
        .iter()
        .flat_map(|g| &g.gaps.below_threshold)
        .filter(|b| date_passed(b.due_on.as_deref(), now))
        .count();
    let no_plan: usize = report
        .schools
        .iter()
        .flat_map(|g| &g.gaps.below_threshold)
        .filter(|b| b.no_plan)
        .count();
    let archive: usize = report.schools.iter().map(|g| g.gaps.archive.len()).sum();
    let stocktake: usize = report.schools.iter().map(|g| g.gaps.stocktake.len()).sum();
    let title = format!("{area_name} 缺漏清单");
    let body = html! {
        h1 data-testid="title" { (title) }
        (filter_form("/ui/gaps", &v, &all, township.as_deref(), Some(days)))
        p.sub { (report_links("gaps", &area_query(township.as_deref(), Some(days)))) }
        div.cards {
            (count_card("gap-schools", "有缺漏的学校", report.schools.len()))
            (count_card("gap-below", "指标低于标准", below))
            (count_card("gap-overdue", "整改已逾期", overdue_n))
            (count_card("gap-no-plan", "无整改计划", no_plan))
            (count_card("gap-archive", "档案未归档", archive))
            (count_card("gap-stocktake", "盘点不符", stocktake))
            (count_card("gap-stale", &format!("{days} 天以上未同步的设备"), report.stale_devices.len()))
        }
        h2 { "各校缺漏" }
        @if report.schools.is_empty() {
            p.ok { "没有缺漏。" }
        }
        @for g in &report.schools {
            section data-testid=(format!("gaps-{}", g.school.code)) data-code=(g.school.code) {
                h3 {
                    a href=(format!("/ui/schools/{}#gaps", enc(g.school.code.as_str()))) { (g.school.name) }
                    " " span.na { (g.school.township_name) }
                }
                (school_gaps(&g.gaps, now))
            }
        }
        h2 { (days) " 天以上未同步的设备" }
        (devices_table(&report.stale_devices, true))
    };
    s.page(&title, body)
}

fn area_name(v: &View, township: Option<&str>, all: &[(String, String)]) -> String {
    let t = match (v, township) {
        (_, Some(t)) => Some(t),
        (View::Township(t), None) => Some(t.as_str()),
        _ => None,
    };
    match t {
        Some(t) => all
            .iter()
            .find(|(c, _)| c == t)
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| t.to_owned()),
        None => "全县".into(),
    }
}

fn count_card(id: &str, label: &str, n: usize) -> Markup {
    html! {
        div.card {
            div.k { (label) }
            div.v .bad[n > 0] data-testid=(id) data-value=(n) { (n) }
        }
    }
}

/// One school's gaps: below threshold (with plans), archive, stocktake.
pub(crate) fn school_gaps(g: &SchoolGaps, now: u64) -> Markup {
    html! {
        @if !g.below_threshold.is_empty() {
            div.scroll {
                table data-testid="below-threshold" {
                    thead { tr {
                        th { "指标" } th.num { "数值" } th.num { "标准" } th { "差距" }
                        th { "整改计划" } th { "最早期限" }
                    } }
                    tbody {
                        @for b in &g.below_threshold {
                            @let late = date_passed(b.due_on.as_deref(), now);
                            tr data-code=(b.code) data-stage=(b.stage.code()) data-overdue=[late.then_some("true")] {
                                td.name { (tpsync_reports::rollup::stage_label(b.stage)) " " (b.code) " " (b.name) }
                                td.num { (num_opt(b.value)) }
                                td.num { (num_opt(b.threshold)) }
                                td.wrap { (b.shortfall.as_deref().unwrap_or("—")) }
                                td.wrap {
                                    @if b.no_plan { span.tag.bad { "无整改计划" } }
                                    @for p in &b.plans {
                                        div {
                                            (p.action) span.na { "（期限 " (p.due_on.as_deref().unwrap_or("未定")) "，" (plan_status_label(p.status)) "）" }
                                            @if overdue(p.due_on.as_deref(), p.status, now) { span.tag.bad { "已逾期" } }
                                        }
                                    }
                                }
                                td {
                                    (b.due_on.as_deref().unwrap_or("—"))
                                    @if late { " " span.tag.bad data-testid="overdue" { "已逾期" } }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if !g.archive.is_empty() {
            div.scroll {
                table data-testid="archive-gaps" {
                    thead { tr { th { "档案" } th { "名称" } th { "问题" } } }
                    tbody {
                        @for a in &g.archive {
                            tr data-code=(a.code) { td { (a.code) } td.name { (a.title) } td { span.tag.bad { (a.problem) } } }
                        }
                    }
                }
            }
        }
        @if !g.stocktake.is_empty() {
            div.scroll {
                table data-testid="stocktake-gaps" {
                    thead { tr {
                        th { "盘点" } th { "物品" } th.num { "账面" } th.num { "实点" } th { "结果" } th { "清点设备" }
                    } }
                    tbody {
                        @for l in &g.stocktake {
                            tr {
                                td { (l.session) @if l.session_open { " " span.tag { "进行中" } } }
                                td.wrap { (l.item) }
                                td.num { (l.recorded_qty) }
                                td.num { (l.counted_qty) }
                                td { span.tag.bad { (l.result_label) } }
                                td { (l.counted_by) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Devices and their last sync; "从未同步" for never.
pub(crate) fn devices_table(devices: &[StaleDevice], show_school: bool) -> Markup {
    html! {
        @if devices.is_empty() {
            p.na data-testid="no-devices" { "没有登录过的设备。" }
        } @else {
            div.scroll {
                table data-testid="devices" {
                    thead { tr {
                        @if show_school { th { "学校" } th { "乡镇" } }
                        th { "设备" } th { "用户" } th { "最近同步" } th.num { "天数" } th { "最近联系" }
                    } }
                    tbody {
                        @for d in devices {
                            tr data-testid=(format!("device-{}", d.device.device)) data-device=(d.device.device)
                                data-days=[d.days_since_sync.map(|x| x.to_string())]
                                data-never=[d.device.last_sync_ms.is_none().then_some("true")] {
                                @if show_school {
                                    td {
                                        @match &d.device.school {
                                            Some(c) => { a href=(format!("/ui/schools/{}", enc(c))) { (d.school_name.as_deref().unwrap_or(c)) } }
                                            None => { "—" }
                                        }
                                    }
                                    td { (d.township.as_deref().unwrap_or("—")) }
                                }
                                td {
                                    (d.device.device)
                                    @if d.device.device.starts_with("web-") { " " span.tag { "浏览器" } }
                                }
                                td { (d.device.username) }
                                td {
                                    @match d.device.last_sync_ms {
                                        Some(ms) => { (datetime(ms as i64)) }
                                        None => { span.bad { "从未同步" } }
                                    }
                                }
                                td.num {
                                    @match d.days_since_sync { Some(x) => { (x) } None => { "—" } }
                                }
                                td { (datetime(d.device.last_seen_ms as i64)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /ui/freshness?township=`: every school of the area with its
/// devices and their last sync, schools without any device included.
pub(crate) async fn freshness(
    State(st): State<AppState>,
    s: Session,
    Query(q): Query<AreaQuery>,
) -> Response {
    let v = match view(&s.caller) {
        Ok(v) => v,
        Err(e) => return s.error(e),
    };
    let area = match (&v, q.township()) {
        (View::School(code), _) => {
            return s.redirect(&format!("/ui/schools/{}#devices", enc(code)))
        }
        (View::County, t) => t,
        (View::Township(own), None) => Some(own.clone()),
        (View::Township(own), Some(t)) if &t == own => Some(t),
        (View::Township(_), Some(t)) => {
            return s.error(ApiError::forbidden(format!(
                "乡镇 {t} 不归您管理；您只能查看自己负责的乡镇。"
            )))
        }
    };
    let st2 = st.clone();
    let devices = match blocking(move || crate::reports::devices_seen(&st2)).await {
        Ok(d) => d,
        Err(e) => return s.error(e),
    };
    let now = now_ms();
    let listed = st.reports.read(|m| {
        let devices = devices_in(m, devices, area.as_deref(), None, now);
        let rows = match area.as_deref() {
            Some(t) => m.township(t).map(|r| r.rows.clone()).unwrap_or_default(),
            None => m.county().rows.clone(),
        };
        let schools: Vec<(String, String, String)> = rows
            .into_iter()
            .map(|r| (r.code, r.name, r.township_name))
            .collect();
        (devices, schools)
    });
    let (devices, schools) = match listed {
        Ok(x) => x,
        Err(e) => return s.error(e),
    };
    let mut by_school: BTreeMap<&str, Vec<&StaleDevice>> = BTreeMap::new();
    for d in &devices {
        if let Some(c) = &d.device.school {
            by_school.entry(c.as_str()).or_default().push(d);
        }
    }
    let without: Vec<&(String, String, String)> = schools
        .iter()
        .filter(|(c, _, _)| !by_school.contains_key(c.as_str()))
        .collect();
    let never = devices
        .iter()
        .filter(|d| d.device.last_sync_ms.is_none())
        .count();
    let all = townships(&st);
    let title = format!("{} 同步情况", area_name(&v, area.as_deref(), &all));
    let body = html! {
        h1 data-testid="title" { (title) }
        (filter_form("/ui/freshness", &v, &all, area.as_deref(), None))
        p.sub { (report_links("freshness", &area_query(area.as_deref(), None))) }
        div.cards {
            (count_card("fresh-devices", "教师设备", devices.len()))
            (count_card("fresh-never", "从未同步", never))
            (count_card("fresh-no-device", "没有设备的学校", without.len()))
        }
        p.sub { "按最近同步时间排列，最久没有同步的在前。" }
        (devices_table(&devices, true))
        @if !without.is_empty() {
            h2 { "没有登录过设备的学校" }
            ul.plain data-testid="schools-without-devices" {
                @for (code, name, tw) in &without {
                    li data-code=(code) { a href=(format!("/ui/schools/{}", enc(code))) { (name) } " " span.na { (tw) } }
                }
            }
        }
    };
    s.page(&title, body)
}

/// The query string of an export of the same area: `township=…&stale_days=…`.
fn area_query(township: Option<&str>, days: Option<u32>) -> String {
    let mut parts = Vec::new();
    if let Some(t) = township {
        parts.push(format!("township={}", enc(t)));
    }
    if let Some(d) = days {
        parts.push(format!("stale_days={d}"));
    }
    parts.join("&")
}
