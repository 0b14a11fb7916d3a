//! The Event Tester (`POST /console/api/test`) and the mapping editor's preview
//! (`POST /console/api/preview`): what the configured mappings, or one mapping being edited,
//! make of an event, step by step.
//!
//! Both answer `200` with an `errors` list for problems in what a person typed (an event that
//! is not JSON, a trigger or a mapping that does not parse), each with where it is, so that a
//! page can show it at its place; a malformed call (no event, an unknown instance) is an
//! [`ApiError`]. The outcome of each mapping is what `Instance::dispatch` gives, and every
//! request is shown redacted by provenance, as `send --dry-run` shows it.

use actionkit_runtime::dispatch::{Instance, MappingConfig, Outcome};
use actionkit_runtime::request::Request;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api::ApiError;
use crate::{Console, ConsoleInstance};

/// A problem in what a person typed, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Which input: `event`, `trigger`, `fields.<key>`, `mapping` or `instance`.
    pub place: String,
    /// The one-based line in that input, when known.
    pub line: Option<usize>,
    /// The one-based column (in characters) in that input, when known.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    fn new(place: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            place: place.into(),
            line: None,
            column: None,
            message: message.into(),
        }
    }

    /// A JSON syntax error of the text in `place`, at its line and column.
    fn json(place: &str, err: &serde_json::Error) -> Problem {
        let text = err.to_string();
        let message = text
            .rsplit_once(" at line ")
            .map_or(text.as_str(), |(head, _)| head)
            .to_owned();
        Problem {
            place: place.to_owned(),
            line: Some(err.line()),
            column: Some(err.column()),
            message: format!("invalid JSON: {message}"),
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "where": self.place,
            "line": self.line,
            "column": self.column,
            "message": self.message,
        })
    }
}

/// The body of `POST /console/api/test`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestInput {
    /// The event as JSON.
    #[serde(default)]
    event: Option<Value>,
    /// The event as the text a person typed (parse errors then have a position).
    #[serde(default)]
    event_text: Option<String>,
    /// Only this instance (default: every configured instance).
    #[serde(default)]
    instance: Option<String>,
}

/// The body of `POST /console/api/preview`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewInput {
    /// The instance whose settings build the request.
    instance: String,
    /// The action the mapping feeds.
    action: String,
    /// The mapping's name (default: the action's name).
    #[serde(default)]
    name: Option<String>,
    /// The trigger (FQL) as typed.
    trigger: String,
    /// Each field's mapping as the JSON text a person typed; an empty text maps nothing.
    #[serde(default)]
    fields_text: Option<Map<String, Value>>,
    /// The whole mapping-kit object, instead of `fields_text`.
    #[serde(default)]
    mapping: Option<Map<String, Value>>,
    /// The event as JSON.
    #[serde(default)]
    event: Option<Value>,
    /// The event as typed.
    #[serde(default)]
    event_text: Option<String>,
}

/// Reads the event from exactly one of `event` and `event_text`; the inner error is a problem
/// with the text, the outer one a malformed call.
pub(crate) fn read_event(
    event: Option<Value>,
    text: Option<String>,
) -> Result<Result<Value, Problem>, ApiError> {
    let parsed = match (event, text) {
        (Some(event), None) => event,
        (None, Some(text)) => match serde_json::from_str::<Value>(&text) {
            Ok(event) => event,
            Err(err) => return Ok(Err(Problem::json("event", &err))),
        },
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "give the event as exactly one of `event` (JSON) and `event_text` (a string)",
            ));
        }
    };
    if parsed.is_object() {
        Ok(Ok(parsed))
    } else {
        Ok(Err(Problem::new(
            "event",
            "the event must be a JSON object, such as {\"type\": \"track\", \"event\": \"Signed Up\", \"userId\": \"u1\"}",
        )))
    }
}

/// The configured instance `name`, or a 404 naming the ones there are.
pub(crate) fn find_instance<'a>(
    console: &'a Console,
    name: &str,
) -> Result<&'a ConsoleInstance, ApiError> {
    console.instance(name).ok_or_else(|| {
        let names: Vec<&str> = console.instances.iter().map(|i| i.name.as_str()).collect();
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "unknown instance '{name}'; expected one of: {}",
                names.join(", ")
            ),
        )
    })
}

