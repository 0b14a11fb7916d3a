//! Reading command input from a file or standard input.

use std::io::Read;
use std::path::Path;

use anyhow::Context;

/// Reads all of `path` into a string; `-` or no path reads standard input.
pub fn read_all(path: Option<&Path>) -> anyhow::Result<(String, String)> {
    match path {
        None => read_stdin(),
        Some(p) if p.as_os_str() == "-" => read_stdin(),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            Ok((text, p.display().to_string()))
        }
    }
}

fn read_stdin() -> anyhow::Result<(String, String)> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("cannot read standard input")?;
    Ok((text, "<stdin>".to_owned()))
}

/// Parses `text` as one JSON value, naming `origin`, the line and the column on failure.
///
/// A lone UTF-16 surrogate escape (`"\ud800"`, which JavaScript writes) is read as U+FFFD, as
/// the intake reads it; the replacement keeps every position the same.
pub fn parse_json(text: &str, origin: &str) -> anyhow::Result<serde_json::Value> {
    let text = actionkit_intake::json::replace_lone_surrogates(text);
    serde_json::from_str(&text).map_err(|err| {
        anyhow::anyhow!(
            "{origin}:{}:{}: invalid JSON: {}",
            err.line(),
            err.column(),
            strip_position(&err.to_string())
        )
    })
}

/// Removes serde_json's trailing " at line N column M", since we print the position first.
fn strip_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(idx) => &message[..idx],
        None => message,
    }
}
