//! The schema every document is held to: which collections a document kind
//! has, which fields each record kind has, and what their values may be.
//!
//! Record structs are declared with [`record!`], which writes the struct and its
//! [`RecordSpec`] from one list, so the two cannot drift apart.

use std::fmt;

use automerge::ScalarValue;
use serde::{de::DeserializeOwned, Serialize};

use crate::ids::DocKind;

/// What values a field may hold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FieldType {
    /// Free text, at most [`MAX_TEXT_CHARS`] characters.
    Text,
    /// A whole number, zero or more (counts, copies, quantities).
    Count,
    /// Money in fen (分), a whole number, zero or more. Never a float.
    Money,
    /// A measure such as an area in m², zero or more, finite.
    Decimal,
    /// A signed number (for indicator values that may be negative).
    Number,
    /// True or false.
    Bool,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// A moment in time, milliseconds since the Unix epoch.
    Timestamp,
    /// One of a fixed set of codes.
    Enum(&'static [&'static str]),
    /// The id of another record ([`crate::RecordId`] text).
    Ref,
    /// A set of Automerge change hashes, comma-separated hex (frozen heads).
    Heads,
    /// The SHA-256 name of an attachment's bytes: 64 lowercase hex digits.
    Sha256,
}

/// The longest text a field may hold, in characters.
pub const MAX_TEXT_CHARS: usize = 4000;

/// One field of a record kind.
#[derive(Clone, Copy, Debug)]
pub struct FieldSpec {
    pub name: &'static str,
    pub ty: FieldType,
    pub required: bool,
}

/// A required field of the given type (the name is filled in by [`record!`]).
pub const fn req(ty: FieldType) -> FieldSpec {
    FieldSpec {
        name: "",
        ty,
        required: true,
    }
}

/// An optional field of the given type.
pub const fn opt(ty: FieldType) -> FieldSpec {
    FieldSpec {
        name: "",
        ty,
        required: false,
    }
}

/// A record kind: where its records live and what fields they have.
#[derive(Clone, Copy, Debug)]
pub struct RecordSpec {
    /// The type's name, e.g. `EquipmentItem`.
    pub name: &'static str,
    /// The kind of document its records live in.
    pub doc_kind: DocKind,
    /// The key of its collection (or, for a singleton, of the record) at the
    /// document root.
    pub collection: &'static str,
    /// A singleton is one record per document (the school profile, the
    /// template settings) held directly at the root key.
    pub singleton: bool,
    pub fields: &'static [FieldSpec],
}

impl RecordSpec {
    pub fn field(&self, name: &str) -> Option<&'static FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// A typed record stored in an Automerge map.
pub trait Record: Serialize + DeserializeOwned + Clone + fmt::Debug + PartialEq {
    const SPEC: RecordSpec;
}

/// A fixed set of codes stored as text (a status, a type). Declared with
/// [`choice!`].
pub trait Choice {
    const VALUES: &'static [&'static str];
}

/// Declares an enum stored as a stable ASCII code, with the Chinese term in the
/// doc comments.
#[macro_export]
macro_rules! choice {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $code:literal ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $code)] $variant, )*
        }
        impl $crate::schema::Choice for $name {
            const VALUES: &'static [&'static str] = &[$($code),*];
        }
        impl $name {
            /// The stored code.
            pub fn code(self) -> &'static str {
                match self { $( $name::$variant => $code, )* }
            }
        }
    };
}

/// Declares a record struct and its [`RecordSpec`] from one field list.
/// Optional fields must be `Option<_>` and use [`opt`]; required ones use
/// [`req`]. A unit test checks every spec against a sample of its struct.
#[macro_export]
macro_rules! record {
    (
        $(#[$meta:meta])*
        pub struct $name:ident in $doc:ident . $coll:literal $(singleton $single:literal)? {
            $( $(#[$fmeta:meta])* $field:ident : $fty:ty = $spec:expr ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $fty, )*
        }
        impl $crate::schema::Record for $name {
            const SPEC: $crate::schema::RecordSpec = $crate::schema::RecordSpec {
                name: stringify!($name),
                doc_kind: $crate::DocKind::$doc,
                collection: $coll,
                singleton: false $(|| $single)?,
                fields: &[ $( $crate::schema::FieldSpec { name: stringify!($field), ..$spec } ),* ],
            };
        }
    };
}

/// Where in a document a violation is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The root key (collection or singleton), if any.
    pub collection: Option<String>,
    /// The record's key, if any.
    pub record: Option<String>,
    /// The field, if any.
    pub field: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<&str> = [&self.collection, &self.record, &self.field]
            .into_iter()
            .filter_map(|p| p.as_deref())
            .collect();
        if parts.is_empty() {
            f.write_str("<root>")
        } else {
            f.write_str(&parts.join("/"))
        }
    }
}

/// One thing wrong with a document, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub at: Location,
    pub problem: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.problem)
    }
}

