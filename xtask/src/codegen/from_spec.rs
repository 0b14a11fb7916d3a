//! Loading every destination under `actions/` through the spec crate, and converting its model
//! into the generators' [`Destination`].
//!
//! Loading is validation: the spec crate reports every problem of every file at once, and this
//! module collects the diagnostics of all destinations before failing, so one run shows them all.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Map, Value, json};

use actionkit_spec::model as spec;

use super::model::{
    Action, Batch, Choice, Condition, Conditions, Deletion, Destination, Field, FieldType,
    MergesById, Preset, RateLimit, Request, RequestDefaults, Required, Setting, SettingType, Sign,
};

/// The error of [`load_all`] when any destination has problems: every rendered diagnostic.
#[derive(Debug)]
pub struct ValidationFailed {
    /// The rendered diagnostics of every destination that failed to load.
    pub rendered: Vec<String>,
    /// How many problems there were in total.
    pub n_problems: usize,
}

impl std::fmt::Display for ValidationFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for text in &self.rendered {
            writeln!(f, "{text}")?;
        }
        write!(
            f,
            "validation failed with {} problem(s); nothing was generated",
            self.n_problems
        )
    }
}

impl std::error::Error for ValidationFailed {}

/// The destination directories under `root/actions`, sorted by name.
pub fn destination_dirs(root: &Path) -> Result<Vec<std::path::PathBuf>> {
    let actions = root.join("actions");
    let mut dirs = Vec::new();
    let entries = std::fs::read_dir(&actions)
        .with_context(|| format!("cannot list {}", actions.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", actions.display()))?;
        let path = entry.path();
        if path.is_dir() && path.join("destination.yaml").is_file() {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// Loads and validates every destination under `root/actions`; fails with every diagnostic.
pub fn load_all(root: &Path) -> Result<Vec<Destination>> {
    let mut dests = Vec::new();
    let mut failed = ValidationFailed {
        rendered: Vec::new(),
        n_problems: 0,
    };
    for dir in destination_dirs(root)? {
        match load_one(root, &dir)? {
            Ok(dest) => dests.push(dest),
            Err(mut diagnostics) => {
                // Name files relative to the repository, as a reader types them.
                let prefix = format!("{}/", root.display());
                for diagnostic in &mut diagnostics.items {
                    if let Some(rel) = diagnostic.file.strip_prefix(&prefix) {
                        diagnostic.file = rel.to_owned();
                    }
                }
                failed.n_problems += diagnostics.len();
                failed.rendered.push(diagnostics.to_string());
            }
        }
    }
    if failed.n_problems > 0 {
        return Err(failed.into());
    }
    Ok(dests)
}

/// Where a destination's hand-written hooks live, relative to the repository root.
const HOOKS_DIR: &str = "crates/destinations/src/hooks";

/// The public functions of the hook module of the destination in `actions/<dir_name>`, read
/// from `crates/destinations/src/hooks/<module>.rs`: what its actions may name as `hook`.
pub fn hook_functions(root: &Path, dir_name: &str) -> actionkit_spec::HookFunctions {
    let module = super::names::snake_case(dir_name);
    let file = format!("{HOOKS_DIR}/{module}.rs");
    let mut hooks = actionkit_spec::HookFunctions {
        file: file.clone(),
        ..Default::default()
    };
    let text = match std::fs::read_to_string(root.join(&file)) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            hooks.problem = Some(format!("{file} does not exist"));
            return hooks;
        }
        Err(err) => {
            hooks.problem = Some(format!("{file} cannot be read: {err}"));
            return hooks;
        }
    };
    let parsed = match syn::parse_file(&text) {
        Ok(parsed) => parsed,
        Err(err) => {
            hooks.problem = Some(format!("{file} is not valid rust: {err}"));
            return hooks;
        }
    };
    let declared = std::fs::read_to_string(root.join(HOOKS_DIR).join("mod.rs"))
        .ok()
        .and_then(|text| syn::parse_file(&text).ok())
        .is_some_and(|mod_rs| {
            mod_rs.items.iter().any(|item| {
                matches!(item, syn::Item::Mod(m) if m.ident == module
                    && matches!(m.vis, syn::Visibility::Public(_)))
            })
        });
    if !declared {
        hooks.problem = Some(format!(
            "{HOOKS_DIR}/mod.rs does not declare `pub mod {module};`"
        ));
        return hooks;
    }
    hooks.defined = parsed
        .items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Fn(f) if matches!(f.vis, syn::Visibility::Public(_)) => {
                Some(f.sig.ident.to_string())
            }
            _ => None,
        })
        .collect();
    hooks
}

