//! The two ledgers schools keep, as tables with Chinese headers: which
//! columns they have (for export and import alike) and their status words.

use sync_core::records::{Book, BookStatus, EquipmentItem, EquipmentStatus};
use sync_core::RecordId;

use crate::{Cell, Table};

/// Which ledger a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LedgerKind {
    /// 仪器设备台账
    Equipment,
    /// 图书登记簿
    Books,
}

impl LedgerKind {
    /// The ledger's name, also the sheet name of its export.
    pub fn name(self) -> &'static str {
        match self {
            LedgerKind::Equipment => "仪器设备台账",
            LedgerKind::Books => "图书登记簿",
        }
    }

    pub(crate) fn columns(self) -> &'static [Column] {
        match self {
            LedgerKind::Equipment => EQUIPMENT_COLUMNS,
            LedgerKind::Books => BOOK_COLUMNS,
        }
    }

    /// The column whose value identifies a record in the ledger: 资产编号
    /// or 登记号.
    pub(crate) fn key_field(self) -> Field {
        match self {
            LedgerKind::Equipment => Field::AssetNo,
            LedgerKind::Books => Field::RegNo,
        }
    }
}

/// A column of a ledger. Both kinds' fields are in one enum so the import
/// reads cells by field, never by position or by header text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Field {
    AssetNo,
    Name,
    CategoryCode,
    Brand,
    Model,
    Spec,
    Unit,
    Quantity,
    UnitPrice,
    FundingSource,
    Keeper,
    Room,
    AcquiredOn,
    RegNo,
    Title,
    Author,
    Isbn,
    Publisher,
    PubYear,
    ClcClass,
    Price,
    Copies,
    Shelf,
    ReceivedOn,
    Status,
    StatusReason,
    StatusDate,
    /// 金额: quantity × price, written on export, ignored on import.
    Amount,
}

impl Field {
    /// The field's usual Chinese name, for messages: its exported header
    /// without the unit (`单价`, not `单价(元)`).
    pub(crate) fn label(self) -> &'static str {
        let header = EQUIPMENT_COLUMNS
            .iter()
            .chain(BOOK_COLUMNS)
            .find(|c| c.field == self)
            .map_or("", |c| c.header);
        header.split('(').next().unwrap_or(header)
    }
}

/// One column: the header written on export, and every header accepted for
/// it on import, as [`header_key`] gives them (the English field name
/// among them). A header is matched whole, or else without a trailing
/// parenthesis: `单价(元)` and `单价（元）` match `单价`.
pub(crate) struct Column {
    pub field: Field,
    pub header: &'static str,
    pub names: &'static [&'static str],
    pub required: bool,
}

