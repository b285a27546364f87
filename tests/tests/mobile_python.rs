//! The mobile API through its generated Python bindings (the same C ABI the
//! Kotlin and Swift bindings call), against the real `tpsync serve`.
//!
//! This test builds `libmobile_ffi` and `uniffi-bindgen`, generates the
//! Python modules, starts a server with the county fixture (access tokens
//! live 5 s, so expiry and refresh happen for real), seeds the county's
//! template as the county user would, and runs the Python tests in
//! `mobile-ffi/tests/python/` with `python3 -m unittest`. Their output is
//! shown; any failure fails this test.

use std::path::Path;
use std::time::Duration;

use sync_core::indicators::reference_template;
use sync_core::records::{IndicatorTemplate, TemplateSettings};
use sync_core::RecordId;
use tpsync_tests::county::{self, County, COUNTY_USER, PASSWORD, SCHOOLS, TOWNSHIPS};
use tpsync_tests::mobile::python;
use tpsync_tests::phone::Phone;
use tpsync_tests::server::TestServer;

/// Access tokens live this long on the test server.
const ACCESS_TTL_S: u64 = 5;

/// The county user writes the reference template (thresholds of
/// indicators.md) and syncs it, as the county bureau does once.
fn seed_template(county: &County) {
    let mut phone = Phone::new(county.login(COUNTY_USER, "county-seed"));
    let (indicators, settings) = reference_template();
    let ctx = phone.ctx();
    phone
        .replica
        .edit(&county::template(), |d| {
            for ind in &indicators {
                d.insert::<IndicatorTemplate>(&ctx, RecordId::random(), ind)?;
            }
            d.update_singleton::<TemplateSettings>(&ctx, |s| *s = settings.clone())
        })
        .expect("write the template");
    phone
        .sync(&county.client, &[county::template()])
        .expect("sync the template");
}

#[test]
fn the_mobile_api_through_python_against_a_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let ttl = ACCESS_TTL_S.to_string();
    let mut server = TestServer::start_with(&dir.path().join("data"), &["--access-ttl-s", &ttl]);
    server.wait_healthy(Duration::from_secs(30));
    let county = County::setup(&server);
    seed_template(&county);

    let tests = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("mobile-ffi/tests/python");
    let out = python()
        .args(["-m", "unittest", "-v"])
        .current_dir(&tests)
        .env("TPSYNC_URL", &server.url)
        .env("TPSYNC_PASSWORD", PASSWORD)
        .env("TPSYNC_ACCESS_TTL_S", &ttl)
        .env("TPSYNC_COUNTY", county::COUNTY_CODE)
        .env("TPSYNC_SCHOOL", SCHOOLS[1].0)
        .env("TPSYNC_TEACHER", county::teacher_name(1))
        .env("TPSYNC_OTHER_SCHOOL", SCHOOLS[2].0)
        .env("TPSYNC_TOWNSHIP_USER", county::township_name(SCHOOLS[1].3))
        .env("TPSYNC_TOWNSHIP", TOWNSHIPS[SCHOOLS[1].3].0)
        .output()
        .expect("run python3 (the tests need it on PATH)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "the Python tests failed:\n{text}");
    assert!(
        text.contains("OK") && !text.contains("skipped"),
        "the Python tests did not all run:\n{text}"
    );
    server.stop();
}

/// `mobile-ffi/scripts/bindings.sh` builds the library and writes Kotlin and
/// Swift bindings under the package and module names of the uniffi.toml
/// files. (No Kotlin or Swift compiler runs here; the Python bindings above
/// exercise the same C ABI.)
#[test]
fn the_bindings_script_generates_kotlin_and_swift() {
    // Builds the library and the generator with the workspace's features;
    // the script then only generates (`--prebuilt`).
    let _ = tpsync_tests::mobile::python_bindings();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = tempfile::tempdir().unwrap();
    let profile_dir = tpsync_tests::server::profile_dir();
    let target = profile_dir.parent().expect("the target folder");
    let run = std::process::Command::new("bash")
        .arg(workspace.join("mobile-ffi/scripts/bindings.sh"))
        .arg("--prebuilt")
        .arg(out.path())
        .env("CARGO_TARGET_DIR", target)
        .current_dir(workspace)
        .output()
        .expect("run bash");
    assert!(
        run.status.success(),
        "bindings.sh failed:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let read = |p: &str| {
        std::fs::read_to_string(out.path().join(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
    };
    let kotlin = read("kotlin/org/tpsync/mobile/tpsync.kt");
    assert!(kotlin.contains("package org.tpsync.mobile"));
    assert!(kotlin.contains("class SchoolStore"));
    assert!(kotlin.contains("import org.tpsync.core.AnyRecord"));
    let core = read("kotlin/org/tpsync/core/tpsync_core.kt");
    assert!(core.contains("data class Book("));
    let swift = read("swift/Tpsync.swift");
    assert!(
        swift.contains("open class SchoolStore"),
        "Swift SchoolStore"
    );
    assert!(read("swift/TpsyncCore.swift").contains("public struct Book"));
    assert!(out.path().join("swift/tpsyncFFI.h").exists());
}
