//! Tests of the payload pipeline: every coercion row, every message form, the §1.6 examples.

use serde_json::{Value, json};

use super::*;
use crate::fields::{Choice, Condition};

fn field(key: &'static str, label: &'static str, field_type: FieldType) -> FieldDef {
    FieldDef {
        key,
        label,
        field_type,
        ..FieldDef::BASE
    }
}

/// Runs empty-value removal (root semantics) and validation; returns the payload or the message.
fn run(fields: &'static [FieldDef], payload: Value) -> Result<Value, String> {
    let schema = PayloadSchema::from_fields(fields);
    let mut payload = payload;
    match schema.clean_and_validate(&mut payload) {
        Ok(()) => Ok(payload),
        Err(err) => {
            assert_eq!(err.status, 400);
            assert_eq!(err.message, err.errors.join(" "));
            Err(err.message)
        }
    }
}

macro_rules! fields {
    ($($f:expr),* $(,)?) => {{
        static FIELDS: &[FieldDef] = &[$($f),*];
        FIELDS
    }};
}

static SCALARS: &[FieldDef] = &[
    FieldDef {
        key: "s",
        label: "Str",
        field_type: FieldType::String,
        ..FieldDef::BASE
    },
    FieldDef {
        key: "n",
        label: "Num",
        field_type: FieldType::Number,
        ..FieldDef::BASE
    },
    FieldDef {
        key: "i",
        label: "Int",
        field_type: FieldType::Integer,
        ..FieldDef::BASE
    },
    FieldDef {
        key: "b",
        label: "Bool",
        field_type: FieldType::Boolean,
        ..FieldDef::BASE
    },
    FieldDef {
        key: "sn",
        label: "Nullable",
        field_type: FieldType::String,
        allow_null: true,
        ..FieldDef::BASE
    },
    FieldDef {
        key: "bn",
        label: "Nullable Bool",
        field_type: FieldType::Boolean,
        allow_null: true,
        ..FieldDef::BASE
    },
    FieldDef {
        key: "m",
        label: "Many",
        field_type: FieldType::String,
        multiple: true,
        ..FieldDef::BASE
    },
    FieldDef {
        key: "d",
        label: "When",
        field_type: FieldType::Datetime,
        ..FieldDef::BASE
    },
    FieldDef {
        key: "o",
        label: "Obj",
        field_type: FieldType::Object,
        ..FieldDef::BASE
    },
];

/// Validates `{key: value}` against SCALARS and returns the coerced value or the message.
fn coerce(key: &str, value: Value) -> Result<Value, String> {
    let mut payload = serde_json::Map::new();
    payload.insert(key.to_owned(), value);
    run(SCALARS, Value::Object(payload)).map(|out| out.get(key).cloned().unwrap_or(Value::Null))
}

#[test]
fn coercion_to_string() {
    assert_eq!(coerce("s", json!(12)), Ok(json!("12")));
    assert_eq!(coerce("s", json!(1.5)), Ok(json!("1.5")));
    assert_eq!(coerce("s", json!(true)), Ok(json!("true")));
    assert_eq!(coerce("s", json!(false)), Ok(json!("false")));
    // Nested nulls reach the validator (root nulls are removed first): see `null_to_empty_string`.
    assert_eq!(
        coerce("s", json!({})),
        Err("Str must be a string but it was an object.".to_owned())
    );
}

#[test]
fn null_to_empty_string_inside_objects() {
    let fields = fields![FieldDef {
        key: "o",
        label: "Obj",
        field_type: FieldType::Object,
        properties: Some(&[FieldDef {
            key: "s",
            label: "Inner",
            field_type: FieldType::String,
            allow_null: false,
            ..FieldDef::BASE
        }]),
        ..FieldDef::BASE
    }];
    let schema = PayloadSchema::from_fields(fields);
    // Without empty-value removal a null string is coerced to "".
    let mut payload = json!({"o": {"s": null}});
    schema.validate(&mut payload).unwrap();
    assert_eq!(payload, json!({"o": {"s": ""}}));
}

