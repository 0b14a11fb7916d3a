//! JavaScript number semantics the validator reproduces: `Number(string)`, `String(number)` and
//! loose equality of JSON values, so coercion and messages match Segment's Node.js runtime.

use serde_json::{Number, Value};

/// JavaScript's `ToNumber` applied to a string; `None` stands for `NaN`.
///
/// Surrounding white space is ignored, the empty string is `0`, `Infinity` with an optional sign,
/// decimal literals (`1`, `-1.5`, `.5`, `5.`, `1e3`) and `0x`/`0o`/`0b` integers are accepted.
pub(crate) fn to_number(s: &str) -> Option<f64> {
    let t = s.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if t.is_empty() {
        return Some(0.0);
    }
    match t {
        "Infinity" | "+Infinity" => return Some(f64::INFINITY),
        "-Infinity" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    let lower_prefix = t.get(..2).map(str::to_ascii_lowercase);
    let radix = match lower_prefix.as_deref() {
        Some("0x") => Some(16),
        Some("0o") => Some(8),
        Some("0b") => Some(2),
        _ => None,
    };
    if let Some(radix) = radix {
        let digits = &t[2..];
        if digits.is_empty() {
            return None;
        }
        let mut acc = 0f64;
        for c in digits.chars() {
            acc = acc * f64::from(radix) + f64::from(c.to_digit(radix)?);
        }
        return Some(acc);
    }
    if !is_decimal_literal(t) {
        return None;
    }
    t.parse::<f64>().ok()
}

/// Whether `t` is a JavaScript `StrDecimalLiteral` without `Infinity`.
fn is_decimal_literal(t: &str) -> bool {
    let bytes = t.as_bytes();
    let mut i = 0;
    if matches!(bytes.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let int_start = i;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    let mut n_digits = i - int_start;
    if i < bytes.len() && bytes[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        n_digits += i - frac_start;
    }
    if n_digits == 0 {
        return false;
    }
    if i < bytes.len() && matches!(bytes[i], b'e' | b'E') {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == bytes.len()
}

/// A finite number as a JSON value, integral values as integers so they print like JavaScript
/// (`1000`, not `1000.0`); `None` for `NaN` and infinities, which JSON cannot hold.
pub(crate) fn number_value(n: f64) -> Option<Value> {
    if !n.is_finite() {
        return None;
    }
    if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
        // The value is integral and exactly representable, so the cast is lossless.
        return Some(Value::Number(Number::from(n as i64)));
    }
    Number::from_f64(n).map(Value::Number)
}

/// A JSON number as an `f64` (large integers lose precision as they do in JavaScript).
pub(crate) fn as_f64(n: &Number) -> f64 {
    n.as_f64().unwrap_or(f64::NAN)
}

/// JavaScript's `String(number)`.
pub(crate) fn number_to_string(n: f64) -> String {
    if n.is_nan() {
        return "NaN".to_owned();
    }
    if n.is_infinite() {
        return if n > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    if n == 0.0 {
        return "0".to_owned();
    }
    // Rust's `{:e}` prints the shortest round-tripping digits, as JavaScript does; only the layout
    // differs, so rebuild it with the ECMAScript `Number::toString` rules.
    let sci = format!("{:e}", n.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let k = digits.len() as i32;
    let point = exponent + 1;
    let mut out = String::new();
    if n < 0.0 {
        out.push('-');
    }
    if k <= point && point <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (point - k) as usize));
    } else if 0 < point && point <= 21 {
        out.push_str(&digits[..point as usize]);
        out.push('.');
        out.push_str(&digits[point as usize..]);
    } else if -6 < point && point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-point) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if point > 0 { '+' } else { '-' });
        out.push_str(&(point - 1).abs().to_string());
    }
    out
}

/// JavaScript's `String(number)` for a JSON number.
pub(crate) fn json_number_to_string(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    number_to_string(as_f64(n))
}

/// `JSON.stringify` of a value, with numbers printed the JavaScript way.
pub(crate) fn stringify(value: &Value) -> String {
    match value {
        Value::Number(n) => json_number_to_string(n),
        other => other.to_string(),
    }
}

/// Deep equality as JSON Schema's `enum` and `const` define it: numbers compare by value.
pub(crate) fn deep_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => as_f64(x) == as_f64(y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| deep_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| deep_equal(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_number_follows_javascript() {
        assert_eq!(to_number("12"), Some(12.0));
        assert_eq!(to_number(" 12 "), Some(12.0));
        assert_eq!(to_number("-1.5"), Some(-1.5));
        assert_eq!(to_number(".5"), Some(0.5));
        assert_eq!(to_number("5."), Some(5.0));
        assert_eq!(to_number("1e3"), Some(1000.0));
        assert_eq!(to_number("0x1A"), Some(26.0));
        assert_eq!(to_number("0b101"), Some(5.0));
        assert_eq!(to_number(""), Some(0.0));
        assert_eq!(to_number("   "), Some(0.0));
        assert_eq!(to_number("-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(to_number("abc"), None);
        assert_eq!(to_number("1,5"), None);
        assert_eq!(to_number("inf"), None);
        assert_eq!(to_number("NaN"), None);
        assert_eq!(to_number("-0x10"), None);
        assert_eq!(to_number("e5"), None);
        assert_eq!(to_number("."), None);
    }

    #[test]
    fn number_to_string_follows_javascript() {
        assert_eq!(number_to_string(1.0), "1");
        assert_eq!(number_to_string(-1.5), "-1.5");
        assert_eq!(number_to_string(123456.789), "123456.789");
        assert_eq!(number_to_string(1e21), "1e+21");
        assert_eq!(number_to_string(1.5e-7), "1.5e-7");
        assert_eq!(number_to_string(0.000001), "0.000001");
        assert_eq!(number_to_string(1e20), "100000000000000000000");
        assert_eq!(number_to_string(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(number_to_string(-0.0), "0");
    }

    #[test]
    fn number_value_prints_integers_without_fraction() {
        assert_eq!(
            number_value(1000.0).map(|v| v.to_string()),
            Some("1000".to_owned())
        );
        assert_eq!(
            number_value(2.5).map(|v| v.to_string()),
            Some("2.5".to_owned())
        );
        assert_eq!(number_value(f64::INFINITY), None);
    }
}
