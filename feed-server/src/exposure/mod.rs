//! The exposure log and what is learned from it: `POST /v1/admin/tune`.
//!
//! **The log.** Every accepted event (`impression`, `view`, `complete`, `like`, …) is appended to
//! a bounded log in the same write that applies it to the counters: the embedded store's
//! `Store::apply`, or on Redis the consumers' apply script ([`crate::store`]'s ingest stream), so
//! an event is never counted without being logged, nor logged without being counted (on Redis
//! both trail acceptance by the apply lag). Redis keeps it in a capped Stream `P xlog` (one
//! `XADD` per event, or per batch of events, in the form [`LogFormat`] names, then a trim to `N`
//! events per apply round: `store::redis_log`), the embedded store in a ring buffer
//! ([`ring::RingLog`]). `N` is `--exposure-log-capacity` (`FEED_EXPOSURE_LOG_CAPACITY`,
//! default [`DEFAULT_LOG_CAPACITY`] events: at least 500,000 exposures at up to four events each —
//! impression, view, complete, like; KuaiRand averages 1.6). When the log is full the oldest
//! events are dropped (Redis trims whole stream nodes, so it may hold up to ~100 events more than
//! `N` for a while; batched entries are dropped whole, so it may hold up to 63 fewer), never the
//! one being appended, and the drops are counted in
//! `feed_exposure_log_dropped_total`. An *exposure* is an impression together with its outcome:
//! the events of the same user and video that follow it, up to the next impression of that pair
//! (played, watch ratio, completed, liked) — see [`replay`]. The log is windowed by the events'
//! own `ts`, not by arrival, so a replayed history counts like live traffic.
//!
//! **Point-in-time features, no leakage.** The fitter must see each exposure's signals as the
//! ranker computed them when the video was shown, never including that exposure's own outcome or
//! anything later. The store's counters and affinities hold *today's* values, which include every
//! outcome, so they cannot be used. Instead [`replay`] reads the raw events, sorts them by `ts`
//! (stable: events of one `ts` keep their arrival order, an impression before the view it led
//! to), and replays them through an in-memory copy of the learned state, built with the same
//! [`crate::learning::Deltas`] the live ingest uses. At each impression it records the signal
//! *inputs* ([`crate::ranking::inputs::SignalInputs`], the same inputs the live pipeline builds)
//! **before** applying the impression itself or anything after it; the exposure's outcome only
//! arrives later in `ts` order, so it cannot be in its own features. Events older than the
//! window (still in the log) warm the state up without being scored. What the replay cannot
//! restore is what the log does not hold: follows and friends (the replay sees none, so the
//! follow and friend boosts are 0) and the catalog, which is read as it is now (a video's
//! metadata does not depend on outcomes). Recording inputs rather than signals lets one replay be
//! scored under any profile: the tuner tries several prior strengths and compares the tuned
//! profile with the current one on the same exposures, and `POST /v1/admin/replay` (issue 17) can
//! rank the same exposures with two profiles.
//!
//! Modules: [`ring`] the embedded store's ring buffer, [`replay`] events → exposures,
//! [`quality`] GAUC and NDCG@10 (the port of `eval/feedeval/metrics.py`), [`fit`] the
//! non-negative logistic regression, [`tune`] the use case behind `POST /v1/admin/tune`,
//! [`replay_gate`] the one behind `POST /v1/admin/replay` (two profiles compared on the same
//! exposures, with paired bootstrap intervals), [`gate`] one log analysis (tune or replay) at a
//! time.

pub mod fit;
pub mod gate;
pub mod quality;
pub mod replay;
pub mod replay_gate;
pub mod ring;
pub mod tune;

use feed_metrics::ops;
use prometheus::IntCounter;

use crate::model::{Event, EventType};

/// Default capacity of the exposure log, in events (≥ 500,000 exposures; see the module docs).
pub const DEFAULT_LOG_CAPACITY: usize = 2_000_000;

/// Default of the most events one tune reads (`--tune-max-events`).
pub const DEFAULT_TUNE_MAX_EVENTS: usize = 200_000;

/// One accepted event as the exposure log keeps it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoggedEvent {
    /// Who.
    pub user_id: String,
    /// Which video.
    pub video_id: String,
    /// What happened.
    pub kind: EventType,
    /// Play time (ms), when the event carried one.
    pub watch_ms: Option<f64>,
    /// When it happened (unix seconds): the event's own `ts`, or its time of receipt.
    pub ts: f64,
}

impl LoggedEvent {
    /// The log entry of an accepted event stamped `ts`.
    pub fn of(event: &Event, ts: f64) -> Self {
        Self {
            user_id: event.user_id.clone(),
            video_id: event.video_id.clone(),
            kind: event.kind,
            watch_ms: event.watch_ms,
            ts,
        }
    }

    /// The event, for replaying it through [`crate::learning::Deltas`].
    pub fn event(&self) -> Event {
        Event {
            user_id: self.user_id.clone(),
            video_id: self.video_id.clone(),
            kind: self.kind,
            watch_ms: self.watch_ms,
            ts: None,
            variant: None,
        }
    }
}

/// How a Redis replica writes an exposure-log entry (`--exposure-log-format`); every form is
/// read (`store::redis_log`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Five fields (`u`, `v`, `k`, `t`, `w`): the form every version reads. The default until
    /// no replica older than the reader of the other forms runs anywhere.
    #[default]
    Fields,
    /// One field `e`: 3 arguments of the apply script per event instead of 12–14, and 19% less
    /// Redis memory per entry. Readable only by versions that have this option: set it once
    /// every replica (stable and canary) runs one.
    Packed,
    /// Up to 64 packed events an entry (fields `n` and `b`), one `XADD` for them all; the cap
    /// then counts events in `P xlog:n`. Readable only by versions that have this value: set it
    /// once every replica (stable and canary) runs one.
    Batched,
}

/// How a store keeps the exposure log.
#[derive(Clone, Debug)]
pub struct LogSettings {
    /// Most events kept; older ones are dropped.
    pub capacity: usize,
    /// The form of the entries a Redis replica writes.
    pub format: LogFormat,
    /// Counts the events dropped to make room (`feed_exposure_log_dropped_total`).
    pub dropped: IntCounter,
}

impl Default for LogSettings {
    /// [`DEFAULT_LOG_CAPACITY`], five-field entries, drops counted in a counter no registry
    /// exposes.
    fn default() -> Self {
        Self {
            capacity: DEFAULT_LOG_CAPACITY,
            format: LogFormat::default(),
            dropped: unregistered_drop_counter(),
        }
    }
}

/// Name of the drop counter.
pub const DROPPED_METRIC: &str = ops::EXPOSURE_LOG_DROPPED;

fn unregistered_drop_counter() -> IntCounter {
    IntCounter::new(
        DROPPED_METRIC,
        "Events dropped from the exposure log to make room (oldest first)",
    )
    .unwrap_or_else(|_| unreachable!("a valid metric name and help"))
}

/// Creates the drop counter and registers it with `metrics`.
pub fn register_drop_counter(
    metrics: &crate::metrics::Metrics,
) -> Result<IntCounter, crate::metrics::MetricsError> {
    let counter = unregistered_drop_counter();
    metrics.register(counter.clone())?;
    Ok(counter)
}
