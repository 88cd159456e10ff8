//! The Redis store, on one Redis server or on a Redis Cluster ([`RedisLink`]). Every method is
//! one pipelined round trip (writes in MULTI/EXEC, all or nothing, within one cluster slot).
//! Calls time out after the configured store timeout and map to [`StoreError::Unavailable`], so
//! a dead Redis (or a cluster master being failed over) fails requests fast instead of hanging
//! them; the connection reconnects (and re-discovers the cluster's slots) by itself.
//!
//! The key layout is [`Keys`] (`store::keys`): what every user reads alike in the `{shared}`
//! slot, each user's own state in the user's slot.
//!
//! `Store::apply` writes the sending users' own keys (affinities, taste, seen set, recent
//! engagements; the affinities and taste as hash and bit fields, or with `--user-sums-format
//! log` as one append to the user's sums log, compacted after the answer when it crosses a
//! threshold: [`user_sums`]) and appends the batch's shared half to `P{shared}:ev`. On one
//! server that is one MULTI/EXEC. On a cluster it is one MULTI/EXEC per sending user (in the user's slot, all at
//! once) and then the append (in the shared slot), which is the commit point: the 200 follows
//! it. If the append fails after a user's writes succeeded the request fails (503) and a retry
//! adds that user's affinities a second time (the seen set and the shared aggregates are not
//! affected twice): a batch's own-state writes are at-least-once on a cluster, its shared
//! aggregates exactly once in both modes. The shared keys are written by the consumers' apply
//! script, all in the shared slot and named in `KEYS` (`store::redis_consumer`).
//!
//! Every write of a user's own state (a batch's sending users, follows, profile) also moves the
//! user's version and announces it to every replica, in the user's transaction
//! ([`redis_peers`]); [`RedisStore::listen_to_peers`] hears the announcements, and
//! `Store::user_state` and `Store::cache_get_for_user` read the version in their round trip.
//!
//! Parsed catalog entries are kept in process, checked against the catalog version
//! ([`catalog_cache`]): a ranking trails another replica's catalog write by at most one poll of
//! the counter change feed and its round trip, as the kept source lists do. Accepting events
//! reads the version in its own round trip (`Store::event_videos`): an event for a video deleted
//! on any replica is refused as soon as the deletion has committed.
//!
//! Video counters are kept in process until they change ([`VideoCounters`]): every change is
//! announced on the counter change feed, atomically with it, and every replica follows the feed
//! ([`redis_counter_feed`]), so a ranking reads only the counters that changed since this replica
//! last read them, and sees a change within one poll of the feed after it was applied.
//!
//! Source lists only catalog writes change (followed creators' uploads, tags' videos, the fresh
//! lists) are kept until the catalog version moves ([`CatalogLists`]; the counter change feed's
//! poll reads the version). The lists events move (trending, long tail) are shared by the
//! rankings of one replica for at most [`RedisSettings::shared_cache`] (1 s by default; zero
//! turns it, the kept lists, the kept counters and the kept recent engagements off): today's
//! trending list is read once per replica and second instead of once per ranking; lists only
//! nominate candidates, which a second does not move. A replica's catalog writes drop both at
//! once, so it sees its own uploads immediately. Friends' recent engagements are kept until the
//! friend's next write is heard ([`super::recent_lists`]). The user's own state (profile,
//! follows, affinities, taste, seen set) is always read from Redis.

mod catalog_cache;
mod ranking_reads;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::RwLock;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, Pipeline, Value};
use tokio_util::sync::CancellationToken;

use super::catalog_lists::CatalogLists;
use super::keys::Keys;
use super::list_reads::ListKey;
use super::recent_lists::RecentLists;
use super::redis_conn::{self, RedisConfigError, RedisTarget, RedisTlsFiles};
use super::redis_counter_feed::{self, FOLLOWED_WITHIN};
use super::redis_events::{
    self, AggregatesMode, CompactionOutcome, Ingest, IngestMetrics, IngestSettings,
};
use super::redis_follower::FollowedState;
use super::redis_link::RedisLink;
use super::redis_log;
use super::redis_peers::{self, PeerWrites};
use super::shared_cache::SharedCache;
use super::state_reads::StateReads;
use super::user_sums::{self, UserSumsFormat};
use super::video_counters::VideoCounters;
use super::{
    CacheEntry, CandidateData, CandidateLists, CandidateQuery, CandidateRef, SeenCount, SeenRead,
    SharedList, StateRead, Store, StoreError, UserState, UserVersion,
};
use super::{anchored, encoding, taste_sums};
use crate::exposure::{LogSettings, LoggedEvent};
use crate::learning::aggregates::TRENDING_RETENTION_SECS;
use crate::learning::shared::{CatalogChange, SharedDeltas};
use crate::learning::{
    AFFINITY_HALF_LIFE_SECS, BucketCounter, Decayed, Deltas, RECENT_MEMORY, SEEN_MEMORY,
    TrendingScope, VideoStats, bucket_field,
};
use crate::model::{Follows, UserProfile, Video};
use crate::vocabulary::{self, CatalogEntry};
use catalog_cache::{CatalogCache, video_of};
pub(super) use ranking_reads::stats_of;

/// Most users per `ZADD` of the last-activity set in an apply (2 arguments each; Lua's
/// `unpack` in the apply script takes a few thousand).
const ACTIVE_PER_ZADD: usize = 1_000;

/// Connection settings.
#[derive(Clone, Debug)]
pub struct RedisSettings {
    /// One server (`redis://[user:password@]host:port/db`, or `rediss://…` for TLS) or a
    /// cluster's seed nodes.
    pub target: RedisTarget,
    /// Prefix of every key (lets several deployments or tests share one Redis).
    pub prefix: String,
    /// How long a call may wait for Redis before failing.
    pub timeout: Duration,
    /// Longest the source lists events move are reused; zero: never, and neither video counters
    /// nor the lists only catalog writes change are kept (every ranking reads them).
    pub shared_cache: Duration,
}

