//! Hand-written hooks of the Userpilot destination, called by the generated handler.
//!
//! `created_at_metadata` implements Segment's `createdAt` → `created_at` rule for Identify User and
//! Identify Company (reference spec §6.2), and for the entries of their bulk forms: a truthy `traits.createdAt` is removed (a falsy one such
//! as `""`, `0` or `false` stays under its key); the metadata is the remaining traits in order plus
//! `created_at`, which is the `createdAt` field when it is truthy and otherwise the existing
//! `traits.created_at`; an existing `created_at` keeps its position and is overwritten; when there
//! is no value at all, `created_at` is left out. Numbers are forwarded as numbers.

use serde_json::{Map, Value};

use crate::generated::userpilot::{
    IdentifyCompaniesBulkPayload, IdentifyCompanyPayload, IdentifyUserCompanyPayload,
    IdentifyUserPayload, IdentifyUsersBulkPayload, Settings,
};

/// A payload the `created_at_metadata` hook accepts: it has a `createdAt` field and `traits`.
pub trait CreatedAtSource {
    /// The validated `createdAt` field, if mapped.
    fn created_at(&self) -> Option<&Value>;
    /// The validated `traits` object, if mapped.
    fn traits(&self) -> Option<&Map<String, Value>>;
}

/// Implements [`CreatedAtSource`] for generated payloads with `created_at` and `traits` fields.
macro_rules! created_at_source {
    ($($payload:ty),+ $(,)?) => {
        $(
            impl CreatedAtSource for $payload {
                fn created_at(&self) -> Option<&Value> {
                    self.created_at.as_ref()
                }

                fn traits(&self) -> Option<&Map<String, Value>> {
                    self.traits.as_ref()
                }
            }
        )+
    };
}

created_at_source!(
    IdentifyUserPayload,
    IdentifyCompanyPayload,
    IdentifyUserCompanyPayload,
    IdentifyUsersBulkPayload,
    IdentifyCompaniesBulkPayload,
);

/// The `created_at_metadata` hook: returns `{"metadata": M}`, placed at `$.computed` for the
/// request mapping (`metadata: {"@path": "$.computed.metadata"}`).
pub fn created_at_metadata<P: CreatedAtSource>(
    payload: &P,
    _settings: &Settings,
) -> Result<Value, actionkit_runtime::destination::HookError> {
    let metadata = metadata(payload.created_at(), payload.traits());
    let mut out = Map::new();
    out.insert("metadata".to_owned(), Value::Object(metadata));
    Ok(Value::Object(out))
}

/// The `flat_metadata` hook of the beyond-Segment actions: the metadata of
/// [`created_at_metadata`], flattened to the primitives Userpilot supports (see [`flatten`]),
/// as `{"metadata": M}`.
pub fn flat_metadata<P: CreatedAtSource>(
    payload: &P,
    _settings: &Settings,
) -> Result<Value, actionkit_runtime::destination::HookError> {
    let metadata = flatten(metadata(payload.created_at(), payload.traits()));
    let mut out = Map::new();
    out.insert("metadata".to_owned(), Value::Object(metadata));
    Ok(Value::Object(out))
}

/// Userpilot takes strings, numbers, booleans and null as metadata values, and its bulk
/// endpoints refuse anything else (reference §4 says to flatten or drop nested values). An
/// object becomes one key per leaf, joined with dots (`{"address": {"city": "Oslo"}}` gives
/// `address.city`); a list becomes its JSON text (`["a","b"]`), so nothing is lost. Keys keep
/// their order; a flattened key never overwrites a key the traits hold as such.
pub fn flatten(metadata: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::with_capacity(metadata.len());
    let mut nested = Vec::new();
    for (key, value) in metadata {
        match value {
            Value::Object(inner) => nested.push((key, inner)),
            Value::Array(items) => {
                let text = Value::Array(items).to_string();
                out.insert(key, Value::String(text));
            }
            primitive => {
                out.insert(key, primitive);
            }
        }
    }
    for (prefix, inner) in nested {
        for (key, value) in flatten(inner) {
            out.entry(format!("{prefix}.{key}")).or_insert(value);
        }
    }
    out
}

