//! Property tests: printing a canonical tree and parsing it back gives the same tree, the JSON AST
//! conversion round-trips, and parsing arbitrary text never panics.

use actionkit_fql::{Condition, Expr, Field, Literal, Operator, Path, parse};
use proptest::prelude::*;

fn path_name() -> impl Strategy<Value = String> {
    "(?s).{1,10}".prop_filter("a path needs a key", |name| Path::new(name).is_ok())
}

fn field() -> impl Strategy<Value = Field> {
    prop_oneof![
        Just(Field::Type),
        Just(Field::Event),
        Just(Field::Name),
        Just(Field::UserId),
        path_name().prop_map(|n| Field::Property(Path::new(&n).unwrap())),
        path_name().prop_map(|n| Field::Trait(Path::new(&n).unwrap())),
        path_name().prop_map(|n| Field::Context(Path::new(&n).unwrap())),
    ]
}

/// Every (operator, value) pair the parser can produce for `field`, built from the raw material.
fn canonical_choices(
    field: &Field,
    text: &str,
    number: f64,
    flag: bool,
) -> Vec<(Operator, Option<Literal>)> {
    use Operator::*;
    let s = || Some(Literal::String(text.to_owned()));
    let mut choices: Vec<(Operator, Option<Literal>)> = [Eq, Ne, Lt, Le, Gt, Ge]
        .into_iter()
        .map(|op| (op, s()))
        .collect();
    if *field != Field::Type {
        choices.extend([Contains, NotContains, StartsWith, NotStartsWith].map(|op| (op, s())));
        if !text.is_empty() && !text.ends_with('*') {
            choices.extend([EndsWith, NotEndsWith].map(|op| (op, s())));
        }
    }
    match field {
        Field::Type | Field::Event => {}
        Field::Name => choices.extend([(Exists, None), (NotExists, None)]),
        Field::UserId => choices.extend([
            (Exists, None),
            (NotExists, None),
            (IsTrue, None),
            (IsFalse, None),
        ]),
        Field::Property(_) | Field::Trait(_) | Field::Context(_) => {
            let n = || Some(Literal::Number(number));
            let b = || Some(Literal::Bool(flag));
            choices.extend([
                (Exists, None),
                (NotExists, None),
                (IsTrue, None),
                (IsFalse, None),
            ]);
            choices.extend([(NumberEquals, n()), (NumberNotEquals, n()), (Ne, b())]);
            choices.extend(
                [Lt, Le, Gt, Ge]
                    .into_iter()
                    .flat_map(|op| [(op, n()), (op, b())]),
            );
        }
    }
    choices
}

fn condition() -> impl Strategy<Value = Expr> {
    let number = prop_oneof![
        (-1_000_000i64..1_000_000).prop_map(|n| n as f64),
        any::<f64>().prop_filter("finite", |n| n.is_finite()),
    ];
    (
        field(),
        "[^\"]{0,12}",
        number,
        any::<bool>(),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(field, text, number, flag, pick)| {
            let choices = canonical_choices(&field, &text, number, flag);
            let (op, value) = choices[pick.index(choices.len())].clone();
            Expr::Condition(Condition::new(field, op, value).unwrap())
        })
}

/// Groups with at least two children and no same-operator child groups: what `parse` produces.
fn canonical_group(is_and: bool, children: Vec<Expr>) -> Expr {
    let mut flat = Vec::new();
    for child in children {
        match child {
            Expr::And(inner) if is_and => flat.extend(inner),
            Expr::Or(inner) if !is_and => flat.extend(inner),
            other => flat.push(other),
        }
    }
    if is_and {
        Expr::And(flat)
    } else {
        Expr::Or(flat)
    }
}

fn expr() -> impl Strategy<Value = Expr> {
    condition().prop_recursive(4, 32, 4, |inner| {
        (any::<bool>(), prop::collection::vec(inner, 2..4))
            .prop_map(|(is_and, children)| canonical_group(is_and, children))
    })
}

fn token_soup() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "type",
        "event",
        "name",
        "userId",
        "properties.a",
        "traits.b\\ c",
        "context.x.0",
        "=",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "!",
        "(",
        ")",
        ",",
        "and",
        "or",
        "AND",
        "null",
        "true",
        "false",
        "\"x\"",
        "\"*y\"",
        "\"z*\"",
        "'q'",
        "12",
        "-3.5",
        "-",
        "1.",
        "contains",
        "match",
        "[",
        "]",
        "\"",
        "\\",
        "é",
        " ",
        "#",
    ]);
    (prop::collection::vec(token, 0..24), any::<bool>())
        .prop_map(|(tokens, spaced)| tokens.join(if spaced { " " } else { "" }))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn display_then_parse_gives_the_same_tree(e in expr()) {
        let printed = e.to_string();
        let parsed = parse(&printed);
        prop_assert!(parsed.is_ok(), "{printed:?} failed: {parsed:?}");
        prop_assert_eq!(parsed.unwrap(), e, "printed as {:?}", printed);
    }

    #[test]
    fn segment_ast_round_trips(e in expr()) {
        let ast = e.to_segment_ast();
        prop_assert_eq!(Expr::from_segment_ast(&ast), Ok(e));
    }

    #[test]
    fn parse_never_panics_on_arbitrary_text(s in any::<String>()) {
        if let Err(err) = parse(&s) {
            prop_assert!(err.column >= 1 && err.column <= s.chars().count() + 1);
        }
    }

    #[test]
    fn parse_never_panics_on_token_soup_and_round_trips(s in token_soup()) {
        match parse(&s) {
            Ok(e) => {
                let printed = e.to_string();
                prop_assert_eq!(parse(&printed), Ok(e), "printed as {:?}", printed);
            }
            Err(err) => prop_assert!(err.column >= 1 && err.column <= s.chars().count() + 1, "{err}"),
        }
    }
}
