//! Where the server's time goes when a day's changes arrive for a loaded
//! document (books, the largest): load, copy, apply, validate, check, save
//! and reload.
//!
//!     cargo run --release -p sync-core --example apply_cost

use std::time::Instant;

use automerge::{Automerge, ReadDoc};
use sync_core::harness::Rng;
use sync_core::store::MemoryStorage;
use sync_core::workload::{build_teaching_point, days_work, Clock, TeachingPointSize};
use sync_core::{DocId, DocKind, Replica, SchoolId};

fn main() {
    let school = SchoolId::new("4301230001").unwrap();
    let mut phone = Replica::open(MemoryStorage::new());
    let mut clock = Clock::new("teacher", "phone", 1_700_000_000_000);
    let mut rng = Rng::new(1);
    let tp = build_teaching_point(
        &mut phone,
        &school,
        TeachingPointSize::REFERENCE,
        &mut clock,
        &mut rng,
    )
    .unwrap();
    let id = DocId::school(&school, DocKind::Books).unwrap();
    let before = phone.doc(&id).unwrap().clone();
    let saved = before.save();
    days_work(&mut phone, &tp, 50, &mut clock, &mut rng).unwrap();
    let after = phone.doc(&id).unwrap().clone();
    let new = after.automerge().get_changes(&before.heads());
    let t = |what: &str, f: &mut dyn FnMut()| {
        let s = Instant::now();
        for _ in 0..5 {
            f();
        }
        println!(
            "{what:<40} {:>8.2} ms",
            s.elapsed().as_secs_f64() * 1e3 / 5.0
        );
    };
    println!(
        "books doc: {} B saved, {} new changes",
        saved.len(),
        new.len()
    );
    t("Automerge::load", &mut || {
        Automerge::load(&saved).unwrap();
    });
    t("clone", &mut || {
        let _ = before.clone();
    });
    let raw: Vec<automerge::Change> = new.iter().map(|c| (*c).clone()).collect();
    t("apply_changes", &mut || {
        let mut c = before.automerge().clone();
        c.apply_changes(raw.clone()).unwrap();
    });
    t("validate", &mut || after.validate().unwrap());
    t("validate_since (the receive path)", &mut || {
        after.validate_since(&before.heads()).unwrap()
    });
    t("check_nothing_erased", &mut || {
        after.check_nothing_erased(&before).unwrap()
    });
    t("save", &mut || {
        after.save();
    });
    let s2 = after.save();
    t("load(save) (the reload check)", &mut || {
        Automerge::load(&s2).unwrap();
    });
    t("save_after(before heads)", &mut || {
        after.automerge().save_after(&before.heads());
    });
    let h = after.heads()[0];
    t("get_change_by_hash", &mut || {
        after.automerge().get_change_by_hash(&h);
    });
    t("get_change_meta_by_hash", &mut || {
        after.automerge().get_change_meta_by_hash(&h);
    });
    t("heads", &mut || {
        after.heads();
    });
}
