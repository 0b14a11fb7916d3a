//! Data-driven conformance cases: `actions/<dest>/tests/*.yaml`.
//!
//! Every case file is a YAML list of cases. A case feeds one Segment event (plus settings and,
//! optionally, one explicit mapping) through the generated destination exactly as the CLI does
//! (`Instance::from_presets` / `Instance::new`, then `Instance::dispatch`,
//! `test_authentication_request` or `on_delete_request`) and compares what comes out with the
//! expectation, exactly. Keys of a case:
//!
//! - `name` (required): unique within its file.
//! - `note`: free text (for example the spec section a case comes from).
//! - `kind`: `dispatch` (default), `test_authentication`, `on_delete`, or `delete_users` /
//!   `delete_companies` (the destination's bulk `deletions`, beyond Segment).
//!   `batch` feeds every event of `events` through dispatch and gathers the entries of batch
//!   actions as serve and send do (all at once, so only `max_items`, `max_bytes` and the batch
//!   keys cut batches): the actual list is each single request in event order, each batch
//!   request when its batch is complete, then the batches still open, in the order they opened.
//!   In a `dispatch` case, a batch action's entry shows as the batch request it would make alone.
//!   `changes` feeds each list of `rounds` (lists of events) to dispatch as one leased batch of
//!   serve with `send_only_changes` on: requests of one record are coalesced, and those that
//!   change nothing delivered in an earlier round are not sent; the actual list is what is sent,
//!   round after round (batch entries as batches of one).
//! - `event`: the Segment event (required for `dispatch` and `on_delete`); `events`: the list of
//!   events of a `batch` case.
//! - `ids`: the ids to delete (required for `delete_users` and `delete_companies`).
//! - `settings`: the instance settings, used as given (Segment applies no setting defaults).
//!   Without it the runner uses every declared setting default, and `test-<key>` for required
//!   settings whose default is empty (Userpilot: `{"apiKey": "test-apiKey", "endpoint":
//!   "https://analytex.userpilot.io/"}`).
//! - `fill_defaults: true`: fill absent settings from their declared defaults first, as the CLI does.
//! - `mapping`: `presets` (default: the destination's presets with their triggers), or, together
//!   with `action: <key>`, an object (field key → mapping-kit) or `defaults` (the action's field
//!   defaults, also when `mapping` is left out); `trigger` (FQL) then defaults to the action's
//!   default trigger, or to every type of event for an action without one.
//! - Exactly one expectation:
//!   - `requests`: the list of requests, in dispatch order (an item `{error: {name, message,
//!     status}}` stands for an event a mapping rejected); each has `method`, `url` and optionally
//!     `headers` (when present: ALL headers, exactly, the signature header included; names
//!     compared in lower case, order ignored),
//!     `rate_limit` (when present: the rate-limit key, or `null`) and `json` (the body, compared
//!     exactly including key order and number spelling; absent means "no body").
//!   - `error`: `{name, message, status}` of the single outcome.
//!   - `skipped: true`: the event matched no mapping.
//!   - `settings_error`: the instance could not be created; the text is the settings validation
//!     message (Segment's wording), the request-defaults error, or the mapping problems.
//! - `known_failure: "<why>"`: the case states the spec's expectation but the implementation
//!   disagrees; a mismatch is reported separately and does not fail the run, while a case that
//!   passes despite the marker fails the run (so the marker gets removed).
//!
//! The runner runs every case of every file and reports all failures at once, each with its file,
//! line, case name and a line diff of expected (`-`) against actual (`+`). Run it with
//! `cargo test -p actionkit-destinations --test cases -- --nocapture` to also see known failures.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actionkit_runtime::batch::{Gatherer, Pending};
use actionkit_runtime::build::BuildError;
use actionkit_runtime::changes::Known;
use actionkit_runtime::destination::{CompiledDestination, DeletionKind, Registry};
use actionkit_runtime::dispatch::{Instance, InstanceError, MappingConfig, Outcome};
use actionkit_runtime::request::Request;
use actionkit_runtime::units::{self, Work};
use actionkit_runtime::validate::fill_setting_defaults;
use serde_json::{Map, Value, json};

