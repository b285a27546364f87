//! [`Client`]: the HTTP calls of docs/http-api.md, blocking, over `ureq`.

use std::io::{Read, Write};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use sync_core::store::Storage;
use sync_core::sync::SyncStats;
use sync_core::{DeviceId, DocId, PeerId, Replica};
use ureq::http::{Response, Uri};
use ureq::Body;

use crate::error::{problem_from_answer, ClientError, MAX_PROBLEM_BODY};
use crate::types::{
    County, Device, KeyInfo, Me, NewUser, School, SchoolImportReport, SyncProgress, Tokens,
    UserInfo,
};
use crate::ws::WsSession;

/// The media type of sync frames, both ways.
pub const SYNC_CONTENT_TYPE: &str = "application/x-tpsync";

/// Timeouts and limits of a [`Client`] (and of a [`WsSession`] opened with
/// it).
///
/// The defaults are for a phone on a 2G link: a dead link is noticed within
/// [`idle_timeout`](Self::idle_timeout) (no byte moved), while a large but
/// moving first sync is allowed [`request_timeout`](Self::request_timeout)
/// in all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// Resolving the name, opening the connection and the TLS handshake.
    /// Past it the server counts as unreachable and nothing was sent.
    pub connect_timeout: Duration,
    /// The most one exchange may take, from sending the request to the last
    /// byte of the answer. A backup download is exempt (it can be large);
    /// the idle timeout still applies to it.
    pub request_timeout: Duration,
    /// The most a transfer may stall (no byte read or written) before the
    /// call fails with [`ClientError::Timeout`].
    pub idle_timeout: Duration,
    /// The largest answer accepted (sync frames, JSON), so a broken or
    /// hostile server cannot exhaust a phone's memory.
    pub max_response_bytes: u64,
    /// Sent as `User-Agent` (the server logs it).
    pub user_agent: String,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(20),
            request_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(60),
            // The sync engine refuses frames over 64 MiB decoded; a frame on
            // the wire is at most that plus its header.
            max_response_bytes: 64 * 1024 * 1024 + 1024,
            user_agent: format!("tpsync-client/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// A blocking client of one tpsync server. Cheap to clone; clones share
/// the connection pool. Every method returns a typed [`ClientError`].
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    pub(crate) agent: ureq::Agent,
    config: ClientConfig,
    /// How far uploads get before the link drops, learned across uploads
    /// (the link's quality outlives one photo).
    pub(crate) link: std::sync::Arc<parking_lot::Mutex<crate::blobs::FrameSizer>>,
}

/// A server base address, checked: `http` or `https`, a host, an optional
/// path prefix (a server behind a reverse proxy), no query.
#[derive(Clone, Debug)]
pub(crate) struct BaseUrl {
    /// Without a trailing `/`.
    pub text: String,
    pub tls: bool,
    /// The host as written (IPv6 without brackets).
    pub host: String,
    pub port: u16,
}

impl BaseUrl {
    pub(crate) fn parse(url: &str) -> Result<Self, ClientError> {
        let bad = |reason: &str| ClientError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let trimmed = url.trim();
        if trimmed.contains('#') || trimmed.contains('?') {
            return Err(bad("it may not contain '?' or '#'"));
        }
        let uri: Uri = trimmed.parse().map_err(|e| bad(&format!("{e}")))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            Some(other) => {
                return Err(bad(&format!(
                    "the scheme must be http or https, not {other}"
                )))
            }
            None => return Err(bad("it must start with http:// or https://")),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("it names no host"))?;
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(bad("it may not contain a user name or password"));
        }
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let path = uri.path().trim_end_matches('/').to_owned();
        let text = format!(
            "{}://{}{}",
            if tls { "https" } else { "http" },
            uri.authority().expect("has a host").as_str(),
            path
        );
        Ok(Self {
            text,
            tls,
            host,
            port,
        })
    }
}

