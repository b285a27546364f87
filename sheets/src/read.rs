//! Reading uploaded bytes into grids of cells, within limits, never
//! panicking: xlsx through calamine, CSV in UTF-8, UTF-16 or GB18030.

use std::borrow::Cow;
use std::io::{self, Cursor, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};

use calamine::{DataRef, ExcelDateTime, Reader, Xlsx, XlsxError};

use crate::write::csv_unguard;
use crate::{Cell, SheetError, Table};

/// The largest file read: 10 MiB.
pub const MAX_INPUT_BYTES: usize = 10 * 1024 * 1024;
/// The most rows a sheet may have below its header.
pub const MAX_ROWS: usize = 50_000;
/// The widest a sheet may be.
pub const MAX_COLUMNS: usize = 256;
/// The most cells (counting the blanks between them) read from one file.
pub const MAX_CELLS: usize = 4_000_000;
/// The most an xlsx file may unpack to.
pub const MAX_UNPACKED_BYTES: u64 = 200 * 1024 * 1024;
/// How many rows from the top a header row is looked for in (room for a
/// title and a line such as "填报单位：…" above it).
pub(crate) const HEADER_SEARCH_ROWS: usize = 10;

const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
/// OLE compound files: old .xls, and password-protected .xlsx.
const OLE_MAGIC: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

/// The two formats read and written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SheetFormat {
    /// An Excel 2007+ workbook.
    Xlsx,
    /// Comma- (or tab-) separated text.
    Csv,
}

impl SheetFormat {
    /// The format of an uploaded file, from its first bytes (an xlsx is a
    /// zip, `PK\x03\x04`) or else its name. An old `.xls` or an encrypted
    /// workbook is refused with [`SheetError::LegacyXls`]; other binary
    /// files with [`SheetError::UnknownFormat`].
    pub fn detect(file_name: Option<&str>, bytes: &[u8]) -> Result<Self, SheetError> {
        if bytes.starts_with(ZIP_MAGIC) {
            return Ok(SheetFormat::Xlsx);
        }
        if bytes.starts_with(OLE_MAGIC) {
            return Err(SheetError::LegacyXls);
        }
        let ext = file_name
            .and_then(|n| n.rsplit_once('.'))
            .map(|(_, ext)| ext.trim().to_ascii_lowercase());
        match ext.as_deref() {
            Some("xlsx" | "xlsm") => Ok(SheetFormat::Xlsx),
            Some("xls" | "et") => Err(SheetError::LegacyXls),
            Some("csv" | "txt" | "tsv") => Ok(SheetFormat::Csv),
            _ if looks_like_text(bytes) => Ok(SheetFormat::Csv),
            _ => Err(SheetError::UnknownFormat),
        }
    }

    /// The file name extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            SheetFormat::Xlsx => "xlsx",
            SheetFormat::Csv => "csv",
        }
    }

    /// The media type to send the file with.
    pub fn content_type(self) -> &'static str {
        match self {
            SheetFormat::Xlsx => {
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            }
            SheetFormat::Csv => "text/csv; charset=utf-8",
        }
    }
}

fn looks_like_text(bytes: &[u8]) -> bool {
    encoding_rs::Encoding::for_bom(bytes).is_some() || !bytes[..bytes.len().min(4096)].contains(&0)
}

/// Every sheet of a workbook (or the one of a CSV file) as tables: the first
/// non-empty row is the header row, unless it holds a single value and the
/// row below holds more, in which case it is the title. Empty rows are left
/// out. xlsx numbers come back as [`Cell::Number`] (or [`Cell::Integer`]),
/// dates as `YYYY-MM-DD` text, everything else as text; CSV cells are all
/// text. A CSV table's sheet name is empty.
pub fn read_tables(bytes: &[u8], format: SheetFormat) -> Result<Vec<Table>, SheetError> {
    read_grids(bytes, format)?
        .into_iter()
        .map(|grid| {
            let mut rows = grid.rows.into_iter().filter(|r| !row_is_empty(r));
            let first = rows.next().unwrap_or_default();
            let mut rest: Vec<Vec<Cell>> = rows.collect();
            let filled = |r: &[Cell]| r.iter().filter(|c| !c.is_empty()).count();
            let (title, headers) = match rest.first() {
                Some(next) if filled(&first) == 1 && filled(next) > 1 => {
                    let title = first.iter().find(|c| !c.is_empty()).map(Cell::to_string);
                    (title, rest.remove(0))
                }
                _ => (None, first),
            };
            if rest.len() > MAX_ROWS {
                return Err(SheetError::TooManyRows { limit: MAX_ROWS });
            }
            let mut headers: Vec<String> = headers.iter().map(Cell::to_string).collect();
            while headers.last().is_some_and(|h| h.is_empty()) {
                headers.pop();
            }
            for row in &mut rest {
                while row.len() > headers.len() && row.last() == Some(&Cell::Empty) {
                    row.pop();
                }
                if row.len() < headers.len() {
                    row.resize(headers.len(), Cell::Empty);
                }
            }
            Ok(Table {
                sheet: grid.name,
                title,
                headers,
                rows: rest,
            })
        })
        .collect()
}

