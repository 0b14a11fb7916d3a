//! Crash test of `actionkit serve`: under load, the process is killed with SIGKILL at random
//! moments and restarted on the same queue file each time; an oracle then checks the promise of
//! `docs/guarantees.md`.
//!
//! The load generators and the oracle are `common::crash`: every acked event must arrive,
//! nothing refused, filtered or never sent may, and duplicates are counted. The mock adds
//! latency so deliveries are in flight when the process dies, and answers 10 % of requests 503
//! so some deliveries are between retries then.
//!
//! The schedule is drawn from a seed (printed, and set with `ACTIONKIT_CRASH_SEED=<n>` to replay a
//! run's choices; thread timing still varies). Counts and time are bounded; everything runs on
//! 127.0.0.1.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::{Duration, Instant};

use common::crash::{
    Ledger, Rng, Shared, arrivals, assert_no_problems, check, crash_mock, drain, generate, seed,
    stop_load,
};
use common::serve::*;
use tokio::sync::watch;

/// How many times the server is killed.
const KILLS: usize = 5;
/// The shortest and longest time the server runs before a kill, in milliseconds.
const UPTIME_MS: (u64, u64) = (100, 600);
/// Concurrent load generators.
const GENERATORS: usize = 4;
/// The most events the generators send in total (a bound, not a target).
const MAX_EVENTS: usize = 6_000;
/// How long the load continues after the last restart.
const AFTER_LAST_RESTART: Duration = Duration::from_millis(300);
/// The hang guard for the drain after the last restart (not a performance assertion).
const DRAIN_PATIENCE: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_repeated_kill_9_under_load() {
    let seed = seed("crash test");
    let mut rng = Rng(seed);

    let mock = crash_mock().await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = write_config_with(dir.path(), &mock.base_url(), "  concurrency: 32\n", "");

    let start = {
        let config = config.clone();
        move || {
            let config = config.clone();
            tokio::task::spawn_blocking(move || {
                Server::start_with_args(&config, &["--backoff-base", "0.05"])
            })
        }
    };
    let mut server = start().await.expect("the server starts");
    let (addr_tx, addr_rx) = watch::channel(vec![server.addr.clone()]);
    let shared = Arc::new(Shared {
        addrs: addr_rx,
        stop: AtomicBool::new(false),
        n_events: AtomicUsize::new(0),
        max_events: MAX_EVENTS,
        ledger: Ledger::default(),
    });
    let mut generators = tokio::task::JoinSet::new();
    for gen_idx in 0..GENERATORS {
        generators.spawn(generate(Arc::clone(&shared), gen_idx, seed));
    }

    let started = Instant::now();
    let mut crash_logs: Vec<String> = Vec::new();
    for _ in 0..KILLS {
        let uptime = Duration::from_millis(rng.range(UPTIME_MS.0, UPTIME_MS.1));
        tokio::time::sleep(uptime).await;
        let logs = tokio::task::spawn_blocking(move || server.crash())
            .await
            .expect("the kill finishes");
        crash_logs.push(logs);
        addr_tx.send_replace(Vec::new());
        server = start().await.expect("the server restarts");
        addr_tx.send_replace(vec![server.addr.clone()]);
    }
    tokio::time::sleep(AFTER_LAST_RESTART).await;
    let ledger = stop_load(&shared, &mut generators, seed).await;
    let load_time = started.elapsed();

    let drained = match drain(&mock, &ledger, &config, DRAIN_PATIENCE).await {
        Ok(took) => took,
        Err(why) => {
            let logs = server.crash();
            panic!("seed {seed}: {why}\nlast server log:\n{logs}");
        }
    };
    let (code, logs) = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .expect("the server stops");
    assert_eq!(code, Some(0), "seed {seed}: {logs}");
    crash_logs.push(logs);

    // The oracle.
    let arrived = arrivals(&mock);
    let verdict = check(&ledger, &arrived);
    let mut problems = verdict.problems;
    let (acked, filtered, unknown, unknown_arrived) = (
        verdict.acked,
        verdict.filtered,
        verdict.unknown,
        verdict.unknown_arrived,
    );

    // The queue counted every stored event exactly once, whatever the crashes did: the acked
    // and filtered ones, plus the unknown ones that were stored, which include every unknown
    // one that arrived.
    let stats = userpilot_stats(&config);
    let delivered_total = stats["delivered_total"].as_u64().unwrap_or(0) as usize;
    let stored_unknown = delivered_total.checked_sub(acked + filtered);
    match stored_unknown {
        Some(n) if unknown_arrived <= n && n <= unknown => {}
        _ => problems.push(format!(
            "the queue counted {delivered_total} deliveries for {acked} acked, {filtered} \
             filtered, {unknown} unknown of which {unknown_arrived} arrived"
        )),
    }
    if stats["dead_lettered_total"].as_u64() != Some(0) {
        problems.push(format!("something was dead-lettered: {stats}"));
    }
    let all_logs = crash_logs.join("\n");
    if all_logs.contains("panicked") {
        problems.push("a server panicked (see the logs)".to_owned());
    }

    eprintln!(
        "crash test (seed {seed}): {KILLS} kills in {load_time:?}; {}; queue delivered_total \
         {delivered_total}; drain {:?}",
        verdict.summary, drained,
    );
    assert_no_problems(seed, &problems, &all_logs);
    assert!(
        acked > 0 && verdict.delivered > 0,
        "seed {seed}: nothing was acked"
    );
}
