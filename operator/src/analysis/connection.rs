//! The connection to one Prometheus: address, timeout, credentials, extra headers and TLS.
//!
//! [`resolve`] is pure: it turns a `spec.analysis.prometheus` ([`PrometheusAccess`]) and the
//! data of the Secrets and ConfigMaps it names ([`Fetched`], read by the controller) into a
//! [`PrometheusConnection`] or a typed [`CredentialError`]. [`PrometheusConnection::http_client`]
//! builds the reqwest client (default headers marked sensitive, CA bundle or skipped
//! verification) that `prometheus-http-query` sends through.
//!
//! Values read from Secrets and files are trimmed of surrounding whitespace (a token written
//! with `echo` ends in a newline), as Prometheus does with its credentials files. Secret values
//! never appear in `Debug` output, errors or logs; [`PrometheusConnection::key`] is a hash that
//! tells connections apart (a rotated Secret gives a new key, hence a new client).

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use base64::Engine as _;
use feedroll_crds::{ObjectKeyRef, ObjectKind, PrometheusAccess};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use thiserror::Error;

/// What the controller read for one referenced object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchedObject {
    /// The object's data (a Secret's decoded `data`; a ConfigMap's `data` and `binaryData`).
    Found(BTreeMap<String, Vec<u8>>),
    /// The object does not exist.
    Missing,
    /// The API server did not answer or refused (e.g. RBAC), with why.
    Unreadable(String),
}

/// The objects read for a [`PrometheusAccess`], by kind and name.
pub type Fetched = BTreeMap<(ObjectKind, String), FetchedObject>;

/// A value that must not be shown: `Debug` prints `<redacted>`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Sensitive(String);

impl Sensitive {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself (to put on the wire).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How requests authenticate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Credentials {
    /// No `Authorization` header from the operator.
    #[default]
    None,
    /// `Authorization: <scheme> <credentials>` (scheme `Bearer` unless set).
    Authorization {
        /// The scheme.
        scheme: String,
        /// The credentials.
        credentials: Sensitive,
    },
    /// HTTP basic auth.
    Basic {
        /// User name.
        username: Sensitive,
        /// Password.
        password: Sensitive,
    },
}

/// How Prometheus' certificate is verified.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Verify {
    /// Against the system roots.
    #[default]
    SystemRoots,
    /// Against this PEM bundle only (it replaces the system roots).
    CaBundle(Vec<u8>),
    /// Not at all (`insecureSkipVerify`).
    Skip,
}

/// Everything needed to talk to one Prometheus.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PrometheusConnection {
    /// Base URL.
    pub address: String,
    /// Timeout of one query.
    pub timeout: Duration,
    /// Authentication.
    pub credentials: Credentials,
    /// Extra headers, in spec order.
    pub headers: Vec<(String, Sensitive)>,
    /// Certificate verification.
    pub verify: Verify,
}

/// Identifies a [`PrometheusConnection`] (credentials included, as a hash) without showing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionKey(u64);

