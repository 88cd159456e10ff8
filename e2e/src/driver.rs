//! The rollout driver: the operator's brain and analysis engine applied to a FeedRollout, with
//! the weight moving the traffic generator and promotion restarting the stable feed-server,
//! instead of Kubernetes objects.

use std::time::{Duration, Instant};

use feed_profile::RankingProfile;
use feedroll_crds::defaults::{default_checks, default_steps};
use feedroll_crds::{
    CheckRecord, DurationString, FeedRollout, FeedRolloutSpec, FeedRolloutStatus, Phase,
    TrafficMode,
};
use feedroll_operator::analysis::replay::{self, ReplayCall};
use feedroll_operator::analysis::{AnalysisEngine, Target};
use feedroll_operator::brain::{self, Action, Command, CommandKind, Observations, PodHealth};
use feedroll_operator::desired::configmap::{config_map, key};
use feedroll_operator::desired::{Names, Source, Track};
use feedroll_operator::driver::turn;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;

use crate::procs::{FeedServer, ProcError, Prometheus, Redis};
use crate::timeline::{Row, Timeline};
use crate::traffic::{Traffic, TrafficPlan};

/// Why a scenario could not run (not: the rollout went the wrong way; that is the outcome).
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// A process failed.
    #[error(transparent)]
    Proc(#[from] ProcError),
    /// The FeedRollout file is not valid.
    #[error("FeedRollout: {0}")]
    Spec(String),
    /// The analysis engine could not be built.
    #[error("analysis engine: {0}")]
    Engine(String),
    /// HTTP to a feed-server failed during set-up.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
}

/// Timings of a scenario, in seconds instead of the example's minutes.
#[derive(Clone, Debug)]
pub struct Timings {
    /// Duration of each timed pause step.
    pub pause: &'static str,
    /// Analysis interval.
    pub interval: &'static str,
    /// Fast (roll-back-tier) interval.
    pub fast_interval: &'static str,
    /// Window of blocking/advisory/pause checks.
    pub window: &'static str,
    /// Window of roll-back-tier checks.
    pub fast_window: &'static str,
    /// Max hold on no data / provider error before pausing for a human.
    pub max_hold: &'static str,
    /// Minimum requests in a window before judging.
    pub min_requests: i64,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            pause: "6s",
            interval: "3s",
            fast_interval: "1s",
            window: "6s",
            fast_window: "3s",
            max_hold: "8s",
            min_requests: 5,
        }
    }
}

/// Loads an example FeedRollout and rewrites its timings to seconds; the default checks become
/// explicit so their windows can be shortened too. `checks` replaces the example's own checks when
/// given (scenario-specific relative checks).
pub fn load_example(path: &std::path::Path, t: &Timings) -> Result<FeedRollout, DriverError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| DriverError::Spec(format!("{}: {e}", path.display())))?;
    let mut fr: FeedRollout = serde_yaml_ng(&text)?;
    let spec = &mut fr.spec;
    let mut strategy = spec.strategy.clone().unwrap_or_default();
    let mut steps = strategy.steps.clone().unwrap_or_else(default_steps);
    for s in &mut steps {
        if let Some(p) = &mut s.pause
            && p.duration.is_some()
        {
            p.duration = Some(DurationString::new(t.pause));
        }
    }
    strategy.steps = Some(steps);
    spec.strategy = Some(strategy);
    let mut analysis = spec.analysis.clone().unwrap_or_default();
    let mut checks = if analysis.default_checks.unwrap_or(true) {
        default_checks()
    } else {
        Vec::new()
    };
    checks.extend(analysis.checks.clone());
    for c in &mut checks {
        let fast = c.tier == Some(feedroll_crds::Tier::Rollback);
        c.window = Some(DurationString::new(if fast {
            t.fast_window
        } else {
            t.window
        }));
        if c.max_hold.is_some() {
            c.max_hold = Some(DurationString::new(t.max_hold));
        }
        c.min_requests = Some(
            c.min_requests
                .map_or(t.min_requests, |m| m.min(t.min_requests)),
        );
    }
    analysis.default_checks = Some(false);
    analysis.checks = checks;
    analysis.interval = Some(DurationString::new(t.interval));
    analysis.fast_interval = Some(DurationString::new(t.fast_interval));
    analysis.max_hold = Some(DurationString::new(t.max_hold));
    spec.analysis = Some(analysis);
    Ok(fr)
}