impl Client {
    /// A client of the server at `base_url` (`http://host:port`, optionally
    /// with a path prefix). Checks the address; connects only when called.
    pub fn new(base_url: &str, config: ClientConfig) -> Result<Self, ClientError> {
        let base = BaseUrl::parse(base_url)?;
        let agent = ureq::Agent::config_builder()
            // Non-2xx answers are read and turned into problems here.
            .http_status_as_error(false)
            // A redirect is reported (the address is wrong), never followed
            // with the bearer token or a sync body.
            .max_redirects(0)
            .max_redirects_will_error(false)
            .user_agent(config.user_agent.as_str())
            .timeout_resolve(Some(config.connect_timeout))
            .timeout_connect(Some(config.connect_timeout))
            .timeout_per_call(Some(config.request_timeout))
            .timeout_per_read(Some(config.idle_timeout))
            .timeout_per_write(Some(config.idle_timeout))
            .build()
            .new_agent();
        Ok(Self {
            base: base.text,
            agent,
            config,
            link: Default::default(),
        })
    }

    /// The checked base address, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    // ----- auth -------------------------------------------------------

    /// `POST /v1/setup`: creates the first administrator (no login needed;
    /// refused with `setup_done` once one exists). `code` is the one-time
    /// setup code the server prints at start while it has no administrator.
    pub fn setup(
        &self,
        code: &str,
        username: &str,
        password: &str,
    ) -> Result<UserInfo, ClientError> {
        let body = json!({"code": code, "username": username, "password": password});
        let resp = self.post_json("/v1/setup", None, &body)?;
        self.read_json(resp, "the setup answer")
    }

    /// `POST /v1/auth/login`: signs `username` in on this device.
    pub fn login(
        &self,
        username: &str,
        password: &str,
        device_id: &DeviceId,
        device_name: Option<&str>,
    ) -> Result<Tokens, ClientError> {
        let mut body = json!({"username": username, "password": password, "device_id": device_id});
        if let Some(name) = device_name {
            body["device_name"] = Value::from(name);
        }
        let resp = self.post_json("/v1/auth/login", None, &body)?;
        self.read_json(resp, "the login answer")
    }

    /// `POST /v1/auth/refresh`: new tokens for a refresh token (which is
    /// replaced: keep the new one).
    pub fn refresh(&self, refresh_token: &str) -> Result<Tokens, ClientError> {
        let body = json!({"refresh_token": refresh_token});
        let resp = self.post_json("/v1/auth/refresh", None, &body)?;
        self.read_json(resp, "the refresh answer")
    }

    /// `POST /v1/auth/logout`: revokes this device's refresh token.
    pub fn logout(&self, access: &str) -> Result<(), ClientError> {
        self.post("/v1/auth/logout", Some(access), None, &[])?;
        Ok(())
    }

    /// `GET /v1/me`: the token's user, device and sync scope.
    pub fn me(&self, access: &str) -> Result<Me, ClientError> {
        let resp = self.get("/v1/me", Some(access))?;
        self.read_json(resp, "the account answer")
    }

    // ----- public ---------------------------------------------------------

    /// `GET /healthz`.
    pub fn health(&self) -> Result<Value, ClientError> {
        let resp = self.get("/healthz", None)?;
        self.read_json(resp, "the health answer")
    }

    /// `GET /metrics`: Prometheus text.
    pub fn metrics(&self) -> Result<String, ClientError> {
        let mut resp = self.get("/metrics", None)?;
        resp.body_mut()
            .with_config()
            .limit(self.config.max_response_bytes)
            .lossy_utf8(true)
            .read_to_string()
            .map_err(|e| self.transport(e))
    }

    // ----- sync -----------------------------------------------------------

    /// One round: `POST /v1/sync` with a request frame; the response frame.
    /// A refused request is [`ClientError::Problem`] (nothing applied).
    pub fn sync_round(&self, access: &str, request: &[u8]) -> Result<Vec<u8>, ClientError> {
        let mut resp = self.post("/v1/sync", Some(access), Some(SYNC_CONTENT_TYPE), request)?;
        if let Some(ct) = content_type(&resp) {
            if !ct.eq_ignore_ascii_case(SYNC_CONTENT_TYPE) {
                return Err(ClientError::Protocol(format!(
                    "the sync answer is {ct}, not a tpsync frame; is the server address right, or is a network sign-in page in the way?"
                )));
            }
        }
        resp.body_mut()
            .with_config()
            .limit(self.config.max_response_bytes)
            .read_to_vec()
            .map_err(|e| self.transport(e))
    }

