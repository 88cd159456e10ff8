//! Where the kubelet keeps a pod's files, and which log file `kubectl logs` reads: a
//! container's runs log to `ROOT/NS_POD_UID/logs/CONTAINER/N.log`, N counting from 0 (so the
//! current or last run's file is the container's `restartCount`).

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The directory of the pod `namespace/name` with `uid` under the kubelet's `root`.
pub fn pod_dir(root: &Path, namespace: &str, name: &str, uid: &str) -> PathBuf {
    root.join(format!("{namespace}_{name}_{uid}"))
}

/// The log file of run `run` (0 for the first) of `container` in the pod at `pod_dir`.
pub fn log_file(pod_dir: &Path, container: &str, run: u32) -> PathBuf {
    pod_dir
        .join("logs")
        .join(container)
        .join(format!("{run}.log"))
}

/// The log file `kubectl logs` reads for `pod` (its stored object): `container`, or the pod's
/// only container; the current (or last) run, or the one before with `previous`. The error is
/// the API server's message.
pub fn path(
    root: &Path,
    pod: &Value,
    container: Option<&str>,
    previous: bool,
) -> Result<PathBuf, String> {
    let meta = &pod["metadata"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let (ns, name, uid) = (
        text(&meta["namespace"]),
        text(&meta["name"]),
        text(&meta["uid"]),
    );
    let names: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let container = match (container, names.as_slice()) {
        (Some(c), _) if names.contains(&c) => c,
        (Some(c), _) => return Err(format!("container {c} is not valid for pod {name}")),
        (None, [only]) => only,
        (None, _) => {
            return Err(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            ));
        }
    };
    let status = pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|cs| cs.iter().find(|s| s["name"] == container))
        .filter(|s| s["containerID"].is_string())
        .ok_or_else(|| {
            format!(
                "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
            )
        })?;
    let restarts = status["restartCount"]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0);
    let run = if previous {
        restarts.checked_sub(1).ok_or_else(|| {
            format!("previous terminated container \"{container}\" in pod \"{name}\" not found")
        })?
    } else {
        restarts
    };
    Ok(log_file(&pod_dir(root, &ns, &name, &uid), container, run))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(containers: &[&str], restarts: u64, started: bool) -> Value {
        let mut status = json!({"name": containers[0], "restartCount": restarts});
        if started {
            status["containerID"] = json!("localkube://1");
        }
        json!({"metadata": {"namespace": "ns", "name": "p", "uid": "u"},
               "spec": {"containers": containers.iter().map(|c| json!({"name": c})).collect::<Vec<_>>()},
               "status": {"containerStatuses": [status]}})
    }

    #[test]
    fn logs_are_the_current_or_the_previous_runs_file() {
        let root = Path::new("/r");
        let p = pod(&["c"], 2, true);
        assert_eq!(
            path(root, &p, None, false),
            Ok(PathBuf::from("/r/ns_p_u/logs/c/2.log"))
        );
        assert_eq!(
            path(root, &p, Some("c"), true),
            Ok(PathBuf::from("/r/ns_p_u/logs/c/1.log"))
        );
        assert_eq!(
            path(root, &pod(&["c"], 0, true), None, true),
            Err("previous terminated container \"c\" in pod \"p\" not found".into())
        );
        assert_eq!(
            path(root, &pod(&["c"], 0, false), None, false),
            Err("container \"c\" in pod \"p\" is waiting to start: ContainerCreating".into())
        );
    }

    #[test]
    fn the_container_must_be_named_when_there_are_several() {
        let root = Path::new("/r");
        let p = pod(&["a", "b"], 0, true);
        assert_eq!(
            path(root, &p, None, false),
            Err("a container name must be specified for pod p, choose one of: [a b]".into())
        );
        assert_eq!(
            path(root, &p, Some("a"), false),
            Ok(PathBuf::from("/r/ns_p_u/logs/a/0.log"))
        );
        assert_eq!(
            path(root, &p, Some("x"), false),
            Err("container x is not valid for pod p".into())
        );
    }
}
