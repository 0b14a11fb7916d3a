//! Mapping validation (spec §1.5): the checks Segment runs before resolving a mapping, with its
//! exact message wording (`/<path> <message>.`).
//!
//! Errors thrown together at one object level are collected, so a caller sees every message; a
//! validator that Segment runs in sequence (`chain`) stops at its first error, as Segment's does.

use serde_json::{Map, Value};

use crate::value::{Kind, kind_of};

/// Every directive name Segment registers.
pub const DIRECTIVES: &[&str] = &[
    "@if",
    "@case",
    "@replace",
    "@arrayPath",
    "@path",
    "@template",
    "@literal",
    "@flatten",
    "@json",
    "@merge",
    "@transform",
    "@excludeWhenNull",
    "@liquid",
];

/// The list of messages produced by a failed check.
type Res = Result<(), Vec<String>>;

/// Validates a whole mapping; returns every message.
pub(crate) fn validate_mapping(mapping: &Value) -> Res {
    validate(Some(mapping), &[])
}

/// Formats a message with its path, e.g. `/@if/then has an invalid directive: @oops.`
fn fail(msg: impl std::fmt::Display, stack: &[String]) -> Res {
    Err(vec![format!("/{} {}.", stack.join("/"), msg)])
}

fn push(stack: &[String], seg: &str) -> Vec<String> {
    let mut next = stack.to_vec();
    next.push(seg.to_owned());
    next
}

/// `realTypeOf` extended with `directive` for objects having any `@` key.
fn type_or_directive(v: Option<&Value>) -> &'static str {
    match v {
        None => Kind::Undefined.name(),
        Some(Value::Object(map)) if map.keys().any(|k| k.starts_with('@')) => "directive",
        Some(v) => kind_of(v).name(),
    }
}

fn real_type(v: Option<&Value>) -> &'static str {
    v.map_or(Kind::Undefined.name(), |v| kind_of(v).name())
}

fn article(word: &str) -> &'static str {
    match word.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    }
}

fn validate(v: Option<&Value>, stack: &[String]) -> Res {
    match (type_or_directive(v), v) {
        ("directive", Some(Value::Object(map))) => validate_directive(map, stack),
        ("object", Some(_)) => validate_object(v, stack),
        _ => Ok(()),
    }
}

fn validate_directive(map: &Map<String, Value>, stack: &[String]) -> Res {
    let directive_keys: Vec<&String> = map.keys().filter(|k| k.starts_with('@')).collect();
    if directive_keys.len() > 1 {
        return fail(
            format!(
                "should only have one @-prefixed key but it has {} keys",
                directive_keys.len()
            ),
            stack,
        );
    }
    if map.keys().any(|k| !k.starts_with('@') && k != "_metadata") {
        return fail(
            format!(
                "should only have one @-prefixed key but it has {} keys",
                map.len()
            ),
            stack,
        );
    }
    let Some(name) = directive_keys.first() else {
        return Ok(());
    };
    if !DIRECTIVES.contains(&name.as_str()) {
        return fail(format!("has an invalid directive: {name}"), stack);
    }
    let opts = map.get(name.as_str());
    let stack = push(stack, name);
    validate_options(name, opts, &stack)
}

/// The per-directive option checks; `stack` already ends with the directive name.
fn validate_options(name: &str, v: Option<&Value>, stack: &[String]) -> Res {
    use Field::{Optional, Required};
    match name {
        "@if" => with_fields(
            v,
            &[
                ("exists", Optional(directive_or_raw)),
                ("then", Optional(directive_or_raw)),
                ("else", Optional(directive_or_raw)),
            ],
            stack,
        ),
        "@case" => with_fields(
            v,
            &[
                ("operator", Optional(string)),
                ("value", Optional(directive_or_string)),
            ],
            stack,
        ),
        "@replace" => with_fields(
            v,
            &[
                ("pattern", Required(pattern)),
                ("replacement", Optional(replacement)),
                ("value", Required(directive_or_string)),
                ("ignorecase", Optional(boolean)),
                ("global", Optional(boolean)),
            ],
            stack,
        ),
        "@arrayPath" => {
            array(v, stack)?;
            let items = v.and_then(Value::as_array);
            directive_or_string(items.and_then(|a| a.first()), stack)?;
            validate(items.and_then(|a| a.get(1)), stack)
        }
        "@path" | "@template" => directive_or_string(v, stack),
        "@literal" | "@excludeWhenNull" => directive_or_raw(v, stack),
        "@json" => with_fields(
            v,
            &[
                ("value", Required(directive_or_raw)),
                ("mode", Required(json_mode)),
            ],
            stack,
        ),
        "@flatten" => with_fields(
            v,
            &[
                ("separator", Optional(string)),
                ("value", Required(directive_or_raw)),
            ],
            stack,
        ),
        "@merge" => {
            with_fields(
                v,
                &[
                    ("direction", Optional(merge_direction)),
                    ("objects", Required(array)),
                ],
                stack,
            )?;
            // Segment checks the elements with an empty path and stops at the first failure.
            if let Some(items) = v.and_then(|o| o.get("objects")).and_then(Value::as_array) {
                for item in items {
                    directive_or_object(Some(item), &[])?;
                }
            }
            Ok(())
        }
        "@transform" => with_fields(
            v,
            &[
                ("apply", Required(directive_or_object)),
                ("mapping", Required(directive_or_object)),
            ],
            stack,
        ),
        "@liquid" => string(v, stack),
        _ => Ok(()),
    }
}

