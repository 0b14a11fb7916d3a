//! Diagnostics: every problem found while loading, with file, line, column and JSON pointer.
//!
//! A [`Diagnostic`] renders rustc-style:
//!
//! ```text
//! error: unknown key 'lable'
//!   --> actions/userpilot/identify_user.yaml:12:5 (/fields/userId/lable)
//!    |
//! 12 |     lable: User ID
//!    |     ^^^^^
//!    = expected: one of id, label, description, type, required, …
//!    = found: 'lable'
//!    = help: did you mean 'label'?
//! ```

use std::fmt;

/// One problem found while loading a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the problem is in, as given to the loader.
    pub file: String,
    /// One-based line of the problem.
    pub line: usize,
    /// One-based column (in characters) of the problem.
    pub column: usize,
    /// How many characters the caret marks (at least one).
    pub span: usize,
    /// The JSON pointer of the offending value in the file's document (empty for the whole document).
    pub pointer: String,
    /// What is wrong, lower case without a trailing period.
    pub message: String,
    /// What was expected, if that can be said.
    pub expected: Option<String>,
    /// What was found instead.
    pub found: Option<String>,
    /// A suggestion, typically "did you mean 'x'?".
    pub hint: Option<String>,
    /// Extra context, for example where a duplicate was first defined.
    pub note: Option<String>,
    /// The source line the problem is on, filled in by the loader for rendering.
    pub source_line: Option<String>,
}

impl Diagnostic {
    /// A diagnostic with a message and a position; the optional parts are empty.
    pub fn new(
        file: impl Into<String>,
        pos: Pos,
        pointer: impl Into<String>,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            file: file.into(),
            line: pos.line,
            column: pos.column,
            span: pos.span.max(1),
            pointer: pointer.into(),
            message: message.into(),
            expected: None,
            found: None,
            hint: None,
            note: None,
            source_line: None,
        }
    }

    /// Sets what was expected.
    pub fn expected(mut self, expected: impl Into<String>) -> Diagnostic {
        self.expected = Some(expected.into());
        self
    }

    /// Sets what was found.
    pub fn found(mut self, found: impl Into<String>) -> Diagnostic {
        self.found = Some(found.into());
        self
    }

    /// Sets the hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    /// Sets the hint when there is one.
    pub fn maybe_hint(mut self, hint: Option<String>) -> Diagnostic {
        if hint.is_some() {
            self.hint = hint;
        }
        self
    }

    /// Sets the note.
    pub fn note(mut self, note: impl Into<String>) -> Diagnostic {
        self.note = Some(note.into());
        self
    }
}

/// A position in a source file: one-based line and column, and the length of the marked token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// One-based line.
    pub line: usize,
    /// One-based column in characters.
    pub column: usize,
    /// Length of the marked token in characters (at least one when rendered).
    pub span: usize,
}

impl Pos {
    /// The start of a file.
    pub const START: Pos = Pos {
        line: 1,
        column: 1,
        span: 1,
    };
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let gutter = self.line.to_string().len();
        let pad = " ".repeat(gutter);
        writeln!(f, "error: {}", self.message)?;
        write!(f, "{pad}--> {}:{}:{}", self.file, self.line, self.column)?;
        if self.pointer.is_empty() {
            writeln!(f)?;
        } else {
            writeln!(f, " ({})", self.pointer)?;
        }
        if let Some(source_line) = &self.source_line {
            let shown = source_line.trim_end();
            writeln!(f, "{pad} |")?;
            writeln!(f, "{} | {}", self.line, shown)?;
            let caret_pad: String = shown
                .chars()
                .take(self.column.saturating_sub(1))
                .map(|ch| if ch == '\t' { '\t' } else { ' ' })
                .collect();
            writeln!(f, "{pad} | {caret_pad}{}", "^".repeat(self.span.max(1)))?;
        }
        if let Some(expected) = &self.expected {
            writeln!(f, "{pad} = expected: {expected}")?;
        }
        if let Some(found) = &self.found {
            writeln!(f, "{pad} = found: {found}")?;
        }
        if let Some(hint) = &self.hint {
            writeln!(f, "{pad} = help: {hint}")?;
        }
        if let Some(note) = &self.note {
            writeln!(f, "{pad} = note: {note}")?;
        }
        Ok(())
    }
}

