//! The JSON bodies of the HTTP API (docs/http-api.md), as Rust types.
//!
//! Decoding is lenient where the contract leaves room (ids may be strings
//! or numbers, unknown fields are ignored or kept in `extra`), so a server
//! that adds a field never breaks an installed app.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use sync_core::{DeviceId, DocId};

/// What a user is, which decides what they may read and write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A school's teacher: the school's documents.
    Teacher,
    /// A township's staff: the township's schools.
    Township,
    /// A county's staff: the county's schools and templates.
    County,
    /// Runs the server: accounts, devices, keys, backups.
    Admin,
    /// A role this version of the client does not know.
    #[serde(other)]
    #[value(skip)]
    Unknown,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Teacher => "teacher",
            Role::Township => "township",
            Role::County => "county",
            Role::Admin => "admin",
            Role::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user account, as the server shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    pub username: String,
    pub role: Role,
    /// The code of the school, township or county the user belongs to;
    /// `None` for an administrator.
    #[serde(default)]
    pub unit: Option<String>,
    /// When the account was created (ms since 1970), if the server says.
    #[serde(default)]
    pub created_ms: Option<u64>,
    /// A disabled account cannot sign in.
    #[serde(default)]
    pub disabled: bool,
}

/// The answer to a login or a refresh.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    #[serde(default = "bearer")]
    pub token_type: String,
    /// Seconds the access token stays valid.
    #[serde(default)]
    pub expires_in: u64,
    /// Exchanged for new tokens by [`crate::Client::refresh`]; replaced each
    /// time.
    pub refresh_token: String,
    pub device_id: DeviceId,
    pub user: UserInfo,
}

// Tokens are secrets: never in logs.
impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("access_token", &"…")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &"…")
            .field("device_id", &self.device_id)
            .field("user", &self.user)
            .finish()
    }
}

fn bearer() -> String {
    "Bearer".into()
}

/// The documents a signed-in user may sync.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    #[serde(default)]
    pub read: Vec<DocId>,
    #[serde(default)]
    pub write: Vec<DocId>,
}

impl Scope {
    /// Every document the user may read (writable ones included), sorted,
    /// once each: the scope to pass to a sync.
    pub fn all(&self) -> Vec<DocId> {
        let mut all: Vec<DocId> = self.read.iter().chain(&self.write).cloned().collect();
        all.sort();
        all.dedup();
        all
    }
}

/// `GET /v1/me`: who the token belongs to and what it may sync.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub user: UserInfo,
    pub device_id: DeviceId,
    #[serde(default)]
    pub scope: Scope,
}

/// A county, as the server shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct County {
    #[serde(default, deserialize_with = "opt_string_or_number")]
    pub code: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// Any other field the server sends.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A registered school or teaching point, as the server lists it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct School {
    /// The national school code (学校标识码).
    #[serde(
        default,
        alias = "school_code",
        deserialize_with = "opt_string_or_number"
    )]
    pub code: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// `teaching_point`, `primary`, `junior`, `nine_year` or `central`.
    #[serde(default)]
    pub school_type: Option<String>,
    /// The township's code.
    #[serde(default, deserialize_with = "opt_string_or_number")]
    pub township: Option<String>,
    /// Students in grades 1 to 9.
    #[serde(default)]
    pub enrollment: Option<Vec<u32>>,
    /// Any other field the server sends.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A device a user signed in on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Device {
    #[serde(
        default,
        alias = "device_id",
        deserialize_with = "opt_string_or_number"
    )]
    pub id: Option<String>,
    /// The user it is bound to.
    #[serde(default, deserialize_with = "opt_string_or_number")]
    pub user: Option<String>,
    #[serde(default, alias = "device_name")]
    pub name: Option<String>,
    #[serde(default)]
    pub first_seen_ms: Option<u64>,
    #[serde(default)]
    pub last_seen_ms: Option<u64>,
    /// When it was revoked, if it was.
    #[serde(default)]
    pub revoked_ms: Option<u64>,
    /// Any other field the server sends.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A new account for [`crate::Client::create_user`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NewUser {
    pub username: String,
    pub password: String,
    pub role: Role,
    /// The school, township or county code; `None` for an administrator.
    pub unit: Option<String>,
}

