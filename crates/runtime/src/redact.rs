//! Hiding secret setting values by provenance: what is redacted is what was built from a secret,
//! not text that happens to look like one.
//!
//! # How provenance is found
//!
//! A destination declares which settings are secret (`secret: true` or `type: password`). When an
//! instance is created, [`Probe::new`] makes a copy of its settings in which every secret value is
//! replaced by a *sentinel*: a string of Unicode private-use characters, unique per secret and
//! longer than the secret. The request builder (`crate::build`) evaluates every mapping that can
//! read settings twice, once over the real settings and once over the sentinel copy, and compares
//! the two results ([`Probe::mark_str`], [`Probe::mark_value`]). Whatever comes out the same in
//! both runs did not depend on a secret's text and is shown as it is; whatever differs is marked.
//! The marks travel with the built [`Request`] as its [`Redactions`]: byte ranges of the URL and
//! of header values, and JSON paths (with byte ranges for strings) of the body.
//!
//! The base URL and the headers depend only on settings, so they are probed once per instance.
//! A body or batch mapping is probed per event only when [`may_read_settings`] says its text can
//! reach `$.settings` (no Userpilot body does), so the hot path pays nothing. Hooks are given the
//! settings with every secret blanked (`""`), so nothing a hook computes can carry a secret.
//!
//! # The rule: what a marked value becomes
//!
//! 1. **Spans.** When the sentinel run's value is literal text with whole sentinels in it
//!    (verbatim, URL-encoded as by `application/x-www-form-urlencoded`, or percent-encoded as by
//!    liquid's `url_encode`), and putting the real
//!    secrets (encoded the same way) in place of the sentinels gives exactly the real value, only
//!    those places are replaced by [`REDACTED`]; the literal text around them is what the
//!    template wrote and is kept: `Token {{settings.apiKey}}` is shown as `Token [redacted]`,
//!    `pre-{{settings.apiKey}}-post` as `pre-[redacted]-post`, a URL
//!    `https://x.io/{{settings.apiKey}}/` joined with `v1/track` as
//!    `https://x.io/[redacted]/v1/track`.
//! 2. **Whole.** Otherwise the secret was transformed or mixed in (Basic auth's base64 of
//!    `user:password`, a case change, a slice) and the whole value becomes [`REDACTED`], except
//!    a leading authentication scheme (a word and one space, `Basic `, `Bearer `) that both runs
//!    wrote: `Basic [redacted]`. A JSON value that is not a string, or whose structure depends on
//!    a secret (other keys, another length), is replaced whole by the string [`REDACTED`].
//!
//! Text that merely equals or contains a secret's characters (an event's user id equal to the
//! API key, every `k` of the output when the key is `k`) is never touched, because it comes out
//! the same in both runs.
//!
//! Soundness: the kept text in rule 1 is taken from the sentinel run, which never saw the real
//! secrets, and it is kept only where it is also exactly the real text. A value computed from a
//! secret escapes the mark only when it comes out the same for the real secret and for its
//! sentinel, which differs from it in every character and in length; what such a value can tell
//! is the answer to a comparison (for example `@if` against a literal), never the secret's text.
//!
//! # Free text
//!
//! Reasons from the destination's answers are free text that may echo what was sent. They are
//! scrubbed with [`scrub`] as a last line of defence, with the needles of [`Redactions::needles`]
//! (the exact secrets and every marked text of the request): a needle is replaced where it stands
//! as a whole token (not directly after or before a letter, digit, `_` or `-`), and also inside longer
//! words when it has at least [`MIN_UNAMBIGUOUS_CHARS`] characters. So a key `k` hides
//! `invalid key k` but leaves `Token` and `/v1/track` alone.

use std::ops::Range;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::request::Request;

/// What replaces a secret.
pub const REDACTED: &str = "[redacted]";

/// Needles at least this many characters long are scrubbed from free text even inside words;
/// shorter ones only as whole tokens.
pub const MIN_UNAMBIGUOUS_CHARS: usize = 12;

/// One step of a path into a JSON value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Step {
    /// An object member.
    Key(String),
    /// An array element.
    Index(usize),
}

