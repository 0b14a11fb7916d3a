//! Compilation of a mapping into a [`Node`] tree that evaluation walks without re-parsing:
//! paths are pre-split, templates pre-parsed, `@replace` matchers pre-built and liquid templates
//! pre-parsed.
//!
//! Compilation never fails. Directive options that Segment would reject at run time (possible where
//! validation does not look, such as inside arrays) compile to [`Directive::Fail`], which raises
//! Segment's runtime error only if and when evaluation reaches it.

use serde_json::{Map, Value};

use crate::liquid::{LiquidTemplate, MAX_TEMPLATE_LEN};
use crate::path::CompiledPath;
use crate::template::Template;
use crate::value::{is_truthy, kind_of, opt_truthy};

/// The root-directive key (spec §1.4).
pub(crate) const ROOT_DIRECTIVE_KEY: &str = "__segment_internal_directive";

/// A compiled mapping node.
#[derive(Debug)]
pub(crate) enum Node {
    /// A JSON value with no directive anywhere inside; resolves to itself (borrowed).
    Static(Value),
    /// A plain object, resolved key by key.
    Object(Vec<(String, Node)>),
    /// An array, resolved element by element.
    Array(Vec<Node>),
    /// A directive.
    Directive(Box<Directive>),
    /// A missing option (JavaScript `undefined`); resolves to absent.
    Absent,
}

/// An option that is either known at compile time or produced by a nested mapping.
#[derive(Debug)]
pub(crate) enum Arg<T> {
    /// The option was a raw string, pre-processed.
    Const(T),
    /// The option is resolved at evaluation time and must yield a string.
    Dynamic(Node),
}

/// The root of `@arrayPath`.
#[derive(Debug)]
pub(crate) enum ArrayRoot {
    /// A raw string path.
    Path(CompiledPath),
    /// A nested mapping.
    Node(Node),
    /// No first element (resolves to absent).
    Missing,
}

/// `@case` operators.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CaseOp {
    Lower,
    Upper,
    Other,
}

/// `@json` modes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum JsonMode {
    Encode,
    Decode,
    Other,
}

/// A literal substring matcher for `@replace` (the pattern is always matched literally).
#[derive(Debug)]
pub(crate) enum Matcher {
    /// Case-sensitive substring search.
    Exact(String),
    /// Case-insensitive search via an escaped regular expression.
    Folded(regex::Regex),
}

/// One piece of a `@replace` replacement string with JavaScript's `$` sequences expanded.
#[derive(Debug, Clone)]
pub(crate) enum ReplPart {
    Text(String),
    /// `$&`
    Matched,
    /// `` $` ``
    Before,
    /// `$'`
    After,
}

/// One `@replace` pass.
#[derive(Debug)]
pub(crate) struct ReplacePass {
    pub(crate) matcher: Matcher,
    pub(crate) replacement: Vec<ReplPart>,
}

/// Compiled `@replace` options.
#[derive(Debug)]
pub(crate) struct Replace {
    /// The value to transform; `None` when the raw option is falsy (result absent).
    pub(crate) value: Option<Node>,
    /// The passes, or `None` when an option has the wrong type (result `""`).
    pub(crate) passes: Option<Vec<ReplacePass>>,
    /// Runtime length error raised once the value is known to be a string.
    pub(crate) length_error: Option<String>,
    /// Global replacement (all matches) versus the first match only.
    pub(crate) global: bool,
}

/// A compiled directive.
#[derive(Debug)]
pub(crate) enum Directive {
    /// Raises this runtime error when evaluated.
    Fail(String),
    Path(Arg<CompiledPath>),
    Template(Arg<Template>),
    Literal(Node),
    If {
        exists: Option<Node>,
        blank: Option<Node>,
        then: Option<Node>,
        otherwise: Option<Node>,
    },
    Case {
        op: CaseOp,
        value: Option<Node>,
    },
    Replace(Replace),
    ArrayPath {
        root: ArrayRoot,
        shape: Option<Node>,
    },
    Flatten {
        separator: Node,
        value: Node,
        omit_arrays: bool,
    },
    Json {
        mode: JsonMode,
        value: Node,
    },
    Merge {
        direction: Node,
        objects: Vec<Node>,
    },
    Transform {
        /// The `apply` mapping compiled like a root mapping, or its validation messages.
        apply: Result<Node, String>,
        mapping: Node,
    },
    ExcludeWhenNull(Node),
    Liquid(LiquidTemplate),
}

