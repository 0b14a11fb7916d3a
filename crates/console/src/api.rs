//! The routes: the page's assets under `/console` and the JSON API under `/console/api`.
//!
//! | Route | |
//! |---|---|
//! | `GET /console`, `/console/` | the page |
//! | `GET /console/{file}` | its script, style sheet and example events |
//! | `GET /console/api/destinations` | every destination, action, field and preset |
//! | `GET /console/api/instances` | the configured instances, secrets masked |
//! | `POST /console/api/test` | the Event Tester |
//! | `POST /console/api/preview` | the mapping editor's preview and YAML |
//! | `POST /console/api/send` | the Event Tester's real send, with each answer |
//! | `GET /console/api/about` | the version, and whether there is a queue (serve) |
//! | `GET /console/api/overview` | the delivery overview (serve only) |
//! | `POST /console/api/dlq/list`, `…/show`, `…/replay`, `…/purge` | the dead-letter queue (serve only) |
//!
//! Every API answer is JSON; an error is `{"error": "<what and where>"}` with a real status.
//! Every answer carries headers that keep it out of frames and caches and forbid scripts from
//! anywhere but the console itself.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, get, post};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::{Console, assets, auth, describe, dlq, overview, send, tester};

/// The state every handler shares.
#[derive(Clone)]
pub struct Shared {
    pub(crate) console: Arc<Console>,
}

/// An API error: a status and a message naming what and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// What the error says.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({"error": self.message}))).into_response()
    }
}

/// The headers every console answer carries.
const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'none'; base-uri 'none'",
    ),
    ("cache-control", "no-store"),
];

async fn security_headers(req: axum::extract::Request, next: middleware::Next) -> Response {
    let mut res = next.run(req).await;
    for (name, value) in SECURITY_HEADERS {
        res.headers_mut().insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    res
}

/// A `405` naming the method the route takes.
fn only(method: Method) -> impl Fn() -> std::future::Ready<Response> + Clone {
    move || {
        let mut res = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("this route only takes {method}"),
        )
        .into_response();
        if let Ok(value) = HeaderValue::from_str(method.as_str()) {
            res.headers_mut().insert(header::ALLOW, value);
        }
        std::future::ready(res)
    }
}

fn get_only<H, T>(handler: H) -> MethodRouter<Shared>
where
    H: axum::handler::Handler<T, Shared>,
    T: 'static,
{
    get(handler).fallback(only(Method::GET))
}

fn post_only<H, T>(handler: H) -> MethodRouter<Shared>
where
    H: axum::handler::Handler<T, Shared>,
    T: 'static,
{
    post(handler).fallback(only(Method::POST))
}

pub fn router(console: Arc<Console>) -> Router {
    let shared = Shared { console };
    let api = Router::new()
        .route("/console/api/destinations", get_only(destinations))
        .route("/console/api/instances", get_only(instances))
        .route("/console/api/test", post_only(test))
        .route("/console/api/preview", post_only(preview))
        .route("/console/api/send", post_only(send_event))
        .route("/console/api/about", get_only(about))
        .route("/console/api/overview", get_only(overview))
        .route("/console/api/dlq/list", post_only(dlq_list))
        .route("/console/api/dlq/show", post_only(dlq_show))
        .route("/console/api/dlq/replay", post_only(dlq_replay))
        .route("/console/api/dlq/purge", post_only(dlq_purge))
        .route("/console/api/{*rest}", any(unknown_route))
        .route_layer(middleware::from_fn_with_state(shared.clone(), auth::guard));
    Router::new()
        .route("/console", get_only(page))
        .route("/console/", get_only(page))
        .route("/console/{file}", get_only(asset))
        .merge(api)
        .layer(middleware::from_fn(security_headers))
        .with_state(shared)
}

async fn page() -> Response {
    assets::serve("index.html")
}

async fn asset(Path(file): Path<String>) -> Response {
    assets::serve(&file)
}

async fn unknown_route(Path(rest): Path<String>) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no console API route /console/api/{rest}"),
    )
}

async fn destinations(State(shared): State<Shared>) -> axum::Json<Value> {
    axum::Json(describe::destinations(&shared.console.registry))
}

async fn instances(State(shared): State<Shared>) -> axum::Json<Value> {
    axum::Json(describe::instances(&shared.console.instances))
}

async fn about(State(shared): State<Shared>) -> axum::Json<Value> {
    axum::Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "queue": shared.console.deliveries.is_some(),
    }))
}

/// The delivery overview. The counts are in memory, so they are answered even when the
/// queue cannot be read; then `queue` is `null` and `queue_error` says so.
async fn overview(State(shared): State<Shared>) -> Result<axum::Json<Value>, ApiError> {
    let console = &shared.console;
    let deliveries = dlq::deliveries(console)?;
    let (stats, queue_error) = match deliveries.stats().await {
        Ok(stats) => (stats, None),
        Err(_) => (Value::Null, Some(dlq::unavailable().message().to_owned())),
    };
    let activity = deliveries.activity();
    let mut answer = overview::overview(&console.instances, stats, &activity);
    if let (Some(error), Value::Object(map)) = (queue_error, &mut answer) {
        map.insert("queue_error".to_owned(), Value::String(error));
    }
    Ok(axum::Json(answer))
}

/// Parses a JSON body into `T`, naming the problem.
fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid request body: {err}"),
        )
    })
}

async fn test(State(shared): State<Shared>, bytes: Bytes) -> Result<axum::Json<Value>, ApiError> {
    let input = body(&bytes)?;
    tester::test(&shared.console, input).map(axum::Json)
}

async fn preview(
    State(shared): State<Shared>,
    bytes: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    let input = body(&bytes)?;
    tester::preview(&shared.console, input).map(axum::Json)
}

async fn send_event(
    State(shared): State<Shared>,
    bytes: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    let input = body(&bytes)?;
    send::send(&shared.console, input).await.map(axum::Json)
}

async fn dlq_list(
    State(shared): State<Shared>,
    bytes: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    dlq::deliveries(&shared.console)?;
    let input = body(&bytes)?;
    dlq::list(&shared.console, input).await.map(axum::Json)
}

async fn dlq_show(
    State(shared): State<Shared>,
    bytes: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    dlq::deliveries(&shared.console)?;
    let input = body(&bytes)?;
    dlq::show(&shared.console, input).await.map(axum::Json)
}

async fn dlq_replay(
    State(shared): State<Shared>,
    bytes: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    dlq::deliveries(&shared.console)?;
    let input = body(&bytes)?;
    dlq::replay(&shared.console, input).await.map(axum::Json)
}

async fn dlq_purge(
    State(shared): State<Shared>,
    bytes: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    dlq::deliveries(&shared.console)?;
    let input = body(&bytes)?;
    dlq::purge(&shared.console, input).await.map(axum::Json)
}
