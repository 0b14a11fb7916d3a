//! The runtime configuration file (`actionkit.yaml`): which destination instances receive events,
//! with which settings and mappings, and how delivery behaves.
//!
//! Loading follows the same steps as destination files — YAML with positions, JSON Schema check,
//! deserialisation — then interpolates `${ENV_VAR}` in setting values. Every problem is reported
//! at once with file, line and column. Checks that need the generated destinations (does the
//! destination exist, are the settings valid) run in the binary, which uses [`LoadedConfig::pos`]
//! to point at the offending place.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::diagnostics::{Diagnostic, Diagnostics, Pos, pointer_join};
use crate::schema_check::{self, FileKind};
use crate::yaml::{self, SourceMap};

/// The runtime configuration: destination instances and delivery behaviour.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The destination instances events are delivered to, each with its own settings and mappings.
    pub destinations: Vec<InstanceConfig>,
    /// How requests are delivered; every key is optional.
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// The HTTP intake and durable queue of `actionkit serve`; only `serve` and the queue tools
    /// read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerConfig>,
}

/// The HTTP intake of `actionkit serve`: where it listens, which write keys it accepts, its
/// limits, and the durable queue behind it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// The address and port the intake listens on (default `127.0.0.1:8088`).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The sources allowed to send events, each with its write key; at least one is needed to
    /// serve.
    #[serde(default)]
    pub write_keys: Vec<WriteKeyConfig>,
    /// The durable queue between intake and delivery.
    #[serde(default)]
    pub queue: QueueSettings,
    /// Seconds after intake (or a DLQ replay) after which a failing delivery is no longer
    /// retried but dead-lettered (default 14400, four hours).
    #[serde(default = "default_max_age_secs")]
    pub max_age_secs: u64,
    /// Seconds: the ceiling of the random wait (full jitter) before the first queue-level retry
    /// of a delivery whose in-process attempts are spent; it doubles per failed attempt up to
    /// `retry_backoff_max_secs`. A destination's `Retry-After` replaces it (default 5).
    #[serde(default = "default_retry_backoff_secs")]
    pub retry_backoff_secs: f64,
    /// Seconds: the largest ceiling of the queue-level retry wait (default 600, ten minutes).
    #[serde(default = "default_retry_backoff_max_secs")]
    pub retry_backoff_max_secs: f64,
    /// The largest single event, and the largest body of a single call, in bytes (default
    /// 32768, Segment's limit).
    #[serde(default = "default_max_event_bytes")]
    pub max_event_bytes: usize,
    /// The largest `/v1/batch` body in bytes, after inflating (default 512000, Segment's limit).
    #[serde(default = "default_max_batch_bytes")]
    pub max_batch_bytes: usize,
    /// Which web pages may send events from a browser (CORS).
    #[serde(default)]
    pub cors: CorsSettings,
    /// The URL apps reach this server at, such as `https://collect.example.com` (with a path
    /// prefix when a proxy adds one). analytics.js loads its settings from this server and is
    /// told to send its events here. Without it the scheme and host are taken from each
    /// settings request (`X-Forwarded-Proto`, `X-Forwarded-Host`, else `Host`), which is right
    /// unless a proxy rewrites the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[A-Za-z0-9.\-_:\[\]]+(/[A-Za-z0-9/._~\-]*)?$"))]
    #[schemars(extend("x-expected" = "an http or https URL such as `https://collect.example.com`, with an optional path and no query"))]
    pub public_url: Option<String>,
    /// The web console under `/console` (Event Tester, mapping editor, delivery overview) on
    /// the intake's address. Off unless this section is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console: Option<ConsoleSettings>,
}

/// The web console of `actionkit serve` (and `actionkit console`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSettings {
    /// The name of the environment variable that holds the console's token (at least 16
    /// characters), such as `ACTIONKIT_CONSOLE_TOKEN`. Every call of the console's API must
    /// send it as `Authorization: Bearer <token>` or `X-Console-Token: <token>`; the intake's
    /// write keys do not open the console. The token itself never goes into this file.
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    #[schemars(extend("x-expected" = "an environment variable name such as `ACTIONKIT_CONSOLE_TOKEN` (letters, digits and `_`)"))]
    pub token_env: String,
}

