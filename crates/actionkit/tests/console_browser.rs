//! The web console end to end in headless Chromium: `tests/clients/console.mjs`
//! (playwright-core driving the system's Chromium, no browser download) uses it as a person
//! would.
//!
//! Under `actionkit console`: enters the token, pastes an event into the Event Tester and sees
//! the request with the API key redacted, breaks a mapping and the trigger in the mapping
//! editor and sees each error at its place, fixes them and copies the YAML, which must then
//! be on the clipboard and load as part of a configuration; the Delivery overview says there
//! is no queue.
//!
//! Under `actionkit serve`, after the mock Userpilot API refused three events with 503 until
//! they were dead-lettered and became healthy again: sends an event for real from the Event
//! Tester and sees the answer, sees the failures with their reasons and the dead letters in
//! the Delivery overview, replays one after declining once and then confirming in the dialog
//! with the keyboard, and sees it delivered; the mock must have received it.
//!
//! Screenshots of each step are written to `target/console-screenshots/`. Without the npm
//! packages (`cargo xtask test` installs them, or `npm ci --prefix
//! crates/actionkit/tests/clients`) or Chromium the test prints "skipped", unless `CI` or
//! `ACTIONKIT_REQUIRE_CLIENTS` is set, when it fails.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::clients::{clients_dir, ready};
use common::serve::*;
use serde_json::{Value, json};

const TOKEN: &str = "e2e-browser-console-token-5c1e";
const TOKEN_ENV: &str = "E2E_CONSOLE_TOKEN";

/// Whether Chromium can be found the way console.mjs looks for it.
fn chromium_found() -> bool {
    if let Some(path) = std::env::var_os("ACTIONKIT_CHROMIUM") {
        return std::path::Path::new(&path).is_file();
    }
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| dir.join("chromium").is_file())
    })
}

/// Whether the browser tests can run here; fails instead of skipping where they are required.
fn browser_ready() -> bool {
    if !ready(&["playwright-core"]) {
        return false;
    }
    if !chromium_found() {
        assert!(
            !common::clients_required(),
            "the console browser test is required here, but no `chromium` is on PATH"
        );
        eprintln!("skipped: no `chromium` on PATH (install Debian's chromium package)");
        return false;
    }
    true
}

/// Runs console.mjs's `scenario` against `server`, writing screenshots into
/// `target/console-screenshots`; returns its report once it passed.
async fn drive(server: &Server, scenario: &str) -> (Value, std::path::PathBuf) {
    let screenshots = common::repo_root().join("target/console-screenshots");
    let child = tokio::process::Command::new("node")
        .arg(clients_dir().join("console.mjs"))
        .args([
            "--serve",
            &server.url(""),
            "--scenario",
            scenario,
            "--screenshots",
        ])
        .arg(&screenshots)
        .current_dir(clients_dir())
        .env("ACTIONKIT_CONSOLE_TOKEN", TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let out = tokio::time::timeout(Duration::from_secs(150), child.wait_with_output())
        .await
        .expect("console.mjs finishes within its own time limit")
        .expect("its output is read");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("console.mjs did not print one JSON object ({e}):\n{stdout}\nstderr:\n{stderr}")
    });
    assert_eq!(
        out.status.code(),
        Some(0),
        "problems: {:#}\nstderr:\n{stderr}\nserver:\n{}",
        report["problems"],
        server.logs()
    );
    (report, screenshots)
}

fn assert_screenshots(dir: &std::path::Path, names: &[&str]) {
    for name in names {
        let shot = dir.join(format!("{name}.png"));
        assert!(shot.is_file(), "no screenshot {}", shot.display());
    }
}

