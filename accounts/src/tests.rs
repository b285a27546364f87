//! Tests over a real sled database in a temporary directory.

use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sync_core::records::SchoolType;
use sync_core::sync::{Access, AccessPolicy};
use sync_core::{CountyId, DeviceId, DocId, DocKind, SchoolId};

use crate::*;

const T0: u64 = 1_700_000_000_000;
const MIN: u64 = 60_000;
const COUNTY: &str = "430123";
const OTHER_COUNTY: &str = "430999";
const PW: &str = "correct horse";

struct Env {
    _dir: tempfile::TempDir,
    db: sled::Db,
    acc: Accounts,
}

fn env() -> Env {
    env_with(AuthConfig::default())
}

fn env_with(cfg: AuthConfig) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path().join("db")).unwrap();
    let acc = Accounts::open(&db, cfg).unwrap();
    Env { _dir: dir, db, acc }
}

/// Three schools: A and B in township T1, C in T2.
const SCHOOLS_CSV: &str = "\
school_code,name,type,township_code,township_name,grade1,grade2,grade3,grade4,grade5,grade6,grade7,grade8,grade9
A001,甲村教学点,teaching_point,T1,甲镇,5,4,3,,,,,,
B002,甲镇中心小学,central,T1,甲镇,40,41,42,43,44,45,,,
C003,乙镇初中,junior,T2,乙镇,,,,,,,120,110,100
";

fn with_org() -> Env {
    let e = env();
    e.acc
        .set_county(CountyId::new(COUNTY).unwrap(), "某某县")
        .unwrap();
    let r = e
        .acc
        .import_schools_csv(SCHOOLS_CSV.as_bytes(), false)
        .unwrap();
    assert!(r.is_ok(), "{:?}", r.errors);
    e
}

fn user(acc: &Accounts, name: &str, role: Role, unit: Option<&str>) -> User {
    acc.create_user(
        NewUser {
            username: name.into(),
            password: PW.into(),
            role,
            unit: unit.map(str::to_owned),
        },
        T0,
    )
    .unwrap()
}

