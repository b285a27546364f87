//! [`TpError`]: every failure an app can see, typed, with a message a person
//! can read (and act on).

use sync_core::{Error as CoreError, IdError, StorageError};
use tpsync_blobs::BlobError;
use tpsync_client::ClientError;

/// What went wrong. Every variant carries `message`, written for the person
/// using the app: what happened and what to do.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum TpError {
    /// A value given to the call is wrong (a malformed id, a field value off
    /// its type, an unknown field or status). Nothing was written.
    #[error("{message}")]
    InvalidInput { message: String },
    /// The record (or document) does not exist.
    #[error("{message}")]
    NotFound { message: String },
    /// This user may not do this (write the county's template, sync another
    /// school). Nothing was written.
    #[error("{message}")]
    NotAllowed { message: String },
    /// Sign-in refused: wrong username or password (or a disabled account).
    #[error("{message}")]
    WrongCredentials { message: String },
    /// The session is over (the token expired and could not be refreshed,
    /// the device was revoked, the refresh token was reused): sign in again
    /// with the password. Nothing local was lost.
    #[error("{message}")]
    SignInRequired { message: String },
    /// Too many attempts; try again after `retry_after_s` seconds.
    #[error("{message}")]
    RateLimited { message: String, retry_after_s: u64 },
    /// The server could not be reached (no network, wrong address, server
    /// down). Nothing was sent; local records are untouched.
    #[error("{message}")]
    Unreachable { message: String },
    /// The server did not answer in time, or the connection was cut. Safe
    /// to sync again: the next sync picks up where this one stopped.
    #[error("{message}")]
    ConnectionLost { message: String },
    /// The other side refused what was sent (off-schema changes, a request
    /// too large). Nothing of it was applied on either side.
    #[error("{message}")]
    Refused { message: String },
    /// The server answered with an error this API has no better name for.
    #[error("{message}")]
    Server { message: String, status: u16 },
    /// The sync was cancelled through its [`crate::CancelToken`]. What was
    /// already exchanged is kept.
    #[error("{message}")]
    Cancelled { message: String },
    /// The local store failed (disk full, store damaged, already open in
    /// another process).
    #[error("{message}")]
    Storage { message: String },
    /// Bytes that are not a sync message or bundle, or a message out of turn.
    #[error("{message}")]
    Protocol { message: String },
    /// An attachment is larger than the server accepts for one file: shrink
    /// the photo or split the scan. Nothing was written.
    #[error("{message}")]
    TooLarge { message: String },
    /// The school's attachments would exceed its quota on the server: remove
    /// attachments or ask the county to raise the quota. Nothing was
    /// written, and nothing already attached is lost.
    #[error("{message}")]
    QuotaExceeded { message: String },
}

impl TpError {
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        TpError::InvalidInput {
            message: message.into(),
        }
    }
}

impl From<IdError> for TpError {
    fn from(e: IdError) -> Self {
        TpError::invalid(e.to_string())
    }
}

impl From<StorageError> for TpError {
    fn from(e: StorageError) -> Self {
        TpError::Storage {
            message: e.to_string(),
        }
    }
}

impl From<CoreError> for TpError {
    fn from(e: CoreError) -> Self {
        let message = e.to_string();
        match e {
            CoreError::Id(_)
            | CoreError::InvalidValue { .. }
            | CoreError::UnknownField { .. }
            | CoreError::RecordExists { .. }
            | CoreError::WrongDocument { .. } => TpError::InvalidInput { message },
            CoreError::RecordNotFound { .. } => TpError::NotFound { message },
            CoreError::AccessDenied { .. } => TpError::NotAllowed { message },
            CoreError::Storage(_) => TpError::Storage { message },
            CoreError::Refused(_) | CoreError::Schema(_) => TpError::Refused { message },
            CoreError::Decode(_) | CoreError::Protocol(_) | CoreError::Automerge { .. } => {
                TpError::Protocol { message }
            }
        }
    }
}

impl From<ClientError> for TpError {
    fn from(e: ClientError) -> Self {
        let message = e.to_string();
        match e {
            ClientError::InvalidUrl { .. } | ClientError::InvalidInput(_) => {
                TpError::InvalidInput { message }
            }
            ClientError::Unreachable(_) | ClientError::Tls(_) => TpError::Unreachable { message },
            ClientError::Timeout | ClientError::ConnectionLost(_) => {
                TpError::ConnectionLost { message }
            }
            ClientError::Cancelled => TpError::Cancelled { message },
            ClientError::Sync(core) => core.into(),
            ClientError::Problem {
                status,
                ref code,
                retry_after,
                ..
            } => match code.as_str() {
                "invalid_credentials" => TpError::WrongCredentials { message },
                "unauthorized" | "token_expired" | "token_invalid" | "device_revoked" => {
                    TpError::SignInRequired { message }
                }
                "rate_limited" => TpError::RateLimited {
                    message,
                    retry_after_s: retry_after.map(|d| d.as_secs()).unwrap_or(60),
                },
                "forbidden" => TpError::NotAllowed { message },
                "attachment_too_large" => TpError::TooLarge { message },
                "quota_exceeded" => TpError::QuotaExceeded { message },
                "not_found" => TpError::NotFound { message },
                "malformed" | "invalid" | "too_large" | "bad_request" => {
                    TpError::Refused { message }
                }
                "timeout" => TpError::ConnectionLost { message },
                _ => TpError::Server { message, status },
            },
            ClientError::Protocol(_) => TpError::Protocol { message },
            ClientError::Io { .. } => TpError::Storage { message },
            _ => TpError::Server { message, status: 0 },
        }
    }
}

impl From<BlobError> for TpError {
    fn from(e: BlobError) -> Self {
        let message = e.to_string();
        match e {
            BlobError::TooLarge { .. } => TpError::TooLarge { message },
            BlobError::Missing(_) => TpError::NotFound { message },
            BlobError::Mismatch { .. } => TpError::Protocol { message },
            _ => TpError::Storage { message },
        }
    }
}

impl From<sled::Error> for TpError {
    fn from(e: sled::Error) -> Self {
        TpError::Storage {
            message: format!("the local store failed: {e}"),
        }
    }
}
