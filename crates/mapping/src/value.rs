//! The three-state value that evaluation produces, plus the JavaScript-compatible conversions
//! (type names, truthiness, `String(x)`, `JSON.stringify`) that Segment's behaviour depends on.
//!
//! Evaluation borrows from the event wherever it can: a path lookup yields [`Val::Ref`] pointing
//! into the caller's `serde_json::Value`, and the final output clones each borrowed subtree once.

use std::borrow::Cow;

use serde_json::{Map, Number, Value};

/// A resolved value: JavaScript's `undefined` ([`Val::Absent`]), `null`, or JSON data that is
/// either owned or borrowed from the event.
///
/// Owned objects and arrays may hold [`Val::Absent`] members, exactly like JavaScript objects can
/// hold `undefined`; they are pruned (objects) or turned into `null` (arrays) only at the end.
#[derive(Debug, Clone)]
pub(crate) enum Val<'a> {
    /// No value (JavaScript `undefined`).
    Absent,
    /// JSON `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A number.
    Num(Number),
    /// A string.
    Str(Cow<'a, str>),
    /// An array whose elements may be absent.
    Arr(Vec<Val<'a>>),
    /// An object, in insertion order, whose members may be absent.
    Obj(Vec<(Cow<'a, str>, Val<'a>)>),
    /// A JSON value borrowed from the event or the mapping; never `Value::Null` (see [`Val::from_ref`]).
    Ref(&'a Value),
}

/// The JavaScript "real type" of a value, as Segment's `realTypeOf` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Undefined,
    Null,
    Boolean,
    Number,
    String,
    Array,
    Object,
}

impl Kind {
    /// The lowercase name used in Segment's messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Undefined => "undefined",
            Kind::Null => "null",
            Kind::Boolean => "boolean",
            Kind::Number => "number",
            Kind::String => "string",
            Kind::Array => "array",
            Kind::Object => "object",
        }
    }

    /// The name JavaScript's `typeof` operator reports (arrays and `null` are `object`).
    pub(crate) fn typeof_name(self) -> &'static str {
        match self {
            Kind::Null | Kind::Array => "object",
            other => other.name(),
        }
    }
}

/// The real type of a JSON value.
pub(crate) fn kind_of(v: &Value) -> Kind {
    match v {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Boolean,
        Value::Number(_) => Kind::Number,
        Value::String(_) => Kind::String,
        Value::Array(_) => Kind::Array,
        Value::Object(_) => Kind::Object,
    }
}

/// JavaScript truthiness of a raw JSON value (`null`, `false`, `0` and `""` are falsy).
pub(crate) fn is_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// JavaScript truthiness of an optional option (a missing key is falsy).
pub(crate) fn opt_truthy(v: Option<&Value>) -> bool {
    v.is_some_and(is_truthy)
}

impl<'a> Val<'a> {
    /// Wraps a borrowed JSON value, mapping `null` to [`Val::Null`].
    pub(crate) fn from_ref(v: &'a Value) -> Val<'a> {
        match v {
            Value::Null => Val::Null,
            other => Val::Ref(other),
        }
    }

    /// An owned string value.
    pub(crate) fn string(s: String) -> Val<'a> {
        Val::Str(Cow::Owned(s))
    }

