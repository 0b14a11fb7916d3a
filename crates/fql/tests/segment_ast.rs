//! `Expr::from_segment_ast` rejects malformed Segment ASTs with the place and the problem.

use actionkit_fql::Expr;
use serde_json::json;

#[test]
fn malformed_asts_name_what_and_where() {
    let cases = [
        (
            json!([]),
            "at the root: expected an object but found an array",
        ),
        (
            json!({"operator": "and"}),
            "at the root: expected a \"type\" member but found none",
        ),
        (
            json!({"type": "group", "operator": "xor", "children": []}),
            "at the root: expected group operator \"and\" or \"or\" but found \"xor\"",
        ),
        (
            json!({"type": "group", "operator": "and", "children": []}),
            "at the root: expected a group with children but found none",
        ),
        (
            json!({"type": "group", "operator": "and", "children": [
                {"type": "event", "operator": "=", "value": "a"},
                {"type": "group", "operator": "or", "children": [
                    {"type": "event-property", "operator": "exists"}
                ]}
            ]}),
            "at /children/1/children/0: expected a \"name\" member but found none",
        ),
        (
            json!({"type": "event-trait", "name": "..", "operator": "exists"}),
            "at the root: expected a field path with at least one name but found \"..\"",
        ),
        (
            json!({"type": "event", "operator": "like", "value": "a"}),
            "at the root: expected a known operator but found \"like\"",
        ),
        (
            json!({"type": "event", "operator": "="}),
            "at the root: expected a value for operator '=' but found none",
        ),
        (
            json!({"type": "event", "operator": "=", "value": null}),
            "at the root: expected the value to be a string, number or boolean but found null",
        ),
        (
            json!({"type": "session", "operator": "exists"}),
            "at the root: expected node type group, event-type, event, name, userId, \
             event-property, event-trait or event-context but found \"session\"",
        ),
    ];
    let mut failures = Vec::new();
    for (ast, expected) in cases {
        match Expr::from_segment_ast(&ast) {
            Ok(expr) => failures.push(format!("{ast}: expected {expected:?} but built {expr}")),
            Err(err) if err.to_string() == expected => {}
            Err(err) => failures.push(format!(
                "{ast}:\n  expected {expected:?}\n  got      {:?}",
                err.to_string()
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn value_on_a_valueless_operator_is_ignored_like_segment() {
    let ast = json!({"type": "group", "operator": "and", "children": [
        {"type": "userId", "operator": "exists", "value": "ignored"}
    ]});
    let expr = Expr::from_segment_ast(&ast).expect("valid AST");
    assert_eq!(expr.to_string(), "userId != null");
    assert_eq!(
        expr.to_segment_ast(),
        json!({"type": "group", "operator": "and", "children": [{"type": "userId", "operator": "exists"}]})
    );
}

#[test]
fn hand_built_single_child_groups_print_with_correct_precedence() {
    // An `or` wrapped in a one-child `and` inside an `and` must keep its parentheses.
    let ast = json!({"type": "group", "operator": "and", "children": [
        {"type": "event", "operator": "=", "value": "a"},
        {"type": "group", "operator": "and", "children": [
            {"type": "group", "operator": "or", "children": [
                {"type": "event", "operator": "=", "value": "b"},
                {"type": "event", "operator": "=", "value": "c"}
            ]}
        ]}
    ]});
    let expr = Expr::from_segment_ast(&ast).expect("valid AST");
    assert_eq!(
        expr.to_string(),
        r#"event = "a" and (event = "b" or event = "c")"#
    );
}
