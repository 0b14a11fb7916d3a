//! The catalog export: `catalog/<slug>.yml`, one entry in the shape of Segment's catalog.
//!
//! The file is a YAML list holding one entry, exactly like Segment's catalog entry for a destination,
//! so tooling that reads Segment's catalog can read ours. YAML (rather than JSON) is chosen because
//! it allows the "generated, do not edit" comment on the first line. The entry is also what the docs
//! page renders its tables from, as Segment's docs site does.
//!
//! Rules, each as Segment's catalog has it: the entry's `name` is the display name (the YAML's
//! `name` is the definition's, which events' `integrations` objects use: `Webhook` against the
//! catalog's `Webhooks (Actions)`); settings list their catalog type (the YAML's `catalog_type`,
//! else `type`; Segment's catalog lists the Userpilot `password` API key as `string`); action
//! field types are upper case; a field's `sortOrder` is its position among the action's fields; a
//! hidden field (Segment's `unsafe_hidden`) is left out but keeps its position; a field without a
//! default mapping has no `defaultValue`; the batch switch (`enable_batching` of an action with
//! both forms, which Segment's platform adds) has neither `placeholder` nor `hidden`; a
//! conditionally required field exports its conditions (truthy, so the docs mark it required);
//! presets export the action's id and the resolved mapping as `fields`.
//!
//! Beyond Segment: actions declared with `beyond_segment: true`, the presets of those actions and
//! presets declared with `enabled: false` (off unless a configuration turns them on) are left out
//! of the entry, so that it stays equal to Segment's entry key for key. They are
//! listed apart in `catalog/<slug>.beyond-segment.yml` (written only when there are any): a
//! mapping with `destination` (the entry's `id` and `slug`) and `beyondSegment`, which holds
//! `actions` and `presets` in the entry's shapes, each preset with its `enabled` flag.

use anyhow::{Context, Result};
use serde_json::{Map, Value, json};

use super::docs::BATCH_SWITCH_FIELD;
use super::model::{
    Action, Condition, Conditions, Destination, Field, Preset, Required, Setting, SettingType,
};

/// Keys the generator owns; catalog metadata may not set them.
pub const RESERVED_KEYS: &[&str] = &[
    "id",
    "display_name",
    "name",
    "slug",
    "settings",
    "actions",
    "presets",
];

/// The catalog file's path relative to the repository root.
pub fn catalog_path(dest: &Destination) -> String {
    format!("catalog/{}.yml", dest.slug)
}

/// The path of the file listing the beyond-Segment actions and presets, relative to the
/// repository root.
pub fn beyond_segment_path(dest: &Destination) -> String {
    format!("catalog/{}.beyond-segment.yml", dest.slug)
}

/// The catalog entry of `dest` as JSON: Segment's part only (no beyond-Segment action or preset).
pub fn catalog_entry(dest: &Destination) -> Value {
    let mut entry = Map::new();
    entry.insert("id".into(), json!(dest.id));
    entry.insert("display_name".into(), json!(dest.display_name));
    entry.insert("name".into(), json!(dest.display_name));
    entry.insert("slug".into(), json!(dest.slug));
    for (key, value) in dest.catalog.iter().flatten() {
        if !RESERVED_KEYS.contains(&key.as_str()) {
            entry.insert(key.clone(), value.clone());
        }
    }
    entry.insert(
        "settings".into(),
        Value::Array(dest.settings.iter().map(setting).collect()),
    );
    entry.insert(
        "actions".into(),
        Value::Array(
            dest.actions
                .iter()
                .filter(|action| !action.beyond_segment)
                .map(action)
                .collect(),
        ),
    );
    let presets = dest
        .presets
        .iter()
        .filter(|preset| !is_beyond_segment(dest, preset))
        .map(|preset| preset_json(dest, preset))
        .collect();
    entry.insert("presets".into(), Value::Array(presets));
    Value::Object(entry)
}

/// The beyond-Segment actions and presets of `dest` (see the module docs), or `None` when it
/// has none.
pub fn beyond_segment_entry(dest: &Destination) -> Option<Value> {
    let actions: Vec<Value> = dest
        .actions
        .iter()
        .filter(|action| action.beyond_segment)
        .map(action)
        .collect();
    let presets: Vec<Value> = dest
        .presets
        .iter()
        .filter(|preset| is_beyond_segment(dest, preset))
        .map(|preset| {
            let mut out = preset_json(dest, preset);
            if let Value::Object(map) = &mut out {
                map.insert("enabled".into(), json!(preset.enabled));
            }
            out
        })
        .collect();
    if actions.is_empty() && presets.is_empty() {
        return None;
    }
    Some(json!({
        "destination": {"id": dest.id, "slug": dest.slug},
        "beyondSegment": {"actions": actions, "presets": presets},
    }))
}

