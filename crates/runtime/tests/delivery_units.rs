//! Delivery parts that do no IO: status classification, `Retry-After`, backoff, the rate limiter
//! and the retry loop. Everything time-related runs under paused tokio time.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actionkit_runtime::delivery::{
    Backoff, Outcome, RateLimit, RateLimitError, RateLimiter, RetryLogic, RetryPolicy,
    SegmentRetryLogic, StatusClass, Verdict, classify_response, parse_retry_after,
};
use proptest::prelude::*;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use tokio::time::Instant;

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).expect("test status codes are valid")
}

// ---------------------------------------------------------------------------------------------
// Classification.

#[test]
fn segment_logic_delivers_2xx_retries_408_423_429_and_5xx_but_501() {
    let logic = SegmentRetryLogic;
    for code in [200, 201, 202, 204, 299] {
        assert_eq!(logic.classify_status(code), StatusClass::Success, "{code}");
    }
    for code in [408, 423, 429, 500, 502, 503, 504, 507, 598, 599] {
        assert_eq!(
            logic.classify_status(code),
            StatusClass::Retryable,
            "{code}"
        );
    }
    for code in [
        100, 301, 302, 304, 400, 401, 403, 404, 405, 409, 410, 413, 422, 451, 501, 600, 999,
    ] {
        assert_eq!(logic.classify_status(code), StatusClass::Final, "{code}");
    }
}

#[test]
fn classify_response_builds_outcomes_with_reasons_and_caps_retry_after() {
    let logic = SegmentRetryLogic;
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let cap = Duration::from_secs(60);

    let mut headers = HeaderMap::new();
    headers.insert(RETRY_AFTER, HeaderValue::from_static("120"));
    assert_eq!(
        classify_response(&logic, status(429), &headers, None, now, cap),
        Outcome::Retry {
            status: Some(429),
            reason: "Too Many Requests".to_string(),
            after: Some(cap),
        }
    );

    let mut headers = HeaderMap::new();
    let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
    headers.insert(RETRY_AFTER, HeaderValue::from_str(&date).expect("valid"));
    assert_eq!(
        classify_response(&logic, status(503), &headers, Some(String::new()), now, cap),
        Outcome::Retry {
            status: Some(503),
            reason: "Service Unavailable".to_string(),
            after: Some(Duration::from_secs(30)),
        }
    );

    // A final status ignores Retry-After and keeps a body excerpt in the reason.
    let body = r#"{"errors":[{"message":"user_id is required"}]}"#.to_string();
    assert_eq!(
        classify_response(&logic, status(400), &headers, Some(body.clone()), now, cap),
        Outcome::Failed {
            status: Some(400),
            reason: format!("Bad Request: {body}"),
        }
    );

    let long_body = "x".repeat(1000);
    let Outcome::Failed { reason, .. } = classify_response(
        &logic,
        status(404),
        &HeaderMap::new(),
        Some(long_body),
        now,
        cap,
    ) else {
        panic!("404 must be final");
    };
    assert!(reason.starts_with("Not Found: xxx"), "{reason}");
    assert!(reason.ends_with('…'), "{reason}");
    assert!(reason.chars().count() < 400, "{reason}");

    assert_eq!(
        classify_response(
            &logic,
            status(202),
            &HeaderMap::new(),
            Some("accepted".to_string()),
            now,
            cap
        ),
        Outcome::Delivered {
            status: 202,
            body: Some("accepted".to_string()),
        }
    );
    assert_eq!(
        classify_response(
            &logic,
            status(204),
            &HeaderMap::new(),
            Some(String::new()),
            now,
            cap
        ),
        Outcome::Delivered {
            status: 204,
            body: None,
        }
    );

    // A status without a canonical text is named by number.
    assert_eq!(
        classify_response(&logic, status(599), &HeaderMap::new(), None, now, cap),
        Outcome::Retry {
            status: Some(599),
            reason: "status 599".to_string(),
            after: None,
        }
    );
}

#[test]
fn a_custom_retry_logic_replaces_the_classification() {
    #[derive(Debug)]
    struct BusyMeansLater;
    impl RetryLogic for BusyMeansLater {
        fn classify_status(&self, status: u16) -> StatusClass {
            if status == 409 {
                StatusClass::Retryable
            } else {
                SegmentRetryLogic.classify_status(status)
            }
        }
    }
    let now = SystemTime::now();
    let outcome = classify_response(
        &BusyMeansLater,
        status(409),
        &HeaderMap::new(),
        None,
        now,
        Duration::from_secs(60),
    );
    assert!(outcome.is_retryable(), "{outcome:?}");
}

