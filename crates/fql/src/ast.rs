//! The syntax tree of a trigger: groups, conditions, fields, operators and literal values.
//!
//! The tree mirrors Segment's JSON AST (see [`Expr::to_segment_ast`]) but is typed: a [`Condition`]
//! pairs a [`Field`] with an [`Operator`] and an optional [`Literal`]. Everything the matcher needs
//! per event (the split field path, the JavaScript string and number forms of the value) is computed
//! once when a condition is built, so matching never allocates.

use std::fmt;

use crate::js;

/// A parsed trigger expression.
///
/// [`crate::parse`] produces trees in *canonical form*: every group has at least two children and
/// no group directly contains a group with the same operator (`(a and b) and c` becomes one `and`
/// group of three). Trees built by hand or by [`Expr::from_segment_ast`] may be non-canonical; they
/// still match and print, and printing then parsing yields an equivalent canonical tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Every child must match (an empty group matches everything, as in Segment).
    And(Vec<Expr>),
    /// At least one child must match (an empty group matches nothing, as in Segment).
    Or(Vec<Expr>),
    /// A single test on one field of the event.
    Condition(Condition),
}

/// A test on one field of the event, such as `properties.price >= 100`.
///
/// Build one with [`Condition::new`]; the constructor checks that the operator has the value it
/// needs and precomputes the forms of the value that matching compares against.
#[derive(Debug, Clone)]
pub struct Condition {
    field: Field,
    operator: Operator,
    value: Option<Literal>,
    /// The value as JavaScript's `String(value)` renders it (what `=` and `contains` compare with).
    text: Box<str>,
    /// The value as JavaScript's `Number(value)` converts it (what `<` and `number_equals` use).
    number: f64,
}

impl PartialEq for Condition {
    fn eq(&self, other: &Self) -> bool {
        // The cached forms are functions of the value, so they need no comparison (and `number`
        // may be NaN, which would make a derived comparison unequal to itself).
        self.field == other.field && self.operator == other.operator && self.value == other.value
    }
}

impl Condition {
    /// Builds a condition, checking that `operator` has the value it needs.
    ///
    /// `exists`, `not_exists`, `is_true` and `is_false` take no value: a value passed with them is
    /// dropped, as Segment ignores it. Every other operator needs one. Numbers must be finite.
    pub fn new(
        field: Field,
        operator: Operator,
        value: Option<Literal>,
    ) -> Result<Condition, AstError> {
        let value = if operator.takes_value() {
            match value {
                Some(Literal::Number(n)) if !n.is_finite() => {
                    return Err(AstError::new(format!(
                        "expected a finite number as the value of '{}' but found {n}",
                        operator.as_str()
                    )));
                }
                Some(value) => Some(value),
                None => {
                    return Err(AstError::new(format!(
                        "expected a value for operator '{}' but found none",
                        operator.as_str()
                    )));
                }
            }
        } else {
            None
        };
        let (text, number) = match &value {
            None => (Box::from("undefined"), f64::NAN),
            Some(Literal::String(s)) => (Box::from(s.as_str()), js::string_to_number(s)),
            Some(Literal::Number(n)) => (js::number_to_string(*n).into_boxed_str(), *n),
            Some(Literal::Bool(b)) => (
                Box::from(if *b { "true" } else { "false" }),
                f64::from(u8::from(*b)),
            ),
        };
        Ok(Condition {
            field,
            operator,
            value,
            text,
            number,
        })
    }

    /// The field this condition reads.
    pub fn field(&self) -> &Field {
        &self.field
    }

    /// The comparison this condition performs.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The value compared with, if the operator takes one.
    pub fn value(&self) -> Option<&Literal> {
        self.value.as_ref()
    }

    /// The value as JavaScript's `String(value)` would render it.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The value as JavaScript's `Number(value)` would convert it (NaN when not numeric).
    pub(crate) fn number(&self) -> f64 {
        self.number
    }
}

