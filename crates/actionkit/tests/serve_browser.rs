//! End-to-end tests with Segment's browser library, analytics.js (`@segment/analytics-next`
//! 1.84.3), in headless Chromium: a page on another origin than `actionkit serve` loads the
//! library, makes identify, track, group and page calls, and the library delivers them to the
//! server, which delivers them to the mock Userpilot API.
//!
//! The script `tests/clients/browser.mjs` drives the system's Chromium with `playwright-core`
//! (no browser is ever downloaded) and serves the page; see its header for how. Each test is one
//! way a website loads the library:
//!
//! - `standard`: the npm package's UMD build with only `cdnURL` pointing at the server, so the
//!   library fetches its settings from `GET /v1/projects/{writeKey}/settings` and posts each call
//!   to `/v1/{i,t,g,p}` as `text/plain` with Basic auth, which makes Chromium send a CORS
//!   preflight before each post;
//! - `batching`: the same with the batching delivery strategy, posting `{writeKey, batch,
//!   sentAt}` to `/v1/b`;
//! - `snippet`: Segment's snippet (our equivalent of it) loading the standalone build, with the
//!   snippet's `_cdn` pointing at the server;
//! - `inline`: the UMD build with the settings given inline, so no settings request is made.
//!
//! Each test checks that the page saw no console error or warning, no page error, no failed
//! request and no answer >= 400, that each call was accepted exactly once, that the library used
//! the endpoints that case should use, that the mock received exactly one Identify User, Track
//! Event and Identify Company request with the bodies Userpilot expects and nothing for the page
//! call, and that the server stopped cleanly. Each writes a screenshot of the page to
//! `target/client-e2e/<case>.png`.
//!
//! The packages are pinned in `tests/clients/package.json`; `cargo xtask test` installs them (or
//! run `npm ci --prefix crates/actionkit/tests/clients`). Without them the tests fail when `CI`
//! or `ACTIONKIT_REQUIRE_CLIENTS` is set, and otherwise print a "skipped" line to standard error
//! and pass. The browser is
//! `$ACTIONKIT_CHROMIUM`, else `chromium` on PATH (Debian's package), and is required likewise.
//! The cases run one at a time, so that at most one browser competes for the CPU.

mod common;

use std::collections::BTreeSet;

use actionkit_mock_userpilot::FaultConfig;
use common::clients::*;
use common::serve::*;
use serde_json::Value;
use tokio::sync::Mutex;

/// The packages the browser script needs.
const PACKAGES: &[&str] = &["playwright-core", "@segment/analytics-next"];

/// The library version the lock file pins.
const LIBRARY_VERSION: &str = "1.84.3";

/// One browser at a time: the cases would otherwise compete for the machine's two cores.
static ONE_BROWSER: Mutex<()> = Mutex::const_new(());

/// Whether a browser can be found the way browser.mjs looks for one; otherwise why not.
fn chromium() -> Result<String, String> {
    if let Some(path) = std::env::var_os("ACTIONKIT_CHROMIUM") {
        let path = std::path::PathBuf::from(path);
        return if path.is_file() {
            Ok(path.display().to_string())
        } else {
            Err(format!(
                "ACTIONKIT_CHROMIUM={} is not a file",
                path.display()
            ))
        };
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("chromium"))
                .find(|candidate| candidate.is_file())
        })
        .map(|path| path.display().to_string())
        .ok_or_else(|| "no `chromium` on PATH (install Debian's chromium package)".to_owned())
}

/// Runs one case against a fresh server and mock and checks everything the module docs list;
/// `check` does the case's own checks on the script's report.
async fn browser_case(case: &str, check: impl FnOnce(&Value)) {
    if !ready(PACKAGES) {
        return;
    }
    let browser = match chromium() {
        Ok(path) => path,
        Err(reason) => {
            if common::clients_required() {
                panic!("a browser is required here: {reason}; `cargo xtask test` installs it");
            }
            eprintln!("skipped: {reason}; `cargo xtask test` installs it");
            return;
        }
    };
    let _one_browser = ONE_BROWSER.lock().await;

    let mock = mock(FaultConfig::default()).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = write_config(dir.path(), &mock.base_url());
    let server = Server::start(&config);
    let tag = run_tag(&format!("web-{case}"));
    let screenshot = screenshot_path(case);
    let _ = std::fs::remove_file(&screenshot);

    let run = run_script(
        "browser.mjs",
        &server,
        &tag,
        case,
        &[
            "--screenshot".to_owned(),
            screenshot.display().to_string(),
            "--timeout-ms".to_owned(),
            "10000".to_owned(),
        ],
    )
    .await;
    eprintln!(
        "[{case}] {} ran in {:.1} s with {browser}; screenshot: {}",
        run.report["browser"]["version"]
            .as_str()
            .unwrap_or("a browser"),
        run.elapsed.as_secs_f64(),
        screenshot.display()
    );
    let context = if run.is_clean() {
        String::new()
    } else {
        let origin = run.report["page"].as_str().unwrap_or("http://127.0.0.1:1");
        what_the_server_answers(&server, origin).await
    };
    run.assert_clean(&format!("analytics.js, {case}"), &server, &context);

    let report = &run.report;
    assert_eq!(report["library"]["version"], LIBRARY_VERSION, "{report}");
    let mut types = strings(report, "messages", "type");
    types.sort_unstable();
    assert_eq!(
        types,
        ["group", "identify", "page", "track"],
        "[{case}] each call should reach the server as one message: {report}"
    );
    let ids: BTreeSet<&str> = strings(report, "messages", "messageId")
        .into_iter()
        .collect();
    assert_eq!(
        ids.len(),
        4,
        "[{case}] every message has its own messageId: {report}"
    );
    for call in report["calls"]
        .as_array()
        .expect("the report lists the calls")
    {
        assert_eq!(call["accepted"], 1, "[{case}] {call}");
    }
    // Only the two local servers were asked for anything.
    for request in report["requests"]
        .as_array()
        .expect("the report lists the requests")
    {
        let to = request["to"].as_str().unwrap_or_default();
        assert!(to == "server" || to == "page server", "[{case}] {request}");
    }
    check(report);

    wait_until_handled(&server, 4).await;
    assert_mock_got_exactly(&mock, &[tag]);
    server.stop_cleanly();
    assert!(
        screenshot.is_file(),
        "[{case}] no screenshot at {}",
        screenshot.display()
    );
}

