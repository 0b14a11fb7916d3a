//! Runs our own cases from `tests/data/cases.json`, reporting every failure at once:
//! `matches` (a trigger against an event), `trees` (the canonical printed form, which must also
//! parse back to the same tree) and `errors` (the exact error text, column included).

use actionkit_fql::parse;
use serde_json::Value;

fn load() -> Value {
    serde_json::from_str(include_str!("data/cases.json")).expect("cases.json is valid JSON")
}

fn section<'a>(data: &'a Value, name: &str) -> &'a [Value] {
    data[name].as_array().map(Vec::as_slice).unwrap_or_default()
}

#[test]
fn cases() {
    let data = load();
    let mut failures = Vec::new();
    let mut count = 0;

    for case in section(&data, "matches") {
        count += 1;
        let fql = case["fql"].as_str().unwrap_or_default();
        let expected = case["expected"].as_bool();
        match parse(fql) {
            Ok(expr) => {
                let actual = expr.matches(&case["event"]);
                if Some(actual) != expected {
                    failures.push(format!(
                        "match {fql:?} on {}: expected {expected:?} but got {actual}",
                        case["event"]
                    ));
                }
            }
            Err(err) => failures.push(format!("match {fql:?}: failed to parse: {err}")),
        }
    }

    for case in section(&data, "trees") {
        count += 1;
        let fql = case["fql"].as_str().unwrap_or_default();
        let display = case["display"].as_str().unwrap_or_default();
        match parse(fql) {
            Ok(expr) => {
                let printed = expr.to_string();
                if printed != display {
                    failures.push(format!(
                        "tree {fql:?}: expected {display:?} but printed {printed:?}"
                    ));
                }
                match parse(&printed) {
                    Ok(again) if again == expr => {}
                    Ok(again) => failures.push(format!(
                        "tree {fql:?}: {printed:?} parsed back as a different tree {}",
                        again.to_segment_ast()
                    )),
                    Err(err) => {
                        failures.push(format!("tree {fql:?}: {printed:?} does not parse: {err}"))
                    }
                }
            }
            Err(err) => failures.push(format!("tree {fql:?}: failed to parse: {err}")),
        }
    }

    for case in section(&data, "errors") {
        count += 1;
        let fql = case["fql"].as_str().unwrap_or_default();
        let expected = case["error"].as_str().unwrap_or_default();
        match parse(fql) {
            Ok(expr) => failures.push(format!(
                "error {fql:?}: expected {expected:?} but parsed {expr}"
            )),
            Err(err) => {
                if err.to_string() != expected {
                    failures.push(format!(
                        "error {fql:?}:\n  expected {expected:?}\n  got      {:?}",
                        err.to_string()
                    ));
                }
            }
        }
    }

    assert!(count >= 100, "expected the full case list, found {count}");
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn error_column_is_counted_in_characters() {
    let err = parse("event = \"é\" or événement = \"x\"").unwrap_err();
    assert_eq!(err.column, 16);
    assert!(
        err.message.ends_with("but found 'événement'"),
        "{}",
        err.message
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!(
        "{}type = \"track\"{}",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    let err = parse(&deep).unwrap_err();
    assert_eq!(err.column, 65);
    assert_eq!(
        err.message,
        "expected at most 64 nested parentheses but found more"
    );
    let ok = format!("{}type = \"track\"{}", "(".repeat(64), ")".repeat(64));
    assert!(parse(&ok).is_ok());
}
