//! [`RecordDoc`]: typed records over one Automerge document.
//!
//! Layout of every document, created by its genesis change:
//!
//! ```text
//! ROOT
//! ├── schema: "tpsync/1"
//! ├── kind:   "equipment"
//! ├── doc:    "school.4301230001.equipment"
//! ├── items:            { <RecordId>: { field: scalar, … }, … }   (a collection)
//! └── stocktakes: …     (one map per record kind of this document kind)
//! ```
//!
//! The genesis change has a fixed actor and time 0, so every device that
//! creates the same document produces the byte-identical change and their
//! collections are the same objects: records added offline on two devices that
//! never met both survive the merge.

use std::collections::HashMap;

use automerge::{
    transaction::{CommitOptions, Transactable},
    ActorId, Automerge, Change, ChangeHash, ObjId, ObjType, ReadDoc, ScalarValue, Value, ROOT,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, SchemaError};
use crate::ids::{DeviceId, DocId, DocKind, RecordId, UserId};
use crate::records::{spec_for_collection, specs_for};
use crate::schema::{self, Location, Record, RecordSpec, Violation};

/// The schema version written by the genesis change.
/// Most changes [`RecordDoc::validate_since`] diffs; more are validated whole.
const DIFF_LIMIT: usize = 256;

pub const SCHEMA_VERSION: &str = "tpsync/1";

/// The actor of every genesis change. No device ever edits as this actor.
pub fn genesis_actor() -> ActorId {
    ActorId::from(&b"tpsync-genesis-1"[..])
}

const ROOT_SCALARS: [&str; 3] = ["schema", "kind", "doc"];

/// Who is editing, on which device, and when. Written into every change, so a
/// field's history can say who changed it. Time is passed in, never read here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EditContext {
    pub user: UserId,
    pub device: DeviceId,
    /// Milliseconds since the Unix epoch.
    pub now_ms: i64,
}

/// The author of a change, as read back from its message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeAuthor {
    #[serde(rename = "u")]
    pub user: String,
    #[serde(rename = "d")]
    pub device: String,
}

/// One step in a record's history.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldChange {
    /// The field, or `None` for the record's creation.
    pub field: Option<String>,
    /// The value(s) this change replaced (more than one when it resolved a
    /// conflict).
    pub old: Vec<serde_json::Value>,
    pub new: serde_json::Value,
    /// Who and which device, if the change says.
    pub author: Option<ChangeAuthor>,
    /// When, in ms since the Unix epoch, as the editing device's clock said.
    pub at_ms: i64,
    /// The Automerge change, hex.
    pub change: String,
}

/// A field with more than one concurrent value. `values[0]` is the one reads
/// show; the others are kept until someone resolves the conflict.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldConflict {
    pub field: String,
    pub values: Vec<serde_json::Value>,
}

/// One Automerge document holding typed records.
#[derive(Clone, Debug)]
pub struct RecordDoc {
    id: DocId,
    doc: Automerge,
}

impl RecordDoc {
    /// The document as every device first creates it: only its skeleton, made by
    /// the deterministic genesis change.
    pub fn genesis(id: DocId) -> Self {
        let mut doc = Automerge::new().with_actor(genesis_actor());
        let mut tx = doc.transaction();
        tx.put(ROOT, "schema", SCHEMA_VERSION).expect("genesis put");
        tx.put(ROOT, "kind", id.kind().as_str())
            .expect("genesis put");
        tx.put(ROOT, "doc", id.to_string()).expect("genesis put");
        for spec in specs_for(id.kind()) {
            tx.put_object(ROOT, spec.collection, ObjType::Map)
                .expect("genesis put_object");
        }
        tx.commit_with(CommitOptions::default().with_time(0));
        doc.set_actor(ActorId::random());
        Self { id, doc }
    }

    /// The hash of the genesis change of a document (the same on every device).
    pub fn genesis_hash(id: &DocId) -> ChangeHash {
        Self::genesis(id.clone()).doc.get_heads()[0]
    }

    /// Wraps an Automerge document loaded from storage or a peer. Does not
    /// validate: call [`RecordDoc::validate`] on anything from outside.
    pub fn from_automerge(id: DocId, doc: Automerge) -> Self {
        Self { id, doc }
    }

    pub fn id(&self) -> &DocId {
        &self.id
    }

    pub fn kind(&self) -> DocKind {
        self.id.kind()
    }

    /// The underlying Automerge document, for sync and storage.
    pub fn automerge(&self) -> &Automerge {
        &self.doc
    }

    pub(crate) fn automerge_mut(&mut self) -> &mut Automerge {
        &mut self.doc
    }

    /// Sets the actor this replica edits as.
    pub fn set_actor(&mut self, actor: ActorId) {
        self.doc.set_actor(actor);
    }

