//! YAML → JSON with positions.
//!
//! The text is parsed with yaml-rust2's pull parser into a tree that keeps the line and column of
//! every node, then converted to a [`serde_json::Value`] plus a [`SourceMap`] from JSON pointer to
//! position. Scalars are resolved with the YAML 1.2 core schema (so `yes`, `on` and `no` stay
//! strings). The loader refuses what would be surprising in a hand-written definition: duplicate
//! keys, several documents, non-scalar keys, unknown tags, non-finite numbers, tabs used for
//! indentation, and alias expansion or nesting beyond fixed limits.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, ScanError, TScalarStyle};

use crate::diagnostics::{Diagnostic, Pos, pointer_join};

/// The largest accepted file, in bytes.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// The deepest accepted nesting of mappings and sequences.
pub const MAX_DEPTH: usize = 64;
/// The most nodes a document may have after alias expansion.
pub const MAX_NODES: usize = 100_000;

/// Positions of every value and every mapping key of a document, by JSON pointer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceMap {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
}

impl SourceMap {
    /// The position of the value at `pointer`, if the pointer exists.
    pub fn value(&self, pointer: &str) -> Option<Pos> {
        self.values.get(pointer).copied()
    }

    /// The position of the key whose value is at `pointer`, if it is a mapping entry.
    pub fn key(&self, pointer: &str) -> Option<Pos> {
        self.keys.get(pointer).copied()
    }

    /// The position of the value at `pointer`, or of its closest existing ancestor.
    pub fn value_or_ancestor(&self, pointer: &str) -> Pos {
        let mut current = pointer;
        loop {
            if let Some(pos) = self.values.get(current) {
                return *pos;
            }
            match current.rfind('/') {
                Some(idx) => current = &current[..idx],
                None => return Pos::START,
            }
        }
    }

    /// The position of the key of `pointer` if it has one, else of its value (or closest ancestor).
    pub fn key_or_value(&self, pointer: &str) -> Pos {
        self.key(pointer)
            .unwrap_or_else(|| self.value_or_ancestor(pointer))
    }
}

/// A node of the positioned tree.
#[derive(Debug, Clone)]
struct Node {
    kind: NodeKind,
    pos: Pos,
    /// How many nodes this subtree holds, used to bound alias expansion.
    size: usize,
}

#[derive(Debug, Clone)]
enum NodeKind {
    Scalar(Value),
    Seq(Vec<Node>),
    Map(Vec<(String, Pos, Node)>),
}

/// A collection being built.
enum Frame {
    Seq {
        anchor: usize,
        pos: Pos,
        items: Vec<Node>,
    },
    Map {
        anchor: usize,
        pos: Pos,
        entries: Vec<(String, Pos, Node)>,
        pending_key: Option<(String, Pos)>,
        /// Set when the pending key was rejected, so its value is skipped.
        skip_value: bool,
    },
}

/// What the parser made of one scalar used as a key.
enum KeyOutcome {
    Key(String, Pos),
    Rejected,
}

struct Builder<'a> {
    file: &'a str,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    errors: Vec<Diagnostic>,
    n_nodes: usize,
    root: Option<Node>,
}

