//! The sled trees this crate owns and what is stored in them (JSON values).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sync_core::{DeviceId, UserId};

use crate::error::{corrupt, AccountsError};
use crate::model::{Device, Role, User};

/// Tree names. All start with `accounts.`; the documents live in the Db's
/// default tree and sync-core's own trees.
pub(crate) const META: &str = "accounts.meta";
pub(crate) const TOWNSHIPS: &str = "accounts.townships";
pub(crate) const SCHOOLS: &str = "accounts.schools";
pub(crate) const USERS: &str = "accounts.users";
pub(crate) const USERNAMES: &str = "accounts.usernames";
pub(crate) const DEVICES: &str = "accounts.devices";
pub(crate) const REFRESH: &str = "accounts.refresh";
pub(crate) const RETIRED: &str = "accounts.retired";
pub(crate) const KEYS: &str = "accounts.keys";
pub(crate) const LAST_SEEN: &str = "accounts.last_seen";

/// Keys in `accounts.meta`.
pub(crate) const META_COUNTY: &[u8] = b"county";
pub(crate) const META_SETUP_CODE: &[u8] = b"setup_code";

pub(crate) struct Trees {
    /// county, setup_code.
    pub meta: sled::Tree,
    /// township code → `Township`.
    pub townships: sled::Tree,
    /// school code → `School`.
    pub schools: sled::Tree,
    /// user id → `UserRecord`.
    pub users: sled::Tree,
    /// lowercased username → user id.
    pub usernames: sled::Tree,
    /// device id → `DeviceRecord`.
    pub devices: sled::Tree,
    /// SHA-256 (hex) of a device's current refresh token → device id.
    pub refresh: sled::Tree,
    /// SHA-256 (hex) of a replaced refresh token of a device's present
    /// sign-in (its `previous` and `retired` hashes) → device id, so that
    /// presenting one can be recognised.
    pub retired: sled::Tree,
    /// kid → `KeyRecord`.
    pub keys: sled::Tree,
    /// device id → last seen (u64 big-endian ms), bumped by `verify`
    /// without a flush.
    pub last_seen: sled::Tree,
}

impl Trees {
    pub fn open(db: &sled::Db) -> Result<Self, AccountsError> {
        Ok(Self {
            meta: db.open_tree(META)?,
            townships: db.open_tree(TOWNSHIPS)?,
            schools: db.open_tree(SCHOOLS)?,
            users: db.open_tree(USERS)?,
            usernames: db.open_tree(USERNAMES)?,
            devices: db.open_tree(DEVICES)?,
            refresh: db.open_tree(REFRESH)?,
            retired: db.open_tree(RETIRED)?,
            keys: db.open_tree(KEYS)?,
            last_seen: db.open_tree(LAST_SEEN)?,
        })
    }
}

/// A user as stored: the public fields and the password's PHC string.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct UserRecord {
    pub id: UserId,
    pub username: String,
    pub role: Role,
    pub unit: Option<String>,
    pub created_ms: u64,
    pub disabled: bool,
    pub password_hash: String,
}

impl UserRecord {
    pub fn public(&self) -> User {
        User {
            id: self.id.clone(),
            username: self.username.clone(),
            role: self.role,
            unit: self.unit.clone(),
            created_ms: self.created_ms,
            disabled: self.disabled,
        }
    }
}

/// A device as stored: the public fields, its refresh token's hash and
/// expiry, the tokens that token replaced, and its session number.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct DeviceRecord {
    pub id: DeviceId,
    pub user: UserId,
    pub name: Option<String>,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    pub revoked_ms: Option<u64>,
    /// The current refresh token (never yet presented).
    pub refresh_hash: Option<String>,
    pub refresh_expires_ms: Option<u64>,
    pub session: u64,
    /// The refresh token the current one replaced, usable until
    /// `until_ms` as long as the current one has not been used (the reply
    /// that carried the current one may have been lost). Once its grace
    /// is over it counts as retired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<PreviousRefresh>,
    /// Hashes of this sign-in's other replaced refresh tokens, oldest
    /// first, at most `RETIRED_KEEP`; presenting one ends the session.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<String>,
}

/// The refresh token a device's current one replaced (see `DeviceRecord`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PreviousRefresh {
    pub hash: String,
    pub until_ms: u64,
}

impl DeviceRecord {
    pub fn public(&self, last_seen: Option<u64>) -> Device {
        Device {
            id: self.id.clone(),
            user: self.user.clone(),
            name: self.name.clone(),
            first_seen_ms: self.first_seen_ms,
            last_seen_ms: self.last_seen_ms.max(last_seen.unwrap_or(0)),
            revoked_ms: self.revoked_ms,
        }
    }
}

pub(crate) fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>, AccountsError> {
    serde_json::to_vec(v)
        .map_err(|e| AccountsError::Internal(format!("encoding a record failed: {e}")))
}

pub(crate) fn dec<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, AccountsError> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(what, e))
}

pub(crate) fn get<T: DeserializeOwned>(
    tree: &sled::Tree,
    key: impl AsRef<[u8]>,
    what: &str,
) -> Result<Option<T>, AccountsError> {
    tree.get(key)?.map(|v| dec(what, &v)).transpose()
}

pub(crate) fn all<T: DeserializeOwned>(
    tree: &sled::Tree,
    what: &str,
) -> Result<Vec<T>, AccountsError> {
    tree.iter()
        .map(|kv| {
            let (_, v) = kv?;
            dec(what, &v)
        })
        .collect()
}

pub(crate) fn last_seen(
    tree: &sled::Tree,
    device: &DeviceId,
) -> Result<Option<u64>, AccountsError> {
    Ok(tree.get(device.as_str())?.and_then(|v| {
        let b: [u8; 8] = v.as_ref().try_into().ok()?;
        Some(u64::from_be_bytes(b))
    }))
}
