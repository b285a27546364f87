//! One school's page (`/ui/schools/{code}`): its figures, each stage's
//! R1–R7 and books per student against the thresholds with shortfalls and
//! plans, the verdict, the review state of each section with the buttons
//! the viewer's level may press, the school's gaps, its attachments (附件:
//! photos and scans, with thumbnails) and its devices.
//!
//! An attachment's bytes are served to the browser by
//! `/ui/schools/{code}/blobs/{hash}` ([`blob`]), through the same checks as
//! the JSON API's download ([`serve_blob`]).
//!
//! A button is an HTML form posting to `/ui/schools/{code}/review`, which
//! runs the same step as `POST /v1/schools/{code}/review`
//! ([`apply_review`]) and answers 303 back to the page.

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use sync_core::indicators::{IndicatorResult, StageEvaluation, ValueOrigin, Verdict};
use sync_core::records::{AttachedTo, Attachment, AttachmentStatus, ReviewAction, Section};
use sync_core::{DocId, DocKind, SchoolId};
use tpsync_blobs::BlobHash;
use tpsync_reports::{
    action_label, school_type_label, section_label, ReviewStatus, SchoolReport, SectionState,
};

use super::charts::{self, AgainstThreshold};
use super::downloads::{register_links, report_links};
use super::format::{
    datetime, num, num_opt, num_places, overdue, percent, plan_status_label, raw_opt,
};
use super::gaps::{devices_table, school_gaps};
use super::{enc, harden_blob, Session};
use crate::routes::blobs::serve_blob;
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
    let st2 = st.clone();
    let school2 = school.clone();
    let attachments = match blocking(move || read_attachments(&st2, &school2)).await {
        Ok(a) => a,
        Err(e) => return s.error(e),
    };
    let title = report.meta.name.clone();
    s.page_with(
        status,
        &title,
        school_page(&report, &v, banner.as_ref(), &devices, &attachments, now),
    )
}

fn school_page(
    r: &SchoolReport,
    v: &View,
    banner: Option<&Banner>,
    devices: &[StaleDevice],
    attachments: &[AttachmentRow],
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
            " · " (report_links("school", &format!("school={}", enc(m.code.as_str()))))
        }
        (register_links(m.code.as_str()))
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

        h2 #attachments { "附件" }
        (attachments_section(m.code.as_str(), attachments))

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

/// More active attachments than this are listed inside a closed
/// `<details>` (its thumbnails then load only when it is opened).
const ATTACHMENTS_OPEN_MAX: usize = 12;

/// One attachment record as the page lists it.
struct AttachmentRow {
    attachment: Attachment,
    /// Whether the server holds the file's bytes (the phone may not have
    /// sent them yet).
    stored: bool,
    /// Whether it holds the preview's (a JPEG thumbnail).
    preview_stored: bool,
}

/// The school's attachment records and which bytes are on the server, as
/// `GET /v1/schools/{code}/attachments` reads them (blocking).
fn read_attachments(st: &AppState, school: &SchoolId) -> Result<Vec<AttachmentRow>, ApiError> {
    let id = DocId::school(school, DocKind::Attachments).map_err(ApiError::internal)?;
    let list = st
        .hub
        .read(&id, |d| d.list::<Attachment>())
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let held = |h: &str| -> Result<bool, ApiError> {
        match h.parse::<BlobHash>() {
            Ok(h) => Ok(st.blobs.holds(school, &h)?),
            Err(_) => Ok(false),
        }
    };
    let mut rows = Vec::with_capacity(list.len());
    for (_, a) in list {
        rows.push(AttachmentRow {
            stored: held(&a.sha256)?,
            preview_stored: match &a.preview_sha256 {
                Some(p) => held(p)?,
                None => false,
            },
            attachment: a,
        });
    }
    Ok(rows)
}

/// What an attachment belongs to, in the order the page lists them.
fn attached_to_label(k: AttachedTo) -> (u8, &'static str) {
    match k {
        AttachedTo::SchoolProfile => (0, "学校概况"),
        AttachedTo::EquipmentItem => (1, "仪器设备"),
        AttachedTo::StocktakeSession => (2, "盘点"),
        AttachedTo::Book => (3, "图书"),
        AttachedTo::ArchiveItem => (4, "档案条目"),
        AttachedTo::ArchiveBox => (5, "档案盒"),
        AttachedTo::ChecklistRow => (6, "标准化建设"),
        AttachedTo::ImprovementPlan => (7, "补短板"),
    }
}

