//! The public data types: the organisation, users, devices, tokens, the
//! caller of a request, and the configuration.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sync_core::records::SchoolType;
use sync_core::{CountyId, DeviceId, DocId, IdError, SchoolId, UserId};

/// A township (乡镇), by the code the county gives it in its school list.
/// Same rules as sync-core's codes: 1 to 32 ASCII letters, digits or `-`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TownshipId(String);

impl TownshipId {
    /// Checks and wraps a code.
    pub fn new(code: impl Into<String>) -> Result<Self, IdError> {
        let code = code.into();
        let bad = |why| IdError::BadCode {
            what: "township code",
            value: code.clone(),
            why,
        };
        if code.is_empty() || code.len() > 32 {
            return Err(bad("must be 1 to 32 characters"));
        }
        if !code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(bad("may contain only ASCII letters, digits and '-'"));
        }
        Ok(Self(code))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TownshipId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TownshipId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::new(s)
    }
}

impl TryFrom<String> for TownshipId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::new(s)
    }
}

impl From<TownshipId> for String {
    fn from(id: TownshipId) -> String {
        id.0
    }
}

/// What a user is, which decides what they may read and write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A teacher of one school or teaching point (unit: the school's code).
    Teacher,
    /// A township central school (unit: the township's code).
    Township,
    /// The county education bureau (unit: the county's code).
    County,
    /// Manages accounts and the school list; syncs no documents (no unit).
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Teacher, Role::Township, Role::County, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Teacher => "teacher",
            Role::Township => "township",
            Role::County => "county",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}; use teacher, township, county or admin"))
    }
}

/// The county this server serves (one per server).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct County {
    pub code: CountyId,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Township {
    pub code: TownshipId,
    pub name: String,
}

/// A registered school or teaching point. Only registered schools' documents
/// are synced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct School {
    pub code: SchoolId,
    pub name: String,
    pub school_type: SchoolType,
    pub township: TownshipId,
    /// Students in grades 1 to 9 (index 0 is grade 1).
    pub enrollment: [u32; 9],
}

/// A user as shown to administrators and in `Tokens`. The password hash is
/// never part of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub role: Role,
    /// The school, township or county code; `None` for an administrator.
    pub unit: Option<String>,
    pub created_ms: u64,
    pub disabled: bool,
}

/// A device (phone, laptop) a user signed in on. Bound to that one user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub id: DeviceId,
    pub user: UserId,
    pub name: Option<String>,
    pub first_seen_ms: u64,
    /// Last sign-in, refresh or verified request; kept to within a minute.
    pub last_seen_ms: u64,
    pub revoked_ms: Option<u64>,
}

/// The answer to a sign-in or a refresh.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    /// Always `"Bearer"`.
    pub token_type: String,
    /// Lifetime of the access token, in seconds.
    pub expires_in: u64,
    pub refresh_token: String,
    pub device_id: DeviceId,
    pub user: User,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("access_token", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &"<redacted>")
            .field("device_id", &self.device_id)
            .field("user", &self.user)
            .finish()
    }
}

/// Who makes a request, from a verified access token (and the stored user).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    pub user: UserId,
    pub username: String,
    pub role: Role,
    pub unit: Option<String>,
    pub device: DeviceId,
}

/// A user to create.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewUser {
    pub username: String,
    pub password: String,
    pub role: Role,
    #[serde(default)]
    pub unit: Option<String>,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("role", &self.role)
            .field("unit", &self.unit)
            .finish()
    }
}

/// A signing key's public facts (never its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub kid: String,
    pub created_ms: u64,
}

/// The documents a caller may read and write. `read` includes everything in
/// `write`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    pub read: BTreeSet<DocId>,
    pub write: BTreeSet<DocId>,
}

/// The outcome of a school list import. With any error nothing was written
/// and every count is 0; otherwise the counts say what was written (with
/// `dry_run`: what would have been).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchoolImport {
    pub townships_created: usize,
    /// Existing townships whose name the file changed.
    pub townships_updated: usize,
    pub schools_created: usize,
    /// Schools that existed already and were written again from the file.
    pub schools_updated: usize,
    pub errors: Vec<RowError>,
}

impl SchoolImport {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// One thing wrong in an imported file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    /// 1-based line of the file; the header is line 1.
    pub line: u64,
    /// The column as named in the file's header, if the problem is in one.
    pub column: Option<String>,
    pub message: String,
}

/// Token lifetimes and sign-in limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfig {
    /// Access token lifetime (default 900 s). Also how long a replaced
    /// signing key keeps verifying tokens.
    pub access_ttl_s: u64,
    /// Refresh token lifetime (default 180 days: phones stay offline for
    /// weeks). Each refresh issues a new one with a new lifetime.
    pub refresh_ttl_s: u64,
    /// After a refresh, how long the replaced refresh token still works, as
    /// long as the new one has not been used (default 600 s): a reply lost
    /// on a bad 2G connection then costs a retry, not a password sign-in.
    /// Never beyond the replaced token's own expiry. 0 turns the grace off.
    /// See [`crate::Accounts::refresh`].
    #[serde(default = "default_refresh_grace_s")]
    pub refresh_grace_s: u64,
    /// Failed sign-ins per username within `user_window_s` before further
    /// attempts are refused until the window ends (default 5).
    pub user_max_failures: u32,
    /// Default 900 s (15 min).
    pub user_window_s: u64,
    /// Sign-in attempts (failed or not) per client address within
    /// `ip_window_s` (default 30). IPv6 addresses count per /64.
    pub ip_max_attempts: u32,
    /// Default 60 s.
    pub ip_window_s: u64,
}

fn default_refresh_grace_s() -> u64 {
    600
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            access_ttl_s: 900,
            refresh_ttl_s: 180 * 24 * 3600,
            refresh_grace_s: default_refresh_grace_s(),
            user_max_failures: 5,
            user_window_s: 15 * 60,
            ip_max_attempts: 30,
            ip_window_s: 60,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn township_codes_follow_the_code_rules() {
        assert_eq!(TownshipId::new("T-01").unwrap().as_str(), "T-01");
        assert!(TownshipId::new("").is_err());
        assert!(TownshipId::new("a.b").is_err());
        assert!(TownshipId::new("乡").is_err());
        assert!(TownshipId::new("x".repeat(33)).is_err());
        let t: TownshipId = serde_json::from_str("\"T1\"").unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"T1\"");
        assert!(serde_json::from_str::<TownshipId>("\"T 1\"").is_err());
    }

    #[test]
    fn roles_serialize_lowercase() {
        for r in Role::ALL {
            assert_eq!(
                serde_json::to_string(&r).unwrap(),
                format!("\"{}\"", r.as_str())
            );
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("Teacher".parse::<Role>().is_err());
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let n = NewUser {
            username: "li".into(),
            password: "hunter2hunter2".into(),
            role: Role::Admin,
            unit: None,
        };
        assert!(!format!("{n:?}").contains("hunter2"));
    }
}
