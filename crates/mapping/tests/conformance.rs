//! Data-driven mapping tests: Segment's conformance cases (spec §7.1 plus its extra quirk cases)
//! and our own edge cases, run by one runner that reports every failing case id at once.
//!
//! File format: a JSON array of entries `{id, payload?, mapping?, out?, cases?}`. An entry with
//! `cases` runs each case, and a case inherits `payload` and `mapping` from its entry. `out` is the
//! expected result; a missing `out` or the string `"ABSENT"` means the result is absent, and
//! `"THROWS(msg)"` means compile or evaluate fails with `msg` (for compile failures, `msg` must be
//! one of the validation messages). An optional `data_error` flag on a case marks a payload that is
//! deliberately not an object.

use std::path::Path;

use actionkit_mapping::Mapping;
use serde_json::{Value, json};

/// What a case expects.
enum Expected {
    Absent,
    Throws(String),
    Value(Value),
}

fn expected_of(case: &serde_json::Map<String, Value>) -> Expected {
    match case.get("out") {
        None => Expected::Absent,
        Some(Value::String(s)) if s == "ABSENT" => Expected::Absent,
        Some(Value::String(s)) if s.starts_with("THROWS(") && s.ends_with(')') => {
            Expected::Throws(s["THROWS(".len()..s.len() - 1].to_owned())
        }
        Some(v) => Expected::Value(v.clone()),
    }
}

/// Runs one case; returns a description of the failure, if any.
fn run_case(mapping: &Value, payload: &Value, expected: &Expected) -> Option<String> {
    let compiled = match Mapping::compile(mapping) {
        Ok(m) => m,
        Err(e) => {
            return match expected {
                Expected::Throws(msg) if e.messages.iter().any(|m| m == msg) => None,
                _ => Some(format!("compile failed: {:?}", e.messages)),
            };
        }
    };
    match (compiled.evaluate(payload), expected) {
        (Err(e), Expected::Throws(msg)) if &e.message == msg => None,
        (Err(e), _) => Some(format!("evaluate failed: {}", e.message)),
        (Ok(None), Expected::Absent) => None,
        (Ok(Some(v)), Expected::Value(want)) if &v == want => None,
        (Ok(got), Expected::Throws(msg)) => Some(format!("expected error {msg:?}, got {got:?}")),
        (Ok(got), Expected::Absent) => Some(format!("expected absent, got {got:?}")),
        (Ok(got), Expected::Value(want)) => Some(format!("expected {want}, got {got:?}")),
    }
}

/// Runs every case in a data file; returns (number of cases, failures).
fn run_file(path: &Path) -> (usize, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path:?}: {e}"));
    let entries: Vec<Value> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {path:?}: {e}"));
    let mut count = 0;
    let mut failures = Vec::new();
    for entry in &entries {
        let Value::Object(entry) = entry else {
            failures.push(format!("{path:?}: entry is not an object: {entry}"));
            continue;
        };
        let id = entry.get("id").and_then(Value::as_str).unwrap_or("<no id>");
        let cases: Vec<(String, serde_json::Map<String, Value>)> = match entry.get("cases") {
            Some(Value::Array(cases)) => cases
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let mut merged = entry.clone();
                    merged.remove("cases");
                    merged.remove("out");
                    if let Value::Object(c) = c {
                        for (k, v) in c {
                            merged.insert(k.clone(), v.clone());
                        }
                    }
                    (format!("{id} #{i}"), merged)
                })
                .collect(),
            _ => vec![(id.to_owned(), entry.clone())],
        };
        for (case_id, case) in cases {
            count += 1;
            let Some(mapping) = case.get("mapping") else {
                failures.push(format!("{case_id}: no mapping"));
                continue;
            };
            let payload = case.get("payload").cloned().unwrap_or_else(|| json!({}));
            if let Some(why) = run_case(mapping, &payload, &expected_of(&case)) {
                failures.push(format!("{case_id}: {why}"));
            }
        }
    }
    (count, failures)
}

fn check(file: &str, min_cases: usize) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(file);
    let (count, failures) = run_file(&path);
    assert!(
        count >= min_cases,
        "{file}: expected at least {min_cases} cases, found {count}"
    );
    assert!(
        failures.is_empty(),
        "{} of {count} cases in {file} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn segment_conformance() {
    check("segment_conformance.json", 49);
}

#[test]
fn edge_cases() {
    check("edge_cases.json", 100);
}
