//! The static destination model generated code embeds, and its one-time compilation.
//!
//! Code generation emits one `pub static DESTINATION: DestinationDef = …` per destination, made
//! only of `&'static` data and function pointers, so nothing is allocated at start-up. Mapping-kit
//! and FQL texts are embedded as JSON/FQL source; code generation already validated them, and
//! [`CompiledDestination::new`] compiles each of them exactly once, still reporting (never
//! panicking on) a text that does not compile. A [`Registry`] holds the compiled destinations and
//! finds them by slug.

use std::sync::Arc;

use actionkit_fql::Expr;
use actionkit_mapping::Mapping;
use serde_json::{Map, Value};

use crate::fields::{FieldDef, SettingDef};
use crate::request::Method;
use crate::validate::PayloadSchema;

/// The input of a destination hook: the validated payload and settings of one event, as JSON.
#[derive(Clone, Copy)]
pub struct HookInput<'a> {
    /// The key of the action whose request is being built.
    pub action_key: &'a str,
    /// The payload after mapping, empty-value removal and validation.
    pub payload: &'a Value,
    /// The instance's validated settings (may contain secrets: never log them).
    pub settings: &'a Value,
}

impl std::fmt::Debug for HookInput<'_> {
    /// The settings are left out because they may carry secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookInput")
            .field("action_key", &self.action_key)
            .field("payload", &self.payload)
            .finish_non_exhaustive()
    }
}

/// Why a hook failed; the message must not contain secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HookError {
    /// What went wrong.
    pub message: String,
}

impl HookError {
    /// A hook error with the given message.
    pub fn new(message: impl Into<String>) -> HookError {
        HookError {
            message: message.into(),
        }
    }
}

/// A named Rust hook: it returns a JSON object that request mappings read at `$.computed`.
pub type HookFn = fn(&HookInput<'_>) -> Result<Value, HookError>;

/// An HTTP request template: method, URL (a path joined onto the base URL, or a URL mapping),
/// headers, optional JSON body mapping and signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestDef {
    /// The HTTP method (when `method_mapping` is `None`).
    pub method: Method,
    /// The method as mapping-kit JSON text over the request context, evaluated per request; it
    /// must resolve to one of `GET`, `POST`, `PUT`, `PATCH`, `DELETE`, `HEAD` (any case).
    pub method_mapping: Option<&'static str>,
    /// The path joined onto the request defaults' base URL (`v1/identify`); unused with `url`.
    pub path: &'static str,
    /// The absolute URL as mapping-kit JSON text (a JSON string is a constant URL). One that
    /// reads only `$.settings` is resolved when the instance is built, any other per request.
    pub url: Option<&'static str>,
    /// Headers of this request, added to (and replacing same-named) request defaults' headers;
    /// each value is mapping-kit JSON text over the request context.
    pub headers: &'static [HeaderDef],
    /// Headers named by data: mapping-kit JSON text over the request context that resolves to
    /// an object of header name → value, evaluated per request. Its entries replace same-named
    /// default headers and are replaced by [`Self::headers`].
    pub headers_from: Option<&'static str>,
    /// The signature of this request's body; `None` uses the request defaults' signature.
    pub sign: Option<crate::sign::SignDef>,
    /// The body as mapping-kit JSON text, evaluated over the request context; `None` sends no body.
    pub json: Option<&'static str>,
    /// The rate-limit bucket the request counts against, a key of [`DestinationDef::rate_limits`].
    pub rate_limit: Option<&'static str>,
    /// Statuses that mean "busy, try again later" (Userpilot's 409 while a bulk job runs); they
    /// do not count against the retry budget.
    pub busy_statuses: &'static [u16],
    /// The key of the answer's JSON object that names what the destination made of the request
    /// (Userpilot's bulk `job_id`), logged with the delivery.
    pub response_id: Option<&'static str>,
}

impl RequestDef {
    /// A request with no rate limit, no body, no busy statuses and no response id.
    pub const BASE: RequestDef = RequestDef {
        method: Method::Post,
        method_mapping: None,
        path: "",
        url: None,
        headers: &[],
        headers_from: None,
        sign: None,
        json: None,
        rate_limit: None,
        busy_statuses: &[],
        response_id: None,
    };
}

