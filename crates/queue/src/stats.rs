//! Queue statistics for `actionkit queue stats` and metrics.
//!
//! Counting rows per state scans the `deliveries` table, so stats cost time proportional to the
//! number of stored deliveries; they run on the read-only connection and never block enqueues.
//! The number of fingerprint rows comes from a counter, not a count (there may be millions).

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use crate::error::{QueueError, SqlContext};
use crate::fingerprints::stored_rows;
use crate::schema::state;
use crate::types::{DeliveryId, DeliveryState, EventId, from_ms, to_ms};
use crate::{Queue, lock};

/// Counts for one destination instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DestinationStats {
    /// The destination instance name.
    pub destination: String,
    /// Rows waiting for their first attempt.
    pub pending: u64,
    /// Rows waiting for a retry.
    pub retry_scheduled: u64,
    /// Rows leased by workers.
    pub in_flight: u64,
    /// Rows in the DLQ.
    pub dead_lettered: u64,
    /// Deliveries acknowledged since the database was created (their rows are pruned).
    pub delivered_total: u64,
    /// Deliveries ever dead-lettered, including replayed and purged ones.
    pub dead_lettered_total: u64,
    /// Dead-lettered deliveries deleted by purges.
    pub purged_total: u64,
    /// Age in milliseconds of the oldest event not yet delivered nor dead-lettered.
    pub oldest_pending_age_ms: Option<u64>,
}

/// A snapshot of the whole queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    /// Stored events (live and dead-lettered).
    pub events_stored: u64,
    /// Stored payload plus `messageId` bytes.
    pub bytes_stored: u64,
    /// The configured event bound.
    pub max_events: u64,
    /// The configured byte bound.
    pub max_bytes: u64,
    /// Size of the main database file (pages times page size).
    pub db_file_bytes: u64,
    /// Size of the write-ahead log file.
    pub wal_file_bytes: u64,
    /// Background or inline WAL checkpoints that failed since open (they are retried; a growing
    /// number means something holds the database, and the WAL file grows meanwhile).
    pub checkpoint_failures: u64,
    /// Remembered fingerprint parts of delivered records (rows of `fingerprints`, read from a
    /// counter, so it costs no scan).
    pub fingerprints_stored: u64,
    /// Per-destination counts, sorted by destination name.
    pub destinations: Vec<DestinationStats>,
}

/// The stored state of one delivery of an event, as returned by [`Queue::deliveries`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryInfo {
    /// The delivery id.
    pub id: DeliveryId,
    /// The destination instance.
    pub destination: String,
    /// Where it is in the state machine.
    pub state: DeliveryState,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When it is next due: the retry time, the lease deadline, or when it became pending.
    pub due_at: SystemTime,
    /// The error of the last failed attempt.
    pub last_error: Option<String>,
    /// Why it was dead-lettered, when it was.
    pub dead_reason: Option<String>,
}

