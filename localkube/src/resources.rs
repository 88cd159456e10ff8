//! The resource types the server knows: a fixed table of built-in kinds and the kinds that
//! stored CustomResourceDefinitions register. Discovery, scope (namespaced or cluster), kinds in
//! messages, table columns and schema validation all read from here.

use std::sync::Arc;

use serde_json::Value;

use crate::printers::Computed;

/// One column of `kubectl get` (a CRD's `additionalPrinterColumns`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrinterColumn {
    /// Column header.
    pub name: String,
    /// `string`, `integer`, `date`…
    pub type_: String,
    /// Simple JSONPath such as `.status.phase`.
    pub json_path: String,
    /// Columns with a priority above 0 show only with `-o wide`.
    pub priority: i64,
    /// Computed from the whole object instead of `json_path` (built-in kinds' printers).
    pub computed: Option<Computed>,
}

/// A served resource type.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceInfo {
    /// API group (`""` for core).
    pub group: String,
    /// Served version.
    pub version: String,
    /// Plural name used in URLs.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// `kubectl` short names.
    pub short_names: Vec<String>,
    /// Subresources served (`status`, `scale`).
    pub subresources: Vec<String>,
    /// Extra `kubectl get` columns.
    pub printer_columns: Vec<PrinterColumn>,
    /// The OpenAPI v3 schema objects are validated against (custom resources only; shared,
    /// as every request resolves its kind).
    pub schema: Option<Arc<Value>>,
    /// Where the `scale` subresource reads and writes replicas.
    pub scale: Option<ScalePaths>,
}

/// The fields behind a `scale` subresource (a CRD's `subresources.scale`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalePaths {
    /// `.spec.replicas`
    pub spec_replicas: String,
    /// `.status.replicas`
    pub status_replicas: String,
    /// `.status.selector` (a label selector string), when set.
    pub label_selector: Option<String>,
}

impl ResourceInfo {
    /// The fields a field selector may name besides `metadata.name` and
    /// `metadata.namespace` (the kind's field label conversions on the API server; custom
    /// resources have none here: CRD `selectableFields` is not modelled).
    pub fn selectable_fields(&self) -> &'static [&'static str] {
        match (self.group.as_str(), self.plural.as_str()) {
            ("", "pods") => &[
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            ],
            ("", "events") | ("events.k8s.io", "events") => &[
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ],
            ("", "namespaces") => &["status.phase"],
            ("", "secrets") => &["type"],
            ("apps", "replicasets") => &["status.replicas"],
            _ => &[],
        }
    }

    /// `apps/v1` or `v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, `pods`: how messages name the resource.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Deployment.apps`, `Pod`: how validation messages name the kind.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }
}

/// (group, version, plural, kind, namespaced, short names, subresources)
type Builtin = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    &'static [&'static str],
);

/// The built-in kinds: what the operator and the chart use, and what `kubectl` looks for.
const BUILTINS: &[Builtin] = &[
    (
        "",
        "v1",
        "namespaces",
        "Namespace",
        false,
        &["ns"],
        &["status"],
    ),
    ("", "v1", "configmaps", "ConfigMap", true, &["cm"], &[]),
    ("", "v1", "secrets", "Secret", true, &[], &[]),
    ("", "v1", "services", "Service", true, &["svc"], &["status"]),
    ("", "v1", "endpoints", "Endpoints", true, &["ep"], &[]),
    (
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "EndpointSlice",
        true,
        &[],
        &[],
    ),
    ("", "v1", "pods", "Pod", true, &["po"], &["status", "log"]),
    (
        "",
        "v1",
        "serviceaccounts",
        "ServiceAccount",
        true,
        &["sa"],
        &[],
    ),
    ("", "v1", "events", "Event", true, &["ev"], &[]),
    (
        "apps",
        "v1",
        "deployments",
        "Deployment",
        true,
        &["deploy"],
        &["status", "scale"],
    ),
    (
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        true,
        &["rs"],
        &["status", "scale"],
    ),
    (
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        true,
        &["hpa"],
        &["status"],
    ),
    (
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        true,
        &["pdb"],
        &["status"],
    ),
    (
        "coordination.k8s.io",
        "v1",
        "leases",
        "Lease",
        true,
        &[],
        &[],
    ),
    ("events.k8s.io", "v1", "events", "Event", true, &["ev"], &[]),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "Role",
        true,
        &[],
        &[],
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "RoleBinding",
        true,
        &[],
        &[],
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "ClusterRole",
        false,
        &[],
        &[],
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
        &[],
        &[],
    ),
    (
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
        &["status"],
    ),
];

/// The prefix and plural under which CRD objects are stored.
pub const CRD_PREFIX: &str = "/apis/apiextensions.k8s.io/v1";
/// Plural of CustomResourceDefinition.
pub const CRD_PLURAL: &str = "customresourcedefinitions";

