//! `Accounts::import_schools_csv` (the county's school list, UTF-8 or
//! GBK/GB18030): any bytes give a report (counts, or row errors with their
//! lines) or a `bad_request` error; never a panic. A dry run writes nothing;
//! a file with any bad row writes nothing; an import that is applied
//! registers every school it counts, and importing the same file again
//! creates nothing and changes no township.
//!
//! Input: byte 0 picks the mode, the rest is the file. Mode bit 0: after a
//! clean dry run, also import for real (on the same accounts, which are
//! started afresh every 200 imports).
#![no_main]

use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use tpsync_accounts::{Accounts, AccountsError, AuthConfig, SchoolImport};
use tpsync_server_fuzz::{county, run, temp_dir, violated, SCHOOLS_CSV};

struct Fixture {
    db: sled::Db,
    accounts: Accounts,
    imports: usize,
}

fn fresh() -> Fixture {
    let dir = temp_dir("schools");
    let db = sled::Config::new()
        .path(dir.join("db"))
        .cache_capacity(8 << 20)
        .open()
        .unwrap();
    let accounts = Accounts::open(&db, AuthConfig::default()).unwrap();
    accounts.set_county(county(), "模糊县").unwrap();
    // A registry to update: the fixture's two schools.
    let r = accounts
        .import_schools_csv(SCHOOLS_CSV.as_bytes(), false)
        .unwrap();
    assert!(r.errors.is_empty());
    Fixture {
        db,
        accounts,
        imports: 0,
    }
}

static F: Mutex<Option<Fixture>> = Mutex::new(None);

/// Every key and value of every accounts tree.
fn dump(db: &sled::Db) -> Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for name in db.tree_names() {
        for kv in db.open_tree(&name).unwrap().iter() {
            let (k, v) = kv.unwrap();
            out.push((name.to_vec(), k.to_vec(), v.to_vec()));
        }
    }
    out
}

fuzz_target!(init: {
    tpsync_server_fuzz::init();
    *F.lock().unwrap() = Some(fresh());
}, |data: &[u8]| {
    let Some((&mode, file)) = data.split_first() else { return };
    run("schools_csv", || one(mode, file));
});

fn check_report(what: &str, r: &SchoolImport) {
    for e in &r.errors {
        if e.line == 0 || e.message.trim().is_empty() {
            violated(format!(
                "{what}: a row error without a line or a message: {e:?}"
            ));
        }
    }
    if !r.errors.is_empty()
        && r.schools_created + r.schools_updated + r.townships_created + r.townships_updated > 0
    {
        violated(format!("{what}: a report with errors counts writes: {r:?}"));
    }
}

fn one(mode: u8, file: &[u8]) {
    let mut guard = F.lock().unwrap();
    if guard.as_ref().is_some_and(|f| f.imports >= 200) {
        *guard = Some(fresh());
    }
    let f = guard.as_mut().unwrap();
    let before = dump(&f.db);
    let dry = match f.accounts.import_schools_csv(file, true) {
        Ok(r) => r,
        Err(AccountsError::BadRequest(m)) if !m.trim().is_empty() => {
            if dump(&f.db) != before {
                violated(format!("a refused file changed the accounts: {m}"));
            }
            return;
        }
        Err(e) => violated(format!("an error other than bad_request: {} {e}", e.code())),
    };
    check_report("dry run", &dry);
    if dump(&f.db) != before {
        violated(format!("a dry run wrote to the accounts: {dry:?}"));
    }
    if mode & 1 == 0 || !dry.errors.is_empty() {
        return;
    }
    f.imports += 1;
    let schools_before = f.accounts.schools().unwrap().len();
    let real = f
        .accounts
        .import_schools_csv(file, false)
        .unwrap_or_else(|e| violated(format!("a file whose dry run was clean failed: {e}")));
    check_report("import", &real);
    let same = |a: &SchoolImport, b: &SchoolImport| {
        (
            a.schools_created,
            a.schools_updated,
            a.townships_created,
            a.townships_updated,
        ) == (
            b.schools_created,
            b.schools_updated,
            b.townships_created,
            b.townships_updated,
        ) && a.errors == b.errors
    };
    if !same(&dry, &real) {
        violated(format!(
            "the dry run said {dry:?} but the import did {real:?}"
        ));
    }
    let schools_after = f.accounts.schools().unwrap().len();
    if schools_after != schools_before + real.schools_created {
        violated(format!(
            "{} schools created but the registry went from {schools_before} to {schools_after}",
            real.schools_created
        ));
    }
    let again = f
        .accounts
        .import_schools_csv(file, true)
        .unwrap_or_else(|e| violated(format!("the same file failed the second time: {e}")));
    if again.schools_created + again.townships_created + again.townships_updated != 0
        || again.schools_updated != real.schools_created + real.schools_updated
    {
        violated(format!(
            "importing the same file again would change more: {again:?} after {real:?}"
        ));
    }
}
