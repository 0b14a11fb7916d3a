//! The JetStream queue against a real `nats-server` with JetStream, started by each test on a
//! free port in a temporary directory (see `actionkit-nats-testkit`: without the server the
//! tests fail in CI and under `cargo xtask test`, and are skipped elsewhere).

use std::time::{Duration, Instant, SystemTime};

use actionkit_jetstream::{Config, JetStreamError, JetStreamQueue, token, untoken};
use actionkit_nats_testkit::{Cluster, Server};
use actionkit_queue::{DeliveryId, DlqFilter, DlqSelection, FingerprintPart, RetryOutcome};
use bytes::Bytes;

/// Starts a JetStream server, or says why the test is skipped (`None`).
fn nats() -> Option<Server> {
    Server::start()
}

async fn queue(nats: &Server, lease: Duration) -> JetStreamQueue {
    queue_with(
        nats,
        Config {
            lease_duration: lease,
            ..Config::default()
        },
    )
    .await
}

async fn queue_with(nats: &Server, config: Config) -> JetStreamQueue {
    JetStreamQueue::connect(Config {
        urls: vec![nats.url().to_owned()],
        ..config
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
    q.retry(
        &leased[0],
        Duration::from_millis(800),
        "trackEvent: 503: down",
        true,
    )
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
    assert_eq!(
        again[0].last_error.as_deref(),
        Some("trackEvent: 503: down")
    );
    // The destination was busy: the event waits again without counting an attempt.
    q.retry(&again[0], Duration::from_millis(100), "busy", false)
        .await
        .expect("postponed");
    let third = q
        .lease("userpilot", 1, Duration::from_secs(3))
        .await
        .expect("leased");
    assert_eq!(
        (third[0].attempts, third[0].last_error.as_deref()),
        (1, Some("busy"))
    );
    q.ack(&third[0]).await.expect("acknowledged");
    let stats = q
        .stats(&["userpilot".to_owned()], SystemTime::now())
        .await
        .expect("stats");
    let d = &stats.destinations[0];
    assert_eq!(
        (d.pending, d.retry_scheduled, d.in_flight, d.delivered_total),
        (0, 0, 0, 1),
        "{d:?}"
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
    // A lease that ran out is not a failed attempt (its node died; the event never failed).
    assert_eq!((again.len(), again[0].attempts), (1, 0));
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
    let all = DlqFilter::default();
    let dead = q.dlq_list(&all, 10, 0).await.expect("listed");
    assert_eq!(dead.len(), 1);
    let entry = &dead[0];
    assert_eq!(entry.reason, "identifyUser: 400: Bad Request no user");
    assert_eq!((entry.message_id.as_str(), entry.attempts), ("m-1", 1));
    assert_eq!(entry.destination, "userpilot");
    assert_eq!(entry.payload_bytes, 12);
    let item = q
        .dlq_get(entry.delivery_id)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(item.payload, b"{\"bad\":true}");
    assert!(q.dlq_get(DeliveryId(9_999)).await.expect("read").is_none());
    let other = DlqFilter {
        destination: Some("other".to_owned()),
        ..DlqFilter::default()
    };
    assert!(q.dlq_list(&other, 10, 0).await.expect("listed").is_empty());
    assert_eq!(q.dlq_count(&all).await.expect("counted"), 1);
}

#[tokio::test]
async fn past_the_maximum_age_a_retry_becomes_a_dead_letter() {
    let Some(nats) = nats() else { return };
    let q = queue(&nats, Duration::from_secs(30)).await;
    q.add_destination("userpilot").await.expect("consumer");
    q.enqueue("m-1", Bytes::from_static(b"{}"))
        .await
        .expect("stored");
    let leased = q.lease("userpilot", 1, WAIT).await.expect("leased");
    let now = SystemTime::now();
    let within = q
        .schedule(
            &leased[0],
            now + Duration::from_millis(50),
            "503",
            now,
            true,
            Duration::from_secs(60),
        )
        .await
        .expect("scheduled");
    assert_eq!(within, RetryOutcome::RetryScheduled);
    let again = q
        .lease("userpilot", 1, Duration::from_secs(3))
        .await
        .expect("leased");
    let now = SystemTime::now();
    let past = q
        .schedule(
            &again[0],
            now + Duration::from_secs(120),
            "503 again",
            now,
            true,
            Duration::from_secs(60),
        )
        .await
        .expect("scheduled");
    assert_eq!(past, RetryOutcome::DeadLettered);
    let dead = q
        .dlq_list(&DlqFilter::default(), 10, 0)
        .await
        .expect("listed");
    assert_eq!(dead[0].reason, "max age exceeded: 503 again");
    assert_eq!(
        (dead[0].attempts, dead[0].last_error.as_deref()),
        (2, Some("503"))
    );
    let stats = q
        .stats(&["userpilot".to_owned()], SystemTime::now())
        .await
        .expect("stats");
    let d = &stats.destinations[0];
    assert_eq!(
        (
            d.retry_scheduled,
            d.in_flight,
            d.dead_lettered,
            d.dead_lettered_total
        ),
        (0, 0, 1, 1),
        "{d:?}"
    );
}

#[tokio::test]
async fn a_replay_goes_to_its_instance_only_and_a_purge_is_counted() {
    let Some(nats) = nats() else { return };
    let q = queue(&nats, Duration::from_secs(30)).await;
    for name in ["userpilot", "audit log"] {
        q.add_destination(name).await.expect("consumer");
    }
    q.enqueue_batch(vec![
        ("m-1".to_owned(), Bytes::from_static(b"{\"n\":1}")),
        ("m-2".to_owned(), Bytes::from_static(b"{\"n\":2}")),
        ("m-3".to_owned(), Bytes::from_static(b"{\"n\":3}")),
    ])
    .await
    .expect("stored");
    let audit = q.lease("audit log", 10, WAIT).await.expect("leased");
    let refs: Vec<_> = audit.iter().collect();
    q.ack_many(&refs).await.expect("acknowledged");
    for leased in q.lease("userpilot", 10, WAIT).await.expect("leased") {
        q.dead_letter(&leased, "400").await.expect("dead-lettered");
    }
    let mine = DlqFilter {
        destination: Some("userpilot".to_owned()),
        ..DlqFilter::default()
    };
    let dead = q.dlq_list(&mine, 10, 0).await.expect("listed");
    assert_eq!(dead.len(), 3);
    let second_page = q.dlq_list(&mine, 10, 2).await.expect("listed");
    assert_eq!(second_page[0].message_id, "m-3");
    let by_id = DlqFilter {
        message_id: Some("m-2".to_owned()),
        ..DlqFilter::default()
    };
    assert_eq!(q.dlq_count(&by_id).await.expect("counted"), 1);

    let replayed_at = SystemTime::now();
    let n = q
        .dlq_replay(&DlqSelection::Ids(vec![dead[0].delivery_id]), replayed_at)
        .await
        .expect("replayed");
    assert_eq!(n, 1);
    assert!(
        q.lease("audit log", 10, WAIT)
            .await
            .expect("leased")
            .is_empty(),
        "replayed to another instance"
    );
    let back = q.lease("userpilot", 10, WAIT).await.expect("leased");
    assert_eq!(back.len(), 1);
    assert_eq!((back[0].message_id.as_str(), back[0].attempts), ("m-1", 0));
    assert!(back[0].replayed);
    assert!(
        back[0].age_from >= replayed_at - Duration::from_millis(5),
        "the age clock restarted"
    );
    assert!(
        back[0].enqueued_at < replayed_at,
        "the enqueue time is kept"
    );
    assert_eq!(&back[0].payload[..], b"{\"n\":1}");
    q.ack(&back[0]).await.expect("acknowledged");

    assert_eq!(
        q.dlq_purge(&DlqSelection::Destination("userpilot".to_owned()))
            .await
            .expect("purged"),
        2
    );
    assert_eq!(
        q.dlq_count(&DlqFilter::default()).await.expect("counted"),
        0
    );
    let stats = q
        .stats(
            &["userpilot".to_owned(), "audit log".to_owned()],
            SystemTime::now(),
        )
        .await
        .expect("stats");
    let names: Vec<&str> = stats
        .destinations
        .iter()
        .map(|d| d.destination.as_str())
        .collect();
    assert_eq!(names, ["audit log", "userpilot"]);
    let d = &stats.destinations[1];
    assert_eq!(
        (
            d.pending,
            d.dead_lettered,
            d.delivered_total,
            d.dead_lettered_total,
            d.purged_total
        ),
        (0, 0, 1, 3, 2),
        "{d:?}"
    );
    assert_eq!(stats.events_stored, 0, "every event left the streams");
}

#[tokio::test]
async fn a_full_stream_refuses_with_a_retry_hint_and_stores_nothing_more() {
    let Some(nats) = nats() else { return };
    let q = queue_with(
        &nats,
        Config {
            max_events: 3,
            full_retry_after: Duration::from_secs(7),
            ..Config::default()
        },
    )
    .await;
    q.add_destination("userpilot").await.expect("consumer");
    for n in 0..3 {
        q.enqueue(&format!("m-{n}"), Bytes::from_static(b"{}"))
            .await
            .expect("stored");
    }
    let err = q
        .enqueue("m-4", Bytes::from_static(b"{}"))
        .await
        .expect_err("the stream is full");
    assert!(
        matches!(
            err,
            JetStreamError::Full {
                retry_after_secs: 7
            }
        ),
        "{err}"
    );
    assert_eq!(q.stored(false).await.expect("info"), 3);
}

#[tokio::test]
async fn fingerprints_merge_by_part_and_are_forgotten_on_request() {
    let Some(nats) = nats() else { return };
    let q = queue(&nats, Duration::from_secs(30)).await;
    let part = |part: &str, hash: u64| FingerprintPart {
        part: part.to_owned(),
        hash,
    };
    let now = SystemTime::now();
    q.remember_fingerprints(
        "userpilot",
        "user",
        &[
            (
                "u-1".to_owned(),
                vec![part("traits", 1), part("company", u64::MAX)],
            ),
            ("u.2 with space".to_owned(), vec![part("traits", 2)]),
        ],
        now,
    )
    .await
    .expect("remembered");
    q.remember_fingerprints(
        "userpilot",
        "user",
        &[("u-1".to_owned(), vec![part("traits", 9)])],
        now,
    )
    .await
    .expect("remembered");
    let found = q
        .fingerprints("userpilot", "user", &["u-1", "u.2 with space", "u-3"])
        .await
        .expect("read");
    let mut u1 = found["u-1"].clone();
    u1.sort_by(|a, b| a.part.cmp(&b.part));
    assert_eq!(u1, vec![part("company", u64::MAX), part("traits", 9)]);
    assert_eq!(found["u.2 with space"], vec![part("traits", 2)]);
    assert!(!found.contains_key("u-3"));
    assert!(
        q.fingerprints("other", "user", &["u-1"])
            .await
            .expect("read")
            .is_empty()
    );
    assert_eq!(
        q.forget_fingerprints("userpilot", "user", &["u-1", "u-3"])
            .await
            .expect("forgot"),
        2
    );
    assert!(
        q.fingerprints("userpilot", "user", &["u-1"])
            .await
            .expect("read")
            .is_empty()
    );
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
    for name in ["userpilot", "audit log", "x61", "é"] {
        assert_eq!(untoken(&token(name)).as_deref(), Some(name));
    }
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
        // 500 ms stretched by 2 % over ten requests: 51 ms.
        assert!(gap >= Duration::from_millis(51), "two slots {gap:?} apart");
    }
    // So no 500 ms window holds more than ten, and thirty take at least 29 intervals.
    assert!(started.elapsed() >= Duration::from_millis(29 * 50 - 20));
    let q = queue(&nats, Duration::from_secs(30)).await;
    let zero = ClusterRateLimit::new(&q, "userpilot", "identify", 0, Duration::from_secs(1)).await;
    assert!(zero.is_err(), "a limit of zero requests is refused");
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
        match answered(what, op()).await {
            Ok(value) => return value,
            Err(_) if started.elapsed() < patience => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => panic!("{what} failed for {patience:?}: {err}"),
        }
    }
}

/// Awaits `call`, failing the test when it does not answer (with a value or an error) within
/// thirty seconds: every call is bounded by the queue's request timeout (five seconds per
/// JetStream request), including one made to a node that dies before it answers.
async fn answered<T>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, JetStreamError>>,
) -> Result<T, JetStreamError> {
    match tokio::time::timeout(Duration::from_secs(30), call).await {
        Ok(result) => result,
        Err(_) => panic!("{what} never answered"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_loses_nothing_when_a_node_dies_and_returns() {
    let Some(mut cluster) = Cluster::start(3) else {
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
            cluster.kill_node(0);
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
        let lease = q.lease("userpilot", 10, Duration::from_millis(500));
        let r = answered("leasing", lease).await;
        if let Err(e) = &r {
            eprintln!("DIAG lease err {e}");
        }
        let Ok(leased) = r else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
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
        if seen.len() >= 30 && !cluster.is_running(0) {
            // The node comes back and catches up.
            cluster.start_node(0);
        }
    }
    assert_eq!(seen.len(), 40);
    let left = eventually("reading the stream", patience, || q.stored(false)).await;
    assert_eq!(left, 0, "every acknowledged event leaves the stream");
}

#[tokio::test]
async fn a_request_is_stored_whole_and_each_of_its_events_ends_on_its_own() {
    let Some(nats) = nats() else { return };
    let q = queue(&nats, Duration::from_secs(30)).await;
    q.add_destination("userpilot").await.expect("consumer");
    let request = || {
        vec![
            ("m-1".to_owned(), Bytes::from_static(b"{\"n\":1}")),
            ("m-2".to_owned(), Bytes::from_static(b"{\"n\":2}")),
            ("m-3".to_owned(), Bytes::from_static(b"{\"n\":3}")),
        ]
    };
    let first = q.enqueue_batch(request()).await.expect("stored");
    // The client's retry of the same request is stored once.
    assert_eq!(q.enqueue_batch(request()).await.expect("stored"), first);
    assert_eq!(
        q.stored(false).await.expect("info"),
        1,
        "one message per request"
    );
    let leased = q.lease("userpilot", 10, WAIT).await.expect("leased");
    let ids: Vec<&str> = leased.iter().map(|l| l.message_id.as_str()).collect();
    assert_eq!(ids, ["m-1", "m-2", "m-3"]);
    assert_eq!(&leased[1].payload[..], b"{\"n\":2}");
    q.ack(&leased[0]).await.expect("acknowledged");
    q.retry(
        &leased[1],
        Duration::from_millis(300),
        "trackEvent: 503",
        true,
    )
    .await
    .expect("retried");
    assert_eq!(
        q.stored(false).await.expect("info"),
        1,
        "not yet acknowledged"
    );
    q.dead_letter(&leased[2], "identifyUser: 400")
        .await
        .expect("dead-lettered");
    // The last outcome acknowledges the message.
    let started = Instant::now();
    while q.stored(false).await.expect("info") != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The retried event comes back alone, after its delay, with its attempt counted (a lease
    // waits for new events only, so a replay is taken by the next one).
    let started = Instant::now();
    let back = loop {
        let leased = q.lease("userpilot", 10, WAIT).await.expect("leased");
        if !leased.is_empty() {
            break leased;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never came back"
        );
    };
    assert_eq!(back.len(), 1);
    assert_eq!((back[0].message_id.as_str(), back[0].attempts), ("m-2", 1));
    assert_eq!(back[0].last_error.as_deref(), Some("trackEvent: 503"));
    assert_eq!(&back[0].payload[..], b"{\"n\":2}");
    q.ack(&back[0]).await.expect("acknowledged");
    let dead = q
        .dlq_list(&DlqFilter::default(), 10, 0)
        .await
        .expect("listed");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].message_id, "m-3");
    let stats = q
        .stats(&["userpilot".to_owned()], SystemTime::now())
        .await
        .expect("stats");
    let d = &stats.destinations[0];
    assert_eq!(
        (
            d.pending,
            d.in_flight,
            d.delivered_total,
            d.dead_lettered_total
        ),
        (0, 0, 2, 1),
        "{d:?}"
    );
}
