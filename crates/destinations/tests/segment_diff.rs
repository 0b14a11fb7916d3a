//! The differential comparison with Segment's own packages, case by case, without Node.
//!
//! `tools/segment-diff/data/` holds a seeded corpus (`<kind>.cases.json`, written by
//! `cargo xtask segment-diff`) and the answers that Segment's published packages gave to it
//! (`<kind>.answers.json`, written by `tools/segment-diff/answer.js` under Node):
//!
//! - `mapping`: mapping-kit `transform` of a mapping over a payload: the value, absence, the
//!   evaluation error or the validation messages, compared exactly (key order included; numbers
//!   by value, since JSON spells `10.0` and `10` alike for JavaScript; a validation message Segment
//!   throws alone equals a list of that one message).
//! - `trigger`: `parseFql` and `validate` of a subscription over an event: whether it matches, or
//!   that the trigger is refused. Refusals are compared by outcome, not wording: our parse errors
//!   name the column and what was expected (deviation 3 of the fql crate).
//! - `userpilot`: every request Userpilot's actions make for an event through the destination's
//!   presets (method, URL, the headers the destination sets, JSON body) or the error that stops
//!   it.
//!
//! Every case that differs must be listed in `tools/segment-diff/deviations.json` with its reason
//! (a deviation documented in the crate docs or the destination's docs page), every listed case
//! must still differ, and at least 99.5% of the mapping and trigger cases must agree. Run with
//! `-- --nocapture` to see the differences grouped by directive, and with `SEGMENT_DIFF_ALL=1` to
//! see every one.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use actionkit_mapping::TransformError;
use actionkit_runtime::dispatch::{Instance, Outcome};
use serde_json::{Map, Value, json};

/// At most this many cases in a thousand of the mapping and trigger kinds may differ.
const MAX_DIFFERING_PER_MILLE: usize = 5;

/// The API key the corpus is answered with; both sides show it as `<apiKey>`.
const API_KEY: &str = "segment-diff-key";

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/segment-diff")
}

/// Reads a data file. Lone UTF-16 surrogates (which JavaScript writes as `\ud800`) are read as
/// U+FFFD, as the intake reads them.
fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let text = actionkit_intake::json::replace_lone_surrogates(&text);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The cases of one kind and Segment's answers, by id.
fn load(kind: &str) -> Vec<(Value, Value)> {
    let dir = data_dir().join("data");
    let cases = read_json(&dir.join(format!("{kind}.cases.json")));
    let answers = read_json(&dir.join(format!("{kind}.answers.json")));
    let cases = cases["cases"].as_array().cloned().unwrap_or_default();
    let answers = answers["answers"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        cases.len(),
        answers.len(),
        "{kind}: {} cases but {} answers; regenerate with `cargo xtask segment-diff`",
        cases.len(),
        answers.len()
    );
    cases
        .into_iter()
        .zip(answers)
        .map(|(case, answer)| {
            assert_eq!(
                case["id"], answer["id"],
                "{kind}: the answers are not those of the cases; regenerate with `cargo xtask segment-diff`"
            );
            (case, answer)
        })
        .collect()
}

/// JSON equality as JavaScript sees it after a round trip: key order counts, numbers compare by
/// value.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, va), (kb, vb))| ka == kb && same(va, vb))
        }
        _ => a == b,
    }
}

/// actionkit's answer to a mapping case, in the shape of Segment's.
fn mapping_answer(case: &Value) -> Value {
    match actionkit_mapping::transform(&case["mapping"], &case["payload"]) {
        Ok(Some(value)) => json!({ "value": value }),
        Ok(None) => json!({ "absent": true }),
        Err(TransformError::Invalid(e)) => json!({ "errors": e.messages }),
        Err(TransformError::Eval(e)) => json!({ "error": e.message }),
    }
}

/// Segment's validation throws a problem found directly under a directive as it is, and problems
/// collected over an object's keys in an `AggregateError`; what counts is the messages, so a lone
/// thrown message equals a list of that one message.
fn mapping_same(ours: &Value, theirs: &Value) -> bool {
    match (ours.get("errors"), theirs.get("error")) {
        (Some(Value::Array(list)), Some(message)) => list.len() == 1 && &list[0] == message,
        _ => same(ours, theirs),
    }
}

