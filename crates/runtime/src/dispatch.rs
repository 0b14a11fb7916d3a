//! A configured destination instance and the pure (IO-free) dispatch of one event.
//!
//! An [`Instance`] is a compiled destination plus validated settings, the request defaults
//! resolved from them, and its mappings (name, compiled trigger, action, compiled mapping,
//! enabled). [`Instance::dispatch`] runs Segment's per-subscription pipeline for every enabled
//! mapping whose trigger matches: evaluate the mapping on the event, remove empty values,
//! validate and coerce, build the request. Nothing is compiled per event and the event is only
//! borrowed.

use std::sync::Arc;

use actionkit_fql::Expr;
use actionkit_mapping::Mapping;
use serde_json::Value;

use crate::build::{self, BuildError, RequestDefaults};
use crate::destination::{BatchDef, CompiledDestination};
use crate::redact;
use crate::request::Request;
use crate::validate::PayloadError;

/// A mapping as configured for an instance (before compilation).
#[derive(Debug, Clone, PartialEq)]
pub struct MappingConfig {
    /// The mapping's name, unique within the instance.
    pub name: String,
    /// The trigger (FQL).
    pub trigger: String,
    /// The key of the action it feeds.
    pub action_key: String,
    /// The mapping-kit object: field key → mapping.
    pub mapping: Value,
    /// Disabled mappings never run.
    pub enabled: bool,
}

/// One problem with one configured mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingProblem {
    /// The mapping's name.
    pub mapping: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for MappingProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "mapping '{}': {}", self.mapping, self.message)
    }
}

/// Why an instance could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstanceError {
    /// The settings failed validation (Segment's wording, for example
    /// `The root value is missing the required field 'apiKey'.`).
    #[error("invalid settings: {0}")]
    Settings(PayloadError),
    /// The request defaults could not be resolved from the settings.
    #[error("invalid settings: {0}")]
    RequestDefaults(BuildError),
    /// Some mappings are invalid; every problem is listed.
    #[error("invalid mappings: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Mappings(Vec<MappingProblem>),
}

/// A mapping compiled for an instance.
#[derive(Debug, Clone)]
struct CompiledMapping {
    name: String,
    trigger: Expr,
    action_index: usize,
    mapping: Mapping,
    enabled: bool,
}

/// What happened to one event for one mapping.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A request to deliver.
    Request(Request),
    /// The event cannot produce a request; final (never retried).
    Invalid {
        /// The error class: `PayloadValidationError`, `MappingError`, `HookError` or
        /// `RequestBuildError`.
        name: &'static str,
        /// The message (Segment's wording for validation errors).
        message: String,
        /// Always 400.
        status: u16,
    },
    /// A payload's entry for a batch of its action, to be gathered with others and sent by
    /// [`Instance::batch_request`].
    Batch(BatchItem),
    /// No enabled mapping's trigger matched the event.
    Skipped {
        /// Segment's wording: `not subscribed`.
        reason: &'static str,
    },
}

/// One payload's entry in a batch, with what decides the batch it may join.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchItem {
    /// The index of the action in the instance's destination.
    pub action_index: usize,
    /// The values of the action's batch keys, as JSON text (empty without keys): only entries
    /// with the same group are sent together.
    pub group: String,
    /// The entry (the batch's `item` mapping of the payload).
    pub entry: Value,
    /// The size of the entry as JSON, in bytes.
    pub bytes: usize,
    /// The places in the entry that derive from secret settings (see [`crate::redact`]).
    pub marks: Vec<redact::JsonMark>,
}

impl BatchItem {
    /// The entry with every place built from a secret replaced by `[redacted]`.
    pub fn redacted_entry(&self) -> Value {
        let mut entry = self.entry.clone();
        redact::apply_json(&mut entry, &self.marks);
        entry
    }
}

/// The outcome of one mapping for one event.
#[derive(Debug, Clone, PartialEq)]
pub struct MappingOutcome<'a> {
    /// The mapping's name; `None` for [`Outcome::Skipped`].
    pub mapping: Option<&'a str>,
    /// The action's key; `None` for [`Outcome::Skipped`].
    pub action_key: Option<&'static str>,
    /// What happened.
    pub outcome: Outcome,
}

