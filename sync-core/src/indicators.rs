//! 对指标: a school's standardization checklist evaluated against its county's
//! template (义务教育优质均衡发展, 资源配置 indicators R1–R7 and 生均图书), and
//! the county's enrollment-weighted coefficient of variation (差异系数).
//!
//! Everything here is a pure function over records already read: no I/O, no
//! Automerge. The phone shows a teacher [`evaluate_school`]'s result for their
//! own school; the server's county dashboards run the same function for every
//! school and feed the per-school values into [`coefficient_of_variation`].
//!
//! Thresholds, the books-per-student figures and the teaching-point policy are
//! read only from the county template ([`IndicatorTemplate`]s and
//! [`TemplateSettings`]). [`reference_template`] holds the published figures
//! as the defaults a county seeds its template with; evaluation never reads it.
//!
//! Reasons and explanations shown to people are in Chinese (the users are
//! Chinese teachers); identifiers are English.

use serde::{Deserialize, Serialize};

use crate::records::{
    Book, BookStatus, ChecklistRow, ChecklistRowStatus, EntryStatus, EquipmentItem,
    EquipmentStatus, ImprovementPlan, IndicatorTemplate, PlanStatus, SchoolProfile, SchoolType,
    Stage, TeachingPointPolicy, TemplateSettings, ValueSource,
};
use crate::RecordId;

/// The code of the books-per-student line (生均图书). It is reported on its
/// own and never counts toward the R1–R7 pass rule.
pub const BOOKS_CODE: &str = "BOOKS";

/// Weight of one 初中 student against one 小学 student (1 : 1.1) when a
/// school-wide figure of a 九年一贯制 school is split between its two stages.
pub const JUNIOR_SPLIT_WEIGHT: f64 = 1.1;

/// How many of the seven indicators R1–R7 a stage must meet to pass.
pub const PASS_MIN_MET: u8 = 6;

/// The share of its threshold the one indicator a passing stage does not meet
/// must still reach (85%).
pub const PASS_NEAR_MISS_RATIO: f64 = 0.85;

// ---------------------------------------------------------------------------
// The well-known indicators
// ---------------------------------------------------------------------------

/// The seven resource indicators (资源配置) whose values can be computed from a
/// school's records. Their thresholds are never here: they come from the
/// county template, matched by [`WellKnown::code`].
///
/// | code | indicator | computed as |
/// |---|---|---|
/// | R1 | 每百名学生拥有高于规定学历教师数 | `teachers_qualified` × 100 ÷ students |
/// | R2 | 每百名学生拥有县级以上骨干教师数 | `teachers_key` × 100 ÷ students |
/// | R3 | 每百名学生拥有体育、艺术专任教师数 | `teachers_pe_arts` × 100 ÷ students |
/// | R4 | 生均教学及辅助用房面积 | `teaching_area_m2` ÷ students |
/// | R5 | 生均体育运动场馆面积 | `sports_area_m2` ÷ students |
/// | R6 | 生均教学仪器设备值 | Σ quantity × unit price (元) of equipment in use ÷ students |
/// | R7 | 每百名学生拥有网络多媒体教室数 | `multimedia_classrooms` × 100 ÷ students |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WellKnown {
    /// 每百名学生拥有高于规定学历教师数
    R1,
    /// 每百名学生拥有县级以上骨干教师数
    R2,
    /// 每百名学生拥有体育、艺术(音乐、美术)专任教师数
    R3,
    /// 生均教学及辅助用房面积
    R4,
    /// 生均体育运动场馆面积
    R5,
    /// 生均教学仪器设备值
    R6,
    /// 每百名学生拥有网络多媒体教室数
    R7,
}

/// How a shortfall is expressed in an indicator's own quantity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ShortfallKind {
    /// A whole number of things per 100 students (teachers, classrooms): round up.
    PerHundredWhole,
    /// An area per student: m², rounded up to 0.01.
    PerStudentArea,
    /// Money per student: 元, rounded up to the fen.
    PerStudentMoney,
    /// Whole things per student (book copies): round up.
    PerStudentWhole,
    /// An indicator whose quantity is unknown: threshold − value, in its unit.
    Raw,
}

/// One row of the well-known table.
struct WellKnownDef {
    code: &'static str,
    name: &'static str,
    unit: &'static str,
    /// What is counted, after its measure word, e.g. "名高于规定学历教师".
    counts: &'static str,
    /// The measure word of the school's figure, e.g. "名", "平方米".
    measure: &'static str,
    /// The measure word of the shortfall, e.g. "名教师".
    shortfall_unit: &'static str,
    shortfall: ShortfallKind,
}

const TABLE: [WellKnownDef; 7] = [
    WellKnownDef {
        code: "R1",
        measure: "名",
        name: "每百名学生拥有高于规定学历教师数",
        unit: "人/百生",
        counts: "名高于规定学历教师",
        shortfall_unit: "名高于规定学历教师",
        shortfall: ShortfallKind::PerHundredWhole,
    },
    WellKnownDef {
        code: "R2",
        measure: "名",
        name: "每百名学生拥有县级以上骨干教师数",
        unit: "人/百生",
        counts: "名县级以上骨干教师",
        shortfall_unit: "名县级以上骨干教师",
        shortfall: ShortfallKind::PerHundredWhole,
    },
    WellKnownDef {
        code: "R3",
        measure: "名",
        name: "每百名学生拥有体育、艺术(音乐、美术)专任教师数",
        unit: "人/百生",
        counts: "名体育、艺术专任教师",
        shortfall_unit: "名体育、艺术专任教师",
        shortfall: ShortfallKind::PerHundredWhole,
    },
    WellKnownDef {
        code: "R4",
        measure: "平方米",
        name: "生均教学及辅助用房面积",
        unit: "m²/生",
        counts: "平方米教学及辅助用房",
        shortfall_unit: "平方米",
        shortfall: ShortfallKind::PerStudentArea,
    },
    WellKnownDef {
        code: "R5",
        measure: "平方米",
        name: "生均体育运动场馆面积",
        unit: "m²/生",
        counts: "平方米体育运动场馆",
        shortfall_unit: "平方米",
        shortfall: ShortfallKind::PerStudentArea,
    },
    WellKnownDef {
        code: "R6",
        measure: "元",
        name: "生均教学仪器设备值",
        unit: "元/生",
        counts: "元在用设备",
        shortfall_unit: "元",
        shortfall: ShortfallKind::PerStudentMoney,
    },
    WellKnownDef {
        code: "R7",
        measure: "间",
        name: "每百名学生拥有网络多媒体教室数",
        unit: "间/百生",
        counts: "间网络多媒体教室",
        shortfall_unit: "间网络多媒体教室",
        shortfall: ShortfallKind::PerHundredWhole,
    },
];

impl WellKnown {
    /// R1 to R7, in order.
    pub const ALL: [WellKnown; 7] = [
        WellKnown::R1,
        WellKnown::R2,
        WellKnown::R3,
        WellKnown::R4,
        WellKnown::R5,
        WellKnown::R6,
        WellKnown::R7,
    ];

    fn def(self) -> &'static WellKnownDef {
        &TABLE[self as usize]
    }

    /// The code the template and checklist rows use, "R1".."R7".
    pub fn code(self) -> &'static str {
        self.def().code
    }

    /// The indicator by its code (surrounding spaces ignored).
    pub fn from_code(code: &str) -> Option<Self> {
        let code = code.trim();
        Self::ALL.into_iter().find(|w| w.code() == code)
    }

    /// The indicator's Chinese name, used when the template gives none.
    pub fn name(self) -> &'static str {
        self.def().name
    }

    /// The unit of its value, used when the template gives none.
    pub fn unit(self) -> &'static str {
        self.def().unit
    }

    /// Whether the value is per 100 students (R1, R2, R3, R7) rather than per student.
    pub fn per_hundred_students(self) -> bool {
        self.def().shortfall == ShortfallKind::PerHundredWhole
    }
}

// ---------------------------------------------------------------------------
// Input and results
// ---------------------------------------------------------------------------

/// What one school's evaluation reads: its records and its county's template.
#[derive(Clone, Copy, Debug)]
pub struct SchoolInput<'a> {
    /// 学校基本情况
    pub profile: &'a SchoolProfile,
    /// The equipment ledger (仪器设备台账), every status.
    pub equipment: &'a [EquipmentItem],
    /// The book catalogue (图书), every status.
    pub books: &'a [Book],
    /// Checklist rows (标准化建设), every status, with their ids.
    pub rows: &'a [(RecordId, ChecklistRow)],
    /// Improvement plans (整改计划), every status, with their ids.
    pub plans: &'a [(RecordId, ImprovementPlan)],
    /// The county template's indicators, every status.
    pub indicators: &'a [IndicatorTemplate],
    /// The county template's settings.
    pub settings: &'a TemplateSettings,
}

/// Where an indicator's value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[serde(rename_all = "snake_case")]
pub enum ValueOrigin {
    /// Computed from the school's records.
    Computed,
    /// Typed in on an active checklist row (手工填写); wins over a computed value.
    Typed,
    /// No value: see the result's `basis` for why.
    Missing,
}

/// How much more is needed to reach a threshold, in the indicator's own
/// quantity (teachers, m², 元, classrooms, book copies).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Shortfall {
    /// The amount missing: whole teachers, classrooms and copies are rounded
    /// up; m² and 元 are rounded up to 0.01.
    pub amount: f64,
    /// Its measure word, e.g. "名县级以上骨干教师", "平方米", "元", "册".
    pub unit: String,
}

/// An improvement plan (整改计划) linked to an indicator's checklist row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct PlanRef {
    /// The plan's id.
    pub id: RecordId,
    /// The checklist row it closes.
    pub row: RecordId,
    /// 措施
    pub action: String,
    /// 完成期限
    pub due_on: Option<String>,
    /// Never [`PlanStatus::Dropped`]: dropped plans are left out.
    pub status: PlanStatus,
}

