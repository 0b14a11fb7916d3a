//! The runtime core end to end on a hand-made Userpilot definition.
//!
//! `USERPILOT` (in `fixtures/userpilot.rs`) is a test fixture written by hand to mirror Segment's
//! Userpilot Cloud (Actions) destination; code generation produces the real definition from the
//! YAML. The expected requests come from the reference behaviour (§6.3 and §6.4 of the actions
//! spec).

use std::sync::Arc;

use actionkit_runtime::destination::{
    ActionDef, CompiledDestination, DeletionKind, DeletionsDef, DestinationDef, HookError,
    HookInput, PresetDef, PresetMapping, Registry, RequestDef, RequestDefaultsDef,
};
use actionkit_runtime::dispatch::{
    Instance, InstanceError, MappingConfig, MappingOutcome, Outcome,
};
use actionkit_runtime::fields::{FieldDef, SettingDef};
use actionkit_runtime::request::{Method, Request};
use serde_json::{Value, json};

mod fixtures {
    pub mod userpilot;
}

use fixtures::userpilot::USERPILOT;

// ---------------------------------------------------------------------------------------------
// Helpers.

const API_KEY: &str = "fake-api-key";

fn compiled() -> Arc<CompiledDestination> {
    Arc::new(CompiledDestination::new(&USERPILOT).expect("the fixture compiles"))
}

fn settings() -> Value {
    json!({"apiKey": API_KEY, "endpoint": "https://analytex.userpilot.io/"})
}

fn presets() -> Instance {
    Instance::from_presets(compiled(), &settings()).expect("valid settings")
}

fn headers() -> Vec<(String, String)> {
    vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("authorization".to_owned(), format!("Token {API_KEY}")),
        ("x-api-version".to_owned(), "2020-09-22".to_owned()),
    ]
}

fn request(method: Method, path: &str, json: Option<Value>, rate_limit: Option<&str>) -> Request {
    Request {
        method,
        url: format!("https://analytex.userpilot.io/{path}"),
        headers: headers(),
        json,
        rate_limit_key: rate_limit.map(str::to_owned),
        busy_statuses: &[],
        response_id: None,
        redactions: Default::default(),
        signer: None,
    }
}

fn only(outcomes: Vec<MappingOutcome<'_>>) -> Outcome {
    assert_eq!(
        outcomes.len(),
        1,
        "expected exactly one outcome: {outcomes:?}"
    );
    outcomes
        .into_iter()
        .next()
        .map(|o| o.outcome)
        .expect("one outcome")
}

fn invalid(message: &str) -> Outcome {
    Outcome::Invalid {
        name: "PayloadValidationError",
        message: message.to_owned(),
        status: 400,
    }
}

fn mapping(name: &str, trigger: &str, action: &str, mapping: Value) -> MappingConfig {
    MappingConfig {
        name: name.to_owned(),
        trigger: trigger.to_owned(),
        action_key: action.to_owned(),
        mapping,
        enabled: true,
    }
}

// ---------------------------------------------------------------------------------------------
// Presets and default mappings (§6.4).

#[test]
fn preset_defaults_convert_created_at() {
    let instance = presets();
    let event = json!({
        "type": "identify", "userId": "u1", "messageId": "m1",
        "traits": {"name": "A", "createdAt": "2021-01-01T00:00:00Z", "created_at": "old"}
    });
    let outcomes = instance.dispatch(&event);
    assert_eq!(outcomes[0].mapping, Some("Identify User"));
    assert_eq!(outcomes[0].action_key, Some("identifyUser"));
    assert_eq!(
        only(outcomes),
        Outcome::Request(request(
            Method::Post,
            "v1/identify",
            Some(
                json!({"user_id": "u1", "metadata": {"name": "A", "created_at": "2021-01-01T00:00:00Z"}})
            ),
            Some("identify"),
        ))
    );
}

#[test]
fn preset_defaults_fall_back_to_anonymous_id() {
    let event = json!({"type": "identify", "userId": null, "anonymousId": "anon", "traits": {"created_at": 123}});
    assert_eq!(
        only(presets().dispatch(&event)),
        Outcome::Request(request(
            Method::Post,
            "v1/identify",
            Some(json!({"user_id": "anon", "metadata": {"created_at": 123}})),
            Some("identify"),
        ))
    );
}

