//! Userpilot at real volume: requests and time to current state, one by one against at volume.
//!
//! Delivers the generated day of the state-equivalence test (`tests/common/traffic.rs`: 2,000
//! users, 200 companies, ten rounds of page loads) through `actionkit serve` into
//! mock-userpilot twice, as `tests/serve_state.rs` does but posting `/v1/batch` directly: once
//! one request per event as Segment sends, once with the bulk actions, skip-unchanged and
//! coalescing. It prints, per mode, the requests Userpilot accepted per endpoint and the time
//! until every identify and group is reflected in Userpilot at its real limits, computed from
//! the counts: identify requests (user and company share the instance's 600 a minute) and bulk
//! rows (Userpilot processes about 1,200 a minute, one job at a time). It also prints the time
//! the run took at 100 times Userpilot's pace.
//!
//! Run with `cargo bench -p actionkit --bench userpilot_volume`. Targets of the issue: at least
//! ten times fewer identify and group requests, and identify/group state current at least ten
//! times sooner.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;

use common::traffic::{self, DAY};
use common::volume::{AT_VOLUME, ONE_BY_ONE, Outcome, SCALE, Sender, run_day};

/// Userpilot's identify limit per minute (users and companies, as the instance counts them).
const IDENTIFY_PER_MINUTE: f64 = 600.0;
/// Userpilot's bulk processing rate, rows per minute.
const BULK_ROWS_PER_MINUTE: f64 = 1_200.0;

fn count(requests: &BTreeMap<String, u64>, path: &str) -> u64 {
    requests.get(path).copied().unwrap_or(0)
}

/// Rows of every bulk job the mock ran.
fn bulk_rows(outcome: &Outcome) -> u64 {
    outcome.state["jobs"].as_array().map_or(0, |jobs| {
        jobs.iter().filter_map(|j| j["total_rows"].as_u64()).sum()
    })
}

/// Minutes until identify and group state is current at Userpilot's real limits.
fn minutes_to_current(outcome: &Outcome) -> f64 {
    let single = count(&outcome.requests, "/v1/identify")
        + count(&outcome.requests, "/v1/companies/identify");
    // Single identifies and bulk jobs run side by side; the slower decides.
    (single as f64 / IDENTIFY_PER_MINUTE).max(bulk_rows(outcome) as f64 / BULK_ROWS_PER_MINUTE)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a runtime");
    let day = traffic::day(DAY);
    println!(
        "userpilot_volume: {} calls for {} users and {} companies in {} rounds",
        day.calls(),
        DAY.users,
        DAY.companies,
        DAY.rounds
    );
    let (one_by_one, at_volume) = runtime.block_on(async {
        let one_by_one = run_day(&Sender::Http, &day, ONE_BY_ONE).await;
        let at_volume = run_day(&Sender::Http, &day, AT_VOLUME).await;
        (one_by_one, at_volume)
    });
    let paths = [
        "/v1/identify",
        "/v1/companies/identify",
        "/v1/users/bulk_identify",
        "/v1/companies/bulk_identify",
        "/v1/track",
        "/v1/users",
    ];
    println!(
        "{:<30} {:>12} {:>12}",
        "requests accepted", "one by one", "at volume"
    );
    for path in paths {
        println!(
            "{path:<30} {:>12} {:>12}",
            count(&one_by_one.requests, path),
            count(&at_volume.requests, path)
        );
    }
    let ig = |o: &Outcome| common::volume::identify_and_group(&o.requests);
    let (before, after) = (ig(&one_by_one), ig(&at_volume));
    println!(
        "{:<30} {before:>12} {after:>12}   {:.0}x fewer",
        "identify + group requests",
        before as f64 / after.max(1) as f64
    );
    println!(
        "{:<30} {:>12} {:>12}",
        "bulk rows",
        bulk_rows(&one_by_one),
        bulk_rows(&at_volume)
    );
    println!(
        "{:<30} {:>12} {:>12}",
        "skipped as unchanged", one_by_one.unchanged, at_volume.unchanged
    );
    let (slow, fast) = (
        minutes_to_current(&one_by_one),
        minutes_to_current(&at_volume),
    );
    println!(
        "{:<30} {:>10.1} m {:>10.1} m   {:.1}x sooner",
        "identify/group current at",
        slow,
        fast,
        slow / fast.max(f64::MIN_POSITIVE)
    );
    println!(
        "{:<30} {:>10.1} s {:>10.1} s   (at {SCALE}x Userpilot's pace)",
        "measured run",
        one_by_one.elapsed.as_secs_f64(),
        at_volume.elapsed.as_secs_f64()
    );
    let n429 = |o: &Outcome| o.statuses.get(&429).copied().unwrap_or(0);
    println!(
        "{:<30} {:>12} {:>12}",
        "429 answers",
        n429(&one_by_one),
        n429(&at_volume)
    );
}
