//! The analysis engine against a real Prometheus scraping an exporter with known data.

use crate::support::prometheus;

use std::time::{Duration, Instant};

use feedroll_crds::{CheckRecord, FeedRolloutSpec, InApp, ResolvedCheck, TrafficMode, Verdict};
use feedroll_operator::analysis::{AnalysisEngine, Target};
use feedroll_operator::brain::{Observations, PodHealth, decide};
use k8s_openapi::jiff::Timestamp;
use prometheus::{Harness, Series, histogram, series};

const HTTP: &str = "feed_http_requests_total";
const CACHE: &str = "feed_cache_requests_total";
const EVENTS: &str = "feed_events_total";

fn side(rollout: &str, track: &str) -> Vec<(String, String)> {
    vec![
        ("rollout".into(), rollout.into()),
        ("track".into(), track.into()),
        ("variant".into(), "default".into()),
    ]
}

fn with(base: &[(String, String)], extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut l = base.to_vec();
    l.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    l
}

fn s(name: &str, labels: Vec<(String, String)>, per_second: f64) -> Series {
    Series {
        name: name.into(),
        labels,
        per_second,
        offset: 0.0,
        from_secs: 0.0,
    }
}

fn hist(labels: &[(String, String)], upper: f64, per_second: f64) -> Vec<Series> {
    let l: Vec<(&str, &str)> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    histogram(&l, upper, per_second)
}

/// The feed-server series of one track with the given rates.
fn track(
    rollout: &str,
    name: &str,
    ok: f64,
    errors: f64,
    latency_bucket: f64,
    completes: f64,
    engagements: f64,
) -> Vec<Series> {
    let base = side(rollout, name);
    let mut out = vec![
        s(
            HTTP,
            with(
                &base,
                &[("route", "/v1/feed"), ("method", "GET"), ("status", "200")],
            ),
            ok,
        ),
        s(
            HTTP,
            with(
                &base,
                &[("route", "/v1/feed"), ("method", "GET"), ("status", "500")],
            ),
            errors,
        ),
        s(
            CACHE,
            with(&base, &[("tier", "local"), ("result", "hit")]),
            8.0,
        ),
        s(
            CACHE,
            with(&base, &[("tier", "local"), ("result", "miss")]),
            2.0,
        ),
        s(
            CACHE,
            with(&base, &[("tier", "store"), ("result", "hit")]),
            1.0,
        ),
        s(
            CACHE,
            with(&base, &[("tier", "store"), ("result", "miss")]),
            1.0,
        ),
        s(EVENTS, with(&base, &[("type", "impression")]), 10.0),
        s(EVENTS, with(&base, &[("type", "complete")]), completes),
        s(EVENTS, with(&base, &[("type", "like")]), engagements / 2.0),
        s(EVENTS, with(&base, &[("type", "share")]), engagements / 4.0),
        s(
            EVENTS,
            with(&base, &[("type", "comment")]),
            engagements / 4.0,
        ),
    ];
    out.extend(hist(
        &with(&base, &[("route", "/v1/feed"), ("method", "GET")]),
        latency_bucket,
        ok + errors,
    ));
    out
}

