//! The generated registry compiles, finds destinations and actions, and runs the typed hooks.

use actionkit_runtime::destination::{HookInput, PresetMapping};
use serde_json::json;

#[test]
fn the_registry_compiles_every_generated_destination() {
    let registry = actionkit_destinations::registry().unwrap_or_else(|errors| panic!("{errors:?}"));
    let dest = registry
        .get("actions-userpilot-cloud")
        .expect("userpilot is registered");
    let keys: Vec<&str> = dest.actions.iter().map(|action| action.def.key).collect();
    assert_eq!(
        keys,
        [
            "identifyUser",
            "trackEvent",
            "identifyCompany",
            "identifyUserCompany",
            "identifyUsersBulk",
            "identifyCompaniesBulk"
        ]
    );
    let beyond: Vec<&str> = dest
        .actions
        .iter()
        .filter(|action| action.def.beyond_segment)
        .map(|action| action.def.key)
        .collect();
    assert_eq!(
        beyond,
        [
            "identifyUserCompany",
            "identifyUsersBulk",
            "identifyCompaniesBulk"
        ]
    );
    assert!(
        registry
            .action("actions-userpilot-cloud", "trackEvent")
            .is_some()
    );
    assert!(registry.action("actions-userpilot-cloud", "nope").is_none());
    assert!(registry.get("nope").is_none());
    // Segment's presets are on; the beyond-Segment ones follow, off.
    let presets: Vec<(&str, &str, bool)> = dest
        .presets
        .iter()
        .map(|p| (p.def.name, p.def.trigger, p.def.enabled))
        .collect();
    assert_eq!(
        presets[..3],
        [
            ("Identify Company", "type = \"group\"", true),
            ("Track Event", "type = \"track\"", true),
            ("Identify User", "type = \"identify\"", true),
        ]
    );
    assert!(presets[3..].iter().all(|(_, _, enabled)| !enabled));
    assert!(
        dest.presets[..3]
            .iter()
            .all(|p| p.def.mapping == PresetMapping::Defaults)
    );
    // A `defaults` preset compiles to the action's field defaults.
    let identify = &dest.presets[2];
    assert_eq!(
        identify.mapping_json["createdAt"],
        json!({"@path": "$.traits.createdAt"})
    );
}

#[test]
fn the_generated_hook_wrapper_types_the_payload_and_runs_the_hook() {
    let dest = &actionkit_destinations::generated::userpilot::DESTINATION;
    let action = dest
        .actions
        .iter()
        .find(|a| a.key == "identifyUser")
        .unwrap();
    let hook = action.hook.expect("identifyUser has a hook");
    let payload = json!({
        "userId": "u1",
        "createdAt": "2021-01-01T00:00:00Z",
        "traits": {"created_at": "old", "name": "A", "createdAt": "2021-01-01T00:00:00Z"},
    });
    let settings = json!({"apiKey": "secret-key", "endpoint": "https://analytex.userpilot.io/"});
    let out = hook(&HookInput {
        action_key: "identifyUser",
        payload: &payload,
        settings: &settings,
    })
    .unwrap();
    assert_eq!(
        out,
        json!({"metadata": {"created_at": "2021-01-01T00:00:00Z", "name": "A"}})
    );

    // A payload that does not fit the generated type is an error that names the action but never
    // echoes values (settings may hold secrets).
    let bad_settings = json!({"apiKey": 42, "endpoint": "x"});
    let err = hook(&HookInput {
        action_key: "identifyUser",
        payload: &payload,
        settings: &bad_settings,
    })
    .unwrap_err();
    assert!(!err.message.contains("42"), "{err}");
    let bad_payload = json!({"userId": 7});
    let err = hook(&HookInput {
        action_key: "identifyUser",
        payload: &bad_payload,
        settings: &settings,
    })
    .unwrap_err();
    assert!(err.message.contains("identifyUser"), "{err}");
}

#[test]
fn typed_settings_debug_redacts_the_api_key() {
    let settings: actionkit_destinations::generated::userpilot::Settings =
        serde_json::from_value(json!({"apiKey": "secret-key", "endpoint": "https://e.example/"}))
            .unwrap();
    let shown = format!("{settings:?}");
    assert!(!shown.contains("secret-key"), "{shown}");
    assert!(shown.contains("https://e.example/"), "{shown}");
}
