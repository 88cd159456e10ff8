//! The ingest stream followed by a replica (`feed-server/docs/shared-aggregates-in-process.md`):
//! instead of a consumer group whose members share the entries and write the shared aggregates
//! to Redis, every replica reads every entry, in order, and folds it into its own
//! [`SharedAggregates`]; one of them at a time writes checkpoints ([`run_checkpoints`],
//! `store::redis_checkpoint`) behind which the stream is trimmed.
//!
//! **Exactly once per replica.** The state records the last entry folded and the follower reads
//! from there (`XREAD` from that id), so a retried poll or a checkpoint's entries read again
//! fold nothing twice ([`SharedAggregates::apply_entry`]). Each poll also reads, after the
//! entries, where the stream was trimmed: when that is past the follower's cursor, entries it
//! never read may be gone, and it loads the checkpoint (newer than its state) instead.
//!
//! **Start.** [`Follower::start`] loads the checkpoint (an empty state when none was written)
//! and replays the stream to its end: a replica answers `/readyz` only after it.
//!
//! **Unreadable entries** (written by a newer version) are skipped, counted, and logged; the
//! cursor moves past them so that one bad entry cannot stop the stream.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::{RwLock, RwLockReadGuard};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::redis_checkpoint::{
    self, CheckpointError, CheckpointSettings, Snapshot, Written, parse_trimmed, trim_query,
};
use super::redis_events::{
    CheckpointReason, DEFAULT_CHECKPOINT_INTERVAL, POLL, consumer_name, corrupt, now_millis,
    parse_read, stream_id,
};
use super::redis_migration;
use super::redis_store::RedisStore;
use crate::learning::aggregates::{EntryId, SharedAggregates};
use crate::learning::shared::SharedDeltas;

/// Most entries one poll reads.
pub const READ_COUNT: usize = 1_024;

/// What a replica folded from the stream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Followed {
    aggregates: SharedAggregates,
    events: u64,
}

impl Followed {
    /// The shared aggregates.
    pub fn aggregates(&self) -> &SharedAggregates {
        &self.aggregates
    }

    /// Events folded since the stream began (a checkpoint's count plus what followed it).
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The last entry folded ([`EntryId::START`] when none): where the next read starts.
    pub fn cursor(&self) -> EntryId {
        self.aggregates.last_entry().unwrap_or(EntryId::START)
    }

    /// The state as a checkpoint writes it, in chunks of `chunk_bytes`.
    pub fn snapshot(&self, chunk_bytes: usize) -> Snapshot {
        Snapshot::of(&self.aggregates, self.events, chunk_bytes)
    }
}

/// The aggregates a replica folds, shared by its follower (which writes them) and its rankings
/// (which read them), with the follower's progress, so that a catalog write can wait until its
/// own replica has folded it (a video put is in this replica's long tail when the 200 is sent).
/// Cheap to clone.
#[derive(Clone)]
pub struct FollowedState {
    state: Arc<RwLock<Followed>>,
    folded: Arc<watch::Sender<EntryId>>,
    wake: Arc<Notify>,
    /// Whether the checkpoint writer is encoding the state under the read lock: the follower
    /// then waits before it asks for the write lock, since a writer waiting for the lock would
    /// hold up every ranking's read until the encoding ends.
    encoding: Arc<watch::Sender<bool>>,
}

impl Default for FollowedState {
    fn default() -> Self {
        Self {
            state: Arc::default(),
            folded: Arc::new(watch::Sender::new(EntryId::START)),
            wake: Arc::default(),
            encoding: Arc::new(watch::Sender::new(false)),
        }
    }
}

impl FollowedState {
    /// The folded state, read-locked (a poll holds the write lock only to fold what it read).
    pub fn read(&self) -> RwLockReadGuard<'_, Followed> {
        self.state.read()
    }

    /// Wakes the follower and waits, at most `within`, until it has folded the stream entry
    /// `id`; whether it has.
    pub async fn wait_folded(&self, id: EntryId, within: Duration) -> bool {
        self.wake.notify_one();
        let mut folded = self.folded.subscribe();
        tokio::time::timeout(within, folded.wait_for(|cursor| *cursor >= id))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The state as a checkpoint writes it (in chunks of `chunk_bytes`), unless it is not
    /// past `written` (the last id this writer saw in the manifest); the follower waits
    /// meanwhile.
    fn snapshot_after(&self, written: Option<EntryId>, chunk_bytes: usize) -> Option<Snapshot> {
        self.encoding.send_replace(true);
        let snapshot = {
            let state = self.state.read();
            (written < Some(state.cursor())).then(|| state.snapshot(chunk_bytes))
        };
        self.encoding.send_replace(false);
        snapshot
    }

    /// Replaces the state (a checkpoint loaded) and publishes its cursor.
    fn replace(&self, followed: Followed) {
        let cursor = followed.cursor();
        *self.state.write() = followed;
        self.folded.send_replace(cursor);
    }
}

