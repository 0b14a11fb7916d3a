//! Behaviour tests of the queue on real SQLite files in temporary directories.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use actionkit_queue::{
    CommitInfo, CommitObserver, DeliveryId, DeliveryState, DlqFilter, DlqSelection, EventId,
    FULL_HINT_TTL, FingerprintPart, NewEvent, Queue, QueueConfig, QueueError, RetryOutcome,
};
use tempfile::TempDir;

fn dests(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn events(prefix: &str, n: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|idx| {
            NewEvent::new(
                format!("{prefix}-{idx}"),
                format!(r#"{{"type":"track","event":"{prefix}-{idx}"}}"#),
            )
        })
        .collect()
}

fn open(dir: &TempDir, config: QueueConfig) -> Queue {
    Queue::open(dir.path().join("queue.db"), config).unwrap()
}

fn count_rows(dir: &TempDir, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(dir.path().join("queue.db")).unwrap();
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
        row.get(0)
    })
    .unwrap()
}

fn dest_stats(q: &Queue, name: &str) -> actionkit_queue::DestinationStats {
    q.stats(SystemTime::now())
        .unwrap()
        .destinations
        .into_iter()
        .find(|d| d.destination == name)
        .unwrap_or_else(|| panic!("no stats for {name}"))
}

#[test]
fn each_event_fans_out_to_every_destination_in_order() {
    let dir = TempDir::new().unwrap();
    let q = open(&dir, QueueConfig::default());
    let ids = q.enqueue(events("e", 3), &dests(&["a", "b"])).unwrap();
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    let now = SystemTime::now();
    let a = q.lease("a", 10, now).unwrap();
    assert_eq!(
        a.iter().map(|l| l.message_id.as_str()).collect::<Vec<_>>(),
        ["e-0", "e-1", "e-2"]
    );
    assert_eq!(a.iter().map(|l| l.event_id).collect::<Vec<_>>(), ids);
    assert_eq!(a[1].payload, br#"{"type":"track","event":"e-1"}"#.to_vec());
    assert!(a.iter().all(|l| l.attempts == 0 && l.last_error.is_none()));
    assert!(a.iter().all(|l| l.destination == "a"));
    // In-flight rows are not handed out twice, but the other destination has its own copies.
    assert!(q.lease("a", 10, now).unwrap().is_empty());
    assert_eq!(q.lease("b", 2, now).unwrap().len(), 2);
    assert_eq!(q.lease("b", 2, now).unwrap().len(), 1);
    assert!(q.lease("unknown", 10, now).unwrap().is_empty());

    let a_stats = dest_stats(&q, "a");
    assert_eq!((a_stats.pending, a_stats.in_flight), (0, 3));
    let stats = q.stats(now).unwrap();
    assert_eq!(stats.events_stored, 3);
    assert!(stats.db_file_bytes > 0);
}

#[test]
fn ack_prunes_rows_and_counts_deliveries() {
    let dir = TempDir::new().unwrap();
    let q = open(&dir, QueueConfig::default());
    q.enqueue(events("e", 4), &dests(&["a", "b"])).unwrap();
    let now = SystemTime::now();
    let a = q.lease("a", 10, now).unwrap();
    let acked = q
        .ack_delivered(&a.iter().map(|l| l.id).collect::<Vec<_>>())
        .unwrap();
    assert_eq!(acked, 4);
    // Destination b still needs the events, so they stay.
    assert_eq!(count_rows(&dir, "events"), 4);
    assert_eq!(count_rows(&dir, "deliveries"), 4);
    let a_stats = dest_stats(&q, "a");
    assert_eq!(
        (a_stats.delivered_total, a_stats.pending, a_stats.in_flight),
        (4, 0, 0)
    );

    let b = q.lease("b", 10, now).unwrap();
    q.ack_delivered(&b.iter().map(|l| l.id).collect::<Vec<_>>())
        .unwrap();
    assert_eq!(count_rows(&dir, "events"), 0);
    assert_eq!(count_rows(&dir, "deliveries"), 0);
    let stats = q.stats(now).unwrap();
    assert_eq!((stats.events_stored, stats.bytes_stored), (0, 0));
    assert_eq!(dest_stats(&q, "b").delivered_total, 4);
    // Acknowledging again finds nothing and changes nothing.
    assert_eq!(q.ack_delivered(&[b[0].id]).unwrap(), 0);
    assert_eq!(dest_stats(&q, "b").delivered_total, 4);
}

#[test]
fn retry_becomes_due_at_its_time_with_attempt_and_error() {
    let dir = TempDir::new().unwrap();
    let q = open(&dir, QueueConfig::default());
    q.enqueue(events("e", 1), &dests(&["a"])).unwrap();
    let now = SystemTime::now();
    let lease = q.lease("a", 1, now).unwrap().remove(0);
    let when = now + Duration::from_secs(30);
    assert!(
        q.retry_at(lease.id, when, "HTTP 503 Service Unavailable")
            .unwrap()
    );
    assert_eq!(dest_stats(&q, "a").retry_scheduled, 1);

    assert!(
        q.lease("a", 1, when - Duration::from_millis(1))
            .unwrap()
            .is_empty()
    );
    let again = q.lease("a", 1, when).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);
    assert_eq!(
        again[0].last_error.as_deref(),
        Some("HTTP 503 Service Unavailable")
    );
    assert_eq!(again[0].id.delivery, lease.id.delivery);
    assert_ne!(again[0].id.generation, lease.id.generation);
}

