//! The five ranking signals, each normalised to [0, 1], and the weighted score.
//!
//! | signal | formula |
//! | --- | --- |
//! | freshness | `2^(−age / halfLife[contentType])`, age clamped at 0 |
//! | completion | `(Σ min(watchRatio, 1) + priorMean·priorWeight) / (views + priorWeight)` |
//! | engagement | `r / (r + halfSaturation)`, `r = (likes·lw + shares·sw + comments·cw + priorRate·priorWeight) / (views + priorWeight)` |
//! | affinity | `min(1, 1 − e^(−(cw·creator + tw·meanTag)/saturation) + followBoost·followed + friendBoost·friendEngaged)` |
//! | embedding | `(1 + cos(taste, embedding)) / 2`, `neutral` when either is missing |
//!
//! `score = Σ weightᵢ·signalᵢ / Σ weightᵢ`, so the score is in [0, 1] whatever the weights.
//! Affinities and the taste vector are decayed with [`crate::learning::AFFINITY_HALF_LIFE_SECS`].

use feed_profile::{RankingProfile, SignalWeights};

use crate::learning::VideoStats;
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

/// Smoothed mean watch ratio.
pub fn completion(profile: &RankingProfile, stats: &VideoStats) -> f64 {
    let k = &profile.completion;
    let denominator = stats.views.max(0.0) + k.prior_weight;
    if denominator <= 0.0 {
        return k.prior_mean;
    }
    ((stats.watch_ratio_sum.max(0.0) + k.prior_mean * k.prior_weight) / denominator).clamp(0.0, 1.0)
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
    let (Some(taste), Some(video)) = (taste, video) else {
        return profile.embedding.neutral;
    };
    if taste.len() != video.len() {
        return profile.embedding.neutral;
    }
    let (mut dot, mut nt, mut nv) = (0.0, 0.0, 0.0);
    for (t, v) in taste.iter().zip(video) {
        let v = f64::from(*v);
        dot += t * v;
        nt += t * t;
        nv += v * v;
    }
    if nt <= 0.0 || nv <= 0.0 {
        return profile.embedding.neutral;
    }
    ((1.0 + dot / (nt.sqrt() * nv.sqrt())) / 2.0).clamp(0.0, 1.0)
}

/// Weighted mean of the signals.
pub fn score(weights: &SignalWeights, s: &Signals) -> f64 {
    let total = weights.total();
    if total <= 0.0 {
        return 0.0;
    }
    let sum = weights.freshness * s.freshness
        + weights.completion * s.completion
        + weights.engagement * s.engagement
        + weights.affinity * s.affinity
        + weights.embedding * s.embedding;
    (sum / total).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p() -> RankingProfile {
        RankingProfile::default()
    }

    fn stats(views: f64, ratio_sum: f64, likes: f64) -> VideoStats {
        VideoStats {
            views,
            watch_ratio_sum: ratio_sum,
            likes,
            ..VideoStats::default()
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
    fn completion_starts_at_the_prior_and_moves_to_the_data() {
        assert!((completion(&p(), &VideoStats::default()) - 0.3).abs() < 1e-12);
        let many = completion(&p(), &stats(10_000.0, 9_000.0, 0.0));
        assert!(many > 0.89 && many < 0.9);
    }

    #[test]
    fn affinity_boosts_follows_and_friends() {
        let base = affinity(&p(), 0.0, 0.0, false, false);
        assert_eq!(base, 0.0);
        assert!((affinity(&p(), 0.0, 0.0, true, false) - 0.3).abs() < 1e-12);
        assert!((affinity(&p(), 0.0, 0.0, true, true) - 0.5).abs() < 1e-12);
        assert!(
            affinity(&p(), -5.0, -5.0, false, false) == 0.0,
            "negative affinity is floored"
        );
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
        assert_eq!(score(&w, &a), score(&w, &b));
    }

    fn signals() -> impl Strategy<Value = Signals> {
        (
            0.0f64..=1.0,
            0.0f64..=1.0,
            0.0f64..=1.0,
            0.0f64..=1.0,
            0.0f64..=1.0,
        )
            .prop_map(|(a, b, c, d, e)| Signals {
                freshness: a,
                completion: b,
                engagement: c,
                affinity: d,
                embedding: e,
            })
    }

    fn weights() -> impl Strategy<Value = SignalWeights> {
        (
            0.0f64..5.0,
            0.0f64..5.0,
            0.0f64..5.0,
            0.0f64..5.0,
            0.01f64..5.0,
        )
            .prop_map(|(a, b, c, d, e)| SignalWeights {
                freshness: a,
                completion: b,
                engagement: c,
                affinity: d,
                embedding: e,
            })
    }

    proptest! {
        #[test]
        fn score_is_bounded(w in weights(), s in signals()) {
            let v = score(&w, &s);
            prop_assert!((0.0..=1.0).contains(&v));
        }

        #[test]
        fn score_is_monotonic_in_every_signal(w in weights(), s in signals(), which in 0usize..5, bump in 0.0f64..1.0) {
            let mut t = s;
            let field = match which {
                0 => &mut t.freshness, 1 => &mut t.completion, 2 => &mut t.engagement, 3 => &mut t.affinity, _ => &mut t.embedding,
            };
            *field = (*field + bump).min(1.0);
            prop_assert!(score(&w, &t) >= score(&w, &s) - 1e-12);
        }

        #[test]
        fn score_respects_weights(s in signals(), heavy in 0usize..5) {
            // With all weight on one signal, the score is exactly that signal.
            let mut w = SignalWeights { freshness: 0.0, completion: 0.0, engagement: 0.0, affinity: 0.0, embedding: 0.0 };
            let values = [s.freshness, s.completion, s.engagement, s.affinity, s.embedding];
            match heavy { 0 => w.freshness = 1.0, 1 => w.completion = 1.0, 2 => w.engagement = 1.0, 3 => w.affinity = 1.0, _ => w.embedding = 1.0 }
            prop_assert!((score(&w, &s) - values[heavy]).abs() < 1e-12);
        }

        #[test]
        fn signals_are_bounded_and_monotonic(views in 0.0f64..1e6, ratio in 0.0f64..=1.0, likes in 0.0f64..1e6, extra in 0.0f64..1e3,
                                             aff in -10.0f64..100.0, age in -1e6f64..1e9) {
            let prof = RankingProfile::default();
            let s = stats(views, ratio * views, likes);
            let c = completion(&prof, &s);
            let e = engagement(&prof, &s);
            let more_likes = engagement(&prof, &stats(views, ratio * views, likes + extra));
            let better_watch = completion(&prof, &stats(views + extra, ratio * views + extra, likes));
            prop_assert!((0.0..=1.0).contains(&c) && (0.0..=1.0).contains(&e));
            prop_assert!(more_likes >= e - 1e-12);
            prop_assert!(better_watch >= c - 1e-12);
            let a = affinity(&prof, aff, aff, false, false);
            prop_assert!((0.0..=1.0).contains(&a));
            prop_assert!(affinity(&prof, aff + extra, aff, false, false) >= a - 1e-12);
            let f = freshness(&prof, ContentType::Short, age);
            prop_assert!((0.0..=1.0).contains(&f));
            prop_assert!(freshness(&prof, ContentType::Short, age + extra) <= f + 1e-12);
        }
    }
}