/// What one poll did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Polled {
    /// Entries read (folded or skipped as unreadable).
    pub entries: usize,
    /// Events folded.
    pub events: usize,
    /// Entries this version could not decode (skipped).
    pub unreadable: usize,
    /// The stream had been trimmed past the cursor: the checkpoint was loaded instead.
    pub reloaded: bool,
}

/// A replica's follower of the ingest stream and the state it folded.
pub struct Follower {
    store: Arc<RedisStore>,
    state: FollowedState,
}

impl Follower {
    /// Loads the checkpoint (or starts empty) into `state` and replays the stream to its end.
    /// The server's `state` is the store's ([`RedisStore::followed`]), which its rankings read.
    pub async fn start(
        store: Arc<RedisStore>,
        state: FollowedState,
    ) -> Result<Self, CheckpointError> {
        let follower = Self { store, state };
        follower.reload().await?;
        loop {
            let polled = follower.poll(READ_COUNT).await?;
            if !polled.reloaded && polled.entries < READ_COUNT {
                return Ok(follower);
            }
        }
    }

    /// The folded state, shared with its readers.
    pub fn state(&self) -> &FollowedState {
        &self.state
    }

    /// Reads and folds up to `count` entries after the cursor, or loads the checkpoint when
    /// the stream was trimmed past it.
    pub async fn poll(&self, count: usize) -> Result<Polled, CheckpointError> {
        let cursor = self.state.read().cursor();
        let mut pipe = redis::pipe();
        pipe.cmd("XREAD")
            .arg("COUNT")
            .arg(count.max(1))
            .arg("STREAMS")
            .arg(self.store.keys().ingest_stream())
            .arg(cursor.to_string());
        // After the read: a trim that happened before it shows here.
        trim_query(&mut pipe, &self.store);
        pipe.cmd("GET").arg(self.store.keys().ingest_backlog());
        let mut replies = self.store.connection().query(&pipe).await?.into_iter();
        let (Some(read), Some(trimmed), Some(backlog)) =
            (replies.next(), replies.next(), replies.next())
        else {
            return Err(corrupt("missing reply to a follower's poll").into());
        };
        let ingest = self.store.ingest();
        let backlog: Option<i64> = redis::from_redis_value(backlog).map_err(corrupt)?;
        ingest.observe(backlog.unwrap_or(0));
        if parse_trimmed(trimmed)?.is_some_and(|t| t > cursor) {
            self.reload().await?;
            return Ok(Polled {
                reloaded: true,
                ..Polled::default()
            });
        }
        let mut decoded = Vec::new();
        for e in parse_read(read)? {
            let id = stream_id(&e.id)
                .ok_or_else(|| corrupt(format_args!("stream entry id {:?}", e.id)))?;
            let deltas = e
                .payload
                .as_deref()
                .ok_or_else(|| "no payload".to_owned())
                .and_then(|p| SharedDeltas::decode(p).map_err(|err| err.to_string()));
            if let Err(why) = &deltas {
                tracing::error!(id = %id, error = %why, "stream follower: unreadable batch skipped");
            }
            decoded.push((id, deltas.ok()));
        }
        let mut polled = Polled {
            entries: decoded.len(),
            ..Polled::default()
        };
        let empty = SharedDeltas::default();
        if let Some((last, _)) = decoded.last() {
            // Not while the checkpoint writer encodes (see `FollowedState::encoding`); the
            // sender lives in the state, so the wait cannot fail.
            let _ = self.state.encoding.subscribe().wait_for(|e| !*e).await;
            let mut state = self.state.state.write();
            for (id, deltas) in &decoded {
                let d = deltas.as_ref().unwrap_or(&empty);
                if state.aggregates.apply_entry(*id, d) {
                    let events = d.events();
                    state.events += events as u64;
                    polled.events += events;
                    polled.unreadable += usize::from(deltas.is_none());
                }
            }
            drop(state);
            self.state.folded.send_replace(*last);
        }
        ingest.metrics.applied.inc_by(polled.events as u64);
        ingest.metrics.unreadable.inc_by(polled.unreadable as u64);
        // The age of the oldest entry folded when folded (as the consumers' lag): how far this
        // replica trails the stream's writers; 0 once a poll finds nothing.
        let lag_ms = decoded
            .first()
            .map_or(0, |(id, _)| now_millis().saturating_sub(id.ms));
        ingest.metrics.lag.set(lag_ms as f64 / 1000.0);
        Ok(polled)
    }

