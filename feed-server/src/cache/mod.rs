//! The feed cache: ranked snapshots in two tiers (in-process, then the store).
//!
//! A first-page request ranks the user's feed once and keeps the whole ranked list as a
//! *snapshot*. The user's *head* entry points new first-page requests at it until its TTL (the
//! shortest of its content types' TTLs) runs out or the user's own events, follows or profile
//! change it (which moves the user's version: see below). Cursors name the snapshot
//! itself, which invalidation does not touch, so paging never repeats or skips an item even when
//! events arrive between pages.
//!
//! The in-process tier ([`local_tier`]) is bounded in ranked items. A first page (a *head*)
//! stays in it while it is fresh and is *trusted* for `local_ttl` at a time: past that, it is
//! served again only after one small store read shows it is still the user's head in the store,
//! at the user's version ([`FeedCache::recheck`]: a few bytes of the head and the version, not
//! the page and the user's state a store-tier lookup transfers and decodes). A snapshot read by
//! id (cursor paging) stays at most `local_ttl`.
//!
//! **Replicas agree.** A snapshot records the user's version it was ranked at
//! ([`UserVersion`]), which every write of the user's own state moves in the same transaction.
//! The store tier serves a head only at the version the store holds (read in the same round trip
//! as the head). The in-process tier costs no store call: every replica hears every user write
//! as it is committed (`store::redis_peers`, [`FeedCache::peer_wrote`]) and serves an in-process
//! head only at the last version heard, and only while it is listening ([`PeerHeads`]). So a
//! user's own event, follow or profile change accepted by any replica is reflected by every
//! replica's next first page once the announcement arrived (sub-millisecond on a healthy link),
//! and within 750 ms when the listening connection dies silently (the replica then reads heads
//! from the store tier until it listens again; `store::redis_peers`). A write no replica hears
//! of (a cluster bus link broken between two nodes, a replica of a version that does not
//! announce) is still reflected within `local_ttl`: the next recheck sees the version moved or
//! the stored head replaced.

mod local_tier;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::metrics::{CacheResult, CacheTier, Metrics, MetricsError};
use crate::model::{FeedItem, MAX_LIMIT};
use crate::peer_heads::PeerHeads;
pub use crate::ranking::page_ttls::PageTtls;
use crate::served::ItemFacts;
use crate::store::{Store, StoreError, UserState, UserVersion};
use crate::stored_snapshot::{self, JsonSnapshot, SnapshotFormat, StoredPrefixes};
use crate::time::Timestamp;
use local_tier::{Entry, Kind, LocalTier};

/// Snapshots stay readable by cursor at least this long after ranking.
pub const MIN_SNAPSHOT_TTL: Duration = Duration::from_secs(600);

/// Items a head keeps in the store tier: what the largest first page shows, and one more so that
/// its page still carries a cursor. Pages past it are read by cursor from the whole snapshot, so
/// a head costs Redis a page's bytes, not the list's (BENCHMARKS.md).
pub const HEAD_ITEMS: usize = MAX_LIMIT + 1;

/// What the store tier answered for a user's head, with the user's state read alongside.
pub enum StoreHead {
    /// A head to serve.
    Hit(Arc<Snapshot>),
    /// None: the user's state, for the ranking.
    Miss(Box<UserState>),
}

/// A ranked list kept for paging; how it is stored: [`crate::stored_snapshot`].
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Snapshot {
    /// Random id, named by cursors.
    pub id: String,
    /// The user it was ranked for.
    pub user_id: String,
    /// Variant that ranked it.
    pub variant: String,
    /// Profile generation that ranked it.
    pub generation: u64,
    /// The ranked items; with their `signals` and `explain` only when `explained`.
    pub items: Vec<FeedItem>,
    /// Whether the items carry their signals and explanations: only when the request that
    /// ranked the list asked for `explain` (they make a snapshot ~4.5 times larger; BENCHMARKS.md).
    #[serde(default)]
    pub explained: bool,
    /// Content-health facts of each item, in the order of `items` ([`crate::served`]); empty in
    /// a snapshot cached by a version without them.
    #[serde(default)]
    pub facts: Vec<ItemFacts>,
    /// When it was ranked (unix ms).
    #[serde(default)]
    pub ranked_at_ms: i64,
    /// How long first pages of it stay fresh, by page size.
    #[serde(default)]
    pub page_ttls: PageTtls,
    /// The user's version the ranking read (see the module docs); 0 in a snapshot cached by a
    /// version without it, which a user written since no longer matches.
    #[serde(default)]
    pub user_version: UserVersion,
    /// The default first page as sent (JSON), encoded by the first request that served it and
    /// reused by every later one. Not stored: each process encodes its own.
    #[serde(skip)]
    pub first_page: std::sync::OnceLock<bytes::Bytes>,
}

