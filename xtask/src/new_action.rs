//! `cargo xtask new-action <dest> <key> [--batch] [--beyond-segment]`: scaffold an action YAML and
//! a test case for it.
//!
//! The action file is `actions/<dest>/<key in snake_case>.yaml` and the test case
//! `actions/<dest>/tests/<key in snake_case>.yaml`. Both are valid as written, so `cargo codegen`
//! right after scaffolding produces a compiling handler; fill in the fields, request and expected
//! request, then run `cargo codegen` again. Existing files are never overwritten.
//!
//! `--batch` adds the batch form (Segment's `performBatch`): a commented `batch:` block and the
//! boolean `enable_batching` field that chooses the form per event. Its default is `false`, so the
//! scaffolded test case still exercises the single request. `--beyond-segment` marks the action
//! `beyond_segment: true`: it is left out of Segment's catalog entry and marked in the docs, and a
//! preset for it must say `enabled: false`.

use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::codegen::names::snake_case;

/// The files [`scaffold`] wrote, relative to the repository root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scaffolded {
    /// The action YAML.
    pub action: PathBuf,
    /// The test case YAML.
    pub test_case: PathBuf,
}

/// What to scaffold besides a plain single-request action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Add the batch form and the `enable_batching` field (`--batch`).
    pub batch: bool,
    /// Mark the action `beyond_segment: true` (`--beyond-segment`).
    pub beyond_segment: bool,
}

/// The arguments of `new-action`: `<dest> <key>` and the flags, in any order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// The destination directory under `actions/`.
    pub dest: String,
    /// The action key.
    pub key: String,
    /// The flags.
    pub options: Options,
}

impl Args {
    /// Parses the arguments after `new-action`; the error is a usage message.
    pub fn parse(args: &[String]) -> std::result::Result<Args, String> {
        let mut options = Options::default();
        let mut positional = Vec::new();
        for arg in args {
            match arg.as_str() {
                "--batch" => options.batch = true,
                "--beyond-segment" => options.beyond_segment = true,
                flag if flag.starts_with("--") => {
                    return Err(format!(
                        "unknown flag `{flag}` for new-action: expected --batch or --beyond-segment"
                    ));
                }
                _ => positional.push(arg.clone()),
            }
        }
        match <[String; 2]>::try_from(positional) {
            Ok([dest, key]) => Ok(Args { dest, key, options }),
            Err(_) => Err("new-action takes exactly two arguments: <dest> <key>".to_owned()),
        }
    }
}

/// Scaffolds the action and prints what to do next.
pub fn run(root: &Path, args: &Args) -> Result<()> {
    let files = scaffold(root, &args.dest, &args.key, args.options)?;
    println!("created {}", files.action.display());
    println!("created {}", files.test_case.display());
    println!("next: fill in the fields, request and expected request, then run `cargo codegen`");
    Ok(())
}

