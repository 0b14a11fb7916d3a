//! Load benchmark of `actionkit serve`: batch throughput, single-call latency and memory under
//! overload, against the release binary and the mock Userpilot API on 127.0.0.1.
//!
//! Run with `cargo bench -p actionkit --bench serve_load` (add `-- --help` for the knobs). It is a
//! program, not a criterion benchmark: it starts `actionkit mock-userpilot` (rate limits off,
//! answering at once) and, for each phase, a fresh `actionkit serve` with a temporary queue under
//! Cargo's target temp directory (a real disk), with the production queue settings: WAL,
//! `synchronous=FULL` (every acknowledged request was fsynced), group commit. The delivery
//! workers run during every phase and deliver to the mock; the server's CPU is shared between
//! intake and delivery.
//!
//! Phases:
//! 1. throughput: `LOAD_CONNECTIONS` connections post `/v1/batch` bodies of 100 events of about
//!    1 KB each (unique `messageId`s) back to back for `LOAD_THROUGHPUT_SECS`; only events in
//!    2xx answers count as accepted;
//! 2. latency: single `/v1/track` calls at `LOAD_RATE` requests/s for `LOAD_LATENCY_SECS`, open
//!    loop: each request has an intended send time and its latency runs from that time, so a
//!    slow answer cannot hide the requests that would have queued behind it (no coordinated
//!    omission); sent by a single-thread client (`paced.rs`), and reported with the server's own
//!    handler-time histogram beside the client-side percentiles. Then, for `LOAD_FLOOR_SECS`, the
//!    same calls go to the mock, which answers at once: the floor this machine and the client
//!    put under any server's latency, measured under the same hypervisor conditions;
//! 3. overload: `OVERLOAD_CONNECTIONS` connections post batches without pause for
//!    `OVERLOAD_SECS` (default 600) against a queue bounded to `OVERLOAD_MAX_EVENTS` events, so
//!    it fills and intake answers 503 with `Retry-After`; the server's `VmRSS` and `VmHWM` are
//!    sampled every second from `/proc/<pid>/status`.
//!
//! The load generator shares the machine's cores with the server and the mock, so it is lean
//! (pre-built bodies patched in place, keep-alive connections, one thread for the latency
//! phase) and the CPU time of all three processes is reported, from `/proc/<pid>/stat`. On a
//! virtual machine the hypervisor may also run other guests on the same cores; the share of CPU
//! time it took (steal, from `/proc/stat`) is reported with every phase, since latency
//! percentiles move with it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[cfg(target_os = "linux")]
mod paced;

const BIN: &str = env!("CARGO_BIN_EXE_actionkit");
const WRITE_KEY: &str = "wk-load-0f1e2d3c4b5a";
const API_KEY: &str = "sk-load-9a8b7c6d5e4f";
/// Events per `/v1/batch` body.
const BATCH: usize = 100;
/// The placeholder patched with a request sequence number in every `messageId`.
const SEQ_MARK: &str = "@@@@@@@@@@";

/// The benchmark's knobs, read from the environment.
#[derive(Debug, Clone)]
struct Knobs {
    throughput_secs: u64,
    connections: usize,
    latency_secs: u64,
    rate: u64,
    floor_secs: u64,
    overload_secs: u64,
    overload_connections: usize,
    overload_max_events: u64,
    phases: String,
    /// `sqlite` or `jetstream`.
    backend: String,
    /// `serve` nodes sharing the queue in the throughput phase (JetStream only).
    nodes: usize,
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(text) => match text.trim().parse() {
            Ok(value) => value,
            Err(_) => {
                eprintln!("{name}={text} is not a number; using the default");
                default
            }
        },
        Err(_) => default,
    }
}

impl Knobs {
    fn from_env() -> Knobs {
        Knobs {
            throughput_secs: env_num("LOAD_THROUGHPUT_SECS", 20),
            connections: env_num("LOAD_CONNECTIONS", 32usize).max(1),
            latency_secs: env_num("LOAD_LATENCY_SECS", 20),
            rate: env_num("LOAD_RATE", 1000u64).max(1),
            floor_secs: env_num("LOAD_FLOOR_SECS", 10),
            overload_secs: env_num("OVERLOAD_SECS", 600),
            overload_connections: env_num("OVERLOAD_CONNECTIONS", 64usize).max(1),
            overload_max_events: env_num("OVERLOAD_MAX_EVENTS", 200_000u64).max(1000),
            phases: std::env::var("LOAD_PHASES")
                .unwrap_or_else(|_| "throughput,latency,overload".into()),
            backend: std::env::var("LOAD_BACKEND").unwrap_or_else(|_| "sqlite".into()),
            nodes: env_num("LOAD_NODES", 1usize).max(1),
        }
    }

    fn wants(&self, phase: &str) -> bool {
        self.phases.split(',').any(|p| p.trim() == phase)
    }
}

