//! The API server: [`FakeApi`] answers Kubernetes REST requests from an in-memory [`Store`].
//! It is a `tower::Service` (a `kube::Client` talks to it in-process) and the handler behind
//! the HTTPS listener of the `localkube` binary.
//!
//! Per request: authentication (bearer token → [`Identity`]), the resource's type (built-in
//! or from a stored CRD), RBAC ([`rbac::authorize`], the decision recorded), then the verb:
//! get/list (label and field selectors, Tables for kubectl), watch (from a resourceVersion,
//! 410 Gone when compacted), create, update, patch (apply with field managers, merge,
//! strategic, JSON), delete (finalizers, garbage collection, orphaning), deletecollection,
//! the `status` and `scale` subresources, `dryRun`. Custom resources are validated against
//! their CRD's schema and CEL rules.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::discovery;
use crate::error::ApiError;
use crate::meta;
use crate::patch::{self, PatchType};
use crate::path::{self, Target, query_param};
use crate::rbac::{self, Attributes, Decision, Identity, Policy, Verb};
use crate::resources::{self, CRD_PLURAL, CRD_PREFIX, ResourceInfo};
use crate::scale::{scale_of, set_spec_replicas};
use crate::selector::Selector;
use crate::ssa::{self, Scope};
use crate::store::{self, Change, EventType, Mutator, ObjectKey, Propagation, Store};
use crate::table::{self, Include};
use crate::validation;
use crate::watch::{WatchSpec, expired_watch, in_scope, watch_response};

/// Response bodies: whole JSON documents, or a watch stream.
pub type ResponseBody = UnsyncBoxBody<Bytes, Infallible>;

/// A request as the server saw it, with who made it and the authorization decision.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// HTTP method.
    pub method: Method,
    /// URL path.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// Content-Type.
    pub content_type: String,
    /// The body, parsed.
    pub body: Option<Value>,
    /// The authenticated user (empty when authentication failed).
    pub user: String,
    /// Every RBAC check of a resource request, in order, with its decision: the request's
    /// verb, then `create` for an apply that creates the object (empty for discovery and
    /// other non-resource requests, and when authentication failed).
    pub authorization: Vec<(Verb, Decision)>,
}

impl Recorded {
    /// Whether authorization let the request through (non-resource requests always are).
    pub fn allowed(&self) -> bool {
        self.authorization.iter().all(|(_, d)| d.allowed())
    }
}

/// How strict the server is.
#[derive(Clone, Debug)]
struct Mode {
    /// The identity of requests without a token (`None`: they are 401).
    anonymous: Option<Identity>,
    /// Unknown resources are 404 and namespaced objects need their namespace.
    strict: bool,
}

struct Inner {
    store: Store,
    mode: Mode,
    tokens: HashMap<String, Identity>,
    /// The most recent requests, at most `request_log_limit` of them.
    requests: std::collections::VecDeque<Recorded>,
    request_log_limit: usize,
    /// Answer the next request whose method and path match with this status code.
    failures: Vec<(Method, String, u16)>,
    /// Resource types of the stored CRDs, by the CRDs' resourceVersions.
    crd_cache: (String, Vec<ResourceInfo>),
    /// The kubelet's pod directory (`pods/NAME/log` reads its log files).
    pod_logs: Option<std::path::PathBuf>,
}

/// The API server; clones share the state.
#[derive(Clone)]
pub struct FakeApi {
    inner: Arc<Mutex<Inner>>,
}

impl Default for FakeApi {
    fn default() -> Self {
        Self::new()
    }
}

static BUILTINS: LazyLock<Vec<ResourceInfo>> = LazyLock::new(resources::builtins);

/// The namespaces a new cluster has.
pub const INITIAL_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// A CRD stored without status gets its names accepted and is established at once.
fn establish_crds() -> Mutator {
    Arc::new(|key: &ObjectKey, obj: &mut Value| {
        if key.resource == CRD_PLURAL
            && key.prefix == CRD_PREFIX
            && obj["status"]["conditions"]
                .as_array()
                .is_none_or(Vec::is_empty)
        {
            obj["status"] = resources::established_status(obj);
        }
    })
}

/// A Deployment's status once the Deployment controller has rolled it out completely.
pub fn mark_rolled_out(d: &mut Value) {
    let n = d["spec"]["replicas"].clone();
    d["status"] = json!({
        "observedGeneration": d["metadata"]["generation"],
        "replicas": n, "updatedReplicas": n, "readyReplicas": n, "availableReplicas": n,
    });
}

fn json_response(code: StatusCode, body: &Value) -> Response<ResponseBody> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(bytes)).boxed_unsync())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed_unsync()))
}

fn error_response(e: &ApiError) -> Response<ResponseBody> {
    let code = StatusCode::from_u16(e.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, &e.status())
}

/// A request, read.
struct Incoming {
    method: Method,
    path: String,
    query: String,
    content_type: String,
    accept: String,
    user_agent: String,
    authorization: Option<String>,
    body: Bytes,
}

/// What the handler answers.
enum Reply {
    Json(StatusCode, Value),
    /// A container's log (`pods/NAME/log`).
    Text(String),
    Watch(Box<WatchSpec>),
}

fn parse_body(bytes: &Bytes, content_type: &str) -> Result<Option<Value>, ApiError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    if let Ok(v) = serde_json::from_slice(bytes) {
        return Ok(Some(v));
    }
    if content_type.contains("yaml") {
        let y: serde_yaml::Value = serde_yaml::from_slice(bytes)
            .map_err(|e| ApiError::BadRequest(format!("error decoding YAML: {e}")))?;
        return serde_json::to_value(y)
            .map(Some)
            .map_err(|e| ApiError::BadRequest(e.to_string()));
    }
    Err(ApiError::BadRequest(
        "the body of the request is not valid JSON".into(),
    ))
}