/// Why a [`PrometheusAccess`] cannot be turned into a connection. Each message names the
/// object, the key and the spec field, never a secret value.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum CredentialError {
    /// The Secret or ConfigMap does not exist.
    #[error("{kind} {name:?} not found in the FeedRollout's namespace ({field})", kind = .0.kind.as_str(), name = .0.name, field = .0.field)]
    Missing(ObjectKeyRef),
    /// It exists but lacks the key.
    #[error("{kind} {name:?} has no key {key:?} ({field})", kind = .0.kind.as_str(), name = .0.name, key = .0.key, field = .0.field)]
    MissingKey(ObjectKeyRef),
    /// The value is empty (after trimming whitespace).
    #[error("{kind} {name:?} key {key:?} is empty ({field})", kind = .0.kind.as_str(), name = .0.name, key = .0.key, field = .0.field)]
    Empty(ObjectKeyRef),
    /// The value cannot go into an HTTP header (not UTF-8, or control characters inside).
    #[error("{origin} cannot be sent in an HTTP header: {why}")]
    NotHeaderValue {
        /// Where the value came from, e.g. `Secret "prom" key "token" (spec....)`.
        origin: String,
        /// Why.
        why: &'static str,
    },
    /// A header name is not an HTTP token.
    #[error("{name:?} is not a valid HTTP header name")]
    HeaderName {
        /// The name.
        name: String,
    },
    /// The CA bundle holds no PEM certificate, or a broken one.
    #[error("{origin} is not a PEM certificate bundle: {why}")]
    NotPem {
        /// Where the bundle came from.
        origin: String,
        /// Why.
        why: String,
    },
    /// The object could not be read.
    #[error("cannot read {kind} {name:?} ({field}): {why}", kind = .reference.kind.as_str(), name = .reference.name, field = .reference.field)]
    Unreadable {
        /// The reference.
        reference: ObjectKeyRef,
        /// The API server's answer.
        why: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// `Secret "prom" key "token" (spec.analysis.prometheus.authorization.credentials)`.
fn describe(r: &ObjectKeyRef) -> String {
    format!(
        "{} {:?} key {:?} ({})",
        r.kind.as_str(),
        r.name,
        r.key,
        r.field
    )
}

/// The bytes of one referenced key.
fn lookup<'a>(objects: &'a Fetched, r: &ObjectKeyRef) -> Result<&'a [u8], CredentialError> {
    match objects.get(&(r.kind, r.name.clone())) {
        Some(FetchedObject::Found(data)) => data
            .get(&r.key)
            .map(Vec::as_slice)
            .ok_or_else(|| CredentialError::MissingKey(r.clone())),
        Some(FetchedObject::Unreadable(why)) => Err(CredentialError::Unreadable {
            reference: r.clone(),
            why: why.clone(),
        }),
        Some(FetchedObject::Missing) | None => Err(CredentialError::Missing(r.clone())),
    }
}

/// A header-safe, trimmed, non-empty text value from `bytes`; `source` names it in errors.
pub fn header_text(bytes: &[u8], source: &str) -> Result<String, CredentialError> {
    let text = std::str::from_utf8(bytes).map_err(|_| CredentialError::NotHeaderValue {
        origin: source.to_owned(),
        why: "it is not UTF-8 text",
    })?;
    let text = text.trim();
    if text.chars().any(char::is_control) {
        return Err(CredentialError::NotHeaderValue {
            origin: source.to_owned(),
            why: "it contains control characters (a line break inside?)",
        });
    }
    Ok(text.to_owned())
}

/// The trimmed, non-empty text of one referenced key.
fn secret_text(objects: &Fetched, r: &ObjectKeyRef) -> Result<Sensitive, CredentialError> {
    let text = header_text(lookup(objects, r)?, &describe(r))?;
    if text.is_empty() {
        return Err(CredentialError::Empty(r.clone()));
    }
    Ok(Sensitive(text))
}

/// Checks that `pem` holds at least one parseable PEM certificate; `source` names it in errors.
pub fn pem_bundle(pem: &[u8], source: &str) -> Result<Vec<u8>, CredentialError> {
    let not_pem = |why: String| CredentialError::NotPem {
        origin: source.to_owned(),
        why,
    };
    let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| not_pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(not_pem(
            "no -----BEGIN CERTIFICATE----- block found".to_owned(),
        ));
    }
    Ok(pem.to_vec())
}

/// Checks a header name (an HTTP token).
pub fn header_name(name: &str) -> Result<String, CredentialError> {
    HeaderName::from_bytes(name.as_bytes())
        .map(|_| name.to_owned())
        .map_err(|_| CredentialError::HeaderName {
            name: name.to_owned(),
        })
}