/// One indicator of one stage: the school's value against the template's threshold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct IndicatorResult {
    /// "R1".."R7", [`BOOKS_CODE`], or a code of the county's own.
    pub code: String,
    /// The template's name, or the well-known name when the template has no entry.
    pub name: String,
    /// The unit of the value.
    pub unit: Option<String>,
    /// 学段
    pub stage: Stage,
    /// Whether it counts toward the R1–R7 pass rule.
    pub counted: bool,
    /// The value to reach (≥), from the county template.
    pub threshold: Option<f64>,
    /// The value judged: the typed one if any, else the computed one.
    pub value: Option<f64>,
    /// The value computed from the records, shown beside a typed one.
    pub computed: Option<f64>,
    /// The value typed on the checklist row.
    pub typed: Option<f64>,
    /// Which of the two `value` is.
    pub source: ValueOrigin,
    /// What the value was computed from, or why it could not be
    /// (e.g. "12 件在用设备，合计 45,600.00 元 ÷ 21 名学生").
    pub basis: String,
    /// value ≥ threshold; none without both.
    pub meets: Option<bool>,
    /// value ÷ threshold; none without both or with a threshold ≤ 0.
    pub ratio: Option<f64>,
    /// What is still needed; none when met or not determinable.
    pub shortfall: Option<Shortfall>,
    /// The checklist row of this indicator, if the school has an active one.
    pub row: Option<RecordId>,
    /// Plans on the active rows of this indicator, dropped ones left out,
    /// earliest due first.
    pub plans: Vec<PlanRef>,
    /// Anything else a person should know (no threshold, duplicate rows…).
    pub notes: Vec<String>,
}

/// One of R1–R7 that is below its threshold, and how far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct BelowThreshold {
    /// The indicator's code.
    pub code: String,
    /// value ÷ threshold, if the threshold is above 0.
    pub ratio: Option<f64>,
}

/// One of R1–R7 that has no value or no threshold, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct MissingIndicator {
    /// The indicator's code.
    pub code: String,
    /// Why, for a person to act on.
    pub reason: String,
}

/// A stage's verdict on the seven resource indicators: it passes when at least
/// 6 of R1–R7 meet their threshold and the one that does not reaches at least
/// 85% of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// 达标
    Pass {
        /// How many of the seven meet their threshold (6 or 7).
        met: u8,
        /// The one below its threshold but at ≥ 85% of it, if any.
        near_miss: Option<BelowThreshold>,
    },
    /// 未达标
    Fail {
        /// How many of the seven meet their threshold.
        met: u8,
        /// Those that do not.
        not_met: Vec<BelowThreshold>,
        /// Why, in words.
        reason: String,
    },
    /// 无法判定: some of R1–R7 lack a value or a threshold.
    Undetermined {
        /// What is missing.
        missing: Vec<MissingIndicator>,
        /// How many of the others meet their threshold.
        met: u8,
        /// Those of the others that do not.
        not_met: Vec<BelowThreshold>,
    },
}

/// One stage (学段) of a school, evaluated as a school of its own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct StageEvaluation {
    /// 学段
    pub stage: Stage,
    /// The stage's students (grades 1–6 or 7–9).
    pub students: u32,
    /// The share of the school-wide figures (teachers, areas, classrooms,
    /// equipment, books) attributed to this stage: 1 for a single-stage school.
    pub share: f64,
    /// R1–R7 in order, then the template's other indicators for this stage.
    pub indicators: Vec<IndicatorResult>,
    /// 生均图书 (code [`BOOKS_CODE`]): its own line, not in the pass rule.
    pub books: IndicatorResult,
    /// The R1–R7 verdict.
    pub verdict: Verdict,
    /// Anything else about this stage (no students, the split…).
    pub notes: Vec<String>,
}

/// How the county treats a teaching point (教学点) in the resource indicators.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[serde(tag = "treatment", rename_all = "snake_case")]
pub enum TeachingPointTreatment {
    /// Evaluated as a school of its own.
    EvaluatedAlone,
    /// Folded into its central school (中心校).
    FoldedIntoParent {
        /// The central school's code, from the profile.
        parent_school: Option<String>,
    },
    /// Left out of the county's figures: fewer students than the county's minimum.
    LeftOut {
        /// The point's students.
        students: u32,
        /// The county's minimum.
        min_students: u32,
    },
}

/// A teaching point's treatment and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct TeachingPointStatus {
    /// What the county does with this point's figures.
    pub treatment: TeachingPointTreatment,
    /// The county setting it follows, if set.
    pub policy: Option<TeachingPointPolicy>,
    /// In words.
    pub explanation: String,
}

/// A school's standardization checklist against its county's template.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct SchoolEvaluation {
    /// 学校标识码
    pub school_code: Option<String>,
    /// 学校名称
    pub name: Option<String>,
    /// The school type as recorded (none: inferred from the grades, see `notes`).
    pub school_type: Option<SchoolType>,
    /// One evaluation per stage: two for a 九年一贯制 school.
    pub stages: Vec<StageEvaluation>,
    /// For a teaching point: whether the county evaluates it alone, folds it
    /// into its parent or leaves it out. The figures are computed regardless.
    pub teaching_point: Option<TeachingPointStatus>,
    /// Anything else about the school (inferred stages, stray rows…).
    pub notes: Vec<String>,
}

/// The enrollment-weighted coefficient of variation (差异系数) of one
/// indicator across a county's schools of one stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CvResult {
    /// Schools counted (with students and a finite value).
    pub schools: usize,
    /// Schools left out for having no students.
    pub excluded_no_students: usize,
    /// Schools left out for a value that is not a finite number.
    pub excluded_invalid: usize,
    /// P = Σ P_i over the schools counted.
    pub students: u64,
    /// X̄ = Σ P_i x_i ÷ P.
    pub mean: Option<f64>,
    /// S = sqrt(Σ (P_i ÷ P)(x_i − X̄)²).
    pub std_dev: Option<f64>,
    /// CV = S ÷ X̄.
    pub cv: Option<f64>,
    /// Why there is no CV, if there is none.
    pub reason: Option<String>,
}

impl CvResult {
    /// Whether the CV is within a limit (≤), e.g. the template's
    /// `cv_limit_primary`; none without both.
    pub fn within(&self, limit: Option<f64>) -> Option<bool> {
        Some(self.cv? <= limit?)
    }
}

// ---------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------

/// Evaluates a school's checklist: per stage, each indicator's value (typed on
/// an active checklist row, else computed from the records) against the county
/// template's threshold, the shortfall and plans, and the R1–R7 verdict.
///
/// Stages: 教学点, 完全小学 and 中心校 are 小学 (a 中心校 with grade 7–9 students
/// is evaluated as both stages); 初中 is 初中; 九年一贯制 is both, each with its
/// own students, school-wide figures split 1 : 1.1 per student (see
/// [`JUNIOR_SPLIT_WEIGHT`]). With no school type, the stages follow the grades
/// that have students.
pub fn evaluate_school(input: &SchoolInput<'_>) -> SchoolEvaluation {
    let p = input.profile;
    let mut notes = Vec::new();

    let primary = sum_grades(&[
        p.students_grade_1,
        p.students_grade_2,
        p.students_grade_3,
        p.students_grade_4,
        p.students_grade_5,
        p.students_grade_6,
    ]);
    let junior = sum_grades(&[p.students_grade_7, p.students_grade_8, p.students_grade_9]);

    let stages: Vec<Stage> = match p.school_type {
        Some(SchoolType::TeachingPoint) | Some(SchoolType::Primary) => vec![Stage::Primary],
        Some(SchoolType::Junior) => vec![Stage::Junior],
        Some(SchoolType::NineYear) => vec![Stage::Primary, Stage::Junior],
        Some(SchoolType::Central) => {
            if junior.students > 0 {
                notes.push(format!(
                    "中心校有七至九年级学生 {} 名，按小学、初中两个学段分别评估",
                    junior.students
                ));
                vec![Stage::Primary, Stage::Junior]
            } else {
                vec![Stage::Primary]
            }
        }
        None => match (primary.students > 0, junior.students > 0) {
            (true, true) => {
                notes.push("学校概况未填写学校类型：一至九年级都有学生，按九年一贯制评估".into());
                vec![Stage::Primary, Stage::Junior]
            }
            (false, true) => {
                notes.push("学校概况未填写学校类型：只有七至九年级学生，按初中评估".into());
                vec![Stage::Junior]
            }
            (true, false) => {
                notes.push("学校概况未填写学校类型：只有一至六年级学生，按小学评估".into());
                vec![Stage::Primary]
            }
            (false, false) => {
                notes.push("学校概况未填写学校类型，也没有学生数，暂按小学评估".into());
                vec![Stage::Primary]
            }
        },
    };
    if !stages.contains(&Stage::Primary) && primary.students > 0 {
        notes.push(format!(
            "一至六年级填有 {} 名学生，但学校类型没有小学学段，未计入",
            primary.students
        ));
    }
    if !stages.contains(&Stage::Junior) && junior.students > 0 {
        notes.push(format!(
            "七至九年级填有 {} 名学生，但学校类型没有初中学段，未计入",
            junior.students
        ));
    }

    let split = stages.len() == 2;
    let weighted = primary.students as f64 + JUNIOR_SPLIT_WEIGHT * junior.students as f64;
    let share_of = |stage: Stage| -> f64 {
        if !split {
            return 1.0;
        }
        let (own, total) = if weighted > 0.0 {
            (
                match stage {
                    Stage::Primary => primary.students as f64,
                    Stage::Junior => JUNIOR_SPLIT_WEIGHT * junior.students as f64,
                },
                weighted,
            )
        } else {
            (
                match stage {
                    Stage::Primary => 1.0,
                    Stage::Junior => JUNIOR_SPLIT_WEIGHT,
                },
                1.0 + JUNIOR_SPLIT_WEIGHT,
            )
        };
        own / total
    };

    let stage_evals = stages
        .iter()
        .map(|&stage| {
            let grades = match stage {
                Stage::Primary => primary,
                Stage::Junior => junior,
            };
            let ctx = StageCtx {
                stage,
                students: grades.students,
                students_recorded: grades.recorded,
                share: share_of(stage),
                split,
            };
            evaluate_stage(input, &ctx)
        })
        .collect();

    let teaching_point = (p.school_type == Some(SchoolType::TeachingPoint))
        .then(|| teaching_point_status(p, input.settings, primary.students + junior.students));

    // Active rows whose code the template does not know: say so, so they are not lost.
    let mut stray: Vec<&str> = input
        .rows
        .iter()
        .filter(|(_, r)| r.status == ChecklistRowStatus::Active)
        .map(|(_, r)| r.indicator_code.trim())
        .filter(|code| {
            WellKnown::from_code(code).is_none()
                && *code != BOOKS_CODE
                && !input
                    .indicators
                    .iter()
                    .any(|t| t.status == EntryStatus::Active && t.code.trim() == *code)
        })
        .collect();
    stray.sort_unstable();
    stray.dedup();
    for code in stray {
        notes.push(format!("清单中指标代码“{code}”不在县模板中，未评估"));
    }

    SchoolEvaluation {
        school_code: p.school_code.clone(),
        name: p.name.clone(),
        school_type: p.school_type,
        stages: stage_evals,
        teaching_point,
        notes,
    }
}

