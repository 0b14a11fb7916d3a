//! A local stand-in for Userpilot's server-side HTTP API, for demos and tests.
//!
//! It serves the endpoints Segment's Userpilot Cloud (Actions) destination calls, with the same
//! paths and header checks, answers 202 like Userpilot, enforces Userpilot's documented rate
//! limits, can inject faults, and records every request it receives.
//!
//! | Method + path | Required body | Success |
//! |---|---|---|
//! | `POST /v1/identify` | `user_id` (non-empty string); `metadata`, `company` objects if present | 202 `{}` |
//! | `POST /v1/companies/identify` | `company_id` (non-empty string); `metadata` object if present | 202 `{}` |
//! | `POST /v1/track` | `user_id`, `event_name` (non-empty strings); `metadata` object if present | 202 `{}` |
//! | `DELETE /v1/users` | `users`: non-empty array of strings (`""` allowed) | 202 `{"message":"N users were scheduled for deletion","scheduled":N}` |
//! | `DELETE /v1/companies` | `companies`: same | 202 likewise |
//! | `GET /v1/validate` | none | 200 `{}` |
//!
//! Errors use Userpilot's documented body shape
//! `{"errors":[{"error","error_code","message","details"}]}`; the values are the mock's own
//! (`error` is the status reason phrase, `error_code` a snake_case code such as `missing_field`,
//! `details` names the offending field or header, e.g. `{"field":"user_id"}`). The order of checks
//! and all status codes are described in the `server` module; in short: 404 unknown path, 405
//! wrong method, 401 bad key, 400 missing `X-API-Version`, 429 beyond the rate limit (with
//! `Retry-After` in whole seconds), 415 when `Content-Type` is not `application/json`, 413 beyond
//! the body cap, 400 for invalid JSON or missing fields.
//!
//! Choices where Userpilot documents nothing: metadata values are not type-checked (Userpilot asks
//! for primitives, but both shipped integrations send nested values as-is); rate limits count per
//! server, not per key; the two delete endpoints share one limit; a dropped HTTP/2 request resets
//! its stream instead of closing the connection.
//!
//! Recording ([`MockConfig::record`]) appends one JSON line per request, see [`RecordedRequest`]:
//! `{"method","path","headers","json","status"}`, headers lower-cased, `authorization` (and other
//! credential headers) redacted to `"Token ***"`, `json` the parsed body or `null`, `status` what
//! was answered, `retry_after` the answer's `Retry-After` seconds (only when it carried one). A
//! dropped connection is recorded with `"status":0,"dropped":true`. In memory,
//! [`MockHandle::requests`] also gives when each request arrived and was answered, for checks such
//! as "the retry waited for `Retry-After`".
//!
//! Faults can be changed while the server runs with [`MockHandle::set_faults`], for example to
//! let a failing destination recover before a dead-letter replay.
//!
//! ```no_run
//! # async fn demo() -> Result<(), actionkit_mock_userpilot::MockError> {
//! use actionkit_mock_userpilot::{MockConfig, spawn};
//! let mock = spawn(MockConfig { api_key: Some("test-key".into()), ..MockConfig::default() }).await?;
//! let endpoint = mock.base_url(); // "http://127.0.0.1:PORT/"
//! // ... point a client at `endpoint`, then inspect what it sent:
//! let requests = mock.requests();
//! # let _ = (endpoint, requests);
//! mock.shutdown().await
//! # }
//! ```

mod api;
mod config;
mod error;
mod faults;
mod rate;
mod record;
mod server;

pub use config::{
    API_VERSION, ConfigError, DEFAULT_MAX_BODY_BYTES, FaultConfig, Latency, MockConfig, RateLimit,
    RateLimits,
};
pub use error::MockError;
pub use record::RecordedRequest;
pub use server::{MockHandle, MockServer, serve, spawn};
