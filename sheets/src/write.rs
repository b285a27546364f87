//! Writing tables: xlsx workbooks and UTF-8 CSV.

use std::borrow::Cow;
use std::collections::HashSet;

use rust_xlsxwriter::{Format, FormatBorder, Workbook, Worksheet, XlsxError};

use crate::table::display_width;
use crate::{Cell, SheetError, Table};

/// A workbook with one worksheet per table, in order.
///
/// Each sheet has the title (bold, merged across the columns) when there is
/// one, then a bold header row that stays in view when scrolling (frozen)
/// and has filter buttons, then the rows. Numbers are numbers (money as
/// `#,##0.00` yuan, percentages as `0.0%`), text is never a formula, and
/// columns are as wide as their contents (Chinese characters count double).
/// No tables gives a workbook with one empty sheet.
pub fn to_xlsx(tables: &[Table]) -> Result<Vec<u8>, SheetError> {
    let mut workbook = Workbook::new();
    let mut used = HashSet::new();
    for (i, table) in tables.iter().enumerate() {
        let name = sheet_name(&table.sheet, i, &mut used);
        let sheet = workbook.add_worksheet();
        sheet.set_name(name).map_err(write_error)?;
        write_sheet(sheet, table).map_err(write_error)?;
    }
    if tables.is_empty() {
        workbook.add_worksheet();
    }
    workbook.save_to_buffer().map_err(write_error)
}

fn write_error(e: XlsxError) -> SheetError {
    SheetError::Write {
        detail: e.to_string(),
    }
}

fn write_sheet(sheet: &mut Worksheet, table: &Table) -> Result<(), XlsxError> {
    let title_format = Format::new().set_bold().set_font_size(14);
    let header_format = Format::new()
        .set_bold()
        .set_background_color("#D9E1F2")
        .set_border(FormatBorder::Thin);
    let money_format = Format::new().set_num_format("#,##0.00");
    let percent_format = Format::new().set_num_format("0.0%");

    let columns = table
        .headers
        .len()
        .max(table.rows.iter().map(Vec::len).max().unwrap_or(0));
    let mut widths: Vec<usize> = table
        .headers
        .iter()
        .map(|h| display_width(h) * 11 / 10)
        .collect();
    widths.resize(columns, 0);

    let mut row: u32 = 0;
    if let Some(title) = &table.title {
        if columns > 1 {
            sheet.merge_range(0, 0, 0, col(columns - 1)?, title, &title_format)?;
        } else {
            sheet.write_string_with_format(0, 0, title, &title_format)?;
        }
        sheet.set_row_height(0, 24)?;
        row = 1;
    }
    let header_row = row;
    for (c, header) in table.headers.iter().enumerate() {
        sheet.write_string_with_format(row, col(c)?, header, &header_format)?;
    }
    for cells in &table.rows {
        row = row.checked_add(1).ok_or(XlsxError::RowColumnLimitError)?;
        for (c, cell) in cells.iter().enumerate() {
            let c16 = col(c)?;
            match cell {
                Cell::Text(s) => sheet.write_string(row, c16, s).map(drop)?,
                Cell::Number(x) => sheet.write_number(row, c16, *x).map(drop)?,
                Cell::Integer(i) => sheet.write_number(row, c16, *i as f64).map(drop)?,
                Cell::Money(fen) => sheet
                    .write_number_with_format(row, c16, *fen as f64 / 100.0, &money_format)
                    .map(drop)?,
                Cell::Percent(x) => sheet
                    .write_number_with_format(row, c16, *x, &percent_format)
                    .map(drop)?,
                Cell::Empty => {}
            }
            let shown = match cell {
                // Thousands separators.
                Cell::Money(_) => cell.to_string().len() * 4 / 3,
                _ => display_width(&cell.to_string()),
            };
            widths[c] = widths[c].max(shown);
        }
    }
    sheet.set_freeze_panes(header_row + 1, 0)?;
    if !table.headers.is_empty() {
        sheet.autofilter(header_row, 0, row, col(table.headers.len() - 1)?)?;
    }
    for (c, w) in widths.into_iter().enumerate() {
        // Room for the filter button; no column too narrow to read or so wide
        // it hides the others.
        sheet.set_column_width(col(c)?, (w + 4).clamp(8, 60) as f64)?;
    }
    Ok(())
}

fn col(c: usize) -> Result<u16, XlsxError> {
    u16::try_from(c).map_err(|_| XlsxError::RowColumnLimitError)
}

