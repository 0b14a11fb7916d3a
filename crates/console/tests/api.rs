//! The console's API against a real server on 127.0.0.1: every route, and every way a call
//! is refused (no token, a wrong one, a write key, the wrong method, a cross-site request, a
//! body that is not JSON).
//!
//! The queue side (overview and dead-letter queue) is a fake [`Deliveries`] in memory here:
//! what the console makes of what the store answers is tested; the store itself is tested
//! under the real `serve` in `crates/actionkit/tests/console.rs`. The real send goes to the
//! mock Userpilot API on 127.0.0.1.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use actionkit_console::{
    ActionActivity, Activity, BoxFuture, Console, ConsoleInstance, Counts, Deliveries,
    DlqSelection, FailureOutcome, InstanceActivity, RecentFailure, Token, Windows,
};
use actionkit_runtime::delivery::{DeliveryClient, DeliveryConfig};
use actionkit_runtime::dispatch::Instance;
use reqwest::StatusCode;
use serde_json::{Value, json};

const TOKEN: &str = "console-test-token-7f3a9c21";
const API_KEY: &str = "sk-console-SECRET-51ab";
const SLUG: &str = "actions-userpilot-cloud";

/// A queue in memory: fixed stats (or failing ones), counts, and a dead-letter queue whose
/// calls are recorded.
struct FakeQueue {
    ok: bool,
    dlq: Mutex<Vec<Value>>,
    calls: Mutex<Vec<String>>,
}

impl FakeQueue {
    fn new(ok: bool) -> FakeQueue {
        let entry = |id: i64, instance: &str, message_id: &str| {
            json!({"id": id, "destination": instance, "message_id": message_id,
                   "reason": "trackEvent: 400: Bad Request", "attempts": 1})
        };
        FakeQueue {
            ok,
            dlq: Mutex::new(vec![
                entry(1, "userpilot", "m-1"),
                entry(2, "userpilot", "m-2"),
                entry(3, "gone", "m-3"),
            ]),
            calls: Mutex::new(Vec::new()),
        }
    }

    fn call(&self, what: String) -> Result<(), String> {
        self.calls.lock().expect("the calls").push(what);
        if self.ok {
            Ok(())
        } else {
            Err("the disk is on fire".to_owned())
        }
    }

    /// Removes the selected entries; how many.
    fn take(&self, selection: &DlqSelection) -> u64 {
        let mut dlq = self.dlq.lock().expect("the dlq");
        let before = dlq.len();
        dlq.retain(|entry| match selection {
            DlqSelection::Ids(ids) => !ids.iter().any(|id| entry["id"] == *id),
            DlqSelection::Instance(name) => entry["destination"] != name.as_str(),
        });
        (before - dlq.len()) as u64
    }
}

impl Deliveries for FakeQueue {
    fn stats(&self) -> BoxFuture<'_, Result<Value, String>> {
        Box::pin(async move {
            self.call("stats".to_owned())?;
            Ok(
                json!({"destinations": [{"destination": "userpilot", "pending": 2,
                       "oldest_pending_age_ms": 90_000}]}),
            )
        })
    }

    fn activity(&self) -> Activity {
        let hour = Counts {
            delivered: 5,
            retried: 2,
            dead_lettered: 1,
            skipped_no_trigger: 3,
            ..Counts::default()
        };
        let day = Counts {
            delivered: 50,
            ..hour
        };
        Activity {
            since: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000),
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(2_000),
            instances: vec![InstanceActivity {
                name: "userpilot".to_owned(),
                events: Windows { hour, day },
                actions: vec![
                    ActionActivity {
                        action: Some("trackEvent".to_owned()),
                        windows: Windows {
                            hour: Counts {
                                delivered: 4,
                                dead_lettered: 1,
                                ..Counts::default()
                            },
                            day: Counts::default(),
                        },
                    },
                    ActionActivity {
                        action: None,
                        windows: Windows {
                            hour: Counts {
                                skipped_no_trigger: 3,
                                ..Counts::default()
                            },
                            day: Counts::default(),
                        },
                    },
                ],
            }],
            failures: vec![RecentFailure {
                at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_500),
                instance: "userpilot".to_owned(),
                action: Some("trackEvent".to_owned()),
                message_id: "m-1".to_owned(),
                outcome: FailureOutcome::DeadLettered,
                status: Some(400),
                reason: "400: Bad Request".to_owned(),
            }],
        }
    }

    fn dlq_list(
        &self,
        instance: Option<String>,
        message_id: Option<String>,
        limit: u32,
        offset: u64,
    ) -> BoxFuture<'_, Result<Vec<Value>, String>> {
        Box::pin(async move {
            self.call(format!("list {instance:?} {message_id:?} {limit} {offset}"))?;
            let dlq = self.dlq.lock().expect("the dlq");
            Ok(dlq
                .iter()
                .filter(|e| {
                    instance
                        .as_ref()
                        .is_none_or(|i| e["destination"] == i.as_str())
                })
                .filter(|e| {
                    message_id
                        .as_ref()
                        .is_none_or(|m| e["message_id"] == m.as_str())
                })
                .skip(usize::try_from(offset).unwrap_or(usize::MAX))
                .take(limit as usize)
                .cloned()
                .collect())
        })
    }

    fn dlq_show(&self, id: i64) -> BoxFuture<'_, Result<Option<Value>, String>> {
        Box::pin(async move {
            self.call(format!("show {id}"))?;
            let dlq = self.dlq.lock().expect("the dlq");
            Ok(dlq.iter().find(|e| e["id"] == id).map(|entry| {
                let mut shown = entry.clone();
                shown["event"] = json!({"type": "track", "event": "Order Completed"});
                shown
            }))
        })
    }

    fn dlq_replay(&self, selection: DlqSelection) -> BoxFuture<'_, Result<u64, String>> {
        Box::pin(async move {
            self.call(format!("replay {selection:?}"))?;
            Ok(self.take(&selection))
        })
    }

    fn dlq_purge(&self, selection: DlqSelection) -> BoxFuture<'_, Result<u64, String>> {
        Box::pin(async move {
            self.call(format!("purge {selection:?}"))?;
            Ok(self.take(&selection))
        })
    }
}

