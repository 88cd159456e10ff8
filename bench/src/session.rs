//! The session trace: users open the app, page through 2–5 pages and come back later, with
//! arrivals by time of day, over a compressed day (the Zipf trace's companion; BENCHMARKS.md).
//!
//! Model (seeded, deterministic):
//! - **Who.** `users` active users; each has a rate of sessions per day drawn from a log-normal
//!   (median ≈ 0.8 × the mean, σ = 0.7; clamped to 1–48), so heavy users make most sessions — as
//!   in short-video apps, where a daily user opens the app several times a day.
//! - **When.** Each user's sessions are a Poisson process whose intensity follows the time of
//!   day: `1 + 0.7 cos(2π (h − 21) / 24)` (evening peak at 21:00, trough at 09:00, 5.7× apart),
//!   with at least [`MIN_GAP_HOURS`] between two sessions of a user (a session lasts minutes).
//!   Returns follow from that: most sessions come from users who were active a few hours before.
//! - **What.** Each session requests 2–5 pages (uniform): the first page, then cursor pages.
//! - **Clock.** The trace starts at [`START_HOUR`] the day before (a lead-in, not measured, so
//!   that the measured day begins with the evening's users known) and ends 24 h after midnight.
//!   Times are in compressed milliseconds: `day_ms` is one day.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp, LogNormal};

/// Hour of day at which the trace starts (the lead-in before the measured day).
pub const START_HOUR: f64 = 18.0;
/// Shortest time between two sessions of one user (hours).
pub const MIN_GAP_HOURS: f64 = 0.5;
/// Hour of the evening peak.
const PEAK_HOUR: f64 = 21.0;
/// Amplitude of the time-of-day curve around its mean (1).
const AMPLITUDE: f64 = 0.7;
/// Spread of the users' session rates (σ of their logarithm).
const RATE_SIGMA: f64 = 0.7;

/// Shape of a session trace.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SessionSpec {
    /// Active users (indices `0..users`; the caller maps them to world users).
    pub users: usize,
    /// One compressed day, milliseconds.
    pub day_ms: u64,
    /// Mean sessions per user per day.
    pub sessions_per_day: f64,
    /// Seed.
    pub seed: u64,
}

/// One visit: a user opens the app and requests `pages` pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    /// Start, compressed ms from the trace's start.
    pub start_ms: u64,
    /// User index in `0..users`.
    pub user: usize,
    /// Pages requested (2–5): the first page, then cursor pages.
    pub pages: u8,
}

/// A generated trace.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionTrace {
    /// Sessions by start time.
    pub sessions: Vec<Session>,
    /// Start of the measured day (midnight), compressed ms.
    pub measured_from_ms: u64,
    /// End of the trace (the next midnight), compressed ms.
    pub end_ms: u64,
}

/// Relative arrival intensity at hour of day `h` (mean 1 over a day).
pub fn intensity(h: f64) -> f64 {
    1.0 + AMPLITUDE * (std::f64::consts::TAU * (h - PEAK_HOUR) / 24.0).cos()
}

impl SessionTrace {
    /// The trace of `spec`.
    pub fn generate(spec: SessionSpec) -> Self {
        let hour_ms = spec.day_ms as f64 / 24.0;
        let lead_in_hours = 24.0 - START_HOUR;
        let total_hours = lead_in_hours + 24.0;
        let mut rng = StdRng::seed_from_u64(spec.seed);
        let mean = spec.sessions_per_day.max(0.1);
        // A log-normal with this mean: exp(μ + σ²/2) = mean.
        let mu = mean.ln() - RATE_SIGMA * RATE_SIGMA / 2.0;
        let rates = LogNormal::new(mu, RATE_SIGMA).ok();
        let peak = 1.0 + AMPLITUDE;
        let mut sessions = Vec::new();
        for user in 0..spec.users {
            let per_day = rates
                .as_ref()
                .map_or(mean, |r| r.sample(&mut rng))
                .clamp(1.0, 48.0);
            // Thinning: candidates at the peak rate, kept with probability intensity / peak.
            let Ok(gaps) = Exp::new(per_day / 24.0 * peak) else {
                continue;
            };
            let mut t = 0.0;
            let mut last: Option<f64> = None;
            loop {
                t += gaps.sample(&mut rng);
                if t >= total_hours {
                    break;
                }
                let hour = (START_HOUR + t) % 24.0;
                let keep = rng.random::<f64>() < intensity(hour) / peak;
                if !keep || last.is_some_and(|l| t - l < MIN_GAP_HOURS) {
                    continue;
                }
                last = Some(t);
                sessions.push(Session {
                    start_ms: (t * hour_ms) as u64,
                    user,
                    pages: rng.random_range(2..=5),
                });
            }
        }
        sessions.sort_by_key(|s| (s.start_ms, s.user));
        Self {
            sessions,
            measured_from_ms: (lead_in_hours * hour_ms) as u64,
            end_ms: (total_hours * hour_ms) as u64,
        }
    }

