//! [`SchoolStore`]: one school's records on the device, and everything an
//! app does with them offline.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use sync_core::indicators::{evaluate_school, SchoolEvaluation, SchoolInput};
use sync_core::records::{
    AnyRecord, Book, ChecklistRow, EquipmentItem, FieldEquals, ImprovementPlan, IndicatorTemplate,
    RecordKind, RecordPage, RecordQuery, SchoolProfile, StocktakeCount, StocktakeLine,
    StoredRecord, TemplateSettings,
};
use sync_core::store::SledStorage;
use sync_core::sync::DocSetPolicy;
use sync_core::{
    CountyId, DeviceId, DocId, DocKind, EditContext, PeerId, RecordId, Replica, SchoolId, UserId,
};
use tpsync_blobs::BlobStore;

use crate::error::TpError;
use crate::values::{FieldConflictView, FieldValue, HistoryEntry};

/// Where a store lives and whose it is.
#[derive(Clone, Debug, uniffi::Record)]
pub struct StoreConfig {
    /// A directory the app owns (created if missing), one per school: a
    /// township clerk keeps one store per school they visit.
    pub path: String,
    /// The school's national code (学校标识码).
    pub school_code: String,
    /// The county's code, for its template (thresholds, archive
    /// catalogue). `None` until known: the first sync with the server
    /// learns it and the store remembers it.
    pub county_code: Option<String>,
    /// Who is signed in; written into every change (the history shows it).
    pub username: String,
    /// This device (at most 32 letters, digits, `-`, `_`, `.`), the same
    /// one given at sign-in.
    pub device_id: String,
}

/// Sled's page cache on a phone: enough for one school's documents.
const SLED_CACHE_BYTES: u64 = 8 * 1024 * 1024;
/// The sync peer name of the server in the store's sync memory.
pub(crate) const SERVER_PEER: &str = "server";
const META_TREE: &str = "tpsync.mobile";
/// The attachment transfer queue (see `attachments.rs`).
const TRANSFERS_TREE: &str = "tpsync.transfers";
/// The attachment bytes, under the store's directory (sled keeps its own
/// `blobs` folder there, hence another name).
const ATTACHMENTS_DIR: &str = "attachments";

/// One school's records on this device: a durable local store (sled) that
/// every write reaches before the call returns, and the sync state with
/// the server and other devices. Safe to use from several threads; a sync
/// holds the store only while it builds a request or applies an answer.
#[derive(uniffi::Object)]
pub struct SchoolStore {
    pub(crate) replica: Mutex<Replica<SledStorage>>,
    pub(crate) meta: sled::Tree,
    /// Photos and scans, as files named by their SHA-256.
    pub(crate) blobs: BlobStore,
    /// Attachment bytes waiting to travel, and what the server confirmed.
    pub(crate) transfers: sled::Tree,
    /// Held by the one attachment upload run at a time.
    pub(crate) transferring: Mutex<()>,
    pub(crate) school: SchoolId,
    pub(crate) county: RwLock<Option<CountyId>>,
    user: UserId,
    pub(crate) device: DeviceId,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn parse_id(id: &str) -> Result<RecordId, TpError> {
    id.parse()
        .map_err(|e: sync_core::IdError| TpError::invalid(e.to_string()))
}

#[uniffi::export]
impl SchoolStore {
    /// Opens (or creates) the store at `config.path`. Fails with `Storage`
    /// if the directory cannot be used or the store is open in another
    /// process, with `InvalidInput` if a code or id is malformed.
    #[uniffi::constructor]
    pub fn open(config: StoreConfig) -> Result<Arc<Self>, TpError> {
        let school = SchoolId::new(config.school_code.trim())?;
        let user = UserId::new(config.username.trim())?;
        let device = DeviceId::new(config.device_id.trim())?;
        let db = sled::Config::new()
            .path(&config.path)
            .mode(sled::Mode::LowSpace)
            .cache_capacity(SLED_CACHE_BYTES)
            .open()
            .map_err(|e| TpError::Storage {
                message: format!("cannot open the store at {}: {e}", config.path),
            })?;
        let meta = db.open_tree(META_TREE)?;
        let stored_school = meta.get("school")?;
        match stored_school {
            Some(s) if s.as_ref() != school.as_str().as_bytes() => {
                return Err(TpError::invalid(format!(
                    "the store at {} holds school {}, not {school}; give each school its own directory",
                    config.path,
                    String::from_utf8_lossy(&s)
                )))
            }
            Some(_) => {}
            None => {
                meta.insert("school", school.as_str().as_bytes())?;
            }
        }
        let county = match config.county_code.as_deref().map(str::trim) {
            Some(c) if !c.is_empty() => {
                let c = CountyId::new(c)?;
                meta.insert("county", c.as_str().as_bytes())?;
                Some(c)
            }
            _ => meta
                .get("county")?
                .and_then(|c| CountyId::new(String::from_utf8_lossy(&c)).ok()),
        };
        let transfers = db.open_tree(TRANSFERS_TREE)?;
        db.flush()?;
        // After sled: its lock keeps a second process from clearing the
        // blob store's half-made copies under a store that is in use.
        let blobs_dir = std::path::Path::new(&config.path).join(ATTACHMENTS_DIR);
        let blobs = BlobStore::open(&blobs_dir)?;
        let replica = Replica::open(SledStorage::from_db(db));
        Ok(Arc::new(Self {
            replica: Mutex::new(replica),
            meta,
            blobs,
            transfers,
            transferring: Mutex::new(()),
            school,
            county: RwLock::new(county),
            user,
            device,
        }))
    }