/// Students of a stage's grades.
#[derive(Clone, Copy, Debug)]
struct Grades {
    students: u32,
    /// Whether any grade of the stage has a figure at all.
    recorded: bool,
}

fn sum_grades(grades: &[Option<u32>]) -> Grades {
    Grades {
        students: grades
            .iter()
            .flatten()
            .fold(0u32, |a, &n| a.saturating_add(n)),
        recorded: grades.iter().any(Option::is_some),
    }
}

/// What a stage's computations need.
struct StageCtx {
    stage: Stage,
    students: u32,
    students_recorded: bool,
    share: f64,
    split: bool,
}

impl StageCtx {
    /// Why per-student values cannot be computed, if they cannot.
    fn no_students(&self) -> Option<String> {
        (self.students == 0).then(|| {
            if self.students_recorded {
                format!("{}学段没有学生，不计算生均值", stage_zh(self.stage))
            } else {
                format!(
                    "学校概况未填写{}学生数，不计算生均值",
                    grades_zh(self.stage)
                )
            }
        })
    }

    /// A school-wide amount and its description, as this stage's part.
    fn part(&self, amount: f64, text: &str, unit: &str, money: bool) -> (f64, String) {
        if !self.split {
            return (amount, text.to_owned());
        }
        let own = amount * self.share;
        let own_text = if money {
            format!("{} 元", fmt_yuan(own))
        } else {
            format!("{} {unit}", fmt_num(own))
        };
        (
            own,
            format!(
                "全校{text}，按小学:初中 = 1:{JUNIOR_SPLIT_WEIGHT} 生均权重{}分摊 {}，即 {own_text}",
                stage_zh(self.stage),
                fmt_pct(self.share)
            ),
        )
    }
}

/// A computed value and what it was computed from.
struct Computed {
    value: f64,
    basis: String,
}

fn evaluate_stage(input: &SchoolInput<'_>, ctx: &StageCtx) -> StageEvaluation {
    let mut notes = Vec::new();
    if let Some(why) = ctx.no_students() {
        notes.push(why);
    }
    if ctx.split {
        notes.push(format!(
            "全校教师、面积、教室、设备、图书按小学:初中 = 1:{JUNIOR_SPLIT_WEIGHT} 生均权重分摊，本学段占 {}",
            fmt_pct(ctx.share)
        ));
    }

    let mut indicators: Vec<IndicatorResult> = WellKnown::ALL
        .into_iter()
        .map(|wk| {
            let def = wk.def();
            let template = template_entry(input.indicators, def.code, ctx.stage);
            indicator_result(
                input,
                ctx,
                def.code,
                (def.name, Some(def.unit)),
                template,
                compute_well_known(wk, input, ctx),
                (def.shortfall, def.shortfall_unit),
                true,
            )
        })
        .collect();

    // The county's own indicators for this stage: typed values only.
    let mut others: Vec<&str> = input
        .indicators
        .iter()
        .filter(|t| t.status == EntryStatus::Active && t.stage == ctx.stage)
        .map(|t| t.code.trim())
        .filter(|c| WellKnown::from_code(c).is_none() && *c != BOOKS_CODE)
        .collect();
    others.sort_unstable();
    others.dedup();
    for code in others {
        let template = template_entry(input.indicators, code, ctx.stage);
        let unit = template
            .entry
            .and_then(|t| t.unit.clone())
            .unwrap_or_default();
        indicators.push(indicator_result(
            input,
            ctx,
            code,
            (code, None),
            template,
            Err("县模板自定义指标，无法由记录计算，请在清单中填写数值".into()),
            (ShortfallKind::Raw, &unit),
            false,
        ));
    }

    let books = books_result(input, ctx);
    let verdict = verdict(&indicators[..WellKnown::ALL.len()]);

    StageEvaluation {
        stage: ctx.stage,
        students: ctx.students,
        share: ctx.share,
        indicators,
        books,
        verdict,
        notes,
    }
}

/// The template's active entries for one code and stage.
struct TemplateMatch<'a> {
    entry: Option<&'a IndicatorTemplate>,
    threshold: Result<f64, String>,
    notes: Vec<String>,
}

fn template_entry<'a>(
    indicators: &'a [IndicatorTemplate],
    code: &str,
    stage: Stage,
) -> TemplateMatch<'a> {
    let matching: Vec<&IndicatorTemplate> = indicators
        .iter()
        .filter(|t| t.status == EntryStatus::Active && t.stage == stage && t.code.trim() == code)
        .collect();
    let mut notes = Vec::new();
    let valid: Vec<&IndicatorTemplate> = matching
        .iter()
        .copied()
        .filter(|t| t.threshold.is_finite())
        .collect();
    // With several active entries the strictest wins, whatever their order.
    let best = valid
        .iter()
        .copied()
        .max_by(|a, b| a.threshold.total_cmp(&b.threshold));
    if valid.len() > 1 {
        notes.push(format!(
            "县模板中{}学段 {code} 有 {} 条有效阈值，取最高值",
            stage_zh(stage),
            valid.len()
        ));
    }
    let threshold = match best {
        Some(t) => Ok(t.threshold),
        None if !matching.is_empty() => Err(format!(
            "县模板中{}学段 {code} 的阈值不是有效数字",
            stage_zh(stage)
        )),
        None => Err(format!("县模板未设置{}学段 {code} 的阈值", stage_zh(stage))),
    };
    TemplateMatch {
        entry: best.or(matching.first().copied()),
        threshold,
        notes,
    }
}

/// The school's active checklist rows for one code.
struct RowMatch {
    row: Option<RecordId>,
    typed: Option<f64>,
    plans: Vec<PlanRef>,
    notes: Vec<String>,
}

fn match_rows(input: &SchoolInput<'_>, code: &str) -> RowMatch {
    let mut rows: Vec<&(RecordId, ChecklistRow)> = input
        .rows
        .iter()
        .filter(|(_, r)| r.status == ChecklistRowStatus::Active && r.indicator_code.trim() == code)
        .collect();
    rows.sort_by_key(|(id, _)| *id);
    let mut notes = Vec::new();

    let typed_rows: Vec<(RecordId, f64)> = rows
        .iter()
        .filter(|(_, r)| r.value_source == ValueSource::Typed)
        .filter_map(|(id, r)| r.value.filter(|v| v.is_finite()).map(|v| (*id, v)))
        .collect();
    if rows
        .iter()
        .any(|(_, r)| r.value_source == ValueSource::Typed && r.value.is_none())
        && typed_rows.is_empty()
    {
        notes.push("清单行标为手工填写，但没有填数值".into());
    }
    if rows.len() > 1 {
        notes.push(format!(
            "清单中 {code} 有 {} 条有效行{}",
            rows.len(),
            if typed_rows.len() > 1 {
                "，手工填写值取编号最小的一行"
            } else {
                ""
            }
        ));
    }
    let typed = typed_rows.first().copied();
    let row = typed.map(|(id, _)| id).or(rows.first().map(|(id, _)| *id));

    let mut plans: Vec<PlanRef> = input
        .plans
        .iter()
        .filter(|(_, p)| p.status != PlanStatus::Dropped && rows.iter().any(|(id, _)| *id == p.row))
        .map(|(id, p)| PlanRef {
            id: *id,
            row: p.row,
            action: p.action.clone(),
            due_on: p.due_on.clone(),
            status: p.status,
        })
        .collect();
    plans.sort_by(|a, b| {
        (a.due_on.is_none(), &a.due_on, a.id).cmp(&(b.due_on.is_none(), &b.due_on, b.id))
    });

    RowMatch {
        row,
        typed: typed.map(|(_, v)| v),
        plans,
        notes,
    }
}

#[allow(clippy::too_many_arguments)]
fn indicator_result(
    input: &SchoolInput<'_>,
    ctx: &StageCtx,
    code: &str,
    (default_name, default_unit): (&str, Option<&str>),
    template: TemplateMatch<'_>,
    computed: Result<Computed, String>,
    (kind, shortfall_unit): (ShortfallKind, &str),
    counted: bool,
) -> IndicatorResult {
    let rows = match_rows(input, code);
    let mut notes = template.notes;
    notes.extend(rows.notes);
    let name = template
        .entry
        .map(|t| t.name.clone())
        .unwrap_or_else(|| default_name.to_owned());
    let unit = template
        .entry
        .and_then(|t| t.unit.clone())
        .or(default_unit.map(str::to_owned));
    let threshold = match template.threshold {
        Ok(t) => Some(t),
        Err(why) => {
            notes.push(why);
            None
        }
    };
    let (computed_value, computed_basis) = match computed {
        Ok(c) => (Some(c.value), Ok(c.basis)),
        Err(why) => (None, Err(why)),
    };
    let (value, source, basis) = match (rows.typed, &computed_basis) {
        (Some(t), Ok(b)) => (
            Some(t),
            ValueOrigin::Typed,
            format!(
                "手工填写 {}；由记录计算为 {}（{b}）",
                fmt_num(t),
                fmt_num(computed_value.unwrap_or_default())
            ),
        ),
        (Some(t), Err(why)) => (
            Some(t),
            ValueOrigin::Typed,
            format!("手工填写 {}（未由记录计算：{why}）", fmt_num(t)),
        ),
        (None, Ok(b)) => (computed_value, ValueOrigin::Computed, b.clone()),
        (None, Err(why)) => (None, ValueOrigin::Missing, why.clone()),
    };

    let (meets, ratio) = match (value, threshold) {
        (Some(v), Some(t)) => (Some(at_least(v, t)), (t > 0.0).then(|| v / t)),
        _ => (None, None),
    };
    let shortfall = match (meets, value, threshold) {
        (Some(false), Some(v), Some(t)) => shortfall(kind, shortfall_unit, t - v, ctx.students),
        _ => None,
    };

    IndicatorResult {
        code: code.to_owned(),
        name,
        unit,
        stage: ctx.stage,
        counted,
        threshold,
        value,
        computed: computed_value,
        typed: rows.typed,
        source,
        basis,
        meets,
        ratio,
        shortfall,
        row: rows.row,
        plans: rows.plans,
        notes,
    }
}

