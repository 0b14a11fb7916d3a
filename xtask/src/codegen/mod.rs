//! `cargo codegen`: turn `actions/<dest>/` into every generated artifact.
//!
//! Validation runs first (the same loading `cargo xtask validate` does); then, for every
//! destination, the generators produce its Rust module ([`rust`]), docs page ([`docs`]) and
//! catalog entry, with a listing of its beyond-Segment actions when it has any ([`catalog`]),
//! plus the registry module and the JSON Schemas of the YAML ([`schemas`]). [`crate::fs::sync`]
//! writes them, or in check mode (`cargo codegen --check`) fails with the list of stale files and
//! the command to run.

use std::path::Path;

use anyhow::Result;

use crate::fs::{self, GeneratedFile, Mode, OwnedDir, StaleError};

pub mod catalog;
pub mod docs;
pub mod from_spec;
pub mod model;
pub mod names;
pub mod rust;
pub mod schemas;

/// Directories that hold only generated files (obsolete ones there are reported and removed).
pub const OWNED_DIRS: &[OwnedDir] = &[
    OwnedDir {
        dir: rust::GENERATED_DIR,
        suffix: ".rs",
    },
    OwnedDir {
        dir: "docs/destinations",
        suffix: ".md",
    },
    OwnedDir {
        dir: "catalog",
        suffix: ".yml",
    },
    OwnedDir {
        dir: "schemas",
        suffix: ".schema.json",
    },
];

/// Runs the code generator over the repository at `root`.
pub fn run(root: &Path, mode: Mode) -> Result<()> {
    let dests = from_spec::load_all(root)?;
    let files = generate(&dests)?;
    let report = fs::sync(root, &files, OWNED_DIRS, mode)?;
    match mode {
        Mode::Check if !report.is_fresh() => Err(StaleError {
            stale: report.stale,
        }
        .into()),
        Mode::Check => {
            println!("{} generated files are up to date", report.n_files);
            Ok(())
        }
        Mode::Write => {
            for (path, why) in &report.stale {
                println!("updated {} ({why})", path.display());
            }
            println!(
                "{} generated files, {} updated",
                report.n_files,
                report.stale.len()
            );
            Ok(())
        }
    }
}

/// Generates every file for `dests` (already loaded and validated); pure, no IO.
pub fn generate(dests: &[model::Destination]) -> Result<Vec<GeneratedFile>> {
    let mut files = Vec::new();
    for dest in dests {
        let module = rust::module_name(dest);
        files.push(GeneratedFile::new(
            format!("{}/{module}.rs", rust::GENERATED_DIR),
            rust::destination_module(dest)?,
        ));
        files.push(GeneratedFile::new(
            docs::page_path(dest),
            docs::render_page(dest)?,
        ));
        // A destination without catalog metadata is not published in Segment's catalog.
        if dest.catalog.is_none() {
            continue;
        }
        let entry = catalog::catalog_entry(dest);
        files.push(GeneratedFile::new(
            catalog::catalog_path(dest),
            catalog::render_yaml(&entry)?,
        ));
        if let Some(listing) = catalog::beyond_segment_entry(dest) {
            files.push(GeneratedFile::new(
                catalog::beyond_segment_path(dest),
                catalog::render_beyond_segment_yaml(dest, &listing)?,
            ));
        }
    }
    files.push(GeneratedFile::new(
        format!("{}/mod.rs", rust::GENERATED_DIR),
        rust::registry_module(dests)?,
    ));
    files.extend(schemas::schema_files()?);
    Ok(files)
}
