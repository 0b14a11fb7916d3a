//! The load generators and the oracle of the crash tests (`serve_crash.rs` on one node with
//! SQLite, `serve_cluster_crash.rs` on three nodes with JetStream).
//!
//! Several load generators post batches and single `/v1/track` and `/v1/identify` calls, each
//! event with its own `userId`, to a running server chosen at random, and record what became
//! of every event from the answer they got:
//!
//! * **acked**: a 2xx (or, in a partly rejected batch, an item not listed as rejected); it MUST
//!   reach the mock at least once;
//! * **filtered**: acked, but switched off by `integrations: {All: false}`; it MUST never reach
//!   the mock;
//! * **refused**: a 4xx (wrong write key, or an item listed as rejected) or a 503 (nothing
//!   stored); it MUST never reach the mock;
//! * **not sent**: the connection was refused (the server was down), so no byte left; it MUST
//!   never reach the mock;
//! * **unknown**: the request was cut off (the process died while it was in flight); it MAY
//!   reach the mock.
//!
//! Every request that reaches the mock must be the exact expected request of an acked or
//! unknown event; "reached" means the mock accepted it (2xx). Duplicates are allowed and counted
//! ([`check`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actionkit_mock_userpilot::MockHandle;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::serve::WRITE_KEY;

/// SplitMix64: a small seeded generator, enough to draw a reproducible schedule.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// What became of one event, from the answer its request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fate {
    Acked,
    Filtered,
    Refused,
    NotSent,
    Unknown,
}

/// The kinds of event the generators send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Identify,
    Track,
    /// A track event switched off for every destination by `integrations`.
    Filtered,
    /// A track event intake rejects (`properties` is not an object).
    Invalid,
}

/// One event as sent and the request the mock should receive for it.
#[derive(Debug)]
pub struct Sent {
    pub kind: Kind,
    pub path: &'static str,
    pub expected: Value,
    pub fate: Fate,
}

/// Every event sent, by `userId`.
#[derive(Default)]
pub struct Ledger {
    pub events: Mutex<HashMap<String, Sent>>,
}

impl Ledger {
    fn record(&self, items: &[(String, Kind, Value)], fates: &[Fate]) {
        let mut events = self.events.lock().expect("the ledger lock");
        for ((user, kind, _), fate) in items.iter().zip(fates) {
            let (path, expected) = expected_request(user, *kind);
            let previous = events.insert(
                user.clone(),
                Sent {
                    kind: *kind,
                    path,
                    expected,
                    fate: *fate,
                },
            );
            assert!(previous.is_none(), "user id {user} was sent twice");
        }
    }
}

/// The Segment event for `user`, and its `userId`-derived number `n`.
fn segment_event(user: &str, n: u64, kind: Kind) -> Value {
    let message_id = format!("msg-{user}");
    match kind {
        Kind::Identify => json!({
            "type": "identify", "userId": user, "messageId": message_id,
            "traits": {"n": n, "plan": "pro"}
        }),
        Kind::Track => json!({
            "type": "track", "userId": user, "messageId": message_id,
            "event": "Order Completed", "properties": {"n": n}
        }),
        Kind::Filtered => json!({
            "type": "track", "userId": user, "messageId": message_id,
            "event": "Filtered Out", "properties": {"n": n},
            "integrations": {"All": false}
        }),
        Kind::Invalid => json!({
            "type": "track", "userId": user, "messageId": message_id,
            "event": "Never Stored", "properties": "not an object"
        }),
    }
}

/// The path and body the mock receives for an event (the Userpilot presets' requests).
fn expected_request(user: &str, kind: Kind) -> (&'static str, Value) {
    let n = user_number(user);
    match kind {
        Kind::Identify => (
            "/v1/identify",
            json!({"user_id": user, "metadata": {"n": n, "plan": "pro"}}),
        ),
        Kind::Track => (
            "/v1/track",
            json!({"user_id": user, "event_name": "Order Completed", "metadata": {"n": n}}),
        ),
        Kind::Filtered => (
            "/v1/track",
            json!({"user_id": user, "event_name": "Filtered Out", "metadata": {"n": n}}),
        ),
        Kind::Invalid => (
            "/v1/track",
            json!({"user_id": user, "event_name": "Never Stored"}),
        ),
    }
}

