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
//!   `now + backoff` ([`EventQueue::schedule`] dead-letters it instead once the maximum age is
//!   past). A retry dispatches and sends the whole event again, so requests that were delivered
//!   in the failed round are sent a second time (with the same `messageId`);
//! * otherwise, when a request failed for good or a mapping rejected the event (validation), the
//!   row is dead-lettered with the reasons.
//!
//! A row's delivery is cut off shortly before its lease runs out and then counts as a retryable
//! failure, so its outcome is always written while the lease is still the worker's (see
//! `delivery_deadline`). Rows whose outcome cannot be written (the queue failed) stay in flight
//! and come back after their lease runs out, so the failure costs a duplicate, never a loss.
//!
//! Workers use [`EventQueue`] and do not know whether the queue is an SQLite file or a
//! JetStream shared with other nodes (see the `store` module). When the console is on, each
//! worker also adds what a batch came to, per event and per action, to its instance's
//! [`Recorder`] (one lock per batch; see the `activity` module).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actionkit_intake::{MetricsRegistry, is_enabled_for};
use actionkit_queue::{FingerprintPart, RetryOutcome};
use actionkit_runtime::batch::{Batcher, ItemResult};
use actionkit_runtime::changes::{Fingerprint, Known};
use actionkit_runtime::delivery::{Backoff, FinalOutcome, Outcome as Attempt, Verdict};
use actionkit_runtime::dispatch::{BatchItem, Outcome};
use actionkit_runtime::request::Request;
use actionkit_runtime::units::{self, Unit, Work};
use serde_json::Value;
use tokio::sync::{Notify, watch};

use crate::activity::{BatchTally, FailureNote, Fate, Recorder};
use crate::setup::Target;
use crate::store::{EventQueue, Leased};

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
/// Requests not sent because they would change nothing delivered before, labelled by
/// `destination` and `action` (actions whose API merges by id, with `send_only_changes` on).
pub const DELIVERY_SKIPPED_UNCHANGED_TOTAL: &str = "actionkit_delivery_skipped_unchanged_total";
/// Requests saved by coalescing: events whose request for a record was merged into another
/// event's request for the same record, labelled by `destination` and `action`.
pub const DELIVERY_COALESCED_TOTAL: &str = "actionkit_delivery_coalesced_total";
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
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            lease_batch: 64,
            idle_poll: Duration::from_millis(500),
            gather: Duration::from_millis(5),
            backoff: Backoff::new(Duration::from_secs(5), Duration::from_secs(600)),
        }
    }
}

/// What became of one leased row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowOutcome {
    /// Every request was delivered.
    Delivered,
    /// Every request would have changed nothing delivered before, so none was sent.
    Unchanged,
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
        /// Every failure was the destination being busy (its `busy_statuses`): the row waits
        /// again without counting an attempt.
        busy: bool,
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
            RowOutcome::Unchanged => "skipped_unchanged",
            RowOutcome::NoTrigger => "skipped",
            RowOutcome::Filtered => "filtered",
            RowOutcome::Retry { .. } => "retried",
            RowOutcome::Dead { .. } => "dead_lettered",
        }
    }
}

/// What became of one action's part of a row: its requests (and batch entries) for the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionPart {
    /// The action's key.
    pub action: &'static str,
    /// How its part ended.
    pub result: PartResult,
    /// The destination's status of the failed request, when one answered.
    pub status: Option<u16>,
    /// Why it failed, as the row's reason words it without the action's key.
    pub reason: Option<String>,
}

/// How one action's part of a row ended; a row whose requests for one action ended
/// differently counts the worst (failed, then delivered, then unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PartResult {
    /// Not sent: it would have changed nothing.
    Unchanged,
    /// Sent and accepted.
    Delivered,
    /// A request failed (retryably or for good), was cut off, or the mapping rejected the
    /// event: the part shares the row's fate.
    Failed,
}

/// Adds `part` to a row's `parts`, one per action, keeping the worst result and the first
/// failure's status and reason.
fn add_part(parts: &mut Vec<ActionPart>, part: ActionPart) {
    match parts.iter_mut().find(|p| p.action == part.action) {
        Some(known) if part.result > known.result => *known = part,
        Some(_) => {}
        None => parts.push(part),
    }
}

/// A row's outcome with each action's part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowResult {
    /// What should become of the row.
    pub outcome: RowOutcome,
    /// Each action's part, once per action; empty when the event reached no action.
    pub parts: Vec<ActionPart>,
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

