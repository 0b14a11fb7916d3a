//! Configuration of the mock server: where it listens, which API key it expects, the rate limits it
//! enforces, the faults it injects and where it records requests.
//!
//! Every type here is plain data with public fields so that the `actionkit` binary can fill it from
//! command-line flags; [`MockConfig::validate`] checks the values before the server starts.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// The only `X-API-Version` value Userpilot documents; the mock requires exactly this value.
pub const API_VERSION: &str = "2020-09-22";

/// The default cap on request bodies, in bytes (1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// Everything the mock server needs to run.
///
/// `Debug` output never shows the API key.
#[derive(Clone)]
pub struct MockConfig {
    /// The address to listen on; port 0 picks a free port (see [`crate::MockServer::local_addr`]).
    pub listen: SocketAddr,
    /// When set, every request must carry `Authorization: Token <key>` with exactly this key
    /// (the scheme is matched case-insensitively), else the answer is 401. When unset, the
    /// `Authorization` header is not checked at all.
    pub api_key: Option<String>,
    /// When true (the default), every request to a known endpoint must carry
    /// `X-API-Version: 2020-09-22`, else the answer is 400.
    pub require_api_version: bool,
    /// Per-endpoint rate limits; beyond them the answer is 429 with `Retry-After`.
    pub rate_limits: RateLimits,
    /// Fault injection: random or scripted errors, latency and dropped connections, on every
    /// endpoint or only some.
    pub faults: FaultConfig,
    /// When set, one JSON line per request is appended to this file.
    pub record: Option<PathBuf>,
    /// Request bodies larger than this many bytes are answered with 413 (the bulk endpoints take
    /// up to Userpilot's 50 MB whatever this says).
    pub max_body_bytes: usize,
    /// How many rows a minute a bulk-identify job applies (Userpilot documents about 1,200); scale
    /// it with the rate limits to shorten a test.
    pub bulk_rows_per_minute: u32,
    /// When set, the state Userpilot would hold (`GET /_mock/state`) is written to this file as
    /// JSON when the server stops.
    pub state_file: Option<PathBuf>,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            api_key: None,
            require_api_version: true,
            rate_limits: RateLimits::default(),
            faults: FaultConfig::default(),
            record: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            bulk_rows_per_minute: crate::world::DEFAULT_BULK_ROWS_PER_MINUTE,
            state_file: None,
        }
    }
}

impl fmt::Debug for MockConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockConfig")
            .field("listen", &self.listen)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("require_api_version", &self.require_api_version)
            .field("rate_limits", &self.rate_limits)
            .field("faults", &self.faults)
            .field("record", &self.record)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("bulk_rows_per_minute", &self.bulk_rows_per_minute)
            .field("state_file", &self.state_file)
            .finish()
    }
}

impl MockConfig {
    /// Checks that every value is usable: probabilities within 0..=1, an error status within
    /// 400..=599, a latency range whose minimum does not exceed its maximum, rate limits that allow
    /// at least one request per non-zero window, a non-empty API key and a non-zero body cap.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self
            .api_key
            .as_deref()
            .is_some_and(|key| key.trim().is_empty())
        {
            return Err(ConfigError::EmptyApiKey);
        }
        if self.max_body_bytes == 0 {
            return Err(ConfigError::ZeroBodyLimit);
        }
        if self.bulk_rows_per_minute == 0 {
            return Err(ConfigError::ZeroBulkRate);
        }
        self.rate_limits.validate()?;
        self.faults.validate()
    }
}

/// A sliding-window limit: at most `max_requests` accepted requests in any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// How many requests the window admits.
    pub max_requests: u32,
    /// How long the window is.
    pub window: Duration,
}

impl RateLimit {
    /// Creates a limit of `max_requests` per `window`.
    pub const fn new(max_requests: u32, window: Duration) -> Self {
        Self {
            max_requests,
            window,
        }
    }

    /// Checks that the limit admits at least one request in a non-zero window.
    fn validate(&self, name: &'static str) -> Result<(), ConfigError> {
        if self.max_requests == 0 || self.window.is_zero() {
            return Err(ConfigError::RateLimit { name });
        }
        Ok(())
    }
}

