//! Replays of the settings request that Segment's mobile libraries send when they start, and
//! checks of what each library reads from the answer.
//!
//! analytics-swift, analytics-kotlin, analytics-react-native, analytics_flutter and the classic
//! analytics-ios and analytics-android all load `GET <cdn host>/projects/<writeKey>/settings`
//! before they send anything, and the newer ones then post their events to the `apiHost` the
//! answer names. None of them can run on this machine, so each request is written down from the
//! library's published source: the path it builds when the developer points its settings host at
//! `collect.example.com/v1` (the way each library's proxy option is documented), and the headers it
//! sets. Every case links the source lines it comes from.
//!
//! For every library and for two ways of deploying `serve` behind TLS (with `server.public_url`
//! set, and without it behind a proxy that sets `X-Forwarded-Proto` and `X-Forwarded-Host`), the
//! test starts the intake router on 127.0.0.1 with a recording sink, sends the request, and checks
//! that the answer is 200 with a JSON object, that nothing reached the sink, and that the
//! library's own reading of that object (a small model of the source lines linked beside it) leaves
//! it sending events to a batch path of this server over https, with the right write key, and with
//! its own telemetry off.
//!
//! Every mobile library builds its event URL as `https://` followed by the `apiHost` it was given,
//! whatever the settings' `protocol` says, so these libraries need `serve` behind TLS.

use std::sync::Arc;

mod replay;

use actionkit_intake::{IntakeConfig, PathKind, PublicUrl};
use replay::RecordingSink;
use serde_json::{Map, Value};

/// The write key the server is configured with and the requests carry.
const WRITE_KEY: &str = "9Qe2LmR7vX4kTz1bN8cW5pJ3hY6sA0dF";

/// The name of the source that key belongs to.
const SOURCE: &str = "mobile";

/// The host `serve` is reached under, behind a TLS proxy, in every case below.
const SERVE_HOST: &str = "collect.example.com";

/// The key of Segment's own destination in the settings' `integrations`.
const SEGMENT_IO: &str = "Segment.io";

/// One library's settings request and its reading of the answer.
struct Library {
    /// The library's name and the version whose source was read.
    name: &'static str,
    /// The configuration a developer writes to load settings from `serve`.
    configuration: &'static str,
    /// The request path the library builds with that configuration, `{WRITE_KEY}` to be filled.
    path: &'static str,
    /// Every header the library sets on that request, with lower-case names.
    headers: &'static [(&'static str, &'static str)],
    /// What the library does with the answer: the URL it will post events to, or why it would
    /// not send them there.
    read: fn(&Value) -> Result<String, String>,
}

