//! Charts as inline SVG, drawn on the server: no script, no image
//! requests, crisp at any width. Each is a list of rows (one per
//! indicator) 360 units wide, scaled to the page by CSS; every row carries
//! the indicator's code and its raw number in `data-*` attributes, and a
//! `<title>` a mouse or a screen reader gets in words.

use maud::{html, Markup};
use tpsync_reports::rollup::{IndicatorRollup, StageRollup};

use super::format::{cv, num, num_opt, percent, raw_opt};

const WIDTH: f64 = 360.0;
const ROW: f64 = 22.0;
/// Where the bars start (after the code) and how wide they may be.
const X0: f64 = 40.0;
const BAR: f64 = 250.0;
/// Where the figure at the end of a row starts.
const X_TEXT: f64 = X0 + BAR + 6.0;

const GREEN: &str = "#2e7d32";
const RED: &str = "#c62828";
const GREY: &str = "#c4ccd4";
const BLUE: &str = "#1565c0";
const LINE: &str = "#37474f";

/// The code as a row label: `BOOKS` is 图书.
pub(crate) fn short_label(code: &str) -> &str {
    if code == sync_core::indicators::BOOKS_CODE {
        "图书"
    } else {
        code
    }
}

fn height(rows: usize) -> f64 {
    rows as f64 * ROW + 18.0
}

fn svg_open(rows: usize, label: &str, body: Markup) -> Markup {
    let h = height(rows);
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {WIDTH} {h}"))
            role="img" aria-label=(label) font-size="12" font-family="inherit" {
            (body)
        }
    }
}

/// Per indicator, the schools of a stage that meet its threshold (green),
/// those with a value that do not (red), and those without a value (grey).
pub(crate) fn meeting(stage: &StageRollup) -> Markup {
    let s = stage.stage.code();
    let total = stage.schools.max(1) as f64;
    let scale = |n: usize| n as f64 / total * BAR;
    let body = html! {
        @for (i, ind) in stage.indicators.iter().enumerate() {
            @let y = i as f64 * ROW;
            @let ok = ind.schools_meeting;
            @let short = ind.schools_with_value.saturating_sub(ind.schools_meeting);
            @let none = stage.schools.saturating_sub(ind.schools_with_value);
            g data-testid=(format!("meeting-bar-{s}-{}", ind.code)) data-code=(ind.code)
                data-value=(ok) data-with-value=(ind.schools_with_value) {
                title {
                    (ind.code) " " (ind.name) "：达到标准 " (ok) " 所，未达到 " (short)
                    " 所，无数据 " (none) " 所"
                }
                text x="0" y=(y + 15.0) { (short_label(&ind.code)) }
                rect x=(X0) y=(y + 4.0) width=(scale(ok)) height="14" fill=(GREEN) {}
                rect x=(X0 + scale(ok)) y=(y + 4.0) width=(scale(short)) height="14" fill=(RED) {}
                rect x=(X0 + scale(ok + short)) y=(y + 4.0) width=(scale(none)) height="14" fill=(GREY) {}
                text x=(X_TEXT) y=(y + 15.0) { (ok) "/" (stage.schools) }
            }
        }
        (axis(stage.indicators.len(), &["0", "", &stage.schools.to_string()]))
    };
    html! {
        figure.chart {
            figcaption.cap { "达到标准的学校数（共 " (stage.schools) " 所）" }
            (svg_open(stage.indicators.len(), "各指标达到标准的学校数", body))
            p.legend {
                i style=(format!("background:{GREEN}")) {} "达到标准"
                i style=(format!("background:{RED}")) {} "未达到"
                i style=(format!("background:{GREY}")) {} "无数据"
            }
        }
    }
}

/// Tick labels under the bars: at the start, the middle and the end.
fn axis(rows: usize, labels: &[&str; 3]) -> Markup {
    let y = rows as f64 * ROW + 13.0;
    html! {
        g fill="#6b7785" font-size="10" {
            text x=(X0) y=(y) text-anchor="start" { (labels[0]) }
            text x=(X0 + BAR / 2.0) y=(y) text-anchor="middle" { (labels[1]) }
            text x=(X0 + BAR) y=(y) text-anchor="end" { (labels[2]) }
        }
    }
}

/// One row of a chart against a threshold: the lowest and highest value
/// (equal for one school) and a mark (the mean), each divided by the
/// threshold.
pub(crate) struct AgainstThreshold<'a> {
    pub code: &'a str,
    pub name: &'a str,
    pub threshold: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub mark: Option<f64>,
    /// One value (a school): the bar runs from 0 to it.
    pub from_zero: bool,
}

impl<'a> AgainstThreshold<'a> {
    pub fn of_rollup(i: &'a IndicatorRollup) -> Self {
        AgainstThreshold {
            code: &i.code,
            name: &i.name,
            threshold: i.threshold,
            low: i.min,
            high: i.max,
            mark: i.cv.mean,
            from_zero: false,
        }
    }
}

