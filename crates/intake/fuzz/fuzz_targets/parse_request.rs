//! Fuzzes the intake request parser with arbitrary headers and bodies.
//!
//! Input layout: one byte choosing the path, then four headers and the body, each header
//! prefixed by a length byte (255 meaning "absent").

#![no_main]

use actionkit_intake::{EventType, IntakeConfig, PathKind, RequestMeta, parse_request};
use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;

fn take<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (&len, rest) = data.split_first()?;
    if len == 255 {
        *data = rest;
        return None;
    }
    let len = usize::from(len).min(rest.len());
    let (head, tail) = rest.split_at(len);
    *data = tail;
    Some(head)
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, mut data)) = input.split_first() else {
        return;
    };
    let kind = match selector % 7 {
        6 => PathKind::Batch,
        n => PathKind::Single(EventType::ALL[usize::from(n)]),
    };
    let meta = RequestMeta {
        content_type: take(&mut data),
        content_encoding: take(&mut data),
        authorization: take(&mut data),
        x_write_key: take(&mut data),
        query_write_key: take(&mut data),
    };
    let Ok(mut config) = IntakeConfig::new([("web", "wk-web"), ("server", "wk-server")]) else {
        return;
    };
    // Small limits reach the limit paths more often.
    config.max_event_bytes = 4096;
    config.max_batch_bytes = 16384;
    config.max_batch_events = 16;
    config.max_depth = 8;
    let now = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).single();
    let Some(now) = now else { return };
    match parse_request(kind, &meta, data, now, &config) {
        Ok(accepted) => {
            for event in &accepted.events {
                assert!(event.json.starts_with('{'));
                assert!(!event.json.contains("\"writeKey\""));
            }
        }
        Err(rejection) => assert!((400..500).contains(&rejection.status())),
    }
});
