//! The delivery side: leasing due rows and recording each attempt's outcome.
//!
//! All functions here run one short `BEGIN IMMEDIATE` transaction on the shared write
//! connection with `synchronous=NORMAL`; the crate docs explain why losing one of these commits
//! to a power loss only causes a duplicate delivery.

use std::collections::BTreeMap;
use std::time::SystemTime;

use rusqlite::{Transaction, TransactionBehavior, params};

use crate::error::{QueueError, SqlContext};
use crate::schema::state;
use crate::types::{DeliveryId, EventId, Lease, LeaseId, RetryOutcome, dur_ms, from_ms, to_ms};
use crate::{Queue, SyncMode, lock};

/// Which per-destination counter to bump.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counter {
    Delivered,
    DeadLettered,
    Purged,
}

/// Adds `n` to a destination's counter, creating its row on first use.
pub(crate) fn bump_counter(
    tx: &Transaction<'_>,
    destination: &str,
    counter: Counter,
    n: u64,
) -> Result<(), QueueError> {
    let sql = match counter {
        Counter::Delivered => {
            "INSERT INTO destination_counters (destination, delivered) VALUES (?1, ?2)
             ON CONFLICT (destination) DO UPDATE SET delivered = delivered + excluded.delivered"
        }
        Counter::DeadLettered => {
            "INSERT INTO destination_counters (destination, dead_lettered) VALUES (?1, ?2)
             ON CONFLICT (destination) DO UPDATE SET dead_lettered = dead_lettered + excluded.dead_lettered"
        }
        Counter::Purged => {
            "INSERT INTO destination_counters (destination, purged) VALUES (?1, ?2)
             ON CONFLICT (destination) DO UPDATE SET purged = purged + excluded.purged"
        }
    };
    tx.prepare_cached(sql)
        .ctx("preparing a counter update")?
        .execute(params![destination, n as i64])
        .ctx("updating a destination counter")?;
    Ok(())
}

/// Deletes the events among `event_ids` that no delivery refers to any more and subtracts them
/// from the totals.
pub(crate) fn remove_orphan_events(
    tx: &Transaction<'_>,
    event_ids: &[i64],
) -> Result<(), QueueError> {
    let mut stmt = tx
        .prepare_cached(
            "DELETE FROM events WHERE id = ?1
               AND NOT EXISTS (SELECT 1 FROM deliveries WHERE event_id = ?1)
             RETURNING size",
        )
        .ctx("preparing the event cleanup")?;
    let (mut n_events, mut n_bytes) = (0i64, 0i64);
    for id in event_ids {
        let mut rows = stmt.query([id]).ctx("deleting a finished event")?;
        while let Some(row) = rows.next().ctx("deleting a finished event")? {
            let size: i64 = row.get(0).ctx("reading an event size")?;
            n_events += 1;
            n_bytes += size;
        }
    }
    if n_events > 0 {
        tx.prepare_cached(
            "UPDATE totals SET events = events - ?1, bytes = bytes - ?2 WHERE id = 1",
        )
        .ctx("preparing the totals update")?
        .execute(params![n_events, n_bytes])
        .ctx("updating queue totals")?;
    }
    Ok(())
}

impl Queue {
    /// Runs `f` in one immediate transaction on the shared write connection.
    pub(crate) fn write_tx<T>(
        &self,
        mode: SyncMode,
        context: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, QueueError>,
    ) -> Result<T, QueueError> {
        let mut wc = lock(&self.inner.conn);
        wc.set_synchronous(mode)?;
        let tx = wc
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(context)?;
        let out = f(&tx)?;
        tx.commit().ctx(context)?;
        Ok(out)
    }

