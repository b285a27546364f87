//! Sync: with the server over the built-in HTTP client, as bytes over any
//! transport the app has (its own HTTP stack, Bluetooth, a file), and as
//! bundles carried between devices with no network.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use sync_core::sync::{
    export_bundle, import_bundle, respond, BundleScope, ResponderLimits, SyncSession, SyncStats,
};
use sync_core::{CountyId, DeviceId, DocId, DocOwner, PeerId};
use tpsync_client::{Client, ClientConfig, ClientError, SyncProgress, Tokens};

use crate::error::TpError;
use crate::store::{now_ms, SchoolStore, SERVER_PEER};

/// A signed-in session: keep both tokens (in the platform's secure
/// storage) and pass them to the next [`SchoolStore::sync`].
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
pub struct Session {
    pub access_token: String,
    /// Exchanged for a new access token when it expires; replaced each
    /// time (a sync that refreshed returns the new session: keep it).
    pub refresh_token: String,
    /// Seconds the access token stays valid.
    pub expires_in_s: u64,
    pub username: String,
    /// `teacher`, `township`, `county` or `admin`.
    pub role: String,
    /// The code of the school, township or county the user belongs to.
    pub unit: Option<String>,
    pub device_id: String,
}

// Tokens are secrets: never in logs.
impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("username", &self.username)
            .field("role", &self.role)
            .field("unit", &self.unit)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

impl From<Tokens> for Session {
    fn from(t: Tokens) -> Self {
        Self {
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            expires_in_s: t.expires_in,
            username: t.user.username,
            role: t.user.role.as_str().to_owned(),
            unit: t.user.unit,
            device_id: t.device_id.to_string(),
        }
    }
}

/// How a sync signs in.
#[derive(Clone, uniffi::Enum)]
pub enum Credentials {
    /// Sign in with the password (the first time, or after
    /// `SignInRequired`).
    Password { username: String, password: String },
    /// The tokens of an earlier [`Session`]. An expired access token is
    /// refreshed with the refresh token when one is given.
    Tokens {
        access_token: String,
        refresh_token: Option<String>,
    },
}

/// Signs `username` in on this device; the session's tokens are what later
/// syncs use.
#[uniffi::export]
pub fn sign_in(
    server_url: String,
    username: String,
    password: String,
    device_id: String,
    device_name: Option<String>,
) -> Result<Session, TpError> {
    let device = DeviceId::new(device_id.trim())?;
    let client = Client::new(&server_url, ClientConfig::default())?;
    Ok(client
        .login(username.trim(), &password, &device, device_name.as_deref())?
        .into())
}

/// Where a sync is, after each round.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct SyncProgressView {
    pub round: u32,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub changes_sent: u64,
    pub changes_received: u64,
}

impl From<&SyncStats> for SyncProgressView {
    fn from(s: &SyncStats) -> Self {
        Self {
            round: s.round_trips,
            bytes_sent: s.bytes_sent,
            bytes_received: s.bytes_received,
            changes_sent: s.changes_sent,
            changes_received: s.changes_received,
        }
    }
}

/// Told of a sync's progress (implemented by the app).
#[uniffi::export(with_foreign)]
pub trait SyncObserver: Send + Sync {
    /// Called after each completed round, on the syncing thread.
    fn progress(&self, progress: SyncProgressView);
}

/// Cancels a running sync from another thread: it stops before its next
/// round with `Cancelled`; what was already exchanged is kept.
#[derive(Debug, Default, uniffi::Object)]
pub struct CancelToken(AtomicBool);

#[uniffi::export]
impl CancelToken {
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// What a sync did.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct SyncReport {
    pub round_trips: u32,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub changes_sent: u64,
    pub changes_received: u64,
    /// Documents synced (the school's and the county template).
    pub documents: u32,
    /// Attachments (files and previews) the server confirmed in full during
    /// this sync, sent after the records.
    pub attachments_uploaded: u32,
    /// Attachments still waiting to be sent (see
    /// [`SchoolStore::pending_transfers`]).
    pub attachments_pending: u32,
    /// Why some attachments were not sent (no network, over the school's
    /// quota, …). The records synced all the same.
    pub attachment_error: Option<String>,
    /// New tokens if this sync signed in or refreshed: store them, the old
    /// refresh token stops working soon.
    pub session: Option<Session>,
}

