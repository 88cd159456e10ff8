//! The ranking profile: weights of the five signals and the knobs around them.
//!
//! Every field has a default (the roadmap's values), so `{}` is a complete profile and a file only
//! names what it changes. Unknown fields are rejected so that a typo never silently does nothing.

use serde::{Deserialize, Serialize};

use crate::ProfileError;

/// Weights and knobs of one ranking configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct RankingProfile {
    /// Name reported in `feed_ranking_profile_info{profile=...}` (default `default`).
    pub name: String,
    /// Weight of each signal in the score (score = Σ weight × signal / Σ weight).
    pub weights: SignalWeights,
    /// Freshness decay.
    pub freshness: FreshnessKnobs,
    /// Smoothing of the completion signal.
    pub completion: CompletionKnobs,
    /// Smoothing of the engagement signal.
    pub engagement: EngagementKnobs,
    /// Mixing of creator and tag affinity and the social boosts.
    pub affinity: AffinityKnobs,
    /// Embedding similarity.
    pub embedding: EmbeddingKnobs,
    /// How many candidates each source contributes.
    pub candidates: CandidateBudgets,
    /// Which candidates are removed before scoring.
    pub filters: FilterKnobs,
    /// Re-ranking for diversity.
    pub diversity: DiversityKnobs,
    /// Page cache time-to-live.
    pub cache: CacheKnobs,
}

impl Default for RankingProfile {
    fn default() -> Self {
        Self {
            name: "default".to_owned(),
            weights: SignalWeights::default(),
            freshness: FreshnessKnobs::default(),
            completion: CompletionKnobs::default(),
            engagement: EngagementKnobs::default(),
            affinity: AffinityKnobs::default(),
            embedding: EmbeddingKnobs::default(),
            candidates: CandidateBudgets::default(),
            filters: FilterKnobs::default(),
            diversity: DiversityKnobs::default(),
            cache: CacheKnobs::default(),
        }
    }
}

/// Weight of each signal. Non-negative; at least one must be positive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct SignalWeights {
    /// Exponential decay of the video's age (default 0.15).
    pub freshness: f64,
    /// Smoothed mean watch ratio (default 0.40).
    pub completion: f64,
    /// Smoothed likes, shares and comments per view (default 0.25).
    pub engagement: f64,
    /// The user's decayed affinity to the creator and tags (default 0.15).
    pub affinity: f64,
    /// Cosine similarity of the video to the user's taste vector (default 0.05).
    pub embedding: f64,
}

impl Default for SignalWeights {
    fn default() -> Self {
        Self {
            freshness: 0.15,
            completion: 0.40,
            engagement: 0.25,
            affinity: 0.15,
            embedding: 0.05,
        }
    }
}

impl SignalWeights {
    /// The weights as `(signal name, weight)` pairs, in contract order.
    pub fn named(&self) -> [(&'static str, f64); 5] {
        [
            ("freshness", self.freshness),
            ("completion", self.completion),
            ("engagement", self.engagement),
            ("affinity", self.affinity),
            ("embedding", self.embedding),
        ]
    }

    /// Sum of the weights.
    pub fn total(&self) -> f64 {
        self.named().iter().map(|(_, w)| w).sum()
    }
}

/// A number of hours per content type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContentTypeHours {
    /// Short videos.
    pub short: f64,
    /// Long videos.
    pub long: f64,
    /// Live streams (and their replays).
    pub live: f64,
}

/// A number of seconds per content type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContentTypeSeconds {
    /// Short videos.
    pub short: u32,
    /// Long videos.
    pub long: u32,
    /// Live streams.
    pub live: u32,
}

/// `freshness = 2^(-age / halfLife)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct FreshnessKnobs {
    /// Half-life of freshness in hours, per content type (default short 24, long 72, live 2).
    pub half_life_hours: ContentTypeHours,
}

impl Default for FreshnessKnobs {
    fn default() -> Self {
        Self {
            half_life_hours: ContentTypeHours {
                short: 24.0,
                long: 72.0,
                live: 2.0,
            },
        }
    }
}

/// `completion = (Σ min(watch ratio, 1) + priorMean × priorWeight) / (views + priorWeight)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct CompletionKnobs {
    /// Completion assumed for a video nobody has watched yet (default 0.3).
    pub prior_mean: f64,
    /// How many views the prior is worth (default 20).
    pub prior_weight: f64,
}

