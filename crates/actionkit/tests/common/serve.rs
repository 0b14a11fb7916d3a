//! The `actionkit serve` harness shared by the serve tests: the binary as a subprocess with a
//! temporary configuration and queue, the mock Userpilot API on 127.0.0.1, and helpers to post
//! batches and read what reached the mock.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actionkit_mock_userpilot::{FaultConfig, MockConfig, MockHandle};
use serde_json::{Value, json};

use super::BIN;

pub const API_KEY: &str = "sk-test-SECRET-5e1f0c4b";
pub const WRITE_KEY: &str = "wk-test-SECRET-a93b71d2";

/// How long to wait for something that should happen within seconds; only a hang guard.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub async fn mock(faults: FaultConfig) -> MockHandle {
    actionkit_mock_userpilot::spawn(MockConfig {
        api_key: Some(API_KEY.to_owned()),
        faults,
        ..MockConfig::default()
    })
    .await
    .expect("the mock starts")
}

/// Writes a configuration delivering to `endpoint` with its queue in `dir`.
pub fn write_config(dir: &Path, endpoint: &str) -> std::path::PathBuf {
    write_config_with(dir, endpoint, "", "")
}

/// A running `actionkit serve` with its log lines collected.
pub struct Server {
    child: Child,
    /// The address the server listens on.
    pub addr: String,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(config: &Path) -> Server {
        Server::start_with_args(config, &[])
    }

    /// Like [`Server::start`], with extra `serve` arguments (for example `--backoff-base 0.05`).
    pub fn start_with_args(config: &Path, extra: &[&str]) -> Server {
        Server::start_command("serve", config, extra, &[])
    }

    /// Runs `actionkit <command> --log-format json [extra] --config <config>` with `env`
    /// added to the environment and waits for its "Listening." line.
    pub fn start_command(
        command: &str,
        config: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let mut child = Command::new(BIN)
            .args([command, "--log-format", "json"])
            .args(extra)
            .arg("--config")
            .arg(config)
            .env("E2E_USERPILOT_KEY", API_KEY)
            .env("E2E_WRITE_KEY", WRITE_KEY)
            .envs(env.iter().copied())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the actionkit binary starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let logs = Arc::clone(&logs);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(value) = serde_json::from_str::<Value>(&line)
                        && value["message"] == "Listening."
                        && let Some(addr) = value["addr"].as_str()
                    {
                        let _ = tx.send(addr.to_owned());
                    }
                    logs.lock().expect("the log lock").push(line);
                }
            });
        }
        let Ok(addr) = rx.recv_timeout(PATIENCE) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "serve did not start listening:\n{}",
                logs.lock().expect("the log lock").join("\n")
            );
        };
        Server { child, addr, logs }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn logs(&self) -> String {
        self.logs.lock().expect("the log lock").join("\n")
    }

    /// Sends SIGTERM and waits for the exit; returns the exit code.
    pub fn terminate(mut self) -> (Option<i32>, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let code = self.child.wait().expect("serve exits").code();
        // Give the reader thread a moment to collect the last lines.
        std::thread::sleep(Duration::from_millis(100));
        let logs = self.logs();
        (code, logs)
    }

    /// Sends SIGTERM and checks the stop was clean: exit code 0, no panic, and neither the API
    /// key nor the write key anywhere in the logs. Returns the logs.
    pub fn stop_cleanly(self) -> String {
        let (code, logs) = self.terminate();
        assert_eq!(code, Some(0), "{logs}");
        assert!(!logs.contains("panicked"), "{logs}");
        assert!(
            !logs.contains(API_KEY) && !logs.contains(WRITE_KEY),
            "a secret was logged:\n{logs}"
        );
        logs
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn crash(mut self) -> String {
        self.child.kill().expect("serve is killed");
        let _ = self.child.wait();
        self.logs()
    }
}

/// A server a test did not stop (it failed or panicked first) is killed, so that no `serve`
/// outlives the test run.
impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A batch of `n` events alternating identify and track, user ids `{tag}-{i}`.
pub fn batch(tag: &str, n: usize) -> (Value, Vec<String>) {
    let mut items = Vec::new();
    let mut ids = Vec::new();
    for idx in 0..n {
        let user = format!("{tag}-{idx}");
        let message_id = format!("msg-{tag}-{idx}");
        if idx % 2 == 0 {
            items.push(json!({
                "type": "identify", "userId": user, "messageId": message_id,
                "traits": {"n": idx, "plan": "pro"}
            }));
        } else {
            items.push(json!({
                "type": "track", "userId": user, "messageId": message_id,
                "event": "Order Completed", "properties": {"n": idx}
            }));
        }
        ids.push(user);
    }
    (json!({ "batch": items }), ids)
}

