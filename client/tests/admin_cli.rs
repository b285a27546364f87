//! The admin command line against a fake server: sign-in and sign-out
//! around each command, tables, an import's row errors, and a backup that
//! is never left half-written under its final name.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Parser;
use common::*;
use serde_json::json;
use tpsync_client::admin_cli::{run, AdminArgs};
use tpsync_client::ClientError;

#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    admin: AdminArgs,
}

const BACKUP: &[u8] = b"TPSYNC-BACKUP\x00\x01\x02 the whole data directory";

fn admin_server(cut_backup: Arc<AtomicBool>) -> FakeServer {
    FakeServer::start(move |req| {
        let path = req.path.as_str();
        if path == "/v1/setup" {
            let b: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
            return Reply::json(
                201,
                json!({"id": "u0", "username": b["username"], "role": "admin", "unit": null}),
            );
        }
        if path == "/v1/auth/login" {
            let b: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
            if (b["username"].as_str(), b["password"].as_str()) != (Some("root"), Some("pw")) {
                return Reply::problem(401, "invalid_credentials", "wrong user name or password");
            }
            assert!(b["device_id"].as_str().unwrap().starts_with("admin-cli-"));
            return Reply::json(
                200,
                json!({"access_token": TOKEN, "expires_in": 900, "refresh_token": "r",
                       "device_id": b["device_id"],
                       "user": {"id": "u0", "username": "root", "role": "admin", "unit": null}}),
            );
        }
        if !req.authorized() {
            return Reply::problem(401, "unauthorized", "sign in first");
        }
        match (req.method.as_str(), path) {
            ("POST", "/v1/auth/logout") => Reply::Answer {
                status: 204,
                content_type: "text/plain",
                headers: vec![],
                body: vec![],
            },
            ("GET", "/v1/admin/users") => Reply::json(
                200,
                json!([{"id": "u0", "username": "root", "role": "admin", "unit": null},
                       {"id": "u1", "username": "李明", "role": "teacher", "unit": SCHOOL,
                        "created_ms": 1_740_808_800_000u64, "disabled": true}]),
            ),
            ("POST", "/v1/admin/schools/import?dry_run=false") => {
                assert_eq!(req.header("content-type"), Some("text/csv; charset=utf-8"));
                Reply::Answer {
                    status: 422,
                    content_type: "application/problem+json",
                    headers: vec![],
                    body: json!({"type": "https://tpsync.dev/problems/invalid", "code": "invalid",
                        "status": 422, "detail": "2 rows have errors; nothing was imported",
                        "townships_created": 0, "schools_created": 0, "schools_updated": 0,
                        "errors": [{"line": 3, "column": "code", "message": "not a school code: \"43x\""},
                                   {"line": 5, "column": "name", "message": "empty"}]})
                    .to_string()
                    .into_bytes(),
                }
            }
            ("POST", "/v1/admin/schools/import?dry_run=true") => Reply::json(
                200,
                json!({"townships_created": 2, "schools_created": 14, "schools_updated": 0, "errors": []}),
            ),
            ("GET", "/v1/admin/schools") => Reply::json(
                200,
                json!([{"code": SCHOOL, "name": "红星小学", "school_type": "primary",
                        "township": "T01", "enrollment": [30, 28, 31, 25, 27, 30, 0, 0, 0]}]),
            ),
            ("GET", "/v1/admin/devices") => Reply::json(
                200,
                json!([{"id": "phone-1", "user": "u1", "name": "李老师的手机", "first_seen_ms": 0,
                        "last_seen_ms": 1_740_808_800_000u64, "revoked_ms": null}]),
            ),
            ("POST", "/v1/admin/devices/phone-1/revoke") => {
                Reply::json(200, json!({"id": "phone-1", "revoked": true}))
            }
            ("GET", "/v1/admin/backup") if cut_backup.load(Ordering::SeqCst) => Reply::CutMidBody {
                content_type: "application/octet-stream",
                body: BACKUP.to_vec(),
                send: 10,
            },
            ("GET", "/v1/admin/backup") => Reply::Answer {
                status: 200,
                content_type: "application/octet-stream",
                headers: vec![],
                body: BACKUP.to_vec(),
            },
            _ => Reply::problem(404, "not_found", "no such route"),
        }
    })
}

fn admin(server: &FakeServer, args: &[&str]) -> (Result<(), ClientError>, String) {
    let mut argv = vec![
        "tpsync-admin",
        "--server",
        &server.base,
        "--user",
        "root",
        "--password",
        "pw",
    ];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).unwrap();
    let mut out = Vec::new();
    let result = run(cli.admin, &mut out);
    (result, String::from_utf8(out).unwrap())
}

