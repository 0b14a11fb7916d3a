//! Building delivery targets: destination instances with their settings, mappings and clients.
//!
//! Without a config file a destination is built from its presets (Userpilot by default, another
//! with `--destination SLUG`), its settings from `--setting NAME=VALUE` or the environment
//! variables named after it (`USERPILOT_API_KEY` for Userpilot's `apiKey`, see [`env_name`]).
//! With one, its instances carry their destination, settings and mappings. Either way a required
//! setting given nowhere is an error before anything is sent.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actionkit_runtime::delivery::{DeliveryClient, DeliveryConfig, RateLimit};
use actionkit_runtime::destination::{CompiledDestination, Registry};
use actionkit_runtime::dispatch::{Instance, InstanceError, MappingConfig};
use actionkit_runtime::fields::SettingDef;
use actionkit_runtime::validate::fill_setting_defaults;
use actionkit_spec::config::{LoadedConfig, Mappings};
use actionkit_spec::diagnostics::{Diagnostic, Diagnostics, did_you_mean, one_of};
use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Map, Value};

/// The slug of the embedded default destination.
pub const DEFAULT_DESTINATION: &str = "actions-userpilot-cloud";

/// Settings and delivery options shared by every command that talks to a destination.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// A destination setting as NAME=VALUE (repeatable), for example `--setting apiKey=…`.
    /// A setting not given so is read from the environment variable <DESTINATION>_<NAME>:
    /// the destination's slug without `actions-` and `-cloud`, then the setting's name, in
    /// upper snake case (`USERPILOT_API_KEY` for apiKey of actions-userpilot-cloud). Not with
    /// --config, whose instances carry their own settings.
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

/// Which destination instance a command that talks to one destination uses: an instance of a
/// configuration file, or a destination by slug with its settings from `--setting` and the
/// environment (Userpilot when neither is given).
#[derive(Debug, Clone, Default, Args)]
pub struct InstanceArgs {
    /// A runtime configuration (`actionkit.yaml`): use one of its destination instances, with
    /// the destination and settings the file gives it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The instance of --config to use, by its `name`; it may be left out when the file has a
    /// single enabled instance.
    #[arg(long, value_name = "NAME")]
    pub instance: Option<String>,
    /// The destination to use without --config, by its slug (default: actions-userpilot-cloud,
    /// Userpilot); its settings come from --setting and the environment.
    #[arg(long, value_name = "SLUG", conflicts_with = "config")]
    pub destination: Option<String>,
}

/// The one destination instance `sel` names: an instance of `--config`, or the destination of
/// `--destination` (Userpilot by default) with its presets and the settings of `args`. `able`
/// checks that the destination can do what the command needs, before its settings are looked at.
pub fn select(
    sel: &InstanceArgs,
    args: &TargetArgs,
    able: impl Fn(&CompiledDestination) -> anyhow::Result<()>,
) -> anyhow::Result<Target> {
    match &sel.config {
        Some(path) => config_instance(path, sel.instance.as_deref(), args, able),
        None => {
            if let Some(name) = &sel.instance {
                bail!(
                    "--instance '{name}' names an instance of a configuration file; give the file with --config FILE"
                );
            }
            let slug = sel.destination.as_deref().unwrap_or(DEFAULT_DESTINATION);
            from_destination(slug, args, None, able)
        }
    }
}