/// The JSON form (`crate::stored_snapshot`).
impl Serialize for Snapshot {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        JsonSnapshot::of(self, self.items.len()).serialize(serializer)
    }
}

impl Snapshot {
    /// The content-health facts of the items, when the snapshot has them for every item.
    pub fn served_facts(&self) -> Option<&[ItemFacts]> {
        (self.facts.len() == self.items.len()).then_some(self.facts.as_slice())
    }

    /// Whether a first page of `items` items may still be served from it at `now_ms`.
    pub fn fresh_for(&self, items: usize, now_ms: i64) -> bool {
        self.page_ttls
            .for_items(items)
            .is_none_or(|secs| now_ms - self.ranked_at_ms < i64::from(secs) * 1000)
    }
}

/// Which first-page snapshot a feed request can be served from.
#[derive(Clone, Copy, Debug)]
pub struct HeadWanted<'a> {
    /// The time of the request: a page is fresh until its TTL from the ranking has passed.
    pub now: Timestamp,
    /// The user.
    pub user: &'a str,
    /// The experiment variant the user is assigned to.
    pub variant: &'a str,
    /// Generation of the profile in force.
    pub generation: u64,
    /// Items of the page asked for (a page's freshness depends on what it shows).
    pub items: usize,
    /// The request asks for explanations: only a snapshot that kept them will do.
    pub explain: bool,
}

impl HeadWanted<'_> {
    fn accepts(&self, s: &Snapshot) -> bool {
        s.user_id == self.user
            && s.variant == self.variant
            && s.generation == self.generation
            && s.fresh_for(self.items, self.now.millis())
            && (s.explained || !self.explain)
    }

    /// Whether a head from the store tier serves: as [`HeadWanted::accepts`], and ranked at the
    /// user's `version` the store holds (read in the same round trip).
    fn accepts_stored(&self, s: &Snapshot, version: UserVersion) -> bool {
        self.accepts(s) && s.user_version == version
    }
}

/// The two-tier cache.
pub struct FeedCache {
    local: LocalTier,
    local_ttl: Duration,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    peers: PeerHeads,
    /// `feed_peer_writes_listening`, for a replica among others.
    listening_gauge: Option<prometheus::IntGauge>,
    /// The form new snapshots are stored in (both are read).
    format: SnapshotFormat,
}

/// The snapshot a store-tier read returned, if it decodes and `accept` takes it (an entry
/// this version cannot read is a miss).
fn accepted(found: Option<Vec<u8>>, accept: impl Fn(&Snapshot) -> bool) -> Option<Snapshot> {
    found
        .and_then(|bytes| stored_snapshot::decode(&bytes).ok())
        .filter(|s| accept(s))
}

/// The store tier's key of the entry of `kind` for `id` (a user's head, a snapshot by id).
fn store_key(kind: Kind, id: &str) -> String {
    match kind {
        Kind::Head => format!("head:{id}"),
        Kind::Snapshot => format!("snap:{id}"),
    }
}

impl FeedCache {
    /// A cache holding snapshots of at most `local_items` ranked items in all in process, of
    /// at most `feed_depth` items each: a head while a first page of it is fresh, a snapshot
    /// read by id at most `local_ttl`.
    pub fn new(
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        local_items: u64,
        feed_depth: usize,
        local_ttl: Duration,
    ) -> Self {
        Self {
            local: LocalTier::new(local_items, feed_depth),
            local_ttl,
            store,
            metrics,
            peers: PeerHeads::new(true, local_ttl),
            listening_gauge: None,
            format: SnapshotFormat::default(),
        }
    }

