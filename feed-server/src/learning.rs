//! What an engagement event teaches: pure functions from events to statistic and affinity deltas.
//!
//! Decayed values use the event's own timestamp, so replaying history gives the same state as
//! living through it, and events arriving out of order give the same result as in order: a decayed
//! value at time `t` is `Σ wₑ · 2^(−(t − tsₑ) / halfLife)` over the events e that added `wₑ`.
//!
//! | learned | from each event |
//! | --- | --- |
//! | video counters ([`VideoStats`]) | impression +1 impression; view/skip +1 play and +watch ratio; complete, like, share, comment, skip +1 of their own |
//! | duration-bucket counters ([`DurationStats`], the completion prior) | impression +1 impression, view or skip +1 play, complete +1 complete, in the bucket of the video's duration ([`duration_bucket`]) |
//! | affinity `c:{creator}`, `t:{tag}` (decayed, 7-day half-life) | + [`affinity_weight`]: view +watch ratio, complete +1, like/comment +2, share +3, skip −0.5 |
//! | taste vector (decayed) | + affinity weight × the video's normalised embedding, for positive weights |
//! | trending per UTC day, in every [`TrendingScope`] of the video (all, its language, its region) | + [`trending_weight`]: view +watch ratio, complete +1, like/comment +2, share +3 |
//! | seen set, recent engagements, exposures, last activity | impressions/plays; positive engagements (views of ratio ≥ 0.5); impressions; every event |
//! | the exposure log ([`crate::exposure`]) | every event, as accepted |

pub mod aggregates;
pub mod scores;
pub mod shared;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::model::{Event, EventType, Video};

/// Half-life of the user's creator/tag affinities and taste vector (7 days).
pub const AFFINITY_HALF_LIFE_SECS: f64 = 7.0 * 24.0 * 3600.0;
/// How many seen videos are remembered per user for the seen filter.
pub const SEEN_MEMORY: usize = 5_000;
/// How many recently engaged videos are remembered per user (friends' activity source).
pub const RECENT_MEMORY: usize = 50;

/// A value that halves every `half_life` seconds, stored with the time it was last updated.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Decayed {
    /// Value as of `at`.
    pub value: f64,
    /// Unix seconds of the last update.
    pub at: f64,
}

impl Decayed {
    /// Adds `weight` happening at `ts`: the stored value is moved to the later of the two times.
    /// Commutative: the order in which additions arrive does not change the result.
    pub fn add(self, weight: f64, ts: f64, half_life: f64) -> Self {
        if self.value == 0.0 && self.at == 0.0 {
            return Self {
                value: weight,
                at: ts,
            };
        }
        if ts >= self.at {
            Self {
                value: self.value * decay(ts - self.at, half_life) + weight,
                at: ts,
            }
        } else {
            Self {
                value: self.value + weight * decay(self.at - ts, half_life),
                at: self.at,
            }
        }
    }

    /// The value at time `t` (no growth for `t` before the last update).
    pub fn value_at(self, t: f64, half_life: f64) -> f64 {
        self.value * decay((t - self.at).max(0.0), half_life)
    }
}

/// `2^(-elapsed / half_life)`.
pub fn decay(elapsed: f64, half_life: f64) -> f64 {
    (-elapsed / half_life).exp2()
}

/// How much an event moves the user's affinity to the video's creator and tags.
pub fn affinity_weight(kind: EventType, watch_ratio: f64) -> f64 {
    match kind {
        EventType::Impression => 0.0,
        EventType::View => watch_ratio,
        EventType::Complete => 1.0,
        EventType::Like | EventType::Comment => 2.0,
        EventType::Share => 3.0,
        EventType::Skip => -0.5,
    }
}

/// How much an event adds to the video's trending score in its region and language.
pub fn trending_weight(kind: EventType, watch_ratio: f64) -> f64 {
    match kind {
        EventType::Impression | EventType::Skip => 0.0,
        EventType::View => watch_ratio,
        EventType::Complete => 1.0,
        EventType::Like | EventType::Comment => 2.0,
        EventType::Share => 3.0,
    }
}