fn exported() -> Vec<Series> {
    let mut all = Vec::new();
    // Canary: 3% errors, latency in (0.1, 0.25], completion 0.4, engagement 0.2.
    all.extend(track("feed", "canary", 97.0, 3.0, 0.25, 4.0, 2.0));
    // Stable: 1% errors, latency in (0.25, 0.5], completion 0.5, engagement 0.3.
    all.extend(track("feed", "stable", 99.0, 1.0, 0.5, 5.0, 3.0));
    // In-app experiment: one track, two variants.
    for (variant, completes) in [("canary", 3.0), ("stable", 5.0)] {
        let base = vec![
            ("rollout".to_owned(), "exp".to_owned()),
            ("track".to_owned(), "stable".to_owned()),
            ("variant".to_owned(), variant.to_owned()),
        ];
        all.push(s(EVENTS, with(&base, &[("type", "impression")]), 10.0));
        all.push(s(EVENTS, with(&base, &[("type", "complete")]), completes));
    }
    // Quiet: series exist but never move (rate 0, so ratios are NaN).
    let mut quiet = series(
        HTTP,
        &[
            ("rollout", "quiet"),
            ("track", "canary"),
            ("route", "/v1/feed"),
            ("status", "200"),
        ],
        0.0,
    );
    quiet.offset = 100.0;
    all.push(quiet);
    // Clean: not a single error (error rate 0, not "no data").
    all.push(series(
        HTTP,
        &[
            ("rollout", "clean"),
            ("track", "canary"),
            ("route", "/v1/feed"),
            ("status", "200"),
        ],
        100.0,
    ));
    // Sparse: 1 request a second, fewer than minRequests in a 10s window.
    all.push(series(
        HTTP,
        &[
            ("rollout", "sparse"),
            ("track", "canary"),
            ("route", "/v1/feed"),
            ("status", "200"),
        ],
        1.0,
    ));
    // Probed: an older feed-server that still records probes and scrapes as requests — plenty
    // of them, half of them warm-up 503s — and no API traffic at all. The presets count
    // `/v1/` routes only, so this is no data, not a 50% error rate.
    for (route, status, rate) in [
        ("/readyz", "503", 20.0),
        ("/readyz", "200", 20.0),
        ("/healthz", "200", 20.0),
        ("/metrics", "200", 20.0),
    ] {
        all.push(series(
            HTTP,
            &[
                ("rollout", "probed"),
                ("track", "canary"),
                ("route", route),
                ("status", status),
            ],
            rate,
        ));
    }
    all
}

fn spec(checks: &str) -> FeedRolloutSpec {
    let yaml = format!(
        "template: {{spec: {{containers: [{{name: feed, image: 'feed:1'}}]}}}}\nanalysis:\n  defaultChecks: false\n  checks:\n{checks}"
    );
    serde_yaml::from_str(&yaml).unwrap()
}

const CHECKS: &str = r#"
    - {name: error-rate, preset: errorRate, max: 0.05, window: 10s}
    - {name: error-rate-strict, preset: errorRate, max: 0.005, window: 10s}
    - {name: availability, preset: availability, min: 0.99, window: 10s, tier: rollback}
    - {name: p95, preset: latencyQuantile, max: 0.5, window: 10s}
    - {name: p50, preset: latencyQuantile, quantile: 0.5, max: 0.5, window: 10s}
    - {name: cache-hit, preset: cacheHitRatio, min: 0.85, window: 10s, tier: advisory}
    - {name: completion, preset: completionRate, min: 0.3, window: 10s}
    - {name: engagement, preset: engagementRate, min: 0.1, window: 10s}
    - {name: errors-vs-stable, preset: errorRate, max: 2, window: 10s, compare: {mode: ratio}}
    - {name: custom, query: 'sum(rate(feed_http_requests_total{ {{selector}} }[{{window}}]))', min: 50, window: 10s}
"#;

fn checks(yaml: &str) -> Vec<ResolvedCheck> {
    spec(yaml).resolved_analysis().unwrap().checks
}

fn target(rollout: &str, traffic: TrafficMode) -> Target {
    Target {
        namespace: Some("test".into()),
        rollout: rollout.into(),
        traffic,
    }
}

/// Evaluates until no record is no-data (data needs a few scrapes), at most 30 s.
async fn settled(
    engine: &AnalysisEngine,
    target: &Target,
    checks: &[ResolvedCheck],
) -> Vec<CheckRecord> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run = engine
            .evaluate(target, checks, false, Timestamp::now())
            .await;
        if run.records.iter().all(|r| r.verdict != Verdict::NoData) || Instant::now() > deadline {
            return run.records;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn record<'a>(records: &'a [CheckRecord], name: &str) -> &'a CheckRecord {
    records
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no record {name}"))
}

