//! The Userpilot destination loads, and agrees field by field with Segment's catalog entry
//! (`tests/data/segment-catalog-userpilot-cloud.yml`).

use std::path::Path;

use actionkit_spec::model::{PresetMapping, Required, SettingType};
use actionkit_spec::{LoadedDestination, load_destination_dir};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

fn userpilot() -> LoadedDestination {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../actions/userpilot");
    load_destination_dir(&dir).unwrap_or_else(|diagnostics| panic!("{diagnostics}"))
}

fn catalog() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/segment-catalog-userpilot-cloud.yml");
    let text = std::fs::read_to_string(path).expect("catalog test data is readable");
    let (value, _) = actionkit_spec::yaml::parse("catalog.yml", &text).expect("catalog parses");
    value[0].clone()
}

fn s(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected a string, got {value}"))
}

#[test]
fn destination_metadata_matches_the_catalog() {
    let loaded = userpilot();
    let cat = catalog();
    let dest = &loaded.destination;
    assert_eq!(dest.id, s(&cat["id"]));
    assert_eq!(dest.name, s(&cat["name"]));
    assert_eq!(dest.display_name, s(&cat["display_name"]));
    assert_eq!(dest.slug, s(&cat["slug"]));
    let meta = serde_json::to_value(&dest.catalog).expect("catalog metadata serializes");
    let camel = |key: &str| -> String {
        let mut out = String::new();
        let mut upper = false;
        for ch in key.chars() {
            if ch == '_' {
                upper = true;
            } else if upper {
                out.push(ch.to_ascii_uppercase());
                upper = false;
            } else {
                out.push(ch);
            }
        }
        out
    };
    for (key, value) in meta.as_object().expect("metadata is an object") {
        // The catalog keeps some keys snake_case and others camelCase.
        let found = cat
            .get(key)
            .or_else(|| cat.get(camel(key)))
            .unwrap_or_else(|| panic!("catalog has no {key}"));
        let mut ours = value.clone();
        if key == "platforms" {
            ours = json!({
                "browser": value["browser"], "mobile": value["mobile"], "server": value["server"],
                "warehouse": value["warehouse"], "cloudAppObject": value["cloud_app_object"],
                "linkedAudiences": value["linked_audiences"],
            });
        }
        assert_eq!(&ours, found, "catalog metadata {key}");
    }
    assert!(
        loaded
            .docs
            .as_deref()
            .is_some_and(|docs| docs.contains("## Differences from Segment"))
    );
}

