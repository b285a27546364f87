//! The county's template (县模板): indicators and thresholds, the archive
//! catalogue, and settings. Every figure is the county's to change.

use crate::schema::{opt, req, Choice, FieldType::*};
use crate::{choice, record};

use super::Retention;

choice! {
    /// 学段
    pub enum Stage {
        /// 小学
        Primary = "primary",
        /// 初中
        Junior = "junior",
    }
}

choice! {
    pub enum EntryStatus {
        Active = "active",
        /// Retired from the template (kept, so old records still resolve).
        Retired = "retired",
    }
}

record! {
    /// 指标: one indicator and its threshold for one stage.
    pub struct IndicatorTemplate in Template."indicators" {
        /// e.g. `R6`
        code: String = req(Text),
        /// e.g. 生均教学仪器设备值
        name: String = req(Text),
        stage: Stage = req(Enum(Stage::VALUES)),
        /// The value to reach (≥).
        threshold: f64 = req(Number),
        unit: Option<String> = opt(Text),
        status: EntryStatus = req(Enum(EntryStatus::VALUES)),
    }
}

record! {
    /// 档案目录条目: one item of evidence the evaluation asks for.
    pub struct CatalogueEntry in Template."catalogue" {
        code: String = req(Text),
        title: String = req(Text),
        category: Option<String> = opt(Text),
        retention: Option<Retention> = opt(Enum(Retention::VALUES)),
        /// The indicator it proves.
        indicator_code: Option<String> = opt(Text),
        status: EntryStatus = req(Enum(EntryStatus::VALUES)),
    }
}

choice! {
    /// How teaching points enter the resource indicators (a county setting).
    pub enum TeachingPointPolicy {
        /// Each point evaluated as a school of its own.
        EvaluateAlone = "evaluate_alone",
        /// Folded into its central school.
        FoldIntoParent = "fold_into_parent",
        /// Left out when under `teaching_point_min_students`.
        ExcludeUnder = "exclude_under",
    }
}

record! {
    /// The county's settings, at the root of its template document.
    pub struct TemplateSettings in Template."settings" singleton true {
        teaching_point_policy: Option<TeachingPointPolicy> = opt(Enum(TeachingPointPolicy::VALUES)),
        teaching_point_min_students: Option<u32> = opt(Count),
        /// 差异系数 limit, 小学
        cv_limit_primary: Option<f64> = opt(Decimal),
        /// 差异系数 limit, 初中
        cv_limit_junior: Option<f64> = opt(Decimal),
        /// 生均图书 册, 小学
        books_per_student_primary: Option<f64> = opt(Decimal),
        /// 生均图书 册, 初中
        books_per_student_junior: Option<f64> = opt(Decimal),
        /// 上报截止日期: schools submit their sections by this date (China
        /// time, the whole day counts); completeness reports "on time" against it.
        review_due: Option<String> = opt(Date),
    }
}