#[test]
fn commands_sign_in_run_and_sign_out() {
    let server = admin_server(Arc::default());
    let (r, out) = admin(&server, &["list-users"]);
    r.unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "ID  USERNAME  ROLE     UNIT        CREATED                  DISABLED"
    );
    assert_eq!(
        lines[1],
        "u0  root      admin    -           -                        no"
    );
    assert_eq!(
        lines[2],
        format!("u1  李明      teacher  {SCHOOL}  2025-03-01 14:00 +08:00  yes")
    );
    let paths = server.paths();
    assert_eq!(
        paths,
        [
            "POST /v1/auth/login",
            "GET /v1/admin/users",
            "POST /v1/auth/logout"
        ]
    );

    let (r, out) = admin(&server, &["list-schools"]);
    r.unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "CODE        NAME      TYPE     TOWNSHIP  STUDENTS"
    );
    assert_eq!(
        lines[1],
        format!("{SCHOOL}  红星小学  primary  T01       171")
    );
    let (r, out) = admin(&server, &["list-devices"]);
    r.unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "ID       NAME          USER  LAST SEEN                REVOKED"
    );
    assert_eq!(
        lines[1],
        "phone-1  李老师的手机  u1    2025-03-01 14:00 +08:00  -"
    );

    let (r, out) = admin(&server, &["revoke-device", "phone-1"]);
    r.unwrap();
    assert!(out.contains("Device phone-1 revoked"), "{out}");

    // Setup needs no sign-in.
    let (r, out) = admin(
        &server,
        &[
            "setup",
            "--code",
            "430123",
            "--username",
            "admin",
            "--password",
            "s3cret",
        ],
    );
    r.unwrap();
    assert!(out.starts_with("Administrator admin created"), "{out}");

    // The admin's password may also follow the command.
    let cli = Cli::try_parse_from([
        "x",
        "list-users",
        "--server",
        &server.base,
        "--user",
        "root",
        "--password",
        "wrong",
    ])
    .unwrap();
    let e = run(cli.admin, &mut Vec::new()).unwrap_err();
    assert_eq!(e.code(), Some("invalid_credentials"));
}

#[test]
fn an_import_prints_each_row_error() {
    let server = admin_server(Arc::default());
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("schools.csv");
    std::fs::write(&csv, "code,name\n43x,一小\n").unwrap();
    let (r, out) = admin(&server, &["import-schools", csv.to_str().unwrap()]);
    let e = r.unwrap_err();
    assert_eq!(e.status(), Some(422));
    assert!(
        out.contains("The file has 2 error(s); nothing was imported:"),
        "{out}"
    );
    assert!(
        out.contains("  line 3, column code: not a school code: \"43x\""),
        "{out}"
    );
    assert!(out.contains("  line 5, column name: empty"), "{out}");

    let (r, out) = admin(
        &server,
        &["import-schools", csv.to_str().unwrap(), "--dry-run"],
    );
    r.unwrap();
    assert!(out.contains("nothing was imported"), "{out}");
    assert!(
        out.contains("2 township(s) created, 0 township(s) renamed, 14 school(s) created"),
        "{out}"
    );

    let (r, _) = admin(&server, &["import-schools", "/nonexistent/x.csv"]);
    assert!(matches!(r, Err(ClientError::Io { .. })), "{r:?}");
}

#[test]
fn a_backup_is_written_whole_or_not_at_all() {
    let cut = Arc::new(AtomicBool::new(false));
    let server = admin_server(cut.clone());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("county.backup");
    let (r, out) = admin(&server, &["backup", "--out", file.to_str().unwrap()]);
    r.unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), BACKUP);
    assert!(out.contains("Backup written to"), "{out}");

    // Cut mid-way: the earlier backup stays, and no partial file is left.
    cut.store(true, Ordering::SeqCst);
    let (r, _) = admin(&server, &["backup", "--out", file.to_str().unwrap()]);
    let e = r.unwrap_err();
    assert!(matches!(e, ClientError::ConnectionLost(_)), "{e:?}");
    assert_eq!(std::fs::read(&file).unwrap(), BACKUP);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["county.backup"]);
    let fresh = dir.path().join("fresh.backup");
    let (r, _) = admin(&server, &["backup", "--out", fresh.to_str().unwrap()]);
    assert!(r.is_err());
    assert!(!fresh.exists());
}

#[test]
fn a_missing_password_is_a_clear_error() {
    let server = admin_server(Arc::default());
    let cli = Cli::try_parse_from([
        "x",
        "--server",
        &server.base,
        "--user",
        "root",
        "list-users",
    ])
    .unwrap();
    if cli.admin.password.is_some() {
        // TPSYNC_ADMIN_PASSWORD is set in this environment; nothing to check.
        return;
    }
    let e = run(cli.admin, &mut Vec::new()).unwrap_err();
    assert!(
        matches!(&e, ClientError::InvalidInput(m) if m.contains("TPSYNC_ADMIN_PASSWORD")),
        "{e:?}"
    );
    assert!(server.paths().is_empty());
}
