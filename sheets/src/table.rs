//! The generic table every export is built from and every read returns.

use std::fmt;

/// One sheet of a workbook, or one CSV file.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// The sheet's name (Chinese is fine). On export it is made acceptable
    /// to Excel: `[]:*?/\` become `_`, at most 31 characters, unique within
    /// the workbook.
    pub sheet: String,
    /// A title shown above the header row (for example "青山镇中心学校仪器设备台账").
    pub title: Option<String>,
    /// The header row.
    pub headers: Vec<String>,
    /// The data rows, in order.
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    /// An empty table with the given sheet name and headers.
    pub fn new(
        sheet: impl Into<String>,
        headers: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Table {
            sheet: sheet.into(),
            title: None,
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// The index of the column whose header is `header`.
    pub fn column(&self, header: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == header)
    }

    /// The cell at `row` under `header`, [`Cell::Empty`] when the row is
    /// shorter or there is no such column.
    pub fn cell(&self, row: usize, header: &str) -> &Cell {
        self.column(header)
            .and_then(|c| self.rows.get(row)?.get(c))
            .unwrap_or(&Cell::Empty)
    }
}

/// One cell. Numbers are written as numbers, so Excel can sum them.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// Text, written as is (never as a formula).
    Text(String),
    /// A number with no fixed format.
    Number(f64),
    /// A whole number (quantities, copies, years).
    Integer(i64),
    /// Money in fen (分), shown as yuan (元) with two decimals: `38000` is 380.00.
    Money(i64),
    /// A fraction shown as a percentage: `0.125` is 12.5%.
    Percent(f64),
    /// Nothing.
    Empty,
}

impl Cell {
    /// Text, or [`Cell::Empty`] for `None`.
    pub fn opt_text(v: Option<&str>) -> Cell {
        v.map_or(Cell::Empty, |s| Cell::Text(s.to_owned()))
    }

    /// True for [`Cell::Empty`] and text that is only whitespace.
    pub fn is_empty(&self) -> bool {
        match self {
            Cell::Empty => true,
            Cell::Text(s) => s.trim().is_empty(),
            _ => false,
        }
    }

    /// The cell as a number, if it is one (money as yuan, percentages as
    /// fractions). Text is not parsed.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Cell::Number(x) | Cell::Percent(x) => Some(x),
            Cell::Integer(i) => Some(i as f64),
            Cell::Money(fen) => Some(fen as f64 / 100.0),
            Cell::Text(_) | Cell::Empty => None,
        }
    }

    /// The cell's text, if it is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Cell::Text(s) => Some(s),
            _ => None,
        }
    }
}

/// The cell as CSV writes it: money as `380.00`, percentages as `12.5%`,
/// other numbers in their shortest exact form, empty as nothing.
impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cell::Text(s) => f.write_str(s),
            Cell::Number(x) => write!(f, "{x}"),
            Cell::Integer(i) => write!(f, "{i}"),
            Cell::Money(fen) => {
                let sign = if *fen < 0 { "-" } else { "" };
                let abs = fen.unsigned_abs();
                write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
            }
            Cell::Percent(x) => {
                let pct = format!("{:.2}", x * 100.0);
                let pct = pct.trim_end_matches('0').trim_end_matches('.');
                write!(f, "{pct}%")
            }
            Cell::Empty => Ok(()),
        }
    }
}

/// How many columns of a default Excel font `s` takes: CJK and full-width
/// characters count two, others one.
pub(crate) fn display_width(s: &str) -> usize {
    s.chars()
        .map(|c| {
            let c = c as u32;
            let wide = matches!(c,
                0x1100..=0x115F
                | 0x2E80..=0x303E
                | 0x3041..=0x33FF
                | 0x3400..=0x4DBF
                | 0x4E00..=0x9FFF
                | 0xA000..=0xA4CF
                | 0xAC00..=0xD7A3
                | 0xF900..=0xFAFF
                | 0xFE30..=0xFE4F
                | 0xFF00..=0xFF60
                | 0xFFE0..=0xFFE6
                | 0x20000..=0x3FFFD);
            if wide {
                2
            } else {
                1
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_print_as_csv_writes_them() {
        assert_eq!(Cell::Money(38_000).to_string(), "380.00");
        assert_eq!(Cell::Money(5).to_string(), "0.05");
        assert_eq!(Cell::Money(-150).to_string(), "-1.50");
        assert_eq!(Cell::Percent(0.125).to_string(), "12.5%");
        assert_eq!(Cell::Percent(1.0).to_string(), "100%");
        assert_eq!(Cell::Number(2.5).to_string(), "2.5");
        assert_eq!(Cell::Integer(12).to_string(), "12");
        assert_eq!(Cell::Empty.to_string(), "");
    }

    #[test]
    fn chinese_is_twice_as_wide() {
        assert_eq!(display_width("abc"), 3);
        assert_eq!(display_width("资产编号"), 8);
        assert_eq!(display_width("单价（元）"), 10);
    }
}