/// Turns `access` and the objects read for it into a connection to `address`. Pure: the same
/// inputs always give the same connection or the same error.
pub fn resolve(
    address: &str,
    timeout: Duration,
    access: &PrometheusAccess,
    objects: &Fetched,
) -> Result<PrometheusConnection, CredentialError> {
    let at = "spec.analysis.prometheus";
    let credentials = if let Some(a) = &access.authorization {
        Credentials::Authorization {
            scheme: a.type_.clone().unwrap_or_else(|| "Bearer".to_owned()),
            credentials: secret_text(
                objects,
                &a.credentials.at(
                    ObjectKind::Secret,
                    format!("{at}.authorization.credentials"),
                ),
            )?,
        }
    } else if let Some(b) = &access.basic_auth {
        Credentials::Basic {
            username: secret_text(
                objects,
                &b.username
                    .at(ObjectKind::Secret, format!("{at}.basicAuth.username")),
            )?,
            password: secret_text(
                objects,
                &b.password
                    .at(ObjectKind::Secret, format!("{at}.basicAuth.password")),
            )?,
        }
    } else {
        Credentials::None
    };
    let mut headers = Vec::with_capacity(access.headers.len());
    for (i, h) in access.headers.iter().enumerate() {
        let name = header_name(&h.name)?;
        let value = match (&h.value, &h.secret) {
            (Some(v), _) => Sensitive(header_text(
                v.as_bytes(),
                &format!("{at}.headers[{i}].value"),
            )?),
            (None, Some(s)) => secret_text(
                objects,
                &s.at(ObjectKind::Secret, format!("{at}.headers[{i}].secret")),
            )?,
            (None, None) => Sensitive(String::new()),
        };
        headers.push((name, value));
    }
    let skip = access
        .tls_config
        .as_ref()
        .is_some_and(|t| t.insecure_skip_verify == Some(true));
    let verify = match access.ca_reference() {
        _ if skip => Verify::Skip,
        Some(r) => Verify::CaBundle(pem_bundle(lookup(objects, &r)?, &describe(&r))?),
        None => Verify::SystemRoots,
    };
    Ok(PrometheusConnection {
        verify,
        ..connection(address, timeout, credentials, headers)
    })
}

fn connection(
    address: &str,
    timeout: Duration,
    credentials: Credentials,
    headers: Vec<(String, Sensitive)>,
) -> PrometheusConnection {
    PrometheusConnection {
        address: address.to_owned(),
        timeout,
        credentials,
        headers,
        verify: Verify::SystemRoots,
    }
}

impl PrometheusConnection {
    /// No credentials, no extra headers, system roots.
    pub fn plain(address: &str, timeout: Duration) -> Self {
        connection(address, timeout, Credentials::None, Vec::new())
    }

    /// A key that differs whenever anything of the connection differs (secret values
    /// included, hashed).
    pub fn key(&self) -> ConnectionKey {
        let mut h = xxhash_rust::xxh3::Xxh3Default::new();
        self.hash(&mut h);
        ConnectionKey(h.finish())
    }

    /// The connection in words, for logs: address and which settings are used, no values.
    pub fn summary(&self) -> String {
        let mut parts = vec![self.address.clone()];
        match &self.credentials {
            Credentials::None => {}
            Credentials::Authorization { scheme, .. } => parts.push(format!("{scheme} auth")),
            Credentials::Basic { .. } => parts.push("basic auth".to_owned()),
        }
        if !self.headers.is_empty() {
            let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
            parts.push(format!("headers {}", names.join(", ")));
        }
        match self.verify {
            Verify::SystemRoots => {}
            Verify::CaBundle(_) => parts.push("own CA bundle".to_owned()),
            Verify::Skip => parts.push("certificate not verified".to_owned()),
        }
        parts.join("; ")
    }

    /// The default headers of every request: `Authorization` and the extra headers, all
    /// marked sensitive (hidden from reqwest's debug output).
    pub fn header_map(&self) -> Result<HeaderMap, CredentialError> {
        let mut map = HeaderMap::new();
        let value = |text: &str, source: &str| {
            HeaderValue::from_str(text)
                .map(|mut v| {
                    v.set_sensitive(true);
                    v
                })
                .map_err(|_| CredentialError::NotHeaderValue {
                    origin: source.to_owned(),
                    why: "it is not a valid header value",
                })
        };
        match &self.credentials {
            Credentials::None => {}
            Credentials::Authorization {
                scheme,
                credentials,
            } => {
                let text = format!("{scheme} {}", credentials.expose());
                map.insert(
                    AUTHORIZATION,
                    value(&text, "the authorization credentials")?,
                );
            }
            Credentials::Basic { username, password } => {
                let pair = format!("{}:{}", username.expose(), password.expose());
                let text = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                );
                map.insert(AUTHORIZATION, value(&text, "the basic auth credentials")?);
            }
        }
        for (name, v) in &self.headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| CredentialError::HeaderName { name: name.clone() })?;
            map.insert(header, value(v.expose(), &format!("header {name}"))?);
        }
        Ok(map)
    }

    /// The HTTP client: the default headers, the CA bundle or skipped verification, and the
    /// timeouts (connect within the query timeout, the whole request within it plus a second).
    pub fn http_client(&self) -> Result<reqwest::Client, CredentialError> {
        crate::tls::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            // The Prometheus API never redirects; a redirect to another host would carry the
            // header values read from Secrets (reqwest strips only its own auth headers).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.timeout + Duration::from_secs(1))
            .connect_timeout(self.timeout)
            .default_headers(self.header_map()?);
        match &self.verify {
            Verify::SystemRoots => {}
            Verify::CaBundle(pem) => {
                let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                    CredentialError::NotPem {
                        origin: "the CA bundle".to_owned(),
                        why: e.to_string(),
                    }
                })?;
                builder = builder.tls_certs_only(certs);
            }
            Verify::Skip => builder = builder.tls_danger_accept_invalid_certs(true),
        }
        builder
            .build()
            .map_err(|e| CredentialError::Client(super::engine::error_chain(&e)))
    }
}

