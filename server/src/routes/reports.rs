//! Reports and the review workflow for township and county users (and a
//! teacher's own school): indicators, coefficients of variation,
//! completeness, gaps, sync freshness; submit / approve / return / accept /
//! revoke.
//!
//! Every report is read from the read model ([`crate::reports`]). A review
//! step is a new event in the school's review document, written by the
//! server under the document's lock after the step is checked against the
//! events already there, then announced like any synced change.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sync_core::records::{ReviewAction, ReviewEvent, Section};
use sync_core::{DocId, DocKind, EditContext, RecordDoc, RecordId, SchoolId};
use tpsync_accounts::{Caller, Role};
use tpsync_reports::{
    level_for, section_kind, section_label, section_state, AreaReport, DeviceSeen, Level,
    ReadModel, ReviewStatus, SchoolMeta, SchoolReport, SectionState,
};

use super::blocking;
use crate::auth::Authed;
use crate::{now_ms, ApiError, AppState, Changed};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/reports/county", get(county))
        .route("/reports/townships/{code}", get(township))
        .route("/reports/schools/{code}", get(school))
        .route("/reports/gaps", get(gaps))
        .route("/reports/freshness", get(freshness))
        .route("/schools/{code}/review", post(review_school))
        .route("/schools/{code}/sections/{section}/changes", get(changes))
        .route("/townships/{code}/review", post(review_township))
}

/// What a caller may see.
#[derive(Clone, Debug)]
pub(crate) enum View {
    County,
    Township(String),
    School(String),
}

pub(crate) fn view(caller: &Caller) -> Result<View, ApiError> {
    let unit = caller.unit.clone().unwrap_or_default();
    match caller.role {
        Role::County => Ok(View::County),
        Role::Township => Ok(View::Township(unit)),
        Role::Teacher => Ok(View::School(unit)),
        Role::Admin => Err(ApiError::forbidden(
            "administrators manage accounts and see no reports; sign in as a township or county user",
        )),
    }
}

impl View {
    pub(crate) fn sees_school(&self, model: &ReadModel, school: &SchoolId) -> bool {
        match self {
            View::County => true,
            View::Township(t) => model.township_of(school) == Some(t.as_str()),
            View::School(s) => s == school.as_str(),
        }
    }

    pub(crate) fn sees_township(&self, township: &str) -> bool {
        match self {
            View::County => true,
            View::Township(t) => t == township,
            View::School(_) => false,
        }
    }

    fn level(&self) -> Level {
        match self {
            View::County => Level::County,
            View::Township(_) => Level::Township,
            View::School(_) => Level::School,
        }
    }
}

fn parse_school(code: &str) -> Result<SchoolId, ApiError> {
    code.parse()
        .map_err(|e| ApiError::bad_request(format!("'{code}' is not a school code: {e}")))
}

fn not_found(what: String) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", what)
}

async fn county(
    State(st): State<AppState>,
    Authed(caller): Authed,
) -> Result<Json<AreaReport>, ApiError> {
    match view(&caller)? {
        View::County => Ok(Json((*st.reports.read(|m| m.county())?).clone())),
        _ => Err(ApiError::forbidden(
            "the county report is for county users; a township user opens /v1/reports/townships/<code>",
        )),
    }
}

async fn township(
    State(st): State<AppState>,
    Authed(caller): Authed,
    Path(code): Path<String>,
) -> Result<Json<AreaReport>, ApiError> {
    if !view(&caller)?.sees_township(&code) {
        return Err(ApiError::forbidden(format!(
            "township {code} is not yours; you see only your own township's report"
        )));
    }
    let r = st
        .reports
        .read(|m| m.township(&code))?
        .ok_or_else(|| not_found(format!("there is no township {code} in the school list")))?;
    Ok(Json((*r).clone()))
}

async fn school(
    State(st): State<AppState>,
    Authed(caller): Authed,
    Path(code): Path<String>,
) -> Result<Json<SchoolReport>, ApiError> {
    school_report(&st, &caller, &code).map(Json)
}

#[derive(Deserialize)]
struct AreaQuery {
    township: Option<String>,
    /// Devices not synced for this many days are listed (default 7).
    stale_days: Option<u32>,
}

/// One school's gaps, for the gaps report.
#[derive(Serialize)]
pub(crate) struct SchoolGapsView {
    pub school: SchoolMeta,
    #[serde(flatten)]
    pub gaps: tpsync_reports::SchoolGaps,
}