/// The number at the end of a user id `g<gen>-<n>`.
fn user_number(user: &str) -> u64 {
    user.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// What a generator shares with the test.
pub struct Shared {
    /// The addresses of the running servers (none while all are down); each request goes to one
    /// of them at random.
    pub addrs: watch::Receiver<Vec<String>>,
    pub stop: AtomicBool,
    pub n_events: AtomicUsize,
    /// The most events the generators send in total (a bound, not a target).
    pub max_events: usize,
    pub ledger: Ledger,
}

/// Posts requests until told to stop or the event budget is spent.
pub async fn generate(shared: Arc<Shared>, gen_idx: usize, seed: u64) {
    let mut rng = Rng(seed ^ (gen_idx as u64).wrapping_mul(0x5851_f42d_4c95_7f2d));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("a client");
    let mut seq: u64 = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        let addrs = shared.addrs.borrow().clone();
        if addrs.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        let addr = &addrs[rng.range(0, addrs.len() as u64 - 1) as usize];
        // The request: a batch (sometimes with a wrong key or one invalid item) or a single call.
        let roll = rng.range(0, 99);
        let (path, n_items, wrong_key) = match roll {
            0..=4 => ("/v1/batch", rng.range(1, 8) as usize, true),
            5..=59 => ("/v1/batch", rng.range(1, 20) as usize, false),
            60..=79 => ("/v1/track", 1, false),
            _ => ("/v1/identify", 1, false),
        };
        if shared.n_events.fetch_add(n_items, Ordering::Relaxed) + n_items > shared.max_events {
            break;
        }
        let invalid_at = (path == "/v1/batch" && !wrong_key && rng.chance(0.15))
            .then(|| rng.range(0, n_items as u64 - 1) as usize);
        let mut items: Vec<(String, Kind, Value)> = Vec::with_capacity(n_items);
        for idx in 0..n_items {
            seq += 1;
            let user = format!("g{gen_idx}-{seq}");
            let kind = if Some(idx) == invalid_at {
                Kind::Invalid
            } else if path == "/v1/identify" {
                Kind::Identify
            } else if path == "/v1/track" {
                if rng.chance(0.05) {
                    Kind::Filtered
                } else {
                    Kind::Track
                }
            } else {
                match rng.range(0, 19) {
                    0 => Kind::Filtered,
                    1..=9 => Kind::Identify,
                    _ => Kind::Track,
                }
            };
            let event = segment_event(&user, seq, kind);
            items.push((user, kind, event));
        }
        let body = if path == "/v1/batch" {
            json!({"batch": items.iter().map(|(_, _, e)| e.clone()).collect::<Vec<_>>()})
        } else {
            let mut event = items[0].2.clone();
            if let Value::Object(map) = &mut event {
                map.remove("type");
            }
            event
        };
        let key = if wrong_key {
            "wk-not-the-key"
        } else {
            WRITE_KEY
        };
        let res = client
            .post(format!("http://{addr}{path}"))
            .basic_auth(key, Some(""))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await;
        let fates = classify(res, &items, wrong_key).await;
        shared.ledger.record(&items, &fates);
        tokio::time::sleep(Duration::from_millis(rng.range(2, 25))).await;
    }
}

