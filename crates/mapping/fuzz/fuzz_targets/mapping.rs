//! Fuzz target: arbitrary bytes are read as JSON `[mapping, event]` (or split into two JSON
//! documents at the first NUL byte); the mapping is compiled and evaluated, which must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let (mapping, event) = match serde_json::from_slice::<Value>(data) {
        Ok(Value::Array(mut pair)) if pair.len() == 2 => {
            let event = pair.pop().unwrap_or(Value::Null);
            let mapping = pair.pop().unwrap_or(Value::Null);
            (mapping, event)
        }
        Ok(other) => (
            other,
            serde_json::json!({"a": 1, "s": "text", "o": {"k": [1, null]}}),
        ),
        Err(_) => {
            let Some(split) = data.iter().position(|b| *b == 0) else {
                return;
            };
            let Ok(mapping) = serde_json::from_slice::<Value>(&data[..split]) else {
                return;
            };
            let Ok(event) = serde_json::from_slice::<Value>(&data[split + 1..]) else {
                return;
            };
            (mapping, event)
        }
    };
    if let Ok(compiled) = actionkit_mapping::Mapping::compile(&mapping) {
        let _ = compiled.evaluate(&event);
    }
});
