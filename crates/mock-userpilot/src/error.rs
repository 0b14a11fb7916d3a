//! Errors that stop the mock server from starting or running.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::ConfigError;

/// Why the mock server could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    /// The configuration is unusable.
    #[error("invalid mock configuration: {0}")]
    Config(#[from] ConfigError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The record file could not be opened for appending.
    #[error("cannot open record file {}: {source}", path.display())]
    Record {
        /// The file asked for.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The state file could not be written when the server stopped.
    #[error("cannot write the state file {}: {source}", path.display())]
    StateFile {
        /// The file asked for.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The server task ended abnormally (it panicked or was cancelled).
    #[error("the mock server task failed: {0}")]
    Task(String),
}
