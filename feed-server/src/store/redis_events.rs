//! The ingest stream on Redis: an accepted batch is durable in one round trip, and consumers
//! apply it to the shared aggregates exactly once.
//!
//! **Accepting** (`Store::apply`, one MULTI/EXEC; on a Redis Cluster one per sending user, then
//! the append as the commit point, see `store::redis_store`): the sending users' own state
//! (affinities, taste, seen set, recent engagements) is written, the batch's
//! [`SharedDeltas`](crate::learning::shared::SharedDeltas) is appended as one entry (field `d`:
//! JSON, or binary with `--event-entry-format compact`) to the stream `P{shared}:ev`, and
//! `P{shared}:evq` (events accepted, not yet applied) grows by the batch's size. The 200 is
//! sent after EXEC: an accepted event is in Redis, and the user's next feed reflects it. When
//! the last observed `P{shared}:evq` exceeds [`IngestSettings::backlog_max`], new batches are
//! refused before anything is written ([`StoreError::Backlogged`], a 503 with `Retry-After`):
//! a stalled consumer costs bounded Redis memory, never an event.
//!
//! **Applying** ([`run`], one task per replica, consumer group [`GROUP`], consumer name unique
//! per process): each round reads the consumer's own pending entries (a failed apply is retried)
//! and new ones (`XREADGROUP`, each up to [`IngestSettings::read_count`] batches; with the
//! batches it claims, a round may hold more), merges them into one
//! [`SharedDeltas`](crate::learning::shared::SharedDeltas) (a hot video's counters are written once per round, not once per batch) and
//! applies them with one Lua script ([`APPLY`], one `EVAL`: [`apply_eval`]) that, atomically, checks every entry is still
//! pending for this consumer, runs the writes (counters, exposures, duration buckets, trending,
//! last activity, the exposure-log appends), `XACK`s and `XDEL`s the entries and decrements `P{shared}:evq`. Applied ⇔
//! acknowledged, so an entry is applied at most once even when its reply is lost or another
//! consumer claimed it meanwhile (the script then writes nothing). Entries left pending by a
//! consumer that died (`kill -9` mid-batch) are claimed by a live one with `XAUTOCLAIM` once
//! idle for [`IngestSettings::claim_idle`], so each is applied at least once: exactly once.
//!
//! **Lag.** `feed_event_apply_lag_seconds` is the age, when applied, of the oldest batch of the
//! last round (stream ids carry Redis's clock in ms; 0 once a round finds nothing), and
//! `feed_event_backlog` the events accepted and not yet applied. A consumer polls every
//! [`POLL`] when idle and at once after its own replica accepted a batch; while batches arrive it
//! starts a round at most every [`IngestSettings::apply_interval`] (20 ms), gathering batches so
//! that a round writes a hot video once for more events ([`next_round_in`]); at the bench rate
//! the lag stays far below 1 s (BENCHMARKS.md).
//!
//! **In process** ([`AggregatesMode::Process`], `--shared-aggregates process`) no consumer
//! runs: the accept is the same, every replica folds the whole stream into its memory
//! (`store::redis_follower`) and the checkpoint writer takes the checkpointed events off
//! `P{shared}:evq` (`store::redis_checkpoint`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use feed_metrics::ops;
use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Opts};
use redis::{Pipeline, Value};
use tokio::sync::Notify;

use super::StoreError;
use super::user_sums::UserSumsFormat;
use crate::learning::aggregates::EntryId;
use crate::learning::shared::EntryFormat;
use crate::time::{Clock, SystemClock};

/// The consumer group of the ingest stream.
pub const GROUP: &str = "apply";

/// How often an idle consumer looks for new entries (it is also woken by its own replica's
/// accepts).
pub const POLL: Duration = Duration::from_millis(20);

/// Default of [`IngestSettings::apply_interval`]: adds at most 20 ms to the apply lag. Longer
/// merges more but makes each apply script longer, and Redis runs nothing else meanwhile: at
/// 50 ms the event POSTs' p99 doubled in the bench, at 20 ms it rose by a quarter for most of
/// the CPU saved (BENCHMARKS.md).
pub const DEFAULT_APPLY_INTERVAL: Duration = Duration::from_millis(20);