/// Parses `text` into JSON and its source map, or returns every problem found.
pub fn parse(file: &str, text: &str) -> Result<(Value, SourceMap), Vec<Diagnostic>> {
    if text.len() > MAX_FILE_BYTES {
        return Err(vec![
            Diagnostic::new(file, Pos::START, "", "file is too large")
                .expected(format!("at most {MAX_FILE_BYTES} bytes"))
                .found(format!("{} bytes", text.len())),
        ]);
    }
    let mut builder = Builder {
        file,
        stack: Vec::new(),
        anchors: HashMap::new(),
        errors: Vec::new(),
        n_nodes: 0,
        root: None,
    };
    let mut parser = Parser::new_from_str(text);
    let mut n_documents = 0usize;
    loop {
        let (event, marker) = match parser.next_token() {
            Ok(next) => next,
            Err(err) => {
                builder.errors.push(scan_error(file, text, &err));
                return Err(builder.errors);
            }
        };
        match event {
            Event::StreamStart | Event::Nothing | Event::DocumentEnd => {}
            Event::StreamEnd => break,
            Event::DocumentStart => {
                n_documents += 1;
                if n_documents > 1 {
                    builder.errors.push(
                        Diagnostic::new(file, pos_of(marker, 3), "", "more than one yaml document")
                            .expected("a single document")
                            .hint("remove the `---` separator and merge the documents"),
                    );
                    return Err(builder.errors);
                }
            }
            Event::Alias(id) => {
                let pos = pos_of(marker, 1);
                match builder.anchors.get(&id).cloned() {
                    Some(node) => {
                        builder.n_nodes += node.size;
                        if builder.n_nodes > MAX_NODES {
                            builder.errors.push(
                                Diagnostic::new(file, pos, "", "alias expansion is too large")
                                    .expected(format!("at most {MAX_NODES} nodes in total"))
                                    .hint("write the values out instead of repeating aliases"),
                            );
                            return Err(builder.errors);
                        }
                        builder.complete(Node { pos, ..node }, 0);
                    }
                    None => {
                        builder.errors.push(Diagnostic::new(
                            file,
                            pos,
                            "",
                            "alias names an unknown anchor",
                        ));
                        return Err(builder.errors);
                    }
                }
            }
            Event::Scalar(raw, style, anchor, tag) => {
                let pos = pos_of(marker, scalar_span(&raw, style));
                builder.n_nodes += 1;
                if builder.n_nodes > MAX_NODES {
                    builder.too_many_nodes(pos);
                    return Err(builder.errors);
                }
                if builder.expects_key() {
                    match builder.key_from_scalar(raw, style, tag.as_ref(), pos) {
                        KeyOutcome::Key(key, pos) => builder.set_key(key, pos),
                        KeyOutcome::Rejected => builder.reject_key(),
                    }
                    continue;
                }
                let value = match resolve_scalar(&raw, style, tag.as_ref()) {
                    Ok(value) => value,
                    Err(problem) => {
                        let mut diagnostic = problem.into_diagnostic(file, pos);
                        diagnostic.pointer = builder.current_pointer();
                        builder.errors.push(diagnostic);
                        Value::Null
                    }
                };
                builder.complete(
                    Node {
                        kind: NodeKind::Scalar(value),
                        pos,
                        size: 1,
                    },
                    anchor,
                );
            }
            Event::SequenceStart(anchor, tag) => {
                if let Err(()) = builder.start_collection(true, anchor, tag.as_ref(), marker) {
                    return Err(builder.errors);
                }
            }
            Event::MappingStart(anchor, tag) => {
                if let Err(()) = builder.start_collection(false, anchor, tag.as_ref(), marker) {
                    return Err(builder.errors);
                }
            }
            Event::SequenceEnd | Event::MappingEnd => builder.finish_collection(),
        }
    }
    let Some(root) = builder.root.take() else {
        builder
            .errors
            .push(Diagnostic::new(file, Pos::START, "", "the file is empty").expected("a mapping"));
        return Err(builder.errors);
    };
    if !builder.errors.is_empty() {
        return Err(builder.errors);
    }
    let mut map = SourceMap::default();
    let value = to_json(root, String::new(), &mut map);
    Ok((value, map))
}

