//! Who is calling: the `Caller` extractor (after axum's JWT example). The
//! access token comes in `Authorization: Bearer …`, or for a WebSocket,
//! whose browser API cannot set headers, in `?access_token=…`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tpsync_accounts::{Caller, Role};

use crate::{now_ms, ApiError, AppState};

/// A verified caller.
pub struct Authed(pub Caller);

/// A verified caller with the admin role.
pub struct Admin(pub Caller);

/// The access token of a request: the bearer header, else `?access_token=`.
pub(crate) fn token(parts: &Parts) -> Option<String> {
    if let Some(v) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        let (scheme, rest) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| rest.trim().to_owned());
    }
    parts.uri.query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("access_token="))
            .map(str::to_owned)
    })
}

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(t) = token(parts) else {
            return Err(ApiError::unauthorized(
                "no access token; sign in (POST /v1/auth/login) and send the token as `Authorization: Bearer <token>`",
            ));
        };
        match state.accounts.verify(&t, now_ms()) {
            Ok(c) => Ok(Authed(c)),
            Err(e) => {
                state.metrics.auth_refused(e.code());
                Err(e.into())
            }
        }
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Authed(c) = Authed::from_request_parts(parts, state).await?;
        if c.role != Role::Admin {
            return Err(ApiError::forbidden(format!(
                "user '{}' is a {} user; only an administrator may manage accounts",
                c.username,
                c.role.as_str()
            )));
        }
        Ok(Admin(c))
    }
}