/// How long a consumer waits before its next round, by what the last one did: at once after a
/// full round (`read` = the round's `count`: batches are waiting), else until `interval` after
/// the last round started (`elapsed` ago), so that a busy stream is applied in rounds of
/// gathered batches. `None`: the round found nothing (the caller polls).
pub fn next_round_in(
    read: usize,
    count: usize,
    elapsed: Duration,
    interval: Duration,
) -> Option<Duration> {
    match read {
        0 => None,
        r if r >= count => Some(Duration::ZERO),
        _ => Some(interval.saturating_sub(elapsed)),
    }
}

/// Default of [`IngestSettings::checkpoint_interval`]: 100,000 events at 50,000 events/s, half
/// the default backlog bound.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(2);

/// Field of a stream entry holding the encoded [`SharedDeltas`](crate::learning::shared::SharedDeltas).
pub(super) const FIELD: &str = "d";

/// Applies merged entries if they are all still pending for this consumer (see the module
/// docs). Every key is in `KEYS`, all in the shared slot (`store::keys`), so the script runs on
/// a Redis Cluster as on one server: stream, backlog counter, exposure log, its event counter,
/// then the keys the commands write. `ARGV`: group, consumer, number of ids `n`, events,
/// exposure-log events appended, the log's capacity in events, `1` when its entries are batched
/// (else `0`), the `n` ids, then the commands in *runs* of one name, one key and one arity: the
/// name, the index of the key in `KEYS`, the number of commands `c` and their arity `a`, then
/// `c · a` arguments (a round's ~600 writes are a few dozen runs: a script spends less on each
/// call than a per-command header cost it, and two-argument commands need no `unpack`). The
/// log's appends are among the commands; its cap is the script's
/// (`redis_log::trim_log_lua!`). Returns `{applied (0/1), backlog left, exposure-log
/// events dropped}`.
pub const APPLY: &str = concat!(
    super::redis_log::trim_log_lua!(),
    r#"
local n = tonumber(ARGV[3])
for i = 8, 7 + n do
  if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2]) == 0 then
    return {0, 0, 0}
  end
end
local before = redis.call('XLEN', KEYS[3])
local call = redis.call
local i = 8 + n
local last = #ARGV
while i <= last do
  local name, key = ARGV[i], KEYS[tonumber(ARGV[i + 1])]
  local count, arity = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  i = i + 4
  if arity == 2 then
    for _ = 1, count do
      call(name, key, ARGV[i], ARGV[i + 1])
      i = i + 2
    end
  else
    for _ = 1, count do
      call(name, key, unpack(ARGV, i, i + arity - 1))
      i = i + arity
    end
  end
end
local dropped = trim_log(KEYS[3], KEYS[4], ARGV[6], before, tonumber(ARGV[5]), ARGV[7])
redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 8, 7 + n))
redis.call('XDEL', KEYS[1], unpack(ARGV, 8, 7 + n))
local left = redis.call('DECRBY', KEYS[2], ARGV[4])
return {1, left, dropped}
"#
);

/// Where the shared aggregates (video counters, duration buckets, trending, the long tail,
/// last activity) are kept (`--shared-aggregates`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AggregatesMode {
    /// In Redis keys, written by the consumers of the ingest stream (a consumer group: each
    /// batch applied once, by one replica).
    #[default]
    Redis,
    /// In each replica's memory: every replica follows the whole stream and folds it
    /// (`store::redis_follower`); one at a time writes checkpoints to Redis behind which the
    /// stream is trimmed (`store::redis_checkpoint`).
    Process,
}

/// Tunables of the ingest stream.
#[derive(Clone, Debug)]
pub struct IngestSettings {
    /// Where the shared aggregates are kept.
    pub mode: AggregatesMode,
    /// The form of the entries this replica appends (every form is read).
    pub entry_format: EntryFormat,
    /// How an accept writes its users' affinity and taste sums (`--user-sums-format`).
    pub user_sums_format: UserSumsFormat,
    /// Time between two checkpoints of the aggregates kept in process.
    pub checkpoint_interval: Duration,
    /// Most events accepted and not yet applied before new batches are refused
    /// (`--event-backlog-max`).
    pub backlog_max: u64,
    /// How long an entry stays pending with a silent consumer before another claims it
    /// (`--event-claim-idle-ms`).
    pub claim_idle: Duration,
    /// Most batches merged into one apply.
    pub read_count: usize,
    /// Shortest time between the starts of two rounds that did not fill `read_count`
    /// (`--event-apply-interval-ms`): batches gather meanwhile, so a hot video's counters and
    /// trending scores are written once for more events. Zero: a round as soon as the last one
    /// ended. A round that read `read_count` batches (a backlog) is followed at once.
    pub apply_interval: Duration,
}

