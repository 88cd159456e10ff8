//! The wire contract: what clients send and receive (PRODUCT.md §1). Field names are binding.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Most videos accepted by one `PUT /v1/videos`.
pub const MAX_VIDEO_BATCH: usize = 5_000;
/// Most events accepted by one `POST /v1/events`.
pub const MAX_EVENT_BATCH: usize = 1_000;
/// Most candidates accepted by one `POST /v1/rank`.
pub const MAX_RANK_CANDIDATES: usize = 1_000;

/// Default page size of `GET /v1/feed` (and of the pages the start-up warm-up caches).
pub const DEFAULT_LIMIT: usize = 20;
/// Largest page size of `GET /v1/feed`: a ranked list's first-page cache TTLs cover this many
/// leading items.
pub const MAX_LIMIT: usize = 100;
/// Most creators or friends in one follows update.
pub const MAX_FOLLOWS: usize = 5_000;
/// Longest accepted id (video, user, creator, tag).
pub const MAX_ID_LEN: usize = 128;
/// Longest video duration (ms): the largest signed 64-bit integer, as the OpenAPI document's
/// `int64` promises clients (and as JSON parsers without unsigned integers can read back).
pub const MAX_DURATION_MS: u64 = i64::MAX as u64;
/// Most tags on one video.
pub const MAX_TAGS: usize = 64;
/// Most dimensions of an embedding.
pub const MAX_EMBEDDING_DIM: usize = 1_024;

/// Kind of content; each has its own freshness half-life and cache TTL.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Video {
    /// Unique id.
    // Both ids are shared (`Arc<str>`), not copied, by the items of every page showing the video.
    #[schema(value_type = crate::schema::Id)]
    pub id: Arc<str>,
    /// The creator (uploader).
    #[schema(value_type = crate::schema::Id)]
    pub creator_id: Arc<str>,
    /// Upload time.
    pub published_at: DateTime<Utc>,
    /// Length in milliseconds, 1 to [`MAX_DURATION_MS`].
    #[schema(minimum = 1)]
    pub duration_ms: u64,
    /// Language code; empty = any.
    #[serde(default)]
    pub language: String,
    /// Region code; empty = any.
    #[serde(default)]
    pub region: String,
    /// Topic tags; the first one is the primary tag used for diversity.
    #[schema(value_type = Vec<crate::schema::Id>, max_items = 64)]
    #[serde(default)]
    pub tags: Vec<String>,
    /// Kind of content.
    #[serde(default)]
    pub content_type: ContentType,
    /// Content embedding; compared with the user's taste vector.
    // Shared, not copied, by the catalog entry's keys (`crate::vocabulary::CatalogKeys`) and by
    // clones of the video (this doc comment is the API's description, hence a plain comment).
    #[schema(value_type = Option<Vec<f32>>, min_items = 1, max_items = 1024)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Arc<[f32]>>,
}

/// Kind of engagement event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Who.
    #[schema(value_type = crate::schema::Id)]
    pub user_id: String,
    /// Which video.
    #[schema(value_type = crate::schema::Id)]
    pub video_id: String,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Play time in milliseconds (view, complete, skip); required on `view`.
    #[schema(minimum = 0)]
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
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    /// The events as sent, each meant to be an `Event`; the accepted ones are applied together.
    /// Any JSON value is taken here: an item that is not a valid `Event` is rejected alone
    /// (`rejected[]`, per-item code), never the batch.
    #[schema(min_items = 1, max_items = 1000)]
    pub events: Vec<serde_json::Value>,
}

/// A rejected event of a batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RejectedEvent {
    /// Position in the batch.
    #[schema(minimum = 0)]
    pub index: usize,
    /// Machine-readable reason.
    pub code: ErrorCode,
    /// Human-readable reason.
    pub message: String,
}

/// `POST /v1/events` response.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventsResponse {
    /// How many events were stored.
    #[schema(minimum = 0)]
    pub accepted: usize,
    /// The others, with reasons.
    pub rejected: Vec<RejectedEvent>,
}

/// `PUT /v1/videos` response.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VideosStored {
    /// How many videos were inserted or replaced.
    #[schema(minimum = 1)]
    pub stored: usize,
}

