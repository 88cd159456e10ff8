//! One keep-alive HTTP/1.1 connection per worker, straight on hyper: no pool, no URL parsing per
//! request, so the client spends as little of the shared CPU as possible.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use thiserror::Error;
use tokio::net::TcpStream;

/// Why a request failed before an HTTP status was received.
#[derive(Debug, Error)]
pub enum ClientError {
    /// TCP connect or socket option failed.
    #[error("connect to {addr}: {source}")]
    Connect {
        /// Target.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// HTTP protocol or connection error.
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built.
    #[error("bad request: {0}")]
    Build(#[from] hyper::http::Error),
    /// No complete answer within [`ONCE_TIMEOUT`] (a one-off request only).
    #[error("no answer from {addr} within {ONCE_TIMEOUT:?}")]
    Timeout {
        /// Target.
        addr: SocketAddr,
    },
}

/// How long [`once`] waits for a complete answer: a server (or proxy) that accepts and never
/// answers is an error, not a hang.
pub const ONCE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A request to send (cheap to clone: the body is shared).
#[derive(Clone, Debug)]
pub struct Req {
    /// Method.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// Body (empty for GET).
    pub body: Bytes,
    /// The complete `Authorization` header value (`Bearer <key>`), if the request carries a key.
    pub authorization: Option<Arc<str>>,
    /// The caller's label, never sent: the drivers hand it back with the request's answer
    /// (`driver::closed_loop_observed`), e.g. the user a feed request was for.
    pub tag: u64,
}

impl Req {
    /// A GET request.
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            body: Bytes::new(),
            authorization: None,
            tag: 0,
        }
    }

    /// A request with a JSON body.
    pub fn json(method: Method, path: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self {
            method,
            path: path.into(),
            body: body.into(),
            authorization: None,
            tag: 0,
        }
    }

    /// The same request labelled `tag` for the driver's observer.
    pub fn tagged(mut self, tag: u64) -> Self {
        self.tag = tag;
        self
    }

    /// The same request sent with `Authorization: Bearer <key>` (`header` is the whole value,
    /// shared between requests; see [`bearer`]).
    pub fn with_authorization(mut self, header: Arc<str>) -> Self {
        self.authorization = Some(header);
        self
    }
}

/// The `Authorization` header value for an API key, built once and shared by every request.
pub fn bearer(key: &str) -> Arc<str> {
    Arc::from(format!("Bearer {key}"))
}

/// An answer: status and body.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Bytes,
    /// `Retry-After` in whole seconds, if the server sent one (a shed 503 `overloaded`).
    pub retry_after: Option<u64>,
}

/// One keep-alive connection.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl Conn {
    /// Connects (TCP_NODELAY) and completes the HTTP/1.1 handshake.
    pub async fn connect(addr: SocketAddr) -> Result<Self, ClientError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect { addr, source })?;
        stream
            .set_nodelay(true)
            .map_err(|source| ClientError::Connect { addr, source })?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // The connection ends when the sender is dropped or the server closes it; either
            // surfaces to the caller through `send`.
            let _ = conn.await;
        });
        Ok(Self {
            sender,
            host: addr.to_string(),
        })
    }

    /// Sends one request and reads the whole body.
    pub async fn send(&mut self, req: &Req) -> Result<Reply, ClientError> {
        self.sender.ready().await?;
        let mut builder = Request::builder()
            .method(req.method.clone())
            .uri(req.path.as_str())
            .header(HOST, self.host.as_str());
        if !req.body.is_empty() {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        if let Some(auth) = &req.authorization {
            builder = builder.header(AUTHORIZATION, auth.as_ref());
        }
        let request = builder.body(Full::new(req.body.clone()))?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(hyper::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Reply {
            status,
            body,
            retry_after,
        })
    }
}

/// Sends one request on a fresh connection (set-up and scraping, not measured).
/// Bounded by [`ONCE_TIMEOUT`].
pub async fn once(addr: SocketAddr, req: &Req) -> Result<Reply, ClientError> {
    let exchange = async { Conn::connect(addr).await?.send(req).await };
    tokio::time::timeout(ONCE_TIMEOUT, exchange)
        .await
        .unwrap_or(Err(ClientError::Timeout { addr }))
}