const fn col(field: Field, header: &'static str, names: &'static [&'static str]) -> Column {
    Column {
        field,
        header,
        names,
        required: false,
    }
}

const fn req(field: Field, header: &'static str, names: &'static [&'static str]) -> Column {
    Column {
        field,
        header,
        names,
        required: true,
    }
}

/// Headers that are known and not read: 序号 (row numbers).
pub(crate) const IGNORED_HEADERS: &[&str] = &["序号", "行号", "no.", "no", "#"];

#[rustfmt::skip]
const AMOUNT_NAMES: &[&str] = &["金额", "总价", "总金额", "金额合计", "价值", "总价值", "amount"];
const STATUS_REASON_NAMES: &[&str] = &["状态原因", "原因", "变动原因", "status_reason"];
const STATUS_DATE_NAMES: &[&str] = &["状态日期", "变动日期", "status_date"];

use Field::*;

#[rustfmt::skip]
static EQUIPMENT_COLUMNS: &[Column] = &[
    req(AssetNo, "资产编号", &["资产编号", "设备编号", "仪器编号", "资产号", "财产编号", "编号", "asset_no"]),
    req(Name, "名称", &["名称", "设备名称", "仪器名称", "资产名称", "仪器设备名称", "品名", "name"]),
    col(CategoryCode, "分类代码", &["分类代码", "分类号", "分类编码", "资产分类代码", "类别代码", "category_code"]),
    col(Brand, "品牌", &["品牌", "厂牌", "生产厂家", "厂家", "brand"]),
    col(Model, "型号", &["型号", "规格型号", "型号规格", "model"]),
    col(Spec, "规格", &["规格", "spec"]),
    col(Unit, "计量单位", &["计量单位", "单位", "unit"]),
    req(Quantity, "数量", &["数量", "台数", "件数", "quantity"]),
    req(UnitPrice, "单价(元)", &["单价", "价格", "unit_price"]),
    col(Amount, "金额(元)", AMOUNT_NAMES),
    col(FundingSource, "经费来源", &["经费来源", "资金来源", "经费渠道", "funding_source"]),
    col(Keeper, "保管人", &["保管人", "管理人", "责任人", "使用人", "keeper"]),
    col(Room, "存放地点", &["存放地点", "存放位置", "存放处", "使用地点", "位置", "地点", "房间", "room"]),
    col(AcquiredOn, "购置日期", &["购置日期", "购置时间", "购入日期", "购买日期", "取得日期", "acquired_on"]),
    col(Status, "状态", &["状态", "使用状态", "设备状态", "资产状态", "使用情况", "status"]),
    col(StatusReason, "状态原因", STATUS_REASON_NAMES),
    col(StatusDate, "状态日期", STATUS_DATE_NAMES),
];

#[rustfmt::skip]
static BOOK_COLUMNS: &[Column] = &[
    req(RegNo, "登记号", &["登记号", "总登记号", "财产号", "财产登记号", "登录号", "条码号", "reg_no"]),
    req(Title, "书名", &["书名", "题名", "正题名", "图书名称", "名称", "title"]),
    col(Author, "作者", &["作者", "责任者", "第一责任者", "著者", "author"]),
    col(Isbn, "ISBN", &["isbn", "isbn号", "书号", "标准书号", "国际标准书号"]),
    col(Publisher, "出版社", &["出版社", "出版者", "出版单位", "publisher"]),
    col(PubYear, "出版年", &["出版年", "出版年份", "出版时间", "出版日期", "pub_year"]),
    col(ClcClass, "分类号", &["分类号", "中图分类号", "中图法分类号", "clc_class"]),
    col(Price, "定价(元)", &["定价", "价格", "单价", "price"]),
    col(Copies, "册数", &["册数", "复本数", "复本", "数量", "copies"]),
    col(Amount, "金额(元)", AMOUNT_NAMES),
    col(Shelf, "书架", &["书架", "书架号", "架位", "排架号", "存放位置", "馆藏位置", "shelf"]),
    col(ReceivedOn, "入库日期", &["入库日期", "登记日期", "入藏日期", "入馆日期", "购置日期", "received_on"]),
    col(Status, "状态", &["状态", "图书状态", "馆藏状态", "status"]),
    col(StatusReason, "状态原因", STATUS_REASON_NAMES),
    col(StatusDate, "状态日期", STATUS_DATE_NAMES),
];

/// A header as compared: full-width characters as ASCII, no whitespace, no
/// required-field `*`, ASCII in lower case.
pub(crate) fn header_key(header: &str) -> String {
    crate::parse::normalize(header)
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '*')
        .collect::<String>()
        .to_ascii_lowercase()
}

/// Equipment status words, the written one first, then other spellings
/// accepted on import.
pub(crate) static EQUIPMENT_STATUS_WORDS: &[(EquipmentStatus, &[&str])] = &[
    (
        EquipmentStatus::InUse,
        &["在用", "使用中", "在用中", "正常", "in_use"],
    ),
    (EquipmentStatus::Idle, &["闲置", "闲置中", "idle"]),
    (
        EquipmentStatus::Repair,
        &["维修", "维修中", "待修", "送修", "repair"],
    ),
    (EquipmentStatus::Damaged, &["损坏", "已损坏", "damaged"]),
    (EquipmentStatus::Scrapped, &["报废", "已报废", "scrapped"]),
    (
        EquipmentStatus::Missing,
        &["盘亏", "丢失", "遗失", "missing"],
    ),
];

/// Book status words, as [`EQUIPMENT_STATUS_WORDS`].
pub(crate) static BOOK_STATUS_WORDS: &[(BookStatus, &[&str])] = &[
    (
        BookStatus::OnShelf,
        &["在架", "在馆", "在库", "可借", "on_shelf"],
    ),
    (BookStatus::OnLoan, &["借出", "已借出", "外借", "on_loan"]),
    (
        BookStatus::Weeded,
        &["剔旧", "已剔旧", "剔除", "注销", "weeded"],
    ),
    (BookStatus::Lost, &["遗失", "丢失", "已遗失", "lost"]),
];

/// The Chinese word for an equipment status: 在用 闲置 维修 损坏 报废 盘亏.
pub fn equipment_status_word(status: EquipmentStatus) -> &'static str {
    EQUIPMENT_STATUS_WORDS
        .iter()
        .find(|(s, _)| *s == status)
        .map_or("", |(_, words)| words[0])
}

/// The Chinese word for a book status: 在架 借出 剔旧 遗失.
pub fn book_status_word(status: BookStatus) -> &'static str {
    BOOK_STATUS_WORDS
        .iter()
        .find(|(s, _)| *s == status)
        .map_or("", |(_, words)| words[0])
}

/// The equipment ledger (仪器设备台账) as a table, one row per item, sorted
/// by asset number (then record id, so the same ledger always gives the
/// same file). Columns: 资产编号, 名称, 分类代码, 品牌, 型号, 规格, 计量单位,
/// 数量, 单价(元), 金额(元), 经费来源, 保管人, 存放地点, 购置日期, 状态,
/// 状态原因, 状态日期. Money is in yuan, as numbers; the status in Chinese.
/// The record ids are not shown.
pub fn equipment_table(items: &[(RecordId, EquipmentItem)]) -> Table {
    let mut sorted: Vec<&(RecordId, EquipmentItem)> = items.iter().collect();
    sorted.sort_by(|(ia, a), (ib, b)| (&a.asset_no, ia).cmp(&(&b.asset_no, ib)));
    ledger_table(
        LedgerKind::Equipment,
        sorted.into_iter().map(|(_, item)| {
            EQUIPMENT_COLUMNS
                .iter()
                .map(|c| equipment_cell(item, c.field))
                .collect()
        }),
    )
}

