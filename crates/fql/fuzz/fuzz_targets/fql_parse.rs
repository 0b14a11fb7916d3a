//! Fuzz target: any text either fails to parse with an in-range column, or parses to a tree whose
//! printed form parses back to the same tree.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|source: &str| {
    match actionkit_fql::parse(source) {
        Ok(expr) => {
            let printed = expr.to_string();
            match actionkit_fql::parse(&printed) {
                Ok(again) => assert_eq!(again, expr, "{source:?} printed as {printed:?}"),
                Err(err) => panic!("{source:?} printed as {printed:?}, which fails: {err}"),
            }
        }
        Err(err) => assert!(err.column >= 1 && err.column <= source.chars().count() + 1),
    }
});