#[test]
fn preset_defaults_forward_numeric_created_at() {
    let event = json!({"type": "group", "groupId": "g1", "traits": {"createdAt": 1612137600, "plan": "pro"}});
    assert_eq!(
        only(presets().dispatch(&event)),
        Outcome::Request(request(
            Method::Post,
            "v1/companies/identify",
            Some(
                json!({"company_id": "g1", "metadata": {"plan": "pro", "created_at": 1612137600}})
            ),
            Some("identify"),
        ))
    );
}

#[test]
fn preset_track_without_user_or_properties_omits_them() {
    let event = json!({"type": "track", "event": "Clicked"});
    assert_eq!(
        only(presets().dispatch(&event)),
        Outcome::Request(request(
            Method::Post,
            "v1/track",
            Some(json!({"event_name": "Clicked"})),
            Some("track")
        ))
    );
}

#[test]
fn unmatched_event_is_not_subscribed() {
    let instance = presets();
    let outcomes = instance.dispatch(&json!({"type": "page", "name": "Home"}));
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].mapping, None);
    assert_eq!(
        outcomes[0].outcome,
        Outcome::Skipped {
            reason: "not subscribed"
        }
    );
}

#[test]
fn validation_failures_use_segment_wording() {
    let instance = presets();
    assert_eq!(
        only(instance.dispatch(&json!({"type": "track", "event": "", "userId": "u"}))),
        invalid("The root value is missing the required field 'name'.")
    );
    assert_eq!(
        only(instance.dispatch(
            &json!({"type": "identify", "userId": "u", "traits": {"createdAt": "garbage"}})
        )),
        invalid("User Created At Date must be a valid date-like string but it was not.")
    );
    assert_eq!(
        only(instance.dispatch(&json!({"type": "identify", "userId": {"id": 1}}))),
        invalid("User ID must be a string but it was an object.")
    );
}

// Custom mappings (§6.3 unit tests).

fn custom(mappings: &[MappingConfig]) -> Instance {
    Instance::new(compiled(), &settings(), mappings).expect("valid instance")
}

#[test]
fn identify_user_keeps_falsy_created_at_trait() {
    let instance = custom(&[mapping(
        "identify",
        r#"type = "track""#,
        "identifyUser",
        json!({"userId": "fake-user-id", "traits": {"name": "", "email": "", "createdAt": ""}}),
    )]);
    let event = json!({"type": "track", "event": "Test Event", "userId": "user1234", "anonymousId": "anonId1234"});
    assert_eq!(
        only(instance.dispatch(&event)),
        Outcome::Request(request(
            Method::Post,
            "v1/identify",
            Some(
                json!({"user_id": "fake-user-id", "metadata": {"name": "", "email": "", "createdAt": ""}})
            ),
            Some("identify"),
        ))
    );
}

#[test]
fn identify_company_drops_truthy_created_at_trait_without_the_field() {
    let instance = custom(&[mapping(
        "company",
        r#"type = "track""#,
        "identifyCompany",
        json!({"groupId": "fake-company-id", "traits": {"name": "Company Name", "primary_email": "company@example.com", "createdAt": "2021-01-01"}}),
    )]);
    assert_eq!(
        only(instance.dispatch(&json!({"type": "track"}))),
        Outcome::Request(request(
            Method::Post,
            "v1/companies/identify",
            Some(
                json!({"company_id": "fake-company-id", "metadata": {"name": "Company Name", "primary_email": "company@example.com"}})
            ),
            Some("identify"),
        ))
    );
}

#[test]
fn track_event_passes_properties_untouched() {
    let instance = custom(&[mapping(
        "track",
        r#"type = "track""#,
        "trackEvent",
        json!({"name": "test", "userId": "fake-user-id", "properties": {"name": "test", "email": ""}}),
    )]);
    assert_eq!(
        only(instance.dispatch(&json!({"type": "track"}))),
        Outcome::Request(request(
            Method::Post,
            "v1/track",
            Some(
                json!({"user_id": "fake-user-id", "event_name": "test", "metadata": {"name": "test", "email": ""}})
            ),
            Some("track"),
        ))
    );
}

