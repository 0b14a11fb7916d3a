//! The progress line of `actionkit send` and its rate-limit report.
//!
//! The line shows what a person waiting for a long run wants to know: how many events are done
//! and at what rate over the last [`RATE_WINDOW`] (a run bound by a rate limit starts with a burst
//! and then settles, so the average since the start would promise far too early an end), how much
//! of the input that is and when it should end at that rate, and,
//! when delivery is held back, which rate limit of which destination it is waiting for, so that a
//! run limited to Userpilot's 600 identifies a minute does not look stuck. A ticker redraws it
//! four times a second, also while nothing finishes.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actionkit_runtime::delivery::LimitStats;

use crate::setup::Target;

/// How far back the shown rate and the time left look.
pub const RATE_WINDOW: Duration = Duration::from_secs(20);

/// Events and input bytes done per second over the recent past.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// Events finished per second.
    pub events: f64,
    /// Input bytes finished per second.
    pub bytes: f64,
}

/// Counts shared between the loop that finishes events and the ticker that draws them.
pub struct Progress {
    bar: indicatif::ProgressBar,
    started: Instant,
    /// `(when, events, bytes)` at each redraw within [`RATE_WINDOW`], oldest first.
    samples: Mutex<VecDeque<(Instant, u64, u64)>>,
    events: AtomicU64,
    bytes: AtomicU64,
    input_len: Option<u64>,
    targets: Arc<Vec<Target>>,
}

impl Progress {
    /// A progress line on standard error (drawn only when it is a terminal) for an input of
    /// `input_len` bytes when known.
    pub fn new(input_len: Option<u64>, targets: Arc<Vec<Target>>) -> Arc<Self> {
        let bar = indicatif::ProgressBar::with_draw_target(
            None,
            indicatif::ProgressDrawTarget::stderr_with_hz(4),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg}") {
            bar.set_style(style);
        }
        Arc::new(Self {
            bar,
            started: Instant::now(),
            samples: Mutex::new(VecDeque::new()),
            events: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            input_len: input_len.filter(|len| *len > 0),
            targets,
        })
    }

    /// Counts one finished event that took `bytes` of the input.
    pub fn add(&self, bytes: usize) {
        self.events.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Redraws the line every 250 ms until the returned task is aborted.
    pub fn spawn_ticker(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let progress = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                progress.bar.set_message(progress.line());
                progress.bar.tick();
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    }

    /// Removes the line.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    fn line(&self) -> String {
        let now = Instant::now();
        let events = self.events.load(Ordering::Relaxed);
        let bytes = self.bytes.load(Ordering::Relaxed);
        let rates = {
            let mut samples = self
                .samples
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            samples.push_back((now, events, bytes));
            while samples
                .front()
                .is_some_and(|(at, _, _)| now.duration_since(*at) > RATE_WINDOW)
            {
                samples.pop_front();
            }
            // From the oldest sample in the window, or from the start while the run is young.
            let (from, events_then, bytes_then) = match samples.front() {
                Some(&(at, e, b)) if now.duration_since(at) >= Duration::from_secs(5) => (at, e, b),
                _ => (self.started, 0, 0),
            };
            let secs = now.duration_since(from).as_secs_f64();
            (secs >= 1.0).then(|| Rates {
                events: (events - events_then) as f64 / secs,
                bytes: (bytes - bytes_then) as f64 / secs,
            })
        };
        let waits = limit_stats(&self.targets);
        progress_line(
            events,
            bytes,
            self.input_len,
            self.started.elapsed(),
            rates,
            &waits,
        )
    }
}

/// Every rate limit of every destination instance, with the instance's name.
pub fn limit_stats(targets: &[Target]) -> Vec<(String, LimitStats)> {
    targets
        .iter()
        .flat_map(|target| {
            target
                .client
                .rate_limiter()
                .stats()
                .into_iter()
                .map(|stats| (target.name.clone(), stats))
        })
        .collect()
}

/// The progress line: events done and their recent rate, the share of the input done and the
/// time left at that rate when the input's size is known, the time since the start, and the rate
/// limits being waited for.
pub fn progress_line(
    events: u64,
    bytes: u64,
    input_len: Option<u64>,
    elapsed: Duration,
    rates: Option<Rates>,
    waits: &[(String, LimitStats)],
) -> String {
    let noun = if events == 1 { "event" } else { "events" };
    let mut parts = vec![format!("{events} {noun}")];
    if let Some(len) = input_len {
        let share = (bytes as f64 / len as f64).clamp(0.0, 1.0);
        let mut done = format!("{:.0}% of {}", share * 100.0, human_bytes(len));
        if let Some(rates) = rates.filter(|r| r.bytes > 0.0 && share < 1.0) {
            let left = Duration::from_secs_f64(len.saturating_sub(bytes) as f64 / rates.bytes);
            done.push_str(&format!(", about {} left", human_duration(left)));
        }
        parts.push(done);
    }
    if let Some(rates) = rates {
        parts.push(format!("{}/s", rate_text(rates.events)));
    }
    parts.push(human_duration(elapsed));
    let waiting: Vec<String> = waits
        .iter()
        .filter(|(_, stats)| stats.waiting > 0)
        .map(|(instance, stats)| format!("{instance}'s {}", describe_limit(stats)))
        .collect();
    if !waiting.is_empty() {
        parts.push(format!("waiting for {}", waiting.join(" and ")));
    }
    parts.join(" · ")
}