/// The trigger of a case whose action has no default trigger: every type of event.
const EVERY_EVENT: &str = r#"type = "track" or type = "identify" or type = "page" or type = "screen" or type = "group" or type = "alias""#;

/// Every key a case may have.
const CASE_KEYS: &[&str] = &[
    "name",
    "note",
    "kind",
    "event",
    "events",
    "rounds",
    "ids",
    "settings",
    "fill_defaults",
    "action",
    "trigger",
    "mapping",
    "requests",
    "error",
    "skipped",
    "settings_error",
    "known_failure",
];

/// Every key an expected request may have.
const REQUEST_KEYS: &[&str] = &["method", "url", "headers", "rate_limit", "json"];

/// What a case exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dispatch,
    TestAuthentication,
    OnDelete,
    Deletion(DeletionKind),
    Batch,
    Changes,
}

/// The result of one case.
#[derive(Debug)]
enum Verdict {
    Pass,
    Fail(String),
    KnownFailure { why: String, detail: String },
    UnexpectedPass { why: String },
}

/// One reported case.
#[derive(Debug)]
struct Report {
    location: String,
    name: String,
    verdict: Verdict,
}

/// The destination a directory of cases belongs to.
struct Target {
    dest: Arc<CompiledDestination>,
    default_settings: Value,
}

impl Target {
    fn new(dest: Arc<CompiledDestination>) -> Target {
        let mut settings = Value::Object(Map::new());
        fill_setting_defaults(dest.def.settings, &mut settings);
        if let Value::Object(map) = &mut settings {
            for setting in dest.def.settings.iter().filter(|s| s.required) {
                let empty = match map.get(setting.key) {
                    None | Some(Value::Null) => true,
                    Some(Value::String(s)) => s.is_empty(),
                    Some(_) => false,
                };
                if empty {
                    map.insert(
                        setting.key.to_owned(),
                        Value::String(format!("test-{}", setting.key)),
                    );
                }
            }
        }
        Target {
            dest,
            default_settings: settings,
        }
    }
}

/// Runs every case of one file; a file that cannot be read as cases is one failed report.
fn run_file(target: &Target, file: &str, text: &str) -> Vec<Report> {
    let file_failure = |message: String| {
        vec![Report {
            location: file.to_owned(),
            name: "(file)".to_owned(),
            verdict: Verdict::Fail(message),
        }]
    };
    let (doc, source) = match actionkit_spec::yaml::parse(file, text) {
        Ok(parsed) => parsed,
        Err(diagnostics) => {
            let text: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
            return file_failure(format!("the file does not parse:\n{}", text.join("\n")));
        }
    };
    let Value::Array(cases) = doc else {
        return file_failure("the file must be a list of cases".to_owned());
    };
    if cases.is_empty() {
        return file_failure("the file holds no cases".to_owned());
    }
    let mut reports = Vec::with_capacity(cases.len());
    let mut names: Vec<String> = Vec::new();
    for (idx, case) in cases.iter().enumerate() {
        let line = source.value_or_ancestor(&format!("/{idx}")).line;
        let location = format!("{file}:{line}");
        let name = case
            .get("name")
            .and_then(Value::as_str)
            .map_or_else(|| format!("(case #{})", idx + 1), str::to_owned);
        let verdict = if names.contains(&name) {
            Verdict::Fail(format!("the case name '{name}' is used twice in this file"))
        } else {
            run_case(target, case)
        };
        names.push(name.clone());
        reports.push(Report {
            location,
            name,
            verdict,
        });
    }
    reports
}

