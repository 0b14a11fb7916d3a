//! Helpers shared by the xtask integration tests: paths, file copies and compile checks.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn repo_root() -> PathBuf {
    xtask::project_root()
}

/// A file of the read-only reference material beside the repository, if it is there.
pub fn reference_file(name: &str) -> Option<PathBuf> {
    let path = repo_root().parent()?.join("shared/reference").join(name);
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "skipping: the reference file {} is absent (it lives in shared/reference beside the repository)",
            path.display()
        );
        None
    }
}

/// Copies the directory tree `from` into `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    copy_dir_except(from, to, &[]);
}

/// Copies the directory tree `from` into `to`, leaving out every directory named in `skip`
/// (at any depth) and anything that is neither a file nor a directory.
pub fn copy_dir_except(from: &Path, to: &Path, skip: &[&str]) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            if !skip.iter().any(|name| entry.file_name() == *name) {
                copy_dir_except(&entry.path(), &target, skip);
            }
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Copies the destinations' YAML (`actions/`) and their hand-written hooks, which `validate`
/// checks the YAML's hook names against, from the repository into `work`.
pub fn copy_destinations(work: &Path) {
    let root = repo_root();
    for dir in ["actions", "crates/destinations/src/hooks"] {
        copy_dir(&root.join(dir), &work.join(dir));
    }
}

/// Compares `actual` with the committed snapshot at `path`; `UPDATE_SNAPSHOTS=1` rewrites it.
pub fn assert_snapshot(path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|err| {
        panic!(
            "cannot read the snapshot {} ({err}); run with UPDATE_SNAPSHOTS=1 to create it",
            path.display()
        )
    });
    if expected != actual {
        pretty_assertions::assert_eq!(
            expected,
            actual,
            "the snapshot {} is stale; run the test with UPDATE_SNAPSHOTS=1 and review the diff",
            path.display()
        );
    }
}

/// The target directory nested compile checks build in: a subdirectory of the workspace's target
/// directory, so the nested cargo never waits for the lock of the cargo running the tests, and its
/// compiled dependencies are kept between runs.
fn check_target_dir() -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    base.join("xtask-compile-check")
}

/// Builds a throwaway crate from generated modules and hand-written hooks, and runs
/// `cargo check` on it with every warning denied. SLOW the first time (it checks the runtime's
/// dependencies once into `target/xtask-compile-check`).
///
/// `generated` and `hooks` are (file name, contents) pairs placed in `src/generated/` and
/// `src/hooks/`.
pub fn cargo_check_generated(generated: &[(String, String)], hooks: &[(String, String)]) {
    let root = repo_root();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let manifest = format!(
        r#"[package]
name = "codegen-compile-check"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
actionkit-runtime = {{ path = "{runtime}" }}
serde = {{ version = "1", features = ["derive"] }}
serde_json = {{ version = "1", features = ["preserve_order"] }}

[workspace]
"#,
        runtime = root
            .join("crates/runtime")
            .display()
            .to_string()
            .replace('\\', "/"),
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    std::fs::create_dir_all(dir.join("src/generated")).unwrap();
    std::fs::create_dir_all(dir.join("src/hooks")).unwrap();
    std::fs::write(
        dir.join("src/lib.rs"),
        "//! Compile check of generated destination code.\n#![deny(warnings)]\n#![warn(missing_docs)]\n\npub mod generated;\npub mod hooks;\n",
    )
    .unwrap();
    for (name, text) in generated {
        std::fs::write(dir.join("src/generated").join(name), text).unwrap();
    }
    let mut hooks_mod = String::from("//! Hand-written hooks.\n");
    for (name, text) in hooks {
        std::fs::write(dir.join("src/hooks").join(name), text).unwrap();
        if name != "mod.rs" {
            hooks_mod.push_str(&format!("pub mod {};\n", name.trim_end_matches(".rs")));
        }
    }
    std::fs::write(dir.join("src/hooks/mod.rs"), hooks_mod).unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["check", "--quiet", "--offline", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", check_target_dir())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the generated code does not compile cleanly:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
