//! What `serve_browser.rs` and `serve_node_clients.rs` share: finding Node and the npm packages,
//! running a client script from this folder against a running server, and checking what reached
//! the mock Userpilot API.
//!
//! Every script makes the same four calls (`calls.mjs`): identify, track, group and page, with
//! ids derived from a run tag. With the destination's presets, the mock must receive exactly one
//! Identify User, one Track Event and one Identify Company request per run, and nothing for the
//! page call.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use actionkit_mock_userpilot::MockHandle;
use serde_json::{Value, json};

use super::serve::{PATIENCE, Server, WRITE_KEY, metric_sum, metrics_text};

/// The command that installs the pinned packages, as the skip and failure messages print it.
pub const NPM_CI: &str = "npm ci --prefix crates/actionkit/tests/clients";

/// How long one script may run before the test kills it; the scripts stop well before.
const SCRIPT_LIMIT: Duration = Duration::from_secs(120);

/// This folder: package.json, the lock file, the scripts and `node_modules`.
pub fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Checks that `node` runs and that each of `packages` is installed. When something is missing
/// the test fails if [`super::clients_required`] (in CI and under `cargo xtask test`), and
/// otherwise prints a "skipped" line to standard error and the caller returns early; `false`
/// means skip.
pub fn ready(packages: &[&str]) -> bool {
    match missing(packages) {
        None => true,
        Some(reason) => {
            if super::clients_required() {
                panic!(
                    "the client end-to-end tests are required here: {reason}; run `cargo xtask test` or `{NPM_CI}`"
                );
            }
            eprintln!("skipped: run `{NPM_CI}` ({reason})");
            false
        }
    }
}

fn missing(packages: &[&str]) -> Option<String> {
    match std::process::Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => return Some(format!("`node --version` exited with {}", out.status)),
        Err(e) => return Some(format!("`node` cannot be run: {e}")),
    }
    let modules = clients_dir().join("node_modules");
    let absent: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|name| !modules.join(name).join("package.json").is_file())
        .collect();
    if absent.is_empty() {
        None
    } else {
        Some(format!("not installed: {}", absent.join(", ")))
    }
}

/// What one run of a script printed and how it ended.
pub struct ScriptRun {
    /// The exit code; `None` when it was killed by a signal.
    pub code: Option<i32>,
    /// The one JSON object the script printed.
    pub report: Value,
    /// Its standard error.
    pub stderr: String,
    /// How long it ran.
    pub elapsed: Duration,
    /// Where the report was saved: `target/client-e2e/<script>-<mode>.json`.
    pub report_file: PathBuf,
}

impl ScriptRun {
    /// The problems the script listed.
    pub fn problems(&self) -> Vec<String> {
        self.report["problems"]
            .as_array()
            .map(|all| {
                all.iter()
                    .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the script exited 0 and listed no problem.
    pub fn is_clean(&self) -> bool {
        self.code == Some(0) && self.problems().is_empty()
    }

    /// Fails the test when the script saw a problem or did not exit 0, with every problem on its
    /// own line, `context` (what the caller found out about the server's answers), where the
    /// full report is, and the end of the script's standard error and of the server's log.
    pub fn assert_clean(&self, what: &str, server: &Server, context: &str) {
        if self.is_clean() {
            return;
        }
        let problems = self.problems();
        let listed: String = problems.iter().map(|p| format!("\n  - {p}")).collect();
        // The problems are listed above already; the rest of standard error may explain more.
        let other: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.starts_with("problem: "))
            .collect();
        let stderr = last_lines(&other.join("\n"), 10);
        let logs = last_lines(&server.logs(), 15);
        panic!(
            "{what}: the client did not deliver cleanly (exit code {:?}); problems seen:{listed}\n\
             {}\nthe full report: {}\nthe script's other standard error lines:{stderr}\n\
             the server's last log lines:{logs}",
            self.code,
            context,
            self.report_file.display(),
        );
    }
}

/// The last `n` lines of `text`, each on a new line and indented.
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].iter().map(|l| format!("\n  {l}")).collect()
}

/// Runs `node <script> --serve <server> --tag <tag> --mode <mode> [extra]` in this folder, with
/// the write key in the environment; returns what it printed. Exit code 3 (packages missing)
/// cannot happen after [`ready`], so any code is left to the caller to judge.
pub async fn run_script(
    script: &str,
    server: &Server,
    tag: &str,
    mode: &str,
    extra: &[String],
) -> ScriptRun {
    let started = Instant::now();
    let mut command = tokio::process::Command::new("node");
    command
        .arg(clients_dir().join(script))
        .args(["--serve", &server.url(""), "--tag", tag, "--mode", mode])
        .args(extra)
        .current_dir(clients_dir())
        .env("ACTIONKIT_WRITE_KEY", WRITE_KEY)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().expect("node starts");
    let out = match tokio::time::timeout(SCRIPT_LIMIT, child.wait_with_output()).await {
        Ok(out) => out.expect("the script's output is read"),
        Err(_) => panic!("{script} --mode {mode} ran longer than {SCRIPT_LIMIT:?}"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{script} --mode {mode} did not print one JSON object ({e}; exit {:?}):\n{stdout}\n\
             stderr:\n{stderr}",
            out.status.code()
        )
    });
    assert!(
        !stdout.contains(WRITE_KEY) && !stderr.contains(WRITE_KEY),
        "{script} printed the write key"
    );
    let stem = script.trim_end_matches(".mjs");
    let report_file = output_dir().join(format!("{stem}-{mode}.json"));
    let pretty = serde_json::to_string_pretty(&report).unwrap_or_default();
    if let Err(e) =
        std::fs::create_dir_all(output_dir()).and_then(|()| std::fs::write(&report_file, pretty))
    {
        eprintln!("could not save {}: {e}", report_file.display());
    }
    ScriptRun {
        code: out.status.code(),
        report,
        stderr,
        elapsed: started.elapsed(),
        report_file,
    }
}

