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
//! Rows whose outcome cannot be written (the queue failed) stay in flight and come back after
//! their lease runs out, so the failure costs a duplicate, never a loss.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actionkit_intake::{MetricsRegistry, is_enabled_for};
use actionkit_queue::{Lease, LeaseId, Queue, QueueError, RetryOutcome};
use actionkit_runtime::delivery::{Backoff, Verdict};
use actionkit_runtime::dispatch::Outcome;
use serde_json::Value;
use tokio::sync::{Notify, watch};

use crate::setup::Target;

/// The name of the counter of delivery outcomes, labelled by `destination` and `outcome`.
pub const DELIVERIES_TOTAL: &str = "actionkit_deliveries_total";

/// How a worker paces itself.
#[derive(Debug)]
pub struct WorkerConfig {
    /// Most rows leased at once.
    pub lease_batch: usize,
    /// How long an idle worker sleeps when it is not woken by new events.
    pub idle_poll: Duration,
    /// The delay before a queue-level retry when the destination gave no `Retry-After`, by the
    /// number of failed attempts so far.
    pub backoff: Backoff,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            lease_batch: 64,
            idle_poll: Duration::from_millis(500),
            backoff: Backoff::new(Duration::from_secs(5), Duration::from_secs(600)),
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

/// Delivers one stored event to one target and says what should become of its row.
pub async fn deliver_payload(target: &Target, payload: &[u8]) -> RowOutcome {
    let event: Value = match serde_json::from_slice(payload) {
        Ok(event @ Value::Object(_)) => event,
        Ok(_) => {
            return RowOutcome::Dead {
                reason: "stored event is not a JSON object".to_owned(),
            };
        }
        Err(err) => {
            return RowOutcome::Dead {
                reason: format!("stored event is not valid JSON: {err}"),
            };
        }
    };
    if !is_enabled_for(&event, integrations_key(&event, target)) {
        return RowOutcome::Filtered;
    }
    let mut requests = Vec::new();
    let mut invalid = Vec::new();
    for outcome in target.instance.dispatch(&event) {
        match outcome.outcome {
            Outcome::Request(request) => requests.push((outcome.action_key, request)),
            Outcome::Invalid { name, message, .. } => {
                let action = outcome.action_key.unwrap_or("?");
                invalid.push(format!("{action}: {name}: {message}"));
            }
            Outcome::Skipped { .. } => {}
        }
    }
    if requests.is_empty() && invalid.is_empty() {
        return RowOutcome::NoTrigger;
    }
    let mut retry: Option<(String, Option<Duration>)> = None;
    let mut failed = invalid;
    for (action, request) in &requests {
        let action = action.unwrap_or("?");
        let outcome = target.client.send(request).await;
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

/// Runs a blocking queue call on the blocking thread pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, QueueError> + Send + 'static,
) -> Result<T, QueueError> {
    match tokio::task::spawn_blocking(f).await {
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
    loop {
        if *shutdown.borrow() {
            break;
        }
        let leases = {
            let queue = queue.clone();
            let name = name.clone();
            let n = config.lease_batch;
            blocking(move || queue.lease(&name, n, SystemTime::now())).await
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
            continue;
        }
        process_batch(&queue, &target, leases, &config, &metrics).await;
    }
    tracing::info!(destination = %name, "Delivery worker stopped.");
}

/// Delivers a leased batch concurrently and records every outcome.
async fn process_batch(
    queue: &Queue,
    target: &Arc<Target>,
    leases: Vec<Lease>,
    config: &WorkerConfig,
    metrics: &MetricsRegistry,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for lease in leases {
        let target = Arc::clone(target);
        tasks.spawn(async move {
            let outcome = deliver_payload(&target, &lease.payload).await;
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
        if let Err(err) = blocking(move || queue.ack_delivered(&acks)).await {
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
                blocking(move || queue.schedule_retry(&lease, when, &reason, now)).await
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
                blocking(move || queue.dead_letter(id, &reason, now)).await
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
        match blocking(move || queue.reclaim_expired(SystemTime::now())).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "Returned expired leases to pending."),
            Err(err) => tracing::error!(error = %err, "Reclaiming expired leases failed."),
        }
    }
}
