//! The review workflow (审核): a school submits a section, its township
//! approves it or returns it with a comment, the township submits the school
//! as a whole to the county, the county accepts. Only the level above undoes
//! an approval.
//!
//! The review document holds events, never one overwritten state, so two
//! reviewers working offline both stay on record. The state of a section is
//! the events replayed in time order (ties by event id, so every replica
//! agrees); an event that does not fit the state it meets (an approval of a
//! section nobody submitted, two approvals of one submission) is kept and
//! shown as not applied, with the reason.

use serde::Serialize;
use sync_core::records::{ReviewAction, ReviewEvent, Section};
use sync_core::RecordId;

pub use sync_core::records::{review_level as level_for, ReviewLevel as Level};

/// The five sections a school submits, in the order they are shown.
pub const SECTIONS: [Section; 5] = [
    Section::Profile,
    Section::Equipment,
    Section::Books,
    Section::Archive,
    Section::Checklist,
];

/// Where a section (or the school as a whole) stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewStatus {
    /// 未提交
    Draft,
    /// 已提交 (awaiting the level above)
    Submitted,
    /// 已退回 (with a comment)
    Returned,
    /// 已通过 (a section, by the township)
    Approved,
    /// 已验收 (the school as a whole, by the county)
    Accepted,
}

impl ReviewStatus {
    pub fn label(self) -> &'static str {
        match self {
            ReviewStatus::Draft => "未提交",
            ReviewStatus::Submitted => "待审核",
            ReviewStatus::Returned => "已退回",
            ReviewStatus::Approved => "已通过",
            ReviewStatus::Accepted => "已验收",
        }
    }
}

/// Section label in Chinese.
pub fn section_label(s: Section) -> &'static str {
    match s {
        Section::Profile => "学校基本情况",
        Section::Equipment => "仪器设备",
        Section::Books => "图书",
        Section::Archive => "档案",
        Section::Checklist => "标准化建设",
        Section::Whole => "学校整体",
    }
}

/// Action label in Chinese.
pub fn action_label(a: ReviewAction) -> &'static str {
    match a {
        ReviewAction::Submit => "提交",
        ReviewAction::Approve => "通过",
        ReviewAction::Return => "退回",
        ReviewAction::Accept => "验收",
        ReviewAction::Revoke => "撤销审核",
    }
}

/// The status `action` leads to from `from`, or why it does not apply.
pub fn transition(
    section: Section,
    from: ReviewStatus,
    action: ReviewAction,
) -> Result<ReviewStatus, String> {
    use ReviewAction::*;
    use ReviewStatus::*;
    let whole = section == Section::Whole;
    let to = match (action, from) {
        (Submit, Draft | Returned) => Submitted,
        (Approve, Submitted) if !whole => Approved,
        (Accept, Submitted) if whole => Accepted,
        (Return, Submitted) => Returned,
        (Revoke, Approved) if !whole => Submitted,
        (Revoke, Accepted) if whole => Submitted,
        _ => {
            return Err(format!(
                "{}「{}」时不能{}",
                section_label(section),
                from.label(),
                action_label(action)
            ))
        }
    };
    Ok(to)
}

/// One event as the reports show it.
#[derive(Clone, Debug, Serialize)]
pub struct EventView {
    pub id: RecordId,
    pub action: ReviewAction,
    pub action_label: &'static str,
    pub by_user: String,
    pub at_ms: i64,
    pub comment: Option<String>,
    /// Whether it changed the state; if not, why.
    pub applied: bool,
    pub not_applied_because: Option<String>,
}

/// A section's state, replayed from its events.
#[derive(Clone, Debug, Serialize)]
pub struct SectionState {
    pub section: Section,
    pub label: &'static str,
    pub status: ReviewStatus,
    pub status_label: &'static str,
    /// When the section was first submitted (for "on time").
    pub first_submitted_ms: Option<i64>,
    /// The comment of the last return, while the section stands returned.
    pub return_comment: Option<String>,
    /// The heads the standing approval froze (hex).
    pub approved_heads: Option<Vec<String>>,
    /// Whether the section's document changed after the standing approval.
    pub edited_since_approval: bool,
    pub events: Vec<EventView>,
}

