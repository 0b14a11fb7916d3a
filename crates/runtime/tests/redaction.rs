//! Redaction by provenance: what a dry run hides is what was built from a secret setting, found
//! when the request is built, never text that merely looks like the secret.
//!
//! Each destination here is written by hand so that a secret reaches every part of a request:
//! a header template that wraps it, HTTP Basic authentication (base64), the base URL's path and
//! query, and the JSON body through mappings.

use std::sync::Arc;

use actionkit_runtime::delivery::{DeliveryClient, DeliveryConfig};
use actionkit_runtime::destination::{
    ActionDef, BatchDef, CompiledDestination, DeletionsDef, DestinationDef, HeaderDef, RequestDef,
    RequestDefaultsDef,
};
use actionkit_runtime::dispatch::{Instance, MappingConfig, Outcome};
use actionkit_runtime::fields::{SettingDef, SettingType};
use actionkit_runtime::redact::redact;
use actionkit_runtime::request::{Method, Request};
use serde_json::{Value, json};

const NO_REQUEST: Option<RequestDef> = None;

const fn request(path: &'static str, json: Option<&'static str>) -> RequestDef {
    RequestDef {
        method: Method::Post,
        path,
        json,
        ..RequestDef::BASE
    }
}

const fn action(
    key: &'static str,
    request: Option<RequestDef>,
    batch: Option<BatchDef>,
) -> ActionDef {
    ActionDef {
        id: key,
        key,
        name: key,
        description: "",
        default_trigger: "",
        fields: &[],
        beyond_segment: false,
        request,
        batch,
        merges: None,
        hook: None,
    }
}

const API_KEY: SettingDef = SettingDef {
    key: "apiKey",
    label: "API Key",
    setting_type: SettingType::Password,
    required: true,
    ..SettingDef::BASE
};

