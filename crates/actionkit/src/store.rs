//! One event queue with two stores: the SQLite file of a single `serve` process, or NATS
//! JetStream shared by several `serve` nodes (`server.queue.backend`).
//!
//! The delivery workers, the DLQ and stats commands and the metrics use [`EventQueue`] and
//! [`Leased`] and do not know which store they run on. Both stores keep the same promises (see
//! `docs/guarantees.md`): intake is answered only after the store has the event, a leased event
//! that is not finished within its lease is handed out again, a retry waits for its backoff or
//! `Retry-After`, a busy postponement does not count as an attempt, and past the maximum age an
//! event goes to the dead-letter queue.
//!
//! SQLite calls block, so they run on a blocking thread pool: the one of the runtime given to
//! [`EventQueue::sqlite`] (serve passes its intake runtime, see `WorkerConfig::queue_calls`), or
//! the current runtime's. JetStream calls are async.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use actionkit_jetstream::{JetStreamError, JetStreamQueue};
use actionkit_queue::{
    DeliveryId, DlqEntry, DlqFilter, DlqItem, DlqSelection, FingerprintPart, Lease, NewEvent,
    Queue, QueueError, QueueStats, RetryOutcome,
};
use bytes::Bytes;

/// What went wrong in a store; messages never hold credentials or event contents.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The SQLite store failed.
    #[error(transparent)]
    Sqlite(#[from] QueueError),
    /// The JetStream store failed or could not be reached.
    #[error(transparent)]
    JetStream(#[from] JetStreamError),
    /// A blocking store call could not run.
    #[error("a queue call did not finish: {0}")]
    Task(String),
}

impl StoreError {
    /// The `Retry-After` hint in seconds when the store is at its bound.
    pub fn full_retry_after(&self) -> Option<u64> {
        match self {
            StoreError::Sqlite(QueueError::Full { retry_after_secs }) => Some(*retry_after_secs),
            StoreError::JetStream(JetStreamError::Full { retry_after_secs }) => {
                Some(*retry_after_secs)
            }
            _ => None,
        }
    }

    /// Whether the store cannot take events for now (closed, or JetStream unreachable), as
    /// opposed to having failed.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Sqlite(QueueError::Closed)
                | StoreError::JetStream(JetStreamError::Unavailable { .. })
                | StoreError::JetStream(JetStreamError::Connect { .. })
        )
    }
}

/// The queue of `serve`, on either store; cheap to clone.
#[derive(Clone, Debug)]
pub enum EventQueue {
    /// The SQLite file of this process.
    Sqlite {
        /// The queue.
        queue: Queue,
        /// The runtime whose blocking pool runs its calls; `None` for the caller's.
        calls: Option<tokio::runtime::Handle>,
    },
    /// A JetStream shared with other nodes.
    JetStream {
        /// The queue.
        queue: Arc<JetStreamQueue>,
        /// How long after intake (or a replay) retries may go on: `server.max_age_secs`.
        max_age: Duration,
        /// When the stream's bound last refused events (milliseconds since the epoch), 0 once
        /// a later publish stored everything.
        full_at: Arc<AtomicU64>,
    },
}

/// An event handed to a worker, until its outcome is recorded.
pub enum Leased {
    /// A row of the SQLite queue.
    Sqlite(Lease),
    /// A message of a JetStream consumer.
    JetStream(Box<actionkit_jetstream::Leased>),
}

impl std::fmt::Debug for Leased {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Leased::Sqlite(lease) => lease.fmt(f),
            Leased::JetStream(leased) => leased.fmt(f),
        }
    }
}

impl Leased {
    /// The stored event.
    pub fn payload(&self) -> &[u8] {
        match self {
            Leased::Sqlite(lease) => &lease.payload,
            Leased::JetStream(leased) => &leased.payload,
        }
    }

    /// The event's `messageId`.
    pub fn message_id(&self) -> &str {
        match self {
            Leased::Sqlite(lease) => &lease.message_id,
            Leased::JetStream(leased) => &leased.message_id,
        }
    }

    /// Failed attempts before this one.
    pub fn attempts(&self) -> u32 {
        match self {
            Leased::Sqlite(lease) => lease.attempts,
            Leased::JetStream(leased) => leased.attempts,
        }
    }

