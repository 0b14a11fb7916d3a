//! Fault decisions: how long to delay a request, and whether to drop it or answer with an error.
//!
//! Only requests to the endpoints the configuration selects (`FaultConfig::endpoints`) get a
//! decision; the others pass untouched and leave the generator and the script where they were.
//! Every selected request draws exactly four numbers from one shared generator, in a fixed order
//! (latency position, spike, drop, error), whatever the configuration. With a seed, selected
//! request number `n` in arrival order therefore always gets the same decision. While the
//! script (`FaultConfig::script`) has steps left, the next step replaces the drawn drop and error
//! decision; the drawn latency still applies.
//!
//! The configuration can be replaced while the server runs ([`FaultInjector::set`], exposed as
//! `MockHandle::set_faults`), so a test can make the destination fail and then recover. Each plan
//! is drawn under one lock together with the configuration it was drawn from and the script
//! position, so a request never mixes two configurations and no two requests get the same step.

use std::sync::Mutex;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::{EndpointGroup, FaultConfig};

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

/// The configuration, the generator and the script position, replaced and used together.
#[derive(Debug)]
struct Inner {
    config: FaultConfig,
    rng: StdRng,
    /// The index of the next unused step of `config.script`.
    script_idx: usize,
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
                script_idx: 0,
            }),
        }
    }

    /// Replaces the configuration for every later request; requests already past their fault
    /// decision keep theirs. A configuration with a seed restarts the generator from that seed;
    /// without one the generator continues. The new configuration's script starts from its
    /// first step.
    pub(crate) fn set(&self, config: &FaultConfig) {
        let mut inner = self.lock();
        if config.seed.is_some() {
            inner.rng = rng_for(config);
        }
        inner.config = config.clone();
        inner.script_idx = 0;
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

    /// Decides the fate of the next request, which goes to an endpoint of `group` (`None` for a
    /// path outside every group, such as an unknown one).
    pub(crate) fn plan(&self, group: Option<EndpointGroup>) -> FaultPlan {
        let mut guard = self.lock();
        let Inner {
            config,
            rng,
            script_idx,
        } = &mut *guard;
        let untouched = FaultPlan {
            delay: None,
            drop: false,
            error: false,
            error_status: config.error_status,
            retry_after: config.retry_after,
        };
        if !config.endpoints.covers(group) {
            return untouched;
        }
        let [position, spike, drop, error]: [f64; 4] = std::array::from_fn(|_| rng.random());
        let delay = config.latency.map(|latency| {
            let span = latency.max.saturating_sub(latency.min);
            let mut delay = latency.min + span.mul_f64(position);
            if spike < latency.spike_rate {
                delay += latency.spike;
            }
            delay
        });
        let delay = delay.filter(|delay| !delay.is_zero());
        if let Some(&step) = config.script.get(*script_idx) {
            *script_idx += 1;
            // A step of 0 drops the connection; any other is the status to answer with.
            return FaultPlan {
                delay,
                drop: step == 0,
                error: step != 0,
                error_status: if step == 0 { config.error_status } else { step },
                ..untouched
            };
        }
        let drop = drop < config.drop_rate;
        FaultPlan {
            delay,
            drop,
            error: !drop && error < config.error_rate,
            ..untouched
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FaultEndpoints, Latency};

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
        let plans_a: Vec<_> = (0..50).map(|_| a.plan(None)).collect();
        let plans_b: Vec<_> = (0..50).map(|_| b.plan(None)).collect();
        assert_eq!(plans_a, plans_b);
    }

    #[test]
    fn rates_are_roughly_honoured_and_drop_wins_over_error() {
        let injector = FaultInjector::new(&config(0.3, 0.2));
        let plans: Vec<_> = (0..10_000).map(|_| injector.plan(None)).collect();
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
                injector.plan(None),
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
        assert!(injector.plan(None).error);
        injector.set(&FaultConfig {
            error_status: 429,
            retry_after: Some(3),
            ..config(0.0, 0.0)
        });
        assert_eq!(injector.config().error_rate, 0.0);
        for _ in 0..100 {
            let plan = injector.plan(None);
            assert!(!plan.error && !plan.drop, "{plan:?}");
            assert_eq!((plan.error_status, plan.retry_after), (429, Some(3)));
        }
        // Setting the same seeded configuration twice restarts the same sequence.
        injector.set(&config(0.5, 0.2));
        let first: Vec<_> = (0..20).map(|_| injector.plan(None)).collect();
        injector.set(&config(0.5, 0.2));
        let second: Vec<_> = (0..20).map(|_| injector.plan(None)).collect();
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
            let delay = injector.plan(None).delay.unwrap_or_default();
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

    #[test]
    fn requests_outside_the_selected_groups_are_untouched_and_draw_nothing() {
        let only_bulk = FaultConfig {
            endpoints: FaultEndpoints::only([EndpointGroup::Bulk]),
            ..config(0.5, 0.2)
        };
        let injector = FaultInjector::new(&only_bulk);
        let reference = FaultInjector::new(&only_bulk);
        for idx in 0..200 {
            // Requests to other groups (and to no group) in between change nothing for the bulk
            // requests: their plans follow the same seeded sequence as without them.
            for group in [
                Some(EndpointGroup::Identify),
                Some(EndpointGroup::Track),
                None,
            ] {
                let plan = injector.plan(group);
                assert!(
                    !plan.error && !plan.drop && plan.delay.is_none(),
                    "{plan:?}"
                );
            }
            assert_eq!(
                injector.plan(Some(EndpointGroup::Bulk)),
                reference.plan(Some(EndpointGroup::Bulk)),
                "bulk request {idx}"
            );
        }
    }

    #[test]
    fn the_script_answers_in_order_then_the_rates_decide() {
        let scripted = FaultConfig {
            script: vec![503, 0, 429],
            retry_after: Some(4),
            endpoints: FaultEndpoints::only([EndpointGroup::Bulk]),
            ..config(0.0, 0.0)
        };
        let injector = FaultInjector::new(&scripted);
        let bulk = Some(EndpointGroup::Bulk);
        // A request outside the selected groups does not use a step.
        assert!(!injector.plan(Some(EndpointGroup::Identify)).error);
        let steps: Vec<_> = (0..5).map(|_| injector.plan(bulk)).collect();
        let decisions: Vec<_> = steps
            .iter()
            .map(|plan| (plan.drop, plan.error, plan.error_status))
            .collect();
        assert_eq!(
            decisions,
            [
                (false, true, 503),
                (true, false, 503),
                (false, true, 429),
                (false, false, 503),
                (false, false, 503),
            ]
        );
        assert!(steps.iter().all(|plan| plan.retry_after == Some(4)));
        // Setting the configuration again starts the script over.
        injector.set(&scripted);
        assert_eq!(injector.plan(bulk).error_status, 503);
        assert!(injector.plan(bulk).drop);
    }
}
