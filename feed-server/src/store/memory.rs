//! The embedded in-process store: the same semantics as Redis, for `make run` and tests.
//!
//! One reader-writer lock guards the data: reads (ranking) run in parallel, writes are short.
//! Production traffic runs on Redis; this store serves development and single-node demos.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};

use super::encoding;
use super::{
    CacheEntry, CandidateData, CandidateLists, CandidateQuery, CandidateRef, SeenCount, SeenRead,
    Store, StoreError, UserState, UserVersion,
};
use crate::exposure::ring::RingLog;
use crate::exposure::{LogSettings, LoggedEvent};
use crate::learning::aggregates::SharedAggregates;
use crate::learning::{
    AFFINITY_HALF_LIFE_SECS, Decayed, Deltas, RECENT_MEMORY, SEEN_MEMORY, apply_decayed,
    apply_taste,
};
use crate::model::{Follows, UserProfile, Video};
use crate::vocabulary::CatalogEntry;

/// A sorted index: (score, id), read best first.
type Ranking = BTreeSet<(i64, String)>;

/// A user as the embedded store keeps them: what events taught under its encoded fields
/// ([`super::encoding`]), decoded when read.
#[derive(Clone, Default)]
struct StoredUser {
    profile: UserProfile,
    follows: HashSet<String>,
    friends: Vec<String>,
    affinity: HashMap<String, Decayed>,
    taste: HashMap<String, Decayed>,
}

impl StoredUser {
    fn decode(&self) -> UserState {
        UserState {
            profile: self.profile.clone(),
            follows: self.follows.clone(),
            friends: self.friends.clone(),
            affinity: encoding::affinities(encoding::fields(&self.affinity)),
            taste: encoding::taste(encoding::fields(&self.taste)),
            version: UserVersion::default(),
            seen: SeenCount::Unknown,
        }
    }
}

#[derive(Default)]
struct UserData {
    state: StoredUser,
    /// Moved by every write of the user's own state (one process: only the head lookup reads it).
    version: UserVersion,
    seen: HashMap<String, f64>,
    recent: VecDeque<String>,
}

#[derive(Default)]
struct Inner {
    videos: HashMap<String, Arc<CatalogEntry>>,
    /// Counters, duration buckets, trending, exposures, last activity.
    shared: SharedAggregates,
    by_creator: HashMap<String, Ranking>,
    by_tag: HashMap<String, Ranking>,
    fresh: HashMap<String, Ranking>,
    users: HashMap<String, UserData>,
    cache: HashMap<String, (Vec<u8>, Instant)>,
    cache_purge_at: usize,
}

/// In-process store; see the module docs.
pub struct MemoryStore {
    inner: RwLock<Inner>,
    log: Mutex<RingLog>,
    log_settings: LogSettings,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_log(LogSettings::default())
    }
}

impl MemoryStore {
    /// An empty store with the default exposure log.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store whose exposure log is a ring buffer of `log.capacity` events.
    pub fn with_log(log: LogSettings) -> Self {
        Self {
            inner: RwLock::default(),
            log: Mutex::new(RingLog::new(log.capacity)),
            log_settings: log,
        }
    }
}

fn fresh_lists(video: &Video) -> Vec<String> {
    let mut lists = vec!["*".to_owned()];
    if !video.language.is_empty() {
        lists.push(video.language.clone());
    }
    lists
}

fn top(ranking: Option<&Ranking>, n: usize) -> impl Iterator<Item = String> + '_ {
    ranking
        .into_iter()
        .flat_map(|r| r.iter().rev())
        .take(n)
        .map(|(_, id)| id.clone())
}

impl Inner {
    fn unindex(&mut self, video: &Video) {
        let key = (
            video.published_at.timestamp_millis(),
            String::from(&*video.id),
        );
        if let Some(r) = self.by_creator.get_mut(&*video.creator_id) {
            r.remove(&key);
        }
        for tag in &video.tags {
            if let Some(r) = self.by_tag.get_mut(tag) {
                r.remove(&key);
            }
        }
        for list in fresh_lists(video) {
            if let Some(r) = self.fresh.get_mut(&list) {
                r.remove(&key);
            }
        }
    }

