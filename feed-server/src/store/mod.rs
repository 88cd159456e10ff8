//! Storage behind one interface: [`RedisStore`] in production (one Redis server or a Redis
//! Cluster), [`MemoryStore`] embedded.
//!
//! The interface is shaped by the ranking pipeline's round trips: every method is one batch
//! (one pipelined Redis round trip), however many videos or users it touches.

pub mod anchored;
mod backoff;
mod catalog_lists;
pub mod encoding;
pub mod keys;
mod list_reads;
mod memory;
mod recent_lists;
pub mod redis_checkpoint;
pub mod redis_conn;
mod redis_consumer;
mod redis_counter_feed;
mod redis_events;
pub mod redis_follower;
mod redis_link;
mod redis_log;
mod redis_migration;
mod redis_peers;
pub mod redis_store;
mod seen_check;
mod shared_cache;
pub mod state_reads;
pub mod taste_sums;
pub mod user_sums;
mod video_counters;

/// A command's arguments as text, for tests that compare what a store would send (a cursor
/// argument, which these commands never hold, as `<cursor>`).
#[cfg(test)]
fn command_text(cmd: &redis::Cmd) -> Vec<String> {
    cmd.args_iter()
        .map(|a| match a {
            redis::Arg::Simple(b) => String::from_utf8_lossy(b).into_owned(),
            _ => "<cursor>".to_owned(),
        })
        .collect()
}

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use thiserror::Error;

pub use memory::MemoryStore;
pub use redis_consumer::run as run_event_consumer;
pub use redis_counter_feed::{
    FOLLOWED_WITHIN as COUNTERS_FOLLOWED_WITHIN, follow as follow_counter_changes,
};
pub use redis_events::{AggregatesMode, IngestArgs, IngestMetrics, IngestSettings};
pub use redis_migration::{Migrated, MigrationError, checkpoint_from_redis};
pub use redis_peers::PeerWrites;
pub use redis_store::RedisStore;
pub use state_reads::StateReads;

use crate::affinity::{Affinities, Taste};
use crate::exposure::LoggedEvent;
use crate::learning::{BucketStats, Deltas, TrendingScope, VideoStats};
use crate::model::{Follows, UserProfile, Video};
use crate::vocabulary::{self, CatalogEntry, Term};

/// Why a store call failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The store cannot be reached or did not answer in time; the request may be retried later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store answered with something this version cannot read.
    #[error("store returned corrupt data: {0}")]
    Corrupt(String),
    /// Too many accepted events wait to be applied to the shared aggregates: new ones are
    /// refused (nothing written) until the consumers catch up; retry later.
    #[error("{backlog} accepted events wait to be applied (limit {limit}); retry later")]
    Backlogged {
        /// Events accepted and not yet applied, as last observed.
        backlog: u64,
        /// `--event-backlog-max`.
        limit: u64,
    },
}

/// How many times a user's own state (events, follows, profile) was written: every such write
/// moves it, in the same transaction, on every store. A snapshot ranked at one version is stale
/// once the store holds another (`crate::cache`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct UserVersion(pub u64);

/// What the pipeline knows about a user before choosing candidates.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserState {
    /// The user's version, read before the rest of the state (so a write racing the read makes
    /// it older, never newer, than what was read).
    pub version: UserVersion,
    /// Language and region.
    pub profile: UserProfile,
    /// Followed creators.
    pub follows: HashSet<String>,
    /// Friends.
    pub friends: Vec<String>,
    /// Decayed affinities by creator and by tag.
    pub affinity: Affinities,
    /// Decayed taste vector.
    pub taste: Taste,
    /// How many videos the user's seen set held when the state was read.
    pub seen: SeenCount,
}

/// A user's state as read with a cached head: its version now, the rest decoded only when
/// asked ([`StateRead::decode`]). A head served from the store tier needs only the version, and
/// decoding a heavy user's affinities costs more than serving the head.
pub struct StateRead {
    /// The user's version, as [`UserState::version`].
    pub version: UserVersion,
    decode: Box<dyn FnOnce() -> Result<UserState, StoreError> + Send>,
}

impl StateRead {
    /// A state already decoded.
    pub fn ready(state: UserState) -> Self {
        Self {
            version: state.version,
            decode: Box::new(move || Ok(state)),
        }
    }

