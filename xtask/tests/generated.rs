//! The committed generated files: fresh, and equal to Segment's reference on what Segment's docs
//! read (the catalog entry) and render (the docs page's sections, tables and rows).

mod support;

use serde_json::Value;
use xtask::codegen::{self, catalog, from_spec};
use xtask::fs::{Mode, StaleError, sync};

#[test]
fn committed_generated_files_are_fresh() {
    let root = support::repo_root();
    let dests = from_spec::load_all(&root).unwrap_or_else(|err| panic!("{err:#}"));
    let files = codegen::generate(&dests).unwrap();
    let report = sync(&root, &files, codegen::OWNED_DIRS, Mode::Check).unwrap();
    if !report.is_fresh() {
        panic!(
            "{}",
            StaleError {
                stale: report.stale
            }
        );
    }
}

fn load_yaml(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    let docs = catalog::yaml_to_json(&text).unwrap();
    assert_eq!(docs.len(), 1, "{} holds one document", path.display());
    match &docs[0] {
        Value::Array(entries) if entries.len() == 1 => entries[0].clone(),
        other => panic!("{} is not a one-entry list: {other}", path.display()),
    }
}

/// The catalog keys each action field is compared on (every key Segment's docs include reads).
const FIELD_KEYS: &[&str] = &[
    "id",
    "sortOrder",
    "fieldKey",
    "label",
    "type",
    "description",
    "placeholder",
    "defaultValue",
    "required",
    "multiple",
    "choices",
    "dynamic",
    "allowNull",
];

#[test]
fn catalog_export_matches_the_reference_entry() {
    let Some(reference_path) = support::reference_file("segment-catalog-userpilot-cloud.yml")
    else {
        return;
    };
    let reference = load_yaml(&reference_path);
    let ours = load_yaml(&support::repo_root().join("catalog/actions-userpilot-cloud.yml"));
    let (Value::Object(reference), Value::Object(ours)) = (&reference, &ours) else {
        panic!("catalog entries must be objects");
    };
    for (key, expected) in reference {
        if key == "actions" {
            continue;
        }
        pretty_assertions::assert_eq!(ours.get(key), Some(expected), "catalog key `{key}`");
    }
    let ref_actions = reference["actions"].as_array().unwrap();
    let our_actions = ours["actions"].as_array().unwrap();
    let slugs = |actions: &[Value]| {
        actions
            .iter()
            .map(|a| a["slug"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        slugs(our_actions),
        slugs(ref_actions),
        "actions and their order"
    );
    for (expected, actual) in ref_actions.iter().zip(our_actions) {
        let slug = &expected["slug"];
        for (key, value) in expected.as_object().unwrap() {
            if key != "fields" {
                pretty_assertions::assert_eq!(
                    actual.get(key),
                    Some(value),
                    "action {slug} key `{key}`"
                );
            }
        }
        let ref_fields = expected["fields"].as_array().unwrap();
        let our_fields = actual["fields"].as_array().unwrap();
        assert_eq!(
            our_fields.len(),
            ref_fields.len(),
            "action {slug} field count"
        );
        for (ref_field, our_field) in ref_fields.iter().zip(our_fields) {
            for key in FIELD_KEYS.iter().chain(["hidden"].iter()) {
                // The reference omits `hidden` on some actions' fields; compare it where present.
                let Some(value) = ref_field.get(*key) else {
                    continue;
                };
                pretty_assertions::assert_eq!(
                    our_field.get(*key),
                    Some(value),
                    "action {slug} field {} key `{key}`",
                    ref_field["fieldKey"]
                );
            }
        }
    }
}

/// One heading of a Markdown page with the table rows below it (before the next heading).
#[derive(Debug, PartialEq)]
struct Section {
    heading: String,
    rows: Vec<Vec<String>>,
    lines: Vec<String>,
}

fn sections(markdown: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    let mut in_fence = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        }
        if !in_fence && line.starts_with('#') {
            out.push(Section {
                heading: line.trim().to_owned(),
                rows: Vec::new(),
                lines: Vec::new(),
            });
            continue;
        }
        let Some(section) = out.last_mut() else {
            continue;
        };
        let trimmed = line.trim();
        if trimmed.starts_with('|') && !trimmed.starts_with("| ---") {
            let cells = trimmed
                .trim_matches('|')
                .split(" | ")
                .map(|cell| cell.trim().to_owned())
                .collect();
            section.rows.push(cells);
        } else if !trimmed.is_empty() {
            section.lines.push(trimmed.to_owned());
        }
    }
    out
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn strings(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|cell| (*cell).to_owned()).collect()
}

