//! JSON Schemas generated from the model in [`crate::model`].
//!
//! The schemas describe the YAML files exactly as the loader accepts them: `null` is not accepted
//! for optional keys (leave the key out instead), and unknown keys are rejected.

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::Value;

use crate::model::{ActionSpec, DestinationSpec};

/// The JSON Schema of `destination.yaml`.
pub fn destination_schema() -> Value {
    schema_for::<DestinationSpec>(
        "actionkit destination",
        "A destination declared in actions/<dest>/destination.yaml.",
    )
}

/// The JSON Schema of one action YAML file.
pub fn action_schema() -> Value {
    schema_for::<ActionSpec>(
        "actionkit action",
        "One action of a destination, declared in actions/<dest>/<action>.yaml.",
    )
}

pub(crate) fn schema_for<T: JsonSchema>(title: &str, description: &str) -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let schema = generator.into_root_schema_for::<T>();
    let mut value = schema.to_value();
    strip_null_alternatives(&mut value);
    let Value::Object(generated) = value else {
        return value;
    };
    // Put the identifying keys first so the file reads well; the rest keeps schemars' order.
    let mut ordered = serde_json::Map::new();
    if let Some(meta) = generated.get("$schema") {
        ordered.insert("$schema".to_owned(), meta.clone());
    }
    ordered.insert("title".to_owned(), Value::String(title.to_owned()));
    ordered.insert(
        "description".to_owned(),
        Value::String(description.to_owned()),
    );
    for (key, val) in generated {
        if !ordered.contains_key(&key) {
            ordered.insert(key, val);
        }
    }
    Value::Object(ordered)
}

/// Removes the `null` alternative schemars adds for `Option<T>`.
///
/// serde would read an explicit `null` as "absent", but the YAML is clearer when absent keys are
/// simply left out, so the schema (and therefore the loader) rejects `null` for optional keys.
fn strip_null_alternatives(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|ty| ty != "null");
                if types.len() == 1 {
                    let single = types.remove(0);
                    map.insert("type".to_owned(), single);
                }
            }
            if let Some(Value::Array(branches)) = map.get("anyOf") {
                let is_null = |branch: &Value| {
                    branch.get("type") == Some(&Value::String("null".to_owned()))
                        && branch.as_object().is_some_and(|b| b.len() == 1)
                };
                if branches.len() == 2 && branches.iter().any(is_null) {
                    let kept = branches.iter().find(|b| !is_null(b)).cloned();
                    if let Some(Value::Object(kept)) = kept {
                        map.remove("anyOf");
                        for (key, val) in kept {
                            map.entry(key).or_insert(val);
                        }
                    }
                }
            }
            for child in map.values_mut() {
                strip_null_alternatives(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_null_alternatives),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects the JSON pointers of properties (and definitions) that lack a description,
    /// walking the schema structurally (a property may itself be named `properties`).
    fn undocumented(schema: &Value, pointer: &str, out: &mut Vec<String>) {
        let Value::Object(map) = schema else {
            return;
        };
        for container in ["properties", "$defs"] {
            if let Some(Value::Object(children)) = map.get(container) {
                for (name, child) in children {
                    let child_pointer = format!("{pointer}/{container}/{name}");
                    let has_description = child
                        .get("description")
                        .and_then(Value::as_str)
                        .is_some_and(|text| !text.trim().is_empty());
                    if !has_description {
                        out.push(child_pointer.clone());
                    }
                    undocumented(child, &child_pointer, out);
                }
            }
        }
        for single in ["items", "additionalProperties"] {
            if let Some(child) = map.get(single) {
                undocumented(child, &format!("{pointer}/{single}"), out);
            }
        }
        for list in ["anyOf", "oneOf", "allOf"] {
            if let Some(Value::Array(items)) = map.get(list) {
                for (idx, item) in items.iter().enumerate() {
                    undocumented(item, &format!("{pointer}/{list}/{idx}"), out);
                }
            }
        }
    }

    #[test]
    fn every_property_and_definition_has_a_description() {
        for (name, schema) in [
            ("destination", destination_schema()),
            ("action", action_schema()),
        ] {
            let mut missing = Vec::new();
            undocumented(&schema, "", &mut missing);
            assert!(
                missing.is_empty(),
                "{name} schema lacks descriptions at: {missing:#?}"
            );
            assert!(schema.get("description").is_some());
        }
    }

    #[test]
    fn the_walk_detects_a_missing_description() {
        let schema = serde_json::json!({"properties": {"a": {"type": "string"}}});
        let mut missing = Vec::new();
        undocumented(&schema, "", &mut missing);
        assert_eq!(missing, ["/properties/a"]);
    }

    #[test]
    fn optional_keys_do_not_accept_null() {
        let schema = action_schema();
        let text = schema.to_string();
        assert!(
            !text.contains("\"null\""),
            "a null alternative survived: {text}"
        );
        let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
        let mut doc = serde_json::json!({
            "id": "a", "key": "k", "name": "n", "description": "d", "platform": "cloud",
            "request": {"method": "POST", "path": "p"}
        });
        assert!(validator.is_valid(&doc));
        doc["default_trigger"] = Value::Null;
        assert!(!validator.is_valid(&doc));
    }

    #[test]
    fn unknown_keys_are_rejected_everywhere() {
        let schema = destination_schema();
        let defs = schema["$defs"].as_object().expect("definitions exist");
        for (name, def) in defs {
            if def.get("type") == Some(&Value::String("object".into()))
                && def.get("properties").is_some()
            {
                assert_eq!(
                    def.get("additionalProperties"),
                    Some(&Value::Bool(false)),
                    "{name}"
                );
            }
        }
        assert_eq!(
            schema.get("additionalProperties"),
            Some(&Value::Bool(false))
        );
    }
}
