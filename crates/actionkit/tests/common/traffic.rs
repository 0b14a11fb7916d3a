//! A generated day of app traffic for Userpilot, shared by the state-equivalence test
//! (`serve_state.rs`) and the request-count benchmark (`benches/userpilot_volume.rs`).
//!
//! The day is a list of rounds; in each round every user loads a page with some probability, and
//! each page load identifies the user with all their traits (as analytics.js does), mostly
//! unchanged, now and then with one trait changed; some page loads also track an event or call
//! group. The traits carry `company: {id, name}`, so a user is linked to their company. Company
//! traits change only between rounds, so every group call of one round says the same. The same
//! seed always gives the same day.

use serde_json::{Value, json};

/// The shape of a generated day.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub users: usize,
    pub companies: usize,
    pub rounds: usize,
    /// The chance that a user loads a page in a round.
    pub presence: f64,
    /// The chance that an identify changes one trait.
    pub change: f64,
    /// The chance that a page load also tracks an event.
    pub track: f64,
    /// The chance that a page load also calls group.
    pub group: f64,
    pub seed: u64,
}

/// The day the acceptance test of "Userpilot at real volume" names: 2,000 users and 200
/// companies, identifies on most page loads with mostly unchanged traits.
pub const DAY: Shape = Shape {
    users: 2_000,
    companies: 200,
    rounds: 10,
    presence: 0.75,
    change: 0.05,
    track: 0.5,
    group: 0.1,
    seed: 0x0005_eed0_fda7,
};

/// A generated day: the calls of each round, in order.
pub struct Day {
    pub rounds: Vec<Vec<Value>>,
}

impl Day {
    /// Every call of every round.
    pub fn calls(&self) -> usize {
        self.rounds.iter().map(Vec::len).sum()
    }
}

/// A small deterministic generator (xorshift64*), so the day needs no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const PLANS: [&str; 4] = ["free", "starter", "growth", "enterprise"];
const EVENTS: [&str; 5] = [
    "Report Exported",
    "Dashboard Viewed",
    "Invite Sent",
    "Order Completed",
    "Search Performed",
];

/// The user id of user `idx`.
pub fn user_id(idx: usize) -> String {
    format!("user-{idx:04}")
}

/// Generates the day of `shape`.
pub fn day(shape: Shape) -> Day {
    let mut rng = Rng(shape.seed.max(1));
    let company_of = |user: usize| user % shape.companies;
    let mut plans: Vec<usize> = (0..shape.users).map(|u| u % PLANS.len()).collect();
    let mut logins: Vec<u64> = vec![1; shape.users];
    let mut rounds = Vec::with_capacity(shape.rounds);
    for round in 0..shape.rounds {
        let mut calls = Vec::new();
        for user in 0..shape.users {
            if !rng.chance(shape.presence) {
                continue;
            }
            if rng.chance(shape.change) {
                if rng.chance(0.5) {
                    plans[user] = (plans[user] + 1) % PLANS.len();
                } else {
                    logins[user] += 1;
                }
            }
            let company = company_of(user);
            calls.push(json!({
                "type": "identify",
                "userId": user_id(user),
                "traits": {
                    "name": format!("User {user}"),
                    "email": format!("user{user}@example.com"),
                    "plan": PLANS[plans[user]],
                    "logins": logins[user],
                    "createdAt": format!("2024-{:02}-{:02}T08:00:00Z", user % 12 + 1, user % 28 + 1),
                    "company": {"id": format!("co-{company:03}"), "name": format!("Company {company}")},
                },
            }));
            if rng.chance(shape.track) {
                calls.push(json!({
                    "type": "track",
                    "userId": user_id(user),
                    "event": EVENTS[rng.below(EVENTS.len())],
                    "properties": {"round": round, "items": rng.below(5) + 1},
                }));
            }
            if rng.chance(shape.group) {
                // Company traits change once, halfway through the day, for a third of them.
                let grown = round >= shape.rounds / 2 && company % 3 == 0;
                calls.push(json!({
                    "type": "group",
                    "userId": user_id(user),
                    "groupId": format!("co-{company:03}"),
                    "traits": {
                        "name": format!("Company {company}"),
                        "employees": 10 + company * 7 + if grown { 100 } else { 0 },
                        "industry": if company % 2 == 0 { "Software" } else { "Retail" },
                    },
                }));
            }
        }
        rounds.push(calls);
    }
    Day { rounds }
}

/// The users deleted between two rounds of the test: every 200th.
pub fn deleted_users(shape: Shape) -> Vec<String> {
    (0..shape.users).step_by(200).map(user_id).collect()
}