fn dev(s: &str) -> DeviceId {
    DeviceId::new(s).unwrap()
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

fn login(acc: &Accounts, name: &str, device: &str, now: u64) -> Result<Tokens, AccountsError> {
    acc.login(name, PW, &dev(device), Some("phone"), ip("10.0.0.1"), now)
}

fn school(code: &str) -> SchoolId {
    SchoolId::new(code).unwrap()
}

// ---- setup -----------------------------------------------------------------

#[test]
fn setup_code_flow() {
    let e = env();
    let code = e.acc.setup_code().unwrap().expect("no admin yet");
    assert_eq!(code.len(), 14, "{code}");
    // Kept until used, across restarts.
    assert_eq!(e.acc.setup_code().unwrap().as_deref(), Some(code.as_str()));
    let again = Accounts::open(&e.db, AuthConfig::default()).unwrap();
    assert_eq!(again.setup_code().unwrap().as_deref(), Some(code.as_str()));

    let wrong = e.acc.setup("AAAA-AAAA-AAAA", "admin", PW, T0).unwrap_err();
    assert_eq!(wrong.code(), "forbidden", "{wrong}");
    let short = e.acc.setup(&code, "admin", "short", T0).unwrap_err();
    assert_eq!(short.code(), "bad_request");
    assert!(short.to_string().contains("at least 8"), "{short}");
    assert!(e.acc.users().unwrap().is_empty());

    // Typed in lower case without dashes still works.
    let typed = code.replace('-', "").to_lowercase();
    let admin = e.acc.setup(&typed, "admin", PW, T0).unwrap();
    assert_eq!(admin.role, Role::Admin);
    assert_eq!(admin.unit, None);
    assert_eq!(e.acc.setup_code().unwrap(), None);
    assert_eq!(
        e.acc.setup(&code, "admin2", PW, T0).unwrap_err(),
        AccountsError::SetupDone
    );
    let reopened = Accounts::open(&e.db, AuthConfig::default()).unwrap();
    assert_eq!(reopened.setup_code().unwrap(), None);
    let t = login(&reopened, "admin", "laptop-1", T0).unwrap();
    assert_eq!(t.user.id, admin.id);
}

#[test]
fn setup_without_an_issued_code_is_refused() {
    let e = env();
    let err = e.acc.setup("ABCD-EFGH-JKMN", "admin", PW, T0).unwrap_err();
    assert_eq!(err.code(), "forbidden");
}

// ---- organisation and import -------------------------------------------------

#[test]
fn set_county_renames_but_keeps_its_code_once_schools_exist() {
    let e = env();
    assert_eq!(e.acc.county().unwrap(), None);
    e.acc
        .set_county(CountyId::new("111").unwrap(), "甲县")
        .unwrap();
    // No schools yet: the code may still change.
    e.acc
        .set_county(CountyId::new(COUNTY).unwrap(), "甲县")
        .unwrap();
    e.acc
        .import_schools_csv(SCHOOLS_CSV.as_bytes(), false)
        .unwrap();
    let renamed = e
        .acc
        .set_county(CountyId::new(COUNTY).unwrap(), "乙县")
        .unwrap();
    assert_eq!(renamed.name, "乙县");
    assert_eq!(e.acc.county().unwrap().unwrap().name, "乙县");
    let err = e
        .acc
        .set_county(CountyId::new(OTHER_COUNTY).unwrap(), "乙县")
        .unwrap_err();
    assert_eq!(err.code(), "conflict", "{err}");
    assert_eq!(e.acc.county().unwrap().unwrap().code.as_str(), COUNTY);
    assert_eq!(
        e.acc
            .set_county(CountyId::new(COUNTY).unwrap(), " ")
            .unwrap_err()
            .code(),
        "bad_request"
    );
}

#[test]
fn import_needs_the_county() {
    let e = env();
    let err = e
        .acc
        .import_schools_csv(SCHOOLS_CSV.as_bytes(), false)
        .unwrap_err();
    assert_eq!(err.code(), "conflict");
    assert!(err.to_string().contains("county"), "{err}");
}

#[test]
fn import_a_good_file() {
    let e = env();
    e.acc
        .set_county(CountyId::new(COUNTY).unwrap(), "县")
        .unwrap();
    let r = e
        .acc
        .import_schools_csv(SCHOOLS_CSV.as_bytes(), false)
        .unwrap();
    assert_eq!(
        r,
        SchoolImport {
            townships_created: 2,
            townships_updated: 0,
            schools_created: 3,
            schools_updated: 0,
            errors: vec![]
        }
    );
    let towns = e.acc.townships().unwrap();
    assert_eq!(
        towns,
        vec![
            Township {
                code: TownshipId::new("T1").unwrap(),
                name: "甲镇".into()
            },
            Township {
                code: TownshipId::new("T2").unwrap(),
                name: "乙镇".into()
            }
        ]
    );
    assert_eq!(e.acc.schools().unwrap().len(), 3);
    let a = e.acc.school(&school("A001")).unwrap().unwrap();
    assert_eq!(a.name, "甲村教学点");
    assert_eq!(a.school_type, SchoolType::TeachingPoint);
    assert_eq!(a.township.as_str(), "T1");
    assert_eq!(a.enrollment, [5, 4, 3, 0, 0, 0, 0, 0, 0]);
    let c = e.acc.school(&school("C003")).unwrap().unwrap();
    assert_eq!(c.enrollment, [0, 0, 0, 0, 0, 0, 120, 110, 100]);
    assert_eq!(e.acc.school(&school("Z999")).unwrap(), None);
}

const CHINESE_CSV: &str = "\
学校标识码,学校名称,学校类型,乡镇代码,乡镇名称,一年级,二年级,三年级,四年级,五年级,六年级,七年级,八年级,九年级
4301230001,大山教学点,教学点,T01,大山乡,3,2,1,0,0,0,0,0,0
4301230002,大山乡中心学校,乡镇中心学校,T01,大山乡,30,31,32,33,34,35,0,0,0
4301230003,小河九年一贯制学校,九年一贯制,T02,小河镇,10,10,10,10,10,10,20,20,20
4301230004,小河完小,完全小学,T02,小河镇,1,1,1,1,1,1,,,
4301230005,县一中,初中,T02,小河镇,,,,,,,300,300,300
";

fn check_chinese_import(bytes: &[u8]) {
    let e = env();
    e.acc
        .set_county(CountyId::new(COUNTY).unwrap(), "县")
        .unwrap();
    let r = e.acc.import_schools_csv(bytes, false).unwrap();
    assert!(r.is_ok(), "{:?}", r.errors);
    assert_eq!((r.townships_created, r.schools_created), (2, 5));
    let types: Vec<SchoolType> = e
        .acc
        .schools()
        .unwrap()
        .iter()
        .map(|s| s.school_type)
        .collect();
    assert_eq!(
        types,
        vec![
            SchoolType::TeachingPoint,
            SchoolType::Central,
            SchoolType::NineYear,
            SchoolType::Primary,
            SchoolType::Junior
        ]
    );
    let t = &e.acc.townships().unwrap()[0];
    assert_eq!(t.name, "大山乡");
    let s = e.acc.school(&school("4301230003")).unwrap().unwrap();
    assert_eq!(s.name, "小河九年一贯制学校");
    assert_eq!(s.enrollment[8], 20);
}

#[test]
fn import_chinese_headers_utf8() {
    check_chinese_import(CHINESE_CSV.as_bytes());
}

#[test]
fn import_utf8_with_bom_and_crlf() {
    let mut bytes = vec![0xEF, 0xBB, 0xBF];
    bytes.extend(CHINESE_CSV.replace('\n', "\r\n").as_bytes());
    check_chinese_import(&bytes);
}

#[test]
fn import_gbk_bytes() {
    let (gbk, _, unmappable) = encoding_rs::GBK.encode(CHINESE_CSV);
    assert!(!unmappable);
    assert!(
        std::str::from_utf8(&gbk).is_err(),
        "the test file must not be UTF-8"
    );
    check_chinese_import(&gbk);
}

#[test]
fn undecodable_bytes_are_a_bad_request() {
    let e = env();
    e.acc
        .set_county(CountyId::new(COUNTY).unwrap(), "县")
        .unwrap();
    let err = e
        .acc
        .import_schools_csv(b"\xFF\xFE\x00s\x00c", false)
        .unwrap_err();
    assert_eq!(err.code(), "bad_request");
    assert!(err.to_string().contains("UTF-16"), "{err}");
    // 0xFF is neither UTF-8 nor GB18030 (0x80 would be: the euro sign).
    let err = e.acc.import_schools_csv(b"a,b\n\xFF\n", false).unwrap_err();
    assert_eq!(err.code(), "bad_request");
}

#[test]
fn every_bad_row_is_reported_with_its_line_and_nothing_is_written() {
    let e = env();
    e.acc
        .set_county(CountyId::new(COUNTY).unwrap(), "县")
        .unwrap();
    let file = "\
school_code,name,type,township_code,township_name,grade1,grade2,grade3,grade4,grade5,grade6,grade7,grade8,grade9
A001,好学校,primary,T1,甲镇,1,2,3,4,5,6,,,
bad.code,坏代码,primary,T1,甲镇,,,,,,,,,
B002,未知类型,高中,T1,甲镇,,,,,,,,,
C003,负数,primary,T1,甲镇,-3,,,,,,,,
D004,非数字,primary,T1,甲镇,,abc,,,,,,,
A001,重复,primary,T1,甲镇,,,,,,,,,
E005,两个名字,primary,T1,乙镇,,,,,,,,,
F006,,primary,T 2,丙镇,,,,,,,,,
G007,少了列,primary
\"H008\",\"名字,带逗号
和换行\",junior,T3,丁镇,,,,,,,1,1,1
I009,在多行之后,nine_year,T3,丁镇,,,,,,,x,,
";
    let r = e.acc.import_schools_csv(file.as_bytes(), false).unwrap();
    let got: Vec<(u64, Option<&str>)> = r
        .errors
        .iter()
        .map(|e| (e.line, e.column.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            (3, Some("school_code")),
            (4, Some("type")),
            (5, Some("grade1")),
            (6, Some("grade2")),
            (7, Some("school_code")),
            (8, Some("township_name")),
            (9, Some("name")),
            (9, Some("township_code")),
            (10, None),
            (13, Some("grade7")),
        ],
        "{:#?}",
        r.errors
    );
    let msg = |line: u64| {
        r.errors
            .iter()
            .find(|e| e.line == line)
            .unwrap()
            .message
            .clone()
    };
    assert!(msg(3).contains("bad.code"), "{}", msg(3));
    assert!(
        msg(4).contains("高中") && msg(4).contains("教学点"),
        "{}",
        msg(4)
    );
    assert!(msg(5).contains("negative"), "{}", msg(5));
    assert!(msg(6).contains("not a whole number"), "{}", msg(6));
    assert!(msg(7).contains("line 2"), "{}", msg(7));
    assert!(
        msg(8).contains("甲镇") && msg(8).contains("乙镇"),
        "{}",
        msg(8)
    );
    assert!(msg(10).contains("fields"), "{}", msg(10));
    assert_eq!(
        (r.schools_created, r.schools_updated, r.townships_created),
        (0, 0, 0)
    );
    // Nothing written, not even the good rows.
    assert!(e.acc.schools().unwrap().is_empty());
    assert!(e.acc.townships().unwrap().is_empty());
}

#[test]
fn a_missing_column_is_one_error_for_the_header() {
    let e = env();
    e.acc
        .set_county(CountyId::new(COUNTY).unwrap(), "县")
        .unwrap();
    let file = "school_code,name,township_code\nA001,甲,T1\nbad..,乙,T1\n";
    let r = e.acc.import_schools_csv(file.as_bytes(), false).unwrap();
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    let err = &r.errors[0];
    assert_eq!(err.line, 1);
    assert!(err.message.contains("type (学校类型)"), "{}", err.message);
    assert!(err.message.contains("township_name"), "{}", err.message);
    assert!(
        !err.message.contains("school_code (学校标识码),"),
        "{}",
        err.message
    );

    let unknown = "school_code,name,type,township_code,township_name,grdae1\n";
    let r = e.acc.import_schools_csv(unknown.as_bytes(), false).unwrap();
    assert_eq!(r.errors.len(), 1);
    assert!(r.errors[0].message.contains("grdae1"), "{:?}", r.errors);

    let empty = e.acc.import_schools_csv(b"", false).unwrap();
    assert_eq!(empty.errors.len(), 1);
    assert_eq!(empty.errors[0].line, 1);
    assert!(e.acc.schools().unwrap().is_empty());
}

#[test]
fn dry_run_reports_and_writes_nothing() {
    let e = env();
    e.acc
        .set_county(CountyId::new(COUNTY).unwrap(), "县")
        .unwrap();
    let r = e
        .acc
        .import_schools_csv(SCHOOLS_CSV.as_bytes(), true)
        .unwrap();
    assert_eq!((r.townships_created, r.schools_created), (2, 3));
    assert!(e.acc.schools().unwrap().is_empty());
    assert!(e.acc.townships().unwrap().is_empty());
    // And the access rules did not learn the schools either.
    let county = user(&e.acc, "county", Role::County, Some(COUNTY));
    let t = login(&e.acc, &county.username, "pc-1", T0).unwrap();
    let caller = e.acc.verify(&t.access_token, T0).unwrap();
    let doc = DocId::school(&school("A001"), DocKind::Books).unwrap();
    assert!(e
        .acc
        .policy(&caller)
        .unwrap()
        .check(&doc, Access::Read)
        .is_err());
}

#[test]
fn reimport_updates_existing_schools() {
    let e = with_org();
    let changed = SCHOOLS_CSV
        .replace(
            "甲村教学点,teaching_point,T1,甲镇,5",
            "甲村小学,primary,T2,乙镇,6",
        )
        .replace("T1,甲镇", "T1,甲镇(新)")
        + "D004,新学校,primary,T3,丙镇,1,,,,,,,,\n";
    let r = e.acc.import_schools_csv(changed.as_bytes(), false).unwrap();
    assert!(r.is_ok(), "{:?}", r.errors);
    assert_eq!(r.schools_updated, 3);
    assert_eq!(r.schools_created, 1);
    assert_eq!(r.townships_created, 1);
    assert_eq!(r.townships_updated, 1);
    let a = e.acc.school(&school("A001")).unwrap().unwrap();
    assert_eq!(a.name, "甲村小学");
    assert_eq!(a.school_type, SchoolType::Primary);
    assert_eq!(a.township.as_str(), "T2");
    assert_eq!(a.enrollment[0], 6);
    assert_eq!(e.acc.schools().unwrap().len(), 4);
    assert_eq!(e.acc.townships().unwrap()[0].name, "甲镇(新)");
}

// ---- users -------------------------------------------------------------------

#[test]
fn units_must_exist_and_fit_the_role() {
    let e = with_org();
    let bad = [
        (Role::Teacher, None),
        (Role::Teacher, Some("T1")),   // a township, not a school
        (Role::Teacher, Some("Z999")), // not registered
        (Role::Teacher, Some(COUNTY)),
        (Role::Teacher, Some("a.b")),
        (Role::Township, None),
        (Role::Township, Some("A001")), // a school
        (Role::Township, Some("T9")),
        (Role::County, None),
        (Role::County, Some(OTHER_COUNTY)),
        (Role::County, Some("T1")),
        (Role::Admin, Some(COUNTY)),
        (Role::Admin, Some("A001")),
    ];
    for (i, (role, unit)) in bad.into_iter().enumerate() {
        let err = e
            .acc
            .create_user(
                NewUser {
                    username: format!("u{i}"),
                    password: PW.into(),
                    role,
                    unit: unit.map(str::to_owned),
                },
                T0,
            )
            .unwrap_err();
        assert_eq!(err.code(), "bad_request", "{role} {unit:?}: {err}");
    }
    assert!(e.acc.users().unwrap().is_empty());
    let good = [
        (Role::Teacher, Some("A001")),
        (Role::Township, Some("T1")),
        (Role::County, Some(COUNTY)),
        (Role::Admin, None),
        (Role::Admin, Some("")),
    ];
    for (i, (role, unit)) in good.into_iter().enumerate() {
        let u = user(&e.acc, &format!("ok{i}"), role, unit);
        assert_eq!(u.role, role);
        assert_eq!(u.unit.as_deref(), unit.filter(|u| !u.is_empty()));
        assert!(!u.disabled);
        assert_eq!(u.created_ms, T0);
    }
    assert_eq!(e.acc.users().unwrap().len(), 5);
}

#[test]
fn usernames_are_unique_and_passwords_long_enough() {
    let e = with_org();
    user(&e.acc, "li", Role::Teacher, Some("A001"));
    let dup = e
        .acc
        .create_user(
            NewUser {
                username: "LI".into(),
                password: PW.into(),
                role: Role::Teacher,
                unit: Some("B002".into()),
            },
            T0,
        )
        .unwrap_err();
    assert_eq!(dup.code(), "conflict");
    assert_eq!(
        dup.to_string(),
        "user 'LI' exists already; choose another username"
    );
    for (name, pw) in [
        ("wang", "1234567"),
        ("", PW),
        ("has space", PW),
        ("a/b", PW),
    ] {
        let err = e
            .acc
            .create_user(
                NewUser {
                    username: name.into(),
                    password: pw.into(),
                    role: Role::Admin,
                    unit: None,
                },
                T0,
            )
            .unwrap_err();
        assert_eq!(err.code(), "bad_request", "{name:?}");
    }
    // Chinese usernames and an 8-character password are fine.
    user(&e.acc, "王老师", Role::Teacher, Some("A001"));
    assert_eq!(e.acc.users().unwrap().len(), 2);
    // Stored as an Argon2id PHC string, never in clear.
    let raw: Vec<u8> =
        e.db.open_tree("accounts.users")
            .unwrap()
            .iter()
            .map(|kv| kv.unwrap().1.to_vec())
            .next()
            .unwrap();
    let raw = String::from_utf8(raw).unwrap();
    assert!(raw.contains("$argon2id$"), "{raw}");
    assert!(!raw.contains(PW));
}

// ---- tokens ------------------------------------------------------------------

#[test]
fn login_verify_refresh_logout() {
    let e = with_org();
    let li = user(&e.acc, "li", Role::Teacher, Some("A001"));
    let t = e
        .acc
        .login("Li", PW, &dev("phone-1"), Some("红米"), ip("10.0.0.1"), T0)
        .unwrap();
    assert_eq!(t.token_type, "Bearer");
    assert_eq!(t.expires_in, 900);
    assert_eq!(t.device_id, dev("phone-1"));
    assert_eq!(t.user, li);
    assert!(t.refresh_token.len() >= 64);
    assert!(!format!("{t:?}").contains(&t.refresh_token));
    // Only the hash of the refresh token is stored.
    let refresh_tree = e.db.open_tree("accounts.refresh").unwrap();
    assert!(refresh_tree
        .get(t.refresh_token.as_bytes())
        .unwrap()
        .is_none());
    assert_eq!(refresh_tree.len(), 1);

    let caller = e.acc.verify(&t.access_token, T0 + 1000).unwrap();
    assert_eq!(
        caller,
        Caller {
            user: li.id.clone(),
            username: "li".into(),
            role: Role::Teacher,
            unit: Some("A001".into()),
            device: dev("phone-1"),
        }
    );
    let devices = e.acc.devices().unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].user, li.id);
    assert_eq!(devices[0].name.as_deref(), Some("红米"));
    assert_eq!(devices[0].first_seen_ms, T0);

    // Refresh replaces the refresh token.
    let lost = e.acc.refresh(&t.refresh_token, T0 + 10 * MIN).unwrap();
    assert_ne!(lost.refresh_token, t.refresh_token);
    assert_ne!(lost.access_token, t.access_token);
    assert_eq!(lost.user, li);
    // While the new one is unused and within the grace, the old one still
    // works (the reply may have been lost) and supersedes the new one; the
    // old one's refusal once the new one is used is tested below.
    let t2 = e.acc.refresh(&t.refresh_token, T0 + 11 * MIN).unwrap();
    assert_ne!(t2.refresh_token, lost.refresh_token);
    assert_eq!(refresh_tree.len(), 1);
    assert_eq!(
        e.acc.verify(&t2.access_token, T0 + 11 * MIN).unwrap(),
        caller
    );
    // The access token from before the refresh is still good until it expires.
    e.acc.verify(&t.access_token, T0 + 11 * MIN).unwrap();
    let t3 = e.acc.refresh(&t2.refresh_token, T0 + 20 * MIN).unwrap();
    assert_eq!(refresh_tree.len(), 1);

    // Logout ends the refresh token and the access tokens of the session.
    e.acc.logout(&caller, T0 + 21 * MIN).unwrap();
    assert_eq!(
        e.acc
            .refresh(&t3.refresh_token, T0 + 22 * MIN)
            .unwrap_err()
            .code(),
        "token_invalid"
    );
    let err = e.acc.verify(&t3.access_token, T0 + 22 * MIN).unwrap_err();
    assert_eq!(err.code(), "token_invalid");
    assert!(err.to_string().contains("signed out"), "{err}");
    assert_eq!(refresh_tree.len(), 0);

    // Signing in again on the same device works.
    let t4 = login(&e.acc, "li", "phone-1", T0 + 23 * MIN).unwrap();
    e.acc.verify(&t4.access_token, T0 + 23 * MIN).unwrap();
    e.acc.refresh(&t4.refresh_token, T0 + 24 * MIN).unwrap();
}

