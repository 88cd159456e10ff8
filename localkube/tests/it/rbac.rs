//! The RBAC decision, a pure function, over every dimension a rule or binding can restrict:
//! verbs, API groups, resources and subresources, resource names, Role vs ClusterRole,
//! RoleBinding vs ClusterRoleBinding scope, subject kinds, and `system:masters`.

use feedroll_localkube::rbac::{
    Attributes, Decision, Identity, Policy, Verb, authorize, forbidden_message,
};
use serde_json::{Value, json};

const ALL_VERBS: [Verb; 8] = [
    Verb::Get,
    Verb::List,
    Verb::Watch,
    Verb::Create,
    Verb::Update,
    Verb::Patch,
    Verb::Delete,
    Verb::DeleteCollection,
];

fn req(
    verb: Verb,
    group: &str,
    resource: &str,
    sub: Option<&str>,
    name: Option<&str>,
    ns: Option<&str>,
) -> Attributes {
    Attributes {
        verb,
        api_group: group.into(),
        resource: resource.into(),
        subresource: sub.map(Into::into),
        name: name.map(Into::into),
        namespace: ns.map(Into::into),
    }
}

fn policy(objects: &[(&str, Value)]) -> Policy {
    let mut p = Policy::default();
    for (res, v) in objects {
        p.add(res, v);
    }
    p
}

fn role(kind: &str, name: &str, ns: Option<&str>, rules: Value) -> Value {
    let mut m = json!({"name": name});
    if let Some(ns) = ns {
        m["namespace"] = json!(ns);
    }
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": m, "rules": rules})
}

fn binding(
    kind: &str,
    name: &str,
    ns: Option<&str>,
    role_kind: &str,
    role: &str,
    subjects: Value,
) -> Value {
    let mut m = json!({"name": name});
    if let Some(ns) = ns {
        m["namespace"] = json!(ns);
    }
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": m,
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
           "subjects": subjects})
}

fn sa() -> Identity {
    Identity::service_account("feedroll", "op")
}

fn sa_subject() -> Value {
    json!([{"kind": "ServiceAccount", "name": "op", "namespace": "feedroll"}])
}

