//! Segment mapping-kit for Rust: validate a mapping once, then evaluate it on many events.
//!
//! A mapping is any JSON value; objects whose keys start with `@` are *directives*
//! (`@path @template @literal @if @case @replace @arrayPath @flatten @json @merge @transform
//! @excludeWhenNull @liquid`), plus the root directive `__segment_internal_directive` and UI
//! `_metadata` keys. [`Mapping::compile`] applies Segment's validation (collecting every message in
//! Segment's wording) and compiles the mapping into an internal tree with pre-split paths,
//! pre-parsed templates, pre-built `@replace` matchers and pre-parsed liquid templates.
//! [`Mapping::evaluate`] walks that tree; path lookups borrow from the event and each borrowed
//! subtree is cloned once into the output.
//!
//! Internally values are three-state (absent, `null`, JSON): absent object members are pruned from
//! the output, absent array elements become `null`, and an absent result is `Ok(None)`.
//!
//! [`remove_empty_values`] is Segment's `removeEmptyValues`, driven by an [`EmptyValueSchema`].
//!
//! ```
//! use actionkit_mapping::Mapping;
//! use serde_json::json;
//!
//! let mapping = Mapping::compile(&json!({
//!     "userId": {"@if": {"exists": {"@path": "$.userId"},
//!                        "then": {"@path": "$.userId"}, "else": {"@path": "$.anonymousId"}}},
//!     "traits": {"@path": "$.traits"}
//! })).unwrap();
//! let out = mapping.evaluate(&json!({"anonymousId": "a1", "traits": {"name": "Ada"}})).unwrap();
//! assert_eq!(out, Some(json!({"userId": "a1", "traits": {"name": "Ada"}})));
//! ```
//!
//! # Fuzzing
//!
//! `crates/mapping/fuzz` is a standalone cargo-fuzz package (its own `[workspace]`). Run it with
//! `cd crates/mapping/fuzz && cargo +nightly fuzz run mapping -- -max_total_time=60`.
//!
//! # Deviations from Segment
//!
//! Segment's behaviour is a compatibility contract and is reproduced including its quirks
//! (null-propagating path walk, `length` and character indexing on strings, `@if` `else`
//! truthiness, `@replace` returning `""` for non-strings, template stringification, the second
//! template pass over first-pass output, `@merge` copying absent members, runtime-only errors for
//! directives validation never sees). Where JavaScript or liquidjs cannot reasonably be mirrored:
//!
//! - **Prototype properties.** A path segment such as `constructor` or `toString` finds nothing
//!   on an object (JavaScript would find an inherited function, which serialises as nothing).
//! - **Key order.** JavaScript objects list integer-like keys (`"0"`, `"12"`) first in ascending
//!   order; we keep insertion order. JSON consumers do not depend on member order.
//! - **Numbers.** Values are `serde_json` numbers: integers beyond 2^53 keep full precision
//!   (JavaScript would round them). Floats are stringified with JavaScript's algorithm.
//! - **UTF-16.** String `length` and length limits count UTF-16 units like JavaScript; indexing a
//!   string at a unit that is half of a surrogate pair yields U+FFFD (Rust strings cannot hold lone
//!   surrogates). `@merge` of a string source assigns one key per character, not per UTF-16 unit.
//! - **Case-insensitive `@replace`** uses Unicode simple case folding (the `regex` crate), which
//!   can differ from JavaScript's `i` flag for a few non-ASCII characters.
//! - **`@replace` with `pattern2`:** the second pass runs when `pattern2` is a non-empty string; a
//!   non-string `replacement2` is treated as `""`. Segment's exact handling of malformed second-pass
//!   options is not documented.
//! - **Absent intermediate payloads.** When `@transform`'s `apply` resolves to nothing, or an
//!   `@arrayPath` item is absent, the nested mapping sees `null` instead of `undefined` (so a path
//!   lookup yields `null`, not absent).
//! - **Mapping depth.** Mappings nested deeper than [`MAX_DEPTH`] levels are rejected by
//!   [`Mapping::compile`] (`mapping is nested too deeply (more than 256 levels)`) instead of risking
//!   a stack overflow; JavaScript would throw a `RangeError` somewhere instead.
//! - **Liquid engine.** `@liquid` uses the `liquid` crate family, not liquidjs: its parser and
//!   renderer (`liquid-core`) and its standard library of tags and filters (`liquid-lib`), used
//!   directly because the `liquid` facade offers no hook to render undefined variables as `""`
//!   (liquid-rust errors on them) or to cap memory. Differences:
//!   - Unknown filters are a parse error (liquidjs ignores them by default), and the filter set is
//!     liquid-lib's standard library (liquidjs has more, e.g. `json`, `push`, `sum`).
//!   - Error messages other than Segment's own (`tag "<t>" is disabled`,
//!     `filter "<f>" is disabled`, the length and type messages) are liquid-rust's wording, reduced
//!     to their first line. liquidjs may also append `, line:N, col:M` to disabled-tag errors; we
//!     emit the bare message as the spec states.
//!   - Disabled tags fail when the template is parsed (like liquidjs), which here surfaces at
//!     evaluation; disabled filters fail only when they run.
//!   - Instead of liquidjs's 500 ms render limit and 1e8 memory limit, a value stored by
//!     `assign`/`capture` and the rendered output are each capped at 1,000,000 bytes
//!     (`memory alloc limit exceeded`). Without `for`/`tablerow` loops rendering time is bounded by
//!     the 1000-character template limit.
//!   - Whole floats (`1.0`) are handed to liquid as integers so they render as `1`, like JavaScript;
//!     other number and date formatting follows liquid-rust.