/// Whether `preset` is actionkit's rather than Segment's: it runs a beyond-Segment action, or it
/// is off unless a configuration turns it on (every preset of Segment's is on).
pub fn is_beyond_segment(dest: &Destination, preset: &Preset) -> bool {
    !preset.enabled
        || dest
            .actions
            .iter()
            .any(|action| action.key == preset.action_key && action.beyond_segment)
}

fn preset_json(dest: &Destination, preset: &Preset) -> Value {
    let action_id = dest
        .actions
        .iter()
        .find(|action| action.key == preset.action_key)
        .map(|action| action.id.clone())
        .unwrap_or_default();
    json!({
        "actionId": action_id,
        "name": preset.name,
        "fields": preset.mapping,
        "trigger": preset.trigger,
    })
}

fn setting(setting: &Setting) -> Value {
    let kind = match setting.catalog_kind {
        SettingType::String => "string",
        SettingType::Password => "password",
        SettingType::Number => "number",
        SettingType::Boolean => "boolean",
    };
    let mut out = Map::new();
    out.insert("name".into(), json!(setting.key));
    out.insert("type".into(), json!(kind));
    if let Some(default) = &setting.default {
        out.insert("defaultValue".into(), default.clone());
    }
    out.insert("description".into(), json!(setting.description));
    out.insert("required".into(), json!(setting.required));
    out.insert("label".into(), json!(setting.label));
    Value::Object(out)
}

fn action(action: &Action) -> Value {
    let batch_switch = action.batch.is_some() && action.request.is_some();
    let fields: Vec<Value> = action
        .fields
        .iter()
        .enumerate()
        .filter(|(_, field)| !field.hidden)
        .map(|(idx, field)| {
            let platform_added = batch_switch && field.key == BATCH_SWITCH_FIELD;
            catalog_field(field, idx, platform_added)
        })
        .collect();
    json!({
        "id": action.id,
        "name": action.name,
        "slug": action.key,
        "description": action.description,
        "platform": action.platform.to_uppercase(),
        "hidden": action.hidden,
        "defaultTrigger": action.default_trigger,
        "fields": fields,
    })
}

/// A field in the catalog's shape; `platform_added` for the batch switch, which Segment's
/// platform adds without a placeholder or a hidden flag.
fn catalog_field(field: &Field, sort_order: usize, platform_added: bool) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(field.id));
    out.insert("sortOrder".into(), json!(sort_order));
    out.insert("fieldKey".into(), json!(field.key));
    out.insert("label".into(), json!(field.label));
    out.insert("type".into(), json!(field.kind.catalog_name()));
    out.insert("description".into(), json!(field.description));
    if !platform_added {
        out.insert(
            "placeholder".into(),
            json!(field.placeholder.clone().unwrap_or_default()),
        );
    }
    if let Some(default) = &field.default {
        out.insert("defaultValue".into(), default.clone());
    }
    out.insert("required".into(), required(&field.required));
    out.insert("multiple".into(), json!(field.multiple));
    let choices = field.choices.as_ref().map(|choices| {
        choices
            .iter()
            .map(|choice| json!({"label": choice.label, "value": choice.value}))
            .collect::<Vec<_>>()
    });
    out.insert("choices".into(), json!(choices));
    out.insert("dynamic".into(), json!(field.dynamic));
    out.insert("allowNull".into(), json!(field.allow_null));
    if !platform_added {
        out.insert("hidden".into(), json!(field.hidden));
    }
    Value::Object(out)
}

fn required(required: &Required) -> Value {
    match required {
        Required::No => json!(false),
        Required::Yes => json!(true),
        Required::When(conditions) => conditions_json(conditions),
    }
}

/// Conditions in Segment's shape: `{match, conditions: [{fieldKey, operator, value}]}`.
pub fn conditions_json(conditions: &Conditions) -> Value {
    let list: Vec<Value> = conditions
        .conditions
        .iter()
        .map(
            |Condition {
                 field_key,
                 is,
                 value,
             }| {
                let mut out = Map::new();
                out.insert("fieldKey".into(), json!(field_key));
                out.insert("operator".into(), json!(if *is { "is" } else { "is_not" }));
                if let Some(value) = value {
                    out.insert("value".into(), value.clone());
                }
                Value::Object(out)
            },
        )
        .collect();
    json!({"match": if conditions.match_any { "any" } else { "all" }, "conditions": list})
}