fn without_id(answer: &Value) -> Value {
    let mut answer = answer.clone();
    if let Value::Object(map) = &mut answer {
        map.shift_remove("id");
    }
    answer
}

/// actionkit's answer to a trigger case: a match, or a refusal (its wording aside).
fn trigger_answer(case: &Value) -> Value {
    match actionkit_fql::parse(case["fql"].as_str().unwrap_or_default()) {
        Ok(expr) => json!({ "match": expr.matches(&case["event"]) }),
        Err(e) => json!({ "parse_error": e.to_string() }),
    }
}

fn trigger_same(ours: &Value, theirs: &Value) -> bool {
    match (ours.get("parse_error"), theirs.get("parse_error")) {
        (Some(_), Some(_)) => true,
        (None, None) => same(ours, theirs),
        _ => false,
    }
}

/// The settings the corpus is answered with (Userpilot's default endpoint).
fn userpilot_settings() -> Value {
    json!({ "apiKey": API_KEY, "endpoint": "https://analytex.userpilot.io/" })
}

/// actionkit's requests for a Userpilot case, in the shape of Segment's answer.
fn userpilot_answer(instance: &Instance, case: &Value) -> Value {
    let mut requests = Vec::new();
    for outcome in instance.dispatch(&case["event"]) {
        let action = outcome.action_key.unwrap_or("?");
        match outcome.outcome {
            Outcome::Request(request) => {
                let mut headers = Map::new();
                for (name, value) in &request.headers {
                    if matches!(name.as_str(), "authorization" | "x-api-version") {
                        headers.insert(name.clone(), json!(value.replace(API_KEY, "<apiKey>")));
                    }
                }
                if request.json.is_some() {
                    // Set by the HTTP client for every JSON body.
                    headers.insert("content-type".into(), json!("application/json"));
                }
                headers.sort_keys();
                requests.push(json!({
                    "action": action,
                    "method": request.method.as_str(),
                    "url": request.url,
                    "headers": headers,
                    "json": request.json,
                }));
            }
            Outcome::Invalid { message, .. } => requests.push(json!({
                "action": action,
                "error": { "message": message },
            })),
            Outcome::Batch(_) | Outcome::Skipped { .. } => {}
        }
    }
    json!({ "requests": requests })
}

/// Segment's answer with what it cannot share with us set aside: the transport headers its HTTP
/// client adds (`accept`, and `user-agent`, a documented deviation) and an error's class name
/// and status (its payload validation throws `AggregateAjvError`, which its engine reports as a
/// payload validation error with status 400; we name that class directly). Messages compare.
fn userpilot_comparable(answer: &Value) -> Value {
    let mut answer = without_id(answer);
    if let Some(Value::Array(requests)) = answer.get_mut("requests") {
        for request in requests {
            if let Some(Value::Object(headers)) = request.get_mut("headers") {
                headers.shift_remove("accept");
                headers.shift_remove("user-agent");
                headers.sort_keys();
            }
            if let Some(Value::Object(error)) = request.get_mut("error") {
                error.shift_remove("status");
                error.shift_remove("name");
            }
        }
    }
    answer
}

/// A difference between the two answers to one case.
struct Difference {
    id: String,
    group: String,
    case: Value,
    ours: Value,
    theirs: Value,
}

/// The outcome of comparing one kind.
struct Report {
    kind: &'static str,
    total: usize,
    differences: Vec<Difference>,
}

impl Report {
    fn agreement(&self) -> f64 {
        1.0 - self.differences.len() as f64 / self.total.max(1) as f64
    }

    /// The differences grouped by directive, with up to three examples each (every one when
    /// `SEGMENT_DIFF_ALL` is set).
    fn render(&self, listed: &BTreeMap<String, String>) -> String {
        let examples = if std::env::var_os("SEGMENT_DIFF_ALL").is_some() {
            usize::MAX
        } else {
            3
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}: {} of {} cases agree ({:.2}%)",
            self.kind,
            self.total - self.differences.len(),
            self.total,
            100.0 * self.agreement()
        );
        let mut groups: BTreeMap<&str, Vec<&Difference>> = BTreeMap::new();
        for d in &self.differences {
            groups.entry(d.group.as_str()).or_default().push(d);
        }
        for (group, diffs) in groups {
            let _ = writeln!(out, "  {group}: {} differ", diffs.len());
            for d in diffs.iter().take(examples) {
                let why = listed.get(&d.id).map_or("not listed", String::as_str);
                let _ = writeln!(out, "    {} ({why})", d.id);
                let _ = writeln!(out, "      case:    {}", truncate(&d.case.to_string()));
                let _ = writeln!(out, "      segment: {}", truncate(&d.theirs.to_string()));
                let _ = writeln!(out, "      ours:    {}", truncate(&d.ours.to_string()));
            }
        }
        out
    }
}