/// The part of the event a condition reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// The top-level `type` (`track`, `identify`, …); Segment's `event-type` condition.
    Type,
    /// The top-level `event` name of a track call; Segment's `event` condition.
    Event,
    /// The top-level `name` of a page or screen call; Segment's `name` condition.
    Name,
    /// The top-level `userId`; Segment's `userId` condition.
    UserId,
    /// A path below `properties`; Segment's `event-property` condition.
    Property(Path),
    /// A path below `traits`; Segment's `event-trait` condition.
    Trait(Path),
    /// A path below `context`; Segment's `event-context` condition.
    Context(Path),
}

impl Field {
    /// The path below `properties`/`traits`/`context`, if this field has one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Field::Property(p) | Field::Trait(p) | Field::Context(p) => Some(p),
            Field::Type | Field::Event | Field::Name | Field::UserId => None,
        }
    }

    /// The condition type Segment's JSON AST uses for this field (`event-type`, `event-property`, …).
    pub fn segment_type(&self) -> &'static str {
        match self {
            Field::Type => "event-type",
            Field::Event => "event",
            Field::Name => "name",
            Field::UserId => "userId",
            Field::Property(_) => "event-property",
            Field::Trait(_) => "event-trait",
            Field::Context(_) => "event-context",
        }
    }

    /// The top-level event key this field reads (`type`, `properties`, …).
    pub fn root_key(&self) -> &'static str {
        match self {
            Field::Type => "type",
            Field::Event => "event",
            Field::Name => "name",
            Field::UserId => "userId",
            Field::Property(_) => "properties",
            Field::Trait(_) => "traits",
            Field::Context(_) => "context",
        }
    }
}

/// A path below `properties`, `traits` or `context`, split into segments once at construction.
///
/// The name is kept exactly as Segment stores it (`product.price`, `items[0]`, `property 1`).
/// Like Segment's lookup, it is split on `.`, `[` and `]` with empty segments dropped, so a key
/// that itself contains one of those characters cannot be addressed.
#[derive(Debug, Clone)]
pub struct Path {
    name: Box<str>,
    segments: Box<[Segment]>,
}

impl PartialEq for Path {
    fn eq(&self, other: &Self) -> bool {
        // The segments are a function of the name.
        self.name == other.name
    }
}

/// One step of a [`Path`], with its array-index reading precomputed.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub(crate) key: Box<str>,
    /// The key as an array index when it is a canonical non-negative integer (`0`, `12`, not `01`).
    pub(crate) index: Option<usize>,
}

impl Path {
    /// Builds a path from Segment's `name` form; fails when it has no segment at all (`""`, `"."`).
    pub fn new(name: &str) -> Result<Path, AstError> {
        let segments: Box<[Segment]> = name
            .split(['.', '[', ']'])
            .filter(|s| !s.is_empty())
            .map(|key| Segment {
                key: Box::from(key),
                index: canonical_index(key),
            })
            .collect();
        if segments.is_empty() {
            return Err(AstError::new(format!(
                "expected a field path with at least one name but found \"{name}\""
            )));
        }
        Ok(Path {
            name: Box::from(name),
            segments,
        })
    }

    /// The path as Segment writes it in the JSON AST's `name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The keys walked, in order.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().map(|s| &*s.key)
    }

    pub(crate) fn raw_segments(&self) -> &[Segment] {
        &self.segments
    }
}

/// JavaScript reads `arr["3"]` as an element but `arr["03"]` as a (missing) named property.
fn canonical_index(key: &str) -> Option<usize> {
    let canonical = key == "0"
        || (!key.starts_with('0') && !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit()));
    if canonical { key.parse().ok() } else { None }
}