/// A device that has not synced for the given days.
#[derive(Clone, Serialize)]
pub(crate) struct StaleDevice {
    #[serde(flatten)]
    pub device: DeviceSeen,
    pub school_name: Option<String>,
    pub township: Option<String>,
    /// Whole days since its last sync; none if it never synced.
    pub days_since_sync: Option<u64>,
}

#[derive(Serialize)]
pub(crate) struct GapsReport {
    pub stale_days: u32,
    pub schools: Vec<SchoolGapsView>,
    pub stale_devices: Vec<StaleDevice>,
}

fn area_of(v: &View, q: &AreaQuery) -> Result<Option<String>, ApiError> {
    match (v, &q.township) {
        (View::County, t) => Ok(t.clone()),
        (View::Township(own), None) => Ok(Some(own.clone())),
        (View::Township(own), Some(t)) if t == own => Ok(Some(own.clone())),
        (View::Township(_), Some(t)) => Err(ApiError::forbidden(format!(
            "township {t} is not yours; you see only your own township"
        ))),
        (View::School(_), _) => Err(ApiError::forbidden(
            "area reports are for township and county users; a teacher opens /v1/reports/schools/<code>",
        )),
    }
}

pub(crate) fn devices_in(
    model: &ReadModel,
    devices: Vec<DeviceSeen>,
    township: Option<&str>,
    stale_days: Option<u32>,
    now: u64,
) -> Vec<StaleDevice> {
    let metas: BTreeMap<String, (String, String)> = model
        .school_codes(township)
        .into_iter()
        .filter_map(|c| {
            model
                .school(&c)
                .map(|r| (c.to_string(), (r.meta.name, r.meta.township_name)))
        })
        .collect();
    let mut out: Vec<StaleDevice> = devices
        .into_iter()
        .filter_map(|d| {
            let (name, tw) = d.school.as_ref().and_then(|s| metas.get(s))?.clone();
            let days = d.last_sync_ms.map(|t| now.saturating_sub(t) / 86_400_000);
            if let Some(limit) = stale_days {
                if days.is_some_and(|x| x < limit as u64) {
                    return None;
                }
            }
            Some(StaleDevice {
                device: d,
                school_name: Some(name),
                township: Some(tw),
                days_since_sync: days,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        a.device
            .last_sync_ms
            .cmp(&b.device.last_sync_ms)
            .then_with(|| a.device.device.cmp(&b.device.device))
    });
    out
}

pub(crate) async fn gaps_report(
    st: &AppState,
    caller: &Caller,
    township: Option<String>,
    stale_days: Option<u32>,
) -> Result<GapsReport, ApiError> {
    let v = view(caller)?;
    let area = area_of(
        &v,
        &AreaQuery {
            township,
            stale_days,
        },
    )?;
    let stale = stale_days.unwrap_or(7);
    let st2 = st.clone();
    let devices = blocking(move || crate::reports::devices_seen(&st2)).await?;
    let now = now_ms();
    st.reports.read(|m| GapsReport {
        stale_days: stale,
        schools: m
            .gaps(area.as_deref())
            .into_iter()
            .map(|(school, gaps)| SchoolGapsView { school, gaps })
            .collect(),
        stale_devices: devices_in(m, devices, area.as_deref(), Some(stale), now),
    })
}

async fn gaps(
    State(st): State<AppState>,
    Authed(caller): Authed,
    Query(q): Query<AreaQuery>,
) -> Result<Json<GapsReport>, ApiError> {
    Ok(Json(
        gaps_report(&st, &caller, q.township, q.stale_days).await?,
    ))
}

async fn freshness(
    State(st): State<AppState>,
    Authed(caller): Authed,
    Query(q): Query<AreaQuery>,
) -> Result<Json<Vec<StaleDevice>>, ApiError> {
    Ok(Json(
        freshness_list(&st, &caller, q.township, q.stale_days).await?,
    ))
}

/// Every teacher device of the caller's area (or of `township`, for the
/// county) and its last sync, the least recently synced first; with
/// `stale_days`, only those not synced for that many days.
pub(crate) async fn freshness_list(
    st: &AppState,
    caller: &Caller,
    township: Option<String>,
    stale_days: Option<u32>,
) -> Result<Vec<StaleDevice>, ApiError> {
    let v = view(caller)?;
    let area = area_of(
        &v,
        &AreaQuery {
            township,
            stale_days,
        },
    )?;
    let st2 = st.clone();
    let devices = blocking(move || crate::reports::devices_seen(&st2)).await?;
    let now = now_ms();
    st.reports
        .read(|m| devices_in(m, devices, area.as_deref(), stale_days, now))
}

/// One school's report, to those who may see the school.
pub(crate) fn school_report(
    st: &AppState,
    caller: &Caller,
    code: &str,
) -> Result<SchoolReport, ApiError> {
    let code = parse_school(code)?;
    let v = view(caller)?;
    st.reports.read(|m| {
        if !v.sees_school(m, &code) {
            return Err(ApiError::forbidden(format!(
                "school {code} is not in your area; you see only the schools you are responsible for"
            )));
        }
        m.school(&code)
            .ok_or_else(|| not_found(format!("school {code} is not in the school list")))
    })?
}

/// A review step.
#[derive(Deserialize)]
pub(crate) struct ReviewStep {
    pub section: Section,
    pub action: ReviewAction,
    /// 意见: required to return.
    pub comment: Option<String>,
}

/// The outcome of a review step.
#[derive(Serialize)]
pub(crate) struct ReviewOutcome {
    pub school: String,
    pub state: SectionState,
}

/// Checks and records one review step on one school. Blocking.
pub(crate) fn apply_review(
    st: &AppState,
    caller: &Caller,
    school: &SchoolId,
    step: &ReviewStep,
) -> Result<ReviewOutcome, ApiError> {
    let v = view(caller)?;
    let section = step.section;
    let action = step.action;
    let Some(needed) = level_for(section, action) else {
        return Err(ApiError::bad_request(format!(
            "「{}」不适用于{}：sections are approved by the township, the school as a whole is accepted by the county",
            tpsync_reports::action_label(action),
            section_label(section)
        )));
    };
    if v.level() != needed {
        let who = match needed {
            Level::School => "the school's teacher",
            Level::Township => "the school's township",
            Level::County => "the county",
        };
        return Err(ApiError::forbidden(format!(
            "only {who} may {} {} ({}{})",
            action.code(),
            section.code(),
            tpsync_reports::action_label(action),
            section_label(section)
        )));
    }
    if action == ReviewAction::Return && step.comment.as_deref().is_none_or(|c| c.trim().is_empty())
    {
        return Err(ApiError::bad_request(
            "a return needs a comment saying what to fix (意见)",
        ));
    }
    // Checks that need the other sections and documents.
    let (frozen, problems) = st.reports.read(|m| -> Result<_, ApiError> {
        if !v.sees_school(m, school) {
            return Err(ApiError::forbidden(format!(
                "school {school} is not in your area"
            )));
        }
        let mut problems = Vec::new();
        match (section, action) {
            (Section::Whole, ReviewAction::Submit) => {
                for s in tpsync_reports::SECTIONS {
                    let state = m.section(school, s).map(|x| x.status);
                    if state != Some(ReviewStatus::Approved) {
                        problems.push(format!(
                            "{}: {}",
                            section_label(s),
                            state.map(|x| x.label()).unwrap_or("未提交")
                        ));
                    }
                }
                if !problems.is_empty() {
                    problems.insert(0, "every section must be approved before the school goes to the county".into());
                }
            }
            (s, ReviewAction::Submit) => {
                problems = m.submission_problems(school, s).unwrap_or_default();
            }
            (s, ReviewAction::Revoke) if s != Section::Whole => {
                let whole = m.section(school, Section::Whole).map(|x| x.status);
                if matches!(whole, Some(ReviewStatus::Submitted | ReviewStatus::Accepted)) {
                    problems.push("the school is with the county (submitted or accepted as a whole); the county must return it before an approval is undone".into());
                }
            }
            _ => {}
        }
        Ok((section_kind(section), problems))
    })??;
    if !problems.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_ready",
            format!(
                "{} of {school} cannot be {}: {}",
                section.code(),
                match action {
                    ReviewAction::Submit => "submitted",
                    _ => "changed",
                },
                problems.join("; ")
            ),
        ));
    }
    let frozen_heads = match (action, frozen) {
        (ReviewAction::Approve, Some(kind)) => {
            let id = DocId::school(school, kind).map_err(ApiError::internal)?;
            let heads = st.hub.heads(&id).map_err(ApiError::internal)?;
            Some(
                heads
                    .iter()
                    .map(|h| h.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            )
        }
        _ => None,
    };
    let review_id = DocId::school(school, DocKind::Review).map_err(ApiError::internal)?;
    let now = now_ms() as i64;
    let ctx = EditContext {
        user: caller.user.as_str().parse().map_err(ApiError::internal)?,
        device: caller.device.clone(),
        now_ms: now,
    };
    let event = ReviewEvent {
        section,
        action,
        comment: step.comment.clone().filter(|c| !c.trim().is_empty()),
        frozen_heads,
        by_user: caller.username.clone(),
        at: now,
    };
    let state = {
        let _gate = st.write_gate.read();
        let result = st.hub.edit(&review_id, |doc: &mut RecordDoc| {
            // Checked again under the document's lock: the events there now
            // are what the step must fit.
            let events = doc.list::<ReviewEvent>()?;
            let current = section_state(section, &events, None);
            if let Err(why) = tpsync_reports::transition(section, current.status, action) {
                return Ok(Err(why));
            }
            doc.insert(&ctx, RecordId::random(), &event)?;
            let events = doc.list::<ReviewEvent>()?;
            Ok(Ok(events))
        });
        match result {
            Ok((Err(why), _)) => {
                return Err(ApiError::new(StatusCode::CONFLICT, "not_allowed_now", why))
            }
            Ok((Ok(events), _)) => events,
            Err(e) => return Err(ApiError::internal(e)),
        }
    };
    // The model learns it now (the answer shows it) and through the notice
    // (WebSocket subscribers).
    crate::reports::apply_docs(st, std::slice::from_ref(&review_id));
    let _ = st.changes.send(std::sync::Arc::new(Changed {
        docs: vec![review_id],
        by: caller.device.clone(),
    }));
    let out = match st.reports.read(|m| m.section(school, section).cloned()) {
        Ok(Some(current)) => current,
        _ => section_state(section, &state, None),
    };
    Ok(ReviewOutcome {
        school: school.to_string(),
        state: out,
    })
}