    /// When the event was first stored.
    pub fn enqueued_at(&self) -> SystemTime {
        match self {
            Leased::Sqlite(lease) => lease.enqueued_at,
            Leased::JetStream(leased) => leased.enqueued_at,
        }
    }

    /// When the lease runs out and the event is handed out again.
    pub fn lease_until(&self) -> SystemTime {
        match self {
            Leased::Sqlite(lease) => lease.lease_until,
            Leased::JetStream(leased) => leased.lease_until,
        }
    }
}

/// Runs a blocking SQLite call on `on`'s blocking pool (the current runtime's when `None`).
async fn blocking<T: Send + 'static>(
    on: Option<&tokio::runtime::Handle>,
    f: impl FnOnce() -> Result<T, QueueError> + Send + 'static,
) -> Result<T, StoreError> {
    let task = match on {
        Some(handle) => handle.spawn_blocking(f),
        None => tokio::task::spawn_blocking(f),
    };
    match task.await {
        Ok(res) => res.map_err(StoreError::from),
        Err(err) => Err(StoreError::Task(err.to_string())),
    }
}

impl EventQueue {
    /// The SQLite queue `queue`, its calls run on `calls`' blocking pool.
    pub fn sqlite(queue: Queue, calls: Option<tokio::runtime::Handle>) -> EventQueue {
        EventQueue::Sqlite { queue, calls }
    }