/// How an API applies an action's request: to the record its `id` key names, merging the
/// objects under `merged` key by key and replacing every other key it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergesDef {
    /// The kind of record (`user`); actions writing one kind share what was delivered.
    pub record: &'static str,
    /// The key of the request body (or batch entry) that holds the record's id.
    pub id: &'static str,
    /// Keys of the body whose objects are merged key by key.
    pub merged: &'static [&'static str],
}

/// The batch form of an action (Segment's `performBatch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchDef {
    /// The most payloads one request carries.
    pub max_items: usize,
    /// The most body bytes one request may have, if limited.
    pub max_bytes: Option<usize>,
    /// How long a batch waits to fill after its first payload, in milliseconds.
    pub wait_ms: u32,
    /// Payload field keys whose values split batches.
    pub keys: &'static [&'static str],
    /// One payload's entry as mapping-kit JSON text over `{"payload", "settings", "computed"}`;
    /// `None` is the payload itself.
    pub item: Option<&'static str>,
    /// The request; its body mapping reads `{"items": [...], "settings"}`.
    pub request: RequestDef,
    /// Where a successful answer lists the entries the destination refused, if it can.
    pub item_errors: Option<ItemErrorsDef>,
}

/// Where a batch answer's JSON object names refused entries: `{list: [{index, message}]}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemErrorsDef {
    /// The key of the list of refused entries.
    pub list: &'static str,
    /// The key of a listed entry's 0-based position in the batch.
    pub index: &'static str,
    /// The key of a listed entry's reason, if the answer gives one.
    pub message: Option<&'static str>,
}

/// One header applied to every request of a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderDef {
    /// The header name in lower case.
    pub name: &'static str,
    /// The value as mapping-kit JSON text over `{"settings": …}` (a JSON string is a constant).
    pub value: &'static str,
}

/// What every request of a destination shares (Segment's `extendRequest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestDefaultsDef {
    /// The base URL as mapping-kit JSON text over `{"settings": …}`; it must resolve to an absolute
    /// http(s) URL. `None` when every request has its own `url`.
    pub base_url: Option<&'static str>,
    /// Headers sent with every request, in order.
    pub headers: &'static [HeaderDef],
    /// The signature of every request's body, unless a request declares its own.
    pub sign: Option<crate::sign::SignDef>,
}

/// A default rate limit: at most `max_requests` per `per_seconds` seconds for requests with `key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitDef {
    /// The bucket name requests refer to (`identify`).
    pub key: &'static str,
    /// Requests allowed per window.
    pub max_requests: u32,
    /// The window length in seconds.
    pub per_seconds: u32,
}

/// The mapping of a preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresetMapping {
    /// The action's field defaults (the YAML's `mapping: defaults`).
    Defaults,
    /// An explicit mapping-kit object as JSON text.
    Json(&'static str),
}

/// A preset: a mapping created automatically when a destination instance is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresetDef {
    /// The preset's name (`Identify Company`).
    pub name: &'static str,
    /// The key of the action it maps to.
    pub action_key: &'static str,
    /// The trigger (FQL).
    pub trigger: &'static str,
    /// The mapping.
    pub mapping: PresetMapping,
    /// Whether an instance built from the presets runs it (beyond-Segment presets are off).
    pub enabled: bool,
}

/// One action of a destination.
#[derive(Debug, Clone, Copy)]
pub struct ActionDef {
    /// The catalog id.
    pub id: &'static str,
    /// The action key, kept in Segment's camelCase (`identifyUser`).
    pub key: &'static str,
    /// The display name (`Identify User`).
    pub name: &'static str,
    /// What the action does.
    pub description: &'static str,
    /// The default trigger (FQL) offered for new mappings.
    pub default_trigger: &'static str,
    /// Beyond Segment: not part of Segment's definition of the destination.
    pub beyond_segment: bool,
    /// The fields, in display order.
    pub fields: &'static [FieldDef],
    /// The request the action sends for one payload, if it has a single form.
    pub request: Option<RequestDef>,
    /// The batch form, if any.
    pub batch: Option<BatchDef>,
    /// How the API merges the action's request into the record it names, if declared.
    pub merges: Option<MergesDef>,
    /// An optional hook whose output the request (or the batch item) reads at `$.computed`.
    pub hook: Option<HookFn>,
}