    fn index(&mut self, video: &Video) {
        let key = (
            video.published_at.timestamp_millis(),
            String::from(&*video.id),
        );
        self.by_creator
            .entry(String::from(&*video.creator_id))
            .or_default()
            .insert(key.clone());
        for tag in &video.tags {
            self.by_tag
                .entry(tag.clone())
                .or_default()
                .insert(key.clone());
        }
        for list in fresh_lists(video) {
            self.fresh.entry(list).or_default().insert(key.clone());
        }
        self.shared.add_video(&video.id);
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn put_videos(&self, videos: &[Video]) -> Result<(), StoreError> {
        let mut g = self.inner.write();
        for v in videos {
            if let Some(old) = g.videos.remove(&*v.id) {
                g.unindex(&old);
            }
            g.index(v);
            g.videos
                .insert(String::from(&*v.id), Arc::new(CatalogEntry::new(v.clone())));
        }
        Ok(())
    }

    async fn delete_video(&self, id: &str) -> Result<bool, StoreError> {
        let mut g = self.inner.write();
        let Some(old) = g.videos.remove(id) else {
            return Ok(false);
        };
        g.unindex(&old);
        g.shared.remove_video(id);
        Ok(true)
    }

    async fn get_videos(&self, ids: &[String]) -> Result<Vec<Option<Video>>, StoreError> {
        let g = self.inner.read();
        Ok(ids
            .iter()
            .map(|id| g.videos.get(id).map(|e| e.video().clone()))
            .collect())
    }

    async fn apply(&self, d: &Deltas) -> Result<(), StoreError> {
        let mut g = self.inner.write();
        // Under the data's write lock: a reader never sees the counters without the log entries.
        let dropped = self.log.lock().append(&d.log);
        self.log_settings.dropped.inc_by(dropped);
        g.shared.apply(d);
        for (user, adds) in &d.affinity {
            apply_decayed(
                &mut g.users.entry(user.clone()).or_default().state.affinity,
                adds,
                AFFINITY_HALF_LIFE_SECS,
            );
        }
        for (user, adds) in &d.taste {
            apply_taste(
                &mut g.users.entry(user.clone()).or_default().state.taste,
                adds,
                AFFINITY_HALF_LIFE_SECS,
            );
        }
        for (user, seen) in &d.seen {
            let u = g.users.entry(user.clone()).or_default();
            for (id, ts) in seen {
                let e = u.seen.entry(id.clone()).or_insert(*ts);
                *e = e.max(*ts);
            }
            if u.seen.len() > SEEN_MEMORY {
                let mut by_time: Vec<(f64, String)> = u.seen.drain().map(|(k, t)| (t, k)).collect();
                by_time.sort_by(|a, b| b.0.total_cmp(&a.0));
                by_time.truncate(SEEN_MEMORY);
                u.seen = by_time.into_iter().map(|(t, k)| (k, t)).collect();
            }
        }
        for (user, recent) in &d.recent {
            let u = g.users.entry(user.clone()).or_default();
            for id in recent {
                u.recent.push_front(id.clone());
            }
            u.recent.truncate(RECENT_MEMORY);
        }
        for user in d.touched_users() {
            g.users.entry(user.clone()).or_default().version.0 += 1;
        }
        Ok(())
    }

    async fn set_follows(&self, user: &str, follows: &Follows) -> Result<(), StoreError> {
        let mut g = self.inner.write();
        let u = g.users.entry(user.to_owned()).or_default();
        u.state.follows = follows.creators.iter().cloned().collect();
        u.state.friends = follows.friends.clone();
        u.version.0 += 1;
        Ok(())
    }

    async fn set_profile(&self, user: &str, profile: &UserProfile) -> Result<(), StoreError> {
        let mut g = self.inner.write();
        let u = g.users.entry(user.to_owned()).or_default();
        u.state.profile = profile.clone();
        u.version.0 += 1;
        Ok(())
    }

    async fn user_state(&self, user: &str, _now: f64) -> Result<UserState, StoreError> {
        Ok(self
            .inner
            .read()
            .users
            .get(user)
            .map(|u| UserState {
                version: u.version,
                seen: SeenCount::Known(u.seen.len()),
                ..u.state.decode()
            })
            .unwrap_or_default())
    }

    async fn candidate_lists(&self, q: &CandidateQuery) -> Result<CandidateLists, StoreError> {
        let g = self.inner.read();
        let mut lists = CandidateLists {
            // The seen set is in memory already: the candidate read checks it.
            seen: SeenRead::Pending(q.seen.count),
            ..CandidateLists::default()
        };
        for c in &q.creators {
            lists
                .followed
                .push_ids(top(g.by_creator.get(c), q.per_creator));
        }
        for f in &q.friends {
            if let Some(u) = g.users.get(f) {
                lists
                    .friends
                    .push_ids(u.recent.iter().take(q.per_friend).cloned());
            }
        }
        for (scope, day) in &q.trending {
            let top = g.shared.trending(scope, *day).take(q.per_trending);
            lists.trending.push_ids(top.map(str::to_owned));
        }
        for lang in &q.fresh {
            lists.fresh.push_ids(top(g.fresh.get(lang), q.per_fresh));
        }
        for tag in &q.tags {
            lists.similar.push_ids(top(g.by_tag.get(tag), q.per_tag));
        }
        let (offset, n) = q.long_tail;
        lists
            .long_tail
            .push_ids(g.shared.long_tail().skip(offset).take(n).map(str::to_owned));
        Ok(lists)
    }

    async fn candidates(
        &self,
        user: &str,
        _seen: &SeenRead,
        ids: &[CandidateRef<'_>],
    ) -> Result<Vec<Option<CandidateData>>, StoreError> {
        let g = self.inner.read();
        let seen: HashSet<&str> = g
            .users
            .get(user)
            .map(|u| u.seen.keys().map(String::as_str).collect())
            .unwrap_or_default();
        Ok(ids
            .iter()
            .map(|c| {
                g.videos.get(c.id).map(|v| CandidateData {
                    video: Arc::clone(v),
                    stats: g.shared.stats_of_term(v.keys().id),
                    bucket: g.shared.durations()[v.keys().bucket()],
                    seen: seen.contains(c.id),
                })
            })
            .collect())
    }

    async fn active_users(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        let g = self.inner.read();
        let active = g.shared.recently_active().take(limit);
        Ok(active.map(str::to_owned).collect())
    }

    async fn cache_get_for_user(
        &self,
        key: &str,
        user: &str,
    ) -> Result<(Option<Vec<u8>>, UserVersion), StoreError> {
        let version = self
            .inner
            .read()
            .users
            .get(user)
            .map(|u| u.version)
            .unwrap_or_default();
        Ok((self.cache_get(key).await?, version))
    }

    async fn cache_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let g = self.inner.read();
        Ok(g.cache
            .get(key)
            .filter(|(_, exp)| *exp > Instant::now())
            .map(|(b, _)| b.clone()))
    }

    async fn cache_put(&self, entries: &[CacheEntry]) -> Result<(), StoreError> {
        let mut g = self.inner.write();
        let now = Instant::now();
        // Expired entries are dropped in bulk once the map doubles, keeping writes O(1) amortised.
        if g.cache.len() >= g.cache_purge_at {
            g.cache.retain(|_, (_, exp)| *exp > now);
            g.cache_purge_at = (g.cache.len() * 2).max(1024);
        }
        for (k, v, ttl) in entries {
            g.cache.insert(k.clone(), (v.clone(), now + *ttl));
        }
        Ok(())
    }

    async fn read_log(&self, max: usize) -> Result<Vec<LoggedEvent>, StoreError> {
        Ok(self.log.lock().newest(max))
    }
}