#[test]
fn several_matching_mappings_each_produce_an_outcome_and_disabled_ones_do_not_run() {
    let mut disabled = mapping(
        "off",
        r#"type = "track""#,
        "trackEvent",
        json!({"name": "never"}),
    );
    disabled.enabled = false;
    let instance = custom(&[
        mapping(
            "first",
            r#"type = "track""#,
            "trackEvent",
            json!({"name": {"@path": "$.event"}}),
        ),
        disabled,
        mapping(
            "second",
            r#"type = "track""#,
            "trackEvent",
            json!({"name": "fixed"}),
        ),
    ]);
    let outcomes = instance.dispatch(&json!({"type": "track", "event": "E"}));
    let names: Vec<Option<&str>> = outcomes.iter().map(|o| o.mapping).collect();
    assert_eq!(names, vec![Some("first"), Some("second")]);
    assert_eq!(
        outcomes[1].outcome,
        Outcome::Request(request(
            Method::Post,
            "v1/track",
            Some(json!({"event_name": "fixed"})),
            Some("track")
        ))
    );
}

#[test]
fn mapping_runtime_errors_are_invalid() {
    let instance = custom(&[mapping(
        "bad",
        r#"type = "track""#,
        "trackEvent",
        json!({"name": {"@case": {"operator": "title", "value": "abc"}}}),
    )]);
    match only(instance.dispatch(&json!({"type": "track"}))) {
        Outcome::Invalid {
            name,
            message,
            status,
        } => {
            assert_eq!(name, "MappingError");
            assert_eq!(status, 400);
            assert!(message.contains("lower"), "{message}");
        }
        other => panic!("expected a mapping error, got {other:?}"),
    }
}

// Instance creation.

#[test]
fn missing_api_key_fails_with_segment_wording() {
    let err = Instance::from_presets(
        compiled(),
        &json!({"endpoint": "https://analytex.userpilot.io/"}),
    )
    .unwrap_err();
    match err {
        InstanceError::Settings(err) => {
            assert_eq!(
                err.message,
                "The root value is missing the required field 'apiKey'."
            );
            assert_eq!(err.status, 400);
        }
        other => panic!("expected a settings error, got {other:?}"),
    }
}

#[test]
fn endpoint_without_trailing_slash_gets_exactly_one() {
    let instance = Instance::from_presets(
        compiled(),
        &json!({"apiKey": API_KEY, "endpoint": "https://eu.example.io"}),
    )
    .unwrap();
    match only(instance.dispatch(&json!({"type": "track", "event": "E"}))) {
        Outcome::Request(req) => assert_eq!(req.url, "https://eu.example.io/v1/track"),
        other => panic!("expected a request, got {other:?}"),
    }
}

#[test]
fn endpoint_must_be_an_absolute_http_url() {
    let err = Instance::from_presets(
        compiled(),
        &json!({"apiKey": API_KEY, "endpoint": "ftp://files.example.io/"}),
    )
    .unwrap_err();
    assert!(
        matches!(&err, InstanceError::RequestDefaults(_))
            && err.to_string().contains("not an absolute http(s) url"),
        "{err}"
    );
    let err = Instance::from_presets(
        compiled(),
        &json!({"apiKey": API_KEY, "endpoint": "89X4YJ9nBQcMn%#"}),
    )
    .unwrap_err();
    assert_eq!(
        err,
        InstanceError::Settings(actionkit_runtime::validate::PayloadError {
            message: "API Endpoint must be a valid URI string but it was not.".to_owned(),
            errors: vec!["API Endpoint must be a valid URI string but it was not.".to_owned()],
            status: 400,
        })
    );
}

