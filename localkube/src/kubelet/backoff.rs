//! Time: the time scale that shrinks every kubelet and controller duration in tests, and the
//! restart back-off of crashing containers and unpullable images (10 s doubling to 5 min, as
//! the kubelet documents it).

use std::time::Duration;

use thiserror::Error;

/// First back-off after a failure.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(10);
/// Longest back-off.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A container that ran this long before it exited starts over at no back-off (the kubelet's
/// reset: twice the longest back-off).
pub const BACKOFF_RESET: Duration = Duration::from_secs(600);

/// A multiplier applied to every kubelet and controller duration (probe periods, back-offs,
/// grace periods, the ConfigMap sync delay, progress deadlines): 1 is real time, 0.05 runs a
/// 10 s back-off in 0.5 s. Probe timeouts are not scaled: they measure the process, not the
/// clock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeScale(f64);

/// A time scale that is not a finite number above 0 and at most 1.
#[derive(Debug, Error, PartialEq)]
#[error("the time scale must be a number in (0, 1], got {0}")]
pub struct BadTimeScale(pub f64);

impl TimeScale {
    /// Real time.
    pub const REAL: Self = Self(1.0);

    /// A time scale; `factor` must be in (0, 1].
    pub fn new(factor: f64) -> Result<Self, BadTimeScale> {
        if factor.is_finite() && factor > 0.0 && factor <= 1.0 {
            Ok(Self(factor))
        } else {
            Err(BadTimeScale(factor))
        }
    }

    /// `d` on this scale.
    pub fn of(self, d: Duration) -> Duration {
        d.mul_f64(self.0)
    }

    /// `seconds` on this scale.
    pub fn secs(self, seconds: f64) -> Duration {
        self.of(Duration::from_secs_f64(seconds.max(0.0)))
    }
}

impl Default for TimeScale {
    fn default() -> Self {
        Self::REAL
    }
}

/// A duration that is not `N`, `Ns`, `Nms` or `Nm` (N a non-negative number).
#[derive(Debug, Error, PartialEq, Eq)]
#[error("not a duration: {0:?} (use e.g. 30s, 500ms, 2m, or seconds)")]
pub struct BadDuration(pub String);

/// Parses `30s`, `500ms`, `2m` or a number of seconds (`1.5`).
pub fn parse_duration(text: &str) -> Result<Duration, BadDuration> {
    let t = text.trim();
    let (number, unit) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    number
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .and_then(|n| Duration::try_from_secs_f64(n * unit).ok())
        .ok_or_else(|| BadDuration(text.to_owned()))
}

/// How long to wait before the next start after `failures` consecutive failures (unscaled):
/// none after the first (the kubelet restarts at once and starts its back-off), then 10 s,
/// 20 s, 40 s … up to 5 min.
pub fn restart_delay(failures: u32) -> Duration {
    match failures {
        0 | 1 => Duration::ZERO,
        n => {
            let doublings = (n - 2).min(16);
            INITIAL_BACKOFF
                .saturating_mul(1 << doublings)
                .min(MAX_BACKOFF)
        }
    }
}

/// How long to wait before pulling an unpullable image again after `failures` failed pulls
/// (unscaled): 10 s, 20 s, 40 s … up to 5 min.
pub fn pull_delay(failures: u32) -> Duration {
    restart_delay(failures.saturating_add(1))
}

/// The consecutive-failure count after a container that ran for `ran` exited with a failure
/// (or exited at all, under `restartPolicy: Always`): back to 1 after a long run.
pub fn failures_after(previous: u32, ran: Duration, scale: TimeScale) -> u32 {
    if ran >= scale.of(BACKOFF_RESET) {
        1
    } else {
        previous.saturating_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_from_10s_doubling_to_5min() {
        let secs: Vec<u64> = (0..12).map(|n| restart_delay(n).as_secs()).collect();
        assert_eq!(secs, [0, 0, 10, 20, 40, 80, 160, 300, 300, 300, 300, 300]);
        assert_eq!(restart_delay(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn pulls_back_off_from_10s() {
        let secs: Vec<u64> = (1..8).map(|n| pull_delay(n).as_secs()).collect();
        assert_eq!(secs, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(pull_delay(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn a_long_run_resets_the_back_off() {
        let scale = TimeScale::new(0.01).expect("valid");
        assert_eq!(
            failures_after(5, Duration::from_secs(6), scale),
            1,
            "600 s scaled by 0.01"
        );
        assert_eq!(
            failures_after(5, Duration::from_secs(5), TimeScale::REAL),
            6
        );
        assert_eq!(failures_after(0, Duration::ZERO, TimeScale::REAL), 1);
        assert_eq!(
            failures_after(u32::MAX, Duration::ZERO, TimeScale::REAL),
            u32::MAX
        );
    }

    #[test]
    fn durations_parse_with_their_units() {
        let cases = [
            ("30s", 30_000),
            ("500ms", 500),
            ("2m", 120_000),
            ("1.5", 1_500),
            (" 0 ", 0),
        ];
        for (text, ms) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
        for bad in ["", "s", "-1s", "1h", "abc", "NaNs", "1e400"] {
            assert_eq!(
                parse_duration(bad),
                Err(BadDuration(bad.to_owned())),
                "{bad}"
            );
        }
    }

    #[test]
    fn time_scales_are_in_0_to_1_and_scale_durations() {
        for bad in [0.0, -1.0, 1.5, f64::NAN, f64::INFINITY] {
            assert!(TimeScale::new(bad).is_err(), "{bad}");
        }
        let s = TimeScale::new(0.05).expect("valid");
        assert_eq!(s.of(Duration::from_secs(10)), Duration::from_millis(500));
        assert_eq!(s.secs(30.0), Duration::from_millis(1500));
        assert_eq!(s.secs(-3.0), Duration::ZERO);
        assert_eq!(TimeScale::REAL.secs(2.0), Duration::from_secs(2));
    }
}
