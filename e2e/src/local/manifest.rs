//! FeedRollout manifests for the local-cluster scenarios (pure): the default-plan example with
//! its durations shortened to seconds ([`Timings`]), two replicas, exact per-request weights
//! through a Gateway API route (or in-app variants), and what makes each revision differ — a
//! new image tag, fault-injection variables, an image no rule can pull, a ranking profile.

use feedroll_crds::{DurationString, FeedRollout, InApp, Preset, Step, Tier, Traffic};
use serde_json::{Value, json};

use crate::driver::{DriverError, Timings, load_example};

/// The image every rollout starts from (stable); the kubelet runs it as the fault-injection
/// feed-server.
pub const STABLE_IMAGE: &str = "ghcr.io/feedroll/feed-server:0.1.0";
/// A new feed-server version (a new revision that is healthy unless faults say otherwise).
pub const NEXT_IMAGE: &str = "ghcr.io/feedroll/feed-server:0.2.0";
/// An image no kubelet rule matches: `ErrImagePull`, then `ImagePullBackOff`.
pub const UNPULLABLE_IMAGE: &str = "ghcr.io/feedroll/feed-servr:0.2.0";
/// The blocking P95 latency limit of the scenarios (seconds; the default policy's is 0.5): a
/// debug feed-server on two cores shared with a whole cluster (and, on a developer's machine,
/// with compilers) answers a healthy feed in up to ~2.5 s at P95.
pub const LATENCY_LIMIT: f64 = 3.0;
/// The pause-tier P95 latency limit (seconds; the default policy's is 1).
pub const LATENCY_PAUSE_LIMIT: f64 = 3.5;
/// Latency a slow canary adds (ms): above both limits.
pub const SLOW_CANARY_MS: u64 = 4000;

/// feed-server settings of every pod: two cores run a whole cluster (and a debug build) here,
/// so a starved pod must neither flap unready on a slow Redis call (2 s instead of 0.5 s) nor
/// shed the scenarios' few rankings (3 s of queue instead of 0.5 s), and it needs no warm-up.
const POD_ENV: [(&str, &str); 3] = [
    ("FEED_STORE_TIMEOUT_MS", "2000"),
    ("FEED_MAX_RANKING_QUEUE_WAIT_MS", "3000"),
    ("FEED_WARMUP_USERS", "0"),
];
/// The HTTPRoute parent each rollout's route attaches to (in the rollout's namespace).
pub const GATEWAY: &str = "public";

/// A fault the canary's pod template injects (`FEED_FAULT_*`, read by the fault-injection
/// feed-server at start).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// This share of `/v1/` requests answered 500.
    ErrorRate(f64),
    /// Milliseconds added to every `/v1/` request.
    LatencyMs(u64),
    /// The process exits before it listens: a crash loop.
    ExitAtStart,
}

impl Fault {
    /// The environment variable and its value.
    pub fn env(self) -> (&'static str, String) {
        match self {
            Self::ErrorRate(r) => ("FEED_FAULT_ERROR_RATE", r.to_string()),
            Self::LatencyMs(ms) => ("FEED_FAULT_LATENCY_MS", ms.to_string()),
            Self::ExitAtStart => ("FEED_FAULT_EXIT_AT_START", "1".to_owned()),
        }
    }
}

/// How a scenario's rollout is split between stable and canary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// Canary pods behind an HTTPRoute whose backend weights the operator sets (the gateway
    /// splits per request, exactly).
    Gateway,
    /// Variants of the ranking profile inside the same pods (no canary pods).
    InApp,
}

/// What a scenario's FeedRollout looks like, apart from its revision.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Namespace, also the rollout's name.
    pub namespace: String,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `spec.strategy.steps`.
    pub steps: Vec<Step>,
    /// Analysis and pause durations, in seconds.
    pub timings: Timings,
    /// `spec.progressDeadline`.
    pub progress_deadline: &'static str,
    /// Traffic mode.
    pub split: Split,
}