impl IngestSettings {
    /// Batches a round reads at most (and, read, calls full): `read_count`, at least 1.
    pub fn batches_per_round(&self) -> usize {
        self.read_count.max(1)
    }
}

impl Default for IngestSettings {
    /// 200,000 events (4 s at 50,000 events/s), claims after 5 s, 256 batches per apply, a
    /// round at most every 20 ms unless batches wait.
    fn default() -> Self {
        Self {
            mode: AggregatesMode::Redis,
            entry_format: EntryFormat::Json,
            user_sums_format: UserSumsFormat::Fields,
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
            backlog_max: 200_000,
            claim_idle: Duration::from_secs(5),
            read_count: 256,
            apply_interval: DEFAULT_APPLY_INTERVAL,
        }
    }
}

/// The flags of the ingest stream (Redis only; the embedded store applies every batch at once).
#[derive(Clone, Debug, clap::Args)]
pub struct IngestArgs {
    /// Most events accepted and not yet applied to the shared aggregates; beyond it
    /// `POST /v1/events` answers 503 `overloaded` with `Retry-After` (nothing written).
    #[arg(long, env = "FEED_EVENT_BACKLOG_MAX", default_value_t = 200_000)]
    pub event_backlog_max: u64,
    /// How long a batch stays pending with a silent consumer (a crashed replica) before another
    /// replica's consumer claims and applies it.
    #[arg(long, env = "FEED_EVENT_CLAIM_IDLE_MS", default_value_t = 5_000,
          value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(1..))]
    pub event_claim_idle_ms: u64,
    /// Whether this replica runs a consumer of the ingest stream (`false`: it only accepts;
    /// at least one replica must consume, or the backlog fills and batches are refused).
    #[arg(long, env = "FEED_EVENT_CONSUMER", default_value_t = true, action = clap::ArgAction::Set)]
    pub event_consumer: bool,
    /// Shortest time between two apply rounds of this replica's consumer while batches arrive
    /// (0: apply as soon as anything is read). Longer merges more batches per round (a hot
    /// video's counters written once), adds up to this much to the apply lag and makes each
    /// round's script, during which Redis serves nothing else, longer; a backlog is applied
    /// without waiting.
    #[arg(long, env = "FEED_EVENT_APPLY_INTERVAL_MS", default_value_t = DEFAULT_APPLY_INTERVAL.as_millis() as u64,
          value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(0..=1_000))]
    pub event_apply_interval_ms: u64,
    /// Where the shared aggregates are kept: `redis` (consumers apply each batch to Redis keys)
    /// or `process` (every replica folds the whole ingest stream into its memory, checkpoints
    /// on Redis; every replica of a deployment must use the same). See feed-server/README.md.
    #[arg(long, env = "FEED_SHARED_AGGREGATES", value_enum, default_value_t = AggregatesMode::Redis)]
    pub shared_aggregates: AggregatesMode,
    /// Form of the ingest-stream entries this replica writes: `json` (what every version reads)
    /// or `compact` (binary, cheaper for every replica to decode; readable only by versions
    /// that have this flag, so set it once every replica, stable and canary, runs one: an entry
    /// a replica cannot read never reaches the aggregates). Every form is read.
    #[arg(long, env = "FEED_EVENT_ENTRY_FORMAT", value_enum, default_value_t = EntryFormat::Json)]
    pub event_entry_format: EntryFormat,
    /// How this replica writes the affinity and taste sums of an event batch's users: `fields`
    /// (a hash field per affinity and era, a `BITFIELD` per taste era: what every version reads)
    /// or `log` (one `APPEND` per user to the user's sums log, about half of a relay POST's
    /// Redis transaction; readable only by versions that have this flag, so set it once every
    /// replica, stable and canary, runs one). Every form is read.
    #[arg(long, env = "FEED_USER_SUMS_FORMAT", value_enum, default_value_t = UserSumsFormat::Fields)]
    pub user_sums_format: UserSumsFormat,
    /// With `--shared-aggregates process`: time between two checkpoints (the stream keeps
    /// about two of these, and the backlog refused beyond `--event-backlog-max` counts the
    /// events since the last one); a checkpoint starts at once when that backlog reaches half
    /// of `--event-backlog-max`.
    #[arg(long, env = "FEED_CHECKPOINT_INTERVAL_MS", default_value_t = DEFAULT_CHECKPOINT_INTERVAL.as_millis() as u64,
          value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(100..=60_000))]
    pub checkpoint_interval_ms: u64,
    /// Writes the first checkpoint of the shared aggregates from the Redis keys the consumers
    /// applied, the one-off step before `--shared-aggregates process` (stop the consumers first:
    /// `--event-consumer false` on every replica), prints what it read, and exits.
    #[arg(long)]
    pub checkpoint_from_redis: bool,
}

