//! The dead-letter queue: listing, inspecting, replaying and purging dead-lettered deliveries.
//!
//! Dead-lettered rows stay in `deliveries` with state `DEAD` and keep their event, so a replay
//! can send the same bytes again. Listing and inspection use the read-only connection; replay
//! and purge are written with the configured durability.

use std::fmt;
use std::time::SystemTime;

use rusqlite::{Row, ToSql, Transaction, params};

use crate::delivery::{Counter, bump_counter, remove_orphan_events};
use crate::error::{QueueError, SqlContext};
use crate::schema::state;
use crate::types::{DeliveryId, EventId, from_ms, to_ms};
use crate::{Queue, lock};

/// Narrows DLQ listings; `None` fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DlqFilter {
    /// Only entries for this destination instance.
    pub destination: Option<String>,
    /// Only entries of events with this `messageId`.
    pub message_id: Option<String>,
}

/// Which dead-lettered deliveries a replay or purge applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DlqSelection {
    /// These deliveries (ids that are not dead-lettered are skipped).
    Ids(Vec<DeliveryId>),
    /// Every dead-lettered delivery of this destination instance.
    Destination(String),
    /// Every dead-lettered delivery.
    All,
}

/// One dead-lettered delivery, without its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqEntry {
    /// The delivery id DLQ commands address.
    pub delivery_id: DeliveryId,
    /// The event it belongs to.
    pub event_id: EventId,
    /// The event's `messageId`.
    pub message_id: String,
    /// The destination instance it was for.
    pub destination: String,
    /// Attempts made, including the final one.
    pub attempts: u32,
    /// Why it was dead-lettered.
    pub reason: String,
    /// The error of the last retried attempt, if there was one.
    pub last_error: Option<String>,
    /// When the event was enqueued.
    pub enqueued_at: SystemTime,
    /// When it was dead-lettered.
    pub dead_at: SystemTime,
    /// Size of the stored payload.
    pub payload_bytes: u64,
}

/// One dead-lettered delivery with its payload, as returned by [`Queue::dlq_get`].
#[derive(Clone, PartialEq, Eq)]
pub struct DlqItem {
    /// The entry as listed.
    pub entry: DlqEntry,
    /// The event bytes as enqueued.
    pub payload: Vec<u8>,
}

// Payloads may contain personal data or secrets, so Debug shows only their size.
impl fmt::Debug for DlqItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DlqItem")
            .field("entry", &self.entry)
            .field("payload_bytes", &self.payload.len())
            .finish()
    }
}

const ENTRY_COLUMNS: &str =
    "d.id, d.event_id, e.message_id, d.destination, d.attempts, d.dead_reason,
     d.last_error, d.enqueued_at, d.dead_at, length(e.payload)";

fn entry_from_row(row: &Row<'_>) -> rusqlite::Result<DlqEntry> {
    let attempts: i64 = row.get(4)?;
    let payload_bytes: i64 = row.get(9)?;
    Ok(DlqEntry {
        delivery_id: DeliveryId(row.get(0)?),
        event_id: EventId(row.get(1)?),
        message_id: row.get(2)?,
        destination: row.get(3)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        reason: row.get::<_, Option<String>>(5)?.unwrap_or_default(),
        last_error: row.get(6)?,
        enqueued_at: from_ms(row.get(7)?),
        dead_at: from_ms(row.get::<_, Option<i64>>(8)?.unwrap_or(0)),
        payload_bytes: u64::try_from(payload_bytes).unwrap_or(0),
    })
}

/// Builds the `WHERE` clause and parameters of a filtered DLQ query.
fn filter_sql(filter: &DlqFilter) -> (String, Vec<&dyn ToSql>) {
    let mut sql = format!("d.state = {}", state::DEAD);
    let mut args: Vec<&dyn ToSql> = Vec::new();
    if let Some(destination) = &filter.destination {
        args.push(destination);
        sql.push_str(&format!(" AND d.destination = ?{}", args.len()));
    }
    if let Some(message_id) = &filter.message_id {
        args.push(message_id);
        sql.push_str(&format!(" AND e.message_id = ?{}", args.len()));
    }
    (sql, args)
}

impl Queue {
    /// Lists dead-lettered deliveries matching `filter`, oldest first, skipping `offset` and
    /// returning at most `limit`.
    pub fn dlq_list(
        &self,
        filter: &DlqFilter,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<DlqEntry>, QueueError> {
        let (where_sql, mut args) = filter_sql(filter);
        let limit = i64::from(limit);
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        args.push(&limit);
        let limit_idx = args.len();
        args.push(&offset);
        let offset_idx = args.len();
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM deliveries d JOIN events e ON e.id = d.event_id
             WHERE {where_sql} ORDER BY d.id LIMIT ?{limit_idx} OFFSET ?{offset_idx}"
        );
        let conn = lock(&self.inner.reader);
        let mut stmt = conn.prepare_cached(&sql).ctx("preparing the dlq listing")?;
        let rows = stmt
            .query_map(args.as_slice(), entry_from_row)
            .ctx("listing the dlq")?;
        rows.collect::<Result<Vec<_>, _>>()
            .ctx("reading a dlq entry")
    }

