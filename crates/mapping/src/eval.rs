//! Evaluation of a compiled [`Node`] tree against a payload (spec §1.3).
//!
//! Results borrow from the payload and the mapping wherever possible. Where Segment resolves a
//! mapping against an intermediate value (an `@arrayPath` item built by a directive, or the output
//! of `@transform`'s `apply`), that value is materialised as JSON and the nested result is detached
//! with [`Val::into_owned`].

use std::borrow::Cow;

use serde_json::Value;

use crate::EvalError;
use crate::compile::{
    Arg, ArrayRoot, CaseOp, Directive, JsonMode, Matcher, Node, ReplPart, Replace, ReplacePass,
};
use crate::path::CompiledPath;
use crate::value::{Kind, Val, write_js_number};

static NULL: Value = Value::Null;

type Res<'a> = Result<Val<'a>, EvalError>;

fn err<T>(message: impl Into<String>) -> Result<T, EvalError> {
    Err(EvalError {
        message: message.into(),
    })
}

/// Resolves `node` against `payload`.
pub(crate) fn resolve<'a>(node: &'a Node, payload: &'a Value) -> Res<'a> {
    match node {
        Node::Static(v) => Ok(Val::from_ref(v)),
        Node::Absent => Ok(Val::Absent),
        Node::Object(members) => {
            let mut out = Vec::with_capacity(members.len());
            for (k, child) in members {
                out.push((Cow::Borrowed(k.as_str()), resolve(child, payload)?));
            }
            Ok(Val::Obj(out))
        }
        Node::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(resolve(item, payload)?);
            }
            Ok(Val::Arr(out))
        }
        Node::Directive(d) => run(d, payload),
    }
}

/// Runs Segment's `transform` on a compiled root: the payload must be an object.
pub(crate) fn transform<'a>(root: &'a Node, payload: &'a Value) -> Res<'a> {
    if !payload.is_object() {
        return err(format!(
            "data must be an object, got {}",
            crate::value::kind_of(payload).name()
        ));
    }
    resolve(root, payload)
}

/// Resolves `node` against an owned intermediate value and detaches the result.
fn resolve_detached(node: &Node, payload: Val<'_>) -> Result<Val<'static>, EvalError> {
    let payload = payload.into_json().unwrap_or(Value::Null);
    Ok(resolve(node, &payload)?.into_owned())
}

/// A string option: pre-compiled when it was a raw string, or the text a nested mapping produced.
enum StringArg<'a, T> {
    Compiled(&'a T),
    Text(Cow<'a, str>),
}

fn resolve_string_arg<'a, T>(
    name: &str,
    arg: &'a Arg<T>,
    payload: &'a Value,
) -> Result<StringArg<'a, T>, EvalError> {
    match arg {
        Arg::Const(t) => Ok(StringArg::Compiled(t)),
        Arg::Dynamic(node) => {
            let v = resolve(node, payload)?;
            let kind = v.kind();
            match v.into_str() {
                Some(s) => Ok(StringArg::Text(s)),
                None => err(format!("{name}: expected string, got {}", kind.name())),
            }
        }
    }
}

