//! The pure request parser: from headers and body bytes to normalised events or a rejection.
//!
//! No IO and no async: [`parse_request`] is a function of its inputs (plus random `messageId`s),
//! which is what the fuzz target and the property tests exercise.
//!
//! Order of checks, each failing fast with its own code:
//! 1. credentials in the headers (401 when present and wrong);
//! 2. `Content-Encoding` (415), raw size (413), gzip inflated with a cap (413 / 400); a body that
//!    starts with gzip's magic bytes is inflated even when the header is missing;
//! 3. UTF-8 (400), nesting depth (400), JSON syntax (400).
//!
//! The `Content-Type` is not checked: clients send JSON as `application/json`, `text/plain`
//! (analytics.js, to spare browsers a preflight), `application/x-www-form-urlencoded` (axios's
//! default, so RudderStack's Node SDK) or nothing at all, and JSON is JSON whatever the header
//! says. A body that is not JSON is refused with 400, and the message names the content type it
//! was sent with;
//! 4. credentials in the body when the headers had none (401);
//! 5. each event's own rules; in a batch an invalid event is listed and the others go on.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::body::{self, Encoding, HeaderKey, Scan};
use crate::config::IntakeConfig;
use crate::error::{ErrorCode, ItemRejection, Rejection};
use crate::event::{self, BatchDefaults, BatchObject, EventType, NormalizedEvent, Received};
use crate::raw::{Kind, RawObject, RawVal};

/// Which kind of tracking-API path a request came to (the paths are listed in
/// [`crate::TRACKING_ROUTES`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathKind {
    /// A single call of one type: `/v1/track` or its short form `/v1/t`, and so on.
    Single(EventType),
    /// A batch: `/v1/batch` or one of its aliases, `/v1/b` and `/v1/import`.
    Batch,
}

impl PathKind {
    /// The canonical name of the kind (`track`, …, `batch`), whichever alias the request came
    /// to; used in logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Single(t) => t.as_str(),
            Self::Batch => "batch",
        }
    }
}

/// The request headers the parser looks at, as raw bytes (they may be any bytes on the wire).
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestMeta<'a> {
    /// The `Content-Type` header: not checked, only named when the body turns out not to be JSON.
    pub content_type: Option<&'a [u8]>,
    /// The `Content-Encoding` header.
    pub content_encoding: Option<&'a [u8]>,
    /// The `Authorization` header (only `Basic` is read).
    pub authorization: Option<&'a [u8]>,
    /// The `X-Write-Key` header.
    pub x_write_key: Option<&'a [u8]>,
    /// The query string's `writeKey` parameter, percent-decoded.
    pub query_write_key: Option<&'a [u8]>,
}

/// A request that passed authentication and parsing; some batch events may still be rejected.
#[derive(Clone, Debug)]
pub struct Accepted {
    /// The name of the source the write key belongs to.
    pub source: Arc<str>,
    /// The path kind the request came to.
    pub kind: PathKind,
    /// The accepted events, in request order.
    pub events: Vec<NormalizedEvent>,
    /// The rejected events of a batch, by index, in request order (always empty for single calls).
    pub rejected: Vec<ItemRejection>,
}

/// The fields of a `/v1/batch` body; other keys are ignored.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    batch: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    context: Option<&'a RawValue>,
    #[serde(borrow, default)]
    integrations: Option<&'a RawValue>,
    #[serde(borrow, rename = "writeKey", default)]
    write_key: Option<&'a RawValue>,
    #[serde(borrow, rename = "sentAt", default)]
    sent_at: Option<&'a RawValue>,
}

/// Parses, authenticates and normalises one tracking-API request.
///
/// `now` becomes each event's `receivedAt`. A single call either yields one event or a
/// [`Rejection`]; a batch yields the events that passed and the list of those that did not.
pub fn parse_request(
    kind: PathKind,
    meta: &RequestMeta<'_>,
    body: &[u8],
    now: DateTime<Utc>,
    config: &IntakeConfig,
) -> Result<Accepted, Rejection> {
    // A credential in the headers is checked before the body is even inflated.
    let header_source =
        match body::header_key(meta.authorization, meta.x_write_key, meta.query_write_key)? {
            HeaderKey::Key(key) => Some(resolve(config, &key)?),
            HeaderKey::None => None,
        };

    let tag = |mut rejection: Rejection| {
        if rejection.source_name.is_none() {
            rejection.source_name.clone_from(&header_source);
        }
        body::name_content_type(rejection, meta.content_type)
    };
    parse_body(kind, meta, body, now, config, header_source.clone()).map_err(tag)
}