/// The six libraries, each with the source lines its request comes from.
fn libraries() -> Vec<Library> {
    vec![
        // The settings URL is `https://` + cdnHost + `/projects/<writeKey>/settings`; cdnHost
        // defaults to `cdn-settings.segment.com/v1` and is set with `.cdnHost(...)`:
        // https://github.com/segmentio/analytics-swift/blob/c9a0d6305ac44dcacffeb450534ee8af214b6607/Sources/Segment/Utilities/Networking/HTTPClient.swift#L202
        // https://github.com/segmentio/analytics-swift/blob/c9a0d6305ac44dcacffeb450534ee8af214b6607/Sources/Segment/Utilities/Networking/HTTPClient.swift#L58
        // https://github.com/segmentio/analytics-swift/blob/c9a0d6305ac44dcacffeb450534ee8af214b6607/Sources/Segment/Utilities/Networking/HTTPClient.swift#L24
        // https://github.com/segmentio/analytics-swift/blob/c9a0d6305ac44dcacffeb450534ee8af214b6607/Sources/Segment/Configuration.swift#L270
        // The headers are those of every request it makes (the user agent really says
        // analytics-ios), and an answer above 300 counts as a failure:
        // https://github.com/segmentio/analytics-swift/blob/c9a0d6305ac44dcacffeb450534ee8af214b6607/Sources/Segment/Utilities/Networking/HTTPClient.swift#L286
        // https://github.com/segmentio/analytics-swift/blob/c9a0d6305ac44dcacffeb450534ee8af214b6607/Sources/Segment/Utilities/Networking/HTTPClient.swift#L217
        Library {
            name: "analytics-swift 1.9.4",
            configuration: r#"Configuration(writeKey:).apiHost("collect.example.com/v1").cdnHost("collect.example.com/v1")"#,
            path: "/v1/projects/{WRITE_KEY}/settings",
            headers: &[
                ("content-type", "application/json; charset=utf-8"),
                ("user-agent", "analytics-ios/1.9.4"),
                ("accept-encoding", "gzip"),
            ],
            read: swift_reads,
        },
        // The settings URL is `https://$cdnHost/projects/$writeKey/settings`; cdnHost defaults
        // to `cdn-settings.segment.com/v1`; anything but 200 counts as a failure:
        // https://github.com/segmentio/analytics-kotlin/blob/a14649b302c417c356ec2c33b91a125557f81e57/core/src/main/java/com/segment/analytics/kotlin/core/HTTPClient.kt#L156
        // https://github.com/segmentio/analytics-kotlin/blob/a14649b302c417c356ec2c33b91a125557f81e57/core/src/main/java/com/segment/analytics/kotlin/core/HTTPClient.kt#L159
        // https://github.com/segmentio/analytics-kotlin/blob/a14649b302c417c356ec2c33b91a125557f81e57/core/src/main/java/com/segment/analytics/kotlin/core/Constants.kt#L6
        // The user agent is set for every connection; OkHttp, which carries it, adds
        // `Accept-Encoding: gzip` on its own:
        // https://github.com/segmentio/analytics-kotlin/blob/a14649b302c417c356ec2c33b91a125557f81e57/core/src/main/java/com/segment/analytics/kotlin/core/HTTPClient.kt#L190
        Library {
            name: "analytics-kotlin 1.24.1",
            configuration: r#"Analytics(writeKey, context) { apiHost = "collect.example.com/v1"; cdnHost = "collect.example.com/v1" }"#,
            path: "/v1/projects/{WRITE_KEY}/settings",
            headers: &[
                ("content-type", "application/json; charset=utf-8"),
                ("user-agent", "analytics-kotlin/1.24.1"),
                ("accept-encoding", "gzip"),
            ],
            read: kotlin_reads,
        },
        // With `cdnProxy` and `useSegmentEndpoints: true` the settings URL is cdnProxy +
        // `/projects/<writeKey>/settings` (without the flag cdnProxy is used as the whole URL);
        // a host without a scheme gets `https://`, and `http://` is kept:
        // https://github.com/segmentio/analytics-react-native/blob/74884be75f6e9e904b20a963ea43dac904c009c0/packages/core/src/analytics.ts#L370
        // https://github.com/segmentio/analytics-react-native/blob/74884be75f6e9e904b20a963ea43dac904c009c0/packages/core/src/util.ts#L262
        // The only header it sets is `Cache-Control`, and any answer that is not 2xx fails:
        // https://github.com/segmentio/analytics-react-native/blob/74884be75f6e9e904b20a963ea43dac904c009c0/packages/core/src/analytics.ts#L396
        // https://github.com/segmentio/analytics-react-native/blob/74884be75f6e9e904b20a963ea43dac904c009c0/packages/core/src/errors.ts#L99
        Library {
            name: "@segment/analytics-react-native 2.21.4",
            configuration: r#"createClient({ writeKey, proxy: "https://collect.example.com/v1", cdnProxy: "https://collect.example.com/v1", useSegmentEndpoints: true })"#,
            path: "/v1/projects/{WRITE_KEY}/settings",
            headers: &[("cache-control", "no-cache")],
            read: react_native_reads,
        },
        // The settings URL is `https://$cdnHost/projects/$writeKey/settings`, cdnHost defaulting
        // to `cdn-settings.segment.com/v1`, with the headers of every request; above 300 fails:
        // https://github.com/segmentio/analytics_flutter/blob/4d685c71e84a9b46d62e03a68fafc19e1018520e/packages/core/lib/utils/http_client.dart#L71
        // https://github.com/segmentio/analytics_flutter/blob/4d685c71e84a9b46d62e03a68fafc19e1018520e/packages/core/lib/utils/http_client.dart#L19
        // https://github.com/segmentio/analytics_flutter/blob/4d685c71e84a9b46d62e03a68fafc19e1018520e/packages/core/lib/utils/http_client.dart#L12
        // https://github.com/segmentio/analytics_flutter/blob/4d685c71e84a9b46d62e03a68fafc19e1018520e/packages/core/lib/utils/http_client.dart#L98
        // https://github.com/segmentio/analytics_flutter/blob/4d685c71e84a9b46d62e03a68fafc19e1018520e/packages/core/lib/utils/http_client.dart#L79
        Library {
            name: "segment_analytics (Flutter) 1.1.10",
            configuration: r#"createClient(Configuration(writeKey, apiHost: "collect.example.com/v1", cdnHost: "collect.example.com/v1"))"#,
            path: "/v1/projects/{WRITE_KEY}/settings",
            headers: &[
                ("content-type", "application/json; charset=utf-8"),
                ("user-agent", "analytics-flutter/1.1.10"),
                ("accept-encoding", "gzip"),
            ],
            read: flutter_reads,
        },
        // The settings URL is fixed, `https://cdn-settings.segment.com/v1` +
        // `/projects/<writeKey>/settings`, and handed to the configuration's `requestFactory`,
        // which a proxy user makes swap the host and keep the path; the session adds the two
        // headers; above 300 fails:
        // https://github.com/segmentio/analytics-ios/blob/4b0968947eb916b3a29d56bd5e17d620ff29a220/Segment/Classes/SEGHTTPClient.m#L153
        // https://github.com/segmentio/analytics-ios/blob/4b0968947eb916b3a29d56bd5e17d620ff29a220/Segment/Classes/SEGHTTPClient.m#L6
        // https://github.com/segmentio/analytics-ios/blob/4b0968947eb916b3a29d56bd5e17d620ff29a220/Segment/Classes/SEGHTTPClient.m#L39
        // https://github.com/segmentio/analytics-ios/blob/4b0968947eb916b3a29d56bd5e17d620ff29a220/Segment/Classes/SEGHTTPClient.m#L165
        Library {
            name: "analytics-ios (classic) 4.1.8",
            configuration: r#"configuration.requestFactory = ^(NSURL *url) { /* same URL with host collect.example.com */ }"#,
            path: "/v1/projects/{WRITE_KEY}/settings",
            headers: &[
                ("accept-encoding", "gzip"),
                ("user-agent", "analytics-ios/4.1.8"),
            ],
            read: ios_classic_reads,
        },
        // The settings URL is fixed, `https://cdn-settings.segment.com/v1/projects/<writeKey>/
        // settings`, opened through the `ConnectionFactory`, which a proxy user subclasses to
        // swap the host and keep the path; anything but 200 fails:
        // https://github.com/segmentio/analytics-android/blob/58d74728ad6a3f47ced995932e31a13a356a76f4/analytics/src/main/java/com/segment/analytics/ConnectionFactory.java#L45
        // https://github.com/segmentio/analytics-android/blob/58d74728ad6a3f47ced995932e31a13a356a76f4/analytics/src/main/java/com/segment/analytics/ConnectionFactory.java#L76
        // https://github.com/segmentio/analytics-android/blob/58d74728ad6a3f47ced995932e31a13a356a76f4/analytics/src/main/java/com/segment/analytics/Client.java#L108
        Library {
            name: "analytics-android (classic) 4.11.4",
            configuration: r#"new Analytics.Builder(context, writeKey).connectionFactory(/* openConnection: same path on https://collect.example.com */)"#,
            path: "/v1/projects/{WRITE_KEY}/settings",
            headers: &[
                ("content-type", "application/json"),
                ("user-agent", "analytics-android/4.11.4"),
            ],
            read: android_classic_reads,
        },
    ]
}

