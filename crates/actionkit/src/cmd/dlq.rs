//! `actionkit dlq` and `actionkit queue`: inspect and act on the durable queue of
//! `actionkit serve`, possibly while the server runs, on either store (`server.queue.backend`).
//!
//! An SQLite queue is opened with `recover_in_flight: false`, so these tools never hand the
//! running server's in-flight rows out a second time. A JetStream queue is reached with the
//! configuration's NATS URLs and credentials (from the environment); the tools create nothing
//! but the streams if they are missing. Write keys and destination settings are not needed:
//! a `${VAR}` that is not set reads as empty. Output is JSON: one object per line for
//! listings, one pretty object otherwise.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use actionkit_jetstream::JetStreamQueue;
use actionkit_queue::{DeliveryId, DlqEntry, DlqFilter, DlqItem, DlqSelection, Queue};
use actionkit_spec::config::QueueBackend;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::cmd::serve::{queue_config, server_section_for_tools};
use crate::store::EventQueue;

/// Where the queue is.
#[derive(Debug, Args)]
pub struct QueueLocation {
    /// The runtime configuration whose `server.queue` says where the queue is.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

/// Dead-letter queue commands.
#[derive(Debug, Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// List dead-lettered deliveries, oldest first, one JSON object per line.
    List {
        #[command(flatten)]
        location: QueueLocation,
        /// Only this destination instance.
        #[arg(long, value_name = "NAME")]
        destination: Option<String>,
        /// Only events with this messageId.
        #[arg(long, value_name = "ID")]
        message_id: Option<String>,
        /// At most this many entries.
        #[arg(long, default_value_t = 100, value_name = "N")]
        limit: u32,
        /// Skip this many entries first.
        #[arg(long, default_value_t = 0, value_name = "N")]
        offset: u64,
    },
    /// Show one dead-lettered delivery with its event.
    Show {
        #[command(flatten)]
        location: QueueLocation,
        /// The delivery id, as `dlq list` prints it.
        id: i64,
    },
    /// Return dead-lettered deliveries to the queue, with attempts reset and the age clock
    /// restarted.
    Replay {
        #[command(flatten)]
        location: QueueLocation,
        #[command(flatten)]
        selection: SelectionArgs,
    },
    /// Delete dead-lettered deliveries for good (they are counted as purged).
    Purge {
        #[command(flatten)]
        location: QueueLocation,
        #[command(flatten)]
        selection: SelectionArgs,
    },
}

/// Which dead-lettered deliveries a replay or purge applies to; exactly one is required.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct SelectionArgs {
    /// These delivery ids (repeatable).
    #[arg(long = "id", value_name = "ID")]
    ids: Vec<i64>,
    /// Every dead-lettered delivery of this destination instance.
    #[arg(long, value_name = "NAME")]
    destination: Option<String>,
    /// Every dead-lettered delivery.
    #[arg(long)]
    all: bool,
}

impl SelectionArgs {
    fn selection(&self) -> anyhow::Result<DlqSelection> {
        if self.all {
            Ok(DlqSelection::All)
        } else if let Some(name) = &self.destination {
            Ok(DlqSelection::Destination(name.clone()))
        } else if !self.ids.is_empty() {
            Ok(DlqSelection::Ids(
                self.ids.iter().copied().map(DeliveryId).collect(),
            ))
        } else {
            bail!("choose what to act on with --id, --destination or --all")
        }
    }
}

/// Queue commands.
#[derive(Debug, Args)]
pub struct QueueArgs {
    #[command(subcommand)]
    command: QueueCommand,
}

#[derive(Debug, Subcommand)]
enum QueueCommand {
    /// Print the queue's counts per destination instance as JSON.
    Stats {
        #[command(flatten)]
        location: QueueLocation,
    },
}

/// Opens the queue named by a configuration, for a tool; also returns the configured
/// destination instances (whose counts `queue stats` reports on JetStream).
async fn open(location: &QueueLocation) -> anyhow::Result<(EventQueue, Vec<String>)> {
    open_configured(&location.config).await
}

