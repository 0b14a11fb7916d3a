//! Loading: YAML text → positioned JSON → schema check → model → semantic checks.
//!
//! Each step collects every problem it finds. A file whose YAML or schema check fails is not
//! deserialized (its semantic checks would only repeat the same problems), but the other files
//! are still checked, so one run reports everything that can be known.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::diagnostics::{Diagnostic, Diagnostics, Pos};
use crate::model::{ActionSpec, DestinationSpec};
use crate::schema_check::{self, FileKind};
use crate::semantic::{self, FileCtx};
use crate::yaml::{self, SourceMap};

/// One parsed file.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    /// A `destination.yaml`.
    Destination(Box<DestinationSpec>),
    /// An action file.
    Action(Box<ActionSpec>),
}

/// A source file handed to [`load_files`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// The name used in diagnostics, for example `actions/userpilot/identify_user.yaml`.
    pub name: String,
    /// Whether the file is the destination or an action.
    pub kind: FileKind,
    /// The file's text.
    pub text: String,
}

/// A destination whose files all loaded and passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedDestination {
    /// The content of `destination.yaml`.
    pub destination: DestinationSpec,
    /// The actions, in the order of the destination's `actions` list (else by file name).
    pub actions: Vec<LoadedAction>,
    /// The hand-written prose of `docs.md`, if the directory has one.
    pub docs: Option<String>,
}

impl LoadedDestination {
    /// The action with the given key.
    pub fn action(&self, key: &str) -> Option<&ActionSpec> {
        self.actions
            .iter()
            .map(|loaded| &loaded.spec)
            .find(|spec| spec.key == key)
    }
}

/// One loaded action and the file it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedAction {
    /// The file name as given to the loader.
    pub file: String,
    /// The action.
    pub spec: ActionSpec,
}

struct Parsed {
    name: String,
    kind: FileKind,
    /// The `key` of an action file, read before any check so that cross-file checks can tell
    /// "unknown action" from "action whose file has errors".
    raw_key: Option<String>,
    doc: Option<Document>,
    map: SourceMap,
}

/// Parses and checks one file on its own (no cross-file checks); used by tests and fuzzing.
pub fn load_str(kind: FileKind, file_name: &str, text: &str) -> Result<Document, Diagnostics> {
    let mut diagnostics = Vec::new();
    let parsed = parse_file(kind, file_name, text, &mut diagnostics);
    finish(&mut diagnostics, &[(file_name, text)]);
    match parsed.doc {
        Some(doc) if diagnostics.is_empty() => Ok(doc),
        _ => Err(Diagnostics::new(diagnostics)),
    }
}

/// The hook functions a destination's hand-written module defines, for checking that every
/// hook its actions name exists (the caller reads the module; this crate does not read Rust).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HookFunctions {
    /// The module's file as a reader finds it, such as `crates/destinations/src/hooks/acme.rs`.
    pub file: String,
    /// The public functions it defines.
    pub defined: std::collections::BTreeSet<String>,
    /// Why it defines none, when it cannot be used at all (the file is missing, or the hooks
    /// module does not declare it).
    pub problem: Option<String>,
}

/// Loads a destination from in-memory files: exactly one destination file and any number of
/// action files. Diagnostics are ordered by the order of `files`, then by position.
pub fn load_files(files: &[SourceFile]) -> Result<LoadedDestination, Diagnostics> {
    load_files_with_hooks(files, None)
}

