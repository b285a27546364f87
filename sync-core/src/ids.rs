//! Typed identifiers: schools, counties, documents, records, devices, users.
//!
//! Every id that crosses a boundary (storage key, wire message, FFI) is one of
//! these newtypes, never a bare `String`, so a school code can never be passed
//! where a document id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::IdError;

/// Characters allowed in the code part of a school or county id. Codes end up in
/// storage keys and document ids, so `/` and `.` are never allowed in them.
fn check_code(what: &'static str, s: &str) -> Result<(), IdError> {
    if s.is_empty() || s.len() > 32 {
        return Err(IdError::BadCode {
            what,
            value: s.to_owned(),
            why: "must be 1 to 32 characters",
        });
    }
    if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(IdError::BadCode {
            what,
            value: s.to_owned(),
            why: "may contain only ASCII letters, digits and '-'",
        });
    }
    Ok(())
}

macro_rules! code_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks and wraps a code.
            pub fn new(code: impl Into<String>) -> Result<Self, IdError> {
                let code = code.into();
                check_code($what, &code)?;
                Ok(Self(code))
            }

            /// The code as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

code_id!(
    /// A school or teaching point, by its national school code (学校标识码).
    SchoolId,
    "school code"
);
code_id!(
    /// A county, by its administrative division code (县级行政区划代码).
    CountyId,
    "county code"
);
code_id!(
    /// A device (a teacher's phone, a township laptop, the server itself).
    DeviceId,
    "device id"
);
code_id!(
    /// A user account.
    UserId,
    "user id"
);
code_id!(
    /// A sync peer, as this replica names it (usually the other side's device id).
    PeerId,
    "peer id"
);

/// Which collection a document holds. A school has one document per kind below
/// except [`DocKind::Template`], which a county has one of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    /// School profile (学校基本情况).
    Profile,
    /// Equipment ledger and stocktakes (仪器设备台账, 盘点).
    Equipment,
    /// Book catalogue (图书).
    Books,
    /// Archive: items against the county catalogue, and boxes (档案).
    Archive,
    /// Standardization checklist (标准化建设).
    Checklist,
    /// Township and county review of the school's sections (审核).
    Review,
    /// Photos and scans attached to the school's records (附件): their
    /// names, sizes and what they are attached to; the bytes live outside
    /// the documents (`tpsync-blobs`).
    Attachments,
    /// The county's templates: indicators, thresholds, archive catalogue (县模板).
    Template,
}

impl DocKind {
    /// The kinds of document every school has.
    pub const SCHOOL_KINDS: [DocKind; 7] = [
        DocKind::Profile,
        DocKind::Equipment,
        DocKind::Books,
        DocKind::Archive,
        DocKind::Checklist,
        DocKind::Review,
        DocKind::Attachments,
    ];

    /// Stable name, used in document ids and storage keys.
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Profile => "profile",
            DocKind::Equipment => "equipment",
            DocKind::Books => "books",
            DocKind::Archive => "archive",
            DocKind::Checklist => "checklist",
            DocKind::Review => "review",
            DocKind::Attachments => "attachments",
            DocKind::Template => "template",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "profile" => DocKind::Profile,
            "equipment" => DocKind::Equipment,
            "books" => DocKind::Books,
            "archive" => DocKind::Archive,
            "checklist" => DocKind::Checklist,
            "review" => DocKind::Review,
            "attachments" => DocKind::Attachments,
            "template" => DocKind::Template,
            _ => return None,
        })
    }
}

/// Whose document it is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DocOwner {
    School(SchoolId),
    County(CountyId),
}

/// A document's deterministic id: `school.<code>.<kind>` or
/// `county.<code>.template`. Two devices that never met compute the same id for
/// the same school's equipment ledger, so their records meet in one document.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DocId {
    owner: DocOwner,
    kind: DocKind,
}

impl DocId {
    /// A school's document of the given kind. Fails for [`DocKind::Template`],
    /// which belongs to a county.
    pub fn school(school: &SchoolId, kind: DocKind) -> Result<Self, IdError> {
        if kind == DocKind::Template {
            return Err(IdError::BadDocId {
                value: format!("school.{school}.template"),
                why: "templates belong to a county, not a school",
            });
        }
        Ok(Self {
            owner: DocOwner::School(school.clone()),
            kind,
        })
    }

