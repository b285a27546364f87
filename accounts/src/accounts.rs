//! `Accounts`: the operations the server calls.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use sha2::{Digest, Sha256};
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;
use sync_core::{CountyId, DeviceId, SchoolId, UserId};

use crate::error::AccountsError;
use crate::import;
use crate::keys::{self, Claims, KeyRecord, KeyRing};
use crate::model::{
    AuthConfig, Caller, County, Device, KeyInfo, NewUser, Role, School, SchoolImport, Scope,
    Tokens, Township, TownshipId, User,
};
use crate::policy::{CallerPolicy, OrgView};
use crate::ratelimit::{ip_key, FixedWindow};
use crate::store::{
    self, DeviceRecord, PreviousRefresh, Trees, UserRecord, META_COUNTY, META_SETUP_CODE,
};

type Result<T, E = AccountsError> = std::result::Result<T, E>;

/// Minimum password length, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Maximum password length, in characters (bounds the hashing work).
pub const MAX_PASSWORD_CHARS: usize = 256;
/// Maximum username length, in characters.
pub const MAX_USERNAME_CHARS: usize = 64;
/// How stale a device's stored last-seen time may get before `verify`
/// writes it again.
const LAST_SEEN_GRANULARITY_MS: u64 = 60_000;
/// Bytes of randomness in a refresh token (hex: twice as many characters).
const REFRESH_BYTES: usize = 32;
/// How many replaced refresh tokens of a device's present sign-in are
/// remembered (as hashes, besides the one in its grace), so that presenting
/// one is recognised as reuse.
const RETIRED_KEEP: usize = 32;

/// Changes to the refresh token indexes (`accounts.refresh`,
/// `accounts.retired`) that go with writing a device record.
#[derive(Default)]
struct TokenIndex {
    refresh_remove: Vec<String>,
    refresh_insert: Vec<String>,
    retired_insert: Vec<String>,
    retired_remove: Vec<String>,
}

/// Retires the device's current refresh token (if any): it stops working
/// and joins the retired list.
fn retire_current(d: &mut DeviceRecord, ix: &mut TokenIndex) {
    d.refresh_expires_ms = None;
    if let Some(h) = d.refresh_hash.take() {
        ix.refresh_remove.push(h.clone());
        ix.retired_insert.push(h.clone());
        d.retired.push(h);
    }
}

/// Ends the grace of the device's previous refresh token (if any). Its hash
/// is in the retired index already.
fn retire_previous(d: &mut DeviceRecord) {
    if let Some(p) = d.previous.take() {
        d.retired.push(p.hash);
    }
}

/// Forgets the oldest retired tokens beyond `RETIRED_KEEP`.
fn trim_retired(d: &mut DeviceRecord, ix: &mut TokenIndex) {
    let excess = d.retired.len().saturating_sub(RETIRED_KEEP);
    ix.retired_remove.extend(d.retired.drain(..excess));
}

/// Forgets every token of the device's sign-in: the current one, the
/// previous one and the retired ones (a sign-in or sign-out starts afresh).
fn forget_tokens(d: &mut DeviceRecord, ix: &mut TokenIndex) {
    d.refresh_expires_ms = None;
    if let Some(h) = d.refresh_hash.take() {
        ix.refresh_remove.push(h);
    }
    if let Some(p) = d.previous.take() {
        ix.retired_remove.push(p.hash);
    }
    ix.retired_remove.append(&mut d.retired);
}

/// What a presented refresh token is to its device.
enum Presented {
    /// The current token: a normal refresh.
    Current,
    /// The token the current one replaced, within its grace while the
    /// current one is unused: the reply to the last refresh was lost.
    InGrace,
    /// A replaced token past its grace, or after its successor was used.
    Retired,
    /// Not a token of this device's present sign-in.
    Unknown,
}

/// Accounts, organisation, tokens and access rules, over trees of the
/// server's sled database. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Accounts {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    t: Trees,
    cfg: AuthConfig,
    /// Serialises read-modify-write operations (they are rare: sign-ins,
    /// refreshes, admin changes). Multi-tree writes also run in a sled
    /// transaction so a crash leaves all or nothing.
    write: Mutex<()>,
    org: RwLock<Arc<OrgView>>,
    keys: RwLock<KeyRing>,
    limits: Mutex<Limits>,
    /// Last seen time last written per device.
    seen: Mutex<HashMap<DeviceId, u64>>,
    /// A hash to verify against for unknown usernames, so they take as long
    /// as wrong passwords.
    dummy_hash: OnceLock<String>,
}

struct Limits {
    user: FixedWindow,
    ip: FixedWindow,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves nothing half-done in memory
    // worth refusing service over.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn abort(e: AccountsError) -> ConflictableTransactionError<AccountsError> {
    ConflictableTransactionError::Abort(e)
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn argon2() -> Argon2<'static> {
    // Argon2id, version 0x13, m = 19 MiB, t = 2, p = 1 (OWASP's minimum).
    Argon2::default()
}

