//! Importing an existing ledger: find the header row, read every row into a
//! record or into errors a clerk can act on, and show it all before
//! anything is saved.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sync_core::records::{Book, BookStatus, EquipmentItem, EquipmentStatus};

use crate::ledger::{
    header_key, Column, Field, LedgerKind, BOOK_STATUS_WORDS, EQUIPMENT_STATUS_WORDS,
    IGNORED_HEADERS,
};
use crate::parse;
use crate::read::{read_grids, row_is_empty, Grid, HEADER_SEARCH_ROWS, MAX_ROWS};
use crate::{Cell, SheetError, SheetFormat};

/// What an import would add, shown to the clerk before anything is saved.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportPreview {
    /// The ledger read.
    pub kind: LedgerKind,
    /// The rows that can be imported as they are. A row with any error is
    /// not here.
    pub rows: Vec<ImportRow>,
    /// Everything wrong, row by row, in the order of the file.
    pub errors: Vec<RowError>,
    /// Headers of columns that are not read, as written: names not known,
    /// or a second column for a field already read from an earlier one.
    pub unknown_columns: Vec<String>,
    /// How many data rows the file has (not counting empty rows or a
    /// 合计 line).
    pub total_rows: usize,
}

/// One row that can be imported.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportRow {
    /// The row number as Excel shows it (1-based, counting title and header
    /// rows).
    pub line: usize,
    /// The record the row becomes.
    pub record: LedgerRecord,
}

/// A record read from a ledger row.
#[derive(Clone, Debug, PartialEq)]
pub enum LedgerRecord {
    /// A line of the equipment ledger.
    Equipment(EquipmentItem),
    /// A line of the book register.
    Book(Book),
}

impl LedgerRecord {
    /// The asset number or registration number.
    pub fn key(&self) -> &str {
        match self {
            LedgerRecord::Equipment(item) => &item.asset_no,
            LedgerRecord::Book(book) => &book.reg_no,
        }
    }
}

/// One thing wrong in one row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError {
    /// The row number as Excel shows it.
    pub line: usize,
    /// The column's header as written in the file; none for the row as a
    /// whole.
    pub column: Option<String>,
    /// What is wrong and what to write instead, in Chinese.
    pub message: String,
}

/// Reads a ledger file and says, row by row, what importing it would add
/// and what is wrong. Nothing is saved.
///
/// The sheet read is the first whose header row (within the top
/// ten rows, so a title or two may sit above it) has every required column:
/// 资产编号, 名称, 数量, 单价 for equipment; 登记号, 书名 for books. Headers
/// are matched by their common Chinese names or the records' English field
/// names, ignoring full-width forms, spaces and a trailing `(元)`; 金额 and
/// 序号 are known and not read. Empty rows and a 合计/总计 line are skipped.
/// Status defaults to 在用 (equipment) or 在架 (books); 册数 to 1.
///
/// A row whose key (资产编号 or 登记号) appeared on an earlier row, or is in
/// `existing_keys` (the ledger as it is), is an error. The whole file is
/// refused, with nothing previewed, when it is too large or unreadable or
/// no sheet has the required columns.
pub fn preview_import(
    kind: LedgerKind,
    bytes: &[u8],
    format: SheetFormat,
    existing_keys: &BTreeSet<String>,
) -> Result<ImportPreview, SheetError> {
    let grids = read_grids(bytes, format)?;
    let (grid, header) = find_header(kind, &grids)?;

    let data: Vec<(usize, &Vec<Cell>)> = grid
        .rows
        .iter()
        .enumerate()
        .skip(header.row + 1)
        .filter(|(_, cells)| !row_is_empty(cells) && !is_total_line(kind, &header, cells))
        .collect();
    if data.len() > MAX_ROWS {
        return Err(SheetError::TooManyRows { limit: MAX_ROWS });
    }

    let mut preview = ImportPreview {
        kind,
        rows: Vec::new(),
        errors: Vec::new(),
        unknown_columns: header.unknown.clone(),
        total_rows: data.len(),
    };
    let key_label = kind.key_field().label();
    let mut first_seen: HashMap<String, usize> = HashMap::new();
    for (index, cells) in data {
        let mut row = RowReader {
            line: index + 1,
            cells,
            header: &header,
            errors: Vec::new(),
        };
        let record = match kind {
            LedgerKind::Equipment => equipment(&mut row).map(LedgerRecord::Equipment),
            LedgerKind::Books => book(&mut row).map(LedgerRecord::Book),
        };
        if let Some(key) = row.key_text(kind.key_field()) {
            let first = *first_seen.entry(key.clone()).or_insert(row.line);
            if first != row.line {
                row.error(
                    kind.key_field(),
                    format!("{key_label}「{key}」与第 {first} 行重复：同一编号在文件中只能出现一次，请改正其中一个"),
                );
            } else if existing_keys.contains(&key) {
                row.error(
                    kind.key_field(),
                    format!("{key_label}「{key}」已在台账中：这条记录已经登记过，如需修改请在台账中编辑；新的请换一个编号"),
                );
            }
        }
        let line = row.line;
        let mut errors = row.errors;
        match record {
            Some(record) if errors.is_empty() => preview.rows.push(ImportRow { line, record }),
            _ => {
                errors.sort_by_key(|(column, _)| *column);
                preview.errors.extend(errors.into_iter().map(|(_, e)| e));
            }
        }
    }
    Ok(preview)
}

