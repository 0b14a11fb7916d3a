//! Segment event types, the normalised event handed to the sink, and the per-event rules:
//! required fields, merging of batch-level fields, `messageId`, `receivedAt` and `timestamp`.

use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::body::clip;
use crate::error::ErrorCode;
use crate::raw::{self, Kind, RawObject, RawVal};

/// The longest `messageId` accepted, in characters (Segment's documented limit).
pub const MAX_MESSAGE_ID_CHARS: usize = 100;

/// One of Segment's six event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// `identify`: who the user is.
    Identify,
    /// `track`: what the user did.
    Track,
    /// `page`: a web page view.
    Page,
    /// `screen`: a mobile screen view.
    Screen,
    /// `group`: the account the user belongs to.
    Group,
    /// `alias`: merging two user identities.
    Alias,
}

impl EventType {
    /// All six types, in Segment's documentation order.
    pub const ALL: [EventType; 6] = [
        Self::Identify,
        Self::Track,
        Self::Page,
        Self::Screen,
        Self::Group,
        Self::Alias,
    ];

    /// The type's name as it appears in the `type` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Identify => "identify",
            Self::Track => "track",
            Self::Page => "page",
            Self::Screen => "screen",
            Self::Group => "group",
            Self::Alias => "alias",
        }
    }

    /// Reads a `type` value; Segment's type names are lowercase and matched exactly.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// An accepted event, normalised and serialised once, ready for the durable queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NormalizedEvent {
    /// The name of the source whose write key the request carried.
    pub source: Arc<str>,
    /// The event's type.
    pub event_type: EventType,
    /// The event's `messageId` (the sender's, or one generated on intake).
    pub message_id: String,
    /// The normalised event as JSON text: one object, `writeKey` removed, `messageId`,
    /// `receivedAt` and `timestamp` filled, batch-level `context` and `integrations` merged in.
    /// The top level is compact; values the rules leave alone keep the sender's text (escapes and
    /// whitespace included), as the request was parsed only one level deep.
    pub json: String,
}

/// A batch-level object (`context` or `integrations`): its entries and its text.
#[derive(Clone, Debug)]
pub(crate) struct BatchObject<'a> {
    /// The entries, merged under an item's own object.
    pub entries: RawObject<'a>,
    /// The object's JSON text, stored as is in items that have no such object.
    pub text: &'a str,
}

/// What a batch envelope contributes to each of its events.
#[derive(Default)]
pub(crate) struct BatchDefaults<'a> {
    /// The batch-level `context`, merged under each item's (item keys win).
    pub context: Option<BatchObject<'a>>,
    /// The batch-level `integrations`, merged under each item's (item keys win).
    pub integrations: Option<BatchObject<'a>>,
    /// The batch-level `sentAt` (analytics-node and analytics-python send it there).
    pub sent_at: Option<&'a str>,
}

/// The arrival time, parsed and formatted once per request.
pub(crate) struct Received {
    pub at: DateTime<Utc>,
    /// The time formatted as Segment does, as a JSON string literal.
    pub json: String,
}

impl Received {
    pub(crate) fn new(at: DateTime<Utc>) -> Self {
        Self {
            json: raw::quote(&format_ts(at)),
            at,
        }
    }
}

/// An event-level problem: the code and a message.
pub(crate) type EventError = (ErrorCode, String);

fn err(code: ErrorCode, message: impl Into<String>) -> EventError {
    (code, message.into())
}

