//! The delivery client against real HTTP servers on 127.0.0.1.
//!
//! These tests do IO, so they run on real time with millisecond backoffs; timing-sensitive logic
//! (backoff, rate limits, `Retry-After` scheduling) is covered under paused time in
//! `delivery_units.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actionkit_runtime::delivery::{
    DEFAULT_USER_AGENT, DeliveryClient, DeliveryConfig, FinalOutcome, Outcome, RateLimit, Verdict,
};
use actionkit_runtime::request::{Method, Request};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::serve::ListenerExt;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

const SECRET: &str = "up_live_7f3a9c1e5b2d8046";

/// Starts `router` on an ephemeral port and returns its address.
async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("server");
    });
    addr
}

/// The scripted server's state: the request count, the statuses and the extra headers.
type ScriptState = (
    Arc<AtomicUsize>,
    Arc<Vec<u16>>,
    Arc<Vec<(&'static str, &'static str)>>,
);

/// Arrival tags and times seen by a server.
type Arrivals = Arc<std::sync::Mutex<Vec<(String, Instant)>>>;

/// A server answering each request with the next status of `statuses` (the last one repeats),
/// counting requests. `extra` headers go on every response.
async fn scripted(
    statuses: Vec<u16>,
    extra: Vec<(&'static str, &'static str)>,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let state = (Arc::clone(&hits), Arc::new(statuses), Arc::new(extra));
    let router = Router::new()
        .route(
            "/{*path}",
            any(
                |State((hits, statuses, extra)): State<ScriptState>| async move {
                    let idx = hits.fetch_add(1, Ordering::SeqCst);
                    let code = statuses[idx.min(statuses.len() - 1)];
                    let mut response = (
                        StatusCode::from_u16(code).expect("valid"),
                        format!("answer {idx}"),
                    )
                        .into_response();
                    for (name, value) in extra.iter() {
                        response
                            .headers_mut()
                            .insert(*name, value.parse().expect("valid header"));
                    }
                    response
                },
            ),
        )
        .with_state(state);
    (serve(router).await, hits)
}

/// Quick retries so real-time tests stay fast.
fn fast_config() -> DeliveryConfig {
    DeliveryConfig {
        timeout: Duration::from_secs(5),
        max_attempts: 4,
        max_elapsed: Duration::from_secs(30),
        backoff_base: Duration::from_millis(2),
        backoff_cap: Duration::from_millis(10),
        jitter_seed: Some(11),
        ..DeliveryConfig::default()
    }
}

fn client(config: DeliveryConfig) -> DeliveryClient {
    DeliveryClient::new(config).expect("valid config")
}

fn request(url: String) -> Request {
    Request {
        method: Method::Post,
        url,
        headers: vec![
            ("authorization".to_string(), format!("Token {SECRET}")),
            ("x-api-version".to_string(), "2020-09-22".to_string()),
        ],
        json: Some(json!({"user_id": "u1", "metadata": {"plan": "pro"}})),
        rate_limit_key: None,
        busy_statuses: &[],
        response_id: None,
        redactions: Default::default(),
        signer: None,
    }
}

/// Asserts the API key appears nowhere in the outcome: reasons, bodies, log and Debug output.
fn assert_no_secret(res: &FinalOutcome) {
    let debug = format!("{res:?}");
    assert!(!debug.contains(SECRET), "secret leaked: {debug}");
    assert!(
        !debug.contains("7f3a9c1e"),
        "part of the secret leaked: {debug}"
    );
}

#[tokio::test]
async fn two_503s_then_202_is_delivered_after_three_attempts() {
    let (addr, hits) = scripted(vec![503, 503, 202], vec![]).await;
    let res = client(fast_config())
        .send(&request(format!("http://{addr}/v1/identify")))
        .await;
    assert_eq!(res.verdict, Verdict::Delivered, "{res:?}");
    assert_eq!(res.attempts, 3);
    assert_eq!(res.status, Some(202));
    assert_eq!(res.body.as_deref(), Some("answer 2"));
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    let statuses: Vec<Option<u16>> = res.log.iter().map(|r| r.outcome.status()).collect();
    assert_eq!(statuses, vec![Some(503), Some(503), Some(202)]);
    assert_no_secret(&res);
}