mod compile;
mod empty;
mod eval;
mod liquid;
mod path;
mod template;
mod validate;
mod value;

use std::sync::Arc;

use serde_json::Value;

pub use empty::{EmptyValueSchema, JsonType, remove_empty_values};
pub use validate::DIRECTIVES;

/// Longest `@replace` pattern Segment accepts, in UTF-16 code units.
pub const MAX_PATTERN_LENGTH: usize = 10;

/// Longest `@replace` replacement Segment accepts, in UTF-16 code units.
pub const MAX_REPLACEMENT_LENGTH: usize = 10;

/// Deepest mapping nesting [`Mapping::compile`] accepts.
pub const MAX_DEPTH: usize = 256;

/// A mapping that passed validation and is ready to evaluate without re-parsing.
///
/// Cloning is cheap (the compiled tree is shared).
#[derive(Debug, Clone)]
pub struct Mapping {
    raw: Value,
    root: Arc<compile::Node>,
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
    ///
    /// Applies the root-directive rewrite (`__segment_internal_directive`) first, then Segment's
    /// validation; all validation messages are returned together.
    pub fn compile(raw: &Value) -> Result<Mapping, ValidationErrors> {
        if depth(raw) > MAX_DEPTH {
            return Err(ValidationErrors {
                messages: vec![format!(
                    "mapping is nested too deeply (more than {MAX_DEPTH} levels)"
                )],
            });
        }
        let root = compile::compile_root(raw).map_err(|messages| ValidationErrors { messages })?;
        Ok(Mapping {
            raw: raw.clone(),
            root: Arc::new(root),
        })
    }

    /// The mapping as it was given to [`Mapping::compile`].
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// Evaluates the mapping against `data`; `Ok(None)` means the result is absent.
    ///
    /// `data` must be a JSON object (`data must be an object, got <type>` otherwise). Absent object
    /// members are pruned and absent array elements become `null`.
    pub fn evaluate(&self, data: &Value) -> Result<Option<Value>, EvalError> {
        Ok(eval::transform(&self.root, data)?.into_json())
    }

    /// Evaluates the mapping against each event of a batch (Segment's `transformBatch`).
    ///
    /// `events` must be a JSON array (`data must be an array, got <type>` otherwise). As in
    /// Segment, the elements are not required to be objects, and an absent result becomes `null`.
    pub fn evaluate_batch(&self, events: &Value) -> Result<Vec<Value>, EvalError> {
        let Value::Array(items) = events else {
            return Err(EvalError {
                message: format!(
                    "data must be an array, got {}",
                    value::kind_of(events).name()
                ),
            });
        };
        items
            .iter()
            .map(|item| {
                Ok(eval::resolve(&self.root, item)?
                    .into_json()
                    .unwrap_or(Value::Null))
            })
            .collect()
    }
}

/// Nesting depth of a JSON value, computed without recursion.
fn depth(v: &Value) -> usize {
    let mut max = 0;
    let mut stack = vec![(v, 1usize)];
    while let Some((v, d)) = stack.pop() {
        max = max.max(d);
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
            Value::Object(map) => stack.extend(map.values().map(|i| (i, d + 1))),
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn batch_requires_an_array_and_maps_each_event() {
        let m = Mapping::compile(&json!({"id": {"@path": "$.id"}})).unwrap();
        assert_eq!(
            m.evaluate_batch(&json!({})).unwrap_err().message,
            "data must be an array, got object"
        );
        assert_eq!(
            m.evaluate_batch(&json!([{"id": 1}, {}])).unwrap(),
            vec![json!({"id": 1}), json!({})]
        );
    }

    #[test]
    fn too_deep_mappings_are_rejected() {
        let mut v = json!(1);
        for _ in 0..MAX_DEPTH {
            v = json!([v]);
        }
        let err = Mapping::compile(&v).unwrap_err();
        assert_eq!(
            err.messages,
            vec!["mapping is nested too deeply (more than 256 levels)"]
        );
    }

    #[test]
    fn mapping_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Mapping>();
    }
}
