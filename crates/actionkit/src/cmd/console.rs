//! `actionkit console`: the web console without intake, for local work on a configuration,
//! and the console router `serve` mounts when `server.console` is configured.
//!
//! The console itself (API, page, token checks) is the `actionkit-console` crate; this module
//! only builds it from the configuration's destination instances and serves it.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use actionkit_console::{BoxFuture, Console, ConsoleInstance, Deliveries, Token};
use anyhow::Context;
use clap::Args;

use crate::cmd::serve::{self, LogFormat};
use crate::setup::{self, Target, TargetArgs};
use crate::store::EventQueue;

/// The token variable when neither `--token-env` nor `server.console.token_env` names one.
pub const DEFAULT_TOKEN_ENV: &str = "ACTIONKIT_CONSOLE_TOKEN";

/// Serve the web console (Event Tester, mapping editor) for a configuration, without intake.
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
pub fn console(token: Token, targets: &[Target]) -> anyhow::Result<Console> {
    let instances = targets
        .iter()
        .map(|target| ConsoleInstance {
            name: target.name.clone(),
            instance: Arc::clone(&target.instance),
        })
        .collect();
    Ok(Console::new(setup::registry()?, instances, token))
}

/// The delivery overview of `serve`: the queue's stats for the configured instances, read
/// through the same store `actionkit queue stats` uses.
pub struct QueueOverview {
    /// The queue.
    pub queue: EventQueue,
    /// The names of the instances delivered to.
    pub names: Vec<String>,
}

impl Deliveries for QueueOverview {
    fn stats(&self) -> BoxFuture<'_, Result<serde_json::Value, String>> {
        Box::pin(async move {
            let stats = self.queue.stats(&self.names).await.map_err(|err| {
                tracing::warn!(error = %err, "Reading queue stats for the console failed.");
                err.to_string()
            })?;
            serde_json::to_value(stats).map_err(|err| err.to_string())
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
