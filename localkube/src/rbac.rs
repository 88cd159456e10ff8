//! Authorization: the RBAC decision as the API server makes it, a pure function of the
//! identity, the request attributes and the stored Role/ClusterRole/RoleBinding/
//! ClusterRoleBinding objects.
//!
//! Members of `system:masters` may do anything. Everyone authenticated may read discovery
//! (`/api`, `/apis`, `/version`, `/openapi`), like the built-in `system:discovery` role. Otherwise
//! a request is allowed when a rule bound to the identity matches its verb, API group, resource
//! (`res`, `res/sub`, `*`, `*/sub`), name (`resourceNames`) and scope: a RoleBinding grants its
//! rules in its own namespace only, a ClusterRoleBinding everywhere and on cluster-scoped
//! resources. Aggregated ClusterRoles and non-resource URLs other than discovery are not modelled.

use std::fmt;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use serde_json::Value;

/// The group whose members bypass authorization.
pub const MASTERS: &str = "system:masters";

/// Who makes a request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    /// User name (`admin`, `system:serviceaccount:NS:NAME`).
    pub user: String,
    /// Groups (`system:authenticated` always among them).
    pub groups: Vec<String>,
}

impl Identity {
    /// The cluster administrator (`system:masters`).
    pub fn admin() -> Self {
        Self {
            user: "admin".into(),
            groups: vec![MASTERS.into(), "system:authenticated".into()],
        }
    }

    /// A plain user with no groups but `system:authenticated`.
    pub fn user(name: &str) -> Self {
        Self {
            user: name.into(),
            groups: vec!["system:authenticated".into()],
        }
    }

    /// A ServiceAccount, as its token authenticates it.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Self {
            user: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
        }
    }
}

/// The Kubernetes API verbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    /// Read one object.
    Get,
    /// Read a collection.
    List,
    /// Stream changes.
    Watch,
    /// POST.
    Create,
    /// PUT.
    Update,
    /// PATCH (apply included).
    Patch,
    /// DELETE one object.
    Delete,
    /// DELETE a collection.
    DeleteCollection,
}

impl Verb {
    /// The lowercase name RBAC rules use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::List => "list",
            Self::Watch => "watch",
            Self::Create => "create",
            Self::Update => "update",
            Self::Patch => "patch",
            Self::Delete => "delete",
            Self::DeleteCollection => "deletecollection",
        }
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a resource request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributes {
    /// The verb.
    pub verb: Verb,
    /// API group (`""` for core).
    pub api_group: String,
    /// Plural resource.
    pub resource: String,
    /// Subresource (`status`).
    pub subresource: Option<String>,
    /// Object name, when the request names one.
    pub name: Option<String>,
    /// Namespace, for namespaced requests.
    pub namespace: Option<String>,
}

impl Attributes {
    /// `feedrollouts/status` or `feedrollouts`.
    pub fn resource_path(&self) -> String {
        match &self.subresource {
            Some(s) => format!("{}/{s}", self.resource),
            None => self.resource.clone(),
        }
    }
}

/// The RBAC objects in force.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// Roles.
    pub roles: Vec<Role>,
    /// ClusterRoles.
    pub cluster_roles: Vec<ClusterRole>,
    /// RoleBindings.
    pub role_bindings: Vec<RoleBinding>,
    /// ClusterRoleBindings.
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
}

impl Policy {
    /// Adds a stored object of one of the four RBAC kinds (by plural); other or malformed
    /// objects are ignored (the API server would not have stored them).
    pub fn add(&mut self, resource: &str, obj: &Value) {
        let obj = obj.clone();
        match resource {
            "roles" => self.roles.extend(serde_json::from_value(obj).ok()),
            "clusterroles" => self.cluster_roles.extend(serde_json::from_value(obj).ok()),
            "rolebindings" => self.role_bindings.extend(serde_json::from_value(obj).ok()),
            "clusterrolebindings" => self
                .cluster_role_bindings
                .extend(serde_json::from_value(obj).ok()),
            _ => {}
        }
    }

    fn cluster_role(&self, name: &str) -> Option<&[PolicyRule]> {
        self.cluster_roles
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
            .and_then(|r| r.rules.as_deref())
    }

    fn role(&self, namespace: &str, name: &str) -> Option<&[PolicyRule]> {
        self.roles
            .iter()
            .find(|r| {
                r.metadata.name.as_deref() == Some(name)
                    && r.metadata.namespace.as_deref() == Some(namespace)
            })
            .and_then(|r| r.rules.as_deref())
    }
}

/// The outcome, with what decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Allowed, by the named binding (or `system:masters`).
    Allowed(String),
    /// No rule allows it.
    Denied,
}

impl Decision {
    /// Whether the request may proceed.
    pub fn allowed(&self) -> bool {
        matches!(self, Self::Allowed(_))
    }
}

fn contains_or_star(list: &[String], wanted: &str) -> bool {
    list.iter().any(|v| v == "*" || v == wanted)
}