const HELP: &str = "serve_load: load benchmark of `actionkit serve`

Environment:
  LOAD_PHASES            comma-separated phases to run (throughput,latency,overload)
  LOAD_THROUGHPUT_SECS   duration of the batch throughput phase (20)
  LOAD_CONNECTIONS       concurrent connections posting batches (32)
  LOAD_LATENCY_SECS      duration of the single-call latency phase (20)
  LOAD_RATE              single /v1/track calls per second in the latency phase (1000)
  LOAD_FLOOR_SECS        duration of the same calls to a do-nothing server after it, 0 for none (10)
  OVERLOAD_SECS          duration of the overload phase (600)
  OVERLOAD_CONNECTIONS   concurrent connections in the overload phase (64)
  OVERLOAD_MAX_EVENTS    server.queue.max_events in the overload phase (200000)
  LOAD_BACKEND           the queue: sqlite, or jetstream on a nats-server the bench starts (sqlite)
  LOAD_NODES             serve nodes sharing the JetStream queue in the throughput phase (1)
  LOAD_CONSOLE           1 turns the console on, whose delivery overview the workers feed (0)
";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{HELP}");
        return;
    }
    // `cargo test --benches` runs bench targets without `--bench`: do nothing there.
    if !args.iter().any(|a| a == "--bench") {
        println!("serve_load: run with `cargo bench -p actionkit --bench serve_load`");
        return;
    }
    let knobs = Knobs::from_env();
    if knobs.backend != "sqlite" && knobs.backend != "jetstream" {
        eprintln!(
            "LOAD_BACKEND must be sqlite or jetstream, found {}",
            knobs.backend
        );
        std::process::exit(2);
    }
    if knobs.nodes > 1 && knobs.backend == "sqlite" {
        eprintln!("LOAD_NODES above 1 needs LOAD_BACKEND=jetstream: SQLite is one process's queue");
        std::process::exit(2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("the load generator's runtime starts");
    runtime.block_on(run(knobs));
}

/// Process CPU time (user + system), from `/proc/<pid>/stat`, as `getrusage` would give it.
fn cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime (fields 14 and 15 of the line) in clock ticks of 1/100 s.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// `VmRSS` and `VmHWM` of a process in KiB, from `/proc/<pid>/status`.
fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status.lines().find_map(|line| {
            line.strip_prefix(name)?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// A child process whose standard error is drained by a thread, so it can never block on it.
struct Proc {
    child: Child,
    name: &'static str,
    log_lines: Arc<AtomicU64>,
    tail: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Starts `cmd` and waits until a standard-error line yields an address through `find`.
    fn start(
        name: &'static str,
        mut cmd: Command,
        find: fn(&str) -> Option<String>,
    ) -> (Proc, String) {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} does not start: {e}"));
        let stderr = child.stderr.take().expect("stderr is piped");
        let log_lines = Arc::new(AtomicU64::new(0));
        let tail = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log_lines = Arc::clone(&log_lines);
            let tail = Arc::clone(&tail);
            std::thread::spawn(move || {
                let mut sent = false;
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    log_lines.fetch_add(1, Ordering::Relaxed);
                    if !sent && let Some(addr) = find(&line) {
                        sent = tx.send(addr).is_ok();
                    }
                    let mut tail = tail.lock().expect("the log lock");
                    if tail.len() >= 20 {
                        tail.remove(0);
                    }
                    tail.push(line);
                }
            });
        }
        let Ok(addr) = rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{name} did not start listening:\n{}",
                tail.lock().expect("the log lock").join("\n")
            );
        };
        (
            Proc {
                child,
                name,
                log_lines,
                tail,
            },
            addr,
        )
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn cpu(&self) -> Duration {
        cpu_time(&self.pid().to_string())
    }

    /// Stops the process with SIGTERM (falling back to SIGKILL) and waits for it.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    eprintln!("{} did not stop on SIGTERM; killing it", self.name);
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return;
                }
            }
        }
    }
}

fn start_mock() -> (Proc, String) {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "mock-userpilot",
        "--listen",
        "127.0.0.1:0",
        "--no-rate-limits",
    ])
    .env("MOCK_USERPILOT_API_KEY", API_KEY);
    Proc::start("mock-userpilot", cmd, |line| {
        let rest = line.split_once("listening on ")?.1;
        let url = rest.split_whitespace().next()?;
        Some(url.trim_end_matches('/').to_owned())
    })
}

/// Where a phase's queue lives: an SQLite file of its own, or streams of its own on the
/// bench's JetStream (named after the phase, so that phases do not see each other's events).
struct QueueAt {
    nats_url: Option<String>,
    phase: &'static str,
}

