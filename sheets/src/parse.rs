//! Reading one cell of an imported ledger as the value a record field
//! holds. Each parser takes the cell and the field's Chinese name (for the
//! message) and returns the value or a message in Chinese that says what is
//! wrong and what to write instead.

use sync_core::schema::MAX_TEXT_CHARS;

use crate::Cell;

/// Full-width ASCII (`１２`, `（`, `／`) as ASCII, the ideographic space as
/// a space, trimmed.
pub(crate) fn normalize(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            '\u{2212}' => '-',
            c => c,
        })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// A number cell as text: at most 15 significant digits (what Excel shows
/// and keeps), no exponent, no trailing zeros, so `0.1 + 0.2` is `0.3`.
pub(crate) fn number_text(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let rounded: f64 = format!("{x:.14e}").parse().unwrap_or(x);
    let text = rounded.to_string();
    if text == "-0" {
        "0".into()
    } else {
        text
    }
}

/// The text of a cell as read, trimmed, numbers written out.
fn cell_text(cell: &Cell) -> String {
    match cell {
        Cell::Text(s) => s.trim().to_owned(),
        Cell::Number(x) | Cell::Percent(x) => number_text(*x),
        other => other.to_string(),
    }
}

/// Free text (names, models, rooms…).
pub(crate) fn text(cell: &Cell, label: &str) -> Result<String, String> {
    let text = cell_text(cell);
    let n = text.chars().count();
    if n > MAX_TEXT_CHARS {
        return Err(format!(
            "{label}太长（{n} 字）：最多 {MAX_TEXT_CHARS} 字，请删减"
        ));
    }
    Ok(text)
}

/// A number as written: sign, whole part, decimals.
struct Decimal {
    negative: bool,
    whole: String,
    fraction: String,
}

/// Parses a decimal number, allowing thousands separators (`1,280.50`) and
/// full-width digits. `Err` holds what follows the number, if it starts
/// with one (`12台` gives `台`).
fn decimal(cell: &Cell, currency: bool) -> Result<Decimal, Option<String>> {
    let text = match cell {
        Cell::Number(x) | Cell::Percent(x) => number_text(*x),
        other => normalize(&other.to_string()),
    };
    let mut t = text.as_str();
    if currency {
        t = t.trim_start_matches(['¥', '￥']).trim_start();
    }
    let negative = t.starts_with('-');
    t = t.strip_prefix(['-', '+']).unwrap_or(t);
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == ',' || c == '.'))
        .unwrap_or(t.len());
    let (body, rest) = t.split_at(end);
    let number_ends = !body.chars().any(|c| c.is_ascii_digit());
    if !rest.is_empty() || number_ends {
        let unit = (!number_ends && !rest.trim().is_empty()).then(|| rest.trim().to_owned());
        return Err(unit);
    }
    let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
    if fraction.contains(['.', ',']) {
        return Err(None);
    }
    if whole.contains(',') {
        let mut groups = whole.split(',');
        let first_ok = groups.next().is_some_and(|g| (1..=3).contains(&g.len()));
        if !first_ok || !groups.all(|g| g.len() == 3) {
            return Err(None);
        }
    }
    let whole = whole.replace(',', "");
    let whole = whole.trim_start_matches('0');
    Ok(Decimal {
        negative,
        whole: if whole.is_empty() {
            "0".into()
        } else {
            whole.into()
        },
        fraction: fraction.trim_end_matches('0').into(),
    })
}

fn not_a_number(cell: &Cell, label: &str, unit: Option<String>, example: &str) -> String {
    let shown = cell_text(cell);
    match unit {
        Some(unit) => {
            format!("「{shown}」不是数字：{label}只写数字（如 {example}），不要带“{unit}”")
        }
        None => format!("「{shown}」不是数字：{label}请用阿拉伯数字书写，如 {example}"),
    }
}

/// A count (数量, 册数): a whole number, zero or more.
pub(crate) fn count(cell: &Cell, label: &str) -> Result<u32, String> {
    let d = decimal(cell, false).map_err(|unit| not_a_number(cell, label, unit, "12"))?;
    let shown = cell_text(cell);
    if d.negative && (d.whole != "0" || !d.fraction.is_empty()) {
        return Err(format!("「{shown}」是负数：{label}请写 0 或正整数"));
    }
    if !d.fraction.is_empty() {
        return Err(format!("「{shown}」不是整数：{label}请写整数，如 12"));
    }
    d.whole
        .parse()
        .map_err(|_| format!("「{shown}」太大：{label}最多 {}", u32::MAX))
}

