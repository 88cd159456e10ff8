//! The ranking profile: weights of the six signals and the knobs around them.
//!
//! Every field has a default, so `{}` is a complete profile and a file only names what it changes.
//! The defaults depend on the profile's format [`ProfileVersion`]: a document without `version`
//! is a version-1 profile (written for five signals) and keeps version-1 defaults (no brevity, no
//! affinity lift, the old knobs), so an old file means what it meant; `version: 2` opts in to the
//! version-2 defaults. The built-in profile (no file at all) is [`RankingProfile::default`], a
//! version-2 profile. A version-1 profile is written back without the fields that did not exist
//! in version 1 when they hold their version-1 defaults, so its serialization (and every
//! revision hash computed from it) is the one version 1 had. Unknown fields are rejected so that a
//! typo never silently does nothing.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ProfileError;

/// The profile format's version: which defaults fill the fields a document leaves out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(try_from = "u8", into = "u8")]
pub enum ProfileVersion {
    /// Five signals: no brevity (weight 0), no affinity lift, weights freshness 0.15, completion
    /// 0.40, engagement 0.25, affinity 0.15, embedding 0.05, a flat completion prior `priorMean`
    /// 0.3, affinity saturation 3 and follow boost 0.3. The default of a document without
    /// `version`.
    V1,
    /// Six signals and the defaults chosen on the val split (see `eval/README.md`).
    V2,
}

impl TryFrom<u8> for ProfileVersion {
    type Error = String;

    fn try_from(v: u8) -> Result<Self, Self::Error> {
        match v {
            1 => Ok(ProfileVersion::V1),
            2 => Ok(ProfileVersion::V2),
            other => Err(format!(
                "unknown profile version {other}: this server reads versions 1 and 2"
            )),
        }
    }
}

impl From<ProfileVersion> for u8 {
    fn from(v: ProfileVersion) -> u8 {
        match v {
            ProfileVersion::V1 => 1,
            ProfileVersion::V2 => 2,
        }
    }
}

/// `bucketPriorWeight` of version 1: so large that the duration buckets' counters do not move the
/// prior, which stays at `priorMean` (version 1's flat prior).
pub const V1_BUCKET_PRIOR_WEIGHT: f64 = 1e12;

/// Weights and knobs of one ranking configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "RankingProfile"))]
#[serde(
    remote = "Self",
    default,
    rename_all = "camelCase",
    deny_unknown_fields
)]
pub struct RankingProfile {
    /// Format version: 1 (the default of a document without it) or 2; it decides the defaults of
    /// every field the document leaves out.
    pub version: ProfileVersion,
    /// Name reported in `feed_ranking_profile_info{profile=...}` (default `default`).
    pub name: String,
    /// Weight of each signal in the score (score = Σ weight × signal / Σ weight).
    pub weights: SignalWeights,
    /// Freshness decay.
    pub freshness: FreshnessKnobs,
    /// Smoothing of the completion signal.
    pub completion: CompletionKnobs,
    /// Decay of the brevity signal with the video's duration.
    pub brevity: BrevityKnobs,
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
    /// The built-in profile: version 2.
    fn default() -> Self {
        Self {
            version: ProfileVersion::V2,
            name: "default".to_owned(),
            weights: SignalWeights::default(),
            freshness: FreshnessKnobs::default(),
            completion: CompletionKnobs::default(),
            brevity: BrevityKnobs::default(),
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

/// The ranking signals, each a number in [0, 1] computed per (user, video). This list is the one
/// place that names them: weights, explanations and any weight fitter iterate over [`Signal::ALL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// How recently the video was published.
    Freshness,
    /// How often the video is watched to the end when shown.
    Completion,
    /// Likes, shares and comments per play.
    Engagement,
    /// The user's learned interest in the creator and topics, and the social boosts.
    Affinity,
    /// Similarity of the video to the user's taste vector.
    Embedding,
    /// How short the video is.
    Brevity,
}

impl Signal {
    /// Every signal, in contract order.
    pub const ALL: [Signal; 6] = [
        Signal::Freshness,
        Signal::Completion,
        Signal::Engagement,
        Signal::Affinity,
        Signal::Embedding,
        Signal::Brevity,
    ];

    /// The signal's name in profiles and responses.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Freshness => "freshness",
            Signal::Completion => "completion",
            Signal::Engagement => "engagement",
            Signal::Affinity => "affinity",
            Signal::Embedding => "embedding",
            Signal::Brevity => "brevity",
        }
    }
}

