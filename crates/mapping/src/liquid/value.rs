//! Values as a liquidjs template sees them, borrowed from the event where possible, and the
//! JavaScript conversions between them (`String(x)`, `Number(x)`, `===`, `<`, liquidjs's
//! `stringify` and `toValue`).

use std::cmp::Ordering;
use std::rc::Rc;

use serde_json::{Map, Value};

use crate::value::js_format_f64;

/// A template value.
#[derive(Debug, Clone)]
pub(super) enum LVal<'a> {
    /// JavaScript `undefined`.
    Undef,
    /// JavaScript `null`.
    Null,
    Bool(bool),
    Num(f64),
    Str(Rc<str>),
    /// A string borrowed from the event.
    JStr(&'a str),
    Arr(Rc<Vec<LVal<'a>>>),
    /// An array borrowed from the event.
    JArr(&'a [Value]),
    /// An object from the event (objects are only ever borrowed; `==` compares identity).
    Obj(&'a Map<String, Value>),
    /// The `nil` literal (equal to `null` and `undefined`).
    NilDrop,
    /// The `empty` literal.
    EmptyDrop,
    /// The `blank` literal.
    BlankDrop,
    /// The `block` variable inside `{% block %}`.
    BlockDrop,
}

/// An array, owned or borrowed.
#[derive(Clone, Copy)]
pub(super) enum ArrView<'b, 'a> {
    Owned(&'b [LVal<'a>]),
    Json(&'a [Value]),
}

impl<'b, 'a> ArrView<'b, 'a> {
    pub(super) fn len(self) -> usize {
        match self {
            ArrView::Owned(v) => v.len(),
            ArrView::Json(v) => v.len(),
        }
    }

    pub(super) fn get(self, i: usize) -> Option<LVal<'a>> {
        match self {
            ArrView::Owned(v) => v.get(i).cloned(),
            ArrView::Json(v) => v.get(i).map(LVal::from_json),
        }
    }

    pub(super) fn iter(self) -> impl Iterator<Item = LVal<'a>> + 'b {
        let n = self.len();
        (0..n).filter_map(move |i| self.get(i))
    }

    pub(super) fn to_vec(self) -> Vec<LVal<'a>> {
        match self {
            ArrView::Owned(v) => v.to_vec(),
            ArrView::Json(v) => v.iter().map(LVal::from_json).collect(),
        }
    }
}

/// JavaScript's white space and line terminators (what `\s` and `trim` match).
pub(super) fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

/// The length of a string in UTF-16 units.
pub(super) fn u16_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().map(char::len_utf16).sum()
    }
}

/// Formats a number like JavaScript's `String(n)`.
pub(super) fn num_to_string(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        // Whole numbers print without a fraction; `-0` prints as `0`.
        if n == 0.0 {
            return "0".to_owned();
        }
        return format!("{}", n as i64);
    }
    js_format_f64(n)
}

/// JavaScript's `Number(string)`.
pub(super) fn str_to_number(s: &str) -> f64 {
    let t = s.trim_matches(is_js_space);
    if t.is_empty() {
        return 0.0;
    }
    let radix = |prefix: [&str; 2], radix: u32| -> Option<f64> {
        let body = t
            .strip_prefix(prefix[0])
            .or_else(|| t.strip_prefix(prefix[1]))?;
        if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
            return Some(f64::NAN);
        }
        let mut v = 0f64;
        for c in body.chars() {
            v = v * f64::from(radix) + f64::from(c.to_digit(radix).unwrap_or(0));
        }
        Some(v)
    };
    if let Some(v) = radix(["0x", "0X"], 16)
        .or_else(|| radix(["0o", "0O"], 8))
        .or_else(|| radix(["0b", "0B"], 2))
    {
        return v;
    }
    let unsigned = t.strip_prefix(['+', '-']).unwrap_or(t);
    if unsigned == "Infinity" {
        return if t.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
    }
    // A decimal literal: digits, an optional fraction, an optional exponent.
    let b = unsigned.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let int_digits = digits(&mut i);
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        frac_digits = digits(&mut i);
    }
    if int_digits + frac_digits == 0 {
        return f64::NAN;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return f64::NAN;
        }
    }
    if i != b.len() {
        return f64::NAN;
    }
    t.parse::<f64>().unwrap_or(f64::NAN)
}

