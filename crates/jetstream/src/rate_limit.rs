//! One rate limit for a whole cluster of `serve` nodes, kept in a JetStream key-value bucket.
//!
//! Each destination instance's limit (Userpilot: 600 identify requests a minute) is one key of
//! the bucket `<prefix>_rate_limits` (`actionkit_rate_limits` by default), holding the next free start time in milliseconds since
//! the Unix epoch (the *theoretical arrival time* of the generic cell rate algorithm). A node
//! that wants to send reads it, takes the later of it and now as its slot, and writes back slot
//! plus one interval (`per / max_requests`, see [`MARGIN_PERCENT`]) with compare-and-set on the revision it read; when
//! another node wrote first, it reads again. Every request of the cluster thus gets its own
//! slot, one interval apart, and the node waits for its slot before sending. No burst is
//! allowed, so at most `max_requests` slots start in any window of length `per`, whichever
//! nodes take them.
//!
//! The slots are wall-clock times, so the nodes' clocks must agree (NTP) to well within one
//! interval (100 ms for 600 a minute); a node whose clock runs ahead takes slots the others
//! see as future ones, which only slows the cluster down. When NATS cannot be reached,
//! [`ClusterRateLimit::acquire`] fails and the caller waits and tries again: nothing is sent
//! without a slot.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::kv;

use crate::{JetStreamError, JetStreamQueue, token};

/// A rate limit shared by every node connected to the same JetStream.
#[derive(Clone)]
pub struct ClusterRateLimit {
    store: kv::Store,
    key: String,
    interval_ms: u64,
}

impl std::fmt::Debug for ClusterRateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterRateLimit")
            .field("key", &self.key)
            .field("interval_ms", &self.interval_ms)
            .finish_non_exhaustive()
    }
}

fn unavailable(reason: impl ToString) -> JetStreamError {
    JetStreamError::Unavailable {
        action: "rate limit",
        reason: reason.to_string(),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The time between two slots of a limit of `max_requests` per `per`: the window stretched by
/// [`MARGIN_PERCENT`] and divided by the requests, rounded up, so never faster than the limit.
pub fn interval_ms(max_requests: u32, per: Duration) -> u64 {
    let per_ms = u64::try_from(per.as_millis()).unwrap_or(u64::MAX);
    let stretched = per_ms.saturating_mul(100 + MARGIN_PERCENT) / 100;
    stretched.div_ceil(u64::from(max_requests.max(1))).max(1)
}

/// How much longer than the limit's window `max_requests` slots take, in percent.
///
/// Slots are spaced from their starts, but the destination counts arrivals. If the first of
/// `max_requests + 1` requests took longer to arrive than the last, both could fall in one
/// window the destination counts; stretching the window by 2 % (1.2 s a minute) covers
/// differences in network delay of up to that much.
pub const MARGIN_PERCENT: u64 = 2;

impl ClusterRateLimit {
    /// The limit `limit` of destination instance `instance`: at most `max_requests` per `per`,
    /// across the cluster.
    pub async fn new(
        queue: &JetStreamQueue,
        instance: &str,
        limit: &str,
        max_requests: u32,
        per: Duration,
    ) -> Result<ClusterRateLimit, JetStreamError> {
        if max_requests == 0 || per.is_zero() {
            return Err(JetStreamError::Setup {
                what: format!("rate limit {limit} of {instance}"),
                reason: "a limit needs at least one request in a window longer than zero"
                    .to_owned(),
            });
        }
        let bucket = crate::kv::bucket_name(queue.config(), "rate_limits");
        let store = crate::kv::bucket(
            queue.context(),
            &bucket,
            queue.config().replicas,
            Duration::ZERO,
            false,
        )
        .await?;
        Ok(ClusterRateLimit {
            store,
            key: format!("{}.{}", token(instance), token(limit)),
            interval_ms: interval_ms(max_requests, per),
        })
    }

    /// Reserves the next free slot of the cluster and waits for it; returns the slot.
    pub async fn acquire(&self) -> Result<SystemTime, JetStreamError> {
        let slot = self.reserve().await?;
        let now = now_ms();
        if slot > now {
            tokio::time::sleep(Duration::from_millis(slot - now)).await;
        }
        Ok(UNIX_EPOCH + Duration::from_millis(slot))
    }

    /// Takes the next free slot with compare-and-set, in milliseconds since the epoch.
    async fn reserve(&self) -> Result<u64, JetStreamError> {
        loop {
            let now = now_ms();
            let (next_free, revision) = crate::kv::read_number(&self.store, &self.key)
                .await
                .map_err(unavailable)?;
            let slot = next_free.max(now);
            let written =
                crate::kv::write_number(&self.store, &self.key, slot + self.interval_ms, revision)
                    .await
                    .map_err(unavailable)?;
            if written {
                return Ok(slot);
            }
            // Another node took a slot first: read again.
        }
    }
}
