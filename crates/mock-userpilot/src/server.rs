//! The HTTP server: accepting connections, the per-request pipeline, graceful shutdown, and the
//! [`MockHandle`] tests use.
//!
//! The server runs hyper directly (HTTP/1.1 and HTTP/2) rather than through `axum::serve` because
//! fault injection must be able to close a connection without answering: the request's service
//! future fails, and hyper then drops an HTTP/1 connection without writing anything (an HTTP/2
//! stream is reset instead).
//!
//! Each request goes through these steps, in order; the first that produces an answer wins:
//! 1. The body is read (at most `max_body_bytes`) and parsed as JSON.
//! 2. Fault injection, when the request's path is among the faulted endpoints (every path by
//!    default): the drawn latency is waited out; then the next step of the fault script, if one
//!    is left, or else the drawn decision may drop the request or answer it with an error status
//!    (plus `Retry-After` for 429 and 503 when set). An injected answer changes no state and
//!    counts against no rate limit.
//! 3. Unknown path → 404; known path with another method → 405 with `Allow`.
//! 4. Authentication (when an API key is configured) → 401.
//! 5. `X-API-Version: 2020-09-22` (when required) → 400.
//! 6. Rate limit of the endpoint group → 429 with `Retry-After`.
//! 7. For endpoints with a body: `Content-Type` other than `application/json` → 415, body over
//!    the cap → 413, empty or invalid JSON → 400.
//! 8. Required body fields → 400 naming the field; for a bulk identify, then, any object or
//!    array among the records' metadata values → 400 `invalid_metadata` naming no record;
//!    otherwise 202 (or 200 `{}` for validate).
//!
//! Every request, whatever its answer, is recorded once, before the answer is sent. A request
//! whose client closes the connection before the answer is decided (for example while an injected
//! delay is waited out) is not recorded but counted as abandoned ([`MockHandle::abandoned`]).

use std::collections::BTreeMap;
use std::fmt;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use axum::http::{HeaderMap, Request, Response, StatusCode, request::Parts};
use bytes::Bytes;
use hyper::body::{Body as _, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Map, Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::api::{Answer, Endpoint};
use crate::config::{API_VERSION, MockConfig};
use crate::config::{ConfigError, FaultConfig};
use crate::error::MockError;
use crate::faults::{FaultInjector, FaultPlan};
use crate::rate::{RateLimiter, retry_after_secs};
use crate::record::{RecordedRequest, Recorder, recorded_headers};
use crate::world::{BulkRefusal, JobKind, World};

/// Userpilot's cap on a bulk-identify upload: 50 MB.
const BULK_MAX_BODY_BYTES: usize = 50 * 1000 * 1000;

/// How long in-flight requests may take to finish after shutdown is requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs a mock server until `shutdown` completes.
///
/// This is [`MockServer::bind`] followed by [`MockServer::run`]; use those two when the caller
/// needs the bound address (for example to print it when port 0 was asked for).
pub async fn serve(config: MockConfig, shutdown: impl Future) -> Result<(), MockError> {
    MockServer::bind(config).await?.run(shutdown).await
}

/// Starts a mock server in the background and returns a handle to it.
///
/// The handle keeps every recorded request in memory (see [`MockHandle::requests`]) as well as in
/// the record file when one is configured. The server stops when the handle is dropped or
/// [`MockHandle::shutdown`] is called.
pub async fn spawn(config: MockConfig) -> Result<MockHandle, MockError> {
    let server = MockServer::bind_inner(config, true).await?;
    let addr = server.addr;
    let state = Arc::clone(&server.state);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        // Either a send or the sender being dropped means stop.
        let _ = stop_rx.await;
    }));
    Ok(MockHandle {
        addr,
        state,
        stop: Some(stop_tx),
        task: Some(task),
    })
}

/// A bound mock server that has not started serving yet.
pub struct MockServer {
    listener: TcpListener,
    addr: SocketAddr,
    state: Arc<State>,
}

