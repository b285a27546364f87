//! Rollups over many schools: per stage, each indicator's enrollment-weighted
//! coefficient of variation (差异系数), how many schools pass, and how the
//! county's teaching-point policy shaped the figures.

use std::collections::BTreeMap;

use serde::Serialize;
use sync_core::indicators::{
    coefficient_of_variation, CvResult, SchoolEvaluation, TeachingPointTreatment, Verdict,
    WellKnown, BOOKS_CODE,
};
use sync_core::records::{Stage, TemplateSettings};

/// One school's part in a rollup.
#[derive(Clone, Copy, Debug)]
pub struct Member<'a> {
    pub code: &'a str,
    pub name: &'a str,
    pub evaluation: &'a SchoolEvaluation,
}

/// One indicator across the schools of one stage.
#[derive(Clone, Debug, Serialize)]
pub struct IndicatorRollup {
    pub code: String,
    pub name: String,
    pub unit: Option<String>,
    /// The template's threshold for this stage.
    pub threshold: Option<f64>,
    /// Schools (after folding) with a value.
    pub schools_with_value: usize,
    /// Of those, schools whose own evaluation meets the threshold.
    pub schools_meeting: usize,
    /// Lowest and highest school value.
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// The weighted CV and its parts (mean = county total ÷ county students).
    pub cv: CvResult,
    /// The template's CV limit for this stage.
    pub cv_limit: Option<f64>,
    /// CV ≤ limit; none without both.
    pub cv_within: Option<bool>,
}

/// A school left out of a stage's figures, and why.
#[derive(Clone, Debug, Serialize)]
pub struct LeftOut {
    pub code: String,
    pub name: String,
    pub why: String,
}

/// One stage (学段) across a group of schools.
#[derive(Clone, Debug, Serialize)]
pub struct StageRollup {
    pub stage: Stage,
    pub stage_label: &'static str,
    /// Schools counted (a folded teaching point counts inside its parent).
    pub schools: usize,
    pub students: u64,
    pub pass: usize,
    pub fail: usize,
    pub undetermined: usize,
    /// R1–R7 in order, then the books line.
    pub indicators: Vec<IndicatorRollup>,
    /// Indicators whose CV is within the limit, of those with both.
    pub cv_within: usize,
    pub cv_judged: usize,
    pub left_out: Vec<LeftOut>,
    /// Teaching points whose figures were added to their central school's.
    pub folded: Vec<LeftOut>,
}

pub fn stage_label(stage: Stage) -> &'static str {
    match stage {
        Stage::Primary => "小学",
        Stage::Junior => "初中",
    }
}

/// `(students, value)` of one school's indicator in one stage.
type Pair = (u32, Option<f64>);

struct Counted<'a> {
    code: &'a str,
    students: u32,
    verdict: &'a Verdict,
    /// Indicator code → (students, value, meets).
    values: BTreeMap<String, (Pair, Option<bool>)>,
}