impl Builder<'_> {
    /// Whether the next node is a mapping key.
    fn expects_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame::Map {
                pending_key: None,
                skip_value: false,
                ..
            })
        )
    }

    /// The JSON pointer the next completed node will have.
    fn current_pointer(&self) -> String {
        let mut pointer = String::new();
        for frame in &self.stack {
            match frame {
                Frame::Seq { items, .. } => {
                    pointer = pointer_join(&pointer, &items.len().to_string())
                }
                Frame::Map {
                    pending_key: Some((key, _)),
                    ..
                } => pointer = pointer_join(&pointer, key),
                Frame::Map { .. } => {}
            }
        }
        pointer
    }

    fn too_many_nodes(&mut self, pos: Pos) {
        self.errors.push(
            Diagnostic::new(self.file, pos, "", "the document is too large")
                .expected(format!("at most {MAX_NODES} nodes")),
        );
    }

    fn key_from_scalar(
        &mut self,
        raw: String,
        style: TScalarStyle,
        tag: Option<&Tag>,
        pos: Pos,
    ) -> KeyOutcome {
        if let Some(tag) = tag
            && !(is_core_tag(tag, "str") || is_non_specific(tag))
        {
            self.errors.push(unsupported_tag(self.file, pos, tag));
            return KeyOutcome::Rejected;
        }
        let _ = style;
        let pointer = pointer_join(&self.current_pointer(), &raw);
        if let Some(Frame::Map { entries, .. }) = self.stack.last()
            && let Some((_, first_pos, _)) = entries.iter().find(|(key, _, _)| *key == raw)
        {
            let note = format!("'{raw}' is first defined at line {}", first_pos.line);
            self.errors.push(
                Diagnostic::new(self.file, pos, pointer, format!("duplicate key '{raw}'"))
                    .expected("each key at most once per mapping")
                    .note(note),
            );
            return KeyOutcome::Rejected;
        }
        KeyOutcome::Key(raw, pos)
    }

    fn set_key(&mut self, key: String, pos: Pos) {
        if let Some(Frame::Map { pending_key, .. }) = self.stack.last_mut() {
            *pending_key = Some((key, pos));
        }
    }

    fn reject_key(&mut self) {
        if let Some(Frame::Map { skip_value, .. }) = self.stack.last_mut() {
            *skip_value = true;
        }
    }

    fn start_collection(
        &mut self,
        is_seq: bool,
        anchor: usize,
        tag: Option<&Tag>,
        marker: Marker,
    ) -> Result<(), ()> {
        let pos = pos_of(marker, 1);
        self.n_nodes += 1;
        if self.n_nodes > MAX_NODES {
            self.too_many_nodes(pos);
            return Err(());
        }
        if self.stack.len() >= MAX_DEPTH {
            self.errors.push(
                Diagnostic::new(
                    self.file,
                    pos,
                    self.current_pointer(),
                    "nesting is too deep",
                )
                .expected(format!(
                    "at most {MAX_DEPTH} levels of mappings and sequences"
                )),
            );
            return Err(());
        }
        if self.expects_key() {
            self.errors.push(
                Diagnostic::new(
                    self.file,
                    pos,
                    self.current_pointer(),
                    "complex mapping keys are not supported",
                )
                .expected("a scalar key"),
            );
            return Err(());
        }
        if let Some(tag) = tag {
            let expected = if is_seq { "seq" } else { "map" };
            if !(is_core_tag(tag, expected) || is_non_specific(tag)) {
                self.errors.push(unsupported_tag(self.file, pos, tag));
            }
        }
        self.stack.push(if is_seq {
            Frame::Seq {
                anchor,
                pos,
                items: Vec::new(),
            }
        } else {
            Frame::Map {
                anchor,
                pos,
                entries: Vec::new(),
                pending_key: None,
                skip_value: false,
            }
        });
        Ok(())
    }

    fn finish_collection(&mut self) {
        let Some(frame) = self.stack.pop() else {
            return;
        };
        let (node, anchor) = match frame {
            Frame::Seq { anchor, pos, items } => {
                let size = 1 + items.iter().map(|item| item.size).sum::<usize>();
                (
                    Node {
                        kind: NodeKind::Seq(items),
                        pos,
                        size,
                    },
                    anchor,
                )
            }
            Frame::Map {
                anchor,
                pos,
                entries,
                ..
            } => {
                let size = 1 + entries.iter().map(|(_, _, node)| node.size).sum::<usize>();
                (
                    Node {
                        kind: NodeKind::Map(entries),
                        pos,
                        size,
                    },
                    anchor,
                )
            }
        };
        self.complete(node, anchor);
    }

    /// Attaches a finished node to its parent (or makes it the root).
    fn complete(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                pending_key,
                skip_value,
                ..
            }) => {
                if *skip_value {
                    *skip_value = false;
                } else if let Some((key, key_pos)) = pending_key.take() {
                    entries.push((key, key_pos, node));
                } else {
                    // Only an alias can arrive here in key position.
                    *skip_value = true;
                    let pos = node.pos;
                    self.errors.push(
                        Diagnostic::new(
                            self.file,
                            pos,
                            "",
                            "aliases cannot be used as mapping keys",
                        )
                        .expected("a scalar key"),
                    );
                }
            }
        }
    }
}