    pub fn heads(&self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    /// A compressed whole-document save of the changes that are applied.
    /// Changes held back for missing dependencies are left out: written to
    /// storage they would make the document refuse to load.
    pub fn save(&self) -> Vec<u8> {
        self.doc.save_with_options(automerge::SaveOptions {
            deflate: true,
            retain_orphans: false,
        })
    }

    /// Whether Automerge holds back changes whose dependencies have not
    /// arrived yet.
    pub fn has_held_back_changes(&self) -> bool {
        !self.doc.get_missing_deps(&[]).is_empty()
    }

    fn check_spec(&self, spec: &RecordSpec) -> Result<()> {
        if spec.doc_kind != self.kind() {
            return Err(Error::WrongDocument {
                kind: spec.name,
                expected: spec.doc_kind.as_str(),
                doc: self.id.clone(),
            });
        }
        Ok(())
    }

    fn collection(&self, spec: &RecordSpec) -> Result<ObjId> {
        self.check_spec(spec)?;
        match self.doc.get(ROOT, spec.collection) {
            Ok(Some((Value::Object(ObjType::Map), id))) => Ok(id),
            _ => Err(self.off_schema(Location::collection(spec.collection), "collection missing")),
        }
    }

    pub(crate) fn off_schema(&self, at: Location, problem: impl Into<String>) -> Error {
        Error::Schema(SchemaError {
            doc: self.id.clone(),
            violations: vec![Violation {
                at,
                problem: problem.into(),
            }],
        })
    }

    /// The record's object, or `RecordNotFound`.
    fn existing_record_obj(&self, spec: &RecordSpec, id: RecordId) -> Result<ObjId> {
        self.record_obj(spec, id)?.ok_or(Error::RecordNotFound {
            doc: self.id.clone(),
            id,
        })
    }

    fn record_obj(&self, spec: &RecordSpec, id: RecordId) -> Result<Option<ObjId>> {
        if spec.singleton {
            return self.collection(spec).map(Some);
        }
        let coll = self.collection(spec)?;
        match self.doc.get(&coll, id.to_string()) {
            Ok(Some((Value::Object(ObjType::Map), obj))) => Ok(Some(obj)),
            Ok(None) => Ok(None),
            _ => Err(self.off_schema(
                Location::record(spec.collection, &id.to_string()),
                "record is not a map",
            )),
        }
    }

    fn commit(
        &mut self,
        ctx: &EditContext,
        f: impl FnOnce(
            &mut automerge::transaction::Transaction<'_>,
        ) -> std::result::Result<(), automerge::AutomergeError>,
    ) -> Result<Option<ChangeHash>> {
        let message = serde_json::to_string(&ChangeAuthor {
            user: ctx.user.to_string(),
            device: ctx.device.to_string(),
        })
        .expect("author serializes");
        let mut tx = self.doc.transaction();
        if let Err(e) = f(&mut tx) {
            tx.rollback();
            return Err(Error::Automerge {
                doc: self.id.clone(),
                reason: e.to_string(),
            });
        }
        let (hash, _) = tx.commit_with(
            CommitOptions::default()
                .with_message(message)
                .with_time(ctx.now_ms),
        );
        Ok(hash)
    }

    /// Adds a new record under `id`. Fails if the id is taken: records are
    /// never replaced.
    pub fn insert<R: Record>(
        &mut self,
        ctx: &EditContext,
        id: RecordId,
        record: &R,
    ) -> Result<ChangeHash> {
        let spec = R::SPEC;
        let coll = self.collection(&spec)?;
        if spec.singleton {
            return Err(Error::Protocol(format!(
                "{} is a singleton; use update_singleton",
                spec.name
            )));
        }
        if self.doc.get(&coll, id.to_string()).ok().flatten().is_some() {
            return Err(Error::RecordExists {
                doc: self.id.clone(),
                id,
            });
        }
        let fields = to_fields(&spec, record)?;
        let hash = self.commit(ctx, |tx| {
            let obj = tx.put_object(&coll, id.to_string(), ObjType::Map)?;
            for (name, value) in fields {
                if !matches!(value, ScalarValue::Null) {
                    tx.put(&obj, name, value)?;
                }
            }
            Ok(())
        })?;
        Ok(hash.expect("an insert always makes a change"))
    }

    /// Reads a record, changes it with `f`, and writes only the fields that
    /// changed, so concurrent edits of different fields both survive. Returns
    /// whether anything changed.
    pub fn update<R: Record>(
        &mut self,
        ctx: &EditContext,
        id: RecordId,
        f: impl FnOnce(&mut R),
    ) -> Result<bool> {
        let spec = R::SPEC;
        let obj = self.existing_record_obj(&spec, id)?;
        let before: R = self.read_record(&spec, &obj, Some(id))?;
        let mut after = before.clone();
        f(&mut after);
        self.write_diff(ctx, &spec, &obj, &before, &after)
    }

    /// Writes the fields in which `edited` differs from `base`, where `base`
    /// is the record as the caller read it earlier and `edited` what the
    /// caller wants. Fields the caller did not touch are left as they are now,
    /// so an edit made on a stale read never reverts a change that arrived by
    /// sync in between. Returns whether anything changed. For singleton kinds
    /// `id` is ignored.
    pub fn update_from<R: Record>(
        &mut self,
        ctx: &EditContext,
        id: RecordId,
        base: &R,
        edited: &R,
    ) -> Result<bool> {
        let spec = R::SPEC;
        let obj = self.existing_record_obj(&spec, id)?;
        let current: R = self.read_record(&spec, &obj, (!spec.singleton).then_some(id))?;
        let base: HashMap<&str, ScalarValue> = to_fields(&spec, base)?.into_iter().collect();
        let now: HashMap<&str, ScalarValue> = to_fields(&spec, &current)?.into_iter().collect();
        let changed: Vec<(&str, ScalarValue)> = to_fields(&spec, edited)?
            .into_iter()
            .filter(|(k, v)| base.get(k) != Some(v) && now.get(k) != Some(v))
            .collect();
        self.put_fields(ctx, &obj, changed)
    }

    /// Changes the document's singleton record (the school profile, the
    /// template settings).
    pub fn update_singleton<R: Record>(
        &mut self,
        ctx: &EditContext,
        f: impl FnOnce(&mut R),
    ) -> Result<bool> {
        let spec = R::SPEC;
        let obj = self.collection(&spec)?;
        let before: R = self.read_record(&spec, &obj, None)?;
        let mut after = before.clone();
        f(&mut after);
        self.write_diff(ctx, &spec, &obj, &before, &after)
    }

    fn write_diff<R: Record>(
        &mut self,
        ctx: &EditContext,
        spec: &RecordSpec,
        obj: &ObjId,
        before: &R,
        after: &R,
    ) -> Result<bool> {
        let old: HashMap<&str, ScalarValue> = to_fields(spec, before)?.into_iter().collect();
        let changed: Vec<(&str, ScalarValue)> = to_fields(spec, after)?
            .into_iter()
            .filter(|(k, v)| old.get(k) != Some(v))
            .collect();
        self.put_fields(ctx, obj, changed)
    }

    /// Writes `changed` fields of a record in one change; `false` if there
    /// are none (no empty change is made).
    fn put_fields(
        &mut self,
        ctx: &EditContext,
        obj: &ObjId,
        changed: Vec<(&str, ScalarValue)>,
    ) -> Result<bool> {
        if changed.is_empty() {
            return Ok(false);
        }
        self.commit(ctx, |tx| {
            for (name, value) in changed {
                tx.put(obj, name, value)?;
            }
            Ok(())
        })?;
        Ok(true)
    }

    /// A record by id, or `None` if there is none.
    pub fn get<R: Record>(&self, id: RecordId) -> Result<Option<R>> {
        let spec = R::SPEC;
        match self.record_obj(&spec, id)? {
            Some(obj) => self.read_record(&spec, &obj, Some(id)).map(Some),
            None => Ok(None),
        }
    }

    /// The document's singleton record.
    pub fn singleton<R: Record>(&self) -> Result<R> {
        let spec = R::SPEC;
        let obj = self.collection(&spec)?;
        self.read_record(&spec, &obj, None)
    }

    /// Every record of a kind, in id order.
    pub fn list<R: Record>(&self) -> Result<Vec<(RecordId, R)>> {
        self.list_where(|_: &R| true)
    }

    /// The records of a kind for which `keep` is true, in id order.
    pub fn list_where<R: Record>(
        &self,
        mut keep: impl FnMut(&R) -> bool,
    ) -> Result<Vec<(RecordId, R)>> {
        let spec = R::SPEC;
        let coll = self.collection(&spec)?;
        let mut out = Vec::new();
        for item in self.doc.map_range(&coll, ..) {
            let id = self.record_key(&spec, &item.key)?;
            let obj = item.id();
            let r: R = self.read_record(&spec, &obj, Some(id))?;
            if keep(&r) {
                out.push((id, r));
            }
        }
        Ok(out)
    }

    /// The ids of every record of a kind (cheap: reads no fields).
    pub fn record_ids(&self, spec: &RecordSpec) -> Result<Vec<RecordId>> {
        let coll = self.collection(spec)?;
        Ok(self
            .doc
            .map_range(&coll, ..)
            .filter_map(|i| i.key.parse().ok())
            .collect())
    }

    fn read_fields(
        &self,
        spec: &RecordSpec,
        obj: &ObjId,
    ) -> serde_json::Map<String, serde_json::Value> {
        self.read_fields_flagged(spec, obj).0
    }

    /// A record's fields as JSON, and whether any of them is conflicted.
    fn read_fields_flagged(
        &self,
        spec: &RecordSpec,
        obj: &ObjId,
    ) -> (serde_json::Map<String, serde_json::Value>, bool) {
        let mut map = serde_json::Map::new();
        let mut conflicted = false;
        for item in self.doc.map_range(obj, ..) {
            conflicted |= item.conflict;
            let ty = spec
                .field(&item.key)
                .map(|f| f.ty)
                .unwrap_or(schema::FieldType::Text);
            let value = match item.value {
                automerge::ValueRef::Scalar(s) => schema::scalar_to_json(ty, &ScalarValue::from(s)),
                automerge::ValueRef::Object(_) => serde_json::Value::String("<object>".into()),
            };
            map.insert(item.key.to_string(), value);
        }
        (map, conflicted)
    }

    /// A collection's key as a record id, or the schema violation it is.
    fn record_key(&self, spec: &RecordSpec, key: &str) -> Result<RecordId> {
        key.parse().map_err(|_| {
            self.off_schema(
                Location::record(spec.collection, key),
                "key is not a record id",
            )
        })
    }

    /// Every record of a kind as its JSON fields (not yet checked against
    /// the record type), with whether any field is conflicted, in id order.
    /// One pass over the collection: what list screens filter and sort.
    pub fn records_json(
        &self,
        spec: &RecordSpec,
    ) -> Result<Vec<(RecordId, serde_json::Value, bool)>> {
        let coll = self.collection(spec)?;
        if spec.singleton {
            let (map, conflicted) = self.read_fields_flagged(spec, &coll);
            return Ok(vec![(RecordId::from_u128(0), map.into(), conflicted)]);
        }
        let mut out = Vec::new();
        for item in self.doc.map_range(&coll, ..) {
            let id = self.record_key(spec, &item.key)?;
            let (map, conflicted) = self.read_fields_flagged(spec, &item.id());
            out.push((id, map.into(), conflicted));
        }
        Ok(out)
    }

    fn read_record<R: Record>(
        &self,
        spec: &RecordSpec,
        obj: &ObjId,
        id: Option<RecordId>,
    ) -> Result<R> {
        let map = self.read_fields(spec, obj);
        serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| {
            let at = match id {
                Some(id) => Location::record(spec.collection, &id.to_string()),
                None => Location::collection(spec.collection),
            };
            self.off_schema(at, format!("does not read as {}: {e}", spec.name))
        })
    }

