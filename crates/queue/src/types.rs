//! Public value types: identifiers, events, leases, configuration and time conversion.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::QueueError;

/// The identifier of a stored event, unique within one queue database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub i64);

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The identifier of one (event, destination instance) delivery, unique within one queue database.
///
/// DLQ commands address entries by this id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeliveryId(pub i64);

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An event to enqueue: opaque JSON bytes plus the sender's `messageId`.
///
/// The queue never parses `payload`.
#[derive(Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The event's `messageId`; duplicates after redelivery carry the same one.
    pub message_id: String,
    /// The event as received, usually JSON.
    pub payload: Vec<u8>,
}

impl NewEvent {
    /// Builds an event from its `messageId` and payload bytes.
    pub fn new(message_id: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            message_id: message_id.into(),
            payload: payload.into(),
        }
    }

    /// The number of bytes this event counts against [`QueueConfig::max_bytes`].
    pub fn stored_size(&self) -> u64 {
        (self.message_id.len() + self.payload.len()) as u64
    }
}

// Payloads may contain personal data or secrets, so Debug shows only their size.
impl fmt::Debug for NewEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewEvent")
            .field("message_id", &self.message_id)
            .field("payload_bytes", &self.payload.len())
            .finish()
    }
}

/// The state of a delivery that is still stored.
///
/// Delivered rows are deleted at once and only counted, so there is no `Delivered` variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its first attempt, or returned from an expired lease or from the DLQ.
    Pending,
    /// Waiting for a retry at a given time after a failed attempt.
    RetryScheduled,
    /// Leased by a worker.
    InFlight,
    /// Dead-lettered with a reason.
    DeadLettered,
}

/// Names one lease of one delivery: the delivery id plus the lease generation.
///
/// Each lease of a row bumps its generation, so a worker whose lease expired and was handed to
/// another worker cannot overwrite that worker's outcome with a stale retry or dead-letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseId {
    /// The leased delivery.
    pub delivery: DeliveryId,
    /// The lease generation of the row when it was leased.
    pub generation: i64,
}

/// One delivery handed to a worker by [`crate::Queue::lease`].
#[derive(Clone)]
pub struct Lease {
    /// What to pass to `ack_delivered`, `retry_at` or `dead_letter`.
    pub id: LeaseId,
    /// The event being delivered.
    pub event_id: EventId,
    /// The destination instance to deliver to.
    pub destination: String,
    /// The event's `messageId`.
    pub message_id: String,
    /// The event bytes as enqueued.
    pub payload: Vec<u8>,
    /// Failed attempts before this one.
    pub attempts: u32,
    /// When the event was first enqueued.
    pub enqueued_at: SystemTime,
    /// Where the maximum-age clock starts: the enqueue time, or the last DLQ replay.
    pub age_from: SystemTime,
    /// When the lease runs out and the row becomes due again.
    pub lease_until: SystemTime,
    /// The error of the previous failed attempt, if any.
    pub last_error: Option<String>,
}

// Payloads may contain personal data or secrets, so Debug shows only their size.
impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("id", &self.id)
            .field("event_id", &self.event_id)
            .field("destination", &self.destination)
            .field("message_id", &self.message_id)
            .field("payload_bytes", &self.payload.len())
            .field("attempts", &self.attempts)
            .field("enqueued_at", &self.enqueued_at)
            .field("age_from", &self.age_from)
            .field("lease_until", &self.lease_until)
            .field("last_error", &self.last_error)
            .finish()
    }
}

/// What [`crate::Queue::schedule_retry`] did with a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    /// The delivery will be retried at the requested time.
    RetryScheduled,
    /// The delivery was dead-lettered because the retry would fall after the maximum age.
    DeadLettered,
    /// The lease had expired and the row was leased again or changed meanwhile; nothing was
    /// written.
    LeaseLost,
}

/// How hard SQLite works to make a commit survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: every enqueue commit is fsynced before callers are answered, so
    /// acknowledged events survive process crashes and power loss (on disks that honour fsync).
    #[default]
    Full,
    /// `synchronous=NORMAL`: enqueue commits reach the operating system but are fsynced only at
    /// checkpoints. Survives process crashes (`kill -9`); a power loss or kernel crash can lose the
    /// last commits, which breaks the acknowledgement promise. Only for tests and benchmarks.
    ProcessCrashOnly,
}

