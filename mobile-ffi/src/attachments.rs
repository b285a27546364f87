//! Attachments (附件) on the phone: photos and scans kept as files in the
//! store's [`BlobStore`](tpsync_blobs::BlobStore), named by `Attachment`
//! records, and a queue that sends their bytes to the server after the
//! records.
//!
//! - [`SchoolStore::attach_file`] checks the limits the phone learned, copies
//!   the file (and its thumbnail) into the blob store, hashing on the way,
//!   writes the record through the same path as
//!   [`SchoolStore::create`], and queues the bytes. The same bytes attached
//!   twice are kept and sent once.
//! - The queue (sled tree `tpsync.transfers`) has one entry per blob:
//!   `up/<sha256>` from the moment it is queued, kept after the server
//!   confirmed it (that is how `uploaded` is known), and `down/<sha256>`
//!   while a download is under way. Previews go first, so the township sees
//!   a thumbnail of a few KB long before a 3 MB photo has crossed a 2G
//!   link; then files, oldest first. Bytes no active attachment names any
//!   more are not sent, and stay on the phone.
//! - Limits (bytes per file, the school's quota) are learned from the
//!   server by every [`SchoolStore::sync`] and
//!   [`SchoolStore::transfer_attachments`] and kept in the meta tree. Until
//!   the first sync they are the server's defaults: 20 MiB a file, 1 GiB a
//!   school.
//! - Nothing is deleted because of an error: a refused upload stays on the
//!   phone with the server's reason on its queue entry, and its record
//!   stays.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sync_core::records::{AnyRecord, AttachedTo, Attachment, AttachmentStatus, RecordKind};
use sync_core::{DocKind, RecordId, SchoolId};
use tpsync_blobs::{BlobHash, ParseBlobHashError};
use tpsync_client::{AttachmentLimits, Client, ClientConfig, ClientError};

use crate::error::TpError;
use crate::store::{now_ms, SchoolStore};
use crate::sync::{Auth, CancelToken, Credentials, Session};

/// The server's default size limit of one attachment (`--max-attachment-mb`).
const DEFAULT_MAX_ATTACHMENT_BYTES: u64 = 20 << 20;
/// The server's default quota of a school (`--attachment-quota-mb`).
const DEFAULT_QUOTA_BYTES: u64 = 1 << 30;
/// The server's default chunk frame limit.
const DEFAULT_MAX_FRAME_BYTES: u64 = 256 << 10;
/// Requests in a row without progress before an upload gives up for now.
const UPLOAD_ATTEMPTS: u32 = 5;
/// Requests in a row without progress before a download gives up for now.
const DOWNLOAD_ATTEMPTS: u32 = 5;
/// Where the learned limits are kept (meta tree, JSON).
const LIMITS_KEY: &str = "attachment_limits";
/// The queue's order counter (transfers tree).
const SEQ_KEY: &str = "seq";
/// The blob store's partial-transfer owner of downloads.
const DOWNLOAD_OWNER: &str = "down";
/// Server problems that concern one blob: the others in the queue may still
/// go through.
const ITEM_PROBLEMS: &[&str] = &["quota_exceeded", "attachment_too_large", "not_referenced"];

/// One attachment as the app shows it.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct AttachmentInfo {
    /// The attachment record's id.
    pub id: RecordId,
    /// What kind of record it belongs to.
    pub target_kind: AttachedTo,
    /// The record it belongs to.
    pub target: RecordId,
    /// SHA-256 of the bytes (64 lowercase hex): the blob's name.
    pub sha256: String,
    pub size: u64,
    pub media_type: String,
    pub file_name: Option<String>,
    /// 说明
    pub caption: Option<String>,
    /// The thumbnail's name, if there is one.
    pub preview_sha256: Option<String>,
    pub preview_size: Option<u64>,
    /// 拍摄日期 (`YYYY-MM-DD`)
    pub taken_on: Option<String>,
    /// `Removed` attachments are listed too, with their reason.
    pub status: AttachmentStatus,
    pub status_reason: Option<String>,
    /// The bytes are in this store.
    pub on_device: bool,
    /// The thumbnail's bytes are in this store.
    pub preview_on_device: bool,
    /// The server confirmed it has the bytes (sent from here, or fetched
    /// from it). `false` also when this device simply does not know.
    pub uploaded: bool,
    /// The file in this store, for the app to show, when `on_device`.
    pub local_path: Option<String>,
    /// The thumbnail's file in this store, when `preview_on_device`.
    pub preview_local_path: Option<String>,
}

/// Which way bytes travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum TransferDirection {
    /// From this device to the server.
    Upload,
    /// From the server to this device.
    Download,
}

/// One blob waiting to travel.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct TransferItem {
    pub sha256: String,
    pub size: u64,
    /// Uploads: the bytes the server last confirmed storing. Downloads: the
    /// bytes received and verified so far.
    pub done_bytes: u64,
    pub direction: TransferDirection,
    /// A thumbnail (sent before every full file).
    pub is_preview: bool,
    /// The attachment that queued it.
    pub attachment_id: RecordId,
    /// Why the last attempt failed (the server's reason), if it did.
    pub last_error: Option<String>,
}

/// What this phone knows of the server's limits for the school.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct AttachmentLimitsView {
    /// The largest file (or thumbnail) the server accepts.
    pub max_attachment_bytes: u64,
    /// Bytes of attachments the school may keep on the server.
    pub quota_bytes: u64,
    /// Bytes the server counted for the school when the limits were
    /// learned, plus those sent from here since.
    pub used_bytes: u64,
    /// What may still be attached on this phone: the quota less
    /// `used_bytes` and `queued_bytes`.
    pub available_bytes: u64,
    /// Bytes waiting on this phone to be sent.
    pub queued_bytes: u64,
    /// When they were learned (ms since 1970); `None`: never, and the
    /// figures are the server's defaults (20 MiB a file, 1 GiB a school,
    /// nothing used).
    pub learned_at_ms: Option<i64>,
}

/// Told how a transfer is going (implemented by the app).
#[uniffi::export(with_foreign)]
pub trait TransferObserver: Send + Sync {
    /// Called on the transferring thread: for an upload after each request
    /// with the bytes the server confirmed, for a download as bytes arrive.
    fn on_progress(&self, sha256: String, done_bytes: u64, total_bytes: u64);
}

/// What [`SchoolStore::transfer_attachments`] did.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct TransferReport {
    /// Blobs the server confirmed in full during this call.
    pub uploaded: u32,
    /// Bytes the server confirmed storing during this call.
    pub bytes_sent: u64,
    /// Blobs still waiting.
    pub remaining: u32,
    /// What went wrong, per blob or for the whole run (no network: the
    /// queue stays and the next transfer resumes).
    pub errors: Vec<String>,
    /// New tokens if this call signed in or refreshed: store them.
    pub session: Option<Session>,
}