    /// A record's fields as JSON, whatever its kind (for tools and exports).
    pub fn record_json(
        &self,
        spec: &RecordSpec,
        id: RecordId,
    ) -> Result<Option<serde_json::Value>> {
        Ok(self
            .record_obj(spec, id)?
            .map(|obj| serde_json::Value::Object(self.read_fields(spec, &obj))))
    }

    /// Whether any field of a record holds concurrent values (cheaper than
    /// [`RecordDoc::conflicts`]: reads no values).
    pub fn has_conflict(&self, spec: &RecordSpec, id: RecordId) -> Result<bool> {
        Ok(match self.record_obj(spec, id)? {
            Some(obj) => self.doc.map_range(&obj, ..).any(|item| item.conflict),
            None => false,
        })
    }

    /// The fields of a record that hold concurrent values.
    pub fn conflicts(&self, spec: &RecordSpec, id: RecordId) -> Result<Vec<FieldConflict>> {
        let obj = self.existing_record_obj(spec, id)?;
        let mut out = Vec::new();
        for item in self.doc.map_range(&obj, ..) {
            if !item.conflict {
                continue;
            }
            let ty = spec
                .field(&item.key)
                .map(|f| f.ty)
                .unwrap_or(schema::FieldType::Text);
            let all = self
                .doc
                .get_all(&obj, item.key.as_ref())
                .unwrap_or_default();
            // get_all lists values in op order; the winner (the value reads
            // show) is the last. Put it first.
            let mut values: Vec<serde_json::Value> = all
                .iter()
                .rev()
                .map(|(v, _)| match v {
                    Value::Scalar(s) => schema::scalar_to_json(ty, s),
                    Value::Object(_) => serde_json::Value::String("<object>".into()),
                })
                .collect();
            values.dedup();
            out.push(FieldConflict {
                field: item.key.to_string(),
                values,
            });
        }
        Ok(out)
    }

