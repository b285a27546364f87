//! Filtering, sorting and paging records of one kind, the way a phone's list
//! screens ask for them: [`RecordQuery`] in, [`RecordPage`] out.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use serde_json::Value;

use super::{AnyRecord, RecordKind};
use crate::error::{Error, Result};
use crate::schema::FieldType;
use crate::{RecordDoc, RecordId};

/// A field that must hold a given value.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct FieldEquals {
    /// The field's name as in the record (`room`, `shelf`, `session`…).
    pub field: String,
    /// The value as text: a code for enums (`in_use`), digits for numbers,
    /// a record id for references, `""` for an empty field.
    pub value: String,
}

/// Which records of one kind to list, in what order, which page.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct RecordQuery {
    pub kind: RecordKind,
    /// Keep records whose status is one of these codes; empty keeps all.
    pub statuses: Vec<String>,
    /// Keep records with this text in any of their text fields (case
    /// ignored). An ISBN matches with or without hyphens, and an ISBN-10
    /// matches its ISBN-13 (a scanned barcode finds a book entered from
    /// the copyright page).
    pub text: Option<String>,
    /// Keep records whose fields hold these values (all must match).
    pub equals: Vec<FieldEquals>,
    /// Sort by this field (numbers as numbers, empty fields last); `None`
    /// keeps id order, which is stable but arbitrary.
    pub sort_by: Option<String>,
    pub descending: bool,
    /// Skip this many matching records.
    pub offset: u32,
    /// Return at most this many; 0 returns every match.
    pub limit: u32,
}

impl RecordQuery {
    /// Every record of `kind`, in id order.
    pub fn all(kind: RecordKind) -> Self {
        Self {
            kind,
            statuses: Vec::new(),
            text: None,
            equals: Vec::new(),
            sort_by: None,
            descending: false,
            offset: 0,
            limit: 0,
        }
    }
}

/// A record with its id, as lists return it.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct StoredRecord {
    pub id: RecordId,
    pub record: AnyRecord,
    /// Fields holding concurrent values from devices that edited them at
    /// once; see the document's conflicts to show and resolve them.
    pub conflicted_fields: Vec<String>,
}

/// One page of a query's matches.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct RecordPage {
    pub records: Vec<StoredRecord>,
    /// How many records matched in all (before paging).
    pub total: u32,
    pub offset: u32,
}

impl RecordDoc {
    /// Runs `query` over this document's records of its kind.
    pub fn query(&self, query: &RecordQuery) -> Result<RecordPage> {
        let spec = query.kind.spec();
        let unknown = |field: &str| Error::UnknownField {
            kind: spec.name,
            field: field.to_owned(),
        };
        if let Some(f) = &query.sort_by {
            spec.field(f).ok_or_else(|| unknown(f))?;
        }
        for eq in &query.equals {
            spec.field(&eq.field).ok_or_else(|| unknown(&eq.field))?;
        }
        if !query.statuses.is_empty() {
            let allowed = super::status_codes(query.kind).ok_or_else(|| Error::InvalidValue {
                kind: spec.name,
                field: "status",
                problem: format!("{} records have no status to filter on", spec.name),
            })?;
            if let Some(bad) = query
                .statuses
                .iter()
                .find(|s| !allowed.contains(&s.as_str()))
            {
                return Err(Error::InvalidValue {
                    kind: spec.name,
                    field: "status",
                    problem: format!("{bad:?} is not one of {}", allowed.join(", ")),
                });
            }
        }
        let needle = query
            .text
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(Needle::new);
        let text_fields: Vec<&str> = spec
            .fields
            .iter()
            .filter(|f| matches!(f.ty, FieldType::Text))
            .map(|f| f.name)
            .collect();

        // Filter and sort on the fields as read; only the page becomes
        // typed records (a list screen asks for 50 of 2,000 books).
        let mut hits: Vec<(RecordId, Value, bool)> = Vec::new();
        for (id, json, conflicted) in self.records_json(spec)? {
            let keep = (query.statuses.is_empty()
                || json
                    .get("status")
                    .and_then(Value::as_str)
                    .is_some_and(|s| query.statuses.iter().any(|q| q == s)))
                && query
                    .equals
                    .iter()
                    .all(|eq| as_text(json.get(&eq.field)) == eq.value)
                && needle.as_ref().is_none_or(|n| {
                    text_fields.iter().any(|f| {
                        json.get(*f)
                            .and_then(Value::as_str)
                            .is_some_and(|v| n.found_in(v))
                    })
                });
            if keep {
                hits.push((id, json, conflicted));
            }
        }
        if let Some(field) = &query.sort_by {
            hits.sort_by(|a, b| {
                let ord = compare(a.1.get(field), b.1.get(field), query.descending);
                ord.then(a.0.cmp(&b.0))
            });
        } else if query.descending {
            hits.reverse();
        }
        let total = hits.len() as u32;
        let limit = if query.limit == 0 {
            usize::MAX
        } else {
            query.limit as usize
        };
        let records = hits
            .into_iter()
            .skip(query.offset as usize)
            .take(limit)
            .map(|(id, json, conflicted)| {
                let record = AnyRecord::from_json(query.kind, json).map_err(|e| {
                    self.off_schema(
                        crate::schema::Location::record(spec.collection, &id.to_string()),
                        format!("does not read as {}: {e}", spec.name),
                    )
                })?;
                let conflicted_fields = if conflicted {
                    self.conflicts(spec, id)?
                        .into_iter()
                        .map(|c| c.field)
                        .collect()
                } else {
                    Vec::new()
                };
                Ok(StoredRecord {
                    id,
                    record,
                    conflicted_fields,
                })
            })
            .collect::<Result<_>>()?;
        Ok(RecordPage {
            records,
            total,
            offset: query.offset,
        })
    }

