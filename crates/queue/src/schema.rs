//! The database schema and its migrations.
//!
//! The table `schema_migrations` records every migration applied, one row per version. Opening a
//! database applies the missing migrations in order, each in its own transaction together with
//! its row in `schema_migrations`, so a crash during a migration leaves the database at the
//! previous version. A database whose newest version is above [`LATEST_VERSION`] is refused
//! rather than misread.
//!
//! Both id columns use `AUTOINCREMENT`, so an id is never reused after its row is deleted: an
//! acknowledgement from a stale lease, a DLQ command or an id printed in a log can never name a
//! different, later row.
//!
//! Delivery states are stored as small integers (see [`state`]); the partial indexes are built
//! on exactly the predicates the queries use (`state < 2`, `state = 2`, `state = 3`) so SQLite
//! can serve each query from one index.

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{QueueError, SqlContext};

/// The stored integer values of a delivery's state.
pub(crate) mod state {
    /// Waiting for its first attempt (or returned from an expired lease or the DLQ).
    pub const PENDING: i64 = 0;
    /// Waiting for a retry at `due_at` after a failed attempt.
    pub const RETRY: i64 = 1;
    /// Leased by a worker until `due_at`.
    pub const IN_FLIGHT: i64 = 2;
    /// Dead-lettered with a reason; waits for replay or purge.
    pub const DEAD: i64 = 3;
}

/// Migration `n` (1-based) is `MIGRATIONS[n - 1]`.
const MIGRATIONS: &[&str] = &[
    // Version 1: events, their per-destination deliveries, running totals and counters.
    r#"
    CREATE TABLE events (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id  TEXT    NOT NULL,
        payload     BLOB    NOT NULL,
        size        INTEGER NOT NULL,
        enqueued_at INTEGER NOT NULL
    );
    CREATE TABLE deliveries (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id    INTEGER NOT NULL REFERENCES events(id),
        destination TEXT    NOT NULL,
        state       INTEGER NOT NULL,
        due_at      INTEGER NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0,
        lease_gen   INTEGER NOT NULL DEFAULT 0,
        enqueued_at INTEGER NOT NULL,
        age_from    INTEGER NOT NULL,
        last_error  TEXT,
        dead_reason TEXT,
        dead_at     INTEGER
    );
    CREATE INDEX deliveries_event ON deliveries(event_id);
    CREATE INDEX deliveries_ready ON deliveries(destination, due_at) WHERE state < 2;
    CREATE INDEX deliveries_in_flight ON deliveries(due_at) WHERE state = 2;
    CREATE INDEX deliveries_dead ON deliveries(destination) WHERE state = 3;
    CREATE TABLE totals (
        id     INTEGER PRIMARY KEY CHECK (id = 1),
        events INTEGER NOT NULL,
        bytes  INTEGER NOT NULL
    );
    INSERT INTO totals (id, events, bytes) VALUES (1, 0, 0);
    CREATE TABLE destination_counters (
        destination   TEXT PRIMARY KEY,
        delivered     INTEGER NOT NULL DEFAULT 0,
        dead_lettered INTEGER NOT NULL DEFAULT 0,
        purged        INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    "#,
    // Version 2: what was last delivered to each record, part by part (see `fingerprints`).
    r#"
    CREATE TABLE fingerprints (
        destination TEXT    NOT NULL,
        record      TEXT    NOT NULL,
        id          TEXT    NOT NULL,
        part        TEXT    NOT NULL,
        hash        INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        PRIMARY KEY (destination, record, id, part)
    ) WITHOUT ROWID;
    CREATE INDEX fingerprints_age ON fingerprints(updated_at);
    "#,
    // Version 3: the number of fingerprint rows, so that pruning and stats need not count
    // millions of rows. Every transaction that inserts or deletes fingerprints moves it (see
    // `fingerprints`).
    r#"
    CREATE TABLE fingerprint_totals (
        id   INTEGER PRIMARY KEY CHECK (id = 1),
        rows INTEGER NOT NULL
    );
    INSERT INTO fingerprint_totals (id, rows) SELECT 1, count(*) FROM fingerprints;
    "#,
];

/// The newest schema version this build knows.
pub(crate) const LATEST_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`LATEST_VERSION`], returning the version found before migrating.
pub(crate) fn migrate(conn: &mut Connection, now_ms: i64) -> Result<i64, QueueError> {
    migrate_to(conn, now_ms, LATEST_VERSION)
}

