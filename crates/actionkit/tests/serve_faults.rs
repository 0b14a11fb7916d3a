//! Fault tests of `actionkit serve`: the mock Userpilot API (a real HTTP server on 127.0.0.1)
//! answers 503 to a share of requests, answers bursts of 429 with `Retry-After` once its rate
//! limit is reached, and stalls some requests past the per-attempt timeout. Every accepted event
//! must end delivered or dead-lettered with a reason naming the failure, nothing may be left in
//! between, and a dead-letter replay must deliver once the destination recovers.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use actionkit_mock_userpilot::{
    FaultConfig, Latency, MockConfig, MockHandle, RateLimit, RateLimits, RecordedRequest,
};
use common::serve::*;
use serde_json::{Value, json};

/// The per-attempt timeout configured for serve, in seconds.
const TIMEOUT_SECS: u64 = 1;
/// The hang guard for events to settle (not a performance assertion).
const SETTLE_PATIENCE: Duration = Duration::from_secs(120);

/// The request the Userpilot presets send for event `idx` of [`batch`]`(tag, _)`.
fn expected(tag: &str, idx: usize) -> (String, Value) {
    let user = format!("{tag}-{idx}");
    if idx % 2 == 0 {
        (
            "/v1/identify".to_owned(),
            json!({"user_id": user, "metadata": {"n": idx, "plan": "pro"}}),
        )
    } else {
        (
            "/v1/track".to_owned(),
            json!({"user_id": user, "event_name": "Order Completed", "metadata": {"n": idx}}),
        )
    }
}

/// The recorded requests for each user, in the order they were answered.
fn requests_by_user(mock: &MockHandle) -> BTreeMap<String, Vec<RecordedRequest>> {
    let mut out: BTreeMap<String, Vec<RecordedRequest>> = BTreeMap::new();
    for request in mock.requests() {
        let user = request
            .json
            .as_ref()
            .and_then(|body| body["user_id"].as_str())
            .map(str::to_owned);
        if let Some(user) = user {
            out.entry(user).or_default().push(request);
        }
    }
    out
}