    /// Resolves a conflict on one field by writing the chosen value, which
    /// supersedes every concurrent value this replica has seen.
    pub fn resolve_conflict(
        &mut self,
        ctx: &EditContext,
        spec: &RecordSpec,
        id: RecordId,
        field: &str,
        value: &serde_json::Value,
    ) -> Result<()> {
        let fspec = spec.field(field).ok_or_else(|| Error::UnknownField {
            kind: spec.name,
            field: field.to_owned(),
        })?;
        let scalar = schema::json_to_scalar(fspec.ty, value).map_err(|problem| {
            self.off_schema(
                Location::field(spec.collection, &id.to_string(), field),
                problem,
            )
        })?;
        let obj = self.existing_record_obj(spec, id)?;
        self.commit(ctx, |tx| tx.put(&obj, field, scalar))?;
        Ok(())
    }

    /// Every change to a record, oldest first: its creation, then each field
    /// set, with who, which device, when, and old → new.
    pub fn history(&self, spec: &RecordSpec, id: RecordId) -> Result<Vec<FieldChange>> {
        let obj = self.existing_record_obj(spec, id)?;
        let (target_ctr, target_actor) = match &obj {
            ObjId::Id(ctr, actor, _) => (*ctr, actor.clone()),
            ObjId::Root => return Ok(Vec::new()),
        };
        let mut values: HashMap<(u64, ActorId), serde_json::Value> = HashMap::new();
        let mut out = Vec::new();
        for change in self.doc.get_changes(&[]) {
            let author = author_of(&change);
            let hash = change.hash().to_string();
            let at_ms = change.timestamp();
            let expanded = change.decode();
            let start = expanded.start_op.get();
            for (i, op) in expanded.operations.iter().enumerate() {
                let op_id = (start + i as u64, expanded.actor_id.clone());
                if op_id.0 == target_ctr && op_id.1 == target_actor {
                    out.push(FieldChange {
                        field: None,
                        old: vec![],
                        new: serde_json::Value::Null,
                        author: author.clone(),
                        at_ms,
                        change: hash.clone(),
                    });
                    continue;
                }
                let on_target = matches!(&op.obj, automerge::legacy::ObjectId::Id(o)
                    if o.counter() == target_ctr && o.actor() == &target_actor);
                if !on_target {
                    continue;
                }
                let automerge::legacy::Key::Map(field) = &op.key else {
                    continue;
                };
                let ty = spec
                    .field(field)
                    .map(|f| f.ty)
                    .unwrap_or(schema::FieldType::Text);
                let new = match &op.action {
                    automerge::legacy::OpType::Put(v) => schema::scalar_to_json(ty, v),
                    automerge::legacy::OpType::Delete => serde_json::Value::Null,
                    _ => serde_json::Value::String("<object>".into()),
                };
                let old = op
                    .pred
                    .iter()
                    .filter_map(|p| values.get(&(p.counter(), p.actor().clone())).cloned())
                    .collect();
                values.insert(op_id, new.clone());
                out.push(FieldChange {
                    field: Some(field.to_string()),
                    old,
                    new,
                    author: author.clone(),
                    at_ms,
                    change: hash.clone(),
                });
            }
        }
        Ok(out)
    }