/// The settings' `integrations` object, or why it is not one.
fn integrations(settings: &Value) -> Result<&Map<String, Value>, String> {
    settings
        .get("integrations")
        .ok_or("`integrations` is missing")?
        .as_object()
        .ok_or_else(|| "`integrations` is not an object".to_owned())
}

/// The settings of Segment's own destination, which must be an object.
fn segment_io(settings: &Value) -> Result<&Map<String, Value>, String> {
    integrations(settings)?
        .get(SEGMENT_IO)
        .ok_or("`integrations` has no `Segment.io`, so the library does not send events")?
        .as_object()
        .ok_or_else(|| "`integrations.Segment.io` is not an object".to_owned())
}

/// `integrations["Segment.io"].apiHost`, a non-empty string.
fn api_host(segment: &Map<String, Value>) -> Result<&str, String> {
    segment
        .get("apiHost")
        .ok_or("`Segment.io.apiHost` is missing")?
        .as_str()
        .filter(|host| !host.is_empty())
        .ok_or_else(|| "`Segment.io.apiHost` is not a non-empty string".to_owned())
}

/// Checks that a top-level key is absent or of the JSON type `is_type` accepts.
fn absent_or(settings: &Value, key: &str, is_type: fn(&Value) -> bool) -> Result<(), String> {
    match settings.get(key) {
        Some(value) if !is_type(value) => Err(format!("`{key}` has the wrong type: {value}")),
        _ => Ok(()),
    }
}

