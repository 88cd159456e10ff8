//! Rendering check templates for one side (canary or stable) of one rollout.

use std::time::Duration;

use feedroll_crds::duration::prometheus_duration;
use feedroll_crds::{TRACK_CANARY, TRACK_STABLE, TrafficMode};

/// The rollout whose canary is judged.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// `namespace` label value; `None` leaves the matcher out (e.g. a local Prometheus scraping
    /// static targets without that label).
    pub namespace: Option<String>,
    /// `rollout` label value (the FeedRollout's name).
    pub rollout: String,
    /// Traffic mode: pod modes tell the sides apart by `track`, in-app by `variant`.
    pub traffic: TrafficMode,
}

/// Which side of the rollout a query looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The new revision.
    Canary,
    /// The current revision.
    Stable,
}

impl Target {
    /// `{{track}}`: `canary` or `stable` (always `stable` for in-app rollouts: no canary pods).
    pub fn track(&self, side: Side) -> &'static str {
        match (&self.traffic, side) {
            (TrafficMode::InApp(_), _) | (_, Side::Stable) => TRACK_STABLE,
            (_, Side::Canary) => TRACK_CANARY,
        }
    }

    /// `{{variant}}`: the in-app variant of the side; empty in pod modes.
    pub fn variant(&self, side: Side) -> String {
        match (&self.traffic, side) {
            (TrafficMode::InApp(a), Side::Canary) => a.canary_variant().to_owned(),
            (TrafficMode::InApp(a), Side::Stable) => a.stable_variant().to_owned(),
            _ => String::new(),
        }
    }

    /// `{{selector}}`: the label matchers of the side, e.g.
    /// `namespace="prod",rollout="feed",track="canary"`.
    pub fn selector(&self, side: Side) -> String {
        let mut parts = Vec::new();
        if let Some(ns) = &self.namespace {
            parts.push(format!("namespace=\"{}\"", escape(ns)));
        }
        parts.push(format!("rollout=\"{}\"", escape(&self.rollout)));
        match &self.traffic {
            TrafficMode::InApp(_) => {
                parts.push(format!("variant=\"{}\"", escape(&self.variant(side))));
            }
            _ => parts.push(format!("track=\"{}\"", self.track(side))),
        }
        parts.join(",")
    }
}

/// Escapes a label value for a PromQL string literal.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Fills the placeholders of a template: `{{selector}}`, `{{namespace}}`, `{{rollout}}`,
/// `{{track}}`, `{{variant}}`, `{{window}}`.
pub fn render(template: &str, target: &Target, side: Side, window: Duration) -> String {
    template
        .replace("{{selector}}", &target.selector(side))
        .replace(
            "{{namespace}}",
            &escape(target.namespace.as_deref().unwrap_or("")),
        )
        .replace("{{rollout}}", &escape(&target.rollout))
        .replace("{{track}}", target.track(side))
        .replace("{{variant}}", &escape(&target.variant(side)))
        .replace("{{window}}", &prometheus_duration(window))
        .replace("{,", "{")
}

/// The labels grouped queries aggregate by: the side is told apart by `track` in pod modes and
/// by `variant` in-app.
pub fn group_labels(traffic: &TrafficMode) -> &'static str {
    match traffic {
        TrafficMode::InApp(_) => "namespace, rollout, variant",
        _ => "namespace, rollout, track",
    }
}

/// Fills a grouped template ([`super::presets::Aggregation::By`]) for *every* rollout: no
/// `namespace`/`rollout` matcher, only the side's `track` in pod modes (in-app rollouts are
/// split by the `variant` grouping label instead).
pub fn render_grouped(
    template: &str,
    side: Side,
    traffic: &TrafficMode,
    window: Duration,
) -> String {
    let selector = match (traffic, side) {
        (TrafficMode::InApp(_), _) => String::new(),
        (_, Side::Canary) => format!("track=\"{TRACK_CANARY}\""),
        (_, Side::Stable) => format!("track=\"{TRACK_STABLE}\""),
    };
    template
        .replace("{{selector}}", &selector)
        .replace("{{window}}", &prometheus_duration(window))
        .replace("{,", "{")
}