#[tokio::test]
async fn final_statuses_are_not_retried() {
    for code in [400, 401, 403, 404, 409, 413, 422, 501] {
        let (addr, hits) = scripted(vec![code, 202], vec![]).await;
        let res = client(fast_config())
            .send(&request(format!("http://{addr}/v1/track")))
            .await;
        assert_eq!(res.verdict, Verdict::Failed, "{code}: {res:?}");
        assert_eq!(res.attempts, 1, "{code}");
        assert_eq!(res.status, Some(code));
        assert_eq!(hits.load(Ordering::SeqCst), 1, "{code}");
        let reason = res.reason.clone().unwrap_or_default();
        assert!(reason.ends_with(": answer 0"), "{code}: {reason}");
    }
}

#[tokio::test]
async fn statuses_408_423_429_and_5xx_are_retried() {
    for code in [408, 423, 429, 500, 502, 503, 504] {
        let (addr, hits) = scripted(vec![code, 202], vec![]).await;
        let res = client(fast_config())
            .send(&request(format!("http://{addr}/v1/track")))
            .await;
        assert_eq!(res.verdict, Verdict::Delivered, "{code}: {res:?}");
        assert_eq!(res.attempts, 2, "{code}");
        assert_eq!(res.log[0].outcome.status(), Some(code));
        assert_eq!(hits.load(Ordering::SeqCst), 2, "{code}");
    }
}

#[tokio::test]
async fn a_persistent_503_spends_the_budget() {
    let (addr, hits) = scripted(vec![503], vec![]).await;
    let res = client(fast_config())
        .send(&request(format!("http://{addr}/v1/track")))
        .await;
    assert_eq!(res.verdict, Verdict::RetriesExhausted);
    assert_eq!(res.attempts, 4);
    assert_eq!(hits.load(Ordering::SeqCst), 4);
    assert_eq!(res.status, Some(503));
    assert_eq!(
        res.reason.as_deref(),
        Some("gave up after 4 attempts: Service Unavailable: answer 3")
    );
}

#[tokio::test]
async fn retry_after_is_honoured_and_pauses_the_rate_limit_key() {
    // The first request gets a 429 asking for one second; later ones succeed.
    let arrivals: Arrivals = Arc::default();
    let router = Router::new()
        .route(
            "/{*path}",
            any(
                |State(arrivals): State<Arrivals>, headers: HeaderMap| async move {
                    let tag = headers
                        .get("x-tag")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    let mut arrivals = arrivals.lock().expect("lock");
                    arrivals.push((tag, Instant::now()));
                    if arrivals.len() == 1 {
                        (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")]).into_response()
                    } else {
                        StatusCode::ACCEPTED.into_response()
                    }
                },
            ),
        )
        .with_state(Arc::clone(&arrivals));
    let addr = serve(router).await;
    let config = DeliveryConfig {
        rate_limits: vec![
            RateLimit::per_minute("identify", 600),
            RateLimit::per_minute("track", 600),
        ],
        ..fast_config()
    };
    let client = Arc::new(client(config));
    let tagged = |tag: &str, key: &str| {
        let mut req = request(format!("http://{addr}/v1/{key}"));
        req.headers.push(("x-tag".to_string(), tag.to_string()));
        req.rate_limit_key = Some(key.to_string());
        req
    };

    let first = {
        let client = Arc::clone(&client);
        let req = tagged("a", "identify");
        tokio::spawn(async move { client.send(&req).await })
    };
    // While "identify" is paused by the 429, another identify waits; a track request does not.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (req_b, req_c) = (tagged("b", "identify"), tagged("c", "track"));
    let (second, third) = tokio::join!(client.send(&req_b), client.send(&req_c));
    let first = first.await.expect("first request task");
    for res in [&first, &second, &third] {
        assert_eq!(res.verdict, Verdict::Delivered, "{res:?}");
    }
    assert_eq!(first.attempts, 2);
    assert_eq!(first.log[0].outcome.status(), Some(429));
    assert_eq!(first.log[0].next_delay, Some(Duration::from_secs(1)));

    let arrivals = arrivals.lock().expect("lock").clone();
    let at = |tag: &str, nth: usize| {
        arrivals
            .iter()
            .filter(|(t, _)| t == tag)
            .nth(nth)
            .map(|(_, at)| *at)
            .expect("request arrived")
    };
    assert!(at("a", 1) - at("a", 0) >= Duration::from_secs(1));
    // Both identify retries wait out the same pause; track goes first.
    assert!(at("b", 0) >= at("a", 0) + Duration::from_millis(900));
    assert!(at("c", 0) < at("b", 0));
}

#[tokio::test]
async fn retry_after_is_capped_by_the_config() {
    let (addr, _hits) = scripted(vec![503, 202], vec![("retry-after", "3600")]).await;
    let config = DeliveryConfig {
        max_retry_after: Duration::from_millis(50),
        ..fast_config()
    };
    let res = client(config)
        .send(&request(format!("http://{addr}/v1/track")))
        .await;
    assert_eq!(res.verdict, Verdict::Delivered);
    assert_eq!(res.log[0].next_delay, Some(Duration::from_millis(50)));
}

#[tokio::test]
async fn a_refused_connection_is_retried_until_the_budget_is_spent() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let res = client(DeliveryConfig {
        max_attempts: 3,
        ..fast_config()
    })
    .send(&request(format!("http://127.0.0.1:{port}/v1/track")))
    .await;
    assert_eq!(res.verdict, Verdict::RetriesExhausted, "{res:?}");
    assert_eq!(res.attempts, 3);
    assert_eq!(res.status, None);
    for record in &res.log {
        let reason = record.outcome.reason().unwrap_or_default();
        assert!(record.outcome.is_retryable());
        assert!(reason.starts_with("connection failed"), "{reason}");
        assert!(!reason.contains(&port.to_string()), "{reason}");
    }
    assert_no_secret(&res);
}

