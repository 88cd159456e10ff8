//! How the Redis store connects: the URL (`redis://` in clear or `rediss://` over TLS, with an
//! optional ACL user and password), the TLS files (`--redis-ca-file`, `--redis-client-cert`,
//! `--redis-client-key`), all checked when the server starts, and the URL as it may be logged.
//!
//! Rules (each a start-up error, never a silent fallback):
//! - A TLS file needs a `rediss://` URL: with `redis://` the password and the data would travel
//!   in clear although the operator asked for TLS.
//! - `#insecure` (no certificate verification) is refused: give the server's CA instead.
//! - The client certificate and key come together, are PEM and belong to each other.
//! - Without `--redis-ca-file`, a `rediss://` server is verified against the system's roots.
//!
//! The password never leaves this module except towards Redis: [`RedisUrl`]'s `Debug` and
//! `Display` show `user:***`, and every error names the URL in that form.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redis::{ClientTlsConfig, ConnectionAddr, IntoConnectionInfo, TlsCertificates};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A Redis URL as configured. Only [`RedisUrl::expose`] gives the password; `Debug` and
/// `Display` redact it (see [`redact`]).
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl From<String> for RedisUrl {
    fn from(url: String) -> Self {
        Self(url)
    }
}

impl From<&str> for RedisUrl {
    fn from(url: &str) -> Self {
        Self(url.to_owned())
    }
}

impl RedisUrl {
    /// The URL with its password, for the Redis client only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({})", redact(&self.0))
    }
}

/// The Redis the store talks to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server (`--redis-url`).
    Single(RedisUrl),
    /// A Redis Cluster, by its seed nodes (`--redis-cluster-nodes`): the client discovers the
    /// other nodes and the slots from them.
    Cluster(Vec<RedisUrl>),
}

impl RedisTarget {
    /// The target of the flags: `None` for the embedded store; both flags is an error.
    pub fn of_flags(
        url: Option<&RedisUrl>,
        cluster_nodes: &[RedisUrl],
    ) -> Result<Option<Self>, RedisConfigError> {
        match (url, cluster_nodes) {
            (Some(_), [_, ..]) => Err(RedisConfigError::SingleAndCluster),
            (Some(url), []) => Ok(Some(Self::Single(url.clone()))),
            (None, []) => Ok(None),
            (None, nodes) => Ok(Some(Self::Cluster(nodes.to_vec()))),
        }
    }
}

impl fmt::Display for RedisTarget {
    /// The URL, or the seed nodes joined by commas, passwords redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Single(url) => url.fmt(f),
            Self::Cluster(nodes) => {
                let nodes: Vec<String> = nodes.iter().map(RedisUrl::to_string).collect();
                write!(f, "cluster {}", nodes.join(","))
            }
        }
    }
}

/// Query parameters that carry a password (`unix:///run/redis.sock?pass=…`).
const SECRET_QUERY_KEYS: [&str; 2] = ["pass", "password"];

/// `url` without its password: `rediss://feed:***@host:6380/0`. Works on text that is not a
/// valid URL too (everything between `://` and the last `@` after it is userinfo), so an error
/// about a malformed URL never echoes its password.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = match rest.rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***{}", &rest[at..]),
                None => rest.to_owned(),
            }
        }
        None => rest.to_owned(),
    };
    let rest = match rest.split_once('?') {
        Some((before, query)) => {
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if SECRET_QUERY_KEYS.contains(&k) => format!("{k}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{before}?{}", pairs.join("&"))
        }
        None => rest,
    };
    if url.contains("://") {
        format!("{scheme}://{rest}")
    } else {
        rest
    }
}

/// A TLS flag of the Redis connection (names it in errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsFlag {
    /// `--redis-ca-file`.
    CaFile,
    /// `--redis-client-cert`.
    ClientCert,
    /// `--redis-client-key`.
    ClientKey,
}

impl fmt::Display for TlsFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CaFile => "--redis-ca-file",
            Self::ClientCert => "--redis-client-cert",
            Self::ClientKey => "--redis-client-key",
        })
    }
}

