//! Delivery workers of `actionkit serve`: one per destination instance, draining the durable
//! queue.
//!
//! A worker leases due rows of its instance, and for each row parses the stored event, checks
//! the event's `integrations` switch, runs every enabled mapping, sends every built request, and
//! records the outcome in the queue:
//!
//! * every request delivered, or nothing to send (no trigger matched, or the event is switched
//!   off for this instance by `integrations`, keyed by the instance name or else the
//!   destination's display name): the row is acknowledged;
//! * any request failed with a retryable error after the delivery client's own retries: the row
//!   is scheduled for a later retry at `now + Retry-After` (when the destination gave one) or
//!   `now + backoff` ([`Queue::schedule_retry`] dead-letters it instead once the maximum age is
//!   past). A retry dispatches and sends the whole event again, so requests that were delivered
//!   in the failed round are sent a second time (with the same `messageId`);
//! * otherwise, when a request failed for good or a mapping rejected the event (validation), the
//!   row is dead-lettered with the reasons.
//!
//! A row's delivery is cut off shortly before its lease runs out and then counts as a retryable
//! failure, so its outcome is always written while the lease is still the worker's (see
//! `delivery_deadline`). Rows whose outcome cannot be written (the queue failed) stay in flight
//! and come back after their lease runs out, so the failure costs a duplicate, never a loss.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actionkit_intake::{MetricsRegistry, is_enabled_for};
use actionkit_queue::{Lease, LeaseId, Queue, QueueError, RetryOutcome};
use actionkit_runtime::batch::Batcher;
use actionkit_runtime::delivery::{Backoff, FinalOutcome, Verdict};
use actionkit_runtime::dispatch::{BatchItem, Outcome};
use actionkit_runtime::request::Request;
use serde_json::Value;
use tokio::sync::{Notify, watch};

use crate::setup::Target;

/// The name of the counter of delivery outcomes, labelled by `destination` and `outcome`.
pub const DELIVERIES_TOTAL: &str = "actionkit_deliveries_total";
/// Requests sent to destinations, labelled by `destination`, `action` (the action's key) and
/// `outcome` (`delivered`, `failed`, or `retries_exhausted` when the queue retries the event later).
pub const DELIVERY_REQUESTS_TOTAL: &str = "actionkit_delivery_requests_total";
/// Time from the first attempt of a request to the end of its last one (retries within the
/// attempt budget included), in seconds, labelled by `destination` and `action`.
pub const DELIVERY_REQUEST_DURATION: &str = "actionkit_delivery_request_duration_seconds";
/// Batch entries sent to destinations, labelled by `destination`, `action` and `outcome` (as
/// for [`DELIVERY_REQUESTS_TOTAL`]); the requests that carried them are not counted there.
pub const DELIVERY_BATCH_ENTRIES_TOTAL: &str = "actionkit_delivery_batch_entries_total";
/// Time from an event's enqueue to its delivery to an instance, in seconds, labelled by
/// `destination`: what queueing, retries and the destination together add.
pub const DELIVERY_EVENT_AGE: &str = "actionkit_delivery_event_age_seconds";

/// How a worker paces itself.
#[derive(Debug)]
pub struct WorkerConfig {
    /// Most rows leased at once.
    pub lease_batch: usize,
    /// How long an idle worker sleeps when it is not woken by new events.
    pub idle_poll: Duration,
    /// How long a worker lets events gather before leasing again after a wake-up or after a
    /// batch smaller than [`WorkerConfig::lease_batch`], so that one lease and one
    /// acknowledgement cover many rows instead of one each.
    pub gather: Duration,
    /// The delay before a queue-level retry when the destination gave no `Retry-After`, by the
    /// number of failed attempts so far.
    pub backoff: Backoff,
    /// The runtime whose blocking pool runs the queue calls; `None` for the worker's own.
    ///
    /// `serve` runs workers at a lower thread priority but passes its intake runtime here: a
    /// queue transaction holds the write connection that every enqueue needs, and a
    /// low-priority thread preempted while holding it would stall intake behind it.
    pub queue_calls: Option<tokio::runtime::Handle>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            lease_batch: 64,
            idle_poll: Duration::from_millis(500),
            gather: Duration::from_millis(5),
            backoff: Backoff::new(Duration::from_secs(5), Duration::from_secs(600)),
            queue_calls: None,
        }
    }
}

