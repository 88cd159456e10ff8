//! The cached feed against the static baseline in bracketed windows.
//!
//! The two closed-loop phases, one after the other, each see the host as it is during their
//! own 13 s; on a shared host the baseline alone moved from 89k to 160k req/s between runs
//! (BENCHMARKS.md), so the ratio of two such phases says as much about the host as about
//! feed-server. Bracketed windows control for that drift: short windows of the two servers
//! alternate, starting and ending with the baseline (`B C B C … C B`), each cached window is
//! compared to the mean of the two baseline windows around it (a steady trend cancels out), and
//! the run reports the median and the range of those ratios. Strict alternation also gives
//! every window the same history (the other server just ran): two cached windows in a row
//! measured ~10% apart on this host, the second slower.

use serde::{Deserialize, Serialize};

/// One cached window and the baseline windows just before and just after it: requests per
/// second answered by each.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bracket {
    /// The baseline's window before.
    pub baseline_before_rps: f64,
    /// The cached feed's window.
    pub cached_rps: f64,
    /// The baseline's window after.
    pub baseline_after_rps: f64,
}

impl Bracket {
    /// Cached over the mean of the two baseline windows; `None` when neither answered anything
    /// (no ratio to read). A run whose window answered nothing fails the smoke check.
    pub fn ratio(&self) -> Option<f64> {
        let baseline = (self.baseline_before_rps + self.baseline_after_rps) / 2.0;
        (baseline > 0.0).then(|| self.cached_rps / baseline)
    }
}

/// The brackets of alternating windows `B C B C … C B` (requests per second, in the order
/// run): each cached window with its neighbours; an unfinished tail (no baseline after the
/// last cached window) is left out.
pub fn brackets(windows: &[f64]) -> Vec<Bracket> {
    windows
        .windows(3)
        .step_by(2)
        .map(|w| Bracket {
            baseline_before_rps: w[0],
            cached_rps: w[1],
            baseline_after_rps: w[2],
        })
        .collect()
}

/// What the bracketed windows say.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BracketedRatio {
    /// Measured length of each window, seconds.
    pub window_secs: f64,
    /// Every cached window with its baseline windows, in the order run.
    pub brackets: Vec<Bracket>,
    /// Median ratio over the brackets that have one.
    pub median: f64,
    /// Smallest ratio.
    pub min: f64,
    /// Largest ratio.
    pub max: f64,
}

impl BracketedRatio {
    /// The summary of `brackets`; `None` when no bracket has a ratio.
    pub fn of(window_secs: f64, brackets: Vec<Bracket>) -> Option<Self> {
        let mut ratios: Vec<f64> = brackets.iter().filter_map(Bracket::ratio).collect();
        if ratios.is_empty() {
            return None;
        }
        ratios.sort_by(f64::total_cmp);
        let n = ratios.len();
        let median = if n % 2 == 1 {
            ratios[n / 2]
        } else {
            (ratios[n / 2 - 1] + ratios[n / 2]) / 2.0
        };
        Some(Self {
            window_secs,
            median,
            min: ratios[0],
            max: ratios[n - 1],
            brackets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(windows: &[f64]) -> Option<BracketedRatio> {
        BracketedRatio::of(2.0, brackets(windows))
    }

    #[test]
    fn each_cached_window_is_compared_to_the_baseline_windows_around_it() {
        let b = brackets(&[100.0, 70.0, 120.0, 90.0, 80.0]);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].ratio(), Some(70.0 / 110.0));
        assert_eq!(b[1].ratio(), Some(90.0 / 100.0));
        // A cached window with no baseline window after it is not a bracket.
        assert_eq!(brackets(&[100.0, 70.0, 120.0, 90.0]).len(), 1);
        assert!(brackets(&[100.0, 70.0]).is_empty());
    }

    #[test]
    fn a_steady_drift_of_the_host_cancels_out() {
        // Both servers slow down by 10 req/s per window; the cached feed is 75% of the
        // baseline throughout. Sequential phases (all baseline first) would read it lower.
        let windows: Vec<f64> = (0..9)
            .map(|i| {
                let host = 200.0 - 10.0 * f64::from(i);
                if i % 2 == 0 { host } else { 0.75 * host }
            })
            .collect();
        let r = of(&windows).unwrap();
        assert!((r.median - 0.75).abs() < 1e-12, "{}", r.median);
        assert!((r.max - r.min).abs() < 1e-12);
    }

    #[test]
    fn the_median_is_the_middle_ratio_and_one_slow_window_moves_only_the_range() {
        let r = of(&[100.0, 60.0, 100.0, 75.0, 100.0, 90.0, 100.0]).unwrap();
        assert_eq!((r.min, r.median, r.max), (0.6, 0.75, 0.9));
        let even = of(&[100.0, 70.0, 100.0, 80.0, 100.0]).unwrap();
        assert!((even.median - 0.75).abs() < 1e-12);
        // The baseline ran slow in one window: the two ratios beside it rise, the median
        // of five stays.
        let r = of(&[
            100.0, 75.0, 100.0, 75.0, 40.0, 75.0, 100.0, 75.0, 100.0, 75.0, 100.0,
        ])
        .unwrap();
        assert_eq!(r.median, 0.75);
        assert!(r.max > 1.0);
    }

    #[test]
    fn windows_the_baseline_did_not_answer_have_no_ratio_and_all_such_none() {
        let r = of(&[0.0, 50.0, 0.0, 80.0, 100.0]).unwrap();
        assert_eq!((r.min, r.median, r.max), (1.6, 1.6, 1.6));
        assert_eq!(r.brackets.len(), 2, "every bracket is kept for the record");
        assert!(of(&[0.0, 50.0, 0.0]).is_none());
        assert!(of(&[]).is_none());
    }
}
