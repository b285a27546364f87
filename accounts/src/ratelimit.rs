//! Sign-in rate limits: fixed windows kept in memory, with time passed in.
//!
//! Hand-rolled rather than a crate: `governor` (the usual choice) reads time
//! from a `Clock` type fixed when the limiter is built, so driving it from
//! each call's `now_ms` would need a shared mutable fake clock; the whole
//! thing here is a map of (window start, count) per key. The state is lost on
//! restart, which only gives an attacker a fresh window per restart.

use std::collections::HashMap;
use std::net::IpAddr;

/// Entries kept before expired ones are swept out.
const SWEEP_ABOVE: usize = 10_000;

#[derive(Clone, Copy, Debug)]
struct Window {
    start_ms: u64,
    count: u32,
}

/// At most `max` hits per key within a window of `window_ms` that starts at
/// the key's first hit.
#[derive(Debug)]
pub(crate) struct FixedWindow {
    max: u32,
    window_ms: u64,
    map: HashMap<String, Window>,
}

impl FixedWindow {
    pub fn new(max: u32, window_s: u64) -> Self {
        Self {
            max,
            window_ms: window_s.saturating_mul(1000),
            map: HashMap::new(),
        }
    }

    fn live(&self, key: &str, now_ms: u64) -> Option<Window> {
        self.map
            .get(key)
            .copied()
            .filter(|w| now_ms < w.start_ms.saturating_add(self.window_ms))
    }

    /// `Err(seconds to wait)` if the key used up its window.
    pub fn check(&self, key: &str, now_ms: u64) -> Result<(), u64> {
        match self.live(key, now_ms) {
            Some(w) if w.count >= self.max => {
                let end = w.start_ms.saturating_add(self.window_ms);
                Err((end - now_ms).div_ceil(1000).max(1))
            }
            _ => Ok(()),
        }
    }

    pub fn hit(&mut self, key: &str, now_ms: u64) {
        let w = match self.live(key, now_ms) {
            Some(w) => Window {
                count: w.count.saturating_add(1),
                ..w
            },
            None => Window {
                start_ms: now_ms,
                count: 1,
            },
        };
        self.map.insert(key.to_owned(), w);
        if self.map.len() > SWEEP_ABOVE {
            let window_ms = self.window_ms;
            self.map
                .retain(|_, w| now_ms < w.start_ms.saturating_add(window_ms));
        }
    }

    pub fn reset(&mut self, key: &str) {
        self.map.remove(key);
    }
}

/// The key an address counts under: IPv4 as is, IPv6 per /64 (one customer's
/// prefix), IPv4-mapped IPv6 as IPv4.
pub(crate) fn ip_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_after_max_then_allows_when_the_window_ends() {
        let mut w = FixedWindow::new(3, 60);
        for i in 0..3 {
            assert!(w.check("k", 1_000 + i).is_ok());
            w.hit("k", 1_000 + i);
        }
        assert_eq!(w.check("k", 1_000), Err(60));
        assert_eq!(w.check("k", 30_500), Err(31));
        assert_eq!(w.check("k", 60_999), Err(1));
        assert!(w.check("other", 2_000).is_ok());
        assert!(w.check("k", 61_000).is_ok());
        w.hit("k", 61_000);
        assert!(w.check("k", 61_000).is_ok());
        w.reset("k");
        assert!(w.check("k", 61_000).is_ok());
    }

    #[test]
    fn ipv6_counts_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_key(a), ip_key(b));
        assert_ne!(ip_key(a), ip_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(ip_key(mapped), "10.0.0.1");
    }

    #[test]
    fn expired_entries_are_swept() {
        let mut w = FixedWindow::new(1, 1);
        for i in 0..=SWEEP_ABOVE {
            w.hit(&format!("k{i}"), 0);
        }
        w.hit("late", 5_000);
        assert_eq!(w.map.len(), 1);
    }
}
