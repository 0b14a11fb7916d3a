//! Bad input against the real `actionkit serve` binary over TCP.
//!
//! One server takes a table of hostile or broken requests (malformed and truncated JSON, wrong
//! content types, invalid UTF-8, deep nesting, oversize bodies, gzip bombs, missing and wrong write
//! keys, wrong methods and paths), each of which must get its own 4xx with a JSON body whose code
//! and message name the problem. Valid batches, sent every way a client may send them, are
//! interleaved between the bad requests and also run concurrently with them; at the end every
//! valid event must have reached the mock Userpilot API and no bad one, the process must still
//! answer, its log must hold no panic, and no secret may appear in any answer or log line.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::time::Duration;

use actionkit_mock_userpilot::FaultConfig;
use common::serve::*;
use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The `Authorization` value for HTTP Basic with `user` and `password`, as reqwest builds it.
fn basic(user: &str, password: &str) -> String {
    let req = reqwest::Client::new()
        .get("http://127.0.0.1/")
        .basic_auth(user, Some(password))
        .build()
        .expect("a request builds");
    req.headers()["authorization"]
        .to_str()
        .expect("base64 is ASCII")
        .to_owned()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data).expect("gzip writes to memory");
    enc.finish().expect("gzip finishes")
}

/// A valid track event of user `user`.
fn track(user: &str) -> Value {
    json!({"userId": user, "event": "Bad Input Probe", "properties": {"probe": true}})
}

/// One bad request and what it must be answered with.
struct Case {
    name: &'static str,
    method: Method,
    path: &'static str,
    /// Headers besides the defaults; a `None` value removes a default header.
    headers: Vec<(&'static str, Option<String>)>,
    body: Vec<u8>,
    status: u16,
    /// The expected `error.code`.
    code: &'static str,
    /// A piece of `error.message` that names the problem.
    says: &'static str,
    /// Whether the answer must say `Connection: close` (the body was not read to its end, so the
    /// connection cannot be reused) or must not (it can); `None` when either is fine.
    closes: Option<bool>,
}

impl Case {
    /// A `POST` with the right write key (HTTP Basic) and `Content-Type: application/json`.
    fn post(name: &'static str, path: &'static str, body: impl Into<Vec<u8>>) -> Case {
        Case {
            name,
            method: Method::POST,
            path,
            headers: Vec::new(),
            body: body.into(),
            status: 0,
            code: "",
            says: "",
            closes: None,
        }
    }

    fn closes(mut self, closes: bool) -> Case {
        self.closes = Some(closes);
        self
    }

    fn header(mut self, name: &'static str, value: Option<String>) -> Case {
        self.headers.push((name, value));
        self
    }

    fn method(mut self, method: Method) -> Case {
        self.method = method;
        self
    }