/// A place in a JSON body whose value derives from a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct JsonMark {
    /// Where the value is (empty for the whole body).
    pub path: Vec<Step>,
    /// The byte ranges of the string value to hide; `None` hides the whole value.
    pub spans: Option<Vec<Range<usize>>>,
}

impl std::fmt::Debug for JsonMark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonMark")
            .field("path", &self.path)
            .field("spans", &self.spans)
            .finish()
    }
}

/// Which parts of a built request derive from secret settings (see the module docs).
#[derive(Clone, Default, PartialEq)]
pub struct Redactions {
    /// Byte ranges of the URL.
    pub url: Vec<Range<usize>>,
    /// Lower-case header names with the byte ranges of their values.
    pub headers: Arc<[(String, Vec<Range<usize>>)]>,
    /// Places in the JSON body.
    pub json: Vec<JsonMark>,
    /// The exact values of the instance's secret settings, for scrubbing free text.
    pub secrets: Arc<[String]>,
}

impl std::fmt::Debug for Redactions {
    /// Secret values are left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("Redactions")
            .field("url", &self.url)
            .field("header_names", &names)
            .field("json", &self.json)
            .field("n_secrets", &self.secrets.len())
            .finish()
    }
}

impl Redactions {
    /// Whether nothing in the request derives from a secret.
    pub fn is_empty(&self) -> bool {
        self.url.is_empty() && self.headers.is_empty() && self.json.is_empty()
    }

    /// The texts to scrub from free text about `request`: the exact secrets and every marked
    /// part of the URL, header values and body strings.
    pub fn needles(&self, request: &Request) -> Vec<String> {
        let mut needles: Vec<String> = self.secrets.iter().cloned().collect();
        push_spans(&mut needles, &request.url, &self.url);
        for (name, value) in &request.headers {
            if let Some((_, spans)) = self.headers.iter().find(|(n, _)| n == name) {
                needles.push(value.clone());
                push_spans(&mut needles, value, spans);
            }
        }
        if let Some(json) = &request.json {
            for mark in &self.json {
                match (find(json, &mark.path), &mark.spans) {
                    (Some(Value::String(s)), Some(spans)) => push_spans(&mut needles, s, spans),
                    (Some(Value::String(s)), None) => needles.push(s.clone()),
                    _ => {}
                }
            }
        }
        needles.retain(|needle| !needle.is_empty());
        needles
    }
}

fn push_spans(needles: &mut Vec<String>, text: &str, spans: &[Range<usize>]) {
    needles.extend(
        spans
            .iter()
            .filter_map(|r| text.get(r.clone()))
            .map(str::to_owned),
    );
}

/// A copy of `request` with its signature header added ([`Request::signed`]) and every part
/// its [`Redactions`] mark replaced by [`REDACTED`].
pub fn redact(request: &Request) -> Request {
    let request = &request.signed();
    let marks = &request.redactions;
    let mut out = request.clone();
    if marks.is_empty() {
        return out;
    }
    out.url = cover(&request.url, &marks.url);
    for (name, value) in &mut out.headers {
        if let Some((_, spans)) = marks.headers.iter().find(|(n, _)| n == name) {
            *value = cover(value, spans);
        }
    }
    if let Some(json) = &mut out.json {
        apply_json(json, &marks.json);
    }
    out
}

/// Replaces the marked places of `json` by [`REDACTED`] in place; a mark whose place is gone
/// (the body changed since) is skipped.
pub fn apply_json(json: &mut Value, marks: &[JsonMark]) {
    for mark in marks {
        let Some(value) = find_mut(json, &mark.path) else {
            continue;
        };
        *value = match (&*value, &mark.spans) {
            (Value::String(s), Some(spans)) => Value::String(cover(s, spans)),
            _ => Value::String(REDACTED.to_owned()),
        };
    }
}

fn find<'a>(value: &'a Value, path: &[Step]) -> Option<&'a Value> {
    path.iter()
        .try_fold(value, |current, step| match (current, step) {
            (Value::Object(map), Step::Key(key)) => map.get(key),
            (Value::Array(items), Step::Index(idx)) => items.get(*idx),
            _ => None,
        })
}