impl IngestArgs {
    /// The settings of the flags.
    pub fn settings(&self) -> IngestSettings {
        IngestSettings {
            backlog_max: self.event_backlog_max,
            claim_idle: Duration::from_millis(self.event_claim_idle_ms),
            apply_interval: Duration::from_millis(self.event_apply_interval_ms),
            mode: self.shared_aggregates,
            entry_format: self.event_entry_format,
            user_sums_format: self.user_sums_format,
            checkpoint_interval: Duration::from_millis(self.checkpoint_interval_ms),
            ..IngestSettings::default()
        }
    }
}

/// Metrics of the ingest stream.
#[derive(Clone, Debug)]
pub struct IngestMetrics {
    /// `feed_event_apply_lag_seconds`.
    pub lag: Gauge,
    /// `feed_event_backlog`.
    pub backlog: IntGauge,
    /// `feed_event_backlog_limit`: [`IngestSettings::backlog_max`], set by [`Ingest::new`].
    pub backlog_limit: IntGauge,
    /// `feed_events_applied_total`: events applied to the shared aggregates by this replica.
    pub applied: IntCounter,
    /// `feed_event_batches_claimed_total`: batches taken over from a silent consumer.
    pub claimed: IntCounter,
    /// `feed_event_batches_unreadable_total`: entries this version cannot decode (acknowledged
    /// and logged, so one bad entry cannot stop the stream).
    pub unreadable: IntCounter,
    /// `feed_counter_feed_lag_seconds`: how far the in-process video counters trail Redis
    /// (`store::redis_counter_feed`).
    pub counter_feed_lag: Gauge,
    /// `feed_counter_feed_resets_total`: the in-process video counters dropped after a gap in
    /// the counter change feed or a failed poll.
    pub counter_feed_resets: IntCounter,
    /// `feed_counter_feed_read_timestamp_seconds`: when the last successful poll of the counter
    /// change feed was sent (what the replica holds in process reflects Redis as of then).
    pub counter_feed_read_at: Gauge,
    /// `feed_checkpoints_total{reason}`: checkpoints this replica wrote, by [`CheckpointReason`].
    pub checkpoints: IntCounterVec,
    /// `feed_user_sums_compactions_total{outcome}`: compactions of users' sums logs this replica
    /// ran, by [`CompactionOutcome`].
    pub user_sums_compactions: IntCounterVec,
}

/// How a compaction of a user's sums log ended (the `outcome` label of
/// `feed_user_sums_compactions_total`; `store::user_sums`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompactionOutcome {
    /// The log's bytes read were replaced by their sums.
    Compacted,
    /// Nothing replaced: another replica compacted the log first, or the sums would not halve
    /// it ([`super::user_sums::worth_replacing`]).
    Unchanged,
    /// Redis did not answer, or the log does not parse.
    Failed,
}

impl CompactionOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Compacted => "compacted",
            Self::Unchanged => "unchanged",
            Self::Failed => "failed",
        }
    }
}

/// What started a checkpoint (the `reason` label of `feed_checkpoints_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointReason {
    /// `--checkpoint-interval-ms` elapsed.
    Interval,
    /// The backlog reached half of `--event-backlog-max` first.
    Pressure,
}

impl CheckpointReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Interval => "interval",
            Self::Pressure => "pressure",
        }
    }
}

