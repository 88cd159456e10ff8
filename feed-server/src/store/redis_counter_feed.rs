//! The counter change feed: the stream `P{shared}:vsc` says which videos' counters changed, so
//! every replica can keep the counters it read in process ([`VideoCounters`]) and drop exactly
//! those that changed.
//!
//! **Written** in the same atomic step as the change itself: the consumers' apply script appends
//! one entry per apply round naming the videos whose counters it moved ([`announce`] is one more
//! command of the script), and a video's deletion appends one in its MULTI/EXEC. Entries are
//! trimmed to the last [`RETENTION`] (`XADD … MINID ~`), so the stream stays small whatever the
//! event rate.
//!
//! **Followed** by every replica ([`follow`]): every [`POLL`] it reads the entries after the
//! last one it saw (`XREAD`, non-blocking, on the store's connection) and marks their videos
//! changed. The same round trip reads the catalog version, which the source lists only catalog
//! writes change are kept under and rankings check their cached catalog entries against
//! ([`super::catalog_lists`]), and the duration buckets' totals ([`super::video_counters`]); a
//! failed poll drops those too. The
//! first poll starts at the stream's end. The feed is followed without a gap as long as the
//! oldest entry left is not newer than the last one read: otherwise (entries trimmed before
//! they were read, Redis restarted empty) or when a poll fails (Redis down, a cluster
//! failover), the replica drops every kept counter and starts again at the end.
//!
//! **Bound.** A kept counter trails Redis by at most the time to the next poll (20 ms) plus the
//! poll's round trip: `feed_counter_feed_lag_seconds` is the age of the oldest change read by
//! the last poll. Kept counters are used only while the last successful poll is less than
//! [`FOLLOWED_WITHIN`] old, so a stuck follower costs reads, never staleness beyond that.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Pipeline;
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::redis_events::{FIELD, corrupt, entry, now_millis, parse_read, stream_id};
use super::{RedisStore, StoreError};
use crate::learning::aggregates::EntryId;
use crate::learning::{DurationStats, duration_stats_from_pairs};

/// How often a replica reads the feed.
pub const POLL: Duration = Duration::from_millis(20);

/// Kept counters are used only while the feed was read within this time.
pub const FOLLOWED_WITHIN: Duration = Duration::from_secs(1);

/// Entries younger than this are never trimmed: a follower that polled within it cannot miss
/// one.
pub const RETENTION: Duration = Duration::from_secs(60);

/// Most entries one poll reads; a full read is followed by another poll at once.
const READ_COUNT: usize = 1_000;

/// Adds to `pipe` the append of one entry naming `ids` (their counters changed); nothing for no
/// ids. The append trims entries older than [`RETENTION`].
pub fn announce<'a>(pipe: &mut Pipeline, key: &str, ids: impl IntoIterator<Item = &'a str>) {
    let ids: Vec<&str> = ids.into_iter().collect();
    if ids.is_empty() {
        return;
    }
    let Ok(payload) = serde_json::to_vec(&ids) else {
        unreachable!("a list of strings always encodes");
    };
    let oldest_kept = now_millis().saturating_sub(RETENTION.as_millis() as u64);
    pipe.cmd("XADD")
        .arg(key)
        .arg("MINID")
        .arg("~")
        .arg(oldest_kept)
        .arg("*")
        .arg(FIELD)
        .arg(payload)
        .ignore();
}

/// The duration buckets' totals from an `HGETALL` of `P{shared}:dur` (unknown fields ignored):
/// what each poll reads, and a ranking when the feed is not followed.
pub(super) fn durations_of(reply: redis::Value) -> Result<DurationStats, StoreError> {
    let raw: std::collections::HashMap<String, f64> =
        redis::from_redis_value(reply).map_err(corrupt)?;
    Ok(duration_stats_from_pairs(
        raw.iter().map(|(k, v)| (k.as_str(), *v)),
    ))
}

/// Where the follower is in the feed.
#[derive(Clone, Debug, PartialEq)]
enum Position {
    /// Not following: start at the end.
    Lost,
    /// After this entry id (`0-0`: the stream was empty).
    After(String),
}