/// A destination as generated code embeds it.
#[derive(Debug, Clone, Copy)]
pub struct DestinationDef {
    /// The catalog id.
    pub id: &'static str,
    /// The display name (`Userpilot Cloud (Actions)`).
    pub name: &'static str,
    /// The slug (`actions-userpilot-cloud`).
    pub slug: &'static str,
    /// The settings, in display order.
    pub settings: &'static [SettingDef],
    /// What every request shares.
    pub request_defaults: RequestDefaultsDef,
    /// Default rate limits.
    pub rate_limits: &'static [RateLimitDef],
    /// Presets.
    pub presets: &'static [PresetDef],
    /// Actions.
    pub actions: &'static [ActionDef],
    /// The request that checks credentials (context `{"settings"}`), if any.
    pub test_authentication: Option<RequestDef>,
    /// The request that deletes a user (context `{"payload": {userId, anonymousId}, "settings"}`).
    pub on_delete: Option<RequestDef>,
    /// Beyond Segment: requests that delete many users or companies at once.
    pub deletions: DeletionsDef,
}

/// The bulk deletions of a destination, by kind of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletionsDef {
    /// Deletes users.
    pub users: Option<DeletionDef>,
    /// Deletes companies.
    pub companies: Option<DeletionDef>,
}

impl DeletionsDef {
    /// No bulk deletion.
    pub const NONE: Self = Self {
        users: None,
        companies: None,
    };
}

/// One bulk deletion (context `{"payload": {"ids": [...]}, "settings"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletionDef {
    /// The most ids one request carries.
    pub max_ids: usize,
    /// The request.
    pub request: RequestDef,
}

/// Which kind of record a bulk deletion removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionKind {
    /// Users.
    Users,
    /// Companies.
    Companies,
}

impl DeletionKind {
    /// `users` or `companies`, as in the YAML's `deletions`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Users => "users",
            Self::Companies => "companies",
        }
    }
}

/// A destination definition that does not compile, with every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("destination '{slug}' has an invalid definition: {}", .problems.join("; "))]
pub struct DefinitionError {
    /// The destination's slug.
    pub slug: String,
    /// One entry per problem, naming where it is.
    pub problems: Vec<String>,
}

/// A request template with its body mapping compiled.
#[derive(Debug, Clone)]
pub struct CompiledRequest {
    /// The definition.
    pub def: &'static RequestDef,
    /// What the request is, for messages (`action 'identifyUser' request`).
    pub what: String,
    /// Its index among the destination's requests, where an instance keeps what it resolved
    /// for it once (a URL that reads only settings, the signature key).
    pub(crate) slot: usize,
    /// The compiled URL mapping, if the request has `url`.
    pub(crate) url: Option<CompiledValue>,
    /// The compiled method mapping, if the method is not fixed.
    pub(crate) method: Option<CompiledValue>,
    /// The compiled header mappings: lower-case name and value.
    pub(crate) headers: Vec<(String, CompiledValue)>,
    /// The compiled mapping of headers named by data, if the request has `headers_from`.
    pub(crate) headers_from: Option<CompiledValue>,
    /// The compiled signature secret mapping, if the request has its own `sign`.
    pub(crate) sign: Option<(crate::sign::SignDef, Mapping)>,
    /// The compiled body mapping.
    pub json: Option<Mapping>,
    /// A faster equivalent of `json` when it only copies values (see [`crate::build`]).
    pub(crate) copy_plan: Option<crate::build::CopyPlan>,
    /// Whether the body mapping may read settings, so that its result must be probed for
    /// secrets (see [`crate::redact`]).
    pub(crate) reads_settings: bool,
}

/// A compiled mapping of a request part (URL, method, header) with what it reads.
#[derive(Debug, Clone)]
pub struct CompiledValue {
    /// The mapping.
    pub mapping: Mapping,
    /// Whether it may read settings (so its result is probed for secrets).
    pub reads_settings: bool,
    /// Whether it reads only settings, so that it can be resolved once per instance.
    pub settings_only: bool,
    /// The payload fields it reads, to name them in errors.
    pub fields: Vec<String>,
    /// The settings it reads, to name them in errors.
    pub settings: Vec<String>,
}