/// Normalises one event, read one level deep, and serialises it.
///
/// `path_type` is the type a single-event path (`/v1/track`, …) implies; it overrides any
/// `type` in the body. For batch items it is `None` and the item's own `type` is required.
/// Values the rules do not touch are stored as the sender wrote them.
pub(crate) fn normalize<'a>(
    mut map: RawObject<'a>,
    path_type: Option<EventType>,
    defaults: &BatchDefaults<'a>,
    received: &Received,
    source: &Arc<str>,
) -> Result<NormalizedEvent, EventError> {
    let event_type = match path_type {
        Some(t) => {
            map.insert_text("type", raw::quote(t.as_str()));
            t
        }
        None => match map.get("type") {
            None => return Err(err(ErrorCode::MissingType, "event has no `type`")),
            Some(value) => match (value.kind(), value.as_str()) {
                (Kind::Null, _) => {
                    return Err(err(ErrorCode::MissingType, "event has no `type`"));
                }
                (_, Some(name)) => EventType::parse(&name).ok_or_else(|| {
                    err(
                        ErrorCode::InvalidType,
                        format!(
                            "`type` `{}` is not one of identify, track, page, screen, group, alias",
                            clip(&name, 40)
                        ),
                    )
                })?,
                (_, None) => {
                    return Err(err(ErrorCode::InvalidType, "`type` must be a string"));
                }
            },
        },
    };

    // The write key is a credential, never part of the stored event.
    map.remove("writeKey");

    // Identifiers: strings, or numbers which are turned into their decimal text.
    let user_id = id_field(&mut map, "userId")?;
    let anonymous_id = id_field(&mut map, "anonymousId")?;
    match event_type {
        EventType::Alias => {
            if !id_field(&mut map, "previousId")? {
                return Err(err(
                    ErrorCode::MissingPreviousId,
                    "alias event has no `previousId`",
                ));
            }
            if !user_id {
                return Err(err(ErrorCode::MissingUserId, "alias event has no `userId`"));
            }
        }
        _ if !user_id && !anonymous_id => {
            return Err(err(
                ErrorCode::MissingUserId,
                "event has neither `userId` nor `anonymousId`",
            ));
        }
        _ => {}
    }
    match event_type {
        EventType::Track => match map.get("event").map(|v| (v.kind(), v.as_str())) {
            Some((_, Some(name))) if !name.trim().is_empty() => {}
            None | Some((Kind::Null, _)) | Some((Kind::String, _)) => {
                return Err(err(
                    ErrorCode::MissingEvent,
                    "track event has no `event` name",
                ));
            }
            Some(_) => return Err(err(ErrorCode::InvalidField, "`event` must be a string")),
        },
        EventType::Group if !id_field(&mut map, "groupId")? => {
            return Err(err(
                ErrorCode::MissingGroupId,
                "group event has no `groupId`",
            ));
        }
        _ => {}
    }
    for name in ["properties", "traits", "context", "integrations"] {
        match map.get(name).map(RawVal::kind) {
            None | Some(Kind::Object) => {}
            Some(Kind::Null) => map.remove(name),
            Some(_) => {
                return Err(err(
                    ErrorCode::InvalidField,
                    format!("`{name}` must be an object"),
                ));
            }
        }
    }

    merge_under(&mut map, "context", defaults.context.as_ref())?;
    merge_under(&mut map, "integrations", defaults.integrations.as_ref())?;

    let message_id = match map.get("messageId").map(|v| (v.kind(), v.as_str())) {
        Some((_, Some(id))) if !id.is_empty() => {
            if id.chars().count() > MAX_MESSAGE_ID_CHARS {
                return Err(err(
                    ErrorCode::InvalidField,
                    format!("`messageId` is longer than {MAX_MESSAGE_ID_CHARS} characters"),
                ));
            }
            id.into_owned()
        }
        None | Some((Kind::Null, _)) | Some((Kind::String, _)) => {
            let id = new_message_id();
            map.insert_string("messageId", &id);
            id
        }
        Some(_) => return Err(err(ErrorCode::InvalidField, "`messageId` must be a string")),
    };

    apply_timestamps(&mut map, defaults.sent_at, received)?;

    Ok(NormalizedEvent {
        source: Arc::clone(source),
        event_type,
        message_id,
        json: map.to_json(),
    })
}