/// The fate of each item of a request, from its answer.
async fn classify(
    res: reqwest::Result<reqwest::Response>,
    items: &[(String, Kind, Value)],
    wrong_key: bool,
) -> Vec<Fate> {
    let acked = |kind: Kind| match kind {
        Kind::Filtered => Fate::Filtered,
        Kind::Invalid => Fate::Refused,
        Kind::Identify | Kind::Track => Fate::Acked,
    };
    let unknown = |kind: Kind| match kind {
        // Intake never stores an invalid item, whatever happened to the request.
        Kind::Invalid => Fate::Refused,
        _ => Fate::Unknown,
    };
    let res = match res {
        Ok(res) => res,
        // A refused connection means nothing was sent.
        Err(err) if err.is_connect() => return items.iter().map(|_| Fate::NotSent).collect(),
        Err(_) => return items.iter().map(|(_, k, _)| unknown(*k)).collect(),
    };
    let status = res.status().as_u16();
    if wrong_key {
        assert_eq!(status, 401, "a wrong write key was not refused");
        return items.iter().map(|_| Fate::Refused).collect();
    }
    match status {
        200..=299 | 400 => {
            // The rejected items are listed by index; the others were stored. A batch with some
            // valid items is answered 200, one with none 400.
            let Ok(answer) = res.json::<Value>().await else {
                return items.iter().map(|(_, k, _)| unknown(*k)).collect();
            };
            let rejected: Vec<usize> = answer["rejected"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .filter_map(|r| r["index"].as_u64())
                        .map(|i| i as usize)
                        .collect()
                })
                .unwrap_or_default();
            let invalid: Vec<usize> = items
                .iter()
                .enumerate()
                .filter(|(_, (_, k, _))| *k == Kind::Invalid)
                .map(|(i, _)| i)
                .collect();
            assert_eq!(rejected, invalid, "unexpected rejections: {answer}");
            let all_invalid = invalid.len() == items.len();
            assert_eq!(
                status == 400,
                all_invalid,
                "a batch with {} of {} items invalid was answered {status}: {answer}",
                invalid.len(),
                items.len()
            );
            items.iter().map(|(_, k, _)| acked(*k)).collect()
        }
        // Queue full or too busy: nothing was stored.
        503 => items.iter().map(|_| Fate::Refused).collect(),
        other => panic!("intake answered {other} to a valid request"),
    }
}

/// Whether the mock accepted (2xx) at least one request for `user`.
pub fn accepted(arrived: &BTreeMap<String, Vec<(String, Value, u16)>>, user: &str) -> bool {
    arrived
        .get(user)
        .is_some_and(|requests| requests.iter().any(|(_, _, s)| (200..300).contains(s)))
}

/// What reached the mock, by user id: (path, body, status) per request.
pub fn arrivals(mock: &MockHandle) -> BTreeMap<String, Vec<(String, Value, u16)>> {
    let mut out: BTreeMap<String, Vec<(String, Value, u16)>> = BTreeMap::new();
    for request in mock.requests() {
        if request.path == "/v1/validate" {
            continue;
        }
        let body = request.json.unwrap_or(Value::Null);
        let user = body["user_id"]
            .as_str()
            .unwrap_or("<no user_id>")
            .to_owned();
        out.entry(user)
            .or_default()
            .push((request.path, body, request.status));
    }
    out
}

/// What the oracle found.
pub struct Verdict {
    pub problems: Vec<String>,
    pub summary: String,
    /// Events by fate.
    pub acked: usize,
    pub filtered: usize,
    pub unknown: usize,
    /// Unknown events that arrived.
    pub unknown_arrived: usize,
    /// Events the mock accepted at least once.
    pub delivered: usize,
}