/// Most entries of each shared read cache; a full cache is emptied.
const SHARED_CACHE_MAX: usize = 250_000;

/// Most source lists kept until the catalog version moves; a full cache is emptied. They are
/// not emptied every second as the shared cache is, so the bound is what caps their memory:
/// a creator's list (10 ids by default) is ~0.5 KB, a tag's (30) ~1.5 KB: tens of MB at the
/// default budgets.
const CATALOG_LISTS_MAX: usize = 50_000;

/// Most users' recent-engagement lists (and reads in flight, write marks) kept in process; a
/// full map keeps only its usable lists. A list of the default 10 ids is ~0.5 KiB: ~25 MiB at
/// most.
const RECENT_LISTS_MAX: usize = 50_000;

/// What the listener hears goes to the store's kept recent lists first, then to the replica's
/// [`PeerWrites`].
struct StorePeers {
    recent: Arc<RecentLists>,
    trust: Duration,
    next: Arc<dyn PeerWrites>,
}

#[async_trait]
impl PeerWrites for StorePeers {
    async fn user_written(&self, user: &str, version: UserVersion) {
        self.recent.written(user);
        self.next.user_written(user, version).await;
    }

    fn listening(&self, live: bool) {
        self.recent.listening(live.then_some(self.trust));
        self.next.listening(live);
    }
}

/// A user's version from its `GET` (none yet: 0).
fn version_of(reply: Value) -> Result<UserVersion, StoreError> {
    Ok(UserVersion(parse::<Option<u64>>(reply)?.unwrap_or(0)))
}

/// The user's state from the replies of [`RedisStore::read_user_state`] (taste of `eras`).
fn user_state_of(
    replies: &mut impl Iterator<Item = Value>,
    eras: &[i64],
) -> Result<UserState, StoreError> {
    let mut next = || {
        replies
            .next()
            .ok_or_else(|| corrupt("short pipeline reply"))
    };
    let version = version_of(next()?)?;
    let mut profile: HashMap<String, String> = parse(next()?)?;
    let follows: Vec<String> = parse(next()?)?;
    let mut friends: Vec<String> = parse(next()?)?;
    friends.sort();
    let seen = SeenCount::Known(parse(next()?)?);
    let affinity = next()?;
    let legacy_taste = encoding::taste(decayed(&next()?)?);
    let mut taste_eras = Vec::with_capacity(eras.len());
    for &era in eras {
        if let Some(bytes) = parse::<Option<Vec<u8>>>(next()?)? {
            taste_eras.push((era, bytes));
        }
    }
    let log = parse::<Option<Vec<u8>>>(next()?)?.unwrap_or_default();
    let logged = user_sums::parse(&log).map_err(corrupt)?;
    Ok(UserState {
        seen,
        version,
        profile: UserProfile {
            language: profile.remove("language").unwrap_or_default(),
            region: profile.remove("region").unwrap_or_default(),
        },
        follows: follows.into_iter().collect(),
        friends,
        affinity: encoding::affinities(anchored::decode(
            &hash_pairs(&affinity)?,
            &logged.affinity,
            AFFINITY_HALF_LIFE_SECS,
        )),
        taste: taste_sums::decode(
            &taste_eras,
            &logged.taste,
            &legacy_taste,
            AFFINITY_HALF_LIFE_SECS,
        ),
    })
}