/// The summary lines of the time delivery waited for each rate limit: one line per destination
/// instance, each limit with its size and the wall-clock time some request waited for it; nothing
/// when no limit is configured.
pub fn rate_limit_report(waits: &[(String, LimitStats)]) -> String {
    let mut out = String::new();
    let mut idx = 0;
    while let Some((instance, _)) = waits.get(idx) {
        let limits: Vec<String> = waits[idx..]
            .iter()
            .take_while(|(name, _)| name == instance)
            .map(|(_, stats)| {
                let size = match stats.limit {
                    Some((max, per)) => format!("{max} per {}", human_window(per)),
                    None => "Retry-After".to_owned(),
                };
                format!("{} ({size}) {}", stats.key, human_duration(stats.waited))
            })
            .collect();
        idx += limits.len();
        out.push_str(&format!(
            "  waited for {instance}'s rate limits: {}\n",
            limits.join(", ")
        ));
    }
    out
}

/// `rate limit identify (600 per minute)`, or `pause of identify (Retry-After)` for a key that
/// only a `Retry-After` held back.
fn describe_limit(stats: &LimitStats) -> String {
    match stats.limit {
        Some((max, per)) => format!("rate limit {} ({max} per {})", stats.key, human_window(per)),
        None => format!("Retry-After pause of {}", stats.key),
    }
}

fn human_window(per: Duration) -> String {
    match per.as_secs() {
        1 => "second".to_owned(),
        60 => "minute".to_owned(),
        3600 => "hour".to_owned(),
        _ => human_duration(per),
    }
}

fn rate_text(rate: f64) -> String {
    if rate >= 100.0 {
        format!("{rate:.0}")
    } else {
        format!("{rate:.1}")
    }
}

/// `0s`, `12s`, `3m 05s`, `2h 04m`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m {:02}s", secs / 60, secs % 60),
        _ => format!("{}h {:02}m", secs / 3600, secs % 3600 / 60),
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(key: &str, limit: Option<(u32, u64)>, waiting: usize, waited: u64) -> LimitStats {
        LimitStats {
            key: key.to_owned(),
            limit: limit.map(|(max, secs)| (max, Duration::from_secs(secs))),
            waiting,
            waited: Duration::from_secs(waited),
        }
    }

    #[test]
    fn the_line_shows_the_recent_rate_the_share_done_the_time_left_and_the_limit_waited_for() {
        let waits = vec![
            (
                "userpilot".to_owned(),
                stats("identify", Some((600, 60)), 48, 30),
            ),
            (
                "userpilot".to_owned(),
                stats("track", Some((600, 60)), 0, 0),
            ),
        ];
        // 1,216 events after 60 s, a quarter of a 6.1 MB file, now going at 10 events and 1,250
        // bytes a second (the rate limit), so the 4,575,000 bytes left are 3,660 s away.
        let rates = Some(Rates {
            events: 10.0,
            bytes: 1250.0,
        });
        let line = progress_line(
            1216,
            1_525_000,
            Some(6_100_000),
            Duration::from_secs(60),
            rates,
            &waits,
        );
        assert_eq!(
            line,
            "1216 events · 25% of 6.1 MB, about 1h 01m left · 10.0/s · 1m 00s · waiting for userpilot's rate limit identify (600 per minute)"
        );
        // Unknown size (stdin), early on, nothing waiting.
        assert_eq!(
            progress_line(1, 10, None, Duration::from_millis(300), None, &waits[1..]),
            "1 event · 0s"
        );
        // A key held only by Retry-After.
        let paused = vec![("up".to_owned(), stats("identify", None, 1, 2))];
        assert!(
            progress_line(5, 0, None, Duration::from_secs(2), rates, &paused)
                .ends_with("waiting for up's Retry-After pause of identify")
        );
    }

    #[test]
    fn the_report_lists_the_time_waited_per_limit() {
        let waits = vec![
            ("userpilot".to_owned(), stats("delete", Some((1, 2)), 0, 0)),
            (
                "userpilot".to_owned(),
                stats("identify", Some((600, 60)), 0, 754),
            ),
        ];
        assert_eq!(
            rate_limit_report(&waits),
            "  waited for userpilot's rate limits: delete (1 per 2s) 0s, identify (600 per minute) 12m 34s\n"
        );
        let two = vec![
            ("a".to_owned(), stats("track", Some((3, 1)), 0, 1)),
            ("b".to_owned(), stats("identify", None, 0, 5)),
        ];
        assert_eq!(
            rate_limit_report(&two),
            "  waited for a's rate limits: track (3 per second) 1s\n  waited for b's rate limits: identify (Retry-After) 5s\n"
        );
        assert_eq!(rate_limit_report(&[]), "");
        assert_eq!(human_duration(Duration::from_secs(7500)), "2h 05m");
        assert_eq!(human_bytes(999), "999 B");
    }
}