/// What the server answers the requests a browser on `origin` makes before any event is sent:
/// the settings request and the CORS preflights of a post to `/v1/i` and `/v1/b`. Chromium
/// hides the answer when CORS refuses it, so a failing test asks again itself and prints this.
async fn what_the_server_answers(server: &Server, origin: &str) -> String {
    let client = reqwest::Client::new();
    let mut out =
        format!("what the server answers a page on {origin} (asked again after the run):");
    let settings = client
        .get(server.url(&format!("/v1/projects/{WRITE_KEY}/settings")))
        .header("origin", origin);
    out.push_str(&describe("GET /v1/projects/[write key]/settings", settings).await);
    for path in ["/v1/i", "/v1/b"] {
        let preflight = client
            .request(reqwest::Method::OPTIONS, server.url(path))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            );
        out.push_str(&describe(&format!("OPTIONS {path} (preflight of a POST)"), preflight).await);
    }
    out
}

/// One line: the status, the CORS headers and the start of the body of the answer to `request`.
async fn describe(what: &str, request: reqwest::RequestBuilder) -> String {
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => return format!("\n  {what} -> no answer: {e}"),
    };
    let status = response.status();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("(none)")
            .to_owned()
    };
    let cors = format!(
        "allow-origin: {}, allow-methods: {}, allow-headers: {}",
        header("access-control-allow-origin"),
        header("access-control-allow-methods"),
        header("access-control-allow-headers"),
    );
    let body = response.text().await.unwrap_or_default();
    let body: String = body
        .replace(WRITE_KEY, "[write key]")
        .chars()
        .take(300)
        .collect();
    format!("\n  {what} -> {status}; {cors}; body: {body}")
}

/// The paths of the requests to the server with `method`, in the order they were made.
fn server_paths<'a>(report: &'a Value, method: &str) -> Vec<&'a str> {
    report["requests"]
        .as_array()
        .map(|all| {
            all.iter()
                .filter(|r| r["to"] == "server" && r["method"] == method)
                .filter_map(|r| r["path"].as_str())
                .collect()
        })
        .unwrap_or_default()
}

/// Checks that the library fetched its settings from the server, once.
fn fetched_settings(report: &Value) {
    assert_eq!(
        server_paths(report, "GET"),
        ["/v1/projects/[write key]/settings"],
        "the library should fetch its settings from the server once: {report}"
    );
}

/// Checks that each call was posted alone to its short path, as `text/plain`.
fn posted_one_by_one(report: &Value) {
    let mut paths = server_paths(report, "POST");
    paths.sort_unstable();
    assert_eq!(paths, ["/v1/g", "/v1/i", "/v1/p", "/v1/t"], "{report}");
    for request in report["requests"].as_array().into_iter().flatten() {
        if request["to"] == "server" && request["method"] == "POST" {
            assert_eq!(request["contentType"], "text/plain", "{request}");
            assert_eq!(request["authorization"], "Basic [redacted]", "{request}");
        }
    }
}

/// Checks that Chromium sent a CORS preflight before each post and the server allowed it.
fn preflighted(report: &Value) {
    let preflights = report["preflights"]
        .as_array()
        .expect("preflights are listed");
    let mut paths: Vec<&str> = preflights
        .iter()
        .filter_map(|p| p["path"].as_str())
        .collect();
    paths.sort_unstable();
    paths.dedup();
    let mut posted = server_paths(report, "POST");
    posted.sort_unstable();
    posted.dedup();
    assert_eq!(paths, posted, "a preflight before each post: {report}");
    for preflight in preflights {
        let status = preflight["status"].as_u64().unwrap_or_default();
        assert!((200..300).contains(&status), "{preflight}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analytics_js_standard_mode_with_settings_from_the_server_delivers_each_call_once() {
    browser_case("standard", |report| {
        fetched_settings(report);
        posted_one_by_one(report);
        preflighted(report);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analytics_js_batching_mode_delivers_each_call_once() {
    browser_case("batching", |report| {
        fetched_settings(report);
        let posted = server_paths(report, "POST");
        assert!(
            !posted.is_empty() && posted.iter().all(|p| *p == "/v1/b"),
            "batching posts to /v1/b only: {report}"
        );
        preflighted(report);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analytics_js_loaded_by_the_snippet_delivers_each_call_once() {
    browser_case("snippet", |report| {
        let scripts: Vec<&Value> = report["requests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["to"] == "page server" && r["resourceType"] == "script")
            .collect();
        assert!(
            scripts
                .iter()
                .any(|r| r["path"] == "/analytics.js/v1/[write key]/analytics.min.js"),
            "the snippet loads the standalone build from the snippet's path: {report}"
        );
        fetched_settings(report);
        posted_one_by_one(report);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analytics_js_with_inline_settings_delivers_each_call_once() {
    browser_case("inline", |report| {
        assert!(
            server_paths(report, "GET").is_empty(),
            "inline settings need no settings request: {report}"
        );
        posted_one_by_one(report);
    })
    .await;
}