/// Redis-backed store; see the module docs.
pub struct RedisStore {
    conn: RedisLink,
    keys: Keys,
    catalog: RwLock<CatalogCache>,
    counters: VideoCounters,
    lists: SharedCache<ListKey, SharedList>,
    catalog_lists: CatalogLists<ListKey>,
    /// Friends' recent engagements, kept until the friend writes ([`super::recent_lists`]).
    recent: Arc<RecentLists>,
    log: LogSettings,
    ingest: Ingest,
    /// The shared aggregates this replica folds from the ingest stream, with
    /// `--shared-aggregates process` ([`super::redis_follower`]): rankings read counters,
    /// duration totals, trending, the long tail and last activity from it.
    followed: Option<FollowedState>,
    /// Where what rankings read came from ([`StateReads`]).
    state_reads: StateReads,
    /// Clients of the connection that hears other replicas' writes (one server, or each seed
    /// node of a cluster), with the store timeout ([`redis_peers`]).
    listeners: Vec<redis::Client>,
    timeout: Duration,
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn parse<T: redis::FromRedisValue>(v: Value) -> Result<T, StoreError> {
    redis::from_redis_value(v).map_err(corrupt)
}

/// The decayed values of a decayed hash's `HGETALL` reply ([`anchored::decode`]), its fields
/// borrowed from the reply.
fn decayed(reply: &Value) -> Result<Vec<(&str, Decayed)>, StoreError> {
    Ok(anchored::decode(
        &hash_pairs(reply)?,
        &[],
        AFFINITY_HALF_LIFE_SECS,
    ))
}

/// The fields and values of an `HGETALL` reply, borrowed from it (RESP2's flat array or
/// RESP3's map); a name or value that is not UTF-8 makes the reply corrupt.
fn hash_pairs(reply: &Value) -> Result<Vec<(&str, &str)>, StoreError> {
    fn text(v: &Value) -> Result<&str, StoreError> {
        match v {
            Value::BulkString(b) => {
                std::str::from_utf8(b).map_err(|_| corrupt("hash field is not UTF-8"))
            }
            Value::SimpleString(s) => Ok(s),
            _ => Err(corrupt("hash field is not a string")),
        }
    }
    match reply {
        Value::Array(flat) if flat.len() % 2 == 0 => flat
            .chunks_exact(2)
            .map(|kv| Ok((text(&kv[0])?, text(&kv[1])?)))
            .collect(),
        Value::Map(pairs) => pairs
            .iter()
            .map(|(k, v)| Ok((text(k)?, text(v)?)))
            .collect(),
        Value::Nil => Ok(Vec::new()),
        _ => Err(corrupt("HGETALL reply is not a hash")),
    }
}

impl RedisStore {
    /// Creates the store without TLS files (`rediss://` URLs verify against the system's
    /// roots); see [`RedisStore::connect_tls`].
    pub fn connect(settings: &RedisSettings) -> Result<Self, StoreError> {
        Self::connect_tls(settings, &RedisTlsFiles::default())
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    /// Creates the store; `tls`, the URL(s) and the prefix are checked and the files read now
    /// (see [`redis_conn`]). The connection is made lazily and re-made after failures (with the
    /// same TLS settings), so the server starts (unready) while Redis is down or refuses it. A
    /// cluster connection must be created inside a Tokio runtime.
    pub fn connect_tls(
        settings: &RedisSettings,
        tls: &RedisTlsFiles,
    ) -> Result<Self, RedisConfigError> {
        Keys::check_prefix(&settings.prefix).map_err(|brace| {
            RedisConfigError::PrefixWithBrace {
                prefix: settings.prefix.clone(),
                brace,
            }
        })?;
        let client_error = |reason: redis::RedisError| RedisConfigError::Client {
            url: settings.target.to_string(),
            reason: reason.to_string(),
        };
        let listeners = match &settings.target {
            RedisTarget::Single(url) => vec![redis_conn::client(url, tls)?],
            RedisTarget::Cluster(nodes) => nodes
                .iter()
                .map(|node| redis_conn::client(node, tls))
                .collect::<Result<_, _>>()?,
        };
        let conn = match &settings.target {
            RedisTarget::Single(url) => {
                let client = redis_conn::client(url, tls)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(settings.timeout))
                    .set_response_timeout(Some(settings.timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                RedisLink::Single(
                    ConnectionManager::new_lazy_with_config(client, config)
                        .map_err(client_error)?,
                )
            }
            RedisTarget::Cluster(nodes) => {
                let client = redis_conn::cluster_client(nodes, tls)?
                    .connection_timeout(settings.timeout)
                    .response_timeout(settings.timeout)
                    // A redirection or a reconnection is retried at once and twice at most:
                    // the store timeout bounds the whole call (`RedisLink`), and a request
                    // that cannot be served fails fast rather than waiting out a failover.
                    .retries(2)
                    .min_retry_wait(10)
                    .max_retry_wait(100)
                    .build()
                    .map_err(client_error)?;
                RedisLink::Cluster(
                    client.get_pending_async_connection_with_config(
                        redis::cluster::ClusterConfig::new()
                            .set_connection_timeout(settings.timeout)
                            .set_response_timeout(settings.timeout),
                    ),
                    settings.timeout,
                )
            }
        };
        // Counters and catalog lists are kept while the feed is followed; not at all without
        // the shared cache.
        let followed_within = if settings.shared_cache.is_zero() {
            Duration::ZERO
        } else {
            FOLLOWED_WITHIN
        };
        Ok(Self {
            conn,
            keys: Keys::new(settings.prefix.clone()),
            catalog: RwLock::new(CatalogCache::default()),
            counters: VideoCounters::new(followed_within, SHARED_CACHE_MAX),
            lists: SharedCache::new(settings.shared_cache, SHARED_CACHE_MAX),
            catalog_lists: CatalogLists::new(followed_within, CATALOG_LISTS_MAX),
            recent: Arc::new(RecentLists::new(
                !settings.shared_cache.is_zero(),
                RECENT_LISTS_MAX,
            )),
            log: LogSettings::default(),
            ingest: Ingest::new(IngestSettings::default(), IngestMetrics::unregistered()),
            followed: None,
            state_reads: StateReads::unregistered(),
            listeners,
            timeout: settings.timeout,
        })
    }

    /// Hears every user write announced by any replica (this one included) and hands it to
    /// `peers` until `stop` ([`redis_peers`]): run it for the life of the replica. While it
    /// hears them, the store keeps friends' recent engagements it read until their next write,
    /// each used at most `trust` after its read ([`super::recent_lists`]).
    pub async fn listen_to_peers(
        &self,
        peers: Arc<dyn PeerWrites>,
        trust: Duration,
        stop: CancellationToken,
    ) {
        let peers = Arc::new(StorePeers {
            recent: self.recent.clone(),
            trust,
            next: peers,
        });
        redis_peers::listen(
            self.listeners.clone(),
            self.keys.peer_writes_channel(),
            self.timeout,
            peers,
            stop,
        )
        .await;
    }

    /// The command moving the versions of `users` and announcing each write to every replica;
    /// goes in the transaction of their writes (`None` for no user).
    fn users_written<'u>(&self, users: impl IntoIterator<Item = &'u str>) -> Option<Cmd> {
        redis_peers::users_written(
            &self.keys.peer_writes_channel(),
            users
                .into_iter()
                .map(|user| (self.keys.user_version(user), user)),
        )
    }

    /// The store with these ingest-stream settings and metrics ([`redis_events`]).
    pub fn with_ingest(mut self, settings: IngestSettings, metrics: IngestMetrics) -> Self {
        self.followed = (settings.mode == AggregatesMode::Process).then(FollowedState::default);
        self.ingest = Ingest::new(settings, metrics);
        self
    }

    /// The shared aggregates folded in process (`--shared-aggregates process`): what this
    /// replica's [`Follower`](super::redis_follower::Follower) folds into and its rankings read.
    pub fn followed(&self) -> Option<&FollowedState> {
        self.followed.as_ref()
    }

    /// Counts where what rankings read came from in `reads` (a registered
    /// `feed_ranking_state_reads_total`).
    pub fn with_state_reads(mut self, reads: StateReads) -> Self {
        self.state_reads = reads;
        self
    }

    pub(super) fn connection(&self) -> &RedisLink {
        &self.conn
    }

    pub(super) fn keys(&self) -> &Keys {
        &self.keys
    }

    pub(super) fn ingest(&self) -> &Ingest {
        &self.ingest
    }

    /// The ingest stream.
    pub(super) fn ingest_key(&self) -> String {
        self.keys.ingest_stream()
    }

    /// Events accepted and not yet applied.
    pub(super) fn backlog_key(&self) -> String {
        self.keys.ingest_backlog()
    }

    /// The exposure log.
    pub(super) fn log_key(&self) -> String {
        self.keys.exposure_log()
    }

    /// How this replica writes and caps the exposure log.
    pub(super) fn log_settings(&self) -> &LogSettings {
        &self.log
    }

    /// Counts `n` exposure-log events dropped to make room.
    pub(super) fn log_dropped(&self, n: u64) {
        self.log.dropped.inc_by(n);
    }

    /// Marks the counters of `ids` changed (this replica's consumer just wrote them).
    pub(super) fn forget_stats<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        self.counters.changed(ids);
    }