/// Runs one case and judges it, honouring `known_failure`.
fn run_case(target: &Target, case: &Value) -> Verdict {
    let known = case
        .get("known_failure")
        .map(|why| why.as_str().map(str::to_owned));
    let outcome = run_case_inner(target, case);
    match (known, outcome) {
        (Some(None), _) => Verdict::Fail("known_failure must be a string (the reason)".to_owned()),
        (None, Ok(())) => Verdict::Pass,
        (None, Err(detail)) => Verdict::Fail(detail),
        (Some(Some(why)), Ok(())) => Verdict::UnexpectedPass { why },
        (Some(Some(why)), Err(detail)) => Verdict::KnownFailure { why, detail },
    }
}

fn run_case_inner(target: &Target, case: &Value) -> Result<(), String> {
    let Value::Object(case) = case else {
        return Err("a case must be a mapping".to_owned());
    };
    let unknown: Vec<&str> = case
        .keys()
        .map(String::as_str)
        .filter(|key| !CASE_KEYS.contains(key))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "unknown case key(s) {}; expected one of {}",
            unknown.join(", "),
            CASE_KEYS.join(", ")
        ));
    }
    if !case.get("name").is_some_and(Value::is_string) {
        return Err("every case needs a string `name`".to_owned());
    }
    let kind = match case.get("kind").map(Value::as_str) {
        None | Some(Some("dispatch")) => Kind::Dispatch,
        Some(Some("test_authentication")) => Kind::TestAuthentication,
        Some(Some("on_delete")) => Kind::OnDelete,
        Some(Some("delete_users")) => Kind::Deletion(DeletionKind::Users),
        Some(Some("delete_companies")) => Kind::Deletion(DeletionKind::Companies),
        Some(Some("batch")) => Kind::Batch,
        Some(Some("changes")) => Kind::Changes,
        Some(_) => {
            return Err(
                "`kind` must be dispatch, batch, changes, test_authentication, on_delete, delete_users or delete_companies"
                    .to_owned(),
            );
        }
    };
    let events: Option<&Vec<Value>> = match (kind, case.get("events")) {
        (Kind::Batch, Some(Value::Array(events))) if !events.is_empty() => Some(events),
        (Kind::Batch, _) => return Err("a batch case needs `events`, a non-empty list".to_owned()),
        (_, Some(_)) => return Err("`events` goes with `kind: batch`".to_owned()),
        (_, None) => None,
    };
    let rounds: Vec<Vec<Value>> = match (kind, case.get("rounds")) {
        (Kind::Changes, Some(Value::Array(rounds))) if !rounds.is_empty() => rounds
            .iter()
            .map(|round| round.as_array().cloned())
            .collect::<Option<_>>()
            .ok_or("`rounds` must be a list of lists of events")?,
        (Kind::Changes, _) => {
            return Err("a changes case needs `rounds`, a list of lists of events".to_owned());
        }
        (_, Some(_)) => return Err("`rounds` goes with `kind: changes`".to_owned()),
        (_, None) => Vec::new(),
    };
    let event = case.get("event");
    let ids: Option<Vec<String>> = match (kind, case.get("ids")) {
        (Kind::Deletion(_), Some(Value::Array(ids))) => Some(
            ids.iter()
                .map(|id| id.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or("`ids` must be a list of strings")?,
        ),
        (Kind::Deletion(_), _) => return Err("this case needs `ids`, a list of strings".to_owned()),
        (_, Some(_)) => return Err("`ids` goes with delete_users or delete_companies".to_owned()),
        (_, None) => None,
    };
    if event.is_some() && matches!(kind, Kind::Batch | Kind::Changes) {
        return Err("a batch or changes case takes `events` or `rounds`, not `event`".to_owned());
    }
    if event.is_none() && matches!(kind, Kind::Dispatch | Kind::OnDelete) {
        return Err("this case needs an `event`".to_owned());
    }
    let expected = expectation(case)?;

    let mut settings = case
        .get("settings")
        .cloned()
        .unwrap_or_else(|| target.default_settings.clone());
    match case.get("fill_defaults") {
        None | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => fill_setting_defaults(target.dest.def.settings, &mut settings),
        Some(_) => return Err("`fill_defaults` must be a boolean".to_owned()),
    }

    let instance = match make_instance(target, case, &settings, kind)? {
        Ok(instance) => instance,
        Err(err) => {
            let actual = json!({ "settings_error": instance_error_text(&err) });
            return compare(&expected, &actual);
        }
    };
    let outcomes: Vec<Value> = match kind {
        Kind::Dispatch => {
            let event = event.cloned().unwrap_or(Value::Null);
            instance
                .dispatch(&event)
                .into_iter()
                .map(|outcome| outcome_json(&instance, outcome.outcome))
                .collect()
        }
        Kind::Batch => batch_outcomes(&instance, events.map_or(&[][..], Vec::as_slice)),
        Kind::Changes => changes_outcomes(&instance, &rounds),
        Kind::TestAuthentication => built_json(instance.test_authentication_request()),
        Kind::OnDelete => {
            let event = event.cloned().unwrap_or(Value::Null);
            built_json(instance.on_delete_request(&event))
        }
        Kind::Deletion(deletion) => {
            match instance.deletion_requests(deletion, ids.as_deref().unwrap_or_default()) {
                Ok(requests) => requests
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(_, request)| json!({ "request": request_json(request) }))
                    .collect(),
                Err(err) => built_json(Err(err)),
            }
        }
    };
    let actual = shape_like(&expected, Value::Array(outcomes));
    compare(&expected, &actual)
}

