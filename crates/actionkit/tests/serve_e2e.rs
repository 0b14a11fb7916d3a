//! End-to-end tests of `actionkit serve`: the binary runs as a subprocess with a temporary
//! configuration and queue, events are posted to its intake, and the mock Userpilot API (a real
//! HTTP server on 127.0.0.1) records what the workers deliver.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use actionkit_mock_userpilot::{FaultConfig, Latency};
use common::BIN;
use common::serve::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_event_arrives_as_the_expected_request() {
    let mock = mock(FaultConfig::default()).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = write_config(dir.path(), &mock.base_url());
    // Userpilot's rate limits on, as in production (the shared configuration turns them off for
    // the load tests).
    let text = std::fs::read_to_string(&config).expect("the config is readable");
    std::fs::write(
        &config,
        text.replace("rate_limits: false", "rate_limits: true"),
    )
    .expect("the config is written");
    let server = Server::start(&config);
    let client = reqwest::Client::new();

    // A wrong write key is refused and stores nothing.
    let refused = client
        .post(server.url("/v1/batch"))
        .basic_auth("not-the-key", Some(""))
        .header("content-type", "application/json")
        .body(batch("refused", 2).0.to_string())
        .send()
        .await
        .expect("intake answers");
    assert_eq!(refused.status(), 401);

    let (body, users) = batch("e2e", 20);
    let res = post_batch(&client, &server, &body).await;
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.expect("a JSON answer");
    assert_eq!(answer["accepted"], 20, "{answer}");

    let delivered = wait_for_all(&mock, &users).await;
    for (idx, user) in users.iter().enumerate() {
        let requests = &delivered[user];
        let (path, body) = &requests[0];
        if idx % 2 == 0 {
            assert_eq!(path, "/v1/identify");
            assert_eq!(
                body,
                &json!({"user_id": user, "metadata": {"n": idx, "plan": "pro"}})
            );
        } else {
            assert_eq!(path, "/v1/track");
            assert_eq!(
                body,
                &json!({"user_id": user, "event_name": "Order Completed", "metadata": {"n": idx}})
            );
        }
    }
    assert!(!delivered.contains_key("refused-0"));
    // The mock checks the API key; every delivered request carried it.
    for request in mock.requests().iter().filter(|r| r.path != "/v1/validate") {
        assert!((200..300).contains(&request.status), "{request:?}");
    }

    // Each request is counted and timed by action, each delivered event's age is recorded, and
    // the queue gauges (refreshed on a timer) come down to zero live deliveries.
    let started = Instant::now();
    let metrics = loop {
        let text = metrics_text(&client, &server).await;
        let ages = metric_sum(
            &text,
            "actionkit_delivery_event_age_seconds_count",
            &[("destination", "userpilot")],
        );
        let live = metric_sum(&text, "actionkit_queue_deliveries", &[]);
        let gauges_seen = text.contains("actionkit_queue_deliveries{");
        if ages == 20.0 && gauges_seen && live == 0.0 {
            break text;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "metrics never settled:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for (action, n) in [("identifyUser", 10.0), ("trackEvent", 10.0)] {
        let labels = [("destination", "userpilot"), ("action", action)];
        let mut delivered = labels.to_vec();
        delivered.push(("outcome", "delivered"));
        assert_eq!(
            metric_sum(&metrics, "actionkit_delivery_requests_total", &delivered),
            n,
            "{metrics}"
        );
        assert_eq!(
            metric_sum(&metrics, "actionkit_delivery_requests_total", &labels),
            n,
            "{metrics}"
        );
        assert_eq!(
            metric_sum(
                &metrics,
                "actionkit_delivery_request_duration_seconds_count",
                &labels
            ),
            n,
            "{metrics}"
        );
    }
    assert_eq!(metric_sum(&metrics, "actionkit_queue_events", &[]), 0.0);
    assert!(metric_sum(&metrics, "actionkit_queue_max_events", &[]) > 0.0);
    // Each of Userpilot's declared limits has its waiting gauges; nothing waits once all is
    // delivered.
    for limit in ["delete", "identify", "track"] {
        let series = format!(
            "actionkit_delivery_rate_limit_waited_seconds{{destination=\"userpilot\",limit=\"{limit}\"}}"
        );
        assert!(metrics.contains(&series), "no {series}:\n{metrics}");
    }
    assert_eq!(
        metric_sum(&metrics, "actionkit_delivery_rate_limit_waiting", &[]),
        0.0,
        "{metrics}"
    );
    // The writer's group commits: the 20 accepted events, each commit timed.
    assert_eq!(
        metric_sum(&metrics, "actionkit_queue_committed_events_total", &[]),
        20.0,
        "{metrics}"
    );
    let commits = metric_sum(
        &metrics,
        "actionkit_queue_commits_total",
        &[("outcome", "committed")],
    );
    assert!(commits >= 1.0, "{metrics}");
    assert_eq!(
        metric_sum(
            &metrics,
            "actionkit_queue_commit_duration_seconds_count",
            &[]
        ),
        commits,
        "{metrics}"
    );
    assert_eq!(
        metric_sum(&metrics, "actionkit_queue_commit_wait_seconds_count", &[]),
        commits,
        "{metrics}"
    );

    let logs = server.stop_cleanly();
    assert!(logs.contains("Shutting down."), "{logs}");

    // Nothing is left in the queue, and the tools open it without any secret in the environment.
    let stats = Command::new(BIN)
        .args(["queue", "stats", "--config"])
        .arg(&config)
        .output()
        .expect("queue stats runs");
    assert!(
        stats.status.success(),
        "{}",
        String::from_utf8_lossy(&stats.stderr)
    );
    let stats: Value = serde_json::from_slice(&stats.stdout).expect("stats are JSON");
    assert_eq!(stats["events_stored"], 0, "{stats}");
    let up = &stats["destinations"][0];
    assert_eq!(up["destination"], "userpilot", "{stats}");
    assert_eq!(up["delivered_total"], 20, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_a_crash() {
    // Slow responses keep deliveries in flight when the process is killed.
    let mock = mock(FaultConfig {
        latency: Some(Latency {
            min: Duration::from_millis(150),
            max: Duration::from_millis(250),
            spike_rate: 0.0,
            spike: Duration::ZERO,
        }),
        ..FaultConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = write_config(dir.path(), &mock.base_url());
    let server = Server::start(&config);
    let client = reqwest::Client::new();

    let mut acknowledged: Vec<String> = Vec::new();
    for round in 0..4 {
        let (body, users) = batch(&format!("crash{round}"), 25);
        let res = post_batch(&client, &server, &body).await;
        if res.status() == 200 {
            acknowledged.extend(users);
        }
    }
    assert_eq!(acknowledged.len(), 100);
    let logs = server.crash();
    let before: BTreeSet<String> = delivered_by_user(&mock).into_keys().collect();
    assert!(
        before.len() < acknowledged.len(),
        "everything was delivered before the crash; the test proves nothing\n{logs}"
    );

    let server = Server::start(&config);
    let delivered = wait_for_all(&mock, &acknowledged).await;
    for user in &acknowledged {
        assert!(delivered.contains_key(user));
    }
    server.stop_cleanly();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_failures_are_dead_lettered_with_the_reason_and_can_be_purged() {
    // Every request is answered 400, which is final: no retry, straight to the DLQ.
    let mock = mock(FaultConfig {
        error_rate: 1.0,
        error_status: 400,
        ..FaultConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = write_config(dir.path(), &mock.base_url());
    let server = Server::start(&config);
    let client = reqwest::Client::new();
    let (body, _) = batch("dead", 3);
    assert_eq!(post_batch(&client, &server, &body).await.status(), 200);

    let started = Instant::now();
    let entries: Vec<Value> = loop {
        let text = tool(&["dlq", "list"], &config);
        let entries: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect();
        if entries.len() == 3 {
            break entries;
        }
        assert!(started.elapsed() < PATIENCE, "not dead-lettered: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ids: BTreeSet<&str> = entries
        .iter()
        .filter_map(|e| e["message_id"].as_str())
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from(["msg-dead-0", "msg-dead-1", "msg-dead-2"])
    );
    for entry in &entries {
        assert_eq!(entry["destination"], "userpilot");
        assert_eq!(entry["attempts"], 1, "{entry}");
        let reason = entry["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("400"), "{entry}");
    }
    // Exactly one attempt each reached the mock: 400 is not retried.
    assert_eq!(mock.count(400), 3);

    // The metrics count the failed requests by action and show the DLQ's depth.
    let started = Instant::now();
    let metrics = loop {
        let text = metrics_text(&client, &server).await;
        let dead = metric_sum(
            &text,
            "actionkit_queue_deliveries",
            &[("destination", "userpilot"), ("state", "dead_lettered")],
        );
        if dead == 3.0 {
            break text;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "DLQ depth never shown:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for (action, n) in [("identifyUser", 2.0), ("trackEvent", 1.0)] {
        let failed = [("action", action), ("outcome", "failed")];
        assert_eq!(
            metric_sum(&metrics, "actionkit_delivery_requests_total", &failed),
            n,
            "{metrics}"
        );
    }
    assert_eq!(
        metric_sum(&metrics, "actionkit_delivery_event_age_seconds_count", &[]),
        0.0,
        "nothing was delivered: {metrics}"
    );
    assert_eq!(metric_sum(&metrics, "actionkit_queue_events", &[]), 3.0);

    let first = entries[0]["id"].to_string();
    let shown: Value =
        serde_json::from_str(&tool(&["dlq", "show", &first], &config)).expect("show prints JSON");
    assert_eq!(shown["event"]["messageId"], entries[0]["message_id"]);
    assert!(shown["event"].get("writeKey").is_none());

    let logs = server.stop_cleanly();
    assert!(logs.contains("dead-lettered"), "{logs}");

    let purged: Value = serde_json::from_str(&tool(&["dlq", "purge", "--all"], &config))
        .expect("purge prints JSON");
    assert_eq!(purged["purged"], 3);
    let stats: Value =
        serde_json::from_str(&tool(&["queue", "stats"], &config)).expect("stats print JSON");
    assert_eq!(stats["events_stored"], 0, "{stats}");
    assert_eq!(
        stats["destinations"][0]["dead_lettered_total"], 3,
        "{stats}"
    );
    assert_eq!(stats["destinations"][0]["purged_total"], 3, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_lease_cuts_off_a_slower_delivery_and_retries_it_later() {
    // Every answer takes 3 s. With `server.queue.lease_secs: 2` the worker cuts the delivery off
    // before its lease runs out (at nine tenths of it) and schedules a retry; with the default
    // 60 s lease the same delivery would have succeeded.
    let mock = mock(FaultConfig {
        latency: Some(Latency {
            min: Duration::from_secs(3),
            max: Duration::from_secs(3),
            spike_rate: 0.0,
            spike: Duration::ZERO,
        }),
        ..FaultConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = write_config_with(
        dir.path(),
        &mock.base_url(),
        "  timeout_secs: 10\n  max_attempts: 1\n",
        "    lease_secs: 2\n  retry_backoff_secs: 60\n",
    );
    let server = Server::start(&config);
    let client = reqwest::Client::new();
    let (body, _) = batch("lease", 1);
    assert_eq!(post_batch(&client, &server, &body).await.status(), 200);

    let started = Instant::now();
    let stats = loop {
        let stats = userpilot_stats(&config);
        if stats["retry_scheduled"] == 1 {
            break stats;
        }
        assert!(started.elapsed() < PATIENCE, "no retry scheduled: {stats}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // With the default lease it would have been delivered instead.
    assert_eq!(stats["delivered_total"], 0, "{stats}");
    let logs = server.stop_cleanly();
    assert!(logs.contains("cut off"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_reports_not_ready_and_recovers_when_delivered() {
    // The destination is down, so the five events the queue may hold stay in it.
    let mock = mock(FaultConfig {
        error_rate: 1.0,
        error_status: 503,
        ..FaultConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = write_config_with(
        dir.path(),
        &mock.base_url(),
        "  max_attempts: 1\n",
        "    max_events: 5\n  retry_backoff_secs: 0.2\n  retry_backoff_max_secs: 0.5\n",
    );
    let server = Server::start(&config);
    let client = reqwest::Client::new();
    let probe = |path: &'static str| {
        let (client, url) = (client.clone(), server.url(path));
        async move {
            let res = client.get(url).send().await.expect("the probe answers");
            let status = res.status().as_u16();
            let retry = res
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body: Value = res.json().await.expect("a JSON probe answer");
            (status, retry, body)
        }
    };
    assert_eq!(probe("/readyz").await.0, 200);

    // Five requests of one event each: the bound counts events on SQLite and stored requests
    // on JetStream (where a request's events are one message), five either way.
    let mut users = Vec::new();
    for n in 0..5 {
        let (body, one) = batch(&format!("fill{n}"), 1);
        assert_eq!(post_batch(&client, &server, &body).await.status(), 200);
        users.extend(one);
    }
    let (body, _) = batch("over", 1);
    let res = post_batch(&client, &server, &body).await;
    assert_eq!(res.status(), 503);
    let retry = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    assert!(retry.is_some_and(|s| s >= 1), "Retry-After: {retry:?}");
    let answer: Value = res.json().await.expect("a JSON error");
    assert_eq!(answer["error"]["code"], "queue_full", "{answer}");
    // Nothing of the refused request was stored.
    assert_eq!(queue_stats(&config)["events_stored"], 5);

    // Not ready (a load balancer should send elsewhere), yet healthy (no restart needed).
    let (status, retry, body) = probe("/readyz").await;
    assert_eq!((status, body["status"].as_str()), (503, Some("not_ready")));
    assert_eq!(body["reason"], "queue_full", "{body}");
    assert!(retry.is_some(), "no Retry-After on /readyz");
    assert_eq!(probe("/healthz").await.0, 200);

    // The destination comes back: the retries deliver, room is made, and intake takes events.
    mock.set_faults(FaultConfig::default())
        .expect("valid faults");
    wait_for_all(&mock, &users).await;
    let started = Instant::now();
    loop {
        let (body, _) = batch("after", 1);
        let status = post_batch(&client, &server, &body).await.status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        assert!(started.elapsed() < PATIENCE, "the queue never made room");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A commit that stored everything clears the refusal at once.
    assert_eq!(probe("/readyz").await.0, 200);
    server.stop_cleanly();
}
