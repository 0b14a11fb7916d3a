//! The web console in the real binary: `actionkit console` (the console alone, on the
//! loopback address) and `actionkit serve` with `server.console` (the console beside intake,
//! whose write keys do not open it). What each API route answers is tested against the
//! console crate's router in `crates/console/tests/api.rs`; these tests check the wiring:
//! the token from the environment, the routes mounted or not, intake untouched, no secret in
//! the logs.

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
        !text.contains(API_KEY) && !text.contains(TOKEN),
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
    // Without serve there is no queue to overview.
    call(
        http.get(server.url("/console/api/overview"))
            .bearer_auth(TOKEN),
        reqwest::StatusCode::NOT_FOUND,
        "overview",
    )
    .await;
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
