//! The recursive-descent parser: tokens to a canonical [`Expr`], applying Segment's value
//! conversions (`= null` → `not_exists`, `= true` → `is_true`, `= 5` → `number_equals`, …).
//!
//! Grammar (`and` binds tighter than `or`):
//!
//! ```text
//! expr       = and_expr { "or" and_expr }
//! and_expr   = unary { "and" unary }
//! unary      = "!" function | "(" expr ")" | function | comparison
//! function   = ("contains" | "match") "(" field "," value ")"
//! comparison = field ("=" | "!=" | "<" | "<=" | ">" | ">=") value
//! value      = string | number | "true" | "false" | "null"
//! ```

use crate::ParseError;
use crate::ast::{Condition, Expr, Field, Literal, Operator, Path};
use crate::js;
use crate::lexer::{Lexer, Token, TokenKind, column_at};

/// How deeply parentheses may nest; deeper input is rejected rather than risking the stack.
pub(crate) const MAX_DEPTH: usize = 64;

const FIELD_EXPECTED: &str =
    "a field (type, event, name, userId, properties.<path>, traits.<path> or context.<path>)";
const FUNCTION_FIELD_EXPECTED: &str =
    "a field (event, name, userId, properties.<path>, traits.<path> or context.<path>)";
const OPERATOR_EXPECTED: &str = "an operator (=, !=, <, <=, >, >=)";
const VALUE_EXPECTED: &str = "a value (a \"string\", a number, true, false or null)";

