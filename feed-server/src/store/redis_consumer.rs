//! The consumers of the ingest stream ([`super::redis_events`]): each replica's loop that reads
//! its pending and new batches (and claims those of silent consumers), merges them and applies
//! them with the atomic apply script. Kept apart from the stream's accepting side so that
//! `redis_store` (which accepts) and this module (which drives a `RedisStore`) do not name each
//! other.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::StoreError;
use super::backoff::Backoff;
use super::redis_events::*;
use super::redis_log;
use super::redis_store::RedisStore;
use crate::learning::shared::SharedDeltas;

/// What one round did.
enum Round {
    /// Applied the batches it read (how many).
    Applied(usize),
    /// Nothing to apply.
    Idle,
}

/// A replica's consumer: applies batches until `stop`; retries with back-off while Redis
/// fails (its entries stay pending meanwhile, nothing is lost).
pub async fn run(store: Arc<RedisStore>, stop: CancellationToken) {
    let consumer = consumer_name();
    tracing::info!(consumer = %consumer, group = GROUP, "event consumer started");
    let mut group_ready = false;
    let mut last_claim: Option<Instant> = None;
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
    let ingest = store.ingest();
    while !stop.is_cancelled() {
        let claim = last_claim.is_none_or(|t| t.elapsed() >= ingest.settings.claim_idle / 2);
        let started = Instant::now();
        let attempt = async {
            if !group_ready || claim {
                refuse_on_checkpoints(&store).await?;
            }
            if !group_ready {
                create_group(&store).await?;
                group_ready = true;
            }
            if claim {
                last_claim = Some(Instant::now());
            }
            round(&store, &consumer, claim).await
        };
        let wait = match attempt.await {
            Ok(Round::Applied(read)) => {
                backoff.reset();
                let count = ingest.settings.batches_per_round();
                let interval = ingest.settings.apply_interval;
                let wait = next_round_in(read, count, started.elapsed(), interval)
                    .unwrap_or(Duration::ZERO);
                // Gathering: not cut short by this replica's own accepts.
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
                continue;
            }
            Ok(Round::Idle) => POLL,
            Err(e) => {
                // The group may be gone (Redis restarted empty, a FLUSHALL): make sure it exists.
                group_ready = false;
                let wait = backoff.failed();
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "event consumer: round failed; retrying");
                wait
            }
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ingest.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
    tracing::info!(consumer = %consumer, "event consumer stopped");
}

/// Fails while the shared aggregates are kept in process on this Redis (a checkpoint exists):
/// a consumer would apply to keys, and delete, the entries the replicas there still fold and
/// log (a replica started without `--shared-aggregates process` against such a Redis). Checked
/// at start, after every failure and with every claim.
async fn refuse_on_checkpoints(store: &RedisStore) -> Result<(), StoreError> {
    let exists: i64 = store
        .connection()
        .cmd(redis::cmd("EXISTS").arg(store.keys().checkpoint_manifest()))
        .await?;
    if exists == 1 {
        return Err(StoreError::Unavailable(
            "this Redis keeps the shared aggregates in process (a checkpoint exists): run this replica with --shared-aggregates process; not applying batches".to_owned(),
        ));
    }
    Ok(())
}

/// Creates the consumer group (reading from the stream's first entry) unless it exists.
async fn create_group(store: &RedisStore) -> Result<(), StoreError> {
    let created = store
        .connection()
        .cmd_raw(
            redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(store.ingest_key())
                .arg(GROUP)
                .arg("0")
                .arg("MKSTREAM"),
        )
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(StoreError::Unavailable(e.to_string())),
    }
}

