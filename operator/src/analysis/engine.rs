//! Running checks against Prometheus.

use std::time::Duration;

use feedroll_crds::{
    AnalysisRun, CheckRecord, ResolvedAnalysis, ResolvedCheck, SequentialTest, SideCounts,
};
use futures::future::join_all;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use prometheus_http_query::Client;
use prometheus_http_query::response::Data;
use thiserror::Error;

use super::classify::{Outcome, classify};
use super::connection::{CredentialError, PrometheusConnection};
use super::fault::{PrometheusFault, classify_query_error};
use prometheus_http_query::response::PromqlResult;
use std::collections::HashMap;

use super::counts::{CountOutcomes, judge_counts};
use super::presets::{check_templates, count_templates, grouped_templates};
use super::render::{SeriesKey, Side, Target, group_labels, render, render_grouped};

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
    /// The HTTP client could not be built (credentials, headers or CA bundle unusable).
    #[error(transparent)]
    Client(#[from] CredentialError),
}

/// The runs of [`AnalysisEngine::evaluate_many`], in the order of the rollouts given, and how
/// many queries Prometheus answered for them.
#[derive(Clone, Debug, PartialEq)]
pub struct ManyRuns {
    /// One run per rollout.
    pub runs: Vec<AnalysisRun>,
    /// Distinct queries sent.
    pub queries: usize,
    /// The connection fault some query met (401/403, TLS, unreachable), if any.
    pub fault: Option<PrometheusFault>,
}

/// A query that got no answer: the message for the records and, when the connection itself
/// failed, the fault.
#[derive(Clone, Debug)]
struct Failure {
    message: String,
    fault: Option<PrometheusFault>,
}

/// How one number of one check of one rollout is obtained.
#[derive(Clone, Debug)]
enum Source {
    /// Its own query (custom PromQL), by query text.
    Own(String),
    /// A series of a grouped query.
    Grouped(String, SeriesKey),
}

/// Every series of an instant vector: its labels and value.
type Series = Vec<(HashMap<String, String>, f64)>;

/// What a query returned, kept for every rollout that needs it.
#[derive(Clone, Debug)]
enum Answer {
    Own(Outcome),
    Series(Result<Series, String>),
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
    /// An engine for the Prometheus at `address` (e.g. `http://127.0.0.1:9090`) without
    /// credentials; each query is abandoned after `timeout` (and Prometheus is asked to give up
    /// then too).
    pub fn new(address: &str, timeout: Duration) -> Result<Self, AnalysisError> {
        Self::connect(&PrometheusConnection::plain(address, timeout))
    }

    /// An engine for `connection`: its address and timeout, credentials, headers and TLS.
    pub fn connect(connection: &PrometheusConnection) -> Result<Self, AnalysisError> {
        let http = connection.http_client()?;
        let address = connection.address.as_str();
        let client = Client::from(http, address).map_err(|e| AnalysisError::Address {
            address: address.to_owned(),
            message: e.to_string(),
        })?;
        Ok(Self {
            client,
            timeout: connection.timeout,
        })
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
        if let Some(plan) = CountPlan::of(check, target) {
            let [ce, ct, se, st] = plan.queries.clone();
            let (ce, ct, se, st) = futures::join!(
                self.query(&ce),
                self.query(&ct),
                self.query(&se),
                self.query(&st)
            );
            return plan.record(check, at, [ce, ct, se, st]);
        }
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
        record(
            check,
            at,
            query,
            stable_query,
            &canary,
            volume.as_ref(),
            stable.as_ref(),
        )
    }

