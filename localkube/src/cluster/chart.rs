//! What the cluster takes from the Helm chart, as rendered by the chart tests
//! (`charts/tests-rs/testdata/rendered/`, embedded at build time): the operator's
//! ServiceAccount and RBAC objects (installed as `helm install` would), the operator
//! Deployment's arguments and environment (how each replica is started), and the
//! feed-server PodMonitor (what Prometheus scrapes). Pure functions over JSON.

use serde_json::Value;

/// The default release rendered by the chart tests (`helm template feedroll charts/feedroll
/// -n feedroll-system`).
pub const DEFAULT_RELEASE: &str =
    include_str!("../../../charts/tests-rs/testdata/rendered/default.json");
/// The release with `feedServerMonitor.enabled=true`: its PodMonitor.
pub const POD_MONITOR_RELEASE: &str =
    include_str!("../../../charts/tests-rs/testdata/rendered/pod-monitor.json");

/// Why the rendered chart cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChartError {
    /// Not a JSON list of objects.
    #[error("the rendered chart is not a JSON list of objects: {0}")]
    NotJson(String),
    /// An expected object is missing.
    #[error("the rendered chart has no {0}")]
    Missing(&'static str),
    /// An env var takes its value from somewhere the cluster cannot provide.
    #[error("operator env {name}: {problem}")]
    Env {
        /// The variable.
        name: String,
        /// What is unsupported.
        problem: String,
    },
}

/// The objects of a rendered release.
pub fn objects(rendered: &str) -> Result<Vec<Value>, ChartError> {
    serde_json::from_str(rendered).map_err(|e| ChartError::NotJson(e.to_string()))
}

/// The plural under which RBAC-related kinds are stored, for the kinds the cluster installs.
pub fn rbac_plural(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "ServiceAccount" => "serviceaccounts",
        "Role" => "roles",
        "RoleBinding" => "rolebindings",
        "ClusterRole" => "clusterroles",
        "ClusterRoleBinding" => "clusterrolebindings",
        _ => return None,
    })
}

/// The first object of `kind`.
pub fn find<'a>(objects: &'a [Value], kind: &'static str) -> Result<&'a Value, ChartError> {
    objects
        .iter()
        .find(|o| o["kind"] == kind)
        .ok_or(ChartError::Missing(kind))
}

/// How one operator replica is started: the chart container's arguments and environment,
/// with `fieldRef`s resolved for a pod named `pod_name` in the Deployment's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// Arguments (`run --log-format json`).
    pub args: Vec<String>,
    /// Environment, in the chart's order.
    pub env: Vec<(String, String)>,
}

impl Launch {
    /// The value of an environment variable.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets (or replaces) a variable.
    pub fn set(&mut self, name: &str, value: &str) {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.to_owned(), value.to_owned()));
    }
}

/// The [`Launch`] of the operator Deployment's first container for the pod `pod_name`.
pub fn operator_launch(deployment: &Value, pod_name: &str) -> Result<Launch, ChartError> {
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    if !container.is_object() {
        return Err(ChartError::Missing("operator container"));
    }
    let args = container["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect();
    let namespace = deployment["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default");
    let mut env = Vec::new();
    for e in container["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap_or_default().to_owned();
        let problem = |p: &str| ChartError::Env {
            name: name.clone(),
            problem: p.to_owned(),
        };
        let value = if let Some(v) = e["value"].as_str() {
            v.to_owned()
        } else if let Some(path) = e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            match path {
                "metadata.namespace" => namespace.to_owned(),
                "metadata.name" => pod_name.to_owned(),
                other => return Err(problem(&format!("fieldRef {other} is not provided"))),
            }
        } else if e.get("valueFrom").is_some() {
            return Err(problem(
                "only literal values and metadata fieldRefs are provided",
            ));
        } else {
            String::new()
        };
        env.push((name, value));
    }
    Ok(Launch { args, env })
}
