//! `@liquid`: templates parsed once with the `liquid` engine (liquid-core plus liquid-lib's standard
//! library) and rendered against the payload, with Segment's restrictions.
//!
//! Restrictions reproduced: the tags `case`, `for`, `include`, `layout`, `render` and `tablerow`
//! fail with `tag "<t>" is disabled` (when the template is parsed, which Segment does at evaluation
//! time, so the error surfaces from `evaluate`); the filters Segment disables fail with
//! `filter "<f>" is disabled` when they run; templates longer than 1000 characters fail with
//! `liquid template values are limited to 1000 characters`; undefined variables render as `""`.

// Newer liquid-core releases deprecate the `KString*` aliases, yet the `Runtime` trait we implement
// is still written in terms of them.
#![allow(deprecated)]

use std::io::Write;
use std::sync::{Arc, OnceLock};

use liquid_core::model::{KString, KStringCow, KStringRef, Object, Scalar, ScalarCow, ValueCow};
use liquid_core::parser::{FilterArguments, FilterReflection, ParameterReflection, ParseFilter};
use liquid_core::runtime::{PartialStore, Registers, Renderable, Runtime, RuntimeBuilder};
use liquid_core::{Filter, Language, ParseTag, TagReflection, TagTokenIter, ValueView};
use serde_json::Value;

/// Tags Segment disables.
pub(crate) const DISABLED_TAGS: &[&str] =
    &["case", "for", "include", "layout", "render", "tablerow"];

/// Filters Segment disables (some of them do not exist in liquid-lib; they are disabled anyway).
pub(crate) const DISABLED_FILTERS: &[&str] = &[
    "array_to_sentence_string",
    "concat",
    "find",
    "find_exp",
    "find_index",
    "find_index_exp",
    "group_by",
    "group_by_exp",
    "has",
    "has_exp",
    "map",
    "newline_to_br",
    "reject",
    "reject_exp",
    "reverse",
    "sort",
    "sort_natural",
    "uniq",
    "where_exp",
    "type",
];

/// Largest template Segment accepts, in UTF-16 code units (JavaScript string length).
pub(crate) const MAX_TEMPLATE_LEN: usize = 1000;

/// Cap on a value stored by `assign`/`capture` and on the rendered output, in bytes. liquidjs
/// enforces a 1e8 memory limit instead; liquid-rust has none, so this bounds doubling attacks.
const MAX_VALUE_BYTES: usize = 1_000_000;

/// The message used when the byte caps are exceeded.
const MEMORY_MESSAGE: &str = "memory alloc limit exceeded";

/// A parsed `@liquid` template.
pub(crate) struct LiquidTemplate {
    template: liquid_core::runtime::Template,
}

impl std::fmt::Debug for LiquidTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiquidTemplate")
    }
}

