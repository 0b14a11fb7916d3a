//! The YAML a mapping goes into the configuration file as: one entry of an instance's
//! `mappings:` list.
//!
//! Values are written in YAML's flow style, which for JSON is JSON itself (every JSON text is
//! a YAML 1.2 flow value), so a mapping-kit object is copied out exactly as it was previewed.
//! Names and triggers are single-quoted (only `'` needs escaping there, by doubling it) unless
//! they hold a line break or another control character, which a JSON string carries instead.

use serde_json::{Map, Value};

/// One mapping as an entry of `destinations[].mappings`, indented by `indent` spaces.
pub fn mapping_entry(
    name: &str,
    trigger: &str,
    action: &str,
    mapping: &Map<String, Value>,
    indent: usize,
) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::new();
    out.push_str(&format!("{pad}- name: {}\n", scalar(name)));
    out.push_str(&format!("{pad}  trigger: {}\n", scalar(trigger)));
    out.push_str(&format!("{pad}  action: {}\n", scalar(action)));
    if mapping.is_empty() {
        out.push_str(&format!("{pad}  mapping: {{}}\n"));
    } else {
        out.push_str(&format!("{pad}  mapping:\n"));
        for (key, value) in mapping {
            out.push_str(&format!("{pad}    {}: {value}\n", key_text(key)));
        }
    }
    out.push_str(&format!("{pad}  enabled: true\n"));
    out
}

/// A string as a YAML scalar: single-quoted, or a JSON string when it holds control characters.
fn scalar(text: &str) -> String {
    if text.chars().any(char::is_control) {
        Value::String(text.to_owned()).to_string()
    } else {
        format!("'{}'", text.replace('\'', "''"))
    }
}

/// A mapping key: bare when it is a plain word YAML cannot read as anything else, quoted
/// otherwise.
fn key_text(key: &str) -> String {
    let plain = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !matches!(
            key.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain {
        key.to_owned()
    } else {
        Value::String(key.to_owned()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_quote_what_needs_quoting() {
        let Value::Object(mapping) = json!({
            "userId": {"@path": "$.userId"},
            "on": "x",
            "odd key": "it's",
        }) else {
            unreachable!("a JSON object literal");
        };
        let text = mapping_entry(
            "Bob's \"Track\"",
            "type = \"track\"",
            "trackEvent",
            &mapping,
            4,
        );
        assert_eq!(
            text,
            "    - name: 'Bob''s \"Track\"'\n      trigger: 'type = \"track\"'\n      action: 'trackEvent'\n      mapping:\n        userId: {\"@path\":\"$.userId\"}\n        \"on\": \"x\"\n        \"odd key\": \"it's\"\n      enabled: true\n"
        );
        assert_eq!(scalar("a\nb"), "\"a\\nb\"");
    }
}
