//! Signing keys and access tokens (JWT, HS256, `kid` in the header).

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::{corrupt, AccountsError};
use crate::model::Role;

/// Bytes of secret per signing key.
pub(crate) const KEY_BYTES: usize = 32;

/// A signing key as stored in `accounts.keys` (key: its kid).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct KeyRecord {
    pub kid: String,
    pub secret_hex: String,
    pub created_ms: u64,
    /// When a newer key replaced it; it keeps verifying for `access_ttl`
    /// after that.
    pub replaced_ms: Option<u64>,
}

/// The claims of an access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claims {
    /// User id.
    pub sub: String,
    pub username: String,
    pub role: Role,
    pub unit: Option<String>,
    /// Device id.
    pub device: String,
    /// The device's session number; signing out starts a new one, which
    /// ends the access tokens of the old.
    pub sid: u64,
    /// Seconds since the epoch.
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
}

struct RingKey {
    decoding: DecodingKey,
    replaced_ms: Option<u64>,
}

/// The keys in memory, so a verification reads no storage.
pub(crate) struct KeyRing {
    current_kid: String,
    current: EncodingKey,
    keys: HashMap<String, RingKey>,
}

impl KeyRing {
    /// From the stored keys; `None` if there is no current key.
    pub fn from_records(records: &[KeyRecord]) -> Result<Option<Self>, AccountsError> {
        let mut keys = HashMap::new();
        let mut current = None;
        for r in records {
            let secret = hex::decode(&r.secret_hex).map_err(|e| corrupt("signing key", e))?;
            if secret.len() < KEY_BYTES {
                return Err(corrupt("signing key", "too short"));
            }
            keys.insert(
                r.kid.clone(),
                RingKey {
                    decoding: DecodingKey::from_secret(&secret),
                    replaced_ms: r.replaced_ms,
                },
            );
            if r.replaced_ms.is_none() {
                // The newest unreplaced key wins should there be two.
                if current
                    .as_ref()
                    .is_none_or(|(_, c, _): &(String, u64, EncodingKey)| r.created_ms >= *c)
                {
                    current = Some((
                        r.kid.clone(),
                        r.created_ms,
                        EncodingKey::from_secret(&secret),
                    ));
                }
            }
        }
        Ok(current.map(|(current_kid, _, current)| KeyRing {
            current_kid,
            current,
            keys,
        }))
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, AccountsError> {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.current_kid.clone());
        jsonwebtoken::encode(&header, claims, &self.current)
            .map_err(|e| AccountsError::Internal(format!("signing an access token failed: {e}")))
    }

    /// Checks the signature and expiry; `Claims` only if both hold.
    pub fn verify(
        &self,
        token: &str,
        now_ms: u64,
        access_ttl_ms: u64,
    ) -> Result<Claims, AccountsError> {
        let invalid = |why: &str| {
            AccountsError::TokenInvalid(format!("the access token {why}; sign in again"))
        };
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| invalid("is malformed (not a tpsync token)"))?;
        if header.alg != Algorithm::HS256 {
            return Err(invalid("uses an algorithm this server does not accept"));
        }
        let kid = header.kid.ok_or_else(|| invalid("names no signing key"))?;
        let key = self
            .keys
            .get(&kid)
            .ok_or_else(|| invalid("was signed with a key this server does not know (forged, from another server, or from a key retired long ago)"))?;
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked below against the caller's clock (`now_ms`), not
        // the system clock the crate would read.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
            .map_err(|_| invalid("has a bad signature or content (forged or altered)"))?;
        let claims = data.claims;
        if now_ms >= claims.exp.saturating_mul(1000) {
            return Err(AccountsError::TokenExpired(
                "the access token has expired; refresh it with the refresh token or sign in again"
                    .into(),
            ));
        }
        if let Some(replaced) = key.replaced_ms {
            if now_ms >= replaced.saturating_add(access_ttl_ms) {
                return Err(invalid("was signed with a retired key"));
            }
        }
        Ok(claims)
    }

    pub fn current_kid(&self) -> &str {
        &self.current_kid
    }
}

/// Hex of fresh random bytes.
pub(crate) fn random_hex(n: usize) -> Result<String, AccountsError> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| {
        AccountsError::Internal(format!("the system's random number source failed: {e}"))
    })?;
    Ok(hex::encode(buf))
}

pub(crate) fn new_key(now_ms: u64) -> Result<KeyRecord, AccountsError> {
    Ok(KeyRecord {
        kid: random_hex(8)?,
        secret_hex: random_hex(KEY_BYTES)?,
        created_ms: now_ms,
        replaced_ms: None,
    })
}