impl QueueAt {
    /// The `server.queue` lines choosing the store.
    fn lines(&self) -> String {
        match &self.nats_url {
            None => String::new(),
            Some(url) => {
                let name = self.phase.to_ascii_uppercase();
                format!(
                    "    backend: jetstream\n    jetstream:\n      urls: [\"{url}\"]\n      \
                     stream: EVENTS_{name}\n      dead_letter_stream: DLQ_{name}\n      \
                     replay_stream: REPLAY_{name}\n      subject_prefix: {}\n",
                    self.phase
                )
            }
        }
    }
}

/// Writes a configuration for one server: the mock as the only destination, rate limits off,
/// the queue in `dir` with the given bound.
fn write_config(
    dir: &Path,
    queue: &QueueAt,
    mock_url: &str,
    max_events: u64,
    max_bytes: u64,
) -> PathBuf {
    let backend = queue.lines();
    // With LOAD_CONSOLE=1 the console is on, so that the workers also count what they decide
    // for its delivery overview.
    let console = if console_on() {
        "  console:\n    token_env: LOAD_CONSOLE_TOKEN\n"
    } else {
        ""
    };
    let text = format!(
        "destinations:
  - name: userpilot
    destination: actions-userpilot-cloud
    settings:
      apiKey: ${{LOAD_USERPILOT_KEY}}
      endpoint: {mock_url}/
delivery:
  rate_limits: false
server:
  listen: 127.0.0.1:0
  write_keys:
    - name: load
      key: ${{LOAD_WRITE_KEY}}
  queue:
{backend}    path: {}
    max_events: {max_events}
    max_bytes: {max_bytes}
{console}",
        dir.join("queue.sqlite").display()
    );
    let path = dir.join("actionkit.yaml");
    std::fs::write(&path, text).expect("the config is written");
    path
}

/// Whether `LOAD_CONSOLE=1` asks for the console.
fn console_on() -> bool {
    std::env::var("LOAD_CONSOLE").is_ok_and(|v| v == "1")
}

fn start_server(config: &Path) -> (Proc, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--log-format", "json", "--config"])
        .arg(config)
        .env("LOAD_USERPILOT_KEY", API_KEY)
        .env("LOAD_WRITE_KEY", WRITE_KEY)
        .env("LOAD_CONSOLE_TOKEN", "load-console-token-0123456789")
        .env_remove("RUST_LOG");
    Proc::start("serve", cmd, |line| {
        let value: Value = serde_json::from_str(line).ok()?;
        if value["message"] != "Listening." {
            return None;
        }
        value["addr"].as_str().map(|a| format!("http://{a}"))
    })
}

/// One realistic event of about 1 KB, shaped like what analytics-node sends; its `messageId`
/// holds [`SEQ_MARK`], patched per request.
fn event(conn: usize, idx: usize) -> Value {
    let kind = ["track", "identify", "page", "track"][idx % 4];
    let mut ev = json!({
        "type": kind,
        "userId": format!("user-{conn:03}-{idx:03}"),
        "anonymousId": "0f6c1f2e-7d4b-4a59-9d3e-2a1b5c6d7e8f",
        "messageId": format!("load-{conn:03}-{SEQ_MARK}-{idx:03}"),
        "timestamp": "2024-05-01T11:59:58.123Z",
        "context": {
            "ip": "8.8.8.8",
            "locale": "en-US",
            "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
            "page": {"path": "/checkout", "url": "https://shop.example.com/checkout", "title": "Checkout", "referrer": "https://shop.example.com/cart"}
        },
        "integrations": {"All": true, "Salesforce": false}
    });
    let extra = match kind {
        "track" => json!({
            "event": "Order Completed",
            "properties": {
                "order_id": format!("50314b8e9bcf{conn:03}{idx:06}"),
                "total": 27.5, "revenue": 25.0, "shipping": 3, "tax": 2, "discount": 2.5,
                "coupon": "hasbros", "currency": "USD",
                "products": [
                    {"product_id": "507f1f77bcf86cd799439011", "sku": "45790-32", "name": "Monopoly: 3rd Edition", "price": 19, "quantity": 1, "category": "Games"},
                    {"product_id": "505bd76785ebb509fc183733", "sku": "46493-32", "name": "Uno Card Game", "price": 3, "quantity": 2, "category": "Games"}
                ]
            }
        }),
        "identify" => json!({
            "traits": {"email": "peter@example.com", "name": "Peter Gibbons", "plan": "premium", "logins": 5,
                       "company": {"id": "acme", "name": "Initech"}, "createdAt": "2023-02-01T10:00:00Z",
                       "address": {"city": "Austin", "country": "US", "postalCode": "78701"}}
        }),
        _ => json!({
            "name": "Checkout",
            "properties": {"path": "/checkout", "url": "https://shop.example.com/checkout", "title": "Checkout",
                           "referrer": "https://shop.example.com/cart", "search": "?step=2", "category": "Shop",
                           "experiment": {"id": "exp-42", "variant": "B"}}
        }),
    };
    if let (Some(ev), Value::Object(extra)) = (ev.as_object_mut(), extra) {
        ev.extend(extra);
    }
    ev
}

