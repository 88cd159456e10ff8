//! `POST /v1/admin/tune` as a use case (pure: the handler reads the log and the catalog, then
//! runs [`tune`] off the async runtime).
//!
//! 1. **Exposures.** The window's exposures with point-in-time signal inputs ([`super::replay`]).
//!    Fewer than [`MIN_EXPOSURES`] → [`TuneError::TooFewExposures`]; no outcome of the objective
//!    → [`TuneError::NoOutcome`].
//! 2. **Slices, by time.** Held out: the last [`HELD_OUT_FRACTION`] of the window's exposures
//!    (from the `ts` of the exposure at that quantile on). Training: the rest, itself split the
//!    same way into a fitting part and a selection part.
//! 3. **Fit.** For each prior strength in [`PRIOR_SCALES`] (a factor on the profile's
//!    `completion.priorWeight`, `completion.bucketPriorWeight` and `engagement.priorWeight`), the
//!    six signals of every training exposure are computed under the scaled profile and a
//!    non-negative logistic regression ([`super::fit`]) is fitted *pairwise per user-day list*
//!    on the fitting part: for two exposures of one user's day with different labels, which of
//!    the two did better, from the difference of their signals (at most
//!    [`MAX_PAIRS_PER_LIST`] pairs per list, [`MAX_FIT_PAIRS`] per fit). What is the same for a whole list (time of day, a
//!    signal constant across candidates) cancels out, so the weights learn what orders a list —
//!    what GAUC and NDCG measure. Every affinity lift in [`LIFTS`] is tried with those weights. The
//!    (scale, lift) whose ranking of the selection part scores best on the objective's metric
//!    (GAUC(finish) for `finish`, NDCG@10 of watch ratio for `watch`, of likes for `like`, the
//!    weighted mean for a mix) wins; ties go to the earlier candidate, so the result is
//!    deterministic. The weights are then refitted on the whole training slice.
//! 4. **Answer.** The current profile with the fitted weights (normalised to sum 1), the chosen lift and prior strengths, named `tuned`, validated like any profile;
//!    and the held-out quality of both the tuned and the current profile, each exposure scored
//!    with [`crate::ranking::signals::score`] and every user-day of exposures ranked as one list.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use feed_profile::{RankingProfile, Signal, SignalWeights};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::LoggedEvent;
use super::fit::{FitSettings, fit_non_negative_logistic};
use super::quality::{Quality, measure};
use super::replay::{Exposure, Outcome, Window, replay};
use crate::learning::day_of;
use crate::model::Video;
use crate::ranking::signals;

/// Fewest exposures in the window a tune accepts.
pub const MIN_EXPOSURES: usize = 200;
/// The share of the window's exposures (the latest) held out for the reported figures; the same
/// share of the training slice selects the prior strengths and the lift.
pub const HELD_OUT_FRACTION: f64 = 0.2;
/// Factors tried on the profile's prior strengths.
pub const PRIOR_SCALES: [f64; 3] = [0.5, 1.0, 2.0];
/// Affinity lifts tried.
pub const LIFTS: [f64; 4] = [0.0, 0.5, 1.0, 2.0];
/// Name of the answered profile.
pub const TUNED_NAME: &str = "tuned";

/// A named objective.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NamedObjective {
    /// Watched to the end.
    Finish,
    /// Watch ratio.
    Watch,
    /// Liked.
    Like,
}

/// How much each outcome counts; at least one positive, none negative.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectiveWeights {
    /// Weight of finishing.
    #[schema(minimum = 0)]
    pub finish: f64,
    /// Weight of the watch ratio.
    #[schema(minimum = 0)]
    pub watch: f64,
    /// Weight of a like.
    #[schema(minimum = 0)]
    pub like: f64,
}

/// `objective` of the request: a name, or weights of the three outcomes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Objective {
    /// `"finish"`, `"watch"` or `"like"`.
    Named(NamedObjective),
    /// `{"finish":…, "watch":…, "like":…}` (missing = 0).
    Weights(ObjectiveWeights),
}

