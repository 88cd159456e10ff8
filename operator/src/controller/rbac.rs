//! The Kubernetes permissions the operator's code uses, each with its reason. The chart's RBAC
//! (`charts/feedroll/templates/_helpers.tpl`, `feedroll.rules`, and the Lease Role in
//! `rbac.yaml`) is the one place they are granted; `tests/it/rbac.rs` checks that it grants exactly
//! the permissions listed here, and the reconciler tests check that every request the operator makes
//! is listed here.

/// One permission: API group, resource (with subresource), verbs, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permission {
    /// API group (`""` for core).
    pub group: &'static str,
    /// Resource, e.g. `deployments` or `feedrollouts/status`.
    pub resource: &'static str,
    /// Verbs used.
    pub verbs: &'static [&'static str],
    /// Why the operator needs it.
    pub why: &'static str,
}

/// Everything the operator does against the API server.
pub const PERMISSIONS: &[Permission] = &[
    Permission {
        group: "feedroll.dev",
        resource: "feedrollouts",
        verbs: &["get", "list", "watch", "patch"],
        why: "watch FeedRollouts (list/watch feed the controller), read one, add and remove the clean-up finalizer (JSON patch of metadata.finalizers only)",
    },
    Permission {
        group: "feedroll.dev",
        resource: "feedrollouts/status",
        verbs: &["patch"],
        why: "all rollout progress lives in status, written with server-side apply",
    },
    Permission {
        group: "feedroll.dev",
        resource: "feedrollouts/finalizers",
        verbs: &["update"],
        why: "owner references with blockOwnerDeletion on the objects it creates (OwnerReferencesPermissionEnforcement)",
    },
    Permission {
        group: "apps",
        resource: "deployments",
        verbs: &["list", "watch", "create", "patch", "delete"],
        why: "the stable and canary workloads: watched (their rollout state comes from the watch cache, never a GET), applied (resize/promote; an apply that creates is also authorized as create), deleted on clean-up",
    },
    Permission {
        group: "",
        resource: "services",
        verbs: &["list", "watch", "create", "patch", "delete"],
        why: "one Service for all pods and one per track: applied (create on the first apply), watched as owned, deleted on clean-up",
    },
    Permission {
        group: "",
        resource: "configmaps",
        verbs: &["list", "watch", "create", "patch", "delete"],
        why: "the ranking profiles and in-app shares: applied (create on the first apply), watched as owned, deleted on clean-up; a CA bundle ConfigMap spec.analysis.prometheus names is read with list and a metadata.name field selector",
    },
    Permission {
        group: "",
        resource: "pods",
        verbs: &["list", "watch"],
        why: "canary pods are read, never changed: CrashLoopBackOff and restarts roll back at once",
    },
    Permission {
        group: "",
        resource: "secrets",
        verbs: &["get"],
        why: "the Secrets spec.analysis.prometheus names (bearer token, basic auth, header values, CA bundle), read by name in the rollout's namespace, never listed or watched (a CA ConfigMap is read with configmaps list and a name field selector)",
    },
    Permission {
        group: "gateway.networking.k8s.io",
        resource: "httproutes",
        verbs: &["list", "create", "patch", "delete"],
        why: "Gateway API traffic: the operator applies one HTTPRoute per FeedRollout with exact weights (create on the first apply); when the spec changes it lists the rollout's routes and deletes one the spec no longer asks for",
    },
    Permission {
        group: "events.k8s.io",
        resource: "events",
        verbs: &["create"],
        why: "a Kubernetes Event for every decision of the brain (each its own Event, never a patched series)",
    },
    Permission {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["get", "create", "patch"],
        why: "leader election (kube-lease-manager): find or create the Lease, acquire and renew it with server-side apply (only in the Lease's namespace)",
    },
];

/// The permission a request needs: `(group, resource[/subresource], verb)`, from its method,
/// path and query (`None` for non-resource paths such as `/version`).
pub fn required(method: &str, path: &str, query: &str) -> Option<(String, String, &'static str)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.first() {
        Some(&"api") if parts.len() >= 2 => (String::new(), &parts[2..]),
        Some(&"apis") if parts.len() >= 3 => (parts[1].to_owned(), &parts[3..]),
        _ => return None,
    };
    let rest = match rest {
        ["namespaces", _, rest @ ..] if !rest.is_empty() => rest,
        rest => rest,
    };
    let resource = rest.first()?;
    let named = rest.len() >= 2;
    let resource = match rest.get(2) {
        Some(sub) => format!("{resource}/{sub}"),
        None => (*resource).to_owned(),
    };
    let watch = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match (method, named) {
        ("GET", _) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    };
    Some((group, resource, verb))
}

/// Whether [`PERMISSIONS`] lists `(group, resource, verb)`.
pub fn listed(group: &str, resource: &str, verb: &str) -> bool {
    PERMISSIONS
        .iter()
        .any(|p| p.group == group && p.resource == resource && p.verbs.contains(&verb))
}