/// Watch time over duration, capped at 1.
pub fn watch_ratio(watch_ms: Option<f64>, duration_ms: u64) -> f64 {
    match watch_ms {
        Some(w) if duration_ms > 0 => (w / duration_ms as f64).clamp(0.0, 1.0),
        _ => 0.0,
    }
}

/// Counters of one video.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VideoStats {
    /// Times shown.
    pub impressions: f64,
    /// Plays (views and skips).
    pub views: f64,
    /// Sum over plays of min(watch ratio, 1).
    pub watch_ratio_sum: f64,
    /// Plays to the end.
    pub completes: f64,
    /// Likes.
    pub likes: f64,
    /// Shares.
    pub shares: f64,
    /// Comments.
    pub comments: f64,
    /// Skips.
    pub skips: f64,
}

impl VideoStats {
    /// Field names as stored (Redis hash fields).
    pub const FIELDS: [&'static str; 8] = [
        "impressions",
        "views",
        "watch_ratio_sum",
        "completes",
        "likes",
        "shares",
        "comments",
        "skips",
    ];

    /// Values in [`Self::FIELDS`] order.
    pub fn values(&self) -> [f64; 8] {
        [
            self.impressions,
            self.views,
            self.watch_ratio_sum,
            self.completes,
            self.likes,
            self.shares,
            self.comments,
            self.skips,
        ]
    }

    /// Stats from values in [`Self::FIELDS`] order (the inverse of [`Self::values`]).
    pub fn from_values(values: [f64; 8]) -> Self {
        Self::from_pairs(Self::FIELDS.into_iter().zip(values))
    }

    /// Builds stats from `(field, value)` pairs; unknown fields are ignored.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, f64)>) -> Self {
        let mut s = Self::default();
        for (k, v) in pairs {
            match k {
                "impressions" => s.impressions = v,
                "views" => s.views = v,
                "watch_ratio_sum" => s.watch_ratio_sum = v,
                "completes" => s.completes = v,
                "likes" => s.likes = v,
                "shares" => s.shares = v,
                "comments" => s.comments = v,
                "skips" => s.skips = v,
                _ => {}
            }
        }
        s
    }

    /// Adds another set of counters.
    pub fn merge(&mut self, other: &VideoStats) {
        self.impressions += other.impressions;
        self.views += other.views;
        self.watch_ratio_sum += other.watch_ratio_sum;
        self.completes += other.completes;
        self.likes += other.likes;
        self.shares += other.shares;
        self.comments += other.comments;
        self.skips += other.skips;
    }

    /// The counters one event adds.
    pub fn of_event(kind: EventType, ratio: f64) -> Self {
        let mut s = Self::default();
        match kind {
            EventType::Impression => s.impressions = 1.0,
            EventType::View => {
                s.views = 1.0;
                s.watch_ratio_sum = ratio;
            }
            EventType::Complete => s.completes = 1.0,
            EventType::Like => s.likes = 1.0,
            EventType::Share => s.shares = 1.0,
            EventType::Comment => s.comments = 1.0,
            EventType::Skip => {
                s.skips = 1.0;
                s.views = 1.0;
                s.watch_ratio_sum = ratio;
            }
        }
        s
    }
}

/// Upper bounds (exclusive, seconds) of the duration buckets of the completion prior; the last
/// bucket holds everything longer. Finishing rates differ by a factor of ~7 between a 10-second clip
/// and a 5-minute video, so the prior of a new video is the rate of its own bucket.
pub const DURATION_BUCKET_BOUNDS_SECS: [f64; 7] = [7.0, 15.0, 30.0, 60.0, 120.0, 240.0, 600.0];
/// Number of duration buckets.
pub const DURATION_BUCKETS: usize = DURATION_BUCKET_BOUNDS_SECS.len() + 1;

