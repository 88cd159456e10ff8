//! The six ranking signals, each normalised to [0, 1], and the weighted score.
//!
//! | signal | formula |
//! | --- | --- |
//! | freshness | `2^(−age / halfLife[contentType])`, age clamped at 0 |
//! | completion | `(min(completes, shown) + prior·priorWeight) / (shown + priorWeight)`, `shown = max(impressions, views)` |
//! | ↳ prior | `(bucketCompletes + priorMean·bucketPriorWeight) / (bucketShown + bucketPriorWeight)`, `bucketShown = max(bucketImpressions, bucketPlays)`, `bucketCompletes` clamped to `bucketShown`; global counters of the video's duration bucket ([`crate::learning::duration_bucket`]) |
//! | engagement | `r / (r + halfSaturation)`, `r = (likes·lw + shares·sw + comments·cw + priorRate·priorWeight) / (views + priorWeight)` |
//! | affinity | `min(1, 1 − e^(−(cw·creator + tw·meanTag)/saturation) + followBoost·followed + friendBoost·friendEngaged)` |
//! | embedding | `(1 + cos(taste, embedding)) / 2`, `neutral` when either is missing |
//! | brevity | `2^(−duration / halfLifeSeconds)` |
//!
//! `score = (Σ weightᵢ·signalᵢ / Σ weightᵢ) · (1 + lift·affinity) / (1 + lift)`, so the score is
//! in [0, 1] whatever the weights, and a strongly engaged creator or topic (affinity near 1) can
//! be worth up to `1 + lift` times an unknown one. The weighted *contribution* of signal i
//! (`explain=true`) is `weightᵢ·signalᵢ / Σ weightᵢ` (before the lift), and the lift's own term is
//! `affinity_lift = base · (multiplier − 1)` with `base = Σ contributions`: the contributions and
//! `affinity_lift` add up to the score, and no signal is credited with what the lift did.
//! Affinities and the taste vector are decayed with [`crate::learning::AFFINITY_HALF_LIFE_SECS`].

use feed_profile::{RankingProfile, Signal, SignalWeights};

use crate::learning::{BucketStats, VideoStats};
use crate::model::{ContentType, Signals};

/// Freshness of a video `age_secs` old.
pub fn freshness(profile: &RankingProfile, content_type: ContentType, age_secs: f64) -> f64 {
    let h = &profile.freshness.half_life_hours;
    let half_life_hours = match content_type {
        ContentType::Short => h.short,
        ContentType::Long => h.long,
        ContentType::Live => h.live,
    };
    (-(age_secs.max(0.0) / 3600.0) / half_life_hours)
        .exp2()
        .clamp(0.0, 1.0)
}

/// The completion prior: the smoothed global finish rate of a duration bucket.
pub fn completion_prior(profile: &RankingProfile, bucket: &BucketStats) -> f64 {
    let k = &profile.completion;
    let shown = bucket.shown();
    let completes = bucket.completes.clamp(0.0, shown);
    let denominator = shown + k.bucket_prior_weight;
    if denominator <= 0.0 {
        return k.prior_mean;
    }
    ((completes + k.prior_mean * k.bucket_prior_weight) / denominator).clamp(0.0, 1.0)
}

/// Smoothed completes per impression toward the duration bucket's prior.
pub fn completion(profile: &RankingProfile, stats: &VideoStats, bucket: &BucketStats) -> f64 {
    let k = &profile.completion;
    let prior = completion_prior(profile, bucket);
    let shown = stats.impressions.max(stats.views).max(0.0);
    let completes = stats.completes.clamp(0.0, shown);
    let denominator = shown + k.prior_weight;
    if denominator <= 0.0 {
        return prior;
    }
    ((completes + prior * k.prior_weight) / denominator).clamp(0.0, 1.0)
}

/// Smoothed weighted interactions per view, squashed to [0, 1).
pub fn engagement(profile: &RankingProfile, stats: &VideoStats) -> f64 {
    let k = &profile.engagement;
    let interactions = stats.likes.max(0.0) * k.like_weight
        + stats.shares.max(0.0) * k.share_weight
        + stats.comments.max(0.0) * k.comment_weight;
    let denominator = stats.views.max(0.0) + k.prior_weight;
    let rate = if denominator > 0.0 {
        (interactions + k.prior_rate * k.prior_weight) / denominator
    } else {
        interactions
    };
    (rate / (rate + k.half_saturation)).clamp(0.0, 1.0)
}