/// Converts a tree into JSON, recording positions.
fn to_json(node: Node, pointer: String, map: &mut SourceMap) -> Value {
    map.values.insert(pointer.clone(), node.pos);
    match node.kind {
        NodeKind::Scalar(value) => value,
        NodeKind::Seq(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(idx, item)| to_json(item, pointer_join(&pointer, &idx.to_string()), map))
                .collect(),
        ),
        NodeKind::Map(entries) => {
            // A block mapping's start marker can lie after its first key; point at the first key.
            if let Some((_, first_key_pos, _)) = entries.first()
                && (first_key_pos.line, first_key_pos.column) < (node.pos.line, node.pos.column)
            {
                map.values.insert(pointer.clone(), *first_key_pos);
            }
            let mut object = Map::new();
            for (key, key_pos, child) in entries {
                let child_pointer = pointer_join(&pointer, &key);
                map.keys.insert(child_pointer.clone(), key_pos);
                let value = to_json(child, child_pointer, map);
                object.insert(key, value);
            }
            Value::Object(object)
        }
    }
}

/// A one-based position from a yaml-rust2 marker (whose column is zero-based).
fn pos_of(marker: Marker, span: usize) -> Pos {
    Pos {
        line: marker.line().max(1),
        column: marker.col() + 1,
        span: span.max(1),
    }
}

/// How many characters a scalar occupies on its line, when that is known.
fn scalar_span(raw: &str, style: TScalarStyle) -> usize {
    if raw.contains('\n') {
        return 1;
    }
    let n_chars = raw.chars().count();
    match style {
        TScalarStyle::Plain => n_chars,
        TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => n_chars + 2,
        _ => 1,
    }
}

/// Turns a scanner error into a diagnostic, explaining tab indentation specially.
fn scan_error(file: &str, text: &str, err: &ScanError) -> Diagnostic {
    let marker = err.marker();
    let pos = pos_of(*marker, 1);
    // The scanner may stop on the line before the tab (while reading a multi-line scalar).
    for (idx, line) in text.lines().enumerate().take(pos.line + 1) {
        let indent: Vec<char> = line
            .chars()
            .take_while(|ch| *ch == ' ' || *ch == '\t')
            .collect();
        let rest = &line[indent.iter().map(|ch| ch.len_utf8()).sum::<usize>()..];
        if let Some(tab_idx) = indent.iter().position(|ch| *ch == '\t')
            && !rest.is_empty()
        {
            let tab_pos = Pos {
                line: idx + 1,
                column: tab_idx + 1,
                span: 1,
            };
            return Diagnostic::new(file, tab_pos, "", "tab character used for indentation")
                .expected("spaces")
                .found("a tab")
                .hint("indent with spaces; yaml does not allow tabs for indentation");
        }
    }
    Diagnostic::new(file, pos, "", format!("invalid yaml: {}", err.info()))
}

/// A scalar that could not be turned into JSON.
struct ScalarProblem {
    message: String,
    expected: Option<String>,
    found: String,
}

impl ScalarProblem {
    fn into_diagnostic(self, file: &str, pos: Pos) -> Diagnostic {
        let mut diagnostic = Diagnostic::new(file, pos, "", self.message).found(self.found);
        diagnostic.expected = self.expected;
        diagnostic
    }
}

const CORE_TAG_PREFIX: &str = "tag:yaml.org,2002:";

fn is_core_tag(tag: &Tag, suffix: &str) -> bool {
    (tag.handle == CORE_TAG_PREFIX || tag.handle == "!!") && tag.suffix == suffix
}

fn is_non_specific(tag: &Tag) -> bool {
    tag.handle == "!" && tag.suffix.is_empty()
}

fn tag_text(tag: &Tag) -> String {
    if tag.handle == CORE_TAG_PREFIX {
        format!("!!{}", tag.suffix)
    } else {
        format!("{}{}", tag.handle, tag.suffix)
    }
}

fn unsupported_tag(file: &str, pos: Pos, tag: &Tag) -> Diagnostic {
    Diagnostic::new(
        file,
        pos,
        "",
        format!("unsupported tag '{}'", tag_text(tag)),
    )
    .expected("no tag, or one of !!str, !!int, !!float, !!bool, !!null, !!map, !!seq")
}

