//! The one error of this crate.

use thiserror::Error;

/// What went wrong with a whole file or workbook. Each message is Chinese,
/// for the clerk who uploaded the file, says what to do, and ends with an
/// English gloss for logs. Problems with single rows of an import are not
/// errors but [`crate::RowError`]s in the preview.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SheetError {
    /// The file is larger than [`crate::MAX_INPUT_BYTES`].
    #[error(
        "文件太大（{size} 字节，上限 {limit} 字节）：请把台账拆成几个文件分批导入 (file too large)"
    )]
    TooLarge {
        /// The file's size in bytes.
        size: usize,
        /// The most accepted.
        limit: usize,
    },

    /// An xlsx file whose contents unpack to more than
    /// [`crate::MAX_UNPACKED_BYTES`] (a "zip bomb", or a workbook full of
    /// pictures).
    #[error("Excel 文件解压后超过 {limit} 字节：请删除图片和无关的工作表，或拆成几个文件 (workbook unpacks too large)")]
    UnpackedTooLarge {
        /// The most accepted, in bytes.
        limit: u64,
    },

    /// More than [`crate::MAX_ROWS`] rows.
    #[error("行数太多（超过 {limit} 行）：请拆成几个文件分批导入 (too many rows)")]
    TooManyRows {
        /// The most rows accepted.
        limit: usize,
    },

    /// A value lies beyond column [`crate::MAX_COLUMNS`], or the sheet holds
    /// more than [`crate::MAX_CELLS`] cells.
    #[error("表格太宽或太大（最多 {max_columns} 列、{max_cells} 个单元格）：请删除多余的列和无关内容 (sheet too wide or too large)")]
    TooManyCells {
        /// The most columns accepted.
        max_columns: usize,
        /// The most cells accepted.
        max_cells: usize,
    },

    /// The file has nothing in it.
    #[error("文件是空的：请检查是否选错了文件 (the file is empty)")]
    Empty,

    /// The bytes are not a readable xlsx workbook (not a zip, or a zip
    /// without a workbook in it, or a truncated file).
    #[error("不是有效的 Excel (.xlsx) 文件（{detail}）：请用 Excel 或 WPS 打开后“另存为” .xlsx 再上传 (not a valid xlsx workbook)")]
    NotXlsx {
        /// What the reader said.
        detail: String,
    },

    /// An old binary .xls, or a password-protected workbook (both are OLE
    /// compound files).
    #[error("这是旧版 .xls 文件或加了密码的 Excel 文件：请用 Excel 或 WPS 打开，取消密码后“另存为” .xlsx 再上传 (legacy .xls or encrypted workbook)")]
    LegacyXls,

    /// Bytes given as CSV are an xlsx workbook.
    #[error(
        "这是 Excel (.xlsx) 文件，不是 CSV：请按 .xlsx 格式导入 (an xlsx file was given as CSV)"
    )]
    XlsxGivenAsCsv,

    /// Neither an xlsx workbook nor text.
    #[error("无法识别的文件格式：请上传 Excel (.xlsx) 或 CSV 文件 (unknown file format)")]
    UnknownFormat,

    /// CSV bytes that are neither UTF-8 nor GB18030 (GBK) text.
    #[error("CSV 文件的编码无法识别（第 {line} 行附近）：请在 Excel 中“另存为” CSV UTF-8 (逗号分隔) 再上传 (CSV is neither UTF-8 nor GBK)")]
    Encoding {
        /// The line of the first byte that is not text.
        line: usize,
    },

    /// The CSV could not be parsed.
    #[error(
        "CSV 文件格式有误（{detail}）：请用 Excel 打开后重新“另存为” CSV 再上传 (malformed CSV)"
    )]
    Csv {
        /// What the CSV reader said.
        detail: String,
    },

    /// No sheet has a header row with every required column.
    #[error("缺少必填列：{}。请在表头行写上这些列名（找到的表头：{}） (required columns missing)", .missing.join("、"), found_or_none(.found))]
    MissingColumns {
        /// The required columns not found, by their usual Chinese names.
        missing: Vec<String>,
        /// The best candidate header row, as written.
        found: Vec<String>,
    },

    /// Writing the workbook failed (a bug, or a cell Excel cannot hold).
    #[error("生成 Excel 文件失败（{detail}）：请联系管理员 (could not write the workbook)")]
    Write {
        /// What the xlsx writer said.
        detail: String,
    },
}

fn found_or_none(found: &[String]) -> String {
    if found.is_empty() {
        "无".into()
    } else {
        found.join("、")
    }
}

impl SheetError {
    /// A stable code for the error, for APIs and logs.
    pub fn code(&self) -> &'static str {
        match self {
            SheetError::TooLarge { .. } => "sheet_too_large",
            SheetError::UnpackedTooLarge { .. } => "sheet_unpacked_too_large",
            SheetError::TooManyRows { .. } => "sheet_too_many_rows",
            SheetError::TooManyCells { .. } => "sheet_too_many_cells",
            SheetError::Empty => "sheet_empty",
            SheetError::NotXlsx { .. } => "sheet_not_xlsx",
            SheetError::LegacyXls => "sheet_legacy_xls",
            SheetError::XlsxGivenAsCsv => "sheet_xlsx_given_as_csv",
            SheetError::UnknownFormat => "sheet_unknown_format",
            SheetError::Encoding { .. } => "sheet_bad_encoding",
            SheetError::Csv { .. } => "sheet_bad_csv",
            SheetError::MissingColumns { .. } => "sheet_missing_columns",
            SheetError::Write { .. } => "sheet_write_failed",
        }
    }
}