impl fmt::Debug for MockServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MockServer {
    /// Validates the configuration, binds the listen address and opens the record file.
    ///
    /// Requests are recorded to the file only (no in-memory list), so a long-running server does
    /// not grow without bound; counters by status are always kept.
    pub async fn bind(config: MockConfig) -> Result<Self, MockError> {
        Self::bind_inner(config, false).await
    }

    async fn bind_inner(config: MockConfig, keep_in_memory: bool) -> Result<Self, MockError> {
        config.validate()?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| MockError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| MockError::Bind {
            addr: config.listen,
            source,
        })?;
        let recorder = Recorder::open(config.record.as_deref(), keep_in_memory).await?;
        let state = State {
            api_key: config.api_key,
            require_api_version: config.require_api_version,
            max_body_bytes: config.max_body_bytes,
            limiter: RateLimiter::new(&config.rate_limits),
            faults: FaultInjector::new(&config.faults),
            recorder,
            abandoned: AtomicU64::new(0),
            world: Mutex::new(World::new(config.bulk_rows_per_minute)),
            state_file: config.state_file,
        };
        Ok(Self {
            listener,
            addr,
            state: Arc::new(state),
        })
    }

    /// The address actually bound (the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests finish
    /// (for at most 5 seconds) and returns.
    pub async fn run(self, shutdown: impl Future) -> Result<(), MockError> {
        tracing::info!(addr = %self.addr, "Mock Userpilot API listening.");
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut conns = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _peer)) => {
                        conns.spawn(serve_connection(
                            stream,
                            Arc::clone(&self.state),
                            stop_rx.clone(),
                        ));
                    }
                    Err(err) => {
                        // Accept errors are usually transient (for example too many open files);
                        // pause briefly rather than spin.
                        tracing::warn!(error = %err, "Could not accept a connection.");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        drop(self.listener);
        // Receivers may all be gone already; that is fine.
        let _ = stop_tx.send(true);
        let drain = async { while conns.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
            tracing::warn!("In-flight requests did not finish in time and were aborted.");
            conns.abort_all();
        }
        if let Some(path) = &self.state.state_file {
            let snapshot = self.state.world().snapshot(SystemTime::now());
            let mut text = serde_json::to_string_pretty(&snapshot).unwrap_or_default();
            text.push('\n');
            tokio::fs::write(path, text)
                .await
                .map_err(|source| MockError::StateFile {
                    path: path.clone(),
                    source,
                })?;
            tracing::info!(path = %path.display(), "State written.");
        }
        tracing::info!(addr = %self.addr, "Mock Userpilot API stopped.");
        Ok(())
    }
}

/// A running mock server started by [`spawn`]; stops it when dropped.
pub struct MockHandle {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), MockError>>>,
}

impl fmt::Debug for MockHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MockHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL with a trailing slash, e.g. `http://127.0.0.1:40123/`, usable as Segment's
    /// `endpoint` setting.
    pub fn base_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The URL of a path, with or without its leading slash, e.g. `url("/v1/track")`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// Every request recorded so far, in the order they were answered.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.recorder.requests()
    }

    /// The state Userpilot would hold now, as `GET /_mock/state` answers it: `users` (each with
    /// `metadata`, `company` and `events`), `companies` (each with `metadata`) and `jobs`.
    pub fn state(&self) -> Value {
        self.state.world().snapshot(SystemTime::now())
    }

    /// Whether every bulk-identify job has applied all its rows.
    pub fn bulk_jobs_done(&self) -> bool {
        self.state.world().jobs_done(SystemTime::now())
    }

    /// How many requests got each status; dropped connections count under 0.
    pub fn status_counts(&self) -> BTreeMap<u16, u64> {
        self.state.recorder.status_counts()
    }

    /// How many requests got `status` (0 = dropped).
    pub fn count(&self, status: u16) -> u64 {
        self.status_counts().get(&status).copied().unwrap_or(0)
    }

    /// Replaces the fault injection settings for every request that arrives from now on, for
    /// example to let a failing destination recover; requests already waiting out an injected
    /// delay keep the decision they drew. The new settings' script starts from its first step.
    /// The values are checked as at start-up.
    pub fn set_faults(&self, faults: FaultConfig) -> Result<(), ConfigError> {
        faults.validate()?;
        self.state.faults.set(&faults);
        Ok(())
    }

    /// The fault injection settings in force.
    pub fn faults(&self) -> FaultConfig {
        self.state.faults.config()
    }

    /// How many requests were abandoned: the client closed the connection before the mock
    /// answered (typically while an injected delay was being waited out, after the client's own
    /// timeout). They are not recorded, since no answer was sent.
    pub fn abandoned(&self) -> u64 {
        self.state.abandoned.load(Ordering::Relaxed)
    }

    /// How many lines could not be written to the record file.
    pub fn record_write_errors(&self) -> u64 {
        self.state.recorder.write_errors()
    }

    /// Stops the server and waits until it has finished (in-flight requests included).
    pub async fn shutdown(mut self) -> Result<(), MockError> {
        if let Some(stop) = self.stop.take() {
            // The server may have ended already; then there is nobody to tell.
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(|err| MockError::Task(err.to_string()))?,
            None => Ok(()),
        }
    }
}