/// `kubectl get` columns of the built-in kinds that have more than Name and Age, as the real
/// API server prints them: a Service's type, ClusterIP and (first) port, an EndpointSlice's
/// address type, (first) port and (first) address, a Pod's ready containers, status and
/// restarts, a Deployment's ready, up-to-date and available replicas.
fn builtin_columns(plural: &str) -> Vec<PrinterColumn> {
    let col = |name: &str, type_: &str, path: &str| PrinterColumn {
        name: name.into(),
        type_: type_.into(),
        json_path: path.into(),
        priority: 0,
        computed: None,
    };
    let computed = |name: &str, type_: &str, c: Computed| PrinterColumn {
        computed: Some(c),
        ..col(name, type_, "")
    };
    let age = col("Age", "date", ".metadata.creationTimestamp");
    match plural {
        "pods" => vec![
            computed("Ready", "string", Computed::PodReady),
            computed("Status", "string", Computed::PodStatus),
            computed("Restarts", "integer", Computed::PodRestarts),
            age,
        ],
        "deployments" => vec![
            computed("Ready", "string", Computed::DeploymentReady),
            computed("Up-to-date", "integer", Computed::DeploymentUpdated),
            computed("Available", "integer", Computed::DeploymentAvailable),
            age,
        ],
        "services" => vec![
            col("Type", "string", ".spec.type"),
            col("Cluster-IP", "string", ".spec.clusterIP"),
            col("Port", "integer", ".spec.ports[0].port"),
            age,
        ],
        "endpointslices" => vec![
            col("AddressType", "string", ".addressType"),
            col("Port", "integer", ".ports[0].port"),
            col("Endpoint", "string", ".endpoints[0].addresses[0]"),
            age,
        ],
        _ => Vec::new(),
    }
}

/// The built-in resource types.
pub fn builtins() -> Vec<ResourceInfo> {
    BUILTINS
        .iter()
        .map(
            |(group, version, plural, kind, namespaced, short, sub)| ResourceInfo {
                group: (*group).to_owned(),
                version: (*version).to_owned(),
                plural: (*plural).to_owned(),
                singular: kind.to_lowercase(),
                kind: (*kind).to_owned(),
                namespaced: *namespaced,
                short_names: short.iter().map(|s| (*s).to_owned()).collect(),
                subresources: sub.iter().map(|s| (*s).to_owned()).collect(),
                printer_columns: builtin_columns(plural),
                schema: None,
                scale: sub.contains(&"scale").then(|| ScalePaths {
                    spec_replicas: ".spec.replicas".into(),
                    status_replicas: ".status.replicas".into(),
                    label_selector: None,
                }),
            },
        )
        .collect()
}

/// The served versions a CustomResourceDefinition object registers (nothing for a malformed
/// one: the API server would have rejected it).
pub fn from_crd(crd: &Value) -> Vec<ResourceInfo> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let (Some(group), Some(plural), Some(kind)) = (
        spec["group"].as_str(),
        names["plural"].as_str(),
        names["kind"].as_str(),
    ) else {
        return Vec::new();
    };
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["served"].as_bool().unwrap_or(true))
        .filter_map(|v| {
            let version = v["name"].as_str()?;
            let subresources = ["status", "scale"]
                .into_iter()
                .filter(|s| v["subresources"].get(*s).is_some())
                .map(str::to_owned)
                .collect();
            let printer_columns = v["additionalPrinterColumns"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| {
                    Some(PrinterColumn {
                        name: c["name"].as_str()?.to_owned(),
                        type_: c["type"].as_str().unwrap_or("string").to_owned(),
                        json_path: c["jsonPath"].as_str()?.to_owned(),
                        priority: c["priority"].as_i64().unwrap_or(0),
                        computed: None,
                    })
                })
                .collect();
            Some(ResourceInfo {
                group: group.to_owned(),
                version: version.to_owned(),
                plural: plural.to_owned(),
                singular: names["singular"]
                    .as_str()
                    .map_or_else(|| kind.to_lowercase(), str::to_owned),
                kind: kind.to_owned(),
                namespaced: spec["scope"].as_str() != Some("Cluster"),
                short_names: strings(&names["shortNames"]),
                subresources,
                printer_columns,
                schema: v["schema"].get("openAPIV3Schema").cloned().map(Arc::new),
                scale: v["subresources"].get("scale").map(|s| ScalePaths {
                    spec_replicas: s["specReplicasPath"]
                        .as_str()
                        .unwrap_or(".spec.replicas")
                        .into(),
                    status_replicas: s["statusReplicasPath"]
                        .as_str()
                        .unwrap_or(".status.replicas")
                        .into(),
                    label_selector: s["labelSelectorPath"].as_str().map(str::to_owned),
                }),
            })
        })
        .collect()
}

/// The status a newly stored CRD gets: its names accepted and the kind established at once.
pub fn established_status(crd: &Value) -> Value {
    serde_json::json!({
        "acceptedNames": crd["spec"]["names"],
        "storedVersions": crd["spec"]["versions"].as_array().into_iter().flatten()
            .filter(|v| v["storage"].as_bool() == Some(true))
            .filter_map(|v| v["name"].as_str()).collect::<Vec<_>>(),
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": crate::clock::now()},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": crate::clock::now()},
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_feedrollout_crd_registers_its_kind_with_columns_and_schema() {
        let crd = serde_json::to_value(feedroll_crds::crd().unwrap()).unwrap();
        let infos = from_crd(&crd);
        assert_eq!(infos.len(), 1);
        let fr = &infos[0];
        assert_eq!(
            (fr.group.as_str(), fr.plural.as_str(), fr.kind.as_str()),
            ("feedroll.dev", "feedrollouts", "FeedRollout")
        );
        assert!(fr.namespaced);
        assert!(fr.subresources.contains(&"status".to_owned()));
        assert!(fr.printer_columns.iter().any(|c| c.name == "Phase"));
        assert!(fr.schema.is_some());
    }

    #[test]
    fn a_crd_without_names_registers_nothing() {
        assert!(from_crd(&serde_json::json!({"spec": {"group": "x.dev"}})).is_empty());
    }
}
