//! Intake configuration: the named sources with their write keys, and the limits.
//!
//! Write keys are secrets. They live in [`WriteKey`], which pads every key into a fixed-size
//! buffer so that comparing a presented key against it takes the same time whatever the key's
//! length or content, and whose `Debug` output never shows the key.

use std::fmt;
use std::sync::Arc;

use subtle::ConstantTimeEq;

/// The longest write key accepted, in bytes.
///
/// Keys are padded to this length so that comparisons leak neither content nor length.
pub const MAX_WRITE_KEY_BYTES: usize = 256;

/// Segment's limit for one event, and for the body of a single (non-batch) call: 32 KB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 32 * 1024;

/// Segment's limit for the body of a `/v1/batch` request: 500 KB.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 500 * 1024;

/// Segment's limit for the number of events in one batch.
pub const DEFAULT_MAX_BATCH_EVENTS: usize = 2500;

/// The default deepest nesting of objects and arrays inside one event.
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// The deepest nesting that may be configured; kept below serde_json's own recursion limit (128)
/// so that our clear error always fires first.
pub const MAX_CONFIGURABLE_DEPTH: usize = 100;

/// A write key, kept in a fixed-size buffer and compared in constant time.
#[derive(Clone)]
pub struct WriteKey {
    padded: Box<[u8; MAX_WRITE_KEY_BYTES]>,
    len: u64,
}

impl WriteKey {
    /// Wraps a write key; fails when it is empty or longer than [`MAX_WRITE_KEY_BYTES`].
    pub fn new(key: &str) -> Result<Self, ConfigError> {
        let bytes = key.as_bytes();
        if bytes.is_empty() {
            return Err(ConfigError::EmptyWriteKey);
        }
        if bytes.len() > MAX_WRITE_KEY_BYTES {
            return Err(ConfigError::WriteKeyTooLong {
                max: MAX_WRITE_KEY_BYTES,
            });
        }
        Ok(Self::pad(bytes).unwrap_or_else(|| Self {
            padded: Box::new([0; MAX_WRITE_KEY_BYTES]),
            len: 0,
        }))
    }

    /// Pads presented bytes into a key; `None` when they are longer than the maximum.
    fn pad(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > MAX_WRITE_KEY_BYTES {
            return None;
        }
        let mut padded = Box::new([0u8; MAX_WRITE_KEY_BYTES]);
        padded[..bytes.len()].copy_from_slice(bytes);
        Some(Self {
            padded,
            len: bytes.len() as u64,
        })
    }

    /// Compares in constant time: the work done does not depend on where the keys differ.
    fn ct_matches(&self, other: &Self) -> subtle::Choice {
        self.padded[..].ct_eq(&other.padded[..]) & self.len.ct_eq(&other.len)
    }
}

impl fmt::Debug for WriteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WriteKey(<redacted>)")
    }
}

/// One named source: the events sent with its write key are stamped with its name.
#[derive(Clone, Debug)]
pub struct Source {
    /// The source's name, as it appears on stored events, in logs and in metric labels.
    pub name: Arc<str>,
    /// The source's write key.
    pub write_key: WriteKey,
}

/// Everything the request parser needs to know: sources and limits.
#[derive(Clone, Debug)]
pub struct IntakeConfig {
    sources: Vec<Source>,
    /// The largest single event (and the largest body of a single call), after inflating.
    pub max_event_bytes: usize,
    /// The largest `/v1/batch` body, after inflating.
    pub max_batch_bytes: usize,
    /// The most events one batch may carry; items past this index are rejected one by one.
    pub max_batch_events: usize,
    /// The deepest nesting of objects and arrays within one event.
    pub max_depth: usize,
    /// Which web origins browsers may send events from (CORS).
    pub cors: Cors,
    /// The URL clients reach this server at, such as `https://collect.example.com`, used in the
    /// settings analytics.js loads; `None` takes it from each request's `Host` header.
    pub public_url: Option<PublicUrl>,
}

/// Which web origins may call the tracking API from a browser.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Cors {
    /// Any origin, as Segment's own API allows (the default).
    #[default]
    AnyOrigin,
    /// Only these origins, each `scheme://host[:port]` in lower case; a browser request from
    /// any other origin is refused with 403.
    Origins(Vec<String>),
}