/// What became of one leased row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowOutcome {
    /// Every request was delivered.
    Delivered,
    /// No mapping's trigger matched, so there was nothing to send.
    NoTrigger,
    /// The event's `integrations` switched this instance off.
    Filtered,
    /// A retryable failure; retry no earlier than the given delay (the destination's
    /// `Retry-After`), else after the worker's backoff.
    Retry {
        /// Why the attempt failed.
        reason: String,
        /// The destination's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// A final failure: validation, a non-retryable status, or an unreadable stored event.
    Dead {
        /// Why, for the DLQ.
        reason: String,
    },
}

impl RowOutcome {
    /// The metric label of this outcome.
    fn label(&self) -> &'static str {
        match self {
            RowOutcome::Delivered => "delivered",
            RowOutcome::NoTrigger => "skipped",
            RowOutcome::Filtered => "filtered",
            RowOutcome::Retry { .. } => "retried",
            RowOutcome::Dead { .. } => "dead_lettered",
        }
    }
}

/// The `integrations` key that switches `target` on or off for `event`: the instance's name when
/// the event names it, else the destination's display name (Segment's key, for example
/// `Userpilot Cloud (Actions)`); with neither, `All` decides.
fn integrations_key<'a>(event: &Value, target: &'a Target) -> &'a str {
    let names_instance = event
        .get("integrations")
        .and_then(Value::as_object)
        .is_some_and(|map| map.contains_key(&target.name));
    if names_instance {
        &target.name
    } else {
        target.instance.destination().def.name
    }
}

/// Delivers one stored event to one target and says what should become of its row; each request
/// sent is counted and timed in `metrics`.
pub async fn deliver_payload(
    target: &Target,
    batcher: &Batcher,
    payload: &[u8],
    metrics: &MetricsRegistry,
) -> RowOutcome {
    let Planned {
        requests,
        batched,
        invalid,
    } = match plan_payload(target, payload) {
        Ok(planned) => planned,
        Err(outcome) => return outcome,
    };
    let mut sent = Vec::with_capacity(requests.len() + batched.len());
    for (action, item) in batched {
        let action = action.unwrap_or("?");
        let result = batcher.submit(item).await;
        let labels = [("destination", target.name.as_str()), ("action", action)];
        let verdict = verdict_label(result.outcome.verdict);
        metrics
            .counter(
                DELIVERY_BATCH_ENTRIES_TOTAL,
                &[labels[0], labels[1], ("outcome", verdict)],
            )
            .increment(1);
        if let Some(id) = &result.response_id {
            tracing::debug!(
                destination = %target.name,
                action,
                response_id = %id,
                batch_len = result.batch_len,
                "Entry delivered in a batch."
            );
        }
        sent.push((action, result.outcome));
    }
    for (action, request) in &requests {
        let action = action.unwrap_or("?");
        let outcome = target.client.send(request).await;
        let labels = [("destination", target.name.as_str()), ("action", action)];
        metrics
            .histogram(DELIVERY_REQUEST_DURATION, &labels)
            .record(outcome.elapsed.as_secs_f64());
        let verdict = verdict_label(outcome.verdict);
        metrics
            .counter(
                DELIVERY_REQUESTS_TOTAL,
                &[labels[0], labels[1], ("outcome", verdict)],
            )
            .increment(1);
        sent.push((action, outcome));
    }
    decide(invalid, &sent)
}

/// The metric label of a request's verdict.
fn verdict_label(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Delivered => "delivered",
        Verdict::Failed => "failed",
        Verdict::RetriesExhausted => "retries_exhausted",
    }
}

