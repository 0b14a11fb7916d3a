//! Checks a document against the generated JSON Schema and turns every error into a diagnostic.
//!
//! The jsonschema crate reports each violation with an instance path (a JSON pointer) and an error
//! kind; the pointer is mapped back to a YAML position through the [`SourceMap`], and the kind is
//! rewritten into "expected …, found …" with a did-you-mean hint where the schema lists the valid
//! words (keys, enum values).

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{JsonType, ValidationError, Validator};
use serde_json::Value;

use crate::diagnostics::{Diagnostic, did_you_mean, one_of, pointer_join};
use crate::schema::{action_schema, destination_schema};
use crate::yaml::SourceMap;

/// Which kind of file a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// `destination.yaml`.
    Destination,
    /// One action file.
    Action,
    /// The runtime configuration, `actionkit.yaml`.
    Config,
}

struct Compiled {
    schema: Value,
    validator: Result<Validator, String>,
}

fn compiled(kind: FileKind) -> &'static Compiled {
    static DESTINATION: OnceLock<Compiled> = OnceLock::new();
    static ACTION: OnceLock<Compiled> = OnceLock::new();
    static CONFIG: OnceLock<Compiled> = OnceLock::new();
    let (cell, make): (&OnceLock<Compiled>, fn() -> Value) = match kind {
        FileKind::Destination => (&DESTINATION, destination_schema),
        FileKind::Action => (&ACTION, action_schema),
        FileKind::Config => (&CONFIG, crate::config::config_schema),
    };
    cell.get_or_init(|| {
        let schema = make();
        let validator = jsonschema::validator_for(&schema).map_err(|err| err.to_string());
        Compiled { schema, validator }
    })
}

/// Validates `value` against the schema of `kind`; returns every problem found.
pub fn check(kind: FileKind, file: &str, value: &Value, map: &SourceMap) -> Vec<Diagnostic> {
    let compiled = compiled(kind);
    let validator = match &compiled.validator {
        Ok(validator) => validator,
        Err(message) => {
            return vec![Diagnostic::new(
                file,
                map.value_or_ancestor(""),
                "",
                format!("internal error: the generated schema does not compile: {message}"),
            )];
        }
    };
    let ctx = Ctx {
        file,
        map,
        root: &compiled.schema,
        instance: value,
    };
    let mut out = Vec::new();
    for error in validator.iter_errors(value) {
        ctx.convert(&error, &mut out);
    }
    out.sort_by(|a, b| (a.line, a.column, &a.message).cmp(&(b.line, b.column, &b.message)));
    out.dedup();
    out
}

struct Ctx<'a> {
    file: &'a str,
    map: &'a SourceMap,
    root: &'a Value,
    instance: &'a Value,
}

/// What one alternative of an `anyOf`/`oneOf` wanted at the alternative's own location.
enum Want {
    Types(Vec<String>),
    Values(Vec<Value>),
    /// The value had the right shape; the problems are inside it.
    Deeper,
}