impl Cors {
    /// Builds the policy from `server.cors.allowed_origins`: `*` alone means any origin, and
    /// every other entry must be an origin such as `https://app.example.com`.
    pub fn from_list<S: AsRef<str>>(list: &[S]) -> Result<Self, ConfigError> {
        if list.iter().any(|o| o.as_ref().trim() == "*") {
            if list.len() > 1 {
                return Err(ConfigError::WildcardWithOrigins);
            }
            return Ok(Self::AnyOrigin);
        }
        if list.is_empty() {
            return Err(ConfigError::NoOrigins);
        }
        let mut origins = Vec::with_capacity(list.len());
        for (idx, raw) in list.iter().enumerate() {
            let origin = parse_origin(raw.as_ref()).ok_or_else(|| ConfigError::BadOrigin {
                index: idx,
                found: raw.as_ref().chars().take(80).collect(),
            })?;
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Ok(Self::Origins(origins))
    }

    /// Whether a browser on `origin` (the `Origin` header's value) may send events.
    pub fn allows(&self, origin: &[u8]) -> bool {
        match self {
            Self::AnyOrigin => true,
            Self::Origins(list) => list
                .iter()
                .any(|allowed| allowed.as_bytes().eq_ignore_ascii_case(origin)),
        }
    }
}

/// Reads `scheme://host[:port]` (http or https, no path, query or user), lower-cased.
fn parse_origin(raw: &str) -> Option<String> {
    let text = raw.trim();
    let (scheme, rest) = text.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if !is_authority(authority) {
        return None;
    }
    Some(format!("{scheme}://{}", authority.to_ascii_lowercase()))
}

/// Whether `text` is a plain `host[:port]`: letters, digits, `.`, `-`, `_`, IPv6 brackets and
/// colons, nothing that could start a path, a query or a user name.
pub(crate) fn is_authority(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 255
        && text.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']')
        })
}

/// The public base URL of the server, split the way analytics.js's settings want it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicUrl {
    /// `http` or `https`.
    pub scheme: String,
    /// `host[:port]` followed by any path prefix, without a trailing slash.
    pub host_and_prefix: String,
}

impl PublicUrl {
    /// Reads `server.public_url`: `http(s)://host[:port][/prefix]`, without a query.
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let bad = || ConfigError::BadPublicUrl(raw.chars().take(80).collect());
        let text = raw.trim().trim_end_matches('/');
        let (scheme, rest) = text.split_once("://").ok_or_else(bad)?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(bad());
        }
        let (authority, prefix) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        let prefix_ok = prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'-' | b'_' | b'~'));
        if !is_authority(authority) || !prefix_ok {
            return Err(bad());
        }
        Ok(Self {
            scheme,
            host_and_prefix: format!("{}{prefix}", authority.to_ascii_lowercase()),
        })
    }
}

impl IntakeConfig {
    /// Builds a configuration with Segment's limits from `(source name, write key)` pairs.
    ///
    /// Fails when there is no source, a name is empty or repeated, or a key is empty, too long
    /// or shared by two sources.
    pub fn new<N, K>(sources: impl IntoIterator<Item = (N, K)>) -> Result<Self, ConfigError>
    where
        N: AsRef<str>,
        K: AsRef<str>,
    {
        let mut out: Vec<Source> = Vec::new();
        for (name, key) in sources {
            let name = name.as_ref();
            if name.trim().is_empty() {
                return Err(ConfigError::EmptySourceName);
            }
            if out.iter().any(|s| &*s.name == name) {
                return Err(ConfigError::DuplicateSourceName(name.to_owned()));
            }
            let write_key = WriteKey::new(key.as_ref())
                .map_err(|e| ConfigError::InSource(name.to_owned(), Box::new(e)))?;
            if let Some(other) = out
                .iter()
                .find(|s| bool::from(s.write_key.ct_matches(&write_key)))
            {
                return Err(ConfigError::DuplicateWriteKey {
                    first: other.name.to_string(),
                    second: name.to_owned(),
                });
            }
            out.push(Source {
                name: Arc::from(name),
                write_key,
            });
        }
        if out.is_empty() {
            return Err(ConfigError::NoSources);
        }
        Ok(Self {
            sources: out,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            max_batch_events: DEFAULT_MAX_BATCH_EVENTS,
            max_depth: DEFAULT_MAX_DEPTH,
            cors: Cors::AnyOrigin,
            public_url: None,
        })
    }