    /// The video counters kept in process ([`VideoCounters`]).
    pub(super) fn counters(&self) -> &VideoCounters {
        &self.counters
    }

    /// The source lists kept while the catalog version holds (followed with the counter change
    /// feed, which observes the version).
    pub(super) fn catalog_lists(&self) -> &CatalogLists<ListKey> {
        &self.catalog_lists
    }

    /// The counter change feed (`store::redis_counter_feed`).
    pub(super) fn counter_feed_key(&self) -> String {
        self.keys.counter_changes()
    }

    /// The duration buckets' totals, read whole by every poll of the counter feed.
    pub(super) fn durations_key(&self) -> String {
        self.keys.durations()
    }

    /// The catalog version, moved by every catalog write.
    pub(super) fn catalog_version_key(&self) -> String {
        self.keys.catalog_version()
    }

    /// Adds the writes of `d` to the shared aggregates to `pipe`.
    pub(super) fn shared_commands(&self, pipe: &mut Pipeline, d: &SharedDeltas) {
        redis_counter_feed::announce(
            pipe,
            &self.counter_feed_key(),
            d.video_stats.keys().map(String::as_str),
        );
        for (id, s) in &d.video_stats {
            let key = self.keys.video_stats(id);
            for (field, value) in VideoStats::FIELDS.iter().zip(s.values()) {
                if value != 0.0 {
                    pipe.hincr(&key, *field, value).ignore();
                }
            }
        }
        for (id, n) in &d.exposures {
            pipe.zincr(self.keys.exposures(), id, *n).ignore();
        }
        for (bucket, add) in d.durations.iter().enumerate() {
            for counter in BucketCounter::ALL {
                let value = add.get(counter);
                if value != 0.0 {
                    pipe.cmd("HINCRBYFLOAT")
                        .arg(self.keys.durations())
                        .arg(bucket_field(bucket, counter))
                        .arg(value)
                        .ignore();
                }
            }
        }
        for ((scope, day), incs) in &d.trending {
            let key = self.trending_key(scope, *day);
            for (id, w) in incs {
                pipe.zincr(&key, id, *w).ignore();
            }
            pipe.expire_at(&key, (day + 1) * 86_400 + TRENDING_RETENTION_SECS)
                .ignore();
        }
        // One ZADD per chunk of users, not per user (chunks bound the script's `unpack`).
        let active: Vec<(&String, &f64)> = d.active.iter().collect();
        for chunk in active.chunks(ACTIVE_PER_ZADD) {
            let zadd = pipe.cmd("ZADD").arg(self.keys.active_users()).arg("GT");
            for (user, ts) in chunk {
                zadd.arg(**ts).arg(*user);
            }
            zadd.ignore();
        }
        if !d.log.is_empty() {
            redis_log::append(pipe, &self.log_key(), &self.log, &d.log);
        }
    }

    /// The store with its exposure log capped at `log.capacity` events.
    pub fn with_log(mut self, log: LogSettings) -> Self {
        self.log = log;
        self
    }

    async fn run(&self, pipe: &Pipeline) -> Result<Vec<Value>, StoreError> {
        self.conn.query(pipe).await
    }

    /// Runs `pipe` (one command reading a cached blob) with `user`'s version read after it:
    /// two slots on a cluster (the page's, the user's), sent at once, one round trip.
    async fn with_user_version<T: redis::FromRedisValue>(
        &self,
        mut pipe: Pipeline,
        user: &str,
    ) -> Result<(T, UserVersion), StoreError> {
        pipe.get(self.keys.user_version(user));
        let mut replies = self.run(&pipe).await?.into_iter();
        let mut next = || {
            replies
                .next()
                .ok_or_else(|| corrupt("short pipeline reply"))
        };
        let blob = parse(next()?)?;
        let version = version_of(next()?)?;
        Ok((blob, version))
    }

