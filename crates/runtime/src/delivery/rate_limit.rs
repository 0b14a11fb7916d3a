//! Per-endpoint rate limits: at most `max_requests` grants in any window of length `per`.
//!
//! Each limited key owns a bucket of `max_requests` tokens. A token is spent when a request is
//! granted, is held while the request is in flight, and comes back exactly `per` after the
//! request ended (its answer arrived, or it failed or was cancelled): the [`Grant`] returned by
//! [`RateLimiter::acquire_with`] marks that end when it drops. The destination counts a request
//! when it arrives, which is after it started and before its answer left, so any `per` window of
//! the destination's clock holds at most `max_requests` arrivals, whatever the network delays:
//! counting from the start instead let a request on a cold connection arrive late enough to make
//! a later one the 601st of Userpilot's minute. Unlike a bucket that refills continuously, this
//! never lets a destination that counts per fixed or sliding window see more than its documented
//! limit, so a correct client never provokes a 429.
//!
//! Waiters of one key are served first come, first served. Keys without a configured limit are
//! unlimited, except while paused: a 429 response with `Retry-After` pauses its key's bucket.
//! All waiting uses tokio's clock, so it works with paused time in tests.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until};

/// A rate limit shared with other processes (for example every `serve` node of a cluster), on
/// top of the process's own [`RateLimiter`].
pub trait SharedRateLimit: Send + Sync + std::fmt::Debug {
    /// Whether this shared limit covers `key`.
    fn limits(&self, key: &str) -> bool;

    /// Waits until one request for `key` may start across all the processes sharing the limit;
    /// `Err` with a reason when the shared state cannot be reached.
    fn acquire<'a>(
        &'a self,
        key: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;
}

/// A rate limit declared for one endpoint key, such as `identify` at 600 requests per minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    /// The key requests name in `Request::rate_limit_key`.
    pub key: String,
    /// How many requests may start within any window of length `per`.
    pub max_requests: u32,
    /// The window length.
    pub per: Duration,
}

impl RateLimit {
    /// A limit of `max_requests` per `per` for `key`.
    pub fn new(key: impl Into<String>, max_requests: u32, per: Duration) -> Self {
        RateLimit {
            key: key.into(),
            max_requests,
            per,
        }
    }

    /// A limit of `max_requests` per minute for `key`.
    pub fn per_minute(key: impl Into<String>, max_requests: u32) -> Self {
        Self::new(key, max_requests, Duration::from_secs(60))
    }
}

/// Why a list of rate limits was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    /// A limit allows zero requests.
    #[error("rate limit {key:?}: max_requests must be at least 1")]
    ZeroRequests {
        /// The key of the offending limit.
        key: String,
    },
    /// A limit has a zero-length window.
    #[error("rate limit {key:?}: per must be longer than zero")]
    ZeroWindow {
        /// The key of the offending limit.
        key: String,
    },
    /// Two limits share a key.
    #[error("rate limit {key:?} is declared more than once")]
    DuplicateKey {
        /// The repeated key.
        key: String,
    },
    /// A limit has an empty key.
    #[error("rate limit at index {index}: key must not be empty")]
    EmptyKey {
        /// The position of the offending limit in the list.
        index: usize,
    },
}

/// How long requests of one key have waited for it, as [`RateLimiter::stats`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitStats {
    /// The rate-limit key.
    pub key: String,
    /// `(max_requests, per)` when the key has a configured limit, `None` for a key that was only
    /// paused by a `Retry-After`.
    pub limit: Option<(u32, Duration)>,
    /// How many requests are waiting for the key right now.
    pub waiting: usize,
    /// The time during which at least one request was waiting for the key (wall clock, not the
    /// sum over requests), the current wait included.
    pub waited: Duration,
}

/// Who waits for a key, and for how long some request has waited in all.
#[derive(Debug, Default)]
struct WaitClock {
    waiting: usize,
    since: Option<Instant>,
    total: Duration,
}

/// The tokens of one key that are not back yet.
#[derive(Debug, Default)]
struct Tokens {
    /// Held by requests still in flight.
    in_flight: usize,
    /// When the requests holding the others ended, oldest first; each comes back one window
    /// later.
    ended: VecDeque<Instant>,
}

