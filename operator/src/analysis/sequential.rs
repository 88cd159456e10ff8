//! Sequential verdicts on counts: an always-valid confidence sequence for the difference of two
//! shares (canary − stable), safe to look at every interval. Pure.
//!
//! The method is the mixture sequential probability ratio test (mSPRT) of Johari, Koomen,
//! Pekelis and Walsh, "Always Valid Inference: Continuous Monitoring of A/B Tests" (Operations
//! Research 70(3), 2022; KDD 2017 "Peeking at A/B Tests"), inverted into a confidence sequence.
//! With `v` the variance of the estimated difference and a normal mixing distribution of
//! variance `τ²` over the true difference, the interval at every look is
//!
//! ```text
//! estimate ± sqrt( 2·v·(v + τ²) / τ² · ln( sqrt((v + τ²) / v) / alpha ) )
//! ```
//!
//! and the chance that the true difference ever leaves it, however often it is looked at, is
//! at most `alpha` (asymptotically: the counts are treated as normal, which is why a verdict
//! needs [`MIN_TRIALS`] on each side). `τ` is `minEffect`: the mixture is tuned to the size of
//! effect the check is about. Each end of the interval is one always-valid test with the
//! variance taken under that test's null hypothesis (pooled shares for "no worse"; the canary
//! moved by `minEffect` for "worse by `minEffect`"), from Agresti–Caffo adjusted shares (one
//! event and one non-event added to each side), so a side with few or no events yet does not
//! look certain.
//!
//! Verdicts, with `worse` = the difference oriented so that positive is worse for the canary:
//! - `pass` when the whole interval of `worse` is below `minEffect` (non-inferiority: the canary
//!   is not worse by `minEffect`, with confidence);
//! - `fail` when the whole interval is above 0 (the canary is worse, with confidence);
//! - otherwise undecided (`no-data`), with the trials a decision still needs.
//!
//! A false `fail` (canary no worse) and a false `pass` (canary worse by `minEffect`) each need
//! the true difference to leave the interval, so each happens with probability at most `alpha`
//! over the whole step.

use feedroll_crds::{Direction, SequentialEvidence, SequentialTest, SideCounts};

/// Trials each side needs before any verdict (and the check's `minRequests`, when larger).
pub const MIN_TRIALS: u64 = 100;

/// The normal quantile of 80% power, for [`trials_for_power`].
const Z_POWER_80: f64 = 0.841_621_233_572_914_3;

/// Largest growth of the current counts [`trials_needed`] searches (beyond: not estimable).
const MAX_GROWTH: f64 = 1e9;

/// What the counts say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The canary is not worse by `minEffect`, with confidence.
    Pass,
    /// The canary is worse, with confidence.
    Fail,
    /// Enough counts, not yet confident either way.
    Undecided,
    /// A side has fewer trials than the minimum: nothing is judged.
    TooFew,
}

/// The assessment of one look at the counts.
#[derive(Clone, Debug, PartialEq)]
pub struct Assessment {
    /// The verdict.
    pub decision: Decision,
    /// The counts, the estimate, the interval and the trials still needed, for the status.
    pub evidence: SequentialEvidence,
}

/// Why counts cannot be assessed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CountsError {
    /// A count is negative, NaN or infinite.
    #[error("{what} count is {value}: expected a finite number of at least 0")]
    NotACount {
        /// Which count.
        what: &'static str,
        /// Its value.
        value: f64,
    },
    /// More events than trials: the numerator is not a subset of the denominator.
    #[error(
        "{side}: {events} events among {trials} trials; the numerator must count a subset of the denominator"
    )]
    MoreEventsThanTrials {
        /// `canary` or `stable`.
        side: &'static str,
        /// Events.
        events: f64,
        /// Trials.
        trials: f64,
    },
}

/// Counts of one side from the (extrapolated, fractional) `increase()` of two counters: rounded
/// to whole numbers; events may exceed trials by rounding and extrapolation (at most 1% + 1),
/// and are then capped at the trials.
pub fn side_counts(
    side: &'static str,
    events: f64,
    trials: f64,
) -> Result<SideCounts, CountsError> {
    for (what, value) in [("events", events), ("trials", trials)] {
        if !value.is_finite() || value < 0.0 {
            return Err(CountsError::NotACount { what, value });
        }
    }
    if events > trials * 1.01 + 1.0 {
        return Err(CountsError::MoreEventsThanTrials {
            side,
            events,
            trials,
        });
    }
    // Rounded finite non-negative values: the casts are exact up to 2^53 and saturate above.
    let trials = trials.round() as u64;
    let events = (events.round() as u64).min(trials);
    Ok(SideCounts { events, trials })
}

