//! Segment's path lookup (`get`): splitting a path into segments once at compile time and walking
//! an event with JavaScript's `current && current[segment]` semantics at evaluation time.

use std::borrow::Cow;

use serde_json::Value;

use crate::value::Val;

/// A path split into segments ahead of time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CompiledPath {
    segments: Vec<Segment>,
}

/// One path segment, with its array index pre-parsed when it is a canonical JavaScript index.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    key: String,
    index: Option<usize>,
}

impl CompiledPath {
    /// Splits `path` per Segment's rules (no `$.` removal; see [`CompiledPath::for_path_directive`]).
    pub(crate) fn new(path: &str) -> CompiledPath {
        let segments = split(path)
            .into_iter()
            .map(|key| Segment {
                index: array_index(&key),
                key,
            })
            .collect();
        CompiledPath { segments }
    }

    /// Removes the first occurrence of `$.` anywhere in the path (as `@path` and `@arrayPath` do),
    /// then splits it.
    pub(crate) fn for_path_directive(path: &str) -> CompiledPath {
        CompiledPath::new(&path.replacen("$.", "", 1))
    }

    /// Looks the path up in `root`, which may be any JSON value.
    pub(crate) fn get<'a>(&self, root: &'a Value) -> Val<'a> {
        let mut current = root;
        for (pos, seg) in self.segments.iter().enumerate() {
            // JavaScript's `current && current[seg]`: falsy values are returned as they are.
            if !crate::value::is_truthy(current) {
                return Val::from_ref(current);
            }
            match current {
                Value::Object(map) => match map.get(&seg.key) {
                    Some(next) => current = next,
                    None => return Val::Absent,
                },
                Value::Array(items) => {
                    if let Some(next) = seg.index.and_then(|i| items.get(i)) {
                        current = next;
                    } else if seg.key == "length" {
                        let len = Val::Num(items.len().into());
                        return self.rest_on_primitive(pos + 1, len);
                    } else {
                        return Val::Absent;
                    }
                }
                Value::String(s) => {
                    let found = string_property(s, seg);
                    return self.rest_on_primitive(pos + 1, found);
                }
                Value::Bool(_) | Value::Number(_) | Value::Null => return Val::Absent,
            }
        }
        Val::from_ref(current)
    }

    /// Continues a walk from a synthesised value (a string's character or a `length`).
    fn rest_on_primitive<'a>(&self, from: usize, mut current: Val<'a>) -> Val<'a> {
        for seg in &self.segments[from..] {
            current = match &current {
                Val::Str(s) if !s.is_empty() => string_property(s, seg),
                // A non-empty string index is always truthy; numbers have no such properties.
                Val::Num(n) if n.as_f64() != Some(0.0) => Val::Absent,
                _ => return current,
            };
        }
        current
    }
}

/// `str[seg]` in JavaScript: `length` (UTF-16 units) or the character at a UTF-16 index.
fn string_property<'a>(s: &str, seg: &Segment) -> Val<'a> {
    if seg.key == "length" {
        return Val::Num(s.encode_utf16().count().into());
    }
    match seg.index {
        Some(idx) => {
            let mut units = s.encode_utf16().skip(idx);
            match units.next() {
                Some(unit) => {
                    let text = char::decode_utf16([unit])
                        .next()
                        .and_then(Result::ok)
                        .map(String::from)
                        .unwrap_or_else(|| "\u{fffd}".to_owned());
                    Val::Str(Cow::Owned(text))
                }
                None => Val::Absent,
            }
        }
        None => Val::Absent,
    }
}

/// A canonical JavaScript array index (`0`, `12`; not `01`, `-1`, `1.0`).
fn array_index(key: &str) -> Option<usize> {
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if key.len() > 1 && key.starts_with('0') {
        return None;
    }
    key.parse::<u32>()
        .ok()
        .filter(|i| *i < u32::MAX)
        .map(|i| i as usize)
}

/// Splits on `.`, on `[` followed by a quote or digit, and on `]` preceded by a quote or digit;
/// drops empty segments and strips every `'` and `"`.
fn split(path: &str) -> Vec<String> {
    let chars: Vec<char> = path.chars().collect();
    let mut segments = Vec::new();
    let mut current = String::new();
    let is_quote_or_digit = |c: char| c == '\'' || c == '"' || c.is_ascii_digit();
    for (i, &c) in chars.iter().enumerate() {
        let boundary = match c {
            '.' => true,
            '[' => chars.get(i + 1).is_some_and(|n| is_quote_or_digit(*n)),
            ']' => i > 0 && is_quote_or_digit(chars[i - 1]),
            _ => false,
        };
        if boundary {
            if !current.is_empty() {
                segments.push(std::mem::take(&mut current));
            }
        } else if c != '\'' && c != '"' {
            current.push(c);
        }
    }
    if !current.is_empty() {
        segments.push(current);
    }
    // A segment made only of quotes collapses to the empty string and is dropped.
    segments.retain(|s| !s.is_empty());
    segments
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn splits_like_segment() {
        assert_eq!(split("a.b[0].c"), ["a", "b", "0", "c"]);
        assert_eq!(split("['a'].b"), ["a", "b"]);
        assert_eq!(split("[\"a\"].b"), ["a", "b"]);
        assert_eq!(split("foo[bar]"), ["foo[bar]"]);
        assert_eq!(split(""), Vec::<String>::new());
        assert_eq!(split("."), Vec::<String>::new());
    }

    #[test]
    fn walks_with_js_semantics() {
        let data = json!({"a": {"b": [10, 20]}, "s": "bar", "z": 0});
        let get = |p: &str| CompiledPath::new(p).get(&data).into_json();
        assert_eq!(get("a.b[1]"), Some(json!(20)));
        assert_eq!(get("a.b.length"), Some(json!(2)));
        assert_eq!(get("s.0"), Some(json!("b")));
        assert_eq!(get("s.length"), Some(json!(3)));
        assert_eq!(get("z.x"), Some(json!(0)));
        assert_eq!(get("nope.x"), None);
    }
}