/// The state of one key.
#[derive(Debug)]
struct Bucket {
    /// `(max_requests, per)`, or `None` for a key that is only ever paused.
    limit: Option<(usize, Duration)>,
    /// Who is waiting, and the time spent waiting.
    waits: Mutex<WaitClock>,
    /// The line of waiters: holding this lock is what makes a waiter first in line.
    line: tokio::sync::Mutex<()>,
    /// The tokens in use (at most `max_requests`).
    tokens: Mutex<Tokens>,
    /// Wakes the first waiter when a request ends.
    ended: Notify,
    /// No grant before this instant (set by [`RateLimiter::pause`]).
    paused_until: Mutex<Option<Instant>>,
}

impl Bucket {
    fn new(limit: Option<(usize, Duration)>) -> Self {
        Bucket {
            limit,
            waits: Mutex::new(WaitClock::default()),
            line: tokio::sync::Mutex::new(()),
            tokens: Mutex::new(Tokens::default()),
            ended: Notify::new(),
            paused_until: Mutex::new(None),
        }
    }

    fn waits(&self) -> std::sync::MutexGuard<'_, WaitClock> {
        self.waits
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts a request as waiting from now; the wait ends when the guard drops.
    fn start_waiting(&self) -> WaitGuard<'_> {
        let mut waits = self.waits();
        if waits.waiting == 0 {
            waits.since = Some(Instant::now());
        }
        waits.waiting += 1;
        WaitGuard { bucket: self }
    }

    fn paused_until(&self) -> Option<Instant> {
        *self
            .paused_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, Tokens> {
        self.tokens
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The earliest instant the next grant may start, `None` while every token is held by a
    /// request in flight (the next one to end says when). Tokens back for good are dropped.
    fn ready_at(&self, now: Instant) -> Option<Instant> {
        let mut ready = now;
        if let Some((max_requests, per)) = self.limit {
            let mut tokens = self.tokens();
            while tokens
                .ended
                .front()
                .is_some_and(|at| later(*at, per) <= now)
            {
                tokens.ended.pop_front();
            }
            if tokens.in_flight + tokens.ended.len() >= max_requests {
                let first_back = *tokens.ended.front()?;
                ready = ready.max(later(first_back, per));
            }
        }
        if let Some(paused_until) = self.paused_until() {
            ready = ready.max(paused_until);
        }
        Some(ready)
    }

    /// Takes a token for a request starting now.
    fn take_token(self: &Arc<Self>) -> Grant {
        if self.limit.is_none() {
            return Grant::none();
        }
        self.tokens().in_flight += 1;
        Grant {
            bucket: Some(Arc::clone(self)),
        }
    }
}

/// A token held by a request in flight; dropping it marks the request's end, from which the token
/// comes back after the limit's window.
#[must_use = "the token comes back when the grant drops: keep it until the request has ended"]
pub struct Grant {
    bucket: Option<Arc<Bucket>>,
}

impl Grant {
    /// A grant of no bucket (an unlimited key).
    fn none() -> Self {
        Grant { bucket: None }
    }
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("holds_token", &self.bucket.is_some())
            .finish()
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        if let Some(bucket) = self.bucket.take() {
            {
                // Read under the lock, so that the ended times stay in order.
                let mut tokens = bucket.tokens();
                tokens.in_flight = tokens.in_flight.saturating_sub(1);
                tokens.ended.push_back(Instant::now());
            }
            bucket.ended.notify_waiters();
        }
    }
}

/// Ends one request's wait for its key (also when the waiting future is cancelled).
struct WaitGuard<'a> {
    bucket: &'a Bucket,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        let mut waits = self.bucket.waits();
        waits.waiting = waits.waiting.saturating_sub(1);
        if waits.waiting == 0 {
            if let Some(since) = waits.since.take() {
                waits.total += Instant::now().saturating_duration_since(since);
            }
        }
    }
}

/// A stand-in for "never" that tokio's timer still accepts: about thirty years.
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// `at + delay`, saturating at [`FAR_FUTURE`] instead of overflowing on absurd durations.
fn later(at: Instant, delay: Duration) -> Instant {
    at.checked_add(delay.min(FAR_FUTURE)).unwrap_or(at)
}

/// Token buckets per rate-limit key; share one per destination instance.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Arc<Bucket>>>,
}