#[test]
fn coercion_to_number_and_integer() {
    assert_eq!(coerce("n", json!("12")), Ok(json!(12)));
    assert_eq!(coerce("n", json!("3.5")), Ok(json!(3.5)));
    assert_eq!(coerce("n", json!(" 7 ")), Ok(json!(7)));
    assert_eq!(coerce("n", json!("1e3")), Ok(json!(1000)));
    assert_eq!(coerce("n", json!(true)), Ok(json!(1)));
    assert_eq!(coerce("n", json!(false)), Ok(json!(0)));
    assert_eq!(
        coerce("n", json!("abc")),
        Err("Num must be a number but it was a string.".to_owned())
    );
    assert_eq!(coerce("i", json!("3")), Ok(json!(3)));
    assert_eq!(coerce("i", json!(4.0)), Ok(json!(4.0)));
    assert_eq!(coerce("i", json!(true)), Ok(json!(1)));
    assert_eq!(
        coerce("i", json!("3.5")),
        Err("Int must be an integer but it was a string.".to_owned())
    );
    assert_eq!(
        coerce("i", json!(3.5)),
        Err("Int must be an integer but it was a number.".to_owned())
    );
}

#[test]
fn empty_string_is_not_coerced_to_a_number() {
    let fields = fields![FieldDef {
        key: "o",
        label: "Obj",
        field_type: FieldType::Object,
        properties: Some(&[FieldDef {
            key: "n",
            label: "Inner Num",
            field_type: FieldType::Number,
            ..FieldDef::BASE
        }]),
        ..FieldDef::BASE
    }];
    let schema = PayloadSchema::from_fields(fields);
    let mut payload = json!({"o": {"n": ""}});
    assert_eq!(
        schema.validate(&mut payload).map_err(|e| e.message),
        Err("Inner Num must be a number but it was a string.".to_owned())
    );
    // Null becomes 0.
    let mut payload = json!({"o": {"n": null}});
    schema.validate(&mut payload).unwrap();
    assert_eq!(payload, json!({"o": {"n": 0}}));
}

#[test]
fn coercion_to_boolean() {
    assert_eq!(coerce("b", json!("true")), Ok(json!(true)));
    assert_eq!(coerce("b", json!("false")), Ok(json!(false)));
    assert_eq!(coerce("b", json!(1)), Ok(json!(true)));
    assert_eq!(coerce("b", json!(0)), Ok(json!(false)));
    assert_eq!(
        coerce("b", json!("yes")),
        Err("Bool must be a boolean but it was a string.".to_owned())
    );
    assert_eq!(
        coerce("b", json!(2)),
        Err("Bool must be a boolean but it was a number.".to_owned())
    );
}

#[test]
fn coercion_with_null_allowed() {
    // Types are tried in order: boolean first, then null.
    assert_eq!(coerce("bn", json!(0)), Ok(json!(false)));
    assert_eq!(coerce("bn", json!(null)), Ok(json!(null)));
    assert_eq!(coerce("sn", json!(null)), Ok(json!(null)));
    assert_eq!(coerce("sn", json!(5)), Ok(json!("5")));
    assert_eq!(
        coerce("sn", json!({"a": 1})),
        Err("Nullable must be a string or null but it was an object.".to_owned())
    );
}

#[test]
fn coercion_to_null() {
    let fields = fields![FieldDef {
        key: "o",
        label: "Obj",
        field_type: FieldType::Object,
        properties: Some(&[FieldDef {
            key: "x",
            label: "Obj Or Null",
            field_type: FieldType::Object,
            allow_null: true,
            ..FieldDef::BASE
        }]),
        ..FieldDef::BASE
    }];
    let schema = PayloadSchema::from_fields(fields);
    for empty in [json!(""), json!(0), json!(false)] {
        let mut payload = json!({"o": {"x": empty}});
        schema.validate(&mut payload).unwrap();
        assert_eq!(payload, json!({"o": {"x": null}}));
    }
    let mut payload = json!({"o": {"x": "text"}});
    assert_eq!(
        schema.validate(&mut payload).map_err(|e| e.message),
        Err("Obj Or Null must be an object or null but it was a string.".to_owned())
    );
}

#[test]
fn one_element_arrays_are_unwrapped_and_longer_ones_fail() {
    assert_eq!(coerce("s", json!(["only"])), Ok(json!("only")));
    assert_eq!(coerce("n", json!(["5"])), Ok(json!(5)));
    assert_eq!(
        coerce("s", json!(["a", "b"])),
        Err("Str must be a string but it was an array.".to_owned())
    );
    // Objects are never coerced, so no unwrapping either.
    assert_eq!(
        coerce("o", json!([{}])),
        Err("Obj must be an object but it was an array.".to_owned())
    );
}

