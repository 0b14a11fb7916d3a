//! Segment's trigger language (FQL, the subset Destination Actions subscriptions use): parse,
//! print and match. Pure: no IO, no async.
//!
//! ```
//! use serde_json::json;
//!
//! let trigger = actionkit_fql::parse(r#"type = "track" and properties.price >= 100"#)?;
//! assert!(trigger.matches(&json!({"type": "track", "properties": {"price": 120}})));
//! assert!(!trigger.matches(&json!({"type": "track", "properties": {"price": "120"}})));
//! assert_eq!(trigger.to_string(), r#"type = "track" and properties.price >= 100"#);
//! # Ok::<(), actionkit_fql::ParseError>(())
//! ```
//!
//! # The language
//!
//! - Fields: `type`, `event`, `name`, `userId`, and paths below `properties.`, `traits.` and
//!   `context.` (`context.page.path`). In a path, `\` escapes any character
//!   (`properties.property\ 1`); `.`, `[` and `]` separate keys, as in Segment's lookup.
//! - Comparisons `field op value` with `=`, `!=`, `<`, `<=`, `>`, `>=` and a value that is a
//!   double-quoted string (no escapes), a number (`100`, `-1.5`), `true`, `false` or `null`.
//! - Functions `contains(field, "v")` and `match(field, "v*")` / `match(field, "*v")`, each
//!   optionally negated with `!`.
//! - `and`, `or` (lowercase) and parentheses; `and` binds tighter than `or`.
//!
//! The parser applies Segment's value conversions (spec §4.2): `x != null` is `exists`,
//! `x = null` is `not_exists` (on `name`, `userId`, properties, traits and context); `= true` /
//! `= false` are `is_true` / `is_false` (on `userId`, properties, traits and context);
//! `= <number>` / `!= <number>` are `number_equals` / `number_not_equals` on properties, traits and
//! context; on `type`, `event`, `name` and `userId` every value is compared as its string form
//! (`type = null` compares with the string `"null"`, exactly as Segment does).
//!
//! Matching follows Segment's `validate` (spec §4.3): `=` needs a string equal to the value's
//! string form (the number `123` never equals `= "123"`), `!=` is its negation (so absent and
//! non-string values always differ), `<`…`>=` and `number_*` need a JSON number, the string
//! functions need a string, `exists` means present and not null, `is_true`/`is_false` need a
//! boolean. Path lookup is Segment's null-propagating walk (a `null`, `false`, `0` or `""` met on
//! the way is the result; arrays and strings answer `length` and indexes). Matching borrows from
//! the event and does not allocate: paths are split and values converted when the tree is built.
//!
//! # Deliberate deviations from Segment
//!
//! Segment's parser (`@segment/destination-subscriptions` with `@segment/fql-ts`) is a sequential
//! scan that silently skips what it does not understand. This crate is a conventional parser
//! that rejects such input with a [`ParseError`] naming what it expected, what it found and where.
//! Everything Segment parses correctly produces an equivalent tree here and matches the same
//! events; the differences are:
//!
//! 1. **Precedence.** `and` binds tighter than `or`. Segment applies the *last* conjunction seen
//!    to the whole level (`type = "track" and event = "A" or event = "B"` becomes an `or` of all
//!    three), which is a bug: nobody writes that meaning on purpose.
//! 2. **Nested parentheses** work (`((a or b) and c)`). Segment fails on them, and ends a group
//!    at the `)` of a function call inside it, silently flattening
//!    `(contains(event, "a") or contains(event, "b")) and type = "track"`.
//! 3. **Errors instead of silent skipping**, for: unknown fields (`foo = "bar"`), fields with a
//!    sub-path where none exists (`type.x`), `properties`/`traits`/`context` without a path, stray
//!    tokens (a string or `)` where a condition belongs, a trailing `and`, two conditions without
//!    a conjunction between them), uppercase `AND`/`OR` (Segment skips them as unknown words, which
//!    makes `a OR b` mean `a and b`), a missing value (`type = ` is `"eos"` in Segment),
//!    `contains`/`match` on `type` (Segment drops the condition), `contains(x, null)`, a non-string
//!    `match` pattern, `[`/`]` (Segment lexes them but cannot use them; escape them in paths as
//!    `\[`), a bare `-` (a NaN number in Segment) and numbers beyond the `f64` range.
//! 4. **Single-quoted strings are an error.** Segment keeps the quotes as part of the value, so
//!    `type = 'track'` compares with `'track'` (quotes included) and never matches; making it
//!    match would change what an imported trigger selects, so we refuse it and say why.
//! 5. **`match` patterns must start or end with `*`.** Segment turns any pattern not ending in `*`
//!    into `ends_with` with its first character dropped (`match(event, "abc")` is
//!    `ends_with "bc"`); we reject such patterns. A pattern ending in `*` is `starts_with` of the
//!    rest (checked first, as in Segment), otherwise one starting with `*` is `ends_with`.
//! 6. **Relaxed spacing.** Segment's lexer requires a separator after two-character operators,
//!    string literals and identifiers, so `properties.price>=100` and `userId !=null` are errors
//!    there and `properties.price >=100` is misread as `>` with the value `"="`. Here tokens need
//!    no separators: all three read as written. Carriage returns count as whitespace.
//! 7. **Events that are not JSON objects never match.** Segment returns false for `undefined`,
//!    throws on `null`, and reads every field of other primitives as absent (so `type != "x"`
//!    would match the string `"abc"`).
//! 8. **JavaScript object internals are not emulated**: `properties.constructor` is absent here
//!    rather than a function, and a string index landing inside a surrogate pair is absent rather
//!    than a lone surrogate.
//! 9. **Identifiers may contain Unicode letters unescaped**; printing escapes them as Segment's
//!    `generateFql` does.
//!
//! # Printing
//!
//! [`Expr`]'s `Display` writes canonical FQL in the style of Segment's `generateFql`: strings
//! double-quoted, `contains(x, "v")`, `match(x, "v*")`, `x != null`, every nested group parenthesised (Segment reads unparenthesised
//! mixed conjunctions differently, so the parentheses keep printed triggers portable). Printing
//! then parsing gives back the same tree for every tree [`parse`] produces. Hand-built trees can
//! hold what FQL cannot express (a string containing `"`, an `ends_with` value ending in `*`,
//! an empty group); their printed form may not parse or may parse to an equivalent tree.
//! Numbers print in plain decimal, never with an exponent.
//!
//! # Testing and fuzzing
//!
//! `tests/conformance.rs` replays the spec's §7.2 cases (`tests/data/segment_conformance.json`)
//! and `tests/cases.rs` our own (`tests/data/cases.json`); `tests/proptest.rs` checks that printing
//! round-trips and that parsing never panics; `tests/no_alloc.rs` counts allocations while
//! matching (none); `tests/segment_ast.rs` covers malformed JSON ASTs. The fuzz target checks the print/parse round trip on
//! arbitrary input:
//!
//! ```text
//! cd crates/fql/fuzz && cargo +nightly fuzz run fql_parse -- -max_total_time=60
//! ```
//!
//! Benchmarks: `cargo bench -p actionkit-fql`.

