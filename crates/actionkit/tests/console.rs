//! The web console in the real binary: `actionkit console` (the console alone, on the
//! loopback address) and `actionkit serve` with `server.console` (the console beside intake,
//! whose write keys do not open it). What each API route answers is tested against the
//! console crate's router in `crates/console/tests/api.rs`; these tests check the wiring:
//! the token from the environment, the routes mounted or not, intake untouched, no secret in
//! the logs, and, under `serve`, the delivery overview counting what the workers decided and
//! the dead-letter queue shown, replayed and purged in the real store (SQLite, or JetStream
//! under `ACTIONKIT_TEST_QUEUE=jetstream`), and real sends to the mock Userpilot API.

mod common;

use std::process::{Command, Stdio};

use common::BIN;
use common::serve::*;
use serde_json::{Value, json};

const TOKEN: &str = "e2e-console-SECRET-token-0b9d";
const TOKEN_ENV: &str = "E2E_CONSOLE_TOKEN";

async fn call(
    request: reqwest::RequestBuilder,
    expected: reqwest::StatusCode,
    what: &str,
) -> Value {
    let res = request.send().await.expect("the server answers");
    let status = res.status();
    let text = res.text().await.expect("a body");
    assert_eq!(status, expected, "{what}: {text}");
    assert!(
        !text.contains(API_KEY) && !text.contains(TOKEN) && !text.contains(WRITE_KEY),
        "{what}: a secret left the server: {text}"
    );
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

#[tokio::test]
async fn the_console_command_serves_the_api_on_loopback_without_intake() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = write_config(dir.path(), "http://127.0.0.1:9/");
    let server = Server::start_command(
        "console",
        &config,
        &["--listen", "127.0.0.1:0", "--token-env", TOKEN_ENV],
        &[(TOKEN_ENV, TOKEN)],
    );
    assert!(server.addr.starts_with("127.0.0.1:"), "{}", server.addr);
    let http = reqwest::Client::new();

    let body = call(
        http.get(server.url("/console/api/instances"))
            .bearer_auth(TOKEN),
        reqwest::StatusCode::OK,
        "instances",
    )
    .await;
    assert_eq!(body["instances"][0]["settings"]["apiKey"], "[redacted]");
    let body = call(
        http.post(server.url("/console/api/test"))
            .bearer_auth(TOKEN)
            .json(&json!({"event": {"type": "track", "userId": "u1", "event": "Signed Up"}})),
        reqwest::StatusCode::OK,
        "test",
    )
    .await;
    let text = body.to_string();
    assert!(text.contains("Token [redacted]"), "{text}");
    assert!(text.contains("http://127.0.0.1:9/v1/track"), "{text}");

    call(
        http.get(server.url("/console/api/instances")),
        reqwest::StatusCode::UNAUTHORIZED,
        "no token",
    )
    .await;
    // Without serve there is no queue to overview, and the page is told so.
    call(
        http.get(server.url("/console/api/overview"))
            .bearer_auth(TOKEN),
        reqwest::StatusCode::NOT_FOUND,
        "overview",
    )
    .await;
    let about = call(
        http.get(server.url("/console/api/about"))
            .bearer_auth(TOKEN),
        reqwest::StatusCode::OK,
        "about",
    )
    .await;
    assert_eq!(about["queue"], false);
    call(
        http.post(server.url("/console/api/dlq/list"))
            .bearer_auth(TOKEN)
            .json(&json!({})),
        reqwest::StatusCode::NOT_FOUND,
        "dlq list",
    )
    .await;
    // A real send works without serve: here nobody listens at the endpoint, and the answer
    // says so.
    let body = call(
        http.post(server.url("/console/api/send"))
            .bearer_auth(TOKEN)
            .json(&json!({"instance": "userpilot", "event": {"type": "track", "userId": "u1", "event": "Signed Up"}})),
        reqwest::StatusCode::OK,
        "send",
    )
    .await;
    let answer = &body["sends"][0]["answer"];
    assert_eq!(answer["outcome"], "retryable", "{body}");
    assert_eq!(answer["status"], Value::Null, "{body}");
    assert!(answer["reason"].is_string(), "{body}");
    // No intake: the tracking API is not there.
    let res = http
        .post(server.url("/v1/track"))
        .basic_auth(WRITE_KEY, Some(""))
        .json(&json!({"type": "track", "userId": "u1", "event": "e"}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(res.status(), reqwest::StatusCode::NOT_FOUND);
    let page = http
        .get(server.url("/console"))
        .send()
        .await
        .expect("the page");
    assert_eq!(page.status(), reqwest::StatusCode::OK);

    let logs = server.stop_cleanly();
    assert!(!logs.contains(TOKEN), "the token was logged:\n{logs}");
    assert!(logs.contains(TOKEN_ENV), "{logs}");
}

#[test]
fn the_console_command_without_its_token_fails_naming_the_variable() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = write_config(dir.path(), "http://127.0.0.1:9/");
    for (env, needle) in [
        (
            None,
            "the console token variable E2E_CONSOLE_TOKEN is not set",
        ),
        (Some("too-short"), "has 9 characters, fewer than 16"),
    ] {
        let mut command = Command::new(BIN);
        command
            .args(["console", "--token-env", TOKEN_ENV, "--config"])
            .arg(&config)
            .env("E2E_USERPILOT_KEY", API_KEY)
            .env_remove(TOKEN_ENV)
            .stdin(Stdio::null());
        if let Some(value) = env {
            command.env(TOKEN_ENV, value);
        }
        let out = command.output().expect("the binary runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
        assert!(!stderr.contains("too-short"), "{stderr}");
    }
}

#[tokio::test]
async fn serve_mounts_the_console_only_when_configured_and_write_keys_do_not_open_it() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mock = mock(actionkit_mock_userpilot::FaultConfig::default()).await;
    let console_lines = format!("  console:\n    token_env: {TOKEN_ENV}\n");
    let config = write_config_with(dir.path(), &mock.url("/"), "", &console_lines);
    let server = Server::start_command("serve", &config, &[], &[(TOKEN_ENV, TOKEN)]);
    let http = reqwest::Client::new();

    call(
        http.get(server.url("/console/api/destinations"))
            .header("x-console-token", TOKEN),
        reqwest::StatusCode::OK,
        "destinations",
    )
    .await;
    for (what, request) in [
        (
            "write key as Basic",
            http.get(server.url("/console/api/instances"))
                .basic_auth(WRITE_KEY, Some("")),
        ),
        (
            "write key as bearer",
            http.get(server.url("/console/api/instances"))
                .bearer_auth(WRITE_KEY),
        ),
        (
            "write key header",
            http.get(server.url("/console/api/instances"))
                .header("x-write-key", WRITE_KEY),
        ),
    ] {
        call(request, reqwest::StatusCode::UNAUTHORIZED, what).await;
    }
    // A cross-site POST is refused even with the token, and the intake's CORS is not applied
    // to the console.
    let res = http
        .post(server.url("/console/api/test"))
        .bearer_auth(TOKEN)
        .header("origin", "https://evil.example")
        .json(&json!({"event": {"type": "track"}}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(res.status(), reqwest::StatusCode::FORBIDDEN);
    assert!(!res.headers().contains_key("access-control-allow-origin"));

    // Intake works beside it.
    call(
        http.post(server.url("/v1/track"))
            .basic_auth(WRITE_KEY, Some(""))
            .json(&json!({"type": "track", "userId": "u1", "event": "Signed Up"})),
        reqwest::StatusCode::OK,
        "intake",
    )
    .await;
    // The delivery overview reads the queue serve delivers from.
    let mut seen = Value::Null;
    for _ in 0..50 {
        seen = call(
            http.get(server.url("/console/api/overview"))
                .bearer_auth(TOKEN),
            reqwest::StatusCode::OK,
            "overview",
        )
        .await;
        if seen["queue"]["destinations"][0]["delivered_total"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        seen["queue"]["destinations"][0]["destination"], "userpilot",
        "{seen}"
    );
    assert_eq!(
        seen["queue"]["destinations"][0]["delivered_total"], 1,
        "{seen}"
    );

    let logs = server.stop_cleanly();
    assert!(!logs.contains(TOKEN), "the token was logged:\n{logs}");
    assert!(logs.contains("The console is on."), "{logs}");

    // Without `server.console` there is no console.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = write_config(dir.path(), &mock.url("/"));
    let server = Server::start_command("serve", &config, &[], &[(TOKEN_ENV, TOKEN)]);
    for path in ["/console", "/console/api/instances"] {
        let res = http
            .get(server.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("an answer");
        assert_eq!(res.status(), reqwest::StatusCode::NOT_FOUND, "{path}");
    }
    server.stop_cleanly();
}

/// Polls the overview until `done` holds (a hang guard of [`PATIENCE`], never a timing assert).
async fn overview_until(
    http: &reqwest::Client,
    server: &Server,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let until = std::time::Instant::now() + PATIENCE;
    loop {
        let seen = call(
            http.get(server.url("/console/api/overview"))
                .bearer_auth(TOKEN),
            reqwest::StatusCode::OK,
            "overview",
        )
        .await;
        if done(&seen) {
            return seen;
        }
        assert!(
            std::time::Instant::now() < until,
            "gave up waiting for {what}: {seen:#}\n{}",
            server.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The counts of `action` (`None`: the events that reached no action) over the last hour.
fn action_hour(overview: &Value, action: Option<&str>) -> Value {
    overview["instances"][0]["actions"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|a| a["action"].as_str() == action)
                .map(|a| a["hour"].clone())
        })
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn serve_counts_what_its_workers_decide_and_the_console_replays_and_purges_dead_letters() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mock = mock(actionkit_mock_userpilot::FaultConfig::default()).await;
    let console_lines = format!("  console:\n    token_env: {TOKEN_ENV}\n");
    let config = write_config_with(dir.path(), &mock.url("/"), "", &console_lines);
    let server = Server::start_command("serve", &config, &[], &[(TOKEN_ENV, TOKEN)]);
    let http = reqwest::Client::new();
    let about = call(
        http.get(server.url("/console/api/about"))
            .bearer_auth(TOKEN),
        reqwest::StatusCode::OK,
        "about",
    )
    .await;
    assert_eq!(about["queue"], true);

    // One identify delivered, one alias no trigger matches.
    for event in [
        json!({"type": "identify", "userId": "u1", "traits": {"plan": "pro"}, "messageId": "ok-1"}),
        json!({"type": "alias", "userId": "u1", "previousId": "a1", "messageId": "skip-1"}),
    ] {
        call(
            http.post(server.url("/v1/batch"))
                .basic_auth(WRITE_KEY, Some(""))
                .json(&json!({"batch": [event]})),
            reqwest::StatusCode::OK,
            "intake",
        )
        .await;
    }
    let seen = overview_until(&http, &server, "the identify and the alias", |o| {
        let events = &o["instances"][0]["events"]["hour"];
        events["delivered"] == 1 && events["skipped"] == 1
    })
    .await;
    assert_eq!(action_hour(&seen, Some("identifyUser"))["delivered"], 1);
    assert_eq!(action_hour(&seen, None)["skipped_by"]["no_trigger"], 1);
    assert_eq!(seen["instances"][0]["events"]["day"]["delivered"], 1);

    // The destination refuses tracks for good: both go to the dead-letter queue. One came
    // with its write key in the body, which intake does not store.
    mock.set_faults(actionkit_mock_userpilot::FaultConfig {
        error_rate: 1.0,
        error_status: 400,
        ..actionkit_mock_userpilot::FaultConfig::default()
    })
    .expect("valid faults");
    let track = |id: &str| json!({"type": "track", "userId": "u1", "event": "Order Completed", "messageId": id});
    call(
        http.post(server.url("/v1/track"))
            .basic_auth(WRITE_KEY, Some(""))
            .json(&track("dead-1")),
        reqwest::StatusCode::OK,
        "intake",
    )
    .await;
    let mut with_key = track("dead-2");
    with_key["writeKey"] = json!(WRITE_KEY);
    call(
        http.post(server.url("/v1/track")).json(&with_key),
        reqwest::StatusCode::OK,
        "intake with the write key in the body",
    )
    .await;
    let seen = overview_until(&http, &server, "two dead letters", |o| {
        o["instances"][0]["events"]["hour"]["dead_lettered"] == 2
            && o["instances"][0]["queue"]["dead_lettered"] == 2
    })
    .await;
    assert_eq!(action_hour(&seen, Some("trackEvent"))["dead_lettered"], 2);
    let failures = seen["failures"].as_array().expect("failures");
    assert_eq!(failures.len(), 2, "{seen}");
    let mut ids: Vec<&str> = failures
        .iter()
        .filter_map(|f| f["message_id"].as_str())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, vec!["dead-1", "dead-2"]);
    for failure in failures {
        assert_eq!(failure["instance"], "userpilot");
        assert_eq!(failure["action"], "trackEvent");
        assert_eq!(failure["outcome"], "dead_lettered");
        assert_eq!(failure["status"], 400);
        assert!(
            failure["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("400: ")),
            "{failure}"
        );
    }

    // The dead-letter queue, as `actionkit dlq` shows it.
    let list = call(
        http.post(server.url("/console/api/dlq/list"))
            .bearer_auth(TOKEN)
            .json(&json!({"instance": "userpilot"})),
        reqwest::StatusCode::OK,
        "dlq list",
    )
    .await;
    let entries = list["entries"].as_array().expect("entries").clone();
    assert_eq!(entries.len(), 2, "{list}");
    let cli: Vec<Value> = dlq_entries(&config);
    assert_eq!(
        entries, cli,
        "the console lists what `actionkit dlq list` prints"
    );
    let by_message = |id: &str| {
        entries
            .iter()
            .find(|e| e["message_id"] == id)
            .and_then(|e| e["id"].as_i64())
            .unwrap_or_else(|| panic!("{id} is not listed: {list}"))
    };
    let shown = call(
        http.post(server.url("/console/api/dlq/show"))
            .bearer_auth(TOKEN)
            .json(&json!({"id": by_message("dead-2")})),
        reqwest::StatusCode::OK,
        "dlq show",
    )
    .await;
    assert_eq!(shown["event"]["messageId"], "dead-2");
    assert_eq!(shown["event"]["event"], "Order Completed");
    assert_eq!(shown["event"].get("writeKey"), None, "{shown}");
    assert!(
        shown["reason"]
            .as_str()
            .is_some_and(|r| r.contains("trackEvent: 400"))
    );

    // Acting on the dead letters takes the console's token, from this site: a write key or
    // another origin changes nothing.
    for (what, request, status) in [
        (
            "write key",
            http.post(server.url("/console/api/dlq/purge"))
                .basic_auth(WRITE_KEY, Some(""))
                .json(&json!({"instance": "userpilot"})),
            reqwest::StatusCode::UNAUTHORIZED,
        ),
        (
            "no token",
            http.post(server.url("/console/api/dlq/replay"))
                .json(&json!({"instance": "userpilot"})),
            reqwest::StatusCode::UNAUTHORIZED,
        ),
        (
            "another site",
            http.post(server.url("/console/api/dlq/purge"))
                .bearer_auth(TOKEN)
                .header("origin", "https://evil.example")
                .json(&json!({"instance": "userpilot"})),
            reqwest::StatusCode::FORBIDDEN,
        ),
        (
            "a form",
            http.post(server.url("/console/api/dlq/purge"))
                .bearer_auth(TOKEN)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("instance=userpilot"),
            reqwest::StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
    ] {
        call(request, status, what).await;
    }
    assert_eq!(
        dlq_entries(&config).len(),
        2,
        "nothing was replayed or purged"
    );

    // Healthy again: the replayed one is delivered, the other purged.
    mock.set_faults(actionkit_mock_userpilot::FaultConfig::default())
        .expect("valid faults");
    let replayed = call(
        http.post(server.url("/console/api/dlq/replay"))
            .bearer_auth(TOKEN)
            .json(&json!({"ids": [by_message("dead-1")]})),
        reqwest::StatusCode::OK,
        "dlq replay",
    )
    .await;
    assert_eq!(replayed, json!({"replayed": 1}));
    let seen = overview_until(&http, &server, "the replayed track delivered", |o| {
        o["instances"][0]["events"]["hour"]["delivered"] == 2
    })
    .await;
    assert_eq!(action_hour(&seen, Some("trackEvent"))["delivered"], 1);
    assert_eq!(seen["instances"][0]["queue"]["dead_lettered"], 1);
    assert!(
        mock.requests()
            .iter()
            .any(|r| r.path == "/v1/track" && r.status == 202),
        "the replayed track reached the destination"
    );
    let purged = call(
        http.post(server.url("/console/api/dlq/purge"))
            .bearer_auth(TOKEN)
            .json(&json!({"instance": "userpilot"})),
        reqwest::StatusCode::OK,
        "dlq purge",
    )
    .await;
    assert_eq!(purged, json!({"purged": 1}));
    let stats = userpilot_stats(&config);
    assert_eq!(stats["dead_lettered"], 0, "{stats}");
    assert_eq!(stats["purged_total"], 1, "{stats}");
    let list = call(
        http.post(server.url("/console/api/dlq/list"))
            .bearer_auth(TOKEN)
            .json(&json!({})),
        reqwest::StatusCode::OK,
        "dlq list",
    )
    .await;
    assert_eq!(list["entries"], json!([]));

    // A real send from serve's console goes through the worker's client.
    let before = mock.requests().len();
    let sent = call(
        http.post(server.url("/console/api/send"))
            .bearer_auth(TOKEN)
            .json(&json!({"instance": "userpilot", "event": {"type": "identify", "userId": "u-send", "traits": {"plan": "max"}}})),
        reqwest::StatusCode::OK,
        "send",
    )
    .await;
    assert_eq!(sent["sends"][0]["answer"]["outcome"], "delivered", "{sent}");
    assert_eq!(sent["sends"][0]["answer"]["status"], 202, "{sent}");
    let after = mock.requests();
    assert_eq!(after.len(), before + 1);
    assert_eq!(
        after[before].json.as_ref().map(|j| j["user_id"].clone()),
        Some(json!("u-send"))
    );

    let logs = server.stop_cleanly();
    assert!(!logs.contains(TOKEN), "the token was logged:\n{logs}");
    assert!(
        logs.contains("Dead letters replayed from the console."),
        "{logs}"
    );
    assert!(
        logs.contains("A real send from the console's Event Tester."),
        "{logs}"
    );
}
