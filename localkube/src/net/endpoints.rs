//! Which pods serve a Service, as the EndpointSlice controller and kube-proxy decide it — pure
//! functions over the stored objects.
//!
//! - [`endpoint_slices`]: the EndpointSlices of a Service with a selector: every pod of the
//!   namespace whose labels match it and that has a `status.podIP`, `ready` when its `Ready`
//!   condition is `True` and it is not being deleted; one slice per distinct set of resolved
//!   ports (a named `targetPort` may resolve to different numbers in different pods), like the
//!   real controller.
//! - [`backends`]: what kube-proxy balances over: per Service port, the ready addresses of the
//!   Service's slices (the controller's, or those a user wrote for a Service without selector).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use serde_json::{Value, json};

/// Label naming the Service an EndpointSlice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label naming who manages an EndpointSlice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`] on the slices the Services controller writes (the real
/// controller's, so tools that look for it find them).
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

/// Why a stored Service cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// The object has no name or namespace.
    #[error("the Service has no name or namespace")]
    Unnamed,
    /// A port is missing, out of range or not TCP.
    #[error("Service {service}: port #{index}: {problem}")]
    BadPort {
        /// `namespace/name`.
        service: String,
        /// Index in `spec.ports`.
        index: usize,
        /// What is wrong.
        problem: String,
    },
}

/// A Service's `targetPort`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPort {
    /// A container port number.
    Number(u16),
    /// The name of a container port of the pod.
    Name(String),
}

/// One port of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// `name` (may be empty for a Service with one port).
    pub name: String,
    /// The port the ClusterIP listens on.
    pub port: u16,
    /// Where connections go on each endpoint.
    pub target: TargetPort,
}

/// What the network needs to know of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceView {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID (for the slices' owner reference).
    pub uid: String,
    /// `spec.clusterIP`, when set to an IPv4 address.
    pub cluster_ip: Option<Ipv4Addr>,
    /// `spec.selector` (`None`: a Service without selector, whose slices a user writes).
    pub selector: Option<BTreeMap<String, String>>,
    /// TCP ports.
    pub ports: Vec<ServicePort>,
}

fn port_number(v: &Value) -> Option<u16> {
    v.as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| *n != 0)
}

impl ServiceView {
    /// Reads a stored Service; a port that is not a valid TCP port is an error (the real API
    /// server refuses such a Service; this one stores it, the network will not serve it).
    pub fn parse(svc: &Value) -> Result<Self, ServiceError> {
        let meta = &svc["metadata"];
        let (Some(namespace), Some(name)) = (meta["namespace"].as_str(), meta["name"].as_str())
        else {
            return Err(ServiceError::Unnamed);
        };
        let spec = &svc["spec"];
        let bad = |index: usize, problem: String| ServiceError::BadPort {
            service: format!("{namespace}/{name}"),
            index,
            problem,
        };
        let mut ports = Vec::new();
        for (index, p) in spec["ports"].as_array().into_iter().flatten().enumerate() {
            if p["protocol"].as_str().is_some_and(|proto| proto != "TCP") {
                return Err(bad(
                    index,
                    format!("protocol {} is not served (TCP only)", p["protocol"]),
                ));
            }
            let port = port_number(&p["port"])
                .ok_or_else(|| bad(index, format!("port {} is not in 1-65535", p["port"])))?;
            let target =
                match &p["targetPort"] {
                    Value::Null => TargetPort::Number(port),
                    Value::String(s) => match s.parse::<u16>() {
                        Ok(n) if n != 0 => TargetPort::Number(n),
                        _ if !s.is_empty() => TargetPort::Name(s.clone()),
                        _ => return Err(bad(index, "targetPort is empty".into())),
                    },
                    other => TargetPort::Number(port_number(other).ok_or_else(|| {
                        bad(index, format!("targetPort {other} is not in 1-65535"))
                    })?),
                };
            ports.push(ServicePort {
                name: p["name"].as_str().unwrap_or_default().to_owned(),
                port,
                target,
            });
        }
        let selector = spec["selector"].as_object().map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        });
        Ok(Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            uid: meta["uid"].as_str().unwrap_or_default().to_owned(),
            cluster_ip: spec["clusterIP"].as_str().and_then(|s| s.parse().ok()),
            selector,
            ports,
        })
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether `pod` is selected: same namespace, every selector label equal. An empty
    /// selector selects nothing here (the API server defaults a missing one to "no
    /// selector", and kube-proxy then serves the user's slices).
    pub fn selects(&self, pod: &Value) -> bool {
        let Some(selector) = self.selector.as_ref().filter(|s| !s.is_empty()) else {
            return false;
        };
        let labels = &pod["metadata"]["labels"];
        pod["metadata"]["namespace"].as_str() == Some(self.namespace.as_str())
            && selector
                .iter()
                .all(|(k, v)| labels[k].as_str() == Some(v.as_str()))
    }
}

/// The pod's address, when it has one.
pub fn pod_ip(pod: &Value) -> Option<Ipv4Addr> {
    pod["status"]["podIP"].as_str().and_then(|s| s.parse().ok())
}

/// Whether the pod receives traffic: condition `Ready` is `True`, it is not being deleted and
/// has not ended (`Succeeded`/`Failed`).
pub fn pod_ready(pod: &Value) -> bool {
    let ready = pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    let ended = matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    ready && !ended && pod["metadata"].get("deletionTimestamp").is_none()
}

