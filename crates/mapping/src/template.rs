//! `@template`: Segment's mustache-like interpolation, pre-parsed at compile time.
//!
//! Segment replaces every `{{{ expr }}}` first and then every `{{ expr }}` in the *result* of the
//! first pass, so a value substituted by the first pass can itself contain `{{ x }}` that the second
//! pass expands. The compiled form keeps that exact behaviour: when a template has no triple-brace
//! placeholder, the pre-parsed second pass is used directly; otherwise the second pass is parsed
//! from the intermediate string at evaluation time.

use serde_json::Value;

use crate::path::CompiledPath;

/// A piece of a parsed template.
#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Expr(CompiledPath),
}

/// A template parsed for one brace width.
#[derive(Debug, Clone)]
struct Parsed {
    parts: Vec<Part>,
    has_expr: bool,
}

/// A compiled `@template` string.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    /// The `{{{ }}}` pass, when the template contains at least one triple-brace placeholder.
    triple: Option<Parsed>,
    /// The `{{ }}` pass over the original text, used when there is no triple-brace placeholder.
    double: Parsed,
}

impl Template {
    /// Parses a template string.
    pub(crate) fn new(text: &str) -> Template {
        let triple = parse(text, 3);
        if triple.has_expr {
            Template {
                triple: Some(triple),
                double: Parsed {
                    parts: Vec::new(),
                    has_expr: false,
                },
            }
        } else {
            Template {
                triple: None,
                double: parse(text, 2),
            }
        }
    }

    /// Renders the template against `payload`.
    pub(crate) fn render(&self, payload: &Value) -> String {
        match &self.triple {
            None => render_parsed(&self.double, payload),
            Some(triple) => {
                let first = render_parsed(triple, payload);
                render_parsed(&parse(&first, 2), payload)
            }
        }
    }
}

fn render_parsed(parsed: &Parsed, payload: &Value) -> String {
    let mut out = String::new();
    for part in &parsed.parts {
        match part {
            Part::Text(t) => out.push_str(t),
            Part::Expr(path) => path.get(payload).write_js_string(&mut out),
        }
    }
    out
}

/// Scans `text` for `{`×width, one or more non-`}` characters, then `}`×width, exactly like the
/// regular expression `\{{w}([^}]+)\}{w}` applied globally.
fn parse(text: &str, width: usize) -> Parsed {
    let bytes = text.as_bytes();
    let mut parts = Vec::new();
    let mut has_expr = false;
    let mut literal_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some((expr_end, match_end)) = match_at(bytes, i, width) {
            if literal_start < i {
                parts.push(Part::Text(text[literal_start..i].to_owned()));
            }
            let expr = text[i + width..expr_end].trim();
            parts.push(Part::Expr(CompiledPath::new(expr)));
            has_expr = true;
            i = match_end;
            literal_start = i;
        } else {
            i += 1;
        }
    }
    if literal_start < bytes.len() {
        parts.push(Part::Text(text[literal_start..].to_owned()));
    }
    Parsed { parts, has_expr }
}

/// Tries to match a placeholder at byte `start`; returns (end of expression, end of match).
fn match_at(bytes: &[u8], start: usize, width: usize) -> Option<(usize, usize)> {
    if bytes.len() < start + width || bytes[start..start + width].iter().any(|b| *b != b'{') {
        return None;
    }
    let expr_start = start + width;
    let mut j = expr_start;
    while j < bytes.len() && bytes[j] != b'}' {
        j += 1;
    }
    if j == expr_start {
        return None;
    }
    let close_end = j + width;
    if close_end > bytes.len() || bytes[j..close_end].iter().any(|b| *b != b'}') {
        return None;
    }
    Some((j, close_end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn second_pass_runs_over_first_pass_output() {
        let data = json!({"a": "{{b}}", "b": "hi"});
        assert_eq!(Template::new("{{{a}}}!").render(&data), "hi!");
    }

    #[test]
    fn unbalanced_braces() {
        let data = json!({"a": "x"});
        assert_eq!(Template::new("{{a}}}").render(&data), "x}");
        assert_eq!(Template::new("{{{a}}").render(&data), "");
        assert_eq!(Template::new("{{}}").render(&data), "{{}}");
    }
}
