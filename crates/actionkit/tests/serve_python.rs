//! End-to-end test with Segment's official Python client (`segment-analytics-python`): the script
//! `tests/python/send_with_segment_client.py` sends identify, track, group, page, screen and
//! alias calls to `actionkit serve`, which delivers them to the mock Userpilot API.
//!
//! Two destination instances receive every event. `userpilot` runs the destination's presets, so
//! its mock must see exactly the identify, track and group requests Userpilot expects, and nothing
//! for page, screen and alias. `audit` maps every event whole into a Track Event request on a
//! second mock, which shows what intake stored: each message as the client sent it, with the same
//! `messageId`, plus the fields the server fills.
//!
//! The client runs twice, once batching in its background thread and once in `sync_mode` with
//! gzip, and once more with a wrong write key, which it must report as an error.
//!
//! The interpreter is `$ACTIONKIT_PYTHON` (set by `cargo xtask test`, which installs the pinned
//! package in a virtual environment), else `python3`. When the package cannot be imported the
//! test fails if `CI` or `ACTIONKIT_REQUIRE_CLIENTS` is set, and otherwise prints a "skipped" line
//! to standard error and passes.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use actionkit_mock_userpilot::{FaultConfig, MockHandle};
use common::clients::expected_userpilot_requests;
use common::serve::*;
use serde_json::Value;

/// The Python interpreter to run the client with.
fn python() -> String {
    std::env::var("ACTIONKIT_PYTHON")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "python3".to_owned())
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/send_with_segment_client.py")
}

/// The installed client's version, or why it cannot be used.
fn client_version(python: &str) -> Result<String, String> {
    let out = Command::new(python)
        .args([
            "-c",
            "from segment.analytics.version import VERSION; print(VERSION)",
        ])
        .output()
        .map_err(|e| format!("cannot run `{python}`: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or_default().trim();
        Err(format!(
            "`{python}` cannot import segment.analytics ({last})"
        ))
    }
}

/// What one run of the script printed and how it ended.
struct ClientRun {
    code: Option<i32>,
    report: Value,
    stderr: String,
}

/// Runs the script against `server` with `write_key`; blocking, so called from `spawn_blocking`.
fn run_client(python: &str, host: &str, write_key: &str, tag: &str, flags: &[&str]) -> ClientRun {
    let out = Command::new(python)
        .arg(script())
        .args(["--host", host, "--tag", tag])
        .args(flags)
        .env("SEGMENT_WRITE_KEY", write_key)
        .output()
        .expect("the Python client runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("the script's output is not JSON ({e}):\n{stdout}\nstderr:\n{stderr}")
    });
    ClientRun {
        code: out.status.code(),
        report,
        stderr,
    }
}

async fn run_client_async(
    python: &str,
    host: &str,
    write_key: &str,
    tag: &str,
    flags: &[&str],
) -> ClientRun {
    let (python, host, write_key, tag) = (
        python.to_owned(),
        host.to_owned(),
        write_key.to_owned(),
        tag.to_owned(),
    );
    let flags: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        run_client(&python, &host, &write_key, &tag, &flags)
    })
    .await
    .expect("the client task finishes")
}

/// The second instance: every event, whole, as the `metadata` of a Track Event request whose
/// `user_id` is the event's `messageId` and whose `event_name` is its type.
const AUDIT_INSTANCE: &str = r#"  - name: audit
    destination: actions-userpilot-cloud
    settings:
      apiKey: ${E2E_USERPILOT_KEY}
      endpoint: AUDIT_ENDPOINT
    mappings:
      - name: everything
        trigger: type = "identify" or type = "track" or type = "group" or type = "page" or type = "screen" or type = "alias"
        action: trackEvent
        mapping:
          userId: {"@path": "$.messageId"}
          name: {"@path": "$.type"}
          properties: {"@path": "$."}
"#;

