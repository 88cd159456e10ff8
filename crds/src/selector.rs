//! The pod selector: `spec.selector`, or the template's labels when omitted.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::{ApiError, FeedRolloutSpec};

impl FeedRolloutSpec {
    /// The selector of the pods: `spec.selector`, or `matchLabels` = the template's labels.
    /// Errors when there is nothing to select by or `matchLabels` disagrees with the template.
    pub fn effective_selector(&self) -> Result<LabelSelector, ApiError> {
        let labels: BTreeMap<String, String> = self
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        let selector = match &self.selector {
            Some(s) => s.clone(),
            None if labels.is_empty() => {
                return Err(ApiError::invalid(
                    "spec.template.metadata.labels",
                    "pods need labels (the selector defaults to them), e.g. app.kubernetes.io/name: feed-server",
                ));
            }
            None => LabelSelector {
                match_labels: Some(labels.clone()),
                match_expressions: None,
            },
        };
        for (k, v) in selector.match_labels.iter().flatten() {
            if labels.get(k) != Some(v) {
                return Err(ApiError::invalid(
                    format!("spec.selector.matchLabels.{k}"),
                    format!("selects {k}={v} but the template's labels do not have it"),
                ));
            }
        }
        Ok(selector)
    }
}

/// A label selector in the string form of `status.selector` (the `scale` subresource):
/// `a=b,c in (x,y),!d`.
pub fn selector_string(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            other => format!("{} {other} ({values})", e.key),
        });
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(value: serde_json::Value) -> FeedRolloutSpec {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn defaults_to_the_template_labels_and_checks_the_given_one() {
        let s = spec(
            serde_json::json!({"template": {"metadata": {"labels": {"app": "feed", "tier": "web"}}}}),
        );
        let sel = s.effective_selector().unwrap();
        assert_eq!(selector_string(&sel), "app=feed,tier=web");
        let s = spec(
            serde_json::json!({"selector": {"matchLabels": {"app": "other"}}, "template": {"metadata": {"labels": {"app": "feed"}}}}),
        );
        assert!(
            matches!(s.effective_selector(), Err(ApiError::Invalid { field, .. }) if field == "spec.selector.matchLabels.app")
        );
        let s = spec(serde_json::json!({"template": {}}));
        assert!(s.effective_selector().is_err());
        let s = spec(
            serde_json::json!({"selector": {"matchLabels": {"app": "feed"}, "matchExpressions": [{"key": "track", "operator": "In", "values": ["stable", "canary"]}, {"key": "debug", "operator": "DoesNotExist"}]}, "template": {"metadata": {"labels": {"app": "feed"}}}}),
        );
        assert_eq!(
            selector_string(&s.effective_selector().unwrap()),
            "app=feed,track in (stable,canary),!debug"
        );
    }
}
