//! The axum router: tracking-API endpoints, analytics.js's settings and telemetry, health,
//! readiness and metrics, all behind one CORS layer.
//!
//! Each tracking request is read with a hard size cap, handed to [`parse_request`], and its
//! accepted events to the [`EventSink`]; the answer is sent only after the sink has resolved, so
//! a 200 always means stored. A semaphore bounds the requests in flight (and so the memory they
//! hold); past it, and whenever the sink is full, the answer is 503 with `Retry-After`.
//!
//! CORS sits at the edge, around every route including the fallbacks, so that a browser sees
//! `Access-Control-Allow-Origin` on errors too and its library can tell a 400 from a network
//! failure. Preflights are answered by the layer without reaching a handler.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer, ExposeHeaders};

use crate::config::{Cors, IntakeConfig};
use crate::error::{ErrorCode, Rejection};
use crate::event::NormalizedEvent;
use crate::metrics::{
    ACCEPTED_TOTAL, MetricsRegistry, RECEIVED_TOTAL, REJECTED_TOTAL, REQUEST_DURATION,
    REQUESTS_TOTAL,
};
use crate::parse::{Accepted, PathKind, RequestMeta, parse_request};
use crate::routes::{SETTINGS_PATH, SETTINGS_PATH_SHORT, TELEMETRY_PATH, TRACKING_ROUTES};

/// A boxed, sendable future, as returned by [`EventSink::enqueue`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where accepted events go: the durable queue in production, a recorder in tests.
pub trait EventSink: Send + Sync {
    /// Stores the events of one request, all or none; resolves once they are durable.
    fn enqueue(&self, events: Vec<NormalizedEvent>) -> BoxFuture<'_, Result<(), SinkError>>;

    /// Whether the sink can take events now; `/readyz` reports it. Ready unless overridden.
    fn readiness(&self) -> Result<(), NotNow> {
        Ok(())
    }

    /// Whether the process is working as it should, apart from load; `/healthz` reports it, and
    /// a failure there asks the supervisor for a restart. Healthy unless overridden.
    fn health(&self) -> Result<(), NotNow> {
        Ok(())
    }

    /// A cheap check, made before a request's body is read, that the sink is full right now:
    /// `Some` with the `Retry-After` seconds to answer `503` at once without reading or parsing
    /// the body. Only a hint: `None` (the default) sends the request on to
    /// [`EventSink::enqueue`], which decides for good.
    fn full_hint(&self) -> Option<u32> {
        None
    }
}

/// Why `/readyz` or `/healthz` answers 503: a stable `reason` for machines, a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotNow {
    /// A stable snake_case code, such as `queue_full` or `delivery_stopped`.
    pub reason: &'static str,
    /// What is wrong, in words; never a secret.
    pub detail: String,
    /// When to ask again, in seconds, if the sink knows (sent as `Retry-After`).
    pub retry_after_secs: Option<u32>,
}

/// Why the sink did not store a request's events; in every case it stored none of them.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The queue is at its bound; the sender should retry later (503 with `Retry-After`).
    #[error("queue is full; retry after {retry_after_secs} s")]
    Full {
        /// How long the sender should wait before retrying, in seconds.
        retry_after_secs: u32,
    },
    /// The queue cannot take events for now, such as during shutdown (503 with `Retry-After`).
    #[error("queue is unavailable: {reason}")]
    Unavailable {
        /// What is wrong, for the logs (not sent to the client).
        reason: String,
    },
    /// Storing failed (500).
    #[error("queue failed: {reason}")]
    Failed {
        /// What went wrong, for the logs (not sent to the client).
        reason: String,
    },
}

/// The default bound on tracking requests handled at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 128;

/// Everything the handlers share: configuration, sink, metrics and the in-flight bound.
#[derive(Clone)]
pub struct IntakeState {
    inner: Arc<Inner>,
}

struct Inner {
    config: IntakeConfig,
    sink: Arc<dyn EventSink>,
    metrics: MetricsRegistry,
    in_flight: Arc<Semaphore>,
    /// Paces the warning about shed requests.
    shed_log: LogPacer,
    /// Paces the warning about events the sink did not store.
    not_stored_log: LogPacer,
}