/// What one event makes for a target: requests and batch entries, each with the key of the
/// action that built it, and the mappings that rejected the event.
struct Planned {
    requests: Vec<(Option<&'static str>, Request)>,
    batched: Vec<(Option<&'static str>, BatchItem)>,
    invalid: Vec<String>,
}

/// The requests an event makes for `target` and the mappings that rejected it, or the row's
/// outcome when nothing is to be sent (an unreadable event, switched off, no trigger matched).
fn plan_payload(target: &Target, payload: &[u8]) -> Result<Planned, RowOutcome> {
    let event: Value = match serde_json::from_slice(payload) {
        Ok(event @ Value::Object(_)) => event,
        Ok(_) => {
            return Err(RowOutcome::Dead {
                reason: "stored event is not a JSON object".to_owned(),
            });
        }
        Err(err) => {
            return Err(RowOutcome::Dead {
                reason: format!("stored event is not valid JSON: {err}"),
            });
        }
    };
    if !is_enabled_for(&event, integrations_key(&event, target)) {
        return Err(RowOutcome::Filtered);
    }
    let mut requests = Vec::new();
    let mut batched = Vec::new();
    let mut invalid = Vec::new();
    for outcome in target.instance.dispatch(&event) {
        match outcome.outcome {
            Outcome::Request(request) => requests.push((outcome.action_key, request)),
            Outcome::Batch(item) => batched.push((outcome.action_key, item)),
            Outcome::Invalid { name, message, .. } => {
                let action = outcome.action_key.unwrap_or("?");
                invalid.push(format!("{action}: {name}: {message}"));
            }
            Outcome::Skipped { .. } => {}
        }
    }
    if requests.is_empty() && batched.is_empty() && invalid.is_empty() {
        return Err(RowOutcome::NoTrigger);
    }
    Ok(Planned {
        requests,
        batched,
        invalid,
    })
}

/// What becomes of a row given the mappings that rejected its event (`invalid`, final) and the
/// final outcome of every request sent for it, by action key.
///
/// Any request whose retries ran out makes the row retry (at the longest `Retry-After` any of
/// them gave), keeping every reason; otherwise any final failure dead-letters it; otherwise it
/// was delivered.
fn decide(invalid: Vec<String>, sent: &[(&str, FinalOutcome)]) -> RowOutcome {
    let mut retry: Option<(String, Option<Duration>)> = None;
    let mut failed = invalid;
    for (action, outcome) in sent {
        let reason = || {
            let status = outcome
                .status
                .map_or_else(|| "no response".to_owned(), |s| s.to_string());
            let why = outcome.reason.as_deref().unwrap_or("unknown reason");
            format!("{action}: {status}: {why}")
        };
        match outcome.verdict {
            Verdict::Delivered => {}
            Verdict::Failed => failed.push(reason()),
            Verdict::RetriesExhausted => {
                let after = match (&retry, outcome.retry_after) {
                    (Some((_, Some(prev))), Some(now)) => Some((*prev).max(now)),
                    (Some((_, prev)), now) => now.or(*prev),
                    (None, now) => now,
                };
                let text = match retry.take() {
                    Some((prev, _)) => format!("{prev}; {}", reason()),
                    None => reason(),
                };
                retry = Some((text, after));
            }
        }
    }
    match retry {
        Some((reason, retry_after)) => {
            // A final failure next to a retryable one is kept in the reason: the retry decides
            // whether the row ends in the DLQ.
            let reason = if failed.is_empty() {
                reason
            } else {
                format!("{reason}; {}", failed.join("; "))
            };
            RowOutcome::Retry {
                reason,
                retry_after,
            }
        }
        None if failed.is_empty() => RowOutcome::Delivered,
        None => RowOutcome::Dead {
            reason: failed.join("; "),
        },
    }
}

/// How long a leased row may take before its delivery is cut off: until its lease runs out,
/// less a tenth of the lease duration for writing the outcome.
///
/// Without this bound a delivery that outlives its lease (slow retries, a stalling
/// destination, a long `Retry-After`) would find its lease reclaimed when it finishes: the
/// outcome would be discarded, the row handed out again at once without backoff and without
/// counting the attempt, and it could loop like that forever instead of reaching the DLQ.
fn delivery_deadline(
    lease_until: SystemTime,
    lease_duration: Duration,
    now: SystemTime,
) -> Duration {
    lease_until
        .duration_since(now)
        .unwrap_or(Duration::ZERO)
        .saturating_sub(lease_duration / 10)
}

/// The outcome of a delivery cut off by [`delivery_deadline`]: a retry with the backoff (the
/// destination's `Retry-After`, if any, was not seen).
fn cut_off(allowed: Duration) -> RowOutcome {
    RowOutcome::Retry {
        reason: format!(
            "delivery did not finish within {}ms, before its lease ran out; cut off",
            allowed.as_millis()
        ),
        retry_after: None,
    }
}

/// Runs a blocking queue call on the blocking thread pool of `on` (the current runtime's when
/// `None`).
async fn blocking<T: Send + 'static>(
    on: Option<&tokio::runtime::Handle>,
    f: impl FnOnce() -> Result<T, QueueError> + Send + 'static,
) -> Result<T, QueueError> {
    let task = match on {
        Some(handle) => handle.spawn_blocking(f),
        None => tokio::task::spawn_blocking(f),
    };
    match task.await {
        Ok(res) => res,
        Err(err) => Err(QueueError::Io {
            context: "running a queue call",
            source: std::io::Error::other(err.to_string()),
        }),
    }
}

/// Runs the worker of one target until `shutdown` turns true; the batch in hand is finished
/// first.
pub async fn run(
    queue: Queue,
    target: Arc<Target>,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
    config: WorkerConfig,
    metrics: MetricsRegistry,
) {
    let name = target.name.clone();
    tracing::info!(destination = %name, "Delivery worker started.");
    let batcher = Batcher::spawn(Arc::clone(&target.instance), Arc::clone(&target.client));
    // Leased rows wait for their batches, so a lease must be large enough to fill one.
    let lease_batch = config.lease_batch.max(batch_room(&target));
    loop {
        if *shutdown.borrow() {
            break;
        }
        let leases = {
            let queue = queue.clone();
            let name = name.clone();
            let n = lease_batch;
            blocking(config.queue_calls.as_ref(), move || {
                queue.lease(&name, n, SystemTime::now())
            })
            .await
        };
        let leases = match leases {
            Ok(leases) => leases,
            Err(err) => {
                tracing::error!(destination = %name, error = %err, "Leasing from the queue failed.");
                Vec::new()
            }
        };
        if leases.is_empty() {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(config.idle_poll) => {}
                _ = shutdown.changed() => {}
            }
            gather(&config, &mut shutdown).await;
            continue;
        }
        let partial = leases.len() < lease_batch;
        process_batch(&queue, &target, &batcher, leases, &config, &metrics).await;
        if partial {
            gather(&config, &mut shutdown).await;
        }
    }
    tracing::info!(destination = %name, "Delivery worker stopped.");
}