/// A request body whose `messageId`s are made unique per request by writing a sequence number
/// over the [`SEQ_MARK`] placeholders.
struct Template {
    bytes: Vec<u8>,
    marks: Vec<usize>,
}

impl Template {
    fn new(body: &Value) -> Template {
        let bytes = serde_json::to_vec(body).expect("a body serialises");
        let marks = bytes
            .windows(SEQ_MARK.len())
            .enumerate()
            .filter(|(_, w)| *w == SEQ_MARK.as_bytes())
            .map(|(pos, _)| pos)
            .collect();
        Template { bytes, marks }
    }

    fn batch(conn: usize) -> Template {
        let events: Vec<Value> = (0..BATCH).map(|idx| event(conn, idx)).collect();
        Template::new(&json!({
            "batch": events,
            "context": {"library": {"name": "analytics-node", "version": "2.1.0"}},
            "sentAt": "2024-05-01T11:59:59.000Z"
        }))
    }

    fn track(conn: usize) -> Template {
        let mut ev = event(conn, 0);
        if let Some(ev) = ev.as_object_mut() {
            ev.remove("type");
        }
        Template::new(&ev)
    }

    /// The body with `seq` in every `messageId`.
    fn fill(&self, seq: u64) -> Vec<u8> {
        let mut out = self.bytes.clone();
        let digits = format!("{seq:010}");
        for &pos in &self.marks {
            out[pos..pos + SEQ_MARK.len()].copy_from_slice(digits.as_bytes());
        }
        out
    }
}

/// What the answers of one phase were.
#[derive(Default)]
struct Tally {
    accepted_events: AtomicU64,
    requests: AtomicU64,
    statuses: Mutex<BTreeMap<String, u64>>,
    retry_after_missing: AtomicU64,
}

impl Tally {
    fn count(&self, status: String) {
        self.add(status, 1);
    }

    fn add(&self, status: String, n: u64) {
        *self
            .statuses
            .lock()
            .expect("the tally lock")
            .entry(status)
            .or_insert(0) += n;
    }

    fn histogram(&self) -> String {
        self.statuses
            .lock()
            .expect("the tally lock")
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn count_of(&self, status: &str) -> u64 {
        self.statuses
            .lock()
            .expect("the tally lock")
            .get(status)
            .copied()
            .unwrap_or(0)
    }
}

fn client(connections: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .no_proxy()
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("the HTTP client builds")
}

/// The share of `/v1/track` requests the server itself handled within 5 ms and within 10 ms,
/// from its request duration histogram (handler time: what the server adds, without the
/// client's and the network's share).
async fn server_side_shares(client: &reqwest::Client, base: &str) -> Option<(f64, f64)> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let value = |needle: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(needle))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    let name = "actionkit_intake_request_duration_seconds";
    let total = value(&format!("{name}_count{{path=\"track\"}}"))?;
    let within_5 = value(&format!("{name}_bucket{{path=\"track\",le=\"0.005\"}}"))?;
    let within_10 = value(&format!("{name}_bucket{{path=\"track\",le=\"0.01\"}}"))?;
    (total > 0.0).then(|| (100.0 * within_5 / total, 100.0 * within_10 / total))
}

/// Posts one body; returns the status and, for a 2xx, how many events the answer accepted.
async fn post(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    tally: &Tally,
) -> Option<reqwest::StatusCode> {
    let res = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-write-key", WRITE_KEY)
        .body(body)
        .send()
        .await;
    tally.requests.fetch_add(1, Ordering::Relaxed);
    let res = match res {
        Ok(res) => res,
        Err(err) => {
            let kind = if err.is_timeout() {
                "timeout"
            } else if err.is_connect() {
                "connect error"
            } else {
                "transport error"
            };
            tally.count(kind.to_owned());
            return None;
        }
    };
    let status = res.status();
    if status == reqwest::StatusCode::SERVICE_UNAVAILABLE
        && res.headers().get("retry-after").is_none()
    {
        tally.retry_after_missing.fetch_add(1, Ordering::Relaxed);
    }
    let body = res.bytes().await.unwrap_or_default();
    if status.is_success() {
        let accepted = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["accepted"].as_u64())
            .unwrap_or(0);
        tally.accepted_events.fetch_add(accepted, Ordering::Relaxed);
    }
    tally.count(status.as_u16().to_string());
    Some(status)
}

/// The machine's CPU time stolen by the hypervisor and its total CPU time, in clock ticks, from
/// the `cpu` line of `/proc/stat`; `None` where that file is missing or unreadable.
fn machine_steal() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|t| t.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let steal = *ticks.get(7)?;
    Some((steal, ticks.iter().take(8).sum()))
}