impl Default for CompletionKnobs {
    fn default() -> Self {
        Self {
            prior_mean: 0.3,
            prior_weight: 20.0,
        }
    }
}

/// `rate = (likes×likeWeight + shares×shareWeight + comments×commentWeight + priorRate×priorWeight)
/// / (views + priorWeight)`, then `engagement = rate / (rate + halfSaturation)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct EngagementKnobs {
    /// Weighted interactions per view assumed for a new video (default 0.02).
    pub prior_rate: f64,
    /// How many views the prior is worth (default 50).
    pub prior_weight: f64,
    /// Weight of a like (default 1).
    pub like_weight: f64,
    /// Weight of a share (default 2).
    pub share_weight: f64,
    /// Weight of a comment (default 1.5).
    pub comment_weight: f64,
    /// The rate at which the signal reaches 0.5 (default 0.1).
    pub half_saturation: f64,
}

impl Default for EngagementKnobs {
    fn default() -> Self {
        Self {
            prior_rate: 0.02,
            prior_weight: 50.0,
            like_weight: 1.0,
            share_weight: 2.0,
            comment_weight: 1.5,
            half_saturation: 0.1,
        }
    }
}

/// `affinity = min(1, 1 − e^(−(creatorWeight×creator + tagWeight×meanTag) / saturation)
/// + followBoost×followed + friendBoost×friendEngaged)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct AffinityKnobs {
    /// Weight of the decayed affinity to the creator (default 0.6).
    pub creator_weight: f64,
    /// Weight of the mean decayed affinity to the video's tags (default 0.4).
    pub tag_weight: f64,
    /// Decayed affinity at which the signal reaches 63% (default 3).
    pub saturation: f64,
    /// Added when the user follows the creator (default 0.3).
    pub follow_boost: f64,
    /// Added when a friend engaged with the video (default 0.2).
    pub friend_boost: f64,
}

impl Default for AffinityKnobs {
    fn default() -> Self {
        Self {
            creator_weight: 0.6,
            tag_weight: 0.4,
            saturation: 3.0,
            follow_boost: 0.3,
            friend_boost: 0.2,
        }
    }
}

/// `embedding = (1 + cos(taste, video)) / 2`, or `neutral` when either vector is missing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct EmbeddingKnobs {
    /// Signal value when the user has no taste vector or the video no embedding (default 0.5).
    pub neutral: f64,
}

impl Default for EmbeddingKnobs {
    fn default() -> Self {
        Self { neutral: 0.5 }
    }
}

/// How many candidates each source may contribute before filtering and scoring.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct CandidateBudgets {
    /// Newest videos of each followed creator (default 10 per creator).
    pub per_followed_creator: u32,
    /// Recently engaged videos of each friend (default 10 per friend).
    pub per_friend: u32,
    /// Trending in the user's region and language (default 200).
    pub trending: u32,
    /// Newest uploads in the user's language (default 100).
    pub fresh: u32,
    /// Videos tagged like the user's strongest tags (default 150).
    pub similar: u32,
    /// Least-shown videos, for exploration (default 50).
    pub long_tail: u32,
    /// Upper bound on distinct candidates scored per request (default 600).
    pub max_candidates: u32,
}

impl Default for CandidateBudgets {
    fn default() -> Self {
        Self {
            per_followed_creator: 10,
            per_friend: 10,
            trending: 200,
            fresh: 100,
            similar: 150,
            long_tail: 50,
            max_candidates: 600,
        }
    }
}

/// Candidate filters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterKnobs {
    /// Drop videos the user has already been shown (default true).
    pub exclude_seen: bool,
    /// Keep only videos in the user's language, when the user has one (default true).
    pub match_language: bool,
    /// Keep only videos from the user's region, when the user has one (default false).
    pub match_region: bool,
}

impl Default for FilterKnobs {
    fn default() -> Self {
        Self {
            exclude_seen: true,
            match_language: true,
            match_region: false,
        }
    }
}

