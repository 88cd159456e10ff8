//! The Deployment controller's decisions, pure: the pod template's hash, which pods to create
//! and delete for a rolling update (maxSurge / maxUnavailable) or a recreate, and the
//! Deployment's status with its `Available` and `Progressing` conditions (including
//! `ProgressDeadlineExceeded`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::conditions;

/// The label that ties pods to their template revision.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// Characters Kubernetes uses in generated names (no vowels, no look-alikes).
const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A Deployment's update strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Delete every old pod, then create the new ones.
    Recreate,
    /// Replace pods gradually: at most `max_surge` above the replicas, at most
    /// `max_unavailable` below them.
    RollingUpdate {
        /// Pods above `replicas` allowed.
        max_surge: u32,
        /// Pods below `replicas` allowed to be unavailable.
        max_unavailable: u32,
    },
}

/// An int-or-percent of `total` (`"25%"` rounds up for surge, down for unavailability); an
/// absent or malformed value is `default`.
fn int_or_percent(v: &Value, total: u32, round_up: bool, default: u32) -> u32 {
    if let Some(n) = v.as_u64() {
        return u32::try_from(n).unwrap_or(u32::MAX);
    }
    let Some(p) = v
        .as_str()
        .and_then(|s| s.strip_suffix('%'))
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return default;
    };
    let scaled = u64::from(total) * p;
    let n = if round_up {
        scaled.div_ceil(100)
    } else {
        scaled / 100
    };
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Strategy {
    /// The strategy of `spec.strategy` for `replicas` (defaults: RollingUpdate, 25% / 25%;
    /// both 0 means max unavailable 1, as the API server would refuse it otherwise).
    pub fn of(spec: &Value, replicas: u32) -> Self {
        let s = &spec["strategy"];
        if s["type"] == "Recreate" {
            return Self::Recreate;
        }
        let r = &s["rollingUpdate"];
        let max_surge = int_or_percent(&r["maxSurge"], replicas, true, replicas.div_ceil(4));
        let max_unavailable = int_or_percent(&r["maxUnavailable"], replicas, false, replicas / 4);
        Self::RollingUpdate {
            max_surge,
            max_unavailable: if max_surge == 0 && max_unavailable == 0 {
                1
            } else {
                max_unavailable
            },
        }
    }

    fn max_unavailable(self, replicas: u32) -> u32 {
        match self {
            Self::Recreate => replicas,
            Self::RollingUpdate {
                max_unavailable, ..
            } => max_unavailable,
        }
    }
}

/// The `pod-template-hash` of a template: a hash of its canonical JSON, encoded as Kubernetes
/// encodes it (the decimal digits mapped to safe characters).
pub fn template_hash(template: &Value) -> String {
    let digest = xxhash_rust::xxh3::xxh3_64(canonical(template).as_bytes()) as u32;
    digest
        .to_string()
        .bytes()
        .map(|b| SAFE[usize::from(b) % SAFE.len()] as char)
        .collect()
}

/// JSON with object keys sorted at every level (equal templates hash equally).
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&m[k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// What the controller needs to know of one of a Deployment's pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    /// Its name.
    pub name: String,
    /// Its `pod-template-hash`.
    pub hash: String,
    /// Its Ready condition is True.
    pub ready: bool,
    /// Ready for at least `minReadySeconds`.
    pub available: bool,
}