/// One configured mapping of an instance, as it was compiled.
#[derive(Debug, Clone, Copy)]
pub struct MappingView<'a> {
    /// The mapping's name.
    pub name: &'a str,
    /// The compiled trigger (its `Display` is the canonical FQL).
    pub trigger: &'a Expr,
    /// The key of the action it feeds.
    pub action_key: &'static str,
    /// The mapping-kit object as configured.
    pub mapping: &'a Value,
    /// Whether the mapping runs.
    pub enabled: bool,
}

/// What one mapping made of one event, step by step: for people testing a configuration
/// (the console's Event Tester), not for delivery.
#[derive(Debug, Clone)]
pub struct MappingTrace<'a> {
    /// The mapping.
    pub view: MappingView<'a>,
    /// Whether the trigger matched the event.
    pub matched: bool,
    /// The payload as the mapping made it, before empty values are removed and it is
    /// validated; `None` when the mapping did not run (disabled or not matched) or failed.
    pub payload: Option<Value>,
    /// What dispatch makes of the event for this mapping; `None` when it did not run.
    pub outcome: Option<Outcome>,
}

/// A destination instance: compiled destination, validated settings and mappings.
#[derive(Clone)]
pub struct Instance {
    dest: Arc<CompiledDestination>,
    settings: Value,
    defaults: RequestDefaults,
    mappings: Vec<CompiledMapping>,
}

impl std::fmt::Debug for Instance {
    /// Settings are left out because they carry secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.mappings.iter().map(|m| m.name.as_str()).collect();
        f.debug_struct("Instance")
            .field("destination", &self.dest.def.slug)
            .field("defaults", &self.defaults)
            .field("mappings", &names)
            .finish_non_exhaustive()
    }
}

impl Instance {
    /// Validates `settings` (coercing and stripping undeclared keys), resolves the request
    /// defaults and compiles every mapping, reporting every mapping problem at once.
    ///
    /// Setting defaults are not applied (as in Segment); call
    /// [`crate::validate::fill_setting_defaults`] first to apply them.
    pub fn new(
        dest: Arc<CompiledDestination>,
        settings: &Value,
        mappings: &[MappingConfig],
    ) -> Result<Instance, InstanceError> {
        let (settings, defaults) = prepare_settings(&dest, settings)?;
        let mut compiled = Vec::with_capacity(mappings.len());
        let mut problems = Vec::new();
        for (idx, config) in mappings.iter().enumerate() {
            let mut problem = |message: String| {
                problems.push(MappingProblem {
                    mapping: config.name.clone(),
                    message,
                });
            };
            if mappings[..idx].iter().any(|m| m.name == config.name) {
                problem("the name is used by another mapping".to_owned());
            }
            let Some(action_index) = dest.action_index(&config.action_key) else {
                problem(format!(
                    "action '{}' does not exist in destination '{}'",
                    config.action_key, dest.def.slug
                ));
                continue;
            };
            let trigger = actionkit_fql::parse(&config.trigger);
            if let Err(err) = &trigger {
                problem(format!("the trigger does not parse: {err}"));
            }
            if !config.mapping.is_object() {
                problem("the mapping must be an object of field keys".to_owned());
                continue;
            }
            let mapping = Mapping::compile(&config.mapping);
            if let Err(err) = &mapping {
                problem(format!(
                    "the mapping is invalid: {}",
                    err.messages.join(" ")
                ));
            }
            if let (Ok(trigger), Ok(mapping)) = (trigger, mapping) {
                compiled.push(CompiledMapping {
                    name: config.name.clone(),
                    trigger,
                    action_index,
                    mapping,
                    enabled: config.enabled,
                });
            }
        }
        if !problems.is_empty() {
            return Err(InstanceError::Mappings(problems));
        }
        Ok(Instance {
            dest,
            settings,
            defaults,
            mappings: compiled,
        })
    }

    /// An instance with the destination's presets as its (enabled) mappings; a preset with
    /// `mapping: defaults` uses the action's field defaults.
    pub fn from_presets(
        dest: Arc<CompiledDestination>,
        settings: &Value,
    ) -> Result<Instance, InstanceError> {
        let (settings, defaults) = prepare_settings(&dest, settings)?;
        let mappings = dest
            .presets
            .iter()
            .map(|preset| CompiledMapping {
                name: preset.def.name.to_owned(),
                trigger: preset.trigger.clone(),
                action_index: preset.action_index,
                mapping: preset.mapping.clone(),
                enabled: preset.def.enabled,
            })
            .collect();
        Ok(Instance {
            dest,
            settings,
            defaults,
            mappings,
        })
    }

