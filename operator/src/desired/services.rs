//! Services: one for all pods of the rollout (replica-ratio traffic), one per track (Gateway API
//! backends, debugging, per-track checks).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodTemplateSpec, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub use super::ports::DEFAULT_PORT;
use super::ports::{HTTP_PORT, ensure_http_port};
use super::workloads::object_labels;
use super::{LABEL_ROLLOUT, LABEL_TRACK, Names, Track};

/// The three Services: `<rollout>` (all pods), `<rollout>-stable`, `<rollout>-canary`. Selectors
/// are the pod selector's `matchLabels` plus the rollout (and track) labels; ports are the named
/// ports of the pods' containers, which always include `http` unless the template names the
/// feed-server's port otherwise ([`super::ports`]).
pub fn services(
    names: &Names,
    owner: &OwnerReference,
    selector: &LabelSelector,
    template: &PodTemplateSpec,
) -> Vec<Service> {
    let ports = ports(template);
    let mut base = selector.match_labels.clone().unwrap_or_default();
    base.insert(LABEL_ROLLOUT.to_owned(), names.rollout.clone());
    let mut out = vec![service(
        names.main_service(),
        names,
        owner,
        None,
        base.clone(),
        ports.clone(),
    )];
    for track in [Track::Stable, Track::Canary] {
        let mut sel = base.clone();
        sel.insert(LABEL_TRACK.to_owned(), track.as_str().to_owned());
        out.push(service(
            names.service(track),
            names,
            owner,
            Some(track),
            sel,
            ports.clone(),
        ));
    }
    out
}

fn service(
    name: String,
    names: &Names,
    owner: &OwnerReference,
    track: Option<Track>,
    selector: BTreeMap<String, String>,
    ports: Vec<ServicePort>,
) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(names.namespace.clone()),
            labels: Some(object_labels(names, track)),
            owner_references: Some(vec![owner.clone()]),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// Named ports of all containers as the pods run them (first occurrence of a name wins); else
/// `http` → 8080 (a template without containers).
fn ports(template: &PodTemplateSpec) -> Vec<ServicePort> {
    let mut out: Vec<ServicePort> = Vec::new();
    let mut spec = template.spec.clone();
    if let Some(pod) = spec.as_mut() {
        ensure_http_port(pod);
    }
    let containers = spec.iter().flat_map(|s| s.containers.iter());
    for port in containers.flat_map(|c| c.ports.iter().flatten()) {
        let Some(name) = &port.name else { continue };
        if out.iter().any(|p| p.name.as_ref() == Some(name)) {
            continue;
        }
        out.push(ServicePort {
            name: Some(name.clone()),
            port: port.container_port,
            target_port: Some(IntOrString::String(name.clone())),
            protocol: Some(port.protocol.clone().unwrap_or_else(|| "TCP".to_owned())),
            ..ServicePort::default()
        });
    }
    if out.is_empty() {
        out.push(ServicePort {
            name: Some(HTTP_PORT.to_owned()),
            port: DEFAULT_PORT,
            target_port: Some(IntOrString::Int(DEFAULT_PORT)),
            protocol: Some("TCP".to_owned()),
            ..ServicePort::default()
        });
    }
    out
}