/// A secret in the base URL's path, in wrapping header templates and in the body.
static WRAPPED: DestinationDef = DestinationDef {
    id: "w",
    name: "Wrapped",
    slug: "wrapped",
    settings: &[API_KEY],
    request_defaults: RequestDefaultsDef {
        base_url: Some(r#"{"@template": "https://k.example.com/{{settings.apiKey}}/"}"#),
        sign: None,
        headers: &[
            HeaderDef {
                name: "authorization",
                value: r#"{"@template": "Token {{settings.apiKey}}"}"#,
            },
            HeaderDef {
                name: "x-key",
                value: r#"{"@template": "pre-{{settings.apiKey}}-post"}"#,
            },
            HeaderDef {
                name: "x-plain",
                value: r#""k-k""#,
            },
        ],
    },
    rate_limits: &[],
    presets: &[],
    actions: &[
        action(
            "send",
            Some(request(
                "v1/track",
                Some(
                    r#"{
                        "user_id": {"@path": "$.payload.userId"},
                        "kind": {"@path": "$.payload.kind"},
                        "key": {"@path": "$.settings.apiKey"},
                        "wrapped": {"@template": "{{payload.userId}}:{{settings.apiKey}}"},
                        "upper": {"@case": {"operator": "upper", "value": {"@path": "$.settings.apiKey"}}},
                        "nested": {"list": [{"@path": "$.settings.apiKey"}, "k"]}
                    }"#,
                ),
            )),
            None,
        ),
        action(
            "plain",
            Some(request(
                "v1/track",
                Some(r#"{"user_id": {"@path": "$.payload.userId"}}"#),
            )),
            None,
        ),
        action(
            "bulk",
            NO_REQUEST,
            Some(BatchDef {
                max_items: 10,
                max_bytes: None,
                wait_ms: 0,
                keys: &[],
                item: Some(
                    r#"{"user_id": {"@path": "$.payload.userId"}, "key": {"@path": "$.settings.apiKey"}}"#,
                ),
                request: request("v1/bulk", Some(r#"{"users": {"@path": "$.items"}}"#)),
                item_errors: None,
            }),
        ),
    ],
    test_authentication: None,
    on_delete: None,
    deletions: DeletionsDef::NONE,
};

/// HTTP Basic authentication: the header is the base64 of `user:password`.
static BASIC: DestinationDef = DestinationDef {
    id: "b",
    name: "Basic",
    slug: "basic",
    settings: &[
        SettingDef {
            key: "user",
            label: "User",
            required: true,
            ..SettingDef::BASE
        },
        SettingDef {
            key: "password",
            label: "Password",
            setting_type: SettingType::Password,
            required: true,
            ..SettingDef::BASE
        },
    ],
    request_defaults: RequestDefaultsDef {
        base_url: Some(r#""https://k.example.com""#),
        sign: None,
        headers: &[HeaderDef {
            name: "authorization",
            value: r#"{"username": {"@path": "$.settings.user"}, "password": {"@path": "$.settings.password"}}"#,
        }],
    },
    rate_limits: &[],
    presets: &[],
    actions: &[action(
        "send",
        Some(request(
            "v1/track",
            Some(r#"{"user_id": {"@path": "$.payload.userId"}}"#),
        )),
        None,
    )],
    test_authentication: None,
    on_delete: None,
    deletions: DeletionsDef::NONE,
};

/// A secret in the query of the base URL (the request path is empty, so the URL is the base).
static QUERY: DestinationDef = DestinationDef {
    id: "q",
    name: "Query",
    slug: "query",
    settings: &[API_KEY],
    request_defaults: RequestDefaultsDef {
        base_url: Some(
            r#"{"@template": "https://k.example.com/v1/track?key={{settings.apiKey}}&k=k"}"#,
        ),
        sign: None,
        headers: &[],
    },
    rate_limits: &[],
    presets: &[],
    actions: &[action("send", Some(request("", None)), None)],
    test_authentication: None,
    on_delete: None,
    deletions: DeletionsDef::NONE,
};

fn instance(def: &'static DestinationDef, settings: Value, actions: &[&str]) -> Instance {
    let dest = Arc::new(CompiledDestination::new(def).expect("a valid destination"));
    let mappings: Vec<MappingConfig> = actions
        .iter()
        .map(|key| MappingConfig {
            name: (*key).to_owned(),
            trigger: r#"type = "track""#.to_owned(),
            action_key: (*key).to_owned(),
            mapping: json!({
                "userId": {"@path": "$.userId"},
                "kind": {"@path": "$.properties.kind"}
            }),
            enabled: true,
        })
        .collect();
    Instance::new(dest, &settings, &mappings).expect("a valid instance")
}

fn requests(instance: &Instance, event: &Value) -> Vec<Request> {
    instance
        .dispatch(event)
        .into_iter()
        .map(|outcome| match outcome.outcome {
            Outcome::Request(request) => request,
            other => panic!("expected a request, got {other:?}"),
        })
        .collect()
}

fn header<'a>(request: &'a Request, name: &str) -> &'a str {
    request
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no header {name}"))
}

fn track(user_id: &str) -> Value {
    json!({"type": "track", "event": "Key Picked", "userId": user_id, "properties": {"kind": "k"}})
}

#[test]
fn a_short_secret_hides_only_what_was_built_from_it() {
    let instance = instance(&WRAPPED, json!({"apiKey": "k"}), &["send"]);
    let requests = requests(&instance, &track("k"));
    let real = &requests[0];
    assert_eq!(real.url, "https://k.example.com/k/v1/track");
    assert_eq!(header(real, "x-key"), "pre-k-post");

    let shown = redact(real);
    assert_eq!(shown.url, "https://k.example.com/[redacted]/v1/track");
    assert_eq!(header(&shown, "authorization"), "Token [redacted]");
    assert_eq!(header(&shown, "x-key"), "pre-[redacted]-post");
    assert_eq!(header(&shown, "x-plain"), "k-k");
    assert_eq!(
        shown.json,
        Some(json!({
            "user_id": "k",
            "kind": "k",
            "key": "[redacted]",
            "wrapped": "k:[redacted]",
            "upper": "[redacted]",
            "nested": {"list": ["[redacted]", "k"]}
        }))
    );
    // `Instance::redact` is the same rule.
    assert_eq!(instance.redact(real), shown);
}

#[test]
fn an_event_value_equal_to_the_secret_is_not_hidden() {
    let secret = "sk-live-0123456789abcdef";
    let instance = instance(&WRAPPED, json!({"apiKey": secret}), &["plain"]);
    let requests = requests(&instance, &track(secret));
    let shown = redact(&requests[0]);
    assert_eq!(shown.json, Some(json!({"user_id": secret})));
    assert_eq!(header(&shown, "authorization"), "Token [redacted]");
    assert!(!shown.url.contains(secret), "{}", shown.url);
}

#[test]
fn basic_authentication_hides_the_base64_of_the_secret() {
    let instance = instance(&BASIC, json!({"user": "ada", "password": "k"}), &["send"]);
    let requests = requests(&instance, &track("ada"));
    // `ada:k` in base64.
    assert_eq!(header(&requests[0], "authorization"), "Basic YWRhOms=");
    let shown = redact(&requests[0]);
    assert_eq!(header(&shown, "authorization"), "Basic [redacted]");
    assert_eq!(shown.json, Some(json!({"user_id": "ada"})));
    assert_eq!(shown.url, "https://k.example.com/v1/track");
}

#[test]
fn a_basic_header_without_a_secret_is_shown() {
    static OPEN: DestinationDef = DestinationDef {
        settings: &[SettingDef {
            key: "user",
            label: "User",
            required: true,
            ..SettingDef::BASE
        }],
        request_defaults: RequestDefaultsDef {
            base_url: Some(r#""https://k.example.com""#),
            sign: None,
            headers: &[HeaderDef {
                name: "authorization",
                value: r#"{"username": {"@path": "$.settings.user"}}"#,
            }],
        },
        ..BASIC
    };
    let instance = instance(&OPEN, json!({"user": "ada"}), &["send"]);
    let requests = requests(&instance, &track("ada"));
    // `ada:` in base64: the password is optional and empty.
    assert_eq!(
        header(&redact(&requests[0]), "authorization"),
        "Basic YWRhOg=="
    );
}

#[test]
fn a_secret_in_the_query_is_hidden_in_place() {
    let instance = instance(&QUERY, json!({"apiKey": "k"}), &["send"]);
    let requests = requests(&instance, &track("k"));
    assert_eq!(requests[0].url, "https://k.example.com/v1/track?key=k&k=k");
    assert_eq!(
        redact(&requests[0]).url,
        "https://k.example.com/v1/track?key=[redacted]&k=k"
    );
}

#[test]
fn batch_entries_and_batch_requests_are_marked() {
    let instance = instance(&WRAPPED, json!({"apiKey": "k"}), &["bulk"]);
    let outcomes = instance.dispatch(&track("k"));
    let Outcome::Batch(item) = &outcomes[0].outcome else {
        panic!("expected a batch entry")
    };
    assert_eq!(item.entry, json!({"user_id": "k", "key": "k"}));
    assert_eq!(
        item.redacted_entry(),
        json!({"user_id": "k", "key": "[redacted]"})
    );
    let request = instance
        .batch_request(item.action_index, vec![item.entry.clone()])
        .expect("a batch request");
    // The entries' own marks are not known to the batch request: its body is hidden whole.
    let shown = redact(&request);
    assert_eq!(shown.json, Some(json!("[redacted]")));
    assert_eq!(shown.url, "https://k.example.com/[redacted]/v1/bulk");
}

#[test]
fn hooks_never_see_secrets() {
    fn echo_settings(
        input: &actionkit_runtime::destination::HookInput<'_>,
    ) -> Result<Value, actionkit_runtime::destination::HookError> {
        Ok(json!({"seen": input.settings.clone()}))
    }
    static HOOKED: DestinationDef = DestinationDef {
        actions: &[ActionDef {
            hook: Some(echo_settings),
            ..action(
                "send",
                Some(request(
                    "v1/track",
                    Some(r#"{"seen": {"@path": "$.computed.seen"}}"#),
                )),
                None,
            )
        }],
        ..WRAPPED
    };
    let instance = instance(&HOOKED, json!({"apiKey": "k"}), &["send"]);
    let requests = requests(&instance, &track("u"));
    assert_eq!(requests[0].json, Some(json!({"seen": {"apiKey": ""}})));
}

#[tokio::test]
async fn failure_reasons_are_scrubbed_of_the_secret_without_garbling() {
    use axum::routing::post;
    let router = axum::Router::new().route(
        "/{*rest}",
        post(|headers: axum::http::HeaderMap| async move {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let key = auth.trim_start_matches("Token ").to_owned();
            (
                axum::http::StatusCode::UNAUTHORIZED,
                format!("invalid key {key} for /v1/track ({auth}); keep kk and k-k"),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let instance = instance(&WRAPPED, json!({"apiKey": "k"}), &["send"]);
    let mut request = requests(&instance, &track("u")).remove(0);
    request.url = format!("http://{addr}/v1/track");
    let client = DeliveryClient::new(DeliveryConfig {
        max_attempts: 1,
        ..DeliveryConfig::default()
    })
    .expect("a client");
    let outcome = client.send(&request).await;
    let reason = outcome.reason.unwrap_or_default();
    assert!(
        reason.ends_with("invalid key [redacted] for /v1/track ([redacted]); keep kk and k-k"),
        "{reason}"
    );
}
