//! An in-memory Kubernetes API server behind a `tower::Service`, for a real `kube::Client`.
//!
//! It keeps objects by (API prefix, resource, namespace, name), assigns resourceVersions, uids
//! and generations (bumped when anything but metadata and status changes), and answers get,
//! list (with equality label selectors), create, delete (finalizers honoured: a deletion
//! timestamp is set and the object goes when its last finalizer is removed; list also takes
//! `metadata.name`/`metadata.namespace` field selectors) and patch:
//! server-side apply (merged into the object; on the `status` subresource only the status is
//! replaced, elsewhere the status is kept; a Lease held by another holder conflicts), JSON merge
//! patch (strategic merge patch is treated as one) and JSON patch; `/version`. Every request is
//! recorded. Watches stream every change after the requested resourceVersion (from a history of
//! changes, then live), so a kube-runtime Controller runs against it.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use http::{Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use kube::client::Body;
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// Response bodies: whole JSON documents, or a watch stream.
type ResponseBody = UnsyncBoxBody<Bytes, Infallible>;

/// A recorded request.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Option<Value>,
}

/// Where an object lives: `("/apis/apps/v1", "deployments", ns, name)`.
pub type Key = (String, String, String, String);

/// One change: resourceVersion, where, ADDED/MODIFIED/DELETED, the object.
type Change = (u64, Key, &'static str, Value);

struct State {
    objects: BTreeMap<Key, Value>,
    revision: u64,
    requests: Vec<Recorded>,
    /// Answer the next request whose method and path match with this status code.
    failures: Vec<(Method, String, u16)>,
    /// Every change, for watches starting at an older resourceVersion.
    history: Vec<Change>,
    changes: broadcast::Sender<Change>,
    /// Play the Deployment controller: every stored Deployment is at once rolled out.
    auto_roll_out: bool,
    /// Keep a short history and no request log (long benchmarks).
    no_history: bool,
}

impl Default for State {
    fn default() -> Self {
        Self {
            objects: BTreeMap::new(),
            revision: 0,
            requests: Vec::new(),
            failures: Vec::new(),
            history: Vec::new(),
            changes: broadcast::channel(65536).0,
            auto_roll_out: false,
            no_history: false,
        }
    }
}

/// The fake API server; clones share the state.
#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

/// A parsed resource path.
struct Target {
    prefix: String,
    resource: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (prefix, rest) = match parts.first() {
        Some(&"api") if parts.len() >= 2 => (format!("/api/{}", parts[1]), &parts[2..]),
        Some(&"apis") if parts.len() >= 3 => {
            (format!("/apis/{}/{}", parts[1], parts[2]), &parts[3..])
        }
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        _ => (None, rest),
    };
    let resource = rest.first()?.to_string();
    Some(Target {
        prefix,
        resource,
        namespace,
        name: rest.get(1).map(|s| s.to_string()),
        subresource: rest.get(2).map(|s| s.to_string()),
    })
}

fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

/// RFC 7386 merge of `patch` into `target` (null removes, objects merge, the rest replaces).
pub fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

fn labels_match(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let Some((k, v)) = term.split_once('=') else {
            return obj["metadata"]["labels"].get(term).is_some();
        };
        obj["metadata"]["labels"][k].as_str() == Some(v.trim_start_matches('='))
    })
}

