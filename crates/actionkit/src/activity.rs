//! What `serve`'s delivery workers decided, kept in memory for the console's delivery
//! overview: counts in per-minute buckets for a day, per instance and action, and a bounded
//! list of the recent failures with their reasons.
//!
//! A worker gathers what one leased batch came to in a [`BatchTally`] without any lock, and
//! adds it with [`Recorder::record`] under its instance's own lock, once per batch: workers
//! never wait for each other, and the console reading the counts holds a lock only while it
//! sums at most a day of buckets. Nothing here does IO or reads the clock; the worker passes
//! the time, so the windows are tested without waiting.
//!
//! What is counted (see `docs/console.md`):
//! * each event once per instance by its fate: delivered, retried, dead-lettered, or skipped
//!   (unchanged, no trigger matched, switched off by `integrations`);
//! * each action's part of an event once per action the event reached (an event that maps to
//!   two actions counts for each): delivered or skipped as unchanged when its requests were,
//!   else the event's fate, since a failed part is retried or dead-lettered with its event.
//!   Events that reached no action count under no action.
//!
//! The counts are this process's since it started: in a cluster each node counts what its own
//! workers decided, while the queue's depth and dead letters are the shared queue's.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use actionkit_console::{
    ActionActivity, Activity, Counts, FailureOutcome, InstanceActivity, RecentFailure, Windows,
};

use crate::worker::{ActionPart, PartResult};

/// The minutes a day of buckets covers.
pub const DAY_MINUTES: u64 = 24 * 60;
/// The minutes of the shorter window.
pub const HOUR_MINUTES: u64 = 60;
/// The most recent failures kept per instance.
pub const RECENT_FAILURES: usize = 100;

/// What became of an event, or of an action's part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Sent and accepted.
    Delivered,
    /// Scheduled for a retry (or handed out again because its outcome could not be written).
    Retried,
    /// In the dead-letter queue.
    DeadLettered,
    /// Not sent: it would have changed nothing.
    SkippedUnchanged,
    /// Not sent: no trigger matched.
    SkippedNoTrigger,
    /// Not sent: `integrations` switched the instance off.
    SkippedFiltered,
}

/// Counts by [`Fate`], in its order.
type Tally = [u64; 6];

fn add(into: &mut Tally, from: &Tally) {
    for (total, n) in into.iter_mut().zip(from) {
        *total += n;
    }
}

fn counts(tally: &Tally) -> Counts {
    Counts {
        delivered: tally[Fate::Delivered as usize],
        retried: tally[Fate::Retried as usize],
        dead_lettered: tally[Fate::DeadLettered as usize],
        skipped_unchanged: tally[Fate::SkippedUnchanged as usize],
        skipped_no_trigger: tally[Fate::SkippedNoTrigger as usize],
        skipped_filtered: tally[Fate::SkippedFiltered as usize],
    }
}

/// Counts per action key (`None`: the events that reached no action).
type ByAction = Vec<(Option<&'static str>, Tally)>;

fn tally_for<'a>(by_action: &'a mut ByAction, action: Option<&'static str>) -> &'a mut Tally {
    let idx = match by_action.iter().position(|(key, _)| *key == action) {
        Some(idx) => idx,
        None => {
            by_action.push((action, Tally::default()));
            by_action.len() - 1
        }
    };
    &mut by_action[idx].1
}

/// One failed delivery as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    at: SystemTime,
    action: Option<&'static str>,
    message_id: String,
    dead: bool,
    status: Option<u16>,
    reason: String,
}

/// What one leased batch came to, gathered by a worker without a lock.
#[derive(Debug, Default)]
pub struct BatchTally {
    events: Tally,
    actions: ByAction,
    failures: Vec<Failure>,
}

/// Why an event failed, for the list of recent failures.
#[derive(Debug, Clone, Copy)]
pub struct FailureNote<'a> {
    /// The event's `messageId`.
    pub message_id: &'a str,
    /// The event's reason as a whole (used when no action failed, such as an unreadable event).
    pub reason: &'a str,
    /// Put before each reason: the queue's own word, such as `max age exceeded: `.
    pub prefix: &'a str,
}