/// Applies the root-directive rewrite (spec §1.4) when the mapping has the special key.
pub(crate) fn rewrite_root(mapping: &Value) -> Result<Option<Value>, String> {
    let Value::Object(map) = mapping else {
        return Ok(None);
    };
    let Some(root) = map.get(ROOT_DIRECTIVE_KEY) else {
        return Ok(None);
    };
    let single = match root {
        Value::Object(inner) if inner.len() == 1 => inner,
        _ => return Err("The root mapping must only have a single directive object".to_owned()),
    };
    let Some((name, opts)) = single.iter().next() else {
        return Err("The root mapping must only have a single directive object".to_owned());
    };
    let Value::Object(opts) = opts else {
        return Err("The root directive must be an object".to_owned());
    };
    let rest: Map<String, Value> = map
        .iter()
        .filter(|(k, _)| k.as_str() != ROOT_DIRECTIVE_KEY)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut opts = opts.clone();
    opts.insert("mapping".to_owned(), Value::Object(rest));
    let mut out = Map::new();
    out.insert(name.clone(), Value::Object(opts));
    Ok(Some(Value::Object(out)))
}

/// Rewrites, validates and compiles a mapping as Segment's `transform` entry point sees it.
pub(crate) fn compile_root(mapping: &Value) -> Result<Node, Vec<String>> {
    let rewritten = rewrite_root(mapping).map_err(|m| vec![m])?;
    let mapping = rewritten.as_ref().unwrap_or(mapping);
    crate::validate::validate_mapping(mapping)?;
    Ok(compile(mapping))
}

/// True when an object anywhere in `v` has a key starting with `@`.
fn has_directive_shape(v: &Value) -> bool {
    match v {
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.starts_with('@') || has_directive_shape(v)),
        Value::Array(items) => items.iter().any(has_directive_shape),
        _ => false,
    }
}

/// True when Segment's runtime treats the object as a directive: at least one `@` key and no
/// keys other than `@` keys and `_metadata`.
fn is_runtime_directive(map: &Map<String, Value>) -> bool {
    map.keys().any(|k| k.starts_with('@'))
        && map.keys().all(|k| k.starts_with('@') || k == "_metadata")
}

/// Compiles any JSON value as a mapping.
pub(crate) fn compile(v: &Value) -> Node {
    if !has_directive_shape(v) {
        return Node::Static(v.clone());
    }
    match v {
        Value::Object(map) if is_runtime_directive(map) => {
            // Segment runs the first `@` key in insertion order.
            let (name, opts) = map
                .iter()
                .find(|(k, _)| k.starts_with('@'))
                .map(|(k, v)| (k.as_str(), v))
                .unwrap_or(("", &Value::Null));
            Node::Directive(Box::new(compile_directive(name, opts)))
        }
        Value::Object(map) => {
            Node::Object(map.iter().map(|(k, v)| (k.clone(), compile(v))).collect())
        }
        Value::Array(items) => Node::Array(items.iter().map(compile).collect()),
        other => Node::Static(other.clone()),
    }
}

fn compile_opt(v: Option<&Value>) -> Node {
    v.map_or(Node::Absent, compile)
}

fn fail(msg: &str) -> Directive {
    Directive::Fail(msg.to_owned())
}

