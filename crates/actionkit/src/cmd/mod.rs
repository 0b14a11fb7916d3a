//! One module per subcommand.

pub mod auth;
pub mod dlq;
pub mod map;
pub mod mock;
pub mod send;
pub mod serve;
