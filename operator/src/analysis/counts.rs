//! From the four counts Prometheus answered for a sequential check (events and trials of each
//! side over the step so far) to a verdict and its evidence. Pure.

use std::time::Duration;

use feedroll_crds::{ResolvedCheck, SequentialEvidence, SequentialTest, Verdict};
use k8s_openapi::jiff::Timestamp;

use super::classify::{Judgement, Outcome};
use super::sequential::{Decision, assess, seconds_for, side_counts};

/// What the four count queries of a sequential check returned.
#[derive(Clone, Debug, PartialEq)]
pub struct CountOutcomes {
    /// Canary events.
    pub canary_events: Outcome,
    /// Canary trials.
    pub canary_trials: Outcome,
    /// Stable events.
    pub stable_events: Outcome,
    /// Stable trials.
    pub stable_trials: Outcome,
}

/// A count: a number, 0 for a side without any series yet; errors and several series are
/// reported as they are.
fn count(outcome: &Outcome, what: &str) -> Result<f64, Judgement> {
    let fail = |verdict, reason: String| Judgement {
        verdict,
        value: None,
        reason,
    };
    match outcome {
        Outcome::Value(v) if v.is_nan() => Ok(0.0),
        Outcome::Value(v) => Ok(*v),
        Outcome::Empty => Ok(0.0),
        Outcome::Many(n) => Err(fail(
            Verdict::Error,
            format!(
                "{what}: query returned {n} series; aggregate it to one number (e.g. sum(...))"
            ),
        )),
        Outcome::Error(e) => Err(fail(Verdict::Error, format!("{what}: {e}"))),
    }
}

/// Judges a sequential check: counts over `elapsed` (the step so far), at least `min_trials`
/// per side. The evidence is `None` only when a count could not be read.
pub fn judge_counts(
    test: &SequentialTest,
    outcomes: &CountOutcomes,
    min_trials: u64,
    elapsed: Duration,
) -> (Judgement, Option<SequentialEvidence>) {
    let read = || -> Result<_, Judgement> {
        let ce = count(&outcomes.canary_events, "canary events")?;
        let ct = count(&outcomes.canary_trials, "canary trials")?;
        let se = count(&outcomes.stable_events, "stable events")?;
        let st = count(&outcomes.stable_trials, "stable trials")?;
        let bad = |e: super::sequential::CountsError| Judgement {
            verdict: Verdict::Error,
            value: None,
            reason: e.to_string(),
        };
        Ok((
            side_counts("canary", ce, ct).map_err(bad)?,
            side_counts("stable", se, st).map_err(bad)?,
        ))
    };
    let (canary, stable) = match read() {
        Ok(c) => c,
        Err(j) => return (j, None),
    };
    let a = assess(test, canary, stable, min_trials);
    let mut evidence = a.evidence;
    let had = canary.trials + stable.trials;
    evidence.seconds_left = evidence
        .trials_needed
        .and_then(|n| seconds_for(n, had, elapsed.as_secs_f64()));
    let interval = match (evidence.lower, evidence.upper) {
        (Some(lo), Some(hi)) => format!("[{lo:.5}, {hi:.5}]"),
        _ => String::new(),
    };
    let needed = match (evidence.trials_needed, evidence.seconds_left) {
        (Some(n), Some(s)) => format!("~{n} more trials (~{s}s at the traffic so far)"),
        (Some(n), None) => format!("~{n} more trials (no traffic yet)"),
        _ => "more trials than can be estimated".to_owned(),
    };
    let counts = format!(
        "canary {}/{}, stable {}/{}",
        canary.events, canary.trials, stable.events, stable.trials
    );
    let (verdict, reason) = match a.decision {
        Decision::Pass => (
            Verdict::Pass,
            format!(
                "canary − stable in {interval} (confidence {}): not worse by {} ({counts})",
                1.0 - test.alpha,
                test.min_effect
            ),
        ),
        Decision::Fail => (
            Verdict::Fail,
            format!(
                "canary − stable in {interval} (confidence {}): canary worse ({counts})",
                1.0 - test.alpha
            ),
        ),
        Decision::Undecided => (
            Verdict::NoData,
            format!("not yet confident: canary − stable in {interval}; {needed} ({counts})"),
        ),
        Decision::TooFew => (
            Verdict::NoData,
            format!(
                "fewer than {} trials on a side ({counts}); {needed}",
                min_trials.max(super::sequential::MIN_TRIALS)
            ),
        ),
    };
    let value = evidence.estimate;
    (
        Judgement {
            verdict,
            value,
            reason,
        },
        Some(evidence),
    )
}

