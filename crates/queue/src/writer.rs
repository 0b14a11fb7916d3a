//! Group commit: one writer thread turns concurrent enqueue requests into few transactions.
//!
//! Callers hand a [`WriteRequest`] to the writer thread over an `mpsc` channel and wait on a
//! [`PendingEnqueue`]. The writer blocks for the first request, then takes every request already
//! waiting (up to [`crate::QueueConfig::max_events_per_commit`] events) and writes them all in one
//! `BEGIN IMMEDIATE` transaction. The writer assigns event ids itself, above the highest id
//! ever used (`sqlite_sequence`, which the explicit ids also advance, so no id is ever reused),
//! and inserts events and their delivery rows with multi-row `INSERT` statements: a statement
//! per row cost more in statement overhead than in B-tree work. A request that would exceed the
//! bound is refused before any of its rows are written, so the others still commit; any SQLite
//! error rolls the whole transaction back and every request of the group gets
//! [`QueueError::CommitFailed`] (per-request savepoints would isolate such errors, but they cost
//! statement journaling on every request for failures that, like a full disk, would hit the other
//! requests too). Only after `COMMIT` has returned (and, with [`crate::Durability::Full`], the WAL has been fsynced) does it complete the
//! callers. While one commit is being fsynced, new requests pile up in the channel and go into
//! the next transaction together, which is what makes many small concurrent requests cheap.
//!
//! A request whose [`Completer`] is dropped without an answer (the writer panicked or stopped)
//! completes with [`QueueError::Closed`], so no caller waits forever.
//!
//! A [`CommitObserver`] given to [`crate::Queue::open_observed`] hears about every group commit
//! (requests, events, how long the oldest request waited, how long the transaction took) after
//! its callers have been answered; `actionkit serve` turns that into metrics.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::{TransactionBehavior, params};

use crate::error::{QueueError, SqlContext};
use crate::types::{EventId, NewEvent, QueueConfig, to_ms};
use crate::{WriteConn, lock};

/// The answer slot shared by a caller and the writer thread.
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    ready: Condvar,
}

#[derive(Default)]
struct SlotState {
    result: Option<Result<Vec<EventId>, QueueError>>,
    waker: Option<Waker>,
}

/// The writer's end of a slot; completing twice is impossible, dropping completes with `Closed`.
pub(crate) struct Completer {
    slot: Option<Arc<Slot>>,
}

impl Completer {
    fn complete(mut self, result: Result<Vec<EventId>, QueueError>) {
        if let Some(slot) = self.slot.take() {
            fill(&slot, result);
        }
    }
}

impl Drop for Completer {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            fill(&slot, Err(QueueError::Closed));
        }
    }
}

fn fill(slot: &Slot, result: Result<Vec<EventId>, QueueError>) {
    let waker = {
        let mut state = lock(&slot.state);
        state.result = Some(result);
        state.waker.take()
    };
    slot.ready.notify_all();
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// An enqueue handed to the writer thread; resolves once its rows are committed or refused.
///
/// Block on it with [`PendingEnqueue::wait`], or `.await` it: it implements [`Future`] without
/// needing any particular async runtime.
#[must_use = "the events are only known to be stored once the pending enqueue resolves"]
pub struct PendingEnqueue {
    slot: Arc<Slot>,
}

impl std::fmt::Debug for PendingEnqueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingEnqueue").finish_non_exhaustive()
    }
}

impl PendingEnqueue {
    /// A pending enqueue that is already resolved.
    pub(crate) fn ready(result: Result<Vec<EventId>, QueueError>) -> Self {
        let slot = Arc::new(Slot::default());
        fill(&slot, result);
        Self { slot }
    }

    /// A new unresolved pending enqueue and the completer the writer answers through.
    pub(crate) fn new() -> (Self, Completer) {
        let slot = Arc::new(Slot::default());
        (Self { slot: slot.clone() }, Completer { slot: Some(slot) })
    }