/// The header row found: where each field's column is.
struct Header {
    /// The row's index in the sheet.
    row: usize,
    /// For each field read: its column and its header as written.
    columns: BTreeMap<Field, (usize, String)>,
    unknown: Vec<String>,
    /// The headers as written (the first 30, cut to 30 characters), for
    /// the error when columns are missing.
    written: Vec<String>,
}

/// The first sheet whose header row has every required column, or the
/// error naming what the best candidate lacks.
fn find_header(kind: LedgerKind, grids: &[Grid]) -> Result<(&Grid, Header), SheetError> {
    let mut best: Option<Header> = None;
    for grid in grids {
        for (row, cells) in grid.rows.iter().enumerate().take(HEADER_SEARCH_ROWS) {
            let header = match_header(kind, row, cells);
            let complete = kind
                .columns()
                .iter()
                .filter(|c| c.required)
                .all(|c| header.columns.contains_key(&c.field));
            if complete {
                return Ok((grid, header));
            }
            if best
                .as_ref()
                .is_none_or(|b| header.columns.len() > b.columns.len())
            {
                best = Some(header);
            }
        }
    }
    let (found, written) = best.map(|b| (b.columns, b.written)).unwrap_or_default();
    Err(SheetError::MissingColumns {
        missing: kind
            .columns()
            .iter()
            .filter(|c| c.required && !found.contains_key(&c.field))
            .map(|c| c.field.label().to_owned())
            .collect(),
        found: written,
    })
}

fn match_header(kind: LedgerKind, row: usize, cells: &[Cell]) -> Header {
    let mut header = Header {
        row,
        columns: BTreeMap::new(),
        unknown: Vec::new(),
        written: Vec::new(),
    };
    for (col, cell) in cells.iter().enumerate() {
        let written = cell.to_string().trim().to_owned();
        if written.is_empty() {
            continue;
        }
        if header.written.len() < 30 {
            header.written.push(written.chars().take(30).collect());
        }
        let key = header_key(&written);
        if IGNORED_HEADERS.contains(&key.as_str()) {
            continue;
        }
        match column_named(kind, &key) {
            Some(c) if c.field == Field::Amount => {}
            Some(c) if !header.columns.contains_key(&c.field) => {
                header.columns.insert(c.field, (col, written));
            }
            _ => header.unknown.push(written),
        }
    }
    header
}

/// The column a header names: whole, or without a trailing parenthesis
/// (`单价(元)`, `数量(台)`).
fn column_named(kind: LedgerKind, key: &str) -> Option<&'static Column> {
    let find = |k: &str| kind.columns().iter().find(|c| c.names.contains(&k));
    find(key).or_else(|| {
        let base = key.strip_suffix(')')?.rsplit_once('(')?.0;
        find(base)
    })
}

/// A 合计/总计/小计 line under the rows: the word in some cell, and no key
/// but that word.
fn is_total_line(kind: LedgerKind, header: &Header, cells: &[Cell]) -> bool {
    let is_total = |c: &Cell| {
        let t = c.to_string().replace(char::is_whitespace, "");
        matches!(t.as_str(), "合计" | "总计" | "小计")
    };
    let key_cell = header
        .columns
        .get(&kind.key_field())
        .and_then(|(col, _)| cells.get(*col));
    key_cell.is_none_or(|k| k.is_empty() || is_total(k)) && cells.iter().any(is_total)
}

/// Reads one row's cells by field, collecting its errors (with the column
/// index, to sort them as the row reads).
struct RowReader<'a> {
    line: usize,
    cells: &'a [Cell],
    header: &'a Header,
    errors: Vec<(usize, RowError)>,
}

type Parser<T> = fn(&Cell, &str) -> Result<T, String>;

