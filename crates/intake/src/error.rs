//! Error codes and the rejection values the parser returns.
//!
//! Every rejection carries a stable machine-readable code (snake_case, used in response bodies
//! and as the `reason` metric label) and a human message naming what was wrong and where.
//! Messages never contain a write key.

use std::fmt;
use std::sync::Arc;

/// Why a request, or one event of a batch, was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// No write key was presented (401).
    MissingWriteKey,
    /// The write key presented matches no source, or the `Authorization` header is malformed (401).
    InvalidWriteKey,
    /// The `Content-Encoding` is neither absent, `identity` nor `gzip` (415).
    UnsupportedContentEncoding,
    /// The body, raw or inflated, exceeds the request limit (413).
    PayloadTooLarge,
    /// The body claims gzip but does not inflate (400).
    InvalidGzip,
    /// The body is not valid UTF-8 (400).
    InvalidUtf8,
    /// The body is empty, truncated or otherwise not JSON (400).
    InvalidJson,
    /// Objects and arrays nest deeper than the configured limit (400).
    TooDeep,
    /// A `/v1/batch` body has no `batch` array, or its `context`/`integrations`/`sentAt` are of the wrong type (400).
    InvalidBatch,
    /// A batch item is not a JSON object (400).
    InvalidEvent,
    /// One batch item exceeds the per-event limit (400 within a batch).
    EventTooLarge,
    /// A batch item lies past the batch's event-count limit (400 within a batch).
    TooManyEvents,
    /// A batch item has no `type` (400).
    MissingType,
    /// A batch item's `type` is not one of the six Segment types (400).
    InvalidType,
    /// Neither `userId` nor `anonymousId` is set (400).
    MissingUserId,
    /// A track call has no `event` name (400).
    MissingEvent,
    /// A group call has no `groupId` (400).
    MissingGroupId,
    /// An alias call has no `previousId` (400).
    MissingPreviousId,
    /// A known field has the wrong JSON type or an unusable value (400).
    InvalidField,
    /// A timestamp field is not an ISO-8601 date-time (400).
    InvalidTimestamp,
}

impl ErrorCode {
    /// The HTTP status a whole-request rejection with this code is answered with.
    pub fn status(self) -> u16 {
        match self {
            Self::MissingWriteKey | Self::InvalidWriteKey => 401,
            Self::UnsupportedContentEncoding => 415,
            Self::PayloadTooLarge => 413,
            _ => 400,
        }
    }

    /// The stable snake_case name used in response bodies and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingWriteKey => "missing_write_key",
            Self::InvalidWriteKey => "invalid_write_key",
            Self::UnsupportedContentEncoding => "unsupported_content_encoding",
            Self::PayloadTooLarge => "payload_too_large",
            Self::InvalidGzip => "invalid_gzip",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::InvalidJson => "invalid_json",
            Self::TooDeep => "too_deep",
            Self::InvalidBatch => "invalid_batch",
            Self::InvalidEvent => "invalid_event",
            Self::EventTooLarge => "event_too_large",
            Self::TooManyEvents => "too_many_events",
            Self::MissingType => "missing_type",
            Self::InvalidType => "invalid_type",
            Self::MissingUserId => "missing_user_id",
            Self::MissingEvent => "missing_event",
            Self::MissingGroupId => "missing_group_id",
            Self::MissingPreviousId => "missing_previous_id",
            Self::InvalidField => "invalid_field",
            Self::InvalidTimestamp => "invalid_timestamp",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A whole request refused: nothing in it was accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Rejection {
    /// What kind of problem it is.
    pub code: ErrorCode,
    /// What was wrong and where, for the sender.
    pub message: String,
    /// The source, when the request had already been authenticated before it was refused.
    pub source_name: Option<Arc<str>>,
}

impl Rejection {
    /// Builds a rejection.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            source_name: None,
        }
    }

    /// The HTTP status this rejection is answered with.
    pub fn status(&self) -> u16 {
        self.code.status()
    }
}

/// One event of a batch refused while the others may have been accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemRejection {
    /// The event's zero-based position in the `batch` array.
    pub index: usize,
    /// What kind of problem it is.
    pub code: ErrorCode,
    /// What was wrong, for the sender.
    pub message: String,
}