fn serde_yaml_ng(text: &str) -> Result<FeedRollout, DriverError> {
    serde_yaml::from_str(text).map_err(|e| DriverError::Spec(e.to_string()))
}

/// How the scenario ended.
#[derive(Debug)]
pub struct Outcome {
    /// Final status.
    pub status: FeedRolloutStatus,
    /// Every decision, in order.
    pub timeline: Timeline,
    /// Highest weight the canary ever had.
    pub max_weight: i32,
    /// Whether any decision promoted the stable workload to the canary revision.
    pub promoted: bool,
}

/// A running rollout on one machine.
pub struct World {
    /// Shared Redis.
    pub redis: Redis,
    /// The stable feed-server.
    pub stable: FeedServer,
    /// The canary feed-server, while deployed.
    pub canary: Option<FeedServer>,
    /// Prometheus scraping both.
    pub prometheus: Prometheus,
    /// The traffic generator.
    pub traffic: Traffic,
    /// Temp dir of the profile files.
    pub dir: tempfile::TempDir,
    /// Rollout name (the `rollout` label).
    pub rollout: String,
    /// Faults to set on the canary at the next tick (`POST /debug/faults`), from scenario hooks.
    pub pending_canary_faults: Option<serde_json::Value>,
    stable_profile: String,
    canary_profile: String,
}

/// What to run the stable and canary with.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Rollout name.
    pub rollout: String,
    /// Stable profile file content.
    pub stable_profile: String,
    /// Canary profile file content.
    pub canary_profile: String,
    /// Requests per second.
    pub rate: u32,
    /// Distinct users.
    pub users: u32,
}

impl World {
    /// Starts Redis, the stable feed-server with a catalog, a pre-started canary (so Prometheus
    /// can scrape a fixed pair of targets), Prometheus and the traffic generator at weight 0.
    pub async fn start(setup: &Setup) -> Result<Self, DriverError> {
        let dir = tempfile::tempdir().map_err(ProcError::from)?;
        let redis = Redis::start()?;
        let stable = FeedServer::start(
            &redis,
            &setup.rollout,
            "stable",
            &setup.stable_profile,
            dir.path(),
        )
        .await?;
        let videos: Vec<serde_json::Value> = (0..200)
            .map(|i| {
                serde_json::json!({"id": format!("v{i}"), "creator_id": format!("c{}", i % 20), "published_at": "2026-11-25T00:00:00Z",
                    "duration_ms": 30000, "language": "en", "region": "US", "tags": [format!("t{}", i % 7)], "content_type": "short"})
            })
            .collect();
        reqwest::Client::new()
            .put(format!("{}/v1/videos", stable.url()))
            .json(&videos)
            .send()
            .await?
            .error_for_status()?;
        let canary = FeedServer::start(
            &redis,
            &setup.rollout,
            "canary",
            &setup.canary_profile,
            dir.path(),
        )
        .await?;
        let prometheus = Prometheus::start(&[stable.target(), canary.target()])?;
        let traffic = Traffic::start(TrafficPlan {
            stable: stable.url(),
            canary: canary.url(),
            rate: setup.rate,
            users: setup.users,
            videos: (0..200).map(|i| format!("v{i}")).collect(),
        });
        Ok(Self {
            redis,
            stable,
            canary: Some(canary),
            prometheus,
            traffic,
            dir,
            rollout: setup.rollout.clone(),
            pending_canary_faults: None,
            stable_profile: setup.stable_profile.clone(),
            canary_profile: setup.canary_profile.clone(),
        })
    }

    /// Restarts the stable feed-server with the canary's profile (promotion).
    async fn promote_stable(&mut self) -> Result<(), DriverError> {
        self.stable.set_profile(&self.canary_profile)?;
        self.stable_profile = self.canary_profile.clone();
        Ok(())
    }
}

