//! The operator's Prometheus metrics (the contract of the chart's alerts,
//! `charts/feedroll/README.md`).

use std::collections::{BTreeSet, HashMap};

use feedroll_crds::{EventReason, FeedRolloutStatus, Phase, Tier, Verdict};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::sync::Mutex;

use super::lock;
use crate::brain::{CONDITION_HEALTHY, CONDITION_PAUSED, CONDITION_PROGRESSING};

/// Every phase, for the one-hot `feedroll_rollout_phase` gauge.
const PHASES: [Phase; 7] = [
    Phase::Progressing,
    Phase::Paused,
    Phase::Promoting,
    Phase::Succeeded,
    Phase::RolledBack,
    Phase::Aborted,
    Phase::Failed,
];

/// A per-rollout counter series: the metric and its label values after namespace and rollout.
type SeenSeries = (&'static str, Vec<String>);

/// The metrics and their registry.
pub struct Metrics {
    registry: Registry,
    phase: IntGaugeVec,
    phase_transition: GaugeVec,
    weight: IntGaugeVec,
    actual_weight: IntGaugeVec,
    waiting_since: GaugeVec,
    decisions: IntCounterVec,
    verdicts: IntCounterVec,
    breach_to_rollback: Histogram,
    reconciles: IntCounterVec,
    reconcile_duration: Histogram,
    leader: IntGauge,
    /// Label values of the per-rollout counters, to remove them with the rollout.
    seen: Mutex<HashMap<(String, String), BTreeSet<SeenSeries>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn register<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: T) -> T {
    // Names are constants and distinct: registration cannot fail.
    if let Err(e) = r.register(Box::new(m.clone())) {
        tracing::error!(error = %e, "registering a metric");
    }
    m
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric.
    pub fn new() -> Self {
        let r = Registry::new();
        let rollout = &["namespace", "rollout"];
        let phase = register(
            &r,
            IntGaugeVec::new(
                Opts::new(
                    "feedroll_rollout_phase",
                    "1 for the rollout's current phase, 0 for the others",
                ),
                &["namespace", "rollout", "phase"],
            )
            .expect("valid metric"),
        );
        let phase_transition = register(
            &r,
            GaugeVec::new(
                Opts::new(
                    "feedroll_rollout_phase_transition_timestamp_seconds",
                    "Unix time the rollout entered its current phase (from its status)",
                ),
                rollout,
            )
            .expect("valid metric"),
        );
        let weight = register(
            &r,
            IntGaugeVec::new(
                Opts::new(
                    "feedroll_rollout_weight",
                    "Percent of traffic on the canary",
                ),
                rollout,
            )
            .expect("valid metric"),
        );
        let actual_weight = register(
            &r,
            IntGaugeVec::new(
                Opts::new(
                    "feedroll_rollout_actual_weight",
                    "Percent of traffic the canary really gets (ready pods, route or variant shares)",
                ),
                rollout,
            )
            .expect("valid metric"),
        );
        let waiting_since = register(
            &r,
            GaugeVec::new(
                Opts::new(
                    "feedroll_rollout_canary_waiting_since_timestamp_seconds",
                    "Unix time the current step started waiting for canary pods to become ready; absent when none is waited for",
                ),
                rollout,
            )
            .expect("valid metric"),
        );
        let decisions = register(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "feedroll_decisions_total",
                    "Decisions (one per Kubernetes Event emitted), by reason",
                ),
                &["namespace", "rollout", "reason"],
            )
            .expect("valid metric"),
        );
        let verdicts = register(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "feedroll_check_verdicts_total",
                    "Analysis verdicts per check",
                ),
                &["namespace", "rollout", "check", "tier", "verdict"],
            )
            .expect("valid metric"),
        );
        let breach_to_rollback = register(
            &r,
            Histogram::with_opts(
                HistogramOpts::new(
                    "feedroll_breach_to_rollback_seconds",
                    "From the sample that breached a roll-back rule to the status at weight 0",
                )
                .buckets(vec![
                    0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0,
                ]),
            )
            .expect("valid metric"),
        );
        let reconciles = register(
            &r,
            IntCounterVec::new(
                Opts::new("feedroll_reconciles_total", "Reconciles by result"),
                &["result"],
            )
            .expect("valid metric"),
        );
        let reconcile_duration = register(
            &r,
            Histogram::with_opts(
                HistogramOpts::new(
                    "feedroll_reconcile_duration_seconds",
                    "Wall time of one reconcile, finalizer included",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
            )
            .expect("valid metric"),
        );
        let leader = register(
            &r,
            IntGauge::new("feedroll_leader", "1 on the replica that reconciles")
                .expect("valid metric"),
        );
        for result in ["ok", "error"] {
            reconciles.with_label_values(&[result]);
        }
        Self {
            registry: r,
            phase,
            phase_transition,
            weight,
            actual_weight,
            waiting_since,
            decisions,
            verdicts,
            breach_to_rollback,
            reconciles,
            reconcile_duration,
            leader,
            seen: Mutex::default(),
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "encoding metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Counts a reconcile that took `elapsed`.
    pub fn reconciled(&self, ok: bool, elapsed: std::time::Duration) {
        self.reconcile_duration.observe(elapsed.as_secs_f64());
        self.reconciles
            .with_label_values(&[if ok { "ok" } else { "error" }])
            .inc();
    }

    /// Sets the leader gauge.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Phase, transition time and weight of a rollout, from its status.
    pub fn observe_status(&self, ns: &str, name: &str, status: &FeedRolloutStatus) {
        for p in PHASES {
            self.phase
                .with_label_values(&[ns, name, p.as_str()])
                .set(i64::from(status.phase == Some(p)));
        }
        if let Some(t) = phase_entered(status) {
            self.phase_transition
                .with_label_values(&[ns, name])
                .set(t.as_millisecond() as f64 / 1000.0);
        }
        self.weight
            .with_label_values(&[ns, name])
            .set(i64::from(status.weight));
        self.actual_weight
            .with_label_values(&[ns, name])
            .set(i64::from(status.actual_weight));
        match &status.canary_waiting_since {
            Some(t) => self
                .waiting_since
                .with_label_values(&[ns, name])
                .set(t.0.as_millisecond() as f64 / 1000.0),
            None => {
                let _ = self.waiting_since.remove_label_values(&[ns, name]);
            }
        }
    }

    /// Counts a decision (an Event).
    pub fn decision(&self, ns: &str, name: &str, reason: EventReason) {
        let reason = reason.as_str();
        self.decisions.with_label_values(&[ns, name, reason]).inc();
        self.remember(ns, name, "decisions", vec![reason.to_owned()]);
    }

    /// Counts a check verdict.
    pub fn verdict(&self, ns: &str, name: &str, check: &str, tier: Tier, verdict: Verdict) {
        let (tier, verdict) = (tier.as_str(), verdict.as_str());
        self.verdicts
            .with_label_values(&[ns, name, check, tier, verdict])
            .inc();
        self.remember(
            ns,
            name,
            "verdicts",
            vec![check.to_owned(), tier.to_owned(), verdict.to_owned()],
        );
    }

    /// Records the time from a roll-back-tier breach to the status at weight 0.
    pub fn breach_to_rollback(&self, seconds: f64) {
        self.breach_to_rollback.observe(seconds.max(0.0));
    }

    fn remember(&self, ns: &str, name: &str, metric: &'static str, labels: Vec<String>) {
        lock(&self.seen)
            .entry((ns.to_owned(), name.to_owned()))
            .or_default()
            .insert((metric, labels));
    }

    /// Removes every series of a rollout (deleted, or this replica stopped leading).
    pub fn forget(&self, ns: &str, name: &str) {
        for p in PHASES {
            let _ = self.phase.remove_label_values(&[ns, name, p.as_str()]);
        }
        let _ = self.phase_transition.remove_label_values(&[ns, name]);
        let _ = self.weight.remove_label_values(&[ns, name]);
        let _ = self.actual_weight.remove_label_values(&[ns, name]);
        let _ = self.waiting_since.remove_label_values(&[ns, name]);
        let seen = lock(&self.seen).remove(&(ns.to_owned(), name.to_owned()));
        for (metric, labels) in seen.into_iter().flatten() {
            let mut values: Vec<&str> = vec![ns, name];
            values.extend(labels.iter().map(String::as_str));
            let _ = match metric {
                "decisions" => self.decisions.remove_label_values(&values),
                _ => self.verdicts.remove_label_values(&values),
            };
        }
    }

    /// Removes the series of every rollout.
    pub fn forget_all(&self) {
        self.phase.reset();
        self.phase_transition.reset();
        self.weight.reset();
        self.actual_weight.reset();
        self.waiting_since.reset();
        self.decisions.reset();
        self.verdicts.reset();
        lock(&self.seen).clear();
    }
}

fn condition_time(conditions: &[Condition], type_: &str) -> Option<k8s_openapi::jiff::Timestamp> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.last_transition_time.0)
}