#[test]
fn tokens_survive_a_restart() {
    let e = with_org();
    user(&e.acc, "li", Role::Teacher, Some("A001"));
    let t = login(&e.acc, "li", "phone-1", T0).unwrap();
    let kid = e.acc.current_kid();
    drop(e.acc);
    let acc = Accounts::open(&e.db, AuthConfig::default()).unwrap();
    assert_eq!(acc.current_kid(), kid);
    acc.verify(&t.access_token, T0 + MIN).unwrap();
    acc.refresh(&t.refresh_token, T0 + MIN).unwrap();
}

#[test]
fn wrong_password_and_unknown_user_look_the_same() {
    let e = with_org();
    user(&e.acc, "li", Role::Teacher, Some("A001"));
    let a = e
        .acc
        .login("li", "wrong password", &dev("p1"), None, None, T0)
        .unwrap_err();
    let b = e
        .acc
        .login("nobody", PW, &dev("p1"), None, None, T0)
        .unwrap_err();
    assert_eq!(a, AccountsError::InvalidCredentials);
    assert_eq!(a, b);
    assert_eq!(a.to_string(), b.to_string());
    assert!(e.acc.devices().unwrap().is_empty());
}

#[test]
fn access_tokens_expire_by_now_ms() {
    let e = with_org();
    user(&e.acc, "li", Role::Teacher, Some("A001"));
    let t = login(&e.acc, "li", "phone-1", T0).unwrap();
    e.acc.verify(&t.access_token, T0 + 900_000 - 1).unwrap();
    let err = e.acc.verify(&t.access_token, T0 + 900_000).unwrap_err();
    assert_eq!(err.code(), "token_expired", "{err}");
    // The refresh token still works for 180 days.
    let day = 24 * 60 * MIN;
    let t2 = e.acc.refresh(&t.refresh_token, T0 + 179 * day).unwrap();
    let err = e
        .acc
        .refresh(&t2.refresh_token, T0 + 179 * day + 180 * day)
        .unwrap_err();
    assert_eq!(err.code(), "token_expired", "{err}");
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn forged_tampered_and_unsigned_tokens_are_invalid() {
    let e = with_org();
    user(&e.acc, "li", Role::Teacher, Some("A001"));
    user(&e.acc, "boss", Role::County, Some(COUNTY));
    let t = login(&e.acc, "li", "phone-1", T0).unwrap();
    let now = T0 + 1000;
    e.acc.verify(&t.access_token, now).unwrap();
    let kid = e.acc.current_kid();
    let parts: Vec<&str> = t.access_token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["kid"], kid.as_str());
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    for c in [
        "sub", "username", "role", "unit", "device", "iat", "exp", "jti",
    ] {
        assert!(claims.get(c).is_some(), "claim {c} missing: {claims}");
    }
    assert_eq!(claims["role"], "teacher");
    assert_eq!(claims["exp"].as_u64().unwrap(), T0 / 1000 + 900);

    let expect_invalid = |token: &str, what: &str| {
        let err = e.acc.verify(token, now).unwrap_err();
        assert_eq!(err.code(), "token_invalid", "{what}: {err}");
    };

    // Signed with another key under our kid.
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    h.kid = Some(kid.clone());
    let forged = jsonwebtoken::encode(
        &h,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&[7u8; 32]),
    )
    .unwrap();
    expect_invalid(&forged, "another key");

    // Payload changed (made a county user), signature kept.
    claims["role"] = "county".into();
    claims["unit"] = COUNTY.into();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims.to_string().as_bytes()),
        parts[2]
    );
    expect_invalid(&tampered, "tampered payload");

    // alg none, no signature.
    let none_header = format!(r#"{{"alg":"none","typ":"JWT","kid":"{kid}"}}"#);
    let unsigned = format!(
        "{}.{}.",
        b64(none_header.as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    expect_invalid(&unsigned, "alg none");
    // HS512 with the right structure is refused too.
    let mut h512 = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512);
    h512.kid = Some(kid.clone());
    let other_alg = jsonwebtoken::encode(
        &h512,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&[7u8; 32]),
    )
    .unwrap();
    expect_invalid(&other_alg, "HS512");

    // Unknown kid, no kid, malformed.
    let mut hk = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hk.kid = Some("0000000000000000".into());
    let unknown_kid = jsonwebtoken::encode(
        &hk,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&[7u8; 32]),
    )
    .unwrap();
    expect_invalid(&unknown_kid, "unknown kid");
    let no_kid = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&[7u8; 32]),
    )
    .unwrap();
    expect_invalid(&no_kid, "no kid");
    for junk in [
        "",
        "abc",
        "a.b.c",
        "..",
        &t.access_token[..t.access_token.len() - 3],
    ] {
        expect_invalid(junk, junk);
    }
    // The genuine token is still fine.
    e.acc.verify(&t.access_token, now).unwrap();
}