/// Builds the instance; the outer error is a malformed case, the inner one the instance error.
fn make_instance(
    target: &Target,
    case: &Map<String, Value>,
    settings: &Value,
    kind: Kind,
) -> Result<Result<Instance, InstanceError>, String> {
    let dest = target.dest.clone();
    match (case.get("action"), case.get("mapping")) {
        (None, None) | (None, Some(Value::String(_))) => {
            if let Some(Value::String(mapping)) = case.get("mapping")
                && mapping != "presets"
            {
                return Err(format!(
                    "`mapping` must be `presets` or an object with `action`, found '{mapping}'"
                ));
            }
            if case.contains_key("trigger") {
                return Err("`trigger` needs `action` and an explicit `mapping`".to_owned());
            }
            Ok(Instance::from_presets(dest, settings))
        }
        (Some(Value::String(action)), mapping) => {
            let mapping = match mapping {
                Some(mapping @ Value::Object(_)) => mapping.clone(),
                None => dest.action(action).map_or_else(
                    || Value::Object(Map::new()),
                    |a| a.default_mapping_json.clone(),
                ),
                Some(Value::String(word)) if word == "defaults" => dest.action(action).map_or_else(
                    || Value::Object(Map::new()),
                    |a| a.default_mapping_json.clone(),
                ),
                Some(_) => {
                    return Err(
                        "with `action`, `mapping` must be `defaults` (or absent) or an object"
                            .to_owned(),
                    );
                }
            };
            if !matches!(kind, Kind::Dispatch | Kind::Batch | Kind::Changes) {
                return Err("`action` and `mapping` only apply to dispatch cases".to_owned());
            }
            let trigger = match case.get("trigger") {
                Some(Value::String(trigger)) => trigger.clone(),
                Some(_) => return Err("`trigger` must be an FQL string".to_owned()),
                None => match dest.action(action).map(|a| a.def.default_trigger) {
                    Some(trigger) if !trigger.is_empty() => trigger.to_owned(),
                    // Without a default trigger (Segment's Webhook has none), every event
                    // matches, as Segment's testAction skips trigger matching.
                    _ => EVERY_EVENT.to_owned(),
                },
            };
            let config = MappingConfig {
                name: "case".to_owned(),
                trigger,
                action_key: action.clone(),
                mapping,
                enabled: true,
            };
            Ok(Instance::new(dest, settings, &[config]))
        }
        _ => Err(
            "use `mapping: presets` (or no mapping), or `action: <key>` with `mapping: defaults` \
             or an object `mapping`"
                .to_owned(),
        ),
    }
}

