//! Issue 17's proofs on one machine (real feed-servers, Redis, Prometheus; the operator's brain,
//! analysis engine and replay adapter through the e2e driver):
//!
//! - a ranking profile that the replay of the exposure log finds worse is stopped by the replay
//!   gate before any user sees it: the canary weight never leaves 0, `RolledBack` with reason
//!   `ReplayRegression`, the figures in `status.replayGate` and `status.history`;
//! - an in-app rollout whose completion is 2 points worse than stable's is rolled back by a
//!   sequential check (`compare: {mode: sequential}`) on the counts of its step.
//!
//! Each seeds what it needs by posting events fast, with small windows, and stays well under 40 s.

use std::time::Duration;

use feedroll_crds::{FeedRolloutSpec, Phase, ReplayMetric, ReplayVerdict};
use feedroll_e2e::driver::{self, Hooks, Setup, Timings, World};
use serde_json::{Value, json};

const STABLE_PROFILE: &str = "name: v1\n";

/// An in-app FeedRollout from `yaml`, its timings rewritten like the examples'.
fn in_app(yaml: &str, t: &Timings) -> FeedRolloutSpec {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fr.yaml");
    std::fs::write(&path, yaml).expect("write");
    driver::load_example(&path, t).expect("spec loads").spec
}

const HEAD: &str = r#"
apiVersion: feedroll.dev/v1alpha1
kind: FeedRollout
metadata: {name: feed, namespace: feed}
spec:
  template:
    metadata: {labels: {app.kubernetes.io/name: feed-server}}
    spec: {containers: [{name: feed-server, image: feed:1}]}
"#;

