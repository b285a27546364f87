//! The read model: every school's facts, evaluation, review state and gaps,
//! and the township and county rollups, kept up to date one document at a
//! time. A request reads what is here; nothing recomputes the county per
//! request.
//!
//! - A school document changes → that document's facts are read again, that
//!   school is evaluated again, and its township's and the county's rollups
//!   are rebuilt from the schools' stored evaluations (arithmetic over a few
//!   hundred rows: microseconds).
//! - The template changes → every school is evaluated again from its stored
//!   facts (no document is read).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use sync_core::indicators::{evaluate_school, SchoolEvaluation, SchoolInput, Verdict};
use sync_core::records::{
    CatalogueEntry, IndicatorTemplate, SchoolType, Section, Stage, TemplateSettings,
};
use sync_core::{DocKind, DocOwner, RecordDoc, RecordId, SchoolId};

use crate::facts::{FactsError, SchoolFacts};
use crate::gaps::{school_gaps, submission_problems, SchoolGaps};
use crate::review::{section_state, ReviewStatus, SectionState, SECTIONS};
use crate::rollup::{stage_rollup, Member, StageRollup};

/// A registered school, as the accounts know it.
#[derive(Clone, Debug, Serialize)]
pub struct SchoolMeta {
    pub code: SchoolId,
    pub name: String,
    pub township: String,
    pub township_name: String,
    pub school_type: SchoolType,
}

/// The county template as the reports read it.
#[derive(Clone, Debug)]
pub struct TemplateFacts {
    pub indicators: Vec<IndicatorTemplate>,
    pub settings: TemplateSettings,
    pub catalogue: Vec<(RecordId, CatalogueEntry)>,
}

impl Default for TemplateFacts {
    /// Before the county writes its template: no indicators, no settings.
    fn default() -> Self {
        TemplateFacts {
            indicators: vec![],
            settings: serde_json::from_value(serde_json::json!({}))
                .expect("every setting is optional"),
            catalogue: vec![],
        }
    }
}

/// A device's last sync, for the freshness report.
#[derive(Clone, Debug, Serialize)]
pub struct DeviceSeen {
    pub device: String,
    pub username: String,
    /// The school a teacher's device belongs to.
    pub school: Option<String>,
    /// Last completed sync (ms since the epoch), if it ever synced.
    pub last_sync_ms: Option<u64>,
    /// Last time the server heard from it at all.
    pub last_seen_ms: u64,
}

/// Submission counts for one level.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Completeness {
    /// Sections (or schools, at the county level) expected.
    pub expected: usize,
    /// Submitted and not returned (awaiting review, approved or accepted).
    pub submitted: usize,
    /// Approved (sections) or accepted (schools as a whole).
    pub approved: usize,
    /// Returned and not yet submitted again.
    pub returned: usize,
    /// Of the submitted, first submitted by the due date.
    pub on_time: usize,
    /// Approved sections edited after their approval.
    pub edited_since_approval: usize,
}