/// Everything after the header checks; a rejection from here is tagged with the source.
fn parse_body(
    kind: PathKind,
    meta: &RequestMeta<'_>,
    body: &[u8],
    now: DateTime<Utc>,
    config: &IntakeConfig,
    header_source: Option<Arc<str>>,
) -> Result<Accepted, Rejection> {
    let encoding = body::content_encoding(meta.content_encoding, body)?;
    let limit = config.max_body_bytes(kind == PathKind::Batch);
    if body.len() > limit {
        return Err(too_large(limit));
    }
    let inflated;
    let bytes = match encoding {
        Encoding::Identity => body,
        Encoding::Gzip => {
            inflated = body::inflate_gzip(body, limit)?;
            &inflated[..]
        }
    };
    let text = body::check_utf8(bytes)?;
    if text.trim_ascii_start().is_empty() {
        return Err(Rejection::new(
            ErrorCode::InvalidJson,
            "body is empty; send a JSON object",
        ));
    }
    let envelope_levels = match kind {
        PathKind::Batch => 2,
        PathKind::Single(_) => 0,
    };
    let scan = body::check_depth(text, config.max_depth, envelope_levels)?;
    // JavaScript clients send lone UTF-16 surrogates as escapes, which Rust strings cannot hold;
    // they are read as U+FFFD (see `json`). The rewrite keeps every byte offset.
    let replaced;
    let text = if scan.needs_full_parse {
        replaced = crate::json::replace_lone_surrogates(text);
        &*replaced
    } else {
        text
    };
    if !text.trim_ascii_start().starts_with('{') {
        return Err(Rejection::new(
            ErrorCode::InvalidJson,
            format!(
                "body must be a JSON object; it starts with `{}`",
                body::clip(text.trim_ascii_start(), 24)
            ),
        ));
    }

    let received = Received::new(now);
    match kind {
        PathKind::Single(event_type) => {
            if scan.needs_full_parse {
                serde_json::from_str::<Value>(text).map_err(json_error)?;
            }
            let mut map = RawObject::parse(text).map_err(json_error)?;
            let source = match header_source {
                Some(source) => source,
                None => body_source(config, map.get("writeKey"))?,
            };
            map.remove("writeKey");
            let event = event::normalize(
                map,
                Some(event_type),
                &BatchDefaults::default(),
                &received,
                &source,
            )
            .map_err(|(code, message)| Rejection {
                source_name: Some(Arc::clone(&source)),
                ..Rejection::new(code, message)
            })?;
            Ok(Accepted {
                source,
                kind,
                events: vec![event],
                rejected: Vec::new(),
            })
        }
        PathKind::Batch => parse_batch(text, scan, header_source, &received, config),
    }
}