/// The book register (图书登记簿) as a table, one row per registered
/// title, sorted by registration number (then record id). Columns: 登记号,
/// 书名, 作者, ISBN, 出版社, 出版年, 分类号, 定价(元), 册数, 金额(元), 书架,
/// 入库日期, 状态, 状态原因, 状态日期.
pub fn books_table(books: &[(RecordId, Book)]) -> Table {
    let mut sorted: Vec<&(RecordId, Book)> = books.iter().collect();
    sorted.sort_by(|(ia, a), (ib, b)| (&a.reg_no, ia).cmp(&(&b.reg_no, ib)));
    ledger_table(
        LedgerKind::Books,
        sorted.into_iter().map(|(_, book)| {
            BOOK_COLUMNS
                .iter()
                .map(|c| book_cell(book, c.field))
                .collect()
        }),
    )
}

fn ledger_table(kind: LedgerKind, rows: impl Iterator<Item = Vec<Cell>>) -> Table {
    Table {
        sheet: kind.name().into(),
        title: None,
        headers: kind.columns().iter().map(|c| c.header.to_owned()).collect(),
        rows: rows.collect(),
    }
}

fn text(s: &str) -> Cell {
    Cell::Text(s.to_owned())
}

fn equipment_cell(item: &EquipmentItem, field: Field) -> Cell {
    let opt = |v: &Option<String>| Cell::opt_text(v.as_deref());
    match field {
        AssetNo => text(&item.asset_no),
        Name => text(&item.name),
        CategoryCode => opt(&item.category_code),
        Brand => opt(&item.brand),
        Model => opt(&item.model),
        Spec => opt(&item.spec),
        Unit => opt(&item.unit),
        Quantity => Cell::Integer(item.quantity.into()),
        UnitPrice => Cell::Money(item.unit_price_fen),
        Amount => Cell::Money(item.value_fen()),
        FundingSource => opt(&item.funding_source),
        Keeper => opt(&item.keeper),
        Room => opt(&item.room),
        AcquiredOn => opt(&item.acquired_on),
        Status => text(equipment_status_word(item.status)),
        StatusReason => opt(&item.status_reason),
        StatusDate => opt(&item.status_date),
        _ => Cell::Empty,
    }
}

fn book_cell(book: &Book, field: Field) -> Cell {
    let opt = |v: &Option<String>| Cell::opt_text(v.as_deref());
    match field {
        RegNo => text(&book.reg_no),
        Title => text(&book.title),
        Author => opt(&book.author),
        Isbn => opt(&book.isbn),
        Publisher => opt(&book.publisher),
        PubYear => book
            .pub_year
            .map_or(Cell::Empty, |y| Cell::Integer(y.into())),
        ClcClass => opt(&book.clc_class),
        Price => book.price_fen.map_or(Cell::Empty, Cell::Money),
        Copies => Cell::Integer(book.copies.into()),
        Amount => book.price_fen.map_or(Cell::Empty, |p| {
            Cell::Money(p.saturating_mul(book.copies.into()))
        }),
        Shelf => opt(&book.shelf),
        ReceivedOn => opt(&book.received_on),
        Status => text(book_status_word(book.status)),
        StatusReason => opt(&book.status_reason),
        StatusDate => opt(&book.status_date),
        _ => Cell::Empty,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_status_has_a_word_and_no_spelling_is_shared() {
        use sync_core::schema::Choice;
        assert_eq!(EQUIPMENT_STATUS_WORDS.len(), EquipmentStatus::VALUES.len());
        assert_eq!(BOOK_STATUS_WORDS.len(), BookStatus::VALUES.len());
        let mut seen = HashSet::new();
        for (_, words) in EQUIPMENT_STATUS_WORDS {
            assert!(words.iter().all(|w| seen.insert(*w)));
        }
        let mut seen = HashSet::new();
        for (_, words) in BOOK_STATUS_WORDS {
            assert!(words.iter().all(|w| seen.insert(*w)));
        }
    }

    #[test]
    fn header_names_are_unambiguous_and_normalised() {
        for kind in [LedgerKind::Equipment, LedgerKind::Books] {
            let mut seen = HashSet::new();
            for column in kind.columns() {
                assert!(seen.insert(column.field), "{:?} twice", column.field);
                // The exported header is read back as its own column.
                let key = header_key(column.header);
                let base = key.split('(').next().unwrap();
                assert!(column.names.contains(&base), "{}", column.header);
            }
            let mut names = HashSet::new();
            for name in kind
                .columns()
                .iter()
                .flat_map(|c| c.names)
                .chain(IGNORED_HEADERS)
            {
                assert_eq!(*name, header_key(name), "{name} is not normalised");
                assert!(names.insert(*name), "{name} names two columns");
            }
        }
    }
}
