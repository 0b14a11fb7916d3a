//! HTTP tests: a real intake server on 127.0.0.1 with an in-memory sink standing in for the queue.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actionkit_intake::{
    BoxFuture, EventSink, IntakeConfig, IntakeState, MetricsRegistry, NormalizedEvent, NotNow,
    SinkError, router,
};
use base64::Engine as _;
use flate2::{Compression, write::GzEncoder};
use serde_json::{Value, json};
use tokio::sync::Notify;

/// How the test sink answers.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Store,
    Full,
    Fail,
}

/// Records what it is given, or refuses it, as told.
struct TestSink {
    stored: Mutex<Vec<NormalizedEvent>>,
    mode: Mutex<Mode>,
    /// What [`EventSink::readiness`] answers.
    ready: Mutex<Result<(), NotNow>>,
    /// What [`EventSink::health`] answers.
    healthy: Mutex<Result<(), NotNow>>,
    /// When set, each enqueue waits for a notification before answering.
    gate: Option<Arc<Notify>>,
    /// How many enqueues have reached the gate.
    parked: AtomicUsize,
    /// What [`EventSink::full_hint`] answers.
    hint: Mutex<Option<u32>>,
}

impl TestSink {
    fn new(mode: Mode) -> Arc<Self> {
        Arc::new(Self {
            stored: Mutex::new(Vec::new()),
            mode: Mutex::new(mode),
            ready: Mutex::new(Ok(())),
            healthy: Mutex::new(Ok(())),
            gate: None,
            parked: AtomicUsize::new(0),
            hint: Mutex::new(None),
        })
    }

    fn stored(&self) -> Vec<NormalizedEvent> {
        self.stored.lock().unwrap().clone()
    }
}

impl EventSink for TestSink {
    fn enqueue(&self, events: Vec<NormalizedEvent>) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            if let Some(gate) = &self.gate {
                let notified = gate.notified();
                self.parked.fetch_add(1, Ordering::SeqCst);
                notified.await;
            }
            let mode = *self.mode.lock().unwrap();
            match mode {
                Mode::Store => {
                    self.stored.lock().unwrap().extend(events);
                    Ok(())
                }
                Mode::Full => Err(SinkError::Full {
                    retry_after_secs: 7,
                }),
                Mode::Fail => Err(SinkError::Failed {
                    reason: "disk on fire".to_owned(),
                }),
            }
        })
    }

    fn readiness(&self) -> Result<(), NotNow> {
        self.ready.lock().unwrap().clone()
    }

    fn health(&self) -> Result<(), NotNow> {
        self.healthy.lock().unwrap().clone()
    }

    fn full_hint(&self) -> Option<u32> {
        *self.hint.lock().unwrap()
    }
}

const WEB_KEY: &str = "wk_web_7f3a9c";
const SERVER_KEY: &str = "wk_server_91be";

struct Server {
    addr: SocketAddr,
    client: reqwest::Client,
}

impl Server {
    async fn start(sink: Arc<TestSink>) -> Self {
        Self::start_with(sink, 128).await
    }

    async fn start_with(sink: Arc<TestSink>, max_in_flight: usize) -> Self {
        Self::start_configured(sink, max_in_flight, |_| {}).await
    }

    /// Starts a server whose configuration `adjust` may change first (CORS, public URL).
    async fn start_configured(
        sink: Arc<TestSink>,
        max_in_flight: usize,
        adjust: impl FnOnce(&mut IntakeConfig),
    ) -> Self {
        let mut config = IntakeConfig::new([("web", WEB_KEY), ("server", SERVER_KEY)]).unwrap();
        adjust(&mut config);
        let state =
            IntakeState::with_max_in_flight(config, sink, MetricsRegistry::new(), max_in_flight);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, router(state)).await.unwrap();
        });
        Self {
            addr,
            client: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Posts JSON text with the web source's key by HTTP Basic.
    async fn post(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Option<String>, Value) {
        let req = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .header("authorization", basic(WEB_KEY))
            .body(body);
        send(req).await
    }
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Option<String>, Value) {
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = res.text().await.unwrap();
    assert!(
        !text.contains(WEB_KEY) && !text.contains(SERVER_KEY),
        "key leaked: {text}"
    );
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, retry, body)
}

