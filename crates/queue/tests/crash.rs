//! Crash oracle: a child process enqueues (and leases) in a loop, printing every id it was told
//! is committed; the parent kills it with SIGKILL at a random moment, reopens the database and
//! checks that every printed id is there, whole batches only, and that leased rows came back.
//!
//! The child is this test binary itself, run with `CHILD_ENV` set and filtered to the ignored
//! helper test `crash_child`.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use actionkit_queue::{DeliveryState, EventId, NewEvent, Queue, QueueConfig};
use tempfile::TempDir;

const CHILD_ENV: &str = "ACTIONKIT_QUEUE_CRASH_CHILD_DB";
const BATCH: usize = 10;
const WRITERS: usize = 4;
const ROUNDS: usize = 3;
/// Committed events the child must have reported before the kill moment is drawn.
const MIN_COMMITTED: usize = 300;

fn destinations() -> Vec<String> {
    vec!["a".to_string(), "b".to_string()]
}

/// The child's work: enqueue forever from several threads and lease destination `a` without
/// ever acknowledging. Runs only when started by the parent.
#[test]
#[ignore = "helper process for crash_recovery_keeps_every_acknowledged_event"]
fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let round: String = std::env::var("ACTIONKIT_QUEUE_CRASH_ROUND").unwrap();
    let q = Queue::open(&path, QueueConfig::default()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut handles = Vec::new();
    for t in 0..WRITERS {
        let q = q.clone();
        let round = round.clone();
        handles.push(std::thread::spawn(move || {
            let mut b = 0usize;
            while Instant::now() < deadline {
                let batch: Vec<NewEvent> = (0..BATCH)
                    .map(|e| NewEvent::new(format!("r{round}-t{t}-b{b}-e{e}"), vec![b'x'; 300]))
                    .collect();
                let names: Vec<String> = batch.iter().map(|e| e.message_id.clone()).collect();
                let ids = q.enqueue(batch, &destinations()).unwrap();
                let mut out = String::new();
                for (id, name) in ids.iter().zip(&names) {
                    out.push_str(&format!("committed {id} {name}\n"));
                }
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(out.as_bytes()).unwrap();
                stdout.flush().unwrap();
                b += 1;
            }
        }));
    }
    {
        let q = q.clone();
        handles.push(std::thread::spawn(move || {
            while Instant::now() < deadline {
                let leases = q.lease("a", 7, SystemTime::now()).unwrap();
                let mut out = String::new();
                for lease in &leases {
                    out.push_str(&format!(
                        "leased {} {}\n",
                        lease.event_id, lease.id.delivery
                    ));
                }
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(out.as_bytes()).unwrap();
                stdout.flush().unwrap();
            }
        }));
    }
    for handle in handles {
        handle.join().unwrap();
    }
}

/// A pseudo-random number from the clock, good enough to vary the kill moment.
fn jitter_ms(max: u64) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    (nanos / 7919) % max
}

struct RoundOutput {
    committed: Vec<(i64, String)>,
    leased: Vec<(i64, i64)>,
}

fn run_child_and_kill(path: &Path, round: usize) -> RoundOutput {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "crash_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, path)
        .env("ACTIONKIT_QUEUE_CRASH_ROUND", round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let reader = {
        let lines = lines.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    // A line cut short by the kill does not count as printed.
                    Ok(_) if line.ends_with('\n') => lines.lock().unwrap().push(line),
                    Ok(_) => break,
                }
            }
        })
    };
    // Let it commit a while, then kill it at a random moment.
    let started = Instant::now();
    let committed_lines = || {
        lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("committed "))
            .count()
    };
    while committed_lines() < MIN_COMMITTED {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "child did not commit {MIN_COMMITTED} events within 60 s"
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("child exited early with {status}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(jitter_ms(400)));
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap();

    let mut out = RoundOutput {
        committed: Vec::new(),
        leased: Vec::new(),
    };
    for line in lines.lock().unwrap().iter() {
        let mut parts = line.split_whitespace();
        match parts.next() {
            Some("committed") => {
                let id = parts.next().unwrap().parse().unwrap();
                let name = parts.next().unwrap().to_string();
                out.committed.push((id, name));
            }
            Some("leased") => {
                let event = parts.next().unwrap().parse().unwrap();
                let delivery = parts.next().unwrap().parse().unwrap();
                out.leased.push((event, delivery));
            }
            _ => {}
        }
    }
    out
}

#[test]
fn crash_recovery_keeps_every_acknowledged_event() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("queue.db");
    let mut all_committed: Vec<(i64, String)> = Vec::new();
    for round in 0..ROUNDS {
        let out = run_child_and_kill(&path, round);
        // The child was only killed after printing MIN_COMMITTED ids; how many more it managed
        // depends on machine load, so only that floor is checked.
        assert!(
            out.committed.len() >= MIN_COMMITTED,
            "round {round}: the child printed {} committed ids, fewer than {MIN_COMMITTED}",
            out.committed.len()
        );

        let q = Queue::open(&path, QueueConfig::default()).unwrap();
        // Rows leased by the dead child (and never acknowledged) are back to pending.
        assert!(
            q.recovered_on_open() >= out.leased.len() as u64,
            "round {round}: recovered {} rows, child printed {} leases",
            q.recovered_on_open(),
            out.leased.len()
        );
        for (event, delivery) in &out.leased {
            let deliveries = q.deliveries(EventId(*event)).unwrap();
            let a = deliveries.iter().find(|d| d.destination == "a").unwrap();
            assert_eq!(a.id.0, *delivery);
            assert_eq!(
                a.state,
                DeliveryState::Pending,
                "round {round}: delivery {delivery}"
            );
        }
        all_committed.extend(out.committed);
        for (id, _) in &all_committed {
            let deliveries = q.deliveries(EventId(*id)).unwrap();
            let states: Vec<(&str, DeliveryState)> = deliveries
                .iter()
                .map(|d| (d.destination.as_str(), d.state))
                .collect();
            assert_eq!(
                states,
                [("a", DeliveryState::Pending), ("b", DeliveryState::Pending)],
                "round {round}: acknowledged event {id} is not stored as expected"
            );
        }
        drop(q);
    }

    // Every printed id names the printed event, and only whole batches were ever stored.
    let q = Queue::open(&path, QueueConfig::default()).unwrap();
    let stored = q.lease("b", usize::MAX, SystemTime::now()).unwrap();
    let by_id: BTreeMap<i64, &str> = stored
        .iter()
        .map(|l| (l.event_id.0, l.message_id.as_str()))
        .collect();
    assert_eq!(by_id.len(), stored.len(), "duplicate event ids");
    for (id, name) in &all_committed {
        assert_eq!(by_id.get(id).copied(), Some(name.as_str()), "event {id}");
    }
    let mut per_batch: BTreeMap<&str, usize> = BTreeMap::new();
    for lease in &stored {
        let batch = lease
            .message_id
            .rsplit_once("-e")
            .map(|(batch, _)| batch)
            .unwrap();
        *per_batch.entry(batch).or_default() += 1;
    }
    assert!(
        per_batch.values().all(|n| *n == BATCH),
        "a partial batch was stored: {:?}",
        per_batch.iter().find(|(_, n)| **n != BATCH)
    );
    let printed: HashSet<i64> = all_committed.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        printed.len(),
        all_committed.len(),
        "an id was printed twice"
    );
}
