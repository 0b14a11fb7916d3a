//! A durable event queue on SQLite for `actionkit serve`.
//!
//! The queue stores opaque event bytes plus a `messageId` and fans every event out to a list of
//! destination instances. It knows nothing about HTTP or Segment: intake calls
//! [`Queue::enqueue`] and answers its sender only after that returns, delivery workers call
//! [`Queue::lease`] and report each outcome, operators use the DLQ and stats functions.
//!
//! # Data model
//!
//! * `events`: one row per enqueued event (`message_id`, `payload`, size, enqueue time).
//! * `deliveries`: one row per (event, destination instance), carrying that pair's own state,
//!   attempt count, last error, lease generation and due time. An event row is deleted as soon
//!   as its last delivery row is gone.
//! * `totals`: the number and bytes of stored events, updated in the same transactions that
//!   insert or delete events, so the bound is checked without counting rows and stays right
//!   when several processes share the file.
//! * `destination_counters`: how many deliveries were delivered, dead-lettered and purged per
//!   destination. Delivered rows are deleted at once (pruned) and survive only in this counter,
//!   so the database does not grow with the number of events ever delivered.
//! * `fingerprints`: what was last delivered to each record of a destination, one row per
//!   (destination, record kind, record id, part) with the part's 64-bit hash and the time it
//!   was written, so that workers can skip requests that would change nothing; bounded by age
//!   and row count, oldest `updated_at` first (see the `fingerprints` module).
//! * `fingerprint_totals`: the number of `fingerprints` rows, moved by the transactions that
//!   insert or delete them, so that pruning and stats need not count them.
//! * `schema_migrations`: applied schema versions (see the `schema` module).
//!
//! # State machine of one delivery
//!
//! A delivery row is in one of four stored states; "delivered" is not stored, the row is
//! deleted and counted instead.
//!
//! | From | Transition | To |
//! |---|---|---|
//! | (none) | `enqueue` | `PENDING`, due now |
//! | `PENDING` or `RETRY_SCHEDULED`, due (`due_at <= now`) | `lease` | `IN_FLIGHT`, `due_at = now + lease_duration`, generation + 1 |
//! | `IN_FLIGHT` | `ack_delivered` (also from any other state) | deleted, `delivered += 1` |
//! | `IN_FLIGHT`, current generation | `retry_at(T)` | `RETRY_SCHEDULED`, `due_at = T`, attempts + 1 |
//! | `IN_FLIGHT`, current generation | `dead_letter(reason)` | `DEAD_LETTERED`, attempts + 1 |
//! | `IN_FLIGHT`, lease ran out | `lease` of that destination, `reclaim_expired` | `PENDING` |
//! | `IN_FLIGHT` | `open` after the leasing process died | `PENDING`, due now |
//! | `DEAD_LETTERED` | `dlq_replay` | `PENDING`, attempts 0, age clock restarted |
//! | `DEAD_LETTERED` | `dlq_purge` | deleted, `purged += 1` |
//!
//! * `PENDING` and `RETRY_SCHEDULED` rows are *due* when `due_at <= now`; [`Queue::lease`] hands
//!   out due rows oldest `due_at` first and moves them to `IN_FLIGHT` with
//!   `due_at = now + lease_duration`.
//! * An `IN_FLIGHT` row whose lease ran out (its worker died or hung) returns to `PENDING` the
//!   next time a worker leases that destination, or on [`Queue::reclaim_expired`]; opening the
//!   queue returns every `IN_FLIGHT` row to `PENDING` (unless
//!   [`QueueConfig::recover_in_flight`] is off), because the process that leased it is gone.
//! * Each lease bumps the row's generation. [`Queue::retry_at`] and [`Queue::dead_letter`] only
//!   apply while the caller's lease is current, so a worker that lost its lease cannot overwrite
//!   another worker's outcome. [`Queue::ack_delivered`] applies whatever the row's state: the event
//!   did reach the destination, so removing the row (even from the DLQ) is the truth.
//! * [`Queue::schedule_retry`] applies the maximum-age policy: a retry that would fall after
//!   `age_from + max_age` (4 hours by default) dead-letters the row instead, with the reason
//!   `max age exceeded: <last error>`. `age_from` is the enqueue time, reset by a DLQ replay.
//!   Rows that wait in `PENDING` without a failed attempt are never aged out: they are delivered
//!   late rather than dropped.
//!
//! # Durability argument
//!
//! The database runs in WAL mode. [`Queue::enqueue`] returns only after the transaction holding
//! its rows has committed; with [`Durability::Full`] (the default, `synchronous=FULL`) SQLite
//! fsyncs the WAL before `COMMIT` returns, so an acknowledged event survives a process crash
//! (`kill -9`), a kernel crash and a power loss, as far as the disk honours fsync. With
//! [`Durability::ProcessCrashOnly`] (`synchronous=NORMAL`) the commit is in the operating
//! system's page cache when enqueue returns: that survives `kill -9` but a power loss can lose
//! the last commits, so it is offered for tests and benchmarks only.
//!
//! Delivery-side transactions (lease, ack, retry, dead-letter, lease reclaim) always run with
//! `synchronous=NORMAL`. That is safe for the promise because losing one of them only moves a row
//! back to an earlier state: a lost ack or outcome means the event is delivered again (a duplicate
//! with the same `messageId`, which at-least-once allows), a lost lease means nothing. Since the
//! WAL is append-only, the next fsynced commit also makes every earlier one durable, so a
//! delivery-side write can never be kept while an earlier enqueue is lost. DLQ replay and purge
//! run with the configured durability because an operator expects them to stick.
//! Fingerprints are remembered and pruned with `synchronous=NORMAL` and forgotten with the
//! configured durability (the `fingerprints` module says why).
//!
//! Group commit (see the `writer` module) keeps this affordable: one fsync covers every request
//! that arrived while the previous commit was being written.
//!
//! # Bound
//!
//! [`QueueConfig::max_events`] and [`QueueConfig::max_bytes`] bound the stored events, live and
//! dead-lettered alike (the DLQ lives in the same file). A batch that does not fit is refused
//! whole with [`QueueError::Full`] and none of it is stored; intake answers `503` with
//! `Retry-After`. A batch larger than the bound itself gets [`QueueError::BatchTooLarge`].
//!
//! # Storage tuning
//!
//! Chosen with profiles of `examples/enqueue_load.rs` (which reports CPU time per event) and the
//! criterion bench: 4 KiB pages (see below), a 64 MiB page cache on the write connection (a group commit
//! must not spill mid-transaction), foreign keys declared but not enforced (enforcement forces a
//! statement journal on every insert and delete), WAL checkpoints on a background thread
//! instead of inside commits, and multi-row `INSERT` statements for the events and delivery rows
//! of a group commit, all prepared once and cached (profiles of `actionkit serve` under the
//! `serve_load` benchmark showed per-row statement overhead and SQL parsing on every commit).
//!
//! The page size trades batch throughput against the cost of a small commit. A commit writes
//! every page it changed to the WAL whole, and even a one-event commit changes six (the events
//! and deliveries tables, two indexes, the totals row and AUTOINCREMENT's sequence). With 16 KiB
//! pages that was 96 KiB of WAL per single `/v1/track` call, about 80 MiB/s of writes and a
//! checkpoint every fifth of a second at 1,000 calls per second; traces showed the commits'
//! fsyncs stalling behind that traffic. 4 KiB pages cut it by four, for about 15% less batch
//! throughput (`serve_load`: about 74,000 instead of 84,000 to 90,000 events/s). The page size
//! is fixed when the file is created, so a queue created with 16 KiB pages keeps them; the
//! checkpoint thresholds are in bytes, so they stay the same either way.
//!
//! # Threads
//!
//! [`Queue`] is cheap to clone and may be shared by any number of threads. Enqueues go to the
//! writer thread; it and the other writes share one connection behind a mutex (so they never
//! contend for SQLite's lock inside this process), and reads (stats, DLQ listing, fingerprints)
//! use a second, read-only connection that WAL lets run beside the writer. A third connection
//! on its own thread runs WAL checkpoints (see the `checkpoint` module). Other processes (the
//! `actionkit dlq` commands) may open the same file; SQLite's locking and the busy timeout
//! serialise their writes.
//!
//! Every call blocks. Async callers use [`Queue::submit`], whose [`PendingEnqueue`] is a
//! runtime-independent future, and run the other calls on a blocking thread pool.