/// CPU use over a phase.
struct CpuMark {
    at: Instant,
    server: Duration,
    nats: Duration,
    mock: Duration,
    loadgen: Duration,
    steal: Option<(u64, u64)>,
}

/// CPU use over a phase: the three processes in cores (CPU seconds per second) and the share of
/// the machine's CPU time that the hypervisor gave to other guests (steal), in percent.
struct CpuUse {
    wall_secs: f64,
    server: f64,
    nats: f64,
    mock: f64,
    loadgen: f64,
    steal_percent: Option<f64>,
}

impl CpuMark {
    fn take(server: &Proc, mock: &Proc) -> CpuMark {
        CpuMark::take_all(std::slice::from_ref(server), mock)
    }

    /// A mark of several servers (their CPU time summed) and the bench's nats-server, if any.
    fn take_all(servers: &[Proc], mock: &Proc) -> CpuMark {
        CpuMark {
            at: Instant::now(),
            server: servers.iter().map(Proc::cpu).sum(),
            nats: NATS_PID
                .get()
                .map_or(Duration::ZERO, |pid| cpu_time(&pid.to_string())),
            mock: mock.cpu(),
            loadgen: cpu_time("self"),
            steal: machine_steal(),
        }
    }

    /// The CPU use from this mark to now.
    fn cores_since(&self, server: &Proc, mock: &Proc) -> CpuUse {
        self.cores_since_all(std::slice::from_ref(server), mock)
    }

    fn cores_since_all(&self, servers: &[Proc], mock: &Proc) -> CpuUse {
        let now = CpuMark::take_all(servers, mock);
        let wall = now.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let steal_percent = match (self.steal, now.steal) {
            (Some((s0, t0)), Some((s1, t1))) if t1 > t0 => {
                Some(100.0 * s1.saturating_sub(s0) as f64 / (t1 - t0) as f64)
            }
            _ => None,
        };
        CpuUse {
            wall_secs: wall,
            server: (now.server - self.server).as_secs_f64() / wall,
            nats: (now.nats - self.nats).as_secs_f64() / wall,
            mock: (now.mock - self.mock).as_secs_f64() / wall,
            loadgen: (now.loadgen - self.loadgen).as_secs_f64() / wall,
            steal_percent,
        }
    }
}

/// Starts one task per template posting its bodies back to back (each with a new sequence number)
/// to one of `urls` until `stop` is set.
fn spawn_posters(
    templates: Vec<Arc<Template>>,
    http: &reqwest::Client,
    urls: &[String],
    tally: &Arc<Tally>,
    stop: &Arc<AtomicBool>,
) -> tokio::task::JoinSet<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for (idx, template) in templates.into_iter().enumerate() {
        // Connections are spread over the servers round-robin.
        let url = urls[idx % urls.len()].clone();
        let (http, tally, stop) = (http.clone(), tally.clone(), stop.clone());
        tasks.spawn(async move {
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                post(&http, &url, template.fill(seq), &tally).await;
            }
        });
    }
    tasks
}

