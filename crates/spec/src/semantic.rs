//! Semantic checks: what the JSON Schema cannot say.
//!
//! Per file: mappings compile as mapping-kit, triggers parse as FQL, field properties agree with
//! the field type, conditions name existing fields, hook names and action keys are identifiers,
//! request mappings only read data that exists. Across files: presets and the action order name
//! existing actions and fields, presets of beyond-Segment actions are off (`enabled: false`),
//! `$.settings` paths and `rate_limit`s name declared keys, ids and action keys are unique.

use std::collections::HashMap;

use indexmap::IndexMap;
use serde_json::Value;

use crate::diagnostics::{Diagnostic, Pos, did_you_mean, one_of, pointer_join};
use crate::model::{
    ActionSpec, BATCH_SWITCH_FIELD, BatchSpec, Choice, ChoiceValue, ConditionSet, DestinationSpec,
    FieldSpec, FieldType, HttpMethod, MergesByIdSpec, MethodSpec, PresetMapping, RequestSpec,
    SettingType, SignSpec,
};
use crate::schema_check::describe;
use crate::yaml::SourceMap;

/// The payload keys an `on_delete` request can read.
const DELETE_PAYLOAD_KEYS: &[&str] = &["userId", "anonymousId"];

/// The payload keys a `deletions` request can read.
const DELETIONS_PAYLOAD_KEYS: &[&str] = &["ids"];

/// A file being checked: its name and positions.
#[derive(Clone, Copy)]
pub(crate) struct FileCtx<'a> {
    pub file: &'a str,
    pub map: &'a SourceMap,
}

impl FileCtx<'_> {
    fn at_value(&self, pointer: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(
            self.file,
            self.map.value_or_ancestor(pointer),
            pointer,
            message,
        )
    }

    fn at_key(&self, pointer: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(self.file, self.map.key_or_value(pointer), pointer, message)
    }

    fn location(&self, pointer: &str) -> String {
        let pos = self.map.value_or_ancestor(pointer);
        format!("{}:{}:{}", self.file, pos.line, pos.column)
    }
}

/// Which data a mapping may read.
struct Scope<'a> {
    /// What the mapping is, for messages ("request json", "request_defaults").
    what: &'a str,
    /// Allowed payload keys; `None` means the payload is not available.
    payload: Option<Vec<&'a str>>,
    /// Whether `$.settings` is available (its keys are checked across files).
    settings: bool,
    /// Whether `$.computed` (a hook's result) is available.
    computed: bool,
    /// Whether `$.items` (a batch's entries) is available.
    items: bool,
}