/// The TLS files of the Redis connection, as configured (paths, not yet read).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedisTlsFiles {
    /// PEM bundle of the CA(s) that sign the server's certificate; `None` = system roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain), for servers that require one.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
}

impl RedisTlsFiles {
    /// The flags that are set, in command-line order.
    fn set_flags(&self) -> Vec<TlsFlag> {
        [
            (TlsFlag::CaFile, &self.ca_file),
            (TlsFlag::ClientCert, &self.client_cert),
            (TlsFlag::ClientKey, &self.client_key),
        ]
        .into_iter()
        .filter_map(|(flag, path)| path.is_some().then_some(flag))
        .collect()
    }

    /// Fails when a TLS file is set although no Redis is configured (the embedded store would
    /// silently ignore it).
    pub fn check_unused(&self) -> Result<(), RedisConfigError> {
        match self.set_flags().first() {
            Some(&flag) => Err(RedisConfigError::TlsWithoutRedis { flag }),
            None => Ok(()),
        }
    }
}

/// Why the Redis connection cannot be set up (a start-up error).
#[derive(Debug, thiserror::Error)]
pub enum RedisConfigError {
    /// The URL does not parse. Not even its redacted form is shown: text that is not a URL
    /// has no reliable place for the password.
    #[error(
        "a URL of --redis-url or --redis-cluster-nodes (scheme `{scheme}`) is not a Redis URL ({reason}); expected redis://[user:password@]host[:port][/db], or rediss://… for TLS"
    )]
    InvalidUrl {
        /// The scheme, or the empty string when there is none.
        scheme: String,
        /// What the parser said (never contains the URL).
        reason: String,
    },
    /// `rediss://…#insecure`.
    #[error(
        "--redis-url {url} turns certificate verification off (#insecure), which feed-server refuses: give the server's CA with --redis-ca-file instead"
    )]
    InsecureTls {
        /// The URL, redacted.
        url: String,
    },
    /// A TLS file with a URL in clear.
    #[error(
        "{flag} needs a TLS URL (rediss://…) but --redis-url is {url}: the password and the data would travel in clear"
    )]
    TlsFileWithoutTls {
        /// The first TLS flag set.
        flag: TlsFlag,
        /// The URL, redacted.
        url: String,
    },
    /// A TLS file without any Redis.
    #[error("{flag} is set but --redis-url is not: the embedded store does not use it")]
    TlsWithoutRedis {
        /// The first TLS flag set.
        flag: TlsFlag,
    },
    /// Only one of the client certificate and key.
    #[error("--redis-client-cert and --redis-client-key go together: {missing} is missing")]
    HalfIdentity {
        /// The flag not given.
        missing: TlsFlag,
    },
    /// A file cannot be read.
    #[error("cannot read {flag} {}: {source}", path.display())]
    Unreadable {
        /// Which flag named it.
        flag: TlsFlag,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A certificate file holds no PEM certificate, or a bad one.
    #[error("{flag} {} holds no usable PEM certificate: {reason}", path.display())]
    NotCertificate {
        /// Which flag named it.
        flag: TlsFlag,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key file holds no PEM private key.
    #[error("--redis-client-key {} holds no PEM private key: {reason}", path.display())]
    NotKey {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The client certificate and key do not belong together (or the key type is unsupported).
    #[error("--redis-client-cert and --redis-client-key cannot be used together: {reason}")]
    BadIdentity {
        /// What rustls said.
        reason: String,
    },
    /// `--redis-cluster-nodes` is set but empty.
    #[error("--redis-cluster-nodes names no node: give redis://host:port,redis://host:port,…")]
    NoClusterNodes,
    /// Cluster seed nodes that disagree.
    #[error(
        "--redis-cluster-nodes must agree on the {what}: {first} and {other} differ (the client uses the first node's for every node)"
    )]
    MixedClusterNodes {
        /// The first node, redacted.
        first: String,
        /// The node that differs, redacted.
        other: String,
        /// What differs.
        what: &'static str,
    },
    /// Both a single Redis and a cluster.
    #[error(
        "--redis-url and --redis-cluster-nodes exclude each other: give --redis-url for one Redis server or --redis-cluster-nodes for a Redis Cluster"
    )]
    SingleAndCluster,
    /// A prefix that would choose the keys' cluster slot itself.
    #[error(
        "--redis-prefix {prefix:?} holds `{brace}`: braces are the keys' Redis Cluster hash tags (feed-server/README.md, \"Key layout\")"
    )]
    PrefixWithBrace {
        /// The prefix.
        prefix: String,
        /// The first brace in it.
        brace: char,
    },
    /// The Redis client refused the configuration.
    #[error("cannot set up the Redis client for {url}: {reason}")]
    Client {
        /// The URL, redacted.
        url: String,
        /// What the client said.
        reason: String,
    },
}