mod checkpoint;
mod delivery;
mod dlq;
mod error;
mod fingerprints;
mod schema;
mod stats;
mod types;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, OpenFlags};

pub use dlq::{DlqEntry, DlqFilter, DlqItem, DlqSelection};
pub use error::QueueError;
pub use fingerprints::FingerprintPart;
pub use stats::{DeliveryInfo, DestinationStats, QueueStats};
pub use types::{
    DeliveryId, DeliveryState, Durability, EventId, Lease, LeaseId, NewEvent, QueueConfig,
    RetryOutcome,
};
pub use writer::{CommitInfo, CommitObserver, PendingEnqueue};

use error::SqlContext;
use types::to_ms;

/// How long after the bound turned a request away [`Queue::full_hint`] keeps reporting the queue
/// as full without asking the writer again.
pub const FULL_HINT_TTL: Duration = Duration::from_millis(50);
use writer::WriteRequest;

/// A handle to an open queue; clones share the same database, connections and writer thread.
///
/// The writer thread stops, after finishing every request already submitted, when the last
/// clone is dropped.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

struct Inner {
    path: PathBuf,
    config: QueueConfig,
    /// The connection for writes other than enqueue; the writer thread locks it too.
    conn: Arc<Mutex<WriteConn>>,
    /// A read-only connection for stats and DLQ listings.
    reader: Mutex<Connection>,
    tx: Option<Sender<WriteRequest>>,
    writer: Option<JoinHandle<()>>,
    checkpointer: Option<JoinHandle<()>>,
    checkpoint_failures: Arc<AtomicU64>,
    recovered_on_open: u64,
    /// When the bound last turned a request away (milliseconds since the epoch), 0 once a later
    /// commit stored everything; see [`Queue::full_hint`].
    full_at: Arc<AtomicI64>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel lets the writer finish what is queued and return.
        self.tx.take();
        if let Some(handle) = self.writer.take() {
            // A panicked writer has already answered its callers through `Completer::drop`.
            let _ = handle.join();
        }
        // Dropping the WAL hook's sender ends the checkpointer.
        checkpoint::remove_hook(&mut lock(&self.conn).conn);
        if let Some(handle) = self.checkpointer.take() {
            let _ = handle.join();
        }
    }
}

