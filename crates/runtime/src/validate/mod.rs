//! Segment's payload pipeline after mapping: empty-value removal, then validation with coercion.
//!
//! A [`PayloadSchema`] is compiled once from an action's [`FieldDef`]s (or a destination's
//! [`SettingDef`]s) following Segment's `fieldsToJsonSchema`, and then applied to many payloads:
//!
//! 1. [`PayloadSchema::remove_empty_values`] drops `null` and `""` values the schema cannot accept
//!    (and, at the root, every `""`), as Segment's `removeEmptyValues` does.
//! 2. [`PayloadSchema::validate`] emulates Ajv 8 as Segment configures it (`coerceTypes: "array"`,
//!    `allErrors`, `removeAdditional`): it wraps scalars of top-level `multiple` fields into
//!    arrays, coerces values that fail their type (in the order of the schema's type list), unwraps
//!    one-element arrays, deletes undeclared keys of objects that declare their properties, checks
//!    formats, choices, bounds, required and conditionally required fields, and collects **all**
//!    errors, rendered in ajv-human-errors wording (`User ID must be a string but it was an
//!    object.`), joined by one space.
//!
//! Segment quirks kept on purpose (they decide which payloads pass): `allowNull` is lost on
//! `multiple` fields and on objects with properties; when any sub-field of an object is
//! conditionally required, the object's unconditional `required` list is dropped; with several
//! conditions a nested conditionally required key is required literally as `parent.child` at the
//! root; a single `is undefined`/`is_not undefined` condition treats `""`, `0` and `false` as
//! `null`, because Ajv coerces them to `null` inside the `if` schema (before the field's own type
//! coercion runs on the result).
//!
//! Deliberate differences from Segment, all at the edges of JavaScript semantics: a numeric string
//! whose value is infinite (`"1e400"`, `"Infinity"`) is not coerced to a number, because JSON
//! cannot hold it; formats are checked as described in the `formats` module.

mod formats;
mod js;

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::fields::{
    ConditionMatch, ConditionOperator, Conditions, FieldDef, FieldType, Format, Literal, Required,
    SettingDef, SettingType,
};

/// A finite number as a JSON value, integral values as JSON integers (as JavaScript prints them).
pub fn number_value(n: f64) -> Option<Value> {
    js::number_value(n)
}

/// The error Segment raises when a payload or settings object fails validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PayloadError {
    /// Every problem in ajv-human-errors wording, joined by one space (Segment's message).
    pub message: String,
    /// The individual problems, each a sentence ending with a period.
    pub errors: Vec<String>,
    /// The HTTP-like status Segment attaches: always 400, so the event is not retried.
    pub status: u16,
}

impl PayloadError {
    fn new(errors: Vec<String>) -> PayloadError {
        PayloadError {
            message: errors.join(" "),
            errors,
            status: 400,
        }
    }
}

/// A JSON type of JSON Schema's `type` keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonType {
    String,
    Number,
    Integer,
    Boolean,
    Object,
    Array,
    Null,
}

