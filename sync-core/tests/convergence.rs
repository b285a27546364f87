//! Property: whatever the edits on 2–5 peers and however faulty the links
//! between partial syncs (dropped, duplicated, late and cut messages, lost
//! sync memory), after a final clean sync every replica is equal, valid, and
//! holds every record ever created.

use proptest::prelude::*;
use sync_core::harness::{Faults, Network};
use sync_core::records::{
    Book, BookStatus, EquipmentItem, EquipmentStatus, SchoolProfile, StocktakeLine, StocktakeResult,
};
use sync_core::workload::{sample_book, sample_equipment};
use sync_core::{DocId, DocKind, RecordId, SchoolId};

#[derive(Clone, Debug)]
enum Op {
    AddBook { peer: usize },
    AddEquipment { peer: usize },
    EditShelf { peer: usize, pick: usize, shelf: u8 },
    Weed { peer: usize, pick: usize },
    Scrap { peer: usize, pick: usize },
    CountLine { peer: usize },
    Enrollment { peer: usize, students: u8 },
    Sync { a: usize, b: usize, faulty: bool },
    ForgetPeer { peer: usize, other: usize },
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0usize..5;
    prop_oneof![
        3 => p.clone().prop_map(|peer| Op::AddBook { peer }),
        2 => p.clone().prop_map(|peer| Op::AddEquipment { peer }),
        3 => (p.clone(), any::<usize>(), any::<u8>()).prop_map(|(peer, pick, shelf)| Op::EditShelf { peer, pick, shelf }),
        1 => (p.clone(), any::<usize>()).prop_map(|(peer, pick)| Op::Weed { peer, pick }),
        1 => (p.clone(), any::<usize>()).prop_map(|(peer, pick)| Op::Scrap { peer, pick }),
        1 => p.clone().prop_map(|peer| Op::CountLine { peer }),
        1 => (p.clone(), any::<u8>()).prop_map(|(peer, students)| Op::Enrollment { peer, students }),
        4 => (p.clone(), p.clone(), prop::bool::weighted(0.7)).prop_map(|(a, b, faulty)| Op::Sync { a, b, faulty }),
        1 => (p.clone(), p).prop_map(|(peer, other)| Op::ForgetPeer { peer, other }),
    ]
}

