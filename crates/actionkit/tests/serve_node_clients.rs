//! End-to-end tests with two Node server libraries that speak Segment's HTTP Tracking API:
//! Segment's `@segment/analytics-node` 3.1.0 and RudderStack's `@rudderstack/rudder-sdk-node`
//! 3.1.1. Each sends identify, track, group and page calls to `actionkit serve`, which delivers
//! them to the mock Userpilot API.
//!
//! The scripts are `tests/clients/segment_node.mjs` and `tests/clients/rudder_node.mjs`; each
//! configures its library the way the library's documentation shows, with only the host changed.
//! Each library runs in two modes, with its own run tag:
//!
//! - analytics-node `batch` (its default: the four calls in one `/v1/batch` request at
//!   `closeAndFlush`) and `single` (`flushAt: 1`, one request per call);
//! - rudder-sdk-node `gzip` (its default: a gzip-compressed body sent by axios with a form
//!   content type, which the server must accept as JSON) and `plain` (`gzip: false`).
//!
//! Each test checks that the library reported no error and got no answer >= 400, that each call
//! was accepted exactly once, that the requests had the shape that mode sends, that the mock
//! received exactly one Identify User, Track Event and Identify Company request per run with the
//! bodies Userpilot expects and nothing for the page calls, and that the server stopped cleanly.
//!
//! The packages are pinned in `tests/clients/package.json`; `cargo xtask test` installs them (or
//! run `npm ci --prefix crates/actionkit/tests/clients`). Without them the tests fail when `CI`
//! or `ACTIONKIT_REQUIRE_CLIENTS` is set, and otherwise print a "skipped" line to standard error
//! and pass.

mod common;

use actionkit_mock_userpilot::FaultConfig;
use common::clients::*;
use common::serve::*;
use serde_json::Value;

/// Runs `script` once per mode against one server and mock, checks each run with `check`, then
/// checks what reached the mock and that the server stopped cleanly.
async fn node_client(
    script: &str,
    package: &str,
    version: &str,
    modes: &[&str],
    check: impl Fn(&str, &Value),
) {
    if !ready(&[package]) {
        return;
    }
    let mock = mock(FaultConfig::default()).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = write_config(dir.path(), &mock.base_url());
    let server = Server::start(&config);

    let mut tags = Vec::new();
    for mode in modes {
        let label = script.trim_end_matches(".mjs").replace('_', "-");
        let tag = run_tag(&format!("{label}-{mode}"));
        let run = run_script(script, &server, &tag, mode, &[]).await;
        eprintln!(
            "[{script} {mode}] ran in {:.1} s",
            run.elapsed.as_secs_f64()
        );
        run.assert_clean(&format!("{package}, {mode}"), &server, "");
        let report = &run.report;
        assert_eq!(report["library"]["name"], package, "{report}");
        assert_eq!(report["library"]["version"], version, "{report}");
        let types = strings(report, "messages", "type");
        assert_eq!(
            types,
            ["identify", "track", "group", "page"],
            "[{mode}] each call should reach the server as one message: {report}"
        );
        for call in report["calls"]
            .as_array()
            .expect("the report lists the calls")
        {
            assert!(
                call["messageId"].as_str().is_some_and(|id| !id.is_empty()),
                "[{mode}] every call has a messageId: {call}"
            );
        }
        check(mode, report);
        tags.push(tag);
    }

    wait_until_handled(&server, 4 * modes.len()).await;
    assert_mock_got_exactly(&mock, &tags);
    server.stop_cleanly();
}

/// The requests of a report to the server, as JSON values.
fn requests(report: &Value) -> &[Value] {
    report["requests"].as_array().map_or(&[], Vec::as_slice)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_analytics_node_calls_arrive_as_the_expected_requests() {
    node_client(
        "segment_node.mjs",
        "@segment/analytics-node",
        "3.1.0",
        &["batch", "single"],
        |mode, report| {
            let requests = requests(report);
            for request in requests {
                assert_eq!(request["method"], "POST", "{request}");
                assert_eq!(request["path"], "/v1/batch", "{request}");
                assert_eq!(request["contentType"], "application/json", "{request}");
            }
            // Batch mode sends the four calls together; single mode sends one request each.
            let expected = if mode == "batch" { 1 } else { 4 };
            assert_eq!(requests.len(), expected, "[{mode}] {report}");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rudderstack_node_sdk_calls_arrive_as_the_expected_requests() {
    node_client(
        "rudder_node.mjs",
        "@rudderstack/rudder-sdk-node",
        "3.1.1",
        &["gzip", "plain"],
        |mode, report| {
            let requests = requests(report);
            assert!(!requests.is_empty(), "{report}");
            for request in requests {
                assert_eq!(request["method"], "POST", "{request}");
                assert_eq!(request["path"], "/v1/batch", "{request}");
                if mode == "gzip" {
                    // axios's default for a binary body: the server must not insist on JSON.
                    assert_eq!(request["contentEncoding"], "gzip", "{request}");
                    assert_eq!(
                        request["contentType"], "application/x-www-form-urlencoded",
                        "{request}"
                    );
                } else {
                    assert!(request["contentEncoding"].is_null(), "{request}");
                    assert_eq!(request["contentType"], "application/json", "{request}");
                }
            }
        },
    )
    .await;
}