/// What one poll found.
#[derive(Debug, PartialEq)]
struct Read {
    /// The id of the last entry read (the next poll starts after it).
    last: Option<String>,
    /// Ids of the videos changed.
    changed: Vec<String>,
    /// Unix milliseconds of the oldest entry read.
    oldest_ms: Option<u64>,
    /// The poll read as many entries as it may: read again at once.
    full: bool,
    /// The catalog version (`P{shared}:catv`, 0 before the first catalog write), read in the
    /// same round trip ([`super::catalog_lists`]).
    catalog_version: i64,
    /// The duration buckets' totals, read whole in the same round trip
    /// ([`super::video_counters`]).
    durations: DurationStats,
}

/// Why the feed cannot be followed from where the follower is.
#[derive(Debug, thiserror::Error)]
enum FeedError {
    #[error("entries after {after} were trimmed before they were read (oldest left: {oldest})")]
    Gap { after: String, oldest: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether the oldest entry left is newer than the last one read, i.e. entries may be missing.
fn gap(after: &str, oldest: Option<&str>) -> bool {
    match (stream_id(after), oldest.and_then(stream_id)) {
        (Some(EntryId::START), _) | (_, None) => false,
        (Some(after), Some(oldest)) => oldest > after,
        (None, Some(_)) => true,
    }
}

/// The videos named by `entries`; an entry this version cannot read counts as naming nothing
/// (the counters it was about are re-read after the next change, or after [`FOLLOWED_WITHIN`]
/// at worst on a follower that resets).
fn changed_ids(entries: &[super::redis_events::Entry]) -> Vec<String> {
    entries
        .iter()
        .filter_map(|e| e.payload.as_deref())
        .filter_map(|p| serde_json::from_slice::<Vec<String>>(p).ok())
        .flatten()
        .collect()
}

async fn start(store: &RedisStore) -> Result<String, StoreError> {
    let last: Vec<(String, Option<Vec<Vec<u8>>>)> = store
        .connection()
        .cmd(
            redis::cmd("XREVRANGE")
                .arg(store.counter_feed_key())
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1),
        )
        .await?;
    Ok(last
        .into_iter()
        .next()
        .map_or_else(|| "0-0".to_owned(), |(id, _)| id))
}

async fn poll(store: &RedisStore, after: &str) -> Result<Read, FeedError> {
    let key = store.counter_feed_key();
    let mut pipe = redis::pipe();
    pipe.cmd("XRANGE")
        .arg(&key)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1);
    pipe.cmd("XREAD")
        .arg("COUNT")
        .arg(READ_COUNT)
        .arg("STREAMS")
        .arg(&key)
        .arg(after);
    pipe.get(store.catalog_version_key());
    pipe.hgetall(store.durations_key());
    let mut replies = store.connection().query(&pipe).await?.into_iter();
    let (Some(first), Some(read), Some(version), Some(durations)) = (
        replies.next(),
        replies.next(),
        replies.next(),
        replies.next(),
    ) else {
        return Err(corrupt("short pipeline reply").into());
    };
    let durations = durations_of(durations)?;
    let catalog_version: Option<i64> = redis::from_redis_value(version).map_err(corrupt)?;
    let first: Vec<(String, Option<Vec<Vec<u8>>>)> =
        redis::from_redis_value(first).map_err(corrupt)?;
    let oldest = first.into_iter().next().map(|raw| entry(raw).id);
    if gap(after, oldest.as_deref()) {
        return Err(FeedError::Gap {
            after: after.to_owned(),
            oldest: oldest.unwrap_or_default(),
        });
    }
    let entries = parse_read(read)?;
    Ok(Read {
        last: entries.last().map(|e| e.id.clone()),
        changed: changed_ids(&entries),
        oldest_ms: entries
            .first()
            .and_then(|e| stream_id(&e.id))
            .map(|id| id.ms),
        full: entries.len() >= READ_COUNT,
        catalog_version: catalog_version.unwrap_or(0),
        durations,
    })
}

