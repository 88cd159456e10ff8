//! Sequential checks and content-health presets against a real Prometheus scraping synthetic
//! counters: a canary twice as bad in error rate at realistic volume fails within the trials
//! `operator/README.md` states, an identical one passes and never fails, and the
//! content-health presets read the feed-server's served-content series.

use crate::support::prometheus;

use std::time::{Duration, Instant};

use feedroll_crds::{FeedRolloutSpec, InApp, ResolvedCheck, TrafficMode, Verdict};
use feedroll_operator::analysis::counts::over_the_step;
use feedroll_operator::analysis::{AnalysisEngine, Target};
use k8s_openapi::jiff::Timestamp;
use prometheus::{Harness, Series, series};

/// The README's trials for 80% detection of a 1% → 2% error rate at 10% canary traffic.
const DOCUMENTED_TRIALS: u64 = 21_019;

/// API requests of one side of `rollout`: `ok` and `errors` (5xx) per second.
fn http(rollout: &str, track: &str, ok: f64, errors: f64) -> Vec<Series> {
    let labels = |status| {
        [
            ("rollout", rollout),
            ("track", track),
            ("route", "/v1/feed"),
            ("status", status),
        ]
    };
    vec![
        series("feed_http_requests_total", &labels("200"), ok),
        series("feed_http_requests_total", &labels("500"), errors),
    ]
}

/// What the feed-server reports serving to `variant` of the in-app rollout `exp`: pages of 10
/// items, `long_tail` of them long-tail, `creators` distinct creators, items `age` s old.
fn served(variant: &str, long_tail: f64, creators: f64, age: f64) -> Vec<Series> {
    let l = [
        ("rollout", "exp"),
        ("track", "stable"),
        ("variant", variant),
    ];
    let pages = 20.0;
    vec![
        series("feed_served_pages_total", &l, pages),
        series("feed_served_items_total", &l, pages * 10.0),
        series("feed_served_long_tail_items_total", &l, pages * long_tail),
        series("feed_served_page_creators_total", &l, pages * creators),
        series("feed_served_item_age_seconds_count", &l, pages * 10.0),
        series("feed_served_item_age_seconds_sum", &l, pages * 10.0 * age),
    ]
}

fn exported() -> Vec<Series> {
    // 5000 requests a second, 10% to the canary: stable errs 1%; the "worse" canary 2%.
    let mut all = Vec::new();
    all.extend(http("worse", "canary", 490.0, 10.0));
    all.extend(http("worse", "stable", 4455.0, 45.0));
    all.extend(http("same", "canary", 495.0, 5.0));
    all.extend(http("same", "stable", 4455.0, 45.0));
    all.extend(served("canary", 2.0, 6.0, 7200.0));
    all.extend(served("stable", 3.0, 8.0, 3600.0));
    all
}

fn checks(yaml: &str) -> Vec<ResolvedCheck> {
    let yaml = format!(
        "template: {{spec: {{containers: [{{name: feed, image: 'feed:1'}}]}}}}\nanalysis:\n  defaultChecks: false\n  checks:\n{yaml}"
    );
    let spec: FeedRolloutSpec = serde_yaml::from_str(&yaml).unwrap();
    spec.resolved_analysis().unwrap().checks
}