/// One sheet as read: `rows[i]` is the sheet's row `i + 1` as Excel numbers
/// it, each row as long as its last value.
#[derive(Debug)]
pub(crate) struct Grid {
    pub name: String,
    pub rows: Vec<Vec<Cell>>,
}

pub(crate) fn row_is_empty(row: &[Cell]) -> bool {
    row.iter().all(Cell::is_empty)
}

/// Reads every sheet, within the limits above.
pub(crate) fn read_grids(bytes: &[u8], format: SheetFormat) -> Result<Vec<Grid>, SheetError> {
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(SheetError::TooLarge {
            size: bytes.len(),
            limit: MAX_INPUT_BYTES,
        });
    }
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(SheetError::Empty);
    }
    if bytes.starts_with(OLE_MAGIC) {
        return Err(SheetError::LegacyXls);
    }
    match format {
        SheetFormat::Xlsx => {
            // calamine and zip are not known to panic on bad input, but this
            // runs on uploaded bytes: a panic there is a refused file.
            catch_unwind(AssertUnwindSafe(|| read_xlsx(bytes))).unwrap_or_else(|_| {
                Err(SheetError::NotXlsx {
                    detail: "文件内容有误 (reader panicked)".into(),
                })
            })
        }
        SheetFormat::Csv if bytes.starts_with(ZIP_MAGIC) => Err(SheetError::XlsxGivenAsCsv),
        SheetFormat::Csv => read_csv(bytes).map(|g| vec![g]),
    }
}

/// Collects cells into rows, counting against the limits.
struct GridBuilder<'a> {
    rows: Vec<Vec<Cell>>,
    cells: &'a mut usize,
}

impl GridBuilder<'_> {
    fn put(&mut self, row: usize, col: usize, cell: Cell) -> Result<(), SheetError> {
        if cell == Cell::Empty {
            return Ok(());
        }
        if row >= MAX_ROWS + HEADER_SEARCH_ROWS {
            return Err(SheetError::TooManyRows { limit: MAX_ROWS });
        }
        let too_big = SheetError::TooManyCells {
            max_columns: MAX_COLUMNS,
            max_cells: MAX_CELLS,
        };
        if col >= MAX_COLUMNS {
            return Err(too_big);
        }
        if self.rows.len() <= row {
            self.rows.resize_with(row + 1, Vec::new);
        }
        let r = &mut self.rows[row];
        if r.len() <= col {
            *self.cells += col + 1 - r.len();
            if *self.cells > MAX_CELLS {
                return Err(too_big);
            }
            r.resize(col + 1, Cell::Empty);
        }
        r[col] = cell;
        Ok(())
    }
}

fn not_xlsx(detail: impl std::fmt::Display) -> SheetError {
    SheetError::NotXlsx {
        detail: format!("文件不完整或已损坏: {detail}"),
    }
}

