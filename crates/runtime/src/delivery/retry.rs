//! The retry loop: attempts, waits and the retry budget of one event.
//!
//! [`RetryPolicy::run`] calls an attempt function until it delivers, fails for good, or the
//! budget (a number of attempts and a total elapsed time) is spent. Between attempts it waits for
//! the server's `Retry-After` when there is one, else for a backoff delay with full jitter. The loop
//! does no IO itself, so tests drive it with scripted outcomes under paused tokio time.

use std::future::Future;
use std::time::Duration;

use tokio::time::{Instant, sleep};

use super::backoff::Backoff;
use super::classify::Outcome;

/// How many attempts one event gets and how long they may take in total.
#[derive(Debug)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included (at least 1).
    pub max_attempts: u32,
    /// No retry starts later than this after the first attempt started.
    pub max_elapsed: Duration,
    /// The delays between attempts when the server gives no `Retry-After`.
    pub backoff: Backoff,
    /// The pause after a busy answer ([`Outcome::Busy`]) without `Retry-After`.
    pub busy_poll: Duration,
    /// The longest total time spent waiting on busy answers; past it the delivery gives up as
    /// out of retries. Busy answers count neither as attempts nor against `max_elapsed`.
    pub max_busy: Duration,
}

/// How the delivery of one event ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The destination accepted the request.
    Delivered,
    /// The request failed in a way retrying cannot fix (or was never sent); dead-letter it.
    Failed,
    /// Every attempt failed with a retryable error and the retry budget is spent; the queue may
    /// try again later or dead-letter it.
    RetriesExhausted,
}

/// What happened in one attempt; the list of them is the per-event delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The attempt number, from 1.
    pub number: u32,
    /// When the attempt started, measured from the start of the first attempt.
    pub started_after: Duration,
    /// How long the attempt took, waiting for rate limits and concurrency included.
    pub duration: Duration,
    /// The attempt's outcome.
    pub outcome: Outcome,
    /// How long the loop waited before the next attempt, if there was one.
    pub next_delay: Option<Duration>,
}

/// The final result of delivering one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalOutcome {
    /// How it ended.
    pub verdict: Verdict,
    /// How many attempts were made (0 when the request could not be built).
    pub attempts: u32,
    /// The HTTP status of the last response, if any arrived.
    pub status: Option<u16>,
    /// Why the delivery failed; `None` when delivered. Never contains request header values.
    pub reason: Option<String>,
    /// The response body of a delivered request, if not empty.
    pub body: Option<String>,
    /// The last `Retry-After` the server asked for, when retries were exhausted.
    pub retry_after: Option<Duration>,
    /// Time from the start of the first attempt to the end of the last one.
    pub elapsed: Duration,
    /// Every attempt, in order.
    pub log: Vec<AttemptRecord>,
}

impl FinalOutcome {
    /// Whether the destination accepted the request.
    pub fn is_delivered(&self) -> bool {
        self.verdict == Verdict::Delivered
    }

    /// The result for a request that failed before any attempt (for example, a bad URL).
    pub fn not_sent(reason: String) -> Self {
        FinalOutcome {
            verdict: Verdict::Failed,
            attempts: 0,
            status: None,
            reason: Some(reason),
            body: None,
            retry_after: None,
            elapsed: Duration::ZERO,
            log: Vec::new(),
        }
    }
}

impl RetryPolicy {
    /// Runs `attempt` (called with the attempt number, from 1) until it delivers, fails for good,
    /// or the retry budget is spent.
    ///
    /// After a retryable outcome the loop waits the outcome's `after` (the server's
    /// `Retry-After`) if present, else `backoff.delay(retry_idx)`. It gives up when `max_attempts`
    /// are used or when the wait would start the next attempt later than `max_elapsed` after the
    /// first.
    pub async fn run<F, Fut>(&self, mut attempt: F) -> FinalOutcome
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Outcome>,
    {
        let start = Instant::now();
        let max_attempts = self.max_attempts.max(1);
        let mut log: Vec<AttemptRecord> = Vec::new();
        // Attempts that count against the budget; busy answers do not.
        let mut number = 0u32;
        let mut calls = 0u32;
        let mut busy_waited = Duration::ZERO;
        loop {
            calls += 1;
            let started = Instant::now();
            let outcome = attempt(calls).await;
            let mut record = AttemptRecord {
                number: calls,
                started_after: started - start,
                duration: started.elapsed(),
                outcome,
                next_delay: None,
            };
            if let Outcome::Busy {
                status,
                reason,
                after,
            } = &record.outcome
            {
                let delay = after.unwrap_or(self.busy_poll);
                if busy_waited + delay > self.max_busy {
                    let status = Some(*status);
                    let reason = format!(
                        "gave up because the destination stayed busy for {busy_waited:?}: {reason}"
                    );
                    log.push(record);
                    return finish(
                        Verdict::RetriesExhausted,
                        status,
                        Some(reason),
                        None,
                        Some(delay),
                        start,
                        log,
                    );
                }
                record.next_delay = Some(delay);
                log.push(record);
                busy_waited += delay;
                sleep(delay).await;
                continue;
            }
            number += 1;
            let (status, reason, after) = match &record.outcome {
                Outcome::Delivered { status, body } => {
                    let (status, body) = (Some(*status), body.clone());
                    log.push(record);
                    return finish(Verdict::Delivered, status, None, body, None, start, log);
                }
                Outcome::Failed { status, reason } => {
                    let (status, reason) = (*status, Some(reason.clone()));
                    log.push(record);
                    return finish(Verdict::Failed, status, reason, None, None, start, log);
                }
                Outcome::Retry {
                    status,
                    reason,
                    after,
                } => (*status, reason.clone(), *after),
                // Waited out above, before counting the attempt.
                Outcome::Busy {
                    status,
                    reason,
                    after,
                } => (Some(*status), reason.clone(), *after),
            };
            if number >= max_attempts {
                log.push(record);
                let reason = format!("gave up after {number} attempts: {reason}");
                return finish(
                    Verdict::RetriesExhausted,
                    status,
                    Some(reason),
                    None,
                    after,
                    start,
                    log,
                );
            }
            let delay = after.unwrap_or_else(|| self.backoff.delay(number - 1));
            // Time spent waiting on a busy destination does not count against the budget.
            let next_start = start
                .elapsed()
                .saturating_sub(busy_waited)
                .checked_add(delay);
            if next_start.is_none_or(|next_start| next_start > self.max_elapsed) {
                log.push(record);
                let reason = format!(
                    "gave up after {number} attempts because the next one, in {delay:?}, would start \
                     past the {:?} limit: {reason}",
                    self.max_elapsed
                );
                return finish(
                    Verdict::RetriesExhausted,
                    status,
                    Some(reason),
                    None,
                    after,
                    start,
                    log,
                );
            }
            record.next_delay = Some(delay);
            tracing::debug!(
                attempt = number,
                status,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "Delivery attempt failed; retrying."
            );
            log.push(record);
            sleep(delay).await;
        }
    }
}

/// Builds the final outcome from the last attempt's facts.
fn finish(
    verdict: Verdict,
    status: Option<u16>,
    reason: Option<String>,
    body: Option<String>,
    retry_after: Option<Duration>,
    start: Instant,
    log: Vec<AttemptRecord>,
) -> FinalOutcome {
    FinalOutcome {
        verdict,
        attempts: u32::try_from(log.len()).unwrap_or(u32::MAX),
        status,
        reason,
        body,
        retry_after,
        elapsed: start.elapsed(),
        log,
    }
}