impl Drop for MockHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// What every request handler shares.
struct State {
    api_key: Option<String>,
    require_api_version: bool,
    max_body_bytes: usize,
    limiter: RateLimiter,
    faults: FaultInjector,
    recorder: Recorder,
    /// Requests whose client went away before they were answered (see [`AbandonGuard`]).
    abandoned: AtomicU64,
    /// What Userpilot would hold after the accepted requests.
    world: Mutex<World>,
    /// Where the state is written when the server stops.
    state_file: Option<PathBuf>,
}

impl State {
    /// The world, even if a panic elsewhere poisoned its lock (its data stays consistent: every
    /// change is a single map operation).
    fn world(&self) -> MutexGuard<'_, World> {
        match self.world.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// The error a request's service future fails with to make hyper close the connection without an
/// answer.
#[derive(Debug)]
struct Dropped;

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

async fn serve_connection(stream: TcpStream, state: Arc<State>, mut stop: watch::Receiver<bool>) {
    // Small answers should leave at once; failure to set the option only costs latency.
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req| handle(Arc::clone(&state), req));
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            log_connection_end(res);
            return;
        }
        _ = stop.wait_for(|stop| *stop) => {}
    }
    conn.as_mut().graceful_shutdown();
    log_connection_end(conn.await);
}

fn log_connection_end(res: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    if let Err(err) = res {
        tracing::debug!(error = %err, "Connection ended with an error.");
    }
}

/// The body of a request after reading.
enum BodyRead {
    /// The whole body.
    Complete(Bytes),
    /// The body exceeded the cap; reading stopped.
    TooLarge,
}