/// Cross-origin rules for browsers sending events.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CorsSettings {
    /// The origins whose pages may send events, such as `https://app.example.com` (scheme,
    /// host and an optional port, no path), or `*` alone for any origin (default `["*"]`, as
    /// Segment's API allows). A browser request from another origin gets no CORS headers and
    /// is refused with 403; requests without an `Origin` header (servers, mobile apps) are not
    /// affected.
    #[serde(default = "default_allowed_origins")]
    #[schemars(inner(regex(pattern = r"^(\*|https?://[A-Za-z0-9.\-_:\[\]]+/?)$")))]
    #[schemars(extend("x-expected" = "`*`, or an origin such as `https://app.example.com` (scheme, host, optional port, no path)"))]
    pub allowed_origins: Vec<String>,
}

impl Default for CorsSettings {
    fn default() -> Self {
        CorsSettings {
            allowed_origins: default_allowed_origins(),
        }
    }
}

fn default_allowed_origins() -> Vec<String> {
    vec!["*".to_owned()]
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            write_keys: Vec::new(),
            queue: QueueSettings::default(),
            max_age_secs: default_max_age_secs(),
            retry_backoff_secs: default_retry_backoff_secs(),
            retry_backoff_max_secs: default_retry_backoff_max_secs(),
            max_event_bytes: default_max_event_bytes(),
            max_batch_bytes: default_max_batch_bytes(),
            cors: CorsSettings::default(),
            public_url: None,
            console: None,
        }
    }
}

/// One source allowed to send events: a name and its write key.
#[derive(Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteKeyConfig {
    /// The source's name; stored events, logs and metrics carry it.
    pub name: String,
    /// The source's write key. It may use `${ENV_VAR}` (and `$${` for a literal `${`); keep
    /// it in the environment, not in this file.
    pub key: String,
}

// The key is a secret, so Debug shows only the name.
impl std::fmt::Debug for WriteKeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteKeyConfig")
            .field("name", &self.name)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// Where the durable queue lives and how much it may hold.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    /// Where events wait for delivery: `sqlite`, a file of this one process (the default), or
    /// `jetstream`, a NATS JetStream shared by several `serve` nodes (see `jetstream`).
    #[serde(default)]
    pub backend: QueueBackend,
    /// The SQLite file of the queue, relative to the working directory (default
    /// `actionkit-queue.sqlite`); only with `backend: sqlite`.
    #[serde(default = "default_queue_path")]
    pub path: String,
    /// The NATS JetStream the queue lives in; only with `backend: jetstream`, where the
    /// defaults reach a server on `nats://127.0.0.1:4222`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jetstream: Option<JetStreamSettings>,
    /// Most events stored at once, dead-lettered ones included; beyond it intake answers 503
    /// (default 1000000). On JetStream it bounds stored requests (the events of one request
    /// are one message), dead letters not included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_events: Option<u64>,
    /// Most event bytes stored at once, dead-lettered ones included; beyond it intake answers
    /// 503 (default 1 GiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// Seconds a delivery worker holds an event it took from the queue before another may take
    /// it; a delivery still running at nine tenths of it is cut off and retried later (default
    /// 60). Raise it for a destination whose requests, with their in-process retries, take
    /// longer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_secs: Option<u64>,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            backend: QueueBackend::default(),
            path: default_queue_path(),
            jetstream: None,
            max_events: None,
            max_bytes: None,
            lease_secs: None,
        }
    }
}

/// Which store the queue uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum QueueBackend {
    /// An SQLite file of one `serve` process.
    #[default]
    Sqlite,
    /// NATS JetStream, shared by every `serve` node connected to it.
    Jetstream,
}