    /// The cache storing new snapshots in `format` ([`SnapshotFormat::Compact`] unless set).
    pub fn with_format(mut self, format: SnapshotFormat) -> Self {
        self.format = format;
        self
    }

    /// The cache of a replica among others: it serves no in-process head until it listens to
    /// their writes ([`FeedCache::peers_listening`]); registers `feed_peer_writes_listening`.
    pub fn with_peers(mut self) -> Result<Self, MetricsError> {
        let gauge = prometheus::IntGauge::new(
            feed_metrics::ops::PEER_WRITES_LISTENING,
            "1 while this replica hears every user write of the other replicas, 0 while it reads first pages from the store only",
        )?;
        self.metrics.register(gauge.clone())?;
        self.peers = PeerHeads::new(false, self.local_ttl);
        self.listening_gauge = Some(gauge);
        Ok(self)
    }

    /// Some replica wrote `user`'s own state, now at `version`: this replica's in-process head
    /// of the user is no longer served (unless ranked at `version`).
    pub fn peer_wrote(&self, user: &str, version: UserVersion) {
        self.peers.heard(user, version);
        self.local.invalidate(Kind::Head, user);
    }

    /// Whether this replica hears every user write from now on; when it resumes, writes made
    /// meanwhile may have been missed, so every in-process entry is dropped.
    pub fn peers_listening(&self, listening: bool) {
        if self.peers.set_listening(listening) {
            self.local.clear();
        }
        if let Some(gauge) = &self.listening_gauge {
            gauge.set(i64::from(listening));
        }
    }

    /// [`FeedCache::snapshot`] in the in-process tier only: no store call.
    fn snapshot_local(
        &self,
        id: &str,
        now: Timestamp,
        accept: impl Fn(&Snapshot) -> bool,
    ) -> Option<Arc<Snapshot>> {
        if let Some(e) = self.local.get(Kind::Snapshot, id, now)
            && accept(&e.snapshot)
        {
            self.metrics.cache(CacheTier::Local, CacheResult::Hit);
            return Some(e.snapshot);
        }
        self.metrics.cache(CacheTier::Local, CacheResult::Miss);
        None
    }

    /// [`FeedCache::snapshot`] in the store tier (after a local miss); a hit is kept in process
    /// for `local_ttl`.
    async fn snapshot_store(
        &self,
        id: &str,
        now: Timestamp,
        accept: impl Fn(&Snapshot) -> bool,
    ) -> Result<Option<Arc<Snapshot>>, StoreError> {
        let found = self.store.cache_get(&store_key(Kind::Snapshot, id)).await?;
        let found = accepted(found, accept).map(|s| {
            let s = Arc::new(s);
            // A snapshot by id never changes: nothing to trust or recheck.
            Entry::new(s, now, self.local_ttl, Timestamp::from_millis(0))
        });
        Ok(self.store_result(Kind::Snapshot, id, found))
    }

    /// The user's head in the store tier if it serves `want` and was ranked at the user's
    /// version the store holds (read in the same round trip); nothing counted.
    async fn stored_head(&self, want: &HeadWanted<'_>) -> Result<Option<Snapshot>, StoreError> {
        let key = store_key(Kind::Head, want.user);
        let (found, version) = self.store.cache_get_for_user(&key, want.user).await?;
        Ok(accepted(found, |s| want.accepts_stored(s, version)))
    }

    /// A head read from the store tier at `now`, as kept in process: while any first page of it
    /// is fresh, trusted for `local_ttl`.
    fn stored_head_entry(&self, s: Snapshot, now: Timestamp) -> Entry {
        let trusted = now.after(self.local_ttl);
        match s.page_ttls.longest() {
            Some(secs) => {
                let ranked = Timestamp::from_millis(s.ranked_at_ms);
                let ttl = Duration::from_secs(u64::from(secs));
                Entry::new(Arc::new(s), ranked, ttl, trusted)
            }
            // Cached by a version without page TTLs: kept no longer than `local_ttl`.
            None => Entry::new(Arc::new(s), now, self.local_ttl, trusted),
        }
    }