/// The rate limits per endpoint group.
///
/// Limits are counted per server (one Userpilot app), not per API key. The delete limit is shared
/// by `DELETE /v1/users` and `DELETE /v1/companies`. `GET /v1/validate` is not limited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// When false, no limit is enforced.
    pub enabled: bool,
    /// The limit of `POST /v1/identify`.
    pub identify: RateLimit,
    /// The limit of `POST /v1/companies/identify`.
    pub companies_identify: RateLimit,
    /// The limit of `POST /v1/track`.
    pub track: RateLimit,
    /// The limit shared by `DELETE /v1/users` and `DELETE /v1/companies`.
    pub delete: RateLimit,
}

impl RateLimits {
    /// Userpilot's documented limits: identify, track and company identify 600 requests per minute
    /// each, delete one request every 2 seconds.
    pub const fn userpilot() -> Self {
        Self {
            enabled: true,
            identify: RateLimit::new(600, Duration::from_secs(60)),
            companies_identify: RateLimit::new(600, Duration::from_secs(60)),
            track: RateLimit::new(600, Duration::from_secs(60)),
            delete: RateLimit::new(1, Duration::from_secs(2)),
        }
    }

    /// These limits with every `max_requests` multiplied by `factor` (rounded down, at least
    /// 1), windows unchanged: with the same factor on the client's limits, a test runs at
    /// `factor` times Userpilot's pace and still checks that the client never exceeds them.
    pub fn scaled(mut self, factor: f64) -> Self {
        for limit in [
            &mut self.identify,
            &mut self.companies_identify,
            &mut self.track,
            &mut self.delete,
        ] {
            let scaled = (f64::from(limit.max_requests) * factor).floor();
            limit.max_requests = if scaled.is_finite() && scaled >= 1.0 {
                // Finite and at least 1; the cast saturates at u32::MAX.
                scaled as u32
            } else {
                1
            };
        }
        self
    }

    /// Userpilot's limits, switched off.
    pub const fn disabled() -> Self {
        let mut limits = Self::userpilot();
        limits.enabled = false;
        limits
    }

    /// The same limit for every endpoint group (handy for fast tests).
    pub const fn uniform(limit: RateLimit) -> Self {
        Self {
            enabled: true,
            identify: limit,
            companies_identify: limit,
            track: limit,
            delete: limit,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        self.identify.validate("identify")?;
        self.companies_identify.validate("companies_identify")?;
        self.track.validate("track")?;
        self.delete.validate("delete")
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        Self::userpilot()
    }
}

/// Fault injection settings. All probabilities are in `0.0..=1.0`; the defaults inject nothing.
///
/// Faults apply to the requests [`FaultConfig::endpoints`] selects (every request by default).
/// Each such request first gets its latency; then, while [`FaultConfig::script`] has steps left,
/// the next step decides its answer, and after that `drop_rate` and `error_rate` do.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    /// The share of requests answered with `error_status` instead of being processed.
    pub error_rate: f64,
    /// The status of injected errors (default 503).
    pub error_status: u16,
    /// Extra time to wait before answering (or dropping) each request.
    pub latency: Option<Latency>,
    /// When set, injected 429 and 503 answers (random or scripted) carry
    /// `Retry-After: <seconds>`.
    pub retry_after: Option<u64>,
    /// The share of requests whose connection is closed without an answer.
    pub drop_rate: f64,
    /// The seed of the random generator that decides faults; `None` seeds from the OS.
    ///
    /// With a seed, the sequence of decisions is fixed: request number `n` in arrival order among
    /// those [`FaultConfig::endpoints`] selects always gets the same decision, whatever the
    /// endpoint.
    pub seed: Option<u64>,
    /// The endpoints faults apply to: [`FaultEndpoints::All`] (the default) for every request,
    /// or only those of some endpoint groups, for example only the bulk identifies. The other
    /// requests are never delayed, dropped or failed, and do not advance the script or the
    /// random generator.
    pub endpoints: FaultEndpoints,
    /// Answers for the next requests to the faulted endpoints, one step each, in the order the
    /// requests arrive: an HTTP error status between 400 and 599, answered like an injected error
    /// (with `Retry-After` for 429 and 503 when `retry_after` is set), or 0 to close the
    /// connection without an answer. Once every step is used, the mock behaves as the rates say.
    /// Replacing the configuration (`MockHandle::set_faults`) starts its script from the first
    /// step. Empty by default.
    pub script: Vec<u16>,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            error_rate: 0.0,
            error_status: 503,
            latency: None,
            retry_after: None,
            drop_rate: 0.0,
            seed: None,
            endpoints: FaultEndpoints::All,
            script: Vec::new(),
        }
    }
}

