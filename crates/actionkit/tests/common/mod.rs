//! Helpers shared by the integration tests: running the `actionkit` binary as a subprocess and
//! generating NDJSON inputs with one unique body per request.

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

pub mod clients;
pub mod crash;
pub mod serve;
pub mod traffic;
pub mod volume;

use serde_json::{Value, json};

/// The path of the binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_actionkit");

/// Whether a missing client library (Python, Node.js packages, Chromium) fails a test rather than
/// skipping it: in CI, and under `cargo xtask test`, which installs them all first.
pub fn clients_required() -> bool {
    ["CI", "ACTIONKIT_REQUIRE_CLIENTS"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
}

/// The repository root (two levels above this crate).
pub fn repo_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What a finished subprocess printed, as text.
#[derive(Debug)]
pub struct Run {
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl Run {
    /// Both streams together, for "never appears anywhere" checks.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Stdout parsed as one JSON value per non-empty line.
    pub fn ndjson(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|err| panic!("stdout line is not JSON ({err}): {line}"))
            })
            .collect()
    }
}

fn finish(output: Output) -> Run {
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs the binary with `args` and `stdin`, in the repository root, with no `USERPILOT_*`
/// variables inherited.
pub fn run(args: &[&str], stdin: &[u8]) -> Run {
    run_with_env(args, stdin, &[])
}

/// Like [`run`], with the environment variables `env` set.
pub fn run_with_env(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Run {
    let mut child = command(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the actionkit binary starts");
    let mut pipe = child.stdin.take().expect("stdin is piped");
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // The binary may stop reading early; a broken pipe is not a test failure.
        let _ = pipe.write_all(&input);
    });
    let output = child
        .wait_with_output()
        .expect("the actionkit binary finishes");
    let _ = writer.join();
    finish(output)
}

/// Like [`run`], without the blocking wait, for tests that run a mock on the same runtime.
pub async fn run_async(args: Vec<String>, stdin: Vec<u8>) -> Run {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&args, &stdin)
    })
    .await
    .expect("the subprocess task finishes")
}

fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(repo_root());
    for (name, _) in std::env::vars() {
        if name.starts_with("USERPILOT_") || name == "MOCK_USERPILOT_API_KEY" {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// `n` events cycling track, identify and group, each with ids unique to its index so that every
/// request body is unique: track `u-<i>`/`Event <i>`, identify `u-<i>`, group `c-<i>`.
pub fn unique_events(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| match i % 3 {
            0 => json!({"type": "track", "userId": format!("u-{i}"), "event": format!("Event {i}"),
                        "properties": {"n": i}}),
            1 => json!({"type": "identify", "userId": format!("u-{i}"),
                        "traits": {"name": format!("User {i}"), "plan": "growth"}}),
            _ => json!({"type": "group", "userId": format!("u-{i}"), "groupId": format!("c-{i}"),
                        "traits": {"name": format!("Company {i}")}}),
        })
        .collect()
}

/// Events as NDJSON bytes.
pub fn ndjson(events: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for event in events {
        out.extend_from_slice(event.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}
