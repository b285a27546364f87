//! Field values, history and conflicts as the app sees them.

use serde_json::Value;
use sync_core::{FieldChange, FieldConflict};

/// One field's value: text (also codes, dates and record ids), a whole
/// number (counts, money in fen, timestamps), a decimal, or empty.
#[derive(Clone, Debug, PartialEq, uniffi::Enum)]
pub enum FieldValue {
    Empty,
    Text { value: String },
    Integer { value: i64 },
    Decimal { value: f64 },
    Flag { value: bool },
}

impl FieldValue {
    pub(crate) fn to_json(&self) -> Value {
        match self {
            FieldValue::Empty => Value::Null,
            FieldValue::Text { value } => Value::from(value.as_str()),
            FieldValue::Integer { value } => Value::from(*value),
            FieldValue::Decimal { value } => Value::from(*value),
            FieldValue::Flag { value } => Value::from(*value),
        }
    }
}

impl From<Value> for FieldValue {
    fn from(v: Value) -> Self {
        match v {
            Value::Null => FieldValue::Empty,
            Value::Bool(value) => FieldValue::Flag { value },
            Value::Number(n) => match n.as_i64() {
                Some(value) => FieldValue::Integer { value },
                None => FieldValue::Decimal {
                    value: n.as_f64().unwrap_or(f64::NAN),
                },
            },
            Value::String(value) => FieldValue::Text { value },
            other => FieldValue::Text {
                value: other.to_string(),
            },
        }
    }
}

/// One step of a record's history.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct HistoryEntry {
    /// The field set, or `None` for the record's creation.
    pub field: Option<String>,
    /// The value(s) this change replaced (more than one when it resolved a
    /// conflict); empty for a first value.
    pub old_values: Vec<FieldValue>,
    pub new_value: FieldValue,
    /// Who made the change, as their device said.
    pub username: Option<String>,
    /// On which device.
    pub device_id: Option<String>,
    /// When, by the editing device's clock (ms since 1970).
    pub at_ms: i64,
    /// The change's hash (hex), to tell changes apart.
    pub change: String,
}

impl From<FieldChange> for HistoryEntry {
    fn from(c: FieldChange) -> Self {
        Self {
            field: c.field,
            old_values: c.old.into_iter().map(FieldValue::from).collect(),
            new_value: c.new.into(),
            username: c.author.as_ref().map(|a| a.user.clone()),
            device_id: c.author.map(|a| a.device),
            at_ms: c.at_ms,
            change: c.change,
        }
    }
}

/// A field with concurrent values; `values[0]` is the one reads show.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct FieldConflictView {
    pub field: String,
    pub values: Vec<FieldValue>,
}

impl From<FieldConflict> for FieldConflictView {
    fn from(c: FieldConflict) -> Self {
        Self {
            field: c.field,
            values: c.values.into_iter().map(FieldValue::from).collect(),
        }
    }
}