impl FaultConfig {
    /// Returns true when any fault, latency or scripted answer is configured.
    pub fn is_active(&self) -> bool {
        self.error_rate > 0.0
            || self.drop_rate > 0.0
            || self.latency.is_some()
            || !self.script.is_empty()
    }

    /// Checks the probabilities, the error status, the latency range, the endpoint groups and
    /// the script's steps.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_probability("faults.error_rate", self.error_rate)?;
        check_probability("faults.drop_rate", self.drop_rate)?;
        if !(400..=599).contains(&self.error_status) {
            return Err(ConfigError::ErrorStatus(self.error_status));
        }
        if let Some(latency) = &self.latency {
            latency.validate()?;
        }
        if matches!(&self.endpoints, FaultEndpoints::Only(groups) if groups.is_empty()) {
            return Err(ConfigError::NoFaultEndpoints);
        }
        if let Some((step_idx, &status)) = self
            .script
            .iter()
            .enumerate()
            .find(|(_, status)| !is_script_status(**status))
        {
            return Err(ConfigError::ScriptStatus { step_idx, status });
        }
        Ok(())
    }

    /// Parses a fault script written as comma-separated steps, each an HTTP error status between
    /// 400 and 599 or `drop` (also written `0`), e.g. `"503,429"` or `"drop,503"`. Blank text is
    /// an empty script.
    pub fn parse_script(input: &str) -> Result<Vec<u16>, ConfigError> {
        if input.trim().is_empty() {
            return Ok(Vec::new());
        }
        input
            .split(',')
            .map(|step| {
                let step = step.trim();
                let status = if step.eq_ignore_ascii_case("drop") {
                    Some(0)
                } else {
                    step.parse::<u16>().ok().filter(|s| is_script_status(*s))
                };
                status.ok_or_else(|| ConfigError::InvalidScriptStep {
                    input: step.to_owned(),
                })
            })
            .collect()
    }
}

/// Whether a script step is usable: 0 (drop) or an HTTP error status.
fn is_script_status(status: u16) -> bool {
    status == 0 || (400..=599).contains(&status)
}

/// A group of Userpilot's endpoints that fault injection can be restricted to (see
/// [`FaultEndpoints`]). A request belongs to a group by its path, whatever its method.
///
/// Each group has a short name used on the command line and in error messages
/// ([`EndpointGroup::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EndpointGroup {
    /// `identify`: `POST /v1/identify`.
    Identify,
    /// `companies`: `POST /v1/companies/identify`.
    Companies,
    /// `track`: `POST /v1/track`.
    Track,
    /// `delete`: `DELETE /v1/users` and `DELETE /v1/companies`.
    Delete,
    /// `bulk`: `POST /v1/users/bulk_identify` and `POST /v1/companies/bulk_identify`.
    Bulk,
    /// `validate`: `GET /v1/validate`.
    Validate,
    /// `jobs`: `GET /v1/background_jobs` and `GET /v1/background_jobs/{job_id}`.
    Jobs,
}

impl EndpointGroup {
    /// Every group, in the order of their names in messages.
    pub const ALL: [EndpointGroup; 7] = [
        Self::Identify,
        Self::Companies,
        Self::Track,
        Self::Delete,
        Self::Bulk,
        Self::Validate,
        Self::Jobs,
    ];

    /// The group's short name, e.g. `bulk`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Identify => "identify",
            Self::Companies => "companies",
            Self::Track => "track",
            Self::Delete => "delete",
            Self::Bulk => "bulk",
            Self::Validate => "validate",
            Self::Jobs => "jobs",
        }
    }

    /// The accepted names, for error messages: `identify, companies, ..., jobs`.
    fn names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }
}

impl fmt::Display for EndpointGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EndpointGroup {
    type Err = ConfigError;

