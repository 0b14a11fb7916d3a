//! The JetStream queue against a real `nats-server` with JetStream, started by each test on a
//! free port in a temporary directory.
//!
//! The server is `$ACTIONKIT_NATS_SERVER`, else `nats-server` on the `PATH` or in `/usr/sbin`
//! (Debian's package, which `cargo xtask test` installs). Without it the tests fail in CI and
//! under `cargo xtask test` (`ACTIONKIT_REQUIRE_CLIENTS`), and are skipped elsewhere.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actionkit_jetstream::{Config, JetStreamError, JetStreamQueue, token};
use bytes::Bytes;

/// A running `nats-server`, killed when dropped.
struct Nats {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ACTIONKIT_NATS_SERVER").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
}

/// The server binary, or `None` after saying the test is skipped; a missing server fails the
/// test in CI and under `cargo xtask test`.
fn binary_or_skip() -> Option<PathBuf> {
    let found = binary();
    if found.is_none() {
        let required = std::env::var_os("CI").is_some()
            || std::env::var_os("ACTIONKIT_REQUIRE_CLIENTS").is_some();
        assert!(
            !required,
            "nats-server is not installed; run `cargo xtask test`, which installs it"
        );
        eprintln!("skipped: nats-server is not installed; run `cargo xtask test`");
    }
    found
}