/// The most rows a worker leases at once to fill batches, whatever the largest batch.
const MAX_BATCH_LEASE: usize = 2_000;

/// How many rows a worker of `target` should lease at once so that its largest batch can fill.
fn batch_room(target: &Target) -> usize {
    target
        .instance
        .destination()
        .actions
        .iter()
        .filter_map(|action| action.batch.as_ref().map(|batch| batch.def.max_items))
        .max()
        .unwrap_or(0)
        .min(MAX_BATCH_LEASE)
}

/// Waits [`WorkerConfig::gather`] (cut short by shutdown) so that events arriving meanwhile are
/// leased and acknowledged together.
async fn gather(config: &WorkerConfig, shutdown: &mut watch::Receiver<bool>) {
    if config.gather.is_zero() || *shutdown.borrow() {
        return;
    }
    tokio::select! {
        _ = tokio::time::sleep(config.gather) => {}
        _ = shutdown.changed() => {}
    }
}

/// Delivers a leased batch concurrently and records every outcome.
async fn process_batch(
    queue: &Queue,
    target: &Arc<Target>,
    batcher: &Batcher,
    leases: Vec<Lease>,
    config: &WorkerConfig,
    metrics: &MetricsRegistry,
) {
    let mut tasks = tokio::task::JoinSet::new();
    let lease_duration = queue.config().lease_duration;
    for lease in leases {
        let target = Arc::clone(target);
        let batcher = batcher.clone();
        let metrics = metrics.clone();
        let allowed = delivery_deadline(lease.lease_until, lease_duration, SystemTime::now());
        tasks.spawn(async move {
            let delivery = deliver_payload(&target, &batcher, &lease.payload, &metrics);
            let outcome = match tokio::time::timeout(allowed, delivery).await {
                Ok(outcome) => outcome,
                Err(_) => cut_off(allowed),
            };
            (lease, outcome)
        });
    }
    let mut acks: Vec<LeaseId> = Vec::new();
    let mut others: Vec<(Lease, RowOutcome)> = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let Ok((lease, outcome)) = done else {
            // A panicked delivery leaves its row in flight; the lease expiry brings it back.
            tracing::error!(destination = %target.name, "A delivery task failed.");
            continue;
        };
        metrics
            .counter(
                DELIVERIES_TOTAL,
                &[
                    ("destination", target.name.as_str()),
                    ("outcome", outcome.label()),
                ],
            )
            .increment(1);
        if outcome == RowOutcome::Delivered {
            let age = SystemTime::now()
                .duration_since(lease.enqueued_at)
                .unwrap_or_default();
            metrics
                .histogram(DELIVERY_EVENT_AGE, &[("destination", target.name.as_str())])
                .record(age.as_secs_f64());
        }
        match outcome {
            RowOutcome::Delivered | RowOutcome::NoTrigger | RowOutcome::Filtered => {
                tracing::debug!(
                    destination = %target.name,
                    message_id = %lease.message_id,
                    outcome = outcome.label(),
                    "Event done."
                );
                acks.push(lease.id);
            }
            other => others.push((lease, other)),
        }
    }
    if !acks.is_empty() {
        let queue = queue.clone();
        if let Err(err) = blocking(config.queue_calls.as_ref(), move || {
            queue.ack_delivered(&acks)
        })
        .await
        {
            tracing::error!(destination = %target.name, error = %err, "Acknowledging deliveries failed.");
        }
    }
    for (lease, outcome) in others {
        record_failure(queue, target, lease, outcome, config).await;
    }
}