/// Lets a repeated warning through at most once per [`LogPacer::EVERY`], counting the ones it
/// held back so the next line can say how many; metrics still count every occurrence exactly.
#[derive(Debug, Default)]
struct LogPacer {
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl LogPacer {
    /// The shortest gap between two lines of the same warning.
    const EVERY: Duration = Duration::from_secs(1);

    /// `Some(n)` when the caller should log now, `n` being how many occurrences were held back
    /// since the last line; `None` when this occurrence is only counted.
    fn admit(&self) -> Option<u64> {
        let now = Instant::now();
        let mut last = match self.last.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        match *last {
            Some(at) if now.duration_since(at) < Self::EVERY => {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => {
                *last = Some(now);
                Some(self.suppressed.swap(0, Ordering::Relaxed))
            }
        }
    }
}

impl std::fmt::Debug for IntakeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntakeState")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl IntakeState {
    /// State with [`DEFAULT_MAX_IN_FLIGHT`] concurrent tracking requests.
    pub fn new(config: IntakeConfig, sink: Arc<dyn EventSink>, metrics: MetricsRegistry) -> Self {
        Self::with_max_in_flight(config, sink, metrics, DEFAULT_MAX_IN_FLIGHT)
    }

    /// State with an explicit bound on concurrent tracking requests (at least one).
    pub fn with_max_in_flight(
        config: IntakeConfig,
        sink: Arc<dyn EventSink>,
        metrics: MetricsRegistry,
        max_in_flight: usize,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                sink,
                metrics,
                in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
                shed_log: LogPacer::default(),
                not_stored_log: LogPacer::default(),
            }),
        }
    }

    /// The metrics registry `/metrics` renders; the delivery side may register on it too.
    pub fn metrics(&self) -> &MetricsRegistry {
        &self.inner.metrics
    }

    /// The intake configuration.
    pub fn config(&self) -> &IntakeConfig {
        &self.inner.config
    }
}

/// The intake router: every path of [`TRACKING_ROUTES`] (POST), analytics.js's settings
/// (`GET /v1/projects/{writeKey}/settings`) and telemetry (`POST /v1/m`), `GET /healthz`,
/// `GET /readyz` and `GET /metrics`; anything else gets a JSON 404 or 405. Every answer carries
/// the CORS headers the configuration allows.
pub fn router(state: IntakeState) -> Router {
    let cors = cors_layer(&state.inner.config.cors);
    let mut app = Router::new();
    for route in TRACKING_ROUTES {
        let kind = route.kind;
        let handler = post(move |State(s): State<IntakeState>, req: Request| track(s, kind, req));
        // analytics-java posts to `/v1/import/`, so every path is also answered with a slash.
        app = app
            .route(route.path, handler.clone())
            .route(&format!("{}/", route.path), handler);
    }
    app.route(TELEMETRY_PATH, post(telemetry))
        .route(SETTINGS_PATH, get(settings))
        .route(SETTINGS_PATH_SHORT, get(settings))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(cors)
        .with_state(state)
}

/// The CORS layer: the origin echoed back when allowed (so that requests with credentials work
/// too), any request header the browser asks for (the libraries send `Authorization`,
/// `Content-Type`, `X-Retry-Count` and their own), `Retry-After` readable by scripts, and
/// preflights cached for a day (browsers cap it lower).
fn cors_layer(cors: &Cors) -> CorsLayer {
    let origins = match cors {
        Cors::AnyOrigin => AllowOrigin::mirror_request(),
        Cors::Origins(list) => AllowOrigin::list(
            list.iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        ),
    };
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods(AllowMethods::list([
            Method::GET,
            Method::POST,
            Method::OPTIONS,
        ]))
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers(ExposeHeaders::list([header::RETRY_AFTER]))
        .allow_private_network(true)
        .max_age(Duration::from_secs(86_400))
}