impl RateLimiter {
    /// A limiter for the given limits; keys not listed are unlimited.
    ///
    /// Fails when a limit has an empty key, allows zero requests, has a zero window, or when two
    /// limits share a key.
    pub fn new(limits: &[RateLimit]) -> Result<Self, RateLimitError> {
        let mut buckets = HashMap::with_capacity(limits.len());
        for (index, limit) in limits.iter().enumerate() {
            if limit.key.is_empty() {
                return Err(RateLimitError::EmptyKey { index });
            }
            if limit.max_requests == 0 {
                return Err(RateLimitError::ZeroRequests {
                    key: limit.key.clone(),
                });
            }
            if limit.per.is_zero() {
                return Err(RateLimitError::ZeroWindow {
                    key: limit.key.clone(),
                });
            }
            let max_requests = usize::try_from(limit.max_requests).unwrap_or(usize::MAX);
            let bucket = Arc::new(Bucket::new(Some((max_requests, limit.per))));
            if buckets.insert(limit.key.clone(), bucket).is_some() {
                return Err(RateLimitError::DuplicateKey {
                    key: limit.key.clone(),
                });
            }
        }
        Ok(RateLimiter {
            buckets: Mutex::new(buckets),
        })
    }

    /// A limiter without any limits (keys are still paused by [`RateLimiter::pause`]).
    pub fn unlimited() -> Self {
        RateLimiter::default()
    }

    /// Whether `key` has a configured limit.
    pub fn is_limited(&self, key: &str) -> bool {
        self.bucket(key)
            .is_some_and(|bucket| bucket.limit.is_some())
    }

    fn bucket(&self, key: &str) -> Option<Arc<Bucket>> {
        self.buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(key)
            .cloned()
    }

    /// Waits until a request for `key` may start and takes its token, which comes back one window
    /// after the returned grant drops.
    pub async fn acquire(&self, key: &str) -> Grant {
        self.acquire_with(key, async {}).await.1
    }

    /// Waits until a request for `key` may start, then awaits `gate` while keeping this caller
    /// first in line, and takes a token for the request when `gate` completes. The token is held
    /// until the returned [`Grant`] drops, which the caller does when the request has ended.
    ///
    /// The delivery client passes its concurrency permit as `gate`, so the request holds its
    /// token from the instant it really goes out, even when it waited for a free slot. Cancelling
    /// the returned future before it completes takes no token.
    pub async fn acquire_with<F: Future>(&self, key: &str, gate: F) -> (F::Output, Grant) {
        let Some(bucket) = self.bucket(key) else {
            return (gate.await, Grant::none());
        };
        let waiting = bucket.start_waiting();
        let line = bucket.line.lock().await;
        loop {
            // Registered before the state is read, so that an end between the two is not missed.
            let ended = bucket.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            let now = Instant::now();
            match bucket.ready_at(now) {
                Some(ready) if ready <= now => break,
                // A pause set while sleeping is seen on the next turn of the loop.
                Some(ready) => tokio::select! {
                    () = sleep_until(ready) => {}
                    () = &mut ended => {}
                },
                None => ended.await,
            }
        }
        drop(waiting);
        let output = gate.await;
        let grant = bucket.take_token();
        drop(line);
        (output, grant)
    }

    /// For every key, limited or paused: its limit, how many requests wait for it now, and the
    /// time during which some request waited for it, sorted by key.
    pub fn stats(&self) -> Vec<LimitStats> {
        let buckets: Vec<(String, Arc<Bucket>)> = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|(key, bucket)| (key.clone(), Arc::clone(bucket)))
            .collect();
        let now = Instant::now();
        let mut out: Vec<LimitStats> = buckets
            .into_iter()
            .map(|(key, bucket)| {
                let waits = bucket.waits();
                let ongoing = waits
                    .since
                    .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
                LimitStats {
                    key,
                    limit: bucket
                        .limit
                        .map(|(max, per)| (u32::try_from(max).unwrap_or(u32::MAX), per)),
                    waiting: waits.waiting,
                    waited: waits.total + ongoing,
                }
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// Holds back every grant for `key` for `delay` from now (pauses only ever get longer).
    ///
    /// Works for unlimited keys too: they are paused, then unlimited again.
    pub fn pause(&self, key: &str, delay: Duration) {
        let until = later(Instant::now(), delay);
        let bucket = {
            let mut buckets = self
                .buckets
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            buckets
                .entry(key.to_string())
                .or_insert_with(|| Arc::new(Bucket::new(None)))
                .clone()
        };
        let mut paused_until = bucket
            .paused_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if paused_until.is_none_or(|current| current < until) {
            *paused_until = Some(until);
        }
    }
}
