//! The two ways of delivering a generated day to Userpilot that the state-equivalence test
//! (`serve_state.rs`) and the volume benchmark (`benches/userpilot_volume.rs`) compare: one
//! request per event as Segment sends, and at volume (bulk actions, skip-unchanged,
//! coalescing), both through `actionkit serve` into mock-userpilot with scaled rate limits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use actionkit_mock_userpilot::{MockConfig, MockHandle, RateLimits};
use serde_json::{Value, json};

use super::serve::{
    API_KEY, Server, WRITE_KEY, metric_sum, metrics_text, post_batch, write_serve_config,
};
use super::traffic::{self, DAY, Day};

/// How the calls reach serve.
pub enum Sender {
    /// Segment's Python client, run by this interpreter (`tests/python/replay_with_segment_client.py`).
    Python(String),
    /// Plain `/v1/batch` posts of 500 events, for the benchmark.
    Http,
}

impl Sender {
    /// Sends one round of calls to `server`.
    async fn send(&self, server: &Server, dir: &Path, round: usize, calls: &[Value]) {
        match self {
            Sender::Python(python) => {
                tokio::task::block_in_place(|| replay(python, server, dir, round, calls));
            }
            Sender::Http => {
                let client = reqwest::Client::new();
                for (chunk_idx, chunk) in calls.chunks(500).enumerate() {
                    let batch: Vec<Value> = chunk
                        .iter()
                        .enumerate()
                        .map(|(idx, call)| {
                            let mut call = call.clone();
                            call["messageId"] = json!(format!("r{round}-{chunk_idx}-{idx}"));
                            call
                        })
                        .collect();
                    let answer = post_batch(&client, server, &json!({ "batch": batch })).await;
                    assert!(answer.status().is_success(), "intake refused a batch");
                }
            }
        }
    }
}

/// The Python interpreter of the tests: `$ACTIONKIT_PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("ACTIONKIT_PYTHON")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "python3".to_owned())
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/replay_with_segment_client.py")
}

/// Whether the Python client can be imported, or why not.
pub fn client_ready(python: &str) -> Result<(), String> {
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

/// How many times Userpilot's pace the test runs at (its limits and bulk processing alike).
pub const SCALE: f64 = 100.0;

/// How long one round may take to be handled; only a hang guard.
pub const ROUND_PATIENCE: Duration = Duration::from_secs(180);

/// The instance's mappings in Segment's way: Identify User (with the company link Userpilot
/// takes), the group call linking the user and identifying the company, and tracks; one request
/// per event.
pub const ONE_BY_ONE: &str = r#"    send_only_changes: false
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
pub const AT_VOLUME: &str = r#"    send_only_changes: true
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

pub fn write_config(dir: &Path, endpoint: &str, mappings: &str) -> PathBuf {
    let delivery = format!("  rate_limit_scale: {SCALE}\n");
    write_serve_config(dir, endpoint, mappings, &delivery, "")
}

/// What one mode left behind.
pub struct Outcome {
    pub state: Value,
    /// Accepted requests by path.
    pub requests: BTreeMap<String, u64>,
    /// Answers by status.
    pub statuses: BTreeMap<u16, u64>,
    pub dead_lettered: f64,
    pub unchanged: f64,
    pub elapsed: Duration,
}

/// Waits until serve handled every accepted event and the mock finished every bulk job.
pub async fn wait_until_settled(server: &Server, mock: &MockHandle, events: usize) -> String {
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
pub async fn run_day(sender: &Sender, day: &Day, mappings: &str) -> Outcome {
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
        events += calls.len();
        sender.send(&server, dir.path(), round, calls).await;
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

/// Deletes the day's users with the CLI, which also makes serve forget them.
pub fn delete_users(mock: &MockHandle, dir: &Path) {
    let out = Command::new(super::BIN)
        .args(["delete-user", "--setting"])
        .arg(format!("endpoint={}", mock.base_url()))
        .arg("--queue-config")
        .arg(dir.join("actionkit.yaml"))
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
pub fn comparable(state: &Value) -> Value {
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
pub fn first_difference(a: &Value, b: &Value) -> String {
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

pub fn identify_and_group(requests: &BTreeMap<String, u64>) -> u64 {
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