impl JsonType {
    fn name(self) -> &'static str {
        match self {
            JsonType::String => "string",
            JsonType::Number => "number",
            JsonType::Integer => "integer",
            JsonType::Boolean => "boolean",
            JsonType::Object => "object",
            JsonType::Array => "array",
            JsonType::Null => "null",
        }
    }

    fn matches(self, value: &Value) -> bool {
        match self {
            JsonType::String => value.is_string(),
            JsonType::Number => value.is_number(),
            JsonType::Integer => value.as_number().is_some_and(|n| {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }),
            JsonType::Boolean => value.is_boolean(),
            JsonType::Object => value.is_object(),
            JsonType::Array => value.is_array(),
            JsonType::Null => value.is_null(),
        }
    }

    /// Ajv's coercion of `value` to this type, if it applies.
    fn coerce(self, value: &Value) -> Option<Value> {
        match (self, value) {
            (JsonType::String, Value::Number(n)) => {
                Some(Value::String(js::json_number_to_string(n)))
            }
            (JsonType::String, Value::Bool(b)) => Some(Value::String(b.to_string())),
            (JsonType::String, Value::Null) => Some(Value::String(String::new())),
            (JsonType::Number | JsonType::Integer, Value::Bool(b)) => {
                Some(Value::from(u8::from(*b)))
            }
            (JsonType::Number | JsonType::Integer, Value::Null) => Some(Value::from(0)),
            (JsonType::Number | JsonType::Integer, Value::String(s)) if !s.is_empty() => {
                let n = js::to_number(s)?;
                if self == JsonType::Integer && n.fract() != 0.0 {
                    return None;
                }
                js::number_value(n)
            }
            (JsonType::Boolean, Value::String(s)) if s == "false" => Some(Value::Bool(false)),
            (JsonType::Boolean, Value::String(s)) if s == "true" => Some(Value::Bool(true)),
            (JsonType::Boolean, Value::Null) => Some(Value::Bool(false)),
            (JsonType::Boolean, Value::Number(n)) if js::as_f64(n) == 0.0 => {
                Some(Value::Bool(false))
            }
            (JsonType::Boolean, Value::Number(n)) if js::as_f64(n) == 1.0 => {
                Some(Value::Bool(true))
            }
            (JsonType::Null, v) if is_null_like(v) => Some(Value::Null),
            (
                JsonType::Array,
                v @ (Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null),
            ) => Some(Value::Array(vec![v.clone()])),
            _ => None,
        }
    }
}

/// The values Ajv coerces to `null`: `""`, `0` and `false`.
fn is_null_like(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty(),
        Value::Number(n) => js::as_f64(n) == 0.0,
        Value::Bool(b) => !b,
        _ => false,
    }
}

/// One compiled (sub)schema.
#[derive(Debug, Clone, Default)]
struct Node {
    title: Option<&'static str>,
    types: Vec<JsonType>,
    enum_values: Option<Vec<Value>>,
    format: Option<Format>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    items: Option<Box<Node>>,
    object: Option<ObjectNode>,
}

/// The object keywords of a schema: `properties`, `additionalProperties` and `required`.
#[derive(Debug, Clone, Default)]
struct ObjectNode {
    properties: Vec<(&'static str, Node)>,
    additional: bool,
    required: Vec<&'static str>,
}

impl ObjectNode {
    fn property(&self, key: &str) -> Option<&Node> {
        self.properties
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, node)| node)
    }
}

/// A conditional requirement lifted to the root (`allOf: [{if, then}]`).
#[derive(Debug, Clone)]
struct Rule {
    condition: RuleCondition,
    then: Then,
}

#[derive(Debug, Clone)]
enum RuleCondition {
    /// One condition, compiled with Segment's single-condition shapes.
    Single {
        field: &'static str,
        operator: ConditionOperator,
        value: Option<Value>,
    },
    /// Several conditions combined with `allOf`/`anyOf` of bare predicates.
    Multi {
        any: bool,
        predicates: Vec<(&'static str, ConditionOperator, Option<Value>)>,
    },
}

#[derive(Debug, Clone)]
enum Then {
    /// `{required: [key]}` at the root (a dotted key is required literally).
    Root(Cow<'static, str>),
    /// `{required: [parent], properties: {parent: {required: [child]}}}`.
    Nested(&'static str, &'static str),
}

/// A compiled validator for one action's payload or one destination's settings.
#[derive(Debug, Clone)]
pub struct PayloadSchema {
    root: Node,
    rules: Vec<Rule>,
}

impl PayloadSchema {
    /// Compiles an action's fields as Segment's `fieldsToJsonSchema` does.
    pub fn from_fields(fields: &'static [FieldDef]) -> PayloadSchema {
        let mut rules = Vec::new();
        collect_rules(fields, None, &mut rules);
        let required = fields
            .iter()
            .filter(|f| f.required == Required::Always)
            .map(|f| f.key)
            .collect();
        let root = Node {
            types: vec![JsonType::Object],
            object: Some(ObjectNode {
                properties: fields.iter().map(|f| (f.key, field_node(f))).collect(),
                additional: false,
                required,
            }),
            ..Node::default()
        };
        PayloadSchema { root, rules }
    }

