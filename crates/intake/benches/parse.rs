//! Throughput of the request parser on a realistic `/v1/batch` body: 100 events of about 1 KB.

use actionkit_intake::{IntakeConfig, PathKind, RequestMeta, parse_request};
use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use std::hint::black_box;
use std::io::Write;

/// One event shaped like what analytics-node sends, about 1 KB once serialised.
fn event(idx: usize) -> serde_json::Value {
    let kind = ["track", "identify", "page", "group"][idx % 4];
    json!({
        "type": kind,
        "event": "Order Completed",
        "userId": format!("user-{idx:06}"),
        "anonymousId": "0f6c1f2e-7d4b-4a59-9d3e-2a1b5c6d7e8f",
        "groupId": "acme-inc",
        "messageId": format!("node-{idx}-5f0c1b6e-0e7c-4d0e-a0e5-ff1f5a1b2c3d"),
        "timestamp": "2024-05-01T11:59:58.123Z",
        "properties": {
            "order_id": format!("50314b8e9bcf000000{idx:06}"),
            "total": 27.5, "revenue": 25.0, "shipping": 3, "tax": 2, "discount": 2.5,
            "coupon": "hasbros", "currency": "USD",
            "products": [
                {"product_id": "507f1f77bcf86cd799439011", "sku": "45790-32", "name": "Monopoly: 3rd Edition", "price": 19, "quantity": 1, "category": "Games"},
                {"product_id": "505bd76785ebb509fc183733", "sku": "46493-32", "name": "Uno Card Game", "price": 3, "quantity": 2, "category": "Games"}
            ]
        },
        "traits": {"email": "peter@example.com", "name": "Peter Gibbons", "plan": "premium", "logins": 5},
        "context": {
            "ip": "8.8.8.8",
            "locale": "en-US",
            "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
            "page": {"path": "/checkout", "url": "https://shop.example.com/checkout", "title": "Checkout", "referrer": "https://shop.example.com/cart"}
        },
        "integrations": {"All": true, "Salesforce": false}
    })
}

fn batch_body() -> Vec<u8> {
    let events: Vec<_> = (0..100).map(event).collect();
    serde_json::to_vec(&json!({
        "batch": events,
        "context": {"library": {"name": "analytics-node", "version": "2.1.0"}},
        "sentAt": "2024-05-01T11:59:59.000Z",
        "writeKey": "wk-bench-0123456789"
    }))
    .unwrap_or_default()
}

fn bench(c: &mut Criterion) {
    let cfg = match IntakeConfig::new([("bench", "wk-bench-0123456789"), ("other", "wk-other")]) {
        Ok(cfg) => cfg,
        Err(e) => panic!("bench config: {e}"),
    };
    let body = batch_body();
    let meta = RequestMeta {
        content_type: Some(b"application/json"),
        ..Default::default()
    };
    report_cpu_time(&body, &meta, &cfg);
    let mut group = c.benchmark_group("parse_request");
    group.throughput(Throughput::Elements(100));
    eprintln!("batch body: {} bytes for 100 events", body.len());
    group.bench_function("batch_100x1KB", |b| {
        b.iter(|| {
            let acc = parse_request(PathKind::Batch, &meta, black_box(&body), Utc::now(), &cfg);
            assert!(matches!(&acc, Ok(a) if a.events.len() == 100));
            acc
        })
    });
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = enc.write_all(&body);
    let zipped = enc.finish().unwrap_or_default();
    let gz_meta = RequestMeta {
        content_encoding: Some(b"gzip"),
        ..meta
    };
    group.bench_function("batch_100x1KB_gzip", |b| {
        b.iter(|| {
            parse_request(
                PathKind::Batch,
                &gz_meta,
                black_box(&zipped),
                Utc::now(),
                &cfg,
            )
        })
    });
    group.finish();
}

/// Process CPU time (user + system) in seconds, from /proc (Linux only; zero elsewhere).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of the stat line (utime, stime) in clock ticks of 1/100 s.
    (ticks(11) + ticks(12)) / 100.0
}

/// Prints CPU time per batch, which, unlike criterion's wall time, holds on a busy machine.
fn report_cpu_time(body: &[u8], meta: &RequestMeta<'_>, cfg: &IntakeConfig) {
    let rounds = 1000;
    let start = cpu_seconds();
    for _ in 0..rounds {
        black_box(parse_request(PathKind::Batch, meta, black_box(body), Utc::now(), cfg).ok());
    }
    let per_batch = (cpu_seconds() - start) / f64::from(rounds);
    if per_batch > 0.0 {
        eprintln!(
            "cpu time: {:.3} ms per 100-event batch = {:.0} events/s per core",
            per_batch * 1e3,
            100.0 / per_batch
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
