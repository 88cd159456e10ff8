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
                parts.push(format!("variant=\"{}\"", escape(&self.variant(side))))
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
}

/// Renders a preset template for *all* rollouts at once: no `rollout`/`namespace` matcher and
/// every `sum(` aggregated `by (namespace, rollout, track, variant)`, so that one query per
/// distinct check serves every rollout (the controller picks each rollout's series). Only
/// meaningful for the built-in presets, whose aggregations are all `sum(...)`.
pub fn grouped(template: &str, side: Side, traffic: &TrafficMode, window: Duration) -> String {
    let selector = match traffic {
        TrafficMode::InApp(_) => String::new(),
        _ => format!(
            "track=\"{}\"",
            match side {
                Side::Canary => TRACK_CANARY,
                Side::Stable => TRACK_STABLE,
            }
        ),
    };
    template
        .replace(
            "sum by (le) (",
            "sum by (le, namespace, rollout, track, variant) (",
        )
        .replace("sum(", "sum by (namespace, rollout, track, variant) (")
        .replace(
            "{{{selector}},",
            &format!("{{{selector}{}", if selector.is_empty() { "" } else { "," }),
        )
        .replace("{{selector}}", &selector)
        .replace("{{window}}", &prometheus_duration(window))
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
        let q = grouped(
            crate::analysis::presets::ERROR_RATE,
            Side::Canary,
            &TrafficMode::ReplicaRatio,
            Duration::from_secs(60),
        );
        assert!(!q.contains("rollout=\""), "{q}");
        assert!(q.contains("sum by (namespace, rollout, track, variant) (rate(feed_http_requests_total{track=\"canary\",status=~\"5..\"}[60s]))"), "{q}");
    }
}
