//! What was last delivered to each record of a destination, so that workers can skip requests
//! that would change nothing ("send only what changed").
//!
//! The runtime describes a record (a kind such as `user` and an id) by parts, each a short text
//! such as `metadata.plan` with a 64-bit hash of its value. The queue stores them opaquely, one
//! row per part of the `fingerprints` table, keyed by (destination, record, id, part); the hash
//! is stored bit for bit as SQLite's signed integer. Remembering a delivery is an upsert of the
//! parts it wrote (hash and time): parts it did not write are kept, as the destination keeps
//! the keys it is not sent.
//!
//! # Durability
//!
//! Remembering and pruning follow the delivery side's rule (`synchronous=NORMAL`, see the crate
//! docs): losing such a commit to a power loss only means the next request for that record is
//! sent although it changes nothing. Since a fingerprint is remembered only after the
//! destination accepted the request, a lost one can never make a worker skip a change.
//! Forgetting is different: a lost forget would keep the fingerprint of a record deleted at the
//! destination, and a later request that recreates it unchanged would be skipped. So
//! [`Queue::forget_fingerprints`] is written with the configured durability, like DLQ replay and
//! purge.
//!
//! # Bound
//!
//! [`Queue::prune_fingerprints`] deletes parts older than
//! [`QueueConfig::fingerprint_max_age`](crate::QueueConfig::fingerprint_max_age), then the oldest
//! beyond [`QueueConfig::fingerprint_max_rows`](crate::QueueConfig::fingerprint_max_rows). A
//! pruned part only means the next request for that record is sent again. Both deletions walk
//! the `updated_at` index, and the number of rows comes from `fingerprint_totals`, a counter
//! that every transaction inserting or deleting fingerprints moves by as many rows (like
//! `totals` for events), so stats and pruning never count millions of rows (a count of 5
//! million took about 80 ms, under the write lock when pruning). A part is remembered by an
//! update, then an insert when the update found no row, which tells new rows apart for the
//! counter. Measured on 5 million parts, that costs about 10% more than an `INSERT ... ON
//! CONFLICT DO UPDATE` for new parts and 25% less for known ones; triggers keeping the counter
//! instead doubled the cost of a new part.
//!
//! Pruning deletes at most [`PRUNE_CHUNK`] rows per transaction and releases the write
//! connection between transactions, so that enqueues go on while a large backlog (such as a
//! backfill of a million records a week ago, all expiring at once) is deleted; a call still
//! runs until everything it found is gone.

use std::collections::HashMap;
use std::time::SystemTime;

use rusqlite::{Transaction, params};

use crate::error::{QueueError, SqlContext};
use crate::types::{dur_ms, to_ms};
use crate::{Queue, SyncMode, lock};

/// Most rows [`Queue::prune_fingerprints`] deletes in one transaction.
///
/// Measured among 5 million rows, a chunk held the write connection for about 27 ms, about as
/// long as a large group commit; deleting a million rows in one transaction held it for 3 to 4 s,
/// during which no enqueue could commit.
pub(crate) const PRUNE_CHUNK: u64 = 10_000;

/// One stored part of a record: its name and the hash of its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FingerprintPart {
    /// The part, such as `metadata.plan` (empty for "the record exists").
    pub part: String,
    /// The hash of the part's value.
    pub hash: u64,
}