impl CompiledValue {
    fn new(mapping: Mapping) -> CompiledValue {
        let raw = mapping.raw();
        let reads_settings = crate::redact::may_read_settings(raw);
        let reads = actionkit_mapping::reads(raw, "");
        CompiledValue {
            fields: reads.keys_under("payload"),
            settings: reads.keys_under("settings"),
            reads_settings,
            settings_only: reads.only_under("settings"),
            mapping,
        }
    }

    /// `(it reads field 'url')`-style words naming what the value reads, or `""`.
    pub fn reads(&self) -> String {
        let quote = |keys: &[String]| {
            keys.iter()
                .map(|k| format!("'{k}'"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        match self.fields.len() {
            0 => {}
            1 => parts.push(format!("field {}", quote(&self.fields))),
            _ => parts.push(format!("fields {}", quote(&self.fields))),
        }
        match self.settings.len() {
            0 => {}
            1 => parts.push(format!("setting {}", quote(&self.settings))),
            _ => parts.push(format!("settings {}", quote(&self.settings))),
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!(" (it reads {})", parts.join(" and "))
        }
    }
}

/// A batch form with its item and request mappings compiled.
#[derive(Debug, Clone)]
pub struct CompiledBatch {
    /// The definition.
    pub def: &'static BatchDef,
    /// The compiled item mapping; `None` takes the payload as it is.
    pub item: Option<Mapping>,
    /// A faster equivalent of `item` when it only copies values.
    pub(crate) item_plan: Option<crate::build::CopyPlan>,
    /// Whether the item mapping may read settings (see [`crate::redact`]).
    pub(crate) item_reads_settings: bool,
    /// The request template (its body reads `$.items`).
    pub request: CompiledRequest,
}

/// An action with its payload schema and mappings compiled.
#[derive(Debug, Clone)]
pub struct CompiledAction {
    /// The definition.
    pub def: &'static ActionDef,
    /// The payload validator compiled from the fields.
    pub schema: PayloadSchema,
    /// The single-payload request template, if the action has one.
    pub request: Option<CompiledRequest>,
    /// The batch form, if the action has one.
    pub batch: Option<CompiledBatch>,
    /// The field defaults as a mapping object (`{"userId": {"@path": …}, …}`).
    pub default_mapping_json: Value,
    /// The field defaults, compiled.
    pub default_mapping: Mapping,
}

/// A preset with its trigger and mapping compiled.
#[derive(Debug, Clone)]
pub struct CompiledPreset {
    /// The definition.
    pub def: &'static PresetDef,
    /// The index of its action in [`CompiledDestination::actions`].
    pub action_index: usize,
    /// The compiled trigger.
    pub trigger: Expr,
    /// The mapping as JSON.
    pub mapping_json: Value,
    /// The compiled mapping.
    pub mapping: Mapping,
}

/// A destination with every mapping, trigger and schema compiled once.
#[derive(Debug, Clone)]
pub struct CompiledDestination {
    /// The definition.
    pub def: &'static DestinationDef,
    /// The settings validator.
    pub settings_schema: PayloadSchema,
    /// The compiled base-URL mapping, if the destination has a base URL.
    pub base_url: Option<Mapping>,
    /// The compiled default signature: its definition and secret mapping.
    pub sign: Option<(crate::sign::SignDef, Mapping)>,
    /// How many requests the destination has (the slots of [`CompiledRequest`]).
    pub(crate) n_requests: usize,
    /// The compiled header mappings: lower-case name and value mapping.
    pub headers: Vec<(String, Mapping)>,
    /// The actions, in definition order.
    pub actions: Vec<CompiledAction>,
    /// The presets, in definition order.
    pub presets: Vec<CompiledPreset>,
    /// The credentials check, if any.
    pub test_authentication: Option<CompiledRequest>,
    /// The user deletion, if any.
    pub on_delete: Option<CompiledRequest>,
    /// The bulk deletion of users, with its most ids per request, if any.
    pub delete_users: Option<(usize, CompiledRequest)>,
    /// The bulk deletion of companies, with its most ids per request, if any.
    pub delete_companies: Option<(usize, CompiledRequest)>,
}

impl CompiledDestination {
    /// The bulk deletion of `kind`, with its most ids per request, if the destination has one.
    pub fn deletion(&self, kind: DeletionKind) -> Option<&(usize, CompiledRequest)> {
        match kind {
            DeletionKind::Users => self.delete_users.as_ref(),
            DeletionKind::Companies => self.delete_companies.as_ref(),
        }
    }
}

/// Collects problems while compiling one destination, and counts its requests.
struct Problems(Vec<String>, usize);

impl Problems {
    fn json(&mut self, what: &str, text: &str) -> Option<Value> {
        match serde_json::from_str(text) {
            Ok(value) => Some(value),
            Err(err) => {
                self.0.push(format!("{what} is not valid JSON: {err}"));
                None
            }
        }
    }

    fn mapping(&mut self, what: &str, raw: &Value) -> Option<Mapping> {
        match Mapping::compile(raw) {
            Ok(mapping) => Some(mapping),
            Err(err) => {
                self.0.push(format!(
                    "{what} is not a valid mapping: {}",
                    err.messages.join(" ")
                ));
                None
            }
        }
    }

    fn mapping_text(&mut self, what: &str, text: &str) -> Option<Mapping> {
        let raw = self.json(what, text)?;
        self.mapping(what, &raw)
    }

    fn request(
        &mut self,
        what: &str,
        def: &'static RequestDef,
        dest: &DestinationDef,
    ) -> Option<CompiledRequest> {
        if let Some(key) = def.rate_limit {
            if !dest.rate_limits.iter().any(|limit| limit.key == key) {
                self.0.push(format!(
                    "{what} refers to rate limit '{key}', which rate_limits does not declare"
                ));
            }
        }
        if def.url.is_none() && dest.request_defaults.base_url.is_none() {
            self.0.push(format!(
                "{what} has a path but request_defaults has no base_url to join it onto"
            ));
        }
        let json = match def.json {
            Some(text) => Some(self.mapping_text(&format!("{what} json"), text)?),
            None => None,
        };
        let url = match def.url {
            Some(text) => Some(CompiledValue::new(
                self.mapping_text(&format!("{what} url"), text)?,
            )),
            None => None,
        };
        let method = match def.method_mapping {
            Some(text) => Some(CompiledValue::new(
                self.mapping_text(&format!("{what} method"), text)?,
            )),
            None => None,
        };
        let mut headers = Vec::with_capacity(def.headers.len());
        for header in def.headers {
            let mapping =
                self.mapping_text(&format!("{what} header '{}'", header.name), header.value)?;
            headers.push((
                header.name.to_ascii_lowercase(),
                CompiledValue::new(mapping),
            ));
        }
        let headers_from = match def.headers_from {
            Some(text) => Some(CompiledValue::new(
                self.mapping_text(&format!("{what} headers_from"), text)?,
            )),
            None => None,
        };
        let sign = match def.sign {
            Some(sign) => Some((
                sign,
                self.mapping_text(&format!("{what} sign.secret"), sign.secret)?,
            )),
            None => None,
        };
        let slot = self.1;
        self.1 += 1;
        let copy_plan = json
            .as_ref()
            .and_then(|mapping| crate::build::CopyPlan::new(mapping.raw()));
        let reads_settings = json
            .as_ref()
            .is_some_and(|mapping| crate::redact::may_read_settings(mapping.raw()));
        Some(CompiledRequest {
            def,
            what: what.to_owned(),
            slot,
            url,
            method,
            headers,
            headers_from,
            sign,
            json,
            copy_plan,
            reads_settings,
        })
    }
}

impl CompiledDestination {
    /// Compiles every mapping, trigger and schema of `def`, reporting every problem at once.
    pub fn new(def: &'static DestinationDef) -> Result<CompiledDestination, DefinitionError> {
        let mut problems = Problems(Vec::new(), 0);
        for (idx, setting) in def.settings.iter().enumerate() {
            if def.settings[..idx].iter().any(|s| s.key == setting.key) {
                problems
                    .0
                    .push(format!("setting '{}' is declared twice", setting.key));
            }
            if let Some(default) = setting.default {
                problems.json(&format!("setting '{}' default", setting.key), default);
            }
        }
        let base_url = def
            .request_defaults
            .base_url
            .map(|text| problems.mapping_text("request_defaults.base_url", text));
        let sign = def.request_defaults.sign.and_then(|sign| {
            problems
                .mapping_text("request_defaults sign.secret", sign.secret)
                .map(|mapping| (sign, mapping))
        });
        let mut headers = Vec::new();
        for header in def.request_defaults.headers {
            let what = format!("request_defaults header '{}'", header.name);
            if let Some(mapping) = problems.mapping_text(&what, header.value) {
                headers.push((header.name.to_ascii_lowercase(), mapping));
            }
        }
        let mut actions = Vec::new();
        for (idx, action) in def.actions.iter().enumerate() {
            if def.actions[..idx].iter().any(|a| a.key == action.key) {
                problems
                    .0
                    .push(format!("action '{}' is declared twice", action.key));
            }
            if let Some(compiled) = compile_action(action, def, &mut problems) {
                actions.push(compiled);
            }
        }
        let mut presets = Vec::new();
        for preset in def.presets {
            let what = format!("preset '{}'", preset.name);
            let Some(action_index) = def.actions.iter().position(|a| a.key == preset.action_key)
            else {
                problems.0.push(format!(
                    "{what} refers to action '{}', which does not exist",
                    preset.action_key
                ));
                continue;
            };
            let trigger = match actionkit_fql::parse(preset.trigger) {
                Ok(expr) => Some(expr),
                Err(err) => {
                    problems
                        .0
                        .push(format!("{what} trigger does not parse: {err}"));
                    None
                }
            };
            let mapping_json = match preset.mapping {
                PresetMapping::Defaults => actions
                    .iter()
                    .find(|a| a.def.key == preset.action_key)
                    .map(|a| a.default_mapping_json.clone()),
                PresetMapping::Json(text) => problems.json(&format!("{what} mapping"), text),
            };
            let Some(mapping_json) = mapping_json else {
                continue;
            };
            let mapping = problems.mapping(&format!("{what} mapping"), &mapping_json);
            if let (Some(trigger), Some(mapping)) = (trigger, mapping) {
                presets.push(CompiledPreset {
                    def: preset,
                    action_index,
                    trigger,
                    mapping_json,
                    mapping,
                });
            }
        }
        let test_authentication = def
            .test_authentication
            .as_ref()
            .and_then(|r| problems.request("test_authentication", r, def));
        let on_delete = def
            .on_delete
            .as_ref()
            .and_then(|r| problems.request("on_delete", r, def));
        let mut deletion = |what: &str, d: &'static DeletionDef| {
            if d.max_ids == 0 {
                problems
                    .0
                    .push(format!("{what}: max_ids must be at least 1"));
                return None;
            }
            problems
                .request(what, &d.request, def)
                .map(|request| (d.max_ids, request))
        };
        let delete_users = def
            .deletions
            .users
            .as_ref()
            .and_then(|d| deletion("deletions.users", d));
        let delete_companies = def
            .deletions
            .companies
            .as_ref()
            .and_then(|d| deletion("deletions.companies", d));
        match base_url {
            Some(None) => Err(DefinitionError {
                slug: def.slug.to_owned(),
                problems: problems.0,
            }),
            base_url if problems.0.is_empty() => Ok(CompiledDestination {
                def,
                settings_schema: PayloadSchema::from_settings(def.settings),
                base_url: base_url.flatten(),
                sign,
                n_requests: problems.1,
                headers,
                actions,
                presets,
                test_authentication,
                on_delete,
                delete_users,
                delete_companies,
            }),
            _ => Err(DefinitionError {
                slug: def.slug.to_owned(),
                problems: problems.0,
            }),
        }
    }

    /// Every request template of the destination, in slot order.
    pub fn requests(&self) -> Vec<&CompiledRequest> {
        let mut out: Vec<&CompiledRequest> = Vec::with_capacity(self.n_requests);
        for action in &self.actions {
            out.extend(action.request.as_ref());
            out.extend(action.batch.as_ref().map(|batch| &batch.request));
        }
        out.extend(self.test_authentication.as_ref());
        out.extend(self.on_delete.as_ref());
        out.extend(self.delete_users.as_ref().map(|(_, r)| r));
        out.extend(self.delete_companies.as_ref().map(|(_, r)| r));
        out.sort_by_key(|r| r.slot);
        out
    }

    /// Finds an action by key.
    pub fn action(&self, key: &str) -> Option<&CompiledAction> {
        self.actions.iter().find(|a| a.def.key == key)
    }

    /// The most entries one batch of any of the destination's batch actions carries (0 when it
    /// has none): how many events must wait together for its batches to fill.
    pub fn largest_batch(&self) -> usize {
        self.actions
            .iter()
            .filter_map(|action| action.batch.as_ref().map(|batch| batch.def.max_items))
            .max()
            .unwrap_or(0)
    }

    /// The index of an action in [`CompiledDestination::actions`].
    pub fn action_index(&self, key: &str) -> Option<usize> {
        self.actions.iter().position(|a| a.def.key == key)
    }

    /// The destination's slug.
    pub fn slug(&self) -> &'static str {
        self.def.slug
    }
}

fn compile_action(
    action: &'static ActionDef,
    dest: &DestinationDef,
    problems: &mut Problems,
) -> Option<CompiledAction> {
    let what = format!("action '{}'", action.key);
    let mut defaults = Map::new();
    for field in action.fields {
        if let Some(text) = field.default {
            if let Some(value) =
                problems.json(&format!("{what} field '{}' default", field.key), text)
            {
                defaults.insert(field.key.to_owned(), value);
            }
        }
    }
    let default_mapping_json = Value::Object(defaults);
    let default_mapping =
        problems.mapping(&format!("{what} field defaults"), &default_mapping_json);
    if action.request.is_none() && action.batch.is_none() {
        problems
            .0
            .push(format!("{what} has neither a request nor a batch form"));
        return None;
    }
    let request = match &action.request {
        Some(def) => Some(problems.request(&format!("{what} request"), def, dest)?),
        None => None,
    };
    let batch = match &action.batch {
        Some(def) => Some(compile_batch(&what, def, dest, problems)?),
        None => None,
    };
    Some(CompiledAction {
        def: action,
        schema: PayloadSchema::from_fields(action.fields),
        request,
        batch,
        default_mapping_json,
        default_mapping: default_mapping?,
    })
}

fn compile_batch(
    what: &str,
    def: &'static BatchDef,
    dest: &DestinationDef,
    problems: &mut Problems,
) -> Option<CompiledBatch> {
    if def.max_items == 0 {
        problems
            .0
            .push(format!("{what} batch: max_items must be at least 1"));
        return None;
    }
    let item = match def.item {
        Some(text) => Some(problems.mapping_text(&format!("{what} batch item"), text)?),
        None => None,
    };
    let item_plan = item
        .as_ref()
        .and_then(|mapping| crate::build::CopyPlan::new(mapping.raw()));
    let item_reads_settings = item
        .as_ref()
        .is_some_and(|mapping| crate::redact::may_read_settings(mapping.raw()));
    let request = problems.request(&format!("{what} batch request"), &def.request, dest)?;
    Some(CompiledBatch {
        def,
        item,
        item_plan,
        item_reads_settings,
        request,
    })
}

/// The compiled destinations of a build, found by slug.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    destinations: Vec<Arc<CompiledDestination>>,
}