    /// Syncs `scope` of `replica` with the server over HTTP, round after
    /// round until every document is settled.
    ///
    /// `server_peer` names the server in the replica's sync state (use the
    /// same one every time, e.g. `PeerId::new("server")`). After each round
    /// `progress` (if any) is told where the sync is; `cancel` (if any) is
    /// checked before each round and stops the sync with
    /// [`ClientError::Cancelled`]. A round that fails in transit is
    /// abandoned: the next sync asks the server what it has before sending
    /// anything again, so nothing is lost or sent twice.
    pub fn sync<S: Storage>(
        &self,
        access: &str,
        replica: &mut Replica<S>,
        server_peer: &PeerId,
        scope: &[DocId],
        progress: Option<&mut dyn FnMut(&SyncProgress)>,
        cancel: Option<&AtomicBool>,
    ) -> Result<SyncStats, ClientError> {
        crate::sync_loop::run(replica, server_peer, scope, progress, cancel, |req| {
            self.sync_round(access, req)
        })
    }

    /// [`Client::sync`] for a replica shared between threads (a phone app's
    /// store): the lock is taken only to build each request and to apply
    /// each response, never held while the network is waited on.
    pub fn sync_shared<S: Storage>(
        &self,
        access: &str,
        replica: &parking_lot::Mutex<Replica<S>>,
        server_peer: &PeerId,
        scope: &[DocId],
        progress: Option<&mut dyn FnMut(&SyncProgress)>,
        cancel: Option<&AtomicBool>,
    ) -> Result<SyncStats, ClientError> {
        crate::sync_loop::run_shared(replica, server_peer, scope, progress, cancel, |req| {
            self.sync_round(access, req)
        })
    }

    /// Opens the sync WebSocket (`GET /v1/sync/ws`) with this client's
    /// address and timeouts.
    pub fn connect_ws(&self, access: &str) -> Result<WsSession, ClientError> {
        WsSession::connect_with_config(&self.base, access, self.config.clone())
    }

    // ----- admin ----------------------------------------------------------

    /// `POST /v1/admin/county`.
    pub fn create_county(
        &self,
        access: &str,
        code: &str,
        name: &str,
    ) -> Result<County, ClientError> {
        let body = json!({"code": code, "name": name});
        let resp = self.post_json("/v1/admin/county", Some(access), &body)?;
        self.read_json(resp, "the county answer")
    }

    /// `POST /v1/admin/schools/import`: a CSV file of schools. Any row
    /// error refuses the whole file: [`ClientError::Problem`] (422) whose
    /// [`ClientError::import_report`] lists each row error. With `dry_run`
    /// nothing is imported either way.
    pub fn import_schools(
        &self,
        access: &str,
        csv: &[u8],
        dry_run: bool,
    ) -> Result<SchoolImportReport, ClientError> {
        let path = format!("/v1/admin/schools/import?dry_run={dry_run}");
        let resp = self.post(&path, Some(access), Some("text/csv; charset=utf-8"), csv)?;
        self.read_json(resp, "the import report")
    }

    /// `GET /v1/admin/schools`.
    pub fn schools(&self, access: &str) -> Result<Vec<School>, ClientError> {
        let resp = self.get("/v1/admin/schools", Some(access))?;
        self.read_json(resp, "the list of schools")
    }

    /// `POST /v1/admin/users`.
    pub fn create_user(&self, access: &str, user: &NewUser) -> Result<UserInfo, ClientError> {
        let resp = self.post_json("/v1/admin/users", Some(access), user)?;
        self.read_json(resp, "the new user")
    }

    /// `GET /v1/admin/users`.
    pub fn users(&self, access: &str) -> Result<Vec<UserInfo>, ClientError> {
        let resp = self.get("/v1/admin/users", Some(access))?;
        self.read_json(resp, "the list of users")
    }

    /// `GET /v1/admin/devices`.
    pub fn devices(&self, access: &str) -> Result<Vec<Device>, ClientError> {
        let resp = self.get("/v1/admin/devices", Some(access))?;
        self.read_json(resp, "the list of devices")
    }

