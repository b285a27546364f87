//! [`Phone`]: a simulated device — a real sled store in a temporary
//! directory, edited offline with sync-core and synced over HTTP with the
//! client — and [`fresh_view`], what a signed-in user gets into an empty
//! store.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use automerge::ReadDoc;

use sync_core::records::{AttachedTo, Attachment, AttachmentStatus, Book, EquipmentItem};
use sync_core::store::{MemoryStorage, SledStorage, Storage};
use sync_core::sync::SyncStats;
use sync_core::workload::{sample_book, sample_equipment};
use sync_core::{ChangeHash, DocId, DocKind, EditContext, PeerId, RecordId, Replica, SchoolId};
use tempfile::TempDir;
use tpsync_client::{Client, ClientError, Tokens};

/// `len` bytes that stand in for a photo: they do not compress, and differ
/// per `seed`.
pub fn photo(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// How every replica names the server in its sync state.
pub fn server_peer() -> PeerId {
    PeerId::new("server").expect("peer id")
}

/// Strictly increasing wall-clock milliseconds, shared by every device of
/// the test process (edit times are what history shows).
pub fn now_ms() -> i64 {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let mut prev = LAST.load(Ordering::Relaxed);
    loop {
        let next = wall.max(prev + 1);
        match LAST.compare_exchange(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(p) => prev = p,
        }
    }
}

/// A teacher's (or township's, or county's) device with its own durable
/// store.
pub struct Phone {
    pub replica: Replica<SledStorage>,
    /// The user's account and this device's sign-in.
    pub tokens: Tokens,
    _dir: TempDir,
}

impl Phone {
    /// A new device with an empty store, signed in with `tokens`.
    pub fn new(tokens: Tokens) -> Self {
        let dir = tempfile::tempdir().expect("phone temp dir");
        let storage = SledStorage::open(dir.path().join("store")).expect("open the phone's store");
        Phone {
            replica: Replica::open(storage),
            tokens,
            _dir: dir,
        }
    }

    pub fn device(&self) -> &str {
        self.tokens.device_id.as_str()
    }

    /// The edit context of the next edit: this user, this device, now.
    pub fn ctx(&self) -> EditContext {
        EditContext {
            user: self.tokens.user.id.parse().expect("user id"),
            device: self.tokens.device_id.clone(),
            now_ms: now_ms(),
        }
    }

    /// Registers a book (入册) offline; `n` numbers it.
    pub fn add_book(&mut self, school: &SchoolId, n: usize) -> RecordId {
        let id = RecordId::random();
        let ctx = self.ctx();
        let doc = books(school);
        self.replica
            .edit(&doc, |d| d.insert(&ctx, id, &sample_book(n)))
            .expect("insert a book");
        id
    }

    /// Records an equipment item (清点) offline.
    pub fn add_equipment(&mut self, school: &SchoolId, n: usize) -> RecordId {
        let id = RecordId::random();
        let ctx = self.ctx();
        let doc = DocId::school(school, DocKind::Equipment).expect("doc id");
        self.replica
            .edit(&doc, |d| d.insert(&ctx, id, &sample_equipment(n)))
            .expect("insert an equipment item");
        id
    }

    /// Attaches a photo named `sha256` (`size` bytes) to the equipment item
    /// `item`, offline: the record only; the bytes travel separately, after
    /// the records.
    pub fn attach_photo(
        &mut self,
        school: &SchoolId,
        item: RecordId,
        sha256: &str,
        size: u64,
        n: usize,
    ) -> RecordId {
        let id = RecordId::random();
        let ctx = self.ctx();
        let doc = DocId::school(school, DocKind::Attachments).expect("doc id");
        let record = Attachment {
            target_kind: AttachedTo::EquipmentItem,
            target: item,
            sha256: sha256.to_owned(),
            size,
            media_type: "image/jpeg".into(),
            file_name: Some(format!("IMG_{n:04}.jpg")),
            caption: Some("铭牌".into()),
            preview_sha256: None,
            preview_size: None,
            taken_on: Some("2026-11-20".into()),
            status: AttachmentStatus::Active,
            status_reason: None,
        };
        self.replica
            .edit(&doc, |d| d.insert(&ctx, id, &record))
            .expect("attach a photo");
        id
    }

    /// Puts a book on a shelf (上架) offline.
    pub fn shelve(&mut self, school: &SchoolId, id: RecordId, shelf: &str) {
        let ctx = self.ctx();
        let changed = self
            .replica
            .edit(&books(school), |d| {
                d.update::<Book>(&ctx, id, |b| b.shelf = Some(shelf.to_owned()))
            })
            .expect("shelve a book");
        assert!(changed, "shelving {id} on {shelf} changed nothing");
    }

    pub fn book(&mut self, school: &SchoolId, id: RecordId) -> Option<Book> {
        self.replica
            .doc(&books(school))
            .expect("load books")
            .get::<Book>(id)
            .expect("read a book")
    }

    pub fn equipment(&mut self, school: &SchoolId, id: RecordId) -> Option<EquipmentItem> {
        let doc = DocId::school(school, DocKind::Equipment).expect("doc id");
        self.replica
            .doc(&doc)
            .expect("load equipment")
            .get::<EquipmentItem>(id)
            .expect("read an item")
    }

    /// Syncs `scope` with the server over HTTP.
    pub fn sync(&mut self, client: &Client, scope: &[DocId]) -> Result<SyncStats, ClientError> {
        client.sync(
            &self.tokens.access_token,
            &mut self.replica,
            &server_peer(),
            scope,
            None,
            None,
        )
    }

    /// Syncs everything the account may read (from `/v1/me`).
    pub fn sync_all(&mut self, client: &Client) -> Result<SyncStats, ClientError> {
        let scope = client.me(&self.tokens.access_token)?.scope.all();
        self.sync(client, &scope)
    }

    pub fn heads(&mut self, doc: &DocId) -> Vec<ChangeHash> {
        heads(&mut self.replica, doc)
    }
}

pub fn books(school: &SchoolId) -> DocId {
    DocId::school(school, DocKind::Books).expect("doc id")
}

/// A document's heads, sorted.
pub fn heads<S: Storage>(replica: &mut Replica<S>, doc: &DocId) -> Vec<ChangeHash> {
    let mut h = replica.doc(doc).expect("load the document").heads();
    h.sort();
    h
}

/// Whether the replica's copy of `doc` holds the change `hash`.
pub fn has_change<S: Storage>(replica: &mut Replica<S>, doc: &DocId, hash: ChangeHash) -> bool {
    replica
        .doc(doc)
        .expect("load the document")
        .automerge()
        .get_change_by_hash(&hash)
        .is_some()
}

/// What `tokens`' account gets from the server into an empty in-memory
/// store: every document of its scope (or of `scope`, if given). The
/// county user's view is the server's whole state.
pub fn fresh_view(
    client: &Client,
    tokens: &Tokens,
    scope: Option<&[DocId]>,
) -> Result<Replica<MemoryStorage>, ClientError> {
    let scope = match scope {
        Some(s) => s.to_vec(),
        None => client.me(&tokens.access_token)?.scope.all(),
    };
    let mut r = Replica::open(MemoryStorage::new());
    client.sync(
        &tokens.access_token,
        &mut r,
        &server_peer(),
        &scope,
        None,
        None,
    )?;
    Ok(r)
}

/// The ids of every book in `school`'s books document of `replica`.
pub fn book_ids<S: Storage>(replica: &mut Replica<S>, school: &SchoolId) -> Vec<RecordId> {
    replica
        .doc(&books(school))
        .expect("load books")
        .list::<Book>()
        .expect("list books")
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}
