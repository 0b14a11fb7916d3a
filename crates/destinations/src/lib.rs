//! The destination handlers: generated modules plus the few hand-written hooks they call.
//!
//! [`generated`] is written by `cargo codegen` from `actions/<dest>/` and never edited by hand; a
//! test in xtask fails when it is stale. [`hooks`] holds the named Rust hooks that action YAML
//! files refer to (`request.hook`), typed against the generated payload structs.

// The generated files are printed by prettyplease, byte-stable without rustfmt; rustfmt would
// only fight it, so it leaves them alone.
#[rustfmt::skip]
pub mod generated;
pub mod hooks;

pub use generated::{DESTINATIONS, registry};