/// A human command, given the status and the time since the start.
pub type HumanHook = Box<dyn FnMut(&FeedRolloutStatus, Duration) -> Option<CommandKind> + Send>;
/// Something the scenario does to the world before each decision (faults, outages).
pub type DuringHook = Box<dyn FnMut(&mut World, &FeedRolloutStatus, Duration) + Send>;
/// Ends the run early when it returns true.
pub type StopHook = Box<dyn Fn(&FeedRolloutStatus) -> bool + Send>;

/// What a scenario does besides the rollout itself.
pub struct Hooks {
    /// Human commands.
    pub human: HumanHook,
    /// Faults and outages.
    pub during: DuringHook,
    /// Early stop (besides resting phases and the deadline).
    pub stop: StopHook,
}

impl Default for Hooks {
    fn default() -> Self {
        Self {
            human: Box::new(|_, _| None),
            during: Box::new(|_, _, _| {}),
            stop: Box::new(|_| false),
        }
    }
}

/// Runs the rollout until it rests (Succeeded, RolledBack, Aborted), `hooks.stop` says so, or the
/// deadline passes.
pub async fn run(
    world: &mut World,
    stable_spec: &FeedRolloutSpec,
    canary_spec: &FeedRolloutSpec,
    mut hooks: Hooks,
    deadline: Duration,
) -> Result<Outcome, DriverError> {
    let started = Instant::now();
    let analysis = canary_spec
        .resolved_analysis()
        .map_err(|e| DriverError::Spec(e.to_string()))?;
    let engine = AnalysisEngine::new(
        &world.prometheus.url(),
        analysis.timeout.min(Duration::from_secs(2)),
    )
    .map_err(|e| DriverError::Engine(e.to_string()))?;
    let traffic_mode = canary_spec
        .resolved_strategy()
        .map_err(|e| DriverError::Spec(e.to_string()))?
        .traffic;
    let in_app = match &traffic_mode {
        TrafficMode::InApp(_) => Some(InAppFiles {
            names: Names {
                rollout: world.rollout.clone(),
                namespace: "default".to_owned(),
            },
            mode: traffic_mode.clone(),
            stable: Source::of(stable_spec),
            canary: Source::of(canary_spec),
            stable_profile: stable_spec.ranking_profile.clone().unwrap_or_default(),
            canary_profile: canary_spec.ranking_profile.clone().unwrap_or_default(),
        }),
        _ => None,
    };
    if let Some(files) = &in_app {
        world.stable.set_profile(&files.experiment(0)?)?;
    }
    let target = Target {
        namespace: None,
        rollout: world.rollout.clone(),
        traffic: traffic_mode,
    };

    // The stable revision is live before the scenario starts: the brain's first deployment.
    let stable_revision = brain::revision(stable_spec);
    let mut status = FeedRolloutStatus::default();
    for _ in 0..3 {
        let obs = Observations {
            revision: stable_revision.clone(),
            generation: Some(1),
            stable_ready_revision: Some(stable_revision.clone()),
            ..Observations::default()
        };
        status = brain::decide(stable_spec, &status, &obs, Timestamp::now()).status;
    }
    let canary_revision = brain::revision(canary_spec);
    let mut stable_ready = stable_revision.clone();
    let mut timeline = Timeline::new();
    let mut commands: Vec<Command> = Vec::new();
    let mut max_weight = 0;
    let mut promoted = false;
    let mut canary_deployed = false;

    loop {
        let elapsed = started.elapsed();
        if elapsed > deadline {
            break;
        }
        let now = Timestamp::now();
        (hooks.during)(world, &status, elapsed);
        if let (Some(faults), Some(canary)) = (world.pending_canary_faults.take(), &world.canary) {
            canary.set_faults(faults).await?;
        }
        if let Some(kind) = (hooks.human)(&status, elapsed) {
            commands.push(Command {
                id: format!("{}-{}", kind.as_str(), elapsed.as_millis()),
                kind,
                author: None,
            });
        }
        let crashed = world.canary.as_mut().is_some_and(|c| c.proc.exited());
        let mut obs = Observations {
            revision: canary_revision.clone(),
            generation: Some(2),
            canary: PodHealth {
                ready: canary_deployed && !crashed,
                crash_looping: crashed,
                ..PodHealth::default()
            },
            stable_ready_revision: Some(stable_ready.clone()),
            commands: commands.clone(),
            ..Observations::default()
        };
        // The replay gate, as the reconciler asks it: the stable feed-server replays its log.
        if let (Some(ask), Some(files)) = (brain::replay_due(canary_spec, &status, now), &in_app) {
            let http = replay::client().map_err(DriverError::Engine)?;
            let base_url = world.stable.url();
            let call = ReplayCall {
                base_url: &base_url,
                admin_key: None,
                stable: &files.stable_profile,
                canary: &files.canary_profile,
                window: ask.window,
                now,
            };
            obs.replay = Some(replay::ask(&http, &call).await);
        }
        // The same turn the reconciler takes: the due analysis, then the brain's decision.
        let t = turn(&engine, &target, canary_spec, &status, obs, now)
            .await
            .transition;
        let ran = t
            .status
            .analysis
            .as_ref()
            .filter(|a| Some(*a) != status.analysis.as_ref());
        let mut row = Row::new(elapsed, &t.status, ran.map(|r| r.records.as_slice()));
        for action in &t.actions {
            match action {
                Action::DeployCanary { .. } => canary_deployed = true,
                Action::SetWeight { weight } => {
                    match &in_app {
                        Some(files) => world.stable.set_profile(&files.experiment(*weight)?)?,
                        None => world
                            .traffic
                            .set_weight(u32::try_from(*weight).unwrap_or(0)),
                    }
                    max_weight = max_weight.max(*weight);
                }
                Action::PromoteStable { revision } => {
                    match &in_app {
                        Some(files) => world.stable.set_profile(&files.promoted()?)?,
                        None => world.promote_stable().await?,
                    }
                    stable_ready = revision.clone();
                    promoted = true;
                }
                Action::ScaleDownCanary => {
                    match &in_app {
                        Some(files) if !promoted => {
                            world.stable.set_profile(&files.experiment(0)?)?;
                        }
                        Some(_) => {}
                        None => world.traffic.set_weight(0),
                    }
                    canary_deployed = false;
                }
                Action::Event {
                    reason, message, ..
                } => row.events.push(format!("{}: {message}", reason.as_str())),
            }
        }
        status = t.status;
        timeline.push(row);
        let resting = matches!(
            status.phase,
            Some(Phase::Succeeded | Phase::RolledBack | Phase::Aborted)
        );
        if (resting && elapsed > Duration::from_secs(1)) || (hooks.stop)(&status) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(Outcome {
        status,
        timeline,
        max_weight,
        promoted,
    })
}

/// The profile file of an in-app rollout's stable feed-server: `stable.yaml` of the ConfigMap the
/// operator builds ([`config_map`]), so the e2e serves exactly what the operator would write.
struct InAppFiles {
    names: Names,
    mode: TrafficMode,
    stable: Source,
    canary: Source,
    /// The profiles the replay gate compares (none in the spec: the default profile).
    stable_profile: RankingProfile,
    canary_profile: RankingProfile,
}

impl InAppFiles {
    /// Both variants, the canary with `weight` percent of users.
    fn experiment(&self, weight: i32) -> Result<String, DriverError> {
        self.stable_file(&self.stable, weight)
    }

    /// After promotion: stable runs the canary's source, for everyone.
    fn promoted(&self) -> Result<String, DriverError> {
        self.stable_file(&self.canary, 0)
    }

    /// `stable.yaml` of the operator's ConfigMap with stable running `stable` at `weight`.
    fn stable_file(&self, stable: &Source, weight: i32) -> Result<String, DriverError> {
        // The e2e has no FeedRollout object to own the ConfigMap: the owner is left empty.
        let owner = OwnerReference::default();
        config_map(
            &self.names,
            &owner,
            &self.mode,
            stable,
            &self.canary,
            weight,
        )
        .map_err(|e| DriverError::Spec(e.to_string()))?
        .and_then(|c| c.data)
        .and_then(|mut data| data.remove(&key(Track::Stable)))
        .ok_or_else(|| DriverError::Spec("the in-app ConfigMap has no stable.yaml".to_owned()))
    }
}

/// The value recorded for a check in a run, if any.
pub fn record<'a>(records: &'a [CheckRecord], name: &str) -> Option<&'a CheckRecord> {
    records.iter().find(|r| r.name == name)
}
