//! State equivalence: the same day of traffic, delivered once the way Segment sends it (one
//! request per event) and once with batching, skip-unchanged and coalescing, leaves Userpilot in
//! the same state, without a single 429.
//!
//! The day (`common::traffic::DAY`: 2,000 users, 200 companies, ten rounds of page loads) is sent
//! by Segment's Python client to `actionkit serve`, which delivers to mock-userpilot with its rate
//! limits on. Both the mock's limits and the instance's are scaled by [`SCALE`] (the mock's
//! `RateLimits::scaled` and bulk rows per minute, the configuration's
//! `delivery.rate_limit_scale`), so the day runs at a hundred times Userpilot's pace and the
//! test still proves that actionkit never exceeds the limits. Ten users are deleted with
//! `actionkit delete-user --queue` between the second and the third round.
//!
//! The mock's final state (every user's metadata, company link and tracked events, every
//! company's metadata) must be identical in both modes. Tracked events are compared as a
//! multiset per user, since Userpilot keeps them by time, not by arrival. The test also checks
//! that the second mode sent at least ten times fewer identify and group requests; the
//! benchmark `userpilot_volume` reports the figures in full.
//!
//! The client is `$ACTIONKIT_PYTHON` (see `serve_python.rs`); without it the test fails in CI and
//! under `cargo xtask test`, and is skipped elsewhere.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use actionkit_mock_userpilot::{MockConfig, MockHandle, RateLimits};
use common::serve::{API_KEY, Server, WRITE_KEY, metric_sum, metrics_text};
use common::traffic::{self, DAY, Day};
use serde_json::{Value, json};

/// How many times Userpilot's pace the test runs at (its limits and bulk processing alike).
const SCALE: f64 = 100.0;

/// How long one round may take to be handled; only a hang guard.
const ROUND_PATIENCE: Duration = Duration::from_secs(180);

/// The instance's mappings in Segment's way: Identify User (with the company link Userpilot
/// takes), the group call linking the user and identifying the company, and tracks; one request
/// per event.
const ONE_BY_ONE: &str = r#"    send_only_changes: false
    mappings:
      - name: Identify User with Company
        trigger: type = "identify"
        action: identifyUserCompany
      - name: Link User to Company
        trigger: type = "group"
        action: identifyUserCompany
        mapping:
          userId: {"@path": "$.userId"}
          companyId: {"@path": "$.groupId"}
      - name: Identify Company
        trigger: type = "group"
        action: identifyCompany
      - name: Track Event
        trigger: type = "track"
        action: trackEvent
"#;

/// The same through the bulk actions, sending only what changed.
const AT_VOLUME: &str = r#"    send_only_changes: true
    mappings:
      - name: Identify Users in Bulk
        trigger: type = "identify"
        action: identifyUsersBulk
      - name: Link Users to Companies in Bulk
        trigger: type = "group"
        action: identifyUsersBulk
        mapping:
          userId: {"@path": "$.userId"}
          companyId: {"@path": "$.groupId"}
      - name: Identify Companies in Bulk
        trigger: type = "group"
        action: identifyCompaniesBulk
      - name: Track Event
        trigger: type = "track"
        action: trackEvent
"#;

fn python() -> String {
    std::env::var("ACTIONKIT_PYTHON")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "python3".to_owned())
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/replay_with_segment_client.py")
}