mod ast;
mod display;
mod eval;
mod js;
mod lexer;
mod parser;
mod segment;

use serde_json::Value;

pub use ast::{AstError, Condition, Expr, Field, Literal, Operator, Path};

/// Why a trigger failed to parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ParseError {
    /// One-based column (in characters) where the problem starts.
    pub column: usize,
    /// What was expected and what was found.
    pub message: String,
}

/// Parses a trigger into its canonical tree.
///
/// Never panics; every malformed input gives a [`ParseError`] naming what was expected, what was
/// found, and the column.
pub fn parse(source: &str) -> Result<Expr, ParseError> {
    parser::parse(source)
}

impl Expr {
    /// Whether `event` matches this trigger (Segment's `validate`). Events that are not JSON
    /// objects never match.
    pub fn matches(&self, event: &Value) -> bool {
        eval::matches(self, event)
    }

    /// Why `event` does not match: the conditions that failed and what the event holds where
    /// each looks (every failing condition of an `and`, every condition of an `or` that
    /// failed); empty when it matches. For people (a tester's "why not"), not for the hot path.
    ///
    /// ```
    /// use serde_json::json;
    ///
    /// let trigger = actionkit_fql::parse(r#"type = "track" and event = "Order Completed""#)?;
    /// let misses = trigger.misses(&json!({"type": "track", "event": "Signed Up"}));
    /// assert_eq!(misses.len(), 1);
    /// assert_eq!(misses[0].condition, r#"event = "Order Completed""#);
    /// assert_eq!(misses[0].found, r#""Signed Up""#);
    /// # Ok::<(), actionkit_fql::ParseError>(())
    /// ```
    pub fn misses(&self, event: &Value) -> Vec<Miss> {
        eval::misses(self, event)
    }
}

/// A condition of a trigger that an event did not satisfy, with what the event holds there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Miss {
    /// The condition as canonical FQL, such as `event = "Order Completed"`.
    pub condition: String,
    /// What the event holds at the condition's field: the JSON value (long strings shortened),
    /// `absent`, or `not a JSON object` when the event itself is not one.
    pub found: String,
}

impl std::str::FromStr for Expr {
    type Err = ParseError;

    fn from_str(source: &str) -> Result<Expr, ParseError> {
        parse(source)
    }
}