    /// Counts dead-lettered deliveries matching `filter`.
    pub fn dlq_count(&self, filter: &DlqFilter) -> Result<u64, QueueError> {
        let (where_sql, args) = filter_sql(filter);
        let sql = format!(
            "SELECT count(*) FROM deliveries d JOIN events e ON e.id = d.event_id WHERE {where_sql}"
        );
        let conn = lock(&self.inner.reader);
        let n: i64 = conn
            .prepare_cached(&sql)
            .ctx("preparing the dlq count")?
            .query_row(args.as_slice(), |row| row.get(0))
            .ctx("counting the dlq")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Returns one dead-lettered delivery with its payload, or `None` if `id` is not in the DLQ.
    pub fn dlq_get(&self, id: DeliveryId) -> Result<Option<DlqItem>, QueueError> {
        let sql = format!(
            "SELECT {ENTRY_COLUMNS}, e.payload FROM deliveries d JOIN events e ON e.id = d.event_id
             WHERE d.id = ?1 AND d.state = {}",
            state::DEAD
        );
        let conn = lock(&self.inner.reader);
        let mut stmt = conn.prepare_cached(&sql).ctx("preparing the dlq lookup")?;
        let mut rows = stmt.query([id.0]).ctx("reading a dlq entry")?;
        match rows.next().ctx("reading a dlq entry")? {
            Some(row) => Ok(Some(DlqItem {
                entry: entry_from_row(row).ctx("reading a dlq entry")?,
                payload: row.get(10).ctx("reading a dlq payload")?,
            })),
            None => Ok(None),
        }
    }

    /// Returns the selected dead-lettered deliveries to pending with attempts reset and the
    /// maximum-age clock restarted at `now`; returns how many.
    pub fn dlq_replay(&self, selection: &DlqSelection, now: SystemTime) -> Result<u64, QueueError> {
        let now_ms = to_ms(now);
        let mode = self.inner.config.durability.into();
        self.write_tx(mode, "replaying the dlq", |tx| {
            let set = format!(
                "UPDATE deliveries SET state = {}, due_at = ?1, age_from = ?1, attempts = 0,
                     lease_gen = lease_gen + 1, last_error = NULL, dead_reason = NULL, dead_at = NULL
                 WHERE state = {}",
                state::PENDING,
                state::DEAD
            );
            let n = match selection {
                DlqSelection::Ids(ids) => {
                    let mut stmt = tx
                        .prepare(&format!("{set} AND id = ?2"))
                        .ctx("preparing the dlq replay")?;
                    let mut n = 0;
                    for id in ids {
                        n += stmt
                            .execute(params![now_ms, id.0])
                            .ctx("replaying a dlq entry")?;
                    }
                    n
                }
                DlqSelection::Destination(destination) => tx
                    .execute(
                        &format!("{set} AND destination = ?2"),
                        params![now_ms, destination],
                    )
                    .ctx("replaying the dlq of a destination")?,
                DlqSelection::All => tx
                    .execute(&set, params![now_ms])
                    .ctx("replaying the whole dlq")?,
            };
            Ok(n as u64)
        })
    }

    /// Deletes the selected dead-lettered deliveries (and events left without deliveries),
    /// counting them as purged; returns how many deliveries.
    pub fn dlq_purge(&self, selection: &DlqSelection) -> Result<u64, QueueError> {
        let mode = self.inner.config.durability.into();
        self.write_tx(mode, "purging the dlq", |tx| {
            let delete = format!(
                "DELETE FROM deliveries WHERE state = {} AND {{}} RETURNING event_id, destination",
                state::DEAD
            );
            let mut removed: Vec<(i64, String)> = Vec::new();
            match selection {
                DlqSelection::Ids(ids) => {
                    let mut stmt = tx
                        .prepare(&delete.replace("{}", "id = ?1"))
                        .ctx("preparing the dlq purge")?;
                    for id in ids {
                        collect_removed(&mut stmt, &[&id.0], &mut removed)?;
                    }
                }
                DlqSelection::Destination(destination) => {
                    let mut stmt = tx
                        .prepare(&delete.replace("{}", "destination = ?1"))
                        .ctx("preparing the dlq purge")?;
                    collect_removed(&mut stmt, &[destination], &mut removed)?;
                }
                DlqSelection::All => {
                    let mut stmt = tx
                        .prepare(&delete.replace("{}", "1"))
                        .ctx("preparing the dlq purge")?;
                    collect_removed(&mut stmt, &[], &mut removed)?;
                }
            }
            finish_purge(tx, &removed)?;
            Ok(removed.len() as u64)
        })
    }
}

fn collect_removed(
    stmt: &mut rusqlite::Statement<'_>,
    args: &[&dyn ToSql],
    removed: &mut Vec<(i64, String)>,
) -> Result<(), QueueError> {
    let mut rows = stmt.query(args).ctx("purging the dlq")?;
    while let Some(row) = rows.next().ctx("purging the dlq")? {
        removed.push((
            row.get(0).ctx("reading a purged row")?,
            row.get(1).ctx("reading a purged row")?,
        ));
    }
    Ok(())
}

fn finish_purge(tx: &Transaction<'_>, removed: &[(i64, String)]) -> Result<(), QueueError> {
    let event_ids: Vec<i64> = removed.iter().map(|(id, _)| *id).collect();
    remove_orphan_events(tx, &event_ids)?;
    let mut per_destination: std::collections::BTreeMap<&str, u64> = Default::default();
    for (_, destination) in removed {
        *per_destination.entry(destination.as_str()).or_default() += 1;
    }
    for (destination, n) in per_destination {
        bump_counter(tx, destination, Counter::Purged, n)?;
    }
    Ok(())
}