    /// The real type of this value.
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Val::Absent => Kind::Undefined,
            Val::Null => Kind::Null,
            Val::Bool(_) => Kind::Boolean,
            Val::Num(_) => Kind::Number,
            Val::Str(_) => Kind::String,
            Val::Arr(_) => Kind::Array,
            Val::Obj(_) => Kind::Object,
            Val::Ref(v) => kind_of(v),
        }
    }

    /// True for `undefined` and `null`.
    pub(crate) fn is_nullish(&self) -> bool {
        matches!(self.kind(), Kind::Undefined | Kind::Null)
    }

    /// The string content when this is a string.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            Val::Ref(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    /// Consumes the value and returns its string content when it is a string.
    pub(crate) fn into_str(self) -> Option<Cow<'a, str>> {
        match self {
            Val::Str(s) => Some(s),
            Val::Ref(Value::String(s)) => Some(Cow::Borrowed(s)),
            _ => None,
        }
    }

    /// Object members (borrowed members stay borrowed), or `None` when not an object.
    pub(crate) fn into_entries(self) -> Option<Vec<(Cow<'a, str>, Val<'a>)>> {
        match self {
            Val::Obj(entries) => Some(entries),
            Val::Ref(Value::Object(map)) => Some(
                map.iter()
                    .map(|(k, v)| (Cow::Borrowed(k.as_str()), Val::from_ref(v)))
                    .collect(),
            ),
            _ => None,
        }
    }

    /// Array elements (borrowed elements stay borrowed), or `None` when not an array.
    pub(crate) fn into_items(self) -> Option<Vec<Val<'a>>> {
        match self {
            Val::Arr(items) => Some(items),
            Val::Ref(Value::Array(items)) => Some(items.iter().map(Val::from_ref).collect()),
            _ => None,
        }
    }

    /// Detaches the value from every borrow by cloning borrowed data.
    pub(crate) fn into_owned(self) -> Val<'static> {
        match self {
            Val::Absent => Val::Absent,
            Val::Null => Val::Null,
            Val::Bool(b) => Val::Bool(b),
            Val::Num(n) => Val::Num(n),
            Val::Str(s) => Val::Str(Cow::Owned(s.into_owned())),
            Val::Arr(items) => Val::Arr(items.into_iter().map(Val::into_owned).collect()),
            Val::Obj(entries) => Val::Obj(
                entries
                    .into_iter()
                    .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned()))
                    .collect(),
            ),
            Val::Ref(v) => Val::owned_from_value(v.clone()),
        }
    }

    /// Converts an owned JSON value into an owned [`Val`].
    pub(crate) fn owned_from_value(v: Value) -> Val<'static> {
        match v {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(b),
            Value::Number(n) => Val::Num(n),
            Value::String(s) => Val::Str(Cow::Owned(s)),
            Value::Array(items) => Val::Arr(items.into_iter().map(Val::owned_from_value).collect()),
            Value::Object(map) => Val::Obj(
                map.into_iter()
                    .map(|(k, v)| (Cow::Owned(k), Val::owned_from_value(v)))
                    .collect(),
            ),
        }
    }

    /// Converts to JSON, pruning absent object members and turning absent array elements into
    /// `null` (Segment's `removeUndefined` followed by serialisation). `None` means absent.
    pub(crate) fn into_json(self) -> Option<Value> {
        match self {
            Val::Absent => None,
            Val::Null => Some(Value::Null),
            Val::Bool(b) => Some(Value::Bool(b)),
            Val::Num(n) => Some(Value::Number(n)),
            Val::Str(s) => Some(Value::String(s.into_owned())),
            Val::Ref(v) => Some(v.clone()),
            Val::Arr(items) => Some(Value::Array(
                items
                    .into_iter()
                    .map(|item| item.into_json().unwrap_or(Value::Null))
                    .collect(),
            )),
            Val::Obj(entries) => {
                let mut map = Map::with_capacity(entries.len());
                for (k, v) in entries {
                    if let Some(v) = v.into_json() {
                        map.insert(k.into_owned(), v);
                    }
                }
                Some(Value::Object(map))
            }
        }
    }

    /// Appends JavaScript's `String(value)` (as used by template interpolation): `null` and
    /// `undefined` give `""` (template semantics), objects `[object Object]`, arrays their
    /// elements joined by `,`.
    pub(crate) fn write_js_string(&self, out: &mut String) {
        match self {
            Val::Absent | Val::Null => {}
            Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Val::Num(n) => write_js_number(n, out),
            Val::Str(s) => out.push_str(s),
            Val::Ref(v) => write_js_string_value(v, out),
            Val::Obj(_) => out.push_str("[object Object]"),
            Val::Arr(items) => {
                for (idx, item) in items.iter().enumerate() {
                    if idx > 0 {
                        out.push(',');
                    }
                    item.write_js_string(out);
                }
            }
        }
    }

    /// JavaScript's `JSON.stringify(value)`; `None` when JavaScript would return `undefined`.
    pub(crate) fn js_json(&self) -> Option<String> {
        let mut out = String::new();
        if self.write_js_json(&mut out) {
            Some(out)
        } else {
            None
        }
    }

    /// Writes `JSON.stringify` output; returns false (writing nothing) for an absent value.
    fn write_js_json(&self, out: &mut String) -> bool {
        match self {
            Val::Absent => return false,
            Val::Null => out.push_str("null"),
            Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Val::Num(n) => write_js_number(n, out),
            Val::Str(s) => write_json_string(s, out),
            Val::Ref(v) => write_js_json_value(v, out),
            Val::Arr(items) => {
                out.push('[');
                for (idx, item) in items.iter().enumerate() {
                    if idx > 0 {
                        out.push(',');
                    }
                    if !item.write_js_json(out) {
                        out.push_str("null");
                    }
                }
                out.push(']');
            }
            Val::Obj(entries) => {
                out.push('{');
                let mut first = true;
                for (k, v) in entries {
                    if matches!(v, Val::Absent) {
                        continue;
                    }
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    write_json_string(k, out);
                    out.push(':');
                    v.write_js_json(out);
                }
                out.push('}');
            }
        }
        true
    }

    /// JavaScript loose equality with `""` (`value == ''`), used by `@if blank`.
    pub(crate) fn loosely_equals_empty_string(&self) -> bool {
        match self {
            Val::Absent | Val::Null => false,
            Val::Bool(b) => !*b,
            Val::Num(n) => n.as_f64() == Some(0.0),
            Val::Str(s) => s.is_empty(),
            Val::Obj(_) => false,
            Val::Arr(_) => {
                let mut s = String::new();
                self.write_js_string(&mut s);
                s.is_empty()
            }
            Val::Ref(v) => match v {
                Value::Null => false,
                Value::Bool(b) => !*b,
                Value::Number(n) => n.as_f64() == Some(0.0),
                Value::String(s) => s.is_empty(),
                Value::Object(_) => false,
                Value::Array(_) => {
                    let mut s = String::new();
                    write_js_string_value(v, &mut s);
                    s.is_empty()
                }
            },
        }
    }
}

