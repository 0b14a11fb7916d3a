//! Recording of received requests: an append-only JSON Lines file, an in-memory list and counters
//! by answered status.
//!
//! Each line is one [`RecordedRequest`]. A line is written with a single write and flushed while a
//! lock is held, so lines never interleave, and the in-memory list has the same order as the file.
//! Credential-bearing headers are redacted before anything is stored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::error::MockError;

/// Headers whose values are replaced by [`redact`] before recording.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
];

/// One request as the mock received and answered it; one line of the record file.
///
/// ```json
/// {"method":"POST","path":"/v1/track","headers":{"authorization":"Token ***","content-type":"application/json"},"json":{"user_id":"u1","event_name":"e"},"status":202}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// The HTTP method, e.g. `POST`.
    pub method: String,
    /// The request path, with the query string when there was one.
    pub path: String,
    /// The headers, names lower-cased, repeated headers joined with `", "`, and credentials
    /// redacted (`Authorization: Token abc` is recorded as `"Token ***"`).
    pub headers: BTreeMap<String, String>,
    /// The body parsed as JSON, or `null` when it was empty or not valid JSON.
    pub json: Option<serde_json::Value>,
    /// The status the mock answered, or 0 when it dropped the connection.
    pub status: u16,
    /// True when the connection was closed without an answer (then `status` is 0). Written only
    /// when true.
    #[serde(default, skip_serializing_if = "is_false")]
    pub dropped: bool,
    /// The `Retry-After` the answer carried, in seconds (injected 429 and 503 answers when
    /// configured, and rate-limit 429s). Written only when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// When the request's head arrived, before its body was read and any injected delay. Kept in
    /// memory only (an `Instant` means nothing outside the process), `None` when read from a file.
    #[serde(skip)]
    pub received_at: Option<Instant>,
    /// When the answer was decided (or the connection dropped), right before it was sent. Kept in
    /// memory only, like `received_at`.
    #[serde(skip)]
    pub answered_at: Option<Instant>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// Converts request headers into the recorded form.
pub(crate) fn recorded_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let name = name.as_str().to_ascii_lowercase();
        let text = String::from_utf8_lossy(value.as_bytes());
        let text = if SECRET_HEADERS.contains(&name.as_str()) {
            redact(&text)
        } else {
            text.into_owned()
        };
        out.entry(name)
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&text);
            })
            .or_insert(text);
    }
    out
}

/// Keeps an authorization scheme and hides the credential: `"Token abc"` → `"Token ***"`,
/// `"abc"` → `"***"`.
pub(crate) fn redact(value: &str) -> String {
    match value.trim().split_once(' ') {
        Some((scheme, _)) if !scheme.is_empty() => format!("{scheme} ***"),
        _ => "***".to_owned(),
    }
}

/// Where recorded requests go.
#[derive(Debug)]
pub(crate) struct Recorder {
    file: Option<(PathBuf, tokio::sync::Mutex<tokio::fs::File>)>,
    memory: Option<Mutex<Vec<RecordedRequest>>>,
    counts: Mutex<BTreeMap<u16, u64>>,
    write_errors: AtomicU64,
}

impl Recorder {
    /// Opens (creating if needed) the record file for appending.
    pub(crate) async fn open(path: Option<&Path>, keep_in_memory: bool) -> Result<Self, MockError> {
        let file = match path {
            Some(path) => {
                let file = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .await
                    .map_err(|source| MockError::Record {
                        path: path.to_owned(),
                        source,
                    })?;
                Some((path.to_owned(), tokio::sync::Mutex::new(file)))
            }
            None => None,
        };
        Ok(Self {
            file,
            memory: keep_in_memory.then(|| Mutex::new(Vec::new())),
            counts: Mutex::new(BTreeMap::new()),
            write_errors: AtomicU64::new(0),
        })
    }

