//! One TLS backend for the whole process: rustls with `ring`.
//!
//! kube 5 uses rustls with ring; reqwest 0.13 (inside prometheus-http-query) is built with
//! `rustls-no-provider` and picks up the process default installed here. Installing it
//! explicitly also keeps both working if another crate in the build enables aws-lc-rs, in which
//! case rustls could no longer pick a provider from its crate features.

/// Installs ring as the process-wide rustls crypto provider. Idempotent; call it before building
/// any kube or Prometheus client (the analysis engine and `main` do).
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may win the race; either way a provider is installed afterwards.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