/// Which series of a grouped result belongs to one side of one rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeriesKey {
    /// `namespace` label (not compared when `None`).
    pub namespace: Option<String>,
    /// `rollout` label.
    pub rollout: String,
    /// The label telling the side apart (`track` or `variant`) and its value.
    pub side: (&'static str, String),
}

impl SeriesKey {
    /// The key of `side` of `target`.
    pub fn of(target: &Target, side: Side) -> Self {
        let label = match &target.traffic {
            TrafficMode::InApp(_) => ("variant", target.variant(side)),
            _ => ("track", target.track(side).to_owned()),
        };
        Self {
            namespace: target.namespace.clone(),
            rollout: target.rollout.clone(),
            side: label,
        }
    }

    /// Whether a series with `labels` is this key's.
    pub fn matches(&self, labels: &std::collections::HashMap<String, String>) -> bool {
        let get = |k: &str| labels.get(k).map(String::as_str);
        get("rollout") == Some(self.rollout.as_str())
            && get(self.side.0) == Some(self.side.1.as_str())
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| get("namespace") == Some(ns))
    }
}

#[cfg(test)]
mod tests {
    use feedroll_crds::InApp;

    use super::*;

    fn target(traffic: TrafficMode) -> Target {
        Target {
            namespace: Some("prod".into()),
            rollout: "feed".into(),
            traffic,
        }
    }

    #[test]
    fn pod_modes_select_by_track() {
        let t = target(TrafficMode::ReplicaRatio);
        assert_eq!(
            t.selector(Side::Canary),
            r#"namespace="prod",rollout="feed",track="canary""#
        );
        assert_eq!(
            t.selector(Side::Stable),
            r#"namespace="prod",rollout="feed",track="stable""#
        );
    }

    #[test]
    fn in_app_selects_by_variant() {
        let t = target(TrafficMode::InApp(InApp {
            canary_variant: Some("bold".into()),
            ..Default::default()
        }));
        assert_eq!(
            t.selector(Side::Canary),
            r#"namespace="prod",rollout="feed",variant="bold""#
        );
        assert_eq!(
            t.selector(Side::Stable),
            r#"namespace="prod",rollout="feed",variant="stable""#
        );
    }

    #[test]
    fn placeholders_are_filled() {
        let t = Target {
            namespace: None,
            rollout: "fe\"ed".into(),
            traffic: TrafficMode::ReplicaRatio,
        };
        let q = render(
            "sum(rate(x{rollout=\"{{rollout}}\",track=\"{{track}}\",ns=\"{{namespace}}\"}[{{window}}])) + y{ {{selector}} }",
            &t,
            Side::Canary,
            Duration::from_secs(90),
        );
        assert_eq!(
            q,
            r#"sum(rate(x{rollout="fe\"ed",track="canary",ns=""}[90s])) + y{ rollout="fe\"ed",track="canary" }"#
        );
    }

    #[test]
    fn grouped_queries_drop_the_rollout_and_group_by_it() {
        use crate::analysis::presets::{Aggregation, preset_templates};
        let traffic = TrafficMode::ReplicaRatio;
        let (t, _) = preset_templates(
            feedroll_crds::Preset::ErrorRate,
            0.95,
            Aggregation::By(group_labels(&traffic)),
        );
        let q = render_grouped(&t, Side::Canary, &traffic, Duration::from_secs(60));
        assert!(!q.contains("rollout=\""), "{q}");
        assert!(q.starts_with(r#"(sum by (namespace, rollout, track) (rate(feed_http_requests_total{track="canary",route=~"/v1/.+",status=~"5.."}[60s]))"#), "{q}");
        let in_app = TrafficMode::InApp(InApp::default());
        let (t, _) = preset_templates(
            feedroll_crds::Preset::CompletionRate,
            0.95,
            Aggregation::By(group_labels(&in_app)),
        );
        let q = render_grouped(&t, Side::Canary, &in_app, Duration::from_secs(60));
        assert!(q.contains(r#"sum by (namespace, rollout, variant) (rate(feed_events_total{type="complete"}[60s]))"#), "{q}");
    }
}
