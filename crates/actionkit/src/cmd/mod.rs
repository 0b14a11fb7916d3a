//! One module per subcommand.

pub mod auth;
pub mod console;
pub mod dlq;
pub mod map;
pub mod mock;
pub mod progress;
pub mod send;
pub mod serve;
