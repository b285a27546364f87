//! [`WsSession`]: sync over the WebSocket `GET /v1/sync/ws`, and the
//! server's "changed" notices.
//!
//! Frames are strictly ordered: each binary request is answered by one
//! binary response (or a text `problem`), while text `changed` notices may
//! arrive at any time and are queued. If a round fails in transit (cut,
//! timeout), its answer might still arrive later and be taken for the next
//! round's, so the session is then unusable: every later call fails with
//! [`ClientError::ConnectionLost`] and the caller connects again.

use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde_json::Value;
use sync_core::store::Storage;
use sync_core::sync::SyncStats;
use sync_core::{DocId, PeerId, Replica};
use tungstenite::client::ClientRequestBuilder;
use tungstenite::handshake::HandshakeError;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use crate::error::{problem_from_answer, ClientError};
use crate::http::{BaseUrl, ClientConfig};
use crate::net::{self, Stream};
use crate::types::SyncProgress;

/// An open sync WebSocket.
pub struct WsSession {
    socket: WebSocket<Stream>,
    config: ClientConfig,
    where_: String,
    notices: VecDeque<Vec<DocId>>,
    /// Why the socket can no longer be used, once it cannot.
    broken: Option<String>,
}

impl std::fmt::Debug for WsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsSession")
            .field("server", &self.where_)
            .field("queued_notices", &self.notices.len())
            .field("broken", &self.broken)
            .finish()
    }
}

/// What one read brought.
enum Got {
    Frame(Vec<u8>),
    Problem(ClientError),
    /// A `changed` notice, now queued.
    Notice,
    /// Waiting for a notice, the time ran out.
    Nothing,
}

impl WsSession {
    /// Connects to `base_url` (`http://…` or `https://…`) with
    /// [`ClientConfig::default`] timeouts.
    pub fn connect(base_url: &str, access: &str) -> Result<Self, ClientError> {
        Self::connect_with_config(base_url, access, ClientConfig::default())
    }

    /// Connects with the given timeouts and limits. The token goes in the
    /// `Authorization` header (never in the URL, which proxies log).
    pub fn connect_with_config(
        base_url: &str,
        access: &str,
        config: ClientConfig,
    ) -> Result<Self, ClientError> {
        let base = BaseUrl::parse(base_url)?;
        if access.is_empty() || !access.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ClientError::InvalidInput(
                "the access token is empty or has characters a token never has; sign in again"
                    .into(),
            ));
        }
        let where_ = base.text.clone();
        let ws_url = format!(
            "{}{}/v1/sync/ws",
            if base.tls { "wss://" } else { "ws://" },
            base.text
                .split_once("://")
                .map(|(_, rest)| rest)
                .unwrap_or(""),
        );
        let uri = ws_url.parse().map_err(|e| ClientError::InvalidUrl {
            url: base_url.to_owned(),
            reason: format!("{e}"),
        })?;
        let request = ClientRequestBuilder::new(uri)
            .with_header("Authorization", format!("Bearer {access}"))
            .with_header("User-Agent", config.user_agent.clone());
        let stream = net::connect(
            &base.host,
            base.port,
            base.tls,
            config.connect_timeout,
            config.idle_timeout,
        )?;
        // The handshake is one HTTP exchange: bounded like a request.
        stream
            .set_read_timeout(config.idle_timeout.min(config.request_timeout))
            .map_err(|e| net::map_io(&where_, e))?;
        let limit = usize::try_from(config.max_response_bytes).unwrap_or(usize::MAX);
        let ws_config = WebSocketConfig::default()
            .max_message_size(Some(limit))
            .max_frame_size(Some(limit));
        let socket = match tungstenite::client::client_with_config(request, stream, Some(ws_config))
        {
            Ok((socket, _response)) => socket,
            Err(HandshakeError::Interrupted(_)) => return Err(ClientError::Timeout),
            Err(HandshakeError::Failure(e)) => return Err(map_ws(&where_, e)),
        };
        Ok(Self {
            socket,
            config,
            where_,
            notices: VecDeque::new(),
            broken: None,
        })
    }

    /// Syncs `scope` of `replica` over this socket: the same loop as
    /// [`crate::Client::sync`], one binary frame each way per round.
    /// `changed` notices that arrive meanwhile are queued for
    /// [`Self::wait_changed`]. A refused round ends the sync with
    /// [`ClientError::Problem`] and leaves the socket usable; a round cut or
    /// timed out leaves it unusable (connect again).
    pub fn sync<S: Storage>(
        &mut self,
        replica: &mut Replica<S>,
        server_peer: &PeerId,
        scope: &[DocId],
        progress: Option<&mut dyn FnMut(&SyncProgress)>,
        cancel: Option<&AtomicBool>,
    ) -> Result<SyncStats, ClientError> {
        crate::sync_loop::run(replica, server_peer, scope, progress, cancel, |req| {
            self.sync_round(req)
        })
    }

    /// One round: sends a request frame, returns the response frame.
    pub fn sync_round(&mut self, request: &[u8]) -> Result<Vec<u8>, ClientError> {
        self.usable()?;
        let deadline = Instant::now() + self.config.request_timeout;
        if let Err(e) = self.socket.send(Message::binary(request.to_vec())) {
            return Err(self.fail(map_ws(&self.where_, e)));
        }
        match self.next(deadline, true)? {
            Got::Frame(f) => Ok(f),
            Got::Problem(p) => Err(p),
            Got::Notice | Got::Nothing => Err(self.fail(ClientError::Timeout)),
        }
    }

    /// The documents named by the next `changed` notice (every notice
    /// already queued, merged), or `None` if none came within `timeout`.
    pub fn wait_changed(&mut self, timeout: Duration) -> Result<Option<Vec<DocId>>, ClientError> {
        if self.notices.is_empty() {
            self.usable()?;
            match self.next(Instant::now() + timeout, false)? {
                Got::Notice => {}
                Got::Nothing => return Ok(None),
                Got::Problem(p) => return Err(p),
                Got::Frame(_) => {
                    return Err(self.fail(ClientError::Protocol(
                        "the server sent a sync frame no request asked for".into(),
                    )))
                }
            }
        }
        let mut docs: Vec<DocId> = self.notices.drain(..).flatten().collect();
        docs.sort();
        docs.dedup();
        Ok(Some(docs))
    }

    /// Closes the socket politely (best effort).
    pub fn close(mut self) {
        if self.broken.is_none() {
            let _ = self.socket.close(None);
            let _ = self
                .socket
                .get_ref()
                .set_read_timeout(Duration::from_secs(1));
            // Read until the server's close answer (or anything fails).
            while self.socket.read().is_ok() {}
        }
    }

    fn usable(&self) -> Result<(), ClientError> {
        match &self.broken {
            Some(why) => Err(ClientError::ConnectionLost(format!("{why}; connect again"))),
            None => Ok(()),
        }
    }

    fn fail(&mut self, e: ClientError) -> ClientError {
        if self.broken.is_none() {
            self.broken = Some(match &e {
                ClientError::Timeout => "an earlier exchange on this socket timed out".to_owned(),
                other => other.to_string(),
            });
        }
        e
    }

    /// Reads until something happens. In a round (`in_round`): until the
    /// response frame or a problem, queuing notices, failing after
    /// `deadline` or a stall of the idle timeout. Otherwise: until a notice
    /// or `deadline`.
    fn next(&mut self, deadline: Instant, in_round: bool) -> Result<Got, ClientError> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return if in_round {
                    Err(self.fail(ClientError::Timeout))
                } else {
                    Ok(Got::Nothing)
                };
            }
            let wait = if in_round {
                left.min(self.config.idle_timeout)
            } else {
                left
            };
            if let Err(e) = self.socket.get_ref().set_read_timeout(wait) {
                return Err(self.fail(net::map_io(&self.where_, e)));
            }
            let msg = match self.socket.read() {
                Ok(m) => m,
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if in_round {
                        // Stalled past the idle timeout, or past the deadline.
                        return Err(self.fail(ClientError::Timeout));
                    }
                    // Nothing came; a partly read frame stays buffered.
                    continue;
                }
                Err(e) => return Err(self.fail(map_ws(&self.where_, e))),
            };
            match msg {
                Message::Binary(b) => return Ok(Got::Frame(b.to_vec())),
                Message::Text(t) => match parse_text(t.as_str()) {
                    Text::Changed(docs) => {
                        self.notices.push_back(docs);
                        if !in_round {
                            return Ok(Got::Notice);
                        }
                    }
                    Text::Problem(p) => return Ok(Got::Problem(p)),
                    Text::Other => {}
                },
                Message::Close(frame) => {
                    let why = match frame {
                        Some(f) if !f.reason.is_empty() => {
                            format!("the server closed the connection: {}", f.reason)
                        }
                        _ => "the server closed the connection".to_owned(),
                    };
                    return Err(self.fail(ClientError::ConnectionLost(why)));
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }
}

