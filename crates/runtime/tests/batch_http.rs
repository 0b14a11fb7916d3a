//! Batch actions end to end through the runtime: dispatch makes entries, the batcher gathers
//! them, and [`deliver_batch`] settles each entry against a real HTTP server on 127.0.0.1 that
//! answers like a bulk API (a job id on success, 409 while busy, 413 over its size, a 400 that
//! names no row when any row is bad).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actionkit_runtime::batch::{Batcher, ItemResult, deliver_batch};
use actionkit_runtime::delivery::{DeliveryClient, DeliveryConfig, Verdict};
use actionkit_runtime::destination::{
    ActionDef, BatchDef, CompiledDestination, DeletionsDef, DestinationDef, ItemErrorsDef,
    RequestDef, RequestDefaultsDef,
};
use actionkit_runtime::dispatch::{BatchItem, Instance, MappingConfig, Outcome};
use actionkit_runtime::fields::{FieldDef, FieldType, Required, SettingDef};
use actionkit_runtime::request::Method;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;

static FIELDS: &[FieldDef] = &[
    FieldDef {
        key: "id",
        label: "ID",
        required: Required::Always,
        ..FieldDef::BASE
    },
    FieldDef {
        key: "group",
        label: "Group",
        ..FieldDef::BASE
    },
    FieldDef {
        key: "bad",
        label: "Bad",
        field_type: FieldType::Boolean,
        ..FieldDef::BASE
    },
];

static SWITCHED_FIELDS: &[FieldDef] = &[
    FieldDef {
        key: "id",
        label: "ID",
        required: Required::Always,
        ..FieldDef::BASE
    },
    FieldDef {
        key: "enable_batching",
        label: "Use Batch Endpoint",
        field_type: FieldType::Boolean,
        ..FieldDef::BASE
    },
];

