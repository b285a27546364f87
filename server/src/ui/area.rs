//! The county's and a township's overview (`/ui/county`,
//! `/ui/townships/{code}`): headline figures, per stage the indicators
//! against their thresholds and their coefficients of variation against
//! the limit, completeness, the townships and the schools.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use tpsync_reports::rollup::{LeftOut, StageRollup};
use tpsync_reports::{AreaReport, Completeness, SchoolRow};

use super::charts::{self, AgainstThreshold};
use super::downloads::report_links;
use super::format::{cv, num, num_opt, raw_opt};
use super::{enc, Session};
use crate::routes::reports::{view, View};
use crate::{ApiError, AppState};

/// `GET /ui/county`
pub(crate) async fn county(State(st): State<AppState>, s: Session) -> Response {
    match view(&s.caller) {
        Ok(View::County) => {}
        Ok(View::Township(t)) => {
            return s.error(ApiError::forbidden(format!(
                "县域概况只对县教育局用户开放；您的乡镇概况在 /ui/townships/{t}。"
            )))
        }
        Ok(View::School(_)) => {
            return s.error(ApiError::forbidden(
                "县域概况只对县教育局用户开放；教师只看本校的页面。",
            ))
        }
        Err(e) => return s.error(e),
    }
    match st.reports.read(|m| m.county()) {
        Ok(r) => {
            let title = format!("{} 县域概况", r.name);
            s.page(&title, area_page(&r, true, &title))
        }
        Err(e) => s.error(e),
    }
}

/// `GET /ui/townships/{code}`
pub(crate) async fn township(
    State(st): State<AppState>,
    s: Session,
    Path(code): Path<String>,
) -> Response {
    let v = match view(&s.caller) {
        Ok(v) => v,
        Err(e) => return s.error(e),
    };
    if !v.sees_township(&code) {
        return s.error(ApiError::forbidden(format!(
            "乡镇 {code} 不归您管理；您只能查看自己负责的乡镇和学校。"
        )));
    }
    match st.reports.read(|m| m.township(&code)) {
        Ok(Some(r)) => {
            let title = format!("{} 乡镇概况", r.name);
            s.page(&title, area_page(&r, false, &title))
        }
        Ok(None) => s.error(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("学校名单中没有乡镇 {code}。"),
        )),
        Err(e) => s.error(e),
    }
}

fn area_page(r: &AreaReport, county: bool, title: &str) -> Markup {
    let students: u64 = r.rows.iter().map(|row| row.students).sum();
    let scope = if county {
        String::new()
    } else {
        format!("?township={}", enc(&r.scope))
    };
    html! {
        h1 data-testid="title" { (title) }
        p.sub {
            "数据版本 " span data-testid="version" data-value=(r.version) { (r.version) }
            " · " a href=(format!("/ui/gaps{scope}")) { "缺漏清单" }
            " · " a href=(format!("/ui/freshness{scope}")) { "同步情况" }
            " · " (report_links("report", scope.trim_start_matches('?')))
        }

        section.cards {
            (card("schools", "学校和教学点", r.schools as f64, "所", None))
            (card("students", "在校学生", students as f64, "人", None))
            @for st in &r.stages {
                @let s = st.stage.code();
                div.card data-testid=(format!("stage-{s}")) {
                    div.k { (st.stage_label) "（计入 " span data-testid=(format!("stage-{s}-schools")) data-value=(st.schools) { (st.schools) } " 所，"
                        span data-testid=(format!("stage-{s}-students")) data-value=(st.students) { (st.students) } " 人）" }
                    div.v {
                        span.ok data-testid=(format!("pass-{s}")) data-value=(st.pass) { (st.pass) }
                        " / " span.bad data-testid=(format!("fail-{s}")) data-value=(st.fail) { (st.fail) }
                        " / " span.na data-testid=(format!("undetermined-{s}")) data-value=(st.undetermined) { (st.undetermined) }
                    }
                    div.n { "达标 / 未达标 / 无法判定" }
                    div.n {
                        "差异系数达标 " span data-testid=(format!("cv-within-{s}")) data-value=(st.cv_within) { (st.cv_within) }
                        " / " (st.cv_judged) " 项"
                    }
                }
            }
        }

        h2 { "上报与审核" }
        p.sub {
            "上报截止日期："
            @match &r.review_due {
                Some(d) => { span data-testid="review-due" data-value=(d) { (d) } }
                None => { span data-testid="review-due" data-missing="true" { "模板中未设" } }
            }
        }
        (completeness("sections", "各校分项（每校 5 项）", &r.sections))
        (completeness("wholes", "学校整体报县验收", &r.wholes))

        @for st in &r.stages {
            (stage_section(st))
        }

        @if county && !r.townships.is_empty() {
            h2 { "各乡镇" }
            div.scroll {
                table data-testid="townships" {
                    thead { tr {
                        th { "乡镇" } th.num { "学校" } th.num { "达标" } th.num { "未达标" }
                        th.num { "无法判定" } th.num { "分项已交" } th.num { "分项已通过" }
                        th.num { "分项应交" } th.num { "报县" } th.num { "已验收" }
                    } }
                    tbody {
                        @for t in &r.townships {
                            tr data-testid=(format!("township-{}", t.code)) data-code=(t.code) {
                                td { a href=(format!("/ui/townships/{}", enc(&t.code))) { (t.name) } }
                                (num_td("schools", t.schools))
                                (num_td("pass", t.pass))
                                (num_td("fail", t.fail))
                                (num_td("undetermined", t.undetermined))
                                (num_td("sections-submitted", t.sections.submitted))
                                (num_td("sections-approved", t.sections.approved))
                                (num_td("sections-expected", t.sections.expected))
                                (num_td("submitted", t.submitted))
                                (num_td("accepted", t.accepted))
                            }
                        }
                    }
                }
            }
        }

        h2 { "各校" }
        (schools_table(&r.rows, county))
    }
}