/// Where the queue lives in NATS JetStream, and how the streams are set up. Every `serve` node
/// of a cluster must use the same values.
#[derive(Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JetStreamSettings {
    /// The NATS servers, such as `nats://nats-1:4222` (any one is enough; the client learns
    /// the rest of the cluster). May use `${ENV_VAR}` (default `["nats://127.0.0.1:4222"]`).
    #[serde(default = "default_nats_urls")]
    pub urls: Vec<String>,
    /// The NATS user, when the servers ask for one. May use `${ENV_VAR}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The NATS password of `user`. Use `${ENV_VAR}`: keep it in the environment, not in this
    /// file; it is never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A NATS authentication token, instead of a user and password. Use `${ENV_VAR}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The stream events are stored in (default `ACTIONKIT_EVENTS`).
    #[serde(default = "default_events_stream")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]{1,64}$"))]
    #[schemars(extend("x-expected" = "a stream name of letters, digits, `_` and `-`"))]
    pub stream: String,
    /// The stream dead letters are kept in (default `ACTIONKIT_DLQ`).
    #[serde(default = "default_dead_letter_stream")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]{1,64}$"))]
    #[schemars(extend("x-expected" = "a stream name of letters, digits, `_` and `-`"))]
    pub dead_letter_stream: String,
    /// The stream replayed dead letters wait in until delivered (default `ACTIONKIT_REPLAY`).
    #[serde(default = "default_replay_stream")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]{1,64}$"))]
    #[schemars(extend("x-expected" = "a stream name of letters, digits, `_` and `-`"))]
    pub replay_stream: String,
    /// The first token of every subject the queue uses (default `actionkit`).
    #[serde(default = "default_subject_prefix")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]{1,64}$"))]
    #[schemars(extend("x-expected" = "a subject token of letters, digits, `_` and `-`"))]
    pub subject_prefix: String,
    /// Copies of every stream across the NATS cluster: 1 for a single server, 3 (or 5) for a
    /// cluster that keeps every acknowledged event when a server dies (default 1).
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 5))]
    pub replicas: u8,
    /// Seconds JetStream keeps an event at most, delivered or not (default 604800, seven
    /// days). It must be longer than `server.max_age_secs`, or events would be dropped while
    /// their retries still run.
    #[serde(default = "default_retention_secs")]
    pub retention_secs: u64,
    /// Seconds during which an event with the same `messageId` is stored once: a client's
    /// retry of a request whose answer it missed (default 120).
    #[serde(default = "default_duplicate_window_secs")]
    pub duplicate_window_secs: u64,
}

impl std::fmt::Debug for JetStreamSettings {
    /// Credentials are left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamSettings")
            .field("urls", &self.urls)
            .field("user", &self.user.as_ref().map(|_| "[redacted]"))
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("stream", &self.stream)
            .field("dead_letter_stream", &self.dead_letter_stream)
            .field("replay_stream", &self.replay_stream)
            .field("subject_prefix", &self.subject_prefix)
            .field("replicas", &self.replicas)
            .field("retention_secs", &self.retention_secs)
            .field("duplicate_window_secs", &self.duplicate_window_secs)
            .finish()
    }
}

impl Default for JetStreamSettings {
    fn default() -> Self {
        JetStreamSettings {
            urls: default_nats_urls(),
            user: None,
            password: None,
            token: None,
            stream: default_events_stream(),
            dead_letter_stream: default_dead_letter_stream(),
            replay_stream: default_replay_stream(),
            subject_prefix: default_subject_prefix(),
            replicas: default_replicas(),
            retention_secs: default_retention_secs(),
            duplicate_window_secs: default_duplicate_window_secs(),
        }
    }
}

fn default_nats_urls() -> Vec<String> {
    vec!["nats://127.0.0.1:4222".to_owned()]
}

fn default_events_stream() -> String {
    "ACTIONKIT_EVENTS".to_owned()
}

fn default_dead_letter_stream() -> String {
    "ACTIONKIT_DLQ".to_owned()
}

fn default_replay_stream() -> String {
    "ACTIONKIT_REPLAY".to_owned()
}

fn default_subject_prefix() -> String {
    "actionkit".to_owned()
}

fn default_replicas() -> u8 {
    1
}

fn default_retention_secs() -> u64 {
    7 * 24 * 60 * 60
}

fn default_duplicate_window_secs() -> u64 {
    120
}

fn default_listen() -> String {
    "127.0.0.1:8088".to_owned()
}

fn default_max_age_secs() -> u64 {
    4 * 60 * 60
}

fn default_retry_backoff_secs() -> f64 {
    5.0
}

fn default_retry_backoff_max_secs() -> f64 {
    600.0
}

fn default_max_event_bytes() -> usize {
    32 * 1024
}