/// One row of the schools table of an area report.
#[derive(Clone, Debug, Serialize)]
pub struct SchoolRow {
    pub code: String,
    pub name: String,
    pub township: String,
    pub township_name: String,
    pub school_type: SchoolType,
    pub school_type_label: &'static str,
    pub students: u64,
    /// Per stage: 达标 / 未达标 / 无法判定.
    pub verdicts: Vec<(Stage, &'static str)>,
    /// Sections approved, of 5.
    pub sections_approved: usize,
    pub whole: ReviewStatus,
    pub whole_label: &'static str,
    pub gaps: usize,
    /// Teaching-point treatment in words, if a teaching point.
    pub teaching_point: Option<String>,
}

/// A township's line in the county report.
#[derive(Clone, Debug, Serialize)]
pub struct TownshipLine {
    pub code: String,
    pub name: String,
    pub schools: usize,
    pub pass: usize,
    pub fail: usize,
    pub undetermined: usize,
    /// Schools submitted to the county by the township (as a whole).
    pub submitted: usize,
    pub accepted: usize,
    pub sections: Completeness,
}

/// The county's or one township's report.
#[derive(Clone, Debug, Serialize)]
pub struct AreaReport {
    /// `county` or the township's code.
    pub scope: String,
    pub name: String,
    pub schools: usize,
    pub stages: Vec<StageRollup>,
    /// The schools' sections (5 per school).
    pub sections: Completeness,
    /// The schools as a whole, submitted by townships to the county.
    pub wholes: Completeness,
    /// 上报截止日期, from the template.
    pub review_due: Option<String>,
    pub townships: Vec<TownshipLine>,
    pub rows: Vec<SchoolRow>,
    /// Bumped on every change the model absorbs.
    pub version: u64,
}

/// Everything about one school.
#[derive(Clone, Debug, Serialize)]
pub struct SchoolReport {
    pub meta: SchoolMeta,
    pub evaluation: SchoolEvaluation,
    /// The five sections, then the school as a whole.
    pub review: Vec<SectionState>,
    /// Per section: why it cannot be submitted yet (empty when it can).
    pub submission_problems: Vec<(Section, Vec<String>)>,
    pub gaps: SchoolGaps,
    pub books_titles: u64,
    pub equipment_items: usize,
    pub version: u64,
}

struct Entry {
    meta: SchoolMeta,
    facts: SchoolFacts,
    evaluation: SchoolEvaluation,
    review: Vec<SectionState>,
    gaps: SchoolGaps,
}

impl Entry {
    fn new(meta: SchoolMeta, template: &TemplateFacts) -> Self {
        let mut e = Entry {
            meta,
            facts: SchoolFacts::default(),
            evaluation: SchoolEvaluation {
                school_code: None,
                name: None,
                school_type: None,
                stages: vec![],
                teaching_point: None,
                notes: vec![],
            },
            review: vec![],
            gaps: SchoolGaps::default(),
        };
        e.refresh(template);
        e
    }

    fn refresh(&mut self, template: &TemplateFacts) {
        let mut profile = self.facts.profile.clone().unwrap_or_default_profile();
        // The registry's name and type stand in until the school fills in its profile.
        profile.name.get_or_insert_with(|| self.meta.name.clone());
        profile.school_type.get_or_insert(self.meta.school_type);
        profile
            .school_code
            .get_or_insert_with(|| self.meta.code.to_string());
        let equipment: Vec<_> = self
            .facts
            .equipment
            .iter()
            .map(|(_, e)| e.clone())
            .collect();
        let books = self.facts.books.as_lines();
        self.evaluation = evaluate_school(&SchoolInput {
            profile: &profile,
            equipment: &equipment,
            books: &books,
            rows: &self.facts.rows,
            plans: &self.facts.plans,
            indicators: &template.indicators,
            settings: &template.settings,
        });
        self.review = SECTIONS
            .iter()
            .chain(std::iter::once(&Section::Whole))
            .map(|s| {
                let heads = section_kind(*s).and_then(|k| self.facts.heads.get(&k));
                section_state(*s, &self.facts.review_events, heads.map(Vec::as_slice))
            })
            .collect();
        self.gaps = school_gaps(&self.facts, &self.evaluation, &template.catalogue);
    }

    fn whole(&self) -> &SectionState {
        self.review.last().expect("six review states")
    }
}

trait DefaultProfile {
    fn unwrap_or_default_profile(self) -> sync_core::records::SchoolProfile;
}

impl DefaultProfile for Option<sync_core::records::SchoolProfile> {
    fn unwrap_or_default_profile(self) -> sync_core::records::SchoolProfile {
        self.unwrap_or_else(|| {
            serde_json::from_value(serde_json::json!({})).expect("every profile field is optional")
        })
    }
}

/// The document kind a section is about.
pub fn section_kind(s: Section) -> Option<DocKind> {
    Some(match s {
        Section::Profile => DocKind::Profile,
        Section::Equipment => DocKind::Equipment,
        Section::Books => DocKind::Books,
        Section::Archive => DocKind::Archive,
        Section::Checklist => DocKind::Checklist,
        Section::Whole => return None,
    })
}

/// China Standard Time, UTC+8: a due date ends at 24:00 there.
const CST_OFFSET_MS: i64 = 8 * 3600 * 1000;

/// The end of `date` (YYYY-MM-DD) in China, in ms since the epoch.
pub fn end_of_day_cst_ms(date: &str) -> Option<i64> {
    let mut it = date.split('-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let d: i64 = it.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from civil (H. Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = if y2 >= 0 { y2 } else { y2 - 399 } / 400;
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days + 1) * 86_400_000 - CST_OFFSET_MS)
}