/// Money in yuan with at most two decimals, as fen. A leading `¥` is
/// allowed (Excel writes one into CSV for currency cells).
pub(crate) fn money(cell: &Cell, label: &str) -> Result<i64, String> {
    let d = decimal(cell, true).map_err(|unit| not_a_number(cell, label, unit, "380.00"))?;
    let shown = cell_text(cell);
    if d.negative && (d.whole != "0" || !d.fraction.is_empty()) {
        return Err(format!("「{shown}」是负数：{label}请写 0 或正数，单位是元"));
    }
    if d.fraction.len() > 2 {
        return Err(format!(
            "「{shown}」超过两位小数：{label}以元为单位，最多精确到分，如 380.25"
        ));
    }
    let fen = format!("{}{:0<2}", d.whole, d.fraction);
    fen.parse::<i64>()
        .ok()
        .filter(|f| *f < 1_000_000_000_000_000)
        .ok_or_else(|| format!("「{shown}」太大：请检查{label}是否多写了数字（单位是元）"))
}

/// A year (出版年): four digits, alone or at the start of a date
/// (`2008年5月`, `2008.5`, `2008-05-01`).
pub(crate) fn year(cell: &Cell, label: &str) -> Result<u32, String> {
    let text = match cell {
        Cell::Number(x) => number_text(*x),
        other => normalize(&other.to_string()),
    };
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    let rest = &text[digits.len()..];
    let ok_rest = rest.is_empty() || rest.starts_with(['年', '-', '/', '.', ' ']);
    match digits.parse::<u32>() {
        Ok(y) if digits.len() == 4 && ok_rest && y >= 1000 => Ok(y),
        _ => Err(format!(
            "「{}」不是年份：{label}请写四位数字，如 2008",
            cell_text(cell)
        )),
    }
}

/// A date as `YYYY-MM-DD`, from `2023-09-01`, `2023/9/1`, `2023.9.1`,
/// `2023年9月1日`, `20230901`, a time after the date (ignored), or an Excel
/// date serial in a number cell.
pub(crate) fn date(cell: &Cell, label: &str) -> Result<String, String> {
    let parsed = match cell {
        Cell::Number(x) => date_from_number(*x),
        Cell::Integer(i) => date_from_number(*i as f64),
        other => date_from_text(&normalize(&other.to_string())),
    };
    parsed.ok_or_else(|| {
        format!(
            "「{}」不是有效日期：{label}请写成 2023-09-01（也可写 2023/9/1、2023.9.1 或 2023年9月1日）",
            cell_text(cell)
        )
    })
}

fn date_from_number(x: f64) -> Option<String> {
    if x.fract() == 0.0 && (19_000_101.0..=99_991_231.0).contains(&x) {
        return date_from_text(&number_text(x));
    }
    // Excel's day numbers (1900 system); before 1910 is more likely a
    // year or a count typed into the wrong column than a date.
    if !(3654.0..2_958_466.0).contains(&x) {
        return None;
    }
    let (y, m, d) = civil_from_days(x.floor() as i64 - 25_569);
    ymd(y, m, d)
}

fn date_from_text(text: &str) -> Option<String> {
    // Drop a time after the date: "2023-09-01 08:30", "2023-09-01T08:30:00".
    let date = text.split_whitespace().next()?;
    let date = match date.find('T') {
        Some(i) if i >= 8 => &date[..i],
        _ => date,
    };
    if date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()) {
        let n = |r: std::ops::Range<usize>| date[r].parse().ok();
        return ymd(n(0..4)?, n(4..6)?, n(6..8)?);
    }
    let date = date
        .trim_end_matches(['日', '号'])
        .replace(['年', '月'], "-");
    let parts: Vec<&str> = date.split(['-', '/', '.']).collect();
    let [y, m, d] = parts[..] else { return None };
    let digits = |s: &str, max: usize| {
        (!s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<i64>().ok())
            .flatten()
    };
    if y.len() != 4 {
        return None;
    }
    ymd(digits(y, 4)?, digits(m, 2)?, digits(d, 2)?)
}

/// `YYYY-MM-DD` if it is a real day from 1900 on (what records accept).
fn ymd(y: i64, m: i64, d: i64) -> Option<String> {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    ((1900..=9999).contains(&y) && (1..=days).contains(&d)).then(|| format!("{y:04}-{m:02}-{d:02}"))
}

