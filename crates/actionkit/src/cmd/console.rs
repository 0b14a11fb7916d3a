//! `actionkit console`: the web console without intake, for local work on a configuration,
//! and the console router `serve` mounts when `server.console` is configured.
//!
//! The console itself (API, page, token checks) is the `actionkit-console` crate; this module
//! builds it from the configuration's destination instances and serves it, and gives `serve`'s
//! console its queue: [`QueueOverview`] answers with the store operations of
//! `actionkit queue stats` and `actionkit dlq` and with what the workers recorded.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use actionkit_console::{
    Activity, BoxFuture, Console, ConsoleInstance, Deliveries, DlqSelection, Token,
};
use actionkit_queue::{DeliveryId, DlqFilter};
use anyhow::Context;
use clap::Args;
use serde_json::Value;

use crate::activity::ActivityLog;
use crate::cmd::dlq::{entry_json, show_json};
use crate::cmd::serve::{self, LogFormat};
use crate::setup::{self, Target, TargetArgs};
use crate::store::{EventQueue, StoreError};

/// The token variable when neither `--token-env` nor `server.console.token_env` names one.
pub const DEFAULT_TOKEN_ENV: &str = "ACTIONKIT_CONSOLE_TOKEN";

/// Serve the web console (Event Tester with real sends, mapping editor) for a configuration,
/// without intake, queue or delivery overview.
#[derive(Debug, Args)]
#[command(after_help = "Example:
  export ACTIONKIT_CONSOLE_TOKEN=$(openssl rand -hex 24)  USERPILOT_API_KEY=…
  actionkit console --config examples/serve.yaml     # then open http://127.0.0.1:8090/console")]
pub struct ConsoleArgs {
    /// The runtime configuration (`actionkit.yaml`) whose destination instances the console
    /// shows and tests against.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The address to listen on; the loopback address by default, so that only this machine
    /// reaches it.
    #[arg(long, default_value = "127.0.0.1:8090", value_name = "ADDR")]
    listen: String,
    /// The environment variable that holds the console's token (at least 16 characters);
    /// default: the configuration's `server.console.token_env`, else ACTIONKIT_CONSOLE_TOKEN.
    #[arg(long, value_name = "NAME")]
    token_env: Option<String>,
    /// The log format on standard error.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(flatten)]
    target: TargetArgs,
}

/// The console's token from the environment variable `token_env`; `file` names the
/// configuration in errors.
pub fn token(file: &Path, token_env: &str) -> anyhow::Result<Token> {
    Token::from_env(token_env)
        .with_context(|| format!("{}: cannot open the console", file.display()))
}

/// The console over `targets`, opened by `token`, without a queue.
pub fn console<'a>(
    token: Token,
    targets: impl IntoIterator<Item = &'a Target>,
) -> anyhow::Result<Console> {
    let instances = targets
        .into_iter()
        .map(|target| ConsoleInstance {
            name: target.name.clone(),
            instance: Arc::clone(&target.instance),
            client: Arc::clone(&target.client),
        })
        .collect();
    Ok(Console::new(setup::registry()?, instances, token))
}

/// The queue side of `serve`'s console: the queue's stats and dead-letter queue, read and
/// changed through the same store `actionkit queue stats` and `actionkit dlq` use, and what
/// this process's workers recorded.
pub struct QueueOverview {
    /// The queue.
    pub queue: EventQueue,
    /// The names of the instances delivered to.
    pub names: Vec<String>,
    /// What the workers decided.
    pub activity: Arc<ActivityLog>,
}

/// Logs a store error for the console (the answer only says that the log has it).
fn logged(what: &'static str) -> impl FnOnce(StoreError) -> String {
    move |err| {
        tracing::warn!(error = %err, action = what, "A console call on the queue failed.");
        err.to_string()
    }
}

fn store_selection(selection: DlqSelection) -> actionkit_queue::DlqSelection {
    match selection {
        DlqSelection::Ids(ids) => {
            actionkit_queue::DlqSelection::Ids(ids.into_iter().map(DeliveryId).collect())
        }
        DlqSelection::Instance(name) => actionkit_queue::DlqSelection::Destination(name),
    }
}

impl Deliveries for QueueOverview {
    fn stats(&self) -> BoxFuture<'_, Result<Value, String>> {
        Box::pin(async move {
            let stats = self
                .queue
                .stats(&self.names)
                .await
                .map_err(logged("queue stats"))?;
            serde_json::to_value(stats).map_err(|err| err.to_string())
        })
    }

    fn activity(&self) -> Activity {
        self.activity.activity(SystemTime::now())
    }

    fn dlq_list(
        &self,
        instance: Option<String>,
        message_id: Option<String>,
        limit: u32,
        offset: u64,
    ) -> BoxFuture<'_, Result<Vec<Value>, String>> {
        Box::pin(async move {
            let filter = DlqFilter {
                destination: instance,
                message_id,
            };
            let entries = self
                .queue
                .dlq_list(filter, limit, offset)
                .await
                .map_err(logged("dlq list"))?;
            Ok(entries.iter().map(entry_json).collect())
        })
    }

    fn dlq_show(&self, id: i64) -> BoxFuture<'_, Result<Option<Value>, String>> {
        Box::pin(async move {
            let item = self
                .queue
                .dlq_get(DeliveryId(id))
                .await
                .map_err(logged("dlq show"))?;
            Ok(item.as_ref().map(show_json))
        })
    }

    fn dlq_replay(&self, selection: DlqSelection) -> BoxFuture<'_, Result<u64, String>> {
        Box::pin(async move {
            let n = self
                .queue
                .dlq_replay(store_selection(selection))
                .await
                .map_err(logged("dlq replay"))?;
            tracing::info!(replayed = n, "Dead letters replayed from the console.");
            Ok(n)
        })
    }

    fn dlq_purge(&self, selection: DlqSelection) -> BoxFuture<'_, Result<u64, String>> {
        Box::pin(async move {
            let n = self
                .queue
                .dlq_purge(store_selection(selection))
                .await
                .map_err(logged("dlq purge"))?;
            tracing::info!(purged = n, "Dead letters purged from the console.");
            Ok(n)
        })
    }
}

/// Runs the command until a termination signal.
pub fn run(args: ConsoleArgs) -> anyhow::Result<ExitCode> {
    serve::init_logging(args.log_format);
    let token_env = match args.token_env {
        Some(name) => name,
        None => serve::console_section(&args.config)?
            .map_or_else(|| DEFAULT_TOKEN_ENV.to_owned(), |c| c.token_env),
    };
    let listen: SocketAddr = args.listen.parse().with_context(|| {
        format!(
            "--listen '{}' is not an address such as 127.0.0.1:8090",
            args.listen
        )
    })?;
    // The token first: without it nothing else is worth loading.
    let token = token(&args.config, &token_env)?;
    let targets = setup::from_config_file(&args.config, &args.target)?;
    let app = actionkit_console::router(console(token, &targets)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener
            .local_addr()
            .context("cannot read the listening address")?;
        let stop = serve::termination();
        tracing::info!(
            addr = %addr,
            console = %format!("http://{addr}/console"),
            token_env = %token_env,
            "Listening."
        );
        axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .into_future()
            .await
            .context("the HTTP server failed")?;
        tracing::info!("Stopped.");
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