/// Every problem found while loading, in file order; returned as the error of the loader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics {
    /// The problems, sorted by file, line and column.
    pub items: Vec<Diagnostic>,
    /// What could not be loaded, for the closing line: "the destination" unless set with
    /// [`Diagnostics::about`].
    pub subject: &'static str,
}

impl Default for Diagnostics {
    fn default() -> Diagnostics {
        Diagnostics::new(Vec::new())
    }
}

impl Diagnostics {
    /// Wraps a list of diagnostics.
    pub fn new(items: Vec<Diagnostic>) -> Diagnostics {
        Diagnostics {
            items,
            subject: "the destination",
        }
    }

    /// Names what could not be loaded in the closing line, for example "the configuration".
    pub fn about(mut self, subject: &'static str) -> Diagnostics {
        self.subject = subject;
        self
    }

    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are no problems.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Iterates over the problems.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.items.iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for diagnostic in &self.items {
            writeln!(f, "{diagnostic}")?;
        }
        let subject = self.subject;
        match self.items.len() {
            1 => write!(f, "error: could not load {subject} due to 1 previous error"),
            n => write!(
                f,
                "error: could not load {subject} due to {n} previous errors"
            ),
        }
    }
}

impl std::error::Error for Diagnostics {}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

/// The candidate closest to `word`, if it is close enough to be a plausible typo.
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let lower = word.to_lowercase();
    let mut best: Option<(f64, &str)> = None;
    for candidate in candidates {
        if candidate == word {
            continue;
        }
        let score = strsim::jaro_winkler(&lower, &candidate.to_lowercase());
        let distance = strsim::levenshtein(&lower, &candidate.to_lowercase());
        let close = distance <= 2.max(candidate.chars().count() / 3) || score >= 0.88;
        if close && best.is_none_or(|(best_score, _)| score > best_score) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, candidate)| format!("did you mean '{candidate}'?"))
}

/// Lists candidates for an "expected" line, eliding the tail of long lists.
pub fn one_of<'a, I>(candidates: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    const SHOWN: usize = 12;
    let all: Vec<&str> = candidates.into_iter().collect();
    let mut text = String::from("one of ");
    text.push_str(
        &all.iter()
            .take(SHOWN)
            .copied()
            .collect::<Vec<_>>()
            .join(", "),
    );
    if all.len() > SHOWN {
        text.push_str(", …");
    }
    text
}

/// Escapes one JSON pointer segment.
pub fn escape_pointer_segment(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Appends a segment to a JSON pointer.
pub fn pointer_join(base: &str, segment: &str) -> String {
    format!("{base}/{}", escape_pointer_segment(segment))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_words_only() {
        let keys = ["label", "description", "type"];
        assert_eq!(
            did_you_mean("lable", keys),
            Some("did you mean 'label'?".to_owned())
        );
        assert_eq!(
            did_you_mean("descripton", keys),
            Some("did you mean 'description'?".to_owned())
        );
        assert_eq!(did_you_mean("zzzzzz", keys), None);
        assert_eq!(did_you_mean("label", keys), None);
    }

    #[test]
    fn renders_rustc_style_with_snippet_and_notes() {
        let mut diagnostic = Diagnostic::new(
            "a.yaml",
            Pos {
                line: 9,
                column: 3,
                span: 4,
            },
            "/x/nmae",
            "unknown key 'nmae'",
        )
        .expected("one of name")
        .found("'nmae'")
        .hint("did you mean 'name'?")
        .note("a note");
        diagnostic.source_line = Some("  nmae: 1".to_owned());
        let expected = "\
error: unknown key 'nmae'
 --> a.yaml:9:3 (/x/nmae)
  |
9 |   nmae: 1
  |   ^^^^
  = expected: one of name
  = found: 'nmae'
  = help: did you mean 'name'?
  = note: a note
";
        assert_eq!(diagnostic.to_string(), expected);
        let all = Diagnostics::new(vec![diagnostic.clone(), diagnostic]);
        assert!(all.to_string().ends_with("due to 2 previous errors"));
    }

    #[test]
    fn long_candidate_lists_are_elided() {
        let many: Vec<String> = (0..20).map(|n| format!("k{n}")).collect();
        let text = one_of(many.iter().map(String::as_str));
        assert!(
            text.starts_with("one of k0, k1,") && text.ends_with(", …"),
            "{text}"
        );
    }
}