/// Writes the action YAML and its test case under `root`; fails rather than overwrite.
pub fn scaffold(root: &Path, dest: &str, key: &str, options: Options) -> Result<Scaffolded> {
    check_key(key)?;
    if dest.is_empty() || dest.contains(['/', '\\']) || dest.starts_with('.') {
        bail!(
            "invalid destination directory name `{dest}`: expected a directory name under actions/"
        );
    }
    let dest_dir = root.join("actions").join(dest);
    if !dest_dir.join("destination.yaml").is_file() {
        bail!(
            "unknown destination `{dest}`: {} has no destination.yaml",
            dest_dir.display()
        );
    }
    let file_stem = snake_case(key).trim_start_matches('_').to_owned();
    let action_rel = PathBuf::from("actions")
        .join(dest)
        .join(format!("{file_stem}.yaml"));
    let test_rel = PathBuf::from("actions")
        .join(dest)
        .join("tests")
        .join(format!("{file_stem}.yaml"));
    for rel in [&action_rel, &test_rel] {
        if root.join(rel).exists() {
            bail!(
                "{} already exists; choose another key or edit the file",
                rel.display()
            );
        }
    }
    let dest_yaml_path = dest_dir.join("destination.yaml");
    let dest_yaml = std::fs::read_to_string(&dest_yaml_path)
        .with_context(|| format!("cannot read {}", dest_yaml_path.display()))?;
    let updated_dest_yaml = add_to_actions_list(&dest_yaml, key)?;
    let name = title_case(key);
    std::fs::write(
        root.join(&action_rel),
        action_yaml(key, &name, &file_stem, options),
    )
    .with_context(|| format!("cannot write {}", action_rel.display()))?;
    if let Some(updated) = updated_dest_yaml {
        std::fs::write(&dest_yaml_path, updated)
            .with_context(|| format!("cannot write {}", dest_yaml_path.display()))?;
    }
    let tests_dir = root.join("actions").join(dest).join("tests");
    std::fs::create_dir_all(&tests_dir)
        .with_context(|| format!("cannot create {}", tests_dir.display()))?;
    let base_url = literal_base_url(&dest_yaml_path.display().to_string(), &dest_yaml);
    std::fs::write(
        root.join(&test_rel),
        test_case_yaml(key, &file_stem, &base_url),
    )
    .with_context(|| format!("cannot write {}", test_rel.display()))?;
    Ok(Scaffolded {
        action: action_rel,
        test_case: test_rel,
    })
}

/// Appends `key` to the top-level `actions:` order list of a destination.yaml, keeping comments
/// and layout; `None` when the file has no such list (actions are then ordered by file name).
fn add_to_actions_list(text: &str, key: &str) -> Result<Option<String>> {
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines.iter().position(|line| line.starts_with("actions:")) else {
        return Ok(None);
    };
    let rest = lines[start]["actions:".len()..].trim();
    let mut out: Vec<String> = lines.iter().map(|line| (*line).to_owned()).collect();
    if rest.starts_with('[') {
        let Some(close) = out[start].rfind(']') else {
            bail!(
                "cannot add `{key}` to the flow-style actions list of destination.yaml; add it by hand"
            );
        };
        let inside = out[start][..close].trim_end().ends_with('[');
        let insert = if inside {
            key.to_owned()
        } else {
            format!(", {key}")
        };
        out[start].insert_str(close, &insert);
    } else if rest.is_empty() || rest.starts_with('#') {
        let mut last_item = None;
        let mut indent = "  ".to_owned();
        for (idx, line) in lines.iter().enumerate().skip(start + 1) {
            let trimmed = line.trim_start();
            if trimmed.starts_with("- ") {
                last_item = Some(idx);
                indent = line[..line.len() - trimmed.len()].to_owned();
            } else if trimmed.is_empty() || (trimmed.starts_with('#') && line.starts_with(' ')) {
                continue;
            } else {
                break;
            }
        }
        let at = last_item.map_or(start + 1, |idx| idx + 1);
        out.insert(at, format!("{indent}- {key}"));
    } else {
        bail!("cannot add `{key}` to the actions list of destination.yaml; add it by hand");
    }
    let mut joined = out.join("\n");
    if text.ends_with('\n') {
        joined.push('\n');
    }
    Ok(Some(joined))
}

/// Action keys are camelCase identifiers, as Segment's action slugs are.
fn check_key(key: &str) -> Result<()> {
    let mut chars = key.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_alphanumeric());
    if !valid {
        bail!("invalid action key `{key}`: expected a camelCase identifier such as `sendEvent`");
    }
    Ok(())
}

/// `sendEvent` → `Send Event`.
pub(crate) fn title_case(key: &str) -> String {
    let mut out = String::new();
    for (idx, c) in key.chars().enumerate() {
        if idx == 0 {
            out.extend(c.to_uppercase());
        } else if c.is_ascii_uppercase() {
            out.push(' ');
            out.push(c);
        } else {
            out.push(c);
        }
    }
    out
}