/// `value ≥ threshold`, forgiving the last bits of floating-point noise
/// (21 teachers ÷ 500 students × 100 is 4.2).
fn at_least(value: f64, threshold: f64) -> bool {
    value >= threshold - 1e-9 * threshold.abs().max(1.0)
}

/// Rounds up, forgiving floating-point noise (1.0000000000000004 teachers is 1).
fn ceil_clean(x: f64) -> f64 {
    (x - 1e-6).ceil()
}

fn shortfall(kind: ShortfallKind, unit: &str, gap: f64, students: u32) -> Option<Shortfall> {
    let s = students as f64;
    let amount = match kind {
        ShortfallKind::Raw => gap,
        _ if students == 0 => return None,
        ShortfallKind::PerHundredWhole => ceil_clean(gap * s / 100.0),
        ShortfallKind::PerStudentWhole => ceil_clean(gap * s),
        ShortfallKind::PerStudentArea | ShortfallKind::PerStudentMoney => {
            ceil_clean(gap * s * 100.0) / 100.0
        }
    };
    Some(Shortfall {
        amount,
        unit: unit.to_owned(),
    })
}

fn compute_well_known(
    wk: WellKnown,
    input: &SchoolInput<'_>,
    ctx: &StageCtx,
) -> Result<Computed, String> {
    if let Some(why) = ctx.no_students() {
        return Err(why);
    }
    let p = input.profile;
    let def = wk.def();
    let count = |v: Option<u32>, missing: &str| -> Result<(f64, String, &'static str), String> {
        let n = v.ok_or_else(|| format!("学校概况未填写{missing}"))?;
        Ok((n as f64, format!("{n} {}", def.counts), def.measure))
    };
    let area = |v: Option<f64>, missing: &str| -> Result<(f64, String, &'static str), String> {
        let a = v
            .filter(|a| a.is_finite())
            .ok_or_else(|| format!("学校概况未填写{missing}"))?;
        Ok((a, format!("{} {}", fmt_num(a), def.counts), def.measure))
    };
    let (amount, text) = match wk {
        WellKnown::R1 => {
            let (n, t, u) = count(p.teachers_qualified, "高于规定学历教师数")?;
            ctx.part(n, &t, u, false)
        }
        WellKnown::R2 => {
            let (n, t, u) = count(p.teachers_key, "县级以上骨干教师数")?;
            ctx.part(n, &t, u, false)
        }
        WellKnown::R3 => {
            let (n, t, u) = count(p.teachers_pe_arts, "体育、艺术专任教师数")?;
            ctx.part(n, &t, u, false)
        }
        WellKnown::R4 => {
            let (a, t, u) = area(p.teaching_area_m2, "教学及辅助用房面积")?;
            ctx.part(a, &t, u, false)
        }
        WellKnown::R5 => {
            let (a, t, u) = area(p.sports_area_m2, "体育运动场馆面积")?;
            ctx.part(a, &t, u, false)
        }
        WellKnown::R6 => {
            if input.equipment.is_empty() {
                return Err("设备台账还没有记录".into());
            }
            let in_use = input
                .equipment
                .iter()
                .filter(|e| e.status == EquipmentStatus::InUse);
            let (pieces, fen) = in_use.fold((0u64, 0i64), |(q, f), e| {
                (q + e.quantity as u64, f.saturating_add(e.value_fen()))
            });
            let others: u64 = input
                .equipment
                .iter()
                .filter(|e| e.status != EquipmentStatus::InUse)
                .map(|e| e.quantity as u64)
                .sum();
            let mut t = format!("{pieces} 件在用设备，合计 {} 元", fmt_yuan_fen(fen));
            if others > 0 {
                t.push_str(&format!(
                    "（另有 {others} 件闲置、维修、损坏、报废或盘亏，未计入）"
                ));
            }
            ctx.part(fen as f64 / 100.0, &t, "元", true)
        }
        WellKnown::R7 => {
            let (n, t, u) = count(p.multimedia_classrooms, "网络多媒体教室数")?;
            ctx.part(n, &t, u, false)
        }
    };
    let students = ctx.students as f64;
    let (value, basis) = if wk.per_hundred_students() {
        (
            amount * 100.0 / students,
            format!("{text} × 100 ÷ {} 名学生", ctx.students),
        )
    } else {
        (
            amount / students,
            format!("{text} ÷ {} 名学生", ctx.students),
        )
    };
    Ok(Computed { value, basis })
}

fn books_result(input: &SchoolInput<'_>, ctx: &StageCtx) -> IndicatorResult {
    let (setting, setting_name) = match ctx.stage {
        Stage::Primary => (
            input.settings.books_per_student_primary,
            "books_per_student_primary",
        ),
        Stage::Junior => (
            input.settings.books_per_student_junior,
            "books_per_student_junior",
        ),
    };
    let mut template = template_entry(input.indicators, BOOKS_CODE, ctx.stage);
    match setting.filter(|v| v.is_finite()) {
        Some(v) => {
            template.threshold = Ok(v);
            template.notes.clear();
        }
        None if template.threshold.is_ok() => template.notes.push(format!(
            "县模板设置未填 {setting_name}，阈值取自模板中的 {BOOKS_CODE} 指标"
        )),
        None => {
            template.threshold = Err(format!(
                "县模板未设置{}生均图书册数（{setting_name}），本行没有阈值",
                stage_zh(ctx.stage)
            ));
        }
    }
    let computed = compute_books(input, ctx);
    indicator_result(
        input,
        ctx,
        BOOKS_CODE,
        ("生均图书", Some("册/生")),
        template,
        computed,
        (ShortfallKind::PerStudentWhole, "册"),
        false,
    )
}

fn compute_books(input: &SchoolInput<'_>, ctx: &StageCtx) -> Result<Computed, String> {
    if let Some(why) = ctx.no_students() {
        return Err(why);
    }
    if input.books.is_empty() {
        return Err("图书目录还没有记录".into());
    }
    let counted: u64 = input
        .books
        .iter()
        .filter(|b| matches!(b.status, BookStatus::OnShelf | BookStatus::OnLoan))
        .map(|b| b.copies as u64)
        .sum();
    let others: u64 = input
        .books
        .iter()
        .filter(|b| !matches!(b.status, BookStatus::OnShelf | BookStatus::OnLoan))
        .map(|b| b.copies as u64)
        .sum();
    let mut text = format!("{counted} 册在架或借出图书");
    if others > 0 {
        text.push_str(&format!("（另有 {others} 册剔旧或遗失，未计入）"));
    }
    let (amount, text) = ctx.part(counted as f64, &text, "册", false);
    Ok(Computed {
        value: amount / ctx.students as f64,
        basis: format!("{text} ÷ {} 名学生", ctx.students),
    })
}

fn verdict(seven: &[IndicatorResult]) -> Verdict {
    let mut missing = Vec::new();
    let mut not_met = Vec::new();
    let mut met = 0u8;
    for r in seven {
        match r.meets {
            Some(true) => met += 1,
            Some(false) => not_met.push(BelowThreshold {
                code: r.code.clone(),
                ratio: r.ratio,
            }),
            None => {
                let mut reasons = Vec::new();
                if r.value.is_none() {
                    reasons.push(r.basis.clone());
                }
                if r.threshold.is_none() {
                    reasons.push(format!(
                        "县模板未设置{}学段 {} 的阈值",
                        stage_zh(r.stage),
                        r.code
                    ));
                }
                missing.push(MissingIndicator {
                    code: r.code.clone(),
                    reason: reasons.join("；"),
                });
            }
        }
    }
    if !missing.is_empty() {
        return Verdict::Undetermined {
            missing,
            met,
            not_met,
        };
    }
    match not_met.as_slice() {
        [] => Verdict::Pass {
            met,
            near_miss: None,
        },
        [one]
            if met >= PASS_MIN_MET
                && one.ratio.is_some_and(|r| at_least(r, PASS_NEAR_MISS_RATIO)) =>
        {
            Verdict::Pass {
                met,
                near_miss: Some(one.clone()),
            }
        }
        [one] if met >= PASS_MIN_MET => Verdict::Fail {
            met,
            reason: format!(
                "{}/{} 项达标，但 {} 只达到阈值的 {}，不足 85%",
                met,
                seven.len(),
                one.code,
                one.ratio.map(fmt_pct).unwrap_or_else(|| "—".into())
            ),
            not_met,
        },
        _ => Verdict::Fail {
            met,
            reason: format!(
                "只有 {}/{} 项达标（{} 未达标），至少需要 {PASS_MIN_MET} 项",
                met,
                seven.len(),
                not_met
                    .iter()
                    .map(|b| b.code.as_str())
                    .collect::<Vec<_>>()
                    .join("、")
            ),
            not_met,
        },
    }
}