#[test]
fn top_level_array_fields_wrap_scalars_and_objects() {
    assert_eq!(coerce("m", json!("one")), Ok(json!(["one"])));
    assert_eq!(coerce("m", json!(7)), Ok(json!(["7"])));
    assert_eq!(
        coerce("m", json!(["a", 1, true])),
        Ok(json!(["a", "1", "true"]))
    );
    assert_eq!(
        coerce("m", json!({"a": 1})),
        Err("The value at /m/0 must be a string but it was an object.".to_owned())
    );
    assert_eq!(
        coerce("m", json!(["a", {"b": 1}])),
        Err("The value at /m/1 must be a string but it was an object.".to_owned())
    );
}

#[test]
fn nested_array_fields_wrap_scalars() {
    let fields = fields![FieldDef {
        key: "o",
        label: "Obj",
        field_type: FieldType::Object,
        properties: Some(&[FieldDef {
            key: "tags",
            label: "Tags",
            field_type: FieldType::String,
            multiple: true,
            ..FieldDef::BASE
        }]),
        ..FieldDef::BASE
    }];
    assert_eq!(
        run(fields, json!({"o": {"tags": "x"}})),
        Ok(json!({"o": {"tags": ["x"]}}))
    );
    assert_eq!(
        run(fields, json!({"o": {"tags": {"k": 1}}})),
        Err("Tags must be an array but it was an object.".to_owned())
    );
}

#[test]
fn datetime_fields() {
    assert_eq!(
        coerce("d", json!("2021-01-01T00:00:00Z")),
        Ok(json!("2021-01-01T00:00:00Z"))
    );
    assert_eq!(coerce("d", json!(1612137600)), Ok(json!(1612137600)));
    assert_eq!(coerce("d", json!("1612137600")), Ok(json!("1612137600")));
    assert_eq!(coerce("d", json!("Feb 1 2021")), Ok(json!("Feb 1 2021")));
    assert_eq!(
        coerce("d", json!("garbage")),
        Err("When must be a valid date-like string but it was not.".to_owned())
    );
    // Booleans become "true" first and then fail the format.
    assert_eq!(
        coerce("d", json!(true)),
        Err("When must be a valid date-like string but it was not.".to_owned())
    );
    assert_eq!(
        coerce("d", json!({})),
        Err("When must be a string or number but it was an object.".to_owned())
    );
}

#[test]
fn unknown_keys_are_stripped() {
    assert_eq!(
        run(SCALARS, json!({"s": "x", "extra": 1, "n": 1})),
        Ok(json!({"s": "x", "n": 1}))
    );
    // Objects without properties keep everything, including empty values.
    assert_eq!(
        run(SCALARS, json!({"o": {"a": "", "b": null, "c": {"d": ""}}})),
        Ok(json!({"o": {"a": "", "b": null, "c": {"d": ""}}}))
    );
}

static NESTED: &[FieldDef] = &[
    FieldDef {
        key: "obj",
        label: "Obj",
        field_type: FieldType::Object,
        properties: Some(&[
            FieldDef {
                key: "k",
                label: "K",
                field_type: FieldType::String,
                required: Required::Always,
                ..FieldDef::BASE
            },
            FieldDef {
                key: "n",
                label: "N",
                field_type: FieldType::Number,
                ..FieldDef::BASE
            },
        ]),
        ..FieldDef::BASE
    },
    FieldDef {
        key: "open",
        label: "Open",
        field_type: FieldType::Object,
        additional_properties: true,
        properties: Some(&[FieldDef {
            key: "k",
            label: "K",
            field_type: FieldType::String,
            ..FieldDef::BASE
        }]),
        ..FieldDef::BASE
    },
    FieldDef {
        key: "list",
        label: "List",
        field_type: FieldType::Object,
        multiple: true,
        properties: Some(&[FieldDef {
            key: "k",
            label: "K",
            field_type: FieldType::String,
            required: Required::Always,
            ..FieldDef::BASE
        }]),
        ..FieldDef::BASE
    },
];

#[test]
fn objects_with_properties() {
    assert_eq!(
        run(NESTED, json!({"obj": {"k": 1, "n": "2", "zzz": true}})),
        Ok(json!({"obj": {"k": "1", "n": 2}}))
    );
    assert_eq!(
        run(NESTED, json!({"open": {"k": 1, "zzz": true}})),
        Ok(json!({"open": {"k": "1", "zzz": true}}))
    );
    assert_eq!(
        run(NESTED, json!({"obj": {"n": 1}})),
        Err("Obj is missing the required field 'k'.".to_owned())
    );
    assert_eq!(
        run(NESTED, json!({"list": [{"k": "a"}, {"x": 1}]})),
        Err("The value at /list/1 is missing the required field 'k'.".to_owned())
    );
    assert_eq!(
        run(NESTED, json!({"list": {"k": "a", "x": 1}})),
        Ok(json!({"list": [{"k": "a"}]}))
    );
    assert_eq!(
        run(NESTED, json!({"obj": "text"})),
        Err("Obj must be an object but it was a string.".to_owned())
    );
}

