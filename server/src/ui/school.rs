//! One school's page (`/ui/schools/{code}`): its figures, each stage's
//! R1–R7 and books per student against the thresholds with shortfalls and
//! plans, the verdict, the review state of each section with the buttons
//! the viewer's level may press, the school's gaps and its devices.
//!
//! A button is an HTML form posting to `/ui/schools/{code}/review`, which
//! runs the same step as `POST /v1/schools/{code}/review`
//! ([`apply_review`]) and answers 303 back to the page.

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use sync_core::indicators::{IndicatorResult, StageEvaluation, ValueOrigin, Verdict};
use sync_core::records::{ReviewAction, Section};
use sync_core::SchoolId;
use tpsync_reports::{
    action_label, school_type_label, section_label, ReviewStatus, SchoolReport, SectionState,
};

use super::charts::{self, AgainstThreshold};
use super::format::{datetime, num, num_opt, overdue, percent, plan_status_label, raw_opt};
use super::gaps::{devices_table, school_gaps};
use super::{enc, Session};
use crate::routes::blocking;
use crate::routes::reports::{apply_review, devices_in, view, ReviewStep, StaleDevice, View};
use crate::{now_ms, ApiError, AppState};

/// A message at the top of the page after a form.
pub(crate) enum Banner {
    Done(String),
    Failed(String),
}

#[derive(Deserialize)]
pub(crate) struct PageQuery {
    /// `<action>.<section>` of a step just done.
    done: Option<String>,
}

fn choice<T: serde::de::DeserializeOwned>(code: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(code.to_owned())).ok()
}

/// `GET /ui/schools/{code}`
pub(crate) async fn page(
    State(st): State<AppState>,
    s: Session,
    Path(code): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let banner = q.done.as_deref().and_then(|d| {
        let (a, sec) = d.split_once('.')?;
        let (a, sec) = (choice::<ReviewAction>(a)?, choice::<Section>(sec)?);
        Some(Banner::Done(format!(
            "已{}「{}」。",
            action_label(a),
            section_label(sec)
        )))
    });
    render(&st, &s, &code, banner, StatusCode::OK).await
}

fn parse_school(code: &str) -> Result<SchoolId, ApiError> {
    code.parse()
        .map_err(|_| ApiError::bad_request(format!("“{code}”不是学校标识码。")))
}

/// The page of `code` for the session's user, or the refusal.
pub(crate) async fn render(
    st: &AppState,
    s: &Session,
    code: &str,
    banner: Option<Banner>,
    status: StatusCode,
) -> Response {
    let school = match parse_school(code) {
        Ok(c) => c,
        Err(e) => return s.error(e),
    };
    let v = match view(&s.caller) {
        Ok(v) => v,
        Err(e) => return s.error(e),
    };
    let report = st.reports.read(|m| {
        if !v.sees_school(m, &school) {
            return Err(ApiError::forbidden(format!(
                "学校 {school} 不在您的管理范围内；您只能查看自己负责的学校。"
            )));
        }
        m.school(&school).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("学校名单中没有 {school}。"),
            )
        })
    });
    let report = match report {
        Ok(Ok(r)) => r,
        Ok(Err(e)) | Err(e) => return s.error(e),
    };
    let st2 = st.clone();
    let devices = match blocking(move || crate::reports::devices_seen(&st2)).await {
        Ok(d) => d,
        Err(e) => return s.error(e),
    };
    let now = now_ms();
    let township = report.meta.township.clone();
    let devices: Vec<StaleDevice> = match st
        .reports
        .read(|m| devices_in(m, devices, Some(&township), None, now))
    {
        Ok(d) => d
            .into_iter()
            .filter(|d| d.device.school.as_deref() == Some(school.as_str()))
            .collect(),
        Err(e) => return s.error(e),
    };
    let title = report.meta.name.clone();
    s.page_with(
        status,
        &title,
        school_page(&report, &v, banner.as_ref(), &devices, now),
    )
}

