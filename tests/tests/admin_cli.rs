//! The administrator's command line as processes against the real server:
//! `tpsync admin setup` (with the code the server printed), `create-county`,
//! `import-schools` (a bad file: every row error printed with its line,
//! exit 1, nothing imported; a dry run; then the good file, twice),
//! `list-schools`, `create-user`, `list-users`, `list-devices`,
//! `revoke-device` (the phone is refused at once) and `rotate-key` (tokens
//! signed before it keep working; new ones use the printed key). Errors
//! print the server's problem detail and exit 1.

use std::process::Output;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use tpsync_tests::county::{self, school_docs};
use tpsync_tests::http::expect_problem;
use tpsync_tests::phone::Phone;
use tpsync_tests::server::{tpsync, TestServer};

const ROOT: &str = "root";
const ROOT_PW: &str = "县里的管理员-2025";
const USER_PW: &str = "teacher-password-1";

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self, what: &str) -> String {
        assert_eq!(
            self.code,
            Some(0),
            "{what} failed:\n{}{}",
            self.stdout,
            self.stderr
        );
        self.stdout
    }

    /// Exit 1 with a message on stderr; returns stdout and stderr.
    fn fails(self, what: &str) -> (String, String) {
        assert_eq!(
            self.code,
            Some(1),
            "{what} should fail with exit 1:\n{}{}",
            self.stdout,
            self.stderr
        );
        assert!(
            self.stderr.starts_with("tpsync: ") && self.stderr.len() > 10,
            "{what}: an error message on stderr: {:?}",
            self.stderr
        );
        (self.stdout, self.stderr)
    }
}

/// `tpsync admin ARGS` against `server`, signed in as `root` (password in
/// the environment, as the docs recommend).
fn admin(server: &TestServer, args: &[&str]) -> Run {
    admin_as(server, ROOT, ROOT_PW, args)
}

fn admin_as(server: &TestServer, user: &str, password: &str, args: &[&str]) -> Run {
    let out: Output = tpsync()
        .arg("admin")
        .args(args)
        .env("TPSYNC_SERVER", &server.url)
        .env("TPSYNC_ADMIN_USER", user)
        .env("TPSYNC_ADMIN_PASSWORD", password)
        .output()
        .expect("run tpsync admin");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The number printed just before `what` ("4 school(s) created").
fn count(out: &str, what: &str) -> u64 {
    let at = out
        .find(what)
        .unwrap_or_else(|| panic!("{what:?} not in the output:\n{out}"));
    out[..at]
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number before {what:?}:\n{out}"))
}

/// A fresh server with its administrator set up through the command line.
fn set_up() -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let code = server.setup_code.clone().expect("a setup code");
    let (_, err) = admin(
        &server,
        &[
            "setup",
            "--code",
            "WRONG-CODE-0000",
            "--username",
            ROOT,
            "--password",
            ROOT_PW,
        ],
    )
    .fails("setup with a wrong code");
    println!("wrong setup code: {err}");
    let out = admin(
        &server,
        &[
            "setup",
            "--code",
            &code,
            "--username",
            ROOT,
            "--password",
            ROOT_PW,
        ],
    )
    .ok("setup");
    assert!(
        out.contains(&format!("Administrator {ROOT} created")),
        "{out}"
    );
    let (_, err) = admin(
        &server,
        &[
            "setup",
            "--code",
            &code,
            "--username",
            "root2",
            "--password",
            ROOT_PW,
        ],
    )
    .fails("a second setup");
    assert!(err.contains("exists already"), "{err}");
    let out = admin(
        &server,
        &[
            "create-county",
            "--code",
            county::COUNTY_CODE,
            "--name",
            county::COUNTY_NAME,
        ],
    )
    .ok("create-county");
    assert!(
        out.contains(&format!(
            "County {} ({}) created",
            county::COUNTY_NAME,
            county::COUNTY_CODE
        )),
        "{out}"
    );
    (dir, server)
}

/// A school list with four wrong rows among good ones.
const BAD_CSV: &str = "\
学校标识码,学校名称,学校类型,乡镇代码,乡镇名称,一年级
4301230011,青山镇中心小学,完全小学,430123101,青山镇,30
4301230012.5,青山村教学点,教学点,430123101,青山镇,8
4301230021,,完全小学,430123102,白水乡,25
4301230022,白水乡初级中学,高中,430123102,白水乡,0
4301230011,青山镇中心小学（重复）,完全小学,430123101,青山镇,30
4301230031,东岭教学点,教学点,430123103,东岭乡,-4
";

