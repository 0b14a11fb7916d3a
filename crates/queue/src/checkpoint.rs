//! WAL checkpoints on a background thread, off the commit path.
//!
//! By default SQLite checkpoints inside the `COMMIT` that makes the WAL reach 1000 frames, so
//! every few group commits one of them also copies the WAL into the database file and fsyncs it;
//! profiling showed that at about a fifth of the writer's time, all of it spent while enqueue
//! callers wait. Instead, the write connection gets a WAL hook that, once the WAL holds
//! [`SOFT_FRAMES`] frames, wakes a checkpointer thread with its own connection; that thread runs
//! `PASSIVE` checkpoints, which never block writers, so the writer keeps committing while the
//! previous frames are copied. When a checkpoint has copied everything, SQLite restarts the WAL
//! from its beginning at the next write, so the file stays small.
//!
//! If the checkpointer falls behind (a long reader, a slow disk) and the WAL reaches
//! [`HARD_FRAMES`] frames, the writer checkpoints inline as SQLite would have, so the WAL stays
//! bounded. Checkpoints never affect durability: committed transactions are already durable in
//! the WAL, and a checkpoint interrupted by a crash is redone on the next open. Failed
//! checkpoints (usually `SQLITE_BUSY`) are counted and retried on the next commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use rusqlite::Connection;
use rusqlite::wal::CheckpointMode;

use crate::error::{QueueError, SqlContext};

/// WAL size in frames (pages, 16 KiB on databases this crate creates, so 16 MiB) at which the
/// checkpointer is woken.
pub(crate) const SOFT_FRAMES: i32 = 1000;
/// WAL size in frames (64 MiB with 16 KiB pages) at which the writer checkpoints inline.
pub(crate) const HARD_FRAMES: i32 = 4000;

/// Installs the WAL hook on the write connection.
pub(crate) fn install_hook(
    conn: &mut Connection,
    wake: SyncSender<()>,
    failures: Arc<AtomicU64>,
) -> Result<(), QueueError> {
    conn.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, frames: i32| {
        if frames >= HARD_FRAMES && wal.checkpoint_v2(CheckpointMode::PASSIVE).is_err() {
            failures.fetch_add(1, Ordering::Relaxed);
        }
        if frames >= SOFT_FRAMES {
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
