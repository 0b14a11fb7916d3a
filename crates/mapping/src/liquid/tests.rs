//! Cases checked against Segment's own code (liquidjs 10.31 as `@segment/actions-core`
//! configures it): each is a template, an event, and the rendered text or error message.

use serde_json::Value;

use super::LiquidTemplate;

/// The oracle table, one JSON line per case: `[template, payload, {"ok": text} | {"err": message}]`.
/// Set `ACTIONKIT_LIQUID_CASES` to a file of the same form to check another table.
const CASES: &str = include_str!("oracle_cases.jsonl");

fn run(template: &str, payload: &Value) -> Result<String, String> {
    LiquidTemplate::parse(template)?.render(payload)
}

#[test]
fn agrees_with_liquidjs() {
    let path = std::env::var("ACTIONKIT_LIQUID_CASES").ok();
    let text = match &path {
        Some(p) => std::fs::read_to_string(p).unwrap_or_default(),
        None => CASES.to_owned(),
    };
    let mut failures = Vec::new();
    let mut n_cases = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).expect("each line is a JSON case");
        let (Some(t), Some(p), Some(want)) = (case[0].as_str(), case.get(1), case.get(2)) else {
            panic!("malformed case {line}");
        };
        n_cases += 1;
        let got = run(t, p);
        let ok = match (&got, want.get("ok"), want.get("err")) {
            (Ok(g), Some(Value::String(w)), _) => g == w,
            (Err(g), _, Some(Value::String(w))) => g == w,
            _ => false,
        };
        if !ok {
            failures.push(format!("{t:?} {p} => {got:?}, want {want}"));
        }
    }
    assert!(n_cases > 0);
    assert!(
        failures.is_empty(),
        "{} of {n_cases} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