    pub fn school_code(&self) -> String {
        self.school.to_string()
    }

    /// The county's code, once known.
    pub fn county_code(&self) -> Option<String> {
        self.county.read().as_ref().map(|c| c.to_string())
    }

    // ----- records --------------------------------------------------------

    /// Adds a record; returns its new id. Durable when this returns.
    pub fn create(&self, record: AnyRecord) -> Result<RecordId, TpError> {
        let doc = self.writable_doc(record.kind())?;
        let id = RecordId::random();
        let ctx = self.ctx();
        self.replica
            .lock()
            .edit(&doc, |d| d.insert_any(&ctx, id, &record))?;
        Ok(id)
    }

    /// Saves an edit: `base` is the record as the app read it, `edited` as
    /// the user left it. Only the fields the user changed are written, so
    /// changes that arrived by sync meanwhile are kept. Returns whether
    /// anything changed.
    pub fn update(&self, id: String, base: AnyRecord, edited: AnyRecord) -> Result<bool, TpError> {
        let id = parse_id(&id)?;
        let doc = self.writable_doc(edited.kind())?;
        let ctx = self.ctx();
        Ok(self
            .replica
            .lock()
            .edit(&doc, |d| d.update_any(&ctx, id, &base, &edited))?)
    }

    /// Changes a record's status (`weeded`, `scrapped`, `withdrawn`,
    /// `closed`…) with a reason and a date (`YYYY-MM-DD`) where its kind
    /// keeps them. Records are never deleted; this is how they leave.
    pub fn set_status(
        &self,
        kind: RecordKind,
        id: String,
        status: String,
        reason: Option<String>,
        on: Option<String>,
    ) -> Result<bool, TpError> {
        let id = parse_id(&id)?;
        let doc = self.writable_doc(kind)?;
        let ctx = self.ctx();
        Ok(self.replica.lock().edit(&doc, |d| {
            d.set_status(&ctx, kind, id, &status, reason.as_deref(), on.as_deref())
        })?)
    }

    /// A record, or `None` if there is none with this id.
    pub fn get(&self, kind: RecordKind, id: String) -> Result<Option<AnyRecord>, TpError> {
        let id = parse_id(&id)?;
        let doc = self.readable_doc(kind)?;
        Ok(self.replica.lock().doc(&doc)?.get_any(kind, id)?)
    }

    /// Records of one kind: filtered, sorted and paged.
    pub fn list(&self, query: RecordQuery) -> Result<RecordPage, TpError> {
        let doc = self.readable_doc(query.kind)?;
        Ok(self.replica.lock().doc(&doc)?.query(&query)?)
    }

    /// Books whose title, author, registration number or ISBN contains
    /// `text` (an ISBN in any form: with or without hyphens, ISBN-10 or
    /// the 13-digit barcode), sorted by title. `limit` 0 returns all.
    pub fn find_books(&self, text: String, limit: u32) -> Result<Vec<StoredRecord>, TpError> {
        let mut query = RecordQuery::all(RecordKind::Book);
        query.text = Some(text);
        query.sort_by = Some("title".into());
        query.limit = limit;
        Ok(self.list(query)?.records)
    }

    /// The school profile (学校概况).
    pub fn profile(&self) -> Result<SchoolProfile, TpError> {
        let doc = self.school_doc(DocKind::Profile)?;
        Ok(self
            .replica
            .lock()
            .doc(&doc)?
            .singleton::<SchoolProfile>()?)
    }