/// Half-width of the mSPRT confidence sequence for an estimate of variance `v`, mixing variance
/// `tau2`, level `alpha`.
pub fn half_width(v: f64, tau2: f64, alpha: f64) -> f64 {
    if v <= 0.0 {
        return 0.0;
    }
    let ln = (((v + tau2) / v).sqrt() / alpha).ln();
    (2.0 * v * (v + tau2) / tau2 * ln).sqrt()
}

/// The Agresti–Caffo adjusted share of a side: `(events + 1) / (trials + 2)`.
fn adjusted(c: SideCounts) -> f64 {
    (c.events as f64 + 1.0) / (c.trials as f64 + 2.0)
}

/// The variances of the estimated difference under the two null hypotheses the verdicts
/// reject, each from the adjusted shares (score-test style, as Farrington and Manning do for
/// fixed samples): `fail` rejects "no worse" with both sides at the pooled share; `pass` rejects
/// "worse by `minEffect`" with the canary at stable's share moved `minEffect` the worse way.
/// Evaluating the variance under the null keeps a side with few events from looking precise.
#[derive(Clone, Copy, Debug)]
struct NullVariances {
    /// Under "canary no worse than stable".
    fail: f64,
    /// Under "canary worse by `minEffect`".
    pass: f64,
}

fn null_variances(canary: SideCounts, stable: SideCounts, test: &SequentialTest) -> NullVariances {
    let (nc, ns) = (canary.trials as f64 + 2.0, stable.trials as f64 + 2.0);
    let pooled = adjusted(SideCounts {
        events: canary.events + stable.events,
        trials: canary.trials + stable.trials,
    });
    let ps = adjusted(stable);
    let worse = shifted(ps, test);
    NullVariances {
        fail: pooled * (1.0 - pooled) * (1.0 / nc + 1.0 / ns),
        pass: worse * (1.0 - worse) / nc + ps * (1.0 - ps) / ns,
    }
}

/// `p` moved `minEffect` the worse way, kept inside (0, 1).
fn shifted(p: f64, test: &SequentialTest) -> f64 {
    (p + sign(test.direction) * test.min_effect).clamp(1e-6, 1.0 - 1e-6)
}

fn share(c: SideCounts) -> f64 {
    if c.trials == 0 {
        0.0
    } else {
        c.events as f64 / c.trials as f64
    }
}

/// +1 when a higher share is worse, −1 when a lower one is: `worse = sign · (canary − stable)`.
fn sign(direction: Direction) -> f64 {
    match direction {
        Direction::HigherIsWorse => 1.0,
        Direction::LowerIsWorse => -1.0,
    }
}

/// Judges the counts of the step so far. `min_trials` is the minimum per side (at least
/// [`MIN_TRIALS`] is applied whatever is passed).
pub fn assess(
    test: &SequentialTest,
    canary: SideCounts,
    stable: SideCounts,
    min_trials: u64,
) -> Assessment {
    let min_trials = min_trials.max(MIN_TRIALS);
    let mut evidence = SequentialEvidence {
        canary,
        stable,
        ..SequentialEvidence::default()
    };
    if canary.trials < min_trials || stable.trials < min_trials {
        let short =
            min_trials.saturating_sub(canary.trials) + min_trials.saturating_sub(stable.trials);
        let pooled = SideCounts {
            events: canary.events + stable.events,
            trials: canary.trials + stable.trials,
        };
        let planned = trials_to_decide(adjusted(pooled), canary_fraction(canary, stable), test);
        let have = canary.trials + stable.trials;
        evidence.trials_needed = Some(short.max(planned.saturating_sub(have)));
        return Assessment {
            decision: Decision::TooFew,
            evidence,
        };
    }
    let estimate = share(canary) - share(stable);
    let v = null_variances(canary, stable, test);
    let tau2 = test.min_effect * test.min_effect;
    let (h_fail, h_pass) = (
        half_width(v.fail, tau2, test.alpha),
        half_width(v.pass, tau2, test.alpha),
    );
    // The interval of `worse`: [worse − h_fail, worse + h_pass].
    let worse = sign(test.direction) * estimate;
    let decision = if worse + h_pass < test.min_effect {
        Decision::Pass
    } else if worse - h_fail > 0.0 {
        Decision::Fail
    } else {
        Decision::Undecided
    };
    let (lower, upper) = match test.direction {
        Direction::HigherIsWorse => (estimate - h_fail, estimate + h_pass),
        Direction::LowerIsWorse => (estimate - h_pass, estimate + h_fail),
    };
    evidence.judged = true;
    evidence.estimate = Some(estimate);
    evidence.lower = Some(lower);
    evidence.upper = Some(upper);
    if decision == Decision::Undecided {
        evidence.trials_needed = trials_needed(v, worse, test).map(|growth| {
            let have = (canary.trials + stable.trials) as f64;
            (have * (growth - 1.0)).ceil() as u64
        });
    }
    Assessment { decision, evidence }
}