    /// Sessions that start in the measured day.
    pub fn measured(&self) -> impl Iterator<Item = &Session> {
        self.sessions
            .iter()
            .filter(|s| s.start_ms >= self.measured_from_ms)
    }

    /// Share of the measured sessions whose user had a session within `within_ms` before.
    pub fn returning_share(&self, within_ms: u64) -> f64 {
        let mut last: std::collections::HashMap<usize, u64> = Default::default();
        let (mut returning, mut total) = (0u64, 0u64);
        for s in &self.sessions {
            if s.start_ms >= self.measured_from_ms {
                total += 1;
                returning += u64::from(
                    last.get(&s.user)
                        .is_some_and(|t| s.start_ms - t <= within_ms),
                );
            }
            last.insert(s.user, s.start_ms);
        }
        returning as f64 / total.max(1) as f64
    }

    /// Page requests in the measured day.
    pub fn measured_pages(&self) -> u64 {
        self.measured().map(|s| u64::from(s.pages)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 24_000;

    fn trace(seed: u64) -> SessionTrace {
        SessionTrace::generate(SessionSpec {
            users: 2_000,
            day_ms: DAY,
            sessions_per_day: 8.0,
            seed,
        })
    }

    #[test]
    fn the_same_seed_gives_the_same_trace_and_another_seed_another() {
        assert_eq!(trace(7), trace(7));
        assert_ne!(trace(7).sessions, trace(8).sessions);
    }

    #[test]
    fn sessions_are_ordered_within_the_trace_with_2_to_5_pages_and_spaced_per_user() {
        let t = trace(1);
        assert_eq!(t.measured_from_ms, 6_000);
        assert_eq!(t.end_ms, 30_000);
        assert!(
            t.sessions
                .windows(2)
                .all(|w| w[0].start_ms <= w[1].start_ms)
        );
        assert!(t.sessions.iter().all(|s| s.start_ms < t.end_ms));
        assert!(t.sessions.iter().all(|s| (2..=5).contains(&s.pages)));
        let mut last = vec![None::<u64>; 2_000];
        let min_gap = (MIN_GAP_HOURS * DAY as f64 / 24.0) as u64 - 1;
        for s in &t.sessions {
            if let Some(l) = last[s.user] {
                assert!(s.start_ms - l >= min_gap, "{s:?} after {l}");
            }
            last[s.user] = Some(s.start_ms);
        }
        let mean_pages = t.measured_pages() as f64 / t.measured().count() as f64;
        assert!((3.3..3.7).contains(&mean_pages), "{mean_pages}");
    }

    #[test]
    fn sessions_per_user_day_and_evening_peak_are_within_bounds() {
        let t = trace(2);
        // The minimum gap between sessions drops about a quarter of the nominal 8 per day.
        let per_user_day = t.measured().count() as f64 / 2_000.0;
        assert!((5.5..7.0).contains(&per_user_day), "{per_user_day}");
        let hour = DAY / 24;
        let between = |from: u64, to: u64| {
            t.measured()
                .filter(|s| {
                    let h = (s.start_ms - t.measured_from_ms) / hour;
                    (from..to).contains(&h)
                })
                .count() as f64
        };
        // 20:00–22:00 against 08:00–10:00: the curve gives ≈ 5.3×.
        let ratio = between(20, 22) / between(8, 10);
        assert!((3.5..8.0).contains(&ratio), "{ratio}");
    }

    #[test]
    fn most_sessions_come_from_users_active_recently() {
        let t = trace(3);
        let hours = |h: u64| h * DAY / 24;
        let within_6h = t.returning_share(hours(6));
        let within_1h = t.returning_share(hours(1));
        // Overnight gaps are longer: the first morning sessions are returns after more than 6 h.
        assert!((0.75..0.95).contains(&within_6h), "{within_6h}");
        assert!(within_1h < within_6h && within_1h > 0.2, "{within_1h}");
        // A user's first session of the trace in the measured day is a newcomer there.
        let ever = t.returning_share(u64::MAX);
        assert!(ever > within_6h && ever > 0.95, "{ever}");
    }
}