/// Where this store stands with the server.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct SyncStatus {
    /// Changes on this device the server is not known to have (edits
    /// here, and changes from other phones or bundles).
    pub pending_changes: u64,
    /// The end of the last sync that completed (ms since 1970).
    pub last_success_ms: Option<i64>,
    /// The start of the last sync tried.
    pub last_attempt_ms: Option<i64>,
    /// Why the last sync failed, if it did (cleared by a success).
    pub last_error: Option<String>,
}

/// What a bundle import did.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct BundleReport {
    pub documents_changed: Vec<String>,
    pub documents_unchanged: Vec<String>,
}

#[uniffi::export]
impl SchoolStore {
    /// Syncs this school's records (and the county template) with the
    /// server: sends what the server lacks, receives what this device
    /// lacks, round after round until both agree. Local records are never
    /// at risk: a failed or cancelled sync keeps everything written here,
    /// and the next one picks up where it stopped.
    ///
    /// Once the records are through, the attachments waiting on this phone
    /// follow (see [`SchoolStore::transfer_attachments`]): the server takes
    /// bytes only for records it has. A failure there does not fail the
    /// sync: the report says what is still pending and why.
    ///
    /// `observer` hears of each round; `cancel` stops the sync between
    /// rounds. Errors are typed: `WrongCredentials`, `SignInRequired`,
    /// `Unreachable`, `ConnectionLost`, `NotAllowed`, `Cancelled`…
    pub fn sync(
        &self,
        server_url: String,
        credentials: Credentials,
        observer: Option<Arc<dyn SyncObserver>>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<SyncReport, TpError> {
        self.put_meta("last_attempt_ms", &now_ms().to_string())?;
        let result = self.sync_with_server(&server_url, credentials, observer, cancel);
        match &result {
            Ok(_) => {
                self.put_meta("last_success_ms", &now_ms().to_string())?;
                self.meta.remove("last_error")?;
            }
            Err(e) => self.put_meta("last_error", &e.to_string())?,
        }
        self.meta.flush()?;
        result
    }

    /// Pending changes, the last sync and its error.
    pub fn sync_status(&self) -> Result<SyncStatus, TpError> {
        let peer = SchoolStore::server_peer();
        let mut pending = 0u64;
        let mut replica = self.replica.lock();
        for doc in self.school_docs() {
            pending += replica.unsent_changes(&peer, &doc)? as u64;
        }
        drop(replica);
        let number = |key: &str| -> Result<Option<i64>, TpError> {
            Ok(self.get_meta(key)?.and_then(|v| v.parse().ok()))
        };
        Ok(SyncStatus {
            pending_changes: pending,
            last_success_ms: number("last_success_ms")?,
            last_attempt_ms: number("last_attempt_ms")?,
            last_error: self.get_meta("last_error")?,
        })
    }

    /// Starts a sync with `peer` over a transport the app provides: send
    /// each [`Exchange::next_request`] to the peer and give its answer to
    /// [`Exchange::receive`], until `next_request` returns nothing.
    ///
    /// `peer` names the other side in this store's sync memory: `server`
    /// for the server (through the app's own HTTP stack: POST the bytes to
    /// `/v1/sync` as `application/x-tpsync`), the other device's id for a
    /// phone. `include_county_template`: true only with the server (other
    /// devices take only the school's documents).
    pub fn start_exchange(
        self: Arc<Self>,
        peer: String,
        include_county_template: bool,
    ) -> Result<Arc<Exchange>, TpError> {
        let peer = PeerId::new(peer.trim())?;
        let scope = if include_county_template {
            self.server_scope()
        } else {
            self.school_docs()
        };
        Ok(Arc::new(Exchange {
            session: Mutex::new(SyncSession::new(peer.clone(), scope)),
            peer,
            store: self,
        }))
    }

    /// Answers one request of another device's [`Exchange`] (this device is
    /// the responder: a teacher's phone a township clerk syncs with on a
    /// visit). The answer goes back to that device. Its changes to this
    /// school are checked and stored before this returns, all or nothing; a
    /// request to write anything else is refused in the answer.
    pub fn answer_exchange(&self, peer: String, request: Vec<u8>) -> Result<Vec<u8>, TpError> {
        let peer = PeerId::new(peer.trim())?;
        let policy = self.policy();
        let mut replica = self.replica.lock();
        Ok(respond(
            &mut *replica,
            &peer,
            &policy,
            &ResponderLimits::default(),
            &request,
        )?)
    }

    /// A bundle of this school's records to carry to another device (a
    /// file, a USB stick): everything, or with `for_peer` only what that
    /// peer is not known to have.
    pub fn export_bundle(&self, for_peer: Option<String>) -> Result<Vec<u8>, TpError> {
        let scope = match for_peer {
            Some(p) => BundleScope::PeerLacks(PeerId::new(p.trim())?),
            None => BundleScope::Everything,
        };
        let docs = self.school_docs();
        let mut replica = self.replica.lock();
        Ok(export_bundle(&mut replica, &docs, &scope)?)
    }

    /// Imports a bundle made by another device of this school: every
    /// document is checked, all are stored in one durable write or none
    /// is. Importing the same bundle twice changes nothing.
    pub fn import_bundle(&self, bundle: Vec<u8>) -> Result<BundleReport, TpError> {
        let policy = self.policy();
        let mut replica = self.replica.lock();
        let report = import_bundle(&mut replica, &policy, &bundle)?;
        Ok(BundleReport {
            documents_changed: report.docs_changed.iter().map(|d| d.to_string()).collect(),
            documents_unchanged: report
                .docs_unchanged
                .iter()
                .map(|d| d.to_string())
                .collect(),
        })
    }
}

impl SchoolStore {
    fn put_meta(&self, key: &str, value: &str) -> Result<(), TpError> {
        self.meta.insert(key, value.as_bytes())?;
        Ok(())
    }