/// Checks one stored scalar against its field type. `Err` says what is wrong.
pub fn check_value(ty: FieldType, v: &ScalarValue) -> Result<(), String> {
    match (ty, v) {
        (_, ScalarValue::Null) => Ok(()),
        (FieldType::Text, ScalarValue::Str(s)) => {
            let n = s.chars().count();
            if n > MAX_TEXT_CHARS {
                Err(format!("text of {n} characters; at most {MAX_TEXT_CHARS}"))
            } else {
                Ok(())
            }
        }
        (FieldType::Count | FieldType::Money, ScalarValue::Int(i)) if *i >= 0 => Ok(()),
        (FieldType::Count | FieldType::Money, ScalarValue::Uint(_)) => Ok(()),
        (FieldType::Count | FieldType::Money, ScalarValue::Int(i)) => {
            Err(format!("{i} is negative; must be zero or more"))
        }
        (FieldType::Decimal, ScalarValue::F64(x)) if x.is_finite() && *x >= 0.0 => Ok(()),
        (FieldType::Decimal, ScalarValue::Int(i)) if *i >= 0 => Ok(()),
        (FieldType::Decimal, ScalarValue::Uint(_)) => Ok(()),
        (FieldType::Decimal, other) => {
            Err(format!("{other} is not a finite number of zero or more"))
        }
        (FieldType::Number, ScalarValue::F64(x)) if x.is_finite() => Ok(()),
        (FieldType::Number, ScalarValue::Int(_) | ScalarValue::Uint(_)) => Ok(()),
        (FieldType::Bool, ScalarValue::Boolean(_)) => Ok(()),
        (FieldType::Timestamp, ScalarValue::Int(_) | ScalarValue::Timestamp(_)) => Ok(()),
        (FieldType::Date, ScalarValue::Str(s)) => check_date(s),
        (FieldType::Enum(values), ScalarValue::Str(s)) => {
            if values.contains(&s.as_str()) {
                Ok(())
            } else {
                Err(format!("{s:?} is not one of {}", values.join(", ")))
            }
        }
        (FieldType::Ref, ScalarValue::Str(s)) => s
            .parse::<crate::RecordId>()
            .map(|_| ())
            .map_err(|e| e.to_string()),
        (FieldType::Heads, ScalarValue::Str(s)) => {
            if s.is_empty()
                || s.split(',')
                    .all(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                Ok(())
            } else {
                Err("not a comma-separated list of 64-digit change hashes".into())
            }
        }
        (FieldType::Sha256, ScalarValue::Str(s)) => {
            if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                Ok(())
            } else {
                Err("not a SHA-256 name: 64 lowercase hex digits".into())
            }
        }
        (ty, other) => Err(format!("{other} does not fit a field of type {ty:?}")),
    }
}

fn check_date(s: &str) -> Result<(), String> {
    let bad = || Err(format!("{s:?} is not a date in the form YYYY-MM-DD"));
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return bad();
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|p| p.parse::<u32>().ok());
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return bad();
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return bad(),
    };
    if (1..=days).contains(&d) && y >= 1900 {
        Ok(())
    } else {
        bad()
    }
}

/// Converts a JSON value (from a record struct) to the scalar stored for a
/// field of type `ty`. Decimals are always stored as floats, money and counts
/// as integers, so one field never holds two representations.
pub(crate) fn json_to_scalar(ty: FieldType, v: &serde_json::Value) -> Result<ScalarValue, String> {
    use serde_json::Value as J;
    let s = match (ty, v) {
        (_, J::Null) => ScalarValue::Null,
        (FieldType::Decimal | FieldType::Number, J::Number(n)) => {
            ScalarValue::F64(n.as_f64().ok_or("number out of range")?)
        }
        (FieldType::Count | FieldType::Money | FieldType::Timestamp, J::Number(n)) => {
            ScalarValue::Int(n.as_i64().ok_or("not a whole number in range")?)
        }
        (FieldType::Bool, J::Bool(b)) => ScalarValue::Boolean(*b),
        (_, J::String(s)) => ScalarValue::Str(s.as_str().into()),
        (ty, other) => return Err(format!("{other} does not fit a field of type {ty:?}")),
    };
    check_value(ty, &s)?;
    Ok(s)
}

/// Converts a stored scalar back to JSON for deserializing a record struct.
pub(crate) fn scalar_to_json(ty: FieldType, v: &ScalarValue) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        ScalarValue::Str(s) => J::String(s.to_string()),
        ScalarValue::Int(i) | ScalarValue::Timestamp(i) => match ty {
            FieldType::Decimal | FieldType::Number => J::from(*i as f64),
            _ => J::from(*i),
        },
        ScalarValue::Uint(u) => match ty {
            FieldType::Decimal | FieldType::Number => J::from(*u as f64),
            _ => J::from(*u),
        },
        ScalarValue::F64(x) => J::from(*x),
        ScalarValue::Boolean(b) => J::Bool(*b),
        _ => J::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_checked_for_real_calendar_days() {
        assert!(check_date("2024-02-29").is_ok());
        assert!(check_date("2023-02-29").is_err());
        assert!(check_date("2023-13-01").is_err());
        assert!(check_date("2023-1-01").is_err());
        assert!(check_date("２０２３-01-01").is_err());
        assert!(check_date("").is_err());
    }

    #[test]
    fn values_are_checked_against_their_type() {
        assert!(check_value(FieldType::Count, &ScalarValue::Int(-1)).is_err());
        assert!(check_value(FieldType::Money, &ScalarValue::F64(1.5)).is_err());
        assert!(check_value(FieldType::Decimal, &ScalarValue::F64(f64::NAN)).is_err());
        assert!(check_value(FieldType::Enum(&["a", "b"]), &ScalarValue::Str("c".into())).is_err());
        assert!(check_value(FieldType::Enum(&["a", "b"]), &ScalarValue::Str("a".into())).is_ok());
        assert!(check_value(FieldType::Ref, &ScalarValue::Str("x".into())).is_err());
        let long = "字".repeat(MAX_TEXT_CHARS + 1);
        assert!(check_value(FieldType::Text, &ScalarValue::Str(long.as_str().into())).is_err());
        assert!(check_value(FieldType::Heads, &ScalarValue::Str("ab".into())).is_err());
        assert!(check_value(
            FieldType::Heads,
            &ScalarValue::Str("a".repeat(64).as_str().into())
        )
        .is_ok());
    }
}
