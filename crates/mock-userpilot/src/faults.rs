//! Fault decisions: how long to delay a request, and whether to drop it or answer with an error.
//!
//! Every request draws exactly four numbers from one shared generator, in a fixed order (latency
//! position, spike, drop, error), whatever the configuration. With a seed, request number `n` in
//! arrival order therefore always gets the same decision.
//!
//! The configuration can be replaced while the server runs ([`FaultInjector::set`], exposed as
//! `MockHandle::set_faults`), so a test can make the destination fail and then recover. Each plan
//! is drawn under one lock together with the configuration it was drawn from, so a request never
//! mixes two configurations.

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
    /// Answer with [`FaultPlan::error_status`] instead of processing.
    pub(crate) error: bool,
    /// The status of an injected error, from the configuration the plan was drawn from.
    pub(crate) error_status: u16,
    /// The `Retry-After` of an injected 429 or 503, from the same configuration.
    pub(crate) retry_after: Option<u64>,
}

/// The configuration and the generator, replaced and used together.
#[derive(Debug)]
struct Inner {
    config: FaultConfig,
    rng: StdRng,
}

/// Draws [`FaultPlan`]s from the configured probabilities.
#[derive(Debug)]
pub(crate) struct FaultInjector {
    inner: Mutex<Inner>,
}

fn rng_for(config: &FaultConfig) -> StdRng {
    match config.seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_os_rng(),
    }
}

impl FaultInjector {
    pub(crate) fn new(config: &FaultConfig) -> Self {
        Self {
            inner: Mutex::new(Inner {
                config: config.clone(),
                rng: rng_for(config),
            }),
        }
    }

    /// Replaces the configuration for every later request; requests already past their fault
    /// decision keep theirs. A configuration with a seed restarts the generator from that seed;
    /// without one the generator continues.
    pub(crate) fn set(&self, config: &FaultConfig) {
        let mut inner = self.lock();
        if config.seed.is_some() {
            inner.rng = rng_for(config);
        }
        inner.config = config.clone();
    }

    /// The configuration in force.
    pub(crate) fn config(&self) -> FaultConfig {
        self.lock().config.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock cannot leave the generator or the configuration in an invalid state;
        // keep using them.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Decides the fate of the next request.
    pub(crate) fn plan(&self) -> FaultPlan {
        let (config, [position, spike, drop, error]) = {
            let mut inner = self.lock();
            let draws = [
                inner.rng.random::<f64>(),
                inner.rng.random::<f64>(),
                inner.rng.random::<f64>(),
                inner.rng.random::<f64>(),
            ];
            (
                (
                    inner.config.latency,
                    inner.config.drop_rate,
                    inner.config.error_rate,
                    inner.config.error_status,
                    inner.config.retry_after,
                ),
                draws,
            )
        };
        let (latency, drop_rate, error_rate, error_status, retry_after) = config;
        let delay = latency.map(|latency| {
            let span = latency.max.saturating_sub(latency.min);
            let mut delay = latency.min + span.mul_f64(position);
            if spike < latency.spike_rate {
                delay += latency.spike;
            }
            delay
        });
        let drop = drop < drop_rate;
        FaultPlan {
            delay: delay.filter(|delay| !delay.is_zero()),
            drop,
            error: !drop && error < error_rate,
            error_status,
            retry_after,
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
                    error: false,
                    error_status: 503,
                    retry_after: None,
                }
            );
        }
    }

    #[test]
    fn a_new_configuration_applies_to_later_plans() {
        let injector = FaultInjector::new(&config(1.0, 0.0));
        assert!(injector.plan().error);
        injector.set(&FaultConfig {
            error_status: 429,
            retry_after: Some(3),
            ..config(0.0, 0.0)
        });
        assert_eq!(injector.config().error_rate, 0.0);
        for _ in 0..100 {
            let plan = injector.plan();
            assert!(!plan.error && !plan.drop, "{plan:?}");
            assert_eq!((plan.error_status, plan.retry_after), (429, Some(3)));
        }
        // Setting the same seeded configuration twice restarts the same sequence.
        injector.set(&config(0.5, 0.2));
        let first: Vec<_> = (0..20).map(|_| injector.plan()).collect();
        injector.set(&config(0.5, 0.2));
        let second: Vec<_> = (0..20).map(|_| injector.plan()).collect();
        assert_eq!(first, second);
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