/// Resolves a scalar with the YAML 1.2 core schema.
fn resolve_scalar(
    raw: &str,
    style: TScalarStyle,
    tag: Option<&Tag>,
) -> Result<Value, ScalarProblem> {
    if let Some(tag) = tag {
        if is_non_specific(tag) || is_core_tag(tag, "str") {
            return Ok(Value::String(raw.to_owned()));
        }
        let resolved = resolve_plain(raw);
        let wanted = tag.suffix.as_str();
        let ok = tag.handle == CORE_TAG_PREFIX
            && match (&resolved, wanted) {
                (Ok(Value::Null), "null") | (Ok(Value::Bool(_)), "bool") => true,
                (Ok(Value::Number(n)), "int") => n.is_i64() || n.is_u64(),
                (Ok(Value::Number(_)), "float") => true,
                _ => false,
            };
        if ok {
            return resolved;
        }
        if tag.handle == CORE_TAG_PREFIX && matches!(wanted, "null" | "bool" | "int" | "float") {
            return Err(ScalarProblem {
                message: format!("value does not match its tag '{}'", tag_text(tag)),
                expected: Some(format!("a yaml {wanted}")),
                found: format!("'{raw}'"),
            });
        }
        return Err(ScalarProblem {
            message: format!("unsupported tag '{}'", tag_text(tag)),
            expected: Some("no tag, or one of !!str, !!int, !!float, !!bool, !!null".to_owned()),
            found: format!("'{raw}'"),
        });
    }
    if style != TScalarStyle::Plain {
        return Ok(Value::String(raw.to_owned()));
    }
    resolve_plain(raw)
}

