//! The committed generated files: fresh, and equal to Segment's reference on what Segment's docs
//! read (the catalog entry) and render (the docs page's sections, tables and rows).
//!
//! Beyond-Segment actions stay out of that comparison by construction: the catalog entry leaves
//! them out (they are listed in `catalog/<slug>.beyond-segment.yml`), and the docs page renders
//! them after every section of Segment's page. The tests check both, on the committed files and
//! on a copy of the destination with a scaffolded beyond-Segment batch action.

mod support;

use serde_json::Value;
use xtask::codegen::{self, catalog, docs, from_spec};
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
    entry_of(&text, &path.display().to_string())
}

/// The one entry of a catalog file's text.
fn entry_of(text: &str, name: &str) -> Value {
    let docs = catalog::yaml_to_json(text).unwrap();
    assert_eq!(docs.len(), 1, "{name} holds one document");
    match &docs[0] {
        Value::Array(entries) if entries.len() == 1 => entries[0].clone(),
        other => panic!("{name} is not a one-entry list: {other}"),
    }
}

/// The beyond-Segment listing's text as JSON.
fn listing_of(text: &str, name: &str) -> Value {
    let docs = catalog::yaml_to_json(text).unwrap();
    assert_eq!(docs.len(), 1, "{name} holds one document");
    docs[0].clone()
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
    assert_catalog_matches(&ours, &reference);
}

#[test]
fn webhook_catalog_export_matches_segments_entry() {
    let reference = load_yaml(
        &support::repo_root().join("xtask/tests/fixtures/segment-catalog/actions-webhook.yml"),
    );
    let ours = load_yaml(&support::repo_root().join("catalog/actions-webhook.yml"));
    assert_catalog_matches(&ours, &reference);
}

/// Our catalog entry equals Segment's: the same keys (no more), the same values, the same
/// actions in the same order with the same fields.
fn assert_catalog_matches(ours: &Value, reference: &Value) {
    let (Value::Object(reference), Value::Object(ours)) = (reference, ours) else {
        panic!("catalog entries must be objects");
    };
    let keys = |map: &serde_json::Map<String, Value>| map.keys().cloned().collect::<Vec<_>>();
    let mut our_keys = keys(ours);
    let mut ref_keys = keys(reference);
    our_keys.sort();
    ref_keys.sort();
    pretty_assertions::assert_eq!(our_keys, ref_keys, "the entry's keys are Segment's");
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
        assert_eq!(
            actual.as_object().unwrap().len(),
            expected.as_object().unwrap().len(),
            "action {slug} has Segment's keys and no more"
        );
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
            // No key Segment's field lacks, but `hidden`, which its catalog prints for some
            // actions' fields and not for others.
            for key in our_field.as_object().unwrap().keys() {
                assert!(
                    key == "hidden" || ref_field.get(key).is_some(),
                    "action {slug} field {} has `{key}`, which Segment's has not",
                    ref_field["fieldKey"]
                );
            }
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
    assert_page_matches(&ours, &entry, &reference_page);
}

