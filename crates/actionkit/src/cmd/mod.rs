//! One module per subcommand.

pub mod auth;
pub mod map;
pub mod mock;
pub mod send;