/// The rollup of `stage` over `members`, with the county's settings.
pub fn stage_rollup(
    stage: Stage,
    members: &[Member<'_>],
    settings: &TemplateSettings,
) -> StageRollup {
    let mut counted: Vec<Counted<'_>> = Vec::new();
    let mut left_out = Vec::new();
    let mut folds: Vec<(Member<'_>, String)> = Vec::new();
    for m in members {
        let Some(se) = m.evaluation.stages.iter().find(|s| s.stage == stage) else {
            continue;
        };
        match m.evaluation.teaching_point.as_ref().map(|t| &t.treatment) {
            Some(TeachingPointTreatment::LeftOut { .. }) => {
                left_out.push(LeftOut {
                    code: m.code.into(),
                    name: m.name.into(),
                    why: m
                        .evaluation
                        .teaching_point
                        .as_ref()
                        .map(|t| t.explanation.clone())
                        .unwrap_or_default(),
                });
                continue;
            }
            Some(TeachingPointTreatment::FoldedIntoParent {
                parent_school: Some(parent),
            }) => {
                folds.push((*m, parent.clone()));
                continue;
            }
            _ => {}
        }
        counted.push(Counted {
            code: m.code,
            students: se.students,
            verdict: &se.verdict,
            values: se
                .indicators
                .iter()
                .chain(std::iter::once(&se.books))
                .map(|i| (i.code.clone(), ((se.students, i.value), i.meets)))
                .collect(),
        });
    }
    // Fold teaching points into their central school: every indicator is a
    // per-student ratio, so the merged value is the students-weighted mean.
    let mut folded = Vec::new();
    for (m, parent) in folds {
        let se = m
            .evaluation
            .stages
            .iter()
            .find(|s| s.stage == stage)
            .expect("filtered above");
        let Some(host) = counted.iter_mut().find(|c| c.code == parent) else {
            left_out.push(LeftOut {
                code: m.code.into(),
                name: m.name.into(),
                why: format!(
                    "县里规定教学点并入中心校，但中心校 {parent} 不在本范围的{}学校中",
                    stage_label(stage)
                ),
            });
            continue;
        };
        for ind in se.indicators.iter().chain(std::iter::once(&se.books)) {
            if let Some(((p, x), _)) = host.values.get_mut(&ind.code) {
                *x = match (*x, ind.value) {
                    (Some(a), Some(b)) if *p + se.students > 0 => {
                        Some((a * *p as f64 + b * se.students as f64) / (*p + se.students) as f64)
                    }
                    (a, _) => a,
                };
                *p += se.students;
            }
        }
        host.students += se.students;
        folded.push(LeftOut {
            code: m.code.into(),
            name: m.name.into(),
            why: format!("并入中心校 {parent}"),
        });
    }

    let limit = match stage {
        Stage::Primary => settings.cv_limit_primary,
        Stage::Junior => settings.cv_limit_junior,
    };
    let mut indicators = Vec::new();
    let template_like = members
        .iter()
        .flat_map(|m| m.evaluation.stages.iter())
        .find(|s| s.stage == stage);
    let mut codes: Vec<(String, String, Option<String>, Option<f64>)> = Vec::new();
    for w in WellKnown::ALL {
        let from_eval =
            template_like.and_then(|s| s.indicators.iter().find(|i| i.code == w.code()));
        codes.push((
            w.code().into(),
            from_eval
                .map(|i| i.name.clone())
                .unwrap_or_else(|| w.name().into()),
            Some(w.unit().into()),
            from_eval.and_then(|i| i.threshold),
        ));
    }
    codes.push((
        BOOKS_CODE.into(),
        template_like
            .map(|s| s.books.name.clone())
            .unwrap_or_else(|| "生均图书".into()),
        Some("册".into()),
        template_like.and_then(|s| s.books.threshold),
    ));
    for (code, name, unit, threshold) in codes {
        let mut pairs = Vec::new();
        let mut meeting = 0;
        let (mut min, mut max) = (None::<f64>, None::<f64>);
        for c in &counted {
            if let Some(((p, Some(x)), meets)) = c.values.get(&code) {
                pairs.push((*p, *x));
                if *meets == Some(true) {
                    meeting += 1;
                }
                min = Some(min.map_or(*x, |m| m.min(*x)));
                max = Some(max.map_or(*x, |m| m.max(*x)));
            }
        }
        let cv = coefficient_of_variation(&pairs);
        // The CV limits are for R1–R7; the books line keeps its figures but
        // is judged against no limit.
        let cv_limit = if code == BOOKS_CODE { None } else { limit };
        indicators.push(IndicatorRollup {
            code,
            name,
            unit,
            threshold,
            schools_with_value: pairs.len(),
            schools_meeting: meeting,
            min,
            max,
            cv_within: cv.within(cv_limit),
            cv,
            cv_limit,
        });
    }
    let (mut pass, mut fail, mut undetermined) = (0, 0, 0);
    for c in &counted {
        match c.verdict {
            Verdict::Pass { .. } => pass += 1,
            Verdict::Fail { .. } => fail += 1,
            Verdict::Undetermined { .. } => undetermined += 1,
        }
    }
    let cv_judged = indicators.iter().filter(|i| i.cv_within.is_some()).count();
    let cv_within = indicators
        .iter()
        .filter(|i| i.cv_within == Some(true))
        .count();
    StageRollup {
        stage,
        stage_label: stage_label(stage),
        schools: counted.len(),
        students: counted.iter().map(|c| c.students as u64).sum(),
        pass,
        fail,
        undetermined,
        indicators,
        cv_within,
        cv_judged,
        left_out,
        folded,
    }
}