fn basic(key: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
    )
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn stored_json(sink: &TestSink) -> Vec<Value> {
    sink.stored()
        .iter()
        .map(|e| serde_json::from_str(&e.json).unwrap())
        .collect()
}

#[tokio::test]
async fn each_auth_style_stores_the_event_under_its_source() {
    let sink = TestSink::new(Mode::Store);
    let srv = Server::start(sink.clone()).await;

    let (status, _, body) = srv
        .post("/v1/track", r#"{"userId":"u1","event":"Signed Up"}"#)
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"success": true, "accepted": 1}))
    );

    let req = srv
        .client
        .post(srv.url("/v1/identify"))
        .header("content-type", "application/json")
        .header("x-write-key", SERVER_KEY)
        .body(r#"{"anonymousId":"a1","traits":{"email":"a@b.c"}}"#);
    assert_eq!(send(req).await.0, 200);

    let req = srv
        .client
        .post(srv.url("/v1/batch"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"writeKey":"{SERVER_KEY}","batch":[{{"type":"page","userId":"u2","name":"Home"}}]}}"#));
    assert_eq!(send(req).await.0, 200);

    let stored = sink.stored();
    let sources: Vec<&str> = stored.iter().map(|e| &*e.source).collect();
    assert_eq!(sources, ["web", "server", "server"]);
    let events = stored_json(&sink);
    assert_eq!(events[0]["type"], "track");
    assert_eq!(events[1]["type"], "identify");
    assert_eq!(events[2]["type"], "page");
    for (ev, raw) in events.iter().zip(&stored) {
        assert_eq!(ev["messageId"], Value::String(raw.message_id.clone()));
        assert!(ev["receivedAt"].is_string() && ev["timestamp"].is_string());
        assert!(ev.get("writeKey").is_none());
    }
}

#[tokio::test]
async fn gzip_body_is_accepted() {
    let sink = TestSink::new(Mode::Store);
    let srv = Server::start(sink.clone()).await;
    let req = srv
        .client
        .post(srv.url("/v1/batch"))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .header("authorization", basic(WEB_KEY))
        .body(gzip(
            br#"{"batch":[{"type":"track","userId":"u","event":"Zipped"}]}"#,
        ));
    assert_eq!(send(req).await.0, 200);
    assert_eq!(stored_json(&sink)[0]["event"], "Zipped");
}

#[tokio::test]
async fn batch_with_invalid_events_stores_the_valid_ones_and_lists_the_rest() {
    let sink = TestSink::new(Mode::Store);
    let srv = Server::start(sink.clone()).await;
    let body = r#"{"context":{"library":{"name":"analytics-python"}},"batch":[
        {"type":"track","userId":"u","event":"One"},
        {"type":"track","userId":"u"},
        {"type":"identify"},
        {"type":"track","anonymousId":"a","event":"Four"},
        42
    ]}"#;
    let (status, _, res) = srv.post("/v1/batch", body).await;
    // 200, as something was stored: clients that retry a 400 would store it twice.
    assert_eq!(status, 200, "{res}");
    assert_eq!(res["success"], true);
    assert_eq!(res["accepted"], 2);
    let rejected: Vec<(u64, &str)> = res["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), r["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rejected,
        [
            (1, "missing_event"),
            (2, "missing_user_id"),
            (4, "invalid_event")
        ]
    );
    assert!(
        res["message"]
            .as_str()
            .unwrap()
            .starts_with("2 of 5 events were stored; 3 were rejected"),
        "{res}"
    );
    // When nothing at all could be stored, the answer is a 400.
    let (status, _, res) = srv
        .post("/v1/b", r#"{"batch":[{"type":"track","userId":"u"},7]}"#)
        .await;
    assert_eq!(status, 400, "{res}");
    assert_eq!(res["accepted"], 0);
    assert_eq!(res["error"]["code"], "invalid_events");
    assert_eq!(res["rejected"].as_array().map(Vec::len), Some(2));
    let names: Vec<Value> = stored_json(&sink)
        .iter()
        .map(|e| e["event"].clone())
        .collect();
    assert_eq!(names, [json!("One"), json!("Four")]);
    assert_eq!(
        stored_json(&sink)[1]["context"]["library"]["name"],
        "analytics-python"
    );
}

