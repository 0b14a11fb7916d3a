//! HTTP delivery of built requests: outcome classification, retries, rate limits and timeouts.
//!
//! A built [`Request`](crate::request::Request) goes through these layers, outermost first:
//!
//! 1. **Rate limit** ([`RateLimiter`]): at most `max_requests` per window for the request's
//!    `rate_limit_key`, as the destination YAML declares; keys without a limit are unlimited.
//! 2. **Concurrency** (a semaphore in [`DeliveryClient`]): a bound on requests in flight.
//! 3. **Attempt with timeout**: one HTTP exchange over a pooled keep-alive connection, cut off
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
pub use rate_limit::{Grant, LimitStats, RateLimit, RateLimitError, RateLimiter};
pub use retry::{AttemptRecord, FinalOutcome, RetryPolicy, Verdict};