/// The stored form of a hash: the same 64 bits as SQLite's signed integer.
fn hash_to_sql(hash: u64) -> i64 {
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// The inverse of [`hash_to_sql`].
fn hash_from_sql(stored: i64) -> u64 {
    u64::from_ne_bytes(stored.to_ne_bytes())
}

/// Saturating conversion of a row count SQLite reported.
fn rows(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Moves the row counter by the rows a transaction added and removed.
fn add_rows(tx: &Transaction<'_>, added: u64, removed: u64) -> Result<(), QueueError> {
    if added == removed {
        return Ok(());
    }
    let delta = i64::try_from(added)
        .unwrap_or(i64::MAX)
        .saturating_sub(i64::try_from(removed).unwrap_or(i64::MAX));
    tx.prepare_cached("UPDATE fingerprint_totals SET rows = max(rows + ?1, 0) WHERE id = 1")
        .ctx("preparing the fingerprint count update")?
        .execute([delta])
        .ctx("updating the fingerprint count")?;
    Ok(())
}

/// The number of fingerprint rows, from the counter in `fingerprint_totals`.
pub(crate) fn stored_rows(conn: &rusqlite::Connection) -> Result<u64, QueueError> {
    let n: i64 = conn
        .prepare_cached("SELECT rows FROM fingerprint_totals WHERE id = 1")
        .ctx("preparing the fingerprint count")?
        .query_row([], |row| row.get(0))
        .ctx("reading the fingerprint count")?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Deletes up to `limit` of the oldest rows, only those updated before `before_ms` when given,
/// and counts them off; returns the rows deleted.
fn delete_oldest(
    tx: &Transaction<'_>,
    before_ms: Option<i64>,
    limit: u64,
) -> Result<u64, QueueError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // The subquery walks the `updated_at` index (which holds the primary key), and the delete
    // then finds each row by its primary key.
    let n = match before_ms {
        Some(before_ms) => tx
            .prepare_cached(
                "DELETE FROM fingerprints WHERE (destination, record, id, part) IN (
                     SELECT destination, record, id, part FROM fingerprints
                     WHERE updated_at < ?1 ORDER BY updated_at LIMIT ?2)",
            )
            .ctx("preparing the fingerprint age prune")?
            .execute(params![before_ms, limit])
            .ctx("deleting old fingerprints")?,
        None => tx
            .prepare_cached(
                "DELETE FROM fingerprints WHERE (destination, record, id, part) IN (
                     SELECT destination, record, id, part FROM fingerprints
                     ORDER BY updated_at LIMIT ?1)",
            )
            .ctx("preparing the fingerprint row prune")?
            .execute(params![limit])
            .ctx("deleting the oldest fingerprints")?,
    };
    let n = rows(n);
    add_rows(tx, 0, n)?;
    Ok(n)
}

impl Queue {
    /// The stored parts of each of `ids` (records of kind `record`) for `destination`; ids with
    /// none are absent from the map.
    ///
    /// Reads on the read-only connection, from one snapshot, with one primary-key lookup per
    /// id (500 ids among 5 million rows took about 4 ms).
    pub fn fingerprints(
        &self,
        destination: &str,
        record: &str,
        ids: &[&str],
    ) -> Result<HashMap<String, Vec<FingerprintPart>>, QueueError> {
        let mut out = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let conn = lock(&self.inner.reader);
        let tx = conn
            .unchecked_transaction()
            .ctx("starting a fingerprint read")?;
        let mut stmt = tx
            .prepare_cached(
                "SELECT part, hash FROM fingerprints
                 WHERE destination = ?1 AND record = ?2 AND id = ?3",
            )
            .ctx("preparing the fingerprint read")?;
        for id in ids {
            let parts = stmt
                .query_map(params![destination, record, id], |row| {
                    Ok(FingerprintPart {
                        part: row.get(0)?,
                        hash: hash_from_sql(row.get(1)?),
                    })
                })
                .ctx("reading fingerprints")?
                .collect::<Result<Vec<_>, _>>()
                .ctx("reading a fingerprint")?;
            if !parts.is_empty() {
                out.insert((*id).to_owned(), parts);
            }
        }
        Ok(out)
    }

