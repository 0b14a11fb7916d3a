//! State equivalence: the same day of traffic, delivered once the way Segment sends it (one
//! request per event) and once with batching, skip-unchanged and coalescing, leaves Userpilot in
//! the same state, without a single 429.
//!
//! The day (`common::traffic::DAY`: 2,000 users, 200 companies, ten rounds of page loads) is sent
//! by Segment's Python client to `actionkit serve`, which delivers to mock-userpilot with its rate
//! limits on. Both the mock's limits and the instance's are scaled by [`SCALE`] (the mock's
//! `RateLimits::scaled` and bulk rows per minute, the configuration's
//! `delivery.rate_limit_scale`), so the day runs at a hundred times Userpilot's pace and the
//! test still proves that actionkit never exceeds the limits. Ten users are deleted with
//! `actionkit delete-user --queue` between the second and the third round.
//!
//! The mock's final state (every user's metadata, company link and tracked events, every
//! company's metadata) must be identical in both modes. Tracked events are compared as a
//! multiset per user, since Userpilot keeps them by time, not by arrival. The test also checks
//! that the second mode sent at least ten times fewer identify and group requests; the
//! benchmark `userpilot_volume` reports the figures in full.
//!
//! The client is `$ACTIONKIT_PYTHON` (see `serve_python.rs`); without it the test fails in CI and
//! under `cargo xtask test`, and is skipped elsewhere.

mod common;

use common::traffic::{self, DAY};
use common::volume::{
    AT_VOLUME, ONE_BY_ONE, Sender, client_ready, comparable, first_difference, identify_and_group,
    python, run_day,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_day_at_volume_leaves_userpilot_as_one_request_per_event_does() {
    let python = python();
    if let Err(reason) = client_ready(&python) {
        if common::clients_required() {
            panic!("{reason}; run `cargo xtask test`, which installs it");
        }
        eprintln!("skipped: {reason}; run `cargo xtask test` to install it");
        return;
    }
    let day = traffic::day(DAY);
    let sender = Sender::Python(python);
    let one_by_one = run_day(&sender, &day, ONE_BY_ONE).await;
    let at_volume = run_day(&sender, &day, AT_VOLUME).await;

    eprintln!(
        "{} calls; one by one: {:?} in {:.1} s; at volume: {:?} in {:.1} s, {} skipped as unchanged",
        day.calls(),
        one_by_one.requests,
        one_by_one.elapsed.as_secs_f64(),
        at_volume.requests,
        at_volume.elapsed.as_secs_f64(),
        at_volume.unchanged
    );
    for (mode, outcome) in [("one by one", &one_by_one), ("at volume", &at_volume)] {
        assert_eq!(
            outcome.statuses.get(&429),
            None,
            "{mode}: the mock answered 429: {:?}",
            outcome.statuses
        );
        assert_eq!(outcome.dead_lettered, 0.0, "{mode}: dead letters");
    }
    // Every user the day names is there, less the deleted ones not seen again.
    let users = one_by_one.state["users"].as_object().map_or(0, |u| u.len());
    assert!(users > 1_990, "only {users} users in Userpilot");
    let (left, right) = (comparable(&one_by_one.state), comparable(&at_volume.state));
    assert!(
        left == right,
        "the states differ: {}",
        first_difference(&left, &right)
    );
    let (before, after) = (
        identify_and_group(&one_by_one.requests),
        identify_and_group(&at_volume.requests),
    );
    assert!(
        after * 10 <= before,
        "identify and group requests: {before} one by one, {after} at volume"
    );
    // Tracks are appends and go one by one in both modes.
    assert_eq!(
        one_by_one.requests.get("/v1/track"),
        at_volume.requests.get("/v1/track")
    );
}