    /// A state whose `decode` runs when it is asked for; `version` must be the version it
    /// decodes with.
    pub fn deferred(
        version: UserVersion,
        decode: impl FnOnce() -> Result<UserState, StoreError> + Send + 'static,
    ) -> Self {
        Self {
            version,
            decode: Box::new(decode),
        }
    }

    /// The whole state (an error when the stored state is corrupt).
    pub fn decode(self) -> Result<UserState, StoreError> {
        (self.decode)()
    }
}

impl std::fmt::Debug for StateRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateRead")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// The size of a user's seen set as read with the user's state: how a store checks
/// candidates against it ([`Store::candidates`]). Redis reads a small set whole and checks in
/// process — nothing for a user who has seen nothing; a ranking's small set comes with its
/// source lists, [`CandidateLists::seen`] — and asks about each candidate (`ZMSCORE`) only when
/// the set is larger than the candidate list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SeenCount {
    /// Not read with the state: the store asks about each candidate.
    #[default]
    Unknown,
    /// This many videos (a write after the read may have added some: a check reads the set
    /// itself, except that a set read empty is not read again for the same ranking).
    Known(usize),
}

/// Whose seen set a ranking checks its candidates against, and its size as read with their
/// state: a store may read a small set with the source lists ([`CandidateLists::seen`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeenOf {
    /// The user being ranked for.
    pub user: String,
    /// [`UserState::seen`].
    pub count: SeenCount,
}

/// A user's seen set, read whole, checked in process.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeenSet(foldhash::HashSet<Vec<u8>>);

impl SeenSet {
    /// The set of `members` (video ids as stored).
    pub fn new(members: impl IntoIterator<Item = Vec<u8>>) -> Self {
        Self(members.into_iter().collect())
    }

    /// Whether the user has seen video `id`.
    pub fn contains(&self, id: &str) -> bool {
        self.0.contains(id.as_bytes())
    }

    /// The seen flag of each of `ids`, in order.
    pub fn flags(&self, ids: &[&str]) -> Vec<bool> {
        ids.iter().map(|id| self.contains(id)).collect()
    }
}

/// How far a ranking has read the user's seen set before its candidates
/// ([`Store::candidates`]).
#[derive(Clone, Debug, PartialEq)]
pub enum SeenRead {
    /// Not read yet: the candidate read checks the candidates against the set, knowing its size
    /// as read with the state.
    Pending(SeenCount),
    /// Read whole with the source lists: the candidate read checks the candidates in process
    /// and reads nothing for it.
    Whole(SeenSet),
}

impl Default for SeenRead {
    fn default() -> Self {
        Self::Pending(SeenCount::Unknown)
    }
}

/// Which source lists to read (built by [`crate::ranking::candidates::plan`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CandidateQuery {
    /// Followed creators whose newest videos to read.
    pub creators: Vec<String>,
    /// Videos per creator.
    pub per_creator: usize,
    /// Friends whose recent engagements to read.
    pub friends: Vec<String>,
    /// Videos per friend.
    pub per_friend: usize,
    /// Trending lists: (scope, UTC day).
    pub trending: Vec<(TrendingScope, i64)>,
    /// Videos per trending list.
    pub per_trending: usize,
    /// Fresh-upload lists: language or `*`.
    pub fresh: Vec<String>,
    /// Videos per fresh list.
    pub per_fresh: usize,
    /// Tags whose newest videos to read.
    pub tags: Vec<String>,
    /// Videos per tag.
    pub per_tag: usize,
    /// Least-exposed videos: offset into the exposure ranking and count.
    pub long_tail: (usize, usize),
    /// The user's seen set, which Redis reads whole with the lists when it holds no more videos
    /// than the lists may nominate ([`Self::most_listed`]).
    pub seen: SeenOf,
}

impl CandidateQuery {
    /// The most ids the lists may hold together (before the merge drops repeats and caps them).
    pub fn most_listed(&self) -> usize {
        [
            (self.creators.len(), self.per_creator),
            (self.friends.len(), self.per_friend),
            (self.trending.len(), self.per_trending),
            (self.fresh.len(), self.per_fresh),
            (self.tags.len(), self.per_tag),
            (1, self.long_tail.1),
        ]
        .into_iter()
        .fold(0, |sum, (lists, each)| {
            sum.saturating_add(lists.saturating_mul(each))
        })
    }
}