    /// Checks the limits: all positive, the event limit not above the batch limit, and the depth
    /// limit at most [`MAX_CONFIGURABLE_DEPTH`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_event_bytes == 0 || self.max_batch_bytes == 0 || self.max_batch_events == 0 {
            return Err(ConfigError::ZeroLimit);
        }
        if self.max_event_bytes > self.max_batch_bytes {
            return Err(ConfigError::EventLimitAboveBatchLimit);
        }
        if self.max_depth == 0 || self.max_depth > MAX_CONFIGURABLE_DEPTH {
            return Err(ConfigError::DepthOutOfRange {
                max: MAX_CONFIGURABLE_DEPTH,
            });
        }
        Ok(())
    }

    /// The configured sources, in configuration order.
    pub fn sources(&self) -> &[Source] {
        &self.sources
    }

    /// The largest body accepted for a request of this kind, after inflating.
    pub fn max_body_bytes(&self, batch: bool) -> usize {
        if batch {
            self.max_batch_bytes
        } else {
            self.max_event_bytes
        }
    }

    /// Finds the source whose write key equals `presented`.
    ///
    /// Every configured key is compared, in constant time, whatever matches; only the final
    /// choice branches.
    pub fn source_for_key(&self, presented: &[u8]) -> Option<&Source> {
        // A presented key longer than any valid key is compared as an all-zero key of length
        // zero, which never matches, so the loop below still runs over every source.
        let candidate = WriteKey::pad(presented).unwrap_or_else(|| WriteKey {
            padded: Box::new([0; MAX_WRITE_KEY_BYTES]),
            len: u64::MAX,
        });
        let mut found: Option<&Source> = None;
        for source in &self.sources {
            let hit = bool::from(source.write_key.ct_matches(&candidate));
            if hit && found.is_none() {
                found = Some(source);
            }
        }
        found
    }
}