    /// The records of a kind with at least one conflicted field.
    pub fn conflicted_records(&self, spec: &crate::RecordSpec) -> Result<BTreeSet<RecordId>> {
        let mut out = BTreeSet::new();
        if spec.singleton {
            if !self.conflicts(spec, RecordId::from_u128(0))?.is_empty() {
                out.insert(RecordId::from_u128(0));
            }
            return Ok(out);
        }
        for id in self.record_ids(spec)? {
            if self.has_conflict(spec, id)? {
                out.insert(id);
            }
        }
        Ok(out)
    }
}

/// A value as the text a [`FieldEquals`] compares with.
fn as_text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Empty fields sort last whichever the direction.
fn compare(a: Option<&Value>, b: Option<&Value>, descending: bool) -> Ordering {
    fn present(v: Option<&Value>) -> Option<&Value> {
        v.filter(|v| !v.is_null())
    }
    match (present(a), present(b)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(a), Some(b)) => {
            let ord = match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                _ => as_text(Some(a)).cmp(&as_text(Some(b))),
            };
            if descending {
                ord.reverse()
            } else {
                ord
            }
        }
    }
}

/// Search text, prepared once.
struct Needle {
    lower: String,
    /// The text without hyphens and spaces, if it is a number (part of an
    /// ISBN or a registration number): matched against values likewise.
    compact: Option<String>,
    /// The text as an ISBN-13, if it reads as an ISBN.
    isbn: Option<String>,
}

impl Needle {
    fn new(text: &str) -> Self {
        let compact = compact(text);
        Self {
            lower: text.to_lowercase(),
            isbn: isbn13(text),
            compact: (compact.len() >= 4
                && compact.bytes().all(|b| b.is_ascii_digit() || b == b'X'))
            .then_some(compact),
        }
    }

    fn found_in(&self, value: &str) -> bool {
        if value.to_lowercase().contains(&self.lower) {
            return true;
        }
        if let Some(digits) = &self.compact {
            if compact(value).contains(digits.as_str()) {
                return true;
            }
        }
        match &self.isbn {
            Some(isbn) => isbn13(value).as_deref() == Some(isbn.as_str()),
            None => false,
        }
    }
}

