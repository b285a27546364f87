//! Shared code of the server's fuzz targets: panic handling (as in
//! `sync-core/fuzz`), a real server in-process (sled in a temporary data
//! directory, a county with two schools, a teacher of each, a county user and
//! an administrator signed in through the router), and the contract every
//! HTTP answer keeps.
//!
//! libfuzzer-sys installs a panic hook that aborts on *any* panic, including
//! panics the code under test catches on purpose (sheets wraps calamine in
//! `catch_unwind`; sync-core wraps Automerge). [`init`] replaces it:
//! contained panics are ignored; a panic that escapes an entry point is
//! printed and aborts (a crash for libFuzzer). Environment:
//!
//! * `TPSYNC_FUZZ_ABORT_ON_CONTAINED=1`: abort on contained panics too.
//! * `TPSYNC_FUZZ_BACKTRACE=1`: print a backtrace with an escaping panic.
//! * `TPSYNC_FUZZ_KEEP_DATA=1`: keep the temporary data directories.
//! * `TPSYNC_FUZZ_VERBOSE=1`: print each HTTP answer's status.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode};
use sync_core::records::{
    AttachedTo, Attachment, AttachmentStatus, Book, BookStatus, EquipmentItem, EquipmentStatus,
};
use sync_core::store::{KeyPrefix, Storage};
use sync_core::{ChangeHash, CountyId, DocId, DocKind, EditContext, PeerId, RecordId, SchoolId};
use tower::ServiceExt;
use tpsync_accounts::{NewUser, Role};
use tpsync_server::{app, open, AppState, ServerConfig};

// ---------------------------------------------------------------------------
// Panics and broken contracts.
// ---------------------------------------------------------------------------

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs the panic hook. Call first thing from `fuzz_target!(init: ...)`.
pub fn init() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let abort_on_contained =
            std::env::var("TPSYNC_FUZZ_ABORT_ON_CONTAINED").is_ok_and(|v| v != "0");
        let backtrace = std::env::var("TPSYNC_FUZZ_BACKTRACE").is_ok_and(|v| v != "0");
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if abort_on_contained {
                default(info);
                std::process::abort();
            }
            let payload = info.payload();
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "<non-string panic payload>".into());
            let at = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let trace = if backtrace {
                format!("\n{}", std::backtrace::Backtrace::force_capture())
            } else {
                String::new()
            };
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{msg} (at {at}){trace}")));
        }));
    });
}

/// Runs one input of `target`; a panic escaping `f` is a crash.
pub fn run<T>(target: &str, f: impl FnOnce() -> T) -> T {
    LAST_PANIC.with(|p| p.borrow_mut().take());
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(t) => t,
        Err(_) => {
            let panic = LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| "unknown panic (maybe on another thread)".into());
            eprintln!("{target}: panicked: {panic}");
            std::process::abort();
        }
    }
}

/// A broken contract that is not a panic.
#[track_caller]
pub fn violated(what: String) -> ! {
    eprintln!("contract violated: {what}");
    std::process::abort();
}

// ---------------------------------------------------------------------------
// Temporary directories, removed at exit (and left over by a crash: removed
// by the next run once their process is gone).
// ---------------------------------------------------------------------------

const TMP_PREFIX: &str = "tpsync-fuzz-";

static TEMP_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

extern "C" {
    fn atexit(cb: extern "C" fn()) -> std::os::raw::c_int;
}