impl IngestMetrics {
    fn new() -> Result<Self, prometheus::Error> {
        Ok(Self {
            lag: Gauge::new(
                ops::EVENT_APPLY_LAG,
                "Age of the oldest batch of the last apply round when applied to the shared aggregates (0 when idle)",
            )?,
            backlog: IntGauge::new(
                ops::EVENT_BACKLOG,
                "Events accepted and not yet applied to the shared aggregates, as last observed",
            )?,
            backlog_limit: IntGauge::new(
                ops::EVENT_BACKLOG_LIMIT,
                "Backlog beyond which new event batches are refused with 503 (--event-backlog-max)",
            )?,
            applied: IntCounter::new(
                ops::EVENTS_APPLIED,
                "Events applied to the shared aggregates by this replica's consumer",
            )?,
            claimed: IntCounter::new(
                ops::EVENT_BATCHES_CLAIMED,
                "Event batches claimed from a consumer silent for longer than the claim idle time",
            )?,
            unreadable: IntCounter::new(
                ops::EVENT_BATCHES_UNREADABLE,
                "Ingest-stream entries that could not be decoded (acknowledged, not applied)",
            )?,
            counter_feed_lag: Gauge::new(
                ops::COUNTER_FEED_LAG,
                "Age of the oldest counter change read by the last poll of the counter change feed (0 when none)",
            )?,
            counter_feed_resets: IntCounter::new(
                ops::COUNTER_FEED_RESETS,
                "Times the in-process video counters were dropped (a gap in the counter change feed, a failed poll)",
            )?,
            counter_feed_read_at: Gauge::new(
                ops::COUNTER_FEED_READ_AT,
                "Unix time the last successful poll of the counter change feed was sent: the in-process counters, duration totals and catalog version reflect Redis as of then",
            )?,
            checkpoints: IntCounterVec::new(
                Opts::new(
                    ops::CHECKPOINTS,
                    "Checkpoints of the shared aggregates this replica wrote, by what started them",
                ),
                &["reason"],
            )?,
            user_sums_compactions: IntCounterVec::new(
                Opts::new(
                    ops::USER_SUMS_COMPACTIONS,
                    "Compactions of users' sums logs this replica ran, by outcome",
                ),
                &["outcome"],
            )?,
        })
    }

    /// Creates the metrics; `register` adds each to the server's registry (the metrics layer
    /// sits above the store, so the store does not name it).
    pub fn register<E>(
        mut register: impl FnMut(Box<dyn prometheus::core::Collector>) -> Result<(), E>,
    ) -> Result<Self, E>
    where
        E: From<prometheus::Error>,
    {
        let m = Self::new()?;
        register(Box::new(m.lag.clone()))?;
        register(Box::new(m.backlog.clone()))?;
        register(Box::new(m.backlog_limit.clone()))?;
        register(Box::new(m.applied.clone()))?;
        register(Box::new(m.claimed.clone()))?;
        register(Box::new(m.unreadable.clone()))?;
        register(Box::new(m.counter_feed_lag.clone()))?;
        register(Box::new(m.counter_feed_resets.clone()))?;
        register(Box::new(m.counter_feed_read_at.clone()))?;
        register(Box::new(m.checkpoints.clone()))?;
        register(Box::new(m.user_sums_compactions.clone()))?;
        Ok(m)
    }

    /// Metrics no registry exposes (stores built outside the server).
    pub fn unregistered() -> Self {
        Self::new().unwrap_or_else(|_| unreachable!("valid metric names and help"))
    }
}

/// The accepting side's view of the stream: settings, the last observed backlog and the
/// consumer's wake-up.
pub struct Ingest {
    /// Tunables.
    pub settings: IngestSettings,
    /// Metrics.
    pub metrics: IngestMetrics,
    pub(super) backlog: AtomicU64,
    pub(super) wake: Notify,
}

impl Ingest {
    /// A view with nothing observed yet; publishes the backlog limit.
    pub fn new(settings: IngestSettings, metrics: IngestMetrics) -> Self {
        metrics
            .backlog_limit
            .set(i64::try_from(settings.backlog_max).unwrap_or(i64::MAX));
        Self {
            settings,
            metrics,
            backlog: AtomicU64::new(0),
            wake: Notify::new(),
        }
    }

    /// Refuses a new batch while the last observed backlog is over the limit.
    pub fn admit(&self) -> Result<(), StoreError> {
        let backlog = self.backlog.load(Ordering::Relaxed);
        let limit = self.settings.backlog_max;
        if backlog > limit {
            return Err(StoreError::Backlogged { backlog, limit });
        }
        Ok(())
    }

    /// The backlog last observed (events accepted and not yet applied, or in process mode not
    /// yet checkpointed).
    pub fn backlog(&self) -> u64 {
        self.backlog.load(Ordering::Relaxed)
    }

    /// Records the backlog Redis reported (`P{shared}:evq`; negative values, from a counter reset while
    /// entries were in flight, count as empty).
    pub fn observe(&self, backlog: i64) {
        let backlog = u64::try_from(backlog).unwrap_or(0);
        self.backlog.store(backlog, Ordering::Relaxed);
        self.metrics.backlog.set(backlog as i64);
    }