    fn get_meta(&self, key: &str) -> Result<Option<String>, TpError> {
        Ok(self
            .meta
            .get(key)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    // ClientError is the client crate's error everywhere; boxing it here
    // alone would buy nothing.
    #[allow(clippy::result_large_err)]
    fn sync_with_server(
        &self,
        server_url: &str,
        credentials: Credentials,
        observer: Option<Arc<dyn SyncObserver>>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<SyncReport, TpError> {
        let client = Client::new(server_url, ClientConfig::default())?;
        let mut auth = Auth::start(&client, credentials, &self.device)?;
        let me = auth.call(&client, |access| client.me(access))?;
        let all = me.scope.all();
        if !all.contains(&DocId::school(&self.school, sync_core::DocKind::Profile)?) {
            return Err(TpError::NotAllowed {
                message: format!(
                    "{} may not sync school {}; sign in as one of its teachers or its township",
                    me.user.username, self.school
                ),
            });
        }
        self.learn_county(&all)?;
        let scope: Vec<DocId> = self
            .server_scope()
            .into_iter()
            .filter(|d| all.contains(d))
            .collect();
        let peer = SchoolStore::server_peer();
        let flag = cancel.as_ref().map(|c| &c.0);
        let mut report = |p: &SyncProgress| {
            if let Some(o) = &observer {
                o.progress(SyncProgressView {
                    round: p.round,
                    bytes_sent: p.bytes_sent,
                    bytes_received: p.bytes_received,
                    changes_sent: p.changes_sent,
                    changes_received: p.changes_received,
                });
            }
        };
        let stats = auth.call(&client, |access| {
            client.sync_shared(
                access,
                &self.replica,
                &peer,
                &scope,
                Some(&mut report),
                flag,
            )
        })?;
        // Records first, then the bytes they name.
        let (attachments_uploaded, attachments_pending, attachment_error) =
            match self.send_attachments(&client, &mut auth, None, cancel.as_deref()) {
                Ok(sent) => (sent.uploaded, sent.remaining, sent.error()),
                Err(e) => (0, self.pending_upload_count(), Some(e.to_string())),
            };
        Ok(SyncReport {
            round_trips: stats.round_trips,
            bytes_sent: stats.bytes_sent,
            bytes_received: stats.bytes_received,
            changes_sent: stats.changes_sent,
            changes_received: stats.changes_received,
            documents: scope.len() as u32,
            attachments_uploaded,
            attachments_pending,
            attachment_error,
            session: auth.renewed,
        })
    }

    /// Remembers the county of the template in the user's scope.
    fn learn_county(&self, scope: &[DocId]) -> Result<(), TpError> {
        let county: Option<CountyId> = scope.iter().find_map(|d| match d.owner() {
            DocOwner::County(c) => Some(c.clone()),
            DocOwner::School(_) => None,
        });
        if let Some(c) = county {
            if self.county.read().as_ref() != Some(&c) {
                self.meta.insert("county", c.as_str().as_bytes())?;
                *self.county.write() = Some(c);
            }
        }
        Ok(())
    }
}

/// The tokens of one sync, refreshed once if the access token has expired.
pub(crate) struct Auth {
    access: String,
    refresh: Option<String>,
    /// Set when this sync signed in or refreshed.
    pub(crate) renewed: Option<Session>,
}

impl Auth {
    pub(crate) fn start(
        client: &Client,
        credentials: Credentials,
        device: &DeviceId,
    ) -> Result<Self, TpError> {
        Ok(match credentials {
            Credentials::Password { username, password } => {
                let session: Session = client
                    .login(username.trim(), &password, device, None)?
                    .into();
                Auth {
                    access: session.access_token.clone(),
                    refresh: Some(session.refresh_token.clone()),
                    renewed: Some(session),
                }
            }
            Credentials::Tokens {
                access_token,
                refresh_token,
            } => Auth {
                access: access_token,
                refresh: refresh_token,
                renewed: None,
            },
        })
    }

    /// Runs `f` with the access token; if the server says the token is no
    /// longer good and a refresh token is at hand, refreshes once and runs
    /// `f` again (a sync resumes where it stopped).
    pub(crate) fn call<T>(
        &mut self,
        client: &Client,
        mut f: impl FnMut(&str) -> Result<T, ClientError>,
    ) -> Result<T, TpError> {
        match f(&self.access) {
            Err(e) if e.needs_login() => {
                let Some(refresh) = self.refresh.take() else {
                    return Err(TpError::SignInRequired {
                        message: format!("{e}; sign in again with the password"),
                    });
                };
                let session: Session = client
                    .refresh(&refresh)
                    .map_err(|e| match TpError::from(e) {
                        TpError::SignInRequired { message } | TpError::NotAllowed { message } => {
                            TpError::SignInRequired {
                                message: format!(
                                    "the session has ended ({message}); sign in again with the password"
                                ),
                            }
                        }
                        other => other,
                    })?
                    .into();
                self.access = session.access_token.clone();
                self.renewed = Some(session);
                Ok(f(&self.access)?)
            }
            other => Ok(other?),
        }
    }
}

/// A sync with one peer over the app's own transport (see
/// [`SchoolStore::start_exchange`]). Safe to use from any thread; the
/// store stays usable between rounds.
#[derive(uniffi::Object)]
pub struct Exchange {
    store: Arc<SchoolStore>,
    peer: PeerId,
    session: Mutex<SyncSession>,
}

#[uniffi::export]
impl Exchange {
    /// The next request to send, or `None` when both sides agree (the
    /// exchange is done).
    pub fn next_request(&self) -> Result<Option<Vec<u8>>, TpError> {
        let mut session = self.session.lock();
        let next = session.next_request(&mut self.store.replica.lock())?;
        if next.is_none() && self.peer.as_str() == SERVER_PEER {
            self.store
                .meta
                .insert("last_success_ms", now_ms().to_string().as_bytes())?;
            self.store.meta.remove("last_error")?;
        }
        Ok(next)
    }

    /// Takes the peer's answer to the last request. Nothing of an answer
    /// that fails its checks is applied (then the error says why).
    pub fn receive(&self, response: Vec<u8>) -> Result<(), TpError> {
        let mut session = self.session.lock();
        Ok(session.receive(&mut self.store.replica.lock(), &response)?)
    }

    /// The last request's answer will never come (the link broke): the
    /// next request asks the peer what it has before sending anything
    /// again, so nothing is lost or sent twice.
    pub fn abandon(&self) {
        self.session.lock().abandon();
    }

    pub fn is_done(&self) -> bool {
        self.session.lock().is_done()
    }

    /// Rounds, bytes and changes so far.
    pub fn progress(&self) -> SyncProgressView {
        self.session.lock().stats().into()
    }
}
