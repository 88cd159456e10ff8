//! Forwarding one HTTP request to an upstream address (keep-alive connections pooled), and
//! the answers a proxy gives on its own.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Bodies of proxied answers.
pub type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// A pooled HTTP/1.1 client.
pub type Upstream = Client<HttpConnector, Incoming>;

/// A new pooled client.
pub fn upstream() -> Upstream {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(std::time::Duration::from_secs(2)));
    Client::builder(TokioExecutor::new()).build(connector)
}

/// A plain-text answer of the proxy itself (`x-localkube-proxy: 1` marks it).
pub fn answer(status: StatusCode, text: String) -> Response<ProxyBody> {
    let mut r = Response::new(
        Full::new(Bytes::from(text + "\n"))
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert("x-localkube-proxy", header::HeaderValue::from_static("1"));
    r
}

/// Sends `req` to `target` (its path and query kept, its Host header kept) and returns the
/// answer; a connection failure is a 503 from the proxy.
pub async fn forward(
    client: &Upstream,
    mut req: Request<Incoming>,
    target: SocketAddr,
) -> Response<ProxyBody> {
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let uri = match Uri::builder()
        .scheme("http")
        .authority(target.to_string())
        .path_and_query(path)
        .build()
    {
        Ok(u) => u,
        Err(e) => return answer(StatusCode::BAD_REQUEST, format!("bad request target: {e}")),
    };
    *req.uri_mut() = uri;
    // Hop-by-hop headers are the proxy's own.
    for h in ["proxy-connection", "proxy-authorization"] {
        req.headers_mut().remove(h);
    }
    match client.request(req).await {
        Ok(r) => r.map(BodyExt::boxed),
        Err(e) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("upstream {target} unavailable: {e}"),
        ),
    }
}