extern "C" fn remove_temp_dirs() {
    if std::env::var("TPSYNC_FUZZ_KEEP_DATA").is_ok_and(|v| v != "0") {
        return;
    }
    if let Ok(dirs) = TEMP_DIRS.lock() {
        for d in dirs.iter() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// A new empty directory `tpsync-fuzz-<pid>-<name>-…` in the system's
/// temporary directory, removed when the process exits.
pub fn temp_dir(name: &str) -> PathBuf {
    static CLEANUP: OnceLock<()> = OnceLock::new();
    CLEANUP.get_or_init(|| {
        // SAFETY: registering a plain `extern "C" fn` with the C library.
        unsafe { atexit(remove_temp_dirs) };
        // Directories of earlier runs that crashed (their process is gone).
        if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
            for e in entries.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                let Some(rest) = n.strip_prefix(TMP_PREFIX) else {
                    continue;
                };
                let pid = rest.split('-').next().unwrap_or("");
                if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    });
    let dir = tempfile::Builder::new()
        .prefix(&format!("{TMP_PREFIX}{}-{name}-", std::process::id()))
        .tempdir()
        .expect("a temporary directory")
        .keep();
    TEMP_DIRS.lock().unwrap().push(dir.clone());
    dir
}

// ---------------------------------------------------------------------------
// Fixtures.
// ---------------------------------------------------------------------------

pub const PASSWORD: &str = "fuzz-password-1";
pub const COUNTY: &str = "430123";
pub const SCHOOL_A: &str = "4301230001";
pub const SCHOOL_B: &str = "4301230002";

/// The county's school list: two schools in one township.
pub const SCHOOLS_CSV: &str = "学校标识码,学校名称,学校类型,乡镇代码,乡镇名称,一年级,二年级\n\
4301230001,青山村教学点,教学点,430123101,青山乡,12,10\n\
4301230002,青山乡中心学校,乡镇中心学校,430123101,青山乡,40,38\n";

pub fn county() -> CountyId {
    CountyId::new(COUNTY).unwrap()
}

pub fn school_a() -> SchoolId {
    SchoolId::new(SCHOOL_A).unwrap()
}

pub fn school_b() -> SchoolId {
    SchoolId::new(SCHOOL_B).unwrap()
}

pub fn book(n: u32) -> Book {
    Book {
        reg_no: format!("TS{n:06}"),
        isbn: None,
        title: format!("书{n}"),
        author: Some("吴承恩".into()),
        publisher: None,
        pub_year: Some(2001),
        clc_class: None,
        price_fen: Some(1000),
        copies: 1,
        shelf: Some("A-1".into()),
        received_on: None,
        status: BookStatus::OnShelf,
        status_reason: None,
        status_date: None,
    }
}

pub fn microscope(n: u32) -> EquipmentItem {
    EquipmentItem {
        asset_no: format!("YQ-{n:05}"),
        name: "学生显微镜".into(),
        category_code: None,
        brand: None,
        model: Some("XSP-02".into()),
        spec: None,
        unit: Some("台".into()),
        quantity: 12,
        unit_price_fen: 38_000,
        funding_source: None,
        keeper: None,
        room: Some("科学室".into()),
        acquired_on: Some("2024-09-01".into()),
        status: EquipmentStatus::InUse,
        status_reason: None,
        status_date: None,
    }
}

/// The bytes of the attachment the fixture's record names (the upload of
/// which `api_request` fuzzes).
pub fn photo() -> Vec<u8> {
    (0..4096u32).map(|i| (i * 7 % 251) as u8).collect()
}

/// A signed-in caller.
pub struct Login {
    pub access_token: String,
    pub refresh_token: String,
    pub device: String,
}

/// A server in-process: the real state and router over sled in a temporary
/// data directory.
pub struct Server {
    pub rt: tokio::runtime::Runtime,
    pub state: AppState,
    pub router: axum::Router,
    /// Teacher of school A, on device `phone-a`.
    pub teacher_a: Login,
    /// Teacher of school B, on device `phone-b`.
    pub teacher_b: Login,
    /// The county education bureau, on device `county-pc`.
    pub county_user: Login,
    /// The administrator, on device `admin-pc`.
    pub admin: Login,
    /// The attachment record's blob name (hex).
    pub photo_hash: String,
}

fn ctx(now: i64) -> EditContext {
    EditContext {
        user: "fuzz-seed".parse().unwrap(),
        device: "fuzz-seed".parse().unwrap(),
        now_ms: now,
    }
}

/// The server, built once per process.
pub fn server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(build_server)
}

fn build_server() -> Server {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = temp_dir("server");
    let mut cfg = ServerConfig::new(dir.join("data"));
    // Tokens must outlive a long fuzzing run.
    cfg.auth.access_ttl_s = 10 * 365 * 24 * 3600;
    cfg.cache_bytes = 16 << 20;
    cfg.sled_cache_bytes = 8 << 20;
    cfg.max_concurrent_syncs = 2;
    let state = open(cfg).expect("the server opens");
    let accounts = &state.accounts;
    let now = tpsync_server::now_ms();
    let code = accounts.setup_code().unwrap().expect("a setup code");
    accounts.setup(&code, "admin", PASSWORD, now).unwrap();
    accounts.set_county(county(), "模糊县").unwrap();
    let imported = accounts
        .import_schools_csv(SCHOOLS_CSV.as_bytes(), false)
        .unwrap();
    assert!(imported.errors.is_empty(), "{:?}", imported.errors);
    for (user, role, unit) in [
        ("teacher-a", Role::Teacher, SCHOOL_A),
        ("teacher-b", Role::Teacher, SCHOOL_B),
        ("county", Role::County, COUNTY),
    ] {
        accounts
            .create_user(
                NewUser {
                    username: user.into(),
                    password: PASSWORD.into(),
                    role,
                    unit: Some(unit.into()),
                },
                now,
            )
            .unwrap();
    }
    // Documents: a few books and an instrument in school A, and an
    // attachment record naming `photo()`.
    let c = ctx(now as i64);
    let a = school_a();
    let doc = |k| DocId::school(&a, k).unwrap();
    let mut first_book = None;
    state
        .hub
        .edit(&doc(DocKind::Books), |d| {
            for i in 0..3 {
                let id = RecordId::from_u128(0xB00C_0000 + i as u128);
                first_book.get_or_insert(id);
                d.insert(&c, id, &book(i))?;
            }
            Ok(())
        })
        .unwrap();
    state
        .hub
        .edit(&doc(DocKind::Equipment), |d| {
            d.insert(&c, RecordId::from_u128(0xE0_0001), &microscope(1))?;
            Ok(())
        })
        .unwrap();
    let photo = photo();
    let photo_hash = tpsync_blobs::BlobHash::of(&photo).to_string();
    state
        .hub
        .edit(&doc(DocKind::Attachments), |d| {
            d.insert(
                &c,
                RecordId::from_u128(0xA7_0001),
                &Attachment {
                    target_kind: AttachedTo::Book,
                    target: first_book.unwrap(),
                    sha256: photo_hash.clone(),
                    size: photo.len() as u64,
                    media_type: "image/jpeg".into(),
                    file_name: Some("封面.jpg".into()),
                    caption: None,
                    preview_sha256: None,
                    preview_size: None,
                    taken_on: None,
                    status: AttachmentStatus::Active,
                    status_reason: None,
                },
            )?;
            Ok(())
        })
        .unwrap();
    // The read model, as `run` keeps it.
    rt.spawn(tpsync_server::reports::keep_current(state.clone()));
    let router = app(state.clone());
    let mut server = Server {
        rt,
        state,
        router,
        teacher_a: empty_login(),
        teacher_b: empty_login(),
        county_user: empty_login(),
        admin: empty_login(),
        photo_hash,
    };
    server.teacher_a = server.login("teacher-a", "phone-a");
    server.teacher_b = server.login("teacher-b", "phone-b");
    server.county_user = server.login("county", "county-pc");
    server.admin = server.login("admin", "admin-pc");
    // Wait for the reports' first build.
    let mut ready = false;
    for _ in 0..600 {
        if server.state.reports.read(|_| ()).is_ok() {
            ready = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(ready, "the reports were not built within 6 s");
    server
}

fn empty_login() -> Login {
    Login {
        access_token: String::new(),
        refresh_token: String::new(),
        device: String::new(),
    }
}

/// `TPSYNC_FUZZ_VERBOSE=1`: the HTTP targets print each request's answer
/// status (to see what a corpus reaches: `-runs=0` over it).
pub fn verbose() -> bool {
    static V: OnceLock<bool> = OnceLock::new();
    *V.get_or_init(|| std::env::var("TPSYNC_FUZZ_VERBOSE").is_ok_and(|v| v != "0"))
}

/// A response, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn content_type(&self) -> &str {
        self.headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl Server {
    /// Sends `req` through the router (with a client address, as `serve`
    /// gives every request) and reads the whole answer. A body that fails
    /// half way is a broken contract.
    pub fn call(&self, mut req: Request<Body>) -> Answer {
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(SocketAddr::from((
                [127, 0, 0, 1],
                40_000,
            ))));
        self.rt.block_on(async {
            let resp = self
                .router
                .clone()
                .oneshot(req)
                .await
                .unwrap_or_else(|e| match e {});
            let (parts, body) = resp.into_parts();
            let body = axum::body::to_bytes(body, 256 << 20)
                .await
                .unwrap_or_else(|e| {
                    violated(format!(
                        "the {} answer's body failed half way: {e}",
                        parts.status
                    ))
                });
            Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            }
        })
    }

    /// Signs in through `POST /v1/auth/login`.
    pub fn login(&self, username: &str, device: &str) -> Login {
        let body = serde_json::json!({
            "username": username,
            "password": PASSWORD,
            "device_id": device,
        });
        let req = Request::builder()
            .method("POST")
            .uri("/v1/auth/login")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let a = self.call(req);
        assert_eq!(
            a.status,
            StatusCode::OK,
            "sign-in of {username}: {}",
            String::from_utf8_lossy(&a.body)
        );
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        Login {
            access_token: v["access_token"].as_str().unwrap().to_owned(),
            refresh_token: v["refresh_token"].as_str().unwrap().to_owned(),
            device: device.to_owned(),
        }
    }

    /// Every document a fuzzed request might touch.
    pub fn watched_docs(&self) -> Vec<DocId> {
        let mut docs = DocId::all_for_school(&school_a());
        docs.extend(DocId::all_for_school(&school_b()));
        docs.push(DocId::template(&county()));
        docs
    }

    /// What is stored of `docs`: heads (as the hub knows them) and every
    /// stored chunk's key and length, and the sync states kept for the
    /// fixture's devices.
    pub fn snapshot(&self, docs: &[DocId]) -> Snapshot {
        let hub = &self.state.hub;
        let mut heads = BTreeMap::new();
        let mut stored = Vec::new();
        for d in docs {
            let mut h = hub
                .heads(d)
                .unwrap_or_else(|e| violated(format!("the heads of {d} do not load: {e}")));
            h.sort();
            heads.insert(d.clone(), h);
            for (k, v) in hub
                .storage()
                .load_range(&KeyPrefix::Doc(d.clone()))
                .unwrap()
            {
                stored.push((k.to_path(), v.len()));
            }
        }
        for device in ["phone-a", "phone-b", "county-pc"] {
            let peer: PeerId = device.parse().unwrap();
            for (k, v) in hub.storage().load_range(&KeyPrefix::Peer(peer)).unwrap() {
                stored.push((k.to_path(), v.len()));
            }
        }
        Snapshot { heads, stored }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub heads: BTreeMap<DocId, Vec<ChangeHash>>,
    pub stored: Vec<(String, usize)>,
}

/// The contract of every API answer: never a 5xx but 503/504 (overload or a
/// timeout, which the server reports as such); every 4xx and 5xx a problem
/// document (`application/problem+json`) with a non-empty `code` and its
/// status.
pub fn check_api_answer(what: &str, a: &Answer) {
    let s = a.status;
    if s.is_server_error()
        && s != StatusCode::SERVICE_UNAVAILABLE
        && s != StatusCode::GATEWAY_TIMEOUT
    {
        violated(format!(
            "{what}: answered {s}: {}",
            String::from_utf8_lossy(&a.body)
        ));
    }
    if s.is_client_error() || s.is_server_error() {
        if !a.content_type().starts_with("application/problem+json") {
            violated(format!(
                "{what}: a {s} answer is {:?}, not a problem document",
                a.content_type()
            ));
        }
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_else(|e| {
            violated(format!(
                "{what}: the {s} problem document is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&a.body)
            ))
        });
        if v["code"].as_str().is_none_or(|c| c.is_empty()) {
            violated(format!("{what}: the {s} problem document has no code: {v}"));
        }
        if v["status"].as_u64() != Some(u64::from(s.as_u16())) {
            violated(format!(
                "{what}: the problem document says status {} but the answer is {s}",
                v["status"]
            ));
        }
    }
}

/// Percent-encodes every byte that is not unreserved, so any bytes make a
/// valid path segment.
pub fn path_segment(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Keeps the characters a query may hold as they are (so `&`, `=` and `%`
/// keep their meaning) and percent-encodes the rest.
pub fn query_string(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Writes `bytes` as `dir/<name>` (for the seed writer).
pub fn write_seed(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}
