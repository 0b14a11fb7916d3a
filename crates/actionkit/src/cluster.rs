//! `serve` as one node of a cluster on NATS JetStream (`server.queue.backend: jetstream`):
//! the JetStream settings of the configuration, the connection, one durable consumer per
//! destination instance, and the destination's rate limits shared by every node.
//!
//! Every node must run the same configuration: the same instances (each has one consumer,
//! which every node's workers pull from) and the same stream names. The rate limits of an
//! instance are kept in JetStream's key-value store (see `actionkit_jetstream::rate_limit`), so
//! Userpilot's 600 identify requests a minute hold for all nodes together.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actionkit_jetstream::rate_limit::ClusterRateLimit;
use actionkit_jetstream::{Config, JetStreamError, JetStreamQueue};
use actionkit_runtime::delivery::SharedRateLimit;
use actionkit_spec::config::ServerConfig;
use anyhow::{Context, bail};

use crate::cmd::serve::queue_config;
use crate::setup::Target;
use crate::store::EventQueue;

/// The JetStream settings of a `server` section, checked, naming the file and key of any
/// problem.
pub fn jetstream_config(file: &Path, server: &ServerConfig) -> anyhow::Result<Config> {
    let settings = server.queue.jetstream.clone().unwrap_or_default();
    let at = |key: &str| format!("{}: server.queue.jetstream.{key}", file.display());
    if settings.urls.is_empty() {
        bail!(
            "{} is empty; give at least one `nats://host:port`",
            at("urls")
        );
    }
    for (idx, url) in settings.urls.iter().enumerate() {
        let scheme_ok = ["nats://", "tls://", "ws://", "wss://"]
            .iter()
            .any(|scheme| url.starts_with(scheme));
        if !scheme_ok || url.contains(char::is_whitespace) {
            // The URL is not echoed: it may carry a user and password.
            bail!(
                "{}[{idx}] is not a NATS URL; expected `nats://host:port` (or tls://, ws://, wss://)",
                at("urls")
            );
        }
    }
    if !matches!(settings.replicas, 1 | 3 | 5) {
        bail!(
            "{} must be 1, 3 or 5, found {}",
            at("replicas"),
            settings.replicas
        );
    }
    if settings.retention_secs <= server.max_age_secs {
        bail!(
            "{} ({}) must be longer than server.max_age_secs ({}), or events would be dropped while their retries still run",
            at("retention_secs"),
            settings.retention_secs,
            server.max_age_secs
        );
    }
    if settings.duplicate_window_secs == 0
        || settings.duplicate_window_secs > settings.retention_secs
    {
        bail!(
            "{} must be a number of seconds from 1 to retention_secs ({}), found {}",
            at("duplicate_window_secs"),
            settings.retention_secs,
            settings.duplicate_window_secs
        );
    }
    let credentials = match (&settings.user, &settings.password, &settings.token) {
        (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => bail!(
            "{}: give either user and password or token, not both",
            at("token")
        ),
        (Some(user), Some(password), None) => Some((user.clone(), password.clone())),
        (Some(_), None, None) => bail!("{} is missing; a user needs a password", at("password")),
        (None, Some(_), None) => bail!("{} is missing; a password needs a user", at("user")),
        (None, None, _) => None,
    };
    let queue = queue_config(server, true);
    let defaults = Config::default();
    Ok(Config {
        urls: settings.urls,
        credentials,
        token: settings.token,
        stream: settings.stream,
        dead_letter_stream: settings.dead_letter_stream,
        replay_stream: settings.replay_stream,
        subject_prefix: settings.subject_prefix,
        replicas: usize::from(settings.replicas),
        max_age: Duration::from_secs(settings.retention_secs),
        max_bytes: i64::try_from(queue.max_bytes).unwrap_or(i64::MAX),
        max_events: i64::try_from(queue.max_events).unwrap_or(i64::MAX),
        duplicate_window: Duration::from_secs(settings.duplicate_window_secs),
        lease_duration: queue.lease_duration,
        fingerprint_max_age: queue.fingerprint_max_age,
        full_retry_after: queue.full_retry_after,
        ..defaults
    })
}

/// Connects to JetStream, creates the streams and every instance's consumer, and gives each
/// instance's delivery client the cluster-wide rate limits.
pub async fn connect(
    config: Config,
    server: &ServerConfig,
    targets: Vec<Target>,
) -> anyhow::Result<(EventQueue, Vec<Arc<Target>>)> {
    let urls = config.urls.len();
    let queue = with_patience("connecting to NATS JetStream", || {
        JetStreamQueue::connect(config.clone())
    })
    .await
    .context("cannot use NATS JetStream for the queue (server.queue.jetstream)")?;
    let mut shared = Vec::with_capacity(targets.len());
    for mut target in targets {
        with_patience("setting up a consumer", || {
            queue.add_destination(&target.name)
        })
        .await
        .with_context(|| format!("cannot set up the consumer of instance '{}'", target.name))?;
        let mut limits = HashMap::new();
        for limit in &target.client.config().rate_limits {
            let cluster = with_patience("setting up a cluster rate limit", || {
                ClusterRateLimit::new(
                    &queue,
                    &target.name,
                    &limit.key,
                    limit.max_requests,
                    limit.per,
                )
            })
            .await
            .with_context(|| {
                format!(
                    "cannot set up the cluster rate limit '{}' of instance '{}'",
                    limit.key, target.name
                )
            })?;
            limits.insert(limit.key.clone(), cluster);
        }
        if !limits.is_empty() {
            let client = match Arc::try_unwrap(target.client) {
                Ok(client) => client,
                Err(_) => bail!(
                    "the delivery client of instance '{}' is shared before the cluster rate limits are set",
                    target.name
                ),
            };
            target.client = Arc::new(
                client.with_shared_rate_limit(Arc::new(ClusterLimits { limits }) as Arc<_>),
            );
        }
        shared.push(Arc::new(target));
    }
    tracing::info!(
        servers = urls,
        stream = %queue.config().stream,
        replicas = queue.config().replicas,
        "Connected to NATS JetStream."
    );
    let max_age = Duration::from_secs(server.max_age_secs);
    Ok((EventQueue::jetstream(queue, max_age), shared))
}

/// How long a starting node keeps trying to set itself up on JetStream: a NATS cluster that
/// lost a server elects new leaders within seconds, and meanwhile requests time out.
const STARTUP_PATIENCE: Duration = Duration::from_secs(60);

/// Runs `step` until it succeeds, logging each transient failure and pausing between tries,
/// for at most [`STARTUP_PATIENCE`]; then, or at once for a failure that trying again cannot
/// mend (a setting NATS refuses), returns the error.
async fn with_patience<T, F, Fut>(what: &str, mut step: F) -> Result<T, JetStreamError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, JetStreamError>>,
{
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(250);
    loop {
        match step().await {
            Ok(value) => return Ok(value),
            Err(err) if err.is_transient() && started.elapsed() + pause < STARTUP_PATIENCE => {
                tracing::warn!(error = %err, retry_in_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX), "{what} failed; trying again.");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            Err(err) => return Err(err),
        }
    }
}

/// The cluster-wide limits of one instance, by rate-limit key.
#[derive(Debug)]
struct ClusterLimits {
    limits: HashMap<String, ClusterRateLimit>,
}

impl SharedRateLimit for ClusterLimits {
    fn limits(&self, key: &str) -> bool {
        self.limits.contains_key(key)
    }

    fn acquire<'a>(
        &'a self,
        key: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            match self.limits.get(key) {
                Some(limit) => limit.acquire().await.map(|_| ()).map_err(|e| e.to_string()),
                None => Ok(()),
            }
        })
    }
}
