//! The feed cache: ranked snapshots in two tiers (in-process, then the store).
//!
//! A first-page request ranks the user's feed once and keeps the whole ranked list as a
//! *snapshot*. The user's *head* entry points new first-page requests at it until its TTL (the
//! shortest of its content types' TTLs) runs out or the user's own events, follows or profile
//! change it (then [`FeedCache::invalidate_users`] drops the head). Cursors name the snapshot
//! itself, which invalidation does not touch, so paging never repeats or skips an item even when
//! events arrive between pages.
//!
//! The in-process tier is bounded in entries and holds an entry at most `local_ttl`; other
//! replicas' invalidations reach it through that bound.

use std::sync::Arc;
use std::time::Duration;

use moka::Expiry;
use moka::future::Cache;
use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;
use crate::model::FeedItem;
use crate::store::{Store, StoreError};

/// Snapshots stay readable by cursor at least this long after ranking.
pub const MIN_SNAPSHOT_TTL: Duration = Duration::from_secs(600);

/// A ranked list kept for paging.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Random id, named by cursors.
    pub id: String,
    /// The user it was ranked for.
    pub user_id: String,
    /// Variant that ranked it.
    pub variant: String,
    /// Profile generation that ranked it.
    pub generation: u64,
    /// The ranked items (with signals).
    pub items: Vec<FeedItem>,
    /// The default first page as sent (JSON), encoded by the first request that served it and
    /// reused by every later one. Not stored: each process encodes its own.
    #[serde(skip)]
    pub first_page: std::sync::OnceLock<axum::body::Bytes>,
}

#[derive(Clone)]
struct Entry {
    snapshot: Arc<Snapshot>,
    ttl: Duration,
}

struct EntryExpiry;

impl Expiry<String, Entry> for EntryExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Entry,
        _now: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Where a snapshot was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// In-process.
    Local,
    /// The store (Redis).
    Store,
}

/// The two-tier cache.
pub struct FeedCache {
    local: Cache<String, Entry>,
    local_ttl: Duration,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

fn head_key(user: &str) -> String {
    format!("head:{user}")
}

fn snap_key(id: &str) -> String {
    format!("snap:{id}")
}

impl FeedCache {
    /// A cache holding at most `local_entries` snapshots in process, each at most `local_ttl`.
    pub fn new(
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        local_entries: u64,
        local_ttl: Duration,
    ) -> Self {
        let local = Cache::builder()
            .max_capacity(local_entries)
            .expire_after(EntryExpiry)
            .build();
        Self {
            local,
            local_ttl,
            store,
            metrics,
        }
    }

    async fn lookup(
        &self,
        key: &str,
        accept: impl Fn(&Snapshot) -> bool,
    ) -> Result<Option<(Arc<Snapshot>, Tier)>, StoreError> {
        if let Some(e) = self.local.get(key).await
            && accept(&e.snapshot)
        {
            self.metrics.cache("local", "hit");
            return Ok(Some((e.snapshot, Tier::Local)));
        }
        self.metrics.cache("local", "miss");
        let found = match self.store.cache_get(key).await? {
            Some(bytes) => serde_json::from_slice::<Snapshot>(&bytes)
                .ok()
                .filter(|s| accept(s)),
            None => None,
        };
        match found {
            Some(s) => {
                self.metrics.cache("store", "hit");
                let s = Arc::new(s);
                self.local
                    .insert(
                        key.to_owned(),
                        Entry {
                            snapshot: s.clone(),
                            ttl: self.local_ttl,
                        },
                    )
                    .await;
                Ok(Some((s, Tier::Store)))
            }
            None => {
                self.metrics.cache("store", "miss");
                Ok(None)
            }
        }
    }

    /// The user's current first-page snapshot, if one was ranked by this variant and generation.
    pub async fn head(
        &self,
        user: &str,
        variant: &str,
        generation: u64,
    ) -> Result<Option<(Arc<Snapshot>, Tier)>, StoreError> {
        self.lookup(&head_key(user), |s| {
            s.user_id == user && s.variant == variant && s.generation == generation
        })
        .await
    }

    /// A snapshot by id (cursor paging).
    pub async fn snapshot(&self, id: &str) -> Result<Option<Arc<Snapshot>>, StoreError> {
        Ok(self
            .lookup(&snap_key(id), |s| s.id == id)
            .await?
            .map(|(s, _)| s))
    }

    /// Stores a fresh snapshot as the user's head (for `ttl`) and by id (for paging).
    pub async fn put(
        &self,
        snapshot: Snapshot,
        ttl: Duration,
    ) -> Result<Arc<Snapshot>, StoreError> {
        let bytes =
            serde_json::to_vec(&snapshot).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let snapshot = Arc::new(snapshot);
        let head = head_key(&snapshot.user_id);
        let snap = snap_key(&snapshot.id);
        let paging_ttl = ttl.max(MIN_SNAPSHOT_TTL);
        self.store
            .cache_put(&[
                (head.clone(), bytes.clone(), ttl),
                (snap.clone(), bytes, paging_ttl),
            ])
            .await?;
        let local_ttl = ttl.min(self.local_ttl);
        self.local
            .insert(
                head,
                Entry {
                    snapshot: snapshot.clone(),
                    ttl: local_ttl,
                },
            )
            .await;
        self.local
            .insert(
                snap,
                Entry {
                    snapshot: snapshot.clone(),
                    ttl: self.local_ttl,
                },
            )
            .await;
        Ok(snapshot)
    }

    /// Drops the heads of `users` (their next first page is ranked anew); cursors keep working.
    pub async fn invalidate_users<'a>(
        &self,
        users: impl IntoIterator<Item = &'a String>,
    ) -> Result<(), StoreError> {
        let keys: Vec<String> = users.into_iter().map(|u| head_key(u)).collect();
        for k in &keys {
            self.local.invalidate(k).await;
        }
        self.store.cache_delete(&keys).await
    }

    /// Drops every in-process entry (after a catalog deletion).
    pub fn clear_local(&self) {
        self.local.invalidate_all();
    }
}
