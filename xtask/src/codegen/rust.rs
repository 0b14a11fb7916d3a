//! The generated Rust: one module per destination under `crates/destinations/src/generated/`, and a
//! `mod.rs` listing them in a registry.
//!
//! Code is built with `quote`, parsed by `syn` (so malformed output fails here, not in a later
//! build) and printed by `prettyplease`, which is byte-stable without rustfmt. Generated code names
//! everything by fully qualified path (`::actionkit_runtime::…`, `::serde::…`) and only refers to
//! the hand-written crate through `crate::hooks::<dest>::<hook>`.
//!
//! Each destination module holds: `Settings` and one `<Action>Payload` struct per action (typed,
//! with serde renames to the YAML keys and doc comments from the descriptions, `Debug` redacting
//! secrets), a wrapper per hooked action that converts the validated JSON into those structs before
//! calling the typed hook, and `pub static DESTINATION`, the runtime's static model of the
//! destination (settings, request defaults, rate limits, presets with triggers and compiled default
//! mappings, actions with their field definitions and requests).

use anyhow::{Context, Result};
use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};
use serde_json::Value;

use super::model::{
    Action, Batch, Choice, Conditions, Deletion, Destination, Field, FieldType, Request, Required,
    Setting, SettingType, Sign,
};
use super::names::{UniqueNames, ident, pascal_case, snake_case};

/// The directory of the generated modules, relative to the repository root.
pub const GENERATED_DIR: &str = "crates/destinations/src/generated";

/// The module name of a destination (its directory name in snake_case).
pub fn module_name(dest: &Destination) -> String {
    snake_case(&dest.dir_name)
}

/// Parses generated tokens as a file and prints it with the generated header.
pub fn render(tokens: TokenStream) -> Result<String> {
    let text = tokens.to_string();
    let file: syn::File = syn::parse2(tokens).with_context(|| {
        format!("the code generator produced invalid Rust (a bug in xtask):\n{text}")
    })?;
    Ok(format!(
        "{}\n{}",
        crate::fs::RUST_HEADER,
        prettyplease::unparse(&file)
    ))
}

/// The lines of `text` as doc-attribute values, each with the leading space `///` would give.
fn doc_lines(text: &str) -> Vec<String> {
    text.trim()
        .lines()
        .map(|line| {
            let line = line.trim_end();
            if line.is_empty() {
                String::new()
            } else {
                format!(" {line}")
            }
        })
        .collect()
}

