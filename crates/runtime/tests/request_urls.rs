//! Request URLs of every shape, mapped methods, per-request headers and body signatures, built
//! through an instance exactly as `send --dry-run` builds them.

use std::sync::Arc;

use actionkit_runtime::destination::{
    ActionDef, CompiledDestination, DeletionsDef, DestinationDef, HeaderDef, RequestDef,
    RequestDefaultsDef,
};
use actionkit_runtime::dispatch::{Instance, InstanceError, MappingConfig, Outcome};
use actionkit_runtime::fields::{FieldDef, FieldType, SettingDef, SettingType};
use actionkit_runtime::redact::redact;
use actionkit_runtime::request::{Method, Request};
use actionkit_runtime::sign::{SignAlgorithm, SignDef, SignEncoding};
use hmac::Mac;
use serde_json::{Value, json};

const FIELDS: &[FieldDef] = &[
    FieldDef {
        key: "userId",
        label: "User ID",
        field_type: FieldType::String,
        ..FieldDef::BASE
    },
    FieldDef {
        key: "url",
        label: "URL",
        field_type: FieldType::String,
        ..FieldDef::BASE
    },
    FieldDef {
        key: "method",
        label: "Method",
        field_type: FieldType::String,
        ..FieldDef::BASE
    },
];

const fn action(key: &'static str, request: RequestDef) -> ActionDef {
    ActionDef {
        id: key,
        key,
        name: key,
        description: "",
        default_trigger: "",
        fields: FIELDS,
        beyond_segment: false,
        request: Some(request),
        batch: None,
        merges: None,
        hook: None,
    }
}