    /// Checks the whole document against its schema and lists everything
    /// wrong, with where.
    pub fn validate(&self) -> std::result::Result<(), SchemaError> {
        let mut v = Vec::new();
        self.validate_into(&mut v);
        if v.is_empty() {
            Ok(())
        } else {
            Err(SchemaError {
                doc: self.id.clone(),
                violations: v,
            })
        }
    }

    /// Validates what changed since `before` (heads of a version that was
    /// valid): the records the changes touched, or the whole document if
    /// they touched its root. Same verdict as [`Self::validate`] on a
    /// document that was valid at `before`, at a cost proportional to the
    /// change instead of the document (a day's sync touches a few dozen of
    /// 2,000 books).
    pub fn validate_since(&self, before: &[ChangeHash]) -> std::result::Result<(), SchemaError> {
        let heads = self.doc.get_heads();
        if heads == before {
            return Ok(());
        }
        // Past a few hundred changes (a first upload), a diff costs more
        // than walking the whole document.
        if self.doc.get_changes(before).len() > DIFF_LIMIT {
            return self.validate();
        }
        let patches = self.doc.diff(before, &heads);
        // (collection, record key or None for a singleton collection)
        let mut touched: std::collections::BTreeSet<(String, Option<String>)> = Default::default();
        for p in &patches {
            let coll = match p.path.first() {
                Some((_, automerge::Prop::Map(c))) => c.clone(),
                // The root itself (or an object not under a collection).
                _ => return self.validate(),
            };
            let Some(spec) = specs_for(self.kind()).find(|s| s.collection == coll) else {
                return self.validate();
            };
            if spec.singleton {
                touched.insert((coll, None));
                continue;
            }
            let record = match (p.path.get(1), &p.action) {
                (Some((_, automerge::Prop::Map(r))), _) => r.clone(),
                (None, automerge::PatchAction::PutMap { key, .. })
                | (None, automerge::PatchAction::DeleteMap { key }) => key.clone(),
                _ => return self.validate(),
            };
            touched.insert((coll, Some(record)));
        }
        let mut v = Vec::new();
        for (coll, record) in touched {
            let spec = specs_for(self.kind())
                .find(|s| s.collection == coll)
                .expect("checked above");
            let Ok(Some((_, coll_obj))) = self.doc.get(ROOT, spec.collection) else {
                return self.validate();
            };
            match record {
                None => self.validate_fields(spec, &coll_obj, None, &mut v),
                Some(key) => self.validate_record(spec, &coll_obj, &key, &mut v),
            }
        }
        if v.is_empty() {
            Ok(())
        } else {
            Err(SchemaError {
                doc: self.id.clone(),
                violations: v,
            })
        }
    }

    fn validate_record(&self, spec: &RecordSpec, coll: &ObjId, key: &str, v: &mut Vec<Violation>) {
        if key.parse::<RecordId>().is_err() {
            v.push(Violation {
                at: Location::record(spec.collection, key),
                problem: "key is not a record id (32 hex digits)".into(),
            });
        }
        let vals = self.doc.get_all(coll, key).unwrap_or_default();
        if vals.len() != 1 || !matches!(vals[0].0, Value::Object(ObjType::Map)) {
            v.push(Violation {
                at: Location::record(spec.collection, key),
                problem: "must be exactly one map".into(),
            });
            return;
        }
        self.validate_fields(spec, &vals[0].1, Some(key), v);
    }

    fn validate_into(&self, v: &mut Vec<Violation>) {
        let doc = &self.doc;
        let mut push = |at: Location, problem: String| v.push(Violation { at, problem });
        let expect_root = [
            ("schema", SCHEMA_VERSION.to_owned()),
            ("kind", self.kind().as_str().to_owned()),
            ("doc", self.id.to_string()),
        ];
        for (key, want) in &expect_root {
            match doc.get_all(ROOT, *key) {
                Ok(vals)
                    if vals.len() == 1
                        && matches!(&vals[0].0, Value::Scalar(s) if s.as_str() == Some(want.as_str())) =>
                    {}
                _ => push(
                    Location::collection(key),
                    format!("must be exactly {want:?}"),
                ),
            }
        }
        let genesis = genesis_actor();
        let specs: Vec<&RecordSpec> = specs_for(self.kind()).collect();
        for key in doc.keys(ROOT) {
            if ROOT_SCALARS.contains(&key.as_str()) {
                continue;
            }
            let Some(pos) = specs.iter().position(|s| s.collection == key) else {
                push(
                    Location::collection(&key),
                    "is not a collection of this document kind".into(),
                );
                continue;
            };
            // Collections are the genesis change's objects, counters 4, 5, …
            let want_ctr = (ROOT_SCALARS.len() + 1 + pos) as u64;
            match doc.get_all(ROOT, key.as_str()) {
                Ok(vals)
                    if vals.len() == 1
                        && matches!(&vals[0], (Value::Object(ObjType::Map), ObjId::Id(ctr, a, _)) if *ctr == want_ctr && *a == genesis) =>
                    {}
                _ => push(
                    Location::collection(&key),
                    "must be the genesis map; it was replaced or doubled".into(),
                ),
            }
        }
        for spec in specs {
            let Ok(Some((_, coll))) = doc.get(ROOT, spec.collection) else {
                v.push(Violation {
                    at: Location::collection(spec.collection),
                    problem: "collection missing".into(),
                });
                continue;
            };
            if spec.singleton {
                self.validate_fields(spec, &coll, None, v);
                continue;
            }
            for item in doc.map_range(&coll, ..) {
                self.validate_record(spec, &coll, &item.key, v);
            }
        }
    }