/// JavaScript truthiness of a JSON value.
fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0 && !n.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// The metadata object built from the `createdAt` field and the traits (see the module docs).
pub fn metadata(
    created_at: Option<&Value>,
    traits: Option<&Map<String, Value>>,
) -> Map<String, Value> {
    let mut out = traits.cloned().unwrap_or_default();
    if out.get("createdAt").is_some_and(is_truthy) {
        out.shift_remove("createdAt");
    }
    // Without a truthy field, an existing `created_at` trait stays as it is. With one, `insert`
    // keeps an existing key's position and replaces its value.
    if let Some(value) = created_at.filter(|value| is_truthy(value)) {
        out.insert("created_at".to_owned(), value.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn keys(map: &Map<String, Value>) -> Vec<&str> {
        map.keys().map(String::as_str).collect()
    }

    #[test]
    fn truthy_traits_created_at_is_removed_and_the_field_becomes_created_at() {
        let traits = map(json!({"name": "A", "createdAt": "2021-01-01", "email": "a@b.c"}));
        let out = metadata(Some(&json!("2021-02-01T00:00:00.000Z")), Some(&traits));
        assert_eq!(
            Value::Object(out.clone()),
            json!({"name": "A", "email": "a@b.c", "created_at": "2021-02-01T00:00:00.000Z"})
        );
        assert_eq!(keys(&out), ["name", "email", "created_at"]);
    }

    #[test]
    fn falsy_traits_created_at_is_kept_under_its_key() {
        for falsy in [json!(""), json!(0), json!(false), json!(null)] {
            let traits = map(json!({"name": "", "email": "", "createdAt": falsy.clone()}));
            let out = metadata(None, Some(&traits));
            assert_eq!(
                Value::Object(out),
                json!({"name": "", "email": "", "createdAt": falsy})
            );
        }
    }

    #[test]
    fn truthy_traits_created_at_without_the_field_is_dropped() {
        let traits = map(
            json!({"name": "Company Name", "primary_email": "company@example.com", "createdAt": "2021-01-01"}),
        );
        let out = metadata(None, Some(&traits));
        assert_eq!(
            Value::Object(out),
            json!({"name": "Company Name", "primary_email": "company@example.com"})
        );
    }

    #[test]
    fn existing_created_at_is_overwritten_in_place() {
        let traits =
            map(json!({"created_at": "old", "name": "A", "createdAt": "2021-01-01T00:00:00Z"}));
        let out = metadata(Some(&json!("2021-01-01T00:00:00Z")), Some(&traits));
        assert_eq!(keys(&out), ["created_at", "name"]);
        assert_eq!(out["created_at"], json!("2021-01-01T00:00:00Z"));
    }

    #[test]
    fn existing_created_at_stays_when_the_field_is_absent_or_falsy() {
        let traits = map(json!({"created_at": 123}));
        assert_eq!(
            Value::Object(metadata(None, Some(&traits))),
            json!({"created_at": 123})
        );
        assert_eq!(
            Value::Object(metadata(Some(&json!("")), Some(&traits))),
            json!({"created_at": 123})
        );
        assert_eq!(
            Value::Object(metadata(Some(&json!(0)), Some(&traits))),
            json!({"created_at": 123})
        );
    }

    #[test]
    fn numbers_are_forwarded_as_numbers() {
        let out = metadata(Some(&json!(1612137600)), None);
        assert_eq!(Value::Object(out), json!({"created_at": 1612137600}));
    }

    #[test]
    fn absent_traits_give_an_empty_object_or_only_created_at() {
        assert_eq!(Value::Object(metadata(None, None)), json!({}));
        assert_eq!(
            Value::Object(metadata(Some(&json!("2021-02-01")), None)),
            json!({"created_at": "2021-02-01"})
        );
    }

    #[test]
    fn flattening_keeps_primitives_and_turns_nesting_into_dotted_keys() {
        let traits = map(json!({
            "name": "Ada",
            "company": {"id": "acme", "name": "Acme", "address": {"city": "Oslo"}},
            "tags": ["a", "b"],
            "company.id": "kept",
            "empty": {},
            "none": null,
        }));
        let out = flatten(metadata(None, Some(&traits)));
        assert_eq!(
            Value::Object(out),
            json!({
                "name": "Ada",
                "tags": "[\"a\",\"b\"]",
                "company.id": "kept",
                "none": null,
                "company.name": "Acme",
                "company.address.city": "Oslo",
            })
        );
    }

    #[test]
    fn nested_objects_in_traits_pass_through_untouched() {
        let traits = map(json!({"address": {"city": "", "zip": null}, "tags": []}));
        let out = metadata(None, Some(&traits));
        assert_eq!(
            Value::Object(out),
            json!({"address": {"city": "", "zip": null}, "tags": []})
        );
    }
}
