//! `POST /v1/admin/replay` as a use case (pure: the handler reads the log and the catalog, then
//! runs [`compare`] off the async runtime): the logged exposures of a window ranked with two
//! profiles, stable and canary, and how much the canary would change the ranking quality.
//!
//! 1. **Exposures.** The window's exposures with point-in-time signal inputs
//!    ([`super::replay`], the tuner's replay). Fewer than [`MIN_EXPOSURES`] →
//!    [`ReplayError::TooFewExposures`].
//! 2. **Scores.** Every exposure is scored under each profile by the live ranker's scoring
//!    ([`super::tune::score`]: [`crate::ranking::inputs::SignalInputs::signals`] then
//!    [`crate::ranking::signals::score`]); there is no second ranking path. Each user's UTC day of
//!    exposures is one list, ranked by score.
//! 3. **Figures.** GAUC(finish), NDCG@10(watch ratio) and like-AUC (GAUC(like)) of each profile,
//!    means over the lists where they are defined — [`super::quality`], the port of
//!    `eval/feedeval/metrics.py` (a test matches the Python on `fixtures/replay.json`).
//! 4. **Paired bootstrap, by user.** The differences canary − stable get a
//!    [`CONFIDENCE`] percentile interval from [`RESAMPLES`] resamples of the *users* with
//!    replacement (a user's lists stay together: a user's days are not independent), seeded with
//!    [`SEED`] so the same log always gives the same answer. Both profiles are measured on the
//!    same resampled lists (paired): the noise the two share cancels out. Whether a list counts
//!    for a figure depends on its outcomes only, never on the scores, so the pairs are exact. A
//!    figure no list defines, or one whose resamples never define it, has no interval.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;

use feed_profile::RankingProfile;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use utoipa::ToSchema;

use super::LoggedEvent;
use super::quality::{ListFigures, Quality, aggregate, list_figures};
use super::replay::{Window, replay};
use super::tune::{scored, user_days};
use crate::model::Video;

/// Fewest exposures in the window a replay accepts.
pub const MIN_EXPOSURES: usize = 100;
/// Bootstrap resamples of the users.
pub const RESAMPLES: usize = 1000;
/// Seed of the bootstrap's generator.
pub const SEED: u64 = 17;
/// Two-sided confidence of the intervals (percentile bootstrap: the 2.5% and 97.5% quantiles).
pub const CONFIDENCE: f64 = 0.95;

/// Why a replay was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReplayError {
    /// A profile does not load the way `--profile` loads one.
    #[error("{which} profile: {message}")]
    InvalidProfile {
        /// `stable` or `canary`.
        which: ProfileSide,
        /// What is wrong, with the field.
        message: String,
    },
    /// Too few exposures to compare on.
    #[error(
        "the exposure log holds {have} exposures in this window; a replay needs at least {need}"
    )]
    TooFewExposures {
        /// Exposures found.
        have: usize,
        /// Exposures needed.
        need: usize,
    },
}

/// Which of the two profiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileSide {
    /// The profile serving now.
    Stable,
    /// The candidate.
    Canary,
}

impl std::fmt::Display for ProfileSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProfileSide::Stable => "stable",
            ProfileSide::Canary => "canary",
        })
    }
}

/// Loads a profile sent as JSON exactly as `--profile` loads a file (JSON is YAML): parsed,
/// validated, and required to be a single profile, not an experiment.
pub fn load_profile(
    which: ProfileSide,
    doc: &serde_json::Value,
) -> Result<RankingProfile, ReplayError> {
    let invalid = |message: String| ReplayError::InvalidProfile { which, message };
    if doc.get("variants").is_some() {
        return Err(invalid(
            "a single ranking profile is expected, not an experiment with variants".into(),
        ));
    }
    let experiment =
        feed_profile::Experiment::parse(&doc.to_string()).map_err(|e| invalid(e.to_string()))?;
    experiment
        .variants
        .into_iter()
        .next()
        .map(|v| v.profile)
        .ok_or_else(|| invalid("no profile".into()))
}