/// Checks that the library's own telemetry stays off: its host is Segment's
/// `api.segment.io/v1`, not the configured one, and it starts only when the settings give a
/// `metrics.sampleRate` above zero.
fn telemetry_stays_off(settings: &Value) -> Result<(), String> {
    match settings
        .pointer("/metrics/sampleRate")
        .and_then(Value::as_f64)
    {
        Some(rate) if rate > 0.0 => Err(format!(
            "`metrics.sampleRate` is {rate}, so the library would post telemetry to api.segment.io"
        )),
        _ => Ok(()),
    }
}

/// analytics-swift decodes each top-level key with `try?`, so none is required and a key of the
/// wrong type is dropped. Segment's destination runs only when `integrations` has `Segment.io`;
/// a string `apiHost` there replaces the configured one, and batches go to
/// `https://<apiHost>/b`. The telemetry host is fixed and starts on `metrics.sampleRate`.
// https://github.com/segmentio/analytics-swift/blob/c9a0d6305ac44dcacffeb450534ee8af214b6607/Sources/Segment/Settings.swift#L39
// https://github.com/segmentio/analytics-swift/blob/c9a0d6305ac44dcacffeb450534ee8af214b6607/Sources/Segment/Timeline.swift#L288
// https://github.com/segmentio/analytics-swift/blob/c9a0d6305ac44dcacffeb450534ee8af214b6607/Sources/Segment/Plugins/SegmentDestination.swift#L72
// https://github.com/segmentio/analytics-swift/blob/c9a0d6305ac44dcacffeb450534ee8af214b6607/Sources/Segment/Utilities/Networking/HTTPClient.swift#L72
// https://github.com/segmentio/analytics-swift/blob/c9a0d6305ac44dcacffeb450534ee8af214b6607/Sources/Segment/Utilities/Telemetry.swift#L73
// https://github.com/segmentio/analytics-swift/blob/c9a0d6305ac44dcacffeb450534ee8af214b6607/Sources/Segment/Utilities/Telemetry.swift#L284
fn swift_reads(settings: &Value) -> Result<String, String> {
    let host = api_host(segment_io(settings)?)?;
    telemetry_stays_off(settings)?;
    Ok(format!("https://{host}/b"))
}

