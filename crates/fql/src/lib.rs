//! Segment's trigger language (FQL) for Rust: parse, print and match.
//!
//! This file is the public contract other crates compile against; the implementation fills it in.

use serde_json::Value;

/// A parsed trigger expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    source: String,
}

/// Why a trigger failed to parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ParseError {
    /// One-based column (in characters) where the problem starts.
    pub column: usize,
    /// What was expected and what was found.
    pub message: String,
}

/// Parses a trigger.
pub fn parse(source: &str) -> Result<Expr, ParseError> {
    Ok(Expr { source: source.to_owned() })
}

impl Expr {
    /// Whether `event` matches this trigger.
    pub fn matches(&self, event: &Value) -> bool {
        let _ = (&self.source, event);
        false
    }
}

impl std::fmt::Display for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}
