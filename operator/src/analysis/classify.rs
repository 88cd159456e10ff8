//! From what Prometheus answered to a verdict. Pure.

use feedroll_crds::{CompareMode, ResolvedCheck, Verdict};

/// What one query returned.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// One number.
    Value(f64),
    /// No series (or an empty result).
    Empty,
    /// More than one series: the query must aggregate to one number.
    Many(usize),
    /// Prometheus unreachable, timed out, or rejected the query.
    Error(String),
}

/// The judgement of one check.
#[derive(Clone, Debug, PartialEq)]
pub struct Judgement {
    /// The verdict.
    pub verdict: Verdict,
    /// The judged value (canary, or canary vs stable when comparing), when there is one.
    pub value: Option<f64>,
    /// Why, in words.
    pub reason: String,
}

fn finite(outcome: &Outcome, what: &str) -> Result<f64, Judgement> {
    match outcome {
        Outcome::Value(v) if v.is_finite() => Ok(*v),
        Outcome::Value(v) => Err(Judgement {
            verdict: Verdict::NoData,
            value: None,
            reason: format!("{what} is {v} (no traffic in the window?)"),
        }),
        Outcome::Empty => Err(Judgement {
            verdict: Verdict::NoData,
            value: None,
            reason: format!("{what}: no series in the window"),
        }),
        Outcome::Many(n) => Err(Judgement {
            verdict: Verdict::Error,
            value: None,
            reason: format!(
                "{what}: query returned {n} series; aggregate it to one number (e.g. sum(...))"
            ),
        }),
        Outcome::Error(e) => Err(Judgement {
            verdict: Verdict::Error,
            value: None,
            reason: format!("{what}: {e}"),
        }),
    }
}

