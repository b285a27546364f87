//! Numbers and dates as the pages show them, and as `data-value` holds them.

use sync_core::records::PlanStatus;
use tpsync_reports::end_of_day_cst_ms;

/// China Standard Time (UTC+8).
const CST_OFFSET_MS: i64 = 8 * 3600 * 1000;

/// The raw number for `data-value`: Rust's shortest form that reads back
/// as the same `f64` (what `serde_json` writes too), so a test compares
/// numbers exactly.
pub(crate) fn raw(x: f64) -> String {
    format!("{x}")
}

pub(crate) fn raw_opt(x: Option<f64>) -> Option<String> {
    x.filter(|v| v.is_finite()).map(raw)
}

/// At most `places` decimals, trailing zeros dropped: 4.2, 50, 1234.57.
pub(crate) fn num_places(x: f64, places: usize) -> String {
    if !x.is_finite() {
        return "—".into();
    }
    let s = format!("{x:.places$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    };
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

/// An indicator value: two decimals at most.
pub(crate) fn num(x: f64) -> String {
    num_places(x, 2)
}

pub(crate) fn num_opt(x: Option<f64>) -> String {
    x.map(num).unwrap_or_else(|| "—".into())
}

/// A coefficient of variation: three decimals.
pub(crate) fn cv(x: Option<f64>) -> String {
    x.map(|v| num_places(v, 3)).unwrap_or_else(|| "—".into())
}

/// A ratio as a percentage: 85%.
pub(crate) fn percent(x: f64) -> String {
    format!("{}%", num_places(x * 100.0, 0))
}

/// (year, month, day) of a count of days since 1970-01-01 (H. Hinnant's
/// civil_from_days).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYY-MM-DD HH:MM`, China time.
pub(crate) fn datetime(ms: i64) -> String {
    let local = ms + CST_OFFSET_MS;
    let days = local.div_euclid(86_400_000);
    let in_day = local.rem_euclid(86_400_000) / 60_000;
    let (y, m, d) = civil(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}", in_day / 60, in_day % 60)
}

/// Whether a plan with this due date and status is overdue at `now_ms`:
/// still open (计划中 / 进行中) after the whole due day, China time.
pub(crate) fn overdue(due_on: Option<&str>, status: PlanStatus, now_ms: u64) -> bool {
    matches!(status, PlanStatus::Planned | PlanStatus::InProgress)
        && due_on
            .and_then(end_of_day_cst_ms)
            .is_some_and(|end| (now_ms as i64) >= end)
}

/// Whether the earliest open due date of a gap has passed.
pub(crate) fn date_passed(due_on: Option<&str>, now_ms: u64) -> bool {
    due_on
        .and_then(end_of_day_cst_ms)
        .is_some_and(|end| (now_ms as i64) >= end)
}

pub(crate) fn plan_status_label(s: PlanStatus) -> &'static str {
    match s {
        PlanStatus::Planned => "计划中",
        PlanStatus::InProgress => "进行中",
        PlanStatus::Done => "已完成",
        PlanStatus::Dropped => "已放弃",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(num(4.2), "4.2");
        assert_eq!(num(50.0), "50");
        assert_eq!(num(1234.5678), "1234.57");
        assert_eq!(cv(Some(0.123456)), "0.123");
        assert_eq!(cv(None), "—");
        assert_eq!(percent(0.85), "85%");
        assert_eq!(raw(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(raw(50.0), "50");
    }

    #[test]
    fn china_time() {
        // 2026-01-01T00:00:00+08:00
        assert_eq!(datetime(1_767_196_800_000), "2026-01-01 00:00");
        assert_eq!(datetime(0), "1970-01-01 08:00");
        let end = end_of_day_cst_ms("2026-01-01").unwrap() as u64;
        assert!(!overdue(Some("2026-01-01"), PlanStatus::Planned, end - 1));
        assert!(overdue(Some("2026-01-01"), PlanStatus::Planned, end));
        assert!(!overdue(Some("2026-01-01"), PlanStatus::Done, end));
        assert!(!overdue(None, PlanStatus::Planned, end));
    }
}