    fn expect(mut self, status: u16, code: &'static str, says: &'static str) -> Case {
        self.status = status;
        self.code = code;
        self.says = says;
        self
    }
}

fn cases() -> Vec<Case> {
    let no_auth = |c: Case| c.header("authorization", None);
    let json_ok = track("bad-x").to_string();
    let body_key =
        |key: &str| json!({"userId": "bad-body-key", "event": "E", "writeKey": key}).to_string();
    let deep_event = format!(
        r#"{{"userId":"bad-deep","event":"E","properties":{{"a":{}1{}}}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let deep_batch = format!(r#"{{"batch":[{}"#, "[".repeat(200_000));
    let big_event = json!({"userId": "bad-big", "event": "E",
                           "properties": {"pad": "x".repeat(40 * 1024)}})
    .to_string();
    let big_batch = json!({"batch": (0..20).map(|i| json!({"type": "track",
        "userId": format!("bad-bigbatch-{i}"), "event": "E",
        "properties": {"pad": "x".repeat(30 * 1024)}})).collect::<Vec<_>>()})
    .to_string();
    // About 100 MB of valid JSON (whitespace padding) in about 100 KB of gzip members.
    let bomb = {
        let mut out = gzip(br#"{"batch":[{"type":"track","userId":"bad-bomb","event":"E"}"#);
        let member = gzip(&vec![b' '; 1 << 20]);
        for _ in 0..100 {
            out.extend_from_slice(&member);
        }
        out.extend_from_slice(&gzip(b"]}"));
        out
    };
    let small_bomb = gzip(&vec![b' '; 4 << 20]);
    let good_gzip = gzip(json_ok.as_bytes());
    let wrong_basic = Some(basic("wk-not-a-source", ""));
    let mut invalid_utf8 = br#"{"userId":"bad-utf8","event":"caf"#.to_vec();
    invalid_utf8.extend_from_slice(&[0xe9, b'"', b'}']);

    vec![
        // JSON syntax and shape.
        Case::post(
            "truncated JSON",
            "/v1/track",
            r#"{"userId":"bad-trunc","event":"E","properties":{"a":"#,
        )
        .expect(400, "invalid_json", "truncated"),
        Case::post(
            "malformed JSON (trailing comma)",
            "/v1/track",
            r#"{"userId":"bad-comma","event":"E",}"#,
        )
        .expect(400, "invalid_json", "line 1 column"),
        Case::post(
            "malformed JSON (single quotes)",
            "/v1/identify",
            "{'userId': 'bad-quote'}",
        )
        .expect(400, "invalid_json", "not valid JSON"),
        Case::post(
            "a JSON array instead of an object",
            "/v1/track",
            format!("[{json_ok}]"),
        )
        .expect(400, "invalid_json", "must be a JSON object"),
        Case::post(
            "a JSON string instead of an object",
            "/v1/track",
            r#""bad""#,
        )
        .expect(400, "invalid_json", "must be a JSON object"),
        Case::post("a JSON number as a batch", "/v1/batch", "42").expect(
            400,
            "invalid_json",
            "must be a JSON object",
        ),
        Case::post(
            "two JSON objects",
            "/v1/track",
            r#"{"userId":"bad-two","event":"E"} {"userId":"bad-two"}"#,
        )
        .expect(400, "invalid_json", "trailing characters"),
        // A lone UTF-16 surrogate escape is accepted (read as U+FFFD, see the intake's `json`
        // module); a truncated escape is still malformed JSON.
        Case::post(
            "a truncated unicode escape",
            "/v1/track",
            r#"{"userId":"bad-escape","event":"E","properties":{"s":"\ud8"}}"#,
        )
        .expect(400, "invalid_json", "invalid escape"),
        Case::post("empty body", "/v1/track", "").expect(400, "invalid_json", "body is empty"),
        Case::post("whitespace body", "/v1/batch", " \n\t ").expect(
            400,
            "invalid_json",
            "body is empty",
        ),
        Case::post(
            "batch is an object",
            "/v1/batch",
            r#"{"batch":{"type":"track"}}"#,
        )
        .expect(400, "invalid_batch", "must be an array"),
        Case::post("batch is missing", "/v1/batch", r#"{"events":[]}"#).expect(
            400,
            "invalid_batch",
            "no `batch` array",
        ),
        Case::post(
            "batch context is an array",
            "/v1/batch",
            r#"{"batch":[{"type":"track","userId":"bad-ctx","event":"E"}],"context":[]}"#,
        )
        .expect(400, "invalid_batch", "`context` must be an object"),
        // Content types: JSON is read as JSON whatever the header says (the valid traffic below
        // sends it as text/plain, as a form and with none), so only a body that is not JSON is
        // refused, and the message names the content type it came with.
        Case::post("a form that is not JSON", "/v1/batch", "batch=1&userId=x")
            .header(
                "content-type",
                Some("application/x-www-form-urlencoded".into()),
            )
            .expect(
                400,
                "invalid_json",
                "starts with `batch=1&userId=x` (the request's content-type was `application/x-www-form-urlencoded`",
            ),
        Case::post("HTML without a content type", "/v1/t", "<html>hi</html>")
            .header("content-type", None)
            .expect(400, "invalid_json", "the request had no content-type"),
        Case::post("Content-Encoding br", "/v1/track", json_ok.clone())
            .header("content-encoding", Some("br".into()))
            .expect(415, "unsupported_content_encoding", "`br`"),
        Case::post("invalid UTF-8", "/v1/track", invalid_utf8).expect(
            400,
            "invalid_utf8",
            "not valid UTF-8 at byte 33",
        ),
        // Nesting and sizes.
        Case::post("10,000 nested arrays in an event", "/v1/track", deep_event).expect(
            400,
            "too_deep",
            "nest deeper than 64 levels",
        ),
        Case::post(
            "200,000 unclosed arrays in a batch",
            "/v1/batch",
            deep_batch,
        )
        .expect(400, "too_deep", "nest deeper than"),
        Case::post("event over 32 KB", "/v1/track", big_event)
            .expect(413, "payload_too_large", "limit of 32768 bytes")
            .closes(true),
        Case::post("batch over 500 KB", "/v1/batch", big_batch)
            .expect(413, "payload_too_large", "limit of 512000 bytes")
            .closes(true),
        Case::post("gzip bomb (100 MB of JSON in 100 KB)", "/v1/batch", bomb)
            .header("content-encoding", Some("gzip".into()))
            .expect(
                413,
                "payload_too_large",
                "inflated body exceeds the limit of 512000 bytes",
            ),
        Case::post("gzip bomb on a single call", "/v1/identify", small_bomb)
            .header("content-encoding", Some("gzip".into()))
            .expect(
                413,
                "payload_too_large",
                "inflated body exceeds the limit of 32768 bytes",
            ),
        Case::post("gzip header on a plain body", "/v1/track", json_ok.clone())
            .header("content-encoding", Some("gzip".into()))
            .expect(400, "invalid_gzip", "not valid gzip"),
        Case::post(
            "truncated gzip",
            "/v1/track",
            good_gzip[..good_gzip.len() / 2].to_vec(),
        )
        .header("content-encoding", Some("gzip".into()))
        .expect(400, "invalid_gzip", "not valid gzip"),
        // Write keys, in each of the three styles.
        no_auth(Case::post("no write key", "/v1/track", json_ok.clone())).expect(
            401,
            "missing_write_key",
            "no write key",
        ),
        no_auth(Case::post(
            "only a Bearer token",
            "/v1/track",
            json_ok.clone(),
        ))
        .header("authorization", Some("Bearer some-oauth-token".into()))
        .expect(401, "missing_write_key", "no write key"),
        Case::post("wrong key by HTTP Basic", "/v1/track", json_ok.clone())
            .header("authorization", wrong_basic.clone())
            .expect(401, "invalid_write_key", "not valid for any source"),
        no_auth(Case::post(
            "wrong key by X-Write-Key",
            "/v1/track",
            json_ok.clone(),
        ))
        .header("x-write-key", Some("wk-not-a-source".into()))
        .expect(401, "invalid_write_key", "not valid for any source"),
        no_auth(Case::post(
            "wrong key in the body",
            "/v1/track",
            body_key("wk-not-a-source"),
        ))
        .expect(401, "invalid_write_key", "not valid for any source"),
        no_auth(Case::post(
            "wrong key in a batch body",
            "/v1/batch",
            json!({"writeKey": "wk-not-a-source", "batch": [{"type": "track",
                   "userId": "bad-batch-key", "event": "E"}]})
            .to_string(),
        ))
        .expect(401, "invalid_write_key", "not valid for any source"),
        // A key in a header wins, so a right key in the body does not rescue a wrong header.
        Case::post(
            "wrong Basic key with the right key in the body",
            "/v1/track",
            body_key(WRITE_KEY),
        )
        .header("authorization", wrong_basic)
        .expect(401, "invalid_write_key", "not valid for any source"),
        no_auth(Case::post(
            "empty key in the body",
            "/v1/track",
            body_key(""),
        ))
        .expect(401, "missing_write_key", "`writeKey` in the body is empty"),
        no_auth(Case::post(
            "numeric key in the body",
            "/v1/track",
            json!({"userId": "bad-num-key", "event": "E", "writeKey": 12345}).to_string(),
        ))
        .expect(401, "invalid_write_key", "must be a string"),
        Case::post("Basic credentials not base64", "/v1/track", json_ok.clone())
            .header("authorization", Some("Basic %%%not-base64%%%".into()))
            .expect(401, "invalid_write_key", "not base64"),
        Case::post(
            "Basic with an empty user name",
            "/v1/track",
            json_ok.clone(),
        )
        .header("authorization", Some(basic("", WRITE_KEY)))
        .expect(401, "missing_write_key", "empty user name"),
        no_auth(Case::post(
            "overlong X-Write-Key",
            "/v1/track",
            json_ok.clone(),
        ))
        .header("x-write-key", Some("k".repeat(4096)))
        .expect(401, "invalid_write_key", "not valid for any source"),
        // Events that are JSON objects but not valid events.
        Case::post(
            "track without an event name",
            "/v1/track",
            r#"{"userId":"bad-noevent"}"#,
        )
        .expect(400, "missing_event", "no `event` name"),
        Case::post(
            "identify without any id",
            "/v1/identify",
            r#"{"traits":{"name":"bad"}}"#,
        )
        .expect(400, "missing_user_id", "neither `userId` nor `anonymousId`"),
        Case::post(
            "group without groupId",
            "/v1/group",
            r#"{"userId":"bad-group"}"#,
        )
        .expect(400, "missing_group_id", "no `groupId`"),
        Case::post(
            "alias without previousId",
            "/v1/alias",
            r#"{"userId":"bad-alias"}"#,
        )
        .expect(400, "missing_previous_id", "no `previousId`"),
        Case::post(
            "userId is an object",
            "/v1/identify",
            r#"{"userId":{"id":"bad-obj"}}"#,
        )
        .expect(
            400,
            "invalid_field",
            "`userId` must be a string or a number",
        ),
        Case::post(
            "properties is an array",
            "/v1/track",
            r#"{"userId":"bad-props","event":"E","properties":[1,2]}"#,
        )
        .expect(400, "invalid_field", "`properties` must be an object"),
        Case::post(
            "timestamp is not a date",
            "/v1/track",
            r#"{"userId":"bad-ts","event":"E","timestamp":"yesterday"}"#,
        )
        .expect(400, "invalid_timestamp", "not an ISO-8601 date-time"),
        Case::post(
            "messageId over 100 characters",
            "/v1/track",
            json!({"userId": "bad-mid", "event": "E", "messageId": "m".repeat(101)}).to_string(),
        )
        .expect(400, "invalid_field", "longer than 100 characters"),
        // Methods and paths.
        Case::post("GET on a tracking path", "/v1/track", "")
            .method(Method::GET)
            .expect(405, "method_not_allowed", "GET is not allowed on /v1/track")
            .closes(false),
        Case::post("PUT on the batch path", "/v1/batch", json_ok.clone())
            .method(Method::PUT)
            .expect(405, "method_not_allowed", "PUT is not allowed on /v1/batch")
            .closes(true),
        Case::post("unknown path", "/v1/purchase", json_ok.clone())
            .expect(404, "not_found", "no route for POST /v1/purchase")
            .closes(true),
        Case::post("unknown version", "/v2/track", json_ok)
            .expect(404, "not_found", "no route for POST /v2/track")
            .closes(true),
        // A well-formed request that was refused after its body was read keeps the connection.
        Case::post(
            "malformed JSON (trailing comma), connection kept",
            "/v1/track",
            r#"{"userId":"bad-comma2","event":"E",}"#,
        )
        .expect(400, "invalid_json", "trailing comma")
        .closes(false),
    ]
}

/// Sends one case and returns its status, parsed JSON body and whether the answer says
/// `Connection: close`, checking that the answer is JSON.
async fn send_case(client: &reqwest::Client, server: &Server, case: &Case) -> (u16, Value, bool) {
    let mut req = client
        .request(case.method.clone(), server.url(case.path))
        .body(case.body.clone());
    let mut defaults = vec![
        ("authorization", Some(basic(WRITE_KEY, ""))),
        ("content-type", Some("application/json".to_owned())),
    ];
    for (name, value) in &case.headers {
        defaults.retain(|(n, _)| n != name);
        defaults.push((name, value.clone()));
    }
    for (name, value) in defaults {
        if let Some(value) = value {
            req = req.header(name, value);
        }
    }
    let res = req.send().await.expect("intake answers");
    let status = res.status().as_u16();
    let closes = res
        .headers()
        .get("connection")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = res.text().await.expect("a body");
    assert!(
        content_type.starts_with("application/json"),
        "{}: answer is not JSON ({content_type}): {text}",
        case.name
    );
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: answer is not JSON ({e}): {text}", case.name));
    (status, body, closes)
}

/// Valid traffic, sent in the way `idx` picks: Basic, X-Write-Key, `writeKey` in the body, gzip,
/// `text/plain` (as analytics.js sends it), a gzip body sent as a form to `/v1/import` (as
/// RudderStack's Node SDK sends it, to its own batch path), or no content type at all to `/v1/b`.
/// Returns the users sent.
async fn send_valid(
    client: &reqwest::Client,
    server: &Server,
    tag: &str,
    idx: usize,
) -> Vec<String> {
    let (mut body, users) = batch(tag, 2);
    let style = idx % 7;
    let path = match style {
        5 => "/v1/import",
        6 => "/v1/b",
        _ => "/v1/batch",
    };
    let req = client.post(server.url(path));
    let req = match style {
        0 => req
            .basic_auth(WRITE_KEY, Some(""))
            .header("content-type", "application/json")
            .body(body.to_string()),
        1 => req
            .header("x-write-key", WRITE_KEY)
            .header("content-type", "application/json; charset=utf-8")
            .body(body.to_string()),
        2 => {
            body["writeKey"] = json!(WRITE_KEY);
            req.header("content-type", "application/json")
                .body(body.to_string())
        }
        3 => req
            .basic_auth(WRITE_KEY, Some(""))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(gzip(body.to_string().as_bytes())),
        4 => req
            .basic_auth(WRITE_KEY, Some(""))
            .header("content-type", "text/plain")
            .body(body.to_string()),
        5 => req
            .basic_auth(WRITE_KEY, Some(""))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("content-encoding", "gzip")
            .body(gzip(body.to_string().as_bytes())),
        _ => req.basic_auth(WRITE_KEY, Some("")).body(body.to_string()),
    };
    let res = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("valid batch {tag} (style {style}) got no answer: {e:?}"));
    let status = res.status().as_u16();
    let answer = res.text().await.unwrap_or_default();
    assert_eq!(status, 200, "valid batch {tag} (style {style}): {answer}");
    users
}

/// Sends raw bytes over a fresh TCP connection and returns what came back (possibly nothing),
/// lossily decoded. Write errors are ignored: the server may answer and close early.
async fn raw_exchange(addr: &str, chunks: Vec<Vec<u8>>) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects to intake");
    for chunk in chunks {
        if stream.write_all(&chunk).await.is_err() {
            break;
        }
    }
    // Half-close, so that a server waiting for more body sees the end at once.
    let _ = stream.shutdown().await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn auth_line() -> String {
    format!("Authorization: {}\r\n", basic(WRITE_KEY, ""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_4xx_and_good_traffic_is_unaffected() {
    let mock = mock(FaultConfig::default()).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = write_config(dir.path(), &mock.base_url());
    let server = Server::start(&config);
    let client = reqwest::Client::new();

    let mut good_users: Vec<String> = Vec::new();
    let mut answers: Vec<String> = Vec::new();
    let mut seen_codes: BTreeSet<&str> = BTreeSet::new();

    // Valid traffic that runs while the bad requests arrive.
    let background = {
        let client = client.clone();
        let url = server.url("/v1/batch");
        tokio::spawn(async move {
            let mut users = Vec::new();
            for round in 0..20 {
                let (body, batch_users) = batch(&format!("bg{round}"), 3);
                let res = client
                    .post(&url)
                    .basic_auth(WRITE_KEY, Some(""))
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                    .expect("intake answers");
                assert_eq!(res.status(), 200, "background batch {round}");
                users.extend(batch_users);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            users
        })
    };

    let cases = cases();
    let mut failures = Vec::new();
    for (idx, case) in cases.iter().enumerate() {
        let (status, body, closes) = send_case(&client, &server, case).await;
        let code = body["error"]["code"].as_str().unwrap_or_default();
        let message = body["error"]["message"].as_str().unwrap_or_default();
        let ok = status == case.status
            && code == case.code
            && message.contains(case.says)
            && body["success"] == false
            && body["accepted"] == 0;
        if let Some(want) = case.closes
            && want != closes
        {
            failures.push(format!(
                "{}: Connection: close expected {want}, got {closes}",
                case.name
            ));
        }
        if !ok {
            failures.push(format!(
                "{}: expected {} {} containing {:?}, got {status} {body}",
                case.name, case.status, case.code, case.says
            ));
        }
        seen_codes.insert(case.code);
        answers.push(body.to_string());
        good_users.extend(send_valid(&client, &server, &format!("ok{idx}"), idx).await);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // A batch mixing valid and invalid events: the valid ones are stored, the others listed by
    // index with their reason.
    let mixed = json!({"batch": [
        {"type": "track", "userId": "mixed-ok-0", "event": "E"},
        42,
        {"userId": "bad-mixed-2", "event": "E"},
        {"type": "purchase", "userId": "bad-mixed-3"},
        {"type": "track", "userId": "bad-mixed-4"},
        {"type": "identify", "traits": {"name": "bad-mixed-5"}},
        {"type": "track", "userId": "bad-mixed-6", "event": "E",
         "properties": {"pad": "x".repeat(33 * 1024)}},
        {"type": "group", "userId": "bad-mixed-7"},
        {"type": "identify", "userId": "mixed-ok-8", "traits": {"plan": "pro"}},
        {"type": "track", "userId": "bad-mixed-9", "event": "E", "timestamp": 17},
    ]});
    let res = post_batch(&client, &server, &mixed).await;
    // 200 because two events were stored: several clients retry a 400 and would store them again.
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.expect("a JSON answer");
    answers.push(answer.to_string());
    assert_eq!(answer["accepted"], 2, "{answer}");
    assert_eq!(answer["success"], true, "{answer}");
    let rejected: Vec<(u64, &str)> = answer["rejected"]
        .as_array()
        .expect("a list of rejected events")
        .iter()
        .map(|r| {
            assert!(r["message"].as_str().is_some_and(|m| !m.is_empty()), "{r}");
            (
                r["index"].as_u64().expect("an index"),
                r["code"].as_str().expect("a code"),
            )
        })
        .collect();
    assert_eq!(
        rejected,
        [
            (1, "invalid_event"),
            (2, "missing_type"),
            (3, "invalid_type"),
            (4, "missing_event"),
            (5, "missing_user_id"),
            (6, "event_too_large"),
            (7, "missing_group_id"),
            (9, "invalid_timestamp"),
        ],
        "{answer}"
    );
    good_users.extend(["mixed-ok-0".to_owned(), "mixed-ok-8".to_owned()]);

    // A UTF-8 byte order mark before the JSON is ignored (RFC 8259 §8.1 allows it).
    let mut with_bom = b"\xef\xbb\xbf".to_vec();
    with_bom.extend_from_slice(track("bom-ok").to_string().as_bytes());
    let res = client
        .post(server.url("/v1/track"))
        .basic_auth(WRITE_KEY, Some(""))
        .header("content-type", "application/json")
        .body(with_bom)
        .send()
        .await
        .expect("intake answers");
    assert_eq!(
        res.status(),
        200,
        "{}",
        res.text().await.unwrap_or_default()
    );
    good_users.push("bom-ok".to_owned());

    // More than 2,500 events: those past the limit are rejected one by one.
    let over: Vec<Value> = (0..2502)
        .map(|i| json!({"type": "page", "userId": format!("many-{i}"), "name": "P"}))
        .collect();
    let res = post_batch(&client, &server, &json!({ "batch": over })).await;
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.expect("a JSON answer");
    assert_eq!(answer["accepted"], 2500, "{}", answer["message"]);
    let codes: Vec<(u64, &str)> = answer["rejected"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|r| Some((r["index"].as_u64()?, r["code"].as_str()?)))
        .collect();
    assert_eq!(
        codes,
        [(2500, "too_many_events"), (2501, "too_many_events")]
    );

    // Connection-level abuse, over raw TCP.
    let addr = server.addr.clone();
    // A declared body far over the limit is refused before it is read.
    let answer = raw_exchange(
        &addr,
        vec![
            format!(
                "POST /v1/batch HTTP/1.1\r\nHost: x\r\n{}Content-Type: application/json\r\nContent-Length: 10000000000\r\nConnection: close\r\n\r\n",
                auth_line()
            )
            .into_bytes(),
        ],
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 413")
            && answer.contains("payload_too_large")
            && answer.to_ascii_lowercase().contains("connection: close"),
        "huge Content-Length: {answer}"
    );
    answers.push(answer);
    // A chunked body that grows past the limit is cut off as soon as it does.
    let mut chunks = vec![
        format!(
            "POST /v1/batch HTTP/1.1\r\nHost: x\r\n{}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            auth_line()
        )
        .into_bytes(),
    ];
    let piece = vec![b' '; 64 * 1024];
    for _ in 0..12 {
        let mut chunk = format!("{:x}\r\n", piece.len()).into_bytes();
        chunk.extend_from_slice(&piece);
        chunk.extend_from_slice(b"\r\n");
        chunks.push(chunk);
    }
    chunks.push(b"0\r\n\r\n".to_vec());
    let answer = raw_exchange(&addr, chunks).await;
    assert!(
        answer.starts_with("HTTP/1.1 413")
            && answer.contains("payload_too_large")
            && answer.to_ascii_lowercase().contains("connection: close"),
        "chunked body over the limit: {answer}"
    );
    answers.push(answer);
    // A body shorter than its Content-Length, then the sender closes its side: the answer says
    // how far the body got, nothing is stored, and the server carries on.
    let answer = raw_exchange(
        &addr,
        vec![
            format!(
                "POST /v1/track HTTP/1.1\r\nHost: x\r\n{}Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"userId\":\"bad-short\"",
                auth_line()
            )
            .into_bytes(),
        ],
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 400") && answer.contains("could not be read after 21 bytes"),
        "short body: {answer}"
    );
    answers.push(answer);
    // Not HTTP at all.
    let answer = raw_exchange(&addr, vec![b"\x16\x03\x01\x00\xa5garbage\r\n\r\n".to_vec()]).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "garbage: {answer}"
    );
    answers.push(answer);

    // Valid traffic after all of it still goes through.
    good_users.extend(send_valid(&client, &server, "after", 0).await);
    good_users.extend(background.await.expect("the background sender finishes"));

    // Every valid event arrives; no bad one does.
    let delivered = wait_for_all(&mock, &good_users).await;
    let bad: Vec<&String> = delivered.keys().filter(|u| u.starts_with("bad-")).collect();
    assert!(bad.is_empty(), "bad events were delivered: {bad:?}");
    let everything = format!("{:?}", mock.requests());
    assert!(!everything.contains("bad-"), "a bad event reached the mock");

    // Each rejection was counted under its reason.
    let metrics = metrics_text(&client, &server).await;
    for code in &seen_codes {
        if matches!(*code, "not_found" | "method_not_allowed") {
            continue;
        }
        assert!(
            metric_sum(
                &metrics,
                "actionkit_intake_events_rejected_total",
                &[("reason", code)]
            ) >= 1.0,
            "no rejection counted for {code}\n{metrics}"
        );
    }

    // The process is alive and healthy, and no secret appears in any answer or in the log.
    let health = client
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("healthz answers");
    assert_eq!(health.status(), 200);
    for answer in &answers {
        assert!(
            !answer.contains(WRITE_KEY) && !answer.contains(API_KEY),
            "a secret in an answer: {answer}"
        );
    }
    assert!(!metrics.contains(WRITE_KEY) && !metrics.contains(API_KEY));
    let logs = server.stop_cleanly();
    assert!(logs.contains("Request rejected."), "{logs}");
}