#[test]
fn invalid_mappings_are_all_reported() {
    let err = Instance::new(
        compiled(),
        &settings(),
        &[
            mapping("a", r#"type = "track""#, "noSuchAction", json!({})),
            mapping(
                "b",
                r#"type = "track""#,
                "trackEvent",
                json!("not an object"),
            ),
            mapping(
                "c",
                r#"type = "track""#,
                "trackEvent",
                json!({"name": {"@oops": 1}}),
            ),
        ],
    )
    .unwrap_err();
    let InstanceError::Mappings(problems) = err else {
        panic!("expected mapping problems")
    };
    let names: Vec<&str> = problems.iter().map(|p| p.mapping.as_str()).collect();
    assert_eq!(names, vec!["a", "b", "c"]);
    assert!(problems[0].message.contains("noSuchAction"));
    assert!(
        problems[2].message.contains("@oops"),
        "{}",
        problems[2].message
    );
}

#[test]
fn instance_debug_hides_secrets() {
    let instance = presets();
    let debug = format!("{instance:?}");
    assert!(!debug.contains(API_KEY), "{debug}");
    assert!(debug.contains("actions-userpilot-cloud"));
}

// testAuthentication, onDelete and redaction.

#[test]
fn test_authentication_request() {
    assert_eq!(
        presets().test_authentication_request().unwrap(),
        Some(request(Method::Get, "v1/validate", None, None))
    );
}

#[test]
fn bulk_deletions_send_max_ids_per_request_in_order() {
    let instance = presets();
    let ids: Vec<String> = ["u1", "u2", "u3"].iter().map(|s| (*s).to_owned()).collect();
    let requests = instance
        .deletion_requests(DeletionKind::Users, &ids)
        .expect("builds")
        .expect("the fixture declares a user deletion");
    let ranges: Vec<_> = requests.iter().map(|(ids, _)| ids.clone()).collect();
    assert_eq!(ranges, [0..2, 2..3]);
    let bodies: Vec<Value> = requests
        .iter()
        .map(|(_, r)| {
            assert_eq!(r.method, Method::Delete);
            assert!(r.url.ends_with("/v1/users"), "{}", r.url);
            assert_eq!(r.rate_limit_key.as_deref(), Some("delete"));
            r.json.clone().expect("a body")
        })
        .collect();
    assert_eq!(
        bodies,
        [json!({"users": ["u1", "u2"]}), json!({"users": ["u3"]})]
    );
    assert_eq!(
        instance
            .deletion_requests(DeletionKind::Users, &[])
            .expect("builds")
            .map(|r| r.len()),
        Some(0)
    );
    assert!(
        instance
            .deletion_requests(DeletionKind::Companies, &ids)
            .expect("builds")
            .is_none()
    );
}

#[test]
fn on_delete_request() {
    let instance = presets();
    assert_eq!(
        instance
            .on_delete_request(&json!({"type": "delete", "userId": "u1", "anonymousId": "a1"}))
            .unwrap(),
        Some(request(
            Method::Delete,
            "v1/users",
            Some(json!({"users": ["u1"]})),
            Some("delete")
        ))
    );
    assert_eq!(
        instance
            .on_delete_request(&json!({"type": "delete", "anonymousId": "a1"}))
            .unwrap(),
        Some(request(
            Method::Delete,
            "v1/users",
            Some(json!({"users": [""]})),
            Some("delete")
        ))
    );
}

#[test]
fn redaction_hides_the_api_key() {
    let instance = presets();
    let Outcome::Request(req) =
        only(instance.dispatch(&json!({"type": "track", "event": "E", "userId": API_KEY})))
    else {
        panic!("expected a request")
    };
    let redacted = instance.redact(&req);
    assert_eq!(
        redacted.headers[1],
        ("authorization".to_owned(), "Token [redacted]".to_owned())
    );
    // The user id equals the key but comes from the event, not from the secret setting: redaction
    // by provenance leaves it alone.
    assert_eq!(
        redacted.json,
        Some(json!({"user_id": API_KEY, "event_name": "E"}))
    );
    assert_eq!(redacted.url, req.url);
    assert_eq!(redacted.headers[2], req.headers[2]);
}

// Registry and definition errors.

#[test]
fn registry_finds_destinations_and_actions() {
    let registry = Registry::new(&[&USERPILOT]).unwrap();
    assert!(registry.get("actions-userpilot-cloud").is_some());
    assert!(registry.get("nope").is_none());
    assert_eq!(
        registry
            .action("actions-userpilot-cloud", "trackEvent")
            .map(|a| a.def.name),
        Some("Track Event")
    );
    assert!(registry.action("actions-userpilot-cloud", "nope").is_none());
    let errors = Registry::new(&[&USERPILOT, &USERPILOT]).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].problems[0].contains("slug"));
}

