//! The one-off step from `--shared-aggregates redis` to `--shared-aggregates process`
//! (`feed-server --checkpoint-from-redis`): the shared aggregates the consumers applied to Redis
//! keys become the first checkpoint, at stream id `0-0`.
//!
//! The consumers' apply script deletes every entry it applies in the same atomic step, so the
//! entries left in the ingest stream are exactly those not applied: replicas in process mode
//! load the checkpoint and fold every entry left (the checkpoint writer logs them to the
//! exposure log too, which the consumers never did for them). The consumers must be stopped
//! first (`--event-consumer false` on every replica; accepts go on), so that the keys read are
//! stable: the step refuses while a consumer of the group polled within
//! [`CONSUMERS_SILENT_FOR`]. It writes nothing but the checkpoint (the old keys stay, for a
//! rollback) and refuses when a checkpoint exists.
//!
//! What is read: every video's counters (`P{shared}:vs:*`), the duration buckets, every
//! trending list (`P{shared}:tr:*`, `P{shared}:trr:*`), the exposures and last activity. Keys
//! are listed with `SCAN` run inside a script keyed by the manifest, so that on a Redis Cluster
//! it runs on the master of the shared slot, where they all are.

use std::collections::HashMap;
use std::time::Duration;

use redis::Value;
use thiserror::Error;

use super::StoreError;
use super::redis_checkpoint::{self, CheckpointError, CheckpointSettings, Snapshot, Written};
use super::redis_counter_feed::durations_of;
use super::redis_events::{GROUP, corrupt};
use super::redis_store::{RedisStore, stats_of};
use crate::learning::aggregates::SharedAggregates;
use crate::learning::shared::SharedDeltas;
use crate::learning::{TrendingScope, VideoStats};
use crate::store::keys::EVERY_LANGUAGE;

/// How long every consumer of the group must have been silent before the step runs: a live
/// consumer polls every 20 ms.
pub const CONSUMERS_SILENT_FOR: Duration = Duration::from_secs(5);

/// `SCAN` on the node of `KEYS[1]`'s slot: `ARGV` cursor, pattern, count.
const SCAN: &str = "return redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])";

/// Keys read per round trip.
const PAGE: usize = 1_000;

/// Why the step did not run.
#[derive(Debug, Error)]
pub enum MigrationError {
    /// A consumer of the ingest stream is still applying batches to the keys.
    #[error(
        "consumer {name} of the ingest stream polled {idle_ms} ms ago: stop the consumers first (--event-consumer false on every replica)"
    )]
    ConsumersRunning {
        /// The consumer's name (host, process, start time).
        name: String,
        /// Milliseconds since it last polled.
        idle_ms: u64,
    },
    /// A checkpoint exists: the aggregates are already kept in process.
    #[error("a checkpoint exists already (at stream id {0}): nothing to migrate")]
    AlreadyCheckpointed(String),
    /// Redis failed or answered something unreadable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The checkpoint could not be written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// What the step read and wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Migrated {
    /// Videos with counters.
    pub videos: usize,
    /// Trending lists (scope and day).
    pub trending_lists: usize,
    /// Videos in the long tail.
    pub exposures: usize,
    /// Users with a last activity.
    pub users: usize,
    /// Entries left in the ingest stream, which replicas in process mode will fold.
    pub pending_entries: u64,
    /// Bytes of the checkpoint.
    pub bytes: usize,
}

/// Whether this Redis holds aggregates the consumers applied and no checkpoint: a replica in
/// process mode would start from an empty state, so it refuses until the step has run.
pub async fn needs_migration(store: &RedisStore) -> Result<bool, StoreError> {
    if redis_checkpoint::manifest(store).await?.is_some() {
        return Ok(false);
    }
    Ok(group_consumers(store).await?.is_some())
}