// ---------------------------------------------------------------------------------------------
// Retry-After.

#[test]
fn retry_after_accepts_seconds_and_rejects_other_numbers() {
    let now = SystemTime::now();
    assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
    assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
    assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
    assert_eq!(
        parse_retry_after("99999999999999999999999", now),
        Some(Duration::from_secs(u64::MAX))
    );
    for bad in ["", "-1", "1.5", "+3", "soon", "2 s", "0x10"] {
        assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
    }
}

#[test]
fn retry_after_accepts_http_dates_in_all_three_formats() {
    let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:27:00 GMT").expect("valid date");
    let minute = Some(Duration::from_secs(60));
    // IMF-fixdate, obsolete RFC 850 and asctime forms of the same instant.
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
        minute
    );
    assert_eq!(
        parse_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT", now),
        minute
    );
    assert_eq!(parse_retry_after("Wed Oct 21 07:28:00 2015", now), minute);
    // A date in the past means "retry now".
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
        Some(Duration::ZERO)
    );
    assert_eq!(
        parse_retry_after("Wed, 32 Oct 2015 07:28:00 GMT", now),
        None
    );
}

// ---------------------------------------------------------------------------------------------
// Backoff.

#[test]
fn backoff_with_a_seed_is_reproducible() {
    let base = Duration::from_millis(100);
    let cap = Duration::from_secs(10);
    let draw = |seed| {
        let backoff = Backoff::with_seed(base, cap, seed);
        (0..12).map(|n| backoff.delay(n)).collect::<Vec<_>>()
    };
    assert_eq!(draw(42), draw(42));
    assert_ne!(draw(42), draw(43));
}

#[test]
fn backoff_jitter_covers_the_whole_window() {
    let backoff = Backoff::with_seed(Duration::from_millis(100), Duration::from_secs(10), 9);
    let ceiling = backoff.ceiling(3);
    assert_eq!(ceiling, Duration::from_millis(800));
    let delays: Vec<Duration> = (0..2000).map(|_| backoff.delay(3)).collect();
    let min = delays.iter().min().copied().unwrap_or_default();
    let max = delays.iter().max().copied().unwrap_or_default();
    assert!(max <= ceiling);
    assert!(min < ceiling / 20, "smallest delay {min:?}");
    assert!(max > ceiling * 19 / 20, "largest delay {max:?}");
}

#[test]
fn backoff_with_a_zero_base_never_waits() {
    let backoff = Backoff::with_seed(Duration::ZERO, Duration::from_secs(1), 1);
    assert!((0..40).all(|n| backoff.delay(n).is_zero()));
}

proptest! {
    #[test]
    fn backoff_delays_stay_under_the_ceiling_and_the_cap(
        seed in any::<u64>(),
        base_ms in 0u64..5_000,
        extra_cap_ms in 0u64..100_000,
        retry_idx in 0u32..80,
    ) {
        let base = Duration::from_millis(base_ms);
        let cap = base + Duration::from_millis(extra_cap_ms);
        let backoff = Backoff::with_seed(base, cap, seed);
        let ceiling = backoff.ceiling(retry_idx);
        prop_assert!(ceiling <= cap);
        prop_assert!(ceiling >= backoff.ceiling(retry_idx.saturating_sub(1)));
        prop_assert!(backoff.delay(retry_idx) <= ceiling);
    }
}

// ---------------------------------------------------------------------------------------------
// Rate limiter (paused time).

