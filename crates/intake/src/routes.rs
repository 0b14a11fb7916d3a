//! Which paths the tracking API answers, as data: one table of every path that Segment's API and
//! its client libraries (and RudderStack's, which speak the same protocol) post events to.
//!
//! The router is built from [`TRACKING_ROUTES`], so accepting a new alias is one row here. Where a
//! row exists for one library only, its `used_by` says which, so nobody removes it as unused.
//! Every path is also answered with a trailing slash, which analytics-java adds
//! (`/v1/import/`). The replays in `tests/client_replays.rs` check each library's request against
//! this table.

use crate::event::EventType;
use crate::parse::PathKind;

/// One tracking path and what a request to it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// The request path, such as `/v1/t`.
    pub path: &'static str,
    /// A single call of one type, or a batch.
    pub kind: PathKind,
    /// Which clients post to this path, for the docs and for whoever wonders why it exists.
    pub used_by: &'static str,
}

const fn single(path: &'static str, event_type: EventType, used_by: &'static str) -> Route {
    Route {
        path,
        kind: PathKind::Single(event_type),
        used_by,
    }
}

const fn batch(path: &'static str, used_by: &'static str) -> Route {
    Route {
        path,
        kind: PathKind::Batch,
        used_by,
    }
}

/// Every path events are posted to, with the kind of request each one takes.
pub const TRACKING_ROUTES: &[Route] = &[
    single(
        "/v1/identify",
        EventType::Identify,
        "Segment's HTTP API; server libraries in single-call mode",
    ),
    single("/v1/track", EventType::Track, "Segment's HTTP API"),
    single("/v1/page", EventType::Page, "Segment's HTTP API"),
    single("/v1/screen", EventType::Screen, "Segment's HTTP API"),
    single("/v1/group", EventType::Group, "Segment's HTTP API"),
    single("/v1/alias", EventType::Alias, "Segment's HTTP API"),
    single(
        "/v1/i",
        EventType::Identify,
        "analytics.js (analytics-next), one request per call",
    ),
    single("/v1/t", EventType::Track, "analytics.js (analytics-next)"),
    single("/v1/p", EventType::Page, "analytics.js (analytics-next)"),
    single("/v1/s", EventType::Screen, "analytics.js (analytics-next)"),
    single("/v1/g", EventType::Group, "analytics.js (analytics-next)"),
    single("/v1/a", EventType::Alias, "analytics.js (analytics-next)"),
    batch(
        "/v1/batch",
        "Segment's HTTP API; analytics-node, analytics-python, analytics-go, analytics-php, RudderStack's server SDKs",
    ),
    batch(
        "/v1/b",
        "analytics.js in batching mode, analytics-swift, analytics-kotlin, analytics-react-native, analytics_flutter, analytics-csharp",
    ),
    batch(
        "/v1/import",
        "analytics-java (as `/v1/import/`), analytics-ruby, analytics-android (classic), Analytics.NET (classic)",
    ),
    batch(
        "/beacon/v1/batch",
        "RudderStack's browser SDK with `useBeacon`, the write key in the query string",
    ),
];

/// Where analytics.js sends its own telemetry (`{"series": [...]}`), answered and discarded.
pub const TELEMETRY_PATH: &str = "/v1/m";

/// Where analytics.js loads its settings from, under its `cdnURL`; the mobile libraries load it
/// from their `cdnHost`, which is `<host>/v1` when set as their docs say.
pub const SETTINGS_PATH: &str = "/v1/projects/{write_key}/settings";

/// The same without `/v1`, for a mobile `cdnHost` set without it (analytics-kotlin would fall
/// back to Segment's own API host on a 404 at first launch).
pub const SETTINGS_PATH_SHORT: &str = "/projects/{write_key}/settings";

impl PathKind {
    /// Reads a request path such as `/v1/track`, `/v1/t` or `/v1/import/`.
    pub fn from_path(path: &str) -> Option<Self> {
        let path = path.strip_suffix('/').unwrap_or(path);
        TRACKING_ROUTES
            .iter()
            .find(|route| route.path == path)
            .map(|route| route.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_has_a_full_and_a_short_path() {
        for event_type in EventType::ALL {
            let full = format!("/v1/{}", event_type.as_str());
            let short = format!("/v1/{}", &event_type.as_str()[..1]);
            assert_eq!(
                PathKind::from_path(&full),
                Some(PathKind::Single(event_type))
            );
            assert_eq!(
                PathKind::from_path(&short),
                Some(PathKind::Single(event_type))
            );
        }
        for alias in [
            "/v1/batch",
            "/v1/b",
            "/v1/import",
            "/v1/import/",
            "/beacon/v1/batch",
        ] {
            assert_eq!(PathKind::from_path(alias), Some(PathKind::Batch));
        }
        assert_eq!(PathKind::from_path("/v1/m"), None);
        assert_eq!(PathKind::from_path("/t"), None);
    }

    #[test]
    fn paths_are_unique() {
        let mut paths: Vec<&str> = TRACKING_ROUTES.iter().map(|r| r.path).collect();
        paths.sort_unstable();
        let before = paths.len();
        paths.dedup();
        assert_eq!(before, paths.len(), "a path is listed twice");
    }
}