fn parse_batch(
    text: &str,
    scan: Scan,
    header_source: Option<Arc<str>>,
    received: &Received,
    config: &IntakeConfig,
) -> Result<Accepted, Rejection> {
    // The other fields take any JSON value, so a data error can only mean `batch` is not an array.
    let envelope: Envelope<'_> = serde_json::from_str(text).map_err(|e| {
        if e.is_data() {
            Rejection::new(
                ErrorCode::InvalidBatch,
                format!("`batch` must be an array of events: {e}"),
            )
        } else {
            json_error(e)
        }
    })?;
    let source = match header_source {
        Some(source) => source,
        None => body_source(config, envelope.write_key.map(RawVal::Borrowed).as_ref())?,
    };
    let tagged = |message: &str| Rejection {
        source_name: Some(Arc::clone(&source)),
        ..Rejection::new(ErrorCode::InvalidBatch, message)
    };
    let Some(items) = envelope.batch else {
        return Err(tagged("body has no `batch` array"));
    };
    let context = batch_object(envelope.context, "context", scan).map_err(|r| Rejection {
        source_name: Some(Arc::clone(&source)),
        ..r
    })?;
    let integrations =
        batch_object(envelope.integrations, "integrations", scan).map_err(|r| Rejection {
            source_name: Some(Arc::clone(&source)),
            ..r
        })?;
    let sent_at_raw = envelope.sent_at.map(RawVal::Borrowed);
    let sent_at = match &sent_at_raw {
        None => None,
        Some(value) if value.kind() == Kind::Null => None,
        Some(value) => match value.as_str() {
            Some(s) if event::parse_ts(&s).is_some() => Some(s),
            _ => {
                return Err(tagged(
                    "batch `sentAt` must be an ISO-8601 date-time string",
                ));
            }
        },
    };
    let defaults = BatchDefaults {
        context,
        integrations,
        sent_at: sent_at.as_deref(),
    };

    let mut events = Vec::with_capacity(items.len().min(config.max_batch_events));
    let mut rejected = Vec::new();
    for (index, raw) in items.into_iter().enumerate() {
        let reject = |code, message: String| ItemRejection {
            index,
            code,
            message,
        };
        if index >= config.max_batch_events {
            rejected.push(reject(
                ErrorCode::TooManyEvents,
                format!("a batch holds at most {} events", config.max_batch_events),
            ));
            continue;
        }
        let item = raw.get();
        if item.len() > config.max_event_bytes {
            rejected.push(reject(
                ErrorCode::EventTooLarge,
                format!(
                    "event is {} bytes; the limit is {} bytes",
                    item.len(),
                    config.max_event_bytes
                ),
            ));
            continue;
        }
        if !item.starts_with('{') {
            rejected.push(reject(
                ErrorCode::InvalidEvent,
                "event must be a JSON object".to_owned(),
            ));
            continue;
        }
        if scan.needs_full_parse {
            // A number out of range or a lone surrogate passes the skipping parse only.
            if let Err(e) = serde_json::from_str::<Value>(item) {
                rejected.push(reject(ErrorCode::InvalidJson, e.to_string()));
                continue;
            }
        }
        let map = match RawObject::parse(item) {
            Ok(map) => map,
            Err(e) => {
                rejected.push(reject(ErrorCode::InvalidJson, e.to_string()));
                continue;
            }
        };
        match event::normalize(map, None, &defaults, received, &source) {
            Ok(event) => events.push(event),
            Err((code, message)) => rejected.push(reject(code, message)),
        }
    }
    Ok(Accepted {
        source,
        kind: PathKind::Batch,
        events,
        rejected,
    })
}

/// Reads a batch-level `context` or `integrations`: absent, `null` or an object.
fn batch_object<'a>(
    value: Option<&'a RawValue>,
    name: &str,
    scan: Scan,
) -> Result<Option<BatchObject<'a>>, Rejection> {
    let Some(raw) = value else {
        return Ok(None);
    };
    let text = raw.get();
    match RawVal::Borrowed(raw).kind() {
        Kind::Null => Ok(None),
        Kind::Object => {
            if scan.needs_full_parse {
                serde_json::from_str::<Value>(text).map_err(json_error)?;
            }
            let entries = RawObject::parse(text).map_err(json_error)?;
            Ok(Some(BatchObject { entries, text }))
        }
        _ => Err(Rejection::new(
            ErrorCode::InvalidBatch,
            format!("batch `{name}` must be an object"),
        )),
    }
}

/// Authenticates by the body's `writeKey`.
fn body_source(config: &IntakeConfig, value: Option<&RawVal<'_>>) -> Result<Arc<str>, Rejection> {
    let key = value.map(|v| (v.kind(), v.as_str()));
    match key {
        None | Some((Kind::Null, _)) => Err(Rejection::new(
            ErrorCode::MissingWriteKey,
            "no write key: send it as the HTTP Basic user name, in the X-Write-Key header, or as `writeKey` in the body",
        )),
        Some((_, Some(key))) if !key.is_empty() => resolve(config, key.as_bytes()),
        Some((_, Some(_))) => Err(Rejection::new(
            ErrorCode::MissingWriteKey,
            "`writeKey` in the body is empty",
        )),
        Some(_) => Err(Rejection::new(
            ErrorCode::InvalidWriteKey,
            "`writeKey` in the body must be a string",
        )),
    }
}

