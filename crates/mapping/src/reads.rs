//! The data paths a mapping reads, found from its text without evaluating it.
//!
//! Checks need to know what a mapping reads before any event exists: the spec names unknown
//! payload keys and settings at their place in the YAML, and the runtime resolves a value that
//! reads only settings once per instance. Both walk the mapping here: `@path` strings, the
//! `{{…}}` paths of `@template`, and the array path of `@arrayPath` (its shape reads each item,
//! not the context). What cannot be known from the text is reported as a whole: `@liquid` reads
//! whatever its template names, and a `@path`, `@arrayPath` or `@template` whose text is itself
//! computed reads wherever that text points.

use serde_json::Value;

/// One data path a mapping reads, such as `$.payload.userId`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataPath {
    /// The JSON pointer of the directive that reads it, below the pointer given to [`reads`].
    pub pointer: String,
    /// The first segment (`payload`, `settings`, …); empty when the path is the whole context.
    pub root: String,
    /// The second segment, if any (the payload field or the setting).
    pub key: Option<String>,
}

/// What a mapping reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reads {
    /// Every path, in the order the mapping lists them.
    pub paths: Vec<DataPath>,
    /// Whether the mapping also reads paths its text does not show (`@liquid`, a computed path or
    /// template).
    pub opaque: bool,
}

impl Reads {
    /// Whether every read is below `root` (a mapping that reads nothing counts): such a mapping
    /// gives the same result whatever else the context holds.
    pub fn only_under(&self, root: &str) -> bool {
        !self.opaque && self.paths.iter().all(|path| path.root == root)
    }

    /// The distinct keys read below `root`, in first-read order.
    pub fn keys_under(&self, root: &str) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        for key in self
            .paths
            .iter()
            .filter(|path| path.root == root)
            .filter_map(|path| path.key.as_ref())
        {
            if !keys.contains(key) {
                keys.push(key.clone());
            }
        }
        keys
    }
}

/// Collects what `mapping` reads; pointers start at `pointer` (`""` for the mapping's root).
pub fn reads(mapping: &Value, pointer: &str) -> Reads {
    let mut out = Reads::default();
    walk(mapping, pointer, &mut out);
    out
}

fn walk(value: &Value, pointer: &str, out: &mut Reads) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let child_pointer = pointer_join(pointer, key);
                match (key.as_str(), child) {
                    ("@path", Value::String(path)) => push(path, &child_pointer, out),
                    ("@path", computed) => {
                        out.opaque = true;
                        walk(computed, &child_pointer, out);
                    }
                    ("@template", Value::String(template)) => {
                        let mut rest = template.as_str();
                        while let Some(start) = rest.find("{{") {
                            let after = &rest[start + 2..];
                            let Some(end) = after.find("}}") else {
                                break;
                            };
                            push(&after[..end], &child_pointer, out);
                            rest = &after[end + 2..];
                        }
                    }
                    ("@template", computed) => {
                        // A computed template reads whatever the text it resolves to names.
                        out.opaque = true;
                        walk(computed, &child_pointer, out);
                    }
                    ("@arrayPath", Value::Array(items)) => {
                        // The second element reads from each item, not from the context.
                        if let Some(first) = items.first() {
                            let first_pointer = pointer_join(&child_pointer, "0");
                            match first {
                                Value::String(path) => push(path, &first_pointer, out),
                                other => {
                                    out.opaque = true;
                                    walk(other, &first_pointer, out);
                                }
                            }
                        }
                    }
                    ("@liquid", _) => out.opaque = true,
                    _ => walk(child, &child_pointer, out),
                }
            }
        }
        Value::Array(items) => {
            for (idx, item) in items.iter().enumerate() {
                walk(item, &pointer_join(pointer, &idx.to_string()), out);
            }
        }
        _ => {}
    }
}

/// Splits a path (`$.payload.userId`, `settings['apiKey']`) into its first two segments.
fn push(path: &str, pointer: &str, out: &mut Reads) {
    let trimmed = path.trim();
    let rest = trimmed.strip_prefix('$').unwrap_or(trimmed);
    let rest = rest.strip_prefix('.').unwrap_or(rest);
    let mut segments = rest
        .split(['.', '['])
        .map(|segment| segment.trim_end_matches(']').trim_matches(['\'', '"']));
    let root = segments.next().unwrap_or_default().to_owned();
    let key = segments.next().filter(|s| !s.is_empty()).map(str::to_owned);
    out.paths.push(DataPath {
        pointer: pointer.to_owned(),
        root,
        key,
    });
}

/// `base` extended by one RFC 6901 segment.
fn pointer_join(base: &str, segment: &str) -> String {
    format!("{base}/{}", segment.replace('~', "~0").replace('/', "~1"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_templates_and_array_paths_are_read_with_their_place() {
        let mapping = json!({
            "a": {"@path": "$.payload.userId"},
            "b": {"@template": "Token {{settings.apiKey}} {{ payload['x'] }}"},
            "c": {"@arrayPath": ["$.payload.items", {"n": {"@path": "$.name"}}]},
            "d/e": [{"@if": {"exists": {"@path": "$."}, "then": 1}}]
        });
        let found = reads(&mapping, "/m");
        let triples: Vec<(&str, Option<&str>, &str)> = found
            .paths
            .iter()
            .map(|p| (p.root.as_str(), p.key.as_deref(), p.pointer.as_str()))
            .collect();
        assert_eq!(
            triples,
            [
                ("payload", Some("userId"), "/m/a/@path"),
                ("settings", Some("apiKey"), "/m/b/@template"),
                ("payload", Some("x"), "/m/b/@template"),
                ("payload", Some("items"), "/m/c/@arrayPath/0"),
                ("", None, "/m/d~1e/0/@if/exists/@path"),
            ]
        );
        assert!(!found.opaque);
        assert!(!found.only_under("settings"));
        assert_eq!(found.keys_under("payload"), ["userId", "x", "items"]);
    }

    #[test]
    fn settings_only_mappings_and_liquid() {
        let url = json!({"@template": "https://{{settings.sub}}.example.com/{{settings.sub}}"});
        assert!(reads(&url, "").only_under("settings"));
        assert_eq!(reads(&url, "").keys_under("settings"), ["sub"]);
        assert!(reads(&json!("https://x.io/"), "").only_under("settings"));
        let liquid = json!({"@liquid": "{{ settings.sub }}"});
        assert!(reads(&liquid, "").opaque);
        assert!(!reads(&liquid, "").only_under("settings"));
        // A computed path reads wherever its value points, whatever the text shows.
        let computed = json!({"@path": {"@template": "$.settings.{{settings.which}}"}});
        let found = reads(&computed, "");
        assert!(found.opaque);
        assert!(!found.only_under("settings"));
        assert_eq!(found.keys_under("settings"), ["which"]);
    }
}