fn card(id: &str, label: &str, value: f64, unit: &str, note: Option<&str>) -> Markup {
    html! {
        div.card {
            div.k { (label) }
            div.v data-testid=(id) data-value=(value) { (num(value)) span.n { " " (unit) } }
            @if let Some(n) = note { div.n { (n) } }
        }
    }
}

fn num_td(field: &str, n: usize) -> Markup {
    html! { td.num data-field=(field) data-value=(n) { (n) } }
}

fn completeness(id: &str, label: &str, c: &Completeness) -> Markup {
    let items: [(&str, &str, usize); 6] = [
        ("expected", "应交", c.expected),
        ("submitted", "已交", c.submitted),
        (
            "approved",
            if id == "wholes" {
                "已验收"
            } else {
                "已通过"
            },
            c.approved,
        ),
        ("on-time", "按时", c.on_time),
        ("returned", "退回待改", c.returned),
        ("edited", "通过后又修改", c.edited_since_approval),
    ];
    html! {
        h3 { (label) }
        div.cards.small {
            @for (key, name, n) in items {
                div.card {
                    div.k { (name) }
                    div.v data-testid=(format!("{id}-{key}")) data-value=(n) { (n) }
                }
            }
        }
    }
}

fn stage_section(st: &StageRollup) -> Markup {
    let s = st.stage.code();
    let rows: Vec<AgainstThreshold<'_>> = st
        .indicators
        .iter()
        .map(AgainstThreshold::of_rollup)
        .collect();
    html! {
        section data-testid=(format!("stage-section-{s}")) {
            h2 { (st.stage_label) " · 资源配置指标" }
            div.charts {
                (charts::meeting(st))
                (charts::against_threshold(
                    &format!("range-bar-{s}"),
                    "最低值—最高值相对标准（刻度为加权平均）",
                    &rows,
                ))
                (charts::cv_chart(st))
            }
            div.scroll {
                table data-testid=(format!("indicators-{s}")) {
                    thead { tr {
                        th { "指标" } th.num { "标准" } th.num { "达标学校" } th.num { "有数据" }
                        th.num { "最低" } th.num { "平均" } th.num { "最高" }
                        th.num { "差异系数" } th.num { "上限" } th { "判定" }
                    } }
                    tbody {
                        @for i in &st.indicators {
                            @let id = |f: &str| format!("{f}-{s}-{}", i.code);
                            tr data-testid=(id("indicator")) data-code=(i.code) {
                                td.name { (charts::short_label(&i.code)) " " (i.name)
                                    @if let Some(u) = &i.unit { span.na { "（" (u) "）" } } }
                                (opt_td(&id("threshold"), i.threshold, num_opt(i.threshold)))
                                td.num data-testid=(id("meeting")) data-value=(i.schools_meeting) { (i.schools_meeting) }
                                td.num data-testid=(id("with-value")) data-value=(i.schools_with_value) { (i.schools_with_value) }
                                (opt_td(&id("min"), i.min, num_opt(i.min)))
                                (opt_td(&id("mean"), i.cv.mean, num_opt(i.cv.mean)))
                                (opt_td(&id("max"), i.max, num_opt(i.max)))
                                (opt_td(&id("cv"), i.cv.cv, cv(i.cv.cv)))
                                (opt_td(&id("cv-limit"), i.cv_limit, num_opt(i.cv_limit)))
                                td {
                                    @match i.cv_within {
                                        Some(true) => { span.ok { "✓ 不超上限" } }
                                        Some(false) => { span.bad { "✗ 超过上限" } }
                                        None => {
                                            span.na title=[i.cv.reason.as_deref()] {
                                                @if i.cv_limit.is_none() { "不评判" } @else { "无法计算" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (left_out_list("教学点并入中心校", &st.folded, &format!("folded-{s}")))
            (left_out_list("未计入的学校", &st.left_out, &format!("left-out-{s}")))
        }
    }
}

fn opt_td(testid: &str, raw: Option<f64>, shown: String) -> Markup {
    html! {
        td.num data-testid=(testid) data-value=[raw_opt(raw)]
            data-missing=[raw.is_none().then_some("true")] { (shown) }
    }
}

fn left_out_list(label: &str, list: &[LeftOut], testid: &str) -> Markup {
    html! {
        @if !list.is_empty() {
            details data-testid=(testid) open {
                summary { (label) "（" (list.len()) " 所）" }
                ul.plain {
                    @for l in list {
                        li data-code=(l.code) {
                            a href=(format!("/ui/schools/{}", enc(&l.code))) { (l.name) }
                            "：" (l.why)
                        }
                    }
                }
            }
        }
    }
}

/// The schools of an area, each row linking to the school's page.
pub(crate) fn schools_table(rows: &[SchoolRow], with_township: bool) -> Markup {
    html! {
        div.scroll {
            table data-testid="schools-table" {
                thead { tr {
                    th { "学校" }
                    @if with_township { th { "乡镇" } }
                    th { "类型" } th.num { "学生" } th { "评估结论" }
                    th.num { "分项通过" } th { "整体" } th.num { "缺漏" }
                } }
                tbody {
                    @for row in rows {
                        tr data-testid=(format!("school-{}", row.code)) data-code=(row.code)
                            data-students=(row.students) data-gaps=(row.gaps) {
                            td.name {
                                a href=(format!("/ui/schools/{}", enc(&row.code))) { (row.name) }
                                br; span.na { (row.code) }
                            }
                            @if with_township {
                                td { a href=(format!("/ui/townships/{}", enc(&row.township))) { (row.township_name) } }
                            }
                            td.wrap {
                                (row.school_type_label)
                                @if let Some(tp) = &row.teaching_point {
                                    br; span.tag.tp data-testid="teaching-point" { "教学点" } " " span.na { (tp) }
                                }
                            }
                            td.num { (row.students) }
                            td {
                                @for (stage, label) in &row.verdicts {
                                    span.tag.ok[*label == "达标"].bad[*label == "未达标"]
                                        data-stage=(stage.code()) data-verdict=(label) {
                                        (tpsync_reports::rollup::stage_label(*stage)) " " (label)
                                    }
                                }
                            }
                            td.num { (row.sections_approved) "/5" }
                            td { (row.whole_label) }
                            td.num {
                                @if row.gaps > 0 {
                                    a href=(format!("/ui/schools/{}#gaps", enc(&row.code))) { (row.gaps) }
                                } @else { "0" }
                            }
                        }
                    }
                }
            }
        }
    }
}
