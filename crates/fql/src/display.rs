//! Printing a tree as canonical FQL, in the style of Segment's `generateFql` (spec §4.4).
//!
//! Strings are double-quoted, numbers and booleans bare, functions written `contains(x, "v")`,
//! `match(x, "v*")`, `match(x, "*v")`, existence as `x != null`, field paths escape every character
//! outside `[A-Za-z0-9._-]` with a backslash. Nested groups are always parenthesised, as
//! `generateFql` does: with our precedence `a and b or c` would not need them, but Segment reads
//! that text as an `or` of all three, so the parentheses keep the printed trigger meaning the same
//! thing in both.

use std::fmt::{self, Write};

use crate::ast::{Condition, Expr, Field, Literal, Operator};

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match effective(self) {
            Expr::Condition(condition) => write_condition(f, condition),
            Expr::And(children) => write_group(f, children, " and "),
            Expr::Or(children) => write_group(f, children, " or "),
        }
    }
}

/// A one-child group means its child: look through any number of them.
fn effective(mut expr: &Expr) -> &Expr {
    while let Expr::And(children) | Expr::Or(children) = expr {
        match children.as_slice() {
            [only] => expr = only,
            _ => break,
        }
    }
    expr
}

fn write_group(f: &mut fmt::Formatter<'_>, children: &[Expr], joiner: &str) -> fmt::Result {
    for (idx, child) in children.iter().enumerate() {
        if idx > 0 {
            f.write_str(joiner)?;
        }
        match effective(child) {
            Expr::Condition(condition) => write_condition(f, condition)?,
            group => write!(f, "({group})")?,
        }
    }
    Ok(())
}

fn write_field(f: &mut fmt::Formatter<'_>, field: &Field) -> fmt::Result {
    f.write_str(field.root_key())?;
    if let Some(path) = field.path() {
        f.write_char('.')?;
        for c in path.name().chars() {
            if !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
                f.write_char('\\')?;
            }
            f.write_char(c)?;
        }
    }
    Ok(())
}

fn write_literal(f: &mut fmt::Formatter<'_>, value: &Literal) -> fmt::Result {
    match value {
        Literal::String(s) => write!(f, "\"{s}\""),
        Literal::Number(n) => write_number(f, *n),
        Literal::Bool(b) => write!(f, "{b}"),
    }
}

/// Numbers print in plain decimal (never with an exponent, which FQL cannot read back).
fn write_number(f: &mut fmt::Formatter<'_>, n: f64) -> fmt::Result {
    write!(f, "{n}")
}

fn write_condition(f: &mut fmt::Formatter<'_>, condition: &Condition) -> fmt::Result {
    let op = condition.operator();
    let (function, negated) = match op {
        Operator::Contains => (Some("contains"), false),
        Operator::NotContains => (Some("contains"), true),
        Operator::StartsWith | Operator::EndsWith => (Some("match"), false),
        Operator::NotStartsWith | Operator::NotEndsWith => (Some("match"), true),
        _ => (None, false),
    };
    if let Some(function) = function {
        if negated {
            f.write_char('!')?;
        }
        write!(f, "{function}(")?;
        write_field(f, condition.field())?;
        let text = condition.text();
        return match op {
            Operator::StartsWith | Operator::NotStartsWith => write!(f, ", \"{text}*\")"),
            Operator::EndsWith | Operator::NotEndsWith => write!(f, ", \"*{text}\")"),
            _ => write!(f, ", \"{text}\")"),
        };
    }
    write_field(f, condition.field())?;
    match op {
        Operator::Exists => f.write_str(" != null"),
        Operator::NotExists => f.write_str(" = null"),
        Operator::IsTrue => f.write_str(" = true"),
        Operator::IsFalse => f.write_str(" = false"),
        Operator::NumberEquals | Operator::NumberNotEquals => {
            f.write_str(if op == Operator::NumberEquals {
                " = "
            } else {
                " != "
            })?;
            let number = condition.number();
            if number.is_finite() {
                write_number(f, number)
            } else {
                // A non-numeric value can only come from a hand-built tree; print it as written.
                write!(f, "\"{}\"", condition.text())
            }
        }
        _ => {
            write!(f, " {op} ")?;
            match condition.value() {
                Some(value) => write_literal(f, value),
                None => f.write_str("null"),
            }
        }
    }
}
