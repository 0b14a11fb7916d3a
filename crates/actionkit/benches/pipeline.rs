//! The `send` pipeline benchmark: a program (not a criterion harness) that measures the release
//! `actionkit` binary as a user runs it.
//!
//! Run with `cargo bench -p actionkit --bench pipeline`. It:
//! 1. generates a deterministic, realistic corpus (about 1.7 KB per event; 50 % track, 35 %
//!    identify, 15 % group) into a temporary directory;
//! 2. times `send --dry-run --output none` on it as a subprocess under `/usr/bin/time`, which
//!    also reports the child's CPU time and peak RSS, and times a plain serde_json parse +
//!    serialize of every line of the same file on one thread of this process (the floor); both
//!    wall-clock and CPU-time ratios are printed, since `send` parses and dispatches on every
//!    core while the floor uses one (the 1× run is repeated pinned to one core where
//!    `/usr/bin/taskset` exists);
//! 3. repeats the dry run on 2× and 4× the input, to show that peak memory stays flat;
//! 4. starts mock-userpilot with rate limits off and compares `send` delivery throughput with a
//!    plain load generator (reqwest, same concurrency, the same request bodies).
//!
//! Sizes: `PIPELINE_EVENTS` (default 100000) and `PIPELINE_DELIVERY_EVENTS` (default 20000).
//! With `PIPELINE_WRITE_CORPUS=FILE` it only writes the corpus of `PIPELINE_EVENTS` events to
//! `FILE` (for profiling) and exits.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_actionkit");
const KEY: &str = "bench-key";
const CONCURRENCY: usize = 16;

/// A request for the plain load generator: URL, headers and body bytes.
type PlainRequest = (String, Vec<(String, String)>, Vec<u8>);

