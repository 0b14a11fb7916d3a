//! The web console of actionkit: a JSON API under `/console/api` and the page under
//! `/console` that uses it.
//!
//! The console is a thin layer over the engines the CLI uses, with no logic of its own that
//! the CLI lacks: destinations and their fields come from the generated model
//! (`runtime::destination`), the Event Tester is [`Instance::trace`] (the dry run of
//! `send --dry-run`, one step at a time), the mapping editor compiles triggers with `fql` and
//! mappings with `mapping`, and every request shown is redacted by provenance
//! ([`Instance::redact`]). Under `serve` the delivery overview and the dead-letter queue are
//! read and changed through [`Deliveries`], which `serve` implements with the same store
//! operations `actionkit queue stats` and `actionkit dlq` use and the counts its workers keep.
//! The page is plain HTML, JavaScript and CSS embedded in the binary (`assets`), with no
//! framework and no build step.
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
mod dlq;
mod overview;
mod send;
mod tester;
mod yaml;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actionkit_runtime::delivery::DeliveryClient;
use actionkit_runtime::destination::Registry;
use actionkit_runtime::dispatch::Instance;

pub use auth::{MIN_TOKEN_CHARS, Token, TokenError};
pub use dlq::DlqSelection;
pub use overview::{
    ActionActivity, Activity, Counts, FailureOutcome, InstanceActivity, RecentFailure, Windows,
};

/// One configured destination instance the console shows and tests events against.
#[derive(Debug, Clone)]
pub struct ConsoleInstance {
    /// The instance's name in the configuration.
    pub name: String,
    /// The compiled instance (settings, mappings).
    pub instance: Arc<Instance>,
    /// The instance's delivery client, for the Event Tester's real send: under `serve` the
    /// one its worker delivers with, so that a send shares the instance's rate limits.
    pub client: Arc<DeliveryClient>,
}

/// A future the queue side of the console returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the delivery overview and the dead-letter queue come from: the queue `serve`
/// delivers from, behind the same store abstraction `actionkit queue stats` and
/// `actionkit dlq` use, and what its workers decided.
///
/// Every error is logged by the implementation and only said to be there in the answer (a
/// `503`); it must not carry secrets either way.
pub trait Deliveries: Send + Sync {
    /// The queue's counts, by instance and state, as JSON (what `actionkit queue stats`
    /// prints).
    fn stats(&self) -> BoxFuture<'_, Result<serde_json::Value, String>>;

    /// What the workers of this process decided over the last hour and day, and the recent
    /// failures.
    fn activity(&self) -> Activity;

    /// Dead-lettered deliveries, oldest first, each as one line of `actionkit dlq list`
    /// prints it: of `instance` only, or of the event `message_id` only, when given.
    fn dlq_list(
        &self,
        instance: Option<String>,
        message_id: Option<String>,
        limit: u32,
        offset: u64,
    ) -> BoxFuture<'_, Result<Vec<serde_json::Value>, String>>;

    /// One dead-lettered delivery with its event, as `actionkit dlq show` prints it; `None`
    /// when it is not in the dead-letter queue.
    fn dlq_show(&self, id: i64) -> BoxFuture<'_, Result<Option<serde_json::Value>, String>>;

    /// Returns the selected dead letters to delivery (`actionkit dlq replay`); how many.
    fn dlq_replay(&self, selection: DlqSelection) -> BoxFuture<'_, Result<u64, String>>;

    /// Deletes the selected dead letters for good (`actionkit dlq purge`); how many.
    fn dlq_purge(&self, selection: DlqSelection) -> BoxFuture<'_, Result<u64, String>>;
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