#[test]
fn setup_county_schools_and_users() {
    let (dir, server) = set_up();

    // A wrong administrator password: the server's detail, exit 1.
    let (_, err) = admin_as(&server, ROOT, "not-the-password", &["list-users"])
        .fails("a wrong admin password");
    assert!(err.contains("wrong username or password"), "{err}");

    // A bad school list: every bad row reported by line, nothing imported.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, BAD_CSV).unwrap();
    let (out, err) = admin(&server, &["import-schools", bad.to_str().unwrap()])
        .fails("importing a bad school list");
    println!("{out}{err}");
    assert!(out.contains("nothing was imported"), "{out}");
    for (line, word) in [
        (3, "学校标识码"),
        (4, "学校名称"),
        (5, "学校类型"),
        (6, "学校标识码"),
        (7, "一年级"),
    ] {
        let l = out
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("line {line},")))
            .unwrap_or_else(|| panic!("no error printed for line {line}:\n{out}"));
        assert!(l.contains(word), "line {line} names column {word}: {l}");
    }
    assert!(
        !out.contains("line 2,"),
        "the good row 2 is not reported:\n{out}"
    );
    assert!(err.contains("nothing was imported"), "{err}");
    let out = admin(&server, &["list-schools"]).ok("list-schools");
    assert!(out.contains("No schools yet"), "nothing imported: {out}");

    // The good file: a dry run writes nothing, then the import.
    let good = dir.path().join("schools.csv");
    std::fs::write(&good, county::schools_csv()).unwrap();
    let out = admin(
        &server,
        &["import-schools", good.to_str().unwrap(), "--dry-run"],
    )
    .ok("dry run");
    assert!(out.contains("Dry run"), "{out}");
    assert_eq!(
        (
            count(&out, "township(s) created"),
            count(&out, "school(s) created")
        ),
        (2, 4),
        "{out}"
    );
    assert!(admin(&server, &["list-schools"])
        .ok("list")
        .contains("No schools yet"));
    let out = admin(&server, &["import-schools", good.to_str().unwrap()]).ok("import");
    assert_eq!(
        (
            count(&out, "township(s) created"),
            count(&out, "school(s) created"),
            count(&out, "school(s) updated")
        ),
        (2, 4, 0),
        "{out}"
    );
    let out = admin(&server, &["import-schools", good.to_str().unwrap()]).ok("import again");
    assert_eq!(
        (
            count(&out, "school(s) created"),
            count(&out, "school(s) updated")
        ),
        (0, 4),
        "{out}"
    );
    let out = admin(&server, &["list-schools"]).ok("list-schools");
    for (code, name, _, _) in county::SCHOOLS {
        let row = out
            .lines()
            .find(|l| l.contains(code))
            .unwrap_or_else(|| panic!("{code} not listed:\n{out}"));
        assert!(row.contains(name), "{row}");
    }
    assert!(out.contains("(4 in all)"), "{out}");

    // Users of every role.
    let users = [
        ("li", "teacher", Some(county::SCHOOLS[1].0)),
        ("wang", "township", Some(county::TOWNSHIPS[0].0)),
        ("张科长", "county", Some(county::COUNTY_CODE)),
        ("ops", "admin", None),
    ];
    for (name, role, unit) in users {
        let mut args = vec![
            "create-user",
            "--username",
            name,
            "--password",
            USER_PW,
            "--role",
            role,
        ];
        if let Some(u) = unit {
            args.extend(["--unit", u]);
        }
        let out = admin(&server, &args).ok("create-user");
        assert!(out.contains(&format!("User {name} ({role}")), "{out}");
    }
    let (_, err) = admin(
        &server,
        &[
            "create-user",
            "--username",
            "LI",
            "--password",
            USER_PW,
            "--role",
            "teacher",
            "--unit",
            county::SCHOOLS[0].0,
        ],
    )
    .fails("a username taken (case-insensitively)");
    println!("taken: {err}");
    let (_, err) = admin(
        &server,
        &[
            "create-user",
            "--username",
            "zhao",
            "--password",
            USER_PW,
            "--role",
            "teacher",
            "--unit",
            county::UNREGISTERED_SCHOOL,
        ],
    )
    .fails("a teacher of an unknown school");
    println!("unknown school: {err}");
    let (_, err) = admin(
        &server,
        &[
            "create-user",
            "--username",
            "short",
            "--password",
            "123",
            "--role",
            "teacher",
            "--unit",
            county::SCHOOLS[0].0,
        ],
    )
    .fails("a short password");
    assert!(err.contains("too short"), "{err}");

    let out = admin(&server, &["list-users"]).ok("list-users");
    for (name, role, unit) in users {
        let row = out
            .lines()
            .find(|l| l.split_whitespace().any(|w| w == name))
            .unwrap_or_else(|| panic!("{name} not listed:\n{out}"));
        assert!(row.contains(role), "{row}");
        if let Some(u) = unit {
            assert!(row.contains(u), "{row}");
        }
    }
    assert!(out.contains(ROOT), "{out}");
    assert!(out.contains("(5 in all)"), "{out}");
    assert!(!out.contains("zhao") && !out.contains("short"), "{out}");

    // The second administrator can use the command line on this machine
    // too, and a non-administrator is told only administrators may.
    let out = admin_as(&server, "ops", USER_PW, &["list-users"])
        .ok("a second administrator on the same machine");
    assert!(out.contains("(5 in all)"), "{out}");
    // A non-administrator cannot use the admin commands.
    let (_, err) = admin_as(&server, "li", USER_PW, &["list-users"]).fails("a teacher as admin");
    assert!(err.contains("administrator"), "{err}");
}