fn compact(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// An ISBN-10 or ISBN-13 (hyphens and spaces ignored) as its ISBN-13 digits.
pub fn isbn13(text: &str) -> Option<String> {
    let compact = compact(text);
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    match compact.len() {
        13 if digits(&compact) => Some(compact),
        10 if digits(&compact[..9])
            && (compact.as_bytes()[9].is_ascii_digit() || compact.ends_with('X')) =>
        {
            let body = format!("978{}", &compact[..9]);
            let sum: u32 = body
                .bytes()
                .enumerate()
                .map(|(i, b)| (b - b'0') as u32 * if i % 2 == 0 { 1 } else { 3 })
                .sum();
            Some(format!("{body}{}", (10 - sum % 10) % 10))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{samples, Book, BookStatus};
    use crate::{DocId, DocKind, EditContext, SchoolId};

    fn ctx(device: &str) -> EditContext {
        EditContext {
            user: "t1".parse().unwrap(),
            device: device.parse().unwrap(),
            now_ms: 1_700_000_000_000,
        }
    }

    fn shelf() -> (RecordDoc, Vec<RecordId>) {
        let school = SchoolId::new("4301230001").unwrap();
        let mut doc = RecordDoc::genesis(DocId::school(&school, DocKind::Books).unwrap());
        let mut ids = Vec::new();
        let titles = ["西游记", "水浒传", "红楼梦", "三国演义", "Harry Potter"];
        for (n, title) in titles.iter().enumerate() {
            let mut b = samples::book(n as u32);
            b.title = (*title).into();
            b.copies = (n as u32 + 1) * 2;
            b.isbn = Some(format!("978-7-02-00{n}"));
            b.price_fen = (n != 2).then_some(1000 * (5 - n as i64));
            if n == 3 {
                b.status = BookStatus::Weeded;
                b.isbn = Some("7-02-000220-X".into());
            }
            let id = RecordId::from_u128(100 + n as u128);
            doc.insert(&ctx("p1"), id, &b).unwrap();
            ids.push(id);
        }
        (doc, ids)
    }

    fn titles(page: &RecordPage) -> Vec<String> {
        page.records
            .iter()
            .map(|r| match &r.record {
                AnyRecord::Book { record } => record.title.clone(),
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn filters_sorts_and_pages() {
        let (doc, _) = shelf();
        let mut q = RecordQuery::all(RecordKind::Book);
        q.statuses = vec!["on_shelf".into()];
        q.sort_by = Some("copies".into());
        q.descending = true;
        let page = doc.query(&q).unwrap();
        assert_eq!(page.total, 4);
        assert_eq!(
            titles(&page),
            ["Harry Potter", "红楼梦", "水浒传", "西游记"]
        );

        q.offset = 1;
        q.limit = 2;
        let page = doc.query(&q).unwrap();
        assert_eq!((page.total, page.offset), (4, 1));
        assert_eq!(titles(&page), ["红楼梦", "水浒传"]);

        // Empty prices sort last in both directions.
        let mut q = RecordQuery::all(RecordKind::Book);
        q.sort_by = Some("price_fen".into());
        assert_eq!(titles(&doc.query(&q).unwrap()).last().unwrap(), "红楼梦");
        q.descending = true;
        assert_eq!(titles(&doc.query(&q).unwrap()).last().unwrap(), "红楼梦");

        let mut q = RecordQuery::all(RecordKind::Book);
        q.equals = vec![FieldEquals {
            field: "copies".into(),
            value: "4".into(),
        }];
        assert_eq!(titles(&doc.query(&q).unwrap()), ["水浒传"]);
    }

    #[test]
    fn finds_books_by_title_or_isbn_in_any_form() {
        let (doc, _) = shelf();
        let find = |text: &str| {
            let mut q = RecordQuery::all(RecordKind::Book);
            q.text = Some(text.into());
            titles(&doc.query(&q).unwrap())
        };
        assert_eq!(find("红楼"), ["红楼梦"]);
        assert_eq!(find("harry"), ["Harry Potter"]);
        // ISBN-10 7-02-000220-X is ISBN-13 9787020002207 (the barcode).
        assert_eq!(find("9787020002207"), ["三国演义"]);
        assert_eq!(find("978 7 02 000220 7"), ["三国演义"]);
        assert_eq!(find("7020002"), ["三国演义"]);
        assert!(find("不存在的书").is_empty());
    }

    #[test]
    fn isbn10_converts_to_isbn13() {
        assert_eq!(isbn13("7-02-000220-X").as_deref(), Some("9787020002207"));
        assert_eq!(isbn13("0-306-40615-2").as_deref(), Some("9780306406157"));
        assert_eq!(
            isbn13("978-0-306-40615-7").as_deref(),
            Some("9780306406157")
        );
        assert_eq!(isbn13("红楼梦"), None);
    }

    #[test]
    fn unknown_fields_and_statuses_are_named() {
        let (doc, _) = shelf();
        let mut q = RecordQuery::all(RecordKind::Book);
        q.sort_by = Some("colour".into());
        assert!(doc.query(&q).unwrap_err().to_string().contains("colour"));
        let mut q = RecordQuery::all(RecordKind::Book);
        q.statuses = vec!["burnt".into()];
        let e = doc.query(&q).unwrap_err().to_string();
        assert!(e.contains("burnt") && e.contains("weeded"), "{e}");
    }

    #[test]
    fn lists_say_which_records_hold_conflicts() {
        let (doc, ids) = shelf();
        let mut a = doc.clone();
        let mut b = doc.clone();
        a.automerge_mut().set_actor(automerge::ActorId::random());
        b.automerge_mut().set_actor(automerge::ActorId::random());
        a.update::<Book>(&ctx("p1"), ids[1], |x| x.shelf = Some("A".into()))
            .unwrap();
        b.update::<Book>(&ctx("p2"), ids[1], |x| x.shelf = Some("B".into()))
            .unwrap();
        a.automerge_mut().merge(b.automerge_mut()).unwrap();
        let page = a.query(&RecordQuery::all(RecordKind::Book)).unwrap();
        for r in &page.records {
            let expected: Vec<String> = if r.id == ids[1] {
                vec!["shelf".into()]
            } else {
                Vec::new()
            };
            assert_eq!(r.conflicted_fields, expected);
        }
    }
}