fn find_mut<'a>(value: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    path.iter()
        .try_fold(value, |current, step| match (current, step) {
            (Value::Object(map), Step::Key(key)) => map.get_mut(key),
            (Value::Array(items), Step::Index(idx)) => items.get_mut(*idx),
            _ => None,
        })
}

/// `text` with every range of `spans` replaced by [`REDACTED`]; ranges that overlap are merged,
/// and a range that does not fit the text hides the whole text.
pub(crate) fn cover(text: &str, spans: &[Range<usize>]) -> String {
    let mut sorted: Vec<Range<usize>> = spans.iter().filter(|r| r.start < r.end).cloned().collect();
    if sorted.is_empty() {
        return text.to_owned();
    }
    sorted.sort_by_key(|r| r.start);
    let mut out = String::with_capacity(text.len());
    let mut last_end: Option<usize> = None;
    for range in sorted {
        if range.end > text.len()
            || !text.is_char_boundary(range.start)
            || !text.is_char_boundary(range.end)
        {
            return REDACTED.to_owned();
        }
        match last_end {
            Some(end) if range.start <= end => last_end = Some(end.max(range.end)),
            _ => {
                out.push_str(&text[last_end.unwrap_or(0)..range.start]);
                out.push_str(REDACTED);
                last_end = Some(range.end);
            }
        }
    }
    out.push_str(&text[last_end.unwrap_or(0)..]);
    out
}

/// The settings of an instance with every secret replaced by a sentinel, and how to compare
/// what was built from them with what was built from the real settings.
#[derive(Clone, PartialEq)]
pub struct Probe {
    settings: Value,
    /// Each sentinel with the real text it stands for.
    pairs: Vec<(String, String)>,
    secrets: Arc<[String]>,
}

impl std::fmt::Debug for Probe {
    /// Secret values are left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe")
            .field("n_secrets", &self.pairs.len())
            .finish_non_exhaustive()
    }
}

/// The sentinel of the secret at `idx` whose real text is `real`: private-use characters only,
/// unique per index, and longer than the real text.
fn sentinel(idx: usize, real: &str) -> String {
    let tag = char::from_u32(0xE100 + (idx % 0x700) as u32).unwrap_or('\u{E100}');
    let mut out = String::new();
    out.push('\u{E000}');
    out.push(tag);
    for _ in 0..=real.chars().count() {
        out.push('\u{E001}');
    }
    out.push('\u{E002}');
    out
}

