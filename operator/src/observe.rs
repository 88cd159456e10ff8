//! Observations from the world, as pure functions of the objects read back: canary pod health,
//! the revision the stable pods are ready at, human commands and replica counts for the status.

use std::collections::BTreeMap;

use feedroll_crds::{PodIssue, PodIssueReason, TrafficMode};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::brain::{Command, CommandKind, PodHealth, share};
use crate::desired::{ANNOTATION_REVISION, ANNOTATION_SOURCE, LABEL_REVISION, Source};

/// Annotation carrying a human command: `<verb>` or `<verb>/<nonce>`.
pub const ANNOTATION_COMMAND: &str = "feedroll.dev/command";
/// Annotation naming who sent the command in [`ANNOTATION_COMMAND`] (self-declared; `kubectl
/// feedroll` writes the kubeconfig user). It is kept with the decision in `status.history`.
pub const ANNOTATION_COMMAND_AUTHOR: &str = "feedroll.dev/command-author";
/// A canary container restarting more often than this counts as crash-looping.
pub const RESTART_BOUND: i32 = 3;

/// Parses a command annotation: `promote`, `promote-full`, `pause`, `resume`, `abort` or
/// `retry`, optionally followed by `/<nonce>`; the id is the whole value (applied once).
pub fn parse_command(value: &str) -> Result<Command, String> {
    let value = value.trim();
    let verb = value.split_once('/').map_or(value, |(v, _)| v);
    let kind = CommandKind::from_verb(verb).ok_or_else(|| {
        format!(
            "unknown command {verb:?} in {ANNOTATION_COMMAND}={value:?}: use {} (optionally /<nonce>)",
            CommandKind::verbs()
        )
    })?;
    Ok(Command {
        id: value.to_owned(),
        kind,
        author: None,
    })
}

/// The command on the object, if any (with its author from [`ANNOTATION_COMMAND_AUTHOR`]):
/// `Ok(None)` without the annotation, `Err` (with the annotation value as id) for a value that
/// is not a command.
pub fn command(
    annotations: &BTreeMap<String, String>,
) -> Result<Option<Command>, (String, String)> {
    match annotations.get(ANNOTATION_COMMAND) {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) => {
            let author = annotations
                .get(ANNOTATION_COMMAND_AUTHOR)
                .map(|a| a.trim())
                .filter(|a| !a.is_empty())
                .map(str::to_owned);
            parse_command(v)
                .map(|c| Some(Command { author, ..c }))
                .map_err(|e| (v.trim().to_owned(), e))
        }
    }
}

/// The revision annotation of a Deployment.
pub fn revision_of(d: &Deployment) -> Option<&str> {
    d.metadata
        .annotations
        .as_ref()?
        .get(ANNOTATION_REVISION)
        .map(String::as_str)
}

/// The revision and source recorded on the live stable Deployment.
pub fn recorded_source(d: &Deployment) -> Option<(String, Source)> {
    let rev = revision_of(d)?.to_owned();
    let src = Source::from_annotation(d.metadata.annotations.as_ref()?.get(ANNOTATION_SOURCE)?)?;
    Some((rev, src))
}

/// Whether the Deployment controller has seen the Deployment's current generation.
fn caught_up(d: &Deployment, st: &DeploymentStatus) -> bool {
    match (st.observed_generation, d.metadata.generation) {
        (Some(o), Some(g)) => o >= g,
        (_, None) => true,
        (None, Some(_)) => false,
    }
}

/// Whether the Deployment controller has caught up with the spec and every pod is of the
/// current template, ready and available.
pub fn rolled_out(d: &Deployment) -> bool {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(st) = d.status.as_ref() else {
        return want == 0 && d.metadata.generation.is_none();
    };
    let observed = caught_up(d, st);
    observed
        && st.updated_replicas.unwrap_or(0) >= want
        && st.ready_replicas.unwrap_or(0) >= want
        && st.available_replicas.unwrap_or(0) >= want
        && st.replicas.unwrap_or(0) <= want
}

/// The revision the stable pods run and are all ready at (`None` while rolling or absent).
pub fn stable_ready_revision(stable: Option<&Deployment>) -> Option<String> {
    let d = stable?;
    rolled_out(d).then(|| revision_of(d).map(str::to_owned))?
}

/// Ready canary pods at `revision` (0 when the Deployment runs another revision or lags).
pub fn canary_ready(canary: Option<&Deployment>, revision: Option<&str>) -> i32 {
    let Some(d) = canary else { return 0 };
    if revision.is_none() || revision_of(d) != revision {
        return 0;
    }
    let Some(st) = d.status.as_ref() else {
        return 0;
    };
    let observed = caught_up(d, st);
    if !observed {
        return 0;
    }
    st.ready_replicas
        .unwrap_or(0)
        .min(st.updated_replicas.unwrap_or(0))
}

/// Live (not terminating) pods labelled with `revision` (none without a revision).
fn live_at<'a>(pods: &'a [Pod], revision: Option<&'a str>) -> impl Iterator<Item = &'a Pod> {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(move |p| {
            revision.is_some()
                && p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_REVISION))
                    .map(String::as_str)
                    == revision
        })
}