/// A blob fetched by [`SchoolStore::fetch_attachment`].
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct FetchedAttachment {
    /// The file in this store.
    pub local_path: String,
    pub size: u64,
    /// New tokens if this call signed in or refreshed: store them.
    pub session: Option<Session>,
}

/// A queue entry, JSON in the transfers tree under `up/<hex>` or
/// `down/<hex>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct QueueEntry {
    size: u64,
    is_preview: bool,
    /// The attachment that queued it.
    attachment: RecordId,
    /// For people, in messages.
    #[serde(default)]
    file_name: Option<String>,
    /// Queue order: larger is younger.
    seq: u64,
    /// Bytes the server confirmed storing.
    #[serde(default)]
    done: u64,
    /// The server confirmed it has every byte.
    #[serde(default)]
    uploaded: bool,
    #[serde(default)]
    last_error: Option<String>,
}

impl QueueEntry {
    fn label(&self) -> String {
        let name = self.file_name.as_deref().unwrap_or("an attachment");
        if self.is_preview {
            format!("the thumbnail of {name}")
        } else {
            name.to_owned()
        }
    }
}

/// The limits as last learned.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct LearnedLimits {
    #[serde(flatten)]
    limits: AttachmentLimits,
    learned_at_ms: i64,
}

/// What one upload run did.
#[derive(Debug, Default)]
pub(crate) struct Sent {
    pub(crate) uploaded: u32,
    pub(crate) bytes_sent: u64,
    pub(crate) remaining: u32,
    pub(crate) errors: Vec<String>,
}

impl Sent {
    pub(crate) fn error(&self) -> Option<String> {
        (!self.errors.is_empty()).then(|| self.errors.join("; "))
    }
}

fn default_limits() -> AttachmentLimits {
    AttachmentLimits {
        max_attachment_bytes: DEFAULT_MAX_ATTACHMENT_BYTES,
        max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        quota_bytes: DEFAULT_QUOTA_BYTES,
        used_bytes: 0,
        available_bytes: DEFAULT_QUOTA_BYTES,
        missing: Vec::new(),
    }
}

fn key(direction: TransferDirection, hash: &BlobHash) -> Vec<u8> {
    format!("{}{hash}", prefix(direction)).into_bytes()
}

fn prefix(direction: TransferDirection) -> &'static str {
    match direction {
        TransferDirection::Upload => "up/",
        TransferDirection::Download => "down/",
    }
}

fn encode(entry: &QueueEntry) -> Vec<u8> {
    serde_json::to_vec(entry).expect("queue entries serialize")
}

fn decode(bytes: &[u8]) -> Option<QueueEntry> {
    serde_json::from_slice(bytes).ok()
}

fn parse_hash(text: &str) -> Result<BlobHash, TpError> {
    text.trim()
        .parse()
        .map_err(|e: ParseBlobHashError| TpError::invalid(e.to_string()))
}

/// The kind of record an attachment of a `kind` record names.
fn attached_to(kind: RecordKind) -> Result<AttachedTo, TpError> {
    Ok(match kind {
        RecordKind::SchoolProfile => AttachedTo::SchoolProfile,
        RecordKind::EquipmentItem => AttachedTo::EquipmentItem,
        RecordKind::StocktakeSession => AttachedTo::StocktakeSession,
        RecordKind::Book => AttachedTo::Book,
        RecordKind::ArchiveItem => AttachedTo::ArchiveItem,
        RecordKind::ArchiveBox => AttachedTo::ArchiveBox,
        RecordKind::ChecklistRow => AttachedTo::ChecklistRow,
        RecordKind::ImprovementPlan => AttachedTo::ImprovementPlan,
        other => {
            return Err(TpError::invalid(format!(
                "files attach to the school profile, equipment, stocktakes, books, archive items and boxes, checklist rows and improvement plans, not to {} records",
                other.spec().name
            )))
        }
    })
}

/// `bytes` for people: `2.4 MB`, `300 KB`.
fn human(bytes: u64) -> String {
    const MB: f64 = (1u64 << 20) as f64;
    if bytes >= 1 << 20 {
        format!("{:.1} MB", bytes as f64 / MB)
    } else if bytes >= 1 << 10 {
        format!("{} KB", bytes.div_ceil(1 << 10))
    } else {
        format!("{bytes} bytes")
    }
}

/// Refuses, before anything is written, what the server would refuse:
/// a file (`sizes[0]`) or thumbnail over the size limit, or more bytes than
/// the school's quota leaves once `queued` bytes waiting here are sent.
fn check_room(
    limits: &AttachmentLimits,
    learned: bool,
    queued: u64,
    sizes: &[u64],
    school: &SchoolId,
) -> Result<(), TpError> {
    let source = if learned {
        "as the server said at the last sync"
    } else {
        "the server's default; sync once to learn this server's own limits"
    };
    for &size in sizes {
        if size > limits.max_attachment_bytes {
            return Err(TpError::TooLarge {
                message: format!(
                    "the file has {} ({size} bytes); the server accepts at most {} ({} bytes) per attachment ({source}); shrink the photo or split the scan into parts",
                    human(size),
                    human(limits.max_attachment_bytes),
                    limits.max_attachment_bytes
                ),
            });
        }
    }
    let new: u64 = sizes.iter().sum();
    let needed = limits.used_bytes.saturating_add(queued).saturating_add(new);
    if needed > limits.quota_bytes {
        return Err(TpError::QuotaExceeded {
            message: format!(
                "school {school} may keep {} ({} bytes) of attachments on the server ({source}); {} are used there and {} wait on this phone to be sent, so {} more ({new} bytes) do not fit; remove attachments that are not needed, or ask the county to raise the school's quota. Nothing was attached",
                human(limits.quota_bytes),
                limits.quota_bytes,
                human(limits.used_bytes),
                human(queued),
                human(new),
            ),
        });
    }
    Ok(())
}

/// The blob names of the attachments that still count.
fn active_names(records: &[(RecordId, Attachment)]) -> HashSet<String> {
    records
        .iter()
        .filter(|(_, a)| a.status == AttachmentStatus::Active)
        .flat_map(|(_, a)| a.blob_names().map(str::to_owned))
        .collect()
}

/// The uploads still to send, in sending order: every thumbnail first, then
/// the files, oldest first. Those the server confirmed, and those no active
/// attachment names any more, are left out.
fn send_order(
    entries: Vec<(BlobHash, QueueEntry)>,
    active: &HashSet<String>,
) -> Vec<(BlobHash, QueueEntry)> {
    let mut pending: Vec<_> = entries
        .into_iter()
        .filter(|(h, e)| !e.uploaded && active.contains(&h.to_hex()))
        .collect();
    pending.sort_by_key(|(_, e)| (!e.is_preview, e.seq));
    pending
}

