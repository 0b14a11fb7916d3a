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
//! | `POST /v1/users/bulk_identify` | `users`: 1 to 10,000 objects with `user_id`; `company_id`, `metadata` if present; metadata values primitives only | 202 job object; 409 while a job runs; 413 over 10,000; 400 `invalid_metadata` for an object or array value (whole request, no record named) |
//! | `POST /v1/companies/bulk_identify` | `companies`: likewise with `company_id` | likewise |
//! | `GET /v1/background_jobs`, `GET /v1/background_jobs/{id}` | none | 200 job objects (`job_id`, `status`, `total_rows`, `completed_rows`, …) |
//! | `GET /_mock/state` | none, no credentials (the mock's own) | 200 the state below |
//!
//! **State.** The mock keeps what Userpilot would hold after the requests it accepted (2xx, no
//! injected fault): each user's metadata, company and tracked events, each company's metadata,
//! and the bulk jobs ([`MockHandle::state`], `GET /_mock/state`, and [`MockConfig::state_file`]
//! written on stop). The rules it assumes where Userpilot documents little: an identify sets the
//! metadata keys it is sent and keeps the others; a user belongs to at most one company, linked by
//! identify's `company` object (whose other keys are company properties) or a bulk user's
//! `company_id`; deletes apply at once (Userpilot runs them daily); bulk rows apply in order at
//! [`MockConfig::bulk_rows_per_minute`], one job at a time. The `world` module has the details.
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
//! Choices where Userpilot documents nothing: the real-time endpoints do not type-check metadata
//! values (Userpilot asks for primitives, but both shipped integrations send nested values
//! as-is); rate limits count per server, not per key; the two delete endpoints share one limit;
//! a dropped HTTP/2 request resets its stream instead of closing the connection.
//!
//! **Bulk metadata.** Userpilot documents that bulk-identify metadata holds primitives only
//! (string, number, boolean or null) but not how it refuses anything else. The mock refuses a
//! bulk request in which any record's metadata has an object or array value with 400,
//! `error_code` `invalid_metadata`, the message "bulk metadata values must be strings, numbers,
//! booleans or null" and `details` `{"field":"users"}` (or `"companies"`): the wording and code
//! are the mock's own, and on purpose they name no record (no index, no id), so that a client
//! has to narrow a whole-request 400 down itself, for example by splitting the batch. These
//! checks come after the per-record structural ones (missing id, `metadata` not an object, …),
//! which still name the record, and nothing of a refused request reaches the state.
//!
//! Recording ([`MockConfig::record`]) appends one JSON line per request, see [`RecordedRequest`]:
//! `{"method","path","headers","json","status"}`, headers lower-cased, `authorization` (and other
//! credential headers) redacted to `"Token ***"`, `json` the parsed body or `null`, `status` what
//! was answered, `retry_after` the answer's `Retry-After` seconds (only when it carried one). A
//! dropped connection is recorded with `"status":0,"dropped":true`. In memory,
//! [`MockHandle::requests`] also gives when each request arrived and was answered, for checks such
//! as "the retry waited for `Retry-After`".
//!
//! **Faults** ([`FaultConfig`]): random errors, drops and latency at configured rates, and a
//! deterministic script ([`FaultConfig::script`]: "answer the next requests with 503, then 429,
//! then behave normally", 0 for a dropped connection). By default they apply to every request;
//! [`FaultConfig::endpoints`] restricts them to groups of endpoints ([`EndpointGroup`]: `identify`,
//! `companies`, `track`, `delete`, `bulk`, `validate`, `jobs`), for example to fail only the bulk
//! identifies while the real-time ones succeed. An injected answer changes no state and counts
//! against no rate limit. Faults can be changed while the server runs with
//! [`MockHandle::set_faults`] (which starts the new script from its first step), for example to
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
mod world;

pub use config::{
    API_VERSION, ConfigError, DEFAULT_MAX_BODY_BYTES, EndpointGroup, FaultConfig, FaultEndpoints,
    Latency, MockConfig, RateLimit, RateLimits,
};
pub use error::MockError;
pub use record::RecordedRequest;
pub use server::{MockHandle, MockServer, serve, spawn};
pub use world::{DEFAULT_BULK_ROWS_PER_MINUTE, MAX_BULK_RECORDS};
