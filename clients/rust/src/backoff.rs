//! The reconnect policy every client of this repository follows (PROTOCOL.md, "Reconnecting"):
//! attempt `n` (from 0) waits `min(5 s, 50 ms × 2ⁿ)` times a random factor in `[0.5, 1)`, so a
//! stadium of clients dropped at once does not come back in lockstep.

use std::time::Duration;

/// First wait.
pub const INITIAL: Duration = Duration::from_millis(50);
/// Longest wait.
pub const CAP: Duration = Duration::from_secs(5);

/// The wait before reconnect attempt `attempt` (0 = the first retry).
pub fn delay(attempt: u32) -> Duration {
    let base = INITIAL.saturating_mul(1u32 << attempt.min(16)).min(CAP);
    base.mul_f64(0.5 + jitter() / 2.0)
}

/// A number in `[0, 1)`, different on each call: std's randomly keyed hasher over a counter
/// (no RNG crate for one number per reconnect).
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_50_ms_to_a_5_s_cap_with_jitter() {
        for attempt in 0..20 {
            let base = INITIAL.saturating_mul(1 << attempt.min(16)).min(CAP);
            let d = delay(attempt);
            assert!(d >= base / 2 && d < base, "attempt {attempt}: {d:?} outside [{:?}, {base:?})", base / 2);
        }
        assert!(delay(30) < CAP);
        let spread: std::collections::HashSet<_> = (0..32).map(|_| delay(10)).collect();
        assert!(spread.len() > 16, "jitter spreads the waits");
    }
}
