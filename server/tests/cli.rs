//! `tpsync local` end to end, on real sled stores in a temporary
//! data directory: the demo (record offline, sync, bring a new phone up to
//! date), listing, a record's history, bundles between stores that never
//! synced, and clear errors for bad input.

use std::path::Path;
use std::process::{Command, Output};

fn tpsync(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tpsync"))
        .arg("local")
        .arg("--data")
        .arg(data)
        .args(args)
        .output()
        .expect("run tpsync")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "tpsync failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const SCHOOL: &str = "4301230001";

#[test]
fn demo_list_history_bundle_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let out = ok(tpsync(data, &["demo", "--school", SCHOOL]));
    assert!(out.contains("phone → township sync"), "{out}");
    assert!(out.contains("The township now holds 2010 books"), "{out}");
    assert!(out.contains("Every document validates"), "{out}");

    // The second phone got everything from the township.
    let books = ok(tpsync(
        data,
        &[
            "list", "--store", "phone-2", "--school", SCHOOL, "--kind", "books", "--limit", "3",
        ],
    ));
    let lines: Vec<serde_json::Value> = books
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    let id = lines[0]["id"].as_str().unwrap().to_owned();
    assert!(lines[0]["record"]["reg_no"]
        .as_str()
        .unwrap()
        .starts_with("TS"));

    // The book's history: created, then shelved (上架), with who and which device.
    let hist = ok(tpsync(
        data,
        &[
            "history", "--store", "township", "--school", SCHOOL, "--kind", "books", "--id", &id,
        ],
    ));
    let steps: Vec<serde_json::Value> = hist
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(steps[0]["field"].is_null(), "creation first: {hist}");
    let shelf = steps
        .iter()
        .find(|s| s["field"] == "shelf")
        .expect("shelved");
    assert_eq!(shelf["author"]["d"], "phone");

    // A bundle carries the school to a laptop that never synced; twice is harmless.
    let file = data.join("school.tpsync");
    ok(tpsync(
        data,
        &[
            "bundle",
            "export",
            "--store",
            "township",
            "--school",
            SCHOOL,
            "--out",
            file.to_str().unwrap(),
        ],
    ));
    let first = ok(tpsync(
        data,
        &[
            "bundle",
            "import",
            "--store",
            "laptop",
            "--file",
            file.to_str().unwrap(),
        ],
    ));
    // Five documents carry records; the review and attachments documents
    // are still their genesis.
    assert!(
        first.contains("5 document(s) changed, 2 already up to date"),
        "{first}"
    );
    let again = ok(tpsync(
        data,
        &[
            "bundle",
            "import",
            "--store",
            "laptop",
            "--file",
            file.to_str().unwrap(),
        ],
    ));
    assert!(again.contains("0 document(s) changed"), "{again}");
    let validated = ok(tpsync(
        data,
        &["validate", "--store", "laptop", "--school", SCHOOL],
    ));
    assert_eq!(
        validated.lines().count(),
        sync_core::DocKind::SCHOOL_KINDS.len(),
        "one line per document of the school: {validated}"
    );

    // Bad input: a clear error and a failing exit code.
    let bad = tpsync(
        data,
        &[
            "list", "--store", "../etc", "--school", SCHOOL, "--kind", "books",
        ],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("store name"));
    let bad = tpsync(
        data,
        &[
            "list", "--store", "phone", "--school", "43/01", "--kind", "books",
        ],
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("school code"));
    std::fs::write(data.join("junk.tpsync"), b"not a bundle").unwrap();
    let bad = tpsync(
        data,
        &[
            "bundle",
            "import",
            "--store",
            "laptop",
            "--file",
            data.join("junk.tpsync").to_str().unwrap(),
        ],
    );
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("not a tpsync message"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