/// The text a `settings_error` expectation is compared with.
fn instance_error_text(err: &InstanceError) -> String {
    match err {
        InstanceError::Settings(payload) => payload.message.clone(),
        InstanceError::RequestDefaults(build) => build.to_string(),
        InstanceError::Mappings(_) => err.to_string(),
    }
}

/// The expected value in the shape the actual one is normalised to.
fn expectation(case: &Map<String, Value>) -> Result<Value, String> {
    let present: Vec<&str> = ["requests", "error", "skipped", "settings_error"]
        .into_iter()
        .filter(|key| case.contains_key(*key))
        .collect();
    if present.len() != 1 {
        return Err(format!(
            "a case needs exactly one of requests, error, skipped, settings_error; found {}",
            if present.is_empty() {
                "none".to_owned()
            } else {
                present.join(", ")
            }
        ));
    }
    match present[0] {
        "requests" => {
            let Some(Value::Array(requests)) = case.get("requests") else {
                return Err("`requests` must be a list".to_owned());
            };
            let mut out = Vec::with_capacity(requests.len());
            for (idx, request) in requests.iter().enumerate() {
                if let Some(error) = request.get("error") {
                    let error = expected_error(error)
                        .map_err(|message| format!("requests[{idx}]: {message}"))?;
                    out.push(json!({ "error": error }));
                    continue;
                }
                let request = expected_request(request)
                    .map_err(|message| format!("requests[{idx}]: {message}"))?;
                out.push(json!({ "request": request }));
            }
            Ok(Value::Array(out))
        }
        "error" => {
            let error = expected_error(case.get("error").unwrap_or(&Value::Null))?;
            Ok(json!([{ "error": error }]))
        }
        "skipped" => match case.get("skipped") {
            Some(Value::Bool(true)) => Ok(json!([{ "skipped": true }])),
            _ => Err("`skipped` must be `true`".to_owned()),
        },
        _ => match case.get("settings_error") {
            Some(Value::String(message)) => Ok(json!({ "settings_error": message })),
            _ => Err("`settings_error` must be a string".to_owned()),
        },
    }
}

/// An expected error, `{name, message, status}`, in the normalised key order.
fn expected_error(error: &Value) -> Result<Value, String> {
    let valid = error.as_object().is_some_and(|e| {
        e.len() == 3
            && e.get("name").is_some_and(Value::is_string)
            && e.get("message").is_some_and(Value::is_string)
            && e.get("status").is_some_and(Value::is_u64)
    });
    if !valid {
        return Err("`error` must be exactly {name, message, status}".to_owned());
    }
    Ok(json!({
        "name": error["name"],
        "message": error["message"],
        "status": error["status"],
    }))
}

/// An expected request in the normalised key order, header names in lower case and sorted.
fn expected_request(request: &Value) -> Result<Value, String> {
    let Value::Object(request) = request else {
        return Err("a request must be a mapping".to_owned());
    };
    if let Some(key) = request.keys().find(|k| !REQUEST_KEYS.contains(&k.as_str())) {
        return Err(format!(
            "unknown request key '{key}'; expected one of {}",
            REQUEST_KEYS.join(", ")
        ));
    }
    let mut out = Map::new();
    for key in ["method", "url"] {
        match request.get(key) {
            Some(value @ Value::String(_)) => {
                out.insert(key.to_owned(), value.clone());
            }
            _ => return Err(format!("`{key}` must be a string")),
        }
    }
    if let Some(headers) = request.get("headers") {
        let Value::Object(headers) = headers else {
            return Err("`headers` must be a mapping of name to value".to_owned());
        };
        let mut pairs = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            let Value::String(value) = value else {
                return Err(format!("header '{name}' must be a string"));
            };
            pairs.push((name.to_ascii_lowercase(), value.clone()));
        }
        out.insert("headers".to_owned(), header_object(pairs));
    }
    if let Some(rate_limit) = request.get("rate_limit") {
        if !(rate_limit.is_string() || rate_limit.is_null()) {
            return Err("`rate_limit` must be a string or null".to_owned());
        }
        out.insert("rate_limit".to_owned(), rate_limit.clone());
    }
    if let Some(body) = request.get("json") {
        out.insert("json".to_owned(), body.clone());
    }
    Ok(Value::Object(out))
}