/// [`load_files`], also checking that every hook an action names is one of `hooks` when given.
pub fn load_files_with_hooks(
    files: &[SourceFile],
    hooks: Option<&HookFunctions>,
) -> Result<LoadedDestination, Diagnostics> {
    let mut diagnostics = Vec::new();
    let parsed: Vec<Parsed> = files
        .iter()
        .map(|file| parse_file(file.kind, &file.name, &file.text, &mut diagnostics))
        .collect();
    let destinations: Vec<&Parsed> = parsed
        .iter()
        .filter(|p| p.kind == FileKind::Destination)
        .collect();
    if destinations.len() > 1 {
        for extra in &destinations[1..] {
            diagnostics.push(
                Diagnostic::new(
                    &extra.name,
                    Pos::START,
                    "",
                    "more than one destination file",
                )
                .note(format!("the destination is {}", destinations[0].name)),
            );
        }
    }
    let dest = destinations.first().and_then(|p| match &p.doc {
        Some(Document::Destination(spec)) => Some((
            FileCtx {
                file: &p.name,
                map: &p.map,
            },
            spec.as_ref(),
        )),
        _ => None,
    });
    let actions: Vec<(FileCtx<'_>, &ActionSpec)> = parsed
        .iter()
        .filter_map(|p| match &p.doc {
            Some(Document::Action(spec)) => Some((
                FileCtx {
                    file: &p.name,
                    map: &p.map,
                },
                spec.as_ref(),
            )),
            _ => None,
        })
        .collect();
    let failed_actions: Vec<&Parsed> = parsed
        .iter()
        .filter(|p| p.kind == FileKind::Action && p.doc.is_none())
        .collect();
    if destinations.is_empty() {
        diagnostics.push(
            Diagnostic::new(
                "destination.yaml",
                Pos::START,
                "",
                "missing destination.yaml",
            )
            .expected("a destination.yaml next to the action files"),
        );
    }
    if let Some(dest) = dest {
        // With an unreadable action file, cross-file checks would report its actions as missing.
        let mut cross = Vec::new();
        semantic::check_cross(dest, &actions, &mut cross);
        if !failed_actions.is_empty() {
            let unreadable = failed_actions.iter().any(|p| p.raw_key.is_none());
            let failed_keys: Vec<&str> = failed_actions
                .iter()
                .filter_map(|p| p.raw_key.as_deref())
                .collect();
            let names_failed = |message: &str| {
                unreadable
                    || failed_keys.iter().any(|key| {
                        message == format!("preset names an unknown action '{key}'")
                            || message == format!("unknown action '{key}'")
                            || message == format!("action '{key}' is listed twice")
                    })
            };
            cross.retain(|d| {
                let about_actions = d.message.starts_with("preset names an unknown action")
                    || d.message.starts_with("unknown action")
                    || d.message == "the destination has no actions";
                !(about_actions && names_failed(&d.message))
            });
        }
        diagnostics.extend(cross);
    }
    if let Some(hooks) = hooks {
        semantic::check_hooks_defined(&actions, hooks, &mut diagnostics);
    }
    let texts: Vec<(&str, &str)> = files
        .iter()
        .map(|f| (f.name.as_str(), f.text.as_str()))
        .collect();
    finish(&mut diagnostics, &texts);
    if !diagnostics.is_empty() {
        return Err(Diagnostics::new(diagnostics));
    }
    let Some((_, destination)) = dest else {
        return Err(Diagnostics::new(diagnostics));
    };
    let mut loaded: Vec<LoadedAction> = actions
        .iter()
        .map(|(ctx, spec)| LoadedAction {
            file: ctx.file.to_owned(),
            spec: (*spec).clone(),
        })
        .collect();
    if !destination.actions.is_empty() {
        loaded.sort_by_key(|action| {
            destination
                .actions
                .iter()
                .position(|key| *key == action.spec.key)
                .unwrap_or(usize::MAX)
        });
    }
    Ok(LoadedDestination {
        destination: destination.clone(),
        actions: loaded,
        docs: None,
    })
}

/// Loads `destination.yaml`, every other `*.yaml` file and `docs.md` from a destination
/// directory (subdirectories such as `tests/` are not read).
pub fn load_destination_dir(path: impl AsRef<Path>) -> Result<LoadedDestination, Diagnostics> {
    load_destination_dir_with_hooks(path, None)
}

/// [`load_destination_dir`], also checking that every hook an action names is one of `hooks`
/// when given.
pub fn load_destination_dir_with_hooks(
    path: impl AsRef<Path>,
    hooks: Option<&HookFunctions>,
) -> Result<LoadedDestination, Diagnostics> {
    let dir = path.as_ref();
    let name_of = |file: &str| dir.join(file).display().to_string();
    let fail = |file: String, message: String| {
        Err(Diagnostics::new(vec![Diagnostic::new(
            file,
            Pos::START,
            "",
            message,
        )]))
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            return fail(
                dir.display().to_string(),
                format!("cannot read the destination directory: {}", lower(&err)),
            );
        }
    };
    let mut file_names = Vec::new();
    let mut diagnostics = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => {
                return fail(
                    dir.display().to_string(),
                    format!("cannot read the destination directory: {}", lower(&err)),
                );
            }
        };
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if file_name.ends_with(".yaml") {
            file_names.push(file_name);
        } else if file_name.ends_with(".yml") {
            diagnostics.push(
                Diagnostic::new(
                    name_of(&file_name),
                    Pos::START,
                    "",
                    "unexpected file extension '.yml'",
                )
                .expected("'.yaml'")
                .hint(format!(
                    "rename it to {}",
                    file_name.trim_end_matches(".yml").to_owned() + ".yaml"
                )),
            );
        }
    }
    file_names.sort();
    if let Some(idx) = file_names.iter().position(|f| f == "destination.yaml") {
        let dest = file_names.remove(idx);
        file_names.insert(0, dest);
    }
    let mut files = Vec::new();
    for file_name in &file_names {
        let name = name_of(file_name);
        let kind = if file_name == "destination.yaml" {
            FileKind::Destination
        } else {
            FileKind::Action
        };
        match fs::read(dir.join(file_name)) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => files.push(SourceFile { name, kind, text }),
                Err(err) => diagnostics.push(
                    Diagnostic::new(name, Pos::START, "", "the file is not valid utf-8").found(
                        format!(
                            "an invalid byte at offset {}",
                            err.utf8_error().valid_up_to()
                        ),
                    ),
                ),
            },
            Err(err) => diagnostics.push(Diagnostic::new(
                name,
                Pos::START,
                "",
                format!("cannot read the file: {}", lower(&err)),
            )),
        }
    }
    if !file_names.iter().any(|f| f == "destination.yaml") {
        return Err(Diagnostics::new(vec![
            Diagnostic::new(
                name_of("destination.yaml"),
                Pos::START,
                "",
                "missing destination.yaml",
            )
            .expected("a destination.yaml in the destination directory"),
        ]));
    }
    let docs = match fs::read_to_string(dir.join("docs.md")) {
        Ok(text) => Some(text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => {
            diagnostics.push(Diagnostic::new(
                name_of("docs.md"),
                Pos::START,
                "",
                format!("cannot read the file: {}", lower(&err)),
            ));
            None
        }
    };
    let result = load_files_with_hooks(&files, hooks);
    match result {
        Ok(mut loaded) if diagnostics.is_empty() => {
            loaded.docs = docs;
            Ok(loaded)
        }
        Ok(_) => Err(Diagnostics::new(diagnostics)),
        Err(more) => {
            diagnostics.extend(more);
            Err(Diagnostics::new(diagnostics))
        }
    }
}