#[cfg(test)]
mod tests {
    use feedroll_crds::{
        Authorization, BasicAuth, CaBundle, ConfigMapKeyRef, HttpHeader, SecretKeyRef, TlsConfig,
    };

    use super::*;

    const ADDRESS: &str = "https://prom.example:9090";
    const TIMEOUT: Duration = Duration::from_secs(5);

    /// A CA certificate (self-signed, made once with openssl for these tests; never trusted
    /// anywhere).
    const CA_PEM: &str = include_str!("../../tests/fixtures/test-ca.pem");

    fn secret_ref(name: &str, key: &str) -> SecretKeyRef {
        SecretKeyRef {
            name: name.to_owned(),
            key: key.to_owned(),
        }
    }

    fn found(pairs: &[(&str, &[u8])]) -> FetchedObject {
        FetchedObject::Found(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
                .collect(),
        )
    }

    fn objects(entries: Vec<(ObjectKind, &str, FetchedObject)>) -> Fetched {
        entries
            .into_iter()
            .map(|(kind, name, o)| ((kind, name.to_owned()), o))
            .collect()
    }

    fn basic() -> PrometheusAccess {
        PrometheusAccess {
            basic_auth: Some(BasicAuth {
                username: secret_ref("prom", "username"),
                password: secret_ref("prom", "password"),
            }),
            ..PrometheusAccess::default()
        }
    }

    fn bearer() -> PrometheusAccess {
        PrometheusAccess {
            authorization: Some(Authorization {
                type_: None,
                credentials: secret_ref("token", "token"),
            }),
            ..PrometheusAccess::default()
        }
    }

    fn with_ca(ca: CaBundle) -> PrometheusAccess {
        PrometheusAccess {
            tls_config: Some(TlsConfig {
                ca: Some(ca),
                insecure_skip_verify: None,
            }),
            ..PrometheusAccess::default()
        }
    }

    fn prom_secret() -> Fetched {
        objects(vec![(
            ObjectKind::Secret,
            "prom",
            found(&[("username", b"feedroll\n"), ("password", b" s3cret \n")]),
        )])
    }

    #[test]
    fn no_access_settings_give_the_plain_connection() {
        let c = resolve(
            ADDRESS,
            TIMEOUT,
            &PrometheusAccess::default(),
            &Fetched::new(),
        )
        .unwrap();
        assert_eq!(c, PrometheusConnection::plain(ADDRESS, TIMEOUT));
        assert!(c.header_map().unwrap().is_empty());
    }

    #[test]
    fn basic_auth_values_are_trimmed_and_sent_as_one_sensitive_header() {
        let c = resolve(ADDRESS, TIMEOUT, &basic(), &prom_secret()).unwrap();
        assert_eq!(
            c.credentials,
            Credentials::Basic {
                username: Sensitive::new("feedroll"),
                password: Sensitive::new("s3cret"),
            }
        );
        let headers = c.header_map().unwrap();
        let auth = headers.get(AUTHORIZATION).unwrap();
        assert!(auth.is_sensitive());
        // base64("feedroll:s3cret")
        assert_eq!(auth.to_str().unwrap(), "Basic ZmVlZHJvbGw6czNjcmV0");
    }

    #[test]
    fn bearer_is_the_default_scheme_and_type_overrides_it() {
        let secret = objects(vec![(
            ObjectKind::Secret,
            "token",
            found(&[("token", b"abc.def\n")]),
        )]);
        let c = resolve(ADDRESS, TIMEOUT, &bearer(), &secret).unwrap();
        assert_eq!(
            c.header_map().unwrap().get(AUTHORIZATION).unwrap(),
            "Bearer abc.def"
        );
        let mut access = bearer();
        if let Some(a) = access.authorization.as_mut() {
            a.type_ = Some("Token".to_owned());
        }
        let c = resolve(ADDRESS, TIMEOUT, &access, &secret).unwrap();
        assert_eq!(
            c.header_map().unwrap().get(AUTHORIZATION).unwrap(),
            "Token abc.def"
        );
    }