/// A random id in the shape of Segment's catalog ids (22 base-58 characters).
pub(crate) fn new_id() -> String {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let state = std::collections::hash_map::RandomState::new();
    let mut out = String::with_capacity(22);
    let mut n_round = 0u64;
    while out.len() < 22 {
        let mut hasher = state.build_hasher();
        hasher.write_u64(n_round);
        let mut bits = hasher.finish();
        n_round += 1;
        for _ in 0..8 {
            if out.len() == 22 {
                break;
            }
            out.push(char::from(ALPHABET[(bits % 58) as usize]));
            bits /= 58;
        }
    }
    out
}

fn action_yaml(key: &str, name: &str, file_stem: &str, options: Options) -> String {
    let beyond_segment = if options.beyond_segment {
        "# Beyond Segment: Segment's destination has no such action. It is left out of Segment's\n\
         # catalog entry and marked in the docs, and a preset for it must say `enabled: false`.\n\
         beyond_segment: true\n"
    } else {
        ""
    };
    let (switch_field, batch) = if options.batch {
        (
            format!(
                r#"  # Chooses the form per event: true gathers the event into a batch, false sends it alone.
  # Make the default true to batch unless a mapping says otherwise.
  enable_batching:
    id: {switch_id}
    label: Enable Batching
    type: boolean
    description: Whether the event is sent together with others in one request.
    default: false
"#,
                switch_id = new_id(),
            ),
            format!(
                r#"# The batch form (Segment's performBatch). Remove `request` and `enable_batching` to batch
# every event.
batch:
  # The most events one request carries (Segment's batch_size).
  max_items: 100
  # The most bytes one request body may have (Segment's batch_bytes); remove it for no limit.
  max_bytes: 1000000
  # Milliseconds a batch waits to fill after its first event before it is sent anyway.
  wait_ms: 1000
  # Fields whose values split batches (Segment's batch_keys): events share a batch only when
  # they agree on each.
  # keys: [userId]
  # One event's entry in the batch, a mapping over $.payload and $.settings ($.computed too
  # with a `hook`); without `item` the entry is the payload itself.
  item:
    user_id: {{"@path": "$.payload.userId"}}
  request:
    method: POST
    path: v1/{file_stem}/batch
    # Statuses that mean "busy, try again later", sent again without spending the retry budget.
    # busy_statuses: [409]
    # The key of the answer's JSON object whose value is logged with the delivery.
    # response_id: job_id
    # The body reads $.items, every event's entry in event order, and $.settings.
    json:
      items: {{"@path": "$.items"}}
"#
            ),
        )
    } else {
        (String::new(), String::new())
    };
    format!(
        r#"# yaml-language-server: $schema=../../schemas/action.schema.json
id: {action_id}
key: {key}
name: {name}
description: Sends one event to the destination as {name}. Describe what the action does here.
platform: cloud
default_trigger: type = "track"
{beyond_segment}fields:
  userId:
    id: {field_id}
    label: User ID
    type: string
    required: true
    description: The ID of the user the event is about.
    default: {{"@path": "$.userId"}}
{switch_field}request:
  method: POST
  path: v1/{file_stem}
  json:
    user_id: {{"@path": "$.payload.userId"}}
{batch}"#,
        action_id = new_id(),
        field_id = new_id(),
    )
}

/// The destination's base URL when it is a plain string, else Userpilot's default endpoint
/// (what its `endpoint` setting resolves to in test cases).
fn literal_base_url(name: &str, text: &str) -> String {
    let base_url = actionkit_spec::yaml::parse(name, text)
        .ok()
        .and_then(|(doc, _)| {
            doc.pointer("/request_defaults/base_url")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        });
    base_url.unwrap_or_else(|| "https://analytex.userpilot.io/".to_owned())
}

