//! Prometheus service discovery for the cluster's pods: a `file_sd` file listing the pods a
//! prometheus-operator PodMonitor selects, with the target labels the operator's generated
//! scrape config gives them — `namespace`, `pod`, `container`, `endpoint` (the port's name),
//! `job` (`<monitor namespace>/<monitor name>`) and the address `podIP:port` — and nothing
//! else: the chart's PodMonitor has no `podTargetLabels`, and the series carry their own
//! `rollout`, `track` and `variant` labels (set by feed-server, kept by `honorLabels`), so a
//! feed-server that failed to set them shows here as it would on a cluster.
//!
//! [`PodMonitor`] and [`target_groups`] are pure; [`FileSd`] rewrites the file atomically
//! (written whole, then renamed) when the pods change.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::net::endpoints::pod_ip;
use crate::server::FakeApi;
use crate::store::ObjectKey;

/// Why a PodMonitor cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MonitorError {
    /// A field is missing or has an unexpected shape.
    #[error("PodMonitor: {0}")]
    Invalid(String),
}

/// One requirement of a label selector (`matchLabels` entries are `In` with one value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// The label has one of the values.
    In(String, Vec<String>),
    /// The label is absent or has none of the values.
    NotIn(String, Vec<String>),
    /// The label is present.
    Exists(String),
    /// The label is absent.
    DoesNotExist(String),
}

impl Requirement {
    fn matches(&self, labels: &Value) -> bool {
        let value = |k: &str| labels.get(k).and_then(Value::as_str);
        match self {
            Self::In(k, vs) => value(k).is_some_and(|v| vs.iter().any(|x| x == v)),
            Self::NotIn(k, vs) => value(k).is_none_or(|v| !vs.iter().any(|x| x == v)),
            Self::Exists(k) => value(k).is_some(),
            Self::DoesNotExist(k) => value(k).is_none(),
        }
    }
}

/// What a PodMonitor selects and scrapes (its first `podMetricsEndpoints` entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodMonitor {
    /// `<namespace>/<name>`: the `job` label of its targets.
    pub job: String,
    /// Pod label requirements (all must hold).
    pub selector: Vec<Requirement>,
    /// Namespaces of the pods (`None`: any).
    pub namespaces: Option<Vec<String>>,
    /// The name of the container port to scrape.
    pub port: String,
    /// The metrics path.
    pub path: String,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

impl PodMonitor {
    /// Reads a `monitoring.coreos.com/v1` PodMonitor object.
    pub fn parse(obj: &Value) -> Result<Self, MonitorError> {
        let bad = |m: &str| MonitorError::Invalid(m.to_owned());
        let meta = &obj["metadata"];
        let (Some(ns), Some(name)) = (meta["namespace"].as_str(), meta["name"].as_str()) else {
            return Err(bad("no name or namespace"));
        };
        let spec = &obj["spec"];
        let mut selector = Vec::new();
        for (k, v) in spec["selector"]["matchLabels"]
            .as_object()
            .into_iter()
            .flatten()
        {
            let v = v
                .as_str()
                .ok_or_else(|| bad("a matchLabels value is not a string"))?;
            selector.push(Requirement::In(k.clone(), vec![v.to_owned()]));
        }
        for e in spec["selector"]["matchExpressions"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let key = e["key"]
                .as_str()
                .ok_or_else(|| bad("a matchExpression has no key"))?
                .to_owned();
            selector.push(match e["operator"].as_str() {
                Some("In") => Requirement::In(key, strings(&e["values"])),
                Some("NotIn") => Requirement::NotIn(key, strings(&e["values"])),
                Some("Exists") => Requirement::Exists(key),
                Some("DoesNotExist") => Requirement::DoesNotExist(key),
                _ => return Err(bad("a matchExpression has an unknown operator")),
            });
        }
        let ns_sel = &spec["namespaceSelector"];
        let namespaces = if ns_sel["any"] == true {
            None
        } else if ns_sel["matchNames"].is_array() {
            Some(strings(&ns_sel["matchNames"]))
        } else {
            // prometheus-operator: no namespaceSelector means the monitor's own namespace.
            Some(vec![ns.to_owned()])
        };
        let endpoint = &spec["podMetricsEndpoints"][0];
        let port = endpoint["port"]
            .as_str()
            .ok_or_else(|| bad("podMetricsEndpoints[0].port (a port name) is required"))?;
        Ok(Self {
            job: format!("{ns}/{name}"),
            selector,
            namespaces,
            port: port.to_owned(),
            path: endpoint["path"].as_str().unwrap_or("/metrics").to_owned(),
        })
    }

