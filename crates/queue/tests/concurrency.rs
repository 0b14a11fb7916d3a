//! Many threads enqueue at once: every batch is committed, ids are unique and map to the right
//! events.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use actionkit_queue::{EventId, NewEvent, Queue, QueueConfig};
use tempfile::TempDir;

const THREADS: usize = 16;
const BATCHES: usize = 40;
const EVENTS: usize = 25;

#[test]
fn concurrent_enqueues_are_all_committed_with_unique_ids() {
    let dir = TempDir::new().unwrap();
    let q = Queue::open(dir.path().join("queue.db"), QueueConfig::default()).unwrap();
    let destinations = vec!["a".to_string(), "b".to_string()];
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let q = q.clone();
            let destinations = destinations.clone();
            std::thread::spawn(move || {
                let mut mine: Vec<(EventId, String)> = Vec::new();
                for b in 0..BATCHES {
                    let batch: Vec<NewEvent> = (0..EVENTS)
                        .map(|e| {
                            let id = format!("t{t}-b{b}-e{e}");
                            NewEvent::new(id.clone(), format!(r#"{{"messageId":"{id}"}}"#))
                        })
                        .collect();
                    let names: Vec<String> = batch.iter().map(|e| e.message_id.clone()).collect();
                    let ids = q.enqueue(batch, &destinations).unwrap();
                    assert_eq!(ids.len(), EVENTS);
                    mine.extend(ids.into_iter().zip(names));
                }
                mine
            })
        })
        .collect();
    let mut all: Vec<(EventId, String)> = Vec::new();
    for handle in handles {
        all.extend(handle.join().unwrap());
    }
    let total = THREADS * BATCHES * EVENTS;
    assert_eq!(all.len(), total);
    let unique: HashSet<EventId> = all.iter().map(|(id, _)| *id).collect();
    assert_eq!(unique.len(), total, "event ids are not unique");

    let stats = q.stats(SystemTime::now()).unwrap();
    assert_eq!(stats.events_stored, total as u64);
    for d in &stats.destinations {
        assert_eq!(d.pending, total as u64, "{}", d.destination);
    }

    // Every id returned to a caller names that caller's event, for both destinations.
    let expected: HashMap<EventId, String> = all.into_iter().collect();
    for destination in &destinations {
        let leased = q.lease(destination, total * 2, SystemTime::now()).unwrap();
        assert_eq!(leased.len(), total);
        for lease in leased {
            assert_eq!(expected.get(&lease.event_id), Some(&lease.message_id));
            let payload = format!(r#"{{"messageId":"{}"}}"#, lease.message_id);
            assert_eq!(lease.payload, payload.as_bytes());
        }
    }
}