/// The number `target` resolves to in `pod`: a number as is; a name through the pod's
/// containers' ports (the first container port of that name); `None` when no port has it.
pub fn resolve_target_port(target: &TargetPort, pod: &Value) -> Option<u16> {
    match target {
        TargetPort::Number(n) => Some(*n),
        TargetPort::Name(name) => pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["ports"].as_array().into_iter().flatten())
            .find(|p| p["name"].as_str() == Some(name.as_str()))
            .and_then(|p| port_number(&p["containerPort"])),
    }
}

fn endpoint(pod: &Value, ip: Ipv4Addr) -> Value {
    let ready = pod_ready(pod);
    let terminating = pod["metadata"].get("deletionTimestamp").is_some();
    json!({
        "addresses": [ip.to_string()],
        "conditions": {"ready": ready, "serving": ready, "terminating": terminating},
        "targetRef": {"kind": "Pod", "namespace": pod["metadata"]["namespace"],
                      "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]},
    })
}

/// The EndpointSlices the controller keeps for `svc` (none for a Service without selector),
/// named `<service>-<n>` in the order of their first pod by name.
pub fn endpoint_slices(svc: &ServiceView, pods: &[Value]) -> Vec<Value> {
    if svc.selector.is_none() {
        return Vec::new();
    }
    let mut selected: Vec<&Value> = pods
        .iter()
        .filter(|p| svc.selects(p) && pod_ip(p).is_some())
        .collect();
    selected.sort_by(|a, b| {
        a["metadata"]["name"]
            .as_str()
            .cmp(&b["metadata"]["name"].as_str())
    });
    // Endpoints grouped by the numbers the Service's ports resolve to in their pod; a pod
    // where a port does not resolve lacks that port in its group.
    let mut groups: Vec<(Vec<Option<u16>>, Vec<Value>)> = Vec::new();
    for pod in selected {
        let Some(ip) = pod_ip(pod) else { continue };
        let resolved: Vec<Option<u16>> = svc
            .ports
            .iter()
            .map(|p| resolve_target_port(&p.target, pod))
            .collect();
        if resolved.iter().all(Option::is_none) && !svc.ports.is_empty() {
            continue;
        }
        match groups.iter_mut().find(|(r, _)| *r == resolved) {
            Some((_, eps)) => eps.push(endpoint(pod, ip)),
            None => groups.push((resolved, vec![endpoint(pod, ip)])),
        }
    }
    if groups.is_empty() {
        groups.push((Vec::new(), Vec::new()));
    }
    groups
        .into_iter()
        .enumerate()
        .map(|(i, (resolved, eps))| {
            let ports: Vec<Value> = svc
                .ports
                .iter()
                .zip(resolved.iter())
                .filter_map(|(p, n)| {
                    Some(json!({"name": p.name, "port": (*n)?, "protocol": "TCP"}))
                })
                .collect();
            json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": format!("{}-{}", svc.name, i + 1),
                    "namespace": svc.namespace,
                    "labels": {SERVICE_NAME_LABEL: svc.name, MANAGED_BY_LABEL: MANAGED_BY},
                    "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": svc.name,
                        "uid": svc.uid, "controller": true, "blockOwnerDeletion": true}],
                },
                "addressType": "IPv4",
                "endpoints": eps,
                "ports": ports,
            })
        })
        .collect()
}

/// Whether `slice` belongs to `svc` (same namespace, its service-name label).
pub fn slice_of(svc: &ServiceView, slice: &Value) -> bool {
    slice["metadata"]["namespace"].as_str() == Some(svc.namespace.as_str())
        && slice["metadata"]["labels"][SERVICE_NAME_LABEL].as_str() == Some(svc.name.as_str())
}

/// Per Service port, the addresses a connection to it may go to: the ready endpoints
/// (`conditions.ready` true or absent, as the API documents) of the Service's `slices`, on
/// the slice's port of the same name. Ports with no ready endpoint map to an empty list.
pub fn backends(svc: &ServiceView, slices: &[Value]) -> BTreeMap<u16, Vec<SocketAddr>> {
    let mut out: BTreeMap<u16, Vec<SocketAddr>> =
        svc.ports.iter().map(|p| (p.port, Vec::new())).collect();
    for slice in slices.iter().filter(|s| slice_of(svc, s)) {
        if slice["addressType"].as_str().is_some_and(|t| t != "IPv4") {
            continue;
        }
        for port in &svc.ports {
            let Some(number) = slice["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["name"].as_str().unwrap_or_default() == port.name)
                .and_then(|p| port_number(&p["port"]))
            else {
                continue;
            };
            for ep in slice["endpoints"].as_array().into_iter().flatten() {
                if ep["conditions"]["ready"] == false {
                    continue;
                }
                for ip in ep["addresses"].as_array().into_iter().flatten() {
                    if let Some(ip) = ip.as_str().and_then(|s| s.parse::<Ipv4Addr>().ok()) {
                        let addr = SocketAddr::V4(SocketAddrV4::new(ip, number));
                        let list = out.entry(port.port).or_default();
                        if !list.contains(&addr) {
                            list.push(addr);
                        }
                    }
                }
            }
        }
    }
    out
}