fn header_object(mut pairs: Vec<(String, String)>) -> Value {
    pairs.sort();
    Value::Object(
        pairs
            .into_iter()
            .map(|(name, value)| (name, Value::String(value)))
            .collect(),
    )
}

/// A built request in the normalised shape (every key; [`shape_like`] drops unchecked ones).
/// A signed request shows its signature header as the delivery engine computes it.
fn request_json(request: Request) -> Value {
    let request = request.signed();
    let mut out = Map::new();
    out.insert(
        "method".to_owned(),
        Value::String(request.method.as_str().to_owned()),
    );
    out.insert("url".to_owned(), Value::String(request.url));
    out.insert("headers".to_owned(), header_object(request.headers));
    out.insert(
        "rate_limit".to_owned(),
        request.rate_limit_key.map_or(Value::Null, Value::String),
    );
    if let Some(body) = request.json {
        out.insert("json".to_owned(), body);
    }
    Value::Object(out)
}

/// Dispatches `events` in order and gathers their batch entries (see the module docs).
fn batch_outcomes(instance: &Instance, events: &[Value]) -> Vec<Value> {
    let mut gatherer: Gatherer<()> = Gatherer::default();
    let now = tokio::time::Instant::now();
    let mut out = Vec::new();
    let batch_json = |batch: Pending<()>| {
        built_json(
            instance
                .batch_request(batch.action_index, batch.entries)
                .map(Some),
        )
    };
    for event in events {
        for outcome in instance.dispatch(event) {
            match outcome.outcome {
                Outcome::Batch(item) => match gatherer.push(instance, item, (), now) {
                    Ok(complete) => out.extend(complete.into_iter().flat_map(batch_json)),
                    Err(()) => {
                        out.push(json!({ "error": "an entry of an action without a batch form" }))
                    }
                },
                Outcome::Skipped { .. } => {}
                other => out.push(outcome_json(instance, other)),
            }
        }
    }
    out.extend(gatherer.drain().into_iter().flat_map(batch_json));
    out
}

