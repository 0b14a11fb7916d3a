//! Property tests: compiling arbitrary JSON and evaluating arbitrary mappings on arbitrary events
//! never panics, and mappings without directives evaluate to themselves.

use actionkit_mapping::Mapping;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Every real directive plus one unknown name, so validation errors are generated too.
fn directives() -> Vec<&'static str> {
    let mut names = actionkit_mapping::DIRECTIVES.to_vec();
    names.push("@nope");
    names
}

const KEYS: &[&str] = &[
    "exists",
    "blank",
    "then",
    "else",
    "operator",
    "value",
    "pattern",
    "replacement",
    "pattern2",
    "replacement2",
    "ignorecase",
    "global",
    "separator",
    "omitArrays",
    "mode",
    "objects",
    "direction",
    "apply",
    "mapping",
    "_metadata",
    "__segment_internal_directive",
    "a",
    "b",
    "length",
    "0",
];

const STRINGS: &[&str] = &[
    "",
    "$.",
    "$.a",
    "$.a.b",
    "a[0]",
    "$.s.length",
    "{{a}}",
    "{{{s}}}",
    "{{ a.b }}}",
    "lower",
    "upper",
    "encode",
    "decode",
    "left",
    "right",
    "a",
    "$&-$'-$`",
    "{{ s | upcase }}",
    "{% if a %}x{% endif %}",
    "{% for x in a %}{% endfor %}",
    "{{ a | reverse }}",
    "{% assign q = s | append: s %}{{ q }}",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..1000).prop_map(|n| json!(n)),
        (-1.0e22f64..1.0e22).prop_map(|f| json!(f)),
        prop::sample::select(STRINGS).prop_map(|s| json!(s)),
        "[a-z$.{}\\[\\]'\" ]{0,12}".prop_map(Value::String),
    ]
}

/// JSON trees biased towards directive-shaped objects with plausible option names.
fn mapping() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner.clone()), 0..5).prop_map(
                |members| {
                    Value::Object(
                        members
                            .into_iter()
                            .map(|(k, v)| (k.to_owned(), v))
                            .collect::<Map<String, Value>>(),
                    )
                }
            ),
            (prop::sample::select(directives()), inner.clone()).prop_map(|(name, opts)| {
                let mut map = Map::new();
                map.insert(name.to_owned(), opts);
                Value::Object(map)
            }),
            (
                prop::sample::select(directives()),
                prop::collection::vec((prop::sample::select(KEYS), inner), 0..5)
            )
                .prop_map(|(name, members)| {
                    let opts: Map<String, Value> = members
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect();
                    let mut map = Map::new();
                    map.insert(name.to_owned(), Value::Object(opts));
                    Value::Object(map)
                }),
        ]
    })
}

/// Events: arbitrary JSON, usually objects with the keys the mappings look up.
fn event() -> impl Strategy<Value = Value> {
    let value = leaf().prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..5).prop_map(|m| {
                Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    });
    prop_oneof![
        4 => prop::collection::vec((prop::sample::select(&["a", "b", "s", "o", "arr"][..]), value.clone()), 0..5)
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        1 => value,
    ]
}

fn has_at_key(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, v)| k.starts_with('@') || has_at_key(v)),
        Value::Array(items) => items.iter().any(has_at_key),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn evaluate_never_panics(m in mapping(), e in event()) {
        if let Ok(compiled) = Mapping::compile(&m) {
            let res = compiled.evaluate(&e);
            if !e.is_object() {
                prop_assert!(res.is_err());
            }
        }
    }

    #[test]
    fn compile_never_panics_on_any_json(m in mapping()) {
        let _ = Mapping::compile(&m);
    }

    #[test]
    fn directive_free_mappings_evaluate_to_themselves(m in event(), e in event()) {
        let is_plain = !has_at_key(&m)
            && !m.as_object().is_some_and(|o| o.contains_key("__segment_internal_directive"));
        prop_assume!(is_plain && e.is_object());
        let compiled = Mapping::compile(&m);
        prop_assert!(compiled.is_ok());
        if let Ok(compiled) = compiled {
            prop_assert_eq!(compiled.evaluate(&e), Ok(Some(m.clone())));
        }
    }
}