#[test]
fn expired_lease_returns_the_row_and_fences_the_old_worker() {
    let dir = TempDir::new().unwrap();
    let cfg = QueueConfig {
        lease_duration: Duration::from_secs(60),
        ..QueueConfig::default()
    };
    let q = open(&dir, cfg);
    q.enqueue(events("e", 2), &dests(&["a"])).unwrap();
    let t0 = SystemTime::now();
    let first = q.lease("a", 10, t0).unwrap();
    assert_eq!(first.len(), 2);
    assert_eq!(first[0].lease_until, {
        // Stored at millisecond precision.
        let ms = (t0 + Duration::from_secs(60))
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    });

    // Before the deadline nothing is handed out again.
    let just_before = t0 + Duration::from_millis(59_000);
    assert!(q.lease("a", 10, just_before).unwrap().is_empty());
    assert_eq!(q.reclaim_expired(just_before).unwrap(), 0);

    // After it, reclaim returns both rows to pending and a new worker gets them.
    let after = t0 + Duration::from_secs(61);
    assert_eq!(q.reclaim_expired(after).unwrap(), 2);
    assert_eq!(dest_stats(&q, "a").pending, 2);
    let second = q.lease("a", 10, after).unwrap();
    assert_eq!(second.len(), 2);

    // The first worker's outcome can no longer overwrite the second worker's lease.
    assert!(!q.retry_at(first[0].id, after, "late").unwrap());
    assert!(!q.dead_letter(first[1].id, "late", after).unwrap());
    assert_eq!(dest_stats(&q, "a").in_flight, 2);
    assert!(q.retry_at(second[0].id, after, "HTTP 500").unwrap());
    assert!(q.dead_letter(second[1].id, "HTTP 400", after).unwrap());
    let st = dest_stats(&q, "a");
    assert_eq!(
        (st.retry_scheduled, st.dead_lettered, st.in_flight),
        (1, 1, 0)
    );
}

#[test]
fn lease_itself_picks_up_rows_of_a_dead_worker() {
    let dir = TempDir::new().unwrap();
    let q = open(&dir, QueueConfig::default());
    q.enqueue(events("e", 3), &dests(&["a"])).unwrap();
    let t0 = SystemTime::now();
    assert_eq!(q.lease("a", 3, t0).unwrap().len(), 3);
    let later = t0 + q.config().lease_duration;
    let again = q.lease("a", 10, later).unwrap();
    assert_eq!(
        again
            .iter()
            .map(|l| l.message_id.as_str())
            .collect::<Vec<_>>(),
        ["e-0", "e-1", "e-2"]
    );
}

#[test]
fn dead_letter_list_get_replay_and_purge() {
    let dir = TempDir::new().unwrap();
    let q = open(&dir, QueueConfig::default());
    q.enqueue(events("e", 3), &dests(&["a", "b"])).unwrap();
    let now = SystemTime::now();
    let a = q.lease("a", 10, now).unwrap();
    let b = q.lease("b", 10, now).unwrap();
    assert!(q.retry_at(a[0].id, now, "HTTP 502").unwrap());
    let a0 = q.lease("a", 1, now).unwrap().remove(0);
    assert!(
        q.dead_letter(a0.id, "HTTP 400: invalid user id", now)
            .unwrap()
    );
    assert!(q.dead_letter(a[1].id, "HTTP 401", now).unwrap());
    assert!(q.dead_letter(b[2].id, "HTTP 404", now).unwrap());

    assert_eq!(q.dlq_count(&DlqFilter::default()).unwrap(), 3);
    let listed = q
        .dlq_list(
            &DlqFilter {
                destination: Some("a".into()),
                message_id: None,
            },
            10,
            0,
        )
        .unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].message_id, "e-0");
    assert_eq!(listed[0].reason, "HTTP 400: invalid user id");
    assert_eq!(listed[0].last_error.as_deref(), Some("HTTP 502"));
    assert_eq!(listed[0].attempts, 2);
    assert_eq!(listed[1].attempts, 1);
    let by_message = q
        .dlq_list(
            &DlqFilter {
                destination: None,
                message_id: Some("e-2".into()),
            },
            10,
            0,
        )
        .unwrap();
    assert_eq!(by_message.len(), 1);
    assert_eq!(by_message[0].destination, "b");
    // Paging.
    let page2 = q.dlq_list(&DlqFilter::default(), 2, 2).unwrap();
    assert_eq!(page2.len(), 1);
    assert_eq!(page2[0].delivery_id, by_message[0].delivery_id);

    let item = q.dlq_get(listed[1].delivery_id).unwrap().unwrap();
    assert_eq!(item.payload, br#"{"type":"track","event":"e-1"}"#.to_vec());
    assert_eq!(item.entry.payload_bytes, item.payload.len() as u64);
    assert!(
        !format!("{item:?}").contains("track"),
        "payload leaked into Debug"
    );
    // A delivery that is not dead-lettered is not in the DLQ.
    assert!(q.dlq_get(b[0].id.delivery).unwrap().is_none());
    assert!(q.dlq_get(DeliveryId(999_999)).unwrap().is_none());

    // Replay one by id: back to pending with attempts reset and a fresh age clock. (Within the
    // lease duration, so a[2] stays in flight.)
    let later = now + Duration::from_secs(30);
    assert_eq!(
        q.dlq_replay(
            &DlqSelection::Ids(vec![listed[0].delivery_id, b[0].id.delivery]),
            later
        )
        .unwrap(),
        1
    );
    let replayed = q.lease("a", 10, later).unwrap();
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0].message_id, "e-0");
    assert_eq!(replayed[0].attempts, 0);
    assert!(replayed[0].last_error.is_none());
    assert!(replayed[0].age_from >= later - Duration::from_millis(1));

    // Purge destination b's DLQ (event e-2 stays: destination a still has it in flight).
    assert_eq!(
        q.dlq_purge(&DlqSelection::Destination("b".into())).unwrap(),
        1
    );
    assert_eq!(q.dlq_count(&DlqFilter::default()).unwrap(), 1);
    assert_eq!(dest_stats(&q, "b").purged_total, 1);
    // Purge everything left.
    assert_eq!(q.dlq_purge(&DlqSelection::All).unwrap(), 1);
    assert_eq!(q.dlq_count(&DlqFilter::default()).unwrap(), 0);
    let a_stats = dest_stats(&q, "a");
    assert_eq!((a_stats.dead_lettered_total, a_stats.purged_total), (2, 1));

    // Ack what is still in flight; every event must then be gone from the file.
    let mut open_leases: Vec<_> = replayed.iter().map(|l| l.id).collect();
    open_leases.extend(b[..2].iter().map(|l| l.id));
    assert_eq!(q.ack_delivered(&open_leases).unwrap(), 3);
    // a[2] is still in flight.
    assert_eq!(count_rows(&dir, "deliveries"), 1);
    q.ack_delivered(&[a[2].id]).unwrap();
    assert_eq!(count_rows(&dir, "events"), 0);
    assert_eq!(q.stats(later).unwrap().events_stored, 0);
}