fn read_xlsx(bytes: &[u8]) -> Result<Vec<Grid>, SheetError> {
    check_unpacked_size(bytes)?;
    let mut book = Xlsx::new(Cursor::new(bytes)).map_err(|e| match e {
        XlsxError::Password => SheetError::LegacyXls,
        e => not_xlsx(e),
    })?;
    let mut cells = 0;
    let mut grids = Vec::new();
    for name in book.sheet_names() {
        let mut reader = match book.worksheet_cells_reader(&name) {
            Ok(r) => r,
            // A chart sheet, or a sheet the workbook lists but does not have.
            Err(XlsxError::NotAWorksheet(_) | XlsxError::WorksheetNotFound(_)) => continue,
            Err(e) => return Err(not_xlsx(e)),
        };
        let mut grid = GridBuilder {
            rows: Vec::new(),
            cells: &mut cells,
        };
        while let Some(cell) = reader.next_cell().map_err(not_xlsx)? {
            let (row, col) = cell.get_position();
            grid.put(row as usize, col as usize, xlsx_cell(cell.get_value()))?;
        }
        grids.push(Grid {
            name,
            rows: grid.rows,
        });
    }
    if grids.is_empty() {
        return Err(not_xlsx("没有工作表 (no worksheets)"));
    }
    Ok(grids)
}

/// Unpacks every member of the zip, counting bytes, so a small upload that
/// unpacks to gigabytes is refused before calamine holds it in memory.
fn check_unpacked_size(bytes: &[u8]) -> Result<(), SheetError> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(not_xlsx)?;
    let mut total = 0u64;
    for i in 0..zip.len() {
        let member = zip.by_index(i).map_err(not_xlsx)?;
        let left = MAX_UNPACKED_BYTES - total;
        total += io::copy(&mut member.take(left + 1), &mut io::sink()).map_err(not_xlsx)?;
        if total > MAX_UNPACKED_BYTES {
            return Err(SheetError::UnpackedTooLarge {
                limit: MAX_UNPACKED_BYTES,
            });
        }
    }
    Ok(())
}

fn xlsx_cell(value: &DataRef<'_>) -> Cell {
    match value {
        DataRef::Int(i) => Cell::Integer(*i),
        DataRef::Float(x) => Cell::Number(*x),
        DataRef::String(s) => Cell::Text(s.clone()),
        DataRef::SharedString(s) => Cell::Text((*s).to_owned()),
        DataRef::Bool(b) => Cell::Text(if *b { "TRUE" } else { "FALSE" }.into()),
        DataRef::DateTime(d) if d.is_datetime() => Cell::Text(excel_datetime_text(d)),
        DataRef::DateTime(d) => Cell::Number(d.as_f64()),
        DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => Cell::Text(s.clone()),
        DataRef::Error(e) => Cell::Text(e.to_string()),
        DataRef::Empty => Cell::Empty,
    }
}

/// A date-formatted cell as `YYYY-MM-DD`, with the time when there is one.
fn excel_datetime_text(d: &ExcelDateTime) -> String {
    let (y, mo, day, h, mi, s, _) = d.to_ymd_hms_milli();
    let time = format!("{h:02}:{mi:02}:{s:02}");
    if d.as_f64() < 1.0 {
        time
    } else if (h, mi, s) == (0, 0, 0) {
        format!("{y:04}-{mo:02}-{day:02}")
    } else {
        format!("{y:04}-{mo:02}-{day:02} {time}")
    }
}

/// Text in UTF-8 (with or without a byte-order mark), UTF-16 with a
/// byte-order mark (Excel's "Unicode text"), or else GB18030, the superset
/// of GBK that Excel on Chinese Windows writes CSV in.
fn decode_text(bytes: &[u8]) -> Result<Cow<'_, str>, SheetError> {
    let (encoding, rest) = match encoding_rs::Encoding::for_bom(bytes) {
        Some((encoding, bom)) => (encoding, &bytes[bom..]),
        None => match std::str::from_utf8(bytes) {
            Ok(text) => (encoding_rs::UTF_8, text.as_bytes()),
            Err(_) => (encoding_rs::GB18030, bytes),
        },
    };
    let (text, had_errors) = encoding.decode_without_bom_handling(rest);
    // NUL is no character of a CSV file: this is binary.
    let bad = if had_errors {
        text.find('\u{FFFD}')
    } else {
        text.find('\0')
    };
    match bad {
        Some(at) => Err(SheetError::Encoding {
            line: 1 + text[..at].matches('\n').count(),
        }),
        None => Ok(text),
    }
}