/// Equality field selectors on `metadata.name` and `metadata.namespace` (the ones used here).
fn fields_match(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let Some((k, v)) = term.split_once('=') else {
            return false;
        };
        let v = v.trim_start_matches('=');
        match k {
            "metadata.name" => obj["metadata"]["name"].as_str() == Some(v),
            "metadata.namespace" => obj["metadata"]["namespace"].as_str() == Some(v),
            _ => false,
        }
    })
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl State {
    fn bump(&mut self) -> String {
        self.revision += 1;
        self.revision.to_string()
    }

    /// Stores `obj` at `key`: new resourceVersion, generation bumped on a spec change, object
    /// removed when it is deleting and has no finalizers left.
    fn store(&mut self, key: Key, mut obj: Value, old: Option<&Value>) -> Value {
        if let Some(old) = old {
            let strip = |v: &Value| {
                let mut v = v.clone();
                if let Some(m) = v.as_object_mut() {
                    m.remove("metadata");
                    m.remove("status");
                }
                v
            };
            let mut generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
            if strip(old) != strip(&obj) {
                generation += 1;
            }
            obj["metadata"]["generation"] = json!(generation);
            obj["metadata"]["uid"] = old["metadata"]["uid"].clone();
            obj["metadata"]["creationTimestamp"] = old["metadata"]["creationTimestamp"].clone();
            if let Some(d) = old["metadata"].get("deletionTimestamp") {
                obj["metadata"]["deletionTimestamp"] = d.clone();
            }
            obj["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
            if &obj == old {
                return obj;
            }
        } else {
            obj["metadata"]["generation"] = json!(1);
            obj["metadata"]["uid"] = json!(format!("uid-{}-{}", key.3, self.revision + 1));
            obj["metadata"]["creationTimestamp"] = json!("2027-01-15T08:00:00Z");
        }
        obj["metadata"]["name"] = json!(key.3);
        if !key.2.is_empty() {
            obj["metadata"]["namespace"] = json!(key.2);
        }
        obj["metadata"]["resourceVersion"] = json!(self.bump());
        if self.auto_roll_out && key.1 == "deployments" {
            mark_rolled_out(&mut obj);
        }
        let deleting = obj["metadata"].get("deletionTimestamp").is_some();
        let finalizers = obj["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if deleting && !finalizers {
            self.objects.remove(&key);
            self.changed(key, "DELETED", obj.clone());
        } else {
            let kind = if old.is_some() { "MODIFIED" } else { "ADDED" };
            self.objects.insert(key.clone(), obj.clone());
            self.changed(key, kind, obj.clone());
        }
        obj
    }

    fn changed(&mut self, key: Key, kind: &'static str, obj: Value) {
        let change = (self.revision, key, kind, obj);
        self.history.push(change.clone());
        if self.no_history && self.history.len() > 20_000 {
            self.history.drain(..10_000);
        }
        let _ = self.changes.send(change);
    }

    fn delete_now(&mut self, key: &Key) -> Option<Value> {
        let old = self.objects.remove(key)?;
        let mut gone = old.clone();
        gone["metadata"]["resourceVersion"] = json!(self.bump());
        self.changed(key.clone(), "DELETED", gone);
        Some(old)
    }

    fn handle(
        &mut self,
        method: &Method,
        path: &str,
        query: &str,
        ct: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        if let Some(i) = self
            .failures
            .iter()
            .position(|(m, p, _)| m == method && path.contains(p.as_str()))
        {
            let (_, _, code) = self.failures.remove(i);
            return status(code, "Injected", "injected failure");
        }
        if path == "/version" {
            return (
                200,
                json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-fake",
                       "gitCommit": "", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                       "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"}),
            );
        }
        let Some(t) = parse_path(path) else {
            return status(404, "NotFound", "unknown path");
        };
        let ns = t.namespace.clone().unwrap_or_default();
        match (method.clone(), t.name.clone()) {
            (Method::GET, None) => {
                if query_param(query, "watch").as_deref() == Some("true") {
                    return status(
                        405,
                        "MethodNotAllowed",
                        "the fake API server has no watches",
                    );
                }
                let selector = query_param(query, "labelSelector").unwrap_or_default();
                let fields = query_param(query, "fieldSelector").unwrap_or_default();
                let items: Vec<Value> = self
                    .objects
                    .iter()
                    .filter(|((p, r, n, _), _)| {
                        *p == t.prefix && *r == t.resource && (t.namespace.is_none() || *n == ns)
                    })
                    .map(|(_, v)| v.clone())
                    .filter(|v| labels_match(v, &selector) && fields_match(v, &fields))
                    .collect();
                (
                    200,
                    json!({"apiVersion": "v1", "kind": "List",
                             "metadata": {"resourceVersion": self.revision.to_string()}, "items": items}),
                )
            }
            (Method::GET, Some(name)) => {
                match self.objects.get(&(t.prefix, t.resource, ns, name.clone())) {
                    Some(v) => (200, v.clone()),
                    None => status(404, "NotFound", &format!("{name} not found")),
                }
            }
            (Method::POST, None) => {
                let Some(body) = body else {
                    return status(400, "BadRequest", "no body");
                };
                let name = body["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let key = (t.prefix, t.resource, ns, name.clone());
                if self.objects.contains_key(&key) {
                    return status(409, "AlreadyExists", &format!("{name} already exists"));
                }
                (201, self.store(key, body, None))
            }
            (Method::DELETE, Some(name)) => {
                let key = (t.prefix, t.resource, ns, name.clone());
                let Some(old) = self.objects.get(&key).cloned() else {
                    return status(404, "NotFound", &format!("{name} not found"));
                };
                let finalizers = old["metadata"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| !f.is_empty());
                if finalizers {
                    let mut obj = old.clone();
                    obj["metadata"]["deletionTimestamp"] = json!("2027-01-15T09:00:00Z");
                    (200, self.store(key, obj, Some(&old)))
                } else {
                    self.delete_now(&key);
                    (200, old)
                }
            }
            (Method::PATCH, Some(name)) => {
                let Some(body) = body else {
                    return status(400, "BadRequest", "no body");
                };
                let key = (t.prefix, t.resource, ns, name.clone());
                let old = self.objects.get(&key).cloned();
                let on_status = t.subresource.as_deref() == Some("status");
                let mut obj = match (&old, ct) {
                    (Some(o), _) => o.clone(),
                    (None, c) if c.starts_with("application/apply-patch") && !on_status => {
                        json!({"metadata": {}})
                    }
                    (None, _) => return status(404, "NotFound", &format!("{name} not found")),
                };
                // Server-side apply conflicts, for the one field that matters here: a Lease held
                // by someone else is not taken without force.
                let held_by = |v: &Value| v["spec"]["holderIdentity"].as_str().map(str::to_owned);
                if ct.starts_with("application/apply-patch")
                    && key.1 == "leases"
                    && !query.contains("force=true")
                    && let (Some(holder), Some(wanted)) =
                        (old.as_ref().and_then(held_by), held_by(&body))
                    && holder != wanted
                {
                    return status(
                        409,
                        "Conflict",
                        &format!(
                            "Apply failed with 1 conflict: conflict with \"{holder}\": .spec.holderIdentity"
                        ),
                    );
                }
                if ct.starts_with("application/apply-patch") {
                    if on_status {
                        obj["status"] = body.get("status").cloned().unwrap_or(Value::Null);
                    } else {
                        let keep = obj.get("status").cloned();
                        let mut applied = body.clone();
                        if let Some(m) = applied.as_object_mut() {
                            m.remove("status");
                        }
                        // The applier owns what it sends: spec-like fields are replaced.
                        for (k, v) in applied.as_object().into_iter().flatten() {
                            if k == "metadata" {
                                merge(&mut obj["metadata"], v);
                            } else {
                                obj[k] = v.clone();
                            }
                        }
                        if let Some(s) = keep {
                            obj["status"] = s;
                        }
                    }
                } else if ct.starts_with("application/merge-patch")
                    || ct.starts_with("application/strategic-merge-patch")
                {
                    if on_status {
                        merge(&mut obj["status"], &body["status"]);
                    } else {
                        merge(&mut obj, &body);
                    }
                } else if ct.starts_with("application/json-patch") {
                    let mut patch: json_patch::Patch = match serde_json::from_value(body) {
                        Ok(p) => p,
                        Err(e) => return status(400, "BadRequest", &e.to_string()),
                    };
                    // Like the API server: `test` of a missing path against null passes.
                    patch.0.retain(|op| match op {
                        json_patch::PatchOperation::Test(t) => {
                            !(t.value.is_null() && obj.pointer(t.path.as_str()).is_none())
                        }
                        _ => true,
                    });
                    if let Err(e) = json_patch::patch(&mut obj, &patch) {
                        return status(422, "Invalid", &e.to_string());
                    }
                } else {
                    return status(415, "UnsupportedMediaType", ct);
                }
                (200, self.store(key, obj, old.as_ref()))
            }
            _ => status(405, "MethodNotAllowed", "not supported by the fake"),
        }
    }
}

