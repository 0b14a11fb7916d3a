//! The settings object analytics.js loads at start from `{cdnURL}/v1/projects/{writeKey}/settings`.
//!
//! Segment's CDN answers with the source's settings: the destinations to load in the browser,
//! middleware, tracking plan, telemetry sampling. The library needs only a few keys; this module
//! builds the smallest object it loads without complaint, with its Segment.io destination
//! pointing back at this server. Nothing in it makes the library fetch more code: no device-mode
//! destinations, no remote plugins, no middleware, no tracking plan, no legacy video plugins.
//! Its own telemetry is sampled at zero, so it never posts to `/v1/m` on its own.

use serde_json::{Value, json};

/// The settings for `write_key`, sending events to `{scheme}://{host_and_prefix}/v1/...`.
///
/// `host_and_prefix` is `host[:port]` plus any path prefix the server is reached under, as in
/// analytics.js's own `apiHost` (which is `api.segment.io/v1` for Segment).
pub fn browser_settings(write_key: &str, scheme: &str, host_and_prefix: &str) -> Value {
    let api_host = format!("{host_and_prefix}/v1");
    json!({
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": api_host,
                "protocol": scheme,
                "unbundledIntegrations": [],
                "addBundledMetadata": true,
                "maybeBundledConfigIds": {},
            }
        },
        "edgeFunction": {},
        "analyticsNextEnabled": true,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0},
        "legacyVideoPluginsEnabled": false,
        "remotePlugins": [],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_the_segment_destination_back_at_this_server() {
        let settings = browser_settings("wk", "https", "collect.example.com/segment");
        let segment = &settings["integrations"]["Segment.io"];
        assert_eq!(segment["apiKey"], "wk");
        assert_eq!(segment["apiHost"], "collect.example.com/segment/v1");
        assert_eq!(segment["protocol"], "https");
        // The Segment.io destination is the only integration, so no device-mode code is loaded.
        assert_eq!(
            settings["integrations"].as_object().map(|o| o.len()),
            Some(1)
        );
        assert_eq!(settings["metrics"]["sampleRate"], 0);
    }
}
