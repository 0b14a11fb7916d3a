//! Building delivery targets: destination instances with their settings, mappings and clients.
//!
//! Without a config file the embedded default is used: the Userpilot destination with its three
//! presets, settings from `--setting NAME=VALUE` or `USERPILOT_*` environment variables.

use std::sync::Arc;
use std::time::Duration;

use actionkit_runtime::delivery::{DeliveryClient, DeliveryConfig, RateLimit};
use actionkit_runtime::destination::{CompiledDestination, Registry};
use actionkit_runtime::dispatch::{Instance, InstanceError, MappingConfig};
use actionkit_runtime::fields::SettingDef;
use actionkit_runtime::validate::fill_setting_defaults;
use actionkit_spec::config::Mappings;
use actionkit_spec::diagnostics::{Diagnostic, Diagnostics, did_you_mean};
use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Map, Value};

/// The slug of the embedded default destination.
pub const DEFAULT_DESTINATION: &str = "actions-userpilot-cloud";

/// The prefix of environment variables that carry the embedded default's settings.
pub const DEFAULT_ENV_PREFIX: &str = "USERPILOT";

/// Settings and delivery options shared by every command that talks to a destination.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// A destination setting as NAME=VALUE (repeatable), for example `--setting apiKey=…`;
    /// without it the embedded default reads `USERPILOT_<NAME>` (e.g. `USERPILOT_API_KEY`).
    ///
    /// Parsed after argument parsing (not by clap) so that a malformed value, which may be a
    /// secret, is never echoed in an error.
    #[arg(long = "setting", value_name = "NAME=VALUE")]
    pub settings: Vec<String>,
    /// Send every request of actions whose API merges by id, even one that changes nothing
    /// delivered before, one request per event as Segment does (the configuration's
    /// `send_only_changes: false` does the same per instance).
    #[arg(long)]
    pub send_unchanged: bool,
    /// Per-attempt timeout in seconds.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    pub timeout: f64,
    /// Attempts per request, the first one included.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub max_attempts: u32,
    /// Requests in flight at once, per destination instance.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub concurrency: usize,
    /// The longest wait on a busy destination per request before it counts as out of retries;
    /// `serve` keeps it within a lease, so that a busy row is postponed rather than cut off.
    #[arg(skip)]
    pub max_busy: Option<Duration>,
    /// Multiply the destination's declared rate limits by this factor (only for tests against
    /// a mock whose limits are scaled alike, `mock-userpilot --rate-limit-scale`).
    #[arg(long, default_value_t = 1.0, value_name = "FACTOR")]
    pub rate_limit_scale: f64,
    /// Turn off the destination's declared rate limits (only for mocks and load tests).
    #[arg(long)]
    pub no_rate_limits: bool,
    /// The backoff ceiling of the first retry in seconds; it doubles per retry (full jitter).
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    pub backoff_base: f64,
    /// The largest backoff ceiling in seconds.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    pub backoff_cap: f64,
    /// The longest `Retry-After` honoured in seconds; longer requests are cut to this.
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    pub max_retry_after: f64,
    /// No retry starts later than this many seconds after a request's first attempt.
    #[arg(long, default_value_t = 120.0, value_name = "SECONDS")]
    pub max_elapsed: f64,
}

/// Converts a seconds flag into a duration, naming the flag when the value is unusable.
fn seconds(flag: &str, value: f64, allow_zero: bool) -> anyhow::Result<Duration> {
    let ok = value.is_finite() && (value > 0.0 || (allow_zero && value == 0.0)) && value < 1e9;
    if !ok {
        bail!("--{flag} must be a positive number of seconds, found {value}");
    }
    Ok(Duration::from_secs_f64(value))
}

fn parse_setting(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!(
            "expected NAME=VALUE, found '{}'",
            first_chars(text, 20)
        )),
    }
}