    /// Saves an edit of the profile, like [`SchoolStore::update`].
    pub fn update_profile(
        &self,
        base: SchoolProfile,
        edited: SchoolProfile,
    ) -> Result<bool, TpError> {
        let doc = self.school_doc(DocKind::Profile)?;
        let ctx = self.ctx();
        Ok(self.replica.lock().edit(&doc, |d| {
            d.update_from(&ctx, RecordId::from_u128(0), &base, &edited)
        })?)
    }

    // ----- stocktake (盘点) -------------------------------------------------

    /// Records one count in a stocktake session: the ledger's quantity is
    /// read from the item (0 for an item not in the ledger, then give a
    /// `description`), the result (相符/盘盈/盘亏/损坏) follows from the
    /// counts, and the line names this device. Two phones counting the same
    /// room add lines; they never overwrite each other.
    pub fn count_item(
        &self,
        session_id: String,
        item_id: Option<String>,
        description: Option<String>,
        counted_qty: u32,
        damaged: bool,
        note: Option<String>,
    ) -> Result<RecordId, TpError> {
        let session = parse_id(&session_id)?;
        let item = item_id.as_deref().map(parse_id).transpose()?;
        let doc = self.school_doc(DocKind::Equipment)?;
        let ctx = self.ctx();
        let id = RecordId::random();
        let device = self.device.to_string();
        self.replica.lock().edit(&doc, |d| {
            let line = StocktakeLine::from_count(
                d,
                StocktakeCount {
                    session,
                    item,
                    description,
                    counted_qty,
                    damaged,
                    note,
                    device,
                },
            )?;
            d.insert(&ctx, id, &line)
        })?;
        Ok(id)
    }

    /// The lines of a stocktake session, by every device, in the order
    /// they were counted.
    pub fn stocktake_lines(&self, session_id: String) -> Result<Vec<StoredRecord>, TpError> {
        parse_id(&session_id)?;
        let mut query = RecordQuery::all(RecordKind::StocktakeLine);
        query.equals = vec![FieldEquals {
            field: "session".into(),
            value: session_id,
        }];
        Ok(self.list(query)?.records)
    }

    // ----- history and conflicts -----------------------------------------

    /// Every change to a record, oldest first: its creation, then each
    /// field set, with who, which device, when, old and new value.
    pub fn history(&self, kind: RecordKind, id: String) -> Result<Vec<HistoryEntry>, TpError> {
        let id = parse_id(&id)?;
        let doc = self.readable_doc(kind)?;
        let mut replica = self.replica.lock();
        let changes = replica.doc(&doc)?.history(kind.spec(), id)?;
        Ok(changes.into_iter().map(HistoryEntry::from).collect())
    }

    /// The fields of a record that hold concurrent values (edited on two
    /// devices at once). The first value is the one reads show.
    pub fn conflicts(
        &self,
        kind: RecordKind,
        id: String,
    ) -> Result<Vec<FieldConflictView>, TpError> {
        let id = parse_id(&id)?;
        let doc = self.readable_doc(kind)?;
        let mut replica = self.replica.lock();
        let conflicts = replica.doc(&doc)?.conflicts(kind.spec(), id)?;
        Ok(conflicts.into_iter().map(FieldConflictView::from).collect())
    }

    /// The records of a kind with at least one conflict.
    pub fn conflicted_records(&self, kind: RecordKind) -> Result<Vec<RecordId>, TpError> {
        let doc = self.readable_doc(kind)?;
        let mut replica = self.replica.lock();
        Ok(replica
            .doc(&doc)?
            .conflicted_records(kind.spec())?
            .into_iter()
            .collect())
    }

    /// Resolves a conflict by choosing a value (one of the conflict's, or
    /// a new one); every device that syncs sees the choice.
    pub fn resolve_conflict(
        &self,
        kind: RecordKind,
        id: String,
        field: String,
        value: FieldValue,
    ) -> Result<(), TpError> {
        let id = parse_id(&id)?;
        let doc = self.writable_doc(kind)?;
        let ctx = self.ctx();
        let value = value.to_json();
        Ok(self.replica.lock().edit(&doc, |d| {
            d.resolve_conflict(&ctx, kind.spec(), id, &field, &value)
        })?)
    }

    // ----- checklist (标准化建设) ---------------------------------------------