    #[test]
    fn headers_take_literal_or_secret_values() {
        let access = PrometheusAccess {
            headers: vec![
                HttpHeader {
                    name: "X-Scope-OrgID".to_owned(),
                    value: Some("tenant-1".to_owned()),
                    secret: None,
                },
                HttpHeader {
                    name: "X-Api-Key".to_owned(),
                    value: None,
                    secret: Some(secret_ref("keys", "api")),
                },
            ],
            ..PrometheusAccess::default()
        };
        let fetched = objects(vec![(
            ObjectKind::Secret,
            "keys",
            found(&[("api", b"k-1\n")]),
        )]);
        let c = resolve(ADDRESS, TIMEOUT, &access, &fetched).unwrap();
        let map = c.header_map().unwrap();
        assert_eq!(map.get("x-scope-orgid").unwrap(), "tenant-1");
        assert_eq!(map.get("x-api-key").unwrap(), "k-1");
        assert!(map.get(AUTHORIZATION).is_none());
        assert_eq!(
            c.summary(),
            format!("{ADDRESS}; headers X-Scope-OrgID, X-Api-Key")
        );
    }

    #[test]
    fn a_ca_comes_from_a_secret_or_a_config_map_and_must_be_pem() {
        let from_secret = with_ca(CaBundle {
            secret: Some(secret_ref("ca", "ca.crt")),
            config_map: None,
        });
        let from_map = with_ca(CaBundle {
            secret: None,
            config_map: Some(ConfigMapKeyRef {
                name: "ca".to_owned(),
                key: "ca.crt".to_owned(),
            }),
        });
        let pem = CA_PEM.as_bytes();
        for (access, kind) in [
            (&from_secret, ObjectKind::Secret),
            (&from_map, ObjectKind::ConfigMap),
        ] {
            let fetched = objects(vec![(kind, "ca", found(&[("ca.crt", pem)]))]);
            let c = resolve(ADDRESS, TIMEOUT, access, &fetched).unwrap();
            assert_eq!(c.verify, Verify::CaBundle(pem.to_vec()));
            c.http_client().expect("a client trusting the bundle");
            // The same key under the other kind is not the object named.
            let other = match kind {
                ObjectKind::Secret => ObjectKind::ConfigMap,
                ObjectKind::ConfigMap => ObjectKind::Secret,
            };
            let wrong = objects(vec![(other, "ca", found(&[("ca.crt", pem)]))]);
            assert!(matches!(
                resolve(ADDRESS, TIMEOUT, access, &wrong),
                Err(CredentialError::Missing(r)) if r.kind == kind
            ));
        }
        for bad in [
            &b"not a certificate"[..],
            b"",
            b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        ] {
            let fetched = objects(vec![(ObjectKind::Secret, "ca", found(&[("ca.crt", bad)]))]);
            let err = resolve(ADDRESS, TIMEOUT, &from_secret, &fetched).unwrap_err();
            assert!(matches!(err, CredentialError::NotPem { .. }), "{err:?}");
            let text = err.to_string();
            assert!(
                text.contains("Secret \"ca\" key \"ca.crt\"")
                    && text.contains("not a PEM certificate bundle"),
                "{text}"
            );
        }
    }

    #[test]
    fn insecure_skip_verify_skips_verification() {
        let access = PrometheusAccess {
            tls_config: Some(TlsConfig {
                ca: None,
                insecure_skip_verify: Some(true),
            }),
            ..PrometheusAccess::default()
        };
        let c = resolve(ADDRESS, TIMEOUT, &access, &Fetched::new()).unwrap();
        assert_eq!(c.verify, Verify::Skip);
        assert!(c.summary().contains("certificate not verified"));
        c.http_client().unwrap();
    }