/// What [`compare`] works on.
pub struct ReplayInput<'a> {
    /// The log's events (any order).
    pub events: &'a [LoggedEvent],
    /// The catalog entries of the events' videos.
    pub catalog: &'a HashMap<String, Arc<Video>>,
    /// The window.
    pub window: Window,
    /// The profile serving now.
    pub stable: &'a RankingProfile,
    /// The candidate.
    pub canary: &'a RankingProfile,
}

/// One figure's difference canary − stable with its bootstrap interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct Difference {
    /// Canary − stable on all the lists; `None` when no list defines the figure.
    pub estimate: Option<f64>,
    /// Lower bound of the interval; `None` without one.
    pub lower: Option<f64>,
    /// Upper bound of the interval; `None` without one.
    pub upper: Option<f64>,
    /// Lists that define the figure.
    pub lists: usize,
}

/// The differences of the three figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct Differences {
    /// GAUC(finish).
    pub gauc_finish: Difference,
    /// NDCG@10 of the watch ratio.
    pub ndcg10_watch: Difference,
    /// Like-AUC: GAUC(like).
    pub gauc_like: Difference,
}

/// How the intervals were made.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, ToSchema)]
pub struct Bootstrap {
    /// Resamples drawn ([`RESAMPLES`]).
    pub resamples: usize,
    /// Seed of the generator ([`SEED`]).
    pub seed: u64,
    /// Two-sided confidence of the intervals ([`CONFIDENCE`]).
    pub confidence: f64,
    /// What is resampled.
    pub unit: ResampleUnit,
}

/// What the bootstrap resamples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResampleUnit {
    /// Whole users, with all their lists (a user's days are not independent).
    User,
}

/// What a replay found.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ReplayReport {
    /// Exposures in the window.
    pub exposures: usize,
    /// User-day lists.
    pub lists: usize,
    /// Distinct users.
    pub users: usize,
    /// The stable profile's figures.
    pub stable: Quality,
    /// The canary profile's figures.
    pub canary: Quality,
    /// Canary − stable with intervals.
    pub differences: Differences,
    /// The bootstrap's settings.
    pub bootstrap: Bootstrap,
}

/// One figure of a list under both profiles (`None` where the list does not define it).
type Pair = Option<(f64, f64)>;

/// The three figures' pairs of one list.
fn pairs(stable: &ListFigures, canary: &ListFigures) -> [Pair; 3] {
    let pair = |s: Option<f64>, c: Option<f64>| s.zip(c);
    [
        pair(stable.auc_finish, canary.auc_finish),
        pair(stable.ndcg10_watch, canary.ndcg10_watch),
        pair(stable.auc_like, canary.auc_like),
    ]
}

/// Per user and figure: sum of stable values, sum of canary values, lists counted.
type UserSums = [(f64, f64, usize); 3];

fn user_sums(lists: &[[Pair; 3]]) -> UserSums {
    let mut sums = [(0.0, 0.0, 0usize); 3];
    for list in lists {
        for (sum, pair) in sums.iter_mut().zip(list) {
            if let Some((s, c)) = pair {
                sum.0 += s;
                sum.1 += c;
                sum.2 += 1;
            }
        }
    }
    sums
}

/// The `q` quantile of sorted values (linear between order statistics, as numpy's default).
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let at = q.clamp(0.0, 1.0) * last as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    let frac = at - lo as f64;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * frac)
}

/// Paired percentile bootstrap of canary − stable over users, for the three figures.
fn bootstrap(users: &[UserSums], resamples: usize, seed: u64) -> [(Option<f64>, Option<f64>); 3] {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut diffs: [Vec<f64>; 3] = Default::default();
    if users.is_empty() {
        return [(None, None); 3];
    }
    for _ in 0..resamples {
        let mut totals = [(0.0, 0.0, 0usize); 3];
        for _ in 0..users.len() {
            let user = &users[rng.random_range(0..users.len())];
            for (t, u) in totals.iter_mut().zip(user) {
                t.0 += u.0;
                t.1 += u.1;
                t.2 += u.2;
            }
        }
        for (d, t) in diffs.iter_mut().zip(totals) {
            if t.2 > 0 {
                d.push((t.1 - t.0) / t.2 as f64);
            }
        }
    }
    let tail = (1.0 - CONFIDENCE) / 2.0;
    diffs.map(|mut d| {
        d.sort_by(f64::total_cmp);
        (quantile(&d, tail), quantile(&d, 1.0 - tail))
    })
}

