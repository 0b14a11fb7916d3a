//! `@liquid`: our own Liquid interpreter, written to give exactly what liquidjs 10.31 gives as
//! Segment configures it (disabled tags and filters, lax filters and variables, limits).
//!
//! A template is read once (when the mapping is compiled) into nodes; rendering walks them over
//! the event, borrowing its values. Errors carry liquidjs's wording and its `, line:N, col:M`
//! suffix, counted in UTF-16 units like JavaScript.
//!
//! - [`lexer`]: the tokenizer (top-level tokens, whitespace control, expressions, filters).
//! - [`parse`]: tags to nodes.
//! - [`render`]: scopes, property lookup, operators and memory accounting.
//! - [`filters`], [`date`]: the filters (SHA-256 and base64 from the `sha2`, `hmac` and `base64`
//!   crates).

mod ast;
mod date;
mod filters;
mod lexer;
mod parse;
mod render;
#[cfg(test)]
mod tests;
mod value;

use serde_json::Value;

use self::ast::Node;
use self::lexer::{LexError, Lexer};
use self::render::Ctx;
use self::value::LVal;

/// Tags Segment disables.
pub(crate) const DISABLED_TAGS: &[&str] =
    &["case", "for", "include", "layout", "render", "tablerow"];

/// Filters Segment disables (`type` is not a liquidjs filter; it is disabled anyway).
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

/// A parsed `@liquid` template.
pub(crate) struct LiquidTemplate {
    nodes: Vec<Node>,
}

impl std::fmt::Debug for LiquidTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiquidTemplate")
    }
}

/// Formats an error with liquidjs's position suffix (when it has a position).
fn located(src: &[u16], e: LexError) -> String {
    match e.pos {
        Some(p) => {
            let pos = parse::position(src, p);
            format!("{}, line:{}, col:{}", e.msg, pos.line, pos.col)
        }
        None => e.msg,
    }
}

impl LiquidTemplate {
    /// Parses a template; the error is liquidjs's message.
    pub(crate) fn parse(text: &str) -> Result<LiquidTemplate, String> {
        let src: Vec<u16> = text.encode_utf16().collect();
        if src.len() > MAX_TEMPLATE_LEN {
            // The caller checks this first; the guard keeps parsing bounded for any caller.
            return Err("liquid template values are limited to 1000 characters".to_owned());
        }
        let nodes = parse::parse_template(&src).map_err(|e| located(&src, e))?;
        Ok(LiquidTemplate { nodes })
    }

    /// Renders against `payload` (an object; other values give an empty scope).
    pub(crate) fn render(&self, payload: &Value) -> Result<String, String> {
        let mut ctx = Ctx::new(payload);
        let mut out = String::new();
        ctx.render_nodes(&self.nodes, &mut out)
            .map_err(|e| match e.pos {
                Some(pos) => format!("{}, line:{}, col:{}", e.msg, pos.line, pos.col),
                None => e.msg,
            })?;
        Ok(out)
    }
}

/// Reads a property path given to a filter as a string (`where: "a.b"`), as liquidjs's
/// `readScopeValue` does; dynamic parts (`a[b]`) are not evaluated and find nothing.
fn property_path<'a>(text: &str) -> Result<Vec<LVal<'a>>, String> {
    let src: Vec<u16> = text.encode_utf16().collect();
    let mut lx = Lexer::new(&src, 0, src.len());
    lx.skip_blank();
    let props = lx
        .read_scope_props()
        .map_err(|e| format!("{}{}", render::LOCATED, located(&src, e)))?;
    Ok(props
        .into_iter()
        .map(|p| match p {
            ast::Operand::Lit(ast::Lit::Str(s)) => LVal::string(s),
            ast::Operand::Lit(ast::Lit::Num(n)) => LVal::Num(n),
            ast::Operand::Lit(ast::Lit::Bool(b)) => LVal::Bool(b),
            ast::Operand::Lit(ast::Lit::Nil) => LVal::Null,
            ast::Operand::Lit(ast::Lit::Empty | ast::Lit::Blank) => LVal::string(""),
            _ => LVal::Undef,
        })
        .collect())
}