#[tokio::test(start_paused = true)]
async fn six_hundred_per_minute_lets_600_through_and_holds_the_601st() {
    let limiter = RateLimiter::new(&[RateLimit::per_minute("identify", 600)]).expect("valid");
    let start = Instant::now();
    for _ in 0..600 {
        drop(limiter.acquire("identify").await);
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
    drop(limiter.acquire("identify").await);
    assert_eq!(start.elapsed(), Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn one_per_two_seconds_spaces_deletes() {
    let limiter =
        RateLimiter::new(&[RateLimit::new("delete", 1, Duration::from_secs(2))]).expect("valid");
    let start = Instant::now();
    let mut grants = Vec::new();
    for _ in 0..4 {
        drop(limiter.acquire("delete").await);
        grants.push(start.elapsed().as_secs());
    }
    assert_eq!(grants, vec![0, 2, 4, 6]);
}

#[tokio::test(start_paused = true)]
async fn stats_report_who_waits_and_for_how_long_in_wall_clock_time() {
    let limiter = Arc::new(
        RateLimiter::new(&[RateLimit::new("delete", 1, Duration::from_secs(2))]).expect("valid"),
    );
    drop(limiter.acquire("delete").await);
    // Two more requests wait together: 2 s for the first, 4 s for the second.
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let limiter = Arc::clone(&limiter);
            tokio::spawn(async move { limiter.acquire("delete").await })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stats = limiter.stats();
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].key, "delete");
    assert_eq!(stats[0].limit, Some((1, Duration::from_secs(2))));
    assert_eq!(stats[0].waiting, 2);
    assert_eq!(stats[0].waited, Duration::from_secs(1));
    for waiter in waiters {
        drop(waiter.await.expect("the waiter finishes"));
    }
    let stats = limiter.stats();
    assert_eq!(stats[0].waiting, 0);
    // Wall-clock time with someone waiting: 4 s, not 2 s + 4 s.
    assert_eq!(stats[0].waited, Duration::from_secs(4));
    // A request that passes at once adds nothing; a paused key appears without a limit.
    tokio::time::sleep(Duration::from_secs(10)).await;
    drop(limiter.acquire("delete").await);
    limiter.pause("identify", Duration::from_secs(3));
    let stats = limiter.stats();
    assert_eq!(stats[0].waited, Duration::from_secs(4));
    assert_eq!((stats[1].key.as_str(), stats[1].limit), ("identify", None));
}

#[tokio::test(start_paused = true)]
async fn no_window_ever_holds_more_than_the_limit() {
    // Three per second, with requests arriving at uneven times.
    let limiter =
        RateLimiter::new(&[RateLimit::new("track", 3, Duration::from_secs(1))]).expect("valid");
    let start = Instant::now();
    let mut grants: Vec<Duration> = Vec::new();
    for idx in 0u64..30 {
        tokio::time::sleep(Duration::from_millis((idx * 37) % 450)).await;
        drop(limiter.acquire("track").await);
        grants.push(start.elapsed());
    }
    for (idx, grant) in grants.iter().enumerate() {
        let in_window = grants[idx..]
            .iter()
            .take_while(|later| **later < *grant + Duration::from_secs(1))
            .count();
        assert!(in_window <= 3, "{in_window} grants within 1 s of {grant:?}");
    }
    // The limiter does not hold requests back more than it must: 30 grants at 3/s end near 9 s.
    assert!(
        grants[29] < Duration::from_secs(11),
        "last grant {:?}",
        grants[29]
    );
}

#[tokio::test(start_paused = true)]
async fn concurrent_waiters_are_spaced_too() {
    let limiter = Arc::new(
        RateLimiter::new(&[RateLimit::new("delete", 1, Duration::from_secs(2))]).expect("valid"),
    );
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let limiter = Arc::clone(&limiter);
        tasks.spawn(async move {
            drop(limiter.acquire("delete").await);
            start.elapsed().as_secs()
        });
    }
    let mut grants = tasks.join_all().await;
    grants.sort_unstable();
    assert_eq!(grants, vec![0, 2, 4, 6, 8]);
}