/// Whether one rule allows the request.
pub fn rule_allows(rule: &PolicyRule, req: &Attributes) -> bool {
    let groups = rule.api_groups.as_deref().unwrap_or_default();
    let resources = rule.resources.as_deref().unwrap_or_default();
    let names = rule.resource_names.as_deref().unwrap_or_default();
    let resource_ok = resources.iter().any(|r| {
        r == "*"
            || *r == req.resource_path()
            || req
                .subresource
                .as_ref()
                .is_some_and(|s| *r == format!("*/{s}"))
    });
    let name_ok = names.is_empty()
        || req
            .name
            .as_ref()
            .is_some_and(|n| names.iter().any(|x| x == n));
    contains_or_star(&rule.verbs, req.verb.as_str())
        && contains_or_star(groups, &req.api_group)
        && resource_ok
        && name_ok
}

/// The kinds of subject a binding names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubjectKind {
    /// A user name.
    User,
    /// A group.
    Group,
    /// A ServiceAccount (its namespace, or the binding's).
    ServiceAccount,
}

impl SubjectKind {
    /// The kind a subject's `kind` field names (`None`: not one the API server accepts).
    pub fn parse(kind: &str) -> Option<Self> {
        match kind {
            "User" => Some(Self::User),
            "Group" => Some(Self::Group),
            "ServiceAccount" => Some(Self::ServiceAccount),
            _ => None,
        }
    }
}

/// The kinds of role a binding's `roleRef` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleKind {
    /// A Role, in the binding's namespace.
    Role,
    /// A ClusterRole.
    ClusterRole,
}

impl RoleKind {
    /// The kind a `roleRef.kind` names (`None`: not one the API server accepts).
    pub fn parse(kind: &str) -> Option<Self> {
        match kind {
            "Role" => Some(Self::Role),
            "ClusterRole" => Some(Self::ClusterRole),
            _ => None,
        }
    }
}

fn subject_matches(kind: &str, name: &str, namespace: Option<&str>, who: &Identity) -> bool {
    match SubjectKind::parse(kind) {
        Some(SubjectKind::User) => who.user == name,
        Some(SubjectKind::Group) => who.groups.iter().any(|g| g == name),
        Some(SubjectKind::ServiceAccount) => {
            namespace.is_some_and(|ns| who.user == format!("system:serviceaccount:{ns}:{name}"))
        }
        None => false,
    }
}

/// The RBAC decision for `who` making `req`.
pub fn authorize(who: &Identity, req: &Attributes, policy: &Policy) -> Decision {
    if who.groups.iter().any(|g| g == MASTERS) {
        return Decision::Allowed(MASTERS.into());
    }
    let allows = |rules: Option<&[PolicyRule]>| {
        rules
            .unwrap_or_default()
            .iter()
            .any(|r| rule_allows(r, req))
    };
    for b in &policy.cluster_role_bindings {
        let bound = b.subjects.iter().flatten().any(|s| {
            let ns = s.namespace.as_deref();
            subject_matches(&s.kind, &s.name, ns, who)
        });
        if bound
            && RoleKind::parse(&b.role_ref.kind) == Some(RoleKind::ClusterRole)
            && allows(policy.cluster_role(&b.role_ref.name))
        {
            let name = b.metadata.name.clone().unwrap_or_default();
            return Decision::Allowed(format!("ClusterRoleBinding/{name}"));
        }
    }
    let Some(namespace) = req.namespace.as_deref() else {
        return Decision::Denied;
    };
    for b in &policy.role_bindings {
        let bns = b.metadata.namespace.as_deref().unwrap_or_default();
        if bns != namespace {
            continue;
        }
        let bound = b.subjects.iter().flatten().any(|s| {
            // A ServiceAccount subject without a namespace means the binding's namespace.
            let ns = s.namespace.as_deref().or(Some(bns));
            subject_matches(&s.kind, &s.name, ns, who)
        });
        let rules = match RoleKind::parse(&b.role_ref.kind) {
            Some(RoleKind::Role) => policy.role(bns, &b.role_ref.name),
            Some(RoleKind::ClusterRole) => policy.cluster_role(&b.role_ref.name),
            None => None,
        };
        if bound && allows(rules) {
            let name = b.metadata.name.clone().unwrap_or_default();
            return Decision::Allowed(format!("RoleBinding/{bns}/{name}"));
        }
    }
    Decision::Denied
}

/// The message of the 403, worded as the API server words it.
pub fn forbidden_message(who: &Identity, req: &Attributes, qualified_resource: &str) -> String {
    let object = match &req.name {
        Some(n) => format!("{qualified_resource} \"{n}\""),
        None => qualified_resource.to_owned(),
    };
    let scope = match &req.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_owned(),
    };
    format!(
        "{object} is forbidden: User \"{}\" cannot {} resource \"{}\" in API group \"{}\" {scope}",
        who.user,
        req.verb,
        req.resource_path(),
        req.api_group
    )
}
