//! The gateway: every parent (`namespace/name`) that HTTPRoutes attach to gets an address from
//! `127.30.0.0/16` and an HTTP listener on the gateway port, which splits requests — each
//! request, not each connection, so a keep-alive client sees the split — over the matching
//! rule's backends by their exact weights ([`super::balance::SmoothWeighted`]), forwarding to
//! the backend Service's ClusterIP. A rule whose weights are all 0 answers 500, a backend
//! Service without a ClusterIP 500, a request no route matches 404, as Gateway API
//! implementations do.
//!
//! Each route's `status.parents` says whether it was accepted and where it is served
//! (`Accepted` condition message `served on http://IP:PORT`, shown by `kubectl describe
//! httproute`).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::balance::SmoothWeighted;
use super::forward::{self, ProxyBody, Upstream};
use super::ipam::{Allocator, GATEWAY_RANGE};
use super::lock;
use super::routes::{self, ParentKey, Route};
use super::services::Resolver;
use crate::clock;
use crate::server::FakeApi;
use crate::store::ObjectKey;

/// API version of HTTPRoutes.
pub const HTTP_ROUTE_API_VERSION: &str = "gateway.networking.k8s.io/v1";
/// The `controllerName` in route statuses.
pub const CONTROLLER_NAME: &str = "feedroll.dev/localkube-gateway";
/// The port gateway listeners use unless configured otherwise.
pub const DEFAULT_GATEWAY_PORT: u16 = 8080;

/// Routes of one parent, with a weighted picker per (route, rule).
#[derive(Default)]
struct Table {
    routes: Vec<Route>,
    pickers: HashMap<(String, usize), SmoothWeighted>,
}

impl Table {
    /// Replaces the routes; a rule keeps its picker (and so its place in the rotation) while
    /// its weights are unchanged.
    fn set(&mut self, routes: Vec<Route>) {
        let mut pickers = HashMap::new();
        for r in &routes {
            for (i, rule) in r.rules.iter().enumerate() {
                let key = (format!("{}/{}", r.namespace, r.name), i);
                let weights: Vec<u32> = rule.backends.iter().map(|b| b.weight).collect();
                let picker = match self.pickers.remove(&key) {
                    Some(p) if p.weights() == weights.as_slice() => p,
                    _ => SmoothWeighted::new(weights),
                };
                pickers.insert(key, picker);
            }
        }
        self.routes = routes;
        self.pickers = pickers;
    }

    /// The backend for a request: `Ok((namespace, service, port))`, or the answer to give.
    fn choose(
        &mut self,
        host: &str,
        path: &str,
    ) -> Result<(String, String, u16), (StatusCode, String)> {
        let Some((ri, rule)) = routes::select(&self.routes, host, path) else {
            return Err((
                StatusCode::NOT_FOUND,
                format!("no HTTPRoute matches {host}{path}"),
            ));
        };
        let route = &self.routes[ri];
        let key = (format!("{}/{}", route.namespace, route.name), rule);
        let picked = self.pickers.get_mut(&key).and_then(SmoothWeighted::pick);
        let Some(b) = picked.and_then(|i| route.rules[rule].backends.get(i)) else {
            return Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("HTTPRoute {}: no backend with a weight above 0", key.0),
            ));
        };
        Ok((b.namespace.clone(), b.service.clone(), b.port))
    }
}

struct Parent {
    address: Option<SocketAddr>,
    error: Option<String>,
    table: Arc<Mutex<Table>>,
    task: Option<JoinHandle<()>>,
}

impl Drop for Parent {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// The running gateway; its listeners close when it is dropped.
pub struct Gateway {
    parents: Arc<Mutex<BTreeMap<ParentKey, Parent>>>,
    task: JoinHandle<()>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn relevant(key: &ObjectKey) -> bool {
    key.resource == "httproutes"
}

impl Gateway {
    /// Starts serving the parents of the stored HTTPRoutes on `port`, backends resolved by
    /// `resolver` (needs a Tokio runtime).
    pub fn start(api: &FakeApi, resolver: Resolver, port: u16) -> Self {
        let parents = Arc::new(Mutex::new(BTreeMap::new()));
        let ips = Arc::new(Mutex::new(Allocator::random_start(GATEWAY_RANGE)));
        let client = forward::upstream();
        let ctx = Ctx {
            api: api.clone(),
            parents: parents.clone(),
            ips,
            resolver,
            client,
            port,
        };
        let task = tokio::spawn(super::resync_on_changes(api.clone(), relevant, move || {
            let ctx = ctx.clone();
            async move { ctx.reconcile() }
        }));
        Self { parents, task }
    }