#[test]
fn each_verb_is_allowed_only_when_listed() {
    for granted in ALL_VERBS {
        let p = policy(&[
            (
                "roles",
                role(
                    "Role",
                    "r",
                    Some("ns"),
                    json!([{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": [granted.as_str()]}]),
                ),
            ),
            (
                "rolebindings",
                binding("RoleBinding", "b", Some("ns"), "Role", "r", sa_subject()),
            ),
        ]);
        for asked in ALL_VERBS {
            let d = authorize(
                &sa(),
                &req(asked, "apps", "deployments", None, Some("x"), Some("ns")),
                &p,
            );
            assert_eq!(
                d.allowed(),
                asked == granted,
                "granted {granted}, asked {asked}"
            );
        }
    }
}

#[test]
fn groups_resources_and_subresources_must_match_or_be_wildcards() {
    let rules = |groups: Value, resources: Value| {
        policy(&[
            (
                "clusterroles",
                role(
                    "ClusterRole",
                    "c",
                    None,
                    json!([{"apiGroups": groups, "resources": resources, "verbs": ["*"]}]),
                ),
            ),
            (
                "clusterrolebindings",
                binding(
                    "ClusterRoleBinding",
                    "b",
                    None,
                    "ClusterRole",
                    "c",
                    sa_subject(),
                ),
            ),
        ])
    };
    let status = req(
        Verb::Patch,
        "feedroll.dev",
        "feedrollouts",
        Some("status"),
        Some("x"),
        Some("ns"),
    );
    let main = req(
        Verb::Patch,
        "feedroll.dev",
        "feedrollouts",
        None,
        Some("x"),
        Some("ns"),
    );
    let cases = [
        // (groups, resources, main allowed, status allowed)
        (
            json!(["feedroll.dev"]),
            json!(["feedrollouts"]),
            true,
            false,
        ),
        (
            json!(["feedroll.dev"]),
            json!(["feedrollouts/status"]),
            false,
            true,
        ),
        (
            json!(["feedroll.dev"]),
            json!(["feedrollouts", "feedrollouts/status"]),
            true,
            true,
        ),
        (json!(["feedroll.dev"]), json!(["*"]), true, true),
        (json!(["feedroll.dev"]), json!(["*/status"]), false, true),
        (json!(["*"]), json!(["feedrollouts"]), true, false),
        (
            json!(["apps"]),
            json!(["feedrollouts", "feedrollouts/status"]),
            false,
            false,
        ),
        (json!([""]), json!(["*"]), false, false),
        (
            json!(["feedroll.dev"]),
            json!(["deployments"]),
            false,
            false,
        ),
    ];
    for (groups, resources, want_main, want_status) in cases {
        let p = rules(groups.clone(), resources.clone());
        assert_eq!(
            authorize(&sa(), &main, &p).allowed(),
            want_main,
            "{groups} {resources} main"
        );
        assert_eq!(
            authorize(&sa(), &status, &p).allowed(),
            want_status,
            "{groups} {resources} status"
        );
    }
}

#[test]
fn resource_names_restrict_to_named_requests() {
    let p = policy(&[
        (
            "roles",
            role(
                "Role",
                "r",
                Some("ns"),
                json!([{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
            "resourceNames": ["feedroll-leader"], "verbs": ["get", "patch", "list", "watch", "create"]}]),
            ),
        ),
        (
            "rolebindings",
            binding("RoleBinding", "b", Some("ns"), "Role", "r", sa_subject()),
        ),
    ]);
    let lease = |verb, name| {
        req(
            verb,
            "coordination.k8s.io",
            "leases",
            None,
            name,
            Some("ns"),
        )
    };
    assert!(authorize(&sa(), &lease(Verb::Get, Some("feedroll-leader")), &p).allowed());
    assert!(authorize(&sa(), &lease(Verb::Patch, Some("feedroll-leader")), &p).allowed());
    assert!(!authorize(&sa(), &lease(Verb::Get, Some("other")), &p).allowed());
    // A list or watch with `fieldSelector=metadata.name=X` names X (the server reads it from
    // the selector): resourceNames apply. Without one, or for a create, no object is named.
    assert!(authorize(&sa(), &lease(Verb::List, Some("feedroll-leader")), &p).allowed());
    assert!(authorize(&sa(), &lease(Verb::Watch, Some("feedroll-leader")), &p).allowed());
    assert!(!authorize(&sa(), &lease(Verb::List, Some("other")), &p).allowed());
    assert!(!authorize(&sa(), &lease(Verb::List, None), &p).allowed());
    assert!(!authorize(&sa(), &lease(Verb::Create, None), &p).allowed());
}

#[test]
fn a_role_binding_grants_only_in_its_namespace_and_a_cluster_binding_everywhere() {
    let rules = json!([{"apiGroups": [""], "resources": ["configmaps", "namespaces"], "verbs": ["get", "list"]}]);
    let by_role_binding = policy(&[
        (
            "clusterroles",
            role("ClusterRole", "c", None, rules.clone()),
        ),
        (
            "rolebindings",
            binding(
                "RoleBinding",
                "b",
                Some("ns"),
                "ClusterRole",
                "c",
                sa_subject(),
            ),
        ),
    ]);
    let by_cluster_binding = policy(&[
        (
            "clusterroles",
            role("ClusterRole", "c", None, rules.clone()),
        ),
        (
            "clusterrolebindings",
            binding(
                "ClusterRoleBinding",
                "b",
                None,
                "ClusterRole",
                "c",
                sa_subject(),
            ),
        ),
    ]);
    let in_ns = req(Verb::Get, "", "configmaps", None, Some("x"), Some("ns"));
    let other_ns = req(Verb::Get, "", "configmaps", None, Some("x"), Some("other"));
    let all_ns = req(Verb::List, "", "configmaps", None, None, None);
    let cluster_scoped = req(Verb::Get, "", "namespaces", None, Some("ns"), None);
    for (r, want_rb, want_crb) in [
        (&in_ns, true, true),
        (&other_ns, false, true),
        (&all_ns, false, true),
        (&cluster_scoped, false, true),
    ] {
        assert_eq!(
            authorize(&sa(), r, &by_role_binding).allowed(),
            want_rb,
            "{r:?} via RoleBinding"
        );
        assert_eq!(
            authorize(&sa(), r, &by_cluster_binding).allowed(),
            want_crb,
            "{r:?} via ClusterRoleBinding"
        );
    }
    // A Role of another namespace, or a missing role, grants nothing.
    let foreign = policy(&[
        ("roles", role("Role", "r", Some("elsewhere"), rules.clone())),
        (
            "rolebindings",
            binding("RoleBinding", "b", Some("ns"), "Role", "r", sa_subject()),
        ),
    ]);
    assert!(!authorize(&sa(), &in_ns, &foreign).allowed());
    let dangling = policy(&[(
        "rolebindings",
        binding(
            "RoleBinding",
            "b",
            Some("ns"),
            "Role",
            "missing",
            sa_subject(),
        ),
    )]);
    assert!(!authorize(&sa(), &in_ns, &dangling).allowed());
    // A ClusterRoleBinding to a Role is not valid and grants nothing.
    let wrong = policy(&[
        ("roles", role("Role", "r", Some("ns"), rules)),
        (
            "clusterrolebindings",
            binding("ClusterRoleBinding", "b", None, "Role", "r", sa_subject()),
        ),
    ]);
    assert!(!authorize(&sa(), &in_ns, &wrong).allowed());
}

#[test]
fn subjects_match_users_groups_and_service_accounts_exactly() {
    let rules = json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]);
    let get = req(Verb::Get, "", "pods", None, Some("p"), Some("ns"));
    let cases: [(Value, Identity, bool); 8] = [
        (
            json!([{"kind": "User", "name": "alice"}]),
            Identity::user("alice"),
            true,
        ),
        (
            json!([{"kind": "User", "name": "alice"}]),
            Identity::user("bob"),
            false,
        ),
        (
            json!([{"kind": "Group", "name": "system:serviceaccounts:feedroll"}]),
            sa(),
            true,
        ),
        (
            json!([{"kind": "Group", "name": "system:serviceaccounts:other"}]),
            sa(),
            false,
        ),
        (
            json!([{"kind": "Group", "name": "system:authenticated"}]),
            Identity::user("anyone"),
            true,
        ),
        (sa_subject(), sa(), true),
        (
            json!([{"kind": "ServiceAccount", "name": "op", "namespace": "other"}]),
            sa(),
            false,
        ),
        // A ServiceAccount subject without namespace: the binding's namespace ("ns" here).
        (
            json!([{"kind": "ServiceAccount", "name": "op"}]),
            Identity::service_account("ns", "op"),
            true,
        ),
    ];
    for (subjects, who, want) in cases {
        let p = policy(&[
            ("roles", role("Role", "r", Some("ns"), rules.clone())),
            (
                "rolebindings",
                binding(
                    "RoleBinding",
                    "b",
                    Some("ns"),
                    "Role",
                    "r",
                    subjects.clone(),
                ),
            ),
        ]);
        assert_eq!(
            authorize(&who, &get, &p).allowed(),
            want,
            "{subjects} as {}",
            who.user
        );
    }
}

#[test]
fn masters_may_do_anything_and_nobody_else_without_a_rule() {
    let anything = req(
        Verb::DeleteCollection,
        "apps",
        "deployments",
        None,
        None,
        None,
    );
    assert_eq!(
        authorize(&Identity::admin(), &anything, &Policy::default()),
        Decision::Allowed("system:masters".into())
    );
    assert_eq!(
        authorize(&sa(), &anything, &Policy::default()),
        Decision::Denied
    );
    let p = policy(&[
        (
            "roles",
            role(
                "Role",
                "r",
                Some("ns"),
                json!([{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}]),
            ),
        ),
        (
            "rolebindings",
            binding("RoleBinding", "b", Some("ns"), "Role", "r", sa_subject()),
        ),
    ]);
    let get = req(
        Verb::Get,
        "apps",
        "deployments",
        None,
        Some("x"),
        Some("ns"),
    );
    assert_eq!(
        authorize(&sa(), &get, &p),
        Decision::Allowed("RoleBinding/ns/b".into())
    );
}

#[test]
fn the_forbidden_message_has_the_api_servers_shape() {
    let who = sa();
    let named = req(
        Verb::Patch,
        "feedroll.dev",
        "feedrollouts",
        Some("status"),
        Some("web"),
        Some("feed"),
    );
    assert_eq!(
        forbidden_message(&who, &named, "feedrollouts.feedroll.dev"),
        "feedrollouts.feedroll.dev \"web\" is forbidden: User \"system:serviceaccount:feedroll:op\" cannot patch resource \"feedrollouts/status\" in API group \"feedroll.dev\" in the namespace \"feed\""
    );
    let list = req(Verb::List, "", "pods", None, None, None);
    assert_eq!(
        forbidden_message(&who, &list, "pods"),
        "pods is forbidden: User \"system:serviceaccount:feedroll:op\" cannot list resource \"pods\" in API group \"\" at the cluster scope"
    );
}