/// Applies the migrations missing up to `target` (tests build older databases with it),
/// returning the version found before migrating.
fn migrate_to(conn: &mut Connection, now_ms: i64, target: i64) -> Result<i64, QueueError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at INTEGER NOT NULL
         );",
    )
    .ctx("creating the schema_migrations table")?;
    let found: i64 = conn
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |row| row.get(0),
        )
        .ctx("reading the schema version")?;
    if found > LATEST_VERSION {
        return Err(QueueError::SchemaTooNew {
            found,
            supported: LATEST_VERSION,
        });
    }
    for (idx, sql) in MIGRATIONS.iter().enumerate() {
        let version = idx as i64 + 1;
        if version <= found || version > target {
            continue;
        }
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("starting a migration")?;
        // Another process may have migrated between our read and our write lock.
        let done: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)",
                [version],
                |row| row.get(0),
            )
            .ctx("reading the schema version")?;
        if !done {
            tx.execute_batch(sql).ctx("applying a schema migration")?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                [version, now_ms],
            )
            .ctx("recording a schema migration")?;
        }
        tx.commit().ctx("committing a schema migration")?;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::{FingerprintPart, Queue, QueueConfig};

    /// Creates a database at `path` as a build that knew only migrations up to `version` would.
    fn create_at_version(path: &std::path::Path, version: i64) -> Connection {
        let mut conn = Connection::open(path).unwrap();
        assert_eq!(migrate_to(&mut conn, 1, version).unwrap(), 0);
        conn
    }

    fn versions(path: &std::path::Path) -> Vec<i64> {
        let conn = Connection::open(path).unwrap();
        let mut stmt = conn
            .prepare("SELECT version FROM schema_migrations ORDER BY version")
            .unwrap();
        stmt.query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn a_version_1_database_is_migrated_and_keeps_its_events() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("queue.db");
        {
            let conn = create_at_version(&path, 1);
            // What an enqueue of one event for destination `a` wrote under version 1.
            conn.execute_batch(
                "INSERT INTO events (id, message_id, payload, size, enqueued_at)
                     VALUES (1, 'm-1', X'7B7D', 5, 1000);
                 INSERT INTO deliveries (event_id, destination, state, due_at, enqueued_at, age_from)
                     VALUES (1, 'a', 0, 1000, 1000, 1000);
                 UPDATE totals SET events = 1, bytes = 5 WHERE id = 1;",
            )
            .unwrap();
        }
        assert_eq!(versions(&path), [1]);

        let q = Queue::open(&path, QueueConfig::default()).unwrap();
        assert_eq!(versions(&path), (1..=LATEST_VERSION).collect::<Vec<_>>());
        let stats = q.stats(SystemTime::now()).unwrap();
        assert_eq!((stats.events_stored, stats.fingerprints_stored), (1, 0));
        let leased = q.lease("a", 10, SystemTime::now()).unwrap();
        assert_eq!(leased.len(), 1);
        assert_eq!(leased[0].message_id, "m-1");
        assert_eq!(leased[0].payload, b"{}");

        // The new tables work, counter included.
        let part = FingerprintPart {
            part: String::new(),
            hash: 1,
        };
        q.remember_fingerprints(
            "a",
            "user",
            &[("u".to_owned(), vec![part])],
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(q.fingerprint_count().unwrap(), 1);
        assert_eq!(q.ack_delivered(&[leased[0].id]).unwrap(), 1);
        assert_eq!(q.stats(SystemTime::now()).unwrap().events_stored, 0);
    }

    #[test]
    fn a_version_2_database_gains_a_counter_of_its_fingerprints() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("queue.db");
        {
            let conn = create_at_version(&path, 2);
            conn.execute_batch(
                "INSERT INTO fingerprints (destination, record, id, part, hash, updated_at)
                 VALUES ('a', 'user', 'u1', '', -1, 1000),
                        ('a', 'user', 'u1', 'metadata.plan', 7, 1000),
                        ('b', 'user', 'u1', '', 0, 2000);",
            )
            .unwrap();
        }
        let q = Queue::open(&path, QueueConfig::default()).unwrap();
        assert_eq!(q.fingerprint_count().unwrap(), 3);
        let found = q.fingerprints("a", "user", &["u1"]).unwrap();
        let mut hashes: Vec<u64> = found["u1"].iter().map(|p| p.hash).collect();
        hashes.sort_unstable();
        assert_eq!(hashes, [7, u64::MAX]);
        // The counter starts from the existing rows.
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(10);
        assert_eq!(q.forget_fingerprints("a", "user", &["u1"]).unwrap(), 2);
        assert_eq!(q.fingerprint_count().unwrap(), 1);
        q.remember_fingerprints("b", "user", &[("u2".to_owned(), Vec::new())], t)
            .unwrap();
        assert_eq!(q.fingerprint_count().unwrap(), 1);
    }
}