impl<'a> Scope<'a> {
    /// The same scope, with `what` naming another part of the request in messages.
    fn renamed(&self, what: &'a str) -> Scope<'a> {
        Scope {
            what,
            payload: self.payload.clone(),
            ..*self
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Destination file.

/// Checks `destination.yaml` on its own.
pub(crate) fn check_destination(
    ctx: FileCtx<'_>,
    spec: &DestinationSpec,
    out: &mut Vec<Diagnostic>,
) {
    if !is_slug(&spec.slug) {
        out.push(
            ctx.at_value("/slug", format!("invalid slug '{}'", spec.slug))
                .expected(
                    "lower-case letters, digits and dashes, for example actions-userpilot-cloud",
                ),
        );
    }
    for (key, setting) in &spec.settings {
        let base = pointer_join("/settings", key);
        if !is_setting_key(key) {
            out.push(
                ctx.at_key(&base, format!("invalid setting key '{key}'"))
                    .expected("a letter followed by letters, digits or underscores"),
            );
        }
        if setting.description.trim().is_empty() {
            out.push(ctx.at_value(&pointer_join(&base, "description"), "empty description"));
        }
        if let Some(default) = &setting.default {
            let ok = match setting.r#type {
                SettingType::String | SettingType::Password => default.is_string(),
                SettingType::Number => default.is_number(),
                SettingType::Boolean => default.is_boolean(),
            };
            if !ok {
                out.push(
                    ctx.at_value(
                        &pointer_join(&base, "default"),
                        format!(
                            "default does not match the setting type '{}'",
                            setting.r#type.as_str()
                        ),
                    )
                    .expected(setting_type_word(setting.r#type))
                    .found(describe(default)),
                );
            }
        }
        if setting.format.is_some() && setting.r#type != SettingType::String {
            out.push(
                ctx.at_key(
                    &pointer_join(&base, "format"),
                    format!(
                        "'format' does not apply to a {} setting",
                        setting.r#type.as_str()
                    ),
                )
                .expected("a string setting"),
            );
        }
    }
    let settings_scope = Scope {
        what: "request_defaults",
        payload: None,
        settings: true,
        computed: false,
        items: false,
    };
    if let Some(defaults) = &spec.request_defaults {
        if let Some(base_url) = &defaults.base_url {
            let pointer = "/request_defaults/base_url";
            check_mapping(ctx, pointer, base_url, out);
            check_paths(ctx, pointer, base_url, &settings_scope, out);
        }
        for (name, value) in &defaults.headers {
            let pointer = pointer_join("/request_defaults/headers", name);
            check_header_name(ctx, &pointer, name, out);
            check_mapping(ctx, &pointer, value, out);
            check_paths(ctx, &pointer, value, &settings_scope, out);
        }
        if let Some(sign) = &defaults.sign {
            check_sign(ctx, "/request_defaults/sign", sign, out);
        }
    }
    let mut rate_keys: HashMap<&str, &str> = HashMap::new();
    for (idx, limit) in spec.rate_limits.iter().enumerate() {
        let pointer = format!("/rate_limits/{idx}");
        if rate_keys.insert(&limit.key, "").is_some() {
            out.push(ctx.at_value(
                &pointer_join(&pointer, "key"),
                format!("duplicate rate limit key '{}'", limit.key),
            ));
        }
        for (name, n) in [
            ("max_requests", limit.max_requests),
            ("per_seconds", limit.per_seconds),
        ] {
            if n == 0 {
                out.push(
                    ctx.at_value(
                        &pointer_join(&pointer, name),
                        format!("'{name}' must be positive"),
                    )
                    .expected("at least 1")
                    .found("0"),
                );
            }
        }
    }
    let mut preset_names: HashMap<&str, usize> = HashMap::new();
    for (idx, preset) in spec.presets.iter().enumerate() {
        let pointer = format!("/presets/{idx}");
        if let Some(first) = preset_names.insert(&preset.name, idx) {
            out.push(
                ctx.at_value(
                    &pointer_join(&pointer, "name"),
                    format!("duplicate preset name '{}'", preset.name),
                )
                .note(format!("first used by preset {first}")),
            );
        }
        check_trigger(
            ctx,
            &pointer_join(&pointer, "trigger"),
            &preset.trigger,
            out,
        );
        if let PresetMapping::Fields(fields) = &preset.mapping {
            for (key, value) in fields {
                check_mapping(
                    ctx,
                    &pointer_join(&pointer_join(&pointer, "mapping"), key),
                    value,
                    out,
                );
            }
        }
    }
    let rate_limit_keys: Vec<&str> = spec.rate_limits.iter().map(|l| l.key.as_str()).collect();
    if let Some(request) = &spec.test_authentication {
        let scope = Scope {
            what: "test_authentication",
            payload: None,
            settings: true,
            computed: request.hook.is_some(),
            items: false,
        };
        check_request(ctx, "/test_authentication", request, &scope, out);
        check_rate_limit(ctx, "/test_authentication", request, &rate_limit_keys, out);
    }
    if let Some(request) = &spec.on_delete {
        let scope = Scope {
            what: "on_delete",
            payload: Some(DELETE_PAYLOAD_KEYS.to_vec()),
            settings: true,
            computed: request.hook.is_some(),
            items: false,
        };
        check_request(ctx, "/on_delete", request, &scope, out);
        check_rate_limit(ctx, "/on_delete", request, &rate_limit_keys, out);
    }
    for (base, deletion) in deletion_requests(spec) {
        let scope = Scope {
            what: "deletions",
            payload: Some(DELETIONS_PAYLOAD_KEYS.to_vec()),
            settings: true,
            computed: deletion.request.hook.is_some(),
            items: false,
        };
        let pointer = format!("{base}/request");
        check_request(ctx, &pointer, &deletion.request, &scope, out);
        check_rate_limit(ctx, &pointer, &deletion.request, &rate_limit_keys, out);
    }
}

/// The declared bulk deletions with the JSON pointer of each.
fn deletion_requests(spec: &DestinationSpec) -> Vec<(&'static str, &crate::model::DeletionSpec)> {
    [
        ("/deletions/users", spec.deletions.users.as_ref()),
        ("/deletions/companies", spec.deletions.companies.as_ref()),
    ]
    .into_iter()
    .filter_map(|(base, deletion)| deletion.map(|d| (base, d)))
    .collect()
}

fn setting_type_word(ty: SettingType) -> &'static str {
    match ty {
        SettingType::String | SettingType::Password => "a string",
        SettingType::Number => "a number",
        SettingType::Boolean => "a boolean",
    }
}

// ---------------------------------------------------------------------------------------------
// Action file.

/// Checks one action file on its own.
pub(crate) fn check_action(ctx: FileCtx<'_>, spec: &ActionSpec, out: &mut Vec<Diagnostic>) {
    if !is_action_key(&spec.key) {
        out.push(
            ctx.at_value("/key", format!("invalid action key '{}'", spec.key))
                .expected("a camelCase identifier: a letter followed by letters or digits")
                .found(describe(&Value::String(spec.key.clone()))),
        );
    }
    if spec.description.trim().is_empty() {
        out.push(ctx.at_value("/description", "empty description"));
    }
    if let Some(trigger) = &spec.default_trigger {
        check_trigger(ctx, "/default_trigger", trigger, out);
    }
    let mut ids: HashMap<&str, String> = HashMap::new();
    ids.insert(&spec.id, ctx.location("/id"));
    check_fields(ctx, "/fields", &spec.fields, true, &mut ids, out);
    if spec.request.is_none() && spec.batch.is_none() {
        out.push(
            ctx.at_value("", "the action sends no request")
                .expected("'request', 'batch' or both"),
        );
    }
    let field_keys: Vec<&str> = spec.fields.keys().map(String::as_str).collect();
    if let Some(request) = &spec.request {
        let scope = Scope {
            what: "request json",
            payload: Some(field_keys.clone()),
            settings: true,
            computed: request.hook.is_some(),
            items: false,
        };
        check_request(ctx, "/request", request, &scope, out);
    }
    if let Some(batch) = &spec.batch {
        check_batch(ctx, spec, batch, &field_keys, out);
    }
    if let Some(merges) = &spec.merges_by_id {
        check_merges(ctx, spec, merges, out);
    }
}

/// Checks `merges_by_id`: a record name, and an id and merged keys that the request body (and
/// the batch entry) write.
fn check_merges(
    ctx: FileCtx<'_>,
    spec: &ActionSpec,
    merges: &MergesByIdSpec,
    out: &mut Vec<Diagnostic>,
) {
    if !is_hook_name(&merges.record) {
        out.push(
            ctx.at_value(
                "/merges_by_id/record",
                format!("invalid record name '{}'", merges.record),
            )
            .expected("a snake_case name such as user or company"),
        );
    }
    let mut bodies: Vec<(&str, &serde_json::Map<String, Value>)> = Vec::new();
    if let Some(Value::Object(json)) = spec.request.as_ref().and_then(|r| r.json.as_ref()) {
        bodies.push(("/request/json", json));
    }
    if let Some(Value::Object(item)) = spec.batch.as_ref().and_then(|b| b.item.as_ref()) {
        bodies.push(("/batch/item", item));
    }
    let mut keys: Vec<(String, &str)> = vec![(merges.id.clone(), "/merges_by_id/id")];
    for (idx, key) in merges.merged.iter().enumerate() {
        let pointer = format!("/merges_by_id/merged/{idx}");
        if key == &merges.id || merges.merged[..idx].contains(key) {
            out.push(
                ctx.at_value(&pointer, format!("'{key}' is named twice"))
                    .expected("merged keys that differ from each other and from the id"),
            );
        }
        keys.push((key.clone(), "/merges_by_id/merged"));
    }
    for (base, body) in bodies {
        let written: Vec<&str> = body.keys().map(String::as_str).collect();
        for (key, pointer) in &keys {
            if !body.contains_key(key) {
                let pointer = if *pointer == "/merges_by_id/id" {
                    (*pointer).to_owned()
                } else {
                    let idx = merges.merged.iter().position(|k| k == key).unwrap_or(0);
                    format!("{pointer}/{idx}")
                };
                out.push(
                    ctx.at_value(&pointer, format!("'{key}' is not a key of {base}"))
                        .expected(one_of(written.iter().copied()))
                        .maybe_hint(did_you_mean(key, written.iter().copied())),
                );
            }
        }
    }
}

/// Checks an action's `batch` block: the switch between the two forms, the hook, the keys, the
/// item mapping and the batch request.
fn check_batch(
    ctx: FileCtx<'_>,
    spec: &ActionSpec,
    batch: &BatchSpec,
    field_keys: &[&str],
    out: &mut Vec<Diagnostic>,
) {
    if spec.request.is_some() {
        let switch = spec.fields.get(BATCH_SWITCH_FIELD);
        if switch.is_none_or(|field| field.r#type != FieldType::Boolean) {
            out.push(
                ctx.at_key(
                    "/batch",
                    "an action with both 'request' and 'batch' needs a boolean field 'enable_batching'",
                )
                .expected(format!(
                    "a field '{BATCH_SWITCH_FIELD}' of type boolean that chooses the form per event"
                ))
                .hint("remove 'request' to batch every payload"),
            );
        }
    }
    if let Some(hook) = &batch.hook {
        check_hook_name(ctx, "/batch/hook", hook, out);
        if let Some(other) = spec.request.as_ref().and_then(|r| r.hook.as_ref())
            && other != hook
        {
            out.push(
                ctx.at_value(
                    "/batch/hook",
                    format!("the batch hook '{hook}' differs from the request hook '{other}'"),
                )
                .expected(
                    "the same hook for both forms, so that a payload is prepared the same way",
                ),
            );
        }
    }
    if batch.request.hook.is_some() {
        out.push(
            ctx.at_key("/batch/request/hook", "a batch request cannot have a hook")
                .hint("set 'hook' on 'batch': it runs on each payload before 'item'"),
        );
    }
    for (idx, key) in batch.keys.iter().enumerate() {
        if !field_keys.contains(&key.as_str()) {
            out.push(
                ctx.at_value(
                    &format!("/batch/keys/{idx}"),
                    format!("batch key '{key}' is not a field of the action"),
                )
                .expected(one_of(field_keys.iter().copied()))
                .found(format!("'{key}'"))
                .maybe_hint(did_you_mean(key, field_keys.iter().copied())),
            );
        }
    }
    if let Some(item) = &batch.item {
        let scope = Scope {
            what: "batch item",
            payload: Some(field_keys.to_vec()),
            settings: true,
            computed: batch.hook.is_some(),
            items: false,
        };
        check_mapping(ctx, "/batch/item", item, out);
        check_paths(ctx, "/batch/item", item, &scope, out);
    }
    let scope = Scope {
        what: "batch request json",
        payload: None,
        settings: true,
        computed: false,
        items: true,
    };
    check_request(ctx, "/batch/request", &batch.request, &scope, out);
    if let Some(errors) = &batch.item_errors {
        for (key, value) in [("list", &errors.list), ("index", &errors.index)] {
            if value.trim().is_empty() {
                out.push(
                    ctx.at_value(
                        &format!("/batch/item_errors/{key}"),
                        format!("empty item_errors {key}"),
                    )
                    .expected(
                        "the key of the answer's JSON that holds it, such as errors or index",
                    ),
                );
            }
        }
    }
    if batch.request.json.is_none() {
        out.push(
            ctx.at_key(
                "/batch/request",
                "a batch request without 'json' sends no payload",
            )
            .expected("a 'json' body that reads $.items"),
        );
    }
}

fn check_fields<'a>(
    ctx: FileCtx<'_>,
    base: &str,
    fields: &'a IndexMap<String, FieldSpec>,
    top_level: bool,
    ids: &mut HashMap<&'a str, String>,
    out: &mut Vec<Diagnostic>,
) {
    for (key, field) in fields {
        let pointer = pointer_join(base, key);
        check_field(ctx, &pointer, key, field, fields, top_level, ids, out);
    }
}

#[allow(clippy::too_many_arguments)]
fn check_field<'a>(
    ctx: FileCtx<'_>,
    pointer: &str,
    key: &str,
    field: &'a FieldSpec,
    siblings: &IndexMap<String, FieldSpec>,
    top_level: bool,
    ids: &mut HashMap<&'a str, String>,
    out: &mut Vec<Diagnostic>,
) {
    let ty = field.r#type;
    if key.is_empty() || key.contains('.') {
        out.push(
            ctx.at_key(pointer, format!("invalid field key '{key}'"))
                .expected(
                    "a non-empty key without '.' (dots address nested properties in conditions)",
                ),
        );
    }
    if let Some(id) = &field.id {
        let id_pointer = pointer_join(pointer, "id");
        if let Some(first) = ids.get(id.as_str()) {
            out.push(
                ctx.at_value(&id_pointer, format!("duplicate id '{id}'"))
                    .note(format!("first used at {first}")),
            );
        } else {
            ids.insert(id, ctx.location(&id_pointer));
        }
    }
    match &field.description {
        None if top_level => out.push(
            ctx.at_key(pointer, format!("missing description for field '{key}'"))
                .expected("a 'description' key")
                .hint("Segment's validate command requires a description on every field"),
        ),
        Some(text) if text.trim().is_empty() => {
            out.push(ctx.at_value(&pointer_join(pointer, "description"), "empty description"));
        }
        _ => {}
    }
    let misplaced = |out: &mut Vec<Diagnostic>, name: &str, expected: &str| {
        out.push(
            ctx.at_key(
                &pointer_join(pointer, name),
                format!(
                    "'{name}' does not apply to a{} {} field",
                    article_n(ty.as_str()),
                    ty.as_str()
                ),
            )
            .expected(expected.to_owned()),
        );
    };
    if field.minimum.is_some() || field.maximum.is_some() {
        let applies = matches!(
            ty,
            FieldType::Number
                | FieldType::Integer
                | FieldType::String
                | FieldType::Text
                | FieldType::Password
        );
        if !applies {
            for name in ["minimum", "maximum"] {
                let present = if name == "minimum" {
                    &field.minimum
                } else {
                    &field.maximum
                };
                if present.is_some() {
                    misplaced(
                        out,
                        name,
                        "a number, integer, string, text or password field",
                    );
                }
            }
        } else if let (Some(min), Some(max)) = (&field.minimum, &field.maximum)
            && let (Some(min), Some(max)) = (min.as_f64(), max.as_f64())
            && min > max
        {
            out.push(
                ctx.at_value(
                    &pointer_join(pointer, "minimum"),
                    "'minimum' is greater than 'maximum'",
                )
                .expected(format!("at most {max}"))
                .found(min.to_string()),
            );
        }
    }
    if field.format.is_some() && ty != FieldType::String {
        misplaced(
            out,
            "format",
            "a string field (datetime, text and password set their own format)",
        );
    }
    if ty != FieldType::Object {
        if field.properties.is_some() {
            misplaced(out, "properties", "an object field");
        }
        if field.additional_properties.is_some() {
            misplaced(out, "additional_properties", "an object field");
        }
        if field.default_object_ui.is_some() {
            misplaced(out, "default_object_ui", "an object field");
        }
    } else if field.additional_properties == Some(true) && field.properties.is_none() {
        out.push(
            ctx.at_key(
                &pointer_join(pointer, "additional_properties"),
                "'additional_properties' has no effect without 'properties'",
            )
            .hint("an object field without properties already accepts any keys"),
        );
    }
    if let Some(choices) = &field.choices {
        check_choices(ctx, pointer, ty, choices, out);
    }
    if let Some(default) = &field.default {
        let default_pointer = pointer_join(pointer, "default");
        check_mapping(ctx, &default_pointer, default, out);
        check_literal_default(ctx, &default_pointer, field, default, out);
    }
    if let Some(condition) = field.required_condition() {
        check_conditions(
            ctx,
            &pointer_join(pointer, "required"),
            condition,
            siblings,
            out,
        );
    }
    if let Some(condition) = &field.depends_on {
        check_conditions(
            ctx,
            &pointer_join(pointer, "depends_on"),
            condition,
            siblings,
            out,
        );
    }
    if let Some(properties) = &field.properties {
        check_fields(
            ctx,
            &pointer_join(pointer, "properties"),
            properties,
            false,
            ids,
            out,
        );
    }
}

/// A literal (non-directive) scalar default must have the field's type.
fn check_literal_default(
    ctx: FileCtx<'_>,
    pointer: &str,
    field: &FieldSpec,
    default: &Value,
    out: &mut Vec<Diagnostic>,
) {
    if default.is_object() || default.is_array() || default.is_null() {
        return;
    }
    let ty = field.r#type;
    let (ok, expected) = match ty {
        FieldType::String | FieldType::Text | FieldType::Password => {
            (default.is_string(), "a string")
        }
        FieldType::Number => (default.is_number(), "a number"),
        FieldType::Integer => (default.is_i64() || default.is_u64(), "an integer"),
        FieldType::Boolean => (default.is_boolean(), "a boolean"),
        FieldType::Datetime => (
            default.is_string() || default.is_number(),
            "a date string or a number",
        ),
        FieldType::Object => (false, "a mapping or a mapping-kit directive"),
    };
    let ok = ok && field.multiple != Some(true);
    let expected = if field.multiple == Some(true) {
        "a list or a mapping-kit directive"
    } else {
        expected
    };
    if !ok {
        out.push(
            ctx.at_value(
                pointer,
                format!("default does not match the field type '{}'", ty.as_str()),
            )
            .expected(expected)
            .found(describe(default)),
        );
    }
}

fn article_n(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "n"
    } else {
        ""
    }
}