/// The start of `text`, so an error never echoes a whole secret.
fn first_chars(text: &str, n: usize) -> String {
    let mut out: String = text.chars().take(n).collect();
    if text.chars().count() > n {
        out.push('…');
    }
    out
}

/// One destination instance ready to dispatch and deliver.
pub struct Target {
    /// The instance's name, for summaries.
    pub name: String,
    /// The compiled instance.
    pub instance: Arc<Instance>,
    /// The delivery client with the instance's rate limits.
    pub client: Arc<DeliveryClient>,
    /// Whether requests of actions whose API merges by id are skipped when they change nothing
    /// and merged when they wait together (`send_only_changes` in the configuration).
    pub send_only_changes: bool,
}

impl Target {
    /// The merge rule of `action` when this target sends only what changed (none otherwise):
    /// what coalescing and skipping unchanged requests go by.
    pub fn merges(&self, action: &str) -> Option<actionkit_runtime::destination::MergesDef> {
        if self.send_only_changes {
            self.instance.merges(action)
        } else {
            None
        }
    }
}

/// Compiles the generated destinations.
pub fn registry() -> anyhow::Result<Registry> {
    actionkit_destinations::registry().map_err(|problems| {
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        anyhow::anyhow!(
            "the generated destinations are invalid: {}",
            text.join("; ")
        )
    })
}