    /// The mapping configurations a preset-based instance uses (for example to write a config
    /// file).
    pub fn preset_configs(dest: &CompiledDestination) -> Vec<MappingConfig> {
        dest.presets
            .iter()
            .map(|preset| MappingConfig {
                name: preset.def.name.to_owned(),
                trigger: preset.def.trigger.to_owned(),
                action_key: preset.def.action_key.to_owned(),
                mapping: preset.mapping_json.clone(),
                enabled: preset.def.enabled,
            })
            .collect()
    }

    /// Runs every enabled mapping whose trigger matches `event`; a single
    /// [`Outcome::Skipped`] when none matches.
    pub fn dispatch(&self, event: &Value) -> Vec<MappingOutcome<'_>> {
        let mut outcomes = Vec::new();
        for mapping in &self.mappings {
            if mapping.enabled && mapping.trigger.matches(event) {
                outcomes.push(self.run(mapping, event));
            }
        }
        if outcomes.is_empty() {
            outcomes.push(MappingOutcome {
                mapping: None,
                action_key: None,
                outcome: Outcome::Skipped {
                    reason: "not subscribed",
                },
            });
        }
        outcomes
    }

    /// Every mapping of the instance, in order.
    pub fn mappings(&self) -> impl Iterator<Item = MappingView<'_>> {
        self.mappings.iter().map(|m| self.view(m))
    }

    fn view<'a>(&'a self, mapping: &'a CompiledMapping) -> MappingView<'a> {
        MappingView {
            name: &mapping.name,
            trigger: &mapping.trigger,
            action_key: self.dest.actions[mapping.action_index].def.key,
            mapping: mapping.mapping.raw(),
            enabled: mapping.enabled,
        }
    }

    /// What every mapping, enabled or not, makes of `event`: whether its trigger matches, the
    /// payload it maps, and the outcome [`Instance::dispatch`] would give (for the enabled ones
    /// that match). The mapping is evaluated twice; this is for testing, not for delivery.
    pub fn trace(&self, event: &Value) -> Vec<MappingTrace<'_>> {
        self.mappings
            .iter()
            .map(|mapping| {
                let matched = mapping.trigger.matches(event);
                let runs = matched && mapping.enabled;
                let payload =
                    if runs {
                        mapping.mapping.evaluate(event).ok().map(|value| {
                            value.unwrap_or_else(|| Value::Object(serde_json::Map::new()))
                        })
                    } else {
                        None
                    };
                MappingTrace {
                    view: self.view(mapping),
                    matched,
                    payload,
                    outcome: runs.then(|| self.run(mapping, event).outcome),
                }
            })
            .collect()
    }

    fn run<'a>(&'a self, mapping: &'a CompiledMapping, event: &Value) -> MappingOutcome<'a> {
        let action = &self.dest.actions[mapping.action_index];
        let outcome = |outcome| MappingOutcome {
            mapping: Some(&mapping.name),
            action_key: Some(action.def.key),
            outcome,
        };
        let invalid = |name, message| Outcome::Invalid {
            name,
            message,
            status: 400,
        };
        let mut payload = match mapping.mapping.evaluate(event) {
            Ok(Some(value @ Value::Object(_))) => value,
            Ok(None) => Value::Object(serde_json::Map::new()),
            Ok(Some(_)) => {
                return outcome(invalid(
                    "MappingError",
                    "the mapping did not produce an object".to_owned(),
                ));
            }
            Err(err) => return outcome(invalid("MappingError", err.message)),
        };
        if action.def.fields.is_empty() {
            action.schema.remove_empty_values(&mut payload, true);
        } else if let Err(err) = action.schema.clean_and_validate(&mut payload) {
            return outcome(invalid("PayloadValidationError", err.message));
        }
        let batched = match (&action.request, &action.batch) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(_), Some(_)) => payload.get(BATCH_SWITCH_FIELD) == Some(&Value::Bool(true)),
        };
        if let (true, Some(batch)) = (batched, &action.batch) {
            let group = batch_group(batch.def.keys, &payload);
            return match build::batch_entry(&self.defaults, &self.settings, action, payload) {
                Ok((entry, marks)) => outcome(Outcome::Batch(BatchItem {
                    action_index: mapping.action_index,
                    group,
                    bytes: json_len(&entry),
                    entry,
                    marks,
                })),
                Err(err @ BuildError::Hook { .. }) => {
                    outcome(invalid("HookError", err.to_string()))
                }
                Err(err) => outcome(invalid("RequestBuildError", err.to_string())),
            };
        }
        match build::action_request(&self.defaults, &self.settings, action, payload) {
            Ok(request) => outcome(Outcome::Request(request)),
            Err(err @ BuildError::Hook { .. }) => outcome(invalid("HookError", err.to_string())),
            Err(err) => outcome(invalid("RequestBuildError", err.to_string())),
        }
    }

    /// The request that sends `entries` (from [`Outcome::Batch`] items of the action at
    /// `action_index`, in event order) as one batch.
    pub fn batch_request(
        &self,
        action_index: usize,
        entries: Vec<Value>,
    ) -> Result<Request, BuildError> {
        let Some(action) = self.dest.actions.get(action_index) else {
            return Err(BuildError::NoBatchForm {
                action: format!("#{action_index}"),
            });
        };
        build::batch_request(&self.defaults, &self.settings, action, entries)
    }

    /// The batch form of the action at `action_index`, if it has one.
    pub fn batch_def(&self, action_index: usize) -> Option<&'static BatchDef> {
        self.dest
            .actions
            .get(action_index)
            .and_then(|action| action.batch.as_ref())
            .map(|batch| batch.def)
    }

    /// The merge rule of the action `action_key` (`merges_by_id`), if it declares one.
    pub fn merges(&self, action_key: &str) -> Option<crate::destination::MergesDef> {
        self.dest.action(action_key)?.def.merges
    }

    /// The key of the action at `action_index`.
    pub fn action_key(&self, action_index: usize) -> Option<&'static str> {
        self.dest.actions.get(action_index).map(|a| a.def.key)
    }

    /// The credentials-check request, if the destination has one.
    pub fn test_authentication_request(&self) -> Result<Option<Request>, BuildError> {
        build::test_authentication_request(&self.dest, &self.defaults, &self.settings)
    }

    /// The user-deletion request for `event`, if the destination has one.
    pub fn on_delete_request(&self, event: &Value) -> Result<Option<Request>, BuildError> {
        build::on_delete_request(&self.dest, &self.defaults, &self.settings, event)
    }

    /// The requests that delete `ids` of `kind` in bulk, `None` when the destination declares
    /// no such deletion (see [`build::deletion_requests`]).
    pub fn deletion_requests(
        &self,
        kind: crate::destination::DeletionKind,
        ids: &[String],
    ) -> Result<Option<build::DeletionRequests>, BuildError> {
        build::deletion_requests(&self.dest, &self.defaults, &self.settings, kind, ids)
    }

    /// A copy of `request` with every part built from a secret setting replaced by
    /// `[redacted]`, as its [`crate::redact::Redactions`] say (the request carries them, so this
    /// is [`redact::redact`]; text that merely equals a secret is left alone).
    pub fn redact(&self, request: &Request) -> Request {
        redact::redact(request)
    }

    /// The compiled destination.
    pub fn destination(&self) -> &Arc<CompiledDestination> {
        &self.dest
    }

    /// The validated settings (they contain secrets: never log them).
    pub fn settings(&self) -> &Value {
        &self.settings
    }

    /// The resolved request defaults.
    pub fn request_defaults(&self) -> &RequestDefaults {
        &self.defaults
    }

    /// The names of the instance's mappings, in order.
    pub fn mapping_names(&self) -> impl Iterator<Item = &str> {
        self.mappings.iter().map(|m| m.name.as_str())
    }
}

/// The field whose `true` sends an action's payload in a batch when the action has both forms
/// (Segment's name).
pub const BATCH_SWITCH_FIELD: &str = "enable_batching";

/// The values of `keys` in `payload` as one JSON text (absent keys as `null`).
fn batch_group(keys: &[&str], payload: &Value) -> String {
    if keys.is_empty() {
        return String::new();
    }
    let values: Vec<&Value> = keys
        .iter()
        .map(|key| payload.get(*key).unwrap_or(&Value::Null))
        .collect();
    serde_json::to_string(&values).unwrap_or_default()
}

/// The length of `value` as compact JSON, without building the text.
fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a `Value` into a counter cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

fn prepare_settings(
    dest: &CompiledDestination,
    settings: &Value,
) -> Result<(Value, RequestDefaults), InstanceError> {
    let mut settings = settings.clone();
    dest.settings_schema
        .validate(&mut settings)
        .map_err(InstanceError::Settings)?;
    let defaults =
        RequestDefaults::resolve(dest, &settings).map_err(InstanceError::RequestDefaults)?;
    Ok((settings, defaults))
}
