//! Benchmarks: evaluating Userpilot's default mappings (the catalog presets for Identify User,
//! Track Event and Identify Company) on realistic ~1.5 KB analytics.js events, against the baseline
//! of parsing and re-serialising the same event with serde_json.

use std::hint::black_box;

use actionkit_mapping::Mapping;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

/// The `userId` field shared by the identify and track presets.
fn user_id_mapping() -> Value {
    json!({"@if": {
        "exists": {"@path": "$.userId"},
        "then": {"@path": "$.userId"},
        "else": {"@path": "$.anonymousId"}
    }})
}

fn identify_mapping() -> Value {
    json!({
        "userId": user_id_mapping(),
        "createdAt": {"@path": "$.traits.createdAt"},
        "traits": {"@path": "$.traits"}
    })
}

fn track_mapping() -> Value {
    json!({
        "userId": user_id_mapping(),
        "name": {"@path": "$.event"},
        "properties": {"@path": "$.properties"}
    })
}

fn group_mapping() -> Value {
    json!({
        "groupId": {"@path": "$.groupId"},
        "createdAt": {"@path": "$.traits.createdAt"},
        "traits": {"@path": "$.traits"}
    })
}

/// The `context` object analytics.js attaches to every browser event.
fn context() -> Value {
    json!({
        "active": true,
        "app": {"name": "Acme Web", "version": "4.12.0", "build": "4120"},
        "campaign": {"name": "spring_launch", "source": "newsletter", "medium": "email", "term": "analytics", "content": "cta_button"},
        "ip": "203.0.113.42",
        "library": {"name": "analytics.js", "version": "next-1.70.0"},
        "locale": "en-US",
        "page": {
            "path": "/settings/billing",
            "referrer": "https://app.acme.example/dashboard",
            "search": "?tab=invoices",
            "title": "Billing - Acme",
            "url": "https://app.acme.example/settings/billing?tab=invoices"
        },
        "timezone": "Europe/Berlin",
        "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        "userAgentData": {"brands": [{"brand": "Chromium", "version": "124"}, {"brand": "Google Chrome", "version": "124"}], "mobile": false, "platform": "macOS"}
    })
}

fn identify_event() -> Value {
    json!({
        "anonymousId": "6f1c2b9e-8d4a-4f3e-9b1a-2c7d5e8f0a13",
        "context": context(),
        "integrations": {},
        "messageId": "ajs-next-1714056321934-7c0f2d4e-5b8a-4c1d-9e3f-0a6b2c8d4e1f",
        "originalTimestamp": "2024-04-25T14:45:21.934Z",
        "receivedAt": "2024-04-25T14:45:22.311Z",
        "sentAt": "2024-04-25T14:45:21.940Z",
        "timestamp": "2024-04-25T14:45:22.305Z",
        "traits": {
            "name": "Ada Lovelace",
            "email": "ada@acme.example",
            "createdAt": "2021-03-14T09:26:53.000Z",
            "plan": "enterprise",
            "role": "admin",
            "company": {"id": "acme-42", "name": "Acme Inc."},
            "logins": 128,
            "beta": true
        },
        "type": "identify",
        "userId": "user-8812",
        "version": 2
    })
}

fn track_event() -> Value {
    json!({
        "anonymousId": "6f1c2b9e-8d4a-4f3e-9b1a-2c7d5e8f0a13",
        "context": context(),
        "event": "Invoice Downloaded",
        "integrations": {},
        "messageId": "ajs-next-1714056329012-1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e",
        "originalTimestamp": "2024-04-25T14:45:29.012Z",
        "properties": {
            "invoice_id": "INV-2024-0419",
            "amount": 1249.5,
            "currency": "EUR",
            "format": "pdf",
            "line_items": 7,
            "paid": true
        },
        "receivedAt": "2024-04-25T14:45:29.402Z",
        "sentAt": "2024-04-25T14:45:29.020Z",
        "timestamp": "2024-04-25T14:45:29.394Z",
        "type": "track",
        "userId": "user-8812",
        "version": 2
    })
}

fn group_event() -> Value {
    json!({
        "anonymousId": "6f1c2b9e-8d4a-4f3e-9b1a-2c7d5e8f0a13",
        "context": context(),
        "groupId": "acme-42",
        "integrations": {},
        "messageId": "ajs-next-1714056335555-9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d",
        "originalTimestamp": "2024-04-25T14:45:35.555Z",
        "receivedAt": "2024-04-25T14:45:35.901Z",
        "sentAt": "2024-04-25T14:45:35.560Z",
        "timestamp": "2024-04-25T14:45:35.896Z",
        "traits": {
            "name": "Acme Inc.",
            "industry": "Manufacturing",
            "employees": 420,
            "plan": "enterprise",
            "createdAt": "2019-11-02T08:00:00.000Z",
            "website": "https://acme.example"
        },
        "type": "group",
        "userId": "user-8812",
        "version": 2
    })
}

fn bench(c: &mut Criterion) {
    let cases = [
        ("identify", identify_mapping(), identify_event()),
        ("track", track_mapping(), track_event()),
        ("group", group_mapping(), group_event()),
    ];
    for (name, raw_mapping, event) in cases {
        let text = serde_json::to_string(&event).unwrap_or_default();
        assert!(
            (1200..2000).contains(&text.len()),
            "{name} event is {} bytes, expected about 1.5 KB",
            text.len()
        );
        let mapping = match Mapping::compile(&raw_mapping) {
            Ok(m) => m,
            Err(e) => panic!("{name} mapping does not compile: {e}"),
        };
        let mut group = c.benchmark_group(name);
        group.bench_function("evaluate", |b| {
            b.iter(|| mapping.evaluate(black_box(&event)))
        });
        group.bench_function("serde_json_roundtrip", |b| {
            b.iter(|| {
                let v: Value = serde_json::from_str(black_box(&text)).unwrap_or_default();
                serde_json::to_string(&v).unwrap_or_default()
            })
        });
        group.finish();
    }
    c.bench_function("compile/identify", |b| {
        let raw = identify_mapping();
        b.iter(|| Mapping::compile(black_box(&raw)))
    });
    // `@liquid` is the one directive with an interpreter of its own, so it gets its own figures.
    let liquid = liquid_mapping();
    c.bench_function("compile/liquid", |b| {
        b.iter(|| Mapping::compile(black_box(&liquid)))
    });
    let compiled = match Mapping::compile(&liquid) {
        Ok(m) => m,
        Err(e) => panic!("liquid mapping does not compile: {e}"),
    };
    let event = track_event();
    c.bench_function("liquid/evaluate", |b| {
        b.iter(|| compiled.evaluate(black_box(&event)))
    });
}

/// A mapping that leans on `@liquid`: paths, filters with arguments, `assign` and `if`.
fn liquid_mapping() -> Value {
    json!({
        "title": {"@liquid": "{{ event | upcase }} by {{ userId | default: anonymousId }}"},
        "price": {"@liquid": "{{ properties.amount | times: 100 | round }}"},
        "label": {"@liquid": "{% assign n = properties.invoice_id | strip %}{% if n != blank %}{{ n | truncate: 12 }}{% else %}none{% endif %}"},
        "when": {"@liquid": "{{ timestamp | date: '%Y-%m-%d' }}"}
    })
}

criterion_group!(benches, bench);
criterion_main!(benches);
