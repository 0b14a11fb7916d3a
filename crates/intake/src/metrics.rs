//! The Prometheus metrics registry shared by intake and the delivery side.
//!
//! Built on the `metrics` facade with `metrics-exporter-prometheus`, both already pinned by the
//! workspace. The registry is an explicit object rather than the process-global recorder, so that
//! several servers (in tests, say) keep separate counts; [`MetricsRegistry::install_global`]
//! additionally routes the facade's `metrics::counter!` (and friends) macros into the same
//! registry, which is the hook the delivery side uses to add its own metrics.
//!
//! Labels carry source names, paths and error codes only: never a write key.

use std::sync::Arc;
use std::time::Duration;

use metrics::{
    Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder, SharedString, Unit,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Histogram buckets in seconds, from half a millisecond to ten seconds.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Events received by intake (before validation), by source and path.
pub const RECEIVED_TOTAL: &str = "actionkit_intake_events_received_total";
/// Events accepted and stored, by source and path.
pub const ACCEPTED_TOTAL: &str = "actionkit_intake_events_accepted_total";
/// Events or requests rejected, by source (or `unknown`), path and reason (an error code).
pub const REJECTED_TOTAL: &str = "actionkit_intake_events_rejected_total";
/// Requests handled, by path and status.
pub const REQUESTS_TOTAL: &str = "actionkit_intake_requests_total";
/// Request handling time in seconds, by path.
pub const REQUEST_DURATION: &str = "actionkit_intake_request_duration_seconds";

const METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// A Prometheus registry: register metrics on it, render it as text.
#[derive(Clone)]
pub struct MetricsRegistry {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for MetricsRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsRegistry")
    }
}

impl Default for MetricsRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsRegistry {
    /// A registry whose histograms use [`LATENCY_BUCKETS`], with intake's metrics described.
    pub fn new() -> Self {
        let builder = PrometheusBuilder::new();
        // Setting buckets fails only for an empty list, which LATENCY_BUCKETS is not.
        let builder = match builder.set_buckets(&LATENCY_BUCKETS) {
            Ok(b) => b,
            Err(_) => PrometheusBuilder::new(),
        };
        Self::from_builder(builder)
    }

    /// A registry from a builder configured by the caller (buckets, global labels, …).
    pub fn from_builder(builder: PrometheusBuilder) -> Self {
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let registry = Self {
            recorder: Arc::new(recorder),
            handle,
        };
        registry.describe_intake();
        registry
    }

    fn describe_intake(&self) {
        let r = &self.recorder;
        r.describe_counter(
            KeyName::from_const_str(RECEIVED_TOTAL),
            Some(Unit::Count),
            SharedString::const_str("Events received by intake before validation."),
        );
        r.describe_counter(
            KeyName::from_const_str(ACCEPTED_TOTAL),
            Some(Unit::Count),
            SharedString::const_str("Events accepted by intake and handed to the queue."),
        );
        r.describe_counter(
            KeyName::from_const_str(REJECTED_TOTAL),
            Some(Unit::Count),
            SharedString::const_str("Events (or whole requests) rejected by intake, by reason."),
        );
        r.describe_counter(
            KeyName::from_const_str(REQUESTS_TOTAL),
            Some(Unit::Count),
            SharedString::const_str("Tracking API requests answered, by path and status."),
        );
        r.describe_histogram(
            KeyName::from_const_str(REQUEST_DURATION),
            Some(Unit::Seconds),
            SharedString::const_str("Time to answer a tracking API request."),
        );
    }

    /// A counter with the given labels; the same name and labels always give the same series.
    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        self.recorder
            .register_counter(&key(name, labels), &METADATA)
    }

    /// A gauge with the given labels.
    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        self.recorder.register_gauge(&key(name, labels), &METADATA)
    }

    /// A histogram with the given labels (rendered with the registry's buckets).
    pub fn histogram(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Histogram {
        self.recorder
            .register_histogram(&key(name, labels), &METADATA)
    }

    /// The underlying recorder, for `metrics::with_local_recorder` or direct registration.
    pub fn recorder(&self) -> &PrometheusRecorder {
        &self.recorder
    }

    /// The Prometheus text exposition of every metric registered so far.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Drains histogram samples into their buckets; call it periodically when nobody scrapes,
    /// so that samples do not pile up in memory (see [`MetricsRegistry::spawn_upkeep`]).
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Runs [`MetricsRegistry::run_upkeep`] every `every` on the current tokio runtime.
    pub fn spawn_upkeep(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let handle = self.handle.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        })
    }

    /// Makes this registry the process-wide recorder of the `metrics` facade, so that
    /// `metrics::counter!` and friends anywhere in the process land here; fails when another
    /// recorder is already installed.
    pub fn install_global(&self) -> Result<(), InstallError> {
        metrics::set_global_recorder(SharedRecorder(Arc::clone(&self.recorder)))
            .map_err(|_| InstallError)
    }
}

/// Another global recorder was already installed.
#[derive(Debug, thiserror::Error)]
#[error("a global metrics recorder is already installed")]
pub struct InstallError;

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    let labels: Vec<Label> = labels
        .iter()
        .map(|(k, v)| Label::new(*k, (*v).to_owned()))
        .collect();
    Key::from_parts(name, labels)
}

/// The registry's recorder behind an `Arc`, so that it can be both global and held here.
struct SharedRecorder(Arc<PrometheusRecorder>);

impl Recorder for SharedRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_counter(key, unit, description);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_gauge(key, unit, description);
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_histogram(key, unit, description);
    }
    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.0.register_counter(key, metadata)
    }
    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.0.register_gauge(key, metadata)
    }
    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.0.register_histogram(key, metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_labels_and_registries_are_separate() {
        let a = MetricsRegistry::new();
        let b = MetricsRegistry::new();
        a.counter(ACCEPTED_TOTAL, &[("source", "web")]).increment(3);
        a.counter(ACCEPTED_TOTAL, &[("source", "web")]).increment(2);
        a.histogram(REQUEST_DURATION, &[("path", "batch")])
            .record(0.003);
        let text = a.render();
        assert!(
            text.contains(r#"actionkit_intake_events_accepted_total{source="web"} 5"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"actionkit_intake_request_duration_seconds_bucket{path="batch",le="0.005"} 1"#
            ),
            "{text}"
        );
        assert!(!b.render().contains("source=\"web\""));
    }

    #[test]
    fn installed_globally_the_facade_macros_land_in_the_registry() {
        let registry = MetricsRegistry::new();
        registry.install_global().unwrap();
        metrics::counter!("actionkit_delivery_attempts_total", "destination" => "userpilot")
            .increment(4);
        let text = registry.render();
        assert!(
            text.contains(r#"actionkit_delivery_attempts_total{destination="userpilot"} 4"#),
            "{text}"
        );
        assert!(MetricsRegistry::new().install_global().is_err());
    }
}