/// The reports of one county.
pub struct ReadModel {
    county_name: String,
    template: TemplateFacts,
    schools: BTreeMap<SchoolId, Entry>,
    townships: BTreeMap<String, String>,
    county: Arc<AreaReport>,
    by_township: BTreeMap<String, Arc<AreaReport>>,
    devices: Vec<DeviceSeen>,
    version: u64,
}

impl Default for ReadModel {
    fn default() -> Self {
        Self::new("")
    }
}

impl ReadModel {
    pub fn new(county_name: &str) -> Self {
        let mut m = ReadModel {
            county_name: county_name.into(),
            template: TemplateFacts::default(),
            schools: BTreeMap::new(),
            townships: BTreeMap::new(),
            county: Arc::new(empty_area("county", county_name)),
            by_township: BTreeMap::new(),
            devices: Vec::new(),
            version: 0,
        };
        m.rebuild_rollups(None);
        m
    }

    /// Sets the county's name, townships and schools (from the accounts).
    /// Schools no longer registered are dropped; new ones start empty.
    pub fn set_registry(
        &mut self,
        county_name: &str,
        townships: BTreeMap<String, String>,
        schools: Vec<SchoolMeta>,
    ) {
        self.county_name = county_name.into();
        self.townships = townships;
        let keep: BTreeMap<SchoolId, SchoolMeta> =
            schools.into_iter().map(|m| (m.code.clone(), m)).collect();
        self.schools.retain(|code, _| keep.contains_key(code));
        for (code, meta) in keep {
            match self.schools.get_mut(&code) {
                Some(e) => {
                    let changed =
                        e.meta.school_type != meta.school_type || e.meta.name != meta.name;
                    e.meta = meta;
                    if changed {
                        e.refresh(&self.template);
                    }
                }
                None => {
                    let e = Entry::new(meta, &self.template);
                    self.schools.insert(code, e);
                }
            }
        }
        self.version += 1;
        self.rebuild_rollups(None);
    }

    /// Absorbs a stored document: a school's (only if the school is
    /// registered) or the county template.
    pub fn apply(&mut self, doc: &RecordDoc) -> Result<(), FactsError> {
        match doc.id().owner() {
            DocOwner::School(code) => {
                let Some(entry) = self.schools.get_mut(code) else {
                    return Ok(());
                };
                entry.facts.absorb(doc)?;
                entry.refresh(&self.template);
                let township = entry.meta.township.clone();
                self.version += 1;
                self.rebuild_rollups(Some(&township));
            }
            DocOwner::County(_) => {
                let err = |source| FactsError {
                    doc: doc.id().to_string(),
                    source,
                };
                self.template = TemplateFacts {
                    indicators: doc
                        .list()
                        .map_err(err)?
                        .into_iter()
                        .map(|(_, r)| r)
                        .collect(),
                    settings: doc.singleton().map_err(err)?,
                    catalogue: doc.list().map_err(err)?,
                };
                for e in self.schools.values_mut() {
                    e.refresh(&self.template);
                }
                self.version += 1;
                self.rebuild_rollups(None);
            }
        }
        Ok(())
    }

    /// Sets what the server knows of devices' syncs.
    pub fn set_devices(&mut self, devices: Vec<DeviceSeen>) {
        self.devices = devices;
    }

    pub fn devices(&self) -> &[DeviceSeen] {
        &self.devices
    }