/// `PUT /v1/users/{id}/follows` body; replaces the user's social graph.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Follows {
    /// Followed creators, each once.
    #[schema(schema_with = crate::schema::follows_ids)]
    #[serde(default)]
    pub creators: Vec<String>,
    /// Friends (other users), each once.
    #[schema(schema_with = crate::schema::follows_ids)]
    #[serde(default)]
    pub friends: Vec<String>,
}

/// `PUT /v1/users/{id}/profile` body.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserProfile {
    /// Preferred language; empty = any.
    #[schema(max_length = 32, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    #[serde(default)]
    pub language: String,
    /// Region; empty = any.
    #[schema(max_length = 32, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    #[serde(default)]
    pub region: String,
}

/// Per-signal numbers of a ranked item: the values, each in [0, 1], or their weighted
/// contributions to the score (see [`Explanation`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Signals {
    /// Age decay.
    pub freshness: f64,
    /// Smoothed completes per impression toward the duration bucket's finish rate.
    pub completion: f64,
    /// Smoothed interactions per view.
    pub engagement: f64,
    /// Affinity to creator and tags, with social boosts.
    pub affinity: f64,
    /// Taste-vector similarity.
    pub embedding: f64,
    /// Shortness: `2^(-duration / halfLife)`.
    #[serde(default)]
    pub brevity: f64,
}

feed_profile::per_signal_accessors!(Signals);

/// A candidate source that nominated a video for the home feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CandidateSource {
    /// Newest uploads of a followed creator.
    Followed,
    /// Recently engaged by a friend.
    Friend,
    /// Trending in the user's region, language, or everywhere.
    Trending,
    /// Newest uploads in the user's language.
    Fresh,
    /// Tagged like the user's strongest tags.
    Similar,
    /// Least-shown videos (exploration).
    LongTail,
}

impl CandidateSource {
    /// Every source, in the order of their bits in [`Sources`].
    pub const ALL: [CandidateSource; 6] = [
        CandidateSource::Followed,
        CandidateSource::Friend,
        CandidateSource::Trending,
        CandidateSource::Fresh,
        CandidateSource::Similar,
        CandidateSource::LongTail,
    ];

    /// The source's bit in [`Sources`].
    pub const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of candidate sources, one bit each; serialised as a list of names (no allocation per
/// item while ranking).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sources(pub u8);

impl Sources {
    /// Whether `source` is in the set.
    pub fn contains(self, source: CandidateSource) -> bool {
        self.0 & source.bit() != 0
    }

    /// The set with `source` added.
    pub fn with(self, source: CandidateSource) -> Self {
        Self(self.0 | source.bit())
    }
}

impl Serialize for Sources {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(None)?;
        for source in CandidateSource::ALL {
            if self.contains(source) {
                seq.serialize_element(&source)?;
            }
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Sources {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let list = Vec::<CandidateSource>::deserialize(deserializer)?;
        Ok(list.into_iter().fold(Sources::default(), Sources::with))
    }
}

/// What diversity re-ranking did to an item.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DiversityEffect {
    /// Position (0-based) the item had in the list ordered by score, before re-ranking.
    pub score_rank: u32,
    /// Positions gained by re-ranking (negative: moved down), `score_rank − position`.
    pub moved: i32,
    /// Passed over at least once because its creator already filled `creatorCap` in the window.
    pub capped: bool,
    /// Passed over at least once to keep videos sharing its first tag `similarSpread` apart.
    pub spread: bool,
    /// Placed in a slot reserved for long-tail exploration.
    pub long_tail_slot: bool,
}

/// Why an item ranks where it does (`explain=true`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Explanation {
    /// Each signal's weighted contribution before the affinity lift, `weight · value / Σ weights`;
    /// with `affinity_lift` they add up to `score`.
    pub contributions: Signals,
    /// What the affinity lift adds to the sum of the contributions: `base · (affinity_multiplier −
    /// 1)`, zero or negative (a video of no affinity is scaled down, one of full affinity kept).
    pub affinity_lift: f64,
    /// `(1 + lift · affinity) / (1 + lift)`: how much the user's affinity scales the score.
    pub affinity_multiplier: f64,
    /// Candidate sources that nominated the video (empty for `POST /v1/rank`, whose candidates
    /// the caller supplies).
    #[schema(value_type = Vec<CandidateSource>)]
    pub sources: Sources,
    /// What diversity re-ranking did (absent for `POST /v1/rank`, which does not re-rank).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diversity: Option<DiversityEffect>,
}

/// One ranked video.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FeedItem {
    /// The video.
    #[schema(value_type = crate::schema::Id)]
    pub video_id: Arc<str>,
    /// Its creator.
    #[schema(value_type = crate::schema::Id)]
    pub creator_id: Arc<str>,
    /// Score in [0, 1].
    pub score: f64,
    /// Per-signal values (with `explain=true`).
    // Boxed, as `explain`: most items carry neither, and an item is kept in every cached
    // snapshot (56 bytes each, 176 with both inline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signals: Option<Box<Signals>>,
    /// Contributions, sources and diversity moves (with `explain=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explain: Option<Box<Explanation>>,
}