async fn read_body(mut body: Incoming, limit: usize) -> Result<BodyRead, hyper::Error> {
    let mut buf = Vec::new();
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        if let Ok(data) = frame?.into_data() {
            if buf.len() + data.len() > limit {
                return Ok(BodyRead::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(BodyRead::Complete(Bytes::from(buf)))
}

/// Counts a request as abandoned when its handler is dropped before it recorded an answer, which
/// hyper does when the client closes the connection (for example after its own timeout) while
/// the mock is still waiting out an injected delay.
struct AbandonGuard {
    state: Arc<State>,
    finished: bool,
}

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.state.abandoned.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Dropped> {
    let received_at = Instant::now();
    let mut guard = AbandonGuard {
        state: Arc::clone(&state),
        finished: false,
    };
    let (parts, body) = req.into_parts();
    let body_limit = body_limit(&state, parts.uri.path());
    let body = match read_body(body, body_limit).await {
        Ok(body) => body,
        Err(err) => {
            // The client went away mid-body; nobody is left to answer.
            tracing::debug!(error = %err, "Could not read a request body.");
            return Err(Dropped);
        }
    };
    let parsed = match &body {
        BodyRead::Complete(bytes) if bytes.is_empty() => {
            Err("the request body is empty".to_owned())
        }
        BodyRead::Complete(bytes) => serde_json::from_slice::<Value>(bytes)
            .map_err(|err| format!("the request body is not valid JSON: {err}")),
        BodyRead::TooLarge => Err(format!("the request body exceeds {body_limit} bytes")),
    };

    let group = Endpoint::from_path(parts.uri.path()).and_then(Endpoint::fault_group);
    let plan = state.faults.plan(group);
    if let Some(delay) = plan.delay {
        tokio::time::sleep(delay).await;
    }

    let mut record = RecordedRequest {
        method: parts.method.as_str().to_owned(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned()),
        headers: recorded_headers(&parts.headers),
        json: parsed.as_ref().ok().cloned(),
        status: 0,
        dropped: false,
        retry_after: None,
        received_at: Some(received_at),
        answered_at: None,
    };
    guard.finished = true;
    if plan.drop {
        record.dropped = true;
        record.answered_at = Some(Instant::now());
        state.recorder.record(record).await;
        return Err(Dropped);
    }
    let answer = if plan.error {
        injected_error(&plan)
    } else {
        state.answer(&parts, &body, &parsed)
    };
    record.status = answer.status.as_u16();
    record.retry_after = answer
        .headers
        .iter()
        .find(|(name, _)| *name == "retry-after")
        .and_then(|(_, value)| value.parse().ok());
    record.answered_at = Some(Instant::now());
    state.recorder.record(record).await;
    Ok(to_response(answer))
}

/// The body cap for a path: the configured one, or Userpilot's 50 MB for the bulk endpoints.
fn body_limit(state: &State, path: &str) -> usize {
    match Endpoint::from_path(path) {
        Some(endpoint) if endpoint.is_bulk() => state.max_body_bytes.max(BULK_MAX_BODY_BYTES),
        _ => state.max_body_bytes,
    }
}

/// The answer of an injected error, with `Retry-After` for 429 and 503 when configured.
fn injected_error(plan: &FaultPlan) -> Answer {
    let status = StatusCode::from_u16(plan.error_status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let answer = Answer::error(
        status,
        "injected_fault",
        "the mock injected this error on purpose (fault injection)",
        Value::Null,
    );
    match plan.retry_after {
        Some(secs) if matches!(status.as_u16(), 429 | 503) => {
            answer.with_header("retry-after", secs.to_string())
        }
        _ => answer,
    }
}

impl State {
    fn answer(&self, parts: &Parts, body: &BodyRead, parsed: &Result<Value, String>) -> Answer {
        let path = parts.uri.path();
        let Some(endpoint) = Endpoint::from_path(path) else {
            return Answer::error(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("no endpoint at {} {path}", parts.method),
                Value::Null,
            );
        };
        if parts.method != endpoint.method() {
            return Answer::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                &format!(
                    "{path} accepts {} only, got {}",
                    endpoint.method(),
                    parts.method
                ),
                Value::Null,
            )
            .with_header("allow", endpoint.method().to_string());
        }
        if endpoint.is_mock_own() {
            return Answer::json(StatusCode::OK, self.world().snapshot(SystemTime::now()));
        }
        if let Err(answer) = self.check_auth(&parts.headers) {
            return answer;
        }
        if let Err(answer) = self.check_api_version(&parts.headers) {
            return answer;
        }
        let admitted = endpoint.limit_group().map_or(Ok(()), |group| {
            self.limiter.try_admit(group).map_err(|wait| (group, wait))
        });
        if let Err((group, wait)) = admitted {
            let limit = self.limiter.limit(group);
            let secs = retry_after_secs(wait);
            return Answer::error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                &format!(
                    "rate limit exceeded for {path}: at most {} requests per {}",
                    limit.max_requests,
                    describe_window(limit.window)
                ),
                json!({ "retry_after": secs }),
            )
            .with_header("retry-after", secs.to_string());
        }
        match endpoint {
            Endpoint::BackgroundJobs => {
                return Answer::json(StatusCode::OK, self.world().jobs(SystemTime::now()));
            }
            Endpoint::BackgroundJob => {
                let id = path.trim_start_matches("/v1/background_jobs/");
                return match self.world().job(id, SystemTime::now()) {
                    Some(job) => Answer::json(StatusCode::OK, job),
                    None => Answer::error(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        &format!("no background job {id}"),
                        Value::Null,
                    ),
                };
            }
            _ => {}
        }
        if !endpoint.has_body() {
            return endpoint.accept(&Value::Null);
        }
        if let Err(answer) = check_content_type(&parts.headers) {
            return answer;
        }
        if let BodyRead::TooLarge = body {
            return Answer::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                &format!("the request body exceeds {} bytes", body_limit(self, path)),
                Value::Null,
            );
        }
        match parsed {
            Ok(json) => {
                let answer = endpoint.accept(json);
                if answer.status.is_success() {
                    self.apply(endpoint, json, answer)
                } else {
                    answer
                }
            }
            Err(message) => Answer::error(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                message,
                Value::Null,
            ),
        }
    }

    /// Changes the world as an accepted request does; a bulk identify becomes a job, or a 409
    /// while another job runs.
    fn apply(&self, endpoint: Endpoint, json: &Value, answer: Answer) -> Answer {
        let Some(body) = json.as_object() else {
            return answer;
        };
        let mut world = self.world();
        let ids = |field: &str| {
            body.get(field)
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice)
        };
        let bulk = |field: &str| -> Vec<Map<String, Value>> {
            body.get(field)
                .and_then(Value::as_array)
                .map(|rows| rows.iter().filter_map(|r| r.as_object().cloned()).collect())
                .unwrap_or_default()
        };
        let (kind, rows) = match endpoint {
            Endpoint::Identify => {
                world.identify(body);
                return answer;
            }
            Endpoint::CompaniesIdentify => {
                world.identify_company(body);
                return answer;
            }
            Endpoint::Track => {
                world.track(body);
                return answer;
            }
            Endpoint::DeleteUsers => {
                world.delete_users(ids("users"));
                return answer;
            }
            Endpoint::DeleteCompanies => {
                world.delete_companies(ids("companies"));
                return answer;
            }
            Endpoint::UsersBulkIdentify => (JobKind::Users, bulk("users")),
            Endpoint::CompaniesBulkIdentify => (JobKind::Companies, bulk("companies")),
            _ => return answer,
        };
        match world.submit_bulk(kind, rows, SystemTime::now()) {
            Ok(job) => Answer::json(StatusCode::ACCEPTED, job),
            Err(BulkRefusal::Busy(running)) => Answer::error(
                StatusCode::CONFLICT,
                "job_in_progress",
                &format!("bulk job {running} is still running; one bulk job runs at a time"),
                json!({ "job_id": running }),
            ),
        }
    }

    /// Checks `Authorization: Token <key>` when a key is configured. The messages never repeat
    /// the key that was sent or the one expected.
    fn check_auth(&self, headers: &HeaderMap) -> Result<(), Answer> {
        let Some(expected) = &self.api_key else {
            return Ok(());
        };
        let unauthorized = |code: &str, message: &str| {
            Answer::error(StatusCode::UNAUTHORIZED, code, message, Value::Null)
        };
        let Some(value) = headers.get(AUTHORIZATION) else {
            return Err(unauthorized(
                "missing_api_key",
                "the Authorization header is missing; expected 'Token <API_KEY>'",
            ));
        };
        let value = value.to_str().unwrap_or_default().trim();
        match value.split_once(' ') {
            Some((scheme, key)) if scheme.eq_ignore_ascii_case("token") => {
                if key.trim() == expected {
                    Ok(())
                } else {
                    Err(unauthorized("invalid_api_key", "the API key is not valid"))
                }
            }
            _ => Err(unauthorized(
                "invalid_authorization",
                "the Authorization header must have the form 'Token <API_KEY>'",
            )),
        }
    }

    fn check_api_version(&self, headers: &HeaderMap) -> Result<(), Answer> {
        if !self.require_api_version {
            return Ok(());
        }
        let details = json!({ "header": "x-api-version" });
        match headers.get("x-api-version") {
            Some(value) if value == API_VERSION => Ok(()),
            Some(value) => Err(Answer::error(
                StatusCode::BAD_REQUEST,
                "invalid_api_version",
                &format!(
                    "unsupported X-API-Version '{}'; expected {API_VERSION}",
                    String::from_utf8_lossy(value.as_bytes())
                ),
                details,
            )),
            None => Err(Answer::error(
                StatusCode::BAD_REQUEST,
                "missing_api_version",
                &format!("the X-API-Version header is required; expected {API_VERSION}"),
                details,
            )),
        }
    }
}