fn read_csv(bytes: &[u8]) -> Result<Grid, SheetError> {
    let text = decode_text(bytes)?;
    let sample: String = text.lines().take(5).collect();
    let delimiter = if sample.matches('\t').count() > sample.matches(',').count() {
        b'\t'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let mut cells = 0;
    let mut grid = GridBuilder {
        rows: Vec::new(),
        cells: &mut cells,
    };
    let mut record = csv::StringRecord::new();
    // Excel shows every line as a row, blank lines too, and a quoted field
    // over several lines as one row. The csv crate skips blank lines, so
    // rows are counted from the line breaks between records.
    let raw = text.as_bytes();
    let (mut row, mut content_end) = (0usize, None::<usize>);
    loop {
        let at = reader.position().byte() as usize;
        let start = at
            + raw[at..]
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                return Err(SheetError::Csv {
                    detail: e.to_string(),
                })
            }
        }
        row = match content_end {
            None => line_breaks(&raw[..start]),
            Some(end) => row + line_breaks(&raw[end.min(start)..start]),
        };
        let end = reader.position().byte() as usize;
        content_end = Some(
            end - raw[..end]
                .iter()
                .rev()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count(),
        );
        if row >= MAX_ROWS + HEADER_SEARCH_ROWS {
            return Err(SheetError::TooManyRows { limit: MAX_ROWS });
        }
        for (col, field) in record.iter().enumerate() {
            if !field.is_empty() {
                grid.put(row, col, Cell::Text(csv_unguard(field).to_owned()))?;
            }
        }
    }
    if grid.rows.is_empty() {
        return Err(SheetError::Empty);
    }
    Ok(Grid {
        name: String::new(),
        rows: grid.rows,
    })
}

/// How many line breaks (`\r\n`, `\n` or a lone `\r`) `bytes` holds.
fn line_breaks(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_detected_from_bytes_then_names() {
        use SheetFormat::*;
        assert_eq!(
            SheetFormat::detect(Some("a.csv"), b"PK\x03\x04rest"),
            Ok(Xlsx)
        );
        assert_eq!(SheetFormat::detect(None, "编号,名称\n".as_bytes()), Ok(Csv));
        assert_eq!(SheetFormat::detect(Some("台账.XLSX"), b"junk"), Ok(Xlsx));
        assert_eq!(
            SheetFormat::detect(Some("台账.xls"), b"junk"),
            Err(SheetError::LegacyXls)
        );
        assert_eq!(
            SheetFormat::detect(Some("x"), OLE_MAGIC),
            Err(SheetError::LegacyXls)
        );
        assert_eq!(
            SheetFormat::detect(None, b"\x00\x01\x02"),
            Err(SheetError::UnknownFormat)
        );
    }

    #[test]
    fn csv_rows_are_numbered_as_excel_shows_them() {
        for text in [
            "标题\r\n\r\n编号,名称\r\n1,\"两\n行\"\r\n2,乙\r\n\r\n",
            "标题\n\n编号,名称\n1,\"两\r\n行\"\n2,乙",
            "\r\n\r\n编号,名称\r1,\"两\n行\"\r2,乙\r",
        ] {
            let grid = read_csv(text.as_bytes()).unwrap();
            assert_eq!(grid.rows.len(), 5, "{text:?}: {grid:?}");
            assert_eq!(grid.rows[2][0], Cell::Text("编号".into()), "{text:?}");
            assert!(grid.rows[1].is_empty(), "{text:?}");
            assert!(grid.rows[3][1].as_str().unwrap().starts_with("两"));
            assert_eq!(grid.rows[4][1], Cell::Text("乙".into()));
        }
    }

    #[test]
    fn text_encodings() {
        assert_eq!(decode_text("\u{FEFF}编号".as_bytes()).unwrap(), "编号");
        let (gbk, _, _) = encoding_rs::GBK.encode("编号,名称");
        assert_eq!(decode_text(&gbk).unwrap(), "编号,名称");
        let mut utf16 = vec![0xFF, 0xFE];
        utf16.extend("编号\t名称".encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(decode_text(&utf16).unwrap(), "编号\t名称");
        assert_eq!(
            decode_text(b"ok\nok\n\xFF\xFF"),
            Err(SheetError::Encoding { line: 3 })
        );
        assert!(decode_text(b"a,b\0c").is_err());
    }
}
