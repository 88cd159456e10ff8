//! The predictive warm-up's decisions, free of I/O: what a user's recent activity says about
//! their return, whether and when their first page should be ranked ahead of it, and how long
//! the warm-up pauses to stay within its CPU budget.
//!
//! **"Likely to come back soon"**, as decided here: a user seen on this replica within the
//! remembered window whose *expected return* — their last visit plus their usual gap between
//! visits (an exponentially weighted mean; [`Policy::first_gap`] for a user seen once) — falls
//! within [`Policy::horizon`], and who is not overdue by more than [`Policy::lapse_factor`] ×
//! that gap (a user who did not come back when expected has lapsed); a user seen once only after
//! their own events showed engagement. Such a user is warmed when
//! the page they would be served then is not fresh: their own events dropped it since their
//! last visit, or it expires before the expected return.

use std::time::Duration;

/// Weight of the newest gap in the mean gap between a user's visits.
const GAP_WEIGHT: f64 = 0.3;

/// The warm-up's time constants (real time: see the bench notes in feed-server/README.md for
/// the scaled values the compressed-day bench passes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Policy {
    /// A session is over after this long without a first page or an event from the user; the
    /// warm-up never ranks before (a page ranked mid-session would be dropped by the session's
    /// next event). A first page within it of the previous activity is the same visit.
    pub quiet: Duration,
    /// Users expected back later than this are not warmed (nor remembered for it).
    pub horizon: Duration,
    /// The gap assumed for a user seen once.
    pub first_gap: Duration,
    /// A user this many expected gaps past their last visit has lapsed (not warmed).
    pub lapse_factor: f64,
    /// Page freshness assumed when the visit's page did not say (the default short-video TTL).
    pub page_ttl: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            quiet: Duration::from_secs(30),
            horizon: Duration::from_secs(24 * 3600),
            first_gap: Duration::from_secs(3600),
            lapse_factor: 3.0,
            page_ttl: Duration::from_secs(120),
        }
    }
}

/// Whole milliseconds of `d` (saturating).
pub fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// What one replica remembers of a user (a few dozen bytes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Activity {
    /// Last first-page request (unix ms).
    pub last_visit_ms: i64,
    /// Last first page or event (unix ms).
    pub last_activity_ms: i64,
    /// Mean gap between visits (ms); `None` until the second visit.
    pub gap_ms: Option<f64>,
    /// Until when the page served at the last visit (or warmed since) stays fresh (unix ms).
    pub fresh_until_ms: i64,
    /// How long that page stays fresh from its ranking (ms).
    pub page_ttl_ms: i64,
    /// The user's own events were accepted since that page: it was dropped.
    pub changed: bool,
}

/// What to do about a user now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Rank their first page at this instant (unix ms; now or later).
    WarmAt(i64),
    /// Nothing, and why.
    Skip(Skip),
}

/// Why a user is not warmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// The page they would be served on their expected return is still fresh.
    Fresh,
    /// Their expected return is beyond the horizon.
    NotSoon,
    /// They did not come back when expected.
    Lapsed,
    /// Seen once, and no events since: nothing says they will be back.
    NoCadence,
}

impl Activity {
    /// A user's first visit at `now_ms`, served a page fresh until `fresh_until_ms`.
    pub fn first_visit(now_ms: i64, fresh_until_ms: i64, ranked_at_ms: i64) -> Self {
        Self {
            last_visit_ms: now_ms,
            last_activity_ms: now_ms,
            gap_ms: None,
            fresh_until_ms,
            page_ttl_ms: (fresh_until_ms - ranked_at_ms).max(0),
            changed: false,
        }
    }

    /// A first-page request at `now_ms` served a page ranked at `ranked_at_ms`, fresh until
    /// `fresh_until_ms`. A request within [`Policy::quiet`] of the previous activity is part of
    /// the same visit (the gap is not updated).
    pub fn visit(&mut self, now_ms: i64, fresh_until_ms: i64, ranked_at_ms: i64, p: &Policy) {
        if now_ms - self.last_activity_ms >= ms(p.quiet) {
            let gap = (now_ms - self.last_visit_ms).max(0) as f64;
            self.gap_ms = Some(match self.gap_ms {
                Some(mean) => mean + GAP_WEIGHT * (gap - mean),
                None => gap,
            });
            self.last_visit_ms = now_ms;
        }
        self.last_activity_ms = self.last_activity_ms.max(now_ms);
        self.fresh_until_ms = fresh_until_ms;
        self.page_ttl_ms = (fresh_until_ms - ranked_at_ms).max(0);
        self.changed = false;
    }