/// Requires `Content-Type: application/json` (parameters such as `charset` allowed); anything
/// else is 415 Unsupported Media Type.
fn check_content_type(headers: &HeaderMap) -> Result<(), Answer> {
    let details = json!({ "header": "content-type" });
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Err(Answer::error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the Content-Type header is missing; expected application/json",
            details,
        ));
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    let mime = text.split(';').next().unwrap_or_default().trim();
    if mime.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(Answer::error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            &format!("Content-Type must be application/json, got '{text}'"),
            details,
        ))
    }
}

fn describe_window(window: Duration) -> String {
    if window.subsec_nanos() == 0 {
        format!("{} s", window.as_secs())
    } else {
        format!("{} ms", window.as_millis())
    }
}

fn to_response(answer: Answer) -> Response<Body> {
    // Serialising a `Value` cannot fail; fall back to an empty object all the same.
    let bytes = serde_json::to_vec(&answer.body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = answer.status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in answer.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn faults_can_be_switched_off_while_running_and_answers_are_timed() {
        let mock = spawn(MockConfig {
            faults: FaultConfig {
                error_rate: 1.0,
                error_status: 503,
                retry_after: Some(2),
                ..FaultConfig::default()
            },
            ..MockConfig::default()
        })
        .await
        .expect("the mock starts");
        let client = reqwest::Client::new();
        let send = || async {
            client
                .post(mock.url("/v1/track"))
                .header("x-api-version", API_VERSION)
                .json(&json!({"user_id": "u1", "event_name": "e"}))
                .send()
                .await
                .expect("the mock answers")
        };
        let res = send().await;
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["retry-after"], "2");

        let invalid = FaultConfig {
            error_rate: 2.0,
            ..FaultConfig::default()
        };
        assert!(mock.set_faults(invalid).is_err());
        assert_eq!(mock.faults().error_rate, 1.0);
        mock.set_faults(FaultConfig::default())
            .expect("valid faults");
        assert_eq!(send().await.status(), 202);

        let requests = mock.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(
            (requests[0].status, requests[0].retry_after),
            (503, Some(2))
        );
        assert_eq!((requests[1].status, requests[1].retry_after), (202, None));
        for request in &requests {
            let (Some(received), Some(answered)) = (request.received_at, request.answered_at)
            else {
                panic!("untimed request {request:?}");
            };
            assert!(received <= answered);
        }
        assert!(requests[0].answered_at <= requests[1].received_at);
        mock.shutdown().await.expect("clean shutdown");
    }

    #[tokio::test]
    async fn a_request_whose_client_gives_up_is_counted_as_abandoned_not_recorded() {
        let mock = spawn(MockConfig {
            faults: FaultConfig {
                latency: Some(crate::Latency::fixed(Duration::from_secs(5))),
                ..FaultConfig::default()
            },
            ..MockConfig::default()
        })
        .await
        .expect("the mock starts");
        let res = reqwest::Client::new()
            .post(mock.url("/v1/track"))
            .header("x-api-version", API_VERSION)
            .json(&json!({"user_id": "u1", "event_name": "e"}))
            .timeout(Duration::from_millis(100))
            .send()
            .await;
        assert!(res.is_err_and(|err| err.is_timeout()));
        // The server notices the closed connection on its own schedule; poll briefly.
        for _ in 0..100 {
            if mock.abandoned() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(mock.abandoned(), 1);
        assert!(mock.requests().is_empty());
        mock.shutdown().await.expect("clean shutdown");
    }
}
