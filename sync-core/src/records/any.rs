//! Every record kind behind one type, for callers that pick the kind at run
//! time (the mobile FFI, tools): [`RecordKind`], [`AnyRecord`], and the
//! [`RecordDoc`] methods that dispatch on them.

use serde::{Deserialize, Serialize};

use super::*;
use crate::error::{Error, Result};
use crate::schema::{FieldType, Record, RecordSpec};
use crate::{ChangeHash, EditContext, RecordDoc, RecordId};

macro_rules! any_record {
    ($( $(#[$doc:meta])* $kind:ident ),* $(,)?) => {
        /// A kind of record.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
        pub enum RecordKind {
            $( $(#[$doc])* $kind, )*
        }

        /// A record of any kind.
        #[derive(Clone, Debug, PartialEq)]
        #[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
        pub enum AnyRecord {
            $( $(#[$doc])* $kind { record: $kind }, )*
        }

        impl RecordKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [RecordKind] = &[$(RecordKind::$kind),*];

            /// The kind's schema: its document, collection and fields.
            pub fn spec(self) -> &'static RecordSpec {
                match self {
                    $( RecordKind::$kind => &<$kind as Record>::SPEC, )*
                }
            }
        }

        impl AnyRecord {
            pub fn kind(&self) -> RecordKind {
                match self {
                    $( AnyRecord::$kind { .. } => RecordKind::$kind, )*
                }
            }

            /// The record's fields as JSON (codes for enums, fen for money).
            pub fn to_json(&self) -> serde_json::Value {
                match self {
                    $( AnyRecord::$kind { record } => serde_json::to_value(record)
                        .expect("records serialize"), )*
                }
            }

            /// Reads a record of `kind` from its JSON fields.
            pub fn from_json(kind: RecordKind, value: serde_json::Value) -> Result<Self> {
                let spec = kind.spec();
                let bad = |e: serde_json::Error| Error::InvalidValue {
                    kind: spec.name,
                    field: "*",
                    problem: e.to_string(),
                };
                Ok(match kind {
                    $( RecordKind::$kind => AnyRecord::$kind {
                        record: serde_json::from_value(value).map_err(bad)?,
                    }, )*
                })
            }
        }

        impl RecordDoc {
            /// [`RecordDoc::insert`] for a record of any kind.
            pub fn insert_any(
                &mut self,
                ctx: &EditContext,
                id: RecordId,
                record: &AnyRecord,
            ) -> Result<ChangeHash> {
                match record {
                    $( AnyRecord::$kind { record } => self.insert(ctx, id, record), )*
                }
            }

            /// A record of `kind` by id (the singleton for singleton kinds,
            /// whatever the id).
            pub fn get_any(&self, kind: RecordKind, id: RecordId) -> Result<Option<AnyRecord>> {
                match kind {
                    $( RecordKind::$kind => Ok(if <$kind as Record>::SPEC.singleton {
                        Some(self.singleton::<$kind>()?)
                    } else {
                        self.get::<$kind>(id)?
                    }
                    .map(|record| AnyRecord::$kind { record })), )*
                }
            }

            /// Every record of `kind`, in id order.
            pub fn list_any(&self, kind: RecordKind) -> Result<Vec<(RecordId, AnyRecord)>> {
                match kind {
                    $( RecordKind::$kind => Ok(self
                        .list::<$kind>()?
                        .into_iter()
                        .map(|(id, record)| (id, AnyRecord::$kind { record }))
                        .collect()), )*
                }
            }

            /// Writes the fields that differ between `base` (the record as
            /// the caller read it) and `edited` (as the caller wants it):
            /// see [`RecordDoc::update_from`]. Both must be of one kind.
            pub fn update_any(
                &mut self,
                ctx: &EditContext,
                id: RecordId,
                base: &AnyRecord,
                edited: &AnyRecord,
            ) -> Result<bool> {
                match (base, edited) {
                    $( (AnyRecord::$kind { record: b }, AnyRecord::$kind { record: e }) => {
                        self.update_from(ctx, id, b, e)
                    } )*
                    _ => Err(Error::InvalidValue {
                        kind: edited.kind().spec().name,
                        field: "*",
                        problem: format!(
                            "the record as read is a {}, the edited one a {}; both must be of one kind",
                            base.kind().spec().name,
                            edited.kind().spec().name
                        ),
                    }),
                }
            }
        }
    };
}

any_record! {
    /// 学校概况 (one per school).
    SchoolProfile,
    /// 仪器设备台账: one asset.
    EquipmentItem,
    /// 盘点: a stocktake session.
    StocktakeSession,
    /// 盘点: one counted line of a session.
    StocktakeLine,
    /// 图书: one title in the catalogue.
    Book,
    /// 档案: one catalogue item's evidence at this school.
    ArchiveItem,
    /// 档案盒: a numbered box.
    ArchiveBox,
    /// 标准化建设: the school's value for one indicator.
    ChecklistRow,
    /// 补短板: a plan to close a shortfall.
    ImprovementPlan,
    /// 审核: a submission, approval or return of a section.
    ReviewEvent,
    /// 附件: a photo or scan attached to a record.
    Attachment,
    /// 县模板: an indicator and its threshold.
    IndicatorTemplate,
    /// 县模板: an item of the archive catalogue.
    CatalogueEntry,
    /// 县模板: the county's settings (one per county).
    TemplateSettings,
}

/// The status codes a record of `kind` may take, or `None` for kinds
/// without a status (the profile, review events, stocktake lines, settings).
pub fn status_codes(kind: RecordKind) -> Option<&'static [&'static str]> {
    match kind.spec().field("status")?.ty {
        FieldType::Enum(values) => Some(values),
        _ => None,
    }
}

impl RecordDoc {
    /// Changes a record's status — the only way anything is removed (weeded,
    /// scrapped, withdrawn, retired): the record stays, with `reason` and
    /// the date (`on`, `YYYY-MM-DD`) where its kind records them.
    pub fn set_status(
        &mut self,
        ctx: &EditContext,
        kind: RecordKind,
        id: RecordId,
        status: &str,
        reason: Option<&str>,
        on: Option<&str>,
    ) -> Result<bool> {
        let spec = kind.spec();
        let allowed = status_codes(kind).ok_or_else(|| Error::InvalidValue {
            kind: spec.name,
            field: "status",
            problem: format!("{} records have no status", spec.name),
        })?;
        if !allowed.contains(&status) {
            return Err(Error::InvalidValue {
                kind: spec.name,
                field: "status",
                problem: format!("{status:?} is not one of {}", allowed.join(", ")),
            });
        }
        let base = self
            .get_any(kind, id)?
            .ok_or_else(|| Error::RecordNotFound {
                doc: self.id().clone(),
                id,
            })?;
        let mut json = base.to_json();
        let fields = json.as_object_mut().expect("records are objects");
        fields.insert("status".into(), status.into());
        if spec.field("status_reason").is_some() {
            fields.insert("status_reason".into(), reason.into());
        } else if reason.is_some() {
            return Err(Error::InvalidValue {
                kind: spec.name,
                field: "status_reason",
                problem: format!("{} records keep no reason with their status", spec.name),
            });
        }
        let date_field = ["status_date", "closed_on"]
            .into_iter()
            .find(|f| spec.field(f).is_some());
        match (date_field, on) {
            (Some(f), Some(on)) => {
                fields.insert(f.into(), on.into());
            }
            (None, Some(_)) => {
                return Err(Error::InvalidValue {
                    kind: spec.name,
                    field: "status_date",
                    problem: format!("{} records keep no date with their status", spec.name),
                })
            }
            _ => {}
        }
        let edited = AnyRecord::from_json(kind, json)?;
        self.update_any(ctx, id, &base, &edited)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DocId, DocKind, SchoolId};

    fn ctx() -> EditContext {
        EditContext {
            user: "t1".parse().unwrap(),
            device: "p1".parse().unwrap(),
            now_ms: 1_700_000_000_000,
        }
    }

    fn books() -> RecordDoc {
        let school = SchoolId::new("4301230001").unwrap();
        RecordDoc::genesis(DocId::school(&school, DocKind::Books).unwrap())
    }

    #[test]
    fn every_kind_has_its_spec_and_round_trips_through_json() {
        assert_eq!(RecordKind::ALL.len(), super::super::ALL_SPECS.len());
        for (spec, json) in super::super::samples::all() {
            let kind = RecordKind::ALL
                .iter()
                .copied()
                .find(|k| k.spec().name == spec.name)
                .unwrap_or_else(|| panic!("{} has no RecordKind", spec.name));
            let any = AnyRecord::from_json(kind, json.clone()).unwrap();
            assert_eq!(any.kind(), kind);
            assert_eq!(any.to_json(), json);
        }
    }

    #[test]
    fn status_changes_keep_the_record_with_reason_and_date() {
        let mut doc = books();
        let id = RecordId::random();
        let book = AnyRecord::Book {
            record: samples::book(1),
        };
        doc.insert_any(&ctx(), id, &book).unwrap();
        doc.set_status(
            &ctx(),
            RecordKind::Book,
            id,
            "weeded",
            Some("破损"),
            Some("2026-11-01"),
        )
        .unwrap();
        let Some(AnyRecord::Book { record }) = doc.get_any(RecordKind::Book, id).unwrap() else {
            panic!("the book is still there")
        };
        assert_eq!(record.status, BookStatus::Weeded);
        assert_eq!(record.status_reason.as_deref(), Some("破损"));
        assert_eq!(record.status_date.as_deref(), Some("2026-11-01"));

        let err = doc
            .set_status(&ctx(), RecordKind::Book, id, "burnt", None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("on_shelf") && err.contains("burnt"), "{err}");
        assert!(doc
            .set_status(&ctx(), RecordKind::ReviewEvent, id, "x", None, None)
            .is_err());
    }

    #[test]
    fn an_edit_from_a_stale_read_does_not_revert_what_arrived_since() {
        let mut doc = books();
        let id = RecordId::random();
        let read = samples::book(1);
        doc.insert(&ctx(), id, &read).unwrap();
        // A sync brings another device's shelf change after the app read it.
        doc.update::<Book>(&ctx(), id, |b| b.shelf = Some("B-2".into()))
            .unwrap();
        let mut edited = read.clone();
        edited.title = "红楼梦（校注本）".into();
        let base = AnyRecord::Book { record: read };
        let edited = AnyRecord::Book { record: edited };
        assert!(doc.update_any(&ctx(), id, &base, &edited).unwrap());
        let now: Book = doc.get(id).unwrap().unwrap();
        assert_eq!(now.title, "红楼梦（校注本）");
        assert_eq!(now.shelf.as_deref(), Some("B-2"), "the synced shelf stays");
        // Saving the same edit again changes nothing.
        assert!(!doc.update_any(&ctx(), id, &base, &edited).unwrap());
        // Kinds must agree.
        let other = AnyRecord::EquipmentItem {
            record: samples::equipment(1),
        };
        assert!(doc.update_any(&ctx(), id, &base, &other).is_err());
    }
}
