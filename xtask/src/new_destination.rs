//! `cargo xtask new-destination <slug>`: scaffold a minimal, valid destination.
//!
//! It writes `actions/<dir>/destination.yaml` (an API-key setting, request defaults with a base
//! URL and an authorization header, one preset) and, through [`crate::new_action`], one action
//! `sendEvent` with its test case. `<dir>` is the slug without a leading `actions-`, dashes
//! becoming underscores (`actions-acme-cloud` → `actions/acme_cloud/`). Everything is valid as
//! written: `cargo codegen` right after scaffolding generates a handler that builds, and
//! `actionkit send --dry-run --config` with an instance of the new slug shows its requests.
//!
//! Ids: Segment's catalog gives every destination, action and field a stable id, which its UI
//! and API use to refer to them across renames. actionkit only carries them into the catalog
//! export, so the scaffold generates random ids in Segment's shape (22 base-58 characters);
//! keep them once chosen. The `catalog:` block is left out: it is only needed to publish the
//! destination in Segment's catalog, and without it no catalog entry is generated.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::new_action::{self, new_id, title_case};

/// The files [`scaffold`] wrote, relative to the repository root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scaffolded {
    /// The destination directory.
    pub dir: PathBuf,
    /// `destination.yaml`.
    pub destination: PathBuf,
    /// The action and its test case.
    pub action: new_action::Scaffolded,
}

/// The key of the action every new destination starts with.
pub const FIRST_ACTION: &str = "sendEvent";

/// Scaffolds the destination and prints what to do next.
pub fn run(root: &Path, slug: &str) -> Result<()> {
    let files = scaffold(root, slug)?;
    println!("created {}", files.destination.display());
    println!("created {}", files.action.action.display());
    println!("created {}", files.action.test_case.display());
    println!(
        "next: set base_url, settings and the request in {}, then run `cargo codegen`",
        files.dir.display()
    );
    Ok(())
}

/// The directory name under `actions/` of a destination slug.
pub fn dir_name(slug: &str) -> String {
    slug.strip_prefix("actions-")
        .unwrap_or(slug)
        .replace('-', "_")
}

/// Writes the destination under `root`; fails rather than overwrite an existing directory.
pub fn scaffold(root: &Path, slug: &str) -> Result<Scaffolded> {
    let valid = slug.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !slug.ends_with('-');
    if !valid {
        bail!(
            "invalid destination slug `{slug}`: expected lower-case letters, digits and dashes, such as actions-acme-cloud"
        );
    }
    let dir_name = dir_name(slug);
    if dir_name.is_empty() {
        bail!("invalid destination slug `{slug}`: it names no directory");
    }
    let dir = PathBuf::from("actions").join(&dir_name);
    if root.join(&dir).exists() {
        bail!(
            "{} already exists; choose another slug or edit it",
            dir.display()
        );
    }
    std::fs::create_dir_all(root.join(&dir))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let destination = dir.join("destination.yaml");
    let title = title_case(&dir_name.replace('_', " "));
    std::fs::write(root.join(&destination), destination_yaml(slug, &title))
        .with_context(|| format!("cannot write {}", destination.display()))?;
    let action = new_action::scaffold(
        root,
        &dir_name,
        FIRST_ACTION,
        new_action::Options::default(),
    )?;
    Ok(Scaffolded {
        dir,
        destination,
        action,
    })
}

/// The base URL a new destination starts with; replace it with the destination's API.
pub const EXAMPLE_BASE_URL: &str = "https://api.example.com/";

fn destination_yaml(slug: &str, title: &str) -> String {
    format!(
        r#"# yaml-language-server: $schema=../../schemas/destination.schema.json
# Ids: Segment's catalog gives every destination, action and field a stable id that its UI and
# API refer to them by. `cargo xtask new-destination` and `new-action` generated these at random
# in Segment's shape; actionkit only exports them in the catalog entry. Keep them once chosen.
id: {id}
name: {title} (Actions)
display_name: {title} (Actions)
slug: {slug}
mode: cloud
description: Sends Segment events to {title}. Describe what the destination does here.
# A `catalog:` block (website, logo, categories, …) is only needed to publish the destination in
# Segment's catalog; without it no catalog entry is generated (see actions/userpilot for one).
settings:
  apiKey:
    label: API Key
    type: password
    required: true
    description: The API key every request is authenticated with.
request_defaults:
  # Request paths are joined onto this with one slash. A mapping over settings works too, e.g.
  # {{"@template": "https://{{{{settings.region}}}}.api.example.com/"}}. A request may also give an
  # absolute `url` instead of a `path` (a string, or a mapping over settings and payload).
  base_url: {base_url}
  headers:
    authorization: {{"@template": "Bearer {{{{settings.apiKey}}}}"}}
    content-type: application/json
# The order of the actions in the docs page (and the catalog entry).
actions:
# The mappings an instance built from presets runs.
presets:
  - name: Send Event
    action: {action}
    trigger: type = "track"
    mapping: defaults
"#,
        id = new_id(),
        base_url = EXAMPLE_BASE_URL,
        action = FIRST_ACTION,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_names_drop_the_actions_prefix() {
        assert_eq!(dir_name("actions-acme-cloud"), "acme_cloud");
        assert_eq!(dir_name("webhooks"), "webhooks");
    }

    #[test]
    fn scaffold_refuses_bad_slugs_and_existing_directories() {
        let tmp = tempfile::tempdir().unwrap();
        for slug in ["", "Acme", "acme_cloud", "acme-", "-acme"] {
            assert!(scaffold(tmp.path(), slug).is_err(), "{slug}");
        }
        let files = scaffold(tmp.path(), "actions-acme").unwrap();
        assert_eq!(files.dir, PathBuf::from("actions/acme"));
        let err = scaffold(tmp.path(), "actions-acme").unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
    }
}
