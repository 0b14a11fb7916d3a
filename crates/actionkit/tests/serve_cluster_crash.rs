//! Crash test of a cluster: three `serve` nodes on a NATS cluster of three servers (replicas 3),
//! under load spread over the nodes. Random `serve` nodes are killed with SIGKILL and started
//! again, and one NATS server is killed and started again meanwhile; the oracle of
//! `common::crash` then checks that every acknowledged event arrived, and that nothing arrived
//! that was refused, filtered or never sent. Duplicates are counted and reported.
//!
//! The schedule is drawn from a seed (printed, and set with `ACTIONKIT_CRASH_SEED=<n>` to
//! replay a run's choices; thread timing still varies).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::{Duration, Instant};

use actionkit_jetstream::{Config, JetStreamQueue};
use actionkit_nats_testkit::Cluster;
use common::crash::{
    Ledger, Rng, Shared, arrivals, assert_no_problems, check, crash_mock, drain, generate, seed,
    stop_load,
};
use common::serve::*;
use tokio::sync::watch;

/// How many times a `serve` node is killed.
const KILLS: usize = 6;
/// The shortest and longest time between two kills, in milliseconds.
const BETWEEN_KILLS_MS: (u64, u64) = (200, 700);
/// Concurrent load generators.
const GENERATORS: usize = 4;
/// The most events the generators send in total (a bound, not a target).
const MAX_EVENTS: usize = 4_000;
/// The hang guard for the drain after the load (not a performance assertion).
const DRAIN_PATIENCE: Duration = Duration::from_secs(180);

/// Waits until the NATS cluster has elected its JetStream leaders and takes streams.
async fn wait_for_jetstream(urls: &[String]) {
    let started = Instant::now();
    loop {
        let connected = JetStreamQueue::connect(Config {
            urls: urls.to_vec(),
            replicas: 3,
            request_timeout: Duration::from_secs(2),
            ..Config::default()
        })
        .await;
        match connected {
            Ok(_) => return,
            Err(err) if started.elapsed() < Duration::from_secs(60) => {
                eprintln!("waiting for JetStream: {err}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(err) => panic!("the NATS cluster never took streams: {err}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_killed_serve_nodes_and_a_killed_nats_server() {
    let Some(mut nats) = Cluster::start(3) else {
        return;
    };
    let seed = seed("cluster crash test");
    let mut rng = Rng(seed);
    wait_for_jetstream(&nats.urls()).await;

    let mock = crash_mock().await;
    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir().expect("a temp dir"))
        .collect();
    let configs: Vec<std::path::PathBuf> = dirs
        .iter()
        .map(|dir| {
            write_cluster_node_config(
                dir.path(),
                &mock.base_url(),
                &nats.urls(),
                "  rate_limits: false\n  concurrency: 32\n",
                "",
            )
        })
        .collect();
    let start = |node: usize| {
        let config = configs[node].clone();
        tokio::task::spawn_blocking(move || {
            Server::start_with_args(&config, &["--backoff-base", "0.05"])
        })
    };
    let mut servers: Vec<Option<Server>> = Vec::new();
    for node in 0..3 {
        servers.push(Some(start(node).await.expect("a node starts")));
    }
    let live = |servers: &[Option<Server>]| -> Vec<String> {
        servers.iter().flatten().map(|s| s.addr.clone()).collect()
    };
    let (addr_tx, addr_rx) = watch::channel(live(&servers));
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
    let nats_victim = rng.range(0, 2) as usize;
    let mut crash_logs: Vec<String> = Vec::new();
    for kill in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(
            rng.range(BETWEEN_KILLS_MS.0, BETWEEN_KILLS_MS.1),
        ))
        .await;
        if kill == 1 {
            nats.kill_node(nats_victim);
            eprintln!("killed NATS server {nats_victim}");
        }
        if kill == 4 {
            nats.start_node(nats_victim);
            eprintln!("started NATS server {nats_victim} again");
        }
        let victim = rng.range(0, 2) as usize;
        if let Some(server) = servers[victim].take() {
            addr_tx.send_replace(live(&servers));
            let logs = tokio::task::spawn_blocking(move || server.crash())
                .await
                .expect("the kill finishes");
            crash_logs.push(logs);
        }
        // The node comes back after a moment; meanwhile the other two take the load.
        tokio::time::sleep(Duration::from_millis(rng.range(50, 300))).await;
        servers[victim] = Some(start(victim).await.expect("a node restarts"));
        addr_tx.send_replace(live(&servers));
    }
    if !nats.is_running(nats_victim) {
        nats.start_node(nats_victim);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ledger = stop_load(&shared, &mut generators, seed).await;
    let load_time = started.elapsed();

    let drained = match drain(&mock, &ledger, &configs[0], DRAIN_PATIENCE).await {
        Ok(took) => took,
        Err(why) => panic!("seed {seed}: {why}"),
    };
    for server in servers.into_iter().flatten() {
        let (code, logs) = tokio::task::spawn_blocking(move || server.terminate())
            .await
            .expect("the server stops");
        assert_eq!(code, Some(0), "seed {seed}: {logs}");
        crash_logs.push(logs);
    }

    let arrived = arrivals(&mock);
    let verdict = check(&ledger, &arrived);
    let mut problems = verdict.problems;
    let stats = userpilot_stats(&configs[0]);
    if stats["dead_lettered_total"].as_u64() != Some(0) {
        problems.push(format!("something was dead-lettered: {stats}"));
    }
    let all_logs = crash_logs.join("\n");
    if all_logs.contains("panicked") {
        problems.push("a server panicked (see the logs)".to_owned());
    }
    eprintln!(
        "cluster crash test (seed {seed}): {KILLS} serve kills and NATS server {nats_victim} \
         killed and restarted in {load_time:?}; {}; drain {:?}",
        verdict.summary, drained,
    );
    assert_no_problems(seed, &problems, &all_logs);
    assert!(
        verdict.acked > 0 && verdict.delivered > 0,
        "seed {seed}: nothing was acked"
    );
}