/// The checks with every sequential check's window set to the step so far (from
/// `step_started_at` to `now`, whole seconds rounded up, at least 1s): their counts are the
/// evidence of the current step. Other checks keep their window; without a step start nothing
/// changes.
pub fn over_the_step(
    checks: &[ResolvedCheck],
    step_started_at: Option<Timestamp>,
    now: Timestamp,
) -> Vec<ResolvedCheck> {
    let elapsed = step_started_at.map(|start| {
        let secs = start.duration_until(now).as_secs_f64().ceil().max(1.0);
        // A finite, positive number of seconds (at most a few centuries in practice).
        Duration::from_secs_f64(secs.min(u32::MAX as f64))
    });
    checks
        .iter()
        .map(|c| match (c.sequential, elapsed) {
            (Some(_), Some(window)) => ResolvedCheck {
                window,
                ..c.clone()
            },
            _ => c.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use feedroll_crds::Direction;

    use super::*;

    fn outcomes(ce: f64, ct: f64, se: f64, st: f64) -> CountOutcomes {
        let v = Outcome::Value;
        CountOutcomes {
            canary_events: v(ce),
            canary_trials: v(ct),
            stable_events: v(se),
            stable_trials: v(st),
        }
    }

    const TEST: SequentialTest = SequentialTest {
        alpha: 0.05,
        min_effect: 0.01,
        direction: Direction::HigherIsWorse,
    };

    #[test]
    fn verdicts_carry_counts_interval_and_time_left() {
        let minute = Duration::from_secs(60);
        let (j, e) = judge_counts(
            &TEST,
            &outcomes(2_000.0, 100_000.0, 1_000.0, 100_000.0),
            50,
            minute,
        );
        assert_eq!(j.verdict, Verdict::Fail);
        let e = e.expect("evidence");
        assert_eq!((e.canary.events, e.stable.trials), (2_000, 100_000));
        assert!(j.reason.contains("canary worse"), "{}", j.reason);

        let (j, e) = judge_counts(&TEST, &outcomes(12.0, 1_000.0, 100.0, 10_000.0), 50, minute);
        assert_eq!(j.verdict, Verdict::NoData);
        let e = e.expect("evidence");
        assert!(e.judged && e.seconds_left.is_some_and(|s| s > 60), "{e:?}");
        assert!(j.reason.contains("not yet confident"), "{}", j.reason);

        let (j, e) = judge_counts(&TEST, &outcomes(0.0, 10.0, 0.0, 90.0), 50, minute);
        assert_eq!(j.verdict, Verdict::NoData);
        assert!(!e.expect("evidence").judged);
    }

    #[test]
    fn missing_series_count_zero_and_errors_stay_errors() {
        let mut o = outcomes(0.0, 0.0, 0.0, 0.0);
        o.canary_events = Outcome::Empty;
        o.stable_trials = Outcome::Value(f64::NAN);
        let (j, _) = judge_counts(&TEST, &o, 0, Duration::from_secs(60));
        assert_eq!(j.verdict, Verdict::NoData);
        o.stable_events = Outcome::Error("connection refused".into());
        let (j, e) = judge_counts(&TEST, &o, 0, Duration::from_secs(60));
        assert_eq!((j.verdict, e), (Verdict::Error, None));
        assert!(j.reason.contains("connection refused"));
        let (j, _) = judge_counts(
            &TEST,
            &outcomes(500.0, 100.0, 0.0, 100.0),
            0,
            Duration::from_secs(60),
        );
        assert_eq!(j.verdict, Verdict::Error);
        assert!(
            j.reason.contains("subset of the denominator"),
            "{}",
            j.reason
        );
    }

    #[test]
    fn sequential_checks_count_over_the_step_so_far() {
        let spec: feedroll_crds::FeedRolloutSpec = serde_yaml::from_str(
            "template: {spec: {containers: [{name: feed, image: 'feed:1'}]}}\nanalysis:\n  defaultChecks: false\n  checks:\n    - {name: seq, preset: errorRate, compare: {mode: sequential, minEffect: 0.01}}\n    - {name: plain, preset: errorRate, max: 0.01}\n",
        )
        .expect("spec");
        let checks = spec.resolved_analysis().expect("resolves").checks;
        let start = Timestamp::UNIX_EPOCH;
        let now = start + Duration::from_millis(90_500);
        let step = over_the_step(&checks, Some(start), now);
        assert_eq!(step[0].window, Duration::from_secs(91));
        assert_eq!(step[1].window, checks[1].window);
        let at_start = over_the_step(&checks, Some(now), now);
        assert_eq!(at_start[0].window, Duration::from_secs(1));
        assert_eq!(over_the_step(&checks, None, now), checks);
    }
}
