//! `cargo xtask validate` and `cargo codegen` report every problem and generate nothing.

mod support;

use xtask::fs::Mode;

#[test]
fn invalid_yaml_fails_validation_and_codegen_with_every_diagnostic() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    support::copy_destinations(work);
    let path = work.join("actions/userpilot/identify_user.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replacen("    label: User ID", "    lable: User ID", 1),
    )
    .unwrap();
    let track = work.join("actions/userpilot/track_event.yaml");
    let text = std::fs::read_to_string(&track).unwrap();
    std::fs::write(
        &track,
        text.replacen("type = \"track\"", "type = = \"track\"", 1),
    )
    .unwrap();

    let err = xtask::validate::run(work).unwrap_err().to_string();
    assert!(
        err.contains("--> actions/userpilot/identify_user.yaml:"),
        "{err}"
    );
    assert!(err.contains("did you mean 'label'?"), "{err}");
    assert!(
        err.contains("actions/userpilot/track_event.yaml:"),
        "both files are reported: {err}"
    );
    assert!(err.contains("nothing was generated"), "{err}");

    let err = xtask::codegen::run(work, Mode::Write)
        .unwrap_err()
        .to_string();
    assert!(err.contains("did you mean 'label'?"), "{err}");
    assert!(
        !work.join("crates/destinations/src/generated").exists(),
        "nothing is written when validation fails"
    );
    assert!(
        !work.join("docs").exists(),
        "nothing is written when validation fails"
    );
}