    /// `POST /v1/admin/devices/{id}/revoke`: the device can no longer
    /// refresh its tokens.
    pub fn revoke_device(&self, access: &str, device_id: &str) -> Result<Device, ClientError> {
        let path = format!("/v1/admin/devices/{}/revoke", percent_encode(device_id));
        let resp = self.post(&path, Some(access), None, &[])?;
        self.read_json(resp, "the revoked device")
    }

    /// `POST /v1/admin/keys/rotate`: a new token signing key.
    pub fn rotate_key(&self, access: &str) -> Result<KeyInfo, ClientError> {
        let resp = self.post("/v1/admin/keys/rotate", Some(access), None, &[])?;
        self.read_json(resp, "the new key")
    }

    /// `GET /v1/admin/backup`: streams the backup file into `out`; returns
    /// its size. Not bounded by [`ClientConfig::request_timeout`] (a backup
    /// can be large), only by the idle timeout. On error `out` holds a
    /// partial file: write to a temporary file and rename on success.
    pub fn backup<W: Write + ?Sized>(&self, access: &str, out: &mut W) -> Result<u64, ClientError> {
        let request = self
            .agent
            .get(self.url("/v1/admin/backup"))
            .config()
            .timeout_per_call(None)
            .build()
            .header("Authorization", bearer(access)?);
        let resp = self.check(request.call())?;
        if let Some(ct) = content_type(&resp) {
            if ct.starts_with("text/") || ct.contains("json") {
                return Err(ClientError::Protocol(format!(
                    "the backup answer is {ct}, not a backup file"
                )));
            }
        }
        let mut reader = resp.into_body().into_reader();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.transport(ureq::Error::from(e))),
            };
            out.write_all(&buf[..n])
                .map_err(|e| ClientError::io("cannot write the backup", e))?;
            total += n as u64;
        }
        out.flush()
            .map_err(|e| ClientError::io("cannot write the backup", e))?;
        Ok(total)
    }

    // ----- plumbing -------------------------------------------------------

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn get(
        &self,
        path: &str,
        access: Option<&str>,
    ) -> Result<Response<Body>, ClientError> {
        let mut req = self.agent.get(self.url(path));
        if let Some(a) = access {
            req = req.header("Authorization", bearer(a)?);
        }
        self.check(req.call())
    }

    fn post(
        &self,
        path: &str,
        access: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Response<Body>, ClientError> {
        let mut req = self.agent.post(self.url(path));
        if let Some(a) = access {
            req = req.header("Authorization", bearer(a)?);
        }
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        self.check(req.send(body))
    }

    pub(crate) fn post_json<T: Serialize + ?Sized>(
        &self,
        path: &str,
        access: Option<&str>,
        body: &T,
    ) -> Result<Response<Body>, ClientError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| ClientError::InvalidInput(format!("cannot encode the request: {e}")))?;
        self.post(path, access, Some("application/json"), &bytes)
    }

    /// A transport error becomes a typed error; a non-2xx answer becomes
    /// [`ClientError::Problem`].
    pub(crate) fn check(
        &self,
        result: Result<Response<Body>, ureq::Error>,
    ) -> Result<Response<Body>, ClientError> {
        let mut resp = result.map_err(|e| self.transport(e))?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(resp);
        }
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let ct = content_type(&resp);
        let retry = header("retry-after");
        let location = header("location");
        // The body only explains the error: if it cannot be read, the
        // status alone still makes a typed error.
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_PROBLEM_BODY)
            .read_to_vec()
            .unwrap_or_default();
        Err(problem_from_answer(
            status,
            ct.as_deref(),
            retry.as_deref(),
            location.as_deref(),
            &body,
        ))
    }

    pub(crate) fn read_json<T: DeserializeOwned>(
        &self,
        mut resp: Response<Body>,
        what: &str,
    ) -> Result<T, ClientError> {
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(self.config.max_response_bytes)
            .read_to_vec()
            .map_err(|e| self.transport(e))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            ClientError::Protocol(format!("{what} is not the JSON the API describes: {e}"))
        })
    }

    /// Maps a ureq error to a [`ClientError`].
    pub(crate) fn transport(&self, e: ureq::Error) -> ClientError {
        use ureq::Error as E;
        use ureq::Timeout as T;
        match e {
            E::Timeout(T::Resolve | T::Connect) => ClientError::Unreachable(format!(
                "{} did not answer within {} s",
                self.base,
                self.config.connect_timeout.as_secs_f32()
            )),
            E::Timeout(_) => ClientError::Timeout,
            E::HostNotFound => {
                ClientError::Unreachable(format!("the name in {} does not resolve", self.base))
            }
            E::ConnectionFailed => {
                ClientError::Unreachable(format!("no connection to {} could be made", self.base))
            }
            E::Io(io) => crate::net::map_io(&self.base, io),
            E::BadUri(reason) => ClientError::InvalidUrl {
                url: self.base.clone(),
                reason,
            },
            E::Http(e) => ClientError::InvalidInput(format!("cannot build the request: {e}")),
            E::Protocol(e) => ClientError::Protocol(format!("not valid HTTP: {e}")),
            E::BodyExceedsLimit(n) => ClientError::Protocol(format!(
                "the answer is larger than {n} bytes, the most this app accepts"
            )),
            E::Tls(reason) => ClientError::Tls(reason.to_owned()),
            E::Rustls(e) => ClientError::Tls(e.to_string()),
            E::Pem(e) => ClientError::Tls(e.to_string()),
            E::TooManyRedirects | E::RedirectFailed => {
                ClientError::Protocol("the server redirected the request".into())
            }
            E::StatusCode(status) => problem_from_answer(status, None, None, None, &[]),
            other => ClientError::Protocol(other.to_string()),
        }
    }
}

