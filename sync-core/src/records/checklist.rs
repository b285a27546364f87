//! Standardization checklist (标准化建设): the school's figures against the
//! indicators (对指标) and the plans to close shortfalls (补短板).

use crate::schema::{opt, req, Choice, FieldType::*};
use crate::{choice, record, RecordId};

choice! {
    /// Where a checklist value came from.
    pub enum ValueSource {
        /// Typed in by a person.
        Typed = "typed",
        /// Computed from the school's records (e.g. equipment value per student).
        Computed = "computed",
    }
}

choice! {
    pub enum ChecklistRowStatus {
        Active = "active",
        /// Withdrawn (kept with a reason)
        Withdrawn = "withdrawn",
    }
}

record! {
    /// One indicator's row: the school's value against the template's threshold
    /// (the threshold itself lives in the county template).
    pub struct ChecklistRow in Checklist."rows" {
        /// The indicator's code in the county template, e.g. `R6`.
        indicator_code: String = req(Text),
        /// The school's value.
        value: Option<f64> = opt(Number),
        value_source: ValueSource = req(Enum(ValueSource::VALUES)),
        /// 佐证材料
        evidence: Option<String> = opt(Text),
        note: Option<String> = opt(Text),
        status: ChecklistRowStatus = req(Enum(ChecklistRowStatus::VALUES)),
        status_reason: Option<String> = opt(Text),
    }
}

choice! {
    pub enum PlanStatus {
        /// 计划中
        Planned = "planned",
        /// 进行中
        InProgress = "in_progress",
        /// 已完成
        Done = "done",
        /// 放弃 (kept with a reason)
        Dropped = "dropped",
    }
}

record! {
    /// 整改计划: how a shortfall on one row will be closed (补短板).
    pub struct ImprovementPlan in Checklist."plans" {
        /// The [`ChecklistRow`] it closes.
        row: RecordId = req(Ref),
        /// 措施
        action: String = req(Text),
        /// 完成期限
        due_on: Option<String> = opt(Date),
        /// 责任人
        responsible: Option<String> = opt(Text),
        status: PlanStatus = req(Enum(PlanStatus::VALUES)),
        status_reason: Option<String> = opt(Text),
    }
}