/// Lets [`Auth::call`] refresh an expired token, but hands every other
/// error back as a value for the caller to sort out (one blob's problem, or
/// the end of the run).
// ClientError is the client crate's error everywhere; boxing it here alone
// would buy nothing.
#[allow(clippy::result_large_err)]
fn passthrough<T>(r: Result<T, ClientError>) -> Result<Result<T, ClientError>, ClientError> {
    match r {
        Err(e) if e.needs_login() => Err(e),
        other => Ok(other),
    }
}

#[uniffi::export]
impl SchoolStore {
    /// Attaches a file (a photo, a scan) to a record of this school, with an
    /// optional small JPEG thumbnail (`preview_path`) that travels first.
    ///
    /// The record must be on this device (`InvalidInput` otherwise). Before
    /// anything is written the file is checked against the limits this
    /// phone learned at its last sync (the server's defaults, 20 MiB a file
    /// and 1 GiB a school, before the first): `TooLarge` for a file over
    /// the size limit, `QuotaExceeded` when the school's bytes on the
    /// server, those waiting here and this file would pass the quota. Then
    /// the file is copied into this store (so the app may delete its own
    /// copy), the attachment recorded (durable when this returns) and its
    /// bytes queued for the next sync.
    pub fn attach_file(
        &self,
        target_kind: RecordKind,
        target_id: String,
        path: String,
        media_type: String,
        caption: Option<String>,
        preview_path: Option<String>,
    ) -> Result<AttachmentInfo, TpError> {
        let attached = attached_to(target_kind)?;
        let target: RecordId = target_id.trim().parse()?;
        if self.get(target_kind, target.to_string())?.is_none() {
            return Err(TpError::invalid(format!(
                "there is no {} {target} on this device to attach the file to",
                target_kind.spec().name
            )));
        }
        let file = Path::new(&path);
        let size = file_size(file)?;
        let preview = preview_path
            .as_deref()
            .map(|p| file_size(Path::new(p)).map(|n| (Path::new(p), n)))
            .transpose()?;
        let (limits, learned_at) = self.limits_now()?;
        let mut sizes = vec![size];
        sizes.extend(preview.map(|(_, n)| n));
        check_room(
            &limits,
            learned_at.is_some(),
            self.queued_bytes()?,
            &sizes,
            &self.school,
        )?;

        let (hash, size) = self.blobs.put_file(file, limits.max_attachment_bytes)?;
        let preview = match preview {
            Some((p, _)) => Some(self.blobs.put_file(p, limits.max_attachment_bytes)?),
            None => None,
        };
        let file_name = file.file_name().map(|n| n.to_string_lossy().into_owned());
        let record = Attachment {
            target_kind: attached,
            target,
            sha256: hash.to_hex(),
            size,
            media_type,
            file_name: file_name.clone(),
            caption,
            preview_sha256: preview.map(|(h, _)| h.to_hex()),
            preview_size: preview.map(|(_, n)| n),
            taken_on: None,
            status: AttachmentStatus::Active,
            status_reason: None,
        };
        let id = self.create(AnyRecord::Attachment {
            record: record.clone(),
        })?;
        // After the record: bytes are queued only for a record that exists;
        // a crash in between is mended by the next transfer.
        if let Some((h, n)) = preview {
            self.enqueue(&h, n, true, id, file_name.clone())?;
        }
        self.enqueue(&hash, size, false, id, file_name)?;
        self.transfers.flush()?;
        self.attachment_info(id, record)
    }

    /// Every attachment of a record, removed ones included (with their
    /// status and reason), in id order.
    pub fn attachments_of(&self, target_id: String) -> Result<Vec<AttachmentInfo>, TpError> {
        let target: RecordId = target_id.trim().parse()?;
        self.attachment_records()?
            .into_iter()
            .filter(|(_, a)| a.target == target)
            .map(|(id, a)| self.attachment_info(id, a))
            .collect()
    }

    /// Removes an attachment: its status becomes `removed` with `reason`;
    /// the record stays. If its bytes were still waiting to be sent (and no
    /// other attachment names them) they leave the queue, but stay on this
    /// device. Returns whether anything changed.
    pub fn remove_attachment(
        &self,
        attachment_id: String,
        reason: String,
    ) -> Result<bool, TpError> {
        if reason.trim().is_empty() {
            return Err(TpError::invalid(
                "say why the attachment is removed (wrong photo, duplicate…): the reason is kept with it",
            ));
        }
        let id: RecordId = attachment_id.trim().parse()?;
        let changed = self.set_status(
            RecordKind::Attachment,
            id.to_string(),
            AttachmentStatus::Removed.code().to_owned(),
            Some(reason.trim().to_owned()),
            None,
        )?;
        let records = self.attachment_records()?;
        let active = active_names(&records);
        if let Some((_, removed)) = records.iter().find(|(i, _)| *i == id) {
            for name in removed.blob_names().filter(|n| !active.contains(*n)) {
                if let Ok(hash) = name.parse::<BlobHash>() {
                    self.unqueue(&hash)?;
                }
            }
        }
        self.transfers.flush()?;
        Ok(changed)
    }

    /// The transfer queue: uploads in the order the next transfer sends
    /// them (thumbnails first, then files, oldest first), then downloads
    /// under way (resumed by [`SchoolStore::fetch_attachment`]).
    pub fn pending_transfers(&self) -> Result<Vec<TransferItem>, TpError> {
        let item = |direction, hash: BlobHash, e: QueueEntry, done_bytes| TransferItem {
            sha256: hash.to_hex(),
            size: e.size,
            done_bytes,
            direction,
            is_preview: e.is_preview,
            attachment_id: e.attachment,
            last_error: e.last_error,
        };
        let mut out: Vec<TransferItem> = self
            .pending_uploads()?
            .into_iter()
            .map(|(h, e)| {
                let done = e.done;
                item(TransferDirection::Upload, h, e, done)
            })
            .collect();
        let mut downloads = self.entries(TransferDirection::Download)?;
        downloads.sort_by_key(|(_, e)| e.seq);
        for (h, e) in downloads {
            if !self.blobs.contains(&h) {
                let done = self.blobs.partial_len(DOWNLOAD_OWNER, &h);
                out.push(item(TransferDirection::Download, h, e, done));
            }
        }
        Ok(out)
    }

