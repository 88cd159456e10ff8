//! Shared helpers of the state-machine tests.

#![allow(dead_code)]

use feedroll_crds::{AnalysisRun, CheckRecord, FeedRolloutSpec, FeedRolloutStatus, Phase, Verdict};
use feedroll_operator::brain::{Command, CommandKind, Observations, PodHealth, Transition, decide};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

pub const T0: i64 = 1_800_000_000;

pub fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(T0 + secs).unwrap()
}

/// `t + d`.
pub fn after(t: Timestamp, d: std::time::Duration) -> Timestamp {
    t.checked_add(k8s_openapi::jiff::SignedDuration::try_from(d).unwrap())
        .unwrap()
}

pub fn spec(yaml: &str) -> FeedRolloutSpec {
    let mut value: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
    if value.get("template").is_none() {
        value["template"] =
            serde_json::json!({"spec": {"containers": [{"name": "feed", "image": "feed:1"}]}});
    }
    serde_json::from_value(value).unwrap()
}

/// A FeedRollout being driven by the brain, one observation at a time.
pub struct Sim {
    pub spec: FeedRolloutSpec,
    pub status: FeedRolloutStatus,
    pub now: i64,
    pub revision: String,
    pub canary: PodHealth,
    /// Whether stable pods become ready at a promoted revision (the reconciler's report).
    pub stable_ready: bool,
    pub last: Option<Transition>,
    next_command: u32,
}

impl Sim {
    /// A rollout whose stable runs `r0` and whose spec now asks for `r1`.
    pub fn rolling(spec: FeedRolloutSpec) -> Self {
        let status = FeedRolloutStatus {
            phase: Some(Phase::Succeeded),
            stable_revision: Some("r0".into()),
            canary_revision: Some("r0".into()),
            ..Default::default()
        };
        Self {
            spec,
            status,
            now: 0,
            revision: "r1".into(),
            canary: PodHealth {
                ready: true,
                crash_looping: false,
                ..PodHealth::default()
            },
            stable_ready: true,
            last: None,
            next_command: 0,
        }
    }

    pub fn observe(&mut self, obs: Observations) -> Transition {
        let t = decide(&self.spec, &self.status, &obs, at(self.now));
        self.status = t.status.clone();
        self.last = Some(t.clone());
        t
    }

    pub fn obs(&self) -> Observations {
        Observations {
            revision: self.revision.clone(),
            generation: Some(1),
            analysis: None,
            canary: self.canary.clone(),
            // The reconciler finishes a promotion at once: stable is ready at the canary revision.
            stable_ready_revision: if self.status.phase == Some(Phase::Promoting)
                && self.stable_ready
            {
                self.status.canary_revision.clone()
            } else {
                self.status.stable_revision.clone()
            },
            commands: vec![],
            replay: None,
        }
    }

    /// Advances the clock and reconciles with no new analysis.
    pub fn tick(&mut self, secs: i64) -> Transition {
        self.now += secs;
        let obs = self.obs();
        self.observe(obs)
    }

    /// Advances the clock and reconciles with an analysis run.
    pub fn analyse(&mut self, secs: i64, fast: bool, verdicts: &[(&str, Verdict)]) -> Transition {
        self.now += secs;
        let mut obs = self.obs();
        obs.analysis = Some(run(&self.spec, self.now, fast, verdicts));
        self.observe(obs)
    }

    /// Every check passes.
    pub fn all_pass(&mut self, secs: i64) -> Transition {
        let names: Vec<String> = self
            .spec
            .resolved_analysis()
            .unwrap()
            .checks
            .iter()
            .map(|c| c.name.clone())
            .collect();
        let verdicts: Vec<(&str, Verdict)> =
            names.iter().map(|n| (n.as_str(), Verdict::Pass)).collect();
        self.analyse(secs, false, &verdicts)
    }

    pub fn command(&mut self, kind: CommandKind) -> Transition {
        self.next_command += 1;
        let mut obs = self.obs();
        obs.commands = vec![Command {
            id: format!("cmd-{}", self.next_command),
            kind,
            author: None,
        }];
        self.observe(obs)
    }

    pub fn phase(&self) -> Phase {
        self.status.phase.unwrap()
    }

    pub fn step(&self) -> i32 {
        self.status.current_step_index.unwrap_or(-1)
    }
}

/// An analysis run at `now` with the given verdicts (other checks absent).
pub fn run(
    spec: &FeedRolloutSpec,
    now: i64,
    fast: bool,
    verdicts: &[(&str, Verdict)],
) -> AnalysisRun {
    let checks = spec.resolved_analysis().unwrap().checks;
    AnalysisRun {
        at: Some(Time(at(now))),
        fast,
        records: verdicts
            .iter()
            .map(|(name, verdict)| {
                let check = checks
                    .iter()
                    .find(|c| c.name == *name)
                    .unwrap_or_else(|| panic!("no check {name}"));
                CheckRecord {
                    name: (*name).to_owned(),
                    tier: check.tier,
                    at: Some(Time(at(now))),
                    query: "q".into(),
                    value: match verdict {
                        Verdict::Pass => Some(0.0),
                        Verdict::Fail => Some(1.0),
                        _ => None,
                    },
                    threshold: check.threshold_text(),
                    verdict: *verdict,
                    reason: verdict.as_str().into(),
                    ..Default::default()
                }
            })
            .collect(),
    }
}
