//! SLOW tests: generated Rust is compiled, not only diffed.
//!
//! Each test writes generated modules into a throwaway crate and runs `cargo check` on it with
//! every warning denied. The first run checks the runtime's dependencies into
//! `target/xtask-compile-check` (a minute or more); later runs reuse them.

mod support;

use xtask::codegen::{self, from_spec, rust};
use xtask::fs::Mode;

fn fixture_root() -> std::path::PathBuf {
    support::repo_root().join("xtask/tests/fixtures/awkward")
}

#[test]
fn slow_awkward_fixture_matches_its_snapshot_and_compiles() {
    let dests = from_spec::load_all(&fixture_root()).unwrap_or_else(|err| panic!("{err:#}"));
    assert_eq!(dests.len(), 1);
    let module = rust::destination_module(&dests[0]).unwrap();
    let registry = rust::registry_module(&dests).unwrap();
    support::assert_snapshot(&fixture_root().join("expected/awkward.rs"), &module);
    support::assert_snapshot(&fixture_root().join("expected/mod.rs"), &registry);

    // The awkward names became valid, distinct identifiers with serde renames to the YAML keys.
    for needle in [
        "pub r#type: ::std::string::String",
        "rename = \"user-name\"",
        "pub user_name: ::core::option::Option<::std::string::String>",
        "rename = \"userName\"",
        "pub user_name_2: ::core::option::Option<::std::string::String>",
        "rename = \"3d\"",
        "pub _3d: ::core::option::Option<f64>",
        "pub self_: ::core::option::Option<bool>",
        "pub r#async: ::core::option::Option<::std::vec::Vec<i64>>",
        "pub struct TypePayloadNested",
        "pub struct X3dModelPayload",
        ".field(\"crate_\", &\"[redacted]\")",
        ".field(\"api_key\", &\"[redacted]\")",
        // The beyond-Segment action `loop`: both forms, its batch settings and an off preset.
        "pub struct LoopPayload",
        "beyond_segment: true",
        "busy_statuses: &[409u16, 423u16]",
        "response_id: ::core::option::Option::Some(\"job_id\")",
        "keys: &[\"user-name\"]",
        "enabled: false",
    ] {
        assert!(
            module.contains(needle),
            "the generated module lacks `{needle}`:\n{module}"
        );
    }

    let hooks =
        std::fs::read_to_string(fixture_root().join("crates/destinations/src/hooks/awkward.rs"))
            .unwrap();
    support::cargo_check_generated(
        &[
            ("awkward.rs".to_owned(), module),
            ("mod.rs".to_owned(), registry),
        ],
        &[("awkward.rs".to_owned(), hooks)],
    );
}

#[test]
fn slow_new_action_is_scaffolded_generated_documented_and_compiles() {
    let root = support::repo_root();
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    support::copy_destinations(work);
    for dir in [
        rust::GENERATED_DIR,
        "docs/destinations",
        "catalog",
        "schemas",
    ] {
        support::copy_dir(&root.join(dir), &work.join(dir));
    }
    codegen::run(work, Mode::Check).expect("the copy starts fresh");

    let files = xtask::new_action::scaffold(
        work,
        "userpilot",
        "sendThing",
        xtask::new_action::Options::default(),
    )
    .unwrap();
    assert!(work.join(&files.action).is_file());
    assert!(work.join(&files.test_case).is_file());

    // The committed output is now stale, and the check names the files and the command.
    let err = codegen::run(work, Mode::Check).unwrap_err().to_string();
    assert!(
        err.starts_with("generated files are stale; run `cargo codegen`"),
        "{err}"
    );
    for stale in [
        "crates/destinations/src/generated/userpilot.rs (changed)",
        "docs/destinations/actions-userpilot-cloud.md (changed)",
        "catalog/actions-userpilot-cloud.yml (changed)",
    ] {
        assert!(err.contains(stale), "{err}");
    }

    codegen::run(work, Mode::Write).unwrap();
    codegen::run(work, Mode::Check).expect("fresh after regenerating");

    let page =
        std::fs::read_to_string(work.join("docs/destinations/actions-userpilot-cloud.md")).unwrap();
    assert!(page.contains("\n### Send Thing\n"), "{page}");
    assert!(page.contains("- [Send Thing](#send-thing)"), "{page}");
    assert!(
        page.contains(
            "Send Thing is a **Cloud** action. The default Trigger is: `type = \"track\"`"
        )
    );
    let catalog =
        std::fs::read_to_string(work.join("catalog/actions-userpilot-cloud.yml")).unwrap();
    assert!(catalog.contains("slug: sendThing"), "{catalog}");

    let generated_dir = work.join(rust::GENERATED_DIR);
    let mut generated = Vec::new();
    for entry in std::fs::read_dir(&generated_dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        generated.push((name, std::fs::read_to_string(entry.path()).unwrap()));
    }
    let module = &generated
        .iter()
        .find(|(name, _)| name == "userpilot.rs")
        .unwrap()
        .1;
    assert!(module.contains("pub struct SendThingPayload"), "{module}");
    assert!(module.contains("key: \"sendThing\""), "{module}");
    let hooks_dir = root.join("crates/destinations/src/hooks");
    let mut hooks = Vec::new();
    for entry in std::fs::read_dir(&hooks_dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != "mod.rs" {
            hooks.push((name, std::fs::read_to_string(entry.path()).unwrap()));
        }
    }
    support::cargo_check_generated(&generated, &hooks);
}
