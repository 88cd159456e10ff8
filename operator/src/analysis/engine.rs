//! Running checks against Prometheus.

use std::time::Duration;

use feedroll_crds::{AnalysisRun, CheckRecord, ResolvedAnalysis, ResolvedCheck};
use futures::future::join_all;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use prometheus_http_query::Client;
use prometheus_http_query::response::Data;
use thiserror::Error;

use super::classify::{Outcome, classify};
use super::presets::check_templates;
use super::render::{Side, Target, render};

/// Why the engine could not be built. (Query failures are not errors of the engine: they become
/// `error` verdicts in the records.)
#[derive(Debug, Error)]
pub enum AnalysisError {
    /// The Prometheus address is not a usable URL.
    #[error("invalid Prometheus address {address:?}: {message}")]
    Address {
        /// The address.
        address: String,
        /// Why.
        message: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Evaluates checks against one Prometheus.
#[derive(Clone)]
pub struct AnalysisEngine {
    client: Client,
    timeout: Duration,
}

impl std::fmt::Debug for AnalysisEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnalysisEngine")
            .field("prometheus", &self.client.base_url().as_str())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl AnalysisEngine {
    /// An engine for the Prometheus at `address` (e.g. `http://127.0.0.1:9090`); each query is
    /// abandoned after `timeout` (and Prometheus is asked to give up then too).
    pub fn new(address: &str, timeout: Duration) -> Result<Self, AnalysisError> {
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(timeout + Duration::from_secs(1))
            .connect_timeout(timeout)
            .build()
            .map_err(|e| AnalysisError::Client(e.to_string()))?;
        let client = Client::from(http, address).map_err(|e| AnalysisError::Address {
            address: address.to_owned(),
            message: e.to_string(),
        })?;
        Ok(Self { client, timeout })
    }

    /// An engine for the spec's Prometheus address and query timeout.
    pub fn for_analysis(analysis: &ResolvedAnalysis) -> Result<Self, AnalysisError> {
        Self::new(&analysis.prometheus, analysis.timeout)
    }

    /// Evaluates `checks` (only the roll-back-tier ones when `fast`) concurrently and returns the
    /// run, stamped `at`.
    pub async fn evaluate(
        &self,
        target: &Target,
        checks: &[ResolvedCheck],
        fast: bool,
        at: Timestamp,
    ) -> AnalysisRun {
        let selected = checks.iter().filter(|c| !fast || c.is_fast());
        let records = join_all(selected.map(|c| self.evaluate_check(target, c, at))).await;
        AnalysisRun {
            at: Some(Time(at)),
            fast,
            records,
        }
    }

    /// Evaluates one check: the canary value, the request volume when `minRequests > 0`, and
    /// the stable value when comparing.
    pub async fn evaluate_check(
        &self,
        target: &Target,
        check: &ResolvedCheck,
        at: Timestamp,
    ) -> CheckRecord {
        let (value_template, volume_template) = check_templates(check);
        let query = render(&value_template, target, Side::Canary, check.window);
        let volume_query = volume_template.map(|t| render(&t, target, Side::Canary, check.window));
        let stable_query = check
            .compare
            .map(|_| render(&value_template, target, Side::Stable, check.window));
        let (canary, volume, stable) = futures::join!(
            self.query(&query),
            self.maybe_query(volume_query.as_deref()),
            self.maybe_query(stable_query.as_deref()),
        );
        let judgement = classify(check, &canary, volume.as_ref(), stable.as_ref());
        tracing::debug!(check = %check.name, verdict = judgement.verdict.as_str(), reason = %judgement.reason, "check evaluated");
        let comparing = check.compare.is_some();
        CheckRecord {
            name: check.name.clone(),
            tier: check.tier,
            at: Some(Time(at)),
            query,
            stable_query,
            value: judgement.value,
            canary_value: if comparing { finite(&canary) } else { None },
            stable_value: stable.as_ref().and_then(finite),
            requests: volume.as_ref().and_then(finite),
            threshold: check.threshold_text(),
            verdict: judgement.verdict,
            reason: judgement.reason,
        }
    }

    async fn maybe_query(&self, query: Option<&str>) -> Option<Outcome> {
        match query {
            Some(q) => Some(self.query(q).await),
            None => None,
        }
    }

    /// Runs one instant query with the engine's timeout.
    pub async fn query(&self, query: &str) -> Outcome {
        let millis = i64::try_from(self.timeout.as_millis()).unwrap_or(i64::MAX);
        let request = self.client.query(query).timeout(millis).get();
        match tokio::time::timeout(self.timeout, request).await {
            Err(_) => Outcome::Error(format!(
                "Prometheus did not answer within {:?}",
                self.timeout
            )),
            Ok(Err(e)) => Outcome::Error(format!("Prometheus query failed: {}", error_chain(&e))),
            Ok(Ok(result)) => match result.data() {
                Data::Vector(v) => match v.as_slice() {
                    [] => Outcome::Empty,
                    [one] => Outcome::Value(one.sample().value()),
                    many => Outcome::Many(many.len()),
                },
                Data::Scalar(s) => Outcome::Value(s.value()),
                Data::Matrix(m) if m.is_empty() => Outcome::Empty,
                Data::Matrix(m) => Outcome::Many(m.len()),
            },
        }
    }
}

/// An error and its sources, `a: b: c`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let mut more = s.to_string();
        // reqwest repeats the whole (long, URL-encoded) query URL: the query is in the record.
        if let Some(start) = more.find(" for url (")
            && let Some(len) = more[start..].find(')')
        {
            more.replace_range(start..start + len + 1, "");
        }
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

fn finite(outcome: &Outcome) -> Option<f64> {
    match outcome {
        Outcome::Value(v) if v.is_finite() => Some(*v),
        _ => None,
    }
}
