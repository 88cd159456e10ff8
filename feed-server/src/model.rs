//! The wire contract: what clients send and receive (PRODUCT.md §1). Field names are binding.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Most videos accepted by one `PUT /v1/videos`.
pub const MAX_VIDEO_BATCH: usize = 5_000;
/// Most events accepted by one `POST /v1/events`.
pub const MAX_EVENT_BATCH: usize = 1_000;
/// Most candidates accepted by one `POST /v1/rank`.
pub const MAX_RANK_CANDIDATES: usize = 1_000;
/// Most creators or friends in one follows update.
pub const MAX_FOLLOWS: usize = 5_000;
/// Longest accepted id (video, user, creator, tag).
pub const MAX_ID_LEN: usize = 128;
/// Most tags on one video.
pub const MAX_TAGS: usize = 64;
/// Most dimensions of an embedding.
pub const MAX_EMBEDDING_DIM: usize = 1_024;

/// Kind of content; each has its own freshness half-life and cache TTL.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContentType {
    /// Short video (the default).
    #[default]
    Short,
    /// Long video.
    Long,
    /// Live stream.
    Live,
}

/// A video in the catalog.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Video {
    /// Unique id.
    pub id: String,
    /// The creator (uploader).
    pub creator_id: String,
    /// Upload time.
    pub published_at: DateTime<Utc>,
    /// Length in milliseconds (> 0).
    pub duration_ms: u64,
    /// Language code; empty = any.
    #[serde(default)]
    pub language: String,
    /// Region code; empty = any.
    #[serde(default)]
    pub region: String,
    /// Topic tags; the first one is the primary tag used for diversity.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Kind of content.
    #[serde(default)]
    pub content_type: ContentType,
    /// Content embedding; compared with the user's taste vector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
}

/// Kind of engagement event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// The video was shown.
    Impression,
    /// The video was played; carries `watch_ms`.
    View,
    /// The video was played to the end.
    Complete,
    /// Liked.
    Like,
    /// Shared.
    Share,
    /// Commented on.
    Comment,
    /// Swiped away; `watch_ms` optional.
    Skip,
}

impl EventType {
    /// Every event type, for metric initialisation.
    pub const ALL: [EventType; 7] = [
        Self::Impression,
        Self::View,
        Self::Complete,
        Self::Like,
        Self::Share,
        Self::Comment,
        Self::Skip,
    ];

    /// Lower-case name, as on the wire and in the `type` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Impression => "impression",
            Self::View => "view",
            Self::Complete => "complete",
            Self::Like => "like",
            Self::Share => "share",
            Self::Comment => "comment",
            Self::Skip => "skip",
        }
    }
}

/// One engagement event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Who.
    pub user_id: String,
    /// Which video.
    pub video_id: String,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Play time in milliseconds (view, complete, skip).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch_ms: Option<f64>,
    /// When it happened; decays use it. Defaults to the time the server received it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<DateTime<Utc>>,
    /// The experiment variant that served the video (from the feed response); defaults to the
    /// user's current assignment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// `POST /v1/events` body. Only this shape is checked as a whole (a body of another shape is a
/// 400 `invalid_batch`); each item is read on its own into an [`Event`], so that one item a
/// newer client sends (a new `type` or field) is rejected alone and never loses the batch.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    /// The events as sent; the accepted ones are applied together.
    pub events: Vec<serde_json::Value>,
}

/// A rejected event of a batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RejectedEvent {
    /// Position in the batch.
    pub index: usize,
    /// Machine-readable reason.
    pub code: String,
    /// Human-readable reason.
    pub message: String,
}

/// `POST /v1/events` response.
#[derive(Debug, Serialize, Deserialize)]
pub struct EventsResponse {
    /// How many events were stored.
    pub accepted: usize,
    /// The others, with reasons.
    pub rejected: Vec<RejectedEvent>,
}

/// `PUT /v1/users/{id}/follows` body; replaces the user's social graph.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Follows {
    /// Followed creators.
    #[serde(default)]
    pub creators: Vec<String>,
    /// Friends (other users).
    #[serde(default)]
    pub friends: Vec<String>,
}

/// `PUT /v1/users/{id}/profile` body.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserProfile {
    /// Preferred language; empty = any.
    #[serde(default)]
    pub language: String,
    /// Region; empty = any.
    #[serde(default)]
    pub region: String,
}

/// Per-signal values of a ranked item, each in [0, 1].
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Signals {
    /// Age decay.
    pub freshness: f64,
    /// Smoothed watch ratio.
    pub completion: f64,
    /// Smoothed interactions per view.
    pub engagement: f64,
    /// Affinity to creator and tags, with social boosts.
    pub affinity: f64,
    /// Taste-vector similarity.
    pub embedding: f64,
}

