//! # tpsync-sheets
//!
//! Excel (.xlsx) and CSV with Chinese headers, for the county education
//! bureau and the township clerks: any report as a [`Table`], the two
//! ledgers schools keep ([`equipment_table`], [`books_table`]), the other
//! records for export only ([`archive_tables`], [`checklist_tables`],
//! [`stocktake_table`]), and the
//! import of a ledger a school already keeps in Excel, previewed row by row
//! with errors a clerk can act on ([`preview_import`]).
//!
//! ```
//! use std::collections::BTreeSet;
//! use sync_core::records::{EquipmentItem, EquipmentStatus};
//! use sync_core::RecordId;
//! use tpsync_sheets::*;
//!
//! let item = EquipmentItem {
//!     asset_no: "YQ-00001".into(), name: "学生显微镜".into(), category_code: None,
//!     brand: None, model: Some("XSP-02".into()), spec: None, unit: Some("台".into()),
//!     quantity: 12, unit_price_fen: 38_000, funding_source: None, keeper: None,
//!     room: Some("科学室".into()), acquired_on: Some("2024-09-01".into()),
//!     status: EquipmentStatus::InUse, status_reason: None, status_date: None,
//! };
//! let mut ledger = equipment_table(&[(RecordId::from_u128(1), item.clone())]);
//! ledger.title = Some("青山村教学点仪器设备台账".into());
//! let xlsx = to_xlsx(&[ledger])?;
//!
//! // Read back as the county's tests would: yuan as numbers, status in Chinese.
//! let tables = read_tables(&xlsx, SheetFormat::Xlsx)?;
//! assert_eq!(tables[0].cell(0, "单价(元)"), &Cell::Number(380.0));
//! assert_eq!(tables[0].cell(0, "状态"), &Cell::Text("在用".into()));
//!
//! // Importing it into a ledger that does not have it yet gives the record back.
//! let format = SheetFormat::detect(Some("台账.xlsx"), &xlsx)?;
//! let preview = preview_import(LedgerKind::Equipment, &xlsx, format, &BTreeSet::new())?;
//! assert_eq!(preview.rows[0].record, LedgerRecord::Equipment(item));
//! assert_eq!(preview.rows[0].line, 3); // under the title and the header
//! assert!(preview.errors.is_empty());
//! # Ok::<(), SheetError>(())
//! ```
//!
//! ## Crates, and why
//!
//! - **rust_xlsxwriter** writes xlsx. Pure Rust, actively maintained, a port
//!   of the long-lived Python XlsxWriter by the same author, with a large
//!   test suite comparing its files byte for byte with Excel's own. It does
//!   formats, frozen panes, merged titles and filters, and writes to memory.
//! - **calamine** reads xlsx. Pure Rust, the de-facto reader for Excel files
//!   in Rust, well kept; its streaming cell reader lets this crate stop at
//!   the row limit instead of loading a hostile sheet whole, and it reports
//!   date-formatted cells as dates (with the 1904 date system handled).
//! - **zip** (the version and features calamine already uses, so nothing
//!   more is built) measures what an upload unpacks to before calamine
//!   reads it, so a 10 MiB "zip bomb" cannot take the server's memory.
//! - **csv** reads and writes CSV: the standard Rust CSV crate, fast,
//!   correct about quoting and fields over several lines, and it reports
//!   each record's line (Excel row numbers in errors come from it).
//! - **encoding_rs** decodes GB18030 (the superset of GBK that Excel on
//!   Chinese Windows saves CSV in) and UTF-16: Firefox's encoding library,
//!   the WHATWG standard's decoders, already in the dependency tree.
//!
//! ## Limits
//!
//! Input is refused over [`MAX_INPUT_BYTES`] (10 MiB), [`MAX_ROWS`] (50,000)
//! rows, [`MAX_COLUMNS`] columns or [`MAX_CELLS`] cells, or when an xlsx
//! unpacks to more than [`MAX_UNPACKED_BYTES`]. Bad bytes give a
//! [`SheetError`], never a panic.

#![warn(missing_docs)]

mod error;
mod import;
mod ledger;
mod parse;
mod read;
mod registers;
mod table;
mod write;

pub use error::SheetError;
pub use import::{preview_import, ImportPreview, ImportRow, LedgerRecord, RowError};
pub use ledger::{
    book_status_word, books_table, equipment_status_word, equipment_table, LedgerKind,
};
pub use read::{
    read_tables, SheetFormat, MAX_CELLS, MAX_COLUMNS, MAX_INPUT_BYTES, MAX_ROWS, MAX_UNPACKED_BYTES,
};
pub use registers::{
    archive_status_word, archive_tables, checklist_tables, retention_word, stocktake_result_word,
    stocktake_table,
};
pub use table::{Cell, Table};
pub use write::{to_csv, to_xlsx};