    /// Compiles a destination's settings (Segment's authentication fields).
    pub fn from_settings(settings: &'static [SettingDef]) -> PayloadSchema {
        let properties = settings
            .iter()
            .map(|s| {
                let (types, format) = match s.setting_type {
                    SettingType::String => (vec![JsonType::String], s.format),
                    SettingType::Password => (vec![JsonType::String], Some(Format::Password)),
                    SettingType::Number => (vec![JsonType::Number], None),
                    SettingType::Boolean => (vec![JsonType::Boolean], None),
                };
                (
                    s.key,
                    Node {
                        title: Some(s.label),
                        types,
                        format,
                        ..Node::default()
                    },
                )
            })
            .collect();
        let required = settings
            .iter()
            .filter(|s| s.required)
            .map(|s| s.key)
            .collect();
        let root = Node {
            types: vec![JsonType::Object],
            object: Some(ObjectNode {
                properties,
                additional: false,
                required,
            }),
            ..Node::default()
        };
        PayloadSchema {
            root,
            rules: Vec::new(),
        }
    }

    /// Segment's `removeEmptyValues`: with `root` semantics (single events) every root-level `""`
    /// is removed too; without them (batches) only values the schema cannot accept are.
    pub fn remove_empty_values(&self, payload: &mut Value, root: bool) {
        remove_empty(Some(&self.root), payload, root);
    }

    /// Validates `payload` in place (coercing, wrapping, unwrapping and stripping as Ajv does),
    /// collecting every error.
    pub fn validate(&self, payload: &mut Value) -> Result<(), PayloadError> {
        let mut errors = Vec::new();
        let mut path = String::new();
        if let (Value::Object(map), Some(object)) = (&mut *payload, &self.root.object) {
            // Segment wraps scalars and objects of top-level array fields before validating.
            for (key, node) in &object.properties {
                if node.types == [JsonType::Array] {
                    if let Some(value) = map.get_mut(*key) {
                        if !value.is_array() && !value.is_null() {
                            let inner = value.take();
                            *value = Value::Array(vec![inner]);
                        }
                    }
                }
            }
        }
        self.validate_root(payload, &mut path, &mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(PayloadError::new(errors))
        }
    }

    /// Runs empty-value removal with root semantics and then validation: what Segment does for a
    /// single event.
    pub fn clean_and_validate(&self, payload: &mut Value) -> Result<(), PayloadError> {
        self.remove_empty_values(payload, true);
        self.validate(payload)
    }