/// The `synchronous` setting of a write transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncMode {
    /// Fsync the WAL on every commit.
    Full,
    /// Fsync only at checkpoints.
    Normal,
}

impl From<Durability> for SyncMode {
    fn from(d: Durability) -> Self {
        match d {
            Durability::Full => SyncMode::Full,
            Durability::ProcessCrashOnly => SyncMode::Normal,
        }
    }
}

/// The write connection plus its current `synchronous` setting, to avoid redundant pragmas.
pub(crate) struct WriteConn {
    pub(crate) conn: Connection,
    sync: Option<SyncMode>,
}

impl WriteConn {
    /// Switches `synchronous` (only possible outside a transaction) when it differs.
    pub(crate) fn set_synchronous(&mut self, mode: SyncMode) -> Result<(), QueueError> {
        if self.sync != Some(mode) {
            // Enqueue and delivery transactions alternate, so this runs often: a cached
            // statement saves parsing the pragma each time.
            let sql = match mode {
                SyncMode::Full => "PRAGMA synchronous = FULL",
                SyncMode::Normal => "PRAGMA synchronous = NORMAL",
            };
            self.conn
                .prepare_cached(sql)
                .and_then(|mut stmt| stmt.execute([]))
                .ctx("setting the synchronous pragma")?;
            self.sync = Some(mode);
        }
        Ok(())
    }
}