/// Resolves a plain scalar: null, booleans, integers, floats, else a string.
fn resolve_plain(raw: &str) -> Result<Value, ScalarProblem> {
    match raw {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
        "true" | "True" | "TRUE" => return Ok(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Ok(Value::Bool(false)),
        _ => {}
    }
    let unsigned = raw.strip_prefix(['-', '+']).unwrap_or(raw);
    let lower = unsigned.to_ascii_lowercase();
    if lower == ".inf" || lower == ".nan" {
        return Err(ScalarProblem {
            message: "number is not representable in json".to_owned(),
            expected: Some("a finite number".to_owned()),
            found: format!("'{raw}'"),
        });
    }
    if let Some(hex) = raw.strip_prefix("0x")
        && !hex.is_empty()
        && hex.chars().all(|ch| ch.is_ascii_hexdigit())
    {
        return u64::from_str_radix(hex, 16)
            .map(|n| Value::Number(n.into()))
            .map_err(|_| too_big(raw));
    }
    if let Some(oct) = raw.strip_prefix("0o")
        && !oct.is_empty()
        && oct.chars().all(|ch| ('0'..='7').contains(&ch))
    {
        return u64::from_str_radix(oct, 8)
            .map(|n| Value::Number(n.into()))
            .map_err(|_| too_big(raw));
    }
    if !unsigned.is_empty() && unsigned.chars().all(|ch| ch.is_ascii_digit()) {
        if let Ok(n) = raw.parse::<i64>() {
            return Ok(Value::Number(n.into()));
        }
        if let Ok(n) = raw.parse::<u64>() {
            return Ok(Value::Number(n.into()));
        }
    }
    if is_core_float(unsigned) {
        return match raw.parse::<f64>().ok().and_then(Number::from_f64) {
            Some(n) => Ok(Value::Number(n)),
            None => Err(too_big(raw)),
        };
    }
    Ok(Value::String(raw.to_owned()))
}

fn too_big(raw: &str) -> ScalarProblem {
    ScalarProblem {
        message: "number is out of range".to_owned(),
        expected: Some("a finite number".to_owned()),
        found: format!("'{raw}'"),
    }
}

/// Whether `text` (without sign) matches `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`.
fn is_core_float(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut idx = 0;
    let digits = |idx: &mut usize| {
        let start = *idx;
        while *idx < bytes.len() && bytes[*idx].is_ascii_digit() {
            *idx += 1;
        }
        *idx - start
    };
    let int_digits = digits(&mut idx);
    if idx < bytes.len() && bytes[idx] == b'.' {
        idx += 1;
        let frac_digits = digits(&mut idx);
        if int_digits == 0 && frac_digits == 0 {
            return false;
        }
    } else if int_digits == 0 {
        return false;
    }
    if idx < bytes.len() && (bytes[idx] == b'e' || bytes[idx] == b'E') {
        idx += 1;
        if idx < bytes.len() && (bytes[idx] == b'-' || bytes[idx] == b'+') {
            idx += 1;
        }
        if digits(&mut idx) == 0 {
            return false;
        }
    }
    idx == bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> (Value, SourceMap) {
        match parse("t.yaml", text) {
            Ok(parsed) => parsed,
            Err(errors) => panic!("unexpected errors: {errors:?}"),
        }
    }

    fn err(text: &str) -> Vec<Diagnostic> {
        match parse("t.yaml", text) {
            Ok(parsed) => panic!("expected an error, got {parsed:?}"),
            Err(errors) => errors,
        }
    }

    #[test]
    fn resolves_core_schema_scalars() {
        let (value, _) = ok("a: yes\nb: 1\nc: -2.5\nd: ~\ne: true\nf: '1'\ng: 0x1F\nh: 1_000\n");
        assert_eq!(
            value,
            serde_json::json!({"a": "yes", "b": 1, "c": -2.5, "d": null, "e": true, "f": "1", "g": 31, "h": "1_000"})
        );
    }

    #[test]
    fn records_positions_of_keys_and_values() {
        let (_, map) = ok("a:\n  bb: [1, 'x']\n");
        assert_eq!(
            map.key("/a/bb"),
            Some(Pos {
                line: 2,
                column: 3,
                span: 2
            })
        );
        assert_eq!(
            map.value("/a/bb/1"),
            Some(Pos {
                line: 2,
                column: 11,
                span: 3
            })
        );
        assert_eq!(map.value_or_ancestor("/a/bb/7/z").line, 2);
    }

    #[test]
    fn rejects_duplicate_keys_and_reports_all() {
        let errors = err("a: 1\nb: 2\na: 3\nb: 4\n");
        let messages: Vec<_> = errors
            .iter()
            .map(|d| (d.message.as_str(), d.line))
            .collect();
        assert_eq!(
            messages,
            [("duplicate key 'a'", 3), ("duplicate key 'b'", 4)]
        );
    }

    #[test]
    fn explains_tab_indentation() {
        let errors = err("a:\n\tb: 1\n");
        assert_eq!(errors[0].message, "tab character used for indentation");
        assert_eq!((errors[0].line, errors[0].column), (2, 1));
    }

    #[test]
    fn limits_alias_expansion() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for idx in 1..8 {
            let prev = idx - 1;
            text.push_str(&format!(
                "a{idx}: &a{idx} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let errors = err(&text);
        assert_eq!(errors[0].message, "alias expansion is too large");
    }

    #[test]
    fn expands_small_aliases() {
        let (value, _) = ok("a: &x {k: 1}\nb: *x\n");
        assert_eq!(value, serde_json::json!({"a": {"k": 1}, "b": {"k": 1}}));
    }

    #[test]
    fn rejects_deep_nesting_and_many_documents_and_empty_files() {
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert_eq!(err(&deep)[0].message, "nesting is too deep");
        assert_eq!(
            err("a: 1\n---\nb: 2\n")[0].message,
            "more than one yaml document"
        );
        assert_eq!(err("# only a comment\n")[0].message, "the file is empty");
    }

    #[test]
    fn rejects_non_finite_numbers_and_unknown_tags() {
        assert_eq!(
            err("a: .inf\n")[0].message,
            "number is not representable in json"
        );
        assert_eq!(
            err("a: !custom x\n")[0].message,
            "unsupported tag '!custom'"
        );
        assert_eq!(ok("a: !!str 12\n").0, serde_json::json!({"a": "12"}));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let errors = err("a: [1, 2\nb: 3\n");
        assert!(
            errors[0].message.starts_with("invalid yaml: "),
            "{errors:?}"
        );
        assert!(errors[0].line >= 1);
    }
}
