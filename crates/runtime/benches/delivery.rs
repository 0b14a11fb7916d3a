//! Delivery throughput, in requests per second, against a local axum server that answers 202.
//!
//! Rate limits are off, so the numbers measure the client itself: request preparation, the
//! concurrency bound, one pooled keep-alive connection per slot, and outcome classification.
//! `rate_limiter/acquire` measures the bookkeeping cost of a limited key that never waits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actionkit_runtime::delivery::{DeliveryClient, DeliveryConfig, RateLimit, RateLimiter};
use actionkit_runtime::request::{Method, Request};
use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;

fn start_server(rt: &tokio::runtime::Runtime) -> SocketAddr {
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the bench server");
        let addr = listener.local_addr().expect("bench server address");
        let router = Router::new().route("/v1/track", post(|| async { StatusCode::ACCEPTED }));
        tokio::spawn(async move {
            axum::serve(listener, router).await.expect("bench server");
        });
        addr
    })
}

fn track_request(addr: SocketAddr) -> Request {
    Request {
        method: Method::Post,
        url: format!("http://{addr}/v1/track"),
        headers: vec![
            (
                "authorization".to_string(),
                "Token bench-key-0123456789".to_string(),
            ),
            ("x-api-version".to_string(), "2020-09-22".to_string()),
        ],
        json: Some(json!({
            "user_id": "user-42",
            "event_name": "Order Completed",
            "metadata": {"order_id": "o-1001", "total": 99.5, "currency": "EUR"},
        })),
        rate_limit_key: Some("track".to_string()),
        busy_statuses: &[],
        response_id: None,
        redactions: Default::default(),
        signer: None,
    }
}

fn delivery_throughput(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let addr = start_server(&rt);
    let request = Arc::new(track_request(addr));

    let mut group = c.benchmark_group("delivery");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));
    for concurrency in [1usize, 8, 32] {
        let client = Arc::new(
            DeliveryClient::new(DeliveryConfig {
                concurrency,
                ..DeliveryConfig::default()
            })
            .expect("bench config"),
        );
        group.bench_function(format!("send_202/concurrency_{concurrency}"), |b| {
            b.iter_custom(|iters| {
                let client = Arc::clone(&client);
                let request = Arc::clone(&request);
                rt.block_on(async move {
                    let next = Arc::new(AtomicU64::new(0));
                    let start = Instant::now();
                    let mut workers = tokio::task::JoinSet::new();
                    for _ in 0..concurrency {
                        let (client, request, next) =
                            (Arc::clone(&client), Arc::clone(&request), Arc::clone(&next));
                        workers.spawn(async move {
                            while next.fetch_add(1, Ordering::Relaxed) < iters {
                                let res = client.send(&request).await;
                                assert!(res.is_delivered(), "bench request failed: {res:?}");
                            }
                        });
                    }
                    workers.join_all().await;
                    start.elapsed()
                })
            });
        });
    }
    group.finish();
}

fn rate_limiter_overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // A limit so high it never waits: only the bookkeeping is measured.
    let limiter = RateLimiter::new(&[RateLimit::new("track", 1_000, Duration::from_nanos(1))])
        .expect("bench limits");
    let mut group = c.benchmark_group("rate_limiter");
    group.throughput(Throughput::Elements(1));
    group.bench_function("acquire", |b| {
        b.iter(|| rt.block_on(limiter.acquire("track")));
    });
    group.finish();
}

criterion_group!(benches, delivery_throughput, rate_limiter_overhead);
criterion_main!(benches);