/// A file's size for people: `0.5 KB`, `230.4 KB`, `3.2 MB`.
fn file_size(bytes: u64) -> String {
    const MB: u64 = 1 << 20;
    if bytes >= MB {
        format!("{} MB", num_places(bytes as f64 / MB as f64, 1))
    } else if bytes == 0 {
        "0 KB".into()
    } else {
        format!("{} KB", num_places((bytes as f64 / 1024.0).max(0.1), 1))
    }
}

/// The page's path for one of the school's blobs.
fn blob_path(code: &str, hash: &str) -> String {
    format!("/ui/schools/{}/blobs/{}", enc(code), enc(hash))
}

/// The first 12 hex digits of a hash, for a `data-testid`.
fn short_hash(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// The school's attachments: how many, how many the phones have not sent
/// yet, the active ones by what they belong to (thumbnail, name, caption,
/// size, date, a link to the file), and the removed ones with the reasons.
fn attachments_section(code: &str, rows: &[AttachmentRow]) -> Markup {
    let mut active: Vec<&AttachmentRow> = rows
        .iter()
        .filter(|r| r.attachment.status == AttachmentStatus::Active)
        .collect();
    // By kind, newest first, then by name.
    active.sort_by(|a, b| {
        let (a, b) = (&a.attachment, &b.attachment);
        attached_to_label(a.target_kind)
            .0
            .cmp(&attached_to_label(b.target_kind).0)
            .then_with(|| b.taken_on.cmp(&a.taken_on))
            .then_with(|| a.file_name.cmp(&b.file_name))
    });
    let removed: Vec<&Attachment> = rows
        .iter()
        .map(|r| &r.attachment)
        .filter(|a| a.status == AttachmentStatus::Removed)
        .collect();
    let missing = active.iter().filter(|r| !r.stored).count();
    let groups = active.chunk_by(|a, b| a.attachment.target_kind == b.attachment.target_kind);
    let list = html! {
        @for group in groups {
            @let kind = group[0].attachment.target_kind;
            section.att-group data-testid=(format!("attachments-{}", kind.code()))
                data-value=(group.len()) {
                h3 { (attached_to_label(kind).1) span.na { "（" (group.len()) "）" } }
                ul.atts {
                    @for row in group { (attachment_item(code, row)) }
                }
            }
        }
    };
    html! {
        section data-testid="attachments" {
            div.cards.small {
                div.card {
                    div.k { "附件" }
                    div.v data-testid="attachments-count" data-value=(active.len()) {
                        (active.len()) span.n { " 个" }
                    }
                }
                div.card {
                    div.k { "尚未上传" }
                    div.v.bad[missing > 0] data-testid="attachments-missing" data-value=(missing) {
                        (missing) span.n { " 个" }
                    }
                }
            }
            @if active.is_empty() {
                p.na data-testid="no-attachments" { "还没有附件。" }
            } @else if active.len() > ATTACHMENTS_OPEN_MAX {
                details data-testid="attachments-list" {
                    summary { "全部附件（" (active.len()) " 个）" }
                    (list)
                }
            } @else {
                div data-testid="attachments-list" { (list) }
            }
            @if !removed.is_empty() {
                details.removed data-testid="attachments-removed-list" {
                    summary {
                        "已移除 "
                        span data-testid="attachments-removed" data-value=(removed.len()) {
                            (removed.len())
                        }
                    }
                    ul.plain {
                        @for a in &removed {
                            li data-testid=(format!("removed-{}", short_hash(&a.sha256))) {
                                (a.file_name.as_deref().unwrap_or("未命名"))
                                span.na { "（" (attached_to_label(a.target_kind).1) "）" }
                                "："
                                (a.status_reason.as_deref().unwrap_or("未写原因"))
                            }
                        }
                    }
                }
            }
        }
    }
}

fn attachment_item(code: &str, row: &AttachmentRow) -> Markup {
    let a = &row.attachment;
    let name = a.file_name.as_deref().unwrap_or("未命名");
    let alt = a.caption.as_deref().unwrap_or(name);
    let image = a.media_type.starts_with("image/");
    html! {
        li.att data-testid=(format!("attachment-{}", short_hash(&a.sha256)))
            data-kind=(a.target_kind.code()) data-stored=(row.stored) {
            div.thumb {
                @match (&a.preview_sha256, row.preview_stored) {
                    (Some(p), true) => {
                        img src=(blob_path(code, p)) alt=(alt) width="96" height="96"
                            loading="lazy" decoding="async";
                    }
                    _ => { span { "无预览" } }
                }
            }
            div.meta {
                b { (name) }
                @if let Some(c) = &a.caption { div { (c) } }
                div.na {
                    span data-value=(a.size) { (file_size(a.size)) }
                    @if let Some(d) = &a.taken_on { " · 拍摄于 " (d) }
                }
                div {
                    @if row.stored {
                        a href=(blob_path(code, &a.sha256)) {
                            @if image { "查看原图" } @else { "查看原件" }
                        }
                    } @else {
                        span.tag.bad { "尚未上传" }
                    }
                }
            }
        }
    }
}

/// `GET /ui/schools/{code}/blobs/{hash}`: an attachment's bytes (a photo,
/// its preview, a scan) for the signed-in browser, through the checks of
/// `GET /v1/schools/{code}/blobs/{hash}` ([`serve_blob`]: the caller may
/// read the school's attachments, a record of the school names the blob,
/// the school sent it). A refusal is the error page; a `Range` works as
/// there. The answer is made safe to open on this origin by
/// [`harden_blob`].
pub(crate) async fn blob(
    State(st): State<AppState>,
    s: Session,
    Path((code, hash)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let school = match parse_school(&code) {
        Ok(c) => c,
        Err(e) => return s.error(e),
    };
    if hash.parse::<BlobHash>().is_err() {
        return s.error(ApiError::bad_request(format!("“{hash}”不是附件的校验码。")));
    }
    // Only the byte range is passed on: these pages never ask for frames.
    let mut pass = HeaderMap::new();
    if let Some(r) = headers.get(header::RANGE) {
        pass.insert(header::RANGE, r.clone());
    }
    match serve_blob(&st, &s.caller, school.as_str(), &hash, 0, &pass).await {
        Ok(mut resp) => {
            harden_blob(&mut resp);
            with_session_cookies(&s, resp)
        }
        Err(mut e) => {
            match e.status {
                403 => e.detail = format!("学校 {school} 的附件不在您的管理范围内。"),
                404 => {
                    e.detail = "服务器上没有这个文件：手机可能还没有上传，\
                                或这所学校的附件记录里没有它。"
                        .into()
                }
                _ => {}
            }
            s.error(e)
        }
    }
}

/// `resp` with the cookies the session set on the way in (a token pair
/// refreshed on this request): [`Session`] adds them only to the answers
/// it makes itself, so they are taken from one of those.
pub(crate) fn with_session_cookies(s: &Session, mut resp: Response) -> Response {
    let carrier = s.redirect("/ui/");
    for v in carrier.headers().get_all(header::SET_COOKIE) {
        resp.headers_mut().append(header::SET_COOKIE, v.clone());
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_kb_and_mb() {
        assert_eq!(file_size(0), "0 KB");
        assert_eq!(file_size(30), "0.1 KB");
        assert_eq!(file_size(512), "0.5 KB");
        assert_eq!(file_size(235_930), "230.4 KB");
        assert_eq!(file_size(3 << 20), "3 MB");
        assert_eq!(file_size(3_355_443), "3.2 MB");
    }

    #[test]
    fn every_kind_has_its_own_place() {
        let kinds = [
            AttachedTo::SchoolProfile,
            AttachedTo::EquipmentItem,
            AttachedTo::StocktakeSession,
            AttachedTo::Book,
            AttachedTo::ArchiveItem,
            AttachedTo::ArchiveBox,
            AttachedTo::ChecklistRow,
            AttachedTo::ImprovementPlan,
        ];
        let mut order: Vec<u8> = kinds.iter().map(|k| attached_to_label(*k).0).collect();
        order.dedup();
        assert_eq!(order.len(), kinds.len());
    }
}