/// Canary pod health: `ready` when the canary Deployment runs `revision` with `want > 0`
/// replicas, all updated and ready; `crash_looping` when a live canary pod of `revision` has a
/// container in CrashLoopBackOff or restarted more than [`RESTART_BOUND`] times. `issues` are
/// left empty: [`canary_issues`] and [`track_issues`] fill them.
pub fn canary_health(
    canary: Option<&Deployment>,
    pods: &[Pod],
    revision: Option<&str>,
    want: i32,
) -> PodHealth {
    let ready = want > 0
        && canary.is_some_and(|d| {
            d.spec.as_ref().and_then(|s| s.replicas) == Some(want)
                && revision_of(d) == revision
                && rolled_out(d)
        });
    PodHealth {
        ready,
        crash_looping: live_at(pods, revision).any(crash_looping),
        issues: Vec::new(),
    }
}

/// The issues ([`pod_issues`]) of the live canary pods of `revision`, sorted.
pub fn canary_issues(pods: &[Pod], revision: Option<&str>, now: Timestamp) -> Vec<PodIssue> {
    sorted(live_at(pods, revision).flat_map(|p| pod_issues(p, now)))
}

/// The issues ([`pod_issues`]) of every live pod of a track, sorted: during a promotion the
/// stable track's pods are the ones moving to the new revision.
pub fn track_issues(pods: &[Pod], now: Timestamp) -> Vec<PodIssue> {
    sorted(
        pods.iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .flat_map(|p| pod_issues(p, now)),
    )
}

fn sorted(issues: impl Iterator<Item = PodIssue>) -> Vec<PodIssue> {
    let mut issues: Vec<PodIssue> = issues.collect();
    issues.sort();
    issues.dedup();
    issues
}

/// How long a pod stays `Unschedulable` before it is an issue: a cluster autoscaler adding a
/// node usually takes less, and such a pod needs no human.
pub const UNSCHEDULABLE_GRACE: std::time::Duration = std::time::Duration::from_secs(120);

/// Why `pod` cannot become ready without a change: containers (init containers included)
/// waiting with a reason of [`PodIssueReason`] (image pulls, container config), and a
/// `PodScheduled=False` condition with reason `Unschedulable` for at least
/// [`UNSCHEDULABLE_GRACE`] at `now`. Pods that are just starting, or running but failing their
/// readiness probe, have none: only the progress deadline catches those.
pub fn pod_issues(pod: &Pod, now: Timestamp) -> Vec<PodIssue> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    let mut issues: Vec<PodIssue> = containers
        .filter_map(|c| {
            let waiting = c.state.as_ref()?.waiting.as_ref()?;
            Some(PodIssue {
                pod: name.clone(),
                container: Some(c.name.clone()),
                reason: PodIssueReason::parse(waiting.reason.as_deref()?)?,
                message: waiting.message.clone().unwrap_or_default(),
            })
        })
        .collect();
    let unschedulable = status.conditions.iter().flatten().find(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some(PodIssueReason::Unschedulable.as_str())
            && c.last_transition_time.as_ref().is_none_or(|t| {
                let grace = SignedDuration::try_from(UNSCHEDULABLE_GRACE).unwrap_or_default();
                t.0.checked_add(grace).is_ok_and(|end| now >= end)
            })
    });
    if let Some(c) = unschedulable {
        issues.push(PodIssue {
            pod: name,
            container: None,
            reason: PodIssueReason::Unschedulable,
            message: c.message.clone().unwrap_or_default(),
        });
    }
    issues
}

/// Why a pod counts as crash-looping, if it does.
pub fn crash_loop_reason(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let all = status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten());
    for c in all {
        let waiting = c
            .state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.as_deref());
        if waiting == Some("CrashLoopBackOff") {
            return Some(format!("container {} is in CrashLoopBackOff", c.name));
        }
        if c.restart_count > RESTART_BOUND {
            return Some(format!(
                "container {} restarted {} times",
                c.name, c.restart_count
            ));
        }
    }
    None
}

fn crash_looping(pod: &Pod) -> bool {
    crash_loop_reason(pod).is_some()
}

/// Replica counts of both Deployments for the status: (total, ready, stable, canary).
pub fn replica_counts(
    stable: Option<&Deployment>,
    canary: Option<&Deployment>,
) -> (i32, i32, i32, i32) {
    let replicas = |d: Option<&Deployment>| {
        d.and_then(|d| d.status.as_ref())
            .and_then(|s| s.replicas)
            .unwrap_or(0)
    };
    let (s, c) = (replicas(stable), replicas(canary));
    (s + c, ready_replicas(stable) + ready_replicas(canary), s, c)
}

/// Ready pods of a Deployment, as its status reports them (0 when absent).
pub fn ready_replicas(d: Option<&Deployment>) -> i32 {
    d.and_then(|d| d.status.as_ref())
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

/// The percent of traffic the canary really gets (`status.actualWeight`), given the desired
/// `weight` and the ready pods of each track:
/// - replica ratio: the canary's share of all ready pods (10% of 4 replicas is 25%);
/// - Gateway API: the route weight once a canary pod is ready (0 before);
/// - in-app: the canary variant's share, which the feed-server applies exactly by user hash.
pub fn actual_weight(mode: &TrafficMode, weight: i32, stable_ready: i32, canary_ready: i32) -> i32 {
    match mode {
        TrafficMode::ReplicaRatio => share(canary_ready, stable_ready),
        TrafficMode::GatewayApi(_) if canary_ready <= 0 => 0,
        TrafficMode::GatewayApi(_) | TrafficMode::InApp(_) => weight.clamp(0, 100),
    }
}
