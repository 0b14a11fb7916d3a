//! Userpilot's bulk endpoints misbehaving under `actionkit serve`: a job still running (409), a
//! 503 and a 429 with `Retry-After`, a 400 that names no row, a 413. Whatever happens, every
//! event ends delivered or dead-lettered with its reason, and no row reaches Userpilot's state
//! twice: each user is in exactly one accepted bulk request, or in none when dead-lettered.
//!
//! The faults come from mock-userpilot's fault script, restricted to the bulk endpoints, so each
//! phase gets exactly the answers it names.

mod common;

use std::collections::BTreeMap;

use actionkit_mock_userpilot::{
    EndpointGroup, FaultConfig, FaultEndpoints, MockConfig, MockHandle, RateLimits,
};
use common::serve::{API_KEY, Server, metric_sum, post_batch, tool, write_serve_config};
use common::volume::wait_until_settled;
use serde_json::{Value, json};

/// Limits and bulk processing at ten times Userpilot's pace, so that busy polls are short.
const SCALE: f64 = 10.0;

fn config(dir: &std::path::Path, endpoint: &str) -> std::path::PathBuf {
    let mappings = r#"    mappings:
      - name: Identify Users in Bulk
        trigger: type = "identify"
        action: identifyUsersBulk
      - name: Identify Companies in Bulk
        trigger: type = "group"
        action: identifyCompaniesBulk
"#;
    let delivery = format!("  rate_limit_scale: {SCALE}\n");
    write_serve_config(dir, endpoint, mappings, &delivery, "")
}

fn identify(user: &str) -> Value {
    json!({"type": "identify", "userId": user, "messageId": format!("m-{user}"),
           "traits": {"name": user, "plan": "pro"}})
}

fn group(user: &str, company: &str) -> Value {
    json!({"type": "group", "userId": user, "groupId": company, "messageId": format!("m-{company}"),
           "traits": {"name": company}})
}

/// Faults on the bulk endpoints only: `script` answers first, `Retry-After: 1` on 429 and 503.
fn bulk_faults(script: Vec<u16>) -> FaultConfig {
    FaultConfig {
        endpoints: FaultEndpoints::only([EndpointGroup::Bulk]),
        script,
        retry_after: Some(1),
        ..FaultConfig::default()
    }
}

/// How many accepted bulk requests carried each user or company id, and the statuses of all
/// bulk answers in order.
fn bulk_rows(mock: &MockHandle) -> (BTreeMap<String, u32>, Vec<u16>) {
    let mut carried = BTreeMap::new();
    let mut statuses = Vec::new();
    for request in mock.requests() {
        if !request.path.ends_with("/bulk_identify") {
            continue;
        }
        statuses.push(request.status);
        if !(200..300).contains(&request.status) {
            continue;
        }
        let body = request.json.unwrap_or(Value::Null);
        for (list, key) in [("users", "user_id"), ("companies", "company_id")] {
            for row in body[list].as_array().into_iter().flatten() {
                if let Some(id) = row[key].as_str() {
                    *carried.entry(id.to_owned()).or_default() += 1;
                }
            }
        }
    }
    (carried, statuses)
}

async fn send(server: &Server, events: Vec<Value>) {
    let answer = post_batch(&reqwest::Client::new(), server, &json!({ "batch": events })).await;
    assert!(answer.status().is_success(), "intake refused the batch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bulk_row_ends_delivered_once_or_dead_lettered_with_its_reason() {
    let mock = actionkit_mock_userpilot::spawn(MockConfig {
        api_key: Some(API_KEY.to_owned()),
        rate_limits: RateLimits::userpilot().scaled(SCALE),
        // Twenty rows take two seconds: long enough for a second job to meet a 409.
        bulk_rows_per_minute: 600,
        ..MockConfig::default()
    })
    .await
    .expect("the mock starts");
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = config(dir.path(), &mock.base_url());
    let server = Server::start_with_args(&config, &["--backoff-base", "0.05"]);
    let mut events = 0;

    // 409: users and companies flush together; one job runs, the other waits for it.
    let mut batch = Vec::new();
    for n in 0..20 {
        batch.push(identify(&format!("a-{n}")));
        batch.push(group(&format!("a-{n}"), &format!("co-a-{n}")));
    }
    events += batch.len();
    send(&server, batch).await;
    wait_until_settled(&server, &mock, events).await;
    let (_, statuses) = bulk_rows(&mock);
    assert!(statuses.contains(&409), "no job was busy: {statuses:?}");

    // 503, then 429 with Retry-After: retried within the attempt budget.
    mock.set_faults(bulk_faults(vec![503, 429]))
        .expect("faults");
    let batch: Vec<Value> = (0..20).map(|n| identify(&format!("b-{n}"))).collect();
    events += batch.len();
    send(&server, batch).await;
    wait_until_settled(&server, &mock, events).await;

    // A 400 that names no row, five times: the batch of sixteen is halved down to its first
    // entry, which is dead-lettered; the other fifteen are delivered.
    mock.set_faults(bulk_faults(vec![400; 5])).expect("faults");
    let batch: Vec<Value> = (0..16).map(|n| identify(&format!("c-{n}"))).collect();
    events += batch.len();
    send(&server, batch).await;
    wait_until_settled(&server, &mock, events).await;

    // 413: the batch is split and both halves go through.
    mock.set_faults(bulk_faults(vec![413])).expect("faults");
    let batch: Vec<Value> = (0..16).map(|n| identify(&format!("d-{n}"))).collect();
    events += batch.len();
    send(&server, batch).await;
    let metrics = wait_until_settled(&server, &mock, events).await;

    let (carried, statuses) = bulk_rows(&mock);
    for status in [409, 503, 429, 400, 413] {
        assert!(statuses.contains(&status), "no {status}: {statuses:?}");
    }
    let mut expected: BTreeMap<String, u32> = BTreeMap::new();
    for n in 0..20 {
        expected.insert(format!("a-{n}"), 1);
        expected.insert(format!("co-a-{n}"), 1);
        expected.insert(format!("b-{n}"), 1);
    }
    for n in 0..16 {
        if n != 0 {
            expected.insert(format!("c-{n}"), 1);
        }
        expected.insert(format!("d-{n}"), 1);
    }
    assert_eq!(carried, expected, "rows in accepted bulk requests");
    let delivered = metric_sum(
        &metrics,
        "actionkit_deliveries_total",
        &[("outcome", "delivered")],
    );
    let dead = metric_sum(
        &metrics,
        "actionkit_deliveries_total",
        &[("outcome", "dead_lettered")],
    );
    assert_eq!((delivered, dead), ((events - 1) as f64, 1.0), "{metrics}");

    // The dead letter is c-0's, with Userpilot's 400 as its reason.
    let dlq = tool(&["dlq", "list"], &config);
    let entries: Vec<Value> = dlq
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    assert_eq!(entries.len(), 1, "{dlq}");
    assert!(entries[0].to_string().contains("m-c-0"), "{dlq}");
    assert!(entries[0].to_string().contains("400"), "{dlq}");
    let state = mock.state();
    assert!(state["users"].get("c-0").is_none(), "c-0 reached Userpilot");
    assert!(state["users"]["c-1"].is_object());
    server.stop_cleanly();
}