impl<'a> LVal<'a> {
    /// Wraps an event value.
    pub(super) fn from_json(v: &'a Value) -> LVal<'a> {
        match v {
            Value::Null => LVal::Null,
            Value::Bool(b) => LVal::Bool(*b),
            Value::Number(n) => LVal::Num(n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => LVal::JStr(s),
            Value::Array(a) => LVal::JArr(a),
            Value::Object(o) => LVal::Obj(o),
        }
    }

    pub(super) fn string(s: impl Into<Rc<str>>) -> LVal<'a> {
        LVal::Str(s.into())
    }

    pub(super) fn array(items: Vec<LVal<'a>>) -> LVal<'a> {
        LVal::Arr(Rc::new(items))
    }

    /// liquidjs's `toValue`: the drops become their primitive values.
    pub(super) fn to_value(&self) -> LVal<'a> {
        match self {
            LVal::NilDrop => LVal::Null,
            LVal::EmptyDrop | LVal::BlankDrop => LVal::Str(Rc::from("")),
            other => other.clone(),
        }
    }

    pub(super) fn is_nil(&self) -> bool {
        matches!(self, LVal::Undef | LVal::Null)
    }

    pub(super) fn is_drop(&self) -> bool {
        matches!(
            self,
            LVal::NilDrop | LVal::EmptyDrop | LVal::BlankDrop | LVal::BlockDrop
        )
    }

    /// Whether the value is a drop with comparison methods (`nil`, `empty`, `blank`).
    pub(super) fn is_comparable(&self) -> bool {
        matches!(self, LVal::NilDrop | LVal::EmptyDrop | LVal::BlankDrop)
    }

    pub(super) fn as_str(&self) -> Option<&str> {
        match self {
            LVal::Str(s) => Some(s),
            LVal::JStr(s) => Some(s),
            _ => None,
        }
    }

    pub(super) fn as_array(&self) -> Option<ArrView<'_, 'a>> {
        match self {
            LVal::Arr(v) => Some(ArrView::Owned(v)),
            LVal::JArr(v) => Some(ArrView::Json(v)),
            _ => None,
        }
    }

    /// Whether the value is a JavaScript object (arrays and drops included).
    pub(super) fn is_object(&self) -> bool {
        matches!(self, LVal::Arr(_) | LVal::JArr(_) | LVal::Obj(_)) || self.is_drop()
    }

    /// liquidjs truthiness: only `false`, `null` and `undefined` are falsy (after `toValue`).
    pub(super) fn truthy(&self) -> bool {
        !matches!(
            self,
            LVal::Bool(false) | LVal::Undef | LVal::Null | LVal::NilDrop
        )
    }

    /// JavaScript truthiness.
    pub(super) fn js_truthy(&self) -> bool {
        match self {
            LVal::Undef | LVal::Null => false,
            LVal::Bool(b) => *b,
            LVal::Num(n) => *n != 0.0 && !n.is_nan(),
            LVal::Str(_) | LVal::JStr(_) => self.as_str().is_some_and(|s| !s.is_empty()),
            _ => true,
        }
    }

    /// liquidjs's `stringify`: `toValue`, nil is `""`, arrays concatenate their items.
    pub(super) fn write_liquid(&self, out: &mut String) {
        match self {
            LVal::Undef | LVal::Null | LVal::NilDrop | LVal::EmptyDrop | LVal::BlankDrop => {}
            LVal::Str(s) => out.push_str(s),
            LVal::JStr(s) => out.push_str(s),
            LVal::Arr(items) => items.iter().for_each(|v| v.write_liquid(out)),
            LVal::JArr(items) => items.iter().for_each(|v| write_liquid_json(v, out)),
            other => other.write_js(out),
        }
    }

    pub(super) fn liquid_string(&self) -> Rc<str> {
        match self {
            LVal::Str(s) => s.clone(),
            other => {
                let mut out = String::new();
                other.write_liquid(&mut out);
                Rc::from(out)
            }
        }
    }

    /// JavaScript's `String(x)`.
    pub(super) fn write_js(&self, out: &mut String) {
        match self {
            LVal::Undef => out.push_str("undefined"),
            LVal::Null => out.push_str("null"),
            LVal::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            LVal::Num(n) => out.push_str(&num_to_string(*n)),
            LVal::Str(s) => out.push_str(s),
            LVal::JStr(s) => out.push_str(s),
            LVal::Arr(items) => {
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    if !v.is_nil() {
                        v.write_js(out);
                    }
                }
            }
            LVal::JArr(items) => {
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    if !v.is_null() {
                        LVal::from_json(v).write_js(out);
                    }
                }
            }
            LVal::Obj(_) | LVal::NilDrop | LVal::EmptyDrop | LVal::BlankDrop | LVal::BlockDrop => {
                out.push_str("[object Object]")
            }
        }
    }

    pub(super) fn js_string(&self) -> Rc<str> {
        match self {
            LVal::Str(s) => s.clone(),
            other => {
                let mut out = String::new();
                other.write_js(&mut out);
                Rc::from(out)
            }
        }
    }

    /// JavaScript's `ToPrimitive` for comparisons and arithmetic: objects become strings, the
    /// drops their `valueOf`.
    pub(super) fn to_primitive(&self) -> LVal<'a> {
        match self {
            LVal::NilDrop => LVal::Null,
            LVal::EmptyDrop | LVal::BlankDrop => LVal::Str(Rc::from("")),
            LVal::Arr(_) | LVal::JArr(_) | LVal::Obj(_) | LVal::BlockDrop => {
                LVal::Str(self.js_string())
            }
            other => other.clone(),
        }
    }

    /// JavaScript's `Number(x)`.
    pub(super) fn js_number(&self) -> f64 {
        match self.to_primitive() {
            LVal::Undef => f64::NAN,
            LVal::Null => 0.0,
            LVal::Bool(b) => f64::from(u8::from(b)),
            LVal::Num(n) => n,
            LVal::Str(s) => str_to_number(&s),
            LVal::JStr(s) => str_to_number(s),
            _ => f64::NAN,
        }
    }

    /// liquidjs's `toNumber`: `Number(toValue(x)) || 0`.
    pub(super) fn liquid_number(&self) -> f64 {
        let n = self.js_number();
        if n.is_nan() || n == 0.0 { 0.0 } else { n }
    }

    /// The UTF-16 length of a string or the length of an array.
    pub(super) fn length(&self) -> Option<usize> {
        if let Some(s) = self.as_str() {
            return Some(u16_len(s));
        }
        self.as_array().map(ArrView::len)
    }
}