/// `GET /v1/feed` and `POST /v1/rank` response.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct FeedResponse {
    /// The user.
    #[schema(value_type = crate::schema::Id)]
    pub user_id: String,
    /// Experiment variant that ranked this page.
    pub variant: String,
    /// Ranked items, best first.
    pub items: Vec<FeedItem>,
    /// Opaque cursor for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `POST /v1/rank` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RankRequest {
    /// The user to rank for.
    #[schema(value_type = crate::schema::Id)]
    pub user_id: String,
    /// Candidates, each once; unknown ids are left out of the response.
    #[schema(schema_with = crate::schema::candidate_ids)]
    pub video_ids: Vec<String>,
    /// Evaluate time-dependent signals as of this time (replay).
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
    /// Include per-signal values and contributions.
    #[serde(default)]
    pub explain: bool,
}

/// Every machine-readable error `code` the API answers: the `code` of a JSON error
/// (`{"error":{"code","message"}}`) and of a rejected event (`rejected[].code`). The OpenAPI
/// document lists exactly these values, so clients can match on them exhaustively.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    ToSchema,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ErrorCode {
    /// No route matches the path (404).
    NotFound,
    /// The route exists but not for this method (405).
    MethodNotAllowed,
    /// The request took longer than the request timeout (503).
    Timeout,
    /// Too many rankings in progress: refused at once, retry after `Retry-After` (503).
    Overloaded,
    /// An unexpected server error (500).
    Internal,
    /// The store cannot be reached; retry later (503).
    StoreUnavailable,
    /// The store holds data this server cannot read (500).
    StoreCorrupt,
    /// The body is larger than the body-size limit (413).
    PayloadTooLarge,
    /// The body's `Content-Type` is not one the route reads (415).
    UnsupportedMediaType,
    /// The body is not valid JSON (or NDJSON), or not of the route's shape (400).
    InvalidJson,
    /// The query string has an unknown, missing or mistyped parameter (400).
    InvalidQuery,
    /// `limit` is outside 1..=100 (400).
    InvalidLimit,
    /// `cursor` was not issued by this service, or belongs to another user (400).
    InvalidCursor,
    /// The ranked list behind the cursor expired; request the first page again (410).
    CursorExpired,
    /// `video_ids` is empty (400).
    EmptyCandidates,
    /// More `video_ids` than one ranking takes (413).
    TooManyCandidates,
    /// The events body is not `{"events":[…]}` (400).
    InvalidBatch,
    /// A batch holds no item (400).
    EmptyBatch,
    /// A batch holds more items than allowed (413).
    BatchTooLarge,
    /// An id is empty, too long or holds control characters (400, or per event).
    InvalidId,
    /// An id appears more than once (400).
    DuplicateId,
    /// `duration_ms` is 0 (400).
    InvalidDuration,
    /// More tags than allowed (400).
    InvalidTags,
    /// An embedding is empty, too long or not finite (400).
    InvalidEmbedding,
    /// `watch_ms` is negative, not finite, or missing on a view (per event).
    InvalidWatchMs,
    /// More followed creators or friends than allowed (400).
    TooMany,
    /// A user profile's `language` or `region` is too long, not printable, or `*` (400).
    InvalidProfile,
    /// A video's `language` or `region` is too long, not printable, or `*` (400).
    InvalidLocale,
    /// The video is not in the catalog (404, or per event).
    UnknownVideo,
    /// The cache warm-up has not finished (`/readyz`, 503).
    WarmingUp,
    /// An event is not a JSON object (per event).
    InvalidEvent,
    /// An event's `type` names no event type this server knows (per event).
    UnknownType,
    /// An event has a field this server does not know (per event).
    UnknownField,
    /// An event lacks `user_id`, `video_id` or `type` (per event).
    MissingField,
    /// An event field has the wrong JSON type or does not parse (per event).
    InvalidField,
    /// An event's `ts` is too far in the future (per event).
    InvalidTs,
    /// A fault injected for testing (fault-injection builds only, 500).
    InjectedFault,
    /// A bad `/debug/faults` setting (fault-injection builds only, 400).
    InvalidFaults,
    /// No API key, a malformed `Authorization` header, or a key that is not (or no longer)
    /// valid (401, with `WWW-Authenticate: Bearer`).
    Unauthenticated,
    /// The API key lacks the scope the route needs (403).
    Forbidden,
    /// Over a rate limit (the key's, the user's or the server's); retry after `Retry-After`
    /// seconds (429).
    RateLimited,
    /// `POST /v1/admin/tune`, `POST /v1/admin/replay`: `since` is not before `until` (400).
    InvalidWindow,
    /// `POST /v1/admin/tune`: objective weights negative, not finite or all zero (400).
    InvalidObjective,
    /// `POST /v1/admin/tune`, `POST /v1/admin/replay`: the window holds too few exposures; the
    /// message says how many it holds and needs (422).
    TooFewExposures,
    /// `POST /v1/admin/tune`: no exposure of the window has an outcome of the objective (422).
    NoOutcome,
    /// `POST /v1/admin/tune`: the fitted weights make no valid profile (all zero) (422).
    NoFit,
    /// `POST /v1/admin/tune`: a tune or a replay is running (one log analysis at a time); retry
    /// when it is done (409).
    TuneInProgress,
    /// `POST /v1/admin/replay`: the stable or canary profile does not load as a `--profile`
    /// file would (the message names the side and the field) (400).
    InvalidRankingProfile,
    /// `POST /v1/admin/replay`: a replay or a tune is running (one log analysis at a time);
    /// retry when it is done (409).
    ReplayInProgress,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: &'static [ErrorCode] = <Self as strum::VariantArray>::VARIANTS;

    /// The code as on the wire (the serde name; the two are derived from one rule).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The HTTP status of a response carrying this code. The per-event codes of a 200's
    /// `rejected[]` (`invalid_event`, `unknown_type`, …) have the status a request would have
    /// for the same fault, 400. Exhaustive: a new code does not compile without its status.
    pub const fn http_status(self) -> u16 {
        match self {
            Self::InvalidJson
            | Self::InvalidQuery
            | Self::InvalidLimit
            | Self::InvalidCursor
            | Self::EmptyCandidates
            | Self::InvalidBatch
            | Self::EmptyBatch
            | Self::InvalidId
            | Self::DuplicateId
            | Self::InvalidDuration
            | Self::InvalidTags
            | Self::InvalidEmbedding
            | Self::InvalidWatchMs
            | Self::TooMany
            | Self::InvalidProfile
            | Self::InvalidLocale
            | Self::InvalidEvent
            | Self::UnknownType
            | Self::UnknownField
            | Self::MissingField
            | Self::InvalidField
            | Self::InvalidTs
            | Self::InvalidFaults
            | Self::InvalidWindow
            | Self::InvalidObjective
            | Self::InvalidRankingProfile => 400,
            Self::Unauthenticated => 401,
            Self::Forbidden => 403,
            Self::NotFound | Self::UnknownVideo => 404,
            Self::MethodNotAllowed => 405,
            Self::TuneInProgress | Self::ReplayInProgress => 409,
            Self::CursorExpired => 410,
            Self::PayloadTooLarge | Self::TooManyCandidates | Self::BatchTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::TooFewExposures | Self::NoOutcome | Self::NoFit => 422,
            Self::RateLimited => 429,
            Self::Internal | Self::StoreCorrupt | Self::InjectedFault => 500,
            Self::Timeout | Self::Overloaded | Self::StoreUnavailable | Self::WarmingUp => 503,
        }
    }
}