impl Probe {
    /// The probe of `settings` whose secret settings are `secret_keys`; `None` when none of them
    /// has a value (absent or `null`), since then nothing can derive from a secret.
    pub fn new<'a>(
        settings: &Value,
        secret_keys: impl IntoIterator<Item = &'a str>,
    ) -> Option<Probe> {
        let Value::Object(map) = settings else {
            return None;
        };
        let mut probe = map.clone();
        let mut pairs = Vec::new();
        for key in secret_keys {
            let real = match map.get(key) {
                None | Some(Value::Null) => continue,
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            };
            let fake = sentinel(pairs.len(), &real);
            probe.insert(key.to_owned(), Value::String(fake.clone()));
            pairs.push((fake, real));
        }
        if pairs.is_empty() {
            return None;
        }
        let secrets: Arc<[String]> = pairs
            .iter()
            .map(|(_, real)| real.clone())
            .filter(|real| !real.is_empty())
            .collect();
        Some(Probe {
            settings: Value::Object(probe),
            pairs,
            secrets,
        })
    }

    /// The settings with every secret replaced by its sentinel.
    pub fn settings(&self) -> &Value {
        &self.settings
    }

    /// The non-empty values of the secret settings.
    pub fn secrets(&self) -> &Arc<[String]> {
        &self.secrets
    }

    /// The byte ranges of `real` to hide, given what the same template made of the sentinels
    /// (`None` when that evaluation failed or gave no string, which hides all of `real`).
    pub fn mark_str(&self, real: &str, probe: Option<&str>) -> Vec<Range<usize>> {
        let Some(probe) = probe else {
            return whole(real, 0);
        };
        if real == probe {
            return Vec::new();
        }
        let verbatim = self.spans(real, probe, |s| s.to_owned());
        if let Some(spans) = verbatim {
            return spans;
        }
        let encoded = self.spans(real, probe, |s| {
            url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
        });
        if let Some(spans) = encoded {
            return spans;
        }
        if let Some(spans) = self.spans(real, probe, percent_encode) {
            return spans;
        }
        whole(real, scheme_len(real, probe))
    }

    /// Rule 1 of the module docs with the sentinels and secrets encoded by `encode`.
    fn spans(
        &self,
        real: &str,
        probe: &str,
        encode: impl Fn(&str) -> String,
    ) -> Option<Vec<Range<usize>>> {
        let forms: Vec<(String, String)> = self
            .pairs
            .iter()
            .map(|(fake, secret)| (encode(fake), encode(secret)))
            .collect();
        let mut rebuilt = String::with_capacity(real.len());
        let mut spans = Vec::new();
        let mut literal_start = 0;
        let mut at = 0;
        while at < probe.len() {
            let rest = &probe[at..];
            if let Some((fake, secret)) = forms.iter().find(|(fake, _)| rest.starts_with(fake)) {
                rebuilt.push_str(&probe[literal_start..at]);
                let start = rebuilt.len();
                rebuilt.push_str(secret);
                if !secret.is_empty() {
                    spans.push(start..rebuilt.len());
                }
                at += fake.len();
                literal_start = at;
            } else {
                at += rest.chars().next().map_or(1, char::len_utf8);
            }
        }
        rebuilt.push_str(&probe[literal_start..]);
        (literal_start > 0 && rebuilt == real).then_some(spans)
    }

    /// The marks of `real` (the value built from the real settings) given `probe` (the same
    /// template built from the sentinels; `None` when that failed, which hides all of `real`).
    pub fn mark_value(&self, real: &Value, probe: Option<&Value>) -> Vec<JsonMark> {
        let mut marks = Vec::new();
        let mut path = Vec::new();
        match probe {
            Some(probe) => self.walk(real, probe, &mut path, &mut marks),
            None => marks.push(JsonMark { path, spans: None }),
        }
        marks
    }

    fn walk(&self, real: &Value, probe: &Value, path: &mut Vec<Step>, marks: &mut Vec<JsonMark>) {
        if real == probe {
            return;
        }
        match (real, probe) {
            (Value::String(real), Value::String(probe)) => {
                let spans = self.mark_str(real, Some(probe));
                if !spans.is_empty() {
                    marks.push(JsonMark {
                        path: path.clone(),
                        spans: Some(spans),
                    });
                }
            }
            (Value::Object(real), Value::Object(probe)) if same_keys(real, probe) => {
                for (key, value) in real {
                    if let Some(other) = probe.get(key) {
                        path.push(Step::Key(key.clone()));
                        self.walk(value, other, path, marks);
                        path.pop();
                    }
                }
            }
            (Value::Array(real), Value::Array(probe)) if real.len() == probe.len() => {
                for (idx, (value, other)) in real.iter().zip(probe).enumerate() {
                    path.push(Step::Index(idx));
                    self.walk(value, other, path, marks);
                    path.pop();
                }
            }
            _ => marks.push(JsonMark {
                path: path.clone(),
                spans: None,
            }),
        }
    }
}

/// Percent-encodes every byte but ASCII letters, digits, `-`, `.` and `_` (liquid's
/// `url_encode`).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn same_keys(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    a.len() == b.len() && a.keys().all(|key| b.contains_key(key))
}

/// The range that hides `text` from byte `from` on (all of it when nothing would be left to
/// hide after `from`; nothing when `text` is empty).
fn whole(text: &str, from: usize) -> Vec<Range<usize>> {
    if text.is_empty() {
        return Vec::new();
    }
    let start = if from < text.len() { from } else { 0 };
    std::iter::once(start..text.len()).collect()
}

/// The length of a leading authentication scheme (`Basic `: a letter, then letters, digits or
/// `-`, then one space) that `real` and `probe` share; 0 when there is none.
fn scheme_len(real: &str, probe: &str) -> usize {
    let Some(space) = real.find(' ') else {
        return 0;
    };
    let word = &real[..space];
    let is_scheme = word.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if is_scheme && probe.as_bytes().get(..=space) == Some(&real.as_bytes()[..=space]) {
        space + 1
    } else {
        0
    }
}