/// Follows the feed for the life of the replica (until `stop`), as the module docs say; returns
/// at once when the store keeps no counters (`--shared-cache-ms 0`), so it polls nothing.
pub async fn follow(store: Arc<RedisStore>, stop: CancellationToken) {
    if !store.counters().is_on() {
        return;
    }
    let mut position = Position::Lost;
    let mut backoff = Backoff::new(POLL, Duration::from_secs(1));
    let metrics = &store.ingest().metrics;
    while !stop.is_cancelled() {
        let step = async {
            let after = match &position {
                Position::After(id) => id.clone(),
                Position::Lost => start(&store).await?,
            };
            let sent_ms = now_millis();
            let read = poll(&store, &after).await?;
            Ok::<_, FeedError>((after, read, sent_ms))
        };
        let wait = match step.await {
            Ok((after, read, sent_ms)) => {
                if !read.changed.is_empty() {
                    store
                        .counters()
                        .changed(read.changed.iter().map(String::as_str));
                }
                store.counters().followed(read.durations);
                store
                    .catalog_lists()
                    .observed(read.catalog_version, Instant::now());
                let lag_ms = read
                    .oldest_ms
                    .map_or(0, |ms| now_millis().saturating_sub(ms));
                metrics.counter_feed_lag.set(lag_ms as f64 / 1000.0);
                metrics.counter_feed_read_at.set(sent_ms as f64 / 1000.0);
                position = Position::After(read.last.unwrap_or(after));
                backoff.reset();
                if read.full { Duration::ZERO } else { POLL }
            }
            Err(e) => {
                if position != Position::Lost {
                    metrics.counter_feed_resets.inc();
                    tracing::warn!(error = %e, "counter change feed: dropping the in-process video counters");
                }
                store.counters().reset();
                store.catalog_lists().reset();
                position = Position::Lost;
                backoff.failed()
            }
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::redis_events::Entry;

    #[test]
    fn a_gap_is_an_oldest_entry_newer_than_the_last_read() {
        assert!(
            !gap("0-0", Some("5-0")),
            "the stream was empty at the start"
        );
        assert!(!gap("5-0", None), "nothing left to read");
        assert!(!gap("5-0", Some("5-0")));
        assert!(!gap("5-0", Some("3-1")));
        assert!(gap("5-0", Some("5-1")), "5-0's successor may be trimmed");
        assert!(gap("5-0", Some("9-0")));
    }

    #[test]
    fn changed_ids_read_every_entry_and_skip_unreadable_ones() {
        let entries = [
            Entry {
                id: "1-0".into(),
                payload: Some(br#"["a","b"]"#.to_vec()),
            },
            Entry {
                id: "2-0".into(),
                payload: Some(b"not json".to_vec()),
            },
            Entry {
                id: "3-0".into(),
                payload: None,
            },
            Entry {
                id: "4-0".into(),
                payload: Some(br#"["c"]"#.to_vec()),
            },
        ];
        assert_eq!(changed_ids(&entries), ["a", "b", "c"]);
    }

    #[test]
    fn an_announcement_names_its_ids_and_trims_by_age() {
        let mut pipe = redis::pipe();
        announce(&mut pipe, "P{shared}:vsc", []);
        assert_eq!(pipe.cmd_iter().count(), 0, "no ids, no entry");
        announce(&mut pipe, "P{shared}:vsc", ["v1", "v2"]);
        let args: Vec<String> = pipe
            .cmd_iter()
            .flat_map(redis::Cmd::args_iter)
            .map(|a| match a {
                redis::Arg::Simple(b) => String::from_utf8_lossy(b).into_owned(),
                _ => "<not a simple argument>".into(),
            })
            .collect();
        assert_eq!(args[..4], ["XADD", "P{shared}:vsc", "MINID", "~"]);
        let oldest: u64 = args[4].parse().expect("a time");
        assert!(oldest + RETENTION.as_millis() as u64 <= now_millis());
        assert_eq!(args[5..], ["*", FIELD, r#"["v1","v2"]"#]);
    }
}
