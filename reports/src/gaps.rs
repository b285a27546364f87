//! Gaps (查漏补缺 and 补短板): what a township clerk chases every week, and
//! the checks a section must pass before the school may submit it.

use serde::Serialize;
use sync_core::indicators::{PlanRef, SchoolEvaluation};
use sync_core::records::{
    ArchiveItemStatus, CatalogueEntry, ChecklistRowStatus, EntryStatus, EquipmentStatus,
    PlanStatus, Section, Stage, StocktakeResult, StocktakeStatus,
};
use sync_core::{DocKind, RecordId};

use crate::facts::SchoolFacts;

/// An indicator below its threshold, with the plans that close it.
#[derive(Clone, Debug, Serialize)]
pub struct BelowThresholdGap {
    pub stage: Stage,
    pub code: String,
    pub name: String,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub unit: Option<String>,
    /// "还差 N 名…" in words, when the evaluation worked it out.
    pub shortfall: Option<String>,
    pub plans: Vec<PlanRef>,
    /// The earliest due date of a plan still open.
    pub due_on: Option<String>,
    /// No plan that is still open (planned or in progress) or done.
    pub no_plan: bool,
}

/// A catalogue item the school has not filed, or filed without a box.
#[derive(Clone, Debug, Serialize)]
pub struct ArchiveGap {
    pub entry: RecordId,
    pub code: String,
    pub title: String,
    /// 缺失 / 收集中 / 未入盒
    pub problem: String,
}

/// A stocktake line that does not match the ledger.
#[derive(Clone, Debug, Serialize)]
pub struct StocktakeGap {
    pub session: String,
    pub session_open: bool,
    pub item: String,
    pub recorded_qty: u32,
    pub counted_qty: u32,
    pub result: StocktakeResult,
    pub result_label: &'static str,
    pub counted_by: String,
}

/// One school's gaps.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SchoolGaps {
    pub below_threshold: Vec<BelowThresholdGap>,
    pub archive: Vec<ArchiveGap>,
    pub stocktake: Vec<StocktakeGap>,
}

impl SchoolGaps {
    pub fn is_empty(&self) -> bool {
        self.below_threshold.is_empty() && self.archive.is_empty() && self.stocktake.is_empty()
    }
}

pub fn result_label(r: StocktakeResult) -> &'static str {
    match r {
        StocktakeResult::Match => "相符",
        StocktakeResult::Surplus => "盘盈",
        StocktakeResult::Shortage => "盘亏",
        StocktakeResult::Damaged => "损坏",
    }
}

/// The school's gaps from its facts, its evaluation and the catalogue.
pub fn school_gaps(
    facts: &SchoolFacts,
    evaluation: &SchoolEvaluation,
    catalogue: &[(RecordId, CatalogueEntry)],
) -> SchoolGaps {
    let mut below = Vec::new();
    for stage in &evaluation.stages {
        for ind in stage.indicators.iter().chain(std::iter::once(&stage.books)) {
            if ind.meets != Some(false) {
                continue;
            }
            let open: Vec<&PlanRef> = ind
                .plans
                .iter()
                .filter(|p| matches!(p.status, PlanStatus::Planned | PlanStatus::InProgress))
                .collect();
            let due_on = open.iter().filter_map(|p| p.due_on.clone()).min();
            let no_plan = !ind
                .plans
                .iter()
                .any(|p| !matches!(p.status, PlanStatus::Dropped));
            below.push(BelowThresholdGap {
                stage: stage.stage,
                code: ind.code.clone(),
                name: ind.name.clone(),
                value: ind.value,
                threshold: ind.threshold,
                unit: ind.unit.clone(),
                shortfall: ind
                    .shortfall
                    .as_ref()
                    .map(|s| format!("还差 {} {}", trim_num(s.amount), s.unit)),
                plans: ind.plans.clone(),
                due_on,
                no_plan,
            });
        }
    }

    let mut archive = Vec::new();
    for (entry_id, entry) in catalogue {
        if entry.status != EntryStatus::Active {
            continue;
        }
        let items: Vec<_> = facts
            .archive_items
            .iter()
            .filter(|(_, i)| i.catalogue_entry == *entry_id)
            .filter(|(_, i)| i.status != ArchiveItemStatus::Withdrawn)
            .collect();
        let problem = if items.is_empty() {
            Some("缺失")
        } else if items
            .iter()
            .any(|(_, i)| i.status == ArchiveItemStatus::Filed)
        {
            if items
                .iter()
                .any(|(_, i)| i.status == ArchiveItemStatus::Filed && i.box_id.is_some())
            {
                None
            } else {
                Some("已归档未入盒")
            }
        } else if items
            .iter()
            .any(|(_, i)| i.status == ArchiveItemStatus::Collecting)
        {
            Some("收集中")
        } else {
            Some("缺失")
        };
        if let Some(problem) = problem {
            archive.push(ArchiveGap {
                entry: *entry_id,
                code: entry.code.clone(),
                title: entry.title.clone(),
                problem: problem.into(),
            });
        }
    }

    let mut stocktake = Vec::new();
    for (_, line) in &facts.stocktake_lines {
        if line.result == StocktakeResult::Match {
            continue;
        }
        let session = facts.stocktakes.iter().find(|(id, _)| *id == line.session);
        let item = line
            .item
            .and_then(|id| facts.equipment.iter().find(|(i, _)| *i == id))
            .map(|(_, e)| format!("{} {}", e.asset_no, e.name))
            .or_else(|| line.description.clone())
            .unwrap_or_else(|| "（未登记物品）".into());
        stocktake.push(StocktakeGap {
            session: session
                .map(|(_, s)| s.title.clone())
                .unwrap_or_else(|| "（未知盘点）".into()),
            session_open: session.is_some_and(|(_, s)| s.status == StocktakeStatus::Open),
            item,
            recorded_qty: line.recorded_qty,
            counted_qty: line.counted_qty,
            result: line.result,
            result_label: result_label(line.result),
            counted_by: line.counted_by_device.clone(),
        });
    }
    SchoolGaps {
        below_threshold: below,
        archive,
        stocktake,
    }
}