    /// Stores one request: a line in the file (flushed), the in-memory list and the counters.
    pub(crate) async fn record(&self, request: RecordedRequest) {
        // Hold the file lock across the whole update so that file order, memory order and the
        // counters agree.
        let mut file = match &self.file {
            Some((path, file)) => Some((path, file.lock().await)),
            None => None,
        };
        if let Some((path, file)) = file.as_mut() {
            match serde_json::to_string(&request) {
                Ok(mut line) => {
                    line.push('\n');
                    let res = async {
                        file.write_all(line.as_bytes()).await?;
                        file.flush().await
                    }
                    .await;
                    if let Err(err) = res {
                        self.write_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(path = %path.display(), error = %err, "Could not append to the record file.");
                    }
                }
                Err(err) => {
                    self.write_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %err, "Could not serialise a recorded request.");
                }
            }
        }
        *lock(&self.counts).entry(request.status).or_insert(0) += 1;
        if let Some(memory) = &self.memory {
            lock(memory).push(request);
        }
        drop(file);
    }

    /// The requests recorded in memory so far, in arrival order of their answers.
    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.memory
            .as_ref()
            .map(|memory| lock(memory).clone())
            .unwrap_or_default()
    }

    /// How many requests got each status (0 = dropped).
    pub(crate) fn status_counts(&self) -> BTreeMap<u16, u64> {
        lock(&self.counts).clone()
    }

    /// How many lines could not be written to the record file.
    pub(crate) fn write_errors(&self) -> u64 {
        self.write_errors.load(Ordering::Relaxed)
    }
}

/// Locks a mutex, ignoring poisoning: the guarded values stay valid after a panic elsewhere.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn redaction_keeps_the_scheme_only() {
        assert_eq!(redact("Token abc123"), "Token ***");
        assert_eq!(redact("token  abc"), "token ***");
        assert_eq!(redact("abc123"), "***");
        assert_eq!(redact(""), "***");
    }

    #[test]
    fn headers_are_lower_cased_joined_and_redacted() {
        let mut headers = HeaderMap::new();
        headers.insert("Authorization", HeaderValue::from_static("Token secret"));
        headers.insert("X-API-Version", HeaderValue::from_static("2020-09-22"));
        headers.append("accept", HeaderValue::from_static("a/b"));
        headers.append("accept", HeaderValue::from_static("c/d"));
        let recorded = recorded_headers(&headers);
        assert_eq!(recorded["authorization"], "Token ***");
        assert_eq!(recorded["x-api-version"], "2020-09-22");
        assert_eq!(recorded["accept"], "a/b, c/d");
        assert!(!format!("{recorded:?}").contains("secret"));
    }

    #[test]
    fn dropped_is_written_only_when_true() {
        let mut request = RecordedRequest {
            method: "GET".into(),
            path: "/v1/validate".into(),
            headers: BTreeMap::new(),
            json: None,
            status: 200,
            dropped: false,
            retry_after: None,
            received_at: Some(Instant::now()),
            answered_at: None,
        };
        assert_eq!(
            serde_json::to_string(&request).unwrap_or_default(),
            r#"{"method":"GET","path":"/v1/validate","headers":{},"json":null,"status":200}"#
        );
        request.status = 0;
        request.dropped = true;
        let line = serde_json::to_string(&request).unwrap_or_default();
        assert!(line.ends_with(r#""status":0,"dropped":true}"#), "{line}");
    }

    #[test]
    fn retry_after_is_written_when_present_and_instants_never() {
        let request = RecordedRequest {
            method: "POST".into(),
            path: "/v1/track".into(),
            headers: BTreeMap::new(),
            json: None,
            status: 429,
            dropped: false,
            retry_after: Some(2),
            received_at: Some(Instant::now()),
            answered_at: Some(Instant::now()),
        };
        let line = serde_json::to_string(&request).unwrap_or_default();
        assert_eq!(
            line,
            r#"{"method":"POST","path":"/v1/track","headers":{},"json":null,"status":429,"retry_after":2}"#
        );
        let back: RecordedRequest = serde_json::from_str(&line).expect("the line reads back");
        assert_eq!(back.retry_after, Some(2));
        assert_eq!((back.received_at, back.answered_at), (None, None));
    }
}