fn non_negative(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Queue {
    /// Lists the stored deliveries of one event, by destination order of enqueue.
    ///
    /// Delivered rows are pruned, so an event delivered everywhere (or unknown) has none.
    pub fn deliveries(&self, event: EventId) -> Result<Vec<DeliveryInfo>, QueueError> {
        let conn = lock(&self.inner.reader);
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, destination, state, attempts, due_at, last_error, dead_reason
                 FROM deliveries WHERE event_id = ?1 ORDER BY id",
            )
            .ctx("preparing the delivery lookup")?;
        let mut rows = stmt.query([event.0]).ctx("reading deliveries")?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().ctx("reading deliveries")? {
            let st: i64 = row.get(2).ctx("reading a delivery")?;
            let state = match st {
                state::PENDING => DeliveryState::Pending,
                state::RETRY => DeliveryState::RetryScheduled,
                state::IN_FLIGHT => DeliveryState::InFlight,
                state::DEAD => DeliveryState::DeadLettered,
                other => {
                    return Err(QueueError::Corrupt(format!(
                        "delivery state {other} is unknown"
                    )));
                }
            };
            let attempts: i64 = row.get(3).ctx("reading a delivery")?;
            out.push(DeliveryInfo {
                id: DeliveryId(row.get(0).ctx("reading a delivery")?),
                destination: row.get(1).ctx("reading a delivery")?,
                state,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                due_at: from_ms(row.get(4).ctx("reading a delivery")?),
                last_error: row.get(5).ctx("reading a delivery")?,
                dead_reason: row.get(6).ctx("reading a delivery")?,
            });
        }
        Ok(out)
    }

    /// Reads the current statistics; ages are measured against `now`.
    pub fn stats(&self, now: SystemTime) -> Result<QueueStats, QueueError> {
        let now_ms = to_ms(now);
        let conn = lock(&self.inner.reader);
        // One read transaction, so all numbers come from the same snapshot.
        let tx = conn.unchecked_transaction().ctx("starting a stats read")?;
        let (events, bytes): (i64, i64) = tx
            .query_row("SELECT events, bytes FROM totals WHERE id = 1", [], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .ctx("reading queue totals")?;
        let mut per: BTreeMap<String, DestinationStats> = BTreeMap::new();
        {
            let mut stmt = tx
                .prepare(
                    "SELECT destination, state, count(*),
                            min(CASE WHEN state < ?1 THEN enqueued_at END)
                     FROM deliveries GROUP BY destination, state",
                )
                .ctx("preparing the state counts")?;
            let mut rows = stmt.query([state::DEAD]).ctx("counting states")?;
            while let Some(row) = rows.next().ctx("counting states")? {
                let destination: String = row.get(0).ctx("reading state counts")?;
                let st: i64 = row.get(1).ctx("reading state counts")?;
                let n = non_negative(row.get(2).ctx("reading state counts")?);
                let oldest: Option<i64> = row.get(3).ctx("reading state counts")?;
                let entry = per
                    .entry(destination.clone())
                    .or_insert_with(|| DestinationStats {
                        destination,
                        ..DestinationStats::default()
                    });
                match st {
                    state::PENDING => entry.pending = n,
                    state::RETRY => entry.retry_scheduled = n,
                    state::IN_FLIGHT => entry.in_flight = n,
                    state::DEAD => entry.dead_lettered = n,
                    other => {
                        return Err(QueueError::Corrupt(format!(
                            "delivery state {other} is unknown"
                        )));
                    }
                }
                if let Some(oldest) = oldest {
                    let age = non_negative(now_ms.saturating_sub(oldest));
                    entry.oldest_pending_age_ms =
                        Some(entry.oldest_pending_age_ms.map_or(age, |a| a.max(age)));
                }
            }
        }
        {
            let mut stmt = tx
                .prepare(
                    "SELECT destination, delivered, dead_lettered, purged FROM destination_counters",
                )
                .ctx("preparing the counter read")?;
            let mut rows = stmt.query([]).ctx("reading counters")?;
            while let Some(row) = rows.next().ctx("reading counters")? {
                let destination: String = row.get(0).ctx("reading counters")?;
                let entry = per
                    .entry(destination.clone())
                    .or_insert_with(|| DestinationStats {
                        destination,
                        ..DestinationStats::default()
                    });
                entry.delivered_total = non_negative(row.get(1).ctx("reading counters")?);
                entry.dead_lettered_total = non_negative(row.get(2).ctx("reading counters")?);
                entry.purged_total = non_negative(row.get(3).ctx("reading counters")?);
            }
        }
        let fingerprints_stored = stored_rows(&tx)?;
        let page_count: i64 = tx
            .pragma_query_value(None, "page_count", |row| row.get(0))
            .ctx("reading the page count")?;
        let page_size: i64 = tx
            .pragma_query_value(None, "page_size", |row| row.get(0))
            .ctx("reading the page size")?;
        drop(tx);
        let mut wal_path = self.inner.path.clone().into_os_string();
        wal_path.push("-wal");
        let wal_file_bytes = std::fs::metadata(&wal_path).map_or(0, |m| m.len());
        Ok(QueueStats {
            events_stored: non_negative(events),
            bytes_stored: non_negative(bytes),
            max_events: self.inner.config.max_events,
            max_bytes: self.inner.config.max_bytes,
            db_file_bytes: non_negative(page_count.saturating_mul(page_size)),
            wal_file_bytes,
            checkpoint_failures: self
                .inner
                .checkpoint_failures
                .load(std::sync::atomic::Ordering::Relaxed),
            fingerprints_stored,
            destinations: per.into_values().collect(),
        })
    }
}