fn main() {
    // `cargo bench` passes `--bench`; any other argument is a filter we do not support.
    let events: usize = env_usize("PIPELINE_EVENTS", 100_000);
    let delivery_events: usize = env_usize("PIPELINE_DELIVERY_EVENTS", 20_000);
    if let Ok(path) = std::env::var("PIPELINE_WRITE_CORPUS") {
        // For profiling: only write the corpus of `PIPELINE_EVENTS` events to `path`.
        let bytes = write_corpus(Path::new(&path), events);
        println!("wrote {events} events ({bytes} bytes) to {path}");
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    println!("actionkit send pipeline benchmark (binary: {BIN})");
    println!("Note: figures are wall-clock on a shared machine; other builds may be running.\n");

    println!(
        "| input | events | MB | avg bytes/event | dry run events/s | parse+serialize events/s | wall ratio | dry run CPU s | parse+serialize CPU s | CPU ratio | peak RSS MB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for scale in [1usize, 2, 4] {
        let n = events * scale;
        let path = dir.path().join(format!("corpus-{scale}x.ndjson"));
        let bytes = write_corpus(&path, n);
        let floor = parse_serialize(&path);
        let mut runs = vec![(format!("{scale}×"), timed_dry_run(&path, false))];
        if scale == 1 && Path::new(TASKSET).exists() {
            runs.push(("1×, one core".to_owned(), timed_dry_run(&path, true)));
        }
        for (label, dry) in runs {
            println!(
                "| {label} | {n} | {:.1} | {:.0} | {:.0} | {:.0} | {:.2}× | {:.2} | {:.2} | {:.2}× | {:.1} |",
                bytes as f64 / 1e6,
                bytes as f64 / n as f64,
                n as f64 / dry.wall_secs,
                n as f64 / floor.wall_secs,
                dry.wall_secs / floor.wall_secs,
                dry.cpu_secs,
                floor.cpu_secs,
                dry.cpu_secs / floor.cpu_secs,
                dry.rss_kb as f64 / 1024.0
            );
        }
        std::fs::remove_file(&path).ok();
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "\nwall ratio = dry-run wall time / floor wall time; CPU ratio = the dry run's user+sys CPU \
         seconds (all its threads) / the floor's CPU seconds. The floor runs on one thread in this \
         process. The dry run is a whole process (start-up included) that cuts the input into \
         chunks on one thread and parses and dispatches them on a pool of {cores} worker thread(s) \
         (one per core), so its wall ratio profits from the {cores} core(s) and the CPU ratio is \
         the like-for-like, single-core comparison."
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(delivery(dir.path(), delivery_events));
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A tiny deterministic generator (xorshift64*), so the corpus is the same on every run.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const EVENTS: &[&str] = &[
    "Order Completed",
    "Product Viewed",
    "Invite Sent",
    "Report Exported",
    "Checkout Started",
];
const PLANS: &[&str] = &["free", "growth", "enterprise"];
const CONTENTS: &[&str] = &["hero-banner", "footer-link", "sidebar-cta"];
const PATHS: &[&str] = &[
    "/app/dashboard",
    "/app/settings/billing",
    "/app/reports/weekly",
    "/pricing",
];

/// One realistic analytics.js-style event of about 1.7 KB.
fn event(rng: &mut Rng, i: usize) -> Value {
    let kind = rng.below(100);
    let user = format!("user-{}", rng.below(50_000));
    let ts = format!(
        "2026-11-28T{:02}:{:02}:{:02}.{:03}Z",
        rng.below(24),
        rng.below(60),
        rng.below(60),
        rng.below(1000)
    );
    let path = rng.pick(PATHS);
    let context = json!({
        "library": {"name": "analytics.js", "version": "next-1.70.0"},
        "ip": format!("203.0.{}.{}", rng.below(256), rng.below(256)),
        "locale": "en-US",
        "page": {"path": path, "referrer": "https://www.example.com/blog/launch-week-announcements",
                 "search": "?utm_source=newsletter&utm_medium=email&utm_campaign=launch",
                 "title": "Dashboard · Example App", "url": format!("https://app.example.com{path}")},
        "campaign": {"source": "newsletter", "medium": "email", "name": "launch",
                     "term": "product analytics", "content": rng.pick(CONTENTS)},
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
        "userAgentData": {"brands": [{"brand": "Chromium", "version": "126"},
                                     {"brand": "Google Chrome", "version": "126"},
                                     {"brand": "Not-A.Brand", "version": "24"}],
                          "mobile": false, "platform": "Linux"},
        "timezone": "Europe/Berlin",
        "screen": {"width": 1920, "height": 1080, "density": 2},
        "instanceId": format!("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", rng.next_u64() as u32, rng.below(65536), rng.below(4096), rng.below(4096), rng.below(1 << 48))
    });
    let mut event = json!({
        "messageId": format!("ajs-next-{:016x}{:016x}", rng.next_u64(), i),
        "anonymousId": format!("{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}", rng.next_u64() as u32, rng.below(65536), rng.below(4096), rng.below(4096), rng.below(1 << 48)),
        "timestamp": ts, "sentAt": ts, "receivedAt": ts, "originalTimestamp": ts,
        "userId": user,
        "context": context,
        "integrations": {"All": true, "Userpilot Cloud (Actions)": true},
        "_metadata": {"bundled": ["Segment.io", "Userpilot Cloud (Actions)"], "unbundled": [],
                      "bundledIds": ["647f30a35eedd03afde0a1c3"]},
        "writeKey": "wk-0123456789abcdefABCDEF",
        "version": 2,
    });
    let obj = event.as_object_mut().expect("an object");
    if kind < 50 {
        obj.insert("type".into(), json!("track"));
        obj.insert("event".into(), json!(rng.pick(EVENTS)));
        obj.insert("properties".into(), json!({
            "order_id": format!("ord-{}", rng.next_u64() % 1_000_000), "revenue": (rng.below(100_000) as f64) / 100.0,
            "currency": "EUR", "items": rng.below(10), "plan": rng.pick(PLANS), "source": "web",
            "coupon": "LAUNCH-WEEK", "products": [{"sku": "sku-1", "price": 9.99, "quantity": 1},
                                                 {"sku": "sku-2", "price": 19.99, "quantity": 2}]
        }));
    } else if kind < 85 {
        obj.insert("type".into(), json!("identify"));
        obj.insert("traits".into(), json!({
            "name": format!("User {}", rng.below(100_000)), "email": format!("user{}@example.com", rng.below(100_000)),
            "plan": rng.pick(PLANS), "createdAt": "2024-02-11T08:00:00Z", "logins": rng.below(500),
            "company": {"id": format!("co-{}", rng.below(5000)), "name": "Globex"},
            "address": {"city": "Berlin", "country": "DE", "postalCode": "10115"}
        }));
    } else {
        obj.insert("type".into(), json!("group"));
        obj.insert("groupId".into(), json!(format!("co-{}", rng.below(5000))));
        obj.insert("traits".into(), json!({
            "name": "Globex Corporation", "industry": "Manufacturing", "employees": rng.below(10_000),
            "plan": rng.pick(PLANS), "website": "https://globex.example.com", "createdAt": "2019-06-01T00:00:00Z"
        }));
    }
    event
}

/// Writes `n` events as NDJSON; returns the file size.
fn write_corpus(path: &Path, n: usize) -> u64 {
    let file = std::fs::File::create(path).expect("the corpus file is created");
    let mut out = BufWriter::new(file);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for i in 0..n {
        serde_json::to_writer(&mut out, &event(&mut rng, i)).expect("written");
        out.write_all(b"\n").expect("written");
    }
    out.flush().expect("flushed");
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Wall-clock and CPU time of one measured run, and the peak RSS where known.
struct Timing {
    wall_secs: f64,
    cpu_secs: f64,
    rss_kb: u64,
}

/// Pins a command to CPUs; where it exists, the 1× dry run is repeated on one core.
const TASKSET: &str = "/usr/bin/taskset";

/// Runs `send --dry-run --output none` under `/usr/bin/time`, which reports the child's user and
/// system CPU seconds and its peak RSS; with `one_core`, pinned to CPU 0 (the binary then starts
/// one worker, as it sizes its pool by the CPUs it may use).
fn timed_dry_run(path: &Path, one_core: bool) -> Timing {
    let report = path.with_extension("time");
    let started = Instant::now();
    let mut command = Command::new("/usr/bin/time");
    command.arg("-f").arg("%U %S %M").arg("-o").arg(&report);
    if one_core {
        command.args([TASKSET, "-c", "0"]);
    }
    let status = command
        .arg(BIN)
        .args([
            "send",
            "--dry-run",
            "--output",
            "none",
            "--setting",
            &format!("apiKey={KEY}"),
        ])
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("/usr/bin/time runs the binary");
    let wall_secs = started.elapsed().as_secs_f64();
    assert!(status.success(), "the dry run failed: {status}");
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    let fields: Vec<f64> = text
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let (cpu_secs, rss_kb) = match fields.as_slice() {
        [user, sys, rss] => (user + sys, *rss as u64),
        _ => (f64::NAN, 0),
    };
    Timing {
        wall_secs,
        cpu_secs,
        rss_kb,
    }
}

/// This process's user + system CPU seconds, from `/proc/self/stat` (in clock ticks of 1/100 s,
/// Linux's fixed `USER_HZ`); NaN where that file does not exist.
fn process_cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // The command name in parentheses may contain spaces; the fields after it are plain.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks = |idx: usize| fields.get(idx).and_then(|f| f.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(sys)) => (user + sys) / 100.0,
        _ => f64::NAN,
    }
}

/// Parses and re-serialises every line with serde_json on this thread (the floor).
fn parse_serialize(path: &Path) -> Timing {
    let cpu_before = process_cpu_secs();
    let started = Instant::now();
    let reader = BufReader::with_capacity(256 * 1024, std::fs::File::open(path).expect("opened"));
    let mut total = 0usize;
    for line in reader.split(b'\n') {
        let line = line.expect("read");
        if line.is_empty() {
            continue;
        }
        let value: Value = serde_json::from_slice(&line).expect("valid JSON");
        total += serde_json::to_vec(&value).expect("serialised").len();
    }
    std::hint::black_box(total);
    Timing {
        wall_secs: started.elapsed().as_secs_f64(),
        cpu_secs: process_cpu_secs() - cpu_before,
        rss_kb: 0,
    }
}

/// Compares `send` delivery with a plain load generator against mock-userpilot.
async fn delivery(dir: &Path, n: usize) {
    let mock = actionkit_mock_userpilot::spawn(actionkit_mock_userpilot::MockConfig {
        api_key: Some(KEY.to_owned()),
        rate_limits: actionkit_mock_userpilot::RateLimits::disabled(),
        ..Default::default()
    })
    .await
    .expect("the mock starts");
    let path: PathBuf = dir.join("delivery.ndjson");
    write_corpus(&path, n);
    let endpoint = format!("endpoint={}", mock.base_url());
    let key = format!("apiKey={KEY}");
    let concurrency = CONCURRENCY.to_string();

    // The exact requests `send` would make, secrets shown, for the load generator.
    let dry = {
        let (path, endpoint, key) = (path.clone(), endpoint.clone(), key.clone());
        tokio::task::spawn_blocking(move || {
            Command::new(BIN)
                .args([
                    "send",
                    "--dry-run",
                    "--output",
                    "ndjson",
                    "--show-secrets",
                    "--setting",
                    &key,
                    "--setting",
                    &endpoint,
                ])
                .arg(&path)
                .stderr(Stdio::null())
                .output()
                .expect("the dry run runs")
        })
        .await
        .expect("joined")
    };
    let mut requests: Vec<PlainRequest> = Vec::new();
    for line in dry.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let report: Value = serde_json::from_slice(line).expect("ndjson");
        for request in report["requests"].as_array().into_iter().flatten() {
            let headers = request["headers"]
                .as_object()
                .map(|h| {
                    h.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            let body = serde_json::to_vec(&request["json"]).expect("serialised");
            requests.push((
                request["url"].as_str().unwrap_or_default().to_owned(),
                headers,
                body,
            ));
        }
    }

    let before = mock.count(202);
    let started = Instant::now();
    let out = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(BIN)
                .args([
                    "send",
                    "--output",
                    "none",
                    "--no-rate-limits",
                    "--concurrency",
                    &concurrency,
                    "--setting",
                    &key,
                    "--setting",
                    &endpoint,
                ])
                .arg(&path)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("send runs")
        })
        .await
        .expect("joined")
    };
    let send_secs = started.elapsed().as_secs_f64();
    let send_ok = mock.count(202) - before;
    assert!(out.success(), "send failed: {out}");

    let before = mock.count(202);
    let loadgen_secs = load_generator(Arc::new(requests)).await;
    let gen_ok = mock.count(202) - before;

    println!(
        "\n| delivery to mock-userpilot (rate limits off, concurrency {CONCURRENCY}) | requests | seconds | requests/s |"
    );
    println!("|---|---|---|---|");
    println!(
        "| actionkit send (whole process, {n} events) | {send_ok} | {send_secs:.2} | {:.0} |",
        send_ok as f64 / send_secs
    );
    println!(
        "| plain reqwest load generator, same bodies | {gen_ok} | {loadgen_secs:.2} | {:.0} |",
        gen_ok as f64 / loadgen_secs
    );
    println!(
        "| send / ceiling | | | {:.2} |",
        (send_ok as f64 / send_secs) / (gen_ok as f64 / loadgen_secs)
    );
    mock.shutdown().await.expect("the mock stops");
}

/// Posts every request with `CONCURRENCY` workers over one pooled client; returns the seconds.
async fn load_generator(requests: Arc<Vec<PlainRequest>>) -> f64 {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a client");
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (client, requests, next) = (client.clone(), Arc::clone(&requests), Arc::clone(&next));
        workers.spawn(async move {
            loop {
                let idx = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((url, headers, body)) = requests.get(idx) else {
                    return;
                };
                let mut builder = client.post(url).body(body.clone());
                for (name, value) in headers {
                    builder = builder.header(name, value);
                }
                if let Ok(response) = builder.send().await {
                    let _ = response.bytes().await;
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    started.elapsed().as_secs_f64()
}