#[tokio::test]
async fn a_person_tests_an_event_fixes_a_mapping_and_copies_its_yaml() {
    if !browser_ready() {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = write_config(dir.path(), "http://127.0.0.1:9/");
    let server = Server::start_command(
        "console",
        &config,
        &["--listen", "127.0.0.1:0", "--token-env", TOKEN_ENV],
        &[(TOKEN_ENV, TOKEN)],
    );
    let (report, screenshots) = drive(&server, "console").await;
    assert_eq!(
        report["steps"],
        json!([
            "destinations",
            "event tester",
            "mapping error",
            "mapping fixed",
            "no queue"
        ])
    );
    assert_screenshots(
        &screenshots,
        &[
            "destinations",
            "event-tester",
            "mapping-error",
            "mapping-fixed",
            "overview-no-queue",
        ],
    );

    // What was copied is a mapping entry the configuration loader reads.
    let yaml = report["clipboard"].as_str().expect("the copied YAML");
    let indented: String = yaml.lines().map(|l| format!("    {l}\n")).collect();
    let text = format!(
        "destinations:\n  - name: up\n    destination: actions-userpilot-cloud\n    settings:\n      apiKey: k\n    mappings:\n{indented}"
    );
    let loaded = actionkit_spec::load_config_str("copied.yaml", &text, |_| None)
        .unwrap_or_else(|diags| panic!("{diags}\n{text}"));
    let actionkit_spec::config::Mappings::List(list) = &loaded.config.destinations[0].mappings
    else {
        panic!("a list of mappings:\n{text}");
    };
    assert_eq!(
        list[0].trigger,
        "type = \"track\" and event = \"Order Completed\""
    );
    assert_eq!(list[0].mapping["userId"]["@path"], "$.userId");

    let logs = server.stop_cleanly();
    assert!(!logs.contains(TOKEN), "the token was logged:\n{logs}");
}

/// Polls the console's overview until `done` holds (a hang guard, never a timing assert).
async fn overview_until(server: &Server, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let http = reqwest::Client::new();
    let until = std::time::Instant::now() + PATIENCE;
    loop {
        let seen: Value = http
            .get(server.url("/console/api/overview"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("the overview answers")
            .json()
            .await
            .expect("the overview is JSON");
        if done(&seen) {
            return seen;
        }
        assert!(
            std::time::Instant::now() < until,
            "gave up waiting for {what}: {seen:#}\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_person_sees_failures_and_dead_letters_and_replays_one_that_is_then_delivered() {
    if !browser_ready() {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    // The destination answers 503 to everything: each event is retried until it is older
    // than the queue's two-second maximum age, then dead-lettered.
    let mock = mock(actionkit_mock_userpilot::FaultConfig {
        error_rate: 1.0,
        error_status: 503,
        ..actionkit_mock_userpilot::FaultConfig::default()
    })
    .await;
    let server_lines = format!(
        "  max_age_secs: 2\n  retry_backoff_secs: 0.2\n  retry_backoff_max_secs: 0.4\n  console:\n    token_env: {TOKEN_ENV}\n"
    );
    let config = write_config_with(
        dir.path(),
        &mock.url("/"),
        "  max_attempts: 1\n",
        &server_lines,
    );
    let server = Server::start_command("serve", &config, &[], &[(TOKEN_ENV, TOKEN)]);
    let http = reqwest::Client::new();
    let post = |events: Vec<Value>| {
        http.post(server.url("/v1/batch"))
            .basic_auth(WRITE_KEY, Some(""))
            .json(&json!({ "batch": events }))
            .send()
    };
    // What failed, by messageId: the path and user the destination receives it as.
    let failing = [
        ("fail-track-1", "/v1/track", "u-1"),
        ("fail-track-2", "/v1/track", "u-2"),
        ("fail-identify-1", "/v1/identify", "u-3"),
    ];
    let res = post(vec![
        json!({"type": "track", "userId": "u-1", "event": "Order Completed", "messageId": "fail-track-1", "properties": {"revenue": 42.5}}),
        json!({"type": "track", "userId": "u-2", "event": "Signed Up", "messageId": "fail-track-2"}),
        json!({"type": "identify", "userId": "u-3", "traits": {"plan": "pro"}, "messageId": "fail-identify-1"}),
    ])
    .await
    .expect("intake answers");
    assert_eq!(res.status(), reqwest::StatusCode::OK);
    overview_until(&server, "three dead letters", |o| {
        o["instances"][0]["events"]["hour"]["dead_lettered"] == 3
    })
    .await;

    // Healthy again: one identify delivered and one alias no trigger matches.
    mock.set_faults(actionkit_mock_userpilot::FaultConfig::default())
        .expect("valid faults");
    let res = post(vec![
        json!({"type": "identify", "userId": "u-9", "traits": {"plan": "free"}, "messageId": "ok-identify-1"}),
        json!({"type": "alias", "userId": "u-9", "previousId": "anon-9", "messageId": "skip-alias-1"}),
    ])
    .await
    .expect("intake answers");
    assert_eq!(res.status(), reqwest::StatusCode::OK);
    overview_until(
        &server,
        "the identify delivered and the alias skipped",
        |o| {
            let hour = &o["instances"][0]["events"]["hour"];
            hour["delivered"] == 1 && hour["skipped"] == 1
        },
    )
    .await;

    let (report, screenshots) = drive(&server, "serve").await;
    assert_eq!(
        report["steps"],
        json!([
            "real send",
            "overview failures",
            "dead letter shown",
            "replay confirmed",
            "replayed delivered"
        ])
    );
    assert_screenshots(
        &screenshots,
        &[
            "real-send",
            "overview",
            "overview-failures",
            "dead-letter",
            "replay-confirm",
            "replayed",
        ],
    );

    // The replayed event reached the destination and left the dead-letter queue; the other
    // two are still there.
    let replayed = report["replayed"].as_str().expect("the replayed messageId");
    let (_, path, user) = failing
        .iter()
        .find(|(id, _, _)| *id == replayed)
        .unwrap_or_else(|| panic!("{replayed} is not one of the failed events"));
    assert!(
        mock.requests().iter().any(|r| r.status == 202
            && r.path == *path
            && r.json.as_ref().is_some_and(|j| j["user_id"] == *user)),
        "{replayed} was not delivered"
    );
    let mut left: Vec<String> = dlq_entries(&config)
        .iter()
        .filter_map(|e| e["message_id"].as_str().map(str::to_owned))
        .collect();
    left.sort_unstable();
    let mut expected: Vec<String> = failing
        .iter()
        .map(|(id, _, _)| (*id).to_owned())
        .filter(|id| id != replayed)
        .collect();
    expected.sort_unstable();
    assert_eq!(left, expected);
    // The real send went to the destination, not through the queue.
    assert!(mock.requests().iter().any(|r| r.status == 202
        && r.path == "/v1/identify"
        && r.json.as_ref().is_some_and(|j| j["user_id"] == "u-4711")));

    let logs = server.stop_cleanly();
    assert!(!logs.contains(TOKEN), "the token was logged:\n{logs}");
}
