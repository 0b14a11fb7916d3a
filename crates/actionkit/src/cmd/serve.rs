//! `actionkit serve`: the Segment-compatible HTTP intake, the durable queue and the delivery
//! workers in one process.
//!
//! Intake answers a sender only after the queue has committed its events (see
//! `docs/guarantees.md`); one worker per destination instance drains the queue (see `worker`).
//! Intake and delivery run on separate async runtimes, delivery's at a lower thread priority
//! (see [`lower_thread_priority`]).
//! SIGTERM or SIGINT stops accepting requests, lets requests and deliveries in flight finish
//! within `--shutdown-timeout`, and exits; rows still in flight then are delivered after the
//! next start.

use std::future::IntoFuture;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use actionkit_intake::{
    BoxFuture, Cors, EventSink, IntakeConfig, IntakeState, MetricsRegistry, NormalizedEvent,
    NotNow, PublicUrl, SinkError,
};
use actionkit_queue::{CommitInfo, CommitObserver, NewEvent, Queue, QueueConfig, QueueStats};
use actionkit_runtime::delivery::Backoff;
use actionkit_spec::config::{ConsoleSettings, QueueBackend, ServerConfig};
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use tokio::sync::{Notify, watch};

use crate::activity::ActivityLog;
use crate::cluster;
use crate::setup::{self, Target, TargetArgs};
use crate::store::{EventQueue, StoreError};
use crate::worker::{self, WorkerConfig};

/// Serve the HTTP intake and deliver what it accepts.
#[derive(Debug, Args)]
#[command(after_help = "Example:
  WRITE_KEY=… USERPILOT_API_KEY=… actionkit serve --config actionkit.yaml")]
