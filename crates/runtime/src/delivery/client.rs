//! The delivery client: one pooled HTTP client and the layers every request passes through.
//!
//! [`DeliveryClient::send`] applies, in order: the endpoint's rate limit, the concurrency bound,
//! and one attempt under the per-attempt timeout; it repeats the last two steps per the retry
//! classification and policy. Reasons are scrubbed before they leave, so API keys never reach logs
//! or the dead-letter store: of the request's secrets and of everything its
//! [`crate::redact::Redactions`] mark, plus the credentials of `authorization`-like headers,
//! each as a whole token or, when long, anywhere (see [`crate::redact::scrub`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use tokio::sync::Semaphore;

use super::backoff::Backoff;
use super::classify::{
    Outcome, RetryLogic, SegmentRetryLogic, classify_status, classify_transport_error, retry_after,
};
use super::rate_limit::{RateLimit, RateLimitError, RateLimiter, SharedRateLimit};
use super::retry::{FinalOutcome, RetryPolicy};
use crate::request::{Method, Request};

/// The `user-agent` sent when a request sets none: `actionkit/<version>`.
pub const DEFAULT_USER_AGENT: &str = concat!("actionkit/", env!("CARGO_PKG_VERSION"));

/// The most response-body bytes kept for outcomes and reasons.
const MAX_KEPT_BODY_BYTES: usize = 64 * 1024;

/// The most response-body bytes read at all; a longer body is abandoned with its connection.
const MAX_READ_BODY_BYTES: usize = 1024 * 1024;

/// How delivery behaves; [`DeliveryConfig::default`] gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// The time one attempt may take, from connecting to reading the whole response (10 s).
    pub timeout: Duration,
    /// Attempts per event, the first one included (5).
    pub max_attempts: u32,
    /// No retry starts later than this after the event's first attempt (2 min).
    pub max_elapsed: Duration,
    /// The backoff ceiling of the first retry; it doubles per retry (1 s, as Userpilot suggests).
    pub backoff_base: Duration,
    /// The largest backoff ceiling (30 s).
    pub backoff_cap: Duration,
    /// The longest `Retry-After` honoured; longer requests are cut to this (60 s).
    pub max_retry_after: Duration,
    /// Requests in flight at once, across all keys (16).
    pub concurrency: usize,
    /// Rate limits per endpoint key; an empty list turns rate limiting off (empty by default; the
    /// destination YAML declares them).
    pub rate_limits: Vec<RateLimit>,
    /// The `user-agent` sent when a request sets none.
    pub user_agent: String,
    /// A fixed seed for the backoff jitter, for reproducible tests; `None` seeds from the OS.
    pub jitter_seed: Option<u64>,
    /// The pause after a busy answer (a request's `busy_statuses`) without `Retry-After` (5 s).
    pub busy_poll: Duration,
    /// The longest total wait on busy answers per request before it counts as out of retries
    /// (15 min); busy answers spend neither attempts nor `max_elapsed`.
    pub max_busy: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            timeout: Duration::from_secs(10),
            max_attempts: 5,
            max_elapsed: Duration::from_secs(120),
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
            concurrency: 16,
            rate_limits: Vec::new(),
            user_agent: DEFAULT_USER_AGENT.to_string(),
            jitter_seed: None,
            busy_poll: Duration::from_secs(5),
            max_busy: Duration::from_secs(15 * 60),
        }
    }
}

/// Why a delivery client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// A configuration value is out of range.
    #[error("invalid delivery config: {field} {problem}")]
    InvalidConfig {
        /// The offending field of [`DeliveryConfig`].
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The rate-limit list is invalid.
    #[error("invalid delivery config: {0}")]
    RateLimit(#[from] RateLimitError),
    /// The HTTP client could not be initialised (for example, no TLS roots).
    #[error("cannot build the http client: {0}")]
    HttpClient(String),
}

impl DeliveryConfig {
    /// Checks every value, naming the first one out of range.
    pub fn validate(&self) -> Result<(), DeliveryError> {
        let invalid = |field, problem| Err(DeliveryError::InvalidConfig { field, problem });
        if self.timeout.is_zero() {
            return invalid("timeout", "must be longer than zero");
        }
        if self.max_attempts == 0 {
            return invalid("max_attempts", "must be at least 1");
        }
        if self.concurrency == 0 {
            return invalid("concurrency", "must be at least 1");
        }
        if self.concurrency > Semaphore::MAX_PERMITS {
            return invalid("concurrency", "is too large");
        }
        if self.backoff_base > self.backoff_cap {
            return invalid("backoff_base", "must not be longer than backoff_cap");
        }
        if HeaderValue::from_str(&self.user_agent).is_err() {
            return invalid("user_agent", "must be visible ASCII text");
        }
        Ok(())
    }
}

/// Sends built requests: one pooled keep-alive HTTP client, rate limits, a concurrency bound,
/// retries with backoff, and a per-attempt timeout. Share one per destination instance.
pub struct DeliveryClient {
    http: reqwest::Client,
    config: DeliveryConfig,
    user_agent: HeaderValue,
    limiter: RateLimiter,
    in_flight: Semaphore,
    policy: RetryPolicy,
    logic: Arc<dyn RetryLogic>,
    shared: Option<Arc<dyn SharedRateLimit>>,
}

impl std::fmt::Debug for DeliveryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryClient")
            .field("config", &self.config)
            .field("logic", &self.logic)
            .finish_non_exhaustive()
    }
}

