//! The web console of actionkit: a JSON API under `/console/api` and the page under
//! `/console` that uses it.
//!
//! The console is a thin layer over the engines the CLI uses, with no logic of its own that
//! the CLI lacks: destinations and their fields come from the generated model
//! (`runtime::destination`), the Event Tester is [`Instance::trace`] (the dry run of
//! `send --dry-run`, one step at a time), the mapping editor compiles triggers with `fql` and
//! mappings with `mapping`, and every request shown is redacted by provenance
//! ([`Instance::redact`]). The page is plain HTML, JavaScript and CSS embedded in the binary
//! (`assets`), with no framework and no build step.
//!
//! Security (see `auth`): every API call needs the console's token in a header, which a
//! cross-site form cannot send; calls that change anything are `POST` with a JSON body, and
//! are refused when the browser says they come from another site. No secret setting leaves
//! the server: settings are masked and requests redacted.
//!
//! ```no_run
//! # fn demo(registry: actionkit_runtime::destination::Registry) -> Result<(), actionkit_console::TokenError> {
//! let token = actionkit_console::Token::new("a-long-random-console-token", "ACTIONKIT_CONSOLE_TOKEN")?;
//! let app: axum::Router = actionkit_console::router(actionkit_console::Console::new(registry, Vec::new(), token));
//! # Ok(()) }
//! ```

mod api;
mod assets;
mod auth;
mod describe;
mod tester;
mod yaml;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actionkit_runtime::destination::Registry;
use actionkit_runtime::dispatch::Instance;

pub use auth::{MIN_TOKEN_CHARS, Token, TokenError};

/// One configured destination instance the console shows and tests events against.
#[derive(Debug, Clone)]
pub struct ConsoleInstance {
    /// The instance's name in the configuration.
    pub name: String,
    /// The compiled instance (settings, mappings).
    pub instance: Arc<Instance>,
}

/// A future the queue side of the console returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the delivery overview comes from: the queue `serve` delivers from, behind the same
/// store abstraction `actionkit queue stats` and `actionkit dlq` use.
pub trait Deliveries: Send + Sync {
    /// The queue's counts, by instance and state, as JSON (what `actionkit queue stats`
    /// prints). The error is logged by the implementation and must not carry secrets.
    fn stats(&self) -> BoxFuture<'_, Result<serde_json::Value, String>>;
}

/// Everything the console serves: the generated destinations, the configured instances,
/// the queue when there is one, and the token that opens the API.
pub struct Console {
    registry: Registry,
    instances: Vec<ConsoleInstance>,
    deliveries: Option<Arc<dyn Deliveries>>,
    token: Token,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("instances", &self.instances)
            .field("deliveries", &self.deliveries.is_some())
            .finish_non_exhaustive()
    }
}

impl Console {
    /// A console over `registry` and `instances`, opened by `token`.
    pub fn new(registry: Registry, instances: Vec<ConsoleInstance>, token: Token) -> Console {
        Console {
            registry,
            instances,
            deliveries: None,
            token,
        }
    }

    /// The console with a delivery overview read from `deliveries`.
    pub fn with_deliveries(mut self, deliveries: Arc<dyn Deliveries>) -> Console {
        self.deliveries = Some(deliveries);
        self
    }

    fn instance(&self, name: &str) -> Option<&ConsoleInstance> {
        self.instances.iter().find(|i| i.name == name)
    }
}

/// The console's routes: the page under `/console` and the API under `/console/api`. Merge it
/// into another router (it has no fallback of its own).
pub fn router(console: Console) -> axum::Router {
    api::router(Arc::new(console))
}