/// The embedded default target: Userpilot with its presets.
pub fn embedded_default(
    args: &TargetArgs,
    endpoint_override: Option<&str>,
) -> anyhow::Result<Target> {
    let registry = registry()?;
    let dest = registry
        .get(DEFAULT_DESTINATION)
        .with_context(|| format!("destination '{DEFAULT_DESTINATION}' is not generated"))?
        .clone();
    let pairs = args
        .settings
        .iter()
        .map(|text| parse_setting(text).map_err(|err| anyhow::anyhow!("--setting: {err}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut settings = settings_from_args(dest.def.settings, &pairs, |name| {
        std::env::var(env_name(name)).ok()
    })?;
    if let (Some(endpoint), Value::Object(map)) = (endpoint_override, &mut settings) {
        map.insert("endpoint".to_owned(), Value::String(endpoint.to_owned()));
    }
    fill_setting_defaults(dest.def.settings, &mut settings);
    check_required(dest.def.settings, &settings)?;
    let instance =
        Instance::from_presets(dest.clone(), &settings).map_err(|err| anyhow::anyhow!("{err}"))?;
    let client = delivery_client(&dest, args)?;
    Ok(Target {
        name: "userpilot".to_owned(),
        instance: Arc::new(instance),
        client: Arc::new(client),
        send_only_changes: !args.send_unchanged,
    })
}

/// The targets of a runtime configuration file; every problem is reported at once with the
/// file, line and column it concerns.
pub fn from_config_file(path: &std::path::Path, args: &TargetArgs) -> anyhow::Result<Vec<Target>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration {}", path.display()))?;
    let file = path.display().to_string();
    let loaded = actionkit_spec::load_config_str(&file, &text, |name| std::env::var(name).ok())
        .map_err(|diags| anyhow::anyhow!("invalid configuration\n{diags}"))?;
    let registry = registry()?;
    let mut problems: Vec<Diagnostic> = Vec::new();
    let mut targets = Vec::new();
    let delivery = &loaded.config.delivery;
    let delivery_args = TargetArgs {
        settings: Vec::new(),
        timeout: delivery.timeout_secs,
        max_attempts: delivery.max_attempts,
        concurrency: delivery.concurrency,
        no_rate_limits: args.no_rate_limits || !delivery.rate_limits,
        rate_limit_scale: args.rate_limit_scale * delivery.rate_limit_scale,
        ..args.clone()
    };
    for (idx, config) in loaded.config.destinations.iter().enumerate() {
        if !config.enabled {
            continue;
        }
        let base = format!("/destinations/{idx}");
        let Some(dest) = registry.get(&config.destination) else {
            let slugs: Vec<&str> = registry.iter().map(|d| d.def.slug).collect();
            problems.push(
                loaded
                    .diagnostic(
                        &format!("{base}/destination"),
                        format!("unknown destination '{}'", config.destination),
                    )
                    .expected(format!("one of {}", slugs.join(", ")))
                    .maybe_hint(did_you_mean(&config.destination, slugs.iter().copied())),
            );
            continue;
        };
        let defs = dest.def.settings;
        let mut unknown = false;
        for key in config.settings.keys() {
            if !defs.iter().any(|def| def.key == key) {
                unknown = true;
                let keys: Vec<&str> = defs.iter().map(|def| def.key).collect();
                problems.push(
                    loaded
                        .diagnostic(
                            &format!("{base}/settings/{key}"),
                            format!("unknown setting '{key}'"),
                        )
                        .expected(format!("one of {}", keys.join(", ")))
                        .maybe_hint(did_you_mean(key, keys.iter().copied())),
                );
            }
        }
        if unknown {
            continue;
        }
        let mut settings = Value::Object(
            config
                .settings
                .iter()
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
        );
        fill_setting_defaults(defs, &mut settings);
        let instance = match &config.mappings {
            Mappings::Presets(_) => Instance::from_presets(dest.clone(), &settings),
            Mappings::List(list) => {
                let configs: Vec<MappingConfig> = list
                    .iter()
                    .map(|m| MappingConfig {
                        name: m.name.clone(),
                        trigger: m.trigger.clone(),
                        action_key: m.action.clone(),
                        mapping: match &m.mapping {
                            Value::String(word) if word == "defaults" => dest
                                .action(&m.action)
                                .map_or(Value::Null, |a| a.default_mapping_json.clone()),
                            other => other.clone(),
                        },
                        enabled: m.enabled,
                    })
                    .collect();
                Instance::new(dest.clone(), &settings, &configs)
            }
        };
        match instance {
            Ok(instance) => targets.push(Target {
                name: config.name.clone(),
                instance: Arc::new(instance),
                client: Arc::new(delivery_client(dest, &delivery_args)?),
                send_only_changes: config.send_only_changes && !args.send_unchanged,
            }),
            Err(InstanceError::Mappings(list)) => {
                for problem in list {
                    let m_idx = match &config.mappings {
                        Mappings::List(ms) => ms.iter().position(|m| m.name == problem.mapping),
                        Mappings::Presets(_) => None,
                    };
                    let pointer = m_idx.map_or_else(
                        || format!("{base}/mappings"),
                        |i| format!("{base}/mappings/{i}"),
                    );
                    problems.push(loaded.diagnostic(&pointer, problem.to_string()));
                }
            }
            Err(err) => {
                problems.push(loaded.diagnostic(&format!("{base}/settings"), err.to_string()))
            }
        }
    }
    if !problems.is_empty() {
        bail!(
            "invalid configuration\n{}",
            Diagnostics::new(problems).about("the configuration")
        );
    }
    if targets.is_empty() {
        bail!("{file}: no enabled destination instance");
    }
    Ok(targets)
}

/// The environment variable that carries setting `name` of the embedded default.
pub fn env_name(name: &str) -> String {
    let mut out = format!("{DEFAULT_ENV_PREFIX}_");
    let mut prev_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() && prev_lower {
            out.push('_');
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        if c == '-' || c == '.' {
            out.push('_');
        } else {
            out.push(c.to_ascii_uppercase());
        }
    }
    out
}