/// Starts a JetStream server, or says why the test is skipped (`None`).
fn nats() -> Option<Nats> {
    let binary = binary_or_skip()?;
    let dir = tempfile::tempdir().expect("a temp dir");
    let child = Command::new(&binary)
        .args(["-js", "-a", "127.0.0.1", "-p", "-1", "-sd"])
        .arg(dir.path().join("js"))
        .arg("--ports_file_dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server starts");
    // Owned at once, so that the server is killed whatever happens next.
    let mut nats = Nats {
        child,
        url: String::new(),
        dir,
    };
    let started = Instant::now();
    loop {
        let ports = std::fs::read_dir(nats.dir.path())
            .expect("the temp dir")
            .filter_map(Result::ok)
            .find(|entry| entry.file_name().to_string_lossy().ends_with(".ports"));
        if let Some(entry) = ports
            && let Ok(text) = std::fs::read_to_string(entry.path())
            && let Some(start) = text.find("nats://")
        {
            nats.url = text[start..].chars().take_while(|c| *c != '"').collect();
            return Some(nats);
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nats-server wrote no ports file"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn queue(nats: &Nats, lease: Duration) -> JetStreamQueue {
    JetStreamQueue::connect(Config {
        urls: vec![nats.url.clone()],
        lease_duration: lease,
        ..Config::default()
    })
    .await
    .expect("the queue connects")
}

const WAIT: Duration = Duration::from_millis(300);

#[tokio::test]
async fn an_event_retried_within_the_duplicate_window_is_stored_once() {
    let Some(nats) = nats() else { return };
    let q = queue(&nats, Duration::from_secs(30)).await;
    q.add_destination("userpilot").await.expect("consumer");
    let first = q
        .enqueue("m-1", Bytes::from_static(b"{\"a\":1}"))
        .await
        .expect("stored");
    let again = q
        .enqueue("m-1", Bytes::from_static(b"{\"a\":1}"))
        .await
        .expect("stored");
    assert_eq!(first, again, "the retry names the first copy");
    q.enqueue("m-2", Bytes::from_static(b"{}"))
        .await
        .expect("stored");
    let leased = q.lease("userpilot", 10, WAIT).await.expect("leased");
    let ids: Vec<&str> = leased.iter().map(|l| l.message_id.as_str()).collect();
    assert_eq!(ids, ["m-1", "m-2"]);
    assert_eq!(leased[0].payload, Bytes::from_static(b"{\"a\":1}"));
    assert_eq!(leased[0].attempts, 0);
}

#[tokio::test]
async fn every_instance_gets_each_event_and_it_stays_until_all_acknowledged() {
    let Some(nats) = nats() else { return };
    let q = queue(&nats, Duration::from_secs(30)).await;
    q.add_destination("userpilot").await.expect("consumer");
    q.add_destination("audit log").await.expect("consumer");
    q.enqueue("m-1", Bytes::from_static(b"{}"))
        .await
        .expect("stored");
    let a = q.lease("userpilot", 10, WAIT).await.expect("leased");
    let b = q.lease("audit log", 10, WAIT).await.expect("leased");
    assert_eq!((a.len(), b.len()), (1, 1));
    // Leased to one worker, it is not handed to another of the same instance.
    assert!(
        q.lease("userpilot", 10, WAIT)
            .await
            .expect("leased")
            .is_empty()
    );
    q.ack(&a[0]).await.expect("acknowledged");
    assert_eq!(
        q.stored(false).await.expect("info"),
        1,
        "audit log still needs it"
    );
    q.ack(&b[0]).await.expect("acknowledged");
    let started = Instant::now();
    while q.stored(false).await.expect("info") != 0 {
        assert!(started.elapsed() < Duration::from_secs(5), "never removed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_retry_comes_back_after_its_delay_with_one_more_attempt() {
    let Some(nats) = nats() else { return };
    let q = queue(&nats, Duration::from_secs(30)).await;
    q.add_destination("userpilot").await.expect("consumer");
    q.enqueue("m-1", Bytes::from_static(b"{}"))
        .await
        .expect("stored");
    let leased = q.lease("userpilot", 1, WAIT).await.expect("leased");
    let started = Instant::now();
    q.retry(&leased[0], Duration::from_millis(800))
        .await
        .expect("retried");
    assert!(
        q.lease("userpilot", 1, Duration::from_millis(200))
            .await
            .expect("leased")
            .is_empty(),
        "handed out before its delay"
    );
    let again = q
        .lease("userpilot", 1, Duration::from_secs(3))
        .await
        .expect("leased");
    assert_eq!(again.len(), 1);
    assert!(started.elapsed() >= Duration::from_millis(800));
    assert_eq!(
        (again[0].message_id.as_str(), again[0].attempts),
        ("m-1", 1)
    );
}

#[tokio::test]
async fn an_event_a_worker_never_finished_is_handed_out_again_after_its_lease() {
    let Some(nats) = nats() else { return };
    let q = queue(&nats, Duration::from_secs(1)).await;
    q.add_destination("userpilot").await.expect("consumer");
    q.enqueue("m-1", Bytes::from_static(b"{}"))
        .await
        .expect("stored");
    let lost = q.lease("userpilot", 1, WAIT).await.expect("leased");
    assert_eq!(lost.len(), 1);
    // The worker dies: no ack, no retry.
    drop(lost);
    let again = q
        .lease("userpilot", 1, Duration::from_secs(3))
        .await
        .expect("leased");
    assert_eq!((again.len(), again[0].attempts), (1, 1));
}

#[tokio::test]
async fn a_dead_letter_keeps_its_reason_and_is_not_delivered_again() {
    let Some(nats) = nats() else { return };
    let q = queue(&nats, Duration::from_secs(1)).await;
    q.add_destination("userpilot").await.expect("consumer");
    q.enqueue("m-1", Bytes::from_static(b"{\"bad\":true}"))
        .await
        .expect("stored");
    let leased = q.lease("userpilot", 1, WAIT).await.expect("leased");
    q.dead_letter(&leased[0], "identifyUser: 400: Bad Request\nno user")
        .await
        .expect("dead-lettered");
    assert!(
        q.lease("userpilot", 1, Duration::from_millis(1500))
            .await
            .expect("leased")
            .is_empty(),
        "a dead letter came back"
    );
    let dead = q.dead_letters("userpilot").await.expect("read");
    assert_eq!(dead.len(), 1);
    let (reason, message_id, attempts, payload) = &dead[0];
    assert_eq!(reason, "identifyUser: 400: Bad Request no user");
    assert_eq!((message_id.as_str(), *attempts), ("m-1", 1));
    assert_eq!(payload, &Bytes::from_static(b"{\"bad\":true}"));
    assert!(q.dead_letters("other").await.expect("read").is_empty());
}

#[tokio::test]
async fn an_unreachable_server_is_an_error_naming_it() {
    // A port nothing listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("nats://127.0.0.1:{port}");
    let err = JetStreamQueue::connect(Config {
        urls: vec![url.clone()],
        credentials: Some(("svc".to_owned(), "s3cret-password".to_owned())),
        request_timeout: Duration::from_secs(1),
        ..Config::default()
    })
    .await
    .expect_err("nothing listens");
    let text = err.to_string();
    assert!(matches!(err, JetStreamError::Connect { .. }), "{text}");
    assert!(text.contains(&url), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}

#[test]
fn instance_names_become_distinct_nats_tokens() {
    assert_eq!(token("userpilot-eu_1"), "userpilot-eu_1");
    assert_eq!(token("audit log"), "x6175646974206c6f67");
    assert_eq!(token("a.b"), "x612e62");
    // A plain name starting with x is encoded too, so it cannot meet an encoded one.
    assert_eq!(token("x61"), "x783631");
    assert_ne!(token("a"), token("x61"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_share_one_rate_limit() {
    use actionkit_jetstream::rate_limit::ClusterRateLimit;
    let Some(nats) = nats() else { return };
    // Three nodes, each with its own connection, all sending for one instance's limit of 10
    // requests per 500 ms: slots are 50 ms apart whoever takes them.
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let q = queue(&nats, Duration::from_secs(30)).await;
        let limit =
            ClusterRateLimit::new(&q, "userpilot", "identify", 10, Duration::from_millis(500))
                .await
                .expect("the limit");
        nodes.push(limit);
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for node in &nodes {
        for _ in 0..10 {
            let node = node.clone();
            tasks.spawn(async move { node.acquire().await.expect("a slot") });
        }
    }
    let mut slots = Vec::new();
    while let Some(slot) = tasks.join_next().await {
        slots.push(slot.expect("the task"));
    }
    slots.sort();
    assert_eq!(slots.len(), 30);
    for pair in slots.windows(2) {
        let gap = pair[1].duration_since(pair[0]).expect("sorted");
        assert!(gap >= Duration::from_millis(50), "two slots {gap:?} apart");
    }
    // So no 500 ms window holds more than ten, and thirty take at least 29 intervals.
    assert!(started.elapsed() >= Duration::from_millis(29 * 50 - 20));
    let q = queue(&nats, Duration::from_secs(30)).await;
    let zero = ClusterRateLimit::new(&q, "userpilot", "identify", 0, Duration::from_secs(1)).await;
    assert!(zero.is_err(), "a limit of zero requests is refused");
}

/// A free TCP port on 127.0.0.1 (bound, then let go).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A cluster of three JetStream servers on 127.0.0.1; each node can be stopped and started.
struct Cluster {
    binary: PathBuf,
    dir: tempfile::TempDir,
    ports: Vec<(u16, u16)>,
    nodes: Vec<Option<Child>>,
}

impl Cluster {
    fn start() -> Option<Cluster> {
        let binary = binary_or_skip()?;
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let mut cluster = Cluster {
            binary,
            dir: tempfile::tempdir().expect("a temp dir"),
            ports,
            nodes: vec![None, None, None],
        };
        for node in 0..3 {
            cluster.start_node(node);
        }
        Some(cluster)
    }

    fn start_node(&mut self, node: usize) {
        let (client, route) = self.ports[node];
        let routes: Vec<String> = self
            .ports
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != node)
            .map(|(_, (_, route))| format!("nats://127.0.0.1:{route}"))
            .collect();
        let child = Command::new(&self.binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &client.to_string()])
            .args(["-n", &format!("node-{node}"), "--cluster_name", "actionkit"])
            .args(["--cluster", &format!("nats://127.0.0.1:{route}")])
            .args(["--routes", &routes.join(",")])
            .arg("-sd")
            .arg(self.dir.path().join(format!("node-{node}")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.nodes[node] = Some(child);
    }

    fn stop_node(&mut self, node: usize) {
        if let Some(mut child) = self.nodes[node].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|(client, _)| format!("nats://127.0.0.1:{client}"))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in 0..3 {
            self.stop_node(node);
        }
    }
}

/// Retries `op` until it succeeds or `patience` runs out (a cluster electing a leader answers
/// with errors for a few seconds).
async fn eventually<T, F, Fut>(what: &str, patience: Duration, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, JetStreamError>>,
{
    let started = Instant::now();
    loop {
        match op().await {
            Ok(value) => return value,
            Err(_) if started.elapsed() < patience => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => panic!("{what} failed for {patience:?}: {err}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_loses_nothing_when_a_node_dies_and_returns() {
    let Some(mut cluster) = Cluster::start() else {
        return;
    };
    let patience = Duration::from_secs(60);
    let config = Config {
        urls: cluster.urls(),
        replicas: 3,
        lease_duration: Duration::from_secs(5),
        ..Config::default()
    };
    let q = eventually("connecting to the cluster", patience, || {
        JetStreamQueue::connect(config.clone())
    })
    .await;
    eventually("adding the consumer", patience, || {
        q.add_destination("userpilot")
    })
    .await;
    let mut sent = Vec::new();
    for n in 0..40 {
        let id = format!("m-{n}");
        eventually("storing an event", patience, || {
            q.enqueue(&id, Bytes::from(format!("{{\"n\":{n}}}")))
        })
        .await;
        sent.push(id);
        if n == 19 {
            // A node dies halfway; the stream has two copies left and goes on.
            cluster.stop_node(0);
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    let started = Instant::now();
    while seen.len() < sent.len() {
        assert!(
            started.elapsed() < patience,
            "only {} of 40 came back",
            seen.len()
        );
        let leased = match q.lease("userpilot", 10, Duration::from_millis(500)).await {
            Ok(leased) => leased,
            Err(_) => continue,
        };
        for event in leased {
            assert!(
                sent.contains(&event.message_id),
                "unknown {}",
                event.message_id
            );
            eventually("acknowledging", patience, || q.ack(&event)).await;
            seen.insert(event.message_id.clone());
        }
        if seen.len() >= 30 && cluster.nodes[0].is_none() {
            // The node comes back and catches up.
            cluster.start_node(0);
        }
    }
    assert_eq!(seen.len(), 40);
    let left = eventually("reading the stream", patience, || q.stored(false)).await;
    assert_eq!(left, 0, "every acknowledged event leaves the stream");
}
