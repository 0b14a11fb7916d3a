//! JSON objects read one level deep: top-level keys with their values kept as raw JSON text.
//!
//! Normalising an event only looks at a handful of top-level fields, so building a full
//! `serde_json::Value` tree of every event and serialising it again costs most of the parse for
//! nothing. A [`RawObject`] borrows each value's text from the request body (validated by the
//! parser, never re-parsed), lets the few fields that change be replaced by new JSON text, and
//! writes the object back by concatenation.
//!
//! Keys keep their first position and the last value wins, as `serde_json::Map` with
//! `preserve_order` does; new keys go at the end.

use std::borrow::Cow;
use std::fmt;

use std::collections::HashMap;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use serde_json::value::RawValue;

/// One value of a [`RawObject`]: borrowed from the input, or new JSON text.
#[derive(Clone, Debug)]
pub(crate) enum RawVal<'a> {
    /// Text of the input, as the parser validated it.
    Borrowed(&'a RawValue),
    /// JSON text made during normalisation.
    Owned(String),
}

impl RawVal<'_> {
    /// The value's JSON text.
    pub(crate) fn text(&self) -> &str {
        match self {
            RawVal::Borrowed(raw) => raw.get(),
            RawVal::Owned(text) => text,
        }
    }

    /// What kind of JSON value this is, from its first byte.
    pub(crate) fn kind(&self) -> Kind {
        match self.text().as_bytes().first() {
            Some(b'{') => Kind::Object,
            Some(b'[') => Kind::Array,
            Some(b'"') => Kind::String,
            Some(b'n') => Kind::Null,
            Some(b't' | b'f') => Kind::Bool,
            _ => Kind::Number,
        }
    }

    /// The value as a string when it is one, unescaped (borrowed when it has no escapes).
    pub(crate) fn as_str(&self) -> Option<Cow<'_, str>> {
        let text = self.text();
        let inner = text.strip_prefix('"')?.strip_suffix('"')?;
        if inner.contains('\\') {
            serde_json::from_str::<String>(text).ok().map(Cow::Owned)
        } else {
            Some(Cow::Borrowed(inner))
        }
    }
}

/// The kind of a JSON value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Object,
    Array,
    String,
    Number,
    Bool,
    Null,
}

/// Objects with more entries than this get a hash index; smaller ones (every ordinary event)
/// are searched linearly, which profiling showed to be cheaper than hashing each key.
const SMALL: usize = 24;

/// A JSON object's top-level entries in order, values as raw text.
#[derive(Clone, Debug, Default)]
pub(crate) struct RawObject<'a> {
    /// Entries in order; a removed entry stays as `None` so that positions hold.
    entries: Vec<(Cow<'a, str>, Option<RawVal<'a>>)>,
    /// Key to position of the live entry, once there are more than [`SMALL`] entries, so that
    /// an object with thousands of keys costs linear time rather than quadratic.
    index: Option<HashMap<Cow<'a, str>, usize>>,
}

impl<'a> RawObject<'a> {
    /// Reads a JSON object; anything else (or trailing text) is an error.
    pub(crate) fn parse(text: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The position of the live entry of `key`.
    fn find(&self, key: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(key).copied(),
            None => self
                .entries
                .iter()
                .position(|(k, v)| v.is_some() && k.as_ref() == key),
        }
    }

    /// The value of `key`, if present.
    pub(crate) fn get(&self, key: &str) -> Option<&RawVal<'a>> {
        let idx = self.find(key)?;
        self.entries.get(idx).and_then(|(_, v)| v.as_ref())
    }

    /// Sets `key`: in place when present, else at the end.
    ///
    /// `key` must be a plain name (no quote, backslash or control character), as it is written
    /// out without escaping.
    pub(crate) fn insert(&mut self, key: &'a str, value: RawVal<'a>) {
        debug_assert!(key.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\'));
        self.insert_cow(Cow::Borrowed(key), value);
    }

    fn insert_cow(&mut self, key: Cow<'a, str>, value: RawVal<'a>) {
        if let Some(idx) = self.find(&key) {
            if let Some(entry) = self.entries.get_mut(idx) {
                entry.1 = Some(value);
                return;
            }
        }
        if let Some(index) = &mut self.index {
            index.insert(key.clone(), self.entries.len());
        }
        self.entries.push((key, Some(value)));
        if self.index.is_none() && self.entries.len() > SMALL {
            let index = self
                .entries
                .iter()
                .enumerate()
                .filter(|(_, (_, v))| v.is_some())
                .map(|(idx, (k, _))| (k.clone(), idx))
                .collect();
            self.index = Some(index);
        }
    }

    /// Sets `key` to new JSON text.
    pub(crate) fn insert_text(&mut self, key: &'a str, text: String) {
        self.insert(key, RawVal::Owned(text));
    }

    /// Sets `key` to a JSON string holding `value`.
    pub(crate) fn insert_string(&mut self, key: &'a str, value: &str) {
        self.insert_text(key, quote(value));
    }

    /// Removes `key`, keeping the order of the others.
    pub(crate) fn remove(&mut self, key: &str) {
        if let Some(idx) = self.find(key) {
            if let Some(entry) = self.entries.get_mut(idx) {
                entry.1 = None;
            }
            if let Some(index) = &mut self.index {
                index.remove(key);
            }
        }
    }

    /// The live entries in order.
    fn live(&self) -> impl Iterator<Item = (&Cow<'a, str>, &RawVal<'a>)> {
        self.entries
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
    }

    /// Whether the object has no entries.
    pub(crate) fn is_empty(&self) -> bool {
        self.live().next().is_none()
    }

    /// Adds the entries of `under` whose keys this object lacks, at the end.
    pub(crate) fn merge_missing(&mut self, under: &RawObject<'a>) {
        for (key, value) in under.live() {
            if self.find(key).is_none() {
                self.insert_cow(key.clone(), value.clone());
            }
        }
    }

    /// Writes the object as compact JSON text (values as they are).
    pub(crate) fn to_json(&self) -> String {
        let len: usize = self.live().map(|(k, v)| k.len() + v.text().len() + 4).sum();
        let mut out = String::with_capacity(len + 2);
        out.push('{');
        for (idx, (key, value)) in self.live().enumerate() {
            if idx > 0 {
                out.push(',');
            }
            match key {
                // A key borrowed from the input had no escapes, so it needs none: a JSON string
                // without escapes holds no quote, backslash or control character. Keys this
                // module inserts are plain names.
                Cow::Borrowed(key) => {
                    out.push('"');
                    out.push_str(key);
                    out.push('"');
                }
                Cow::Owned(key) => push_quoted(&mut out, key),
            }
            out.push(':');
            out.push_str(value.text());
        }
        out.push('}');
        out
    }
}

