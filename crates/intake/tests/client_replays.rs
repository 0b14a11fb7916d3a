//! Replays of the HTTP requests that Segment's and RudderStack's client libraries send.
//!
//! Most of these libraries cannot run on this machine (iOS, Android, .NET, the JVM, browsers), so
//! each request is written down instead, from the library's published source, in one JSON file per
//! library and request form under `tests/client_requests/`. A file names the library and the
//! version read, links every fact to the source line it came from, and gives the method, the path
//! (with any query string), the headers, whether the body is gzipped, a body with two or three
//! events exactly as the library builds it, and what the library does with each status code.
//!
//! For every file this test starts the intake router on 127.0.0.1 with a recording sink, sends the
//! request with exactly the file's method, path and headers (`{WRITE_KEY}` and
//! `{WRITE_KEY_BASIC}`, the base64 of `<key>:`, are filled in first), and checks that the answer
//! is 200 and that the sink holds the file's events, in order, with the same type, `userId`,
//! `anonymousId`, event name, `messageId`, properties and traits. The only header the test cannot
//! leave out is reqwest's `accept: */*`, sent when a file has no `accept` of its own; `host` and
//! `content-length` are reqwest's framing of the same bytes.
//!
//! Every failing library is reported at once, so one run shows the whole gap between the intake
//! and the clients.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod replay;

use actionkit_intake::{IntakeConfig, NormalizedEvent};
use base64::Engine as _;
use flate2::{Compression, write::GzEncoder};
use replay::RecordingSink;
use serde::Deserialize;
use serde_json::Value;

/// How many fixture files the directory must hold; a deleted file fails [`no_fixture_is_missing`].
const EXPECTED_FIXTURES: usize = 24;

/// The write key the server is configured with and the fixtures are filled with.
const WRITE_KEY: &str = "2Xf8kRvJ0aQm7bN4pL9sT1wYcE3hU6dZ";

/// The name of the source that key belongs to.
const SOURCE: &str = "replay";

/// The fields compared between each sent event and the event the sink stored.
const COMPARED_FIELDS: [&str; 9] = [
    "userId",
    "anonymousId",
    "event",
    "messageId",
    "properties",
    "traits",
    "groupId",
    "previousId",
    "name",
];

/// One fixture file: a request as a client library sends it.
#[derive(Deserialize)]
struct Fixture {
    /// The library's name.
    library: String,
    /// The version (and commit) whose source was read.
    version_read: String,
    /// Links to the source lines each fact comes from.
    source: Vec<String>,
    /// The HTTP method.
    method: String,
    /// The path appended to the library's default host, with any query string.
    path: String,
    /// Every header the library sets, with lower-case names.
    headers: BTreeMap<String, String>,
    /// Whether the body is gzipped (the headers then say `content-encoding: gzip`).
    gzip: bool,
    /// The JSON body, before compression.
    body: Value,
    /// What the library retries and what it drops.
    status_handling: String,
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("client_requests")
}

/// Every `*.json` file of the fixture directory, sorted by name.
fn fixture_files() -> Vec<PathBuf> {
    let dir = fixture_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
                .path()
        })
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

fn load(path: &Path) -> Result<Fixture, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the file: {e}"))?;
    let fixture: Fixture =
        serde_json::from_str(&text).map_err(|e| format!("not a fixture: {e}"))?;
    check_documented(&fixture)?;
    Ok(fixture)
}

/// Checks that a fixture says where its facts come from and what the library does on errors.
fn check_documented(fixture: &Fixture) -> Result<(), String> {
    if fixture.library.trim().is_empty() || fixture.version_read.trim().is_empty() {
        return Err("`library` and `version_read` must not be empty".to_owned());
    }
    if fixture.status_handling.trim().is_empty() {
        return Err("`status_handling` must not be empty".to_owned());
    }
    if fixture.source.is_empty() {
        return Err("`source` must link at least one source line".to_owned());
    }
    for link in &fixture.source {
        if !is_permalink(link) {
            return Err(format!(
                "`{link}` is not a GitHub permalink of the form \
                 https://github.com/<owner>/<repo>/blob/<40-hex commit>/<path>#L<line>"
            ));
        }
    }
    if let Some(name) = fixture
        .headers
        .keys()
        .find(|name| **name != name.to_lowercase())
    {
        return Err(format!("header name `{name}` must be lower case"));
    }
    let says_gzip = fixture
        .headers
        .get("content-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    if says_gzip != fixture.gzip {
        return Err("`gzip` must agree with the `content-encoding` header".to_owned());
    }
    Ok(())
}