    /// Wakes this replica's consumer (a batch was just accepted).
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// Adds to `pipe` (inside MULTI) the append of one batch and the backlog increment, whose
/// reply (the new backlog) is the only one not ignored.
pub fn enqueue(pipe: &mut Pipeline, stream: &str, counter: &str, payload: &[u8], events: usize) {
    pipe.cmd("XADD")
        .arg(stream)
        .arg("*")
        .arg(FIELD)
        .arg(payload)
        .ignore();
    pipe.cmd("INCRBY").arg(counter).arg(events);
}

/// One consumer round as [`APPLY`] takes it: the entries it applies and what they hold.
#[derive(Debug)]
pub(super) struct ApplyRound<'a> {
    /// This consumer's name (in [`GROUP`]).
    pub(super) consumer: &'a str,
    /// The stream ids of the merged entries.
    pub(super) ids: Vec<&'a str>,
    /// Events the entries hold (taken off the backlog).
    pub(super) events: usize,
    /// Events the writes append to the exposure log.
    pub(super) logged: usize,
    /// The exposure log's cap.
    pub(super) log_cap: super::redis_log::Cap,
}

/// The `EVAL` of [`APPLY`] for `round`, with `own_keys` (stream, backlog counter, exposure log,
/// its event counter)
/// and the commands of `writes`: each names its one key first (the shared writes do), which
/// joins `KEYS` once; consecutive commands of one name, key and arity form one run (see
/// [`APPLY`]). Built in one buffer, each argument copied once.
/// `EVAL` rather than `EVALSHA`: Redis caches the compiled script by its hash either way, the
/// body costs ~1 KB per round (tens per second), and there is no `NOSCRIPT` to recover from
/// after a Redis restart or failover.
pub(super) fn apply_eval(
    own_keys: &[String; 4],
    round: &ApplyRound<'_>,
    writes: &Pipeline,
) -> Result<redis::Cmd, StoreError> {
    fn simple(arg: redis::Arg<&[u8]>) -> Result<&[u8], StoreError> {
        match arg {
            redis::Arg::Simple(bytes) => Ok(bytes),
            // Cursor arguments belong to SCAN-like commands, which these writes never use.
            _ => Err(corrupt("a cursor argument in a shared write")),
        }
    }
    /// Consecutive commands of one name, key and arity.
    struct Run<'a> {
        name: &'a [u8],
        key: usize,
        arity: usize,
        count: usize,
    }
    let mut keys: Vec<&[u8]> = own_keys.iter().map(String::as_bytes).collect();
    let mut index: std::collections::HashMap<&[u8], usize> =
        keys.iter().enumerate().map(|(i, k)| (*k, i + 1)).collect();
    // `KEYS` and each run's length precede the arguments: runs first, then one pass over them.
    let mut runs: Vec<Run<'_>> = Vec::new();
    // The arguments' count and bytes, to size the command's buffers once.
    let (mut argc, mut bytes) = (0, 0);
    for cmd in writes.cmd_iter() {
        let mut args = cmd.args_iter();
        let (Some(name), Some(key)) = (args.next(), args.next()) else {
            return Err(corrupt("a shared write without a key"));
        };
        let (name, key) = (simple(name)?, simple(key)?);
        let key = *index.entry(key).or_insert_with(|| {
            keys.push(key);
            keys.len()
        });
        let mut arity = 0;
        for arg in args {
            arity += 1;
            bytes += simple(arg)?.len();
        }
        argc += arity;
        match runs.last_mut() {
            Some(run) if run.name == name && run.key == key && run.arity == arity => run.count += 1,
            _ => runs.push(Run {
                name,
                key,
                arity,
                count: 1,
            }),
        }
    }
    // Per run a name (≤ 16 bytes) and three numbers (≤ 20 each).
    argc += 10 + keys.len() + round.ids.len() + 4 * runs.len();
    bytes += APPLY.len()
        + 100
        + keys.iter().map(|k| k.len()).sum::<usize>()
        + round.ids.iter().map(|id| id.len()).sum::<usize>()
        + 76 * runs.len();
    let mut eval = redis::Cmd::with_capacity(argc, bytes);
    eval.arg("EVAL").arg(APPLY).arg(keys.len());
    for key in keys {
        eval.arg(key);
    }
    eval.arg(GROUP)
        .arg(round.consumer)
        .arg(round.ids.len())
        .arg(round.events)
        .arg(round.logged)
        .arg(round.log_cap.events)
        .arg(round.log_cap.batched_arg())
        .arg(&round.ids);
    let mut cmds = writes.cmd_iter();
    for run in runs {
        eval.arg(run.name)
            .arg(run.key)
            .arg(run.count)
            .arg(run.arity);
        for cmd in cmds.by_ref().take(run.count) {
            for arg in cmd.args_iter().skip(2) {
                eval.arg(simple(arg)?);
            }
        }
    }
    Ok(eval)
}