#[tokio::test]
async fn a_dropped_connection_is_retried_until_the_budget_is_spent() {
    // A server that reads the request, then hangs up without answering.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            drop(socket);
        }
    });
    let res = client(DeliveryConfig {
        max_attempts: 3,
        ..fast_config()
    })
    .send(&request(format!("http://{addr}/v1/identify")))
    .await;
    assert_eq!(res.verdict, Verdict::RetriesExhausted, "{res:?}");
    assert_eq!(res.attempts, 3);
    assert!(accepted.load(Ordering::SeqCst) >= 3);
    assert!(res.log.iter().all(|r| r.outcome.is_retryable()));
    assert_no_secret(&res);
}

#[tokio::test]
async fn a_stalled_server_hits_the_per_attempt_timeout_and_is_retried() {
    let hits = Arc::new(AtomicUsize::new(0));
    let router = Router::new()
        .route(
            "/{*path}",
            any(|State(hits): State<Arc<AtomicUsize>>| async move {
                if hits.fetch_add(1, Ordering::SeqCst) == 0 {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                StatusCode::ACCEPTED
            }),
        )
        .with_state(Arc::clone(&hits));
    let addr = serve(router).await;
    let res = client(DeliveryConfig {
        timeout: Duration::from_millis(300),
        ..fast_config()
    })
    .send(&request(format!("http://{addr}/v1/identify")))
    .await;
    assert_eq!(res.verdict, Verdict::Delivered, "{res:?}");
    assert_eq!(res.attempts, 2);
    assert_eq!(
        res.log[0].outcome,
        Outcome::Retry {
            status: None,
            reason: "Request timed out after 300ms".to_string(),
            after: None,
        }
    );
    assert!(res.log[0].duration >= Duration::from_millis(300));

    // With every attempt stalling, the budget runs out.
    let (stall_addr, _) = {
        let router = Router::new().route(
            "/{*path}",
            any(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                StatusCode::ACCEPTED
            }),
        );
        (serve(router).await, ())
    };
    let res = client(DeliveryConfig {
        timeout: Duration::from_millis(100),
        max_attempts: 2,
        ..fast_config()
    })
    .send(&request(format!("http://{stall_addr}/v1/identify")))
    .await;
    assert_eq!(res.verdict, Verdict::RetriesExhausted);
    assert_eq!(
        res.reason.as_deref(),
        Some("gave up after 2 attempts: Request timed out after 100ms")
    );
}

