//! Cluster DNS for HTTP clients: an HTTP forward proxy on 127.0.0.1 that resolves a request's
//! host with [`Resolver`] (`NAME.NAMESPACE.svc[.cluster.local]` → the Service's ClusterIP, IP
//! literals and `localhost` as they are) and forwards it. Processes started by the cluster get
//! it as `http_proxy`/`HTTP_PROXY` (with `NO_PROXY` for loopback), so a FeedRollout's default
//! Prometheus address `http://prometheus-operated.monitoring.svc:9090` reaches the cluster's
//! Prometheus through the Service of that name. Only plain `http://` URLs: `CONNECT` (HTTPS
//! through a proxy) is refused with 405.

use std::net::SocketAddr;

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::forward::{self, ProxyBody, Upstream};
use super::services::Resolver;

/// The running proxy; it stops when dropped.
pub struct DnsProxy {
    address: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for DnsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DnsProxy {
    /// Listens on a free port of 127.0.0.1.
    pub async fn start(resolver: Resolver) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let client = forward::upstream();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let (resolver, client) = (resolver.clone(), client.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let (resolver, client) = (resolver.clone(), client.clone());
                        async move {
                            Ok::<_, std::convert::Infallible>(proxy(req, &resolver, &client).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(Self { address, task })
    }

    /// `http://127.0.0.1:PORT`, the value for `http_proxy`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

async fn proxy(req: Request<Incoming>, resolver: &Resolver, client: &Upstream) -> Response {
    if req.method() == Method::CONNECT {
        return forward::answer(
            StatusCode::METHOD_NOT_ALLOWED,
            "CONNECT is not supported: only http:// URLs go through the cluster DNS proxy".into(),
        );
    }
    let (Some(host), port) = (req.uri().host(), req.uri().port_u16()) else {
        return forward::answer(
            StatusCode::BAD_REQUEST,
            "a proxy request needs an absolute URL (http://host/...)".into(),
        );
    };
    let Some(ip) = resolver.resolve(host) else {
        return forward::answer(
            StatusCode::BAD_GATEWAY,
            format!("{host}: no such Service (names are NAME.NAMESPACE.svc[.cluster.local])"),
        );
    };
    let target = SocketAddr::from((ip, port.unwrap_or(80)));
    forward::forward(client, req, target).await
}

type Response = http::Response<ProxyBody>;