impl Registry {
    /// Compiles every definition; fails with the problems of every invalid one (and on duplicate
    /// slugs).
    pub fn new(defs: &[&'static DestinationDef]) -> Result<Registry, Vec<DefinitionError>> {
        let mut destinations = Vec::new();
        let mut errors = Vec::new();
        for (idx, def) in defs.iter().enumerate() {
            if defs[..idx].iter().any(|d| d.slug == def.slug) {
                errors.push(DefinitionError {
                    slug: def.slug.to_owned(),
                    problems: vec!["the slug is used by another destination".to_owned()],
                });
                continue;
            }
            match CompiledDestination::new(def) {
                Ok(compiled) => destinations.push(Arc::new(compiled)),
                Err(err) => errors.push(err),
            }
        }
        if errors.is_empty() {
            Ok(Registry { destinations })
        } else {
            Err(errors)
        }
    }

    /// Finds a destination by slug.
    pub fn get(&self, slug: &str) -> Option<&Arc<CompiledDestination>> {
        self.destinations.iter().find(|d| d.def.slug == slug)
    }

    /// Finds an action of a destination.
    pub fn action(&self, slug: &str, action_key: &str) -> Option<&CompiledAction> {
        self.get(slug)?.action(action_key)
    }

    /// Every destination, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<CompiledDestination>> {
        self.destinations.iter()
    }
}