impl RowReader<'_> {
    /// The cell under `field`, unless the column is absent or the cell empty.
    fn cell(&self, field: Field) -> Option<&Cell> {
        let (col, _) = self.header.columns.get(&field)?;
        self.cells.get(*col).filter(|c| !c.is_empty())
    }

    fn error(&mut self, field: Field, message: String) {
        let (col, written) = self
            .header
            .columns
            .get(&field)
            .map_or((usize::MAX, None), |(col, h)| (*col, Some(h.clone())));
        self.errors.push((
            col,
            RowError {
                line: self.line,
                column: written,
                message,
            },
        ));
    }

    /// `Some(None)` for an empty cell; `None` after recording an error.
    fn optional<T>(&mut self, field: Field, parse: Parser<T>) -> Option<Option<T>> {
        let Some(cell) = self.cell(field) else {
            return Some(None);
        };
        match parse(cell, field.label()) {
            Ok(v) => Some(Some(v)),
            Err(message) => {
                self.error(field, message);
                None
            }
        }
    }

    /// The value, or `None` after recording an error (also when empty).
    fn required<T>(&mut self, field: Field, parse: Parser<T>) -> Option<T> {
        match self.optional(field, parse)? {
            Some(v) => Some(v),
            None => {
                let label = field.label();
                self.error(
                    field,
                    format!("{label}为空：每一行都必须填写{label}，请补上"),
                );
                None
            }
        }
    }

    /// The key as text, for the duplicate checks, if the cell has one.
    fn key_text(&self, field: Field) -> Option<String> {
        let key = parse::text(self.cell(field)?, "").ok()?;
        (!key.is_empty()).then_some(key)
    }
}

fn equipment_status(cell: &Cell, label: &str) -> Result<EquipmentStatus, String> {
    parse::word(cell, label, EQUIPMENT_STATUS_WORDS)
}

fn book_status(cell: &Cell, label: &str) -> Result<BookStatus, String> {
    parse::word(cell, label, BOOK_STATUS_WORDS)
}

fn equipment(r: &mut RowReader<'_>) -> Option<EquipmentItem> {
    use parse::{count, date, money, text};
    let asset_no = r.required(Field::AssetNo, text);
    let name = r.required(Field::Name, text);
    let category_code = r.optional(Field::CategoryCode, text);
    let brand = r.optional(Field::Brand, text);
    let model = r.optional(Field::Model, text);
    let spec = r.optional(Field::Spec, text);
    let unit = r.optional(Field::Unit, text);
    let quantity = r.required(Field::Quantity, count);
    let unit_price_fen = r.required(Field::UnitPrice, money);
    let funding_source = r.optional(Field::FundingSource, text);
    let keeper = r.optional(Field::Keeper, text);
    let room = r.optional(Field::Room, text);
    let acquired_on = r.optional(Field::AcquiredOn, date);
    let status = r.optional(Field::Status, equipment_status);
    let status_reason = r.optional(Field::StatusReason, text);
    let status_date = r.optional(Field::StatusDate, date);
    Some(EquipmentItem {
        asset_no: asset_no?,
        name: name?,
        category_code: category_code?,
        brand: brand?,
        model: model?,
        spec: spec?,
        unit: unit?,
        quantity: quantity?,
        unit_price_fen: unit_price_fen?,
        funding_source: funding_source?,
        keeper: keeper?,
        room: room?,
        acquired_on: acquired_on?,
        status: status?.unwrap_or(EquipmentStatus::InUse),
        status_reason: status_reason?,
        status_date: status_date?,
    })
}

fn book(r: &mut RowReader<'_>) -> Option<Book> {
    use parse::{count, date, money, text, year};
    let reg_no = r.required(Field::RegNo, text);
    let title = r.required(Field::Title, text);
    let author = r.optional(Field::Author, text);
    let isbn = r.optional(Field::Isbn, text);
    let publisher = r.optional(Field::Publisher, text);
    let pub_year = r.optional(Field::PubYear, year);
    let clc_class = r.optional(Field::ClcClass, text);
    let price_fen = r.optional(Field::Price, money);
    let copies = r.optional(Field::Copies, count);
    let shelf = r.optional(Field::Shelf, text);
    let received_on = r.optional(Field::ReceivedOn, date);
    let status = r.optional(Field::Status, book_status);
    let status_reason = r.optional(Field::StatusReason, text);
    let status_date = r.optional(Field::StatusDate, date);
    Some(Book {
        reg_no: reg_no?,
        isbn: isbn?,
        title: title?,
        author: author?,
        publisher: publisher?,
        pub_year: pub_year?,
        clc_class: clc_class?,
        price_fen: price_fen?,
        copies: copies?.unwrap_or(1),
        shelf: shelf?,
        received_on: received_on?,
        status: status?.unwrap_or(BookStatus::OnShelf),
        status_reason: status_reason?,
        status_date: status_date?,
    })
}