#[test]
fn default_mapping_is_built_from_field_defaults() {
    let dest = compiled();
    let action = dest.action("trackEvent").unwrap();
    assert_eq!(
        action.default_mapping_json,
        json!({
            "userId": {"@if": {"exists": {"@path": "$.userId"}, "then": {"@path": "$.userId"}, "else": {"@path": "$.anonymousId"}}},
            "name": {"@path": "$.event"},
            "properties": {"@path": "$.properties"}
        })
    );
    let configs = Instance::preset_configs(&dest);
    assert_eq!(configs.len(), 3);
    assert_eq!(configs[1].action_key, "trackEvent");
    assert_eq!(configs[1].mapping, action.default_mapping_json);
}

static BROKEN: DestinationDef = DestinationDef {
    id: "x",
    name: "Broken",
    slug: "broken",
    settings: &[SettingDef {
        key: "k",
        label: "K",
        default: Some("not json"),
        ..SettingDef::BASE
    }],
    request_defaults: RequestDefaultsDef {
        base_url: Some(r#"{"@path": 1}"#),
        sign: None,
        headers: &[],
    },
    rate_limits: &[],
    presets: &[PresetDef {
        name: "P",
        action_key: "missing",
        trigger: r#"type = "track""#,
        mapping: PresetMapping::Defaults,
        enabled: true,
    }],
    actions: &[ActionDef {
        id: "a",
        key: "act",
        name: "Act",
        description: "",
        default_trigger: r#"type = "track""#,
        fields: &[],
        beyond_segment: false,
        request: Some(RequestDef {
            method: Method::Post,
            path: "x",
            json: Some("{"),
            rate_limit: Some("nope"),
            busy_statuses: &[],
            response_id: None,
            ..RequestDef::BASE
        }),
        batch: None,
        merges: None,
        hook: None,
    }],
    test_authentication: None,
    on_delete: None,
    deletions: DeletionsDef::NONE,
};

#[test]
fn definition_errors_list_every_problem() {
    let err = CompiledDestination::new(&BROKEN).unwrap_err();
    assert_eq!(err.slug, "broken");
    let all = err.problems.join("\n");
    assert!(
        all.contains("setting 'k' default is not valid JSON"),
        "{all}"
    );
    assert!(
        all.contains("request_defaults.base_url is not a valid mapping"),
        "{all}"
    );
    assert!(all.contains("rate limit 'nope'"), "{all}");
    assert!(
        all.contains("action 'act' request json is not valid JSON"),
        "{all}"
    );
    assert!(
        all.contains("preset 'P' refers to action 'missing'"),
        "{all}"
    );
}

// Hooks.

fn failing_hook(_: &HookInput<'_>) -> Result<Value, HookError> {
    Err(HookError::new("createdAt could not be converted"))
}

fn array_hook(_: &HookInput<'_>) -> Result<Value, HookError> {
    Ok(json!([1]))
}

static HOOKED_FIELDS: &[FieldDef] = &[FieldDef {
    key: "name",
    label: "Name",
    ..FieldDef::BASE
}];

static HOOKED: DestinationDef = DestinationDef {
    id: "h",
    name: "Hooked",
    slug: "hooked",
    settings: &[],
    request_defaults: RequestDefaultsDef {
        base_url: Some(r#""http://127.0.0.1:9/""#),
        sign: None,
        headers: &[],
    },
    rate_limits: &[],
    presets: &[
        PresetDef {
            name: "Fails",
            action_key: "fails",
            trigger: r#"type = "track""#,
            mapping: PresetMapping::Json(r#"{"name":"n"}"#),
            enabled: true,
        },
        PresetDef {
            name: "Array",
            action_key: "array",
            trigger: r#"type = "track""#,
            mapping: PresetMapping::Json(r#"{"name":"n"}"#),
            enabled: true,
        },
    ],
    actions: &[
        ActionDef {
            id: "1",
            key: "fails",
            name: "Fails",
            description: "",
            default_trigger: "",
            fields: HOOKED_FIELDS,
            beyond_segment: false,
            request: Some(RequestDef {
                method: Method::Put,
                path: "x",
                json: None,
                rate_limit: None,
                busy_statuses: &[],
                response_id: None,
                ..RequestDef::BASE
            }),
            batch: None,
            merges: None,
            hook: Some(failing_hook),
        },
        ActionDef {
            id: "2",
            key: "array",
            name: "Array",
            description: "",
            default_trigger: "",
            fields: HOOKED_FIELDS,
            beyond_segment: false,
            request: Some(RequestDef {
                method: Method::Put,
                path: "x",
                json: None,
                rate_limit: None,
                busy_statuses: &[],
                response_id: None,
                ..RequestDef::BASE
            }),
            batch: None,
            merges: None,
            hook: Some(array_hook),
        },
    ],
    test_authentication: None,
    on_delete: None,
    deletions: DeletionsDef::NONE,
};

#[test]
fn hook_failures_are_invalid_outcomes() {
    let dest = Arc::new(CompiledDestination::new(&HOOKED).unwrap());
    let instance = Instance::from_presets(dest, &json!({})).unwrap();
    let outcomes = instance.dispatch(&json!({"type": "track"}));
    assert_eq!(outcomes.len(), 2);
    assert_eq!(
        outcomes[0].outcome,
        Outcome::Invalid {
            name: "HookError",
            message: "hook of action 'fails' failed: createdAt could not be converted".to_owned(),
            status: 400
        }
    );
    assert_eq!(
        outcomes[1].outcome,
        Outcome::Invalid {
            name: "HookError",
            message:
                "hook of action 'array' failed: it must return an object but it returned an array"
                    .to_owned(),
            status: 400
        }
    );
}

// Secrets in request-default errors.

static SECRET_IN_BASE_URL: DestinationDef = DestinationDef {
    id: "s",
    name: "Secret Base",
    slug: "secret-base",
    settings: &[SettingDef {
        key: "token",
        label: "Token",
        setting_type: actionkit_runtime::fields::SettingType::Password,
        required: true,
        ..SettingDef::BASE
    }],
    request_defaults: RequestDefaultsDef {
        base_url: Some(r#"{"@template": "ftp://{{settings.token}}.example.com/"}"#),
        sign: None,
        headers: &[],
    },
    rate_limits: &[],
    presets: &[],
    actions: &[],
    test_authentication: None,
    on_delete: None,
    deletions: DeletionsDef::NONE,
};

#[test]
fn base_url_errors_redact_secrets() {
    let dest = Arc::new(CompiledDestination::new(&SECRET_IN_BASE_URL).unwrap());
    let err = Instance::from_presets(dest, &json!({"token": "tok-123"})).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("ftp://[redacted].example.com/"), "{text}");
    assert!(!text.contains("tok-123"), "{text}");
    assert!(!format!("{err:?}").contains("tok-123"));
}

#[test]
fn header_values_with_line_breaks_are_rejected() {
    let err = Instance::from_presets(
        compiled(),
        &json!({"apiKey": "k\r\nx-injected: 1", "endpoint": "https://analytex.userpilot.io/"}),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid settings: request_defaults header 'authorization' contains a line break or NUL character"
    );
}

// ---------------------------------------------------------------------------------------------
// Tracing every mapping, for testers.

#[test]
fn trace_reports_every_mapping_with_its_match_payload_and_outcome() {
    let instance = presets();
    let event = json!({"type": "track", "userId": "u1", "event": "Signed Up"});
    let traces = instance.trace(&event);
    assert_eq!(traces.len(), instance.mappings().count());
    let (ran, skipped): (Vec<_>, Vec<_>) = traces.iter().partition(|trace| trace.matched);
    assert_eq!(ran.len(), 1, "{traces:?}");
    let track = ran[0];
    assert_eq!(track.view.action_key, "trackEvent");
    assert!(track.payload.as_ref().is_some_and(|p| p["userId"] == "u1"));
    let Some(Outcome::Request(request)) = &track.outcome else {
        panic!("expected a request: {:?}", track.outcome);
    };
    // The tester shows what dispatch would send, exactly.
    let dispatched = instance.dispatch(&event);
    assert_eq!(dispatched[0].outcome, Outcome::Request(request.clone()));
    for trace in skipped {
        assert!(
            trace.payload.is_none() && trace.outcome.is_none(),
            "{trace:?}"
        );
        assert!(!trace.view.trigger.misses(&event).is_empty());
    }
}
