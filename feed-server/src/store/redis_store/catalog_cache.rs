//! The catalog cache: parsed catalog entries, with their interned keys
//! ([`crate::vocabulary::CatalogEntry`]), kept in process and tagged with the catalog version
//! (`P{shared}:catv`) they were read at. A ranking checks them against the version the counter
//! change feed's last poll read (every 20 ms, [`super::CatalogLists::version`]); while the feed
//! is not followed, or right after this replica's own catalog write, it reads the version in its
//! candidates' round trip instead. When the version moved (a catalog write on any replica), the
//! cache is dropped and the entries it supplied are read again
//! ([`RedisStore::settle_catalog_read`]), so a ranking never uses a catalog entry older than the
//! version it checks against.

use std::sync::Arc;

use redis::Value;

use super::{RedisStore, corrupt, parse};
use crate::model::Video;
use crate::prefetch;
use crate::store::{Store, StoreError};
use crate::vocabulary::{CatalogEntry, Term, TermTable};

/// Most catalog entries kept in process (about 0.5 KiB each); the cache is emptied when full.
const CATALOG_CACHE_MAX: usize = 250_000;

/// Parsed catalog entries valid at one catalog version (see the module docs), in a dense table by
/// their ids' catalog terms.
#[derive(Default)]
pub(super) struct CatalogCache {
    /// Version the entries were read at; `None` before the first read.
    version: Option<i64>,
    videos: TermTable<Arc<CatalogEntry>>,
}

impl CatalogCache {
    /// The version the entries were read at and the cached entries of the ids of `terms`, in
    /// order (`None`: an id without a term, which no entry read so far has).
    pub(super) fn lookup(
        &self,
        terms: impl Iterator<Item = Option<Term>>,
    ) -> (Option<i64>, Vec<Option<Arc<CatalogEntry>>>) {
        let cached: Vec<Option<&Arc<CatalogEntry>>> =
            terms.map(|t| t.and_then(|t| self.videos.get(t))).collect();
        prefetch::arc_counts(cached.iter().flatten().copied());
        let videos = cached.into_iter().map(|v| v.map(Arc::clone)).collect();
        (self.version, videos)
    }

    /// Keeps `read`, entries read no earlier than catalog version `version`; everything cached
    /// at another version is dropped first (and everything when the cache would overflow).
    pub(super) fn record(
        &mut self,
        version: i64,
        read: impl IntoIterator<Item = Arc<CatalogEntry>>,
    ) {
        if self.version != Some(version) {
            self.version = Some(version);
            self.videos.clear();
        }
        for v in read {
            if self.videos.len() >= CATALOG_CACHE_MAX {
                self.videos.clear();
            }
            self.videos.insert(v.keys().id, v);
        }
    }
}

/// A catalog entry from the reply of its `GET` (`None`: no such video).
pub(super) fn video_of(reply: Value) -> Result<Option<Arc<CatalogEntry>>, StoreError> {
    match parse::<Option<String>>(reply)? {
        Some(json) => serde_json::from_str::<Video>(&json)
            .map(|v| Some(Arc::new(CatalogEntry::new(v))))
            .map_err(corrupt),
        None => Ok(None),
    }
}

impl RedisStore {
    /// Completes a catalog-cache lookup of `ids` (`cached_at`, from [`CatalogCache::lookup`]):
    /// `videos[i]` for `i` in `missing` was just read, no earlier than the catalog `version` (read
    /// in the same round trip, or by the counter feed's last poll before it was issued). When the
    /// version moved since the cached entries were read, they are read again; what
    /// was read is recorded, so no caller uses an entry older than the version it saw. Nothing is
    /// recorded when nothing was read and the version has not moved (the common case): no write
    /// lock on every call. Returns how many cached entries were read again.
    pub(super) async fn settle_catalog_read(
        &self,
        ids: &[impl AsRef<str>],
        cached_at: Option<i64>,
        version: i64,
        videos: &mut [Option<Arc<CatalogEntry>>],
        missing: &[usize],
    ) -> Result<usize, StoreError> {
        let mut read: Vec<Arc<CatalogEntry>> =
            missing.iter().filter_map(|&i| videos[i].clone()).collect();
        let mut read_again = 0;
        if cached_at != Some(version) {
            let stale: Vec<usize> = (0..ids.len())
                .filter(|i| videos[*i].is_some() && !missing.contains(i))
                .collect();
            if !stale.is_empty() {
                read_again = stale.len();
                let again: Vec<String> =
                    stale.iter().map(|&i| ids[i].as_ref().to_owned()).collect();
                for (i, v) in stale.into_iter().zip(self.get_videos(&again).await?) {
                    videos[i] = v.map(|v| Arc::new(CatalogEntry::new(v)));
                    read.extend(videos[i].clone());
                }
            }
        }
        if !read.is_empty() || cached_at != Some(version) {
            self.catalog.write().record(version, read);
        }
        Ok(read_again)
    }

    /// Drops this replica's catalog cache and shared lists at once after its own catalog write
    /// (other replicas notice the version change with their next poll of the counter change
    /// feed, `catalog_lists`).
    pub(super) fn forget_catalog(&self) {
        {
            let mut c = self.catalog.write();
            c.version = None;
            c.videos.clear();
        }
        self.lists.clear();
        self.catalog_lists.reset();
    }
}