/// The page's Segment part (from the title to the last section of Segment's page) has Segment's
/// sections, tables and rows, and our own sections (the beyond-Segment actions among them) only
/// follow it.
fn assert_page_matches(ours: &str, entry: &Value, reference_page: &str) {
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

    let actual = sections(ours);
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
fn committed_beyond_segment_actions_are_listed_apart_and_marked() {
    let root = support::repo_root();
    let entry = load_yaml(&root.join("catalog/actions-userpilot-cloud.yml"));
    let listing_path = root.join("catalog/actions-userpilot-cloud.beyond-segment.yml");
    let listing = listing_path.is_file().then(|| {
        let text = std::fs::read_to_string(&listing_path).unwrap();
        listing_of(&text, &listing_path.display().to_string())
    });
    let page =
        std::fs::read_to_string(root.join("docs/destinations/actions-userpilot-cloud.md")).unwrap();
    assert_beyond_segment_apart(&page, &entry, listing.as_ref());
}

/// A beyond-Segment batch action scaffolded into a copy of the destination, with a preset that is
/// off: the catalog entry and the docs page's Segment part stay Segment's, and the action and its
/// preset are listed apart and marked, the batch form included.
#[test]
fn a_scaffolded_beyond_segment_batch_action_stays_out_of_segments_part() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    support::copy_destinations(work);
    let options = xtask::new_action::Options {
        batch: true,
        beyond_segment: true,
    };
    xtask::new_action::scaffold(work, "userpilot", "sendThings", options).unwrap();
    let dest_yaml = work.join("actions/userpilot/destination.yaml");
    let preset = "  - name: Send Things\n    action: sendThings\n    trigger: type = \"track\"\n    \
                  mapping: defaults\n";
    let with_preset = |extra: &str| {
        let text = std::fs::read_to_string(&dest_yaml).unwrap();
        let at = text
            .find("\ntest_authentication:")
            .expect("destination.yaml has test_authentication after its presets");
        format!("{}\n{preset}{extra}{}", &text[..at], &text[at..])
    };

    // Without `enabled: false` the preset is refused, at the preset, naming the action's file.
    let original = std::fs::read_to_string(&dest_yaml).unwrap();
    std::fs::write(&dest_yaml, with_preset("")).unwrap();
    let err = xtask::validate::run(work).unwrap_err().to_string();
    assert!(
        err.contains("preset 'Send Things' of the beyond-Segment action 'sendThings' is enabled"),
        "{err}"
    );
    assert!(
        err.contains("expected: enabled: false, so that Segment's behaviour stays the default"),
        "{err}"
    );
    assert!(
        err.contains("'sendThings' is declared beyond Segment at"),
        "{err}"
    );
    std::fs::write(&dest_yaml, original).unwrap();
    std::fs::write(&dest_yaml, with_preset("    enabled: false\n")).unwrap();
    xtask::validate::run(work).expect("the scaffolded action and its preset validate");

    let dests = from_spec::load_all(work).unwrap_or_else(|err| panic!("{err:#}"));
    let files = codegen::generate(&dests).unwrap();
    let contents = |path: &str| {
        files
            .iter()
            .find(|file| file.path == std::path::Path::new(path))
            .map(|file| file.contents.clone())
            .unwrap_or_else(|| panic!("{path} is not generated"))
    };
    let entry = entry_of(&contents("catalog/actions-userpilot-cloud.yml"), "catalog");
    let listing = listing_of(
        &contents("catalog/actions-userpilot-cloud.beyond-segment.yml"),
        "listing",
    );
    let page = contents("docs/destinations/actions-userpilot-cloud.md");
    assert_beyond_segment_apart(&page, &entry, Some(&listing));
    let slugs: Vec<&Value> = listing["beyondSegment"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|action| &action["slug"])
        .collect();
    assert!(slugs.contains(&&Value::from("sendThings")), "{slugs:?}");

    // The batch form is rendered under the action, in the request's bullet style.
    let actual = sections(&page);
    let section = actual
        .iter()
        .find(|s| s.heading == "### Send Things (Beyond Segment)")
        .unwrap_or_else(|| panic!("no section for Send Things in {page}"));
    for line in [
        "**Request**",
        "- Method and path: `POST v1/send_things`, one per event",
        "**Batch request**",
        "- Used for: events whose `enable_batching` field is true; the others are sent one by one",
        "- Method and path: `POST v1/send_things/batch`, one per batch",
        "- Max items: 100 events per request",
        "- Max bytes: 1000000 bytes per request body",
        "- Wait: 1000 ms after its first event before a batch that is not full is sent",
        "- Batch keys: none",
    ] {
        assert!(
            section.lines.iter().any(|l| l == line),
            "`{line}` under Send Things: {:?}",
            section.lines
        );
    }

    // Segment's part is still Segment's page.
    if let (Some(page_path), Some(catalog_path)) = (
        support::reference_file("userpilot-cloud-actions.md"),
        support::reference_file("segment-catalog-userpilot-cloud.yml"),
    ) {
        let reference = load_yaml(&catalog_path);
        assert_catalog_matches(&entry, &reference);
        let reference_page = std::fs::read_to_string(page_path).unwrap();
        assert_page_matches(&page, &reference, &reference_page);
    }
}

