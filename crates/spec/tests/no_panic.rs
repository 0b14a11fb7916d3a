//! The loader never panics: not on arbitrary text, and not on mutations of the valid Userpilot
//! files. Every diagnostic it returns has a position inside the text and renders.

use std::path::Path;

use actionkit_spec::{Diagnostics, FileKind, SourceFile, load_files, load_str};
use proptest::prelude::*;

const FILES: &[&str] = &[
    "destination.yaml",
    "identify_user.yaml",
    "identify_company.yaml",
    "track_event.yaml",
];

fn read(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../actions/userpilot")
        .join(name);
    std::fs::read_to_string(path).expect("userpilot file is readable")
}

fn kind_of(name: &str) -> FileKind {
    if name == "destination.yaml" {
        FileKind::Destination
    } else {
        FileKind::Action
    }
}

fn check_positions(text: &str, diagnostics: &Diagnostics) {
    let n_lines = text.lines().count().max(1);
    for diagnostic in diagnostics.iter() {
        assert!(
            diagnostic.line >= 1 && diagnostic.column >= 1,
            "{diagnostic:?}"
        );
        assert!(
            diagnostic.line <= n_lines + 1,
            "line {} of {n_lines}: {diagnostic:?}",
            diagnostic.line
        );
        assert!(!diagnostic.message.is_empty());
    }
    let rendered = diagnostics.to_string();
    assert!(rendered.contains("error: "));
}

/// One edit of a text: delete a range, insert YAML-significant characters, or duplicate a line.
#[derive(Debug, Clone)]
enum Mutation {
    Delete { at: usize, len: usize },
    Insert { at: usize, text: String },
    DuplicateLine { line: usize },
    SwapLines { a: usize, b: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let special = prop::sample::select(vec![
        ":",
        "- ",
        "{",
        "}",
        "[",
        "]",
        "\"",
        "'",
        "&a ",
        "*a",
        "!!int ",
        "\t",
        "\n",
        "  ",
        "#",
        "---\n",
        "? ",
        "|\n",
        ">-\n",
        "@",
        "\u{00e9}",
        "~",
        "0x",
        ".inf",
        "\r\n",
        "%YAML 1.2\n",
    ]);
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), special).prop_map(|(at, text)| Mutation::Insert {
            at,
            text: text.to_owned()
        }),
        (any::<usize>(), "[a-zA-Z0-9 _:]{0,12}")
            .prop_map(|(at, text)| Mutation::Insert { at, text }),
        any::<usize>().prop_map(|line| Mutation::DuplicateLine { line }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines { a, b }),
    ]
}

fn char_boundary(text: &str, at: usize) -> usize {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(text: &str, mutation: &Mutation) -> String {
    match mutation {
        Mutation::Delete { at, len } => {
            let start = char_boundary(text, *at);
            let end = char_boundary(text, (start + len).min(text.len()));
            let end = end.max(start);
            format!("{}{}", &text[..start], &text[end..])
        }
        Mutation::Insert { at, text: inserted } => {
            let at = char_boundary(text, *at);
            format!("{}{inserted}{}", &text[..at], &text[at..])
        }
        Mutation::DuplicateLine { line } => {
            let mut lines: Vec<&str> = text.lines().collect();
            if !lines.is_empty() {
                let idx = line % lines.len();
                lines.insert(idx, lines[idx]);
            }
            lines.join("\n")
        }
        Mutation::SwapLines { a, b } => {
            let mut lines: Vec<&str> = text.lines().collect();
            if !lines.is_empty() {
                let n = lines.len();
                lines.swap(a % n, b % n);
            }
            lines.join("\n")
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>(), destination in any::<bool>()) {
        let kind = if destination { FileKind::Destination } else { FileKind::Action };
        if let Err(diagnostics) = load_str(kind, "fuzz.yaml", &text) {
            check_positions(&text, &diagnostics);
        }
    }

    #[test]
    fn yaml_like_text_never_panics(text in "([ a-z:\\-\\[\\]{},'\"&*!#|>@$.\n]){0,200}") {
        if let Err(diagnostics) = load_str(FileKind::Action, "fuzz.yaml", &text) {
            check_positions(&text, &diagnostics);
        }
    }

}

proptest! {
    // Each case loads the whole destination, so fewer cases keep the suite quick.
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn mutated_userpilot_files_never_panic(
        file_idx in 0..FILES.len(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let name = FILES[file_idx];
        let mut text = read(name);
        for m in &mutations {
            text = apply(&text, m);
        }
        if let Err(diagnostics) = load_str(kind_of(name), name, &text) {
            check_positions(&text, &diagnostics);
        }
        // The whole destination with the mutated file in place.
        let files: Vec<SourceFile> = FILES
            .iter()
            .map(|other| SourceFile {
                name: (*other).to_owned(),
                kind: kind_of(other),
                text: if *other == name { text.clone() } else { read(other) },
            })
            .collect();
        if let Err(diagnostics) = load_files(&files) {
            for diagnostic in diagnostics.iter() {
                prop_assert!(diagnostic.line >= 1 && diagnostic.column >= 1);
            }
        }
    }
}