/// One ranked video.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeedItem {
    /// The video.
    pub video_id: String,
    /// Its creator.
    pub creator_id: String,
    /// Weighted score in [0, 1].
    pub score: f64,
    /// Per-signal values (with `explain=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signals: Option<Signals>,
}

/// `GET /v1/feed` and `POST /v1/rank` response.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FeedResponse {
    /// The user.
    pub user_id: String,
    /// Experiment variant that ranked this page.
    pub variant: String,
    /// Ranked items, best first.
    pub items: Vec<FeedItem>,
    /// Opaque cursor for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `POST /v1/rank` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RankRequest {
    /// The user to rank for.
    pub user_id: String,
    /// Candidates; unknown ids are left out of the response.
    pub video_ids: Vec<String>,
    /// Evaluate time-dependent signals as of this time (replay).
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
    /// Include per-signal values.
    #[serde(default)]
    pub explain: bool,
}

/// A validation failure: a machine-readable code and a message naming the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// Machine-readable reason, e.g. `invalid_duration`.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
}

fn invalid(code: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        code,
        message: message.into(),
    }
}

/// Checks an id: non-empty, at most [`MAX_ID_LEN`] bytes, no control characters.
pub fn validate_id(field: &str, id: &str) -> Result<(), Invalid> {
    if id.is_empty() {
        return Err(invalid("invalid_id", format!("{field} must not be empty")));
    }
    if id.len() > MAX_ID_LEN {
        return Err(invalid(
            "invalid_id",
            format!("{field} is longer than {MAX_ID_LEN} bytes"),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(invalid(
            "invalid_id",
            format!("{field} contains control characters"),
        ));
    }
    Ok(())
}

/// Checks that no id repeats.
pub fn validate_unique<'a>(
    field: &str,
    ids: impl IntoIterator<Item = &'a str>,
) -> Result<(), Invalid> {
    let mut seen = HashSet::new();
    for id in ids {
        validate_id(field, id)?;
        if !seen.insert(id) {
            return Err(invalid(
                "duplicate_id",
                format!("{field} contains {id:?} more than once"),
            ));
        }
    }
    Ok(())
}

impl Video {
    /// Checks every field of the video.
    pub fn validate(&self) -> Result<(), Invalid> {
        validate_id("id", &self.id)?;
        validate_id("creator_id", &self.creator_id)?;
        if self.duration_ms == 0 {
            return Err(invalid(
                "invalid_duration",
                "duration_ms must be greater than 0",
            ));
        }
        if self.tags.len() > MAX_TAGS {
            return Err(invalid("invalid_tags", format!("at most {MAX_TAGS} tags")));
        }
        for tag in &self.tags {
            validate_id("tags[]", tag)?;
        }
        if let Some(e) = &self.embedding {
            if e.is_empty() || e.len() > MAX_EMBEDDING_DIM {
                return Err(invalid(
                    "invalid_embedding",
                    format!("embedding must have 1 to {MAX_EMBEDDING_DIM} values"),
                ));
            }
            if e.iter().any(|x| !x.is_finite()) {
                return Err(invalid(
                    "invalid_embedding",
                    "embedding values must be finite numbers",
                ));
            }
        }
        Ok(())
    }
}

impl Event {
    /// Checks the fields that do not need the catalog.
    pub fn validate(&self) -> Result<(), Invalid> {
        validate_id("user_id", &self.user_id)?;
        validate_id("video_id", &self.video_id)?;
        if let Some(w) = self.watch_ms
            && (!w.is_finite() || w < 0.0)
        {
            return Err(invalid(
                "invalid_watch_ms",
                format!("watch_ms must be a finite number >= 0, got {w}"),
            ));
        }
        if self.kind == EventType::View && self.watch_ms.is_none() {
            return Err(invalid("invalid_watch_ms", "a view event needs watch_ms"));
        }
        Ok(())
    }
}

impl Follows {
    /// Checks sizes, ids and duplicates.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.creators.len() > MAX_FOLLOWS || self.friends.len() > MAX_FOLLOWS {
            return Err(invalid(
                "too_many",
                format!("at most {MAX_FOLLOWS} creators and {MAX_FOLLOWS} friends"),
            ));
        }
        validate_unique("creators", self.creators.iter().map(String::as_str))?;
        validate_unique("friends", self.friends.iter().map(String::as_str))
    }
}

impl UserProfile {
    /// Checks lengths.
    pub fn validate(&self) -> Result<(), Invalid> {
        for (field, v) in [("language", &self.language), ("region", &self.region)] {
            if v.len() > 32 || v.chars().any(char::is_control) {
                return Err(invalid(
                    "invalid_profile",
                    format!("{field} must be at most 32 printable characters"),
                ));
            }
        }
        Ok(())
    }
}
