//! The desired objects of a FeedRollout, from YAML fixtures: `fixtures/desired/<case>.yaml`
//! holds the FeedRollout (with the status the brain decided), the stable source recorded on the
//! live stable Deployment and the canary's ready pods; `<case>.expected.yaml` holds the objects.
//! `$spec` and `$stable` in the status stand for the revisions of the spec and the recorded stable
//! source. Run with `FEEDROLL_BLESS=1` to rewrite the expected files after a deliberate change
//! (and review the diff).

use std::path::{Path, PathBuf};

use feedroll_crds::FeedRollout;
use feedroll_operator::desired::{Desired, Source, World, desired};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Case {
    rollout: serde_yaml::Value,
    #[serde(default)]
    canary_ready: i32,
    #[serde(default)]
    recorded_stable: Option<Source>,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/desired")
}

fn load(name: &str) -> (FeedRollout, World) {
    let text = std::fs::read_to_string(fixtures().join(format!("{name}.yaml"))).unwrap();
    let case: Case = serde_yaml::from_str(&text).unwrap();
    let mut fr: FeedRollout = serde_yaml::from_value(case.rollout.clone()).unwrap();
    let spec_rev = feedroll_operator::brain::revision(&fr.spec);
    let stable_rev = case.recorded_stable.as_ref().map(Source::revision);
    let text = serde_yaml::to_string(&case.rollout)
        .unwrap()
        .replace("$spec", &spec_rev)
        .replace("$stable", stable_rev.as_deref().unwrap_or("none"));
    fr = serde_yaml::from_str(&text).unwrap();
    let world = World {
        recorded_stable: case.recorded_stable.map(|s| (s.revision(), s)),
        canary_ready: case.canary_ready,
    };
    (fr, world)
}

fn render(d: &Desired) -> serde_json::Value {
    serde_json::json!({
        "split": {"stable": d.split.stable, "canary": d.split.canary},
        "stable": d.stable,
        "canary": d.canary,
        "services": d.services,
        "configMap": d.config_map,
        "httpRoute": d.http_route,
    })
}

fn check(name: &str) -> Desired {
    let (fr, world) = load(name);
    let d = desired(&fr, &world).unwrap();
    let got = render(&d);
    let path = fixtures().join(format!("{name}.expected.yaml"));
    if std::env::var_os("FEEDROLL_BLESS").is_some() {
        std::fs::write(&path, serde_yaml::to_string(&got).unwrap()).unwrap();
    }
    let want: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        got,
        want,
        "{name}: desired objects differ from {}:\n{}",
        path.display(),
        serde_yaml::to_string(&got).unwrap()
    );
    d
}

fn env_of(d: &k8s_openapi::api::apps::v1::Deployment) -> Vec<(String, String)> {
    let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    pod.containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect()
}

fn image(d: &k8s_openapi::api::apps::v1::Deployment) -> String {
    let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    pod.containers[0].image.clone().unwrap_or_default()
}

fn replicas(d: &Option<k8s_openapi::api::apps::v1::Deployment>) -> Option<i32> {
    d.as_ref()
        .and_then(|d| d.spec.as_ref())
        .and_then(|s| s.replicas)
}

#[test]
fn first_deployment_puts_everything_on_stable_at_the_spec() {
    let d = check("first-deployment");
    assert_eq!(replicas(&d.stable), Some(4));
    assert_eq!(replicas(&d.canary), Some(0));
    assert_eq!(image(d.stable.as_ref().unwrap()), "feed:2");
    assert!(d.config_map.is_none() && d.http_route.is_none());
    assert_eq!(d.services.len(), 3);
}

#[test]
fn canary_step_keeps_stable_on_its_recorded_source_and_injects_env() {
    let d = check("canary-10");
    let stable = d.stable.as_ref().unwrap();
    let canary = d.canary.as_ref().unwrap();
    assert_eq!(image(stable), "feed:1");
    assert_eq!(image(canary), "feed:2");
    // Stable capacity kept until the canary pod is ready.
    assert_eq!(
        (replicas(&d.stable), replicas(&d.canary)),
        (Some(10), Some(1))
    );
    let env = env_of(canary);
    assert!(env.contains(&("FEED_ROLLOUT".into(), "feed".into())));
    assert!(env.contains(&("FEED_TRACK".into(), "canary".into())));
    // A FEED_TRACK in the template is replaced, not duplicated.
    assert_eq!(env.iter().filter(|(k, _)| k == "FEED_TRACK").count(), 1);
    assert!(env_of(stable).contains(&("FEED_TRACK".into(), "stable".into())));
}

#[test]
fn ready_canary_takes_its_share_from_stable() {
    let d = check("canary-25-ready");
    assert_eq!(
        (replicas(&d.stable), replicas(&d.canary)),
        (Some(6), Some(2))
    );
}