fn test_case_yaml(key: &str, file_stem: &str, base_url: &str) -> String {
    let url = format!("{}/v1/{file_stem}", base_url.trim_end_matches('/'));
    format!(
        r#"# Test cases for `{key}`: an event in, the exact request (or error) out.
# The format is described in README.md in this directory; `cargo test -p actionkit-destinations
# --test cases` runs every case. `action` runs the action's default field mappings on the event.
- name: {key} sends the mapped user id
  action: {key}
  event:
    type: track
    userId: user1234
    event: Test Event
  requests:
    - method: POST
      url: {url}
      json:
        user_id: user1234
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_names() {
        assert!(check_key("sendEvent").is_ok());
        assert!(check_key("SendEvent").is_err());
        assert!(check_key("send-event").is_err());
        assert!(check_key("").is_err());
        assert_eq!(title_case("sendEvent"), "Send Event");
        let id = new_id();
        assert_eq!(id.len(), 22);
        assert_ne!(id, new_id());
    }

    #[test]
    fn flags_go_anywhere_and_unknown_ones_are_refused() {
        let args =
            |list: &[&str]| Args::parse(&list.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>());
        assert_eq!(
            args(&["--batch", "userpilot", "sendEvent", "--beyond-segment"]),
            Ok(Args {
                dest: "userpilot".to_owned(),
                key: "sendEvent".to_owned(),
                options: Options {
                    batch: true,
                    beyond_segment: true,
                },
            })
        );
        assert_eq!(
            args(&["userpilot", "sendEvent"]).map(|a| a.options),
            Ok(Options::default())
        );
        assert!(
            args(&["userpilot"])
                .unwrap_err()
                .contains("exactly two arguments")
        );
        assert!(
            args(&["userpilot", "sendEvent", "--bulk"])
                .unwrap_err()
                .contains("unknown flag `--bulk`")
        );
    }

    #[test]
    fn every_scaffolded_action_file_is_valid() {
        for (batch, beyond_segment) in [(false, false), (true, false), (false, true), (true, true)]
        {
            let options = Options {
                batch,
                beyond_segment,
            };
            let text = action_yaml("sendEvent", "Send Event", "send_event", options);
            let doc = actionkit_spec::load_str(
                actionkit_spec::FileKind::Action,
                "send_event.yaml",
                &text,
            )
            .unwrap_or_else(|diagnostics| panic!("{options:?}:\n{diagnostics}\n{text}"));
            let actionkit_spec::Document::Action(spec) = doc else {
                panic!("an action file loads as an action");
            };
            assert_eq!(spec.beyond_segment, beyond_segment);
            assert!(spec.request.is_some());
            assert_eq!(spec.batch.is_some(), batch);
            assert_eq!(
                spec.fields
                    .contains_key(crate::codegen::docs::BATCH_SWITCH_FIELD),
                batch
            );
        }
    }

    #[test]
    fn new_keys_join_the_actions_order_list() {
        let text = "id: x\n# Order.\nactions:\n  - a\n  # note\n  - b\npresets: []\n";
        assert_eq!(
            add_to_actions_list(text, "c").unwrap().unwrap(),
            "id: x\n# Order.\nactions:\n  - a\n  # note\n  - b\n  - c\npresets: []\n"
        );
        assert_eq!(
            add_to_actions_list("actions: [a, b]\n", "c")
                .unwrap()
                .unwrap(),
            "actions: [a, b, c]\n"
        );
        assert_eq!(
            add_to_actions_list("actions: []\n", "c").unwrap().unwrap(),
            "actions: [c]\n"
        );
        assert_eq!(add_to_actions_list("id: x\n", "c").unwrap(), None);
    }

    #[test]
    fn scaffold_refuses_unknown_destinations_and_existing_files() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let err = scaffold(root, "nope", "sendEvent", Options::default()).unwrap_err();
        assert!(
            err.to_string().contains("unknown destination `nope`"),
            "{err}"
        );
        std::fs::create_dir_all(root.join("actions/demo")).unwrap();
        std::fs::write(root.join("actions/demo/destination.yaml"), "id: x\n").unwrap();
        let files = scaffold(root, "demo", "sendEvent", Options::default()).unwrap();
        assert_eq!(files.action, PathBuf::from("actions/demo/send_event.yaml"));
        assert!(root.join("actions/demo/tests/send_event.yaml").is_file());
        let err = scaffold(root, "demo", "sendEvent", Options::default()).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
    }
}