/// Delivers one stored event to one target and says what should become of its row (see
/// [`deliver_rows`]; a lone event has nothing to coalesce with and skips nothing).
#[cfg(test)]
pub async fn deliver_payload(
    target: &Arc<Target>,
    batcher: &Batcher,
    payload: &[u8],
    metrics: &MetricsRegistry,
) -> RowOutcome {
    let mut outcomes =
        deliver_rows(target, batcher, &Changes::Off, &[payload], None, metrics).await;
    outcomes
        .pop()
        .map_or(RowOutcome::NoTrigger, |row| row.outcome)
}

/// Where a worker keeps what was delivered to each record, for skipping unchanged requests.
pub enum Changes {
    /// Nothing is kept and nothing skipped.
    Off,
    /// The queue's store keeps it, under the target's name.
    Store(EventQueue),
}

impl Changes {
    /// What was delivered to the records `units` write, by record kind and id; a failure to
    /// read is logged and skips nothing.
    async fn known(
        &self,
        target: &Target,
        units: &[Unit],
    ) -> HashMap<(&'static str, String), Known> {
        let Changes::Store(queue) = self else {
            return HashMap::new();
        };
        let mut known = HashMap::new();
        for (record, ids) in units::wanted_records(units) {
            let read = queue.fingerprints(&target.name, record, ids).await;
            match read {
                Ok(found) => {
                    for (id, parts) in found {
                        let parts = parts.into_iter().map(|p| (p.part, p.hash));
                        known.insert((record, id), Known::from_parts(parts));
                    }
                }
                Err(err) => tracing::error!(
                    destination = %target.name,
                    error = %err,
                    "Reading what was delivered failed; sending without skipping."
                ),
            }
        }
        known
    }

    /// Records what the delivered `fingerprints` wrote; a failure is logged (it only costs
    /// resending later).
    async fn remember(&self, target: &Target, fingerprints: Vec<Fingerprint>) {
        let Changes::Store(queue) = self else {
            return;
        };
        let mut by_record: HashMap<&'static str, Vec<(String, Vec<FingerprintPart>)>> =
            HashMap::new();
        for fingerprint in fingerprints {
            let parts = fingerprint
                .parts
                .into_iter()
                .map(|(part, hash)| FingerprintPart { part, hash })
                .collect();
            by_record
                .entry(fingerprint.record)
                .or_default()
                .push((fingerprint.id, parts));
        }
        for (record, entries) in by_record {
            let written = queue
                .remember_fingerprints(&target.name, record, entries)
                .await;
            if let Err(err) = written {
                tracing::error!(
                    destination = %target.name,
                    error = %err,
                    "Recording what was delivered failed; those records will be sent again."
                );
            }
        }
    }
}