/// Whether a mapping (its raw JSON) can read `$.settings` when evaluated: a path or template
/// names `settings` or the whole context (`$.`, `""`, `{{}}`), or it reads what its text does not
/// show (`@liquid`, a computed path or template; see [`actionkit_mapping::reads`]).
/// Conservative: `true` may be wrong, `false` is not.
pub fn may_read_settings(raw: &Value) -> bool {
    let reads = actionkit_mapping::reads(raw, "");
    reads.opaque
        || reads
            .paths
            .iter()
            .any(|path| path.root == "settings" || path.root.is_empty())
}

/// `text` with every needle replaced by [`REDACTED`] where it stands as a whole token, and
/// anywhere when it has at least [`MIN_UNAMBIGUOUS_CHARS`] characters (longest needles first).
pub fn scrub(text: &str, needles: &[String]) -> String {
    let mut sorted: Vec<&str> = needles
        .iter()
        .map(String::as_str)
        .filter(|n| !n.is_empty())
        .collect();
    sorted.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    sorted.dedup();
    let mut out = text.to_owned();
    for needle in sorted {
        if !out.contains(needle) {
            continue;
        }
        let anywhere = needle.chars().count() >= MIN_UNAMBIGUOUS_CHARS;
        let mut next = String::with_capacity(out.len());
        let mut at = 0;
        for (start, _) in out.match_indices(needle) {
            if start < at {
                continue;
            }
            let end = start + needle.len();
            let before = out[..start].chars().next_back();
            let after = out[end..].chars().next();
            let is_word =
                |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-');
            if anywhere || (!is_word(before) && !is_word(after)) {
                next.push_str(&out[at..start]);
                next.push_str(REDACTED);
                at = end;
            }
        }
        next.push_str(&out[at..]);
        out = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn probe(secret: &str) -> Probe {
        Probe::new(
            &json!({"apiKey": secret, "endpoint": "https://x.io"}),
            ["apiKey"],
        )
        .expect("a secret")
    }

    fn fake(probe: &Probe) -> String {
        probe.pairs[0].0.clone()
    }

    #[test]
    fn no_secret_value_means_no_probe() {
        assert!(Probe::new(&json!({"apiKey": null}), ["apiKey"]).is_none());
        assert!(Probe::new(&json!({}), ["apiKey"]).is_none());
        assert!(Probe::new(&json!({"apiKey": "k"}), []).is_none());
    }

    #[test]
    fn sentinels_are_unique_longer_and_private() {
        let p = Probe::new(&json!({"a": "k", "b": "k"}), ["a", "b"]).expect("secrets");
        assert_ne!(p.pairs[0].0, p.pairs[1].0);
        for (fake, real) in &p.pairs {
            assert!(fake.chars().count() > real.chars().count());
            assert!(fake.chars().all(|c| ('\u{E000}'..='\u{F8FF}').contains(&c)));
        }
    }

    #[test]
    fn literal_text_around_a_secret_is_kept() {
        let p = probe("k");
        let fake = fake(&p);
        let spans = p.mark_str("Token k", Some(&format!("Token {fake}")));
        assert_eq!(cover("Token k", &spans), "Token [redacted]");
        let spans = p.mark_str("pre-k-post-k", Some(&format!("pre-{fake}-post-{fake}")));
        assert_eq!(
            cover("pre-k-post-k", &spans),
            "pre-[redacted]-post-[redacted]"
        );
    }

    #[test]
    fn url_encoded_secrets_are_found() {
        let p = probe("a b/c");
        let fake: String = url::form_urlencoded::byte_serialize(fake(&p).as_bytes()).collect();
        let real = "https://x.io/?key=a+b%2Fc&k=1";
        let spans = p.mark_str(real, Some(&format!("https://x.io/?key={fake}&k=1")));
        assert_eq!(cover(real, &spans), "https://x.io/?key=[redacted]&k=1");
    }

    #[test]
    fn transformed_secrets_hide_the_whole_value_but_the_scheme() {
        let p = probe("k");
        // What a case change or an encoding would give: the sentinel is not found verbatim.
        assert_eq!(
            cover(
                "Basic dTpr",
                &p.mark_str("Basic dTpr", Some("Basic dTrugIA"))
            ),
            "Basic [redacted]"
        );
        // The sentinel is there, but the real value is not the template with the secret in it.
        let fake = fake(&p);
        assert_eq!(
            cover(
                "Token K",
                &p.mark_str("Token K", Some(&format!("Token {fake}")))
            ),
            "Token [redacted]"
        );
        assert_eq!(
            cover("xK", &p.mark_str("xK", Some(&format!("x{fake}")))),
            "[redacted]"
        );
        assert_eq!(cover("k", &p.mark_str("k", None)), "[redacted]");
    }

    #[test]
    fn equal_values_are_not_marked() {
        let p = probe("k");
        assert!(p.mark_str("keep k", Some("keep k")).is_empty());
        let body = json!({"user_id": "k", "k": ["k"]});
        assert!(p.mark_value(&body, Some(&body)).is_empty());
    }

    #[test]
    fn json_marks_follow_the_values_built_from_secrets() {
        let p = probe("k");
        let fake = fake(&p);
        let real = json!({"user": "k", "auth": "key k", "list": [1, "k"], "n": 1, "odd": {"a": 1}});
        let probed = json!({"user": "k", "auth": format!("key {fake}"), "list": [1, fake], "n": 2, "odd": {"b": 1}});
        let marks = p.mark_value(&real, Some(&probed));
        let mut shown = real.clone();
        apply_json(&mut shown, &marks);
        assert_eq!(
            shown,
            json!({"user": "k", "auth": "key [redacted]", "list": [1, "[redacted]"], "n": "[redacted]", "odd": "[redacted]"})
        );
        let mut all = real.clone();
        apply_json(&mut all, &p.mark_value(&real, None));
        assert_eq!(all, json!("[redacted]"));
    }

    #[test]
    fn cover_merges_and_guards_ranges() {
        assert_eq!(cover("abcdef", &[1..3, 2..4]), "a[redacted]ef");
        assert_eq!(cover("abcdef", &[0..2, 2..4]), "[redacted]ef");
        assert_eq!(cover("abc", &[1..9, 9..9]), "[redacted]");
        assert_eq!(cover("abc", &[]), "abc");
    }

    #[test]
    fn scrubbing_replaces_whole_tokens_only_unless_long() {
        let needles = vec!["k".to_owned(), "up_live_7f3a9c1e5b2d".to_owned()];
        assert_eq!(
            scrub("invalid key k for /v1/track (Token k)", &needles),
            "invalid key [redacted] for /v1/track (Token [redacted])"
        );
        assert_eq!(
            scrub(
                "x-up_live_7f3a9c1e5b2d-y and zup_live_7f3a9c1e5b2dz",
                &needles
            ),
            "x-[redacted]-y and z[redacted]z"
        );
        assert_eq!(scrub("nothing here", &[String::new()]), "nothing here");
    }

    #[test]
    fn settings_readers_are_recognised() {
        for raw in [
            json!({"@path": "$.settings.apiKey"}),
            json!({"a": {"@template": "x {{settings.apiKey}}"}}),
            json!({"@liquid": "{{ x }}"}),
            json!({"all": {"@path": "$."}}),
            json!({"all": {"@json": {"value": {"@path": ""}, "mode": "encode"}}}),
            json!({"t": {"@template": "{{ }}"}}),
            json!({"s": {"@path": "settings['apiKey']"}}),
            // Computed paths and templates read wherever the event points them.
            json!({"c": {"@path": {"@path": "$.payload.which"}}}),
            json!({"c": {"@template": {"@path": "$.payload.text"}}}),
        ] {
            assert!(may_read_settings(&raw), "{raw}");
        }
        for raw in [
            json!({"user_id": {"@path": "$.payload.userId"}}),
            json!({"t": {"@template": "{{payload.a}}-{{computed.b}}"}}),
            json!("constant"),
            json!("settings are mentioned in a constant"),
            json!(42),
        ] {
            assert!(!may_read_settings(&raw), "{raw}");
        }
    }
}