/// Whether the connection is encrypted, as decided by the URL's scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `redis://`, `unix://`: in clear (or a local socket).
    Plain,
    /// `rediss://`: TLS, the server's certificate verified.
    Tls,
}

/// Installs ring as the process's rustls crypto provider unless one is installed already
/// (the Redis client builds its TLS configuration from the process default).
fn install_crypto_provider() {
    // An error only means a provider is installed already, which is what we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn read(flag: TlsFlag, path: &Path) -> Result<Vec<u8>, RedisConfigError> {
    std::fs::read(path).map_err(|source| RedisConfigError::Unreadable {
        flag,
        path: path.to_owned(),
        source,
    })
}

/// Reads a PEM file of certificates (at least one).
fn certificates(
    flag: TlsFlag,
    path: &Path,
) -> Result<(Vec<u8>, Vec<CertificateDer<'static>>), RedisConfigError> {
    let pem = read(flag, path)?;
    let not_certificate = |reason: String| RedisConfigError::NotCertificate {
        flag,
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| not_certificate(e.to_string()))?;
    if certs.is_empty() {
        return Err(not_certificate(
            "no -----BEGIN CERTIFICATE----- block".to_owned(),
        ));
    }
    Ok((pem, certs))
}

/// Reads and checks the CA bundle: every certificate must be usable as a trust anchor.
fn ca_bundle(path: &Path) -> Result<Vec<u8>, RedisConfigError> {
    let (pem, certs) = certificates(TlsFlag::CaFile, path)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| RedisConfigError::NotCertificate {
                flag: TlsFlag::CaFile,
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
    }
    Ok(pem)
}