impl Objective {
    /// The objective as weights, checked: finite, non-negative, not all zero.
    pub fn weights(self) -> Result<ObjectiveWeights, TuneError> {
        let w = match self {
            Objective::Named(NamedObjective::Finish) => ObjectiveWeights {
                finish: 1.0,
                ..ObjectiveWeights::default()
            },
            Objective::Named(NamedObjective::Watch) => ObjectiveWeights {
                watch: 1.0,
                ..ObjectiveWeights::default()
            },
            Objective::Named(NamedObjective::Like) => ObjectiveWeights {
                like: 1.0,
                ..ObjectiveWeights::default()
            },
            Objective::Weights(w) => w,
        };
        let all = [w.finish, w.watch, w.like];
        if all.iter().any(|v| !v.is_finite() || *v < 0.0) {
            return Err(TuneError::InvalidObjective(
                "objective weights must be finite and not negative".into(),
            ));
        }
        if all.iter().sum::<f64>() <= 0.0 {
            return Err(TuneError::InvalidObjective(
                "at least one objective weight must be positive".into(),
            ));
        }
        Ok(w)
    }
}

impl ObjectiveWeights {
    /// The label of an outcome in [0, 1]: the weighted mean of finished, watch ratio and liked.
    pub fn label(&self, o: &Outcome) -> f64 {
        let total = self.finish + self.watch + self.like;
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        (self.finish * flag(o.completed) + self.watch * o.watch_ratio + self.like * flag(o.liked))
            / total
    }

    /// The objective's metric of a quality: the weighted mean of the defined figures.
    pub fn metric(&self, q: &Quality) -> Option<f64> {
        let parts = [
            (self.finish, q.gauc_finish),
            (self.watch, q.ndcg10_watch),
            (self.like, q.ndcg10_like),
        ];
        let (sum, weight) = parts
            .iter()
            .filter(|(w, _)| *w > 0.0)
            .filter_map(|(w, v)| v.map(|v| (w * v, *w)))
            .fold((0.0, 0.0), |(s, t), (v, w)| (s + v, t + w));
        (weight > 0.0).then(|| sum / weight)
    }
}

/// Why a tune was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TuneError {
    /// `since` is not before `until`.
    #[error("since ({since}) must be before until ({until})")]
    InvalidWindow {
        /// As asked.
        since: String,
        /// As asked.
        until: String,
    },
    /// The objective is not usable.
    #[error("{0}")]
    InvalidObjective(String),
    /// Too few exposures to fit and hold out.
    #[error(
        "the exposure log holds {have} exposures in this window{part}; a tune needs at least {need}"
    )]
    TooFewExposures {
        /// Exposures found.
        have: usize,
        /// Exposures needed.
        need: usize,
        /// Which part was short (empty for the whole window).
        part: &'static str,
    },
    /// No exposure of the slice has a positive outcome of the objective.
    #[error("no exposure of the {slice} has an outcome of the objective ({objective})")]
    NoOutcome {
        /// `window` or `training slice`.
        slice: &'static str,
        /// The objective's outcomes.
        objective: String,
    },
    /// The fitted weights do not make a valid profile (e.g. every weight zero: no signal
    /// predicts the objective).
    #[error("no valid profile could be fitted: {0}")]
    NoFit(String),
}

/// What [`tune`] works on.
pub struct TuneInput<'a> {
    /// The log's events (any order).
    pub events: &'a [LoggedEvent],
    /// The catalog entries of the events' videos.
    pub catalog: &'a HashMap<String, Arc<Video>>,
    /// The window.
    pub window: Window,
    /// The objective, checked.
    pub objective: ObjectiveWeights,
    /// The profile serving now (the first variant of the experiment in force).
    pub current: &'a RankingProfile,
}

/// Exposure counts of a tune.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct TuneCounts {
    /// Exposures in the window.
    pub window: usize,
    /// Used for fitting and selection.
    pub training: usize,
    /// Held out (the latest).
    pub held_out: usize,
    /// RFC 3339 instant the held-out slice starts at.
    pub held_out_since: String,
}

/// Held-out quality of the tuned and the current profile on the same exposures.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, ToSchema)]
pub struct HeldOut {
    /// The answered profile.
    pub tuned: Quality,
    /// The profile serving now.
    pub current: Quality,
}

/// The choices the fit made.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, ToSchema)]
pub struct FitChoice {
    /// Factor applied to the current profile's prior strengths.
    pub prior_scale: f64,
    /// Affinity lift.
    pub lift: f64,
    /// The objective's metric on the selection part of the training slice.
    pub selection_metric: Option<f64>,
}

/// What a tune found.
#[derive(Clone, Debug, PartialEq)]
pub struct TuneReport {
    /// The tuned profile.
    pub profile: RankingProfile,
    /// Exposure counts.
    pub exposures: TuneCounts,
    /// Held-out figures.
    pub held_out: HeldOut,
    /// Choices.
    pub fit: FitChoice,
}

