//! Stage `apply`: server-side apply of the built objects under the `feedroll-operator` field
//! manager (drifted Deployments are sent even when the apply cache holds them), then, after a
//! spec change, the deletion of HTTPRoutes the spec no longer asks for.

use feedroll_crds::FeedRollout;

use super::super::Context;
use super::super::apply::{apply_desired, prune_http_routes};
use super::super::plan::Plan;
use super::build::Built;

/// Why the objects were not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The API server rejected an object: retrying will not help (a condition and an Event).
    #[error("the API server rejected an object: {0}")]
    Rejected(String),
    /// The API server could not be reached or asked to retry (the reconcile is retried).
    #[error("kubernetes API: {0}")]
    Api(#[source] kube::Error),
}

/// Applies `built` for `fr`; `spec_changed` when the generation is one the status has not
/// observed yet (then routes the spec no longer names are pruned).
pub async fn apply(
    ctx: &Context,
    fr: &FeedRollout,
    plan: &Plan,
    built: &Built,
    spec_changed: bool,
) -> Result<(), ApplyError> {
    let (ns, name) = (&plan.names.namespace, &plan.names.rollout);
    for deployment in &built.drifted {
        ctx.cache.invalidate("Deployment", ns, deployment);
    }
    let d = &built.desired;
    let applied = apply_desired(&ctx.client, &ctx.cache, ns, d).await;
    if applied.is_ok() && spec_changed {
        // The spec changed: a route it no longer asks for goes (mode or name change).
        let keep = d
            .http_route
            .as_ref()
            .and_then(|r| r["metadata"]["name"].as_str());
        let uid = fr.metadata.uid.as_deref().unwrap_or_default();
        // Never blocks the rollout: a route left behind only sends traffic nowhere new, and
        // owner references delete it with the FeedRollout.
        match prune_http_routes(&ctx.client, &ctx.cache, ns, name, uid, keep).await {
            Ok(0) => {}
            Ok(pruned) => {
                tracing::info!(namespace = %ns, rollout = %name, pruned, "deleted HTTPRoutes the spec no longer asks for");
            }
            Err(e) => {
                tracing::warn!(namespace = %ns, rollout = %name, error = %e, "cannot delete HTTPRoutes the spec no longer asks for");
            }
        }
    }
    applied.map_err(|e| match e {
        kube::Error::Api(s) if is_permanent(s.code) => ApplyError::Rejected(s.message),
        e => ApplyError::Api(e),
    })
}

/// 4xx answers that retrying will not fix (the object is wrong); 409/429 are retried.
fn is_permanent(code: u16) -> bool {
    (400..500).contains(&code) && code != 409 && code != 429
}

#[cfg(test)]
mod tests {
    use super::is_permanent;

    #[test]
    fn conflicts_and_throttling_are_retried_other_client_errors_are_not() {
        assert!(is_permanent(422));
        assert!(is_permanent(400));
        assert!(!is_permanent(409));
        assert!(!is_permanent(429));
        assert!(!is_permanent(500));
        assert!(!is_permanent(503));
    }
}