#[test]
fn settings_match_the_catalog() {
    let loaded = userpilot();
    let cat = catalog();
    let settings = cat["settings"].as_array().expect("settings list");
    let ours: Vec<&String> = loaded.destination.settings.keys().collect();
    let theirs: Vec<&str> = settings.iter().map(|st| s(&st["name"])).collect();
    assert_eq!(ours, theirs);
    for setting in settings {
        let spec = &loaded.destination.settings[s(&setting["name"])];
        assert_eq!(spec.label, s(&setting["label"]));
        assert_eq!(spec.description, s(&setting["description"]));
        assert_eq!(
            spec.required,
            setting["required"].as_bool().unwrap_or_default()
        );
        assert_eq!(spec.default.as_ref(), Some(&setting["defaultValue"]));
        assert_eq!(spec.effective_catalog_type().as_str(), s(&setting["type"]));
    }
    let api_key = &loaded.destination.settings["apiKey"];
    assert_eq!(api_key.r#type, SettingType::Password);
    assert!(api_key.is_secret());
    assert!(!loaded.destination.settings["endpoint"].is_secret());
}

#[test]
fn actions_and_fields_match_the_catalog() {
    let loaded = userpilot();
    let cat = catalog();
    let actions = cat["actions"].as_array().expect("actions list");
    // Beyond-Segment actions are not in Segment's catalog; the others are, in its order.
    let order: Vec<&str> = loaded
        .actions
        .iter()
        .filter(|a| !a.spec.beyond_segment)
        .map(|a| a.spec.key.as_str())
        .collect();
    let catalog_order: Vec<&str> = actions.iter().map(|a| s(&a["slug"])).collect();
    assert_eq!(order, catalog_order);
    for beyond in loaded.actions.iter().filter(|a| a.spec.beyond_segment) {
        assert!(
            actions
                .iter()
                .all(|a| s(&a["id"]) != beyond.spec.id && s(&a["slug"]) != beyond.spec.key),
            "beyond-Segment action {} is not one of Segment's",
            beyond.spec.key
        );
    }
    for action in actions {
        let spec = loaded.action(s(&action["slug"])).expect("action exists");
        assert_eq!(spec.id, s(&action["id"]));
        assert_eq!(spec.name, s(&action["name"]));
        assert_eq!(spec.description, s(&action["description"]));
        assert_eq!(
            spec.default_trigger.as_deref(),
            Some(s(&action["defaultTrigger"]))
        );
        assert_eq!(spec.hidden, action["hidden"].as_bool().unwrap_or_default());
        let fields = action["fields"].as_array().expect("fields list");
        let keys: Vec<&String> = spec.fields.keys().collect();
        let mut sorted = fields.clone();
        sorted.sort_by_key(|f| f["sortOrder"].as_u64());
        let catalog_keys: Vec<&str> = sorted.iter().map(|f| s(&f["fieldKey"])).collect();
        assert_eq!(keys, catalog_keys, "field order of {}", spec.key);
        for field in fields {
            let key = s(&field["fieldKey"]);
            let ours = &spec.fields[key];
            let what = format!("{}.{key}", spec.key);
            assert_eq!(ours.id.as_deref(), Some(s(&field["id"])), "{what} id");
            assert_eq!(ours.label, s(&field["label"]), "{what} label");
            assert_eq!(
                ours.r#type.as_str().to_uppercase(),
                s(&field["type"]),
                "{what} type"
            );
            assert_eq!(
                ours.description.as_deref(),
                Some(s(&field["description"])),
                "{what} description"
            );
            assert_eq!(
                ours.placeholder.as_deref(),
                Some(s(&field["placeholder"])),
                "{what} placeholder"
            );
            assert_eq!(
                ours.default.as_ref(),
                Some(&field["defaultValue"]),
                "{what} default"
            );
            assert_eq!(
                ours.required,
                Some(Required::Always(
                    field["required"].as_bool().unwrap_or_default()
                )),
                "{what} required"
            );
            assert_eq!(
                ours.multiple,
                field["multiple"].as_bool(),
                "{what} multiple"
            );
            assert_eq!(ours.dynamic, field["dynamic"].as_bool(), "{what} dynamic");
            assert_eq!(
                ours.allow_null,
                field["allowNull"].as_bool(),
                "{what} allowNull"
            );
            assert_eq!(
                ours.hidden,
                field.get("hidden").and_then(Value::as_bool),
                "{what} hidden"
            );
            assert!(
                ours.choices.is_none() && field["choices"].is_null(),
                "{what} choices"
            );
        }
    }
}

#[test]
fn presets_match_the_catalog() {
    let loaded = userpilot();
    let cat = catalog();
    let presets = cat["presets"].as_array().expect("presets list");
    // Presets of beyond-Segment actions are not Segment's, and they are off.
    let (beyond, segment): (Vec<_>, Vec<_>) =
        loaded.destination.presets.iter().partition(|preset| {
            loaded
                .action(&preset.action)
                .is_some_and(|action| action.beyond_segment)
        });
    for preset in &beyond {
        assert!(
            !preset.enabled,
            "beyond-Segment preset {} is off",
            preset.name
        );
    }
    assert_eq!(segment.len(), presets.len());
    for (ours, theirs) in segment.iter().zip(presets) {
        assert!(ours.enabled, "Segment's preset {} is on", ours.name);
        assert_eq!(ours.name, s(&theirs["name"]));
        assert_eq!(ours.trigger, s(&theirs["trigger"]));
        let action = loaded.action(&ours.action).expect("preset action exists");
        assert_eq!(action.id, s(&theirs["actionId"]));
        assert_eq!(
            ours.mapping,
            PresetMapping::Defaults(actionkit_spec::model::DefaultsKeyword::Defaults)
        );
        let defaults: serde_json::Map<String, Value> = action
            .fields
            .iter()
            .filter_map(|(key, field)| field.default.clone().map(|d| (key.clone(), d)))
            .collect();
        assert_eq!(
            Value::Object(defaults),
            theirs["fields"],
            "preset {}",
            ours.name
        );
    }
}

#[test]
fn requests_follow_segments_userpilot_definition() {
    let loaded = userpilot();
    let dest = &loaded.destination;
    let defaults = dest.request_defaults.as_ref().expect("request defaults");
    assert_eq!(
        defaults.base_url,
        Some(json!({"@path": "$.settings.endpoint"}))
    );
    assert_eq!(
        serde_json::to_value(&defaults.headers).expect("headers serialize"),
        json!({
            "content-type": "application/json",
            "authorization": {"@template": "Token {{settings.apiKey}}"},
            "x-api-version": "2020-09-22"
        })
    );
    let auth = dest
        .test_authentication
        .as_ref()
        .expect("test authentication");
    assert_eq!(
        (
            auth.method.fixed().map_or("", |m| m.as_str()),
            auth.path.as_deref().unwrap_or(""),
            &auth.json
        ),
        ("GET", "v1/validate", &None)
    );
    let delete = dest.on_delete.as_ref().expect("on delete");
    assert_eq!(
        (
            delete.method.fixed().map_or("", |m| m.as_str()),
            delete.path.as_deref().unwrap_or("")
        ),
        ("DELETE", "v1/users")
    );
    assert_eq!(
        delete.json,
        Some(json!({"users": [{"@template": "{{payload.userId}}"}]}))
    );

    // Segment's actions send one request per payload; none of them is batched.
    let request_of = |key: &str| {
        let action = loaded
            .action(key)
            .unwrap_or_else(|| panic!("no action {key}"));
        assert!(!action.beyond_segment, "{key} is one of Segment's actions");
        assert_eq!(action.batch, None, "{key} has no batch form");
        action
            .request
            .clone()
            .unwrap_or_else(|| panic!("{key} sends a request"))
    };
    let identify = request_of("identifyUser");
    assert_eq!(
        (
            identify.method.fixed().map_or("", |m| m.as_str()),
            identify.path.as_deref().unwrap_or("")
        ),
        ("POST", "v1/identify")
    );
    assert_eq!(identify.hook.as_deref(), Some("created_at_metadata"));
    assert_eq!(
        identify.json,
        Some(
            json!({"user_id": {"@path": "$.payload.userId"}, "metadata": {"@path": "$.computed.metadata"}})
        )
    );
    let company = request_of("identifyCompany");
    assert_eq!(company.path.as_deref(), Some("v1/companies/identify"));
    assert_eq!(company.hook.as_deref(), Some("created_at_metadata"));
    assert_eq!(
        company.json,
        Some(
            json!({"company_id": {"@path": "$.payload.groupId"}, "metadata": {"@path": "$.computed.metadata"}})
        )
    );
    let track = request_of("trackEvent");
    assert_eq!(track.path.as_deref(), Some("v1/track"));
    assert_eq!(track.hook, None);
    assert_eq!(
        track.json,
        Some(json!({
            "user_id": {"@path": "$.payload.userId"},
            "event_name": {"@path": "$.payload.name"},
            "metadata": {"@path": "$.payload.properties"}
        }))
    );
}

#[test]
fn the_model_round_trips_through_serde() {
    let loaded = userpilot();
    let value = serde_json::to_value(&loaded.destination).expect("destination serializes");
    let back: actionkit_spec::model::DestinationSpec =
        serde_json::from_value(value).expect("and deserializes");
    assert_eq!(back, loaded.destination);
    for action in &loaded.actions {
        let value = serde_json::to_value(&action.spec).expect("action serializes");
        let back: actionkit_spec::model::ActionSpec =
            serde_json::from_value(value).expect("and deserializes");
        assert_eq!(back, action.spec);
    }
}

#[test]
fn a_copied_directory_loads_and_a_missing_destination_is_reported() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../actions/userpilot");
    for entry in std::fs::read_dir(&src).expect("readable") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::copy(&path, tmp.path().join(path.file_name().expect("name"))).expect("copy");
        }
    }
    // A tests/ directory is not read as action files.
    std::fs::create_dir(tmp.path().join("tests")).expect("mkdir");
    std::fs::write(tmp.path().join("tests/case.yaml"), "not: [an action").expect("write");
    let loaded = load_destination_dir(tmp.path()).unwrap_or_else(|d| panic!("{d}"));
    let n_action_files = std::fs::read_dir(&src)
        .expect("readable")
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.ends_with(".yaml") && name != "destination.yaml"
        })
        .count();
    assert_eq!(loaded.actions.len(), n_action_files);

    std::fs::remove_file(tmp.path().join("destination.yaml")).expect("remove");
    let err = load_destination_dir(tmp.path()).expect_err("no destination.yaml");
    assert_eq!(err.items[0].message, "missing destination.yaml");
}