#[test]
fn replay_all_for_destination_only_touches_that_destination() {
    let dir = TempDir::new().unwrap();
    let q = open(&dir, QueueConfig::default());
    q.enqueue(events("e", 2), &dests(&["a", "b"])).unwrap();
    let now = SystemTime::now();
    for d in ["a", "b"] {
        for l in q.lease(d, 10, now).unwrap() {
            assert!(q.dead_letter(l.id, "HTTP 403", now).unwrap());
        }
    }
    assert_eq!(
        q.dlq_replay(&DlqSelection::Destination("a".into()), now)
            .unwrap(),
        2
    );
    assert_eq!(dest_stats(&q, "a").pending, 2);
    assert_eq!(dest_stats(&q, "b").dead_lettered, 2);
    assert_eq!(q.dlq_replay(&DlqSelection::All, now).unwrap(), 2);
    assert_eq!(dest_stats(&q, "b").pending, 2);
}

#[test]
fn schedule_retry_dead_letters_past_max_age() {
    let dir = TempDir::new().unwrap();
    let cfg = QueueConfig {
        max_age: Duration::from_secs(3600),
        ..QueueConfig::default()
    };
    let q = open(&dir, cfg);
    q.enqueue(events("e", 2), &dests(&["a"])).unwrap();
    let now = SystemTime::now();
    let leases = q.lease("a", 10, now).unwrap();
    let deadline = q.config().retry_deadline(&leases[0]);
    assert_eq!(deadline, leases[0].age_from + Duration::from_secs(3600));

    let within = q
        .schedule_retry(&leases[0], deadline, "HTTP 500: oops", now)
        .unwrap();
    assert_eq!(within, RetryOutcome::RetryScheduled);
    let past = q
        .schedule_retry(
            &leases[1],
            deadline + Duration::from_secs(1),
            "HTTP 429: slow down",
            now,
        )
        .unwrap();
    assert_eq!(past, RetryOutcome::DeadLettered);
    let dlq = q.dlq_list(&DlqFilter::default(), 10, 0).unwrap();
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].reason, "max age exceeded: HTTP 429: slow down");
    // The lease of leases[0] is used up, so a second outcome is refused.
    assert_eq!(
        q.schedule_retry(&leases[0], now, "again", now).unwrap(),
        RetryOutcome::LeaseLost
    );
}