#[test]
fn key_rotation_keeps_old_tokens_until_the_ttl_then_refuses_them() {
    let e = with_org();
    user(&e.acc, "li", Role::Teacher, Some("A001"));
    let old = login(&e.acc, "li", "phone-1", T0).unwrap();
    let old_kid = e.acc.current_kid();
    let rotated_at = T0 + 10 * MIN;
    let info = e.acc.rotate_signing_key(rotated_at).unwrap();
    assert_ne!(info.kid, old_kid);
    assert_eq!(info.created_ms, rotated_at);
    assert_eq!(e.acc.current_kid(), info.kid);
    // The old token still verifies: nobody is signed out by a rotation.
    e.acc.verify(&old.access_token, rotated_at + MIN).unwrap();
    let new = e.acc.refresh(&old.refresh_token, rotated_at + MIN).unwrap();
    let header = jsonwebtoken::decode_header(&new.access_token).unwrap();
    assert_eq!(header.kid.as_deref(), Some(info.kid.as_str()));
    // After a restart too.
    let acc = Accounts::open(&e.db, AuthConfig::default()).unwrap();
    acc.verify(&old.access_token, rotated_at + 2 * MIN).unwrap();
    acc.verify(&new.access_token, rotated_at + 2 * MIN).unwrap();
    // After the ttl the old token is refused (it expired as well).
    assert!(acc
        .verify(&old.access_token, rotated_at + 15 * MIN)
        .is_err());
    acc.verify(&new.access_token, rotated_at + 15 * MIN)
        .unwrap();
    let newer = acc
        .refresh(&new.refresh_token, rotated_at + 15 * MIN)
        .unwrap();
    // A later rotation deletes the retired key: its tokens are then unknown.
    acc.rotate_signing_key(rotated_at + 16 * MIN).unwrap();
    let keys = e.db.open_tree("accounts.keys").unwrap();
    assert_eq!(keys.len(), 2, "the retired key is deleted");
    assert!(keys.get(old_kid.as_bytes()).unwrap().is_none());
    let err = acc
        .verify(&old.access_token, rotated_at + 16 * MIN)
        .unwrap_err();
    assert_eq!(err.code(), "token_invalid");
    // The key replaced a minute ago still verifies its tokens.
    acc.verify(&newer.access_token, rotated_at + 17 * MIN)
        .unwrap();
}