    /// What the store tier returned for the entry of `kind` for `id`, accepted: a snapshot is
    /// counted a hit and kept in process, none a miss.
    fn store_result(&self, kind: Kind, id: &str, found: Option<Entry>) -> Option<Arc<Snapshot>> {
        match found {
            Some(entry) => {
                self.metrics.cache(CacheTier::Store, CacheResult::Hit);
                let s = entry.snapshot.clone();
                self.local.insert(kind, id, entry);
                Some(s)
            }
            None => {
                self.metrics.cache(CacheTier::Store, CacheResult::Miss);
                None
            }
        }
    }

    /// The user's current first-page snapshot from the in-process tier, if one was ranked by
    /// this variant and generation, a first page of `items` items from it is still fresh, and
    /// no write of the user was heard since its ranking (module docs). No store call while the
    /// head is trusted; past that, one [`FeedCache::recheck`]. Then
    /// [`FeedCache::head_store_or_state`] (or [`FeedCache::head_store`]) on a miss.
    pub async fn head_local(
        &self,
        want: &HeadWanted<'_>,
    ) -> Result<Option<Arc<Snapshot>>, StoreError> {
        let served = match self.local.get(Kind::Head, want.user, want.now) {
            Some(e) if self.serves_local(want, &e.snapshot) => {
                if e.trusted_at(want.now) || self.recheck(want, &e).await? {
                    Some(e.snapshot)
                } else {
                    None
                }
            }
            _ => None,
        };
        let result = if served.is_some() {
            CacheResult::Hit
        } else {
            CacheResult::Miss
        };
        self.metrics.cache(CacheTier::Local, result);
        Ok(served)
    }

    /// Whether an in-process head whose trust ran out is still the head the store holds for the
    /// user, at the user's version the store holds: one round trip reading the first bytes of
    /// the stored head and the version. If so it is trusted for another `local_ttl`. This is
    /// what bounds a write no replica heard of (module docs); a head replaced in the store
    /// (another replica ranked the user anew) is read from the store tier next.
    async fn recheck(&self, want: &HeadWanted<'_>, entry: &Entry) -> Result<bool, StoreError> {
        let Some(prefixes) = StoredPrefixes::of(&entry.snapshot.id) else {
            return Ok(false);
        };
        let key = store_key(Kind::Head, want.user);
        let (stored, version) = self
            .store
            .cache_prefix_for_user(&key, prefixes.bytes_to_read(), want.user)
            .await?;
        let current = prefixes.matches(&stored) && version == entry.snapshot.user_version;
        if current {
            entry.trust_until(want.now.after(self.local_ttl));
        }
        Ok(current)
    }

    /// Both tiers again, without counting a lookup: for a request that counted its misses,
    /// then waited for another request's ranking of the same user ([`crate::single_flight`]);
    /// it stays counted as the miss it was. The in-process tier first; the store tier when this
    /// replica may not serve its in-process pages (not listening to its peers, no local tier).
    pub async fn head_ranked_meanwhile(
        &self,
        want: &HeadWanted<'_>,
    ) -> Result<Option<Arc<Snapshot>>, StoreError> {
        if let Some(e) = self.local.get(Kind::Head, want.user, want.now)
            && self.serves_local(want, &e.snapshot)
            && e.trusted_at(want.now)
        {
            return Ok(Some(e.snapshot));
        }
        Ok(self.stored_head(want).await?.map(Arc::new))
    }

    fn serves_local(&self, want: &HeadWanted<'_>, s: &Snapshot) -> bool {
        want.accepts(s) && self.peers.admits(want.user, s.user_version)
    }

    /// [`FeedCache::head_local`]'s lookup in the store tier (after a local miss): a head ranked
    /// at the user's version the store holds, read in the same round trip.
    pub async fn head_store(
        &self,
        want: &HeadWanted<'_>,
    ) -> Result<Option<Arc<Snapshot>>, StoreError> {
        let found = self
            .stored_head(want)
            .await?
            .map(|s| self.stored_head_entry(s, want.now));
        Ok(self.store_result(Kind::Head, want.user, found))
    }