/// The shared parser configuration: liquid-lib's standard library minus Segment's disabled tags
/// and filters.
fn language() -> &'static Arc<Language> {
    static LANGUAGE: OnceLock<Arc<Language>> = OnceLock::new();
    LANGUAGE.get_or_init(|| {
        use liquid_lib::stdlib;
        let mut lang = Language::empty();
        let tags: Vec<Box<dyn ParseTag>> = vec![
            Box::new(stdlib::AssignTag),
            Box::new(stdlib::BreakTag),
            Box::new(stdlib::ContinueTag),
            Box::new(stdlib::CycleTag),
            Box::new(stdlib::IncrementTag),
            Box::new(stdlib::DecrementTag),
        ];
        for tag in tags {
            lang.tags.register(tag.reflection().tag().to_owned(), tag);
        }
        let blocks: Vec<Box<dyn liquid_core::ParseBlock>> = vec![
            Box::new(stdlib::RawBlock),
            Box::new(stdlib::IfBlock),
            Box::new(stdlib::UnlessBlock),
            Box::new(stdlib::IfChangedBlock),
            Box::new(stdlib::CommentBlock),
            Box::new(stdlib::CaptureBlock),
        ];
        for block in blocks {
            lang.blocks
                .register(block.reflection().start_tag().to_owned(), block);
        }
        for name in DISABLED_TAGS {
            lang.tags
                .register((*name).to_owned(), Box::new(DisabledTag { name }));
        }
        let filters: Vec<Box<dyn ParseFilter>> = vec![
            Box::new(stdlib::Abs),
            Box::new(stdlib::Append),
            Box::new(stdlib::AtLeast),
            Box::new(stdlib::AtMost),
            Box::new(stdlib::Capitalize),
            Box::new(stdlib::Ceil),
            Box::new(stdlib::Compact),
            Box::new(stdlib::Date),
            Box::new(stdlib::Default),
            Box::new(stdlib::DividedBy),
            Box::new(stdlib::Downcase),
            Box::new(stdlib::Escape),
            Box::new(stdlib::EscapeOnce),
            Box::new(stdlib::First),
            Box::new(stdlib::Floor),
            Box::new(stdlib::Join),
            Box::new(stdlib::Last),
            Box::new(stdlib::Lstrip),
            Box::new(stdlib::Minus),
            Box::new(stdlib::Modulo),
            Box::new(stdlib::Plus),
            Box::new(stdlib::Prepend),
            Box::new(stdlib::Remove),
            Box::new(stdlib::RemoveFirst),
            Box::new(stdlib::Replace),
            Box::new(stdlib::ReplaceFirst),
            Box::new(stdlib::Round),
            Box::new(stdlib::Rstrip),
            Box::new(stdlib::Size),
            Box::new(stdlib::Slice),
            Box::new(stdlib::Split),
            Box::new(stdlib::Strip),
            Box::new(stdlib::StripHtml),
            Box::new(stdlib::StripNewlines),
            Box::new(stdlib::Times),
            Box::new(stdlib::Truncate),
            Box::new(stdlib::TruncateWords),
            Box::new(stdlib::Upcase),
            Box::new(stdlib::UrlDecode),
            Box::new(stdlib::UrlEncode),
            Box::new(stdlib::Where),
        ];
        for filter in filters {
            lang.filters
                .register(filter.reflection().name().to_owned(), filter);
        }
        for name in DISABLED_FILTERS {
            lang.filters
                .register((*name).to_owned(), Box::new(DisabledFilter { name }));
        }
        Arc::new(lang)
    })
}

/// Reduces a liquid error to its primary message (liquid prefixes `liquid: ` and appends context
/// lines; Segment's messages are a single line).
fn message_of(err: &liquid_core::Error) -> String {
    let text = err.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("liquid: ").unwrap_or(first).to_owned()
}

impl LiquidTemplate {
    /// Parses a template; the error is Segment's (or the engine's) message.
    pub(crate) fn parse(text: &str) -> Result<LiquidTemplate, String> {
        let elements = liquid_core::parser::parse(text, language()).map_err(|e| message_of(&e))?;
        Ok(LiquidTemplate {
            template: liquid_core::runtime::Template::new(elements),
        })
    }

    /// Renders against `payload` (any JSON; non-objects give an empty scope).
    pub(crate) fn render(&self, payload: &Value) -> Result<String, String> {
        let globals = match payload {
            Value::Object(map) => object_of(map),
            _ => Object::new(),
        };
        let inner = RuntimeBuilder::new().set_globals(&globals).build();
        let runtime = LaxRuntime {
            inner,
            over_limit: std::cell::Cell::new(false),
        };
        let mut out = BoundedWriter { buf: Vec::new() };
        let res = self.template.render_to(&mut out, &runtime);
        if runtime.over_limit.get() {
            return Err(MEMORY_MESSAGE.to_owned());
        }
        res.map_err(|e| {
            let msg = message_of(&e);
            if msg.contains(MEMORY_MESSAGE) {
                MEMORY_MESSAGE.to_owned()
            } else {
                msg
            }
        })?;
        String::from_utf8(out.buf).map_err(|_| "liquid template rendered invalid UTF-8".to_owned())
    }
}

/// A writer that refuses to grow past [`MAX_VALUE_BYTES`].
struct BoundedWriter {
    buf: Vec<u8>,
}

impl Write for BoundedWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > MAX_VALUE_BYTES {
            return Err(std::io::Error::other(MEMORY_MESSAGE));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Converts JSON to liquid values; whole floats become integers, as JavaScript prints them.
fn value_of(v: &Value) -> liquid_core::Value {
    match v {
        Value::Null => liquid_core::Value::Nil,
        Value::Bool(b) => liquid_core::Value::Scalar(Scalar::new(*b)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                liquid_core::Value::Scalar(Scalar::new(i))
            } else {
                let f = n.as_f64().unwrap_or(0.0);
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    liquid_core::Value::Scalar(Scalar::new(f as i64))
                } else {
                    liquid_core::Value::Scalar(Scalar::new(f))
                }
            }
        }
        Value::String(s) => liquid_core::Value::Scalar(Scalar::new(s.clone())),
        Value::Array(items) => liquid_core::Value::Array(items.iter().map(value_of).collect()),
        Value::Object(map) => liquid_core::Value::Object(object_of(map)),
    }
}