    /// The sending users' own writes of `d` (affinities, taste, seen set, recent engagements),
    /// by user, every touched user present: each user's commands name only that user's keys (one
    /// cluster slot), their replies ignored. The version moves go with them
    /// ([`Self::users_written`]). With `--user-sums-format log` the affinities and the taste
    /// are instead each user's one append to the sums log, returned apart with what it appended
    /// ([`SumsAppend`]): its reply, the log's length, tells whether to compact it.
    fn own_writes<'d>(&self, d: &'d Deltas) -> OwnWrites<'d> {
        let mut writes: BTreeMap<&str, Vec<Cmd>> = BTreeMap::new();
        let mut appends: BTreeMap<&str, (Cmd, SumsAppend)> = BTreeMap::new();
        match self.ingest.settings.user_sums_format {
            UserSumsFormat::Fields => {
                // Anchored sums: one `HINCRBYFLOAT` per field, nothing read (`super::anchored`).
                for (user, adds) in &d.affinity {
                    let hash = self.keys.affinity(user);
                    let cmds = writes.entry(user).or_default();
                    for (field, increment) in anchored::increments(adds, AFFINITY_HALF_LIFE_SECS) {
                        let mut cmd = redis::cmd("HINCRBYFLOAT");
                        cmd.arg(&hash).arg(field).arg(increment);
                        cmds.push(cmd);
                    }
                }
                // The taste: one `BITFIELD` per user and era, every dimension in it
                // (`super::taste_sums`).
                for (user, adds) in &d.taste {
                    let cmds = writes.entry(user).or_default();
                    for (era, dims) in taste_sums::increments(adds, AFFINITY_HALF_LIFE_SECS) {
                        cmds.push(taste_sums::bitfield(&self.keys.taste_era(user, era), &dims));
                    }
                }
            }
            UserSumsFormat::Log => {
                let users: BTreeSet<&str> = d
                    .affinity
                    .keys()
                    .chain(d.taste.keys())
                    .map(String::as_str)
                    .collect();
                for user in users {
                    let affinity = d.affinity.get(user).map_or_else(Vec::new, |adds| {
                        anchored::terms(adds, AFFINITY_HALF_LIFE_SECS)
                    });
                    let taste = d.taste.get(user).map_or_else(Vec::new, |adds| {
                        taste_sums::terms(adds, AFFINITY_HALF_LIFE_SECS)
                    });
                    let bytes = user_sums::append_bytes(&affinity, &taste);
                    if bytes.is_empty() {
                        continue;
                    }
                    let key = self.keys.user_sums(user);
                    let mut cmd = redis::cmd("APPEND");
                    cmd.arg(&key).arg(&bytes);
                    let append = SumsAppend {
                        key,
                        bytes: bytes.len(),
                    };
                    appends.insert(user, (cmd, append));
                    writes.entry(user).or_default();
                }
            }
        }
        for (user, seen) in d.seen.iter().filter(|(_, seen)| !seen.is_empty()) {
            let key = self.keys.seen(user);
            let mut zadd = redis::cmd("ZADD");
            zadd.arg(&key).arg("GT");
            for (id, ts) in seen {
                zadd.arg(*ts).arg(id);
            }
            let mut trim = redis::cmd("ZREMRANGEBYRANK");
            trim.arg(&key).arg(0).arg(-(SEEN_MEMORY as isize) - 1);
            writes.entry(user).or_default().extend([zadd, trim]);
        }
        for (user, recent) in d.recent.iter().filter(|(_, recent)| !recent.is_empty()) {
            let key = self.keys.recent(user);
            let mut push = redis::cmd("LPUSH");
            push.arg(&key).arg(recent);
            let mut trim = redis::cmd("LTRIM");
            trim.arg(&key).arg(0).arg(RECENT_MEMORY as isize - 1);
            writes.entry(user).or_default().extend([push, trim]);
        }
        for user in d.touched_users() {
            writes.entry(user).or_default();
        }
        OwnWrites { writes, appends }
    }

    /// Adds the reads of `user`'s state (taste of `eras`) to `pipe`; [`user_state_of`] parses
    /// their replies.
    fn read_user_state(&self, pipe: &mut Pipeline, user: &str, eras: &[i64]) {
        pipe.get(self.keys.user_version(user))
            .hgetall(self.keys.user_profile(user))
            .smembers(self.keys.followed_creators(user))
            .smembers(self.keys.friends(user))
            .zcard(self.keys.seen(user))
            .hgetall(self.keys.affinity(user))
            .hgetall(self.keys.taste(user));
        for &era in eras {
            pipe.get(self.keys.taste_era(user, era));
        }
        pipe.get(self.keys.user_sums(user));
    }

    /// With the shared aggregates folded in process, adds to `pipe` (a catalog write's
    /// transaction) the stream entry of `changes`, so that every replica folds them at the same
    /// point of the stream, its reply (the entry's id) the transaction's only one; nothing
    /// otherwise (the transaction writes the keys).
    fn announce_catalog(
        &self,
        pipe: &mut Pipeline,
        changes: impl IntoIterator<Item = CatalogChange>,
    ) -> Result<(), StoreError> {
        if self.followed.is_none() {
            return Ok(());
        }
        let entry = SharedDeltas {
            catalog: changes.into_iter().collect(),
            ..SharedDeltas::default()
        };
        let payload = entry
            .encode(self.ingest.settings.entry_format)
            .map_err(corrupt)?;
        pipe.cmd("XADD")
            .arg(self.ingest_key())
            .arg("*")
            .arg(redis_events::FIELD)
            .arg(payload);
        Ok(())
    }

    /// After a catalog write whose transaction answered `replies`: with the shared aggregates
    /// folded in process, waits (at most the store timeout) until this replica has folded its
    /// entry, so that the writer's next ranking here sees it (other replicas within their poll).
    /// A write not yet folded when the wait ends is still durable: the wait only delays the
    /// answer.
    async fn await_own_catalog_write(&self, replies: Vec<Value>) -> Result<(), StoreError> {
        let Some(followed) = &self.followed else {
            return Ok(());
        };
        let id: String = parse(
            replies
                .into_iter()
                .next()
                .ok_or_else(|| corrupt("no XADD reply"))?,
        )?;
        let id = redis_events::stream_id(&id).ok_or_else(|| corrupt("stream entry id"))?;
        if !followed.wait_folded(id, self.timeout).await {
            tracing::debug!(%id, "catalog write not yet folded by this replica");
        }
        // Lists a ranking built from the state before the fold must not be kept.
        self.forget_catalog();
        Ok(())
    }

    /// The trending list of `scope` on UTC day `day`.
    fn trending_key(&self, scope: &TrendingScope, day: i64) -> String {
        self.keys.trending(scope, day)
    }
}

