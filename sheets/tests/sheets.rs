//! Exports read back, imports of good and bad ledgers, and hostile files.

use std::collections::BTreeSet;
use std::io::{Cursor, Read, Write};

use proptest::prelude::*;
use sync_core::records::{Book, BookStatus, EquipmentItem, EquipmentStatus};
use sync_core::RecordId;
use tpsync_sheets::*;

#[rustfmt::skip]
const EQUIPMENT_HEADERS: [&str; 17] = [
    "资产编号", "名称", "分类代码", "品牌", "型号", "规格", "计量单位", "数量", "单价(元)",
    "金额(元)", "经费来源", "保管人", "存放地点", "购置日期", "状态", "状态原因", "状态日期",
];

#[rustfmt::skip]
const BOOK_HEADERS: [&str; 15] = [
    "登记号", "书名", "作者", "ISBN", "出版社", "出版年", "分类号", "定价(元)", "册数",
    "金额(元)", "书架", "入库日期", "状态", "状态原因", "状态日期",
];

fn microscope(asset_no: &str) -> EquipmentItem {
    EquipmentItem {
        asset_no: asset_no.into(),
        name: "学生显微镜".into(),
        category_code: Some("03040401".into()),
        brand: Some("江南".into()),
        model: Some("XSP-02".into()),
        spec: Some("640倍".into()),
        unit: Some("台".into()),
        quantity: 12,
        unit_price_fen: 38_000,
        funding_source: Some("薄改项目".into()),
        keeper: Some("李老师".into()),
        room: Some("科学室".into()),
        acquired_on: Some("2024-09-01".into()),
        status: EquipmentStatus::InUse,
        status_reason: None,
        status_date: None,
    }
}

fn scrapped_scale(asset_no: &str) -> EquipmentItem {
    EquipmentItem {
        asset_no: asset_no.into(),
        name: "托盘天平".into(),
        category_code: None,
        brand: None,
        model: None,
        spec: Some("200g/0.2g".into()),
        unit: Some("架".into()),
        quantity: 3,
        unit_price_fen: 5_970,
        funding_source: None,
        keeper: None,
        room: None,
        acquired_on: None,
        status: EquipmentStatus::Scrapped,
        status_reason: Some("横梁断裂".into()),
        status_date: Some("2025-10-08".into()),
    }
}

fn red_chamber(reg_no: &str) -> Book {
    Book {
        reg_no: reg_no.into(),
        isbn: Some("9787020002207".into()),
        title: "红楼梦".into(),
        author: Some("曹雪芹".into()),
        publisher: Some("人民文学出版社".into()),
        pub_year: Some(2008),
        clc_class: Some("I242.4".into()),
        price_fen: Some(5_970),
        copies: 2,
        shelf: Some("A-3".into()),
        received_on: Some("2025-03-01".into()),
        status: BookStatus::OnLoan,
        status_reason: None,
        status_date: None,
    }
}

fn unpriced_book(reg_no: &str) -> Book {
    Book {
        reg_no: reg_no.into(),
        isbn: None,
        title: "乡村儿童读本".into(),
        author: None,
        publisher: None,
        pub_year: None,
        clc_class: None,
        price_fen: None,
        copies: 1,
        shelf: None,
        received_on: None,
        status: BookStatus::Weeded,
        status_reason: Some("破损".into()),
        status_date: Some("2025-06-30".into()),
    }
}

fn with_ids<T>(records: Vec<T>) -> Vec<(RecordId, T)> {
    records
        .into_iter()
        .enumerate()
        .map(|(i, r)| (RecordId::from_u128(i as u128 + 1), r))
        .collect()
}

fn text(s: &str) -> Cell {
    Cell::Text(s.into())
}

fn none() -> BTreeSet<String> {
    BTreeSet::new()
}

fn equipment_of(preview: &ImportPreview) -> Vec<EquipmentItem> {
    preview
        .rows
        .iter()
        .map(|r| match &r.record {
            LedgerRecord::Equipment(item) => item.clone(),
            other => panic!("not equipment: {other:?}"),
        })
        .collect()
}

fn books_of(preview: &ImportPreview) -> Vec<Book> {
    preview
        .rows
        .iter()
        .map(|r| match &r.record {
            LedgerRecord::Book(book) => book.clone(),
            other => panic!("not a book: {other:?}"),
        })
        .collect()
}

/// One member of the xlsx zip, as text.
fn xlsx_member(xlsx: &[u8], name: &str) -> String {
    let mut zip = zip::ZipArchive::new(Cursor::new(xlsx)).unwrap();
    let mut out = String::new();
    zip.by_name(name).unwrap().read_to_string(&mut out).unwrap();
    out
}

// ---------------------------------------------------------------- export