/// The destination `slug` with its presets, its settings from `--setting` and then from the
/// environment (see [`env_name`]); `endpoint_override` replaces the `endpoint` setting. The
/// target is named after the destination (`userpilot`).
pub fn from_destination(
    slug: &str,
    args: &TargetArgs,
    endpoint_override: Option<&str>,
    able: impl Fn(&CompiledDestination) -> anyhow::Result<()>,
) -> anyhow::Result<Target> {
    let registry = registry()?;
    let dest = find_destination(&registry, slug)?.clone();
    able(&dest)?;
    let pairs = args
        .settings
        .iter()
        .map(|text| parse_setting(text).map_err(|err| anyhow::anyhow!("--setting: {err}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let prefix = env_prefix(slug);
    let mut settings = settings_from_args(dest.def.settings, &pairs, |name| {
        std::env::var(env_name(&prefix, name)).ok()
    })?;
    if let (Some(endpoint), Value::Object(map)) = (endpoint_override, &mut settings) {
        map.insert("endpoint".to_owned(), Value::String(endpoint.to_owned()));
    }
    let missing = missing_required(dest.def.settings, &settings);
    if !missing.is_empty() {
        bail!("{}", missing_message(slug, &prefix, &missing));
    }
    fill_setting_defaults(dest.def.settings, &mut settings);
    let instance = Instance::from_presets(dest.clone(), &settings)
        .map_err(|err| anyhow::anyhow!("destination '{slug}': {err}"))?;
    let client = delivery_client(&dest, args)?;
    Ok(Target {
        name: prefix.to_lowercase(),
        instance: Arc::new(instance),
        client: Arc::new(client),
        send_only_changes: !args.send_unchanged,
    })
}

/// The compiled destination `slug`, or an error listing the known ones.
fn find_destination<'r>(
    registry: &'r Registry,
    slug: &str,
) -> anyhow::Result<&'r Arc<CompiledDestination>> {
    registry.get(slug).ok_or_else(|| {
        let slugs: Vec<&str> = registry.iter().map(|d| d.def.slug).collect();
        let hint = did_you_mean(slug, slugs.iter().copied())
            .map(|hint| format!("; {hint}"))
            .unwrap_or_default();
        anyhow::anyhow!(
            "unknown destination '{slug}'; expected {}{hint}",
            one_of(slugs.iter().copied())
        )
    })
}

/// Loads a runtime configuration, every problem at once with the file, line and column it
/// concerns. `--setting` is refused beside it rather than silently ignored.
fn load_config(path: &Path, args: &TargetArgs) -> anyhow::Result<LoadedConfig> {
    if !args.settings.is_empty() {
        bail!(
            "--setting does not go with --config {}: a configured instance takes its settings from the file",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration {}", path.display()))?;
    let file = path.display().to_string();
    // Only the destination instances are used here: the server section's variables (write
    // keys, JetStream credentials) need not be set.
    actionkit_spec::load_destinations_config_str(&file, &text, |name| std::env::var(name).ok())
        .map_err(|diags| anyhow::anyhow!("invalid configuration\n{diags}"))
}

/// The delivery options of a configuration: its `delivery` section, scaled and limited as the
/// command line says.
fn config_delivery_args(loaded: &LoadedConfig, args: &TargetArgs) -> TargetArgs {
    let delivery = &loaded.config.delivery;
    TargetArgs {
        settings: Vec::new(),
        timeout: delivery.timeout_secs,
        max_attempts: delivery.max_attempts,
        concurrency: delivery.concurrency,
        no_rate_limits: args.no_rate_limits || !delivery.rate_limits,
        rate_limit_scale: args.rate_limit_scale * delivery.rate_limit_scale,
        ..args.clone()
    }
}

/// Fails with every problem of a configuration, rendered rustc-style.
fn check_problems(problems: Vec<Diagnostic>) -> anyhow::Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    bail!(
        "invalid configuration\n{}",
        Diagnostics::new(problems).about("the configuration")
    )
}

/// The targets of a runtime configuration file's enabled instances; every problem is reported
/// at once with the file, line and column it concerns.
pub fn from_config_file(path: &Path, args: &TargetArgs) -> anyhow::Result<Vec<Target>> {
    let loaded = load_config(path, args)?;
    let registry = registry()?;
    let delivery_args = config_delivery_args(&loaded, args);
    let mut problems: Vec<Diagnostic> = Vec::new();
    let mut targets = Vec::new();
    for (idx, config) in loaded.config.destinations.iter().enumerate() {
        if !config.enabled {
            continue;
        }
        if let Some(target) =
            build_instance(&loaded, &registry, idx, &delivery_args, args, &mut problems)?
        {
            targets.push(target);
        }
    }
    check_problems(problems)?;
    if targets.is_empty() {
        bail!("{}: no enabled destination instance", loaded.file);
    }
    Ok(targets)
}

/// The target of one instance of a configuration file: the one named `name` (even when it is
/// not enabled), or else the file's only enabled instance. `able` checks its destination first.
pub fn config_instance(
    path: &Path,
    name: Option<&str>,
    args: &TargetArgs,
    able: impl Fn(&CompiledDestination) -> anyhow::Result<()>,
) -> anyhow::Result<Target> {
    let loaded = load_config(path, args)?;
    let file = &loaded.file;
    let instances = &loaded.config.destinations;
    let idx = match name {
        Some(name) => instances
            .iter()
            .position(|config| config.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = instances.iter().map(|c| c.name.as_str()).collect();
                let hint = did_you_mean(name, names.iter().copied())
                    .map(|hint| format!("; {hint}"))
                    .unwrap_or_default();
                if names.is_empty() {
                    anyhow::anyhow!("{file} has no instance '{name}': it has no instances")
                } else {
                    anyhow::anyhow!(
                        "{file} has no instance '{name}'; expected {}{hint}",
                        one_of(names.iter().copied())
                    )
                }
            })?,
        None => {
            let enabled: Vec<usize> = (0..instances.len())
                .filter(|&idx| instances[idx].enabled)
                .collect();
            match enabled.as_slice() {
                [idx] => *idx,
                [] => bail!("{file}: no enabled destination instance"),
                many => {
                    let names: Vec<&str> =
                        many.iter().map(|&i| instances[i].name.as_str()).collect();
                    bail!(
                        "{file} has {} enabled instances ({}); choose one with --instance NAME",
                        names.len(),
                        names.join(", ")
                    )
                }
            }
        }
    };
    let config = &instances[idx];
    let registry = registry()?;
    if let Some(dest) = registry.get(&config.destination) {
        able(dest).with_context(|| format!("instance '{}' of {file}", config.name))?;
    }
    let delivery_args = config_delivery_args(&loaded, args);
    let mut problems = Vec::new();
    let target = build_instance(&loaded, &registry, idx, &delivery_args, args, &mut problems)?;
    check_problems(problems)?;
    target.with_context(|| format!("instance '{}' of {file} could not be built", config.name))
}

/// Builds the instance at `idx` of a configuration, or records why it cannot be built in
/// `problems`.
fn build_instance(
    loaded: &LoadedConfig,
    registry: &Registry,
    idx: usize,
    delivery_args: &TargetArgs,
    args: &TargetArgs,
    problems: &mut Vec<Diagnostic>,
) -> anyhow::Result<Option<Target>> {
    let Some(config) = loaded.config.destinations.get(idx) else {
        return Ok(None);
    };
    let base = format!("/destinations/{idx}");
    let Some(dest) = registry.get(&config.destination) else {
        let slugs: Vec<&str> = registry.iter().map(|d| d.def.slug).collect();
        problems.push(
            loaded
                .diagnostic(
                    &format!("{base}/destination"),
                    format!("unknown destination '{}'", config.destination),
                )
                .expected(one_of(slugs.iter().copied()))
                .maybe_hint(did_you_mean(&config.destination, slugs.iter().copied())),
        );
        return Ok(None);
    };
    let defs = dest.def.settings;
    let n_problems = problems.len();
    for key in config.settings.keys() {
        if !defs.iter().any(|def| def.key == key) {
            let keys: Vec<&str> = defs.iter().map(|def| def.key).collect();
            problems.push(
                loaded
                    .diagnostic(
                        &format!("{base}/settings/{key}"),
                        format!("unknown setting '{key}'"),
                    )
                    .expected(one_of(keys.iter().copied()))
                    .maybe_hint(did_you_mean(key, keys.iter().copied())),
            );
        }
    }
    let mut settings = Value::Object(
        config
            .settings
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect(),
    );
    let env_prefix = env_prefix(dest.def.slug);
    for def in missing_required(defs, &settings) {
        let key = def.key;
        let var = env_name(&env_prefix, key);
        problems.push(
            loaded
                .diagnostic(
                    &format!("{base}/settings"),
                    format!("missing required setting '{key}' ({})", def.label),
                )
                .hint(format!(
                    "add `{key}: …` to this instance's settings (`{key}: ${{{var}}}` reads the \
                     environment variable {var}); without --config, --setting {key}=… or {var} \
                     gives it"
                )),
        );
    }
    if problems.len() > n_problems {
        return Ok(None);
    }
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
        Ok(instance) => Ok(Some(Target {
            name: config.name.clone(),
            instance: Arc::new(instance),
            client: Arc::new(delivery_client(dest, delivery_args)?),
            send_only_changes: config.send_only_changes && !args.send_unchanged,
        })),
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
            Ok(None)
        }
        Err(err) => {
            problems.push(loaded.diagnostic(&format!("{base}/settings"), err.to_string()));
            Ok(None)
        }
    }
}

