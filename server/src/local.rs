//! `tpsync local …`: the command line over local sled stores, no server.
//!
//! Stores under one data directory, one per device, synced in-process with
//! the same sans-IO protocol the server speaks, or carried as bundle files.
//!
//!     tpsync local demo --data ./tpsync-local
//!     tpsync local list --data ./tpsync-local --store township --school 4301230001 --kind books --limit 5
//!     tpsync local sync --data ./tpsync-local --from phone --to township --school 4301230001
//!     tpsync local bundle export --data ./tpsync-local --store phone --school 4301230001 --out day.tpsync
//!     tpsync local bundle import --data ./tpsync-local --store laptop --file day.tpsync

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clap::{Subcommand, ValueEnum};
use sync_core::harness::Rng;
use sync_core::records::{
    ArchiveBox, ArchiveItem, Book, ChecklistRow, EquipmentItem, ImprovementPlan, StocktakeLine,
    StocktakeSession,
};
use sync_core::store::SledStorage;
use sync_core::sync::{export_bundle, import_bundle, sync_local, AllowAll, BundleScope, SyncStats};
use sync_core::workload::{build_teaching_point, days_work, Clock, TeachingPointSize};
use sync_core::{DocId, DocKind, PeerId, Record, RecordId, RecordSpec, Replica, SchoolId};

#[derive(clap::Args)]
pub struct LocalArgs {
    /// The data directory; each store is a sled database in a folder of it.
    #[arg(
        long,
        global = true,
        env = "TPSYNC_LOCAL_DATA",
        default_value = "./tpsync-local"
    )]
    data: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Record a reference teaching point on a phone store (offline), make a
    /// day's edits, sync it to the township store, and bring a new phone up
    /// to date. Run again to add another day.
    Demo {
        #[arg(long, default_value = "4301230001")]
        school: String,
    },
    /// Sync every document of a school from one store to another.
    Sync {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        #[arg(long)]
        school: String,
    },
    /// List the records of one kind, as JSON lines.
    List {
        #[arg(long)]
        store: String,
        #[arg(long)]
        school: String,
        #[arg(long, value_enum)]
        kind: Kind,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Show every change to one record: who, which device, when, old → new.
    History {
        #[arg(long)]
        store: String,
        #[arg(long)]
        school: String,
        #[arg(long, value_enum)]
        kind: Kind,
        #[arg(long)]
        id: String,
    },
    /// Check every document of a school against its schema.
    Validate {
        #[arg(long)]
        store: String,
        #[arg(long)]
        school: String,
    },
    /// Export or import a bundle file (sync without a network).
    #[command(subcommand)]
    Bundle(BundleCmd),
}

#[derive(Subcommand)]
enum BundleCmd {
    /// Write every document of a school to a file.
    Export {
        #[arg(long)]
        store: String,
        #[arg(long)]
        school: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Import a bundle file into a store (idempotent).
    Import {
        #[arg(long)]
        store: String,
        #[arg(long)]
        file: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Equipment,
    Stocktakes,
    StocktakeLines,
    Books,
    ArchiveItems,
    Boxes,
    Checklist,
    Plans,
}

impl Kind {
    fn spec(self) -> RecordSpec {
        match self {
            Kind::Equipment => EquipmentItem::SPEC,
            Kind::Stocktakes => StocktakeSession::SPEC,
            Kind::StocktakeLines => StocktakeLine::SPEC,
            Kind::Books => Book::SPEC,
            Kind::ArchiveItems => ArchiveItem::SPEC,
            Kind::Boxes => ArchiveBox::SPEC,
            Kind::Checklist => ChecklistRow::SPEC,
            Kind::Plans => ImprovementPlan::SPEC,
        }
    }
}

type Error = Box<dyn std::error::Error>;

fn open(data: &Path, store: &str) -> Result<Replica<SledStorage>, Error> {
    if store.is_empty()
        || !store
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!("store name {store:?}: use letters, digits, '-' or '_'").into());
    }
    Ok(Replica::open(SledStorage::open(data.join(store))?))
}