fn write_liquid_json(v: &Value, out: &mut String) {
    match v {
        Value::Null => {}
        Value::String(s) => out.push_str(s),
        Value::Array(items) => items.iter().for_each(|v| write_liquid_json(v, out)),
        other => LVal::from_json(other).write_js(out),
    }
}

/// Compares strings by UTF-16 code units, as JavaScript does.
pub(super) fn cmp_utf16(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        return a.cmp(b);
    }
    a.encode_utf16().cmp(b.encode_utf16())
}

/// JavaScript's `===`, with liquidjs's element-wise comparison of arrays.
pub(super) fn strict_equals(l: &LVal<'_>, r: &LVal<'_>) -> bool {
    match (l, r) {
        (LVal::Undef, LVal::Undef) | (LVal::Null, LVal::Null) => true,
        (LVal::Bool(a), LVal::Bool(b)) => a == b,
        (LVal::Num(a), LVal::Num(b)) => a == b,
        (LVal::Obj(a), LVal::Obj(b)) => std::ptr::eq(*a, *b),
        (LVal::BlockDrop, LVal::BlockDrop) => true,
        _ => match (l.as_str(), r.as_str()) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        },
    }
}

/// JavaScript's abstract relational comparison (`None` when a side is `NaN`).
pub(super) fn js_compare(l: &LVal<'_>, r: &LVal<'_>) -> Option<Ordering> {
    let (pl, pr) = (l.to_primitive(), r.to_primitive());
    if let (Some(a), Some(b)) = (pl.as_str(), pr.as_str()) {
        return Some(cmp_utf16(a, b));
    }
    pl.js_number().partial_cmp(&pr.js_number())
}
