//! Model-based property test: random sequences of queue operations are run against the real
//! queue and against a small in-memory model of the state machine, and every answer and every
//! count must agree.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actionkit_queue::{
    DlqFilter, DlqSelection, Durability, EventId, LeaseId, NewEvent, Queue, QueueConfig,
};
use proptest::prelude::*;
use tempfile::TempDir;

const DESTS: [&str; 2] = ["a", "b"];
const LEASE_SECS: u64 = 60;

#[derive(Debug, Clone)]
enum Op {
    Enqueue { n: usize, both: bool },
    Lease { dest: usize, max_n: usize },
    Ack { held: usize },
    Retry { held: usize, delay_secs: u64 },
    DeadLetter { held: usize },
    Advance { secs: u64 },
    Replay { dest: usize },
    Purge { dest: usize },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1usize..4, any::<bool>()).prop_map(|(n, both)| Op::Enqueue { n, both }),
        3 => (0usize..2, 1usize..5).prop_map(|(dest, max_n)| Op::Lease { dest, max_n }),
        2 => (0usize..8).prop_map(|held| Op::Ack { held }),
        2 => (0usize..8, 0u64..120).prop_map(|(held, delay_secs)| Op::Retry { held, delay_secs }),
        1 => (0usize..8).prop_map(|held| Op::DeadLetter { held }),
        2 => (1u64..90).prop_map(|secs| Op::Advance { secs }),
        1 => (0usize..2).prop_map(|dest| Op::Replay { dest }),
        1 => (0usize..2).prop_map(|dest| Op::Purge { dest }),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Pending,
    Retry,
    InFlight,
    Dead,
}

#[derive(Debug, Clone)]
struct Row {
    state: St,
    due_ms: u64,
    generation: i64,
}

#[derive(Default)]
struct Model {
    rows: BTreeMap<(EventId, &'static str), Row>,
    delivered: BTreeMap<&'static str, u64>,
    sizes: BTreeMap<EventId, u64>,
}

impl Model {
    fn reclaim(&mut self, dest: Option<&str>, now_ms: u64) {
        for ((_, d), row) in self.rows.iter_mut() {
            if dest.is_none_or(|x| x == *d) && row.state == St::InFlight && row.due_ms <= now_ms {
                row.state = St::Pending;
            }
        }
    }

    fn count(&self, dest: &str, state: St) -> u64 {
        self.rows
            .iter()
            .filter(|((_, d), r)| *d == dest && r.state == state)
            .count() as u64
    }

    fn live_events(&self) -> Vec<EventId> {
        let mut ids: Vec<EventId> = self.rows.keys().map(|(id, _)| *id).collect();
        ids.dedup();
        ids
    }

    fn events(&self) -> u64 {
        self.live_events().len() as u64
    }

