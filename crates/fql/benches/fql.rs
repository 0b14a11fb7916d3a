//! Criterion benchmarks: matching the three preset triggers and one complex trigger against a
//! realistic track event of about 1.5 KB, and the cost of parsing each trigger.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

const PRESETS: [(&str, &str); 3] = [
    ("identify", r#"type = "identify""#),
    ("track", r#"type = "track""#),
    ("group", r#"type = "group""#),
];

const COMPLEX: &str = r#"type = "track" and (event = "Order Completed" or match(event, "Checkout*")) and properties.total >= 100 and contains(context.page.url, "/checkout") and properties.products.0.sku != null and !contains(context.userAgent, "bot") and (traits.plan = "pro" or properties.coupon = null)"#;

fn track_event() -> Value {
    json!({
        "type": "track",
        "event": "Order Completed",
        "messageId": "ajs-next-1712345678901-3f1c2a7b-4d5e-4f60-9a8b-7c6d5e4f3a2b",
        "anonymousId": "6f1c2a7b-4d5e-4f60-9a8b-7c6d5e4f3a2b",
        "userId": "user_8f3a2b1c",
        "timestamp": "2024-04-05T12:34:56.789Z",
        "sentAt": "2024-04-05T12:34:57.001Z",
        "receivedAt": "2024-04-05T12:34:57.120Z",
        "properties": {
            "checkout_id": "fksdjfsdjfisjf9sdfjsd9f",
            "order_id": "50314b8e9bcf000000000000",
            "affiliation": "Google Store",
            "total": 27.5,
            "subtotal": 22.5,
            "revenue": 25.0,
            "shipping": 3,
            "tax": 2,
            "discount": 2.5,
            "currency": "USD",
            "products": [
                {"product_id": "507f1f77bcf86cd799439011", "sku": "45790-32", "name": "Monopoly: 3rd Edition",
                 "price": 19, "quantity": 1, "category": "Games", "url": "https://www.example.com/product/path",
                 "image_url": "https://www.example.com/product/path.jpg"},
                {"product_id": "505bd76785ebb509fc183733", "sku": "46493-32", "name": "Uno Card Game",
                 "price": 3, "quantity": 2, "category": "Games"}
            ]
        },
        "context": {
            "ip": "203.0.113.42",
            "locale": "en-US",
            "library": {"name": "analytics.js", "version": "next-1.64.0"},
            "page": {
                "path": "/checkout/complete",
                "referrer": "https://www.example.com/cart",
                "search": "?step=3",
                "title": "Checkout complete",
                "url": "https://www.example.com/checkout/complete?step=3"
            },
            "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36",
            "campaign": {"name": "spring_sale", "source": "newsletter", "medium": "email"},
            "traits": {"email": "jane@example.com", "plan": "pro"}
        },
        "integrations": {"All": true}
    })
}

fn bench_matching(c: &mut Criterion) {
    let event = track_event();
    let size = serde_json::to_string(&event).map(|s| s.len()).unwrap_or(0);
    let mut group = c.benchmark_group(format!("match_track_event_{size}_bytes"));
    for (label, source) in PRESETS.iter().copied().chain([("complex", COMPLEX)]) {
        let trigger = actionkit_fql::parse(source).expect("benchmark triggers parse");
        group.bench_function(label, |b| {
            b.iter(|| black_box(&trigger).matches(black_box(&event)))
        });
    }
    group.finish();
}

fn bench_parsing(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    for (label, source) in [("preset_track", PRESETS[1].1), ("complex", COMPLEX)] {
        group.bench_function(label, |b| {
            b.iter(|| actionkit_fql::parse(black_box(source)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_matching, bench_parsing);
criterion_main!(benches);
