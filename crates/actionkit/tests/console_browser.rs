//! The web console end to end in headless Chromium: `actionkit console` serves the page, and
//! `tests/clients/console.mjs` (playwright-core driving the system's Chromium, no browser
//! download) uses it as a person would: enters the token, pastes an event into the Event
//! Tester and sees the request with the API key redacted, breaks a mapping and the trigger in
//! the mapping editor and sees each error at its place, fixes them and copies the YAML, which
//! must then be on the clipboard and load as part of a configuration.
//!
//! Screenshots of each step are written to `target/console-screenshots/`. Without the npm
//! packages (`cargo xtask test` installs them, or `npm ci --prefix
//! crates/actionkit/tests/clients`) or Chromium the test prints "skipped", unless `CI` or
//! `ACTIONKIT_REQUIRE_CLIENTS` is set, when it fails.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::clients::{clients_dir, ready};
use common::serve::*;
use serde_json::Value;

const TOKEN: &str = "e2e-browser-console-token-5c1e";
const TOKEN_ENV: &str = "E2E_CONSOLE_TOKEN";

/// Whether Chromium can be found the way console.mjs looks for it.
fn chromium_found() -> bool {
    if let Some(path) = std::env::var_os("ACTIONKIT_CHROMIUM") {
        return std::path::Path::new(&path).is_file();
    }
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| dir.join("chromium").is_file())
    })
}

#[tokio::test]
async fn a_person_tests_an_event_fixes_a_mapping_and_copies_its_yaml() {
    if !ready(&["playwright-core"]) {
        return;
    }
    if !chromium_found() {
        assert!(
            !common::clients_required(),
            "the console browser test is required here, but no `chromium` is on PATH"
        );
        eprintln!("skipped: no `chromium` on PATH (install Debian's chromium package)");
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = write_config(dir.path(), "http://127.0.0.1:9/");
    let server = Server::start_command(
        "console",
        &config,
        &["--listen", "127.0.0.1:0", "--token-env", TOKEN_ENV],
        &[(TOKEN_ENV, TOKEN)],
    );
    let screenshots = common::repo_root().join("target/console-screenshots");

    let child = tokio::process::Command::new("node")
        .arg(clients_dir().join("console.mjs"))
        .args(["--serve", &server.url(""), "--screenshots"])
        .arg(&screenshots)
        .current_dir(clients_dir())
        .env("ACTIONKIT_CONSOLE_TOKEN", TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let out = tokio::time::timeout(Duration::from_secs(150), child.wait_with_output())
        .await
        .expect("console.mjs finishes within its own time limit")
        .expect("its output is read");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("console.mjs did not print one JSON object ({e}):\n{stdout}\nstderr:\n{stderr}")
    });
    assert_eq!(
        out.status.code(),
        Some(0),
        "problems: {:#}\nstderr:\n{stderr}\nserver:\n{}",
        report["problems"],
        server.logs()
    );
    assert_eq!(
        report["steps"],
        serde_json::json!([
            "destinations",
            "event tester",
            "mapping error",
            "mapping fixed"
        ])
    );
    for name in [
        "destinations",
        "event-tester",
        "mapping-error",
        "mapping-fixed",
    ] {
        let shot = screenshots.join(format!("{name}.png"));
        assert!(shot.is_file(), "no screenshot {}", shot.display());
    }

    // What was copied is a mapping entry the configuration loader reads.
    let yaml = report["clipboard"].as_str().expect("the copied YAML");
    let indented: String = yaml.lines().map(|l| format!("    {l}\n")).collect();
    let text = format!(
        "destinations:\n  - name: up\n    destination: actions-userpilot-cloud\n    settings:\n      apiKey: k\n    mappings:\n{indented}"
    );
    let loaded = actionkit_spec::load_config_str("copied.yaml", &text, |_| None)
        .unwrap_or_else(|diags| panic!("{diags}\n{text}"));
    let actionkit_spec::config::Mappings::List(list) = &loaded.config.destinations[0].mappings
    else {
        panic!("a list of mappings:\n{text}");
    };
    assert_eq!(
        list[0].trigger,
        "type = \"track\" and event = \"Order Completed\""
    );
    assert_eq!(list[0].mapping["userId"]["@path"], "$.userId");

    let logs = server.stop_cleanly();
    assert!(!logs.contains(TOKEN), "the token was logged:\n{logs}");
}
