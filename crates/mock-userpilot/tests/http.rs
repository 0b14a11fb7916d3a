//! End-to-end tests of the mock over real HTTP on 127.0.0.1, with reqwest as the client.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use actionkit_mock_userpilot::{
    EndpointGroup, FaultConfig, FaultEndpoints, Latency, MockConfig, MockError, MockHandle,
    MockServer, RateLimit, RateLimits, RecordedRequest, spawn,
};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

const KEY: &str = "test-key-5f3a";

fn config() -> MockConfig {
    MockConfig {
        api_key: Some(KEY.to_owned()),
        ..MockConfig::default()
    }
}

async fn start(config: MockConfig) -> MockHandle {
    match spawn(config).await {
        Ok(handle) => handle,
        Err(err) => panic!("mock did not start: {err}"),
    }
}

/// A request with the three headers Segment sends.
fn request(
    client: &Client,
    mock: &MockHandle,
    method: Method,
    path: &str,
) -> reqwest::RequestBuilder {
    client
        .request(method, mock.url(path))
        .header("authorization", format!("Token {KEY}"))
        .header("x-api-version", "2020-09-22")
        .header("content-type", "application/json")
}

async fn send_json(
    client: &Client,
    mock: &MockHandle,
    method: Method,
    path: &str,
    body: &Value,
) -> (StatusCode, Value) {
    let res = request(client, mock, method, path)
        .body(body.to_string())
        .send()
        .await
        .expect("request reaches the mock");
    let status = res.status();
    let json = res.json::<Value>().await.expect("the mock answers JSON");
    (status, json)
}

fn first_error(body: &Value) -> &Value {
    &body["errors"][0]
}

#[tokio::test]
async fn identify_accepts_a_user_and_records_it() {
    let mock = start(config()).await;
    let client = Client::new();
    let body = json!({"user_id": "u1", "metadata": {"name": "A", "created_at": "2021-01-01"}});
    let (status, answer) = send_json(&client, &mock, Method::POST, "/v1/identify", &body).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(answer, json!({}));

    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    let recorded = &requests[0];
    assert_eq!(recorded.method, "POST");
    assert_eq!(recorded.path, "/v1/identify");
    assert_eq!(recorded.json.as_ref(), Some(&body));
    assert_eq!(recorded.status, 202);
    assert!(!recorded.dropped);
    assert_eq!(recorded.headers["authorization"], "Token ***");
    assert_eq!(recorded.headers["x-api-version"], "2020-09-22");
    assert_eq!(mock.count(202), 1);
}