    /// The server's limits as this phone last learned them (every sync
    /// does), and the bytes waiting here. Before the first sync: the
    /// server's defaults, 20 MiB a file and 1 GiB a school.
    pub fn attachment_limits(&self) -> Result<AttachmentLimitsView, TpError> {
        let (limits, learned_at_ms) = self.limits_now()?;
        let queued = self.queued_bytes()?;
        Ok(AttachmentLimitsView {
            max_attachment_bytes: limits.max_attachment_bytes,
            quota_bytes: limits.quota_bytes,
            used_bytes: limits.used_bytes,
            available_bytes: limits
                .quota_bytes
                .saturating_sub(limits.used_bytes.saturating_add(queued)),
            queued_bytes: queued,
            learned_at_ms,
        })
    }

    /// Sends the queued attachment bytes to the server (a sync does this
    /// after the records; call this to send them on their own, e.g. on
    /// Wi-Fi only). Learns the limits, then uploads in queue order,
    /// resuming each where the server stopped; `observer` hears of the
    /// progress, which is also kept for [`SchoolStore::pending_transfers`].
    ///
    /// A blob the server refuses (over the quota, too large, its record
    /// not synced yet) keeps the reason in its queue entry and the run goes
    /// on with the next. A lost connection ends the run; the queue stays,
    /// and the report says why. `cancel` stops between blobs. Fails only if
    /// the limits cannot be learned (no network: `Unreachable`; wrong
    /// tokens: `SignInRequired`).
    pub fn transfer_attachments(
        &self,
        server_url: String,
        credentials: Credentials,
        observer: Option<Arc<dyn TransferObserver>>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<TransferReport, TpError> {
        let client = Client::new(&server_url, ClientConfig::default())?;
        let mut auth = Auth::start(&client, credentials, &self.device)?;
        let sent =
            self.send_attachments(&client, &mut auth, observer.as_deref(), cancel.as_deref())?;
        Ok(TransferReport {
            uploaded: sent.uploaded,
            bytes_sent: sent.bytes_sent,
            remaining: sent.remaining,
            errors: sent.errors,
            session: auth.renewed,
        })
    }

    /// Brings the bytes of an attachment of this school (a file or its
    /// thumbnail, by `sha256`) onto this device: a township laptop showing
    /// a teacher's photo. Returns at once, without the network, if they
    /// are here already. A cut download resumes where it stopped, here
    /// (a few attempts) or at the next call; every chunk is checked, and
    /// the whole against its name before it is kept.
    ///
    /// `NotFound` if no attachment record on this device names the bytes
    /// (sync first), or if the server does not have them yet (the phone
    /// that took the photo has not sent it).
    pub fn fetch_attachment(
        &self,
        server_url: String,
        credentials: Credentials,
        sha256: String,
        observer: Option<Arc<dyn TransferObserver>>,
    ) -> Result<FetchedAttachment, TpError> {
        let hash = parse_hash(&sha256)?;
        let hex = hash.to_hex();
        let named = self.attachment_records()?.into_iter().find_map(|(id, a)| {
            if a.sha256 == hex {
                Some((id, a.size, false, a.file_name))
            } else if a.preview_sha256.as_deref() == Some(hex.as_str()) {
                Some((id, a.preview_size.unwrap_or(0), true, a.file_name))
            } else {
                None
            }
        });
        let Some((attachment, size, is_preview, file_name)) = named else {
            return Err(TpError::NotFound {
                message: format!(
                    "no attachment of school {} on this device names {hex}; sync first",
                    self.school
                ),
            });
        };
        let fetched = |session| FetchedAttachment {
            local_path: self.blobs.path_of(&hash).to_string_lossy().into_owned(),
            size: self.blobs.size_of(&hash).unwrap_or(size),
            session,
        };
        if self.blobs.contains(&hash) {
            return Ok(fetched(None));
        }
        let client = Client::new(&server_url, ClientConfig::default())?;
        let mut auth = Auth::start(&client, credentials, &self.device)?;
        let entry = QueueEntry {
            size,
            is_preview,
            attachment,
            file_name,
            seq: 0,
            done: 0,
            uploaded: false,
            last_error: None,
        };
        let down = key(TransferDirection::Download, &hash);
        if !self.transfers.contains_key(&down)? {
            let entry = QueueEntry {
                seq: self.next_seq()?,
                ..entry.clone()
            };
            self.transfers.insert(&down, encode(&entry))?;
        }
        match self.download(&client, &mut auth, &hash, observer.as_deref()) {
            Ok(()) => {}
            Err(e) => {
                if self.blobs.partial_len(DOWNLOAD_OWNER, &hash) == 0 {
                    self.blobs.discard(DOWNLOAD_OWNER, &hash)?;
                    self.transfers.remove(&down)?;
                }
                return Err(e);
            }
        }
        // The server served these bytes, so it has them: nothing to send.
        self.mark_on_server(&hash, entry)?;
        self.blobs.finish(DOWNLOAD_OWNER, &hash)?;
        self.transfers.remove(&down)?;
        self.transfers.flush()?;
        Ok(fetched(auth.renewed))
    }
}

fn file_size(path: &Path) -> Result<u64, TpError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| TpError::invalid(format!("cannot read the file {}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(TpError::invalid(format!(
            "{} is not a file",
            path.display()
        )));
    }
    Ok(meta.len())
}

