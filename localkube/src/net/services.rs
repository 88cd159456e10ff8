//! The Services controller: what the API server's ClusterIP allocator, the EndpointSlice
//! controller and kube-proxy do, on loopback.
//!
//! - A [`Mutator`] gives every Service (not headless, not `ExternalName`) a ClusterIP from
//!   `127.20.0.0/16` when it is stored ([`super::ipam`]); a Service keeps its address for its
//!   life, a requested `spec.clusterIP` in the range is honoured.
//! - On every change to a Service, Pod or EndpointSlice the controller recomputes the
//!   EndpointSlices of Services with a selector ([`super::endpoints::endpoint_slices`]) and
//!   writes them (an unchanged slice is no write), then serves each Service port on
//!   `ClusterIP:port` with a TCP proxy that balances connections round-robin over the port's
//!   ready endpoints ([`super::endpoints::backends`]). With no ready endpoint a connection is
//!   reset at once, as kube-proxy rejects it.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::balance::RoundRobin;
use super::endpoints::{self, MANAGED_BY, MANAGED_BY_LABEL, ServiceView};
use super::ipam::{Allocator, SERVICE_RANGE};
use super::lock;
use crate::server::FakeApi;
use crate::store::{Mutator, ObjectKey};

/// How long a proxied connection may take to reach its endpoint before the client's
/// connection is reset.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether a Service gets a ClusterIP: not `ExternalName`, not headless (`clusterIP: None`).
fn wants_cluster_ip(svc: &Value) -> bool {
    svc["spec"]["type"] != "ExternalName" && svc["spec"]["clusterIP"] != "None"
}

/// One Service port as served: its address and the endpoints it balances over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedPort {
    /// `ClusterIP:port`.
    pub address: SocketAddr,
    /// The ready endpoints, in the order they are balanced over.
    pub endpoints: Vec<SocketAddr>,
    /// Why the port is not served (its address could not be bound), if so.
    pub error: Option<String>,
}

struct Listener {
    backends: watch::Sender<Arc<Vec<SocketAddr>>>,
    task: JoinHandle<()>,
    error: Option<String>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Default)]
struct State {
    /// By `namespace/name`, then port.
    listeners: HashMap<String, BTreeMap<u16, Listener>>,
}