#[test]
fn devices_revocation_and_key_rotation() {
    let (dir, server) = set_up();
    let good = dir.path().join("schools.csv");
    std::fs::write(&good, county::schools_csv()).unwrap();
    admin(&server, &["import-schools", good.to_str().unwrap()]).ok("import");
    admin(
        &server,
        &[
            "create-user",
            "--username",
            "li",
            "--password",
            USER_PW,
            "--role",
            "teacher",
            "--unit",
            county::SCHOOLS[0].0,
        ],
    )
    .ok("create-user");

    // Two phones of the teacher sign in and sync.
    let client = server.client();
    let login = |device: &str| {
        client
            .login(
                "li",
                USER_PW,
                &device.parse().unwrap(),
                Some("李老师的手机"),
            )
            .unwrap()
    };
    let s0 = county::school(0);
    let mut lost = Phone::new(login("phone-li-1"));
    let mut kept = Phone::new(login("phone-li-2"));
    lost.add_book(&s0, 1);
    lost.sync(&client, &school_docs(0)).expect("sync");
    kept.sync(&client, &school_docs(0)).expect("sync");

    let out = admin(&server, &["list-devices"]).ok("list-devices");
    for d in ["phone-li-1", "phone-li-2", "admin-cli-"] {
        assert!(out.contains(d), "{d} listed:\n{out}");
    }
    assert!(out.contains("李老师的手机"), "device names shown:\n{out}");

    // Revoke the lost phone: refused at once, the other phone unaffected.
    let out = admin(&server, &["revoke-device", "phone-li-1"]).ok("revoke-device");
    assert!(out.contains("phone-li-1 revoked"), "{out}");
    lost.add_book(&s0, 2);
    expect_problem(lost.sync(&client, &school_docs(0)), 401, "device_revoked");
    kept.sync(&client, &school_docs(0))
        .expect("the other phone still syncs");
    let out = admin(&server, &["list-devices"]).ok("list-devices");
    let header = out.lines().next().unwrap();
    assert!(header.contains("REVOKED"), "a revoked column: {header}");
    // Each row shows when the device was first and last seen; the revoked
    // one also when it was revoked.
    let dates = |device: &str| {
        let row = out.lines().find(|l| l.contains(device)).unwrap();
        row.matches("+08:00").count()
    };
    assert_eq!(
        dates("phone-li-1"),
        dates("phone-li-2") + 1,
        "the revoked phone shows when it was revoked:\n{out}"
    );
    let (_, err) = admin(&server, &["revoke-device", "no-such-phone"]).fails("revoke unknown");
    assert!(err.contains("no device"), "{err}");

    // Rotate the signing key: old tokens keep working, new ones use it.
    let old_token = kept.tokens.access_token.clone();
    let out = admin(&server, &["rotate-key"]).ok("rotate-key");
    let kid = out
        .split_whitespace()
        .skip_while(|w| *w != "key")
        .nth(1)
        .unwrap_or_else(|| panic!("no key id printed: {out}"))
        .to_owned();
    client
        .me(&old_token)
        .expect("a token signed before the rotation still works");
    let fresh = login("phone-li-3");
    let header = fresh.access_token.split('.').next().unwrap();
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    assert_eq!(
        header["kid"], kid,
        "new tokens are signed with the printed key"
    );
}