const BULK_REQUEST: RequestDef = RequestDef {
    method: Method::Post,
    path: "v1/bulk",
    json: Some(r#"{"rows":{"@path":"$.items"}}"#),
    busy_statuses: &[409],
    response_id: Some("job_id"),
    ..RequestDef::BASE
};

static BULK: DestinationDef = DestinationDef {
    id: "b",
    name: "Bulk",
    slug: "bulk",
    settings: &[SettingDef {
        key: "endpoint",
        label: "Endpoint",
        ..SettingDef::BASE
    }],
    request_defaults: RequestDefaultsDef {
        base_url: Some(r#"{"@path":"$.settings.endpoint"}"#),
        sign: None,
        headers: &[],
    },
    rate_limits: &[],
    presets: &[],
    actions: &[
        ActionDef {
            id: "a1",
            key: "bulkRows",
            name: "Bulk Rows",
            description: "",
            default_trigger: "",
            beyond_segment: true,
            fields: FIELDS,
            request: None,
            batch: Some(BatchDef {
                max_items: 4,
                max_bytes: None,
                wait_ms: 100,
                keys: &["group"],
                item: Some(r#"{"id":{"@path":"$.payload.id"},"bad":{"@path":"$.payload.bad"}}"#),
                request: BULK_REQUEST,
                item_errors: None,
            }),
            merges: None,
            hook: None,
        },
        ActionDef {
            id: "a2",
            key: "switched",
            name: "Switched",
            description: "",
            default_trigger: "",
            beyond_segment: true,
            fields: SWITCHED_FIELDS,
            request: Some(RequestDef {
                method: Method::Post,
                path: "v1/one",
                json: Some(r#"{"id":{"@path":"$.payload.id"}}"#),
                ..RequestDef::BASE
            }),
            batch: Some(BatchDef {
                max_items: 100,
                max_bytes: Some(60),
                wait_ms: 100,
                keys: &[],
                item: None,
                request: BULK_REQUEST,
                item_errors: None,
            }),
            merges: None,
            hook: None,
        },
        ActionDef {
            id: "a3",
            key: "partial",
            name: "Partial",
            description: "",
            default_trigger: "",
            beyond_segment: true,
            fields: FIELDS,
            request: None,
            batch: Some(BatchDef {
                max_items: 10,
                max_bytes: None,
                wait_ms: 100,
                keys: &[],
                item: Some(r#"{"id":{"@path":"$.payload.id"}}"#),
                request: RequestDef {
                    method: Method::Post,
                    path: "v1/partial",
                    json: Some(r#"{"rows":{"@path":"$.items"}}"#),
                    ..RequestDef::BASE
                },
                item_errors: Some(ItemErrorsDef {
                    list: "errors",
                    index: "index",
                    message: Some("message"),
                }),
            }),
            merges: None,
            hook: None,
        },
    ],
    test_authentication: None,
    on_delete: None,
    deletions: DeletionsDef::NONE,
};

/// What the bulk server saw and how it behaves.
#[derive(Default)]
struct Bulk {
    /// The ids of every request's rows, in arrival order, with the answer's status.
    requests: Mutex<Vec<(Vec<String>, u16)>>,
    /// Answer 409 to this many requests first.
    busy: AtomicUsize,
    /// Answer 413 to a request with more rows than this.
    max_rows: usize,
}

async fn bulk_endpoint(State(bulk): State<Arc<Bulk>>, body: axum::body::Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let rows = body["rows"].as_array().cloned().unwrap_or_default();
    let ids: Vec<String> = rows
        .iter()
        .map(|row| row["id"].as_str().unwrap_or("?").to_owned())
        .collect();
    let status = if bulk
        .busy
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        409
    } else if rows.len() > bulk.max_rows {
        413
    } else if rows.iter().any(|row| row["bad"] == json!(true)) {
        400
    } else {
        202
    };
    let mut requests = bulk.requests.lock().expect("lock");
    let job = format!("job-{}", requests.len());
    requests.push((ids, status));
    let body = match status {
        202 => json!({"job_id": job, "status": "queued"}),
        400 => json!({"error": "the batch holds an invalid row"}),
        409 => json!({"error": "a job is running"}),
        _ => json!({"error": "too many rows"}),
    };
    (
        StatusCode::from_u16(status).expect("valid"),
        axum::Json(body),
    )
        .into_response()
}

/// The statuses the bulk server answered, in order.
fn statuses(bulk: &Bulk) -> Vec<u16> {
    let requests = bulk.requests.lock().expect("lock");
    requests.iter().map(|(_, status)| *status).collect()
}

async fn start(bulk: Bulk) -> (SocketAddr, Arc<Bulk>) {
    let bulk = Arc::new(bulk);
    let router = Router::new()
        .route("/v1/bulk", post(bulk_endpoint))
        .route(
            "/v1/partial",
            post(|| async {
                // The second row refused, and an index outside the batch that must be ignored.
                (
                    StatusCode::MULTI_STATUS,
                    axum::Json(json!({"errors": [
                        {"index": 1, "message": "email is not valid"},
                        {"index": 9, "message": "no such row"},
                    ]})),
                )
            }),
        )
        .with_state(Arc::clone(&bulk));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await.expect("server") });
    (addr, bulk)
}

fn instance(addr: SocketAddr, mappings: &[MappingConfig]) -> Arc<Instance> {
    let dest = Arc::new(CompiledDestination::new(&BULK).expect("the definition compiles"));
    let settings = json!({ "endpoint": format!("http://{addr}/") });
    Arc::new(Instance::new(dest, &settings, mappings).expect("the instance builds"))
}

fn rows_mapping() -> MappingConfig {
    MappingConfig {
        name: "rows".to_owned(),
        trigger: r#"type = "track""#.to_owned(),
        action_key: "bulkRows".to_owned(),
        mapping: json!({
            "id": {"@path": "$.properties.id"},
            "group": {"@path": "$.properties.group"},
            "bad": {"@path": "$.properties.bad"},
        }),
        enabled: true,
    }
}

fn client(max_attempts: u32) -> Arc<DeliveryClient> {
    Arc::new(
        DeliveryClient::new(DeliveryConfig {
            max_attempts,
            backoff_base: Duration::from_millis(1),
            backoff_cap: Duration::from_millis(2),
            busy_poll: Duration::from_millis(20),
            ..DeliveryConfig::default()
        })
        .expect("client"),
    )
}

/// The batch entry an event makes.
fn entry(instance: &Instance, properties: Value) -> BatchItem {
    let event = json!({"type": "track", "event": "Row", "properties": properties});
    let mut outcomes = instance.dispatch(&event);
    assert_eq!(outcomes.len(), 1);
    match outcomes.remove(0).outcome {
        Outcome::Batch(item) => item,
        other => panic!("expected a batch entry, got {other:?}"),
    }
}

async fn submit_all(batcher: &Batcher, items: Vec<BatchItem>) -> Vec<ItemResult> {
    let handles: Vec<_> = items
        .into_iter()
        .map(|item| {
            let batcher = batcher.clone();
            tokio::spawn(async move { batcher.submit(item).await })
        })
        .collect();
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.expect("submission"));
    }
    results
}

#[tokio::test]
async fn entries_are_gathered_by_size_and_batch_key() {
    let (addr, bulk) = start(Bulk {
        max_rows: 100,
        ..Bulk::default()
    })
    .await;
    let instance = instance(addr, &[rows_mapping()]);
    let batcher = Batcher::spawn(Arc::clone(&instance), client(1));
    let mut items = Vec::new();
    for n in 0..6 {
        items.push(entry(
            &instance,
            json!({"id": format!("a{n}"), "group": "A"}),
        ));
    }
    for n in 0..2 {
        items.push(entry(
            &instance,
            json!({"id": format!("b{n}"), "group": "B"}),
        ));
    }
    let results = submit_all(&batcher, items).await;
    for result in &results {
        assert_eq!(result.outcome.verdict, Verdict::Delivered, "{result:?}");
        assert!(
            result
                .response_id
                .as_deref()
                .is_some_and(|id| id.starts_with("job-"))
        );
    }
    let mut sizes: Vec<(usize, bool)> = bulk
        .requests
        .lock()
        .expect("lock")
        .iter()
        .map(|(ids, _)| (ids.len(), ids.iter().all(|id| id.starts_with('a'))))
        .collect();
    sizes.sort();
    // Six A entries make a full batch of four and a due one of two; B's two never join A's.
    assert_eq!(sizes, vec![(2, false), (2, true), (4, true)]);
    assert_eq!(results[0].batch_len, 4);
}

#[tokio::test]
async fn a_lone_entry_is_sent_when_its_batch_is_due() {
    let (addr, bulk) = start(Bulk {
        max_rows: 100,
        ..Bulk::default()
    })
    .await;
    let instance = instance(addr, &[rows_mapping()]);
    let batcher = Batcher::spawn(Arc::clone(&instance), client(1));
    let started = Instant::now();
    let result = batcher
        .submit(entry(&instance, json!({"id": "solo", "group": "A"})))
        .await;
    assert_eq!(result.outcome.verdict, Verdict::Delivered);
    assert_eq!(result.batch_len, 1);
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "it waited to fill"
    );
    assert_eq!(bulk.requests.lock().expect("lock").len(), 1);
}