impl FakeApi {
    /// A new empty API server.
    pub fn new() -> Self {
        Self::default()
    }

    /// A `kube::Client` talking to this server.
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.clone(), "default")
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Creates or replaces an object (as a controller or kubectl would), keyed by its
    /// apiVersion, `resource` (plural), namespace and name; returns it as stored.
    pub fn put(&self, resource: &str, obj: Value) -> Value {
        let key = key_of(resource, &obj);
        let mut st = self.state();
        let old = st.objects.get(&key).cloned();
        st.store(key, obj, old.as_ref())
    }

    /// The stored object.
    pub fn get(&self, api_version: &str, resource: &str, ns: &str, name: &str) -> Option<Value> {
        self.state()
            .objects
            .get(&(
                prefix(api_version),
                resource.to_owned(),
                ns.to_owned(),
                name.to_owned(),
            ))
            .cloned()
    }

    /// Every stored object of a resource in a namespace.
    pub fn list(&self, api_version: &str, resource: &str, ns: &str) -> Vec<Value> {
        let p = prefix(api_version);
        self.state()
            .objects
            .iter()
            .filter(|((a, r, n, _), _)| *a == p && r == resource && n == ns)
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
        let key = (
            prefix(api_version),
            resource.to_owned(),
            ns.to_owned(),
            name.to_owned(),
        );
        let mut st = self.state();
        if let Some(old) = st.objects.get(&key).cloned() {
            let mut obj = old.clone();
            f(&mut obj);
            st.store(key, obj, Some(&old));
        }
    }

    /// Removes an object without finalizers or questions (garbage collection, kubectl).
    pub fn remove(&self, api_version: &str, resource: &str, ns: &str, name: &str) {
        self.state().objects.remove(&(
            prefix(api_version),
            resource.to_owned(),
            ns.to_owned(),
            name.to_owned(),
        ));
    }

    /// The requests so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state().requests.clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }

    /// Plays the Deployment controller: stored Deployments are rolled out at once.
    pub fn auto_roll_out(&self) {
        self.state().auto_roll_out = true;
    }

    /// Keeps only recent changes and no request log (long benchmarks).
    pub fn lean(&self) {
        let mut st = self.state();
        st.no_history = true;
        st.requests.clear();
    }

    /// Object counts of a resource by `status.phase` (benchmarks).
    pub fn phases(&self, resource: &str) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for ((_, r, _, _), v) in &self.state().objects {
            if r == resource {
                let phase = v["status"]["phase"].as_str().unwrap_or("-").to_owned();
                *out.entry(phase).or_default() += 1;
            }
        }
        out
    }

    /// Changes every stored object of a resource in place (benchmarks).
    pub fn update_all(&self, api_version: &str, resource: &str, f: impl Fn(&mut Value)) {
        let p = prefix(api_version);
        let mut st = self.state();
        let keys: Vec<Key> = st
            .objects
            .keys()
            .filter(|(a, r, _, _)| *a == p && r == resource)
            .cloned()
            .collect();
        for key in keys {
            if let Some(old) = st.objects.get(&key).cloned() {
                let mut obj = old.clone();
                f(&mut obj);
                st.store(key, obj, Some(&old));
            }
        }
    }

    /// Answers the next `method` request whose path contains `path` with `code`.
    pub fn fail_next(&self, method: Method, path: &str, code: u16) {
        self.state().failures.push((method, path.to_owned(), code));
    }
}