/// Waits until no delivery of the `userpilot` instance is pending, scheduled or in flight, and
/// returns its stats.
async fn settle(config: &Path) -> Value {
    let started = Instant::now();
    loop {
        let stats = userpilot_stats(config);
        if stats["delivered_total"].as_u64().unwrap_or(0)
            + stats["dead_lettered"].as_u64().unwrap_or(0)
            > 0
            && live_deliveries(&stats) == 0
        {
            return stats;
        }
        assert!(
            started.elapsed() < SETTLE_PATIENCE,
            "events did not settle: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether a failure reason names what went wrong at the destination.
fn names_a_failure(reason: &str) -> bool {
    reason.contains("503") || reason.contains("429") || reason.contains("timed out")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_ends_delivered_or_dead_lettered_under_503s_429_bursts_and_stalls() {
    // 30 % of requests get 503 (without Retry-After); 5 % stall for 2.5 s, past the 1 s
    // per-attempt timeout; beyond 25 requests a second the mock answers 429 with Retry-After.
    let mock = actionkit_mock_userpilot::spawn(MockConfig {
        api_key: Some(API_KEY.to_owned()),
        faults: FaultConfig {
            error_rate: 0.3,
            error_status: 503,
            latency: Some(
                Latency::range(Duration::ZERO, Duration::from_millis(10))
                    .with_spikes(0.05, Duration::from_millis(2_500)),
            ),
            ..FaultConfig::default()
        },
        rate_limits: RateLimits::uniform(RateLimit::new(25, Duration::from_secs(1))),
        ..MockConfig::default()
    })
    .await
    .expect("the mock starts");
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = write_config_with(
        dir.path(),
        &mock.base_url(),
        &format!("  timeout_secs: {TIMEOUT_SECS}\n  max_attempts: 3\n  concurrency: 16\n"),
        "  max_age_secs: 4\n",
    );
    let server = Server::start_with_args(&config, &["--backoff-base", "0.05"]);
    let client = reqwest::Client::new();
    let n = 200;
    let mut sent: BTreeMap<String, (String, Value)> = BTreeMap::new();
    for (round, tag) in ["faultsa", "faultsb"].iter().enumerate() {
        let (body, users) = batch(tag, n / 2);
        let res = post_batch(&client, &server, &body).await;
        assert_eq!(res.status(), 200, "round {round}");
        for (idx, user) in users.into_iter().enumerate() {
            sent.insert(user, expected(tag, idx));
        }
    }

    let stats = settle(&config).await;
    server.stop_cleanly();

    // Counts add up: every event is delivered or dead-lettered, none in limbo.
    let delivered_total = stats["delivered_total"].as_u64().unwrap_or(0);
    let dead_total = stats["dead_lettered_total"].as_u64().unwrap_or(0);
    assert_eq!(delivered_total + dead_total, n as u64, "{stats}");
    assert_eq!(stats["dead_lettered"].as_u64(), Some(dead_total), "{stats}");
    assert_eq!(live_deliveries(&stats), 0, "{stats}");

    // Every dead-lettered event is in the DLQ with a reason naming the failure.
    let entries = dlq_entries(&config);
    assert_eq!(entries.len() as u64, dead_total, "{entries:?}");
    let mut dead_users: BTreeSet<String> = BTreeSet::new();
    for entry in &entries {
        let reason = entry["reason"].as_str().unwrap_or_default();
        assert!(names_a_failure(reason), "{entry}");
        assert!(entry["attempts"].as_u64().unwrap_or(0) >= 1, "{entry}");
        let message_id = entry["message_id"].as_str().unwrap_or_default();
        let user = message_id.strip_prefix("msg-").unwrap_or(message_id);
        assert!(sent.contains_key(user), "unknown DLQ entry {entry}");
        assert!(dead_users.insert(user.to_owned()), "listed twice: {entry}");
    }

    // Every other event reached the mock as its expected request, accepted.
    let by_user = requests_by_user(&mock);
    let mut duplicates = 0;
    for (user, (path, body)) in &sent {
        let requests = by_user.get(user).map(Vec::as_slice).unwrap_or_default();
        for request in requests {
            assert_eq!((&request.path, request.json.as_ref()), (path, Some(body)));
        }
        let accepted = requests
            .iter()
            .filter(|r| (200..300).contains(&r.status))
            .count();
        if !dead_users.contains(user) {
            assert!(accepted >= 1, "{user} neither delivered nor dead-lettered");
            duplicates += accepted - 1;
        }
    }
    assert!(by_user.keys().all(|user| sent.contains_key(user)));

    // Retry-After is respected: after an answer with Retry-After that the client saw (it came
    // before the per-attempt timeout), the next attempt of the same event does not arrive
    // earlier. Tolerance: the queue stores due times in whole milliseconds.
    let timeout = Duration::from_secs(TIMEOUT_SECS);
    let mut checked = 0;
    for requests in by_user.values() {
        for (idx, request) in requests.iter().enumerate() {
            let (Some(secs), Some(received), Some(answered)) = (
                request.retry_after,
                request.received_at,
                request.answered_at,
            ) else {
                continue;
            };
            if answered.duration_since(received) >= timeout.mul_f64(0.8) {
                continue;
            }
            let not_before = answered + Duration::from_secs(secs) - Duration::from_millis(2);
            let next = requests
                .iter()
                .skip(idx + 1)
                .chain(requests.iter().take(idx))
                .filter_map(|r| r.received_at)
                .filter(|at| *at > received)
                .min();
            if let Some(next) = next {
                checked += 1;
                assert!(
                    next >= not_before,
                    "an attempt came {:?} after an answer asking to wait {secs} s",
                    next.saturating_duration_since(answered)
                );
            }
        }
    }

    let counts = mock.status_counts();
    eprintln!(
        "faults: {n} events, {delivered_total} delivered ({duplicates} duplicate requests), \
         {dead_total} dead-lettered; mock answers {counts:?}, {} abandoned by serve after a stall; {checked} Retry-After waits checked",
        mock.abandoned()
    );
    // The run exercised each fault and both ends: an event whose three attempts all fail is
    // retried after the queue's backoff (up to 5 s) only while that is within its maximum age
    // of 4 s, else dead-lettered; about one in thirty events gets there.
    assert!(delivered_total > 0 && dead_total > 0, "{stats}");
    assert!(counts.get(&503).copied().unwrap_or(0) > 0, "{counts:?}");
    assert!(counts.get(&429).copied().unwrap_or(0) > 0, "{counts:?}");
    assert!(checked > 0, "no Retry-After was ever followed by a retry");
    // A stalled request is abandoned by the client at its timeout, before the mock answers.
    assert!(mock.abandoned() > 0, "no request stalled past the timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_lettered_events_are_delivered_by_replay_once_the_destination_recovers() {
    let mock = mock_unlimited(FaultConfig {
        error_rate: 1.0,
        error_status: 503,
        ..FaultConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = write_config_with(
        dir.path(),
        &mock.base_url(),
        "  max_attempts: 2\n  timeout_secs: 2\n",
        "  max_age_secs: 1\n  retry_backoff_secs: 0.2\n",
    );
    let server = Server::start_with_args(&config, &["--backoff-base", "0.05"]);
    let client = reqwest::Client::new();
    let n = 10;
    let (body, users) = batch("replay", n);
    assert_eq!(post_batch(&client, &server, &body).await.status(), 200);

    // Every event fails with 503 until its maximum age is past, then is dead-lettered.
    let stats = settle(&config).await;
    assert_eq!(stats["dead_lettered"], n, "{stats}");
    assert_eq!(stats["delivered_total"], 0, "{stats}");
    let entries = dlq_entries(&config);
    assert_eq!(entries.len(), n);
    for entry in &entries {
        let reason = entry["reason"].as_str().unwrap_or_default();
        assert!(reason.starts_with("max age exceeded: "), "{entry}");
        assert!(reason.contains("503"), "{entry}");
    }
    assert!(mock.requests().iter().all(|r| r.status == 503));
    assert!(delivered_by_user(&mock).is_empty());

    // The destination recovers; replaying one entry by id delivers that one only.
    mock.set_faults(FaultConfig::default())
        .expect("valid faults");
    let first = &entries[0];
    let first_user = first["message_id"]
        .as_str()
        .and_then(|m| m.strip_prefix("msg-"))
        .expect("a message id from batch()")
        .to_owned();
    let replayed: Value = serde_json::from_str(&tool(
        &["dlq", "replay", "--id", &first["id"].to_string()],
        &config,
    ))
    .expect("replay prints JSON");
    assert_eq!(replayed["replayed"], 1);
    wait_for_all(&mock, std::slice::from_ref(&first_user)).await;
    let stats = settle(&config).await;
    assert_eq!(stats["dead_lettered"], n - 1, "{stats}");
    assert_eq!(stats["delivered_total"], 1, "{stats}");

    // Replaying the rest delivers every event exactly as expected, once, and empties the DLQ.
    let replayed: Value = serde_json::from_str(&tool(&["dlq", "replay", "--all"], &config))
        .expect("replay prints JSON");
    assert_eq!(replayed["replayed"], n - 1);
    let delivered = wait_for_all(&mock, &users).await;
    for (idx, user) in users.iter().enumerate() {
        let (path, body) = expected("replay", idx);
        assert_eq!(delivered[user], vec![(path, body)], "{user}");
    }
    let stats = settle(&config).await;
    assert_eq!(stats["delivered_total"], n, "{stats}");
    assert_eq!(stats["dead_lettered"], 0, "{stats}");
    assert_eq!(live_deliveries(&stats), 0, "{stats}");
    assert!(dlq_entries(&config).is_empty());

    let logs = server.stop_cleanly();
    assert!(logs.contains("dead-lettered"), "{logs}");
}