    /// Parses a group's short name, ignoring case and surrounding spaces.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let name = input.trim();
        Self::ALL
            .into_iter()
            .find(|group| group.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| ConfigError::UnknownEndpointGroup {
                input: name.to_owned(),
            })
    }
}

/// Which requests fault injection applies to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum FaultEndpoints {
    /// Every request, whatever its path, unknown paths and `GET /_mock/state` included (the
    /// default, and the behaviour before endpoint groups existed).
    #[default]
    All,
    /// Only requests to the endpoints of these groups; must name at least one.
    Only(BTreeSet<EndpointGroup>),
}

impl FaultEndpoints {
    /// Faults on the endpoints of `groups` only.
    pub fn only(groups: impl IntoIterator<Item = EndpointGroup>) -> Self {
        Self::Only(groups.into_iter().collect())
    }

    /// Whether a request to an endpoint of `group` (`None`: no group, such as an unknown path)
    /// gets faults.
    pub fn covers(&self, group: Option<EndpointGroup>) -> bool {
        match self {
            Self::All => true,
            Self::Only(groups) => group.is_some_and(|group| groups.contains(&group)),
        }
    }
}

impl fmt::Display for FaultEndpoints {
    /// `all`, or the groups' names separated by commas, e.g. `track,bulk`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("all"),
            Self::Only(groups) => {
                let names: Vec<&str> = groups.iter().map(|group| group.name()).collect();
                f.write_str(&names.join(","))
            }
        }
    }
}

impl FromStr for FaultEndpoints {
    type Err = ConfigError;

    /// Parses `all` or a comma-separated list of group names, e.g. `bulk,track`; a list that
    /// includes `all` means every request.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.trim().is_empty() {
            return Err(ConfigError::NoFaultEndpoints);
        }
        let mut groups = BTreeSet::new();
        for name in input.split(',').map(str::trim) {
            if name.eq_ignore_ascii_case("all") {
                return Ok(Self::All);
            }
            groups.insert(name.parse::<EndpointGroup>()?);
        }
        Ok(Self::Only(groups))
    }
}

fn check_probability(name: &'static str, value: f64) -> Result<(), ConfigError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::Probability { name, value })
    }
}

/// Added latency: a uniform draw from `min..=max`, plus `spike` with probability `spike_rate`.
///
/// Parses from text (see [`Latency::from_str`]): `"150ms"`, `"2s"`, `"50ms..250ms"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// The smallest added delay.
    pub min: Duration,
    /// The largest added delay (before spikes).
    pub max: Duration,
    /// The probability that a request gets `spike` on top of its delay.
    pub spike_rate: f64,
    /// The extra delay of a spike.
    pub spike: Duration,
}

impl Latency {
    /// A fixed delay.
    pub const fn fixed(delay: Duration) -> Self {
        Self::range(delay, delay)
    }

    /// A delay drawn uniformly from `min..=max`.
    pub const fn range(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            spike_rate: 0.0,
            spike: Duration::ZERO,
        }
    }

    /// Adds `spike` to the delay of a `rate` share of requests.
    pub const fn with_spikes(mut self, rate: f64, spike: Duration) -> Self {
        self.spike_rate = rate;
        self.spike = spike;
        self
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.min > self.max {
            return Err(ConfigError::LatencyRange {
                min: self.min,
                max: self.max,
            });
        }
        check_probability("faults.latency.spike_rate", self.spike_rate)
    }
}

impl FromStr for Latency {
    type Err = ConfigError;

    /// Parses `"<duration>"` (fixed) or `"<duration>..<duration>"` (uniform range), where a
    /// duration is a non-negative integer followed by `ms` or `s`, e.g. `"150ms"`, `"1s..3s"`.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: String| ConfigError::InvalidLatency {
            input: input.to_owned(),
            reason,
        };
        let latency = match input.split_once("..") {
            Some((min, max)) => Latency::range(
                parse_duration(min).map_err(invalid)?,
                parse_duration(max).map_err(invalid)?,
            ),
            None => Latency::fixed(parse_duration(input).map_err(invalid)?),
        };
        latency.validate()?;
        Ok(latency)
    }
}

