//! The cells `kubectl get pods` and `kubectl get deployments` show that no JSONPath gives: what
//! the real API server's table printers compute (pure). Pods: READY (ready containers / all),
//! STATUS (the phase, or what holds a container back: `CrashLoopBackOff`, `ImagePullBackOff`,
//! `ContainerCreating`, `Error`, `Completed`…, and `Terminating` while deleting), RESTARTS (the
//! containers' restarts). Deployments: READY (ready / wanted replicas), UP-TO-DATE and AVAILABLE
//! (0 before the controller wrote a status).

use serde_json::{Value, json};

/// A cell computed from the whole object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Computed {
    /// `1/2`: ready containers of the pod's containers.
    PodReady,
    /// The pod's status as kubectl prints it.
    PodStatus,
    /// Restarts of every container of the pod.
    PodRestarts,
    /// `3/4`: ready replicas of the Deployment's wanted replicas.
    DeploymentReady,
    /// Replicas at the current template (0 when the status has none yet).
    DeploymentUpdated,
    /// Available replicas (0 when the status has none yet).
    DeploymentAvailable,
}

fn statuses(pod: &Value) -> &[Value] {
    pod["status"]["containerStatuses"]
        .as_array()
        .map_or(&[], Vec::as_slice)
}

/// What one container says when it is not simply running: its waiting reason, or why it
/// terminated (`ExitCode:N` / `Signal:N` without a reason).
fn container_reason(status: &Value) -> Option<String> {
    let state = &status["state"];
    if let Some(reason) = state["waiting"]["reason"]
        .as_str()
        .filter(|r| !r.is_empty())
    {
        return Some(reason.to_owned());
    }
    let terminated = state.get("terminated")?;
    if let Some(reason) = terminated["reason"].as_str().filter(|r| !r.is_empty()) {
        return Some(reason.to_owned());
    }
    Some(match terminated["signal"].as_i64().filter(|s| *s != 0) {
        Some(signal) => format!("Signal:{signal}"),
        None => format!("ExitCode:{}", terminated["exitCode"].as_i64().unwrap_or(0)),
    })
}

/// The pod's STATUS column: `Terminating` while deleting, else the last container's reason
/// for not running, else `status.reason`, else the phase.
pub fn pod_status(pod: &Value) -> String {
    if pod["metadata"]["deletionTimestamp"].is_string() {
        return "Terminating".to_owned();
    }
    let base = pod["status"]["reason"]
        .as_str()
        .or_else(|| pod["status"]["phase"].as_str())
        .unwrap_or("Pending");
    statuses(pod)
        .iter()
        .rev()
        .find_map(container_reason)
        .unwrap_or_else(|| base.to_owned())
}

/// The cell of `computed` for `obj`.
pub fn cell(computed: Computed, obj: &Value) -> Value {
    match computed {
        Computed::PodReady => {
            let containers = obj["spec"]["containers"].as_array().map_or(0, Vec::len);
            let ready = statuses(obj).iter().filter(|s| s["ready"] == true).count();
            json!(format!("{ready}/{containers}"))
        }
        Computed::PodStatus => json!(pod_status(obj)),
        Computed::PodRestarts => json!(
            statuses(obj)
                .iter()
                .filter_map(|s| s["restartCount"].as_i64())
                .sum::<i64>()
        ),
        Computed::DeploymentReady => json!(format!(
            "{}/{}",
            obj["status"]["readyReplicas"].as_i64().unwrap_or(0),
            obj["spec"]["replicas"].as_i64().unwrap_or(1)
        )),
        Computed::DeploymentUpdated => {
            json!(obj["status"]["updatedReplicas"].as_i64().unwrap_or(0))
        }
        Computed::DeploymentAvailable => {
            json!(obj["status"]["availableReplicas"].as_i64().unwrap_or(0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(phase: &str, statuses: Value) -> Value {
        json!({"metadata": {"name": "p"},
               "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
               "status": {"phase": phase, "containerStatuses": statuses}})
    }

    #[test]
    fn pods_print_ready_status_and_restarts_as_kubectl_does() {
        let running = pod(
            "Running",
            json!([{"name": "a", "ready": true, "restartCount": 1, "state": {"running": {}}},
                   {"name": "b", "ready": false, "restartCount": 2, "state": {"running": {}}}]),
        );
        assert_eq!(cell(Computed::PodReady, &running), json!("1/2"));
        assert_eq!(cell(Computed::PodStatus, &running), json!("Running"));
        assert_eq!(cell(Computed::PodRestarts, &running), json!(3));

        let crashing = pod(
            "Running",
            json!([{"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                   {"name": "b", "ready": false, "restartCount": 4,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]),
        );
        assert_eq!(pod_status(&crashing), "CrashLoopBackOff");
        let pulling = pod(
            "Pending",
            json!([{"name": "a", "ready": false, "restartCount": 0,
                    "state": {"waiting": {"reason": "ImagePullBackOff"}}}]),
        );
        assert_eq!(pod_status(&pulling), "ImagePullBackOff");
        let exited = pod(
            "Failed",
            json!([{"name": "a", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 70}}}]),
        );
        assert_eq!(pod_status(&exited), "ExitCode:70");
        let killed = pod(
            "Failed",
            json!([{"name": "a", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]),
        );
        assert_eq!(pod_status(&killed), "Signal:9");
        assert_eq!(pod_status(&pod("Pending", json!([]))), "Pending");
        let mut deleting = running.clone();
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert_eq!(pod_status(&deleting), "Terminating");
        assert_eq!(cell(Computed::PodReady, &json!({})), json!("0/0"));
    }

    #[test]
    fn deployments_print_ready_of_wanted_replicas() {
        let d = json!({"spec": {"replicas": 4}, "status": {"readyReplicas": 3}});
        assert_eq!(cell(Computed::DeploymentReady, &d), json!("3/4"));
        assert_eq!(cell(Computed::DeploymentReady, &json!({})), json!("0/1"));
        let d = json!({"status": {"updatedReplicas": 2, "availableReplicas": 1}});
        assert_eq!(cell(Computed::DeploymentUpdated, &d), json!(2));
        assert_eq!(cell(Computed::DeploymentAvailable, &d), json!(1));
        assert_eq!(cell(Computed::DeploymentAvailable, &json!({})), json!(0));
    }
}
