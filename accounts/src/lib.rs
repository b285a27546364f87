//! # tpsync-accounts
//!
//! The county server's accounts, organisation (county → township → school)
//! and access rules. A library with no HTTP: the server calls [`Accounts`]
//! and maps [`AccountsError::code`] to its problem documents.
//!
//! ## Design
//!
//! - **Storage.** Everything lives in trees of the server's own `sled::Db`,
//!   all named `accounts.*` (the documents use the default tree and
//!   sync-core's trees): `meta` (county, setup code), `townships`, `schools`,
//!   `users`, `usernames` (lowercased name → id, for uniqueness),
//!   `devices`, `refresh` (current refresh token hash → device), `retired`
//!   (replaced refresh token hash → device), `keys`, `last_seen`. Values
//!   are JSON. Writes that touch several trees run in one sled transaction;
//!   read-modify-write operations are serialised by one mutex (they are rare);
//!   every write that acknowledges something (a user, a device revoked, a key
//!   rotated, tokens issued) is flushed before returning.
//! - **Time** is always a parameter (`now_ms`, unix milliseconds), so tests
//!   drive expiry, key retirement and rate limits without sleeping.
//! - **First administrator.** While no administrator exists,
//!   [`Accounts::setup_code`] makes a one-time code (12 characters of
//!   Crockford base32, 60 bits, shown as `XXXX-XXXX-XXXX`) and keeps it in
//!   clear so the server can print it at every start until it is used by
//!   [`Accounts::setup`]. Whoever can read the data directory owns the server
//!   anyway.
//! - **Passwords**: Argon2id (m = 19 MiB, t = 2, p = 1), PHC strings with a
//!   random salt; 8 to 256 characters. Usernames are unique regardless of
//!   case. An unknown username is checked against a dummy hash so it costs
//!   as long as a wrong password, and both give `InvalidCredentials`.
//! - **Access tokens**: JWT, HS256, `kid` in the header; claims `sub`,
//!   `username`, `role`, `unit`, `device`, `sid` (the device's session
//!   number), `iat`, `exp`, `jti`. Expiry is checked against `now_ms`, never
//!   the system clock. Keys (32 random bytes) live in `accounts.keys` and in
//!   memory; [`Accounts::rotate_signing_key`] makes a new current key, and a
//!   replaced key keeps verifying for `access_ttl_s`, then is retired, so a
//!   rotation signs nobody out. [`Accounts::verify`] also checks that the
//!   device is not revoked (→ `DeviceRevoked` at once), that its session was
//!   not signed out, and that the user is not disabled; the role and unit in
//!   the returned [`Caller`] come from the stored user.
//! - **Refresh tokens**: 32 random bytes as hex, stored only as SHA-256
//!   hashes, one current per device, valid for `refresh_ttl_s` (180 days by
//!   default: phones stay offline for weeks) and replaced on every refresh.
//!   A device is bound to the user who first signs in on it.
//! - **Lost replies and reuse** ([`Accounts::refresh`]). A phone on 2G
//!   often loses the reply to a refresh and still holds the token the
//!   server just replaced. So the replaced token keeps working for
//!   `refresh_grace_s` (600 s by default; never past its own expiry)
//!   **only while the new token is unused**: presenting it again gives a
//!   fresh pair, and the token from the lost reply is superseded (stops
//!   working). Once the new token has been used, or the grace is over, the
//!   replaced token is *retired*. Presenting a retired token is refused with
//!   `TokenInvalid` ("this sign-in was refreshed elsewhere … sign in again")
//!   **and ends the device's session**, as logout does: its current refresh
//!   token is revoked and its session number bumped, so its access tokens
//!   stop verifying. Reuse of a retired token means two holders of one
//!   sign-in, most likely a copied or stolen token; whichever of them is
//!   legitimate signs in again with the password. A device remembers the
//!   hashes of its last 32 retired tokens (in `accounts.retired`); signing
//!   in or out forgets them, so tokens older than that, or from before the
//!   last sign-in or sign-out, are merely unknown (refused, nothing ended).
//!   Access tokens issued with a superseded refresh token live out their
//!   `access_ttl_s`. A client must keep only the newest refresh token it
//!   received and must not send two refreshes at once.
//! - **Sign-in limits** (in memory; figures in [`AuthConfig`]):
//!   5 failed attempts per username per 15 minutes (a success resets the
//!   count) and 30 attempts, failed or not, per client address per minute
//!   (IPv6 per /64). Attempts are counted before the password check so
//!   parallel guesses cannot overrun the limit. The limits are per process
//!   and start afresh on restart.
//! - **Access.** [`Accounts::policy`] returns a [`CallerPolicy`] (sync-core's
//!   `AccessPolicy`) over an in-memory snapshot of the organisation (school
//!   → township, the county), so each check is a map lookup. Teachers read
//!   and write their school's documents and read the county template;
//!   townships the same for their schools; the county reads every registered
//!   school and reads and writes its template; administrators sync nothing.
//!   Unregistered schools and other counties' templates are refused to all.
//!   Every refusal names the caller, the document and the reason.
//! - **School list import** ([`Accounts::import_schools_csv`]): English or
//!   Chinese headers, UTF-8 (with or without BOM) or GBK/GB18030; every bad
//!   row reported with its file line; all or nothing; `dry_run` writes
//!   nothing. Unknown columns are an error rather than ignored, so a
//!   misspelt grade column cannot silently import zeros.
//!
//! ## Crates, and why
//!
//! - `sled` (the workspace's store) and `serde`/`serde_json`: the server's
//!   database; JSON values are readable in a debugger and versionable.
//! - `argon2` (RustCrypto): the password hash OWASP recommends, pure Rust,
//!   PHC strings that carry their own parameters.
//! - `jsonwebtoken` with only its `rust_crypto` backend: the workspace's
//!   chosen JWT crate; the pure-Rust backend needs no C toolchain (aws-lc
//!   does), and PEM support is not needed for HS256.
//! - `csv` (BurntSushi): the standard, correct CSV reader (quotes, embedded
//!   newlines, line positions for error reports).
//! - `encoding_rs`: the WHATWG decoders used by Firefox; its GB18030 decoder
//!   reads the GBK files Excel writes on Chinese Windows.
//! - `sha2`, `hex` (already in the workspace): refresh token hashes and
//!   token text.
//! - `getrandom`: OS randomness for keys, tokens, ids and the setup code;
//!   already in the tree through automerge, so no second RNG stack.
//! - `thiserror`: the error enum.
//! - Rate limiting is hand-rolled (a map of fixed windows): `governor`
//!   reads time from a clock type fixed at construction, which does not fit
//!   a `now_ms` passed per call.

mod accounts;
mod error;
mod import;
mod keys;
mod model;
mod policy;
mod ratelimit;
mod store;

pub use accounts::{Accounts, MAX_PASSWORD_CHARS, MAX_USERNAME_CHARS, MIN_PASSWORD_CHARS};
pub use error::AccountsError;
pub use model::{
    AuthConfig, Caller, County, Device, KeyInfo, NewUser, Role, RowError, School, SchoolImport,
    Scope, Tokens, Township, TownshipId, User,
};
pub use policy::CallerPolicy;

#[cfg(test)]
mod tests;