fn lower(err: &std::io::Error) -> String {
    let text = err.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

fn parse_file(kind: FileKind, name: &str, text: &str, out: &mut Vec<Diagnostic>) -> Parsed {
    let mut parsed = Parsed {
        name: name.to_owned(),
        kind,
        raw_key: None,
        doc: None,
        map: SourceMap::default(),
    };
    let (value, map) = match yaml::parse(name, text) {
        Ok(ok) => ok,
        Err(errors) => {
            out.extend(errors);
            return parsed;
        }
    };
    parsed.map = map;
    parsed.raw_key = value.get("key").and_then(Value::as_str).map(str::to_owned);
    let schema_errors = schema_check::check(kind, name, &value, &parsed.map);
    if !schema_errors.is_empty() {
        out.extend(schema_errors);
        return parsed;
    }
    let ctx = FileCtx {
        file: name,
        map: &parsed.map,
    };
    let doc = match kind {
        FileKind::Destination => deserialize::<DestinationSpec>(name, value, out).map(|spec| {
            semantic::check_destination(ctx, &spec, out);
            Document::Destination(Box::new(spec))
        }),
        FileKind::Action => deserialize::<ActionSpec>(name, value, out).map(|spec| {
            semantic::check_action(ctx, &spec, out);
            Document::Action(Box::new(spec))
        }),
        FileKind::Config => {
            out.push(Diagnostic::new(
                name,
                Pos::START,
                "",
                "a runtime configuration is not part of a destination; load it with load_config_str",
            ));
            None
        }
    };
    parsed.doc = doc;
    parsed
}

fn deserialize<T: DeserializeOwned>(
    name: &str,
    value: Value,
    out: &mut Vec<Diagnostic>,
) -> Option<T> {
    match serde_json::from_value(value) {
        Ok(spec) => Some(spec),
        Err(err) => {
            out.push(Diagnostic::new(
                name,
                Pos::START,
                "",
                format!("cannot read the document: {err}"),
            ));
            None
        }
    }
}

/// Sorts diagnostics by file order and position, drops exact repeats and attaches source lines.
fn finish(diagnostics: &mut Vec<Diagnostic>, texts: &[(&str, &str)]) {
    let order: HashMap<&str, usize> = texts
        .iter()
        .enumerate()
        .map(|(idx, (name, _))| (*name, idx))
        .collect();
    diagnostics.sort_by(|a, b| {
        let rank = |d: &Diagnostic| order.get(d.file.as_str()).copied().unwrap_or(usize::MAX);
        (rank(a), a.line, a.column).cmp(&(rank(b), b.line, b.column))
    });
    diagnostics.dedup();
    for diagnostic in diagnostics.iter_mut() {
        let Some((_, text)) = texts.iter().find(|(name, _)| *name == diagnostic.file) else {
            continue;
        };
        if let Some(line) = text.lines().nth(diagnostic.line.saturating_sub(1)) {
            diagnostic.source_line = Some(line.to_owned());
            // Keep the caret on the line.
            let n_chars = line.chars().count();
            if diagnostic.column > n_chars + 1 {
                diagnostic.column = n_chars + 1;
            }
            let room = (n_chars + 1).saturating_sub(diagnostic.column).max(1);
            diagnostic.span = diagnostic.span.clamp(1, room);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACTION: &str = "\
id: a1
key: doIt
name: Do It
description: Does it.
platform: cloud
fields:
  userId: {label: User ID, type: string, description: The user.}
request: {method: POST, path: v1/x, json: {id: {\"@path\": \"$.payload.userId\"}}}
";

    #[test]
    fn load_str_returns_the_document() {
        match load_str(FileKind::Action, "a.yaml", ACTION) {
            Ok(Document::Action(spec)) => {
                assert_eq!(spec.key, "doIt");
                assert_eq!(spec.fields["userId"].label, "User ID");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn load_str_reports_schema_errors_with_positions() {
        let text = ACTION.replace("platform: cloud", "platform: cloud\nhiden: true");
        let err = load_str(FileKind::Action, "a.yaml", &text).expect_err("unknown key");
        assert_eq!(err.len(), 1);
        let diagnostic = &err.items[0];
        assert_eq!((diagnostic.line, diagnostic.column), (6, 1));
        assert_eq!(diagnostic.pointer, "/hiden");
        assert_eq!(diagnostic.hint.as_deref(), Some("did you mean 'hidden'?"));
        assert_eq!(diagnostic.source_line.as_deref(), Some("hiden: true"));
    }

    #[test]
    fn a_destination_without_actions_is_an_error() {
        let dest = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../actions/userpilot/destination.yaml"),
        )
        .expect("readable");
        let files = [SourceFile {
            name: "destination.yaml".into(),
            kind: FileKind::Destination,
            text: dest,
        }];
        let err = load_files(&files).expect_err("no actions");
        let messages: Vec<&str> = err.iter().map(|d| d.message.as_str()).collect();
        assert!(
            messages.contains(&"the destination has no actions"),
            "{messages:?}"
        );
        assert!(
            messages.contains(&"preset names an unknown action 'identifyUser'"),
            "{messages:?}"
        );
    }

    #[test]
    fn action_files_with_errors_do_not_cause_unknown_action_noise() {
        let dest = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../actions/userpilot/destination.yaml"),
        )
        .expect("readable");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../actions/userpilot");
        let mut files = vec![SourceFile {
            name: "destination.yaml".into(),
            kind: FileKind::Destination,
            text: dest,
        }];
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .expect("readable directory")
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".yaml") && name != "destination.yaml")
            .collect();
        names.sort();
        for name in names {
            let mut text = std::fs::read_to_string(dir.join(&name)).expect("readable");
            if name == "track_event.yaml" {
                text = text.replace("platform: cloud", "platform: clowd");
            }
            files.push(SourceFile {
                name,
                kind: FileKind::Action,
                text,
            });
        }
        let err = load_files(&files).expect_err("bad platform");
        assert_eq!(err.len(), 1, "{err}");
        assert_eq!(err.items[0].file, "track_event.yaml");
    }
}