/// One source list as read, best first: its ids, and the catalog term of each, worked out once
/// when the list is read (a kept list is read by many rankings), so that merging the lists and
/// looking the candidates up in process hash integers, not strings.
#[derive(Debug, Default, PartialEq)]
pub struct ListedIds {
    ids: Box<[String]>,
    terms: Box<[Term]>,
}

impl ListedIds {
    /// The list of `ids`, their terms interned (source lists hold catalog ids only:
    /// [`vocabulary::terms_of`]).
    pub fn new(ids: Vec<String>) -> Self {
        let terms = vocabulary::terms_of(&ids);
        Self {
            ids: ids.into(),
            terms,
        }
    }

    /// Each id with its term, best first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Term)> {
        self.ids
            .iter()
            .map(String::as_str)
            .zip(self.terms.iter().copied())
    }
}

/// A list shared between the rankings that read it and the store's in-process caches.
pub type SharedList = Arc<ListedIds>;

/// One source's candidates: the lists read for it, in the order read, each best first. A list
/// is shared with the store's in-process caches, so reading a cached list copies no id.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceList(Vec<SharedList>);

impl SourceList {
    /// Every id with its term, list after list (duplicates kept).
    pub fn iter(&self) -> impl Iterator<Item = (&str, Term)> {
        self.0.iter().flat_map(|list| list.iter())
    }

    /// Appends a list.
    pub fn push(&mut self, list: SharedList) {
        self.0.push(list);
    }

    /// Appends a list of `ids` read just now.
    pub fn push_ids(&mut self, ids: impl IntoIterator<Item = String>) {
        self.push(Arc::new(ListedIds::new(ids.into_iter().collect())));
    }
}

impl From<Vec<String>> for SourceList {
    /// One list.
    fn from(ids: Vec<String>) -> Self {
        Self(vec![Arc::new(ListedIds::new(ids))])
    }
}

impl FromIterator<SharedList> for SourceList {
    fn from_iter<I: IntoIterator<Item = SharedList>>(lists: I) -> Self {
        Self(lists.into_iter().collect())
    }
}

/// A candidate as a ranking names it to the store: its id and, when the caller has it, its
/// catalog term (a merged source list's candidates have one; an id from a request has none,
/// and the store looks it up).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CandidateRef<'a> {
    /// The video id.
    pub id: &'a str,
    /// Its catalog term, if the caller has it.
    pub term: Option<Term>,
}

impl<'a> From<&'a str> for CandidateRef<'a> {
    /// An id without its term.
    fn from(id: &'a str) -> Self {
        Self { id, term: None }
    }
}

impl AsRef<str> for CandidateRef<'_> {
    fn as_ref(&self) -> &str {
        self.id
    }
}

/// The source lists, each best first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CandidateLists {
    /// Newest videos of followed creators.
    pub followed: SourceList,
    /// Friends' recent engagements.
    pub friends: SourceList,
    /// Trending.
    pub trending: SourceList,
    /// Newest uploads.
    pub fresh: SourceList,
    /// Tagged like the user's strongest tags.
    pub similar: SourceList,
    /// Least exposed.
    pub long_tail: SourceList,
    /// The user's seen set as far as it was read with the lists ([`CandidateQuery::seen`]).
    pub seen: SeenRead,
}

/// A candidate's catalog entry and counters, and whether the user has seen it.
#[derive(Clone, Debug, PartialEq)]
pub struct CandidateData {
    /// Catalog entry with its interned keys (shared with the store's in-process catalog cache,
    /// if any).
    pub video: Arc<CatalogEntry>,
    /// Counters.
    pub stats: VideoStats,
    /// Global counters of the video's duration bucket (the completion prior).
    pub bucket: BucketStats,
    /// In the user's seen set.
    pub seen: bool,
}

/// A blob to cache: key, bytes, time-to-live.
pub type CacheEntry = (String, Vec<u8>, Duration);