#[test]
fn all_errors_are_collected_in_ajv_order() {
    static FIELDS: &[FieldDef] = &[
        FieldDef {
            key: "userId",
            label: "User ID",
            field_type: FieldType::String,
            required: Required::Always,
            ..FieldDef::BASE
        },
        FieldDef {
            key: "name",
            label: "Name",
            field_type: FieldType::String,
            required: Required::Always,
            ..FieldDef::BASE
        },
        FieldDef {
            key: "count",
            label: "Count",
            field_type: FieldType::Integer,
            ..FieldDef::BASE
        },
        FieldDef {
            key: "email",
            label: "Email",
            field_type: FieldType::String,
            format: Some(Format::Email),
            ..FieldDef::BASE
        },
    ];
    assert_eq!(
        run(FIELDS, json!({"userId": {"a": 1}, "count": "x", "email": "nope"})),
        Err("The root value is missing the required field 'name'. User ID must be a string but it was an object. \
             Count must be an integer but it was a string. Email must be a valid email address string but it was not."
            .to_owned())
    );
}

#[test]
fn every_message_form() {
    static FIELDS: &[FieldDef] = &[
        FieldDef {
            key: "color",
            label: "Color",
            field_type: FieldType::String,
            choices: Some(&[
                Choice {
                    value: Literal::String("red"),
                    label: "Red",
                },
                Choice {
                    value: Literal::String("blue"),
                    label: "Blue",
                },
            ]),
            ..FieldDef::BASE
        },
        FieldDef {
            key: "size",
            label: "Size",
            field_type: FieldType::Number,
            choices: Some(&[
                Choice {
                    value: Literal::Number(1.0),
                    label: "S",
                },
                Choice {
                    value: Literal::Number(2.5),
                    label: "M",
                },
                Choice {
                    value: Literal::Number(3.0),
                    label: "L",
                },
            ]),
            ..FieldDef::BASE
        },
        FieldDef {
            key: "short",
            label: "Short",
            field_type: FieldType::String,
            minimum: Some(5.0),
            maximum: Some(6.0),
            ..FieldDef::BASE
        },
        FieldDef {
            key: "age",
            label: "Age",
            field_type: FieldType::Number,
            minimum: Some(5.0),
            maximum: Some(10.5),
            ..FieldDef::BASE
        },
        FieldDef {
            key: "zero",
            label: "Zero",
            field_type: FieldType::Number,
            minimum: Some(0.0),
            ..FieldDef::BASE
        },
        FieldDef {
            key: "when",
            label: "When",
            field_type: FieldType::String,
            format: Some(Format::DateTime),
            ..FieldDef::BASE
        },
        FieldDef {
            key: "site",
            label: "Site",
            field_type: FieldType::String,
            format: Some(Format::Uri),
            ..FieldDef::BASE
        },
        FieldDef {
            key: "ip",
            label: "Ip",
            field_type: FieldType::String,
            format: Some(Format::Ipv4),
            ..FieldDef::BASE
        },
        FieldDef {
            key: "id",
            label: "Id",
            field_type: FieldType::String,
            format: Some(Format::Uuid),
            ..FieldDef::BASE
        },
        FieldDef {
            key: "ref",
            label: "Ref",
            field_type: FieldType::String,
            format: Some(Format::UriReference),
            ..FieldDef::BASE
        },
        FieldDef {
            key: "many",
            label: "Many",
            field_type: FieldType::String,
            multiple: true,
            choices: Some(&[Choice {
                value: Literal::String("a"),
                label: "A",
            }]),
            ..FieldDef::BASE
        },
    ];
    let cases: &[(Value, &str)] = &[
        (
            json!({"color": "green"}),
            "Color must be one of: \"red\" or \"blue\".",
        ),
        (json!({"size": 4}), "Size must be one of: 1, 2.5, or 3."),
        (json!({"size": "1"}), ""),
        (
            json!({"short": "a"}),
            "Short must be 5 characters or more but it was 1 character.",
        ),
        (
            json!({"short": "abcdefg"}),
            "Short must be 6 characters or fewer but it was 7 characters.",
        ),
        (json!({"short": "abcde"}), ""),
        (json!({"age": 1}), "Age must be equal to or greater than 5."),
        (
            json!({"age": 11}),
            "Age must be equal to or less than 10.5.",
        ),
        (json!({"zero": -3}), ""),
        (
            json!({"when": "2021-01-01"}),
            "When must be a valid date and time string but it was not.",
        ),
        (
            json!({"site": "not a uri"}),
            "Site must be a valid URI string but it was not.",
        ),
        (
            json!({"ip": "1.2.3"}),
            "Ip must be a valid IPv4 address string but it was not.",
        ),
        (
            json!({"id": "x"}),
            "Id must be a valid uuid string but it was not.",
        ),
        (
            json!({"ref": "a b"}),
            "Ref must be a valid URI Reference string but it was not.",
        ),
        (
            json!({"many": ["a", "b"]}),
            "The value at /many/1 must be one of: \"a\".",
        ),
        (
            json!({"color": {}}),
            "Color must be a string but it was an object. Color must be one of: \"red\" or \"blue\".",
        ),
    ];
    for (payload, expected) in cases {
        let result = run(FIELDS, payload.clone());
        if expected.is_empty() {
            assert!(result.is_ok(), "{payload} should be valid: {result:?}");
        } else {
            assert_eq!(result, Err((*expected).to_owned()), "payload {payload}");
        }
    }
}