    /// Records the parts delivered to records of kind `record` for `destination` at `now`, in
    /// one transaction for all `entries` (each an id with its parts): each part is inserted, or
    /// its hash and time updated; parts not mentioned are kept.
    pub fn remember_fingerprints(
        &self,
        destination: &str,
        record: &str,
        entries: &[(String, Vec<FingerprintPart>)],
        now: SystemTime,
    ) -> Result<(), QueueError> {
        if entries.iter().all(|(_, parts)| parts.is_empty()) {
            return Ok(());
        }
        let now = to_ms(now);
        self.write_tx(SyncMode::Normal, "remembering fingerprints", |tx| {
            // An update first, as most parts remembered were remembered before; an insert when
            // it found no row, counted for `fingerprint_totals`.
            let mut update = tx
                .prepare_cached(
                    "UPDATE fingerprints SET hash = ?5, updated_at = ?6
                     WHERE destination = ?1 AND record = ?2 AND id = ?3 AND part = ?4",
                )
                .ctx("preparing the fingerprint update")?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO fingerprints (destination, record, id, part, hash, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .ctx("preparing the fingerprint insert")?;
            let mut added = 0u64;
            for (id, parts) in entries {
                for part in parts {
                    let values = params![
                        destination,
                        record,
                        id,
                        part.part,
                        hash_to_sql(part.hash),
                        now
                    ];
                    if update.execute(values).ctx("updating a fingerprint")? == 0 {
                        insert.execute(values).ctx("writing a fingerprint")?;
                        added += 1;
                    }
                }
            }
            add_rows(tx, added, 0)
        })
    }

    /// Deletes every part of `ids` (records of kind `record`) for `destination`, as after the
    /// records were deleted at the destination; returns the rows deleted.
    pub fn forget_fingerprints(
        &self,
        destination: &str,
        record: &str,
        ids: &[&str],
    ) -> Result<u64, QueueError> {
        if ids.is_empty() {
            return Ok(0);
        }
        // See "Durability" in the module docs.
        let mode = self.inner.config.durability.into();
        self.write_tx(mode, "forgetting fingerprints", |tx| {
            let mut delete = tx
                .prepare_cached(
                    "DELETE FROM fingerprints WHERE destination = ?1 AND record = ?2 AND id = ?3",
                )
                .ctx("preparing the fingerprint delete")?;
            let mut n = 0u64;
            for id in ids {
                let deleted = delete
                    .execute(params![destination, record, id])
                    .ctx("deleting fingerprints")?;
                n = n.saturating_add(rows(deleted));
            }
            add_rows(tx, 0, n)?;
            Ok(n)
        })
    }

    /// Deletes parts last updated more than [`QueueConfig::fingerprint_max_age`] before `now`,
    /// then, while more than [`QueueConfig::fingerprint_max_rows`] rows remain, the oldest
    /// beyond that bound; returns the rows deleted.
    ///
    /// Runs in transactions of at most 10,000 deleted rows each, releasing the write connection
    /// in between so that enqueues are not held up by a large backlog; the call returns when
    /// both bounds hold. Both deletions walk the `updated_at` index and the row count is read
    /// from a counter, so a call with nothing to delete costs two small transactions.
    ///
    /// [`QueueConfig::fingerprint_max_age`]: crate::QueueConfig::fingerprint_max_age
    /// [`QueueConfig::fingerprint_max_rows`]: crate::QueueConfig::fingerprint_max_rows
    pub fn prune_fingerprints(&self, now: SystemTime) -> Result<u64, QueueError> {
        let cutoff = to_ms(now).saturating_sub(dur_ms(self.inner.config.fingerprint_max_age));
        let max_rows = self.inner.config.fingerprint_max_rows;
        let mut total = 0u64;
        loop {
            let n = self.write_tx(SyncMode::Normal, "pruning old fingerprints", |tx| {
                delete_oldest(tx, Some(cutoff), PRUNE_CHUNK)
            })?;
            total = total.saturating_add(n);
            if n < PRUNE_CHUNK {
                break;
            }
        }
        loop {
            // The excess is read again in each transaction, since other writers may have
            // added or removed rows in between.
            let (n, excess) =
                self.write_tx(SyncMode::Normal, "pruning excess fingerprints", |tx| {
                    let excess = stored_rows(tx)?.saturating_sub(max_rows);
                    if excess == 0 {
                        return Ok((0, 0));
                    }
                    Ok((delete_oldest(tx, None, excess.min(PRUNE_CHUNK))?, excess))
                })?;
            total = total.saturating_add(n);
            // Stop when the bound holds, or when the counter claims rows the table does not
            // have (it should not, but a loop must not trust that).
            if excess <= PRUNE_CHUNK || n == 0 {
                break;
            }
        }
        Ok(total)
    }

    /// How many parts are stored, from a counter (it costs no scan).
    pub fn fingerprint_count(&self) -> Result<u64, QueueError> {
        stored_rows(&lock(&self.inner.reader))
    }
}