/// `profile` with its prior strengths multiplied by `scale`.
fn scaled(profile: &RankingProfile, scale: f64) -> RankingProfile {
    let mut p = profile.clone();
    p.completion.prior_weight *= scale;
    p.completion.bucket_prior_weight *= scale;
    p.engagement.prior_weight *= scale;
    p
}

fn features(profile: &RankingProfile, xs: &[Exposure]) -> Vec<[f64; 6]> {
    xs.iter()
        .map(|x| {
            let s = x.inputs.signals(profile);
            Signal::ALL.map(|signal| s.get(signal))
        })
        .collect()
}

/// The score `profile` gives exposure `x` from its point-in-time inputs: the live ranker's
/// [`crate::ranking::signals::score`] of [`crate::ranking::inputs::SignalInputs::signals`].
pub fn score(profile: &RankingProfile, x: &Exposure) -> f64 {
    let s = x.inputs.signals(profile);
    signals::score(&profile.weights, profile.affinity.lift, &s)
}

/// One list (indexes into `xs`) scored with `profile`, each exposure with its outcome.
pub fn scored(profile: &RankingProfile, xs: &[Exposure], list: &[usize]) -> Vec<(f64, Outcome)> {
    list.iter()
        .map(|&i| (score(profile, &xs[i]), xs[i].outcome))
        .collect()
}

/// The quality of ranking `xs` (grouped by user and UTC day) with `profile`.
pub fn quality_of(profile: &RankingProfile, xs: &[Exposure]) -> Quality {
    let lists: Vec<Vec<(f64, Outcome)>> = user_days(xs)
        .values()
        .map(|list| scored(profile, xs, list))
        .collect();
    measure(lists.iter().map(Vec::as_slice))
}

fn weights_of(raw: [f64; 6]) -> SignalWeights {
    let total: f64 = raw.iter().sum();
    let mut w = SignalWeights::default();
    for (signal, v) in Signal::ALL.into_iter().zip(raw) {
        *w.get_mut(signal) = if total > 0.0 { v / total } else { 0.0 };
    }
    w
}

/// The index splitting `xs` (in `ts` order) so that about `fraction` of them come after it, at
/// a change of `ts` (an instant is never cut in two).
fn time_cut(xs: &[Exposure], fraction: f64) -> usize {
    let at = ((xs.len() as f64) * (1.0 - fraction)).floor() as usize;
    let Some(cut_ts) = xs.get(at).map(|x| x.ts) else {
        return xs.len();
    };
    xs.partition_point(|x| x.ts < cut_ts)
}

/// Most pairs one user-day list contributes to a fit (a long session would otherwise weigh
/// quadratically more than the others).
pub const MAX_PAIRS_PER_LIST: usize = 50;

/// The exposures grouped into user-day lists (indexes into `xs`), in a deterministic order.
pub fn user_days(xs: &[Exposure]) -> BTreeMap<(&str, i64), Vec<usize>> {
    let mut lists: BTreeMap<(&str, i64), Vec<usize>> = BTreeMap::new();
    for (i, x) in xs.iter().enumerate() {
        lists
            .entry((x.user_id.as_str(), day_of(x.ts)))
            .or_default()
            .push(i);
    }
    lists
}

/// Most pairs one fit uses: beyond it, every k-th pair (deterministic), so a fit's cost is
/// bounded whatever the window.
pub const MAX_FIT_PAIRS: usize = 10_000;

/// Pairwise training rows: for two exposures of one user-day list with different labels, the
/// difference of their signals, labelled `(1 + label difference) / 2` (fitted without an
/// intercept, which makes the mirrored row redundant).
/// What is constant within a list (the time of day, a signal equal for every candidate) cancels
/// out, so the fit learns what *ranks* a list, which is what GAUC and NDCG measure.
fn pairwise_rows(
    features: &[[f64; 6]],
    labels: &[f64],
    xs: &[Exposure],
) -> (Vec<[f64; 6]>, Vec<f64>) {
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    for list in user_days(xs).values() {
        let informative = list
            .iter()
            .enumerate()
            .flat_map(|(a, &i)| list[a + 1..].iter().map(move |&j| (i, j)))
            .filter(|&(i, j)| labels[i] != labels[j])
            .take(MAX_PAIRS_PER_LIST);
        pairs.extend(informative);
    }
    let stride = pairs.len().div_ceil(MAX_FIT_PAIRS).max(1);
    let (mut rows, mut ys) = (Vec::new(), Vec::new());
    for &(i, j) in pairs.iter().step_by(stride) {
        let dy = labels[i] - labels[j];
        let d: [f64; 6] = std::array::from_fn(|k| features[i][k] - features[j][k]);
        rows.push(d);
        ys.push((1.0 + dy) / 2.0);
    }
    (rows, ys)
}