/// `String(value)` for a borrowed JSON value (template semantics for `null`).
pub(crate) fn write_js_string_value(v: &Value, out: &mut String) {
    match v {
        Value::Null => {}
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_js_number(n, out),
        Value::String(s) => out.push_str(s),
        Value::Object(_) => out.push_str("[object Object]"),
        Value::Array(items) => {
            for (idx, item) in items.iter().enumerate() {
                if idx > 0 {
                    out.push(',');
                }
                write_js_string_value(item, out);
            }
        }
    }
}

/// `JSON.stringify` for a borrowed JSON value.
fn write_js_json_value(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_js_number(n, out),
        Value::String(s) => write_json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (idx, item) in items.iter().enumerate() {
                if idx > 0 {
                    out.push(',');
                }
                write_js_json_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (idx, (k, v)) in map.iter().enumerate() {
                if idx > 0 {
                    out.push(',');
                }
                write_json_string(k, out);
                out.push(':');
                write_js_json_value(v, out);
            }
            out.push('}');
        }
    }
}

/// Writes a JSON string literal with the same escapes as `JSON.stringify`.
fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes a number the way JavaScript's `Number.prototype.toString` does.
pub(crate) fn write_js_number(n: &Number, out: &mut String) {
    if let Some(i) = n.as_i64() {
        out.push_str(&i.to_string());
    } else if let Some(u) = n.as_u64() {
        out.push_str(&u.to_string());
    } else if let Some(f) = n.as_f64() {
        out.push_str(&js_format_f64(f));
    }
}