impl RedisStore {
    /// Compacts the sums log `key` in a task of its own: the POST whose append crossed a
    /// threshold does not wait for it ([`user_sums`]). Counted by outcome.
    fn spawn_compaction(&self, key: String) {
        let conn = self.conn.clone();
        let counter = self.ingest.metrics.user_sums_compactions.clone();
        tokio::spawn(async move {
            let outcome = compact_user_sums(&conn, &key).await;
            counter.with_label_values(&[outcome.as_str()]).inc();
        });
    }
}

/// Reads the sums log `key`, sums it, and replaces the bytes read with their sums when that
/// halves them at least and the log still begins as read ([`user_sums`]). Failures are logged;
/// the next threshold retries.
async fn compact_user_sums(conn: &RedisLink, key: &str) -> CompactionOutcome {
    let read: Option<Vec<u8>> = match conn.cmd(redis::cmd("GET").arg(key)).await {
        Ok(read) => read,
        Err(error) => {
            tracing::warn!(key, %error, "reading a user's sums log to compact it failed");
            return CompactionOutcome::Failed;
        }
    };
    let Some(read) = read else {
        return CompactionOutcome::Unchanged;
    };
    let compacted = match user_sums::compact(&read, rand::random()) {
        Ok(compacted) => compacted,
        Err(error) => {
            tracing::warn!(key, %error, "a user's sums log does not parse; not compacted");
            return CompactionOutcome::Failed;
        }
    };
    if !user_sums::worth_replacing(read.len(), compacted.len()) {
        return CompactionOutcome::Unchanged;
    }
    match conn
        .cmd::<i64>(&user_sums::replace_prefix(key, &read, &compacted))
        .await
    {
        Ok(1) => CompactionOutcome::Compacted,
        Ok(_) => CompactionOutcome::Unchanged,
        Err(error) => {
            tracing::warn!(key, %error, "replacing a user's sums log with its sums failed");
            CompactionOutcome::Failed
        }
    }
}

/// A batch's own writes by user ([`RedisStore::own_writes`]).
struct OwnWrites<'d> {
    /// Commands whose replies are ignored, every touched user present.
    writes: BTreeMap<&'d str, Vec<Cmd>>,
    /// With `--user-sums-format log`: each user's `APPEND` to the sums log, and what it
    /// appended.
    appends: BTreeMap<&'d str, (Cmd, SumsAppend)>,
}

/// What one user's `APPEND` to the sums log appended ([`user_sums`]).
struct SumsAppend {
    /// The log's key.
    key: String,
    /// Bytes appended.
    bytes: usize,
}

/// One transaction of `cmds`, replies ignored.
fn transaction(cmds: impl IntoIterator<Item = Cmd>) -> Pipeline {
    let mut pipe = redis::pipe();
    pipe.atomic();
    for cmd in cmds {
        pipe.add_command(cmd).ignore();
    }
    pipe
}