fn compile_directive(name: &str, opts: &Value) -> Directive {
    let obj = opts.as_object();
    let field = |k: &str| obj.and_then(|o| o.get(k));
    match name {
        "@path" => match opts {
            Value::String(s) => Directive::Path(Arg::Const(CompiledPath::for_path_directive(s))),
            other => Directive::Path(Arg::Dynamic(compile(other))),
        },
        "@template" => match opts {
            Value::String(s) => Directive::Template(Arg::Const(Template::new(s))),
            other => Directive::Template(Arg::Dynamic(compile(other))),
        },
        "@literal" => Directive::Literal(compile(opts)),
        "@excludeWhenNull" => Directive::ExcludeWhenNull(compile(opts)),
        "@if" => {
            if obj.is_none() {
                return fail("@if requires an object with an \"exists\" key");
            }
            if !opt_truthy(field("exists")) && !opt_truthy(field("blank")) {
                return fail("@if requires an \"exists\" key or a \"blank\" key");
            }
            let exists = field("exists").map(compile);
            let blank = if exists.is_none() {
                field("blank").map(compile)
            } else {
                None
            };
            Directive::If {
                exists,
                blank,
                then: field("then").map(compile),
                otherwise: field("else").filter(|v| is_truthy(v)).map(compile),
            }
        }
        "@case" => {
            if obj.is_none() {
                return fail("@case requires an object with a \"operator\" key");
            }
            if !opt_truthy(field("operator")) {
                return fail("@case requires a \"operator\" key");
            }
            let op = match field("operator").and_then(Value::as_str) {
                Some("lower") => CaseOp::Lower,
                Some("upper") => CaseOp::Upper,
                _ => CaseOp::Other,
            };
            Directive::Case {
                op,
                value: field("value").filter(|v| is_truthy(v)).map(compile),
            }
        }
        "@replace" => compile_replace(opts),
        "@arrayPath" => {
            let Value::Array(items) = opts else {
                return Directive::Fail(format!(
                    "@arrayPath expected array, got {}",
                    kind_of(opts).name()
                ));
            };
            let root = match items.first() {
                Some(Value::String(s)) => ArrayRoot::Path(CompiledPath::for_path_directive(s)),
                Some(other) => ArrayRoot::Node(compile(other)),
                None => ArrayRoot::Missing,
            };
            let shape = match items.get(1) {
                Some(shape @ Value::Object(m)) if !m.is_empty() => Some(compile(shape)),
                _ => None,
            };
            Directive::ArrayPath { root, shape }
        }
        "@flatten" => {
            if obj.is_none() {
                return fail("@flatten requires an object with a \"separator\" key");
            }
            if !opt_truthy(field("separator")) {
                return fail("@flatten requires a \"separator\" key");
            }
            Directive::Flatten {
                separator: compile_opt(field("separator")),
                value: compile_opt(field("value")),
                omit_arrays: opt_truthy(field("omitArrays")),
            }
        }
        "@json" => {
            if obj.is_none() {
                return fail("@json requires an object with a \"value\" key");
            }
            if !opt_truthy(field("mode")) {
                return fail("@json requires a \"mode\" key");
            }
            if !opt_truthy(field("value")) {
                return fail("@json requires a \"value\" key");
            }
            let mode = match field("mode").and_then(Value::as_str) {
                Some("encode") => JsonMode::Encode,
                Some("decode") => JsonMode::Decode,
                _ => JsonMode::Other,
            };
            Directive::Json {
                mode,
                value: compile_opt(field("value")),
            }
        }
        "@merge" => {
            if obj.is_none() {
                return fail(
                    "@merge requires an object with an \"objects\" key and a \"direction\" key",
                );
            }
            if !opt_truthy(field("direction")) {
                return fail("@merge requires a \"direction\" key");
            }
            let objects = match field("objects") {
                Some(Value::Array(items)) => items.iter().map(compile).collect(),
                Some(other) if is_truthy(other) => {
                    return Directive::Fail(format!(
                        "@merge: expected opts.array, got {}",
                        kind_of(other).typeof_name()
                    ));
                }
                _ => return fail("@merge requires a \"objects\" key"),
            };
            Directive::Merge {
                direction: compile_opt(field("direction")),
                objects,
            }
        }
        "@transform" => {
            if obj.is_none() {
                return fail(
                    "@transform requires an object with an \"apply\" key and a \"mapping\" key",
                );
            }
            if !opt_truthy(field("mapping")) {
                return fail("@transform requires a \"mapping\" key");
            }
            let Some(apply) = field("apply").filter(|v| is_truthy(v)) else {
                return fail("@transform requires a \"apply\" key");
            };
            if !apply.is_object() {
                return fail("@transform \"apply\" key should be an object");
            }
            Directive::Transform {
                apply: compile_root(apply).map_err(|msgs| msgs.join(" ")),
                mapping: compile_opt(field("mapping")),
            }
        }
        "@liquid" => {
            let Value::String(text) = opts else {
                return fail("liquid template value must be a string");
            };
            if text.is_empty() {
                return Directive::Literal(Node::Static(Value::String(String::new())));
            }
            if text.encode_utf16().count() > MAX_TEMPLATE_LEN {
                return fail("liquid template values are limited to 1000 characters");
            }
            match LiquidTemplate::parse(text) {
                Ok(t) => Directive::Liquid(t),
                Err(msg) => Directive::Fail(msg),
            }
        }
        other => Directive::Fail(format!("{other} is not a valid directive, got undefined")),
    }
}