#[test]
fn root_value_that_is_not_an_object() {
    assert_eq!(
        run(SCALARS, json!([1])),
        Err("The root value must be an object but it was an array.".to_owned())
    );
}

#[test]
fn json_pointer_escapes_keys() {
    static FIELDS: &[FieldDef] = &[FieldDef {
        key: "a/b~c",
        label: "",
        field_type: FieldType::Number,
        ..FieldDef::BASE
    }];
    assert_eq!(
        run(FIELDS, json!({"a/b~c": "x"})),
        Err("The value at /a~1b~0c must be a number but it was a string.".to_owned())
    );
}

// §1.6 removeEmptyValues examples.

#[test]
fn remove_empty_values_examples() {
    let fields = fields![
        FieldDef {
            key: "foo",
            label: "Foo",
            field_type: FieldType::Number,
            ..FieldDef::BASE
        },
        FieldDef {
            key: "bar",
            label: "Bar",
            field_type: FieldType::String,
            ..FieldDef::BASE
        },
        FieldDef {
            key: "baz",
            label: "Baz",
            field_type: FieldType::Boolean,
            ..FieldDef::BASE
        },
    ];
    let schema = PayloadSchema::from_fields(fields);
    let mut payload = json!({"foo": "", "bar": "1", "baz": true});
    schema.remove_empty_values(&mut payload, true);
    assert_eq!(payload, json!({"bar": "1", "baz": true}));
}

#[test]
fn remove_empty_values_nested() {
    let fields = fields![FieldDef {
        key: "a",
        label: "A",
        field_type: FieldType::Object,
        properties: Some(&[
            FieldDef {
                key: "b",
                label: "B",
                field_type: FieldType::Number,
                ..FieldDef::BASE
            },
            FieldDef {
                key: "c",
                label: "C",
                field_type: FieldType::String,
                allow_null: true,
                ..FieldDef::BASE
            },
            FieldDef {
                key: "product_id",
                label: "Product",
                field_type: FieldType::String,
                ..FieldDef::BASE
            },
            FieldDef {
                key: "o",
                label: "O",
                field_type: FieldType::Object,
                ..FieldDef::BASE
            },
            FieldDef {
                key: "n",
                label: "N",
                field_type: FieldType::Number,
                ..FieldDef::BASE
            },
        ]),
        ..FieldDef::BASE
    }];
    let schema = PayloadSchema::from_fields(fields);
    let mut payload = json!({"a": {"b": "", "c": null, "product_id": "", "o": null, "n": null, "location": null}});
    schema.remove_empty_values(&mut payload, true);
    assert_eq!(
        payload,
        json!({"a": {"c": null, "product_id": "", "location": null}})
    );
}

