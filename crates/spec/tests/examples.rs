//! Every configuration in `examples/` loads: the files users copy first must not rot when the
//! configuration model changes. Subfolders hold other files (Prometheus rules in
//! `examples/prometheus/`), tested where they are used.

use actionkit_spec::config::load_config_str;

#[test]
fn every_example_configuration_loads() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("the example is readable");
        let name = path.display().to_string();
        // Every `${VAR}` an example uses gets a placeholder value.
        let loaded = load_config_str(&name, &text, |_| Some("placeholder".to_owned()));
        if let Err(problems) = loaded {
            panic!("{problems}");
        }
        seen += 1;
    }
    assert!(
        seen >= 2,
        "expected the example configurations in {}",
        dir.display()
    );
}