fn check_choices(
    ctx: FileCtx<'_>,
    pointer: &str,
    ty: FieldType,
    choices: &[Choice],
    out: &mut Vec<Diagnostic>,
) {
    if ty == FieldType::Object {
        out.push(
            ctx.at_key(
                &pointer_join(pointer, "choices"),
                "'choices' does not apply to an object field",
            )
            .expected("a string, number, integer or boolean field"),
        );
        return;
    }
    for (idx, choice) in choices.iter().enumerate() {
        let mut choice_pointer = pointer_join(&pointer_join(pointer, "choices"), &idx.to_string());
        if matches!(choice, Choice::Labeled(_)) {
            choice_pointer = pointer_join(&choice_pointer, "value");
        }
        let (ok, expected) = match (ty, choice.value()) {
            (FieldType::Number, ChoiceValue::Number(_)) => (true, "a number"),
            (FieldType::Number, _) => (false, "a number"),
            (FieldType::Integer, ChoiceValue::Number(n)) => {
                (n.is_i64() || n.is_u64(), "an integer")
            }
            (FieldType::Integer, _) => (false, "an integer"),
            (FieldType::Boolean, ChoiceValue::Boolean(_)) => (true, "a boolean"),
            (FieldType::Boolean, _) => (false, "a boolean"),
            (_, ChoiceValue::String(_)) => (true, "a string"),
            (_, _) => (false, "a string"),
        };
        if !ok {
            let found = match choice.value() {
                ChoiceValue::String(text) => describe(&Value::String(text.clone())),
                ChoiceValue::Number(n) => describe(&Value::Number(n.clone())),
                ChoiceValue::Boolean(flag) => describe(&Value::Bool(*flag)),
            };
            out.push(
                ctx.at_value(
                    &choice_pointer,
                    format!("choice does not match the field type '{}'", ty.as_str()),
                )
                .expected(expected)
                .found(found),
            );
        }
    }
}