#[test]
fn remove_empty_values_root_strings_and_nulls() {
    let fields = fields![
        FieldDef {
            key: "s",
            label: "S",
            field_type: FieldType::String,
            ..FieldDef::BASE
        },
        FieldDef {
            key: "sn",
            label: "SN",
            field_type: FieldType::String,
            allow_null: true,
            ..FieldDef::BASE
        },
        FieldDef {
            key: "o",
            label: "O",
            field_type: FieldType::Object,
            ..FieldDef::BASE
        },
        FieldDef {
            key: "on",
            label: "ON",
            field_type: FieldType::Object,
            allow_null: true,
            ..FieldDef::BASE
        },
        FieldDef {
            key: "op",
            label: "OP",
            field_type: FieldType::Object,
            allow_null: true,
            properties: Some(&[FieldDef {
                key: "x",
                label: "X",
                field_type: FieldType::String,
                ..FieldDef::BASE
            }]),
            ..FieldDef::BASE
        },
        FieldDef {
            key: "num",
            label: "Num",
            field_type: FieldType::Number,
            ..FieldDef::BASE
        },
        FieldDef {
            key: "arr",
            label: "Arr",
            field_type: FieldType::Number,
            multiple: true,
            ..FieldDef::BASE
        },
    ];
    let schema = PayloadSchema::from_fields(fields);
    let mut payload = json!({
        "s": "", "sn": null, "o": null, "on": null, "op": null, "num": null,
        "arr": [1, null, "", {"k": ""}], "unknown": ""
    });
    schema.remove_empty_values(&mut payload, true);
    // allowNull on an object with properties is lost, so its null is removed.
    assert_eq!(
        payload,
        json!({"sn": null, "on": null, "arr": [1, {"k": ""}]})
    );

    // Without root semantics (batches) a root "" on a string field survives.
    let mut payload = json!({"s": "", "num": ""});
    schema.remove_empty_values(&mut payload, false);
    assert_eq!(payload, json!({"s": ""}));
}

// Conditional required (§2.3).

static COND_B_WHEN_A_IS_X: Conditions = Conditions {
    mode: ConditionMatch::All,
    conditions: &[Condition {
        field_key: "a",
        operator: ConditionOperator::Is,
        value: Some(Literal::String("x")),
    }],
};
static COND_B_WHEN_A_IS_NOT_X: Conditions = Conditions {
    mode: ConditionMatch::All,
    conditions: &[Condition {
        field_key: "a",
        operator: ConditionOperator::IsNot,
        value: Some(Literal::String("x")),
    }],
};
static COND_B_WHEN_A_UNDEFINED: Conditions = Conditions {
    mode: ConditionMatch::All,
    conditions: &[Condition {
        field_key: "a",
        operator: ConditionOperator::Is,
        value: None,
    }],
};
static COND_B_WHEN_A_DEFINED: Conditions = Conditions {
    mode: ConditionMatch::All,
    conditions: &[Condition {
        field_key: "a",
        operator: ConditionOperator::IsNot,
        value: None,
    }],
};
static COND_ANY: Conditions = Conditions {
    mode: ConditionMatch::Any,
    conditions: &[
        Condition {
            field_key: "a",
            operator: ConditionOperator::Is,
            value: Some(Literal::String("x")),
        },
        Condition {
            field_key: "c",
            operator: ConditionOperator::Is,
            value: Some(Literal::Bool(true)),
        },
    ],
};
static COND_ALL: Conditions = Conditions {
    mode: ConditionMatch::All,
    conditions: &[
        Condition {
            field_key: "a",
            operator: ConditionOperator::Is,
            value: Some(Literal::String("x")),
        },
        Condition {
            field_key: "c",
            operator: ConditionOperator::Is,
            value: Some(Literal::Bool(true)),
        },
    ],
};

const THEN_B: &str =
    "The root value is missing the required field 'b'. The root value must match \"then\" schema.";

