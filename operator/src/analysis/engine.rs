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

/// How a query's answer is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Grouping {
    /// A query of one rollout's check (custom PromQL): one number.
    Own,
    /// A query of several series, each read by its labels: a preset query grouped by rollout
    /// and side (each rollout picks its series) or a sequential check's counts (see
    /// [`CountPlan`]).
    Grouped,
}

/// What a query returned, kept for every rollout that needs it.
#[derive(Clone, Debug)]
enum Answer {
    /// The number of a query of its own.
    Own(Outcome),
    /// Every series of a grouped query, or why there are none.
    Series(Result<Series, String>),
}

impl Answer {
    /// The number one rollout reads: the answer of a query of its own, or the series of `key`
    /// in a grouped answer (all series when no key is given).
    fn outcome(&self, key: Option<&SeriesKey>) -> Outcome {
        self.of_series(|labels| key.is_none_or(|k| k.matches(labels)))
    }

    /// The count `name` of a sequential check's one query (see [`CountPlan`]).
    fn count(&self, name: &str) -> Outcome {
        match self {
            Self::Series(Err(e)) if e.contains("got scalar") => Outcome::Error(format!(
                "{e} (each count must be an instant vector, e.g. sum(increase(...)), not a scalar)"
            )),
            _ => self.of_series(|labels| labels.get(COUNT_LABEL).is_some_and(|l| l == name)),
        }
    }

    /// The answer of a query of its own, or the one number among the series whose labels
    /// `mine` accepts (nothing, or too many, said so).
    fn of_series(&self, mine: impl Fn(&HashMap<String, String>) -> bool) -> Outcome {
        match self {
            Self::Own(o) => o.clone(),
            Self::Series(Err(e)) => Outcome::Error(e.clone()),
            Self::Series(Ok(series)) => {
                let values: Vec<f64> = series
                    .iter()
                    .filter(|(labels, _)| mine(labels))
                    .map(|(_, v)| *v)
                    .collect();
                match values.as_slice() {
                    [] => Outcome::Empty,
                    [one] => Outcome::Value(*one),
                    many => Outcome::Many(many.len()),
                }
            }
        }
    }
}

/// One request's classified answer and the connection fault it met, if any.
struct Asked {
    /// The classified answer (an `error` outcome when the request failed).
    answer: Answer,
    /// The connection fault (401/403, TLS, unreachable) behind a failed request.
    fault: Option<PrometheusFault>,
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

    /// Evaluates `checks` (only the roll-back-tier ones when `fast`) for one rollout and returns
    /// the run, stamped `at`: [`Self::evaluate_many`] of that one rollout, so the CLI, the e2e
    /// and the reconciler's batches send the same queries and classify them the same way.
    pub async fn evaluate(
        &self,
        target: &Target,
        checks: &[ResolvedCheck],
        fast: bool,
        at: Timestamp,
    ) -> AnalysisRun {
        let mut many = self
            .evaluate_many(&[(target.clone(), checks.to_vec())], fast, at)
            .await;
        many.runs.pop().unwrap_or(AnalysisRun {
            at: Some(Time(at)),
            fast,
            records: Vec::new(),
        })
    }