/// `value` as a JSON string literal.
pub(crate) fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    push_quoted(&mut out, value);
    out
}

/// Appends `value` as a JSON string literal, escaping only when needed.
fn push_quoted(out: &mut String, value: &str) {
    let plain = value.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\');
    if plain {
        out.push('"');
        out.push_str(value);
        out.push('"');
    } else {
        // Serialising a string cannot fail; an empty literal would still be valid JSON.
        out.push_str(&serde_json::to_string(value).unwrap_or_else(|_| "\"\"".to_owned()));
    }
}

impl<'de> Deserialize<'de> for RawObject<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ObjectVisitor)
    }
}

struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = RawObject<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = RawObject {
            entries: Vec::with_capacity(map.size_hint().unwrap_or(16).min(SMALL)),
            index: None,
        };
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let value: &'de RawValue = map.next_value()?;
            object.insert_cow(key, RawVal::Borrowed(value));
        }
        Ok(object)
    }
}

/// An object key, borrowed from the input unless it had escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn round_trips_keeping_order_and_raw_values() {
        let text = r#"{"b":1,"a":{"x":[1,2]},"c":"s\"q","é\n":null}"#;
        let obj = RawObject::parse(text).unwrap();
        let out = obj.to_json();
        assert_eq!(out, text);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["a"]["x"][1], 2);
    }

    #[test]
    fn last_duplicate_wins_in_the_first_position() {
        let obj = RawObject::parse(r#"{"a":1,"b":2,"a":3}"#).unwrap();
        assert_eq!(obj.to_json(), r#"{"a":3,"b":2}"#);
    }

    #[test]
    fn edits_and_merges() {
        let mut obj = RawObject::parse(r#"{"a":1,"b":2,"c":3}"#).unwrap();
        obj.remove("b");
        obj.insert_string("d", "q\"uote");
        obj.insert_text("a", "[]".to_owned());
        let under = RawObject::parse(r#"{"a":9,"z":true}"#).unwrap();
        obj.merge_missing(&under);
        let v: Value = serde_json::from_str(&obj.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": [], "c": 3, "d": "q\"uote", "z": true})
        );
        assert_eq!(obj.to_json(), r#"{"a":[],"c":3,"d":"q\"uote","z":true}"#);
    }

    #[test]
    fn large_objects_behave_like_small_ones() {
        let keys: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
        let body: Vec<String> = keys.iter().map(|k| format!(r#""{k}":1"#)).collect();
        let text = format!("{{{},\"k3\":2}}", body.join(","));
        let mut obj = RawObject::parse(&text).unwrap();
        assert!(obj.index.is_some());
        assert_eq!(obj.get("k3").unwrap().text(), "2");
        obj.remove("k0");
        obj.remove("k50");
        obj.insert_string("k0", "again");
        obj.insert_text("new", "true".to_owned());
        let v: serde_json::Map<String, Value> = serde_json::from_str(&obj.to_json()).unwrap();
        assert_eq!(v.len(), 100);
        assert_eq!(v["k3"], 2);
        assert!(!v.contains_key("k50"));
        let order: Vec<&str> = v.keys().map(String::as_str).collect();
        assert_eq!(order[0], "k1");
        assert_eq!(&order[97..], ["k99", "k0", "new"]);
        // Removed and re-added keys go to the end in a small object too.
        let mut small = RawObject::parse(r#"{"a":1,"b":2}"#).unwrap();
        small.remove("a");
        assert!(small.get("a").is_none());
        small.insert_text("a", "3".to_owned());
        assert_eq!(small.to_json(), r#"{"b":2,"a":3}"#);
        small.remove("a");
        small.remove("b");
        assert!(small.is_empty());
        assert_eq!(small.to_json(), "{}");
    }

    #[test]
    fn kinds_and_strings() {
        let obj = RawObject::parse(r#"{"s":"a\u0041","n":-1.5,"o":{},"l":[],"t":true,"z":null}"#)
            .unwrap();
        let kind = |k: &str| obj.get(k).unwrap().kind();
        assert_eq!(kind("s"), Kind::String);
        assert_eq!(kind("n"), Kind::Number);
        assert_eq!(kind("o"), Kind::Object);
        assert_eq!(kind("l"), Kind::Array);
        assert_eq!(kind("t"), Kind::Bool);
        assert_eq!(kind("z"), Kind::Null);
        assert_eq!(obj.get("s").unwrap().as_str().unwrap(), "aA");
        assert!(obj.get("n").unwrap().as_str().is_none());
    }

    #[test]
    fn non_objects_and_bad_json_are_errors() {
        assert!(RawObject::parse("[1]").is_err());
        assert!(RawObject::parse(r#"{"a":}"#).is_err());
        assert!(RawObject::parse(r#"{"a":1} x"#).is_err());
    }
}