pub async fn post_batch(
    client: &reqwest::Client,
    server: &Server,
    body: &Value,
) -> reqwest::Response {
    client
        .post(server.url("/v1/batch"))
        .basic_auth(WRITE_KEY, Some(""))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("intake answers")
}

/// The recorded requests that reached the mock and were accepted, by `user_id`.
pub fn delivered_by_user(mock: &MockHandle) -> BTreeMap<String, Vec<(String, Value)>> {
    let mut out: BTreeMap<String, Vec<(String, Value)>> = BTreeMap::new();
    for request in mock.requests() {
        if !(200..300).contains(&request.status) || request.dropped {
            continue;
        }
        let Some(body) = request.json else { continue };
        if let Some(user) = body["user_id"].as_str() {
            out.entry(user.to_owned())
                .or_default()
                .push((request.path.clone(), body.clone()));
        }
    }
    out
}

/// Waits until every user in `users` has at least one delivered request.
pub async fn wait_for_all(
    mock: &MockHandle,
    users: &[String],
) -> BTreeMap<String, Vec<(String, Value)>> {
    let started = Instant::now();
    loop {
        let delivered = delivered_by_user(mock);
        if users.iter().all(|u| delivered.contains_key(u)) {
            return delivered;
        }
        if started.elapsed() > PATIENCE {
            let missing: Vec<&String> = users
                .iter()
                .filter(|u| !delivered.contains_key(*u))
                .collect();
            panic!("never delivered: {missing:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs an `actionkit` tool without any secret in the environment; returns stdout.
pub fn tool(args: &[&str], config: &Path) -> String {
    let out = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("E2E_WRITE_KEY")
        .env_remove("E2E_USERPILOT_KEY")
        .output()
        .expect("the tool runs");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Like [`write_config`], with more destination instances: `extra_destinations` is YAML list
/// items indented by two spaces (`"  - name: …"`), added after the `userpilot` instance.
pub fn write_config_with_destinations(
    dir: &Path,
    endpoint: &str,
    extra_destinations: &str,
) -> std::path::PathBuf {
    let path = write_config(dir, endpoint);
    let text = std::fs::read_to_string(&path).expect("the config is read back");
    let mut extra = extra_destinations.trim_end().to_owned();
    extra.push('\n');
    let text = text.replacen("delivery:\n", &format!("{extra}delivery:\n"), 1);
    std::fs::write(&path, text).expect("the config is written");
    path
}

/// The server's `/metrics` text.
pub async fn metrics_text(client: &reqwest::Client, server: &Server) -> String {
    client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("the metrics answer")
        .text()
        .await
        .expect("the metrics text")
}

/// The sum of the samples of `name` whose labels include every `(label, value)` in `labels`
/// (0 when there is none), read from Prometheus text.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut sum = 0.0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (label_text, value) = match rest.strip_prefix('{') {
            Some(inner) => match inner.split_once('}') {
                Some((labels, value)) => (labels, value),
                None => continue,
            },
            None if rest.starts_with(' ') => ("", rest),
            None => continue,
        };
        // Label values here never hold a comma, so splitting on commas finds each pair.
        let all = labels.iter().all(|(k, v)| {
            let want = format!("{k}=\"{v}\"");
            label_text.split(',').any(|pair| pair.trim() == want)
        });
        if all && let Ok(value) = value.trim().parse::<f64>() {
            sum += value;
        }
    }
    sum
}

/// Like [`write_config`], with extra lines appended to the `delivery` and `server` sections; each
/// line is indented by two spaces, for example `"  concurrency: 32\n"`.
pub fn write_config_with(
    dir: &Path,
    endpoint: &str,
    delivery: &str,
    server: &str,
) -> std::path::PathBuf {
    write_serve_config(
        dir,
        endpoint,
        "",
        &format!("  rate_limits: false\n{delivery}"),
        server,
    )
}

/// The configuration of the serve tests: one instance `userpilot` delivering to `endpoint`,
/// with `instance` appended to it (lines indented by four spaces, such as its mappings), the
/// `delivery` and `server` sections' extra lines (indented by two), the queue in `dir`.
pub fn write_serve_config(
    dir: &Path,
    endpoint: &str,
    instance: &str,
    delivery: &str,
    server: &str,
) -> std::path::PathBuf {
    let backend = queue_backend_lines();
    write_config_on(dir, endpoint, instance, delivery, server, &backend)
}

/// The configuration of one `serve` node of a cluster on the JetStream at `nats_urls`, with
/// the `delivery` and `server` sections' extra lines (indented by two spaces).
pub fn write_cluster_node_config(
    dir: &Path,
    endpoint: &str,
    nats_urls: &[String],
    delivery: &str,
    server: &str,
) -> std::path::PathBuf {
    let urls: Vec<String> = nats_urls.iter().map(|url| format!("\"{url}\"")).collect();
    // Three copies of every stream on a cluster of three servers, one on a single server.
    let replicas = if nats_urls.len() >= 3 { 3 } else { 1 };
    let backend = format!(
        "    backend: jetstream\n    jetstream:\n      urls: [{}]\n      replicas: {replicas}\n",
        urls.join(", ")
    );
    write_config_on(dir, endpoint, "", delivery, server, &backend)
}

/// [`write_serve_config`] with the given `server.queue` lines choosing the store.
fn write_config_on(
    dir: &Path,
    endpoint: &str,
    instance: &str,
    delivery: &str,
    server: &str,
    backend: &str,
) -> std::path::PathBuf {
    let queue = dir.join("queue.sqlite");
    let text = format!(
        "destinations:
  - name: userpilot
    destination: actions-userpilot-cloud
    settings:
      apiKey: ${{E2E_USERPILOT_KEY}}
      endpoint: {endpoint}
{instance}delivery:
{delivery}server:
  listen: 127.0.0.1:0
  write_keys:
    - name: web
      key: ${{E2E_WRITE_KEY}}
  queue:
{backend}    path: {}
{server}",
        queue.display()
    );
    let path = dir.join("actionkit.yaml");
    std::fs::write(&path, text).expect("the config is written");
    path
}

/// Whether the serve tests run on JetStream: `ACTIONKIT_TEST_QUEUE=jetstream` (which
/// `cargo xtask test` sets for a second run of the serve suites), else on SQLite.
pub fn on_jetstream() -> bool {
    std::env::var("ACTIONKIT_TEST_QUEUE").is_ok_and(|v| v == "jetstream")
}

/// The `server.queue` lines choosing the store: nothing for SQLite (the default); on
/// JetStream, a server of this configuration's own, which runs until the test process ends.
pub fn queue_backend_lines() -> String {
    if !on_jetstream() {
        return String::new();
    }
    let server = actionkit_nats_testkit::Server::start()
        .expect("ACTIONKIT_TEST_QUEUE=jetstream needs nats-server; run `cargo xtask test`");
    let url = server.keep_until_exit();
    format!("    backend: jetstream\n    jetstream:\n      urls: [\"{url}\"]\n")
}

/// The mock with Userpilot's rate limits switched off, for tests whose load would exceed them.
pub async fn mock_unlimited(faults: FaultConfig) -> MockHandle {
    actionkit_mock_userpilot::spawn(MockConfig {
        api_key: Some(API_KEY.to_owned()),
        faults,
        rate_limits: actionkit_mock_userpilot::RateLimits::disabled(),
        ..MockConfig::default()
    })
    .await
    .expect("the mock starts")
}

/// `actionkit queue stats` as JSON.
pub fn queue_stats(config: &Path) -> Value {
    serde_json::from_str(&tool(&["queue", "stats"], config)).expect("stats print JSON")
}

/// The stats of the `userpilot` instance from `actionkit queue stats` (zeros before any
/// delivery was recorded).
pub fn userpilot_stats(config: &Path) -> Value {
    let stats = queue_stats(config);
    stats["destinations"]
        .as_array()
        .and_then(|all| all.iter().find(|d| d["destination"] == "userpilot"))
        .cloned()
        .unwrap_or_else(|| {
            json!({"pending": 0, "retry_scheduled": 0, "in_flight": 0,
            "dead_lettered": 0, "delivered_total": 0, "dead_lettered_total": 0})
        })
}

/// Deliveries still waiting or in flight (not delivered, not dead-lettered) in `stats` of one
/// instance.
pub fn live_deliveries(stats: &Value) -> u64 {
    ["pending", "retry_scheduled", "in_flight"]
        .iter()
        .map(|k| stats[*k].as_u64().unwrap_or(0))
        .sum()
}

/// Every entry of `actionkit dlq list` (up to 100,000).
pub fn dlq_entries(config: &Path) -> Vec<Value> {
    tool(&["dlq", "list", "--limit", "100000"], config)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}