    /// Evaluates many rollouts at once: every distinct preset query runs once, grouped by
    /// rollout, and each rollout's series is picked from the answer; custom queries run per
    /// rollout, deduplicated by text. Each record's `query` is the equivalent per-rollout query,
    /// to reproduce by hand (e.g. with [`Self::query`]).
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
        let mut queries: Vec<(String, Grouping)> = Vec::new();
        let mut need = |q: String, grouping: Grouping| {
            if !queries.iter().any(|(have, _)| *have == q) {
                queries.push((q.clone(), grouping));
            }
            q
        };
        for (target, checks) in rollouts {
            let mut rollout_plans = Vec::new();
            for check in checks.iter().filter(|c| !fast || c.is_fast()) {
                if let Some(plan) = CountPlan::of(check, target) {
                    need(plan.together.clone(), Grouping::Grouped);
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
                                    need(grouped(&gv, Side::Canary), Grouping::Grouped),
                                    canary_key.clone(),
                                ),
                                gvol.map(|t| {
                                    Source::Grouped(
                                        need(grouped(&t, Side::Canary), Grouping::Grouped),
                                        canary_key.clone(),
                                    )
                                }),
                                check.compare.map(|_| {
                                    Source::Grouped(
                                        need(grouped(&gv, Side::Stable), Grouping::Grouped),
                                        SeriesKey::of(target, Side::Stable),
                                    )
                                }),
                            )
                        }
                        None => (
                            Source::Own(need(query.clone(), Grouping::Own)),
                            volume_template.map(|t| {
                                Source::Own(need(
                                    render(&t, target, Side::Canary, check.window),
                                    Grouping::Own,
                                ))
                            }),
                            stable_query
                                .clone()
                                .map(|q| Source::Own(need(q, Grouping::Own))),
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
        let asked = join_all(queries.iter().map(|(q, grouping)| self.ask(q, *grouping))).await;
        let fault = asked.iter().find_map(|a| a.fault.clone());
        let answers: HashMap<&str, Answer> = queries
            .iter()
            .map(|(q, _)| q.as_str())
            .zip(asked.into_iter().map(|a| a.answer))
            .collect();
        let outcome = |source: &Source| -> Outcome {
            let (q, key) = match source {
                Source::Own(q) => (q, None),
                Source::Grouped(q, key) => (q, Some(key)),
            };
            match answers.get(q.as_str()) {
                Some(answer) => answer.outcome(key),
                None => Outcome::Error("internal: query result missing".to_owned()),
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
                            let outcomes = match answers.get(plan.together.as_str()) {
                                Some(answer) => COUNTS.map(|count| answer.count(count)),
                                None => COUNTS.map(|_| {
                                    Outcome::Error("internal: query result missing".to_owned())
                                }),
                            };
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

    /// The one request to Prometheus: sends the instant query `query` with the engine's
    /// timeout (Prometheus is asked to give up then too) and classifies the answer — one number
    /// ([`Outcome`]) for a query of its own, every series for a grouped one — along with the
    /// connection fault a failed request met.
    async fn ask(&self, query: &str, grouping: Grouping) -> Asked {
        let millis = i64::try_from(self.timeout.as_millis()).unwrap_or(i64::MAX);
        let request = self.client.query(query).timeout(millis).get();
        let result = match tokio::time::timeout(self.timeout, request).await {
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
        };
        let fault = result.as_ref().err().and_then(|f| f.fault.clone());
        let answer = match grouping {
            Grouping::Own => Answer::Own(outcome_of(result)),
            Grouping::Grouped => Answer::Series(series_of(result)),
        };
        Asked { answer, fault }
    }

    /// Runs one instant query (a query of its own: one number expected) with the engine's
    /// timeout.
    pub async fn query(&self, query: &str) -> Outcome {
        self.ask(query, Grouping::Own).await.answer.outcome(None)
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

/// The label that names each count in a sequential check's one query.
const COUNT_LABEL: &str = "feedroll_count";

/// The counts of a sequential check, in the order of [`CountPlan::queries`]: the values of
/// [`COUNT_LABEL`] in its one query.
const COUNTS: [&str; 4] = [
    "canary_events",
    "canary_trials",
    "stable_events",
    "stable_trials",
];

/// The four counts of a sequential check for one rollout, rendered over the check's window (the
/// step so far: see [`super::counts`]).
///
/// They are asked in one query ([`Self::together`]), each count labelled with
/// [`COUNT_LABEL`]: Prometheus answers a query from one state of its storage (a scrape is seen
/// whole or not at all) at one evaluation time. Four queries could straddle a scrape or a sample
/// leaving the window, and read a side's trials without its events (no errors at all: a false
/// pass, most likely early in a step when the window holds one or two samples) or its events
/// without its trials.
#[derive(Clone, Debug)]
struct CountPlan {
    test: SequentialTest,
    /// Canary events, canary trials, stable events, stable trials: each on its own, as the
    /// records show them to reproduce by hand.
    queries: [String; 4],
    /// The four as one query: `label_replace(<count>, "feedroll_count", "<name>", "", "") or …`.
    together: String,
}

/// The counts `queries` (in the order of [`COUNTS`]) as one query whose series carry
/// [`COUNT_LABEL`]. Every count must be an instant vector (`sum(increase(…))`), not a scalar.
fn counts_together(queries: &[String; 4]) -> String {
    queries
        .iter()
        .zip(COUNTS)
        .map(|(q, name)| format!("label_replace({q}, \"{COUNT_LABEL}\", \"{name}\", \"\", \"\")"))
        .collect::<Vec<_>>()
        .join(" or ")
}

impl CountPlan {
    /// The plan of `check` when it is sequential.
    fn of(check: &ResolvedCheck, target: &Target) -> Option<Self> {
        let test = check.sequential?;
        let t = count_templates(check)?;
        let r = |template: &str, side| render(template, target, side, check.window);
        let queries = [
            r(&t.events, Side::Canary),
            r(&t.trials, Side::Canary),
            r(&t.events, Side::Stable),
            r(&t.trials, Side::Stable),
        ];
        Some(Self {
            test,
            together: counts_together(&queries),
            queries,
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