/// One stream entry: its id and payload (`None` when the entry was deleted meanwhile or has no
/// payload field).
#[derive(Debug, PartialEq)]
pub(super) struct Entry {
    pub(super) id: String,
    pub(super) payload: Option<Vec<u8>>,
}

type RawEntry = (String, Option<Vec<Vec<u8>>>);

pub(super) fn entry((id, fields): RawEntry) -> Entry {
    let payload = fields.and_then(|f| {
        f.chunks(2)
            .find(|kv| kv.first().is_some_and(|k| k == FIELD.as_bytes()))
            .and_then(|kv| kv.get(1).cloned())
    });
    Entry { id, payload }
}

pub(super) fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// Entries of an `XREADGROUP` reply (nil when nothing was read).
pub(super) fn parse_read(reply: Value) -> Result<Vec<Entry>, StoreError> {
    let streams: Option<Vec<(String, Vec<RawEntry>)>> =
        redis::from_redis_value(reply).map_err(corrupt)?;
    Ok(streams
        .into_iter()
        .flatten()
        .flat_map(|(_, entries)| entries)
        .map(entry)
        .collect())
}

/// Entries of an `XAUTOCLAIM` reply: `[next cursor, entries, deleted ids]`.
pub(super) fn parse_claim(reply: Value) -> Result<Vec<Entry>, StoreError> {
    let (_, entries, _): (String, Vec<RawEntry>, Vec<String>) =
        redis::from_redis_value(reply).map_err(corrupt)?;
    Ok(entries.into_iter().map(entry).collect())
}

/// The parts of a stream id `{unix ms}-{sequence}`.
pub(super) fn stream_id(id: &str) -> Option<EntryId> {
    id.parse().ok()
}

/// The wall clock's unix ms, the unit of stream ids (Redis's clock, not the service's injected
/// one: lags are measured against the ids Redis stamped).
pub(super) fn now_millis() -> u64 {
    u64::try_from(SystemClock.now().millis()).unwrap_or(0)
}