/// A request as shown: method, URL, headers and JSON body, redacted.
pub(crate) fn request_json(instance: &Instance, request: &Request) -> Value {
    let shown = instance.redact(request);
    let headers: Vec<Value> = shown
        .headers
        .iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    json!({
        "method": shown.method.as_str(),
        "url": shown.url,
        "headers": headers,
        "json": shown.json,
    })
}

/// What dispatch makes of an event for one mapping, as shown.
fn outcome_json(instance: &Instance, outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Request(request) => json!({
            "kind": "request",
            "request": request_json(instance, request),
        }),
        Outcome::Invalid { name, message, .. } => json!({
            "kind": "invalid",
            "error": {"name": name, "message": message},
        }),
        Outcome::Batch(item) => json!({
            "kind": "batch",
            "entry": item.redacted_entry(),
        }),
        Outcome::Skipped { reason } => json!({"kind": "skipped", "reason": reason}),
    }
}

fn misses_json(trigger: &actionkit_fql::Expr, event: &Value) -> Vec<Value> {
    trigger
        .misses(event)
        .into_iter()
        .map(|miss| json!({"condition": miss.condition, "found": miss.found}))
        .collect()
}

/// The Event Tester: every mapping of every (or one) instance on one event.
pub fn test(console: &Console, input: TestInput) -> Result<Value, ApiError> {
    let chosen: Vec<&ConsoleInstance> = match &input.instance {
        Some(name) => vec![find_instance(console, name)?],
        None => console.instances.iter().collect(),
    };
    let event = match read_event(input.event, input.event_text)? {
        Ok(event) => event,
        Err(problem) => {
            return Ok(json!({"errors": [problem.to_json()], "instances": []}));
        }
    };
    let instances: Vec<Value> = chosen
        .into_iter()
        .map(|entry| {
            let instance = &entry.instance;
            let mappings: Vec<Value> = instance
                .trace(&event)
                .iter()
                .map(|trace| {
                    json!({
                        "name": trace.view.name,
                        "action": trace.view.action_key,
                        "enabled": trace.view.enabled,
                        "trigger": trace.view.trigger.to_string(),
                        "matched": trace.matched,
                        "why_not": misses_json(trace.view.trigger, &event),
                        "payload": trace.payload,
                        "result": trace.outcome.as_ref().map(|o| outcome_json(instance, o)),
                    })
                })
                .collect();
            json!({
                "name": entry.name,
                "destination": instance.destination().def.slug,
                "mappings": mappings,
            })
        })
        .collect();
    Ok(json!({"errors": [], "instances": instances}))
}

/// The place of a mapping-kit validation message: the field its pointer starts with, when
/// there is one (`/userId/@path …` is about `fields.userId`).
fn mapping_place(message: &str, mapping: &Map<String, Value>) -> String {
    let first = message
        .strip_prefix('/')
        .and_then(|rest| rest.split(['/', ' ']).next())
        .unwrap_or("");
    if !first.is_empty() && mapping.contains_key(first) {
        format!("fields.{first}")
    } else {
        "mapping".to_owned()
    }
}