/// Renders a catalog entry as the YAML file's text: the header line, then a one-entry list.
pub fn render_yaml(entry: &Value) -> Result<String> {
    render_document(&Value::Array(vec![entry.clone()]), "", "the catalog entry")
}

/// Renders the beyond-Segment listing (from [`beyond_segment_entry`]) as its file's text: the
/// header line, a comment saying what the file is, then the mapping.
pub fn render_beyond_segment_yaml(dest: &Destination, listing: &Value) -> Result<String> {
    let has_actions = listing["beyondSegment"]["actions"]
        .as_array()
        .is_some_and(|actions| !actions.is_empty());
    let what = if has_actions {
        format!(
            "the actions of {slug} that Segment's catalog entry\n\
             # ({entry}) leaves out, and their presets, which are off by default.",
            slug = dest.slug,
            entry = catalog_path(dest),
        )
    } else {
        format!(
            "the presets of {slug} that Segment's catalog entry\n\
             # ({entry}) lacks, which are off by default.",
            slug = dest.slug,
            entry = catalog_path(dest),
        )
    };
    let note = format!(
        "# Beyond Segment: {what}\n\
         # Both lists have the entry's shapes; each preset also says whether it is enabled.\n"
    );
    render_document(listing, &note, "the beyond-Segment listing")
}

/// Renders `value` as YAML after the header line and `note` (whole comment lines, or empty).
fn render_document(value: &Value, note: &str, what: &str) -> Result<String> {
    let mut body = String::new();
    yaml_rust2::YamlEmitter::new(&mut body)
        .dump(&to_yaml(value))
        .with_context(|| format!("cannot render {what} as YAML"))?;
    let body = body.strip_prefix("---\n").unwrap_or(&body);
    Ok(format!("{}\n{note}{body}\n", crate::fs::YAML_HEADER))
}

fn to_yaml(value: &Value) -> yaml_rust2::Yaml {
    use yaml_rust2::Yaml;
    match value {
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Integer(i),
            None => Yaml::Real(n.to_string()),
        },
        Value::String(s) => Yaml::String(s.clone()),
        Value::Array(items) => Yaml::Array(items.iter().map(to_yaml).collect()),
        Value::Object(map) => {
            let mut hash = yaml_rust2::yaml::Hash::new();
            for (key, value) in map {
                hash.insert(Yaml::String(key.clone()), to_yaml(value));
            }
            Yaml::Hash(hash)
        }
    }
}

/// Parses YAML text into JSON (used by tests to read catalog files back).
pub fn yaml_to_json(text: &str) -> Result<Vec<Value>> {
    let docs = yaml_rust2::YamlLoader::load_from_str(text).context("invalid YAML")?;
    docs.iter().map(from_yaml).collect()
}

fn from_yaml(yaml: &yaml_rust2::Yaml) -> Result<Value> {
    use yaml_rust2::Yaml;
    Ok(match yaml {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => json!(i),
        Yaml::Real(text) => {
            let n: f64 = text
                .parse()
                .with_context(|| format!("invalid number {text}"))?;
            json!(n)
        }
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(items) => Value::Array(items.iter().map(from_yaml).collect::<Result<_>>()?),
        Yaml::Hash(hash) => {
            let mut map = Map::new();
            for (key, value) in hash {
                let key = match key {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    other => anyhow::bail!("unsupported YAML key {other:?}"),
                };
                map.insert(key, from_yaml(value)?);
            }
            Value::Object(map)
        }
        Yaml::Alias(_) | Yaml::BadValue => anyhow::bail!("unsupported YAML node"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_round_trips_awkward_values() {
        let entry = json!({
            "id": "x",
            "defaultValue": {"@if": {"exists": {"@path": "$.userId"}, "then": "yes: no", "else": ""}},
            "n": 1.5,
            "i": 3,
            "t": "true",
            "null": null,
            "list": [],
            "multi": "line one\nline two",
            "hash": "# not a comment",
        });
        let text = render_yaml(&entry).unwrap();
        assert!(text.starts_with("# @generated by `cargo codegen`. Do not edit by hand.\n"));
        let back = yaml_to_json(&text).unwrap();
        assert_eq!(back, vec![json!([entry])]);
    }
}