impl PodInfo {
    /// `pod` as seen at `now`, available once Ready for `min_ready`.
    pub fn of(pod: &Value, now: DateTime<Utc>, min_ready: Duration) -> Self {
        let ready_cond = pod["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
        let ready = ready_cond.is_some_and(|c| c["status"] == "True");
        let since = ready_cond
            .and_then(|c| c["lastTransitionTime"].as_str())
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        let available = ready
            && (min_ready.is_zero()
                || since
                    .is_some_and(|s| (now - s).to_std().is_ok_and(|elapsed| elapsed >= min_ready)));
        Self {
            name: pod["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            hash: pod["metadata"]["labels"][POD_TEMPLATE_HASH]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            ready,
            available,
        }
    }
}

/// Pods to create (of the current template) and delete (by name).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Actions {
    /// New pods to create.
    pub create: u32,
    /// Pods to delete.
    pub delete: Vec<String>,
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// At most `n` of `pods`: unavailable ones first, then unready, then by name (deterministic).
fn pick(pods: &[&PodInfo], n: u32) -> Vec<String> {
    let mut sorted: Vec<&&PodInfo> = pods.iter().collect();
    sorted.sort_by_key(|p| (p.available, p.ready, p.name.clone()));
    sorted
        .into_iter()
        .take(n as usize)
        .map(|p| p.name.clone())
        .collect()
}

/// The next step towards `replicas` pods of template `hash`.
pub fn actions(replicas: u32, strategy: Strategy, hash: &str, pods: &[PodInfo]) -> Actions {
    let (new, old): (Vec<&PodInfo>, Vec<&PodInfo>) = pods.iter().partition(|p| p.hash == hash);
    let new_count = count(new.len());
    let mut out = Actions::default();
    if new_count > replicas {
        out.delete = pick(&new, new_count - replicas);
    }
    if old.is_empty() {
        out.create = replicas.saturating_sub(new_count);
        return out;
    }
    match strategy {
        Strategy::Recreate => out.delete.extend(old.iter().map(|p| p.name.clone())),
        Strategy::RollingUpdate {
            max_surge,
            max_unavailable,
        } => {
            let total = count(pods.len());
            out.create = replicas
                .saturating_add(max_surge)
                .saturating_sub(total)
                .min(replicas.saturating_sub(new_count));
            let min_available = replicas.saturating_sub(max_unavailable);
            let new_unavailable = count(new.iter().filter(|p| !p.available).count());
            let mut budget = total.saturating_sub(min_available.saturating_add(new_unavailable));
            let unhealthy: Vec<&PodInfo> = old.iter().copied().filter(|p| !p.available).collect();
            let first = pick(&unhealthy, budget);
            budget -= count(first.len());
            out.delete.extend(first);
            let available = count(pods.iter().filter(|p| p.available).count());
            let healthy: Vec<&PodInfo> = old.iter().copied().filter(|p| p.available).collect();
            out.delete.extend(pick(
                &healthy,
                budget.min(available.saturating_sub(min_available)),
            ));
        }
    }
    out
}

/// What the status is computed from.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    /// The Deployment's name.
    pub name: &'a str,
    /// `metadata.generation`.
    pub generation: i64,
    /// `spec.replicas`.
    pub replicas: u32,
    /// The strategy.
    pub strategy: Strategy,
    /// The current template's hash.
    pub hash: &'a str,
    /// Its pods (not deleting).
    pub pods: &'a [PodInfo],
    /// `progressDeadlineSeconds`, scaled.
    pub progress_deadline: Duration,
    /// The current time.
    pub now: DateTime<Utc>,
}

fn condition(
    previous: &Value,
    kind: &str,
    ok: bool,
    reason: &str,
    message: String,
    now: &str,
    updated: bool,
) -> Value {
    let transition = conditions::transition_time(previous, kind, ok, now);
    let update = match conditions::find(previous, kind) {
        Some(c) if !updated && c["reason"] == reason => c["lastUpdateTime"].clone(),
        _ => json!(now),
    };
    json!({"type": kind, "status": conditions::word(ok), "reason": reason, "message": message,
           "lastUpdateTime": update, "lastTransitionTime": transition})
}

/// The Deployment's status; `previous` is its stored status (transition times, progress).
pub fn status(previous: &Value, o: &Observed<'_>) -> Value {
    let new: Vec<&PodInfo> = o.pods.iter().filter(|p| p.hash == o.hash).collect();
    let total = count(o.pods.len());
    let updated = count(new.len());
    let ready = count(o.pods.iter().filter(|p| p.ready).count());
    let available = count(o.pods.iter().filter(|p| p.available).count());
    let now = o.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let rs = format!("{}-{}", o.name, o.hash);
    let min_available = o
        .replicas
        .saturating_sub(o.strategy.max_unavailable(o.replicas));
    let is_available = available >= min_available;
    let available_cond = condition(
        previous,
        "Available",
        is_available,
        if is_available {
            "MinimumReplicasAvailable"
        } else {
            "MinimumReplicasUnavailable"
        },
        format!(
            "Deployment {} minimum availability.",
            if is_available { "has" } else { "does not have" }
        ),
        &now,
        false,
    );
    let complete = updated == o.replicas && available == o.replicas && total == o.replicas;
    let prev_progress = conditions::find(previous, "Progressing");
    let same_rs = prev_progress
        .and_then(|c| c["message"].as_str())
        .is_some_and(|m| m.contains(&format!("\"{rs}\"")));
    let counts = |s: &Value| {
        [
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
        ]
        .map(|k| s[k].as_u64().unwrap_or(0))
    };
    let now_counts = [total, updated, ready, available].map(u64::from);
    let moved = counts(previous) != now_counts
        || previous["observedGeneration"].as_i64() != Some(o.generation);
    let last_update = prev_progress
        .and_then(|c| c["lastUpdateTime"].as_str())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    let stalled =
        last_update.is_some_and(|t| (o.now - t).to_std().is_ok_and(|e| e > o.progress_deadline));
    let prev_reason = prev_progress
        .and_then(|c| c["reason"].as_str())
        .unwrap_or_default();
    // A finished rollout stays finished (a pod failing later is not a rollout's progress)
    // until the spec changes.
    let still_done = same_rs
        && prev_reason == "NewReplicaSetAvailable"
        && previous["observedGeneration"].as_i64() == Some(o.generation);
    let progressing = if complete || still_done {
        condition(
            previous,
            "Progressing",
            true,
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{rs}\" has successfully progressed."),
            &now,
            prev_reason != "NewReplicaSetAvailable",
        )
    } else if !same_rs {
        condition(
            previous,
            "Progressing",
            true,
            "NewReplicaSetCreated",
            format!("Created new replica set \"{rs}\""),
            &now,
            true,
        )
    } else if moved {
        condition(
            previous,
            "Progressing",
            true,
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{rs}\" is progressing."),
            &now,
            true,
        )
    } else if stalled || prev_reason == "ProgressDeadlineExceeded" {
        condition(
            previous,
            "Progressing",
            false,
            "ProgressDeadlineExceeded",
            format!("ReplicaSet \"{rs}\" has timed out progressing."),
            &now,
            prev_reason != "ProgressDeadlineExceeded",
        )
    } else {
        prev_progress.cloned().unwrap_or(Value::Null)
    };
    json!({
        "observedGeneration": o.generation,
        "replicas": total,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
        "unavailableReplicas": o.replicas.max(total).saturating_sub(available),
        "conditions": [available_cond, progressing],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, hash: &str, ready: bool) -> PodInfo {
        PodInfo {
            name: name.into(),
            hash: hash.into(),
            ready,
            available: ready,
        }
    }

    fn rolling(max_surge: u32, max_unavailable: u32) -> Strategy {
        Strategy::RollingUpdate {
            max_surge,
            max_unavailable,
        }
    }

    #[test]
    fn strategies_default_to_25_percent_and_parse_ints_and_percents() {
        let cases = [
            (json!({}), 10, rolling(3, 2)),
            (json!({}), 1, rolling(1, 0)),
            (
                json!({"strategy": {"type": "Recreate"}}),
                4,
                Strategy::Recreate,
            ),
            (
                json!({"strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}),
                4,
                rolling(0, 1),
            ),
            (
                json!({"strategy": {"rollingUpdate": {"maxSurge": "50%", "maxUnavailable": "50%"}}}),
                3,
                rolling(2, 1),
            ),
            (
                json!({"strategy": {"rollingUpdate": {"maxSurge": 2, "maxUnavailable": "bad"}}}),
                8,
                rolling(2, 2),
            ),
        ];
        for (spec, replicas, want) in cases {
            assert_eq!(Strategy::of(&spec, replicas), want, "{spec} x{replicas}");
        }
    }

    #[test]
    fn template_hashes_are_safe_stable_and_change_with_the_template() {
        let a = template_hash(
            &json!({"spec": {"containers": [{"name": "a", "image": "x:1"}]}, "metadata": {"labels": {"a": "1", "b": "2"}}}),
        );
        let same = template_hash(
            &json!({"metadata": {"labels": {"b": "2", "a": "1"}}, "spec": {"containers": [{"image": "x:1", "name": "a"}]}}),
        );
        let other = template_hash(
            &json!({"spec": {"containers": [{"name": "a", "image": "x:2"}]}, "metadata": {"labels": {"a": "1", "b": "2"}}}),
        );
        assert_eq!(a, same);
        assert_ne!(a, other);
        assert!(
            !a.is_empty() && a.len() <= 10 && a.bytes().all(|b| SAFE.contains(&b)),
            "{a}"
        );
    }

    #[test]
    fn a_fresh_deployment_creates_its_replicas_and_scales_both_ways() {
        assert_eq!(
            actions(3, rolling(1, 0), "h", &[]),
            Actions {
                create: 3,
                delete: vec![]
            }
        );
        let pods = [
            pod("a", "h", true),
            pod("b", "h", false),
            pod("c", "h", true),
        ];
        let down = actions(1, rolling(1, 0), "h", &pods);
        assert_eq!(down.create, 0);
        assert_eq!(
            down.delete,
            ["b", "a"],
            "the unready one first, then by name"
        );
        assert_eq!(actions(3, rolling(1, 0), "h", &pods), Actions::default());
    }

    #[test]
    fn a_rolling_update_surges_then_removes_old_pods_as_new_ones_become_available() {
        let s = rolling(1, 0);
        let mut pods = vec![pod("o1", "old", true), pod("o2", "old", true)];
        let step = actions(2, s, "new", &pods);
        assert_eq!(
            step,
            Actions {
                create: 1,
                delete: vec![]
            },
            "surge by one, keep all available"
        );
        pods.push(pod("n1", "new", false));
        assert_eq!(
            actions(2, s, "new", &pods),
            Actions::default(),
            "wait for n1"
        );
        pods[2].available = true;
        pods[2].ready = true;
        let step = actions(2, s, "new", &pods);
        assert_eq!(step.create, 0);
        assert_eq!(step.delete.len(), 1, "one old pod goes");
        pods.retain(|p| !step.delete.contains(&p.name));
        assert_eq!(
            actions(2, s, "new", &pods),
            Actions {
                create: 1,
                delete: vec![]
            }
        );
    }

    #[test]
    fn unavailable_old_pods_go_first_and_max_unavailable_allows_early_deletes() {
        let pods = [
            pod("o1", "old", true),
            pod("o2", "old", false),
            pod("o3", "old", true),
            pod("o4", "old", true),
        ];
        let step = actions(4, rolling(1, 1), "new", &pods);
        assert_eq!(step.create, 1);
        assert_eq!(
            step.delete,
            ["o2"],
            "the broken one, and no available one below 3"
        );
        let step = actions(
            4,
            rolling(0, 2),
            "new",
            &[
                pod("o1", "old", true),
                pod("o2", "old", true),
                pod("o3", "old", true),
                pod("o4", "old", true),
            ],
        );
        assert_eq!((step.create, step.delete.len()), (0, 2));
    }

    #[test]
    fn a_stuck_canary_never_takes_down_the_available_old_pods() {
        let pods = [
            pod("o1", "old", true),
            pod("o2", "old", true),
            pod("n1", "new", false),
        ];
        assert_eq!(actions(2, rolling(1, 0), "new", &pods), Actions::default());
    }

    #[test]
    fn recreate_deletes_every_old_pod_before_creating() {
        let pods = [pod("o1", "old", true), pod("o2", "old", false)];
        assert_eq!(
            actions(2, Strategy::Recreate, "new", &pods),
            Actions {
                create: 0,
                delete: vec!["o1".into(), "o2".into()]
            }
        );
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap_or_default()
    }

    fn observe<'a>(pods: &'a [PodInfo], generation: i64, now: i64) -> Observed<'a> {
        Observed {
            name: "feed",
            generation,
            replicas: 2,
            strategy: rolling(1, 0),
            hash: "new",
            pods,
            progress_deadline: Duration::from_secs(60),
            now: at(now),
        }
    }

    fn cond<'a>(s: &'a Value, kind: &str) -> &'a Value {
        s["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
            .unwrap_or(&Value::Null)
    }

    #[test]
    fn status_counts_pods_and_reports_availability_and_progress() {
        let pods = [pod("n1", "new", false), pod("o1", "old", true)];
        let s = status(&Value::Null, &observe(&pods, 2, 0));
        assert_eq!(
            (
                s["observedGeneration"].as_i64(),
                s["replicas"].as_u64(),
                s["updatedReplicas"].as_u64(),
                s["readyReplicas"].as_u64(),
                s["availableReplicas"].as_u64(),
                s["unavailableReplicas"].as_u64()
            ),
            (Some(2), Some(2), Some(1), Some(1), Some(1), Some(1))
        );
        assert_eq!(cond(&s, "Available")["status"], "False");
        assert_eq!(
            cond(&s, "Available")["reason"],
            "MinimumReplicasUnavailable"
        );
        assert_eq!(cond(&s, "Progressing")["reason"], "NewReplicaSetCreated");
        assert_eq!(
            cond(&s, "Progressing")["message"],
            "Created new replica set \"feed-new\""
        );

        let done = [pod("n1", "new", true), pod("n2", "new", true)];
        let s2 = status(&s, &observe(&done, 2, 10));
        assert_eq!(cond(&s2, "Available")["status"], "True");
        assert_eq!(
            cond(&s2, "Available")["lastTransitionTime"],
            "2027-01-15T08:00:10Z"
        );
        assert_eq!(cond(&s2, "Progressing")["reason"], "NewReplicaSetAvailable");
        assert_eq!(
            cond(&s2, "Progressing")["message"],
            "ReplicaSet \"feed-new\" has successfully progressed."
        );
        let one_down = [pod("n1", "new", true), pod("n2", "new", false)];
        let s3 = status(&s2, &observe(&one_down, 2, 1000));
        assert_eq!(
            cond(&s3, "Progressing")["reason"],
            "NewReplicaSetAvailable",
            "a finished rollout stays finished"
        );
        assert_eq!(s3["readyReplicas"], 1);
    }

    #[test]
    fn no_progress_for_the_deadline_is_progress_deadline_exceeded_until_progress() {
        let stuck = [
            pod("o1", "old", true),
            pod("o2", "old", true),
            pod("n1", "new", false),
        ];
        let s0 = status(&Value::Null, &observe(&stuck, 2, 0));
        let s1 = status(&s0, &observe(&stuck, 2, 30));
        assert_eq!(
            cond(&s1, "Progressing"),
            cond(&s0, "Progressing"),
            "nothing moved: kept"
        );
        let s2 = status(&s1, &observe(&stuck, 2, 60));
        assert_eq!(
            cond(&s2, "Progressing")["status"],
            "True",
            "within the deadline"
        );
        assert_eq!(
            cond(&s2, "Progressing")["lastUpdateTime"],
            cond(&s1, "Progressing")["lastUpdateTime"]
        );
        let s3 = status(&s2, &observe(&stuck, 2, 91));
        assert_eq!(cond(&s3, "Progressing")["status"], "False");
        assert_eq!(
            cond(&s3, "Progressing")["reason"],
            "ProgressDeadlineExceeded"
        );
        assert_eq!(
            cond(&s3, "Progressing")["message"],
            "ReplicaSet \"feed-new\" has timed out progressing."
        );
        let s4 = status(&s3, &observe(&stuck, 2, 200));
        assert_eq!(
            cond(&s4, "Progressing")["reason"],
            "ProgressDeadlineExceeded",
            "it stays"
        );
        let moving = [
            pod("o1", "old", true),
            pod("o2", "old", true),
            pod("n1", "new", true),
        ];
        let s5 = status(&s4, &observe(&moving, 2, 201));
        assert_eq!(
            (
                cond(&s5, "Progressing")["status"].as_str(),
                cond(&s5, "Progressing")["reason"].as_str()
            ),
            (Some("True"), Some("ReplicaSetUpdated"))
        );
        let new_template = status(
            &s4,
            &Observed {
                hash: "newer",
                ..observe(&stuck, 3, 202)
            },
        );
        assert_eq!(
            cond(&new_template, "Progressing")["reason"],
            "NewReplicaSetCreated"
        );
    }

    #[test]
    fn pods_are_available_after_min_ready_seconds() {
        let p = json!({"metadata": {"name": "p", "labels": {POD_TEMPLATE_HASH: "h"}},
            "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2027-01-15T08:00:00Z"}]}});
        let info = PodInfo::of(&p, at(5), Duration::from_secs(10));
        assert_eq!(
            (info.ready, info.available, info.hash.as_str()),
            (true, false, "h")
        );
        assert!(PodInfo::of(&p, at(10), Duration::from_secs(10)).available);
        assert!(PodInfo::of(&p, at(0), Duration::ZERO).available);
        assert!(!PodInfo::of(&json!({"metadata": {"name": "p"}}), at(0), Duration::ZERO).ready);
    }
}