/// Schedules a retry of, or dead-letters, one row.
async fn record_failure(
    queue: &Queue,
    target: &Target,
    lease: Lease,
    outcome: RowOutcome,
    config: &WorkerConfig,
) {
    let now = SystemTime::now();
    let message_id = lease.message_id.clone();
    let queue = queue.clone();
    match outcome {
        RowOutcome::Retry {
            reason,
            retry_after,
        } => {
            let delay = retry_after.unwrap_or_else(|| config.backoff.delay(lease.attempts));
            let when = now.checked_add(delay).unwrap_or(now);
            let attempts = lease.attempts + 1;
            let res = {
                let reason = reason.clone();
                blocking(config.queue_calls.as_ref(), move || {
                    queue.schedule_retry(&lease, when, &reason, now)
                })
                .await
            };
            match res {
                Ok(RetryOutcome::RetryScheduled) => tracing::warn!(
                    destination = %target.name,
                    message_id = %message_id,
                    attempts,
                    retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    reason = %reason,
                    "Delivery failed; retry scheduled."
                ),
                Ok(RetryOutcome::DeadLettered) => tracing::warn!(
                    destination = %target.name,
                    message_id = %message_id,
                    attempts,
                    reason = %reason,
                    "Delivery failed past the maximum age; dead-lettered."
                ),
                Ok(RetryOutcome::LeaseLost) => tracing::warn!(
                    destination = %target.name,
                    message_id = %message_id,
                    "The lease ran out before the outcome was recorded; the event will be delivered again."
                ),
                Err(err) => tracing::error!(
                    destination = %target.name,
                    message_id = %message_id,
                    error = %err,
                    "Scheduling a retry failed."
                ),
            }
        }
        RowOutcome::Dead { reason } => {
            let id = lease.id;
            let res = {
                let reason = reason.clone();
                blocking(config.queue_calls.as_ref(), move || {
                    queue.dead_letter(id, &reason, now)
                })
                .await
            };
            match res {
                Ok(true) => tracing::warn!(
                    destination = %target.name,
                    message_id = %message_id,
                    reason = %reason,
                    "Delivery failed for good; dead-lettered."
                ),
                Ok(false) => tracing::warn!(
                    destination = %target.name,
                    message_id = %message_id,
                    "The lease ran out before the outcome was recorded; the event will be delivered again."
                ),
                Err(err) => tracing::error!(
                    destination = %target.name,
                    message_id = %message_id,
                    error = %err,
                    "Dead-lettering failed."
                ),
            }
        }
        RowOutcome::Delivered | RowOutcome::NoTrigger | RowOutcome::Filtered => {}
    }
}