/// A request turned into wire form once, reused by every attempt.
struct Prepared {
    method: reqwest::Method,
    url: reqwest::Url,
    headers: HeaderMap,
    body: Option<Bytes>,
    /// Texts that must never appear in a reason: the request's header values.
    secrets: Vec<String>,
}

impl DeliveryClient {
    /// Builds a client from `config`, after validating it.
    pub fn new(config: DeliveryConfig) -> Result<Self, DeliveryError> {
        config.validate()?;
        let limiter = RateLimiter::new(&config.rate_limits)?;
        let user_agent = HeaderValue::from_str(&config.user_agent).map_err(|_| {
            DeliveryError::InvalidConfig {
                field: "user_agent",
                problem: "must be visible ASCII text",
            }
        })?;
        let http = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(config.concurrency)
            .tcp_nodelay(true)
            .tcp_keepalive(Duration::from_secs(60))
            .build()
            .map_err(|error| DeliveryError::HttpClient(error.to_string()))?;
        let backoff = match config.jitter_seed {
            Some(seed) => Backoff::with_seed(config.backoff_base, config.backoff_cap, seed),
            None => Backoff::new(config.backoff_base, config.backoff_cap),
        };
        let policy = RetryPolicy {
            max_attempts: config.max_attempts,
            max_elapsed: config.max_elapsed,
            backoff,
            busy_poll: config.busy_poll,
            max_busy: config.max_busy,
        };
        Ok(DeliveryClient {
            http,
            user_agent,
            limiter,
            in_flight: Semaphore::new(config.concurrency),
            policy,
            logic: Arc::new(SegmentRetryLogic),
            config,
            shared: None,
        })
    }

    /// Adds a rate limit shared with other processes: a request whose key it covers also waits
    /// for a slot of it (see the module docs).
    pub fn with_shared_rate_limit(mut self, shared: Arc<dyn SharedRateLimit>) -> Self {
        self.shared = Some(shared);
        self
    }

    /// Replaces the status classification (Segment's by default).
    pub fn with_retry_logic(mut self, logic: impl RetryLogic + 'static) -> Self {
        self.logic = Arc::new(logic);
        self
    }

    /// The configuration the client was built with.
    pub fn config(&self) -> &DeliveryConfig {
        &self.config
    }

    /// The client's rate limiter (for example, to pause a key from outside).
    pub fn rate_limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    /// Delivers `request`: rate limit, then concurrency, then one attempt under the per-attempt
    /// timeout, retried per the classification until delivered, failed for good, or out of budget.
    ///
    /// A 429 with `Retry-After` also pauses the request's rate-limit key for that long.
    pub async fn send(&self, request: &Request) -> FinalOutcome {
        let prepared = match self.prepare(request) {
            Ok(prepared) => prepared,
            Err(reason) => return FinalOutcome::not_sent(reason),
        };
        let key = request.rate_limit_key.as_deref();
        let prepared = &prepared;
        let busy = request.busy_statuses;
        let outcome =
            self.policy
                .run(move |_attempt| async move {
                    self.layered_attempt(key, prepared).await.busy_if(busy)
                })
                .await;
        tracing::debug!(
            request = ?request,
            verdict = ?outcome.verdict,
            attempts = outcome.attempts,
            status = outcome.status,
            "Delivery finished."
        );
        outcome
    }

    /// Makes exactly one attempt under the per-attempt timeout, bypassing rate limits and the
    /// concurrency bound.
    pub async fn send_once(&self, request: &Request) -> Outcome {
        match self.prepare(request) {
            Ok(prepared) => self.attempt(&prepared).await,
            Err(reason) => Outcome::Failed {
                status: None,
                reason,
            },
        }
    }