/// A problem in the intake configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No source was configured.
    #[error("no source is configured; add at least one source with a write key")]
    NoSources,
    /// A source has an empty name.
    #[error("a source has an empty name")]
    EmptySourceName,
    /// Two sources share a name.
    #[error("source name `{0}` is used twice")]
    DuplicateSourceName(String),
    /// Two sources share a write key.
    #[error("sources `{first}` and `{second}` have the same write key")]
    DuplicateWriteKey {
        /// The first source with the key.
        first: String,
        /// The second source with the key.
        second: String,
    },
    /// A write key is empty.
    #[error("write key is empty")]
    EmptyWriteKey,
    /// A write key is too long.
    #[error("write key is longer than {max} bytes")]
    WriteKeyTooLong {
        /// The longest key accepted.
        max: usize,
    },
    /// A problem with one source's settings.
    #[error("source `{0}`: {1}")]
    InSource(String, Box<ConfigError>),
    /// A limit is zero.
    #[error("size and count limits must be greater than zero")]
    ZeroLimit,
    /// The per-event limit exceeds the per-batch limit.
    #[error("max_event_bytes must not exceed max_batch_bytes")]
    EventLimitAboveBatchLimit,
    /// The depth limit is out of range.
    #[error("max_depth must be between 1 and {max}")]
    DepthOutOfRange {
        /// The deepest nesting that may be configured.
        max: usize,
    },
    /// `allowed_origins` is an empty list.
    #[error(
        "cors.allowed_origins is empty; list origins such as `https://app.example.com`, or `*` for any origin"
    )]
    NoOrigins,
    /// `*` is listed beside origins.
    #[error(
        "cors.allowed_origins lists `*` beside other origins; use `*` alone for any origin, or only origins"
    )]
    WildcardWithOrigins,
    /// An entry of `allowed_origins` is not an origin.
    #[error(
        "cors.allowed_origins[{index}] is `{found}`; expected an origin such as `https://app.example.com` (scheme and host, an optional port, no path)"
    )]
    BadOrigin {
        /// The entry's position in the list.
        index: usize,
        /// The entry, cut to 80 characters.
        found: String,
    },
    /// `public_url` is not an http(s) URL.
    #[error(
        "public_url is `{0}`; expected an http or https URL such as `https://collect.example.com`, with an optional path and no query"
    )]
    BadPublicUrl(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_source_by_its_key() {
        let cfg = IntakeConfig::new([("web", "key-web"), ("server", "key-server")]).unwrap();
        assert_eq!(&*cfg.source_for_key(b"key-web").unwrap().name, "web");
        assert_eq!(&*cfg.source_for_key(b"key-server").unwrap().name, "server");
        assert!(cfg.source_for_key(b"key-we").is_none());
        assert!(cfg.source_for_key(b"key-web\0").is_none());
        assert!(cfg.source_for_key(b"").is_none());
        assert!(cfg.source_for_key(&[b'k'; 1000]).is_none());
    }

    #[test]
    fn rejects_bad_source_lists() {
        assert!(matches!(
            IntakeConfig::new(Vec::<(&str, &str)>::new()),
            Err(ConfigError::NoSources)
        ));
        assert!(matches!(
            IntakeConfig::new([("a", "k"), ("a", "j")]),
            Err(ConfigError::DuplicateSourceName(_))
        ));
        assert!(matches!(
            IntakeConfig::new([("a", "k"), ("b", "k")]),
            Err(ConfigError::DuplicateWriteKey { .. })
        ));
        assert!(matches!(
            IntakeConfig::new([("a", "")]),
            Err(ConfigError::InSource(_, _))
        ));
        let long = "x".repeat(MAX_WRITE_KEY_BYTES + 1);
        assert!(IntakeConfig::new([("a", long.as_str())]).is_err());
    }

    #[test]
    fn debug_output_hides_keys() {
        let cfg = IntakeConfig::new([("web", "super-secret-key")]).unwrap();
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("super-secret-key"), "{dbg}");
        assert!(dbg.contains("web"));
    }

    #[test]
    fn cors_lists() {
        assert_eq!(Cors::from_list(&["*"]).unwrap(), Cors::AnyOrigin);
        let cors = Cors::from_list(&["https://App.Example.com/", "http://localhost:3000"]).unwrap();
        assert_eq!(
            cors,
            Cors::Origins(vec![
                "https://app.example.com".to_owned(),
                "http://localhost:3000".to_owned()
            ])
        );
        assert!(cors.allows(b"https://app.example.com"));
        assert!(cors.allows(b"HTTPS://APP.EXAMPLE.COM"));
        assert!(!cors.allows(b"https://evil.example.com"));
        assert!(!cors.allows(b"null"));
        assert!(Cors::AnyOrigin.allows(b"null"));
        for bad in [
            "app.example.com",
            "ftp://x",
            "https://x/path",
            "https://u@x",
            "https://",
        ] {
            let err = Cors::from_list(&[bad]).unwrap_err();
            assert!(
                matches!(err, ConfigError::BadOrigin { index: 0, .. }),
                "{bad}: {err}"
            );
        }
        assert!(matches!(
            Cors::from_list::<&str>(&[]),
            Err(ConfigError::NoOrigins)
        ));
        assert!(matches!(
            Cors::from_list(&["*", "https://a.example"]),
            Err(ConfigError::WildcardWithOrigins)
        ));
    }

    #[test]
    fn public_urls() {
        let url = PublicUrl::parse("https://Collect.example.com/").unwrap();
        assert_eq!(
            (url.scheme.as_str(), url.host_and_prefix.as_str()),
            ("https", "collect.example.com")
        );
        let url = PublicUrl::parse("http://127.0.0.1:8088/segment").unwrap();
        assert_eq!(url.host_and_prefix, "127.0.0.1:8088/segment");
        for bad in [
            "collect.example.com",
            "https://x/?q=1",
            "wss://x",
            "https://a b",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn validates_limits() {
        let mut cfg = IntakeConfig::new([("a", "k")]).unwrap();
        assert!(cfg.validate().is_ok());
        cfg.max_depth = MAX_CONFIGURABLE_DEPTH + 1;
        assert!(cfg.validate().is_err());
        cfg.max_depth = 10;
        cfg.max_event_bytes = cfg.max_batch_bytes + 1;
        assert!(cfg.validate().is_err());
    }
}