/// Affinity from the decayed creator and mean tag affinities (negative values count as 0) and
/// the social boosts.
pub fn affinity(
    profile: &RankingProfile,
    creator: f64,
    tag_mean: f64,
    followed: bool,
    friend_engaged: bool,
) -> f64 {
    let k = &profile.affinity;
    let raw = k.creator_weight * creator.max(0.0) + k.tag_weight * tag_mean.max(0.0);
    let learned = 1.0 - (-raw / k.saturation).exp();
    let social = if followed { k.follow_boost } else { 0.0 }
        + if friend_engaged { k.friend_boost } else { 0.0 };
    (learned + social).clamp(0.0, 1.0)
}

/// Cosine similarity of the taste vector and the video's embedding, mapped to [0, 1].
pub fn embedding(profile: &RankingProfile, taste: Option<&[f64]>, video: Option<&[f32]>) -> f64 {
    embedding_of_cosine(profile, cosine(taste, video))
}

/// The cosine of the taste vector and the video's embedding; `None` when either is missing,
/// empty, zero or of another dimension.
pub fn cosine(taste: Option<&[f64]>, video: Option<&[f32]>) -> Option<f64> {
    normed_cosine(taste.map(Normed::new), video.map(Normed::new))
}

/// [`cosine`] of vectors whose sums of squares were computed beforehand: one dot product. Equal
/// to [`cosine`] of their values, to the bit.
pub fn normed_cosine(
    taste: Option<Normed<'_, f64>>,
    video: Option<Normed<'_, f32>>,
) -> Option<f64> {
    let (taste, video) = (taste?, video?);
    if taste.values.len() != video.values.len() {
        return None;
    }
    let mut dot = 0.0;
    for (t, v) in taste.values.iter().zip(video.values) {
        dot += t * f64::from(*v);
    }
    if taste.sum_squares <= 0.0 || video.sum_squares <= 0.0 {
        return None;
    }
    Some(dot / (taste.sum_squares.sqrt() * video.sum_squares.sqrt()))
}

/// A vector ready for [`normed_cosine`]: its values and their sum of squares, computed once (a
/// user's taste once per ranking, a video's embedding once per catalog entry) instead of once
/// per pair.
#[derive(Clone, Copy, Debug)]
pub struct Normed<'a, T> {
    values: &'a [T],
    sum_squares: f64,
}

impl<'a, T: Copy + Into<f64>> Normed<'a, T> {
    /// `values` with their sum of squares.
    pub fn new(values: &'a [T]) -> Self {
        Self {
            values,
            sum_squares: sum_squares(values),
        }
    }

    /// `values` with a sum of squares computed before by [`sum_squares`] of the same values.
    pub fn with_sum_squares(values: &'a [T], sum_squares: f64) -> Self {
        Self {
            values,
            sum_squares,
        }
    }
}

/// The sum of the squares of `values`, in order (as [`Normed`] needs it).
pub fn sum_squares<T: Copy + Into<f64>>(values: &[T]) -> f64 {
    let mut sum = 0.0;
    for v in values {
        let v: f64 = (*v).into();
        sum += v * v;
    }
    sum
}

/// The embedding signal of a cosine: `(1 + cos) / 2`, `neutral` without one.
pub fn embedding_of_cosine(profile: &RankingProfile, cosine: Option<f64>) -> f64 {
    match cosine {
        Some(c) => ((1.0 + c) / 2.0).clamp(0.0, 1.0),
        None => profile.embedding.neutral,
    }
}

/// Brevity of a video `duration_ms` long.
pub fn brevity(profile: &RankingProfile, duration_ms: u64) -> f64 {
    let secs = duration_ms as f64 / 1000.0;
    (-secs / profile.brevity.half_life_seconds)
        .exp2()
        .clamp(0.0, 1.0)
}

/// The factor `(1 + lift·affinity) / (1 + lift)` by which affinity scales the whole score.
pub fn affinity_multiplier(lift: f64, affinity: f64) -> f64 {
    let lift = lift.max(0.0);
    ((1.0 + lift * affinity.clamp(0.0, 1.0)) / (1.0 + lift)).clamp(0.0, 1.0)
}

/// The weighted contribution of every signal before the affinity lift, `weightᵢ·signalᵢ / Σ
/// weights`; with [`affinity_lift`] they add up to [`score`].
pub fn contributions(weights: &SignalWeights, s: &Signals) -> Signals {
    let total = weights.total();
    let mut out = Signals::default();
    if total <= 0.0 {
        return out;
    }
    for signal in Signal::ALL {
        *out.get_mut(signal) = weights.get(signal) * s.get(signal) / total;
    }
    out
}

