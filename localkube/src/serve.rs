//! Serving [`FakeApi`] over HTTPS: a CA and a server certificate generated at start, HTTP/1.1
//! and HTTP/2 (ALPN), and a kubeconfig that trusts the CA and holds a token per identity.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::server::FakeApi;

/// Why the HTTPS server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Certificate generation failed.
    #[error("generating the certificates: {0}")]
    Certificate(#[from] rcgen::Error),
    /// The TLS configuration was refused.
    #[error("configuring TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// Binding or accepting failed.
    #[error("listening: {0}")]
    Io(#[from] std::io::Error),
    /// The kubeconfig could not be rendered.
    #[error("rendering the kubeconfig: {0}")]
    Kubeconfig(#[from] serde_yaml::Error),
}

/// A CA and a server certificate for loopback, signed by it.
pub struct Certificates {
    /// The CA certificate, PEM (what the kubeconfig trusts).
    pub ca_pem: String,
    server_der: CertificateDer<'static>,
    server_key: PrivatePkcs8KeyDer<'static>,
}

impl Certificates {
    /// A fresh CA and a certificate for `localhost`, `127.0.0.1` and `::1`.
    pub fn generate() -> Result<Self, ServeError> {
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "localkube CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec!["localhost".to_owned()])?;
        params
            .distinguished_name
            .push(DnType::CommonName, "localkube");
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        params
            .subject_alt_names
            .push(SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()));
        let cert = params.signed_by(&key, &ca_cert, &ca_key)?;
        Ok(Self {
            ca_pem: ca_cert.pem(),
            server_der: cert.der().clone(),
            server_key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        })
    }

    fn acceptor(&self) -> Result<TlsAcceptor, ServeError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![self.server_der.clone()],
                PrivateKeyDer::Pkcs8(self.server_key.clone_key()),
            )?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// One kubeconfig user (and a context of the same name).
pub struct KubeconfigUser {
    /// User and context name.
    pub name: String,
    /// Bearer token.
    pub token: String,
    /// The context's default namespace.
    pub namespace: String,
}

/// A kubeconfig for `server` trusting `ca_pem`; the first user's context is current.
pub fn kubeconfig(
    server: &str,
    ca_pem: &str,
    users: &[KubeconfigUser],
) -> Result<String, ServeError> {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let doc = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "localkube", "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": users.iter().map(|u| json!({"name": u.name, "user": {"token": u.token}})).collect::<Vec<_>>(),
        "contexts": users.iter().map(|u| json!({"name": u.name,
            "context": {"cluster": "localkube", "user": u.name, "namespace": u.namespace}})).collect::<Vec<_>>(),
        "current-context": users.first().map(|u| u.name.clone()).unwrap_or_default(),
    });
    Ok(serde_yaml::to_string(&doc)?)
}

/// The pause after a failed accept (EMFILE would otherwise spin).
const ACCEPT_RETRY: std::time::Duration = std::time::Duration::from_millis(50);

/// A bound HTTPS listener, not yet serving.
pub struct Listener {
    listener: TcpListener,
    acceptor: TlsAcceptor,
}

impl Listener {
    /// Binds `addr` (port 0: a free port) with `certs`.
    pub async fn bind(addr: SocketAddr, certs: &Certificates) -> Result<Self, ServeError> {
        Ok(Self {
            listener: TcpListener::bind(addr).await?,
            acceptor: certs.acceptor()?,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> Result<SocketAddr, ServeError> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves `api` until the task is dropped; a failed handshake or connection only ends
    /// that connection, and a failed accept (out of file descriptors, a connection reset
    /// before it was accepted) is logged and retried after a short pause: the server keeps
    /// serving.
    pub async fn serve(self, api: FakeApi) -> Result<(), ServeError> {
        loop {
            let tcp = match self.listener.accept().await {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; retrying");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            };
            let acceptor = self.acceptor.clone();
            let api = api.clone();
            tokio::spawn(async move {
                let tls = match acceptor.accept(tcp).await {
                    Ok(tls) => tls,
                    Err(e) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                };
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let api = api.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let bytes = body
                                .collect()
                                .await
                                .map(http_body_util::Collected::to_bytes)
                                .unwrap_or_default();
                            Ok::<_, Infallible>(api.respond(parts, bytes))
                        }
                    });
                if let Err(e) = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await
                {
                    tracing::debug!(error = %e, "connection ended");
                }
            });
        }
    }
}

/// An API server over HTTPS on a free port of 127.0.0.1 with its own CA, serving until dropped:
/// what a test needs to point kubectl or a kube client at a [`FakeApi`].
pub struct LoopbackServer {
    url: String,
    ca_pem: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LoopbackServer {
    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A kubeconfig for this server (trusting its CA) with `users`; the first one's context
    /// is current.
    pub fn kubeconfig(&self, users: &[KubeconfigUser]) -> Result<String, ServeError> {
        kubeconfig(&self.url, &self.ca_pem, users)
    }
}

/// Serves `api` over HTTPS on a free loopback port (a fresh CA and certificate); a serving
/// error is logged.
pub async fn serve_on_loopback(api: FakeApi) -> Result<LoopbackServer, ServeError> {
    let certs = Certificates::generate()?;
    let listener = Listener::bind(SocketAddr::from(([127, 0, 0, 1], 0)), &certs).await?;
    let url = format!("https://{}", listener.local_addr()?);
    let task = tokio::spawn(async move {
        if let Err(e) = listener.serve(api).await {
            tracing::error!(error = %e, "the loopback API server stopped");
        }
    });
    Ok(LoopbackServer {
        url,
        ca_pem: certs.ca_pem,
        task,
    })
}