/// Settings of a queue; [`QueueConfig::default`] gives sensible production values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Most events stored at once (live and dead-lettered); beyond it enqueue answers `Full`.
    pub max_events: u64,
    /// Most payload plus `messageId` bytes stored at once; beyond it enqueue answers `Full`.
    pub max_bytes: u64,
    /// The `Retry-After` hint returned with `Full`.
    pub full_retry_after: Duration,
    /// How long a lease lasts before the row is handed out again.
    pub lease_duration: Duration,
    /// How long after enqueue (or replay) retries may continue before dead-lettering.
    pub max_age: Duration,
    /// Fsync policy for enqueue commits.
    pub durability: Durability,
    /// Whether opening returns rows left in flight by a previous process to pending.
    ///
    /// The process that runs delivery workers must open with `true` (the default). Tools that
    /// open the database while a server is running (DLQ commands, stats) should use `false`,
    /// or they would hand the server's in-flight rows out a second time.
    pub recover_in_flight: bool,
    /// How long to wait for another process holding the database's write lock.
    pub busy_timeout: Duration,
    /// Most events written in one group-commit transaction; more waiting requests go in the next.
    pub max_events_per_commit: usize,
    /// How long what was delivered to a record is remembered (7 days); after that, the next
    /// request for the record is sent even if it changes nothing.
    pub fingerprint_max_age: Duration,
    /// Most remembered parts in all (5,000,000, a few hundred MB at most); the oldest beyond it
    /// are forgotten.
    pub fingerprint_max_rows: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_events: 1_000_000,
            max_bytes: 1024 * 1024 * 1024,
            full_retry_after: Duration::from_secs(10),
            lease_duration: Duration::from_secs(60),
            max_age: Duration::from_secs(4 * 60 * 60),
            durability: Durability::Full,
            recover_in_flight: true,
            busy_timeout: Duration::from_secs(5),
            max_events_per_commit: 20_000,
            fingerprint_max_age: Duration::from_secs(7 * 24 * 60 * 60),
            fingerprint_max_rows: 5_000_000,
        }
    }
}

impl QueueConfig {
    /// Checks the values that would make the queue unusable.
    pub fn validate(&self) -> Result<(), QueueError> {
        if self.max_events == 0 {
            return Err(QueueError::InvalidConfig(
                "max_events must be at least 1".into(),
            ));
        }
        if self.max_bytes == 0 {
            return Err(QueueError::InvalidConfig(
                "max_bytes must be at least 1".into(),
            ));
        }
        if self.lease_duration.is_zero() {
            return Err(QueueError::InvalidConfig(
                "lease_duration must be longer than zero".into(),
            ));
        }
        if self.fingerprint_max_age.is_zero() {
            return Err(QueueError::InvalidConfig(
                "fingerprint_max_age must be longer than zero".into(),
            ));
        }
        if self.fingerprint_max_rows == 0 {
            return Err(QueueError::InvalidConfig(
                "fingerprint_max_rows must be at least 1".into(),
            ));
        }
        if self.max_events_per_commit == 0 {
            return Err(QueueError::InvalidConfig(
                "max_events_per_commit must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The latest time a retry of `lease` may be scheduled for: `age_from + max_age`.
    pub fn retry_deadline(&self, lease: &Lease) -> SystemTime {
        lease
            .age_from
            .checked_add(self.max_age)
            .unwrap_or(lease.age_from)
    }
}

/// Milliseconds since the Unix epoch, the queue's stored time format; times before the epoch
/// become 0 and times too far in the future saturate.
pub(crate) fn to_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// The inverse of [`to_ms`].
pub(crate) fn from_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Saturating conversion of a duration to stored milliseconds.
pub(crate) fn dur_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_round_trips_at_millisecond_precision() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(to_ms(t), 1_700_000_000_123);
        assert_eq!(from_ms(to_ms(t)), t);
        assert_eq!(to_ms(UNIX_EPOCH - Duration::from_secs(5)), 0);
        assert_eq!(from_ms(-7), UNIX_EPOCH);
    }

    #[test]
    fn config_validation_names_the_field() {
        let cfg = QueueConfig {
            max_events: 0,
            ..QueueConfig::default()
        };
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("max_events"), "{err}");
        assert!(QueueConfig::default().validate().is_ok());
    }
}