/// Formats a finite `f64` like JavaScript (shortest round-trip digits, exponent outside
/// `1e-7 .. 1e21`).
pub(crate) fn js_format_f64(f: f64) -> String {
    if f == 0.0 {
        return "0".to_owned();
    }
    if !f.is_finite() {
        return if f.is_nan() {
            "NaN".to_owned()
        } else if f > 0.0 {
            "Infinity".to_owned()
        } else {
            "-Infinity".to_owned()
        };
    }
    // Rust's `{:e}` yields the shortest round-trip digits as `d.ddde<exp>`.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = match sci.split_once('e') {
        Some(parts) => parts,
        None => return f.to_string(),
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let k = digits.len() as i32;
    let n = exp + 1;
    let mut out = String::new();
    if f < 0.0 {
        out.push('-');
    }
    if k <= n && n <= 21 {
        out.push_str(&digits);
        for _ in 0..(n - k) {
            out.push('0');
        }
    } else if 0 < n && n <= 21 {
        let (int, frac) = digits.split_at(n as usize);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        for _ in 0..(-n) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('e');
        out.push(if n > 0 { '+' } else { '-' });
        out.push_str(&(n - 1).abs().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn js_number_formatting_matches_javascript() {
        assert_eq!(js_format_f64(1.0), "1");
        assert_eq!(js_format_f64(0.5), "0.5");
        assert_eq!(js_format_f64(-2.25), "-2.25");
        assert_eq!(js_format_f64(1e21), "1e+21");
        assert_eq!(js_format_f64(1.5e-7), "1.5e-7");
        assert_eq!(js_format_f64(0.000001), "0.000001");
        assert_eq!(js_format_f64(123456789.125), "123456789.125");
        assert_eq!(js_format_f64(1e20), "100000000000000000000");
    }

    #[test]
    fn loose_blank_equality() {
        let arr = serde_json::json!(["", null, []]);
        assert!(!Val::from_ref(&arr).loosely_equals_empty_string());
        let arr = serde_json::json!([[]]);
        assert!(Val::from_ref(&arr).loosely_equals_empty_string());
        assert!(Val::Bool(false).loosely_equals_empty_string());
        assert!(!Val::string(" ".into()).loosely_equals_empty_string());
    }
}

/// Whether `key` is a JavaScript array index (`"0"`, `"12"`; not `"012"`, `"-1"`, `"1.5"` or
/// 2³² − 1 and above): the keys JavaScript objects list first.
fn is_array_index(key: &str) -> bool {
    match key.as_bytes() {
        [b'0'] => true,
        [b'1'..=b'9', rest @ ..] if rest.len() < 10 && rest.iter().all(u8::is_ascii_digit) => {
            key.parse::<u64>().is_ok_and(|n| n < 4_294_967_295)
        }
        _ => false,
    }
}

/// Puts the members of every object in `value` in the order a JavaScript object lists them:
/// array-index keys first in ascending numeric order, then the others in insertion order.
///
/// Segment's result is a JavaScript object, so this is the order its JSON has. Objects without
/// such keys (nearly all) are left as they are.
pub(crate) fn order_keys_as_javascript(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(order_keys_as_javascript),
        Value::Object(map) => {
            if map.keys().any(|k| is_array_index(k)) {
                type Members = Vec<(String, Value)>;
                let (mut indexes, rest): (Members, Members) = std::mem::take(map)
                    .into_iter()
                    .partition(|(k, _)| is_array_index(k));
                indexes.sort_by_key(|(k, _)| k.parse::<u64>().unwrap_or(0));
                map.extend(indexes);
                map.extend(rest);
            }
            map.values_mut().for_each(order_keys_as_javascript);
        }
        _ => {}
    }
}

#[cfg(test)]
mod key_order_tests {
    use super::order_keys_as_javascript;
    use serde_json::json;

    #[test]
    fn array_index_keys_come_first_in_numeric_order() {
        let mut v = json!({"b": 1, "10": 2, "a": {"z": 0, "2": 1, "012": 2, "1": 3}, "2": [{"x": 1, "0": 2}], "-1": 4, "4294967295": 5});
        order_keys_as_javascript(&mut v);
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"2":[{"0":2,"x":1}],"10":2,"b":1,"a":{"1":3,"2":1,"z":0,"012":2},"-1":4,"4294967295":5}"#
        );
    }
}
