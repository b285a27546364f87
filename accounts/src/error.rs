//! The one error type of this crate. Each variant has a stable code (the
//! `code` field of the server's problem documents, see docs/http-api.md) and
//! a message a county IT person or a teacher can act on.

use sync_core::DeviceId;

/// Anything an accounts operation can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountsError {
    /// Wrong password or unknown user: the same error for both, so a caller
    /// cannot find out which usernames exist.
    #[error("wrong username or password")]
    InvalidCredentials,
    /// Too many sign-in attempts for this username or from this address.
    #[error("too many sign-in attempts; wait {retry_after_s} s and try again")]
    RateLimited { retry_after_s: u64 },
    /// An access or refresh token past its expiry. The text says which and
    /// what to do.
    #[error("{0}")]
    TokenExpired(String),
    /// A token that is forged, malformed, signed with an unknown or retired
    /// key, or no longer current (replaced, signed out).
    #[error("{0}")]
    TokenInvalid(String),
    /// The device was revoked by an administrator (a lost phone).
    #[error("device '{device}' was revoked by an administrator and can no longer sign in or sync; if it was found again, ask the administrator, then use the app with a new device id (reinstall it or clear its data)")]
    DeviceRevoked { device: DeviceId },
    /// Signed in, but not allowed (a disabled account, a wrong setup code).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts what is stored (a username taken, a device
    /// bound to another user, the county's code once schools exist).
    #[error("{0}")]
    Conflict(String),
    /// `setup` after an administrator exists.
    #[error("an administrator exists already; sign in as an administrator to create more users")]
    SetupDone,
    /// Bad input: a short password, a unit that does not fit the role, an
    /// unreadable file.
    #[error("{0}")]
    BadRequest(String),
    /// Storage failed or holds data this crate did not write.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AccountsError {
    /// The stable code, as in docs/http-api.md.
    pub fn code(&self) -> &'static str {
        match self {
            AccountsError::InvalidCredentials => "invalid_credentials",
            AccountsError::RateLimited { .. } => "rate_limited",
            AccountsError::TokenExpired(_) => "token_expired",
            AccountsError::TokenInvalid(_) => "token_invalid",
            AccountsError::DeviceRevoked { .. } => "device_revoked",
            AccountsError::Forbidden(_) => "forbidden",
            AccountsError::NotFound(_) => "not_found",
            AccountsError::Conflict(_) => "conflict",
            AccountsError::SetupDone => "setup_done",
            AccountsError::BadRequest(_) => "bad_request",
            AccountsError::Internal(_) => "internal",
        }
    }

    /// The HTTP status the server answers with (a suggestion kept beside the
    /// codes so the two cannot drift apart).
    pub fn http_status(&self) -> u16 {
        match self {
            AccountsError::InvalidCredentials
            | AccountsError::TokenExpired(_)
            | AccountsError::TokenInvalid(_)
            | AccountsError::DeviceRevoked { .. } => 401,
            AccountsError::RateLimited { .. } => 429,
            AccountsError::Forbidden(_) => 403,
            AccountsError::NotFound(_) => 404,
            AccountsError::Conflict(_) | AccountsError::SetupDone => 409,
            AccountsError::BadRequest(_) => 400,
            AccountsError::Internal(_) => 500,
        }
    }

    /// Seconds to wait, for `Retry-After`.
    pub fn retry_after_s(&self) -> Option<u64> {
        match self {
            AccountsError::RateLimited { retry_after_s } => Some(*retry_after_s),
            _ => None,
        }
    }
}

impl From<sled::Error> for AccountsError {
    fn from(e: sled::Error) -> Self {
        AccountsError::Internal(format!(
            "account storage failed: {e}; check the data directory's disk space and permissions"
        ))
    }
}

impl From<sled::transaction::TransactionError<AccountsError>> for AccountsError {
    fn from(e: sled::transaction::TransactionError<AccountsError>) -> Self {
        match e {
            sled::transaction::TransactionError::Abort(e) => e,
            sled::transaction::TransactionError::Storage(e) => e.into(),
        }
    }
}

pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> AccountsError {
    AccountsError::Internal(format!(
        "stored {what} does not decode ({e}); the data directory was not written by this version of tpsync or is damaged: restore it from a backup"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_ones() {
        let all = [
            (
                AccountsError::InvalidCredentials,
                "invalid_credentials",
                401,
            ),
            (
                AccountsError::RateLimited { retry_after_s: 3 },
                "rate_limited",
                429,
            ),
            (
                AccountsError::TokenExpired("x".into()),
                "token_expired",
                401,
            ),
            (
                AccountsError::TokenInvalid("x".into()),
                "token_invalid",
                401,
            ),
            (
                AccountsError::DeviceRevoked {
                    device: "p1".parse().unwrap(),
                },
                "device_revoked",
                401,
            ),
            (AccountsError::Forbidden("x".into()), "forbidden", 403),
            (AccountsError::NotFound("x".into()), "not_found", 404),
            (AccountsError::Conflict("x".into()), "conflict", 409),
            (AccountsError::SetupDone, "setup_done", 409),
            (AccountsError::BadRequest("x".into()), "bad_request", 400),
            (AccountsError::Internal("x".into()), "internal", 500),
        ];
        for (e, code, status) in all {
            assert_eq!(e.code(), code);
            assert_eq!(e.http_status(), status, "{code}");
        }
        assert_eq!(
            AccountsError::RateLimited { retry_after_s: 7 }.retry_after_s(),
            Some(7)
        );
        assert_eq!(AccountsError::SetupDone.retry_after_s(), None);
    }
}