/// Reads an identifier field; returns whether it holds a non-empty value.
///
/// A number is stored back as its decimal text, as Segment's libraries send ids as strings.
fn id_field(map: &mut RawObject<'_>, name: &'static str) -> Result<bool, EventError> {
    let Some(value) = map.get(name) else {
        return Ok(false);
    };
    match value.kind() {
        Kind::Null => Ok(false),
        Kind::String => Ok(value.as_str().is_some_and(|s| !s.trim().is_empty())),
        Kind::Number => {
            let number: serde_json::Number = serde_json::from_str(value.text()).map_err(|e| {
                err(
                    ErrorCode::InvalidField,
                    format!("`{name}` is not a usable number: {e}"),
                )
            })?;
            map.insert_string(name, &number.to_string());
            Ok(true)
        }
        _ => Err(err(
            ErrorCode::InvalidField,
            format!("`{name}` must be a string or a number"),
        )),
    }
}

/// Adds the batch-level object's keys to the item's object where the item lacks them.
fn merge_under<'a>(
    map: &mut RawObject<'a>,
    name: &'static str,
    batch: Option<&BatchObject<'a>>,
) -> Result<(), EventError> {
    let Some(batch) = batch else {
        return Ok(());
    };
    if batch.entries.is_empty() {
        return Ok(());
    }
    match map.get(name) {
        Some(RawVal::Borrowed(item)) => {
            let mut merged = RawObject::parse(item.get()).map_err(|e| {
                err(
                    ErrorCode::InvalidField,
                    format!("`{name}` must be an object: {e}"),
                )
            })?;
            merged.merge_missing(&batch.entries);
            map.insert_text(name, merged.to_json());
        }
        Some(RawVal::Owned(_)) => {
            // Only fields this module sets are owned, and it never sets these two.
        }
        None => map.insert(name, RawVal::Borrowed(raw_of(batch.text)?)),
    }
    Ok(())
}

/// Borrows already-validated JSON text as a raw value.
fn raw_of(text: &str) -> Result<&RawValue, EventError> {
    serde_json::from_str(text).map_err(|e| {
        err(
            ErrorCode::InvalidEvent,
            format!("batch value cannot be read: {e}"),
        )
    })
}

/// Fills `receivedAt`, `sentAt`, `originalTimestamp` and `timestamp` as Segment's servers do.
///
/// - `receivedAt` is always the arrival time (a sender's value is overwritten).
/// - `sentAt` comes from the item, else from the batch.
/// - A sender's `timestamp` is kept; it is also copied to `originalTimestamp` when that is absent.
/// - Otherwise, with `originalTimestamp` and `sentAt`, `timestamp = receivedAt − (sentAt −
///   originalTimestamp)`, which undoes the sender's clock skew; with `originalTimestamp` alone,
///   `timestamp = originalTimestamp`; with neither, `timestamp = receivedAt`.
fn apply_timestamps(
    map: &mut RawObject<'_>,
    batch_sent_at: Option<&str>,
    received: &Received,
) -> Result<(), EventError> {
    let timestamp = time_field(map, "timestamp")?;
    let original = time_field(map, "originalTimestamp")?;
    let mut sent = time_field(map, "sentAt")?;
    if sent.is_none() {
        if let Some(text) = batch_sent_at {
            let at = parse_ts(text).ok_or_else(|| {
                err(
                    ErrorCode::InvalidTimestamp,
                    "batch `sentAt` is not an ISO-8601 date-time",
                )
            })?;
            map.insert_string("sentAt", text);
            sent = Some(at);
        }
    }
    map.insert_text("receivedAt", received.json.clone());
    if timestamp.is_some() {
        if original.is_none() {
            if let Some(ts) = map.get("timestamp").cloned() {
                map.insert("originalTimestamp", ts);
            }
        }
        return Ok(());
    }
    let computed = match (original, sent) {
        (Some(orig), Some(sent)) => {
            let skew = sent.signed_duration_since(orig);
            received.at.checked_sub_signed(skew).ok_or_else(|| {
                err(
                    ErrorCode::InvalidTimestamp,
                    "`sentAt` and `originalTimestamp` are too far apart",
                )
            })?
        }
        (Some(orig), None) => orig,
        (None, _) => received.at,
    };
    map.insert_string("timestamp", &format_ts(computed));
    Ok(())
}

