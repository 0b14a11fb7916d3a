//! The parsed form of a template: nodes for text, outputs and tags, and expressions in postfix
//! order (liquidjs evaluates `and`/`or` right to left with one precedence, comparisons first).

use super::filters::FilterId;

/// A literal value.
#[derive(Debug, Clone)]
pub(super) enum Lit {
    Num(f64),
    Str(Box<str>),
    Bool(bool),
    /// `nil` or `null`.
    Nil,
    Empty,
    Blank,
}

/// A value: literal, variable path or range.
#[derive(Debug, Clone)]
pub(super) enum Operand {
    Lit(Lit),
    /// `base.prop[expr]…`; without a base, the first property names a variable.
    Path {
        base: Option<Box<Operand>>,
        props: Vec<Operand>,
    },
    /// `(low..high)`.
    Range(Box<Operand>, Box<Operand>),
}

/// An operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Contains,
    Not,
    And,
    Or,
}

impl Op {
    pub(super) fn precedence(self) -> u8 {
        match self {
            Op::And | Op::Or => 0,
            Op::Not => 1,
            _ => 2,
        }
    }
}

/// One item of a postfix expression.
#[derive(Debug, Clone)]
pub(super) enum ExprItem {
    Operand(Operand),
    Op(Op),
}

/// An expression in postfix order.
#[derive(Debug, Clone)]
pub(super) struct Expr {
    pub(super) postfix: Vec<ExprItem>,
}

/// A filter argument.
#[derive(Debug, Clone)]
pub(super) enum FilterArg {
    Positional(Operand),
    /// `name: value`; the filter receives the pair `[name, value]`.
    Keyword(String, Option<Operand>),
}

/// One filter of a chain.
#[derive(Debug, Clone)]
pub(super) struct FilterCall {
    pub(super) name: String,
    pub(super) id: FilterId,
    pub(super) args: Vec<FilterArg>,
}

impl FilterCall {
    pub(super) fn new(name: String, args: Vec<FilterArg>) -> FilterCall {
        let id = FilterId::lookup(&name);
        FilterCall { name, id, args }
    }
}

/// An expression followed by filters.
#[derive(Debug, Clone)]
pub(super) struct FilteredValue {
    pub(super) expr: Expr,
    pub(super) filters: Vec<FilterCall>,
    /// The source text (the `cycle` tag keys its state by it).
    pub(super) text: String,
}

/// A line and column, both from 1, counted in UTF-16 units.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pos {
    pub(super) line: u32,
    pub(super) col: u32,
}

/// One branch of `if`/`unless`: the condition, whether a truthy (or falsy) value takes it, and
/// its body.
#[derive(Debug)]
pub(super) struct Branch {
    pub(super) cond: FilteredValue,
    pub(super) when_truthy: bool,
    pub(super) body: Vec<Node>,
}

/// A template node.
#[derive(Debug)]
pub(super) enum Node {
    Text(String),
    Output(FilteredValue, Pos),
    Assign(Box<str>, FilteredValue, Pos),
    Capture(Box<str>, Vec<Node>),
    If(Vec<Branch>, Vec<Node>, Pos),
    Increment(String),
    Decrement(String),
    Cycle {
        group: Option<Operand>,
        candidates: Vec<FilteredValue>,
        fingerprint: String,
        pos: Pos,
    },
    Echo(Option<FilteredValue>, Pos),
    /// A `{% liquid %}` tag or a `{% block %}` (which adds a `block` variable).
    Block(Vec<Node>, bool),
    Raw(String),
    Break,
    Nothing,
}