    /// Blocks until the batch is committed (returning one id per event, in batch order) or refused.
    pub fn wait(self) -> Result<Vec<EventId>, QueueError> {
        let mut state = lock(&self.slot.state);
        loop {
            if let Some(result) = state.result.take() {
                return result;
            }
            state = self
                .slot
                .ready
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

impl Future for PendingEnqueue {
    type Output = Result<Vec<EventId>, QueueError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = lock(&self.slot.state);
        match state.result.take() {
            Some(result) => Poll::Ready(result),
            None => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// One caller's batch on its way to the writer thread.
pub(crate) struct WriteRequest {
    pub(crate) events: Vec<NewEvent>,
    pub(crate) destinations: Vec<String>,
    pub(crate) bytes: u64,
    pub(crate) completer: Completer,
    /// When the caller handed it over, for [`CommitInfo::waited`].
    pub(crate) submitted: Instant,
}

/// What one group commit did, as reported to a [`CommitObserver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitInfo {
    /// Enqueue requests in the transaction (including any the bound turned away).
    pub requests: usize,
    /// Events written.
    pub events: usize,
    /// How long the oldest request waited before its transaction began: for the writer to finish
    /// the previous commit, and for the write connection, which delivery transactions also use.
    pub waited: Duration,
    /// How long the transaction took, fsync included.
    pub took: Duration,
    /// Whether it committed; when not, every request of the group got
    /// [`QueueError::CommitFailed`].
    pub committed: bool,
}

/// Called on the writer thread after every group commit, once its callers have been answered.
///
/// It runs on the commit path of later requests, so it must be quick (recording a metric is).
pub type CommitObserver = Arc<dyn Fn(&CommitInfo) + Send + Sync>;

/// The writer thread's main loop; returns when every sender is gone.
pub(crate) fn run(
    rx: Receiver<WriteRequest>,
    conn: Arc<Mutex<WriteConn>>,
    config: QueueConfig,
    full_at: Arc<AtomicI64>,
    observer: Option<CommitObserver>,
) {
    while let Ok(first) = rx.recv() {
        let mut n_events = first.events.len();
        let mut group = vec![first];
        while n_events < config.max_events_per_commit {
            match rx.try_recv() {
                Ok(req) => {
                    n_events += req.events.len();
                    group.push(req);
                }
                Err(_) => break,
            }
        }
        let info = commit_group(&conn, &config, group, &full_at);
        if let Some(observer) = &observer {
            observer(&info);
        }
    }
}

/// Writes a group of requests in one transaction and answers every caller after the commit.
///
/// `full_at` records when the bound last turned a request away (milliseconds since the epoch),
/// or 0 once a group stored everything it was given; [`crate::Queue::full_hint`] reads it.
fn commit_group(
    conn: &Mutex<WriteConn>,
    config: &QueueConfig,
    group: Vec<WriteRequest>,
    full_at: &AtomicI64,
) -> CommitInfo {
    let now_ms = to_ms(SystemTime::now());
    let oldest = group.iter().map(|req| req.submitted).min();
    let (res, began, took) = {
        let mut guard = lock(conn);
        let began = Instant::now();
        let res = write_group(&mut guard, config, &group, now_ms);
        (res, began, began.elapsed())
    };
    let mut info = CommitInfo {
        requests: group.len(),
        events: 0,
        waited: oldest.map_or(Duration::ZERO, |at| began.saturating_duration_since(at)),
        took,
        committed: res.is_ok(),
    };
    match res {
        Ok(outcomes) => {
            let turned_away = outcomes
                .iter()
                .any(|o| matches!(o, Err(QueueError::Full { .. })));
            full_at.store(
                if turned_away { now_ms.max(1) } else { 0 },
                Ordering::Relaxed,
            );
            for (req, outcome) in group.into_iter().zip(outcomes) {
                if let Ok(ids) = &outcome {
                    info.events += ids.len();
                }
                req.completer.complete(outcome);
            }
        }
        Err(err) => {
            let msg = err.to_string();
            for req in group {
                req.completer
                    .complete(Err(QueueError::CommitFailed(msg.clone())));
            }
        }
    }
    info
}

type Outcome = Result<Vec<EventId>, QueueError>;

fn write_group(
    wc: &mut WriteConn,
    config: &QueueConfig,
    group: &[WriteRequest],
    now_ms: i64,
) -> Result<Vec<Outcome>, QueueError> {
    wc.set_synchronous(config.durability.into())?;
    let tx = wc
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .ctx("starting an enqueue transaction")?;
    // Every statement of the hot path is prepared once and cached: parsing SQL showed up in
    // profiles of small commits.
    let (mut n_events, mut n_bytes): (i64, i64) = tx
        .prepare_cached("SELECT events, bytes FROM totals WHERE id = 1")
        .and_then(|mut stmt| stmt.query_row([], |row| Ok((row.get(0)?, row.get(1)?))))
        .ctx("reading queue totals")?;
    // Event ids are assigned here, after the highest id ever used (AUTOINCREMENT's sequence),
    // so that one multi-row statement can insert many events and still name each one.
    let mut next_id: i64 = tx
        .prepare_cached(
            "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),
                        COALESCE((SELECT MAX(id) FROM events), 0)) + 1",
        )
        .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
        .ctx("reading the next event id")?;
    let retry_after_secs = config.full_retry_after.as_secs().max(1);
    let mut outcomes = Vec::with_capacity(group.len());
    let mut rows: Vec<EventRow<'_>> = Vec::new();
    for req in group {
        let req_events = req.events.len() as i64;
        let req_bytes = i64::try_from(req.bytes).unwrap_or(i64::MAX);
        let fits = n_events.saturating_add(req_events) as u64 <= config.max_events
            && n_bytes.saturating_add(req_bytes) as u64 <= config.max_bytes;
        if !fits {
            outcomes.push(Err(QueueError::Full { retry_after_secs }));
            continue;
        }
        let mut ids = Vec::with_capacity(req.events.len());
        for event in &req.events {
            rows.push(EventRow {
                id: next_id,
                event,
                destinations: &req.destinations,
            });
            ids.push(EventId(next_id));
            next_id += 1;
        }
        n_events += req_events;
        n_bytes += req_bytes;
        outcomes.push(Ok(ids));
    }
    insert_events(&tx, &rows, now_ms)?;
    insert_deliveries(&tx, &rows, now_ms)?;
    tx.prepare_cached("UPDATE totals SET events = ?1, bytes = ?2 WHERE id = 1")
        .and_then(|mut stmt| stmt.execute(params![n_events, n_bytes]))
        .ctx("updating queue totals")?;
    tx.commit().ctx("committing an enqueue transaction")?;
    Ok(outcomes)
}

/// One event of the group with the id it gets and the destinations it fans out to.
struct EventRow<'g> {
    id: i64,
    event: &'g NewEvent,
    destinations: &'g [String],
}

/// Events written by one multi-row `INSERT`; a statement per row costs more than the row.
const EVENTS_PER_INSERT: usize = 64;
/// Delivery rows written by one multi-row `INSERT`.
const DELIVERIES_PER_INSERT: usize = 128;

/// `INSERT INTO <head> VALUES <row>, <row>, …` with `n` rows.
fn multi_row_sql(head: &str, row: &str, n: usize) -> String {
    let mut sql = String::with_capacity(head.len() + n * (row.len() + 1) + 8);
    sql.push_str(head);
    sql.push_str(" VALUES ");
    for idx in 0..n {
        if idx > 0 {
            sql.push(',');
        }
        sql.push_str(row);
    }
    sql
}

const EVENT_HEAD: &str = "INSERT INTO events (id, message_id, payload, size, enqueued_at)";
const EVENT_ROW: &str = "(?,?,?,?,?)";
const DELIVERY_HEAD: &str =
    "INSERT INTO deliveries (event_id, destination, state, due_at, enqueued_at, age_from)";
const DELIVERY_ROW: &str = "(?,?,0,?,?,?)";

/// Inserts the event rows, full chunks with one cached multi-row statement, the rest row by row.
fn insert_events(
    conn: &rusqlite::Connection,
    rows: &[EventRow<'_>],
    now_ms: i64,
) -> Result<(), QueueError> {
    let full_sql = multi_row_sql(EVENT_HEAD, EVENT_ROW, EVENTS_PER_INSERT);
    let one_sql = multi_row_sql(EVENT_HEAD, EVENT_ROW, 1);
    for chunk in rows.chunks(EVENTS_PER_INSERT) {
        let sql = if chunk.len() == EVENTS_PER_INSERT {
            &full_sql
        } else {
            &one_sql
        };
        let mut stmt = conn.prepare_cached(sql).ctx("preparing the event insert")?;
        let per_statement = if chunk.len() == EVENTS_PER_INSERT {
            EVENTS_PER_INSERT
        } else {
            1
        };
        for part in chunk.chunks(per_statement) {
            let mut idx = 1;
            for row in part {
                let size = row.event.stored_size() as i64;
                stmt.raw_bind_parameter(idx, row.id)
                    .and_then(|()| stmt.raw_bind_parameter(idx + 1, &row.event.message_id))
                    .and_then(|()| stmt.raw_bind_parameter(idx + 2, &row.event.payload))
                    .and_then(|()| stmt.raw_bind_parameter(idx + 3, size))
                    .and_then(|()| stmt.raw_bind_parameter(idx + 4, now_ms))
                    .ctx("binding an event")?;
                idx += 5;
            }
            stmt.raw_execute().ctx("inserting events")?;
        }
    }
    Ok(())
}

/// Inserts one delivery row per (event, destination), in multi-row statements.
fn insert_deliveries(
    conn: &rusqlite::Connection,
    rows: &[EventRow<'_>],
    now_ms: i64,
) -> Result<(), QueueError> {
    let full_sql = multi_row_sql(DELIVERY_HEAD, DELIVERY_ROW, DELIVERIES_PER_INSERT);
    let one_sql = multi_row_sql(DELIVERY_HEAD, DELIVERY_ROW, 1);
    let total: usize = rows.iter().map(|r| r.destinations.len()).sum();
    let mut pairs = rows
        .iter()
        .flat_map(|row| row.destinations.iter().map(move |d| (row.id, d.as_str())));
    let mut left = total;
    while left > 0 {
        let n = if left >= DELIVERIES_PER_INSERT {
            DELIVERIES_PER_INSERT
        } else {
            1
        };
        let sql = if n == 1 { &one_sql } else { &full_sql };
        let mut stmt = conn
            .prepare_cached(sql)
            .ctx("preparing the delivery insert")?;
        let mut idx = 1;
        for (event_id, destination) in pairs.by_ref().take(n) {
            stmt.raw_bind_parameter(idx, event_id)
                .and_then(|()| stmt.raw_bind_parameter(idx + 1, destination))
                .and_then(|()| stmt.raw_bind_parameter(idx + 2, now_ms))
                .and_then(|()| stmt.raw_bind_parameter(idx + 3, now_ms))
                .and_then(|()| stmt.raw_bind_parameter(idx + 4, now_ms))
                .ctx("binding a delivery")?;
            idx += 5;
        }
        stmt.raw_execute().ctx("inserting deliveries")?;
        left -= n;
    }
    Ok(())
}
