//! The reconciler's side of the replay gate: find a ready stable pod (in the pod cache), read
//! the admin key, and
//! ask the pod through [`crate::analysis::replay`]. Every way this can fail becomes a
//! [`ReplayOutcome::Failed`] with why, which the brain holds on (then pauses after `maxHold`).
//!
//! The pod is addressed directly (its pod IP and the container port named `http`, which the
//! operator adds to every feed-server container), not through the Service: the replay must run
//! on a stable pod, and a Service may route to a canary pod.

use feed_profile::RankingProfile;
use feedroll_crds::FeedRollout;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::Api;

use super::caches::Caches;
use crate::analysis::replay::{self, ReplayCall};
use crate::brain::{ReplayAsk, ReplayOutcome};
use crate::desired::ports::{DEFAULT_PORT, HTTP_PORT};
use crate::desired::{Names, Track};
use crate::observe;

/// `http://<IP>:<http port>` of a ready pod, if it has both.
pub fn pod_url(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let ip = status.pod_ip.as_deref().filter(|ip| !ip.is_empty())?;
    let port = pod
        .spec
        .as_ref()?
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(HTTP_PORT))
        .map_or(DEFAULT_PORT, |p| p.container_port);
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_owned()
    };
    ready.then(|| format!("http://{host}:{port}"))
}

async fn admin_key(client: &Client, ns: &str, ask: &ReplayAsk) -> Result<Option<String>, String> {
    let Some(r) = &ask.gate.admin_key else {
        return Ok(None);
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret = secrets
        .get_opt(&r.name)
        .await
        .map_err(|e| format!("Secret {}: {e}", r.name))?
        .ok_or_else(|| format!("Secret {} (strategy.replayGate.adminKey) not found", r.name))?;
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&r.key))
        .ok_or_else(|| format!("Secret {} has no key {}", r.name, r.key))?;
    let text = String::from_utf8(value.0.clone())
        .map_err(|_| format!("Secret {} key {} is not UTF-8", r.name, r.key))?;
    Ok(Some(text.trim().to_owned()))
}

/// Asks a ready stable pod of `fr` for the replay `ask` describes: the stable profile is the one
/// recorded on the stable Deployment, the canary profile the spec's.
pub async fn ask_stable_pod(
    client: &Client,
    caches: &Caches,
    fr: &FeedRollout,
    names: &Names,
    stable: Option<&Deployment>,
    ask: &ReplayAsk,
    now: Timestamp,
) -> ReplayOutcome {
    match try_ask(client, caches, fr, names, stable, ask, now).await {
        Ok(outcome) => outcome,
        Err(why) => ReplayOutcome::Failed(why),
    }
}

async fn try_ask(
    client: &Client,
    caches: &Caches,
    fr: &FeedRollout,
    names: &Names,
    stable: Option<&Deployment>,
    ask: &ReplayAsk,
    now: Timestamp,
) -> Result<ReplayOutcome, String> {
    let stable_profile = stable
        .and_then(observe::recorded_source)
        .map(|(_, s)| s.ranking_profile.unwrap_or_default())
        .ok_or("the stable Deployment records no source (its profile is unknown)")?;
    let canary_profile: RankingProfile = fr.spec.ranking_profile.clone().unwrap_or_default();
    let url = caches
        .pods(&names.namespace, &names.rollout, Track::Stable)
        .iter()
        .find_map(|p| pod_url(p))
        .ok_or("no ready stable pod with a pod IP to ask")?;
    let key = admin_key(client, &names.namespace, ask).await?;
    let http = replay::client().map_err(|e| format!("HTTP client: {e}"))?;
    let call = ReplayCall {
        base_url: &url,
        admin_key: key.as_deref(),
        stable: &stable_profile,
        canary: &canary_profile,
        window: ask.window,
        now,
    };
    Ok(replay::ask(&http, &call).await)
}