fn hash_password(password: &str) -> Result<String> {
    argon2()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AccountsError::Internal(format!("hashing the password failed: {e}")))
}

fn password_matches(password: &str, phc: &str) -> bool {
    argon2().verify_password(password.as_bytes(), phc).is_ok()
}

fn check_new_password(password: &str) -> Result<()> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(AccountsError::BadRequest(format!(
            "the password is too short: use at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(AccountsError::BadRequest(format!(
            "the password is too long: use at most {MAX_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

/// Letters and digits of any script (Chinese names are fine), and `. _ - @`.
fn check_username(username: &str) -> Result<()> {
    let n = username.chars().count();
    if n == 0 || n > MAX_USERNAME_CHARS {
        return Err(AccountsError::BadRequest(format!(
            "username {username:?}: use 1 to {MAX_USERNAME_CHARS} characters"
        )));
    }
    if let Some(c) = username
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@')))
    {
        return Err(AccountsError::BadRequest(format!(
            "username {username:?} contains {c:?}; use letters, digits, '.', '_', '-' or '@' (no spaces)"
        )));
    }
    Ok(())
}

/// Usernames are unique regardless of case.
fn username_key(username: &str) -> String {
    username.to_lowercase()
}

fn check_name(what: &str, name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(AccountsError::BadRequest(format!("the {what} is empty")));
    }
    if name.chars().count() > 200 {
        return Err(AccountsError::BadRequest(format!(
            "the {what} is longer than 200 characters"
        )));
    }
    Ok(name.to_owned())
}

/// Setup codes: 12 characters of Crockford's base32 (60 bits), shown as
/// `XXXX-XXXX-XXXX`; compared ignoring case, spaces and dashes.
const SETUP_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

fn new_setup_code() -> Result<String> {
    let mut raw = [0u8; 12];
    getrandom::fill(&mut raw).map_err(|e| {
        AccountsError::Internal(format!("the system's random number source failed: {e}"))
    })?;
    let chars: Vec<char> = raw
        .iter()
        .map(|b| SETUP_ALPHABET[(b & 31) as usize] as char)
        .collect();
    Ok(chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-"))
}

fn normalize_setup_code(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

impl Accounts {
    /// Opens (creating on first use) the `accounts.*` trees of `db`. Makes a
    /// first signing key if there is none.
    pub fn open(db: &sled::Db, cfg: AuthConfig) -> Result<Self> {
        // Pick the pure-Rust JWT backend for the process, unless the host
        // picked one already (then that one is used).
        let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
            &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER,
        );
        if cfg.access_ttl_s == 0 || cfg.refresh_ttl_s == 0 {
            return Err(AccountsError::BadRequest(
                "token lifetimes must be at least 1 second".into(),
            ));
        }
        if cfg.user_max_failures == 0 || cfg.ip_max_attempts == 0 {
            return Err(AccountsError::BadRequest(
                "sign-in limits must allow at least 1 attempt".into(),
            ));
        }
        let t = Trees::open(db)?;
        let mut records: Vec<KeyRecord> = store::all(&t.keys, "signing key")?;
        let ring = match KeyRing::from_records(&records)? {
            Some(ring) => ring,
            None => {
                // Time only dates the key; the wall clock is fine here.
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0);
                let key = keys::new_key(now_ms)?;
                t.keys.insert(key.kid.as_bytes(), store::enc(&key)?)?;
                db.flush()?;
                records.push(key);
                KeyRing::from_records(&records)?.ok_or_else(|| {
                    AccountsError::Internal("no signing key after creating one".into())
                })?
            }
        };
        let limits = Limits {
            user: FixedWindow::new(cfg.user_max_failures, cfg.user_window_s),
            ip: FixedWindow::new(cfg.ip_max_attempts, cfg.ip_window_s),
        };
        let accounts = Accounts {
            inner: Arc::new(Inner {
                db: db.clone(),
                t,
                cfg,
                write: Mutex::new(()),
                org: RwLock::new(Arc::new(OrgView::default())),
                keys: RwLock::new(ring),
                limits: Mutex::new(limits),
                seen: Mutex::new(HashMap::new()),
                dummy_hash: OnceLock::new(),
            }),
        };
        accounts.reload_org()?;
        Ok(accounts)
    }

    /// The configuration in force.
    pub fn config(&self) -> &AuthConfig {
        &self.inner.cfg
    }

    fn flush(&self) -> Result<()> {
        self.inner.db.flush()?;
        Ok(())
    }

    fn org(&self) -> Arc<OrgView> {
        self.inner
            .org
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn reload_org(&self) -> Result<()> {
        let t = &self.inner.t;
        let county: Option<County> = store::get(&t.meta, META_COUNTY, "county")?;
        let schools: Vec<School> = store::all(&t.schools, "school")?;
        let townships: Vec<Township> = store::all(&t.townships, "township")?;
        let view = OrgView {
            county,
            schools: schools.into_iter().map(|s| (s.code, s.township)).collect(),
            townships: townships.into_iter().map(|t| t.code).collect(),
        };
        *self.inner.org.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(view);
        Ok(())
    }

    // ---- first administrator -------------------------------------------

    fn admin_exists(&self) -> Result<bool> {
        for u in store::all::<UserRecord>(&self.inner.t.users, "user")? {
            if u.role == Role::Admin {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// While no administrator exists: the one-time setup code (made on the
    /// first call and kept until used, so the server can print it at every
    /// start). `None` once an administrator exists.
    pub fn setup_code(&self) -> Result<Option<String>> {
        let _w = lock(&self.inner.write);
        if self.admin_exists()? {
            return Ok(None);
        }
        let meta = &self.inner.t.meta;
        if let Some(code) = meta.get(META_SETUP_CODE)? {
            return String::from_utf8(code.to_vec())
                .map(Some)
                .map_err(|e| crate::error::corrupt("setup code", e));
        }
        let code = new_setup_code()?;
        meta.insert(META_SETUP_CODE, code.as_bytes())?;
        self.flush()?;
        Ok(Some(code))
    }

    /// Creates the first administrator with the setup code; the code then
    /// stops working.
    pub fn setup(&self, code: &str, username: &str, password: &str, now_ms: u64) -> Result<User> {
        if self.admin_exists()? {
            return Err(AccountsError::SetupDone);
        }
        let new = NewUser {
            username: username.to_owned(),
            password: password.to_owned(),
            role: Role::Admin,
            unit: None,
        };
        let (record, key) = self.prepare_user(new, now_ms)?;
        let _w = lock(&self.inner.write);
        if self.admin_exists()? {
            return Err(AccountsError::SetupDone);
        }
        let t = &self.inner.t;
        let Some(stored) = t.meta.get(META_SETUP_CODE)? else {
            return Err(AccountsError::Forbidden(
                "no setup code has been issued yet; start the server, which prints one".into(),
            ));
        };
        let stored = String::from_utf8_lossy(&stored);
        // Compare digests, so the comparison's time says nothing about the code.
        if Sha256::digest(normalize_setup_code(&stored).as_bytes())
            != Sha256::digest(normalize_setup_code(code).as_bytes())
        {
            return Err(AccountsError::Forbidden(
                "wrong setup code; use the code the server printed when it started".into(),
            ));
        }
        self.insert_user(&record, &key, true)?;
        self.flush()?;
        Ok(record.public())
    }

    // ---- organisation --------------------------------------------------

    /// Sets the county this server serves. Renaming is fine; changing the
    /// code is refused once schools or county users exist.
    pub fn set_county(&self, code: CountyId, name: &str) -> Result<County> {
        let name = check_name("county name", name)?;
        let _w = lock(&self.inner.write);
        let t = &self.inner.t;
        if let Some(old) = store::get::<County>(&t.meta, META_COUNTY, "county")? {
            if old.code != code {
                if !t.schools.is_empty() {
                    return Err(AccountsError::Conflict(format!(
                        "this server serves county {} ({}) and has {} schools registered; its code cannot change. Set up a new server for county {code}",
                        old.code,
                        old.name,
                        t.schools.len()
                    )));
                }
                let county_users = store::all::<UserRecord>(&t.users, "user")?
                    .into_iter()
                    .filter(|u| u.role == Role::County)
                    .count();
                if county_users > 0 {
                    return Err(AccountsError::Conflict(format!(
                        "county {} has {county_users} county user(s); its code cannot change",
                        old.code
                    )));
                }
            }
        }
        let county = County { code, name };
        t.meta.insert(META_COUNTY, store::enc(&county)?)?;
        self.flush()?;
        self.reload_org()?;
        Ok(county)
    }

    pub fn county(&self) -> Result<Option<County>> {
        store::get(&self.inner.t.meta, META_COUNTY, "county")
    }

    /// Imports townships and schools from the county's list (CSV; UTF-8,
    /// with or without BOM, or GBK/GB18030). Every bad row is reported; if
    /// there is any, nothing is written. Existing schools in the file are
    /// updated; schools not in the file are left as they are.
    pub fn import_schools_csv(&self, bytes: &[u8], dry_run: bool) -> Result<SchoolImport> {
        if self.county()?.is_none() {
            return Err(AccountsError::Conflict(
                "set the county first (tpsync admin create-county --code C --name N), then import its schools".into(),
            ));
        }
        let text = import::decode_text(bytes).map_err(AccountsError::BadRequest)?;
        let parsed = import::parse_schools(&text);
        if !parsed.errors.is_empty() {
            return Ok(SchoolImport {
                errors: parsed.errors,
                ..SchoolImport::default()
            });
        }
        let _w = lock(&self.inner.write);
        let t = &self.inner.t;
        let mut report = SchoolImport::default();
        let mut township_writes = Vec::new();
        for (code, name) in &parsed.townships {
            match store::get::<Township>(&t.townships, code.as_str(), "township")? {
                Some(old) if old.name == *name => {}
                Some(_) => {
                    report.townships_updated += 1;
                    township_writes.push((code.clone(), name.clone()));
                }
                None => {
                    report.townships_created += 1;
                    township_writes.push((code.clone(), name.clone()));
                }
            }
        }
        for s in &parsed.schools {
            if t.schools.contains_key(s.code.as_str())? {
                report.schools_updated += 1;
            } else {
                report.schools_created += 1;
            }
        }
        if dry_run {
            return Ok(report);
        }
        let mut town_values = Vec::new();
        for (code, name) in township_writes {
            let tw = Township { code, name };
            town_values.push((tw.code.to_string(), store::enc(&tw)?));
        }
        let mut school_values = Vec::new();
        for s in &parsed.schools {
            school_values.push((s.code.to_string(), store::enc(s)?));
        }
        (&t.townships, &t.schools).transaction(|(tt, st)| {
            for (k, v) in &town_values {
                tt.insert(k.as_bytes(), v.as_slice())?;
            }
            for (k, v) in &school_values {
                st.insert(k.as_bytes(), v.as_slice())?;
            }
            Ok::<_, ConflictableTransactionError<AccountsError>>(())
        })?;
        self.flush()?;
        self.reload_org()?;
        Ok(report)
    }

    pub fn townships(&self) -> Result<Vec<Township>> {
        store::all(&self.inner.t.townships, "township")
    }

    pub fn schools(&self) -> Result<Vec<School>> {
        store::all(&self.inner.t.schools, "school")
    }

    pub fn school(&self, id: &SchoolId) -> Result<Option<School>> {
        store::get(&self.inner.t.schools, id.as_str(), "school")
    }

    // ---- users and devices ---------------------------------------------

    /// Checks a new user against the rules and hashes the password (slow:
    /// done before taking the write lock). Returns the record and its
    /// username key.
    fn prepare_user(&self, new: NewUser, now_ms: u64) -> Result<(UserRecord, String)> {
        check_username(&new.username)?;
        check_new_password(&new.password)?;
        let unit = new
            .unit
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned);
        let org = self.org();
        match (new.role, &unit) {
            (Role::Admin, None) => {}
            (Role::Admin, Some(u)) => {
                return Err(AccountsError::BadRequest(format!(
                    "an administrator belongs to no unit; leave the unit empty (got {u:?})"
                )))
            }
            (role, None) => {
                return Err(AccountsError::BadRequest(format!(
                    "a {role} user needs a unit: the code of their {}",
                    match role {
                        Role::Teacher => "school",
                        Role::Township => "township",
                        _ => "county",
                    }
                )))
            }
            (Role::Teacher, Some(u)) => {
                let registered = SchoolId::new(u.clone())
                    .map(|s| org.schools.contains_key(&s))
                    .unwrap_or(false);
                if !registered {
                    return Err(AccountsError::BadRequest(format!(
                        "a teacher's unit must be a registered school, and {u:?} is not one; import the school list first or check the code (tpsync admin list-schools)"
                    )));
                }
            }
            (Role::Township, Some(u)) => {
                let registered = TownshipId::new(u.clone())
                    .map(|t| org.townships.contains(&t))
                    .unwrap_or(false);
                if !registered {
                    return Err(AccountsError::BadRequest(format!(
                        "a township user's unit must be a township of the school list, and {u:?} is not one; check the township code"
                    )));
                }
            }
            (Role::County, Some(u)) => match &org.county {
                Some(c) if c.code.as_str() == u => {}
                Some(c) => {
                    return Err(AccountsError::BadRequest(format!(
                        "a county user's unit must be this server's county {}, not {u:?}",
                        c.code
                    )))
                }
                None => return Err(AccountsError::BadRequest(
                    "set the county first (tpsync admin create-county), then create county users"
                        .into(),
                )),
            },
        }
        let id = UserId::new(format!("u-{}", keys::random_hex(8)?))
            .map_err(|e| AccountsError::Internal(e.to_string()))?;
        let record = UserRecord {
            id,
            username: new.username.clone(),
            role: new.role,
            unit,
            created_ms: now_ms,
            disabled: false,
            password_hash: hash_password(&new.password)?,
        };
        Ok((record, username_key(&new.username)))
    }

    /// Writes a prepared user; the caller holds the write lock.
    fn insert_user(&self, record: &UserRecord, key: &str, use_setup_code: bool) -> Result<()> {
        let t = &self.inner.t;
        let value = store::enc(record)?;
        (&t.users, &t.usernames, &t.meta).transaction(|(users, names, meta)| {
            if names.get(key.as_bytes())?.is_some() {
                return Err(abort(AccountsError::Conflict(format!(
                    "user '{}' exists already; choose another username",
                    record.username
                ))));
            }
            names.insert(key.as_bytes(), record.id.as_str().as_bytes())?;
            users.insert(record.id.as_str().as_bytes(), value.as_slice())?;
            if use_setup_code {
                meta.remove(META_SETUP_CODE)?;
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Creates a user. The unit must exist and fit the role: a teacher's is a
    /// registered school, a township user's a township, a county user's this
    /// county; an administrator has none.
    pub fn create_user(&self, new: NewUser, now_ms: u64) -> Result<User> {
        let (record, key) = self.prepare_user(new, now_ms)?;
        let _w = lock(&self.inner.write);
        self.insert_user(&record, &key, false)?;
        self.flush()?;
        Ok(record.public())
    }

    /// Every user, by username.
    pub fn users(&self) -> Result<Vec<User>> {
        let mut users: Vec<User> = store::all::<UserRecord>(&self.inner.t.users, "user")?
            .iter()
            .map(UserRecord::public)
            .collect();
        users.sort_by_cached_key(|u| username_key(&u.username));
        Ok(users)
    }

    pub fn user(&self, id: &UserId) -> Result<Option<User>> {
        Ok(self.user_record(id)?.as_ref().map(UserRecord::public))
    }

    fn user_record(&self, id: &UserId) -> Result<Option<UserRecord>> {
        store::get(&self.inner.t.users, id.as_str(), "user")
    }

    /// Disables (or enables again) a user: a disabled user cannot sign in,
    /// refresh, or use access tokens already issued.
    pub fn set_user_disabled(&self, id: &UserId, disabled: bool) -> Result<User> {
        let _w = lock(&self.inner.write);
        let t = &self.inner.t;
        let mut u = self
            .user_record(id)?
            .ok_or_else(|| AccountsError::NotFound(format!("there is no user with id {id}")))?;
        u.disabled = disabled;
        t.users.insert(id.as_str(), store::enc(&u)?)?;
        self.flush()?;
        Ok(u.public())
    }

    /// Every device, by id.
    pub fn devices(&self) -> Result<Vec<Device>> {
        let t = &self.inner.t;
        store::all::<DeviceRecord>(&t.devices, "device")?
            .into_iter()
            .map(|d| Ok(d.public(store::last_seen(&t.last_seen, &d.id)?)))
            .collect()
    }

    /// Revokes a device (a lost phone): its refresh token stops working and
    /// its access tokens are refused at once. Revoking twice is harmless.
    pub fn revoke_device(&self, id: &DeviceId, now_ms: u64) -> Result<Device> {
        let _w = lock(&self.inner.write);
        let t = &self.inner.t;
        let mut d: DeviceRecord =
            store::get(&t.devices, id.as_str(), "device")?.ok_or_else(|| {
                AccountsError::NotFound(format!(
                    "there is no device {id}; list them with tpsync admin list-devices"
                ))
            })?;
        if d.revoked_ms.is_none() {
            d.revoked_ms = Some(now_ms);
            t.devices.insert(id.as_str(), store::enc(&d)?)?;
            self.flush()?;
        }
        Ok(d.public(store::last_seen(&t.last_seen, id)?))
    }

    // ---- tokens --------------------------------------------------------

    fn issue(
        &self,
        user: &UserRecord,
        device: &DeviceRecord,
        refresh_token: String,
        now_ms: u64,
    ) -> Result<Tokens> {
        let ttl = self.inner.cfg.access_ttl_s;
        let iat = now_ms / 1000;
        let claims = Claims {
            sub: user.id.to_string(),
            username: user.username.clone(),
            role: user.role,
            unit: user.unit.clone(),
            device: device.id.to_string(),
            sid: device.session,
            iat,
            exp: iat + ttl,
            jti: keys::random_hex(16)?,
        };
        let access_token = self
            .inner
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .sign(&claims)?;
        Ok(Tokens {
            access_token,
            token_type: "Bearer".into(),
            expires_in: ttl,
            refresh_token,
            device_id: device.id.clone(),
            user: user.public(),
        })
    }

    /// Gives the device a new current refresh token (its hash), valid for
    /// `refresh_ttl_s`, and returns the token. The caller has retired or
    /// forgotten the old one, and holds the write lock.
    fn new_refresh(
        &self,
        d: &mut DeviceRecord,
        now_ms: u64,
        ix: &mut TokenIndex,
    ) -> Result<String> {
        let token = keys::random_hex(REFRESH_BYTES)?;
        let hash = sha256_hex(&token);
        if let Some(old) = d.refresh_hash.replace(hash.clone()) {
            ix.refresh_remove.push(old);
        }
        ix.refresh_insert.push(hash);
        d.refresh_expires_ms =
            Some(now_ms.saturating_add(self.inner.cfg.refresh_ttl_s.saturating_mul(1000)));
        d.last_seen_ms = d.last_seen_ms.max(now_ms);
        Ok(token)
    }

    /// Writes a device record and the index changes that go with it, all or
    /// nothing. The caller holds the write lock.
    fn write_device(&self, d: &DeviceRecord, ix: &TokenIndex) -> Result<()> {
        let t = &self.inner.t;
        let value = store::enc(d)?;
        let id = d.id.as_str().as_bytes();
        (&t.devices, &t.refresh, &t.retired).transaction(|(devices, refresh, retired)| {
            for h in &ix.refresh_remove {
                refresh.remove(h.as_bytes())?;
            }
            for h in &ix.refresh_insert {
                refresh.insert(h.as_bytes(), id)?;
            }
            // Inserts first: a hash retired and trimmed at once ends up gone.
            for h in &ix.retired_insert {
                retired.insert(h.as_bytes(), id)?;
            }
            for h in &ix.retired_remove {
                retired.remove(h.as_bytes())?;
            }
            devices.insert(id, value.as_slice())?;
            Ok::<_, ConflictableTransactionError<AccountsError>>(())
        })?;
        Ok(())
    }

    /// Signs a user in on a device. Rate limited per username and per client
    /// address; a wrong password and an unknown user give the same error.
    /// The device is bound to the user on first sign-in; signing in again
    /// replaces its refresh token.
    pub fn login(
        &self,
        username: &str,
        password: &str,
        device_id: &DeviceId,
        device_name: Option<&str>,
        client: Option<IpAddr>,
        now_ms: u64,
    ) -> Result<Tokens> {
        let ukey = format!("u:{}", username_key(username.trim()));
        let ipkey = client.map(ip_key);
        {
            // Reserve the attempt before the slow password check so parallel
            // guesses cannot overrun the limits. The username's count is
            // undone by a success.
            let mut l = lock(&self.inner.limits);
            let user_wait = l.user.check(&ukey, now_ms).err();
            let ip_wait = ipkey.as_ref().and_then(|k| l.ip.check(k, now_ms).err());
            if let Some(retry_after_s) = user_wait.max(ip_wait) {
                return Err(AccountsError::RateLimited { retry_after_s });
            }
            l.user.hit(&ukey, now_ms);
            if let Some(k) = &ipkey {
                l.ip.hit(k, now_ms);
            }
        }
        let t = &self.inner.t;
        let user = match t.usernames.get(username_key(username.trim()).as_bytes())? {
            Some(id) => store::get::<UserRecord>(&t.users, &id, "user")?,
            None => None,
        };
        let too_long = password.chars().count() > MAX_PASSWORD_CHARS;
        let ok = match &user {
            Some(u) if !too_long => password_matches(password, &u.password_hash),
            _ => {
                let dummy = self
                    .inner
                    .dummy_hash
                    .get_or_init(|| hash_password("tpsync-no-such-user").unwrap_or_default());
                let _ = password_matches(password, dummy);
                false
            }
        };
        let (true, Some(user)) = (ok, user) else {
            return Err(AccountsError::InvalidCredentials);
        };
        lock(&self.inner.limits).user.reset(&ukey);
        if user.disabled {
            return Err(AccountsError::Forbidden(format!(
                "user '{}' is disabled; ask the county administrator",
                user.username
            )));
        }
        let name = device_name
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| n.chars().take(100).collect::<String>());
        let _w = lock(&self.inner.write);
        let mut device = match store::get::<DeviceRecord>(&t.devices, device_id.as_str(), "device")? {
            Some(d) if d.user != user.id => {
                return Err(AccountsError::Conflict(format!(
                    "device {device_id} is registered to another user; a device belongs to one user: sign in with that user's account, or use a device of your own"
                )))
            }
            Some(d) if d.revoked_ms.is_some() => {
                return Err(AccountsError::DeviceRevoked {
                    device: device_id.clone(),
                })
            }
            Some(mut d) => {
                if name.is_some() {
                    d.name = name;
                }
                d
            }
            None => DeviceRecord {
                id: device_id.clone(),
                user: user.id.clone(),
                name,
                first_seen_ms: now_ms,
                last_seen_ms: now_ms,
                revoked_ms: None,
                refresh_hash: None,
                refresh_expires_ms: None,
                session: 0,
                previous: None,
                retired: Vec::new(),
            },
        };
        // A password sign-in starts afresh: the device's earlier refresh
        // tokens (current, in grace or retired) are forgotten.
        let mut ix = TokenIndex::default();
        forget_tokens(&mut device, &mut ix);
        let refresh = self.new_refresh(&mut device, now_ms, &mut ix)?;
        self.write_device(&device, &ix)?;
        drop(_w);
        // The phone keeps this refresh token for weeks: it must survive a
        // crash of the server.
        self.flush()?;
        self.issue(&user, &device, refresh, now_ms)
    }

    /// New tokens for a refresh token, which is replaced.
    ///
    /// The replaced token stays usable for `refresh_grace_s` (never past its
    /// own expiry) as long as the new one has not been used: the reply may
    /// have been lost on the way to the phone. Presenting it then gives a
    /// fresh pair again, and the token from the lost reply stops working.
    /// Once the new token has been used, or the grace is over, the replaced
    /// token is retired: presenting it (or any retired token of the device's
    /// present sign-in) is refused with `TokenInvalid` and ends the device's
    /// session as [`Accounts::logout`] does, since it suggests the token was
    /// copied or stolen.
    pub fn refresh(&self, refresh_token: &str, now_ms: u64) -> Result<Tokens> {
        let unknown = || {
            AccountsError::TokenInvalid(
                "the refresh token is not valid: it was replaced by a newer one, ended by signing out, or never issued; sign in again".into(),
            )
        };
        let hash = sha256_hex(refresh_token.trim());
        let t = &self.inner.t;
        let _w = lock(&self.inner.write);
        let device_id = match t.refresh.get(hash.as_bytes())? {
            Some(id) => id,
            None => t.retired.get(hash.as_bytes())?.ok_or_else(unknown)?,
        };
        let mut device: DeviceRecord =
            store::get(&t.devices, &device_id, "device")?.ok_or_else(unknown)?;
        if device.revoked_ms.is_some() {
            return Err(AccountsError::DeviceRevoked { device: device.id });
        }
        let presented = if device.refresh_hash.as_deref() == Some(hash.as_str()) {
            Presented::Current
        } else if let Some(p) = device.previous.as_ref().filter(|p| p.hash == hash) {
            if now_ms < p.until_ms {
                Presented::InGrace
            } else {
                Presented::Retired
            }
        } else if device.retired.contains(&hash) {
            Presented::Retired
        } else {
            Presented::Unknown
        };
        let mut ix = TokenIndex::default();
        match presented {
            Presented::Unknown => return Err(unknown()),
            Presented::Retired => {
                // Two holders of one sign-in: end the session, like logout,
                // whoever the other holder is.
                if device.refresh_hash.is_some() || device.previous.is_some() {
                    retire_current(&mut device, &mut ix);
                    retire_previous(&mut device);
                    trim_retired(&mut device, &mut ix);
                    device.session += 1;
                    self.write_device(&device, &ix)?;
                    drop(_w);
                    self.flush()?;
                }
                return Err(AccountsError::TokenInvalid(
                    "this sign-in was refreshed elsewhere: the refresh token had already been exchanged for a newer one, so for safety this device was signed out; sign in again".into(),
                ));
            }
            Presented::Current => {
                if device.refresh_expires_ms.is_none_or(|exp| now_ms >= exp) {
                    return Err(AccountsError::TokenExpired(
                        "the refresh token has expired (the device was offline too long); sign in again"
                            .into(),
                    ));
                }
            }
            // Its grace ends no later than its own expiry.
            Presented::InGrace => {}
        }
        let user = self.user_record(&device.user)?.ok_or_else(unknown)?;
        if user.disabled {
            return Err(AccountsError::Forbidden(format!(
                "user '{}' is disabled; ask the county administrator",
                user.username
            )));
        }
        match presented {
            Presented::Current => {
                // The current token is used: the one before it is retired,
                // and this one gets the grace.
                retire_previous(&mut device);
                let until_ms = now_ms
                    .saturating_add(self.inner.cfg.refresh_grace_s.saturating_mul(1000))
                    .min(device.refresh_expires_ms.unwrap_or(now_ms));
                device.refresh_hash = None;
                device.previous = Some(PreviousRefresh {
                    hash: hash.clone(),
                    until_ms,
                });
                ix.refresh_remove.push(hash.clone());
                ix.retired_insert.push(hash);
            }
            // A retry after a lost reply: the lost reply's token is
            // superseded; the grace keeps its end.
            _ => retire_current(&mut device, &mut ix),
        }
        let refresh = self.new_refresh(&mut device, now_ms, &mut ix)?;
        trim_retired(&mut device, &mut ix);
        self.write_device(&device, &ix)?;
        drop(_w);
        self.flush()?;
        self.issue(&user, &device, refresh, now_ms)
    }

    /// Signs the caller's device out: its refresh token (and a replaced one
    /// still in its grace) stops working, and so do the access tokens issued
    /// to it so far.
    pub fn logout(&self, caller: &Caller, _now_ms: u64) -> Result<()> {
        let t = &self.inner.t;
        let _w = lock(&self.inner.write);
        let Some(mut d) = store::get::<DeviceRecord>(&t.devices, caller.device.as_str(), "device")?
        else {
            return Ok(());
        };
        if d.user != caller.user {
            return Err(AccountsError::Forbidden(format!(
                "device {} belongs to another user",
                caller.device
            )));
        }
        // Its refresh tokens, including one still in its grace, stop
        // working; the retired ones are forgotten with them.
        let mut ix = TokenIndex::default();
        forget_tokens(&mut d, &mut ix);
        d.session += 1;
        self.write_device(&d, &ix)?;
        drop(_w);
        self.flush()?;
        Ok(())
    }

    /// Checks an access token: signature (by its `kid`), expiry against
    /// `now_ms`, the device not revoked nor signed out, the user not
    /// disabled. Notes the device as seen (written at most once a minute,
    /// never flushed here).
    pub fn verify(&self, access_token: &str, now_ms: u64) -> Result<Caller> {
        let ttl_ms = self.inner.cfg.access_ttl_s.saturating_mul(1000);
        let claims = self
            .inner
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .verify(access_token.trim(), now_ms, ttl_ms)?;
        let invalid = |why: &str| {
            AccountsError::TokenInvalid(format!("the access token {why}; sign in again"))
        };
        let t = &self.inner.t;
        let device_id: DeviceId = claims
            .device
            .parse()
            .map_err(|_| invalid("names a bad device id"))?;
        let device: DeviceRecord = store::get(&t.devices, device_id.as_str(), "device")?
            .ok_or_else(|| invalid("names an unknown device"))?;
        if device.revoked_ms.is_some() {
            return Err(AccountsError::DeviceRevoked { device: device_id });
        }
        if device.user.as_str() != claims.sub {
            return Err(invalid("names a device of another user"));
        }
        if device.session != claims.sid {
            return Err(invalid("belongs to a session that was signed out"));
        }
        let user = self
            .user_record(&device.user)?
            .ok_or_else(|| invalid("names an unknown user"))?;
        if user.disabled {
            return Err(AccountsError::Forbidden(format!(
                "user '{}' is disabled; ask the county administrator",
                user.username
            )));
        }
        self.note_seen(&device_id, now_ms)?;
        Ok(Caller {
            user: user.id,
            username: user.username,
            role: user.role,
            unit: user.unit,
            device: device_id,
        })
    }

    fn note_seen(&self, device: &DeviceId, now_ms: u64) -> Result<()> {
        let mut seen = lock(&self.inner.seen);
        let stale = seen
            .get(device)
            .is_none_or(|last| now_ms >= last.saturating_add(LAST_SEEN_GRANULARITY_MS));
        if stale {
            // No flush: sled writes it out within its flush interval, and a
            // last-seen time lost in a crash harms nobody.
            self.inner
                .t
                .last_seen
                .insert(device.as_str(), &now_ms.to_be_bytes())?;
            seen.insert(device.clone(), now_ms);
        }
        Ok(())
    }

    /// Makes a new current signing key. The replaced key keeps verifying the
    /// tokens it signed for `access_ttl_s`, then is retired, so a rotation
    /// signs nobody out. Keys retired before `now_ms` are deleted.
    pub fn rotate_signing_key(&self, now_ms: u64) -> Result<KeyInfo> {
        let _w = lock(&self.inner.write);
        let t = &self.inner.t;
        let ttl_ms = self.inner.cfg.access_ttl_s.saturating_mul(1000);
        let new = keys::new_key(now_ms)?;
        let mut records: Vec<KeyRecord> = store::all(&t.keys, "signing key")?;
        let mut writes = BTreeMap::new();
        let mut deletes = Vec::new();
        records.retain_mut(|k| match k.replaced_ms {
            Some(r) if now_ms >= r.saturating_add(ttl_ms) => {
                deletes.push(k.kid.clone());
                false
            }
            Some(_) => true,
            None => {
                k.replaced_ms = Some(now_ms);
                writes.insert(k.kid.clone(), k.clone());
                true
            }
        });
        writes.insert(new.kid.clone(), new.clone());
        records.push(new.clone());
        let ring = KeyRing::from_records(&records)?
            .ok_or_else(|| AccountsError::Internal("no current key after rotation".into()))?;
        let mut values = Vec::new();
        for (kid, k) in &writes {
            values.push((kid.clone(), store::enc(k)?));
        }
        t.keys.transaction(|keys| {
            for kid in &deletes {
                keys.remove(kid.as_bytes())?;
            }
            for (kid, v) in &values {
                keys.insert(kid.as_bytes(), v.as_slice())?;
            }
            Ok::<_, ConflictableTransactionError<AccountsError>>(())
        })?;
        self.flush()?;
        *self.inner.keys.write().unwrap_or_else(|e| e.into_inner()) = ring;
        Ok(KeyInfo {
            kid: new.kid,
            created_ms: new.created_ms,
        })
    }

    /// The kid new access tokens are signed with.
    pub fn current_kid(&self) -> String {
        self.inner
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .current_kid()
            .to_owned()
    }

    // ---- access --------------------------------------------------------

    /// The caller's access rules for the sync core, from the organisation as
    /// it is now.
    pub fn policy(&self, caller: &Caller) -> Result<CallerPolicy> {
        CallerPolicy::new(self.org(), &caller.username, caller.role, caller.unit.as_deref()).map_err(|e| {
            AccountsError::Internal(format!(
                "user '{}' has a unit that does not fit their role ({e}); an administrator must recreate the user",
                caller.username
            ))
        })
    }

    /// The documents the caller may read and write.
    pub fn scope(&self, caller: &Caller) -> Result<Scope> {
        Ok(self.policy(caller)?.scope())
    }
}