    fn validate_fields(
        &self,
        spec: &RecordSpec,
        obj: &ObjId,
        record: Option<&str>,
        v: &mut Vec<Violation>,
    ) {
        let loc = |field: &str| Location {
            collection: Some(spec.collection.to_owned()),
            record: record.map(str::to_owned),
            field: Some(field.to_owned()),
        };
        let mut seen = Vec::new();
        for item in self.doc.map_range(obj, ..) {
            let name = item.key.to_string();
            let Some(f) = spec.field(&name) else {
                v.push(Violation {
                    at: loc(&name),
                    problem: format!("is not a field of {}", spec.name),
                });
                continue;
            };
            seen.push(f.name);
            let values: Vec<Value<'_>> = if item.conflict {
                self.doc
                    .get_all(obj, name.as_str())
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(v, _)| v)
                    .collect()
            } else {
                vec![Value::from(item.value.clone())]
            };
            for value in values {
                match value {
                    Value::Scalar(s) => {
                        if let Err(problem) = schema::check_value(f.ty, &s) {
                            v.push(Violation {
                                at: loc(&name),
                                problem,
                            });
                        } else if f.required && matches!(s.as_ref(), ScalarValue::Null) {
                            v.push(Violation {
                                at: loc(&name),
                                problem: "is required but empty".into(),
                            });
                        }
                    }
                    Value::Object(_) => v.push(Violation {
                        at: loc(&name),
                        problem: "must be a value, not an object".into(),
                    }),
                }
            }
        }
        for f in spec.fields.iter().filter(|f| f.required) {
            if !seen.contains(&f.name) {
                v.push(Violation {
                    at: loc(f.name),
                    problem: "is required but missing".into(),
                });
            }
        }
    }

    /// Checks that `after` (this document plus changes from outside) keeps
    /// every record `before` had, as the same object: a removal is a status
    /// change, never an erased or replaced key.
    pub fn check_nothing_erased(&self, before: &RecordDoc) -> std::result::Result<(), SchemaError> {
        let mut v = Vec::new();
        for spec in specs_for(self.kind()).filter(|s| !s.singleton) {
            let (Ok(Some((_, b))), Ok(Some((_, a)))) = (
                before.doc.get(ROOT, spec.collection),
                self.doc.get(ROOT, spec.collection),
            ) else {
                continue;
            };
            let after: HashMap<String, ObjId> = self
                .doc
                .map_range(&a, ..)
                .map(|i| (i.key.to_string(), i.id()))
                .collect();
            for item in before.doc.map_range(&b, ..) {
                match after.get(item.key.as_ref()) {
                    Some(id) if *id == item.id() => {}
                    Some(_) => v.push(Violation {
                        at: Location::record(spec.collection, &item.key),
                        problem: "record was replaced; change its fields or its status instead"
                            .into(),
                    }),
                    None => v.push(Violation {
                        at: Location::record(spec.collection, &item.key),
                        problem: "record was erased; a removal must be a status change".into(),
                    }),
                }
            }
        }
        if v.is_empty() {
            Ok(())
        } else {
            Err(SchemaError {
                doc: self.id.clone(),
                violations: v,
            })
        }
    }

    /// The record kind held under a root key of this document, if any.
    pub fn spec_for(&self, collection: &str) -> Option<&'static RecordSpec> {
        spec_for_collection(self.kind(), collection)
    }
}

fn author_of(change: &Change) -> Option<ChangeAuthor> {
    change.message().and_then(|m| serde_json::from_str(m).ok())
}

/// A record's fields as (name, stored scalar), in spec order; `None` becomes
/// `Null`.
fn to_fields<R: Record>(spec: &RecordSpec, record: &R) -> Result<Vec<(&'static str, ScalarValue)>> {
    let json = serde_json::to_value(record)
        .map_err(|e| Error::Protocol(format!("{} does not serialize: {e}", spec.name)))?;
    let obj = json
        .as_object()
        .ok_or_else(|| Error::Protocol(format!("{} is not a struct", spec.name)))?;
    let mut out = Vec::with_capacity(spec.fields.len());
    for f in spec.fields {
        let v = obj.get(f.name).unwrap_or(&serde_json::Value::Null);
        let s = schema::json_to_scalar(f.ty, v).map_err(|problem| Error::InvalidValue {
            kind: spec.name,
            field: f.name,
            problem,
        })?;
        out.push((f.name, s));
    }
    Ok(out)
}

