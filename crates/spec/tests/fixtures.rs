//! Runs every invalid fixture under `tests/fixtures/invalid/` and compares the rendered
//! diagnostics with the `<name>.expected.txt` file next to it.
//!
//! A fixture's first line says where it goes in the Userpilot destination:
//! `# fixture: replaces <file>` swaps one of `actions/userpilot/*.yaml` for the fixture, so each
//! fixture is checked in the context of a real destination. Set `UPDATE_EXPECT=1` to rewrite the
//! expected files after an intended change, then review the diff.

use std::fs;
use std::path::{Path, PathBuf};

use actionkit_spec::{FileKind, SourceFile, load_files};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Userpilot destination's files, named relative to the workspace root.
fn userpilot_files() -> Vec<SourceFile> {
    let dir = workspace_root().join("actions/userpilot");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .expect("actions/userpilot is readable")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    names.sort();
    names.sort_by_key(|name| name != "destination.yaml");
    names
        .into_iter()
        .map(|name| SourceFile {
            kind: if name == "destination.yaml" {
                FileKind::Destination
            } else {
                FileKind::Action
            },
            text: fs::read_to_string(dir.join(&name)).expect("fixture context is readable"),
            name: format!("actions/userpilot/{name}"),
        })
        .collect()
}

#[test]
fn the_userpilot_destination_loads_as_fixture_context() {
    let loaded = load_files(&userpilot_files()).unwrap_or_else(|d| panic!("{d}"));
    let n_segment = loaded
        .actions
        .iter()
        .filter(|action| !action.spec.beyond_segment)
        .count();
    assert_eq!(n_segment, 3, "Segment's three actions");
}

#[test]
fn invalid_fixtures_render_the_pinned_diagnostics() {
    let dir = workspace_root().join("crates/spec/tests/fixtures/invalid");
    let update = std::env::var_os("UPDATE_EXPECT").is_some_and(|v| v == "1");
    let mut fixtures: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("fixture directory is readable")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    fixtures.sort();
    assert!(
        fixtures.len() >= 15,
        "expected at least 15 fixtures, found {}",
        fixtures.len()
    );
    let mut failures = Vec::new();
    for path in &fixtures {
        let file_name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let text = fs::read_to_string(path).expect("fixture is readable");
        let target = text
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("# fixture: replaces "))
            .unwrap_or_else(|| {
                panic!("{file_name}: first line must be `# fixture: replaces <file>`")
            })
            .trim()
            .to_owned();
        let fixture_name = format!("crates/spec/tests/fixtures/invalid/{file_name}");
        let mut files = userpilot_files();
        let slot = files
            .iter_mut()
            .find(|file| file.name == format!("actions/userpilot/{target}"))
            .unwrap_or_else(|| panic!("{file_name}: no actions/userpilot/{target} to replace"));
        slot.name = fixture_name.clone();
        slot.text = text;
        let diagnostics = match load_files(&files) {
            Ok(_) => {
                failures.push(format!("{file_name}: loaded without errors"));
                continue;
            }
            Err(diagnostics) => diagnostics,
        };
        let mentions_fixture = |d: &actionkit_spec::Diagnostic| {
            d.file == fixture_name || d.note.as_deref().is_some_and(|n| n.contains(&fixture_name))
        };
        if !diagnostics.iter().any(mentions_fixture) {
            failures.push(format!(
                "{file_name}: no diagnostic points into the fixture"
            ));
        }
        let rendered = format!("{diagnostics}\n");
        let expected_path = path.with_extension("expected.txt");
        if update {
            fs::write(&expected_path, &rendered).expect("expected file is writable");
            continue;
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != rendered {
            failures.push(format!(
                "{file_name}: rendering differs from {}\n--- expected\n{expected}\n--- actual\n{rendered}",
                expected_path.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n\nrun `UPDATE_EXPECT=1 cargo test -p actionkit-spec --test fixtures` to accept intended changes",
        failures.join("\n\n")
    );
}