/// Posts `events` in batches of 200, each sent again after a 503 (a debug feed-server on a
/// loaded machine times out on the store now and then; a batch that timed out late may count
/// twice, which changes neither the seeded history's shape nor a variant's share).
async fn post_events(client: &reqwest::Client, base: &str, events: &[Value]) {
    for chunk in events.chunks(200) {
        let mut last = None;
        for _ in 0..20 {
            let response = client
                .post(format!("{base}/v1/events"))
                .json(&json!({ "events": chunk }))
                .send()
                .await;
            match response {
                Ok(r) if r.status().is_success() => {
                    last = None;
                    break;
                }
                Ok(r) => last = Some(r.status().to_string()),
                Err(e) => last = Some(e.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(last, None, "events not accepted");
    }
}

/// 300 users × 5 plays: even videos are nearly always finished, odd ones rarely. The stable
/// (default) profile learns it from the completion counters; a freshness-only profile cannot
/// tell the videos apart (the catalog's videos were all published at once).
fn finishing_history() -> Vec<Value> {
    let mut events = Vec::new();
    for u in 0..300u32 {
        for k in 0..5u32 {
            let v = (u * 7 + k * 13) % 200;
            let (user, video) = (format!("seed-{u}"), format!("v{v}"));
            let finished = if v % 2 == 0 {
                (u + k) % 10 != 0
            } else {
                (u + k) % 10 == 0
            };
            let watched = if finished { 30_000 } else { 5_000 };
            events.push(json!({"user_id": user, "video_id": video, "type": "impression"}));
            events.push(
                json!({"user_id": user, "video_id": video, "type": "view", "watch_ms": watched}),
            );
            if finished {
                events.push(json!({"user_id": user, "video_id": video, "type": "complete", "watch_ms": watched}));
            }
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_profile_worse_by_replay_is_stopped_before_any_user_sees_it() {
    let t = Timings::default();
    let canary = in_app(
        &format!(
            "{HEAD}  rankingProfile: {{name: fresh-only, weights: {{freshness: 1, completion: 0, engagement: 0, affinity: 0, embedding: 0, brevity: 0}}}}
  strategy:
    traffic: {{inApp: {{}}}}
    replayGate: {{window: 5m, maxDrop: {{gaucFinish: 0.005, ndcgWatch: 0.005}}}}
    steps: [{{setWeight: 25}}, {{pause: {{duration: 1h}}}}, {{setWeight: 100}}]
"
        ),
        &t,
    );
    let stable = FeedRolloutSpec {
        ranking_profile: None,
        ..canary.clone()
    };
    let setup = Setup {
        rollout: "replay-gate".into(),
        stable_profile: STABLE_PROFILE.into(),
        canary_profile: STABLE_PROFILE.into(),
        rate: 10,
        users: 100,
    };
    let mut world = World::start(&setup).await.expect("world");
    post_events(
        &reqwest::Client::new(),
        &world.stable.url(),
        &finishing_history(),
    )
    .await;

    let outcome = driver::run(
        &mut world,
        &stable,
        &canary,
        Hooks::default(),
        Duration::from_secs(30),
    )
    .await
    .expect("run");
    println!(
        "{}",
        outcome.timeline.render("replay gate stops a worse profile")
    );
    let status = &outcome.status;
    assert_eq!(status.phase, Some(Phase::RolledBack), "{status:?}");
    assert_eq!(outcome.max_weight, 0, "no user ever saw the canary");
    let gate = status.replay_gate.as_ref().expect("status.replayGate");
    assert_eq!(gate.verdict, Some(ReplayVerdict::Regression), "{gate:?}");
    assert!(gate.exposures.unwrap_or(0) >= 1500, "{gate:?}");
    let finish = gate
        .figures
        .iter()
        .find(|f| f.metric == Some(ReplayMetric::GaucFinish))
        .expect("GAUC(finish)");
    assert!(finish.upper.is_some_and(|u| u < -0.005), "{finish:?}");
    assert!(finish.stable > finish.canary, "{finish:?}");
    let last = status.history.last().expect("history");
    assert!(
        last.reason.contains("ReplayRegression") && last.reason.contains("gaucFinish"),
        "{}",
        last.reason
    );
    assert!(
        outcome
            .timeline
            .rows
            .iter()
            .any(|r| r.events.iter().any(|e| e.starts_with("ReplayRegression"))),
        "a ReplayRegression event"
    );
}

/// `n` plays per variant, interleaved (so any slice of the stream holds both variants alike):
/// 5 in 100 of the stable variant's impressions are finished, 3 in 100 of the canary's.
fn plays(round: u32, n: u32) -> Vec<Value> {
    let mut events = Vec::new();
    for i in 0..n {
        for (variant, finished) in [("stable", i % 100 < 5), ("canary", i % 100 < 3)] {
            let user = format!("{variant}-{round}-{i}");
            let video = format!("v{}", (i * 7 + round) % 200);
            events.push(json!({"user_id": user, "video_id": video, "type": "impression", "variant": variant}));
            if finished {
                events.push(json!({"user_id": user, "video_id": video, "type": "complete", "watch_ms": 30_000, "variant": variant}));
            }
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn completion_two_points_worse_is_rolled_back_by_a_sequential_check() {
    let t = Timings {
        max_hold: "30s",
        ..Timings::default()
    };
    let canary = in_app(
        &format!(
            "{HEAD}  rankingProfile: {{name: v2, weights: {{freshness: 0.2, completion: 0.35}}}}
  strategy:
    traffic: {{inApp: {{}}}}
    steps: [{{setWeight: 50}}, {{pause: {{untilConfident: true, max: 1h}}}}, {{setWeight: 100}}]
  analysis:
    defaultChecks: false
    checks:
      - name: completion-sequential
        preset: completionRate
        compare: {{mode: sequential, alpha: 0.05, minEffect: 0.02}}
        consecutiveFailuresAllowed: 0
"
        ),
        &t,
    );
    let stable = FeedRolloutSpec {
        ranking_profile: None,
        ..canary.clone()
    };
    let setup = Setup {
        rollout: "sequential-completion".into(),
        stable_profile: STABLE_PROFILE.into(),
        canary_profile: STABLE_PROFILE.into(),
        rate: 10,
        users: 100,
    };
    let mut world = World::start(&setup).await.expect("world");
    // Users keep playing, as fast as the server takes it: 5% of the stable variant's
    // impressions finish, 3% of the canary's.
    let base = world.stable.url();
    let feeder = tokio::spawn(async move {
        let client = reqwest::Client::new();
        for round in 0.. {
            post_events(&client, &base, &plays(round, 100)).await;
        }
    });
    let outcome = driver::run(
        &mut world,
        &stable,
        &canary,
        Hooks::default(),
        Duration::from_secs(35),
    )
    .await
    .expect("run");
    feeder.abort();
    println!(
        "{}",
        outcome
            .timeline
            .render("completion 2 points worse, sequential check")
    );
    let status = &outcome.status;
    assert_eq!(
        status.phase,
        Some(Phase::RolledBack),
        "{:?}",
        status.message
    );
    let message = status.message.clone().unwrap_or_default();
    assert!(message.contains("completion-sequential"), "{message}");
    let record = outcome
        .timeline
        .records("completion-sequential")
        .find(|r| r.verdict == feedroll_crds::Verdict::Fail)
        .expect("a sequential fail");
    let evidence = record.evidence.as_ref().expect("evidence");
    // canary − stable of completion: about −0.02, the interval wholly below 0.
    assert!(evidence.upper.is_some_and(|u| u < 0.0), "{evidence:?}");
    assert!(
        evidence.estimate.is_some_and(|e| (e + 0.02).abs() < 0.015),
        "{evidence:?}"
    );
}