fn teaching_point_status(
    p: &SchoolProfile,
    settings: &TemplateSettings,
    students: u32,
) -> TeachingPointStatus {
    let policy = settings.teaching_point_policy;
    let (treatment, explanation) = match policy {
        None => (
            TeachingPointTreatment::EvaluatedAlone,
            "县模板未设置教学点政策，按单独评估".to_owned(),
        ),
        Some(TeachingPointPolicy::EvaluateAlone) => (
            TeachingPointTreatment::EvaluatedAlone,
            "县模板规定教学点单独评估".to_owned(),
        ),
        Some(TeachingPointPolicy::FoldIntoParent) => (
            TeachingPointTreatment::FoldedIntoParent {
                parent_school: p.parent_school.clone(),
            },
            match &p.parent_school {
                Some(code) => format!("县模板规定教学点并入中心校（{code}）评估"),
                None => "县模板规定教学点并入中心校评估，但学校概况未填写所属中心校".to_owned(),
            },
        ),
        Some(TeachingPointPolicy::ExcludeUnder) => match settings.teaching_point_min_students {
            None => (
                TeachingPointTreatment::EvaluatedAlone,
                "县模板规定学生数不足最少人数的教学点不参评，但未设置最少人数，按单独评估"
                    .to_owned(),
            ),
            Some(min) if students < min => (
                TeachingPointTreatment::LeftOut {
                    students,
                    min_students: min,
                },
                format!("教学点只有 {students} 名学生，少于县模板规定的 {min} 名，不参评（仍显示各项数据）"),
            ),
            Some(min) => (
                TeachingPointTreatment::EvaluatedAlone,
                format!("教学点有 {students} 名学生，不少于县模板规定的 {min} 名，单独评估"),
            ),
        },
    };
    TeachingPointStatus {
        treatment,
        policy,
        explanation,
    }
}

// ---------------------------------------------------------------------------
// Coefficient of variation
// ---------------------------------------------------------------------------

/// The enrollment-weighted coefficient of variation (差异系数) of one
/// indicator over the schools of one stage, each given as (students, value):
///
/// ```text
/// P  = Σ P_i
/// X̄  = Σ P_i · x_i / P
/// S  = sqrt( Σ (P_i / P) · (x_i − X̄)² )
/// CV = S / X̄
/// ```
///
/// Schools with no students are left out and counted; so are values that are
/// not finite numbers. X̄ = 0 (or no school left) gives no CV, with a reason.
/// Never the unweighted mean or standard deviation.
///
/// ```
/// use sync_core::indicators::coefficient_of_variation;
/// let cv = coefficient_of_variation(&[(100, 10.0), (300, 20.0), (0, 99.0)]);
/// assert_eq!(cv.excluded_no_students, 1);
/// assert!((cv.mean.unwrap() - 17.5).abs() < 1e-12);
/// assert!((cv.cv.unwrap() - 18.75f64.sqrt() / 17.5).abs() < 1e-12);
/// ```
pub fn coefficient_of_variation(values: &[(u32, f64)]) -> CvResult {
    let excluded_no_students = values.iter().filter(|(p, _)| *p == 0).count();
    let excluded_invalid = values
        .iter()
        .filter(|(p, x)| *p > 0 && !x.is_finite())
        .count();
    let counted: Vec<(f64, f64)> = values
        .iter()
        .filter(|(p, x)| *p > 0 && x.is_finite())
        .map(|&(p, x)| (p as f64, x))
        .collect();
    let students: u64 = values
        .iter()
        .filter(|(p, x)| *p > 0 && x.is_finite())
        .map(|&(p, _)| p as u64)
        .sum();
    let mut result = CvResult {
        schools: counted.len(),
        excluded_no_students,
        excluded_invalid,
        students,
        mean: None,
        std_dev: None,
        cv: None,
        reason: None,
    };
    if counted.is_empty() {
        result.reason = Some("没有有学生的学校，无法计算差异系数".into());
        return result;
    }
    let total = students as f64;
    let mean = counted.iter().map(|(p, x)| p * x).sum::<f64>() / total;
    let variance = counted
        .iter()
        .map(|(p, x)| (p / total) * (x - mean).powi(2))
        .sum::<f64>()
        .max(0.0);
    let std_dev = variance.sqrt();
    result.mean = Some(mean);
    result.std_dev = Some(std_dev);
    if mean == 0.0 {
        result.reason = Some("加权平均值为 0，差异系数无意义".into());
    } else {
        result.cv = Some(std_dev / mean);
    }
    result
}

// ---------------------------------------------------------------------------
// Reference template
// ---------------------------------------------------------------------------

/// The published figures (shared/domain/indicators.md) as the defaults a
/// county seeds its template with: R1–R7 for 小学 and 初中 with their Chinese
/// names and units; 生均图书 25 册 (小学, 《中小学图书馆(室)规程》2018) and
/// 35 册 (初中, the same 规程's figure for 初中); 差异系数 limits 0.50 (小学)
/// and 0.45 (初中); teaching points evaluated alone, with 50 students as the
/// minimum should the county switch to leaving small points out.
///
/// These are seeding defaults only: [`evaluate_school`] only ever reads the
/// county's template, which the county may change.
pub fn reference_template() -> (Vec<IndicatorTemplate>, TemplateSettings) {
    const FIGURES: [(WellKnown, f64, f64); 7] = [
        (WellKnown::R1, 4.2, 5.3),
        (WellKnown::R2, 1.0, 1.0),
        (WellKnown::R3, 0.9, 0.9),
        (WellKnown::R4, 4.5, 5.8),
        (WellKnown::R5, 7.5, 10.2),
        (WellKnown::R6, 2000.0, 2500.0),
        (WellKnown::R7, 2.3, 2.4),
    ];
    let indicators = [Stage::Primary, Stage::Junior]
        .into_iter()
        .flat_map(|stage| {
            FIGURES
                .iter()
                .map(move |&(wk, primary, junior)| IndicatorTemplate {
                    code: wk.code().into(),
                    name: wk.name().into(),
                    stage,
                    threshold: match stage {
                        Stage::Primary => primary,
                        Stage::Junior => junior,
                    },
                    unit: Some(wk.unit().into()),
                    status: EntryStatus::Active,
                })
        })
        .collect();
    let settings = TemplateSettings {
        teaching_point_policy: Some(TeachingPointPolicy::EvaluateAlone),
        teaching_point_min_students: Some(50),
        cv_limit_primary: Some(0.50),
        cv_limit_junior: Some(0.45),
        books_per_student_primary: Some(25.0),
        books_per_student_junior: Some(35.0),
        review_due: None,
    };
    (indicators, settings)
}

// ---------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------

fn stage_zh(stage: Stage) -> &'static str {
    match stage {
        Stage::Primary => "小学",
        Stage::Junior => "初中",
    }
}

fn grades_zh(stage: Stage) -> &'static str {
    match stage {
        Stage::Primary => "一至六年级",
        Stage::Junior => "七至九年级",
    }
}

/// A whole number without decimals, otherwise two decimals.
fn fmt_num(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{}", x.round() as i64)
    } else {
        format!("{x:.2}")
    }
}

fn fmt_pct(share: f64) -> String {
    format!("{:.2}%", share * 100.0)
}

fn fmt_yuan(yuan: f64) -> String {
    fmt_yuan_fen((yuan * 100.0).round() as i64)
}