#[test]
fn a_retired_key_is_refused_even_before_its_tokens_expire() {
    // Tokens issued with a 1 h lifetime, then the server restarts with 15 min
    // and rotates: the old key retires 15 min after the rotation even though
    // its tokens claim to live longer.
    let long = AuthConfig {
        access_ttl_s: 3600,
        ..AuthConfig::default()
    };
    let e = env_with(long);
    e.acc
        .set_county(CountyId::new(COUNTY).unwrap(), "县")
        .unwrap();
    user(&e.acc, "boss", Role::County, Some(COUNTY));
    let t = login(&e.acc, "boss", "pc-1", T0).unwrap();
    assert_eq!(t.expires_in, 3600);
    drop(e.acc);
    let acc = Accounts::open(&e.db, AuthConfig::default()).unwrap();
    acc.rotate_signing_key(T0 + MIN).unwrap();
    acc.verify(&t.access_token, T0 + 15 * MIN).unwrap();
    let err = acc.verify(&t.access_token, T0 + 16 * MIN).unwrap_err();
    assert_eq!(err.code(), "token_invalid", "{err}");
    assert!(err.to_string().contains("retired"), "{err}");
}

#[test]
fn a_revoked_device_is_refused_at_verify_refresh_and_login() {
    let e = with_org();
    user(&e.acc, "li", Role::Teacher, Some("A001"));
    let lost = login(&e.acc, "li", "phone-lost", T0).unwrap();
    let other = login(&e.acc, "li", "phone-new", T0).unwrap();
    let d = e.acc.revoke_device(&dev("phone-lost"), T0 + MIN).unwrap();
    assert_eq!(d.revoked_ms, Some(T0 + MIN));
    // Revoking again changes nothing.
    assert_eq!(
        e.acc
            .revoke_device(&dev("phone-lost"), T0 + 2 * MIN)
            .unwrap()
            .revoked_ms,
        Some(T0 + MIN)
    );
    let err = e.acc.verify(&lost.access_token, T0 + MIN).unwrap_err();
    assert_eq!(err.code(), "device_revoked", "{err}");
    assert_eq!(
        e.acc
            .refresh(&lost.refresh_token, T0 + MIN)
            .unwrap_err()
            .code(),
        "device_revoked"
    );
    assert_eq!(
        login(&e.acc, "li", "phone-lost", T0 + 2 * MIN)
            .unwrap_err()
            .code(),
        "device_revoked"
    );
    // The user's other device is unaffected.
    e.acc.verify(&other.access_token, T0 + MIN).unwrap();
    e.acc.refresh(&other.refresh_token, T0 + MIN).unwrap();
    assert_eq!(
        e.acc.revoke_device(&dev("nope"), T0).unwrap_err().code(),
        "not_found"
    );
    let devices = e.acc.devices().unwrap();
    assert_eq!(devices.len(), 2);
    assert!(devices.iter().any(|d| d.revoked_ms.is_some()));
    assert!(devices.iter().any(|d| d.revoked_ms.is_none()));
}

#[test]
fn a_device_belongs_to_one_user() {
    let e = with_org();
    user(&e.acc, "li", Role::Teacher, Some("A001"));
    user(&e.acc, "wang", Role::Teacher, Some("B002"));
    login(&e.acc, "li", "phone-1", T0).unwrap();
    let err = login(&e.acc, "wang", "phone-1", T0).unwrap_err();
    assert_eq!(err.code(), "conflict", "{err}");
    assert!(err.to_string().contains("phone-1"), "{err}");
    login(&e.acc, "li", "phone-1", T0 + 1).unwrap();
}

#[test]
fn disabled_users_are_shut_out() {
    let e = with_org();
    let li = user(&e.acc, "li", Role::Teacher, Some("A001"));
    let t = login(&e.acc, "li", "phone-1", T0).unwrap();
    assert!(e.acc.set_user_disabled(&li.id, true).unwrap().disabled);
    assert_eq!(
        e.acc.verify(&t.access_token, T0).unwrap_err().code(),
        "forbidden"
    );
    assert_eq!(
        e.acc.refresh(&t.refresh_token, T0).unwrap_err().code(),
        "forbidden"
    );
    assert_eq!(
        login(&e.acc, "li", "phone-1", T0).unwrap_err().code(),
        "forbidden"
    );
    e.acc.set_user_disabled(&li.id, false).unwrap();
    e.acc.verify(&t.access_token, T0).unwrap();
}

#[test]
fn verify_notes_last_seen_at_most_once_a_minute() {
    let e = with_org();
    user(&e.acc, "li", Role::Teacher, Some("A001"));
    let t = login(&e.acc, "li", "phone-1", T0).unwrap();
    let seen = || e.acc.devices().unwrap()[0].last_seen_ms;
    assert_eq!(seen(), T0);
    e.acc.verify(&t.access_token, T0 + 5_000).unwrap();
    assert_eq!(seen(), T0 + 5_000);
    e.acc.verify(&t.access_token, T0 + 30_000).unwrap();
    assert_eq!(seen(), T0 + 5_000, "within a minute: not written again");
    e.acc.verify(&t.access_token, T0 + 5_000 + MIN).unwrap();
    assert_eq!(seen(), T0 + 5_000 + MIN);
}

// ---- rate limits ---------------------------------------------------------------

#[test]
fn username_limit_triggers_and_resets_with_time() {
    let e = with_org();
    user(&e.acc, "li", Role::Teacher, Some("A001"));
    let try_pw = |pw: &str, now: u64| {
        e.acc.login(
            "li",
            pw,
            &dev("phone-1"),
            None,
            ip(&format!("10.0.0.{}", now % 200)),
            now,
        )
    };
    for i in 0..5 {
        assert_eq!(
            try_pw("wrong password", T0 + i).unwrap_err(),
            AccountsError::InvalidCredentials
        );
    }
    // The sixth attempt is refused even with the right password.
    let err = try_pw(PW, T0 + 5 * MIN).unwrap_err();
    assert_eq!(err.code(), "rate_limited");
    assert_eq!(err.retry_after_s(), Some(10 * 60));
    // Other usernames are not affected.
    user(&e.acc, "wang", Role::Teacher, Some("B002"));
    e.acc
        .login(
            "wang",
            PW,
            &dev("phone-2"),
            None,
            ip("10.0.0.9"),
            T0 + 5 * MIN,
        )
        .unwrap();
    // Once the 15 minutes since the first failure are over, it works again.
    assert_eq!(
        try_pw(PW, T0 + 15 * MIN - 1).unwrap_err().code(),
        "rate_limited"
    );
    try_pw(PW, T0 + 15 * MIN).unwrap();
}