async fn review_school(
    State(st): State<AppState>,
    Authed(caller): Authed,
    Path(code): Path<String>,
    Json(step): Json<ReviewStep>,
) -> Result<Json<ReviewOutcome>, ApiError> {
    let school = parse_school(&code)?;
    Ok(Json(
        blocking(move || apply_review(&st, &caller, &school, &step)).await?,
    ))
}

/// A township-level step: the township submits its approved schools to
/// the county; the county accepts, returns or revokes them.
#[derive(Deserialize)]
struct TownshipStep {
    action: ReviewAction,
    comment: Option<String>,
    /// The schools to act on; default every school of the township whose
    /// state allows the step.
    schools: Option<Vec<String>>,
}

#[derive(Serialize)]
struct TownshipOutcome {
    done: Vec<ReviewOutcome>,
    /// Schools left as they were, and why.
    skipped: Vec<(String, String)>,
}

async fn review_township(
    State(st): State<AppState>,
    Authed(caller): Authed,
    Path(code): Path<String>,
    Json(step): Json<TownshipStep>,
) -> Result<Json<TownshipOutcome>, ApiError> {
    let v = view(&caller)?;
    if !v.sees_township(&code) {
        return Err(ApiError::forbidden(format!("township {code} is not yours")));
    }
    let schools: Vec<SchoolId> = match &step.schools {
        Some(list) => list
            .iter()
            .map(|s| parse_school(s))
            .collect::<Result<_, _>>()?,
        None => st.reports.read(|m| m.school_codes(Some(&code)))?,
    };
    if schools.is_empty() {
        return Err(not_found(format!("township {code} has no schools")));
    }
    Ok(Json(
        blocking(move || {
            if step.action == ReviewAction::Submit {
                // All or nothing: the township submits its aggregate only
                // when every school is ready.
                let blockers: Vec<String> = st.reports.read(|m| {
                    schools
                        .iter()
                        .filter(|s| {
                            tpsync_reports::SECTIONS.iter().any(|sec| {
                                m.section(s, *sec).map(|x| x.status)
                                    != Some(ReviewStatus::Approved)
                            }) && !matches!(
                                m.section(s, Section::Whole).map(|x| x.status),
                                Some(ReviewStatus::Submitted | ReviewStatus::Accepted)
                            )
                        })
                        .map(|s| s.to_string())
                        .collect()
                })?;
                if !blockers.is_empty() {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "not_ready",
                        format!(
                            "the township's aggregate cannot be submitted: these schools have sections not yet approved: {}",
                            blockers.join(", ")
                        ),
                    ));
                }
            }
            let mut done = Vec::new();
            let mut skipped = Vec::new();
            for s in schools {
                let one = ReviewStep {
                    section: Section::Whole,
                    action: step.action,
                    comment: step.comment.clone(),
                };
                match apply_review(&st, &caller, &s, &one) {
                    Ok(o) => done.push(o),
                    Err(e) if e.status() == StatusCode::CONFLICT => {
                        skipped.push((s.to_string(), e.detail.clone()))
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(TownshipOutcome { done, skipped })
        })
        .await?,
    ))
}

/// One record's fields that differ from the approved version.
#[derive(Serialize)]
struct RecordChange {
    collection: &'static str,
    record: String,
    /// "added" or "changed".
    change: &'static str,
    fields: Vec<FieldDiff>,
}

#[derive(Serialize)]
struct FieldDiff {
    field: String,
    approved: serde_json::Value,
    now: serde_json::Value,
}

#[derive(Serialize)]
struct ChangesSinceApproval {
    school: String,
    section: Section,
    approved_heads: Vec<String>,
    changes: Vec<RecordChange>,
}

async fn changes(
    State(st): State<AppState>,
    Authed(caller): Authed,
    Path((code, section)): Path<(String, String)>,
) -> Result<Json<ChangesSinceApproval>, ApiError> {
    let school = parse_school(&code)?;
    let section: Section = serde_json::from_value(serde_json::Value::String(section.clone()))
        .map_err(|_| {
            ApiError::bad_request(format!(
                "'{section}' is not a section (profile, equipment, books, archive, checklist)"
            ))
        })?;
    let kind = section_kind(section)
        .ok_or_else(|| ApiError::bad_request("the school as a whole has no document of its own"))?;
    let v = view(&caller)?;
    let frozen = st.reports.read(|m| {
        if !v.sees_school(m, &school) {
            return Err(ApiError::forbidden(format!(
                "school {school} is not in your area"
            )));
        }
        Ok(m.section(&school, section)
            .and_then(|s| s.approved_heads.clone()))
    })??;
    let Some(frozen) = frozen else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_approved",
            format!(
                "{} of {school} is not approved; there is no approved version to compare with",
                section.code()
            ),
        ));
    };
    let id = DocId::school(&school, kind).map_err(ApiError::internal)?;
    let heads: Vec<sync_core::ChangeHash> = frozen
        .iter()
        .map(|h| h.parse())
        .collect::<Result<_, _>>()
        .map_err(|_| ApiError::internal("an approval holds heads that are not change hashes"))?;
    let frozen2 = frozen.clone();
    let diffs = blocking(move || {
        st.hub
            .read(&id, |doc| diff_since(doc, &heads))
            .map_err(ApiError::internal)?
    })
    .await?;
    Ok(Json(ChangesSinceApproval {
        school: school.to_string(),
        section,
        approved_heads: frozen2,
        changes: diffs,
    }))
}

