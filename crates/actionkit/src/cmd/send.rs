//! `actionkit send`: deliver a stream of Segment events through every enabled mapping.
//!
//! Events are read in chunks on their own thread, then parsed and dispatched (trigger, mapping,
//! validation, request building) by a pool of one worker thread per core (see `events`); the
//! reports come back in input order and are delivered concurrently with retries and rate limits
//! on the async runtime. `--dry-run` stops after building the requests. Every event ends in the
//! summary as delivered, failed (with the reason) or skipped.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use actionkit_runtime::dispatch::Outcome;
use actionkit_runtime::request::Request;
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde_json::{Map, Value, json};

use actionkit_runtime::batch::Batcher;
use actionkit_runtime::changes::{self, Fingerprint, MemoryStore};
use actionkit_runtime::dispatch::BatchItem;

use super::progress::{Progress, limit_stats, rate_limit_report};
use crate::events::{self, Item};
use crate::setup::{self, Target, TargetArgs};

/// Deliver Segment events (NDJSON or a JSON array) through the destination's mappings.
#[derive(Debug, Args)]
#[command(
    after_help = "Without --config or --destination, events go to Userpilot \
(actions-userpilot-cloud), its API key from --setting apiKey=… or USERPILOT_API_KEY.

Examples:
  actionkit send --demo examples/events.ndjson
  USERPILOT_API_KEY=… actionkit send events.ndjson
  actionkit send --dry-run --output ndjson --setting apiKey=test examples/events.ndjson
  cat events.ndjson | actionkit send --setting apiKey=… -
  actionkit send --config actionkit.yaml events.ndjson
  actionkit send --destination SLUG --setting NAME=VALUE events.ndjson"
)]
pub struct SendArgs {
    /// NDJSON or a JSON array of Segment events; `-` (the default) reads standard input.
    input: Option<PathBuf>,
    /// Build the requests but send nothing.
    #[arg(long)]
    dry_run: bool,
    /// What to print per event: `pretty` (for people), `ndjson` (one JSON line per event:
    /// `{"index","line","actions","requests","error"}`, where `index` counts input items from 0
    /// and `line` is the 1-based input line the item starts on, plus `batched` with the entries
    /// of batch actions and their results: `batch_len`, `response_id`) or `none` (only the
    /// summary).
    /// Default: `pretty` on a terminal, else `none`.
    #[arg(long, value_enum)]
    output: Option<OutputFormat>,
    /// Print secret setting values instead of `[redacted]`.
    #[arg(long)]
    show_secrets: bool,
    /// Start an embedded mock of Userpilot's API on 127.0.0.1 and deliver to it (no account needed).
    #[arg(long, conflicts_with_all = ["dry_run", "config"])]
    demo: bool,
    /// The largest accepted event in bytes; longer ones are reported and skipped.
    #[arg(long, default_value_t = events::DEFAULT_MAX_EVENT_BYTES, value_name = "BYTES")]
    max_event_bytes: usize,
    /// A runtime configuration (`actionkit.yaml`): deliver to each of its enabled instances,
    /// with their destinations, settings and mappings.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Without --config, the destination to deliver to, by its slug (default:
    /// actions-userpilot-cloud), with its presets; its settings come from --setting and the
    /// environment.
    #[arg(long, value_name = "SLUG", conflicts_with = "config")]
    destination: Option<String>,
    #[command(flatten)]
    target: TargetArgs,
}

/// How per-event results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Pretty,
    Ndjson,
    None,
}

/// The most records `send` remembers per instance to skip unchanged requests; beyond it, it
/// starts over (which only costs resending).
const MAX_RECORDS_REMEMBERED: usize = 1_000_000;

/// The most events that wait in flight for their batches at once, whatever the largest batch.
const MAX_EVENTS_WAITING_FOR_BATCHES: usize = 20_000;

/// The API key the embedded mock expects in demo mode.
const DEMO_API_KEY: &str = "demo-api-key";