/// The duration bucket of a video `duration_ms` long (index into [`DurationStats`]).
pub fn duration_bucket(duration_ms: u64) -> usize {
    let secs = duration_ms as f64 / 1000.0;
    DURATION_BUCKET_BOUNDS_SECS
        .iter()
        .position(|&bound| secs < bound)
        .unwrap_or(DURATION_BUCKETS - 1)
}

/// Global impressions, plays and completes of one duration bucket, learned online from events:
/// the prior of the completion signal for the bucket's videos.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BucketStats {
    /// Impressions of the bucket's videos.
    pub impressions: f64,
    /// Plays (views and skips) of the bucket's videos: a client that sends no impressions still
    /// shows what it plays, so the prior divides by `max(impressions, plays)` like the per-video
    /// estimate.
    pub plays: f64,
    /// Completes of the bucket's videos.
    pub completes: f64,
}

/// One counter of a duration bucket, as named in storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BucketCounter {
    /// [`BucketStats::impressions`].
    Impressions,
    /// [`BucketStats::plays`].
    Plays,
    /// [`BucketStats::completes`].
    Completes,
}

impl BucketCounter {
    /// Every counter.
    pub const ALL: [BucketCounter; 3] = [
        BucketCounter::Impressions,
        BucketCounter::Plays,
        BucketCounter::Completes,
    ];

    /// The counter's name in stored field names.
    pub fn name(self) -> &'static str {
        match self {
            BucketCounter::Impressions => "impressions",
            BucketCounter::Plays => "plays",
            BucketCounter::Completes => "completes",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl BucketStats {
    /// Adds another set of counters.
    pub fn merge(&mut self, other: &BucketStats) {
        for c in BucketCounter::ALL {
            *self.get_mut(c) += other.get(c);
        }
    }

    /// The value of one counter.
    pub fn get(&self, counter: BucketCounter) -> f64 {
        match counter {
            BucketCounter::Impressions => self.impressions,
            BucketCounter::Plays => self.plays,
            BucketCounter::Completes => self.completes,
        }
    }

    /// One counter, for writing.
    pub fn get_mut(&mut self, counter: BucketCounter) -> &mut f64 {
        match counter {
            BucketCounter::Impressions => &mut self.impressions,
            BucketCounter::Plays => &mut self.plays,
            BucketCounter::Completes => &mut self.completes,
        }
    }

    /// How often the bucket's videos were shown: `max(impressions, plays)`.
    pub fn shown(&self) -> f64 {
        self.impressions.max(self.plays).max(0.0)
    }
}

/// [`BucketStats`] of every duration bucket.
pub type DurationStats = [BucketStats; DURATION_BUCKETS];

/// Hash field of a bucket counter as stored (Redis hash `dur`): `{bucket}:impressions`,
/// `{bucket}:plays`, `{bucket}:completes`.
pub fn bucket_field(bucket: usize, counter: BucketCounter) -> String {
    format!("{bucket}:{}", counter.name())
}

/// Parses `(field, value)` pairs written under [`bucket_field`] names; unknown fields are ignored.
pub fn duration_stats_from_pairs<'a>(
    pairs: impl IntoIterator<Item = (&'a str, f64)>,
) -> DurationStats {
    let mut out = DurationStats::default();
    for (field, value) in pairs {
        let Some((bucket, kind)) = field.split_once(':') else {
            continue;
        };
        let Some(b) = bucket.parse::<usize>().ok().and_then(|b| out.get_mut(b)) else {
            continue;
        };
        if let Some(counter) = BucketCounter::parse(kind) {
            *b.get_mut(counter) = value;
        }
    }
    out
}

/// Where a trending list is kept: every video, one language, or one region.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TrendingScope {
    /// Every language and region (`*`).
    All,
    /// Videos in one language.
    Language(String),
    /// Videos from one region.
    Region(String),
}

impl TrendingScope {
    /// The scopes a video counts in: all, its language and its region when it has them.
    pub fn of(video: &Video) -> Vec<TrendingScope> {
        let mut scopes = vec![TrendingScope::All];
        if !video.language.is_empty() {
            scopes.push(TrendingScope::Language(video.language.clone()));
        }
        if !video.region.is_empty() {
            scopes.push(TrendingScope::Region(video.region.clone()));
        }
        scopes
    }
}

/// An addition to a decayed value: `weight` at unix time `ts`.
#[derive(Clone, Debug, PartialEq)]
pub struct DecayedAdd {
    /// Field: `c:{creator}` or `t:{tag}`.
    pub field: String,
    /// Amount added.
    pub weight: f64,
    /// When (unix seconds).
    pub ts: f64,
}

/// An addition to one dimension of a user's taste vector: `weight` at unix time `ts`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TasteAdd {
    /// The embedding dimension.
    pub dim: usize,
    /// Amount added.
    pub weight: f64,
    /// When (unix seconds).
    pub ts: f64,
}

