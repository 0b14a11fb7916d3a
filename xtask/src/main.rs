//! The `cargo xtask` command line: parses arguments and runs one task.
//!
//! Tasks: `codegen [--check]` (alias `cargo codegen`), `validate`,
//! `new-destination <slug>`, `new-action <dest> <key> [--batch] [--beyond-segment]`, `segment-diff [--seed N] [--no-node]`, and
//! `test [--deps-only] [-- <cargo test args>]`.
//! Each runs over the repository that holds this xtask, or over `--root <dir>` when given.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <task> [--root <dir>]

tasks:
  codegen [--check]          regenerate handlers, docs, catalog and schemas (alias: cargo codegen);
                             --check changes nothing and fails when a generated file is stale
  validate                   load every destination and print all diagnostics
  new-destination <slug>     scaffold actions/<dir>/ (dir: the slug without `actions-`,
                             dashes as underscores): destination.yaml, one action and its
                             test case, valid as written
  new-action <dest> <key> [--batch] [--beyond-segment]
                             scaffold actions/<dest>/<key>.yaml and a test case for it;
                             --batch adds the batch form, --beyond-segment marks the action
                             as not Segment's (left out of its catalog entry, off in presets)
  segment-diff [--seed N] [--no-node]
                             regenerate the differential corpus (tools/segment-diff/data) and,
                             with Node.js, Segment's answers to it; compare them with
                             cargo test -p actionkit-destinations --test segment_diff
  test [--deps-only] [-- <cargo test args>]
                             install what the end-to-end tests need when missing (Chromium,
                             Node.js and the npm clients, the Python client), then run
                             cargo test --workspace --locked; --deps-only stops after installing";

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let root = match take_option(&mut args, "--root") {
        Ok(Some(dir)) => PathBuf::from(dir),
        Ok(None) => xtask::project_root(),
        Err(msg) => return usage_error(&msg),
    };
    let Some(task) = args.first().cloned() else {
        return usage_error("no task given");
    };
    let rest = &args[1..];
    // `cargo xtask <task> --help` asks for help, never for a slug or a key named `--help`.
    // What follows `--` belongs to cargo test.
    let ours = rest.split(|arg| arg == "--").next().unwrap_or_default();
    if ours.iter().any(|arg| arg == "--help" || arg == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let res = match task.as_str() {
        "codegen" => {
            let check = match rest {
                [] => false,
                [flag] if flag == "--check" => true,
                _ => {
                    return usage_error(&format!(
                        "unexpected arguments for codegen: {}",
                        rest.join(" ")
                    ));
                }
            };
            xtask::codegen::run(
                &root,
                if check {
                    xtask::fs::Mode::Check
                } else {
                    xtask::fs::Mode::Write
                },
            )
        }
        "validate" => {
            if !rest.is_empty() {
                return usage_error(&format!(
                    "unexpected arguments for validate: {}",
                    rest.join(" ")
                ));
            }
            xtask::validate::run(&root)
        }
        "segment-diff" => match xtask::segment_diff::Args::parse(rest) {
            Ok(args) => xtask::segment_diff::run(&root, &args),
            Err(msg) => return usage_error(&msg),
        },
        "new-destination" => match rest {
            [slug] => xtask::new_destination::run(&root, slug),
            _ => return usage_error("new-destination takes exactly one argument: <slug>"),
        },
        "new-action" => match xtask::new_action::Args::parse(rest) {
            Ok(args) => xtask::new_action::run(&root, &args),
            Err(msg) => return usage_error(&msg),
        },
        "test" => {
            let (ours, cargo_args) = match rest.iter().position(|a| a == "--") {
                Some(at) => (&rest[..at], &rest[at + 1..]),
                None => (rest, &[][..]),
            };
            let deps_only = match ours {
                [] => false,
                [flag] if flag == "--deps-only" => true,
                _ => {
                    return usage_error(&format!(
                        "unexpected arguments for test: {} (cargo test's own go after `--`)",
                        ours.join(" ")
                    ));
                }
            };
            xtask::test::run(&root, deps_only, cargo_args)
        }
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => return usage_error(&format!("unknown task `{other}`")),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.is::<xtask::codegen::from_spec::ValidationFailed>() => {
            // Rendered diagnostics carry their own `error:` labels.
            eprintln!("{err}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Removes `--name <value>` (or `--name=<value>`) from `args` and returns the value.
fn take_option(args: &mut Vec<String>, name: &str) -> Result<Option<String>, String> {
    let prefix = format!("{name}=");
    if let Some(idx) = args.iter().position(|arg| arg == name) {
        if idx + 1 >= args.len() {
            return Err(format!("{name} needs a value"));
        }
        let value = args.remove(idx + 1);
        args.remove(idx);
        return Ok(Some(value));
    }
    if let Some(idx) = args.iter().position(|arg| arg.starts_with(&prefix)) {
        let arg = args.remove(idx);
        return Ok(Some(arg[prefix.len()..].to_owned()));
    }
    Ok(None)
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("error: {msg}\n\n{USAGE}");
    ExitCode::from(2)
}