/// A text message from the server.
enum Text {
    Changed(Vec<DocId>),
    Problem(ClientError),
    /// Anything else (a newer server's message kind): ignored.
    Other,
}

fn parse_text(text: &str) -> Text {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return Text::Other;
    };
    match v.get("type").and_then(Value::as_str) {
        Some("changed") => Text::Changed(
            v.get("docs")
                .and_then(Value::as_array)
                .map(|docs| {
                    // An id this version cannot parse is not one it holds.
                    docs.iter()
                        .filter_map(Value::as_str)
                        .filter_map(|d| d.parse().ok())
                        .collect()
                })
                .unwrap_or_default(),
        ),
        Some("problem") => {
            let status = v
                .get("status")
                .and_then(Value::as_u64)
                .and_then(|s| u16::try_from(s).ok())
                .unwrap_or(400);
            Text::Problem(problem_from_answer(
                status,
                Some("application/problem+json"),
                None,
                None,
                text.as_bytes(),
            ))
        }
        _ => Text::Other,
    }
}

/// Maps a tungstenite error to a typed error.
fn map_ws(where_: &str, e: tungstenite::Error) -> ClientError {
    use tungstenite::Error as E;
    match e {
        E::Http(resp) => {
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let ct = header("content-type").map(|c| {
                c.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
            problem_from_answer(
                resp.status().as_u16(),
                ct.as_deref(),
                header("retry-after").as_deref(),
                header("location").as_deref(),
                resp.body().as_deref().unwrap_or(&[]),
            )
        }
        E::Io(io) => net::map_io(where_, io),
        E::ConnectionClosed
        | E::AlreadyClosed
        | E::Protocol(tungstenite::error::ProtocolError::ResetWithoutClosingHandshake) => {
            ClientError::ConnectionLost("the connection was closed".into())
        }
        E::Tls(e) => ClientError::Tls(e.to_string()),
        E::Capacity(e) => ClientError::Protocol(format!("a message is too large: {e}")),
        E::Url(e) => ClientError::InvalidUrl {
            url: where_.to_owned(),
            reason: e.to_string(),
        },
        E::HttpFormat(e) => ClientError::InvalidInput(format!("cannot build the request: {e}")),
        other => ClientError::Protocol(other.to_string()),
    }
}