/// Reads this consumer's pending and new entries (and, when `claim`, those of silent
/// consumers) in one round trip and applies them.
async fn round(store: &RedisStore, consumer: &str, claim: bool) -> Result<Round, StoreError> {
    let ingest = store.ingest();
    let stream = store.ingest_key();
    let count = ingest.settings.batches_per_round();
    let mut pipe = redis::pipe();
    for from in ["0", ">"] {
        pipe.cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(count)
            .arg("STREAMS")
            .arg(&stream)
            .arg(from);
    }
    pipe.cmd("GET").arg(store.backlog_key());
    if claim {
        pipe.cmd("XAUTOCLAIM")
            .arg(&stream)
            .arg(GROUP)
            .arg(consumer)
            .arg(ingest.settings.claim_idle.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(count);
    }
    let replies = store.connection().query(&pipe).await?;
    let mut replies = replies.into_iter();
    let mut next = || replies.next().ok_or_else(|| corrupt("missing reply"));
    let mut entries = parse_read(next()?)?;
    entries.extend(parse_read(next()?)?);
    let backlog: Option<i64> = redis::from_redis_value(next()?).map_err(corrupt)?;
    ingest.observe(backlog.unwrap_or(0));
    if claim {
        let claimed = parse_claim(next()?)?;
        ingest.metrics.claimed.inc_by(claimed.len() as u64);
        if !claimed.is_empty() {
            tracing::warn!(
                batches = claimed.len(),
                "event consumer: claimed batches left pending by a silent consumer"
            );
        }
        entries.extend(claimed);
    }
    if entries.is_empty() {
        ingest.metrics.lag.set(0.0);
        return Ok(Round::Idle);
    }
    let read = entries.len();
    // A claim may return entries also read as this consumer's own pending ones.
    entries.sort_by_key(|e| stream_id(&e.id));
    entries.dedup_by(|a, b| a.id == b.id);
    apply(store, consumer, &entries).await?;
    Ok(Round::Applied(read))
}

/// Merges `entries` and applies them with [`APPLY`].
async fn apply(store: &RedisStore, consumer: &str, entries: &[Entry]) -> Result<(), StoreError> {
    let ingest = store.ingest();
    let mut merged = SharedDeltas::default();
    for e in entries {
        let decoded = e
            .payload
            .as_deref()
            .ok_or_else(|| "no payload".to_owned())
            .and_then(|p| SharedDeltas::decode(p).map_err(|err| err.to_string()));
        match decoded {
            Ok(d) => merged.merge(d),
            Err(why) => {
                ingest.metrics.unreadable.inc();
                tracing::error!(id = %e.id, error = %why, "event consumer: unreadable batch acknowledged without applying it");
            }
        }
    }
    let events = merged.events();
    let mut pipe = redis::pipe();
    store.shared_commands(&mut pipe, &merged);
    let own_keys = [
        store.ingest_key(),
        store.backlog_key(),
        store.log_key(),
        store.keys().exposure_log_events(),
    ];
    let round = ApplyRound {
        consumer,
        ids: entries.iter().map(|e| e.id.as_str()).collect(),
        events,
        logged: merged.log.len(),
        log_cap: redis_log::Cap::of(store.log_settings()),
    };
    let eval = apply_eval(&own_keys, &round, &pipe)?;
    drop(pipe);
    let result: Result<(i64, i64, i64), _> = store.connection().cmd(&eval).await;
    // Also after a failure: the script may have run before the reply was lost.
    store.forget_stats(merged.video_stats.keys().map(String::as_str));
    let (applied, left, dropped) = result?;
    if applied == 0 {
        tracing::warn!(
            batches = entries.len(),
            "event consumer: batches claimed by another consumer meanwhile; left to it"
        );
        return Ok(());
    }
    ingest.observe(left);
    ingest.metrics.applied.inc_by(events as u64);
    store.log_dropped(u64::try_from(dropped).unwrap_or(0));
    if let Some(oldest) = entries.iter().filter_map(|e| stream_id(&e.id)).min() {
        let lag = now_millis().saturating_sub(oldest.ms) as f64 / 1000.0;
        ingest.metrics.lag.set(lag);
    }
    Ok(())
}