/// Shortens long source excerpts in error messages to 40 characters.
pub(crate) fn shorten(text: &str) -> String {
    const MAX: usize = 40;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// A value as written, before Segment's per-field conversion.
enum RawValue {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

impl RawValue {
    /// JavaScript's `String(value)` of the converted token (Segment's `String(getTokenValue(t))`).
    fn into_text(self) -> String {
        match self {
            RawValue::Str(s) => s,
            RawValue::Num(n) => js::number_to_string(n),
            RawValue::Bool(b) => b.to_string(),
            RawValue::Null => "null".to_owned(),
        }
    }
}

struct Parser<'s> {
    src: &'s str,
    lexer: Lexer<'s>,
    cur: Token,
    /// The span of the last consumed token, for "after 'x'" in messages.
    prev: Option<(usize, usize)>,
}

/// Parses a whole trigger.
pub(crate) fn parse(src: &str) -> Result<Expr, ParseError> {
    let mut lexer = Lexer::new(src);
    let cur = lexer.next_token()?;
    let mut parser = Parser {
        src,
        lexer,
        cur,
        prev: None,
    };
    let expr = parser.expr(0)?;
    if parser.cur.kind != TokenKind::Eos {
        let hint = parser.uppercase_keyword_hint();
        return Err(parser.error_here(format!(
            "expected 'and', 'or' or end of input but found {}{hint}",
            parser.found()
        )));
    }
    Ok(expr)
}

impl<'s> Parser<'s> {
    fn advance(&mut self) -> Result<Token, ParseError> {
        let next = self.lexer.next_token()?;
        let token = std::mem::replace(&mut self.cur, next);
        self.prev = Some((token.start, token.end));
        Ok(token)
    }

    fn raw(&self, token: &Token) -> &'s str {
        &self.src[token.start..token.end]
    }

    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self.cur.kind, TokenKind::Ident(_)) && self.raw(&self.cur) == keyword
    }

    /// Describes the current token for "but found …".
    fn found(&self) -> String {
        match &self.cur.kind {
            TokenKind::Eos => "end of input".to_owned(),
            TokenKind::Str(_) => shorten(self.raw(&self.cur)),
            _ => format!("'{}'", shorten(self.raw(&self.cur))),
        }
    }

    /// ` after 'x'` naming the previous token, or nothing at the start of the input.
    fn after_prev(&self) -> String {
        match self.prev {
            Some((start, end)) => format!(" after '{}'", shorten(&self.src[start..end])),
            None => String::new(),
        }
    }

    fn uppercase_keyword_hint(&self) -> &'static str {
        let raw = self.raw(&self.cur);
        if matches!(self.cur.kind, TokenKind::Ident(_))
            && (raw.eq_ignore_ascii_case("and") || raw.eq_ignore_ascii_case("or"))
        {
            " (keywords are lowercase)"
        } else {
            ""
        }
    }

    fn error_at(&self, offset: usize, message: String) -> ParseError {
        ParseError {
            column: column_at(self.src, offset),
            message,
        }
    }

    fn error_here(&self, message: String) -> ParseError {
        self.error_at(self.cur.start, message)
    }

    fn expr(&mut self, depth: usize) -> Result<Expr, ParseError> {
        let mut items = vec![self.and_expr(depth)?];
        while self.is_keyword("or") {
            self.advance()?;
            items.push(self.and_expr(depth)?);
        }
        Ok(collect_group(items, false))
    }

    fn and_expr(&mut self, depth: usize) -> Result<Expr, ParseError> {
        let mut items = vec![self.unary(depth)?];
        while self.is_keyword("and") {
            self.advance()?;
            items.push(self.unary(depth)?);
        }
        Ok(collect_group(items, true))
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, ParseError> {
        match &self.cur.kind {
            TokenKind::Bang => {
                self.advance()?;
                if self.is_keyword("contains") || self.is_keyword("match") {
                    self.function(true)
                } else {
                    Err(self.error_here(format!(
                        "expected contains(…) or match(…) after '!' but found {}",
                        self.found()
                    )))
                }
            }
            TokenKind::LParen => {
                if depth >= MAX_DEPTH {
                    return Err(self.error_here(format!(
                        "expected at most {MAX_DEPTH} nested parentheses but found more"
                    )));
                }
                let open = self.advance()?;
                let inner = self.expr(depth + 1)?;
                if self.cur.kind != TokenKind::RParen {
                    let hint = self.uppercase_keyword_hint();
                    return Err(self.error_here(format!(
                        "expected 'and', 'or' or ')' to close the '(' at column {} but found \
                         {}{hint}",
                        column_at(self.src, open.start),
                        self.found()
                    )));
                }
                self.advance()?;
                Ok(inner)
            }
            TokenKind::Ident(_) if self.is_keyword("contains") || self.is_keyword("match") => {
                self.function(false)
            }
            TokenKind::Ident(_)
                if !["and", "or", "null", "true", "false"].contains(&self.raw(&self.cur)) =>
            {
                self.comparison()
            }
            _ => Err(self.error_here(format!(
                "expected a condition{} but found {}",
                self.after_prev(),
                self.found()
            ))),
        }
    }

    /// Reads the current identifier as a field and consumes it.
    fn field(&mut self, expected: &str) -> Result<(Field, &'s str), ParseError> {
        let TokenKind::Ident(name) = &self.cur.kind else {
            return Err(self.error_here(format!("expected {expected} but found {}", self.found())));
        };
        let raw = self.raw(&self.cur);
        let (head, rest) = match name.split_once('.') {
            Some((head, rest)) => (head, Some(rest)),
            None => (name.as_str(), None),
        };
        let field = match (head, rest) {
            ("type", None) => Field::Type,
            ("event", None) => Field::Event,
            ("name", None) => Field::Name,
            ("userId", None) => Field::UserId,
            ("properties" | "traits" | "context", rest) => {
                let path = rest.and_then(|rest| Path::new(rest).ok()).ok_or_else(|| {
                    self.error_here(format!(
                        "expected a path after '{head}.' (such as {head}.price) but found '{}'",
                        shorten(raw)
                    ))
                })?;
                match head {
                    "properties" => Field::Property(path),
                    "traits" => Field::Trait(path),
                    _ => Field::Context(path),
                }
            }
            _ => {
                return Err(
                    self.error_here(format!("expected {expected} but found '{}'", shorten(raw)))
                );
            }
        };
        self.advance()?;
        Ok((field, raw))
    }

    /// Reads a value token (string, number, true, false or null) and consumes it.
    fn value(&mut self, expected: &str) -> Result<RawValue, ParseError> {
        let value = match &self.cur.kind {
            TokenKind::Str(s) => RawValue::Str(s.clone()),
            TokenKind::Number(n) => RawValue::Num(*n),
            TokenKind::Ident(_) => match self.raw(&self.cur) {
                "true" => RawValue::Bool(true),
                "false" => RawValue::Bool(false),
                "null" => RawValue::Null,
                _ => return Err(self.value_error(expected)),
            },
            _ => return Err(self.value_error(expected)),
        };
        self.advance()?;
        Ok(value)
    }

    fn value_error(&self, expected: &str) -> ParseError {
        self.error_here(format!(
            "expected {expected}{} but found {}",
            self.after_prev(),
            self.found()
        ))
    }

    fn expect(&mut self, kind: TokenKind, what: &str) -> Result<(), ParseError> {
        if self.cur.kind == kind {
            self.advance()?;
            Ok(())
        } else {
            Err(self.error_here(format!(
                "expected {what}{} but found {}",
                self.after_prev(),
                self.found()
            )))
        }
    }

    fn comparison(&mut self) -> Result<Expr, ParseError> {
        let (field, _) = self.field(FIELD_EXPECTED)?;
        let operator = match self.cur.kind {
            TokenKind::Eq => Operator::Eq,
            TokenKind::Ne => Operator::Ne,
            TokenKind::Lt => Operator::Lt,
            TokenKind::Le => Operator::Le,
            TokenKind::Gt => Operator::Gt,
            TokenKind::Ge => Operator::Ge,
            _ => {
                return Err(self.error_here(format!(
                    "expected {OPERATOR_EXPECTED}{} but found {}",
                    self.after_prev(),
                    self.found()
                )));
            }
        };
        let op_start = self.cur.start;
        self.advance()?;
        let raw_value = self.value(VALUE_EXPECTED)?;
        let (operator, value) = convert(&field, operator, raw_value);
        self.condition(op_start, field, operator, value)
    }

    fn condition(
        &self,
        offset: usize,
        field: Field,
        operator: Operator,
        value: Option<Literal>,
    ) -> Result<Expr, ParseError> {
        Condition::new(field, operator, value)
            .map(Expr::Condition)
            .map_err(|err| self.error_at(offset, err.message))
    }

    fn function(&mut self, negate: bool) -> Result<Expr, ParseError> {
        let name_token = self.advance()?;
        let is_contains = self.raw(&name_token) == "contains";
        let name = if is_contains { "contains" } else { "match" };
        self.expect(TokenKind::LParen, "'('")?;
        let field_expected = format!("{FUNCTION_FIELD_EXPECTED} as the first argument of {name}()");
        let field_start = self.cur.start;
        let (field, _) = self.field(&field_expected)?;
        if field == Field::Type {
            return Err(self.error_at(
                field_start,
                format!("expected {field_expected} but found 'type'"),
            ));
        }
        self.expect(TokenKind::Comma, "','")?;
        let value_start = self.cur.start;
        let (operator, value) = if is_contains {
            let raw = self.value(&format!("a \"string\" as the second argument of {name}()"))?;
            if matches!(raw, RawValue::Null) {
                return Err(self.error_at(
                    value_start,
                    format!(
                        "expected a \"string\" as the second argument of {name}() but found 'null'"
                    ),
                ));
            }
            let op = if negate {
                Operator::NotContains
            } else {
                Operator::Contains
            };
            (op, raw.into_text())
        } else {
            let TokenKind::Str(pattern) = &self.cur.kind else {
                return Err(self.error_here(format!(
                    "expected a \"pattern*\" or \"*pattern\" string as the second argument of \
                     match() but found {}",
                    self.found()
                )));
            };
            let (op, text) = if let Some(prefix) = pattern.strip_suffix('*') {
                let op = if negate {
                    Operator::NotStartsWith
                } else {
                    Operator::StartsWith
                };
                (op, prefix.to_owned())
            } else if let Some(suffix) = pattern.strip_prefix('*') {
                let op = if negate {
                    Operator::NotEndsWith
                } else {
                    Operator::EndsWith
                };
                (op, suffix.to_owned())
            } else {
                return Err(self.error_here(format!(
                    "expected a match() pattern that starts or ends with '*' (\"abc*\" or \"*abc\") \
                     but found {}",
                    self.found()
                )));
            };
            self.advance()?;
            (op, text)
        };
        self.expect(TokenKind::RParen, "')'")?;
        self.condition(value_start, field, operator, Some(Literal::String(value)))
    }
}