impl Ctx<'_> {
    fn convert(&self, error: &ValidationError<'_>, out: &mut Vec<Diagnostic>) {
        let pointer = error.instance_path().as_str().to_owned();
        let instance = self.instance.pointer(&pointer).unwrap_or(&Value::Null);
        match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected }
            | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                let allowed = self.allowed_keys(error.schema_path().as_str());
                for key in unexpected {
                    let key_pointer = pointer_join(&pointer, key);
                    let pos = self.map.key_or_value(&key_pointer);
                    let mut diagnostic = Diagnostic::new(
                        self.file,
                        pos,
                        key_pointer,
                        format!("unknown key '{key}'"),
                    )
                    .found(format!("'{key}'"));
                    if !allowed.is_empty() {
                        diagnostic = diagnostic
                            .expected(one_of(allowed.iter().map(String::as_str)))
                            .maybe_hint(did_you_mean(key, allowed.iter().map(String::as_str)));
                    }
                    out.push(diagnostic);
                }
            }
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                let pos = self.map.key_or_value(&pointer);
                out.push(Diagnostic::new(
                    self.file,
                    pos,
                    pointer.clone(),
                    format!("missing required key '{name}'"),
                ));
            }
            ValidationErrorKind::Type { kind } => {
                let types = match kind {
                    TypeKind::Single(ty) => vec![type_word(*ty)],
                    TypeKind::Multiple(set) => set.iter().map(type_word).collect(),
                };
                out.push(self.wrong_type(&pointer, instance, &types));
            }
            ValidationErrorKind::Enum { options } => {
                let values = options.as_array().cloned().unwrap_or_default();
                out.push(self.wrong_value(&pointer, instance, &values));
            }
            ValidationErrorKind::Constant { expected_value } => {
                out.push(self.wrong_value(&pointer, instance, &[(**expected_value).clone()]));
            }
            ValidationErrorKind::AnyOf { context }
            | ValidationErrorKind::OneOfNotValid { context } => {
                self.alternatives(&pointer, instance, context, out);
            }
            ValidationErrorKind::Minimum { limit } => {
                out.push(
                    self.at_value(&pointer, "number is too small")
                        .expected(format!("at least {limit}"))
                        .found(describe(instance)),
                );
            }
            ValidationErrorKind::Maximum { limit } => {
                out.push(
                    self.at_value(&pointer, "number is too large")
                        .expected(format!("at most {limit}"))
                        .found(describe(instance)),
                );
            }
            ValidationErrorKind::MinItems { limit } => {
                out.push(
                    self.at_value(&pointer, "too few items")
                        .expected(format!("at least {limit}"))
                        .found(describe(instance)),
                );
            }
            ValidationErrorKind::Pattern { pattern } => {
                let expected = self
                    .pattern_words(error.schema_path().as_str())
                    .unwrap_or_else(|| format!("a string matching `{pattern}`"));
                out.push(
                    self.at_value(
                        &pointer,
                        format!("{} has the wrong form", subject(&pointer)),
                    )
                    .expected(expected)
                    .found(describe(instance)),
                );
            }
            _ => {
                let text = error.to_string();
                out.push(self.at_value(&pointer, lower_first(&text)));
            }
        }
    }

    /// The words a schema gives for its `pattern` (an `x-expected` beside it, or on the array
    /// whose `items` have the pattern), so that an error says "an origin such as
    /// `https://app.example.com`" rather than a regular expression.
    fn pattern_words(&self, schema_path: &str) -> Option<String> {
        let mut path = schema_path.rsplit_once('/').map(|(parent, _)| parent)?;
        for _ in 0..2 {
            let schema = resolve_schema_path(self.root, path)?;
            let schema = follow_ref(self.root, schema).unwrap_or(schema);
            if let Some(words) = schema.get("x-expected").and_then(Value::as_str) {
                return Some(words.to_owned());
            }
            match path.rsplit_once('/') {
                Some((parent, "items")) => path = parent,
                _ => return None,
            }
        }
        None
    }

    fn at_value(&self, pointer: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(
            self.file,
            self.map.value_or_ancestor(pointer),
            pointer,
            message,
        )
    }

    fn wrong_type(&self, pointer: &str, instance: &Value, types: &[String]) -> Diagnostic {
        let mut diagnostic = self
            .at_value(pointer, format!("wrong type for {}", subject(pointer)))
            .expected(join_or(types))
            .found(describe(instance));
        let yaml11_bool = matches!(
            instance.as_str(),
            Some(
                "yes"
                    | "no"
                    | "on"
                    | "off"
                    | "y"
                    | "n"
                    | "Yes"
                    | "No"
                    | "On"
                    | "Off"
                    | "YES"
                    | "NO"
                    | "ON"
                    | "OFF"
            )
        );
        if yaml11_bool && types.iter().any(|ty| ty == "a boolean") {
            diagnostic = diagnostic
                .hint("yaml 1.2 reads yes, no, on and off as strings; write true or false");
        }
        diagnostic
    }

    fn wrong_value(&self, pointer: &str, instance: &Value, values: &[Value]) -> Diagnostic {
        let words: Vec<String> = values.iter().map(value_word).collect();
        let mut diagnostic = self
            .at_value(pointer, format!("invalid value for {}", subject(pointer)))
            .expected(one_of_or_single(&words))
            .found(describe(instance));
        if let Some(text) = instance.as_str() {
            diagnostic =
                diagnostic.maybe_hint(did_you_mean(text, values.iter().filter_map(Value::as_str)));
        }
        diagnostic
    }

    /// Explains a failed `anyOf`/`oneOf`: either one alternative had the right shape (its
    /// problems are reported), or none did (the alternatives are listed as expected).
    fn alternatives(
        &self,
        pointer: &str,
        instance: &Value,
        context: &[Vec<ValidationError<'static>>],
        out: &mut Vec<Diagnostic>,
    ) {
        let mut types: Vec<String> = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        for branch in context {
            match self.want(pointer, branch) {
                Want::Deeper => {
                    for error in branch {
                        self.convert(error, out);
                    }
                    return;
                }
                Want::Types(more) => {
                    for ty in more {
                        if !types.contains(&ty) {
                            types.push(ty);
                        }
                    }
                }
                Want::Values(more) => values.extend(more),
            }
        }
        if values.is_empty() {
            out.push(self.wrong_type(pointer, instance, &types));
            return;
        }
        let mut words: Vec<String> = values.iter().map(value_word).collect();
        words.extend(types);
        let mut diagnostic = self
            .at_value(pointer, format!("invalid value for {}", subject(pointer)))
            .expected(one_of_or_single(&words))
            .found(describe(instance));
        if let Some(text) = instance.as_str() {
            diagnostic =
                diagnostic.maybe_hint(did_you_mean(text, values.iter().filter_map(Value::as_str)));
        }
        out.push(diagnostic);
    }

    fn want(&self, pointer: &str, branch: &[ValidationError<'static>]) -> Want {
        let mut types = Vec::new();
        let mut values = Vec::new();
        for error in branch {
            if error.instance_path().as_str() != pointer {
                return Want::Deeper;
            }
            match error.kind() {
                ValidationErrorKind::Type { kind } => match kind {
                    TypeKind::Single(ty) => types.push(type_word(*ty)),
                    TypeKind::Multiple(set) => types.extend(set.iter().map(type_word)),
                },
                ValidationErrorKind::Enum { options } => {
                    values.extend(options.as_array().cloned().unwrap_or_default());
                }
                ValidationErrorKind::Constant { expected_value } => {
                    values.push((**expected_value).clone());
                }
                ValidationErrorKind::AnyOf { context }
                | ValidationErrorKind::OneOfNotValid { context } => {
                    for inner in context {
                        match self.want(pointer, inner) {
                            Want::Deeper => return Want::Deeper,
                            Want::Types(more) => types.extend(more),
                            Want::Values(more) => values.extend(more),
                        }
                    }
                }
                _ => return Want::Deeper,
            }
        }
        if values.is_empty() {
            Want::Types(types)
        } else {
            Want::Values(values)
        }
    }

    /// The keys allowed by the schema object that owns the `additionalProperties` keyword at
    /// `schema_path`.
    fn allowed_keys(&self, schema_path: &str) -> Vec<String> {
        let parent = schema_path
            .rsplit_once('/')
            .map(|(parent, _)| parent)
            .unwrap_or("");
        let Some(schema) = resolve_schema_path(self.root, parent) else {
            return Vec::new();
        };
        let schema = follow_ref(self.root, schema).unwrap_or(schema);
        schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|props| props.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// Walks a schema location from the root, following `$ref`s on the way.
fn resolve_schema_path<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = root;
    for raw in path.split('/').skip(1) {
        let segment = raw.replace("~1", "/").replace("~0", "~");
        if segment == "$ref" {
            current = follow_ref(root, current)?;
            continue;
        }
        current = match step(current, &segment) {
            Some(next) => next,
            None => step(follow_ref(root, current)?, &segment)?,
        };
    }
    Some(current)
}

fn step<'a>(value: &'a Value, segment: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => items.get(segment.parse::<usize>().ok()?),
        _ => None,
    }
}