fn verb_of(method: &Method, t: &Target, query: &str) -> Result<Verb, ApiError> {
    let watch = matches!(query_param(query, "watch").as_deref(), Some("true" | "1"));
    Ok(match (method, t.name.is_some()) {
        (&Method::GET, true) => Verb::Get,
        (&Method::GET, false) if watch => Verb::Watch,
        (&Method::GET, false) => Verb::List,
        (&Method::POST, false) => Verb::Create,
        (&Method::PUT, true) => Verb::Update,
        (&Method::PATCH, true) => Verb::Patch,
        (&Method::DELETE, true) => Verb::Delete,
        (&Method::DELETE, false) => Verb::DeleteCollection,
        (m, _) => {
            return Err(ApiError::MethodNotAllowed(format!(
                "the server does not allow this method on the requested resource: {m}"
            )));
        }
    })
}

fn is_true(query: &str, key: &str) -> bool {
    matches!(query_param(query, key).as_deref(), Some("true" | "1"))
}

/// The label and field selectors of a list, watch or deletecollection of `info`'s kind.
fn selectors(query: &str, info: &ResourceInfo) -> Result<(Selector, Selector), ApiError> {
    Ok((
        Selector::parse(&query_param(query, "labelSelector").unwrap_or_default())?,
        Selector::parse_fields(
            &query_param(query, "fieldSelector").unwrap_or_default(),
            info.selectable_fields(),
        )?,
    ))
}

/// An events.k8s.io/v1 Event in the core/v1 shape (`regarding` → `involvedObject`, `note` →
/// `message`, the reporting controller as `source.component`).
fn core_event(e: &Value) -> Value {
    let time = e["eventTime"].clone();
    json!({"apiVersion": "v1", "kind": "Event", "metadata": e["metadata"],
        "involvedObject": e["regarding"], "related": e["related"], "reason": e["reason"],
        "message": e["note"], "type": e["type"], "action": e["action"],
        "source": {"component": e["reportingController"]},
        "reportingComponent": e["reportingController"], "reportingInstance": e["reportingInstance"],
        "eventTime": time, "firstTimestamp": e.get("deprecatedFirstTimestamp").unwrap_or(&time),
        "lastTimestamp": e.get("deprecatedLastTimestamp").unwrap_or(&time),
        "count": e["series"]["count"].as_i64().or(e["deprecatedCount"].as_i64()).unwrap_or(1)})
}

/// Gives `to` the status of `from` (none if `from` has none).
fn copy_status(from: &Value, to: &mut Value) {
    match from.get("status") {
        Some(s) => to["status"] = s.clone(),
        None => {
            if let Some(m) = to.as_object_mut() {
                m.remove("status");
            }
        }
    }
}

/// 422 `Invalid` unless `obj` is a JSON object whose `metadata`, when present, is an object
/// too: the shape a written body (or a patch's result) needs before it is merged with the
/// stored object.
fn check_shape(info: &ResourceInfo, name: &str, obj: &Value) -> Result<(), ApiError> {
    let field = if !obj.is_object() {
        "<root>"
    } else if obj
        .get("metadata")
        .is_some_and(|m| !m.is_object() && !m.is_null())
    {
        "metadata"
    } else {
        return Ok(());
    };
    Err(ApiError::Invalid {
        kind: info.qualified_kind(),
        name: name.to_owned(),
        causes: vec![crate::error::Cause {
            field: field.into(),
            message: "Invalid value: must be an object".into(),
        }],
    })
}

/// A generated name suffix (`generateName`, pod names): 5 characters without vowels.
pub(crate) fn random_suffix() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

/// The field manager of a non-apply write: `?fieldManager=`, else the user agent's program.
fn manager_of(query: &str, user_agent: &str) -> String {
    query_param(query, "fieldManager").unwrap_or_else(|| {
        user_agent
            .split('/')
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .to_owned()
    })
}