/// analytics-kotlin decodes the answer leniently (unknown keys ignored), but each of its seven
/// keys is typed as a JSON object, so any of them present with another type fails the whole
/// decode. Segment's destination is enabled only when `integrations` has `Segment.io`, whose
/// settings need a string `apiKey`; a string `apiHost` replaces the configured one, and batches
/// go to `https://<apiHost>/b`. The telemetry host is fixed and starts on `metrics.sampleRate`.
// https://github.com/segmentio/analytics-kotlin/blob/a14649b302c417c356ec2c33b91a125557f81e57/core/src/main/java/com/segment/analytics/kotlin/core/Settings.kt#L19
// https://github.com/segmentio/analytics-kotlin/blob/a14649b302c417c356ec2c33b91a125557f81e57/core/src/main/java/com/segment/analytics/kotlin/core/Settings.kt#L119
// https://github.com/segmentio/analytics-kotlin/blob/a14649b302c417c356ec2c33b91a125557f81e57/core/src/main/java/com/segment/analytics/kotlin/core/utilities/JSON.kt#L45
// https://github.com/segmentio/analytics-kotlin/blob/a14649b302c417c356ec2c33b91a125557f81e57/core/src/main/java/com/segment/analytics/kotlin/core/platform/Plugin.kt#L125
// https://github.com/segmentio/analytics-kotlin/blob/a14649b302c417c356ec2c33b91a125557f81e57/core/src/main/java/com/segment/analytics/kotlin/core/platform/plugins/SegmentDestination.kt#L21
// https://github.com/segmentio/analytics-kotlin/blob/a14649b302c417c356ec2c33b91a125557f81e57/core/src/main/java/com/segment/analytics/kotlin/core/platform/plugins/SegmentDestination.kt#L112
// https://github.com/segmentio/analytics-kotlin/blob/a14649b302c417c356ec2c33b91a125557f81e57/core/src/main/java/com/segment/analytics/kotlin/core/HTTPClient.kt#L167
// https://github.com/segmentio/analytics-kotlin/blob/a14649b302c417c356ec2c33b91a125557f81e57/core/src/main/java/com/segment/analytics/kotlin/core/Telemetry.kt#L349
fn kotlin_reads(settings: &Value) -> Result<String, String> {
    for key in [
        "integrations",
        "plan",
        "edgeFunction",
        "middlewareSettings",
        "metrics",
        "consentSettings",
        "autoInstrumentation",
    ] {
        absent_or(settings, key, Value::is_object)?;
    }
    let segment = segment_io(settings)?;
    if !segment.get("apiKey").is_some_and(Value::is_string) {
        return Err(
            "`Segment.io.apiKey` is not a string, so its settings do not decode".to_owned(),
        );
    }
    let host = api_host(segment)?;
    telemetry_stays_off(settings)?;
    Ok(format!("https://{host}/b"))
}

/// analytics-react-native keeps the settings when `integrations` is absent or an object (an
/// array or another type falls back to the default settings), builds its routing filters from
/// `middlewareSettings.routingRules`, and enables Segment's destination only when `integrations`
/// has `Segment.io`. Without `proxy`, batches go to `https://<apiHost>/b`; with `proxy` the proxy
/// wins and the settings' `apiHost` is not used.
// https://github.com/segmentio/analytics-react-native/blob/74884be75f6e9e904b20a963ea43dac904c009c0/packages/core/src/config-validation.ts#L154
// https://github.com/segmentio/analytics-react-native/blob/74884be75f6e9e904b20a963ea43dac904c009c0/packages/core/src/analytics.ts#L419
// https://github.com/segmentio/analytics-react-native/blob/74884be75f6e9e904b20a963ea43dac904c009c0/packages/core/src/plugin.ts#L122
// https://github.com/segmentio/analytics-react-native/blob/74884be75f6e9e904b20a963ea43dac904c009c0/packages/core/src/plugins/SegmentDestination.ts#L450
// https://github.com/segmentio/analytics-react-native/blob/74884be75f6e9e904b20a963ea43dac904c009c0/packages/core/src/plugins/SegmentDestination.ts#L406
fn react_native_reads(settings: &Value) -> Result<String, String> {
    absent_or(settings, "integrations", |v| v.is_object() || v.is_null())?;
    if let Some(rules) = settings.pointer("/middlewareSettings/routingRules")
        && !rules.is_array()
    {
        return Err("`middlewareSettings.routingRules` is not an array".to_owned());
    }
    let host = api_host(segment_io(settings)?)?;
    Ok(format!("https://{host}/b"))
}

