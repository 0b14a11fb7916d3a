//! The console's API against a real server on 127.0.0.1: every route, and every way a call
//! is refused (no token, a wrong one, a write key, the wrong method, a cross-site request, a
//! body that is not JSON).

use std::sync::Arc;

use actionkit_console::{Console, ConsoleInstance, Token};
use actionkit_runtime::dispatch::Instance;
use reqwest::StatusCode;
use serde_json::{Value, json};

const TOKEN: &str = "console-test-token-7f3a9c21";
const API_KEY: &str = "sk-console-SECRET-51ab";
const SLUG: &str = "actions-userpilot-cloud";

/// A queue whose stats are fixed, or fail.
struct FakeQueue(bool);

impl actionkit_console::Deliveries for FakeQueue {
    fn stats(&self) -> actionkit_console::BoxFuture<'_, Result<Value, String>> {
        let ok = self.0;
        Box::pin(async move {
            if ok {
                Ok(json!({"destinations": [{"destination": "userpilot", "pending": 2}]}))
            } else {
                Err("the disk is on fire".to_owned())
            }
        })
    }
}

async fn start() -> String {
    start_with(None).await
}

/// A console over the generated Userpilot destination with one instance of its presets,
/// served on a free port; returns its base URL.
async fn start_with(queue: Option<FakeQueue>) -> String {
    let registry = actionkit_destinations::registry().expect("the destinations compile");
    let dest = registry.get(SLUG).expect("userpilot is generated").clone();
    let settings = json!({"apiKey": API_KEY, "endpoint": "https://analytex.userpilot.io/"});
    let instance = Instance::from_presets(dest, &settings).expect("valid settings");
    let console = Console::new(
        registry,
        vec![ConsoleInstance {
            name: "userpilot".to_owned(),
            instance: Arc::new(instance),
        }],
        Token::new(TOKEN, "TEST_TOKEN").expect("a long token"),
    );
    let console = match queue {
        Some(queue) => console.with_deliveries(Arc::new(queue)),
        None => console,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, actionkit_console::router(console)).await;
    });
    format!("http://{addr}")
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn get(base: &str, path: &str) -> (StatusCode, Value) {
    let res = client()
        .get(format!("{base}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("the server answers");
    answer(res).await
}

async fn post(base: &str, path: &str, body: &Value) -> (StatusCode, Value) {
    let res = client()
        .post(format!("{base}{path}"))
        .header("x-console-token", TOKEN)
        .json(body)
        .send()
        .await
        .expect("the server answers");
    answer(res).await
}

async fn answer(res: reqwest::Response) -> (StatusCode, Value) {
    let status = res.status();
    let text = res.text().await.expect("a body");
    assert!(
        !text.contains(API_KEY),
        "the API key left the server: {text}"
    );
    assert!(!text.contains(TOKEN), "the token left the server: {text}");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

fn identify() -> Value {
    json!({"type": "identify", "userId": "u-1", "traits": {"email": "ada@example.com", "createdAt": "2024-02-11T08:00:00Z"}})
}

#[tokio::test]
async fn destinations_list_every_action_with_fields_defaults_and_presets() {
    let base = start().await;
    let (status, body) = get(&base, "/console/api/destinations").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let dest = &body["destinations"][0];
    assert_eq!(dest["slug"], SLUG);
    let api_key = dest["settings"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["key"] == "apiKey"))
        .expect("the apiKey setting");
    assert_eq!(api_key["secret"], true);
    let actions = dest["actions"].as_array().expect("actions");
    let identify = actions
        .iter()
        .find(|a| a["key"] == "identifyUser")
        .expect("Identify User");
    assert_eq!(identify["name"], "Identify User");
    let user_id = identify["fields"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["key"] == "userId"))
        .expect("the userId field");
    assert_eq!(user_id["type"], "string");
    assert!(user_id["default"].is_object(), "{user_id}");
    assert!(
        dest["presets"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["action"] == "identifyUser"))
    );
}

#[tokio::test]
async fn instances_show_settings_with_secrets_masked_and_mappings_with_triggers() {
    let base = start().await;
    let (status, body) = get(&base, "/console/api/instances").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let instance = &body["instances"][0];
    assert_eq!(instance["name"], "userpilot");
    assert_eq!(instance["settings"]["apiKey"], "[redacted]");
    assert_eq!(
        instance["settings"]["endpoint"],
        "https://analytex.userpilot.io/"
    );
    let mappings = instance["mappings"].as_array().expect("mappings");
    assert!(
        mappings
            .iter()
            .any(|m| m["trigger"] == "type = \"identify\"" && m["action"] == "identifyUser"),
        "{body}"
    );
}