/// Loads one destination directory; the inner error holds its diagnostics.
fn load_one(
    root: &Path,
    dir: &Path,
) -> Result<std::result::Result<Destination, actionkit_spec::Diagnostics>> {
    let dir_name = dir
        .file_name()
        .and_then(|name| name.to_str())
        .with_context(|| format!("the directory name of {} is not UTF-8", dir.display()))?
        .to_owned();
    let hooks = hook_functions(root, &dir_name);
    let loaded = match actionkit_spec::load_destination_dir_with_hooks(dir, Some(&hooks)) {
        Ok(loaded) => loaded,
        Err(diagnostics) => return Ok(Err(diagnostics)),
    };
    let actions: Vec<&spec::ActionSpec> =
        loaded.actions.iter().map(|action| &action.spec).collect();
    let docs_prose = loaded.docs.clone().unwrap_or_default();
    Ok(Ok(convert(
        &dir_name,
        &loaded.destination,
        &actions,
        docs_prose,
    )?))
}

/// Converts the spec model of one destination into the generators' model.
pub fn convert(
    dir_name: &str,
    dest: &spec::DestinationSpec,
    actions: &[&spec::ActionSpec],
    docs_prose: String,
) -> Result<Destination> {
    let actions: Vec<Action> = actions
        .iter()
        .map(|action| convert_action(action))
        .collect::<Result<_>>()?;
    let presets = dest
        .presets
        .iter()
        .map(|preset| {
            let uses_defaults = matches!(preset.mapping, spec::PresetMapping::Defaults(_));
            let mapping = match &preset.mapping {
                spec::PresetMapping::Defaults(_) => {
                    let action = actions
                        .iter()
                        .find(|action| action.key == preset.action)
                        .with_context(|| {
                            format!(
                                "preset `{}` names an unknown action `{}`",
                                preset.name, preset.action
                            )
                        })?;
                    action
                        .fields
                        .iter()
                        .filter_map(|field| {
                            field
                                .default
                                .clone()
                                .map(|default| (field.key.clone(), default))
                        })
                        .collect::<Map<String, Value>>()
                }
                spec::PresetMapping::Fields(fields) => fields
                    .iter()
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect(),
            };
            Ok(Preset {
                name: preset.name.clone(),
                action_key: preset.action.clone(),
                trigger: preset.trigger.clone(),
                mapping,
                uses_defaults,
                enabled: preset.enabled,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Destination {
        dir_name: dir_name.to_owned(),
        id: dest.id.clone(),
        name: dest.name.clone(),
        display_name: dest.display_name.clone(),
        slug: dest.slug.clone(),
        mode: "cloud".to_owned(),
        description: dest.description.clone(),
        catalog: dest.catalog.as_ref().map(catalog_meta),
        settings: dest
            .settings
            .iter()
            .map(|(key, setting)| Setting {
                key: key.clone(),
                label: setting.label.clone(),
                kind: setting_type(setting.r#type),
                catalog_kind: setting_type(setting.effective_catalog_type()),
                required: setting.required,
                secret: setting.is_secret(),
                description: setting.description.clone(),
                default: setting.default.clone(),
                format: setting.format.map(format_name),
            })
            .collect(),
        request_defaults: dest
            .request_defaults
            .as_ref()
            .map(|defaults| RequestDefaults {
                base_url: defaults.base_url.clone(),
                headers: defaults
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                sign: defaults.sign.as_ref().map(sign),
            })
            .unwrap_or_default(),
        rate_limits: dest
            .rate_limits
            .iter()
            .map(|limit| RateLimit {
                key: limit.key.clone(),
                max_requests: u64::from(limit.max_requests),
                per_seconds: u64::from(limit.per_seconds),
            })
            .collect(),
        presets,
        test_authentication: dest.test_authentication.as_ref().map(request),
        on_delete: dest.on_delete.as_ref().map(request),
        delete_users: dest.deletions.users.as_ref().map(deletion),
        delete_companies: dest.deletions.companies.as_ref().map(deletion),
        actions,
        docs_prose,
    })
}

/// The catalog metadata with Segment's key spellings, in the reference entry's order.
fn catalog_meta(meta: &spec::CatalogMeta) -> Map<String, Value> {
    let platforms = &meta.platforms;
    let mut out = Map::new();
    out.insert("hidden".into(), json!(meta.hidden));
    out.insert("endpoints".into(), json!(meta.endpoints));
    out.insert("regions".into(), json!(meta.regions));
    out.insert("url".into(), json!(meta.url));
    out.insert("previous_names".into(), json!(meta.previous_names));
    out.insert("website".into(), json!(meta.website));
    out.insert("status".into(), json!(meta.status));
    out.insert("categories".into(), json!(meta.categories));
    out.insert("logo".into(), json!({"url": meta.logo.url}));
    out.insert("mark".into(), json!({"url": meta.mark.url}));
    out.insert(
        "methods".into(),
        json!({
            "track": meta.methods.track,
            "identify": meta.methods.identify,
            "group": meta.methods.group,
            "alias": meta.methods.alias,
            "screen": meta.methods.screen,
            "page": meta.methods.page,
        }),
    );
    out.insert(
        "platforms".into(),
        json!({
            "browser": platforms.browser,
            "mobile": platforms.mobile,
            "server": platforms.server,
            "warehouse": platforms.warehouse,
            "cloudAppObject": platforms.cloud_app_object,
            "linkedAudiences": platforms.linked_audiences,
        }),
    );
    out.insert("components".into(), json!(meta.components));
    out.insert(
        "browserUnbundlingSupported".into(),
        json!(meta.browser_unbundling_supported),
    );
    out.insert(
        "browserUnbundlingPublic".into(),
        json!(meta.browser_unbundling_public),
    );
    out.insert("replay".into(), json!(meta.replay));
    let modes = |m: &spec::CatalogModePlatforms| json!({"web": m.web, "mobile": m.mobile, "server": m.server});
    out.insert(
        "connection_modes".into(),
        json!({"device": modes(&meta.connection_modes.device), "cloud": modes(&meta.connection_modes.cloud)}),
    );
    out.insert("partnerOwned".into(), json!(meta.partner_owned));
    out
}

fn setting_type(kind: spec::SettingType) -> SettingType {
    match kind {
        spec::SettingType::String => SettingType::String,
        spec::SettingType::Password => SettingType::Password,
        spec::SettingType::Number => SettingType::Number,
        spec::SettingType::Boolean => SettingType::Boolean,
    }
}

fn format_name(format: spec::StringFormat) -> String {
    match serde_json::to_value(format) {
        Ok(Value::String(name)) => name,
        _ => format!("{format:?}").to_lowercase(),
    }
}

fn deletion(spec: &spec::DeletionSpec) -> Deletion {
    Deletion {
        max_ids: spec.max_ids,
        request: request(&spec.request),
    }
}

fn sign(spec: &spec::SignSpec) -> Sign {
    let (algorithm, algorithm_name) = match spec.algorithm {
        spec::SignAlgorithm::HmacSha1 => ("HmacSha1", "hmac-sha1"),
        spec::SignAlgorithm::HmacSha256 => ("HmacSha256", "hmac-sha256"),
        spec::SignAlgorithm::HmacSha512 => ("HmacSha512", "hmac-sha512"),
    };
    Sign {
        algorithm: algorithm.to_owned(),
        algorithm_name: algorithm_name.to_owned(),
        secret: spec.secret.clone(),
        header: spec.header.clone(),
        encoding: match spec.encoding {
            spec::SignEncoding::Hex => "hex".to_owned(),
            spec::SignEncoding::Base64 => "base64".to_owned(),
        },
        prefix: spec.prefix.clone(),
    }
}

fn request(spec: &spec::RequestSpec) -> Request {
    Request {
        method: spec
            .method
            .fixed()
            .unwrap_or(spec::HttpMethod::Post)
            .as_str()
            .to_owned(),
        method_mapping: match &spec.method {
            spec::MethodSpec::Fixed(_) => None,
            spec::MethodSpec::Mapped(map) => Some(Value::Object(map.clone())),
        },
        path: spec.path.clone().unwrap_or_default(),
        url: spec.url.clone(),
        headers: spec
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        headers_from: spec.headers_from.clone(),
        sign: spec.sign.as_ref().map(sign),
        rate_limit: spec.rate_limit.clone(),
        hook: spec.hook.clone(),
        json: spec.json.clone(),
        busy_statuses: spec.busy_statuses.clone(),
        response_id: spec.response_id.clone(),
    }
}

fn batch(spec: &spec::BatchSpec) -> Batch {
    Batch {
        max_items: spec.max_items,
        max_bytes: spec.max_bytes,
        wait_ms: spec.wait_ms,
        keys: spec.keys.clone(),
        hook: spec.hook.clone(),
        item: spec.item.clone(),
        request: request(&spec.request),
        item_errors: spec
            .item_errors
            .as_ref()
            .map(|e| (e.list.clone(), e.index.clone(), e.message.clone())),
    }
}

fn convert_action(action: &spec::ActionSpec) -> Result<Action> {
    Ok(Action {
        id: action.id.clone(),
        key: action.key.clone(),
        name: action.name.clone(),
        description: action.description.clone(),
        platform: "cloud".to_owned(),
        hidden: action.hidden,
        default_trigger: action.default_trigger.clone(),
        fields: action
            .fields
            .iter()
            .map(|(key, field)| convert_field(key, field))
            .collect::<Result<_>>()?,
        beyond_segment: action.beyond_segment,
        request: action.request.as_ref().map(request),
        batch: action.batch.as_ref().map(batch),
        merges_by_id: action.merges_by_id.as_ref().map(|m| MergesById {
            record: m.record.clone(),
            id: m.id.clone(),
            merged: m.merged.clone(),
        }),
    })
}

fn conditions(set: &spec::ConditionSet) -> Conditions {
    Conditions {
        match_any: set.r#match == Some(spec::MatchMode::Any),
        conditions: set
            .conditions
            .iter()
            .map(|condition| Condition {
                field_key: condition.field_key.clone(),
                is: condition.operator == spec::ConditionOperator::Is,
                value: condition.value.clone(),
            })
            .collect(),
    }
}

fn convert_field(key: &str, field: &spec::FieldSpec) -> Result<Field> {
    let number = |n: &Option<serde_json::Number>| n.as_ref().and_then(serde_json::Number::as_f64);
    Ok(Field {
        key: key.to_owned(),
        id: field.id.clone(),
        label: field.label.clone(),
        kind: match field.r#type {
            spec::FieldType::String => FieldType::String,
            spec::FieldType::Text => FieldType::Text,
            spec::FieldType::Number => FieldType::Number,
            spec::FieldType::Integer => FieldType::Integer,
            spec::FieldType::Datetime => FieldType::Datetime,
            spec::FieldType::Boolean => FieldType::Boolean,
            spec::FieldType::Password => FieldType::Password,
            spec::FieldType::Object => FieldType::Object,
        },
        required: match &field.required {
            None | Some(spec::Required::Always(false)) => Required::No,
            Some(spec::Required::Always(true)) => Required::Yes,
            Some(spec::Required::When(set)) => Required::When(conditions(set)),
        },
        description: field.description.clone().unwrap_or_default(),
        placeholder: field.placeholder.clone(),
        default: field.default.clone(),
        multiple: field.multiple.unwrap_or(false),
        allow_null: field.allow_null.unwrap_or(false),
        choices: field.choices.as_ref().map(|choices| {
            choices
                .iter()
                .map(|choice| {
                    let value = match choice.value() {
                        spec::ChoiceValue::String(s) => Value::String(s.clone()),
                        spec::ChoiceValue::Number(n) => Value::Number(n.clone()),
                        spec::ChoiceValue::Boolean(b) => Value::Bool(*b),
                    };
                    let label = match choice {
                        spec::Choice::Labeled(labeled) => labeled.label.clone(),
                        spec::Choice::Plain(_) => match &value {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        },
                    };
                    Choice { label, value }
                })
                .collect()
        }),
        properties: match &field.properties {
            Some(properties) => properties
                .iter()
                .map(|(key, sub)| convert_field(key, sub))
                .collect::<Result<_>>()?,
            None => Vec::new(),
        },
        additional_properties: field.additional_properties.unwrap_or(false),
        format: field.format.map(format_name),
        minimum: number(&field.minimum),
        maximum: number(&field.maximum),
        hidden: field.hidden.unwrap_or(false),
        dynamic: field.dynamic.unwrap_or(false),
        depends_on: field.depends_on.as_ref().map(conditions),
    })
}