impl Inner {
    fn infos(&mut self) -> Vec<ResourceInfo> {
        let fingerprint: String = self
            .store
            .list(CRD_PREFIX, CRD_PLURAL, None)
            .map(|(_, v)| {
                v["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join(",");
        if self.crd_cache.0 != fingerprint
            || (fingerprint.is_empty() && !self.crd_cache.1.is_empty())
        {
            let crds: Vec<ResourceInfo> = self
                .store
                .list(CRD_PREFIX, CRD_PLURAL, None)
                .flat_map(|(_, v)| resources::from_crd(v))
                .collect();
            self.crd_cache = (fingerprint, crds);
        }
        BUILTINS
            .iter()
            .chain(self.crd_cache.1.iter())
            .cloned()
            .collect()
    }

    fn resolve(&mut self, t: &Target) -> Result<ResourceInfo, ApiError> {
        let found = BUILTINS
            .iter()
            .find(|i| i.group == t.group && i.version == t.version && i.plural == t.resource)
            .cloned();
        let found = match found {
            Some(f) => Some(f),
            None => self
                .infos()
                .into_iter()
                .find(|i| i.group == t.group && i.version == t.version && i.plural == t.resource),
        };
        match found {
            Some(info) => Ok(info),
            None if self.mode.strict => Err(ApiError::NoSuchResource),
            // Lenient (in-process tests): any resource, scoped as the path says.
            None => Ok(ResourceInfo {
                group: t.group.clone(),
                version: t.version.clone(),
                plural: t.resource.clone(),
                singular: t.resource.trim_end_matches('s').to_owned(),
                kind: t.resource.clone(),
                namespaced: t.namespace.is_some(),
                short_names: Vec::new(),
                subresources: vec!["status".into(), "scale".into()],
                printer_columns: Vec::new(),
                schema: None,
                scale: None,
            }),
        }
    }

    fn policy(&self) -> Policy {
        let mut p = Policy::default();
        for res in [
            "roles",
            "rolebindings",
            "clusterroles",
            "clusterrolebindings",
        ] {
            for (_, v) in self
                .store
                .list("/apis/rbac.authorization.k8s.io/v1", res, None)
            {
                p.add(res, v);
            }
        }
        p
    }

    fn authenticate(&self, authorization: Option<&str>) -> Result<Identity, ApiError> {
        match authorization {
            None => self.mode.anonymous.clone().ok_or(ApiError::Unauthorized),
            Some(h) => h
                .strip_prefix("Bearer ")
                .and_then(|t| self.tokens.get(t.trim()))
                .cloned()
                .ok_or(ApiError::Unauthorized),
        }
    }

    fn key(t: &Target, name: &str) -> ObjectKey {
        ObjectKey::new(
            &t.prefix,
            &t.resource,
            t.namespace.as_deref().unwrap_or_default(),
            name,
        )
    }

    fn not_found(info: &ResourceInfo, name: &str) -> ApiError {
        ApiError::NotFound {
            qualified: info.qualified(),
            name: name.to_owned(),
        }
    }

    /// Sets apiVersion and kind, checks the schema, and stores unless it is a dry run.
    fn commit(
        &mut self,
        info: &ResourceInfo,
        key: ObjectKey,
        mut obj: Value,
        old: Option<&Value>,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        obj["apiVersion"] = json!(info.api_version());
        obj["kind"] = json!(info.kind);
        let causes = meta::problems(info, &obj, old);
        if !causes.is_empty() {
            return Err(ApiError::Invalid {
                kind: info.qualified_kind(),
                name: key.name.clone(),
                causes,
            });
        }
        validation::check(info, &obj)?;
        if dry_run {
            return Ok(obj);
        }
        Ok(self.store.write(key, obj, old))
    }

    /// A new object's namespace must exist (strict mode) and not be terminating (403, as
    /// the API server's NamespaceLifecycle admission answers).
    fn check_namespace(&self, info: &ResourceInfo, t: &Target, name: &str) -> Result<(), ApiError> {
        if !info.namespaced {
            return Ok(());
        }
        let ns = t.namespace.as_deref().unwrap_or_default();
        match self.store.get(&store::namespace_key(ns)) {
            None if self.mode.strict => Err(ApiError::NotFound {
                qualified: "namespaces".into(),
                name: ns.to_owned(),
            }),
            Some(n) if store::is_deleting(n) => Err(ApiError::Forbidden {
                message: format!(
                    "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    info.qualified()
                ),
                name: Some(name.to_owned()),
                group: info.group.clone(),
                kind: info.plural.clone(),
            }),
            _ => Ok(()),
        }
    }

    fn handle(
        &mut self,
        req: &Incoming,
        body: Option<Value>,
        who: &Identity,
    ) -> Result<Reply, ApiError> {
        let Some(t) = path::parse(&req.path) else {
            return self.non_resource(req);
        };
        let info = self.resolve(&t)?;
        if info.namespaced != t.namespace.is_some() && (t.name.is_some() || !info.namespaced) {
            return Err(ApiError::NoSuchResource);
        }
        if let Some(sub) = &t.subresource
            && !info.subresources.contains(sub)
        {
            return Err(ApiError::NoSuchResource);
        }
        let verb = verb_of(&req.method, &t, &req.query)?;
        let attrs = request_attributes(verb, &t, &info, &req.query);
        self.authorize(who, &attrs, &info)?;
        if verb == Verb::Patch
            && t.subresource.is_none()
            && PatchType::from_content_type(&req.content_type) == Some(PatchType::Apply)
            && let Some(name) = &t.name
            && self.store.get(&Self::key(&t, name)).is_none()
        {
            // An apply that creates the object needs `create` too, as on the real server.
            let create = Attributes {
                verb: Verb::Create,
                ..attrs
            };
            self.authorize(who, &create, &info)?;
        }
        let dry_run = query_param(&req.query, "dryRun").is_some();
        let name = t.name.clone().unwrap_or_default();
        match verb {
            Verb::Get if t.subresource.as_deref() == Some("log") => {
                self.pod_log(&t, &info, &name, &req.query).map(Reply::Text)
            }
            Verb::Get => self
                .get(&t, &info, &name, req)
                .map(|v| Reply::Json(StatusCode::OK, v)),
            Verb::List => self
                .list(&t, &info, req)
                .map(|v| Reply::Json(StatusCode::OK, v)),
            Verb::Watch => self.watch(t, info, req).map(|w| Reply::Watch(Box::new(w))),
            Verb::Create => self.create(&t, &info, body, req, dry_run),
            Verb::Update => self
                .update(&t, &info, &name, body, req, dry_run)
                .map(|v| Reply::Json(StatusCode::OK, v)),
            Verb::Patch => self.patch(&t, &info, &name, body, req, dry_run),
            Verb::Delete => self
                .delete(&t, &info, &name, body.as_ref(), &req.query)
                .map(|v| Reply::Json(StatusCode::OK, v)),
            Verb::DeleteCollection => self
                .delete_collection(&t, &info, body.as_ref(), &req.query)
                .map(|v| Reply::Json(StatusCode::OK, v)),
        }
    }

    /// `pods/NAME/log` (`?container=`, `?previous=true`): the kubelet's log file of the
    /// container's current (or previous) run; 400 without a kubelet or such a container, or
    /// before the container has run.
    fn pod_log(
        &self,
        t: &Target,
        info: &ResourceInfo,
        name: &str,
        query: &str,
    ) -> Result<String, ApiError> {
        let pod = self
            .store
            .get(&Self::key(t, name))
            .ok_or_else(|| Self::not_found(info, name))?;
        let Some(root) = &self.pod_logs else {
            return Err(ApiError::BadRequest(
                "no kubelet runs pods on this server (localkube --kubelet)".into(),
            ));
        };
        let container = query_param(query, "container");
        let file =
            crate::kubelet::logs::path(root, pod, container.as_deref(), is_true(query, "previous"))
                .map_err(ApiError::BadRequest)?;
        std::fs::read(&file)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .map_err(|e| ApiError::BadRequest(format!("cannot read {}: {e}", file.display())))
    }

    /// The RBAC decision for `attrs`, recorded on the current request; 403 when refused.
    fn authorize(
        &mut self,
        who: &Identity,
        attrs: &Attributes,
        info: &ResourceInfo,
    ) -> Result<(), ApiError> {
        let decision = if who.groups.iter().any(|g| g == rbac::MASTERS) {
            Decision::Allowed(rbac::MASTERS.into())
        } else {
            rbac::authorize(who, attrs, &self.policy())
        };
        if let Some(last) = self.requests.back_mut() {
            last.authorization.push((attrs.verb, decision.clone()));
        }
        if decision.allowed() {
            return Ok(());
        }
        let message = rbac::forbidden_message(who, attrs, &info.qualified());
        tracing::warn!(%message, "forbidden");
        Err(ApiError::Forbidden {
            message,
            name: attrs.name.clone(),
            group: attrs.api_group.clone(),
            kind: attrs.resource.clone(),
        })
    }

    fn non_resource(&mut self, req: &Incoming) -> Result<Reply, ApiError> {
        if req.method != Method::GET {
            return Err(ApiError::MethodNotAllowed(req.method.to_string()));
        }
        let path = req.path.trim_end_matches('/');
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let v = match parts.as_slice() {
            ["version"] => discovery::version(),
            ["healthz" | "readyz" | "livez"] => {
                return Ok(Reply::Json(StatusCode::OK, json!("ok")));
            }
            ["api"] => discovery::core_versions(),
            ["apis"] => discovery::group_list(&self.infos()),
            ["api", version] => discovery::resource_list(&self.infos(), "", version)
                .ok_or(ApiError::NoSuchResource)?,
            ["apis", group] => {
                let list = discovery::group_list(&self.infos());
                list["groups"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|g| g["name"] == *group)
                    .map(|g| {
                        let mut g = g.clone();
                        g["kind"] = json!("APIGroup");
                        g["apiVersion"] = json!("v1");
                        g
                    })
                    .ok_or(ApiError::NoSuchResource)?
            }
            ["apis", group, version] => discovery::resource_list(&self.infos(), group, version)
                .ok_or(ApiError::NoSuchResource)?,
            ["openapi", "v3"] => discovery::openapi_index(&self.infos()),
            ["openapi", "v3", "api", version] => {
                discovery::openapi_group_version(&self.infos(), "", version)
                    .ok_or(ApiError::NoSuchResource)?
            }
            ["openapi", "v3", "apis", group, version] => {
                discovery::openapi_group_version(&self.infos(), group, version)
                    .ok_or(ApiError::NoSuchResource)?
            }
            _ => return Err(ApiError::NoSuchResource),
        };
        Ok(Reply::Json(StatusCode::OK, v))
    }

    fn get(
        &mut self,
        t: &Target,
        info: &ResourceInfo,
        name: &str,
        req: &Incoming,
    ) -> Result<Value, ApiError> {
        let obj = self
            .store
            .get(&Self::key(t, name))
            .cloned()
            .ok_or_else(|| Self::not_found(info, name))?;
        if t.subresource.as_deref() == Some("scale") {
            return Ok(scale_of(info, &obj));
        }
        if table::wanted(&req.accept) {
            let include = Include::from_query(query_param(&req.query, "includeObject").as_deref());
            let rv = obj["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            return Ok(table::table(info, &[obj], &rv, include));
        }
        Ok(obj)
    }

    fn list(&mut self, t: &Target, info: &ResourceInfo, req: &Incoming) -> Result<Value, ApiError> {
        let (labels, fields) = selectors(&req.query, info)?;
        let mut items: Vec<Value> = self
            .store
            .list(&t.prefix, &t.resource, t.namespace.as_deref())
            .map(|(_, v)| v.clone())
            .collect();
        if t.prefix == "/api/v1" && t.resource == "events" {
            // One store behind both Event APIs, as on a real cluster: `kubectl describe` (core
            // events) shows what controllers wrote as events.k8s.io Events.
            items.extend(
                self.store
                    .list("/apis/events.k8s.io/v1", "events", t.namespace.as_deref())
                    .map(|(_, v)| core_event(v)),
            );
        }
        items.retain(|v| labels.matches_labels(v) && fields.matches_fields(v));
        let rv = self.store.revision().to_string();
        if table::wanted(&req.accept) {
            let include = Include::from_query(query_param(&req.query, "includeObject").as_deref());
            return Ok(table::table(info, &items, &rv, include));
        }
        Ok(
            json!({"apiVersion": info.api_version(), "kind": format!("{}List", info.kind),
                  "metadata": {"resourceVersion": rv}, "items": items}),
        )
    }

    fn watch(
        &mut self,
        t: Target,
        info: ResourceInfo,
        req: &Incoming,
    ) -> Result<WatchSpec, ApiError> {
        let (labels, fields) = selectors(&req.query, &info)?;
        let since =
            query_param(&req.query, "resourceVersion").filter(|v| !v.is_empty() && v != "0");
        let selected = |key: &ObjectKey, obj: &Value| {
            in_scope(&t, key) && labels.matches_labels(obj) && fields.matches_fields(obj)
        };
        let backlog = match since {
            None => self
                .store
                .list(&t.prefix, &t.resource, t.namespace.as_deref())
                .filter(|(k, v)| selected(k, v))
                .map(|(k, v)| Change {
                    revision: 0,
                    key: k.clone(),
                    kind: EventType::Added,
                    object: v.clone(),
                    previous: None,
                })
                .collect(),
            Some(rv) => {
                let requested: u64 = rv
                    .parse()
                    .map_err(|_| ApiError::BadRequest(format!("invalid resourceVersion {rv:?}")))?;
                match self
                    .store
                    // Every change in scope: whether it enters or leaves the selection is
                    // decided with the live ones (`Change::seen_through`).
                    .changes_since(requested, |c| in_scope(&t, &c.key))
                {
                    Some(changes) => changes,
                    None => {
                        return Err(ApiError::Expired {
                            requested,
                            oldest: self.store.revision(),
                        });
                    }
                }
            }
        };
        let table = table::wanted(&req.accept)
            .then(|| Include::from_query(query_param(&req.query, "includeObject").as_deref()));
        let timeout = query_param(&req.query, "timeoutSeconds")
            .and_then(|s| s.parse().ok())
            .map(Duration::from_secs);
        Ok(WatchSpec {
            target: t,
            info,
            labels,
            fields,
            backlog,
            rx: self.store.subscribe(),
            table,
            timeout,
        })
    }

    fn create(
        &mut self,
        t: &Target,
        info: &ResourceInfo,
        body: Option<Value>,
        req: &Incoming,
        dry_run: bool,
    ) -> Result<Reply, ApiError> {
        let mut obj = body.ok_or_else(|| ApiError::BadRequest("no body".into()))?;
        check_shape(info, "", &obj)?;
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        let name = match (
            obj["metadata"]["name"].as_str(),
            obj["metadata"]["generateName"].as_str(),
        ) {
            (Some(n), _) if !n.is_empty() => n.to_owned(),
            (_, Some(g)) => format!("{g}{}", random_suffix()),
            _ => {
                return Err(ApiError::Invalid {
                    kind: info.qualified_kind(),
                    name: String::new(),
                    causes: vec![crate::error::Cause {
                        field: "metadata.name".into(),
                        message: "Required value: name or generateName is required".into(),
                    }],
                });
            }
        };
        if let (Some(body_ns), Some(ns)) = (obj["metadata"]["namespace"].as_str(), &t.namespace)
            && body_ns != ns
        {
            return Err(ApiError::BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request"
                    .into(),
            ));
        }
        self.check_namespace(info, t, &name)?;
        let key = Self::key(t, &name);
        if self.store.get(&key).is_some() {
            return Err(ApiError::AlreadyExists {
                qualified: info.qualified(),
                name,
            });
        }
        obj["metadata"]["name"] = json!(name);
        if Self::has_status_subresource(info)
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        ssa::record_update(
            None,
            &mut obj,
            &manager_of(&req.query, &req.user_agent),
            Scope::Main,
        );
        let stored = self.commit(info, key, obj, None, dry_run)?;
        Ok(Reply::Json(StatusCode::CREATED, stored))
    }

    fn has_status_subresource(info: &ResourceInfo) -> bool {
        info.subresources.iter().any(|s| s == "status")
    }

    /// The object a write on `scope` produces from `old` and the written `new`: the main
    /// resource keeps the stored status, the status subresource changes only the status.
    fn scoped(info: &ResourceInfo, scope: Scope, old: &Value, mut new: Value) -> Value {
        if !Self::has_status_subresource(info) {
            return new;
        }
        match scope {
            Scope::Main => {
                copy_status(old, &mut new);
                new
            }
            Scope::Status => {
                let mut obj = old.clone();
                copy_status(&new, &mut obj);
                obj
            }
        }
    }

    fn check_precondition(
        info: &ResourceInfo,
        name: &str,
        old: &Value,
        new: &Value,
    ) -> Result<(), ApiError> {
        match new["metadata"]["resourceVersion"].as_str() {
            Some(rv)
                if !rv.is_empty() && Some(rv) != old["metadata"]["resourceVersion"].as_str() =>
            {
                Err(ApiError::Conflict(format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                    info.qualified()
                )))
            }
            _ => Ok(()),
        }
    }

    fn update(
        &mut self,
        t: &Target,
        info: &ResourceInfo,
        name: &str,
        body: Option<Value>,
        req: &Incoming,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let new = body.ok_or_else(|| ApiError::BadRequest("no body".into()))?;
        check_shape(info, name, &new)?;
        if new["metadata"]["name"].as_str().is_some_and(|n| n != name) {
            return Err(ApiError::BadRequest(
                "the name of the object does not match the name on the URL".into(),
            ));
        }
        let key = Self::key(t, name);
        let old = self
            .store
            .get(&key)
            .cloned()
            .ok_or_else(|| Self::not_found(info, name))?;
        Self::check_precondition(info, name, &old, &new)?;
        if t.subresource.as_deref() == Some("scale") {
            let mut obj = old.clone();
            set_spec_replicas(info, &mut obj, new["spec"]["replicas"].clone());
            let stored = self.commit(info, key, obj, Some(&old), dry_run)?;
            return Ok(scale_of(info, &stored));
        }
        let scope = if t.subresource.is_some() {
            Scope::Status
        } else {
            Scope::Main
        };
        let mut obj = Self::scoped(info, scope, &old, new);
        ssa::keep_managed_fields(&old, &mut obj);
        ssa::record_update(
            Some(&old),
            &mut obj,
            &manager_of(&req.query, &req.user_agent),
            scope,
        );
        self.commit(info, key, obj, Some(&old), dry_run)
    }

    fn patch(
        &mut self,
        t: &Target,
        info: &ResourceInfo,
        name: &str,
        body: Option<Value>,
        req: &Incoming,
        dry_run: bool,
    ) -> Result<Reply, ApiError> {
        let body = body.ok_or_else(|| ApiError::BadRequest("no body".into()))?;
        let kind = PatchType::from_content_type(&req.content_type).ok_or_else(|| {
            ApiError::UnsupportedMediaType(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {:?})",
                req.content_type
            ))
        })?;
        let builtin = BUILTINS
            .iter()
            .any(|b| b.group == info.group && b.plural == info.plural);
        if kind == PatchType::Strategic && !builtin && self.mode.strict {
            return Err(ApiError::UnsupportedMediaType(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (strategic merge patch is not supported for {})",
                info.qualified_kind()
            )));
        }
        let key = Self::key(t, name);
        let old = self.store.get(&key).cloned();
        let on_scale = t.subresource.as_deref() == Some("scale");
        let scope = if t.subresource.as_deref() == Some("status") {
            Scope::Status
        } else {
            Scope::Main
        };
        if kind == PatchType::Apply {
            if on_scale {
                return Err(ApiError::UnsupportedMediaType(
                    "apply is not supported on scale".into(),
                ));
            }
            let manager = query_param(&req.query, "fieldManager").filter(|m| !m.is_empty()).ok_or_else(|| {
                ApiError::BadRequest("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".into())
            })?;
            check_shape(info, name, &body)?;
            if body["metadata"]["name"].as_str().is_some_and(|n| n != name) {
                return Err(ApiError::BadRequest(
                    "the name of the object does not match the name on the URL".into(),
                ));
            }
            let current = match (&old, scope) {
                (Some(o), _) => o.clone(),
                (None, Scope::Status) => return Err(Self::not_found(info, name)),
                (None, Scope::Main) => {
                    self.check_namespace(info, t, name)?;
                    json!({"metadata": {}})
                }
            };
            let force = is_true(&req.query, "force");
            let obj = ssa::apply(&current, &body, &manager, force, scope)
                .map_err(|c| ApiError::Conflict(ssa::conflict_message(&c)))?;
            let obj = match &old {
                Some(o) => Self::scoped(info, scope, o, obj),
                None => obj,
            };
            let code = if old.is_some() {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            let stored = self.commit(info, key, obj, old.as_ref(), dry_run)?;
            return Ok(Reply::Json(code, stored));
        }
        let old = old.ok_or_else(|| Self::not_found(info, name))?;
        let mut target = if on_scale {
            scale_of(info, &old)
        } else {
            old.clone()
        };
        match kind {
            PatchType::Merge => patch::merge(&mut target, &body),
            PatchType::Strategic => patch::strategic_merge(&mut target, &body),
            PatchType::Json => {
                patch::json_patch(&mut target, body.clone()).map_err(|e| ApiError::Invalid {
                    kind: info.qualified_kind(),
                    name: name.to_owned(),
                    causes: vec![crate::error::Cause {
                        field: String::new(),
                        message: e.to_string(),
                    }],
                })?;
            }
            PatchType::Apply => {}
        }
        check_shape(info, name, &target)?;
        if on_scale {
            let mut obj = old.clone();
            set_spec_replicas(info, &mut obj, target["spec"]["replicas"].clone());
            let stored = self.commit(info, key, obj, Some(&old), dry_run)?;
            return Ok(Reply::Json(StatusCode::OK, scale_of(info, &stored)));
        }
        Self::check_precondition(info, name, &old, &target)?;
        let mut obj = Self::scoped(info, scope, &old, target);
        ssa::keep_managed_fields(&old, &mut obj);
        ssa::record_update(
            Some(&old),
            &mut obj,
            &manager_of(&req.query, &req.user_agent),
            scope,
        );
        let stored = self.commit(info, key, obj, Some(&old), dry_run)?;
        Ok(Reply::Json(StatusCode::OK, stored))
    }

