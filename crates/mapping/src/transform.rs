//! Segment's `transform(mapping, data)` as one call, including what it does to a mapping root
//! that is not an object.
//!
//! Destination actions always hand mapping-kit an object (field key → mapping), and
//! [`Mapping::compile`] compiles any value as a mapping. Segment's entry point, though, first
//! copies the root with JavaScript's object spread (`{...mapping}`), so a root array becomes an
//! object keyed `"0"`, `"1"`, …, a root string an object of its UTF-16 units, a number or boolean
//! an empty object, and `null` fails. [`transform`] reproduces that, so that the differential
//! comparison with Segment's package can call the same entry point.

use serde_json::{Map, Value};

use crate::{EvalError, Mapping, ValidationErrors, value};

/// Why [`transform`] gave no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// The mapping failed validation (Segment throws the one message alone, or all of them in an
    /// `AggregateError`).
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// Evaluation failed, or the data or the mapping root has a kind Segment refuses.
    #[error(transparent)]
    Eval(#[from] EvalError),
}

/// The mapping root after JavaScript's `{...mapping}`.
fn spread_root(mapping: &Value) -> Result<Value, EvalError> {
    Ok(match mapping {
        Value::Object(_) => mapping.clone(),
        Value::Array(items) => Value::Object(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| (i.to_string(), item.clone()))
                .collect(),
        ),
        Value::String(text) => {
            // One key per UTF-16 unit; half of a surrogate pair cannot be a Rust string and
            // becomes U+FFFD.
            let mut map = Map::new();
            for (i, unit) in text.encode_utf16().enumerate() {
                let part = String::from_utf16(&[unit]).unwrap_or_else(|_| '\u{fffd}'.to_string());
                map.insert(i.to_string(), Value::String(part));
            }
            Value::Object(map)
        }
        Value::Null => {
            return Err(EvalError {
                message: "Cannot convert undefined or null to object".to_owned(),
            });
        }
        Value::Bool(_) | Value::Number(_) => Value::Object(Map::new()),
    })
}

/// Segment's `transform`: checks that `data` is an object, spreads the mapping root, validates
/// and evaluates. `Ok(None)` means the result is absent.
pub fn transform(mapping: &Value, data: &Value) -> Result<Option<Value>, TransformError> {
    if !data.is_object() {
        return Err(EvalError {
            message: format!(
                "data must be an object, got {}",
                value::kind_of(data).name()
            ),
        }
        .into());
    }
    let root = spread_root(mapping)?;
    Ok(Mapping::compile(&root)?.evaluate(data)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn roots_are_spread_as_javascript_does() {
        let data = json!({"a": 1});
        assert_eq!(
            transform(&json!(["x", {"@path": "$.a"}]), &data),
            Ok(Some(json!({"0": "x", "1": 1})))
        );
        assert_eq!(
            transform(&json!("hé🎉"), &data),
            Ok(Some(
                json!({"0": "h", "1": "é", "2": "\u{fffd}", "3": "\u{fffd}"})
            ))
        );
        assert_eq!(transform(&json!(12), &data), Ok(Some(json!({}))));
        assert_eq!(
            transform(&Value::Null, &data),
            Err(TransformError::Eval(EvalError {
                message: "Cannot convert undefined or null to object".to_owned()
            }))
        );
        assert!(matches!(
            transform(&json!([{"@path": 3}]), &data),
            Err(TransformError::Invalid(_))
        ));
        assert_eq!(
            transform(&json!({}), &json!([1])),
            Err(TransformError::Eval(EvalError {
                message: "data must be an object, got array".to_owned()
            }))
        );
    }
}