#[test]
fn a_successful_login_resets_the_username_count() {
    let e = with_org();
    user(&e.acc, "li", Role::Teacher, Some("A001"));
    let attempt = |pw: &str| e.acc.login("li", pw, &dev("phone-1"), None, None, T0);
    for _ in 0..4 {
        attempt("nope nope").unwrap_err();
    }
    attempt(PW).unwrap();
    for _ in 0..4 {
        assert_eq!(
            attempt("nope nope").unwrap_err().code(),
            "invalid_credentials"
        );
    }
    attempt(PW).unwrap();
    // Case does not give a fresh counter.
    for _ in 0..5 {
        e.acc
            .login("LI", "nope nope", &dev("phone-1"), None, None, T0)
            .unwrap_err();
    }
    assert_eq!(attempt(PW).unwrap_err().code(), "rate_limited");
}

#[test]
fn ip_limit_counts_every_attempt_and_resets_with_time() {
    let e = with_org();
    for i in 0..3 {
        user(&e.acc, &format!("t{i}"), Role::Teacher, Some("A001"));
    }
    let from = ip("203.0.113.7");
    let mut n = 0;
    // 30 attempts: successes and failures, over several usernames, each
    // under its own limit.
    for i in 0..30u64 {
        let name = format!("t{}", i % 3);
        let now = T0 + i * 100;
        if i % 2 == 0 {
            e.acc
                .login(&name, PW, &dev(&format!("d{}", i % 3)), None, from, now)
                .unwrap();
        } else {
            let _ = e
                .acc
                .login(&format!("ghost{i}"), PW, &dev("dx"), None, from, now);
        }
        n += 1;
    }
    assert_eq!(n, 30);
    let err = e
        .acc
        .login("t0", PW, &dev("d0"), None, from, T0 + 30_000)
        .unwrap_err();
    assert_eq!(err.code(), "rate_limited");
    assert_eq!(err.retry_after_s(), Some(30));
    // Another address is fine; so is this one after the minute.
    e.acc
        .login("t0", PW, &dev("d0"), None, ip("203.0.113.8"), T0 + 30_000)
        .unwrap();
    e.acc
        .login("t0", PW, &dev("d0"), None, from, T0 + MIN)
        .unwrap();
}

// ---- access --------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    OwnSchool,
    SameTownshipSchool,
    OtherTownshipSchool,
    UnregisteredSchool,
    OwnTemplate,
    OtherCountyTemplate,
}

const TARGETS: [Target; 6] = [
    Target::OwnSchool,
    Target::SameTownshipSchool,
    Target::OtherTownshipSchool,
    Target::UnregisteredSchool,
    Target::OwnTemplate,
    Target::OtherCountyTemplate,
];

fn docs_of(target: Target) -> Vec<DocId> {
    let county = |c: &str| vec![DocId::template(&CountyId::new(c).unwrap())];
    match target {
        Target::OwnSchool => DocId::all_for_school(&school("A001")),
        Target::SameTownshipSchool => DocId::all_for_school(&school("B002")),
        Target::OtherTownshipSchool => DocId::all_for_school(&school("C003")),
        Target::UnregisteredSchool => DocId::all_for_school(&school("Z999")),
        Target::OwnTemplate => county(COUNTY),
        Target::OtherCountyTemplate => county(OTHER_COUNTY),
    }
}

/// (read, write) allowed, straight from the rules.
fn expected(role: Role, target: Target) -> (bool, bool) {
    use Target::*;
    match (role, target) {
        (Role::Admin, _) => (false, false),
        (_, UnregisteredSchool | OtherCountyTemplate) => (false, false),
        (Role::Teacher, OwnSchool) => (true, true),
        (Role::Teacher, SameTownshipSchool | OtherTownshipSchool) => (false, false),
        (Role::Teacher, OwnTemplate) => (true, false),
        (Role::Township, OwnSchool | SameTownshipSchool) => (true, true),
        (Role::Township, OtherTownshipSchool) => (false, false),
        (Role::Township, OwnTemplate) => (true, false),
        (Role::County, OwnSchool | SameTownshipSchool | OtherTownshipSchool) => (true, false),
        (Role::County, OwnTemplate) => (true, true),
    }
}

#[test]
fn access_matrix() {
    let e = with_org();
    let units = [
        (Role::Teacher, Some("A001")),
        (Role::Township, Some("T1")),
        (Role::County, Some(COUNTY)),
        (Role::Admin, None),
    ];
    // Every document kind is covered.
    let kinds: std::collections::BTreeSet<DocKind> = TARGETS
        .iter()
        .flat_map(|t| docs_of(*t))
        .map(|d| d.kind())
        .collect();
    assert_eq!(
        kinds.len(),
        DocKind::SCHOOL_KINDS.len() + 1,
        "every school kind and the template"
    );
    let mut checked = 0;
    for (i, (role, unit)) in units.into_iter().enumerate() {
        let name = format!("user{i}");
        user(&e.acc, &name, role, unit);
        let t = login(&e.acc, &name, &format!("dev{i}"), T0).unwrap();
        let caller = e.acc.verify(&t.access_token, T0).unwrap();
        assert_eq!(caller.role, role);
        let policy = e.acc.policy(&caller).unwrap();
        let scope = e.acc.scope(&caller).unwrap();
        for target in TARGETS {
            let (read, doc_write) = expected(role, target);
            for doc in docs_of(target) {
                // The county records its acceptance in schools' review
                // documents (what it may record there is checked per event).
                let write =
                    doc_write || (role == Role::County && read && doc.kind() == DocKind::Review);
                for (access, allowed) in [(Access::Read, read), (Access::Write, write)] {
                    let got = policy.check(&doc, access);
                    assert_eq!(
                        got.is_ok(),
                        allowed,
                        "{role} {target:?} {doc} {access:?}: {got:?}"
                    );
                    if let Err(why) = got {
                        assert!(why.contains(&doc.to_string()), "names the document: {why}");
                        assert!(why.contains(&name), "names the caller: {why}");
                    }
                    checked += 1;
                }
                assert_eq!(
                    scope.read.contains(&doc),
                    read,
                    "{role} {target:?} {doc} scope"
                );
                assert_eq!(
                    scope.write.contains(&doc),
                    write,
                    "{role} {target:?} {doc} scope"
                );
            }
        }
        assert!(scope.write.is_subset(&scope.read));
    }
    assert_eq!(checked, 4 * (4 * DocKind::SCHOOL_KINDS.len() + 2) * 2);
}