/// Whether `link` is `https://github.com/<owner>/<repo>/blob/<commit>/<path>#L<line>`.
fn is_permalink(link: &str) -> bool {
    let Some(rest) = link.strip_prefix("https://github.com/") else {
        return false;
    };
    let parts: Vec<&str> = rest.splitn(5, '/').collect();
    let [owner, repo, "blob", commit, path_and_line] = parts[..] else {
        return false;
    };
    let Some((path, line)) = path_and_line.rsplit_once("#L") else {
        return false;
    };
    !owner.is_empty()
        && !repo.is_empty()
        && commit.len() == 40
        && commit.bytes().all(|b| b.is_ascii_hexdigit())
        && !path.is_empty()
        && !line.is_empty()
        && line.bytes().all(|b| b.is_ascii_digit())
}

/// `base64("<key>:")`, as HTTP Basic carries a key as the user name with an empty password.
fn basic_credentials(key: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
}

fn fill(text: &str) -> String {
    text.replace("{WRITE_KEY_BASIC}", &basic_credentials(WRITE_KEY))
        .replace("{WRITE_KEY}", WRITE_KEY)
}

/// Fills the placeholders in every string of a JSON value, keys included.
fn fill_value(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(fill(s)),
        Value::Array(items) => Value::Array(items.iter().map(fill_value).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (fill(key), fill_value(value)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn gzip(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder
        .write_all(data)
        .map_err(|e| format!("cannot gzip the body: {e}"))?;
    encoder
        .finish()
        .map_err(|e| format!("cannot gzip the body: {e}"))
}

/// The event type a single-event path implies, for a body that has no `type`.
fn type_from_path(path: &str) -> Option<&'static str> {
    let path = path.split('?').next().unwrap_or(path);
    let last = path.trim_end_matches('/').rsplit('/').next()?;
    Some(match last {
        "identify" | "i" => "identify",
        "track" | "t" => "track",
        "page" | "p" => "page",
        "screen" | "s" => "screen",
        "group" | "g" => "group",
        "alias" | "a" => "alias",
        _ => return None,
    })
}

/// The events a body carries: the items of its `batch`, or the body itself.
fn sent_events(body: &Value) -> Vec<&Value> {
    match body.get("batch").and_then(Value::as_array) {
        Some(items) => items.iter().collect(),
        None => vec![body],
    }
}

/// A field's value, with `null` counted as absent (the intake drops null objects).
fn field<'a>(event: &'a Value, name: &str) -> Option<&'a Value> {
    event.get(name).filter(|value| !value.is_null())
}

