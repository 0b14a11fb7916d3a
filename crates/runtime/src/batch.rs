//! Gathering batch entries into requests and delivering them (Segment's `performBatch`).
//!
//! [`Instance::dispatch`] turns a payload of a batch action into an
//! [`Outcome::Batch`](crate::dispatch::Outcome::Batch) entry instead of a request. A [`Batcher`]
//! (one per destination instance) gathers those entries by action and batch group, and sends a
//! batch when it holds the action's `max_items` entries, when one more entry would take the body
//! past `max_bytes`, or `wait_ms` after its first entry arrived, whichever comes first. Every
//! submitter gets the outcome of the request that carried its entry.
//!
//! [`deliver_batch`] sends one batch and settles every entry:
//! - delivered: every entry is delivered, with the answer's response id (Userpilot's bulk
//!   `job_id`) when the action declares one;
//! - a 400, 413 or 422 for more than one entry says something in the batch is wrong or too big
//!   without saying which: the batch is cut in halves and each half is sent again, so that one bad
//!   payload ends alone with its own failure and the others are delivered. The number of extra
//!   requests is bounded (see [`split_budget`]); past it the remaining entries share the failure;
//! - a successful answer that lists refused entries where the action's `item_errors` says
//!   (APIs that accept a batch in part) fails those entries with the destination's reason and
//!   delivers the others;
//! - any other outcome (out of retries, another final failure) is every entry's outcome.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::delivery::{DeliveryClient, FinalOutcome, Verdict};
use crate::destination::ItemErrorsDef;
use crate::dispatch::{BatchItem, Instance};
use crate::request::Request;

/// What became of one batch entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemResult {
    /// The outcome of the request that carried the entry in the end.
    pub outcome: FinalOutcome,
    /// How many entries that request carried.
    pub batch_len: usize,
    /// The value of the answer's response id (the action's `response_id` key), when delivered.
    pub response_id: Option<String>,
}

/// What the gathering task is told.
enum Submission {
    /// One entry waiting for its batch, with where its result goes.
    Entry {
        item: BatchItem,
        done: oneshot::Sender<ItemResult>,
    },
    /// Send every open batch now.
    Flush,
}

/// Gathers the batch entries of one destination instance and sends them in batches.
///
/// Cloning is cheap; the gathering task stops when every clone is dropped, after sending what
/// it holds.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::UnboundedSender<Submission>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl Batcher {
    /// Starts the gathering task of `instance` on the current tokio runtime.
    pub fn spawn(instance: Arc<Instance>, client: Arc<DeliveryClient>) -> Batcher {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(gather(instance, client, rx));
        Batcher { tx }
    }

    /// Hands `item` to its batch and waits until the request that carries it is settled.
    pub async fn submit(&self, item: BatchItem) -> ItemResult {
        self.enqueue(item).await
    }

    /// Hands `item` to its batch at once (entries enqueued one after the other keep their
    /// order) and returns what waits for the request that carries it.
    pub fn enqueue(
        &self,
        item: BatchItem,
    ) -> impl std::future::Future<Output = ItemResult> + use<> {
        let (done, result) = oneshot::channel();
        let sent = self.tx.send(Submission::Entry { item, done }).is_ok();
        async move {
            if !sent {
                return not_sent("the batcher has stopped".to_owned());
            }
            match result.await {
                Ok(result) => result,
                Err(_) => not_sent("the batch carrying the entry was dropped".to_owned()),
            }
        }
    }

    /// Sends every open batch now, with the entries enqueued before, instead of waiting for
    /// them to fill: for a caller that knows no more entries are coming for a while (a serve
    /// worker that handed over every row it leased).
    pub fn flush(&self) {
        // A stopped batcher has nothing open to send.
        let _ = self.tx.send(Submission::Flush);
    }
}

fn not_sent(reason: String) -> ItemResult {
    ItemResult {
        outcome: FinalOutcome::not_sent(reason),
        batch_len: 0,
        response_id: None,
    }
}