/// Affinity field of a creator.
pub fn creator_field(creator: &str) -> String {
    format!("c:{creator}")
}

/// Affinity field of a tag.
pub fn tag_field(tag: &str) -> String {
    format!("t:{tag}")
}

/// Everything a batch of accepted events changes, merged so each key is written once.
#[derive(Debug, Default, PartialEq)]
pub struct Deltas {
    /// Counter increments per video.
    pub video_stats: HashMap<String, VideoStats>,
    /// Affinity additions per user.
    pub affinity: HashMap<String, Vec<DecayedAdd>>,
    /// Taste-vector additions per user.
    pub taste: HashMap<String, Vec<TasteAdd>>,
    /// Trending increments per (scope, UTC day) and video.
    pub trending: HashMap<(TrendingScope, i64), HashMap<String, f64>>,
    /// Global impression and complete counts per duration bucket (the completion prior).
    pub durations: DurationStats,
    /// Videos marked seen, per user, with the time.
    pub seen: HashMap<String, Vec<(String, f64)>>,
    /// Videos the user engaged with (newest last).
    pub recent: HashMap<String, Vec<String>>,
    /// Latest activity time per user.
    pub active: HashMap<String, f64>,
    /// Long-tail exposure counts (impressions) per video.
    pub exposures: HashMap<String, f64>,
    /// The accepted events themselves, in batch order, for the exposure log
    /// ([`crate::exposure`]): appended in the same write as everything above.
    pub log: Vec<crate::exposure::LoggedEvent>,
}

/// UTC day number of a unix time.
pub fn day_of(ts: f64) -> i64 {
    (ts / 86_400.0).floor() as i64
}