async fn start() -> String {
    start_with(None).await
}

async fn start_with(queue: Option<Arc<FakeQueue>>) -> String {
    start_at("https://analytex.userpilot.io/", queue).await
}

/// A console over the generated Userpilot destination with one instance of its presets
/// delivering to `endpoint`, served on a free port; returns its base URL.
async fn start_at(endpoint: &str, queue: Option<Arc<FakeQueue>>) -> String {
    let registry = actionkit_destinations::registry().expect("the destinations compile");
    let dest = registry.get(SLUG).expect("userpilot is generated").clone();
    let settings = json!({"apiKey": API_KEY, "endpoint": endpoint});
    let instance = Instance::from_presets(dest, &settings).expect("valid settings");
    let client = DeliveryClient::new(DeliveryConfig {
        timeout: Duration::from_secs(10),
        ..DeliveryConfig::default()
    })
    .expect("a delivery client");
    let console = Console::new(
        registry,
        vec![ConsoleInstance {
            name: "userpilot".to_owned(),
            instance: Arc::new(instance),
            client: Arc::new(client),
        }],
        Token::new(TOKEN, "TEST_TOKEN").expect("a long token"),
    );
    let console = match queue {
        Some(queue) => console.with_deliveries(queue),
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

    // Every route, not only those above, is behind the token; every POST route refuses
    // another site even with it.
    let routes = [
        ("GET", "destinations"),
        ("GET", "instances"),
        ("GET", "about"),
        ("GET", "overview"),
        ("POST", "test"),
        ("POST", "preview"),
        ("POST", "send"),
        ("POST", "dlq/list"),
        ("POST", "dlq/show"),
        ("POST", "dlq/replay"),
        ("POST", "dlq/purge"),
    ];
    for (method, route) in routes {
        let path = url(&format!("/console/api/{route}"));
        let request = |token: Option<&str>| {
            let request = match method {
                "GET" => http.get(&path),
                _ => http.post(&path).json(&json!({})),
            };
            match token {
                Some(token) => request.bearer_auth(token),
                None => request,
            }
        };
        for token in [None, Some("not-the-token-at-all")] {
            let res = request(token).send().await.expect("an answer");
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{method} {route}");
        }
        if method == "POST" {
            let res = request(Some(TOKEN))
                .header("origin", "http://evil.example")
                .send()
                .await
                .expect("an answer");
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{method} {route}");
        }
    }

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
async fn the_overview_puts_counts_queue_depth_and_failures_per_instance_and_action() {
    // Without a queue (`actionkit console`) there is no overview, and `about` says so.
    let base = start().await;
    let (status, body) = get(&base, "/console/api/overview").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("actionkit serve")),
        "{body}"
    );
    let (status, body) = get(&base, "/console/api/about").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["queue"], false);

    let base = start_with(Some(Arc::new(FakeQueue::new(true)))).await;
    let (_, body) = get(&base, "/console/api/about").await;
    assert_eq!(body["queue"], true);
    let (status, body) = get(&base, "/console/api/overview").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["counted_since_ms"], 1_000_000);
    assert_eq!(body["now_ms"], 2_000_000);
    assert_eq!(body["queue"]["destinations"][0]["pending"], 2);
    let up = &body["instances"][0];
    assert_eq!(up["name"], "userpilot");
    assert_eq!(up["destination"], SLUG);
    assert_eq!(up["queue"]["pending"], 2);
    assert_eq!(up["queue"]["oldest_pending_age_ms"], 90_000);
    assert_eq!(
        up["events"]["hour"],
        json!({"delivered": 5, "retried": 2, "dead_lettered": 1, "skipped": 3,
               "skipped_by": {"unchanged": 0, "no_trigger": 3, "filtered": 0}})
    );
    assert_eq!(up["events"]["day"]["delivered"], 50);
    let actions = up["actions"].as_array().expect("actions");
    let row = |key: Value| {
        actions
            .iter()
            .find(|a| a["action"] == key)
            .unwrap_or_else(|| panic!("no row for {key} in {actions:?}"))
    };
    assert_eq!(row(json!("trackEvent"))["hour"]["delivered"], 4);
    assert_eq!(row(json!("trackEvent"))["hour"]["dead_lettered"], 1);
    assert_eq!(row(Value::Null)["hour"]["skipped"], 3);
    // Every action of an enabled mapping has its row, counted or not.
    assert_eq!(row(json!("identifyUser"))["day"]["delivered"], 0);
    assert_eq!(
        body["failures"][0],
        json!({"at_ms": 1_500_000, "instance": "userpilot", "action": "trackEvent",
               "message_id": "m-1", "outcome": "dead_lettered", "status": 400,
               "reason": "400: Bad Request"})
    );
    let res = client()
        .get(format!("{base}/console/api/overview"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // A queue that cannot be read leaves the counts, and says so without its reason.
    let base = start_with(Some(Arc::new(FakeQueue::new(false)))).await;
    let (status, body) = get(&base, "/console/api/overview").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["queue"], Value::Null);
    assert_eq!(body["instances"][0]["queue"], Value::Null);
    assert_eq!(body["instances"][0]["events"]["hour"]["delivered"], 5);
    assert_eq!(
        body["queue_error"],
        "the queue cannot be read now; the server's log says why"
    );
    assert!(!body.to_string().contains("on fire"), "{body}");
}

