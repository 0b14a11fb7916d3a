//! Segment's `removeEmptyValues` (spec §1.6): after a mapping is evaluated and before the payload
//! is validated, drop `null` and `""` values that the field's schema cannot accept.

use serde_json::Value;

/// A JSON Schema primitive type name, as used in a field schema's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JsonType {
    /// `"string"`.
    String,
    /// `"number"`.
    Number,
    /// `"integer"`.
    Integer,
    /// `"boolean"`.
    Boolean,
    /// `"object"`.
    Object,
    /// `"array"`.
    Array,
    /// `"null"`.
    Null,
}

impl JsonType {
    /// Parses a JSON Schema type name; `None` for unknown names.
    pub fn from_name(name: &str) -> Option<JsonType> {
        Some(match name {
            "string" => JsonType::String,
            "number" => JsonType::Number,
            "integer" => JsonType::Integer,
            "boolean" => JsonType::Boolean,
            "object" => JsonType::Object,
            "array" => JsonType::Array,
            "null" => JsonType::Null,
            _ => return None,
        })
    }
}

/// The parts of a field's JSON Schema that `removeEmptyValues` looks at.
///
/// - `types`: the schema's `type` (a single type is a one-element list); `None` when absent.
/// - `has_enum`: whether the schema has an `enum`. A schema with neither `type` nor `enum` leaves
///   its value untouched, including everything nested inside it.
/// - `properties`: per-key schemas of an object schema, in declaration order; `None` when the
///   schema has no `properties` (then the object's contents are left untouched).
/// - `items`: the schema of array elements; `None` when the schema has no `items`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmptyValueSchema {
    /// The schema's `type` list; `None` when the schema has no `type`.
    pub types: Option<Vec<JsonType>>,
    /// Whether the schema has an `enum` keyword.
    pub has_enum: bool,
    /// The schemas of object properties; `None` when the schema has no `properties`.
    pub properties: Option<Vec<(String, EmptyValueSchema)>>,
    /// The schema of array items; `None` when the schema has no `items`.
    pub items: Option<Box<EmptyValueSchema>>,
}

impl EmptyValueSchema {
    /// Reads the relevant keywords (`type`, `enum`, `properties`, `items`) from a JSON Schema
    /// document. Unknown type names are ignored; a non-object document yields an empty schema.
    pub fn from_json_schema(schema: &Value) -> EmptyValueSchema {
        let Value::Object(obj) = schema else {
            return EmptyValueSchema::default();
        };
        let types = obj.get("type").map(|t| match t {
            Value::String(name) => JsonType::from_name(name).into_iter().collect(),
            Value::Array(names) => names
                .iter()
                .filter_map(Value::as_str)
                .filter_map(JsonType::from_name)
                .collect(),
            _ => Vec::new(),
        });
        let properties = obj
            .get("properties")
            .and_then(Value::as_object)
            .map(|props| {
                props
                    .iter()
                    .map(|(k, v)| (k.clone(), EmptyValueSchema::from_json_schema(v)))
                    .collect()
            });
        let items = obj
            .get("items")
            .map(|items| Box::new(EmptyValueSchema::from_json_schema(items)));
        EmptyValueSchema {
            types,
            has_enum: obj.contains_key("enum"),
            properties,
            items,
        }
    }

    /// True when the schema has `type` or `enum`, i.e. when it constrains its value at all.
    fn is_typed(&self) -> bool {
        self.types.is_some() || self.has_enum
    }

    fn allows(&self, t: JsonType) -> bool {
        self.types.as_ref().is_some_and(|types| types.contains(&t))
    }

    fn property(&self, key: &str) -> Option<&EmptyValueSchema> {
        self.properties
            .as_ref()
            .and_then(|props| props.iter().find(|(k, _)| k == key).map(|(_, s)| s))
    }

    /// Whether a scalar `null`/`""` is to be removed under this schema.
    fn rejects_scalar(&self, value: &Value) -> bool {
        if !self.is_typed() {
            return false;
        }
        match value {
            Value::Null => !self.allows(JsonType::Null),
            Value::String(s) if s.is_empty() => !self.allows(JsonType::String),
            _ => false,
        }
    }
}

/// Removes `null` and `""` values that `schema` cannot accept, in place.
///
/// With `is_root` (Segment's single-event `execute`), top-level keys whose value is `""` are removed
/// even for string fields; batches call it without root semantics. Returns `false` when `value`
/// itself is to be removed (for example a root `null` under an object schema); the caller decides
/// what that means.
pub fn remove_empty_values(value: &mut Value, schema: &EmptyValueSchema, is_root: bool) -> bool {
    if !schema.is_typed() {
        return true;
    }
    match value {
        Value::Array(items) => {
            if let Some(item_schema) = &schema.items {
                // Elements are kept as they are (objects inside arrays are not cleaned).
                items.retain(|item| !item_schema.rejects_scalar(item));
            }
            true
        }
        Value::Object(map) => {
            if schema.properties.is_some() {
                map.retain(|key, child| {
                    let keep = match schema.property(key) {
                        Some(child_schema) => remove_empty_values(child, child_schema, false),
                        None => true,
                    };
                    keep && !(is_root && child.as_str() == Some(""))
                });
            }
            true
        }
        other => !schema.rejects_scalar(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(v: Value) -> EmptyValueSchema {
        EmptyValueSchema::from_json_schema(&v)
    }

    #[test]
    fn spec_examples() {
        let s = schema(json!({"type": "object", "properties": {
            "foo": {"type": "number"}, "bar": {"type": "string"}, "baz": {"type": "boolean"}}}));
        let mut v = json!({"foo": "", "bar": "1", "baz": true});
        assert!(remove_empty_values(&mut v, &s, true));
        assert_eq!(v, json!({"bar": "1", "baz": true}));

        let s = schema(
            json!({"type": "object", "properties": {"a": {"type": "object", "properties": {
            "b": {"type": "number"}, "c": {"type": ["null", "string"]}}}}}),
        );
        let mut v = json!({"a": {"b": "", "c": null}});
        remove_empty_values(&mut v, &s, true);
        assert_eq!(v, json!({"a": {"c": null}}));

        let s = schema(
            json!({"type": "object", "properties": {"name": {"type": "string"},
            "products": {"type": "array", "items": {"type": "object", "properties": {
                "product_id": {"type": "string"}}}}}}),
        );
        let mut v = json!({"name": "", "products": [{"product_id": ""}]});
        remove_empty_values(&mut v, &s, true);
        assert_eq!(v, json!({"products": [{"product_id": ""}]}));

        let s = schema(json!({"type": "object", "properties": {
            "n": {"type": ["null", "string"]}, "o": {"type": "object"}, "m": {"type": "number"}}}));
        let mut v = json!({"n": null, "o": null, "m": null, "location": null});
        remove_empty_values(&mut v, &s, true);
        assert_eq!(v, json!({"n": null, "location": null}));
    }

    #[test]
    fn batch_semantics_keep_root_empty_strings() {
        let s = schema(json!({"type": "object", "properties": {"name": {"type": "string"}}}));
        let mut v = json!({"name": ""});
        remove_empty_values(&mut v, &s, false);
        assert_eq!(v, json!({"name": ""}));
    }

    #[test]
    fn untyped_schema_leaves_value_alone() {
        let s = schema(json!({"properties": {"a": {"type": "number"}}}));
        let mut v = json!({"a": ""});
        remove_empty_values(&mut v, &s, true);
        assert_eq!(v, json!({"a": ""}));
    }
}