/// Implements `get(Signal) -> f64` and `get_mut(Signal) -> &mut f64` for a struct holding one
/// `f64` field per signal, named like the signal (weights, values, contributions): code that
/// iterates over [`Signal::ALL`] then never lists the fields again.
#[macro_export]
macro_rules! per_signal_accessors {
    ($ty:ty) => {
        impl $ty {
            /// The number of `signal`.
            pub fn get(&self, signal: $crate::Signal) -> f64 {
                match signal {
                    $crate::Signal::Freshness => self.freshness,
                    $crate::Signal::Completion => self.completion,
                    $crate::Signal::Engagement => self.engagement,
                    $crate::Signal::Affinity => self.affinity,
                    $crate::Signal::Embedding => self.embedding,
                    $crate::Signal::Brevity => self.brevity,
                }
            }

            /// The number of `signal`, for writing.
            pub fn get_mut(&mut self, signal: $crate::Signal) -> &mut f64 {
                match signal {
                    $crate::Signal::Freshness => &mut self.freshness,
                    $crate::Signal::Completion => &mut self.completion,
                    $crate::Signal::Engagement => &mut self.engagement,
                    $crate::Signal::Affinity => &mut self.affinity,
                    $crate::Signal::Embedding => &mut self.embedding,
                    $crate::Signal::Brevity => &mut self.brevity,
                }
            }
        }
    };
}

/// Weight of each signal. Non-negative; at least one must be positive. Only ratios matter: the
/// score divides by the sum of the weights.
///
/// The defaults were chosen on the KuaiRand history days (history 2022-04-25..27, target
/// 2022-04-28; `scripts/eval.sh --split val`), never on the evaluation's target days; see
/// `eval/README.md`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct SignalWeights {
    /// Exponential decay of the video's age: how much a product favours new uploads over proven
    /// older ones (default 0.20).
    pub freshness: f64,
    /// Smoothed completes per impression toward the finish rate of the video's duration bucket:
    /// the best single predictor of what a user will watch to the end (default 0.30).
    pub completion: f64,
    /// Smoothed likes, shares and comments per play: what makes people interact, not only watch
    /// (default 0.10).
    pub engagement: f64,
    /// The user's decayed affinity to the creator and tags, plus follow and friend boosts: how
    /// personal the feed is (default 0.30; see also `affinity.lift`).
    pub affinity: f64,
    /// Cosine similarity of the video to the user's taste vector (default 0.05).
    pub embedding: f64,
    /// `2^(-duration / brevity.halfLifeSeconds)`: a preference for short videos, which are
    /// finished far more often (default 0.05; 0 for a catalog of long-form content).
    pub brevity: f64,
}

impl Default for SignalWeights {
    fn default() -> Self {
        Self {
            freshness: 0.20,
            completion: 0.30,
            engagement: 0.10,
            affinity: 0.30,
            embedding: 0.05,
            brevity: 0.05,
        }
    }
}

crate::per_signal_accessors!(SignalWeights);