fn cases() -> u32 {
    std::env::var("TPSYNC_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000)
}

fn run(n: usize, ops: Vec<Op>, seed: u64) -> Result<(), TestCaseError> {
    let school = SchoolId::new("4301230001").unwrap();
    let books = DocId::school(&school, DocKind::Books).unwrap();
    let equipment = DocId::school(&school, DocKind::Equipment).unwrap();
    let profile = DocId::school(&school, DocKind::Profile).unwrap();
    let mut net = Network::new(n, &school, seed);
    let mut created: Vec<RecordId> = Vec::new();
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::AddBook { peer } => {
                let id = net.rng().record_id();
                let p = &mut net.peers[peer % n];
                let ctx = p.ctx();
                p.replica
                    .edit(&books, |d| d.insert(&ctx, id, &sample_book(step)))
                    .unwrap();
                created.push(id);
            }
            Op::AddEquipment { peer } => {
                let id = net.rng().record_id();
                let p = &mut net.peers[peer % n];
                let ctx = p.ctx();
                p.replica
                    .edit(&equipment, |d| d.insert(&ctx, id, &sample_equipment(step)))
                    .unwrap();
                created.push(id);
            }
            Op::EditShelf { peer, pick, shelf } => {
                let p = &mut net.peers[peer % n];
                let ids = p
                    .replica
                    .doc(&books)
                    .unwrap()
                    .record_ids(&<Book as sync_core::Record>::SPEC)
                    .unwrap();
                if let Some(id) = ids.get(pick % ids.len().max(1)) {
                    let ctx = p.ctx();
                    p.replica
                        .edit(&books, |d| {
                            d.update::<Book>(&ctx, *id, |b| b.shelf = Some(format!("S{shelf}")))
                        })
                        .unwrap();
                }
            }
            Op::Weed { peer, pick } => {
                let p = &mut net.peers[peer % n];
                let ids = p
                    .replica
                    .doc(&books)
                    .unwrap()
                    .record_ids(&<Book as sync_core::Record>::SPEC)
                    .unwrap();
                if let Some(id) = ids.get(pick % ids.len().max(1)) {
                    let ctx = p.ctx();
                    p.replica
                        .edit(&books, |d| {
                            d.update::<Book>(&ctx, *id, |b| {
                                b.status = BookStatus::Weeded;
                                b.status_reason = Some("破损".into());
                            })
                        })
                        .unwrap();
                }
            }
            Op::Scrap { peer, pick } => {
                let p = &mut net.peers[peer % n];
                let ids = p
                    .replica
                    .doc(&equipment)
                    .unwrap()
                    .record_ids(&<EquipmentItem as sync_core::Record>::SPEC)
                    .unwrap();
                if let Some(id) = ids.get(pick % ids.len().max(1)) {
                    let ctx = p.ctx();
                    p.replica
                        .edit(&equipment, |d| {
                            d.update::<EquipmentItem>(&ctx, *id, |e| {
                                e.status = EquipmentStatus::Scrapped;
                                e.status_reason = Some("老化".into());
                                e.status_date = Some("2025-11-01".into());
                            })
                        })
                        .unwrap();
                }
            }
            Op::CountLine { peer } => {
                let id = net.rng().record_id();
                let p = &mut net.peers[peer % n];
                let ctx = p.ctx();
                let line = StocktakeLine {
                    session: RecordId::from_u128(9),
                    item: None,
                    description: Some("地球仪".into()),
                    recorded_qty: 2,
                    counted_qty: 1,
                    result: StocktakeResult::Shortage,
                    counted_by_device: p.device.to_string(),
                    note: None,
                };
                p.replica
                    .edit(&equipment, |d| d.insert(&ctx, id, &line))
                    .unwrap();
                created.push(id);
            }
            Op::Enrollment { peer, students } => {
                let p = &mut net.peers[peer % n];
                let ctx = p.ctx();
                p.replica
                    .edit(&profile, |d| {
                        d.update_singleton::<SchoolProfile>(&ctx, |s| {
                            s.students_grade_1 = Some(students as u32)
                        })
                    })
                    .unwrap();
            }
            Op::Sync { a, b, faulty } => {
                let (a, b) = (a % n, b % n);
                if a != b {
                    let faults = if faulty { Faults::HARSH } else { Faults::NONE };
                    net.sync(a, b, faults)
                        .map_err(|e| TestCaseError::fail(format!("sync {a}->{b} failed: {e}")))?;
                }
            }
            Op::ForgetPeer { peer, other } => {
                let (p, o) = (peer % n, other % n);
                let other_id = net.peers[o].id.clone();
                net.peers[p].replica.forget_peer(&other_id).unwrap();
            }
        }
    }
    let passes = net
        .run_until_quiet(8)
        .map_err(|e| TestCaseError::fail(format!("final sync failed: {e}")))?;
    prop_assert!(
        net.converged().unwrap(),
        "not converged after {passes} passes"
    );
    let reference = net.record_ids(0).unwrap();
    for i in 0..n {
        let ids = net.record_ids(i).unwrap();
        prop_assert_eq!(&ids, &reference, "peer {} differs", i);
        for c in &created {
            prop_assert!(
                ids.iter().any(|(_, _, id)| id == c),
                "record {} lost at peer {}",
                c,
                i
            );
        }
        for d in net.scope.clone() {
            let doc = net.peers[i].replica.doc(&d).unwrap();
            doc.validate()
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
    }
    // Equal heads must read as equal records (reads are deterministic).
    let read = |net: &mut Network, i: usize| -> Vec<(RecordId, Book)> {
        net.peers[i]
            .replica
            .doc(&books)
            .unwrap()
            .list::<Book>()
            .unwrap()
    };
    let first = read(&mut net, 0);
    for i in 1..n {
        prop_assert_eq!(&read(&mut net, i), &first);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn replicas_converge_and_lose_nothing(
        n in 2usize..=5,
        ops in prop::collection::vec(op(), 1..40),
        seed in any::<u64>(),
    ) {
        run(n, ops, seed)?;
    }
}