/// Sends `rounds` as serve does with `send_only_changes` on (see the module docs): what is sent.
fn changes_outcomes(instance: &Instance, rounds: &[Vec<Value>]) -> Vec<Value> {
    let mut known: HashMap<(&'static str, String), Known> = HashMap::new();
    let mut out = Vec::new();
    for round in rounds {
        let mut planned = Vec::new();
        for (row, event) in round.iter().enumerate() {
            let mut works = Vec::new();
            for outcome in instance.dispatch(event) {
                let action = outcome.action_key.unwrap_or("?");
                match outcome.outcome {
                    Outcome::Request(request) => works.push((action, Work::Request(request))),
                    Outcome::Batch(item) => works.push((action, Work::Entry(item))),
                    Outcome::Skipped { .. } => {}
                    other => out.push(outcome_json(instance, other)),
                }
            }
            planned.push((row, works));
        }
        let mut units = units::build_units(planned, |action| instance.merges(action));
        units::skip_unchanged(&mut units, &known);
        for unit in units.into_iter().filter(|unit| !unit.unchanged) {
            // Every request sent is taken as delivered.
            if let Some(fingerprint) = &unit.fingerprint {
                known
                    .entry((fingerprint.record, fingerprint.id.clone()))
                    .or_default()
                    .absorb(fingerprint);
            }
            match unit.work {
                Work::Request(request) => out.push(json!({ "request": request_json(request) })),
                Work::Entry(item) => out.push(outcome_json(instance, Outcome::Batch(item))),
            }
        }
    }
    out
}

fn outcome_json(instance: &Instance, outcome: Outcome) -> Value {
    match outcome {
        Outcome::Request(request) => json!({ "request": request_json(request) }),
        Outcome::Batch(item) => {
            let alone = instance.batch_request(item.action_index, vec![item.entry]);
            built_json(alone.map(Some)).pop().unwrap_or(Value::Null)
        }
        Outcome::Invalid {
            name,
            message,
            status,
        } => json!({ "error": { "name": name, "message": message, "status": status } }),
        Outcome::Skipped { .. } => json!({ "skipped": true }),
    }
}

fn built_json(built: Result<Option<Request>, BuildError>) -> Vec<Value> {
    match built {
        Ok(Some(request)) => vec![json!({ "request": request_json(request) })],
        Ok(None) => Vec::new(),
        Err(err) => vec![json!({ "error": {
            "name": "RequestBuildError",
            "message": err.to_string(),
            "status": 400,
        }})],
    }
}

/// Drops `headers` / `rate_limit` from each actual request whose expected counterpart does not
/// check them.
fn shape_like(expected: &Value, mut actual: Value) -> Value {
    if let (Value::Array(expected), Value::Array(actual)) = (expected, &mut actual) {
        for (idx, outcome) in actual.iter_mut().enumerate() {
            let wanted = expected.get(idx).and_then(|e| e.get("request"));
            if let Some(Value::Object(request)) = outcome.get_mut("request") {
                for key in ["headers", "rate_limit"] {
                    if wanted.is_none_or(|w| w.get(key).is_none()) {
                        request.shift_remove(key);
                    }
                }
            }
        }
    }
    actual
}

/// Compares the pretty-printed texts (so key order and number spelling count).
fn compare(expected: &Value, actual: &Value) -> Result<(), String> {
    let expected = pretty(expected);
    let actual = pretty(actual);
    if expected == actual {
        Ok(())
    } else {
        Err(format!(
            "expected (-) and actual (+) differ:\n{}",
            line_diff(&expected, &actual)
        ))
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|err| format!("<unprintable: {err}>"))
}

/// A line diff (longest common subsequence): `  ` common, `- ` expected only, `+ ` actual only.
fn line_diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = String::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            let _ = writeln!(out, "    {}", a[i]);
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            let _ = writeln!(out, "  - {}", a[i]);
            i += 1;
        } else {
            let _ = writeln!(out, "  + {}", b[j]);
            j += 1;
        }
    }
    out
}

