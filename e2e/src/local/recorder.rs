//! What a scenario watched: one FeedRollout's status and Events, polled from the local API
//! server in-process every 100 ms, as a [`Timeline`] (phase, step, weight, the analysis records
//! and the Events of each decision) and the list of statuses it went through.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use feedroll_crds::{AnalysisRun, FeedRolloutStatus};
use feedroll_localkube::FakeApi;
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::timeline::{Row, Timeline};

/// The FeedRollout API version.
pub const FEED_ROLLOUTS: (&str, &str) = ("feedroll.dev/v1alpha1", "feedrollouts");
/// The Events API version the operator writes.
pub const EVENTS: (&str, &str) = ("events.k8s.io/v1", "events");

/// How often the recorder looks.
const POLL: Duration = Duration::from_millis(100);

/// A status seen by the recorder.
#[derive(Clone, Debug)]
pub struct Seen {
    /// When (since the scenario started).
    pub at: Duration,
    /// The status.
    pub status: FeedRolloutStatus,
}

/// Everything recorded so far.
#[derive(Clone, Debug, Default)]
pub struct Recording {
    /// Decisions with their Events and analysis records.
    pub timeline: Timeline,
    /// Every distinct status, in order.
    pub statuses: Vec<Seen>,
    /// The reasons of the rollout's Events, in the order they appeared.
    pub reasons: Vec<String>,
}

impl Recording {
    /// The latest status.
    pub fn status(&self) -> Option<&FeedRolloutStatus> {
        self.statuses.last().map(|s| &s.status)
    }
}

/// Records one rollout until dropped.
pub struct Recorder {
    recording: Arc<Mutex<Recording>>,
    task: JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What makes a new status worth a row: phase, step, weights, message, analysis run, history.
/// A run is the whole run, not its time: status times are whole seconds, and two runs (a fast
/// one and a full one) can fall in the same second with different verdicts.
fn key(s: &FeedRolloutStatus) -> String {
    format!(
        "{:?}/{:?}/{}/{:?}/{:?}/{:?}/{:?}",
        s.phase,
        s.current_step_index,
        s.weight,
        s.actual_weight,
        s.message,
        s.analysis,
        s.history.len()
    )
}

/// `Reason: note` of the Events regarding `name`, newest last, that are not in `seen`.
fn new_events(events: &[Value], name: &str, seen: &mut BTreeSet<String>) -> Vec<(String, String)> {
    let mut fresh: Vec<(String, String, String)> = events
        .iter()
        .filter(|e| e["regarding"]["name"].as_str() == Some(name))
        .filter_map(|e| {
            let id = e["metadata"]["name"].as_str()?.to_owned();
            if seen.contains(&id) {
                return None;
            }
            let when = e["eventTime"].as_str().unwrap_or_default().to_owned();
            let reason = e["reason"].as_str().unwrap_or("?").to_owned();
            let note = e["note"].as_str().unwrap_or_default().to_owned();
            seen.insert(id);
            Some((when, reason, note))
        })
        .collect();
    fresh.sort();
    fresh.into_iter().map(|(_, r, n)| (r, n)).collect()
}

/// What the polling loop remembers between looks.
#[derive(Default)]
struct Polling {
    last_key: String,
    last_run: Option<AnalysisRun>,
    seen: BTreeSet<String>,
}

impl Polling {
    /// Adds a row for a changed status or new Events, and the status when it changed.
    fn observe(
        &mut self,
        rec: &mut Recording,
        at: Duration,
        status: Option<FeedRolloutStatus>,
        events: &[(String, String)],
    ) {
        rec.reasons.extend(events.iter().map(|(r, _)| r.clone()));
        let Some(status) = status else {
            return;
        };
        let changed = key(&status) != self.last_key;
        if changed || !events.is_empty() {
            let records = (status.analysis != self.last_run)
                .then(|| status.analysis.as_ref().map(|a| a.records.as_slice()))
                .flatten();
            let mut row = Row::new(at, &status, records);
            row.events = events.iter().map(|(r, n)| format!("{r}: {n}")).collect();
            rec.timeline.push(row);
            self.last_run = status.analysis.clone();
        }
        if changed {
            self.last_key = key(&status);
            rec.statuses.push(Seen { at, status });
        }
    }
}

impl Recorder {
    /// Starts recording `namespace/name`; times are counted from `started`.
    pub fn start(api: FakeApi, namespace: &str, name: &str, started: Instant) -> Self {
        let recording: Arc<Mutex<Recording>> = Arc::default();
        let (ns, name) = (namespace.to_owned(), name.to_owned());
        let shared = recording.clone();
        let task = tokio::spawn(async move {
            let mut state = Polling::default();
            loop {
                let status = api
                    .get(FEED_ROLLOUTS.0, FEED_ROLLOUTS.1, &ns, &name)
                    .and_then(|fr| {
                        serde_json::from_value::<FeedRolloutStatus>(fr["status"].clone()).ok()
                    });
                let events = new_events(&api.list(EVENTS.0, EVENTS.1, &ns), &name, &mut state.seen);
                state.observe(
                    &mut shared.lock().unwrap_or_else(PoisonError::into_inner),
                    started.elapsed(),
                    status,
                    &events,
                );
                tokio::time::sleep(POLL).await;
            }
        });
        Self { recording, task }
    }

