//! SLOW test: plays a new user all the way to a running binary.
//!
//! Into a copy of the repository it scaffolds four destinations with `new-destination`, edits
//! each by script into one shape of request URL (a path on the base URL, an absolute URL, a URL
//! built from a setting, a URL built from the payload), runs `codegen`, builds the `actionkit`
//! binary with them and dry-runs example events through each with `actionkit send --dry-run`,
//! comparing the requests it prints with the ones expected.
//!
//! The copy lives at a fixed place under the workspace's target directory, and the nested cargo
//! builds into its own target directory beside it, so later runs rebuild only what changed and
//! the nested cargo never waits for the lock of the cargo running the tests. The first run
//! builds the binary's dependencies (a few minutes on two cores).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use xtask::codegen;
use xtask::fs::Mode;

/// Where the copy and its build live.
fn work_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| support::repo_root().join("target"))
        .join("xtask-new-destination")
}

/// Copies the repository's sources (not its build output, git data or npm packages) to `to`,
/// replacing what an earlier run left there.
fn copy_repository(to: &Path) {
    if to.exists() {
        std::fs::remove_dir_all(to).unwrap();
    }
    support::copy_dir_except(
        &support::repo_root(),
        to,
        &["target", ".git", "node_modules"],
    );
}

/// Replaces the first `from` with `to` in `file` of the destination directory `dir`.
fn edit(root: &Path, dir: &str, file: &str, from: &str, to: &str) {
    let path = root.join("actions").join(dir).join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{dir}/{file} lacks `{from}`:\n{text}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

/// Runs `binary send --dry-run --output ndjson` on `events` with `args` and returns the
/// requests it printed, one list per event.
fn dry_run(binary: &Path, args: &[&str], events: &[Value]) -> Vec<Value> {
    let input: String = events.iter().map(|e| format!("{e}\n")).collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    std::fs::write(&file, input).unwrap();
    let output = Command::new(binary)
        .args(["send", "--dry-run", "--output", "ndjson"])
        .args(args)
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "actionkit send {args:?} failed:\n{stdout}\n{stderr}"
    );
    assert!(
        !stdout.contains("s3cr3t-key") && !stderr.contains("s3cr3t-key"),
        "the API key was printed:\n{stdout}\n{stderr}"
    );
    stdout
        .lines()
        .map(|line| {
            let item: Value = serde_json::from_str(line)
                .unwrap_or_else(|err| panic!("not a JSON line ({err}): {line}"));
            assert_eq!(item["error"], Value::Null, "{line}");
            item["requests"].clone()
        })
        .collect()
}

/// The request the scaffolded action builds for user `user` at `url`.
fn request(url: &str, user: &str) -> Value {
    json!([{
        "method": "POST",
        "url": url,
        "headers": {
            "authorization": "Bearer [redacted]",
            "content-type": "application/json",
        },
        "json": {"user_id": user},
    }])
}

#[test]
fn slow_scaffolded_destinations_build_into_the_binary_and_dry_run_every_url_shape() {
    let work = work_dir();
    let root = work.join("workspace");
    copy_repository(&root);

    // The new user's steps: scaffold, edit the request, regenerate.
    for slug in [
        "actions-acme-path",
        "actions-acme-absolute",
        "actions-acme-region",
        "actions-acme-payload",
    ] {
        xtask::new_destination::scaffold(&root, slug).unwrap_or_else(|err| panic!("{err:#}"));
    }
    edit(
        &root,
        "acme_absolute",
        "send_event.yaml",
        "path: v1/send_event",
        "url: https://hooks.example.net/v2/collect",
    );
    // A URL built from a setting: a required `region` chooses the host.
    edit(
        &root,
        "acme_region",
        "destination.yaml",
        "settings:\n",
        "settings:\n  region:\n    label: Region\n    type: string\n    required: true\n    description: The region of the account, such as eu or us.\n",
    );
    edit(
        &root,
        "acme_region",
        "send_event.yaml",
        "path: v1/send_event",
        r#"url: {"@template": "https://{{settings.region}}.api.example.com/v1/send_event"}"#,
    );
    // A URL built from the payload: the user's id is a path segment.
    edit(
        &root,
        "acme_payload",
        "send_event.yaml",
        "path: v1/send_event",
        r#"url: {"@template": "https://api.example.com/v1/users/{{payload.userId}}/events"}"#,
    );
    codegen::run(&root, Mode::Write).unwrap_or_else(|err| panic!("{err:#}"));

    // Build the binary with them, as `cargo build` would for the user.
    let target = work.join("target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--offline",
            "--locked",
            "-p",
            "actionkit",
        ])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the binary does not build with the new destinations:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let binary = target
        .join("debug")
        .join(format!("actionkit{}", std::env::consts::EXE_SUFFIX));

    let events = [
        json!({"type": "track", "userId": "user-1", "event": "Signed Up"}),
        json!({"type": "identify", "userId": "user-1"}),
        json!({"type": "track", "userId": "user-2", "event": "Upgraded"}),
    ];
    let key = ["--setting", "apiKey=s3cr3t-key"];
    let cases: [(&str, &[&str], [&str; 2]); 4] = [
        (
            "actions-acme-path",
            &[],
            [
                "https://api.example.com/v1/send_event",
                "https://api.example.com/v1/send_event",
            ],
        ),
        (
            "actions-acme-absolute",
            &[],
            [
                "https://hooks.example.net/v2/collect",
                "https://hooks.example.net/v2/collect",
            ],
        ),
        (
            "actions-acme-region",
            &["--setting", "region=eu"],
            [
                "https://eu.api.example.com/v1/send_event",
                "https://eu.api.example.com/v1/send_event",
            ],
        ),
        (
            "actions-acme-payload",
            &[],
            [
                "https://api.example.com/v1/users/user-1/events",
                "https://api.example.com/v1/users/user-2/events",
            ],
        ),
    ];
    for (slug, extra, urls) in cases {
        let mut args = vec!["--destination", slug];
        args.extend(key);
        args.extend(extra);
        let requests = dry_run(&binary, &args, &events);
        assert_eq!(
            requests,
            vec![
                request(urls[0], "user-1"),
                // The preset's trigger is `type = "track"`: an identify call sends nothing.
                json!([]),
                request(urls[1], "user-2"),
            ],
            "{slug}"
        );
    }

    // A required setting left out stops the run before anything is built, naming where it
    // comes from.
    let output = Command::new(&binary)
        .args(["send", "--dry-run", "--destination", "actions-acme-region"])
        .args(key)
        .arg("-")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success()
            && stderr.contains("region")
            && stderr.contains("--setting")
            && stderr.contains("ACME_REGION_REGION"),
        "{stderr}"
    );
}