/// Opens the queue a configuration file names in `server.queue`, on either store, for a tool;
/// also returns the configured destination instances.
pub async fn open_configured(config: &Path) -> anyhow::Result<(EventQueue, Vec<String>)> {
    let server = server_section_for_tools(config)?;
    let names = crate::cmd::serve::instance_names(config)?;
    match server.queue.backend {
        QueueBackend::Sqlite => {
            let path = PathBuf::from(&server.queue.path);
            if !path.exists() {
                bail!(
                    "the queue {} does not exist; `actionkit serve --config {}` creates it",
                    path.display(),
                    config.display()
                );
            }
            let queue = Queue::open(&path, queue_config(&server, false))
                .with_context(|| format!("cannot open the queue {}", path.display()))?;
            Ok((EventQueue::sqlite(queue, None), names))
        }
        QueueBackend::Jetstream => {
            let config = crate::cluster::jetstream_config(config, &server)?;
            let queue = JetStreamQueue::connect(config)
                .await
                .context("cannot reach the queue on NATS JetStream (server.queue.jetstream)")?;
            let max_age = std::time::Duration::from_secs(server.max_age_secs);
            Ok((EventQueue::jetstream(queue, max_age), names))
        }
    }
}

/// Runs `f` on a small runtime of its own: the tools are synchronous commands.
fn block_on<T>(f: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(f)
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A dead letter as `dlq list` prints it (and the console shows it).
pub fn entry_json(entry: &DlqEntry) -> Value {
    json!({
        "id": entry.delivery_id.0,
        "event_id": entry.event_id.0,
        "message_id": entry.message_id,
        "destination": entry.destination,
        "attempts": entry.attempts,
        "reason": entry.reason,
        "last_error": entry.last_error,
        "enqueued_at_ms": millis(entry.enqueued_at),
        "dead_at_ms": millis(entry.dead_at),
        "payload_bytes": entry.payload_bytes,
    })
}

/// A dead letter with its event as `dlq show` prints it (and the console shows it): the
/// entry, and the event as stored (intake stores it without its `writeKey`), as JSON, or as
/// text when it is not JSON.
pub fn show_json(item: &DlqItem) -> Value {
    let mut out = entry_json(&item.entry);
    let event = serde_json::from_slice::<Value>(&item.payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&item.payload).into()));
    if let Value::Object(map) = &mut out {
        map.insert("event".to_owned(), event);
    }
    out
}

/// Runs `actionkit dlq …`.
pub fn run_dlq(args: DlqArgs) -> anyhow::Result<ExitCode> {
    block_on(dlq(args))
}

async fn dlq(args: DlqArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        DlqCommand::List {
            location,
            destination,
            message_id,
            limit,
            offset,
        } => {
            let (queue, _) = open(&location).await?;
            let filter = DlqFilter {
                destination,
                message_id,
            };
            for entry in queue.dlq_list(filter, limit, offset).await? {
                println!("{}", entry_json(&entry));
            }
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Show { location, id } => {
            let (queue, _) = open(&location).await?;
            let Some(item) = queue.dlq_get(DeliveryId(id)).await? else {
                bail!("delivery {id} is not in the dead-letter queue");
            };
            println!("{}", serde_json::to_string_pretty(&show_json(&item))?);
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Replay {
            location,
            selection,
        } => {
            let (queue, _) = open(&location).await?;
            let n = queue.dlq_replay(selection.selection()?).await?;
            println!("{}", json!({ "replayed": n }));
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Purge {
            location,
            selection,
        } => {
            let (queue, _) = open(&location).await?;
            let n = queue.dlq_purge(selection.selection()?).await?;
            println!("{}", json!({ "purged": n }));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs `actionkit queue …`.
pub fn run_queue(args: QueueArgs) -> anyhow::Result<ExitCode> {
    block_on(queue(args))
}

async fn queue(args: QueueArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        QueueCommand::Stats { location } => {
            let (queue, names) = open(&location).await?;
            let stats = queue.stats(&names).await?;
            println!("{}", serde_json::to_string_pretty(&stats)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
