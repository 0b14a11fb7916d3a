//! Three `serve` nodes on one JetStream: they share the work, every event is delivered once,
//! and the destination's rate limit holds for the three together.
//!
//! A real `nats-server` (see `actionkit-nats-testkit`) holds the queue; mock-userpilot has its
//! rate limits on. The senders are spread over the three nodes: batches posted round-robin, and
//! Segment's Python client sending to one node. Every event is unique (its own user and number),
//! so the test counts what reached the mock per event: each must arrive, duplicates are counted
//! and reported, and no answer may be a 429.
//!
//! The pace: the instances' declared limits (600 identify and 600 track requests a minute) are
//! scaled by [`SCALE`] to 100 a second; the mock admits at most 500 a key in any 5 seconds.
//! Each node alone would keep to the declared limit, but three nodes sending at it together
//! would triple it; only the limit shared through JetStream keeps the cluster under the mock's.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use actionkit_mock_userpilot::{MockConfig, MockHandle, RateLimit, RateLimits};
use common::serve::{
    API_KEY, Server, WRITE_KEY, metric_sum, metrics_text, post_batch, write_cluster_node_config,
};
use common::volume::{client_ready, python};
use serde_json::{Value, json};

/// How many times Userpilot's pace the test runs at.
const SCALE: f64 = 10.0;

/// Events posted as batches, round-robin over the nodes.
const POSTED: usize = 1_000;
/// Events sent by Segment's Python client to one node.
const BY_PYTHON: usize = 200;

/// The mock with limits that three nodes each at the declared limit would exceed.
async fn limited_mock() -> MockHandle {
    let window = RateLimit::new(500, Duration::from_secs(5));
    actionkit_mock_userpilot::spawn(MockConfig {
        api_key: Some(API_KEY.to_owned()),
        rate_limits: RateLimits {
            identify: window,
            track: window,
            ..RateLimits::userpilot().scaled(SCALE)
        },
        ..MockConfig::default()
    })
    .await
    .expect("the mock starts")
}

/// Event `n` of sender `tag`: an identify of a new user or a track, each unique.
fn event(tag: &str, n: usize) -> Value {
    let user = format!("{tag}-{n}");
    if n % 2 == 0 {
        json!({"type": "identify", "userId": user, "traits": {"n": n, "plan": "pro"}})
    } else {
        json!({"type": "track", "userId": user, "event": "Order Completed", "properties": {"n": n}})
    }
}

