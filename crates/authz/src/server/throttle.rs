//! In-memory rate limits: failed logins per account and per address, and client
//! registrations per address. A restart forgets them, which errs towards letting a
//! locked-out user back in; the limits are about slowing guessing, not auditing it.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;

const WINDOW: i64 = 15 * 60;
const ACCOUNT_FREE_FAILURES: u32 = 5;
const ADDRESS_FREE_FAILURES: u32 = 20;
const REGISTRATIONS_PER_WINDOW: u32 = 30;
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Counter {
    count: u32,
    first: i64,
    last: i64,
}

#[derive(Debug, Default)]
pub(super) struct Throttle {
    failures: Mutex<HashMap<String, Counter>>,
    registrations: Mutex<HashMap<IpAddr, Counter>>,
}

/// How long a caller must wait before the next attempt counts.
fn lockout(count: u32, free: u32) -> i64 {
    if count < free {
        return 0;
    }
    // 30 s after the free attempts, doubling, at most the window.
    (30i64 << (count - free).min(5)).min(WINDOW)
}

impl Counter {
    fn new(now: i64) -> Self {
        Self {
            count: 0,
            first: now,
            last: now,
        }
    }
}

/// The counter for `key`, restarted when its window (measured from `since`) has passed.
fn entry<K: Eq + Hash>(
    map: &mut HashMap<K, Counter>,
    key: K,
    now: i64,
    since: fn(&Counter) -> i64,
) -> &mut Counter {
    if map.len() >= MAX_TRACKED {
        map.retain(|_, c| since(c) + WINDOW > now);
    }
    let c = map.entry(key).or_insert(Counter::new(now));
    if since(c) + WINDOW <= now {
        *c = Counter::new(now);
    }
    c
}

fn bump(map: &mut HashMap<String, Counter>, key: String, now: i64) {
    let c = entry(map, key, now, |c| c.last);
    c.count += 1;
    c.last = now;
}

impl Throttle {
    /// `Err(seconds)` when a login for `user` from `ip` must wait.
    pub(super) fn check_login(&self, user: &str, ip: IpAddr, now: i64) -> Result<(), i64> {
        let Ok(map) = self.failures.lock() else {
            return Ok(());
        };
        let wait = |key: String, free| {
            map.get(&key)
                .filter(|c| c.last + WINDOW > now)
                .map(|c| c.last + lockout(c.count, free) - now)
                .unwrap_or(0)
        };
        let w = wait(
            format!("user:{}", user.to_lowercase()),
            ACCOUNT_FREE_FAILURES,
        )
        .max(wait(format!("ip:{ip}"), ADDRESS_FREE_FAILURES));
        if w > 0 { Err(w) } else { Ok(()) }
    }

    pub(super) fn login_failed(&self, user: &str, ip: IpAddr, now: i64) {
        if let Ok(mut map) = self.failures.lock() {
            bump(&mut map, format!("user:{}", user.to_lowercase()), now);
            bump(&mut map, format!("ip:{ip}"), now);
        }
    }

    pub(super) fn login_succeeded(&self, user: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(&format!("user:{}", user.to_lowercase()));
        }
    }

    /// Counts a registration from `ip`; `Err(seconds)` when over the limit.
    pub(super) fn registration(&self, ip: IpAddr, now: i64) -> Result<(), i64> {
        let Ok(mut map) = self.registrations.lock() else {
            return Ok(());
        };
        let c = entry(&mut map, ip, now, |c| c.first);
        if c.count >= REGISTRATIONS_PER_WINDOW {
            return Err(c.first + WINDOW - now);
        }
        c.count += 1;
        c.last = now;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_locks_after_free_failures_and_unlocks_later() {
        let t = Throttle::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..ACCOUNT_FREE_FAILURES {
            assert!(t.check_login("alice", ip, 1000 + i as i64).is_ok());
            t.login_failed("alice", ip, 1000 + i as i64);
        }
        let wait = t
            .check_login("ALICE", "192.0.2.9".parse().unwrap(), 1005)
            .unwrap_err();
        assert!(
            wait > 0 && wait <= 30,
            "locked per account, from any address: {wait}"
        );
        assert!(
            t.check_login("bob", ip, 1005).is_ok(),
            "other accounts unaffected"
        );
        assert!(t.check_login("alice", ip, 1004 + 31).is_ok());
        t.login_succeeded("alice");
    }

    #[test]
    fn registrations_are_limited_per_address() {
        let t = Throttle::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..REGISTRATIONS_PER_WINDOW {
            t.registration(ip, 10).unwrap();
        }
        assert!(t.registration(ip, 11).is_err());
        assert!(t.registration("192.0.2.2".parse().unwrap(), 11).is_ok());
        assert!(t.registration(ip, 10 + WINDOW).is_ok());
    }
}