fn prefix(api_version: &str) -> String {
    if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    }
}

fn key_of(resource: &str, obj: &Value) -> Key {
    (
        prefix(obj["apiVersion"].as_str().unwrap_or("v1")),
        resource.to_owned(),
        obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// Whether a change belongs to a watch of `t` with `selector`.
fn watched(change: &Change, t: &Target, selector: &str) -> bool {
    let (_, (p, r, n, _), _, obj) = change;
    *p == t.prefix
        && *r == t.resource
        && t.namespace.as_ref().is_none_or(|ns| ns == n)
        && labels_match(obj, selector)
}

impl FakeApi {
    /// A watch: changes after `resourceVersion` from the history, then live ones.
    fn watch(&self, t: Target, query: &str) -> Response<ResponseBody> {
        let since: u64 = query_param(query, "resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let selector = query_param(query, "labelSelector").unwrap_or_default();
        let (backlog, rx) = {
            let st = self.state();
            let backlog: Vec<Change> = st
                .history
                .iter()
                .filter(|c| c.0 > since && watched(c, &t, &selector))
                .cloned()
                .collect();
            (backlog, st.changes.subscribe())
        };
        let live = futures::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(c) => return Some((c, rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .filter(move |c| std::future::ready(watched(c, &t, &selector)));
        let lines = futures::stream::iter(backlog)
            .chain(live)
            .map(|(_, _, kind, obj)| {
                let mut line =
                    serde_json::to_vec(&json!({"type": kind, "object": obj})).unwrap_or_default();
                line.push(b'\n');
                Ok::<_, Infallible>(Frame::data(Bytes::from(line)))
            });
        Response::builder()
            .status(StatusCode::OK)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(StreamBody::new(lines).boxed_unsync())
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed_unsync()))
    }
}

impl tower::Service<Request<Body>> for FakeApi {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<ResponseBody>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let bytes = body.collect_bytes().await.unwrap_or_default();
            let body: Option<Value> = if bytes.is_empty() {
                None
            } else {
                serde_json::from_slice(&bytes)
                    .ok()
                    .or_else(|| serde_yaml::from_slice(&bytes).ok())
            };
            let path = parts.uri.path().to_owned();
            let query = parts.uri.query().unwrap_or_default().to_owned();
            let ct = parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            if parts.method == Method::GET
                && query_param(&query, "watch").as_deref() == Some("true")
                && let Some(t) = parse_path(&path).filter(|t| t.name.is_none())
            {
                this.state().requests.push(Recorded {
                    method: parts.method.clone(),
                    path: path.clone(),
                    query: query.clone(),
                    content_type: ct.clone(),
                    body: None,
                });
                return Ok(this.watch(t, &query));
            }
            let (code, answer) = {
                let mut st = this.state();
                let keep_log = !st.no_history;
                if keep_log {
                    st.requests.push(Recorded {
                        method: parts.method.clone(),
                        path: path.clone(),
                        query: query.clone(),
                        content_type: ct.clone(),
                        body: body.clone(),
                    });
                }
                st.handle(&parts.method, &path, &query, &ct, body)
            };
            let bytes = serde_json::to_vec(&answer).unwrap_or_default();
            Ok(Response::builder()
                .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(bytes)).boxed_unsync())
                .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed_unsync())))
        })
    }
}

/// A Deployment's status once the Deployment controller has rolled it out completely.
fn mark_rolled_out(d: &mut Value) {
    let n = d["spec"]["replicas"].clone();
    d["status"] = json!({
        "observedGeneration": d["metadata"]["generation"],
        "replicas": n, "updatedReplicas": n, "readyReplicas": n, "availableReplicas": n,
    });
}