fn compile_replace(opts: &Value) -> Directive {
    let Value::Object(obj) = opts else {
        return fail("@replace requires an object with a \"pattern\" key");
    };
    if !opt_truthy(obj.get("pattern")) {
        return fail("@replace requires a \"pattern\" key");
    }
    let value = obj.get("value").filter(|v| is_truthy(v)).map(compile);
    let ignorecase = obj.get("ignorecase");
    let global = obj.get("global");
    let pattern = obj.get("pattern").and_then(Value::as_str);
    let replacement = match obj.get("replacement") {
        None => Some(""),
        Some(v) => v.as_str(),
    };
    let flags_ok = ignorecase.is_none_or(Value::is_boolean) && global.is_none_or(Value::is_boolean);
    let ignorecase = ignorecase.and_then(Value::as_bool).unwrap_or(false);
    let global_flag = global.and_then(Value::as_bool).unwrap_or(true);

    let mut length_error = None;
    let passes = match (pattern, replacement) {
        (Some(p), Some(r)) if flags_ok => {
            if p.encode_utf16().count() > crate::MAX_PATTERN_LENGTH {
                length_error =
                    Some("@replace requires a \"pattern\" less than 10 characters".to_owned());
            } else if r.encode_utf16().count() > crate::MAX_REPLACEMENT_LENGTH {
                length_error =
                    Some("@replace requires a \"replacement\" less than 10 characters".to_owned());
            }
            let mut passes = vec![ReplacePass {
                matcher: matcher(p, ignorecase),
                replacement: parse_replacement(r),
            }];
            if let Some(Value::String(p2)) = obj.get("pattern2") {
                if !p2.is_empty() {
                    let r2 = obj
                        .get("replacement2")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    passes.push(ReplacePass {
                        matcher: matcher(p2, ignorecase),
                        replacement: parse_replacement(r2),
                    });
                }
            }
            Some(passes)
        }
        _ => None,
    };
    Directive::Replace(Replace {
        value,
        passes,
        length_error,
        global: global_flag,
    })
}

fn matcher(pattern: &str, ignorecase: bool) -> Matcher {
    if ignorecase {
        match regex::RegexBuilder::new(&regex::escape(pattern))
            .case_insensitive(true)
            .build()
        {
            Ok(re) => Matcher::Folded(re),
            // An escaped literal of at most a few characters always compiles; fall back to an
            // exact match if the regex engine refuses it anyway.
            Err(_) => Matcher::Exact(pattern.to_owned()),
        }
    } else {
        Matcher::Exact(pattern.to_owned())
    }
}

/// Splits a replacement string into text and JavaScript `$` sequences (`$&`, `` $` ``, `$'`,
/// `$$`); any other `$` is literal because the escaped pattern has no capture groups.
fn parse_replacement(r: &str) -> Vec<ReplPart> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut chars = r.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            text.push(c);
            continue;
        }
        let special = match chars.peek() {
            Some('&') => Some(ReplPart::Matched),
            Some('`') => Some(ReplPart::Before),
            Some('\'') => Some(ReplPart::After),
            Some('$') => {
                chars.next();
                text.push('$');
                continue;
            }
            _ => None,
        };
        match special {
            Some(part) => {
                chars.next();
                if !text.is_empty() {
                    parts.push(ReplPart::Text(std::mem::take(&mut text)));
                }
                parts.push(part);
            }
            None => text.push('$'),
        }
    }
    if !text.is_empty() {
        parts.push(ReplPart::Text(text));
    }
    parts
}