impl Plan {
    /// Two replicas through the gateway, the default checks on `timings`, a 60 s progress
    /// deadline (pods of a debug build start slowly on a busy machine).
    pub fn new(namespace: &str, steps: Vec<Step>, timings: Timings) -> Self {
        Self {
            namespace: namespace.to_owned(),
            replicas: 2,
            steps,
            timings,
            progress_deadline: "60s",
            split: Split::Gateway,
        }
    }
}

/// What one revision of the pod template (and profile) is.
#[derive(Clone, Debug, Default)]
pub struct Revision {
    /// The container image (default [`STABLE_IMAGE`]).
    pub image: Option<&'static str>,
    /// Faults injected from the start.
    pub faults: Vec<Fault>,
    /// `spec.rankingProfile` (a feed-profile document as JSON).
    pub profile: Option<Value>,
}

/// The ranking profile `name` with distinct weights (each name is a different revision).
pub fn profile(name: &str, affinity: f64) -> Value {
    json!({"name": name, "weights": {"freshness": 0.1, "completion": 0.35,
           "engagement": 0.25, "affinity": affinity, "embedding": 0.05}})
}

/// The FeedRollout of `plan` at `revision`, as kubectl would apply it: `examples/default-plan.yaml`
/// renamed to the plan's namespace, its pods on the Redis at `redis` (a URL), its durations and
/// steps the plan's.
pub fn feed_rollout(
    example: &std::path::Path,
    plan: &Plan,
    revision: &Revision,
    redis: &str,
) -> Result<Value, DriverError> {
    let mut fr: FeedRollout = load_example(example, &plan.timings)?;
    for check in fr
        .spec
        .analysis
        .iter_mut()
        .flat_map(|a| a.checks.iter_mut())
        .filter(|c| c.preset == Some(Preset::LatencyQuantile))
    {
        match check.tier {
            Some(Tier::Blocking) => check.max = Some(LATENCY_LIMIT),
            Some(Tier::Pause) => check.max = Some(LATENCY_PAUSE_LIMIT),
            _ => {}
        }
    }
    fr.metadata.name = Some(plan.namespace.clone());
    fr.metadata.namespace = Some(plan.namespace.clone());
    let spec = &mut fr.spec;
    spec.replicas = plan.replicas;
    spec.progress_deadline = Some(DurationString::new(plan.progress_deadline));
    let mut strategy = spec.strategy.clone().unwrap_or_default();
    strategy.steps = Some(plan.steps.clone());
    strategy.traffic = Some(match plan.split {
        Split::Gateway => serde_json::from_value::<Traffic>(
            json!({"gatewayAPI": {"parentRefs": [{"name": GATEWAY}], "port": 8080}}),
        )
        .map_err(|e| DriverError::Spec(format!("gateway traffic: {e}")))?,
        Split::InApp => Traffic {
            in_app: Some(InApp {
                salt: Some(plan.namespace.clone()),
                ..InApp::default()
            }),
            ..Traffic::default()
        },
    });
    spec.strategy = Some(strategy);
    spec.ranking_profile = revision
        .profile
        .clone()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| DriverError::Spec(format!("ranking profile: {e}")))?;
    let mut object =
        serde_json::to_value(&fr).map_err(|e| DriverError::Spec(format!("to JSON: {e}")))?;
    let container = &mut object["spec"]["template"]["spec"]["containers"][0];
    container["image"] = json!(revision.image.unwrap_or(STABLE_IMAGE));
    container["args"] = json!(["--listen", "0.0.0.0:8080", "--redis-url", redis]);
    let env: Vec<Value> = POD_ENV
        .iter()
        .map(|(name, value)| (*name, (*value).to_owned()))
        .chain(revision.faults.iter().map(|f| f.env()))
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    container["env"] = Value::Array(env);
    Ok(object)
}