fn conditional(conditions: &'static Conditions) -> &'static [FieldDef] {
    let fields = vec![
        FieldDef {
            key: "a",
            label: "A",
            field_type: FieldType::String,
            allow_null: true,
            ..FieldDef::BASE
        },
        FieldDef {
            key: "b",
            label: "B",
            field_type: FieldType::String,
            required: Required::When(conditions),
            ..FieldDef::BASE
        },
        FieldDef {
            key: "c",
            label: "C",
            field_type: FieldType::Boolean,
            ..FieldDef::BASE
        },
    ];
    Box::leak(fields.into_boxed_slice())
}

#[test]
fn conditional_required_single_is() {
    let fields = conditional(&COND_B_WHEN_A_IS_X);
    assert_eq!(run(fields, json!({"a": "x"})), Err(THEN_B.to_owned()));
    assert!(run(fields, json!({"a": "x", "b": "y"})).is_ok());
    assert!(run(fields, json!({"a": "z"})).is_ok());
    assert!(run(fields, json!({})).is_ok());
}

#[test]
fn conditional_required_single_is_not() {
    let fields = conditional(&COND_B_WHEN_A_IS_NOT_X);
    assert_eq!(run(fields, json!({"a": "z"})), Err(THEN_B.to_owned()));
    assert!(run(fields, json!({"a": "x"})).is_ok());
    // An absent field never triggers `is_not`.
    assert!(run(fields, json!({})).is_ok());
}

#[test]
fn conditional_required_undefined() {
    let fields = conditional(&COND_B_WHEN_A_UNDEFINED);
    assert_eq!(run(fields, json!({})), Err(THEN_B.to_owned()));
    assert_eq!(run(fields, json!({"a": null})), Err(THEN_B.to_owned()));
    assert!(run(fields, json!({"a": "v"})).is_ok());
    let fields = conditional(&COND_B_WHEN_A_DEFINED);
    assert_eq!(run(fields, json!({"a": "v"})), Err(THEN_B.to_owned()));
    assert!(run(fields, json!({"a": null})).is_ok());
    assert!(run(fields, json!({})).is_ok());
}

#[test]
fn conditional_required_several_conditions() {
    let any = conditional(&COND_ANY);
    assert_eq!(run(any, json!({"c": true})), Err(THEN_B.to_owned()));
    assert_eq!(run(any, json!({"a": "x"})), Err(THEN_B.to_owned()));
    assert!(run(any, json!({"a": "y", "c": false})).is_ok());
    let all = conditional(&COND_ALL);
    assert!(run(all, json!({"c": true})).is_ok());
    assert_eq!(
        run(all, json!({"a": "x", "c": true})),
        Err(THEN_B.to_owned())
    );
}

#[test]
fn conditional_errors_come_before_property_errors() {
    let fields = conditional(&COND_B_WHEN_A_IS_X);
    assert_eq!(
        run(fields, json!({"a": "x", "c": "maybe"})),
        Err(format!("{THEN_B} C must be a boolean but it was a string."))
    );
}

#[test]
fn conditional_sub_field_is_lifted_and_disables_nested_required() {
    static COND: Conditions = Conditions {
        mode: ConditionMatch::All,
        conditions: &[Condition {
            field_key: "kind",
            operator: ConditionOperator::Is,
            value: Some(Literal::String("company")),
        }],
    };
    static FIELDS: &[FieldDef] = &[
        FieldDef {
            key: "kind",
            label: "Kind",
            field_type: FieldType::String,
            ..FieldDef::BASE
        },
        FieldDef {
            key: "p",
            label: "P",
            field_type: FieldType::Object,
            properties: Some(&[
                FieldDef {
                    key: "always",
                    label: "Always",
                    field_type: FieldType::String,
                    required: Required::Always,
                    ..FieldDef::BASE
                },
                FieldDef {
                    key: "c",
                    label: "C",
                    field_type: FieldType::String,
                    required: Required::When(&COND),
                    ..FieldDef::BASE
                },
            ]),
            ..FieldDef::BASE
        },
    ];
    assert_eq!(
        run(FIELDS, json!({"kind": "company"})),
        Err("The root value is missing the required field 'p'. The root value must match \"then\" schema.".to_owned())
    );
    assert_eq!(
        run(FIELDS, json!({"kind": "company", "p": {}})),
        Err("The value at /p is missing the required field 'c'. The root value must match \"then\" schema.".to_owned())
    );
    // The unconditional `always` is not enforced any more (Segment's behaviour).
    assert!(run(FIELDS, json!({"kind": "company", "p": {"c": "v"}})).is_ok());
}

// Settings.

static SETTINGS: &[SettingDef] = &[
    SettingDef {
        key: "apiKey",
        label: "API Key",
        setting_type: SettingType::Password,
        required: true,
        secret: true,
        ..SettingDef::BASE
    },
    SettingDef {
        key: "endpoint",
        label: "API Endpoint",
        setting_type: SettingType::String,
        required: true,
        format: Some(Format::Uri),
        default: Some("\"https://analytex.userpilot.io/\""),
        ..SettingDef::BASE
    },
    SettingDef {
        key: "retries",
        label: "Retries",
        setting_type: SettingType::Number,
        ..SettingDef::BASE
    },
    SettingDef {
        key: "eu",
        label: "EU",
        setting_type: SettingType::Boolean,
        ..SettingDef::BASE
    },
];

fn settings(value: Value) -> Result<Value, String> {
    let schema = PayloadSchema::from_settings(SETTINGS);
    let mut value = value;
    schema
        .validate(&mut value)
        .map(|()| value)
        .map_err(|e| e.message)
}

#[test]
fn settings_validation() {
    assert_eq!(
        settings(json!({"endpoint": "https://analytex.userpilot.io/"})),
        Err("The root value is missing the required field 'apiKey'.".to_owned())
    );
    assert_eq!(
        settings(
            json!({"apiKey": "k", "endpoint": "https://x.io", "retries": "3", "eu": "true", "subscription": {}})
        ),
        Ok(json!({"apiKey": "k", "endpoint": "https://x.io", "retries": 3, "eu": true}))
    );
    assert_eq!(
        settings(json!({"apiKey": {"k": 1}, "endpoint": "garbage"})),
        Err("API Key must be a string but it was an object. API Endpoint must be a valid URI string but it was not.".to_owned())
    );
    assert_eq!(
        settings(json!({})),
        Err("The root value is missing the required field 'apiKey'. The root value is missing the required field 'endpoint'.".to_owned())
    );
}

#[test]
fn setting_defaults_are_filled_only_when_asked() {
    let mut value = json!({"apiKey": "k"});
    assert!(settings(value.clone()).is_err());
    fill_setting_defaults(SETTINGS, &mut value);
    assert_eq!(
        value,
        json!({"apiKey": "k", "endpoint": "https://analytex.userpilot.io/"})
    );
    assert!(settings(value).is_ok());
}

// Userpilot (§6.2, §6.4).

static IDENTIFY_USER: &[FieldDef] = &[
    FieldDef {
        key: "userId",
        label: "User ID",
        field_type: FieldType::String,
        required: Required::Always,
        ..FieldDef::BASE
    },
    FieldDef {
        key: "createdAt",
        label: "User Created At Date",
        field_type: FieldType::Datetime,
        ..FieldDef::BASE
    },
    FieldDef {
        key: "traits",
        label: "Traits",
        field_type: FieldType::Object,
        ..FieldDef::BASE
    },
];
static TRACK_EVENT: &[FieldDef] = &[
    FieldDef {
        key: "userId",
        label: "User ID",
        field_type: FieldType::String,
        ..FieldDef::BASE
    },
    FieldDef {
        key: "name",
        label: "Name",
        field_type: FieldType::String,
        required: Required::Always,
        ..FieldDef::BASE
    },
    FieldDef {
        key: "properties",
        label: "Properties",
        field_type: FieldType::Object,
        ..FieldDef::BASE
    },
];

#[test]
fn userpilot_validation_cases() {
    assert_eq!(
        run(TRACK_EVENT, json!({"name": "", "userId": "u"})),
        Err("The root value is missing the required field 'name'.".to_owned())
    );
    assert_eq!(
        run(
            IDENTIFY_USER,
            json!({"userId": "u", "createdAt": "garbage"})
        ),
        Err("User Created At Date must be a valid date-like string but it was not.".to_owned())
    );
    assert_eq!(
        run(IDENTIFY_USER, json!({"userId": {"id": 1}})),
        Err("User ID must be a string but it was an object.".to_owned())
    );
    assert_eq!(
        run(
            IDENTIFY_USER,
            json!({"userId": "u", "createdAt": 1612137600, "traits": {"name": "", "email": null}})
        ),
        Ok(json!({"userId": "u", "createdAt": 1612137600, "traits": {"name": "", "email": null}}))
    );
    assert_eq!(
        run(
            TRACK_EVENT,
            json!({"name": "test", "userId": "fake-user-id", "properties": {"name": "test", "email": ""}})
        ),
        Ok(
            json!({"name": "test", "userId": "fake-user-id", "properties": {"name": "test", "email": ""}})
        )
    );
}

#[test]
fn field_builder_helper_is_usable() {
    let f = field("x", "X", FieldType::Text);
    assert_eq!(f.field_type, FieldType::Text);
    assert_eq!(Format::from_name("date-like"), Some(Format::DateLike));
    assert_eq!(Format::from_name("nope"), None);
}

#[test]
fn null_coercion_rows_without_empty_value_removal() {
    // Empty-value removal drops root nulls first; validation alone coerces them as Ajv does.
    let schema = PayloadSchema::from_fields(SCALARS);
    let mut payload = json!({"s": null, "n": null, "i": null, "b": null, "m": null, "bn": null});
    schema.validate(&mut payload).unwrap();
    assert_eq!(
        payload,
        json!({"s": "", "n": 0, "i": 0, "b": false, "m": [""], "bn": null})
    );
}