    /// Makes exactly one attempt behind the rate limit and the concurrency bound (so that it
    /// shares the instance's limits with the deliveries of the same client), without retrying,
    /// and scrubs the secrets from the answer's body as well as from the reason: for a person
    /// who asked to see what the destination answers to one request.
    pub async fn send_attempt(&self, request: &Request) -> Outcome {
        let prepared = match self.prepare(request) {
            Ok(prepared) => prepared,
            Err(reason) => {
                return Outcome::Failed {
                    status: None,
                    reason,
                };
            }
        };
        let key = request.rate_limit_key.as_deref();
        let outcome = self
            .layered_attempt(key, &prepared)
            .await
            .busy_if(request.busy_statuses);
        match outcome {
            Outcome::Delivered { status, body } => Outcome::Delivered {
                status,
                body: body.map(|text| redact(text, &prepared.secrets)),
            },
            other => other,
        }
    }

    /// One attempt behind the rate limit and the concurrency bound.
    async fn layered_attempt(&self, key: Option<&str>, prepared: &Prepared) -> Outcome {
        // The grant holds the rate-limit token until the answer is in (or the attempt failed).
        let (permit, grant) = match key {
            Some(key) => {
                let (permit, grant) = self
                    .limiter
                    .acquire_with(key, self.in_flight.acquire())
                    .await;
                (permit, Some(grant))
            }
            None => (self.in_flight.acquire().await, None),
        };
        let Ok(permit) = permit else {
            // The semaphore is never closed; this only guards against a future change.
            return Outcome::Failed {
                status: None,
                reason: "delivery client is shut down".to_string(),
            };
        };
        if let (Some(key), Some(shared)) = (key, &self.shared)
            && shared.limits(key)
        {
            wait_for_shared_slot(shared.as_ref(), key).await;
        }
        let outcome = self.attempt(prepared).await;
        drop(grant);
        drop(permit);
        if let (
            Some(key),
            Outcome::Retry {
                status: Some(429),
                after: Some(after),
                ..
            },
        ) = (key, &outcome)
        {
            self.limiter.pause(key, *after);
        }
        outcome
    }

    /// One attempt under the per-attempt timeout, with secrets scrubbed from the reason.
    async fn attempt(&self, prepared: &Prepared) -> Outcome {
        let timeout = self.config.timeout;
        let outcome = match tokio::time::timeout(timeout, self.exchange(prepared)).await {
            Ok(outcome) => outcome,
            Err(_elapsed) => Outcome::Retry {
                status: None,
                // Segment's `TimeoutError` wording.
                reason: format!("Request timed out after {}ms", timeout.as_millis()),
                after: None,
            },
        };
        outcome.map_reason(|reason| redact(reason, &prepared.secrets))
    }

    /// Sends the request and reads the response.
    async fn exchange(&self, prepared: &Prepared) -> Outcome {
        let mut builder = self
            .http
            .request(prepared.method.clone(), prepared.url.clone())
            .headers(prepared.headers.clone());
        if let Some(body) = &prepared.body {
            builder = builder.body(body.clone());
        }
        let mut response = match builder.send().await {
            Ok(response) => response,
            Err(error) => return classify_transport_error(&error),
        };
        let status = response.status();
        let wait = retry_after(
            response.headers(),
            SystemTime::now(),
            self.config.max_retry_after,
        );
        let mut kept: Vec<u8> = Vec::new();
        let mut read = 0usize;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    read += chunk.len();
                    let room = MAX_KEPT_BODY_BYTES.saturating_sub(kept.len());
                    kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if read > MAX_READ_BODY_BYTES {
                        break;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    // A broken body after a 2xx head is still a failed attempt: the destination
                    // may not have processed the request.
                    return classify_transport_error(&error);
                }
            }
        }
        let body = String::from_utf8_lossy(&kept).into_owned();
        classify_status(self.logic.as_ref(), status, Some(body), wait)
    }

    /// Turns a [`Request`] into wire form, or says why it cannot be sent.
    fn prepare(&self, request: &Request) -> Result<Prepared, String> {
        let url = reqwest::Url::parse(&request.url)
            .map_err(|error| format!("invalid request url: {error}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "invalid request url: unsupported scheme {:?}",
                url.scheme()
            ));
        }
        let mut headers = HeaderMap::with_capacity(request.headers.len() + 2);
        let mut secrets = request.redactions.needles(request);
        for (name, value) in &request.headers {
            let header_name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("invalid header name {name:?}"))?;
            let mut header_value = HeaderValue::from_str(value)
                .map_err(|_| format!("invalid value for header {name:?}"))?;
            header_value.set_sensitive(true);
            headers.append(header_name, header_value);
            if is_credential_header(name) {
                secrets.extend(credential_needles(value));
            }
        }
        secrets.retain(|s| !s.is_empty());
        if !headers.contains_key(USER_AGENT) {
            headers.insert(USER_AGENT, self.user_agent.clone());
        }
        let body = match &request.json {
            Some(json) => {
                if !headers.contains_key(CONTENT_TYPE) {
                    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
                let bytes = crate::sign::body_bytes(json)
                    .map_err(|error| format!("cannot serialize the json body: {error}"))?;
                Some(Bytes::from(bytes))
            }
            None => None,
        };
        if let Some(signer) = &request.signer {
            // The signature covers exactly the bytes sent (none without a body).
            let (name, value) = signer.header(body.as_deref().unwrap_or_default());
            let header_name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("invalid header name {name:?}"))?;
            let mut header_value = HeaderValue::from_str(&value)
                .map_err(|_| format!("invalid value for header {name:?}"))?;
            header_value.set_sensitive(true);
            headers.insert(header_name, header_value);
            secrets.push(value);
        }
        Ok(Prepared {
            method: to_reqwest_method(request.method),
            url,
            headers,
            body,
            secrets,
        })
    }
}