/// Compares what was sent with what was stored, event by event.
fn compare(fixture: &Fixture, body: &Value, stored: &[NormalizedEvent]) -> Result<(), String> {
    let sent = sent_events(body);
    if sent.len() != stored.len() {
        return Err(format!(
            "sent {} events, the sink holds {}",
            sent.len(),
            stored.len()
        ));
    }
    let mut problems = Vec::new();
    for (index, (sent, stored)) in sent.iter().zip(stored).enumerate() {
        let expected_type = sent
            .get("type")
            .and_then(Value::as_str)
            .or_else(|| type_from_path(&fixture.path));
        if expected_type != Some(stored.event_type.as_str()) {
            problems.push(format!(
                "event {index}: type is `{}`, expected {expected_type:?}",
                stored.event_type.as_str()
            ));
        }
        if stored.source.as_ref() != SOURCE {
            problems.push(format!(
                "event {index}: stored under source `{}`, expected `{SOURCE}`",
                stored.source
            ));
        }
        if sent.get("messageId").and_then(Value::as_str) != Some(stored.message_id.as_str()) {
            problems.push(format!(
                "event {index}: messageId is `{}`, expected {:?}",
                stored.message_id,
                sent.get("messageId")
            ));
        }
        let stored_json: Value = match serde_json::from_str(&stored.json) {
            Ok(value) => value,
            Err(e) => {
                problems.push(format!("event {index}: stored text is not JSON: {e}"));
                continue;
            }
        };
        if stored_json.get("writeKey").is_some() || stored.json.contains(WRITE_KEY) {
            problems.push(format!("event {index}: the write key was stored"));
        }
        for name in COMPARED_FIELDS {
            let (want, got) = (field(sent, name), field(&stored_json, name));
            if want != got {
                problems.push(format!(
                    "event {index}: `{name}` is {}, expected {}",
                    got.map_or("absent".to_owned(), Value::to_string),
                    want.map_or("absent".to_owned(), Value::to_string),
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Starts an intake server on 127.0.0.1 with a fresh recording sink.
async fn start_server() -> (String, Arc<RecordingSink>) {
    let config = IntakeConfig::new([(SOURCE, WRITE_KEY)]).expect("test config is valid");
    replay::start_server(config).await
}

/// Sends one fixture's request to a fresh server and checks the answer and the stored events.
async fn replay(fixture: &Fixture) -> Result<(), String> {
    let (base, sink) = start_server().await;
    let body = fill_value(&fixture.body);
    let json = serde_json::to_vec(&body).map_err(|e| format!("cannot serialise the body: {e}"))?;
    let payload = if fixture.gzip { gzip(&json)? } else { json };

    let method = reqwest::Method::from_bytes(fixture.method.as_bytes())
        .map_err(|e| format!("bad method `{}`: {e}", fixture.method))?;
    let url = format!("{base}{}", fill(&fixture.path));
    let client = reqwest::Client::builder()
        .build()
        .map_err(|e| format!("cannot build the http client: {e}"))?;
    let mut request = client.request(method, &url).body(payload);
    for (name, value) in &fixture.headers {
        request = request.header(name.as_str(), fill(value));
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("request to {url} failed: {e}"))?;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    if text.contains(WRITE_KEY) {
        return Err(format!("the answer repeats the write key: {text}"));
    }
    if status != 200 {
        return Err(format!(
            "{} {} answered {status}: {text}",
            fixture.method, fixture.path
        ));
    }
    compare(fixture, &body, &sink.events())
}

#[tokio::test]
async fn every_client_request_is_accepted_and_stored_unchanged() {
    let mut failures = Vec::new();
    let files = fixture_files();
    for path in &files {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let outcome = match load(path) {
            Ok(fixture) => replay(&fixture)
                .await
                .map_err(|e| format!("{name} ({}): {e}", fixture.library)),
            Err(e) => Err(format!("{name}: {e}")),
        };
        if let Err(failure) = outcome {
            failures.push(failure);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} client requests are not handled as the library expects:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn no_fixture_is_missing() {
    let files = fixture_files();
    assert!(
        files.len() >= EXPECTED_FIXTURES,
        "expected at least {EXPECTED_FIXTURES} fixtures in {}, found {}: {:?}",
        fixture_dir().display(),
        files.len(),
        files
            .iter()
            .filter_map(|p| p.file_name())
            .collect::<Vec<_>>()
    );
}

#[test]
fn permalinks_are_recognised() {
    assert!(is_permalink(
        "https://github.com/segmentio/analytics-go/blob/bc3a04e7d86419273593d2d493609b9ba4e1a8d5/analytics.go#L285"
    ));
    assert!(!is_permalink(
        "https://github.com/segmentio/analytics-go/blob/master/analytics.go#L285"
    ));
    assert!(!is_permalink(
        "https://github.com/segmentio/analytics-go/blob/bc3a04e7d86419273593d2d493609b9ba4e1a8d5/analytics.go"
    ));
}

#[test]
fn single_event_paths_imply_their_type() {
    assert_eq!(type_from_path("/v1/track"), Some("track"));
    assert_eq!(type_from_path("/v1/s"), Some("screen"));
    assert_eq!(type_from_path("/v1/batch"), None);
    assert_eq!(type_from_path("/beacon/v1/batch?writeKey=k"), None);
}

#[test]
fn a_changed_field_is_reported() {
    let fixture = Fixture {
        library: "example".to_owned(),
        version_read: "1".to_owned(),
        source: Vec::new(),
        method: "POST".to_owned(),
        path: "/v1/track".to_owned(),
        headers: BTreeMap::new(),
        gzip: false,
        body: Value::Null,
        status_handling: String::new(),
    };
    let sent = serde_json::json!({
        "userId": "u1", "event": "Signed Up", "messageId": "m1", "properties": {"plan": "pro"}
    });
    let stored = |json: &str| NormalizedEvent {
        source: Arc::from(SOURCE),
        event_type: actionkit_intake::EventType::Track,
        message_id: "m1".to_owned(),
        json: json.to_owned(),
    };
    let same = stored(
        r#"{"userId":"u1","event":"Signed Up","messageId":"m1","properties":{"plan":"pro"},"type":"track"}"#,
    );
    assert_eq!(compare(&fixture, &sent, &[same]), Ok(()));
    let changed = stored(
        r#"{"userId":"u1","event":"Signed Up","messageId":"m1","properties":{"plan":"free"},"type":"track"}"#,
    );
    let problem = compare(&fixture, &sent, &[changed]).expect_err("a changed property is found");
    assert!(problem.contains("`properties`"), "{problem}");
    assert!(
        compare(&fixture, &sent, &[]).is_err(),
        "a missing event is found"
    );
}
