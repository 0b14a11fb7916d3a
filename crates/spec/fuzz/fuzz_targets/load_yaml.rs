//! Fuzzes the YAML loader: any bytes, read as UTF-8 text, must load or produce diagnostics
//! with positions, never panic.
//!
//! Run with `cargo +nightly fuzz run load_yaml` from `crates/spec/` (seed inputs: `fuzz/seeds/`).

#![no_main]

use actionkit_spec::{FileKind, load_str};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first byte picks the file kind so both schemas are exercised.
    let kind = if data.first().is_some_and(|b| b % 2 == 0) {
        FileKind::Destination
    } else {
        FileKind::Action
    };
    if let Err(diagnostics) = load_str(kind, "fuzz.yaml", text) {
        for diagnostic in diagnostics.iter() {
            assert!(diagnostic.line >= 1 && diagnostic.column >= 1);
        }
        let _ = diagnostics.to_string();
    }
});