fn fit_weights(
    profile: &RankingProfile,
    xs: &[Exposure],
    objective: &ObjectiveWeights,
) -> [f64; 6] {
    let labels: Vec<f64> = xs.iter().map(|x| objective.label(&x.outcome)).collect();
    let (rows, ys) = pairwise_rows(&features(profile, xs), &labels, xs);
    let settings = FitSettings {
        intercept: false,
        ..FitSettings::default()
    };
    fit_non_negative_logistic(&rows, &ys, settings).weights
}

/// Fits a profile on the window's exposures; see the module docs.
pub fn tune(input: TuneInput<'_>) -> Result<TuneReport, TuneError> {
    let TuneInput {
        events,
        catalog,
        window,
        objective,
        current,
    } = input;
    let xs = replay(events, catalog, window);
    if xs.len() < MIN_EXPOSURES {
        return Err(TuneError::TooFewExposures {
            have: xs.len(),
            need: MIN_EXPOSURES,
            part: "",
        });
    }
    let outcome_names = || {
        let mut names = Vec::new();
        for (w, name) in [
            (objective.finish, "finish"),
            (objective.watch, "watch"),
            (objective.like, "like"),
        ] {
            if w > 0.0 {
                names.push(name);
            }
        }
        names.join(", ")
    };
    let has_outcome = |xs: &[Exposure]| xs.iter().any(|x| objective.label(&x.outcome) > 0.0);
    if !has_outcome(&xs) {
        return Err(TuneError::NoOutcome {
            slice: "window",
            objective: outcome_names(),
        });
    }
    let cut = time_cut(&xs, HELD_OUT_FRACTION);
    let (training, held) = xs.split_at(cut);
    let inner = time_cut(training, HELD_OUT_FRACTION);
    let (fitting, selection) = training.split_at(inner);
    let need = MIN_EXPOSURES / 4;
    for (part, name) in [
        (fitting, " before the selection part"),
        (selection, " in the selection part"),
        (held, " in the held-out slice"),
    ] {
        if part.len() < need {
            return Err(TuneError::TooFewExposures {
                have: part.len(),
                need,
                part: name,
            });
        }
    }
    if !has_outcome(fitting) {
        return Err(TuneError::NoOutcome {
            slice: "training slice",
            objective: outcome_names(),
        });
    }

    let mut best: Option<(f64, f64, Option<f64>)> = None;
    for scale in PRIOR_SCALES {
        let base = scaled(current, scale);
        let weights = weights_of(fit_weights(&base, fitting, &objective));
        if weights.total() <= 0.0 {
            continue;
        }
        for lift in LIFTS {
            let mut candidate = base.clone();
            candidate.weights = weights.clone();
            candidate.affinity.lift = lift;
            let metric = objective.metric(&quality_of(&candidate, selection));
            let better = match best {
                None => true,
                Some((_, _, best_metric)) => {
                    metric.unwrap_or(f64::NEG_INFINITY) > best_metric.unwrap_or(f64::NEG_INFINITY)
                }
            };
            if better {
                best = Some((scale, lift, metric));
            }
        }
    }
    let Some((prior_scale, lift, selection_metric)) = best else {
        return Err(TuneError::NoFit(
            "every signal weight came out zero: no signal predicts the objective in this window"
                .into(),
        ));
    };
    let mut profile = scaled(current, prior_scale);
    profile.weights = weights_of(fit_weights(&profile, training, &objective));
    profile.affinity.lift = lift;
    profile.name = TUNED_NAME.to_owned();
    profile
        .validate()
        .map_err(|e| TuneError::NoFit(e.to_string()))?;

    let held_out_since = held
        .first()
        .and_then(|x| chrono::DateTime::from_timestamp_millis((x.ts * 1000.0) as i64))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default();
    Ok(TuneReport {
        held_out: HeldOut {
            tuned: quality_of(&profile, held),
            current: quality_of(current, held),
        },
        exposures: TuneCounts {
            window: xs.len(),
            training: training.len(),
            held_out: held.len(),
            held_out_since,
        },
        fit: FitChoice {
            prior_scale,
            lift,
            selection_metric,
        },
        profile,
    })
}
