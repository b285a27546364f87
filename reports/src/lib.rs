//! Read models for the township and the county (what the clerk and the
//! official open every week): R1–R7 and books per student for every school
//! and stage, each indicator's enrollment-weighted coefficient of variation
//! (差异系数) per stage for every township and the county, the review
//! workflow's state and completeness by level, and the gaps (indicators below
//! threshold with their plans, archive items missing, stocktake
//! discrepancies, devices that have not synced).
//!
//! Sans-IO like sync-core: the server feeds [`ReadModel::apply`] each stored
//! document as it changes and reads reports out. The figures themselves come
//! from [`sync_core::indicators`]; this crate keeps them per school and rolls
//! them up.

pub mod facts;
pub mod gaps;
pub mod model;
pub mod review;
pub mod rollup;

pub use facts::{BookTally, FactsError, SchoolFacts};
pub use gaps::{SchoolGaps, StocktakeGap};
pub use model::{
    end_of_day_cst_ms, school_type_label, section_kind, verdict_label, AreaReport, Completeness,
    DeviceSeen, ReadModel, SchoolMeta, SchoolReport, SchoolRow, TemplateFacts, TownshipLine,
};
pub use review::{
    action_label, level_for, section_label, section_state, transition, Level, ReviewStatus,
    SectionState, SECTIONS,
};
pub use rollup::{stage_rollup, IndicatorRollup, StageRollup};