/// Refuses a browser request from an origin the configuration does not allow (403); `None` when
/// the request may go on. Requests without an `Origin` header (servers, mobile apps) always may.
fn refuse_origin(state: &IntakeState, path: &str, headers: &HeaderMap) -> Option<Response> {
    let origin = headers.get(header::ORIGIN)?;
    if state.inner.config.cors.allows(origin.as_bytes()) {
        return None;
    }
    state
        .inner
        .metrics
        .counter(
            REJECTED_TOTAL,
            &[
                ("source", "unknown"),
                ("path", path),
                ("reason", "origin_not_allowed"),
                ("unit", "request"),
            ],
        )
        .increment(1);
    let shown = crate::body::clip(&String::from_utf8_lossy(origin.as_bytes()), 100);
    Some(error_response(
        StatusCode::FORBIDDEN,
        "origin_not_allowed",
        &format!("origin `{shown}` is not in server.cors.allowed_origins; nothing was stored"),
        None,
    ))
}

/// `GET /v1/projects/{writeKey}/settings`: the settings analytics.js loads at start from its
/// `cdnURL`, pointing its Segment.io destination back at this server.
///
/// An unknown key gets the same 404 whatever it is, and keys are compared in constant time, so
/// the answer tells nothing about which keys exist.
async fn settings(
    State(state): State<IntakeState>,
    key: Result<Path<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
) -> Response {
    let config = &state.inner.config;
    let known = key
        .ok()
        .filter(|Path(key)| config.source_for_key(key.as_bytes()).is_some());
    let Some(Path(write_key)) = known else {
        count_request(&state, "settings", StatusCode::NOT_FOUND);
        return error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            "no settings for this write key",
            None,
        );
    };
    let (scheme, host, cache) = match &config.public_url {
        Some(url) => (
            url.scheme.clone(),
            url.host_and_prefix.clone(),
            "public, max-age=300",
        ),
        None => match host_from_request(&headers) {
            Some((scheme, host)) => (scheme, host, "private, max-age=300"),
            None => {
                count_request(&state, "settings", StatusCode::BAD_REQUEST);
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "no_host",
                    "the request has no usable Host header to point the library back at; set server.public_url",
                    None,
                );
            }
        },
    };
    let body = crate::settings::browser_settings(&write_key, &scheme, &host);
    count_request(&state, "settings", StatusCode::OK);
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// The scheme and `host[:port]` a client used to reach this server: `X-Forwarded-Proto` and
/// `X-Forwarded-Host` when a proxy set them, else `http` and the `Host` header.
fn host_from_request(headers: &HeaderMap) -> Option<(String, String)> {
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty())
    };
    let scheme = match first("x-forwarded-proto").as_deref() {
        Some("https") => "https",
        _ => "http",
    };
    let host = first("x-forwarded-host").or_else(|| first(header::HOST.as_str()))?;
    crate::config::is_authority(&host).then(|| (scheme.to_owned(), host))
}

/// `POST /v1/m`: analytics.js's own telemetry, answered 200 and dropped (the settings this server
/// hands out switch it off; a library configured elsewhere may still send it).
async fn telemetry(State(state): State<IntakeState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let limit = state.inner.config.max_event_bytes;
    let status = match read_capped(body, &parts.headers, limit).await {
        Ok(_) => StatusCode::OK,
        Err(rejection) => {
            count_request(&state, "telemetry", StatusCode::PAYLOAD_TOO_LARGE);
            let response = error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                rejection.code.as_str(),
                &rejection.message,
                None,
            );
            return close_if_body_unread(response, &parts.headers);
        }
    };
    count_request(&state, "telemetry", status);
    (status, axum::Json(json!({"success": true}))).into_response()
}

fn count_request(state: &IntakeState, path: &'static str, status: StatusCode) {
    state
        .inner
        .metrics
        .counter(
            REQUESTS_TOTAL,
            &[("path", path), ("status", status.as_str())],
        )
        .increment(1);
}

async fn healthz(State(state): State<IntakeState>) -> Response {
    probe(state.inner.sink.health(), "ok", "unhealthy")
}