#[test]
fn full_queue_refuses_the_whole_batch_and_stores_nothing_of_it() {
    let dir = TempDir::new().unwrap();
    let cfg = QueueConfig {
        max_events: 5,
        full_retry_after: Duration::from_secs(7),
        ..QueueConfig::default()
    };
    let q = open(&dir, cfg);
    q.enqueue(events("first", 3), &dests(&["a"])).unwrap();
    let err = q.enqueue(events("second", 3), &dests(&["a"])).unwrap_err();
    assert!(
        matches!(
            err,
            QueueError::Full {
                retry_after_secs: 7
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "queue is full; retry after 7 s");
    assert_eq!(count_rows(&dir, "events"), 3);
    assert_eq!(count_rows(&dir, "deliveries"), 3);
    // A batch that fits exactly is still accepted.
    q.enqueue(events("third", 2), &dests(&["a"])).unwrap();
    assert_eq!(q.stats(SystemTime::now()).unwrap().events_stored, 5);
    assert!(matches!(
        q.enqueue(events("fourth", 1), &dests(&["a"])),
        Err(QueueError::Full { .. })
    ));
    // Delivering frees room.
    let now = SystemTime::now();
    let leased = q.lease("a", 2, now).unwrap();
    q.ack_delivered(&leased.iter().map(|l| l.id).collect::<Vec<_>>())
        .unwrap();
    q.enqueue(events("fifth", 2), &dests(&["a"])).unwrap();
    // A batch larger than the bound can never fit and says so.
    let err = q.enqueue(events("huge", 6), &dests(&["a"])).unwrap_err();
    assert!(
        matches!(err, QueueError::BatchTooLarge { events: 6, .. }),
        "{err:?}"
    );
    let message_ids: HashSet<String> = q
        .lease("a", 100, now + Duration::from_secs(1))
        .unwrap()
        .into_iter()
        .map(|l| l.message_id)
        .collect();
    let expected: HashSet<String> = ["first-2", "third-0", "third-1", "fifth-0", "fifth-1"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(message_ids, expected);
}

#[test]
fn the_full_hint_follows_the_writer_and_expires() {
    let dir = TempDir::new().unwrap();
    let cfg = QueueConfig {
        max_events: 2,
        full_retry_after: Duration::from_secs(3),
        ..QueueConfig::default()
    };
    let q = open(&dir, cfg);
    q.enqueue(events("first", 2), &dests(&["a"])).unwrap();
    // Full, but no request has been turned away yet: no hint.
    assert_eq!(q.full_hint(SystemTime::now()), None);
    let window = Duration::from_secs(5);
    assert_eq!(q.refused_full_within(SystemTime::now(), window), None);
    let before = SystemTime::now();
    assert!(matches!(
        q.enqueue(events("second", 1), &dests(&["a"])),
        Err(QueueError::Full { .. })
    ));
    let now = SystemTime::now();
    assert_eq!(q.full_hint(now), Some(3));
    // The hint expires, so the writer is asked again; a wider window still sees the refusal,
    // up to its end (milliseconds are kept, so allow for the truncation of `before`).
    assert_eq!(q.full_hint(now + FULL_HINT_TTL), None);
    assert_eq!(q.refused_full_within(now + FULL_HINT_TTL, window), Some(3));
    let almost = before + window - Duration::from_millis(2);
    assert_eq!(q.refused_full_within(almost, window), Some(3));
    let past = now + window + Duration::from_millis(1);
    assert_eq!(q.refused_full_within(past, window), None);
    // Once deliveries free room and a request is stored, the hint is gone at once.
    let leased = q.lease("a", 1, now).unwrap();
    q.ack_delivered(&leased.iter().map(|l| l.id).collect::<Vec<_>>())
        .unwrap();
    q.enqueue(events("third", 1), &dests(&["a"])).unwrap();
    assert_eq!(q.full_hint(SystemTime::now()), None);
    assert_eq!(q.refused_full_within(SystemTime::now(), window), None);
}

#[test]
fn byte_bound_counts_payload_and_message_id() {
    let dir = TempDir::new().unwrap();
    let cfg = QueueConfig {
        max_bytes: 100,
        ..QueueConfig::default()
    };
    let q = open(&dir, cfg);
    // 10 bytes of messageId plus 40 bytes of payload each.
    let ev = |id: &str| NewEvent::new(format!("{id:0>10}"), vec![b'x'; 40]);
    q.enqueue(vec![ev("1"), ev("2")], &dests(&["a"])).unwrap();
    assert_eq!(q.stats(SystemTime::now()).unwrap().bytes_stored, 100);
    assert!(matches!(
        q.enqueue(vec![NewEvent::new("", vec![b'y'; 1])], &dests(&["a"])),
        Err(QueueError::Full { .. })
    ));
    assert_eq!(count_rows(&dir, "events"), 2);
}

#[test]
fn concurrent_requests_over_the_bound_are_refused_whole() {
    let dir = TempDir::new().unwrap();
    let cfg = QueueConfig {
        max_events: 10,
        ..QueueConfig::default()
    };
    let q = open(&dir, cfg);
    // Submitting without waiting lets the writer put several requests in one transaction.
    let pending: Vec<_> = (0..10)
        .map(|idx| {
            q.submit(events(&format!("b{idx}"), 3), &dests(&["a"]))
                .unwrap()
        })
        .collect();
    let results: Vec<_> = pending.into_iter().map(|p| p.wait()).collect();
    let accepted: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_ok())
        .map(|(idx, _)| idx)
        .collect();
    assert_eq!(accepted.len(), 3, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(_) | Err(QueueError::Full { .. })))
    );
    let stored: HashSet<String> = q
        .lease("a", 100, SystemTime::now())
        .unwrap()
        .into_iter()
        .map(|l| l.message_id)
        .collect();
    let expected: HashSet<String> = accepted
        .iter()
        .flat_map(|idx| (0..3).map(move |e| format!("b{idx}-{e}")))
        .collect();
    assert_eq!(stored, expected);
}

#[test]
fn bad_destination_lists_are_refused_before_storing() {
    let dir = TempDir::new().unwrap();
    let q = open(&dir, QueueConfig::default());
    assert!(matches!(
        q.enqueue(events("e", 1), &[]),
        Err(QueueError::NoDestinations)
    ));
    let err = q
        .enqueue(events("e", 1), &dests(&["a", "b", "a"]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"invalid destination list: destination appears more than once (destination "a")"#
    );
    assert!(matches!(
        q.enqueue(events("e", 1), &dests(&["a", ""])),
        Err(QueueError::InvalidDestination { .. })
    ));
    assert_eq!(
        q.enqueue(Vec::new(), &dests(&["a"])).unwrap(),
        Vec::<EventId>::new()
    );
    assert_eq!(count_rows(&dir, "events"), 0);
}

#[test]
fn reopening_returns_in_flight_rows_to_pending() {
    let dir = TempDir::new().unwrap();
    {
        let q = open(&dir, QueueConfig::default());
        q.enqueue(events("e", 5), &dests(&["a"])).unwrap();
        assert_eq!(q.lease("a", 2, SystemTime::now()).unwrap().len(), 2);
        assert_eq!(q.recovered_on_open(), 0);
    }
    // An inspecting tool leaves them alone.
    {
        let q = open(
            &dir,
            QueueConfig {
                recover_in_flight: false,
                ..QueueConfig::default()
            },
        );
        assert_eq!(q.recovered_on_open(), 0);
        assert_eq!(dest_stats(&q, "a").in_flight, 2);
    }
    let q = open(&dir, QueueConfig::default());
    assert_eq!(q.recovered_on_open(), 2);
    let st = dest_stats(&q, "a");
    assert_eq!((st.pending, st.in_flight), (5, 0));
    assert_eq!(q.lease("a", 10, SystemTime::now()).unwrap().len(), 5);
}

#[test]
fn schema_is_versioned_and_newer_databases_are_refused() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("queue.db");
    drop(Queue::open(&path, QueueConfig::default()).unwrap());
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let versions: Vec<i64> = conn
            .prepare("SELECT version FROM schema_migrations ORDER BY version")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(versions, [1, 2, 3]);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        conn.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)",
            [],
        )
        .unwrap();
    }
    let err = Queue::open(&path, QueueConfig::default()).unwrap_err();
    assert!(
        matches!(
            err,
            QueueError::SchemaTooNew {
                found: 99,
                supported: 3
            }
        ),
        "{err:?}"
    );
}