fn school_page(
    r: &SchoolReport,
    v: &View,
    banner: Option<&Banner>,
    devices: &[StaleDevice],
    now: u64,
) -> Markup {
    let m = &r.meta;
    let e = &r.evaluation;
    html! {
        h1 data-testid="title" data-code=(m.code) { (m.name) }
        p.sub {
            (m.code) " · " (school_type_label(m.school_type)) " · "
            @if v.sees_township(&m.township) {
                a href=(format!("/ui/townships/{}", enc(&m.township))) { (m.township_name) }
            } @else {
                (m.township_name)
            }
            " · 数据版本 " span data-testid="version" data-value=(r.version) { (r.version) }
        }
        @match banner {
            Some(Banner::Done(t)) => { p.banner.ok role="status" data-testid="banner-ok" { (t) } }
            Some(Banner::Failed(t)) => { p.banner.err role="alert" data-testid="banner-error" { (t) } }
            None => {}
        }

        h2 { "基本情况" }
        div.cards {
            @for stage in &e.stages {
                div.card {
                    div.k { (tpsync_reports::rollup::stage_label(stage.stage)) "学生" }
                    div.v data-testid=(format!("students-{}", stage.stage.code())) data-value=(stage.students) {
                        (stage.students) span.n { " 人" }
                    }
                }
            }
            div.card {
                div.k { "设备台账" }
                div.v data-testid="equipment-items" data-value=(r.equipment_items) { (r.equipment_items) span.n { " 条" } }
            }
            div.card {
                div.k { "图书" }
                div.v data-testid="books-titles" data-value=(r.books_titles) { (r.books_titles) span.n { " 种" } }
            }
        }
        @if let Some(tp) = &e.teaching_point {
            p data-testid="teaching-point" { span.tag.tp { "教学点" } " " (tp.explanation) }
        }
        @if e.stages.is_empty() {
            p.na { "还没有学生数，无法按学段评估。" }
        }
        @for n in &e.notes { p.na { (n) } }

        @for stage in &e.stages {
            (stage_section(stage, now))
        }

        h2 #review { "审核" }
        (review_section(r, v))

        h2 #gaps { "缺漏" }
        @if r.gaps.is_empty() {
            p.ok data-testid="no-gaps" { "没有缺漏。" }
        } @else {
            (school_gaps(&r.gaps, now))
        }

        h2 #devices { "设备同步" }
        (devices_table(devices, false))
    }
}

fn verdict_code(v: &Verdict) -> &'static str {
    match v {
        Verdict::Pass { .. } => "pass",
        Verdict::Fail { .. } => "fail",
        Verdict::Undetermined { .. } => "undetermined",
    }
}