fn sync_stores(
    from: &mut Replica<SledStorage>,
    from_name: &str,
    to: &mut Replica<SledStorage>,
    to_name: &str,
    scope: &[DocId],
) -> Result<SyncStats, Error> {
    let (from_peer, to_peer): (PeerId, PeerId) = (from_name.parse()?, to_name.parse()?);
    Ok(sync_local(
        from, &from_peer, to, &to_peer, &AllowAll, scope,
    )?)
}

fn report(what: &str, s: &SyncStats, started: Instant) {
    println!(
        "{what}: {} round trip(s), {} bytes sent, {} bytes received, {} changes sent, {} received, {:.0} ms",
        s.round_trips,
        s.bytes_sent,
        s.bytes_received,
        s.changes_sent,
        s.changes_received,
        started.elapsed().as_secs_f64() * 1000.0
    );
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn demo(data: &Path, school: &str) -> Result<(), Error> {
    let school = SchoolId::new(school)?;
    let scope = DocId::all_for_school(&school);
    let mut phone = open(data, "phone")?;
    let mut rng = Rng::new(now_ms() as u64);
    let mut clock = Clock::new("teacher-1", "phone", now_ms());
    let books = DocId::school(&school, DocKind::Books)?;
    let tp = if phone.doc(&books)?.record_ids(&Book::SPEC)?.is_empty() {
        println!("Recording the reference teaching point on the phone, offline (300 equipment items, 2,000 books, 120 archive items, 60 checklist rows)…");
        let t = Instant::now();
        let tp = build_teaching_point(
            &mut phone,
            &school,
            TeachingPointSize::REFERENCE,
            &mut clock,
            &mut rng,
        )?;
        println!(
            "  {} durable edits in {:.1} s",
            tp.edits,
            t.elapsed().as_secs_f64()
        );
        tp
    } else {
        println!("The phone already holds the teaching point; adding another day.");
        reload_teaching_point(&mut phone, &school)?
    };
    let edits = days_work(&mut phone, &tp, 50, &mut clock, &mut rng)?;
    println!("A day's work on the phone, offline: {} edits", edits.len());

    let mut township = open(data, "township")?;
    let t = Instant::now();
    let s = sync_stores(&mut phone, "phone", &mut township, "township", &scope)?;
    report("phone → township sync", &s, t);

    let mut second = open(data, "phone-2")?;
    let t = Instant::now();
    let s = sync_stores(&mut second, "phone-2", &mut township, "township", &scope)?;
    report("second phone ← township sync", &s, t);

    let n = township.doc(&books)?.record_ids(&Book::SPEC)?.len();
    let eq = township
        .doc(&DocId::school(&school, DocKind::Equipment)?)?
        .list::<EquipmentItem>()?;
    let scrapped = eq
        .iter()
        .filter(|(_, e)| e.status == sync_core::records::EquipmentStatus::Scrapped)
        .count();
    let value: i64 = eq
        .iter()
        .filter(|(_, e)| e.status == sync_core::records::EquipmentStatus::InUse)
        .map(|(_, e)| e.value_fen())
        .sum();
    println!("The township now holds {n} books and {} equipment items ({scrapped} scrapped, kept with their reason); equipment in use is worth {:.2} 元.", eq.len(), value as f64 / 100.0);
    for doc in &scope {
        township.doc(doc)?.validate()?;
    }
    println!("Every document validates. Stores are in {}", data.display());
    println!(
        "Try: tpsync list --data {} --store township --school {school} --kind equipment --limit 3",
        data.display()
    );
    Ok(())
}

/// Rebuilds the id lists a day's work picks from, from the stored records.
fn reload_teaching_point(
    r: &mut Replica<SledStorage>,
    school: &SchoolId,
) -> Result<sync_core::workload::TeachingPoint, Error> {
    let ids =
        |r: &mut Replica<SledStorage>, kind, spec: &RecordSpec| -> Result<Vec<RecordId>, Error> {
            Ok(r.doc(&DocId::school(school, kind)?)?.record_ids(spec)?)
        };
    let stocktake = ids(r, DocKind::Equipment, &StocktakeSession::SPEC)?
        .first()
        .copied();
    Ok(sync_core::workload::TeachingPoint {
        school: Some(school.clone()),
        equipment: ids(r, DocKind::Equipment, &EquipmentItem::SPEC)?,
        books: ids(r, DocKind::Books, &Book::SPEC)?,
        archive_items: ids(r, DocKind::Archive, &ArchiveItem::SPEC)?,
        boxes: ids(r, DocKind::Archive, &ArchiveBox::SPEC)?,
        checklist_rows: ids(r, DocKind::Checklist, &ChecklistRow::SPEC)?,
        stocktake,
        edits: 0,
    })
}

fn run_inner(cli: LocalArgs) -> Result<(), Error> {
    let data = &cli.data;
    match cli.cmd {
        Cmd::Demo { school } => demo(data, &school)?,
        Cmd::Sync { from, to, school } => {
            let scope = DocId::all_for_school(&SchoolId::new(school)?);
            let (mut a, mut b) = (open(data, &from)?, open(data, &to)?);
            let t = Instant::now();
            let s = sync_stores(&mut a, &from, &mut b, &to, &scope)?;
            report(&format!("{from} → {to} sync"), &s, t);
        }
        Cmd::List {
            store,
            school,
            kind,
            limit,
        } => {
            let spec = kind.spec();
            let doc = DocId::school(&SchoolId::new(school)?, spec.doc_kind)?;
            let mut r = open(data, &store)?;
            let d = r.doc(&doc)?;
            let ids = d.record_ids(&spec)?;
            for id in ids.iter().take(limit) {
                let json = d.record_json(&spec, *id)?.unwrap_or_default();
                println!("{}", serde_json::json!({ "id": id, "record": json }));
            }
            eprintln!(
                "{} of {} {} record(s)",
                ids.len().min(limit),
                ids.len(),
                spec.name
            );
        }
        Cmd::History {
            store,
            school,
            kind,
            id,
        } => {
            let spec = kind.spec();
            let doc = DocId::school(&SchoolId::new(school)?, spec.doc_kind)?;
            let mut r = open(data, &store)?;
            for c in r.doc(&doc)?.history(&spec, id.parse()?)? {
                println!("{}", serde_json::to_string(&c)?);
            }
        }
        Cmd::Validate { store, school } => {
            let mut r = open(data, &store)?;
            for doc in DocId::all_for_school(&SchoolId::new(school)?) {
                r.doc(&doc)?.validate()?;
                println!("{doc}: ok");
            }
        }
        Cmd::Bundle(BundleCmd::Export { store, school, out }) => {
            let scope = DocId::all_for_school(&SchoolId::new(school)?);
            let mut r = open(data, &store)?;
            let bytes = export_bundle(&mut r, &scope, &BundleScope::Everything)?;
            std::fs::write(&out, &bytes)
                .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            println!("wrote {} bytes to {}", bytes.len(), out.display());
        }
        Cmd::Bundle(BundleCmd::Import { store, file }) => {
            let bytes =
                std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let mut r = open(data, &store)?;
            let rep = import_bundle(&mut r, &AllowAll, &bytes)?;
            println!(
                "{} document(s) changed, {} already up to date",
                rep.docs_changed.len(),
                rep.docs_unchanged.len()
            );
        }
    }
    Ok(())
}

pub fn run(args: LocalArgs) -> ExitCode {
    match run_inner(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tpsync: {e}");
            ExitCode::FAILURE
        }
    }
}