    fn propagation(body: Option<&Value>, query: &str) -> Propagation {
        let policy = body
            .and_then(|b| b["propagationPolicy"].as_str().map(str::to_owned))
            .or_else(|| query_param(query, "propagationPolicy"));
        match policy.as_deref() {
            Some("Orphan") => Propagation::Orphan,
            _ => Propagation::Background,
        }
    }

    fn delete(
        &mut self,
        t: &Target,
        info: &ResourceInfo,
        name: &str,
        body: Option<&Value>,
        query: &str,
    ) -> Result<Value, ApiError> {
        let key = Self::key(t, name);
        let old = self
            .store
            .get(&key)
            .cloned()
            .ok_or_else(|| Self::not_found(info, name))?;
        let pre = body.map(|b| &b["preconditions"]);
        if let Some(rv) = pre.and_then(|p| p["resourceVersion"].as_str())
            && Some(rv) != old["metadata"]["resourceVersion"].as_str()
        {
            return Err(ApiError::Conflict(format!(
                "Operation cannot be fulfilled on {} \"{name}\": the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({}). The object might have been modified",
                info.qualified(),
                old["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
            )));
        }
        if let Some(uid) = pre.and_then(|p| p["uid"].as_str())
            && Some(uid) != old["metadata"]["uid"].as_str()
        {
            return Err(ApiError::Conflict(format!(
                "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                info.qualified(),
                old["metadata"]["uid"].as_str().unwrap_or_default()
            )));
        }
        if query_param(query, "dryRun").is_some() {
            return Ok(old);
        }
        if info.plural == "namespaces" && info.group.is_empty() {
            // The namespace controller: everything in the namespace goes with it; while
            // something is left (held by a finalizer) the namespace stays, Terminating, and
            // goes with the last object in it (`Store::remove`).
            let inside: Vec<ObjectKey> = self
                .store
                .all()
                .filter(|(k, _)| k.namespace == name)
                .map(|(k, _)| k.clone())
                .collect();
            for k in inside {
                self.store.delete(&k, Propagation::Background);
            }
            let mut last = old;
            if let Some(current) = self.store.get(&key).cloned()
                && !store::is_deleting(&current)
            {
                let mut terminating = current.clone();
                terminating["metadata"]["deletionTimestamp"] = json!(crate::clock::now());
                terminating["spec"]["finalizers"] = json!(["kubernetes"]);
                terminating["status"]["phase"] = json!("Terminating");
                last = self.store.write(key, terminating, Some(&current));
            }
            return Ok(self.store.finish_namespace(name).unwrap_or(last));
        }
        Ok(self
            .store
            .delete(&key, Self::propagation(body, query))
            .unwrap_or(old))
    }

    fn delete_collection(
        &mut self,
        t: &Target,
        info: &ResourceInfo,
        body: Option<&Value>,
        query: &str,
    ) -> Result<Value, ApiError> {
        let (labels, fields) = selectors(query, info)?;
        let keys: Vec<ObjectKey> = self
            .store
            .list(&t.prefix, &t.resource, t.namespace.as_deref())
            .filter(|(_, v)| labels.matches_labels(v) && fields.matches_fields(v))
            .map(|(k, _)| k.clone())
            .collect();
        let mut items = Vec::new();
        for k in keys {
            let t2 = Target {
                namespace: (!k.namespace.is_empty()).then(|| k.namespace.clone()),
                name: Some(k.name.clone()),
                ..t.clone()
            };
            items.push(self.delete(&t2, info, &k.name, body, query)?);
        }
        Ok(
            json!({"apiVersion": info.api_version(), "kind": format!("{}List", info.kind),
                  "metadata": {"resourceVersion": self.store.revision().to_string()}, "items": items}),
        )
    }
}

/// The RBAC attributes of a resource request, as the API server's request info has them: a
/// list or watch whose field selector requires `metadata.name=X` names X (so `resourceNames`
/// rules apply), and a request on a namespace (or its `status`) is in that namespace. A
/// malformed selector names nothing here: the verb refuses it after authorization.
fn request_attributes(verb: Verb, t: &Target, info: &ResourceInfo, query: &str) -> Attributes {
    let mut name = t.name.clone();
    if matches!(verb, Verb::List | Verb::Watch) {
        name = Selector::parse(&query_param(query, "fieldSelector").unwrap_or_default())
            .ok()
            .and_then(|f| f.exact("metadata.name").map(str::to_owned));
    }
    let namespace = if info.group.is_empty() && info.plural == "namespaces" {
        t.name.clone()
    } else {
        t.namespace.clone()
    };
    Attributes {
        verb,
        api_group: t.group.clone(),
        resource: t.resource.clone(),
        subresource: t.subresource.clone(),
        name,
        namespace,
    }
}

impl FakeApi {
    fn with_mode(mode: Mode) -> Self {
        let mut store = Store::default();
        store.add_mutator(establish_crds());
        Self {
            inner: Arc::new(Mutex::new(Inner {
                store,
                mode,
                tokens: HashMap::new(),
                requests: std::collections::VecDeque::new(),
                request_log_limit: usize::MAX,
                failures: Vec::new(),
                crd_cache: (String::new(), Vec::new()),
                pod_logs: None,
            })),
        }
    }

