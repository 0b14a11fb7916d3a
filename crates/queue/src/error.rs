//! The error type of the queue.
//!
//! Every fallible operation returns [`QueueError`]. Messages are lowercase without a trailing
//! period and never contain event payloads (which may carry personal data or secrets).

/// What can go wrong when using the queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue is at its configured bound; nothing of the refused batch was stored.
    ///
    /// Intake answers `503 Service Unavailable` with `Retry-After: retry_after_secs`.
    #[error("queue is full; retry after {retry_after_secs} s")]
    Full {
        /// Seconds the sender should wait before trying again.
        retry_after_secs: u64,
    },
    /// The batch alone exceeds the configured bound, so it can never be accepted.
    #[error(
        "batch of {events} events ({bytes} bytes) exceeds the queue bound of {max_events} events / {max_bytes} bytes"
    )]
    BatchTooLarge {
        /// Number of events in the refused batch.
        events: u64,
        /// Stored size of the refused batch in bytes.
        bytes: u64,
        /// The configured event bound.
        max_events: u64,
        /// The configured byte bound.
        max_bytes: u64,
    },
    /// `enqueue` was called with an empty destination list, so the events could never leave the queue.
    #[error("enqueue needs at least one destination")]
    NoDestinations,
    /// A destination name is empty or appears twice in the destination list.
    #[error("invalid destination list: {reason} (destination {destination:?})")]
    InvalidDestination {
        /// The offending destination name.
        destination: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// The database file could not be opened or created.
    #[error("cannot open queue database {path}: {source}")]
    Open {
        /// The path that was opened.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database could not be switched to WAL mode (for example on a network file system).
    #[error("queue database {path} cannot use WAL journal mode (journal mode is {mode:?})")]
    NoWal {
        /// The database path.
        path: std::path::PathBuf,
        /// The journal mode SQLite reported instead.
        mode: String,
    },
    /// A configuration value is out of range.
    #[error("invalid queue configuration: {0}")]
    InvalidConfig(String),
    /// The database was written by a newer version of this crate.
    #[error(
        "queue database schema version {found} is newer than the newest this build supports ({supported})"
    )]
    SchemaTooNew {
        /// The version recorded in the database.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A stored row holds a value this build does not understand.
    #[error("corrupt queue row: {0}")]
    Corrupt(String),
    /// The writer thread has stopped, so no more events can be enqueued.
    #[error("queue is closed")]
    Closed,
    /// The shared transaction of a group commit failed; nothing of the batch was stored.
    #[error("group commit failed, nothing of the batch was stored: {0}")]
    CommitFailed(String),
    /// SQLite reported an error.
    #[error("sqlite error while {context}: {source}")]
    Sqlite {
        /// What the queue was doing.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },
    /// A file-system operation failed.
    #[error("i/o error while {context}: {source}")]
    Io {
        /// What the queue was doing.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Adds a context string to SQLite errors, the way `anyhow::Context` does for other crates.
pub(crate) trait SqlContext<T> {
    /// Wraps the error in [`QueueError::Sqlite`] naming what was being done.
    fn ctx(self, context: &'static str) -> Result<T, QueueError>;
}

impl<T> SqlContext<T> for Result<T, rusqlite::Error> {
    fn ctx(self, context: &'static str) -> Result<T, QueueError> {
        self.map_err(|source| QueueError::Sqlite { context, source })
    }
}