#[tokio::test]
async fn each_endpoint_accepts_what_segment_sends() {
    let mock = start(config()).await;
    let client = Client::new();
    let cases = [
        (
            Method::POST,
            "/v1/identify",
            json!({"user_id":"fake-user-id","metadata":{"name":"","email":"","createdAt":""}}),
            202,
            json!({}),
        ),
        (
            Method::POST,
            "/v1/companies/identify",
            json!({"company_id":"fake-company-id","metadata":{"name":"Company Name"}}),
            202,
            json!({}),
        ),
        (
            Method::POST,
            "/v1/track",
            json!({"user_id":"fake-user-id","event_name":"test","metadata":{"name":"test","email":""}}),
            202,
            json!({}),
        ),
        (
            Method::DELETE,
            "/v1/users",
            json!({"users":["u1"]}),
            202,
            json!({"message":"1 user was scheduled for deletion","scheduled":1}),
        ),
    ];
    for (method, path, body, want_status, want_body) in cases {
        let (status, answer) = send_json(&client, &mock, method.clone(), path, &body).await;
        assert_eq!(status.as_u16(), want_status, "{method} {path}: {answer}");
        assert_eq!(answer, want_body, "{method} {path}");
    }
    // The delete limit is one request every 2 seconds, shared by both delete endpoints, so the
    // companies delete runs on a fresh server.
    let mock = start(config()).await;
    let (status, answer) = send_json(
        &client,
        &mock,
        Method::DELETE,
        "/v1/companies",
        &json!({"companies":["c1","c2"]}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(answer["message"], "2 companies were scheduled for deletion");
}

#[tokio::test]
async fn validate_answers_200_for_the_right_key_and_401_otherwise() {
    let mock = start(config()).await;
    let client = Client::new();
    let res = request(&client, &mock, Method::GET, "/v1/validate")
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.expect("json"), json!({}));

    for (auth, code) in [
        (Some("Token wrong-key"), "invalid_api_key"),
        (Some(KEY), "invalid_authorization"),
        (Some("Bearer test-key-5f3a"), "invalid_authorization"),
        (None, "missing_api_key"),
    ] {
        let mut req = client
            .get(mock.url("/v1/validate"))
            .header("x-api-version", "2020-09-22");
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let res = req.send().await.expect("sent");
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        let body: Value = res.json().await.expect("json");
        let error = first_error(&body);
        assert_eq!(error["error_code"], code, "{auth:?}");
        assert_eq!(error["error"], "Unauthorized");
        assert!(error["message"].is_string());
        assert!(error.get("details").is_some(), "{body}");
        assert!(
            !body.to_string().contains(KEY),
            "the answer leaks the key: {body}"
        );
    }

    // The scheme is matched case-insensitively, like Userpilot's docs print it.
    let res = client
        .get(mock.url("/v1/validate"))
        .header("authorization", format!("token {KEY}"))
        .header("x-api-version", "2020-09-22")
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn without_a_configured_key_auth_is_not_checked() {
    let mock = start(MockConfig::default()).await;
    let res = Client::new()
        .get(mock.url("/v1/validate"))
        .header("x-api-version", "2020-09-22")
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn missing_fields_get_400_naming_the_field() {
    let mock = start(config()).await;
    let client = Client::new();
    let cases = [
        (
            "/v1/identify",
            json!({"metadata": {}}),
            "user_id",
            "user_id is required",
        ),
        (
            "/v1/identify",
            json!({"user_id": 7}),
            "user_id",
            "user_id must be a string, got a number",
        ),
        (
            "/v1/companies/identify",
            json!({"metadata": {}}),
            "company_id",
            "company_id is required",
        ),
        (
            "/v1/track",
            json!({"user_id": "u"}),
            "event_name",
            "event_name is required",
        ),
        (
            "/v1/track",
            json!({"event_name": "e"}),
            "user_id",
            "user_id is required",
        ),
        (
            "/v1/track",
            json!({"user_id": "u", "event_name": "e", "metadata": "x"}),
            "metadata",
            "metadata must be an object, got a string",
        ),
    ];
    for (path, body, field, message) in cases {
        let (status, answer) = send_json(&client, &mock, Method::POST, path, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}");
        let error = first_error(&answer);
        assert_eq!(error["details"]["field"], field, "{path} {body}");
        assert_eq!(error["message"], message, "{path} {body}");
        assert_eq!(error["error"], "Bad Request");
    }
    let (status, answer) = send_json(
        &client,
        &mock,
        Method::DELETE,
        "/v1/users",
        &json!({"user": ["x"]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(first_error(&answer)["message"], "users is required");
    assert_eq!(mock.count(400), 7);
    assert_eq!(mock.count(202), 0);
}

#[tokio::test]
async fn bad_json_bad_content_type_and_missing_version_are_refused() {
    let mock = start(config()).await;
    let client = Client::new();

    let res = request(&client, &mock, Method::POST, "/v1/track")
        .body("{\"user_id\": ")
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.expect("json");
    assert_eq!(first_error(&body)["error_code"], "invalid_json");
    assert!(
        first_error(&body)["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("the request body is not valid JSON")),
        "{body}"
    );

    let res = request(&client, &mock, Method::POST, "/v1/track")
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.expect("json");
    assert_eq!(first_error(&body)["message"], "the request body is empty");
    let recorded = mock.requests();
    assert_eq!(recorded.len(), 2);
    assert!(recorded.iter().all(|r| r.json.is_none() && r.status == 400));

    let res = client
        .post(mock.url("/v1/track"))
        .header("authorization", format!("Token {KEY}"))
        .header("x-api-version", "2020-09-22")
        .header("content-type", "text/plain")
        .body(json!({"user_id": "u", "event_name": "e"}).to_string())
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: Value = res.json().await.expect("json");
    assert_eq!(first_error(&body)["details"]["header"], "content-type");

    let res = request(&client, &mock, Method::POST, "/v1/track")
        .header("content-type", "application/json; charset=utf-8")
        .body(json!({"user_id": "u", "event_name": "e"}).to_string())
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::ACCEPTED);

    let res = client
        .post(mock.url("/v1/track"))
        .header("authorization", format!("Token {KEY}"))
        .header("content-type", "application/json")
        .body(json!({"user_id": "u", "event_name": "e"}).to_string())
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.expect("json");
    assert_eq!(first_error(&body)["error_code"], "missing_api_version");
    assert_eq!(first_error(&body)["details"]["header"], "x-api-version");
}

#[tokio::test]
async fn unknown_paths_get_404_and_wrong_methods_405() {
    let mock = start(config()).await;
    let client = Client::new();
    let res = request(&client, &mock, Method::POST, "/v1/imports")
        .body("{}")
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let body: Value = res.json().await.expect("json");
    assert_eq!(
        first_error(&body)["message"],
        "no endpoint at POST /v1/imports"
    );

    // Paths match exactly: a trailing slash is a different path.
    let res = client
        .post(format!("http://{}/v1/identify/", mock.addr()))
        .header("authorization", format!("Token {KEY}"))
        .header("x-api-version", "2020-09-22")
        .header("content-type", "application/json")
        .body(json!({"user_id": "u"}).to_string())
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    let res = request(&client, &mock, Method::GET, "/v1/identify")
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()["allow"], "POST");
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_per_endpoint_group() {
    let limits = RateLimits::uniform(RateLimit::new(3, Duration::from_secs(1)));
    let mock = start(MockConfig {
        rate_limits: limits,
        ..config()
    })
    .await;
    let client = Client::new();
    let identify = json!({"user_id": "u"}).to_string();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let res = request(&client, &mock, Method::POST, "/v1/identify")
            .body(identify.clone())
            .send()
            .await
            .expect("sent");
        statuses.push(res.status().as_u16());
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(res.headers()["retry-after"], "1");
            let body: Value = res.json().await.expect("json");
            assert_eq!(first_error(&body)["error_code"], "rate_limited");
            assert_eq!(first_error(&body)["details"]["retry_after"], 1);
        }
    }
    assert_eq!(statuses, [202, 202, 202, 429, 429]);

    // Track has its own budget.
    let res = request(&client, &mock, Method::POST, "/v1/track")
        .body(json!({"user_id": "u", "event_name": "e"}).to_string())
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::ACCEPTED);

    // Once the window has passed, identify is admitted again.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let res = request(&client, &mock, Method::POST, "/v1/identify")
        .body(identify)
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn default_delete_limit_is_one_per_two_seconds_across_both_paths() {
    let mock = start(config()).await;
    let client = Client::new();
    let (status, _) = send_json(
        &client,
        &mock,
        Method::DELETE,
        "/v1/users",
        &json!({"users": ["a"]}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let res = request(&client, &mock, Method::DELETE, "/v1/companies")
        .body(json!({"companies": ["c"]}).to_string())
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("numeric Retry-After");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
}

#[tokio::test]
async fn disabled_rate_limits_admit_everything() {
    let mock = start(MockConfig {
        rate_limits: RateLimits::disabled(),
        ..config()
    })
    .await;
    let client = Client::new();
    for _ in 0..3 {
        let (status, _) = send_json(
            &client,
            &mock,
            Method::DELETE,
            "/v1/users",
            &json!({"users": ["a"]}),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
}

/// Sends `n` sequential track requests and returns each status (0 for a client-side error).
async fn track_statuses(client: &Client, mock: &MockHandle, n: usize) -> Vec<u16> {
    let mut statuses = Vec::with_capacity(n);
    for idx in 0..n {
        let res = request(client, mock, Method::POST, "/v1/track")
            .body(json!({"user_id": format!("u{idx}"), "event_name": "e"}).to_string())
            .send()
            .await;
        statuses.push(res.map_or(0, |res| res.status().as_u16()));
    }
    statuses
}

fn faulty(faults: FaultConfig) -> MockConfig {
    MockConfig {
        rate_limits: RateLimits::disabled(),
        faults,
        ..config()
    }
}

#[tokio::test]
async fn injected_errors_hit_about_the_configured_share_deterministically() {
    let faults = FaultConfig {
        error_rate: 0.3,
        retry_after: Some(7),
        seed: Some(42),
        ..FaultConfig::default()
    };
    let mock = start(faulty(faults.clone())).await;
    let client = Client::new();
    let statuses = track_statuses(&client, &mock, 200).await;
    let n_errors = statuses.iter().filter(|&&s| s == 503).count();
    assert!((40..=80).contains(&n_errors), "{n_errors} of 200 were 503");
    assert_eq!(
        n_errors + statuses.iter().filter(|&&s| s == 202).count(),
        200
    );
    assert_eq!(mock.count(503), n_errors as u64);

    // The same seed gives the same sequence on a fresh server.
    let again = start(faulty(faults)).await;
    assert_eq!(track_statuses(&client, &again, 200).await, statuses);

    // Injected 503s carry the configured Retry-After and the error body shape.
    loop {
        let res = request(&client, &again, Method::POST, "/v1/track")
            .body(json!({"user_id": "u", "event_name": "e"}).to_string())
            .send()
            .await
            .expect("sent");
        if res.status() == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(res.headers()["retry-after"], "7");
            let body: Value = res.json().await.expect("json");
            assert_eq!(first_error(&body)["error_code"], "injected_fault");
            break;
        }
        assert!(res.headers().get("retry-after").is_none());
    }
}

#[tokio::test]
async fn injected_status_is_configurable_and_retry_after_only_on_429_and_503() {
    for (status, want_retry_after) in [(429, true), (500, false)] {
        let mock = start(faulty(FaultConfig {
            error_rate: 1.0,
            error_status: status,
            retry_after: Some(3),
            seed: Some(1),
            ..FaultConfig::default()
        }))
        .await;
        let res = request(&Client::new(), &mock, Method::GET, "/v1/validate")
            .send()
            .await
            .expect("sent");
        assert_eq!(res.status().as_u16(), status);
        assert_eq!(
            res.headers().contains_key("retry-after"),
            want_retry_after,
            "{status}"
        );
    }
}

#[tokio::test]
async fn dropped_connections_are_client_errors_and_recorded() {
    let mock = start(faulty(FaultConfig {
        drop_rate: 0.25,
        seed: Some(9),
        ..FaultConfig::default()
    }))
    .await;
    let client = Client::new();
    let statuses = track_statuses(&client, &mock, 200).await;
    let n_dropped = statuses.iter().filter(|&&s| s == 0).count();
    assert!((30..=70).contains(&n_dropped), "{n_dropped} of 200 dropped");
    assert_eq!(
        n_dropped + statuses.iter().filter(|&&s| s == 202).count(),
        200
    );

    // Every request reached the mock exactly once (no hidden client retries), and each drop the
    // client saw is recorded as one.
    let requests = mock.requests();
    assert_eq!(requests.len(), 200);
    let recorded_drops = requests.iter().filter(|r| r.dropped).count();
    assert_eq!(recorded_drops, n_dropped);
    assert!(requests.iter().filter(|r| r.dropped).all(|r| r.status == 0));
    assert_eq!(mock.count(0), n_dropped as u64);
}

#[tokio::test]
async fn latency_delays_the_answer() {
    let mock = start(faulty(FaultConfig {
        latency: Some(Latency::fixed(Duration::from_millis(150))),
        ..FaultConfig::default()
    }))
    .await;
    let started = Instant::now();
    let res = request(&Client::new(), &mock, Method::GET, "/v1/validate")
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
}

fn read_lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("record file readable")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn record_file_has_one_redacted_line_per_request_and_appends() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("requests.jsonl");
    std::fs::write(&path, "{\"earlier\":true}\n").expect("seed file");
    let mock = start(MockConfig {
        record: Some(path.clone()),
        ..config()
    })
    .await;
    let client = Client::new();
    let body = json!({"user_id": "u1", "event_name": "Signed Up"});
    let (status, _) = send_json(&client, &mock, Method::POST, "/v1/track", &body).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let res = client
        .get(mock.url("/v1/validate?probe=1"))
        .header("Authorization", "Token not-the-key-8c1d")
        .header("X-Custom-Header", "Kept")
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // Lines are flushed before the answer leaves, so they are visible without stopping the mock.
    let lines = read_lines(&path);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert_eq!(lines[0], "{\"earlier\":true}");
    let track: Value = serde_json::from_str(&lines[1]).expect("json line");
    assert_eq!(
        track,
        json!({
            "method": "POST",
            "path": "/v1/track",
            "headers": track["headers"].clone(),
            "json": body,
            "status": 202,
        })
    );
    assert_eq!(track["headers"]["authorization"], "Token ***");
    assert_eq!(track["headers"]["content-type"], "application/json");

    let validate: RecordedRequest = serde_json::from_str(&lines[2]).expect("recorded request");
    assert_eq!(validate.method, "GET");
    assert_eq!(validate.path, "/v1/validate?probe=1");
    assert_eq!(validate.json, None);
    assert_eq!(validate.status, 401);
    assert_eq!(validate.headers["authorization"], "Token ***");
    assert_eq!(validate.headers["x-custom-header"], "Kept");
    assert!(validate.headers.keys().all(|k| k == &k.to_lowercase()));

    let text = std::fs::read_to_string(&path).expect("readable");
    assert!(
        !text.contains(KEY) && !text.contains("not-the-key-8c1d"),
        "{text}"
    );
    mock.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn concurrent_requests_give_whole_record_lines() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("concurrent.jsonl");
    let mock = start(MockConfig {
        record: Some(path.clone()),
        rate_limits: RateLimits::disabled(),
        ..config()
    })
    .await;
    let client = Client::new();
    let mut tasks = tokio::task::JoinSet::new();
    for idx in 0..200 {
        let req = request(&client, &mock, Method::POST, "/v1/identify").body(
            json!({"user_id": format!("user-{idx}"), "metadata": {"padding": "x".repeat(2_000)}})
                .to_string(),
        );
        tasks.spawn(async move { req.send().await.map(|res| res.status()) });
    }
    while let Some(res) = tasks.join_next().await {
        assert_eq!(res.expect("task").expect("sent"), StatusCode::ACCEPTED);
    }
    let lines = read_lines(&path);
    assert_eq!(lines.len(), 200);
    let mut users = BTreeSet::new();
    for line in &lines {
        let recorded: RecordedRequest = serde_json::from_str(line).expect("whole JSON line");
        assert_eq!(recorded.status, 202);
        let user = recorded
            .json
            .as_ref()
            .and_then(|j| j["user_id"].as_str())
            .map(str::to_owned);
        users.insert(user.expect("user_id recorded"));
    }
    assert_eq!(users.len(), 200);
    assert_eq!(mock.requests().len(), 200);
    assert_eq!(mock.record_write_errors(), 0);
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let mock = start(config()).await;
    let url = mock.url("/v1/validate");
    mock.shutdown().await.expect("clean shutdown");
    let res = Client::new().get(url).send().await;
    assert!(res.is_err(), "{res:?}");
}

#[tokio::test]
async fn dropping_the_handle_stops_serving() {
    let mock = start(config()).await;
    let url = mock.url("/v1/validate");
    drop(mock);
    let mut stopped = false;
    for _ in 0..50 {
        if Client::new().get(&url).send().await.is_err() {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        stopped,
        "the mock still answers after its handle was dropped"
    );
}

#[tokio::test]
async fn bind_reports_the_real_port_and_run_honours_its_shutdown_future() {
    let server = MockServer::bind(config()).await.expect("bound");
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(rx));
    let res = Client::new()
        .get(format!("http://{addr}/v1/validate"))
        .header("authorization", format!("Token {KEY}"))
        .header("x-api-version", "2020-09-22")
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::OK);
    tx.send(()).expect("server still waiting");
    task.await.expect("joined").expect("clean stop");
}

#[tokio::test]
async fn startup_errors_name_what_failed() {
    let mock = start(config()).await;
    let err = spawn(MockConfig {
        listen: mock.addr(),
        ..config()
    })
    .await
    .expect_err("port already taken");
    assert!(matches!(err, MockError::Bind { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("cannot listen on {}", mock.addr())),
        "{err}"
    );

    let err = spawn(MockConfig {
        record: Some("/nonexistent-dir-for-mock/requests.jsonl".into()),
        ..config()
    })
    .await
    .expect_err("directory does not exist");
    assert!(
        err.to_string()
            .starts_with("cannot open record file /nonexistent-dir-for-mock/requests.jsonl"),
        "{err}"
    );

    let err = spawn(faulty(FaultConfig {
        drop_rate: -0.1,
        ..FaultConfig::default()
    }))
    .await
    .expect_err("negative rate");
    assert_eq!(
        err.to_string(),
        "invalid mock configuration: faults.drop_rate must be between 0 and 1, got -0.1"
    );
}

#[tokio::test]
async fn bodies_over_the_cap_get_413() {
    let mock = start(MockConfig {
        max_body_bytes: 64,
        ..config()
    })
    .await;
    let client = Client::new();
    let body = json!({"user_id": "u", "metadata": {"padding": "x".repeat(100)}});
    let (status, answer) = send_json(&client, &mock, Method::POST, "/v1/identify", &body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        first_error(&answer)["message"],
        "the request body exceeds 64 bytes"
    );
    let recorded = mock.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].json, None);
    assert_eq!(recorded[0].status, 413);
}

#[tokio::test]
async fn http2_clients_are_served_too() {
    let mock = start(config()).await;
    let client = Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let res = request(&client, &mock, Method::POST, "/v1/track")
        .body(json!({"user_id": "u", "event_name": "e"}).to_string())
        .send()
        .await
        .expect("sent");
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(mock.requests()[0].method, "POST");
}

#[tokio::test]
async fn the_state_follows_accepted_requests_only() {
    let mock = start(config()).await;
    let client = Client::new();
    for (method, path, body) in [
        (
            Method::POST,
            "/v1/identify",
            json!({"user_id": "u1", "metadata": {"plan": "free", "name": "Ada"}, "company": {"id": "c1"}}),
        ),
        (
            Method::POST,
            "/v1/identify",
            json!({"user_id": "u1", "metadata": {"plan": "pro"}}),
        ),
        (
            Method::POST,
            "/v1/companies/identify",
            json!({"company_id": "c1", "metadata": {"name": "Acme"}}),
        ),
        (
            Method::POST,
            "/v1/track",
            json!({"user_id": "u1", "event_name": "Signed Up", "metadata": {"via": "web"}}),
        ),
        (Method::POST, "/v1/identify", json!({"user_id": "gone"})),
        (Method::DELETE, "/v1/users", json!({"users": ["gone"]})),
    ] {
        let (status, answer) = send_json(&client, &mock, method, path, &body).await;
        assert!(status.is_success(), "{path}: {status} {answer}");
    }
    // Refused requests change nothing: a bad body, and a wrong key.
    let (status, _) = send_json(&client, &mock, Method::POST, "/v1/identify", &json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let res = client
        .post(mock.url("/v1/identify"))
        .header("authorization", "Token wrong")
        .header("x-api-version", "2020-09-22")
        .header("content-type", "application/json")
        .body(json!({"user_id": "intruder"}).to_string())
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let expected = json!({
        "users": {
            "u1": {
                "metadata": {"plan": "pro", "name": "Ada"},
                "company": "c1",
                "events": [{"event_name": "Signed Up", "metadata": {"via": "web"}}],
            },
        },
        "companies": {"c1": {"metadata": {"name": "Acme"}}},
        "jobs": [],
    });
    assert_eq!(mock.state(), expected);
    // The same over HTTP, without credentials: it is the mock's own endpoint.
    let over_http: Value = client
        .get(mock.url("/_mock/state"))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(over_http, expected);
}

#[tokio::test]
async fn an_injected_error_changes_no_state() {
    let mock = start(MockConfig {
        faults: FaultConfig {
            error_rate: 1.0,
            error_status: 503,
            ..FaultConfig::default()
        },
        ..config()
    })
    .await;
    let (status, _) = send_json(
        &Client::new(),
        &mock,
        Method::POST,
        "/v1/identify",
        &json!({"user_id": "u1"}),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(mock.state()["users"], json!({}));
}

#[tokio::test]
async fn bulk_identify_runs_one_job_at_a_time_at_its_row_rate() {
    // 6,000 rows a minute: a row every 10 ms.
    let mock = start(MockConfig {
        bulk_rows_per_minute: 6000,
        ..config()
    })
    .await;
    let client = Client::new();
    let users: Vec<Value> = (0..20)
        .map(|i| json!({"user_id": format!("u{i}"), "company_id": "c1", "metadata": {"i": i}}))
        .collect();
    let (status, job) = send_json(
        &client,
        &mock,
        Method::POST,
        "/v1/users/bulk_identify",
        &json!({ "users": users }),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["total_rows"], 20);
    assert_eq!(job["type"], "users_bulk_identify");
    let job_id = job["job_id"].as_str().expect("a job id").to_owned();

    // A second job, of either kind, waits for the first: 409.
    let (status, body) = send_json(
        &client,
        &mock,
        Method::POST,
        "/v1/companies/bulk_identify",
        &json!({"companies": [{"company_id": "c1", "metadata": {"name": "Acme"}}]}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(first_error(&body)["details"]["job_id"], job_id.as_str());

    let started = Instant::now();
    while !mock.bulk_jobs_done() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the job never finished"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, done) = send_json(
        &client,
        &mock,
        Method::GET,
        &format!("/v1/background_jobs/{job_id}"),
        &Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(done["status"], "completed");
    assert_eq!(done["completed_rows"], 20);
    let state = mock.state();
    assert_eq!(state["users"].as_object().map(|u| u.len()), Some(20));
    assert_eq!(state["users"]["u7"]["metadata"], json!({"i": 7}));
    assert_eq!(state["users"]["u7"]["company"], "c1");

    // Now the company job is accepted.
    let (status, _) = send_json(
        &client,
        &mock,
        Method::POST,
        "/v1/companies/bulk_identify",
        &json!({"companies": [{"company_id": "c1", "metadata": {"name": "Acme"}}]}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = send_json(
        &client,
        &mock,
        Method::GET,
        "/v1/background_jobs/job_999999",
        &Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bulk_bodies_are_checked_and_over_10000_records_is_413() {
    let mock = start(config()).await;
    let client = Client::new();
    let too_many: Vec<Value> = (0..10_001)
        .map(|i| json!({"user_id": format!("u{i}")}))
        .collect();
    let (status, body) = send_json(
        &client,
        &mock,
        Method::POST,
        "/v1/users/bulk_identify",
        &json!({ "users": too_many }),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(first_error(&body)["error_code"], "too_many_records");
    let (status, body) = send_json(
        &client,
        &mock,
        Method::POST,
        "/v1/users/bulk_identify",
        &json!({"users": [{"user_id": "u1"}, {"metadata": {}}]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        first_error(&body)["message"],
        "users[1].user_id is required"
    );
    assert_eq!(mock.state()["jobs"], json!([]));
}

#[tokio::test]
async fn the_state_is_written_to_a_file_when_the_server_stops() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("state.json");
    let mock = start(MockConfig {
        state_file: Some(path.clone()),
        ..config()
    })
    .await;
    let (status, _) = send_json(
        &Client::new(),
        &mock,
        Method::POST,
        "/v1/identify",
        &json!({"user_id": "u1", "metadata": {"a": 1}}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    mock.shutdown().await.expect("the mock stops");
    let text = std::fs::read_to_string(&path).expect("the state file exists");
    let state: Value = serde_json::from_str(&text).expect("the state file is JSON");
    assert_eq!(state["users"]["u1"]["metadata"], json!({"a": 1}));
}

#[tokio::test]
async fn nested_bulk_metadata_is_a_400_naming_no_record_and_changes_nothing() {
    let mock = start(config()).await;
    let client = Client::new();
    let (status, _) = send_json(
        &client,
        &mock,
        Method::POST,
        "/v1/identify",
        &json!({"user_id": "u-before", "metadata": {"plan": "free"}}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    for (path, field, id_field) in [
        ("/v1/users/bulk_identify", "users", "user_id"),
        ("/v1/companies/bulk_identify", "companies", "company_id"),
    ] {
        let before = mock.state();
        let mut records: Vec<Value> = (0..6)
            .map(|i| json!({id_field: format!("rec-{i}"), "metadata": {"plan": "pro", "n": i}}))
            .collect();
        records[4]["metadata"]["address"] = json!({"city": "Paris"});
        records[1]["metadata"]["tags"] = json!(["a", "b"]);
        let (status, body) = send_json(
            &client,
            &mock,
            Method::POST,
            path,
            &json!({ field: records }),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let error = first_error(&body);
        assert_eq!(error["error_code"], "invalid_metadata");
        assert_eq!(
            error["message"],
            "bulk metadata values must be strings, numbers, booleans or null"
        );
        // Nothing in the answer points at a record: no index, no id.
        let text = body.to_string();
        for needle in ["rec-", "[1]", "[4]", "address", "tags"] {
            assert!(!text.contains(needle), "{needle} in {text}");
        }
        assert_eq!(mock.state(), before, "{path} changed the state");

        // Split as a client would: the halves without the bad records go through.
        let good: Vec<Value> = records
            .iter()
            .enumerate()
            .filter(|(idx, _)| ![1, 4].contains(idx))
            .map(|(_, record)| record.clone())
            .collect();
        let (status, job) =
            send_json(&client, &mock, Method::POST, path, &json!({ field: good })).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{job}");
        assert_eq!(job["total_rows"], 4);
        wait_for_bulk_jobs(&mock).await;
    }
    let state = mock.state();
    assert_eq!(state["jobs"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        state["users"]["rec-0"]["metadata"],
        json!({"plan": "pro", "n": 0})
    );
    assert!(state["users"].get("rec-4").is_none());
    assert!(state["companies"].get("rec-1").is_none());
}

async fn wait_for_bulk_jobs(mock: &MockHandle) {
    let started = Instant::now();
    while !mock.bulk_jobs_done() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the bulk job never finished"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn only_bulk(faults: FaultConfig) -> MockConfig {
    faulty(FaultConfig {
        endpoints: FaultEndpoints::only([EndpointGroup::Bulk]),
        ..faults
    })
}

#[tokio::test]
async fn faults_restricted_to_bulk_leave_identify_untouched() {
    let mock = start(only_bulk(FaultConfig {
        error_rate: 1.0,
        latency: Some(Latency::fixed(Duration::from_secs(1))),
        seed: Some(3),
        ..FaultConfig::default()
    }))
    .await;
    let client = Client::new();
    for idx in 0..20 {
        let started = Instant::now();
        let body = json!({"user_id": format!("u{idx}"), "metadata": {"i": idx}});
        let (status, _) = send_json(&client, &mock, Method::POST, "/v1/identify", &body).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "identify was delayed: {:?}",
            started.elapsed()
        );
    }
    let (status, _) = send_json(&client, &mock, Method::GET, "/v1/validate", &Value::Null).await;
    assert_eq!(status, StatusCode::OK);

    let started = Instant::now();
    let (status, body) = send_json(
        &client,
        &mock,
        Method::POST,
        "/v1/users/bulk_identify",
        &json!({"users": [{"user_id": "bulk-1"}]}),
    )
    .await;
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(first_error(&body)["error_code"], "injected_fault");
    let state = mock.state();
    assert_eq!(state["users"].as_object().map(|u| u.len()), Some(20));
    assert_eq!(state["jobs"], json!([]));

    // Drops restricted to bulk likewise.
    mock.set_faults(FaultConfig {
        drop_rate: 1.0,
        endpoints: FaultEndpoints::only([EndpointGroup::Bulk]),
        ..FaultConfig::default()
    })
    .expect("valid faults");
    let res = request(&client, &mock, Method::POST, "/v1/companies/bulk_identify")
        .body(json!({"companies": [{"company_id": "c1"}]}).to_string())
        .send()
        .await;
    assert!(res.is_err(), "{res:?}");
    let (status, _) = send_json(
        &client,
        &mock,
        Method::POST,
        "/v1/identify",
        &json!({"user_id": "u-after"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(mock.count(0), 1);
    assert_eq!(mock.count(202), 21);
}

#[tokio::test]
async fn the_fault_script_answers_in_order_then_normally() {
    let mock = start(only_bulk(FaultConfig {
        script: vec![503, 429, 0],
        retry_after: Some(2),
        ..FaultConfig::default()
    }))
    .await;
    let client = Client::new();
    let bulk = json!({"users": [{"user_id": "b1", "metadata": {"plan": "pro"}}]});
    let send_bulk = || async {
        request(&client, &mock, Method::POST, "/v1/users/bulk_identify")
            .body(bulk.to_string())
            .send()
            .await
    };
    let identify = || async {
        send_json(
            &client,
            &mock,
            Method::POST,
            "/v1/identify",
            &json!({"user_id": "u1"}),
        )
        .await
        .0
    };

    // Requests outside the faulted endpoints do not use up steps.
    assert_eq!(identify().await, StatusCode::ACCEPTED);
    let first = send_bulk().await.expect("answered");
    assert_eq!(first.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(first.headers()["retry-after"], "2");
    assert_eq!(identify().await, StatusCode::ACCEPTED);
    let second = send_bulk().await.expect("answered");
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(second.headers()["retry-after"], "2");
    let body: Value = second.json().await.expect("json");
    assert_eq!(first_error(&body)["error_code"], "injected_fault");
    assert!(send_bulk().await.is_err(), "the third step drops");
    // The script is used up: no injected answer changed the state, and the fourth call succeeds.
    assert_eq!(mock.state()["jobs"], json!([]));
    let fourth = send_bulk().await.expect("answered");
    assert_eq!(fourth.status(), StatusCode::ACCEPTED);
    wait_for_bulk_jobs(&mock).await;
    let state = mock.state();
    assert_eq!(state["jobs"].as_array().map(Vec::len), Some(1));
    assert_eq!(state["users"]["b1"]["metadata"], json!({"plan": "pro"}));

    let statuses: Vec<(String, u16)> = mock
        .requests()
        .iter()
        .map(|r| (r.path.clone(), r.status))
        .collect();
    let bulk_path = "/v1/users/bulk_identify".to_owned();
    let identify_path = "/v1/identify".to_owned();
    assert_eq!(
        statuses,
        [
            (identify_path.clone(), 202),
            (bulk_path.clone(), 503),
            (identify_path, 202),
            (bulk_path.clone(), 429),
            (bulk_path.clone(), 0),
            (bulk_path, 202),
        ]
    );

    // Setting the faults again starts the script over.
    mock.set_faults(FaultConfig {
        script: vec![503],
        ..mock.faults()
    })
    .expect("valid faults");
    assert_eq!(
        send_bulk().await.expect("answered").status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}