#[tokio::test]
async fn the_dead_letter_queue_is_listed_shown_replayed_and_purged() {
    let queue = Arc::new(FakeQueue::new(true));
    let base = start_with(Some(Arc::clone(&queue))).await;
    let ids = |body: &Value| -> Vec<i64> {
        body["entries"]
            .as_array()
            .map(|all| all.iter().filter_map(|e| e["id"].as_i64()).collect())
            .unwrap_or_default()
    };

    let (status, body) = post(&base, "/console/api/dlq/list", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body), vec![1, 2, 3]);
    assert_eq!(
        (body["limit"].clone(), body["offset"].clone()),
        (json!(100), json!(0))
    );
    let (_, body) = post(
        &base,
        "/console/api/dlq/list",
        &json!({"instance": "userpilot"}),
    )
    .await;
    assert_eq!(ids(&body), vec![1, 2]);
    let (_, body) = post(
        &base,
        "/console/api/dlq/list",
        &json!({"instance": "userpilot", "message_id": "m-2", "limit": 10, "offset": 0}),
    )
    .await;
    assert_eq!(ids(&body), vec![2]);
    let (_, body) = post(
        &base,
        "/console/api/dlq/list",
        &json!({"limit": 1, "offset": 1}),
    )
    .await;
    assert_eq!(ids(&body), vec![2]);

    // What the console refuses before asking the queue.
    for (input, status, message) in [
        (
            json!({"instance": "nope"}),
            StatusCode::NOT_FOUND,
            "unknown instance 'nope'; expected one of: userpilot",
        ),
        (
            json!({"limit": 0}),
            StatusCode::BAD_REQUEST,
            "`limit` must be between 1 and 500, found 0",
        ),
        (
            json!({"limit": 501}),
            StatusCode::BAD_REQUEST,
            "`limit` must be between 1 and 500, found 501",
        ),
    ] {
        let (got, body) = post(&base, "/console/api/dlq/list", &input).await;
        assert_eq!(got, status, "{input}: {body}");
        assert_eq!(body["error"], message, "{input}");
    }
    let (status, body) = post(&base, "/console/api/dlq/list", &json!({"destination": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("invalid request body: unknown field `destination`")),
        "{body}"
    );

    let (status, body) = post(&base, "/console/api/dlq/show", &json!({"id": 2})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message_id"], "m-2");
    assert_eq!(body["event"]["event"], "Order Completed");
    let (status, body) = post(&base, "/console/api/dlq/show", &json!({"id": 99})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "delivery 99 is not in the dead-letter queue");
    let (status, _) = post(&base, "/console/api/dlq/show", &json!({"id": "two"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Replay one, then purge what the instance has left.
    let (status, body) = post(&base, "/console/api/dlq/replay", &json!({"ids": [1]})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"replayed": 1}));
    let (status, body) = post(
        &base,
        "/console/api/dlq/purge",
        &json!({"instance": "userpilot"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"purged": 1}));
    let (_, body) = post(&base, "/console/api/dlq/list", &json!({})).await;
    assert_eq!(ids(&body), vec![3]);

    // A selection must name something, once; never every instance at once.
    for input in [
        json!({}),
        json!({"ids": []}),
        json!({"ids": [3], "instance": "userpilot"}),
        json!({"all": true}),
    ] {
        for route in ["replay", "purge"] {
            let (status, body) = post(&base, &format!("/console/api/dlq/{route}"), &input).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{route} {input}: {body}");
        }
    }
    let (status, body) = post(
        &base,
        "/console/api/dlq/purge",
        &json!({"instance": "gone"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(
        *queue.calls.lock().expect("the calls"),
        vec![
            "list None None 100 0",
            "list Some(\"userpilot\") None 100 0",
            "list Some(\"userpilot\") Some(\"m-2\") 10 0",
            "list None None 1 1",
            "show 2",
            "show 99",
            "replay Ids([1])",
            "purge Instance(\"userpilot\")",
            "list None None 100 0",
        ],
        "the refused calls never reached the queue"
    );

    // A queue that fails is a 503 without its reason.
    let base = start_with(Some(Arc::new(FakeQueue::new(false)))).await;
    for (route, input) in [
        ("list", json!({})),
        ("show", json!({"id": 1})),
        ("replay", json!({"ids": [1]})),
        ("purge", json!({"ids": [1]})),
    ] {
        let (status, body) = post(&base, &format!("/console/api/dlq/{route}"), &input).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{route}: {body}");
        assert!(!body.to_string().contains("on fire"), "{body}");
    }

    // Without a queue there is no dead-letter queue.
    let base = start().await;
    for route in ["list", "show", "replay", "purge"] {
        let (status, body) = post(
            &base,
            &format!("/console/api/dlq/{route}"),
            &json!({"ids": [1], "id": 1}),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{route}: {body}");
    }
}

#[tokio::test]
async fn the_routes_that_act_are_guarded_like_the_others() {
    let base = start_with(Some(Arc::new(FakeQueue::new(true)))).await;
    let http = client();
    let url = |path: &str| format!("{base}{path}");
    let routes = [
        (
            "/console/api/send",
            json!({"instance": "userpilot", "event": identify()}),
        ),
        ("/console/api/dlq/list", json!({})),
        ("/console/api/dlq/show", json!({"id": 1})),
        ("/console/api/dlq/replay", json!({"ids": [1]})),
        ("/console/api/dlq/purge", json!({"ids": [1]})),
    ];
    for (route, body) in &routes {
        let refused = [
            (http.post(url(route)).json(body), StatusCode::UNAUTHORIZED),
            (
                http.post(url(route))
                    .bearer_auth("not-the-token-at-all")
                    .json(body),
                StatusCode::UNAUTHORIZED,
            ),
            (
                http.post(url(route)).basic_auth(TOKEN, Some("")).json(body),
                StatusCode::UNAUTHORIZED,
            ),
            (
                http.post(url(route))
                    .bearer_auth(TOKEN)
                    .header("origin", "http://evil.example")
                    .json(body),
                StatusCode::FORBIDDEN,
            ),
            (
                http.post(url(route))
                    .bearer_auth(TOKEN)
                    .header("sec-fetch-site", "cross-site")
                    .json(body),
                StatusCode::FORBIDDEN,
            ),
            (
                http.post(url(route))
                    .bearer_auth(TOKEN)
                    .header("content-type", "text/plain")
                    .body(body.to_string()),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
            (
                http.get(url(route)).bearer_auth(TOKEN),
                StatusCode::METHOD_NOT_ALLOWED,
            ),
        ];
        for (request, expected) in refused {
            let res = request.send().await.expect("an answer");
            assert_eq!(res.status(), expected, "{route}");
            let (_, answer) = answer(res).await;
            assert!(answer["error"].is_string(), "{route}: {answer}");
        }
    }
    for route in ["/console/api/about", "/console/api/overview"] {
        let res = http.get(url(route)).send().await.expect("an answer");
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{route}");
        let res = http
            .post(url(route))
            .bearer_auth(TOKEN)
            .json(&json!({}))
            .send()
            .await
            .expect("an answer");
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "{route}");
    }
    // Nothing refused reached the queue: only the real calls below are recorded.
    let queue = Arc::new(FakeQueue::new(true));
    let base = start_with(Some(Arc::clone(&queue))).await;
    let res = http
        .post(format!("{base}/console/api/dlq/purge"))
        .json(&json!({"instance": "userpilot"}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(queue.calls.lock().expect("the calls").is_empty());
    assert_eq!(queue.dlq.lock().expect("the dlq").len(), 3);
}

#[tokio::test]
async fn a_real_send_goes_to_the_destination_and_shows_each_answer() {
    let mock = actionkit_mock_userpilot::spawn(actionkit_mock_userpilot::MockConfig {
        api_key: Some(API_KEY.to_owned()),
        ..actionkit_mock_userpilot::MockConfig::default()
    })
    .await
    .expect("the mock starts");
    let base = start_at(&mock.base_url(), None).await;

    let (status, body) = post(
        &base,
        "/console/api/send",
        &json!({"instance": "userpilot", "event": identify()}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["errors"], json!([]));
    assert_eq!(body["instance"], "userpilot");
    let sends = body["sends"].as_array().expect("sends");
    assert_eq!(sends.len(), 1, "{body}");
    assert_eq!(sends[0]["action"], "identifyUser");
    assert_eq!(sends[0]["kind"], "request");
    assert!(
        sends[0]["request"]["headers"].as_array().is_some_and(|h| h
            .iter()
            .any(|h| h["name"] == "authorization" && h["value"] == "Token [redacted]")),
        "{body}"
    );
    assert_eq!(sends[0]["answer"]["outcome"], "delivered");
    assert_eq!(sends[0]["answer"]["status"], 202);
    let received = mock.requests();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, "/v1/identify");
    assert_eq!(
        received[0].json.as_ref().map(|j| j["user_id"].clone()),
        Some(json!("u-1"))
    );

    // A mapping that rejects the event sends nothing and says why; an event no trigger
    // matches sends nothing at all.
    let (_, body) = post(
        &base,
        "/console/api/send",
        &json!({"instance": "userpilot", "event": {"type": "identify", "traits": {"a": 1}}}),
    )
    .await;
    assert_eq!(body["sends"][0]["kind"], "invalid", "{body}");
    assert_eq!(body["sends"][0]["answer"], Value::Null);
    let (_, body) = post(
        &base,
        "/console/api/send",
        &json!({"instance": "userpilot", "event": {"type": "alias", "userId": "u", "previousId": "p"}}),
    )
    .await;
    assert_eq!(body["sends"], json!([]), "{body}");
    let (_, body) = post(
        &base,
        "/console/api/send",
        &json!({"instance": "userpilot", "event_text": "{\"type\": "}),
    )
    .await;
    assert_eq!(body["errors"][0]["where"], "event", "{body}");
    assert_eq!(mock.requests().len(), 1, "nothing else was sent");

    // What the destination refuses is shown with its status and reason, never the key.
    let wrong = actionkit_mock_userpilot::spawn(actionkit_mock_userpilot::MockConfig {
        api_key: Some("another-key-entirely".to_owned()),
        ..actionkit_mock_userpilot::MockConfig::default()
    })
    .await
    .expect("the mock starts");
    let base = start_at(&wrong.base_url(), None).await;
    let (_, body) = post(
        &base,
        "/console/api/send",
        &json!({"instance": "userpilot", "event": identify()}),
    )
    .await;
    let answer = &body["sends"][0]["answer"];
    assert_eq!(answer["outcome"], "failed", "{body}");
    assert_eq!(answer["status"], 401);
    assert!(answer["reason"].is_string(), "{body}");

    // A malformed call names its problem.
    let (status, body) = post(&base, "/console/api/send", &json!({"event": identify()})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("missing field `instance`")),
        "{body}"
    );
    let (status, body) = post(
        &base,
        "/console/api/send",
        &json!({"instance": "nope", "event": identify()}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body["error"],
        "unknown instance 'nope'; expected one of: userpilot"
    );
}