/// Locks a mutex, taking over the data if a panicking thread poisoned it.
///
/// Poisoning is harmless here: a panic inside a transaction drops the transaction, which rolls
/// it back, so the connection is left outside any transaction.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn open_connection(
    path: &Path,
    config: &QueueConfig,
    read_only: bool,
) -> Result<Connection, QueueError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags).map_err(|source| QueueError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    conn.busy_timeout(config.busy_timeout)
        .ctx("setting the busy timeout")?;
    if !read_only {
        // Only takes effect when the file is new; see "Storage tuning" above for the choice.
        conn.pragma_update(None, "page_size", 4 * 1024)
            .ctx("setting the page size")?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .ctx("switching to WAL journal mode")?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(QueueError::NoWal {
                path: path.to_path_buf(),
                mode,
            });
        }
        // The bundled SQLite enforces foreign keys by default. Enforcing them makes SQLite keep a
        // statement journal for every insert and delete, which profiling showed to be a third
        // of the cost of an ack; the queue maintains the event/delivery relation itself (and the
        // model-based tests check it), so the REFERENCES clause is documentation only.
        conn.pragma_update(None, "foreign_keys", false)
            .ctx("disabling foreign key enforcement")?;
        conn.pragma_update(None, "temp_store", "MEMORY")
            .ctx("keeping temporary data in memory")?;
        // A group commit modifies a few megabytes of pages; with SQLite's default 2 MiB cache
        // they would spill to the WAL mid-transaction and be read back. 64 MiB at most.
        conn.pragma_update(None, "cache_size", -64 * 1024)
            .ctx("setting the cache size")?;
        // Keep the WAL file from staying large after a burst once it has been checkpointed.
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
            .ctx("setting the journal size limit")?;
        // Enqueue, delivery and DLQ statements together outnumber rusqlite's default cache of
        // 16, and evicted statements were parsed again on every transaction.
        conn.set_prepared_statement_cache_capacity(64);
    }
    Ok(conn)
}

impl Queue {
    /// Opens (creating if needed) the queue database at `path`.
    ///
    /// Switches the file to WAL mode, applies schema migrations, returns rows left in flight by
    /// a previous process to pending (when [`QueueConfig::recover_in_flight`] is set) and starts
    /// the writer thread.
    pub fn open(path: impl AsRef<Path>, config: QueueConfig) -> Result<Queue, QueueError> {
        Queue::open_observed(path, config, None)
    }

    /// Like [`Queue::open`], with `observer` told about every group commit (for metrics).
    pub fn open_observed(
        path: impl AsRef<Path>,
        config: QueueConfig,
        observer: Option<CommitObserver>,
    ) -> Result<Queue, QueueError> {
        config.validate()?;
        let path = path.as_ref().to_path_buf();
        let mut conn = open_connection(&path, &config, false)?;
        let now_ms = to_ms(SystemTime::now());
        schema::migrate(&mut conn, now_ms)?;
        let recovered_on_open = if config.recover_in_flight {
            conn.execute(
                "UPDATE deliveries SET state = ?1, due_at = ?2 WHERE state = ?3",
                [schema::state::PENDING, now_ms, schema::state::IN_FLIGHT],
            )
            .ctx("returning in-flight rows to pending")? as u64
        } else {
            0
        };
        let reader = open_connection(&path, &config, true)?;
        reader
            .pragma_update(None, "query_only", true)
            .ctx("making the reader read-only")?;
        let checkpoint_failures = Arc::new(AtomicU64::new(0));
        let (wake_tx, wake_rx) = mpsc::sync_channel(1);
        let checkpointer = {
            let ckpt_conn = open_connection(&path, &config, false)?;
            let failures = checkpoint_failures.clone();
            std::thread::Builder::new()
                .name("actionkit-queue-checkpointer".into())
                .spawn(move || checkpoint::run(ckpt_conn, wake_rx, failures))
                .map_err(|source| QueueError::Io {
                    context: "starting the queue checkpointer thread",
                    source,
                })?
        };
        let page_size: i64 = conn
            .pragma_query_value(None, "page_size", |row| row.get(0))
            .ctx("reading the page size")?;
        checkpoint::install_hook(
            &mut conn,
            checkpoint::Thresholds::for_page_size(page_size),
            wake_tx,
            checkpoint_failures.clone(),
        )?;
        let conn = Arc::new(Mutex::new(WriteConn { conn, sync: None }));
        let (tx, rx) = mpsc::channel();
        let full_at = Arc::new(AtomicI64::new(0));
        let writer = {
            let conn = conn.clone();
            let config = config.clone();
            let full_at = full_at.clone();
            std::thread::Builder::new()
                .name("actionkit-queue-writer".into())
                .spawn(move || writer::run(rx, conn, config, full_at, observer))
                .map_err(|source| QueueError::Io {
                    context: "starting the queue writer thread",
                    source,
                })?
        };
        Ok(Queue {
            inner: Arc::new(Inner {
                path,
                config,
                conn,
                reader: Mutex::new(reader),
                tx: Some(tx),
                writer: Some(writer),
                checkpointer: Some(checkpointer),
                checkpoint_failures,
                recovered_on_open,
                full_at,
            }),
        })
    }