/// Checks what reached the mock against the ledger: every acked event accepted at least once,
/// nothing that was filtered, refused or never sent, every request exactly as expected.
pub fn check(
    ledger: &HashMap<String, Sent>,
    arrived: &BTreeMap<String, Vec<(String, Value, u16)>>,
) -> Verdict {
    let mut problems: Vec<String> = Vec::new();
    let mut n_requests = 0usize;
    let mut unknown_arrived = 0usize;
    for (user, requests) in arrived {
        n_requests += requests.len();
        let Some(sent) = ledger.get(user) else {
            problems.push(format!("{user}: arrived but was never sent: {requests:?}"));
            continue;
        };
        match sent.fate {
            Fate::Acked => {}
            Fate::Unknown => unknown_arrived += 1,
            other => problems.push(format!(
                "{user}: arrived although its fate was {other:?} ({:?})",
                sent.kind
            )),
        }
        for (path, body, status) in requests {
            if path != sent.path || body != &sent.expected || !matches!(status, 200..=299 | 503) {
                problems.push(format!(
                    "{user}: arrived as {path} {body} ({status}); expected {} {}",
                    sent.path, sent.expected
                ));
            }
        }
    }
    for (user, sent) in ledger {
        if sent.fate == Fate::Acked && !accepted(arrived, user) {
            problems.push(format!("{user}: acked but never accepted by the mock"));
        }
    }
    let count = |fate: Fate| ledger.values().filter(|s| s.fate == fate).count();
    let (acked, filtered, refused, not_sent, unknown) = (
        count(Fate::Acked),
        count(Fate::Filtered),
        count(Fate::Refused),
        count(Fate::NotSent),
        count(Fate::Unknown),
    );
    let n_accepted: usize = arrived
        .values()
        .map(|requests| {
            requests
                .iter()
                .filter(|(_, _, status)| (200..300).contains(status))
                .count()
        })
        .sum();
    let delivered = arrived.keys().filter(|u| accepted(arrived, u)).count();
    let duplicates = n_accepted - delivered;
    let injected_503 = n_requests - n_accepted;
    let summary = format!(
        "sent {} events: acked {acked}, filtered {filtered}, refused {refused}, not sent \
         {not_sent}, unknown {unknown} (of which arrived {unknown_arrived}); delivered \
         {delivered} events in {n_accepted} accepted requests, duplicates {duplicates}, \
         injected 503s {injected_503}",
        ledger.len()
    );
    Verdict {
        problems,
        summary,
        acked,
        filtered,
        unknown,
        unknown_arrived,
        delivered,
    }
}

/// The seed of a crash test: `ACTIONKIT_CRASH_SEED`, else the clock; printed so that a run's
/// choices can be replayed.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("ACTIONKIT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("{test} seed: {seed} (replay with ACTIONKIT_CRASH_SEED={seed})");
    seed
}

/// The mock of the crash tests: latency keeps deliveries in flight when a process dies, and a
/// few 503s keep some in their in-process retries, or scheduled for a queue-level retry, then.
pub async fn crash_mock() -> MockHandle {
    super::serve::mock_unlimited(actionkit_mock_userpilot::FaultConfig {
        latency: Some(actionkit_mock_userpilot::Latency::range(
            Duration::from_millis(20),
            Duration::from_millis(120),
        )),
        error_rate: 0.1,
        error_status: 503,
        ..actionkit_mock_userpilot::FaultConfig::default()
    })
    .await
}

/// Stops the load generators and returns what they sent.
pub async fn stop_load(
    shared: &Shared,
    generators: &mut tokio::task::JoinSet<()>,
    seed: u64,
) -> HashMap<String, Sent> {
    shared.stop.store(true, Ordering::Relaxed);
    while let Some(res) = generators.join_next().await {
        if let Err(err) = res {
            panic!("seed {seed}: a load generator failed: {err}");
        }
    }
    std::mem::take(&mut *shared.ledger.events.lock().expect("the ledger lock"))
}

/// Waits until every acked event of `ledger` arrived and the queue of `config` has nothing
/// left to deliver; after `patience`, says how many never arrived, with the queue's stats.
pub async fn drain(
    mock: &MockHandle,
    ledger: &HashMap<String, Sent>,
    config: &std::path::Path,
    patience: Duration,
) -> Result<Duration, String> {
    let started = std::time::Instant::now();
    loop {
        let arrived = arrivals(mock);
        let missing = ledger
            .iter()
            .filter(|(user, sent)| sent.fate == Fate::Acked && !accepted(&arrived, user))
            .count();
        if missing == 0
            && super::serve::live_deliveries(&super::serve::userpilot_stats(config)) == 0
        {
            return Ok(started.elapsed());
        }
        if started.elapsed() > patience {
            let stats = super::serve::queue_stats(config);
            return Err(format!(
                "{missing} acked events never arrived within {patience:?}; stats {stats}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Fails the test with the problems found (the first 50) and the last lines of the servers'
/// logs.
pub fn assert_no_problems(seed: u64, problems: &[String], logs: &str) {
    assert!(
        problems.is_empty(),
        "seed {seed}: {} problems:\n{}\n\nserver logs:\n{}",
        problems.len(),
        problems
            .iter()
            .take(50)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        logs.lines().rev().take(200).collect::<Vec<_>>().join("\n")
    );
}