const BODY: Option<&str> = Some(r#"{"user_id": {"@path": "$.payload.userId"}}"#);

const SIGN: SignDef = SignDef {
    algorithm: SignAlgorithm::HmacSha256,
    secret: r#"{"@path": "$.settings.sharedSecret"}"#,
    header: "x-signature",
    encoding: SignEncoding::Hex,
    prefix: "sha256=",
};

/// A destination without a base URL: every request has its own `url`.
static HOOKS: DestinationDef = DestinationDef {
    id: "h",
    name: "Hooks",
    slug: "hooks",
    settings: &[
        SettingDef {
            key: "subdomain",
            label: "Subdomain",
            setting_type: SettingType::String,
            ..SettingDef::BASE
        },
        SettingDef {
            key: "sharedSecret",
            label: "Shared Secret",
            setting_type: SettingType::Password,
            ..SettingDef::BASE
        },
    ],
    request_defaults: RequestDefaultsDef {
        base_url: None,
        headers: &[HeaderDef {
            name: "x-source",
            value: r#""actionkit""#,
        }],
        sign: Some(SIGN),
    },
    rate_limits: &[],
    presets: &[],
    actions: &[
        action(
            "absolute",
            RequestDef {
                url: Some(r#""https://api.example.com/v1/track""#),
                json: BODY,
                ..RequestDef::BASE
            },
        ),
        action(
            "fromSettings",
            RequestDef {
                url: Some(
                    r#"{"@template": "https://{{settings.subdomain}}.example.com/v1/track"}"#,
                ),
                json: BODY,
                ..RequestDef::BASE
            },
        ),
        action(
            "fromPayload",
            RequestDef {
                method_mapping: Some(r#"{"@path": "$.payload.method"}"#),
                url: Some(r#"{"@path": "$.payload.url"}"#),
                headers: &[
                    HeaderDef {
                        name: "x-user",
                        value: r#"{"@path": "$.payload.userId"}"#,
                    },
                    HeaderDef {
                        name: "x-source",
                        value: r#""overridden""#,
                    },
                ],
                json: BODY,
                ..RequestDef::BASE
            },
        ),
    ],
    test_authentication: None,
    on_delete: None,
    deletions: DeletionsDef::NONE,
};

fn instance(settings: Value) -> Result<Instance, InstanceError> {
    let dest = Arc::new(CompiledDestination::new(&HOOKS).expect("a valid definition"));
    let mappings: Vec<MappingConfig> = ["absolute", "fromSettings", "fromPayload"]
        .iter()
        .map(|key| MappingConfig {
            name: (*key).to_owned(),
            trigger: format!(r#"event = "{key}""#),
            action_key: (*key).to_owned(),
            mapping: json!({
                "userId": {"@path": "$.userId"},
                "url": {"@path": "$.properties.url"},
                "method": {"@path": "$.properties.method"}
            }),
            enabled: true,
        })
        .collect();
    Instance::new(dest, &settings, &mappings)
}

fn settings() -> Value {
    json!({"subdomain": "eu", "sharedSecret": "s3cret"})
}

fn outcome(instance: &Instance, event: &Value) -> Outcome {
    let mut outcomes = instance.dispatch(event);
    assert_eq!(outcomes.len(), 1, "{event}");
    outcomes.remove(0).outcome
}

fn request(instance: &Instance, event: &Value) -> Request {
    match outcome(instance, event) {
        Outcome::Request(request) => request,
        other => panic!("expected a request, got {other:?}"),
    }
}

fn event(name: &str, properties: Value) -> Value {
    json!({"type": "track", "event": name, "userId": "u1", "properties": properties})
}

fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn hmac_hex(key: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("any key");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn absolute_settings_built_and_payload_built_urls() {
    let instance = instance(settings()).expect("an instance");
    let absolute = request(&instance, &event("absolute", json!({})));
    assert_eq!(absolute.method, Method::Post);
    assert_eq!(absolute.url, "https://api.example.com/v1/track");
    assert_eq!(absolute.json, Some(json!({"user_id": "u1"})));

    let settings_built = request(&instance, &event("fromSettings", json!({})));
    assert_eq!(settings_built.url, "https://eu.example.com/v1/track");

    let payload_built = request(
        &instance,
        &event(
            "fromPayload",
            json!({"url": "https://hooks.example.org/in?x=1", "method": "put"}),
        ),
    );
    assert_eq!(payload_built.method, Method::Put);
    assert_eq!(payload_built.url, "https://hooks.example.org/in?x=1");
    assert_eq!(header(&payload_built, "x-user"), Some("u1"));
    assert_eq!(header(&payload_built, "x-source"), Some("overridden"));
    assert_eq!(header(&absolute, "x-source"), Some("actionkit"));
}

#[test]
fn a_get_or_head_request_from_a_mapped_method_sends_no_body() {
    let instance = instance(settings()).expect("an instance");
    let head = request(
        &instance,
        &event(
            "fromPayload",
            json!({"url": "https://hooks.example.org/", "method": "HEAD"}),
        ),
    );
    assert_eq!(head.method, Method::Head);
    assert_eq!(head.json, None);
}

#[test]
fn a_bad_payload_url_or_method_is_a_build_error_naming_the_field() {
    let instance = instance(settings()).expect("an instance");
    let cases = [
        (
            json!({"url": "ftp://hooks.example.org/", "method": "POST"}),
            "action 'fromPayload' request url resolved to \"ftp://hooks.example.org/\", which is not an absolute http(s) url: the scheme is 'ftp' (it reads field 'url')",
        ),
        (
            json!({"method": "POST"}),
            "action 'fromPayload' request url resolved to nothing (it reads field 'url')",
        ),
        (
            json!({"url": "https://hooks.example.org/", "method": "FETCH"}),
            "action 'fromPayload' request method resolved to \"FETCH\", which is not one of GET, POST, PUT, PATCH, DELETE, HEAD (it reads field 'method')",
        ),
    ];
    for (properties, expected) in cases {
        match outcome(&instance, &event("fromPayload", properties.clone())) {
            Outcome::Invalid {
                name,
                message,
                status,
            } => {
                assert_eq!(name, "RequestBuildError", "{properties}");
                assert_eq!(message, expected, "{properties}");
                assert_eq!(status, 400);
            }
            other => panic!("{properties}: expected an invalid outcome, got {other:?}"),
        }
    }
}

#[test]
fn a_settings_built_url_is_checked_when_the_instance_is_built() {
    let err = match instance(json!({"subdomain": "no such host", "sharedSecret": "s3cret"})) {
        Err(err) => err.to_string(),
        Ok(_) => panic!("a url with spaces in its host builds an instance"),
    };
    assert!(
        err.contains("action 'fromSettings' request url resolved to \"https://no such host.example.com/v1/track\", which is not an absolute http(s) url")
            && err.contains("(it reads setting 'subdomain')"),
        "{err}"
    );
}

#[test]
fn the_signature_covers_the_exact_body_bytes_and_is_redacted() {
    let instance = instance(settings()).expect("an instance");
    let request = request(&instance, &event("absolute", json!({})));
    assert_eq!(header(&request, "x-signature"), None, "added when sent");
    let signed = request.signed();
    let body = serde_json::to_vec(&json!({"user_id": "u1"})).expect("json");
    let expected = format!("sha256={}", hmac_hex("s3cret", &body));
    assert_eq!(header(&signed, "x-signature"), Some(expected.as_str()));
    let shown = redact(&request);
    assert_eq!(header(&shown, "x-signature"), Some("sha256=[redacted]"));
    assert_eq!(header(&shown, "x-source"), Some("actionkit"));
}

#[test]
fn an_empty_secret_signs_nothing() {
    let instance = instance(json!({"subdomain": "eu", "sharedSecret": ""})).expect("an instance");
    let request = request(&instance, &event("absolute", json!({})));
    assert_eq!(request.signer, None);
    assert_eq!(header(&request.signed(), "x-signature"), None);
}