/// Reads a date-time field: absent and `null` are `None`; anything else must parse.
fn time_field(map: &mut RawObject<'_>, name: &str) -> Result<Option<DateTime<Utc>>, EventError> {
    let Some(value) = map.get(name) else {
        return Ok(None);
    };
    match (value.kind(), value.as_str()) {
        (Kind::Null, _) => {
            map.remove(name);
            Ok(None)
        }
        (_, Some(text)) => parse_ts(&text).map(Some).ok_or_else(|| {
            err(
                ErrorCode::InvalidTimestamp,
                format!(
                    "`{name}` is not an ISO-8601 date-time: `{}`",
                    clip(&text, 40)
                ),
            )
        }),
        (_, None) => Err(err(
            ErrorCode::InvalidTimestamp,
            format!("`{name}` must be an ISO-8601 date-time string"),
        )),
    }
}

/// Parses an ISO-8601 date-time: RFC 3339 with an offset, or without one (read as UTC).
pub(crate) fn parse_ts(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Some(naive.and_utc());
        }
    }
    None
}

/// Formats a date-time as Segment does: UTC, millisecond precision, `Z` suffix.
pub(crate) fn format_ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A random (version 4) UUID in its usual hyphenated lowercase form.
pub(crate) fn new_message_id() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut out = String::with_capacity(36);
    for (idx, byte) in bytes.iter().enumerate() {
        if matches!(idx, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

/// Whether an event is to be delivered to the named destination, by its `integrations` object.
///
/// The destination's own key decides when present (`false` disables; `true` or an object of
/// destination options enables); otherwise `All` decides; with neither, the event is enabled.
/// Keys are matched case-sensitively, as Segment does.
pub fn is_enabled_for(event: &Value, destination_name: &str) -> bool {
    let Some(integrations) = event.get("integrations").and_then(Value::as_object) else {
        return true;
    };
    if let Some(switch) = integrations.get(destination_name) {
        if let Some(decided) = switch_value(switch) {
            return decided;
        }
    }
    integrations
        .get("All")
        .and_then(switch_value)
        .unwrap_or(true)
}

/// Reads one integrations switch: a boolean, or an object (options, meaning enabled).
fn switch_value(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(on) => Some(*on),
        Value::Object(_) => Some(true),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn received() -> Received {
        Received::new(parse_ts("2024-05-01T12:00:10.000Z").unwrap())
    }

    fn run(value: Value, path_type: Option<EventType>) -> Result<Value, EventError> {
        run_with(value, path_type, &BatchDefaults::default())
    }

    fn run_with(
        value: Value,
        path_type: Option<EventType>,
        d: &BatchDefaults<'_>,
    ) -> Result<Value, EventError> {
        assert!(value.is_object(), "not an object");
        let text = value.to_string();
        let map = RawObject::parse(&text).unwrap();
        let ev = normalize(map, path_type, d, &received(), &Arc::from("src"))?;
        let out: Value = serde_json::from_str(&ev.json).unwrap();
        assert_eq!(out["messageId"], Value::String(ev.message_id.clone()));
        assert_eq!(out["type"], ev.event_type.as_str());
        Ok(out)
    }

    fn code(value: Value, path_type: Option<EventType>) -> ErrorCode {
        run(value, path_type).unwrap_err().0
    }

    #[test]
    fn required_fields_per_type() {
        use EventType::*;
        assert_eq!(
            code(json!({"event": "x"}), Some(Track)),
            ErrorCode::MissingUserId
        );
        assert_eq!(
            code(
                json!({"userId": "", "anonymousId": null, "event": "x"}),
                Some(Track)
            ),
            ErrorCode::MissingUserId
        );
        assert_eq!(
            code(json!({"userId": "u"}), Some(Track)),
            ErrorCode::MissingEvent
        );
        assert_eq!(
            code(json!({"userId": "u", "event": "  "}), Some(Track)),
            ErrorCode::MissingEvent
        );
        assert_eq!(
            code(json!({"userId": "u", "event": 5}), Some(Track)),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(json!({"userId": "u"}), Some(Group)),
            ErrorCode::MissingGroupId
        );
        assert_eq!(
            code(json!({"userId": "u"}), Some(Alias)),
            ErrorCode::MissingPreviousId
        );
        assert_eq!(
            code(json!({"anonymousId": "a", "previousId": "p"}), Some(Alias)),
            ErrorCode::MissingUserId
        );
        assert_eq!(
            code(json!({"userId": true}), Some(Identify)),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(json!({"userId": "u", "traits": [1]}), Some(Identify)),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(json!({"userId": "u", "context": "x"}), Some(Page)),
            ErrorCode::InvalidField
        );
        assert_eq!(code(json!({"userId": "u"}), None), ErrorCode::MissingType);
        assert_eq!(
            code(json!({"userId": "u", "type": "Track"}), None),
            ErrorCode::InvalidType
        );
        assert_eq!(
            code(json!({"userId": "u", "type": 1}), None),
            ErrorCode::InvalidType
        );
        assert_eq!(
            code(json!({"userId": "u", "messageId": 7}), Some(Page)),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(
                json!({"userId": "u", "messageId": "m".repeat(101)}),
                Some(Page)
            ),
            ErrorCode::InvalidField
        );

        assert!(run(json!({"anonymousId": "a"}), Some(Page)).is_ok());
        assert!(run(json!({"userId": "u"}), Some(Screen)).is_ok());
        assert!(run(json!({"userId": 42, "groupId": 7}), Some(Group)).is_ok());
        assert!(run(json!({"userId": "u", "previousId": "p"}), Some(Alias)).is_ok());
        assert!(run(json!({"type": "identify", "anonymousId": "a"}), None).is_ok());
    }

    #[test]
    fn fills_server_fields_and_strips_write_key() {
        let out = run(
            json!({"userId": 42, "writeKey": "secret", "type": "page"}),
            Some(EventType::Identify),
        )
        .unwrap();
        assert_eq!(out["type"], "identify", "path type wins over the body's");
        assert_eq!(out["userId"], "42");
        assert!(out.get("writeKey").is_none());
        assert_eq!(out["receivedAt"], "2024-05-01T12:00:10.000Z");
        assert_eq!(out["timestamp"], "2024-05-01T12:00:10.000Z");
        let id = out["messageId"].as_str().unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        let kept = run(
            json!({"userId": "u", "messageId": "m-1"}),
            Some(EventType::Identify),
        )
        .unwrap();
        assert_eq!(kept["messageId"], "m-1");
    }

    #[test]
    fn message_ids_differ() {
        let a = new_message_id();
        let b = new_message_id();
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }

    #[test]
    fn timestamp_rule() {
        use EventType::Track;
        // Clock skew is undone: the client's clock runs 1 h fast, the event happened 5 s before sending.
        let out = run(
            json!({"userId": "u", "event": "e",
            "originalTimestamp": "2024-05-01T13:00:00.000Z", "sentAt": "2024-05-01T13:00:05.000Z"}),
            Some(Track),
        )
        .unwrap();
        assert_eq!(out["timestamp"], "2024-05-01T12:00:05.000Z");
        assert_eq!(out["originalTimestamp"], "2024-05-01T13:00:00.000Z");
        // Offsets are understood.
        let out = run(
            json!({"userId": "u", "event": "e",
            "originalTimestamp": "2024-05-01T15:00:00+02:00", "sentAt": "2024-05-01T13:00:01.5Z"}),
            Some(Track),
        )
        .unwrap();
        assert_eq!(out["timestamp"], "2024-05-01T12:00:08.500Z");
        // A caller's timestamp is kept and becomes originalTimestamp.
        let out = run(
            json!({"userId": "u", "event": "e", "timestamp": "2020-01-01T00:00:00Z",
            "sentAt": "2024-05-01T13:00:05.000Z"}),
            Some(Track),
        )
        .unwrap();
        assert_eq!(out["timestamp"], "2020-01-01T00:00:00Z");
        assert_eq!(out["originalTimestamp"], "2020-01-01T00:00:00Z");
        // originalTimestamp alone is used as is.
        let out = run(
            json!({"userId": "u", "event": "e", "originalTimestamp": "2024-01-01T00:00:00"}),
            Some(Track),
        )
        .unwrap();
        assert_eq!(out["timestamp"], "2024-01-01T00:00:00.000Z");
        // A sender's receivedAt is overwritten.
        let out = run(
            json!({"userId": "u", "event": "e", "receivedAt": "1999-01-01T00:00:00Z"}),
            Some(Track),
        )
        .unwrap();
        assert_eq!(out["receivedAt"], "2024-05-01T12:00:10.000Z");
        // Batch-level sentAt applies when the item has none.
        let d = BatchDefaults {
            sent_at: Some("2024-05-01T13:00:05.000Z"),
            ..Default::default()
        };
        let out = run_with(
            json!({"type": "track", "userId": "u", "event": "e",
            "originalTimestamp": "2024-05-01T13:00:00.000Z"}),
            None,
            &d,
        )
        .unwrap();
        assert_eq!(out["timestamp"], "2024-05-01T12:00:05.000Z");
        assert_eq!(out["sentAt"], "2024-05-01T13:00:05.000Z");
        // Bad timestamps are named.
        let (c, msg) = run(
            json!({"userId": "u", "event": "e", "sentAt": "yesterday"}),
            Some(Track),
        )
        .unwrap_err();
        assert_eq!(c, ErrorCode::InvalidTimestamp);
        assert!(msg.contains("sentAt"), "{msg}");
        assert_eq!(
            code(
                json!({"userId": "u", "event": "e", "timestamp": 5}),
                Some(Track)
            ),
            ErrorCode::InvalidTimestamp
        );
    }

    #[test]
    fn batch_context_and_integrations_merge_with_item_keys_winning() {
        let ctx = json!({"library": {"name": "batch"}, "ip": "1.2.3.4"});
        let ints = json!({"All": false, "Userpilot": true});
        let (ctx_text, ints_text) = (ctx.to_string(), ints.to_string());
        let batch_object = |text| BatchObject {
            entries: RawObject::parse(text).unwrap(),
            text,
        };
        let d = BatchDefaults {
            context: Some(batch_object(&ctx_text)),
            integrations: Some(batch_object(&ints_text)),
            sent_at: None,
        };
        let out = run_with(
            json!({"type": "identify", "userId": "u",
            "context": {"library": {"name": "item"}, "locale": "fr"},
            "integrations": {"Userpilot": false}}),
            None,
            &d,
        )
        .unwrap();
        assert_eq!(
            out["context"],
            json!({"library": {"name": "item"}, "locale": "fr", "ip": "1.2.3.4"})
        );
        assert_eq!(
            out["integrations"],
            json!({"Userpilot": false, "All": false})
        );
        let out = run_with(json!({"type": "identify", "userId": "u"}), None, &d).unwrap();
        assert_eq!(out["context"], ctx);
        assert_eq!(out["integrations"], ints);
    }

    #[test]
    fn integrations_switches() {
        assert!(is_enabled_for(&json!({}), "Userpilot"));
        assert!(is_enabled_for(&json!({"integrations": {}}), "Userpilot"));
        assert!(!is_enabled_for(
            &json!({"integrations": {"All": false}}),
            "Userpilot"
        ));
        assert!(is_enabled_for(
            &json!({"integrations": {"All": false, "Userpilot": true}}),
            "Userpilot"
        ));
        assert!(is_enabled_for(
            &json!({"integrations": {"All": false, "Userpilot": {"x": 1}}}),
            "Userpilot"
        ));
        assert!(!is_enabled_for(
            &json!({"integrations": {"Userpilot": false}}),
            "Userpilot"
        ));
        assert!(
            is_enabled_for(&json!({"integrations": {"userpilot": false}}), "Userpilot"),
            "keys are case-sensitive"
        );
        assert!(!is_enabled_for(
            &json!({"integrations": {"All": false, "Userpilot": "yes"}}),
            "Userpilot"
        ));
        assert!(is_enabled_for(
            &json!({"integrations": "nonsense"}),
            "Userpilot"
        ));
    }
}
