//! Outcome classification: what one attempt's response or transport error means for retrying.
//!
//! The rules follow Segment's delivery layer: 2xx is delivered; 408, 423, 429 and every 5xx except
//! 501 are retried; every other status is final. Transport failures (refused or reset connections,
//! timeouts) are retried, while a request that cannot even be built is final. A `Retry-After`
//! header, in seconds or as an HTTP date, tells how long to wait before the next attempt.

use std::error::Error as _;
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// The result of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The destination accepted the request.
    Delivered {
        /// The HTTP status of the response (2xx).
        status: u16,
        /// The response body, if it was not empty (cut to a bounded size).
        body: Option<String>,
    },
    /// The attempt failed in a way that another attempt may fix.
    Retry {
        /// The HTTP status, when a response arrived at all.
        status: Option<u16>,
        /// Why the attempt failed; never contains request header values.
        reason: String,
        /// How long the server asked to wait (`Retry-After`), already capped.
        after: Option<Duration>,
    },
    /// The destination is busy (a status the request declares busy, such as Userpilot's 409
    /// while a bulk job runs): send again later, without spending the retry budget.
    Busy {
        /// The HTTP status.
        status: u16,
        /// What the destination said; never contains request header values.
        reason: String,
        /// How long the server asked to wait (`Retry-After`), already capped.
        after: Option<Duration>,
    },
    /// The attempt failed in a way that retrying cannot fix.
    Failed {
        /// The HTTP status, when a response arrived at all.
        status: Option<u16>,
        /// Why the attempt failed; never contains request header values.
        reason: String,
    },
}

impl Outcome {
    /// The HTTP status of the response, if a response arrived.
    pub fn status(&self) -> Option<u16> {
        match self {
            Outcome::Delivered { status, .. } | Outcome::Busy { status, .. } => Some(*status),
            Outcome::Retry { status, .. } | Outcome::Failed { status, .. } => *status,
        }
    }

    /// The failure reason, or `None` for a delivered request.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Delivered { .. } => None,
            Outcome::Retry { reason, .. }
            | Outcome::Busy { reason, .. }
            | Outcome::Failed { reason, .. } => Some(reason),
        }
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Outcome::Retry { .. } | Outcome::Busy { .. })
    }

    /// The same outcome as [`Outcome::Busy`] when its status is one of `busy` (a retryable or
    /// final answer whose status the request declares as "busy").
    pub fn busy_if(self, busy: &[u16]) -> Outcome {
        match self {
            Outcome::Retry {
                status: Some(status),
                reason,
                after,
            } if busy.contains(&status) => Outcome::Busy {
                status,
                reason,
                after,
            },
            Outcome::Failed {
                status: Some(status),
                reason,
            } if busy.contains(&status) => Outcome::Busy {
                status,
                reason,
                after: None,
            },
            other => other,
        }
    }

    /// Applies `f` to the reason text, if there is one (used to redact secrets).
    pub(crate) fn map_reason(self, f: impl FnOnce(String) -> String) -> Outcome {
        match self {
            Outcome::Retry {
                status,
                reason,
                after,
            } => Outcome::Retry {
                status,
                reason: f(reason),
                after,
            },
            Outcome::Busy {
                status,
                reason,
                after,
            } => Outcome::Busy {
                status,
                reason: f(reason),
                after,
            },
            Outcome::Failed { status, reason } => Outcome::Failed {
                status,
                reason: f(reason),
            },
            delivered => delivered,
        }
    }
}

/// How a response status is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// The request was accepted.
    Success,
    /// The request may succeed if sent again.
    Retryable,
    /// The request will not succeed if sent again unchanged.
    Final,
}

/// Decides which response statuses are delivered, retried or final.
///
/// [`SegmentRetryLogic`] is the default; a destination whose API documents other semantics (for
/// example a 409 that means "busy, try later") can supply its own.
pub trait RetryLogic: Send + Sync + std::fmt::Debug {
    /// Classifies one HTTP status code.
    fn classify_status(&self, status: u16) -> StatusClass;
}

/// Segment's classification: 2xx delivered; 408, 423, 429 and 5xx except 501 retried; the rest final.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SegmentRetryLogic;

impl RetryLogic for SegmentRetryLogic {
    fn classify_status(&self, status: u16) -> StatusClass {
        match status {
            200..=299 => StatusClass::Success,
            408 | 423 | 429 => StatusClass::Retryable,
            501 => StatusClass::Final,
            500..=599 => StatusClass::Retryable,
            _ => StatusClass::Final,
        }
    }
}

/// The longest response-body excerpt kept in a failure reason, in characters.
const REASON_BODY_CHARS: usize = 300;