    /// Leases up to `max_n` due deliveries for `destination`, oldest due first.
    ///
    /// Due means pending or scheduled for a retry at or before `now`. Rows of this destination
    /// whose lease expired are returned to pending first, so a dead worker's rows are picked up.
    /// Each leased row is in flight until `now + lease_duration`.
    pub fn lease(
        &self,
        destination: &str,
        max_n: usize,
        now: SystemTime,
    ) -> Result<Vec<Lease>, QueueError> {
        if max_n == 0 {
            return Ok(Vec::new());
        }
        let now_ms = to_ms(now);
        let until_ms = now_ms.saturating_add(dur_ms(self.inner.config.lease_duration));
        let limit = i64::try_from(max_n).unwrap_or(i64::MAX);
        self.write_tx(SyncMode::Normal, "leasing deliveries", |tx| {
            tx.prepare_cached(
                "UPDATE deliveries SET state = ?1
                 WHERE state = ?2 AND due_at <= ?3 AND destination = ?4",
            )
            .ctx("preparing the lease reclaim")?
            .execute(params![
                state::PENDING,
                state::IN_FLIGHT,
                now_ms,
                destination
            ])
            .ctx("returning expired leases to pending")?;
            let mut select = tx
                .prepare_cached(
                    "SELECT d.id, d.event_id, d.lease_gen, d.attempts, d.enqueued_at, d.age_from,
                            d.last_error, e.message_id, e.payload
                     FROM deliveries d JOIN events e ON e.id = d.event_id
                     WHERE d.destination = ?1 AND d.state < 2 AND d.due_at <= ?2
                     ORDER BY d.due_at, d.id
                     LIMIT ?3",
                )
                .ctx("preparing the lease query")?;
            let mut leases = Vec::with_capacity(max_n.min(1024));
            let mut rows = select
                .query(params![destination, now_ms, limit])
                .ctx("selecting due deliveries")?;
            while let Some(row) = rows.next().ctx("selecting due deliveries")? {
                let generation: i64 = row.get(2).ctx("reading a delivery")?;
                let attempts: i64 = row.get(3).ctx("reading a delivery")?;
                leases.push(Lease {
                    id: LeaseId {
                        delivery: DeliveryId(row.get(0).ctx("reading a delivery")?),
                        generation: generation + 1,
                    },
                    event_id: EventId(row.get(1).ctx("reading a delivery")?),
                    destination: destination.to_owned(),
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    enqueued_at: from_ms(row.get(4).ctx("reading a delivery")?),
                    age_from: from_ms(row.get(5).ctx("reading a delivery")?),
                    lease_until: from_ms(until_ms),
                    last_error: row.get(6).ctx("reading a delivery")?,
                    message_id: row.get(7).ctx("reading an event")?,
                    payload: row.get(8).ctx("reading an event")?,
                });
            }
            drop(rows);
            let mut mark = tx
                .prepare_cached(
                    "UPDATE deliveries SET state = ?1, due_at = ?2, lease_gen = ?3 WHERE id = ?4",
                )
                .ctx("preparing the lease update")?;
            for lease in &leases {
                mark.execute(params![
                    state::IN_FLIGHT,
                    until_ms,
                    lease.id.generation,
                    lease.id.delivery.0
                ])
                .ctx("marking a delivery in flight")?;
            }
            Ok(leases)
        })
    }

    /// Returns every in-flight row whose lease ran out at or before `now` to pending, for all
    /// destinations; returns how many.
    ///
    /// [`Queue::lease`] already does this for its destination; call this for accurate stats or
    /// for destinations no worker is leasing.
    pub fn reclaim_expired(&self, now: SystemTime) -> Result<u64, QueueError> {
        let now_ms = to_ms(now);
        self.write_tx(SyncMode::Normal, "reclaiming expired leases", |tx| {
            let n = tx
                .execute(
                    "UPDATE deliveries SET state = ?1 WHERE state = ?2 AND due_at <= ?3",
                    params![state::PENDING, state::IN_FLIGHT, now_ms],
                )
                .ctx("returning expired leases to pending")?;
            Ok(n as u64)
        })
    }

    /// Records successful deliveries: deletes the rows, counts them as delivered and deletes
    /// events with no delivery left. Returns how many rows were found.
    ///
    /// Applies whatever state the row is in (even when the lease expired meanwhile), because the
    /// event did reach the destination. Ids already gone are skipped.
    pub fn ack_delivered(&self, leases: &[LeaseId]) -> Result<u64, QueueError> {
        if leases.is_empty() {
            return Ok(0);
        }
        self.write_tx(SyncMode::Normal, "acknowledging deliveries", |tx| {
            let mut delete = tx
                .prepare_cached(
                    "DELETE FROM deliveries WHERE id = ?1 RETURNING event_id, destination",
                )
                .ctx("preparing the delivery delete")?;
            let mut per_destination: BTreeMap<String, u64> = BTreeMap::new();
            let mut event_ids = Vec::with_capacity(leases.len());
            for lease in leases {
                let mut rows = delete
                    .query([lease.delivery.0])
                    .ctx("deleting a delivered row")?;
                while let Some(row) = rows.next().ctx("deleting a delivered row")? {
                    event_ids.push(row.get::<_, i64>(0).ctx("reading a delivery")?);
                    let destination: String = row.get(1).ctx("reading a delivery")?;
                    *per_destination.entry(destination).or_default() += 1;
                }
            }
            drop(delete);
            remove_orphan_events(tx, &event_ids)?;
            for (destination, n) in &per_destination {
                bump_counter(tx, destination, Counter::Delivered, *n)?;
            }
            Ok(event_ids.len() as u64)
        })
    }