/// A comparison operator, named as in Segment's JSON AST.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `=`: the actual value is a string equal to the value's string form.
    Eq,
    /// `!=`: the negation of [`Operator::Eq`] (so absent and non-string values always differ).
    Ne,
    /// `<`: the actual value is a number less than the value.
    Lt,
    /// `<=`: the actual value is a number less than or equal to the value.
    Le,
    /// `>`: the actual value is a number greater than the value.
    Gt,
    /// `>=`: the actual value is a number greater than or equal to the value.
    Ge,
    /// `contains(field, "v")`: the actual value is a string containing the value.
    Contains,
    /// `!contains(field, "v")`: the actual value is a string not containing the value.
    NotContains,
    /// `match(field, "v*")`: the actual value is a string starting with the value.
    StartsWith,
    /// `!match(field, "v*")`: the actual value is a string not starting with the value.
    NotStartsWith,
    /// `match(field, "*v")`: the actual value is a string ending with the value.
    EndsWith,
    /// `!match(field, "*v")`: the actual value is a string not ending with the value.
    NotEndsWith,
    /// `field != null`: the actual value is present and not null.
    Exists,
    /// `field = null`: the actual value is absent or null.
    NotExists,
    /// `field = true`: the actual value is the boolean `true`.
    IsTrue,
    /// `field = false`: the actual value is the boolean `false`.
    IsFalse,
    /// `field = 5` on properties, traits or context: the actual value is a number equal to the value.
    NumberEquals,
    /// `field != 5` on properties, traits or context: the actual value is a number not equal to it.
    NumberNotEquals,
}

impl Operator {
    /// Every operator, in declaration order.
    pub const ALL: [Operator; 18] = [
        Operator::Eq,
        Operator::Ne,
        Operator::Lt,
        Operator::Le,
        Operator::Gt,
        Operator::Ge,
        Operator::Contains,
        Operator::NotContains,
        Operator::StartsWith,
        Operator::NotStartsWith,
        Operator::EndsWith,
        Operator::NotEndsWith,
        Operator::Exists,
        Operator::NotExists,
        Operator::IsTrue,
        Operator::IsFalse,
        Operator::NumberEquals,
        Operator::NumberNotEquals,
    ];

    /// The operator's name in Segment's JSON AST (`=`, `contains`, `number_equals`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Eq => "=",
            Operator::Ne => "!=",
            Operator::Lt => "<",
            Operator::Le => "<=",
            Operator::Gt => ">",
            Operator::Ge => ">=",
            Operator::Contains => "contains",
            Operator::NotContains => "not_contains",
            Operator::StartsWith => "starts_with",
            Operator::NotStartsWith => "not_starts_with",
            Operator::EndsWith => "ends_with",
            Operator::NotEndsWith => "not_ends_with",
            Operator::Exists => "exists",
            Operator::NotExists => "not_exists",
            Operator::IsTrue => "is_true",
            Operator::IsFalse => "is_false",
            Operator::NumberEquals => "number_equals",
            Operator::NumberNotEquals => "number_not_equals",
        }
    }

    /// The operator with Segment JSON AST name `name`, if there is one.
    pub fn from_segment_name(name: &str) -> Option<Operator> {
        Operator::ALL.into_iter().find(|op| op.as_str() == name)
    }

    /// Whether the operator compares with a value (all but `exists`, `not_exists`, `is_true`,
    /// `is_false`).
    pub fn takes_value(self) -> bool {
        !matches!(
            self,
            Operator::Exists | Operator::NotExists | Operator::IsTrue | Operator::IsFalse
        )
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A literal value in a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A string (written in double quotes in FQL).
    String(String),
    /// A finite number.
    Number(f64),
    /// `true` or `false`.
    Bool(bool),
}

/// Why a tree (or a part of one) is not a valid trigger: what is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at {}: {message}", if pointer.is_empty() { "the root" } else { pointer.as_str() })]
pub struct AstError {
    /// JSON pointer to the offending node in Segment's JSON AST (`/children/0`); empty for the root.
    pub pointer: String,
    /// What was expected and what was found.
    pub message: String,
}

impl AstError {
    pub(crate) fn new(message: String) -> AstError {
        AstError {
            pointer: String::new(),
            message,
        }
    }
}