fn follow_ref<'a>(root: &'a Value, schema: &'a Value) -> Option<&'a Value> {
    let reference = schema.get("$ref")?.as_str()?;
    let pointer = reference.strip_prefix('#')?;
    root.pointer(pointer)
}

fn type_word(ty: JsonType) -> String {
    match ty {
        JsonType::Array => "a sequence",
        JsonType::Boolean => "a boolean",
        JsonType::Integer => "an integer",
        JsonType::Null => "null",
        JsonType::Number => "a number",
        JsonType::Object => "a mapping",
        JsonType::String => "a string",
    }
    .to_owned()
}

/// Describes a found value: its kind, and the value itself for scalars.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(flag) => format!("a boolean ({flag})"),
        Value::Number(n) => format!("a number ({n})"),
        Value::String(text) => {
            let shown: String = text.chars().take(40).collect();
            let ellipsis = if text.chars().count() > 40 { "…" } else { "" };
            format!("a string ('{shown}{ellipsis}')")
        }
        Value::Array(_) => "a sequence".to_owned(),
        Value::Object(_) => "a mapping".to_owned(),
    }
}

fn value_word(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// "the value of 'key'" or "item 3 of 'key'" for a pointer.
pub(crate) fn subject(pointer: &str) -> String {
    let segments: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    match segments.as_slice() {
        [] => "the document".to_owned(),
        [.., parent, last] if last.parse::<usize>().is_ok() => {
            format!("item {last} of '{parent}'")
        }
        [.., last] => format!("'{last}'"),
    }
}

fn join_or(words: &[String]) -> String {
    match words {
        [] => "a different type".to_owned(),
        [only] => only.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn one_of_or_single(words: &[String]) -> String {
    match words {
        [only] => format!("'{only}'"),
        _ => one_of(words.iter().map(String::as_str)),
    }
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
