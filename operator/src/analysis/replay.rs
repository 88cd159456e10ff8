//! The replay gate's HTTP adapter: `POST /v1/admin/replay` on one stable feed-server pod, the
//! answer turned into a [`ReplayOutcome`] for the brain ([`crate::brain::judge`] decides). Thin on
//! purpose: no decision here, every failure becomes [`ReplayOutcome::Failed`] with why (never a
//! silent skip), and a `too_few_exposures` answer becomes [`ReplayOutcome::TooFewExposures`].

use std::time::Duration;

use feed_profile::RankingProfile;
use feedroll_crds::{ReplayFigure, ReplayMetric};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::json;

use crate::brain::{ReplayAnswer, ReplayOutcome};

/// How long one replay may take (the pod replays the window's log on a blocking thread).
pub const REPLAY_TIMEOUT: Duration = Duration::from_secs(30);

/// What to ask one pod.
pub struct ReplayCall<'a> {
    /// `http://<pod IP>:<http port>`.
    pub base_url: &'a str,
    /// An API key with the `admin` scope, sent as a bearer token.
    pub admin_key: Option<&'a str>,
    /// The profile serving now.
    pub stable: &'a RankingProfile,
    /// The candidate.
    pub canary: &'a RankingProfile,
    /// Look-back of the replay, ending at `now`.
    pub window: Duration,
    /// The end of the window.
    pub now: Timestamp,
}

#[derive(Deserialize)]
struct Figures {
    gauc_finish: Option<f64>,
    ndcg10_watch: Option<f64>,
    gauc_like: Option<f64>,
}

#[derive(Deserialize)]
struct Difference {
    estimate: Option<f64>,
    lower: Option<f64>,
    upper: Option<f64>,
}

#[derive(Deserialize)]
struct Differences {
    gauc_finish: Difference,
    ndcg10_watch: Difference,
    gauc_like: Difference,
}

#[derive(Deserialize)]
struct Bootstrap {
    confidence: f64,
}

#[derive(Deserialize)]
struct Answer {
    exposures: i64,
    stable: Figures,
    canary: Figures,
    differences: Differences,
    bootstrap: Bootstrap,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

impl Answer {
    fn into_answer(self) -> ReplayAnswer {
        let fig = |metric, s: Option<f64>, c: Option<f64>, d: &Difference| ReplayFigure {
            metric: Some(metric),
            stable: s,
            canary: c,
            difference: d.estimate,
            lower: d.lower,
            upper: d.upper,
            max_drop: None,
        };
        let (s, c, d) = (&self.stable, &self.canary, &self.differences);
        ReplayAnswer {
            exposures: self.exposures,
            confidence: self.bootstrap.confidence,
            figures: vec![
                fig(
                    ReplayMetric::GaucFinish,
                    s.gauc_finish,
                    c.gauc_finish,
                    &d.gauc_finish,
                ),
                fig(
                    ReplayMetric::NdcgWatch,
                    s.ndcg10_watch,
                    c.ndcg10_watch,
                    &d.ndcg10_watch,
                ),
                fig(
                    ReplayMetric::LikeAuc,
                    s.gauc_like,
                    c.gauc_like,
                    &d.gauc_like,
                ),
            ],
        }
    }
}

/// The client the calls share (no redirects: the admin key must not follow one).
pub fn client() -> Result<reqwest::Client, String> {
    crate::tls::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REPLAY_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| super::engine::error_chain(&e))
}

/// Asks the pod; see the module docs.
pub async fn ask(client: &reqwest::Client, call: &ReplayCall<'_>) -> ReplayOutcome {
    let window = SignedDuration::try_from(call.window).unwrap_or(SignedDuration::MAX);
    let since = call.now.checked_sub(window).unwrap_or(Timestamp::MIN);
    let body = json!({
        "since": since.to_string(),
        "until": call.now.to_string(),
        "stable": call.stable,
        "canary": call.canary,
    });
    let url = format!("{}/v1/admin/replay", call.base_url.trim_end_matches('/'));
    let mut request = client
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string());
    if let Some(key) = call.admin_key {
        request = request.bearer_auth(key);
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            return ReplayOutcome::Failed(format!(
                "POST {url}: {}",
                super::engine::error_chain(&e)
            ));
        }
    };
    let status = response.status();
    let text = match response.text().await {
        Ok(t) => t,
        Err(e) => return ReplayOutcome::Failed(format!("POST {url}: reading the answer: {e}")),
    };
    if status.is_success() {
        return match serde_json::from_str::<Answer>(&text) {
            Ok(a) => ReplayOutcome::Answered(a.into_answer()),
            Err(e) => ReplayOutcome::Failed(format!("POST {url}: unreadable answer: {e}")),
        };
    }
    match serde_json::from_str::<ErrorBody>(&text) {
        Ok(b) if b.error.code == "too_few_exposures" => {
            ReplayOutcome::TooFewExposures(b.error.message)
        }
        Ok(b) => ReplayOutcome::Failed(format!(
            "POST {url}: {status} {}: {}",
            b.error.code, b.error.message
        )),
        Err(_) => ReplayOutcome::Failed(format!(
            "POST {url}: {status} {}",
            text.chars().take(200).collect::<String>()
        )),
    }
}