    /// The JetStream queue `queue`, retrying for `max_age` at most.
    pub fn jetstream(queue: JetStreamQueue, max_age: Duration) -> EventQueue {
        EventQueue::JetStream {
            queue: Arc::new(queue),
            max_age,
            full_at: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Reports progress on JetStream leases while they are being delivered (nothing for
    /// SQLite, whose leases last their whole duration); stops when the guard drops.
    pub fn keep_alive(&self, leases: &[Leased]) -> Option<actionkit_jetstream::KeepAlive> {
        let EventQueue::JetStream { queue, .. } = self else {
            return None;
        };
        let leased: Vec<&actionkit_jetstream::Leased> = leases
            .iter()
            .filter_map(|lease| match lease {
                Leased::JetStream(leased) => Some(leased.as_ref()),
                Leased::Sqlite(_) => None,
            })
            .collect();
        Some(queue.keep_alive(&leased))
    }

    /// The store's name, for logs and `queue stats`.
    pub fn backend(&self) -> &'static str {
        match self {
            EventQueue::Sqlite { .. } => "sqlite",
            EventQueue::JetStream { .. } => "jetstream",
        }
    }

    /// How long a leased event is a worker's.
    pub fn lease_duration(&self) -> Duration {
        match self {
            EventQueue::Sqlite { queue, .. } => queue.config().lease_duration,
            EventQueue::JetStream { queue, .. } => queue.config().lease_duration,
        }
    }

    /// Stores `batch` for every destination instance in `destinations` and returns once it is
    /// stored; on error nothing of the batch may be relied on (the sender retries it, and a
    /// part that was stored is stored once more only past the duplicate window).
    pub async fn enqueue(
        &self,
        batch: Vec<NewEvent>,
        destinations: &[String],
    ) -> Result<(), StoreError> {
        match self {
            EventQueue::Sqlite { queue, .. } => {
                queue.submit(batch, destinations)?.await?;
                Ok(())
            }
            EventQueue::JetStream { queue, full_at, .. } => {
                // While the connection is down the client would hold a publish until its
                // timeout; the sender is better told at once to come back.
                if !queue.is_connected() {
                    return Err(StoreError::JetStream(JetStreamError::Unavailable {
                        action: "publish",
                        reason: format!(
                            "not connected to NATS at {}",
                            queue.config().urls.join(", ")
                        ),
                    }));
                }
                let events = batch
                    .into_iter()
                    .map(|event| (event.message_id, Bytes::from(event.payload)))
                    .collect();
                match queue.enqueue_batch(events).await {
                    Ok(_) => {
                        full_at.store(0, Ordering::Relaxed);
                        Ok(())
                    }
                    Err(err) => {
                        if matches!(err, JetStreamError::Full { .. }) {
                            full_at.store(now_ms(), Ordering::Relaxed);
                        }
                        Err(err.into())
                    }
                }
            }
        }
    }

    /// Leases up to `max` due events of `destination`; a JetStream lease waits up to `wait`
    /// for the first one.
    pub async fn lease(
        &self,
        destination: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Leased>, StoreError> {
        match self {
            EventQueue::Sqlite { queue, calls } => {
                let queue = queue.clone();
                let name = destination.to_owned();
                let leases = blocking(calls.as_ref(), move || {
                    queue.lease(&name, max, SystemTime::now())
                })
                .await?;
                Ok(leases.into_iter().map(Leased::Sqlite).collect())
            }
            EventQueue::JetStream { queue, .. } => {
                let leased = queue.lease(destination, max, wait).await?;
                Ok(leased
                    .into_iter()
                    .map(|one| Leased::JetStream(Box::new(one)))
                    .collect())
            }
        }
    }

    /// Whether [`EventQueue::lease`] waits for events itself (so an idle worker need not
    /// sleep between leases).
    pub fn lease_waits(&self) -> bool {
        matches!(self, EventQueue::JetStream { .. })
    }

    /// Ends delivered, skipped and filtered events; returns how many were found.
    pub async fn ack(&self, done: Vec<Leased>) -> Result<u64, StoreError> {
        match self {
            EventQueue::Sqlite { queue, calls } => {
                let ids: Vec<_> = done
                    .iter()
                    .filter_map(|leased| match leased {
                        Leased::Sqlite(lease) => Some(lease.id),
                        Leased::JetStream(_) => None,
                    })
                    .collect();
                let queue = queue.clone();
                blocking(calls.as_ref(), move || queue.ack_delivered(&ids)).await
            }
            EventQueue::JetStream { queue, .. } => {
                let leased: Vec<&actionkit_jetstream::Leased> = done
                    .iter()
                    .filter_map(|leased| match leased {
                        Leased::JetStream(leased) => Some(leased.as_ref()),
                        Leased::Sqlite(_) => None,
                    })
                    .collect();
                Ok(queue.ack_many(&leased).await?)
            }
        }
    }

    /// Sends a failed event back to wait until `when`, counting an attempt unless
    /// `count_attempt` is false (the destination was busy); past the maximum age it is
    /// dead-lettered with the reason `max age exceeded: <last_error>` instead.
    pub async fn schedule(
        &self,
        leased: Leased,
        when: SystemTime,
        last_error: &str,
        now: SystemTime,
        count_attempt: bool,
    ) -> Result<RetryOutcome, StoreError> {
        match (self, leased) {
            (EventQueue::Sqlite { queue, calls }, Leased::Sqlite(lease)) => {
                let queue = queue.clone();
                let last_error = last_error.to_owned();
                blocking(calls.as_ref(), move || {
                    if count_attempt {
                        queue.schedule_retry(&lease, when, &last_error, now)
                    } else {
                        queue.schedule_postpone(&lease, when, &last_error, now)
                    }
                })
                .await
            }
            (EventQueue::JetStream { queue, max_age, .. }, Leased::JetStream(leased)) => Ok(queue
                .schedule(&leased, when, last_error, now, count_attempt, *max_age)
                .await?),
            _ => Err(StoreError::Task(
                "an event leased from one store was reported to the other".to_owned(),
            )),
        }
    }

    /// Dead-letters a failed event with `reason`; `false` when its lease was lost meanwhile.
    pub async fn dead_letter(
        &self,
        leased: Leased,
        reason: &str,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        match (self, leased) {
            (EventQueue::Sqlite { queue, calls }, Leased::Sqlite(lease)) => {
                let queue = queue.clone();
                let reason = reason.to_owned();
                blocking(calls.as_ref(), move || {
                    queue.dead_letter(lease.id, &reason, now)
                })
                .await
            }
            (EventQueue::JetStream { queue, .. }, Leased::JetStream(leased)) => {
                queue.dead_letter(&leased, reason).await?;
                Ok(true)
            }
            _ => Err(StoreError::Task(
                "an event leased from one store was reported to the other".to_owned(),
            )),
        }
    }

    /// Housekeeping run every half lease: SQLite returns expired leases to pending and prunes
    /// fingerprints past their bounds (JetStream does both itself: ack wait and the bucket's
    /// maximum age). Returns (leases reclaimed, fingerprints pruned).
    pub async fn upkeep(&self) -> Result<(u64, u64), StoreError> {
        match self {
            EventQueue::Sqlite { queue, calls } => {
                let q = queue.clone();
                let reclaimed =
                    blocking(calls.as_ref(), move || q.reclaim_expired(SystemTime::now())).await?;
                let q = queue.clone();
                let pruned = blocking(calls.as_ref(), move || {
                    q.prune_fingerprints(SystemTime::now())
                })
                .await?;
                Ok((reclaimed, pruned))
            }
            EventQueue::JetStream { .. } => Ok((0, 0)),
        }
    }

    /// What was delivered to the records `ids` (of kind `record`) of `destination`; ids with
    /// nothing remembered are absent.
    pub async fn fingerprints(
        &self,
        destination: &str,
        record: &'static str,
        ids: Vec<String>,
    ) -> Result<HashMap<String, Vec<FingerprintPart>>, StoreError> {
        match self {
            EventQueue::Sqlite { queue, calls } => {
                let queue = queue.clone();
                let destination = destination.to_owned();
                blocking(calls.as_ref(), move || {
                    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                    queue.fingerprints(&destination, record, &ids)
                })
                .await
            }
            EventQueue::JetStream { queue, .. } => {
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                let found = queue.fingerprints(destination, record, &ids).await?;
                Ok(found.into_iter().collect())
            }
        }
    }

    /// Remembers the parts delivered to records of kind `record` of `destination`.
    pub async fn remember_fingerprints(
        &self,
        destination: &str,
        record: &'static str,
        entries: Vec<(String, Vec<FingerprintPart>)>,
    ) -> Result<(), StoreError> {
        match self {
            EventQueue::Sqlite { queue, calls } => {
                let queue = queue.clone();
                let destination = destination.to_owned();
                blocking(calls.as_ref(), move || {
                    queue.remember_fingerprints(&destination, record, &entries, SystemTime::now())
                })
                .await
            }
            EventQueue::JetStream { queue, .. } => Ok(queue
                .remember_fingerprints(destination, record, &entries, SystemTime::now())
                .await?),
        }
    }

    /// Forgets what was delivered to the records `ids` of kind `record` of `destination`.
    pub async fn forget_fingerprints(
        &self,
        destination: &str,
        record: &'static str,
        ids: Vec<String>,
    ) -> Result<u64, StoreError> {
        match self {
            EventQueue::Sqlite { queue, calls } => {
                let queue = queue.clone();
                let destination = destination.to_owned();
                blocking(calls.as_ref(), move || {
                    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                    queue.forget_fingerprints(&destination, record, &ids)
                })
                .await
            }
            EventQueue::JetStream { queue, .. } => {
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                Ok(queue.forget_fingerprints(destination, record, &ids).await?)
            }
        }
    }

    /// Counts per destination instance; `destinations` are the configured instances (JetStream
    /// has one consumer per instance and reports those).
    pub async fn stats(&self, destinations: &[String]) -> Result<QueueStats, StoreError> {
        match self {
            EventQueue::Sqlite { queue, calls } => {
                let queue = queue.clone();
                blocking(calls.as_ref(), move || queue.stats(SystemTime::now())).await
            }
            EventQueue::JetStream { queue, .. } => {
                Ok(queue.stats(destinations, SystemTime::now()).await?)
            }
        }
    }

    /// Dead-lettered deliveries matching `filter`, oldest first.
    pub async fn dlq_list(
        &self,
        filter: DlqFilter,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<DlqEntry>, StoreError> {
        match self {
            EventQueue::Sqlite { queue, calls } => {
                let queue = queue.clone();
                blocking(calls.as_ref(), move || {
                    queue.dlq_list(&filter, limit, offset)
                })
                .await
            }
            EventQueue::JetStream { queue, .. } => {
                Ok(queue.dlq_list(&filter, limit, offset).await?)
            }
        }
    }

    /// One dead-lettered delivery with its event, or `None`.
    pub async fn dlq_get(&self, id: DeliveryId) -> Result<Option<DlqItem>, StoreError> {
        match self {
            EventQueue::Sqlite { queue, calls } => {
                let queue = queue.clone();
                blocking(calls.as_ref(), move || queue.dlq_get(id)).await
            }
            EventQueue::JetStream { queue, .. } => Ok(queue.dlq_get(id).await?),
        }
    }

    /// Returns the selected dead letters to delivery, attempts reset and age clock restarted.
    pub async fn dlq_replay(&self, selection: DlqSelection) -> Result<u64, StoreError> {
        match self {
            EventQueue::Sqlite { queue, calls } => {
                let queue = queue.clone();
                blocking(calls.as_ref(), move || {
                    queue.dlq_replay(&selection, SystemTime::now())
                })
                .await
            }
            EventQueue::JetStream { queue, .. } => {
                Ok(queue.dlq_replay(&selection, SystemTime::now()).await?)
            }
        }
    }

    /// Deletes the selected dead letters for good.
    pub async fn dlq_purge(&self, selection: DlqSelection) -> Result<u64, StoreError> {
        match self {
            EventQueue::Sqlite { queue, calls } => {
                let queue = queue.clone();
                blocking(calls.as_ref(), move || queue.dlq_purge(&selection)).await
            }
            EventQueue::JetStream { queue, .. } => Ok(queue.dlq_purge(&selection).await?),
        }
    }

    /// Whether the store takes events now: `Err` with a reason and a `Retry-After` hint when
    /// the SQLite bound turned a request away within `window`, or JetStream is not connected.
    pub fn readiness(&self, window: Duration) -> Result<(), (&'static str, String, Option<u64>)> {
        match self {
            EventQueue::Sqlite { queue, .. } => {
                match queue.refused_full_within(SystemTime::now(), window) {
                    None => Ok(()),
                    Some(secs) => Err((
                        "queue_full",
                        "the queue is at its bound (server.queue.max_events or max_bytes) and \
                         refuses events until deliveries free room"
                            .to_owned(),
                        Some(secs),
                    )),
                }
            }
            EventQueue::JetStream { queue, full_at, .. } => {
                if !queue.is_connected() {
                    return Err((
                        "jetstream_unreachable",
                        format!(
                            "NATS is not reachable at {}; events are refused until it is",
                            queue.config().urls.join(", ")
                        ),
                        Some(JETSTREAM_RETRY_AFTER_SECS),
                    ));
                }
                if refused_within(full_at, window) {
                    return Err((
                        "queue_full",
                        "the events stream is at its bound (server.queue.max_events or \
                         max_bytes) and refuses events until deliveries free room"
                            .to_owned(),
                        Some(queue.config().full_retry_after.as_secs().max(1)),
                    ));
                }
                Ok(())
            }
        }
    }

    /// The `Retry-After` hint for a request while the store's bound turns events away (a
    /// JetStream that is not connected refuses at [`EventQueue::enqueue`], with its own reason).
    pub fn full_hint(&self) -> Option<u64> {
        match self {
            EventQueue::Sqlite { queue, .. } => queue.full_hint(SystemTime::now()),
            EventQueue::JetStream { queue, full_at, .. } => {
                refused_within(full_at, actionkit_queue::FULL_HINT_TTL)
                    .then(|| queue.config().full_retry_after.as_secs().max(1))
            }
        }
    }

    /// Whether this node is connected to JetStream; `None` for SQLite.
    pub fn connected(&self) -> Option<bool> {
        match self {
            EventQueue::Sqlite { .. } => None,
            EventQueue::JetStream { queue, .. } => Some(queue.is_connected()),
        }
    }
}

/// The `Retry-After` intake gives while NATS cannot be reached: the client retries soon, and
/// by then the connection is usually back (the client reconnects on its own).
pub const JETSTREAM_RETRY_AFTER_SECS: u64 = 5;

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Whether the bound refused events less than `window` ago (and nothing was stored since).
fn refused_within(full_at: &AtomicU64, window: Duration) -> bool {
    let at = full_at.load(Ordering::Relaxed);
    at != 0 && now_ms().saturating_sub(at) < u64::try_from(window.as_millis()).unwrap_or(u64::MAX)
}