/// A consumer name unique to this process: host, process id and start time.
pub fn consumer_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "feed-server".to_owned());
    format!("{host}-{}-{}", std::process::id(), now_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_gather_batches_unless_a_backlog_waits() {
        let ms = Duration::from_millis;
        let interval = ms(50);
        // Nothing read: the caller polls (or is woken by its own replica's accepts).
        assert_eq!(next_round_in(0, 256, ms(3), interval), None);
        // A partial round: the next starts `interval` after this one started.
        assert_eq!(next_round_in(10, 256, ms(3), interval), Some(ms(47)));
        assert_eq!(
            next_round_in(10, 256, ms(80), interval),
            Some(Duration::ZERO)
        );
        // A full round (own pending, new and claimed entries may exceed the count): at once.
        assert_eq!(
            next_round_in(256, 256, ms(3), interval),
            Some(Duration::ZERO)
        );
        assert_eq!(
            next_round_in(300, 256, ms(3), interval),
            Some(Duration::ZERO)
        );
        // Interval zero: the old behaviour, a round as soon as the last one ended.
        assert_eq!(
            next_round_in(10, 256, ms(3), Duration::ZERO),
            Some(Duration::ZERO)
        );
    }

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn reads_entries_and_deleted_ones() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("feed:ev"),
            Value::Array(vec![
                Value::Array(vec![bulk("5-0"), Value::Array(vec![bulk("d"), bulk("{}")])]),
                Value::Array(vec![bulk("6-1"), Value::Nil]),
            ]),
        ])]);
        let entries = parse_read(reply).expect("parse");
        assert_eq!(
            entries,
            vec![
                Entry {
                    id: "5-0".into(),
                    payload: Some(b"{}".to_vec())
                },
                Entry {
                    id: "6-1".into(),
                    payload: None
                },
            ]
        );
        assert_eq!(parse_read(Value::Nil).expect("nil"), vec![]);
        assert!(parse_read(bulk("nonsense")).is_err());
    }

    #[test]
    fn reads_claimed_entries() {
        let reply = Value::Array(vec![
            bulk("0-0"),
            Value::Array(vec![Value::Array(vec![
                bulk("7-0"),
                Value::Array(vec![bulk("x"), bulk("1"), bulk("d"), bulk("[]")]),
            ])]),
            Value::Array(vec![]),
        ]);
        assert_eq!(
            parse_claim(reply).expect("parse"),
            vec![Entry {
                id: "7-0".into(),
                payload: Some(b"[]".to_vec())
            }]
        );
    }

    #[test]
    fn stream_ids_carry_milliseconds_and_a_sequence() {
        assert_eq!(
            stream_id("1700000000123-4"),
            Some(EntryId {
                ms: 1_700_000_000_123,
                seq: 4
            })
        );
        assert_eq!(stream_id("0-0"), Some(EntryId::START));
        assert_eq!(stream_id("12"), None);
        assert_eq!(stream_id("garbage"), None);
        assert_eq!(stream_id("12-x"), None);
    }

    #[test]
    fn a_backlog_over_the_limit_refuses_batches() {
        let ingest = Ingest::new(
            IngestSettings {
                backlog_max: 10,
                ..IngestSettings::default()
            },
            IngestMetrics::unregistered(),
        );
        assert_eq!(
            ingest.metrics.backlog_limit.get(),
            10,
            "published for alerts"
        );
        assert!(ingest.admit().is_ok());
        ingest.observe(11);
        assert_eq!(ingest.metrics.backlog.get(), 11);
        assert!(matches!(
            ingest.admit(),
            Err(StoreError::Backlogged {
                backlog: 11,
                limit: 10
            })
        ));
        ingest.observe(-3);
        assert!(ingest.admit().is_ok());
        assert_eq!(ingest.metrics.backlog.get(), 0);
    }

    #[test]
    fn the_eval_names_every_written_key_once_and_groups_runs() {
        let mut pipe = redis::pipe();
        pipe.cmd("HINCRBYFLOAT")
            .arg("s{x}:vs:1")
            .arg("views")
            .arg(2.5);
        pipe.cmd("HINCRBYFLOAT")
            .arg("s{x}:vs:1")
            .arg("likes")
            .arg(1);
        pipe.cmd("ZINCRBY").arg("s{x}:exp").arg(1).arg("v1");
        pipe.cmd("HINCRBYFLOAT")
            .arg("s{x}:vs:1")
            .arg("dislikes")
            .arg(1);
        pipe.cmd("XADD").arg("s{x}:xlog").arg("*").arg("u").arg("a");
        let own = [
            "s{x}:ev".to_owned(),
            "s{x}:evq".into(),
            "s{x}:xlog".into(),
            "s{x}:xlog:n".into(),
        ];
        let round = ApplyRound {
            consumer: "c1",
            ids: vec!["1-0", "2-0"],
            events: 7,
            logged: 1,
            log_cap: super::super::redis_log::Cap {
                events: 900,
                batched: true,
            },
        };
        let eval = apply_eval(&own, &round, &pipe).expect("encode");
        let text = crate::store::command_text(&eval);
        assert_eq!(text[..2], ["EVAL", APPLY]);
        assert_eq!(
            text[2..],
            [
                "6", // KEYS: the script's own, then each written key once
                "s{x}:ev",
                "s{x}:evq",
                "s{x}:xlog",
                "s{x}:xlog:n",
                "s{x}:vs:1",
                "s{x}:exp", //
                "apply",
                "c1",
                "2",
                "7",
                "1",
                "900",
                "1",
                "1-0",
                "2-0", // runs: name, key index, commands, arity, then the arguments
                "HINCRBYFLOAT",
                "5",
                "2",
                "2",
                "views",
                "2.5",
                "likes",
                "1", //
                "ZINCRBY",
                "6",
                "1",
                "2",
                "1",
                "v1", //
                "HINCRBYFLOAT",
                "5",
                "1",
                "2",
                "dislikes",
                "1", //
                "XADD",
                "3",
                "1",
                "3",
                "*",
                "u",
                "a",
            ]
        );
        let mut keyless = redis::pipe();
        keyless.cmd("PING");
        assert!(apply_eval(&own, &round, &keyless).is_err());
    }
}