fn run<'a>(d: &'a Directive, payload: &'a Value) -> Res<'a> {
    match d {
        Directive::Fail(msg) => err(msg.clone()),
        Directive::Path(arg) => match resolve_string_arg("@path", arg, payload)? {
            StringArg::Compiled(path) => Ok(path.get(payload)),
            StringArg::Text(text) => Ok(CompiledPath::for_path_directive(&text).get(payload)),
        },
        Directive::Template(arg) => match resolve_string_arg("@template", arg, payload)? {
            StringArg::Compiled(t) => Ok(Val::string(t.render(payload))),
            StringArg::Text(text) => Ok(Val::string(
                crate::template::Template::new(&text).render(payload),
            )),
        },
        Directive::Literal(node) => resolve(node, payload),
        Directive::If {
            exists,
            blank,
            then,
            otherwise,
        } => {
            let condition = if let Some(node) = exists {
                !resolve(node, payload)?.is_nullish()
            } else if let Some(node) = blank {
                let v = resolve(node, payload)?;
                !v.is_nullish() && !v.loosely_equals_empty_string()
            } else {
                false
            };
            match (condition, then, otherwise) {
                (true, Some(node), _) => resolve(node, payload),
                (false, _, Some(node)) => resolve(node, payload),
                _ => Ok(Val::Absent),
            }
        }
        Directive::Case { op, value } => {
            let Some(node) = value else {
                return Ok(Val::Absent);
            };
            let v = resolve(node, payload)?;
            match v.as_str() {
                Some(s) => match op {
                    CaseOp::Lower => Ok(Val::string(s.to_lowercase())),
                    CaseOp::Upper => Ok(Val::string(s.to_uppercase())),
                    CaseOp::Other => {
                        err("operator key should have a value of \"lower\" or \"upper\"")
                    }
                },
                None => Ok(v),
            }
        }
        Directive::Replace(r) => run_replace(r, payload),
        Directive::ArrayPath { root, shape } => {
            let root = match root {
                ArrayRoot::Path(path) => path.get(payload),
                ArrayRoot::Node(node) => resolve(node, payload)?,
                ArrayRoot::Missing => Val::Absent,
            };
            let Some(shape) = shape else {
                return Ok(root);
            };
            let items = match root.kind() {
                Kind::Array => root.into_items().unwrap_or_default(),
                Kind::Object => vec![root],
                _ => return Ok(root),
            };
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(match item {
                    Val::Ref(v) => resolve(shape, v)?,
                    Val::Null | Val::Absent => resolve(shape, &NULL)?,
                    owned => resolve_detached(shape, owned)?,
                });
            }
            Ok(Val::Arr(out))
        }
        Directive::Flatten {
            separator,
            value,
            omit_arrays,
        } => {
            let sep = resolve(separator, payload)?;
            let Some(sep) = sep.into_str() else {
                return err("@flatten requires a string separator");
            };
            let v = resolve(value, payload)?;
            let mut out = Vec::new();
            flatten(v, String::new(), &sep, *omit_arrays, &mut out);
            Ok(Val::Obj(out))
        }
        Directive::Json { mode, value } => {
            let v = resolve(value, payload)?;
            match mode {
                JsonMode::Encode => Ok(v.js_json().map_or(Val::Absent, Val::string)),
                JsonMode::Decode => match v.as_str() {
                    Some(s) => match serde_json::from_str::<Value>(s) {
                        Ok(parsed) => Ok(Val::owned_from_value(parsed)),
                        Err(_) => Ok(v),
                    },
                    None => Ok(v),
                },
                JsonMode::Other => Ok(Val::Absent),
            }
        }
        Directive::Merge { direction, objects } => {
            let mut resolved = Vec::with_capacity(objects.len());
            for node in objects {
                resolved.push(resolve(node, payload)?);
            }
            if resolve(direction, payload)?.as_str() == Some("left") {
                resolved.reverse();
            }
            let mut out = Vec::new();
            for source in resolved {
                assign(&mut out, source);
            }
            Ok(Val::Obj(out))
        }
        Directive::Transform { apply, mapping } => {
            let apply = match apply {
                Ok(node) => node,
                Err(msg) => return err(msg.clone()),
            };
            let applied = transform(apply, payload)?
                .into_json()
                .unwrap_or(Value::Null);
            Ok(resolve(mapping, &applied)?.into_owned())
        }
        Directive::ExcludeWhenNull(node) => {
            let v = resolve(node, payload)?;
            Ok(match v.kind() {
                Kind::Null => Val::Absent,
                Kind::Object => strip_nulls(v),
                _ => v,
            })
        }
        Directive::Liquid(t) => match t.render(payload) {
            Ok(s) => Ok(Val::string(s)),
            Err(msg) => err(msg),
        },
    }
}

