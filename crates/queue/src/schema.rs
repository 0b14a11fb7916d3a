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
    // Version 3: the number of fingerprint rows, kept by triggers so that pruning and stats
    // need not count 5 million rows (see `fingerprints`). The upsert's update path fires no
    // insert trigger, so only rows that are really added or removed move the counter.
    r#"
    CREATE TABLE fingerprint_totals (
        id   INTEGER PRIMARY KEY CHECK (id = 1),
        rows INTEGER NOT NULL
    );
    INSERT INTO fingerprint_totals (id, rows) SELECT 1, count(*) FROM fingerprints;
    CREATE TRIGGER fingerprints_count_insert AFTER INSERT ON fingerprints
    BEGIN
        UPDATE fingerprint_totals SET rows = rows + 1 WHERE id = 1;
    END;
    CREATE TRIGGER fingerprints_count_delete AFTER DELETE ON fingerprints
    BEGIN
        UPDATE fingerprint_totals SET rows = rows - 1 WHERE id = 1;
    END;
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
