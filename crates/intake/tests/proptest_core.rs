//! Property tests: the request parser never panics, whatever the bytes and headers, and what it
//! accepts always comes out as normalised JSON objects.

use actionkit_intake::{EventType, IntakeConfig, PathKind, RequestMeta, parse_request};
use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use serde_json::Value;

fn config() -> IntakeConfig {
    let mut cfg = IntakeConfig::new([("web", "wk-web")]).unwrap();
    // Small limits so that the limit paths are reached often.
    cfg.max_event_bytes = 2048;
    cfg.max_batch_bytes = 8192;
    cfg.max_batch_events = 8;
    cfg.max_depth = 6;
    cfg
}

fn kind() -> impl Strategy<Value = PathKind> {
    prop_oneof![
        Just(PathKind::Batch),
        proptest::sample::select(EventType::ALL.to_vec()).prop_map(PathKind::Single),
    ]
}

fn header() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        Just(None),
        Just(Some(b"application/json".to_vec())),
        Just(Some(b"gzip".to_vec())),
        Just(Some(b"Basic d2std2ViOg==".to_vec())),
        Just(Some(b"wk-web".to_vec())),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Some),
    ]
}

/// JSON-ish text built from fragments that the parser cares about.
fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    let frag = prop_oneof![
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(",".to_owned()),
        Just(":".to_owned()),
        Just(r#""batch""#.to_owned()),
        Just(r#""type""#.to_owned()),
        Just(r#""track""#.to_owned()),
        Just(r#""userId""#.to_owned()),
        Just(r#""event""#.to_owned()),
        Just(r#""writeKey""#.to_owned()),
        Just(r#""wk-web""#.to_owned()),
        Just(r#""timestamp""#.to_owned()),
        Just(r#""sentAt""#.to_owned()),
        Just(r#""2024-01-01T00:00:00Z""#.to_owned()),
        Just("null".to_owned()),
        Just("1e400".to_owned()),
        "[a-z\\\\\"]{0,6}".prop_map(|s| s),
    ];
    proptest::collection::vec(frag, 0..60).prop_map(|parts| parts.concat().into_bytes())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn never_panics_on_arbitrary_input(
        kind in kind(),
        content_type in header(),
        content_encoding in header(),
        authorization in header(),
        x_write_key in header(),
        body in prop_oneof![proptest::collection::vec(any::<u8>(), 0..512), jsonish()],
    ) {
        let meta = RequestMeta {
            content_type: content_type.as_deref(),
            content_encoding: content_encoding.as_deref(),
            authorization: authorization.as_deref(),
            x_write_key: x_write_key.as_deref(),
            query_write_key: None,
        };
        let now = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
        match parse_request(kind, &meta, &body, now, &config()) {
            Ok(accepted) => {
                prop_assert_eq!(&*accepted.source, "web");
                for event in &accepted.events {
                    let value: Value = serde_json::from_str(&event.json).unwrap();
                    prop_assert!(value.is_object());
                    prop_assert!(value.get("writeKey").is_none());
                    prop_assert_eq!(value["messageId"].as_str(), Some(event.message_id.as_str()));
                    prop_assert_eq!(value["receivedAt"].as_str(), Some("2024-05-01T12:00:00.000Z"));
                }
            }
            Err(rejection) => {
                prop_assert!((400..500).contains(&rejection.status()));
                prop_assert!(!rejection.message.is_empty());
            }
        }
    }

}

proptest! {
    #[test]
    fn valid_events_are_accepted_whatever_their_strings(
        user in "\\PC{1,20}",
        name in "\\PC{1,20}",
        prop in "\\PC{0,40}",
    ) {
        let body = serde_json::json!({"batch": [
            {"type": "track", "userId": user, "event": name, "properties": {"p": prop}},
        ]})
        .to_string();
        let meta = RequestMeta {
            content_type: Some(b"application/json"),
            x_write_key: Some(b"wk-web"),
            ..Default::default()
        };
        let accepted = parse_request(PathKind::Batch, &meta, body.as_bytes(), Utc::now(), &config()).unwrap();
        let whitespace_only = user.trim().is_empty() || name.trim().is_empty();
        prop_assert_eq!(accepted.events.len(), usize::from(!whitespace_only));
        if let Some(event) = accepted.events.first() {
            let value: Value = serde_json::from_str(&event.json).unwrap();
            prop_assert_eq!(value["properties"]["p"].as_str(), Some(prop.as_str()));
            prop_assert_eq!(value["event"].as_str(), Some(name.as_str()));
        }
    }
}