/// When the rollout entered its phase, from the status (so it survives restarts): `Paused` when
/// the Paused condition flipped to True, `RolledBack`/`Aborted` at `rolledBackAt`, `Failed` when
/// Healthy flipped, otherwise the latest flip of Progressing or Paused (a resume, a new rollout,
/// a completion). `Promoting` after `Progressing` flips nothing and reports the latter's start.
pub fn phase_entered(status: &FeedRolloutStatus) -> Option<k8s_openapi::jiff::Timestamp> {
    let c = &status.conditions;
    match status.phase? {
        Phase::Paused => condition_time(c, CONDITION_PAUSED),
        Phase::RolledBack | Phase::Aborted => status
            .rolled_back_at
            .as_ref()
            .map(|t| t.0)
            .or_else(|| condition_time(c, CONDITION_HEALTHY)),
        Phase::Failed => condition_time(c, CONDITION_HEALTHY),
        _ => [
            condition_time(c, CONDITION_PROGRESSING),
            condition_time(c, CONDITION_PAUSED),
        ]
        .into_iter()
        .flatten()
        .max(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_900_000_000 + s).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn cond(type_: &str, status: &str, at: i64) -> Condition {
        Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: "R".to_owned(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: Time(t(at)),
        }
    }

    #[test]
    fn the_phase_entry_time_comes_from_the_status() {
        let mut st = FeedRolloutStatus {
            phase: Some(Phase::Paused),
            conditions: vec![
                cond(CONDITION_PROGRESSING, "False", 10),
                cond(CONDITION_PAUSED, "True", 20),
                cond(CONDITION_HEALTHY, "True", 0),
            ],
            ..Default::default()
        };
        assert_eq!(phase_entered(&st), Some(t(20)));
        st.phase = Some(Phase::Progressing);
        st.conditions[1] = cond(CONDITION_PAUSED, "False", 30);
        assert_eq!(phase_entered(&st), Some(t(30)));
        st.phase = Some(Phase::RolledBack);
        st.rolled_back_at = Some(Time(t(40)));
        assert_eq!(phase_entered(&st), Some(t(40)));
        st.phase = Some(Phase::Failed);
        st.conditions[2] = cond(CONDITION_HEALTHY, "False", 50);
        assert_eq!(phase_entered(&st), Some(t(50)));
        st.phase = None;
        assert_eq!(phase_entered(&st), None);
    }
}