async fn readyz(State(state): State<IntakeState>) -> Response {
    probe(state.inner.sink.readiness(), "ready", "not_ready")
}

/// A probe's answer: 200 with `{"status": yes}`, or 503 with `{"status": no, "reason", "detail"}`
/// and `Retry-After` when the sink gave one.
fn probe(answer: Result<(), NotNow>, yes: &str, no: &str) -> Response {
    match answer {
        Ok(()) => (StatusCode::OK, axum::Json(json!({"status": yes}))).into_response(),
        Err(not_now) => {
            let body = axum::Json(json!({
                "status": no,
                "reason": not_now.reason,
                "detail": not_now.detail,
            }));
            let mut response = (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
            if let Some(secs) = not_now.retry_after_secs {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
            }
            response
        }
    }
}

async fn metrics_text(State(state): State<IntakeState>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.inner.metrics.render(),
    )
        .into_response()
}

async fn not_found(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let response = error_response(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!(
            "no route for {method} {}; the tracking API is POST {}",
            crate::body::clip(uri.path(), 100),
            TRACKING_ROUTES
                .iter()
                .map(|route| route.path)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None,
    );
    close_if_body_unread(response, &headers)
}

async fn method_not_allowed(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let response = error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &format!(
            "{method} is not allowed on {}",
            crate::body::clip(uri.path(), 100)
        ),
        None,
    );
    close_if_body_unread(response, &headers)
}

/// Closes the connection after `response` when the request may have a body that was not read.
///
/// The server cannot skip an unread body to reach the next request on the connection, so it drops
/// the connection after answering; `Connection: close` says so, or the client might send its next
/// request on the dead connection and lose it.
fn close_if_body_unread(mut response: Response, headers: &HeaderMap) -> Response {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    // In HTTP/1.1 a request without `Content-Length` and `Transfer-Encoding` has no body.
    let may_have_body =
        headers.contains_key(header::TRANSFER_ENCODING) || declared.is_some_and(|len| len > 0);
    if may_have_body {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Handles one tracking request and records its metrics.
async fn track(state: IntakeState, kind: PathKind, req: Request) -> Response {
    let started = Instant::now();
    let response = match refuse_origin(&state, kind.as_str(), req.headers()) {
        Some(refusal) => close_if_body_unread(refusal, req.headers()),
        None => track_inner(&state, kind, req).await,
    };
    count_request(&state, kind.as_str(), response.status());
    state
        .inner
        .metrics
        .histogram(REQUEST_DURATION, &[("path", kind.as_str())])
        .record(started.elapsed().as_secs_f64());
    response
}

async fn track_inner(state: &IntakeState, kind: PathKind, req: Request) -> Response {
    let inner = &state.inner;
    let m = &inner.metrics;
    let path = kind.as_str();

    // Past the in-flight bound, shed load at once rather than queueing unbounded memory.
    let Ok(_permit) = Arc::clone(&inner.in_flight).try_acquire_owned() else {
        m.counter(
            REJECTED_TOTAL,
            &[
                ("source", "unknown"),
                ("path", path),
                ("reason", "overloaded"),
                ("unit", "request"),
            ],
        )
        .increment(1);
        if let Some(suppressed) = inner.shed_log.admit() {
            tracing::warn!(
                path,
                suppressed,
                "Request shed: too many requests in flight (suppressed: similar lines held back since the last one)."
            );
        }
        let response = error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many requests in flight; nothing was stored; retry after 1 s",
            Some(1),
        );
        return close_if_body_unread(response, req.headers());
    };

    // While the sink is known to be full, answer before reading and parsing the body: under
    // overload that work would be thrown away and would slow the delivery that frees room.
    if let Some(secs) = inner.sink.full_hint() {
        let secs = secs.max(1);
        m.counter(
            REJECTED_TOTAL,
            &[
                ("source", "unknown"),
                ("path", path),
                ("reason", "queue_full"),
                ("unit", "request"),
            ],
        )
        .increment(1);
        if let Some(suppressed) = inner.not_stored_log.admit() {
            tracing::warn!(
                path,
                suppressed,
                "Request refused unread: the event queue is full (suppressed: similar lines held back since the last one)."
            );
        }
        let response = error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "queue_full",
            &format!(
                "the event queue could not take the events; nothing from this request was stored; retry after {secs} s"
            ),
            Some(secs),
        );
        return close_if_body_unread(response, req.headers());
    }

    let (parts, body) = req.into_parts();
    let limit = inner.config.max_body_bytes(kind == PathKind::Batch);
    let bytes = match read_capped(body, &parts.headers, limit).await {
        Ok(bytes) => bytes,
        Err(rejection) => {
            // The body was not read to its end, so the connection cannot carry another request.
            let response = reject_request(state, path, None, &rejection);
            return close_if_body_unread(response, &parts.headers);
        }
    };
    let headers = &parts.headers;
    let query_key = parts.uri.query().and_then(query_write_key);
    let meta = RequestMeta {
        content_type: header_bytes(headers, header::CONTENT_TYPE.as_str()),
        content_encoding: header_bytes(headers, header::CONTENT_ENCODING.as_str()),
        authorization: header_bytes(headers, header::AUTHORIZATION.as_str()),
        x_write_key: header_bytes(headers, "x-write-key"),
        query_write_key: query_key.as_deref().map(str::as_bytes),
    };
    let accepted = match parse_request(kind, &meta, &bytes, Utc::now(), &inner.config) {
        Ok(accepted) => accepted,
        Err(rejection) => {
            let source = rejection.source_name.clone();
            return reject_request(state, path, source.as_deref(), &rejection);
        }
    };
    drop(bytes);
    store(state, accepted).await
}