/// Classifies a check's results: errors before missing data before thresholds; volume below
/// `minRequests` is no-data; with a comparison, the judged value is canary − stable or
/// canary ÷ stable (0 ÷ 0 counts as 1, x ÷ 0 as +∞).
pub fn classify(
    check: &ResolvedCheck,
    canary: &Outcome,
    volume: Option<&Outcome>,
    stable: Option<&Outcome>,
) -> Judgement {
    let canary_value = match finite(canary, "canary") {
        Ok(v) => v,
        Err(j) => return j,
    };
    if let Some(volume) = volume {
        let requests = match volume {
            Outcome::Empty => 0.0,
            other => match finite(other, "request volume") {
                Ok(v) => v,
                Err(j) => return j,
            },
        };
        if requests < check.min_requests as f64 {
            return Judgement {
                verdict: Verdict::NoData,
                value: None,
                reason: format!(
                    "{requests:.0} requests in the window, fewer than minRequests {}",
                    check.min_requests
                ),
            };
        }
    }
    let (value, what) = match (check.compare, stable) {
        (Some(mode), Some(stable)) => {
            let stable_value = match finite(stable, "stable") {
                Ok(v) => v,
                Err(j) => return j,
            };
            match mode {
                CompareMode::Difference => (
                    canary_value - stable_value,
                    format!("canary − stable = {canary_value} − {stable_value}"),
                ),
                CompareMode::Sequential => {
                    return Judgement {
                        verdict: Verdict::Error,
                        value: None,
                        reason: "a sequential comparison is judged on counts, not one value"
                            .to_owned(),
                    };
                }
                CompareMode::Ratio => {
                    let ratio = if stable_value == 0.0 {
                        if canary_value == 0.0 {
                            1.0
                        } else {
                            f64::INFINITY
                        }
                    } else {
                        canary_value / stable_value
                    };
                    (
                        ratio,
                        format!("canary ÷ stable = {canary_value} ÷ {stable_value}"),
                    )
                }
            }
        }
        (Some(_), None) => {
            return Judgement {
                verdict: Verdict::Error,
                value: None,
                reason: "comparison without a stable value".to_owned(),
            };
        }
        (None, _) => (canary_value, format!("value {canary_value}")),
    };
    let below = check.min.is_some_and(|min| value < min);
    let above = check.max.is_some_and(|max| value > max);
    let shown = if value.is_finite() { Some(value) } else { None };
    if below || above {
        Judgement {
            verdict: Verdict::Fail,
            value: shown,
            reason: format!(
                "{what} is {} threshold {}",
                if above { "above" } else { "below" },
                check.threshold_text()
            ),
        }
    } else {
        Judgement {
            verdict: Verdict::Pass,
            value: shown,
            reason: format!("{what} within {}", check.threshold_text()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use feedroll_crds::{CheckSource, HoldPolicy, Preset, Tier};

    use super::*;

    fn check(
        min: Option<f64>,
        max: Option<f64>,
        min_requests: i64,
        compare: Option<CompareMode>,
    ) -> ResolvedCheck {
        ResolvedCheck {
            name: "c".into(),
            source: CheckSource::Preset {
                preset: Preset::ErrorRate,
                quantile: 0.95,
            },
            volume_query: None,
            min,
            max,
            window: Duration::from_secs(60),
            tier: Tier::Blocking,
            min_requests,
            on_no_data: HoldPolicy::Hold,
            on_provider_error: HoldPolicy::Hold,
            max_hold: Duration::from_secs(600),
            consecutive_failures_allowed: 2,
            compare,
            sequential: None,
        }
    }

    #[test]
    fn table() {
        let max = check(None, Some(0.005), 0, None);
        let v = |x| Outcome::Value(x);
        let cases = [
            (v(0.001), Verdict::Pass),
            (v(0.005), Verdict::Pass),
            (v(0.01), Verdict::Fail),
            (Outcome::Empty, Verdict::NoData),
            (v(f64::NAN), Verdict::NoData),
            (v(f64::INFINITY), Verdict::NoData),
            (Outcome::Many(3), Verdict::Error),
            (Outcome::Error("connection refused".into()), Verdict::Error),
        ];
        for (outcome, want) in cases {
            assert_eq!(
                classify(&max, &outcome, None, None).verdict,
                want,
                "{outcome:?}"
            );
        }
        let min = check(Some(0.99), None, 0, None);
        assert_eq!(classify(&min, &v(0.98), None, None).verdict, Verdict::Fail);
        assert_eq!(classify(&min, &v(0.999), None, None).verdict, Verdict::Pass);
    }

    #[test]
    fn too_few_requests_is_no_data_never_fail() {
        let c = check(None, Some(0.005), 50, None);
        let j = classify(&c, &Outcome::Value(0.9), Some(&Outcome::Value(10.0)), None);
        assert_eq!(j.verdict, Verdict::NoData);
        assert!(j.reason.contains("minRequests 50"), "{}", j.reason);
        assert_eq!(
            classify(&c, &Outcome::Value(0.9), Some(&Outcome::Empty), None).verdict,
            Verdict::NoData
        );
        assert_eq!(
            classify(&c, &Outcome::Value(0.9), Some(&Outcome::Value(50.0)), None).verdict,
            Verdict::Fail
        );
    }

    #[test]
    fn comparisons() {
        let ratio = check(None, Some(2.0), 0, Some(CompareMode::Ratio));
        let v = |x| Outcome::Value(x);
        assert_eq!(
            classify(&ratio, &v(0.03), None, Some(&v(0.01))).verdict,
            Verdict::Fail
        );
        assert_eq!(
            classify(&ratio, &v(0.015), None, Some(&v(0.01))).verdict,
            Verdict::Pass
        );
        assert_eq!(
            classify(&ratio, &v(0.0), None, Some(&v(0.0))).verdict,
            Verdict::Pass
        );
        assert_eq!(
            classify(&ratio, &v(0.1), None, Some(&v(0.0))).verdict,
            Verdict::Fail
        );
        assert_eq!(
            classify(&ratio, &v(0.1), None, Some(&Outcome::Empty)).verdict,
            Verdict::NoData
        );
        let diff = check(Some(-0.05), None, 0, Some(CompareMode::Difference));
        assert_eq!(
            classify(&diff, &v(0.40), None, Some(&v(0.50))).verdict,
            Verdict::Fail
        );
        assert_eq!(
            classify(&diff, &v(0.48), None, Some(&v(0.50))).verdict,
            Verdict::Pass
        );
    }
}