fn diff_since(
    doc: &RecordDoc,
    heads: &[sync_core::ChangeHash],
) -> Result<Vec<RecordChange>, ApiError> {
    let old_am = doc.automerge().fork_at(heads).map_err(|e| {
        ApiError::internal(format!("the approved version is not in the document: {e}"))
    })?;
    let old = RecordDoc::from_automerge(doc.id().clone(), old_am);
    let mut out = Vec::new();
    for kind in sync_core::records::RecordKind::ALL {
        let spec = kind.spec();
        if spec.doc_kind != doc.kind() {
            continue;
        }
        let before: BTreeMap<RecordId, serde_json::Value> = old
            .records_json(spec)
            .map(|v| v.into_iter().map(|(id, j, _)| (id, j)).collect())
            .unwrap_or_default();
        for (id, now, _) in doc.records_json(spec).map_err(ApiError::internal)? {
            let was = before.get(&id);
            let mut fields = Vec::new();
            let empty = serde_json::Map::new();
            let now_map = now.as_object().unwrap_or(&empty);
            let was_map = was.and_then(|w| w.as_object()).unwrap_or(&empty);
            let mut keys: Vec<&String> = now_map.keys().chain(was_map.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let a = was_map.get(k).cloned().unwrap_or(serde_json::Value::Null);
                let b = now_map.get(k).cloned().unwrap_or(serde_json::Value::Null);
                if a != b {
                    fields.push(FieldDiff {
                        field: k.clone(),
                        approved: a,
                        now: b,
                    });
                }
            }
            if !fields.is_empty() {
                out.push(RecordChange {
                    collection: spec.collection,
                    record: id.to_string(),
                    change: if was.is_some() { "changed" } else { "added" },
                    fields,
                });
            }
        }
    }
    Ok(out)
}