fn default_max_batch_bytes() -> usize {
    500 * 1024
}

fn default_queue_path() -> String {
    "actionkit-queue.sqlite".to_owned()
}

/// One destination instance.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceConfig {
    /// A name for the instance, unique in the file; it appears in summaries and metrics.
    pub name: String,
    /// The destination's slug, for example `actions-userpilot-cloud`.
    pub destination: String,
    /// Setting values by setting key. String values may use `${ENV_VAR}` (and `$${` for a
    /// literal `${`); secrets belong in the environment, not in this file.
    #[serde(default)]
    pub settings: IndexMap<String, Value>,
    /// `presets` (the default) uses the destination's presets; otherwise a list of mappings.
    #[serde(default)]
    pub mappings: Mappings,
    /// Instances that are not enabled receive nothing.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// For actions whose API merges by id (`merges_by_id`): skip a request that would change
    /// nothing that was delivered before, and send requests for one record that wait together
    /// as one (default true). `false` sends one request per event, as Segment does.
    #[serde(default = "default_true")]
    pub send_only_changes: bool,
}

/// Which mappings an instance runs.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Mappings {
    /// The word `presets`: the destination's presets, those enabled by default (Segment's).
    Presets(PresetsKeyword),
    /// An explicit list of mappings.
    List(Vec<MappingConfig>),
}

impl Default for Mappings {
    fn default() -> Self {
        Mappings::Presets(PresetsKeyword::Presets)
    }
}

/// The word `presets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PresetsKeyword {
    /// Use the destination's presets.
    Presets,
}

/// One configured mapping: a trigger, an action and how the action's fields are filled.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {
    /// A name for the mapping, unique within the instance.
    pub name: String,
    /// The trigger in Segment's subscription language, for example `type = "track"`.
    pub trigger: String,
    /// The key of the action the mapping feeds, for example `trackEvent`.
    pub action: String,
    /// `defaults` (the action's default field mappings) or an object of field key → mapping-kit
    /// mapping.
    #[serde(default = "defaults_mapping")]
    pub mapping: Value,
    /// Disabled mappings never run.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

/// Delivery behaviour shared by every instance.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Seconds one attempt may take (default 10).
    #[serde(default = "default_timeout")]
    pub timeout_secs: f64,
    /// Attempts per request, the first one included (default 5).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Requests in flight at once per instance (default 16).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Whether the destinations' declared rate limits apply (default true).
    #[serde(default = "default_true")]
    pub rate_limits: bool,
    /// A factor on every declared rate limit (default 1): 50 allows 30,000 identifies a minute
    /// where Userpilot declares 600. Only for tests against a mock whose limits are scaled by
    /// the same factor (`actionkit mock-userpilot --rate-limit-scale 50`).
    #[serde(default = "default_scale")]
    #[schemars(range(min = 0.001, max = 1000000))]
    pub rate_limit_scale: f64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            timeout_secs: default_timeout(),
            max_attempts: default_attempts(),
            concurrency: default_concurrency(),
            rate_limits: true,
            rate_limit_scale: default_scale(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_scale() -> f64 {
    1.0
}

fn default_timeout() -> f64 {
    10.0
}

fn default_attempts() -> u32 {
    5
}

fn default_concurrency() -> usize {
    16
}

fn defaults_mapping() -> Value {
    Value::String("defaults".to_owned())
}

/// A configuration that loaded, with the positions of its values for later diagnostics.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The file name as given to the loader.
    pub file: String,
    /// The configuration, with `${ENV_VAR}` already replaced.
    pub config: Config,
    map: SourceMap,
}

impl LoadedConfig {
    /// The position of the value at `pointer` (or its closest ancestor).
    pub fn pos(&self, pointer: &str) -> Pos {
        self.map.value_or_ancestor(pointer)
    }

    /// A diagnostic at `pointer` in this file.
    pub fn diagnostic(&self, pointer: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(self.file.clone(), self.pos(pointer), pointer, message)
    }
}

/// The JSON Schema of `actionkit.yaml`.
pub fn config_schema() -> Value {
    crate::schema::schema_for::<Config>(
        "actionkit configuration",
        "The runtime configuration: destination instances, their settings and mappings, and delivery.",
    )
}

