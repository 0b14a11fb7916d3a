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
//! the output, absent array elements become `null`, and an absent result is `Ok(None)`. The
//! members of every object in the output are in JavaScript's order (array-index keys such as
//! `"0"` and `"12"` first, ascending, then the others as inserted), the order of Segment's JSON.
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
//! - **Liquid engine.** `@liquid` is our own interpreter (`liquid` module) that follows liquidjs
//!   10.31 as Segment configures it: the same tokenizer rules, tags, operators (`and`/`or` right to
//!   left), truthiness, property lookup (`size`/`first`/`last`), JavaScript string and number
//!   conversions, every filter of liquidjs's standard set that Segment leaves enabled (unknown
//!   filters pass the value through), liquidjs's `strftime`, JavaScript `Date` string parsing
//!   (ISO 8601 and V8's legacy forms) in UTC, and liquidjs's error messages with their
//!   `, line:N, col:M` suffix. It replaced the `liquid` crates, which could not be made to agree:
//!   they reject unknown filters and wrong-kind arguments, print objects and numbers their own
//!   way, word errors differently and give no positions. Remaining differences:
//!   - Time zone names in `date`'s third argument: only UTC and fixed-offset names (`UTC`, `GMT`,
//!     `Etc/GMT+5`, …) are known; any other IANA name fails with liquidjs's
//!     `Invalid time zone specified: <name>` (we carry no time zone database). Offsets in minutes
//!     work as in liquidjs.
//!   - `sample` is deterministic (the first item, or the first `n`); liquidjs shuffles.
//!   - `increment`/`decrement` counters live for one render; liquidjs writes them onto the event
//!     object itself, where later directives of the same mapping could see them.
//!   - Lone surrogates (from `\uD800` escapes or from slicing inside a surrogate pair) become
//!     U+FFFD, and `replace` with an empty pattern works per code point rather than per UTF-16
//!     unit. `where` with a computed property path (`a[b]`) finds nothing.
//!   - Besides liquidjs's 1e8 memory accounting (reproduced), a render fails with
//!     `memory alloc limit exceeded` when one value or the output passes 10 MB or all produced
//!     text passes 50 MB, and ranges are capped at 1,000,000 items. liquidjs has no such caps
//!     (it has a 500 ms render limit instead, which we do not reproduce because rendering here is
//!     bounded by these caps and the 1000-character template limit).

mod compile;
mod empty;
mod eval;
mod liquid;
mod path;
mod reads;
mod template;
mod transform;
mod validate;
mod value;

use std::sync::Arc;

use serde_json::Value;

pub use empty::{EmptyValueSchema, JsonType, remove_empty_values};
pub use reads::{DataPath, Reads, reads};
pub use transform::{TransformError, transform};
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
        let mut out = eval::transform(&self.root, data)?.into_json();
        if let Some(value) = &mut out {
            value::order_keys_as_javascript(value);
        }
        Ok(out)
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
                let mut out = eval::resolve(&self.root, item)?
                    .into_json()
                    .unwrap_or(Value::Null);
                value::order_keys_as_javascript(&mut out);
                Ok(out)
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
