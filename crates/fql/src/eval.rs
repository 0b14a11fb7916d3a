//! Matching a tree against an event (Segment's `validate`, spec §4.3), without allocating.
//!
//! Field values are looked up with Segment's null-propagating walk: a missing key gives "absent",
//! a falsy intermediate value (`null`, `false`, `0`, `""`) is returned as is, arrays and strings
//! answer `length` and canonical indexes (a string index yields that character).

use serde_json::{Map, Value};

use crate::ast::{Condition, Expr, Field, Operator, Path};

/// What a field lookup found: a borrowed view of a JSON value, or a number JavaScript would
/// compute on the fly (`length`).
#[derive(Debug, Clone, Copy)]
enum Found<'a> {
    Absent,
    Null,
    Bool(bool),
    Num(f64),
    Str(&'a str),
    Array(&'a [Value]),
    Object(&'a Map<String, Value>),
}

impl<'a> Found<'a> {
    fn of(value: Option<&'a Value>) -> Found<'a> {
        match value {
            None => Found::Absent,
            Some(Value::Null) => Found::Null,
            Some(Value::Bool(b)) => Found::Bool(*b),
            Some(Value::Number(n)) => n.as_f64().map_or(Found::Absent, Found::Num),
            Some(Value::String(s)) => Found::Str(s),
            Some(Value::Array(a)) => Found::Array(a),
            Some(Value::Object(o)) => Found::Object(o),
        }
    }

    /// JavaScript falsiness (absent is handled separately by the walk).
    fn is_falsy(self) -> bool {
        match self {
            Found::Null | Found::Bool(false) => true,
            Found::Num(n) => n == 0.0 || n.is_nan(),
            Found::Str(s) => s.is_empty(),
            _ => false,
        }
    }

    /// `self[key]` with JavaScript's reading of arrays and strings.
    fn member(self, key: &str, index: Option<usize>) -> Found<'a> {
        match self {
            Found::Object(map) => Found::of(map.get(key)),
            Found::Array(items) if key == "length" => Found::Num(items.len() as f64),
            Found::Array(items) => index.map_or(Found::Absent, |i| Found::of(items.get(i))),
            Found::Str(s) if key == "length" => Found::Num(s.encode_utf16().count() as f64),
            Found::Str(s) => index.map_or(Found::Absent, |i| char_at_utf16(s, i)),
            _ => Found::Absent,
        }
    }
}

/// The character at UTF-16 index `index`, as JavaScript's `s[index]`. An index that lands on half
/// of a surrogate pair gives a lone surrogate in JavaScript, which no JSON string can equal; it is
/// treated as absent here.
fn char_at_utf16(s: &str, index: usize) -> Found<'_> {
    let mut unit = 0;
    for (byte, c) in s.char_indices() {
        if unit == index {
            return if c.len_utf16() == 1 {
                Found::Str(&s[byte..byte + c.len_utf8()])
            } else {
                Found::Absent
            };
        }
        unit += c.len_utf16();
        if unit > index {
            return Found::Absent;
        }
    }
    Found::Absent
}

fn walk<'a>(root: Found<'a>, path: &Path) -> Found<'a> {
    let mut cur = root;
    for segment in path.raw_segments() {
        if matches!(cur, Found::Absent) || cur.is_falsy() {
            return cur;
        }
        cur = cur.member(&segment.key, segment.index);
    }
    cur
}

/// Whether `expr` matches `event`; non-object events never match.
pub(crate) fn matches(expr: &Expr, event: &Value) -> bool {
    match event {
        Value::Object(event) => eval(expr, event),
        _ => false,
    }
}

/// The conditions of `expr` that `event` fails, with what it holds there (see
/// [`Expr::misses`]).
pub(crate) fn misses(expr: &Expr, event: &Value) -> Vec<crate::Miss> {
    let Value::Object(event) = event else {
        return vec![crate::Miss {
            condition: expr.to_string(),
            found: "not a JSON object".to_owned(),
        }];
    };
    let mut out = Vec::new();
    collect_misses(expr, event, &mut out);
    out
}