    /// The user's own events were accepted at `now_ms`: their page was dropped.
    pub fn change(&mut self, now_ms: i64) {
        self.last_activity_ms = self.last_activity_ms.max(now_ms);
        self.changed = true;
    }

    /// Their first page was ranked ahead at `now_ms`, fresh for `page_ttl_ms`.
    pub fn warmed(&mut self, now_ms: i64, page_ttl_ms: i64) {
        self.fresh_until_ms = now_ms + page_ttl_ms;
        self.page_ttl_ms = page_ttl_ms;
        self.changed = false;
    }

    /// When the user is expected back (unix ms).
    pub fn expected_return_ms(&self, p: &Policy) -> i64 {
        let gap = self.gap_ms.unwrap_or(ms(p.first_gap) as f64);
        self.last_visit_ms.saturating_add(gap as i64)
    }

    /// Whether, and when, to rank the user's first page ahead of their return. The page is
    /// ranked half its TTL before the expected return (so it covers returns up to half a TTL
    /// early or late), never before the session is over, and at once if that time has passed.
    pub fn plan(&self, now_ms: i64, p: &Policy) -> Plan {
        let gap = self.gap_ms.unwrap_or(ms(p.first_gap) as f64);
        if gap > ms(p.horizon) as f64 {
            return Plan::Skip(Skip::NotSoon);
        }
        if (now_ms - self.last_visit_ms) as f64 > p.lapse_factor * gap.max(ms(p.quiet) as f64) {
            return Plan::Skip(Skip::Lapsed);
        }
        if self.gap_ms.is_none() && !self.changed {
            return Plan::Skip(Skip::NoCadence);
        }
        let back = self.expected_return_ms(p);
        if !self.changed && self.fresh_until_ms > back {
            return Plan::Skip(Skip::Fresh);
        }
        let ttl = if self.page_ttl_ms > 0 {
            self.page_ttl_ms
        } else {
            ms(p.page_ttl)
        };
        let session_over = self.last_activity_ms.saturating_add(ms(p.quiet));
        Plan::WarmAt(session_over.max(back - ttl / 2).max(now_ms))
    }
}