/// `#[doc = …]` attributes, one per line of `text`.
fn doc_attrs(text: &str) -> TokenStream {
    let lines = doc_lines(text);
    quote! { #( #[doc = #lines] )* }
}

/// `#![doc = …]` attributes (module docs), one per line of `text`.
fn inner_doc_attrs(text: &str) -> TokenStream {
    let lines = doc_lines(text);
    quote! { #( #![doc = #lines] )* }
}

/// The text of a JSON value as a Rust string literal (compact JSON).
fn json_text(value: &Value) -> Result<String> {
    serde_json::to_string(value).context("cannot serialise a mapping as JSON")
}

fn option_str(text: Option<&str>) -> TokenStream {
    match text {
        Some(text) => quote! { ::core::option::Option::Some(#text) },
        None => quote! { ::core::option::Option::None },
    }
}

// ---------------------------------------------------------------------------------------------
// Typed settings and payloads.
// ---------------------------------------------------------------------------------------------

/// One field of a generated struct.
struct StructField {
    key: String,
    name: proc_macro2::Ident,
    ty: TokenStream,
    optional: bool,
    secret: bool,
    doc: String,
}

/// A struct with serde renames and a `Debug` that redacts secret fields.
fn typed_struct(
    name: &proc_macro2::Ident,
    doc: &str,
    fields: &[StructField],
    flatten_extra: bool,
) -> TokenStream {
    let doc = doc_attrs(doc);
    let mut names = UniqueNames::default();
    let mut decls = Vec::new();
    let mut debug_fields = Vec::new();
    for field in fields {
        let key = &field.key;
        let field_name = &field.name;
        let ty = &field.ty;
        let field_doc = doc_attrs(&field.doc);
        let rename = if field_name.to_string().trim_start_matches("r#") == key.as_str() {
            quote! {}
        } else {
            quote! { rename = #key, }
        };
        let serde_attr = if field.optional {
            quote! { #[serde(#rename default, skip_serializing_if = "::core::option::Option::is_none")] }
        } else if rename.is_empty() {
            quote! {}
        } else {
            quote! { #[serde(rename = #key)] }
        };
        let full_ty = if field.optional {
            quote! { ::core::option::Option<#ty> }
        } else {
            quote! { #ty }
        };
        decls.push(quote! { #field_doc #serde_attr pub #field_name: #full_ty, });
        let shown = field_name.to_string().trim_start_matches("r#").to_owned();
        names.claim(&shown);
        debug_fields.push(if field.secret {
            quote! { .field(#shown, &"[redacted]") }
        } else {
            quote! { .field(#shown, &self.#field_name) }
        });
    }
    if flatten_extra {
        let extra = ident(&names.claim("additional_properties"));
        let shown = extra.to_string();
        decls.push(quote! {
            /// Keys beyond the declared ones, kept because the object allows additional properties.
            #[serde(flatten)]
            pub #extra: ::serde_json::Map<::std::string::String, ::serde_json::Value>,
        });
        debug_fields.push(quote! { .field(#shown, &self.#extra) });
    }
    let name_text = name.to_string();
    quote! {
        #doc
        #[derive(Clone, PartialEq, ::serde::Deserialize, ::serde::Serialize)]
        pub struct #name {
            #( #decls )*
        }

        impl ::core::fmt::Debug for #name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(#name_text) #( #debug_fields )* .finish()
            }
        }
    }
}

fn settings_struct(dest: &Destination) -> TokenStream {
    let mut names = UniqueNames::default();
    let fields: Vec<StructField> = dest
        .settings
        .iter()
        .map(|setting: &Setting| {
            let ty = match setting.kind {
                SettingType::String | SettingType::Password => quote! { ::std::string::String },
                SettingType::Number => quote! { f64 },
                SettingType::Boolean => quote! { bool },
            };
            StructField {
                key: setting.key.clone(),
                name: ident(&names.claim(&snake_case(&setting.key))),
                ty,
                optional: !setting.required,
                secret: setting.secret || setting.kind == SettingType::Password,
                doc: doc_or_label(&setting.description, &setting.label),
            }
        })
        .collect();
    typed_struct(
        &format_ident!("Settings"),
        &format!("The settings of {}, validated.", dest.display_name),
        &fields,
        false,
    )
}

fn doc_or_label(description: &str, label: &str) -> String {
    if description.trim().is_empty() {
        label.to_owned()
    } else {
        description.to_owned()
    }
}

/// The payload struct of `action` (named `type_name`) and the structs of its object sub-fields.
fn payload_structs(
    type_name: &str,
    doc: &str,
    fields: &[Field],
    flatten_extra: bool,
    out: &mut Vec<TokenStream>,
) {
    let mut names = UniqueNames::default();
    let mut struct_fields = Vec::new();
    for field in fields {
        let base = if field.kind == FieldType::Object && !field.properties.is_empty() {
            let nested = format!("{type_name}{}", pascal_case(&field.key));
            payload_structs(
                &nested,
                &format!("The `{}` object of [`{type_name}`].", field.key),
                &field.properties,
                field.additional_properties,
                out,
            );
            let nested = format_ident!("{}", nested);
            quote! { #nested }
        } else {
            match field.kind {
                FieldType::String | FieldType::Text | FieldType::Password => {
                    quote! { ::std::string::String }
                }
                FieldType::Number => quote! { f64 },
                FieldType::Integer => quote! { i64 },
                FieldType::Boolean => quote! { bool },
                FieldType::Datetime => quote! { ::serde_json::Value },
                FieldType::Object => {
                    quote! { ::serde_json::Map<::std::string::String, ::serde_json::Value> }
                }
            }
        };
        let ty = if field.multiple {
            quote! { ::std::vec::Vec<#base> }
        } else {
            base
        };
        let mut doc = doc_or_label(&field.description, &field.label);
        if field.kind == FieldType::Datetime {
            doc.push_str("\n\nA date: a date-like string or a number, as validated.");
        }
        struct_fields.push(StructField {
            key: field.key.clone(),
            name: ident(&names.claim(&snake_case(&field.key))),
            ty,
            optional: field.required != Required::Yes || field.allow_null,
            secret: field.kind == FieldType::Password,
            doc,
        });
    }
    out.push(typed_struct(
        &format_ident!("{}", type_name),
        doc,
        &struct_fields,
        flatten_extra,
    ));
}

/// The Rust type name of an action's payload struct.
pub fn payload_type_name(action: &Action) -> String {
    format!("{}Payload", pascal_case(&action.key))
}

// ---------------------------------------------------------------------------------------------
// Static field and setting definitions.
// ---------------------------------------------------------------------------------------------

fn literal(value: &Value) -> Result<TokenStream> {
    Ok(match value {
        Value::Null => quote! { ::actionkit_runtime::fields::Literal::Null },
        Value::Bool(b) => quote! { ::actionkit_runtime::fields::Literal::Bool(#b) },
        Value::Number(n) => {
            let n = n
                .as_f64()
                .context("a choice or condition number is out of range")?;
            let lit = Literal::f64_unsuffixed(n);
            quote! { ::actionkit_runtime::fields::Literal::Number(#lit) }
        }
        Value::String(s) => quote! { ::actionkit_runtime::fields::Literal::String(#s) },
        Value::Array(_) | Value::Object(_) => {
            anyhow::bail!("choice and condition values must be scalars, found {value}")
        }
    })
}

fn format_tokens(format: Option<&str>) -> Result<Option<TokenStream>> {
    let Some(format) = format else {
        return Ok(None);
    };
    let variant = match format {
        "date" => "Date",
        "time" => "Time",
        "date-time" => "DateTime",
        "uri" => "Uri",
        "uri-reference" => "UriReference",
        "uri-template" => "UriTemplate",
        "email" => "Email",
        "hostname" => "Hostname",
        "ipv4" => "Ipv4",
        "ipv6" => "Ipv6",
        "regex" => "Regex",
        "uuid" => "Uuid",
        "password" => "Password",
        "text" => "Text",
        "date-like" => "DateLike",
        other => anyhow::bail!("unknown string format `{other}`"),
    };
    let variant = format_ident!("{}", variant);
    Ok(Some(
        quote! { ::actionkit_runtime::fields::Format::#variant },
    ))
}

fn conditions_tokens(conditions: &Conditions) -> Result<TokenStream> {
    let mode = if conditions.match_any {
        quote! { ::actionkit_runtime::fields::ConditionMatch::Any }
    } else {
        quote! { ::actionkit_runtime::fields::ConditionMatch::All }
    };
    let mut items = Vec::new();
    for condition in &conditions.conditions {
        let key = &condition.field_key;
        let operator = if condition.is {
            quote! { ::actionkit_runtime::fields::ConditionOperator::Is }
        } else {
            quote! { ::actionkit_runtime::fields::ConditionOperator::IsNot }
        };
        let value = match &condition.value {
            Some(value) => {
                let lit = literal(value)?;
                quote! { ::core::option::Option::Some(#lit) }
            }
            None => quote! { ::core::option::Option::None },
        };
        items.push(quote! {
            ::actionkit_runtime::fields::Condition { field_key: #key, operator: #operator, value: #value }
        });
    }
    Ok(
        quote! { ::actionkit_runtime::fields::Conditions { mode: #mode, conditions: &[ #( #items ),* ] } },
    )
}

fn field_def(field: &Field) -> Result<TokenStream> {
    let key = &field.key;
    let label = &field.label;
    let description = &field.description;
    let field_type = format_ident!(
        "{}",
        match field.kind {
            FieldType::String => "String",
            FieldType::Text => "Text",
            FieldType::Number => "Number",
            FieldType::Integer => "Integer",
            FieldType::Datetime => "Datetime",
            FieldType::Boolean => "Boolean",
            FieldType::Password => "Password",
            FieldType::Object => "Object",
        }
    );
    let required = match &field.required {
        Required::No => quote! { ::actionkit_runtime::fields::Required::No },
        Required::Yes => quote! { ::actionkit_runtime::fields::Required::Always },
        Required::When(conditions) => {
            let conditions = conditions_tokens(conditions)?;
            quote! { ::actionkit_runtime::fields::Required::When(&#conditions) }
        }
    };
    let mut extra = Vec::new();
    if field.multiple {
        extra.push(quote! { multiple: true, });
    }
    if field.allow_null {
        extra.push(quote! { allow_null: true, });
    }
    if let Some(choices) = &field.choices {
        let items = choices
            .iter()
            .map(|Choice { label, value }| {
                let value = literal(value)?;
                Ok(quote! { ::actionkit_runtime::fields::Choice { value: #value, label: #label } })
            })
            .collect::<Result<Vec<_>>>()?;
        extra.push(quote! { choices: ::core::option::Option::Some(&[ #( #items ),* ]), });
    }
    if field.kind == FieldType::Object && !field.properties.is_empty() {
        let items = field
            .properties
            .iter()
            .map(field_def)
            .collect::<Result<Vec<_>>>()?;
        extra.push(quote! { properties: ::core::option::Option::Some(&[ #( #items ),* ]), });
        if field.additional_properties {
            extra.push(quote! { additional_properties: true, });
        }
    }
    if let Some(format) = format_tokens(field.format.as_deref())? {
        extra.push(quote! { format: ::core::option::Option::Some(#format), });
    }
    for (name, bound) in [("minimum", field.minimum), ("maximum", field.maximum)] {
        if let Some(bound) = bound {
            let name = format_ident!("{}", name);
            let lit = Literal::f64_unsuffixed(bound);
            extra.push(quote! { #name: ::core::option::Option::Some(#lit), });
        }
    }
    if let Some(default) = &field.default {
        let text = json_text(default)?;
        extra.push(quote! { default: ::core::option::Option::Some(#text), });
    }
    Ok(quote! {
        ::actionkit_runtime::fields::FieldDef {
            key: #key,
            label: #label,
            description: #description,
            field_type: ::actionkit_runtime::fields::FieldType::#field_type,
            required: #required,
            #( #extra )*
            ..::actionkit_runtime::fields::FieldDef::BASE
        }
    })
}

fn setting_def(setting: &Setting) -> Result<TokenStream> {
    let key = &setting.key;
    let label = &setting.label;
    let description = &setting.description;
    let setting_type = format_ident!(
        "{}",
        match setting.kind {
            SettingType::String => "String",
            SettingType::Password => "Password",
            SettingType::Number => "Number",
            SettingType::Boolean => "Boolean",
        }
    );
    let required = setting.required;
    let secret = setting.secret || setting.kind == SettingType::Password;
    let mut extra = Vec::new();
    if let Some(format) = format_tokens(setting.format.as_deref())? {
        extra.push(quote! { format: ::core::option::Option::Some(#format), });
    }
    if let Some(default) = &setting.default {
        let text = json_text(default)?;
        extra.push(quote! { default: ::core::option::Option::Some(#text), });
    }
    Ok(quote! {
        ::actionkit_runtime::fields::SettingDef {
            key: #key,
            label: #label,
            description: #description,
            setting_type: ::actionkit_runtime::fields::SettingType::#setting_type,
            required: #required,
            secret: #secret,
            #( #extra )*
            ..::actionkit_runtime::fields::SettingDef::BASE
        }
    })
}

fn request_def(request: &Request) -> Result<TokenStream> {
    let method = format_ident!(
        "{}",
        match request.method.as_str() {
            "GET" => "Get",
            "POST" => "Post",
            "PUT" => "Put",
            "PATCH" => "Patch",
            "DELETE" => "Delete",
            "HEAD" => "Head",
            other => anyhow::bail!("unsupported HTTP method `{other}`"),
        }
    );
    let path = &request.path;
    let rate_limit = option_str(request.rate_limit.as_deref());
    let json = match &request.json {
        Some(json) => Some(json_text(json)?),
        None => None,
    };
    let json = option_str(json.as_deref());
    let busy = &request.busy_statuses;
    let response_id = option_str(request.response_id.as_deref());
    // What only some requests have is written only when set; `BASE` completes the rest.
    let mut extra = Vec::new();
    if let Some(mapping) = &request.method_mapping {
        let text = json_text(mapping)?;
        extra.push(quote! { method_mapping: ::core::option::Option::Some(#text), });
    }
    if let Some(url) = &request.url {
        let text = json_text(url)?;
        extra.push(quote! { url: ::core::option::Option::Some(#text), });
    }
    if !request.headers.is_empty() {
        let headers = header_defs(&request.headers)?;
        extra.push(quote! { headers: &[ #( #headers ),* ], });
    }
    if let Some(mapping) = &request.headers_from {
        let text = json_text(mapping)?;
        extra.push(quote! { headers_from: ::core::option::Option::Some(#text), });
    }
    if let Some(sign) = &request.sign {
        let def = sign_def(sign)?;
        extra.push(quote! { sign: ::core::option::Option::Some(#def), });
    }
    Ok(quote! {
        ::actionkit_runtime::destination::RequestDef {
            method: ::actionkit_runtime::request::Method::#method,
            path: #path,
            rate_limit: #rate_limit,
            json: #json,
            busy_statuses: &[ #( #busy ),* ],
            response_id: #response_id,
            #( #extra )*
            ..::actionkit_runtime::destination::RequestDef::BASE
        }
    })
}

/// The `HeaderDef`s of `(name, mapping)` pairs.
fn header_defs(headers: &[(String, Value)]) -> Result<Vec<TokenStream>> {
    headers
        .iter()
        .map(|(name, value)| {
            let text = json_text(value)?;
            Ok(quote! { ::actionkit_runtime::destination::HeaderDef { name: #name, value: #text } })
        })
        .collect()
}

/// The `SignDef` of a signature.
fn sign_def(sign: &Sign) -> Result<TokenStream> {
    let algorithm = format_ident!("{}", sign.algorithm);
    let encoding = format_ident!(
        "{}",
        match sign.encoding.as_str() {
            "hex" => "Hex",
            "base64" => "Base64",
            other => anyhow::bail!("unsupported signature encoding `{other}`"),
        }
    );
    let secret = json_text(&sign.secret)?;
    let header = &sign.header;
    let prefix = &sign.prefix;
    Ok(quote! {
        ::actionkit_runtime::sign::SignDef {
            algorithm: ::actionkit_runtime::sign::SignAlgorithm::#algorithm,
            secret: #secret,
            header: #header,
            encoding: ::actionkit_runtime::sign::SignEncoding::#encoding,
            prefix: #prefix,
        }
    })
}

fn batch_def(batch: &Batch) -> Result<TokenStream> {
    let max_items = usize::try_from(batch.max_items).context("batch max_items is too large")?;
    let max_bytes = match batch.max_bytes {
        Some(n) => {
            let n = usize::try_from(n).context("batch max_bytes is too large")?;
            quote! { ::core::option::Option::Some(#n) }
        }
        None => quote! { ::core::option::Option::None },
    };
    let wait_ms = batch.wait_ms;
    let keys = &batch.keys;
    let item = match &batch.item {
        Some(item) => Some(json_text(item)?),
        None => None,
    };
    let item = option_str(item.as_deref());
    let request = request_def(&batch.request)?;
    let item_errors = match &batch.item_errors {
        Some((list, index, message)) => {
            let message = option_str(message.as_deref());
            quote! {
                ::core::option::Option::Some(::actionkit_runtime::destination::ItemErrorsDef {
                    list: #list,
                    index: #index,
                    message: #message,
                })
            }
        }
        None => quote! { ::core::option::Option::None },
    };
    Ok(quote! {
        ::actionkit_runtime::destination::BatchDef {
            item_errors: #item_errors,
            max_items: #max_items,
            max_bytes: #max_bytes,
            wait_ms: #wait_ms,
            keys: &[ #( #keys ),* ],
            item: #item,
            request: #request,
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Modules.
// ---------------------------------------------------------------------------------------------

/// The generated module of one destination.
pub fn destination_module(dest: &Destination) -> Result<String> {
    let module_doc = format!(
        "The generated handler of {} (`{}`), from `actions/{}/`.\n\nRegenerate with `cargo codegen`; hand-written hooks live in `crate::hooks::{}`.",
        dest.display_name,
        dest.slug,
        dest.dir_name,
        module_name(dest)
    );
    let module_doc = inner_doc_attrs(&module_doc);

    let mut items = Vec::new();
    items.push(settings_struct(dest));
    for action in &dest.actions {
        let type_name = payload_type_name(action);
        payload_structs(
            &type_name,
            &format!(
                "The validated payload of the `{}` action ({}).\n\n{}",
                action.key, action.name, action.description
            ),
            &action.fields,
            false,
            &mut items,
        );
    }

    let module = ident(&module_name(dest));
    let mut action_defs = Vec::new();
    for action in &dest.actions {
        let key = &action.key;
        let id = &action.id;
        let name = &action.name;
        let description = &action.description;
        let default_trigger = action.default_trigger.clone().unwrap_or_default();
        let fields = action
            .fields
            .iter()
            .map(field_def)
            .collect::<Result<Vec<_>>>()?;
        let request = match &action.request {
            Some(request) => {
                let def = request_def(request)?;
                quote! { ::core::option::Option::Some(#def) }
            }
            None => quote! { ::core::option::Option::None },
        };
        let batch = match &action.batch {
            Some(batch) => {
                let def = batch_def(batch)?;
                quote! { ::core::option::Option::Some(#def) }
            }
            None => quote! { ::core::option::Option::None },
        };
        let beyond_segment = action.beyond_segment;
        let merges = match &action.merges_by_id {
            Some(m) => {
                let (record, id, merged) = (&m.record, &m.id, &m.merged);
                quote! {
                    ::core::option::Option::Some(::actionkit_runtime::destination::MergesDef {
                        record: #record,
                        id: #id,
                        merged: &[ #( #merged ),* ],
                    })
                }
            }
            None => quote! { ::core::option::Option::None },
        };
        let hook = match action.hook() {
            Some(hook_name) => {
                let wrapper = format_ident!("{}_hook", snake_case(&action.key));
                let payload_ty = format_ident!("{}", payload_type_name(action));
                let hook_fn = ident(hook_name);
                let wrapper_doc = format!(
                    "Runs the `{hook_name}` hook for `{key}`: converts the validated JSON into [`{payload_ty}`] and [`Settings`] first."
                );
                let payload_error = format!(
                    "the validated payload of action '{key}' does not fit the generated {payload_ty} type"
                );
                let wrapper_doc = doc_attrs(&wrapper_doc);
                items.push(quote! {
                    #wrapper_doc
                    fn #wrapper(
                        input: &::actionkit_runtime::destination::HookInput<'_>,
                    ) -> ::core::result::Result<::serde_json::Value, ::actionkit_runtime::destination::HookError> {
                        let payload = <#payload_ty as ::serde::Deserialize>::deserialize(input.payload)
                            .map_err(|_| ::actionkit_runtime::destination::HookError::new(#payload_error))?;
                        let settings = <Settings as ::serde::Deserialize>::deserialize(input.settings)
                            .map_err(|_| {
                                ::actionkit_runtime::destination::HookError::new(
                                    "the validated settings do not fit the generated Settings type",
                                )
                            })?;
                        crate::hooks::#module::#hook_fn(&payload, &settings)
                    }
                });
                quote! { ::core::option::Option::Some(#wrapper as ::actionkit_runtime::destination::HookFn) }
            }
            None => quote! { ::core::option::Option::None },
        };
        action_defs.push(quote! {
            ::actionkit_runtime::destination::ActionDef {
                id: #id,
                key: #key,
                name: #name,
                description: #description,
                default_trigger: #default_trigger,
                beyond_segment: #beyond_segment,
                fields: &[ #( #fields ),* ],
                request: #request,
                batch: #batch,
                merges: #merges,
                hook: #hook,
            }
        });
    }

    let settings = dest
        .settings
        .iter()
        .map(setting_def)
        .collect::<Result<Vec<_>>>()?;
    // Validation made sure that a destination without a base URL has no request with a path.
    let base_url = match &dest.request_defaults.base_url {
        Some(base_url) => {
            let text = json_text(base_url)?;
            quote! { ::core::option::Option::Some(#text) }
        }
        None => quote! { ::core::option::Option::None },
    };
    let headers = header_defs(&dest.request_defaults.headers)?;
    let default_sign = match &dest.request_defaults.sign {
        Some(sign) => {
            let def = sign_def(sign)?;
            quote! { ::core::option::Option::Some(#def) }
        }
        None => quote! { ::core::option::Option::None },
    };
    let rate_limits = dest.rate_limits.iter().map(|limit| {
        let key = &limit.key;
        let max_requests = Literal::u64_unsuffixed(limit.max_requests);
        let per_seconds = Literal::u64_unsuffixed(limit.per_seconds);
        quote! {
            ::actionkit_runtime::destination::RateLimitDef { key: #key, max_requests: #max_requests, per_seconds: #per_seconds }
        }
    });
    let presets = dest
        .presets
        .iter()
        .map(|preset| {
            let name = &preset.name;
            let action_key = &preset.action_key;
            let trigger = &preset.trigger;
            let enabled = preset.enabled;
            let mapping = if preset.uses_defaults {
                quote! { ::actionkit_runtime::destination::PresetMapping::Defaults }
            } else {
                let text = json_text(&Value::Object(preset.mapping.clone()))?;
                quote! { ::actionkit_runtime::destination::PresetMapping::Json(#text) }
            };
            Ok(quote! {
                ::actionkit_runtime::destination::PresetDef {
                    name: #name, action_key: #action_key, trigger: #trigger, mapping: #mapping,
                    enabled: #enabled,
                }
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let optional_request = |request: Option<&Request>| -> Result<TokenStream> {
        Ok(match request {
            Some(request) => {
                let def = request_def(request)?;
                quote! { ::core::option::Option::Some(#def) }
            }
            None => quote! { ::core::option::Option::None },
        })
    };
    let test_authentication = optional_request(dest.test_authentication.as_ref())?;
    let on_delete = optional_request(dest.on_delete.as_ref())?;
    let optional_deletion = |deletion: Option<&Deletion>| -> Result<TokenStream> {
        Ok(match deletion {
            Some(deletion) => {
                let max_ids = usize::try_from(deletion.max_ids).unwrap_or(usize::MAX);
                let request = request_def(&deletion.request)?;
                quote! {
                    ::core::option::Option::Some(::actionkit_runtime::destination::DeletionDef {
                        max_ids: #max_ids,
                        request: #request,
                    })
                }
            }
            None => quote! { ::core::option::Option::None },
        })
    };
    let delete_users = optional_deletion(dest.delete_users.as_ref())?;
    let delete_companies = optional_deletion(dest.delete_companies.as_ref())?;
    let (id, name, slug) = (&dest.id, &dest.name, &dest.slug);
    let static_doc = doc_attrs(&format!("The static definition of {}.", dest.display_name));

    let tokens = quote! {
        #module_doc
        // Definitions complete themselves from `BASE` so that they keep compiling when the runtime
        // adds a field with a neutral default; some happen to set every field already.
        #![allow(clippy::needless_update)]
        #( #items )*

        #static_doc
        pub static DESTINATION: ::actionkit_runtime::destination::DestinationDef =
            ::actionkit_runtime::destination::DestinationDef {
                id: #id,
                name: #name,
                slug: #slug,
                settings: &[ #( #settings ),* ],
                request_defaults: ::actionkit_runtime::destination::RequestDefaultsDef {
                    base_url: #base_url,
                    headers: &[ #( #headers ),* ],
                    sign: #default_sign,
                },
                rate_limits: &[ #( #rate_limits ),* ],
                presets: &[ #( #presets ),* ],
                actions: &[ #( #action_defs ),* ],
                test_authentication: #test_authentication,
                on_delete: #on_delete,
                deletions: ::actionkit_runtime::destination::DeletionsDef {
                    users: #delete_users,
                    companies: #delete_companies,
                },
            };
    };
    render(tokens)
}

/// The generated `mod.rs`: one module per destination and the registry of all of them.
pub fn registry_module(dests: &[Destination]) -> Result<String> {
    let modules: Vec<_> = dests.iter().map(|dest| ident(&module_name(dest))).collect();
    let docs: Vec<String> = dests
        .iter()
        .map(|dest| format!(" {} (`{}`).", dest.display_name, dest.slug))
        .collect();
    let tokens = quote! {
        //! The generated destination modules and the list the registry is built from.
        #( #[doc = #docs] pub mod #modules; )*

        /// Every generated destination, in the order of their directories under `actions/`.
        pub static DESTINATIONS: &[&::actionkit_runtime::destination::DestinationDef] = &[
            #( &#modules::DESTINATION ),*
        ];

        /// Compiles every generated destination once into the registry the dispatcher looks
        /// destinations and actions up in; fails with the problems of every invalid definition.
        pub fn registry() -> ::core::result::Result<
            ::actionkit_runtime::destination::Registry,
            ::std::vec::Vec<::actionkit_runtime::destination::DefinitionError>,
        > {
            ::actionkit_runtime::destination::Registry::new(DESTINATIONS)
        }
    };
    render(tokens)
}