#[tokio::test]
async fn a_full_hint_answers_503_before_the_body_is_read_and_closes_the_connection() {
    let sink = TestSink::new(Mode::Store);
    *sink.hint.lock().unwrap() = Some(4);
    let srv = Server::start(sink.clone()).await;
    // The body is not even JSON: a 503 (not a 400) shows it was never read or parsed.
    let res = srv
        .client
        .post(srv.url("/v1/track"))
        .header("content-type", "application/json")
        .header("authorization", basic(WEB_KEY))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 503);
    assert_eq!(res.headers()["retry-after"], "4");
    assert_eq!(res.headers()["connection"], "close");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["accepted"], 0);
    assert_eq!(body["error"]["code"], "queue_full");
    assert!(sink.stored().is_empty());
    // Once the hint is gone, requests reach the sink again.
    *sink.hint.lock().unwrap() = None;
    let (status, _, _) = srv.post("/v1/track", r#"{"userId":"u","event":"e"}"#).await;
    assert_eq!(status, 200);
    assert_eq!(sink.stored().len(), 1);
}

#[tokio::test]
async fn full_sink_gets_503_with_retry_after_and_nothing_stored() {
    let sink = TestSink::new(Mode::Full);
    let srv = Server::start(sink.clone()).await;
    let (status, retry, body) = srv
        .post(
            "/v1/batch",
            r#"{"batch":[{"type":"track","userId":"u","event":"e"}]}"#,
        )
        .await;
    assert_eq!(status, 503);
    assert_eq!(retry.as_deref(), Some("7"));
    assert_eq!(body["accepted"], 0);
    assert_eq!(body["error"]["code"], "queue_full");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing from this request was stored")
    );
    assert!(sink.stored().is_empty());

    *sink.mode.lock().unwrap() = Mode::Fail;
    let (status, _, body) = srv.post("/v1/track", r#"{"userId":"u","event":"e"}"#).await;
    assert_eq!(status, 500);
    assert_eq!(body["error"]["code"], "internal_error");
    assert!(
        !body.to_string().contains("disk on fire"),
        "internal reasons stay in the logs"
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx() {
    let sink = TestSink::new(Mode::Store);
    let srv = Server::start(sink.clone()).await;
    let good = r#"{"userId":"u","event":"e"}"#;
    let deep = format!(
        r#"{{"userId":"u","event":"e","properties":{{"a":{}1{}}}}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let bomb = gzip(&vec![b' '; 1 << 20]).repeat(50);

    struct Case {
        name: &'static str,
        path: &'static str,
        content_type: Option<&'static str>,
        encoding: Option<&'static str>,
        auth: Option<String>,
        body: Vec<u8>,
        status: u16,
        code: &'static str,
    }
    let case = |name, path, body: Vec<u8>, status, code| Case {
        name,
        path,
        content_type: Some("application/json"),
        encoding: None,
        auth: Some(basic(WEB_KEY)),
        body,
        status,
        code,
    };
    let cases = vec![
        Case {
            auth: None,
            ..case("no key", "/v1/track", good.into(), 401, "missing_write_key")
        },
        Case {
            auth: Some(basic("wrong")),
            ..case(
                "wrong key",
                "/v1/track",
                good.into(),
                401,
                "invalid_write_key",
            )
        },
        Case {
            auth: Some("Basic %%%".into()),
            ..case(
                "garbled basic",
                "/v1/track",
                good.into(),
                401,
                "invalid_write_key",
            )
        },
        Case {
            content_type: Some("application/x-www-form-urlencoded"),
            ..case(
                "a form that is not JSON",
                "/v1/track",
                b"userId=u&event=e".to_vec(),
                400,
                "invalid_json",
            )
        },
        Case {
            content_type: None,
            ..case(
                "no content type and not JSON",
                "/v1/t",
                b"<html></html>".to_vec(),
                400,
                "invalid_json",
            )
        },
        Case {
            encoding: Some("br"),
            ..case(
                "brotli",
                "/v1/track",
                good.into(),
                415,
                "unsupported_content_encoding",
            )
        },
        case(
            "malformed",
            "/v1/track",
            br#"{"userId":"u",}"#.to_vec(),
            400,
            "invalid_json",
        ),
        case(
            "truncated",
            "/v1/batch",
            br#"{"batch":[{"type":"track""#.to_vec(),
            400,
            "invalid_json",
        ),
        case(
            "invalid utf-8",
            "/v1/track",
            b"{\"userId\":\"\xff\xfe\",\"event\":\"e\"}".to_vec(),
            400,
            "invalid_utf8",
        ),
        case(
            "deep nesting",
            "/v1/track",
            deep.into_bytes(),
            400,
            "too_deep",
        ),
        case(
            "oversize single",
            "/v1/track",
            format!(r#"{{"userId":"u","event":"{}"}}"#, "e".repeat(33 * 1024)).into_bytes(),
            413,
            "payload_too_large",
        ),
        case(
            "oversize batch",
            "/v1/batch",
            format!(r#"{{"batch":[],"x":"{}"}}"#, "x".repeat(600 * 1024)).into_bytes(),
            413,
            "payload_too_large",
        ),
        Case {
            encoding: Some("gzip"),
            ..case("gzip bomb", "/v1/batch", bomb, 413, "payload_too_large")
        },
        Case {
            encoding: Some("gzip"),
            ..case("not gzip", "/v1/track", good.into(), 400, "invalid_gzip")
        },
        case(
            "missing ids",
            "/v1/track",
            br#"{"event":"e"}"#.to_vec(),
            400,
            "missing_user_id",
        ),
        case(
            "no batch",
            "/v1/batch",
            br#"{"events":[]}"#.to_vec(),
            400,
            "invalid_batch",
        ),
        case("unknown path", "/v1/tracks", good.into(), 404, "not_found"),
    ];
    for c in cases {
        let mut req = srv.client.post(srv.url(c.path)).body(c.body);
        if let Some(ct) = c.content_type {
            req = req.header("content-type", ct);
        }
        if let Some(enc) = c.encoding {
            req = req.header("content-encoding", enc);
        }
        if let Some(auth) = c.auth {
            req = req.header("authorization", auth);
        }
        let (status, _, body) = send(req).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (c.status, Some(c.code)),
            "{}: {body}",
            c.name
        );
        assert!(
            !body["error"]["message"].as_str().unwrap().is_empty(),
            "{}",
            c.name
        );
    }
    let (status, _, body) = send(srv.client.get(srv.url("/v1/track"))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    assert!(sink.stored().is_empty(), "nothing bad was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_traffic_does_not_disturb_good_traffic() {
    let sink = TestSink::new(Mode::Store);
    let srv = Arc::new(Server::start(sink.clone()).await);
    let bomb = Arc::new(gzip(&vec![b'0'; 1 << 20]).repeat(20));
    let mut tasks = Vec::new();
    for i in 0..60u32 {
        let srv = Arc::clone(&srv);
        let bomb = Arc::clone(&bomb);
        tasks.push(tokio::spawn(async move {
            // Interleave two hostile requests with each good one.
            let bad1 = srv
                .client
                .post(srv.url("/v1/batch"))
                .header("content-type", "application/json")
                .header("content-encoding", "gzip")
                .header("authorization", basic(WEB_KEY))
                .body((*bomb).clone());
            let bad2 = srv
                .client
                .post(srv.url("/v1/track"))
                .header("content-type", "application/json")
                .header("authorization", basic("stolen"))
                .body(vec![b'{'; 10_000]);
            let (s1, _, _) = send(bad1).await;
            let (good, _, _) = srv
                .post("/v1/batch", format!(r#"{{"batch":[{{"type":"track","userId":"u{i}","event":"e"}},{{"type":"identify","userId":"u{i}"}}]}}"#))
                .await;
            let (s2, _, _) = send(bad2).await;
            (s1, good, s2)
        }));
    }
    for task in tasks {
        let (bad1, good, bad2) = task.await.unwrap();
        assert_eq!((bad1, good, bad2), (413, 200, 401));
    }
    let stored = sink.stored();
    assert_eq!(stored.len(), 120);
    let mut users: Vec<String> = stored_json(&sink)
        .iter()
        .map(|e| e["userId"].as_str().unwrap().to_owned())
        .collect();
    users.sort();
    users.dedup();
    assert_eq!(users.len(), 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_in_flight_bound_get_503() {
    let gate = Arc::new(Notify::new());
    let sink = Arc::new(TestSink {
        stored: Mutex::new(Vec::new()),
        mode: Mutex::new(Mode::Store),
        ready: Mutex::new(Ok(())),
        healthy: Mutex::new(Ok(())),
        gate: Some(Arc::clone(&gate)),
        parked: AtomicUsize::new(0),
        hint: Mutex::new(None),
    });
    let srv = Arc::new(Server::start_with(sink.clone(), 1).await);
    let first = {
        let srv = Arc::clone(&srv);
        tokio::spawn(async move {
            srv.post("/v1/track", r#"{"userId":"u","event":"first"}"#)
                .await
        })
    };
    // Wait until the first request holds the only slot (it is parked in the sink).
    for _ in 0..1000 {
        if sink.parked.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    assert_eq!(
        sink.parked.load(Ordering::SeqCst),
        1,
        "the first request reached the sink"
    );
    let (status, retry, body) = srv
        .post("/v1/track", r#"{"userId":"u","event":"second"}"#)
        .await;
    assert_eq!(status, 503, "a request past the bound is shed");
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(body["error"]["code"], "overloaded");
    gate.notify_one();
    assert_eq!(first.await.unwrap().0, 200);
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let sink = TestSink::new(Mode::Store);
    let srv = Server::start(sink.clone()).await;
    let (status, _, body) = send(srv.client.get(srv.url("/healthz"))).await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    assert_eq!(send(srv.client.get(srv.url("/readyz"))).await.0, 200);
    *sink.ready.lock().unwrap() = Err(NotNow {
        reason: "queue_full",
        detail: "the queue holds its maximum of 10 events".to_owned(),
        retry_after_secs: Some(3),
    });
    let (status, retry, body) = send(srv.client.get(srv.url("/readyz"))).await;
    assert_eq!(
        (status, retry.as_deref(), body),
        (
            503,
            Some("3"),
            json!({"status": "not_ready", "reason": "queue_full",
                   "detail": "the queue holds its maximum of 10 events"})
        )
    );
    // Not ready is not unhealthy: the process needs no restart for load.
    assert_eq!(send(srv.client.get(srv.url("/healthz"))).await.0, 200);
    *sink.healthy.lock().unwrap() = Err(NotNow {
        reason: "delivery_stopped",
        detail: "the delivery worker of userpilot stopped".to_owned(),
        retry_after_secs: None,
    });
    let (status, retry, body) = send(srv.client.get(srv.url("/healthz"))).await;
    assert_eq!(
        (status, retry, body),
        (
            503,
            None,
            json!({"status": "unhealthy", "reason": "delivery_stopped",
                   "detail": "the delivery worker of userpilot stopped"})
        )
    );

    srv.post(
        "/v1/batch",
        r#"{"batch":[{"type":"track","userId":"u","event":"e"},{"type":"track","userId":"u"}]}"#,
    )
    .await;
    let req = srv
        .client
        .post(srv.url("/v1/track"))
        .header("content-type", "application/json")
        .header("authorization", basic("guess-123"))
        .body("{}");
    assert_eq!(send(req).await.0, 401);

    let text = srv
        .client
        .get(srv.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        r#"actionkit_intake_events_received_total{source="web",path="batch"} 2"#,
        r#"actionkit_intake_events_accepted_total{source="web",path="batch"} 1"#,
        r#"actionkit_intake_events_rejected_total{source="web",path="batch",reason="missing_event",unit="event"} 1"#,
        r#"actionkit_intake_events_rejected_total{source="unknown",path="track",reason="invalid_write_key",unit="request"} 1"#,
        r#"actionkit_intake_requests_total{path="batch",status="200"} 1"#,
        "actionkit_intake_request_duration_seconds_bucket",
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
    for secret in [WEB_KEY, SERVER_KEY, "guess-123"] {
        assert!(!text.contains(secret));
    }
}

/// Sends a browser's CORS preflight for a POST to `path` from `origin`.
async fn preflight(srv: &Server, path: &str, origin: &str) -> reqwest::Response {
    srv.client
        .request(reqwest::Method::OPTIONS, srv.url(path))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,x-retry-count",
        )
        .send()
        .await
        .unwrap()
}

fn header_text(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
}

#[tokio::test]
async fn browsers_get_cors_headers_on_preflights_successes_and_errors() {
    let sink = TestSink::new(Mode::Store);
    let srv = Server::start(sink.clone()).await;
    let origin = "http://shop.example:3000";

    let res = preflight(&srv, "/v1/t", origin).await;
    assert!(res.status().is_success(), "preflight: {}", res.status());
    assert_eq!(
        header_text(&res, "access-control-allow-origin").as_deref(),
        Some(origin)
    );
    let methods = header_text(&res, "access-control-allow-methods").unwrap_or_default();
    assert!(methods.contains("post"), "{methods}");
    let headers = header_text(&res, "access-control-allow-headers").unwrap_or_default();
    for wanted in ["authorization", "content-type", "x-retry-count"] {
        assert!(headers.contains(wanted), "{wanted} not allowed: {headers}");
    }
    assert!(header_text(&res, "access-control-max-age").is_some());

    // analytics.js in its default mode: text/plain, Basic auth, the key in the body too.
    let post = |path: &str, key: &str, body: &str| {
        srv.client
            .post(srv.url(path))
            .header("origin", origin)
            .header("content-type", "text/plain")
            .header("authorization", basic(key))
            .body(body.to_owned())
    };
    let body = r#"{"type":"track","userId":"u1","event":"Clicked","writeKey":"x"}"#;
    let answers = [
        (post("/v1/t", WEB_KEY, body), 200),
        (post("/v1/t", "wrong-key", body), 401),
        (post("/v1/t", WEB_KEY, "not json"), 400),
        (post("/v1/nowhere", WEB_KEY, body), 404),
    ];
    for (req, status) in answers {
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), status);
        assert_eq!(
            header_text(&res, "access-control-allow-origin").as_deref(),
            Some(origin),
            "a {status} answer has no CORS header"
        );
        let exposed = header_text(&res, "access-control-expose-headers").unwrap_or_default();
        assert!(exposed.contains("retry-after"), "{exposed}");
        assert!(
            header_text(&res, "vary")
                .unwrap_or_default()
                .contains("origin")
        );
    }
    // Only the valid call stored anything.
    assert_eq!(sink.stored().len(), 1);
}

#[tokio::test]
async fn a_list_of_origins_restricts_browsers_but_not_servers() {
    let sink = TestSink::new(Mode::Store);
    let allowed = "https://app.example.com";
    let srv = Server::start_configured(sink.clone(), 128, |c| {
        c.cors = actionkit_intake::Cors::from_list(&[allowed]).unwrap();
    })
    .await;

    let res = preflight(&srv, "/v1/batch", allowed).await;
    assert_eq!(
        header_text(&res, "access-control-allow-origin").as_deref(),
        Some(allowed)
    );
    let res = preflight(&srv, "/v1/batch", "https://evil.example.com").await;
    assert_eq!(header_text(&res, "access-control-allow-origin"), None);

    let body = r#"{"userId":"u1","event":"Clicked"}"#;
    let from = |origin: Option<&str>| {
        let mut req = srv
            .client
            .post(srv.url("/v1/track"))
            .header("content-type", "application/json")
            .header("authorization", basic(WEB_KEY))
            .body(body);
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        req
    };
    let (status, _, answer) = send(from(Some("https://evil.example.com"))).await;
    assert_eq!(status, 403);
    assert_eq!(answer["code"], "origin_not_allowed");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("`https://evil.example.com` is not in server.cors.allowed_origins"),
        "{answer}"
    );
    assert!(sink.stored().is_empty(), "a refused origin stored events");
    assert_eq!(send(from(Some(allowed))).await.0, 200);
    // A server or mobile client sends no Origin header.
    assert_eq!(send(from(None)).await.0, 200);
    assert_eq!(sink.stored().len(), 2);
}

#[tokio::test]
async fn short_paths_and_batch_aliases_store_their_events() {
    let sink = TestSink::new(Mode::Store);
    let srv = Server::start(sink.clone()).await;
    let singles = [
        (
            "/v1/i",
            r#"{"userId":"u1","traits":{"plan":"pro"}}"#,
            "identify",
        ),
        ("/v1/t", r#"{"userId":"u1","event":"E"}"#, "track"),
        ("/v1/p", r#"{"userId":"u1","name":"Home"}"#, "page"),
        ("/v1/s", r#"{"userId":"u1","name":"Home"}"#, "screen"),
        ("/v1/g", r#"{"userId":"u1","groupId":"g1"}"#, "group"),
        ("/v1/a", r#"{"userId":"u1","previousId":"a1"}"#, "alias"),
    ];
    for (path, body, _) in singles {
        let (status, _, answer) = srv.post(path, body).await;
        assert_eq!(status, 200, "{path}: {answer}");
    }
    for path in ["/v1/b", "/v1/import"] {
        let body = format!(
            r#"{{"batch":[{{"type":"track","userId":"u2","event":"{path}"}}],"sentAt":"2024-05-01T12:00:00Z"}}"#
        );
        let (status, _, answer) = srv.post(path, body).await;
        assert_eq!(status, 200, "{path}: {answer}");
    }
    let stored = stored_json(&sink);
    let types: Vec<&str> = stored.iter().map(|e| e["type"].as_str().unwrap()).collect();
    let mut expected: Vec<&str> = singles.iter().map(|(_, _, t)| *t).collect();
    expected.extend(["track", "track"]);
    assert_eq!(types, expected);
    assert_eq!(stored[6]["event"], "/v1/b");
    assert_eq!(stored[7]["event"], "/v1/import");
}

/// Fetches analytics.js's settings for `key` with extra headers; the status and the raw body.
async fn settings(
    srv: &Server,
    key: &str,
    headers: &[(&str, &str)],
) -> (u16, String, Option<String>) {
    let mut req = srv
        .client
        .get(srv.url(&format!("/v1/projects/{key}/settings")))
        .header("origin", "http://shop.example");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = req.send().await.unwrap();
    assert_eq!(
        header_text(&res, "access-control-allow-origin").as_deref(),
        Some("http://shop.example")
    );
    let cache = header_text(&res, "cache-control");
    (res.status().as_u16(), res.text().await.unwrap(), cache)
}

#[tokio::test]
async fn settings_point_analytics_js_back_here_for_known_keys_only() {
    let sink = TestSink::new(Mode::Store);
    let srv = Server::start(sink.clone()).await;

    let (status, text, cache) = settings(&srv, WEB_KEY, &[]).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(cache.as_deref(), Some("private, max-age=300"));
    let body: Value = serde_json::from_str(&text).unwrap();
    let segment = &body["integrations"]["Segment.io"];
    assert_eq!(segment["apiKey"], WEB_KEY);
    assert_eq!(segment["apiHost"], format!("{}/v1", srv.addr));
    assert_eq!(segment["protocol"], "http");
    assert_eq!(body["metrics"]["sampleRate"], 0);
    // The same without `/v1`, for a mobile `cdnHost` set without it.
    let res = srv
        .client
        .get(srv.url(&format!("/projects/{WEB_KEY}/settings")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let short: Value = res.json().await.unwrap();
    assert_eq!(short, body);

    // Behind a TLS proxy.
    let (_, text, _) = settings(
        &srv,
        SERVER_KEY,
        &[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "collect.example.com"),
        ],
    )
    .await;
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        body["integrations"]["Segment.io"]["apiHost"],
        "collect.example.com/v1"
    );
    assert_eq!(body["integrations"]["Segment.io"]["protocol"], "https");
    assert_eq!(body["integrations"]["Segment.io"]["apiKey"], SERVER_KEY);

    // Unknown keys, near misses included, all get the same answer.
    let mut answers = Vec::new();
    for key in [
        "nope",
        &WEB_KEY[..WEB_KEY.len() - 1],
        &format!("{WEB_KEY}x"),
        "%00",
    ] {
        let (status, text, _) = settings(&srv, key, &[]).await;
        assert_eq!(status, 404, "{key}");
        answers.push(text);
    }
    answers.dedup();
    assert_eq!(answers.len(), 1, "unknown keys are told apart: {answers:?}");
    assert!(
        answers[0].contains("no settings for this write key"),
        "{}",
        answers[0]
    );
    // A host that is not a host is not echoed into the settings.
    let (status, text, _) =
        settings(&srv, WEB_KEY, &[("x-forwarded-host", "evil.example/x?")]).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("server.public_url"), "{text}");
}

#[tokio::test]
async fn a_configured_public_url_wins_over_the_request_host() {
    let sink = TestSink::new(Mode::Store);
    let srv = Server::start_configured(sink, 128, |c| {
        c.public_url =
            Some(actionkit_intake::PublicUrl::parse("https://collect.example.com/seg/").unwrap());
    })
    .await;
    let (status, text, cache) =
        settings(&srv, WEB_KEY, &[("x-forwarded-host", "other.example")]).await;
    assert_eq!(status, 200);
    assert_eq!(cache.as_deref(), Some("public, max-age=300"));
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        body["integrations"]["Segment.io"]["apiHost"],
        "collect.example.com/seg/v1"
    );
    assert_eq!(body["integrations"]["Segment.io"]["protocol"], "https");
}

#[tokio::test]
async fn analytics_js_telemetry_is_answered_and_dropped() {
    let sink = TestSink::new(Mode::Store);
    let srv = Server::start(sink.clone()).await;
    let res = srv
        .client
        .post(srv.url("/v1/m"))
        .header("content-type", "text/plain")
        .header("origin", "http://shop.example")
        .body(r#"{"series":[{"type":"Counter","metric":"analytics_js.invoke.error","value":1,"tags":{"library":"analytics.js"}}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert!(header_text(&res, "access-control-allow-origin").is_some());
    assert!(sink.stored().is_empty());
    let metrics = srv
        .client
        .get(srv.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"actionkit_intake_requests_total{path="telemetry",status="200"} 1"#),
        "{metrics}"
    );
}
