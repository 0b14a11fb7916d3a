//! Turning YAML keys (camelCase, dashes, leading digits, Rust keywords) into Rust identifiers.
//!
//! Field keys become snake_case field names (`userId` → `user_id`, `user-name` → `user_name`,
//! `3d` → `_3d`, `type` → `r#type`, `self` → `self_`); action keys become PascalCase type names.
//! [`UniqueNames`] adds `_2`, `_3`, … when two keys map to the same identifier.

use std::collections::HashSet;

use proc_macro2::{Ident, Span};

/// Keywords that may be written as raw identifiers (`r#type`).
const RAW_OK_KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "do", "dyn",
    "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl", "in", "let",
    "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref", "return",
    "static", "struct", "trait", "true", "try", "type", "typeof", "unsafe", "unsized", "use",
    "virtual", "where", "while", "yield",
];

/// Keywords that cannot be raw identifiers; they get a trailing underscore.
const NO_RAW_KEYWORDS: &[&str] = &["self", "Self", "super", "crate", "_"];

/// Splits `key` into lower-case words at non-alphanumerics and camelCase boundaries.
fn words(key: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    let chars: Vec<char> = key.chars().collect();
    for (idx, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            continue;
        }
        let prev = idx.checked_sub(1).map(|i| chars[i]);
        let next = chars.get(idx + 1).copied();
        let boundary = c.is_uppercase()
            && prev.is_some_and(|p| {
                p.is_lowercase()
                    || p.is_ascii_digit()
                    || (p.is_uppercase() && next.is_some_and(char::is_lowercase))
            });
        if boundary && !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The snake_case Rust identifier text for `key` (without the raw prefix).
pub fn snake_case(key: &str) -> String {
    let joined = words(key).join("_");
    let joined: String = joined
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if joined.is_empty() {
        "field".to_owned()
    } else if joined.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{joined}")
    } else {
        joined
    }
}

/// The PascalCase Rust type-name text for `key`; a leading digit gets the prefix `N`.
pub fn pascal_case(key: &str) -> String {
    let text: String = words(key)
        .iter()
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
                None => String::new(),
            }
        })
        .collect();
    let text: String = text.chars().filter(char::is_ascii_alphanumeric).collect();
    if text.is_empty() {
        "Unnamed".to_owned()
    } else if text.starts_with(|c: char| c.is_ascii_digit()) {
        format!("N{text}")
    } else {
        text
    }
}

/// An identifier from snake_case text, raw or suffixed when the text is a keyword.
pub fn ident(text: &str) -> Ident {
    if RAW_OK_KEYWORDS.contains(&text) {
        Ident::new_raw(text, Span::call_site())
    } else if NO_RAW_KEYWORDS.contains(&text) {
        Ident::new(&format!("{text}_"), Span::call_site())
    } else {
        Ident::new(text, Span::call_site())
    }
}

/// Hands out identifiers that are unique within one scope (one struct's fields, one module).
#[derive(Debug, Default)]
pub struct UniqueNames {
    used: HashSet<String>,
}

impl UniqueNames {
    /// Reserves `text` (or `text_2`, `text_3`, … when taken) and returns it.
    pub fn claim(&mut self, text: &str) -> String {
        let mut candidate = text.to_owned();
        let mut n = 2;
        while !self.used.insert(candidate.clone()) {
            candidate = format!("{text}_{n}");
            n += 1;
        }
        candidate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn awkward_keys_become_valid_identifiers() {
        assert_eq!(snake_case("userId"), "user_id");
        assert_eq!(snake_case("createdAt"), "created_at");
        assert_eq!(snake_case("user-name"), "user_name");
        assert_eq!(snake_case("3d"), "_3d");
        assert_eq!(snake_case("HTTPStatus"), "http_status");
        assert_eq!(snake_case("utm_source"), "utm_source");
        assert_eq!(snake_case("$$"), "field");
        assert_eq!(ident("type").to_string(), "r#type");
        assert_eq!(ident("self").to_string(), "self_");
        assert_eq!(ident("user_id").to_string(), "user_id");
        assert_eq!(pascal_case("identifyUser"), "IdentifyUser");
        assert_eq!(pascal_case("3d-model"), "N3dModel");
        assert_eq!(pascal_case("send_event"), "SendEvent");
        for text in ["type", "self", "_3d", "r#x"] {
            let id = ident(&snake_case(text));
            assert!(
                syn::parse_str::<syn::Ident>(&id.to_string()).is_ok()
                    || id.to_string().starts_with("r#")
            );
        }
    }

    #[test]
    fn clashing_names_get_numbered() {
        let mut names = UniqueNames::default();
        assert_eq!(names.claim("user_name"), "user_name");
        assert_eq!(names.claim("user_name"), "user_name_2");
        assert_eq!(names.claim("user_name"), "user_name_3");
    }
}
