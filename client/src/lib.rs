//! # tpsync-client
//!
//! A blocking client for the tpsync server (docs/http-api.md): sign-in,
//! sync over HTTP or a WebSocket, and the administrator's calls. Used by
//! the admin command line ([`admin_cli`]), the end-to-end tests, the
//! 300-device benchmark, and the phones (through the FFI).
//!
//! ```no_run
//! use tpsync_client::{Client, ClientConfig};
//! use sync_core::{store::MemoryStorage, DeviceId, PeerId, Replica};
//!
//! let client = Client::new("http://127.0.0.1:8080", ClientConfig::default())?;
//! let device: DeviceId = "phone-1".parse().unwrap();
//! let tokens = client.login("li", "secret", &device, Some("李老师的手机"))?;
//! let me = client.me(&tokens.access_token)?;
//! let mut replica = Replica::open(MemoryStorage::new());
//! let stats = client.sync(
//!     &tokens.access_token, &mut replica, &PeerId::new("server").unwrap(),
//!     &me.scope.all(), None, None,
//! )?;
//! println!("{} round trips", stats.round_trips);
//! # Ok::<_, tpsync_client::ClientError>(())
//! ```
//!
//! ## Design
//!
//! - **Blocking, no async runtime.** Like sync-core, this crate runs on the
//!   caller's thread: the command line and tests need nothing more, the
//!   benchmark runs one thread per simulated device, and the phone app calls
//!   it from a background thread through the FFI. An async runtime would
//!   add weight and a second way of doing everything for no gain here.
//! - **[`ureq`] for HTTP**: small, blocking, rustls (no OpenSSL to cross-
//!   compile for Android), and with separate timeouts for each phase, which
//!   a 2G link needs: connecting ([`ClientConfig::connect_timeout`]; past
//!   it the server is [`ClientError::Unreachable`]), a stalled transfer
//!   ([`ClientConfig::idle_timeout`]) and the whole exchange
//!   ([`ClientConfig::request_timeout`]) both give
//!   [`ClientError::Timeout`].
//! - **[`tungstenite`] for the WebSocket**: the blocking WebSocket codec,
//!   over a stream this crate opens itself: name resolution and connect
//!   bounded by the connect timeout, TLS with the
//!   same rustls (ring provider, Mozilla's roots) ureq uses, and socket
//!   timeouts for each read, none of which tungstenite's own `connect`
//!   offers.
//! - **Every failure is a typed [`ClientError`]** whose message a teacher
//!   or a clerk can act on; nothing panics on what the network or server
//!   sends. Every non-2xx answer becomes [`ClientError::Problem`]: the RFC
//!   9457 problem document when it is one (with its stable `code`, the
//!   per-document `problems` of a refused sync, and the whole body, e.g. an
//!   import's row errors), otherwise one derived from the status (a proxy's
//!   HTML page, an empty 502).
//! - **One sync loop** for both transports: `SyncSession::next_request`,
//!   send, `SyncSession::receive`, as in `sync_core::sync::sync_local`. A
//!   round that fails in transit is abandoned (`SyncSession::abandon`) and
//!   the error returned; the replica remembers durably that a request was
//!   in flight, so the next sync probes the server before sending again and
//!   nothing is lost or applied twice. Cancelling is checked between
//!   rounds; a round in progress is bounded by the timeouts.
//! - **Tokens are the caller's**: every call takes the access token, so
//!   the caller decides when to refresh (see [`ClientError::needs_login`])
//!   and where to keep tokens (a phone's keystore).

// `ClientError::Problem` carries the server's whole problem document, so the
// error is large; it only travels after a network exchange, whose cost
// dwarfs copying it, and matching on its fields is worth more than a box.
#![allow(clippy::result_large_err)]

pub mod admin_cli;
mod blobs;
mod error;
mod http;
mod net;
mod sync_loop;
mod types;
mod ws;

pub use blobs::{AttachmentLimits, UploadState, FRAMES_CONTENT_TYPE};
pub use error::{ClientError, ProblemItem};
pub use http::{Client, ClientConfig, SYNC_CONTENT_TYPE};
pub use types::{
    County, Device, ImportRowError, KeyInfo, Me, NewUser, Role, School, SchoolImportReport, Scope,
    SyncProgress, Tokens, UserInfo,
};
pub use ws::WsSession;

pub use sync_core::sync::SyncStats;

#[cfg(test)]
mod tests {
    /// The FFI moves clients, sockets and errors across threads.
    #[test]
    fn types_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<crate::Client>();
        send_sync::<crate::ClientError>();
        send::<crate::WsSession>();
    }
}
