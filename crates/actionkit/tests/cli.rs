//! End-to-end tests of `actionkit` commands: the README's demo, bad input reporting, secret
//! redaction in dry runs, `map`, and choosing a destination and its settings (required settings
//! given nowhere, `--config` with `--instance`, `--destination`), against mock-userpilot on
//! 127.0.0.1 where something is sent.

mod common;

use std::path::Path;

use actionkit_mock_userpilot::{MockConfig, MockHandle, RateLimits};
use common::{Run, ndjson, run, unique_events};
use serde_json::{Value, json};

const KEY: &str = "sk-test-SECRET-5b4a39c2e1";

#[test]
fn readme_demo_delivers_the_example_file() {
    let out = run(&["send", "--demo", "examples/events.ndjson"], b"");
    assert_eq!(out.code, 0, "{out:?}");
    let summary = &out.stdout;
    let row = |action: &str| -> (usize, usize) {
        let line = summary
            .lines()
            .find(|line| line.split_whitespace().next() == Some(action))
            .unwrap_or_else(|| panic!("no summary row for {action}: {summary}"));
        let cols: Vec<usize> = line
            .split_whitespace()
            .skip(1)
            .map(|c| c.parse().expect("a count"))
            .collect();
        (cols[0], cols[1])
    };
    assert!(summary.contains("40 events"), "{summary}");
    assert_eq!(row("identifyUser"), (10, 0));
    assert_eq!(row("trackEvent"), (24, 0));
    assert_eq!(row("identifyCompany"), (3, 0));
    assert!(
        summary.contains("skipped (no trigger matched): 3"),
        "{summary}"
    );
    assert!(summary.contains("input errors: 0"), "{summary}");
    assert!(
        out.stderr
            .contains("The embedded mock received 37 requests."),
        "{}",
        out.stderr
    );
}