fn stage_section(stage: &StageEvaluation, now: u64) -> Markup {
    let s = stage.stage.code();
    let rows: Vec<&IndicatorResult> = stage
        .indicators
        .iter()
        .chain(std::iter::once(&stage.books))
        .collect();
    let chart_rows: Vec<AgainstThreshold<'_>> = rows
        .iter()
        .map(|i| AgainstThreshold {
            code: &i.code,
            name: &i.name,
            threshold: i.threshold,
            low: i.value,
            high: i.value,
            mark: None,
            from_zero: true,
        })
        .collect();
    let label = tpsync_reports::rollup::stage_label(stage.stage);
    html! {
        section data-testid=(format!("stage-section-{s}")) {
            h2 { (label) " · 资源配置指标" }
            p data-testid=(format!("verdict-{s}")) data-value=(verdict_code(&stage.verdict)) {
                "评估结论："
                @match &stage.verdict {
                    Verdict::Pass { met, near_miss } => {
                        span.tag.ok { "达标" }
                        " 7 项中 " (met) " 项达到标准"
                        @if let Some(n) = near_miss {
                            "；" (n.code) " 未达到"
                            @if let Some(r) = n.ratio { "，为标准的 " (percent(r)) }
                        }
                    }
                    Verdict::Fail { reason, .. } => {
                        span.tag.bad { "未达标" } " " (reason)
                    }
                    Verdict::Undetermined { missing, met, .. } => {
                        span.tag { "无法判定" }
                        " 已有数据的指标中 " (met) " 项达到标准；缺少："
                        @for (k, m) in missing.iter().enumerate() {
                            @if k > 0 { "；" }
                            (m.code) "（" (m.reason) "）"
                        }
                    }
                }
                @if stage.share < 1.0 {
                    span.na { "（全校数字按 " (percent(stage.share)) " 计入本学段）" }
                }
            }
            div.scroll {
                table data-testid=(format!("school-indicators-{s}")) {
                    thead { tr {
                        th { "指标" } th.num { "数值" } th.num { "标准" } th { "达标" }
                        th { "差距" } th { "整改计划" } th { "依据" }
                    } }
                    tbody {
                        @for i in &rows {
                            @let id = |f: &str| format!("{f}-{s}-{}", i.code);
                            tr data-testid=(id("ind")) data-code=(i.code) {
                                td.name {
                                    (charts::short_label(&i.code)) " " (i.name)
                                    @if let Some(u) = &i.unit { span.na { "（" (u) "）" } }
                                }
                                td.num data-testid=(id("value")) data-value=[raw_opt(i.value)]
                                    data-missing=[i.value.is_none().then_some("true")] {
                                    (num_opt(i.value))
                                    @match i.source {
                                        ValueOrigin::Typed => { br; span.tag { "填报" } }
                                        ValueOrigin::Computed => { br; span.tag { "自动计算" } }
                                        ValueOrigin::Missing => {}
                                    }
                                    @if let (ValueOrigin::Typed, Some(c)) = (i.source, i.computed) {
                                        br; span.na { "计算值 " (num(c)) }
                                    }
                                }
                                td.num data-testid=(id("threshold")) data-value=[raw_opt(i.threshold)] {
                                    (num_opt(i.threshold))
                                }
                                td data-testid=(id("meets")) data-value=[i.meets.map(|b| b.to_string())] {
                                    @match i.meets {
                                        Some(true) => { span.ok { "✓ 达标" } }
                                        Some(false) => { span.bad { "✗ 未达标" } }
                                        None => { span.na { "—" } }
                                    }
                                }
                                td.wrap {
                                    @if let Some(sf) = &i.shortfall {
                                        span data-testid=(id("shortfall")) data-value=(sf.amount) {
                                            "还差 " (num(sf.amount)) " " (sf.unit)
                                        }
                                        @if let Some(r) = i.ratio { br; span.na { "达到标准的 " (percent(r)) } }
                                    }
                                }
                                td.wrap {
                                    @if i.plans.is_empty() && i.meets == Some(false) {
                                        span.tag.bad { "无整改计划" }
                                    }
                                    @for p in &i.plans {
                                        div data-plan=(p.id) {
                                            (p.action)
                                            span.na {
                                                "（期限 " (p.due_on.as_deref().unwrap_or("未定"))
                                                "，" (plan_status_label(p.status)) "）"
                                            }
                                            @if overdue(p.due_on.as_deref(), p.status, now) {
                                                span.tag.bad data-testid="overdue" { "已逾期" }
                                            }
                                        }
                                    }
                                }
                                td.wrap {
                                    span.na { (i.basis) }
                                    @for n in &i.notes { br; span.na { (n) } }
                                }
                            }
                        }
                    }
                }
            }
            (charts::against_threshold(
                &format!("ratio-bar-{s}"),
                "各指标相对标准",
                &chart_rows,
            ))
            @for n in &stage.notes { p.na { (n) } }
        }
    }
}

/// The steps the viewer may take on a section now: (action, needs a
/// comment, the button's words).
fn actions(
    v: &View,
    sec: &SectionState,
    all_approved: bool,
    ready: bool,
) -> Vec<(ReviewAction, bool, &'static str)> {
    use ReviewAction::*;
    use ReviewStatus::*;
    let whole = sec.section == Section::Whole;
    match (v, whole, sec.status) {
        (View::Township(_), false, Submitted) => {
            vec![(Approve, false, "通过"), (Return, true, "退回")]
        }
        (View::Township(_), false, Approved) => vec![(Revoke, false, "撤销通过")],
        (View::Township(_), true, Draft | Returned) if all_approved => {
            vec![(Submit, false, "报县验收")]
        }
        (View::County, true, Submitted) => vec![(Accept, false, "验收"), (Return, true, "退回")],
        (View::County, true, Accepted) => vec![(Revoke, false, "撤销验收")],
        (View::School(_), false, Draft | Returned) if ready => vec![(Submit, false, "提交审核")],
        _ => vec![],
    }
}

/// The status's code (`submitted`, `approved`…), as the JSON API writes it.
fn status_code(s: ReviewStatus) -> &'static str {
    match s {
        ReviewStatus::Draft => "draft",
        ReviewStatus::Submitted => "submitted",
        ReviewStatus::Returned => "returned",
        ReviewStatus::Approved => "approved",
        ReviewStatus::Accepted => "accepted",
    }
}