    /// Whether the monitor selects `pod` (namespace and labels).
    pub fn selects(&self, pod: &Value) -> bool {
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
        let labels = &pod["metadata"]["labels"];
        self.namespaces
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == ns))
            && self.selector.iter().all(|r| r.matches(labels))
    }
}

/// A file_sd target group: one target and its labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetGroup {
    /// `podIP:port`.
    pub targets: Vec<String>,
    /// Target labels.
    pub labels: std::collections::BTreeMap<String, String>,
}

/// The targets of `monitor` among `pods`: a pod with an IP, not ended (`Succeeded`/`Failed`
/// are dropped, as prometheus-operator's relabeling does), for each container port named
/// `monitor.port`. Readiness does not matter: Prometheus scrapes unready pods too. Sorted by
/// namespace and pod.
pub fn target_groups(monitor: &PodMonitor, pods: &[Value]) -> Vec<TargetGroup> {
    let mut out = Vec::new();
    for pod in pods.iter().filter(|p| monitor.selects(p)) {
        let Some(ip) = pod_ip(pod) else { continue };
        if matches!(
            pod["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        ) {
            continue;
        }
        let meta = &pod["metadata"];
        for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
            for p in c["ports"].as_array().into_iter().flatten() {
                if p["name"].as_str() != Some(monitor.port.as_str()) {
                    continue;
                }
                let Some(port) = p["containerPort"].as_u64() else {
                    continue;
                };
                let labels = [
                    ("namespace", meta["namespace"].as_str()),
                    ("pod", meta["name"].as_str()),
                    ("container", c["name"].as_str()),
                    ("endpoint", Some(monitor.port.as_str())),
                    ("job", Some(monitor.job.as_str())),
                    ("__metrics_path__", Some(monitor.path.as_str())),
                ]
                .into_iter()
                .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
                .collect();
                out.push(TargetGroup {
                    targets: vec![format!("{ip}:{port}")],
                    labels,
                });
            }
        }
    }
    out.sort_by(|a, b| {
        (&a.labels["namespace"], &a.labels["pod"], &a.targets).cmp(&(
            &b.labels["namespace"],
            &b.labels["pod"],
            &b.targets,
        ))
    });
    out
}

/// Writes `contents` to `path` atomically: a temporary file beside it, then a rename (a
/// reader — Prometheus — never sees half a file).
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

/// The running file_sd writer; stops when dropped.
pub struct FileSd {
    task: JoinHandle<()>,
}

impl Drop for FileSd {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn relevant(key: &ObjectKey) -> bool {
    key.prefix == "/api/v1" && key.resource == "pods"
}

impl FileSd {
    /// Writes `path` now (an empty list when no pod is selected) and again whenever the
    /// targets change. Needs a Tokio runtime.
    pub fn start(api: &FakeApi, monitor: PodMonitor, path: PathBuf) -> std::io::Result<Self> {
        write_atomic(&path, b"[]\n")?;
        let (api2, monitor, path) = (api.clone(), Arc::new(monitor), Arc::new(path));
        let last = Arc::new(std::sync::Mutex::new(Vec::new()));
        let task = tokio::spawn(crate::net::resync_on_changes(
            api.clone(),
            relevant,
            move || {
                let (api, monitor, path, last) =
                    (api2.clone(), monitor.clone(), path.clone(), last.clone());
                async move {
                    let groups = target_groups(&monitor, &api.list_all("v1", "pods"));
                    let mut last = last
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if *last == groups && path.exists() {
                        return;
                    }
                    let text = serde_json::to_vec_pretty(&groups).unwrap_or_default();
                    match write_atomic(&path, &text) {
                        Ok(()) => *last = groups,
                        Err(e) => {
                            tracing::error!(path = %path.display(), error = %e, "cannot write file_sd targets");
                        }
                    }
                }
            },
        ));
        Ok(Self { task })
    }
}