/// analytics_flutter casts `integrations` to a map (absent or another type throws, and the
/// settings are dropped), reads `middlewareSettings` as an object with an optional
/// `routingRules` list, and enables destinations once `integrations` is set. A configured
/// `apiHost` wins; without one the settings' `Segment.io.apiHost` is used, and batches go to
/// `https://<apiHost>/b`.
// https://github.com/segmentio/analytics_flutter/blob/4d685c71e84a9b46d62e03a68fafc19e1018520e/packages/core/lib/state.g.dart#L58
// https://github.com/segmentio/analytics_flutter/blob/4d685c71e84a9b46d62e03a68fafc19e1018520e/packages/core/lib/state.g.dart#L82
// https://github.com/segmentio/analytics_flutter/blob/4d685c71e84a9b46d62e03a68fafc19e1018520e/packages/core/lib/plugin.dart#L104
// https://github.com/segmentio/analytics_flutter/blob/4d685c71e84a9b46d62e03a68fafc19e1018520e/packages/core/lib/plugins/segment_destination.dart#L81
// https://github.com/segmentio/analytics_flutter/blob/4d685c71e84a9b46d62e03a68fafc19e1018520e/packages/core/lib/utils/http_client.dart#L32
fn flutter_reads(settings: &Value) -> Result<String, String> {
    integrations(settings)?;
    absent_or(settings, "middlewareSettings", |v| {
        v.is_object() || v.is_null()
    })?;
    if let Some(rules) = settings.pointer("/middlewareSettings/routingRules")
        && !rules.is_array()
        && !rules.is_null()
    {
        return Err("`middlewareSettings.routingRules` is not a list".to_owned());
    }
    let host = api_host(segment_io(settings)?)?;
    Ok(format!("https://{host}/b"))
}

/// Classic analytics-ios creates an integration only for the keys `integrations` has, so
/// `Segment.io` must be there. Its `apiHost` is stored with `https://` put in front unless it
/// already contains `https://`, and batches go to that URL plus `/batch`. A non-empty
/// `edgeFunction` object is handed to the edge-function middleware.
// https://github.com/segmentio/analytics-ios/blob/4b0968947eb916b3a29d56bd5e17d620ff29a220/Segment/Internal/SEGIntegrationsManager.m#L402
// https://github.com/segmentio/analytics-ios/blob/4b0968947eb916b3a29d56bd5e17d620ff29a220/Segment/Internal/SEGIntegrationsManager.m#L417
// https://github.com/segmentio/analytics-ios/blob/4b0968947eb916b3a29d56bd5e17d620ff29a220/Segment/Internal/SEGIntegrationsManager.m#L441
// https://github.com/segmentio/analytics-ios/blob/4b0968947eb916b3a29d56bd5e17d620ff29a220/Segment/Internal/SEGUtils.m#L32
// https://github.com/segmentio/analytics-ios/blob/4b0968947eb916b3a29d56bd5e17d620ff29a220/Segment/Classes/SEGHTTPClient.m#L79
fn ios_classic_reads(settings: &Value) -> Result<String, String> {
    if !settings.is_object() {
        return Err("the answer is not a JSON object".to_owned());
    }
    absent_or(settings, "edgeFunction", Value::is_object)?;
    let host = api_host(segment_io(settings)?)?;
    let base = if host.contains("https://") {
        host.to_owned()
    } else {
        format!("https://{host}")
    };
    Ok(format!("{base}/batch"))
}

