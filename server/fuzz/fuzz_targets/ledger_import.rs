//! `tpsync_sheets::preview_import` (a school's equipment or book ledger,
//! .xlsx or CSV) and `read_tables`: any bytes give a preview or an error,
//! never a panic, within bounded time and memory (libFuzzer's `-timeout`,
//! `-rss_limit_mb` and `-malloc_limit_mb` catch a workbook that blows up).
//! A preview keeps its word: the rows it offers have distinct keys, none
//! already in the ledger, lines below the header, and each is a record the
//! server can store (it passes the records' schema, as the import's
//! `Hub::edit` checks it; a row that does not would be a 500 there).
//!
//! Input: byte 0 picks the mode, the rest is the file.
//!
//! * bits 0–1: 0 read as xlsx, 1 read as CSV, 2 the format detected from
//!   the bytes as the server does, 3 an xlsx assembled here from the rest
//!   split at NUL bytes into the sheet's XML, the shared strings' XML and
//!   the styles' XML (stored, so the fuzzer reaches calamine's XML reader
//!   rather than the zip's checksums);
//! * bit 2: the books ledger (else equipment);
//! * bit 3: the ledger already holds keys `YQ-00001` and `TS000001`.
#![no_main]

use std::collections::{BTreeSet, HashSet};
use std::io::{Cursor, Write};

use libfuzzer_sys::fuzz_target;
use sync_core::{DocId, DocKind, EditContext, RecordDoc, RecordId, SchoolId};
use tpsync_server_fuzz::{run, violated};
use tpsync_sheets::{preview_import, read_tables, LedgerKind, LedgerRecord, SheetFormat};

fuzz_target!(init: tpsync_server_fuzz::init(), |data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let assembled;
    let (bytes, format) = match mode & 3 {
        0 => (rest, Some(SheetFormat::Xlsx)),
        1 => (rest, Some(SheetFormat::Csv)),
        2 => (rest, None),
        _ => {
            assembled = assemble(rest);
            (&assembled[..], Some(SheetFormat::Xlsx))
        }
    };
    run("ledger_import", || one(mode, bytes, format));
});

fn one(mode: u8, bytes: &[u8], format: Option<SheetFormat>) {
    let format = match format {
        Some(f) => f,
        None => match SheetFormat::detect(None, bytes) {
            Ok(f) => f,
            Err(_) => return,
        },
    };
    let kind = if mode & 4 != 0 {
        LedgerKind::Books
    } else {
        LedgerKind::Equipment
    };
    let existing: BTreeSet<String> = if mode & 8 != 0 {
        ["YQ-00001", "TS000001"].map(String::from).into()
    } else {
        BTreeSet::new()
    };
    let _ = read_tables(bytes, format);
    let Ok(p) = preview_import(kind, bytes, format, &existing) else {
        return;
    };
    if p.kind != kind {
        violated(format!("asked for {kind:?}, previewed {:?}", p.kind));
    }
    if p.rows.len() > p.total_rows {
        violated(format!(
            "{} rows offered of {} in the file",
            p.rows.len(),
            p.total_rows
        ));
    }
    let mut keys = HashSet::new();
    let mut last = 0;
    for r in &p.rows {
        let key = r.record.key();
        if r.line <= 1 || r.line <= last {
            violated(format!("a row on line {} after line {last}", r.line));
        }
        last = r.line;
        if !keys.insert(key.to_owned()) || existing.contains(key) {
            violated(format!(
                "row {} offers key {key:?} twice or already held",
                r.line
            ));
        }
        if p.errors.iter().any(|e| e.line == r.line) {
            violated(format!("row {} is offered and has errors", r.line));
        }
    }
    for e in &p.errors {
        if e.line == 0 || e.message.trim().is_empty() {
            violated(format!("an error with no line or no message: {e:?}"));
        }
    }
    // What the server would store: the rows into a fresh document, checked
    // as `Hub::edit` checks an import.
    if p.rows.is_empty() {
        return;
    }
    let school = SchoolId::new("4301230001").unwrap();
    let doc_kind = match kind {
        LedgerKind::Equipment => DocKind::Equipment,
        LedgerKind::Books => DocKind::Books,
    };
    let mut doc = RecordDoc::genesis(DocId::school(&school, doc_kind).unwrap());
    let before = doc.heads();
    let ctx = EditContext {
        user: "fuzz".parse().unwrap(),
        device: "fuzz".parse().unwrap(),
        now_ms: 1_700_000_000_000,
    };
    for (i, r) in p.rows.iter().take(64).enumerate() {
        let id = RecordId::from_u128(i as u128 + 1);
        let inserted = match &r.record {
            LedgerRecord::Equipment(e) => doc.insert(&ctx, id, e),
            LedgerRecord::Book(b) => doc.insert(&ctx, id, b),
        };
        if let Err(e) = inserted {
            violated(format!(
                "row {} was offered but cannot be stored: {e}",
                r.line
            ));
        }
    }
    if let Err(e) = doc.validate_since(&before) {
        violated(format!("offered rows break the records' schema: {e}"));
    }
}

/// A minimal workbook around the given parts (the sheet, shared strings,
/// styles), stored uncompressed.
fn assemble(rest: &[u8]) -> Vec<u8> {
    let mut parts = rest.splitn(3, |&b| b == 0);
    let sheet = parts.next().unwrap_or_default();
    let strings = parts.next();
    let styles = parts.next();
    let mut files: Vec<(&str, &[u8])> = vec![
        (
            "[Content_Types].xml",
            br#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/><Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/></Types>"#,
        ),
        (
            "_rels/.rels",
            br#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#,
        ),
        (
            "xl/workbook.xml",
            br#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>"#,
        ),
        (
            "xl/_rels/workbook.xml.rels",
            br#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/><Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/></Relationships>"#,
        ),
        ("xl/worksheets/sheet1.xml", sheet),
    ];
    if let Some(s) = strings {
        files.push(("xl/sharedStrings.xml", s));
    }
    if let Some(s) = styles {
        files.push(("xl/styles.xml", s));
    }
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in files {
        zip.start_file(name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}
