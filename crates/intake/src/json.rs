//! JSON text as JavaScript writes it: lone UTF-16 surrogates.
//!
//! JavaScript strings are UTF-16 and may hold half of a surrogate pair on its own (a string cut in
//! the middle of an emoji, for example), and `JSON.stringify` writes such a unit as an escape
//! (`"\ud800"`). JSON allows the escape, but a Rust string cannot hold the unit, so `serde_json`
//! refuses the whole document. Segment forwards such events; so do we, with every lone surrogate
//! escape read as U+FFFD REPLACEMENT CHARACTER (what a UTF-16 decoder yields for it). Escaped
//! pairs that form one character are kept as they are.

use std::borrow::Cow;

/// The four hex digits of a `\u` escape at `at` (the index of the backslash), if there are four.
fn escape_unit(bytes: &[u8], at: usize) -> Option<u16> {
    if bytes.get(at + 1) != Some(&b'u') {
        return None;
    }
    let hex = bytes.get(at + 2..at + 6)?;
    let text = std::str::from_utf8(hex).ok()?;
    u16::from_str_radix(text, 16).ok()
}

/// `text` with every `\u` escape of a lone UTF-16 surrogate replaced by `\ufffd`.
///
/// Only escapes are rewritten (a raw surrogate cannot occur in a Rust string); an escaped
/// backslash followed by `ud800` is text, not an escape, and is left alone. Borrows when nothing
/// needs replacing.
pub fn replace_lone_surrogates(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0usize;
    let mut idx = 0usize;
    while idx < bytes.len() {
        if bytes[idx] != b'\\' {
            idx += 1;
            continue;
        }
        let Some(unit) = escape_unit(bytes, idx) else {
            // Any other escape is two bytes (`\\`, `\"`, `\n`, …); a malformed one is left for the
            // JSON parser to report.
            idx += 2;
            continue;
        };
        let lone = match unit {
            0xD800..=0xDBFF => match escape_unit(bytes, idx + 6) {
                Some(0xDC00..=0xDFFF) => {
                    // A well-formed pair: keep both escapes.
                    idx += 12;
                    continue;
                }
                _ => true,
            },
            0xDC00..=0xDFFF => true,
            _ => false,
        };
        if lone {
            let buf = out.get_or_insert_with(|| String::with_capacity(text.len()));
            buf.push_str(&text[copied..idx]);
            buf.push_str("\\ufffd");
            copied = idx + 6;
        }
        idx += 6;
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut buf) => {
            buf.push_str(&text[copied..]);
            Cow::Owned(buf)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::replace_lone_surrogates;
    use serde_json::Value;

    fn read(text: &str) -> Value {
        serde_json::from_str(&replace_lone_surrogates(text)).unwrap()
    }

    #[test]
    fn lone_surrogates_become_the_replacement_character() {
        assert_eq!(read(r#"{"a":"x\ud800y"}"#)["a"], "x\u{fffd}y");
        assert_eq!(read(r#"{"a":"\uDC00"}"#)["a"], "\u{fffd}");
        // A high surrogate followed by something other than a low one.
        assert_eq!(read(r#"{"a":"\ud800\u0041"}"#)["a"], "\u{fffd}A");
        assert_eq!(read(r#"{"a":"\ud800\ud800"}"#)["a"], "\u{fffd}\u{fffd}");
        // At the very end of a string, and in a key.
        assert_eq!(read(r#"{"\ud83d":"\ud83d"}"#)["\u{fffd}"], "\u{fffd}");
    }

    #[test]
    fn pairs_and_escaped_backslashes_are_kept() {
        let pair = r#"{"a":"\ud83c\udf89"}"#;
        assert!(matches!(
            replace_lone_surrogates(pair),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(read(pair)["a"], "🎉");
        let text = r#"{"a":"\\ud800"}"#;
        assert_eq!(replace_lone_surrogates(text), text);
        assert_eq!(read(text)["a"], "\\ud800");
        // Truncated escapes are left for the parser to refuse.
        assert_eq!(replace_lone_surrogates(r#""\ud8"#), r#""\ud8"#);
    }
}