/// Applies Segment's per-field conversion of `field operator value` (spec §4.2).
fn convert(field: &Field, operator: Operator, value: RawValue) -> (Operator, Option<Literal>) {
    let is_null = matches!(value, RawValue::Null);
    match field {
        Field::Type | Field::Event => (operator, Some(Literal::String(value.into_text()))),
        Field::Name | Field::UserId => match (operator, &value) {
            (Operator::Ne, _) if is_null => (Operator::Exists, None),
            (Operator::Eq, _) if is_null => (Operator::NotExists, None),
            (Operator::Eq, RawValue::Bool(true)) if *field == Field::UserId => {
                (Operator::IsTrue, None)
            }
            (Operator::Eq, RawValue::Bool(false)) if *field == Field::UserId => {
                (Operator::IsFalse, None)
            }
            _ => (operator, Some(Literal::String(value.into_text()))),
        },
        Field::Property(_) | Field::Trait(_) | Field::Context(_) => match (operator, value) {
            (Operator::Ne, RawValue::Null) => (Operator::Exists, None),
            (Operator::Eq, RawValue::Null) => (Operator::NotExists, None),
            (Operator::Eq, RawValue::Bool(true)) => (Operator::IsTrue, None),
            (Operator::Eq, RawValue::Bool(false)) => (Operator::IsFalse, None),
            (Operator::Eq, RawValue::Num(n)) => (Operator::NumberEquals, Some(Literal::Number(n))),
            (Operator::Ne, RawValue::Num(n)) => {
                (Operator::NumberNotEquals, Some(Literal::Number(n)))
            }
            (op, RawValue::Num(n)) => (op, Some(Literal::Number(n))),
            (op, RawValue::Bool(b)) => (op, Some(Literal::Bool(b))),
            (op, RawValue::Str(s)) => (op, Some(Literal::String(s))),
            (op, RawValue::Null) => (op, Some(Literal::String("null".to_owned()))),
        },
    }
}

/// Builds an `and`/`or` group from `items`, splicing in children of same-operator groups (which
/// come from parentheses) so the tree is canonical; a single item is returned as is.
fn collect_group(mut items: Vec<Expr>, is_and: bool) -> Expr {
    if items.len() == 1 {
        if let Some(only) = items.pop() {
            return only;
        }
    }
    let mut children = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Expr::And(inner) if is_and => children.extend(inner),
            Expr::Or(inner) if !is_and => children.extend(inner),
            other => children.push(other),
        }
    }
    if is_and {
        Expr::And(children)
    } else {
        Expr::Or(children)
    }
}