/// Beyond-Segment actions and presets are in the listing, not in the catalog entry, and on the
/// docs page only in the last section, `## Beyond Segment Actions`, each action marked and each
/// preset off.
fn assert_beyond_segment_apart(page: &str, entry: &Value, listing: Option<&Value>) {
    let entry_actions = entry["actions"].as_array().unwrap();
    let entry_ids: Vec<&Value> = entry_actions.iter().map(|a| &a["id"]).collect();
    for preset in entry["presets"].as_array().unwrap() {
        assert!(
            entry_ids.contains(&&preset["actionId"]),
            "the entry's preset {} runs one of the entry's actions",
            preset["name"]
        );
    }
    let actual = sections(page);
    let beyond_at = actual
        .iter()
        .position(|s| s.heading == docs::BEYOND_SEGMENT_HEADING);
    let Some(listing) = listing else {
        assert_eq!(
            beyond_at, None,
            "no beyond-Segment section without beyond-Segment actions"
        );
        assert!(!page.contains(docs::BEYOND_SEGMENT_MARKER), "{page}");
        return;
    };
    let actions = listing["beyondSegment"]["actions"].as_array().unwrap();
    let presets = listing["beyondSegment"]["presets"].as_array().unwrap();
    assert!(!actions.is_empty(), "the listing exists only with actions");
    let beyond_at =
        beyond_at.unwrap_or_else(|| panic!("the page lacks `{}`", docs::BEYOND_SEGMENT_HEADING));
    assert!(
        actual[beyond_at + 1..]
            .iter()
            .all(|s| s.heading.starts_with("### ")),
        "the beyond-Segment section comes last: {:?}",
        actual.iter().map(|s| &s.heading).collect::<Vec<_>>()
    );
    let (segment_part, beyond_part) = actual.split_at(beyond_at);
    assert!(
        !segment_part
            .iter()
            .any(|s| s.heading.contains(docs::BEYOND_SEGMENT_MARKER)),
        "no marked heading in Segment's part"
    );

    let beyond_lines = &beyond_part[0].lines;
    for action in actions {
        let name = text(&action["name"]);
        assert!(
            !entry_ids.contains(&&action["id"]),
            "{name} is left out of the catalog entry"
        );
        // Left out of Segment's part: no heading, link or preset row names it.
        for section in segment_part {
            assert_ne!(
                section.heading,
                format!("### {name}"),
                "{name} in Segment's part"
            );
            assert!(
                !section
                    .lines
                    .iter()
                    .any(|l| l.starts_with(&format!("- [{name}]("))),
                "link to {name} in Segment's part"
            );
            assert!(
                !section.rows.iter().any(|row| row.get(2) == Some(&name)),
                "preset of {name} in Segment's part"
            );
        }
        // Marked in the beyond-Segment section: heading, link and the sentence.
        let heading = format!("{name} {}", docs::BEYOND_SEGMENT_MARKER);
        let anchor = docs::anchor(&heading);
        assert!(
            beyond_lines.contains(&format!("- [{heading}](#{anchor})")),
            "link to {heading}: {beyond_lines:?}"
        );
        let section = beyond_part
            .iter()
            .find(|s| s.heading == format!("### {heading}"))
            .unwrap_or_else(|| panic!("no section `### {heading}`"));
        assert!(
            section
                .lines
                .first()
                .is_some_and(|l| l.starts_with("**Beyond Segment.**")),
            "{heading} starts with the Beyond Segment sentence: {:?}",
            section.lines
        );
    }
    for preset in presets {
        assert_eq!(
            preset["enabled"],
            Value::Bool(false),
            "beyond-Segment preset {} is off",
            preset["name"]
        );
        assert!(
            actions.iter().any(|a| a["id"] == preset["actionId"]),
            "beyond-Segment preset {} runs a beyond-Segment action",
            preset["name"]
        );
        let name = text(&preset["name"]);
        let row = beyond_part[0]
            .rows
            .iter()
            .find(|row| row.first() == Some(&name))
            .unwrap_or_else(|| panic!("no preset row for {name}"));
        assert_eq!(row.last().map(String::as_str), Some("Off"), "{row:?}");
    }
    if !presets.is_empty() {
        assert_eq!(
            beyond_part[0].rows.first(),
            Some(&strings(&[
                "Preset Name",
                "Trigger",
                "Default Action",
                "Default State"
            ]))
        );
    }
}

/// The awkward fixture's docs page and catalog files, pinned: Segment's part, then its
/// beyond-Segment action `loop` with both forms, whose request and batch form are listed.
#[test]
fn awkward_fixture_docs_and_catalog_match_their_snapshots() {
    let fixture = support::repo_root().join("xtask/tests/fixtures/awkward");
    let dests = from_spec::load_all(&fixture).unwrap_or_else(|err| panic!("{err:#}"));
    let files = codegen::generate(&dests).unwrap();
    for (generated, snapshot) in [
        ("docs/destinations/actions-awkward.md", "awkward.md"),
        ("catalog/actions-awkward.yml", "awkward.yml"),
        (
            "catalog/actions-awkward.beyond-segment.yml",
            "awkward.beyond-segment.yml",
        ),
    ] {
        let file = files
            .iter()
            .find(|file| file.path == std::path::Path::new(generated))
            .unwrap_or_else(|| panic!("{generated} is not generated"));
        support::assert_snapshot(&fixture.join("expected").join(snapshot), &file.contents);
    }
    let page = &files
        .iter()
        .find(|file| file.path == std::path::Path::new("docs/destinations/actions-awkward.md"))
        .unwrap()
        .contents;
    let entry = entry_of(
        &files
            .iter()
            .find(|file| file.path == std::path::Path::new("catalog/actions-awkward.yml"))
            .unwrap()
            .contents,
        "awkward catalog",
    );
    let listing = listing_of(
        &files
            .iter()
            .find(|file| {
                file.path == std::path::Path::new("catalog/actions-awkward.beyond-segment.yml")
            })
            .unwrap()
            .contents,
        "awkward listing",
    );
    assert_beyond_segment_apart(page, &entry, Some(&listing));
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