/// Reads the server's delivery counter from `/metrics`: outcome `delivered`, all destinations.
async fn delivered(client: &reqwest::Client, base: &str) -> u64 {
    let Ok(res) = client.get(format!("{base}/metrics")).send().await else {
        return 0;
    };
    let text = res.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("actionkit_deliveries_total") && l.contains("delivered"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The process id of the bench's nats-server, when the queue is on JetStream.
static NATS_PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// Rows of the final Markdown table.
#[derive(Default)]
struct Report {
    rows: Vec<(String, String, String)>,
}

impl Report {
    fn add(&mut self, what: &str, value: String, notes: String) {
        println!("  {what}: {value} ({notes})");
        self.rows.push((what.to_owned(), value, notes));
    }
}

async fn run(knobs: Knobs) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temporary directory");
    println!(
        "serve_load: {} on {} cores, load average before: {}",
        BIN,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    println!("knobs: {knobs:?}");
    let (mock, mock_url) = start_mock();
    let mut report = Report::default();
    let nats = (knobs.backend == "jetstream").then(|| {
        let server = actionkit_nats_testkit::Server::start().expect(
            "LOAD_BACKEND=jetstream needs nats-server (`cargo xtask test --deps-only` installs it)",
        );
        if let Some(pid) = server.pid() {
            let _ = NATS_PID.set(pid);
        }
        println!(
            "JetStream: {} (data in {})",
            server.url(),
            server.dir().display()
        );
        server
    });
    let nats_url = nats.as_ref().map(|n| n.url().to_owned());
    let queue_at = |phase: &'static str| QueueAt {
        nats_url: nats_url.clone(),
        phase,
    };

    if knobs.wants("throughput") {
        throughput(
            &knobs,
            dir.path(),
            &queue_at("throughput"),
            &mock,
            &mock_url,
            &mut report,
        )
        .await;
    }
    if knobs.wants("latency") {
        #[cfg(target_os = "linux")]
        latency(
            &knobs,
            dir.path(),
            &queue_at("latency"),
            &mock,
            &mock_url,
            &mut report,
        )
        .await;
        #[cfg(not(target_os = "linux"))]
        println!("\n## latency: skipped, its client needs Linux (epoll and timerfd)");
    }
    if knobs.wants("overload") {
        overload(
            &knobs,
            dir.path(),
            &queue_at("overload"),
            &mock,
            &mock_url,
            &mut report,
        )
        .await;
    }
    mock.stop();

    println!();
    if knobs.backend == "jetstream" {
        println!(
            "Queue: NATS JetStream (one nats-server on this machine, file storage, replicas 1), \
             every acknowledgement after JetStream's publish acknowledgement; {} serve node(s) \
             in the throughput phase; delivery workers on, delivering to mock-userpilot (rate \
             limits off, no latency) on 127.0.0.1.",
            knobs.nodes
        );
    } else {
        println!(
            "Queue: SQLite WAL, synchronous=FULL (fsync before every acknowledgement), group commit, \
             default settings; delivery workers on, delivering to mock-userpilot (rate limits off, \
             no latency) on 127.0.0.1."
        );
    }
    println!();
    println!("| measure | value | conditions |");
    println!("|---|---|---|");
    for (what, value, notes) in &report.rows {
        println!("| {what} | {value} | {notes} |");
    }
}

fn phase_dir(base: &Path, name: &str) -> PathBuf {
    let dir = base.join(name);
    std::fs::create_dir_all(&dir).expect("the phase directory is created");
    dir
}

fn cpu_note(cores: CpuUse) -> String {
    let steal = cores
        .steal_percent
        .map_or_else(|| "unknown".to_string(), |p| format!("{p:.1}%"));
    let nats = if NATS_PID.get().is_some() {
        format!(", nats-server {:.2}", cores.nats)
    } else {
        String::new()
    };
    format!(
        "CPU cores used: server {:.2}{nats}, mock {:.2}, load generator {:.2}; CPU stolen by the hypervisor: {steal}",
        cores.server, cores.mock, cores.loadgen
    )
}

async fn throughput(
    knobs: &Knobs,
    base: &Path,
    queue: &QueueAt,
    mock: &Proc,
    mock_url: &str,
    report: &mut Report,
) {
    let secs = knobs.throughput_secs;
    println!(
        "\n## throughput: {} connections, /v1/batch x {BATCH} events, {secs} s, {} node(s) on {}",
        knobs.connections, knobs.nodes, knobs.backend
    );
    let mut servers = Vec::new();
    let mut base_urls = Vec::new();
    for node in 0..knobs.nodes {
        let dir = phase_dir(base, &format!("throughput-{node}"));
        // Room for everything the phase can send: no 503 for a full queue here. JetStream
        // reserves a stream's bytes on disk when it is created, so it gets what a 15-second
        // phase can fill rather than SQLite's never-reached 200 GiB.
        let max_bytes = if queue.nats_url.is_some() {
            16 << 30
        } else {
            200 << 30
        };
        let config = write_config(&dir, queue, mock_url, 50_000_000, max_bytes);
        let (server, base_url) = start_server(&config);
        servers.push(server);
        base_urls.push(base_url);
    }
    let urls: Vec<String> = base_urls.iter().map(|b| format!("{b}/v1/batch")).collect();
    let http = client(knobs.connections);
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let templates: Vec<Arc<Template>> = (0..knobs.connections)
        .map(|c| Arc::new(Template::batch(c)))
        .collect();
    println!(
        "  body: {} bytes for {BATCH} events",
        templates[0].bytes.len()
    );
    let start_mark = CpuMark::take_all(&servers, mock);
    let delivered_before = delivered_all(&http, &base_urls).await;
    let mut tasks = spawn_posters(templates, &http, &urls, &tally, &stop);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let accepted = tally.accepted_events.load(Ordering::Relaxed);
    let cores = start_mark.cores_since_all(&servers, mock);
    stop.store(true, Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}
    let delivered_during = delivered_all(&http, &base_urls).await - delivered_before;
    let wall = cores.wall_secs;
    let rate = accepted as f64 / wall;
    report.add(
        &format!(
            "accepted events/s through /v1/batch (100 x ~1 KB), {} {} node(s)",
            knobs.backend, knobs.nodes
        ),
        format!("{rate:.0}"),
        format!(
            "{} connections, {secs} s, {accepted} events in 2xx answers, answers {{{}}}; delivered to the mock meanwhile: {delivered_during}; {}; load avg {}",
            knobs.connections,
            tally.histogram(),
            cpu_note(cores),
            load_average()
        ),
    );
    for server in servers {
        server.stop();
    }
}

/// The delivery counters of every server, summed.
async fn delivered_all(client: &reqwest::Client, bases: &[String]) -> u64 {
    let mut sum = 0;
    for base in bases {
        sum += delivered(client, base).await;
    }
    sum
}

#[cfg(target_os = "linux")]
async fn latency(
    knobs: &Knobs,
    base: &Path,
    queue: &QueueAt,
    mock: &Proc,
    mock_url: &str,
    report: &mut Report,
) {
    let secs = knobs.latency_secs;
    let rate = knobs.rate;
    println!("\n## latency: single /v1/track calls, {rate}/s open loop, {secs} s");
    let dir = phase_dir(base, "latency");
    let config = write_config(&dir, queue, mock_url, 10_000_000, 20 << 30);
    let (server, base_url) = start_server(&config);
    let http = client(4);
    let addr = base_url.trim_start_matches("http://").to_owned();
    let template = Template::track(999);
    // One second at the same rate warms the server up and opens the connections, outside the
    // measurement.
    let warm_up = (0..rate)
        .map(|seq| track_request(&addr, &template.fill(1_000_000_000 + seq)))
        .collect();
    let warmed = paced_run(&addr, rate, warm_up).await.accepted();
    // Requests are built before the clock starts.
    let requests = (0..secs * rate)
        .map(|seq| track_request(&addr, &template.fill(seq)))
        .collect();
    let start_mark = CpuMark::take(&server, mock);
    let outcome = paced_run(&addr, rate, requests).await;
    let cores = start_mark.cores_since(&server, mock);
    let ok: Vec<&paced::Answer> = outcome
        .answers
        .iter()
        .filter(|a| (200..300).contains(&a.status))
        .collect();
    let server_side = match server_side_shares(&http, &base_url).await {
        Some((within_5, within_10)) => format!(
            "server-side handler time (its /metrics histogram, warm-up included): {within_5:.2}% within 5 ms, {within_10:.2}% within 10 ms"
        ),
        None => "server-side handler time unavailable".to_owned(),
    };
    let from_sent = paced::Percentiles::of(ok.iter().map(|a| a.from_sent));
    let conditions = format!(
        "{rate} req/s open loop for {secs} s, {} requests on {} connections, answers {{{}}}, {} written more than 1 ms after their intended time (counted in their latency; p50 / p99 from the actual write instead: {:.2} / {:.2} ms); {server_side}; {}; load avg {}",
        secs * rate,
        outcome.connections,
        answer_tally(&outcome).histogram(),
        outcome.late_sends,
        from_sent.at(0.50),
        from_sent.at(0.99),
        cpu_note(cores),
        load_average()
    );
    let lat = paced::Percentiles::of(ok.iter().map(|a| a.from_intended));
    report.add(
        "/v1/track latency p50 / p90 / p99 / max (ms)",
        lat.summary(),
        conditions,
    );

    // The floor: the same client at the same rate against the mock, which answers 401 at once
    // (the write key is not its API key): what this machine, its loopback and the client add to
    // every request. Measured right after the server's run, so the hypervisor's share is alike,
    // once the server has delivered what it accepted and idles.
    let floor_secs = knobs.floor_secs;
    if floor_secs == 0 {
        server.stop();
        return;
    }
    let accepted = ok.len() as u64 + warmed;
    let deadline = Instant::now() + Duration::from_secs(60);
    while delivered(&http, &base_url).await < accepted && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mock_addr = mock_url.trim_start_matches("http://").to_owned();
    let requests = (0..floor_secs * rate)
        .map(|seq| track_request(&mock_addr, &template.fill(2_000_000_000 + seq)))
        .collect();
    let start_mark = CpuMark::take(&server, mock);
    let outcome = paced_run(&mock_addr, rate, requests).await;
    let cores = start_mark.cores_since(&server, mock);
    let lat = paced::Percentiles::of(outcome.answers.iter().map(|a| a.from_intended));
    report.add(
        "floor: the same calls to a do-nothing server, p50 / p90 / p99 / max (ms)",
        lat.summary(),
        format!(
            "{rate} req/s open loop for {floor_secs} s against mock-userpilot answering 401 at once, answers {{{}}}, {} written late; {}",
            answer_tally(&outcome).histogram(),
            outcome.late_sends,
            cpu_note(cores),
        ),
    );
    server.stop();
}

/// A paced run's answers by status and its failures by kind, in the other phases' [`Tally`].
#[cfg(target_os = "linux")]
fn answer_tally(outcome: &paced::Outcome) -> Tally {
    let tally = Tally::default();
    for answer in &outcome.answers {
        tally.count(answer.status.to_string());
    }
    for (what, &n) in &outcome.failures {
        tally.add((*what).to_owned(), n);
    }
    tally
}

/// A `/v1/track` request with the load's write key.
#[cfg(target_os = "linux")]
fn track_request(addr: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST /v1/track HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nX-Write-Key: {WRITE_KEY}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// Runs the paced client on its own thread; a run that fails (no epoll or timer) is a broken
/// bench.
#[cfg(target_os = "linux")]
async fn paced_run(addr: &str, rate: u64, requests: Vec<Vec<u8>>) -> paced::Outcome {
    let addr = addr.to_owned();
    tokio::task::spawn_blocking(move || paced::run(&addr, rate, requests, Duration::from_secs(30)))
        .await
        .expect("the paced client does not panic")
        .expect("the paced client runs")
}

async fn overload(
    knobs: &Knobs,
    base: &Path,
    queue: &QueueAt,
    mock: &Proc,
    mock_url: &str,
    report: &mut Report,
) {
    let secs = knobs.overload_secs.max(2);
    println!(
        "\n## overload: {} connections, batches without pause, queue bound {} events, {secs} s",
        knobs.overload_connections, knobs.overload_max_events
    );
    let dir = phase_dir(base, "overload");
    let config = write_config(&dir, queue, mock_url, knobs.overload_max_events, 1 << 30);
    let (server, base_url) = start_server(&config);
    let pid = server.pid();
    let url = format!("{base_url}/v1/batch");
    let http = client(knobs.overload_connections);
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let start_mark = CpuMark::take(&server, mock);
    let delivered_before = delivered(&http, &base_url).await;
    let templates = (0..knobs.overload_connections)
        .map(|conn| Arc::new(Template::batch(conn)))
        .collect();
    let mut tasks = spawn_posters(templates, &http, std::slice::from_ref(&url), &tally, &stop);
    // Sample memory once a second; the first and last minute (a tenth of the run when shorter
    // than ten minutes) are compared to tell a plateau from growth.
    let window = (secs / 10).clamp(1, 60);
    let started = Instant::now();
    let mut samples: Vec<(u64, u64, u64)> = Vec::with_capacity(secs as usize + 1);
    let mut last_print = 0;
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let at = started.elapsed().as_secs();
        if let Some((rss, hwm)) = memory_kib(pid) {
            samples.push((at, rss, hwm));
            if at >= last_print + 30 || at < 3 {
                last_print = at;
                println!(
                    "  t={at:>4} s  VmRSS {:>7.1} MiB  VmHWM {:>7.1} MiB  accepted {}  answers {{{}}}",
                    rss as f64 / 1024.0,
                    hwm as f64 / 1024.0,
                    tally.accepted_events.load(Ordering::Relaxed),
                    tally.histogram()
                );
            }
        }
    }
    let cores = start_mark.cores_since(&server, mock);
    stop.store(true, Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}
    let delivered_during = delivered(&http, &base_url).await - delivered_before;
    let mib = |kib: u64| kib as f64 / 1024.0;
    let peak_in = |from: u64, to: u64| {
        samples
            .iter()
            .filter(|(at, _, _)| *at >= from && *at <= to)
            .map(|(_, rss, _)| *rss)
            .max()
            .unwrap_or(0)
    };
    let last_at = samples.last().map_or(0, |s| s.0);
    let first_peak = peak_in(0, window);
    let last_peak = peak_in(last_at.saturating_sub(window), last_at);
    // The kernel updates `VmHWM` lazily (on some unmaps and at exit), so it can trail a `VmRSS`
    // sampled later; the peak is the larger of the two over all samples.
    let hwm = samples.iter().map(|s| s.1.max(s.2)).max().unwrap_or(0);
    let plateau = last_peak as f64 <= first_peak as f64 * 1.10;
    let shed = tally.count_of("503");
    let accepted = tally.accepted_events.load(Ordering::Relaxed);
    report.add(
        "peak RSS under overload (VmHWM)",
        format!("{:.1} MiB", mib(hwm)),
        format!(
            "{secs} s, {} connections posting batches without pause, server.queue.max_events {}; VmRSS peak in the first {window} s {:.1} MiB, in the last {window} s {:.1} MiB: {}; answers {{{}}} ({shed} x 503{}); accepted {accepted} events ({:.0}/s), delivered {delivered_during}; server log lines {}; {}; load avg {}",
            knobs.overload_connections,
            knobs.overload_max_events,
            mib(first_peak),
            mib(last_peak),
            if plateau { "plateaued (last ≤ first + 10 %)" } else { "STILL GROWING (last > first + 10 %)" },
            tally.histogram(),
            match tally.retry_after_missing.load(Ordering::Relaxed) {
                0 => ", all with Retry-After".to_owned(),
                n => format!(", {n} WITHOUT Retry-After"),
            },
            accepted as f64 / cores.wall_secs,
            server.log_lines.load(Ordering::Relaxed),
            cpu_note(cores),
            load_average()
        ),
    );
    let tail = server.tail.lock().expect("the log lock").clone();
    if tail.iter().any(|l| l.contains("\"ERROR\"")) {
        println!("  last server log lines:\n{}", tail.join("\n"));
    }
    server.stop();
}
