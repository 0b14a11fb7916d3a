//! HTTP delivery of built requests: outcome classification, retries, rate limits and timeouts.
//!
//! A built [`Request`](crate::request::Request) goes through these layers, outermost first:
//!
//! 1. **Rate limit** ([`RateLimiter`]): at most `max_requests` per window for the request's
//!    `rate_limit_key`, as the destination YAML declares; keys without a limit are unlimited.
//! 2. **Concurrency** (a semaphore in [`DeliveryClient`]): a bound on requests in flight.
//! 3. **Shared rate limit** ([`SharedRateLimit`], only when one is set): a slot of a limit kept
//!    with other processes, such as every `serve` node of a cluster, so that the destination's
//!    limit holds for all of them together. It comes after the local limit and the concurrency
//!    permit, so a slot is taken only by a request that goes out at once, and before the
//!    attempt; while the shared store cannot be reached the request waits and asks again
//!    (1 s, growing to 10 s), and nothing is sent without a slot.
//! 4. **Attempt with timeout**: one HTTP exchange over a pooled keep-alive connection, cut off
//!    after the per-attempt timeout (10 s by default).
//!
//! [`RetryPolicy`] repeats the layers while the [`Outcome`] is retryable ([`SegmentRetryLogic`]:
//! 408, 423, 429 and 5xx except 501, plus transport errors), waiting for `Retry-After` or a
//! [`Backoff`] delay with full jitter, until the event's retry budget is spent. The result is a
//! [`FinalOutcome`] carrying the attempt count, the last status, the reason, and a per-attempt log.

mod backoff;
mod classify;
mod client;
mod rate_limit;
mod retry;

pub use backoff::Backoff;
pub use classify::{
    Outcome, RetryLogic, SegmentRetryLogic, StatusClass, classify_response, classify_status,
    classify_transport_error, parse_retry_after, retry_after,
};
pub use client::{DEFAULT_USER_AGENT, DeliveryClient, DeliveryConfig, DeliveryError};
pub use rate_limit::{Grant, LimitStats, RateLimit, RateLimitError, RateLimiter, SharedRateLimit};
pub use retry::{AttemptRecord, FinalOutcome, RetryPolicy, Verdict};
