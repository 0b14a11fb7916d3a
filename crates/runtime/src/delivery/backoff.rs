//! Capped exponential backoff with full jitter.
//!
//! Retry number `n` (counting from zero) waits a uniformly random time between zero and
//! `min(cap, base × 2ⁿ)`. Full jitter spreads retries of many failed requests over the whole
//! window instead of letting them arrive at the destination together.

use std::sync::Mutex;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Capped exponential backoff with full jitter; safe to share between tasks.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    rng: Mutex<StdRng>,
}

impl Backoff {
    /// A backoff whose randomness is seeded from the operating system.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self::from_rng(base, cap, StdRng::from_os_rng())
    }

    /// A backoff with a fixed seed, so the sequence of delays is reproducible (for tests).
    pub fn with_seed(base: Duration, cap: Duration, seed: u64) -> Self {
        Self::from_rng(base, cap, StdRng::seed_from_u64(seed))
    }

    fn from_rng(base: Duration, cap: Duration, rng: StdRng) -> Self {
        Backoff {
            base,
            cap,
            rng: Mutex::new(rng),
        }
    }

    /// The base delay (the ceiling of the first retry).
    pub fn base(&self) -> Duration {
        self.base
    }

    /// The largest delay any retry may wait.
    pub fn cap(&self) -> Duration {
        self.cap
    }

    /// The upper bound of the delay before retry `retry_idx` (0 for the first retry):
    /// `min(cap, base × 2^retry_idx)`, without overflow.
    pub fn ceiling(&self, retry_idx: u32) -> Duration {
        let base_nanos = self.base.as_nanos();
        let cap_nanos = self.cap.as_nanos();
        if base_nanos == 0 {
            return Duration::ZERO;
        }
        let nanos = 1u128
            .checked_shl(retry_idx)
            .and_then(|factor| base_nanos.checked_mul(factor))
            .map_or(cap_nanos, |nanos| nanos.min(cap_nanos));
        if nanos == cap_nanos {
            return self.cap;
        }
        // Below the cap, so it fits a `Duration`.
        let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
        let subsec = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
        Duration::new(secs, subsec)
    }

    /// A random delay for retry `retry_idx`, uniform in `[0, ceiling(retry_idx)]`.
    pub fn delay(&self, retry_idx: u32) -> Duration {
        let ceiling = self.ceiling(retry_idx);
        let max_nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        if max_nanos == 0 {
            return Duration::ZERO;
        }
        // A poisoned lock only means another task panicked mid-draw; the generator is still usable.
        let mut rng = self
            .rng
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Duration::from_nanos(rng.random_range(0..=max_nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_then_caps() {
        let backoff = Backoff::with_seed(Duration::from_millis(100), Duration::from_secs(1), 7);
        let ceilings: Vec<u128> = (0..6).map(|n| backoff.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff.ceiling(40), Duration::from_secs(1));
        assert_eq!(backoff.ceiling(u32::MAX), Duration::from_secs(1));
    }
}
