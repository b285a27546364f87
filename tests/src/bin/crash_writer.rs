//! `crash-writer DATA_DIR SCHOOL_CODE`: the child process of the crash test
//! (`tests/tests/crash.rs`).
//!
//! Opens a real sled store in `DATA_DIR` and writes books into the school's
//! Books document forever, until it is killed. After each write has been
//! acknowledged by [`Replica::edit`] (which promises the change is durable when
//! it returns), it reports the write on stdout:
//!
//! ```text
//! DURABLE <record-id> <reg_no>    a book was inserted
//! UPDATED <record-id> <shelf>     a book's shelf was changed
//! ```
//!
//! A line is printed and flushed only after `edit` returned `Ok`, so every
//! reported line is a promise the store must keep after a kill at any moment.
//! The converse does not hold: the process may be killed between a durable
//! write and its report, so the store may hold at most one unreported write
//! per run.
//!
//! Compaction is set to run every few chunks, so a kill often lands in the
//! middle of one (snapshot written, old chunks partly deleted).
//!
//! Any error goes to stderr and ends the process with a non-zero status.

use std::io::Write;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use sync_core::records::{Book, BookStatus};
use sync_core::store::SledStorage;
use sync_core::{DeviceId, DocId, DocKind, EditContext, RecordId, Replica, SchoolId, UserId};
use tpsync_tests::CRASH_COMPACT_AFTER;

/// Every this many inserts, one earlier book's shelf is also changed.
const UPDATE_EVERY: u64 = 5;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crash-writer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn now_ms() -> Result<i64, String> {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| format!("system clock is before 1970: {e}"))?;
    i64::try_from(since.as_millis()).map_err(|e| format!("clock out of range: {e}"))
}

fn run() -> Result<(), String> {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), Some(school), None) = (args.next(), args.next(), args.next()) else {
        return Err("usage: crash-writer DATA_DIR SCHOOL_CODE".into());
    };
    let school = school
        .to_str()
        .ok_or("school code is not UTF-8")?
        .parse::<SchoolId>()
        .map_err(|e| format!("bad school code: {e}"))?;
    let doc_id =
        DocId::school(&school, DocKind::Books).map_err(|e| format!("books doc id: {e}"))?;

    let storage = SledStorage::open(&dir).map_err(|e| format!("open store: {e}"))?;
    let mut replica = Replica::open(storage);
    replica.set_compact_after(CRASH_COMPACT_AFTER);

    // Carry on numbering from what earlier (killed) runs left, so every
    // registration number is unique across runs; updates may also target
    // books written by those earlier runs, read back after their crash.
    let mut books: Vec<RecordId> = replica
        .doc(&doc_id)
        .map_err(|e| format!("load {doc_id}: {e}"))?
        .list::<Book>()
        .map_err(|e| format!("list books of {doc_id}: {e}"))?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let first = books.len() as u64;

    let user: UserId = "crash-test".parse().map_err(|e| format!("user id: {e}"))?;
    let device: DeviceId = "crash-writer"
        .parse()
        .map_err(|e| format!("device id: {e}"))?;
    let mut out = std::io::stdout().lock();

    for n in first.. {
        let ctx = EditContext {
            user: user.clone(),
            device: device.clone(),
            now_ms: now_ms()?,
        };

        let id = RecordId::random();
        let book = Book {
            reg_no: format!("TS{n:08}"),
            isbn: None,
            title: format!("Crash test book {n}"),
            author: None,
            publisher: None,
            pub_year: None,
            clc_class: None,
            price_fen: None,
            copies: 1,
            shelf: None,
            received_on: None,
            status: BookStatus::OnShelf,
            status_reason: None,
            status_date: None,
        };
        replica
            .edit(&doc_id, |d| d.insert(&ctx, id, &book))
            .map_err(|e| format!("insert book {}: {e}", book.reg_no))?;
        books.push(id);
        writeln!(out, "DURABLE {id} {}", book.reg_no)
            .and_then(|()| out.flush())
            .map_err(|e| format!("report insert: {e}"))?;

        if n % UPDATE_EVERY == UPDATE_EVERY - 1 {
            // An earlier book, spread over all of them (this run's and
            // earlier runs'). Shelf names grow with `n`, so the test can tell
            // a newer unreported update from a lost reported one.
            let target = books[(n as usize * 7) % books.len()];
            let shelf = format!("S{n:08}");
            let changed = replica
                .edit(&doc_id, |d| {
                    d.update::<Book>(&ctx, target, |b| b.shelf = Some(shelf.clone()))
                })
                .map_err(|e| format!("update shelf of {target}: {e}"))?;
            if !changed {
                return Err(format!("update of {target} to {shelf} changed nothing"));
            }
            writeln!(out, "UPDATED {target} {shelf}")
                .and_then(|()| out.flush())
                .map_err(|e| format!("report update: {e}"))?;
        }
    }
    Ok(())
}
