//! Attachment bytes on the server: the blob store, which school holds which
//! blob, uploads in progress, and the limits phones learn before they queue
//! a file.
//!
//! - Bytes live in a [`BlobStore`] under `<data>/blobs/`, once per blob
//!   however many schools attach it.
//! - `tpsync.blob_held` (sled) maps `<school>/<hash>` to the blob's size:
//!   the school has sent these bytes (or the server had them and the school
//!   sent them again). Only such a school's readers are served the blob, and
//!   its quota counts it. A school that merely names another school's photo
//!   in a record gets nothing: it must send the bytes first.
//! - `tpsync.blob_uploads` maps `<school>/<hash>` to the upload's declared
//!   size while it is in progress; the bytes so far are the partial file in
//!   the store, whose length is the upload's progress (synced chunk by
//!   chunk, so it is what was acknowledged).
//!
//! Every method blocks (disk, sled): call them on the blocking pool.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use sync_core::records::Attachment;
use sync_core::store::SledStorage;
use sync_core::{DocId, DocKind, Hub, SchoolId};
use tpsync_blobs::{BlobError, BlobHash, BlobStore, Finished};

/// Limits of attachments, the same for every school unless configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobConfig {
    /// Largest attachment (or preview), in bytes.
    pub max_blob_bytes: u64,
    /// Bytes of attachments a school may hold on the server.
    pub quota_bytes: u64,
    /// Largest chunk frame accepted.
    pub max_frame_bytes: usize,
}

impl Default for BlobConfig {
    fn default() -> Self {
        Self {
            // A phone photo is 1–5 MB before the app shrinks it; a scanned
            // multi-page PDF can reach 10–20 MB.
            max_blob_bytes: 20 << 20,
            // 1 GiB a school: a few thousand shrunk photos and scans.
            quota_bytes: 1 << 30,
            max_frame_bytes: 256 << 10,
        }
    }
}

/// What a phone needs to know before it queues a file.
#[derive(Clone, Debug, Serialize)]
pub struct Limits {
    pub max_attachment_bytes: u64,
    pub max_frame_bytes: usize,
    pub quota_bytes: u64,
    /// Bytes of blobs the school holds on the server, and of uploads in
    /// progress (reserved).
    pub used_bytes: u64,
    pub available_bytes: u64,
    /// Blobs the school's active attachment records name that the server
    /// does not hold for the school (not sent yet, or lost with a disk and
    /// not in the backup restored): a phone that has them sends them again.
    /// At most [`MAX_MISSING_LISTED`].
    pub missing: Vec<BlobHash>,
}

/// The most blob names [`Limits::missing`] lists (about 66 bytes each).
pub const MAX_MISSING_LISTED: usize = 500;

/// Where an upload stands.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct UploadState {
    pub hash: BlobHash,
    pub size: u64,
    /// Bytes stored, synced to disk: resume from here.
    pub received: u64,
    pub complete: bool,
}

/// Why a blob operation was refused. The routes turn it into a problem.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("no attachment record of school {school} names blob {hash} with {size} bytes; sync the records first, then send the bytes")]
    NotReferenced {
        school: SchoolId,
        hash: BlobHash,
        size: u64,
    },
    #[error("the attachment has {size} bytes; this server accepts at most {max} bytes per attachment (shrink the photo or split the scan)")]
    TooLarge { size: u64, max: u64 },
    #[error("school {school} would hold {needed} bytes of attachments, over its quota of {quota} bytes ({used} used); remove attachments or ask the county to raise the quota")]
    OverQuota {
        school: SchoolId,
        needed: u64,
        quota: u64,
        used: u64,
    },
    #[error("no upload of blob {0} was started for this school; start it with POST first")]
    NotStarted(BlobHash),
    #[error("blob {0} is not on the server for this school (not uploaded yet, or not attached by this school)")]
    NotHeld(BlobHash),
    #[error(
        "another upload of blob {0} for this school is in progress; wait for it or retry later"
    )]
    Busy(BlobHash),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("storage: {0}")]
    Storage(String),
}

/// The server's attachment bytes and their bookkeeping.
pub struct Blobs {
    pub config: BlobConfig,
    store: BlobStore,
    held: sled::Tree,
    uploads: sled::Tree,
    /// One request at a time per school and blob. A phone whose connection
    /// was cut reconnects while the server is still storing the frames that
    /// arrived before the cut; its next request waits for them, so the
    /// progress it is told is final.
    locks: Mutex<HashMap<(SchoolId, BlobHash), UploadLock>>,
}