impl BatchTally {
    /// Adds one event of `fate` whose actions did `parts`, at `at`; a retried or dead-lettered
    /// event also adds its failed parts (or itself, when none failed) to the recent failures.
    pub fn event(
        &mut self,
        fate: Fate,
        parts: &[ActionPart],
        note: Option<FailureNote<'_>>,
        at: SystemTime,
    ) {
        self.events[fate as usize] += 1;
        if parts.is_empty() {
            tally_for(&mut self.actions, None)[fate as usize] += 1;
        }
        for part in parts {
            let counted = match part.result {
                PartResult::Delivered => Fate::Delivered,
                PartResult::Unchanged => Fate::SkippedUnchanged,
                PartResult::Failed => fate,
            };
            tally_for(&mut self.actions, Some(part.action))[counted as usize] += 1;
        }
        let dead = match fate {
            Fate::Retried => false,
            Fate::DeadLettered => true,
            _ => return,
        };
        let Some(note) = note else { return };
        let mut failed = parts
            .iter()
            .filter(|part| part.result == PartResult::Failed)
            .peekable();
        if failed.peek().is_none() {
            self.failures.push(Failure {
                at,
                action: None,
                message_id: note.message_id.to_owned(),
                dead,
                status: None,
                reason: format!("{}{}", note.prefix, note.reason),
            });
        }
        for part in failed {
            self.failures.push(Failure {
                at,
                action: Some(part.action),
                message_id: note.message_id.to_owned(),
                dead,
                status: part.status,
                reason: format!(
                    "{}{}",
                    note.prefix,
                    part.reason.as_deref().unwrap_or(note.reason)
                ),
            });
        }
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.events.iter().all(|n| *n == 0)
    }
}

/// The counts of one minute.
#[derive(Debug)]
struct Minute {
    /// Minutes since the Unix epoch.
    minute: u64,
    events: Tally,
    actions: ByAction,
}

/// What one instance's worker recorded.
#[derive(Debug, Default)]
struct InstanceLog {
    /// Oldest first, at most a day of minutes with something in them.
    minutes: VecDeque<Minute>,
    /// Oldest first, at most [`RECENT_FAILURES`].
    failures: VecDeque<Failure>,
}

fn minute_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / 60)
}

impl InstanceLog {
    fn add(&mut self, tally: BatchTally, now: SystemTime) {
        let minute = minute_of(now);
        // A clock that went back adds to the newest minute rather than make them unordered.
        let newest = self.minutes.back().is_some_and(|m| m.minute >= minute);
        if !newest {
            self.minutes.push_back(Minute {
                minute,
                events: Tally::default(),
                actions: Vec::new(),
            });
        }
        if let Some(bucket) = self.minutes.back_mut() {
            add(&mut bucket.events, &tally.events);
            for (action, counts) in &tally.actions {
                add(tally_for(&mut bucket.actions, *action), counts);
            }
        }
        while self
            .minutes
            .front()
            .is_some_and(|m| m.minute + DAY_MINUTES <= minute)
        {
            self.minutes.pop_front();
        }
        self.failures.extend(tally.failures);
        while self.failures.len() > RECENT_FAILURES {
            self.failures.pop_front();
        }
    }

    fn activity(&self, name: &str, now: SystemTime) -> InstanceActivity {
        let minute = minute_of(now);
        let mut events = (Tally::default(), Tally::default());
        let mut actions: Vec<(Option<&'static str>, Tally, Tally)> = Vec::new();
        for bucket in &self.minutes {
            // A bucket ahead of `now` (the clock went back) counts in both windows.
            let in_day = bucket.minute + DAY_MINUTES > minute;
            let in_hour = bucket.minute + HOUR_MINUTES > minute;
            if !in_day {
                continue;
            }
            add(&mut events.1, &bucket.events);
            if in_hour {
                add(&mut events.0, &bucket.events);
            }
            for (action, counts) in &bucket.actions {
                let idx = match actions.iter().position(|(key, _, _)| key == action) {
                    Some(idx) => idx,
                    None => {
                        actions.push((*action, Tally::default(), Tally::default()));
                        actions.len() - 1
                    }
                };
                add(&mut actions[idx].2, counts);
                if in_hour {
                    add(&mut actions[idx].1, counts);
                }
            }
        }
        InstanceActivity {
            name: name.to_owned(),
            events: Windows {
                hour: counts(&events.0),
                day: counts(&events.1),
            },
            actions: actions
                .into_iter()
                .map(|(action, hour, day)| ActionActivity {
                    action: action.map(str::to_owned),
                    windows: Windows {
                        hour: counts(&hour),
                        day: counts(&day),
                    },
                })
                .collect(),
        }
    }
}

fn lock(log: &Mutex<InstanceLog>) -> MutexGuard<'_, InstanceLog> {
    // The log holds only counts: after a panic elsewhere they are still worth showing.
    log.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where one instance's worker records what it decided; cheap to clone.
#[derive(Debug, Clone)]
pub struct Recorder {
    log: Arc<Mutex<InstanceLog>>,
}

impl Recorder {
    /// Adds what one batch came to, at `now`.
    pub fn record(&self, tally: BatchTally, now: SystemTime) {
        if tally.is_empty() {
            return;
        }
        lock(&self.log).add(tally, now);
    }
}

/// What the workers of this process decided, per instance.
#[derive(Debug)]
pub struct ActivityLog {
    since: SystemTime,
    instances: Vec<(String, Arc<Mutex<InstanceLog>>)>,
}

impl ActivityLog {
    /// An empty log of the instances `names`, counting from `since`.
    pub fn new(names: impl IntoIterator<Item = String>, since: SystemTime) -> ActivityLog {
        ActivityLog {
            since,
            instances: names
                .into_iter()
                .map(|name| (name, Arc::default()))
                .collect(),
        }
    }