/// The accepted requests a mock recorded, as (path, body).
fn accepted(mock: &MockHandle) -> Vec<(String, Value)> {
    mock.requests()
        .into_iter()
        .filter(|r| (200..300).contains(&r.status) && !r.dropped && r.path != "/v1/validate")
        .map(|r| (r.path, r.json.unwrap_or(Value::Null)))
        .collect()
}

/// Waits until every stored event has been handled by both instances.
async fn wait_until_handled(client: &reqwest::Client, server: &Server, n_events: f64) -> String {
    let started = Instant::now();
    loop {
        let text = metrics_text(client, server).await;
        let done = |dest: &str| {
            metric_sum(
                &text,
                "actionkit_deliveries_total",
                &[("destination", dest), ("outcome", "delivered")],
            ) + metric_sum(
                &text,
                "actionkit_deliveries_total",
                &[("destination", dest), ("outcome", "skipped")],
            )
        };
        if done("userpilot") >= n_events && done("audit") >= n_events {
            return text;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "events were not all handled:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Checks that the audit copy of each sent message is the message plus the server's fields.
fn check_stored(messages: &[Value], audit: &[(String, Value)], mode: &str) {
    let by_id: BTreeMap<&str, &Value> = audit
        .iter()
        .filter_map(|(_, body)| Some((body["user_id"].as_str()?, body)))
        .collect();
    for sent in messages {
        let id = sent["messageId"]
            .as_str()
            .expect("the client sets a messageId");
        let Some(body) = by_id.get(id) else {
            panic!("[{mode}] message {id} never reached the audit instance: {sent}");
        };
        assert_eq!(body["event_name"], sent["type"], "[{mode}] {body}");
        let stored = body["metadata"]
            .as_object()
            .expect("the stored event is an object");
        let sent = sent.as_object().expect("a sent message is an object");
        for (key, value) in sent {
            assert_eq!(
                stored.get(key),
                Some(value),
                "[{mode}] `{key}` of message {id} changed on the way"
            );
        }
        // The server adds the arrival time and the batch's `sentAt`; the client's `timestamp`
        // is kept and copied to `originalTimestamp`. Nothing else is added, and the write key
        // (sent in the batch body) is not stored.
        let mut added: Vec<&str> = stored
            .keys()
            .filter(|k| !sent.contains_key(*k))
            .map(String::as_str)
            .collect();
        added.sort_unstable();
        assert_eq!(
            added,
            ["originalTimestamp", "receivedAt", "sentAt"],
            "[{mode}] message {id}"
        );
        assert_eq!(stored["originalTimestamp"], sent["timestamp"]);
        for key in ["receivedAt", "sentAt"] {
            let text = stored[key].as_str().unwrap_or_default();
            assert!(
                looks_like_date_time(text),
                "[{mode}] {key} is not a date-time: {text}"
            );
        }
    }
}

/// Whether `text` starts like an ISO-8601 date-time (`2024-05-01T12:30:00`).
fn looks_like_date_time(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() >= 19
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
            .iter()
            .all(|&i| b[i].is_ascii_digit())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_python_client_events_arrive_as_the_expected_requests() {
    let python = python();
    let version = match client_version(&python) {
        Ok(version) => version,
        Err(reason) => {
            let hint = "`cargo xtask test` installs it, or set ACTIONKIT_PYTHON to an interpreter with segment-analytics-python==2.4.0";
            if common::clients_required() {
                panic!("the Segment Python client is required here: {reason}; {hint}");
            }
            eprintln!("skipped: {reason}; {hint}");
            return;
        }
    };
    eprintln!("segment-analytics-python {version} via {python}");

    let userpilot = mock(FaultConfig::default()).await;
    let audit = mock(FaultConfig::default()).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = write_config_with_destinations(
        dir.path(),
        &userpilot.base_url(),
        &AUDIT_INSTANCE.replace("AUDIT_ENDPOINT", &audit.base_url()),
    );
    let server = Server::start(&config);
    let host = format!("http://{}", server.addr);
    let client = reqwest::Client::new();

    // A wrong write key: the client gets a 401, reports it through on_error, and nothing is
    // stored.
    let refused = run_client_async(&python, &host, "wk-wrong", "refused", &[]).await;
    assert_eq!(refused.code, Some(1), "stderr:\n{}", refused.stderr);
    assert!(
        refused.stderr.contains("401") && refused.stderr.contains("write key is not valid"),
        "the client's error should carry the status and the reason:\n{}",
        refused.stderr
    );
    // The client reads `code` and `message` at the top level of our answer.
    assert!(
        refused.stderr.contains("invalid_write_key: "),
        "the client should report our error code:\n{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains(WRITE_KEY));

    // The client's default: a background thread batching the calls into /v1/batch; then one
    // request per call in sync mode, gzip-compressed.
    let runs = [("batch", &[][..]), ("syncgz", &["--sync", "--gzip"][..])];
    let mut sent: Vec<(&str, Vec<Value>)> = Vec::new();
    for (tag, flags) in runs {
        let run = run_client_async(&python, &host, WRITE_KEY, tag, flags).await;
        assert_eq!(
            run.code,
            Some(0),
            "[{tag}] the client reported errors:\n{}\n{}",
            run.report,
            run.stderr
        );
        assert_eq!(run.report["library"]["name"], "analytics-python");
        let messages = run.report["messages"]
            .as_array()
            .expect("the report lists the messages")
            .clone();
        let types: Vec<&str> = messages.iter().filter_map(|m| m["type"].as_str()).collect();
        assert_eq!(
            types,
            ["identify", "track", "group", "page", "screen", "alias"],
            "[{tag}]"
        );
        sent.push((tag, messages));
    }
    let n_events = sent.iter().map(|(_, m)| m.len()).sum::<usize>();

    let metrics = wait_until_handled(&client, &server, n_events as f64).await;
    // The client speaks only /v1/batch: one request for the batching run (its 6 calls fit one
    // upload), one per call in sync mode; the refused run's request is the one 401.
    let batch_ok = metric_sum(
        &metrics,
        "actionkit_intake_requests_total",
        &[("path", "batch"), ("status", "200")],
    );
    assert!(
        (7.0..=12.0).contains(&batch_ok),
        "200s on /v1/batch: {batch_ok}\n{metrics}"
    );
    assert_eq!(
        metric_sum(&metrics, "actionkit_intake_requests_total", &[]),
        batch_ok
            + metric_sum(
                &metrics,
                "actionkit_intake_requests_total",
                &[("path", "batch"), ("status", "401")]
            ),
        "{metrics}"
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "actionkit_intake_events_accepted_total",
            &[("source", "web"), ("path", "batch")]
        ),
        n_events as f64
    );
    // The presets deliver identify, track and group, and skip page, screen and alias.
    let outcome = |name: &str| {
        metric_sum(
            &metrics,
            "actionkit_deliveries_total",
            &[("destination", "userpilot"), ("outcome", name)],
        )
    };
    assert_eq!(outcome("delivered"), (n_events / 2) as f64, "{metrics}");
    assert_eq!(outcome("skipped"), (n_events / 2) as f64, "{metrics}");

    // Exactly the expected requests reached Userpilot, in any order.
    let mut got = accepted(&userpilot);
    let mut want: Vec<(String, Value)> = sent
        .iter()
        .flat_map(|(tag, _)| expected_userpilot_requests(&format!("py-{tag}")))
        .collect();
    let key = |r: &(String, Value)| format!("{} {}", r.0, r.1);
    got.sort_by_key(key);
    want.sort_by_key(key);
    assert_eq!(got, want);
    // The wrong-key run stored nothing, so nothing of it reached either mock.
    let everything = format!("{:?} {:?}", userpilot.requests(), audit.requests());
    assert!(!everything.contains("py-refused"), "{everything}");

    let audited = accepted(&audit);
    assert_eq!(audited.len(), n_events);
    for (mode, messages) in &sent {
        check_stored(messages, &audited, mode);
    }

    server.stop_cleanly();
}