/// The entries of one action and group gathered so far, each with what its submitter is
/// waiting on (`W`).
#[derive(Debug)]
pub struct Pending<W> {
    /// The index of the action.
    pub action_index: usize,
    /// The entries, in arrival order.
    pub entries: Vec<Value>,
    /// One waiter per entry.
    pub waiters: Vec<W>,
    /// The body size if sent now: the envelope plus every entry and the commas between them.
    bytes: usize,
    /// When the batch is sent even if it is not full.
    deadline: Instant,
}

/// The pure part of batching: which entries go together, and when a batch is complete.
///
/// Entries of one action with the same group join the open batch of that action and group. A
/// batch is complete when it holds `max_items` entries; an entry that would take the body past
/// `max_bytes` completes the open batch and starts the next (an entry too big on its own is
/// sent alone, and the destination decides). Open batches are kept in the order they were
/// opened, so [`Gatherer::drain`] is deterministic.
#[derive(Debug)]
pub struct Gatherer<W> {
    open: Vec<((usize, String), Pending<W>)>,
    envelopes: HashMap<usize, usize>,
}

impl<W> Default for Gatherer<W> {
    fn default() -> Self {
        Gatherer {
            open: Vec::new(),
            envelopes: HashMap::new(),
        }
    }
}

impl<W> Gatherer<W> {
    /// Adds `item` (waited on by `waiter`) at `now`; returns the batches it completed, in order.
    /// An item of an action without a batch form is handed back with its waiter.
    pub fn push(
        &mut self,
        instance: &Instance,
        item: BatchItem,
        waiter: W,
        now: Instant,
    ) -> Result<Vec<Pending<W>>, W> {
        let Some(def) = instance.batch_def(item.action_index) else {
            return Err(waiter);
        };
        let envelope = *self
            .envelopes
            .entry(item.action_index)
            .or_insert_with(|| envelope_bytes(instance, item.action_index));
        let key = (item.action_index, item.group);
        let max_bytes = def.max_bytes.unwrap_or(usize::MAX);
        let mut complete = Vec::new();
        let position = self.open.iter().position(|(k, _)| *k == key);
        let position = match position {
            Some(idx) if self.open[idx].1.bytes.saturating_add(item.bytes + 1) > max_bytes => {
                complete.push(self.open.remove(idx).1);
                None
            }
            other => other,
        };
        let idx = match position {
            Some(idx) => idx,
            None => {
                let wait = Duration::from_millis(u64::from(def.wait_ms));
                self.open.push((
                    key,
                    Pending {
                        action_index: item.action_index,
                        entries: Vec::new(),
                        waiters: Vec::new(),
                        bytes: envelope,
                        deadline: now + wait,
                    },
                ));
                self.open.len() - 1
            }
        };
        let batch = &mut self.open[idx].1;
        if !batch.entries.is_empty() {
            batch.bytes = batch.bytes.saturating_add(1);
        }
        batch.bytes = batch.bytes.saturating_add(item.bytes);
        batch.entries.push(item.entry);
        batch.waiters.push(waiter);
        if batch.entries.len() >= def.max_items {
            complete.push(self.open.remove(idx).1);
        }
        Ok(complete)
    }

    /// The earliest deadline of an open batch.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.open.iter().map(|(_, p)| p.deadline).min()
    }

    /// Takes the open batches whose deadline is at or before `now`.
    pub fn due(&mut self, now: Instant) -> Vec<Pending<W>> {
        let mut due = Vec::new();
        let mut idx = 0;
        while idx < self.open.len() {
            if self.open[idx].1.deadline <= now {
                due.push(self.open.remove(idx).1);
            } else {
                idx += 1;
            }
        }
        due
    }

    /// Takes every open batch, in the order they were opened.
    pub fn drain(&mut self) -> Vec<Pending<W>> {
        self.open.drain(..).map(|(_, pending)| pending).collect()
    }
}