    /// A lenient server for in-process tests: requests without a token act as the cluster
    /// admin, any resource path is served, namespaces need not exist.
    pub fn new() -> Self {
        Self::with_mode(Mode {
            anonymous: Some(Identity::admin()),
            strict: false,
        })
    }

    /// A server that behaves like a fresh cluster: every request needs a known token, unknown
    /// resources are 404, objects need their namespace; the namespaces `default`,
    /// `kube-system`, `kube-public`, `kube-node-lease` and the FeedRollout CRD exist.
    pub fn cluster() -> Result<Self, ApiError> {
        let api = Self::with_mode(Mode {
            anonymous: None,
            strict: true,
        });
        for ns in INITIAL_NAMESPACES {
            api.put(
                "namespaces",
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns},
                       "status": {"phase": "Active"}}),
            );
        }
        let crd = feedroll_crds::crd()
            .map_err(|e| ApiError::BadRequest(e.to_string()))
            .and_then(|c| {
                serde_json::to_value(c).map_err(|e| ApiError::BadRequest(e.to_string()))
            })?;
        api.put(CRD_PLURAL, crd);
        Ok(api)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `token` as `identity`'s bearer token.
    pub fn add_token(&self, token: &str, identity: Identity) {
        self.lock().tokens.insert(token.to_owned(), identity);
    }

    /// A new random token for `identity`.
    pub fn issue_token(&self, identity: Identity) -> String {
        use rand::Rng;
        let token: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(40)
            .map(char::from)
            .collect();
        self.add_token(&token, identity);
        token
    }

    /// A `kube::Client` talking to this server in-process (as the anonymous identity: the
    /// admin for [`FakeApi::new`]).
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.clone(), "default")
    }

    /// A `kube::Client` authenticated as `identity` (a token is issued for it).
    pub fn client_as(&self, identity: Identity) -> kube::Client {
        let value = format!("Bearer {}", self.issue_token(identity));
        let svc = tower::ServiceBuilder::new()
            .map_request(move |mut req: Request<kube::client::Body>| {
                if let Ok(v) = header::HeaderValue::from_str(&value) {
                    req.headers_mut().insert(header::AUTHORIZATION, v);
                }
                req
            })
            .service(self.clone());
        kube::Client::new(svc, "default")
    }

    /// Creates or replaces an object directly (as a controller would), keyed by its
    /// apiVersion, `resource` (plural), namespace and name; returns it as stored.
    pub fn put(&self, resource: &str, obj: Value) -> Value {
        let key = ObjectKey::of(resource, &obj);
        let mut st = self.lock();
        let old = st.store.get(&key).cloned();
        st.store.write(key, obj, old.as_ref())
    }

    /// Creates an object a controller makes for its owner (a Deployment's pod), but only while
    /// an owner it references is still stored, checked under the same lock as the write.
    /// Answers `None`, and stores nothing, when every owner is gone: a controller that read its
    /// owner just before the owner was deleted must not leave an object behind that no garbage
    /// collection will ever visit (a real cluster's garbage collector deletes such an object).
    pub fn put_owned(&self, resource: &str, obj: Value) -> Option<Value> {
        let key = ObjectKey::of(resource, &obj);
        let owners: Vec<Value> = obj["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r["uid"].clone())
            .collect();
        let mut st = self.lock();
        let owned = owners.is_empty()
            || st
                .store
                .all()
                .any(|(_, o)| owners.contains(&o["metadata"]["uid"]));
        if !owned {
            return None;
        }
        let old = st.store.get(&key).cloned();
        Some(st.store.write(key, obj, old.as_ref()))
    }

    /// The stored object.
    pub fn get(&self, api_version: &str, resource: &str, ns: &str, name: &str) -> Option<Value> {
        let key = ObjectKey::new(
            &path::prefix_of_api_version(api_version),
            resource,
            ns,
            name,
        );
        self.lock().store.get(&key).cloned()
    }

    /// Every stored object of a resource in a namespace.
    pub fn list(&self, api_version: &str, resource: &str, ns: &str) -> Vec<Value> {
        let p = path::prefix_of_api_version(api_version);
        self.lock()
            .store
            .list(&p, resource, Some(ns))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Serves `pods/NAME/log` from the kubelet's pod directory `root`.
    pub fn serve_pod_logs(&self, root: &std::path::Path) {
        self.lock().pod_logs = Some(root.to_owned());
    }

    /// Every stored object of a resource, in every namespace (controllers).
    pub fn list_all(&self, api_version: &str, resource: &str) -> Vec<Value> {
        let p = path::prefix_of_api_version(api_version);
        self.lock()
            .store
            .list(&p, resource, None)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Plays the Deployment controller for one Deployment: every pod updated, ready, available.
    pub fn roll_out(&self, ns: &str, name: &str) {
        self.update("apps/v1", "deployments", ns, name, mark_rolled_out);
    }

    /// Changes a stored object in place (e.g. the Deployment controller writing status).
    pub fn update(
        &self,
        api_version: &str,
        resource: &str,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) {
        let key = ObjectKey::new(
            &path::prefix_of_api_version(api_version),
            resource,
            ns,
            name,
        );
        let mut st = self.lock();
        if let Some(old) = st.store.get(&key).cloned() {
            let mut obj = old.clone();
            f(&mut obj);
            st.store.write(key, obj, Some(&old));
        }
    }

    /// Removes an object at once, finalizers ignored; its dependents are garbage collected.
    pub fn remove(&self, api_version: &str, resource: &str, ns: &str, name: &str) {
        let key = ObjectKey::new(
            &path::prefix_of_api_version(api_version),
            resource,
            ns,
            name,
        );
        self.lock().store.remove(&key);
    }

    /// The requests so far (the most recent ones after [`FakeApi::set_request_log_limit`]).
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.iter().cloned().collect()
    }

    /// Keeps only the `limit` most recent requests (and their decisions) in the request log;
    /// 0 keeps none. Unbounded by default, for tests that check every request.
    pub fn set_request_log_limit(&self, limit: usize) {
        let mut st = self.lock();
        st.request_log_limit = limit;
        let excess = st.requests.len().saturating_sub(limit);
        st.requests.drain(..excess);
    }

    /// The requests authorization refused.
    pub fn denied(&self) -> Vec<Recorded> {
        self.lock()
            .requests
            .iter()
            .filter(|r| !r.allowed())
            .cloned()
            .collect()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    /// Plays the Deployment controller: stored Deployments are rolled out at once.
    pub fn auto_roll_out(&self) {
        self.add_mutator(Arc::new(|key: &ObjectKey, obj: &mut Value| {
            if key.resource == "deployments" {
                mark_rolled_out(obj);
            }
        }));
    }

    /// Adds a hook that sees every object just before it is stored (a synchronous controller).
    pub fn add_mutator(&self, m: Mutator) {
        self.lock().store.add_mutator(m);
    }

    /// Every future change (for asynchronous controllers).
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.lock().store.subscribe()
    }

    /// Forgets the change history: watches from an older resourceVersion get 410 Gone.
    pub fn compact(&self) {
        self.lock().store.compact();
    }

    /// Keeps only `limit` changes for watches to resume from.
    pub fn set_history_limit(&self, limit: usize) {
        self.lock().store.set_history_limit(limit);
    }

    /// How many changes a live watch may fall behind by before its stream ends (the client
    /// resumes from the history); call it before serving.
    pub fn set_live_buffer(&self, capacity: usize) {
        self.lock().store.set_live_buffer(capacity);
    }

    /// Keeps only recent changes and no request log (long benchmarks).
    pub fn lean(&self) {
        let mut st = self.lock();
        st.request_log_limit = 0;
        st.requests.clear();
        st.store.set_history_limit(20_000);
    }

    /// Object counts of a resource by `status.phase` (benchmarks).
    pub fn phases(&self, resource: &str) -> std::collections::BTreeMap<String, usize> {
        let mut out = std::collections::BTreeMap::new();
        for (k, v) in self.lock().store.all() {
            if k.resource == resource {
                let phase = v["status"]["phase"].as_str().unwrap_or("-").to_owned();
                *out.entry(phase).or_default() += 1;
            }
        }
        out
    }

    /// Changes every stored object of a resource in place (benchmarks).
    pub fn update_all(&self, api_version: &str, resource: &str, f: impl Fn(&mut Value)) {
        let p = path::prefix_of_api_version(api_version);
        let mut st = self.lock();
        let keys: Vec<ObjectKey> = st
            .store
            .list(&p, resource, None)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            if let Some(old) = st.store.get(&key).cloned() {
                let mut obj = old.clone();
                f(&mut obj);
                st.store.write(key, obj, Some(&old));
            }
        }
    }

    /// Answers the next `method` request whose path contains `path` with `code`.
    pub fn fail_next(&self, method: Method, path: &str, code: u16) {
        self.lock().failures.push((method, path.to_owned(), code));
    }

    /// Answers one HTTP request (the body already read).
    pub fn respond(&self, parts: http::request::Parts, body: Bytes) -> Response<ResponseBody> {
        let text = |name: header::HeaderName| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let req = Incoming {
            method: parts.method.clone(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().unwrap_or_default().to_owned(),
            content_type: text(header::CONTENT_TYPE),
            accept: text(header::ACCEPT),
            user_agent: text(header::USER_AGENT),
            authorization: parts
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body,
        };
        let mut st = self.lock();
        let parsed = if req.content_type.contains("protobuf") || req.content_type.contains("cbor") {
            Err(ApiError::UnsupportedMediaType(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {})",
                req.content_type
            )))
        } else {
            parse_body(&req.body, &req.content_type)
        };
        let who = st.authenticate(req.authorization.as_deref());
        if st.request_log_limit > 0 {
            if st.requests.len() >= st.request_log_limit {
                st.requests.pop_front();
            }
            st.requests.push_back(Recorded {
                method: req.method.clone(),
                path: req.path.clone(),
                query: req.query.clone(),
                content_type: req.content_type.clone(),
                body: parsed.clone().ok().flatten(),
                user: who.as_ref().map(|w| w.user.clone()).unwrap_or_default(),
                authorization: Vec::new(),
            });
        }
        if let Some(i) = st
            .failures
            .iter()
            .position(|(m, p, _)| *m == req.method && req.path.contains(p.as_str()))
        {
            let (_, _, code) = st.failures.remove(i);
            return error_response(&ApiError::Injected(code));
        }
        let result = who.and_then(|who| {
            let body = parsed?;
            st.handle(&req, body, &who)
        });
        drop(st);
        match result {
            Ok(Reply::Json(code, v)) => json_response(code, &v),
            Ok(Reply::Text(text)) => Response::builder()
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Full::new(Bytes::from(text)).boxed_unsync())
                .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed_unsync())),
            Ok(Reply::Watch(spec)) => watch_response(*spec),
            Err(e @ ApiError::Expired { .. }) => expired_watch(&e),
            Err(e) => error_response(&e),
        }
    }
}

impl tower::Service<Request<kube::client::Body>> for FakeApi {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<ResponseBody>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<kube::client::Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let bytes = body.collect_bytes().await.unwrap_or_default();
            Ok(this.respond(parts, bytes))
        })
    }
}
