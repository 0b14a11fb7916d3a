//! Segment mapping-kit for Rust: validate a mapping once, then evaluate it on many events.
//!
//! This file is the public contract other crates compile against; the implementation fills it in.

use serde_json::Value;

/// A mapping that passed validation and is ready to evaluate without re-parsing.
#[derive(Debug, Clone)]
pub struct Mapping {
    raw: Value,
}

/// Every problem validation found in a mapping, in Segment's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .messages.join(" "))]
pub struct ValidationErrors {
    /// One message per problem, for example `/@if/then has an invalid directive: @oops.`
    pub messages: Vec<String>,
}

/// An error raised while evaluating a valid mapping (Segment's runtime directive errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EvalError {
    /// The message, in Segment's wording.
    pub message: String,
}

impl Mapping {
    /// Validates `raw` and compiles it.
    pub fn compile(raw: &Value) -> Result<Mapping, ValidationErrors> {
        Ok(Mapping { raw: raw.clone() })
    }

    /// Evaluates the mapping against `data`; `Ok(None)` means the result is absent.
    pub fn evaluate(&self, data: &Value) -> Result<Option<Value>, EvalError> {
        let _ = (&self.raw, data);
        Err(EvalError { message: "not implemented".into() })
    }
}