    /// Where a parent's routes are served (`None`: no route attaches to it, or its address
    /// could not be bound).
    pub fn address(&self, namespace: &str, name: &str) -> Option<SocketAddr> {
        let key = ParentKey {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        lock(&self.parents).get(&key).and_then(|p| p.address)
    }
}

#[derive(Clone)]
struct Ctx {
    api: FakeApi,
    parents: Arc<Mutex<BTreeMap<ParentKey, Parent>>>,
    ips: Arc<Mutex<Allocator>>,
    resolver: Resolver,
    client: Upstream,
    port: u16,
}

impl Ctx {
    fn reconcile(&self) {
        let mut stored = self.api.list_all(HTTP_ROUTE_API_VERSION, "httproutes");
        // Oldest first: the route that came first wins a conflict, as the API says.
        stored.sort_by(|a, b| {
            let t = |o: &Value| {
                o["metadata"]["creationTimestamp"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            };
            t(a).cmp(&t(b))
        });
        let mut by_parent: BTreeMap<ParentKey, Vec<Route>> = BTreeMap::new();
        let mut statuses = Vec::new();
        for obj in &stored {
            match Route::parse(obj) {
                Ok(route) => {
                    for p in &route.parents {
                        by_parent.entry(p.clone()).or_default().push(route.clone());
                    }
                    statuses.push((obj, Ok(route)));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "HTTPRoute not served");
                    statuses.push((obj, Err(e.problem)));
                }
            }
        }
        {
            let mut parents = lock(&self.parents);
            parents.retain(|k, _| by_parent.contains_key(k));
            let mut ips = lock(&self.ips);
            for (key, routes) in by_parent {
                let parent = parents
                    .entry(key.clone())
                    .or_insert_with(|| self.listen(&key, &mut ips));
                lock(&parent.table).set(routes);
            }
        }
        for (obj, route) in statuses {
            self.write_status(obj, route);
        }
    }

    fn listen(&self, key: &ParentKey, ips: &mut Allocator) -> Parent {
        let table = Arc::new(Mutex::new(Table::default()));
        let ip = match ips.allocate(&key.to_string(), None) {
            Ok(ip) => ip,
            Err(e) => {
                return Parent {
                    address: None,
                    error: Some(e.to_string()),
                    table,
                    task: None,
                };
            }
        };
        let address = SocketAddr::from((ip, self.port));
        let bound = std::net::TcpListener::bind(address)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .and_then(TcpListener::from_std);
        match bound {
            Ok(listener) => {
                let task = tokio::spawn(serve(
                    listener,
                    table.clone(),
                    self.resolver.clone(),
                    self.client.clone(),
                ));
                Parent {
                    address: Some(address),
                    error: None,
                    table,
                    task: Some(task),
                }
            }
            Err(e) => {
                tracing::error!(parent = %key, %address, error = %e, "cannot serve the gateway");
                Parent {
                    address: None,
                    error: Some(format!("cannot bind {address}: {e}")),
                    table,
                    task: None,
                }
            }
        }
    }

    /// Writes `status.parents` when it differs from the stored one (transition times kept).
    fn write_status(&self, obj: &Value, route: Result<Route, String>) {
        let (Some(ns), Some(name)) = (
            obj["metadata"]["namespace"].as_str(),
            obj["metadata"]["name"].as_str(),
        ) else {
            return;
        };
        let parents = lock(&self.parents);
        let refs: Vec<(Value, ParentKey)> = obj["spec"]["parentRefs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let key = ParentKey {
                    namespace: r["namespace"].as_str().unwrap_or(ns).to_owned(),
                    name: r["name"].as_str().unwrap_or_default().to_owned(),
                };
                (r.clone(), key)
            })
            .collect();
        let generation = obj["metadata"]["generation"].clone();
        let old = &obj["status"]["parents"];
        let desired: Vec<Value> = refs
            .iter()
            .enumerate()
            .map(|(i, (r, key))| {
                let (status, reason, message) = match (&route, parents.get(key)) {
                    (Err(problem), _) => ("False", "UnsupportedValue", problem.clone()),
                    (
                        Ok(_),
                        Some(Parent {
                            address: Some(a), ..
                        }),
                    ) => ("True", "Accepted", format!("served on http://{a}")),
                    (Ok(_), Some(Parent { error: Some(e), .. })) => {
                        ("False", "NoResources", e.clone())
                    }
                    (Ok(_), _) => ("False", "Pending", "not served yet".to_owned()),
                };
                let old_cond = &old[i]["conditions"][0];
                let since = if old_cond["status"] == status && old_cond["reason"] == reason {
                    old_cond["lastTransitionTime"].clone()
                } else {
                    json!(clock::now())
                };
                json!({
                    "parentRef": r,
                    "controllerName": CONTROLLER_NAME,
                    "conditions": [{"type": "Accepted", "status": status, "reason": reason,
                        "message": message, "observedGeneration": generation,
                        "lastTransitionTime": since}],
                })
            })
            .collect();
        drop(parents);
        if old.as_array() != Some(&desired) {
            self.api
                .update(HTTP_ROUTE_API_VERSION, "httproutes", ns, name, |o| {
                    o["status"] = json!({"parents": desired});
                });
        }
    }
}

async fn serve(
    listener: TcpListener,
    table: Arc<Mutex<Table>>,
    resolver: Resolver,
    client: Upstream,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let (table, resolver, client) = (table.clone(), resolver.clone(), client.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let (table, resolver, client) = (table.clone(), resolver.clone(), client.clone());
                async move {
                    Ok::<_, std::convert::Infallible>(route(req, &table, &resolver, &client).await)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// The Host of a request without its port.
fn host_of(req: &Request<Incoming>) -> String {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host())
        .unwrap_or_default();
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h.to_owned(),
        _ => host.to_owned(),
    }
}

async fn route(
    req: Request<Incoming>,
    table: &Mutex<Table>,
    resolver: &Resolver,
    client: &Upstream,
) -> Response<ProxyBody> {
    let host = host_of(&req);
    let chosen = lock(table).choose(&host, req.uri().path());
    let (namespace, service, port) = match chosen {
        Ok(b) => b,
        Err((status, text)) => return forward::answer(status, text),
    };
    let Some(ip) = resolver.service_ip(&namespace, &service) else {
        return forward::answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("backend Service {namespace}/{service} has no ClusterIP"),
        );
    };
    forward::forward(client, req, SocketAddr::from((ip, port))).await
}