fn to_reqwest_method(method: Method) -> reqwest::Method {
    match method {
        Method::Get => reqwest::Method::GET,
        Method::Post => reqwest::Method::POST,
        Method::Put => reqwest::Method::PUT,
        Method::Patch => reqwest::Method::PATCH,
        Method::Delete => reqwest::Method::DELETE,
        Method::Head => reqwest::Method::HEAD,
    }
}

/// What to scrub from reasons for a credential header's value: the whole value and the part after
/// its scheme (`Token abc` gives `Token abc` and `abc`); nothing when the credential is empty, so
/// that an empty key never hides the scheme word (`Token `) in a destination's answer.
fn credential_needles(value: &str) -> Vec<String> {
    match value.split_once(' ') {
        Some((_, credentials)) if credentials.trim().is_empty() => Vec::new(),
        Some((_, credentials)) => vec![value.to_owned(), credentials.trim().to_owned()],
        None if value.trim().is_empty() => Vec::new(),
        None => vec![value.to_owned()],
    }
}

/// Whether a header's value is a credential by its name alone (`authorization`, `x-api-key`,
/// `x-auth-token`, …): scrubbed from reasons even when the request was built by hand and carries
/// no redactions.
fn is_credential_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "authorization",
        "key",
        "token",
        "secret",
        "password",
        "signature",
    ]
    .iter()
    .any(|part| name.contains(part))
}

/// `text` with every needle scrubbed (see [`crate::redact::scrub`]).
pub(crate) fn redact(text: String, needles: &[String]) -> String {
    if needles.is_empty() {
        return text;
    }
    crate::redact::scrub(&text, needles)
}

/// Waits for a slot of `shared` for `key`, asking again after a pause that grows from 1 s to
/// 10 s while the shared state cannot be reached: nothing is sent without a slot.
async fn wait_for_shared_slot(shared: &dyn SharedRateLimit, key: &str) {
    let mut pause = Duration::from_secs(1);
    loop {
        match shared.acquire(key).await {
            Ok(()) => return,
            Err(reason) => {
                tracing::warn!(
                    limit = key,
                    reason = %reason,
                    retry_in_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                    "The shared rate limit cannot be reached; waiting before asking again."
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(10));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_scrubs_whole_tokens_and_long_needles() {
        let needles = vec![
            "Token abcdef123456".to_string(),
            "abcdef123456".to_string(),
            "1".to_string(),
        ];
        assert_eq!(
            redact("bad key Token abcdef123456 (2 of 3)".to_string(), &needles),
            "bad key [redacted] (2 of 3)"
        );
        assert_eq!(
            redact("unknown key abcdef123456".to_string(), &needles),
            "unknown key [redacted]"
        );
        assert_eq!(
            redact("version 2020-09-21, id 1".to_string(), &needles),
            "version 2020-09-21, id [redacted]"
        );
    }

    #[test]
    fn empty_credentials_scrub_nothing() {
        assert_eq!(
            credential_needles("Token abc123"),
            vec!["Token abc123".to_owned(), "abc123".to_owned()]
        );
        assert_eq!(credential_needles("abc123"), vec!["abc123".to_owned()]);
        assert!(credential_needles("Token ").is_empty());
        assert!(credential_needles("Bearer   ").is_empty());
        assert!(credential_needles("").is_empty());
    }

    #[test]
    fn credential_headers_are_known_by_name() {
        for name in [
            "authorization",
            "Proxy-Authorization",
            "x-api-key",
            "x-auth-token",
        ] {
            assert!(is_credential_header(name), "{name}");
        }
        for name in ["content-type", "x-api-version", "accept"] {
            assert!(!is_credential_header(name), "{name}");
        }
    }

    #[test]
    fn config_validation_names_the_field() {
        let config = DeliveryConfig {
            concurrency: 0,
            ..DeliveryConfig::default()
        };
        let error = config.validate().unwrap_err().to_string();
        assert_eq!(
            error,
            "invalid delivery config: concurrency must be at least 1"
        );
        let config = DeliveryConfig {
            user_agent: "bad\nagent".to_string(),
            ..DeliveryConfig::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("user_agent")
        );
    }
}
