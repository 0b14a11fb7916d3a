//! Development tasks for actionkit: code generation, validation, scaffolding and the test run.
//!
//! This crate is the only code that writes into the repository. Each task is a module:
//! [`codegen`] turns `actions/<dest>/` into Rust handlers, docs pages, catalog entries and JSON
//! Schemas; [`validate`] loads every destination and prints all diagnostics; [`new_action`]
//! scaffolds an action and
//! [`new_destination`] a whole destination; [`test`] installs what the end-to-end tests need and runs every test.
//! [`fs`] writes generated files or checks that the committed ones are fresh.

use std::path::{Path, PathBuf};

pub mod codegen;
pub mod fs;
pub mod new_action;
pub mod new_destination;
pub mod segment_diff;
pub mod test;
pub mod validate;

/// The repository root: the parent of this crate's directory.
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}