fn difference(stable: Option<f64>, canary: Option<f64>, lists: usize) -> Difference {
    Difference {
        estimate: canary.zip(stable).map(|(c, s)| c - s),
        lists,
        ..Difference::default()
    }
}

/// Ranks the window's exposures with both profiles; see the module docs.
pub fn compare(input: ReplayInput<'_>) -> Result<ReplayReport, ReplayError> {
    let ReplayInput {
        events,
        catalog,
        window,
        stable,
        canary,
    } = input;
    let xs = replay(events, catalog, window);
    if xs.len() < MIN_EXPOSURES {
        return Err(ReplayError::TooFewExposures {
            have: xs.len(),
            need: MIN_EXPOSURES,
        });
    }
    let mut figures_stable = Vec::new();
    let mut figures_canary = Vec::new();
    let mut by_user: BTreeMap<&str, Vec<[Pair; 3]>> = BTreeMap::new();
    for ((user, _day), list) in user_days(&xs) {
        let s = list_figures(&scored(stable, &xs, &list));
        let c = list_figures(&scored(canary, &xs, &list));
        by_user.entry(user).or_default().push(pairs(&s, &c));
        figures_stable.push(s);
        figures_canary.push(c);
    }
    let q_stable = aggregate(&figures_stable);
    let q_canary = aggregate(&figures_canary);
    let users: Vec<UserSums> = by_user.values().map(|l| user_sums(l)).collect();
    let [finish, watch, like] = bootstrap(&users, RESAMPLES, SEED);
    let with = |mut d: Difference, (lower, upper): (Option<f64>, Option<f64>)| {
        d.lower = lower;
        d.upper = upper;
        d
    };
    Ok(ReplayReport {
        exposures: xs.len(),
        lists: figures_stable.len(),
        users: users.len(),
        differences: Differences {
            gauc_finish: with(
                difference(
                    q_stable.gauc_finish,
                    q_canary.gauc_finish,
                    q_stable.lists_finish,
                ),
                finish,
            ),
            ndcg10_watch: with(
                difference(
                    q_stable.ndcg10_watch,
                    q_canary.ndcg10_watch,
                    q_stable.lists_watch,
                ),
                watch,
            ),
            gauc_like: with(
                difference(
                    q_stable.gauc_like,
                    q_canary.gauc_like,
                    q_stable.lists_like_auc,
                ),
                like,
            ),
        },
        stable: q_stable,
        canary: q_canary,
        bootstrap: Bootstrap {
            resamples: RESAMPLES,
            seed: SEED,
            confidence: CONFIDENCE,
            unit: ResampleUnit::User,
        },
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::exposure::replay::Outcome;

    #[derive(Deserialize)]
    struct Item {
        stable: f64,
        canary: f64,
        completed: bool,
        watch: f64,
        liked: bool,
    }

    #[derive(Deserialize)]
    struct Figures {
        gauc_finish: Option<f64>,
        ndcg10_watch: Option<f64>,
        gauc_like: Option<f64>,
    }

    #[derive(Deserialize)]
    struct Fixture {
        lists: Vec<Vec<Item>>,
        stable: Figures,
        canary: Figures,
    }

    fn close(a: Option<f64>, b: Option<f64>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) => (a - b).abs() < 1e-12,
            (None, None) => true,
            _ => false,
        }
    }

    fn outcome(i: &Item) -> Outcome {
        Outcome {
            played: i.watch > 0.0,
            watch_ratio: i.watch,
            completed: i.completed,
            liked: i.liked,
        }
    }

    #[test]
    fn both_profiles_figures_match_the_python_metrics_on_the_fixture() {
        let fixture: Fixture =
            serde_json::from_str(include_str!("fixtures/replay.json")).expect("fixture");
        let side = |pick: fn(&Item) -> f64| -> Quality {
            let figures: Vec<ListFigures> = fixture
                .lists
                .iter()
                .map(|l| {
                    let list: Vec<(f64, Outcome)> =
                        l.iter().map(|i| (pick(i), outcome(i))).collect();
                    list_figures(&list)
                })
                .collect();
            aggregate(&figures)
        };
        for (q, py, name) in [
            (side(|i| i.stable), &fixture.stable, "stable"),
            (side(|i| i.canary), &fixture.canary, "canary"),
        ] {
            assert!(close(q.gauc_finish, py.gauc_finish), "{name} gauc_finish");
            assert!(close(q.ndcg10_watch, py.ndcg10_watch), "{name} ndcg watch");
            assert!(close(q.gauc_like, py.gauc_like), "{name} like-AUC");
            assert!(q.gauc_finish.is_some() && q.gauc_like.is_some());
        }
    }

    /// `n` users, each with `lists` lists of (stable, canary) figures for all three metrics.
    fn users(n: usize, value: impl Fn(usize) -> (f64, f64)) -> Vec<UserSums> {
        (0..n)
            .map(|u| {
                let (s, c) = value(u);
                user_sums(&[[Some((s, c)); 3]])
            })
            .collect()
    }

    #[test]
    fn the_interval_covers_a_shift_shared_by_every_user_and_excludes_zero() {
        // Canary 0.05 below stable for every user, with noise shared by both (paired).
        let us = users(200, |u| {
            let noise = (u as f64 * 0.37).sin() * 0.2;
            (0.7 + noise, 0.65 + noise)
        });
        let [finish, ..] = bootstrap(&us, RESAMPLES, SEED);
        let (lo, hi) = (finish.0.unwrap_or(0.0), finish.1.unwrap_or(0.0));
        assert!(
            (lo - -0.05).abs() < 1e-9 && (hi - -0.05).abs() < 1e-9,
            "{lo} {hi}"
        );
    }

    #[test]
    fn identical_profiles_straddle_zero_and_the_seed_makes_it_reproducible() {
        let us = users(100, |u| {
            let d = if u % 2 == 0 { 0.1 } else { -0.1 };
            (0.6, 0.6 + d)
        });
        let a = bootstrap(&us, RESAMPLES, SEED);
        assert_eq!(a, bootstrap(&us, RESAMPLES, SEED));
        let (lo, hi) = (a[0].0.unwrap_or(1.0), a[0].1.unwrap_or(-1.0));
        assert!(lo < 0.0 && hi > 0.0, "[{lo}, {hi}]");
        assert!(lo > -0.05 && hi < 0.05, "100 users narrow it: [{lo}, {hi}]");
        assert_ne!(a, bootstrap(&us, RESAMPLES, SEED + 1));
    }

    #[test]
    fn no_interval_without_users_or_defined_lists() {
        assert_eq!(bootstrap(&[], RESAMPLES, SEED), [(None, None); 3]);
        let undefined = vec![user_sums(&[[None; 3]]); 5];
        assert_eq!(bootstrap(&undefined, 50, SEED), [(None, None); 3]);
    }

    #[test]
    fn quantiles_interpolate_between_order_statistics() {
        let v = [0.0, 1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.5), Some(2.0));
        assert_eq!(quantile(&v, 0.125), Some(0.5));
        assert_eq!(quantile(&v, 1.0), Some(4.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn profiles_load_like_profile_files_and_experiments_are_refused() {
        let ok = load_profile(ProfileSide::Canary, &serde_json::json!({"name": "c"}));
        assert_eq!(ok.map(|p| p.name), Ok("c".to_owned()));
        let bad = load_profile(
            ProfileSide::Canary,
            &serde_json::json!({"weights": {"completion": -1}}),
        );
        assert!(
            matches!(&bad, Err(ReplayError::InvalidProfile { which: ProfileSide::Canary, message }) if message.contains("completion")),
            "{bad:?}"
        );
        let experiment = serde_json::json!({"salt": "s", "variants": [{"name": "a", "share": 1.0, "profile": {}}]});
        assert!(matches!(
            load_profile(ProfileSide::Stable, &experiment),
            Err(ReplayError::InvalidProfile {
                which: ProfileSide::Stable,
                ..
            })
        ));
        assert!(load_profile(ProfileSide::Stable, &serde_json::json!("nope")).is_err());
    }
}
