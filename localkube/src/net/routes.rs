//! HTTPRoutes (`gateway.networking.k8s.io/v1`) as the gateway serves them — pure: parsing a
//! stored route, and choosing the route and rule of a request.
//!
//! Served: `parentRefs` (a parent is `namespace/name`, the namespace defaulting to the
//! route's), `hostnames` (exact, or `*.suffix` wildcards), rules with `matches` on the path
//! (`PathPrefix`, the default, or `Exact`) and `backendRefs` to Services (`weight` default 1,
//! `port` required, `namespace` default the route's). Not served: header, query and method
//! matches, filters, timeouts, `sectionName`/`port` of parents (every route of a parent is on
//! its one listener).

use serde_json::Value;

/// A parent (Gateway) of routes: where the listener is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ParentKey {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl std::fmt::Display for ParentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A path match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// The path is this or starts with it followed by `/` (element-wise, as the API says).
    Prefix(String),
    /// The path is exactly this.
    Exact(String),
}

impl PathMatch {
    /// Whether `path` (no query) matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Self::Exact(p) => path == p,
            Self::Prefix(p) => {
                let p = p.trim_end_matches('/');
                p.is_empty()
                    || path == p
                    || path
                        .strip_prefix(p)
                        .is_some_and(|rest| rest.starts_with('/'))
            }
        }
    }
}

/// A backend of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub service: String,
    /// The Service port.
    pub port: u16,
    /// Its share of the rule's requests.
    pub weight: u32,
}

/// A rule: which requests, which backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Path matches (any one suffices); empty matches every path.
    pub matches: Vec<PathMatch>,
    /// Backends with weights.
    pub backends: Vec<Backend>,
}

/// A route as served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Parents it attaches to.
    pub parents: Vec<ParentKey>,
    /// Hostnames (empty: any).
    pub hostnames: Vec<String>,
    /// Rules in order.
    pub rules: Vec<Rule>,
}

/// Why a stored HTTPRoute cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("HTTPRoute {route}: {problem}")]
pub struct RouteError {
    /// `namespace/name`.
    pub route: String,
    /// What is wrong.
    pub problem: String,
}

impl Route {
    /// Reads a stored HTTPRoute.
    pub fn parse(obj: &Value) -> Result<Self, RouteError> {
        let namespace = obj["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        let err = |problem: String| RouteError {
            route: format!("{namespace}/{name}"),
            problem,
        };
        if namespace.is_empty() || name.is_empty() {
            return Err(err("no name or namespace".into()));
        }
        let spec = &obj["spec"];
        let parents = spec["parentRefs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                Ok(ParentKey {
                    namespace: p["namespace"].as_str().unwrap_or(namespace).to_owned(),
                    name: p["name"]
                        .as_str()
                        .ok_or_else(|| err("a parentRef has no name".into()))?
                        .to_owned(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let hostnames = spec["hostnames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h.as_str().map(str::to_ascii_lowercase))
            .collect();
        let mut rules = Vec::new();
        for (i, r) in spec["rules"].as_array().into_iter().flatten().enumerate() {
            let mut matches = Vec::new();
            for m in r["matches"].as_array().into_iter().flatten() {
                let path = &m["path"];
                let value = path["value"].as_str().unwrap_or("/").to_owned();
                matches.push(match path["type"].as_str().unwrap_or("PathPrefix") {
                    "PathPrefix" => PathMatch::Prefix(value),
                    "Exact" => PathMatch::Exact(value),
                    other => {
                        return Err(err(format!(
                            "rule {i}: path match type {other} is not served"
                        )));
                    }
                });
            }
            let mut backends = Vec::new();
            for b in r["backendRefs"].as_array().into_iter().flatten() {
                let kind = b["kind"].as_str().unwrap_or("Service");
                if kind != "Service" || b["group"].as_str().is_some_and(|g| !g.is_empty()) {
                    return Err(err(format!("rule {i}: backend kind {kind} is not served")));
                }
                let service = b["name"]
                    .as_str()
                    .ok_or_else(|| err(format!("rule {i}: a backendRef has no name")))?;
                let port = b["port"]
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p != 0)
                    .ok_or_else(|| err(format!("rule {i}: backend {service} has no valid port")))?;
                let weight = match &b["weight"] {
                    Value::Null => 1,
                    w => w
                        .as_u64()
                        .and_then(|w| u32::try_from(w).ok())
                        .filter(|w| *w <= 1_000_000)
                        .ok_or_else(|| {
                            err(format!(
                                "rule {i}: backend {service}: weight {w} is not in 0-1000000"
                            ))
                        })?,
                };
                backends.push(Backend {
                    namespace: b["namespace"].as_str().unwrap_or(namespace).to_owned(),
                    service: service.to_owned(),
                    port,
                    weight,
                });
            }
            rules.push(Rule { matches, backends });
        }
        Ok(Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            parents,
            hostnames,
            rules,
        })
    }

    /// Whether the route serves `host` (the request's Host without port).
    pub fn serves_host(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.hostnames.is_empty()
            || self.hostnames.iter().any(|h| match h.strip_prefix("*.") {
                Some(suffix) => host
                    .strip_suffix(suffix)
                    .is_some_and(|label| label.ends_with('.') && label.len() > 1),
                None => *h == host,
            })
    }

    /// The index of the first rule matching `path`.
    pub fn rule_for(&self, path: &str) -> Option<usize> {
        self.rules
            .iter()
            .position(|r| r.matches.is_empty() || r.matches.iter().any(|m| m.matches(path)))
    }
}

/// The route and rule indexes (into `routes`) serving a request: the first route, in the
/// given order, that serves the host and has a rule for the path.
pub fn select(routes: &[Route], host: &str, path: &str) -> Option<(usize, usize)> {
    routes
        .iter()
        .enumerate()
        .filter(|(_, r)| r.serves_host(host))
        .find_map(|(i, r)| r.rule_for(path).map(|j| (i, j)))
}
