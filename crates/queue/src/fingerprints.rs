//! What was last delivered to each record of a destination, so that workers can skip requests
//! that would change nothing ("send only what changed").
//!
//! The runtime describes a record (a kind such as `user` and an id) by parts, each a short text
//! such as `metadata.plan` with a 64-bit hash of its value. The queue stores them opaquely, one
//! row per part, so remembering a delivery is an upsert of the parts it wrote: parts it did not
//! write are kept, as the destination keeps the keys it is not sent.
//!
//! The table is bounded: [`Queue::prune_fingerprints`] deletes parts older than
//! [`QueueConfig::fingerprint_max_age`](crate::QueueConfig::fingerprint_max_age) and the oldest
//! beyond [`QueueConfig::fingerprint_max_rows`](crate::QueueConfig::fingerprint_max_rows). A
//! pruned part only means the next request for that record is sent again.

use std::collections::HashMap;
use std::time::SystemTime;

use rusqlite::params;

use crate::error::{QueueError, SqlContext};
use crate::types::{dur_ms, to_ms};
use crate::{Queue, SyncMode, lock};

/// One stored part of a record: its name and the hash of its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FingerprintPart {
    /// The part, such as `metadata.plan` (empty for "the record exists").
    pub part: String,
    /// The hash of the part's value.
    pub hash: u64,
}

impl Queue {
    /// The stored parts of each of `ids` (records of kind `record`) for `destination`; ids with
    /// none are absent from the map.
    pub fn fingerprints(
        &self,
        destination: &str,
        record: &str,
        ids: &[&str],
    ) -> Result<HashMap<String, Vec<FingerprintPart>>, QueueError> {
        let conn = lock(&self.inner.reader);
        let mut stmt = conn
            .prepare_cached(
                "SELECT part, hash FROM fingerprints
                 WHERE destination = ?1 AND record = ?2 AND id = ?3",
            )
            .ctx("preparing the fingerprint read")?;
        let mut out = HashMap::new();
        for id in ids {
            let parts = stmt
                .query_map(params![destination, record, id], |row| {
                    Ok(FingerprintPart {
                        part: row.get(0)?,
                        // Stored bit for bit as a signed integer.
                        hash: row.get::<_, i64>(1)? as u64,
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

    /// Records the parts delivered to records of kind `record` for `destination`, one
    /// transaction for all: each part is inserted or updated; other parts are kept.
    pub fn remember_fingerprints(
        &self,
        destination: &str,
        record: &str,
        entries: &[(String, Vec<FingerprintPart>)],
        now: SystemTime,
    ) -> Result<(), QueueError> {
        if entries.is_empty() {
            return Ok(());
        }
        let now = to_ms(now);
        self.write_tx(SyncMode::Normal, "remembering fingerprints", |tx| {
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO fingerprints (destination, record, id, part, hash, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (destination, record, id, part)
                     DO UPDATE SET hash = excluded.hash, updated_at = excluded.updated_at",
                )
                .ctx("preparing the fingerprint upsert")?;
            for (id, parts) in entries {
                for part in parts {
                    upsert
                        .execute(params![
                            destination,
                            record,
                            id,
                            part.part,
                            part.hash as i64,
                            now
                        ])
                        .ctx("writing a fingerprint")?;
                }
            }
            Ok(())
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
        self.write_tx(SyncMode::Normal, "forgetting fingerprints", |tx| {
            let mut delete = tx
                .prepare_cached(
                    "DELETE FROM fingerprints WHERE destination = ?1 AND record = ?2 AND id = ?3",
                )
                .ctx("preparing the fingerprint delete")?;
            let mut n = 0u64;
            for id in ids {
                n += delete
                    .execute(params![destination, record, id])
                    .ctx("deleting fingerprints")? as u64;
            }
            Ok(n)
        })
    }

    /// Deletes parts older than the configured age and the oldest beyond the configured number
    /// of rows; returns the rows deleted.
    pub fn prune_fingerprints(&self, now: SystemTime) -> Result<u64, QueueError> {
        let cutoff = to_ms(now).saturating_sub(dur_ms(self.inner.config.fingerprint_max_age));
        let max_rows = i64::try_from(self.inner.config.fingerprint_max_rows).unwrap_or(i64::MAX);
        self.write_tx(SyncMode::Normal, "pruning fingerprints", |tx| {
            let old = tx
                .execute(
                    "DELETE FROM fingerprints WHERE updated_at < ?1",
                    params![cutoff],
                )
                .ctx("deleting old fingerprints")? as u64;
            let rows: i64 = tx
                .query_row("SELECT count(*) FROM fingerprints", [], |row| row.get(0))
                .ctx("counting fingerprints")?;
            let excess = rows.saturating_sub(max_rows);
            let over = if excess > 0 {
                tx.execute(
                    "DELETE FROM fingerprints WHERE (destination, record, id, part) IN (
                         SELECT destination, record, id, part FROM fingerprints
                         ORDER BY updated_at LIMIT ?1)",
                    params![excess],
                )
                .ctx("deleting the oldest fingerprints")? as u64
            } else {
                0
            };
            Ok(old + over)
        })
    }

    /// How many parts are stored, for `queue stats`.
    pub fn fingerprint_count(&self) -> Result<u64, QueueError> {
        let conn = lock(&self.inner.reader);
        let n: i64 = conn
            .query_row("SELECT count(*) FROM fingerprints", [], |row| row.get(0))
            .ctx("counting fingerprints")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