    /// The school's standardization checklist: each indicator of the
    /// county's template with its threshold, the school's value (typed in a
    /// checklist row, or computed from the profile, the equipment ledger
    /// and the book catalogue), whether it meets the threshold, the
    /// shortfall, and the improvement plans; per stage, the verdict.
    /// Before the template has arrived (first sync) there are no
    /// thresholds and the notes say so.
    pub fn checklist(&self) -> Result<SchoolEvaluation, TpError> {
        let county = self.county.read().clone();
        let mut replica = self.replica.lock();
        let profile: SchoolProfile = replica
            .doc(&self.school_doc(DocKind::Profile)?)?
            .singleton()?;
        let equipment: Vec<EquipmentItem> =
            values(replica.doc(&self.school_doc(DocKind::Equipment)?)?.list()?);
        let books: Vec<Book> = values(replica.doc(&self.school_doc(DocKind::Books)?)?.list()?);
        let checklist = replica.doc(&self.school_doc(DocKind::Checklist)?)?;
        let rows: Vec<(RecordId, ChecklistRow)> = checklist.list()?;
        let plans: Vec<(RecordId, ImprovementPlan)> = checklist.list()?;
        let (indicators, settings, note) = match &county {
            Some(c) => {
                let template = replica.doc(&DocId::template(c))?;
                let indicators: Vec<IndicatorTemplate> = values(template.list()?);
                let note = indicators.is_empty().then(|| {
                    "县里的指标模板还没有收到：同步一次后才有各项指标的标准值".to_string()
                });
                (indicators, template.singleton::<TemplateSettings>()?, note)
            }
            None => (
                Vec::new(),
                TemplateSettings {
                    teaching_point_policy: None,
                    teaching_point_min_students: None,
                    cv_limit_primary: None,
                    cv_limit_junior: None,
                    books_per_student_primary: None,
                    books_per_student_junior: None,
                    review_due: None,
                },
                Some("还不知道本校所属的县：同步一次后才有县里的指标模板".to_string()),
            ),
        };
        let mut evaluation = evaluate_school(&SchoolInput {
            profile: &profile,
            equipment: &equipment,
            books: &books,
            rows: &rows,
            plans: &plans,
            indicators: &indicators,
            settings: &settings,
        });
        evaluation.notes.extend(note);
        Ok(evaluation)
    }
}

fn values<T>(list: Vec<(RecordId, T)>) -> Vec<T> {
    list.into_iter().map(|(_, r)| r).collect()
}

impl SchoolStore {
    pub(crate) fn ctx(&self) -> EditContext {
        EditContext {
            user: self.user.clone(),
            device: self.device.clone(),
            now_ms: now_ms(),
        }
    }

    pub(crate) fn school_doc(&self, kind: DocKind) -> Result<DocId, TpError> {
        Ok(DocId::school(&self.school, kind)?)
    }

    /// The school's documents: what this store writes, exchanges with other
    /// devices and carries in bundles.
    pub(crate) fn school_docs(&self) -> Vec<DocId> {
        DocId::all_for_school(&self.school)
    }

    /// The school's documents and, once the county is known, its template
    /// (read only): what syncs with the server.
    pub(crate) fn server_scope(&self) -> Vec<DocId> {
        let mut docs = self.school_docs();
        docs.extend(self.county.read().as_ref().map(DocId::template));
        docs
    }

    /// Writable: the school's documents. Readable: those and the template.
    pub(crate) fn policy(&self) -> DocSetPolicy {
        DocSetPolicy {
            readable: self.server_scope().into_iter().collect::<BTreeSet<_>>(),
            writable: self.school_docs().into_iter().collect(),
        }
    }

    fn readable_doc(&self, kind: RecordKind) -> Result<DocId, TpError> {
        match kind.spec().doc_kind {
            DocKind::Template => match self.county.read().as_ref() {
                Some(c) => Ok(DocId::template(c)),
                None => Err(TpError::NotFound {
                    message: "the county's template is not on this device yet: sync with the server first".into(),
                }),
            },
            k => self.school_doc(k),
        }
    }

    fn writable_doc(&self, kind: RecordKind) -> Result<DocId, TpError> {
        match kind.spec().doc_kind {
            DocKind::Template => Err(TpError::NotAllowed {
                message: format!(
                    "{} records belong to the county's template, which only county users change; this device keeps school {}",
                    kind.spec().name,
                    self.school
                ),
            }),
            k => self.school_doc(k),
        }
    }

    pub(crate) fn server_peer() -> PeerId {
        PeerId::new(SERVER_PEER).expect("a valid peer id")
    }
}
