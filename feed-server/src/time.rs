//! Time as the service reasons about it: one instant type, [`Timestamp`], and where "now" comes
//! from, a [`Clock`] injected through the application state ([`crate::state::AppState::clock`]).
//! Production reads the system clock; tests set a [`ManualClock`] and move it, so freshness and
//! expiry are tested without sleeping.
//!
//! Wire types keep RFC 3339 (`chrono::DateTime<Utc>`); the ranking formulas take unix seconds as
//! `f64` ([`Timestamp::secs_f64`]), the unit their half-lives and ages are written in.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};

/// An instant: milliseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The instant `ms` milliseconds after the Unix epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Seconds since the Unix epoch, with the milliseconds as a fraction: the unit of the
    /// ranking's decay and age formulas.
    pub fn secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// The instant `by` later (saturating).
    pub fn after(self, by: Duration) -> Self {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(ms))
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Self(t.timestamp_millis())
    }
}

/// Where the current time comes from.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    /// Read on every request: the system time's milliseconds, without building a calendar date.
    fn now(&self) -> Timestamp {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Timestamp(since_epoch)
    }
}

/// A clock that stands still until it is set or advanced (tests).
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock showing `at`.
    pub fn new(at: Timestamp) -> Self {
        Self(AtomicI64::new(at.millis()))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let now = Timestamp::from_millis(self.0.load(Ordering::Acquire));
        self.0.store(now.after(by).millis(), Ordering::Release);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timestamp_reads_in_milliseconds_and_fractional_seconds() {
        let t: Timestamp = DateTime::from_timestamp_millis(1_700_000_000_250)
            .map_or(Timestamp::from_millis(0), Timestamp::from);
        assert_eq!(t.millis(), 1_700_000_000_250);
        assert!((t.secs_f64() - 1_700_000_000.25).abs() < 1e-6);
        assert_eq!(t.after(Duration::from_secs(2)).millis(), 1_700_000_002_250);
        assert_eq!(
            Timestamp::from_millis(i64::MAX - 1).after(Duration::from_secs(1)),
            Timestamp::from_millis(i64::MAX)
        );
    }

    #[test]
    fn the_system_clock_reads_the_calendar_time_in_milliseconds() {
        let before = Utc::now().timestamp_millis();
        let now = SystemClock.now().millis();
        let after = Utc::now().timestamp_millis();
        assert!(
            (before..=after).contains(&now),
            "{before} ≤ {now} ≤ {after}"
        );
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(Timestamp::from_millis(5_000));
        assert_eq!(clock.now(), Timestamp::from_millis(5_000));
        clock.advance(Duration::from_millis(1_500));
        assert_eq!(clock.now(), Timestamp::from_millis(6_500));
    }
}
