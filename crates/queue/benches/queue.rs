//! Queue throughput: group-committed enqueue with 1, 4 and 16 concurrent callers, and the
//! lease + ack cycle of a delivery worker.
//!
//! Databases live under Cargo's target temp directory (a real disk, unlike a tmpfs `/tmp`), so
//! the fsyncs of durable commits are measured. Run with
//! `cargo bench -p actionkit-queue --bench queue`.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime};

use actionkit_queue::{Durability, NewEvent, Queue, QueueConfig};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tempfile::TempDir;

const BATCH: usize = 100;
const PAYLOAD_BYTES: usize = 1024;

fn bench_dir() -> TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temporary directory for the bench")
}

fn config(durability: Durability) -> QueueConfig {
    QueueConfig {
        max_events: u64::MAX / 2,
        max_bytes: u64::MAX / 2,
        durability,
        ..QueueConfig::default()
    }
}

/// A batch of `BATCH` Segment-like events of about `PAYLOAD_BYTES` each.
fn batch(tag: usize) -> Vec<NewEvent> {
    (0..BATCH)
        .map(|idx| {
            let message_id = format!("bench-{tag}-{idx:05}");
            let mut payload = format!(
                r#"{{"type":"track","event":"Order Completed","messageId":"{message_id}","userId":"u-{idx}","properties":{{"pad":""#
            );
            while payload.len() < PAYLOAD_BYTES - 4 {
                payload.push('x');
            }
            payload.push_str(r#""}}"#);
            NewEvent::new(message_id, payload)
        })
        .collect()
}

/// Runs `iters` enqueues on each of `callers` threads at once and returns the wall time.
fn concurrent_enqueues(q: &Queue, callers: usize, iters: u64, destinations: &[String]) -> Duration {
    let barrier = Arc::new(Barrier::new(callers + 1));
    let handles: Vec<_> = (0..callers)
        .map(|caller| {
            let q = q.clone();
            let barrier = barrier.clone();
            let destinations = destinations.to_vec();
            let template = batch(caller);
            std::thread::spawn(move || {
                barrier.wait();
                for _ in 0..iters {
                    q.enqueue(template.clone(), &destinations)
                        .expect("bench enqueue");
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for handle in handles {
        handle.join().expect("bench thread");
    }
    start.elapsed()
}

fn enqueue(c: &mut Criterion) {
    let destinations = vec!["userpilot".to_string()];
    let mut group = c.benchmark_group("enqueue_batch100x1k");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    for (name, durability, callers) in [
        ("full", Durability::Full, 1),
        ("full", Durability::Full, 4),
        ("full", Durability::Full, 16),
        ("normal", Durability::ProcessCrashOnly, 16),
    ] {
        let dir = bench_dir();
        let q = Queue::open(dir.path().join("queue.db"), config(durability)).expect("open");
        group.throughput(Throughput::Elements((BATCH * callers) as u64));
        group.bench_function(BenchmarkId::new(name, callers), |b| {
            b.iter_custom(|iters| concurrent_enqueues(&q, callers, iters, &destinations));
        });
    }
    group.finish();
}

fn lease_ack(c: &mut Criterion) {
    let destinations = vec!["userpilot".to_string()];
    let dir = bench_dir();
    let q = Queue::open(dir.path().join("queue.db"), config(Durability::Full)).expect("open");
    let mut group = c.benchmark_group("lease_ack");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("lease100_ack100", |b| {
        b.iter_custom(|iters| {
            // Fill the queue with exactly what this sample will drain, outside the timing.
            for tag in 0..iters {
                q.enqueue(batch(tag as usize), &destinations)
                    .expect("bench enqueue");
            }
            let start = Instant::now();
            for _ in 0..iters {
                let leases = q
                    .lease("userpilot", BATCH, SystemTime::now())
                    .expect("bench lease");
                let ids: Vec<_> = leases.iter().map(|l| l.id).collect();
                q.ack_delivered(&ids).expect("bench ack");
            }
            start.elapsed()
        });
    });
    group.finish();
}

criterion_group!(benches, enqueue, lease_ack);
criterion_main!(benches);