/// The lock of one upload (school and blob).
type UploadLock = Arc<tokio::sync::Mutex<()>>;

fn key(school: &SchoolId, hash: &BlobHash) -> Vec<u8> {
    format!("{school}/{hash}").into_bytes()
}

fn prefix(school: &SchoolId) -> Vec<u8> {
    format!("{school}/").into_bytes()
}

fn storage(e: sled::Error) -> Refusal {
    Refusal::Storage(e.to_string())
}

/// Held while one request writes to (or reads the progress of) an upload.
pub type UploadGuard = tokio::sync::OwnedMutexGuard<()>;

impl Blobs {
    /// Opens the store under `data/blobs` and the bookkeeping trees.
    pub fn open(data: &Path, db: &sled::Db, config: BlobConfig) -> Result<Self, String> {
        let dir = data.join("blobs");
        let store = BlobStore::open(&dir).map_err(|e| e.to_string())?;
        let tree = |name: &str| {
            db.open_tree(name)
                .map_err(|e| format!("cannot open the sled tree {name}: {e}"))
        };
        Ok(Self {
            config,
            store,
            held: tree("tpsync.blob_held")?,
            uploads: tree("tpsync.blob_uploads")?,
            locks: Mutex::new(HashMap::new()),
        })
    }

    /// The blob store (for reading bytes out).
    pub fn store(&self) -> &BlobStore {
        &self.store
    }

    /// Bytes the school holds plus bytes reserved by its uploads in progress.
    pub fn used(&self, school: &SchoolId) -> Result<u64, Refusal> {
        let mut used = 0u64;
        for tree in [&self.held, &self.uploads] {
            for kv in tree.scan_prefix(prefix(school)) {
                let (_, v) = kv.map_err(storage)?;
                used += decode_size(&v);
            }
        }
        Ok(used)
    }

    /// The limits as they apply to `school` now; `named` are the blob names
    /// of the school's active attachment records.
    pub fn limits(&self, school: &SchoolId, named: &[BlobHash]) -> Result<Limits, Refusal> {
        let used = self.used(school)?;
        let mut missing = Vec::new();
        for h in named {
            if missing.len() >= MAX_MISSING_LISTED {
                break;
            }
            if !self.holds(school, h)? && !missing.contains(h) {
                missing.push(*h);
            }
        }
        Ok(Limits {
            max_attachment_bytes: self.config.max_blob_bytes,
            max_frame_bytes: self.config.max_frame_bytes,
            quota_bytes: self.config.quota_bytes,
            used_bytes: used,
            available_bytes: self.config.quota_bytes.saturating_sub(used),
            missing,
        })
    }

    /// Whether the school has sent this blob (so its readers may fetch it).
    pub fn holds(&self, school: &SchoolId, hash: &BlobHash) -> Result<bool, Refusal> {
        Ok(
            self.held.contains_key(key(school, hash)).map_err(storage)?
                && self.store.contains(hash),
        )
    }

    /// Starts an upload, or tells where one stands. `referenced` is whether an
    /// attachment record of the school names `hash` with `size` bytes (the
    /// caller reads the school's attachments document for it).
    pub fn begin(
        &self,
        school: &SchoolId,
        hash: &BlobHash,
        size: u64,
        referenced: bool,
    ) -> Result<UploadState, Refusal> {
        if self.holds(school, hash)? {
            return Ok(UploadState {
                hash: *hash,
                size,
                received: size,
                complete: true,
            });
        }
        if !referenced {
            return Err(Refusal::NotReferenced {
                school: school.clone(),
                hash: *hash,
                size,
            });
        }
        if size > self.config.max_blob_bytes {
            return Err(Refusal::TooLarge {
                size,
                max: self.config.max_blob_bytes,
            });
        }
        let k = key(school, hash);
        if self.uploads.get(&k).map_err(storage)?.is_none() {
            let used = self.used(school)?;
            if used + size > self.config.quota_bytes {
                return Err(Refusal::OverQuota {
                    school: school.clone(),
                    needed: used + size,
                    quota: self.config.quota_bytes,
                    used,
                });
            }
            self.uploads
                .insert(&k, &size.to_be_bytes())
                .map_err(storage)?;
        }
        Ok(UploadState {
            hash: *hash,
            size,
            received: self.store.partial_len(school.as_str(), hash),
            complete: false,
        })
    }

    /// The declared size of an upload in progress.
    pub fn upload_size(&self, school: &SchoolId, hash: &BlobHash) -> Result<u64, Refusal> {
        match self.uploads.get(key(school, hash)).map_err(storage)? {
            Some(v) => Ok(decode_size(&v)),
            None => Err(Refusal::NotStarted(*hash)),
        }
    }

