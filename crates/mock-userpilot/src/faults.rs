//! Fault decisions: how long to delay a request, and whether to drop it or answer with an error.
//!
//! Every request draws exactly four numbers from one shared generator, in a fixed order (latency
//! position, spike, drop, error), whatever the configuration. With a seed, request number `n` in
//! arrival order therefore always gets the same decision.

use std::sync::Mutex;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::FaultConfig;

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct FaultPlan {
    /// Time to wait before answering or dropping.
    pub(crate) delay: Option<Duration>,
    /// Close the connection without answering.
    pub(crate) drop: bool,
    /// Answer with the configured error status instead of processing.
    pub(crate) error: bool,
}

/// Draws [`FaultPlan`]s from the configured probabilities.
#[derive(Debug)]
pub(crate) struct FaultInjector {
    config: FaultConfig,
    rng: Mutex<StdRng>,
}

impl FaultInjector {
    pub(crate) fn new(config: &FaultConfig) -> Self {
        let rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Self {
            config: config.clone(),
            rng: Mutex::new(rng),
        }
    }

    /// The configured error status.
    pub(crate) fn error_status(&self) -> u16 {
        self.config.error_status
    }

    /// The configured `Retry-After` for injected 429 and 503 answers.
    pub(crate) fn retry_after(&self) -> Option<u64> {
        self.config.retry_after
    }

    /// Decides the fate of the next request.
    pub(crate) fn plan(&self) -> FaultPlan {
        let [position, spike, drop, error] = {
            // A poisoned lock cannot leave the generator in an invalid state; keep using it.
            let mut rng = self
                .rng
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            [
                rng.random::<f64>(),
                rng.random::<f64>(),
                rng.random::<f64>(),
                rng.random::<f64>(),
            ]
        };
        let delay = self.config.latency.map(|latency| {
            let span = latency.max.saturating_sub(latency.min);
            let mut delay = latency.min + span.mul_f64(position);
            if spike < latency.spike_rate {
                delay += latency.spike;
            }
            delay
        });
        let drop = drop < self.config.drop_rate;
        FaultPlan {
            delay: delay.filter(|delay| !delay.is_zero()),
            drop,
            error: !drop && error < self.config.error_rate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Latency;

    fn config(error_rate: f64, drop_rate: f64) -> FaultConfig {
        FaultConfig {
            error_rate,
            drop_rate,
            seed: Some(7),
            ..FaultConfig::default()
        }
    }

    #[test]
    fn same_seed_gives_the_same_sequence() {
        let a = FaultInjector::new(&config(0.3, 0.1));
        let b = FaultInjector::new(&config(0.3, 0.1));
        let plans_a: Vec<_> = (0..50).map(|_| a.plan()).collect();
        let plans_b: Vec<_> = (0..50).map(|_| b.plan()).collect();
        assert_eq!(plans_a, plans_b);
    }

    #[test]
    fn rates_are_roughly_honoured_and_drop_wins_over_error() {
        let injector = FaultInjector::new(&config(0.3, 0.2));
        let plans: Vec<_> = (0..10_000).map(|_| injector.plan()).collect();
        let drops = plans.iter().filter(|p| p.drop).count();
        let errors = plans.iter().filter(|p| p.error).count();
        assert!(plans.iter().all(|p| !(p.drop && p.error)));
        assert!((1_700..2_300).contains(&drops), "{drops} drops");
        // Errors are drawn among the requests that were not dropped: 0.3 × 0.8 = 24 %.
        assert!((2_100..2_700).contains(&errors), "{errors} errors");
    }

    #[test]
    fn no_faults_configured_means_no_faults() {
        let injector = FaultInjector::new(&FaultConfig::default());
        for _ in 0..1_000 {
            assert_eq!(
                injector.plan(),
                FaultPlan {
                    delay: None,
                    drop: false,
                    error: false
                }
            );
        }
    }

    #[test]
    fn latency_stays_within_range_and_spikes_add_on_top() {
        let latency = Latency::range(Duration::from_millis(10), Duration::from_millis(20))
            .with_spikes(0.5, Duration::from_secs(1));
        let injector = FaultInjector::new(&FaultConfig {
            latency: Some(latency),
            seed: Some(1),
            ..FaultConfig::default()
        });
        let mut spikes = 0;
        for _ in 0..1_000 {
            let delay = injector.plan().delay.unwrap_or_default();
            let base = if delay >= Duration::from_secs(1) {
                spikes += 1;
                delay - Duration::from_secs(1)
            } else {
                delay
            };
            assert!(
                (Duration::from_millis(10)..=Duration::from_millis(20)).contains(&base),
                "{delay:?}"
            );
        }
        assert!((400..600).contains(&spikes), "{spikes} spikes");
    }
}