fn check_conditions(
    ctx: FileCtx<'_>,
    pointer: &str,
    condition: &ConditionSet,
    siblings: &IndexMap<String, FieldSpec>,
    out: &mut Vec<Diagnostic>,
) {
    if condition.conditions.is_empty() {
        out.push(
            ctx.at_value(&pointer_join(pointer, "conditions"), "no conditions")
                .expected("at least one condition"),
        );
    }
    for (idx, cond) in condition.conditions.iter().enumerate() {
        let cond_pointer = pointer_join(&pointer_join(pointer, "conditions"), &idx.to_string());
        let key_pointer = pointer_join(&cond_pointer, "field_key");
        let (head, tail) = match cond.field_key.split_once('.') {
            Some((head, tail)) => (head, Some(tail)),
            None => (cond.field_key.as_str(), None),
        };
        let Some(target) = siblings.get(head) else {
            out.push(
                ctx.at_value(
                    &key_pointer,
                    format!("condition names an unknown field '{head}'"),
                )
                .expected(one_of(siblings.keys().map(String::as_str)))
                .found(format!("'{}'", cond.field_key))
                .maybe_hint(did_you_mean(head, siblings.keys().map(String::as_str))),
            );
            continue;
        };
        if let (Some(tail), Some(properties)) = (tail, &target.properties)
            && !properties.contains_key(tail)
        {
            out.push(
                ctx.at_value(
                    &key_pointer,
                    format!("condition names an unknown property '{tail}' of field '{head}'"),
                )
                .expected(one_of(properties.keys().map(String::as_str)))
                .maybe_hint(did_you_mean(tail, properties.keys().map(String::as_str))),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Requests, mappings and triggers.

fn check_request(
    ctx: FileCtx<'_>,
    base: &str,
    request: &RequestSpec,
    scope: &Scope<'_>,
    out: &mut Vec<Diagnostic>,
) {
    match (&request.path, &request.url) {
        (Some(_), Some(_)) => out.push(
            ctx.at_key(
                &pointer_join(base, "url"),
                "a request has both 'path' and 'url'",
            )
            .expected("either 'path' (joined onto request_defaults.base_url) or 'url' (absolute)")
            .hint("remove one of them"),
        ),
        (None, None) => out.push(
            ctx.at_value(base, "a request has neither 'path' nor 'url'")
                .expected("'path' (joined onto request_defaults.base_url) or 'url' (absolute)"),
        ),
        _ => {}
    }
    if let Some(path) = &request.path {
        let pointer = pointer_join(base, "path");
        if path.trim().is_empty() || path.chars().any(char::is_whitespace) {
            out.push(
                ctx.at_value(&pointer, format!("invalid request path '{path}'"))
                    .expected("a non-empty path without spaces, for example v1/identify"),
            );
        } else if let Some(scheme) = url_scheme(path) {
            out.push(
                ctx.at_value(
                    &pointer,
                    format!("request path '{path}' is an absolute url"),
                )
                .expected("a path joined onto request_defaults.base_url, for example v1/identify")
                .found(format!("a url with the scheme '{scheme}'"))
                .hint(format!("write 'url: {path}' for an absolute url")),
            );
        }
    }
    if let Some(url) = &request.url {
        let pointer = pointer_join(base, "url");
        check_mapping(ctx, &pointer, url, out);
        check_paths(ctx, &pointer, url, &scope.renamed("request url"), out);
        if let Value::String(text) = url
            && let Err(reason) = check_absolute_url(text)
        {
            out.push(
                ctx.at_value(&pointer, format!("invalid request url '{text}'"))
                    .expected("an absolute http or https url, for example https://api.example.com/v1/track")
                    .found(reason),
            );
        }
    }
    if let MethodSpec::Mapped(map) = &request.method {
        let pointer = pointer_join(base, "method");
        let mapping = Value::Object(map.clone());
        check_mapping(ctx, &pointer, &mapping, out);
        check_paths(
            ctx,
            &pointer,
            &mapping,
            &scope.renamed("request method"),
            out,
        );
    }
    for (name, value) in &request.headers {
        let pointer = pointer_join(&pointer_join(base, "headers"), name);
        check_header_name(ctx, &pointer, name, out);
        check_mapping(ctx, &pointer, value, out);
        check_paths(ctx, &pointer, value, &scope.renamed("request header"), out);
    }
    if let Some(value) = &request.headers_from {
        let pointer = pointer_join(base, "headers_from");
        check_mapping(ctx, &pointer, value, out);
        check_paths(ctx, &pointer, value, &scope.renamed("request headers"), out);
    }
    if let Some(sign) = &request.sign {
        check_sign(ctx, &pointer_join(base, "sign"), sign, out);
    }
    if let Some(hook) = &request.hook {
        check_hook_name(ctx, &pointer_join(base, "hook"), hook, out);
    }
    for (idx, status) in request.busy_statuses.iter().enumerate() {
        if !(400..=599).contains(status) {
            out.push(
                ctx.at_value(
                    &format!("{}/{idx}", pointer_join(base, "busy_statuses")),
                    format!("busy status {status} is not an error status"),
                )
                .expected("an HTTP status from 400 to 599, such as 409"),
            );
        }
    }
    if let Some(key) = &request.response_id
        && key.trim().is_empty()
    {
        out.push(
            ctx.at_value(&pointer_join(base, "response_id"), "empty response_id")
                .expected("the key of the answer's JSON object to log, such as job_id"),
        );
    }
    if let Some(json) = &request.json {
        let pointer = pointer_join(base, "json");
        if let Some(method @ (HttpMethod::Get | HttpMethod::Head)) = request.method.fixed() {
            out.push(
                ctx.at_key(
                    &pointer,
                    format!("a {} request cannot have a json body", method.as_str()),
                )
                .hint("remove 'json' or use another method"),
            );
        }
        check_mapping(ctx, &pointer, json, out);
        check_paths(ctx, &pointer, json, scope, out);
    }
}

/// Checks a signature: its secret reads only settings, its header name is lower case and its
/// prefix can be part of a header value.
fn check_sign(ctx: FileCtx<'_>, base: &str, sign: &SignSpec, out: &mut Vec<Diagnostic>) {
    let pointer = pointer_join(base, "secret");
    check_mapping(ctx, &pointer, &sign.secret, out);
    let scope = Scope {
        what: "sign.secret",
        payload: None,
        settings: true,
        computed: false,
        items: false,
    };
    check_paths(ctx, &pointer, &sign.secret, &scope, out);
    let pointer = pointer_join(base, "header");
    if !is_header_name(&sign.header) {
        let lower = sign.header.to_ascii_lowercase();
        let mut diagnostic = ctx
            .at_value(&pointer, format!("invalid header name '{}'", sign.header))
            .expected("a lower-case http header name");
        if is_header_name(&lower) {
            diagnostic = diagnostic.hint(format!("write it as '{lower}'"));
        }
        out.push(diagnostic);
    }
    if sign.prefix.chars().any(|c| c.is_control() || !c.is_ascii()) {
        out.push(
            ctx.at_value(&pointer_join(base, "prefix"), "invalid signature prefix")
                .expected("printable ascii text, such as sha256=")
                .found(describe(&Value::String(sign.prefix.clone()))),
        );
    }
}

/// Checks that a header name is a lower-case HTTP token; the pointer is that of the header
/// (a key) or of a `header` value.
fn check_header_name(ctx: FileCtx<'_>, pointer: &str, name: &str, out: &mut Vec<Diagnostic>) {
    if is_header_name(name) {
        return;
    }
    let lower = name.to_ascii_lowercase();
    let mut diagnostic = ctx
        .at_key(pointer, format!("invalid header name '{name}'"))
        .expected("a lower-case http header name");
    if is_header_name(&lower) {
        diagnostic = diagnostic.hint(format!("write it as '{lower}'"));
    }
    out.push(diagnostic);
}

/// The scheme of `text` when it looks like an absolute URL (`scheme://…`).
fn url_scheme(text: &str) -> Option<&str> {
    let (scheme, _) = text.split_once("://")?;
    let valid = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(scheme)
}

/// Whether `text` is an absolute http(s) URL with a host and without spaces; the error says
/// what is wrong.
fn check_absolute_url(text: &str) -> Result<(), String> {
    let Some(scheme) = url_scheme(text) else {
        return Err(format!("'{text}', which has no scheme such as https://"));
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(format!("the scheme '{scheme}'"));
    }
    let rest = &text[scheme.len() + 3..];
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() {
        return Err("no host".to_owned());
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a space or control character".to_owned());
    }
    Ok(())
}

/// Checks that every hook an action names (on its request or its batch form) is a function of
/// the destination's hook module, so that `validate` refuses what would only fail when the
/// generated code is compiled.
pub(crate) fn check_hooks_defined(
    actions: &[(FileCtx<'_>, &ActionSpec)],
    hooks: &crate::load::HookFunctions,
    out: &mut Vec<Diagnostic>,
) {
    for (ctx, spec) in actions {
        let named = [
            (
                "/request/hook",
                spec.request.as_ref().and_then(|r| r.hook.as_ref()),
            ),
            (
                "/batch/hook",
                spec.batch.as_ref().and_then(|b| b.hook.as_ref()),
            ),
        ];
        for (pointer, hook) in named {
            let Some(hook) = hook else { continue };
            // A malformed name has its own diagnostic.
            if !is_hook_name(hook) || hooks.defined.contains(hook) {
                continue;
            }
            let mut diagnostic = ctx
                .at_value(
                    pointer,
                    format!("hook '{hook}' is not a function of {}", hooks.file),
                )
                .expected(format!(
                    "a `pub fn {hook}(payload, settings)` in {}",
                    hooks.file
                ));
            if let Some(problem) = &hooks.problem {
                diagnostic = diagnostic.note(problem.clone());
            } else if !hooks.defined.is_empty() {
                let names: Vec<&str> = hooks.defined.iter().map(String::as_str).collect();
                diagnostic = diagnostic.note(format!("it defines {}", names.join(", ")));
            }
            out.push(diagnostic.hint(
                "write the function (crates/destinations/src/hooks/userpilot.rs shows the shape), or remove 'hook'",
            ));
        }
    }
}

/// Checks that a hook name is a snake_case Rust identifier.
fn check_hook_name(ctx: FileCtx<'_>, pointer: &str, hook: &str, out: &mut Vec<Diagnostic>) {
    if is_hook_name(hook) {
        return;
    }
    let suggestion = to_snake_case(hook);
    let mut diagnostic = ctx
        .at_value(pointer, format!("invalid hook name '{hook}'"))
        .expected("a snake_case rust identifier (lower-case letters, digits, underscores)")
        .found(describe(&Value::String(hook.to_owned())));
    if is_hook_name(&suggestion) {
        diagnostic = diagnostic.hint(format!("did you mean '{suggestion}'?"));
    }
    out.push(diagnostic);
}

fn check_rate_limit(
    ctx: FileCtx<'_>,
    base: &str,
    request: &RequestSpec,
    keys: &[&str],
    out: &mut Vec<Diagnostic>,
) {
    let Some(key) = &request.rate_limit else {
        return;
    };
    if !keys.contains(&key.as_str()) {
        let pointer = pointer_join(base, "rate_limit");
        let mut diagnostic = ctx
            .at_value(&pointer, format!("unknown rate limit '{key}'"))
            .found(format!("'{key}'"))
            .maybe_hint(did_you_mean(key, keys.iter().copied()));
        diagnostic = if keys.is_empty() {
            diagnostic
                .expected("a key declared in the destination's rate_limits (none are declared)")
        } else {
            diagnostic.expected(one_of(keys.iter().copied()))
        };
        out.push(diagnostic);
    }
}

/// Compiles a mapping with mapping-kit and reports each of its messages at the closest position.
fn check_mapping(ctx: FileCtx<'_>, pointer: &str, mapping: &Value, out: &mut Vec<Diagnostic>) {
    let Err(errors) = actionkit_mapping::Mapping::compile(mapping) else {
        return;
    };
    for message in errors.messages {
        // Mapping-kit messages start with the path inside the mapping, for example `/@if/then …`.
        let inner = message
            .split_once(' ')
            .map(|(path, _)| path)
            .filter(|path| path.starts_with('/'))
            .unwrap_or("");
        let target = if inner.len() > 1 {
            format!("{pointer}{inner}")
        } else {
            pointer.to_owned()
        };
        let located = if ctx.map.value(&target).is_some() {
            target
        } else {
            pointer.to_owned()
        };
        let mut diagnostic = ctx
            .at_value(&located, "invalid mapping")
            .expected("a valid mapping-kit value")
            .found(message.clone());
        if let Some(name) = message.split("invalid directive: ").nth(1) {
            let name = name.trim_end_matches('.');
            diagnostic = diagnostic.maybe_hint(did_you_mean(
                name,
                actionkit_mapping::DIRECTIVES.iter().copied(),
            ));
        }
        out.push(diagnostic);
    }
}

/// Parses a trigger as FQL and maps the error column into the YAML position.
fn check_trigger(ctx: FileCtx<'_>, pointer: &str, trigger: &str, out: &mut Vec<Diagnostic>) {
    let Err(err) = actionkit_fql::parse(trigger) else {
        return;
    };
    let pos = ctx.map.value_or_ancestor(pointer);
    let n_chars = trigger.chars().count();
    // A plain scalar spans exactly its text, a quoted one two more characters.
    let offset = if pos.span == n_chars {
        Some(0)
    } else if pos.span == n_chars + 2 {
        Some(1)
    } else {
        None
    };
    let column = match offset {
        Some(offset) => pos.column + offset + err.column.saturating_sub(1),
        None => pos.column,
    };
    let at = Pos {
        line: pos.line,
        column,
        span: 1,
    };
    out.push(
        Diagnostic::new(
            ctx.file,
            at,
            pointer,
            format!("invalid trigger: {}", err.message),
        )
        .found(format!(
            "'{trigger}' (column {} of the trigger)",
            err.column
        )),
    );
}

/// Collects every data path a mapping reads (paths that name the whole context are left out:
/// there is no root to check).
pub(crate) fn collect_paths(
    value: &Value,
    pointer: &str,
    out: &mut Vec<actionkit_mapping::DataPath>,
) {
    out.extend(
        actionkit_mapping::reads(value, pointer)
            .paths
            .into_iter()
            .filter(|path| !path.root.is_empty()),
    );
}

/// Checks the roots and payload keys of every path a mapping reads (settings keys are checked
/// across files, where the destination's settings are known).
fn check_paths(
    ctx: FileCtx<'_>,
    pointer: &str,
    mapping: &Value,
    scope: &Scope<'_>,
    out: &mut Vec<Diagnostic>,
) {
    let mut uses = Vec::new();
    collect_paths(mapping, pointer, &mut uses);
    let mut roots: Vec<&str> = Vec::new();
    if scope.payload.is_some() {
        roots.push("payload");
    }
    if scope.settings {
        roots.push("settings");
    }
    if scope.computed {
        roots.push("computed");
    }
    if scope.items {
        roots.push("items");
    }
    for path in uses {
        let known_root = roots.contains(&path.root.as_str());
        if !known_root {
            let mut diagnostic = ctx
                .at_value(
                    &path.pointer,
                    format!("{} reads unknown data '{}'", scope.what, path.root),
                )
                .expected(format!(
                    "a path under {}",
                    roots
                        .iter()
                        .map(|r| format!("$.{r}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .found(format!("'{}'", path.root))
                .maybe_hint(did_you_mean(&path.root, roots.iter().copied()));
            if path.root == "computed" {
                diagnostic =
                    diagnostic.hint("$.computed holds a hook's result; set 'hook' on the request");
            }
            out.push(diagnostic);
            continue;
        }
        if path.root == "payload"
            && let (Some(keys), Some(key)) = (&scope.payload, &path.key)
            && !keys.contains(&key.as_str())
        {
            out.push(
                ctx.at_value(
                    &path.pointer,
                    format!("{} uses unknown field '{key}'", scope.what),
                )
                .expected(one_of(keys.iter().copied()))
                .found(format!("'{key}'"))
                .maybe_hint(did_you_mean(key, keys.iter().copied())),
            );
        }
    }
}

/// Checks that every `$.settings.<key>` a mapping reads names a declared setting.
fn check_settings_paths(
    ctx: FileCtx<'_>,
    pointer: &str,
    mapping: &Value,
    settings: &[&str],
    out: &mut Vec<Diagnostic>,
) {
    let mut uses = Vec::new();
    collect_paths(mapping, pointer, &mut uses);
    for path in uses {
        if path.root != "settings" {
            continue;
        }
        if let Some(key) = &path.key
            && !settings.contains(&key.as_str())
        {
            out.push(
                ctx.at_value(&path.pointer, format!("unknown setting '{key}'"))
                    .expected(one_of(settings.iter().copied()))
                    .found(format!("'{key}'"))
                    .maybe_hint(did_you_mean(key, settings.iter().copied())),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Across files.

/// Checks what spans files: presets, action order, settings paths, rate limits, unique ids and keys.
pub(crate) fn check_cross(
    dest: (FileCtx<'_>, &DestinationSpec),
    actions: &[(FileCtx<'_>, &ActionSpec)],
    out: &mut Vec<Diagnostic>,
) {
    let (dctx, dspec) = dest;
    let settings: Vec<&str> = dspec.settings.keys().map(String::as_str).collect();
    let rate_limit_keys: Vec<&str> = dspec.rate_limits.iter().map(|l| l.key.as_str()).collect();
    let mut action_keys: Vec<&str> = Vec::new();
    for (_, spec) in actions {
        if !action_keys.contains(&spec.key.as_str()) {
            action_keys.push(&spec.key);
        }
    }

    if actions.is_empty() {
        out.push(
            dctx.at_value("", "the destination has no actions")
                .expected("at least one action file next to destination.yaml"),
        );
    }

    // Settings read by destination-level mappings.
    if let Some(defaults) = &dspec.request_defaults {
        if let Some(base_url) = &defaults.base_url {
            check_settings_paths(dctx, "/request_defaults/base_url", base_url, &settings, out);
        }
        for (name, value) in &defaults.headers {
            let pointer = pointer_join("/request_defaults/headers", name);
            check_settings_paths(dctx, &pointer, value, &settings, out);
        }
        if let Some(sign) = &defaults.sign {
            let pointer = "/request_defaults/sign/secret";
            check_settings_paths(dctx, pointer, &sign.secret, &settings, out);
        }
    }
    let has_base_url = dspec
        .request_defaults
        .as_ref()
        .is_some_and(|defaults| defaults.base_url.is_some());
    let request_cross = RequestCross {
        dctx,
        settings: &settings,
        has_base_url,
    };
    for (base, request) in [
        ("/test_authentication", &dspec.test_authentication),
        ("/on_delete", &dspec.on_delete),
    ] {
        if let Some(request) = request {
            request_cross.check(dctx, base, request, out);
        }
    }
    for (base, deletion) in deletion_requests(dspec) {
        let pointer = format!("{base}/request");
        request_cross.check(dctx, &pointer, &deletion.request, out);
    }

    // Unique ids and action keys.
    let mut ids: HashMap<String, String> = HashMap::new();
    ids.insert(dspec.id.clone(), dctx.location("/id"));
    let mut keys: HashMap<&str, String> = HashMap::new();
    for (ctx, spec) in actions {
        let mut action_ids = vec![("/id".to_owned(), spec.id.clone())];
        for (key, field) in &spec.fields {
            if let Some(id) = &field.id {
                action_ids.push((
                    pointer_join(&pointer_join("/fields", key), "id"),
                    id.clone(),
                ));
            }
        }
        for (pointer, id) in action_ids {
            match ids.get(&id) {
                // Duplicates inside one file were reported by the per-file check.
                Some(first)
                    if !first.starts_with(&format!("{}:", ctx.file)) || pointer == "/id" =>
                {
                    out.push(
                        ctx.at_value(&pointer, format!("duplicate id '{id}'"))
                            .expected("ids unique across the destination")
                            .note(format!("first used at {first}")),
                    );
                }
                Some(_) => {}
                None => {
                    ids.insert(id, ctx.location(&pointer));
                }
            }
        }
        if let Some(first) = keys.get(spec.key.as_str()) {
            out.push(
                ctx.at_value("/key", format!("duplicate action key '{}'", spec.key))
                    .expected("action keys unique across the destination")
                    .note(format!("first used at {first}")),
            );
        } else {
            keys.insert(&spec.key, ctx.location("/key"));
        }

        // Requests: settings paths and rate limits.
        if let Some(request) = &spec.request {
            request_cross.check(*ctx, "/request", request, out);
            check_rate_limit(*ctx, "/request", request, &rate_limit_keys, out);
        }
        if let Some(batch) = &spec.batch {
            if let Some(item) = &batch.item {
                check_settings_paths(*ctx, "/batch/item", item, &settings, out);
            }
            request_cross.check(*ctx, "/batch/request", &batch.request, out);
            check_rate_limit(
                *ctx,
                "/batch/request",
                &batch.request,
                &rate_limit_keys,
                out,
            );
        }
    }

    // Presets name existing actions and fields.
    for (idx, preset) in dspec.presets.iter().enumerate() {
        let pointer = format!("/presets/{idx}");
        let Some((actx, action)) = actions.iter().find(|(_, spec)| spec.key == preset.action)
        else {
            out.push(
                dctx.at_value(
                    &pointer_join(&pointer, "action"),
                    format!("preset names an unknown action '{}'", preset.action),
                )
                .expected(one_of(action_keys.iter().copied()))
                .found(format!("'{}'", preset.action))
                .maybe_hint(did_you_mean(&preset.action, action_keys.iter().copied())),
            );
            continue;
        };
        if action.beyond_segment && preset.enabled {
            out.push(beyond_segment_preset_enabled(
                dctx,
                &pointer,
                &preset.name,
                *actx,
                action,
            ));
        }
        if let PresetMapping::Fields(fields) = &preset.mapping {
            let field_keys: Vec<&str> = action.fields.keys().map(String::as_str).collect();
            for key in fields.keys() {
                if !action.fields.contains_key(key) {
                    out.push(
                        dctx.at_key(
                            &pointer_join(&pointer_join(&pointer, "mapping"), key),
                            format!(
                                "preset maps an unknown field '{key}' of action '{}'",
                                action.key
                            ),
                        )
                        .expected(one_of(field_keys.iter().copied()))
                        .found(format!("'{key}'"))
                        .maybe_hint(did_you_mean(key, field_keys.iter().copied())),
                    );
                }
            }
        }
    }

    // The action order names every action once.
    if !dspec.actions.is_empty() {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (idx, key) in dspec.actions.iter().enumerate() {
            let pointer = format!("/actions/{idx}");
            if !action_keys.contains(&key.as_str()) {
                out.push(
                    dctx.at_value(&pointer, format!("unknown action '{key}'"))
                        .expected(one_of(action_keys.iter().copied()))
                        .found(format!("'{key}'"))
                        .maybe_hint(did_you_mean(key, action_keys.iter().copied())),
                );
            } else if seen.insert(key, idx).is_some() {
                out.push(dctx.at_value(&pointer, format!("action '{key}' is listed twice")));
            }
        }
        for (ctx, spec) in actions {
            if !dspec.actions.contains(&spec.key) {
                out.push(
                    dctx.at_key(
                        "/actions",
                        format!("action '{}' is missing from 'actions'", spec.key),
                    )
                    .note(format!("it is defined in {}", ctx.file)),
                );
            }
        }
    }
}

/// What the checks of one request across files need from the destination.
struct RequestCross<'a> {
    dctx: FileCtx<'a>,
    settings: &'a [&'a str],
    has_base_url: bool,
}

impl RequestCross<'_> {
    /// Checks that the request's mappings read declared settings and that its `path` has a base
    /// URL to be joined onto.
    fn check(
        &self,
        ctx: FileCtx<'_>,
        base: &str,
        request: &RequestSpec,
        out: &mut Vec<Diagnostic>,
    ) {
        let settings = self.settings;
        if let Some(json) = &request.json {
            check_settings_paths(ctx, &pointer_join(base, "json"), json, settings, out);
        }
        if let Some(url) = &request.url {
            check_settings_paths(ctx, &pointer_join(base, "url"), url, settings, out);
        }
        if let MethodSpec::Mapped(map) = &request.method {
            let mapping = Value::Object(map.clone());
            check_settings_paths(ctx, &pointer_join(base, "method"), &mapping, settings, out);
        }
        for (name, value) in &request.headers {
            let pointer = pointer_join(&pointer_join(base, "headers"), name);
            check_settings_paths(ctx, &pointer, value, settings, out);
        }
        if let Some(value) = &request.headers_from {
            let pointer = pointer_join(base, "headers_from");
            check_settings_paths(ctx, &pointer, value, settings, out);
        }
        if let Some(sign) = &request.sign {
            let pointer = format!("{}/secret", pointer_join(base, "sign"));
            check_settings_paths(ctx, &pointer, &sign.secret, settings, out);
        }
        if let Some(path) = &request.path
            && !self.has_base_url
        {
            out.push(
                ctx.at_value(
                    &pointer_join(base, "path"),
                    format!("request path '{path}' has no base url to be joined onto"),
                )
                .expected("request_defaults.base_url in destination.yaml")
                .note(format!(
                    "the destination is declared at {}",
                    self.dctx.location("")
                ))
                .hint("declare request_defaults.base_url, or give this request an absolute 'url'"),
            );
        }
    }
}

/// The diagnostic for a preset that runs a beyond-Segment action without `enabled: false`:
/// at its `enabled` key when it has one, else at the preset itself.
fn beyond_segment_preset_enabled(
    dctx: FileCtx<'_>,
    pointer: &str,
    name: &str,
    actx: FileCtx<'_>,
    action: &ActionSpec,
) -> Diagnostic {
    let enabled = pointer_join(pointer, "enabled");
    let message = format!(
        "preset '{name}' of the beyond-Segment action '{}' is enabled",
        action.key
    );
    let diagnostic = if dctx.map.value(&enabled).is_some() {
        dctx.at_value(&enabled, message).found("enabled: true")
    } else {
        dctx.at_value(pointer, message)
            .found("no 'enabled' key, which means enabled: true")
    };
    diagnostic
        .expected("enabled: false, so that Segment's behaviour stays the default")
        .note(format!(
            "'{}' is declared beyond Segment at {}",
            action.key,
            actx.location("/beyond_segment")
        ))
}

// ---------------------------------------------------------------------------------------------
// Names.

fn is_slug(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
}

fn is_setting_key(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|ch| ch.is_ascii_alphabetic())
        && chars.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

/// Action keys become Rust identifiers after case conversion: a letter, then letters or digits.
pub(crate) fn is_action_key(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|ch| ch.is_ascii_alphabetic())
        && chars.all(|ch| ch.is_ascii_alphanumeric())
}

fn is_header_name(text: &str) -> bool {
    !text.is_empty()
        && text.chars().all(|ch| {
            ch.is_ascii_lowercase() || ch.is_ascii_digit() || "!#$%&'*+-.^_`|~".contains(ch)
        })
}

const RUST_KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut",
    "pub", "ref", "return", "self", "static", "struct", "super", "trait", "true", "type", "unsafe",
    "use", "where", "while", "abstract", "become", "box", "do", "final", "macro", "override",
    "priv", "try", "typeof", "unsized", "virtual", "yield",
];

/// Hook names are snake_case Rust identifiers that are not keywords.
pub(crate) fn is_hook_name(text: &str) -> bool {
    let mut chars = text.chars();
    let first_ok = chars
        .next()
        .is_some_and(|ch| ch.is_ascii_lowercase() || ch == '_');
    first_ok
        && chars.all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
        && text != "_"
        && !RUST_KEYWORDS.contains(&text)
}

fn to_snake_case(text: &str) -> String {
    let mut out = String::new();
    for ch in text.chars() {
        if ch.is_ascii_uppercase() {
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            out.push(ch.to_ascii_lowercase());
        } else if ch.is_ascii_alphanumeric() {
            out.push(ch);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_hook_name("created_at_metadata"));
        assert!(!is_hook_name("createdAt"));
        assert!(!is_hook_name("type"));
        assert!(!is_hook_name("1x"));
        assert!(is_action_key("identifyUser"));
        assert!(!is_action_key("identify-user"));
        assert!(!is_action_key("9lives"));
        assert_eq!(to_snake_case("Created-AtMetadata"), "created_at_metadata");
    }

    #[test]
    fn collects_paths_from_directives() {
        let mapping = serde_json::json!({
            "a": {"@path": "$.payload.userId"},
            "b": {"@template": "Token {{settings.apiKey}} {{ payload.x }}"},
            "c": {"@arrayPath": ["$.payload.items", {"n": {"@path": "$.name"}}]},
            "d": [{"@if": {"exists": {"@path": "$.computed.m"}, "then": 1}}]
        });
        let mut uses = Vec::new();
        collect_paths(&mapping, "", &mut uses);
        let found: Vec<(String, Option<String>, String)> = uses
            .into_iter()
            .map(|u| (u.root, u.key, u.pointer))
            .collect();
        assert_eq!(
            found,
            [
                ("payload".into(), Some("userId".into()), "/a/@path".into()),
                (
                    "settings".into(),
                    Some("apiKey".into()),
                    "/b/@template".into()
                ),
                ("payload".into(), Some("x".into()), "/b/@template".into()),
                (
                    "payload".into(),
                    Some("items".into()),
                    "/c/@arrayPath/0".into()
                ),
                (
                    "computed".into(),
                    Some("m".into()),
                    "/d/0/@if/exists/@path".into()
                ),
            ]
        );
    }
}