fn truncate(text: &str) -> String {
    const MAX: usize = 600;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

fn compare_kind(
    kind: &'static str,
    answer: impl Fn(&Value) -> Value,
    equal: impl Fn(&Value, &Value) -> bool,
    comparable: impl Fn(&Value) -> Value,
) -> Report {
    let pairs = load(kind);
    let mut differences = Vec::new();
    for (case, theirs) in &pairs {
        let ours = answer(case);
        let theirs = comparable(theirs);
        if !equal(&ours, &theirs) {
            let mut shown = case.clone();
            if let Value::Object(map) = &mut shown {
                for key in ["payload", "event"] {
                    if map.contains_key(key) && kind == "mapping" {
                        map.insert(key.into(), json!("…"));
                    }
                }
            }
            differences.push(Difference {
                id: case["id"].as_str().unwrap_or_default().to_owned(),
                group: case["group"].as_str().unwrap_or("?").to_owned(),
                case: shown,
                ours,
                theirs,
            });
        }
    }
    Report {
        kind,
        total: pairs.len(),
        differences,
    }
}

/// The deliberate deviations: kind → case id → reason.
fn deviations() -> BTreeMap<String, BTreeMap<String, String>> {
    let value = read_json(&data_dir().join("deviations.json"));
    let mut out = BTreeMap::new();
    for kind in ["mapping", "trigger", "userpilot"] {
        let mut listed = BTreeMap::new();
        if let Some(Value::Object(cases)) = value.get(kind) {
            for (id, why) in cases {
                let why = why.as_str().unwrap_or_default();
                assert!(
                    !why.trim().is_empty(),
                    "deviations.json: {kind} {id} needs a reason"
                );
                listed.insert(id.clone(), why.to_owned());
            }
        }
        out.insert(kind.to_owned(), listed);
    }
    out
}

#[test]
fn actionkit_answers_as_segment_does() {
    let dest = actionkit_destinations::registry()
        .unwrap_or_else(|problems| panic!("the generated destinations are invalid: {problems:?}"))
        .get("actions-userpilot-cloud")
        .cloned()
        .unwrap_or_else(|| panic!("userpilot is not generated"));
    let instance = Instance::from_presets(dest, &userpilot_settings())
        .unwrap_or_else(|e| panic!("userpilot instance: {e}"));
    let reports = [
        compare_kind("mapping", mapping_answer, mapping_same, without_id),
        compare_kind("trigger", trigger_answer, trigger_same, without_id),
        compare_kind(
            "userpilot",
            |case| userpilot_answer(&instance, case),
            same,
            userpilot_comparable,
        ),
    ];
    let deviations = deviations();
    let mut failures = Vec::new();
    for report in &reports {
        let listed = &deviations[report.kind];
        println!("{}", report.render(listed));
        let min_cases = match report.kind {
            "mapping" => 3_000,
            "trigger" => 1_500,
            _ => 300,
        };
        if report.total < min_cases {
            failures.push(format!(
                "{}: only {} cases, expected at least {min_cases}",
                report.kind, report.total
            ));
        }
        if report.kind != "userpilot"
            && report.differences.len() * 1000 > report.total * MAX_DIFFERING_PER_MILLE
        {
            failures.push(format!(
                "{}: {:.2}% agree, below {:.1}%",
                report.kind,
                100.0 * report.agreement(),
                100.0 - MAX_DIFFERING_PER_MILLE as f64 / 10.0
            ));
        }
        for d in &report.differences {
            if !listed.contains_key(&d.id) {
                failures.push(format!(
                    "{} {} ({}) differs and is not listed in deviations.json",
                    report.kind, d.id, d.group
                ));
            }
        }
        for id in listed.keys() {
            if !report.differences.iter().any(|d| &d.id == id) {
                failures.push(format!(
                    "{} {id} is listed in deviations.json but agrees now; remove it",
                    report.kind
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