/// The civil date `days` after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// One of a fixed set of words (a status), by any of its accepted
/// spellings; the message lists the first spelling of each.
pub(crate) fn word<T: Copy>(cell: &Cell, label: &str, words: &[(T, &[&str])]) -> Result<T, String> {
    let key: String = normalize(&cell.to_string())
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    words
        .iter()
        .find(|(_, spellings)| spellings.contains(&key.as_str()))
        .map(|(value, _)| *value)
        .ok_or_else(|| {
            let accepted: Vec<&str> = words.iter().map(|(_, s)| s[0]).collect();
            format!(
                "「{}」不是可用的{label}：请写 {} 之一",
                cell_text(cell),
                accepted.join("、")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Cell {
        Cell::Text(s.into())
    }

    #[test]
    fn counts() {
        assert_eq!(count(&t("12"), "数量"), Ok(12));
        assert_eq!(count(&t(" １２ "), "数量"), Ok(12));
        assert_eq!(count(&t("12.0"), "数量"), Ok(12));
        assert_eq!(count(&t("1,200"), "数量"), Ok(1200));
        assert_eq!(count(&Cell::Number(12.0), "数量"), Ok(12));
        assert_eq!(count(&t("-0"), "数量"), Ok(0));
        let err = count(&t("12台"), "数量").unwrap_err();
        assert!(err.contains("不要带“台”"), "{err}");
        assert!(count(&t("十二"), "数量")
            .unwrap_err()
            .contains("阿拉伯数字"));
        assert!(count(&t("-3"), "数量").unwrap_err().contains("负数"));
        assert!(count(&Cell::Number(12.5), "数量")
            .unwrap_err()
            .contains("整数"));
        assert!(count(&t("1,20"), "数量").is_err());
        assert!(count(&t("1.2.3"), "数量").is_err());
        assert!(count(&t("."), "数量").is_err());
        assert!(count(&t("99999999999"), "数量")
            .unwrap_err()
            .contains("太大"));
    }

    #[test]
    fn money_in_fen() {
        assert_eq!(money(&t("380"), "单价"), Ok(38_000));
        assert_eq!(money(&t("380.5"), "单价"), Ok(38_050));
        assert_eq!(money(&t("￥1,280.05"), "单价"), Ok(128_005));
        assert_eq!(money(&t("0.07"), "单价"), Ok(7));
        assert_eq!(money(&t("12.300"), "单价"), Ok(1_230));
        assert_eq!(money(&Cell::Number(59.7), "单价"), Ok(5_970));
        assert_eq!(money(&Cell::Number(0.1 + 0.2), "单价"), Ok(30));
        assert_eq!(
            money(&Cell::Number(12_345_678_901.23), "单价"),
            Ok(1_234_567_890_123)
        );
        assert!(money(&t("380.125"), "单价")
            .unwrap_err()
            .contains("两位小数"));
        assert!(money(&t("-1"), "单价").unwrap_err().contains("负数"));
        assert!(money(&t("380元"), "单价")
            .unwrap_err()
            .contains("不要带“元”"));
    }

    #[test]
    fn dates() {
        for s in [
            "2023-09-01",
            "2023/9/1",
            "2023.9.1",
            "2023年9月1日",
            "2023年09月01日",
            "２０２３－９－１",
            "20230901",
            "2023-09-01 08:30:00",
            "2023-09-01T08:30:00",
        ] {
            assert_eq!(date(&t(s), "购置日期").as_deref(), Ok("2023-09-01"), "{s}");
        }
        assert_eq!(
            date(&Cell::Number(45170.0), "日期").as_deref(),
            Ok("2023-09-01")
        );
        assert_eq!(
            date(&Cell::Number(45170.75), "日期").as_deref(),
            Ok("2023-09-01")
        );
        assert_eq!(
            date(&Cell::Number(20230901.0), "日期").as_deref(),
            Ok("2023-09-01")
        );
        assert_eq!(date(&t("2024-02-29"), "日期").as_deref(), Ok("2024-02-29"));
        for bad in [
            "2023-02-29",
            "2023-13-01",
            "23-9-1",
            "2023-9",
            "明年",
            "2023",
            "1899-12-31",
        ] {
            let err = date(&t(bad), "购置日期").unwrap_err();
            assert!(err.contains("2023-09-01"), "{bad}: {err}");
        }
        assert!(date(&Cell::Number(2023.0), "日期").is_err());
    }

    #[test]
    fn days_to_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_601), (2023, 9, 1));
        assert_eq!(civil_from_days(-25_567), (1900, 1, 1));
    }

    #[test]
    fn years() {
        assert_eq!(year(&t("2008"), "出版年"), Ok(2008));
        assert_eq!(year(&t("2008年5月"), "出版年"), Ok(2008));
        assert_eq!(year(&t("2008.5"), "出版年"), Ok(2008));
        assert_eq!(year(&Cell::Number(2008.0), "出版年"), Ok(2008));
        assert!(year(&t("08"), "出版年").is_err());
        assert!(year(&t("二〇〇八"), "出版年").is_err());
    }

    #[test]
    fn numbers_as_text() {
        assert_eq!(number_text(13_800_138_000.0), "13800138000");
        assert_eq!(number_text(2.5), "2.5");
        assert_eq!(number_text(418.00000000000006), "418");
        assert_eq!(number_text(-0.0), "0");
    }
}