/// Loads a configuration from its text; `env` looks environment variables up.
pub fn load_config_str(
    file: &str,
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<LoadedConfig, Diagnostics> {
    load_config(file, text, env, true).map_err(|problems| problems.about("the configuration"))
}

/// Loads a configuration for a command that only uses its destination instances (`send`,
/// `console`, `test-auth`, the deletions): like [`load_config_str`], but the `${VAR}`s of the
/// `server` section (write keys, JetStream credentials) are left as written rather than
/// required, since such a command never reads them.
pub fn load_destinations_config_str(
    file: &str,
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<LoadedConfig, Diagnostics> {
    load_config(file, text, env, false).map_err(|problems| problems.about("the configuration"))
}

fn load_config(
    file: &str,
    text: &str,
    env: impl Fn(&str) -> Option<String>,
    server: bool,
) -> Result<LoadedConfig, Diagnostics> {
    let (mut value, map) = yaml::parse(file, text).map_err(Diagnostics::new)?;
    let problems = schema_check::check(FileKind::Config, file, &value, &map);
    if !problems.is_empty() {
        return Err(Diagnostics::new(problems));
    }
    let mut problems = Vec::new();
    if server {
        interpolate_write_keys(file, &mut value, &map, &env, &mut problems);
        interpolate_jetstream(file, &mut value, &map, &env, &mut problems);
    }
    interpolate_settings(file, &mut value, &map, &env, &mut problems);
    let config: Config = match serde_json::from_value(value) {
        Ok(config) => config,
        Err(err) => {
            problems.push(Diagnostic::new(
                file,
                Pos::START,
                "",
                format!("invalid configuration: {err}"),
            ));
            return Err(Diagnostics::new(problems));
        }
    };
    check_names(file, &config, &map, &mut problems);
    if !problems.is_empty() {
        return Err(Diagnostics::new(problems));
    }
    Ok(LoadedConfig {
        file: file.to_owned(),
        config,
        map,
    })
}

/// Replaces `${VAR}` in every string setting value of the destination instances; `$${` stands
/// for a literal `${`.
fn interpolate_settings(
    file: &str,
    value: &mut Value,
    map: &SourceMap,
    env: &impl Fn(&str) -> Option<String>,
    problems: &mut Vec<Diagnostic>,
) {
    let Some(instances) = value.get_mut("destinations").and_then(Value::as_array_mut) else {
        return;
    };
    for (idx, instance) in instances.iter_mut().enumerate() {
        let Some(settings) = instance.get_mut("settings").and_then(Value::as_object_mut) else {
            continue;
        };
        for (key, setting) in settings.iter_mut() {
            let Value::String(text) = setting else {
                continue;
            };
            let pointer = pointer_join(&format!("/destinations/{idx}/settings"), key);
            interpolate_at(file, text, &pointer, map, env, problems);
        }
    }
}

/// Replaces `${VAR}` in every `server.write_keys[].key`, like setting values.
fn interpolate_write_keys(
    file: &str,
    value: &mut Value,
    map: &SourceMap,
    env: &impl Fn(&str) -> Option<String>,
    problems: &mut Vec<Diagnostic>,
) {
    let Some(keys) = value
        .get_mut("server")
        .and_then(|server| server.get_mut("write_keys"))
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for (idx, entry) in keys.iter_mut().enumerate() {
        let Some(Value::String(text)) = entry.get_mut("key") else {
            continue;
        };
        let pointer = format!("/server/write_keys/{idx}/key");
        interpolate_at(file, text, &pointer, map, env, problems);
    }
}

/// Replaces `${VAR}` in `server.queue.jetstream`'s URLs and credentials, like setting values.
fn interpolate_jetstream(
    file: &str,
    value: &mut Value,
    map: &SourceMap,
    env: &impl Fn(&str) -> Option<String>,
    problems: &mut Vec<Diagnostic>,
) {
    let Some(jetstream) = value
        .get_mut("server")
        .and_then(|server| server.get_mut("queue"))
        .and_then(|queue| queue.get_mut("jetstream"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for key in ["user", "password", "token"] {
        if let Some(Value::String(text)) = jetstream.get_mut(key) {
            let pointer = format!("/server/queue/jetstream/{key}");
            interpolate_at(file, text, &pointer, map, env, problems);
        }
    }
    if let Some(Value::Array(urls)) = jetstream.get_mut("urls") {
        for (idx, url) in urls.iter_mut().enumerate() {
            if let Value::String(text) = url {
                let pointer = format!("/server/queue/jetstream/urls/{idx}");
                interpolate_at(file, text, &pointer, map, env, problems);
            }
        }
    }
}

/// Replaces `${VAR}` in `text`, the value at `pointer`, or records why it cannot.
fn interpolate_at(
    file: &str,
    text: &mut String,
    pointer: &str,
    map: &SourceMap,
    env: &impl Fn(&str) -> Option<String>,
    problems: &mut Vec<Diagnostic>,
) {
    match interpolate(text, env) {
        Ok(Some(replaced)) => *text = replaced,
        Ok(None) => {}
        Err(message) => problems.push(Diagnostic::new(
            file,
            map.value_or_ancestor(pointer),
            pointer,
            message,
        )),
    }
}

/// Interpolates one string; `Ok(None)` when it has nothing to replace.
pub fn interpolate(
    text: &str,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<String>, String> {
    if !text.contains('$') {
        return Ok(None);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(idx) = rest.find('$') {
        out.push_str(&rest[..idx]);
        let after = &rest[idx..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let Some(end) = tail.find('}') else {
                return Err("unclosed '${' in setting value; expected '${NAME}' (write '$${' for a literal '${')".to_owned());
            };
            let name = &tail[..end];
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(format!(
                    "invalid environment variable name '{name}'; expected letters, digits and '_'"
                ));
            }
            match env(name) {
                Some(value) => out.push_str(&value),
                None => return Err(format!("environment variable '{name}' is not set")),
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(Some(out))
}

/// Instance names and mapping names must be unique.
fn check_names(file: &str, config: &Config, map: &SourceMap, problems: &mut Vec<Diagnostic>) {
    for (idx, instance) in config.destinations.iter().enumerate() {
        if config.destinations[..idx]
            .iter()
            .any(|other| other.name == instance.name)
        {
            let pointer = format!("/destinations/{idx}/name");
            problems.push(Diagnostic::new(
                file,
                map.value_or_ancestor(&pointer),
                pointer,
                format!("duplicate instance name '{}'", instance.name),
            ));
        }
        if let Mappings::List(list) = &instance.mappings {
            for (m_idx, mapping) in list.iter().enumerate() {
                if list[..m_idx].iter().any(|other| other.name == mapping.name) {
                    let pointer = format!("/destinations/{idx}/mappings/{m_idx}/name");
                    problems.push(Diagnostic::new(
                        file,
                        map.value_or_ancestor(&pointer),
                        pointer,
                        format!("duplicate mapping name '{}'", mapping.name),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("s3cret".to_owned()),
            _ => None,
        }
    }

    #[test]
    fn interpolation_replaces_and_escapes() {
        assert_eq!(
            interpolate("Token ${KEY}", &env),
            Ok(Some("Token s3cret".to_owned()))
        );
        assert_eq!(
            interpolate("$${KEY} costs $5", &env),
            Ok(Some("${KEY} costs $5".to_owned()))
        );
        assert_eq!(interpolate("plain", &env), Ok(None));
        assert_eq!(
            interpolate("${MISSING}", &env),
            Err("environment variable 'MISSING' is not set".to_owned())
        );
        assert!(interpolate("${KEY", &env).is_err());
        assert!(interpolate("${1X}", &env).is_err());
    }

    #[test]
    fn loads_presets_by_default_and_points_at_problems() {
        let text = "destinations:\n  - name: up\n    destination: actions-userpilot-cloud\n    settings:\n      apiKey: ${KEY}\n";
        let loaded = load_config_str("actionkit.yaml", text, env);
        let Ok(loaded) = loaded else {
            panic!("expected the config to load");
        };
        assert_eq!(loaded.config.destinations[0].mappings, Mappings::default());
        assert_eq!(loaded.config.destinations[0].settings["apiKey"], "s3cret");
        assert_eq!(loaded.pos("/destinations/0/settings/apiKey").line, 5);

        let bad = "destinations:\n  - name: up\n    destination: x\n    settings:\n      apiKey: ${NOPE}\n    mapings: presets\n";
        let Err(diags) = load_config_str("actionkit.yaml", bad, env) else {
            panic!("expected errors");
        };
        let text = diags.to_string();
        assert!(text.contains("mapings"), "{text}");
        assert!(
            text.ends_with("error: could not load the configuration due to 1 previous error"),
            "{text}"
        );
    }

    #[test]
    fn a_command_using_only_the_instances_needs_no_server_variables() {
        let text = "destinations:\n  - name: up\n    destination: actions-userpilot-cloud\n    settings:\n      apiKey: ${KEY}\nserver:\n  write_keys:\n    - name: web\n      key: ${NOPE}\n  queue:\n    backend: jetstream\n    jetstream:\n      urls: [\"${NOPE_TOO}\"]\n";
        assert!(load_config_str("actionkit.yaml", text, env).is_err());
        let Ok(loaded) = load_destinations_config_str("actionkit.yaml", text, env) else {
            panic!("expected the instances to load");
        };
        assert_eq!(loaded.config.destinations[0].settings["apiKey"], "s3cret");
        // The instances' own variables are still required.
        let missing = text.replace("${KEY}", "${NOPE}");
        let Err(diags) = load_destinations_config_str("actionkit.yaml", &missing, env) else {
            panic!("expected an error");
        };
        let text = diags.to_string();
        assert!(
            text.contains("environment variable 'NOPE' is not set")
                && text.contains("(/destinations/0/settings/apiKey)")
                && !text.contains("write_keys"),
            "{text}"
        );
    }

    #[test]
    fn server_section_has_defaults_and_interpolates_write_keys() {
        let text = "destinations: []\nserver:\n  write_keys:\n    - name: web\n      key: ${KEY}\n";
        let Ok(loaded) = load_config_str("actionkit.yaml", text, env) else {
            panic!("expected the config to load");
        };
        let Some(server) = loaded.config.server else {
            panic!("expected a server section");
        };
        assert_eq!(server.listen, "127.0.0.1:8088");
        assert_eq!(server.queue.path, "actionkit-queue.sqlite");
        assert_eq!(server.max_age_secs, 14_400);
        assert_eq!(
            (server.retry_backoff_secs, server.retry_backoff_max_secs),
            (5.0, 600.0)
        );
        assert_eq!(server.write_keys[0].key, "s3cret");
        assert!(!format!("{:?}", server.write_keys).contains("s3cret"));

        let missing =
            "destinations: []\nserver:\n  write_keys:\n    - name: web\n      key: ${NOPE}\n";
        let Err(diags) = load_config_str("actionkit.yaml", missing, env) else {
            panic!("expected an error");
        };
        let text = diags.to_string();
        assert!(
            text.contains("NOPE") && text.contains("write_keys"),
            "{text}"
        );
    }

    #[test]
    fn the_queue_backend_defaults_to_sqlite_and_jetstream_credentials_come_from_the_environment() {
        let text = "destinations: []\nserver:\n  write_keys: []\n";
        let Ok(loaded) = load_config_str("actionkit.yaml", text, env) else {
            panic!("expected the config to load");
        };
        let server = loaded.config.server.unwrap_or_default();
        assert_eq!(server.queue.backend, QueueBackend::Sqlite);
        assert_eq!(server.queue.jetstream, None);

        let text = "destinations: []\nserver:\n  queue:\n    backend: jetstream\n    jetstream:\n      urls: [\"nats://n1:4222\", \"nats://n2:4222\"]\n      user: actionkit\n      password: ${KEY}\n      replicas: 3\n";
        let Ok(loaded) = load_config_str("actionkit.yaml", text, env) else {
            panic!("expected the config to load");
        };
        let queue = loaded.config.server.unwrap_or_default().queue;
        assert_eq!(queue.backend, QueueBackend::Jetstream);
        let Some(js) = queue.jetstream else {
            panic!("expected a jetstream section");
        };
        assert_eq!(js.urls, vec!["nats://n1:4222", "nats://n2:4222"]);
        assert_eq!(js.password.as_deref(), Some("s3cret"));
        assert_eq!(js.replicas, 3);
        assert_eq!(js.stream, "ACTIONKIT_EVENTS");
        assert_eq!(js.duplicate_window_secs, 120);
        let debug = format!("{js:?}");
        assert!(!debug.contains("s3cret"), "{debug}");

        for (bad, expected_place) in [
            ("    backend: kafka\n", "4:14"),
            ("    jetstream:\n      replicas: 7\n", "5:17"),
            ("    jetstream:\n      stream: \"has space\"\n", "5:15"),
            ("    jetstream:\n      subjects: x\n", "5:7"),
        ] {
            let text = format!("destinations: []\nserver:\n  queue:\n{bad}");
            let Err(diags) = load_config_str("actionkit.yaml", &text, env) else {
                panic!("expected {bad:?} to be refused");
            };
            let message = diags.to_string();
            assert!(
                message.contains(&format!("actionkit.yaml:{expected_place}")),
                "{bad:?}: {message}"
            );
        }
    }

    #[test]
    fn cors_origins_and_the_public_url_are_checked_where_they_are_written() {
        let text = "destinations: []\nserver:\n  write_keys: []\n";
        let Ok(loaded) = load_config_str("actionkit.yaml", text, env) else {
            panic!("expected the config to load");
        };
        let server = loaded.config.server.unwrap_or_default();
        assert_eq!(server.cors.allowed_origins, vec!["*".to_owned()]);
        assert_eq!(server.public_url, None);

        let good = "destinations: []\nserver:\n  public_url: https://collect.example.com/seg\n  cors:\n    allowed_origins: [\"https://app.example.com\", \"http://localhost:3000/\"]\n";
        assert!(load_config_str("actionkit.yaml", good, env).is_ok());

        let bad = "destinations: []\nserver:\n  public_url: collect.example.com\n  cors:\n    allowed_origins:\n      - https://app.example.com\n      - app.example.com/path\n";
        let Err(diags) = load_config_str("actionkit.yaml", bad, env) else {
            panic!("expected errors");
        };
        let text = diags.to_string();
        assert!(text.contains("actionkit.yaml:7:"), "{text}");
        assert!(text.contains("/server/cors/allowed_origins/1"), "{text}");
        assert!(text.contains("actionkit.yaml:3:"), "{text}");
        assert!(text.contains("/server/public_url"), "{text}");
    }

    #[test]
    fn the_console_is_off_unless_configured_and_names_its_token_variable() {
        let text = "destinations: []\nserver:\n  write_keys: []\n";
        let Ok(loaded) = load_config_str("actionkit.yaml", text, env) else {
            panic!("expected the config to load");
        };
        assert_eq!(loaded.config.server.unwrap_or_default().console, None);

        let text =
            "destinations: []\nserver:\n  console:\n    token_env: ACTIONKIT_CONSOLE_TOKEN\n";
        let Ok(loaded) = load_config_str("actionkit.yaml", text, env) else {
            panic!("expected the config to load");
        };
        let console = loaded.config.server.unwrap_or_default().console;
        assert_eq!(
            console.map(|c| c.token_env),
            Some("ACTIONKIT_CONSOLE_TOKEN".to_owned())
        );

        for (bad, expected_place) in [
            ("    token_env: \"${KEY}\"\n", "4:16"),
            ("    token: s3cret\n", "4:5"),
            ("    {}\n", "3:3"),
        ] {
            let text = format!("destinations: []\nserver:\n  console:\n{bad}");
            let Err(diags) = load_config_str("actionkit.yaml", &text, env) else {
                panic!("expected {bad:?} to be refused");
            };
            let message = diags.to_string();
            assert!(
                message.contains(&format!("actionkit.yaml:{expected_place}")),
                "{bad:?}: {message}"
            );
            assert!(!message.contains("s3cret"), "{message}");
        }
    }

    #[test]
    fn secrets_are_not_echoed_in_errors() {
        let text =
            "destinations:\n  - name: up\n    destination: d\n    settings:\n      apiKey: ${KEY\n";
        let Err(diags) = load_config_str("actionkit.yaml", text, env) else {
            panic!("expected an error");
        };
        assert!(!diags.to_string().contains("s3cret"));
    }
}
