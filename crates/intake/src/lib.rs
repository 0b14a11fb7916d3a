//! Segment-compatible HTTP Tracking API intake.
//!
//! Two layers:
//! - a pure core, [`parse_request`], that authenticates, checks, inflates, parses and normalises
//!   one request into [`NormalizedEvent`]s (no IO, no async; fuzzed and property-tested);
//! - an axum [`router`] serving `POST /v1/{identify,track,page,screen,group,alias,batch}`,
//!   `GET /healthz`, `GET /readyz` and `GET /metrics`, handing accepted events to an
//!   [`EventSink`] (the durable queue) and answering only after the sink has them.
//!
//! # Responses
//! - all events stored: `200 {"success": true, "accepted": N}`;
//! - a batch with rejected events: `400 {"success": false, "accepted": N, "rejected":
//!   [{"index": i, "code": "...", "message": "..."}], "error": {"code": "invalid_events", ...}}`;
//!   the events not listed were stored. 400 rather than 200 because something was dropped, and
//!   rather than 207 because Segment's libraries retry non-4xx answers, which would store the
//!   valid events twice;
//! - a whole request refused: `{"success": false, "accepted": 0, "error": {"code", "message"}}`
//!   with 401 (write key missing or wrong), 400 (malformed JSON, bad UTF-8, too deep, invalid
//!   event), 413 (body or inflated body too large), 415 (content type or encoding), 404/405,
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
//! - `Content-Type` must be `application/json` (a `charset` other than UTF-8 is refused);
//!   `text/plain` is accepted too by default ([`IntakeConfig::accept_text_plain`]), as browsers
//!   using analytics.js send it to avoid a CORS preflight. A missing content type is refused.
//! - `Content-Encoding: gzip` (or `x-gzip`, multi-member) is inflated with a cap equal to the
//!   request limit; anything past the cap is never produced.
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
//!
//! # Cost
//! Each event is read one level deep: its top-level values stay slices of the request body
//! (validated by the parser, never turned into a `serde_json::Value` tree), the fields the rules
//! look at are decoded, the few that change get new text, and the event is written back by
//! concatenation. Values the rules leave alone are therefore stored exactly as sent. Because a
//! skipping parse accepts two things a full parse refuses (numbers out of range such as `1e400`,
//! and lone UTF-16 surrogate escapes), the pre-parse depth scan flags bodies that contain an
//! exponent or a surrogate escape, and their events also get a full parse, so such an event is
//! refused at intake as before rather than stored and dead-lettered later. Measured with
//! `cargo bench -p actionkit-intake --bench parse` (CPU time per 100-event batch) and the
//! `serve_load` benchmark of the `actionkit` crate.

mod body;
mod config;
mod error;
mod event;
mod metrics;
mod parse;
mod raw;
mod server;

pub use config::{
    ConfigError, DEFAULT_MAX_BATCH_BYTES, DEFAULT_MAX_BATCH_EVENTS, DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_EVENT_BYTES, IntakeConfig, MAX_CONFIGURABLE_DEPTH, MAX_WRITE_KEY_BYTES, Source,
    WriteKey,
};
pub use error::{ErrorCode, ItemRejection, Rejection};
pub use event::{EventType, MAX_MESSAGE_ID_CHARS, NormalizedEvent, is_enabled_for};
pub use metrics::{
    ACCEPTED_TOTAL, InstallError, LATENCY_BUCKETS, MetricsRegistry, RECEIVED_TOTAL, REJECTED_TOTAL,
    REQUEST_DURATION, REQUESTS_TOTAL,
};
pub use parse::{Accepted, PathKind, RequestMeta, parse_request};
pub use server::{
    BoxFuture, DEFAULT_MAX_IN_FLIGHT, EventSink, IntakeState, NotNow, SinkError, router,
};