#[tokio::test]
async fn a_400_naming_no_row_is_narrowed_down_to_the_bad_entry() {
    let (addr, bulk) = start(Bulk {
        max_rows: 100,
        ..Bulk::default()
    })
    .await;
    let instance = instance(addr, &[rows_mapping()]);
    let mut entries = Vec::new();
    for n in 0..16 {
        let bad = n == 11;
        entries.push(entry(&instance, json!({"id": format!("r{n}"), "bad": bad})).entry);
    }
    let results = deliver_batch(&instance, &client(1), 0, entries).await;
    for (n, result) in results.iter().enumerate() {
        if n == 11 {
            assert_eq!(result.outcome.verdict, Verdict::Failed);
            assert_eq!(result.outcome.status, Some(400));
            assert_eq!(result.batch_len, 1, "the bad entry ends alone");
        } else {
            assert_eq!(result.outcome.verdict, Verdict::Delivered, "entry {n}");
        }
    }
    let requests = bulk.requests.lock().expect("lock");
    let delivered: Vec<&String> = requests
        .iter()
        .filter(|(_, status)| *status == 202)
        .flat_map(|(ids, _)| ids)
        .collect();
    assert_eq!(delivered.len(), 15, "every good row once: {requests:?}");
    // 16 → 8 → 4 → 2 → 1: one failed request per level plus the good halves.
    assert_eq!(requests.len(), 9, "{requests:?}");
}