/// Re-ranking for diversity, applied greedily to the scored list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct DiversityKnobs {
    /// At most this many videos of one creator in any window of `window` items (default 2).
    pub creator_cap: u32,
    /// Window for the creator cap (default 10).
    pub window: u32,
    /// Two videos sharing their first tag stand at least this many slots apart when possible
    /// (default 3; 1 disables).
    pub similar_spread: u32,
    /// Share of slots reserved for long-tail videos (default 0.1).
    pub long_tail_share: f64,
}

impl Default for DiversityKnobs {
    fn default() -> Self {
        Self {
            creator_cap: 2,
            window: 10,
            similar_spread: 3,
            long_tail_share: 0.1,
        }
    }
}

/// Page cache time-to-live; a page lives as long as its shortest-lived content type allows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct CacheKnobs {
    /// Seconds per content type (default short 120, long 600, live 10).
    pub ttl_seconds: ContentTypeSeconds,
}

impl Default for CacheKnobs {
    fn default() -> Self {
        Self {
            ttl_seconds: ContentTypeSeconds {
                short: 120,
                long: 600,
                live: 10,
            },
        }
    }
}

fn check(ok: bool, field: &str, message: &str) -> Result<(), ProfileError> {
    if ok {
        Ok(())
    } else {
        Err(ProfileError::invalid(field, message))
    }
}

fn non_negative(value: f64, field: &str) -> Result<(), ProfileError> {
    check(
        value.is_finite() && value >= 0.0,
        field,
        &format!("must be a finite number >= 0, got {value}"),
    )
}

fn positive(value: f64, field: &str) -> Result<(), ProfileError> {
    check(
        value.is_finite() && value > 0.0,
        field,
        &format!("must be a finite number > 0, got {value}"),
    )
}

fn unit(value: f64, field: &str) -> Result<(), ProfileError> {
    check(
        (0.0..=1.0).contains(&value),
        field,
        &format!("must be between 0 and 1, got {value}"),
    )
}

impl RankingProfile {
    /// Checks every value range; the error names the first offending field.
    pub fn validate(&self) -> Result<(), ProfileError> {
        check(!self.name.trim().is_empty(), "name", "must not be empty")?;
        for (name, w) in self.weights.named() {
            non_negative(w, &format!("weights.{name}"))?;
        }
        check(
            self.weights.total() > 0.0,
            "weights",
            "at least one weight must be greater than 0",
        )?;
        let h = &self.freshness.half_life_hours;
        positive(h.short, "freshness.halfLifeHours.short")?;
        positive(h.long, "freshness.halfLifeHours.long")?;
        positive(h.live, "freshness.halfLifeHours.live")?;
        unit(self.completion.prior_mean, "completion.priorMean")?;
        non_negative(self.completion.prior_weight, "completion.priorWeight")?;
        let e = &self.engagement;
        non_negative(e.prior_rate, "engagement.priorRate")?;
        non_negative(e.prior_weight, "engagement.priorWeight")?;
        non_negative(e.like_weight, "engagement.likeWeight")?;
        non_negative(e.share_weight, "engagement.shareWeight")?;
        non_negative(e.comment_weight, "engagement.commentWeight")?;
        positive(e.half_saturation, "engagement.halfSaturation")?;
        let a = &self.affinity;
        non_negative(a.creator_weight, "affinity.creatorWeight")?;
        non_negative(a.tag_weight, "affinity.tagWeight")?;
        positive(a.saturation, "affinity.saturation")?;
        unit(a.follow_boost, "affinity.followBoost")?;
        unit(a.friend_boost, "affinity.friendBoost")?;
        unit(self.embedding.neutral, "embedding.neutral")?;
        check(
            self.candidates.max_candidates >= 1,
            "candidates.maxCandidates",
            "must be at least 1",
        )?;
        check(
            self.candidates.max_candidates <= 5_000,
            "candidates.maxCandidates",
            "must be at most 5000",
        )?;
        let d = &self.diversity;
        check(
            d.creator_cap >= 1,
            "diversity.creatorCap",
            "must be at least 1",
        )?;
        check(
            d.window >= d.creator_cap,
            "diversity.window",
            "must be at least creatorCap",
        )?;
        check(
            d.similar_spread >= 1,
            "diversity.similarSpread",
            "must be at least 1",
        )?;
        check(
            (0.0..=0.5).contains(&d.long_tail_share),
            "diversity.longTailShare",
            &format!("must be between 0 and 0.5, got {}", d.long_tail_share),
        )?;
        Ok(())
    }
}