/// The new token signing key after a rotation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    #[serde(deserialize_with = "string_or_number")]
    pub kid: String,
    #[serde(default)]
    pub created_ms: i64,
}

/// What a school import did (or, in a dry run or a refused import, would
/// have done).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchoolImportReport {
    #[serde(default)]
    pub townships_created: u64,
    /// Existing townships whose name the file changed.
    #[serde(default)]
    pub townships_updated: u64,
    #[serde(default)]
    pub schools_created: u64,
    #[serde(default)]
    pub schools_updated: u64,
    #[serde(default)]
    pub errors: Vec<ImportRowError>,
}

/// One bad cell or row of an imported CSV file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRowError {
    /// The line in the file, counting from 1.
    #[serde(default)]
    pub line: Option<u64>,
    /// The column, by name or number, as the server gives it.
    #[serde(default, deserialize_with = "opt_string_or_number")]
    pub column: Option<String>,
    #[serde(default)]
    pub message: String,
}

impl fmt::Display for ImportRowError {
    /// `line N, column C: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, &self.column) {
            (Some(l), Some(c)) => write!(f, "line {l}, column {c}: {}", self.message),
            (Some(l), None) => write!(f, "line {l}: {}", self.message),
            (None, Some(c)) => write!(f, "column {c}: {}", self.message),
            (None, None) => f.write_str(&self.message),
        }
    }
}

/// Where a running sync is, passed to the progress callback after each
/// round.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncProgress {
    /// Rounds (request and response) completed so far, from 1.
    pub round: u32,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub changes_sent: u64,
    pub changes_received: u64,
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or a number, got {other}"
        ))),
    }
}

fn opt_string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or a number, got {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_decode_leniently() {
        let t: Tokens = serde_json::from_str(
            r#"{"access_token":"a","expires_in":900,"refresh_token":"r","device_id":"phone-1",
                "user":{"id":7,"username":"li","role":"teacher","unit":"4301230001","extra":1}}"#,
        )
        .unwrap();
        assert_eq!(t.token_type, "Bearer");
        assert_eq!(t.user.id, "7");
        assert!(!format!("{t:?}").contains("\"a\""), "no secrets in Debug");
        let u: UserInfo =
            serde_json::from_str(r#"{"id":"u1","username":"root","role":"superuser"}"#).unwrap();
        assert_eq!((u.role, u.unit), (Role::Unknown, None));
        let s: School = serde_json::from_str(
            r#"{"school_code":"4301230001","name":"一小","township":"430123101"}"#,
        )
        .unwrap();
        assert_eq!(s.code.as_deref(), Some("4301230001"));
        assert_eq!(s.township.as_deref(), Some("430123101"));
        let d: Device = serde_json::from_str(
            r#"{"id":"phone-1","user":"u1","name":null,"first_seen_ms":1,"last_seen_ms":2,"revoked_ms":null,"os":"android"}"#,
        )
        .unwrap();
        assert_eq!(
            (d.id.as_deref(), d.user.as_deref(), d.revoked_ms),
            (Some("phone-1"), Some("u1"), None)
        );
        assert_eq!(d.extra["os"], "android");
        let me: Me = serde_json::from_str(
            r#"{"user":{"id":"u1","username":"li","role":"teacher","unit":"4301230001"},
                "device_id":"phone-1",
                "scope":{"read":["county.430123.template","school.4301230001.books"],
                         "write":["school.4301230001.books"]}}"#,
        )
        .unwrap();
        assert_eq!(me.scope.all().len(), 2);
    }
}