/// Fen as 元 with thousands separators: 4_560_000 → "45,600.00".
fn fmt_yuan_fen(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let fen = fen.unsigned_abs();
    let digits = (fen / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}{grouped}.{:02}", fen % 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{BookStatus, EquipmentStatus, PlanStatus};

    const EPS: f64 = 1e-9;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6 * b.abs().max(1.0)
    }

    fn empty_profile() -> SchoolProfile {
        SchoolProfile {
            school_code: Some("4301230001".into()),
            name: Some("青山村小学".into()),
            school_type: None,
            township: None,
            parent_school: None,
            students_grade_1: None,
            students_grade_2: None,
            students_grade_3: None,
            students_grade_4: None,
            students_grade_5: None,
            students_grade_6: None,
            students_grade_7: None,
            students_grade_8: None,
            students_grade_9: None,
            classes: None,
            teachers_total: None,
            teachers_qualified: None,
            teachers_key: None,
            teachers_pe_arts: None,
            teaching_area_m2: None,
            sports_area_m2: None,
            multimedia_classrooms: None,
        }
    }

    fn item(quantity: u32, unit_price_fen: i64, status: EquipmentStatus) -> EquipmentItem {
        EquipmentItem {
            asset_no: "YQ-1".into(),
            name: "学生显微镜".into(),
            category_code: None,
            brand: None,
            model: None,
            spec: None,
            unit: Some("台".into()),
            quantity,
            unit_price_fen,
            funding_source: None,
            keeper: None,
            room: None,
            acquired_on: None,
            status,
            status_reason: None,
            status_date: None,
        }
    }

    fn book(copies: u32, status: BookStatus) -> Book {
        Book {
            reg_no: "TS000001".into(),
            isbn: None,
            title: "西游记".into(),
            author: None,
            publisher: None,
            pub_year: None,
            clc_class: None,
            price_fen: None,
            copies,
            shelf: None,
            received_on: None,
            status,
            status_reason: None,
            status_date: None,
        }
    }

    fn row(code: &str, value: Option<f64>, source: ValueSource) -> ChecklistRow {
        ChecklistRow {
            indicator_code: code.into(),
            value,
            value_source: source,
            evidence: None,
            note: None,
            status: ChecklistRowStatus::Active,
            status_reason: None,
        }
    }

    fn plan(row: RecordId, action: &str, due: Option<&str>, status: PlanStatus) -> ImprovementPlan {
        ImprovementPlan {
            row,
            action: action.into(),
            due_on: due.map(Into::into),
            responsible: None,
            status,
            status_reason: None,
        }
    }

    fn entry(code: &str, stage: Stage, threshold: f64) -> IndicatorTemplate {
        IndicatorTemplate {
            code: code.into(),
            name: format!("县定指标 {code}"),
            stage,
            threshold,
            unit: None,
            status: EntryStatus::Active,
        }
    }

    /// Everything a test needs, owned, so it can be changed before evaluating.
    struct Fixture {
        profile: SchoolProfile,
        equipment: Vec<EquipmentItem>,
        books: Vec<Book>,
        rows: Vec<(RecordId, ChecklistRow)>,
        plans: Vec<(RecordId, ImprovementPlan)>,
        indicators: Vec<IndicatorTemplate>,
        settings: TemplateSettings,
    }

    impl Fixture {
        fn new(profile: SchoolProfile) -> Self {
            let (indicators, settings) = reference_template();
            Fixture {
                profile,
                equipment: vec![],
                books: vec![],
                rows: vec![],
                plans: vec![],
                indicators,
                settings,
            }
        }

        fn eval(&self) -> SchoolEvaluation {
            evaluate_school(&SchoolInput {
                profile: &self.profile,
                equipment: &self.equipment,
                books: &self.books,
                rows: &self.rows,
                plans: &self.plans,
                indicators: &self.indicators,
                settings: &self.settings,
            })
        }

        fn set_threshold(&mut self, code: &str, stage: Stage, threshold: f64) {
            for t in &mut self.indicators {
                if t.code == code && t.stage == stage {
                    t.threshold = threshold;
                }
            }
        }
    }

    fn ind<'a>(e: &'a StageEvaluation, code: &str) -> &'a IndicatorResult {
        e.indicators.iter().find(|r| r.code == code).unwrap()
    }

    /// A 21-student teaching point (the worked example).
    fn small_point() -> Fixture {
        let mut p = empty_profile();
        p.school_type = Some(SchoolType::TeachingPoint);
        p.parent_school = Some("4301230000".into());
        p.students_grade_1 = Some(8);
        p.students_grade_2 = Some(7);
        p.students_grade_3 = Some(6);
        p.teachers_qualified = Some(2);
        p.teachers_key = Some(1);
        p.teachers_pe_arts = Some(0);
        p.teaching_area_m2 = Some(180.5);
        p.sports_area_m2 = Some(100.0);
        p.multimedia_classrooms = Some(1);
        let mut f = Fixture::new(p);
        f.equipment = vec![
            // 12 × 3,800.00 元 in use = 45,600.00 元
            item(12, 380_000, EquipmentStatus::InUse),
            // not counted
            item(1, 1_000_000, EquipmentStatus::Scrapped),
            item(2, 50_000, EquipmentStatus::Idle),
        ];
        f.books = vec![
            book(300, BookStatus::OnShelf),
            book(50, BookStatus::OnLoan),
            book(40, BookStatus::Weeded),
            book(10, BookStatus::Lost),
        ];
        f
    }

    #[test]
    fn each_indicator_by_hand() {
        let f = small_point();
        let e = f.eval();
        assert_eq!(e.stages.len(), 1);
        let s = &e.stages[0];
        assert_eq!((s.stage, s.students, s.share), (Stage::Primary, 21, 1.0));

        // R1: 2 × 100 ÷ 21 = 9.5238…, ≥ 4.2
        let r1 = ind(s, "R1");
        assert!(close(r1.value.unwrap(), 200.0 / 21.0));
        assert!((r1.value.unwrap() - 9.5238).abs() < 1e-4);
        assert_eq!(r1.source, ValueOrigin::Computed);
        assert_eq!(r1.threshold, Some(4.2));
        assert_eq!(r1.meets, Some(true));
        assert_eq!(r1.shortfall, None);
        assert!(r1.basis.contains("21 名学生"), "{}", r1.basis);
        assert_eq!(r1.name, "每百名学生拥有高于规定学历教师数");
        // R2: 1 × 100 ÷ 21 = 4.7619…
        assert!(close(ind(s, "R2").value.unwrap(), 100.0 / 21.0));
        // R3: 0 teachers → 0; 0.9 × 21 ÷ 100 = 0.189 → 1 teacher missing
        let r3 = ind(s, "R3");
        assert_eq!(r3.value, Some(0.0));
        assert_eq!(r3.meets, Some(false));
        assert_eq!(r3.ratio, Some(0.0));
        assert_eq!(r3.shortfall.as_ref().unwrap().amount, 1.0);
        assert!(r3.shortfall.as_ref().unwrap().unit.contains("教师"));
        // R4: 180.5 ÷ 21 = 8.595…
        assert!(close(ind(s, "R4").value.unwrap(), 180.5 / 21.0));
        // R5: 100 ÷ 21 = 4.76; needs 7.5 × 21 − 100 = 57.5 m²
        let r5 = ind(s, "R5");
        assert!(close(r5.value.unwrap(), 100.0 / 21.0));
        assert_eq!(r5.meets, Some(false));
        assert!(close(r5.shortfall.as_ref().unwrap().amount, 57.5));
        assert!(close(r5.ratio.unwrap(), (100.0 / 21.0) / 7.5));
        // R6: 45,600 元 ÷ 21 = 2171.43, ≥ 2000 by default
        let r6 = ind(s, "R6");
        assert!(close(r6.value.unwrap(), 45_600.0 / 21.0));
        assert_eq!(r6.meets, Some(true));
        assert!(r6.basis.contains("12 件在用设备"), "{}", r6.basis);
        assert!(r6.basis.contains("45,600.00 元"), "{}", r6.basis);
        assert!(r6.basis.contains("÷ 21 名学生"), "{}", r6.basis);
        // R7: 1 × 100 ÷ 21 = 4.76
        assert!(close(ind(s, "R7").value.unwrap(), 100.0 / 21.0));

        // Books: (300 + 50) ÷ 21 = 16.67 (weeded and lost left out); 25 × 21 − 350 = 175 copies
        let b = &s.books;
        assert_eq!(b.code, BOOKS_CODE);
        assert!(!b.counted);
        assert!(close(b.value.unwrap(), 350.0 / 21.0));
        assert_eq!(b.threshold, Some(25.0));
        assert_eq!(b.meets, Some(false));
        assert_eq!(
            b.shortfall,
            Some(Shortfall {
                amount: 175.0,
                unit: "册".into()
            })
        );
        assert!(b.basis.contains("350 册"), "{}", b.basis);

        // R3 and R5 fail → 5/7
        assert!(
            matches!(&s.verdict, Verdict::Fail { met: 5, not_met, .. } if not_met.len() == 2),
            "{:?}",
            s.verdict
        );
    }

    #[test]
    fn r6_shortfall_in_yuan_and_the_threshold_is_the_templates() {
        let mut f = small_point();
        f.set_threshold("R6", Stage::Primary, 2500.0);
        let e = f.eval();
        let r6 = ind(&e.stages[0], "R6");
        assert_eq!(r6.threshold, Some(2500.0));
        assert_eq!(r6.meets, Some(false));
        // 2500 × 21 − 45,600 = 6,900 元
        let sf = r6.shortfall.as_ref().unwrap();
        assert!(close(sf.amount, 6_900.0), "{sf:?}");
        assert_eq!(sf.unit, "元");
    }

    #[test]
    fn books_without_a_setting_have_no_threshold_and_say_so() {
        let mut f = small_point();
        f.settings.books_per_student_primary = None;
        let e = f.eval();
        let b = &e.stages[0].books;
        assert_eq!(b.threshold, None);
        assert_eq!(b.meets, None);
        assert_eq!(b.shortfall, None);
        assert!(b.value.is_some());
        assert!(
            b.notes
                .iter()
                .any(|n| n.contains("books_per_student_primary")),
            "{:?}",
            b.notes
        );
        // the books line is not in the pass rule: the verdict is unchanged
        assert!(matches!(e.stages[0].verdict, Verdict::Fail { met: 5, .. }));
    }

    /// 100 students in 小学 and figures giving round values, all meeting the reference thresholds.
    fn passing_school() -> Fixture {
        let mut p = empty_profile();
        p.school_type = Some(SchoolType::Primary);
        p.students_grade_1 = Some(50);
        p.students_grade_2 = Some(50);
        p.teachers_qualified = Some(5); // 5.0 ≥ 4.2
        p.teachers_key = Some(1); // 1.0 ≥ 1.0 (equal meets)
        p.teachers_pe_arts = Some(1); // 1.0 ≥ 0.9
        p.teaching_area_m2 = Some(500.0); // 5.0 ≥ 4.5
        p.sports_area_m2 = Some(800.0); // 8.0 ≥ 7.5
        p.multimedia_classrooms = Some(3); // 3.0 ≥ 2.3
        let mut f = Fixture::new(p);
        f.equipment = vec![item(100, 250_000, EquipmentStatus::InUse)]; // 250,000 元 → 2500 ≥ 2000
        f.books = vec![book(3000, BookStatus::OnShelf)];
        f
    }

    #[test]
    fn pass_rule() {
        // 7/7
        let mut f = passing_school();
        let v = f.eval().stages[0].verdict.clone();
        assert_eq!(
            v,
            Verdict::Pass {
                met: 7,
                near_miss: None
            }
        );

        // 6/7, the 7th at 90%: 675 m² → 6.75 = 0.9 × 7.5
        f.profile.sports_area_m2 = Some(675.0);
        let s = f.eval().stages.remove(0);
        match &s.verdict {
            Verdict::Pass {
                met: 6,
                near_miss: Some(b),
            } => {
                assert_eq!(b.code, "R5");
                assert!(close(b.ratio.unwrap(), 0.9));
            }
            v => panic!("{v:?}"),
        }
        // 75 m² short
        assert!(close(
            ind(&s, "R5").shortfall.as_ref().unwrap().amount,
            75.0
        ));

        // exactly 85% still passes: 637.5 m² → 6.375 = 0.85 × 7.5
        f.profile.sports_area_m2 = Some(637.5);
        assert!(matches!(
            f.eval().stages[0].verdict,
            Verdict::Pass { met: 6, .. }
        ));

        // 6/7, the 7th at 80%: 600 m² → 6.0 = 0.8 × 7.5
        f.profile.sports_area_m2 = Some(600.0);
        match &f.eval().stages[0].verdict {
            Verdict::Fail {
                met: 6, not_met, ..
            } => {
                assert_eq!(not_met.len(), 1);
                assert_eq!(not_met[0].code, "R5");
                assert!(close(not_met[0].ratio.unwrap(), 0.8));
            }
            v => panic!("{v:?}"),
        }

        // 5/7, even with both near: R5 at 90% and R7 2.2/2.3
        f.profile.sports_area_m2 = Some(675.0);
        f.profile.multimedia_classrooms = Some(2); // 2.0 < 2.3 → one classroom short
        let s = f.eval().stages.remove(0);
        assert!(
            matches!(&s.verdict, Verdict::Fail { met: 5, not_met, .. } if not_met.len() == 2),
            "{:?}",
            s.verdict
        );
        assert_eq!(ind(&s, "R7").shortfall.as_ref().unwrap().amount, 1.0);
    }

    #[test]
    fn missing_values_or_thresholds_leave_the_verdict_undetermined() {
        let mut f = passing_school();
        f.profile.teachers_key = None;
        let s = f.eval().stages.remove(0);
        let r2 = ind(&s, "R2");
        assert_eq!(
            (r2.value, r2.source, r2.meets),
            (None, ValueOrigin::Missing, None)
        );
        assert!(r2.basis.contains("骨干教师"), "{}", r2.basis);
        match &s.verdict {
            Verdict::Undetermined {
                missing,
                met,
                not_met,
            } => {
                assert_eq!(missing.len(), 1);
                assert_eq!(missing[0].code, "R2");
                assert!(missing[0].reason.contains("学校概况未填写"));
                assert_eq!((*met, not_met.len()), (6, 0));
            }
            v => panic!("{v:?}"),
        }

        // no threshold for R7 in the template
        let mut f = passing_school();
        f.indicators.retain(|t| t.code != "R7");
        let s = f.eval().stages.remove(0);
        let r7 = ind(&s, "R7");
        assert!(r7.value.is_some());
        assert_eq!((r7.threshold, r7.meets), (None, None));
        match &s.verdict {
            Verdict::Undetermined { missing, .. } => {
                assert_eq!(missing[0].code, "R7");
                assert!(
                    missing[0].reason.contains("县模板"),
                    "{}",
                    missing[0].reason
                );
            }
            v => panic!("{v:?}"),
        }

        // empty ledger: R6 missing, not zero
        let mut f = passing_school();
        f.equipment.clear();
        let s = f.eval().stages.remove(0);
        assert_eq!(ind(&s, "R6").value, None);
        assert!(matches!(s.verdict, Verdict::Undetermined { .. }));
    }

    #[test]
    fn thresholds_come_from_the_template_and_inactive_entries_are_ignored() {
        let mut f = passing_school();
        f.profile.sports_area_m2 = Some(600.0); // 6.0 against 7.5: 80%, fails
        assert!(matches!(f.eval().stages[0].verdict, Verdict::Fail { .. }));

        f.set_threshold("R5", Stage::Primary, 6.0);
        let s = f.eval().stages.remove(0);
        assert_eq!(ind(&s, "R5").threshold, Some(6.0));
        assert_eq!(
            s.verdict,
            Verdict::Pass {
                met: 7,
                near_miss: None
            }
        );

        // a retired entry with a high threshold changes nothing
        let mut retired = entry("R5", Stage::Primary, 100.0);
        retired.status = EntryStatus::Retired;
        f.indicators.push(retired);
        // nor does an entry of the other stage
        f.indicators.push(entry("R5", Stage::Junior, 200.0));
        let s = f.eval().stages.remove(0);
        assert_eq!(ind(&s, "R5").threshold, Some(6.0));
        assert_eq!(
            s.verdict,
            Verdict::Pass {
                met: 7,
                near_miss: None
            }
        );

        // only a retired entry: no threshold
        for t in &mut f.indicators {
            if t.code == "R5" {
                t.status = EntryStatus::Retired;
            }
        }
        let s = f.eval().stages.remove(0);
        assert_eq!(ind(&s, "R5").threshold, None);
        assert!(matches!(s.verdict, Verdict::Undetermined { .. }));
    }

    #[test]
    fn nine_year_school_split_one_to_one_point_one() {
        let mut p = empty_profile();
        p.school_type = Some(SchoolType::NineYear);
        for g in [
            &mut p.students_grade_1,
            &mut p.students_grade_2,
            &mut p.students_grade_3,
            &mut p.students_grade_4,
        ] {
            *g = Some(50); // 200 in 小学
        }
        p.students_grade_7 = Some(40);
        p.students_grade_8 = Some(30);
        p.students_grade_9 = Some(30); // 100 in 初中
                                       // weighted students: 200 × 1 + 100 × 1.1 = 310
        p.teachers_qualified = Some(31); // 小学 31 × 200/310 = 20; 初中 31 × 110/310 = 11
        p.teaching_area_m2 = Some(1550.0); // 1000 / 550
        p.multimedia_classrooms = Some(31); // 20 / 11
        let mut f = Fixture::new(p);
        f.equipment = vec![item(1, 62_000_000, EquipmentStatus::InUse)]; // 620,000 元 → 400,000 / 220,000
        f.books = vec![book(9300, BookStatus::OnShelf)]; // 6000 / 3300
        let e = f.eval();
        assert_eq!(e.stages.len(), 2);
        let (pr, jr) = (&e.stages[0], &e.stages[1]);
        assert_eq!((pr.stage, pr.students), (Stage::Primary, 200));
        assert_eq!((jr.stage, jr.students), (Stage::Junior, 100));
        assert!(close(pr.share, 200.0 / 310.0));
        assert!(close(jr.share, 110.0 / 310.0));
        assert!(close(pr.share + jr.share, 1.0));

        // R1: 20 × 100 ÷ 200 = 10; 11 × 100 ÷ 100 = 11
        assert!(close(ind(pr, "R1").value.unwrap(), 10.0));
        assert!(close(ind(jr, "R1").value.unwrap(), 11.0));
        // R4: 1000 ÷ 200 = 5.0 (≥ 4.5); 550 ÷ 100 = 5.5 (< 5.8: 30 m² short)
        assert!(close(ind(pr, "R4").value.unwrap(), 5.0));
        let j4 = ind(jr, "R4");
        assert!(close(j4.value.unwrap(), 5.5));
        assert_eq!(j4.threshold, Some(5.8));
        assert!(close(j4.shortfall.as_ref().unwrap().amount, 30.0));
        assert!(j4.basis.contains("1:1.1"), "{}", j4.basis);
        // R6: 400,000 ÷ 200 = 2000 (≥ 2000); 220,000 ÷ 100 = 2200 (< 2500: 30,000 元 short)
        let p6 = ind(pr, "R6");
        assert!(close(p6.value.unwrap(), 2000.0));
        assert_eq!(p6.meets, Some(true));
        let j6 = ind(jr, "R6");
        assert!(close(j6.value.unwrap(), 2200.0));
        assert!(close(j6.shortfall.as_ref().unwrap().amount, 30_000.0));
        // R7: 10 and 11 per hundred
        assert!(close(ind(pr, "R7").value.unwrap(), 10.0));
        assert!(close(ind(jr, "R7").value.unwrap(), 11.0));
        // Books: 6000 ÷ 200 = 30 (≥ 25); 3300 ÷ 100 = 33 (< 35: 200 copies short)
        assert!(close(pr.books.value.unwrap(), 30.0));
        assert_eq!(pr.books.meets, Some(true));
        assert!(close(jr.books.value.unwrap(), 33.0));
        assert_eq!(jr.books.threshold, Some(35.0));
        assert!(close(jr.books.shortfall.as_ref().unwrap().amount, 200.0));
        assert!(e.teaching_point.is_none());
    }

    #[test]
    fn central_school_and_inferred_stages() {
        let mut p = empty_profile();
        p.school_type = Some(SchoolType::Central);
        p.students_grade_1 = Some(30);
        let e = Fixture::new(p.clone()).eval();
        assert_eq!(e.stages.len(), 1);
        assert_eq!(e.stages[0].stage, Stage::Primary);
        p.students_grade_7 = Some(20);
        let e = Fixture::new(p.clone()).eval();
        let stages: Vec<Stage> = e.stages.iter().map(|s| s.stage).collect();
        assert_eq!(stages, vec![Stage::Primary, Stage::Junior]);

        // no type: inferred from the grades, with a note
        p.school_type = None;
        p.students_grade_1 = None;
        let e = Fixture::new(p).eval();
        assert_eq!(e.stages.len(), 1);
        assert_eq!(
            (e.stages[0].stage, e.stages[0].students),
            (Stage::Junior, 20)
        );
        assert!(
            e.notes.iter().any(|n| n.contains("未填写学校类型")),
            "{:?}",
            e.notes
        );
    }

    #[test]
    fn typed_value_overrides_computed_and_rows_and_plans_are_filtered() {
        let mut f = small_point();
        let (typed_id, withdrawn_id) = (RecordId::from_u128(1), RecordId::from_u128(2));
        f.rows = vec![
            (typed_id, row("R4", Some(3.0), ValueSource::Typed)),
            // a withdrawn typed row is ignored
            (withdrawn_id, {
                let mut r = row("R1", Some(1.0), ValueSource::Typed);
                r.status = ChecklistRowStatus::Withdrawn;
                r
            }),
            // a row marked computed does not override
            (
                RecordId::from_u128(3),
                row("R2", Some(99.0), ValueSource::Computed),
            ),
        ];
        f.plans = vec![
            (
                RecordId::from_u128(10),
                plan(
                    typed_id,
                    "扩建教室",
                    Some("2026-09-01"),
                    PlanStatus::Planned,
                ),
            ),
            (
                RecordId::from_u128(11),
                plan(typed_id, "租用村委会房屋", None, PlanStatus::Dropped),
            ),
            (
                RecordId::from_u128(12),
                plan(typed_id, "改造库房", Some("2026-03-01"), PlanStatus::Done),
            ),
            (
                RecordId::from_u128(13),
                plan(withdrawn_id, "招聘教师", None, PlanStatus::Planned),
            ),
        ];
        let e = f.eval();
        let s = &e.stages[0];

        let r4 = ind(s, "R4");
        assert_eq!(r4.source, ValueOrigin::Typed);
        assert_eq!(r4.value, Some(3.0));
        assert_eq!(r4.typed, Some(3.0));
        assert!(close(r4.computed.unwrap(), 180.5 / 21.0));
        // judged on the typed value: 3.0 < 4.5; (4.5 − 3) × 21 = 31.5 m²
        assert_eq!(r4.meets, Some(false));
        assert!(close(r4.shortfall.as_ref().unwrap().amount, 31.5));
        assert_eq!(r4.row, Some(typed_id));
        // dropped plan and the withdrawn row's plan left out; earliest due first
        let plan_ids: Vec<RecordId> = r4.plans.iter().map(|p| p.id).collect();
        assert_eq!(
            plan_ids,
            vec![RecordId::from_u128(12), RecordId::from_u128(10)]
        );
        assert_eq!(r4.plans[0].action, "改造库房");
        assert_eq!(r4.plans[0].due_on.as_deref(), Some("2026-03-01"));
        assert_eq!(r4.plans[1].status, PlanStatus::Planned);

        let r1 = ind(s, "R1");
        assert_eq!(r1.source, ValueOrigin::Computed);
        assert!(close(r1.value.unwrap(), 200.0 / 21.0));
        assert_eq!(r1.typed, None);
        assert_eq!(r1.row, None);
        assert!(r1.plans.is_empty());

        let r2 = ind(s, "R2");
        assert_eq!(r2.source, ValueOrigin::Computed);
        assert!(close(r2.value.unwrap(), 100.0 / 21.0));
        assert_eq!(r2.row, Some(RecordId::from_u128(3)));

        // a typed value also fills a gap the records leave
        f.profile.teachers_key = None;
        f.rows.push((
            RecordId::from_u128(4),
            row("R2", Some(2.5), ValueSource::Typed),
        ));
        let e = f.eval();
        let r2 = ind(&e.stages[0], "R2");
        assert_eq!(
            (r2.value, r2.computed, r2.source),
            (Some(2.5), None, ValueOrigin::Typed)
        );
        assert_eq!(r2.row, Some(RecordId::from_u128(4)));
    }

    #[test]
    fn county_indicators_with_unknown_codes_are_listed_and_only_typed() {
        let mut f = passing_school();
        f.indicators.push(entry("X1", Stage::Primary, 10.0));
        f.indicators.push(entry("X2", Stage::Junior, 10.0)); // other stage: not listed
        let s = f.eval().stages.remove(0);
        let x1 = ind(&s, "X1");
        assert!(!x1.counted);
        assert_eq!(x1.name, "县定指标 X1");
        assert_eq!(
            (x1.threshold, x1.value, x1.source),
            (Some(10.0), None, ValueOrigin::Missing)
        );
        assert!(!s.indicators.iter().any(|r| r.code == "X2"));
        // not part of the pass rule
        assert_eq!(
            s.verdict,
            Verdict::Pass {
                met: 7,
                near_miss: None
            }
        );

        f.rows.push((
            RecordId::from_u128(5),
            row("X1", Some(8.0), ValueSource::Typed),
        ));
        f.rows.push((
            RecordId::from_u128(6),
            row("ZZ", Some(8.0), ValueSource::Typed),
        ));
        let e = f.eval();
        let x1 = ind(&e.stages[0], "X1");
        assert_eq!((x1.value, x1.meets), (Some(8.0), Some(false)));
        assert!(close(x1.ratio.unwrap(), 0.8));
        assert!(close(x1.shortfall.as_ref().unwrap().amount, 2.0));
        assert!(e.notes.iter().any(|n| n.contains("ZZ")), "{:?}", e.notes);
    }

    #[test]
    fn teaching_point_policy() {
        let mut f = small_point();
        assert_eq!(
            f.eval().teaching_point.unwrap().treatment,
            TeachingPointTreatment::EvaluatedAlone
        );
        f.settings.teaching_point_policy = Some(TeachingPointPolicy::ExcludeUnder);
        let e = f.eval();
        assert_eq!(
            e.teaching_point.unwrap().treatment,
            TeachingPointTreatment::LeftOut {
                students: 21,
                min_students: 50
            }
        );
        // figures still there
        assert!(e.stages[0].indicators[0].value.is_some());
        f.settings.teaching_point_min_students = Some(20);
        assert_eq!(
            f.eval().teaching_point.unwrap().treatment,
            TeachingPointTreatment::EvaluatedAlone
        );
        f.settings.teaching_point_policy = Some(TeachingPointPolicy::FoldIntoParent);
        assert_eq!(
            f.eval().teaching_point.unwrap().treatment,
            TeachingPointTreatment::FoldedIntoParent {
                parent_school: Some("4301230000".into())
            }
        );
        // not a teaching point: no field
        assert!(passing_school().eval().teaching_point.is_none());
    }

    #[test]
    fn no_students_no_per_student_values() {
        let mut f = passing_school();
        f.profile.students_grade_1 = Some(0);
        f.profile.students_grade_2 = Some(0);
        let s = f.eval().stages.remove(0);
        assert_eq!(s.students, 0);
        for r in s.indicators.iter().chain([&s.books]) {
            assert_eq!(r.value, None, "{}", r.code);
            assert!(r.basis.contains("没有学生"), "{}", r.basis);
        }
        assert!(s.notes.iter().any(|n| n.contains("没有学生")));
        assert!(
            matches!(s.verdict, Verdict::Undetermined { ref missing, .. } if missing.len() == 7)
        );

        // not filled in at all says so differently
        f.profile.students_grade_1 = None;
        f.profile.students_grade_2 = None;
        let s = f.eval().stages.remove(0);
        assert!(
            ind(&s, "R1").basis.contains("未填写"),
            "{}",
            ind(&s, "R1").basis
        );
    }

    #[test]
    fn results_serialize() {
        let e = small_point().eval();
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["stages"][0]["verdict"]["verdict"], "fail");
        assert_eq!(json["stages"][0]["books"]["code"], "BOOKS");
        let back: SchoolEvaluation = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn weighted_cv_by_hand() {
        // P = 400; X̄ = (100·10 + 300·20) / 400 = 17.5
        // S² = 0.25·7.5² + 0.75·2.5² = 14.0625 + 4.6875 = 18.75; CV = √18.75 / 17.5 = 0.24744
        let cv = coefficient_of_variation(&[(100, 10.0), (300, 20.0), (0, 500.0)]);
        assert_eq!(
            (cv.schools, cv.excluded_no_students, cv.students),
            (2, 1, 400)
        );
        assert!((cv.mean.unwrap() - 17.5).abs() < EPS);
        assert!((cv.std_dev.unwrap() - 18.75f64.sqrt()).abs() < EPS);
        let weighted = cv.cv.unwrap();
        assert!(
            (weighted - 0.247_435_829_652_697).abs() < 1e-12,
            "{weighted}"
        );
        assert_eq!(cv.reason, None);

        // the unweighted figures differ: mean 15, population SD 5 → 0.3333; sample SD → 0.4714
        let unweighted_pop = 5.0 / 15.0;
        let unweighted_sample = 50f64.sqrt() / 15.0;
        assert!((weighted - unweighted_pop).abs() > 0.05);
        assert!((weighted - unweighted_sample).abs() > 0.05);
        // nor does the zero-student school count with weight 0 in any other way
        assert_eq!(
            cv,
            coefficient_of_variation(&[(300, 20.0), (100, 10.0), (0, 1.0)])
        );

        assert_eq!(cv.within(Some(0.5)), Some(true));
        assert_eq!(cv.within(Some(0.2)), Some(false));
        assert_eq!(cv.within(None), None);
    }

    #[test]
    fn cv_edge_cases() {
        let zero = coefficient_of_variation(&[(10, 0.0), (20, 0.0)]);
        assert_eq!((zero.mean, zero.cv), (Some(0.0), None));
        assert!(zero.reason.as_deref().unwrap().contains("0"));

        let none = coefficient_of_variation(&[(0, 3.0), (0, 4.0)]);
        assert_eq!((none.schools, none.excluded_no_students), (0, 2));
        assert_eq!((none.mean, none.cv), (None, None));
        assert!(none.reason.is_some());

        let same = coefficient_of_variation(&[(10, 4.0), (30, 4.0)]);
        assert_eq!(same.cv, Some(0.0));

        let bad = coefficient_of_variation(&[(10, f64::NAN), (30, 4.0)]);
        assert_eq!(
            (bad.schools, bad.excluded_invalid, bad.cv),
            (1, 1, Some(0.0))
        );
    }

    #[test]
    fn reference_template_has_the_published_figures() {
        let (indicators, settings) = reference_template();
        assert_eq!(indicators.len(), 14);
        assert!(indicators.iter().all(|t| t.status == EntryStatus::Active));
        let get = |code: &str, stage| {
            indicators
                .iter()
                .find(|t| t.code == code && t.stage == stage)
                .unwrap()
                .threshold
        };
        let expected = [
            ("R1", 4.2, 5.3),
            ("R2", 1.0, 1.0),
            ("R3", 0.9, 0.9),
            ("R4", 4.5, 5.8),
            ("R5", 7.5, 10.2),
            ("R6", 2000.0, 2500.0),
            ("R7", 2.3, 2.4),
        ];
        for (code, p, j) in expected {
            assert_eq!(get(code, Stage::Primary), p, "{code}");
            assert_eq!(get(code, Stage::Junior), j, "{code}");
        }
        assert_eq!(settings.books_per_student_primary, Some(25.0));
        assert_eq!(settings.books_per_student_junior, Some(35.0));
        assert_eq!(
            (settings.cv_limit_primary, settings.cv_limit_junior),
            (Some(0.5), Some(0.45))
        );
        assert_eq!(
            settings.teaching_point_policy,
            Some(TeachingPointPolicy::EvaluateAlone)
        );
        assert_eq!(settings.teaching_point_min_students, Some(50));
        for wk in WellKnown::ALL {
            assert_eq!(WellKnown::from_code(wk.code()), Some(wk));
        }
        assert_eq!(WellKnown::from_code("R8"), None);
    }

    #[test]
    fn money_formatting() {
        assert_eq!(fmt_yuan_fen(4_560_000), "45,600.00");
        assert_eq!(fmt_yuan_fen(5), "0.05");
        assert_eq!(fmt_yuan_fen(12_345_678_901), "123,456,789.01");
        assert_eq!(fmt_yuan_fen(-100_000), "-1,000.00");
    }
}