/// Hands accepted events to the sink and builds the answer.
async fn store(state: &IntakeState, accepted: Accepted) -> Response {
    let inner = &state.inner;
    let m = &inner.metrics;
    let Accepted {
        source,
        kind,
        events,
        rejected,
    } = accepted;
    let path = kind.as_str();
    let n_accepted = events.len();
    m.counter(RECEIVED_TOTAL, &[("source", &source), ("path", path)])
        .increment((n_accepted + rejected.len()) as u64);
    for item in &rejected {
        m.counter(
            REJECTED_TOTAL,
            &[
                ("source", &source),
                ("path", path),
                ("reason", item.code.as_str()),
                ("unit", "event"),
            ],
        )
        .increment(1);
    }

    if n_accepted > 0 {
        if let Err(e) = inner.sink.enqueue(events).await {
            let (status, code, retry) = match &e {
                SinkError::Full { retry_after_secs } => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "queue_full",
                    Some((*retry_after_secs).max(1)),
                ),
                SinkError::Unavailable { .. } => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "queue_unavailable",
                    Some(5),
                ),
                SinkError::Failed { .. } => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "internal_error", None)
                }
            };
            m.counter(
                REJECTED_TOTAL,
                &[
                    ("source", &source),
                    ("path", path),
                    ("reason", code),
                    ("unit", "event"),
                ],
            )
            .increment(n_accepted as u64);
            if let Some(suppressed) = inner.not_stored_log.admit() {
                tracing::warn!(
                    source = &*source,
                    path,
                    events = n_accepted,
                    error = %e,
                    suppressed,
                    "Events not stored (suppressed: similar lines held back since the last one)."
                );
            }
            let message = match retry {
                Some(secs) => format!(
                    "the event queue could not take the events; nothing from this request was stored; retry after {secs} s"
                ),
                None => "the event queue failed to store the events; nothing from this request was stored".to_owned(),
            };
            return error_response(status, code, &message, retry);
        }
        m.counter(ACCEPTED_TOTAL, &[("source", &source), ("path", path)])
            .increment(n_accepted as u64);
    }

    if rejected.is_empty() {
        tracing::debug!(
            source = &*source,
            path,
            accepted = n_accepted,
            "Events accepted."
        );
        return (
            StatusCode::OK,
            axum::Json(json!({"success": true, "accepted": n_accepted})),
        )
            .into_response();
    }
    tracing::info!(
        source = &*source,
        path,
        accepted = n_accepted,
        rejected = rejected.len(),
        first_reason = rejected.first().map(|r| r.code.as_str()),
        "Batch partly rejected."
    );
    let n_rejected = rejected.len();
    let list: Vec<Value> = rejected
        .into_iter()
        .map(|r| json!({"index": r.index, "code": r.code.as_str(), "message": r.message}))
        .collect();
    if n_accepted > 0 {
        // Some events are stored: 200, or a client that retries 400 would store them again.
        let message = format!(
            "{n_accepted} of {} events were stored; {n_rejected} were rejected and not stored (listed in `rejected`)",
            n_accepted + n_rejected
        );
        let body = json!({
            "success": true,
            "accepted": n_accepted,
            "rejected": list,
            "message": message,
        });
        return (StatusCode::OK, axum::Json(body)).into_response();
    }
    let message = format!("all {n_rejected} events were rejected; nothing was stored");
    // `code` and `message` also sit at the top level, where Segment's client libraries read them.
    let body = json!({
        "success": false,
        "accepted": 0,
        "rejected": list,
        "code": "invalid_events",
        "message": message,
        "error": {"code": "invalid_events", "message": message},
    });
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// Answers a whole-request rejection and counts it.
fn reject_request(
    state: &IntakeState,
    path: &'static str,
    source: Option<&str>,
    rejection: &Rejection,
) -> Response {
    let source = source.unwrap_or("unknown");
    state
        .inner
        .metrics
        .counter(
            REJECTED_TOTAL,
            &[
                ("source", source),
                ("path", path),
                ("reason", rejection.code.as_str()),
                ("unit", "request"),
            ],
        )
        .increment(1);
    tracing::info!(
        source,
        path,
        reason = rejection.code.as_str(),
        "Request rejected."
    );
    let status = StatusCode::from_u16(rejection.status()).unwrap_or(StatusCode::BAD_REQUEST);
    error_response(status, rejection.code.as_str(), &rejection.message, None)
}