fn object_of(map: &serde_json::Map<String, Value>) -> Object {
    let mut obj = Object::new();
    for (k, v) in map {
        obj.insert(KString::from_ref(k), value_of(v));
    }
    obj
}

/// A runtime that renders undefined variables as nil (liquidjs's default) instead of failing,
/// and caps the size of values stored by `assign` and `capture`.
struct LaxRuntime<R> {
    inner: R,
    over_limit: std::cell::Cell<bool>,
}

impl<R: Runtime> Runtime for LaxRuntime<R> {
    fn partials(&self) -> &dyn PartialStore {
        self.inner.partials()
    }

    fn name(&self) -> Option<KStringRef<'_>> {
        self.inner.name()
    }

    fn roots(&self) -> std::collections::BTreeSet<KStringCow<'_>> {
        self.inner.roots()
    }

    fn try_get(&self, path: &[ScalarCow<'_>]) -> Option<ValueCow<'_>> {
        self.inner.try_get(path)
    }

    fn get(&self, path: &[ScalarCow<'_>]) -> liquid_core::Result<ValueCow<'_>> {
        Ok(self
            .inner
            .try_get(path)
            .unwrap_or(ValueCow::Owned(liquid_core::Value::Nil)))
    }

    fn set_global(&self, name: KString, val: liquid_core::Value) -> Option<liquid_core::Value> {
        let too_big = match &val {
            liquid_core::Value::Scalar(s) => s.to_kstr().len() > MAX_VALUE_BYTES,
            liquid_core::Value::Array(items) => items.len() > MAX_VALUE_BYTES,
            _ => false,
        };
        if too_big {
            self.over_limit.set(true);
            return self.inner.set_global(name, liquid_core::Value::Nil);
        }
        self.inner.set_global(name, val)
    }

    fn set_index(&self, name: KString, val: liquid_core::Value) -> Option<liquid_core::Value> {
        self.inner.set_index(name, val)
    }

    fn get_index<'a>(&'a self, name: &str) -> Option<ValueCow<'a>> {
        self.inner.get_index(name)
    }

    fn registers(&self) -> &Registers {
        self.inner.registers()
    }
}

/// A tag that always fails to parse with Segment's message.
#[derive(Clone)]
struct DisabledTag {
    name: &'static str,
}

impl TagReflection for DisabledTag {
    fn tag(&self) -> &str {
        self.name
    }

    fn description(&self) -> &str {
        "disabled by Segment"
    }
}

impl ParseTag for DisabledTag {
    fn parse(
        &self,
        _arguments: TagTokenIter<'_>,
        _options: &Language,
    ) -> liquid_core::Result<Box<dyn Renderable>> {
        Err(liquid_core::Error::with_msg(format!(
            "tag \"{}\" is disabled",
            self.name
        )))
    }

    fn reflection(&self) -> &dyn TagReflection {
        self
    }
}

/// A filter that parses (with any arguments) but fails when it runs, as in liquidjs.
#[derive(Clone)]
struct DisabledFilter {
    name: &'static str,
}

impl FilterReflection for DisabledFilter {
    fn name(&self) -> &str {
        self.name
    }

    fn description(&self) -> &str {
        "disabled by Segment"
    }

    fn positional_parameters(&self) -> &'static [ParameterReflection] {
        &[]
    }

    fn keyword_parameters(&self) -> &'static [ParameterReflection] {
        &[]
    }
}

impl ParseFilter for DisabledFilter {
    fn parse(&self, _arguments: FilterArguments<'_>) -> liquid_core::Result<Box<dyn Filter>> {
        Ok(Box::new(DisabledFilterRun { name: self.name }))
    }

    fn reflection(&self) -> &dyn FilterReflection {
        self
    }
}

#[derive(Debug)]
struct DisabledFilterRun {
    name: &'static str,
}

impl std::fmt::Display for DisabledFilterRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl Filter for DisabledFilterRun {
    fn evaluate(
        &self,
        _input: &dyn ValueView,
        _runtime: &dyn Runtime,
    ) -> liquid_core::Result<liquid_core::Value> {
        Err(liquid_core::Error::with_msg(format!(
            "filter \"{}\" is disabled",
            self.name
        )))
    }
}
