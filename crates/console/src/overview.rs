//! The delivery overview (`GET /console/api/overview`): what `serve`'s workers decided over
//! the last hour and day, per instance and action, beside the queue's depth, and the recent
//! failures with their reasons.
//!
//! The counts come from the server through [`Deliveries::activity`](crate::Deliveries): the
//! types here are what it hands over, and [`overview`] puts them together with the queue's
//! stats and the configured instances into the answer. Nothing is counted here.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::ConsoleInstance;

/// How many events, or an action's parts of events, ended each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Sent and accepted by the destination.
    pub delivered: u64,
    /// Failed in a way that may pass later; the event waits in the queue for its retry.
    pub retried: u64,
    /// Failed for good (or past the queue's maximum age): in the dead-letter queue.
    pub dead_lettered: u64,
    /// Not sent because it would have changed nothing delivered before.
    pub skipped_unchanged: u64,
    /// Not sent because no enabled mapping's trigger matched.
    pub skipped_no_trigger: u64,
    /// Not sent because the event's `integrations` switched the instance off.
    pub skipped_filtered: u64,
}

impl Counts {
    /// Every skip, whatever its reason.
    pub fn skipped(&self) -> u64 {
        self.skipped_unchanged + self.skipped_no_trigger + self.skipped_filtered
    }

    fn to_json(self) -> Value {
        json!({
            "delivered": self.delivered,
            "retried": self.retried,
            "dead_lettered": self.dead_lettered,
            "skipped": self.skipped(),
            "skipped_by": {
                "unchanged": self.skipped_unchanged,
                "no_trigger": self.skipped_no_trigger,
                "filtered": self.skipped_filtered,
            },
        })
    }
}

/// Counts over the last hour and the last day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Windows {
    /// The last 60 minutes (whole minutes: the current one and the 59 before it).
    pub hour: Counts,
    /// The last 24 hours, likewise in whole minutes.
    pub day: Counts,
}

impl Windows {
    fn to_json(self) -> Value {
        json!({"hour": self.hour.to_json(), "day": self.day.to_json()})
    }
}

/// One action's parts of the events of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionActivity {
    /// The action's key; `None` for events that reached no action (no trigger matched, the
    /// instance was switched off, or the stored event could not be read).
    pub action: Option<String>,
    /// What became of them.
    pub windows: Windows,
}

/// What became of the events of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceActivity {
    /// The instance's name.
    pub name: String,
    /// Each event once, by what became of it as a whole.
    pub events: Windows,
    /// Each action's part of those events.
    pub actions: Vec<ActionActivity>,
}

/// What became of a failed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// It waits for a retry.
    Retried,
    /// It went to the dead-letter queue.
    DeadLettered,
}

/// One failed delivery, with its reason (redacted by the server, as the dead-letter queue's
/// reasons are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentFailure {
    /// When the worker decided.
    pub at: SystemTime,
    /// The instance.
    pub instance: String,
    /// The action whose request failed or whose mapping rejected the event; `None` when the
    /// event failed as a whole (it could not be read).
    pub action: Option<String>,
    /// The event's `messageId`.
    pub message_id: String,
    /// What became of the event.
    pub outcome: FailureOutcome,
    /// The destination's HTTP status, when one answered.
    pub status: Option<u16>,
    /// Why.
    pub reason: String,
}

/// What a `serve` process's workers decided, as [`Deliveries::activity`](crate::Deliveries)
/// hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    /// Since when the process counts (its start): windows reaching further back hold less.
    pub since: SystemTime,
    /// The moment the counts were read.
    pub now: SystemTime,
    /// Per instance.
    pub instances: Vec<InstanceActivity>,
    /// The most recent failures, newest first.
    pub failures: Vec<RecentFailure>,
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn failure_json(failure: &RecentFailure) -> Value {
    json!({
        "at_ms": millis(failure.at),
        "instance": failure.instance,
        "action": failure.action,
        "message_id": failure.message_id,
        "outcome": match failure.outcome {
            FailureOutcome::Retried => "retried",
            FailureOutcome::DeadLettered => "dead_lettered",
        },
        "status": failure.status,
        "reason": failure.reason,
    })
}

/// The overview's answer: `stats` (the queue's, as `actionkit queue stats` prints them) and
/// `activity` put together per configured instance. Every action of an instance's enabled
/// mappings has a row, counted or not; actions no longer mapped but counted keep theirs.
pub fn overview(instances: &[ConsoleInstance], stats: Value, activity: &Activity) -> Value {
    let per_instance: Vec<Value> = instances
        .iter()
        .map(|entry| {
            let queue = stats["destinations"]
                .as_array()
                .and_then(|all| all.iter().find(|d| d["destination"] == entry.name.as_str()))
                .cloned()
                .unwrap_or(Value::Null);
            let counted = activity.instances.iter().find(|i| i.name == entry.name);
            let mut keys: Vec<Option<String>> = Vec::new();
            let mut seen: BTreeSet<Option<String>> = BTreeSet::new();
            let mapped = entry
                .instance
                .mappings()
                .filter(|view| view.enabled)
                .map(|view| Some(view.action_key.to_owned()));
            let counted_keys = counted
                .into_iter()
                .flat_map(|c| c.actions.iter().map(|a| a.action.clone()));
            for key in mapped.chain(counted_keys) {
                if seen.insert(key.clone()) {
                    keys.push(key);
                }
            }
            let actions: Vec<Value> = keys
                .into_iter()
                .map(|key| {
                    let windows = counted
                        .and_then(|c| c.actions.iter().find(|a| a.action == key))
                        .map(|a| a.windows)
                        .unwrap_or_default();
                    let mut row = windows.to_json();
                    if let Value::Object(map) = &mut row {
                        map.insert("action".to_owned(), json!(key));
                    }
                    row
                })
                .collect();
            json!({
                "name": entry.name,
                "destination": entry.instance.destination().def.slug,
                "queue": queue,
                "events": counted.map(|c| c.events).unwrap_or_default().to_json(),
                "actions": actions,
            })
        })
        .collect();
    json!({
        "counted_since_ms": millis(activity.since),
        "now_ms": millis(activity.now),
        "instances": per_instance,
        "failures": activity.failures.iter().map(failure_json).collect::<Vec<_>>(),
        "queue": stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_show_the_skips_in_total_and_by_reason() {
        let counts = Counts {
            delivered: 4,
            retried: 3,
            dead_lettered: 2,
            skipped_unchanged: 1,
            skipped_no_trigger: 5,
            skipped_filtered: 7,
        };
        assert_eq!(
            counts.to_json(),
            json!({"delivered": 4, "retried": 3, "dead_lettered": 2, "skipped": 13,
                   "skipped_by": {"unchanged": 1, "no_trigger": 5, "filtered": 7}})
        );
    }
}