/// What the affinity lift adds to the weighted mean `base`: `base · (multiplier − 1)`, zero or
/// negative (a video of no affinity loses up to `lift / (1 + lift)` of its base score).
pub fn affinity_lift(weights: &SignalWeights, lift: f64, s: &Signals) -> f64 {
    let c = contributions(weights, s);
    let base: f64 = Signal::ALL.iter().map(|&x| c.get(x)).sum();
    base * (affinity_multiplier(lift, s.affinity) - 1.0)
}

/// The score: weighted mean of the signals, scaled by the affinity multiplier.
pub fn score(weights: &SignalWeights, lift: f64, s: &Signals) -> f64 {
    let total = weights.total();
    if total <= 0.0 {
        return 0.0;
    }
    let sum: f64 = Signal::ALL
        .iter()
        .map(|&signal| weights.get(signal) * s.get(signal))
        .sum();
    (sum / total * affinity_multiplier(lift, s.affinity)).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p() -> RankingProfile {
        RankingProfile::default()
    }

    fn stats(impressions: f64, completes: f64, likes: f64) -> VideoStats {
        VideoStats {
            impressions,
            views: impressions / 2.0,
            completes,
            likes,
            ..VideoStats::default()
        }
    }

    fn bucket(impressions: f64, completes: f64) -> BucketStats {
        BucketStats {
            impressions,
            completes,
            ..BucketStats::default()
        }
    }

    #[test]
    fn freshness_halves_per_half_life_of_its_content_type() {
        assert_eq!(freshness(&p(), ContentType::Short, 0.0), 1.0);
        assert!((freshness(&p(), ContentType::Short, 24.0 * 3600.0) - 0.5).abs() < 1e-12);
        assert!((freshness(&p(), ContentType::Live, 2.0 * 3600.0) - 0.5).abs() < 1e-12);
        assert!(freshness(&p(), ContentType::Long, 24.0 * 3600.0) > 0.5);
        assert_eq!(
            freshness(&p(), ContentType::Short, -100.0),
            1.0,
            "future uploads count as brand new"
        );
    }

    #[test]
    fn a_new_video_starts_at_its_duration_buckets_finish_rate() {
        let k = &p().completion;
        // No data anywhere: the configured prior.
        let empty = BucketStats::default();
        assert!((completion(&p(), &VideoStats::default(), &empty) - k.prior_mean).abs() < 1e-12);
        // A bucket where 30% of 10,000 impressions were finished: close to 0.3.
        let short = bucket(10_000.0, 3_000.0);
        let expected =
            (3_000.0 + k.prior_mean * k.bucket_prior_weight) / (10_000.0 + k.bucket_prior_weight);
        assert!((completion(&p(), &VideoStats::default(), &short) - expected).abs() < 1e-12);
        let long = bucket(10_000.0, 400.0);
        assert!(
            completion(&p(), &VideoStats::default(), &short)
                > 5.0 * completion(&p(), &VideoStats::default(), &long),
            "the prior follows the bucket's own rate"
        );
    }

    #[test]
    fn completion_counts_completes_per_impression_not_per_play() {
        let b = bucket(10_000.0, 1_500.0);
        // Both videos are finished by every viewer who plays them, but only one is played often.
        let played_by_all = VideoStats {
            impressions: 1_000.0,
            views: 1_000.0,
            completes: 900.0,
            ..VideoStats::default()
        };
        let scrolled_past = VideoStats {
            impressions: 1_000.0,
            views: 100.0,
            completes: 90.0,
            ..VideoStats::default()
        };
        let a = completion(&p(), &played_by_all, &b);
        let c = completion(&p(), &scrolled_past, &b);
        assert!(a > 0.85 && c < 0.11, "{a} {c}");
        // Plays without impressions (a client that sends no impressions) still count as shown,
        // and completes never exceed what was shown.
        let no_impressions = VideoStats {
            views: 10.0,
            completes: 50.0,
            ..VideoStats::default()
        };
        assert!(completion(&p(), &no_impressions, &b) <= 1.0);
    }

    #[test]
    fn brevity_halves_every_half_life_of_duration() {
        assert!((brevity(&p(), 0) - 1.0).abs() < 1e-12);
        assert!((brevity(&p(), 60_000) - 0.5).abs() < 1e-12);
        assert!((brevity(&p(), 180_000) - 0.125).abs() < 1e-12);
        assert!(brevity(&p(), u64::MAX) >= 0.0);
    }

    #[test]
    fn affinity_boosts_follows_and_friends() {
        let base = affinity(&p(), 0.0, 0.0, false, false);
        assert_eq!(base, 0.0);
        assert!((affinity(&p(), 0.0, 0.0, true, false) - 0.5).abs() < 1e-12);
        assert!((affinity(&p(), 0.0, 0.0, true, true) - 0.7).abs() < 1e-12);
        assert!(
            affinity(&p(), -5.0, -5.0, false, false) == 0.0,
            "negative affinity is floored"
        );
    }

    #[test]
    fn affinity_lift_lets_a_strong_interest_outrank_a_fresher_video() {
        // An affinity weight too small for affinity alone to beat freshness.
        let w = SignalWeights {
            affinity: 0.1,
            ..SignalWeights::default()
        };
        let fresh_unknown = Signals {
            freshness: 1.0,
            completion: 0.2,
            engagement: 0.2,
            affinity: 0.0,
            embedding: 0.5,
            brevity: 0.5,
        };
        let older_loved = Signals {
            freshness: 0.1,
            affinity: 1.0,
            ..fresh_unknown
        };
        assert!(score(&w, 1.0, &older_loved) > score(&w, 1.0, &fresh_unknown));
        assert!(
            score(&w, 0.0, &older_loved) < score(&w, 0.0, &fresh_unknown) + 0.1,
            "without the lift affinity is only its weight"
        );
    }

    #[test]
    fn contributions_add_up_to_the_score() {
        let w = SignalWeights::default();
        let s = Signals {
            freshness: 0.9,
            completion: 0.3,
            engagement: 0.1,
            affinity: 0.7,
            embedding: 0.5,
            brevity: 0.6,
        };
        let c = contributions(&w, &s);
        assert!(
            c.completion > c.engagement,
            "weighted: completion weighs more"
        );
        for lift in [0.0, 1.0, 4.0] {
            let sum: f64 = Signal::ALL.iter().map(|&x| c.get(x)).sum();
            let lifted = affinity_lift(&w, lift, &s);
            assert!((sum + lifted - score(&w, lift, &s)).abs() < 1e-12);
            // The lift is its own term: the signals' contributions do not change with it.
            assert_eq!(c, contributions(&w, &s));
            assert!(
                lifted <= 0.0 && (lift > 0.0) == (lifted < 0.0),
                "{lift} {lifted}"
            );
        }
    }

    #[test]
    fn embedding_is_neutral_without_vectors_and_ordered_by_cosine() {
        let prof = p();
        assert_eq!(embedding(&prof, None, Some(&[1.0])), 0.5);
        assert_eq!(
            embedding(&prof, Some(&[1.0, 0.0]), Some(&[1.0])),
            0.5,
            "dimension mismatch is neutral"
        );
        let same = embedding(&prof, Some(&[1.0, 0.0]), Some(&[2.0, 0.0]));
        let orth = embedding(&prof, Some(&[1.0, 0.0]), Some(&[0.0, 1.0]));
        let opp = embedding(&prof, Some(&[1.0, 0.0]), Some(&[-1.0, 0.0]));
        assert!((same - 1.0).abs() < 1e-12 && (orth - 0.5).abs() < 1e-12 && opp.abs() < 1e-12);
    }

    #[test]
    fn a_zero_weight_signal_does_not_move_the_score() {
        let w = SignalWeights {
            embedding: 0.0,
            ..SignalWeights::default()
        };
        let a = Signals {
            embedding: 0.0,
            ..Signals::default()
        };
        let b = Signals {
            embedding: 1.0,
            ..Signals::default()
        };
        assert_eq!(score(&w, 1.0, &a), score(&w, 1.0, &b));
    }

    fn signals() -> impl Strategy<Value = Signals> {
        proptest::array::uniform6(0.0f64..=1.0).prop_map(|v| {
            let mut s = Signals::default();
            for (signal, x) in Signal::ALL.into_iter().zip(v) {
                *s.get_mut(signal) = x;
            }
            s
        })
    }

    fn weights() -> impl Strategy<Value = SignalWeights> {
        (proptest::array::uniform5(0.0f64..5.0), 0.01f64..5.0).prop_map(|(v, last)| SignalWeights {
            freshness: v[0],
            completion: v[1],
            engagement: v[2],
            affinity: v[3],
            embedding: v[4],
            brevity: last,
        })
    }

    /// The cosine as it was computed before the sums of squares were kept (all three sums in
    /// one pass): a score or explanation must not move by a bit with the change.
    fn cosine_in_one_pass(taste: &[f64], video: &[f32]) -> Option<f64> {
        if taste.len() != video.len() {
            return None;
        }
        let (mut dot, mut nt, mut nv) = (0.0, 0.0, 0.0);
        for (t, v) in taste.iter().zip(video) {
            let v = f64::from(*v);
            dot += t * v;
            nt += t * t;
            nv += v * v;
        }
        (nt > 0.0 && nv > 0.0).then(|| dot / (nt.sqrt() * nv.sqrt()))
    }

    fn vectors() -> impl Strategy<Value = (Vec<f64>, Vec<f32>)> {
        let value = prop_oneof![Just(0.0), -3.0f64..3.0];
        (0usize..24, 0usize..3).prop_flat_map(move |(n, other)| {
            // Mostly of one dimension; now and then the video's is another.
            let m = if other == 0 { (n + 1) % 24 } else { n };
            (
                proptest::collection::vec(value.clone(), n),
                proptest::collection::vec(value.clone().prop_map(|v| v as f32), m),
            )
        })
    }

    proptest! {
        #[test]
        fn a_normed_cosine_is_the_one_pass_cosine_to_the_bit((taste, video) in vectors()) {
            let kept = normed_cosine(
                Some(Normed::with_sum_squares(&taste, sum_squares(&taste))),
                Some(Normed::with_sum_squares(&video, sum_squares(&video))),
            );
            let expected = cosine_in_one_pass(&taste, &video);
            prop_assert_eq!(kept.map(f64::to_bits), expected.map(f64::to_bits));
            prop_assert_eq!(cosine(Some(&taste), Some(&video)).map(f64::to_bits), expected.map(f64::to_bits));
        }

        #[test]
        fn score_is_bounded(w in weights(), s in signals(), lift in 0.0f64..100.0) {
            let v = score(&w, lift, &s);
            prop_assert!((0.0..=1.0).contains(&v));
        }

        #[test]
        fn score_is_monotonic_in_every_signal(w in weights(), s in signals(), which in 0usize..6, bump in 0.0f64..1.0, lift in 0.0f64..10.0) {
            let mut t = s;
            let field = t.get_mut(Signal::ALL[which]);
            *field = (*field + bump).min(1.0);
            prop_assert!(score(&w, lift, &t) >= score(&w, lift, &s) - 1e-12);
        }

        #[test]
        fn score_respects_weights(s in signals(), heavy in 0usize..6) {
            // With all weight on one signal and no lift, the score is exactly that signal.
            let mut w = SignalWeights { freshness: 0.0, completion: 0.0, engagement: 0.0, affinity: 0.0, embedding: 0.0, brevity: 0.0 };
            let signal = Signal::ALL[heavy];
            match signal {
                Signal::Freshness => w.freshness = 1.0,
                Signal::Completion => w.completion = 1.0,
                Signal::Engagement => w.engagement = 1.0,
                Signal::Affinity => w.affinity = 1.0,
                Signal::Embedding => w.embedding = 1.0,
                Signal::Brevity => w.brevity = 1.0,
            }
            prop_assert!((score(&w, 0.0, &s) - s.get(signal)).abs() < 1e-12);
        }

        #[test]
        fn signals_are_bounded_and_monotonic(shown in 0.0f64..1e6, rate in 0.0f64..=1.0, likes in 0.0f64..1e6, extra in 0.0f64..1e3,
                                             aff in -10.0f64..100.0, age in -1e6f64..1e9, b_shown in 0.0f64..1e7, b_rate in 0.0f64..=1.0,
                                             duration in 0u64..10_000_000) {
            let prof = RankingProfile::default();
            let b = bucket(b_shown, b_rate * b_shown);
            let s = stats(shown, rate * shown, likes);
            let c = completion(&prof, &s, &b);
            let e = engagement(&prof, &s);
            let more_likes = engagement(&prof, &stats(shown, rate * shown, likes + extra));
            let more_completes = completion(&prof, &stats(shown + extra, rate * shown + extra, likes), &b);
            prop_assert!((0.0..=1.0).contains(&c) && (0.0..=1.0).contains(&e));
            prop_assert!(more_likes >= e - 1e-12);
            prop_assert!(more_completes >= c - 1e-12);
            let a = affinity(&prof, aff, aff, false, false);
            prop_assert!((0.0..=1.0).contains(&a));
            prop_assert!(affinity(&prof, aff + extra, aff, false, false) >= a - 1e-12);
            let f = freshness(&prof, ContentType::Short, age);
            prop_assert!((0.0..=1.0).contains(&f));
            prop_assert!(freshness(&prof, ContentType::Short, age + extra) <= f + 1e-12);
            let br = brevity(&prof, duration);
            prop_assert!((0.0..=1.0).contains(&br));
            prop_assert!(brevity(&prof, duration.saturating_add(extra as u64 * 1000)) <= br + 1e-12);
        }
    }
}