    pub fn template(&self) -> &TemplateFacts {
        &self.template
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// The county's report.
    pub fn county(&self) -> Arc<AreaReport> {
        self.county.clone()
    }

    /// A township's report.
    pub fn township(&self, code: &str) -> Option<Arc<AreaReport>> {
        self.by_township.get(code).cloned()
    }

    pub fn township_codes(&self) -> impl Iterator<Item = (&String, &String)> {
        self.townships.iter()
    }

    /// The school's township code, if registered.
    pub fn township_of(&self, school: &SchoolId) -> Option<&str> {
        self.schools.get(school).map(|e| e.meta.township.as_str())
    }

    /// Everything about one school.
    pub fn school(&self, code: &SchoolId) -> Option<SchoolReport> {
        let e = self.schools.get(code)?;
        Some(SchoolReport {
            meta: e.meta.clone(),
            evaluation: e.evaluation.clone(),
            review: e.review.clone(),
            submission_problems: SECTIONS
                .iter()
                .map(|s| {
                    (
                        *s,
                        submission_problems(*s, &e.facts, &e.evaluation, &e.gaps),
                    )
                })
                .collect(),
            gaps: e.gaps.clone(),
            books_titles: e.facts.books.titles,
            equipment_items: e.facts.equipment.len(),
            version: self.version,
        })
    }

    /// The state of one section of one school.
    pub fn section(&self, code: &SchoolId, section: Section) -> Option<&SectionState> {
        self.schools
            .get(code)?
            .review
            .iter()
            .find(|s| s.section == section)
    }

    /// Why `section` of `code` cannot be submitted (empty: it can).
    pub fn submission_problems(&self, code: &SchoolId, section: Section) -> Option<Vec<String>> {
        let e = self.schools.get(code)?;
        Some(submission_problems(
            section,
            &e.facts,
            &e.evaluation,
            &e.gaps,
        ))
    }

    /// The schools of a township, or all.
    pub fn school_codes(&self, township: Option<&str>) -> Vec<SchoolId> {
        self.schools
            .values()
            .filter(|e| township.is_none_or(|t| e.meta.township == t))
            .map(|e| e.meta.code.clone())
            .collect()
    }

    /// Per school gaps, for the schools of a township or all.
    pub fn gaps(&self, township: Option<&str>) -> Vec<(SchoolMeta, SchoolGaps)> {
        self.schools
            .values()
            .filter(|e| township.is_none_or(|t| e.meta.township == t))
            .filter(|e| !e.gaps.is_empty())
            .map(|e| (e.meta.clone(), e.gaps.clone()))
            .collect()
    }

    fn rebuild_rollups(&mut self, township: Option<&str>) {
        let due_ms = self
            .template
            .settings
            .review_due
            .as_deref()
            .and_then(end_of_day_cst_ms);
        let townships: Vec<String> = match township {
            Some(t) => vec![t.to_owned()],
            None => {
                let mut all: Vec<String> = self.townships.keys().cloned().collect();
                for e in self.schools.values() {
                    if !all.contains(&e.meta.township) {
                        all.push(e.meta.township.clone());
                    }
                }
                self.by_township.retain(|k, _| all.contains(k));
                all
            }
        };
        for t in townships {
            let name = self.townships.get(&t).cloned().unwrap_or_else(|| t.clone());
            let report = self.area(&t, &name, Some(&t), due_ms);
            self.by_township.insert(t, Arc::new(report));
        }
        let name = self.county_name.clone();
        let mut county = self.area("county", &name, None, due_ms);
        county.townships = self
            .by_township
            .iter()
            .map(|(code, r)| {
                let (pass, fail, undetermined) = r.stages.iter().fold((0, 0, 0), |a, s| {
                    (a.0 + s.pass, a.1 + s.fail, a.2 + s.undetermined)
                });
                TownshipLine {
                    code: code.clone(),
                    name: r.name.clone(),
                    schools: r.schools,
                    pass,
                    fail,
                    undetermined,
                    submitted: r.wholes.submitted,
                    accepted: r.wholes.approved,
                    sections: r.sections.clone(),
                }
            })
            .collect();
        self.county = Arc::new(county);
    }

    fn area(
        &self,
        scope: &str,
        name: &str,
        township: Option<&str>,
        due_ms: Option<i64>,
    ) -> AreaReport {
        let entries: Vec<&Entry> = self
            .schools
            .values()
            .filter(|e| township.is_none_or(|t| e.meta.township == t))
            .collect();
        let members: Vec<Member<'_>> = entries
            .iter()
            .map(|e| Member {
                code: e.meta.code.as_str(),
                name: &e.meta.name,
                evaluation: &e.evaluation,
            })
            .collect();
        let stages = [Stage::Primary, Stage::Junior]
            .into_iter()
            .map(|s| stage_rollup(s, &members, &self.template.settings))
            .filter(|r| r.schools > 0 || !r.left_out.is_empty())
            .collect();
        let mut sections = Completeness::default();
        let mut wholes = Completeness::default();
        let on_time = |first: Option<i64>| match (first, due_ms) {
            (Some(at), Some(due)) => at <= due,
            (Some(_), None) => true,
            _ => false,
        };
        for e in &entries {
            for s in &e.review {
                let c = if s.section == Section::Whole {
                    &mut wholes
                } else {
                    &mut sections
                };
                c.expected += 1;
                match s.status {
                    ReviewStatus::Draft => {}
                    ReviewStatus::Returned => c.returned += 1,
                    ReviewStatus::Submitted | ReviewStatus::Approved | ReviewStatus::Accepted => {
                        c.submitted += 1;
                        if on_time(s.first_submitted_ms) {
                            c.on_time += 1;
                        }
                        if s.status != ReviewStatus::Submitted {
                            c.approved += 1;
                        }
                        if s.edited_since_approval {
                            c.edited_since_approval += 1;
                        }
                    }
                }
            }
        }
        let rows = entries
            .iter()
            .map(|e| SchoolRow {
                code: e.meta.code.to_string(),
                name: e.meta.name.clone(),
                township: e.meta.township.clone(),
                township_name: e.meta.township_name.clone(),
                school_type: e.meta.school_type,
                school_type_label: school_type_label(e.meta.school_type),
                students: e.evaluation.stages.iter().map(|s| s.students as u64).sum(),
                verdicts: e
                    .evaluation
                    .stages
                    .iter()
                    .map(|s| (s.stage, verdict_label(&s.verdict)))
                    .collect(),
                sections_approved: e
                    .review
                    .iter()
                    .filter(|s| s.section != Section::Whole && s.status == ReviewStatus::Approved)
                    .count(),
                whole: e.whole().status,
                whole_label: e.whole().status_label,
                gaps: e.gaps.below_threshold.len() + e.gaps.archive.len() + e.gaps.stocktake.len(),
                teaching_point: e
                    .evaluation
                    .teaching_point
                    .as_ref()
                    .map(|t| t.explanation.clone()),
            })
            .collect();
        AreaReport {
            scope: scope.into(),
            name: name.into(),
            schools: entries.len(),
            stages,
            sections,
            wholes,
            review_due: self.template.settings.review_due.clone(),
            townships: vec![],
            rows,
            version: self.version,
        }
    }
}

fn empty_area(scope: &str, name: &str) -> AreaReport {
    AreaReport {
        scope: scope.into(),
        name: name.into(),
        schools: 0,
        stages: vec![],
        sections: Completeness::default(),
        wholes: Completeness::default(),
        review_due: None,
        townships: vec![],
        rows: vec![],
        version: 0,
    }
}

/// 达标 / 未达标 / 无法判定
pub fn verdict_label(v: &Verdict) -> &'static str {
    match v {
        Verdict::Pass { .. } => "达标",
        Verdict::Fail { .. } => "未达标",
        Verdict::Undetermined { .. } => "无法判定",
    }
}

/// The school type in Chinese.
pub fn school_type_label(t: SchoolType) -> &'static str {
    match t {
        SchoolType::TeachingPoint => "教学点",
        SchoolType::Primary => "完全小学",
        SchoolType::Junior => "初中",
        SchoolType::NineYear => "九年一贯制",
        SchoolType::Central => "乡镇中心学校",
    }
}