#[test]
fn refusals_say_why() {
    let e = with_org();
    user(&e.acc, "li", Role::Teacher, Some("A001"));
    user(&e.acc, "boss", Role::County, Some(COUNTY));
    let caller = |name: &str, d: &str| {
        let t = login(&e.acc, name, d, T0).unwrap();
        e.acc.verify(&t.access_token, T0).unwrap()
    };
    let teacher = e.acc.policy(&caller("li", "p1")).unwrap();
    let county = e.acc.policy(&caller("boss", "p2")).unwrap();
    let template = DocId::template(&CountyId::new(COUNTY).unwrap());
    let why = teacher.check(&template, Access::Write).unwrap_err();
    assert!(why.contains("only county users"), "{why}");
    let why = teacher
        .check(
            &DocId::school(&school("Z999"), DocKind::Books).unwrap(),
            Access::Read,
        )
        .unwrap_err();
    assert!(why.contains("not in this county's school list"), "{why}");
    let why = county
        .check(
            &DocId::school(&school("A001"), DocKind::Books).unwrap(),
            Access::Write,
        )
        .unwrap_err();
    assert!(why.starts_with("county user 'boss'"), "{why}");
    let why = county
        .check(
            &DocId::template(&CountyId::new(OTHER_COUNTY).unwrap()),
            Access::Read,
        )
        .unwrap_err();
    assert!(why.contains(COUNTY) && why.contains(OTHER_COUNTY), "{why}");
}

#[test]
fn policies_follow_the_school_list() {
    let e = with_org();
    user(&e.acc, "town1", Role::Township, Some("T1"));
    let t = login(&e.acc, "town1", "lap-1", T0).unwrap();
    let caller = e.acc.verify(&t.access_token, T0).unwrap();
    let b_books = DocId::school(&school("B002"), DocKind::Books).unwrap();
    assert!(e
        .acc
        .policy(&caller)
        .unwrap()
        .check(&b_books, Access::Write)
        .is_ok());
    // B002 moves to township T2.
    let moved = SCHOOLS_CSV.replace(
        "B002,甲镇中心小学,central,T1,甲镇",
        "B002,甲镇中心小学,central,T2,乙镇",
    );
    assert!(e
        .acc
        .import_schools_csv(moved.as_bytes(), false)
        .unwrap()
        .is_ok());
    assert!(e
        .acc
        .policy(&caller)
        .unwrap()
        .check(&b_books, Access::Write)
        .is_err());
    assert_eq!(
        e.acc.scope(&caller).unwrap().write.len(),
        DocKind::SCHOOL_KINDS.len()
    );
}

#[test]
fn accounts_is_shareable_across_threads() {
    fn check<T: Clone + Send + Sync + 'static>() {}
    check::<Accounts>();
    let e = with_org();
    user(&e.acc, "li", Role::Teacher, Some("A001"));
    let t = login(&e.acc, "li", "phone-1", T0).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let acc = e.acc.clone();
            let token = t.access_token.clone();
            std::thread::spawn(move || acc.verify(&token, T0 + i * MIN).unwrap())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().username, "li");
    }
}

#[test]
fn concurrent_refreshes_with_one_token_let_only_one_through() {
    // Without a grace, exactly one of them gets new tokens.
    let e = env_with(AuthConfig {
        refresh_grace_s: 0,
        ..AuthConfig::default()
    });
    e.acc
        .set_county(CountyId::new(COUNTY).unwrap(), "某某县")
        .unwrap();
    e.acc
        .import_schools_csv(SCHOOLS_CSV.as_bytes(), false)
        .unwrap();
    user(&e.acc, "li", Role::Teacher, Some("A001"));
    let t = login(&e.acc, "li", "phone-1", T0).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let acc = e.acc.clone();
            let rt = t.refresh_token.clone();
            std::thread::spawn(move || acc.refresh(&rt, T0 + MIN).is_ok())
        })
        .collect();
    let ok = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|ok| *ok)
        .count();
    assert_eq!(ok, 1);
}

#[test]
fn concurrent_refreshes_within_the_grace_leave_one_live_token() {
    // With the grace, each is taken for a retry after a lost reply: all get
    // tokens, but only the last refresh token issued works.
    let e = with_org();
    user(&e.acc, "li", Role::Teacher, Some("A001"));
    let t = login(&e.acc, "li", "phone-1", T0).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let acc = e.acc.clone();
            let rt = t.refresh_token.clone();
            std::thread::spawn(move || acc.refresh(&rt, T0 + MIN).unwrap())
        })
        .collect();
    let tokens: Vec<Tokens> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let refresh_tree = e.db.open_tree("accounts.refresh").unwrap();
    assert_eq!(refresh_tree.len(), 1);
    let live: Vec<&Tokens> = tokens
        .iter()
        .filter(|t| {
            refresh_tree
                .contains_key(hash_of(&t.refresh_token))
                .unwrap()
        })
        .collect();
    assert_eq!(live.len(), 1);
    e.acc.refresh(&live[0].refresh_token, T0 + 2 * MIN).unwrap();
}

// ---- refresh grace (lost replies) and reuse of replaced tokens --------------