    /// [`FeedCache::head_store`] reading the user's state in the same round trip: on a miss
    /// the state goes to the ranking that follows, which then reads it no more. The head is
    /// served only at the version of that state; on a hit the rest of the state is not decoded.
    pub async fn head_store_or_state(
        &self,
        want: &HeadWanted<'_>,
    ) -> Result<StoreHead, StoreError> {
        let key = store_key(Kind::Head, want.user);
        let (found, user) = self
            .store
            .cache_get_with_user_state(&key, want.user, want.now.secs_f64())
            .await?;
        let found = accepted(found, |s| want.accepts_stored(s, user.version))
            .map(|s| self.stored_head_entry(s, want.now));
        Ok(match self.store_result(Kind::Head, want.user, found) {
            Some(snapshot) => StoreHead::Hit(snapshot),
            None => StoreHead::Miss(Box::new(user.decode()?)),
        })
    }

    /// A snapshot by id (cursor paging), read at `now` (the request's time).
    pub async fn snapshot(
        &self,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<Arc<Snapshot>>, StoreError> {
        let accept = |s: &Snapshot| s.id == id;
        match self.snapshot_local(id, now, accept) {
            Some(s) => Ok(Some(s)),
            None => self.snapshot_store(id, now, accept).await,
        }
    }

    /// Stores a fresh snapshot as the user's head (for `ttl`, the longest any first page of it
    /// stays fresh, in both tiers, its first [`HEAD_ITEMS`] items in the store tier; trusted in
    /// process for `local_ttl` from its ranking) and by id (for paging), in the cache's
    /// [`SnapshotFormat`].
    pub async fn put(
        &self,
        snapshot: Snapshot,
        ttl: Duration,
    ) -> Result<Arc<Snapshot>, StoreError> {
        let encode = |items| {
            stored_snapshot::encode(&snapshot, items, self.format)
                .map_err(|e| StoreError::Corrupt(e.to_string()))
        };
        let bytes = encode(snapshot.items.len())?;
        let head_bytes = if snapshot.items.len() > HEAD_ITEMS {
            encode(HEAD_ITEMS)?
        } else {
            bytes.clone()
        };
        let snapshot = Arc::new(snapshot);
        let paging_ttl = ttl.max(MIN_SNAPSHOT_TTL);
        self.store
            .cache_put(&[
                (store_key(Kind::Head, &snapshot.user_id), head_bytes, ttl),
                (store_key(Kind::Snapshot, &snapshot.id), bytes, paging_ttl),
            ])
            .await?;
        let ranked = Timestamp::from_millis(snapshot.ranked_at_ms);
        let (local_ttl, never) = (self.local_ttl, Timestamp::from_millis(0));
        let head = Entry::new(snapshot.clone(), ranked, ttl, ranked.after(local_ttl));
        self.local.insert(Kind::Head, &snapshot.user_id, head);
        let by_id = Entry::new(snapshot.clone(), ranked, local_ttl, never);
        self.local.insert(Kind::Snapshot, &snapshot.id, by_id);
        Ok(snapshot)
    }

    /// Drops this replica's in-process heads of `users` after their own state was written (their
    /// next first page is ranked anew); cursors keep working. Nothing is deleted from the store
    /// tier: the write moved each user's version in its own transaction, and a stored head is
    /// served only at the version the store holds (module docs), so an event POST costs no
    /// round trip for it.
    pub fn invalidate_users<'a>(&self, users: impl IntoIterator<Item = &'a String>) {
        for user in users {
            self.local.invalidate(Kind::Head, user);
        }
    }

    /// Drops every in-process entry (after a catalog deletion).
    pub fn clear_local(&self) {
        self.local.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model::{Event, UserProfile, Video};
    use crate::store::{CacheEntry, MemoryStore};

    /// A snapshot `id` of user `u` ranked at `version`, its first page fresh for 120 s.
    pub(super) fn snapshot(id: &str, version: u64) -> Snapshot {
        Snapshot {
            id: id.into(),
            user_id: "u".into(),
            variant: "default".into(),
            generation: 1,
            items: Vec::new(),
            explained: false,
            facts: Vec::new(),
            ranked_at_ms: 1_000_000,
            page_ttls: PageTtls(vec![(20, 120), (100, 10)]),
            user_version: UserVersion(version),
            first_page: Default::default(),
        }
    }

    fn want() -> HeadWanted<'static> {
        HeadWanted {
            now: Timestamp::from_millis(1_000_000),
            user: "u",
            variant: "default",
            generation: 1,
            items: 20,
            explain: false,
        }
    }