    /// Replaces the state by the checkpoint's (none written: empty, unless the consumers of
    /// `--shared-aggregates redis` applied batches to keys: [`CheckpointError::NotMigrated`]).
    async fn reload(&self) -> Result<(), CheckpointError> {
        let loaded = redis_checkpoint::load(&self.store).await?;
        let followed = match loaded {
            Some((manifest, aggregates)) => Followed {
                aggregates,
                events: manifest.events,
            },
            None if redis_migration::needs_migration(&self.store).await? => {
                return Err(CheckpointError::NotMigrated);
            }
            None => Followed::default(),
        };
        tracing::info!(cursor = %followed.cursor(), events = followed.events, "stream follower: loaded the checkpoint");
        self.state.replace(followed);
        Ok(())
    }
}

/// A replica's part in the aggregates kept in process: starts its follower into the store's
/// state ([`RedisStore::followed`]; retrying with back-off while Redis fails or the checkpoint
/// cannot be read), then follows the stream and competes for the checkpoint lease (named after
/// this process) until `stop`. Returns once the state is loaded and replayed (`false`: stopped
/// first, or the store keeps no state in process): the replica may then warm up and answer
/// `/readyz`.
pub async fn start_following(store: Arc<RedisStore>, stop: CancellationToken) -> bool {
    let Some(state) = store.followed().cloned() else {
        return false;
    };
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let follower = loop {
        let started = tokio::select! {
            _ = stop.cancelled() => return false,
            f = Follower::start(store.clone(), state.clone()) => f,
        };
        match started {
            Ok(f) => break Arc::new(f),
            Err(e) => {
                let wait = backoff.failed();
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "stream follower: could not load the shared aggregates; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return false,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    };
    {
        let s = follower.state.read();
        tracing::info!(cursor = %s.cursor(), events = s.events, "stream follower: shared aggregates loaded and replayed");
    }
    let interval = store.ingest().settings.checkpoint_interval;
    let schedule = CheckpointSchedule {
        interval,
        lease: (interval * 5).max(CheckpointSchedule::default().lease),
        ..CheckpointSchedule::default()
    };
    tokio::spawn(run_follower(follower.clone(), stop.clone()));
    tokio::spawn(run_checkpoints(follower, consumer_name(), schedule, stop));
    true
}

/// Follows the stream until `stop`: reads again at once while it reads full polls, else every
/// 20 ms; retries with back-off while Redis fails (nothing is lost: the cursor stays).
pub async fn run_follower(follower: Arc<Follower>, stop: CancellationToken) {
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
    while !stop.is_cancelled() {
        let wait = match follower.poll(READ_COUNT).await {
            Ok(p) if p.entries >= READ_COUNT => Duration::ZERO,
            Ok(_) => {
                backoff.reset();
                POLL
            }
            Err(e) => {
                let wait = backoff.failed();
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "stream follower: poll failed; retrying");
                wait
            }
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = follower.state.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// How often checkpoints are written and how long the writer's lease lasts.
#[derive(Clone, Debug)]
pub struct CheckpointSchedule {
    /// Time between two checkpoints (the stream keeps about two of these).
    pub interval: Duration,
    /// How long the lease outlives a writer that stopped renewing it (renewed every
    /// `interval`, so it must be longer).
    pub lease: Duration,
    /// How checkpoints are cut and kept.
    pub settings: CheckpointSettings,
}

impl Default for CheckpointSchedule {
    /// Every 2 s, a 10-s lease.
    fn default() -> Self {
        Self {
            interval: DEFAULT_CHECKPOINT_INTERVAL,
            lease: Duration::from_secs(10),
            settings: CheckpointSettings::default(),
        }
    }
}

/// How often the checkpoint writer looks at the backlog between two checkpoints
/// ([`checkpoint_pressed`]).
pub const PRESSURE_POLL: Duration = Duration::from_millis(100);

/// Whether the events since the last checkpoint (`backlog`, `P{shared}:evq`) call for a
/// checkpoint before the interval ends: at half of `--event-backlog-max`, so that the writer
/// takes them off before new batches are refused. At a fixed interval the backlog peaks at the
/// rate times the interval plus the checkpoint's own time: at 2 s and ~65,000 events/s, near
/// the 200,000 bound (BENCHMARKS.md), which then refused batches the writer could have
/// checkpointed.
pub fn checkpoint_pressed(backlog: u64, backlog_max: u64) -> bool {
    backlog > 0 && backlog >= backlog_max.div_ceil(2)
}

/// Writes a checkpoint of `follower`'s state every interval while `holder` holds the lease
/// (taking it when free), and sooner when the backlog presses ([`checkpoint_pressed`]), until
/// `stop`; then gives the lease up. Pressure counts only after a checkpoint this writer moved
/// the manifest with: a replica without the lease, a refused or failed checkpoint, or a state
/// that has not changed waits for the next interval instead of trying again every
/// [`PRESSURE_POLL`]. Between two checkpoints it waits at least as long as the last one took,
/// so that a bound smaller than the traffic cannot keep the writer encoding.
pub async fn run_checkpoints(
    follower: Arc<Follower>,
    holder: String,
    schedule: CheckpointSchedule,
    stop: CancellationToken,
) {
    let mut written = None;
    let mut may_press = false;
    let mut last_took = Duration::ZERO;
    // At a fixed rate: the time a checkpoint takes does not stretch the interval (the backlog
    // counts the events since the last one).
    let mut ticks = tokio::time::interval(schedule.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let reason = tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticks.tick() => CheckpointReason::Interval,
            () = backlog_pressure(&follower.store, last_took), if may_press => {
                // The next regular checkpoint one interval after this one.
                ticks.reset();
                CheckpointReason::Pressure
            }
        };
        let started = std::time::Instant::now();
        let attempt = checkpoint_once(&follower, &holder, &schedule, &mut written, reason).await;
        last_took = started.elapsed();
        may_press = matches!(attempt, Ok(Some(Written::Moved)));
        if may_press {
            let metrics = &follower.store.ingest().metrics;
            metrics
                .checkpoints
                .with_label_values(&[reason.as_str()])
                .inc();
        }
        if let Err(e) = attempt {
            tracing::warn!(error = %e, "checkpoint writer: failed; trying again next interval");
        }
        if last_took > schedule.interval {
            tracing::warn!(
                took_ms = last_took.as_millis() as u64,
                interval_ms = schedule.interval.as_millis() as u64,
                "checkpoint writer: a checkpoint took longer than the interval; the backlog grows"
            );
        }
    }
    if let Err(e) = redis_checkpoint::release_lease(&follower.store, &holder).await {
        tracing::warn!(error = %e, "checkpoint writer: could not release the lease");
    }
}

/// Returns once the backlog presses ([`checkpoint_pressed`]), looked at every
/// [`PRESSURE_POLL`] after waiting at least `gap`: the backlog as this replica last observed
/// it, from its follower's polls (every [`POLL`] while idle) and its own accepts' replies. An
/// accept's reply sent before a checkpoint's move may land after the lower reading of a poll:
/// at worst one checkpoint more.
async fn backlog_pressure(store: &RedisStore, gap: Duration) {
    let ingest = store.ingest();
    tokio::time::sleep(gap.saturating_sub(PRESSURE_POLL)).await;
    loop {
        tokio::time::sleep(PRESSURE_POLL).await;
        if checkpoint_pressed(ingest.backlog(), ingest.settings.backlog_max) {
            return;
        }
    }
}

/// One checkpoint of [`run_checkpoints`] (`reason`: what started it, logged):
/// `written` is the last id this writer saw as the manifest's, so that an unchanged state is
/// not encoded again. `None` when nothing was written (another replica holds the lease, or
/// the state has not changed).
async fn checkpoint_once(
    follower: &Follower,
    holder: &str,
    schedule: &CheckpointSchedule,
    written: &mut Option<EntryId>,
    reason: CheckpointReason,
) -> Result<Option<Written>, CheckpointError> {
    if !redis_checkpoint::hold_lease(&follower.store, holder, schedule.lease).await? {
        return Ok(None);
    }
    let Some(snapshot) = follower
        .state
        .snapshot_after(*written, schedule.settings.chunk_bytes)
    else {
        return Ok(None);
    };
    let started = std::time::Instant::now();
    let outcome = redis_checkpoint::write(&follower.store, &snapshot, &schedule.settings).await?;
    tracing::debug!(id = %snapshot.id, bytes = snapshot.encoded_len(), outcome = ?outcome, reason = reason.as_str(), took_ms = started.elapsed().as_millis() as u64, "checkpoint writer");
    if outcome != Written::Refused {
        *written = Some(snapshot.id);
    }
    Ok(Some(outcome))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_is_pressed_from_half_the_backlog_bound_on() {
        for (backlog, max, pressed) in [
            (0, 200_000, false),
            (99_999, 200_000, false),
            (100_000, 200_000, true),
            (250_000, 200_000, true),
            // An odd bound rounds its half up; nothing to checkpoint is never pressing.
            (1, 3, false),
            (2, 3, true),
            (0, 0, false),
            (1, 0, true),
            (u64::MAX, u64::MAX, true),
        ] {
            assert_eq!(
                checkpoint_pressed(backlog, max),
                pressed,
                "backlog {backlog} of {max}"
            );
        }
    }
}