#[tokio::test]
async fn the_event_tester_shows_matches_why_not_values_errors_and_the_redacted_request() {
    let base = start().await;
    let (status, body) = post(&base, "/console/api/test", &json!({"event": identify()})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mappings = body["instances"][0]["mappings"]
        .as_array()
        .expect("mappings");
    let matched: Vec<&Value> = mappings
        .iter()
        .filter(|m| m["matched"] == true && m["enabled"] == true)
        .collect();
    assert_eq!(matched.len(), 1, "{body}");
    let request = &matched[0]["result"]["request"];
    assert_eq!(request["method"], "POST");
    assert_eq!(request["url"], "https://analytex.userpilot.io/v1/identify");
    assert!(
        request["headers"].as_array().is_some_and(|h| h
            .iter()
            .any(|h| h["name"] == "authorization" && h["value"] == "Token [redacted]")),
        "{request}"
    );
    assert_eq!(request["json"]["user_id"], "u-1");
    assert_eq!(matched[0]["payload"]["userId"], "u-1");
    let other = mappings
        .iter()
        .find(|m| m["matched"] == false && m["action"] == "trackEvent")
        .expect("track did not match");
    assert_eq!(
        other["why_not"][0],
        json!({"condition": "type = \"track\"", "found": "\"identify\""})
    );

    // A payload that fails validation says so in Segment's words.
    let (_, body) = post(
        &base,
        "/console/api/test",
        &json!({"event": {"type": "identify", "traits": {"a": 1}}}),
    )
    .await;
    let failed = body["instances"][0]["mappings"]
        .as_array()
        .and_then(|m| {
            m.iter()
                .find(|m| m["matched"] == true && m["enabled"] == true)
        })
        .expect("identify matched");
    assert_eq!(failed["result"]["kind"], "invalid");
    assert_eq!(failed["result"]["error"]["name"], "PayloadValidationError");
    assert_eq!(
        failed["result"]["error"]["message"],
        "The root value is missing the required field 'userId'."
    );

    // Text that is not JSON is placed at its line and column.
    let (status, body) = post(
        &base,
        "/console/api/test",
        &json!({"event_text": "{\"type\": \"track\",\n \"event\" 1}"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["errors"][0],
        json!({"where": "event", "line": 2, "column": 10, "message": "invalid JSON: expected `:`"})
    );

    // A malformed call is a 400 or 404 naming the problem.
    let (status, body) = post(&base, "/console/api/test", &json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = post(
        &base,
        "/console/api/test",
        &json!({"event": identify(), "instance": "nope"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(
        body["error"],
        "unknown instance 'nope'; expected one of: userpilot"
    );
}

fn preview_body(user_id_text: &str, trigger: &str) -> Value {
    json!({
        "instance": "userpilot",
        "action": "trackEvent",
        "name": "Orders",
        "trigger": trigger,
        "fields_text": {
            "userId": user_id_text,
            "name": "{\"@path\": \"$.event\"}",
            "properties": "",
        },
        "event": {"type": "track", "userId": "u-9", "event": "Order Completed"},
    })
}

#[tokio::test]
async fn the_preview_places_errors_and_gives_yaml_that_loads() {
    let base = start().await;
    let (status, body) = post(
        &base,
        "/console/api/preview",
        &preview_body("{\"@path\" \"$.userId\"}", "type = \"track\" and"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 2, "{body}");
    assert_eq!(errors[0]["where"], "trigger");
    assert_eq!(errors[0]["column"], 19);
    assert_eq!(errors[1]["where"], "fields.userId");
    assert_eq!(
        (errors[1]["line"].clone(), errors[1]["column"].clone()),
        (json!(1), json!(10))
    );
    assert_eq!(body["yaml"], Value::Null);

    // A mapping-kit problem is placed at its field.
    let (_, body) = post(
        &base,
        "/console/api/preview",
        &preview_body("{\"@path\": 7}", "type = \"track\""),
    )
    .await;
    assert_eq!(body["errors"][0]["where"], "fields.userId", "{body}");

    let (_, body) = post(
        &base,
        "/console/api/preview",
        &preview_body("{\"@path\": \"$.userId\"}", "type = \"track\""),
    )
    .await;
    assert_eq!(body["errors"], json!([]), "{body}");
    assert_eq!(body["trigger"]["matched"], true);
    assert_eq!(
        body["payload"],
        json!({"userId": "u-9", "name": "Order Completed"})
    );
    assert_eq!(
        body["result"]["request"]["json"]["event_name"],
        "Order Completed"
    );
    let yaml = body["yaml"].as_str().expect("the YAML");

    // The YAML is an entry of `mappings:` that the configuration loader reads back as is.
    let indented: String = yaml.lines().map(|l| format!("    {l}\n")).collect();
    let config = format!(
        "destinations:\n  - name: up\n    destination: {SLUG}\n    settings:\n      apiKey: k\n    mappings:\n{indented}"
    );
    let loaded = actionkit_spec::load_config_str("actionkit.yaml", &config, |_| None)
        .unwrap_or_else(|diags| panic!("{diags}\n{config}"));
    let actionkit_spec::config::Mappings::List(list) = &loaded.config.destinations[0].mappings
    else {
        panic!("a list of mappings");
    };
    assert_eq!(list[0].name, "Orders");
    assert_eq!(list[0].trigger, "type = \"track\"");
    assert_eq!(list[0].action, "trackEvent");
    assert_eq!(
        list[0].mapping,
        json!({"userId": {"@path": "$.userId"}, "name": {"@path": "$.event"}})
    );

    // A trigger that does not match still shows the mapped values, and says why not.
    let (_, body) = post(
        &base,
        "/console/api/preview",
        &preview_body("{\"@path\": \"$.userId\"}", "event = \"Signed Up\""),
    )
    .await;
    assert_eq!(body["trigger"]["matched"], false);
    assert_eq!(
        body["trigger"]["why_not"][0]["found"],
        "\"Order Completed\""
    );
    assert_eq!(body["payload"]["userId"], "u-9");
    assert_eq!(body["result"], Value::Null);
}

#[tokio::test]
async fn calls_without_the_token_or_from_another_site_are_refused() {
    let base = start().await;
    let url = |path: &str| format!("{base}{path}");
    let http = client();

    // No token, a wrong one, and the intake's way of sending a write key.
    let cases = [
        http.get(url("/console/api/instances")),
        http.get(url("/console/api/instances"))
            .bearer_auth("not-the-token-at-all"),
        http.get(url("/console/api/instances"))
            .header("x-console-token", format!("{TOKEN}x")),
        http.get(url("/console/api/instances"))
            .basic_auth(TOKEN, Some("")),
        http.get(url("/console/api/instances"))
            .header("x-write-key", TOKEN),
        http.post(url("/console/api/test"))
            .json(&json!({"event": identify()})),
    ];
    for case in cases {
        let res = case.send().await.expect("an answer");
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(res.headers().contains_key("www-authenticate"));
        let (_, body) = answer(res).await;
        assert!(body["error"].is_string(), "{body}");
    }
    let res = http
        .get(url("/console/api/instances"))
        .basic_auth("wk-anything", Some(""))
        .send()
        .await
        .expect("an answer");
    let (_, body) = answer(res).await;
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("write keys")),
        "{body}"
    );

    // A POST route does not answer GET, and a GET route not POST.
    let res = http
        .get(url("/console/api/test"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("an answer");
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()["allow"], "POST");
    let res = http
        .post(url("/console/api/instances"))
        .bearer_auth(TOKEN)
        .json(&json!({}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);

    // Cross-site: another origin, or the browser saying so, even with the token.
    for (name, value) in [
        ("origin", "http://evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let res = http
            .post(url("/console/api/test"))
            .bearer_auth(TOKEN)
            .header(name, value)
            .json(&json!({"event": identify()}))
            .send()
            .await
            .expect("an answer");
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{name}: {value}");
    }
    // The same origin is fine.
    let host = base.trim_start_matches("http://");
    let res = http
        .post(url("/console/api/test"))
        .bearer_auth(TOKEN)
        .header("origin", format!("http://{host}"))
        .header("sec-fetch-site", "same-origin")
        .json(&json!({"event": identify()}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(res.status(), StatusCode::OK);

    // A form's content type is refused; so is a body that is not JSON.
    let res = http
        .post(url("/console/api/test"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("event=1")
        .send()
        .await
        .expect("an answer");
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let res = http
        .post(url("/console/api/test"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("an answer");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    // Unknown API routes are 404s behind the token too.
    let res = http
        .get(url("/console/api/nothing"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let (status, _) = get(&base, "/console/api/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_page_and_its_files_are_served_with_strict_headers() {
    let base = start().await;
    for (path, kind) in [
        ("/console", "text/html"),
        ("/console/", "text/html"),
        ("/console/console.js", "text/javascript"),
        ("/console/console.css", "text/css"),
        ("/console/examples.json", "application/json"),
    ] {
        let res = client()
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("an answer");
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let headers = res.headers();
        assert!(
            headers["content-type"]
                .to_str()
                .is_ok_and(|t| t.starts_with(kind)),
            "{path}"
        );
        assert!(
            headers["content-security-policy"]
                .to_str()
                .is_ok_and(|c| c.contains("default-src 'self'")),
            "{path}"
        );
        assert_eq!(headers["x-frame-options"], "DENY");
    }
    let res = client()
        .get(format!("{base}/console/secret.txt"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_overview_reads_the_queue_when_there_is_one() {
    let base = start().await;
    let (status, body) = get(&base, "/console/api/overview").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("actionkit serve"))
    );

    let base = start_with(Some(FakeQueue(true))).await;
    let (status, body) = get(&base, "/console/api/overview").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["queue"]["destinations"][0]["pending"], 2);
    let res = client()
        .get(format!("{base}/console/api/overview"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let base = start_with(Some(FakeQueue(false))).await;
    let (status, body) = get(&base, "/console/api/overview").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(!body.to_string().contains("on fire"), "{body}");
}