#[test]
fn docs_page_has_the_reference_sections_tables_and_rows() {
    let (Some(page_path), Some(catalog_path)) = (
        support::reference_file("userpilot-cloud-actions.md"),
        support::reference_file("segment-catalog-userpilot-cloud.yml"),
    ) else {
        return;
    };
    let reference_page = std::fs::read_to_string(page_path).unwrap();
    let entry = load_yaml(&catalog_path);
    let ours = std::fs::read_to_string(
        support::repo_root().join("docs/destinations/actions-userpilot-cloud.md"),
    )
    .unwrap();
    let display_name = text(&entry["display_name"]);

    // The expected sections: the reference page's headings with the include expanded by its rules.
    let mut expected: Vec<(String, Vec<Vec<String>>)> = Vec::new();
    let mut in_fence = false;
    for line in reference_page.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        }
        if !in_fence && line.starts_with("##") {
            expected.push((line.trim().to_owned(), Vec::new()));
        }
        if line.contains("components/actions-fields.html") {
            let mut settings = vec![strings(&["Setting", "Description"])];
            for setting in entry["settings"].as_array().unwrap() {
                let required = if setting["required"] == Value::Bool(true) {
                    "*Required.* "
                } else {
                    ""
                };
                settings.push(vec![
                    text(&setting["label"]),
                    format!("{required}{}", text(&setting["description"])),
                ]);
            }
            expected.push(("## Destination Settings".to_owned(), settings));
            let mut presets = vec![strings(&["Preset Name", "Trigger", "Default Action"])];
            for preset in entry["presets"].as_array().unwrap() {
                let action = entry["actions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|action| action["id"] == preset["actionId"])
                    .unwrap();
                presets.push(vec![
                    text(&preset["name"]),
                    format!("Event `{}`", text(&preset["trigger"])),
                    text(&action["name"]),
                ]);
            }
            expected.push(("## Available Presets".to_owned(), presets));
            expected.push(("## Available Actions".to_owned(), Vec::new()));
            for action in entry["actions"].as_array().unwrap() {
                let mut rows = vec![strings(&["Field", "Description"])];
                for field in action["fields"].as_array().unwrap() {
                    let star = if field["required"] == Value::Bool(true) {
                        "*"
                    } else {
                        ""
                    };
                    rows.push(vec![
                        format!("{}{star}", text(&field["label"])),
                        format!(
                            "Type: {}<br><br>{}",
                            text(&field["type"]),
                            text(&field["description"])
                        ),
                    ]);
                }
                expected.push((format!("### {}", text(&action["name"])), rows));
            }
        }
    }

    let actual = sections(&ours);
    assert_eq!(
        actual.first().map(|s| s.heading.as_str()),
        Some(format!("# {display_name} Destination").as_str())
    );
    let actual_headings: Vec<&str> = actual.iter().map(|s| s.heading.as_str()).collect();
    // Every reference section appears, in the reference order; sections of our own (such as the
    // documented differences from Segment) may only follow the last reference section.
    let mut positions = Vec::new();
    for (heading, _) in &expected {
        let pos = actual_headings
            .iter()
            .position(|h| h == heading)
            .unwrap_or_else(|| {
                panic!("the docs page lacks the section `{heading}`; it has {actual_headings:?}")
            });
        positions.push(pos);
    }
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "sections out of order: {actual_headings:?}"
    );
    // After the title, the reference sections come first and without gaps.
    assert_eq!(
        positions,
        (1..=expected.len()).collect::<Vec<_>>(),
        "extra sections among the reference ones: {actual_headings:?}"
    );
    for ((heading, rows), pos) in expected.iter().zip(&positions) {
        pretty_assertions::assert_eq!(&actual[*pos].rows, rows, "table rows under `{heading}`");
    }

    // The sentences the include renders around its tables.
    let lines_under = |heading: &str| {
        actual
            .iter()
            .find(|s| s.heading == heading)
            .unwrap()
            .lines
            .clone()
    };
    assert!(
        lines_under("## Available Presets")
            .contains(&format!("{display_name} has the following presets:"))
    );
    let short_name = display_name.trim_end_matches(" (Actions)");
    let actions_lines = lines_under("## Available Actions");
    assert!(actions_lines.contains(&format!(
        "Build your own Mappings. Combine supported triggers with the following {short_name}-supported actions:"
    )));
    for action in entry["actions"].as_array().unwrap() {
        let name = text(&action["name"]);
        let anchor = name.to_lowercase().replace(' ', "-");
        assert!(
            actions_lines.contains(&format!("- [{name}](#{anchor})")),
            "link to {name}"
        );
        let lines = lines_under(&format!("### {name}"));
        assert!(
            lines.contains(&text(&action["description"])),
            "description of {name}"
        );
        assert!(lines.contains(&format!(
            "{name} is a **Cloud** action. The default Trigger is: `{}`",
            text(&action["defaultTrigger"])
        )));
    }
}

#[test]
fn generated_files_name_their_generator_on_the_first_line() {
    let root = support::repo_root();
    let dests = from_spec::load_all(&root).unwrap();
    for file in codegen::generate(&dests).unwrap() {
        if file.path.extension().is_some_and(|ext| ext == "json") {
            // JSON has no comments: the note is the first key, `$comment`.
            let value: serde_json::Map<String, Value> =
                serde_json::from_str(&file.contents).unwrap();
            let (key, note) = value.iter().next().unwrap();
            assert_eq!(key, "$comment", "{}", file.path.display());
            assert!(
                note.as_str()
                    .unwrap()
                    .contains("@generated by `cargo codegen`. Do not edit by hand")
            );
            continue;
        }
        let first = file.contents.lines().next().unwrap_or_default();
        assert!(
            first.contains("@generated by `cargo codegen`")
                && first.contains("Do not edit by hand"),
            "{}: {first}",
            file.path.display()
        );
    }
}