/// The consumers of [`GROUP`] with their idle milliseconds; `None` when the group (or the
/// stream) does not exist.
async fn group_consumers(store: &RedisStore) -> Result<Option<Vec<(String, u64)>>, StoreError> {
    let stream = store.keys().ingest_stream();
    let groups = store
        .connection()
        .cmd_raw(redis::cmd("XINFO").arg("GROUPS").arg(&stream))
        .await;
    let groups: Vec<HashMap<String, Value>> = match groups {
        Ok(v) => redis::from_redis_value(v).map_err(corrupt)?,
        // No stream: nothing was ever accepted.
        Err(e) if e.to_string().contains("no such key") => return Ok(None),
        Err(e) => return Err(StoreError::Unavailable(e.to_string())),
    };
    let named = |g: &HashMap<String, Value>| {
        g.get("name")
            .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok())
            .is_some_and(|n| n == GROUP)
    };
    if !groups.iter().any(named) {
        return Ok(None);
    }
    let consumers: Vec<HashMap<String, Value>> = store
        .connection()
        .cmd(redis::cmd("XINFO").arg("CONSUMERS").arg(&stream).arg(GROUP))
        .await?;
    consumers
        .into_iter()
        .map(|c| {
            let field = |name: &str| c.get(name).cloned().ok_or_else(|| corrupt(name));
            Ok((
                redis::from_redis_value(field("name")?).map_err(corrupt)?,
                redis::from_redis_value(field("idle")?).map_err(corrupt)?,
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()
        .map(Some)
}

/// Every key matching `pattern` (glob, already escaped) on the shared slot's node.
async fn scan(store: &RedisStore, pattern: &str) -> Result<Vec<String>, StoreError> {
    let mut keys = Vec::new();
    let mut cursor = "0".to_owned();
    loop {
        let (next, page): (String, Vec<String>) = store
            .connection()
            .cmd(
                redis::cmd("EVAL")
                    .arg(SCAN)
                    .arg(1)
                    .arg(store.keys().checkpoint_manifest())
                    .arg(&cursor)
                    .arg(pattern)
                    .arg(PAGE),
            )
            .await?;
        keys.extend(page);
        if next == "0" {
            return Ok(keys);
        }
        cursor = next;
    }
}

/// `text` with Redis's glob characters escaped.
fn glob_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A whole sorted set with its scores.
async fn sorted_set(store: &RedisStore, key: &str) -> Result<HashMap<String, f64>, StoreError> {
    let pairs: Vec<(String, f64)> = store
        .connection()
        .cmd(
            redis::cmd("ZRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES"),
        )
        .await?;
    Ok(pairs.into_iter().collect())
}

/// The scope and day of a trending key's name after the shared prefix (`tr:<lang>:<day>`,
/// `trr:<region>:<day>`).
fn trending_of(name: &str) -> Option<(TrendingScope, i64)> {
    let (kind, rest) = name.split_once(':')?;
    let (scope, day) = rest.rsplit_once(':')?;
    let day = day.parse().ok()?;
    let scope = match kind {
        "tr" if scope == EVERY_LANGUAGE => TrendingScope::All,
        "tr" => TrendingScope::Language(scope.to_owned()),
        "trr" => TrendingScope::Region(scope.to_owned()),
        _ => return None,
    };
    Some((scope, day))
}

/// The shared aggregates held in Redis keys, as one fold.
async fn read_aggregates(store: &RedisStore) -> Result<(SharedAggregates, Migrated), StoreError> {
    let keys = store.keys();
    let shared = keys.shared_prefix();
    let stats_prefix = format!("{shared}vs:");
    let mut all = SharedDeltas::default();

    let stats_keys = scan(store, &format!("{}*", glob_literal(&stats_prefix))).await?;
    for page in stats_keys.chunks(PAGE) {
        let mut pipe = redis::pipe();
        for key in page {
            pipe.cmd("HMGET").arg(key).arg(&VideoStats::FIELDS[..]);
        }
        for (key, reply) in page.iter().zip(store.connection().query(&pipe).await?) {
            let id = key.strip_prefix(&stats_prefix).unwrap_or(key);
            all.video_stats.insert(id.to_owned(), stats_of(reply)?);
        }
    }
    let durations: Value = store
        .connection()
        .cmd(redis::cmd("HGETALL").arg(keys.durations()))
        .await?;
    all.durations = durations_of(durations)?;
    let mut trending_lists = 0;
    for kind in ["tr", "trr"] {
        for key in scan(store, &format!("{}{kind}:*", glob_literal(&shared))).await? {
            let Some(list) = key.strip_prefix(&shared).and_then(trending_of) else {
                continue;
            };
            let scores = sorted_set(store, &key).await?;
            trending_lists += 1;
            all.trending.insert(list, scores);
        }
    }
    all.exposures = sorted_set(store, &keys.exposures()).await?;
    all.active = sorted_set(store, &keys.active_users()).await?;
    let migrated = Migrated {
        videos: all.video_stats.len(),
        trending_lists,
        exposures: all.exposures.len(),
        users: all.active.len(),
        ..Migrated::default()
    };
    let mut state = SharedAggregates::default();
    state.apply(&all);
    Ok((state, migrated))
}

/// Fails while a consumer of the group polled within [`CONSUMERS_SILENT_FOR`].
async fn consumers_silent(store: &RedisStore) -> Result<(), MigrationError> {
    let silent = u64::try_from(CONSUMERS_SILENT_FOR.as_millis()).unwrap_or(u64::MAX);
    for (name, idle_ms) in group_consumers(store).await?.unwrap_or_default() {
        if idle_ms < silent {
            return Err(MigrationError::ConsumersRunning { name, idle_ms });
        }
    }
    Ok(())
}

/// Runs the step (see the module docs).
pub async fn checkpoint_from_redis(store: &RedisStore) -> Result<Migrated, MigrationError> {
    if let Some(m) = redis_checkpoint::manifest(store).await? {
        return Err(MigrationError::AlreadyCheckpointed(m.id.to_string()));
    }
    consumers_silent(store).await?;
    let (state, mut migrated) = read_aggregates(store).await?;
    // Again after the read: a consumer that started meanwhile may have applied batches the
    // read missed.
    consumers_silent(store).await?;
    migrated.pending_entries = store
        .connection()
        .cmd(redis::cmd("XLEN").arg(store.keys().ingest_stream()))
        .await?;
    let settings = CheckpointSettings::default();
    let snapshot = Snapshot::of(&state, 0, settings.chunk_bytes);
    migrated.bytes = snapshot.encoded_len();
    match redis_checkpoint::write(store, &snapshot, &settings).await? {
        Written::Moved => Ok(migrated),
        Written::NotNewer | Written::Refused => {
            let at = redis_checkpoint::manifest(store)
                .await?
                .map_or_else(|| "?".to_owned(), |m| m.id.to_string());
            Err(MigrationError::AlreadyCheckpointed(at))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trending_keys_name_their_scope_and_day() {
        assert_eq!(
            trending_of("tr:*:20000"),
            Some((TrendingScope::All, 20_000))
        );
        assert_eq!(
            trending_of("tr:pt:br:20000"),
            Some((TrendingScope::Language("pt:br".into()), 20_000))
        );
        assert_eq!(
            trending_of("trr:FR:-3"),
            Some((TrendingScope::Region("FR".into()), -3))
        );
        for other in ["tr:*", "tr:en:x", "vs:v1", "trx:en:1", ""] {
            assert_eq!(trending_of(other), None, "{other}");
        }
    }

    #[test]
    fn glob_characters_of_a_prefix_are_matched_literally() {
        assert_eq!(
            glob_literal("a*b?[c]\\{shared}:"),
            "a\\*b\\?\\[c\\]\\\\{shared}:"
        );
    }
}