/// Reads the client certificate and key and checks that they belong together.
fn identity(cert_path: &Path, key_path: &Path) -> Result<ClientTlsConfig, RedisConfigError> {
    let (client_cert, chain) = certificates(TlsFlag::ClientCert, cert_path)?;
    let client_key = read(TlsFlag::ClientKey, key_path)?;
    let key = PrivateKeyDer::from_pem_slice(&client_key).map_err(|e| RedisConfigError::NotKey {
        path: key_path.to_owned(),
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RedisConfigError::BadIdentity {
            reason: e.to_string(),
        })?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_client_auth_cert(chain, key)
        .map_err(|e| RedisConfigError::BadIdentity {
            reason: e.to_string(),
        })?;
    Ok(ClientTlsConfig {
        client_cert,
        client_key,
    })
}

/// The transport of `url`, after checking that it parses and does not turn verification off.
pub fn transport(url: &RedisUrl) -> Result<Transport, RedisConfigError> {
    let info = url
        .expose()
        .into_connection_info()
        .map_err(|e| RedisConfigError::InvalidUrl {
            scheme: url
                .expose()
                .split_once("://")
                .map(|(scheme, _)| scheme.to_owned())
                .unwrap_or_default(),
            reason: e.to_string(),
        })?;
    match info.addr() {
        ConnectionAddr::TcpTls { insecure: true, .. } => Err(RedisConfigError::InsecureTls {
            url: url.to_string(),
        }),
        ConnectionAddr::TcpTls { .. } => Ok(Transport::Tls),
        _ => Ok(Transport::Plain),
    }
}

/// The TLS certificates to give the client: `None` for a URL in clear (after checking no TLS
/// file is set), the CA bundle and client identity (each read and checked now) for `rediss://`.
fn tls_certificates(
    url: &RedisUrl,
    transport: Transport,
    files: &RedisTlsFiles,
) -> Result<Option<TlsCertificates>, RedisConfigError> {
    let identity_paths = match (&files.client_cert, &files.client_key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (Some(_), None) => {
            return Err(RedisConfigError::HalfIdentity {
                missing: TlsFlag::ClientKey,
            });
        }
        (None, Some(_)) => {
            return Err(RedisConfigError::HalfIdentity {
                missing: TlsFlag::ClientCert,
            });
        }
        (None, None) => None,
    };
    match (transport, files.set_flags().first()) {
        (Transport::Plain, None) => Ok(None),
        (Transport::Plain, Some(&flag)) => Err(RedisConfigError::TlsFileWithoutTls {
            flag,
            url: url.to_string(),
        }),
        (Transport::Tls, _) => {
            install_crypto_provider();
            let root_cert = files.ca_file.as_deref().map(ca_bundle).transpose()?;
            let client_tls = identity_paths
                .map(|(cert, key)| identity(cert, key))
                .transpose()?;
            Ok(Some(TlsCertificates {
                client_tls,
                root_cert,
            }))
        }
    }
}

/// The Redis client for `url` and `files`: every rule of the module docs checked, every file
/// read and parsed now (a bad file fails the start, not the first request).
pub fn client(url: &RedisUrl, files: &RedisTlsFiles) -> Result<redis::Client, RedisConfigError> {
    let client_error = |e: redis::RedisError| RedisConfigError::Client {
        url: url.to_string(),
        reason: e.to_string(),
    };
    match tls_certificates(url, transport(url)?, files)? {
        None => redis::Client::open(url.expose()).map_err(client_error),
        Some(certs) => redis::Client::build_with_tls(url.expose(), certs).map_err(client_error),
    }
}

/// The user and password part of a URL (`user:password` of `redis://user:password@host`),
/// empty when it has none.
fn credentials(url: &RedisUrl) -> &str {
    let rest = url.expose().split_once("://").map_or("", |(_, rest)| rest);
    rest.rsplit_once('@').map_or("", |(userinfo, _)| userinfo)
}

/// The cluster client builder for the seed `nodes` (`--redis-cluster-nodes`) and `files`: the
/// rules of the module docs for every node, and the nodes must agree on the transport and the
/// credentials (the client uses the first node's for every node it discovers).
pub fn cluster_client(
    nodes: &[RedisUrl],
    files: &RedisTlsFiles,
) -> Result<redis::cluster::ClusterClientBuilder, RedisConfigError> {
    let Some(first) = nodes.first() else {
        return Err(RedisConfigError::NoClusterNodes);
    };
    let first_transport = transport(first)?;
    for node in &nodes[1..] {
        if transport(node)? != first_transport {
            return Err(RedisConfigError::MixedClusterNodes {
                first: first.to_string(),
                other: node.to_string(),
                what: "transport (redis:// and rediss://)",
            });
        }
        if credentials(node) != credentials(first) {
            return Err(RedisConfigError::MixedClusterNodes {
                first: first.to_string(),
                other: node.to_string(),
                what: "user and password",
            });
        }
    }
    let builder = redis::cluster::ClusterClientBuilder::new(nodes.iter().map(RedisUrl::expose));
    Ok(match tls_certificates(first, first_transport, files)? {
        None => builder,
        Some(certs) => builder.certs(certs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_every_password_and_keeps_the_rest() {
        let cases = [
            (
                "rediss://feed:s3cret@redis.example:6380/0",
                "rediss://feed:***@redis.example:6380/0",
            ),
            ("redis://:s3cret@10.0.0.1/", "redis://:***@10.0.0.1/"),
            ("redis://127.0.0.1:6379/", "redis://127.0.0.1:6379/"),
            ("redis://feed@host/", "redis://feed@host/"),
            // Unencoded `@` and `/` in the password: still everything up to the last `@`.
            (
                "rediss://feed:p@ss/w@rd@host:6380",
                "rediss://feed:***@host:6380",
            ),
            (
                "unix:///run/redis.sock?db=1&pass=s3cret",
                "unix:///run/redis.sock?db=1&pass=***",
            ),
            (
                "redis+unix:///run/redis.sock?user=feed&password=s3cret",
                "redis+unix:///run/redis.sock?user=feed&password=***",
            ),
            ("feed:s3cret@host", "feed:***@host"),
        ];
        for (url, want) in cases {
            assert_eq!(redact(url), want, "{url}");
            let wrapped = RedisUrl::from(url);
            assert!(
                !format!("{wrapped} {wrapped:?}").contains("s3cret"),
                "{url}"
            );
        }
        assert_eq!(
            RedisUrl::from("rediss://feed:s3cret@h/").expose(),
            "rediss://feed:s3cret@h/"
        );
    }

    #[test]
    fn the_scheme_decides_the_transport() {
        for (url, want) in [
            ("redis://127.0.0.1:6379/0", Transport::Plain),
            ("unix:///run/redis.sock", Transport::Plain),
            ("rediss://feed:pw@127.0.0.1:6380/0", Transport::Tls),
            ("valkeys://127.0.0.1", Transport::Tls),
        ] {
            assert_eq!(transport(&RedisUrl::from(url)).ok(), Some(want), "{url}");
        }
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_the_password() {
        for url in [
            "http://feed:s3cret@host/",
            "rediss://feed:s3cret@host:6380/not-a-db",
            "not a url s3cret",
            "rediss://feed:s3cret@0.0.0.0:6380",
        ] {
            let err = transport(&RedisUrl::from(url)).expect_err(url);
            let text = err.to_string();
            assert!(matches!(err, RedisConfigError::InvalidUrl { .. }), "{text}");
            assert!(!text.contains("s3cret"), "{text}");
        }
        let err = transport(&RedisUrl::from("rediss://feed:s3cret@host:6380/#insecure"))
            .expect_err("insecure");
        assert!(matches!(err, RedisConfigError::InsecureTls { .. }), "{err}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    fn files(ca: Option<&str>, cert: Option<&str>, key: Option<&str>) -> RedisTlsFiles {
        RedisTlsFiles {
            ca_file: ca.map(PathBuf::from),
            client_cert: cert.map(PathBuf::from),
            client_key: key.map(PathBuf::from),
        }
    }

    #[test]
    fn tls_files_need_a_tls_url_and_a_redis() {
        let plain = RedisUrl::from("redis://feed:s3cret@127.0.0.1:6379/0");
        for (tls, flag) in [
            (files(Some("/ca.pem"), None, None), TlsFlag::CaFile),
            (
                files(None, Some("/c.pem"), Some("/k.pem")),
                TlsFlag::ClientCert,
            ),
        ] {
            let err = client(&plain, &tls).expect_err("plain url with tls files");
            assert!(
                matches!(err, RedisConfigError::TlsFileWithoutTls { flag: f, .. } if f == flag),
                "{err}"
            );
            assert!(!err.to_string().contains("s3cret"), "{err}");
            let err = tls.check_unused().expect_err("no redis");
            assert!(
                matches!(err, RedisConfigError::TlsWithoutRedis { flag: f } if f == flag),
                "{err}"
            );
        }
        assert!(RedisTlsFiles::default().check_unused().is_ok());
        assert!(client(&plain, &RedisTlsFiles::default()).is_ok());
    }

    #[test]
    fn the_client_certificate_and_key_come_together() {
        let tls = RedisUrl::from("rediss://127.0.0.1:6380/0");
        for (given, missing) in [
            (files(None, Some("/c.pem"), None), TlsFlag::ClientKey),
            (
                files(Some("/ca.pem"), None, Some("/k.pem")),
                TlsFlag::ClientCert,
            ),
        ] {
            let err = client(&tls, &given).expect_err("half identity");
            assert!(
                matches!(err, RedisConfigError::HalfIdentity { missing: m } if m == missing),
                "{err}"
            );
            assert!(err.to_string().contains(&missing.to_string()), "{err}");
        }
    }

    #[test]
    fn unreadable_and_non_pem_files_are_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "this is not PEM\n").expect("write");
        let missing = dir.path().join("missing.pem");
        let tls = RedisUrl::from("rediss://127.0.0.1:6380/0");
        let g = garbage.to_str().expect("utf-8 path");
        let m = missing.to_str().expect("utf-8 path");

        let err = client(&tls, &files(Some(m), None, None)).expect_err("missing ca");
        assert!(
            matches!(
                err,
                RedisConfigError::Unreadable {
                    flag: TlsFlag::CaFile,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("missing.pem"), "{err}");

        let err = client(&tls, &files(Some(g), None, None)).expect_err("garbage ca");
        assert!(
            matches!(
                err,
                RedisConfigError::NotCertificate {
                    flag: TlsFlag::CaFile,
                    ..
                }
            ),
            "{err}"
        );

        let err = client(&tls, &files(None, Some(g), Some(g))).expect_err("garbage cert");
        assert!(
            matches!(
                err,
                RedisConfigError::NotCertificate {
                    flag: TlsFlag::ClientCert,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn one_redis_or_one_cluster_never_both() {
        let url = RedisUrl::from("redis://127.0.0.1:6379");
        let nodes = vec![RedisUrl::from("redis://a:1"), RedisUrl::from("redis://b:2")];
        assert!(matches!(
            RedisTarget::of_flags(Some(&url), &nodes),
            Err(RedisConfigError::SingleAndCluster)
        ));
        assert_eq!(RedisTarget::of_flags(None, &[]).ok(), Some(None));
        assert_eq!(
            RedisTarget::of_flags(Some(&url), &[]).ok(),
            Some(Some(RedisTarget::Single(url.clone())))
        );
        let cluster = RedisTarget::of_flags(None, &nodes).ok().flatten();
        assert_eq!(cluster, Some(RedisTarget::Cluster(nodes)));
    }

    #[test]
    fn cluster_nodes_must_agree_and_keep_every_single_node_rule() {
        let files = RedisTlsFiles::default();
        let urls = |list: &[&str]| list.iter().map(|u| RedisUrl::from(*u)).collect::<Vec<_>>();
        assert!(cluster_client(&urls(&["redis://a:1", "redis://b:2"]), &files).is_ok());
        assert!(matches!(
            cluster_client(&[], &files),
            Err(RedisConfigError::NoClusterNodes)
        ));
        let mixed = cluster_client(&urls(&["redis://a:1", "rediss://b:2"]), &files);
        assert!(
            matches!(&mixed, Err(RedisConfigError::MixedClusterNodes { what, .. }) if what.starts_with("transport")),
            "{:?}",
            mixed.err()
        );
        let creds = cluster_client(
            &urls(&["redis://feed:s3cret@a:1", "redis://feed:other@b:2"]),
            &files,
        );
        let message = creds.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("user and password"), "{message}");
        assert!(
            !message.contains("s3cret") && !message.contains("other@"),
            "{message}"
        );
        assert!(matches!(
            cluster_client(&urls(&["rediss://a:1#insecure"]), &files),
            Err(RedisConfigError::InsecureTls { .. })
        ));
        let tls_file = RedisTlsFiles {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..RedisTlsFiles::default()
        };
        assert!(matches!(
            cluster_client(&urls(&["redis://a:1"]), &tls_file),
            Err(RedisConfigError::TlsFileWithoutTls { .. })
        ));
        assert!(matches!(
            cluster_client(&urls(&["not a url"]), &files),
            Err(RedisConfigError::InvalidUrl { .. })
        ));
    }
}