#[tokio::test]
async fn in_flight_requests_never_exceed_the_concurrency_bound() {
    #[derive(Default)]
    struct Gauge {
        now: AtomicUsize,
        max: AtomicUsize,
    }
    let gauge = Arc::new(Gauge::default());
    let router = Router::new()
        .route(
            "/{*path}",
            any(|State(gauge): State<Arc<Gauge>>| async move {
                let now = gauge.now.fetch_add(1, Ordering::SeqCst) + 1;
                gauge.max.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                gauge.now.fetch_sub(1, Ordering::SeqCst);
                StatusCode::ACCEPTED
            }),
        )
        .with_state(Arc::clone(&gauge));
    let addr = serve(router).await;
    let client = Arc::new(client(DeliveryConfig {
        concurrency: 3,
        ..fast_config()
    }));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let client = Arc::clone(&client);
        let req = request(format!("http://{addr}/v1/track"));
        tasks.spawn(async move { client.send(&req).await });
    }
    for res in tasks.join_all().await {
        assert_eq!(res.verdict, Verdict::Delivered);
    }
    let max = gauge.max.load(Ordering::SeqCst);
    assert!(max <= 3, "{max} requests were in flight at once");
    // The bound is a bound, not a serialisation: the server did see parallel requests.
    assert!(max >= 2, "only {max} request(s) in flight at once");
}