/// The storage interface.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `redis` or `memory`.
    fn kind(&self) -> &'static str;
    /// Checks the store answers.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Inserts or replaces catalog entries (all or nothing).
    async fn put_videos(&self, videos: &[Video]) -> Result<(), StoreError>;
    /// Removes a video from the catalog and every index; false when it did not exist.
    async fn delete_video(&self, id: &str) -> Result<bool, StoreError>;
    /// Catalog entries, in the order asked (`None` for unknown ids).
    async fn get_videos(&self, ids: &[String]) -> Result<Vec<Option<Video>>, StoreError>;
    /// Catalog entries that events name, in the order asked (`None` for unknown ids): like
    /// [`Store::get_videos`], but a store may answer from its in-process catalog as long as no
    /// entry older than the latest catalog write it can see is returned (Redis: the catalog
    /// version read in the same round trip, see [`redis_store`]). One round trip.
    async fn event_videos(
        &self,
        ids: &[String],
    ) -> Result<Vec<Option<Arc<CatalogEntry>>>, StoreError> {
        Ok(self
            .get_videos(ids)
            .await?
            .into_iter()
            .map(|v| v.map(|v| Arc::new(CatalogEntry::new(v))))
            .collect())
    }
    /// Accepts the changes of a batch of events (all or nothing): when it returns, the batch is
    /// durable and the sending users' own state (affinities, taste, seen set) reflects it. The
    /// embedded store applies everything at once; Redis queues the shared aggregates in its
    /// ingest stream, applied by the consumers within the lag bound ([`redis_store`]).
    async fn apply(&self, deltas: &Deltas) -> Result<(), StoreError>;
    /// Replaces a user's followed creators and friends.
    async fn set_follows(&self, user: &str, follows: &Follows) -> Result<(), StoreError>;
    /// Replaces a user's language and region.
    async fn set_profile(&self, user: &str, profile: &UserProfile) -> Result<(), StoreError>;
    /// Everything the ranking needs to know about a user (one round trip), for a ranking at
    /// unix time `now` (Redis reads the taste of the eras around it: `store::taste_sums`).
    async fn user_state(&self, user: &str, now: f64) -> Result<UserState, StoreError>;
    /// The source lists (one round trip).
    async fn candidate_lists(&self, query: &CandidateQuery) -> Result<CandidateLists, StoreError>;
    /// Catalog entries, counters and seen flags of candidates, in order (at most one round trip:
    /// none on Redis when everything is held in process); `seen` is the user's seen set as far
    /// as it was read ([`CandidateLists::seen`], or the size read with the state).
    async fn candidates(
        &self,
        user: &str,
        seen: &SeenRead,
        ids: &[CandidateRef<'_>],
    ) -> Result<Vec<Option<CandidateData>>, StoreError>;
    /// Most recently active users, newest first (cache warm-up).
    async fn active_users(&self, limit: usize) -> Result<Vec<String>, StoreError>;
    /// Reads a cached blob and `user`'s current version in one round trip (a user's first page
    /// is served from the store tier only when it was ranked at that version).
    async fn cache_get_for_user(
        &self,
        key: &str,
        user: &str,
    ) -> Result<(Option<Vec<u8>>, UserVersion), StoreError>;
    /// Reads a cached blob and `user`'s state for a ranking at unix time `now` (its version
    /// included), for a first-page lookup that goes on to rank when the blob does not serve:
    /// Redis does both in one round trip, and decodes the state only when asked; by default,
    /// two calls.
    async fn cache_get_with_user_state(
        &self,
        key: &str,
        user: &str,
        now: f64,
    ) -> Result<(Option<Vec<u8>>, StateRead), StoreError> {
        let (blob, _) = self.cache_get_for_user(key, user).await?;
        Ok((blob, StateRead::ready(self.user_state(user, now).await?)))
    }
    /// The first `len` bytes of a cached blob (empty when there is none) and `user`'s current
    /// version, in one round trip: enough to tell that an in-process copy of the user's head is
    /// still the head the store holds, at the user's version, without transferring the head
    /// or the user's state (`cache::FeedCache::recheck`).
    async fn cache_prefix_for_user(
        &self,
        key: &str,
        len: usize,
        user: &str,
    ) -> Result<(Vec<u8>, UserVersion), StoreError> {
        let (blob, version) = self.cache_get_for_user(key, user).await?;
        let mut prefix = blob.unwrap_or_default();
        prefix.truncate(len);
        Ok((prefix, version))
    }
    /// Reads a cached blob.
    async fn cache_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Writes cached blobs, each with its own time-to-live (one round trip).
    async fn cache_put(&self, entries: &[CacheEntry]) -> Result<(), StoreError>;
    /// The newest `max` events of the exposure log ([`crate::exposure`]), oldest first (in the
    /// order they were appended, not sorted by `ts`).
    async fn read_log(&self, max: usize) -> Result<Vec<LoggedEvent>, StoreError>;
}