/// Values against their thresholds: the bar spans lowest to highest as a
/// share of the threshold (0 to 200%, longer bars are cut with an arrow),
/// the dark line is the threshold (100%), the tick the (weighted) mean.
pub(crate) fn against_threshold(
    testid: &str,
    caption: &str,
    rows: &[AgainstThreshold<'_>],
) -> Markup {
    const MAX: f64 = 2.0;
    let x = |r: f64| X0 + r.clamp(0.0, MAX) / MAX * BAR;
    let threshold_x = x(1.0);
    let body = html! {
        @for (i, row) in rows.iter().enumerate() {
            @let y = i as f64 * ROW;
            @let t = row.threshold.filter(|t| *t > 0.0);
            g data-testid=(format!("{testid}-{}", row.code)) data-code=(row.code)
                data-threshold=[raw_opt(row.threshold)] data-low=[raw_opt(row.low)]
                data-high=[raw_opt(row.high)] data-mark=[raw_opt(row.mark)] {
                title {
                    (row.code) " " (row.name) "：标准 " (num_opt(row.threshold))
                    @if row.low == row.high {
                        "，数值 " (num_opt(row.low))
                    } @else {
                        "，最低 " (num_opt(row.low)) "，最高 " (num_opt(row.high))
                        "，平均 " (num_opt(row.mark))
                    }
                }
                text x="0" y=(y + 15.0) { (short_label(row.code)) }
                @match (t, row.low, row.high) {
                    (Some(t), Some(lo), Some(hi)) => {
                        @let (a, b) = (if row.from_zero { X0 } else { x(lo / t) }, x(hi / t));
                        @let ok = lo >= t;
                        rect x=(a) y=(y + 5.0) width=((b - a).max(2.0)) height="12"
                            fill=(if ok { GREEN } else if hi >= t { BLUE } else { RED }) {}
                        @if hi / t > MAX {
                            text x=(X0 + BAR + 1.0) y=(y + 15.0) fill=(LINE) { "›" }
                        }
                        @if let Some(m) = row.mark.filter(|_| row.low != row.high) {
                            rect x=(x(m / t) - 1.0) y=(y + 2.0) width="2" height="18" fill="#000" {}
                        }
                        text x=(X_TEXT + 6.0) y=(y + 15.0) {
                            (percent(row.mark.unwrap_or(lo) / t))
                        }
                    }
                    (None, _, _) => {
                        text x=(X0 + 4.0) y=(y + 15.0) fill="#6b7785" { "模板中没有标准" }
                    }
                    _ => {
                        text x=(X0 + 4.0) y=(y + 15.0) fill="#6b7785" { "无数据" }
                    }
                }
            }
        }
        line x1=(threshold_x) x2=(threshold_x) y1="0" y2=(rows.len() as f64 * ROW)
            stroke=(LINE) stroke-width="1.5" {}
        (axis(rows.len(), &["0", "标准", "200%"]))
    };
    html! {
        figure.chart {
            figcaption.cap { (caption) }
            (svg_open(rows.len(), caption, body))
            p.legend {
                "竖线为标准；"
                i style=(format!("background:{GREEN}")) {} "全部达到"
                i style=(format!("background:{BLUE}")) {} "部分达到"
                i style=(format!("background:{RED}")) {} "都未达到"
            }
        }
    }
}

/// Each indicator's coefficient of variation (差异系数) against the
/// template's limit (the red dashed mark on each row).
pub(crate) fn cv_chart(stage: &StageRollup) -> Markup {
    let s = stage.stage.code();
    let top = stage
        .indicators
        .iter()
        .flat_map(|i| [i.cv.cv, i.cv_limit])
        .flatten()
        .filter(|v| v.is_finite())
        .fold(1.0_f64, f64::max);
    let x = |v: f64| X0 + v.clamp(0.0, top) / top * BAR;
    let body = html! {
        @for (i, ind) in stage.indicators.iter().enumerate() {
            @let y = i as f64 * ROW;
            g data-testid=(format!("cv-bar-{s}-{}", ind.code)) data-code=(ind.code)
                data-value=[raw_opt(ind.cv.cv)] data-limit=[raw_opt(ind.cv_limit)]
                data-missing=[ind.cv.cv.is_none().then_some("true")] {
                title {
                    (ind.code) " " (ind.name) "：差异系数 " (cv(ind.cv.cv))
                    @if let Some(l) = ind.cv_limit { "，上限 " (num(l)) }
                    @if let Some(r) = &ind.cv.reason { "（" (r) "）" }
                }
                text x="0" y=(y + 15.0) { (short_label(&ind.code)) }
                @if let Some(v) = ind.cv.cv {
                    rect x=(X0) y=(y + 5.0) width=((x(v) - X0).max(1.0)) height="12"
                        fill=(match ind.cv_within { Some(true) => GREEN, Some(false) => RED, None => GREY }) {}
                    text x=(X_TEXT) y=(y + 15.0) { (cv(Some(v))) }
                } @else {
                    text x=(X0 + 4.0) y=(y + 15.0) fill="#6b7785" { "无法计算" }
                }
                @if let Some(l) = ind.cv_limit {
                    line x1=(x(l)) x2=(x(l)) y1=(y + 1.0) y2=(y + ROW - 1.0)
                        stroke=(RED) stroke-width="2" stroke-dasharray="3 2" {}
                }
            }
        }
        (axis(stage.indicators.len(), &["0", &num_places_half(top), &num(top)]))
    };
    html! {
        figure.chart {
            figcaption.cap { "差异系数（虚线为上限）" }
            (svg_open(stage.indicators.len(), "各指标差异系数与上限", body))
            p.legend {
                i style=(format!("background:{GREEN}")) {} "不超过上限"
                i style=(format!("background:{RED}")) {} "超过上限"
                i style=(format!("background:{GREY}")) {} "没有上限"
            }
        }
    }
}

fn num_places_half(top: f64) -> String {
    num(top / 2.0)
}