#[async_trait]
impl Store for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.conn
            .cmd::<Value>(&redis::cmd("PING"))
            .await
            .map(|_| ())
    }

    async fn put_videos(&self, videos: &[Video]) -> Result<(), StoreError> {
        if videos.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = videos.iter().map(|v| String::from(&*v.id)).collect();
        let old = self.get_videos(&ids).await?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (v, old) in videos.iter().zip(old) {
            if let Some(old) = old {
                for k in self.keys.index_keys(&old) {
                    pipe.zrem(k, &*old.id).ignore();
                }
            }
            let json = serde_json::to_string(v).map_err(corrupt)?;
            pipe.set(self.keys.video(&v.id), json).ignore();
            let published = v.published_at.timestamp_millis();
            for k in self.keys.index_keys(v) {
                pipe.zadd(k, &*v.id, published).ignore();
            }
            pipe.cmd("ZADD")
                .arg(self.keys.exposures())
                .arg("NX")
                .arg(0)
                .arg(&*v.id)
                .ignore();
        }
        self.announce_catalog(
            &mut pipe,
            videos
                .iter()
                .map(|v| CatalogChange::Added(String::from(&*v.id))),
        )?;
        pipe.incr(self.keys.catalog_version(), 1).ignore();
        let replies = self.run(&pipe).await?;
        self.forget_catalog();
        self.await_own_catalog_write(replies).await
    }

    async fn delete_video(&self, id: &str) -> Result<bool, StoreError> {
        let Some(Some(old)) = self.get_videos(&[id.to_owned()]).await?.pop() else {
            return Ok(false);
        };
        let mut pipe = redis::pipe();
        pipe.atomic();
        for k in self.keys.index_keys(&old) {
            pipe.zrem(k, id).ignore();
        }
        pipe.zrem(self.keys.exposures(), id).ignore();
        pipe.del(self.keys.video(id)).ignore();
        pipe.del(self.keys.video_stats(id)).ignore();
        redis_counter_feed::announce(&mut pipe, &self.counter_feed_key(), [id]);
        self.announce_catalog(&mut pipe, [CatalogChange::Deleted(id.to_owned())])?;
        pipe.incr(self.keys.catalog_version(), 1).ignore();
        let replies = self.run(&pipe).await?;
        self.forget_catalog();
        self.forget_stats([id]);
        self.await_own_catalog_write(replies).await?;
        Ok(true)
    }

    async fn get_videos(&self, ids: &[String]) -> Result<Vec<Option<Video>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.get(self.keys.video(id));
        }
        let raw = self.run(&pipe).await?;
        raw.into_iter()
            .map(|v| match parse::<Option<String>>(v)? {
                Some(json) => serde_json::from_str(&json).map(Some).map_err(corrupt),
                None => Ok(None),
            })
            .collect()
    }

    /// From the catalog cache when the catalog version read in the same round trip is the one
    /// the cached entries were read at; otherwise the cached entries are read again (a second
    /// round trip, after any catalog write on any replica). An event for a video deleted on
    /// another replica is therefore rejected once the deletion has committed, as with
    /// [`Store::get_videos`].
    async fn event_videos(
        &self,
        ids: &[String],
    ) -> Result<Vec<Option<Arc<CatalogEntry>>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let terms = vocabulary::known_each(ids.iter().map(String::as_str));
        let (cached_at, mut videos) = self.catalog.read().lookup(terms.into_iter());
        let missing: Vec<usize> = (0..ids.len()).filter(|&i| videos[i].is_none()).collect();
        let mut pipe = redis::pipe();
        pipe.get(self.keys.catalog_version());
        for &i in &missing {
            pipe.get(self.keys.video(&ids[i]));
        }
        let replies = self.run(&pipe).await?;
        if replies.len() != missing.len() + 1 {
            return Err(corrupt("short pipeline reply"));
        }
        let mut replies = replies.into_iter();
        let version = match replies.next() {
            Some(v) => parse::<Option<i64>>(v)?.unwrap_or(0),
            None => return Err(corrupt("short pipeline reply")),
        };
        for (&i, reply) in missing.iter().zip(replies) {
            videos[i] = video_of(reply)?;
        }
        self.settle_catalog_read(ids, cached_at, version, &mut videos, &missing)
            .await?;
        Ok(videos)
    }

    async fn apply(&self, d: &Deltas) -> Result<(), StoreError> {
        if self.ingest.admit().is_err() {
            // What this replica last saw may be stale (it may not consume): ask before refusing.
            let backlog: Option<i64> = self
                .conn
                .cmd(redis::cmd("GET").arg(self.backlog_key()))
                .await?;
            self.ingest.observe(backlog.unwrap_or(0));
            self.ingest.admit()?;
        }
        let payload =
            SharedDeltas::encode_of(d, self.ingest.settings.entry_format).map_err(corrupt)?;
        let OwnWrites {
            writes,
            mut appends,
        } = self.own_writes(d);
        // The sums logs' lengths after the appends, by user.
        let mut lengths: Vec<(SumsAppend, Value)> = Vec::with_capacity(appends.len());
        // On one server, the appends whose replies come first in the transaction's, in order.
        let mut in_commit: Vec<SumsAppend> = Vec::new();
        // The commit: on one server everything in it, on a cluster after each user's own slot
        // (see the module docs).
        let mut pipe = if self.conn.is_cluster() {
            let users = writes.into_iter().map(|(user, cmds)| {
                let mut tx = transaction(cmds.into_iter().chain(self.users_written([user])));
                let append = appends.remove(user).map(|(cmd, append)| {
                    tx.add_command(cmd);
                    append
                });
                async move {
                    let replies = self.run(&tx).await?;
                    Ok::<_, StoreError>(append.zip(replies.into_iter().next()))
                }
            });
            lengths.extend(
                futures::future::try_join_all(users)
                    .await?
                    .into_iter()
                    .flatten(),
            );
            transaction([])
        } else {
            let written = self.users_written(writes.keys().copied());
            let mut pipe = transaction(writes.into_values().flatten().chain(written));
            for (cmd, append) in appends.into_values() {
                pipe.add_command(cmd);
                in_commit.push(append);
            }
            pipe
        };
        redis_events::enqueue(
            &mut pipe,
            &self.ingest_key(),
            &self.backlog_key(),
            &payload,
            d.log.len(),
        );
        let mut replies = self.run(&pipe).await?.into_iter();
        lengths.extend(in_commit.into_iter().zip(replies.by_ref()));
        let backlog: i64 = match replies.next() {
            Some(v) => parse(v)?,
            None => return Err(corrupt("no INCRBY reply")),
        };
        self.ingest.observe(backlog);
        self.ingest.wake();
        for (append, reply) in lengths {
            let len: usize = parse(reply)?;
            if user_sums::crosses_threshold(len, append.bytes) {
                self.spawn_compaction(append.key);
            }
        }
        Ok(())
    }

    async fn set_follows(&self, user: &str, follows: &Follows) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (key, ids) in [
            (self.keys.followed_creators(user), &follows.creators),
            (self.keys.friends(user), &follows.friends),
        ] {
            pipe.del(&key).ignore();
            if !ids.is_empty() {
                pipe.sadd(&key, ids).ignore();
            }
        }
        if let Some(cmd) = self.users_written([user]) {
            pipe.add_command(cmd).ignore();
        }
        self.run(&pipe).await.map(|_| ())
    }

    async fn set_profile(&self, user: &str, profile: &UserProfile) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.hset_multiple(
            self.keys.user_profile(user),
            &[("language", &profile.language), ("region", &profile.region)],
        )
        .ignore();
        if let Some(cmd) = self.users_written([user]) {
            pipe.add_command(cmd).ignore();
        }
        self.run(&pipe).await.map(|_| ())
    }

    async fn user_state(&self, user: &str, now: f64) -> Result<UserState, StoreError> {
        let eras = taste_sums::eras_read_at(now, AFFINITY_HALF_LIFE_SECS);
        let mut pipe = redis::pipe();
        self.read_user_state(&mut pipe, user, &eras);
        let mut replies = self.run(&pipe).await?.into_iter();
        user_state_of(&mut replies, &eras)
    }

    async fn candidate_lists(&self, q: &CandidateQuery) -> Result<CandidateLists, StoreError> {
        self.read_lists(q).await
    }

    async fn candidates(
        &self,
        user: &str,
        seen: &SeenRead,
        candidates: &[CandidateRef<'_>],
    ) -> Result<Vec<Option<CandidateData>>, StoreError> {
        self.read_candidates(user, seen, candidates).await
    }

    async fn active_users(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        if let Some(followed) = &self.followed {
            let f = followed.read();
            return Ok(f
                .aggregates()
                .recently_active()
                .take(limit)
                .map(str::to_owned)
                .collect());
        }
        let mut pipe = redis::pipe();
        pipe.zrevrange(self.keys.active_users(), 0, limit as isize - 1);
        let mut replies = self.run(&pipe).await?;
        parse(
            replies
                .pop()
                .ok_or_else(|| corrupt("short pipeline reply"))?,
        )
    }

    async fn cache_get_for_user(
        &self,
        key: &str,
        user: &str,
    ) -> Result<(Option<Vec<u8>>, UserVersion), StoreError> {
        let mut pipe = redis::pipe();
        pipe.get(self.keys.cached(key));
        self.with_user_version(pipe, user).await
    }

    async fn cache_prefix_for_user(
        &self,
        key: &str,
        len: usize,
        user: &str,
    ) -> Result<(Vec<u8>, UserVersion), StoreError> {
        // `GETRANGE k 0 -1` would be the whole blob: no bytes asked, none read.
        let Some(last) = len.checked_sub(1) else {
            return Ok((Vec::new(), self.cache_get_for_user(key, user).await?.1));
        };
        let mut pipe = redis::pipe();
        pipe.getrange(self.keys.cached(key), 0, last as isize);
        self.with_user_version(pipe, user).await
    }

    /// The head and the user's state in one round trip (two slots on a cluster, sent at once);
    /// the state's version is the one the head is checked against. The rest of the state is
    /// decoded only for a ranking ([`StateRead`]).
    async fn cache_get_with_user_state(
        &self,
        key: &str,
        user: &str,
        now: f64,
    ) -> Result<(Option<Vec<u8>>, StateRead), StoreError> {
        let eras = taste_sums::eras_read_at(now, AFFINITY_HALF_LIFE_SECS);
        let mut pipe = redis::pipe();
        pipe.get(self.keys.cached(key));
        self.read_user_state(&mut pipe, user, &eras);
        let mut replies = self.run(&pipe).await?.into_iter();
        let blob = parse(
            replies
                .next()
                .ok_or_else(|| corrupt("short pipeline reply"))?,
        )?;
        let state: Vec<Value> = replies.collect();
        let version = version_of(
            state
                .first()
                .cloned()
                .ok_or_else(|| corrupt("short pipeline reply"))?,
        )?;
        let read = StateRead::deferred(version, move || {
            user_state_of(&mut state.into_iter(), &eras)
        });
        Ok((blob, read))
    }

    async fn cache_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut pipe = redis::pipe();
        pipe.get(self.keys.cached(key));
        let mut replies = self.run(&pipe).await?;
        parse(
            replies
                .pop()
                .ok_or_else(|| corrupt("short pipeline reply"))?,
        )
    }

    async fn cache_put(&self, entries: &[CacheEntry]) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        for (k, v, ttl) in entries {
            pipe.pset_ex(
                self.keys.cached(k),
                v.as_slice(),
                ttl.as_millis().max(1) as u64,
            );
        }
        self.conn.exec(&pipe).await
    }

    async fn read_log(&self, max: usize) -> Result<Vec<LoggedEvent>, StoreError> {
        let key = self.keys.exposure_log();
        let mut newest_first: Vec<LoggedEvent> = Vec::new();
        let (mut last, mut per_entry): (Option<String>, usize) = (None, 1);
        while newest_first.len() < max {
            let wanted = max - newest_first.len();
            let cmd = redis_log::page_command(&key, last.as_deref(), wanted, per_entry);
            let reply: Value = self.conn.cmd(&cmd).await?;
            let page = redis_log::parse_page(reply)?;
            let Some((id, _)) = page.last() else { break };
            last = Some(id.clone());
            per_entry = redis_log::events_per_entry(&page);
            newest_first.extend(page.into_iter().map(|(_, e)| e));
        }
        // A batched entry may hold more than the events still wanted.
        newest_first.truncate(max);
        newest_first.reverse();
        Ok(newest_first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &[u8]) -> Value {
        Value::BulkString(s.to_vec())
    }

    #[test]
    fn a_hash_reply_is_read_in_either_protocol_and_a_corrupt_one_is_refused() {
        let flat = Value::Array(vec![
            bulk(b"~1:c:a"),
            bulk(b"2.5"),
            bulk(b"t:x"),
            bulk(b"1"),
        ]);
        let want = vec![("~1:c:a", "2.5"), ("t:x", "1")];
        assert_eq!(hash_pairs(&flat).expect("RESP2"), want);
        let map = Value::Map(vec![
            (bulk(b"~1:c:a"), bulk(b"2.5")),
            (bulk(b"t:x"), bulk(b"1")),
        ]);
        assert_eq!(hash_pairs(&map).expect("RESP3"), want);
        assert_eq!(hash_pairs(&Value::Array(vec![])).expect("empty"), vec![]);
        assert_eq!(hash_pairs(&Value::Nil).expect("no key"), vec![]);

        for bad in [
            Value::Array(vec![bulk(b"c:a")]),
            Value::Array(vec![bulk(b"c:\xff"), bulk(b"1")]),
            Value::Array(vec![bulk(b"c:a"), Value::Int(1)]),
            Value::Int(3),
        ] {
            assert!(
                matches!(hash_pairs(&bad), Err(StoreError::Corrupt(_))),
                "{bad:?} accepted"
            );
        }
    }
}
