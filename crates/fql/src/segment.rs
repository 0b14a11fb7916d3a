//! Conversion to and from Segment's JSON AST, the shape `parseFql` returns and `validate` reads:
//! `{"type":"group","operator":"and","children":[{"type":"event-property","name":"price",
//! "operator":">=","value":100}]}`.

use serde_json::{Map, Number, Value, json};

use crate::ast::{AstError, Condition, Expr, Field, Literal, Operator, Path};
use crate::parser::MAX_DEPTH;

impl Expr {
    /// This tree in Segment's JSON AST shape.
    ///
    /// Like Segment's `parseFql`, the top level is always a group: a lone condition is wrapped in
    /// an `and` group of one.
    pub fn to_segment_ast(&self) -> Value {
        match self {
            Expr::Condition(_) => json!({
                "type": "group",
                "operator": "and",
                "children": [node_to_json(self)],
            }),
            _ => node_to_json(self),
        }
    }

    /// Builds a tree from Segment's JSON AST.
    ///
    /// A top-level group with a single child becomes that child (undoing the wrapping
    /// [`Expr::to_segment_ast`] and Segment's `parseFql` add). An AST of the form `{"error": …}` (a
    /// failed Segment parse) is rejected, as are unknown node types or operators, groups without
    /// children, property/trait/context conditions without a usable `name`, missing values, and
    /// values that are not a string, number or boolean. A value on `exists`, `not_exists`,
    /// `is_true` or `is_false` is ignored, as Segment ignores it.
    pub fn from_segment_ast(ast: &Value) -> Result<Expr, AstError> {
        let expr = node_from_json(ast, &mut String::new(), 0)?;
        Ok(match expr {
            Expr::And(mut children) | Expr::Or(mut children) if children.len() == 1 => {
                children.pop().unwrap_or(Expr::And(Vec::new()))
            }
            other => other,
        })
    }
}

fn number_to_json(n: f64) -> Value {
    // Integral values print as JSON integers (`100`, not `100.0`), as JavaScript's JSON does.
    const SAFE: f64 = 9_007_199_254_740_992.0;
    if n.fract() == 0.0 && n.abs() < SAFE {
        return Value::from(n as i64);
    }
    Number::from_f64(n).map_or(Value::Null, Value::Number)
}

fn node_to_json(expr: &Expr) -> Value {
    match expr {
        Expr::And(children) | Expr::Or(children) => {
            let operator = if matches!(expr, Expr::And(_)) {
                "and"
            } else {
                "or"
            };
            json!({
                "type": "group",
                "operator": operator,
                "children": children.iter().map(node_to_json).collect::<Vec<_>>(),
            })
        }
        Expr::Condition(condition) => {
            let mut node = Map::new();
            let field = condition.field();
            node.insert("type".to_owned(), Value::from(field.segment_type()));
            if let Some(path) = field.path() {
                node.insert("name".to_owned(), Value::from(path.name()));
            }
            node.insert(
                "operator".to_owned(),
                Value::from(condition.operator().as_str()),
            );
            if let Some(value) = condition.value() {
                let value = match value {
                    Literal::String(s) => Value::from(s.as_str()),
                    Literal::Number(n) => number_to_json(*n),
                    Literal::Bool(b) => Value::Bool(*b),
                };
                node.insert("value".to_owned(), value);
            }
            Value::Object(node)
        }
    }
}

fn err(pointer: &str, message: String) -> AstError {
    AstError {
        pointer: pointer.to_owned(),
        message,
    }
}

/// Describes a JSON value's kind for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn str_member<'a>(
    node: &'a Map<String, Value>,
    key: &str,
    pointer: &str,
) -> Result<&'a str, AstError> {
    match node.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(err(
            pointer,
            format!(
                "expected \"{key}\" to be a string but found {}",
                kind(other)
            ),
        )),
        None => Err(err(
            pointer,
            format!("expected a \"{key}\" member but found none"),
        )),
    }
}

fn node_from_json(value: &Value, pointer: &mut String, depth: usize) -> Result<Expr, AstError> {
    if depth > MAX_DEPTH {
        return Err(err(
            pointer,
            format!("expected groups nested at most {MAX_DEPTH} deep but found more"),
        ));
    }
    let Value::Object(node) = value else {
        return Err(err(
            pointer,
            format!("expected an object but found {}", kind(value)),
        ));
    };
    if let Some(error) = node.get("error") {
        let detail = match error {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        return Err(err(
            pointer,
            format!("expected a condition tree but found Segment's parse error {detail}"),
        ));
    }
    let node_type = str_member(node, "type", pointer)?;
    if node_type == "group" {
        let operator = str_member(node, "operator", pointer)?;
        let is_and = match operator {
            "and" => true,
            "or" => false,
            other => {
                return Err(err(
                    pointer,
                    format!("expected group operator \"and\" or \"or\" but found \"{other}\""),
                ));
            }
        };
        let children = match node.get("children") {
            Some(Value::Array(children)) if !children.is_empty() => children,
            Some(Value::Array(_)) => {
                return Err(err(
                    pointer,
                    "expected a group with children but found none".to_owned(),
                ));
            }
            Some(other) => {
                return Err(err(
                    pointer,
                    format!(
                        "expected \"children\" to be an array but found {}",
                        kind(other)
                    ),
                ));
            }
            None => {
                return Err(err(
                    pointer,
                    "expected a \"children\" member but found none".to_owned(),
                ));
            }
        };
        let base_len = pointer.len();
        let mut exprs = Vec::with_capacity(children.len());
        for (idx, child) in children.iter().enumerate() {
            pointer.push_str(&format!("/children/{idx}"));
            exprs.push(node_from_json(child, pointer, depth + 1)?);
            pointer.truncate(base_len);
        }
        return Ok(if is_and {
            Expr::And(exprs)
        } else {
            Expr::Or(exprs)
        });
    }
    let field = match node_type {
        "event-type" => Field::Type,
        "event" => Field::Event,
        "name" => Field::Name,
        "userId" => Field::UserId,
        "event-property" | "event-trait" | "event-context" => {
            let name = str_member(node, "name", pointer)?;
            let path = Path::new(name).map_err(|e| err(pointer, e.message))?;
            match node_type {
                "event-property" => Field::Property(path),
                "event-trait" => Field::Trait(path),
                _ => Field::Context(path),
            }
        }
        other => {
            return Err(err(
                pointer,
                format!(
                    "expected node type group, event-type, event, name, userId, event-property, \
                     event-trait or event-context but found \"{other}\""
                ),
            ));
        }
    };
    let operator_name = str_member(node, "operator", pointer)?;
    let operator = Operator::from_segment_name(operator_name).ok_or_else(|| {
        err(
            pointer,
            format!("expected a known operator but found \"{operator_name}\""),
        )
    })?;
    let value = if operator.takes_value() {
        match node.get("value") {
            None => None,
            Some(Value::String(s)) => Some(Literal::String(s.clone())),
            Some(Value::Bool(b)) => Some(Literal::Bool(*b)),
            Some(Value::Number(n)) => n.as_f64().map(Literal::Number),
            Some(other) => {
                return Err(err(
                    pointer,
                    format!(
                        "expected the value to be a string, number or boolean but found {}",
                        kind(other)
                    ),
                ));
            }
        }
    } else {
        None
    };
    Condition::new(field, operator, value)
        .map(Expr::Condition)
        .map_err(|e| err(pointer, e.message))
}
