//! The Rust model of a destination's YAML (`actions/<dest>/*.yaml`), its JSON Schema, and a
//! loader that reports every problem at once with file, line, column and JSON pointer.
//!
//! Loading runs four steps per file: YAML is parsed into JSON while keeping the position of every
//! node ([`yaml`]); the JSON is validated against the schema generated from [`model`]
//! ([`schema_check`]); it is deserialized into the model; semantic checks then look at what a
//! schema cannot express (mapping-kit, FQL, references between files). Every problem becomes a
//! [`Diagnostic`]; the loader returns all of them together as [`Diagnostics`].
//!
//! This crate does no network IO and no async; the only file system access is in
//! [`load_destination_dir`], which reads one directory.

pub mod config;
pub mod diagnostics;
pub mod load;
pub mod model;
pub mod schema;
pub mod schema_check;
mod semantic;
pub mod yaml;

pub use config::{LoadedConfig, config_schema, load_config_str, load_destinations_config_str};
pub use diagnostics::{Diagnostic, Diagnostics, Pos};
pub use load::{
    Document, HookFunctions, LoadedAction, LoadedDestination, SourceFile, load_destination_dir,
    load_destination_dir_with_hooks, load_files, load_files_with_hooks, load_str,
};
pub use schema::{action_schema, destination_schema};
pub use schema_check::FileKind;