    /// The county's template document.
    pub fn template(county: &CountyId) -> Self {
        Self {
            owner: DocOwner::County(county.clone()),
            kind: DocKind::Template,
        }
    }

    /// Every document of one school, in a stable order.
    pub fn all_for_school(school: &SchoolId) -> Vec<DocId> {
        DocKind::SCHOOL_KINDS
            .iter()
            .map(|k| DocId {
                owner: DocOwner::School(school.clone()),
                kind: *k,
            })
            .collect()
    }

    pub fn kind(&self) -> DocKind {
        self.kind
    }

    pub fn owner(&self) -> &DocOwner {
        &self.owner
    }

    /// The school this document belongs to, if it is a school's.
    pub fn school_id(&self) -> Option<&SchoolId> {
        match &self.owner {
            DocOwner::School(s) => Some(s),
            DocOwner::County(_) => None,
        }
    }
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.owner {
            DocOwner::School(s) => write!(f, "school.{s}.{}", self.kind.as_str()),
            DocOwner::County(c) => write!(f, "county.{c}.{}", self.kind.as_str()),
        }
    }
}

impl FromStr for DocId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let bad = |why| IdError::BadDocId {
            value: s.chars().take(80).collect(),
            why,
        };
        let mut parts = s.split('.');
        let (Some(owner), Some(code), Some(kind), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected <school|county>.<code>.<kind>"));
        };
        let kind = DocKind::parse(kind).ok_or_else(|| bad("unknown document kind"))?;
        match owner {
            "school" => DocId::school(&SchoolId::new(code)?, kind),
            "county" if kind == DocKind::Template => Ok(DocId::template(&CountyId::new(code)?)),
            "county" => Err(bad("a county owns only its template")),
            _ => Err(bad("owner must be 'school' or 'county'")),
        }
    }
}

impl TryFrom<String> for DocId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        s.parse()
    }
}

impl From<DocId> for String {
    fn from(id: DocId) -> String {
        id.to_string()
    }
}

/// A record's key inside its collection: 128 random bits, written as 32
/// lowercase hex digits. Random, never a position, so records created on two
/// devices that never met cannot collide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RecordId(u128);

impl RecordId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().as_u128())
    }

    /// An id from given bits (tests and deterministic fixtures).
    pub fn from_u128(bits: u128) -> Self {
        Self(bits)
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl FromStr for RecordId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        if s.len() != 32
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(IdError::BadRecordId {
                value: s.chars().take(80).collect(),
            });
        }
        u128::from_str_radix(s, 16)
            .map(RecordId)
            .map_err(|_| IdError::BadRecordId {
                value: s.to_owned(),
            })
    }
}

impl TryFrom<String> for RecordId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        s.parse()
    }
}

impl From<RecordId> for String {
    fn from(id: RecordId) -> String {
        id.to_string()
    }
}

// Across the FFI a record id is its 32 hex digits.
#[cfg(feature = "uniffi")]
uniffi::custom_type!(RecordId, String, {
    lower: |id| id.to_string(),
    try_lift: |text| text.parse().map_err(|e: IdError| uniffi::deps::anyhow::anyhow!("{e}")),
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_ids_round_trip_and_reject_nonsense() {
        let school = SchoolId::new("4301230001").unwrap();
        for id in DocId::all_for_school(&school) {
            assert_eq!(id.to_string().parse::<DocId>().unwrap(), id);
        }
        let t = DocId::template(&CountyId::new("430123").unwrap());
        assert_eq!(t.to_string(), "county.430123.template");
        assert_eq!(t.to_string().parse::<DocId>().unwrap(), t);
        for bad in [
            "",
            "school",
            "school.1.template",
            "county.1.books",
            "school.a/b.books",
            "school.1.books.x",
            "town.1.books",
        ] {
            assert!(bad.parse::<DocId>().is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn record_ids_are_32_hex_digits() {
        let id = RecordId::random();
        assert_eq!(id.to_string().len(), 32);
        assert_eq!(id.to_string().parse::<RecordId>().unwrap(), id);
        assert!("XYZ".parse::<RecordId>().is_err());
        assert!("0123456789ABCDEF0123456789abcdef"
            .parse::<RecordId>()
            .is_err());
    }
}