impl Location {
    pub fn collection(c: &str) -> Self {
        Location {
            collection: Some(c.to_owned()),
            record: None,
            field: None,
        }
    }
    pub fn record(c: &str, r: &str) -> Self {
        Location {
            collection: Some(c.to_owned()),
            record: Some(r.to_owned()),
            field: None,
        }
    }
    pub fn field(c: &str, r: &str, f: &str) -> Self {
        Location {
            collection: Some(c.to_owned()),
            record: Some(r.to_owned()),
            field: Some(f.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{samples, Book, EquipmentItem, EquipmentStatus, SchoolProfile};
    use crate::SchoolId;

    fn ctx(device: &str, now_ms: i64) -> EditContext {
        EditContext {
            user: format!("user-{device}").parse().unwrap(),
            device: device.parse().unwrap(),
            now_ms,
        }
    }

    fn doc(kind: DocKind) -> RecordDoc {
        RecordDoc::genesis(DocId::school(&SchoolId::new("4301230001").unwrap(), kind).unwrap())
    }

    fn merged(a: &RecordDoc, b: &RecordDoc) -> RecordDoc {
        let mut m = a.clone();
        m.doc.merge(&mut b.doc.clone()).unwrap();
        m
    }

    /// `validate_since` (the receive path) gives the same verdict as a
    /// whole-document `validate` for every kind of damage a change can do.
    #[test]
    fn validating_only_what_changed_finds_what_whole_validation_finds() {
        use automerge::transaction::Transactable;
        let mut base = doc(DocKind::Books);
        for n in 0..5 {
            base.insert(&ctx("a", n), RecordId::random(), &samples::book(n as u32))
                .unwrap();
        }
        let ids = base.record_ids(&<Book as Record>::SPEC).unwrap();
        let coll = base.doc.get(ROOT, "books").unwrap().unwrap().1;
        let rec = base.doc.get(&coll, ids[2].to_string()).unwrap().unwrap().1;
        type Damage = Box<dyn Fn(&mut automerge::transaction::Transaction<'_>, &ObjId, &ObjId)>;
        let damages: Vec<(&str, Damage)> = vec![
            (
                "required field deleted",
                Box::new(|tx, _, r| tx.delete(r, "title").unwrap()),
            ),
            (
                "wrong type",
                Box::new(|tx, _, r| tx.put(r, "copies", "many").unwrap()),
            ),
            (
                "unknown field",
                Box::new(|tx, _, r| tx.put(r, "colour", "red").unwrap()),
            ),
            (
                "nested object",
                Box::new(|tx, _, r| {
                    tx.put_object(r, "shelf", ObjType::Map).unwrap();
                }),
            ),
            (
                "bad record key",
                Box::new(|tx, c, _| {
                    tx.put_object(c, "not-a-record-id", ObjType::Map).unwrap();
                }),
            ),
            (
                "record as a scalar",
                Box::new(|tx, c, _| {
                    tx.put(c, RecordId::random().to_string(), 1).unwrap();
                }),
            ),
            (
                "root replaced",
                Box::new(|tx, _, _| {
                    tx.put_object(ROOT, "books", ObjType::Map).unwrap();
                }),
            ),
            (
                "root scalar",
                Box::new(|tx, _, _| tx.put(ROOT, "kind", "equipment").unwrap()),
            ),
        ];
        for (what, damage) in damages {
            let mut after = base.clone();
            let mut tx = after.doc.transaction();
            damage(&mut tx, &coll, &rec);
            tx.commit();
            assert!(after.validate().is_err(), "{what}: whole validation");
            assert!(
                after.validate_since(&base.heads()).is_err(),
                "{what}: validation of what changed"
            );
        }
        // And a good change passes both.
        let mut after = base.clone();
        after
            .update::<Book>(&ctx("b", 9), ids[1], |b| b.copies = 7)
            .unwrap();
        assert!(after.validate_since(&base.heads()).is_ok());
    }

    #[test]
    fn genesis_is_identical_on_every_device_and_valid() {
        for kind in DocKind::SCHOOL_KINDS {
            let a = doc(kind);
            let b = doc(kind);
            assert_eq!(a.heads(), b.heads(), "{kind:?}");
            assert_ne!(
                a.doc.get_actor(),
                b.doc.get_actor(),
                "devices edit as different actors"
            );
            a.validate().unwrap();
        }
        let t = RecordDoc::genesis(DocId::template(&"430123".parse().unwrap()));
        t.validate().unwrap();
    }

    #[test]
    fn devices_that_never_met_both_keep_their_records() {
        let mut a = doc(DocKind::Equipment);
        let mut b = doc(DocKind::Equipment);
        let (ia, ib) = (RecordId::random(), RecordId::random());
        a.insert(&ctx("phone-a", 1), ia, &samples::equipment(1))
            .unwrap();
        b.insert(&ctx("phone-b", 2), ib, &samples::equipment(2))
            .unwrap();
        let m = merged(&a, &b);
        let ids: Vec<RecordId> = m
            .list::<EquipmentItem>()
            .unwrap()
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        assert!(ids.contains(&ia) && ids.contains(&ib));
        m.validate().unwrap();
    }

    #[test]
    fn concurrent_edits_of_one_field_are_a_visible_conflict_until_resolved() {
        let mut a = doc(DocKind::Books);
        let id = RecordId::random();
        a.insert(&ctx("phone-a", 1), id, &samples::book(1)).unwrap();
        let mut b = a.clone();
        b.set_actor(ActorId::random());
        a.update::<Book>(&ctx("phone-a", 2), id, |r| r.shelf = Some("B-1".into()))
            .unwrap();
        b.update::<Book>(&ctx("phone-b", 3), id, |r| r.shelf = Some("C-9".into()))
            .unwrap();
        // A different field edited concurrently merges without conflict.
        b.update::<Book>(&ctx("phone-b", 4), id, |r| r.copies = 3)
            .unwrap();
        let mut m = merged(&a, &b);
        let spec = Book::SPEC;
        let c = m.conflicts(&spec, id).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "shelf");
        let mut vals: Vec<String> = c[0]
            .values
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        vals.sort();
        assert_eq!(vals, ["B-1", "C-9"]);
        let shown = m.get::<Book>(id).unwrap().unwrap();
        assert_eq!(
            Some(c[0].values[0].as_str().unwrap()),
            shown.shelf.as_deref()
        );
        assert_eq!(shown.copies, 3);
        m.resolve_conflict(
            &ctx("township", 5),
            &spec,
            id,
            "shelf",
            &serde_json::json!("C-9"),
        )
        .unwrap();
        assert!(m.conflicts(&spec, id).unwrap().is_empty());
        assert_eq!(
            m.get::<Book>(id).unwrap().unwrap().shelf.as_deref(),
            Some("C-9")
        );
        assert!(m
            .resolve_conflict(&ctx("t", 6), &spec, id, "shelf", &serde_json::json!(5))
            .is_err());
        assert!(m
            .resolve_conflict(&ctx("t", 6), &spec, id, "nope", &serde_json::json!("x"))
            .is_err());
    }

    #[test]
    fn history_says_who_which_device_when_and_old_to_new() {
        let mut a = doc(DocKind::Equipment);
        let id = RecordId::random();
        a.insert(&ctx("phone-a", 1_000), id, &samples::equipment(1))
            .unwrap();
        a.update::<EquipmentItem>(&ctx("phone-a", 2_000), id, |r| {
            r.status = EquipmentStatus::Scrapped;
            r.status_reason = Some("锈蚀".into());
        })
        .unwrap();
        let h = a.history(&EquipmentItem::SPEC, id).unwrap();
        assert_eq!(h[0].field, None, "creation first");
        let status: Vec<&FieldChange> = h
            .iter()
            .filter(|c| c.field.as_deref() == Some("status"))
            .collect();
        assert_eq!(status.len(), 2);
        assert_eq!(status[1].old, vec![serde_json::json!("in_use")]);
        assert_eq!(status[1].new, serde_json::json!("scrapped"));
        assert_eq!(status[1].at_ms, 2_000);
        let who = status[1].author.as_ref().unwrap();
        assert_eq!(
            (who.user.as_str(), who.device.as_str()),
            ("user-phone-a", "phone-a")
        );
        // Unchanged fields are not rewritten.
        assert_eq!(
            h.iter()
                .filter(|c| c.field.as_deref() == Some("name"))
                .count(),
            1
        );
    }

    #[test]
    fn singleton_profile_updates_in_place() {
        let mut p = doc(DocKind::Profile);
        p.update_singleton::<SchoolProfile>(&ctx("phone-a", 1), |s| {
            s.name = Some("青山村教学点".into());
            s.students_grade_1 = Some(9);
        })
        .unwrap();
        let s: SchoolProfile = p.singleton().unwrap();
        assert_eq!(s.students_grade_1, Some(9));
        p.validate().unwrap();
    }

    #[test]
    fn records_in_the_wrong_document_are_refused() {
        let mut books = doc(DocKind::Books);
        let err = books
            .insert(&ctx("p", 1), RecordId::random(), &samples::equipment(1))
            .unwrap_err();
        assert!(matches!(err, Error::WrongDocument { .. }), "{err}");
    }

    #[test]
    fn validation_names_what_is_wrong_and_where() {
        let mut d = doc(DocKind::Books);
        let id = RecordId::random();
        d.insert(&ctx("p", 1), id, &samples::book(1)).unwrap();
        let coll = d.doc.get(ROOT, "books").unwrap().unwrap().1;
        let rec = d.doc.get(&coll, id.to_string()).unwrap().unwrap().1;
        let mut tx = d.doc.transaction();
        tx.put(&rec, "copies", -3).unwrap();
        tx.put(&rec, "colour", "red").unwrap();
        tx.put(&rec, "status", "burnt").unwrap();
        tx.put(&coll, "not-an-id", "x").unwrap();
        tx.put(ROOT, "extra", 1).unwrap();
        tx.commit();
        let err = d.validate().unwrap_err();
        let text = err.to_string();
        for needle in ["copies", "colour", "status", "not-an-id", "extra"] {
            assert!(
                err.violations
                    .iter()
                    .any(|v| v.to_string().contains(needle)),
                "{needle} in {text}"
            );
        }
    }

    #[test]
    fn a_replaced_collection_or_erased_record_is_caught() {
        let mut d = doc(DocKind::Books);
        let id = RecordId::random();
        d.insert(&ctx("p", 1), id, &samples::book(1)).unwrap();
        let before = d.clone();
        let coll = d.doc.get(ROOT, "books").unwrap().unwrap().1;
        let mut erased = d.clone();
        let mut tx = erased.doc.transaction();
        tx.delete(&coll, id.to_string()).unwrap();
        tx.commit();
        assert!(erased
            .check_nothing_erased(&before)
            .unwrap_err()
            .to_string()
            .contains("erased"));
        let mut replaced = d.clone();
        let mut tx = replaced.doc.transaction();
        tx.put_object(ROOT, "books", ObjType::Map).unwrap();
        tx.commit();
        assert!(replaced.validate().is_err());
        assert!(replaced.check_nothing_erased(&before).is_err());
        d.check_nothing_erased(&before).unwrap();
    }
}