fn run_replace<'a>(r: &'a Replace, payload: &'a Value) -> Res<'a> {
    let Some(node) = &r.value else {
        return Ok(Val::Absent);
    };
    let v = resolve(node, payload)?;
    let text: Cow<'_, str> = match &v {
        Val::Bool(b) | Val::Ref(Value::Bool(b)) => Cow::Owned(b.to_string()),
        Val::Num(n) | Val::Ref(Value::Number(n)) => {
            let mut s = String::new();
            write_js_number(n, &mut s);
            Cow::Owned(s)
        }
        _ => match v.as_str() {
            Some(s) => Cow::Borrowed(s),
            None => return Ok(Val::string(String::new())),
        },
    };
    let Some(passes) = &r.passes else {
        return Ok(Val::string(String::new()));
    };
    if let Some(msg) = &r.length_error {
        return err(msg.clone());
    }
    let mut current = text.into_owned();
    for pass in passes {
        current = replace_pass(&current, pass, r.global);
    }
    Ok(Val::string(current))
}

fn replace_pass(input: &str, pass: &ReplacePass, global: bool) -> String {
    let matches: Vec<(usize, usize)> = match &pass.matcher {
        Matcher::Exact(p) => {
            let found = input
                .match_indices(p.as_str())
                .map(|(i, m)| (i, i + m.len()));
            if global {
                found.collect()
            } else {
                found.take(1).collect()
            }
        }
        Matcher::Folded(re) => {
            let found = re.find_iter(input).map(|m| (m.start(), m.end()));
            if global {
                found.collect()
            } else {
                found.take(1).collect()
            }
        }
    };
    let mut out = String::with_capacity(input.len());
    let mut last = 0;
    for (start, end) in matches {
        out.push_str(&input[last..start]);
        for part in &pass.replacement {
            match part {
                ReplPart::Text(t) => out.push_str(t),
                ReplPart::Matched => out.push_str(&input[start..end]),
                ReplPart::Before => out.push_str(&input[..start]),
                ReplPart::After => out.push_str(&input[end..]),
            }
        }
        last = end;
    }
    out.push_str(&input[last..]);
    out
}

/// Sets `key` like a JavaScript property assignment: an existing key keeps its position.
fn set<'a>(out: &mut Vec<(Cow<'a, str>, Val<'a>)>, key: Cow<'a, str>, value: Val<'a>) {
    if let Some(slot) = out.iter_mut().find(|(k, _)| *k == key) {
        slot.1 = value;
    } else {
        out.push((key, value));
    }
}

/// `Object.assign(target, source)` for one source.
fn assign<'a>(out: &mut Vec<(Cow<'a, str>, Val<'a>)>, source: Val<'a>) {
    match source.kind() {
        Kind::Object => {
            for (k, v) in source.into_entries().unwrap_or_default() {
                set(out, k, v);
            }
        }
        Kind::Array => {
            for (idx, v) in source
                .into_items()
                .unwrap_or_default()
                .into_iter()
                .enumerate()
            {
                set(out, Cow::Owned(idx.to_string()), v);
            }
        }
        Kind::String => {
            let chars: Vec<String> = source
                .as_str()
                .map(|s| s.chars().map(String::from).collect())
                .unwrap_or_default();
            for (idx, c) in chars.into_iter().enumerate() {
                set(out, Cow::Owned(idx.to_string()), Val::string(c));
            }
        }
        _ => {}
    }
}

fn flatten<'a>(
    v: Val<'a>,
    prefix: String,
    sep: &str,
    omit_arrays: bool,
    out: &mut Vec<(Cow<'a, str>, Val<'a>)>,
) {
    let children: Vec<(Cow<'a, str>, Val<'a>)> = match v.kind() {
        Kind::Object => v.into_entries().unwrap_or_default(),
        Kind::Array if !omit_arrays => v
            .into_items()
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, item)| (Cow::Owned(i.to_string()), item))
            .collect(),
        _ => {
            set(out, Cow::Owned(prefix), v);
            return;
        }
    };
    for (k, child) in children {
        let key = if prefix.is_empty() {
            k.into_owned()
        } else {
            format!("{prefix}{sep}{k}")
        };
        flatten(child, key, sep, omit_arrays, out);
    }
}

/// `@excludeWhenNull` on an object: null members become absent, recursively through objects.
fn strip_nulls(v: Val<'_>) -> Val<'_> {
    match v.kind() {
        Kind::Null => Val::Absent,
        Kind::Object => Val::Obj(
            v.into_entries()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, child)| (k, strip_nulls(child)))
                .collect(),
        ),
        _ => v,
    }
}