fn target(rollout: &str, traffic: TrafficMode) -> Target {
    Target {
        namespace: Some("test".into()),
        rollout: rollout.into(),
        traffic,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_twice_as_bad_fails_within_the_documented_trials_and_an_equal_one_passes() {
    let harness = Harness::start(exported()).await;
    let engine = AnalysisEngine::new(&harness.url, Duration::from_secs(5)).unwrap();
    let step_start = Timestamp::now();
    let sequential = checks(
        "    - {name: errors, preset: errorRate, compare: {mode: sequential, alpha: 0.05, minEffect: 0.01}}\n",
    );
    let rollouts = |now| {
        let step = over_the_step(&sequential, Some(step_start), now);
        vec![
            (target("worse", TrafficMode::ReplicaRatio), step.clone()),
            (target("same", TrafficMode::ReplicaRatio), step),
        ]
    };
    let deadline = Instant::now() + Duration::from_secs(40);
    let (mut worse, mut same) = (None, None);
    while (worse.is_none() || same.is_none()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = Timestamp::now();
        let many = engine.evaluate_many(&rollouts(now), false, now).await;
        let (w, s) = (&many.runs[0].records[0], &many.runs[1].records[0]);
        assert_ne!(w.verdict, Verdict::Error, "{w:?}");
        assert_ne!(s.verdict, Verdict::Fail, "an equal canary failed: {s:?}");
        if worse.is_none() && w.verdict != Verdict::NoData {
            worse = Some(w.clone());
        }
        if same.is_none() && s.verdict == Verdict::Pass {
            same = Some(s.clone());
        }
    }
    let worse = worse.expect("the worse canary was judged within 40 s");
    assert_eq!(worse.verdict, Verdict::Fail, "{worse:?}");
    let e = worse.evidence.as_ref().expect("evidence in the record");
    let trials = e.canary.trials + e.stable.trials;
    assert!(
        trials <= DOCUMENTED_TRIALS,
        "failed only after {trials} trials"
    );
    assert!(e.lower.is_some_and(|l| l > 0.0), "{e:?}");
    let estimate = e.estimate.expect("estimate");
    assert!((estimate - 0.01).abs() < 0.005, "{e:?}");
    assert!(worse.reason.contains("canary worse"), "{}", worse.reason);
    assert!(worse.query.contains("increase(feed_http_requests_total{namespace=\"test\",rollout=\"worse\",track=\"canary\""), "{}", worse.query);

    let same = same.expect("the equal canary passed within 40 s");
    let e = same.evidence.as_ref().expect("evidence");
    assert!(e.upper.is_some_and(|u| u < 0.01), "{e:?}");
    assert!(e.canary.trials >= 100 && e.stable.trials >= 100);

    // The CLI's per-check path gives the same verdicts.
    let now = Timestamp::now();
    let step = rollouts(now);
    let alone = engine.evaluate(&step[0].0, &step[0].1, false, now).await;
    assert_eq!(alone.records[0].verdict, Verdict::Fail, "{alone:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_health_presets_compare_what_each_variant_served() {
    let harness = Harness::start(exported()).await;
    let engine = AnalysisEngine::new(&harness.url, Duration::from_secs(5)).unwrap();
    let checks = checks(
        r#"
    - {name: long-tail, preset: longTailShare, compare: {mode: difference}, min: -0.05, window: 10s}
    - {name: creators, preset: creatorDiversity, compare: {mode: ratio}, min: 0.9, window: 10s}
    - {name: freshness, preset: servedFreshness, compare: {mode: ratio}, max: 1.5, window: 10s}
    - {name: long-tail-seq, preset: longTailShare, compare: {mode: sequential, minEffect: 0.02}, window: 30s}
"#,
    );
    let exp = target("exp", TrafficMode::InApp(InApp::default()));
    let deadline = Instant::now() + Duration::from_secs(30);
    let records = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let run = engine
            .evaluate(&exp, &checks, false, Timestamp::now())
            .await;
        if run.records.iter().all(|r| r.verdict != Verdict::NoData) || Instant::now() > deadline {
            break run.records;
        }
    };
    let value = |name: &str| {
        let r = records.iter().find(|r| r.name == name).unwrap();
        (r.value.unwrap_or(f64::NAN), r.verdict, r.clone())
    };
    // Long-tail share 0.2 vs 0.3: 10 points less, beyond the 5 allowed.
    let (v, verdict, r) = value("long-tail");
    assert!((v + 0.1).abs() < 1e-3 && verdict == Verdict::Fail, "{r:?}");
    // 6 vs 8 distinct creators per page: 0.75 of stable's.
    let (v, verdict, r) = value("creators");
    assert!((v - 0.75).abs() < 1e-3 && verdict == Verdict::Fail, "{r:?}");
    // Served items twice as old as stable's.
    let (v, verdict, r) = value("freshness");
    assert!((v - 2.0).abs() < 1e-3 && verdict == Verdict::Fail, "{r:?}");
    // The long-tail share is a share of items: judged sequentially, it is confidently worse.
    let (_, verdict, r) = value("long-tail-seq");
    assert_eq!(verdict, Verdict::Fail, "{r:?}");
    assert!(r.query.contains("feed_served_long_tail_items_total{namespace=\"test\",rollout=\"exp\",variant=\"canary\"}"), "{}", r.query);
}

/// The four counts of a sequential check are read from one state of Prometheus' storage: a
/// scrape that lands while a check is evaluated, or a sample leaving the window, never gives a
/// side's trials without its events (0 errors: a false pass) or its events without its trials
/// (more errors than requests). Twelve rollouts whose series and steps start 0.7 scrape intervals
/// apart are evaluated back to back for ten seconds: each goes through the scrape that brings
/// its second sample (the first moment `increase()` has a value) while queries are in flight,
/// and every count read must keep each side's share of errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counts_of_a_check_come_from_one_state_of_the_storage() {
    let names: Vec<String> = (0..12).map(|i| format!("r{i}")).collect();
    let starts: Vec<Duration> = (0..names.len())
        .map(|i| Duration::from_millis(700 * i as u64))
        .collect();
    let mut exported = Vec::new();
    for (name, start) in names.iter().zip(&starts) {
        let mut both = http(name, "canary", 490.0, 10.0);
        both.extend(http(name, "stable", 4455.0, 45.0));
        exported.extend(both.into_iter().map(|s| s.starting_after(*start)));
    }
    let harness = Harness::start(exported).await;
    let engine = AnalysisEngine::new(&harness.url, Duration::from_secs(5)).unwrap();
    let sequential = checks(
        "    - {name: errors, preset: errorRate, compare: {mode: sequential, alpha: 0.05, minEffect: 0.01}}\n",
    );
    let first = Timestamp::now();
    let step_starts: Vec<Timestamp> = starts.iter().map(|s| first + *s).collect();
    let until = Instant::now() + Duration::from_secs(10);
    let (mut evaluations, mut counted) = (0, 0);
    while Instant::now() < until {
        let now = Timestamp::now();
        let rollouts: Vec<_> = names
            .iter()
            .zip(&step_starts)
            .filter(|(_, start)| **start <= now)
            .map(|(name, start)| {
                let step = over_the_step(&sequential, Some(*start), now);
                (target(name, TrafficMode::ReplicaRatio), step)
            })
            .collect();
        let many = engine.evaluate_many(&rollouts, false, now).await;
        evaluations += 1;
        for record in many.runs.iter().flat_map(|run| &run.records) {
            assert_ne!(record.verdict, Verdict::Error, "{record:?}");
            let Some(e) = &record.evidence else { continue };
            for (side, counts, share) in [("canary", e.canary, 0.02), ("stable", e.stable, 0.01)] {
                if counts.trials == 0 {
                    assert_eq!(counts.events, 0, "{side} of {record:?}");
                    continue;
                }
                counted += 1;
                let seen = counts.events as f64 / counts.trials as f64;
                assert!(
                    (seen - share).abs() <= share / 4.0,
                    "{side}: {}/{} is not a {share} share: {record:?}",
                    counts.events,
                    counts.trials
                );
            }
        }
    }
    assert!(
        evaluations > 100 && counted > 500,
        "{evaluations} evaluations, {counted} counts read"
    );
}

/// A check with custom counts is read the same way: two sums judged like the preset; a count
/// that is a scalar, or that is not summed to one series, is an `error` whose reason says what to
/// write instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_counts_are_judged_and_malformed_ones_say_why() {
    let harness = Harness::start(exported()).await;
    let engine = AnalysisEngine::new(&harness.url, Duration::from_secs(5)).unwrap();
    let requests = "feed_http_requests_total{ {{selector}} }[{{window}}]";
    let errors = "feed_http_requests_total{ {{selector}}, status=~'5..' }[{{window}}]";
    let check = |name: &str, numerator: &str, denominator: &str| {
        format!(
            "    - name: {name}\n      counts: {{numerator: \"{numerator}\", denominator: \"{denominator}\"}}\n      compare: {{mode: sequential, minEffect: 0.01, direction: higher-is-worse}}\n"
        )
    };
    let yaml = [
        check(
            "summed",
            &format!("sum(increase({errors}))"),
            &format!("sum(increase({requests}))"),
        ),
        check(
            "scalar",
            &format!("scalar(sum(increase({errors})))"),
            &format!("sum(increase({requests}))"),
        ),
        check(
            "unsummed",
            &format!("sum(increase({errors}))"),
            &format!("increase({requests})"),
        ),
    ]
    .concat();
    let checks = checks(&yaml);
    let step_start = Timestamp::now();
    let worse = target("worse", TrafficMode::ReplicaRatio);
    let deadline = Instant::now() + Duration::from_secs(40);
    let records = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = Timestamp::now();
        let step = over_the_step(&checks, Some(step_start), now);
        let run = engine.evaluate(&worse, &step, false, now).await;
        if run.records[0].verdict != Verdict::NoData || Instant::now() > deadline {
            break run.records;
        }
    };
    assert_eq!(records[0].verdict, Verdict::Fail, "{:?}", records[0]);
    assert!(
        records[0].reason.contains("canary worse"),
        "{}",
        records[0].reason
    );
    assert_eq!(records[1].verdict, Verdict::Error, "{:?}", records[1]);
    assert!(
        records[1]
            .reason
            .contains("must be an instant vector, e.g. sum(increase(...)), not a scalar"),
        "{}",
        records[1].reason
    );
    assert_eq!(records[2].verdict, Verdict::Error, "{:?}", records[2]);
    assert!(
        records[2]
            .reason
            .contains("canary trials: query returned 2 series; aggregate it to one number"),
        "{}",
        records[2].reason
    );
}