/// Why `section` cannot be submitted yet; empty when it can.
pub fn submission_problems(
    section: Section,
    facts: &SchoolFacts,
    evaluation: &SchoolEvaluation,
    gaps: &SchoolGaps,
) -> Vec<String> {
    let mut out = Vec::new();
    let kind = match section {
        Section::Profile => DocKind::Profile,
        Section::Equipment => DocKind::Equipment,
        Section::Books => DocKind::Books,
        Section::Archive => DocKind::Archive,
        Section::Checklist => DocKind::Checklist,
        Section::Whole => DocKind::Review,
    };
    if let Some(&n) = facts.conflicted.get(&kind) {
        if n > 0 {
            out.push(format!(
                "有 {n} 条记录存在同时修改的冲突：先在手机上选定正确的值再提交"
            ));
        }
    }
    match section {
        Section::Profile => match &facts.profile {
            None => out.push("学校基本情况还没有填写".into()),
            Some(p) => {
                let missing: Vec<&str> = [
                    (p.name.is_none(), "学校名称"),
                    (p.school_type.is_none(), "学校类型"),
                    (
                        [
                            p.students_grade_1,
                            p.students_grade_2,
                            p.students_grade_3,
                            p.students_grade_4,
                            p.students_grade_5,
                            p.students_grade_6,
                            p.students_grade_7,
                            p.students_grade_8,
                            p.students_grade_9,
                        ]
                        .iter()
                        .all(Option::is_none),
                        "各年级学生数",
                    ),
                    (p.teachers_total.is_none(), "专任教师数"),
                    (p.teachers_qualified.is_none(), "高于规定学历教师数"),
                    (p.teachers_key.is_none(), "县级以上骨干教师数"),
                    (p.teachers_pe_arts.is_none(), "体育、艺术专任教师数"),
                    (p.teaching_area_m2.is_none(), "教学及辅助用房面积"),
                    (p.sports_area_m2.is_none(), "体育运动场馆面积"),
                    (p.multimedia_classrooms.is_none(), "网络多媒体教室数"),
                ]
                .into_iter()
                .filter(|(m, _)| *m)
                .map(|(_, l)| l)
                .collect();
                if !missing.is_empty() {
                    out.push(format!("还没有填写：{}", missing.join("、")));
                }
            }
        },
        Section::Equipment => {
            if facts.equipment.is_empty() {
                out.push("设备台账还没有记录".into());
            }
            for (_, s) in &facts.stocktakes {
                if s.status == StocktakeStatus::Open {
                    out.push(format!("盘点「{}」还没有结束：结束盘点后再提交", s.title));
                }
            }
            let no_reason = facts
                .equipment
                .iter()
                .filter(|(_, e)| {
                    matches!(
                        e.status,
                        EquipmentStatus::Scrapped | EquipmentStatus::Missing
                    ) && e
                        .status_reason
                        .as_deref()
                        .is_none_or(|r| r.trim().is_empty())
                })
                .count();
            if no_reason > 0 {
                out.push(format!("{no_reason} 件报废或盘亏设备没有写原因"));
            }
        }
        Section::Books => {
            if facts.books.titles == 0 {
                out.push("图书目录还没有记录".into());
            }
        }
        Section::Archive => {
            let missing: Vec<String> = gaps
                .archive
                .iter()
                .map(|g| format!("{} {}（{}）", g.code, g.title, g.problem))
                .collect();
            if !missing.is_empty() {
                out.push(format!(
                    "{} 项档案未归档入盒：{}",
                    missing.len(),
                    missing.join("；")
                ));
            }
        }
        Section::Checklist => {
            let active_rows = facts
                .rows
                .iter()
                .filter(|(_, r)| r.status == ChecklistRowStatus::Active)
                .count();
            if active_rows == 0 && evaluation.stages.is_empty() {
                out.push("标准化建设清单还没有记录".into());
            }
            for g in &gaps.below_threshold {
                if g.no_plan {
                    out.push(format!("{} {} 低于标准，还没有整改计划", g.code, g.name));
                } else if g.due_on.is_none()
                    && g.plans
                        .iter()
                        .any(|p| matches!(p.status, PlanStatus::Planned | PlanStatus::InProgress))
                {
                    out.push(format!("{} {} 的整改计划没有完成期限", g.code, g.name));
                }
            }
        }
        Section::Whole => {}
    }
    out
}

fn trim_num(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}