#[tokio::test]
async fn headers_and_body_are_sent_as_built() {
    let router = Router::new().route(
        "/{*path}",
        any(
            |method: axum::http::Method, headers: HeaderMap, body: Bytes| async move {
                let mut seen: Vec<(String, String)> = headers
                    .iter()
                    .map(|(name, value)| {
                        (
                            name.as_str().to_string(),
                            value.to_str().unwrap_or("?").to_string(),
                        )
                    })
                    .collect();
                seen.retain(|(name, _)| name != "host" && name != "content-length");
                axum::Json(json!({
                    "method": method.as_str(),
                    "headers": seen,
                    "body": String::from_utf8_lossy(&body),
                }))
            },
        ),
    );
    let addr = serve(router).await;
    let client = client(fast_config());

    let mut req = request(format!("http://{addr}/v1/users"));
    req.method = Method::Delete;
    req.headers.push(("x-multi".to_string(), "one".to_string()));
    req.headers.push(("x-multi".to_string(), "two".to_string()));
    req.json = Some(json!({"users": ["u1", "u2"]}));
    let res = client.send(&req).await;
    assert_eq!(res.verdict, Verdict::Delivered, "{res:?}");
    let echo: Value = serde_json::from_str(res.body.as_deref().unwrap_or("")).expect("json echo");
    assert_eq!(echo["method"], "DELETE");
    assert_eq!(echo["body"], r#"{"users":["u1","u2"]}"#);
    let headers = echo["headers"].as_array().cloned().unwrap_or_default();
    let pairs: Vec<(String, String)> = headers
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().unwrap_or_default().to_string(),
                pair[1].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let expected = [
        ("authorization", format!("Token {SECRET}")),
        ("x-api-version", "2020-09-22".to_string()),
        ("x-multi", "one".to_string()),
        ("x-multi", "two".to_string()),
        ("user-agent", DEFAULT_USER_AGENT.to_string()),
        ("content-type", "application/json".to_string()),
    ];
    for (name, value) in &expected {
        assert!(
            pairs.iter().any(|(n, v)| n == name && v == value),
            "missing {name}: {pairs:?}"
        );
    }
    let multi: Vec<&str> = pairs
        .iter()
        .filter(|(n, _)| n == "x-multi")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(multi, vec!["one", "two"]);
    assert!(DEFAULT_USER_AGENT.starts_with("actionkit/"));

    // A request that sets its own user-agent and content-type keeps them, once each.
    let mut req = request(format!("http://{addr}/v1/track"));
    req.headers
        .push(("user-agent".to_string(), "custom/1.0".to_string()));
    req.headers.push((
        "content-type".to_string(),
        "application/json; charset=utf-8".to_string(),
    ));
    let res = client.send(&req).await;
    let echo: Value = serde_json::from_str(res.body.as_deref().unwrap_or("")).expect("json echo");
    let headers = echo["headers"].as_array().cloned().unwrap_or_default();
    let values = |name: &str| -> Vec<String> {
        headers
            .iter()
            .filter(|pair| pair[0] == name)
            .map(|pair| pair[1].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(values("user-agent"), vec!["custom/1.0"]);
    assert_eq!(
        values("content-type"),
        vec!["application/json; charset=utf-8"]
    );

    // A GET without a body sends no content-type.
    let mut req = request(format!("http://{addr}/v1/validate"));
    req.method = Method::Get;
    req.json = None;
    let res = client.send(&req).await;
    let echo: Value = serde_json::from_str(res.body.as_deref().unwrap_or("")).expect("json echo");
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["body"], "");
    let headers = echo["headers"].as_array().cloned().unwrap_or_default();
    assert!(!headers.iter().any(|pair| pair[0] == "content-type"));
}

#[tokio::test]
async fn credentials_never_appear_in_reasons() {
    // The server echoes the request's headers in its error bodies.
    let router = Router::new().route(
        "/{*path}",
        any(|axum::extract::Path(path): axum::extract::Path<String>, headers: HeaderMap| async move {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let key_only = auth.trim_start_matches("Token ").to_string();
            let code = if path.ends_with("401") {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let body = format!(
                r#"{{"errors":[{{"message":"invalid key {key_only}","header":"{auth}","version":"2020-09-22"}}]}}"#
            );
            Response::builder()
                .status(code)
                .body(axum::body::Body::from(body))
                .expect("response")
        }),
    );
    let addr = serve(router).await;
    let client = client(fast_config());

    let res = client.send(&request(format!("http://{addr}/v1/401"))).await;
    assert_eq!(res.verdict, Verdict::Failed);
    let reason = res.reason.clone().unwrap_or_default();
    assert!(reason.starts_with("Unauthorized: "), "{reason}");
    assert!(reason.contains("invalid key [redacted]"), "{reason}");
    assert!(reason.contains(r#""header":"[redacted]""#), "{reason}");
    // The API version is no secret: only credentials and what derives from secret settings are
    // scrubbed, so the rest of the answer stays readable.
    assert!(reason.contains("2020-09-22"), "{reason}");
    assert_no_secret(&res);

    let res = client.send(&request(format!("http://{addr}/v1/503"))).await;
    assert_eq!(res.verdict, Verdict::RetriesExhausted);
    assert_no_secret(&res);

    let once = client
        .send_once(&request(format!("http://{addr}/v1/503")))
        .await;
    let debug = format!("{once:?}");
    assert!(once.is_retryable());
    assert!(!debug.contains(SECRET), "{debug}");

    // A header value that cannot be sent is named by header, never by value.
    let mut req = request(format!("http://{addr}/v1/track"));
    req.headers[0].1 = format!("Token {SECRET}\nx");
    let res = client.send(&req).await;
    assert_eq!(res.verdict, Verdict::Failed);
    assert_eq!(res.attempts, 0);
    assert_eq!(
        res.reason.as_deref(),
        Some("invalid value for header \"authorization\"")
    );
    assert_no_secret(&res);
}

#[tokio::test]
async fn unusable_urls_fail_without_an_attempt() {
    let client = client(fast_config());
    let res = client.send(&request("v1/identify".to_string())).await;
    assert_eq!(res.verdict, Verdict::Failed);
    assert_eq!(res.attempts, 0);
    assert_eq!(
        res.reason.as_deref(),
        Some("invalid request url: relative URL without a base")
    );
    let res = client
        .send(&request("ftp://example.invalid/v1/identify".to_string()))
        .await;
    assert_eq!(
        res.reason.as_deref(),
        Some("invalid request url: unsupported scheme \"ftp\"")
    );
    let mut req = request("http://127.0.0.1:9/v1/identify".to_string());
    req.headers
        .push(("bad header".to_string(), "x".to_string()));
    let outcome = client.send_once(&req).await;
    assert_eq!(
        outcome,
        Outcome::Failed {
            status: None,
            reason: "invalid header name \"bad header\"".to_string(),
        }
    );
}

#[tokio::test]
async fn send_once_makes_exactly_one_attempt() {
    let (addr, hits) = scripted(vec![503, 202], vec![("retry-after", "7")]).await;
    let outcome = client(fast_config())
        .send_once(&request(format!("http://{addr}/v1/track")))
        .await;
    assert_eq!(
        outcome,
        Outcome::Retry {
            status: Some(503),
            reason: "Service Unavailable: answer 0".to_string(),
            after: Some(Duration::from_secs(7)),
        }
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn sequential_requests_reuse_one_keep_alive_connection() {
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&connections);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let listener = listener.tap_io(move |_io| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let router = Router::new().route("/{*path}", any(|| async { StatusCode::ACCEPTED }));
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("server");
    });
    let client = client(fast_config());
    for _ in 0..20 {
        let res = client
            .send(&request(format!("http://{addr}/v1/track")))
            .await;
        assert_eq!(res.verdict, Verdict::Delivered);
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[test]
fn invalid_configs_are_rejected_with_the_field_named() {
    let cases = [
        (
            DeliveryConfig {
                timeout: Duration::ZERO,
                ..DeliveryConfig::default()
            },
            "invalid delivery config: timeout must be longer than zero",
        ),
        (
            DeliveryConfig {
                max_attempts: 0,
                ..DeliveryConfig::default()
            },
            "invalid delivery config: max_attempts must be at least 1",
        ),
        (
            DeliveryConfig {
                backoff_base: Duration::from_secs(5),
                backoff_cap: Duration::from_secs(1),
                ..DeliveryConfig::default()
            },
            "invalid delivery config: backoff_base must not be longer than backoff_cap",
        ),
        (
            DeliveryConfig {
                rate_limits: vec![RateLimit::per_minute("track", 0)],
                ..DeliveryConfig::default()
            },
            "invalid delivery config: rate limit \"track\": max_requests must be at least 1",
        ),
    ];
    for (config, message) in cases {
        let error = DeliveryClient::new(config).expect_err("must be rejected");
        assert_eq!(error.to_string(), message);
    }
    let defaults = DeliveryConfig::default();
    assert_eq!(defaults.timeout, Duration::from_secs(10));
    assert!(defaults.rate_limits.is_empty());
    assert_eq!(defaults.user_agent, DEFAULT_USER_AGENT);
}

/// `send_attempt` is what a person's "send it for real" uses: one attempt, the answer's body
/// with the request's credentials scrubbed, and the instance's rate limit obeyed like every
/// delivery of the same client.
#[tokio::test]
async fn send_attempt_makes_one_attempt_scrubs_the_answer_and_waits_for_the_rate_limit() {
    // A destination that answers with what it was sent, credentials included.
    let router = Router::new().route(
        "/{*path}",
        any(|headers: HeaderMap| async move {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            (StatusCode::OK, format!("{{\"you_sent\": \"{auth}\"}}"))
        }),
    );
    let addr = serve(router).await;
    let client = client(fast_config());
    let outcome = client
        .send_attempt(&request(format!("http://{addr}/v1/identify")))
        .await;
    match &outcome {
        Outcome::Delivered {
            status: 200,
            body: Some(body),
        } => {
            assert!(!body.contains(SECRET), "{body}");
            assert!(body.contains("[redacted]"), "{body}");
        }
        other => panic!("expected a delivered answer with a body, got {other:?}"),
    }

    // A retryable answer is shown as it is, after one attempt.
    let (addr, hits) = scripted(vec![503, 202], Vec::new()).await;
    let outcome = client
        .send_attempt(&request(format!("http://{addr}/v1/track")))
        .await;
    assert_eq!(outcome.status(), Some(503));
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // A paused rate-limit key holds it back, as it holds back deliveries.
    let (addr, hits) = scripted(vec![202], Vec::new()).await;
    let client = Arc::new(client);
    client
        .rate_limiter()
        .pause("track", Duration::from_secs(600));
    let mut held = request(format!("http://{addr}/v1/track"));
    held.rate_limit_key = Some("track".to_owned());
    let task = {
        let client = Arc::clone(&client);
        tokio::spawn(async move { client.send_attempt(&held).await })
    };
    let waiting = || {
        client
            .rate_limiter()
            .stats()
            .iter()
            .any(|s| s.key == "track" && s.waiting == 1)
    };
    for _ in 0..500 {
        if waiting() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(waiting(), "the attempt waits for its key");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    assert!(!task.is_finished());
    task.abort();
}
