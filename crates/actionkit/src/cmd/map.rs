//! `actionkit map`: evaluate one mapping or trigger on one event (Segment's Mappings Tester).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::input;

/// Evaluate a mapping (or a trigger) on one event and print the result.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  actionkit map --mapping '{\"user\": {\"@path\": \"$.userId\"}}' examples/identify.json
  actionkit map --mapping mapping.json - < event.json
  actionkit map --trigger 'type = \"track\" and event = \"Order Completed\"' event.json")]
pub struct MapArgs {
    /// The mapping: a JSON file path or inline JSON text.
    #[arg(long, conflicts_with = "trigger", required_unless_present = "trigger")]
    mapping: Option<String>,
    /// A trigger (FQL) to test instead of a mapping; prints whether the event matches.
    #[arg(long)]
    trigger: Option<String>,
    /// The event as a JSON file, or `-` (the default) for standard input.
    event: Option<PathBuf>,
}

/// Runs the command; exit code 1 when the mapping is invalid or the trigger does not match.
pub fn run(args: MapArgs) -> anyhow::Result<ExitCode> {
    let (text, origin) = input::read_all(args.event.as_deref())?;
    let event = input::parse_json(&text, &origin)?;
    if let Some(trigger) = args.trigger {
        let expr = match actionkit_fql::parse(&trigger) {
            Ok(expr) => expr,
            Err(err) => {
                eprintln!(
                    "error: invalid trigger at column {}: {}",
                    err.column, err.message
                );
                return Ok(ExitCode::from(1));
            }
        };
        let matched = expr.matches(&event);
        println!(
            "{}",
            serde_json::json!({ "trigger": expr.to_string(), "matches": matched })
        );
        return Ok(if matched {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let spec = args
        .mapping
        .context("either --mapping or --trigger is required")?;
    let mapping_json = load_mapping(&spec)?;
    let mapping = match actionkit_mapping::Mapping::compile(&mapping_json) {
        Ok(mapping) => mapping,
        Err(errs) => {
            for message in &errs.messages {
                eprintln!("error: invalid mapping: {message}");
            }
            return Ok(ExitCode::from(1));
        }
    };
    match mapping.evaluate(&event) {
        Ok(Some(value)) => println!("{}", serde_json::to_string_pretty(&value)?),
        Ok(None) => println!("{{}}"),
        Err(err) => {
            eprintln!("error: mapping failed: {}", err.message);
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a mapping given inline (it starts with `{` or `[`) or as a file path.
fn load_mapping(spec: &str) -> anyhow::Result<serde_json::Value> {
    let trimmed = spec.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        return input::parse_json(spec, "--mapping");
    }
    let path = PathBuf::from(spec);
    let (text, origin) = input::read_all(Some(&path))?;
    input::parse_json(&text, &origin)
}