/// Builds the settings object from `--setting` pairs, falling back to `lookup` per setting.
fn settings_from_args(
    defs: &'static [SettingDef],
    pairs: &[(String, String)],
    lookup: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Value> {
    let mut map = Map::new();
    for (name, value) in pairs {
        if !defs.iter().any(|def| def.key == name) {
            let known: Vec<&str> = defs.iter().map(|def| def.key).collect();
            bail!(
                "unknown setting '{name}' in --setting; expected one of {}",
                known.join(", ")
            );
        }
        map.insert(name.clone(), Value::String(value.clone()));
    }
    for def in defs {
        if !map.contains_key(def.key)
            && let Some(value) = lookup(def.key)
        {
            map.insert(def.key.to_owned(), Value::String(value));
        }
    }
    Ok(Value::Object(map))
}

/// Fails, naming every missing required setting and where it can come from.
fn check_required(defs: &'static [SettingDef], settings: &Value) -> anyhow::Result<()> {
    let missing: Vec<String> = defs
        .iter()
        .filter(|def| def.required && settings.get(def.key).is_none())
        .map(|def| {
            format!(
                "'{}' (--setting {}=… or {})",
                def.key,
                def.key,
                env_name(def.key)
            )
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        bail!("missing required setting {}", missing.join(", "))
    }
}

/// `max_requests` times `scale`, rounded down but at least 1.
fn scaled(max_requests: u32, scale: f64) -> u32 {
    let scaled = (f64::from(max_requests) * scale).floor();
    if scaled.is_finite() && scaled >= 1.0 {
        // The value is finite and at least 1; the cast saturates at u32::MAX.
        scaled as u32
    } else {
        1
    }
}

/// A delivery client with the destination's declared rate limits (unless turned off), scaled by
/// `--rate-limit-scale`.
pub fn delivery_client(
    dest: &CompiledDestination,
    args: &TargetArgs,
) -> anyhow::Result<DeliveryClient> {
    if !(args.rate_limit_scale.is_finite() && args.rate_limit_scale > 0.0) {
        bail!(
            "--rate-limit-scale must be a positive number, got {}",
            args.rate_limit_scale
        );
    }
    let rate_limits = if args.no_rate_limits {
        Vec::new()
    } else {
        dest.def
            .rate_limits
            .iter()
            .map(|limit| {
                RateLimit::new(
                    limit.key,
                    scaled(limit.max_requests, args.rate_limit_scale),
                    Duration::from_secs(u64::from(limit.per_seconds)),
                )
            })
            .collect()
    };
    let config = DeliveryConfig {
        timeout: seconds("timeout", args.timeout, false)?,
        backoff_base: seconds("backoff-base", args.backoff_base, true)?,
        backoff_cap: seconds("backoff-cap", args.backoff_cap, true)?,
        max_retry_after: seconds("max-retry-after", args.max_retry_after, true)?,
        max_elapsed: seconds("max-elapsed", args.max_elapsed, true)?,
        max_attempts: args.max_attempts,
        concurrency: args.concurrency,
        rate_limits,
        // A busy destination is polled at the scaled pace too: with its limits scaled, a
        // destination's background jobs end sooner by the same factor.
        max_busy: args.max_busy.unwrap_or(DeliveryConfig::default().max_busy),
        busy_poll: DeliveryConfig::default()
            .busy_poll
            .div_f64(args.rate_limit_scale)
            .max(Duration::from_millis(10)),
        ..DeliveryConfig::default()
    };
    DeliveryClient::new(config).map_err(|err| anyhow::anyhow!("{err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_are_screaming_snake_case() {
        assert_eq!(env_name("apiKey"), "USERPILOT_API_KEY");
        assert_eq!(env_name("endpoint"), "USERPILOT_ENDPOINT");
        assert_eq!(env_name("api-url2"), "USERPILOT_API_URL2");
    }

    #[test]
    fn setting_pairs_need_a_name() {
        assert!(
            parse_setting("apiKey=abc=def").is_ok_and(|(n, v)| n == "apiKey" && v == "abc=def")
        );
        let err = parse_setting("=secretvalue-that-is-long-enough")
            .err()
            .unwrap_or_default();
        assert_eq!(err, "expected NAME=VALUE, found '=secretvalue-that-is…'");
    }
}