/// A validation failure: a machine-readable code and a message naming the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    /// Machine-readable reason, e.g. `invalid_duration`.
    pub code: ErrorCode,
    /// What is wrong.
    pub message: String,
}

fn invalid(code: ErrorCode, message: impl Into<String>) -> Invalid {
    Invalid {
        code,
        message: message.into(),
    }
}

/// Checks an id: non-empty, at most [`MAX_ID_LEN`] bytes, no control characters.
pub fn validate_id(field: &str, id: &str) -> Result<(), Invalid> {
    if id.is_empty() {
        return Err(invalid(
            ErrorCode::InvalidId,
            format!("{field} must not be empty"),
        ));
    }
    if id.len() > MAX_ID_LEN {
        return Err(invalid(
            ErrorCode::InvalidId,
            format!("{field} is longer than {MAX_ID_LEN} bytes"),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(invalid(
            ErrorCode::InvalidId,
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
                ErrorCode::DuplicateId,
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
        if self.duration_ms == 0 || self.duration_ms > MAX_DURATION_MS {
            return Err(invalid(
                ErrorCode::InvalidDuration,
                format!("duration_ms must be between 1 and {MAX_DURATION_MS}"),
            ));
        }
        if self.tags.len() > MAX_TAGS {
            return Err(invalid(
                ErrorCode::InvalidTags,
                format!("at most {MAX_TAGS} tags"),
            ));
        }
        for tag in &self.tags {
            validate_id("tags[]", tag)?;
        }
        validate_locale(ErrorCode::InvalidLocale, &self.language, &self.region)?;
        if let Some(e) = &self.embedding {
            if e.is_empty() || e.len() > MAX_EMBEDDING_DIM {
                return Err(invalid(
                    ErrorCode::InvalidEmbedding,
                    format!("embedding must have 1 to {MAX_EMBEDDING_DIM} values"),
                ));
            }
            if e.iter().any(|x| !x.is_finite()) {
                return Err(invalid(
                    ErrorCode::InvalidEmbedding,
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
                ErrorCode::InvalidWatchMs,
                format!("watch_ms must be a finite number >= 0, got {w}"),
            ));
        }
        if self.kind == EventType::View && self.watch_ms.is_none() {
            return Err(invalid(
                ErrorCode::InvalidWatchMs,
                "a view event needs watch_ms",
            ));
        }
        Ok(())
    }
}

impl Follows {
    /// Checks sizes, ids and duplicates.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.creators.len() > MAX_FOLLOWS || self.friends.len() > MAX_FOLLOWS {
            return Err(invalid(
                ErrorCode::TooMany,
                format!("at most {MAX_FOLLOWS} creators and {MAX_FOLLOWS} friends"),
            ));
        }
        validate_unique("creators", self.creators.iter().map(String::as_str))?;
        validate_unique("friends", self.friends.iter().map(String::as_str))
    }
}

/// The code `*` names the trending list of every language and region in the stores, so no
/// language or region may be called that.
pub const ANY_LOCALE: &str = "*";

/// Checks a `language` and `region`: at most 32 printable characters (characters, as the message
/// and the OpenAPI `maxLength` say, not bytes), and not [`ANY_LOCALE`].
fn validate_locale(code: ErrorCode, language: &str, region: &str) -> Result<(), Invalid> {
    for (field, v) in [("language", language), ("region", region)] {
        if v.chars().count() > 32 || v.chars().any(char::is_control) {
            return Err(invalid(
                code,
                format!("{field} must be at most 32 printable characters"),
            ));
        }
        if v == ANY_LOCALE {
            return Err(invalid(
                code,
                format!(
                    "{field} must not be {ANY_LOCALE:?} (reserved: every {field}); leave it empty for any"
                ),
            ));
        }
    }
    Ok(())
}

impl UserProfile {
    /// Checks lengths and the reserved code `*`.
    pub fn validate(&self) -> Result<(), Invalid> {
        validate_locale(ErrorCode::InvalidProfile, &self.language, &self.region)
    }
}