/// The `Authorization` header for an access token. A token with characters
/// HTTP headers cannot carry is refused here, before anything is sent.
pub(crate) fn bearer(access: &str) -> Result<String, ClientError> {
    if access.is_empty() || !access.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ClientError::InvalidInput(
            "the access token is empty or has characters a token never has; sign in again".into(),
        ));
    }
    Ok(format!("Bearer {access}"))
}

/// The answer's media type, without parameters, lowercase.
fn content_type(resp: &Response<Body>) -> Option<String> {
    resp.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|v| !v.is_empty())
}

/// Percent-encodes a path segment (RFC 3986 unreserved characters stay).
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked_and_normalised() {
        let b = BaseUrl::parse(" http://127.0.0.1:8080/ ").unwrap();
        assert_eq!(
            (b.text.as_str(), b.tls, b.host.as_str(), b.port),
            ("http://127.0.0.1:8080", false, "127.0.0.1", 8080)
        );
        let b = BaseUrl::parse("https://county.example/tpsync/").unwrap();
        assert_eq!(
            (b.text.as_str(), b.tls, b.port),
            ("https://county.example/tpsync", true, 443)
        );
        let b = BaseUrl::parse("http://[::1]:9000").unwrap();
        assert_eq!((b.host.as_str(), b.port), ("::1", 9000));
        for bad in [
            "",
            "127.0.0.1:8080",
            "ftp://x",
            "http://",
            "http://a b",
            "http://x/?q=1",
            "http://u:p@x",
        ] {
            let e = BaseUrl::parse(bad).unwrap_err();
            assert!(matches!(e, ClientError::InvalidUrl { .. }), "{bad}: {e:?}");
        }
    }

    #[test]
    fn a_name_that_does_not_resolve_is_unreachable_not_a_cut() {
        // `.invalid` never resolves (RFC 2606). Before the fix this was
        // ConnectionLost ("the connection was cut"), found by the mobile
        // API's Python tests.
        let client =
            Client::new("http://no-such-host.invalid:8080", ClientConfig::default()).unwrap();
        let e = client.health().unwrap_err();
        assert!(matches!(e, ClientError::Unreachable(_)), "{e:?}");
        assert!(e.to_string().contains("does not resolve"), "{e}");
    }

    #[test]
    fn tokens_and_path_segments_are_made_safe() {
        assert!(bearer("abc.def-ghi_~").is_ok());
        assert!(matches!(
            bearer("a\r\nX: y"),
            Err(ClientError::InvalidInput(_))
        ));
        assert!(matches!(bearer(""), Err(ClientError::InvalidInput(_))));
        assert_eq!(percent_encode("phone-1"), "phone-1");
        assert_eq!(percent_encode("a/b c"), "a%2Fb%20c");
        assert_eq!(percent_encode("手机"), "%E6%89%8B%E6%9C%BA");
    }
}