    #[test]
    fn every_missing_or_unusable_value_is_a_typed_error_naming_the_field() {
        let cases: Vec<(PrometheusAccess, Fetched, &str)> = vec![
            (
                basic(),
                Fetched::new(),
                "Secret \"prom\" not found in the FeedRollout's namespace (spec.analysis.prometheus.basicAuth.username)",
            ),
            (
                basic(),
                objects(vec![(ObjectKind::Secret, "prom", FetchedObject::Missing)]),
                "Secret \"prom\" not found",
            ),
            (
                basic(),
                objects(vec![(
                    ObjectKind::Secret,
                    "prom",
                    found(&[("username", b"u")]),
                )]),
                "Secret \"prom\" has no key \"password\" (spec.analysis.prometheus.basicAuth.password)",
            ),
            (
                basic(),
                objects(vec![(
                    ObjectKind::Secret,
                    "prom",
                    found(&[("username", b"u"), ("password", b" \n")]),
                )]),
                "key \"password\" is empty",
            ),
            (
                basic(),
                objects(vec![(
                    ObjectKind::Secret,
                    "prom",
                    found(&[("username", b"u"), ("password", b"a\nb")]),
                )]),
                "cannot be sent in an HTTP header: it contains control characters",
            ),
            (
                basic(),
                objects(vec![(
                    ObjectKind::Secret,
                    "prom",
                    found(&[("username", &[0xff, 0xfe]), ("password", b"p")]),
                )]),
                "it is not UTF-8 text",
            ),
            (
                bearer(),
                objects(vec![(
                    ObjectKind::Secret,
                    "token",
                    FetchedObject::Unreadable("secrets \"token\" is forbidden".to_owned()),
                )]),
                "cannot read Secret \"token\" (spec.analysis.prometheus.authorization.credentials): secrets \"token\" is forbidden",
            ),
            (
                PrometheusAccess {
                    headers: vec![HttpHeader {
                        name: "Bad Name".to_owned(),
                        value: Some("x".to_owned()),
                        secret: None,
                    }],
                    ..PrometheusAccess::default()
                },
                Fetched::new(),
                "\"Bad Name\" is not a valid HTTP header name",
            ),
        ];
        for (access, fetched, want) in cases {
            let err = resolve(ADDRESS, TIMEOUT, &access, &fetched).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(want), "{text:?} lacks {want:?}");
        }
    }

    #[test]
    fn a_secret_value_that_cannot_be_used_is_never_quoted() {
        // A header value with a line break (a Secret written with a stray newline inside):
        // refused, with the Secret's name and key but never its value.
        let access = PrometheusAccess {
            headers: vec![HttpHeader {
                name: "X-Api-Key".to_owned(),
                value: None,
                secret: Some(secret_ref("prom", "key")),
            }],
            ..PrometheusAccess::default()
        };
        let fetched = objects(vec![(
            ObjectKind::Secret,
            "prom",
            found(&[("key", b"s3cret\nsecond-line")]),
        )]);
        let text = match resolve(ADDRESS, TIMEOUT, &access, &fetched) {
            Err(e) => e.to_string(),
            Ok(c) => match c.http_client() {
                Err(e) => e.to_string(),
                Ok(_) => panic!("a header value with a line break was accepted"),
            },
        };
        assert!(text.contains("Secret \"prom\" key \"key\""), "{text}");
        assert!(
            !text.contains("s3cret") && !text.contains("second-line"),
            "{text}"
        );
    }

    #[test]
    fn secrets_never_show_in_debug_output_and_the_key_follows_every_value() {
        let c = resolve(ADDRESS, TIMEOUT, &basic(), &prom_secret()).unwrap();
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("feedroll"),
            "{debug}"
        );
        let mut rotated = prom_secret();
        rotated.insert(
            (ObjectKind::Secret, "prom".to_owned()),
            found(&[("username", b"feedroll"), ("password", b"new")]),
        );
        let r = resolve(ADDRESS, TIMEOUT, &basic(), &rotated).unwrap();
        assert_ne!(c.key(), r.key());
        // Whitespace around a value is not a change.
        let same = resolve(ADDRESS, TIMEOUT, &basic(), &prom_secret()).unwrap();
        assert_eq!(c.key(), same.key());
        assert_ne!(c.key(), PrometheusConnection::plain(ADDRESS, TIMEOUT).key());
        assert_ne!(
            PrometheusConnection::plain(ADDRESS, TIMEOUT).key(),
            PrometheusConnection::plain(ADDRESS, Duration::from_secs(6)).key()
        );
    }
}