/// Finds the source for a presented key; the message never repeats the key.
fn resolve(config: &IntakeConfig, key: &[u8]) -> Result<Arc<str>, Rejection> {
    config
        .source_for_key(key)
        .map(|s| Arc::clone(&s.name))
        .ok_or_else(|| {
            Rejection::new(
                ErrorCode::InvalidWriteKey,
                "write key is not valid for any source",
            )
        })
}

fn too_large(limit: usize) -> Rejection {
    Rejection::new(
        ErrorCode::PayloadTooLarge,
        format!("body exceeds the limit of {limit} bytes"),
    )
}

/// Turns a serde_json error into a rejection naming line and column.
fn json_error(e: serde_json::Error) -> Rejection {
    let message = if e.is_eof() {
        format!(
            "body is truncated: JSON ends early at line {} column {}",
            e.line(),
            e.column()
        )
    } else {
        format!("body is not valid JSON: {e}")
    };
    Rejection::new(ErrorCode::InvalidJson, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;

    const JSON: Option<&[u8]> = Some(b"application/json");

    fn config() -> IntakeConfig {
        IntakeConfig::new([("web", "wk-web"), ("server", "wk-server")]).unwrap()
    }

    fn now() -> DateTime<Utc> {
        event::parse_ts("2024-05-01T12:00:00Z").unwrap()
    }

    fn meta_basic(key: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
        )
    }

    fn run(kind: PathKind, meta: &RequestMeta<'_>, body: &[u8]) -> Result<Accepted, Rejection> {
        parse_request(kind, meta, body, now(), &config())
    }

    fn track() -> PathKind {
        PathKind::Single(EventType::Track)
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn events(accepted: &Accepted) -> Vec<Value> {
        accepted
            .events
            .iter()
            .map(|e| serde_json::from_str(&e.json).unwrap())
            .collect()
    }

    #[test]
    fn lone_surrogates_are_read_as_the_replacement_character() {
        let auth = meta_basic("wk-web");
        let meta = RequestMeta {
            content_type: JSON,
            authorization: Some(auth.as_bytes()),
            ..Default::default()
        };
        let body = br#"{"userId":"u","event":"E","properties":{"cut":"party \ud83d","pair":"\ud83c\udf89"}}"#;
        let acc = run(track(), &meta, body).unwrap();
        let event = &events(&acc)[0];
        assert_eq!(event["properties"]["cut"], "party \u{fffd}");
        assert_eq!(event["properties"]["pair"], "🎉");
        let batch = br#"{"batch":[{"type":"track","userId":"u","event":"\udc00"},{"type":"track","userId":"v","event":"ok"}]}"#;
        let acc = run(PathKind::Batch, &meta, batch).unwrap();
        let all = events(&acc);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0]["event"], "\u{fffd}");
    }

    #[test]
    fn paths() {
        assert_eq!(PathKind::from_path("/v1/batch"), Some(PathKind::Batch));
        assert_eq!(
            PathKind::from_path("/v1/alias"),
            Some(PathKind::Single(EventType::Alias))
        );
        assert_eq!(PathKind::from_path("/v1/import"), Some(PathKind::Batch));
        assert_eq!(PathKind::from_path("/v2/track"), None);
    }

    #[test]
    fn three_ways_to_send_the_write_key() {
        let body = br#"{"userId":"u","event":"Signed Up"}"#;
        let auth = meta_basic("wk-web");
        let by_basic = RequestMeta {
            content_type: JSON,
            authorization: Some(auth.as_bytes()),
            ..Default::default()
        };
        assert_eq!(&*run(track(), &by_basic, body).unwrap().source, "web");

        let by_header = RequestMeta {
            content_type: JSON,
            x_write_key: Some(b"wk-server"),
            ..Default::default()
        };
        assert_eq!(&*run(track(), &by_header, body).unwrap().source, "server");

        let in_body = br#"{"userId":"u","event":"Signed Up","writeKey":"wk-server"}"#;
        let plain = RequestMeta {
            content_type: JSON,
            ..Default::default()
        };
        let acc = run(track(), &plain, in_body).unwrap();
        assert_eq!(&*acc.source, "server");
        assert!(
            !acc.events[0].json.contains("wk-server"),
            "write key must be stripped"
        );

        let batch = br#"{"writeKey":"wk-web","batch":[{"type":"track","userId":"u","event":"e","writeKey":"wk-web"}]}"#;
        let acc = run(PathKind::Batch, &plain, batch).unwrap();
        assert_eq!(&*acc.source, "web");
        assert!(!acc.events[0].json.contains("wk-web"));
    }

    #[test]
    fn missing_and_wrong_write_keys() {
        let body = br#"{"userId":"u","event":"e"}"#;
        let plain = RequestMeta {
            content_type: JSON,
            ..Default::default()
        };
        let err = run(track(), &plain, body).unwrap_err();
        assert_eq!((err.code, err.status()), (ErrorCode::MissingWriteKey, 401));

        let auth = meta_basic("nope-secret");
        let wrong = RequestMeta {
            content_type: JSON,
            authorization: Some(auth.as_bytes()),
            ..Default::default()
        };
        let err = run(track(), &wrong, body).unwrap_err();
        assert_eq!((err.code, err.status()), (ErrorCode::InvalidWriteKey, 401));
        assert!(!err.message.contains("nope-secret"));
        assert!(!format!("{err:?}").contains("nope-secret"));

        // A wrong header key is refused even when the body carries a right one.
        let both = br#"{"userId":"u","event":"e","writeKey":"wk-web"}"#;
        let bad_header = RequestMeta {
            content_type: JSON,
            x_write_key: Some(b"bad"),
            ..Default::default()
        };
        assert_eq!(
            run(track(), &bad_header, both).unwrap_err().code,
            ErrorCode::InvalidWriteKey
        );

        let err = run(
            track(),
            &plain,
            br#"{"userId":"u","event":"e","writeKey":"wk-nope"}"#,
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidWriteKey);
        let err = run(
            track(),
            &plain,
            br#"{"userId":"u","event":"e","writeKey":7}"#,
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidWriteKey);
        let err = run(PathKind::Batch, &plain, br#"{"batch":[]}"#).unwrap_err();
        assert_eq!(err.code, ErrorCode::MissingWriteKey);
    }

    fn keyed<'a>(content_type: Option<&'a [u8]>) -> RequestMeta<'a> {
        RequestMeta {
            content_type,
            x_write_key: Some(b"wk-web"),
            ..Default::default()
        }
    }

    #[test]
    fn json_is_json_whatever_the_content_type_says() {
        let body = br#"{"userId":"u","event":"e"}"#;
        for content_type in [
            Some(&b"application/json"[..]),
            Some(b"text/plain;charset=UTF-8"),
            Some(b"application/x-www-form-urlencoded"),
            Some(b"application/xml"),
            Some(b"application/json; charset=utf-16"),
            Some(&[0xff, 0xfe][..]),
            None,
        ] {
            let accepted = run(track(), &keyed(content_type), body)
                .unwrap_or_else(|e| panic!("{:?}: {e}", content_type.map(String::from_utf8_lossy)));
            assert_eq!(accepted.events.len(), 1);
        }
        // RudderStack's Node SDK: a gzip body sent as a form.
        let gz = gzip(br#"{"batch":[{"type":"track","userId":"u","event":"e"}]}"#);
        let meta = RequestMeta {
            content_type: Some(b"application/x-www-form-urlencoded"),
            content_encoding: Some(b"gzip"),
            x_write_key: Some(b"wk-web"),
            ..Default::default()
        };
        assert_eq!(run(PathKind::Batch, &meta, &gz).unwrap().events.len(), 1);
        // The same without a `Content-Encoding` header is recognised by its magic bytes.
        let meta = RequestMeta {
            content_encoding: None,
            ..meta
        };
        assert_eq!(run(PathKind::Batch, &meta, &gz).unwrap().events.len(), 1);
    }

    #[test]
    fn a_body_that_is_not_json_is_a_400_naming_the_content_type() {
        let form = keyed(Some(b"application/x-www-form-urlencoded"));
        let err = run(track(), &form, b"userId=u&event=e").unwrap_err();
        assert_eq!((err.code, err.status()), (ErrorCode::InvalidJson, 400));
        assert_eq!(
            err.message,
            "body must be a JSON object; it starts with `userId=u&event=e` (the request's content-type was `application/x-www-form-urlencoded`; the body is read as JSON whatever it says)"
        );
        let err = run(track(), &keyed(Some(b"text/plain")), b"{\"userId\":").unwrap_err();
        assert!(err.message.contains("truncated"), "{}", err.message);
        assert!(err.message.contains("`text/plain`"), "{}", err.message);
        // Sent as JSON, the message does not mention the header.
        let err = run(track(), &keyed(JSON), b"hello").unwrap_err();
        assert!(!err.message.contains("content-type"), "{}", err.message);
        // Bad gzip is named with the content type too.
        let meta = RequestMeta {
            content_encoding: Some(b"gzip"),
            ..form
        };
        let err = run(track(), &meta, b"not gzip").unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidGzip);
        assert!(
            err.message.contains("x-www-form-urlencoded"),
            "{}",
            err.message
        );
    }

    #[test]
    fn malformed_bodies_get_named_errors() {
        let meta = keyed(JSON);
        let cases: [(&[u8], ErrorCode, &str); 7] = [
            (b"", ErrorCode::InvalidJson, "empty"),
            (b"   ", ErrorCode::InvalidJson, "empty"),
            (
                br#"{"userId":"u","event":"e""#,
                ErrorCode::InvalidJson,
                "truncated",
            ),
            (
                br#"{"userId":"u",,}"#,
                ErrorCode::InvalidJson,
                "line 1 column",
            ),
            (br#"[1,2]"#, ErrorCode::InvalidJson, "JSON object"),
            (
                b"{\"userId\":\"\xc3\x28\"}",
                ErrorCode::InvalidUtf8,
                "byte 11",
            ),
            (
                br#"{"userId":"u","event":"e"} trailing"#,
                ErrorCode::InvalidJson,
                "trailing",
            ),
        ];
        for (body, code, needle) in cases {
            let err = run(track(), &meta, body).unwrap_err();
            assert_eq!(err.code, code, "{}", String::from_utf8_lossy(body));
            assert_eq!(err.status(), 400);
            assert!(
                err.message.contains(needle),
                "{} lacks {needle}",
                err.message
            );
            assert_eq!(err.source_name.as_deref(), Some("web"));
        }
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let meta = keyed(JSON);
        let deep = format!(
            r#"{{"userId":"u","event":"e","properties":{}1{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let mut cfg = config();
        cfg.max_batch_bytes = 1 << 20;
        cfg.max_event_bytes = 1 << 20;
        let err = parse_request(track(), &meta, deep.as_bytes(), now(), &cfg).unwrap_err();
        assert_eq!(err.code, ErrorCode::TooDeep);
        // Within the limit is fine, also inside a batch (whose envelope adds two levels).
        let ok_props = format!("{}1{}", "[".repeat(60), "]".repeat(60));
        let single = format!(r#"{{"userId":"u","event":"e","properties":{{"a":{ok_props}}}}}"#);
        assert!(run(track(), &meta, single.as_bytes()).is_ok());
        let batch = format!(
            r#"{{"batch":[{{"type":"track","userId":"u","event":"e","properties":{{"a":{ok_props}}}}}]}}"#
        );
        assert_eq!(
            run(PathKind::Batch, &meta, batch.as_bytes())
                .unwrap()
                .events
                .len(),
            1
        );
        // Beyond it, the batch's message names the per-event limit, not the envelope's.
        let too_deep = format!("{}1{}", "[".repeat(70), "]".repeat(70));
        let batch = format!(
            r#"{{"batch":[{{"type":"track","userId":"u","event":"e","properties":{{"a":{too_deep}}}}}]}}"#
        );
        let err = run(PathKind::Batch, &meta, batch.as_bytes()).unwrap_err();
        assert_eq!(err.code, ErrorCode::TooDeep);
        assert!(
            err.message.starts_with(
                "objects and arrays nest deeper than 64 levels within an event at byte"
            ),
            "{}",
            err.message
        );
    }

    #[test]
    fn size_limits() {
        let meta = keyed(JSON);
        let big = format!(
            r#"{{"userId":"u","event":"e","properties":{{"p":"{}"}}}}"#,
            "x".repeat(40 * 1024)
        );
        let err = run(track(), &meta, big.as_bytes()).unwrap_err();
        assert_eq!((err.code, err.status()), (ErrorCode::PayloadTooLarge, 413));
        // The same event in a batch is refused alone; its neighbours pass.
        let batch = format!(
            r#"{{"batch":[{{"type":"track","userId":"u","event":"a"}},{},{{"type":"track","userId":"u","event":"c"}}]}}"#,
            big.replacen('{', r#"{"type":"track","#, 1)
        );
        let acc = run(PathKind::Batch, &meta, batch.as_bytes()).unwrap();
        assert_eq!(acc.events.len(), 2);
        assert_eq!(acc.rejected.len(), 1);
        assert_eq!(
            (acc.rejected[0].index, acc.rejected[0].code),
            (1, ErrorCode::EventTooLarge)
        );
        // A batch body over 500 KB is refused whole.
        let huge = format!(r#"{{"batch":[],"pad":"{}"}}"#, "x".repeat(501 * 1024));
        assert_eq!(
            run(PathKind::Batch, &meta, huge.as_bytes())
                .unwrap_err()
                .code,
            ErrorCode::PayloadTooLarge
        );
        // Configurable.
        let mut cfg = config();
        cfg.max_event_bytes = 64;
        let err = parse_request(track(), &meta, br#"{"userId":"u","event":"eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"}"#, now(), &cfg).unwrap_err();
        assert_eq!(err.code, ErrorCode::PayloadTooLarge);
    }

    #[test]
    fn too_many_events_are_rejected_one_by_one() {
        let meta = keyed(JSON);
        let mut cfg = config();
        cfg.max_batch_events = 2;
        let body = br#"{"batch":[{"type":"page","userId":"u"},{"type":"page","userId":"u"},{"type":"page","userId":"u"}]}"#;
        let acc = parse_request(PathKind::Batch, &meta, body, now(), &cfg).unwrap();
        assert_eq!(acc.events.len(), 2);
        assert_eq!(
            (acc.rejected[0].index, acc.rejected[0].code),
            (2, ErrorCode::TooManyEvents)
        );
    }

    #[test]
    fn gzip_bodies() {
        let body = gzip(br#"{"userId":"u","event":"e"}"#);
        let meta = RequestMeta {
            content_encoding: Some(b"gzip"),
            ..keyed(JSON)
        };
        let acc = run(track(), &meta, &body).unwrap();
        assert_eq!(events(&acc)[0]["event"], "e");

        let err = run(track(), &meta, b"{\"plain\":1}").unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidGzip);
        let br = RequestMeta {
            content_encoding: Some(b"br"),
            ..keyed(JSON)
        };
        assert_eq!(run(track(), &br, &body).unwrap_err().status(), 415);
    }

    #[test]
    fn gzip_bomb_gets_413_without_inflating_it_all() {
        // 100 MB of zeros inside a JSON string: one gzip member of 1 MB repeated 100 times
        // (a valid multi-member gzip stream of about 100 KB), between a prefix and a suffix.
        let zeros = gzip(&vec![b'0'; 1 << 20]);
        let mut bomb = gzip(br#"{"batch":[{"type":"track","userId":"u","event":""#);
        for _ in 0..100 {
            bomb.extend_from_slice(&zeros);
        }
        bomb.extend_from_slice(&gzip(br#""}]}"#));
        assert!(bomb.len() < DEFAULT_MAX_BATCH_BYTES_FOR_TEST);
        let meta = RequestMeta {
            content_encoding: Some(b"gzip"),
            ..keyed(JSON)
        };
        let err = run(PathKind::Batch, &meta, &bomb).unwrap_err();
        assert_eq!((err.code, err.status()), (ErrorCode::PayloadTooLarge, 413));
        assert!(err.message.contains("inflated"), "{}", err.message);
    }

    const DEFAULT_MAX_BATCH_BYTES_FOR_TEST: usize = crate::config::DEFAULT_MAX_BATCH_BYTES;

    #[test]
    fn batch_with_some_invalid_events() {
        let meta = keyed(JSON);
        let body = br#"{
            "context": {"library": {"name": "analytics-node"}},
            "integrations": {"All": false, "Userpilot": true},
            "sentAt": "2024-05-01T12:00:05Z",
            "batch": [
                {"type": "identify", "userId": "u1", "traits": {"email": "a@b.c"}},
                {"type": "track", "userId": "u1"},
                {"type": "teleport", "userId": "u1"},
                {"userId": "u1"},
                "not an object",
                {"type": "group", "anonymousId": "a1", "groupId": "g1", "context": {"locale": "fr"}},
                {"type": "alias", "previousId": "a1", "userId": "u1", "originalTimestamp": "2024-05-01T12:00:04Z"}
            ]
        }"#;
        let acc = run(PathKind::Batch, &meta, body).unwrap();
        let rejected: Vec<(usize, ErrorCode)> =
            acc.rejected.iter().map(|r| (r.index, r.code)).collect();
        assert_eq!(
            rejected,
            vec![
                (1, ErrorCode::MissingEvent),
                (2, ErrorCode::InvalidType),
                (3, ErrorCode::MissingType),
                (4, ErrorCode::InvalidEvent),
            ]
        );
        let evs = events(&acc);
        assert_eq!(evs.len(), 3);
        assert_eq!(evs[0]["context"]["library"]["name"], "analytics-node");
        assert_eq!(
            evs[1]["context"],
            serde_json::json!({"locale": "fr", "library": {"name": "analytics-node"}})
        );
        assert_eq!(evs[2]["integrations"]["All"], false);
        assert_eq!(evs[2]["sentAt"], "2024-05-01T12:00:05Z");
        // receivedAt 12:00:00, sent 1 s after it happened.
        assert_eq!(evs[2]["timestamp"], "2024-05-01T11:59:59.000Z");
        for ev in &evs {
            assert_eq!(ev["receivedAt"], "2024-05-01T12:00:00.000Z");
        }
    }

    #[test]
    fn numbers_a_full_parse_refuses_are_refused_although_events_are_read_one_level_deep() {
        let meta = keyed(JSON);
        let body = br#"{"batch":[
            {"type":"track","userId":"u","event":"e","properties":{"big":1e400}},
            {"type":"track","userId":"u","event":"e","properties":{"s":"\ud800"}},
            {"type":"track","userId":"u","event":"e","properties":{"ok":2.5E3,"s":"\ud83d\ude00"}}
        ]}"#;
        let acc = run(PathKind::Batch, &meta, body).unwrap();
        let rejected: Vec<(usize, ErrorCode)> =
            acc.rejected.iter().map(|r| (r.index, r.code)).collect();
        assert_eq!(rejected, vec![(0, ErrorCode::InvalidJson)]);
        // A lone surrogate is no longer refused: it is read as U+FFFD.
        assert_eq!(events(&acc)[0]["properties"]["s"], "\u{fffd}");
        assert_eq!(events(&acc)[1]["properties"]["ok"], 2500.0);
        assert_eq!(events(&acc)[1]["properties"]["s"], "\u{1f600}");
        let err = run(
            track(),
            &meta,
            br#"{"userId":"u","event":"e","properties":{"n":-1e999}}"#,
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidJson);
        // Values the rules leave alone are stored as sent; the top level is rewritten.
        let acc = run(
            track(),
            &meta,
            br#"{ "userId" : "u", "event": "e", "properties": {"a": [1, 2], "t": "x\/y"} }"#,
        )
        .unwrap();
        assert!(
            acc.events[0]
                .json
                .starts_with(r#"{"userId":"u","event":"e","properties":{"a": [1, 2], "t": "x\/y"},"type":"track""#),
            "{}",
            acc.events[0].json
        );
    }

    #[test]
    fn bad_batch_envelopes() {
        let meta = keyed(JSON);
        for (body, needle) in [
            (&br#"{"events":[]}"#[..], "no `batch`"),
            (br#"{"batch":{}}"#, "array"),
            (br#"{"batch":[],"context":[]}"#, "context"),
            (br#"{"batch":[],"integrations":1}"#, "integrations"),
            (br#"{"batch":[],"sentAt":"soon"}"#, "sentAt"),
        ] {
            let err = run(PathKind::Batch, &meta, body).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidBatch);
            assert!(err.message.contains(needle), "{}", err.message);
        }
        let acc = run(PathKind::Batch, &meta, br#"{"batch":[]}"#).unwrap();
        assert!(acc.events.is_empty() && acc.rejected.is_empty());
    }

    #[test]
    fn single_call_event_errors_are_whole_request_errors() {
        let meta = keyed(JSON);
        let err = run(
            PathKind::Single(EventType::Group),
            &meta,
            br#"{"userId":"u"}"#,
        )
        .unwrap_err();
        assert_eq!((err.code, err.status()), (ErrorCode::MissingGroupId, 400));
        assert_eq!(err.source_name.as_deref(), Some("web"));
    }
}