/// Classic analytics-android creates an integration only when its settings are a non-empty
/// object, so `Segment.io` must be one. Its `apiHost` (or the builder's `defaultApiHost` when
/// the settings have none) goes into `https://<apiHost>/import`.
// https://github.com/segmentio/analytics-android/blob/58d74728ad6a3f47ced995932e31a13a356a76f4/analytics/src/main/java/com/segment/analytics/Analytics.java#L1632
// https://github.com/segmentio/analytics-android/blob/58d74728ad6a3f47ced995932e31a13a356a76f4/analytics/src/main/java/com/segment/analytics/Analytics.java#L317
// https://github.com/segmentio/analytics-android/blob/58d74728ad6a3f47ced995932e31a13a356a76f4/analytics/src/main/java/com/segment/analytics/SegmentIntegration.java#L194
// https://github.com/segmentio/analytics-android/blob/58d74728ad6a3f47ced995932e31a13a356a76f4/analytics/src/main/java/com/segment/analytics/ConnectionFactory.java#L53
fn android_classic_reads(settings: &Value) -> Result<String, String> {
    let segment = segment_io(settings)?;
    if segment.is_empty() {
        return Err("`integrations.Segment.io` is empty, so no integration is created".to_owned());
    }
    let host = api_host(segment)?;
    Ok(format!("https://{host}/import"))
}

/// Checks that an event URL is `https://collect.example.com/v1/...` on a batch path this server
/// answers.
fn points_at_serve(event_url: &str) -> Result<(), String> {
    let url = url::Url::parse(event_url).map_err(|e| format!("`{event_url}` is no URL: {e}"))?;
    if url.scheme() != "https" || url.host_str() != Some(SERVE_HOST) || url.port().is_some() {
        return Err(format!(
            "events would go to `{event_url}`, not to https://{SERVE_HOST}"
        ));
    }
    if PathKind::from_path(url.path()) != Some(PathKind::Batch) {
        return Err(format!(
            "events would go to `{}`, a path this server does not take batches on",
            url.path()
        ));
    }
    Ok(())
}

/// How `serve` is reached from the phone: always through TLS at [`SERVE_HOST`].
#[derive(Clone, Copy, Debug)]
enum Deployment {
    /// `server.public_url` is `https://collect.example.com`.
    PublicUrl,
    /// No `public_url`; the TLS proxy in front sets `X-Forwarded-Proto` and `X-Forwarded-Host`.
    ForwardedHeaders,
}

impl Deployment {
    const ALL: [Deployment; 2] = [Deployment::PublicUrl, Deployment::ForwardedHeaders];

    /// The headers the proxy in front adds to the library's own.
    fn proxy_headers(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Deployment::PublicUrl => &[],
            Deployment::ForwardedHeaders => &[
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", SERVE_HOST),
            ],
        }
    }
}

/// Starts an intake server on 127.0.0.1 for `deployment`, with a fresh recording sink (a
/// settings request must give it nothing).
async fn start_server(deployment: Deployment) -> (String, Arc<RecordingSink>) {
    let mut config = IntakeConfig::new([(SOURCE, WRITE_KEY)]).expect("test config is valid");
    if let Deployment::PublicUrl = deployment {
        config.public_url =
            Some(PublicUrl::parse(&format!("https://{SERVE_HOST}")).expect("public URL is valid"));
    }
    replay::start_server(config).await
}