/// The running Services controller; its listeners close when it is dropped.
pub struct Services {
    ips: Arc<Mutex<Allocator>>,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for Services {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether a change concerns the Services controller.
fn relevant(key: &ObjectKey) -> bool {
    matches!(
        (key.prefix.as_str(), key.resource.as_str()),
        ("/api/v1", "services" | "pods") | ("/apis/discovery.k8s.io/v1", "endpointslices")
    )
}

impl Services {
    /// Installs the ClusterIP allocator on `api` and starts the controller (needs a Tokio
    /// runtime). Services stored before this call get their address at their next write.
    pub fn start(api: &FakeApi) -> Self {
        let ips = Arc::new(Mutex::new(Allocator::random_start(SERVICE_RANGE)));
        let allocator = ips.clone();
        let mutator: Mutator = Arc::new(move |key: &ObjectKey, obj: &mut Value| {
            if key.prefix != "/api/v1" || key.resource != "services" || !wants_cluster_ip(obj) {
                return;
            }
            let id = format!("{}/{}", key.namespace, key.name);
            let requested = obj["spec"]["clusterIP"]
                .as_str()
                .and_then(|s| s.parse::<Ipv4Addr>().ok());
            let mut ips = lock(&allocator);
            let ip = match ips.allocate(&id, requested) {
                Ok(ip) => ip,
                Err(e) => {
                    tracing::warn!(service = %id, error = %e, "requested clusterIP not given; allocating one");
                    match ips.allocate(&id, None) {
                        Ok(ip) => ip,
                        Err(e) => {
                            tracing::error!(service = %id, error = %e, "no ClusterIP left");
                            return;
                        }
                    }
                }
            };
            let spec = &mut obj["spec"];
            spec["clusterIP"] = json!(ip.to_string());
            spec["clusterIPs"] = json!([ip.to_string()]);
            spec["ipFamilies"] = json!(["IPv4"]);
            if spec["type"].is_null() {
                spec["type"] = json!("ClusterIP");
            }
        });
        api.add_mutator(mutator);
        let state = Arc::new(Mutex::new(State::default()));
        let task = {
            let (api2, ips, state) = (api.clone(), ips.clone(), state.clone());
            tokio::spawn(super::resync_on_changes(api.clone(), relevant, move || {
                let (api, ips, state) = (api2.clone(), ips.clone(), state.clone());
                async move { reconcile(&api, &ips, &state) }
            }))
        };
        Self { ips, state, task }
    }

    /// The ports served for a Service, by port number (empty when it is unknown or not
    /// served yet).
    pub fn served(&self, namespace: &str, name: &str) -> BTreeMap<u16, ServedPort> {
        let key = format!("{namespace}/{name}");
        // One lock at a time (the controller takes them in its own order).
        let ip = lock(&self.ips).get(&key).unwrap_or(Ipv4Addr::UNSPECIFIED);
        let state = lock(&self.state);
        state
            .listeners
            .get(&key)
            .map(|ports| {
                ports
                    .iter()
                    .map(|(port, l)| {
                        (
                            *port,
                            ServedPort {
                                address: SocketAddr::from((ip, *port)),
                                endpoints: l.backends.borrow().as_ref().clone(),
                                error: l.error.clone(),
                            },
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The ClusterIP of a Service.
    pub fn cluster_ip(&self, namespace: &str, name: &str) -> Option<Ipv4Addr> {
        lock(&self.ips).get(&format!("{namespace}/{name}"))
    }

    /// A [`Resolver`] for cluster DNS names of Services.
    pub fn resolver(&self) -> Resolver {
        Resolver {
            ips: self.ips.clone(),
        }
    }
}

/// Cluster DNS for Services: `NAME.NAMESPACE.svc[.cluster.local]` → ClusterIP (what a pod's
/// resolver answers). Cheap to clone.
#[derive(Clone)]
pub struct Resolver {
    ips: Arc<Mutex<Allocator>>,
}

/// The Service a cluster DNS name names: `NAME.NAMESPACE.svc` or
/// `NAME.NAMESPACE.svc.cluster.local` (a trailing dot allowed), as `(namespace, name)`.
pub fn service_of_host(host: &str) -> Option<(&str, &str)> {
    let host = host.strip_suffix('.').unwrap_or(host);
    let rest = host
        .strip_suffix(".svc.cluster.local")
        .or_else(|| host.strip_suffix(".svc"))?;
    let (name, namespace) = rest.split_once('.')?;
    (!name.is_empty() && !namespace.is_empty() && !namespace.contains('.'))
        .then_some((namespace, name))
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver").finish_non_exhaustive()
    }
}

impl Resolver {
    /// The address of a host: an IPv4 literal as is, a Service's cluster DNS name as its
    /// ClusterIP, `localhost` as 127.0.0.1; `None` otherwise.
    pub fn resolve(&self, host: &str) -> Option<Ipv4Addr> {
        if let Ok(ip) = host.parse::<Ipv4Addr>() {
            return Some(ip);
        }
        if host == "localhost" {
            return Some(Ipv4Addr::LOCALHOST);
        }
        let (namespace, name) = service_of_host(host)?;
        self.service_ip(namespace, name)
    }

    /// The ClusterIP of the Service `namespace/name`.
    pub fn service_ip(&self, namespace: &str, name: &str) -> Option<Ipv4Addr> {
        lock(&self.ips).get(&format!("{namespace}/{name}"))
    }
}

fn reconcile(api: &FakeApi, ips: &Mutex<Allocator>, state: &Mutex<State>) {
    let pods = api.list_all("v1", "pods");
    let mut services = Vec::new();
    for svc in api.list_all("v1", "services") {
        match ServiceView::parse(&svc) {
            Ok(view) => services.push(view),
            Err(e) => tracing::warn!(error = %e, "Service not served"),
        }
    }
    // The EndpointSlice controller.
    let mut slices = api.list_all("discovery.k8s.io/v1", "endpointslices");
    for svc in services.iter().filter(|s| s.selector.is_some()) {
        let desired = endpoints::endpoint_slices(svc, &pods);
        for stale in slices.iter().filter(|s| {
            endpoints::slice_of(svc, s)
                && s["metadata"]["labels"][MANAGED_BY_LABEL] == MANAGED_BY
                && !desired
                    .iter()
                    .any(|d| d["metadata"]["name"] == s["metadata"]["name"])
        }) {
            if let Some(name) = stale["metadata"]["name"].as_str() {
                api.remove(
                    "discovery.k8s.io/v1",
                    "endpointslices",
                    &svc.namespace,
                    name,
                );
            }
        }
        for slice in desired {
            api.put("endpointslices", slice);
        }
    }
    slices = api.list_all("discovery.k8s.io/v1", "endpointslices");
    // Addresses of Services that are gone go back to the pool.
    // One lock at a time: `Services::served` reads the addresses while it holds no state.
    let live: Vec<String> = services.iter().map(ServiceView::key).collect();
    let gone: Vec<String> = lock(state)
        .listeners
        .keys()
        .filter(|k| !live.contains(k))
        .cloned()
        .collect();
    {
        let mut ips = lock(ips);
        for key in gone {
            ips.release(&key);
        }
    }
    // kube-proxy.
    let mut st = lock(state);
    st.listeners
        .retain(|key, _| services.iter().any(|s| &s.key() == key));
    for svc in &services {
        let Some(ip) = svc.cluster_ip else {
            st.listeners.remove(&svc.key());
            continue;
        };
        let backends = endpoints::backends(svc, &slices);
        let ports = st.listeners.entry(svc.key()).or_default();
        ports.retain(|port, _| backends.contains_key(port));
        for (port, addrs) in backends {
            match ports.get_mut(&port) {
                Some(l) if l.error.is_none() => {
                    l.backends.send_if_modified(|current| {
                        let changed = current.as_ref() != &addrs;
                        if changed {
                            *current = Arc::new(addrs.clone());
                        }
                        changed
                    });
                }
                _ => {
                    let address = SocketAddr::from((ip, port));
                    ports.insert(port, listen(address, addrs));
                }
            }
        }
    }
}

/// Binds `address` and proxies every accepted connection to the next of the backends.
fn listen(address: SocketAddr, backends: Vec<SocketAddr>) -> Listener {
    let (tx, rx) = watch::channel(Arc::new(backends));
    let std_listener = std::net::TcpListener::bind(address).and_then(|l| {
        l.set_nonblocking(true)?;
        Ok(l)
    });
    let listener = std_listener.and_then(TcpListener::from_std);
    match listener {
        Ok(listener) => Listener {
            backends: tx,
            task: tokio::spawn(accept(listener, rx)),
            error: None,
        },
        Err(e) => {
            tracing::error!(%address, error = %e, "cannot serve the Service port");
            Listener {
                backends: tx,
                task: tokio::spawn(async {}),
                error: Some(format!("cannot bind {address}: {e}")),
            }
        }
    }
}

async fn accept(listener: TcpListener, backends: watch::Receiver<Arc<Vec<SocketAddr>>>) {
    let rr = Arc::new(RoundRobin::default());
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let list = backends.borrow().clone();
        let target = rr.pick(list.len()).map(|i| list[i]);
        tokio::spawn(proxy(client, target));
    }
}

/// Resets the client's connection (RST, not FIN): what a client of a Service without ready
/// endpoints sees.
fn reset(client: TcpStream) {
    if let Err(e) = client.set_zero_linger() {
        tracing::debug!(error = %e, "cannot set SO_LINGER");
    }
    drop(client);
}

async fn proxy(mut client: TcpStream, target: Option<SocketAddr>) {
    let Some(target) = target else {
        return reset(client);
    };
    let upstream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await;
    let mut upstream = match upstream {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%target, error = %e, "endpoint refused the connection");
            return reset(client);
        }
        Err(_) => {
            tracing::debug!(%target, "endpoint did not accept in time");
            return reset(client);
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    // Either side closing ends the copy; errors are the peers' business.
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}
