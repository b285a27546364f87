//! Review (审核): township approval of each section, county acceptance. Kept as
//! events, never as one overwritten state, so concurrent reviews both stay.

use crate::schema::{opt, req, Choice, FieldType::*};
use crate::{choice, record};

choice! {
    /// The part of a school's records a review is about.
    pub enum Section {
        Profile = "profile",
        Equipment = "equipment",
        Books = "books",
        Archive = "archive",
        Checklist = "checklist",
        /// The school as a whole (county acceptance).
        Whole = "whole",
    }
}

choice! {
    pub enum ReviewAction {
        /// 提交 (the school)
        Submit = "submit",
        /// 通过 (the township)
        Approve = "approve",
        /// 退回 (the township, with a comment)
        Return = "return",
        /// 验收 (the county)
        Accept = "accept",
        /// 撤销审核 (the level above undoes an approval)
        Revoke = "revoke",
    }
}

record! {
    /// 审核记录: one review step.
    pub struct ReviewEvent in Review."events" {
        section: Section = req(Enum(Section::VALUES)),
        action: ReviewAction = req(Enum(ReviewAction::VALUES)),
        /// 意见
        comment: Option<String> = opt(Text),
        /// The section document's heads at approval (frozen version).
        frozen_heads: Option<String> = opt(Heads),
        /// Who reviewed.
        by_user: String = req(Text),
        /// When, in ms since the Unix epoch.
        at: i64 = req(Timestamp),
    }
}

/// Who takes a review step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewLevel {
    /// The school or teaching point (its teacher).
    School,
    /// The township central school.
    Township,
    /// The county education bureau.
    County,
}

/// Which level may take `action` on `section`: the school submits its
/// sections; the township approves, returns or revokes them and submits
/// the school as a whole; the county accepts, returns or revokes the whole.
/// Only the level above undoes an approval. `None`: the step does not exist
/// (a township "accept", a county "approve" of one section).
pub fn review_level(section: Section, action: ReviewAction) -> Option<ReviewLevel> {
    use ReviewAction::*;
    match (section == Section::Whole, action) {
        (false, Submit) => Some(ReviewLevel::School),
        (false, Approve | Return | Revoke) => Some(ReviewLevel::Township),
        (false, Accept) => None,
        (true, Submit) => Some(ReviewLevel::Township),
        (true, Accept | Return | Revoke) => Some(ReviewLevel::County),
        (true, Approve) => None,
    }
}