#[tokio::test(start_paused = true)]
async fn keys_without_a_limit_are_unlimited() {
    let limiter =
        RateLimiter::new(&[RateLimit::new("delete", 1, Duration::from_secs(2))]).expect("valid");
    let start = Instant::now();
    for _ in 0..10_000 {
        drop(limiter.acquire("track").await);
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(!limiter.is_limited("track"));
    assert!(limiter.is_limited("delete"));

    let unlimited = RateLimiter::unlimited();
    for _ in 0..1_000 {
        drop(unlimited.acquire("identify").await);
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_pause_holds_back_its_key_only_and_only_grows() {
    let limiter = RateLimiter::new(&[RateLimit::per_minute("identify", 600)]).expect("valid");
    let start = Instant::now();
    limiter.pause("identify", Duration::from_secs(5));
    limiter.pause("identify", Duration::from_secs(1));
    drop(limiter.acquire("track").await);
    assert_eq!(start.elapsed(), Duration::ZERO);
    drop(limiter.acquire("identify").await);
    assert_eq!(start.elapsed(), Duration::from_secs(5));

    // An unlimited key can be paused, and is unlimited again afterwards.
    limiter.pause("track", Duration::from_secs(3));
    drop(limiter.acquire("track").await);
    assert_eq!(start.elapsed(), Duration::from_secs(8));
    for _ in 0..100 {
        drop(limiter.acquire("track").await);
    }
    assert_eq!(start.elapsed(), Duration::from_secs(8));
    assert!(!limiter.is_limited("track"));
}

#[tokio::test(start_paused = true)]
async fn a_pause_reaches_waiters_that_are_already_asleep() {
    let limiter = Arc::new(
        RateLimiter::new(&[RateLimit::new("delete", 1, Duration::from_secs(10))]).expect("valid"),
    );
    let start = Instant::now();
    drop(limiter.acquire("delete").await);
    let waiter = {
        let limiter = Arc::clone(&limiter);
        tokio::spawn(async move {
            drop(limiter.acquire("delete").await);
            start.elapsed()
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    limiter.pause("delete", Duration::from_secs(20));
    assert_eq!(waiter.await.expect("waiter task"), Duration::from_secs(21));
}

#[tokio::test(start_paused = true)]
async fn a_grant_counts_from_when_its_gate_opens() {
    let limiter =
        RateLimiter::new(&[RateLimit::new("delete", 1, Duration::from_secs(10))]).expect("valid");
    let start = Instant::now();
    let (value, grant) = limiter
        .acquire_with("delete", async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            7
        })
        .await;
    assert_eq!(value, 7);
    drop(grant);
    let _grant = limiter.acquire("delete").await;
    assert_eq!(start.elapsed(), Duration::from_secs(13));
}

#[tokio::test(start_paused = true)]
async fn a_token_comes_back_one_window_after_its_request_ended() {
    // The destination counts a request when it arrives, which may be long after it started (a
    // cold connection, a slow network); counting the window from the answer keeps every window
    // of the destination's clock within the limit.
    let limiter =
        RateLimiter::new(&[RateLimit::new("delete", 1, Duration::from_secs(10))]).expect("valid");
    let limiter = Arc::new(limiter);
    let start = Instant::now();
    let grant = limiter.acquire("delete").await;
    // The next caller waits while the request is in flight, however long that takes ...
    let next = {
        let limiter = Arc::clone(&limiter);
        tokio::spawn(async move {
            let _grant = limiter.acquire("delete").await;
            start.elapsed()
        })
    };
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert!(
        !next.is_finished(),
        "a token was reused while its request was in flight"
    );
    // ... and is woken one window after the answer came.
    drop(grant);
    assert_eq!(
        next.await.expect("the waiter finishes"),
        Duration::from_secs(35)
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_acquire_uses_no_token() {
    let limiter =
        RateLimiter::new(&[RateLimit::new("delete", 1, Duration::from_secs(10))]).expect("valid");
    let start = Instant::now();
    drop(limiter.acquire("delete").await);
    let cancelled = tokio::time::timeout(Duration::from_secs(1), limiter.acquire("delete")).await;
    assert!(cancelled.is_err());
    drop(limiter.acquire("delete").await);
    assert_eq!(start.elapsed(), Duration::from_secs(10));
}

#[test]
fn invalid_rate_limits_are_named() {
    let cases = [
        (
            vec![RateLimit::per_minute("identify", 0)],
            RateLimitError::ZeroRequests {
                key: "identify".to_string(),
            },
            "rate limit \"identify\": max_requests must be at least 1",
        ),
        (
            vec![RateLimit::new("track", 5, Duration::ZERO)],
            RateLimitError::ZeroWindow {
                key: "track".to_string(),
            },
            "rate limit \"track\": per must be longer than zero",
        ),
        (
            vec![
                RateLimit::per_minute("track", 600),
                RateLimit::per_minute("track", 100),
            ],
            RateLimitError::DuplicateKey {
                key: "track".to_string(),
            },
            "rate limit \"track\" is declared more than once",
        ),
        (
            vec![
                RateLimit::per_minute("track", 1),
                RateLimit::per_minute("", 1),
            ],
            RateLimitError::EmptyKey { index: 1 },
            "rate limit at index 1: key must not be empty",
        ),
    ];
    for (limits, expected, message) in cases {
        let error = RateLimiter::new(&limits).expect_err("must be rejected");
        assert_eq!(error, expected);
        assert_eq!(error.to_string(), message);
    }
}

// ---------------------------------------------------------------------------------------------
// Retry loop (paused time, scripted attempts).

fn retry(status: u16, after: Option<Duration>) -> Outcome {
    Outcome::Retry {
        status: Some(status),
        reason: StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("retry")
            .to_string(),
        after,
    }
}

fn delivered() -> Outcome {
    Outcome::Delivered {
        status: 202,
        body: Some("ok".to_string()),
    }
}

/// Runs the policy over a script of outcomes; attempts past the script's end panic.
async fn run_script(
    policy: &RetryPolicy,
    script: Vec<Outcome>,
) -> actionkit_runtime::delivery::FinalOutcome {
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    policy
        .run(|_number| {
            let next = script
                .lock()
                .expect("script lock")
                .pop_front()
                .expect("the policy made more attempts than scripted");
            async move { next }
        })
        .await
}

fn policy(max_attempts: u32, max_elapsed: Duration) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        max_elapsed,
        backoff: Backoff::with_seed(Duration::from_millis(500), Duration::from_secs(8), 3),
        busy_poll: Duration::from_secs(5),
        max_busy: Duration::from_secs(60),
    }
}

fn busy(after: Option<Duration>) -> Outcome {
    Outcome::Busy {
        status: 409,
        reason: "Conflict: a bulk job is running".to_string(),
        after,
    }
}

#[tokio::test(start_paused = true)]
async fn busy_answers_spend_no_attempts() {
    // Two attempts allowed; four busy answers in between do not use them up.
    let started = tokio::time::Instant::now();
    let res = run_script(
        &policy(2, Duration::from_secs(120)),
        vec![
            busy(None),
            busy(Some(Duration::from_secs(2))),
            retry(503, Some(Duration::from_secs(1))),
            busy(None),
            busy(None),
            delivered(),
        ],
    )
    .await;
    assert_eq!(res.verdict, Verdict::Delivered);
    assert_eq!(res.log.len(), 6, "every call is in the log");
    // 5 s poll + 2 s Retry-After + 1 s Retry-After + 2 × 5 s poll.
    assert_eq!(started.elapsed(), Duration::from_secs(18));
}

#[tokio::test(start_paused = true)]
async fn busy_time_does_not_count_against_max_elapsed() {
    // Ten busy polls (50 s) use up more than the 30 s elapsed budget, yet the retry after the
    // 503 still happens.
    let mut script: Vec<Outcome> = (0..10).map(|_| busy(None)).collect();
    script.push(retry(503, Some(Duration::from_secs(20))));
    script.push(delivered());
    let res = run_script(&policy(5, Duration::from_secs(30)), script).await;
    assert_eq!(res.verdict, Verdict::Delivered);
}

#[tokio::test(start_paused = true)]
async fn a_destination_busy_past_max_busy_is_out_of_retries() {
    // 60 s of busy waits allowed at 5 s a poll: the thirteenth busy answer gives up.
    let script: Vec<Outcome> = (0..13).map(|_| busy(None)).collect();
    let res = run_script(&policy(5, Duration::from_secs(120)), script).await;
    assert_eq!(res.verdict, Verdict::RetriesExhausted);
    assert_eq!(res.status, Some(409));
    let reason = res.reason.expect("a reason");
    assert!(reason.contains("stayed busy"), "{reason}");
    assert_eq!(res.log.len(), 13);
}

#[tokio::test(start_paused = true)]
async fn two_503s_then_a_202_is_delivered_on_the_third_attempt() {
    let res = run_script(
        &policy(5, Duration::from_secs(120)),
        vec![retry(503, None), retry(503, None), delivered()],
    )
    .await;
    assert_eq!(res.verdict, Verdict::Delivered);
    assert_eq!(res.attempts, 3);
    assert_eq!(res.status, Some(202));
    assert_eq!(res.body.as_deref(), Some("ok"));
    assert_eq!(res.reason, None);
    let statuses: Vec<Option<u16>> = res.log.iter().map(|r| r.outcome.status()).collect();
    assert_eq!(statuses, vec![Some(503), Some(503), Some(202)]);
    // Each wait is a backoff delay under its ceiling, and the next attempt starts after it.
    let backoff = Backoff::with_seed(Duration::from_millis(500), Duration::from_secs(8), 0);
    for (idx, pair) in res.log.windows(2).enumerate() {
        let delay = pair[0]
            .next_delay
            .expect("a retried attempt records its delay");
        assert!(delay <= backoff.ceiling(u32::try_from(idx).expect("small")));
        // Tokio's timers tick in whole milliseconds, so the sleep may end up to 1 ms late.
        let gap = pair[1].started_after - pair[0].started_after;
        assert!(
            gap >= delay && gap - delay < Duration::from_millis(1),
            "{gap:?} vs {delay:?}"
        );
    }
    assert_eq!(res.log[2].next_delay, None);
}

#[tokio::test(start_paused = true)]
async fn retry_after_two_seconds_delays_the_next_attempt_by_two_seconds() {
    let res = run_script(
        &policy(5, Duration::from_secs(120)),
        vec![retry(429, Some(Duration::from_secs(2))), delivered()],
    )
    .await;
    assert_eq!(res.verdict, Verdict::Delivered);
    assert_eq!(res.attempts, 2);
    assert_eq!(res.log[0].next_delay, Some(Duration::from_secs(2)));
    assert!(res.log[1].started_after >= Duration::from_secs(2));
    assert!(res.elapsed >= Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn retry_after_zero_retries_at_once() {
    let res = run_script(
        &policy(5, Duration::from_secs(120)),
        vec![retry(503, Some(Duration::ZERO)), delivered()],
    )
    .await;
    assert_eq!(res.attempts, 2);
    assert_eq!(res.log[1].started_after, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_final_failure_is_not_retried() {
    let res = run_script(
        &policy(5, Duration::from_secs(120)),
        vec![Outcome::Failed {
            status: Some(400),
            reason: "Bad Request".to_string(),
        }],
    )
    .await;
    assert_eq!(res.verdict, Verdict::Failed);
    assert_eq!(res.attempts, 1);
    assert_eq!(res.status, Some(400));
    assert_eq!(res.reason.as_deref(), Some("Bad Request"));
    assert_eq!(res.elapsed, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn the_attempt_budget_ends_retries() {
    let res = run_script(
        &policy(4, Duration::from_secs(600)),
        (0..4).map(|_| retry(503, None)).collect(),
    )
    .await;
    assert_eq!(res.verdict, Verdict::RetriesExhausted);
    assert_eq!(res.attempts, 4);
    assert_eq!(res.status, Some(503));
    assert_eq!(
        res.reason.as_deref(),
        Some("gave up after 4 attempts: Service Unavailable")
    );
}

#[tokio::test(start_paused = true)]
async fn the_elapsed_budget_ends_retries_before_sleeping_past_it() {
    let ten = Some(Duration::from_secs(10));
    let res = run_script(
        &policy(10, Duration::from_secs(25)),
        (0..3).map(|_| retry(429, ten)).collect(),
    )
    .await;
    assert_eq!(res.verdict, Verdict::RetriesExhausted);
    assert_eq!(res.attempts, 3);
    assert_eq!(res.retry_after, ten);
    // The third attempt started at 20 s; waiting 10 s more would pass 25 s, so the loop stops.
    assert_eq!(res.elapsed, Duration::from_secs(20));
    let reason = res.reason.unwrap_or_default();
    assert!(reason.starts_with("gave up after 3 attempts"), "{reason}");
    assert!(reason.contains("25s"), "{reason}");
    assert!(reason.ends_with("Too Many Requests"), "{reason}");
}

#[tokio::test(start_paused = true)]
async fn attempt_durations_are_recorded() {
    let policy = policy(3, Duration::from_secs(120));
    let res = policy
        .run(|number| async move {
            tokio::time::sleep(Duration::from_secs(u64::from(number))).await;
            if number < 2 {
                retry(500, Some(Duration::from_secs(1)))
            } else {
                delivered()
            }
        })
        .await;
    assert_eq!(res.attempts, 2);
    assert_eq!(res.log[0].duration, Duration::from_secs(1));
    assert_eq!(res.log[1].started_after, Duration::from_secs(2));
    assert_eq!(res.log[1].duration, Duration::from_secs(2));
    assert_eq!(res.elapsed, Duration::from_secs(4));
}

#[tokio::test(start_paused = true)]
async fn absurd_durations_do_not_panic() {
    let limiter = RateLimiter::new(&[RateLimit::new("delete", 1, Duration::MAX)]).expect("valid");
    drop(limiter.acquire("delete").await);
    let day = Duration::from_secs(86_400);
    assert!(
        tokio::time::timeout(day, limiter.acquire("delete"))
            .await
            .is_err()
    );
    limiter.pause("track", Duration::MAX);
    assert!(
        tokio::time::timeout(day, limiter.acquire("track"))
            .await
            .is_err()
    );

    let res = run_script(
        &policy(5, Duration::from_secs(120)),
        vec![retry(429, Some(Duration::MAX))],
    )
    .await;
    assert_eq!(res.verdict, Verdict::RetriesExhausted);
    assert_eq!(res.attempts, 1);
}