impl SchoolStore {
    /// Uploads the queue (see [`SchoolStore::transfer_attachments`]); the
    /// second half of every sync.
    // ClientError is the client crate's error everywhere (see passthrough).
    #[allow(clippy::result_large_err)]
    pub(crate) fn send_attachments(
        &self,
        client: &Client,
        auth: &mut Auth,
        observer: Option<&dyn TransferObserver>,
        cancel: Option<&CancelToken>,
    ) -> Result<Sent, TpError> {
        let Some(_running) = self.transferring.try_lock() else {
            return Ok(Sent {
                remaining: self.pending_upload_count(),
                errors: vec![
                    "another transfer of this school's attachments is running on this device; it sends the queue"
                        .into(),
                ],
                ..Sent::default()
            });
        };
        self.learn_limits(client, auth)?;
        self.requeue_missing()?;
        let school = self.school.to_string();
        let mut sent = Sent::default();
        let mut stopped = false;
        for (hash, entry) in self.pending_uploads()? {
            if cancel.is_some_and(|c| c.is_cancelled()) {
                sent.errors
                    .push("cancelled; the rest of the queue waits for the next transfer".into());
                stopped = true;
                break;
            }
            let k = key(TransferDirection::Upload, &hash);
            if !self.blobs.contains(&hash) {
                let message = format!(
                    "the bytes of {} are no longer on this device and cannot be sent",
                    entry.label()
                );
                self.note_error(&k, &message)?;
                sent.errors.push(message);
                continue;
            }
            let path = self.blobs.path_of(&hash);
            let hex = hash.to_hex();
            let mut first: Option<u64> = None;
            let mut last = 0u64;
            let mut on_progress = |done: u64| {
                first.get_or_insert(done);
                last = done;
                // Best effort: the next progress (or the end) writes again.
                let _ = self.update_entry(&k, |e| e.done = done);
                if let Some(o) = observer {
                    o.on_progress(hex.clone(), done, entry.size);
                }
            };
            let result = auth.call(client, |access| {
                passthrough(client.upload_file(
                    access,
                    &school,
                    &hash,
                    &path,
                    UPLOAD_ATTEMPTS,
                    &mut on_progress,
                ))
            });
            sent.bytes_sent += last.saturating_sub(first.unwrap_or(last));
            let failure = match result {
                Ok(Ok(state)) if state.complete => {
                    self.update_entry(&k, |e| {
                        e.done = e.size;
                        e.uploaded = true;
                        e.last_error = None;
                    })?;
                    sent.uploaded += 1;
                    if first == Some(0) {
                        // New to the server since the limits were learned.
                        self.count_as_used(entry.size)?;
                    }
                    continue;
                }
                Ok(Ok(state)) => (
                    format!(
                        "the server has {} of {} bytes and did not confirm the rest",
                        state.received, state.size
                    ),
                    true,
                ),
                Ok(Err(e)) => {
                    let one_blob = matches!(e.code(), Some(c) if ITEM_PROBLEMS.contains(&c))
                        || matches!(e, ClientError::Io { .. });
                    (TpError::from(e).to_string(), !one_blob)
                }
                Err(e) => (e.to_string(), true),
            };
            let (message, stop) = failure;
            self.note_error(&k, &message)?;
            sent.errors.push(format!("{}: {message}", entry.label()));
            if stop {
                stopped = true;
                break;
            }
        }
        self.transfers.flush()?;
        if sent.uploaded > 0 && !stopped {
            // The server's own count; what was just counted here is an
            // estimate of it. Without an answer the estimate stands.
            let _ = self.learn_limits(client, auth);
        }
        sent.remaining = self.pending_upload_count();
        Ok(sent)
    }

    /// Uploads waiting, for a report (0 if the store cannot be read).
    pub(crate) fn pending_upload_count(&self) -> u32 {
        self.pending_uploads().map(|p| p.len() as u32).unwrap_or(0)
    }

    /// Downloads `hash` into its partial file until complete, resuming,
    /// with a few attempts while each makes progress.
    // ClientError is the client crate's error everywhere (see passthrough).
    #[allow(clippy::result_large_err)]
    fn download(
        &self,
        client: &Client,
        auth: &mut Auth,
        hash: &BlobHash,
        observer: Option<&dyn TransferObserver>,
    ) -> Result<(), TpError> {
        let school = self.school.to_string();
        let partial = self.download_path(hash);
        let hex = hash.to_hex();
        let mut on_progress = |got: u64, total: u64| {
            if let Some(o) = observer {
                o.on_progress(hex.clone(), got, total);
            }
        };
        let mut stalled = 0u32;
        let mut last_error: Option<ClientError> = None;
        loop {
            let before = self.blobs.partial_len(DOWNLOAD_OWNER, hash);
            let result = auth.call(client, |access| {
                passthrough(client.download_to(access, &school, hash, &partial, &mut on_progress))
            })?;
            match result {
                Ok((_, true)) => return Ok(()),
                Ok((_, false)) => {}
                Err(e) if e.is_retryable_transfer() => last_error = Some(e),
                Err(e) => return Err(e.into()),
            }
            if self.blobs.partial_len(DOWNLOAD_OWNER, hash) > before {
                stalled = 0;
            } else {
                stalled += 1;
            }
            if stalled >= DOWNLOAD_ATTEMPTS {
                return Err(match last_error {
                    Some(e) => e.into(),
                    None => TpError::ConnectionLost {
                        message: format!(
                            "the download made no progress in {DOWNLOAD_ATTEMPTS} attempts; fetch it again later, it resumes where it stopped"
                        ),
                    },
                });
            }
        }
    }

    /// Where a download collects its bytes: the blob store's partial file
    /// of owner `down`, so its length is the progress
    /// ([`BlobStore::partial_len`](tpsync_blobs::BlobStore::partial_len))
    /// and [`BlobStore::finish`](tpsync_blobs::BlobStore::finish) checks
    /// and keeps it.
    fn download_path(&self, hash: &BlobHash) -> PathBuf {
        self.blobs
            .root()
            .join("partial")
            .join(format!("{DOWNLOAD_OWNER}.{hash}"))
    }

    fn attachment_records(&self) -> Result<Vec<(RecordId, Attachment)>, TpError> {
        let doc = self.school_doc(DocKind::Attachments)?;
        Ok(self.replica.lock().doc(&doc)?.list::<Attachment>()?)
    }

    fn attachment_info(&self, id: RecordId, a: Attachment) -> Result<AttachmentInfo, TpError> {
        let local = |name: &str| {
            name.parse::<BlobHash>()
                .ok()
                .filter(|h| self.blobs.contains(h))
                .map(|h| self.blobs.path_of(&h).to_string_lossy().into_owned())
        };
        let local_path = local(&a.sha256);
        let preview_local_path = a.preview_sha256.as_deref().and_then(local);
        let uploaded = match a.sha256.parse::<BlobHash>() {
            Ok(h) => self
                .entry(&key(TransferDirection::Upload, &h))?
                .is_some_and(|e| e.uploaded),
            Err(_) => false,
        };
        Ok(AttachmentInfo {
            id,
            target_kind: a.target_kind,
            target: a.target,
            sha256: a.sha256,
            size: a.size,
            media_type: a.media_type,
            file_name: a.file_name,
            caption: a.caption,
            preview_sha256: a.preview_sha256,
            preview_size: a.preview_size,
            taken_on: a.taken_on,
            status: a.status,
            status_reason: a.status_reason,
            on_device: local_path.is_some(),
            preview_on_device: preview_local_path.is_some(),
            uploaded,
            local_path,
            preview_local_path,
        })
    }

    // ----- the queue ------------------------------------------------------

    fn entry(&self, key: &[u8]) -> Result<Option<QueueEntry>, TpError> {
        Ok(self.transfers.get(key)?.and_then(|v| decode(&v)))
    }

