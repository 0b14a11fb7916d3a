//! `cargo xtask validate`: load every destination and print every diagnostic.
//!
//! It exits non-zero when any file has a problem. `cargo codegen` runs the same loading first and
//! generates nothing when it fails.

use std::path::Path;

use anyhow::Result;

use crate::codegen::from_spec;

/// Validates every destination under `root/actions`.
pub fn run(root: &Path) -> Result<()> {
    let dests = from_spec::load_all(root)?;
    let n_actions: usize = dests.iter().map(|dest| dest.actions.len()).sum();
    println!(
        "{} destination(s) and {n_actions} action(s) are valid",
        dests.len()
    );
    Ok(())
}