    fn cache_on(store: Arc<MemoryStore>) -> Result<FeedCache, Box<dyn std::error::Error>> {
        let metrics = Arc::new(Metrics::new("r", "stable")?);
        Ok(FeedCache::new(store, metrics, 1000, 200, Duration::from_secs(60)).with_peers()?)
    }

    fn id(s: Option<Arc<Snapshot>>) -> Option<String> {
        s.map(|s| s.id.clone())
    }

    #[tokio::test]
    async fn an_in_process_head_is_served_only_while_listening_and_at_the_version_heard()
    -> Result<(), Box<dyn std::error::Error>> {
        let cache = cache_on(Arc::new(MemoryStore::new()))?;
        cache
            .put(snapshot("a", 0), Duration::from_secs(120))
            .await?;
        assert_eq!(
            id(cache.head_local(&want()).await?),
            None,
            "not listening yet"
        );
        cache.peers_listening(true);
        assert_eq!(
            id(cache.head_local(&want()).await?),
            None,
            "what was cached before listening is dropped"
        );
        cache
            .put(snapshot("b", 0), Duration::from_secs(120))
            .await?;
        assert_eq!(id(cache.head_local(&want()).await?).as_deref(), Some("b"));
        // A ranking that read the user before a write stores its page after hearing of it.
        cache.peer_wrote("u", UserVersion(1));
        cache
            .put(snapshot("c", 0), Duration::from_secs(120))
            .await?;
        assert_eq!(
            id(cache.head_local(&want()).await?),
            None,
            "ranked before the write"
        );
        cache
            .put(snapshot("d", 1), Duration::from_secs(120))
            .await?;
        assert_eq!(id(cache.head_local(&want()).await?).as_deref(), Some("d"));
        cache.peers_listening(false);
        assert_eq!(
            id(cache.head_local(&want()).await?),
            None,
            "may miss writes"
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_store_head_is_served_only_at_the_users_version_in_the_store()
    -> Result<(), Box<dyn std::error::Error>> {
        let store = Arc::new(MemoryStore::new());
        let (ranker, reader) = (cache_on(store.clone())?, cache_on(store.clone())?);
        ranker
            .put(snapshot("a", 0), Duration::from_secs(120))
            .await?;
        assert_eq!(id(reader.head_store(&want()).await?).as_deref(), Some("a"));
        // The user is written after the ranking read them; its page is stored anyway.
        store.set_profile("u", &UserProfile::default()).await?;
        ranker
            .put(snapshot("b", 0), Duration::from_secs(120))
            .await?;
        assert_eq!(
            id(reader.head_store(&want()).await?),
            None,
            "ranked before the write"
        );
        ranker
            .put(snapshot("c", 1), Duration::from_secs(120))
            .await?;
        assert_eq!(id(reader.head_store(&want()).await?).as_deref(), Some("c"));
        // Events move the version too.
        let video: Video = serde_json::from_value(serde_json::json!({
            "id": "v", "creator_id": "c", "published_at": "2024-01-01T00:00:00Z",
            "duration_ms": 30000
        }))?;
        let event: Event = serde_json::from_value(
            serde_json::json!({"user_id": "u", "video_id": "v", "type": "impression"}),
        )?;
        let mut deltas = crate::learning::Deltas::default();
        deltas.add(&event, &video, 1.0);
        store.apply(&deltas).await?;
        assert_eq!(
            id(reader.head_store(&want()).await?),
            None,
            "an event since"
        );
        Ok(())
    }

    /// [`want`] at `ms` after the snapshots' ranking.
    fn want_after(ms: i64) -> HeadWanted<'static> {
        HeadWanted {
            now: Timestamp::from_millis(1_000_000 + ms),
            ..want()
        }
    }

    #[tokio::test]
    async fn an_in_process_head_past_its_trust_is_served_only_while_the_store_holds_it_at_the_users_version()
    -> Result<(), Box<dyn std::error::Error>> {
        let store = Arc::new(MemoryStore::new());
        let (cache, other) = (cache_on(store.clone())?, cache_on(store.clone())?);
        cache.peers_listening(true);
        other.peers_listening(true);
        cache
            .put(snapshot("a", 0), Duration::from_secs(120))
            .await?;
        // Trusted for the local TTL (60 s) from the ranking, then rechecked: still the stored
        // head at the user's version, so served (and trusted for another 60 s).
        for at in [0, 59_000, 61_000] {
            let got = id(cache.head_local(&want_after(at)).await?);
            assert_eq!(got.as_deref(), Some("a"), "at {at} ms");
        }
        // A write nobody announced (a broken cluster bus link) moves the version in the store:
        // a head ranked before it is served while trusted, and not past that.
        store.set_profile("u", &UserProfile::default()).await?;
        cache
            .put(snapshot("b", 0), Duration::from_secs(120))
            .await?;
        let got = id(cache.head_local(&want_after(59_000)).await?);
        assert_eq!(got.as_deref(), Some("b"), "trusted until 60 s");
        assert_eq!(id(cache.head_local(&want_after(61_000)).await?), None);
        cache
            .put(snapshot("b", 1), Duration::from_secs(120))
            .await?;
        // Another replica ranks the user anew: past its trust, this replica's head is not the
        // stored one any more, and the store tier has the new one.
        other
            .put(snapshot("c", 1), Duration::from_secs(120))
            .await?;
        assert_eq!(
            id(cache.head_local(&want_after(30_000)).await?).as_deref(),
            Some("b")
        );
        assert_eq!(id(cache.head_local(&want_after(61_000)).await?), None);
        assert_eq!(
            id(cache.head_store(&want_after(61_000)).await?).as_deref(),
            Some("c")
        );
        // The head read from the store is kept in process (trusted for 60 s from the read).
        assert_eq!(
            id(cache.head_local(&want_after(100_000)).await?).as_deref(),
            Some("c")
        );
        Ok(())
    }

    /// In-process entries live by the request's time: a snapshot read by id stays `local_ttl`
    /// from its ranking and then comes from the store tier; a head read from the store tier
    /// with no page TTLs (a version without them) stays `local_ttl` from its read, not as long
    /// as rechecks keep it trusted; a request whose clock stepped back is not served what was
    /// kept after its time.
    #[tokio::test]
    async fn in_process_entries_live_by_the_requests_time() -> Result<(), Box<dyn std::error::Error>>
    {
        let store = Arc::new(MemoryStore::new());
        let (cache, other) = (cache_on(store.clone())?, cache_on(store.clone())?);
        cache.peers_listening(true);
        other.peers_listening(true);
        let at = |ms| want_after(ms).now;
        let generation = |s: Option<Arc<Snapshot>>| s.map(|s| s.generation);
        // The store tier's copy of snapshot `a` rewritten, so that a read from it shows.
        let rewrite = |generation| -> Result<CacheEntry, Box<dyn std::error::Error>> {
            let stored = Snapshot {
                generation,
                ..snapshot("a", 0)
            };
            let bytes = stored_snapshot::encode(&stored, 0, SnapshotFormat::default())?;
            Ok(("snap:a".to_owned(), bytes, Duration::from_secs(600)))
        };

        cache
            .put(snapshot("a", 0), Duration::from_secs(120))
            .await?;
        store.cache_put(&[rewrite(2)?]).await?;
        let in_process = generation(cache.snapshot("a", at(59_999)).await?);
        assert_eq!(in_process, Some(1), "kept 60 s from the ranking");
        let past = generation(cache.snapshot("a", at(60_000)).await?);
        assert_eq!(past, Some(2), "then read from the store tier");
        // Kept again from that read (at 60 s); a request 2 s behind it is not served that copy.
        store.cache_put(&[rewrite(3)?]).await?;
        assert_eq!(generation(cache.snapshot("a", at(61_000)).await?), Some(2));
        assert_eq!(generation(cache.snapshot("a", at(58_000)).await?), Some(3));

        let without_ttls = Snapshot {
            page_ttls: PageTtls(Vec::new()),
            ..snapshot("h", 0)
        };
        other.put(without_ttls, Duration::from_secs(600)).await?;
        let head = id(cache.head_store(&want_after(0)).await?);
        assert_eq!(head.as_deref(), Some("h"));
        let kept = id(cache.head_local(&want_after(59_999)).await?);
        assert_eq!(
            kept.as_deref(),
            Some("h"),
            "in process for 60 s from the read"
        );
        // Still the stored head at the user's version, so a recheck would serve it: only the
        // entry's own end keeps it from being served from process any longer.
        assert_eq!(id(cache.head_local(&want_after(60_000)).await?), None);
        Ok(())
    }

    /// Snapshot `id` of 150 items with their facts (scores exact in JSON too).
    fn long_snapshot(id: &str) -> Snapshot {
        let items: Vec<FeedItem> = (0..150)
            .map(|i| FeedItem {
                video_id: format!("v{i}").into(),
                creator_id: format!("c{}", i % 40).into(),
                score: f64::from(150 - i) / 256.0,
                signals: None,
                explain: None,
            })
            .collect();
        let facts = crate::served::facts_of(
            items
                .iter()
                .map(|i| (&*i.creator_id, 1_000_000, i.video_id.ends_with('7'))),
        );
        Snapshot {
            items,
            facts,
            page_ttls: PageTtls(vec![(100, 300)]),
            ..snapshot(id, 0)
        }
    }

    /// During a rolling change of `--snapshot-format`, replicas writing either form serve each
    /// other's first pages, cursors and rechecks; the store tier holds a head cut to what the
    /// largest first page shows, the whole list by id.
    #[tokio::test]
    async fn replicas_writing_either_form_serve_each_others_pages()
    -> Result<(), Box<dyn std::error::Error>> {
        use SnapshotFormat::{Compact, Json};
        for (written, read) in [(Json, Compact), (Compact, Json), (Compact, Compact)] {
            let store = Arc::new(MemoryStore::new());
            let writer = cache_on(store.clone())?.with_format(written);
            let reader = cache_on(store.clone())?.with_format(read);
            reader.peers_listening(true);
            let ranked = long_snapshot("a");
            writer.put(ranked.clone(), Duration::from_secs(300)).await?;
            let case = format!("written {written:?}, read by a {read:?} replica");

            let head = reader.head_store(&want()).await?.ok_or("no head")?;
            assert_eq!(head.items[..], ranked.items[..HEAD_ITEMS], "{case}");
            assert_eq!(head.facts[..], ranked.facts[..HEAD_ITEMS], "{case}");
            let by_id = reader
                .snapshot("a", want().now)
                .await?
                .ok_or("no snapshot by id")?;
            assert_eq!(*by_id, ranked, "{case}");
            // Past its trust (60 s at a time), the head read from the store is rechecked
            // against the stored bytes, whichever form they are in: served while they are its,
            // not once the writer ranked the user anew.
            for at in [61_000, 122_000] {
                let got = id(reader.head_local(&want_after(at)).await?);
                assert_eq!(got.as_deref(), Some("a"), "{case}, at {at} ms");
            }
            writer
                .put(long_snapshot("b"), Duration::from_secs(300))
                .await?;
            assert_eq!(
                id(reader.head_local(&want_after(183_000)).await?),
                None,
                "{case}"
            );
        }
        Ok(())
    }

    #[test]
    fn a_snapshot_is_fresh_for_a_page_size_until_its_ttl() {
        let s = snapshot("s", 0);
        assert!(s.fresh_for(20, 1_000_000 + 119_000));
        assert!(!s.fresh_for(20, 1_000_000 + 120_000));
        assert!(s.fresh_for(50, 1_000_000 + 9_000));
        assert!(!s.fresh_for(50, 1_000_000 + 10_000));
        // Stored before page TTLs existed: the store's expiry alone decides.
        let old = Snapshot {
            page_ttls: PageTtls::default(),
            ..s
        };
        assert!(old.fresh_for(100, i64::MAX));
    }
}