fn review_section(r: &SchoolReport, v: &View) -> Markup {
    let code = r.meta.code.as_str();
    let all_approved = r
        .review
        .iter()
        .filter(|s| s.section != Section::Whole)
        .all(|s| s.status == ReviewStatus::Approved);
    let problems = |sec: Section| -> &[String] {
        r.submission_problems
            .iter()
            .find(|(s, _)| *s == sec)
            .map(|(_, p)| p.as_slice())
            .unwrap_or(&[])
    };
    html! {
        div.review-list data-testid="review" {
            @for sec in &r.review {
                @let sc = sec.section.code();
                @let ps = problems(sec.section);
                div.review-item data-testid=(format!("review-{sc}")) data-section=(sc)
                    data-value=(status_code(sec.status)) {
                    div.head {
                        b { (sec.label) }
                        span.tag.ok[matches!(sec.status, ReviewStatus::Approved | ReviewStatus::Accepted)]
                            .bad[sec.status == ReviewStatus::Returned] { (sec.status_label) }
                        @if let Some(ms) = sec.first_submitted_ms {
                            span.na { "首次提交 " (datetime(ms)) }
                        }
                    }
                    @if sec.edited_since_approval {
                        p {
                            span.tag.bad data-testid=(format!("edited-{sc}")) { "通过后又有修改" }
                        }
                    }
                    @if let Some(c) = &sec.return_comment {
                        p data-testid=(format!("return-comment-{sc}")) { "退回意见：" (c) }
                    }
                    @if matches!(sec.status, ReviewStatus::Draft | ReviewStatus::Returned) && !ps.is_empty() {
                        ul.plain {
                            @for p in ps { li.na { (p) } }
                        }
                    }
                    @let acts = actions(v, sec, all_approved, ps.is_empty());
                    @if !acts.is_empty() {
                        div.actions {
                            @for (action, comment, words) in acts {
                                @let ac = action.code();
                                form method="post" action=(format!("/ui/schools/{}/review", enc(code)))
                                    data-testid=(format!("{ac}-{sc}")) {
                                    input type="hidden" name="section" value=(sc);
                                    input type="hidden" name="action" value=(ac);
                                    @if comment {
                                        textarea name="comment" required maxlength="500"
                                            placeholder="写明要改什么（必填）" aria-label="退回意见" {}
                                    }
                                    button type="submit" .secondary[comment] { (words) }
                                }
                            }
                        }
                    }
                }
            }
        }
        details {
            summary { "审核记录" }
            ul.plain data-testid="review-events" {
                @for sec in &r.review {
                    @for ev in &sec.events {
                        li {
                            (datetime(ev.at_ms)) " " (ev.by_user) " "
                            (action_label(ev.action)) "「" (sec.label) "」"
                            @if let Some(c) = &ev.comment { "：" (c) }
                            @if !ev.applied {
                                span.tag.bad { "未生效" }
                                @if let Some(w) = &ev.not_applied_because { span.na { (w) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct ReviewForm {
    section: Option<String>,
    action: Option<String>,
    comment: Option<String>,
}

/// `POST /ui/schools/{code}/review`: one review step, as
/// `POST /v1/schools/{code}/review` takes it.
pub(crate) async fn review(
    State(st): State<AppState>,
    s: Session,
    Path(code): Path<String>,
    form: Result<Form<ReviewForm>, FormRejection>,
) -> Response {
    let failed = |msg: String, status| {
        let st = st.clone();
        let code = code.clone();
        let s = &s;
        async move { render(&st, s, &code, Some(Banner::Failed(msg)), status).await }
    };
    let school = match parse_school(&code) {
        Ok(c) => c,
        Err(e) => return s.error(e),
    };
    let Ok(Form(f)) = form else {
        return failed("表单没有收到，请重试。".into(), StatusCode::BAD_REQUEST).await;
    };
    let section = f.section.as_deref().and_then(choice::<Section>);
    let action = f.action.as_deref().and_then(choice::<ReviewAction>);
    let (Some(section), Some(action)) = (section, action) else {
        return failed(
            "表单内容不完整，请从页面上的按钮操作。".into(),
            StatusCode::BAD_REQUEST,
        )
        .await;
    };
    let comment = f
        .comment
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty());
    if action == ReviewAction::Return && comment.is_none() {
        return failed(
            format!("退回「{}」时请写明意见：要改什么。", section_label(section)),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let step = ReviewStep {
        section,
        action,
        comment,
    };
    let caller = s.caller.clone();
    let st2 = st.clone();
    let school2 = school.clone();
    match blocking(move || apply_review(&st2, &caller, &school2, &step)).await {
        Ok(_) => s.redirect(&format!(
            "/ui/schools/{}?done={}.{}#review",
            enc(school.as_str()),
            action.code(),
            section.code()
        )),
        Err(e) if e.status() == StatusCode::FORBIDDEN => s.error(e),
        Err(e) => {
            let status = e.status();
            failed(
                format!(
                    "没有执行「{}」{}：{}",
                    action_label(action),
                    section_label(section),
                    e.detail
                ),
                status,
            )
            .await
        }
    }
}