    /// The entries of one direction (unreadable ones are skipped).
    fn entries(
        &self,
        direction: TransferDirection,
    ) -> Result<Vec<(BlobHash, QueueEntry)>, TpError> {
        let prefix = prefix(direction);
        let mut out = Vec::new();
        for kv in self.transfers.scan_prefix(prefix) {
            let (k, v) = kv?;
            let hash = std::str::from_utf8(&k[prefix.len()..])
                .ok()
                .and_then(|h| h.parse::<BlobHash>().ok());
            if let (Some(hash), Some(entry)) = (hash, decode(&v)) {
                out.push((hash, entry));
            }
        }
        Ok(out)
    }

    fn pending_uploads(&self) -> Result<Vec<(BlobHash, QueueEntry)>, TpError> {
        let active = active_names(&self.attachment_records()?);
        Ok(send_order(
            self.entries(TransferDirection::Upload)?,
            &active,
        ))
    }

    fn queued_bytes(&self) -> Result<u64, TpError> {
        Ok(self.pending_uploads()?.iter().map(|(_, e)| e.size).sum())
    }

    fn next_seq(&self) -> Result<u64, TpError> {
        let next = self.transfers.update_and_fetch(SEQ_KEY, |old| {
            let n = old
                .and_then(|v| v.try_into().ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            Some((n + 1).to_be_bytes().to_vec())
        })?;
        Ok(next
            .and_then(|v| v.as_ref().try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    /// Queues bytes for upload unless they are queued (or sent) already.
    fn enqueue(
        &self,
        hash: &BlobHash,
        size: u64,
        is_preview: bool,
        attachment: RecordId,
        file_name: Option<String>,
    ) -> Result<(), TpError> {
        let k = key(TransferDirection::Upload, hash);
        if self.transfers.contains_key(&k)? {
            return Ok(());
        }
        let entry = QueueEntry {
            size,
            is_preview,
            attachment,
            file_name,
            seq: self.next_seq()?,
            done: 0,
            uploaded: false,
            last_error: None,
        };
        // Only if still absent: another thread may have queued them since.
        let _ = self
            .transfers
            .compare_and_swap(&k, None::<&[u8]>, Some(encode(&entry)))?;
        Ok(())
    }

    /// Takes bytes off the upload queue (unless the server has them).
    fn unqueue(&self, hash: &BlobHash) -> Result<(), TpError> {
        self.transfers
            .fetch_and_update(key(TransferDirection::Upload, hash), |old| {
                let old = old?;
                decode(old)
                    .is_some_and(|e| e.uploaded)
                    .then(|| old.to_vec())
            })?;
        Ok(())
    }

    /// Changes an entry if it is still there (a removal meanwhile wins).
    fn update_entry(&self, key: &[u8], f: impl Fn(&mut QueueEntry)) -> Result<(), TpError> {
        self.transfers.fetch_and_update(key, |old| {
            let old = old?;
            match decode(old) {
                Some(mut e) => {
                    f(&mut e);
                    Some(encode(&e))
                }
                None => Some(old.to_vec()),
            }
        })?;
        Ok(())
    }

    fn note_error(&self, key: &[u8], message: &str) -> Result<(), TpError> {
        self.update_entry(key, |e| e.last_error = Some(message.to_owned()))
    }

    /// Records that the server has these bytes (they came from it).
    fn mark_on_server(&self, hash: &BlobHash, entry: QueueEntry) -> Result<(), TpError> {
        let seq = self.next_seq()?;
        self.transfers
            .fetch_and_update(key(TransferDirection::Upload, hash), |old| {
                let mut e = old.and_then(decode).unwrap_or_else(|| QueueEntry {
                    seq,
                    ..entry.clone()
                });
                e.done = e.size;
                e.uploaded = true;
                e.last_error = None;
                Some(encode(&e))
            })?;
        Ok(())
    }

    /// Queues the bytes of active attachments that are on this device but
    /// in no queue entry: a crash between writing an attachment's record
    /// and queueing its bytes.
    fn requeue_missing(&self) -> Result<(), TpError> {
        for (id, a) in self.attachment_records()? {
            if a.status != AttachmentStatus::Active {
                continue;
            }
            let preview = a
                .preview_sha256
                .as_deref()
                .map(|p| (p, a.preview_size.unwrap_or(0), true));
            for (name, size, is_preview) in
                std::iter::once((a.sha256.as_str(), a.size, false)).chain(preview)
            {
                let Ok(hash) = name.parse::<BlobHash>() else {
                    continue;
                };
                if self.blobs.contains(&hash)
                    && !self
                        .transfers
                        .contains_key(key(TransferDirection::Upload, &hash))?
                {
                    self.enqueue(&hash, size, is_preview, id, a.file_name.clone())?;
                }
            }
        }
        Ok(())
    }

    // ----- limits ---------------------------------------------------------

    /// The limits as last learned, or the server's defaults (and `None`).
    fn limits_now(&self) -> Result<(AttachmentLimits, Option<i64>), TpError> {
        Ok(
            match self
                .meta
                .get(LIMITS_KEY)?
                .and_then(|v| serde_json::from_slice::<LearnedLimits>(&v).ok())
            {
                Some(l) => (l.limits, Some(l.learned_at_ms)),
                None => (default_limits(), None),
            },
        )
    }

    fn store_limits(&self, limits: AttachmentLimits, learned_at_ms: i64) -> Result<(), TpError> {
        let learned = LearnedLimits {
            limits,
            learned_at_ms,
        };
        let json = serde_json::to_vec(&learned).expect("limits serialize");
        self.meta.insert(LIMITS_KEY, json)?;
        self.meta.flush()?;
        Ok(())
    }

    // ClientError is the client crate's error everywhere (see passthrough).
    #[allow(clippy::result_large_err)]
    fn learn_limits(&self, client: &Client, auth: &mut Auth) -> Result<(), TpError> {
        let school = self.school.to_string();
        let mut limits = auth.call(client, |access| client.attachment_limits(access, &school))?;
        self.send_again(&std::mem::take(&mut limits.missing))?;
        self.store_limits(limits, now_ms())
    }

    /// Bytes this device counted as on the server that the server says it
    /// does not hold (its copy was lost, e.g. a restore from an older
    /// backup): back on the queue, if they are still on this device.
    fn send_again(&self, missing: &[BlobHash]) -> Result<(), TpError> {
        for hash in missing {
            let k = key(TransferDirection::Upload, hash);
            if !self.blobs.contains(hash) {
                continue;
            }
            if self.entry(&k)?.is_some_and(|e| e.uploaded) {
                self.update_entry(&k, |e| {
                    e.uploaded = false;
                    e.done = 0;
                    e.last_error = Some("the server lost its copy; sending it again".into());
                })?;
            }
        }
        Ok(())
    }

    /// Adds bytes the server now holds to the learned count.
    fn count_as_used(&self, bytes: u64) -> Result<(), TpError> {
        if let (mut limits, Some(at)) = self.limits_now()? {
            limits.used_bytes = limits.used_bytes.saturating_add(bytes);
            limits.available_bytes = limits.quota_bytes.saturating_sub(limits.used_bytes);
            self.store_limits(limits, at)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreConfig;
    use sync_core::records::{EquipmentItem, EquipmentStatus};

    fn entry(seq: u64, is_preview: bool) -> QueueEntry {
        QueueEntry {
            size: 100 + seq,
            is_preview,
            attachment: RecordId::from_u128(seq as u128),
            file_name: None,
            seq,
            done: 0,
            uploaded: false,
            last_error: None,
        }
    }

    fn hash(n: u8) -> BlobHash {
        BlobHash::of(&[n])
    }

    #[test]
    fn thumbnails_go_first_then_files_oldest_first_and_sent_or_removed_ones_not_at_all() {
        let mut sent = entry(0, false);
        sent.uploaded = true;
        let entries = vec![
            (hash(1), entry(5, false)),
            (hash(2), entry(2, false)),
            (hash(3), entry(7, true)),
            (hash(4), entry(3, true)),
            (hash(5), sent),
            (hash(6), entry(1, false)), // its attachment was removed
        ];
        let active: HashSet<String> = [1, 2, 3, 4, 5]
            .into_iter()
            .map(|n| hash(n).to_hex())
            .collect();
        let order: Vec<BlobHash> = send_order(entries, &active)
            .into_iter()
            .map(|(h, _)| h)
            .collect();
        assert_eq!(order, vec![hash(4), hash(3), hash(2), hash(1)]);
    }

    #[test]
    fn limits_refuse_a_large_file_and_one_over_the_quota_with_the_figures() {
        let school = SchoolId::new("4301230012").unwrap();
        let defaults = default_limits();
        assert!(check_room(&defaults, false, 0, &[20 << 20, 4000], &school).is_ok());
        let Err(TpError::TooLarge { message }) =
            check_room(&defaults, false, 0, &[(20 << 20) + 1], &school)
        else {
            panic!("a file over 20 MiB is too large")
        };
        assert!(message.contains("default"), "{message}");
        let Err(TpError::TooLarge { .. }) =
            check_room(&defaults, false, 0, &[10, (21 << 20)], &school)
        else {
            panic!("a thumbnail counts too")
        };

        let learned = AttachmentLimits {
            max_attachment_bytes: 1 << 20,
            max_frame_bytes: 1 << 18,
            quota_bytes: 1 << 20,
            used_bytes: 300_000,
            available_bytes: (1 << 20) - 300_000,
            missing: Vec::new(),
        };
        assert!(check_room(&learned, true, 400_000, &[300_000, 48_576], &school).is_ok());
        let Err(TpError::QuotaExceeded { message }) =
            check_room(&learned, true, 400_000, &[300_000, 48_577], &school)
        else {
            panic!("one byte over the quota")
        };
        for figure in [
            "1048576 bytes",
            "4301230012",
            "293 KB",
            "391 KB",
            "348577 bytes",
        ] {
            assert!(message.contains(figure), "{figure} in {message}");
        }
        assert!(message.contains("county"), "{message}");
    }

    struct Phone {
        dir: tempfile::TempDir,
        store: Arc<SchoolStore>,
    }

    fn phone() -> Phone {
        let dir = tempfile::tempdir().unwrap();
        let store = SchoolStore::open(StoreConfig {
            path: dir.path().join("store").to_string_lossy().into_owned(),
            school_code: "4301230012".into(),
            county_code: None,
            username: "teacher-1".into(),
            device_id: "phone-1".into(),
        })
        .unwrap();
        Phone { dir, store }
    }

    impl Phone {
        fn file(&self, name: &str, len: usize, seed: u8) -> String {
            let path = self.dir.path().join(name);
            let bytes: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(seed)).collect();
            std::fs::write(&path, bytes).unwrap();
            path.to_string_lossy().into_owned()
        }

        fn microscope(&self) -> String {
            let item = EquipmentItem {
                asset_no: "YQ-1".into(),
                name: "学生显微镜".into(),
                category_code: None,
                brand: None,
                model: None,
                spec: None,
                unit: Some("台".into()),
                quantity: 1,
                unit_price_fen: 38_000,
                funding_source: None,
                keeper: None,
                room: None,
                acquired_on: None,
                status: EquipmentStatus::InUse,
                status_reason: None,
                status_date: None,
            };
            self.store
                .create(AnyRecord::EquipmentItem { record: item })
                .unwrap()
                .to_string()
        }

        fn attach(
            &self,
            target: &str,
            file: &str,
            preview: Option<&str>,
        ) -> Result<AttachmentInfo, TpError> {
            self.store.attach_file(
                RecordKind::EquipmentItem,
                target.into(),
                file.into(),
                "image/jpeg".into(),
                Some("铭牌".into()),
                preview.map(str::to_owned),
            )
        }
    }

    #[test]
    fn bytes_the_server_lost_go_back_on_the_queue_if_still_here() {
        let p = phone();
        let item = p.microscope();
        let photo = p.file("IMG_0002.jpg", 20_000, 5);
        let info = p.attach(&item, &photo, None).unwrap();
        let hash: BlobHash = info.sha256.parse().unwrap();
        let k = key(TransferDirection::Upload, &hash);
        // As if an earlier transfer had sent it.
        p.store
            .update_entry(&k, |e| {
                e.uploaded = true;
                e.done = e.size;
            })
            .unwrap();
        assert!(p.store.pending_transfers().unwrap().is_empty());
        // A name this device does not hold is ignored.
        let elsewhere = BlobHash::of(b"another device's photo");
        p.store.send_again(&[hash, elsewhere]).unwrap();
        let queue = p.store.pending_transfers().unwrap();
        assert_eq!(queue.len(), 1, "{queue:?}");
        assert_eq!(queue[0].sha256, info.sha256);
        assert_eq!(queue[0].done_bytes, 0);
        assert!(queue[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("lost its copy"));
    }

    #[test]
    fn an_attached_photo_is_copied_recorded_and_queued_thumbnail_first() {
        let p = phone();
        let item = p.microscope();
        let photo = p.file("IMG_0001.jpg", 300_000, 7);
        let thumb = p.file("thumb.jpg", 4_000, 11);
        let a = p.attach(&item, &photo, Some(&thumb)).unwrap();
        assert_eq!(a.file_name.as_deref(), Some("IMG_0001.jpg"));
        assert_eq!(
            (
                a.size,
                a.status,
                a.on_device,
                a.preview_on_device,
                a.uploaded
            ),
            (300_000, AttachmentStatus::Active, true, true, false)
        );
        let local = a.local_path.clone().unwrap();
        assert!(local.contains("/store/attachments/"), "{local}");
        assert_eq!(
            std::fs::read(&local).unwrap(),
            std::fs::read(&photo).unwrap()
        );

        let queue = p.store.pending_transfers().unwrap();
        let shape: Vec<(bool, u64, TransferDirection)> = queue
            .iter()
            .map(|t| (t.is_preview, t.size, t.direction))
            .collect();
        assert_eq!(
            shape,
            vec![
                (true, 4_000, TransferDirection::Upload),
                (false, 300_000, TransferDirection::Upload),
            ]
        );
        assert!(queue
            .iter()
            .all(|t| t.attachment_id == a.id && t.done_bytes == 0));
        assert_eq!(queue[1].sha256, a.sha256);

        // The same photo again: recorded twice, kept and queued once.
        let again = p.attach(&item, &photo, None).unwrap();
        assert_eq!(again.sha256, a.sha256);
        assert_eq!(p.store.pending_transfers().unwrap().len(), 2);
        assert_eq!(p.store.attachments_of(item.clone()).unwrap().len(), 2);

        let limits = p.store.attachment_limits().unwrap();
        assert_eq!((limits.learned_at_ms, limits.queued_bytes), (None, 304_000));
        assert_eq!(limits.available_bytes, (1 << 30) - 304_000);

        // Removing the first keeps its bytes queued (the second names them),
        // but not its thumbnail; removing the second empties the queue. The
        // bytes stay on the phone either way.
        assert!(p
            .store
            .remove_attachment(a.id.to_string(), "拍错了".into())
            .unwrap());
        let queue = p.store.pending_transfers().unwrap();
        assert_eq!(
            queue.iter().map(|t| t.is_preview).collect::<Vec<_>>(),
            vec![false]
        );
        p.store
            .remove_attachment(again.id.to_string(), "重复".into())
            .unwrap();
        assert!(p.store.pending_transfers().unwrap().is_empty());
        let listed = p.store.attachments_of(item).unwrap();
        assert!(listed
            .iter()
            .all(|a| a.status == AttachmentStatus::Removed && a.on_device));
        assert!(listed
            .iter()
            .any(|a| a.status_reason.as_deref() == Some("拍错了")));
        assert!(matches!(
            p.store.remove_attachment(a.id.to_string(), "  ".into()),
            Err(TpError::InvalidInput { .. })
        ));
    }

    #[test]
    fn nothing_is_written_for_a_missing_target_or_a_file_over_the_learned_quota() {
        let p = phone();
        let photo = p.file("a.jpg", 2_000, 3);
        let nobody = RecordId::from_u128(42).to_string();
        assert!(matches!(
            p.attach(&nobody, &photo, None),
            Err(TpError::InvalidInput { .. })
        ));
        let item = p.microscope();
        assert!(matches!(
            p.store.attach_file(
                RecordKind::StocktakeLine,
                item.clone(),
                photo.clone(),
                "image/jpeg".into(),
                None,
                None
            ),
            Err(TpError::InvalidInput { .. })
        ));
        assert!(matches!(
            p.attach(&item, "/no/such/file.jpg", None),
            Err(TpError::InvalidInput { .. })
        ));

        let first = p.attach(&item, &photo, None).unwrap();
        p.store
            .store_limits(
                AttachmentLimits {
                    max_attachment_bytes: 5_000,
                    max_frame_bytes: 1 << 18,
                    quota_bytes: 10_000,
                    used_bytes: 6_000,
                    available_bytes: 4_000,
                    missing: Vec::new(),
                },
                1,
            )
            .unwrap();
        let big = p.file("big.jpg", 5_001, 5);
        assert!(matches!(
            p.attach(&item, &big, None),
            Err(TpError::TooLarge { .. })
        ));
        // 6 000 used + 2 000 queued + 2 001 > 10 000.
        let over = p.file("over.jpg", 2_001, 9);
        let Err(TpError::QuotaExceeded { message }) = p.attach(&item, &over, None) else {
            panic!("over the quota")
        };
        assert!(
            message.contains("9.8 KB") || message.contains("10 KB"),
            "{message}"
        );
        let limits = p.store.attachment_limits().unwrap();
        assert_eq!(
            (
                limits.used_bytes,
                limits.queued_bytes,
                limits.available_bytes,
                limits.learned_at_ms
            ),
            (6_000, 2_000, 2_000, Some(1))
        );
        // Nothing of the refused files was kept; the first is untouched.
        let listed = p.store.attachments_of(item.clone()).unwrap();
        assert_eq!(listed, vec![first]);
        let kept: usize = walk(&p.store.blobs.root().join("sha256"));
        assert_eq!(kept, 1);
        // 2 000 bytes still fit.
        let fits = p.file("fits.jpg", 2_000, 13);
        p.attach(&item, &fits, None).unwrap();
    }

    fn walk(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    walk(&e.path())
                } else {
                    1
                }
            })
            .sum()
    }

    #[test]
    fn no_server_no_harm_the_queue_and_the_records_stay() {
        let p = phone();
        let item = p.microscope();
        let photo = p.file("b.jpg", 10_000, 3);
        p.attach(&item, &photo, None).unwrap();
        let tokens = || Credentials::Tokens {
            access_token: "not-a-token".into(),
            refresh_token: None,
        };
        let err = p
            .store
            .transfer_attachments("http://127.0.0.1:9".into(), tokens(), None, None)
            .unwrap_err();
        assert!(matches!(err, TpError::Unreachable { .. }), "{err:?}");
        assert_eq!(p.store.pending_transfers().unwrap().len(), 1);
        let sha = p.store.attachments_of(item).unwrap()[0].sha256.clone();
        // On the device already: no network needed.
        let here = p
            .store
            .fetch_attachment("http://127.0.0.1:9".into(), tokens(), sha, None)
            .unwrap();
        assert_eq!(
            std::fs::read(here.local_path).unwrap(),
            std::fs::read(&photo).unwrap()
        );
        assert!(matches!(
            p.store
                .fetch_attachment("http://127.0.0.1:9".into(), tokens(), "ab".repeat(32), None),
            Err(TpError::NotFound { .. })
        ));
    }

    #[test]
    fn a_download_collects_in_the_blob_stores_partial_file_of_owner_down() {
        let p = phone();
        let h = hash(9);
        let partial = p.store.download_path(&h);
        std::fs::write(&partial, [1u8; 321]).unwrap();
        assert_eq!(p.store.blobs.partial_len(DOWNLOAD_OWNER, &h), 321);
        p.store.blobs.discard(DOWNLOAD_OWNER, &h).unwrap();
        assert!(!partial.exists());
    }
}