    fn validate_root(&self, payload: &mut Value, path: &mut String, errors: &mut Vec<String>) {
        let root = &self.root;
        if !check_type(root, payload, path, errors) {
            return;
        }
        // The root `allOf` belongs to Ajv's untyped keywords, which run before the object ones.
        for rule in &self.rules {
            if rule_condition_holds(&rule.condition, payload) {
                let before = errors.len();
                apply_then(&rule.then, payload, errors);
                if errors.len() > before {
                    errors.push(message(None, "", "must match \"then\" schema"));
                }
            }
        }
        validate_keywords(root, payload, path, errors);
    }
}

/// Fills in every absent setting that declares a default (the JSON text of [`SettingDef::default`]).
///
/// Segment never applies defaults during validation; callers that want defaults (for example when
/// a configuration omits an optional endpoint) call this first. A default that is not valid JSON
/// is skipped.
pub fn fill_setting_defaults(settings: &'static [SettingDef], values: &mut Value) {
    let Value::Object(map) = values else { return };
    for setting in settings {
        if map.contains_key(setting.key) {
            continue;
        }
        if let Some(default) = setting
            .default
            .and_then(|text| serde_json::from_str(text).ok())
        {
            map.insert(setting.key.to_owned(), default);
        }
    }
}

fn literal_value(literal: Literal) -> Value {
    literal.to_value()
}

fn base_types(field_type: FieldType) -> Vec<JsonType> {
    match field_type {
        FieldType::String | FieldType::Text | FieldType::Password => vec![JsonType::String],
        FieldType::Datetime => vec![JsonType::String, JsonType::Number],
        FieldType::Number => vec![JsonType::Number],
        FieldType::Integer => vec![JsonType::Integer],
        FieldType::Boolean => vec![JsonType::Boolean],
        FieldType::Object => vec![JsonType::Object],
    }
}

/// JavaScript truthiness of an optional bound: `0` and `NaN` count as absent.
fn truthy(bound: Option<f64>) -> Option<f64> {
    bound.filter(|b| *b != 0.0 && !b.is_nan())
}

fn field_node(field: &'static FieldDef) -> Node {
    let base = base_types(field.field_type);
    let mut node = Node {
        title: Some(field.label),
        types: base.clone(),
        ..Node::default()
    };
    node.format = match field.field_type {
        FieldType::Datetime => Some(Format::DateLike),
        FieldType::Password => Some(Format::Password),
        FieldType::Text => Some(Format::Text),
        _ => field.format,
    };
    match field.field_type {
        FieldType::String => {
            node.min_length = truthy(field.minimum).map(|n| n.max(0.0) as u64);
            node.max_length = truthy(field.maximum).map(|n| n.max(0.0) as u64);
        }
        FieldType::Number => {
            node.minimum = truthy(field.minimum);
            node.maximum = truthy(field.maximum);
        }
        _ => {}
    }
    if let Some(choices) = field.choices {
        node.enum_values = Some(choices.iter().map(|c| literal_value(c.value)).collect());
    }
    if field.allow_null {
        node.types.push(JsonType::Null);
        if let Some(values) = &mut node.enum_values {
            values.push(Value::Null);
        }
    }
    let nested = field.properties.map(|properties| {
        let any_conditional = properties
            .iter()
            .any(|p| matches!(p.required, Required::When(_)));
        ObjectNode {
            properties: properties.iter().map(|p| (p.key, field_node(p))).collect(),
            additional: field.additional_properties,
            required: if any_conditional {
                Vec::new()
            } else {
                properties
                    .iter()
                    .filter(|p| p.required == Required::Always)
                    .map(|p| p.key)
                    .collect()
            },
        }
    });
    if field.multiple {
        node.types = vec![JsonType::Array];
        let items = match (field.field_type, nested) {
            (FieldType::Object, Some(object)) => Node {
                types: vec![JsonType::Object],
                object: Some(object),
                ..Node::default()
            },
            (_, _) => Node {
                types: base,
                enum_values: node.enum_values.take(),
                ..Node::default()
            },
        };
        node.items = Some(Box::new(items));
    } else if let (FieldType::Object, Some(object)) = (field.field_type, nested) {
        // The nested schema is merged over the field's, which resets `type` to "object".
        node.types = vec![JsonType::Object];
        node.object = Some(object);
    }
    node
}

fn condition_value(value: Option<Literal>) -> Option<Value> {
    value.map(literal_value)
}

fn collect_rules(fields: &'static [FieldDef], parent: Option<&'static str>, rules: &mut Vec<Rule>) {
    for field in fields {
        if let Required::When(conditions) = field.required {
            rules.push(rule_for(field.key, parent, conditions));
        }
        if parent.is_none() {
            if let Some(properties) = field.properties {
                collect_rules(properties, Some(field.key), rules);
            }
        }
    }
}

fn rule_for(
    key: &'static str,
    parent: Option<&'static str>,
    conditions: &'static Conditions,
) -> Rule {
    let then = match parent {
        Some(parent) => Then::Nested(parent, key),
        None => match key.split_once('.') {
            Some((p, c)) => Then::Nested(p, c),
            None => Then::Root(Cow::Borrowed(key)),
        },
    };
    if let [single] = conditions.conditions {
        return Rule {
            condition: RuleCondition::Single {
                field: single.field_key,
                operator: single.operator,
                value: condition_value(single.value),
            },
            then,
        };
    }
    // With several conditions Segment does not expand a nested key: it requires the dotted key
    // itself at the root.
    let then = match then {
        Then::Nested(..) => Then::Root(match parent {
            Some(parent) => Cow::Owned(format!("{parent}.{key}")),
            None => Cow::Borrowed(key),
        }),
        root => root,
    };
    Rule {
        condition: RuleCondition::Multi {
            any: conditions.mode == ConditionMatch::Any,
            predicates: conditions
                .conditions
                .iter()
                .map(|c| (c.field_key, c.operator, condition_value(c.value)))
                .collect(),
        },
        then,
    }
}

/// Whether a single condition's `if` schema holds; mirrors Segment's schema shapes, including the
/// coercion of `""`, `0` and `false` to `null` that Ajv performs inside `{type: "null"}`.
fn rule_condition_holds(condition: &RuleCondition, payload: &mut Value) -> bool {
    match condition {
        RuleCondition::Single {
            field,
            operator,
            value,
        } => {
            if let Some((parent, child)) = field.split_once('.') {
                let Some(parent_value) = payload.get(parent) else {
                    return false;
                };
                let Value::Object(map) = parent_value else {
                    return true;
                };
                let Some(child_value) = map.get(child) else {
                    return value.is_none() && *operator == ConditionOperator::Is;
                };
                return match (operator, value) {
                    (ConditionOperator::Is, Some(v)) => js::deep_equal(child_value, v),
                    (ConditionOperator::IsNot, Some(v)) => !js::deep_equal(child_value, v),
                    (ConditionOperator::Is, None) => child_value.is_null(),
                    (ConditionOperator::IsNot, None) => !child_value.is_null(),
                };
            }
            let Value::Object(map) = payload else {
                return false;
            };
            match (operator, value) {
                (ConditionOperator::Is, Some(v)) => {
                    map.get(*field).is_some_and(|f| js::deep_equal(f, v))
                }
                (ConditionOperator::IsNot, Some(v)) => {
                    map.get(*field).is_some_and(|f| !js::deep_equal(f, v))
                }
                (operator, None) => {
                    let is_undefined = match map.get_mut(*field) {
                        None => true,
                        Some(f) => {
                            if is_null_like(f) {
                                *f = Value::Null;
                            }
                            f.is_null()
                        }
                    };
                    (*operator == ConditionOperator::Is) == is_undefined
                }
            }
        }
        RuleCondition::Multi { any, predicates } => {
            let holds =
                |(field, operator, value): &(&'static str, ConditionOperator, Option<Value>)| {
                    let present = payload.get(*field);
                    match (operator, value) {
                        (ConditionOperator::Is, Some(v)) => {
                            present.is_some_and(|f| js::deep_equal(f, v))
                        }
                        (ConditionOperator::IsNot, Some(v)) => {
                            present.is_some_and(|f| !js::deep_equal(f, v))
                        }
                        (ConditionOperator::Is, None) => present.is_none(),
                        (ConditionOperator::IsNot, None) => present.is_some(),
                    }
                };
            if *any {
                predicates.iter().any(holds)
            } else {
                predicates.iter().all(holds)
            }
        }
    }
}

fn apply_then(then: &Then, payload: &Value, errors: &mut Vec<String>) {
    let Value::Object(map) = payload else { return };
    match then {
        Then::Root(key) => {
            if !map.contains_key(key.as_ref()) {
                errors.push(message(
                    None,
                    "",
                    &format!("is missing the required field '{key}'"),
                ));
            }
        }
        Then::Nested(parent, child) => match map.get(*parent) {
            None => {
                errors.push(message(
                    None,
                    "",
                    &format!("is missing the required field '{parent}'"),
                ));
            }
            Some(Value::Object(inner)) if !inner.contains_key(*child) => {
                let path = format!("/{}", escape_pointer(parent));
                errors.push(message(
                    None,
                    &path,
                    &format!("is missing the required field '{child}'"),
                ));
            }
            Some(_) => {}
        },
    }
}

/// Renders one error: the subject (schema title, else the root value or the value at the
/// instance path), the text, first letter capitalised, and a final period.
fn message(title: Option<&str>, path: &str, text: &str) -> String {
    let subject = match title {
        Some(title) if !title.is_empty() => title.to_owned(),
        _ if path.is_empty() => "the root value".to_owned(),
        _ => format!("the value at {path}"),
    };
    let mut out = String::with_capacity(subject.len() + text.len() + 2);
    let mut chars = subject.chars();
    if let Some(first) = chars.next() {
        out.extend(first.to_uppercase());
        out.push_str(chars.as_str());
    }
    out.push(' ');
    out.push_str(text);
    out.push('.');
    out
}

fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// ajv-human-errors' `humanizeList`.
fn humanize_list(items: &[String], conjunction: &str) -> String {
    match items {
        [] => "nothing".to_owned(),
        [one] => one.clone(),
        [a, b] => format!("{a} {conjunction} {b}"),
        [init @ .., last] => format!("{}, {conjunction} {last}", init.join(", ")),
    }
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// ajv-human-errors' `humanizeTypeOf`.
fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn type_error(node: &Node, data: &Value, path: &str) -> String {
    let names: Vec<String> = node.types.iter().map(|t| t.name().to_owned()).collect();
    let expected = humanize_list(&names, "or");
    let text = format!(
        "must be {} {expected} but it was {}",
        article(&expected),
        describe(data)
    );
    message(node.title, path, &text)
}

/// Ajv's type check with `coerceTypes: "array"`; returns whether the value now has a right type.
fn check_type(node: &Node, value: &mut Value, path: &str, errors: &mut Vec<String>) -> bool {
    if node.types.is_empty() || node.types.iter().any(|t| t.matches(value)) {
        return true;
    }
    let coercible: Vec<JsonType> = node
        .types
        .iter()
        .copied()
        .filter(|t| *t != JsonType::Object)
        .collect();
    if coercible.is_empty() {
        errors.push(type_error(node, value, path));
        return false;
    }
    let current: &Value = value;
    let unwrapped = match current {
        Value::Array(items) if items.len() == 1 => Some(&items[0]),
        _ => None,
    };
    let data = unwrapped.unwrap_or(current);
    // Ajv keeps an unwrapped item as it is when it has "the" type, which its generated check
    // writes as every listed type at once (`number` standing for `integer`): so only a field of a
    // single type keeps it, and a union such as `datetime`'s `["string", "number"]` coerces the
    // item instead (a number becomes a string; a date string fails with "but it was a string").
    let has_number = node.types.contains(&JsonType::Number);
    let keeps_item = node
        .types
        .iter()
        .filter(|t| !(has_number && **t == JsonType::Integer))
        .all(|t| t.matches(data));
    let coerced = if unwrapped.is_some() && keeps_item {
        Some(data.clone())
    } else {
        coercible.iter().find_map(|t| t.coerce(data))
    };
    match coerced {
        Some(new_value) => {
            *value = new_value;
            true
        }
        None => {
            errors.push(type_error(node, data, path));
            // Ajv's later keywords (`format`, …) see the unwrapped item.
            if let Some(item) = unwrapped {
                *value = item.clone();
            }
            false
        }
    }
}

fn validate_node(node: &Node, value: &mut Value, path: &mut String, errors: &mut Vec<String>) {
    check_type(node, value, path, errors);
    validate_keywords(node, value, path, errors);
}

/// Every keyword after `type`, in Ajv's order: untyped (`enum`), number, string, array, object.
fn validate_keywords(node: &Node, value: &mut Value, path: &mut String, errors: &mut Vec<String>) {
    if let Some(allowed) = &node.enum_values {
        if !allowed.iter().any(|a| js::deep_equal(a, value)) {
            let list: Vec<String> = allowed.iter().map(js::stringify).collect();
            let text = format!("must be one of: {}", humanize_list(&list, "or"));
            errors.push(message(node.title, path, &text));
        }
    }
    match value {
        Value::Number(n) => {
            let n = js::as_f64(n);
            if let Some(min) = node.minimum.filter(|min| n < *min) {
                let text = format!(
                    "must be equal to or greater than {}",
                    js::number_to_string(min)
                );
                errors.push(message(node.title, path, &text));
            }
            if let Some(max) = node.maximum.filter(|max| n > *max) {
                let text = format!(
                    "must be equal to or less than {}",
                    js::number_to_string(max)
                );
                errors.push(message(node.title, path, &text));
            }
        }
        Value::String(s) => {
            if node.min_length.is_some() || node.max_length.is_some() {
                let len = s.chars().count() as u64;
                let plural = |n: u64| if n == 1 { "character" } else { "characters" };
                if let Some(min) = node.min_length.filter(|min| len < *min) {
                    let text = format!(
                        "must be {min} {} or more but it was {len} {}",
                        plural(min),
                        plural(len)
                    );
                    errors.push(message(node.title, path, &text));
                }
                if let Some(max) = node.max_length.filter(|max| len > *max) {
                    let text = format!(
                        "must be {max} {} or fewer but it was {len} {}",
                        plural(max),
                        plural(len)
                    );
                    errors.push(message(node.title, path, &text));
                }
            }
            if let Some(format) = node.format {
                if !formats::check(format, s) {
                    let text = format!(
                        "must be a valid {} string but it was not",
                        formats::label(format)
                    );
                    errors.push(message(node.title, path, &text));
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_node) = &node.items {
                for (idx, item) in items.iter_mut().enumerate() {
                    let len = path.len();
                    path.push('/');
                    path.push_str(&idx.to_string());
                    validate_node(item_node, item, path, errors);
                    path.truncate(len);
                }
            }
        }
        Value::Object(map) => {
            if let Some(object) = &node.object {
                validate_object(node.title, object, map, path, errors);
            }
        }
        _ => {}
    }
}

fn validate_object(
    title: Option<&str>,
    object: &ObjectNode,
    map: &mut Map<String, Value>,
    path: &mut String,
    errors: &mut Vec<String>,
) {
    for key in &object.required {
        if !map.contains_key(*key) {
            errors.push(message(
                title,
                path,
                &format!("is missing the required field '{key}'"),
            ));
        }
    }
    if !object.additional {
        map.retain(|key, _| object.property(key).is_some());
    }
    for (key, child) in &object.properties {
        if let Some(value) = map.get_mut(*key) {
            let len = path.len();
            path.push('/');
            path.push_str(&escape_pointer(key));
            validate_node(child, value, path, errors);
            path.truncate(len);
        }
    }
}

/// Segment's `removeEmptyValues` verdict for a value that is not mutated (array elements).
fn is_removable(node: Option<&Node>, value: &Value) -> bool {
    let Some(node) = node else { return false };
    if node.types.is_empty() && node.enum_values.is_none() {
        return false;
    }
    match value {
        Value::Array(_) if node.items.is_some() => false,
        Value::Object(_) if node.object.is_some() => false,
        Value::Null => !node.types.contains(&JsonType::Null),
        Value::String(s) if s.is_empty() => !node.types.contains(&JsonType::String),
        _ => false,
    }
}

/// Segment's `removeEmptyValues`; returns whether `value` itself must be removed.
fn remove_empty(node: Option<&Node>, value: &mut Value, root: bool) -> bool {
    let Some(node) = node else { return false };
    if node.types.is_empty() && node.enum_values.is_none() {
        return false;
    }
    match value {
        Value::Array(items) if node.items.is_some() => {
            let items_node = node.items.as_deref();
            items.retain(|item| !is_removable(items_node, item));
            false
        }
        Value::Object(map) if node.object.is_some() => {
            if let Some(object) = &node.object {
                map.retain(|key, child| {
                    let is_root_empty = root && child.as_str() == Some("");
                    !(remove_empty(object.property(key), child, false) || is_root_empty)
                });
            }
            false
        }
        other => is_removable(Some(node), other),
    }
}

#[cfg(test)]
mod tests;