/// Replays `events` (any order, any section) for `section`. `current_heads`
/// are the section document's heads now, to tell edits after an approval.
pub fn section_state(
    section: Section,
    events: &[(RecordId, ReviewEvent)],
    current_heads: Option<&[String]>,
) -> SectionState {
    let mut mine: Vec<&(RecordId, ReviewEvent)> = events
        .iter()
        .filter(|(_, e)| e.section == section)
        .collect();
    mine.sort_by_key(|(id, e)| (e.at, *id));
    let mut status = ReviewStatus::Draft;
    let mut first_submitted = None;
    let mut return_comment = None;
    let mut approved_heads: Option<Vec<String>> = None;
    let mut views = Vec::with_capacity(mine.len());
    for (id, e) in mine {
        let outcome = transition(section, status, e.action);
        if let Ok(to) = &outcome {
            status = *to;
            match e.action {
                ReviewAction::Submit => {
                    first_submitted.get_or_insert(e.at);
                    return_comment = None;
                }
                ReviewAction::Return => return_comment = e.comment.clone(),
                ReviewAction::Approve => {
                    approved_heads = Some(
                        e.frozen_heads
                            .as_deref()
                            .map(split_heads)
                            .unwrap_or_default(),
                    )
                }
                ReviewAction::Revoke => approved_heads = None,
                ReviewAction::Accept => {}
            }
        }
        views.push(EventView {
            id: *id,
            action: e.action,
            action_label: action_label(e.action),
            by_user: e.by_user.clone(),
            at_ms: e.at,
            comment: e.comment.clone(),
            applied: outcome.is_ok(),
            not_applied_because: outcome.err(),
        });
    }
    if status != ReviewStatus::Approved {
        approved_heads = None;
    }
    let edited_since_approval = match (&approved_heads, current_heads) {
        (Some(frozen), Some(now)) => {
            let mut a = frozen.clone();
            let mut b = now.to_vec();
            a.sort();
            b.sort();
            a != b
        }
        _ => false,
    };
    SectionState {
        section,
        label: section_label(section),
        status,
        status_label: status.label(),
        first_submitted_ms: first_submitted,
        return_comment,
        approved_heads,
        edited_since_approval,
        events: views,
    }
}

/// Heads as the review event stores them: hex hashes joined by commas.
pub fn join_heads(heads: &[String]) -> String {
    heads.join(",")
}

fn split_heads(s: &str) -> Vec<String> {
    s.split([',', ' '])
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(section: Section, action: ReviewAction, at: i64) -> (RecordId, ReviewEvent) {
        (
            RecordId::from_u128(at as u128),
            ReviewEvent {
                section,
                action,
                comment: None,
                frozen_heads: (action == ReviewAction::Approve).then(|| "aa,bb".to_string()),
                by_user: "u".into(),
                at,
            },
        )
    }

    #[test]
    fn submit_return_submit_approve() {
        use ReviewAction::*;
        let events = vec![
            ev(Section::Books, Submit, 1),
            ev(Section::Books, Return, 2),
            ev(Section::Books, Submit, 3),
            ev(Section::Books, Approve, 4),
            ev(Section::Profile, Submit, 5),
        ];
        let s = section_state(Section::Books, &events, Some(&["bb".into(), "aa".into()]));
        assert_eq!(s.status, ReviewStatus::Approved);
        assert_eq!(s.first_submitted_ms, Some(1));
        assert_eq!(s.approved_heads, Some(vec!["aa".into(), "bb".into()]));
        assert!(!s.edited_since_approval, "same heads in another order");
        let s = section_state(Section::Books, &events, Some(&["cc".into()]));
        assert!(s.edited_since_approval);
        assert_eq!(s.events.len(), 4);
    }

    #[test]
    fn events_that_do_not_fit_are_kept_and_explained() {
        use ReviewAction::*;
        // Two township clerks approve the same submission offline.
        let events = vec![
            ev(Section::Archive, Approve, 1),
            ev(Section::Archive, Submit, 2),
            ev(Section::Archive, Approve, 3),
            ev(Section::Archive, Approve, 4),
        ];
        let s = section_state(Section::Archive, &events, None);
        assert_eq!(s.status, ReviewStatus::Approved);
        let applied: Vec<bool> = s.events.iter().map(|e| e.applied).collect();
        assert_eq!(applied, [false, true, true, false]);
        assert!(s.events[0]
            .not_applied_because
            .as_deref()
            .unwrap()
            .contains("未提交"));
    }

    #[test]
    fn only_the_level_above_undoes_an_approval() {
        use ReviewAction::*;
        assert_eq!(level_for(Section::Books, Revoke), Some(Level::Township));
        assert_eq!(level_for(Section::Whole, Revoke), Some(Level::County));
        assert_eq!(level_for(Section::Books, Submit), Some(Level::School));
        assert_eq!(level_for(Section::Whole, Submit), Some(Level::Township));
        assert_eq!(level_for(Section::Books, Accept), None);
        assert_eq!(
            transition(Section::Books, ReviewStatus::Approved, Revoke),
            Ok(ReviewStatus::Submitted)
        );
        assert!(transition(Section::Books, ReviewStatus::Draft, Revoke).is_err());
        assert!(transition(Section::Whole, ReviewStatus::Submitted, Approve).is_err());
    }
}
