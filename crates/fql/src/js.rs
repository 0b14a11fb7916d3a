//! JavaScript's `String(number)` and `Number(string)` conversions, which Segment's matcher applies to
//! condition values (`= 123` compares with the string `"123"`, `< "10"` with the number 10).

/// Renders `n` as JavaScript's `String(n)` does (`5`, `1.5`, `1e+21`, `1e-7`, `NaN`).
pub(crate) fn number_to_string(n: f64) -> String {
    if n.is_nan() {
        return "NaN".to_owned();
    }
    if n.is_infinite() {
        return if n > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    if n == 0.0 {
        // JavaScript prints negative zero as "0".
        return "0".to_owned();
    }
    let magnitude = n.abs();
    if (1e-6..1e21).contains(&magnitude) {
        // Rust prints the shortest round-tripping digits without an exponent, as JavaScript does
        // in this range.
        return format!("{n}");
    }
    let exponential = format!("{n:e}");
    match exponential.split_once('e') {
        Some((mantissa, exponent)) if !exponent.starts_with('-') => {
            format!("{mantissa}e+{exponent}")
        }
        _ => exponential,
    }
}

/// Converts `s` as JavaScript's `Number(s)` does: surrounding whitespace ignored, empty is 0,
/// `0x`/`0o`/`0b` prefixes, `Infinity`, and NaN for anything else that is not a decimal literal.
pub(crate) fn string_to_number(s: &str) -> f64 {
    let t = s.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if t.is_empty() {
        return 0.0;
    }
    match t {
        "Infinity" | "+Infinity" => return f64::INFINITY,
        "-Infinity" => return f64::NEG_INFINITY,
        _ => {}
    }
    for (prefixes, radix) in [(["0x", "0X"], 16), (["0o", "0O"], 8), (["0b", "0B"], 2)] {
        if let Some(digits) = prefixes.iter().find_map(|p| t.strip_prefix(p)) {
            return radix_to_number(digits, radix);
        }
    }
    let decimal_chars = t
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if decimal_chars {
        t.parse().unwrap_or(f64::NAN)
    } else {
        f64::NAN
    }
}

fn radix_to_number(digits: &str, radix: u32) -> f64 {
    if digits.is_empty() {
        return f64::NAN;
    }
    let mut n = 0.0_f64;
    for c in digits.chars() {
        match c.to_digit(radix) {
            Some(d) => n = n * f64::from(radix) + f64::from(d),
            None => return f64::NAN,
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_render_like_javascript() {
        let cases = [
            (5.0, "5"),
            (-5.0, "-5"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (-0.0, "0"),
            (100.0, "100"),
            (1e21, "1e+21"),
            (1.5e-7, "1.5e-7"),
            (1e-6, "0.000001"),
            (1e-7, "1e-7"),
            (1e20, "100000000000000000000"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (n, expected) in cases {
            assert_eq!(number_to_string(n), expected, "String({n})");
        }
    }

    #[test]
    fn strings_convert_like_javascript() {
        let cases = [
            ("10", 10.0),
            (" 10 ", 10.0),
            ("", 0.0),
            ("1.5", 1.5),
            (".5", 0.5),
            ("1e3", 1000.0),
            ("0x10", 16.0),
            ("0b11", 3.0),
            ("-Infinity", f64::NEG_INFINITY),
        ];
        for (s, expected) in cases {
            assert_eq!(string_to_number(s), expected, "Number({s:?})");
        }
        for s in ["abc", "1,5", "inf", "NaN", "0x", "1 2", "true"] {
            assert!(string_to_number(s).is_nan(), "Number({s:?}) should be NaN");
        }
    }
}