    /// A copy of what was recorded so far.
    pub fn recording(&self) -> Recording {
        self.recording
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The latest status, if the rollout has one.
    pub fn status(&self) -> Option<FeedRolloutStatus> {
        self.recording().status().cloned()
    }
}

#[cfg(test)]
mod tests {
    use feedroll_crds::{CheckRecord, Phase, Tier, Verdict};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn status(at_second: i64, verdict: Verdict) -> FeedRolloutStatus {
        let at = k8s_openapi::jiff::Timestamp::from_second(at_second)
            .ok()
            .map(Time);
        FeedRolloutStatus {
            phase: Some(Phase::Progressing),
            analysis: Some(AnalysisRun {
                at: at.clone(),
                fast: true,
                records: vec![CheckRecord {
                    name: "error-rate-critical".to_owned(),
                    tier: Tier::Rollback,
                    at,
                    verdict,
                    ..CheckRecord::default()
                }],
            }),
            ..FeedRolloutStatus::default()
        }
    }

    fn verdicts(rec: &Recording) -> Vec<Verdict> {
        rec.timeline
            .records("error-rate-critical")
            .map(|r| r.verdict)
            .collect()
    }

    /// Status times are whole seconds: a run that fails in the same second as one without data
    /// is a new run all the same (the roll-back tier's failure was once missed this way).
    #[test]
    fn a_second_run_within_the_same_second_is_recorded() {
        let mut polling = Polling::default();
        let mut rec = Recording::default();
        let second = Duration::from_millis(100);
        polling.observe(&mut rec, second, Some(status(41, Verdict::NoData)), &[]);
        polling.observe(&mut rec, 2 * second, Some(status(41, Verdict::Fail)), &[]);
        assert_eq!(verdicts(&rec), [Verdict::NoData, Verdict::Fail]);
        assert_eq!(rec.statuses.len(), 2, "each run's status is kept");
    }

    /// The same run seen again (the recorder polls faster than runs come) is not a new row.
    #[test]
    fn a_run_seen_twice_is_recorded_once() {
        let mut polling = Polling::default();
        let mut rec = Recording::default();
        for poll in 1..=3 {
            polling.observe(
                &mut rec,
                Duration::from_millis(100 * poll),
                Some(status(41, Verdict::Pass)),
                &[],
            );
        }
        assert_eq!(verdicts(&rec), [Verdict::Pass]);
        assert_eq!(rec.timeline.rows.len(), 1);
    }
}