    /// Waits (up to `patience`) until no other request works on this
    /// upload, and holds it until the guard is dropped.
    pub async fn lock_upload(
        &self,
        school: &SchoolId,
        hash: &BlobHash,
        patience: Duration,
    ) -> Result<UploadGuard, Refusal> {
        let m = {
            let mut locks = self.locks.lock();
            // Forget the uploads nobody is working on.
            locks.retain(|_, m| Arc::strong_count(m) > 1);
            locks
                .entry((school.clone(), *hash))
                .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
                .clone()
        };
        tokio::time::timeout(patience, m.lock_owned())
            .await
            .map_err(|_| Refusal::Busy(*hash))
    }

    /// Bytes of the upload stored so far.
    pub fn received(&self, school: &SchoolId, hash: &BlobHash) -> u64 {
        self.store.partial_len(school.as_str(), hash)
    }

    /// Stores one verified chunk at `offset` (synced before it returns).
    /// When the last chunk arrives the whole blob is checked and, if it
    /// matches, held for the school and flushed: only then is it complete.
    ///
    /// A chunk that starts before the stored length (a phone resending what
    /// a cut hid from it) is accepted: only its part past the stored length
    /// is written, so resending is harmless.
    pub fn write_chunk(
        &self,
        _guard: &UploadGuard,
        school: &SchoolId,
        hash: &BlobHash,
        size: u64,
        offset: u64,
        bytes: &[u8],
    ) -> Result<UploadState, Refusal> {
        let have = self.store.partial_len(school.as_str(), hash);
        let end = offset + bytes.len() as u64;
        let received = if offset < have && end <= have {
            have
        } else if offset < have {
            let skip = (have - offset) as usize;
            self.store
                .append(school.as_str(), hash, size, have, &bytes[skip..])?
        } else {
            self.store
                .append(school.as_str(), hash, size, offset, bytes)?
        };
        let complete = received == size;
        if complete {
            self.complete(school, hash, size)?;
        }
        Ok(UploadState {
            hash: *hash,
            size,
            received,
            complete,
        })
    }

    fn complete(&self, school: &SchoolId, hash: &BlobHash, size: u64) -> Result<(), Refusal> {
        let k = key(school, hash);
        match self.store.finish(school.as_str(), hash) {
            Ok(Finished::Stored | Finished::AlreadyStored) => {}
            Err(e) => {
                // The copy was discarded; the upload starts again from zero.
                return Err(e.into());
            }
        }
        self.held.insert(&k, &size.to_be_bytes()).map_err(storage)?;
        self.uploads.remove(&k).map_err(storage)?;
        self.held.flush().map_err(storage)?;
        Ok(())
    }
}

fn decode_size(v: &[u8]) -> u64 {
    v.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

/// The blob names (files and previews) of a school's active attachments.
pub fn active_blob_names(
    hub: &Hub<SledStorage>,
    school: &SchoolId,
) -> Result<Vec<BlobHash>, String> {
    let id = DocId::school(school, DocKind::Attachments).map_err(|e| e.to_string())?;
    hub.read(&id, |doc| {
        doc.list::<Attachment>().map(|list| {
            list.into_iter()
                .filter(|(_, a)| a.status == sync_core::records::AttachmentStatus::Active)
                .flat_map(|(_, a)| {
                    a.blob_names()
                        .filter_map(|n| n.parse().ok())
                        .collect::<Vec<BlobHash>>()
                })
                .collect()
        })
    })
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

/// The attachment records of a school that name `hash` (as the file or as
/// its preview), read through the hub. Removed attachments count: removal
/// is a status, and what was attached stays visible to those who may read it.
pub fn attachments_naming(
    hub: &Hub<SledStorage>,
    school: &SchoolId,
    hash: &BlobHash,
) -> Result<Vec<(u64, String)>, String> {
    let id = DocId::school(school, DocKind::Attachments).map_err(|e| e.to_string())?;
    let hex = hash.to_hex();
    hub.read(&id, |doc| {
        doc.list::<Attachment>().map(|list| {
            list.into_iter()
                .filter_map(|(_, a)| {
                    if a.sha256 == hex {
                        Some((a.size, a.media_type))
                    } else if a.preview_sha256.as_deref() == Some(hex.as_str()) {
                        Some((a.preview_size.unwrap_or(0), "image/jpeg".to_owned()))
                    } else {
                        None
                    }
                })
                .collect()
        })
    })
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}