fn hash_of(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

fn assert_refreshed_elsewhere(err: &AccountsError) {
    assert_eq!(err.code(), "token_invalid", "{err}");
    let text = err.to_string();
    assert!(text.contains("refreshed elsewhere"), "{text}");
    assert!(text.contains("sign in again"), "{text}");
}

#[test]
fn a_lost_reply_is_recovered_with_the_old_token_within_the_grace() {
    let e = with_org();
    assert_eq!(e.acc.config().refresh_grace_s, 600);
    user(&e.acc, "li", Role::Teacher, Some("A001"));
    let t = login(&e.acc, "li", "phone-1", T0).unwrap();
    // The server rotates; the reply never reaches the phone.
    let lost = e.acc.refresh(&t.refresh_token, T0 + 20 * MIN).unwrap();
    // The phone retries with the token it holds, twice (2G is bad), the
    // last time just before the grace ends.
    let retry = e.acc.refresh(&t.refresh_token, T0 + 21 * MIN).unwrap();
    let again = e.acc.refresh(&t.refresh_token, T0 + 30 * MIN - 1).unwrap();
    assert_ne!(retry.refresh_token, lost.refresh_token);
    assert_ne!(again.refresh_token, retry.refresh_token);
    let caller = e.acc.verify(&again.access_token, T0 + 30 * MIN).unwrap();
    assert_eq!(caller.device, dev("phone-1"));
    // Still hashes only, and one current token per device.
    let refresh_tree = e.db.open_tree("accounts.refresh").unwrap();
    let retired_tree = e.db.open_tree("accounts.retired").unwrap();
    assert_eq!(refresh_tree.len(), 1);
    assert!(refresh_tree
        .contains_key(hash_of(&again.refresh_token))
        .unwrap());
    for tree in [&refresh_tree, &retired_tree] {
        for token in [&t, &lost, &retry, &again] {
            assert!(!tree.contains_key(&token.refresh_token).unwrap());
        }
    }
    assert!(retired_tree
        .contains_key(hash_of(&t.refresh_token))
        .unwrap());
    // The newest token works as usual.
    let next = e.acc.refresh(&again.refresh_token, T0 + 31 * MIN).unwrap();
    e.acc.verify(&next.access_token, T0 + 31 * MIN).unwrap();
}

#[test]
fn the_old_token_after_the_new_one_was_used_is_refused_and_ends_the_session() {
    let e = with_org();
    user(&e.acc, "li", Role::Teacher, Some("A001"));
    let t = login(&e.acc, "li", "phone-1", T0).unwrap();
    let t2 = e.acc.refresh(&t.refresh_token, T0 + MIN).unwrap();
    // The new token is used (well within the old one's grace).
    let t3 = e.acc.refresh(&t2.refresh_token, T0 + 2 * MIN).unwrap();
    e.acc.verify(&t3.access_token, T0 + 2 * MIN).unwrap();
    // Someone presents the old one: refused, and the device is signed out.
    let err = e.acc.refresh(&t.refresh_token, T0 + 3 * MIN).unwrap_err();
    assert_refreshed_elsewhere(&err);
    let err = e.acc.verify(&t3.access_token, T0 + 3 * MIN).unwrap_err();
    assert_eq!(err.code(), "token_invalid", "{err}");
    assert!(err.to_string().contains("signed out"), "{err}");
    let err = e.acc.refresh(&t3.refresh_token, T0 + 3 * MIN).unwrap_err();
    assert_refreshed_elsewhere(&err);
    // The token in its grace (t2's) is no way back in either.
    let err = e.acc.refresh(&t2.refresh_token, T0 + 3 * MIN).unwrap_err();
    assert_refreshed_elsewhere(&err);
    let refresh_tree = e.db.open_tree("accounts.refresh").unwrap();
    assert_eq!(refresh_tree.len(), 0);
    // Signing in again with the password works, and the old family of
    // tokens cannot end the new session.
    let t4 = login(&e.acc, "li", "phone-1", T0 + 4 * MIN).unwrap();
    let err = e.acc.refresh(&t.refresh_token, T0 + 5 * MIN).unwrap_err();
    assert_eq!(err.code(), "token_invalid", "{err}");
    e.acc.verify(&t4.access_token, T0 + 5 * MIN).unwrap();
    e.acc.refresh(&t4.refresh_token, T0 + 5 * MIN).unwrap();
}

#[test]
fn a_superseded_token_from_a_lost_reply_is_refused_and_ends_the_session() {
    // Whoever caught the "lost" reply and uses it later is a second holder.
    let e = with_org();
    user(&e.acc, "li", Role::Teacher, Some("A001"));
    let t = login(&e.acc, "li", "phone-1", T0).unwrap();
    let caught = e.acc.refresh(&t.refresh_token, T0 + MIN).unwrap();
    let phone = e.acc.refresh(&t.refresh_token, T0 + 2 * MIN).unwrap();
    let err = e
        .acc
        .refresh(&caught.refresh_token, T0 + 3 * MIN)
        .unwrap_err();
    assert_refreshed_elsewhere(&err);
    assert_eq!(
        e.acc
            .verify(&phone.access_token, T0 + 3 * MIN)
            .unwrap_err()
            .code(),
        "token_invalid"
    );
    assert_refreshed_elsewhere(
        &e.acc
            .refresh(&phone.refresh_token, T0 + 3 * MIN)
            .unwrap_err(),
    );
}

#[test]
fn the_old_token_after_the_grace_is_refused() {
    let e = with_org();
    user(&e.acc, "li", Role::Teacher, Some("A001"));
    let t = login(&e.acc, "li", "phone-1", T0).unwrap();
    let t2 = e.acc.refresh(&t.refresh_token, T0 + MIN).unwrap();
    // Exactly when the 600 s grace ends, with the new token still unused.
    let err = e
        .acc
        .refresh(&t.refresh_token, T0 + MIN + 600_000)
        .unwrap_err();
    assert_refreshed_elsewhere(&err);
    // A retired token ends the session here too.
    assert_eq!(
        e.acc
            .verify(&t2.access_token, T0 + 12 * MIN)
            .unwrap_err()
            .code(),
        "token_invalid"
    );
    assert!(e.acc.refresh(&t2.refresh_token, T0 + 12 * MIN).is_err());
}

#[test]
fn the_grace_is_configurable_and_ends_with_the_old_tokens_expiry() {
    let e = env_with(AuthConfig {
        refresh_grace_s: 60,
        refresh_ttl_s: 3600,
        ..AuthConfig::default()
    });
    e.acc
        .set_county(CountyId::new(COUNTY).unwrap(), "县")
        .unwrap();
    user(&e.acc, "boss", Role::County, Some(COUNTY));
    let t = login(&e.acc, "boss", "pc-1", T0).unwrap();
    e.acc.refresh(&t.refresh_token, T0 + MIN).unwrap();
    e.acc.refresh(&t.refresh_token, T0 + 2 * MIN - 1).unwrap();
    assert_refreshed_elsewhere(&e.acc.refresh(&t.refresh_token, T0 + 2 * MIN).unwrap_err());
    // A token refreshed 30 s before its own expiry has only those 30 s.
    let t = login(&e.acc, "boss", "pc-1", T0 + 10 * MIN).unwrap();
    let expiry = T0 + 10 * MIN + 3_600_000;
    e.acc.refresh(&t.refresh_token, expiry - 30_000).unwrap();
    e.acc.refresh(&t.refresh_token, expiry - 1).unwrap();
    assert_refreshed_elsewhere(&e.acc.refresh(&t.refresh_token, expiry).unwrap_err());
}

#[test]
fn logout_also_ends_the_token_in_its_grace() {
    let e = with_org();
    user(&e.acc, "li", Role::Teacher, Some("A001"));
    let t = login(&e.acc, "li", "phone-1", T0).unwrap();
    let t2 = e.acc.refresh(&t.refresh_token, T0 + MIN).unwrap();
    let caller = e.acc.verify(&t2.access_token, T0 + MIN).unwrap();
    e.acc.logout(&caller, T0 + 2 * MIN).unwrap();
    let err = e.acc.refresh(&t.refresh_token, T0 + 3 * MIN).unwrap_err();
    assert_eq!(err.code(), "token_invalid", "{err}");
    assert_eq!(e.db.open_tree("accounts.retired").unwrap().len(), 0);
}

#[test]
fn a_device_remembers_a_bounded_number_of_retired_tokens() {
    let e = with_org();
    user(&e.acc, "li", Role::Teacher, Some("A001"));
    let first = login(&e.acc, "li", "phone-1", T0).unwrap();
    let mut t = first.clone();
    for i in 1..=40 {
        t = e.acc.refresh(&t.refresh_token, T0 + i * MIN).unwrap();
    }
    let retired_tree = e.db.open_tree("accounts.retired").unwrap();
    // 32 retired and the one in its grace.
    assert_eq!(retired_tree.len(), 33);
    // The first token is forgotten: merely unknown, nothing ended.
    let err = e
        .acc
        .refresh(&first.refresh_token, T0 + 41 * MIN)
        .unwrap_err();
    assert_eq!(err.code(), "token_invalid");
    assert!(!err.to_string().contains("refreshed elsewhere"), "{err}");
    e.acc.verify(&t.access_token, T0 + 41 * MIN).unwrap();
}

#[test]
fn device_records_from_before_the_grace_still_refresh() {
    let e = with_org();
    let li = user(&e.acc, "li", Role::Teacher, Some("A001"));
    // A record as earlier versions wrote it: no `previous`, no `retired`.
    let token = "ab".repeat(32);
    let old = serde_json::json!({
        "id": "phone-1", "user": li.id, "name": null, "first_seen_ms": T0,
        "last_seen_ms": T0, "revoked_ms": null, "refresh_hash": hash_of(&token),
        "refresh_expires_ms": T0 + 24 * 60 * MIN, "session": 0,
    });
    e.db.open_tree("accounts.devices")
        .unwrap()
        .insert("phone-1", serde_json::to_vec(&old).unwrap())
        .unwrap();
    e.db.open_tree("accounts.refresh")
        .unwrap()
        .insert(hash_of(&token), "phone-1")
        .unwrap();
    let t2 = e.acc.refresh(&token, T0 + MIN).unwrap();
    // And the grace applies from then on.
    let t3 = e.acc.refresh(&token, T0 + 2 * MIN).unwrap();
    assert_ne!(t2.refresh_token, t3.refresh_token);
    e.acc.verify(&t3.access_token, T0 + 2 * MIN).unwrap();
}
