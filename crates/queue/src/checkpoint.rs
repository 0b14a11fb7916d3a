//! WAL checkpoints on a background thread, off the commit path.
//!
//! By default SQLite checkpoints inside the `COMMIT` that makes the WAL reach 1000 frames, so
//! every few group commits one of them also copies the WAL into the database file and fsyncs it;
//! profiling showed that at about a fifth of the writer's time, all of it spent while enqueue
//! callers wait. Instead, the write connection gets a WAL hook that, once the WAL holds
//! [`SOFT_BYTES`] of frames, wakes a checkpointer thread with its own connection; that thread runs
//! `PASSIVE` checkpoints, which never block writers, so the writer keeps committing while the
//! previous frames are copied. When a checkpoint has copied everything, SQLite restarts the WAL
//! from its beginning at the next write, so the file stays small.
//!
//! If the checkpointer falls behind (a long reader, a slow disk) and the WAL reaches
//! [`HARD_BYTES`], the writer checkpoints inline as SQLite would have, so the WAL stays
//! bounded. Checkpoints never affect durability: committed transactions are already durable in
//! the WAL, and a checkpoint interrupted by a crash is redone on the next open. Failed
//! checkpoints (usually `SQLITE_BUSY`) are counted and retried once the WAL has grown by another
//! [`RETRY_BYTES`] (see [`WakePolicy`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use rusqlite::Connection;
use rusqlite::wal::CheckpointMode;

use crate::error::{QueueError, SqlContext};

/// WAL size at which the checkpointer is woken. The hook counts frames (one page each), so the
/// thresholds are turned into frames with the database's page size.
pub(crate) const SOFT_BYTES: i64 = 16 << 20;
/// How much more the WAL grows, after a wake-up, before the checkpointer is woken again (when
/// the checkpoint could not copy everything, or SQLite could not restart the WAL yet).
pub(crate) const RETRY_BYTES: i64 = 4 << 20;
/// WAL size at which the writer checkpoints inline.
pub(crate) const HARD_BYTES: i64 = 64 << 20;

/// The thresholds in frames of a database with `page_size`-byte pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Thresholds {
    soft: i32,
    retry: i32,
    hard: i32,
}

impl Thresholds {
    pub(crate) fn for_page_size(page_size: i64) -> Thresholds {
        let frames = |bytes: i64| {
            i32::try_from(bytes / page_size.max(512))
                .unwrap_or(i32::MAX)
                .max(1)
        };
        Thresholds {
            soft: frames(SOFT_BYTES),
            retry: frames(RETRY_BYTES),
            hard: frames(HARD_BYTES),
        }
    }
}

/// Decides after each commit whether to wake the checkpointer.
///
/// It wakes it once when the WAL reaches the soft threshold, then again only after another
/// [`RETRY_BYTES`] (a checkpoint that could not copy everything, or a WAL that SQLite could not
/// restart yet), and rearms when the WAL has been restarted. Waking it after every commit past the
/// threshold, as before, ran checkpoints back to back, each with an fsync of the database file
/// competing with the commits' own fsyncs; and a checkpoint still running when the writer began
/// its next transaction kept SQLite from restarting the WAL, which grew and woke it more often.
#[derive(Debug)]
pub(crate) struct WakePolicy {
    limits: Thresholds,
    next_wake: i32,
}

impl WakePolicy {
    pub(crate) fn new(limits: Thresholds) -> WakePolicy {
        WakePolicy {
            limits,
            next_wake: limits.soft,
        }
    }

    /// Called with the WAL's size in frames after a commit; true when the checkpointer should run.
    pub(crate) fn should_wake(&mut self, frames: i32) -> bool {
        if frames < self.limits.soft {
            // Below the threshold again: SQLite restarted the WAL after a complete checkpoint.
            self.next_wake = self.limits.soft;
            false
        } else if frames >= self.next_wake {
            self.next_wake = frames.saturating_add(self.limits.retry);
            true
        } else {
            false
        }
    }
}

/// Installs the WAL hook on the write connection.
pub(crate) fn install_hook(
    conn: &mut Connection,
    limits: Thresholds,
    wake: SyncSender<()>,
    failures: Arc<AtomicU64>,
) -> Result<(), QueueError> {
    let mut policy = WakePolicy::new(limits);
    conn.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, frames: i32| {
        if frames >= limits.hard && wal.checkpoint_v2(CheckpointMode::PASSIVE).is_err() {
            failures.fetch_add(1, Ordering::Relaxed);
        }
        if policy.should_wake(frames) {
            match wake.try_send(()) {
                // A full channel means a wake-up is already pending; a closed one means the
                // checkpointer is gone and the inline checkpoint above is the only one left.
                Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
            }
        }
        // The commit has already happened; an error here would make it look failed.
        Ok(())
    }))
    .ctx("installing the wal hook")
}

/// Removes the WAL hook, which drops its sender and so lets the checkpointer thread end.
pub(crate) fn remove_hook(conn: &mut Connection) {
    // Removing a hook cannot fail in a way that matters during shutdown.
    let _ = conn.wal_hook(None::<fn(&mut rusqlite::hooks::Wal, i32) -> rusqlite::Result<()>>);
}

/// The checkpointer thread's loop; returns when the hook's sender is gone.
pub(crate) fn run(conn: Connection, wake: Receiver<()>, failures: Arc<AtomicU64>) {
    while wake.recv().is_ok() {
        if conn
            .wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE)
            .is_err()
        {
            failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_the_same_bytes_whatever_the_page_size() {
        assert_eq!(
            Thresholds::for_page_size(4096),
            Thresholds {
                soft: 4096,
                retry: 1024,
                hard: 16384
            }
        );
        assert_eq!(
            Thresholds::for_page_size(16384),
            Thresholds {
                soft: 1024,
                retry: 256,
                hard: 4096
            }
        );
        // A nonsense page size still gives usable thresholds instead of dividing by zero.
        assert_eq!(Thresholds::for_page_size(0).soft, 32768);
    }

    #[test]
    fn the_checkpointer_is_woken_once_per_threshold_crossing() {
        let mut policy = WakePolicy::new(Thresholds::for_page_size(4096));
        let woken: Vec<i32> = [100, 4000, 4096, 4100, 4500, 5119, 5120, 5200, 6143, 6144]
            .into_iter()
            .filter(|&frames| policy.should_wake(frames))
            .collect();
        // Once at the soft threshold, then only every further 1024 frames.
        assert_eq!(woken, vec![4096, 5120, 6144]);
        // After a restart the WAL is small again, and the next crossing wakes it at once.
        assert!(!policy.should_wake(12));
        assert!(!policy.should_wake(4095));
        assert!(policy.should_wake(4200));
        assert!(!policy.should_wake(4300));
    }
}
