//! The cluster network on loopback: Services with ClusterIPs and EndpointSlices, a TCP proxy
//! per Service port (kube-proxy), HTTPRoute parents with per-request weighted splits (a
//! Gateway), and cluster DNS names of Services for HTTP clients (an HTTP proxy).
//!
//! ```text
//! ipam.rs       loopback address allocation (pure)
//! endpoints.rs  EndpointSlices of a Service, ready backends per port, targetPort (pure)
//! balance.rs    round-robin and smooth weighted round-robin (pure)
//! routes.rs     HTTPRoute parsing, host and path matching (pure)
//! services.rs   ClusterIP allocator (a mutator), EndpointSlice controller, TCP proxies
//! gateway.rs    a listener per HTTPRoute parent splitting requests by backend weights
//! forward.rs    HTTP forwarding shared by the gateway and the DNS proxy
//! dns_proxy.rs  an HTTP proxy resolving `NAME.NS.svc` names (for processes' HTTP_PROXY)
//! ```

pub mod balance;
pub mod dns_proxy;
pub mod endpoints;
pub mod forward;
pub mod gateway;
pub mod ipam;
pub mod routes;
pub mod services;

use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::broadcast::error::RecvError;

use crate::server::FakeApi;
use crate::store::ObjectKey;

/// Locks a mutex, also one a panicking holder poisoned (the data are plain bookkeeping).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `reconcile` once, then again after every burst of changes for which `relevant` holds,
/// until the API server is gone. A watcher that lagged resyncs (it reads everything anew).
pub(crate) async fn resync_on_changes<F, Fut>(
    api: FakeApi,
    relevant: fn(&ObjectKey) -> bool,
    mut reconcile: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut changes = api.subscribe();
    drop(api);
    loop {
        reconcile().await;
        loop {
            match changes.recv().await {
                Ok(c) if relevant(&c.key) => break,
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => break,
                Err(RecvError::Closed) => return,
            }
        }
        // Everything already queued is covered by the next reconcile.
        while changes.try_recv().is_ok() {}
    }
}
