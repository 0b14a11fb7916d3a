//! JSON views of the generated destinations and of the configured instances, for
//! `GET /console/api/destinations` and `GET /console/api/instances`.
//!
//! The destinations come from the model generated code embeds (`runtime::destination`), made
//! from the same YAML as the destination's docs page. Instances show their settings with every
//! secret setting (declared `secret`, or of type `password`) replaced by [`MASK`].

use actionkit_runtime::destination::{ActionDef, CompiledDestination, Registry};
use actionkit_runtime::fields::{
    ConditionMatch, ConditionOperator, FieldDef, Required, SettingDef,
};
use serde_json::{Map, Value, json};

use crate::ConsoleInstance;

/// What a secret setting's value is shown as (the word `send --dry-run` uses).
pub const MASK: &str = "[redacted]";

/// Every destination with its settings, actions, fields and presets.
pub fn destinations(registry: &Registry) -> Value {
    let list: Vec<Value> = registry.iter().map(|dest| destination(dest)).collect();
    json!({ "destinations": list })
}

fn destination(dest: &CompiledDestination) -> Value {
    let def = dest.def;
    let presets: Vec<Value> = dest
        .presets
        .iter()
        .map(|preset| {
            json!({
                "name": preset.def.name,
                "action": preset.def.action_key,
                "trigger": preset.def.trigger,
                "mapping": preset.mapping_json,
                "enabled": preset.def.enabled,
            })
        })
        .collect();
    json!({
        "slug": def.slug,
        "name": def.name,
        "id": def.id,
        "settings": def.settings.iter().map(setting).collect::<Vec<_>>(),
        "actions": dest.actions.iter().map(|a| action(a.def, &a.default_mapping_json)).collect::<Vec<_>>(),
        "presets": presets,
    })
}

fn setting(def: &SettingDef) -> Value {
    json!({
        "key": def.key,
        "label": def.label,
        "description": def.description,
        "type": def.setting_type.as_str(),
        "required": def.required,
        "secret": def.is_secret(),
        "format": def.format.map(|f| f.name()),
        "default": def.default.and_then(|text| serde_json::from_str::<Value>(text).ok()),
    })
}

fn action(def: &ActionDef, defaults: &Value) -> Value {
    json!({
        "key": def.key,
        "name": def.name,
        "description": def.description,
        "default_trigger": def.default_trigger,
        "beyond_segment": def.beyond_segment,
        "batch": def.batch.is_some(),
        "single": def.request.is_some(),
        "fields": def.fields.iter().map(field).collect::<Vec<_>>(),
        "default_mapping": defaults,
    })
}

fn field(def: &FieldDef) -> Value {
    let required = match def.required {
        Required::No => json!(false),
        Required::Always => json!(true),
        Required::When(conditions) => {
            let parts: Vec<String> = conditions
                .conditions
                .iter()
                .map(|c| {
                    let op = match c.operator {
                        ConditionOperator::Is => "is",
                        ConditionOperator::IsNot => "is not",
                    };
                    let value = c
                        .value
                        .map_or_else(|| "undefined".to_owned(), |v| v.to_value().to_string());
                    format!("{} {op} {value}", c.field_key)
                })
                .collect();
            let joiner = match conditions.mode {
                ConditionMatch::All => " and ",
                ConditionMatch::Any => " or ",
            };
            json!({ "when": parts.join(joiner) })
        }
    };
    let mut out = json!({
        "key": def.key,
        "label": def.label,
        "description": def.description,
        "type": def.field_type.as_str(),
        "required": required,
        "multiple": def.multiple,
        "allow_null": def.allow_null,
        "default": def.default.and_then(|text| serde_json::from_str::<Value>(text).ok()),
    });
    let Value::Object(map) = &mut out else {
        return out;
    };
    if let Some(choices) = def.choices {
        let list: Vec<Value> = choices
            .iter()
            .map(|c| json!({"value": c.value.to_value(), "label": c.label}))
            .collect();
        map.insert("choices".to_owned(), Value::Array(list));
    }
    if let Some(properties) = def.properties {
        map.insert(
            "properties".to_owned(),
            Value::Array(properties.iter().map(field).collect()),
        );
        map.insert(
            "additional_properties".to_owned(),
            Value::Bool(def.additional_properties),
        );
    }
    if let Some(format) = def.format {
        map.insert("format".to_owned(), json!(format.name()));
    }
    for (key, bound) in [("minimum", def.minimum), ("maximum", def.maximum)] {
        if let Some(bound) = bound {
            map.insert(key.to_owned(), json!(bound));
        }
    }
    out
}

/// Every configured instance with its settings (secrets masked) and mappings.
pub fn instances(instances: &[ConsoleInstance]) -> Value {
    let list: Vec<Value> = instances.iter().map(instance).collect();
    json!({ "instances": list })
}

fn instance(entry: &ConsoleInstance) -> Value {
    let dest = entry.instance.destination();
    let mappings: Vec<Value> = entry
        .instance
        .mappings()
        .map(|m| {
            json!({
                "name": m.name,
                "action": m.action_key,
                "trigger": m.trigger.to_string(),
                "mapping": m.mapping,
                "enabled": m.enabled,
            })
        })
        .collect();
    json!({
        "name": entry.name,
        "destination": dest.def.slug,
        "destination_name": dest.def.name,
        "settings": masked_settings(dest.def.settings, entry.instance.settings()),
        "mappings": mappings,
    })
}

/// The settings with every secret one's value replaced by [`MASK`]; keys the destination does
/// not declare are shown masked too, as nothing says they are harmless.
pub fn masked_settings(defs: &[SettingDef], settings: &Value) -> Value {
    let mut out = Map::new();
    if let Value::Object(map) = settings {
        for (key, value) in map {
            let public = defs.iter().any(|def| def.key == key && !def.is_secret());
            let shown = if public {
                value.clone()
            } else {
                Value::String(MASK.to_owned())
            };
            out.insert(key.clone(), shown);
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actionkit_runtime::fields::SettingType;

    #[test]
    fn secret_and_undeclared_settings_are_masked() {
        static DEFS: [SettingDef; 3] = [
            SettingDef {
                key: "apiKey",
                setting_type: SettingType::Password,
                ..SettingDef::BASE
            },
            SettingDef {
                key: "token",
                secret: true,
                ..SettingDef::BASE
            },
            SettingDef {
                key: "endpoint",
                ..SettingDef::BASE
            },
        ];
        let shown = masked_settings(
            &DEFS,
            &json!({"apiKey": "k-1", "token": "t-1", "endpoint": "https://e/", "other": "o"}),
        );
        assert_eq!(
            shown,
            json!({"apiKey": MASK, "token": MASK, "endpoint": "https://e/", "other": MASK})
        );
    }
}