fn error_response(
    status: StatusCode,
    code: &str,
    message: &str,
    retry_after: Option<u32>,
) -> Response {
    let body = json!({
        "success": false,
        "accepted": 0,
        "code": code,
        "message": message,
        "error": {"code": code, "message": message},
    });
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// The first `writeKey` parameter of a query string, percent-decoded.
fn query_write_key(query: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "writeKey")
        .map(|(_, value)| value.into_owned())
}

fn header_bytes<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    headers.get(name).map(HeaderValue::as_bytes)
}

/// Reads the body, refusing it as soon as it exceeds `limit` bytes (413).
async fn read_capped(
    mut body: Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Vec<u8>, Rejection> {
    let too_large = || {
        Rejection::new(
            ErrorCode::PayloadTooLarge,
            format!("body exceeds the limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(len) = declared {
        if len > limit as u64 {
            return Err(too_large());
        }
    }
    let initial = declared.map_or(8 * 1024, |len| len as usize);
    let mut out = Vec::with_capacity(initial.min(limit));
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        match frame {
            None => return Ok(out),
            Some(Err(e)) => {
                return Err(Rejection::new(
                    ErrorCode::InvalidJson,
                    format!(
                        "request body could not be read after {} bytes (did the connection close before the whole body was sent?): {}",
                        out.len(),
                        crate::body::clip(&e.to_string(), 120)
                    ),
                ));
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if out.len() + data.len() > limit {
                        return Err(too_large());
                    }
                    out.extend_from_slice(&data);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_pacer_lets_one_line_a_second_through_and_counts_the_rest() {
        let pacer = LogPacer::default();
        assert_eq!(pacer.admit(), Some(0));
        assert_eq!(pacer.admit(), None);
        assert_eq!(pacer.admit(), None);
        // Pretend the last line went out more than a second ago.
        let past = Instant::now().checked_sub(LogPacer::EVERY + Duration::from_millis(1));
        *pacer.last.lock().unwrap() = past;
        assert_eq!(pacer.admit(), Some(2));
        assert_eq!(pacer.admit(), None);
    }
}
