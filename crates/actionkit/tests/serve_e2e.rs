//! End-to-end tests of `actionkit serve`: the binary runs as a subprocess with a temporary
//! configuration and queue, events are posted to its intake, and the mock Userpilot API (a real
//! HTTP server on 127.0.0.1) records what the workers deliver.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actionkit_mock_userpilot::{FaultConfig, Latency, MockConfig, MockHandle};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_actionkit");
const API_KEY: &str = "sk-test-SECRET-5e1f0c4b";
const WRITE_KEY: &str = "wk-test-SECRET-a93b71d2";

/// How long to wait for something that should happen within seconds; only a hang guard.
const PATIENCE: Duration = Duration::from_secs(30);

async fn mock(faults: FaultConfig) -> MockHandle {
    actionkit_mock_userpilot::spawn(MockConfig {
        api_key: Some(API_KEY.to_owned()),
        faults,
        ..MockConfig::default()
    })
    .await
    .expect("the mock starts")
}

/// Writes a configuration delivering to `endpoint` with its queue in `dir`.
fn write_config(dir: &Path, endpoint: &str) -> std::path::PathBuf {
    let queue = dir.join("queue.sqlite");
    let text = format!(
        "destinations:
  - name: userpilot
    destination: actions-userpilot-cloud
    settings:
      apiKey: ${{E2E_USERPILOT_KEY}}
      endpoint: {endpoint}
delivery:
  rate_limits: false
server:
  listen: 127.0.0.1:0
  write_keys:
    - name: web
      key: ${{E2E_WRITE_KEY}}
  queue:
    path: {}
",
        queue.display()
    );
    let path = dir.join("actionkit.yaml");
    std::fs::write(&path, text).expect("the config is written");
    path
}

