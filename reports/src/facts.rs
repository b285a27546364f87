//! What the read model keeps of each school document: the typed records the
//! indicators, gaps and reviews read, and nothing else. Books are kept as
//! counts (a school may have thousands; the indicators read only copies and
//! status), so 600 schools' facts stay a few megabytes.

use std::collections::BTreeMap;

use sync_core::records::{
    ArchiveBox, ArchiveItem, Book, BookStatus, ChecklistRow, EquipmentItem, ImprovementPlan,
    ReviewEvent, SchoolProfile, StocktakeLine, StocktakeSession,
};
use sync_core::{DocKind, Record, RecordDoc, RecordId};

/// Copies of books by where they stand.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BookTally {
    /// Titles registered (every status).
    pub titles: u64,
    /// Copies on the shelf or on loan.
    pub on_hand: u64,
    /// Copies weeded or lost.
    pub gone: u64,
}

impl BookTally {
    /// The tally as book lines the indicator evaluation reads (it counts
    /// copies by status; titles play no part).
    pub fn as_lines(&self) -> Vec<Book> {
        let line = |copies: u64, status| Book {
            reg_no: String::new(),
            isbn: None,
            title: String::new(),
            author: None,
            publisher: None,
            pub_year: None,
            clc_class: None,
            price_fen: None,
            copies: copies.min(u32::MAX as u64) as u32,
            shelf: None,
            received_on: None,
            status,
            status_reason: None,
            status_date: None,
        };
        let mut out = Vec::new();
        if self.on_hand > 0 {
            out.push(line(self.on_hand, BookStatus::OnShelf));
        }
        if self.gone > 0 {
            out.push(line(self.gone, BookStatus::Weeded));
        }
        out
    }
}

/// One school's records as the reports read them. Each part is replaced
/// whole when its document changes.
#[derive(Clone, Debug, Default)]
pub struct SchoolFacts {
    pub profile: Option<SchoolProfile>,
    pub equipment: Vec<(RecordId, EquipmentItem)>,
    pub stocktakes: Vec<(RecordId, StocktakeSession)>,
    pub stocktake_lines: Vec<(RecordId, StocktakeLine)>,
    pub books: BookTally,
    pub archive_items: Vec<(RecordId, ArchiveItem)>,
    pub archive_boxes: Vec<(RecordId, ArchiveBox)>,
    pub rows: Vec<(RecordId, ChecklistRow)>,
    pub plans: Vec<(RecordId, ImprovementPlan)>,
    pub review_events: Vec<(RecordId, ReviewEvent)>,
    /// Records with a conflicted field, per document kind.
    pub conflicted: BTreeMap<DocKind, usize>,
    /// Each document's heads (hex), to tell edits made after an approval.
    pub heads: BTreeMap<DocKind, Vec<String>>,
}

/// Why a document could not be read into facts. The document is stored
/// and validated, so this means a record kind changed under the reports.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {doc} for the reports: {source}")]
pub struct FactsError {
    pub doc: String,
    #[source]
    pub source: sync_core::Error,
}

impl SchoolFacts {
    /// Replaces the part of the facts `doc` holds.
    pub fn absorb(&mut self, doc: &RecordDoc) -> Result<(), FactsError> {
        let err = |source| FactsError {
            doc: doc.id().to_string(),
            source,
        };
        let kind = doc.kind();
        let mut conflicted = 0usize;
        match kind {
            DocKind::Profile => {
                let (p, c) = singleton_flagged::<SchoolProfile>(doc).map_err(err)?;
                self.profile = p;
                conflicted += c;
            }
            DocKind::Equipment => {
                self.equipment = doc.list().map_err(err)?;
                self.stocktakes = doc.list().map_err(err)?;
                self.stocktake_lines = doc.list().map_err(err)?;
                conflicted += count_conflicted::<EquipmentItem>(doc).map_err(err)?;
                conflicted += count_conflicted::<StocktakeSession>(doc).map_err(err)?;
                conflicted += count_conflicted::<StocktakeLine>(doc).map_err(err)?;
            }
            DocKind::Books => {
                let mut tally = BookTally::default();
                for (_, json, c) in doc.records_json(&Book::SPEC).map_err(err)? {
                    tally.titles += 1;
                    conflicted += c as usize;
                    let copies = json.get("copies").and_then(|v| v.as_u64()).unwrap_or(0);
                    match json.get("status").and_then(|v| v.as_str()) {
                        Some("on_shelf") | Some("on_loan") => tally.on_hand += copies,
                        _ => tally.gone += copies,
                    }
                }
                self.books = tally;
            }
            DocKind::Archive => {
                self.archive_items = doc.list().map_err(err)?;
                self.archive_boxes = doc.list().map_err(err)?;
                conflicted += count_conflicted::<ArchiveItem>(doc).map_err(err)?;
                conflicted += count_conflicted::<ArchiveBox>(doc).map_err(err)?;
            }
            DocKind::Checklist => {
                self.rows = doc.list().map_err(err)?;
                self.plans = doc.list().map_err(err)?;
                conflicted += count_conflicted::<ChecklistRow>(doc).map_err(err)?;
                conflicted += count_conflicted::<ImprovementPlan>(doc).map_err(err)?;
            }
            DocKind::Review => {
                self.review_events = doc.list().map_err(err)?;
            }
            // Attachments are not reviewed and feed no indicator.
            DocKind::Attachments | DocKind::Template => return Ok(()),
        }
        self.conflicted.insert(kind, conflicted);
        self.heads
            .insert(kind, doc.heads().iter().map(|h| h.to_string()).collect());
        Ok(())
    }
}

fn singleton_flagged<R: Record>(doc: &RecordDoc) -> sync_core::Result<(Option<R>, usize)> {
    // A profile nobody has written yet reads as all fields empty.
    let rows = doc.records_json(&R::SPEC)?;
    let Some((_, json, conflicted)) = rows.into_iter().next() else {
        return Ok((None, 0));
    };
    if json.as_object().is_some_and(|m| m.is_empty()) {
        return Ok((None, 0));
    }
    let r = doc.singleton::<R>()?;
    Ok((Some(r), conflicted as usize))
}

fn count_conflicted<R: Record>(doc: &RecordDoc) -> sync_core::Result<usize> {
    Ok(doc
        .records_json(&R::SPEC)?
        .iter()
        .filter(|(_, _, c)| *c)
        .count())
}