/// The requests the `userpilot` instance must send for the calls of run `tag`, as (path, body):
/// the same calls in every client test (`calls.mjs`, and the Python script, whose tags start
/// with `py-`).
pub fn expected_userpilot_requests(tag: &str) -> Vec<(String, Value)> {
    let user = format!("{tag}-user");
    vec![
        (
            "/v1/identify".to_owned(),
            json!({
                "user_id": user,
                "metadata": {
                    "name": "Zoë Ångström",
                    "email": format!("{user}@example.com"),
                    "plan": "growth",
                    "logins": 7,
                    "created_at": "2021-03-04T05:06:07Z",
                    "address": {"city": "Köln", "country": "DE"},
                },
            }),
        ),
        (
            "/v1/track".to_owned(),
            json!({
                "user_id": user,
                "event_name": "Order Completed",
                "metadata": {
                    "revenue": 42.5,
                    "currency": "EUR",
                    "products": [{"sku": "A-1", "quantity": 2}, {"sku": "B-2", "quantity": 1}],
                    "coupon": null,
                    "gift": false,
                },
            }),
        ),
        (
            "/v1/companies/identify".to_owned(),
            json!({
                "company_id": format!("{tag}-company"),
                "metadata": {
                    "name": "Acme GmbH",
                    "plan": "enterprise",
                    "employees": 250,
                    "created_at": "2019-01-01",
                },
            }),
        ),
    ]
}

/// Waits until the server has accepted at least `events` events and has handled (delivered,
/// skipped, filtered or dead-lettered) every event it accepted; returns the metrics text then.
pub async fn wait_until_handled(server: &Server, events: usize) -> String {
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let text = metrics_text(&client, server).await;
        let accepted = metric_sum(&text, "actionkit_intake_events_accepted_total", &[]);
        let handled: f64 = ["delivered", "skipped", "filtered", "dead_lettered"]
            .iter()
            .map(|outcome| {
                metric_sum(
                    &text,
                    "actionkit_deliveries_total",
                    &[("destination", "userpilot"), ("outcome", outcome)],
                )
            })
            .sum();
        if accepted >= events as f64 && handled >= accepted {
            return text;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the server accepted {accepted} events (expected {events}) and handled {handled} \
             within {PATIENCE:?}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks that the mock received exactly the expected requests of the runs `tags`, each once,
/// every one answered with a 2xx, and nothing else (page calls send nothing).
pub fn assert_mock_got_exactly(mock: &MockHandle, tags: &[String]) {
    let requests = mock.requests();
    let refused: Vec<String> = requests
        .iter()
        .filter(|r| !(200..300).contains(&r.status) || r.dropped)
        .map(|r| format!("{} {} -> {}", r.method, r.path, r.status))
        .collect();
    assert!(refused.is_empty(), "the mock refused requests: {refused:?}");
    let mut got: Vec<(String, Value)> = requests
        .into_iter()
        .map(|r| (r.path, r.json.unwrap_or(Value::Null)))
        .collect();
    let mut want: Vec<(String, Value)> = tags
        .iter()
        .flat_map(|tag| expected_userpilot_requests(tag))
        .collect();
    let key = |r: &(String, Value)| format!("{} {}", r.0, r.1);
    got.sort_by_key(key);
    want.sort_by_key(key);
    assert_eq!(
        got, want,
        "the mock should have received exactly one identify, track and company request per run"
    );
}

/// Where the reports and screenshots go: `target/client-e2e/` in the repository.
pub fn output_dir() -> PathBuf {
    let root = crate::common::repo_root();
    root.canonicalize()
        .unwrap_or(root)
        .join("target/client-e2e")
}

/// Where the browser test writes the screenshot of `case`: `target/client-e2e/<case>.png`.
pub fn screenshot_path(case: &str) -> PathBuf {
    output_dir().join(format!("{case}.png"))
}

/// A tag unique to this process and `label`, so that ids never repeat across runs.
pub fn run_tag(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{label}-{}-{nanos:x}", std::process::id())
}

/// The strings in `report[field]` of every entry of `report[list]`.
pub fn strings<'a>(report: &'a Value, list: &str, field: &str) -> Vec<&'a str> {
    report[list]
        .as_array()
        .map(|all| all.iter().filter_map(|e| e[field].as_str()).collect())
        .unwrap_or_default()
}
