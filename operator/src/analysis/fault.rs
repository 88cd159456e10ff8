//! Faults of the connection to Prometheus, as opposed to faults of one query: the credentials
//! cannot be resolved, Prometheus refuses them (401/403), the TLS handshake fails, or nothing
//! answers. Every check of the run then gets verdict `error` with the fault's message, and the
//! reconciler raises one Warning Event per change of fault.

use thiserror::Error;

use super::connection::CredentialError;

/// Why no query of a run could be answered.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum PrometheusFault {
    /// The credentials, headers or CA bundle cannot be resolved.
    #[error("Prometheus credentials: {0}")]
    Credentials(#[from] CredentialError),
    /// Prometheus (or the proxy in front of it) refused the credentials.
    #[error(
        "Prometheus answered {status} {text}: the credentials in spec.analysis.prometheus are missing or refused",
        text = status_text(*.status)
    )]
    Rejected {
        /// 401 or 403.
        status: u16,
    },
    /// The TLS handshake failed (unknown CA, wrong name, expired certificate, plain HTTP).
    #[error("TLS handshake with Prometheus failed: {0}")]
    Tls(String),
    /// No connection could be made.
    #[error("Prometheus unreachable: {0}")]
    Unreachable(String),
}

impl PrometheusFault {
    /// The kind, for Event reasons and tests.
    pub fn kind(&self) -> FaultKind {
        match self {
            PrometheusFault::Credentials(_) => FaultKind::Credentials,
            PrometheusFault::Rejected { .. } => FaultKind::Rejected,
            PrometheusFault::Tls(_) => FaultKind::Tls,
            PrometheusFault::Unreachable(_) => FaultKind::Unreachable,
        }
    }
}

/// The kinds of [`PrometheusFault`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// See [`PrometheusFault::Credentials`].
    Credentials,
    /// See [`PrometheusFault::Rejected`].
    Rejected,
    /// See [`PrometheusFault::Tls`].
    Tls,
    /// See [`PrometheusFault::Unreachable`].
    Unreachable,
}

fn status_text(status: u16) -> &'static str {
    match status {
        401 => "Unauthorized",
        403 => "Forbidden",
        _ => "",
    }
}

/// The connection fault behind a failed query, if it is one (a bad query, a Prometheus-side
/// timeout or a 5xx is not: those stay plain `error` records). `chain` is the error's text with
/// its sources, for the message.
pub fn classify_query_error(
    error: &prometheus_http_query::Error,
    chain: &str,
) -> Option<PrometheusFault> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(e) = source {
        if let Some(r) = e.downcast_ref::<reqwest::Error>() {
            if let Some(status) = r.status()
                && matches!(status.as_u16(), 401 | 403)
            {
                return Some(PrometheusFault::Rejected {
                    status: status.as_u16(),
                });
            }
            if r.is_connect() {
                return Some(if is_tls(r) {
                    PrometheusFault::Tls(tls_message(chain))
                } else {
                    PrometheusFault::Unreachable(chain.to_owned())
                });
            }
        }
        source = e.source();
    }
    None
}

/// Whether a connect error is a TLS failure: a `rustls::Error` somewhere in its chain (inside
/// an `io::Error`, whose `source` skips it), or, as the connector layers do not always keep the
/// typed error, a chain that reads like one (rustls' messages: "invalid peer certificate",
/// "received fatal alert", "received corrupt message", "peer is incompatible").
fn is_tls(error: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(<dyn std::error::Error + Send + Sync + 'static>::is::<rustls::Error>)
        {
            return true;
        }
        let text = e.to_string();
        if [
            "invalid peer certificate",
            "received fatal alert",
            "received corrupt message",
            "peer is incompatible",
            "certificate",
        ]
        .iter()
        .any(|m| text.contains(m))
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// The useful end of a TLS error chain, with a hint.
fn tls_message(chain: &str) -> String {
    let hint = if chain.contains("UnknownIssuer") {
        " (the certificate is not signed by a trusted CA: set spec.analysis.prometheus.tlsConfig.ca)"
    } else {
        ""
    };
    format!("{chain}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_happened_and_what_to_check() {
        assert_eq!(
            PrometheusFault::Rejected { status: 401 }.to_string(),
            "Prometheus answered 401 Unauthorized: the credentials in spec.analysis.prometheus are missing or refused"
        );
        assert!(
            PrometheusFault::Rejected { status: 403 }
                .to_string()
                .contains("403 Forbidden")
        );
        assert!(tls_message("invalid peer certificate: UnknownIssuer").contains("tlsConfig.ca"));
        assert_eq!(PrometheusFault::Tls("x".into()).kind(), FaultKind::Tls);
    }
}
