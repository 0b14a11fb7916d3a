//! Segment-compatible HTTP Tracking API intake.
//!
//! Two layers:
//! - a pure core, [`parse_request`], that authenticates, checks, inflates, parses and normalises
//!   one request into [`NormalizedEvent`]s (no IO, no async; fuzzed and property-tested);
//! - an axum [`router`] serving every path Segment's and RudderStack's client libraries post to
//!   ([`TRACKING_ROUTES`]: `/v1/{identify,track,page,screen,group,alias}`, the short forms
//!   `/v1/{i,t,p,s,g,a}` of analytics.js, and the batch paths `/v1/batch`, `/v1/b` and
//!   `/v1/import`), analytics.js's settings and telemetry endpoints, `GET /healthz`,
//!   `GET /readyz` and `GET /metrics`, with CORS on every answer, handing accepted events to an
//!   [`EventSink`] (the durable queue) and answering only after the sink has them.
//!
//! # Responses
//! - all events stored: `200 {"success": true, "accepted": N}`;
//! - a batch with some events rejected: `200 {"success": true, "accepted": N, "rejected":
//!   [{"index": i, "code": "...", "message": "..."}], "message": "..."}`; the events not listed
//!   were stored. 200 rather than 400 because of what the clients do with a 400: analytics-go
//!   retries it ten times, analytics_flutter and RudderStack's Android and iOS SDKs forever, so
//!   the valid events would be stored again on every retry; the libraries that drop on 400
//!   (analytics.js, analytics-node, analytics-python, …) treat 200 as done as well. Nothing is
//!   lost silently: the answer lists each rejected event and `/metrics` counts it;
//! - a batch with every event rejected: `400` with the same `rejected` list (nothing was stored,
//!   so a retry cannot duplicate anything);
//! - a whole request refused: `{"success": false, "accepted": 0, "error": {"code", "message"}}`
//!   with 401 (write key missing or wrong), 400 (malformed JSON, bad UTF-8, too deep, invalid
//!   event), 403 (a browser origin outside `allowed_origins`), 413 (body or inflated body too
//!   large), 415 (a content encoding other than gzip), 404/405,
//!   503 + `Retry-After` (queue full, or too many requests in flight; nothing stored), 500
//!   (queue failed; nothing stored).
//!
//! Every refusal also repeats `code` and `message` at the top level of the body, where Segment's
//! client libraries look for them when they report an error.
//!
//! # Choices (where Segment differs or is silent)
//! - Real status codes: Segment answers 200 to events it drops; we never do.
//! - Write key: HTTP Basic user name, else `X-Write-Key`, else the body's `writeKey`. A key in a
//!   header is checked before the body is read and wins over a key in the body. `Authorization:
//!   Bearer` (Segment's OAuth) is not supported and is ignored. Keys are compared in constant time
//!   against every configured source.
//! - `Content-Type` is not checked: the body is read as JSON whatever the header says
//!   (analytics.js sends `text/plain`, RudderStack's Node SDK a form type, some clients none). A
//!   body that is not JSON is a 400 whose message names the content type it came with.
//! - `Content-Encoding: gzip` (or `x-gzip`, multi-member) is inflated with a cap equal to the
//!   request limit; anything past the cap is never produced. A body starting with gzip's magic
//!   bytes is inflated even without the header.
//! - CORS ([`Cors`]): any origin by default, as Segment's API allows, or a configured list; the
//!   request's origin is echoed in `Access-Control-Allow-Origin` on every answer, errors
//!   included, and a browser request from an origin outside the list is refused with 403.
//! - analytics.js's settings (`GET /v1/projects/{writeKey}/settings`, see [`browser_settings`])
//!   are answered for known write keys, pointing the library back at this server, and with one
//!   and the same 404 for every unknown key; its telemetry (`POST /v1/m`) is answered 200 and
//!   dropped.
//! - Limits (configurable): 32 KB per event and per single call, 500 KB per batch body (after
//!   inflating), 2,500 events per batch (later items rejected one by one), nesting depth 64 per
//!   event.
//! - Required: `userId` or `anonymousId` (strings, or numbers which are stored as strings); track
//!   needs a non-blank `event`; group needs `groupId`; alias needs `previousId` and `userId`;
//!   batch items need a known `type` (the path's type overrides any `type` in a single call).
//!   `properties`, `traits`, `context`, `integrations` must be objects when present; timestamps
//!   must be ISO-8601 strings; `messageId` must be a string of at most 100 characters. Unknown
//!   fields are kept.
//! - Filled: `messageId` (random UUID v4) when absent or empty; `receivedAt` (always
//!   overwritten); `sentAt` from the batch when the item has none; `timestamp` per
//!   segment-spec §1: a caller's `timestamp` is kept as is (and copied to `originalTimestamp`
//!   when that is absent; Segment would skew-correct it when `sentAt` is present); otherwise
//!   `receivedAt − (sentAt − originalTimestamp)`, or `originalTimestamp`, or `receivedAt`.
//!   `version` and `context.ip` are not filled.
//! - Batch-level `context` and `integrations` are merged into each item one level deep (the
//!   item's keys win); `writeKey` is removed from stored events.
//! - `integrations` are not applied at intake: events are stored and the dispatcher asks
//!   [`is_enabled_for`].
//! - A lone UTF-16 surrogate escape (`"\ud83d"`, which JavaScript writes for a string cut inside
//!   an emoji) is read as U+FFFD REPLACEMENT CHARACTER ([`json::replace_lone_surrogates`]):
//!   Segment forwards such events, and a Rust string cannot hold half a character. The event is
//!   accepted and delivered with `\ufffd` in place of the lone unit.
//!
//! # Cost
//! Each event is read one level deep: its top-level values stay slices of the request body
//! (validated by the parser, never turned into a `serde_json::Value` tree), the fields the rules
//! look at are decoded, the few that change get new text, and the event is written back by
//! concatenation. Values the rules leave alone are therefore stored exactly as sent. Because a
//! skipping parse accepts what a full parse refuses (numbers out of range such as `1e400`), the
//! pre-parse depth scan flags bodies that contain an exponent or a surrogate escape; such a body
//! has its lone surrogates replaced first, and its events also get a full parse, so an event with
//! a number out of range is refused at intake rather than stored and dead-lettered later. Measured with
//! `cargo bench -p actionkit-intake --bench parse` (CPU time per 100-event batch) and the
//! `serve_load` benchmark of the `actionkit` crate.