/// A stream mixing every kind of bad line with valid events; returns it and the 1-based line
/// numbers of: malformed JSON, non-object, unknown type, huge event, invalid UTF-8, and the
/// final valid identify.
fn bad_stream() -> (Vec<u8>, [usize; 6]) {
    let mut input = Vec::new();
    input.extend_from_slice(br#"{"type":"track","userId":"u-1","event":"First"}"#);
    input.extend_from_slice(b"\n\n"); // line 2 is blank and must not count as an event
    input.extend_from_slice(b"{\"type\":\"identify\",\"userId\":\n"); // 3: malformed
    input.extend_from_slice(b"[1,2,3]\n"); // 4: not an object
    input.extend_from_slice(b"{\"type\":\"alias\",\"userId\":\"u-4\",\"previousId\":\"a\"}\n"); // 5
    let huge = format!(
        "{{\"type\":\"track\",\"userId\":\"u-5\",\"event\":\"Huge\",\"properties\":{{\"blob\":\"{}\"}}}}\n",
        "x".repeat(8000)
    );
    input.extend_from_slice(huge.as_bytes()); // 6: over --max-event-bytes 4096
    input
        .extend_from_slice(b"{\"type\":\"track\",\"userId\":\"u-6\",\"event\":\"Bad \xff\xfe\"}\n"); // 7
    input.extend_from_slice(br#"{"type":"identify","userId":"u-last","traits":{"name":"Last"}}"#); // 8
    input.push(b'\n');
    (input, [3, 4, 5, 6, 7, 8])
}

fn check_bad_ndjson(out: &Run, lines: [usize; 6]) {
    let reports = out.ndjson();
    assert_eq!(
        reports.len(),
        7,
        "one report per non-blank line: {}",
        out.stdout
    );
    let indexes: Vec<u64> = reports
        .iter()
        .map(|r| r["index"].as_u64().expect("index"))
        .collect();
    assert_eq!(indexes, (0..7).collect::<Vec<u64>>());
    let report_lines: Vec<u64> = reports
        .iter()
        .map(|r| r["line"].as_u64().expect("line"))
        .collect();
    let mut expected_lines = vec![1u64];
    expected_lines.extend(lines.iter().map(|&l| l as u64));
    assert_eq!(report_lines, expected_lines, "line 2 is blank");
    let keys: Vec<&str> = reports[0]
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(keys, ["index", "line", "actions", "requests", "error"]);
    let message = |idx: usize| {
        reports[idx]["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        message(1).starts_with(&format!("line {}: invalid JSON", lines[0])),
        "{}",
        message(1)
    );
    assert_eq!(
        message(2),
        format!(
            "line {}: expected a JSON object (a Segment event) but found an array",
            lines[1]
        )
    );
    // An unknown type is no error: no mapping's trigger matches it.
    assert_eq!(reports[3]["error"], Value::Null);
    assert_eq!(reports[3]["requests"], serde_json::json!([]));
    assert!(
        message(4).starts_with(&format!("line {}: the event is", lines[3])),
        "{}",
        message(4)
    );
    assert!(
        message(4).contains("more than the limit of 4096 bytes"),
        "{}",
        message(4)
    );
    assert!(
        message(5).starts_with(&format!("line {}: invalid JSON", lines[4])),
        "{}",
        message(5)
    );
    for idx in [1, 2, 4, 5] {
        assert_eq!(reports[idx]["error"]["name"], "InputError");
    }
    // The events around the bad lines were still built.
    assert_eq!(reports[0]["requests"][0]["json"]["event_name"], "First");
    assert_eq!(reports[6]["requests"][0]["json"]["user_id"], "u-last");
    assert!(out.stderr.contains("input errors: 4"), "{}", out.stderr);
    assert_eq!(out.code, 1, "input errors make the run fail");
}

#[test]
fn bad_lines_from_stdin_are_reported_by_line_and_the_rest_is_built() {
    let (input, lines) = bad_stream();
    let key = format!("apiKey={KEY}");
    let args = [
        "send",
        "--dry-run",
        "--output",
        "ndjson",
        "--max-event-bytes",
        "4096",
        "--setting",
        &key,
        "-",
    ];
    let out = run(&args, &input);
    check_bad_ndjson(&out, lines);
}

#[test]
fn bad_lines_from_a_file_are_reported_by_line_in_pretty_output() {
    let (input, lines) = bad_stream();
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("bad.ndjson");
    std::fs::write(&path, &input).expect("the input file is written");
    let key = format!("apiKey={KEY}");
    let path_text = path.to_string_lossy().into_owned();
    let ndjson_args = [
        "send",
        "--dry-run",
        "--output",
        "ndjson",
        "--max-event-bytes",
        "4096",
        "--setting",
        &key,
        &path_text,
    ];
    check_bad_ndjson(&run(&ndjson_args, b""), lines);

    let args = [
        "send",
        "--dry-run",
        "--output",
        "pretty",
        "--max-event-bytes",
        "4096",
        "--setting",
        &key,
        &path_text,
    ];
    let out = run(&args, b"");
    assert_eq!(out.code, 1, "{out:?}");
    let text = &out.stdout;
    for (idx, line) in [
        (1, lines[0]),
        (2, lines[1]),
        (3, lines[2]),
        (4, lines[3]),
        (5, lines[4]),
        (6, lines[5]),
    ] {
        assert!(
            text.contains(&format!("── event {idx} (line {line})")),
            "event {idx} should name line {line}: {text}"
        );
    }
    assert!(
        text.contains(&format!(
            "InputError (400): line {}: invalid JSON",
            lines[0]
        )),
        "{text}"
    );
    assert!(
        text.contains("skipped: no enabled mapping's trigger matched"),
        "{text}"
    );
    assert!(
        text.contains("\"user_id\": \"u-last\""),
        "the last event is still built: {text}"
    );
    assert!(text.contains("input errors: 4"), "{text}");
}

#[test]
fn half_of_an_emoji_is_sent_as_the_replacement_character() {
    // JavaScript writes a string cut inside an emoji with a lone surrogate escape.
    let input = b"{\"type\":\"track\",\"userId\":\"u\",\"event\":\"cut \\ud83d\",\"properties\":{\"pair\":\"\\ud83c\\udf89\"}}\n";
    let key = format!("apiKey={KEY}");
    let out = run(
        &["send", "--dry-run", "--output", "ndjson", "--setting", &key],
        input,
    );
    let reports = out.ndjson();
    assert_eq!(reports.len(), 1, "{out:?}");
    let body = &reports[0]["requests"][0]["json"];
    assert_eq!(body["event_name"], "cut \u{fffd}", "{out:?}");
    assert_eq!(body["metadata"]["pair"], "🎉");
    assert_eq!(out.code, 0);
}

#[test]
fn a_truncated_json_array_names_where_it_stopped() {
    let input = b"[{\"type\":\"track\",\"userId\":\"u\",\"event\":\"E\"},\n {\"type\": ";
    let key = format!("apiKey={KEY}");
    let out = run(
        &["send", "--dry-run", "--output", "ndjson", "--setting", &key],
        input,
    );
    let reports = out.ndjson();
    assert_eq!(reports.len(), 2, "{out:?}");
    assert_eq!(reports[0]["requests"][0]["json"]["event_name"], "E");
    assert_eq!(
        reports[0]["line"], 1,
        "an element's line is where it starts"
    );
    assert_eq!(
        reports[1]["line"], 2,
        "the error names the line it stopped on"
    );
    let message = reports[1]["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("the rest of the input was not read"),
        "{message}"
    );
    assert_eq!(out.code, 1);
}

#[test]
fn dry_run_never_prints_the_api_key_unless_asked() {
    let input = ndjson(&unique_events(6));
    let key = format!("apiKey={KEY}");
    for format in ["pretty", "ndjson", "none"] {
        let out = run(
            &["send", "--dry-run", "--output", format, "--setting", &key],
            &input,
        );
        assert_eq!(out.code, 0, "{format}: {out:?}");
        assert!(
            !out.all().contains(KEY),
            "{format} leaked the key: {}",
            out.all()
        );
        assert!(
            !out.all().contains("SECRET"),
            "{format} leaked part of the key"
        );
    }
    let out = run(
        &["send", "--dry-run", "--output", "ndjson", "--setting", &key],
        &input,
    );
    assert_eq!(
        out.ndjson()[0]["requests"][0]["headers"]["authorization"],
        "Token [redacted]"
    );
    let shown = run(
        &[
            "send",
            "--dry-run",
            "--output",
            "ndjson",
            "--show-secrets",
            "--setting",
            &key,
        ],
        &input,
    );
    assert_eq!(
        shown.ndjson()[0]["requests"][0]["headers"]["authorization"],
        format!("Token {KEY}")
    );
}

#[test]
fn bad_setting_and_option_errors_do_not_echo_the_key() {
    // An unknown setting name next to the key, and a value without a name.
    let runs = [
        run(
            &[
                "send",
                "--dry-run",
                "--setting",
                &format!("apiKey={KEY}"),
                "--setting",
                "nope=1",
            ],
            b"",
        ),
        run(
            &[
                "send",
                "--dry-run",
                "--timeout",
                "-1",
                "--setting",
                &format!("apiKey={KEY}"),
            ],
            b"",
        ),
    ];
    for out in runs {
        assert_ne!(out.code, 0, "{out:?}");
        assert!(
            !out.all().contains(KEY),
            "an error leaked the key: {}",
            out.all()
        );
    }
}

/// Fails today: clap's "invalid value '<argument>'" line repeats the whole argument, so the
/// setting parser's own shortened echo (`first_chars`) does not protect the key.
#[test]
fn a_setting_without_a_name_does_not_echo_its_value() {
    let out = run(&["send", "--dry-run", "--setting", &format!("={KEY}")], b"");
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("expected NAME=VALUE"), "{}", out.stderr);
    assert!(
        !out.all().contains(KEY),
        "the error leaked the value: {}",
        out.all()
    );
}

#[test]
fn map_evaluates_a_mapping_and_a_trigger() {
    let event =
        r#"{"type":"track","userId":"u-9","event":"Order Completed","properties":{"total":12.5}}"#;
    let out = run(
        &[
            "map",
            "--mapping",
            r#"{"user":{"@path":"$.userId"},"total":{"@path":"$.properties.total"}}"#,
            "-",
        ],
        event.as_bytes(),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let value: Value = serde_json::from_str(&out.stdout).expect("map prints JSON");
    assert_eq!(value, serde_json::json!({"user": "u-9", "total": 12.5}));

    let out = run(
        &[
            "map",
            "--trigger",
            r#"type = "track" and event = "Order Completed""#,
            "-",
        ],
        event.as_bytes(),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let value: Value = serde_json::from_str(&out.stdout).expect("map prints JSON");
    assert_eq!(value["matches"], true);

    let out = run(
        &["map", "--trigger", r#"type = "identify""#, "-"],
        event.as_bytes(),
    );
    assert_eq!(out.code, 1, "{out:?}");
    let value: Value = serde_json::from_str(&out.stdout).expect("map prints JSON");
    assert_eq!(value["matches"], false);

    let out = run(
        &["map", "--mapping", r#"{"user":{"@path":"$.userId""#, "-"],
        event.as_bytes(),
    );
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("--mapping"), "{}", out.stderr);
}

#[test]
fn a_short_key_is_hidden_without_garbling_any_userpilot_action() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = dir.path().join("actionkit.yaml");
    let mut yaml = String::from(
        "destinations:\n  - name: userpilot\n    destination: actions-userpilot-cloud\n    settings:\n      apiKey: k\n      endpoint: https://analytex.userpilot.io/\n    mappings:\n",
    );
    let actions = [
        ("identifyUser", "identify"),
        ("identifyUserCompany", "identify"),
        ("identifyUsersBulk", "identify"),
        ("trackEvent", "track"),
        ("identifyCompany", "group"),
        ("identifyCompaniesBulk", "group"),
    ];
    for (action, kind) in actions {
        yaml.push_str(&format!(
            "      - name: {action}\n        trigger: type = \"{kind}\"\n        action: {action}\n"
        ));
    }
    std::fs::write(&config, yaml).expect("the config is written");
    let events = [
        json!({"type": "identify", "userId": "k", "traits": {"kind": "k", "company": {"id": "acme-k"}}}),
        json!({"type": "track", "userId": "kk-user", "event": "Task Picked", "properties": {"k": "k"}}),
        json!({"type": "group", "userId": "k", "groupId": "acme-k", "traits": {"kind": "k"}}),
    ];
    let input: String = events.iter().map(|e| format!("{e}\n")).collect();
    let config = config.to_string_lossy().into_owned();

    let out = run(
        &[
            "send",
            "--dry-run",
            "--output",
            "ndjson",
            "--config",
            &config,
        ],
        input.as_bytes(),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let lines = out.ndjson();
    let mut seen: Vec<&str> = Vec::new();
    let mut n_requests = 0;
    for line in &lines {
        for action in line["actions"].as_array().into_iter().flatten() {
            seen.extend(action.as_str());
        }
        for request in line["requests"].as_array().into_iter().flatten() {
            n_requests += 1;
            assert_eq!(
                request["headers"]["authorization"], "Token [redacted]",
                "{request}"
            );
            assert_eq!(
                request["headers"]["x-api-version"], "2020-09-22",
                "{request}"
            );
        }
    }
    for (action, _) in actions {
        assert!(
            seen.contains(&action),
            "{action} did not run: {}",
            out.stdout
        );
    }
    // The only redacted value is each request's key.
    assert_eq!(
        out.stdout.matches("[redacted]").count(),
        n_requests,
        "{}",
        out.stdout
    );
    for text in [
        "https://analytex.userpilot.io/v1/track",
        r#""user_id":"k""#,
        r#""user_id":"kk-user""#,
        r#""event_name":"Task Picked""#,
        r#""k":"k""#,
        r#""kind":"k""#,
        "acme-k",
    ] {
        assert!(
            out.stdout.contains(text),
            "{text} is missing: {}",
            out.stdout
        );
    }

    let pretty = run(
        &[
            "send",
            "--dry-run",
            "--output",
            "pretty",
            "--config",
            &config,
        ],
        input.as_bytes(),
    );
    assert_eq!(pretty.code, 0, "{pretty:?}");
    assert!(
        pretty.stdout.contains("authorization: Token [redacted]"),
        "{}",
        pretty.stdout
    );
    assert!(
        pretty
            .stdout
            .contains("POST https://analytex.userpilot.io/v1/track"),
        "{}",
        pretty.stdout
    );
    assert!(!pretty.all().contains("Token k"), "{}", pretty.all());

    let shown = run(
        &[
            "send",
            "--dry-run",
            "--output",
            "ndjson",
            "--show-secrets",
            "--config",
            &config,
        ],
        input.as_bytes(),
    );
    assert!(
        shown.stdout.contains(r#""authorization":"Token k""#),
        "{}",
        shown.stdout
    );
    assert!(!shown.stdout.contains("[redacted]"), "{}", shown.stdout);
}

/// mock-userpilot expecting `KEY`, without rate limits, on a runtime of its own that serves it
/// while a test runs the binary. The handle is the first field, so that it stops the mock before
/// the runtime ends.
struct Mock {
    handle: MockHandle,
    _runtime: tokio::runtime::Runtime,
}

impl Mock {
    fn start() -> Mock {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the mock");
        let handle = runtime
            .block_on(actionkit_mock_userpilot::spawn(MockConfig {
                api_key: Some(KEY.to_owned()),
                rate_limits: RateLimits::disabled(),
                ..MockConfig::default()
            }))
            .expect("the mock starts");
        Mock {
            handle,
            _runtime: runtime,
        }
    }

    /// The `--setting` that points the destination at the mock.
    fn endpoint(&self) -> String {
        format!("endpoint={}", self.handle.base_url())
    }

    /// What the mock received: method, path and the status it answered.
    fn calls(&self) -> Vec<(String, String, u16)> {
        self.handle
            .requests()
            .into_iter()
            .map(|r| (r.method, r.path, r.status))
            .collect()
    }
}

/// Writes `text` to `name` in `dir` and returns its path as text.
fn write_config(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("the configuration is written");
    path.to_string_lossy().into_owned()
}

/// The error `send`, `test-auth` and the deletions give for Userpilot without an API key.
const MISSING_API_KEY: &str = "error: missing required setting 'apiKey' (API Key) of destination \
     'actions-userpilot-cloud': give it with --setting apiKey=…, in the environment variable \
     USERPILOT_API_KEY, or as `apiKey` in the settings of an instance in a --config file";

#[test]
fn a_required_setting_given_nowhere_stops_every_command_before_it_sends() {
    let mock = Mock::start();
    let endpoint = mock.endpoint();
    let events = ndjson(&unique_events(3));
    let runs = [
        ("send", run(&["send", "--setting", &endpoint, "-"], &events)),
        (
            "send --dry-run",
            run(&["send", "--dry-run", "--setting", &endpoint, "-"], &events),
        ),
        (
            "test-auth",
            run(&["test-auth", "--setting", &endpoint], b""),
        ),
        (
            "delete-user",
            run(&["delete-user", "--setting", &endpoint, "user-1"], b""),
        ),
        (
            "delete-user (bulk)",
            run(
                &["delete-user", "--setting", &endpoint, "user-1", "user-2"],
                b"",
            ),
        ),
        (
            "delete-company",
            run(&["delete-company", "--setting", &endpoint, "acme"], b""),
        ),
    ];
    for (command, out) in runs {
        assert_eq!(out.code, 2, "{command}: {out:?}");
        assert_eq!(out.stderr.trim(), MISSING_API_KEY, "{command}");
    }
    assert_eq!(mock.calls(), [], "nothing was sent");
}

#[test]
fn a_required_setting_missing_from_a_configuration_is_an_error_at_its_instance() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let queue = dir.path().join("queue.sqlite");
    // The first instance has its key; the error about the second must not show it.
    let config = write_config(
        dir.path(),
        "actionkit.yaml",
        &format!(
            "destinations:
  - name: prod
    destination: actions-userpilot-cloud
    settings:
      apiKey: {KEY}
  - name: staging
    destination: actions-userpilot-cloud
    settings:
      endpoint: http://127.0.0.1:9/
server:
  write_keys:
    - name: web
      key: wk-test
  queue:
    path: {}
",
            queue.display()
        ),
    );
    let runs = [
        (
            "send",
            run(&["send", "--dry-run", "--config", &config, "-"], b""),
        ),
        ("serve", run(&["serve", "--config", &config], b"")),
        (
            "test-auth",
            run(
                &["test-auth", "--config", &config, "--instance", "staging"],
                b"",
            ),
        ),
        (
            "delete-user",
            run(
                &[
                    "delete-user",
                    "--config",
                    &config,
                    "--instance",
                    "staging",
                    "u-1",
                ],
                b"",
            ),
        ),
    ];
    for (command, out) in runs {
        assert_eq!(out.code, 2, "{command}: {out:?}");
        let text = &out.stderr;
        for part in [
            "missing required setting 'apiKey' (API Key)",
            "actionkit.yaml:9:7 (/destinations/1/settings)",
            "add `apiKey: …` to this instance's settings",
            "`apiKey: ${USERPILOT_API_KEY}` reads the environment variable USERPILOT_API_KEY",
            "--setting apiKey=… or USERPILOT_API_KEY",
        ] {
            assert!(text.contains(part), "{command}: no '{part}' in {text}");
        }
        assert!(!out.all().contains(KEY), "{command} leaked the key");
        assert!(!out.all().contains("SECRET"), "{command} leaked the key");
    }
    assert!(!queue.exists(), "serve stopped before opening its queue");
}

#[test]
fn an_explicitly_empty_setting_is_sent_as_segment_does() {
    // Segment's settings validation only asks that a required field be present: an empty API
    // key builds requests with an empty credential, which the destination then refuses.
    let event = ndjson(&[json!({"type": "track", "userId": "u1", "event": "E"})]);
    let dry_run = ["send", "--dry-run", "--output", "ndjson", "--show-secrets"];
    let by_flag = run(&[&dry_run[..], &["--setting", "apiKey="]].concat(), &event);
    let by_env = common::run_with_env(&dry_run, &event, &[("USERPILOT_API_KEY", "")]);
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = write_config(
        dir.path(),
        "actionkit.yaml",
        "destinations:
  - name: userpilot
    destination: actions-userpilot-cloud
    settings:
      apiKey: ''
",
    );
    let by_config = run(&[&dry_run[..], &["--config", &config]].concat(), &event);
    for (source, out) in [
        ("--setting", by_flag),
        ("environment", by_env),
        ("configuration", by_config),
    ] {
        assert_eq!(out.code, 0, "{source}: {out:?}");
        let headers = &out.ndjson()[0]["requests"][0]["headers"];
        assert_eq!(headers["authorization"], "Token ", "{source}: {out:?}");
    }

    let mock = Mock::start();
    let out = run(
        &[
            "test-auth",
            "--setting",
            "apiKey=",
            "--setting",
            &mock.endpoint(),
        ],
        b"",
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout
            .starts_with("Credentials are invalid: Unauthorized"),
        "{out:?}"
    );
    assert_eq!(
        mock.calls(),
        [("GET".to_owned(), "/v1/validate".to_owned(), 401)]
    );
}

#[test]
fn test_auth_and_deletions_use_an_instance_of_a_configuration() {
    let mock = Mock::start();
    let base = mock.handle.base_url();
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = write_config(
        dir.path(),
        "actionkit.yaml",
        &format!(
            "destinations:
  - name: staging
    destination: actions-userpilot-cloud
    settings:
      apiKey: ${{CLI_STAGING_KEY}}
      endpoint: {base}
  - name: prod
    destination: actions-userpilot-cloud
    settings:
      apiKey: ${{CLI_PROD_KEY}}
      endpoint: {base}
"
        ),
    );
    let env = [
        ("CLI_STAGING_KEY", "sk-wrong-SECRET-0000ffff"),
        ("CLI_PROD_KEY", KEY),
    ];
    let test_auth = |instance: &str| {
        common::run_with_env(
            &["test-auth", "--config", &config, "--instance", instance],
            b"",
            &env,
        )
    };
    let good = test_auth("prod");
    assert_eq!(good.code, 0, "{good:?}");
    assert_eq!(good.stdout.trim(), "Credentials are valid (HTTP 200).");
    let bad = test_auth("staging");
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(
        bad.stdout
            .starts_with("Credentials are invalid: Unauthorized"),
        "{bad:?}"
    );

    let deleted = common::run_with_env(
        &[
            "delete-user",
            "--config",
            &config,
            "--instance",
            "prod",
            "user-1001",
        ],
        b"",
        &env,
    );
    assert_eq!(deleted.code, 0, "{deleted:?}");
    assert_eq!(
        deleted.stdout.trim(),
        "Deletion of user 'user-1001' accepted (HTTP 202)."
    );
    let companies = common::run_with_env(
        &[
            "delete-company",
            "--config",
            &config,
            "--instance",
            "prod",
            "acme",
            "globex",
        ],
        b"",
        &env,
    );
    assert_eq!(companies.code, 0, "{companies:?}");
    let requests = mock.handle.requests();
    let deletes: Vec<(&str, &str, Option<&Value>, u16)> = requests
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| {
            (
                r.method.as_str(),
                r.path.as_str(),
                r.json.as_ref(),
                r.status,
            )
        })
        .collect();
    assert_eq!(
        deletes,
        [
            (
                "DELETE",
                "/v1/users",
                Some(&json!({"users": ["user-1001"]})),
                202
            ),
            (
                "DELETE",
                "/v1/companies",
                Some(&json!({"companies": ["acme", "globex"]})),
                202
            ),
        ]
    );

    // Which instance, when the file has several, and a name it does not have.
    let several = common::run_with_env(&["test-auth", "--config", &config], b"", &env);
    assert_eq!(several.code, 2, "{several:?}");
    assert!(
        several.stderr.contains(
            "actionkit.yaml has 2 enabled instances (staging, prod); choose one with --instance NAME"
        ),
        "{several:?}"
    );
    let unknown = common::run_with_env(
        &[
            "delete-user",
            "--config",
            &config,
            "--instance",
            "prd",
            "u-1",
        ],
        b"",
        &env,
    );
    assert_eq!(unknown.code, 2, "{unknown:?}");
    assert!(
        unknown.stderr.contains(
            "actionkit.yaml has no instance 'prd'; expected one of staging, prod; did you mean 'prod'?"
        ),
        "{unknown:?}"
    );
    // Settings belong to the file's instances, not to the command line.
    let flag = common::run_with_env(
        &[
            "test-auth",
            "--config",
            &config,
            "--instance",
            "prod",
            "--setting",
            "apiKey=sk-other-SECRET-1111",
        ],
        b"",
        &env,
    );
    assert_eq!(flag.code, 2, "{flag:?}");
    assert!(
        flag.stderr.contains("--setting does not go with --config"),
        "{flag:?}"
    );
    for out in [&good, &bad, &deleted, &companies, &several, &unknown, &flag] {
        assert!(!out.all().contains(KEY), "the key leaked: {out:?}");
        assert!(!out.all().contains("SECRET"), "a key leaked: {out:?}");
    }
    assert_eq!(mock.calls().len(), 4, "{:?}", mock.calls());

    // A file with one enabled instance needs no --instance.
    let single = write_config(
        dir.path(),
        "single.yaml",
        &format!(
            "destinations:
  - name: eu
    destination: actions-userpilot-cloud
    enabled: false
    settings:
      apiKey: sk-off
  - name: us
    destination: actions-userpilot-cloud
    settings:
      apiKey: ${{CLI_PROD_KEY}}
      endpoint: {base}
"
        ),
    );
    let out = common::run_with_env(&["test-auth", "--config", &single], b"", &env);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.trim(), "Credentials are valid (HTTP 200).");
}

#[test]
fn a_destination_is_chosen_by_slug() {
    let mock = Mock::start();
    let key = format!("apiKey={KEY}");
    let endpoint = mock.endpoint();
    let slug = "actions-userpilot-cloud";
    let out = run(
        &[
            "test-auth",
            "--destination",
            slug,
            "--setting",
            &key,
            "--setting",
            &endpoint,
        ],
        b"",
    );
    assert_eq!(out.code, 0, "{out:?}");
    let out = run(
        &[
            "delete-user",
            "--destination",
            slug,
            "--setting",
            &key,
            "--setting",
            &endpoint,
            "user-7",
        ],
        b"",
    );
    assert_eq!(out.code, 0, "{out:?}");
    let event = ndjson(&[json!({"type": "track", "userId": "u1", "event": "E"})]);
    let out = run(
        &[
            "send",
            "--destination",
            slug,
            "--output",
            "ndjson",
            "--setting",
            &key,
            "--setting",
            &endpoint,
        ],
        &event,
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        mock.calls(),
        [
            ("GET".to_owned(), "/v1/validate".to_owned(), 200),
            ("DELETE".to_owned(), "/v1/users".to_owned(), 202),
            ("POST".to_owned(), "/v1/track".to_owned(), 202),
        ]
    );

    let unknown_error = "error: unknown destination 'actions-userpilot'; expected one of \
         actions-userpilot-cloud, actions-webhook; did you mean 'actions-userpilot-cloud'?";
    for command in [
        &["test-auth"][..],
        &["delete-user", "u-1"],
        &["delete-company", "acme"],
        &["send", "--dry-run", "-"],
    ] {
        let args = [
            command,
            &["--destination", "actions-userpilot", "--setting", &key],
        ]
        .concat();
        let out = run(&args, b"");
        assert_eq!(out.code, 2, "{command:?}: {out:?}");
        assert_eq!(out.stderr.trim(), unknown_error, "{command:?}");
        assert!(!out.all().contains(KEY));
    }
    // An instance belongs to a configuration; --destination and --config exclude each other.
    let out = run(&["test-auth", "--instance", "prod", "--setting", &key], b"");
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("--instance 'prod' names an instance of a configuration file"),
        "{out:?}"
    );
    let out = run(
        &[
            "test-auth",
            "--destination",
            slug,
            "--config",
            "examples/actionkit.yaml",
        ],
        b"",
    );
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("cannot be used with"), "{out:?}");
    assert_eq!(mock.calls().len(), 3, "nothing more was sent");
}