/// Runs the command; exit code 1 when any event failed for good.
pub fn run(mut args: SendArgs) -> anyhow::Result<ExitCode> {
    let output = args.output.unwrap_or(if std::io::stdout().is_terminal() {
        OutputFormat::Pretty
    } else {
        OutputFormat::None
    });
    let mut input_len = None;
    let reader: Box<dyn std::io::Read + Send> = match args.input.as_deref() {
        None => Box::new(std::io::stdin()),
        Some(p) if p.as_os_str() == "-" => Box::new(std::io::stdin()),
        Some(p) => {
            let file =
                std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
            // The share done and the time left are shown when the size is known.
            input_len = file
                .metadata()
                .ok()
                .filter(|meta| meta.is_file())
                .map(|meta| meta.len());
            Box::new(file)
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let slug = args
        .destination
        .clone()
        .unwrap_or_else(|| setup::DEFAULT_DESTINATION.to_owned());
    if args.demo && slug != setup::DEFAULT_DESTINATION {
        bail!(
            "--demo delivers to an embedded mock of Userpilot, so it does not go with --destination {slug}"
        );
    }
    runtime.block_on(async move {
        let mock = if args.demo {
            let config = actionkit_mock_userpilot::MockConfig {
                api_key: Some(DEMO_API_KEY.to_owned()),
                ..Default::default()
            };
            let handle = actionkit_mock_userpilot::spawn(config)
                .await
                .map_err(|err| anyhow::anyhow!("cannot start the embedded mock: {err}"))?;
            args.target.settings.retain(|text| {
                let name = text
                    .split_once('=')
                    .map_or(text.as_str(), |(name, _)| name)
                    .trim();
                name != "apiKey" && name != "endpoint"
            });
            args.target.settings.push(format!("apiKey={DEMO_API_KEY}"));
            eprintln!(
                "Delivering to the embedded mock Userpilot API at {}.",
                handle.base_url()
            );
            Some(handle)
        } else {
            None
        };
        let endpoint = mock.as_ref().map(|handle| handle.base_url());
        let targets = match &args.config {
            Some(path) => setup::from_config_file(path, &args.target)?,
            None => vec![setup::from_destination(
                &slug,
                &args.target,
                endpoint.as_deref(),
                |_| Ok(()),
            )?],
        };
        let targets: Arc<Vec<Target>> = Arc::new(targets);
        let mut printer = Printer {
            format: output,
            show_secrets: args.show_secrets,
            stdout: std::io::stdout().lock(),
        };
        let mut summary = pump(
            reader,
            input_len,
            args.max_event_bytes,
            &targets,
            args.dry_run,
            &mut printer,
        )
        .await?;
        summary.instance = targets
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let to_stderr = output == OutputFormat::Ndjson;
        summary.print(args.dry_run, to_stderr)?;
        if let Some(handle) = mock {
            let received = handle.requests().len();
            eprintln!("The embedded mock received {received} requests.");
            handle
                .shutdown()
                .await
                .map_err(|err| anyhow::anyhow!("the embedded mock failed: {err}"))?;
        }
        Ok(if summary.failed_total() > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    })
}

/// What one request (or batch entry) became after delivery.
#[derive(Debug, Clone)]
struct Delivery {
    delivered: bool,
    status: Option<u16>,
    attempts: u32,
    reason: Option<String>,
    /// For a batch entry: how many entries its request carried, and the answer's response id.
    batch: Option<(usize, Option<String>)>,
    /// Not sent: it would have changed nothing delivered before in this run.
    unchanged: bool,
}

impl Delivery {
    /// A request skipped because it would change nothing.
    fn unchanged() -> Delivery {
        Delivery {
            delivered: true,
            status: None,
            attempts: 0,
            reason: None,
            batch: None,
            unchanged: true,
        }
    }
}

/// The fingerprint of a request body or batch entry of `action`, when `target` sends only
/// changes and the action's API merges by id.
fn fingerprint_of(target: &Target, action: &str, body: &Value) -> Option<Fingerprint> {
    changes::fingerprint(&target.merges(action)?, body)
}

/// Everything that happened to one input item.
#[derive(Debug)]
struct Report {
    index: usize,
    line: usize,
    /// The bytes the item took in the input.
    bytes: usize,
    actions: Vec<&'static str>,
    /// The target index, the action key and the request.
    requests: Vec<(usize, &'static str, Request)>,
    /// The target index, the action key and the entry of each payload sent in a batch.
    batched: Vec<(usize, &'static str, BatchItem)>,
    /// The outcome of every request, then of every batch entry, in order.
    deliveries: Vec<Delivery>,
    errors: Vec<(Option<&'static str>, &'static str, String, u16)>,
    skipped: bool,
}

impl Report {
    /// Replaces every built request by an empty one (same method, no URL, headers or body),
    /// for runs where nothing reads them after they are counted.
    fn discard_request_contents(&mut self) {
        for (_, _, request) in &mut self.requests {
            *request = Request {
                method: request.method,
                url: String::new(),
                headers: Vec::new(),
                json: None,
                rate_limit_key: None,
                busy_statuses: &[],
                response_id: None,
                redactions: Default::default(),
                signer: None,
            };
        }
        for (_, _, item) in &mut self.batched {
            item.entry = Value::Null;
        }
    }
}

/// Reads, dispatches and delivers every item; returns the summary.
///
/// Parsing and dispatch run in a pool of threads (see `events`), one chunk of events at a time;
/// reports come back in input order. Delivery runs on the async runtime.
async fn pump(
    reader: Box<dyn std::io::Read + Send>,
    input_len: Option<u64>,
    max_event_bytes: usize,
    targets: &Arc<Vec<Target>>,
    dry_run: bool,
    printer: &mut Printer<'_>,
) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let mut summary = Summary::default();
    let progress = Progress::new(input_len, Arc::clone(targets));
    let ticker = progress.spawn_ticker();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
    let dispatch_targets = Arc::clone(targets);
    // In a dry run that prints nothing, the built requests are only counted; dropping their
    // contents on the worker that built them keeps the consumer thread free.
    let count_only = dry_run && printer.format == OutputFormat::None;
    let mut chunks = events::spawn_pipeline(reader, max_event_bytes, workers, move |item| {
        let mut report = dispatch(item, &dispatch_targets);
        if count_only {
            report.discard_request_contents();
        }
        report
    });
    // Events wait in flight for their batch, so a batch can only fill up to this many.
    let batch_room: usize = targets
        .iter()
        .map(|t| t.instance.destination().largest_batch())
        .max()
        .unwrap_or(0)
        .min(MAX_EVENTS_WAITING_FOR_BATCHES);
    let max_in_flight = targets
        .iter()
        .map(|t| t.client.config().concurrency.max(1) * 8)
        .sum::<usize>()
        .max(8)
        .max(batch_room);
    // What was delivered to each record in this run, per target, to skip unchanged requests.
    let known: Arc<Vec<MemoryStore>> = Arc::new(
        targets
            .iter()
            .map(|_| MemoryStore::new(MAX_RECORDS_REMEMBERED))
            .collect(),
    );
    let batchers: Arc<Vec<Batcher>> = Arc::new(
        targets
            .iter()
            .map(|t| Batcher::spawn(Arc::clone(&t.instance), Arc::clone(&t.client)))
            .collect(),
    );
    let mut in_flight = tokio::task::JoinSet::new();
    while let Some(chunk) = chunks.recv().await {
        let reports = chunk
            .await
            .map_err(|_| anyhow::anyhow!("a dispatch worker stopped unexpectedly"))?;
        for report in reports {
            summary.events += 1;
            summary.bytes += report.bytes;
            if dry_run || (report.requests.is_empty() && report.batched.is_empty()) {
                finish(report, &mut summary, printer, &progress)?;
                continue;
            }
            while in_flight.len() >= max_in_flight {
                if let Some(done) = in_flight.join_next().await {
                    finish(
                        done.context("a delivery task failed")??,
                        &mut summary,
                        printer,
                        &progress,
                    )?;
                }
            }
            let targets = Arc::clone(targets);
            let batchers = Arc::clone(&batchers);
            let known = Arc::clone(&known);
            in_flight.spawn(async move {
                let mut report = report;
                for (target_idx, action, request) in &report.requests {
                    let target = &targets[*target_idx];
                    let fingerprint = request
                        .json
                        .as_ref()
                        .and_then(|body| fingerprint_of(target, action, body));
                    if fingerprint
                        .as_ref()
                        .is_some_and(|fp| known[*target_idx].covers(fp))
                    {
                        report.deliveries.push(Delivery::unchanged());
                        continue;
                    }
                    let outcome = target.client.send(request).await;
                    if let (Some(fp), true) = (&fingerprint, outcome.is_delivered()) {
                        known[*target_idx].remember(fp);
                    }
                    report.deliveries.push(Delivery {
                        delivered: outcome.is_delivered(),
                        status: outcome.status,
                        attempts: outcome.attempts,
                        reason: outcome.reason,
                        batch: None,
                        unchanged: false,
                    });
                }
                // Every entry joins its batch at once; an event's entries may share one.
                let batched: Vec<_> = report
                    .batched
                    .iter()
                    .map(|(target_idx, action, item)| {
                        let fingerprint =
                            fingerprint_of(&targets[*target_idx], action, &item.entry);
                        let unchanged = fingerprint
                            .as_ref()
                            .is_some_and(|fp| known[*target_idx].covers(fp));
                        let batcher = batchers[*target_idx].clone();
                        let item = item.clone();
                        let known = Arc::clone(&known);
                        let target_idx = *target_idx;
                        tokio::spawn(async move {
                            if unchanged {
                                return None;
                            }
                            let result = batcher.submit(item).await;
                            if let (Some(fp), true) = (&fingerprint, result.outcome.is_delivered())
                            {
                                known[target_idx].remember(fp);
                            }
                            Some(result)
                        })
                    })
                    .collect();
                for handle in batched {
                    let Some(result) = handle.await.context("a batch submission failed")? else {
                        report.deliveries.push(Delivery::unchanged());
                        continue;
                    };
                    report.deliveries.push(Delivery {
                        delivered: result.outcome.is_delivered(),
                        status: result.outcome.status,
                        attempts: result.outcome.attempts,
                        reason: result.outcome.reason,
                        batch: Some((result.batch_len, result.response_id)),
                        unchanged: false,
                    });
                }
                anyhow::Ok(report)
            });
            while let Some(done) = in_flight.try_join_next() {
                finish(
                    done.context("a delivery task failed")??,
                    &mut summary,
                    printer,
                    &progress,
                )?;
            }
        }
    }
    // The input is done: nothing more will join the open batches, so they need not wait to
    // fill. Entries still being submitted start new batches, due after their wait as usual.
    for batcher in batchers.iter() {
        batcher.flush();
    }
    while let Some(done) = in_flight.join_next().await {
        finish(
            done.context("a delivery task failed")??,
            &mut summary,
            printer,
            &progress,
        )?;
    }
    ticker.abort();
    progress.finish();
    summary.elapsed = started.elapsed();
    if !dry_run {
        summary.rate_limits = rate_limit_report(&limit_stats(targets));
    }
    Ok(summary)
}

/// Runs every enabled mapping of every target on one item.
fn dispatch(item: Item, targets: &[Target]) -> Report {
    let mut report = Report {
        index: item.index,
        line: item.line,
        bytes: item.bytes,
        actions: Vec::new(),
        requests: Vec::new(),
        batched: Vec::new(),
        deliveries: Vec::new(),
        errors: Vec::new(),
        skipped: false,
    };
    let event = match item.event {
        Ok(event) => event,
        Err(message) => {
            let place = if item.line > 0 {
                format!("line {}", item.line)
            } else {
                format!("item {}", item.index)
            };
            report
                .errors
                .push((None, "InputError", format!("{place}: {message}"), 400));
            return report;
        }
    };
    let mut skipped_everywhere = true;
    for (target_idx, target) in targets.iter().enumerate() {
        for outcome in target.instance.dispatch(&event) {
            if let Some(key) = outcome.action_key {
                report.actions.push(key);
            }
            match outcome.outcome {
                Outcome::Request(request) => {
                    skipped_everywhere = false;
                    let action = outcome.action_key.unwrap_or("");
                    report.requests.push((target_idx, action, request));
                }
                Outcome::Invalid {
                    name,
                    message,
                    status,
                } => {
                    skipped_everywhere = false;
                    report
                        .errors
                        .push((outcome.action_key, name, message, status));
                }
                Outcome::Batch(item) => {
                    skipped_everywhere = false;
                    let action = outcome.action_key.unwrap_or("");
                    report.batched.push((target_idx, action, item));
                }
                Outcome::Skipped { .. } => {}
            }
        }
    }
    report.skipped = skipped_everywhere;
    report
}

/// Prints one report and adds it to the summary.
fn finish(
    report: Report,
    summary: &mut Summary,
    printer: &mut Printer<'_>,
    progress: &Progress,
) -> anyhow::Result<()> {
    progress.add(report.bytes);
    summary.add(&report);
    printer.print(&report)
}

/// Prints reports; whatever was built from secret settings is redacted unless `--show-secrets`
/// was given (each request and batch entry carries the marks of those places, see
/// `actionkit_runtime::redact`).
struct Printer<'a> {
    format: OutputFormat,
    show_secrets: bool,
    stdout: std::io::StdoutLock<'a>,
}

impl Printer<'_> {
    fn print(&mut self, report: &Report) -> anyhow::Result<()> {
        match self.format {
            OutputFormat::None => Ok(()),
            OutputFormat::Ndjson => {
                let line = report_json(report, Show(self.show_secrets));
                writeln!(self.stdout, "{line}").context("cannot write to standard output")
            }
            OutputFormat::Pretty => {
                let text = report_pretty(report, Show(self.show_secrets));
                write!(self.stdout, "{text}").context("cannot write to standard output")
            }
        }
    }
}

/// How requests and batch entries are shown: with secrets when the field is `true`
/// (`--show-secrets`), else with every place built from a secret redacted.
#[derive(Debug, Clone, Copy)]
struct Show(bool);

impl Show {
    /// The request as it may be shown.
    fn request(self, request: &Request) -> Request {
        if self.0 {
            request.signed()
        } else {
            actionkit_runtime::redact::redact(request)
        }
    }

    /// The batch entry as it may be shown.
    fn entry(self, item: &BatchItem) -> Value {
        if self.0 {
            item.entry.clone()
        } else {
            item.redacted_entry()
        }
    }
}

/// The `--output ndjson` line for one report.
fn report_json(report: &Report, show: Show) -> Value {
    let requests: Vec<Value> = report
        .requests
        .iter()
        .enumerate()
        .map(|(idx, (_, _, request))| {
            let mut obj = request_json(&show.request(request));
            if let (Some(delivery), Value::Object(map)) = (report.deliveries.get(idx), &mut obj) {
                map.insert("result".to_owned(), result_json(delivery));
            }
            obj
        })
        .collect();
    let offset = report.requests.len();
    let batched: Vec<Value> = report
        .batched
        .iter()
        .enumerate()
        .map(|(idx, (_, action, item))| {
            let mut obj = json!({ "action": action, "entry": show.entry(item) });
            if let (Some(delivery), Value::Object(map)) =
                (report.deliveries.get(offset + idx), &mut obj)
            {
                let (batch_len, response_id) = delivery.batch.clone().unwrap_or((0, None));
                let mut result = result_json(delivery);
                if let Value::Object(result) = &mut result {
                    result.insert("batch_len".to_owned(), json!(batch_len));
                    result.insert("response_id".to_owned(), json!(response_id));
                }
                map.insert("result".to_owned(), result);
            }
            obj
        })
        .collect();
    let error = report.errors.first().map(
        |(_, name, message, status)| json!({ "name": name, "message": message, "status": status }),
    );
    let mut line = json!({
        "index": report.index,
        "line": (report.line > 0).then_some(report.line),
        "actions": report.actions,
        "requests": requests,
        "error": error,
    });
    // Only events of batch actions carry the key, so other output stays as it was.
    if !batched.is_empty()
        && let Value::Object(map) = &mut line
    {
        map.insert("batched".to_owned(), Value::Array(batched));
    }
    line
}

/// The `result` of one delivery in `--output ndjson`; `unchanged: true` only on requests that
/// were not sent because they changed nothing.
fn result_json(delivery: &Delivery) -> Value {
    let mut result = json!({
        "delivered": delivery.delivered,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "reason": delivery.reason,
    });
    if delivery.unchanged
        && let Value::Object(map) = &mut result
    {
        map.insert("unchanged".to_owned(), Value::Bool(true));
    }
    result
}

/// A request as JSON: method, URL, lower-case headers and the body.
pub fn request_json(request: &Request) -> Value {
    let mut headers = Map::new();
    for (name, value) in &request.headers {
        headers.insert(name.to_ascii_lowercase(), Value::String(value.clone()));
    }
    json!({
        "method": request.method.as_str(),
        "url": request.url,
        "headers": headers,
        "json": request.json,
    })
}

/// The `--output pretty` block for one report, like Segment's Event Tester.
fn report_pretty(report: &Report, show: Show) -> String {
    let mut out = String::new();
    let place = if report.line > 0 {
        format!("line {}", report.line)
    } else {
        format!("item {}", report.index)
    };
    out.push_str(&format!("── event {} ({place})\n", report.index));
    if report.skipped
        && report.requests.is_empty()
        && report.batched.is_empty()
        && report.errors.is_empty()
    {
        out.push_str("   skipped: no enabled mapping's trigger matched\n");
    }
    for (idx, (_, action, request)) in report.requests.iter().enumerate() {
        let request = show.request(request);
        out.push_str(&format!(
            "   {action}: {} {}\n",
            request.method.as_str(),
            request.url
        ));
        for (name, value) in &request.headers {
            out.push_str(&format!("     {name}: {value}\n"));
        }
        if let Some(body) = &request.json {
            let text = serde_json::to_string_pretty(body).unwrap_or_default();
            for line in text.lines() {
                out.push_str(&format!("     {line}\n"));
            }
        }
        if let Some(delivery) = report.deliveries.get(idx) {
            let status = delivery
                .status
                .map_or("no response".to_owned(), |s| s.to_string());
            let attempts = plural(delivery.attempts as usize, "attempt");
            if delivery.unchanged {
                out.push_str("     → not sent: it changes nothing delivered before\n");
            } else if delivery.delivered {
                out.push_str(&format!("     → delivered: {status} after {attempts}\n"));
            } else {
                let reason = delivery.reason.as_deref().unwrap_or("unknown reason");
                out.push_str(&format!(
                    "     → failed: {status} after {attempts}: {reason}\n"
                ));
            }
        }
    }
    let offset = report.requests.len();
    for (idx, (_, action, item)) in report.batched.iter().enumerate() {
        out.push_str(&format!("   {action}: an entry of a batch\n"));
        let entry = show.entry(item);
        let text = serde_json::to_string_pretty(&entry).unwrap_or_default();
        for line in text.lines() {
            out.push_str(&format!("     {line}\n"));
        }
        if let Some(delivery) = report.deliveries.get(offset + idx) {
            let status = delivery
                .status
                .map_or("no response".to_owned(), |s| s.to_string());
            let (batch_len, response_id) = delivery.batch.clone().unwrap_or((0, None));
            let id = response_id.map_or(String::new(), |id| format!(", {id}"));
            if delivery.unchanged {
                out.push_str("     → not sent: it changes nothing delivered before\n");
            } else if delivery.delivered {
                out.push_str(&format!(
                    "     → delivered in a batch of {batch_len}: {status}{id}\n"
                ));
            } else {
                let reason = delivery.reason.as_deref().unwrap_or("unknown reason");
                out.push_str(&format!(
                    "     → failed in a batch of {batch_len}: {status}: {reason}\n"
                ));
            }
        }
    }
    for (action, name, message, status) in &report.errors {
        let action = action.map_or(String::new(), |a| format!("{a}: "));
        out.push_str(&format!("   {action}{name} ({status}): {message}\n"));
    }
    out
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Counts per action and in total.
#[derive(Debug, Default)]
struct Summary {
    instance: String,
    events: usize,
    bytes: usize,
    skipped: usize,
    input_errors: usize,
    per_action: BTreeMap<&'static str, ActionCounts>,
    elapsed: std::time::Duration,
    /// The time delivery waited for each rate limit, as summary lines.
    rate_limits: String,
}

#[derive(Debug, Default)]
struct ActionCounts {
    delivered: usize,
    /// Not sent because they changed nothing delivered before.
    unchanged: usize,
    failed: BTreeMap<String, usize>,
}

impl Summary {
    fn add(&mut self, report: &Report) {
        if report.skipped && report.requests.is_empty() && report.errors.is_empty() {
            self.skipped += 1;
        }
        for (action, name, message, _) in &report.errors {
            match action {
                Some(action) => {
                    let counts = self.per_action.entry(action).or_default();
                    *counts
                        .failed
                        .entry(format!("{name}: {message}"))
                        .or_default() += 1;
                }
                None => self.input_errors += 1,
            }
        }
        let actions = report
            .requests
            .iter()
            .map(|(_, action, _)| *action)
            .chain(report.batched.iter().map(|(_, action, _)| *action));
        for (idx, action) in actions.enumerate() {
            let counts = self.per_action.entry(action).or_default();
            match report.deliveries.get(idx) {
                // A dry run counts built requests as delivered ("would send").
                None => counts.delivered += 1,
                Some(delivery) if delivery.unchanged => counts.unchanged += 1,
                Some(delivery) if delivery.delivered => counts.delivered += 1,
                Some(delivery) => {
                    let reason = delivery
                        .reason
                        .clone()
                        .unwrap_or_else(|| "unknown reason".into());
                    *counts.failed.entry(reason).or_default() += 1;
                }
            }
        }
    }

    fn failed_total(&self) -> usize {
        self.input_errors
            + self
                .per_action
                .values()
                .map(|c| c.failed.values().sum::<usize>())
                .sum::<usize>()
    }

    fn print(&self, dry_run: bool, to_stderr: bool) -> anyhow::Result<()> {
        let text = self.render(dry_run);
        if to_stderr {
            eprint!("{text}");
        } else {
            print!("{text}");
        }
        Ok(())
    }

    fn render(&self, dry_run: bool) -> String {
        let secs = self.elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            self.events as f64 / secs
        } else {
            0.0
        };
        let delivered_word = if dry_run { "built" } else { "delivered" };
        let mut out = format!(
            "\nSummary for {}{}: {} in {:.2} s ({:.0} events/s)\n",
            self.instance,
            if dry_run {
                " (dry run, nothing sent)"
            } else {
                ""
            },
            plural(self.events, "event"),
            secs,
            rate
        );
        out.push_str(&format!(
            "  {:<24} {:>10} {:>8}\n",
            "action", delivered_word, "failed"
        ));
        for (action, counts) in &self.per_action {
            let failed: usize = counts.failed.values().sum();
            out.push_str(&format!(
                "  {action:<24} {:>10} {failed:>8}\n",
                counts.delivered
            ));
        }
        let unchanged: Vec<String> = self
            .per_action
            .iter()
            .filter(|(_, c)| c.unchanged > 0)
            .map(|(action, c)| format!("{action} {}", c.unchanged))
            .collect();
        if !unchanged.is_empty() {
            let total: usize = self.per_action.values().map(|c| c.unchanged).sum();
            out.push_str(&format!(
                "  not sent, changing nothing delivered before: {total} ({})\n",
                unchanged.join(", ")
            ));
        }
        out.push_str(&format!(
            "  skipped (no trigger matched): {}\n",
            self.skipped
        ));
        out.push_str(&format!("  input errors: {}\n", self.input_errors));
        out.push_str(&self.rate_limits);
        let failures: Vec<(&str, &String, &usize)> = self
            .per_action
            .iter()
            .flat_map(|(action, c)| c.failed.iter().map(move |(r, n)| (*action, r, n)))
            .collect();
        if !failures.is_empty() {
            out.push_str("Failures:\n");
            for (action, reason, n) in failures {
                out.push_str(&format!("  {action}: {n} × {reason}\n"));
            }
        }
        out
    }
}