mod body;
mod config;
mod error;
mod event;
pub mod json;
mod metrics;
mod parse;
mod raw;
mod routes;
mod server;
mod settings;

pub use config::{
    ConfigError, Cors, DEFAULT_MAX_BATCH_BYTES, DEFAULT_MAX_BATCH_EVENTS, DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_EVENT_BYTES, IntakeConfig, MAX_CONFIGURABLE_DEPTH, MAX_WRITE_KEY_BYTES, PublicUrl,
    Source, WriteKey,
};
pub use error::{ErrorCode, ItemRejection, Rejection};
pub use event::{EventType, MAX_MESSAGE_ID_CHARS, NormalizedEvent, is_enabled_for};
pub use metrics::{
    ACCEPTED_TOTAL, InstallError, LATENCY_BUCKETS, MetricsRegistry, RECEIVED_TOTAL, REJECTED_TOTAL,
    REQUEST_DURATION, REQUESTS_TOTAL,
};
pub use parse::{Accepted, PathKind, RequestMeta, parse_request};
pub use routes::{Route, SETTINGS_PATH, SETTINGS_PATH_SHORT, TELEMETRY_PATH, TRACKING_ROUTES};
pub use server::{
    BoxFuture, DEFAULT_MAX_IN_FLIGHT, EventSink, IntakeState, NotNow, SinkError, router,
};
pub use settings::browser_settings;