/// The canary's share of the trials (one half when there are none yet).
fn canary_fraction(canary: SideCounts, stable: SideCounts) -> f64 {
    let total = canary.trials + stable.trials;
    if total == 0 {
        0.5
    } else {
        (canary.trials as f64 / total as f64).clamp(0.01, 0.99)
    }
}

/// The factor by which the current counts must grow (same split, same estimate) for the
/// interval to decide either way: the sooner of `pass` (when the estimate is below
/// `minEffect`) and `fail` (when it is above 0).
fn trials_needed(v: NullVariances, worse: f64, test: &SequentialTest) -> Option<f64> {
    let tau2 = test.min_effect * test.min_effect;
    let pass = (worse < test.min_effect)
        .then(|| grow_until(|k| half_width(v.pass / k, tau2, test.alpha) < test.min_effect - worse))
        .flatten();
    let fail = (worse > 0.0)
        .then(|| grow_until(|k| half_width(v.fail / k, tau2, test.alpha) < worse))
        .flatten();
    match (pass, fail) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The smallest growth `k ≥ 1` (to 1%) for which `done(k)`, if one below [`MAX_GROWTH`] does.
fn grow_until(done: impl Fn(f64) -> bool) -> Option<f64> {
    if done(1.0) {
        return Some(1.0);
    }
    let mut hi = 2.0;
    while !done(hi) {
        hi *= 2.0;
        if hi > MAX_GROWTH {
            return None;
        }
    }
    let mut lo = hi / 2.0;
    while hi / lo > 1.01 {
        let mid = (lo * hi).sqrt();
        if done(mid) { hi = mid } else { lo = mid }
    }
    Some(hi)
}

/// Trials (canary + stable) for a canary equal to stable at share `p`, `fraction` of the
/// trials on the canary, to pass: the interval's upper end below `minEffect`.
pub fn trials_to_decide(p: f64, fraction: f64, test: &SequentialTest) -> u64 {
    let tau2 = test.min_effect * test.min_effect;
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    let worse = shifted(p, test);
    grow_until(|n| {
        let v = worse * (1.0 - worse) / (fraction * n) + p * (1.0 - p) / ((1.0 - fraction) * n);
        half_width(v, tau2, test.alpha) < test.min_effect
    })
    .map_or(u64::MAX, |n| n.ceil() as u64)
}

/// Trials (canary + stable) after which a canary worse than stable (at share `p`) by
/// `minEffect` has failed with probability at least 80%: the interval's lower end above 0 with
/// 80% chance at that many trials (earlier looks only add chances to fail). The figures in
/// `operator/README.md` come from here.
pub fn trials_for_power(p: f64, fraction: f64, test: &SequentialTest) -> u64 {
    let tau2 = test.min_effect * test.min_effect;
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    let worse = shifted(p, test);
    let pooled = fraction * worse + (1.0 - fraction) * p;
    grow_until(|n| {
        let (nc, ns) = (fraction * n, (1.0 - fraction) * n);
        let null = pooled * (1.0 - pooled) * (1.0 / nc + 1.0 / ns);
        let actual = worse * (1.0 - worse) / nc + p * (1.0 - p) / ns;
        half_width(null, tau2, test.alpha) + Z_POWER_80 * actual.sqrt() < test.min_effect
    })
    .map_or(u64::MAX, |n| n.ceil() as u64)
}

/// Seconds `trials` more take at the rate of the step so far (`had` trials in `elapsed`
/// seconds); `None` without traffic.
pub fn seconds_for(trials: u64, had: u64, elapsed_secs: f64) -> Option<u64> {
    if had == 0 || elapsed_secs <= 0.0 {
        return None;
    }
    let rate = had as f64 / elapsed_secs;
    Some((trials as f64 / rate).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test(min_effect: f64, direction: Direction) -> SequentialTest {
        SequentialTest {
            alpha: 0.05,
            min_effect,
            direction,
        }
    }

    fn c(events: u64, trials: u64) -> SideCounts {
        SideCounts { events, trials }
    }

    #[test]
    fn no_verdict_below_the_minimum_counts() {
        let t = test(0.01, Direction::HigherIsWorse);
        // All 99 canary requests failed: still nothing judged.
        let a = assess(&t, c(99, 99), c(0, 10_000), 50);
        assert_eq!(a.decision, Decision::TooFew);
        assert!(!a.evidence.judged);
        assert!(a.evidence.trials_needed.is_some_and(|n| n >= 1));
        let a = assess(&t, c(150, 150), c(0, 150), 200);
        assert_eq!(
            a.decision,
            Decision::TooFew,
            "minRequests above the floor wins"
        );
        // At the minimum the counts are judged (a mixture tuned to 1 point is wide for 100
        // trials: catastrophes are the rollback tier's job); with more they fail.
        assert!(assess(&t, c(100, 100), c(0, 100), 0).evidence.judged);
        assert_eq!(
            assess(&t, c(1_000, 1_000), c(0, 1_000), 0).decision,
            Decision::Fail
        );
    }

    #[test]
    fn clear_cases_decide_and_report_the_interval() {
        let t = test(0.01, Direction::HigherIsWorse);
        let worse = assess(&t, c(2_000, 100_000), c(1_000, 100_000), 0);
        assert_eq!(worse.decision, Decision::Fail);
        let e = &worse.evidence;
        assert!((e.estimate.unwrap() - 0.01).abs() < 1e-12);
        assert!(e.lower.unwrap() > 0.0 && e.upper.unwrap() > 0.01, "{e:?}");
        let same = assess(&t, c(1_000, 100_000), c(1_000, 100_000), 0);
        assert_eq!(same.decision, Decision::Pass);
        assert!(same.evidence.upper.unwrap() < 0.01);
        // The same counts with lower-is-worse: a higher canary share is better.
        let lower = test(0.01, Direction::LowerIsWorse);
        assert_eq!(
            assess(&lower, c(2_000, 100_000), c(1_000, 100_000), 0).decision,
            Decision::Pass
        );
        assert_eq!(
            assess(&lower, c(1_000, 100_000), c(2_000, 100_000), 0).decision,
            Decision::Fail
        );
    }

    #[test]
    fn undecided_counts_say_how_many_trials_are_left() {
        let t = test(0.01, Direction::HigherIsWorse);
        let a = assess(&t, c(12, 1_000), c(100, 10_000), 0);
        assert_eq!(a.decision, Decision::Undecided);
        let needed = a.evidence.trials_needed.expect("estimable");
        assert!(needed > 1_000, "{needed}");
        // Scaling the counts by the estimate decides.
        let k = (11_000 + needed) as f64 / 11_000.0;
        let grown = assess(
            &t,
            c((12.0 * k) as u64, (1_000.0 * k) as u64),
            c((100.0 * k) as u64, (10_000.0 * k) as u64),
            0,
        );
        assert_ne!(grown.decision, Decision::Undecided, "{grown:?}");
    }

    #[test]
    fn counts_from_prometheus_are_checked() {
        assert_eq!(side_counts("canary", 10.4, 99.6), Ok(c(10, 100)));
        assert_eq!(side_counts("canary", 100.3, 100.0), Ok(c(100, 100)));
        assert!(matches!(
            side_counts("stable", 150.0, 100.0),
            Err(CountsError::MoreEventsThanTrials { side: "stable", .. })
        ));
        for bad in [f64::NAN, -1.0, f64::INFINITY] {
            assert!(side_counts("canary", bad, 100.0).is_err(), "{bad}");
            assert!(side_counts("canary", 1.0, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn planning_figures_grow_with_rarer_effects() {
        let t = test(0.01, Direction::HigherIsWorse);
        let small = trials_for_power(0.01, 0.5, &t);
        let tighter = trials_for_power(0.01, 0.5, &test(0.005, Direction::HigherIsWorse));
        assert!(tighter > 2 * small, "{small} {tighter}");
        // A 10% canary needs more trials in total than an even split.
        assert!(trials_for_power(0.01, 0.1, &t) > small);
        assert!(trials_to_decide(0.01, 0.5, &t) < u64::MAX);
        assert_eq!(seconds_for(600, 600, 60.0), Some(60));
        assert_eq!(seconds_for(600, 0, 60.0), None);
    }
}