fn assert_value(records: &[CheckRecord], name: &str, want: f64, verdict: Verdict) {
    let r = record(records, name);
    let got = r.value.unwrap_or_else(|| panic!("{name}: no value: {r:?}"));
    assert!(
        (got - want).abs() < 1e-3,
        "{name}: got {got}, want {want} ({})",
        r.query
    );
    assert_eq!(r.verdict, verdict, "{name}: {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presets_return_the_known_values_and_relative_checks_compare() {
    let harness = Harness::start(exported()).await;
    let engine = AnalysisEngine::new(&harness.url, Duration::from_secs(5)).unwrap();

    let checks = checks(CHECKS);
    let records = settled(&engine, &target("feed", TrafficMode::ReplicaRatio), &checks).await;
    assert_value(&records, "error-rate", 0.03, Verdict::Pass);
    assert_value(&records, "error-rate-strict", 0.03, Verdict::Fail);
    assert_value(&records, "availability", 0.97, Verdict::Fail);
    assert_value(&records, "p95", 0.1 + 0.95 * 0.15, Verdict::Pass);
    assert_value(&records, "p50", 0.1 + 0.5 * 0.15, Verdict::Pass);
    assert_value(&records, "cache-hit", 0.9, Verdict::Pass);
    assert_value(&records, "completion", 0.4, Verdict::Pass);
    assert_value(&records, "engagement", 0.2, Verdict::Pass);
    // Absolute rates need a full window of samples: wait for it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let custom: Vec<ResolvedCheck> = checks
        .iter()
        .filter(|c| c.name == "custom")
        .cloned()
        .collect();
    loop {
        let run = engine
            .evaluate(
                &target("feed", TrafficMode::ReplicaRatio),
                &custom,
                false,
                Timestamp::now(),
            )
            .await;
        let v = run.records[0].value.unwrap_or(0.0);
        if (v - 100.0).abs() < 1.0 || Instant::now() > deadline {
            assert!((v - 100.0).abs() < 1.0, "custom: {v}, want 100 ± 1");
            assert_eq!(run.records[0].verdict, Verdict::Pass);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The canary is 3x worse than stable: the relative check fails.
    let rel = record(&records, "errors-vs-stable");
    assert_value(&records, "errors-vs-stable", 3.0, Verdict::Fail);
    assert!(
        rel.stable_query
            .as_deref()
            .unwrap()
            .contains(r#"track="stable""#)
    );
    assert!(
        (rel.stable_value.unwrap() - 0.01).abs() < 1e-6
            && (rel.canary_value.unwrap() - 0.03).abs() < 1e-6
    );
    // Records carry the evidence.
    let e = record(&records, "error-rate");
    assert!(
        e.query
            .contains(r#"namespace="test",rollout="feed",track="canary""#),
        "{}",
        e.query
    );
    assert!(e.requests.unwrap() > 50.0);
    assert_eq!(e.threshold, "<= 0.05");

    // Fast runs evaluate only the roll-back tier.
    let fast = engine
        .evaluate(
            &target("feed", TrafficMode::ReplicaRatio),
            &checks,
            true,
            Timestamp::now(),
        )
        .await;
    assert_eq!(
        fast.records
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["availability"]
    );

    // In-app: variants, compared canary − stable.
    let in_app = target("exp", TrafficMode::InApp(InApp::default()));
    let exp_checks = checks_for_in_app();
    let records = settled(&engine, &in_app, &exp_checks).await;
    assert_value(&records, "completion-vs-stable", 0.3 - 0.5, Verdict::Fail);
    assert!(
        record(&records, "completion-vs-stable")
            .query
            .contains(r#"variant="canary""#)
    );
}

fn checks_for_in_app() -> Vec<ResolvedCheck> {
    checks(
        "    - {name: completion-vs-stable, preset: completionRate, min: -0.1, window: 10s, compare: {mode: difference}}\n",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_traffic_is_no_data_and_a_stopped_prometheus_is_an_error_that_holds() {
    let mut harness = Harness::start(exported()).await;
    let engine = AnalysisEngine::new(&harness.url, Duration::from_secs(2)).unwrap();
    let checks = checks("    - {name: error-rate, preset: errorRate, max: 0.005, window: 10s}\n");
    // Wait until Prometheus has data at all (the busy rollout answers).
    let busy = settled(&engine, &target("feed", TrafficMode::ReplicaRatio), &checks).await;
    assert_eq!(record(&busy, "error-rate").verdict, Verdict::Fail);

    let clean = settled(
        &engine,
        &target("clean", TrafficMode::ReplicaRatio),
        &checks,
    )
    .await;
    assert_value(&clean, "error-rate", 0.0, Verdict::Pass);

    for rollout in ["idle", "quiet", "sparse", "probed"] {
        let run = engine
            .evaluate(
                &target(rollout, TrafficMode::ReplicaRatio),
                &checks,
                false,
                Timestamp::now(),
            )
            .await;
        let r = record(&run.records, "error-rate");
        assert_eq!(r.verdict, Verdict::NoData, "{rollout}: {r:?}");
        assert!(r.value.is_none());
    }
    // Probes alone never pass or fail availability either, however many there are.
    let probe_checks = spec(
        "    - {name: availability, preset: availability, min: 0.99, window: 10s}\n    - {name: errors, preset: errorRate, max: 0.005, window: 10s, minRequests: 0}\n",
    )
    .resolved_analysis()
    .unwrap()
    .checks;
    let probed = engine
        .evaluate(
            &target("probed", TrafficMode::ReplicaRatio),
            &probe_checks,
            false,
            Timestamp::now(),
        )
        .await;
    for r in &probed.records {
        assert_eq!(r.verdict, Verdict::NoData, "{r:?}");
        assert!(r.query.contains(r#"route=~"/v1/.+""#), "{}", r.query);
    }
    let sparse = engine
        .evaluate(
            &target("sparse", TrafficMode::ReplicaRatio),
            &checks,
            false,
            Timestamp::now(),
        )
        .await;
    assert!(
        sparse.records[0].reason.contains("minRequests"),
        "{}",
        sparse.records[0].reason
    );

    harness.stop_prometheus();
    let run = engine
        .evaluate(
            &target("feed", TrafficMode::ReplicaRatio),
            &checks,
            false,
            Timestamp::now(),
        )
        .await;
    let r = record(&run.records, "error-rate");
    assert_eq!(r.verdict, Verdict::Error, "{r:?}");

    // The brain holds on it: no failure counted, no promotion, a Held event.
    let spec = spec("    - {name: error-rate, preset: errorRate, max: 0.005, window: 10s}\n");
    let status = feedroll_crds::FeedRolloutStatus {
        phase: Some(feedroll_crds::Phase::Succeeded),
        stable_revision: Some("r0".into()),
        canary_revision: Some("r0".into()),
        ..Default::default()
    };
    let now = Timestamp::now();
    let obs = Observations {
        revision: "r1".into(),
        canary: PodHealth {
            ready: true,
            crash_looping: false,
            ..PodHealth::default()
        },
        ..Default::default()
    };
    let started = decide(&spec, &status, &obs, now);
    let obs = Observations {
        analysis: Some(run),
        ..obs
    };
    let t = decide(&spec, &started.status, &obs, now + Duration::from_secs(1));
    assert_eq!(t.status.phase, Some(feedroll_crds::Phase::Progressing));
    assert_eq!(t.status.current_step_index, Some(0));
    assert_eq!(t.status.checks[0].consecutive_failures, 0);
    assert!(t.status.checks[0].holding_since.is_some());
}

#[tokio::test]
async fn one_tls_backend_builds_a_kube_client_and_a_prometheus_client() {
    feedroll_operator::tls::install_crypto_provider();
    let kubeconfig = r#"
apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}
users:
- name: fake
  user: {token: not-a-real-token}
contexts:
- name: fake
  context: {cluster: fake, user: fake, namespace: default}
current-context: fake
"#;
    let kubeconfig = kube::config::Kubeconfig::from_yaml(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    assert_eq!(client.default_namespace(), "default");
    let engine = AnalysisEngine::new("https://127.0.0.1:9", Duration::from_secs(1)).unwrap();
    // An https query to a closed port is an error verdict, not a panic.
    assert!(matches!(
        engine.query("up").await,
        feedroll_operator::analysis::Outcome::Error(_)
    ));
}

/// The brain and the engine together, in real time against a real Prometheus: a healthy canary
/// is promoted, a canary with 10% errors is rolled back by the roll-back tier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brain_and_engine_promote_a_healthy_canary_and_roll_back_a_failing_one() {
    use feedroll_crds::{FeedRolloutStatus, Phase};
    use feedroll_operator::driver::turn;

    let mut all = track("good", "canary", 100.0, 0.0, 0.1, 4.0, 2.0);
    all.extend(track("bad", "canary", 90.0, 10.0, 0.1, 4.0, 2.0));
    let harness = Harness::start(all).await;
    let engine = AnalysisEngine::new(&harness.url, Duration::from_secs(2)).unwrap();
    let spec: FeedRolloutSpec = serde_yaml::from_str(
        "template: {spec: {containers: [{name: feed, image: 'feed:2'}]}}
strategy: {steps: [{setWeight: 50}, {pause: {duration: 2s}}, {setWeight: 100}]}
analysis:
  interval: 1s
  fastInterval: 1s
  checks:
    - {name: error-rate, preset: errorRate, max: 0.005, window: 5s}
    - {name: error-rate-critical, preset: errorRate, max: 0.05, window: 5s, tier: rollback}
    - {name: availability, preset: availability, min: 0.99, window: 5s, tier: rollback}
    - {name: latency-p95, preset: latencyQuantile, max: 0.5, window: 5s}
    - {name: latency-p95-critical, preset: latencyQuantile, max: 1, window: 5s, tier: pause}
    - {name: cache-hit-ratio, preset: cacheHitRatio, min: 0.9, window: 5s, tier: advisory}
  defaultChecks: false
",
    )
    .unwrap();
    for (rollout, want) in [("good", Phase::Promoting), ("bad", Phase::RolledBack)] {
        let target = target(rollout, TrafficMode::ReplicaRatio);
        let mut status = FeedRolloutStatus {
            phase: Some(Phase::Succeeded),
            stable_revision: Some("r0".into()),
            canary_revision: Some("r0".into()),
            ..Default::default()
        };
        let deadline = Instant::now() + Duration::from_secs(40);
        let mut weights = vec![];
        loop {
            let obs = Observations {
                revision: "r1".into(),
                canary: PodHealth {
                    ready: true,
                    crash_looping: false,
                    ..PodHealth::default()
                },
                ..Default::default()
            };
            let t = turn(&engine, &target, &spec, &status, obs, Timestamp::now())
                .await
                .transition;
            status = t.status;
            if weights.last() != Some(&status.weight) {
                weights.push(status.weight);
            }
            if matches!(
                status.phase,
                Some(Phase::Promoting | Phase::RolledBack | Phase::Paused)
            ) || Instant::now() > deadline
            {
                break;
            }
            tokio::time::sleep(
                t.requeue_after
                    .unwrap_or(Duration::from_millis(500))
                    .min(Duration::from_millis(500)),
            )
            .await;
        }
        assert_eq!(
            status.phase,
            Some(want),
            "{rollout}: {:?} weights {weights:?}",
            status.message
        );
        match want {
            Phase::Promoting => assert_eq!(weights, vec![50, 100]),
            _ => assert_eq!(status.weight, 0),
        }
    }
}

/// Grouped evaluation gives every rollout the same records as evaluating it alone, and the
/// number of queries does not grow with the number of rollouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_rollouts_cost_queries_per_distinct_check_not_per_rollout() {
    let harness = Harness::start(exported()).await;
    let began = Instant::now();
    let engine = AnalysisEngine::new(&harness.url, Duration::from_secs(5)).unwrap();
    let checks = checks(CHECKS);
    let feed = target("feed", TrafficMode::ReplicaRatio);
    settled(&engine, &feed, &checks).await;
    // Let the 10-s windows fill (Prometheus is up: its first scrape within a second, then two
    // scrapes to spare) so that two evaluations a moment apart agree: while a window reaches
    // back before a series' first sample, `rate` is cut short there and grows with every
    // second (a 1/s series read 0.83, then 0.85, and failed the 2% agreement).
    tokio::time::sleep_until((began + Duration::from_secs(13)).into()).await;

    let pods = ["feed", "clean", "sparse", "quiet", "idle"];
    let mut rollouts: Vec<(Target, Vec<ResolvedCheck>)> = pods
        .iter()
        .map(|r| (target(r, TrafficMode::ReplicaRatio), checks.clone()))
        .collect();
    let one = engine
        .evaluate_many(&rollouts[..1], false, Timestamp::now())
        .await;
    let all = engine
        .evaluate_many(&rollouts, false, Timestamp::now())
        .await;
    // Custom PromQL runs per rollout (one query each); presets are shared.
    assert_eq!(
        all.queries,
        one.queries + pods.len() - 1,
        "{} queries for 1 rollout, {} for {}",
        one.queries,
        all.queries,
        pods.len()
    );

    rollouts.push((
        target("exp", TrafficMode::InApp(InApp::default())),
        checks_for_in_app(),
    ));
    let all = engine
        .evaluate_many(&rollouts, false, Timestamp::now())
        .await;
    for ((target, checks), run) in rollouts.iter().zip(&all.runs) {
        let alone = engine
            .evaluate(target, checks, false, Timestamp::now())
            .await;
        assert_eq!(run.records.len(), alone.records.len());
        for (grouped, single) in run.records.iter().zip(&alone.records) {
            let what = format!(
                "{}/{}: grouped {grouped:?} alone {single:?}",
                target.rollout, grouped.name
            );
            assert_eq!(grouped.verdict, single.verdict, "{what}");
            assert_eq!(grouped.query, single.query, "{what}");
            match (grouped.value, single.value) {
                (Some(a), Some(b)) => assert!((a - b).abs() <= 0.02 * b.abs().max(1e-3), "{what}"),
                (a, b) => assert_eq!(a.is_some(), b.is_some(), "{what}"),
            }
            // The record's per-rollout query, run by hand, gives the value picked from the
            // grouped answer (a plain check's value is its canary query's).
            if let (Some(value), None, None) =
                (grouped.value, &grouped.stable_query, &grouped.evidence)
            {
                match engine.query(&grouped.query).await {
                    feedroll_operator::analysis::Outcome::Value(by_hand) => assert!(
                        (value - by_hand).abs() <= 0.02 * by_hand.abs().max(1e-3),
                        "{what}: by hand {by_hand}"
                    ),
                    other => panic!("{what}: by hand {other:?}"),
                }
            }
        }
    }
    let exp = all.runs.last().unwrap();
    assert_value(&exp.records, "completion-vs-stable", -0.2, Verdict::Fail);
    let feed_run = &all.runs[0];
    assert_value(&feed_run.records, "error-rate", 0.03, Verdict::Pass);
    assert_value(&feed_run.records, "errors-vs-stable", 3.0, Verdict::Fail);
    assert_value(&all.runs[1].records, "error-rate", 0.0, Verdict::Pass);
    assert_eq!(
        record(&all.runs[4].records, "error-rate").verdict,
        Verdict::NoData
    );
}
