//! Sliding-window rate limiting per endpoint group.
//!
//! Each group keeps the arrival times of the requests it admitted within the current window. A
//! request is admitted when fewer than `max_requests` of them are younger than `window`; otherwise
//! it is refused with the time until the oldest one leaves the window. Refused requests do not
//! count against the limit.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::{RateLimit, RateLimits};

/// The endpoint groups that carry a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitGroup {
    /// `POST /v1/identify`.
    Identify,
    /// `POST /v1/companies/identify`.
    CompaniesIdentify,
    /// `POST /v1/track`.
    Track,
    /// `DELETE /v1/users` and `DELETE /v1/companies`.
    Delete,
}

/// The admitted arrival times of one group.
#[derive(Debug)]
pub(crate) struct SlidingWindow {
    limit: RateLimit,
    admitted: VecDeque<Instant>,
}

impl SlidingWindow {
    pub(crate) fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            admitted: VecDeque::new(),
        }
    }

    /// Admits a request arriving at `now`, or returns how long to wait before one would be
    /// admitted.
    pub(crate) fn try_admit(&mut self, now: Instant) -> Result<(), Duration> {
        while let Some(&oldest) = self.admitted.front() {
            if now.saturating_duration_since(oldest) >= self.limit.window {
                self.admitted.pop_front();
            } else {
                break;
            }
        }
        let max = usize::try_from(self.limit.max_requests).unwrap_or(usize::MAX);
        if self.admitted.len() < max {
            self.admitted.push_back(now);
            return Ok(());
        }
        let wait = self
            .admitted
            .front()
            .map(|&oldest| (oldest + self.limit.window).saturating_duration_since(now))
            .unwrap_or(self.limit.window);
        Err(wait)
    }
}

/// The limiter of all groups; `None` inside when limits are disabled.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    windows: Option<[Mutex<SlidingWindow>; 4]>,
    limits: RateLimits,
}

impl RateLimiter {
    pub(crate) fn new(limits: &RateLimits) -> Self {
        let windows = limits.enabled.then(|| {
            [
                Mutex::new(SlidingWindow::new(limits.identify)),
                Mutex::new(SlidingWindow::new(limits.companies_identify)),
                Mutex::new(SlidingWindow::new(limits.track)),
                Mutex::new(SlidingWindow::new(limits.delete)),
            ]
        });
        Self {
            windows,
            limits: limits.clone(),
        }
    }

    /// The configured limit of a group.
    pub(crate) fn limit(&self, group: LimitGroup) -> RateLimit {
        match group {
            LimitGroup::Identify => self.limits.identify,
            LimitGroup::CompaniesIdentify => self.limits.companies_identify,
            LimitGroup::Track => self.limits.track,
            LimitGroup::Delete => self.limits.delete,
        }
    }

    /// Admits a request of `group` now, or returns the wait until one would be admitted.
    pub(crate) fn try_admit(&self, group: LimitGroup) -> Result<(), Duration> {
        let Some(windows) = &self.windows else {
            return Ok(());
        };
        let idx = match group {
            LimitGroup::Identify => 0,
            LimitGroup::CompaniesIdentify => 1,
            LimitGroup::Track => 2,
            LimitGroup::Delete => 3,
        };
        // A poisoned lock only means another request panicked mid-update; the window is still a
        // valid list of instants, so keep using it.
        let mut window = windows[idx]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        window.try_admit(Instant::now())
    }
}

/// Rounds a wait up to whole seconds for `Retry-After`, never below 1.
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_then_reports_the_wait() {
        let mut window = SlidingWindow::new(RateLimit::new(2, Duration::from_secs(10)));
        let t0 = Instant::now();
        assert_eq!(window.try_admit(t0), Ok(()));
        assert_eq!(window.try_admit(t0 + Duration::from_secs(4)), Ok(()));
        assert_eq!(
            window.try_admit(t0 + Duration::from_secs(6)),
            Err(Duration::from_secs(4))
        );
        // The first admission leaves the window at t0 + 10 s.
        assert_eq!(window.try_admit(t0 + Duration::from_secs(10)), Ok(()));
        assert_eq!(
            window.try_admit(t0 + Duration::from_secs(11)),
            Err(Duration::from_secs(3))
        );
    }

    #[test]
    fn refused_requests_do_not_extend_the_window() {
        let mut window = SlidingWindow::new(RateLimit::new(1, Duration::from_secs(2)));
        let t0 = Instant::now();
        assert_eq!(window.try_admit(t0), Ok(()));
        for ms in [100, 500, 1900] {
            assert!(window.try_admit(t0 + Duration::from_millis(ms)).is_err());
        }
        assert_eq!(window.try_admit(t0 + Duration::from_secs(2)), Ok(()));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn disabled_limiter_admits_everything() {
        let limiter = RateLimiter::new(&RateLimits::disabled());
        for _ in 0..10 {
            assert_eq!(limiter.try_admit(LimitGroup::Delete), Ok(()));
        }
    }
}