    /// Evaluates many rollouts at once: every distinct preset query runs once, grouped by
    /// rollout, and each rollout's series is picked from the answer; custom queries run per
    /// rollout, deduplicated by text. Records are the same as [`Self::evaluate`] gives (their
    /// `query` is the equivalent per-rollout query, to reproduce by hand).
    pub async fn evaluate_many(
        &self,
        rollouts: &[(Target, Vec<ResolvedCheck>)],
        fast: bool,
        at: Timestamp,
    ) -> ManyRuns {
        struct ValuePlan<'a> {
            check: &'a ResolvedCheck,
            query: String,
            stable_query: Option<String>,
            value: Source,
            volume: Option<Source>,
            stable: Option<Source>,
        }
        /// How one check of one rollout is evaluated.
        enum Plan<'a> {
            /// A value (and a volume, and stable's value when comparing).
            Value(Box<ValuePlan<'a>>),
            /// The four counts of a sequential check.
            Counts(&'a ResolvedCheck, CountPlan),
        }
        let mut plans: Vec<Vec<Plan<'_>>> = Vec::with_capacity(rollouts.len());
        let mut queries: Vec<(String, bool)> = Vec::new();
        let mut need = |q: String, grouped: bool| {
            if !queries.iter().any(|(have, _)| *have == q) {
                queries.push((q.clone(), grouped));
            }
            q
        };
        for (target, checks) in rollouts {
            let mut rollout_plans = Vec::new();
            for check in checks.iter().filter(|c| !fast || c.is_fast()) {
                if let Some(plan) = CountPlan::of(check, target) {
                    for q in &plan.queries {
                        need(q.clone(), false);
                    }
                    rollout_plans.push(Plan::Counts(check, plan));
                    continue;
                }
                let (value_template, volume_template) = check_templates(check);
                let query = render(&value_template, target, Side::Canary, check.window);
                let stable_query = check
                    .compare
                    .map(|_| render(&value_template, target, Side::Stable, check.window));
                let (value, volume, stable) =
                    match grouped_templates(check, group_labels(&target.traffic)) {
                        Some((gv, gvol)) => {
                            let traffic = &target.traffic;
                            let grouped =
                                |t: &str, side| render_grouped(t, side, traffic, check.window);
                            let canary_key = SeriesKey::of(target, Side::Canary);
                            (
                                Source::Grouped(
                                    need(grouped(&gv, Side::Canary), true),
                                    canary_key.clone(),
                                ),
                                gvol.map(|t| {
                                    Source::Grouped(
                                        need(grouped(&t, Side::Canary), true),
                                        canary_key.clone(),
                                    )
                                }),
                                check.compare.map(|_| {
                                    Source::Grouped(
                                        need(grouped(&gv, Side::Stable), true),
                                        SeriesKey::of(target, Side::Stable),
                                    )
                                }),
                            )
                        }
                        None => (
                            Source::Own(need(query.clone(), false)),
                            volume_template.map(|t| {
                                Source::Own(need(
                                    render(&t, target, Side::Canary, check.window),
                                    false,
                                ))
                            }),
                            stable_query.clone().map(|q| Source::Own(need(q, false))),
                        ),
                    };
                rollout_plans.push(Plan::Value(Box::new(ValuePlan {
                    check,
                    query,
                    stable_query,
                    value,
                    volume,
                    stable,
                })));
            }
            plans.push(rollout_plans);
        }
        let results = join_all(queries.iter().map(|(q, grouped)| async move {
            let result = self.instant(q).await;
            let fault = result.as_ref().err().and_then(|f| f.fault.clone());
            let answer = if *grouped {
                Answer::Series(series_of(result))
            } else {
                Answer::Own(outcome_of(result))
            };
            (q.clone(), answer, fault)
        }))
        .await;
        let fault = results.iter().find_map(|(_, _, f)| f.clone());
        let answers: HashMap<String, Answer> =
            results.into_iter().map(|(q, a, _)| (q, a)).collect();
        let outcome = |source: &Source| -> Outcome {
            let (q, key) = match source {
                Source::Own(q) => (q, None),
                Source::Grouped(q, key) => (q, Some(key)),
            };
            match (answers.get(q), key) {
                (Some(Answer::Own(o)), _) => o.clone(),
                (Some(Answer::Series(Ok(series))), Some(key)) => {
                    let mine: Vec<f64> = series
                        .iter()
                        .filter(|(labels, _)| key.matches(labels))
                        .map(|(_, v)| *v)
                        .collect();
                    match mine.as_slice() {
                        [] => Outcome::Empty,
                        [one] => Outcome::Value(*one),
                        many => Outcome::Many(many.len()),
                    }
                }
                (Some(Answer::Series(Err(e))), _) => Outcome::Error(e.clone()),
                _ => Outcome::Error("internal: query result missing".to_owned()),
            }
        };
        let runs = plans
            .into_iter()
            .map(|rollout_plans| AnalysisRun {
                at: Some(Time(at)),
                fast,
                records: rollout_plans
                    .into_iter()
                    .map(|p| match p {
                        Plan::Counts(check, plan) => {
                            let outcomes = plan.queries.clone().map(|q| outcome(&Source::Own(q)));
                            plan.record(check, at, outcomes)
                        }
                        Plan::Value(p) => {
                            let canary = outcome(&p.value);
                            let volume = p.volume.as_ref().map(&outcome);
                            let stable = p.stable.as_ref().map(&outcome);
                            record(
                                p.check,
                                at,
                                p.query,
                                p.stable_query,
                                &canary,
                                volume.as_ref(),
                                stable.as_ref(),
                            )
                        }
                    })
                    .collect(),
            })
            .collect();
        ManyRuns {
            runs,
            queries: queries.len(),
            fault,
        }
    }