/// A running `actionkit serve` with its log lines collected.
struct Server {
    child: Child,
    addr: String,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(config: &Path) -> Server {
        let mut child = Command::new(BIN)
            .args(["serve", "--log-format", "json", "--config"])
            .arg(config)
            .env("E2E_USERPILOT_KEY", API_KEY)
            .env("E2E_WRITE_KEY", WRITE_KEY)
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

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn logs(&self) -> String {
        self.logs.lock().expect("the log lock").join("\n")
    }

    /// Sends SIGTERM and waits for the exit; returns the exit code.
    fn terminate(mut self) -> (Option<i32>, String) {
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

    /// Kills the process with SIGKILL, as a crash would.
    fn crash(mut self) -> String {
        self.child.kill().expect("serve is killed");
        let _ = self.child.wait();
        self.logs()
    }
}

/// A batch of `n` events alternating identify and track, user ids `{tag}-{i}`.
fn batch(tag: &str, n: usize) -> (Value, Vec<String>) {
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

async fn post_batch(client: &reqwest::Client, server: &Server, body: &Value) -> reqwest::Response {
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
fn delivered_by_user(mock: &MockHandle) -> BTreeMap<String, Vec<(String, Value)>> {
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
async fn wait_for_all(
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_event_arrives_as_the_expected_request() {
    let mock = mock(FaultConfig::default()).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = write_config(dir.path(), &mock.base_url());
    let server = Server::start(&config);
    let client = reqwest::Client::new();

    // A wrong write key is refused and stores nothing.
    let refused = client
        .post(server.url("/v1/batch"))
        .basic_auth("not-the-key", Some(""))
        .header("content-type", "application/json")
        .body(batch("refused", 2).0.to_string())
        .send()
        .await
        .expect("intake answers");
    assert_eq!(refused.status(), 401);

    let (body, users) = batch("e2e", 20);
    let res = post_batch(&client, &server, &body).await;
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.expect("a JSON answer");
    assert_eq!(answer["accepted"], 20, "{answer}");

    let delivered = wait_for_all(&mock, &users).await;
    for (idx, user) in users.iter().enumerate() {
        let requests = &delivered[user];
        let (path, body) = &requests[0];
        if idx % 2 == 0 {
            assert_eq!(path, "/v1/identify");
            assert_eq!(
                body,
                &json!({"user_id": user, "metadata": {"n": idx, "plan": "pro"}})
            );
        } else {
            assert_eq!(path, "/v1/track");
            assert_eq!(
                body,
                &json!({"user_id": user, "event_name": "Order Completed", "metadata": {"n": idx}})
            );
        }
    }
    assert!(!delivered.contains_key("refused-0"));
    // The mock checks the API key; every delivered request carried it.
    for request in mock.requests().iter().filter(|r| r.path != "/v1/validate") {
        assert!((200..300).contains(&request.status), "{request:?}");
    }

    let (code, logs) = server.terminate();
    assert_eq!(code, Some(0), "{logs}");
    assert!(logs.contains("Shutting down."), "{logs}");
    assert!(
        !logs.contains(API_KEY) && !logs.contains(WRITE_KEY),
        "a secret was logged:\n{logs}"
    );

    // Nothing is left in the queue, and the tools open it without any secret in the environment.
    let stats = Command::new(BIN)
        .args(["queue", "stats", "--config"])
        .arg(&config)
        .output()
        .expect("queue stats runs");
    assert!(
        stats.status.success(),
        "{}",
        String::from_utf8_lossy(&stats.stderr)
    );
    let stats: Value = serde_json::from_slice(&stats.stdout).expect("stats are JSON");
    assert_eq!(stats["events_stored"], 0, "{stats}");
    let up = &stats["destinations"][0];
    assert_eq!(up["destination"], "userpilot", "{stats}");
    assert_eq!(up["delivered_total"], 20, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_a_crash() {
    // Slow responses keep deliveries in flight when the process is killed.
    let mock = mock(FaultConfig {
        latency: Some(Latency {
            min: Duration::from_millis(150),
            max: Duration::from_millis(250),
            spike_rate: 0.0,
            spike: Duration::ZERO,
        }),
        ..FaultConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = write_config(dir.path(), &mock.base_url());
    let server = Server::start(&config);
    let client = reqwest::Client::new();

    let mut acknowledged: Vec<String> = Vec::new();
    for round in 0..4 {
        let (body, users) = batch(&format!("crash{round}"), 25);
        let res = post_batch(&client, &server, &body).await;
        if res.status() == 200 {
            acknowledged.extend(users);
        }
    }
    assert_eq!(acknowledged.len(), 100);
    let logs = server.crash();
    let before: BTreeSet<String> = delivered_by_user(&mock).into_keys().collect();
    assert!(
        before.len() < acknowledged.len(),
        "everything was delivered before the crash; the test proves nothing\n{logs}"
    );

    let server = Server::start(&config);
    let delivered = wait_for_all(&mock, &acknowledged).await;
    for user in &acknowledged {
        assert!(delivered.contains_key(user));
    }
    let (code, logs) = server.terminate();
    assert_eq!(code, Some(0), "{logs}");
}

/// Runs an `actionkit` tool without any secret in the environment; returns stdout.
fn tool(args: &[&str], config: &Path) -> String {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_failures_are_dead_lettered_with_the_reason_and_can_be_purged() {
    // Every request is answered 400, which is final: no retry, straight to the DLQ.
    let mock = mock(FaultConfig {
        error_rate: 1.0,
        error_status: 400,
        ..FaultConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = write_config(dir.path(), &mock.base_url());
    let server = Server::start(&config);
    let client = reqwest::Client::new();
    let (body, _) = batch("dead", 3);
    assert_eq!(post_batch(&client, &server, &body).await.status(), 200);

    let started = Instant::now();
    let entries: Vec<Value> = loop {
        let text = tool(&["dlq", "list"], &config);
        let entries: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect();
        if entries.len() == 3 {
            break entries;
        }
        assert!(started.elapsed() < PATIENCE, "not dead-lettered: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ids: BTreeSet<&str> = entries
        .iter()
        .filter_map(|e| e["message_id"].as_str())
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from(["msg-dead-0", "msg-dead-1", "msg-dead-2"])
    );
    for entry in &entries {
        assert_eq!(entry["destination"], "userpilot");
        assert_eq!(entry["attempts"], 1, "{entry}");
        let reason = entry["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("400"), "{entry}");
    }
    // Exactly one attempt each reached the mock: 400 is not retried.
    assert_eq!(mock.count(400), 3);

    let first = entries[0]["id"].to_string();
    let shown: Value =
        serde_json::from_str(&tool(&["dlq", "show", &first], &config)).expect("show prints JSON");
    assert_eq!(shown["event"]["messageId"], entries[0]["message_id"]);
    assert!(shown["event"].get("writeKey").is_none());

    let (code, logs) = server.terminate();
    assert_eq!(code, Some(0), "{logs}");
    assert!(logs.contains("dead-lettered"), "{logs}");
    assert!(
        !logs.contains(API_KEY) && !logs.contains(WRITE_KEY),
        "a secret was logged:\n{logs}"
    );

    let purged: Value = serde_json::from_str(&tool(&["dlq", "purge", "--all"], &config))
        .expect("purge prints JSON");
    assert_eq!(purged["purged"], 3);
    let stats: Value =
        serde_json::from_str(&tool(&["queue", "stats"], &config)).expect("stats print JSON");
    assert_eq!(stats["events_stored"], 0, "{stats}");
    assert_eq!(
        stats["destinations"][0]["dead_lettered_total"], 3,
        "{stats}"
    );
    assert_eq!(stats["destinations"][0]["purged_total"], 3, "{stats}");
}
