//! `Expr::misses`: which conditions an event fails and what it holds there.

use serde_json::json;

fn misses(trigger: &str, event: &serde_json::Value) -> Vec<(String, String)> {
    let expr = actionkit_fql::parse(trigger).expect("the trigger parses");
    expr.misses(event)
        .into_iter()
        .map(|miss| (miss.condition, miss.found))
        .collect()
}

#[test]
fn a_match_has_no_misses() {
    assert!(misses(r#"type = "track""#, &json!({"type": "track"})).is_empty());
}

#[test]
fn every_failing_condition_is_named_with_what_the_event_holds() {
    let event =
        json!({"type": "identify", "properties": {"price": "12", "tags": [1, 2], "n": 3.0}});
    assert_eq!(
        misses(
            r#"type = "track" and properties.price >= 10 and properties.tags != null"#,
            &event
        ),
        vec![
            (r#"type = "track""#.to_owned(), r#""identify""#.to_owned()),
            ("properties.price >= 10".to_owned(), r#""12""#.to_owned()),
        ]
    );
    assert_eq!(
        misses(
            r#"event = "A" or (userId != null and traits.x = true) or properties.n > 4"#,
            &event
        ),
        vec![
            (r#"event = "A""#.to_owned(), "absent".to_owned()),
            ("userId != null".to_owned(), "absent".to_owned()),
            ("traits.x = true".to_owned(), "absent".to_owned()),
            ("properties.n > 4".to_owned(), "3".to_owned()),
        ]
    );
}

#[test]
fn long_strings_are_shortened_and_non_objects_named() {
    let long = "x".repeat(200);
    let found = misses(r#"event = "A""#, &json!({"event": long}));
    assert_eq!(found[0].1.chars().count(), 83, "{}", found[0].1);
    assert!(found[0].1.ends_with("x…\""), "{}", found[0].1);
    assert_eq!(
        misses(r#"type = "track""#, &json!([1])),
        vec![(
            r#"type = "track""#.to_owned(),
            "not a JSON object".to_owned()
        )]
    );
}