/// Whether the Python client can be imported, or why not.
fn client_ready(python: &str) -> Result<(), String> {
    let out = Command::new(python)
        .args(["-c", "import segment.analytics"])
        .output()
        .map_err(|e| format!("cannot run `{python}`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("`{python}` cannot import segment.analytics"))
    }
}

fn write_config(dir: &Path, endpoint: &str, mappings: &str) -> PathBuf {
    let text = format!(
        "destinations:
  - name: userpilot
    destination: actions-userpilot-cloud
    settings:
      apiKey: ${{E2E_USERPILOT_KEY}}
      endpoint: {endpoint}
{mappings}delivery:
  rate_limit_scale: {SCALE}
server:
  listen: 127.0.0.1:0
  write_keys:
    - name: web
      key: ${{E2E_WRITE_KEY}}
  queue:
    path: {}
",
        dir.join("queue.sqlite").display()
    );
    let path = dir.join("actionkit.yaml");
    std::fs::write(&path, text).expect("the config is written");
    path
}

/// What one mode left behind.
struct Outcome {
    state: Value,
    /// Accepted requests by path.
    requests: BTreeMap<String, u64>,
    /// Answers by status.
    statuses: BTreeMap<u16, u64>,
    dead_lettered: f64,
    unchanged: f64,
    elapsed: Duration,
}

/// Replays `calls` through the Python client into `server`.
fn replay(python: &str, server: &Server, dir: &Path, round: usize, calls: &[Value]) {
    let file = dir.join(format!("round-{round}.ndjson"));
    let text: String = calls.iter().map(|c| format!("{c}\n")).collect();
    std::fs::write(&file, text).expect("the calls are written");
    let out = Command::new(python)
        .arg(script())
        .args(["--host", &server.url("")])
        .arg(&file)
        .env("SEGMENT_WRITE_KEY", WRITE_KEY)
        .output()
        .expect("the Python client runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    assert!(
        out.status.success() && report["sent"] == json!(calls.len()),
        "the client failed in round {round}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until serve handled every accepted event and the mock finished every bulk job.
async fn wait_until_settled(server: &Server, mock: &MockHandle, events: usize) -> String {
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let text = metrics_text(&client, server).await;
        let accepted = metric_sum(&text, "actionkit_intake_events_accepted_total", &[]);
        let handled: f64 = [
            "delivered",
            "skipped",
            "skipped_unchanged",
            "filtered",
            "dead_lettered",
        ]
        .iter()
        .map(|outcome| {
            metric_sum(
                &text,
                "actionkit_deliveries_total",
                &[("destination", "userpilot"), ("outcome", outcome)],
            )
        })
        .sum();
        if accepted >= events as f64 && handled >= accepted && mock.bulk_jobs_done() {
            return text;
        }
        assert!(
            started.elapsed() < ROUND_PATIENCE,
            "accepted {accepted} of {events} events and handled {handled} within \
             {ROUND_PATIENCE:?}:\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the whole day through serve in one mode.
async fn run_day(python: &str, day: &Day, mappings: &str) -> Outcome {
    let mock = actionkit_mock_userpilot::spawn(MockConfig {
        api_key: Some(API_KEY.to_owned()),
        rate_limits: RateLimits::userpilot().scaled(SCALE),
        bulk_rows_per_minute: (1200.0 * SCALE) as u32,
        ..MockConfig::default()
    })
    .await
    .expect("the mock starts");
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = write_config(dir.path(), &mock.base_url(), mappings);
    let server = Server::start(&config);
    let started = Instant::now();
    let mut events = 0;
    let mut text = String::new();
    for (round, calls) in day.rounds.iter().enumerate() {
        let python = python.to_owned();
        events += calls.len();
        tokio::task::block_in_place(|| replay(&python, &server, dir.path(), round, calls));
        text = wait_until_settled(&server, &mock, events).await;
        if round == 1 {
            delete_users(&mock, dir.path());
        }
    }
    let elapsed = started.elapsed();
    let mut requests: BTreeMap<String, u64> = BTreeMap::new();
    for request in mock.requests() {
        if (200..300).contains(&request.status) {
            *requests.entry(request.path.clone()).or_default() += 1;
        }
    }
    let outcome = Outcome {
        state: mock.state(),
        requests,
        statuses: mock.status_counts(),
        dead_lettered: metric_sum(
            &text,
            "actionkit_deliveries_total",
            &[("outcome", "dead_lettered")],
        ),
        unchanged: metric_sum(
            &text,
            "actionkit_deliveries_total",
            &[("outcome", "skipped_unchanged")],
        ),
        elapsed,
    };
    server.stop_cleanly();
    outcome
}

/// Deletes the test's users with the CLI, which also makes serve forget them.
fn delete_users(mock: &MockHandle, dir: &Path) {
    let queue = dir.join("queue.sqlite");
    let out = Command::new(common::BIN)
        .args(["delete-user", "--setting"])
        .arg(format!("endpoint={}", mock.base_url()))
        .arg("--queue")
        .arg(&queue)
        .args(["--instance", "userpilot"])
        .args(traffic::deleted_users(DAY))
        .env("USERPILOT_API_KEY", API_KEY)
        .output()
        .expect("delete-user runs");
    assert!(
        out.status.success(),
        "delete-user failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The state to compare: users and companies, each user's events sorted.
fn comparable(state: &Value) -> Value {
    let mut users = state["users"].clone();
    if let Value::Object(users) = &mut users {
        for user in users.values_mut() {
            if let Some(Value::Array(events)) = user.get_mut("events") {
                events.sort_by_key(Value::to_string);
            }
        }
    }
    json!({ "users": users, "companies": state["companies"] })
}

/// The first user or company whose state differs, for a readable failure.
fn first_difference(a: &Value, b: &Value) -> String {
    for kind in ["users", "companies"] {
        let (Some(left), Some(right)) = (a[kind].as_object(), b[kind].as_object()) else {
            continue;
        };
        for (id, value) in left {
            if right.get(id) != Some(value) {
                return format!(
                    "{kind} '{id}': one by one {value}\nat volume {}",
                    right
                        .get(id)
                        .map_or("(absent)".to_owned(), Value::to_string)
                );
            }
        }
        if let Some(id) = right.keys().find(|id| !left.contains_key(*id)) {
            return format!("{kind} '{id}' only exists at volume");
        }
    }
    "no difference".to_owned()
}

fn identify_and_group(requests: &BTreeMap<String, u64>) -> u64 {
    [
        "/v1/identify",
        "/v1/companies/identify",
        "/v1/users/bulk_identify",
        "/v1/companies/bulk_identify",
    ]
    .iter()
    .map(|path| requests.get(*path).copied().unwrap_or(0))
    .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_day_at_volume_leaves_userpilot_as_one_request_per_event_does() {
    let python = python();
    if let Err(reason) = client_ready(&python) {
        if common::clients_required() {
            panic!("{reason}; run `cargo xtask test`, which installs it");
        }
        eprintln!("skipped: {reason}; run `cargo xtask test` to install it");
        return;
    }
    let day = traffic::day(DAY);
    let one_by_one = run_day(&python, &day, ONE_BY_ONE).await;
    let at_volume = run_day(&python, &day, AT_VOLUME).await;

    eprintln!(
        "{} calls; one by one: {:?} in {:.1} s; at volume: {:?} in {:.1} s, {} skipped as unchanged",
        day.calls(),
        one_by_one.requests,
        one_by_one.elapsed.as_secs_f64(),
        at_volume.requests,
        at_volume.elapsed.as_secs_f64(),
        at_volume.unchanged
    );
    for (mode, outcome) in [("one by one", &one_by_one), ("at volume", &at_volume)] {
        assert_eq!(
            outcome.statuses.get(&429),
            None,
            "{mode}: the mock answered 429: {:?}",
            outcome.statuses
        );
        assert_eq!(outcome.dead_lettered, 0.0, "{mode}: dead letters");
    }
    // Every user the day names is there, less the deleted ones not seen again.
    let users = one_by_one.state["users"].as_object().map_or(0, |u| u.len());
    assert!(users > 1_990, "only {users} users in Userpilot");
    let (left, right) = (comparable(&one_by_one.state), comparable(&at_volume.state));
    assert!(
        left == right,
        "the states differ: {}",
        first_difference(&left, &right)
    );
    let (before, after) = (
        identify_and_group(&one_by_one.requests),
        identify_and_group(&at_volume.requests),
    );
    assert!(
        after * 10 <= before,
        "identify and group requests: {before} one by one, {after} at volume"
    );
    // Tracks are appends and go one by one in both modes.
    assert_eq!(
        one_by_one.requests.get("/v1/track"),
        at_volume.requests.get("/v1/track")
    );
}
