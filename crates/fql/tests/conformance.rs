//! Replays the subscription conformance cases of the spec (§7.2 and its extra quirk cases) from
//! `tests/data/segment_conformance.json`, reporting every failure at once.
//!
//! A case may have `fql` (parsed and compared with `ast` through `to_segment_ast`; an `ast` of the
//! form `{"error": …}` expects a parse error), `ast` plus `events` (the tree built from the AST and,
//! when the case has FQL, the parsed tree must give each event's expected match result),
//! `display` (the AST printed as FQL), or `events_exists`/`events_not_exists` (checked against
//! `properties.value` exists / not_exists). Cases marked `deviation` pin our documented behaviour
//! instead of Segment's (kept in `segment_ast`), including the exact error text.

use actionkit_fql::{Expr, parse};
use serde_json::{Value, json};

/// The `"<undefined>"` placeholder stands for JavaScript's `undefined`; the closest JSON event
/// that is not an object is `null`.
fn event_of(value: &Value) -> Value {
    match value {
        Value::String(s) if s == "<undefined>" => Value::Null,
        other => other.clone(),
    }
}

fn check_events(id: &str, label: &str, expr: &Expr, events: &Value, failures: &mut Vec<String>) {
    let Some(events) = events.as_array() else {
        failures.push(format!("{id}: events must be an array"));
        return;
    };
    for pair in events {
        let (Some(event), Some(expected)) = (pair.get(0), pair.get(1).and_then(Value::as_bool))
        else {
            failures.push(format!("{id}: malformed event pair {pair}"));
            continue;
        };
        let actual = expr.matches(&event_of(event));
        if actual != expected {
            failures.push(format!(
                "{id} ({label}): event {event} expected {expected} but matched {actual}"
            ));
        }
    }
}

fn run_case(case: &Value, failures: &mut Vec<String>) {
    let id = case["id"].as_str().unwrap_or("<no id>");
    let deviation = case.get("deviation").is_some();
    let ast = case.get("ast");
    if deviation && case.get("segment_ast").is_none() {
        failures.push(format!(
            "{id}: deviation cases must record Segment's result in segment_ast"
        ));
    }

    let mut parsed = None;
    if let Some(fql) = case.get("fql").and_then(Value::as_str) {
        let result = parse(fql);
        match (ast.and_then(|a| a.get("error")), result) {
            (Some(expected_error), Err(err)) => {
                if deviation && expected_error.as_str() != Some(err.to_string().as_str()) {
                    failures.push(format!(
                        "{id}: expected error {expected_error} but got \"{err}\""
                    ));
                }
            }
            (Some(expected_error), Ok(expr)) => failures.push(format!(
                "{id}: expected error {expected_error} but parsed {}",
                expr.to_segment_ast()
            )),
            (None, Err(err)) => failures.push(format!("{id}: {fql:?} failed to parse: {err}")),
            (None, Ok(expr)) => {
                if let Some(ast) = ast {
                    let actual = expr.to_segment_ast();
                    if &actual != ast {
                        failures.push(format!("{id}: expected AST {ast} but got {actual}"));
                    }
                }
                parsed = Some(expr);
            }
        }
    }

    let from_ast = match ast {
        Some(ast) if ast.get("error").is_none() => match Expr::from_segment_ast(ast) {
            Ok(expr) => {
                let back = expr.to_segment_ast();
                if &back != ast {
                    failures.push(format!("{id}: AST {ast} converted back as {back}"));
                }
                Some(expr)
            }
            Err(err) => {
                failures.push(format!("{id}: from_segment_ast failed: {err}"));
                None
            }
        },
        _ => None,
    };

    if let Some(events) = case.get("events") {
        match &from_ast {
            Some(expr) => check_events(id, "from AST", expr, events, failures),
            None => failures.push(format!("{id}: events without a usable AST")),
        }
        if let Some(expr) = &parsed {
            check_events(id, "from FQL", expr, events, failures);
        }
    }

    if let Some(display) = case.get("display").and_then(Value::as_str) {
        match &from_ast {
            Some(expr) if expr.to_string() == display => {}
            Some(expr) => failures.push(format!(
                "{id}: expected to print {display:?} but got {:?}",
                expr.to_string()
            )),
            None => failures.push(format!("{id}: display without a usable AST")),
        }
    }

    for (key, operator, fql) in [
        ("events_exists", "exists", "properties.value != null"),
        ("events_not_exists", "not_exists", "properties.value = null"),
    ] {
        let Some(events) = case.get(key) else {
            continue;
        };
        let ast = json!({"type": "group", "operator": "and", "children": [
            {"type": "event-property", "name": "value", "operator": operator}
        ]});
        match Expr::from_segment_ast(&ast) {
            Ok(expr) => check_events(id, key, &expr, events, failures),
            Err(err) => failures.push(format!("{id}: {key}: {err}")),
        }
        match parse(fql) {
            Ok(expr) if expr.to_segment_ast() == ast => {
                check_events(id, fql, &expr, events, failures)
            }
            Ok(expr) => failures.push(format!("{id}: {fql} parsed as {}", expr.to_segment_ast())),
            Err(err) => failures.push(format!("{id}: {fql}: {err}")),
        }
    }
}

#[test]
fn segment_conformance() {
    let text = include_str!("data/segment_conformance.json");
    let cases: Vec<Value> = serde_json::from_str(text).expect("conformance data is valid JSON");
    assert!(
        cases.len() >= 30,
        "expected the full case list, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        run_case(case, &mut failures);
    }
    assert!(
        failures.is_empty(),
        "{} of {} conformance cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn error_ast_never_converts() {
    let err = Expr::from_segment_ast(&json!({"error": "TypeError"})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "at the root: expected a condition tree but found Segment's parse error TypeError"
    );
}
