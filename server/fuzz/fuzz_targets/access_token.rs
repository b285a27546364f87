//! `Accounts::verify` (every bearer token, cookie and `?access_token=`):
//! any string is refused with a token error, or accepted only if the keys
//! signed exactly its header and claims, and then as the caller they were
//! issued to; never a panic. The key set is real: tokens signed by a key
//! that was since rotated out (still verifying) and by the current key, and
//! a device that was revoked.
//!
//! Input: byte 0 picks how the rest becomes a token:
//!
//! * 0: the rest as text (lossy UTF-8);
//! * 1, 2, 3: a real token with its header, claims or signature segment
//!   replaced by the rest (as text);
//! * 4, 5: a real token with its header or claims replaced by the rest
//!   base64url-encoded (so the fuzzer writes JSON, not base64);
//! * 6: a real token with the rest spliced in at the position the rest's
//!   first byte picks;
//! * 7: a real token's first two segments, then the rest as text.
//!
//! Bits 3–4 of byte 0 pick the real token: the current key's, the rotated
//! key's, the revoked device's, or the rotated key's for another user.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sync_core::DeviceId;
use tpsync_accounts::{Accounts, AccountsError, AuthConfig, NewUser, Role};
use tpsync_server_fuzz::{county, run, temp_dir, violated, PASSWORD, SCHOOLS_CSV};

struct Issued {
    token: String,
    username: &'static str,
    device: &'static str,
    /// The device was revoked: the token must be refused.
    revoked: bool,
}

struct Fixture {
    accounts: Accounts,
    issued: Vec<Issued>,
    now: u64,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = temp_dir("token");
        let db = sled::open(dir.join("db")).unwrap();
        let cfg = AuthConfig {
            access_ttl_s: 10 * 365 * 24 * 3600,
            ..AuthConfig::default()
        };
        let a = Accounts::open(&db, cfg).unwrap();
        let now = 1_800_000_000_000u64;
        let code = a.setup_code().unwrap().unwrap();
        a.setup(&code, "admin", PASSWORD, now).unwrap();
        a.set_county(county(), "模糊县").unwrap();
        assert!(a
            .import_schools_csv(SCHOOLS_CSV.as_bytes(), false)
            .unwrap()
            .errors
            .is_empty());
        for (u, unit) in [("teacher-a", "4301230001"), ("teacher-b", "4301230002")] {
            a.create_user(
                NewUser {
                    username: u.into(),
                    password: PASSWORD.into(),
                    role: Role::Teacher,
                    unit: Some(unit.into()),
                },
                now,
            )
            .unwrap();
        }
        let login = |u: &str, d: &str| {
            a.login(u, PASSWORD, &DeviceId::new(d).unwrap(), None, None, now)
                .unwrap()
                .access_token
        };
        let old_a = login("teacher-a", "phone-a");
        let old_b = login("teacher-b", "phone-b");
        let gone = login("teacher-a", "phone-lost");
        a.rotate_signing_key(now).unwrap();
        let new_a = login("teacher-a", "phone-a2");
        a.revoke_device(&DeviceId::new("phone-lost").unwrap(), now)
            .unwrap();
        let issued = vec![
            Issued {
                token: new_a,
                username: "teacher-a",
                device: "phone-a2",
                revoked: false,
            },
            Issued {
                token: old_a,
                username: "teacher-a",
                device: "phone-a",
                revoked: false,
            },
            Issued {
                token: gone,
                username: "teacher-a",
                device: "phone-lost",
                revoked: true,
            },
            Issued {
                token: old_b,
                username: "teacher-b",
                device: "phone-b",
                revoked: false,
            },
        ];
        for i in &issued {
            let ok = a.verify(&i.token, now + 1000).is_ok();
            assert_eq!(ok, !i.revoked, "fixture token of {}", i.device);
        }
        Fixture {
            accounts: a,
            issued,
            now: now + 1000,
        }
    })
}

fuzz_target!(init: { tpsync_server_fuzz::init(); fixture(); }, |data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let f = fixture();
    let real = &f.issued[usize::from(mode >> 3) % f.issued.len()].token;
    let text = String::from_utf8_lossy(rest);
    let segs: Vec<&str> = real.split('.').collect();
    let token = match mode & 7 {
        0 => text.into_owned(),
        m @ 1..=3 => {
            let mut s: Vec<String> = segs.iter().map(|s| s.to_string()).collect();
            s[usize::from(m - 1)] = text.into_owned();
            s.join(".")
        }
        m @ 4..=5 => {
            let mut s: Vec<String> = segs.iter().map(|s| s.to_string()).collect();
            s[usize::from(m - 4)] = base64url(rest);
            s.join(".")
        }
        6 => {
            let at = rest.first().map(|&b| usize::from(b) % (real.len() + 1)).unwrap_or(0);
            let mut t = real[..at].to_owned();
            t.push_str(&text);
            t.push_str(&real[at..]);
            t
        }
        _ => format!("{}.{}.{text}", segs[0], segs[1]),
    };
    run("access_token", || {
        match f.accounts.verify(&token, f.now) {
            Ok(caller) => {
                // Signed means: the header and claims are byte for byte
                // those of a token the keys signed (HS256 covers exactly
                // that text).
                let t = token.trim();
                let signed_part = |s: &str| s.rsplit_once('.').map(|(h, _)| h.to_owned());
                let Some(i) = f.issued.iter().find(|i| signed_part(&i.token) == signed_part(t))
                else {
                    violated(format!("a token the keys did not sign was accepted: {token:?}"));
                };
                if i.revoked {
                    violated(format!("a revoked device's token was accepted: {token:?}"));
                }
                if caller.username != i.username || caller.device.as_str() != i.device {
                    violated(format!(
                        "a token of {}@{} verified as {}@{}",
                        i.username, i.device, caller.username, caller.device
                    ));
                }
            }
            Err(
                AccountsError::TokenInvalid(_)
                | AccountsError::TokenExpired(_)
                | AccountsError::DeviceRevoked { .. },
            ) => {}
            Err(e) => violated(format!("a token gave {} ({e}), not a token error", e.code())),
        }
    });
});

fn base64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=c.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}
