//! End-to-end delivery tests: `actionkit send` as a subprocess against mock-userpilot (in this
//! process, on 127.0.0.1) with injected faults, a small server of our own that checks
//! `Retry-After` timing, and the credential commands.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actionkit_mock_userpilot::{
    FaultConfig, Latency, MockConfig, MockHandle, RateLimit, RateLimits,
};
use common::{Run, ndjson, run_async, unique_events};
use serde_json::Value;

const KEY: &str = "sk-test-SECRET-77c1d0e9aa";

async fn mock(faults: FaultConfig, rate_limits: RateLimits) -> MockHandle {
    actionkit_mock_userpilot::spawn(MockConfig {
        api_key: Some(KEY.to_owned()),
        rate_limits,
        faults,
        ..MockConfig::default()
    })
    .await
    .expect("the mock starts")
}

fn send_args(endpoint: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["send", "--output", "ndjson", "--no-rate-limits"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    args.push("--setting".into());
    args.push(format!("apiKey={KEY}"));
    args.push("--setting".into());
    args.push(format!("endpoint={endpoint}"));
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args.push("-".into());
    args
}

/// Checks the no-loss invariants of one faulty run; returns (delivered, failed) request counts.
fn check_accounting(out: &Run, handle: &MockHandle, events: usize) -> (usize, usize) {
    assert!(!out.all().contains(KEY), "the key leaked");
    let reports = out.ndjson();
    let mut seen = vec![0usize; events];
    for report in &reports {
        let idx = usize::try_from(report["index"].as_u64().expect("an index")).expect("small");
        seen[idx] += 1;
    }
    assert!(
        seen.iter().all(|&n| n == 1),
        "every index exactly once: {seen:?}"
    );

    // The bodies the mock answered 2xx, and how often.
    let mut accepted: HashMap<String, usize> = HashMap::new();
    for rec in handle.requests() {
        if (200..300).contains(&rec.status) {
            *accepted
                .entry(rec.json.map(|j| j.to_string()).unwrap_or_default())
                .or_default() += 1;
        }
    }
    let (mut delivered, mut failed) = (0, 0);
    for report in &reports {
        let requests = report["requests"].as_array().expect("requests");
        assert_eq!(
            requests.len(),
            1,
            "each generated event maps to one request: {report}"
        );
        assert_eq!(report["error"], Value::Null, "{report}");
        let request = &requests[0];
        let result = &request["result"];
        let body = request["json"].to_string();
        let attempts = result["attempts"].as_u64().expect("attempts") as usize;
        let answered = accepted.get(&body).copied().unwrap_or(0);
        assert!(attempts >= 1, "{report}");
        if result["delivered"] == true {
            delivered += 1;
            assert!(
                (200..300).contains(&result["status"].as_u64().unwrap_or(0)),
                "{report}"
            );
            assert!(
                answered >= 1,
                "delivered but the mock never accepted it: {report}"
            );
            // A second 2xx for the same body is only possible when an earlier attempt was cut off
            // by the client after the mock had accepted it.
            assert!(
                answered <= attempts,
                "more acceptances than attempts: {report}"
            );
        } else {
            failed += 1;
            let reason = result["reason"].as_str().unwrap_or_default();
            assert!(!reason.is_empty(), "a failure without a reason: {report}");
            if answered > 0 {
                assert!(
                    reason.contains("timed out") || result["status"].is_null(),
                    "the mock accepted a request reported failed for another reason: {report}"
                );
            }
        }
    }
    assert_eq!(delivered + failed, events);
    let distinct_delivered_bodies = reports
        .iter()
        .filter(|r| r["requests"][0]["result"]["delivered"] == true)
        .filter(|r| accepted.contains_key(&r["requests"][0]["json"].to_string()))
        .count();
    assert_eq!(distinct_delivered_bodies, delivered);
    assert_eq!(
        out.code != 0,
        failed > 0,
        "exit code {} with {failed} failed",
        out.code
    );
    (delivered, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_percent_503s_lose_nothing() {
    let handle = mock(
        FaultConfig {
            error_rate: 0.3,
            error_status: 503,
            seed: Some(11),
            ..FaultConfig::default()
        },
        RateLimits::disabled(),
    )
    .await;
    let events = unique_events(300);
    let args = send_args(
        &handle.base_url(),
        &["--timeout", "2", "--max-attempts", "3"],
    );
    let out = run_async(args, ndjson(&events)).await;
    let (delivered, failed) = check_accounting(&out, &handle, 300);
    assert!(
        handle.count(503) > 50,
        "faults were injected: {:?}",
        handle.status_counts()
    );
    // 0.3³ ≈ 2.7 % give up; most are delivered, some may fail.
    assert!(delivered > 250, "{delivered} delivered, {failed} failed");
    if failed > 0 {
        assert!(
            out.stdout.contains("gave up after 3 attempts"),
            "{}",
            out.stdout
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_bursts_with_retry_after_are_waited_out() {
    // The client's own limits are off, so it bursts into the mock's 30-per-second window.
    let limits = RateLimits::uniform(RateLimit::new(30, Duration::from_secs(1)));
    let handle = mock(FaultConfig::default(), limits).await;
    let events = unique_events(240);
    let started = Instant::now();
    let args = send_args(
        &handle.base_url(),
        &["--timeout", "2", "--max-attempts", "6"],
    );
    let out = run_async(args, ndjson(&events)).await;
    let (delivered, failed) = check_accounting(&out, &handle, 240);
    assert!(
        handle.count(429) > 0,
        "the burst hit the limit: {:?}",
        handle.status_counts()
    );
    assert_eq!((delivered, failed), (240, 0), "{}", out.stderr);
    assert_eq!(out.code, 0);
    // 80 per group against 30 per second each; the retries waited out `Retry-After`.
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_spikes_and_dropped_connections_lose_nothing() {
    let latency = Latency::range(Duration::ZERO, Duration::from_millis(20))
        .with_spikes(0.1, Duration::from_millis(1500));
    let handle = mock(
        FaultConfig {
            latency: Some(latency),
            drop_rate: 0.1,
            seed: Some(5),
            ..FaultConfig::default()
        },
        RateLimits::disabled(),
    )
    .await;
    let events = unique_events(200);
    let args = send_args(
        &handle.base_url(),
        &["--timeout", "0.5", "--max-attempts", "4"],
    );
    let out = run_async(args, ndjson(&events)).await;
    let (delivered, _failed) = check_accounting(&out, &handle, 200);
    assert!(
        handle.count(0) > 5,
        "connections were dropped: {:?}",
        handle.status_counts()
    );
    assert!(
        out.stdout.contains("\"attempts\":2"),
        "some requests were retried"
    );
    assert!(delivered > 180, "{delivered} delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_429s_with_retry_after_are_retried() {
    let handle = mock(
        FaultConfig {
            error_rate: 0.3,
            error_status: 429,
            retry_after: Some(1),
            seed: Some(3),
            ..FaultConfig::default()
        },
        RateLimits::disabled(),
    )
    .await;
    let events = unique_events(150);
    let args = send_args(
        &handle.base_url(),
        &["--timeout", "2", "--max-attempts", "4"],
    );
    let out = run_async(args, ndjson(&events)).await;
    check_accounting(&out, &handle, 150);
    assert!(handle.count(429) > 20, "{:?}", handle.status_counts());
}

/// A server of our own: answers the first request 429 with `Retry-After: 1`, later ones 202, and
/// records when each arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_respected() {
    let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let seen = Arc::clone(&arrivals);
    let app = axum::Router::new().fallback(move || {
        let seen = Arc::clone(&seen);
        async move {
            let mut seen = seen.lock().expect("not poisoned");
            seen.push(Instant::now());
            if seen.len() == 1 {
                (
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "1")],
                    "{}",
                )
            } else {
                (
                    axum::http::StatusCode::ACCEPTED,
                    [("retry-after", "0")],
                    "{}",
                )
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let events = unique_events(1);
    let args = send_args(&format!("http://{addr}/"), &["--timeout", "5"]);
    let out = run_async(args, ndjson(&events)).await;
    server.abort();
    assert_eq!(out.code, 0, "{out:?}");
    let report = &out.ndjson()[0];
    assert_eq!(report["requests"][0]["result"]["attempts"], 2, "{report}");
    let arrivals = arrivals.lock().expect("not poisoned").clone();
    assert_eq!(arrivals.len(), 2);
    let gap = arrivals[1] - arrivals[0];
    assert!(
        gap >= Duration::from_secs(1),
        "the retry came after {gap:?}"
    );
    // A generous upper bound: it only shows the retry was not held back by something else (a
    // loaded CI machine can delay the second attempt, so this is no timing assertion).
    assert!(
        gap < Duration::from_secs(10),
        "the retry came after {gap:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_send_with_a_wrong_key_fails_without_leaking_it() {
    let handle = mock(FaultConfig::default(), RateLimits::disabled()).await;
    let input = ndjson(&unique_events(4));
    for format in ["pretty", "ndjson", "none"] {
        let mut args: Vec<String> = vec!["send".into(), "--output".into(), format.into()];
        args.extend([
            "--setting".to_owned(),
            "apiKey=sk-wrong-SECRET-0000ffff".to_owned(),
            "--setting".to_owned(),
            format!("endpoint={}", handle.base_url()),
            "--max-attempts".to_owned(),
            "1".to_owned(),
        ]);
        let out = run_async(args, input.clone()).await;
        assert_eq!(out.code, 1, "{format}: {out:?}");
        assert!(
            !out.all().contains("sk-wrong-SECRET-0000ffff"),
            "{format}: {}",
            out.all()
        );
        assert!(!out.all().contains("SECRET"), "{format}: {}", out.all());
        assert!(
            out.all().contains("Unauthorized"),
            "{format}: {}",
            out.all()
        );
    }
    assert_eq!(handle.count(401), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_auth_checks_the_key() {
    let handle = mock(FaultConfig::default(), RateLimits::userpilot()).await;
    let endpoint = format!("endpoint={}", handle.base_url());
    let args = |key: &str| -> Vec<String> {
        vec![
            "test-auth".into(),
            "--setting".into(),
            format!("apiKey={key}"),
            "--setting".into(),
            endpoint.clone(),
        ]
    };
    let good = run_async(args(KEY), Vec::new()).await;
    assert_eq!(good.code, 0, "{good:?}");
    assert!(good.stdout.contains("Credentials are valid"), "{good:?}");
    assert!(!good.all().contains(KEY));
    let bad = run_async(args("sk-wrong-SECRET-1234abcd"), Vec::new()).await;
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stdout.contains("Credentials are invalid"), "{bad:?}");
    assert!(
        !bad.all().contains("sk-wrong-SECRET-1234abcd"),
        "{}",
        bad.all()
    );
    let paths: Vec<(String, String, u16)> = handle
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path, r.status))
        .collect();
    assert_eq!(
        paths,
        vec![
            ("GET".into(), "/v1/validate".into(), 200),
            ("GET".into(), "/v1/validate".into(), 401)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_user_sends_the_documented_request() {
    let handle = mock(FaultConfig::default(), RateLimits::userpilot()).await;
    let args = vec![
        "delete-user".to_owned(),
        "user-1001".to_owned(),
        "--setting".to_owned(),
        format!("apiKey={KEY}"),
        "--setting".to_owned(),
        format!("endpoint={}", handle.base_url()),
    ];
    let out = run_async(args, Vec::new()).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("user-1001"), "{out:?}");
    assert!(!out.all().contains(KEY));
    let requests = handle.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "DELETE");
    assert_eq!(requests[0].path, "/v1/users");
    assert_eq!(
        requests[0].json,
        Some(serde_json::json!({"users": ["user-1001"]}))
    );
    assert_eq!(requests[0].status, 202);
}

fn credential_args(command: &str, handle: &MockHandle, rest: &[&str]) -> Vec<String> {
    let mut args = vec![command.to_owned()];
    args.extend(rest.iter().map(|s| (*s).to_owned()));
    args.extend([
        "--setting".to_owned(),
        format!("apiKey={KEY}"),
        "--setting".to_owned(),
        format!("endpoint={}", handle.base_url()),
    ]);
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_user_sends_many_ids_in_as_few_requests_as_the_yaml_allows() {
    let handle = mock(FaultConfig::default(), RateLimits::userpilot()).await;
    // 1,001 users (the destination's max_ids is 1,000): two requests, spaced by the delete limit.
    let mut ids = String::new();
    for i in 0..1001 {
        ids.push_str(&format!("u-{i}\n\n"));
    }
    let out = run_async(
        credential_args("delete-user", &handle, &["--from", "-"]),
        ids.into_bytes(),
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("[1/2] Deletion of 1000 users (u-0 … u-999) accepted (HTTP 202)."),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("[2/2] Deletion of user 'u-1000' accepted (HTTP 202)."),
        "{}",
        out.stdout
    );
    let requests = handle.requests();
    assert_eq!(requests.len(), 2, "no 429 and no retry");
    let first = requests[0].json.as_ref().expect("a body");
    assert_eq!(first["users"].as_array().map(Vec::len), Some(1000));
    assert_eq!(first["users"][999], "u-999");
    assert_eq!(
        requests[1].json,
        Some(serde_json::json!({"users": ["u-1000"]}))
    );

    // --anonymous-id belongs to a single user.
    let out = run_async(
        credential_args("delete-user", &handle, &["a", "b", "--anonymous-id", "x"]),
        Vec::new(),
    )
    .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("--anonymous-id goes with one user id, not 2")
    );
    let out = run_async(credential_args("delete-user", &handle, &[]), Vec::new()).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("no id given"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_company_removes_the_companies_and_their_links() {
    let handle = mock(FaultConfig::default(), RateLimits::userpilot()).await;
    let client = reqwest::Client::new();
    for body in [
        serde_json::json!({"user_id": "u1", "company": {"id": "acme"}}),
        serde_json::json!({"user_id": "u2", "company": {"id": "globex"}}),
    ] {
        let res = client
            .post(handle.url("/v1/identify"))
            .header("authorization", format!("Token {KEY}"))
            .header("x-api-version", "2020-09-22")
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("the mock answers");
        assert_eq!(res.status().as_u16(), 202);
    }
    let out = run_async(
        credential_args("delete-company", &handle, &["acme"]),
        Vec::new(),
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout.trim(),
        "Deletion of company 'acme' accepted (HTTP 202)."
    );
    assert!(!out.all().contains(KEY));
    let state = handle.state();
    assert_eq!(
        state["companies"]
            .as_object()
            .map(|c| c.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["globex".to_owned()])
    );
    assert_eq!(state["users"]["u1"]["company"], Value::Null);
    assert_eq!(state["users"]["u2"]["company"], "globex");
    let last = handle.requests().pop().expect("the delete was recorded");
    assert_eq!(
        (last.method.as_str(), last.path.as_str()),
        ("DELETE", "/v1/companies")
    );
    assert_eq!(last.json, Some(serde_json::json!({"companies": ["acme"]})));
    // Several companies go in one request, named in the plural.
    let out = run_async(
        credential_args("delete-company", &handle, &["globex", "initech"]),
        Vec::new(),
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout.trim(),
        "Deletion of 2 companies (globex … initech) accepted (HTTP 202)."
    );
}