/// Sends one library's settings request and checks the answer as that library reads it.
async fn replay(library: &Library, deployment: Deployment) -> Result<(), String> {
    let (base, sink) = start_server(deployment).await;
    let path = library.path.replace("{WRITE_KEY}", WRITE_KEY);
    let url = format!("{base}{path}");
    let client = reqwest::Client::builder()
        .build()
        .map_err(|e| format!("cannot build the http client: {e}"))?;
    let mut request = client.get(&url);
    for (name, value) in library.headers.iter().chain(deployment.proxy_headers()) {
        request = request.header(*name, *value);
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("request to {url} failed: {e}"))?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.unwrap_or_default();
    if status != 200 {
        return Err(format!("GET {path} answered {status}: {text}"));
    }
    if !content_type.starts_with("application/json") {
        return Err(format!("the answer's content type is `{content_type}`"));
    }
    let settings: Value =
        serde_json::from_str(&text).map_err(|e| format!("the answer is not JSON: {e}"))?;
    if !settings.is_object() {
        return Err(format!("the answer is not a JSON object: {text}"));
    }
    let api_key = settings.pointer("/integrations/Segment.io/apiKey");
    if api_key.and_then(Value::as_str) != Some(WRITE_KEY) {
        return Err(format!(
            "`Segment.io.apiKey` is {api_key:?}, not the write key"
        ));
    }
    let event_url = (library.read)(&settings)?;
    points_at_serve(&event_url)?;
    if !sink.events().is_empty() {
        return Err("a settings request put events in the sink".to_owned());
    }
    Ok(())
}

#[tokio::test]
async fn every_mobile_library_loads_settings_that_point_it_back_at_serve() {
    let mut failures = Vec::new();
    let libraries = libraries();
    for library in &libraries {
        for deployment in Deployment::ALL {
            if let Err(failure) = replay(library, deployment).await {
                failures.push(format!(
                    "{} ({deployment:?}; configured as {}): {failure}",
                    library.name, library.configuration
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} settings requests are not answered as the library needs:\n{}",
        failures.len(),
        libraries.len() * Deployment::ALL.len(),
        failures.join("\n")
    );
}

#[test]
fn each_reader_refuses_what_its_library_cannot_use() {
    let readers = libraries();
    let good = serde_json::json!({
        "integrations": {SEGMENT_IO: {"apiKey": WRITE_KEY, "apiHost": "collect.example.com/v1"}},
    });
    for library in &readers {
        let url = (library.read)(&good)
            .unwrap_or_else(|e| panic!("{}: minimal settings refused: {e}", library.name));
        assert_eq!(points_at_serve(&url), Ok(()), "{}", library.name);

        // Without `Segment.io` no library sends events anywhere.
        let none = serde_json::json!({"integrations": {}});
        assert!((library.read)(&none).is_err(), "{}", library.name);
    }

    let by_name = |prefix: &str| {
        readers
            .iter()
            .find(|library| library.name.starts_with(prefix))
            .map(|library| library.read)
            .unwrap_or_else(|| panic!("no library named {prefix}"))
    };
    let kotlin = by_name("analytics-kotlin");
    let no_key = serde_json::json!({
        "integrations": {SEGMENT_IO: {"apiHost": "collect.example.com/v1"}},
    });
    assert!(kotlin(&no_key).is_err(), "Kotlin needs `apiKey`");
    let mut plan_list = good.clone();
    plan_list["plan"] = serde_json::json!([]);
    assert!(
        kotlin(&plan_list).is_err(),
        "Kotlin types `plan` as an object"
    );
    let mut telemetry_on = good.clone();
    telemetry_on["metrics"] = serde_json::json!({"sampleRate": 0.1});
    assert!(
        kotlin(&telemetry_on).is_err(),
        "telemetry would go to Segment"
    );
    assert!(by_name("analytics-swift")(&telemetry_on).is_err());
    assert!(by_name("segment_analytics")(&serde_json::json!({})).is_err());

    // Segment's own answer points the libraries at Segment, which the check notices.
    assert!(points_at_serve("https://api.segment.io/v1/b").is_err());
    assert!(points_at_serve("https://collect.example.com/v1/m").is_err());
    assert_eq!(
        points_at_serve("https://collect.example.com/v1/import"),
        Ok(())
    );
}