/// A name Excel accepts and no other sheet of the workbook has (Excel
/// compares names ignoring case).
fn sheet_name(raw: &str, index: usize, used: &mut HashSet<String>) -> String {
    let cleaned: String = raw
        .chars()
        .map(|c| {
            if "[]:*?/\\".contains(c) || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let cleaned = cleaned.trim().trim_matches('\'').trim();
    let base = if cleaned.is_empty() || cleaned.eq_ignore_ascii_case("history") {
        format!("Sheet{}", index + 1)
    } else {
        cleaned.to_owned()
    };
    let mut n = 1;
    loop {
        let suffix = if n == 1 {
            String::new()
        } else {
            format!("({n})")
        };
        let name = format!("{}{suffix}", truncate_utf16(&base, 31 - suffix.len()));
        if used.insert(name.to_lowercase()) {
            return name;
        }
        n += 1;
    }
}

/// At most `max` UTF-16 units of `s` (Excel counts sheet names in them).
fn truncate_utf16(s: &str, max: usize) -> &str {
    let mut units = 0;
    for (i, c) in s.char_indices() {
        units += c.len_utf16();
        if units > max {
            return s[..i].trim_end_matches('\'');
        }
    }
    s
}

/// The table as CSV: UTF-8 with a byte-order mark (so Excel on Chinese
/// Windows does not read it as GBK), comma-separated, CRLF line ends. The
/// title, if any, is a line of its own above the header. Money is written as
/// `380.00`, percentages as `12.5%`. Text that Excel would take for a
/// formula (starting with `=`, `+`, `-`, `@`) gets a leading `'`, which
/// [`crate::read_tables`] and [`crate::preview_import`] remove again.
pub fn to_csv(table: &Table) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + table.rows.len() * 64);
    out.extend_from_slice("\u{FEFF}".as_bytes());
    let mut writer = csv::WriterBuilder::new()
        .flexible(true)
        .terminator(csv::Terminator::CRLF)
        .from_writer(out);
    let mut write = |record: Vec<Cow<'_, str>>| {
        writer
            .write_record(record.iter().map(|f| f.as_bytes()))
            .expect("writing CSV to memory cannot fail");
    };
    if let Some(title) = &table.title {
        write(vec![csv_guard(title)]);
    }
    write(table.headers.iter().map(|h| csv_guard(h)).collect());
    for row in &table.rows {
        write(
            row.iter()
                .map(|cell| match cell {
                    Cell::Text(s) => csv_guard(s),
                    other => Cow::Owned(other.to_string()),
                })
                .collect(),
        );
    }
    writer
        .into_inner()
        .expect("writing CSV to memory cannot fail")
}

/// Characters that make Excel read a CSV field as a formula.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// `s`, with a `'` in front if Excel would read it as a formula. Text that
/// already starts with `'`s before such a character gets one more, so
/// [`csv_unguard`] gives back exactly `s`.
pub(crate) fn csv_guard(s: &str) -> Cow<'_, str> {
    if s.trim_start_matches('\'').starts_with(FORMULA_STARTS) {
        Cow::Owned(format!("'{s}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// Undoes [`csv_guard`].
pub(crate) fn csv_unguard(s: &str) -> &str {
    match s.strip_prefix('\'') {
        Some(rest) if rest.trim_start_matches('\'').starts_with(FORMULA_STARTS) => rest,
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheet_names_are_made_acceptable_and_unique() {
        let mut used = HashSet::new();
        assert_eq!(sheet_name("设备/图书", 0, &mut used), "设备_图书");
        assert_eq!(sheet_name("设备/图书", 1, &mut used), "设备_图书(2)");
        assert_eq!(sheet_name("  ", 2, &mut used), "Sheet3");
        assert_eq!(sheet_name("'History'", 3, &mut used), "Sheet4");
        let long = "青山镇中心学校".repeat(6);
        let name = sheet_name(&long, 4, &mut used);
        assert_eq!(name.encode_utf16().count(), 31);
        let again = sheet_name(&long, 5, &mut used);
        assert!(again.ends_with("(2)") && again.encode_utf16().count() <= 31);
        assert_eq!(sheet_name("Data", 6, &mut used), "Data");
        assert_eq!(sheet_name("DATA", 7, &mut used), "DATA(2)");
    }

    #[test]
    fn formula_guard_round_trips() {
        for s in [
            "=1+1", "+86", "-", "@x", "'=x", "''+y", "'abc", "abc", "", "'",
        ] {
            let guarded = csv_guard(s);
            assert!(!guarded.starts_with(FORMULA_STARTS), "{s}");
            assert_eq!(csv_unguard(&guarded), s);
        }
    }
}