    /// The recorder of the instance `name`, if the log has it.
    pub fn recorder(&self, name: &str) -> Option<Recorder> {
        self.instances
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, log)| Recorder {
                log: Arc::clone(log),
            })
    }

    /// The counts of the last hour and day before `now`, and the recent failures, newest
    /// first.
    pub fn activity(&self, now: SystemTime) -> Activity {
        let mut instances = Vec::with_capacity(self.instances.len());
        let mut failures: Vec<RecentFailure> = Vec::new();
        for (name, log) in &self.instances {
            let log = lock(log);
            instances.push(log.activity(name, now));
            failures.extend(log.failures.iter().map(|f| RecentFailure {
                at: f.at,
                instance: name.clone(),
                action: f.action.map(str::to_owned),
                message_id: f.message_id.clone(),
                outcome: if f.dead {
                    FailureOutcome::DeadLettered
                } else {
                    FailureOutcome::Retried
                },
                status: f.status,
                reason: f.reason.clone(),
            }));
        }
        // Newest first; a stable sort keeps each instance's own order for equal times.
        failures.reverse();
        failures.sort_by_key(|f| std::cmp::Reverse(f.at));
        failures.truncate(RECENT_FAILURES);
        Activity {
            since: self.since,
            now,
            instances,
            failures,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(minute: u64, second: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 / 60 * 60 + minute * 60 + second)
    }

    fn part(action: &'static str, result: PartResult, status: Option<u16>) -> ActionPart {
        ActionPart {
            action,
            result,
            status,
            reason: (result == PartResult::Failed).then(|| format!("{action} refused")),
        }
    }

    fn note(message_id: &str) -> Option<FailureNote<'_>> {
        Some(FailureNote {
            message_id,
            reason: "the event as a whole",
            prefix: "",
        })
    }

    #[test]
    fn events_count_once_and_actions_once_per_action_reached() {
        let log = ActivityLog::new(["up".to_owned()], at(0, 0));
        let recorder = log.recorder("up").expect("configured");
        let mut tally = BatchTally::default();
        // One event to two actions, one delivered and one refused for good.
        tally.event(
            Fate::DeadLettered,
            &[
                part("identifyUser", PartResult::Delivered, Some(202)),
                part("trackEvent", PartResult::Failed, Some(400)),
            ],
            note("m1"),
            at(0, 1),
        );
        // An unchanged identify, a delivered track, and an event no trigger matched.
        tally.event(
            Fate::SkippedUnchanged,
            &[part("identifyUser", PartResult::Unchanged, None)],
            None,
            at(0, 2),
        );
        tally.event(
            Fate::Delivered,
            &[part("trackEvent", PartResult::Delivered, Some(202))],
            None,
            at(0, 2),
        );
        tally.event(Fate::SkippedNoTrigger, &[], None, at(0, 3));
        recorder.record(tally, at(0, 3));

        let activity = log.activity(at(0, 30));
        let up = &activity.instances[0];
        assert_eq!(
            up.events.hour,
            Counts {
                delivered: 1,
                dead_lettered: 1,
                skipped_unchanged: 1,
                skipped_no_trigger: 1,
                ..Counts::default()
            }
        );
        assert_eq!(up.events.day, up.events.hour);
        let action = |key: Option<&str>| {
            up.actions
                .iter()
                .find(|a| a.action.as_deref() == key)
                .map(|a| a.windows.hour)
                .unwrap_or_default()
        };
        assert_eq!(
            action(Some("identifyUser")),
            Counts {
                delivered: 1,
                skipped_unchanged: 1,
                ..Counts::default()
            }
        );
        assert_eq!(
            action(Some("trackEvent")),
            Counts {
                delivered: 1,
                dead_lettered: 1,
                ..Counts::default()
            }
        );
        assert_eq!(
            action(None),
            Counts {
                skipped_no_trigger: 1,
                ..Counts::default()
            }
        );
        // Only the failed part is a recent failure, with its own status and reason.
        assert_eq!(activity.failures.len(), 1);
        let failure = &activity.failures[0];
        assert_eq!(failure.action.as_deref(), Some("trackEvent"));
        assert_eq!(failure.message_id, "m1");
        assert_eq!(failure.outcome, FailureOutcome::DeadLettered);
        assert_eq!(failure.status, Some(400));
        assert_eq!(failure.reason, "trackEvent refused");
    }

    #[test]
    fn the_hour_and_the_day_are_whole_minutes_and_older_buckets_are_dropped() {
        let log = ActivityLog::new(["up".to_owned()], at(0, 0));
        let recorder = log.recorder("up").expect("configured");
        let delivered = |n: usize| {
            let mut tally = BatchTally::default();
            for _ in 0..n {
                tally.event(Fate::Delivered, &[], None, at(0, 0));
            }
            tally
        };
        recorder.record(delivered(1), at(0, 10));
        recorder.record(delivered(2), at(100, 0));
        recorder.record(delivered(4), at(159, 59));
        let read = |now| {
            let activity = log.activity(now);
            let events = activity.instances[0].events;
            (events.hour.delivered, events.day.delivered)
        };
        // At minute 159 the hour holds minutes 100 to 159.
        assert_eq!(read(at(159, 59)), (6, 7));
        // A minute later minute 100 has left the hour.
        assert_eq!(read(at(160, 0)), (4, 7));
        // Minute 0 leaves the day at minute 1440.
        assert_eq!(read(at(1439, 59)), (0, 7));
        assert_eq!(read(at(1440, 0)), (0, 6));
        // Recording a day later drops the buckets nobody can see any more.
        recorder.record(delivered(8), at(1700, 0));
        let kept: Vec<u64> = lock(&recorder.log)
            .minutes
            .iter()
            .map(|m| m.minute - minute_of(at(0, 0)))
            .collect();
        assert_eq!(kept, vec![1700]);
        // A clock that went back adds to the newest minute.
        recorder.record(delivered(16), at(1600, 0));
        assert_eq!(lock(&recorder.log).minutes.len(), 1);
        assert_eq!(read(at(1700, 0)), (24, 24));
    }

    #[test]
    fn recent_failures_are_bounded_newest_first_and_name_the_event_when_no_action_failed() {
        let log = ActivityLog::new(["a".to_owned(), "b".to_owned()], at(0, 0));
        let a = log.recorder("a").expect("configured");
        let b = log.recorder("b").expect("configured");
        assert!(log.recorder("c").is_none());
        for idx in 0..(RECENT_FAILURES as u64 + 5) {
            let mut tally = BatchTally::default();
            let id = format!("a{idx}");
            tally.event(
                Fate::Retried,
                &[part("trackEvent", PartResult::Failed, Some(503))],
                note(&id),
                at(idx, 0),
            );
            a.record(tally, at(idx, 0));
        }
        let mut tally = BatchTally::default();
        tally.event(
            Fate::DeadLettered,
            &[],
            Some(FailureNote {
                message_id: "b1",
                reason: "stored event is not valid JSON",
                prefix: "max age exceeded: ",
            }),
            at(50, 30),
        );
        b.record(tally, at(50, 30));
        let failures = log.activity(at(200, 0)).failures;
        assert_eq!(failures.len(), RECENT_FAILURES);
        assert_eq!(failures[0].message_id, format!("a{}", RECENT_FAILURES + 4));
        assert_eq!(failures[0].outcome, FailureOutcome::Retried);
        let unread = failures
            .iter()
            .find(|f| f.instance == "b")
            .expect("b's failure is among the newest");
        assert_eq!(unread.action, None);
        assert_eq!(unread.status, None);
        assert_eq!(
            unread.reason,
            "max age exceeded: stored event is not valid JSON"
        );
        // The oldest of a's were dropped: five by a's own bound, one for b's.
        for gone in ["a0", "a4", "a5"] {
            assert!(failures.iter().all(|f| f.message_id != gone), "{gone}");
        }
        assert!(failures.iter().any(|f| f.message_id == "a6"));
        assert!(failures.windows(2).all(|w| w[0].at >= w[1].at));
    }
}