/// Classifies a response from its status, its (possibly cut) body and its `Retry-After` delay.
///
/// `retry_after` is only used when the status is retryable.
pub fn classify_status(
    logic: &dyn RetryLogic,
    status: StatusCode,
    body: Option<String>,
    retry_after: Option<Duration>,
) -> Outcome {
    let code = status.as_u16();
    match logic.classify_status(code) {
        StatusClass::Success => Outcome::Delivered {
            status: code,
            body: body.filter(|text| !text.is_empty()),
        },
        StatusClass::Retryable => Outcome::Retry {
            status: Some(code),
            reason: status_reason(status, body.as_deref()),
            after: retry_after,
        },
        StatusClass::Final => Outcome::Failed {
            status: Some(code),
            reason: status_reason(status, body.as_deref()),
        },
    }
}

/// Classifies a full response: status, headers (for `Retry-After`) and body.
///
/// `now` is the wall-clock time used to turn an HTTP-date `Retry-After` into a delay, and the
/// delay is capped at `max_retry_after`.
pub fn classify_response(
    logic: &dyn RetryLogic,
    status: StatusCode,
    headers: &HeaderMap,
    body: Option<String>,
    now: SystemTime,
    max_retry_after: Duration,
) -> Outcome {
    classify_status(
        logic,
        status,
        body,
        retry_after(headers, now, max_retry_after),
    )
}

/// The delay a response's first `Retry-After` header asks for, capped at `max`.
///
/// Returns `None` when the header is absent or unreadable.
pub fn retry_after(headers: &HeaderMap, now: SystemTime, max: Duration) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, now).map(|delay| delay.min(max))
}

/// Parses a `Retry-After` value: a whole number of seconds or an HTTP date.
///
/// A date in the past means "now" (zero delay). Returns `None` for anything else.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long digit strings saturate instead of failing.
        let seconds = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The reason text for a non-2xx response: the status text, then an excerpt of the body.
fn status_reason(status: StatusCode, body: Option<&str>) -> String {
    let mut reason = match status.canonical_reason() {
        Some(text) => text.to_string(),
        None => format!("status {}", status.as_u16()),
    };
    if let Some(body) = body.map(str::trim).filter(|text| !text.is_empty()) {
        reason.push_str(": ");
        reason.push_str(&excerpt(body, REASON_BODY_CHARS));
    }
    reason
}

/// The first `max_chars` characters of `text`, with an ellipsis when cut.
pub(crate) fn excerpt(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Classifies a transport error from reqwest (no response arrived).
///
/// Refused, reset or dropped connections and timeouts are retryable; a request that could not be
/// built or whose redirects failed is final. The reason never contains the URL.
pub fn classify_transport_error(error: &reqwest::Error) -> Outcome {
    let detail = source_chain(error);
    let with_detail = |what: &str| {
        if detail.is_empty() {
            what.to_string()
        } else {
            format!("{what}: {detail}")
        }
    };
    if error.is_builder() {
        Outcome::Failed {
            status: None,
            reason: with_detail("invalid request"),
        }
    } else if error.is_redirect() {
        Outcome::Failed {
            status: error.status().map(|status| status.as_u16()),
            reason: with_detail("redirect failed"),
        }
    } else if error.is_timeout() {
        Outcome::Retry {
            status: None,
            reason: with_detail("request timed out"),
            after: None,
        }
    } else if error.is_connect() {
        Outcome::Retry {
            status: None,
            reason: with_detail("connection failed"),
            after: None,
        }
    } else if error.is_body() || error.is_decode() {
        Outcome::Retry {
            status: None,
            reason: with_detail("reading the response failed"),
            after: None,
        }
    } else {
        Outcome::Retry {
            status: None,
            reason: with_detail("sending the request failed"),
            after: None,
        }
    }
}

/// The messages of an error's sources, joined with `": "`, skipping repeats.
///
/// The top-level reqwest message is left out because it carries the URL.
fn source_chain(error: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = error.source();
    while let Some(source) = next {
        let text = source.to_string();
        if !text.is_empty() && parts.last() != Some(&text) {
            parts.push(text);
        }
        next = source.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_cuts_on_char_boundaries() {
        assert_eq!(excerpt("héllo", 2), "hé…");
        assert_eq!(excerpt("héllo", 5), "héllo");
        assert_eq!(excerpt("", 3), "");
    }

    #[test]
    fn status_reason_uses_status_text_and_body() {
        assert_eq!(status_reason(StatusCode::NOT_FOUND, None), "Not Found");
        assert_eq!(
            status_reason(StatusCode::BAD_REQUEST, Some("  {\"e\":1}\n")),
            "Bad Request: {\"e\":1}"
        );
        let odd = StatusCode::from_u16(599).unwrap();
        assert_eq!(status_reason(odd, Some("")), "status 599");
    }
}