#[tokio::test]
async fn a_413_splits_the_batch_until_it_fits() {
    let (addr, bulk) = start(Bulk {
        max_rows: 3,
        ..Bulk::default()
    })
    .await;
    let instance = instance(addr, &[rows_mapping()]);
    let entries: Vec<Value> = (0..8)
        .map(|n| entry(&instance, json!({"id": format!("r{n}")})).entry)
        .collect();
    let results = deliver_batch(&instance, &client(1), 0, entries).await;
    assert!(
        results.iter().all(|r| r.outcome.is_delivered()),
        "{results:?}"
    );
    assert!(results.iter().all(|r| r.batch_len == 2));
    let statuses = statuses(&bulk);
    assert_eq!(statuses, vec![413, 413, 202, 202, 413, 202, 202]);
}

#[tokio::test]
async fn busy_answers_wait_without_spending_attempts() {
    let (addr, bulk) = start(Bulk {
        max_rows: 100,
        busy: AtomicUsize::new(3),
        ..Bulk::default()
    })
    .await;
    let instance = instance(addr, &[rows_mapping()]);
    let entries = vec![entry(&instance, json!({"id": "r0"})).entry];
    // One attempt allowed: three 409s do not use it up.
    let results = deliver_batch(&instance, &client(1), 0, entries).await;
    assert_eq!(
        results[0].outcome.verdict,
        Verdict::Delivered,
        "{results:?}"
    );
    assert_eq!(results[0].response_id.as_deref(), Some("job-3"));
    let statuses = statuses(&bulk);
    assert_eq!(statuses, vec![409, 409, 409, 202]);
}

#[tokio::test]
async fn enable_batching_chooses_the_form_and_max_bytes_cuts_batches() {
    let (addr, bulk) = start(Bulk {
        max_rows: 100,
        ..Bulk::default()
    })
    .await;
    let mapping = MappingConfig {
        name: "switched".to_owned(),
        trigger: r#"type = "track""#.to_owned(),
        action_key: "switched".to_owned(),
        mapping: json!({
            "id": {"@path": "$.properties.id"},
            "enable_batching": {"@path": "$.properties.batch"},
        }),
        enabled: true,
    };
    let instance = instance(addr, &[mapping]);
    let event = |id: &str, batch: bool| json!({"type": "track", "event": "Row", "properties": {"id": id, "batch": batch}});
    let single = instance.dispatch(&event("one", false));
    match &single[0].outcome {
        Outcome::Request(request) => {
            assert!(request.url.ends_with("/v1/one"), "{}", request.url);
            assert_eq!(request.json, Some(json!({"id": "one"})));
        }
        other => panic!("expected a single request, got {other:?}"),
    }
    // Each entry is {"id":"rN","enable_batching":true}, 34 bytes; with the envelope
    // {"rows":[]} (11 bytes) a 60-byte batch holds one entry.
    let items: Vec<BatchItem> = (0..3)
        .map(|n| {
            match instance
                .dispatch(&event(&format!("r{n}"), true))
                .remove(0)
                .outcome
            {
                Outcome::Batch(item) => item,
                other => panic!("expected a batch entry, got {other:?}"),
            }
        })
        .collect();
    assert_eq!(items[0].bytes, 34);
    let batcher = Batcher::spawn(Arc::clone(&instance), client(1));
    let results = submit_all(&batcher, items).await;
    assert!(
        results
            .iter()
            .all(|r| r.outcome.is_delivered() && r.batch_len == 1)
    );
    assert_eq!(bulk.requests.lock().expect("lock").len(), 3);
}

#[tokio::test]
async fn entries_an_answer_lists_as_refused_fail_and_the_others_are_delivered() {
    let (addr, _bulk) = start(Bulk {
        max_rows: 100,
        ..Bulk::default()
    })
    .await;
    let mapping = MappingConfig {
        name: "partial".to_owned(),
        trigger: r#"type = "track""#.to_owned(),
        action_key: "partial".to_owned(),
        mapping: json!({"id": {"@path": "$.properties.id"}}),
        enabled: true,
    };
    let instance = instance(addr, &[mapping]);
    let entries: Vec<Value> = (0..3)
        .map(|n| entry(&instance, json!({"id": format!("r{n}")})).entry)
        .collect();
    let results = deliver_batch(&instance, &client(1), 2, entries).await;
    assert!(results[0].outcome.is_delivered());
    assert!(results[2].outcome.is_delivered());
    assert_eq!(results[1].outcome.verdict, Verdict::Failed);
    assert_eq!(results[1].outcome.status, Some(207));
    assert_eq!(
        results[1].outcome.reason.as_deref(),
        Some("the destination refused this entry: email is not valid")
    );
}