impl Deltas {
    /// Adds one accepted event (its video resolved from the catalog) at unix time `ts`.
    pub fn add(&mut self, event: &Event, video: &Video, ts: f64) {
        let ratio = watch_ratio(event.watch_ms, video.duration_ms);
        let kind = event.kind;
        self.log.push(crate::exposure::LoggedEvent::of(event, ts));
        self.video_stats
            .entry(String::from(&*video.id))
            .or_default()
            .merge(&VideoStats::of_event(kind, ratio));
        let bucket = &mut self.durations[duration_bucket(video.duration_ms)];
        match kind {
            EventType::Impression => bucket.impressions += 1.0,
            EventType::View | EventType::Skip => bucket.plays += 1.0,
            EventType::Complete => bucket.completes += 1.0,
            _ => {}
        }
        let user = &event.user_id;
        let active = self.active.entry(user.clone()).or_insert(ts);
        *active = active.max(ts);

        if matches!(
            kind,
            EventType::Impression | EventType::View | EventType::Complete | EventType::Skip
        ) {
            self.seen
                .entry(user.clone())
                .or_default()
                .push((String::from(&*video.id), ts));
        }
        if kind == EventType::Impression {
            *self.exposures.entry(String::from(&*video.id)).or_default() += 1.0;
        }

        let aw = affinity_weight(kind, ratio);
        if aw != 0.0 {
            let adds = self.affinity.entry(user.clone()).or_default();
            adds.push(DecayedAdd {
                field: creator_field(&video.creator_id),
                weight: aw,
                ts,
            });
            for tag in &video.tags {
                adds.push(DecayedAdd {
                    field: tag_field(tag),
                    weight: aw,
                    ts,
                });
            }
        }
        if aw > 0.0 {
            if let Some(embedding) = &video.embedding {
                let norm = embedding
                    .iter()
                    .map(|x| f64::from(*x).powi(2))
                    .sum::<f64>()
                    .sqrt();
                if norm > 0.0 {
                    let adds = self.taste.entry(user.clone()).or_default();
                    for (i, x) in embedding.iter().enumerate() {
                        adds.push(TasteAdd {
                            dim: i,
                            weight: aw * f64::from(*x) / norm,
                            ts,
                        });
                    }
                }
            }
            let engaged = match kind {
                EventType::View => ratio >= 0.5,
                _ => true,
            };
            if engaged {
                self.recent
                    .entry(user.clone())
                    .or_default()
                    .push(String::from(&*video.id));
            }
        }

        let tw = trending_weight(kind, ratio);
        if tw > 0.0 {
            let day = day_of(ts);
            for scope in TrendingScope::of(video) {
                *self
                    .trending
                    .entry((scope, day))
                    .or_default()
                    .entry(String::from(&*video.id))
                    .or_default() += tw;
            }
        }
    }

    /// Users whose cached pages these deltas make wrong.
    pub fn touched_users(&self) -> impl Iterator<Item = &String> {
        self.active.keys()
    }
}

/// Applies `adds` to a map of decayed values (the embedded store's and the tests' reference).
pub fn apply_decayed(map: &mut HashMap<String, Decayed>, adds: &[DecayedAdd], half_life: f64) {
    for a in adds {
        let e = map.entry(a.field.clone()).or_default();
        *e = e.add(a.weight, a.ts, half_life);
    }
}

/// Applies taste `adds` to a map of decayed values keyed by dimension index (the embedded
/// store's form, read by [`crate::store::encoding::taste`]).
pub fn apply_taste(map: &mut HashMap<String, Decayed>, adds: &[TasteAdd], half_life: f64) {
    for a in adds {
        let e = map.entry(a.dim.to_string()).or_default();
        *e = e.add(a.weight, a.ts, half_life);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HL: f64 = 100.0;

    #[test]
    fn value_halves_every_half_life() {
        let d = Decayed::default().add(8.0, 1000.0, HL);
        assert_eq!(d.value_at(1000.0, HL), 8.0);
        assert!((d.value_at(1100.0, HL) - 4.0).abs() < 1e-9);
        assert!((d.value_at(1300.0, HL) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn watch_ratio_is_capped_at_one() {
        assert_eq!(watch_ratio(Some(30_000.0), 10_000), 1.0);
        assert_eq!(watch_ratio(Some(2_500.0), 10_000), 0.25);
        assert_eq!(watch_ratio(None, 10_000), 0.0);
    }

    proptest! {
        #[test]
        fn additions_commute(adds in proptest::collection::vec((0.0f64..5.0, 0.0f64..10_000.0), 1..20)) {
            let forward = adds.iter().fold(Decayed::default(), |d, (w, t)| d.add(*w, *t, HL));
            let backward = adds.iter().rev().fold(Decayed::default(), |d, (w, t)| d.add(*w, *t, HL));
            let end = 20_000.0;
            let expected: f64 = adds.iter().map(|(w, t)| w * decay(end - t, HL)).sum();
            prop_assert!((forward.value_at(end, HL) - expected).abs() < 1e-6 * expected.max(1.0));
            prop_assert!((backward.value_at(end, HL) - expected).abs() < 1e-6 * expected.max(1.0));
        }
    }
}