fn registry() -> Registry {
    actionkit_destinations::registry()
        .unwrap_or_else(|problems| panic!("the generated destinations are invalid: {problems:?}"))
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The slug declared in `actions/<dir>/destination.yaml`.
fn slug_of(dir: &Path) -> String {
    let path = dir.join("destination.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    let (doc, _) = actionkit_spec::yaml::parse(&path.display().to_string(), &text)
        .unwrap_or_else(|problems| panic!("{} does not parse: {problems:?}", path.display()));
    doc.get("slug")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{} has no slug", path.display()))
        .to_owned()
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    entries
}

fn render(reports: &[&Report]) -> String {
    let mut out = String::new();
    for report in reports {
        let _ = write!(out, "\n--- {} `{}`\n", report.location, report.name);
        match &report.verdict {
            Verdict::Fail(detail) => out.push_str(detail),
            Verdict::KnownFailure { why, detail } => {
                let _ = write!(out, "known failure: {why}\n{detail}");
            }
            Verdict::UnexpectedPass { why } => {
                let _ = writeln!(
                    out,
                    "passes although marked known_failure (\"{why}\"); remove the marker"
                );
            }
            Verdict::Pass => {}
        }
    }
    out
}

#[test]
fn every_case_of_every_destination_holds() {
    let registry = registry();
    let root = repo_root();
    let mut reports = Vec::new();
    let mut destinations = 0;
    for dir in sorted_entries(&root.join("actions")) {
        let tests = dir.join("tests");
        if !tests.is_dir() {
            continue;
        }
        destinations += 1;
        let slug = slug_of(&dir);
        let dest = registry
            .get(&slug)
            .unwrap_or_else(|| panic!("destination '{slug}' is not generated"))
            .clone();
        let target = Target::new(dest);
        let files: Vec<PathBuf> = sorted_entries(&tests)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        assert!(!files.is_empty(), "{} holds no case files", tests.display());
        for path in files {
            let label = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .display()
                .to_string();
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|err| panic!("cannot read {label}: {err}"));
            reports.extend(run_file(&target, &label, &text));
        }
    }
    assert!(destinations > 0, "no actions/<dest>/tests directory found");

    let passed = reports
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Pass))
        .count();
    let known: Vec<&Report> = reports
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::KnownFailure { .. }))
        .collect();
    let failed: Vec<&Report> = reports
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Fail(_) | Verdict::UnexpectedPass { .. }))
        .collect();
    println!(
        "{} cases: {passed} passed, {} known failures, {} failed",
        reports.len(),
        known.len(),
        failed.len()
    );
    if !known.is_empty() {
        println!("known failures (not failing the run):{}", render(&known));
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:{}",
        failed.len(),
        reports.len(),
        render(&failed)
    );
}

/// The runner itself: a wrong expectation fails with a diff, a malformed case is rejected, and
/// `known_failure` turns a mismatch into a known failure and a match into a failure.
#[test]
fn the_runner_reports_wrong_expectations() {
    let registry = registry();
    let dest = registry
        .get("actions-userpilot-cloud")
        .unwrap_or_else(|| panic!("userpilot is not generated"))
        .clone();
    let target = Target::new(dest);
    let text = r#"
- name: right
  event: {type: track, userId: u1, event: E}
  requests:
    - {method: POST, url: "https://analytex.userpilot.io/v1/track", json: {user_id: u1, event_name: E}}
- name: wrong body
  event: {type: track, userId: u1, event: E}
  requests:
    - {method: POST, url: "https://analytex.userpilot.io/v1/track", json: {user_id: u2, event_name: E}}
- name: wrong header
  event: {type: track, userId: u1, event: E}
  requests:
    - method: POST
      url: "https://analytex.userpilot.io/v1/track"
      headers: {authorization: Token nope}
      json: {user_id: u1, event_name: E}
- name: typo
  evnt: {}
  skipped: true
- name: known and failing
  known_failure: demo
  event: {type: page}
  requests: []
- name: known but passing
  known_failure: demo
  event: {type: page}
  skipped: true
"#;
    let reports = run_file(&target, "inline.yaml", text);
    let verdicts: Vec<(&str, &str)> = reports
        .iter()
        .map(|r| {
            let kind = match r.verdict {
                Verdict::Pass => "pass",
                Verdict::Fail(_) => "fail",
                Verdict::KnownFailure { .. } => "known",
                Verdict::UnexpectedPass { .. } => "unexpected pass",
            };
            (r.name.as_str(), kind)
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("right", "pass"),
            ("wrong body", "fail"),
            ("wrong header", "fail"),
            ("typo", "fail"),
            ("known and failing", "known"),
            ("known but passing", "unexpected pass"),
        ]
    );
    let Verdict::Fail(detail) = &reports[1].verdict else {
        panic!("not a failure");
    };
    assert!(detail.contains("  - ") && detail.contains("\"user_id\": \"u2\""));
    assert!(detail.contains("  + ") && detail.contains("\"user_id\": \"u1\""));
    assert_eq!(reports[1].location, "inline.yaml:6");
    let Verdict::Fail(detail) = &reports[3].verdict else {
        panic!("not a failure");
    };
    assert!(detail.contains("unknown case key(s) evnt"), "{detail}");
}