#[test]
fn opening_a_missing_directory_names_the_path() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("no-such-dir").join("queue.db");
    let err = Queue::open(&path, QueueConfig::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("cannot open queue database "), "{msg}");
    assert!(msg.contains("no-such-dir"), "{msg}");
}

#[test]
fn data_survives_reopen() {
    let dir = TempDir::new().unwrap();
    let ids = {
        let q = open(&dir, QueueConfig::default());
        q.enqueue(events("e", 3), &dests(&["a"])).unwrap()
    };
    let q = open(&dir, QueueConfig::default());
    let leased = q.lease("a", 10, SystemTime::now()).unwrap();
    assert_eq!(leased.iter().map(|l| l.event_id).collect::<Vec<_>>(), ids);
    // Ids are not reused after the events are gone.
    q.ack_delivered(&leased.iter().map(|l| l.id).collect::<Vec<_>>())
        .unwrap();
    let more = q.enqueue(events("f", 1), &dests(&["a"])).unwrap();
    assert!(more[0] > ids[2], "{more:?} after {ids:?}");
}

#[test]
fn pending_enqueue_is_a_future() {
    use std::future::Future;
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    let dir = TempDir::new().unwrap();
    let q = open(&dir, QueueConfig::default());
    let mut fut = Box::pin(q.submit(events("e", 2), &dests(&["a"])).unwrap());
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let ids = loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(res) => break res.unwrap(),
            Poll::Pending => std::thread::park(),
        }
    };
    assert_eq!(ids.len(), 2);
    assert_eq!(dest_stats(&q, "a").pending, 2);
}