#[test]
fn equipment_ledger_exports_to_xlsx_with_chinese_headers_and_numbers() {
    // Given out of order: the ledger is sorted by asset number.
    let items = with_ids(vec![scrapped_scale("YQ-00002"), microscope("YQ-00001")]);
    let xlsx = to_xlsx(&[equipment_table(&items)]).unwrap();
    assert!(xlsx.starts_with(b"PK\x03\x04"));

    let tables = read_tables(&xlsx, SheetFormat::Xlsx).unwrap();
    assert_eq!(tables.len(), 1);
    let t = &tables[0];
    assert_eq!(t.sheet, "仪器设备台账");
    assert_eq!(t.title, None);
    assert_eq!(t.headers, EQUIPMENT_HEADERS);
    assert_eq!(t.rows.len(), 2);

    assert_eq!(t.cell(0, "资产编号"), &text("YQ-00001"));
    assert_eq!(t.cell(0, "名称"), &text("学生显微镜"));
    assert_eq!(t.cell(0, "分类代码"), &text("03040401"), "codes stay text");
    assert_eq!(t.cell(0, "数量"), &Cell::Number(12.0));
    assert_eq!(t.cell(0, "单价(元)"), &Cell::Number(380.0));
    assert_eq!(t.cell(0, "金额(元)"), &Cell::Number(4_560.0));
    assert_eq!(t.cell(0, "购置日期"), &text("2024-09-01"));
    assert_eq!(t.cell(0, "状态"), &text("在用"));
    assert_eq!(t.cell(0, "状态原因"), &Cell::Empty);

    assert_eq!(t.cell(1, "单价(元)"), &Cell::Number(59.7));
    assert_eq!(t.cell(1, "金额(元)"), &Cell::Number(179.1));
    assert_eq!(t.cell(1, "品牌"), &Cell::Empty);
    assert_eq!(t.cell(1, "状态"), &text("报废"));
    assert_eq!(t.cell(1, "状态原因"), &text("横梁断裂"));
    assert_eq!(t.cell(1, "状态日期"), &text("2025-10-08"));

    // Frozen bold header, filter, money format, widths that fit Chinese.
    let sheet = xlsx_member(&xlsx, "xl/worksheets/sheet1.xml");
    assert!(sheet.contains(r#"ySplit="1""#) && sheet.contains(r#"state="frozen""#));
    assert!(sheet.contains("<autoFilter"));
    assert!(sheet.contains("<cols>"));
    let styles = xlsx_member(&xlsx, "xl/styles.xml");
    assert!(styles.contains("<b/>"));
    assert!(styles.contains("#,##0.00"));
}

#[test]
fn equipment_ledger_exports_to_csv_with_a_bom() {
    let items = with_ids(vec![microscope("YQ-00001"), scrapped_scale("YQ-00002")]);
    let csv = to_csv(&equipment_table(&items));
    assert!(csv.starts_with(b"\xEF\xBB\xBF"), "UTF-8 with a BOM");
    let body = std::str::from_utf8(&csv[3..]).unwrap();
    let lines: Vec<&str> = body.split("\r\n").collect();
    assert_eq!(lines[0], EQUIPMENT_HEADERS.join(","));
    assert_eq!(
        lines[1],
        "YQ-00001,学生显微镜,03040401,江南,XSP-02,640倍,台,12,380.00,4560.00,薄改项目,李老师,科学室,2024-09-01,在用,,"
    );
    assert_eq!(
        lines[2],
        "YQ-00002,托盘天平,,,,200g/0.2g,架,3,59.70,179.10,,,,,报废,横梁断裂,2025-10-08"
    );
    assert_eq!(lines[3], "", "ends with CRLF");

    let t = &read_tables(&csv, SheetFormat::Csv).unwrap()[0];
    assert_eq!(t.headers, EQUIPMENT_HEADERS);
    assert_eq!(t.cell(0, "单价(元)"), &text("380.00"));
    assert_eq!(t.cell(1, "状态"), &text("报废"));
    assert_eq!(t.cell(1, "品牌"), &Cell::Empty);
}

#[test]
fn books_export_to_xlsx_and_csv() {
    let books = with_ids(vec![unpriced_book("TS000002"), red_chamber("TS000001")]);
    let table = books_table(&books);
    assert_eq!(table.sheet, "图书登记簿");
    assert_eq!(table.headers, BOOK_HEADERS);

    let t = &read_tables(
        &to_xlsx(std::slice::from_ref(&table)).unwrap(),
        SheetFormat::Xlsx,
    )
    .unwrap()[0];
    assert_eq!(t.cell(0, "登记号"), &text("TS000001"));
    assert_eq!(t.cell(0, "书名"), &text("红楼梦"));
    assert_eq!(t.cell(0, "ISBN"), &text("9787020002207"));
    assert_eq!(t.cell(0, "出版年"), &Cell::Number(2008.0));
    assert_eq!(t.cell(0, "定价(元)"), &Cell::Number(59.7));
    assert_eq!(t.cell(0, "册数"), &Cell::Number(2.0));
    assert_eq!(t.cell(0, "金额(元)"), &Cell::Number(119.4));
    assert_eq!(t.cell(0, "状态"), &text("借出"));
    assert_eq!(t.cell(1, "定价(元)"), &Cell::Empty);
    assert_eq!(t.cell(1, "金额(元)"), &Cell::Empty);
    assert_eq!(t.cell(1, "状态"), &text("剔旧"));
    assert_eq!(t.cell(1, "状态原因"), &text("破损"));

    let t = &read_tables(&to_csv(&table), SheetFormat::Csv).unwrap()[0];
    assert_eq!(t.headers, BOOK_HEADERS);
    assert_eq!(t.cell(0, "定价(元)"), &text("59.70"));
    assert_eq!(t.cell(0, "金额(元)"), &text("119.40"));
    assert_eq!(t.cell(1, "状态"), &text("剔旧"));
}

#[test]
fn a_workbook_with_several_sheets_and_titles() {
    let mut equipment = equipment_table(&with_ids(vec![microscope("YQ-1")]));
    equipment.title = Some("青山村教学点仪器设备台账".into());
    let books = books_table(&with_ids(vec![red_chamber("TS1")]));
    let mut report = Table::new(
        "县/乡镇:汇总",
        ["学校", "学生数", "生均仪器设备值(元)", "达标率"],
    );
    report.title = Some("2025年义务教育优质均衡发展指标".into());
    report.rows = vec![
        vec![
            text("青山村教学点"),
            Cell::Integer(21),
            Cell::Money(215_000),
            Cell::Percent(0.125),
        ],
        vec![
            text("合计"),
            Cell::Integer(21),
            Cell::Empty,
            Cell::Number(1.5),
        ],
    ];
    let mut same_name = report.clone();
    same_name.title = None;

    let xlsx = to_xlsx(&[equipment, books, report, same_name]).unwrap();
    let tables = read_tables(&xlsx, SheetFormat::Xlsx).unwrap();
    let names: Vec<&str> = tables.iter().map(|t| t.sheet.as_str()).collect();
    assert_eq!(
        names,
        [
            "仪器设备台账",
            "图书登记簿",
            "县_乡镇_汇总",
            "县_乡镇_汇总(2)"
        ]
    );

    assert_eq!(tables[0].title.as_deref(), Some("青山村教学点仪器设备台账"));
    assert_eq!(tables[0].headers, EQUIPMENT_HEADERS);
    assert_eq!(tables[0].cell(0, "名称"), &text("学生显微镜"));
    assert_eq!(tables[1].title, None);
    assert_eq!(tables[1].cell(0, "书名"), &text("红楼梦"));
    let r = &tables[2];
    assert_eq!(r.title.as_deref(), Some("2025年义务教育优质均衡发展指标"));
    assert_eq!(
        r.headers,
        ["学校", "学生数", "生均仪器设备值(元)", "达标率"]
    );
    assert_eq!(r.cell(0, "学生数"), &Cell::Number(21.0));
    assert_eq!(r.cell(0, "生均仪器设备值(元)"), &Cell::Number(2_150.0));
    assert_eq!(r.cell(0, "达标率"), &Cell::Number(0.125));
    assert_eq!(r.cell(1, "学校"), &text("合计"));
    assert_eq!(tables[3].title, None);

    // CSV of the report: the title on a line of its own, a percentage.
    let csv = to_csv(&tables_report_with_title());
    let body = String::from_utf8(csv[3..].to_vec()).unwrap();
    assert!(
        body.starts_with("指标汇总\r\n学校,达标率\r\n青山村教学点,12.5%\r\n"),
        "{body}"
    );

    // No tables: still a workbook Excel opens.
    let empty = to_xlsx(&[]).unwrap();
    let tables = read_tables(&empty, SheetFormat::Xlsx).unwrap();
    assert_eq!(tables.len(), 1);
    assert!(tables[0].headers.is_empty() && tables[0].rows.is_empty());
}

fn tables_report_with_title() -> Table {
    let mut t = Table::new("汇总", ["学校", "达标率"]);
    t.title = Some("指标汇总".into());
    t.rows = vec![vec![text("青山村教学点"), Cell::Percent(0.125)]];
    t
}

#[test]
fn text_that_looks_like_a_formula_stays_text() {
    let mut item = microscope("=1+1");
    item.model = Some("-5".into());
    item.keeper = Some("@李老师".into());
    item.room = Some("'=已转义".into());
    // Excel's escape for characters XML cannot hold, written literally.
    item.spec = Some("_x0041_".into());
    let table = equipment_table(&with_ids(vec![item.clone()]));

    let csv = String::from_utf8(to_csv(&table)).unwrap();
    assert!(csv.contains("'=1+1,") && csv.contains(",'-5,") && csv.contains(",'@李老师,"));
    for (bytes, format) in [
        (to_csv(&table), SheetFormat::Csv),
        (
            to_xlsx(std::slice::from_ref(&table)).unwrap(),
            SheetFormat::Xlsx,
        ),
    ] {
        let t = &read_tables(&bytes, format).unwrap()[0];
        assert_eq!(t.cell(0, "资产编号"), &text("=1+1"), "{format:?}");
        let preview = preview_import(LedgerKind::Equipment, &bytes, format, &none()).unwrap();
        assert_eq!(equipment_of(&preview), [item.clone()], "{format:?}");
    }
}

// ---------------------------------------------------------------- import

#[test]
fn ledgers_import_back_unchanged() {
    let items = vec![microscope("YQ-00001"), scrapped_scale("YQ-00002")];
    let books = vec![red_chamber("TS000001"), unpriced_book("TS000002")];
    let mut equipment = equipment_table(&with_ids(items.clone()));
    equipment.title = Some("仪器设备台账".into());
    let book_table = books_table(&with_ids(books.clone()));

    for format in [SheetFormat::Xlsx, SheetFormat::Csv] {
        let bytes = |t: &Table| match format {
            SheetFormat::Xlsx => to_xlsx(std::slice::from_ref(t)).unwrap(),
            SheetFormat::Csv => to_csv(t),
        };
        let p = preview_import(LedgerKind::Equipment, &bytes(&equipment), format, &none()).unwrap();
        assert_eq!(p.errors, [], "{format:?}");
        assert!(p.unknown_columns.is_empty(), "{:?}", p.unknown_columns);
        assert_eq!(p.total_rows, 2);
        assert_eq!(p.kind, LedgerKind::Equipment);
        assert_eq!(equipment_of(&p), items, "{format:?}");
        let lines: Vec<usize> = p.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [3, 4], "title, header, then the rows");

        let p = preview_import(LedgerKind::Books, &bytes(&book_table), format, &none()).unwrap();
        assert_eq!(p.errors, [], "{format:?}");
        assert_eq!(books_of(&p), books, "{format:?}");
        assert_eq!(p.rows[0].line, 2);
    }
}

const EXPECTED_STATUS_LIST: &str = "在用、闲置、维修、损坏、报废、盘亏";

#[test]
fn bad_rows_are_reported_with_line_and_column_and_left_out() {
    let csv = "\
仪器设备台账（导入测试）
资产编号,名称,数量,单价（元）,状态,购置日期
A1,显微镜,12,380,在用,2023-09-01
A2,,1,10,,
A3,烧杯,十二,1.5元,,
A4,烧杯,12台,1.5,,
A5,烧杯,-2,1.5,,
A6,烧杯,2.5,1.5,,
A7,烧杯,2,1.555,,
A8,烧杯,2,1.5,坏了,
A9,烧杯,2,1.5,,2023-13-01
A1,显微镜,1,380,,
OLD-1,天平,1,100,,
,,,,,
A10,试管,100,0.5,闲置,2023年9月1日
,,,
合计,,150,,,
";
    let existing: BTreeSet<String> = ["OLD-1".to_string()].into();
    let p = preview_import(
        LedgerKind::Equipment,
        csv.as_bytes(),
        SheetFormat::Csv,
        &existing,
    )
    .unwrap();

    let good: Vec<(usize, &str)> = p.rows.iter().map(|r| (r.line, r.record.key())).collect();
    assert_eq!(good, [(3, "A1"), (15, "A10")]);
    let a10 = &equipment_of(&p)[1];
    assert_eq!(a10.status, EquipmentStatus::Idle);
    assert_eq!(a10.acquired_on.as_deref(), Some("2023-09-01"));
    assert_eq!(a10.unit_price_fen, 50);
    assert_eq!(equipment_of(&p)[0].status, EquipmentStatus::InUse);
    assert_eq!(
        p.total_rows, 12,
        "empty rows and the 合计 line are not rows"
    );

    let errors: Vec<(usize, Option<&str>, &str)> = p
        .errors
        .iter()
        .map(|e| (e.line, e.column.as_deref(), e.message.as_str()))
        .collect();
    let expect: &[(usize, &str, &[&str])] = &[
        (4, "名称", &["名称为空"]),
        (5, "数量", &["「十二」不是数字", "阿拉伯数字"]),
        (5, "单价（元）", &["「1.5元」不是数字", "不要带“元”"]),
        (6, "数量", &["「12台」不是数字", "不要带“台”"]),
        (7, "数量", &["「-2」是负数"]),
        (8, "数量", &["「2.5」不是整数"]),
        (9, "单价（元）", &["「1.555」超过两位小数"]),
        (
            10,
            "状态",
            &["「坏了」不是可用的状态", EXPECTED_STATUS_LIST],
        ),
        (
            11,
            "购置日期",
            &["「2023-13-01」不是有效日期", "2023-09-01"],
        ),
        (12, "资产编号", &["「A1」与第 3 行重复"]),
        (13, "资产编号", &["「OLD-1」已在台账中"]),
    ];
    assert_eq!(errors.len(), expect.len(), "{errors:#?}");
    for ((line, column, message), (want_line, want_column, parts)) in errors.iter().zip(expect) {
        assert_eq!(
            (line, *column),
            (want_line, Some(*want_column)),
            "{message}"
        );
        for part in *parts {
            assert!(
                message.contains(part),
                "line {line}: {message:?} lacks {part:?}"
            );
        }
    }
    // No row with an error made it in.
    let bad_lines: BTreeSet<usize> = p.errors.iter().map(|e| e.line).collect();
    assert!(p.rows.iter().all(|r| !bad_lines.contains(&r.line)));
}

#[test]
fn xlsx_cells_import_as_numbers_and_dates() {
    use rust_xlsxwriter::{Format, Workbook};
    let mut wb = Workbook::new();
    let date = Format::new().set_num_format("yyyy/m/d");
    let ws = wb.add_worksheet();
    for (c, h) in ["资产编号", "名称", "数量", "单价", "购置日期", "型号"]
        .iter()
        .enumerate()
    {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    // Numbers typed into Excel: a number asset number, 12.0, a date cell.
    ws.write_number(1, 0, 1001.0).unwrap();
    ws.write_string(1, 1, "地球仪").unwrap();
    ws.write_number(1, 2, 12.0).unwrap();
    ws.write_number(1, 3, 380.5).unwrap();
    ws.write_number_with_format(1, 4, 45170.0, &date).unwrap();
    ws.write_number(1, 5, 2000.0).unwrap();
    // A serial without a date format, and a price that came out of a formula.
    ws.write_string(2, 0, "YQ-2").unwrap();
    ws.write_string(2, 1, "温度计").unwrap();
    ws.write_number(2, 2, 3.0).unwrap();
    ws.write_number(2, 3, 0.1 + 0.2).unwrap();
    ws.write_number(2, 4, 45170.0).unwrap();
    // Half a microscope, a price in tenths of a fen, a date that is a year.
    ws.write_string(3, 0, "YQ-3").unwrap();
    ws.write_string(3, 1, "显微镜").unwrap();
    ws.write_number(3, 2, 12.5).unwrap();
    ws.write_number(3, 3, 1.255).unwrap();
    ws.write_number(3, 4, 2023.0).unwrap();
    let xlsx = wb.save_to_buffer().unwrap();

    let p = preview_import(LedgerKind::Equipment, &xlsx, SheetFormat::Xlsx, &none()).unwrap();
    let items = equipment_of(&p);
    assert_eq!(items.len(), 2, "{:#?}", p.errors);
    assert_eq!(items[0].asset_no, "1001");
    assert_eq!(items[0].quantity, 12);
    assert_eq!(items[0].unit_price_fen, 38_050);
    assert_eq!(items[0].acquired_on.as_deref(), Some("2023-09-01"));
    assert_eq!(items[0].model.as_deref(), Some("2000"));
    assert_eq!(items[1].unit_price_fen, 30);
    assert_eq!(items[1].acquired_on.as_deref(), Some("2023-09-01"));

    let errors: Vec<(usize, &str)> = p
        .errors
        .iter()
        .map(|e| (e.line, e.column.as_deref().unwrap()))
        .collect();
    assert_eq!(errors, [(4, "数量"), (4, "单价"), (4, "购置日期")]);
    assert!(p.errors[0].message.contains("「12.5」不是整数"));
}

#[test]
fn gbk_csv_imports_the_same_as_utf8() {
    let text = "登记号,书名,作者,定价,册数,状态,入库日期\r\n\
                TS0001,西游记,吴承恩,35.00,2,在架,2024/3/1\r\n\
                TS0002,水浒传,施耐庵,三十,1,,\r\n\
                TS0003,《三国演义》（上）,罗贯中,,,借出,2024年3月2日\r\n";
    let (gbk, _, unmappable) = encoding_rs::GBK.encode(text);
    assert!(!unmappable);
    assert_ne!(&gbk[..], text.as_bytes());
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(text.as_bytes());

    let read =
        |bytes: &[u8]| preview_import(LedgerKind::Books, bytes, SheetFormat::Csv, &none()).unwrap();
    let utf8 = read(text.as_bytes());
    assert_eq!(read(&gbk), utf8);
    assert_eq!(read(&bom), utf8);

    let books = books_of(&utf8);
    assert_eq!(books.len(), 2);
    assert_eq!(books[0].title, "西游记");
    assert_eq!(books[0].price_fen, Some(3_500));
    assert_eq!(books[0].received_on.as_deref(), Some("2024-03-01"));
    assert_eq!(books[1].title, "《三国演义》（上）");
    assert_eq!(
        (books[1].copies, books[1].price_fen),
        (1, None),
        "copies default to 1"
    );
    assert_eq!(books[1].status, BookStatus::OnLoan);
    assert_eq!(utf8.errors.len(), 1);
    assert_eq!(
        (utf8.errors[0].line, utf8.errors[0].column.as_deref()),
        (3, Some("定价"))
    );

    // GB18030 beyond GBK (a rare character in a name).
    let rare = "登记号,书名\r\nTS9,𠀀字典\r\n";
    let (gb18030, _, _) = encoding_rs::GB18030.encode(rare);
    assert_eq!(books_of(&read(&gb18030))[0].title, "𠀀字典");
}

#[test]
fn header_variants_and_title_rows_are_understood() {
    let csv = "\
青山镇中心学校仪器设备台账,,,,,,,,,,,
填报单位：青山村教学点,,,,,,,填表日期：2025年10月,,,,
序号,设备编号,仪器名称,规格型号,单位,数量（台）,单　价（元）,金额,使用状态,存放位置,购置时间,备注
1,YQ-1,学生显微镜,XSP-02,台,１２,\"1,280.00\",\"15,360.00\",正常,科学室,2024.9.1,旧账
2,YQ-2,地球仪,,个,2,￥45.5,91,待修,,20240901,
";
    let p = preview_import(
        LedgerKind::Equipment,
        csv.as_bytes(),
        SheetFormat::Csv,
        &none(),
    )
    .unwrap();
    assert_eq!(p.errors, []);
    assert_eq!(p.unknown_columns, ["备注"]);
    let items = equipment_of(&p);
    assert_eq!(p.rows[0].line, 4);
    assert_eq!(items[0].asset_no, "YQ-1");
    assert_eq!(items[0].name, "学生显微镜");
    assert_eq!(items[0].model.as_deref(), Some("XSP-02"));
    assert_eq!(items[0].unit.as_deref(), Some("台"));
    assert_eq!(items[0].quantity, 12);
    assert_eq!(items[0].unit_price_fen, 128_000);
    assert_eq!(items[0].status, EquipmentStatus::InUse);
    assert_eq!(items[0].room.as_deref(), Some("科学室"));
    assert_eq!(items[0].acquired_on.as_deref(), Some("2024-09-01"));
    assert_eq!(items[1].unit_price_fen, 4_550);
    assert_eq!(items[1].status, EquipmentStatus::Repair);
    assert_eq!(items[1].acquired_on.as_deref(), Some("2024-09-01"));

    let books = "总登记号,正题名,责任者,ISBN号,出版者,出版时间,中图分类号,价格,复本数,架位\n\
                 0001,呐喊,鲁迅,978-7-02-000220-7,人民文学出版社,2008年5月,I210.4,12.5,3,B-1\n";
    let p = preview_import(
        LedgerKind::Books,
        books.as_bytes(),
        SheetFormat::Csv,
        &none(),
    )
    .unwrap();
    assert_eq!(p.errors, []);
    let b = &books_of(&p)[0];
    assert_eq!(b.reg_no, "0001");
    assert_eq!(b.author.as_deref(), Some("鲁迅"));
    assert_eq!(b.isbn.as_deref(), Some("978-7-02-000220-7"));
    assert_eq!(b.pub_year, Some(2008));
    assert_eq!(b.clc_class.as_deref(), Some("I210.4"));
    assert_eq!((b.price_fen, b.copies), (Some(1_250), 3));
    assert_eq!(b.shelf.as_deref(), Some("B-1"));
    assert_eq!(b.status, BookStatus::OnShelf, "status defaults to 在架");

    let english = "asset_no,name,quantity,unit_price,status\nE-1,Globe,1,9.9,idle\n";
    let p = preview_import(
        LedgerKind::Equipment,
        english.as_bytes(),
        SheetFormat::Csv,
        &none(),
    )
    .unwrap();
    assert_eq!(equipment_of(&p)[0].status, EquipmentStatus::Idle);
}

#[test]
fn the_first_sheet_with_a_matching_header_is_read() {
    let mut notes = Table::new("说明", ["填表说明"]);
    notes.rows = vec![vec![text("请按下表填写")]];
    let books = books_table(&with_ids(vec![red_chamber("TS1")]));
    let equipment = equipment_table(&with_ids(vec![microscope("YQ-1")]));
    let xlsx = to_xlsx(&[notes, books, equipment]).unwrap();
    let p = preview_import(LedgerKind::Equipment, &xlsx, SheetFormat::Xlsx, &none()).unwrap();
    assert_eq!(equipment_of(&p), [microscope("YQ-1")]);
    let p = preview_import(LedgerKind::Books, &xlsx, SheetFormat::Xlsx, &none()).unwrap();
    assert_eq!(books_of(&p), [red_chamber("TS1")]);
}

#[test]
fn duplicates_in_the_file_and_in_the_ledger() {
    let csv = "登记号,书名\nTS1,甲\nTS2,乙\nTS1,丙\n TS1 ,丁\nTS3,戊\nTS9,己\n";
    let existing: BTreeSet<String> = ["TS3".into(), "TS4".into()].into();
    let p = preview_import(
        LedgerKind::Books,
        csv.as_bytes(),
        SheetFormat::Csv,
        &existing,
    )
    .unwrap();
    let keys: Vec<&str> = p.rows.iter().map(|r| r.record.key()).collect();
    assert_eq!(
        keys,
        ["TS1", "TS2", "TS9"],
        "the first of the duplicates stays"
    );
    let errors: Vec<(usize, &str)> = p
        .errors
        .iter()
        .map(|e| (e.line, e.message.as_str()))
        .collect();
    assert_eq!(errors.len(), 3);
    assert_eq!(errors[0].0, 4);
    assert!(
        errors[0].1.contains("登记号「TS1」与第 2 行重复"),
        "{}",
        errors[0].1
    );
    assert_eq!(errors[1].0, 5);
    assert!(errors[1].1.contains("与第 2 行重复"));
    assert_eq!(errors[2].0, 6);
    assert!(errors[2].1.contains("登记号「TS3」已在台账中"));
    assert!(p
        .errors
        .iter()
        .all(|e| e.column.as_deref() == Some("登记号")));
}

#[test]
fn missing_required_columns_refuse_the_file() {
    let csv = "名称,数量,价钱\n显微镜,1,2\n";
    let err = preview_import(
        LedgerKind::Equipment,
        csv.as_bytes(),
        SheetFormat::Csv,
        &none(),
    )
    .unwrap_err();
    match &err {
        SheetError::MissingColumns { missing, found } => {
            assert_eq!(missing, &["资产编号", "单价"]);
            assert_eq!(found, &["名称", "数量", "价钱"]);
        }
        other => panic!("{other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("缺少必填列：资产编号、单价"), "{message}");
    assert_eq!(err.code(), "sheet_missing_columns");

    // A ledger of the other kind is not read as this one.
    let xlsx = to_xlsx(&[books_table(&with_ids(vec![red_chamber("TS1")]))]).unwrap();
    let err = preview_import(LedgerKind::Equipment, &xlsx, SheetFormat::Xlsx, &none()).unwrap_err();
    assert!(matches!(err, SheetError::MissingColumns { .. }), "{err:?}");
}

// ---------------------------------------------------------------- hostile input

#[test]
fn garbage_and_truncated_files_are_errors_not_panics() {
    let xlsx = to_xlsx(&[equipment_table(&with_ids(vec![microscope("YQ-1")]))]).unwrap();
    let kinds = [LedgerKind::Equipment, LedgerKind::Books];

    for garbage in [
        &b""[..],
        b"   \r\n",
        b"PK\x03\x04 not really a zip",
        b"\x00\x01\x02\x03\xff\xfe\x00garbage",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0, 0],
    ] {
        for format in [SheetFormat::Xlsx, SheetFormat::Csv] {
            assert!(
                read_tables(garbage, format).is_err(),
                "{garbage:?} as {format:?}"
            );
            for kind in kinds {
                assert!(preview_import(kind, garbage, format, &none()).is_err());
            }
        }
    }
    let err = preview_import(
        LedgerKind::Equipment,
        b"PK\x03\x04junk",
        SheetFormat::Xlsx,
        &none(),
    )
    .unwrap_err();
    assert!(matches!(err, SheetError::NotXlsx { .. }), "{err:?}");
    assert!(err.to_string().contains("不是有效的 Excel"));
    assert_eq!(
        read_tables(&xlsx, SheetFormat::Csv).unwrap_err(),
        SheetError::XlsxGivenAsCsv
    );

    // Every truncation of a real workbook.
    for len in (0..xlsx.len()).step_by(97).chain([xlsx.len() - 1]) {
        let cut = &xlsx[..len];
        assert!(read_tables(cut, SheetFormat::Xlsx).is_err(), "cut at {len}");
        assert!(preview_import(LedgerKind::Equipment, cut, SheetFormat::Xlsx, &none()).is_err());
    }
    // Bytes changed here and there: an error or a preview, never a panic.
    for at in (30..xlsx.len()).step_by(251) {
        let mut bent = xlsx.clone();
        bent[at] ^= 0x5A;
        let _ = read_tables(&bent, SheetFormat::Xlsx);
        let _ = preview_import(LedgerKind::Equipment, &bent, SheetFormat::Xlsx, &none());
    }
}

#[test]
fn oversized_input_is_refused() {
    let big = vec![b'a'; MAX_INPUT_BYTES + 1];
    for format in [SheetFormat::Xlsx, SheetFormat::Csv] {
        let err = preview_import(LedgerKind::Books, &big, format, &none()).unwrap_err();
        assert!(matches!(err, SheetError::TooLarge { .. }), "{err:?}");
        assert!(err.to_string().contains("文件太大"));
    }

    // 50,000 rows are fine, one more is not.
    let mut csv = String::from("登记号,书名\n");
    for i in 0..MAX_ROWS {
        csv.push_str(&format!("TS{i},书\n"));
    }
    let p = preview_import(LedgerKind::Books, csv.as_bytes(), SheetFormat::Csv, &none()).unwrap();
    assert_eq!(p.rows.len(), MAX_ROWS);
    csv.push_str("TSX,书\n");
    let err =
        preview_import(LedgerKind::Books, csv.as_bytes(), SheetFormat::Csv, &none()).unwrap_err();
    assert_eq!(err, SheetError::TooManyRows { limit: MAX_ROWS });
    assert!(err.to_string().contains("50000"));

    // A workbook with one value far down, and one far to the right.
    for (row, col) in [(200_000, 0), (1, 5_000)] {
        let mut wb = rust_xlsxwriter::Workbook::new();
        let ws = wb.add_worksheet();
        ws.write_string(0, 0, "登记号").unwrap();
        ws.write_string(row, col, "x").unwrap();
        let xlsx = wb.save_to_buffer().unwrap();
        assert!(
            read_tables(&xlsx, SheetFormat::Xlsx).is_err(),
            "({row}, {col})"
        );
    }

    // A small zip that unpacks to more than the limit.
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    zip.start_file(
        "xl/sharedStrings.xml",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..=(MAX_UNPACKED_BYTES >> 20) {
        zip.write_all(&chunk).unwrap();
    }
    let bomb = zip.finish().unwrap().into_inner();
    assert!(bomb.len() < MAX_INPUT_BYTES);
    let err = read_tables(&bomb, SheetFormat::Xlsx).unwrap_err();
    assert_eq!(
        err,
        SheetError::UnpackedTooLarge {
            limit: MAX_UNPACKED_BYTES
        }
    );
}

// ---------------------------------------------------------------- properties

fn some_text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9一-龥（）()=+@'#/. -]{1,12}"
        .prop_map(|s| s.trim().to_owned())
        .prop_filter("not blank", |s| !s.is_empty())
}

fn some_date() -> impl Strategy<Value = String> {
    (1900u32..2100, 1u32..=12, 1u32..=28).prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}"))
}

fn some_status() -> impl Strategy<Value = EquipmentStatus> {
    prop_oneof![
        Just(EquipmentStatus::InUse),
        Just(EquipmentStatus::Idle),
        Just(EquipmentStatus::Repair),
        Just(EquipmentStatus::Damaged),
        Just(EquipmentStatus::Scrapped),
        Just(EquipmentStatus::Missing),
    ]
}

fn some_item() -> impl Strategy<Value = EquipmentItem> {
    let opt = || proptest::option::of(some_text());
    (
        (some_text(), some_text(), opt(), opt(), opt(), opt(), opt()),
        (any::<u32>(), 0i64..1_000_000_000_000, opt(), opt(), opt()),
        (
            proptest::option::of(some_date()),
            some_status(),
            opt(),
            proptest::option::of(some_date()),
        ),
    )
        .prop_map(
            |(
                (asset_no, name, category_code, brand, model, spec, unit),
                (quantity, unit_price_fen, funding_source, keeper, room),
                (acquired_on, status, status_reason, status_date),
            )| EquipmentItem {
                asset_no,
                name,
                category_code,
                brand,
                model,
                spec,
                unit,
                quantity,
                unit_price_fen,
                funding_source,
                keeper,
                room,
                acquired_on,
                status,
                status_reason,
                status_date,
            },
        )
}

fn some_ledger() -> impl Strategy<Value = Vec<EquipmentItem>> {
    proptest::collection::vec(some_item(), 0..12).prop_map(|items| {
        // Asset numbers are unique in a ledger: the part after the last
        // "-" is the row's own number.
        items
            .into_iter()
            .enumerate()
            .map(|(i, mut item)| {
                item.asset_no = format!("{}-{i}", item.asset_no);
                item
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn any_equipment_ledger_exported_then_imported_is_unchanged(
        items in some_ledger(),
        title in proptest::option::of(some_text()),
    ) {
        let mut table = equipment_table(&with_ids(items.clone()));
        table.title = title;
        let mut sorted = items;
        sorted.sort_by(|a, b| a.asset_no.cmp(&b.asset_no));
        for (bytes, format) in [
            (to_xlsx(std::slice::from_ref(&table)).unwrap(), SheetFormat::Xlsx),
            (to_csv(&table), SheetFormat::Csv),
        ] {
            let p = preview_import(LedgerKind::Equipment, &bytes, format, &BTreeSet::new()).unwrap();
            prop_assert_eq!(&p.errors, &vec![]);
            prop_assert_eq!(p.total_rows, sorted.len());
            prop_assert_eq!(&equipment_of(&p), &sorted);
        }
    }

    #[test]
    fn any_bytes_give_a_preview_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        for format in [SheetFormat::Csv, SheetFormat::Xlsx] {
            let _ = preview_import(LedgerKind::Books, &bytes, format, &BTreeSet::new());
            let _ = read_tables(&bytes, format);
        }
    }
}
