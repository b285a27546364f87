//! Writes the committed seed corpora, `seeds/<target>/`:
//!
//! ```sh
//! cd server/fuzz && cargo run --example write_seeds
//! ```
//!
//! Real inputs of each target, in its input layout (see each target's
//! comment): request frames a phone's session sends (deflated and raw), a
//! tiny backup, school lists, ledgers written by the sheets crate's own
//! exporter, tokens and their parts, and one request per endpoint.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use sync_core::store::MemoryStorage;
use sync_core::sync::{Message, SyncSession};
use sync_core::{ActorId, DocId, DocKind, EditContext, RecordId, Replica};
use tpsync_server_fuzz::*;

fn seeds() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds")
}

fn write(target: &str, items: &[Vec<u8>]) {
    let dir = seeds().join(target);
    let _ = std::fs::remove_dir_all(&dir);
    for item in items {
        write_seed(&dir, &hex(&Sha256::digest(item)[..8]), item);
    }
    let total: usize = items.iter().map(Vec::len).sum();
    eprintln!("{target}: {} seeds, {total} bytes", items.len());
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn prefixed(p: &[u8], item: &[u8]) -> Vec<u8> {
    [p, item].concat()
}

/// The payload of a frame, uncompressed (mutations of a deflated frame
/// mostly stop at the deflate layer).
fn raw_frame(m: &Message) -> Vec<u8> {
    let mut f = b"TPSY\x01\x00".to_vec();
    f.extend_from_slice(&postcard::to_stdvec(m).unwrap());
    f
}

fn sync_request() {
    let s = server();
    let ctx = EditContext {
        user: "teacher-a".parse().unwrap(),
        device: "phone-a".parse().unwrap(),
        now_ms: 1_700_000_000_000,
    };
    let mut out = Vec::new();
    // A phone with two books of its own syncs school A and the template.
    let store = MemoryStorage::new();
    let mut phone = Replica::with_actor(store, ActorId::from(vec![0x31; 16]));
    let books = DocId::school(&school_a(), DocKind::Books).unwrap();
    phone
        .edit(&books, |d| {
            d.insert(&ctx, RecordId::from_u128(0x5EED_0001), &book(101))?;
            d.insert(&ctx, RecordId::from_u128(0x5EED_0002), &book(102))?;
            Ok(())
        })
        .unwrap();
    let mut scope = DocId::all_for_school(&school_a());
    scope.push(DocId::template(&county()));
    let mut session = SyncSession::new("server".parse().unwrap(), scope);
    while let Some(req) = session.next_request(&mut phone).unwrap() {
        let m = Message::decode(&req).unwrap();
        out.push(prefixed(&[0, 0], &req));
        out.push(prefixed(&[0, 0], &raw_frame(&m)));
        let r = axum::http::Request::builder()
            .method("POST")
            .uri("/v1/sync")
            .header(
                "authorization",
                format!("Bearer {}", s.teacher_a.access_token),
            )
            .header("content-type", "application/x-tpsync")
            .body(axum::body::Body::from(req))
            .unwrap();
        let a = s.call(r);
        assert!(
            a.status.is_success(),
            "{}",
            String::from_utf8_lossy(&a.body)
        );
        session.receive(&mut phone, &a.body).unwrap();
    }
    // The same first request from a teacher of school B (forbidden), with
    // no content type, and without a token.
    let first = out[0][2..].to_vec();
    for flags in [0x01u8, 0x08, 0x04, 0x20] {
        out.push(prefixed(&[flags, 0], &first));
    }
    write("sync_request", &out);
}

fn backup_restore() {
    let dir = temp_dir("seeds");
    let db = sled::open(dir.join("db")).unwrap();
    db.insert(b"doc/a", b"1".to_vec()).unwrap();
    db.open_tree("accounts.users")
        .unwrap()
        .insert(b"li", b"x".to_vec())
        .unwrap();
    let blobs = tpsync_blobs::BlobStore::open(dir.join("blobs")).unwrap();
    blobs.put_bytes(b"a small attachment").unwrap();
    let mut file = Vec::new();
    tpsync_server::backup::export(&db, Some(&blobs), &mut file).unwrap();
    let magic = b"TPSYNC-BACKUP 2\n".len();
    let body = &file[..file.len() - 32];
    let mut v1 = b"TPSYNC-BACKUP 1\n".to_vec();
    // Version 1 had no blobs: the entries and the end.
    let end_of_entries = body.len() - (1 + 32 + 8 + b"a small attachment".len()) - 1;
    v1.extend_from_slice(&body[magic..end_of_entries]);
    v1.push(2);
    write(
        "backup_restore",
        &[
            prefixed(&[0], &file),
            prefixed(&[1], body),
            prefixed(&[3], &body[magic..]),
            prefixed(&[1], &v1),
        ],
    );
}

fn schools_csv() {
    let (gbk, _, _) = encoding_rs::GBK.encode(SCHOOLS_CSV);
    let english = "school_code,name,type,township_code,township_name,grade1,grade_2,grade9\n\
        4301230003,\"Hill, West\",primary,430123102,Hill,1,2,\n\
        4301230004,Ford,nine_year,430123102,Hill,,,30\n";
    let bad = "学校标识码,学校名称,学校类型,乡镇代码,乡镇名称,一年级,备注\n\
        43012300,小学,小学,T 1,,-3,x\n";
    write(
        "schools_csv",
        &[
            prefixed(&[1], SCHOOLS_CSV.as_bytes()),
            prefixed(&[0], &gbk),
            prefixed(&[1], english.as_bytes()),
            prefixed(&[0], bad.as_bytes()),
            prefixed(
                &[0],
                &[b"\xEF\xBB\xBF".as_slice(), SCHOOLS_CSV.as_bytes()].concat(),
            ),
        ],
    );
}

fn ledger_import() {
    use tpsync_sheets::{books_table, equipment_table, to_csv, to_xlsx};
    let items: Vec<_> = (1..=3)
        .map(|i| (RecordId::from_u128(i), microscope(i as u32)))
        .collect();
    let books: Vec<_> = (1..=3)
        .map(|i| (RecordId::from_u128(i), book(i as u32)))
        .collect();
    let xlsx = to_xlsx(&[equipment_table(&items)]).unwrap();
    let csv_items = to_csv(&equipment_table(&items));
    let csv_books = to_csv(&books_table(&books));
    let sheet = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row><row r="2"><c r="A2" t="inlineStr"><is><t>TS000009</t></is></c><c r="B2" t="s"><v>2</v></c><c r="C2"><v>12.5</v></c></row></sheetData></worksheet>"#;
    let strings = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="3" uniqueCount="3"><si><t>登记号</t></si><si><t>书名</t></si><si><t>西游记</t></si></sst>"#;
    let styles = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy-mm-dd"/></numFmts><cellXfs count="2"><xf numFmtId="0"/><xf numFmtId="164" applyNumberFormat="1"/></cellXfs></styleSheet>"#;
    let assembled = [
        sheet.as_bytes(),
        b"\0",
        strings.as_bytes(),
        b"\0",
        styles.as_bytes(),
    ]
    .concat();
    write(
        "ledger_import",
        &[
            prefixed(&[0], &xlsx),
            prefixed(&[1], &csv_items),
            prefixed(&[5], &csv_books),
            prefixed(&[2 | 8], &csv_items),
            prefixed(&[3 | 4], &assembled),
        ],
    );
}

fn access_token() {
    let t = &server().teacher_a.access_token;
    let segs: Vec<&str> = t.split('.').collect();
    let b64 = |s: &str| -> Vec<u8> {
        // base64url without padding → bytes
        const A: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut bits = 0u32;
        let mut n = 0;
        let mut out = Vec::new();
        for c in s.chars() {
            bits = bits << 6 | A.find(c).unwrap() as u32;
            n += 6;
            if n >= 8 {
                n -= 8;
                out.push((bits >> n) as u8);
            }
        }
        out
    };
    write(
        "access_token",
        &[
            prefixed(&[0], t.as_bytes()),
            prefixed(&[3], segs[2].as_bytes()),
            prefixed(&[4], &b64(segs[0])),
            prefixed(&[5], &b64(segs[1])),
            prefixed(&[4 | 8], br#"{"alg":"none","typ":"JWT"}"#),
            prefixed(&[7], b""),
        ],
    );
}

fn api_request() {
    let review = br#"{"section":"equipment","action":"submit","comment":"ok"}"#;
    let csv = tpsync_sheets::to_csv(&tpsync_sheets::books_table(&[(
        RecordId::from_u128(9),
        book(9),
    )]));
    let mut out = vec![
        // endpoint, caller, then seg1 \n seg2 \n query \n header \n body
        [&[0u8, 2][..], b"\n\ntownship=430123101&stale_days=3"].concat(),
        [&[2u8, 0][..], b"\n\nstale_days=1"].concat(),
        [&[5u8, 0][..], b"\n\n\n\n", review].concat(),
        [&[6u8, 2][..], b"\nbooks\nsince=0"].concat(),
        [&[8u8, 2][..], b"report.xlsx\n\ntable=1"].concat(),
        [&[10u8, 0][..], b"\n\nfilename=a.csv\ntext/csv\n", &csv].concat(),
        [&[13u8, 0][..], b"\n\n\n\n{\"size\":4096}"].concat(),
        [
            &[15u8, 0][..],
            b"\n\noffset=0\n\x10\x00\n",
            &photo()[..1000],
        ]
        .concat(),
        [&[16u8, 2][..], b"\n\nframe=2048\nbytes=100-"].concat(),
        [&[17u8, 3][..], b"\n\n\ntext/csv\n", SCHOOLS_CSV.as_bytes()].concat(),
        [&[18u8, 4][..], b"\n\n\n\n{\"refresh_token\":\"00\"}"].concat(),
        [
            &[22u8, 0][..],
            b"\n\ntab=books\ntpsync_device=web-0011223344556677",
        ]
        .concat(),
        [
            &[23u8, 0][..],
            b"\n\n\n\nsection=equipment&action=submit&comment=x",
        ]
        .concat(),
        [&[27u8, 4][..], b"v1/openapi.json\nGET"].concat(),
    ];
    out.sort();
    write("api_request", &out);
}

fn main() {
    init();
    sync_request();
    backup_restore();
    schools_csv();
    ledger_import();
    access_token();
    api_request();
}