impl SignalWeights {
    /// The weights as `(signal name, weight)` pairs, in contract order.
    pub fn named(&self) -> [(&'static str, f64); 6] {
        Signal::ALL.map(|s| (s.name(), self.get(s)))
    }

    /// Sum of the weights.
    pub fn total(&self) -> f64 {
        Signal::ALL.iter().map(|s| self.get(*s)).sum()
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

/// `completion = (min(completes, shown) + prior × priorWeight) / (shown + priorWeight)` with
/// `shown = max(impressions, views)` and `prior = (bucketCompletes + priorMean × bucketPriorWeight)
/// / (bucketImpressions + bucketPriorWeight)`, the global finish rate of the video's duration
/// bucket (learned online from events).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct CompletionKnobs {
    /// Finish rate assumed for a duration bucket that has no impressions yet (default 0.15).
    pub prior_mean: f64,
    /// How many impressions the duration bucket's rate is worth in a video's estimate: a video is
    /// judged on its own completes once it has been shown much more often than this (default 20).
    pub prior_weight: f64,
    /// How many impressions `priorMean` is worth in a bucket's rate (default 100).
    pub bucket_prior_weight: f64,
}

impl Default for CompletionKnobs {
    fn default() -> Self {
        Self {
            prior_mean: 0.15,
            prior_weight: 20.0,
            bucket_prior_weight: 100.0,
        }
    }
}

/// `brevity = 2^(-duration / halfLifeSeconds)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct BrevityKnobs {
    /// Duration at which the signal is 0.5 (default 60 s).
    pub half_life_seconds: f64,
}

impl Default for BrevityKnobs {
    fn default() -> Self {
        Self {
            half_life_seconds: 60.0,
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
/// + followBoost×followed + friendBoost×friendEngaged)`; besides its weight, the signal multiplies
/// the whole score by `(1 + lift × affinity) / (1 + lift)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct AffinityKnobs {
    /// Weight of the decayed affinity to the creator (default 0.6).
    pub creator_weight: f64,
    /// Weight of the mean decayed affinity to the video's tags (default 0.4).
    pub tag_weight: f64,
    /// Decayed affinity at which the signal reaches 63% (default 15: a dozen completes and likes
    /// of a creator or topic within a week; a lower value saturates for every active user).
    pub saturation: f64,
    /// Added when the user follows the creator (default 0.5: a follow is an explicit interest).
    pub follow_boost: f64,
    /// Added when a friend engaged with the video (default 0.2).
    pub friend_boost: f64,
    /// Multiplicative lift: a video of maximal affinity scores `1 + lift` times one of none with
    /// the same other signals, so a strong, explicit interest can outrank generic freshness
    /// (default 1; 0 makes affinity a plain weighted signal).
    pub lift: f64,
}

impl Default for AffinityKnobs {
    fn default() -> Self {
        Self {
            creator_weight: 0.6,
            tag_weight: 0.4,
            saturation: 15.0,
            follow_boost: 0.5,
            friend_boost: 0.2,
            lift: 1.0,
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

impl RankingProfile {
    /// The profile a document of `version` naming no field stands for.
    pub fn defaults(version: ProfileVersion) -> Self {
        match version {
            ProfileVersion::V2 => Self::default(),
            ProfileVersion::V1 => {
                let v2 = Self::default();
                Self {
                    version: ProfileVersion::V1,
                    weights: SignalWeights {
                        freshness: 0.15,
                        completion: 0.40,
                        engagement: 0.25,
                        affinity: 0.15,
                        embedding: 0.05,
                        brevity: 0.0,
                    },
                    completion: CompletionKnobs {
                        prior_mean: 0.3,
                        prior_weight: 20.0,
                        bucket_prior_weight: V1_BUCKET_PRIOR_WEIGHT,
                    },
                    affinity: AffinityKnobs {
                        saturation: 3.0,
                        follow_boost: 0.3,
                        lift: 0.0,
                        ..v2.affinity
                    },
                    ..v2
                }
            }
        }
    }
}

/// Fields that version 1 did not have, as paths; a version-1 profile is written without them
/// while they hold their version-1 defaults.
const V2_ONLY_FIELDS: [&[&str]; 4] = [
    &["weights", "brevity"],
    &["completion", "bucketPriorWeight"],
    &["brevity"],
    &["affinity", "lift"],
];

fn yaml_error<E: serde::de::Error>(e: serde_yaml::Error) -> E {
    E::custom(e.to_string())
}

/// Writes `over` onto `base`: mappings field by field, anything else replaced.
fn merge(base: &mut serde_yaml::Value, over: serde_yaml::Value) {
    match (base, over) {
        (serde_yaml::Value::Mapping(b), serde_yaml::Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

fn remove_path(value: &mut serde_yaml::Value, path: &[&str]) -> Option<serde_yaml::Value> {
    let (last, parents) = path.split_last()?;
    let mut at = value;
    for key in parents {
        at = at.get_mut(*key)?;
    }
    at.as_mapping_mut()?.shift_remove(*last)
}

fn get_path<'a>(value: &'a serde_yaml::Value, path: &[&str]) -> Option<&'a serde_yaml::Value> {
    path.iter().try_fold(value, |at, key| at.get(*key))
}

impl<'de> Deserialize<'de> for RankingProfile {
    /// Reads `version` (absent: 1), then fills every field the document leaves out with that
    /// version's defaults.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let document = serde_yaml::Value::deserialize(deserializer)?;
        let version = match document.get("version") {
            None => ProfileVersion::V1,
            Some(v) => ProfileVersion::deserialize(v.clone()).map_err(yaml_error::<D::Error>)?,
        };
        let mut full = RankingProfile::serialize(
            &RankingProfile::defaults(version),
            serde_yaml::value::Serializer,
        )
        .map_err(yaml_error::<D::Error>)?;
        if !document.is_mapping() {
            // Not a mapping: let the derived parser say what it expected.
            return RankingProfile::deserialize(document).map_err(yaml_error::<D::Error>);
        }
        merge(&mut full, document);
        RankingProfile::deserialize(full).map_err(yaml_error::<D::Error>)
    }
}

impl Serialize for RankingProfile {
    /// Every field; a version-1 profile without `version` and without the version-2 fields that
    /// hold their version-1 defaults, as version 1 wrote it.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.version == ProfileVersion::V2 {
            return RankingProfile::serialize(self, serializer);
        }
        let to_value = |p: &RankingProfile| {
            RankingProfile::serialize(p, serde_yaml::value::Serializer)
                .map_err(|e| serde::ser::Error::custom(e.to_string()))
        };
        let mut value: serde_yaml::Value = to_value(self)?;
        let defaults: serde_yaml::Value = to_value(&RankingProfile::defaults(ProfileVersion::V1))?;
        remove_path(&mut value, &["version"]);
        for path in V2_ONLY_FIELDS {
            if get_path(&value, path) == get_path(&defaults, path) {
                remove_path(&mut value, path);
            }
        }
        value.serialize(serializer)
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
        check(
            self.weights.total().is_finite(),
            "weights",
            &format!(
                "the weights must add up to a finite number, got {}",
                self.weights.total()
            ),
        )?;
        let h = &self.freshness.half_life_hours;
        positive(h.short, "freshness.halfLifeHours.short")?;
        positive(h.long, "freshness.halfLifeHours.long")?;
        positive(h.live, "freshness.halfLifeHours.live")?;
        unit(self.completion.prior_mean, "completion.priorMean")?;
        non_negative(self.completion.prior_weight, "completion.priorWeight")?;
        positive(
            self.completion.bucket_prior_weight,
            "completion.bucketPriorWeight",
        )?;
        positive(self.brevity.half_life_seconds, "brevity.halfLifeSeconds")?;
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
        check(
            a.lift.is_finite() && (0.0..=100.0).contains(&a.lift),
            "affinity.lift",
            &format!("must be between 0 and 100, got {}", a.lift),
        )?;
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
