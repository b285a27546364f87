//! The OpenAPI 3.1 description of the HTTP API, served at `/openapi.json`.
//!
//! Written out here rather than derived (utoipa): the request and answer
//! types live in the accounts crate, which should not depend on an OpenAPI
//! generator, and the sync bodies are binary frames that a generator cannot
//! describe. A test walks every path below against the real router, so the
//! description cannot name a route that does not exist.

use serde_json::{json, Value};

fn problem_responses(codes: &[u16]) -> Value {
    let mut m = serde_json::Map::new();
    for c in codes {
        m.insert(
            c.to_string(),
            json!({"description": "An RFC 9457 problem with a stable `code`",
                   "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}),
        );
    }
    Value::Object(m)
}

fn op(
    summary: &str,
    tag: &str,
    secured: bool,
    ok: (u16, Value),
    errors: &[u16],
    body: Option<Value>,
) -> Value {
    let mut responses = problem_responses(errors);
    responses
        .as_object_mut()
        .unwrap()
        .insert(ok.0.to_string(), ok.1);
    let mut o = json!({"summary": summary, "tags": [tag], "responses": responses});
    if secured {
        o["security"] = json!([{"bearer": []}]);
    }
    if let Some(b) = body {
        o["requestBody"] = b;
    }
    o
}

fn json_body(schema: &str) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn json_ok(desc: &str, schema: Value) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": schema}}})
}

/// A spreadsheet download: .xlsx or CSV, chosen by the file name.
fn sheet_ok(desc: &str) -> Value {
    json!({"description": desc, "content": {
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {"schema": {"type": "string", "format": "binary"}},
        "text/csv": {"schema": {"type": "string"}}}})
}

fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn list(name: &str) -> Value {
    json!({"type": "array", "items": r(name)})
}

/// The whole description.
pub fn document() -> Value {
    let frame = json!({"required": true, "content": {"application/x-tpsync": {"schema": {"type": "string", "format": "binary"}}}});
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "tpsync server",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Offline-first sync for rural teaching points (教学点). Phones sync their school's documents with POST /v1/sync (binary frames of the tpsync protocol); clients that stay online use the WebSocket. Every error is an RFC 9457 problem document with a stable `code`."
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {
                "Problem": {"type": "object", "required": ["type", "title", "status", "detail", "code"], "properties": {
                    "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "code": {"type": "string", "enum": ["unauthorized", "token_expired", "token_invalid", "device_revoked", "invalid_credentials", "rate_limited", "forbidden", "malformed", "bad_request", "too_large", "invalid", "not_found", "conflict", "setup_done", "timeout", "unsupported_media_type", "method_not_allowed", "internal", "not_ready", "not_allowed_now", "not_approved", "reports_building", "not_referenced", "attachment_too_large", "quota_exceeded", "upload_not_started", "upload_busy", "offset_mismatch", "past_end", "chunk_corrupt", "attachment_mismatch"]},
                    "problems": {"type": "array", "items": {"type": "object", "properties": {"doc": {"type": ["string", "null"]}, "code": {"type": "string"}, "message": {"type": "string"}}}},
                    "retry_after_s": {"type": "integer"}
                }},
                "AttachmentLimits": {"type": "object", "properties": {"max_attachment_bytes": {"type": "integer"}, "max_frame_bytes": {"type": "integer"}, "quota_bytes": {"type": "integer"}, "used_bytes": {"type": "integer", "description": "bytes the school holds on the server plus uploads in progress"}, "available_bytes": {"type": "integer"}, "missing": {"type": "array", "items": {"type": "string"}, "description": "blobs the school's active records name that the server does not hold (up to 500)"}}},
                "UploadState": {"type": "object", "properties": {"hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"}, "size": {"type": "integer"}, "received": {"type": "integer", "description": "bytes stored and synced to disk: resume from here"}, "complete": {"type": "boolean"}}},
                "AttachmentView": {"type": "object", "properties": {"id": {"type": "string"}, "target_kind": {"type": "string"}, "target": {"type": "string"}, "sha256": {"type": "string"}, "size": {"type": "integer"}, "media_type": {"type": "string"}, "file_name": {"type": ["string", "null"]}, "caption": {"type": ["string", "null"]}, "preview_sha256": {"type": ["string", "null"]}, "preview_size": {"type": ["integer", "null"]}, "taken_on": {"type": ["string", "null"]}, "status": {"type": "string", "enum": ["active", "removed"]}, "status_reason": {"type": ["string", "null"]}, "stored": {"type": "boolean", "description": "the server has the bytes"}, "preview_stored": {"type": "boolean"}, "url": {"type": "string"}, "preview_url": {"type": ["string", "null"]}}},
                "User": {"type": "object", "properties": {"id": {"type": "string"}, "username": {"type": "string"}, "role": {"type": "string", "enum": ["teacher", "township", "county", "admin"]}, "unit": {"type": ["string", "null"]}, "created_ms": {"type": "integer"}, "disabled": {"type": "boolean"}}},
                "NewUser": {"type": "object", "required": ["username", "password", "role"], "properties": {"username": {"type": "string"}, "password": {"type": "string", "minLength": 8}, "role": {"type": "string", "enum": ["teacher", "township", "county", "admin"]}, "unit": {"type": ["string", "null"], "description": "school code (teacher), township code (township), county code (county); null for admin"}}},
                "Tokens": {"type": "object", "properties": {"access_token": {"type": "string"}, "token_type": {"const": "Bearer"}, "expires_in": {"type": "integer"}, "refresh_token": {"type": "string"}, "device_id": {"type": "string"}, "user": r("User")}},
                "Login": {"type": "object", "required": ["username", "password", "device_id"], "properties": {"username": {"type": "string"}, "password": {"type": "string"}, "device_id": {"type": "string", "pattern": "^[A-Za-z0-9-]{1,32}$"}, "device_name": {"type": "string"}}},
                "Setup": {"type": "object", "required": ["code", "username", "password"], "properties": {"code": {"type": "string"}, "username": {"type": "string"}, "password": {"type": "string"}}},
                "Refresh": {"type": "object", "required": ["refresh_token"], "properties": {"refresh_token": {"type": "string"}}},
                "Me": {"type": "object", "properties": {"user": r("User"), "device_id": {"type": "string"}, "scope": {"type": "object", "properties": {"read": {"type": "array", "items": {"type": "string"}}, "write": {"type": "array", "items": {"type": "string"}}}}}},
                "County": {"type": "object", "required": ["code", "name"], "properties": {"code": {"type": "string"}, "name": {"type": "string"}}},
                "School": {"type": "object", "properties": {"code": {"type": "string"}, "name": {"type": "string"}, "school_type": {"type": "string"}, "township": {"type": "string"}, "enrollment": {"type": "array", "items": {"type": "integer"}, "minItems": 9, "maxItems": 9}}},
                "SchoolImport": {"type": "object", "properties": {"townships_created": {"type": "integer"}, "townships_updated": {"type": "integer"}, "schools_created": {"type": "integer"}, "schools_updated": {"type": "integer"}, "errors": {"type": "array", "items": {"type": "object", "properties": {"line": {"type": "integer"}, "column": {"type": ["string", "null"]}, "message": {"type": "string"}}}}}},
                "Device": {"type": "object", "properties": {"id": {"type": "string"}, "user": {"type": "string"}, "name": {"type": ["string", "null"]}, "first_seen_ms": {"type": "integer"}, "last_seen_ms": {"type": "integer"}, "revoked_ms": {"type": ["integer", "null"]}}},
                "KeyInfo": {"type": "object", "properties": {"kid": {"type": "string"}, "created_ms": {"type": "integer"}}},
                "AreaReport": {"type": "object", "description": "The county's or a township's report: per stage (stages[]: stage, schools, students, pass/fail/undetermined, indicators[]: code, name, threshold, schools_with_value, schools_meeting, min, max, cv {schools, students, mean, std_dev, cv, reason}, cv_limit, cv_within; left_out[], folded[] teaching points), sections and wholes completeness {expected, submitted, approved, returned, on_time, edited_since_approval}, review_due, townships[] (county), rows[] (one per school: code, name, township, school_type, students, verdicts, sections_approved, whole, gaps, teaching_point), version",
                    "properties": {"scope": {"type": "string"}, "name": {"type": "string"}, "schools": {"type": "integer"}, "stages": {"type": "array", "items": {"type": "object"}}, "sections": r("Completeness"), "wholes": r("Completeness"), "review_due": {"type": ["string", "null"]}, "townships": {"type": "array", "items": {"type": "object"}}, "rows": {"type": "array", "items": {"type": "object"}}, "version": {"type": "integer"}}},
                "Completeness": {"type": "object", "properties": {"expected": {"type": "integer"}, "submitted": {"type": "integer"}, "approved": {"type": "integer"}, "returned": {"type": "integer"}, "on_time": {"type": "integer"}, "edited_since_approval": {"type": "integer"}}},
                "SchoolReport": {"type": "object", "description": "One school: meta, evaluation (per stage R1–R7 and books per student with value, threshold, meets, shortfall, plans, verdict; teaching-point treatment), review (five sections then the whole: status, events, return_comment, approved_heads, edited_since_approval), submission_problems per section, gaps",
                    "properties": {"meta": {"type": "object"}, "evaluation": {"type": "object"}, "review": {"type": "array", "items": r("SectionState")}, "submission_problems": {"type": "array"}, "gaps": r("Gaps"), "version": {"type": "integer"}}},
                "SectionState": {"type": "object", "properties": {"section": {"type": "string", "enum": ["profile", "equipment", "books", "archive", "checklist", "whole"]}, "status": {"type": "string", "enum": ["draft", "submitted", "returned", "approved", "accepted"]}, "first_submitted_ms": {"type": ["integer", "null"]}, "return_comment": {"type": ["string", "null"]}, "approved_heads": {"type": ["array", "null"]}, "edited_since_approval": {"type": "boolean"}, "events": {"type": "array", "items": {"type": "object"}}}},
                "Gaps": {"type": "object", "properties": {"below_threshold": {"type": "array", "items": {"type": "object"}}, "archive": {"type": "array", "items": {"type": "object"}}, "stocktake": {"type": "array", "items": {"type": "object"}}}},
                "ReviewStep": {"type": "object", "required": ["section", "action"], "properties": {"section": {"type": "string", "enum": ["profile", "equipment", "books", "archive", "checklist", "whole"]}, "action": {"type": "string", "enum": ["submit", "approve", "return", "accept", "revoke"]}, "comment": {"type": ["string", "null"], "description": "required to return"}}},
                "TownshipStep": {"type": "object", "required": ["action"], "properties": {"action": {"type": "string", "enum": ["submit", "accept", "return", "revoke"]}, "comment": {"type": ["string", "null"]}, "schools": {"type": ["array", "null"], "items": {"type": "string"}}}},
                "StaleDevice": {"type": "object", "properties": {"device": {"type": "string"}, "username": {"type": "string"}, "school": {"type": ["string", "null"]}, "school_name": {"type": ["string", "null"]}, "township": {"type": ["string", "null"]}, "last_sync_ms": {"type": ["integer", "null"]}, "last_seen_ms": {"type": "integer"}, "days_since_sync": {"type": ["integer", "null"]}}}
            }
        },
        "paths": {
            "/healthz": {"get": op("Liveness and a few figures", "ops", false, (200, json_ok("ok", json!({"type": "object"}))), &[], None)},
            "/metrics": {"get": op("Prometheus metrics", "ops", false, (200, json!({"description": "OpenMetrics text", "content": {"application/openmetrics-text": {"schema": {"type": "string"}}}})), &[], None)},
            "/openapi.json": {"get": op("This description", "ops", false, (200, json_ok("OpenAPI 3.1", json!({"type": "object"}))), &[], None)},
            "/v1/setup": {"post": op("Create the first administrator with the code the server printed at start", "auth", false, (201, json_ok("the administrator", r("User"))), &[400, 403, 409], Some(json_body("Setup")))},
            "/v1/auth/login": {"post": op("Sign in on a device: a short-lived access token and a refresh token for this device", "auth", false, (200, json_ok("tokens", r("Tokens"))), &[400, 401, 409, 429], Some(json_body("Login")))},
            "/v1/auth/refresh": {"post": op("A new access token (and a new refresh token; the old one stops working)", "auth", false, (200, json_ok("tokens", r("Tokens"))), &[400, 401], Some(json_body("Refresh")))},
            "/v1/auth/logout": {"post": op("Sign this device out (its refresh token is revoked)", "auth", true, (204, json!({"description": "signed out"})), &[401], None)},
            "/v1/me": {"get": op("Who I am and which documents I may read and write", "auth", true, (200, json_ok("me", r("Me"))), &[401], None)},
            "/v1/sync": {"post": op("One round of the tpsync sync protocol. Every document is checked against the caller's access; incoming changes are validated and committed durably, all or nothing, before the answer", "sync", true,
                (200, json!({"description": "the response frame", "content": {"application/x-tpsync": {"schema": {"type": "string", "format": "binary"}}}})),
                &[400, 401, 403, 413, 415, 422, 503], Some(frame))},
            "/v1/sync/ws": {"get": op("WebSocket: binary sync request frames in, response frames out; text {\"type\":\"changed\",\"docs\":[…]} notices when documents the caller reads change; text {\"type\":\"problem\",…} for a refused request. The token may also come as ?access_token=", "sync", true,
                (101, json!({"description": "switching to WebSocket"})), &[401], None)},
            "/v1/admin/county": {"post": op("Create or rename the county (one per server)", "admin", true, (200, json_ok("the county", r("County"))), &[400, 401, 403, 409], Some(json_body("County")))},
            "/v1/admin/schools/import": {"post": {
                "summary": "Import townships and schools from CSV (UTF-8 or GB18030; English or Chinese headers). Any bad row: 422 listing every row error, nothing imported",
                "tags": ["admin"], "security": [{"bearer": []}],
                "parameters": [{"name": "dry_run", "in": "query", "schema": {"type": "boolean"}}],
                "requestBody": {"required": true, "content": {"text/csv": {"schema": {"type": "string"}}}},
                "responses": {"200": json_ok("what was (or would be) imported", r("SchoolImport")), "401": problem_responses(&[401])["401"], "403": problem_responses(&[403])["403"], "422": problem_responses(&[422])["422"]}
            }},
            "/v1/admin/schools": {"get": op("The registered schools", "admin", true, (200, json_ok("schools", list("School"))), &[401, 403], None)},
            "/v1/admin/users": {
                "get": op("Every user", "admin", true, (200, json_ok("users", list("User"))), &[401, 403], None),
                "post": op("Create a user bound to their unit", "admin", true, (201, json_ok("the user", r("User"))), &[400, 401, 403, 409], Some(json_body("NewUser")))
            },
            "/v1/admin/devices": {"get": op("Every device that signed in", "admin", true, (200, json_ok("devices", list("Device"))), &[401, 403], None)},
            "/v1/admin/devices/{id}/revoke": {"post": {
                "summary": "Revoke a device (a lost phone): its tokens stop working at once",
                "tags": ["admin"], "security": [{"bearer": []}],
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": json_ok("the device", r("Device")), "401": problem_responses(&[401])["401"], "403": problem_responses(&[403])["403"], "404": problem_responses(&[404])["404"]}
            }},
            "/v1/admin/keys/rotate": {"post": op("Rotate the token signing key; tokens signed with the old key keep working until they expire", "admin", true, (200, json_ok("the new key", r("KeyInfo"))), &[401, 403], None)},
            "/v1/reports/county": {"get": op("The county report (county users): per stage R1–R7 and books per student, each indicator's enrollment-weighted CV against the limit, pass counts, completeness by level, townships, schools", "reports", true, (200, json_ok("the report", r("AreaReport"))), &[401, 403, 503], None)},
            "/v1/reports/townships/{code}": {"get": op("A township's report (its township user, or the county)", "reports", true, (200, json_ok("the report", r("AreaReport"))), &[401, 403, 404, 503], None)},
            "/v1/reports/schools/{code}": {"get": op("One school: evaluation, review state, submission checks, gaps (its teacher, its township, the county)", "reports", true, (200, json_ok("the school", r("SchoolReport"))), &[400, 401, 403, 404, 503], None)},
            "/v1/reports/gaps": {"get": {"summary": "Gaps per school (below threshold with plans, archive items missing, stocktake discrepancies) and devices not synced for stale_days", "tags": ["reports"], "security": [{"bearer": []}],
                "parameters": [{"name": "township", "in": "query", "schema": {"type": "string"}}, {"name": "stale_days", "in": "query", "schema": {"type": "integer", "default": 7}}],
                "responses": {"200": json_ok("gaps", json!({"type": "object", "properties": {"stale_days": {"type": "integer"}, "schools": {"type": "array", "items": {"type": "object"}}, "stale_devices": {"type": "array", "items": r("StaleDevice")}}})), "401": problem_responses(&[401])["401"], "403": problem_responses(&[403])["403"]}}},
            "/v1/reports/freshness": {"get": {"summary": "Every teacher device of the area and its last sync (stale_days filters)", "tags": ["reports"], "security": [{"bearer": []}],
                "parameters": [{"name": "township", "in": "query", "schema": {"type": "string"}}, {"name": "stale_days", "in": "query", "schema": {"type": "integer"}}],
                "responses": {"200": json_ok("devices", list("StaleDevice")), "401": problem_responses(&[401])["401"], "403": problem_responses(&[403])["403"]}}},
            "/v1/schools/{code}/review": {"post": op("A review step on one school: the teacher submits a section (its checks must pass), the township approves (freezing the document's heads), returns (with a comment) or revokes it, the township submits the whole school, the county accepts, returns or revokes it", "review", true, (200, json_ok("the section's new state", json!({"type": "object", "properties": {"school": {"type": "string"}, "state": r("SectionState")}}))), &[400, 401, 403, 409], Some(json_body("ReviewStep")))},
            "/v1/townships/{code}/review": {"post": op("A step on the schools of a township as a whole: the township submits its aggregate (all or nothing unless schools are named), the county accepts, returns or revokes", "review", true, (200, json_ok("done and skipped", json!({"type": "object"}))), &[400, 401, 403, 404, 409], Some(json_body("TownshipStep")))},
            "/v1/schools/{code}/sections/{section}/changes": {"get": op("What changed in a section's document since its standing approval, field by field", "review", true, (200, json_ok("changes", json!({"type": "object"}))), &[400, 401, 403, 409], None)},
            "/v1/schools/{code}/attachments": {"get": {"summary": "The school's attachment records (photos, scans), and whether the server has their bytes yet", "tags": ["attachments"], "security": [{"bearer": []}],
                "parameters": [{"name": "record", "in": "query", "description": "only the attachments of this record", "schema": {"type": "string"}}],
                "responses": {"200": json_ok("attachments", list("AttachmentView")), "400": problem_responses(&[400])["400"], "401": problem_responses(&[401])["401"], "403": problem_responses(&[403])["403"]}}},
            "/v1/schools/{code}/attachments/limits": {"get": op("The largest attachment accepted and the school's quota: learn them before queueing a file", "attachments", true, (200, json_ok("limits", r("AttachmentLimits"))), &[400, 401, 403], None)},
            "/v1/schools/{code}/blobs/{hash}": {
                "post": op("Start an upload of the blob named `hash` (SHA-256, 64 hex digits), or ask where it stands. A record of the school must name it with this size (sync the records first); size and quota are checked here", "attachments", true, (200, json_ok("where the upload stands", r("UploadState"))), &[400, 401, 403, 409, 413], Some(json!({"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["size"], "properties": {"size": {"type": "integer"}}}}}}))),
                "put": {"summary": "Upload bytes from `offset` as chunk frames (each: u32 big-endian length, SHA-256 of the bytes, the bytes). Each verified frame is synced to disk before the next is read; a damaged frame ends the request with chunk_corrupt and the bytes stored; the last frame completes the blob if the whole matches its name", "tags": ["attachments"], "security": [{"bearer": []}],
                    "parameters": [{"name": "offset", "in": "query", "schema": {"type": "integer"}}],
                    "requestBody": {"required": true, "content": {"application/vnd.tpsync.frames": {"schema": {"type": "string", "format": "binary"}}}},
                    "responses": {"200": json_ok("where the upload stands", r("UploadState")), "400": problem_responses(&[400])["400"], "401": problem_responses(&[401])["401"], "403": problem_responses(&[403])["403"], "409": problem_responses(&[409])["409"], "415": problem_responses(&[415])["415"], "422": problem_responses(&[422])["422"]}},
                "get": {"summary": "The blob's bytes, to callers who may read the school's attachments, when a record of the school names it and the school sent it. `Range: bytes=n-` resumes (206); with `Accept: application/vnd.tpsync.frames` the answer is chunk frames from `offset`, each verifiable on its own", "tags": ["attachments"], "security": [{"bearer": []}],
                    "parameters": [{"name": "offset", "in": "query", "schema": {"type": "integer"}}, {"name": "frame", "in": "query", "description": "frame size of a framed answer (1 KiB to the server's largest)", "schema": {"type": "integer"}}, {"name": "Range", "in": "header", "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "the bytes (Content-Type as recorded; x-blob-size gives the whole size)", "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}, "206": {"description": "the bytes from the range's start"}, "400": problem_responses(&[400])["400"], "401": problem_responses(&[401])["401"], "403": problem_responses(&[403])["403"], "404": problem_responses(&[404])["404"], "416": {"description": "the range starts past the end"}}}
            },
            "/v1/exports/{file}": {"get": {"summary": "A report as a spreadsheet with Chinese headers, as .xlsx (one sheet per table) or .csv (one table, chosen by `table`): `report` (the county's, or a township's with `township`), `school` (with `school`: verdicts, indicators, review, gaps), `gaps` (as /v1/reports/gaps), `freshness` (as /v1/reports/freshness)", "tags": ["sheets"], "security": [{"bearer": []}],
                "parameters": [{"name": "township", "in": "query", "schema": {"type": "string"}}, {"name": "school", "in": "query", "description": "for `school`: the school's code", "schema": {"type": "string"}}, {"name": "table", "in": "query", "description": "CSV only: which table (0-based) of a report of several", "schema": {"type": "integer"}}, {"name": "stale_days", "in": "query", "schema": {"type": "integer"}}],
                "responses": {"200": sheet_ok("the report"), "400": problem_responses(&[400])["400"], "401": problem_responses(&[401])["401"], "403": problem_responses(&[403])["403"], "404": problem_responses(&[404])["404"]}}},
            "/v1/schools/{code}/ledgers/{file}": {"get": {"summary": "One of a school's registers as a spreadsheet with Chinese headers, `<register>.xlsx` or `.csv`: `equipment`, `books`, `stocktake`, `archive` (items and boxes), `checklist` (rows and plans); its teacher, its township, the county", "tags": ["sheets"], "security": [{"bearer": []}],
                "parameters": [{"name": "table", "in": "query", "description": "CSV only: which table (0-based) of a register of several", "schema": {"type": "integer"}}],
                "responses": {"200": sheet_ok("the register"), "400": problem_responses(&[400])["400"], "401": problem_responses(&[401])["401"], "403": problem_responses(&[403])["403"]}}},
            "/v1/schools/{code}/ledgers/{ledger}/import": {"post": {"summary": "Import an existing `equipment` or `books` ledger from .xlsx or CSV (the body is the file). With `dry_run=true` nothing is written: the answer previews what would be created and every bad row with its line and column. Without it the good rows are created and nothing from the bad ones; a row whose asset number (资产编号) or register number (登记号) is already in the ledger is a row error, never a duplicate. The school's teacher or its township; the county only reads", "tags": ["sheets"], "security": [{"bearer": []}],
                "parameters": [{"name": "dry_run", "in": "query", "schema": {"type": "boolean", "default": false}}, {"name": "filename", "in": "query", "description": "the uploaded file's name, to tell .xlsx from .csv (else told by content)", "schema": {"type": "string"}}],
                "requestBody": {"required": true, "content": {"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {"schema": {"type": "string", "format": "binary"}}, "text/csv": {"schema": {"type": "string"}}}},
                "responses": {"200": json_ok("what was (or would be) created, and the rows with errors", json!({"type": "object", "properties": {"dry_run": {"type": "boolean"}, "total_rows": {"type": "integer"}, "created": {"type": "array", "items": {"type": "object", "properties": {"line": {"type": "integer"}, "key": {"type": "string"}, "name": {"type": "string"}}}}, "errors": {"type": "array", "items": {"type": "object", "properties": {"line": {"type": "integer"}, "column": {"type": ["string", "null"]}, "message": {"type": "string"}}}}, "unknown_columns": {"type": "array", "items": {"type": "string"}}}})), "400": problem_responses(&[400])["400"], "401": problem_responses(&[401])["401"], "403": problem_responses(&[403])["403"], "413": problem_responses(&[413])["413"], "422": problem_responses(&[422])["422"]}}},
            "/v1/admin/backup": {"get": op("A consistent backup of the whole data directory (restore offline with `tpsync admin restore`)", "admin", true,
                (200, json!({"description": "the backup file", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}})), &[401, 403], None)}
        }
    })
}