type Check = fn(Option<&Value>, &[String]) -> Res;

enum Field {
    Required(Check),
    Optional(Check),
}

fn with_fields(v: Option<&Value>, fields: &[(&str, Field)], stack: &[String]) -> Res {
    validate_object(v, stack)?;
    let obj = v.and_then(Value::as_object);
    let mut errors = Vec::new();
    for (prop, field) in fields {
        let child = obj.and_then(|o| o.get(*prop));
        let res = match (field, child) {
            (Field::Required(_), None) => fail(
                format!("should have field \"{prop}\" but it doesn't"),
                stack,
            ),
            (Field::Required(check) | Field::Optional(check), Some(child)) => {
                check(Some(child), &push(stack, prop))
            }
            (Field::Optional(_), None) => Ok(()),
        };
        if let Err(mut e) = res {
            errors.append(&mut e);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn validate_object(v: Option<&Value>, stack: &[String]) -> Res {
    let kind = type_or_directive(v);
    let Some(Value::Object(map)) = v.filter(|_| kind == "object") else {
        return fail(
            format!("should be an object but it is {} {kind}", article(kind)),
            stack,
        );
    };
    // Unreachable in practice (an object with an `@` key is typed `directive` above), kept for
    // parity with Segment's validator.
    if let Some(key) = map.keys().find(|k| k.starts_with('@')) {
        return fail(
            format!("shouldn't have directive (@-prefixed) keys but it has \"{key}\""),
            stack,
        );
    }
    let mut errors = Vec::new();
    for (k, child) in map {
        if let Err(mut e) = validate(Some(child), &push(stack, k)) {
            errors.append(&mut e);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn directive_or_raw(v: Option<&Value>, stack: &[String]) -> Res {
    match (type_or_directive(v), v) {
        ("directive", Some(Value::Object(map))) => validate_directive(map, stack),
        ("undefined", _) => fail(
            "should be a mapping directive or a JSON value but it is an undefined",
            stack,
        ),
        _ => Ok(()),
    }
}

fn directive_or_string(v: Option<&Value>, stack: &[String]) -> Res {
    match (type_or_directive(v), v) {
        ("directive", Some(Value::Object(map))) => validate_directive(map, stack),
        ("string", _) => Ok(()),
        (kind, _) => fail(
            format!(
                "should be a string or a mapping directive but it is {} {kind}",
                article(kind)
            ),
            stack,
        ),
    }
}

fn directive_or_object(v: Option<&Value>, stack: &[String]) -> Res {
    match (type_or_directive(v), v) {
        ("directive", Some(Value::Object(map))) => validate_directive(map, stack),
        ("object", _) => validate_object(v, stack),
        (kind, _) => fail(
            format!(
                "should be a object or a mapping directive but it is {} {kind}",
                article(kind)
            ),
            stack,
        ),
    }
}

fn string(v: Option<&Value>, stack: &[String]) -> Res {
    let kind = type_or_directive(v);
    if kind != "string" {
        return fail(
            format!("should be a string but it is {} {kind}", article(kind)),
            stack,
        );
    }
    Ok(())
}

fn boolean(v: Option<&Value>, stack: &[String]) -> Res {
    let kind = type_or_directive(v);
    if kind != "boolean" {
        return fail(
            format!("should be a boolean but it is {} {kind}", article(kind)),
            stack,
        );
    }
    Ok(())
}

fn array(v: Option<&Value>, stack: &[String]) -> Res {
    let kind = real_type(v);
    if kind != "array" {
        return fail(
            format!("should be an array but it is {} {kind}", article(kind)),
            stack,
        );
    }
    Ok(())
}

fn string_length(v: Option<&Value>, min: usize, max: usize, stack: &[String]) -> Res {
    if let Some(Value::String(s)) = v {
        let len = s.encode_utf16().count();
        if len < min {
            return fail(
                format!("should be a string of length {min} or greater"),
                stack,
            );
        }
        if len > max {
            return fail(format!("should be a string of length {max} or less"), stack);
        }
    }
    Ok(())
}

fn pattern(v: Option<&Value>, stack: &[String]) -> Res {
    string(v, stack)?;
    string_length(v, 1, crate::MAX_PATTERN_LENGTH, stack)
}

fn replacement(v: Option<&Value>, stack: &[String]) -> Res {
    string(v, stack)?;
    string_length(v, 0, crate::MAX_REPLACEMENT_LENGTH, stack)
}

fn allowed_strings(v: Option<&Value>, allowed: &[&str], stack: &[String]) -> Res {
    string(v, stack)?;
    if let Some(Value::String(s)) = v {
        if !allowed.contains(&s.to_lowercase().as_str()) {
            let quoted = Value::String(s.clone()).to_string();
            return fail(
                format!("should be one of {} but it is {quoted}", allowed.join(", ")),
                stack,
            );
        }
    }
    Ok(())
}

fn json_mode(v: Option<&Value>, stack: &[String]) -> Res {
    allowed_strings(v, &["encode", "decode"], stack)
}

fn merge_direction(v: Option<&Value>, stack: &[String]) -> Res {
    allowed_strings(v, &["left", "right"], stack)
}
