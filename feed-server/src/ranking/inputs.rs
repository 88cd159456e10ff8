//! What the six signals of one (user, video) pair are computed from, gathered in one value so that
//! the live ranking ([`super::pipeline`]) and the offline replay of the exposure log
//! ([`crate::exposure`]) compute signals with the same code: the pipeline builds the inputs from
//! the store's state at ranking time, the replay from its in-memory copy of the learned state as
//! of each impression's `ts`, and both call [`SignalInputs::signals`].

use feed_profile::RankingProfile;

use super::signals;
use crate::learning::{BucketStats, VideoStats};
use crate::model::{ContentType, Signals};
use crate::time::Timestamp;

/// The raw, profile-independent inputs of a candidate's signals at one instant.
#[derive(Clone, Debug, PartialEq)]
pub struct SignalInputs {
    /// The video's kind of content (freshness decays by it).
    pub content_type: ContentType,
    /// The video's length (brevity).
    pub duration_ms: u64,
    /// The video's counters.
    pub stats: VideoStats,
    /// The counters of the video's duration bucket (the completion prior).
    pub bucket: BucketStats,
    /// The user's decayed affinity to the creator.
    pub creator_affinity: f64,
    /// The mean of the user's decayed affinities to the video's tags (0 without tags).
    pub tag_affinity: f64,
    /// The user follows the creator.
    pub followed: bool,
    /// A friend of the user engaged with the video.
    pub friend_engaged: bool,
    /// Cosine of the user's taste vector and the video's embedding; `None` when either is
    /// missing or they do not match.
    pub taste_cosine: Option<f64>,
    /// Seconds since the video was published.
    pub age_secs: f64,
}

impl SignalInputs {
    /// The six signals under `profile` (pure).
    pub fn signals(&self, profile: &RankingProfile) -> Signals {
        Signals {
            freshness: signals::freshness(profile, self.content_type, self.age_secs),
            completion: signals::completion(profile, &self.stats, &self.bucket),
            engagement: signals::engagement(profile, &self.stats),
            affinity: signals::affinity(
                profile,
                self.creator_affinity,
                self.tag_affinity,
                self.followed,
                self.friend_engaged,
            ),
            embedding: signals::embedding_of_cosine(profile, self.taste_cosine),
            brevity: signals::brevity(profile, self.duration_ms),
        }
    }
}

/// The mean of `affinity_of(tag)` over a video's `tags`; 0 for a video without tags.
pub fn tag_mean<T>(tags: &[T], affinity_of: impl Fn(&T) -> f64) -> f64 {
    if tags.is_empty() {
        return 0.0;
    }
    tags.iter().map(affinity_of).sum::<f64>() / tags.len() as f64
}

/// Seconds from a video's publication (`published`) to unix time `now`.
pub fn age_secs(published: Timestamp, now: f64) -> f64 {
    now - published.secs_f64()
}