/// The mapping editor's preview: one mapping, as edited, on one event.
pub fn preview(console: &Console, input: PreviewInput) -> Result<Value, ApiError> {
    let entry = find_instance(console, &input.instance)?;
    let dest = entry.instance.destination();
    let Some(action) = dest.action(&input.action) else {
        let keys: Vec<&str> = dest.actions.iter().map(|a| a.def.key).collect();
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown action '{}' of destination '{}'; expected one of: {}",
                input.action,
                dest.def.slug,
                keys.join(", ")
            ),
        ));
    };
    let mut problems: Vec<Problem> = Vec::new();

    let trigger = match actionkit_fql::parse(&input.trigger) {
        Ok(expr) => Some(expr),
        Err(err) => {
            problems.push(Problem {
                column: Some(err.column),
                ..Problem::new("trigger", err.message)
            });
            None
        }
    };

    let mapping: Map<String, Value> = match (input.mapping, input.fields_text) {
        (Some(mapping), None) => mapping,
        (None, Some(texts)) => {
            let mut mapping = Map::new();
            for (key, text) in texts {
                let place = format!("fields.{key}");
                let Value::String(text) = text else {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "`fields_text.{key}` must be a string: the field's mapping as JSON text"
                        ),
                    ));
                };
                if text.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Value>(&text) {
                    Ok(value) => {
                        mapping.insert(key, value);
                    }
                    Err(err) => problems.push(Problem::json(&place, &err)),
                }
            }
            mapping
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "give the mapping as exactly one of `fields_text` (each field's JSON text) and `mapping` (an object)",
            ));
        }
    };
    for key in mapping.keys() {
        if !action.def.fields.iter().any(|f| f.key == key) {
            problems.push(Problem::new(
                format!("fields.{key}"),
                format!("'{key}' is not a field of {}", action.def.name),
            ));
        }
    }
    let compiled = match actionkit_mapping::Mapping::compile(&Value::Object(mapping.clone())) {
        Ok(compiled) => Some(compiled),
        Err(errs) => {
            for message in errs.messages {
                problems.push(Problem::new(mapping_place(&message, &mapping), message));
            }
            None
        }
    };

    let event = match read_event(input.event, input.event_text)? {
        Ok(event) => Some(event),
        Err(problem) => {
            problems.push(problem);
            None
        }
    };

    let trigger_json = match (&trigger, &event) {
        (Some(expr), Some(event)) => json!({
            "canonical": expr.to_string(),
            "matched": expr.matches(event),
            "why_not": misses_json(expr, event),
        }),
        (Some(expr), None) => json!({"canonical": expr.to_string()}),
        _ => Value::Null,
    };

    let name = input
        .name
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| action.def.name.to_owned());
    let mut payload = Value::Null;
    let mut result = Value::Null;
    if let (Some(expr), Some(compiled), Some(event)) = (&trigger, &compiled, &event) {
        if expr.matches(event) {
            let config = MappingConfig {
                name: name.clone(),
                trigger: input.trigger.clone(),
                action_key: action.def.key.to_owned(),
                mapping: Value::Object(mapping.clone()),
                enabled: true,
            };
            match Instance::new(
                dest.clone(),
                entry.instance.settings(),
                std::slice::from_ref(&config),
            ) {
                Ok(instance) => {
                    if let Some(trace) = instance.trace(event).into_iter().next() {
                        payload = trace.payload.unwrap_or(Value::Null);
                        result = trace
                            .outcome
                            .as_ref()
                            .map_or(Value::Null, |o| outcome_json(&instance, o));
                    }
                }
                Err(err) => problems.push(Problem::new("instance", err.to_string())),
            }
        } else {
            match compiled.evaluate(event) {
                Ok(value) => payload = value.unwrap_or_else(|| json!({})),
                Err(err) => {
                    result = json!({
                        "kind": "invalid",
                        "error": {"name": "MappingError", "message": err.message},
                    });
                }
            }
        }
    }
    let yaml = problems.is_empty().then(|| {
        crate::yaml::mapping_entry(&name, input.trigger.trim(), action.def.key, &mapping, 0)
    });
    Ok(json!({
        "errors": problems.iter().map(Problem::to_json).collect::<Vec<_>>(),
        "trigger": trigger_json,
        "payload": payload,
        "result": result,
        "yaml": yaml,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_problems_have_a_position_and_no_repeated_suffix() {
        let err = serde_json::from_str::<Value>("{\"a\": 1,\n  \"b\" 2}").expect_err("invalid");
        let problem = Problem::json("event", &err);
        assert_eq!((problem.line, problem.column), (Some(2), Some(7)));
        assert_eq!(problem.message, "invalid JSON: expected `:`");
    }

    #[test]
    fn mapping_messages_are_placed_at_their_field() {
        let Value::Object(mapping) = json!({"userId": {"@path": 1}}) else {
            unreachable!("a JSON object literal");
        };
        assert_eq!(
            mapping_place("/userId/@path should be a string.", &mapping),
            "fields.userId"
        );
        assert_eq!(mapping_place("/other is odd.", &mapping), "mapping");
        assert_eq!(
            mapping_place("mapping is nested too deeply", &mapping),
            "mapping"
        );
    }
}