pub struct ServeArgs {
    /// The runtime configuration (`actionkit.yaml`) with a `server` section.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The log format on standard error.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Seconds to let requests and deliveries in flight finish after SIGTERM or SIGINT.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    shutdown_timeout: f64,
    #[command(flatten)]
    target: TargetArgs,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The queue sink: stores a request's events for every destination instance, then wakes the
/// workers.
struct QueueSink {
    queue: EventQueue,
    destinations: Vec<String>,
    wake: Vec<Arc<Notify>>,
    closing: Arc<AtomicBool>,
    /// Per destination instance, whether its delivery worker is running.
    running: Vec<Arc<AtomicBool>>,
    /// Records each store write in the commit metrics, where the store does not itself (the
    /// SQLite writer has its own observer).
    commits: Option<CommitObserver>,
}

/// How long `/readyz` reports the queue full after its bound last turned a request away (unless a
/// commit has stored everything since): long enough for a load balancer's probe to see it, short
/// enough that an instance nobody sends to any more comes back once deliveries made room.
const FULL_NOT_READY: Duration = Duration::from_secs(5);

/// Marks a delivery worker running while it lives; dropped when the worker returns or panics.
struct Running(Arc<AtomicBool>);

impl Running {
    fn start(flag: &Arc<AtomicBool>) -> Running {
        flag.store(true, Ordering::Relaxed);
        Running(Arc::clone(flag))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

impl EventSink for QueueSink {
    fn enqueue(&self, events: Vec<NormalizedEvent>) -> BoxFuture<'_, Result<(), SinkError>> {
        let batch: Vec<NewEvent> = events
            .into_iter()
            .map(|event| NewEvent::new(event.message_id, event.json.into_bytes()))
            .collect();
        Box::pin(async move {
            let started = std::time::Instant::now();
            let n = batch.len();
            let stored = self.queue.enqueue(batch, &self.destinations).await;
            if let Some(observe) = &self.commits {
                observe(&CommitInfo {
                    requests: 1,
                    events: if stored.is_ok() { n } else { 0 },
                    committed: stored.is_ok(),
                    took: started.elapsed(),
                    waited: Duration::ZERO,
                });
            }
            stored.map_err(sink_error)?;
            for wake in &self.wake {
                wake.notify_one();
            }
            Ok(())
        })
    }

    /// Not ready while shutting down, while the queue's bound turns requests away, and while
    /// JetStream cannot be reached (so a load balancer sends requests to another instance).
    fn readiness(&self) -> Result<(), NotNow> {
        if self.closing.load(Ordering::Relaxed) {
            return Err(NotNow {
                reason: "shutting_down",
                detail: "the server is shutting down".to_owned(),
                retry_after_secs: None,
            });
        }
        self.queue
            .readiness(FULL_NOT_READY)
            .map_err(|(reason, detail, secs)| NotNow {
                reason,
                detail,
                retry_after_secs: secs.map(|secs| u32::try_from(secs).unwrap_or(u32::MAX)),
            })
    }

    /// Unhealthy when a delivery worker stopped outside a shutdown: its events would wait in the
    /// queue until the process restarts, which is what a failing `/healthz` asks for.
    fn health(&self) -> Result<(), NotNow> {
        if self.closing.load(Ordering::Relaxed) {
            return Ok(());
        }
        let stopped: Vec<&str> = self
            .destinations
            .iter()
            .zip(&self.running)
            .filter(|(_, running)| !running.load(Ordering::Relaxed))
            .map(|(name, _)| name.as_str())
            .collect();
        if stopped.is_empty() {
            return Ok(());
        }
        Err(NotNow {
            reason: "delivery_stopped",
            detail: format!(
                "the delivery worker of {} stopped; its events wait in the queue until a restart",
                stopped.join(", ")
            ),
            retry_after_secs: None,
        })
    }

    fn full_hint(&self) -> Option<u32> {
        self.queue
            .full_hint()
            .map(|secs| u32::try_from(secs).unwrap_or(u32::MAX))
    }
}

/// Stored deliveries by `destination` and `state` (`pending`, `retry_scheduled`, `in_flight`,
/// `dead_lettered`): the queue depth.
pub const QUEUE_DELIVERIES: &str = "actionkit_queue_deliveries";
/// Age in seconds of the oldest event not yet delivered nor dead-lettered, by `destination`
/// (0 when there is none).
pub const QUEUE_OLDEST_PENDING_AGE: &str = "actionkit_queue_oldest_pending_age_seconds";
/// Stored events, live and dead-lettered (what `server.queue.max_events` bounds).
pub const QUEUE_EVENTS: &str = "actionkit_queue_events";
/// Stored bytes (what `server.queue.max_bytes` bounds).
pub const QUEUE_BYTES: &str = "actionkit_queue_bytes";
/// The configured bound on stored events.
pub const QUEUE_MAX_EVENTS: &str = "actionkit_queue_max_events";
/// The configured bound on stored bytes.
pub const QUEUE_MAX_BYTES: &str = "actionkit_queue_max_bytes";
/// WAL checkpoints that failed since the queue was opened.
pub const QUEUE_CHECKPOINT_FAILURES: &str = "actionkit_queue_checkpoint_failures";
/// Remembered parts of what was delivered to each record (what `send_only_changes` skips by).
pub const QUEUE_FINGERPRINTS: &str = "actionkit_queue_fingerprints";
/// 1 while this node is connected to NATS JetStream, else 0 (only with `backend: jetstream`).
pub const QUEUE_JETSTREAM_CONNECTED: &str = "actionkit_queue_jetstream_connected";
/// Delivery requests waiting for a rate limit right now, by `destination` and `limit`.
pub const RATE_LIMIT_WAITING: &str = "actionkit_delivery_rate_limit_waiting";
/// Seconds, since the server started, during which at least one delivery request of
/// `destination` waited for rate limit `limit` (wall clock; it only grows).
pub const RATE_LIMIT_WAITED: &str = "actionkit_delivery_rate_limit_waited_seconds";

/// How often the queue gauges are refreshed: counting rows scans the deliveries table, so they
/// are read on a timer rather than on every scrape.
pub const QUEUE_GAUGES_EVERY: Duration = Duration::from_secs(5);

/// Group commits of the queue's writer, by `outcome` (`committed` or `failed`); on JetStream,
/// the publishes of one intake request, acknowledged together.
pub const QUEUE_COMMITS_TOTAL: &str = "actionkit_queue_commits_total";
/// Events written per group commit.
pub const QUEUE_COMMIT_EVENTS_TOTAL: &str = "actionkit_queue_committed_events_total";
/// Time a group commit's transaction took, fsync included, in seconds.
pub const QUEUE_COMMIT_DURATION: &str = "actionkit_queue_commit_duration_seconds";
/// Time the oldest request of a group commit waited before its transaction began, in seconds.
pub const QUEUE_COMMIT_WAIT: &str = "actionkit_queue_commit_wait_seconds";

/// Records each group commit of the queue's writer in `metrics`; the handles are registered
/// once, so the writer thread only updates atomics.
fn commit_observer(metrics: &MetricsRegistry) -> CommitObserver {
    let committed = metrics.counter(QUEUE_COMMITS_TOTAL, &[("outcome", "committed")]);
    let failed = metrics.counter(QUEUE_COMMITS_TOTAL, &[("outcome", "failed")]);
    let events = metrics.counter(QUEUE_COMMIT_EVENTS_TOTAL, &[]);
    let duration = metrics.histogram(QUEUE_COMMIT_DURATION, &[]);
    let wait = metrics.histogram(QUEUE_COMMIT_WAIT, &[]);
    Arc::new(move |info: &CommitInfo| {
        if info.committed {
            committed.increment(1);
        } else {
            failed.increment(1);
        }
        events.increment(info.events as u64);
        duration.record(info.took.as_secs_f64());
        wait.record(info.waited.as_secs_f64());
    })
}

/// Sets the queue gauges from a stats snapshot.
fn record_queue_stats(metrics: &MetricsRegistry, stats: &QueueStats) {
    for (name, value) in [
        (QUEUE_EVENTS, stats.events_stored),
        (QUEUE_BYTES, stats.bytes_stored),
        (QUEUE_MAX_EVENTS, stats.max_events),
        (QUEUE_MAX_BYTES, stats.max_bytes),
        (QUEUE_CHECKPOINT_FAILURES, stats.checkpoint_failures),
        (QUEUE_FINGERPRINTS, stats.fingerprints_stored),
    ] {
        metrics.gauge(name, &[]).set(value as f64);
    }
    for d in &stats.destinations {
        let name = d.destination.as_str();
        for (state, n) in [
            ("pending", d.pending),
            ("retry_scheduled", d.retry_scheduled),
            ("in_flight", d.in_flight),
            ("dead_lettered", d.dead_lettered),
        ] {
            metrics
                .gauge(QUEUE_DELIVERIES, &[("destination", name), ("state", state)])
                .set(n as f64);
        }
        metrics
            .gauge(QUEUE_OLDEST_PENDING_AGE, &[("destination", name)])
            .set(d.oldest_pending_age_ms.map_or(0.0, |ms| ms as f64 / 1e3));
    }
}

/// Sets the rate-limit gauges from each destination instance's limiter.
fn record_rate_limit_stats(metrics: &MetricsRegistry, targets: &[Arc<Target>]) {
    for target in targets {
        for stats in target.client.rate_limiter().stats() {
            let labels = [
                ("destination", target.name.as_str()),
                ("limit", stats.key.as_str()),
            ];
            metrics
                .gauge(RATE_LIMIT_WAITING, &labels)
                .set(stats.waiting as f64);
            metrics
                .gauge(RATE_LIMIT_WAITED, &labels)
                .set(stats.waited.as_secs_f64());
        }
    }
}

/// Refreshes the queue and rate-limit gauges now and every [`QUEUE_GAUGES_EVERY`] until
/// `shutdown`.
async fn refresh_queue_gauges(
    queue: EventQueue,
    targets: Vec<Arc<Target>>,
    metrics: MetricsRegistry,
    mut shutdown: watch::Receiver<bool>,
) {
    let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
    loop {
        record_rate_limit_stats(&metrics, &targets);
        if let Some(connected) = queue.connected() {
            metrics
                .gauge(QUEUE_JETSTREAM_CONNECTED, &[])
                .set(f64::from(u8::from(connected)));
        }
        match queue.stats(&names).await {
            Ok(stats) => record_queue_stats(&metrics, &stats),
            Err(err) => tracing::warn!(error = %err, "Reading queue stats for the metrics failed."),
        }
        tokio::select! {
            _ = tokio::time::sleep(QUEUE_GAUGES_EVERY) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

/// Maps a queue error to what intake answers: 503 with `Retry-After` when the store is full
/// or cannot be reached (nothing was acknowledged), 500 otherwise.
fn sink_error(err: StoreError) -> SinkError {
    if let Some(secs) = err.full_retry_after() {
        return SinkError::Full {
            retry_after_secs: u32::try_from(secs).unwrap_or(u32::MAX),
        };
    }
    if err.is_unavailable() {
        return SinkError::Unavailable {
            reason: err.to_string(),
        };
    }
    SinkError::Failed {
        reason: err.to_string(),
    }
}

/// Installs the tracing subscriber; `RUST_LOG` overrides the default `info` level.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // A second installation (only possible in tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The queue settings of a `server` section.
pub fn queue_config(server: &ServerConfig, recover_in_flight: bool) -> QueueConfig {
    let defaults = QueueConfig::default();
    QueueConfig {
        max_events: server.queue.max_events.unwrap_or(defaults.max_events),
        max_bytes: server.queue.max_bytes.unwrap_or(defaults.max_bytes),
        max_age: Duration::from_secs(server.max_age_secs),
        lease_duration: server
            .queue
            .lease_secs
            .map_or(defaults.lease_duration, Duration::from_secs),
        recover_in_flight,
        ..defaults
    }
}

/// The longest `server.queue.lease_secs` accepted: a day.
const MAX_LEASE_SECS: u64 = 86_400;

/// Checks `server.queue.lease_secs`, naming the file and the key.
fn check_lease(file: &Path, server: &ServerConfig) -> anyhow::Result<()> {
    match server.queue.lease_secs {
        Some(secs) if secs == 0 || secs > MAX_LEASE_SECS => bail!(
            "{}: server.queue.lease_secs must be a number of seconds from 1 to {MAX_LEASE_SECS}, found {secs}",
            file.display()
        ),
        _ => Ok(()),
    }
}

/// Reads a configuration for the queue tools, which need no write key nor destination
/// setting: a `${VAR}` that is not set reads as empty text instead of failing. The NATS
/// credentials of `server.queue.jetstream` are read from the environment like any `${VAR}`.
fn config_for_tools(path: &Path) -> anyhow::Result<actionkit_spec::config::Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration {}", path.display()))?;
    let file = path.display().to_string();
    let loaded = actionkit_spec::load_config_str(&file, &text, |name| {
        Some(std::env::var(name).unwrap_or_default())
    })
    .map_err(|diags| anyhow::anyhow!("invalid configuration\n{diags}"))?;
    Ok(loaded.config)
}

/// Reads the `server` section of a configuration for the queue tools (see
/// [`config_for_tools`]).
pub fn server_section_for_tools(path: &Path) -> anyhow::Result<ServerConfig> {
    Ok(config_for_tools(path)?.server.unwrap_or_default())
}

/// The `server.console` section of a configuration, if any (read like [`config_for_tools`]).
pub fn console_section(path: &Path) -> anyhow::Result<Option<ConsoleSettings>> {
    Ok(config_for_tools(path)?
        .server
        .and_then(|server| server.console))
}

/// The names of the enabled destination instances of a configuration, for the queue tools.
pub fn instance_names(path: &Path) -> anyhow::Result<Vec<String>> {
    Ok(config_for_tools(path)?
        .destinations
        .into_iter()
        .filter(|instance| instance.enabled)
        .map(|instance| instance.name)
        .collect())
}

/// Reads the `server` section with secrets interpolated from the environment.
fn server_section(path: &Path) -> anyhow::Result<ServerConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration {}", path.display()))?;
    let file = path.display().to_string();
    let loaded = actionkit_spec::load_config_str(&file, &text, |name| std::env::var(name).ok())
        .map_err(|diags| anyhow::anyhow!("invalid configuration\n{diags}"))?;
    match loaded.config.server {
        Some(server) => Ok(server),
        None => bail!(
            "{file}: no `server` section; add one with at least `write_keys` to use `actionkit serve`"
        ),
    }
}

/// The intake configuration of a `server` section.
fn intake_config(file: &Path, server: &ServerConfig) -> anyhow::Result<IntakeConfig> {
    if server.write_keys.is_empty() {
        bail!(
            "{}: server.write_keys is empty; add at least one `{{name, key}}`",
            file.display()
        );
    }
    let mut config = IntakeConfig::new(
        server
            .write_keys
            .iter()
            .map(|k| (k.name.as_str(), k.key.as_str())),
    )
    .with_context(|| format!("{}: invalid server.write_keys", file.display()))?;
    config.max_event_bytes = server.max_event_bytes;
    config.max_batch_bytes = server.max_batch_bytes;
    config.cors = Cors::from_list(&server.cors.allowed_origins)
        .with_context(|| format!("{}: invalid server.cors", file.display()))?;
    config.public_url = server
        .public_url
        .as_deref()
        .map(PublicUrl::parse)
        .transpose()
        .with_context(|| format!("{}: invalid server.public_url", file.display()))?;
    config
        .validate()
        .with_context(|| format!("{}: invalid server limits", file.display()))?;
    Ok(config)
}

/// The queue-level retry backoff of a `server` section: (first ceiling, largest ceiling).
fn retry_backoff(file: &Path, server: &ServerConfig) -> anyhow::Result<(Duration, Duration)> {
    let check = |key: &str, secs: f64| -> anyhow::Result<Duration> {
        if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
            bail!(
                "{}: server.{key} must be a number of seconds above 0 and at most 86400, found {secs}",
                file.display()
            );
        }
        Ok(Duration::from_secs_f64(secs))
    };
    let base = check("retry_backoff_secs", server.retry_backoff_secs)?;
    let max = check("retry_backoff_max_secs", server.retry_backoff_max_secs)?;
    if max < base {
        bail!(
            "{}: server.retry_backoff_max_secs ({}) is below server.retry_backoff_secs ({})",
            file.display(),
            server.retry_backoff_max_secs,
            server.retry_backoff_secs
        );
    }
    Ok((base, max))
}

/// Listens for SIGTERM and SIGINT from now on and resolves when one arrives.
///
/// The handlers are installed when this is called, not when the future is first polled, so
/// that a signal sent as soon as the server says it listens is a clean stop rather than the
/// default action (the process killed). It must be called within a Tokio runtime.
pub fn termination() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                (Ok(mut term), Err(_)) => {
                    term.recv().await;
                }
                (Err(_), Ok(mut int)) => {
                    int.recv().await;
                }
                (Err(_), Err(_)) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async move {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Runs the command until a termination signal.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    init_logging(args.log_format);
    if !(args.shutdown_timeout.is_finite() && args.shutdown_timeout >= 0.0) {
        bail!(
            "--shutdown-timeout must be a number of seconds, found {}",
            args.shutdown_timeout
        );
    }
    let grace = Duration::from_secs_f64(args.shutdown_timeout.min(86_400.0));
    let server = server_section(&args.config)?;
    let intake = intake_config(&args.config, &server)?;
    let backoff = retry_backoff(&args.config, &server)?;
    check_lease(&args.config, &server)?;
    let listen: SocketAddr = server.listen.parse().with_context(|| {
        format!(
            "{}: server.listen '{}' is not an address such as 127.0.0.1:8088",
            args.config.display(),
            server.listen
        )
    })?;
    // A busy destination is waited out within half a lease; longer, the row is postponed
    // (not counted as an attempt) instead of being cut off when its lease runs out.
    let mut target_args = args.target.clone();
    target_args.max_busy = Some(queue_config(&server, true).lease_duration / 2);
    let console_token = server
        .console
        .as_ref()
        .map(|console| crate::cmd::console::token(&args.config, &console.token_env))
        .transpose()?;
    let targets = setup::from_config_file(&args.config, &target_args)?;
    let metrics = MetricsRegistry::new();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (queue, targets) = match server.queue.backend {
        QueueBackend::Sqlite => {
            let queue = Queue::open_observed(
                &server.queue.path,
                queue_config(&server, true),
                Some(commit_observer(&metrics)),
            )
            .with_context(|| format!("cannot open the queue {}", server.queue.path))?;
            if queue.recovered_on_open() > 0 {
                tracing::info!(
                    rows = queue.recovered_on_open(),
                    "Returned deliveries left in flight by a previous run to pending."
                );
            }
            // The workers run at a lower thread priority but their queue calls run on the
            // intake runtime: a queue transaction holds the write connection that every
            // enqueue needs, and a low-priority thread preempted while holding it would stall
            // intake behind it.
            let queue = EventQueue::sqlite(queue, Some(runtime.handle().clone()));
            (queue, targets.into_iter().map(Arc::new).collect())
        }
        QueueBackend::Jetstream => {
            let config = cluster::jetstream_config(&args.config, &server)?;
            runtime.block_on(cluster::connect(config, &server, targets))?
        }
    };
    // Built from the targets the workers deliver with (on JetStream their clients share the
    // cluster's rate limits), so that the console's real sends count against those limits.
    let console = console_token
        .map(|token| crate::cmd::console::console(token, targets.iter().map(AsRef::as_ref)))
        .transpose()?;
    let delivery = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("actionkit-delivery")
        .on_thread_start(lower_thread_priority)
        .build()
        .context("cannot start the delivery runtime")?;
    let res = runtime.block_on(serve(Service {
        queue,
        targets,
        intake,
        metrics,
        listen,
        grace,
        backoff,
        delivery: delivery.handle().clone(),
        console,
    }));
    delivery.shutdown_background();
    res?;
    Ok(ExitCode::SUCCESS)
}

/// The nice value of the delivery threads (0 is normal, 19 the lowest priority).
#[cfg(target_os = "linux")]
const DELIVERY_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority to [`DELIVERY_NICE`].
///
/// Delivery runs on its own runtime at a lower priority than intake so that, when the machine
/// is short of CPU, a sender waiting for its answer goes first and deliveries, which wait in
/// the durable queue anyway, go after. The workers' queue transactions still run at normal
/// priority, on the intake runtime's blocking pool (see [`EventQueue::sqlite`]). With idle
/// cores the priority changes nothing. Measured with `serve_load` at 1,000 `/v1/track` calls per
/// second on 2 cores: p99 5.7 ms instead of 9.1 ms at similar CPU steal. Failing to lower it (a
/// sandbox that forbids it) only loses that.
fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    if let Err(err) =
        rustix::process::setpriority_process(Some(rustix::thread::gettid()), DELIVERY_NICE)
    {
        tracing::debug!(error = %err, "Could not lower the priority of a delivery thread.");
    }
}

/// Everything [`serve`] runs, assembled by [`run`].
struct Service {
    queue: EventQueue,
    targets: Vec<Arc<Target>>,
    intake: IntakeConfig,
    metrics: MetricsRegistry,
    listen: SocketAddr,
    /// How long requests and deliveries in flight may take to finish after a signal.
    grace: Duration,
    /// The queue-level retry backoff: (first ceiling, largest ceiling).
    backoff: (Duration, Duration),
    /// The runtime the delivery workers run on.
    delivery: tokio::runtime::Handle,
    /// The web console, when `server.console` is configured; its delivery overview is added
    /// once the queue is open.
    console: Option<actionkit_console::Console>,
}

/// Serves until a termination signal, then shuts down within the grace period.
async fn serve(service: Service) -> anyhow::Result<()> {
    let Service {
        queue,
        targets,
        intake,
        metrics,
        listen,
        grace,
        backoff,
        delivery,
        console,
    } = service;
    let closing = Arc::new(AtomicBool::new(false));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let wakes: Vec<Arc<Notify>> = targets.iter().map(|_| Arc::new(Notify::new())).collect();
    let running: Vec<Arc<AtomicBool>> = targets
        .iter()
        .map(|_| Arc::new(AtomicBool::new(false)))
        .collect();
    let sink = QueueSink {
        queue: queue.clone(),
        destinations: targets.iter().map(|t| t.name.clone()).collect(),
        wake: wakes.clone(),
        closing: Arc::clone(&closing),
        running: running.clone(),
        // On JetStream every publish of a request is one "commit": the request's events
        // acknowledged together.
        commits: matches!(queue, EventQueue::JetStream { .. }).then(|| commit_observer(&metrics)),
    };
    let state = IntakeState::new(intake, Arc::new(sink), metrics.clone());
    let intake_routes = actionkit_intake::router(state);
    let has_console = console.is_some();
    // What the workers decide is recorded only for the console's delivery overview.
    let activity = console.is_some().then(|| {
        Arc::new(ActivityLog::new(
            targets.iter().map(|t| t.name.clone()),
            SystemTime::now(),
        ))
    });
    let app = match (console, &activity) {
        // The console's routes have no fallback and their own layers; the intake's CORS
        // layer stays on the intake's routes.
        (Some(console), Some(activity)) => {
            let overview = crate::cmd::console::QueueOverview {
                queue: queue.clone(),
                names: targets.iter().map(|t| t.name.clone()).collect(),
                activity: Arc::clone(activity),
            };
            actionkit_console::router(console.with_deliveries(Arc::new(overview)))
                .merge(intake_routes)
        }
        _ => intake_routes,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener
        .local_addr()
        .context("cannot read the listening address")?;
    let upkeep = metrics.spawn_upkeep(Duration::from_secs(5));
    let gauges = tokio::spawn(refresh_queue_gauges(
        queue.clone(),
        targets.clone(),
        metrics.clone(),
        shutdown_rx.clone(),
    ));

    let mut workers = tokio::task::JoinSet::new();
    for ((target, wake), flag) in targets.iter().zip(&wakes).zip(&running) {
        let lease_batch = (target.client.config().concurrency.max(1) * 4).min(512);
        let work = worker::run(
            queue.clone(),
            Arc::clone(target),
            Arc::clone(wake),
            shutdown_rx.clone(),
            WorkerConfig {
                lease_batch,
                backoff: Backoff::new(backoff.0, backoff.1),
                ..WorkerConfig::default()
            },
            metrics.clone(),
            activity.as_ref().and_then(|log| log.recorder(&target.name)),
        );
        let running = Running::start(flag);
        workers.spawn_on(
            async move {
                let _running = running;
                work.await;
            },
            &delivery,
        );
    }
    let lease = queue.lease_duration();
    workers.spawn(worker::run_upkeep(
        queue.clone(),
        (lease / 2).max(Duration::from_secs(1)),
        shutdown_rx.clone(),
    ));

    let mut http_shutdown = shutdown_rx.clone();
    let mut http = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = http_shutdown.wait_for(|stop| *stop).await;
            })
            .into_future(),
    );
    let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    let stop = termination();
    tracing::info!(addr = %addr, destinations = ?names, queue = queue.backend(), "Listening.");
    if has_console {
        tracing::info!(console = %format!("http://{addr}/console"), "The console is on.");
    }

    let early = tokio::select! {
        _ = stop => None,
        res = &mut http => Some(res),
    };
    if let Some(res) = early {
        let _ = shutdown_tx.send(true);
        upkeep.abort();
        gauges.abort();
        return match res {
            Ok(Ok(())) => bail!("the HTTP server stopped unexpectedly"),
            Ok(Err(err)) => Err(anyhow::Error::new(err).context("the HTTP server failed")),
            Err(err) => Err(anyhow::Error::new(err).context("the HTTP server task failed")),
        };
    }
    tracing::info!(
        grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
        "Shutting down."
    );
    closing.store(true, Ordering::Relaxed);
    let _ = shutdown_tx.send(true);
    let deadline = tokio::time::Instant::now() + grace;
    if tokio::time::timeout_at(deadline, &mut http).await.is_err() {
        tracing::warn!("Requests still in flight at the deadline were cut off.");
        http.abort();
    }
    let drained = tokio::time::timeout_at(deadline, async {
        while workers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "Deliveries still in flight at the deadline were stopped; they are delivered after the next start."
        );
        workers.abort_all();
    }
    upkeep.abort();
    gauges.abort();
    tracing::info!("Stopped.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actionkit_queue::DestinationStats;

    #[test]
    fn queue_stats_become_gauges_by_destination_and_state() {
        let metrics = MetricsRegistry::new();
        let stats = QueueStats {
            events_stored: 7,
            bytes_stored: 7_000,
            max_events: 100,
            max_bytes: 1 << 20,
            checkpoint_failures: 1,
            fingerprints_stored: 42,
            destinations: vec![DestinationStats {
                destination: "userpilot".to_owned(),
                pending: 3,
                retry_scheduled: 2,
                in_flight: 1,
                dead_lettered: 4,
                oldest_pending_age_ms: Some(1_500),
                ..DestinationStats::default()
            }],
            ..QueueStats::default()
        };
        record_queue_stats(&metrics, &stats);
        let text = metrics.render();
        for line in [
            r#"actionkit_queue_deliveries{destination="userpilot",state="pending"} 3"#,
            r#"actionkit_queue_deliveries{destination="userpilot",state="retry_scheduled"} 2"#,
            r#"actionkit_queue_deliveries{destination="userpilot",state="in_flight"} 1"#,
            r#"actionkit_queue_deliveries{destination="userpilot",state="dead_lettered"} 4"#,
            r#"actionkit_queue_oldest_pending_age_seconds{destination="userpilot"} 1.5"#,
            "actionkit_queue_events 7",
            "actionkit_queue_bytes 7000",
            "actionkit_queue_max_events 100",
            "actionkit_queue_max_bytes 1048576",
            "actionkit_queue_checkpoint_failures 1",
            "actionkit_queue_fingerprints 42",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
        // A later snapshot replaces the values rather than adding to them.
        record_queue_stats(&metrics, &QueueStats::default());
        assert!(
            metrics
                .render()
                .lines()
                .any(|l| l == "actionkit_queue_events 0")
        );
    }

    fn event(id: &str) -> NormalizedEvent {
        NormalizedEvent {
            source: Arc::from("web"),
            event_type: actionkit_intake::EventType::Track,
            message_id: id.to_owned(),
            json: format!(r#"{{"type":"track","messageId":"{id}","userId":"u","event":"e"}}"#),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readiness_follows_the_bound_and_shutdown_and_health_the_workers() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = QueueConfig {
            max_events: 2,
            ..QueueConfig::default()
        };
        let queue = Queue::open(dir.path().join("q.sqlite"), config).expect("the queue opens");
        let running: Vec<Arc<AtomicBool>> =
            (0..2).map(|_| Arc::new(AtomicBool::new(false))).collect();
        let closing = Arc::new(AtomicBool::new(false));
        let sink = QueueSink {
            queue: EventQueue::sqlite(queue, None),
            destinations: vec!["alpha".to_owned(), "beta".to_owned()],
            wake: Vec::new(),
            closing: Arc::clone(&closing),
            running: running.clone(),
            commits: None,
        };
        let alpha = Running::start(&running[0]);
        let beta = Running::start(&running[1]);
        assert_eq!(sink.readiness(), Ok(()));
        assert_eq!(sink.health(), Ok(()));

        // A request past the bound is refused, and readiness says so until room is made.
        sink.enqueue(vec![event("m1")]).await.expect("room for one");
        let refused = sink.enqueue(vec![event("m2"), event("m3")]).await;
        assert!(
            matches!(refused, Err(SinkError::Full { .. })),
            "{refused:?}"
        );
        let not_ready = sink.readiness().expect_err("full");
        assert_eq!(not_ready.reason, "queue_full");
        assert!(not_ready.detail.contains("server.queue.max_events"));
        assert!(not_ready.retry_after_secs.is_some_and(|s| s >= 1));
        // Load is no reason to restart.
        assert_eq!(sink.health(), Ok(()));

        // A worker that stops, even by panicking, makes the process unhealthy, naming it.
        let panicked = tokio::spawn(async move {
            let _running = beta;
            panic!("a delivery bug");
        })
        .await;
        assert!(panicked.is_err());
        let unhealthy = sink.health().expect_err("beta stopped");
        assert_eq!(unhealthy.reason, "delivery_stopped");
        assert!(unhealthy.detail.contains("beta"), "{}", unhealthy.detail);
        assert!(!unhealthy.detail.contains("alpha"), "{}", unhealthy.detail);

        // During a shutdown, workers stop on purpose: not ready, but not unhealthy.
        closing.store(true, Ordering::Relaxed);
        assert_eq!(
            sink.readiness().expect_err("closing").reason,
            "shutting_down"
        );
        assert_eq!(sink.health(), Ok(()));
        drop(alpha);
    }

    /// `examples/prometheus/alerts.yaml` is Prometheus rule YAML whose rules are complete and name
    /// only metrics the server exports, so renaming a metric cannot silently break an operator's
    /// alert.
    #[test]
    fn the_example_alerts_name_exported_metrics() {
        use actionkit_intake::{
            ACCEPTED_TOTAL, RECEIVED_TOTAL, REJECTED_TOTAL, REQUEST_DURATION, REQUESTS_TOTAL,
        };
        use worker::{
            DELIVERIES_TOTAL, DELIVERY_EVENT_AGE, DELIVERY_REQUEST_DURATION,
            DELIVERY_REQUESTS_TOTAL,
        };
        let counters_and_gauges = [
            RECEIVED_TOTAL,
            ACCEPTED_TOTAL,
            REJECTED_TOTAL,
            REQUESTS_TOTAL,
            DELIVERIES_TOTAL,
            DELIVERY_REQUESTS_TOTAL,
            QUEUE_DELIVERIES,
            QUEUE_OLDEST_PENDING_AGE,
            QUEUE_EVENTS,
            QUEUE_BYTES,
            QUEUE_MAX_EVENTS,
            QUEUE_MAX_BYTES,
            QUEUE_CHECKPOINT_FAILURES,
            QUEUE_COMMITS_TOTAL,
            QUEUE_COMMIT_EVENTS_TOTAL,
            RATE_LIMIT_WAITING,
            RATE_LIMIT_WAITED,
        ];
        let histograms = [
            REQUEST_DURATION,
            DELIVERY_REQUEST_DURATION,
            DELIVERY_EVENT_AGE,
            QUEUE_COMMIT_DURATION,
            QUEUE_COMMIT_WAIT,
        ];
        let exported = |name: &str| {
            counters_and_gauges.contains(&name)
                || histograms.iter().any(|h| {
                    name.strip_prefix(h)
                        .is_some_and(|rest| ["_bucket", "_sum", "_count"].contains(&rest))
                })
        };

        let text = include_str!("../../../../examples/prometheus/alerts.yaml");
        let docs = yaml_rust2::YamlLoader::load_from_str(text).expect("alerts.yaml is YAML");
        let rules: Vec<&yaml_rust2::Yaml> = docs[0]["groups"]
            .as_vec()
            .expect("a list of groups")
            .iter()
            .flat_map(|group| group["rules"].as_vec().expect("a list of rules"))
            .collect();
        assert!(rules.len() >= 5, "{} rules", rules.len());
        for rule in rules {
            let name = rule["alert"].as_str().expect("every rule names its alert");
            for key in [&rule["labels"]["severity"], &rule["annotations"]["summary"]] {
                assert!(key.as_str().is_some(), "{name}: a severity and a summary");
            }
            let expr = rule["expr"].as_str().expect("every rule has an expression");
            let mut named = 0;
            for (at, _) in expr.match_indices("actionkit_") {
                let metric: String = expr[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(exported(&metric), "{name}: {metric} is not exported");
                named += 1;
            }
            assert!(named > 0, "{name} names no actionkit metric");
        }
    }

    #[test]
    fn the_lease_duration_is_read_and_checked_naming_the_key() {
        let file = Path::new("actionkit.yaml");
        let mut server = ServerConfig::default();
        assert_eq!(
            queue_config(&server, true).lease_duration,
            QueueConfig::default().lease_duration
        );
        assert!(check_lease(file, &server).is_ok());
        server.queue.lease_secs = Some(300);
        assert_eq!(
            queue_config(&server, true).lease_duration,
            Duration::from_secs(300)
        );
        assert!(check_lease(file, &server).is_ok());
        for bad in [0, MAX_LEASE_SECS + 1] {
            server.queue.lease_secs = Some(bad);
            let err = check_lease(file, &server)
                .expect_err("out of range")
                .to_string();
            assert_eq!(
                err,
                format!(
                    "actionkit.yaml: server.queue.lease_secs must be a number of seconds from 1 to 86400, found {bad}"
                )
            );
        }
    }

    #[test]
    fn retry_backoff_is_read_and_checked_naming_the_key() {
        let file = Path::new("actionkit.yaml");
        let server = ServerConfig::default();
        assert_eq!(
            retry_backoff(file, &server).expect("the defaults are valid"),
            (Duration::from_secs(5), Duration::from_secs(600))
        );
        let fast = ServerConfig {
            retry_backoff_secs: 0.25,
            retry_backoff_max_secs: 2.0,
            ..ServerConfig::default()
        };
        assert_eq!(
            retry_backoff(file, &fast).expect("valid"),
            (Duration::from_millis(250), Duration::from_secs(2))
        );
        for (base, max, needle) in [
            (
                0.0,
                600.0,
                "server.retry_backoff_secs must be a number of seconds above 0",
            ),
            (f64::NAN, 600.0, "server.retry_backoff_secs"),
            (5.0, -1.0, "server.retry_backoff_max_secs must be"),
            (
                5.0,
                2.0,
                "server.retry_backoff_max_secs (2) is below server.retry_backoff_secs (5)",
            ),
        ] {
            let server = ServerConfig {
                retry_backoff_secs: base,
                retry_backoff_max_secs: max,
                ..ServerConfig::default()
            };
            let err = retry_backoff(file, &server)
                .expect_err("invalid backoff")
                .to_string();
            assert!(err.starts_with("actionkit.yaml: "), "{err}");
            assert!(err.contains(needle), "{err}");
        }
    }
}