    /// The database file this queue was opened on.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The configuration this queue was opened with.
    pub fn config(&self) -> &QueueConfig {
        &self.inner.config
    }

    /// A cheap guess that an enqueue would be turned away as full right now: `Some` with the
    /// `Retry-After` hint in seconds when the bound turned a request away less than
    /// [`FULL_HINT_TTL`] before `now` and no commit has stored everything since.
    ///
    /// It reads one atomic and touches no database, so intake can answer `503` before reading a
    /// request's body. It is only a hint: a request it lets through is still checked against the
    /// bound by the writer, and after [`FULL_HINT_TTL`] the next request goes to the writer again,
    /// which learns whether deliveries have freed room meanwhile.
    pub fn full_hint(&self, now: SystemTime) -> Option<u64> {
        self.refused_full_within(now, FULL_HINT_TTL)
    }

    /// `Some` with the `Retry-After` hint in seconds when the bound turned a request away less
    /// than `window` before `now` and no commit has stored everything since: [`Queue::full_hint`]
    /// with the caller's window (`actionkit serve` reports not ready for five seconds after a
    /// refusal, long enough for a probe to see it).
    pub fn refused_full_within(&self, now: SystemTime, window: Duration) -> Option<u64> {
        let at = self.inner.full_at.load(Ordering::Relaxed);
        if at == 0 {
            return None;
        }
        let age = to_ms(now).saturating_sub(at);
        let window = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        (age < window).then(|| self.inner.config.full_retry_after.as_secs().max(1))
    }

    /// How many in-flight rows opening returned to pending (work a crashed process left behind).
    pub fn recovered_on_open(&self) -> u64 {
        self.inner.recovered_on_open
    }

    /// Enqueues `batch` for every destination in `destinations` and blocks until it is committed.
    ///
    /// Returns one [`EventId`] per event, in batch order. Safe to call from many threads at once:
    /// concurrent calls share transactions (group commit). On `Err`, nothing of the batch is
    /// stored; [`QueueError::Full`] means the bound was reached and carries a `Retry-After` hint.
    pub fn enqueue(
        &self,
        batch: Vec<NewEvent>,
        destinations: &[String],
    ) -> Result<Vec<EventId>, QueueError> {
        self.submit(batch, destinations)?.wait()
    }

    /// Hands `batch` to the writer thread without waiting; resolve the result to learn whether
    /// it was committed.
    ///
    /// Input errors (no destinations, an empty or repeated destination, a batch larger than the
    /// bound) are returned at once.
    pub fn submit(
        &self,
        batch: Vec<NewEvent>,
        destinations: &[String],
    ) -> Result<PendingEnqueue, QueueError> {
        if destinations.is_empty() {
            return Err(QueueError::NoDestinations);
        }
        for (idx, destination) in destinations.iter().enumerate() {
            if destination.is_empty() {
                return Err(QueueError::InvalidDestination {
                    destination: destination.clone(),
                    reason: "destination names must not be empty",
                });
            }
            if destinations[..idx].contains(destination) {
                return Err(QueueError::InvalidDestination {
                    destination: destination.clone(),
                    reason: "destination appears more than once",
                });
            }
        }
        if batch.is_empty() {
            return Ok(PendingEnqueue::ready(Ok(Vec::new())));
        }
        let bytes: u64 = batch.iter().map(NewEvent::stored_size).sum();
        let cfg = &self.inner.config;
        if batch.len() as u64 > cfg.max_events || bytes > cfg.max_bytes {
            return Err(QueueError::BatchTooLarge {
                events: batch.len() as u64,
                bytes,
                max_events: cfg.max_events,
                max_bytes: cfg.max_bytes,
            });
        }
        let (pending, completer) = PendingEnqueue::new();
        let req = WriteRequest {
            events: batch,
            destinations: destinations.to_vec(),
            bytes,
            completer,
            submitted: std::time::Instant::now(),
        };
        let tx = self.inner.tx.as_ref().ok_or(QueueError::Closed)?;
        // A failed send drops the request, whose completer then answers `Closed`.
        let _ = tx.send(req);
        Ok(pending)
    }
}