/// What reached the mock and was accepted, counted per (path, user).
fn accepted(mock: &MockHandle) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for request in mock.requests() {
        if !(200..300).contains(&request.status) || request.dropped {
            continue;
        }
        let Some(body) = request.json else { continue };
        if let Some(user) = body["user_id"].as_str() {
            *out.entry((request.path.clone(), user.to_owned()))
                .or_default() += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_deliver_every_event_once_within_one_rate_limit() {
    let python = python();
    let python_ready = client_ready(&python);
    if let Err(reason) = &python_ready {
        if common::clients_required() {
            panic!("{reason}; run `cargo xtask test`, which installs it");
        }
        eprintln!("skipped: {reason}; run `cargo xtask test` to install it");
        return;
    }
    let Some(nats) = actionkit_nats_testkit::Server::start() else {
        return;
    };
    let mock = limited_mock().await;
    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir().expect("a dir"))
        .collect();
    let servers: Vec<Server> = dirs
        .iter()
        .map(|dir| {
            let config = write_cluster_node_config(
                dir.path(),
                &mock.base_url(),
                &[nats.url().to_owned()],
                &format!("  rate_limit_scale: {SCALE}\n"),
                "",
            );
            Server::start(&config)
        })
        .collect();

    let started = Instant::now();
    let mut expected: Vec<(String, String)> = Vec::new();
    // Segment's Python client, to the third node, meanwhile.
    let calls: Vec<Value> = (0..BY_PYTHON).map(|n| event("py", n)).collect();
    for call in &calls {
        expected.push(expected_key(call));
    }
    let calls_file = dirs[0].path().join("calls.ndjson");
    let lines: Vec<String> = calls.iter().map(Value::to_string).collect();
    std::fs::write(&calls_file, lines.join("\n") + "\n").expect("the calls are written");
    let python_run = {
        let host = servers[2].url("");
        let python = python.clone();
        let calls_file = calls_file.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(python)
                .arg(
                    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                        .join("tests/python/replay_with_segment_client.py"),
                )
                .args(["--host", &host])
                .arg(&calls_file)
                .env("SEGMENT_WRITE_KEY", WRITE_KEY)
                .output()
                .expect("the Python client runs")
        })
    };
    // Batches of 50, round-robin over the three nodes.
    let client = reqwest::Client::new();
    let posted: Vec<Value> = (0..POSTED).map(|n| event("post", n)).collect();
    for (idx, chunk) in posted.chunks(50).enumerate() {
        let batch: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(n, call)| {
                let mut call = call.clone();
                call["messageId"] = json!(format!("post-{idx}-{n}"));
                call
            })
            .collect();
        for call in &batch {
            expected.push(expected_key(call));
        }
        let answer = post_batch(&client, &servers[idx % 3], &json!({ "batch": batch })).await;
        assert!(answer.status().is_success(), "intake refused a batch");
    }
    let python_out = python_run.await.expect("the Python client finished");
    assert!(
        python_out.status.success(),
        "the Python client failed: {}{}",
        String::from_utf8_lossy(&python_out.stdout),
        String::from_utf8_lossy(&python_out.stderr)
    );

    // Wait until every event arrived, then a little longer for late duplicates.
    let patience = Duration::from_secs(120);
    loop {
        let got = accepted(&mock);
        if expected.iter().all(|key| got.contains_key(key)) {
            break;
        }
        if started.elapsed() > patience {
            let missing: Vec<_> = expected.iter().filter(|k| !got.contains_key(*k)).collect();
            panic!(
                "{} of {} events never arrived, for example {:?}",
                missing.len(),
                expected.len(),
                missing.first()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = accepted(&mock);
    let duplicates: usize = got.values().map(|n| n - 1).sum();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for request in mock.requests() {
        *statuses.entry(request.status).or_default() += 1;
    }
    let mut per_node = Vec::new();
    for server in &servers {
        let text = metrics_text(&client, server).await;
        per_node.push(metric_sum(
            &text,
            "actionkit_deliveries_total",
            &[("outcome", "delivered")],
        ));
    }
    eprintln!(
        "{} events through 3 nodes in {:.1} s; delivered per node {per_node:?}; duplicates {duplicates}; statuses {statuses:?}",
        expected.len(),
        took.as_secs_f64()
    );
    assert_eq!(
        statuses.get(&429),
        None,
        "the mock answered 429: {statuses:?}"
    );
    assert_eq!(
        got.len(),
        expected.len(),
        "something arrived that was not sent"
    );
    assert_eq!(duplicates, 0, "events were delivered more than once");
    assert!(
        per_node.iter().all(|n| *n > 0.0),
        "a node delivered nothing: {per_node:?}"
    );
    for server in servers {
        server.stop_cleanly();
    }
}

/// The (path, user) an event's request reaches the mock under.
fn expected_key(call: &Value) -> (String, String) {
    let path = if call["type"] == "identify" {
        "/v1/identify"
    } else {
        "/v1/track"
    };
    (
        path.to_owned(),
        call["userId"].as_str().unwrap_or_default().to_owned(),
    )
}

/// `/readyz` of `server`: (status, body).
async fn readiness(client: &reqwest::Client, server: &Server) -> (u16, Value) {
    let res = client
        .get(server.url("/readyz"))
        .send()
        .await
        .expect("the probe answers");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Waits until `/readyz` answers `status`.
async fn wait_for_readiness(client: &reqwest::Client, server: &Server, status: u16) -> Value {
    let started = Instant::now();
    loop {
        let (now, body) = readiness(client, server).await;
        if now == status {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "/readyz stayed {now}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_nats_intake_answers_503_and_everything_resumes_when_it_returns() {
    let Some(mut nats) = actionkit_nats_testkit::Server::start() else {
        return;
    };
    let mock = common::serve::mock(actionkit_mock_userpilot::FaultConfig::default()).await;
    let dir = tempfile::tempdir().expect("a dir");
    let config = write_cluster_node_config(
        dir.path(),
        &mock.base_url(),
        &[nats.url().to_owned()],
        "  rate_limits: false\n",
        "",
    );
    let server = Server::start(&config);
    let client = reqwest::Client::new();
    let (body, before) = common::serve::batch("before", 4);
    assert_eq!(post_batch(&client, &server, &body).await.status(), 200);
    common::serve::wait_for_all(&mock, &before).await;

    nats.kill();
    let body = wait_for_readiness(&client, &server, 503).await;
    assert_eq!(body["reason"], "jetstream_unreachable", "{body}");
    let (refused_body, refused) = common::serve::batch("refused", 4);
    let res = post_batch(&client, &server, &refused_body).await;
    assert_eq!(res.status(), 503);
    let retry_after = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    assert!(retry_after.is_some_and(|s| s >= 1), "{retry_after:?}");
    let answer: Value = res.json().await.expect("a JSON error");
    assert_eq!(answer["error"]["code"], "queue_unavailable", "{answer}");

    // NATS returns: the client reconnects by itself, intake takes events again and the workers
    // deliver them.
    nats.restart();
    wait_for_readiness(&client, &server, 200).await;
    let (body, after) = common::serve::batch("after", 4);
    assert_eq!(post_batch(&client, &server, &body).await.status(), 200);
    common::serve::wait_for_all(&mock, &after).await;
    let delivered = common::serve::delivered_by_user(&mock);
    for user in &refused {
        assert!(
            !delivered.contains_key(user),
            "{user} was refused yet arrived"
        );
    }
    let logs = server.stop_cleanly();
    assert!(!logs.contains("panicked"), "{logs}");
}