#[test]
fn debug_output_hides_payloads() {
    let ev = NewEvent::new("m1", r#"{"traits":{"password":"hunter2"}}"#);
    let shown = format!("{ev:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("m1"), "{shown}");

    let dir = TempDir::new().unwrap();
    let q = open(&dir, QueueConfig::default());
    q.enqueue(vec![ev], &dests(&["a"])).unwrap();
    let lease = q.lease("a", 1, SystemTime::now()).unwrap().remove(0);
    assert!(!format!("{lease:?}").contains("hunter2"));
}

#[test]
fn deliveries_of_an_event_show_each_state() {
    let dir = TempDir::new().unwrap();
    let q = open(&dir, QueueConfig::default());
    let ids = q
        .enqueue(events("e", 1), &dests(&["a", "b", "c", "d"]))
        .unwrap();
    let now = SystemTime::now();
    let a = q.lease("a", 1, now).unwrap().remove(0);
    let b = q.lease("b", 1, now).unwrap().remove(0);
    let c = q.lease("c", 1, now).unwrap().remove(0);
    let retry_time = now + Duration::from_secs(5);
    assert!(q.retry_at(b.id, retry_time, "HTTP 503").unwrap());
    assert!(q.dead_letter(c.id, "HTTP 400", now).unwrap());
    let infos = q.deliveries(ids[0]).unwrap();
    let states: Vec<(&str, DeliveryState)> = infos
        .iter()
        .map(|i| (i.destination.as_str(), i.state))
        .collect();
    assert_eq!(
        states,
        [
            ("a", DeliveryState::InFlight),
            ("b", DeliveryState::RetryScheduled),
            ("c", DeliveryState::DeadLettered),
            ("d", DeliveryState::Pending),
        ]
    );
    assert_eq!(infos[0].id, a.id.delivery);
    assert_eq!(infos[1].attempts, 1);
    assert_eq!(infos[1].last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(infos[2].dead_reason.as_deref(), Some("HTTP 400"));
    assert!(q.deliveries(EventId(12345)).unwrap().is_empty());
    // The CLI prints these names; renaming them is a breaking change.
    assert_eq!(
        serde_json::to_string(&infos[1].state).unwrap(),
        r#""retry_scheduled""#
    );
}

#[test]
fn background_checkpoints_move_the_wal_into_the_database_file() {
    let dir = TempDir::new().unwrap();
    let q = open(&dir, QueueConfig::default());
    // About 24 MiB of events: past the 16 MiB wake-up point, below the 64 MiB inline limit, so
    // only the background checkpointer can have copied pages into the main file.
    for b in 0..48 {
        let batch = (0..500)
            .map(|e| NewEvent::new(format!("b{b}-e{e}"), vec![b'x'; 1000]))
            .collect();
        q.enqueue(batch, &dests(&["a"])).unwrap();
    }
    let main_file = dir.path().join("queue.db");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let len = std::fs::metadata(&main_file).unwrap().len();
        if len >= 16 * 1024 * 1024 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "main database file is still {len} bytes: no checkpoint ran"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(q.stats(SystemTime::now()).unwrap().checkpoint_failures, 0);
}

#[test]
fn the_commit_observer_sees_every_group_commit() {
    let dir = TempDir::new().unwrap();
    let seen: std::sync::Arc<std::sync::Mutex<Vec<CommitInfo>>> = Default::default();
    let observer: CommitObserver = {
        let seen = seen.clone();
        std::sync::Arc::new(move |info: &CommitInfo| seen.lock().unwrap().push(*info))
    };
    let config = QueueConfig {
        max_events: 10,
        ..QueueConfig::default()
    };
    let q = Queue::open_observed(dir.path().join("queue.db"), config, Some(observer)).unwrap();
    q.enqueue(events("a", 3), &dests(&["x"])).unwrap();
    q.enqueue(events("b", 4), &dests(&["x", "y"])).unwrap();
    // Turned away by the bound: observed as a commit that wrote nothing.
    assert!(matches!(
        q.enqueue(events("c", 5), &dests(&["x"])),
        Err(QueueError::Full { .. })
    ));
    drop(q);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(
        seen.iter().map(|c| c.events).collect::<Vec<_>>(),
        vec![3, 4, 0]
    );
    assert!(seen.iter().all(|c| c.committed && c.requests == 1));
    assert!(seen.iter().all(|c| c.took > Duration::ZERO), "{seen:?}");
}

#[test]
fn new_files_get_4_kib_pages_and_older_files_keep_theirs() {
    let dir = TempDir::new().unwrap();
    let page_size = |path: &std::path::Path| -> i64 {
        rusqlite::Connection::open(path)
            .unwrap()
            .query_row("PRAGMA page_size", [], |row| row.get(0))
            .unwrap()
    };
    let fresh = dir.path().join("fresh.db");
    drop(Queue::open(&fresh, QueueConfig::default()).unwrap());
    assert_eq!(page_size(&fresh), 4096);

    // A queue created by an earlier version with 16 KiB pages opens, works and keeps them.
    let older = dir.path().join("older.db");
    {
        let conn = rusqlite::Connection::open(&older).unwrap();
        conn.execute_batch("PRAGMA page_size = 16384; PRAGMA journal_mode = WAL; VACUUM;")
            .unwrap();
    }
    assert_eq!(page_size(&older), 16384);
    let q = Queue::open(&older, QueueConfig::default()).unwrap();
    let ids = q
        .enqueue(vec![NewEvent::new("m1", b"{}".to_vec())], &dests(&["a"]))
        .unwrap();
    assert_eq!(ids.len(), 1);
    let leased = q.lease("a", 10, SystemTime::now()).unwrap();
    assert_eq!(leased.len(), 1);
    drop(q);
    assert_eq!(page_size(&older), 16384);
}

#[test]
fn delivered_rows_are_pruned_so_the_file_stops_growing() {
    let dir = TempDir::new().unwrap();
    let q = open(&dir, QueueConfig::default());
    let mut sizes = Vec::new();
    for round in 0..6 {
        for b in 0..4 {
            let batch = (0..500)
                .map(|e| NewEvent::new(format!("r{round}-b{b}-e{e}"), vec![b'x'; 1000]))
                .collect();
            q.enqueue(batch, &dests(&["a"])).unwrap();
        }
        let now = SystemTime::now();
        loop {
            let leased = q.lease("a", 500, now).unwrap();
            if leased.is_empty() {
                break;
            }
            q.ack_delivered(&leased.iter().map(|l| l.id).collect::<Vec<_>>())
                .unwrap();
        }
        sizes.push(q.stats(now).unwrap().db_file_bytes);
    }
    assert_eq!(count_rows(&dir, "events"), 0);
    assert_eq!(dest_stats(&q, "a").delivered_total, 6 * 2000);
    // Freed pages are reused: after the first round the file holds at most one round's worth.
    assert!(
        sizes[5] <= sizes[0] * 2,
        "database grows with delivered events: {sizes:?}"
    );
}

#[test]
fn large_groups_are_written_whole_with_ids_that_are_never_reused() {
    // 201 events fill three 64-row statements plus single rows; 603 deliveries fill four
    // 128-row statements plus single rows.
    let dir = TempDir::new().unwrap();
    let q = open(&dir, QueueConfig::default());
    let names = dests(&["a", "b", "c"]);
    let first = q.enqueue(events("big", 201), &names).unwrap();
    assert_eq!(first.len(), 201);
    assert!(first.windows(2).all(|w| w[0] < w[1]), "{first:?}");
    assert_eq!(count_rows(&dir, "events"), 201);
    assert_eq!(count_rows(&dir, "deliveries"), 603);
    for name in ["a", "b", "c"] {
        let leases = q.lease(name, 1000, SystemTime::now()).unwrap();
        assert_eq!(leases.len(), 201);
        for lease in &leases {
            let idx = first.iter().position(|id| *id == lease.event_id).unwrap();
            assert_eq!(lease.message_id, format!("big-{idx}"));
            assert_eq!(
                lease.payload,
                format!(r#"{{"type":"track","event":"big-{idx}"}}"#).into_bytes()
            );
        }
        let ids: Vec<_> = leases.iter().map(|l| l.id).collect();
        q.ack_delivered(&ids).unwrap();
    }
    assert_eq!(count_rows(&dir, "events"), 0);
    // The highest ids were deleted; new events still get higher ones, also after a reopen.
    let second = q.enqueue(events("next", 2), &names).unwrap();
    assert!(second[0] > first[200], "{second:?} after {:?}", first[200]);
    drop(q);
    let q = open(&dir, QueueConfig::default());
    let leases = q.lease("a", 10, SystemTime::now()).unwrap();
    let ids: Vec<_> = leases.iter().map(|l| l.id).collect();
    q.ack_delivered(&ids).unwrap();
    for name in ["b", "c"] {
        let ids: Vec<_> = q
            .lease(name, 10, SystemTime::now())
            .unwrap()
            .iter()
            .map(|l| l.id)
            .collect();
        q.ack_delivered(&ids).unwrap();
    }
    let third = q.enqueue(events("third", 1), &names).unwrap();
    assert!(third[0] > second[1], "{third:?} after {:?}", second[1]);
}

// ---------------------------------------------------------------------------------------------
// Fingerprints: what was last delivered to each record.

fn parts(pairs: &[(&str, u64)]) -> Vec<FingerprintPart> {
    pairs
        .iter()
        .map(|(part, hash)| FingerprintPart {
            part: (*part).to_owned(),
            hash: *hash,
        })
        .collect()
}

fn sorted(mut parts: Vec<FingerprintPart>) -> Vec<(String, u64)> {
    parts.sort_by(|a, b| a.part.cmp(&b.part));
    parts.into_iter().map(|p| (p.part, p.hash)).collect()
}

#[test]
fn fingerprints_are_upserted_part_by_part_per_destination_and_record() {
    let dir = TempDir::new().unwrap();
    let q = open(&dir, QueueConfig::default());
    let now = SystemTime::now();
    q.remember_fingerprints(
        "up",
        "user",
        &[
            ("u1".to_owned(), parts(&[("", 0), ("metadata.plan", 7)])),
            (
                "u2".to_owned(),
                parts(&[("", 0), ("metadata.plan", u64::MAX)]),
            ),
        ],
        now,
    )
    .unwrap();
    // A later delivery updates one part and adds another; the rest is kept.
    q.remember_fingerprints(
        "up",
        "user",
        &[(
            "u1".to_owned(),
            parts(&[("metadata.plan", 8), ("company", 3)]),
        )],
        now,
    )
    .unwrap();
    let found = q.fingerprints("up", "user", &["u1", "u2", "u3"]).unwrap();
    assert_eq!(found.len(), 2, "u3 has none");
    assert_eq!(
        sorted(found["u1"].clone()),
        [
            (String::new(), 0),
            ("company".to_owned(), 3),
            ("metadata.plan".to_owned(), 8)
        ]
    );
    // The top bit survives the trip through a signed column.
    assert!(found["u2"].iter().any(|p| p.hash == u64::MAX));
    // Other destinations and record kinds see nothing.
    assert!(q.fingerprints("other", "user", &["u1"]).unwrap().is_empty());
    assert!(q.fingerprints("up", "company", &["u1"]).unwrap().is_empty());
    // Forgetting removes only the named ids.
    assert_eq!(q.forget_fingerprints("up", "user", &["u1"]).unwrap(), 3);
    let left = q.fingerprints("up", "user", &["u1", "u2"]).unwrap();
    assert_eq!(left.keys().collect::<Vec<_>>(), ["u2"]);
    assert_eq!(q.fingerprint_count().unwrap(), 2);
}

#[test]
fn fingerprints_are_pruned_by_age_and_by_row_count() {
    let dir = TempDir::new().unwrap();
    let config = QueueConfig {
        fingerprint_max_age: Duration::from_secs(3600),
        fingerprint_max_rows: 3,
        ..QueueConfig::default()
    };
    let q = open(&dir, config);
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let at = |secs: u64| t0 + Duration::from_secs(secs);
    for (idx, id) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        q.remember_fingerprints(
            "up",
            "user",
            &[((*id).to_owned(), parts(&[("", 0)]))],
            at(idx as u64 * 1000),
        )
        .unwrap();
    }
    // At t0 + 4000 s, "a" (t0) is over an hour old; of the four left the oldest, "b", goes for
    // the row bound of three.
    assert_eq!(q.prune_fingerprints(at(4000)).unwrap(), 2);
    let left = q
        .fingerprints("up", "user", &["a", "b", "c", "d", "e"])
        .unwrap();
    let mut ids: Vec<&String> = left.keys().collect();
    ids.sort();
    assert_eq!(ids, ["c", "d", "e"]);
    assert_eq!(q.prune_fingerprints(at(4000)).unwrap(), 0);
}

#[test]
fn hashes_round_trip_bit_for_bit() {
    let dir = TempDir::new().unwrap();
    let q = open(&dir, QueueConfig::default());
    let edges = [0, 1, i64::MAX as u64, 1 << 63, u64::MAX - 1, u64::MAX];
    let entries: Vec<(String, Vec<FingerprintPart>)> = edges
        .iter()
        .map(|hash| (hash.to_string(), parts(&[("metadata.x", *hash)])))
        .collect();
    q.remember_fingerprints("up", "user", &entries, SystemTime::now())
        .unwrap();
    let ids: Vec<String> = edges.iter().map(u64::to_string).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let found = q.fingerprints("up", "user", &refs).unwrap();
    for hash in edges {
        assert_eq!(found[&hash.to_string()][0].hash, hash);
    }
}

#[test]
fn forgetting_removes_only_the_named_ids_of_that_destination_and_record() {
    let dir = TempDir::new().unwrap();
    let q = open(&dir, QueueConfig::default());
    let now = SystemTime::now();
    let both = || {
        vec![
            ("u1".to_owned(), parts(&[("", 1), ("metadata.plan", 2)])),
            ("u2".to_owned(), parts(&[("", 3)])),
        ]
    };
    for (destination, record) in [("up", "user"), ("up", "company"), ("other", "user")] {
        q.remember_fingerprints(destination, record, &both(), now)
            .unwrap();
    }
    assert_eq!(q.fingerprint_count().unwrap(), 9);
    assert_eq!(
        q.forget_fingerprints("up", "user", &["u1", "nobody"])
            .unwrap(),
        2
    );
    assert_eq!(q.forget_fingerprints("up", "user", &["u1"]).unwrap(), 0);
    assert_eq!(q.forget_fingerprints("up", "user", &[]).unwrap(), 0);
    let ids = |destination: &str, record: &str| {
        let mut ids: Vec<String> = q
            .fingerprints(destination, record, &["u1", "u2"])
            .unwrap()
            .into_keys()
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(ids("up", "user"), ["u2"]);
    assert_eq!(ids("up", "company"), ["u1", "u2"]);
    assert_eq!(ids("other", "user"), ["u1", "u2"]);
    assert_eq!(q.fingerprint_count().unwrap(), 7);
}

#[test]
fn the_fingerprint_count_follows_inserts_updates_and_deletes() {
    let dir = TempDir::new().unwrap();
    let q = open(&dir, QueueConfig::default());
    let now = SystemTime::now();
    let stored = |q: &Queue| q.stats(SystemTime::now()).unwrap().fingerprints_stored;
    assert_eq!(stored(&q), 0);
    q.remember_fingerprints(
        "up",
        "user",
        &[("u".to_owned(), parts(&[("", 1), ("a", 2)]))],
        now,
    )
    .unwrap();
    assert_eq!(stored(&q), 2);
    // An update of a stored part adds no row; a new part does.
    q.remember_fingerprints(
        "up",
        "user",
        &[("u".to_owned(), parts(&[("a", 3), ("b", 4)]))],
        now,
    )
    .unwrap();
    assert_eq!(stored(&q), 3);
    // Empty entries change nothing.
    q.remember_fingerprints("up", "user", &[("v".to_owned(), Vec::new())], now)
        .unwrap();
    q.remember_fingerprints("up", "user", &[], now).unwrap();
    assert_eq!(stored(&q), 3);
    // Another process forgetting (the `delete-user` command) keeps the count right.
    let other = open(
        &dir,
        QueueConfig {
            recover_in_flight: false,
            ..QueueConfig::default()
        },
    );
    assert_eq!(other.forget_fingerprints("up", "user", &["u"]).unwrap(), 3);
    assert_eq!(stored(&q), 0);
    assert_eq!(count_rows(&dir, "fingerprints"), 0);
}

#[test]
fn pruning_a_backlog_larger_than_one_transaction_keeps_the_newest() {
    let dir = TempDir::new().unwrap();
    let config = QueueConfig {
        fingerprint_max_age: Duration::from_secs(3600),
        fingerprint_max_rows: 3_000,
        ..QueueConfig::default()
    };
    let q = open(&dir, config);
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let batch = |prefix: &str, n: usize| -> Vec<(String, Vec<FingerprintPart>)> {
        (0..n)
            .map(|idx| (format!("{prefix}{idx}"), parts(&[("", idx as u64)])))
            .collect()
    };
    // 25,000 parts written at once (a backfill), then 12,000 and 4,000 more over an hour later.
    q.remember_fingerprints("up", "user", &batch("old", 25_000), t0)
        .unwrap();
    q.remember_fingerprints(
        "up",
        "user",
        &batch("mid", 12_000),
        t0 + Duration::from_secs(4000),
    )
    .unwrap();
    q.remember_fingerprints(
        "up",
        "user",
        &batch("new", 4_000),
        t0 + Duration::from_secs(5000),
    )
    .unwrap();
    assert_eq!(q.fingerprint_count().unwrap(), 41_000);
    // Two hours after t0 the backfill is too old; of the 16,000 left the 13,000 oldest go for
    // the bound of 3,000: every "mid" part and 1,000 "new" ones.
    let now = t0 + Duration::from_secs(7200);
    assert_eq!(q.prune_fingerprints(now).unwrap(), 38_000);
    assert_eq!(q.fingerprint_count().unwrap(), 3_000);
    assert_eq!(count_rows(&dir, "fingerprints"), 3_000);
    let probe = ["old0", "old24999", "mid0", "mid11999", "new3999"];
    let left = q.fingerprints("up", "user", &probe).unwrap();
    assert_eq!(left.keys().collect::<Vec<_>>(), ["new3999"]);
    assert_eq!(q.prune_fingerprints(now).unwrap(), 0);
}

#[test]
fn fingerprint_bounds_must_not_be_zero() {
    let dir = TempDir::new().unwrap();
    for config in [
        QueueConfig {
            fingerprint_max_age: Duration::ZERO,
            ..QueueConfig::default()
        },
        QueueConfig {
            fingerprint_max_rows: 0,
            ..QueueConfig::default()
        },
    ] {
        let err = Queue::open(dir.path().join("queue.db"), config).unwrap_err();
        assert!(err.to_string().contains("fingerprint_max"), "{err}");
    }
}

#[test]
fn a_postponed_delivery_keeps_its_attempt_count_and_ages_out_like_a_retry() {
    let dir = TempDir::new().unwrap();
    let q = open(
        &dir,
        QueueConfig {
            max_age: Duration::from_secs(60),
            ..QueueConfig::default()
        },
    );
    q.enqueue(events("p", 1), &dests(&["a"])).unwrap();
    let now = SystemTime::now();
    let lease = q.lease("a", 1, now).unwrap().remove(0);
    assert_eq!(lease.attempts, 0);
    let soon = now + Duration::from_secs(1);
    assert_eq!(
        q.schedule_postpone(&lease, soon, "busy: a bulk job runs", now)
            .unwrap(),
        RetryOutcome::RetryScheduled
    );
    let again = q.lease("a", 1, soon).unwrap().remove(0);
    assert_eq!(again.attempts, 0, "a postponement is no attempt");
    // A retry counts; a postponement past the maximum age dead-letters.
    assert_eq!(
        q.schedule_retry(&again, soon, "503", soon).unwrap(),
        RetryOutcome::RetryScheduled
    );
    let third = q.lease("a", 1, soon).unwrap().remove(0);
    assert_eq!(third.attempts, 1);
    let late = now + Duration::from_secs(3600);
    assert_eq!(
        q.schedule_postpone(&third, late, "busy", soon).unwrap(),
        RetryOutcome::DeadLettered
    );
}
