//! The JSON Schemas of the YAML: `schemas/destination.schema.json`, `schemas/action.schema.json`
//! and the runtime configuration's `schemas/config.schema.json`.
//!
//! They come from the spec crate's model (`#[derive(JsonSchema)]`). JSON has no comments, so the
//! "generated, do not edit" note is the top-level `"$comment"` key, placed first.

use anyhow::{Context, Result};
use serde_json::{Map, Value};

use crate::fs::{GeneratedFile, JSON_COMMENT};

/// The schema files with their contents.
pub fn schema_files() -> Result<Vec<GeneratedFile>> {
    Ok(vec![
        GeneratedFile::new(
            "schemas/destination.schema.json",
            render(actionkit_spec::destination_schema())?,
        ),
        GeneratedFile::new(
            "schemas/action.schema.json",
            render(actionkit_spec::action_schema())?,
        ),
        GeneratedFile::new(
            "schemas/config.schema.json",
            render(actionkit_spec::config_schema())?,
        ),
    ])
}

/// Pretty-prints `schema` with `"$comment"` first and a trailing newline.
fn render(schema: Value) -> Result<String> {
    let mut out = Map::new();
    out.insert(
        "$comment".to_owned(),
        Value::String(JSON_COMMENT.to_owned()),
    );
    match schema {
        Value::Object(map) => {
            for (key, value) in map {
                if key != "$comment" {
                    out.insert(key, value);
                }
            }
        }
        other => anyhow::bail!("a schema must be a JSON object, found {other}"),
    }
    let text =
        serde_json::to_string_pretty(&Value::Object(out)).context("cannot print a schema")?;
    Ok(format!("{text}\n"))
}
