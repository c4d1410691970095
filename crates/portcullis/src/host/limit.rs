//! Tool-call rate limits per user and client: a token bucket each, refilled continuously,
//! so a burst up to the per-minute allowance passes and a steady flood is held to it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Limits calls per key to `per_minute`.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute: f64::from(per_minute.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn per_minute(&self) -> u32 {
        self.per_minute as u32
    }

    /// Takes one call from `key`'s bucket; `Err(seconds)` until the next call is allowed.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), u64> {
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        let rate = self.per_minute / 60.0;
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(key) {
            // Forget buckets that have refilled completely: they hold no information.
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.last).as_secs_f64() * rate < self.per_minute
            });
        }
        let b = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.per_minute,
            last: now,
        });
        b.tokens =
            (b.tokens + now.duration_since(b.last).as_secs_f64() * rate).min(self.per_minute);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / rate).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_passes_a_flood_waits_and_keys_are_separate() {
        let l = RateLimiter::new(60);
        let t0 = Instant::now();
        for _ in 0..60 {
            assert!(l.check("alice|c1", t0).is_ok());
        }
        assert_eq!(l.check("alice|c1", t0), Err(1));
        assert!(
            l.check("alice|c2", t0).is_ok(),
            "another client has its own bucket"
        );
        assert!(
            l.check("alice|c1", t0 + Duration::from_secs(1)).is_ok(),
            "one per second refills"
        );
        assert!(l.check("alice|c1", t0 + Duration::from_secs(1)).is_err());
    }
}