/// Delivers the stored events `payloads` to `target` together and says what should become of
/// each row, in order, with each action's part of it.
///
/// Every row is planned first; the requests of all rows become units ([`units::build_units`]:
/// requests for one record of an action whose API merges by id are coalesced into one), units
/// that would change nothing are skipped, and the rest are sent at once (batch entries through
/// `batcher`). A row is delivered when every unit it waits for was delivered or skipped. Units
/// still running after `deadline` are cut off and their rows retried.
pub async fn deliver_rows(
    target: &Arc<Target>,
    batcher: &Batcher,
    changes: &Changes,
    payloads: &[&[u8]],
    deadline: Option<Duration>,
    metrics: &MetricsRegistry,
) -> Vec<RowResult> {
    let started = tokio::time::Instant::now();
    let mut outcomes: Vec<Option<RowOutcome>> = vec![None; payloads.len()];
    let mut invalid: Vec<Vec<(&'static str, String)>> = vec![Vec::new(); payloads.len()];
    let mut planned_rows = Vec::with_capacity(payloads.len());
    for (row, payload) in payloads.iter().enumerate() {
        match plan_payload(target, payload) {
            Ok(planned) => {
                invalid[row] = planned.invalid;
                let mut works: Vec<(&'static str, Work)> = Vec::new();
                for (action, request) in planned.requests {
                    works.push((action.unwrap_or("?"), Work::Request(request)));
                }
                for (action, item) in planned.batched {
                    works.push((action.unwrap_or("?"), Work::Entry(item)));
                }
                planned_rows.push((row, works));
            }
            Err(outcome) => outcomes[row] = Some(outcome),
        }
    }
    let mut units = units::build_units(planned_rows, |action| target.merges(action));
    let labels = |action| [("destination", target.name.as_str()), ("action", action)];
    for unit in units.iter().filter(|unit| unit.rows.len() > 1) {
        metrics
            .counter(DELIVERY_COALESCED_TOTAL, &labels(unit.action))
            .increment((unit.rows.len() - 1) as u64);
    }
    let known = changes.known(target, &units).await;
    units::skip_unchanged(&mut units, &known);

    // Send every unit that changes something, each in its own task. Batch entries are handed
    // to the batcher first, in order, and flushed: no more rows arrive until these are done, so
    // waiting for batches to fill would only add latency.
    let mut entries: HashMap<usize, _> = HashMap::new();
    for (idx, unit) in units.iter().enumerate() {
        if let (false, Work::Entry(item)) = (unit.unchanged, &unit.work) {
            entries.insert(idx, batcher.enqueue(item.clone()));
        }
    }
    if !entries.is_empty() {
        batcher.flush();
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (idx, unit) in units.iter().enumerate() {
        if unit.unchanged {
            metrics
                .counter(DELIVERY_SKIPPED_UNCHANGED_TOTAL, &labels(unit.action))
                .increment(1);
            continue;
        }
        let target = Arc::clone(target);
        let metrics = metrics.clone();
        let action = unit.action;
        match (entries.remove(&idx), &unit.work) {
            (Some(result), _) => {
                tasks.spawn(async move {
                    let result = result.await;
                    (idx, entry_outcome(&target, action, result, &metrics))
                });
            }
            (None, Work::Request(request)) => {
                let request = request.clone();
                tasks.spawn(async move {
                    let outcome = send_request(&target, action, &request, &metrics).await;
                    (idx, outcome)
                });
            }
            // Every entry that changes something was enqueued above.
            (None, Work::Entry(_)) => {}
        }
    }
    let mut results: Vec<Option<FinalOutcome>> = vec![None; units.len()];
    loop {
        let next = match deadline {
            Some(allowed) => {
                match tokio::time::timeout_at(started + allowed, tasks.join_next()).await {
                    Ok(next) => next,
                    Err(_) => break,
                }
            }
            None => tasks.join_next().await,
        };
        let Some(done) = next else { break };
        match done {
            Ok((idx, outcome)) => results[idx] = Some(outcome),
            // A panicked unit leaves its rows without an outcome; they are cut off below.
            Err(err) => {
                tracing::error!(destination = %target.name, error = %err, "A delivery task failed.")
            }
        }
    }
    tasks.abort_all();

    let delivered: Vec<Fingerprint> = units
        .iter()
        .zip(&results)
        .filter(|(unit, result)| {
            !unit.unchanged && result.as_ref().is_some_and(FinalOutcome::is_delivered)
        })
        .filter_map(|(unit, _)| unit.fingerprint.clone())
        .collect();
    if !delivered.is_empty() {
        changes.remember(target, delivered).await;
    }

    // Each row's outcome from its units, and each action's part of it.
    let mut sent: Vec<Vec<(&'static str, FinalOutcome)>> = vec![Vec::new(); payloads.len()];
    let mut parts: Vec<Vec<ActionPart>> = vec![Vec::new(); payloads.len()];
    let mut waits: Vec<usize> = vec![0; payloads.len()];
    let mut skipped: Vec<usize> = vec![0; payloads.len()];
    let mut unfinished: Vec<bool> = vec![false; payloads.len()];
    for (unit, result) in units.iter().zip(results) {
        for &row in &unit.rows {
            waits[row] += 1;
            if unit.unchanged {
                skipped[row] += 1;
                add_part(&mut parts[row], part_of(unit.action, PartResult::Unchanged));
                continue;
            }
            match &result {
                Some(outcome) => {
                    add_part(&mut parts[row], sent_part(unit.action, outcome));
                    sent[row].push((unit.action, outcome.clone()));
                }
                None => {
                    unfinished[row] = true;
                    add_part(&mut parts[row], part_of(unit.action, PartResult::Failed));
                }
            }
        }
    }
    outcomes
        .into_iter()
        .enumerate()
        .map(|(row, outcome)| {
            let mut parts = std::mem::take(&mut parts[row]);
            let invalid = std::mem::take(&mut invalid[row]);
            for (action, reason) in &invalid {
                add_part(
                    &mut parts,
                    ActionPart {
                        reason: Some(reason.clone()),
                        ..part_of(action, PartResult::Failed)
                    },
                );
            }
            let outcome = if let Some(outcome) = outcome {
                outcome
            } else if unfinished[row] {
                let outcome = cut_off(deadline.unwrap_or_default());
                if let RowOutcome::Retry { reason, .. } = &outcome {
                    for part in parts.iter_mut().filter(|p| p.reason.is_none()) {
                        if part.result == PartResult::Failed {
                            part.reason = Some(reason.clone());
                        }
                    }
                }
                outcome
            } else if waits[row] > 0 && skipped[row] == waits[row] && invalid.is_empty() {
                RowOutcome::Unchanged
            } else {
                let invalid = invalid
                    .into_iter()
                    .map(|(action, reason)| format!("{action}: {reason}"))
                    .collect();
                decide(invalid, &sent[row])
            };
            RowResult { outcome, parts }
        })
        .collect()
}

/// An action's part with no status or reason (yet).
fn part_of(action: &'static str, result: PartResult) -> ActionPart {
    ActionPart {
        action,
        result,
        status: None,
        reason: None,
    }
}

/// An action's part as its sent request ended, with the status and the reason worded as in
/// the row's reason ([`decide`]).
fn sent_part(action: &'static str, outcome: &FinalOutcome) -> ActionPart {
    if outcome.is_delivered() {
        return part_of(action, PartResult::Delivered);
    }
    ActionPart {
        action,
        result: PartResult::Failed,
        status: outcome.status,
        reason: Some(failure_reason(outcome)),
    }
}

/// A failed request's reason: its status (or `no response`) and why.
fn failure_reason(outcome: &FinalOutcome) -> String {
    let status = outcome
        .status
        .map_or_else(|| "no response".to_owned(), |s| s.to_string());
    let why = outcome.reason.as_deref().unwrap_or("unknown reason");
    format!("{status}: {why}")
}

/// Counts and logs a settled batch entry; returns its outcome.
fn entry_outcome(
    target: &Target,
    action: &'static str,
    result: ItemResult,
    metrics: &MetricsRegistry,
) -> FinalOutcome {
    let verdict = verdict_label(result.outcome.verdict);
    metrics
        .counter(
            DELIVERY_BATCH_ENTRIES_TOTAL,
            &[
                ("destination", target.name.as_str()),
                ("action", action),
                ("outcome", verdict),
            ],
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
    result.outcome
}

/// Sends one request and counts and times it in `metrics`.
async fn send_request(
    target: &Target,
    action: &'static str,
    request: &Request,
    metrics: &MetricsRegistry,
) -> FinalOutcome {
    let labels = [("destination", target.name.as_str()), ("action", action)];
    let outcome = target.client.send(request).await;
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
    outcome
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
    /// The action's key and `<error name>: <message>`.
    invalid: Vec<(&'static str, String)>,
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
                invalid.push((action, format!("{name}: {message}")));
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
    let mut all_busy = true;
    let mut failed = invalid;
    for (action, outcome) in sent {
        let reason = || format!("{action}: {}", failure_reason(outcome));
        match outcome.verdict {
            Verdict::Delivered => {}
            Verdict::Failed => failed.push(reason()),
            Verdict::RetriesExhausted => {
                let busy = outcome
                    .log
                    .last()
                    .is_some_and(|attempt| matches!(attempt.outcome, Attempt::Busy { .. }));
                all_busy &= busy;
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
                busy: all_busy && failed.is_empty(),
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
        busy: false,
    }
}

/// How long a JetStream lease waits for the first event before an idle worker looks at its
/// shutdown signal again.
const LEASE_WAIT: Duration = Duration::from_millis(500);

/// Runs the worker of one target until `shutdown` turns true; the batch in hand is finished
/// first. What each batch came to is added to `recorder` when there is one (the console's
/// delivery overview).
pub async fn run(
    queue: EventQueue,
    target: Arc<Target>,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
    config: WorkerConfig,
    metrics: MetricsRegistry,
    recorder: Option<Recorder>,
) {
    let name = target.name.clone();
    tracing::info!(destination = %name, backend = queue.backend(), "Delivery worker started.");
    let batcher = Batcher::spawn(Arc::clone(&target.instance), Arc::clone(&target.client));
    // Leased rows wait for their batches, so a lease must be large enough to fill one.
    let lease_batch = config.lease_batch.max(batch_room(&target));
    // A store that cannot be reached is tried again after a pause that grows to a few seconds,
    // so that a worker neither spins nor floods the log while NATS is down.
    let mut failures: u32 = 0;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let leases = tokio::select! {
            leases = queue.lease(&name, lease_batch, LEASE_WAIT) => leases,
            _ = shutdown.changed() => continue,
        };
        let leases = match leases {
            Ok(leases) => {
                if failures > 0 {
                    tracing::info!(destination = %name, "Leasing from the queue works again.");
                }
                failures = 0;
                leases
            }
            Err(err) => {
                failures = failures.saturating_add(1);
                if failures == 1 || failures.is_power_of_two() {
                    tracing::error!(destination = %name, error = %err, failures, "Leasing from the queue failed; pausing.");
                }
                let pause = Duration::from_millis(250 * u64::from(failures.min(20)));
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
        };
        if leases.is_empty() {
            if !queue.lease_waits() {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(config.idle_poll) => {}
                    _ = shutdown.changed() => {}
                }
                gather(&config, &mut shutdown).await;
            }
            continue;
        }
        let partial = leases.len() < lease_batch;
        let batch = Batch {
            queue: &queue,
            target: &target,
            batcher: &batcher,
            config: &config,
            metrics: &metrics,
            recorder: recorder.as_ref(),
        };
        process_batch(batch, leases).await;
        if partial && !queue.lease_waits() {
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
        .largest_batch()
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

/// What a worker delivers a leased batch with.
struct Batch<'a> {
    queue: &'a EventQueue,
    target: &'a Arc<Target>,
    batcher: &'a Batcher,
    config: &'a WorkerConfig,
    metrics: &'a MetricsRegistry,
    /// Where what the batch came to is counted, when the console is on.
    recorder: Option<&'a Recorder>,
}

/// Delivers a leased batch concurrently and records every outcome.
async fn process_batch(batch: Batch<'_>, leases: Vec<Leased>) {
    let Batch {
        queue,
        target,
        batcher,
        config,
        metrics,
        recorder,
    } = batch;
    // Leases on JetStream are kept alive while the batch is delivered (and its outcomes
    // recorded); the guard stops that when this function returns.
    let _alive = queue.keep_alive(&leases);
    let lease_duration = queue.lease_duration();
    let now = SystemTime::now();
    // Rows leased together run out together; the earliest lease bounds them all.
    let allowed = leases
        .iter()
        .map(|lease| delivery_deadline(lease.lease_until(), lease_duration, now))
        .min()
        .unwrap_or_default();
    let changes = if target.send_only_changes {
        Changes::Store(queue.clone())
    } else {
        Changes::Off
    };
    let payloads: Vec<&[u8]> = leases.iter().map(Leased::payload).collect();
    let rows = deliver_rows(target, batcher, &changes, &payloads, Some(allowed), metrics).await;
    let mut tally = BatchTally::default();
    let mut acks: Vec<Leased> = Vec::new();
    let mut others: Vec<(Leased, RowResult)> = Vec::new();
    for (lease, row) in leases.into_iter().zip(rows) {
        let outcome = &row.outcome;
        metrics
            .counter(
                DELIVERIES_TOTAL,
                &[
                    ("destination", target.name.as_str()),
                    ("outcome", outcome.label()),
                ],
            )
            .increment(1);
        if matches!(outcome, RowOutcome::Delivered | RowOutcome::Unchanged) {
            let age = SystemTime::now()
                .duration_since(lease.enqueued_at())
                .unwrap_or_default();
            metrics
                .histogram(DELIVERY_EVENT_AGE, &[("destination", target.name.as_str())])
                .record(age.as_secs_f64());
        }
        let done = match outcome {
            RowOutcome::Delivered => Fate::Delivered,
            RowOutcome::Unchanged => Fate::SkippedUnchanged,
            RowOutcome::NoTrigger => Fate::SkippedNoTrigger,
            RowOutcome::Filtered => Fate::SkippedFiltered,
            RowOutcome::Retry { .. } | RowOutcome::Dead { .. } => {
                others.push((lease, row));
                continue;
            }
        };
        tracing::debug!(
            destination = %target.name,
            message_id = %lease.message_id(),
            outcome = outcome.label(),
            "Event done."
        );
        if recorder.is_some() {
            tally.event(done, &row.parts, None, now);
        }
        acks.push(lease);
    }
    if !acks.is_empty() {
        if let Err(err) = queue.ack(acks).await {
            tracing::error!(destination = %target.name, error = %err, "Acknowledging deliveries failed.");
        }
    }
    for (lease, row) in others {
        // What the recent failures show is copied only when someone counts them.
        let noted = recorder.is_some().then(|| {
            let reason = match &row.outcome {
                RowOutcome::Retry { reason, .. } | RowOutcome::Dead { reason } => reason.clone(),
                _ => String::new(),
            };
            (lease.message_id().to_owned(), reason)
        });
        let (fate, prefix) = record_failure(queue, target, lease, row.outcome, config).await;
        if let Some((message_id, reason)) = &noted {
            let note = FailureNote {
                message_id,
                reason,
                prefix,
            };
            tally.event(fate, &row.parts, Some(note), SystemTime::now());
        }
    }
    if let Some(recorder) = recorder {
        recorder.record(tally, SystemTime::now());
    }
}

/// Schedules a retry of, or dead-letters, one row; returns what became of it (an outcome
/// that could not be written leaves the row to be handed out again: retried) and the word
/// the queue put before its reason, if any.
async fn record_failure(
    queue: &EventQueue,
    target: &Target,
    lease: Leased,
    outcome: RowOutcome,
    config: &WorkerConfig,
) -> (Fate, &'static str) {
    let now = SystemTime::now();
    let message_id = lease.message_id().to_owned();
    match outcome {
        RowOutcome::Retry {
            reason,
            retry_after,
            busy,
        } => {
            let delay = retry_after.unwrap_or_else(|| config.backoff.delay(lease.attempts()));
            let when = now.checked_add(delay).unwrap_or(now);
            let attempts = lease.attempts() + u32::from(!busy);
            let res = queue.schedule(lease, when, &reason, now, !busy).await;
            match res {
                Ok(RetryOutcome::RetryScheduled) if busy => tracing::info!(
                    destination = %target.name,
                    message_id = %message_id,
                    attempts,
                    retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    reason = %reason,
                    "The destination is busy; delivery postponed without counting an attempt."
                ),
                Ok(RetryOutcome::RetryScheduled) => tracing::warn!(
                    destination = %target.name,
                    message_id = %message_id,
                    attempts,
                    retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    reason = %reason,
                    "Delivery failed; retry scheduled."
                ),
                Ok(RetryOutcome::DeadLettered) => {
                    tracing::warn!(
                        destination = %target.name,
                        message_id = %message_id,
                        attempts,
                        reason = %reason,
                        "Delivery failed past the maximum age; dead-lettered."
                    );
                    return (Fate::DeadLettered, MAX_AGE_PREFIX);
                }
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
            (Fate::Retried, "")
        }
        RowOutcome::Dead { reason } => match queue.dead_letter(lease, &reason, now).await {
            Ok(true) => {
                tracing::warn!(
                    destination = %target.name,
                    message_id = %message_id,
                    reason = %reason,
                    "Delivery failed for good; dead-lettered."
                );
                (Fate::DeadLettered, "")
            }
            Ok(false) => {
                tracing::warn!(
                    destination = %target.name,
                    message_id = %message_id,
                    "The lease ran out before the outcome was recorded; the event will be delivered again."
                );
                (Fate::Retried, "")
            }
            Err(err) => {
                tracing::error!(
                    destination = %target.name,
                    message_id = %message_id,
                    error = %err,
                    "Dead-lettering failed."
                );
                (Fate::Retried, "")
            }
        },
        // Only failures come here.
        RowOutcome::Delivered => (Fate::Delivered, ""),
        RowOutcome::Unchanged => (Fate::SkippedUnchanged, ""),
        RowOutcome::NoTrigger => (Fate::SkippedNoTrigger, ""),
        RowOutcome::Filtered => (Fate::SkippedFiltered, ""),
    }
}

/// What the queue puts before the reason of an event dead-lettered past its maximum age
/// ([`EventQueue::schedule`]).
const MAX_AGE_PREFIX: &str = "max age exceeded: ";

/// Runs the store's housekeeping every `every`, until `shutdown`: expired leases return to
/// pending and remembered fingerprints are kept within their bounds (see
/// [`EventQueue::upkeep`]).
pub async fn run_upkeep(queue: EventQueue, every: Duration, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        match queue.upkeep().await {
            Ok((reclaimed, pruned)) => {
                if reclaimed > 0 {
                    tracing::info!(rows = reclaimed, "Returned expired leases to pending.");
                }
                if pruned > 0 {
                    tracing::debug!(rows = pruned, "Forgot old delivered fingerprints.");
                }
            }
            Err(err) => tracing::error!(error = %err, "Queue upkeep failed."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setup::{DEFAULT_DESTINATION, TargetArgs, from_destination};
    use actionkit_queue::{DeliveryState, NewEvent, Queue, QueueConfig};
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
            rate_limit_scale: 1.0,
            send_unchanged: false,
            max_busy: None,
        };
        from_destination(DEFAULT_DESTINATION, &args, Some(endpoint), |_| Ok(()))
            .expect("the embedded target builds")
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
        let target = Arc::new(offline());
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
        // Its part is the action's, failed, with the validation's reason; an event that
        // reached no action has no part.
        let nobody = nobody.to_string();
        let alias = alias.to_string();
        let payloads: Vec<&[u8]> = vec![nobody.as_bytes(), alias.as_bytes(), b"{not json"];
        let rows = deliver_rows(&target, &batcher, &Changes::Off, &payloads, None, &metrics).await;
        assert_eq!(rows[0].parts.len(), 1, "{rows:?}");
        assert_eq!(rows[0].parts[0].action, "identifyUser");
        assert_eq!(rows[0].parts[0].result, PartResult::Failed);
        assert_eq!(rows[0].parts[0].status, None);
        assert!(
            rows[0].parts[0]
                .reason
                .as_deref()
                .is_some_and(|r| r.starts_with("PayloadValidationError: ")),
            "{rows:?}"
        );
        assert_eq!(rows[1].parts, Vec::new());
        assert_eq!(rows[2].parts, Vec::new());
    }

    #[test]
    fn a_row_keeps_one_part_per_action_the_worst_and_its_first_failure() {
        let mut parts = Vec::new();
        add_part(&mut parts, part_of("a", PartResult::Unchanged));
        add_part(&mut parts, part_of("a", PartResult::Delivered));
        add_part(&mut parts, part_of("b", PartResult::Delivered));
        let failed = |status, why: &str| ActionPart {
            status: Some(status),
            reason: Some(why.to_owned()),
            ..part_of("a", PartResult::Failed)
        };
        add_part(&mut parts, failed(503, "first"));
        add_part(&mut parts, failed(400, "second"));
        add_part(&mut parts, part_of("a", PartResult::Delivered));
        assert_eq!(
            parts,
            vec![failed(503, "first"), part_of("b", PartResult::Delivered)]
        );
        assert_eq!(
            sent_part("c", &final_outcome(Verdict::Failed, Some(404), None)),
            ActionPart {
                action: "c",
                result: PartResult::Failed,
                status: Some(404),
                reason: Some("404: why".to_owned()),
            }
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
                busy: false,
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
                busy: false,
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
        let activity =
            crate::activity::ActivityLog::new(["userpilot".to_owned()], SystemTime::now());
        let recorder = activity.recorder("userpilot");
        let batch = Batch {
            queue: &EventQueue::sqlite(queue.clone(), None),
            target: &target,
            batcher: &batcher,
            config: &config,
            metrics: &MetricsRegistry::new(),
            recorder: recorder.as_ref(),
        };
        process_batch(batch, leases.into_iter().map(Leased::Sqlite).collect()).await;
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
        // The console's overview counts the event as retried, under its action, and lists it
        // among the recent failures with the same reason.
        let seen = activity.activity(SystemTime::now());
        assert_eq!(seen.instances[0].events.hour.retried, 1);
        let track = seen.instances[0]
            .actions
            .iter()
            .find(|a| a.action.as_deref() == Some("trackEvent"))
            .expect("the track action is counted");
        assert_eq!(track.windows.hour.retried, 1);
        assert_eq!(seen.failures.len(), 1);
        assert_eq!(seen.failures[0].message_id, "m1");
        assert_eq!(seen.failures[0].action.as_deref(), Some("trackEvent"));
        assert!(
            seen.failures[0].reason.contains("before its lease ran out"),
            "{:?}",
            seen.failures[0]
        );
    }

    /// Identifies of one user waiting together are merged into one request; what changes
    /// nothing delivered before is not sent at all; `send_only_changes: false` sends each.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn identifies_are_coalesced_and_unchanged_ones_skipped() {
        let mock = actionkit_mock_userpilot::spawn(actionkit_mock_userpilot::MockConfig::default())
            .await
            .expect("the mock starts");
        let embedded = Arc::new(target(&mock.base_url(), 10.0));
        assert!(embedded.send_only_changes, "on by default");
        let dir = tempfile::tempdir().expect("a temp dir");
        let queue = Queue::open(dir.path().join("q.sqlite"), QueueConfig::default())
            .expect("the queue opens");
        let changes = Changes::Store(EventQueue::sqlite(queue.clone(), None));
        let batcher = Batcher::spawn(Arc::clone(&embedded.instance), Arc::clone(&embedded.client));
        let metrics = MetricsRegistry::new();
        let identify = |user: &str, traits: Value| {
            json!({"type": "identify", "userId": user, "traits": traits}).to_string()
        };
        let deliver = |payloads: Vec<String>| {
            let (target, batcher, metrics) = (&embedded, &batcher, &metrics);
            let changes = &changes;
            async move {
                let refs: Vec<&[u8]> = payloads.iter().map(String::as_bytes).collect();
                deliver_rows(target, batcher, changes, &refs, None, metrics).await
            }
        };
        let sent = || {
            mock.requests()
                .into_iter()
                .filter(|r| r.path == "/v1/identify")
                .count()
        };

        let outcomes = |rows: Vec<RowResult>| -> Vec<RowOutcome> {
            rows.into_iter().map(|row| row.outcome).collect()
        };
        let rows = deliver(vec![
            identify("u1", json!({"plan": "pro"})),
            identify("u1", json!({"seats": 3})),
            identify("u2", json!({"plan": "free"})),
            identify("u1", json!({"plan": "max"})),
        ])
        .await;
        // Each event of a coalesced request has the action's part as delivered.
        assert!(
            rows.iter().all(|row| row.parts
                == vec![ActionPart {
                    action: "identifyUser",
                    result: PartResult::Delivered,
                    status: None,
                    reason: None,
                }]),
            "{rows:?}"
        );
        assert_eq!(outcomes(rows), vec![RowOutcome::Delivered; 4]);
        assert_eq!(sent(), 2, "u1's three identifies went as one");
        let state = mock.state();
        assert_eq!(
            state["users"]["u1"]["metadata"],
            json!({"plan": "max", "seats": 3}),
            "merged in event order"
        );

        // Nothing new for u1, a change for u2: one request.
        let rows = deliver(vec![
            identify("u1", json!({"seats": 3})),
            identify("u2", json!({"plan": "growth"})),
        ])
        .await;
        assert_eq!(rows[0].parts[0].result, PartResult::Unchanged);
        assert_eq!(rows[1].parts[0].result, PartResult::Delivered);
        assert_eq!(
            outcomes(rows),
            vec![RowOutcome::Unchanged, RowOutcome::Delivered]
        );
        assert_eq!(sent(), 3);
        let rendered = metrics.render();
        assert!(
            rendered.contains(&format!(
                "{DELIVERY_SKIPPED_UNCHANGED_TOTAL}{{destination=\"userpilot\",action=\"identifyUser\"}} 1"
            )),
            "{rendered}"
        );
        assert!(
            rendered.contains(&format!(
                "{DELIVERY_COALESCED_TOTAL}{{destination=\"userpilot\",action=\"identifyUser\"}} 2"
            )),
            "{rendered}"
        );

        // Switched off, every identify is sent, as Segment does.
        let mut plain = target(&mock.base_url(), 10.0);
        plain.send_only_changes = false;
        let plain = Arc::new(plain);
        let refs: Vec<String> = vec![
            identify("u1", json!({"seats": 3})),
            identify("u1", json!({"seats": 3})),
        ];
        let refs: Vec<&[u8]> = refs.iter().map(String::as_bytes).collect();
        let rows = deliver_rows(&plain, &batcher, &Changes::Off, &refs, None, &metrics).await;
        assert_eq!(outcomes(rows), vec![RowOutcome::Delivered; 2]);
        assert_eq!(sent(), 5);
    }
}
