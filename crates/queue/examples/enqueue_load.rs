//! A load generator for the queue that reports wall-clock and CPU cost per event.
//!
//! Criterion measures wall time, which on a busy shared machine says more about the neighbours
//! than about the queue. This example also reads the process's own CPU time (Linux
//! `/proc/self/stat`), so `events per CPU second` stays meaningful under load.
//!
//! After enqueueing it drains the queue with one worker (lease 100, ack 100) and reports the same
//! numbers for that.
//!
//! Usage: `cargo run --release -p actionkit-queue --example enqueue_load -- [callers] [batches
//! per caller] [full|normal] [dir]`; defaults are 16 callers, 50 batches of 100 events of about
//! 1 KB, `full` durability and a fresh directory under the system temp directory.

use std::sync::{Arc, Barrier};
use std::time::Instant;

use actionkit_queue::{Durability, NewEvent, Queue, QueueConfig};

/// User plus system CPU seconds of this process so far, if `/proc` is available.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // The kernel reports clock ticks, which are 1/100 s on Linux.
    Some((utime + stime) / 100.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let callers: usize = args.get(1).map_or(Ok(16), |s| s.parse())?;
    let batches: usize = args.get(2).map_or(Ok(50), |s| s.parse())?;
    let durability = match args.get(3).map(String::as_str) {
        None | Some("full") => Durability::Full,
        Some("normal") => Durability::ProcessCrashOnly,
        Some(other) => {
            return Err(format!("durability must be full or normal, not {other:?}").into());
        }
    };
    let dir = match args.get(4) {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir()?,
    };
    let config = QueueConfig {
        max_events: u64::MAX / 2,
        max_bytes: u64::MAX / 2,
        durability,
        ..QueueConfig::default()
    };
    let q = Queue::open(dir.path().join("queue.db"), config)?;
    let destinations = vec!["userpilot".to_string()];
    let payload = {
        let mut p =
            String::from(r#"{"type":"track","event":"Order Completed","properties":{"pad":""#);
        p.push_str(&"x".repeat(1024 - p.len() - 3));
        p.push_str(r#""}}"#);
        p
    };
    let barrier = Arc::new(Barrier::new(callers + 1));
    let handles: Vec<_> = (0..callers)
        .map(|caller| {
            let q = q.clone();
            let barrier = barrier.clone();
            let destinations = destinations.clone();
            let payload = payload.clone();
            std::thread::spawn(move || -> Result<(), actionkit_queue::QueueError> {
                barrier.wait();
                for b in 0..batches {
                    let batch = (0..100)
                        .map(|e| NewEvent::new(format!("c{caller}-b{b}-e{e}"), payload.clone()))
                        .collect();
                    q.enqueue(batch, &destinations)?;
                }
                Ok(())
            })
        })
        .collect();
    let cpu_start = cpu_seconds();
    barrier.wait();
    let start = Instant::now();
    for handle in handles {
        handle.join().map_err(|_| "an enqueue thread panicked")??;
    }
    let wall = start.elapsed().as_secs_f64();
    let events = (callers * batches * 100) as f64;
    println!("callers={callers} events={events} durability={durability:?}");
    println!("wall {wall:.3} s, {:.0} events/s", events / wall);
    if let (Some(a), Some(b)) = (cpu_start, cpu_seconds()) {
        let cpu = b - a;
        println!(
            "cpu {cpu:.2} s, {:.0} events per cpu second, {:.1} us cpu per event",
            events / cpu,
            cpu / events * 1e6
        );
    }

    // Drain what was enqueued the way one delivery worker would: lease 100, ack 100.
    let cpu_start = cpu_seconds();
    let start = Instant::now();
    let mut drained = 0usize;
    loop {
        let leases = q.lease("userpilot", 100, std::time::SystemTime::now())?;
        if leases.is_empty() {
            break;
        }
        drained += leases.len();
        let ids: Vec<_> = leases.iter().map(|l| l.id).collect();
        q.ack_delivered(&ids)?;
    }
    let wall = start.elapsed().as_secs_f64();
    println!(
        "lease+ack {drained} events: wall {wall:.3} s, {:.0} events/s",
        drained as f64 / wall
    );
    if let (Some(a), Some(b)) = (cpu_start, cpu_seconds()) {
        let cpu = b - a;
        println!(
            "cpu {cpu:.2} s, {:.0} events per cpu second, {:.1} us cpu per event",
            drained as f64 / cpu,
            cpu / drained as f64 * 1e6
        );
    }
    Ok(())
}