    /// Schedules a retry of a failed attempt at `when`, counting the attempt and keeping
    /// `last_error`.
    ///
    /// Returns `false` (and writes nothing) when the lease is no longer current. Does not apply
    /// the maximum-age policy; [`Queue::schedule_retry`] does.
    pub fn retry_at(
        &self,
        lease: LeaseId,
        when: SystemTime,
        last_error: &str,
    ) -> Result<bool, QueueError> {
        self.reschedule(lease, when, last_error, true)
    }

    /// Sends a delivery back to wait until `when` without counting an attempt, keeping
    /// `last_error`: the destination was busy (for example a bulk job was running), which says
    /// nothing about the event. Returns `false` when the lease is no longer current. Does not
    /// apply the maximum-age policy; [`Queue::schedule_postpone`] does.
    pub fn postpone_at(
        &self,
        lease: LeaseId,
        when: SystemTime,
        last_error: &str,
    ) -> Result<bool, QueueError> {
        self.reschedule(lease, when, last_error, false)
    }

    fn reschedule(
        &self,
        lease: LeaseId,
        when: SystemTime,
        last_error: &str,
        count_attempt: bool,
    ) -> Result<bool, QueueError> {
        let when_ms = to_ms(when);
        let added = i64::from(count_attempt);
        self.write_tx(SyncMode::Normal, "scheduling a retry", |tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE deliveries
                     SET state = ?1, due_at = ?2, attempts = attempts + ?7, last_error = ?3
                     WHERE id = ?4 AND state = ?5 AND lease_gen = ?6",
                )
                .ctx("preparing the retry update")?
                .execute(params![
                    state::RETRY,
                    when_ms,
                    last_error,
                    lease.delivery.0,
                    state::IN_FLIGHT,
                    lease.generation,
                    added
                ])
                .ctx("scheduling a retry")?;
            Ok(n == 1)
        })
    }

    /// Dead-letters a delivery after a final failure, counting the attempt and keeping `reason`.
    ///
    /// Returns `false` (and writes nothing) when the lease is no longer current.
    pub fn dead_letter(
        &self,
        lease: LeaseId,
        reason: &str,
        now: SystemTime,
    ) -> Result<bool, QueueError> {
        let now_ms = to_ms(now);
        self.write_tx(SyncMode::Normal, "dead-lettering a delivery", |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE deliveries
                     SET state = ?1, due_at = ?2, dead_at = ?2, attempts = attempts + 1,
                         dead_reason = ?3
                     WHERE id = ?4 AND state = ?5 AND lease_gen = ?6
                     RETURNING destination",
                )
                .ctx("preparing the dead-letter update")?;
            let mut rows = stmt
                .query(params![
                    state::DEAD,
                    now_ms,
                    reason,
                    lease.delivery.0,
                    state::IN_FLIGHT,
                    lease.generation
                ])
                .ctx("dead-lettering a delivery")?;
            let destination: Option<String> = match rows.next().ctx("dead-lettering a delivery")? {
                Some(row) => Some(row.get(0).ctx("reading a delivery")?),
                None => None,
            };
            drop(rows);
            drop(stmt);
            match destination {
                Some(destination) => {
                    bump_counter(tx, &destination, Counter::DeadLettered, 1)?;
                    Ok(true)
                }
                None => Ok(false),
            }
        })
    }

    /// Records a failed attempt under the maximum-age policy.
    ///
    /// If `when` is no later than `lease.age_from + max_age` the retry is scheduled; otherwise the
    /// row is dead-lettered with the reason `max age exceeded: <last_error>`.
    pub fn schedule_retry(
        &self,
        lease: &Lease,
        when: SystemTime,
        last_error: &str,
        now: SystemTime,
    ) -> Result<RetryOutcome, QueueError> {
        self.schedule(lease, when, last_error, now, true)
    }

    /// Like [`Queue::schedule_retry`], without counting an attempt ([`Queue::postpone_at`]):
    /// a delivery the destination was too busy to take still ends in the DLQ past the maximum
    /// age.
    pub fn schedule_postpone(
        &self,
        lease: &Lease,
        when: SystemTime,
        last_error: &str,
        now: SystemTime,
    ) -> Result<RetryOutcome, QueueError> {
        self.schedule(lease, when, last_error, now, false)
    }

    fn schedule(
        &self,
        lease: &Lease,
        when: SystemTime,
        last_error: &str,
        now: SystemTime,
        count_attempt: bool,
    ) -> Result<RetryOutcome, QueueError> {
        let applied_as = if when <= self.inner.config.retry_deadline(lease) {
            self.reschedule(lease.id, when, last_error, count_attempt)?
                .then_some(RetryOutcome::RetryScheduled)
        } else {
            let reason = format!("max age exceeded: {last_error}");
            self.dead_letter(lease.id, &reason, now)?
                .then_some(RetryOutcome::DeadLettered)
        };
        Ok(applied_as.unwrap_or(RetryOutcome::LeaseLost))
    }
}
