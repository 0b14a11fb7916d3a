//! The Webhook destination end to end: `actionkit serve` delivers events to a real HTTP
//! receiver on 127.0.0.1, which records every request, and the test checks the bodies, the
//! methods, the custom headers and that `x-signature` is the HMAC-SHA1 of the received bytes
//! with the shared secret, computed here independently. A dry run shows the signature redacted.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use common::serve::{PATIENCE, Server, WRITE_KEY, post_batch, queue_backend_lines};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

const SECRET: &str = "whsec-test-7c1d93e0";

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// Starts the receiver; it answers 200 to everything and records what it got.
async fn receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
    let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
    let record = Arc::clone(&seen);
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let record = Arc::clone(&record);
            async move {
                record.lock().expect("the record lock").push(Received {
                    method,
                    path: uri.path().to_owned(),
                    headers,
                    body,
                });
                "ok"
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("the receiver binds");
    let addr = listener.local_addr().expect("the receiver's address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), seen)
}

/// The hex HMAC-SHA1 of `body` keyed with `key`.
fn hmac_sha1_hex(key: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(key.as_bytes()).expect("any key");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A configuration with one Webhook instance: track events one by one with PUT and custom
/// headers, identify events in batches with POST.
fn write_config(dir: &std::path::Path, base: &str) -> std::path::PathBuf {
    let text = format!(
        r#"destinations:
  - name: hooks
    destination: actions-webhook
    settings:
      sharedSecret: ${{E2E_WEBHOOK_SECRET}}
    mappings:
      - name: One by one
        trigger: type = "track"
        action: send
        mapping:
          url: {{"@template": "{base}/single/{{{{userId}}}}"}}
          method: PUT
          headers:
            X-Source: actionkit
            X-Event: {{"@path": "$.event"}}
          data: {{"@path": "$.properties"}}
      - name: Batched
        trigger: type = "identify"
        action: send
        mapping:
          url: {base}/batch
          method: POST
          enable_batching: true
          headers:
            X-Source: actionkit
          data: {{"@path": "$.traits"}}
server:
  listen: 127.0.0.1:0
  write_keys:
    - name: web
      key: ${{E2E_WRITE_KEY}}
  queue:
{backend}    path: {queue}
"#,
        backend = queue_backend_lines(),
        queue = dir.join("queue.sqlite").display(),
    );
    let path = dir.join("actionkit.yaml");
    std::fs::write(&path, text).expect("the config is written");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_delivers_signed_webhooks_one_by_one_and_in_batches() {
    let (base, seen) = receiver().await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = write_config(dir.path(), &base);
    let server = Server::start_command("serve", &config, &[], &[("E2E_WEBHOOK_SECRET", SECRET)]);
    let client = reqwest::Client::new();

    let events = json!({"batch": [
        {"type": "track", "userId": "u1", "messageId": "m1", "event": "Signed Up", "properties": {"plan": "pro", "n": 1}},
        {"type": "identify", "userId": "u2", "messageId": "m2", "traits": {"name": "Ada"}},
        {"type": "track", "userId": "u3", "messageId": "m3", "event": "Order Completed", "properties": {"total": 9.5, "note": "Zoë"}},
        {"type": "identify", "userId": "u4", "messageId": "m4", "traits": {"name": "Grace"}},
        {"type": "identify", "userId": "u5", "messageId": "m5", "traits": {"name": "Edsger"}},
    ]});
    let res = post_batch(&client, &server, &events).await;
    assert_eq!(res.status(), 200);

    // Every track event is one request; the identify events arrive in one batch or more.
    let started = Instant::now();
    let received = loop {
        let received = seen.lock().expect("the record lock").clone();
        let batched: usize = received
            .iter()
            .filter(|r| r.path == "/batch")
            .map(|r| {
                serde_json::from_slice::<Vec<Value>>(&r.body)
                    .map(|items| items.len())
                    .unwrap_or(0)
            })
            .sum();
        let single = received.iter().filter(|r| r.path != "/batch").count();
        if batched >= 3 && single >= 2 {
            break received;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "not everything arrived: {received:#?}\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    for request in &received {
        let signature = request
            .headers
            .get("x-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no x-signature on {request:?}"));
        assert_eq!(
            signature,
            hmac_sha1_hex(SECRET, &request.body),
            "the signature covers the received body: {request:?}"
        );
        assert_eq!(request.headers["x-source"], "actionkit", "{request:?}");
        assert_eq!(
            request.headers["content-type"], "application/json",
            "{request:?}"
        );
    }

    let mut single: Vec<&Received> = received.iter().filter(|r| r.path != "/batch").collect();
    single.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(single.len(), 2, "{single:#?}");
    assert_eq!(single[0].method, Method::PUT);
    assert_eq!(single[0].path, "/single/u1");
    assert_eq!(single[0].headers["x-event"], "Signed Up");
    assert_eq!(
        serde_json::from_slice::<Value>(&single[0].body).expect("a JSON body"),
        json!({"plan": "pro", "n": 1})
    );
    assert_eq!(single[1].method, Method::PUT);
    assert_eq!(single[1].path, "/single/u3");
    assert_eq!(single[1].headers["x-event"], "Order Completed");
    assert_eq!(
        serde_json::from_slice::<Value>(&single[1].body).expect("a JSON body"),
        json!({"total": 9.5, "note": "Zoë"})
    );

    let mut names = Vec::new();
    for request in received.iter().filter(|r| r.path == "/batch") {
        assert_eq!(request.method, Method::POST);
        let items: Vec<Value> = serde_json::from_slice(&request.body).expect("a JSON array");
        names.extend(items.into_iter().map(|item| item["name"].clone()));
    }
    names.sort_by_key(Value::to_string);
    assert_eq!(names, [json!("Ada"), json!("Edsger"), json!("Grace")]);

    let logs = server.stop_cleanly();
    assert!(!logs.contains(SECRET), "the secret was logged:\n{logs}");
    assert!(!logs.contains(WRITE_KEY), "the write key was logged");
}

#[test]
fn a_dry_run_shows_the_signature_redacted() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = write_config(dir.path(), "https://hooks.example.com");
    let events = dir.path().join("events.ndjson");
    std::fs::write(
        &events,
        "{\"type\": \"track\", \"userId\": \"u1\", \"event\": \"E\", \"properties\": {\"plan\": \"pro\"}}\n",
    )
    .expect("the events are written");
    let config_text = config.to_string_lossy().into_owned();
    let events_text = events.to_string_lossy().into_owned();
    let out = common::run_with_env(
        &[
            "send",
            "--dry-run",
            "--output",
            "ndjson",
            "--config",
            &config_text,
            &events_text,
        ],
        b"",
        &[("E2E_WEBHOOK_SECRET", SECRET), ("E2E_WRITE_KEY", WRITE_KEY)],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let real = hmac_sha1_hex(SECRET, br#"{"plan":"pro"}"#);
    assert!(
        !out.stdout.contains(&real),
        "the signature is shown:\n{}",
        out.stdout
    );
    assert!(!out.all().contains(SECRET), "the secret is shown");
    let request = out
        .ndjson()
        .into_iter()
        .find_map(|line| line.get("requests").and_then(|r| r.get(0)).cloned())
        .unwrap_or_else(|| panic!("no request in the dry run:\n{}", out.stdout));
    let text = request.to_string();
    assert!(
        text.contains("x-signature") && text.contains("[redacted]"),
        "the signature header is listed as redacted: {text}"
    );
    assert!(
        text.contains("https://hooks.example.com/single/u1"),
        "{text}"
    );
}