/// The prefix of the environment variables that carry the settings of destination `slug`: the
/// slug without Segment's `actions-` prefix and `-cloud` suffix, upper case, with `_` for
/// anything but letters and digits (`actions-userpilot-cloud` → `USERPILOT`).
pub fn env_prefix(slug: &str) -> String {
    let core = slug.strip_prefix("actions-").unwrap_or(slug);
    let core = core.strip_suffix("-cloud").unwrap_or(core);
    let core = if core.is_empty() { slug } else { core };
    core.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The environment variable that carries setting `name` of the destination whose
/// [`env_prefix`] is `prefix`: the prefix, `_`, and the name in upper snake case
/// (`USERPILOT_API_KEY` for `apiKey`).
pub fn env_name(prefix: &str, name: &str) -> String {
    let mut out = format!("{prefix}_");
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
                "unknown setting '{name}' in --setting; expected {}",
                one_of(known.iter().copied())
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

/// The required settings that `settings` lacks and that have no default to stand in for them.
///
/// Only absence counts: a setting given as an empty string is passed on to Segment's settings
/// validation, which accepts it (a required field need only be present). An empty default (the
/// catalog's `''` for Userpilot's API key) is no value, so it does not make a setting given.
fn missing_required(defs: &'static [SettingDef], settings: &Value) -> Vec<&'static SettingDef> {
    defs.iter()
        .filter(|def| def.required && settings.get(def.key).is_none())
        .filter(|def| {
            let default = def
                .default
                .and_then(|text| serde_json::from_str::<Value>(text).ok());
            matches!(default, None | Some(Value::Null))
                || default.as_ref().and_then(Value::as_str) == Some("")
        })
        .collect()
}

/// The error for required settings given nowhere, naming every place each can come from.
fn missing_message(slug: &str, prefix: &str, missing: &[&SettingDef]) -> String {
    match missing {
        [def] => {
            let key = def.key;
            format!(
                "missing required setting '{key}' ({}) of destination '{slug}': give it with \
                 --setting {key}=…, in the environment variable {}, or as `{key}` in the \
                 settings of an instance in a --config file",
                def.label,
                env_name(prefix, key)
            )
        }
        _ => {
            let names: Vec<String> = missing
                .iter()
                .map(|def| format!("'{}' ({})", def.key, def.label))
                .collect();
            let flags: Vec<String> = missing
                .iter()
                .map(|def| format!("--setting {}=…", def.key))
                .collect();
            let vars: Vec<String> = missing
                .iter()
                .map(|def| env_name(prefix, def.key))
                .collect();
            format!(
                "missing required settings {} of destination '{slug}': give each with {}, in \
                 the environment variables {}, or in the settings of an instance in a --config \
                 file",
                names.join(", "),
                flags.join(", "),
                vars.join(", ")
            )
        }
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
        assert_eq!(env_name("USERPILOT", "apiKey"), "USERPILOT_API_KEY");
        assert_eq!(env_name("USERPILOT", "endpoint"), "USERPILOT_ENDPOINT");
        assert_eq!(env_name("USERPILOT", "api-url2"), "USERPILOT_API_URL2");
    }

    #[test]
    fn env_prefixes_come_from_the_slug() {
        assert_eq!(env_prefix(DEFAULT_DESTINATION), "USERPILOT");
        assert_eq!(env_prefix("actions-webhook"), "WEBHOOK");
        assert_eq!(
            env_prefix("actions-google-analytics-4"),
            "GOOGLE_ANALYTICS_4"
        );
        assert_eq!(env_prefix("my.tool"), "MY_TOOL");
        assert_eq!(env_prefix("actions-cloud"), "CLOUD");
        assert_eq!(env_prefix("actions--cloud"), "ACTIONS__CLOUD");
    }

    static SETTINGS: &[SettingDef] = &[
        SettingDef {
            key: "apiKey",
            label: "API Key",
            required: true,
            default: Some("\"\""),
            ..SettingDef::BASE
        },
        SettingDef {
            key: "endpoint",
            label: "API Endpoint",
            required: true,
            default: Some("\"https://api.example.com/\""),
            ..SettingDef::BASE
        },
        SettingDef {
            key: "region",
            label: "Region",
            required: true,
            ..SettingDef::BASE
        },
        SettingDef {
            key: "debug",
            label: "Debug",
            ..SettingDef::BASE
        },
    ];

    #[test]
    fn a_required_setting_is_missing_only_when_absent_without_a_default() {
        let keys = |settings: serde_json::Value| -> Vec<&str> {
            missing_required(SETTINGS, &settings)
                .iter()
                .map(|def| def.key)
                .collect()
        };
        // An empty default is no value; a real default stands in; optional settings never count.
        assert_eq!(keys(serde_json::json!({})), ["apiKey", "region"]);
        // Given empty on purpose, a setting is present, as Segment's validation sees it.
        assert!(keys(serde_json::json!({"apiKey": "", "region": ""})).is_empty());
    }

    #[test]
    fn the_missing_setting_error_names_every_source() {
        let missing = missing_required(SETTINGS, &serde_json::json!({"region": "eu"}));
        assert_eq!(
            missing_message("actions-example", "EXAMPLE", &missing),
            "missing required setting 'apiKey' (API Key) of destination 'actions-example': give \
             it with --setting apiKey=…, in the environment variable EXAMPLE_API_KEY, or as \
             `apiKey` in the settings of an instance in a --config file"
        );
        let missing = missing_required(SETTINGS, &serde_json::json!({}));
        assert_eq!(
            missing_message("actions-example", "EXAMPLE", &missing),
            "missing required settings 'apiKey' (API Key), 'region' (Region) of destination \
             'actions-example': give each with --setting apiKey=…, --setting region=…, in the \
             environment variables EXAMPLE_API_KEY, EXAMPLE_REGION, or in the settings of an \
             instance in a --config file"
        );
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