    fn bytes(&self) -> u64 {
        self.live_events().iter().map(|id| self.sizes[id]).sum()
    }
}

fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn config() -> QueueConfig {
    QueueConfig {
        lease_duration: Duration::from_secs(LEASE_SECS),
        durability: Durability::ProcessCrashOnly,
        ..QueueConfig::default()
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("queue.db");
    let mut q = Queue::open(&path, config()).unwrap();
    let mut model = Model::default();
    let mut held: Vec<(LeaseId, EventId, &'static str)> = Vec::new();
    // A virtual clock an hour ahead of real time, so every enqueued row is already due.
    let real_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut now_ms = real_ms + 3_600_000;
    let mut tag = 0usize;

    for op in ops {
        match op {
            Op::Enqueue { n, both } => {
                let dests: Vec<&'static str> = if both { DESTS.to_vec() } else { vec![DESTS[0]] };
                let names: Vec<String> = dests.iter().map(|d| d.to_string()).collect();
                let batch: Vec<NewEvent> = (0..n)
                    .map(|e| NewEvent::new(format!("m{tag}-{e}"), vec![b'x'; 10]))
                    .collect();
                let sizes: Vec<u64> = batch
                    .iter()
                    .map(|e| (e.message_id.len() + 10) as u64)
                    .collect();
                tag += 1;
                let ids = q.enqueue(batch, &names).unwrap();
                prop_assert_eq!(ids.len(), n);
                for (id, size) in ids.into_iter().zip(sizes) {
                    model.sizes.insert(id, size);
                    for d in &dests {
                        model.rows.insert(
                            (id, d),
                            Row {
                                state: St::Pending,
                                due_ms: real_ms,
                                generation: 0,
                            },
                        );
                    }
                }
            }
            Op::Lease { dest, max_n } => {
                let d = DESTS[dest];
                model.reclaim(Some(d), now_ms);
                let due = model
                    .rows
                    .iter()
                    .filter(|((_, x), r)| {
                        *x == d && matches!(r.state, St::Pending | St::Retry) && r.due_ms <= now_ms
                    })
                    .count();
                let leases = q.lease(d, max_n, at(now_ms)).unwrap();
                prop_assert_eq!(leases.len(), due.min(max_n));
                for lease in leases {
                    let row = model.rows.get_mut(&(lease.event_id, d)).unwrap();
                    prop_assert!(matches!(row.state, St::Pending | St::Retry));
                    prop_assert!(row.due_ms <= now_ms);
                    prop_assert!(lease.id.generation > row.generation);
                    row.state = St::InFlight;
                    row.due_ms = now_ms + LEASE_SECS * 1000;
                    row.generation = lease.id.generation;
                    held.push((lease.id, lease.event_id, d));
                }
            }
            Op::Ack { held: idx } => {
                if held.is_empty() {
                    continue;
                }
                let (id, event, d) = held.remove(idx % held.len());
                let expected = u64::from(model.rows.remove(&(event, d)).is_some());
                *model.delivered.entry(d).or_default() += expected;
                prop_assert_eq!(q.ack_delivered(&[id]).unwrap(), expected);
            }
            Op::Retry {
                held: idx,
                delay_secs,
            } => {
                if held.is_empty() {
                    continue;
                }
                let (id, event, d) = held[idx % held.len()];
                let when = now_ms + delay_secs * 1000;
                let applies = match model.rows.get_mut(&(event, d)) {
                    Some(row) if row.state == St::InFlight && row.generation == id.generation => {
                        row.state = St::Retry;
                        row.due_ms = when;
                        true
                    }
                    _ => false,
                };
                prop_assert_eq!(q.retry_at(id, at(when), "HTTP 503").unwrap(), applies);
            }
            Op::DeadLetter { held: idx } => {
                if held.is_empty() {
                    continue;
                }
                let (id, event, d) = held[idx % held.len()];
                let applies = match model.rows.get_mut(&(event, d)) {
                    Some(row) if row.state == St::InFlight && row.generation == id.generation => {
                        row.state = St::Dead;
                        true
                    }
                    _ => false,
                };
                prop_assert_eq!(q.dead_letter(id, "HTTP 400", at(now_ms)).unwrap(), applies);
            }
            Op::Advance { secs } => now_ms += secs * 1000,
            Op::Replay { dest } => {
                let d = DESTS[dest];
                let mut n = 0;
                for ((_, x), row) in model.rows.iter_mut() {
                    if *x == d && row.state == St::Dead {
                        row.state = St::Pending;
                        row.due_ms = now_ms;
                        row.generation += 1;
                        n += 1;
                    }
                }
                let replayed = q
                    .dlq_replay(&DlqSelection::Destination(d.into()), at(now_ms))
                    .unwrap();
                prop_assert_eq!(replayed, n);
            }
            Op::Purge { dest } => {
                let d = DESTS[dest];
                let before = model.rows.len();
                model
                    .rows
                    .retain(|(_, x), row| !(*x == d && row.state == St::Dead));
                let purged = q.dlq_purge(&DlqSelection::Destination(d.into())).unwrap();
                prop_assert_eq!(purged, (before - model.rows.len()) as u64);
            }
            Op::Reopen => {
                drop(q);
                q = Queue::open(&path, config()).unwrap();
                let mut recovered = 0;
                for row in model.rows.values_mut() {
                    if row.state == St::InFlight {
                        // Recovered rows are due at once (at the real time of the reopen).
                        row.state = St::Pending;
                        row.due_ms = real_ms;
                        recovered += 1;
                    }
                }
                prop_assert_eq!(q.recovered_on_open(), recovered);
            }
        }

        // Every count the queue reports matches the model after every step.
        let stats = q.stats(at(now_ms)).unwrap();
        prop_assert_eq!(stats.events_stored, model.events());
        prop_assert_eq!(stats.bytes_stored, model.bytes());
        for d in DESTS {
            let got = stats.destinations.iter().find(|s| s.destination == d);
            let (pending, retry, in_flight, dead, delivered) = got.map_or((0, 0, 0, 0, 0), |s| {
                (
                    s.pending,
                    s.retry_scheduled,
                    s.in_flight,
                    s.dead_lettered,
                    s.delivered_total,
                )
            });
            prop_assert_eq!(pending, model.count(d, St::Pending), "pending {}", d);
            prop_assert_eq!(retry, model.count(d, St::Retry), "retry {}", d);
            prop_assert_eq!(in_flight, model.count(d, St::InFlight), "in flight {}", d);
            prop_assert_eq!(dead, model.count(d, St::Dead), "dead {}", d);
            prop_assert_eq!(
                delivered,
                model.delivered.get(d).copied().unwrap_or(0),
                "delivered {}",
                d
            );
            let dlq = q
                .dlq_count(&DlqFilter {
                    destination: Some(d.into()),
                    message_id: None,
                })
                .unwrap();
            prop_assert_eq!(dlq, model.count(d, St::Dead));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn queue_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops)?;
    }
}
