//! Runs the client snippets of README.md's "Drop-in for your Segment clients" section as they are
//! written, against a real `actionkit serve` and the mock Userpilot API.
//!
//! Each snippet the README marks with `<!-- readme-snippet: NAME -->` is cut out of the README,
//! its host `https://collect.example.com` replaced by the test server's address, and run with the
//! write key in the environment variable it reads: the Node.js ones with `node` (the packages of
//! `tests/clients`), the Python one with `$ACTIONKIT_PYTHON`. Every snippet identifies user
//! `u-1001` and tracks an "Order Completed" event, so the mock must then receive exactly the
//! Identify User and Track Event requests those calls mean. A README edit that breaks a snippet
//! (a wrong option name, a missing flush) fails here.
//!
//! The clients are installed by `cargo xtask test`; without them the tests fail when `CI` or
//! `ACTIONKIT_REQUIRE_CLIENTS` is set and otherwise print a "skipped" line and pass.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use actionkit_mock_userpilot::{FaultConfig, MockHandle};
use common::clients::{clients_dir, ready};
use common::serve::*;
use serde_json::{Value, json};

/// The host the README's snippets talk to.
const README_HOST: &str = "https://collect.example.com";

/// The snippet marked `<!-- readme-snippet: NAME -->` in README.md: the fenced block that follows
/// the marker.
fn snippet(name: &str) -> String {
    let path = common::repo_root().join("README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md is readable");
    let marker = format!("<!-- readme-snippet: {name} -->");
    let after = readme
        .split_once(&marker)
        .unwrap_or_else(|| panic!("README.md has no `{marker}`"))
        .1;
    let fence_start = after
        .find("```")
        .unwrap_or_else(|| panic!("no code block after `{marker}` in README.md"));
    let block = &after[fence_start + 3..];
    let body_start = block.find('\n').map_or(block.len(), |at| at + 1);
    let body = &block[body_start..];
    let end = body
        .find("```")
        .unwrap_or_else(|| panic!("the code block after `{marker}` is not closed"));
    let code = &body[..end];
    assert!(
        code.contains(README_HOST),
        "the `{name}` snippet does not use {README_HOST}"
    );
    code.to_owned()
}

/// Where the snippets are written to run: `target/readme-snippets/`, with `node_modules` linked to
/// the clients' packages so that the snippets' imports resolve as in an app.
fn work_dir() -> PathBuf {
    let dir = common::repo_root().join("target/readme-snippets");
    std::fs::create_dir_all(&dir).expect("target/readme-snippets can be created");
    let link = dir.join("node_modules");
    if std::fs::symlink_metadata(&link).is_err() {
        std::os::unix::fs::symlink(clients_dir().join("node_modules"), &link)
            .expect("node_modules can be linked");
    }
    dir
}

/// Runs a program on a snippet file with the write key in `key_var`; fails with its output when
/// it does not exit 0.
fn run(program: &str, file: &Path, key_var: &str) {
    let out = Command::new(program)
        .arg(file)
        .current_dir(file.parent().expect("the snippet file has a directory"))
        .env(key_var, WRITE_KEY)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} exited with {}:\n{}\n{stderr}",
        file.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!stderr.contains(WRITE_KEY), "the write key was printed");
}

/// Writes snippet `name` with the test server's address to `file_name`, runs it and checks what
/// reached the mock.
async fn check(name: &str, file_name: &str, program: &str, key_var: &str) {
    let mock = mock(FaultConfig::default()).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = write_config(dir.path(), &mock.base_url());
    let server = Server::start(&config);
    let code = snippet(name).replace(README_HOST, &server.url(""));
    let file = work_dir().join(file_name);
    std::fs::write(&file, code).expect("the snippet can be written");
    let (program, file_for_thread, key_var) =
        (program.to_owned(), file.clone(), key_var.to_owned());
    tokio::task::spawn_blocking(move || run(&program, &file_for_thread, &key_var))
        .await
        .expect("the snippet's run finishes");
    let got = wait_for_requests(&mock, 2).await;
    let want = vec![
        (
            "/v1/identify".to_owned(),
            json!({"user_id": "u-1001", "metadata": {"email": "ada@example.com", "plan": "pro"}}),
        ),
        (
            "/v1/track".to_owned(),
            json!({"user_id": "u-1001", "event_name": "Order Completed", "metadata": {"revenue": 42}}),
        ),
    ];
    assert_eq!(got, want, "what the `{name}` snippet's calls delivered");
    server.stop_cleanly();
}

/// Waits until the mock has `n` requests, then a moment longer to see any duplicate; returns
/// them sorted by path.
async fn wait_for_requests(mock: &MockHandle, n: usize) -> Vec<(String, Value)> {
    let started = Instant::now();
    while mock.requests().len() < n {
        assert!(
            started.elapsed() < PATIENCE,
            "the mock got {} of {n} requests: {:?}",
            mock.requests().len(),
            mock.requests()
                .iter()
                .map(|r| r.path.clone())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut got: Vec<(String, Value)> = mock
        .requests()
        .into_iter()
        .map(|r| {
            assert!(
                (200..300).contains(&r.status),
                "the mock answered {}",
                r.status
            );
            (r.path, r.json.unwrap_or(Value::Null))
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_node_snippet_delivers() {
    if ready(&["@segment/analytics-node"]) {
        check(
            "segment-node",
            "segment-node.mjs",
            "node",
            "SEGMENT_WRITE_KEY",
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_rudderstack_snippet_delivers() {
    if ready(&["@rudderstack/rudder-sdk-node"]) {
        check(
            "rudderstack-node",
            "rudderstack-node.mjs",
            "node",
            "RUDDERSTACK_WRITE_KEY",
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_python_snippet_delivers() {
    let python = std::env::var("ACTIONKIT_PYTHON")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "python3".to_owned());
    let importable = Command::new(&python)
        .args(["-c", "import segment.analytics"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !importable {
        let reason = format!("`{python}` cannot import segment.analytics");
        if common::clients_required() {
            panic!("{reason}; `cargo xtask test` installs it");
        }
        eprintln!("skipped: {reason}; `cargo xtask test` installs it");
        return;
    }
    check(
        "segment-python",
        "segment_python.py",
        &python,
        "SEGMENT_WRITE_KEY",
    )
    .await;
}