#[test]
fn promotion_moves_stable_to_the_spec_while_the_canary_serves() {
    let d = check("promoting");
    assert_eq!(image(d.stable.as_ref().unwrap()), "feed:2");
    assert_eq!(
        (replicas(&d.stable), replicas(&d.canary)),
        (Some(4), Some(4))
    );
}

#[test]
fn rollback_scales_the_canary_to_zero_and_keeps_stable() {
    let d = check("rolled-back");
    assert_eq!(image(d.stable.as_ref().unwrap()), "feed:1");
    assert_eq!(
        (replicas(&d.stable), replicas(&d.canary)),
        (Some(4), Some(0))
    );
}

#[test]
fn unknown_stable_source_leaves_stable_alone() {
    let d = check("unknown-stable");
    assert!(d.stable.is_none());
    assert_eq!(replicas(&d.canary), Some(1));
}

#[test]
fn failed_spec_touches_nothing() {
    let d = check("failed");
    assert_eq!(d, Desired::default());
}

#[test]
fn gateway_api_sets_exact_backend_weights() {
    let d = check("gateway-api");
    let route = d.http_route.unwrap();
    let backends = &route["spec"]["rules"][0]["backendRefs"];
    assert_eq!(backends[0]["weight"], 80);
    assert_eq!(backends[1]["weight"], 20);
    assert_eq!(route["spec"]["parentRefs"][0]["sectionName"], "https");
}

#[test]
fn in_app_writes_shares_to_the_config_map_without_canary_pods() {
    let d = check("in-app");
    assert_eq!(
        (replicas(&d.stable), replicas(&d.canary)),
        (Some(10), Some(0))
    );
    let cm = d.config_map.unwrap();
    let text = &cm.data.unwrap()["stable.yaml"];
    let experiment = feed_profile::Experiment::parse(text).unwrap();
    let shares: Vec<(String, f64)> = experiment
        .variants
        .iter()
        .map(|v| (v.name.clone(), v.share))
        .collect();
    assert_eq!(
        shares,
        vec![("stable".to_owned(), 0.75), ("canary".to_owned(), 0.25)]
    );
    assert_eq!(experiment.salt, "more-affinity-2026");
    assert!(env_of(d.stable.as_ref().unwrap()).contains(&(
        "FEED_PROFILE".into(),
        "/etc/feedroll/profile/stable.yaml".into()
    )));
}

#[test]
fn profile_change_in_pod_mode_gives_the_canary_its_own_file() {
    let d = check("profile-canary");
    let data = d.config_map.unwrap().data.unwrap();
    assert!(data.contains_key("canary.yaml") && !data.contains_key("stable.yaml"));
    feed_profile::Experiment::parse(&data["canary.yaml"]).unwrap();
    assert!(env_of(d.canary.as_ref().unwrap()).contains(&(
        "FEED_PROFILE".into(),
        "/etc/feedroll/profile/canary.yaml".into()
    )));
    assert!(
        !env_of(d.stable.as_ref().unwrap())
            .iter()
            .any(|(k, _)| k == "FEED_PROFILE")
    );
}

/// What Prometheus relies on (the chart's PodMonitor, the platform guide's scrape job): every
/// pod of every rollout has the rollout label and a port named `http` on its feed-server
/// container, and the Services reach it by that name — whether the template declared the port
/// (first-deployment, gateway-api) or not (the others).
#[test]
fn every_pod_exposes_the_feed_server_port_named_http() {
    use feedroll_operator::desired::LABEL_ROLLOUT;
    use feedroll_operator::desired::ports::HTTP_PORT;
    let mut pods = 0;
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(case) = name.strip_suffix(".yaml") else {
            continue;
        };
        if case.ends_with(".expected") || case == "failed" {
            continue;
        }
        let d = check(case);
        for dep in [&d.stable, &d.canary].into_iter().flatten() {
            let template = &dep.spec.as_ref().unwrap().template;
            let labels = template.metadata.as_ref().unwrap().labels.as_ref().unwrap();
            assert!(labels.contains_key(LABEL_ROLLOUT), "{case}: {labels:?}");
            let feed = &template.spec.as_ref().unwrap().containers[0];
            let named: Vec<_> = feed
                .ports
                .iter()
                .flatten()
                .filter(|p| p.name.as_deref() == Some(HTTP_PORT))
                .collect();
            assert_eq!(named.len(), 1, "{case}: {:?}", feed.ports);
            pods += 1;
        }
        for svc in &d.services {
            let ports = svc.spec.as_ref().unwrap().ports.as_ref().unwrap();
            assert!(
                ports.iter().any(|p| p.name.as_deref() == Some(HTTP_PORT)),
                "{case}: {ports:?}"
            );
        }
    }
    assert!(pods >= 10, "only {pods} pod templates checked");
}