    /// Runs one instant query with the engine's timeout.
    async fn instant(&self, query: &str) -> Result<PromqlResult, Failure> {
        let millis = i64::try_from(self.timeout.as_millis()).unwrap_or(i64::MAX);
        let request = self.client.query(query).timeout(millis).get();
        match tokio::time::timeout(self.timeout, request).await {
            Err(_) => Err(Failure {
                message: format!("Prometheus did not answer within {:?}", self.timeout),
                fault: None,
            }),
            Ok(Err(e)) => {
                let chain = error_chain(&e);
                let fault = classify_query_error(&e, &chain);
                let message = match &fault {
                    Some(f) => f.to_string(),
                    None => format!("Prometheus query failed: {chain}"),
                };
                Err(Failure { message, fault })
            }
            Ok(Ok(result)) => Ok(result),
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
        outcome_of(self.instant(query).await)
    }
}

/// One number from an instant query's answer.
fn outcome_of(result: Result<PromqlResult, Failure>) -> Outcome {
    match result {
        Err(f) => Outcome::Error(f.message),
        Ok(result) => match result.data() {
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

/// Every series of an instant query's answer, with its labels.
fn series_of(result: Result<PromqlResult, Failure>) -> Result<Series, String> {
    match result {
        Err(f) => Err(f.message),
        Ok(result) => match result.data() {
            Data::Vector(v) => Ok(v
                .iter()
                .map(|s| (s.metric().clone(), s.sample().value()))
                .collect()),
            Data::Scalar(s) => Ok(vec![(HashMap::new(), s.value())]),
            Data::Matrix(_) => {
                Err("query returned a range vector; expected an instant vector".to_owned())
            }
        },
    }
}

/// The four count queries of a sequential check for one rollout, rendered over the check's
/// window (the step so far: see [`super::counts`]).
#[derive(Clone, Debug)]
struct CountPlan {
    test: SequentialTest,
    /// Canary events, canary trials, stable events, stable trials.
    queries: [String; 4],
}

impl CountPlan {
    /// The plan of `check` when it is sequential.
    fn of(check: &ResolvedCheck, target: &Target) -> Option<Self> {
        let test = check.sequential?;
        let t = count_templates(check)?;
        let r = |template: &str, side| render(template, target, side, check.window);
        Some(Self {
            test,
            queries: [
                r(&t.events, Side::Canary),
                r(&t.trials, Side::Canary),
                r(&t.events, Side::Stable),
                r(&t.trials, Side::Stable),
            ],
        })
    }

    /// The record of the four outcomes, in the order of `queries`.
    fn record(&self, check: &ResolvedCheck, at: Timestamp, outcomes: [Outcome; 4]) -> CheckRecord {
        let [canary_events, canary_trials, stable_events, stable_trials] = outcomes;
        let min_trials = u64::try_from(check.min_requests).unwrap_or(0);
        let (judgement, evidence) = judge_counts(
            &self.test,
            &CountOutcomes {
                canary_events,
                canary_trials,
                stable_events,
                stable_trials,
            },
            min_trials,
            check.window,
        );
        tracing::debug!(check = %check.name, verdict = judgement.verdict.as_str(), reason = %judgement.reason, "sequential check evaluated");
        let share = |c: SideCounts| (c.trials > 0).then(|| c.events as f64 / c.trials as f64);
        CheckRecord {
            name: check.name.clone(),
            tier: check.tier,
            at: Some(Time(at)),
            query: self.queries[0].clone(),
            stable_query: Some(self.queries[2].clone()),
            value: judgement.value,
            canary_value: evidence.as_ref().and_then(|e| share(e.canary)),
            stable_value: evidence.as_ref().and_then(|e| share(e.stable)),
            requests: evidence.as_ref().map(|e| e.canary.trials as f64),
            threshold: check.threshold_text(),
            verdict: judgement.verdict,
            reason: judgement.reason,
            evidence,
        }
    }
}

/// Classifies the outcomes of one check and builds its record.
fn record(
    check: &ResolvedCheck,
    at: Timestamp,
    query: String,
    stable_query: Option<String>,
    canary: &Outcome,
    volume: Option<&Outcome>,
    stable: Option<&Outcome>,
) -> CheckRecord {
    let judgement = classify(check, canary, volume, stable);
    tracing::debug!(check = %check.name, verdict = judgement.verdict.as_str(), reason = %judgement.reason, "check evaluated");
    let comparing = check.compare.is_some();
    CheckRecord {
        name: check.name.clone(),
        tier: check.tier,
        at: Some(Time(at)),
        query,
        stable_query,
        value: judgement.value,
        canary_value: if comparing { finite(canary) } else { None },
        stable_value: stable.and_then(finite),
        requests: volume.and_then(finite),
        threshold: check.threshold_text(),
        verdict: judgement.verdict,
        reason: judgement.reason,
        evidence: None,
    }
}

/// An error and its sources, `a: b: c`.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
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