/// The gathering loop: collects submissions and sends complete or due batches.
async fn gather(
    instance: Arc<Instance>,
    client: Arc<DeliveryClient>,
    mut rx: mpsc::UnboundedReceiver<Submission>,
) {
    let mut gatherer: Gatherer<oneshot::Sender<ItemResult>> = Gatherer::default();
    let mut flights = tokio::task::JoinSet::new();
    let send = |flights: &mut tokio::task::JoinSet<()>,
                batches: Vec<Pending<oneshot::Sender<ItemResult>>>| {
        for batch in batches {
            let instance = Arc::clone(&instance);
            let client = Arc::clone(&client);
            flights.spawn(async move {
                let results =
                    deliver_batch(&instance, &client, batch.action_index, batch.entries).await;
                for (waiter, result) in batch.waiters.into_iter().zip(results) {
                    // A submitter that stopped waiting no longer needs its result.
                    let _ = waiter.send(result);
                }
            });
        }
    };
    loop {
        let next_deadline = gatherer.next_deadline();
        tokio::select! {
            message = rx.recv() => {
                match message {
                    None => break,
                    Some(Submission::Flush) => send(&mut flights, gatherer.drain()),
                    Some(Submission::Entry { item, done }) => {
                        match gatherer.push(&instance, item, done, Instant::now()) {
                            Ok(complete) => send(&mut flights, complete),
                            Err(done) => {
                                let _ = done
                                    .send(not_sent("the action has no batch form".to_owned()));
                            }
                        }
                    }
                }
            }
            () = sleep_until_opt(next_deadline) => {
                let due = gatherer.due(Instant::now());
                send(&mut flights, due);
            }
            Some(_) = flights.join_next(), if !flights.is_empty() => {}
        }
    }
    let rest = gatherer.drain();
    send(&mut flights, rest);
    while flights.join_next().await.is_some() {}
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The body size of a batch of the action at `action_index` with no entries.
fn envelope_bytes(instance: &Instance, action_index: usize) -> usize {
    instance
        .batch_request(action_index, Vec::new())
        .ok()
        .and_then(|request| request.json)
        .and_then(|json| serde_json::to_vec(&json).ok())
        .map_or(0, |body| body.len())
}

/// Whether a final answer with `status` to a batch says something in it is wrong or too big
/// without saying what, so that halving the batch can find the culprit.
fn narrows_by_splitting(status: Option<u16>) -> bool {
    matches!(status, Some(400 | 413 | 422))
}

/// How many requests narrowing a batch of `len` entries down may send in all: enough to
/// isolate a few bad entries (about two per halving for each), not enough to send every entry
/// alone when the whole batch is wrong.
pub fn split_budget(len: usize) -> usize {
    let halvings = usize::BITS - len.max(1).leading_zeros();
    16 + 4 * halvings as usize
}

/// Sends `entries` as batches of the action at `action_index` and settles each entry (see the
/// module docs); the results are in the order of `entries`.
pub async fn deliver_batch(
    instance: &Instance,
    client: &DeliveryClient,
    action_index: usize,
    entries: Vec<Value>,
) -> Vec<ItemResult> {
    let n = entries.len();
    let mut results: Vec<Option<ItemResult>> = vec![None; n];
    // The ranges still to send, the next one last.
    let mut stack: Vec<Range<usize>> = Vec::with_capacity(8);
    stack.push(0..n);
    let mut budget = split_budget(n);
    let action = instance.action_key(action_index).unwrap_or("?");
    while let Some(range) = stack.pop() {
        if range.is_empty() {
            continue;
        }
        let request = match instance.batch_request(action_index, entries[range.clone()].to_vec()) {
            Ok(request) => request,
            Err(err) => {
                let outcome = FinalOutcome::not_sent(err.to_string());
                settle(&mut results, range, &outcome, None);
                continue;
            }
        };
        budget = budget.saturating_sub(1);
        let outcome = client.send(&request).await;
        if range.len() > 1
            && outcome.verdict == Verdict::Failed
            && narrows_by_splitting(outcome.status)
            && budget >= 2
        {
            let mid = range.start + range.len() / 2;
            tracing::debug!(
                action,
                entries = range.len(),
                status = outcome.status,
                "A batch was refused as a whole; sending its halves."
            );
            stack.push(mid..range.end);
            stack.push(range.start..mid);
            continue;
        }
        let id = response_id(&request, &outcome);
        let refused = match instance.batch_def(action_index).and_then(|d| d.item_errors) {
            Some(def) if outcome.is_delivered() => refused_entries(&def, &outcome, range.len()),
            _ => Vec::new(),
        };
        if !refused.is_empty() {
            tracing::info!(
                action,
                entries = range.len(),
                refused = refused.len(),
                "The destination refused some entries of a batch."
            );
            for (offset, message) in refused {
                let slot = range.start + offset;
                let mut failed = outcome.clone();
                failed.verdict = Verdict::Failed;
                failed.body = None;
                failed.reason = Some(format!("the destination refused this entry: {message}"));
                results[slot] = Some(ItemResult {
                    outcome: failed,
                    batch_len: range.len(),
                    response_id: id.clone(),
                });
            }
        }
        if outcome.is_delivered() {
            tracing::info!(
                action,
                entries = range.len(),
                status = outcome.status,
                response_id = id.as_deref().unwrap_or(""),
                "Batch delivered."
            );
        }
        settle(&mut results, range, &outcome, id);
    }
    results
        .into_iter()
        .map(|result| result.unwrap_or_else(|| not_sent("the entry was never sent".to_owned())))
        .collect()
}

/// The entries a successful answer lists as refused, by position in the batch (of `len`
/// entries), with the destination's reason; positions outside the batch are ignored.
fn refused_entries(
    def: &ItemErrorsDef,
    outcome: &FinalOutcome,
    len: usize,
) -> Vec<(usize, String)> {
    let Some(body) = outcome.body.as_deref() else {
        return Vec::new();
    };
    let Ok(body) = serde_json::from_str::<Value>(body) else {
        return Vec::new();
    };
    let Some(list) = body.get(def.list).and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut refused: Vec<(usize, String)> = Vec::new();
    for item in list {
        let Some(index) = item.get(def.index).and_then(Value::as_u64) else {
            continue;
        };
        let Ok(index) = usize::try_from(index) else {
            continue;
        };
        if index >= len || refused.iter().any(|(i, _)| *i == index) {
            continue;
        }
        let message = def.message.and_then(|key| item.get(key)).map_or_else(
            || "no reason given".to_owned(),
            |m| match m {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            },
        );
        refused.push((index, message));
    }
    refused
}

/// Gives every entry of `range` not settled yet the outcome of the request that carried it.
fn settle(
    results: &mut [Option<ItemResult>],
    range: Range<usize>,
    outcome: &FinalOutcome,
    response_id: Option<String>,
) {
    let batch_len = range.len();
    for slot in results[range].iter_mut().filter(|slot| slot.is_none()) {
        *slot = Some(ItemResult {
            outcome: outcome.clone(),
            batch_len,
            response_id: response_id.clone(),
        });
    }
}

/// The value of the request's `response_id` key in a delivered answer's JSON object, as text.
pub fn response_id(request: &Request, outcome: &FinalOutcome) -> Option<String> {
    let key = request.response_id?;
    let body: Value = serde_json::from_str(outcome.body.as_deref()?).ok()?;
    match body.get(key)? {
        Value::String(text) => Some(text.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_budget_isolates_a_few_entries_but_not_all() {
        assert_eq!(split_budget(1), 20);
        // 10,000 entries: 14 halvings, enough for two bad entries on separate paths.
        assert_eq!(split_budget(10_000), 72);
        assert!(split_budget(10_000) < 10_000);
    }

    #[test]
    fn only_answers_about_the_content_narrow_by_splitting() {
        for status in [400, 413, 422] {
            assert!(narrows_by_splitting(Some(status)), "{status}");
        }
        for status in [401, 403, 404, 409, 429, 500] {
            assert!(!narrows_by_splitting(Some(status)), "{status}");
        }
        assert!(!narrows_by_splitting(None));
    }
}