/// How long the warm-up pauses after a ranking that took `spent`, so that its rankings take at
/// most `budget` of each second (`budget` ≥ 1 s: no pause).
pub fn pause_after(spent: Duration, budget: Duration) -> Duration {
    let share = budget.as_secs_f64().clamp(1e-3, 1.0);
    spent.mul_f64(1.0 / share - 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: i64 = 1000;
    const T0: i64 = 1_700_000_000_000;

    fn policy() -> Policy {
        Policy::default()
    }

    /// A user who visited at T0 and T0 + gap, served a 120-s page at each.
    fn regular(gap: i64) -> Activity {
        let p = policy();
        let mut a = Activity::first_visit(T0, T0 + 120 * S, T0);
        a.visit(T0 + gap, T0 + gap + 120 * S, T0 + gap, &p);
        a
    }

    #[test]
    fn decisions_by_case() {
        let p = policy();
        let hour = 3600 * S;
        let mut changed = regular(hour);
        changed.change(T0 + hour + 5 * S);
        let mut lapsed = regular(hour);
        lapsed.change(T0 + hour);
        let mut rare = regular(30 * hour);
        rare.change(T0 + 30 * hour);
        let mut once = Activity::first_visit(T0, T0 + 120 * S, T0);
        once.change(T0 + S);
        let mut live = Activity::first_visit(T0, T0 + 10 * S, T0);
        live.visit(T0 + 20 * S + 31 * S, T0 + 61 * S, T0 + 51 * S, &p);
        let cases: [(&str, Activity, i64, Plan); 8] = [
            // Back in an hour, page dropped by events: ranked a minute (half its TTL) before.
            (
                "changed, back in an hour",
                changed,
                T0 + hour + 10 * S,
                Plan::WarmAt(T0 + 2 * hour - 60 * S),
            ),
            // Mid-session: not before the session is over.
            (
                "changed just now, frequent user",
                {
                    let mut a = regular(40 * S);
                    a.change(T0 + 50 * S);
                    a
                },
                T0 + 50 * S,
                Plan::WarmAt(T0 + 80 * S),
            ),
            (
                "unchanged page outlives the return",
                regular(60 * S),
                T0 + 61 * S,
                Plan::Skip(Skip::Fresh),
            ),
            (
                "unchanged page expires first",
                regular(hour),
                T0 + hour + S,
                Plan::WarmAt(T0 + 2 * hour - 60 * S),
            ),
            (
                "overdue by more than 3 gaps",
                lapsed,
                T0 + 5 * hour,
                Plan::Skip(Skip::Lapsed),
            ),
            (
                "usual gap beyond the horizon",
                rare,
                T0 + 30 * hour,
                Plan::Skip(Skip::NotSoon),
            ),
            (
                "seen once, no events",
                Activity::first_visit(T0, T0 + 120 * S, T0),
                T0 + 2 * S,
                Plan::Skip(Skip::NoCadence),
            ),
            // Seen once, engaged: the prior gap (an hour) stands in for theirs.
            (
                "seen once",
                once,
                T0 + 2 * S,
                Plan::WarmAt(T0 + hour - 60 * S),
            ),
        ];
        for (name, a, now, want) in cases {
            assert_eq!(a.plan(now, &p), want, "{name}");
        }
        // A 10-s page (a live stream) is ranked 5 s before the return, not a minute.
        assert_eq!(live.page_ttl_ms, 10 * S);
        assert_eq!(
            live.plan(T0 + 52 * S, &p),
            Plan::WarmAt(T0 + 51 * S + 51 * S - 5 * S)
        );
    }

    #[test]
    fn a_refresh_within_the_session_is_not_a_new_visit() {
        let p = policy();
        let mut a = regular(600 * S);
        a.visit(T0 + 610 * S, T0 + 730 * S, T0 + 610 * S, &p);
        assert_eq!(a.gap_ms, Some(600_000.0));
        assert_eq!(a.last_visit_ms, T0 + 600 * S);
        a.visit(T0 + 1300 * S, T0 + 1420 * S, T0 + 1300 * S, &p);
        assert_eq!(a.gap_ms, Some(600_000.0 + 0.3 * (700_000.0 - 600_000.0)));
    }

    #[test]
    fn a_warmed_page_is_not_warmed_again_until_something_changes() {
        let p = policy();
        let mut a = regular(3600 * S);
        a.change(T0 + 3601 * S);
        let Plan::WarmAt(at) = a.plan(T0 + 3602 * S, &p) else {
            panic!("a changed page is warmed");
        };
        a.warmed(at, 120 * S);
        assert_eq!(a.plan(at, &p), Plan::Skip(Skip::Fresh));
        a.change(at + S);
        assert!(matches!(a.plan(at + S, &p), Plan::WarmAt(_)));
    }

    #[test]
    fn pauses_keep_rankings_within_the_budget() {
        let ms = Duration::from_millis;
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        assert!((us(pause_after(ms(2), ms(250))) - 6_000.0).abs() < 1.0);
        assert_eq!(pause_after(ms(2), ms(1000)), Duration::ZERO);
        assert_eq!(pause_after(ms(2), ms(5000)), Duration::ZERO);
        // No budget at all still lets a ranking through now and then (0.1% of the time).
        assert!((us(pause_after(ms(1), Duration::ZERO)) - 999_000.0).abs() < 1.0);
    }

    proptest! {
        #[test]
        fn a_warm_up_is_never_planned_in_the_past_or_mid_session(
            gaps in proptest::collection::vec(1i64..20_000, 1..8),
            changed_after in 0i64..60_000,
            now_after in 0i64..200_000,
            quiet in 1i64..60_000,
            budget_ms in 1u64..2000,
            spent_us in 0u64..100_000,
        ) {
            let p = Policy { quiet: Duration::from_millis(quiet as u64), ..policy() };
            let mut a = Activity::first_visit(T0, T0 + 120 * S, T0);
            let mut t = T0;
            for g in gaps {
                t += g * 100;
                a.visit(t, t + 120 * S, t, &p);
            }
            a.change(t + changed_after);
            let now = t + changed_after + now_after;
            if let Plan::WarmAt(at) = a.plan(now, &p) {
                prop_assert!(at >= now);
                prop_assert!(at >= a.last_activity_ms + quiet);
            }
            // Rankings plus pauses: the rankings' share of the time is at most the budget.
            let spent = Duration::from_micros(spent_us);
            let budget = Duration::from_millis(budget_ms);
            let total = spent + pause_after(spent, budget);
            let share = budget.as_secs_f64().min(1.0);
            prop_assert!(spent.as_secs_f64() <= share * total.as_secs_f64() + 1e-9);
        }
    }
}