fn collect_misses(expr: &Expr, event: &Map<String, Value>, out: &mut Vec<crate::Miss>) {
    if eval(expr, event) {
        return;
    }
    match expr {
        Expr::And(children) | Expr::Or(children) => {
            for child in children {
                collect_misses(child, event, out);
            }
        }
        Expr::Condition(condition) => out.push(crate::Miss {
            condition: Expr::Condition(condition.clone()).to_string(),
            found: describe(lookup(condition.field(), event)),
        }),
    }
}

/// The longest string [`describe`] shows whole, in characters.
const DESCRIBE_MAX_CHARS: usize = 80;

/// What a lookup found, for people: JSON for scalars (long strings shortened), a count for
/// arrays and objects.
fn describe(found: Found<'_>) -> String {
    match found {
        Found::Absent => "absent".to_owned(),
        Found::Null => "null".to_owned(),
        Found::Bool(b) => b.to_string(),
        Found::Num(n) => crate::js::number_to_string(n),
        Found::Str(s) if s.chars().count() > DESCRIBE_MAX_CHARS => {
            let head: String = s.chars().take(DESCRIBE_MAX_CHARS).collect();
            let quoted = Value::String(head).to_string();
            format!("{}…\"", &quoted[..quoted.len() - 1])
        }
        Found::Str(s) => Value::String(s.to_owned()).to_string(),
        Found::Array(items) => format!("an array of {} items", items.len()),
        Found::Object(map) => format!("an object with {} keys", map.len()),
    }
}

fn eval(expr: &Expr, event: &Map<String, Value>) -> bool {
    match expr {
        Expr::And(children) => children.iter().all(|c| eval(c, event)),
        Expr::Or(children) => children.iter().any(|c| eval(c, event)),
        Expr::Condition(condition) => test(condition, lookup(condition.field(), event)),
    }
}

fn lookup<'a>(field: &Field, event: &'a Map<String, Value>) -> Found<'a> {
    let top = Found::of(event.get(field.root_key()));
    match field.path() {
        Some(path) => walk(top, path),
        None => top,
    }
}

fn test(condition: &Condition, actual: Found<'_>) -> bool {
    let text = condition.text();
    let number = condition.number();
    let string_eq = matches!(actual, Found::Str(s) if s == text);
    match condition.operator() {
        Operator::Eq => string_eq,
        Operator::Ne => !string_eq,
        Operator::Lt => matches!(actual, Found::Num(n) if n < number),
        Operator::Le => matches!(actual, Found::Num(n) if n <= number),
        Operator::Gt => matches!(actual, Found::Num(n) if n > number),
        Operator::Ge => matches!(actual, Found::Num(n) if n >= number),
        Operator::NumberEquals => matches!(actual, Found::Num(n) if n == number),
        Operator::NumberNotEquals => matches!(actual, Found::Num(n) if n != number),
        Operator::Contains => matches!(actual, Found::Str(s) if s.contains(text)),
        Operator::NotContains => matches!(actual, Found::Str(s) if !s.contains(text)),
        Operator::StartsWith => matches!(actual, Found::Str(s) if s.starts_with(text)),
        Operator::NotStartsWith => matches!(actual, Found::Str(s) if !s.starts_with(text)),
        Operator::EndsWith => matches!(actual, Found::Str(s) if s.ends_with(text)),
        Operator::NotEndsWith => matches!(actual, Found::Str(s) if !s.ends_with(text)),
        Operator::Exists => !matches!(actual, Found::Absent | Found::Null),
        Operator::NotExists => matches!(actual, Found::Absent | Found::Null),
        Operator::IsTrue => matches!(actual, Found::Bool(true)),
        Operator::IsFalse => matches!(actual, Found::Bool(false)),
    }
}