/// Returns expired leases of every destination to pending every `every`, until `shutdown`.
pub async fn run_reclaimer(queue: Queue, every: Duration, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        let queue = queue.clone();
        match blocking(None, move || queue.reclaim_expired(SystemTime::now())).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "Returned expired leases to pending."),
            Err(err) => tracing::error!(error = %err, "Reclaiming expired leases failed."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setup::{TargetArgs, embedded_default};
    use actionkit_queue::{DeliveryState, NewEvent, QueueConfig};
    use serde_json::json;

    /// The embedded Userpilot target delivering to `endpoint` with `timeout_secs` per attempt
    /// and a single attempt per request.
    fn target(endpoint: &str, timeout_secs: f64) -> Target {
        let args = TargetArgs {
            settings: vec!["apiKey=unit-test-key".to_owned()],
            timeout: timeout_secs,
            max_attempts: 1,
            concurrency: 4,
            no_rate_limits: true,
            backoff_base: 0.01,
            backoff_cap: 0.01,
            max_retry_after: 60.0,
            max_elapsed: 120.0,
        };
        embedded_default(&args, Some(endpoint)).expect("the embedded target builds")
    }

    /// A target whose endpoint nobody listens on; the tests using it never send.
    fn offline() -> Target {
        target("http://127.0.0.1:9/", 1.0)
    }

    fn final_outcome(verdict: Verdict, status: Option<u16>, after: Option<u64>) -> FinalOutcome {
        FinalOutcome {
            verdict,
            attempts: 1,
            status,
            reason: (verdict != Verdict::Delivered).then(|| "why".to_owned()),
            body: None,
            retry_after: after.map(Duration::from_secs),
            elapsed: Duration::ZERO,
            log: Vec::new(),
        }
    }

    fn planned_actions(target: &Target, event: &Value) -> Result<Vec<&'static str>, RowOutcome> {
        plan_payload(target, event.to_string().as_bytes()).map(|planned| {
            planned
                .requests
                .iter()
                .map(|(action, _)| action.unwrap_or("?"))
                .collect()
        })
    }

    #[test]
    fn integrations_switch_by_instance_name_else_display_name_else_all() {
        let target = offline();
        assert_eq!(target.name, "userpilot");
        let track = |integrations: Value| json!({"type": "track", "userId": "u1", "event": "E", "integrations": integrations});
        // `All: false` switches everything off.
        assert_eq!(
            planned_actions(&target, &track(json!({"All": false}))),
            Err(RowOutcome::Filtered)
        );
        // The destination's display name (Segment's key) overrides `All`.
        let display = json!({"All": false, "Userpilot Cloud (Actions)": true});
        assert_eq!(
            planned_actions(&target, &track(display)),
            Ok(vec!["trackEvent"])
        );
        assert_eq!(
            planned_actions(&target, &track(json!({"Userpilot Cloud (Actions)": false}))),
            Err(RowOutcome::Filtered)
        );
        // The instance's own name wins over the display name, both ways.
        let by_name = json!({"userpilot": true, "Userpilot Cloud (Actions)": false, "All": false});
        assert_eq!(
            planned_actions(&target, &track(by_name)),
            Ok(vec!["trackEvent"])
        );
        let by_name = json!({"userpilot": false, "Userpilot Cloud (Actions)": true});
        assert_eq!(
            planned_actions(&target, &track(by_name)),
            Err(RowOutcome::Filtered)
        );
        // Another destination's switch changes nothing.
        assert_eq!(
            planned_actions(&target, &track(json!({"Amplitude": false}))),
            Ok(vec!["trackEvent"])
        );
    }

    #[tokio::test]
    async fn unreadable_unmatched_and_invalid_events_never_reach_the_network() {
        let target = offline();
        let dead = |outcome: RowOutcome, needle: &str| match outcome {
            RowOutcome::Dead { reason } => assert!(reason.contains(needle), "{reason}"),
            other => panic!("expected a dead letter, got {other:?}"),
        };
        let metrics = MetricsRegistry::new();
        let batcher = Batcher::spawn(Arc::clone(&target.instance), Arc::clone(&target.client));
        dead(
            deliver_payload(&target, &batcher, b"{not json", &metrics).await,
            "stored event is not valid JSON",
        );
        dead(
            deliver_payload(&target, &batcher, b"[1, 2]", &metrics).await,
            "stored event is not a JSON object",
        );
        let alias = json!({"type": "alias", "userId": "u1", "previousId": "u0"});
        assert_eq!(
            deliver_payload(&target, &batcher, alias.to_string().as_bytes(), &metrics).await,
            RowOutcome::NoTrigger
        );
        // An identify with no user id fails the mapping's validation: final, with the reason.
        let nobody = json!({"type": "identify", "traits": {"plan": "pro"}});
        dead(
            deliver_payload(&target, &batcher, nobody.to_string().as_bytes(), &metrics).await,
            "identifyUser",
        );
    }

    #[test]
    fn outcomes_decide_the_row() {
        use Verdict::{Delivered, Failed, RetriesExhausted};
        assert_eq!(
            decide(
                Vec::new(),
                &[("a", final_outcome(Delivered, Some(202), None))]
            ),
            RowOutcome::Delivered
        );
        assert_eq!(
            decide(
                Vec::new(),
                &[
                    ("a", final_outcome(Delivered, Some(202), None)),
                    ("b", final_outcome(Failed, Some(400), None)),
                ]
            ),
            RowOutcome::Dead {
                reason: "b: 400: why".to_owned()
            }
        );
        // A retryable failure wins over a final one, keeps both reasons and the longest
        // Retry-After of the retryable ones.
        assert_eq!(
            decide(
                vec!["c: PayloadValidationError: bad".to_owned()],
                &[
                    ("a", final_outcome(RetriesExhausted, Some(429), Some(3))),
                    ("b", final_outcome(RetriesExhausted, None, None)),
                    ("d", final_outcome(RetriesExhausted, Some(503), Some(7))),
                    ("e", final_outcome(Failed, Some(404), None)),
                ]
            ),
            RowOutcome::Retry {
                reason: "a: 429: why; b: no response: why; d: 503: why; \
                         c: PayloadValidationError: bad; e: 404: why"
                    .to_owned(),
                retry_after: Some(Duration::from_secs(7)),
            }
        );
        assert_eq!(
            decide(
                Vec::new(),
                &[("a", final_outcome(RetriesExhausted, Some(503), None))]
            ),
            RowOutcome::Retry {
                reason: "a: 503: why".to_owned(),
                retry_after: None,
            }
        );
        // Only rejected by a mapping: final.
        assert_eq!(
            decide(vec!["c: PayloadValidationError: bad".to_owned()], &[]),
            RowOutcome::Dead {
                reason: "c: PayloadValidationError: bad".to_owned()
            }
        );
    }

    #[test]
    fn the_deadline_leaves_a_tenth_of_the_lease_for_the_outcome() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let lease = Duration::from_secs(60);
        assert_eq!(
            delivery_deadline(now + lease, lease, now),
            Duration::from_secs(54)
        );
        assert_eq!(
            delivery_deadline(now + Duration::from_secs(3), lease, now),
            Duration::ZERO
        );
        assert_eq!(
            delivery_deadline(now - Duration::from_secs(1), lease, now),
            Duration::ZERO
        );
    }

    /// Regression: a delivery that outlived its lease found it reclaimed when it finished, so its
    /// outcome was dropped (`LeaseLost`) and the row went back to pending without the attempt
    /// being counted; a destination slower than the lease kept the row looping forever, never
    /// dead-lettered and retried without backoff. Now the delivery is cut off before the lease
    /// runs out and recorded as a retry.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_delivery_slower_than_its_lease_is_recorded_as_a_retry_before_the_lease_runs_out() {
        let mock = actionkit_mock_userpilot::spawn(actionkit_mock_userpilot::MockConfig {
            faults: actionkit_mock_userpilot::FaultConfig {
                latency: Some(actionkit_mock_userpilot::Latency::fixed(
                    Duration::from_secs(3),
                )),
                ..actionkit_mock_userpilot::FaultConfig::default()
            },
            ..actionkit_mock_userpilot::MockConfig::default()
        })
        .await
        .expect("the mock starts");
        let target = Arc::new(target(&mock.base_url(), 10.0));
        let dir = tempfile::tempdir().expect("a temp dir");
        let queue = Queue::open(
            dir.path().join("q.sqlite"),
            QueueConfig {
                lease_duration: Duration::from_secs(1),
                ..QueueConfig::default()
            },
        )
        .expect("the queue opens");
        let event = json!({"type": "track", "userId": "u1", "event": "Slow", "messageId": "m1"});
        let ids = queue
            .enqueue(
                vec![NewEvent::new("m1", event.to_string().into_bytes())],
                &["userpilot".to_owned()],
            )
            .expect("enqueued");
        let leases = queue
            .lease("userpilot", 10, SystemTime::now())
            .expect("leased");
        assert_eq!(leases.len(), 1);
        // The reclaimer of `serve` returns expired leases to pending meanwhile.
        let reclaimer = {
            let queue = queue.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(1_500)).await;
                queue.reclaim_expired(SystemTime::now())
            })
        };
        let config = WorkerConfig {
            backoff: Backoff::new(Duration::from_secs(30), Duration::from_secs(30)),
            ..WorkerConfig::default()
        };
        let batcher = Batcher::spawn(Arc::clone(&target.instance), Arc::clone(&target.client));
        process_batch(
            &queue,
            &target,
            &batcher,
            leases,
            &config,
            &MetricsRegistry::new(),
        )
        .await;
        let reclaimed = reclaimer
            .await
            .expect("the reclaimer runs")
            .expect("reclaimed");
        assert_eq!(
            reclaimed, 0,
            "the lease ran out before the outcome was written"
        );
        let rows = queue.deliveries(ids[0]).expect("the delivery is stored");
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0].state,
            DeliveryState::RetryScheduled,
            "{:?}",
            rows[0]
        );
        assert_eq!(rows[0].attempts, 1);
        let error = rows[0].last_error.as_deref().unwrap_or_default();
        assert!(error.contains("before its lease ran out"), "{error}");
    }
}