/// Parses `"<integer>ms"` or `"<integer>s"`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (digits, millis_per_unit) = if let Some(digits) = text.strip_suffix("ms") {
        (digits, 1)
    } else if let Some(digits) = text.strip_suffix('s') {
        (digits, 1000)
    } else {
        return Err(format!(
            "'{text}' has no unit; expected a whole number followed by ms or s"
        ));
    };
    let amount: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a whole number followed by ms or s"))?;
    amount
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("'{text}' is too large"))
}

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A probability outside `0.0..=1.0`.
    #[error("{name} must be between 0 and 1, got {value}")]
    Probability {
        /// The setting's name.
        name: &'static str,
        /// The rejected value.
        value: f64,
    },
    /// An injected error status that is not an HTTP error status.
    #[error("faults.error_status must be an HTTP error status between 400 and 599, got {0}")]
    ErrorStatus(u16),
    /// A latency range whose minimum exceeds its maximum.
    #[error("latency minimum {min:?} is greater than its maximum {max:?}")]
    LatencyRange {
        /// The configured minimum.
        min: Duration,
        /// The configured maximum.
        max: Duration,
    },
    /// Latency text that does not parse.
    #[error("invalid latency '{input}': {reason}")]
    InvalidLatency {
        /// The text given.
        input: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A rate limit that admits nothing.
    #[error("rate limit {name} must allow at least one request in a non-zero window")]
    RateLimit {
        /// The endpoint group.
        name: &'static str,
    },
    /// An API key that is empty or only whitespace.
    #[error("the api key must not be empty")]
    EmptyApiKey,
    /// A body cap of zero bytes.
    #[error("max_body_bytes must be greater than zero")]
    ZeroBodyLimit,
    /// A bulk processing rate of zero rows a minute.
    #[error("bulk_rows_per_minute must be greater than zero")]
    ZeroBulkRate,
    /// A name that is not an endpoint group.
    #[error(
        "unknown endpoint group '{input}'; expected a comma-separated list of {}, or all",
        EndpointGroup::names()
    )]
    UnknownEndpointGroup {
        /// The name given.
        input: String,
    },
    /// A restriction of faults to no endpoint at all.
    #[error(
        "faults.endpoints must name at least one endpoint group ({}) or be all",
        EndpointGroup::names()
    )]
    NoFaultEndpoints,
    /// A fault script step that is neither a drop nor an HTTP error status.
    #[error(
        "faults.script[{step_idx}] must be 0 (drop the connection) or an HTTP error status between 400 and 599, got {status}"
    )]
    ScriptStatus {
        /// The step's position in the script, from 0.
        step_idx: usize,
        /// The rejected status.
        status: u16,
    },
    /// Fault script text with a step that does not parse.
    #[error(
        "invalid fault script step '{input}'; expected an HTTP error status between 400 and 599 or drop"
    )]
    InvalidScriptStep {
        /// The step as given.
        input: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_limits_multiply_the_counts_and_keep_the_windows() {
        let limits = RateLimits::userpilot().scaled(50.0);
        assert_eq!(
            limits.identify,
            RateLimit::new(30_000, Duration::from_secs(60))
        );
        assert_eq!(limits.delete, RateLimit::new(50, Duration::from_secs(2)));
        let tiny = RateLimits::userpilot().scaled(0.0001);
        assert_eq!(tiny.identify.max_requests, 1);
        assert!(limits.enabled);
    }

    #[test]
    fn parses_fixed_and_ranged_latency() {
        assert_eq!(
            "150ms".parse::<Latency>(),
            Ok(Latency::fixed(Duration::from_millis(150)))
        );
        assert_eq!(
            "1s..3s".parse::<Latency>(),
            Ok(Latency::range(
                Duration::from_secs(1),
                Duration::from_secs(3)
            ))
        );
    }

    #[test]
    fn rejects_bad_latency_text_naming_the_input() {
        let err = "fast".parse::<Latency>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid latency 'fast': 'fast' has no unit; expected a whole number followed by ms or s"
        );
        let err = "3s..1s".parse::<Latency>().unwrap_err();
        assert!(matches!(err, ConfigError::LatencyRange { .. }), "{err}");
    }

    #[test]
    fn validate_rejects_out_of_range_values() {
        let mut config = MockConfig::default();
        assert_eq!(config.validate(), Ok(()));
        config.faults.error_rate = 1.5;
        assert_eq!(
            config.validate().unwrap_err().to_string(),
            "faults.error_rate must be between 0 and 1, got 1.5"
        );
        config.faults.error_rate = 0.5;
        config.faults.error_status = 200;
        assert_eq!(config.validate(), Err(ConfigError::ErrorStatus(200)));
        config.faults.error_status = 503;
        config.rate_limits.delete.max_requests = 0;
        assert_eq!(
            config.validate(),
            Err(ConfigError::RateLimit { name: "delete" })
        );
        config.rate_limits.enabled = false;
        assert_eq!(config.validate(), Ok(()));
        config.api_key = Some("  ".into());
        assert_eq!(config.validate(), Err(ConfigError::EmptyApiKey));
    }

    #[test]
    fn parses_fault_endpoints_and_names_bad_values_and_the_allowed_ones() {
        assert_eq!("all".parse(), Ok(FaultEndpoints::All));
        assert_eq!("bulk,all".parse(), Ok(FaultEndpoints::All));
        assert_eq!(
            " Bulk , track,bulk".parse(),
            Ok(FaultEndpoints::only([
                EndpointGroup::Bulk,
                EndpointGroup::Track
            ]))
        );
        assert_eq!(
            FaultEndpoints::only([EndpointGroup::Bulk, EndpointGroup::Identify]).to_string(),
            "identify,bulk"
        );
        let err = "bulk,bulks".parse::<FaultEndpoints>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown endpoint group 'bulks'; expected a comma-separated list of identify, \
             companies, track, delete, bulk, validate, jobs, or all"
        );
        let err = "bulk,".parse::<FaultEndpoints>().unwrap_err();
        assert_eq!(
            err,
            ConfigError::UnknownEndpointGroup {
                input: String::new()
            }
        );
        assert_eq!(
            " ".parse::<FaultEndpoints>(),
            Err(ConfigError::NoFaultEndpoints)
        );
        for group in EndpointGroup::ALL {
            assert_eq!(group.name().parse(), Ok(group));
        }
    }

    #[test]
    fn fault_endpoints_cover_their_groups_only() {
        let only = FaultEndpoints::only([EndpointGroup::Bulk]);
        assert!(only.covers(Some(EndpointGroup::Bulk)));
        assert!(!only.covers(Some(EndpointGroup::Identify)));
        assert!(!only.covers(None));
        assert!(FaultEndpoints::All.covers(None));
        let mut config = MockConfig::default();
        config.faults.endpoints = FaultEndpoints::Only(BTreeSet::new());
        assert_eq!(config.validate(), Err(ConfigError::NoFaultEndpoints));
    }

    #[test]
    fn parses_and_validates_fault_scripts() {
        assert_eq!(
            FaultConfig::parse_script("503, 429,drop,0"),
            Ok(vec![503, 429, 0, 0])
        );
        assert_eq!(FaultConfig::parse_script(""), Ok(Vec::new()));
        for bad in ["200", "600", "x", "503,,429", "-1"] {
            let err = FaultConfig::parse_script(bad).unwrap_err();
            assert!(
                matches!(err, ConfigError::InvalidScriptStep { .. }),
                "{bad}: {err}"
            );
        }
        assert_eq!(
            FaultConfig::parse_script("503,200")
                .unwrap_err()
                .to_string(),
            "invalid fault script step '200'; expected an HTTP error status between 400 and 599 \
             or drop"
        );
        let faults = FaultConfig {
            script: vec![503, 0, 302],
            ..FaultConfig::default()
        };
        assert!(faults.is_active());
        assert_eq!(
            faults.validate().unwrap_err().to_string(),
            "faults.script[2] must be 0 (drop the connection) or an HTTP error status between 400 \
             and 599, got 302"
        );
    }

    #[test]
    fn debug_output_hides_the_api_key() {
        let config = MockConfig {
            api_key: Some("secret-key-123".into()),
            ..MockConfig::default()
        };
        let text = format!("{config:?}");
        assert!(!text.contains("secret-key-123"), "{text}");
        assert!(text.contains("***"), "{text}");
    }
}
