//! The rollout scenarios of issue 5, each a test that fails when the outcome is wrong. Every
//! scenario prints its timeline (run with `--nocapture`, as `make e2e` does).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use feedroll_crds::{FeedRolloutSpec, FeedRolloutStatus, Phase, Tier, Verdict};
use feedroll_e2e::driver::{self, Hooks, HumanHook, Outcome, Setup, Timings, World};
use feedroll_operator::brain::CommandKind;
use serde_json::json;

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("examples")
        .join(name)
}

const STABLE_PROFILE: &str = "name: v1\n";
const CANARY_PROFILE: &str = "name: v2\nweights: {freshness: 0.2, completion: 0.35}\n";

fn setup(rollout: &str, rate: u32) -> Setup {
    Setup {
        rollout: rollout.to_owned(),
        stable_profile: STABLE_PROFILE.to_owned(),
        canary_profile: CANARY_PROFILE.to_owned(),
        rate,
        users: 500,
    }
}

/// The stable and canary specs: the same example with a new image on the canary.
fn specs(example_file: &str, timings: &Timings) -> (FeedRolloutSpec, FeedRolloutSpec) {
    let fr = driver::load_example(&example(example_file), timings).expect("example loads");
    let stable = fr.spec.clone();
    let mut canary = fr.spec;
    for c in canary
        .template
        .spec
        .iter_mut()
        .flat_map(|s| s.containers.iter_mut())
    {
        c.image = Some(format!("{}-next", c.image.clone().unwrap_or_default()));
    }
    (stable, canary)
}

fn report(title: &str, outcome: &Outcome) {
    println!("{}", outcome.timeline.render(title));
}

async fn prometheus_profile_of_stable(world: &World) -> Option<String> {
    let body: serde_json::Value = reqwest::get(format!("{}/metrics", world.stable.url()))
        .await
        .ok()?
        .text()
        .await
        .ok()
        .map(|t| {
            let line = t
                .lines()
                .find(|l| l.starts_with("feed_ranking_profile_info"))?
                .to_owned();
            Some(json!(line))
        })??;
    body.as_str().map(str::to_owned)
}

/// Time from `began` to the first RolledBack decision.
fn breach_to_rollback(outcome: &Outcome, began: Option<Duration>) -> Option<f64> {
    let rolled = outcome
        .timeline
        .rows
        .iter()
        .find(|r| r.phase == "RolledBack")?
        .at;
    Some(rolled.checked_sub(began?)?.as_secs_f64())
}

/// When the canary's fault began (time since the scenario started).
type Began = Arc<Mutex<Option<Duration>>>;

/// Starts a fault on the canary once it has served its first step (so its series exist in
/// Prometheus and the measured breach-to-rollback time is the detection time); `Began` records
/// when.
fn fault_after_first_step(
    faults: serde_json::Value,
) -> (
    Began,
    impl FnMut(&mut World, &FeedRolloutStatus, Duration) + Send,
) {
    let began: Began = Arc::new(Mutex::new(None));
    let b = began.clone();
    let hook = move |world: &mut World, status: &FeedRolloutStatus, at: Duration| {
        let mut began = b.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if began.is_none() && status.weight > 0 && status.current_step_index >= Some(1) {
            world.pending_canary_faults = Some(faults.clone());
            *began = Some(at);
        }
    };
    (began, hook)
}

/// Runs the default plan on a fresh world; prints and returns the outcome, and the world.
async fn default_plan(
    title: &str,
    rollout: &str,
    rate: u32,
    t: Timings,
    hooks: Hooks,
    deadline: u64,
) -> (Outcome, World) {
    let (stable, canary) = specs(DEFAULT_PLAN, &t);
    let mut world = World::start(&setup(rollout, rate)).await.expect("world");
    let outcome = driver::run(
        &mut world,
        &stable,
        &canary,
        hooks,
        Duration::from_secs(deadline),
    )
    .await
    .expect("run");
    report(title, &outcome);
    (outcome, world)
}

/// The default plan at `rate` requests/s with `faults` set on the canary after its first step;
/// returns the outcome
/// and the breach-to-rollback seconds (printed as `BREACH_TO_ROLLBACK` for the report).
async fn with_fault(
    title: &str,
    rollout: &str,
    rate: u32,
    faults: serde_json::Value,
    human: HumanHook,
    deadline: u64,
) -> (Outcome, Option<f64>) {
    let (began, hook) = fault_after_first_step(faults);
    let hooks = Hooks {
        human,
        during: Box::new(hook),
        ..Hooks::default()
    };
    let (outcome, _) =
        default_plan(title, rollout, rate, Timings::default(), hooks, deadline).await;
    let seconds = breach_to_rollback(
        &outcome,
        *began
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    println!("BREACH_TO_ROLLBACK scenario={rollout} seconds={seconds:?}");
    (outcome, seconds)
}

fn no_human() -> HumanHook {
    Box::new(|_, _| None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s1_healthy_canary_is_promoted_through_every_step() {
    let (outcome, world) = default_plan(
        "1 healthy canary",
        "s1",
        // 10% of 80/s: enough canary requests in the 3-s roll-back window (minRequests 5) even
        // when a loaded machine delays scrapes.
        80,
        Timings::default(),
        Hooks::default(),
        120,
    )
    .await;
    assert_eq!(
        outcome.status.phase,
        Some(Phase::Succeeded),
        "{:?}",
        outcome.status
    );
    assert!(
        outcome.promoted && outcome.max_weight == 100,
        "went through every step to 100%"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let info = prometheus_profile_of_stable(&world)
        .await
        .unwrap_or_default();
    assert!(
        info.contains("profile=\"v2\""),
        "stable now runs the new version: {info}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s2_ten_percent_errors_roll_back_by_the_rollback_tier() {
    let (outcome, seconds) = with_fault(
        "2 canary at 10% errors",
        "s2",
        150,
        json!({"error_rate": 0.1}),
        no_human(),
        60,
    )
    .await;
    assert_eq!(
        outcome.status.phase,
        Some(Phase::RolledBack),
        "{:?}",
        outcome.status
    );
    assert!(!outcome.promoted);
    // 10% errors breach both roll-back-tier checks (error rate > 5%, availability < 99%);
    // whichever crosses first rolls back.
    let fired = outcome
        .timeline
        .rows
        .iter()
        .flat_map(|r| &r.records)
        .any(|r| r.tier == Tier::Rollback && r.verdict == Verdict::Fail);
    assert!(fired, "the roll-back tier fired");
    assert!(seconds.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_added_600ms_latency_fails_blocking_p95_and_rolls_back() {
    let (outcome, seconds) = with_fault(
        "3 canary +600 ms",
        "s3",
        50,
        json!({"added_latency_ms": 600}),
        no_human(),
        90,
    )
    .await;
    assert_eq!(
        outcome.status.phase,
        Some(Phase::RolledBack),
        "{:?}",
        outcome.status
    );
    let failed_p95 = outcome
        .timeline
        .records("latency-p95")
        .filter(|r| r.verdict == Verdict::Fail)
        .count();
    assert!(failed_p95 >= 1, "the blocking p95 check failed");
    assert!(seconds.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s4_added_1200ms_latency_pauses_for_a_human_who_resumes_then_aborts() {
    let pauses = Arc::new(Mutex::new(0u32));
    let p = pauses.clone();
    let mut last_phase = None;
    let human: HumanHook = Box::new(move |status, _| {
        let entered_pause =
            status.phase == Some(Phase::Paused) && last_phase != Some(Phase::Paused);
        last_phase = status.phase;
        if !entered_pause {
            return None;
        }
        let mut n = p.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *n += 1;
        Some(if *n == 1 {
            CommandKind::Resume
        } else {
            CommandKind::Abort
        })
    });
    let (outcome, _) = with_fault(
        "4 canary +1.2 s",
        "s4",
        50,
        json!({"added_latency_ms": 1200}),
        human,
        90,
    )
    .await;
    assert_eq!(
        *pauses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
        2,
        "paused, resumed, paused again"
    );
    assert_eq!(
        outcome.status.phase,
        Some(Phase::Aborted),
        "{:?}",
        outcome.status
    );
    assert!(!outcome.promoted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s5_prometheus_down_holds_then_pauses_and_goes_on_when_back() {
    // (killed, restarted)
    let state = Arc::new(Mutex::new((false, false)));
    let s = state.clone();
    let during = move |world: &mut World, status: &FeedRolloutStatus, _: Duration| {
        let mut st = s.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !st.0 && status.weight > 0 {
            world.prometheus.kill();
            st.0 = true;
        }
        if st.0 && !st.1 && status.phase == Some(Phase::Paused) {
            let _ = world.prometheus.restart();
            st.1 = true;
        }
    };
    let mut resumed = false;
    let human: HumanHook = Box::new(move |status, _| {
        let back = state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .1;
        if back && !resumed && status.phase == Some(Phase::Paused) {
            resumed = true;
            return Some(CommandKind::Resume);
        }
        None
    });
    let hooks = Hooks {
        human,
        during: Box::new(during),
        ..Hooks::default()
    };
    let (outcome, _) = default_plan(
        "5 Prometheus killed mid-rollout",
        "s5",
        80,
        Timings::default(),
        hooks,
        150,
    )
    .await;
    let held = outcome
        .timeline
        .rows
        .iter()
        .any(|r| r.events.iter().any(|e| e.starts_with("Held")));
    assert!(held, "the rollout held while Prometheus was down");
    let paused = outcome
        .timeline
        .rows
        .iter()
        .find(|r| r.phase == "Paused")
        .expect("paused for a human after the max hold");
    assert_eq!(paused.weight, Some(10), "never promoted while holding");
    assert_eq!(
        outcome.status.phase,
        Some(Phase::Succeeded),
        "went on once Prometheus was back: {:?}",
        outcome.status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s6_crashing_canary_rolls_back_at_once() {
    let (outcome, seconds) = with_fault(
        "6 canary crashes",
        "s6",
        50,
        json!({"crash": true}),
        no_human(),
        60,
    )
    .await;
    assert_eq!(
        outcome.status.phase,
        Some(Phase::RolledBack),
        "{:?}",
        outcome.status
    );
    assert!(
        seconds.is_some_and(|s| s < 2.0),
        "crash loop rolls back at once: {seconds:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s8_too_little_traffic_is_no_data_never_fail_never_promote() {
    let t = Timings {
        min_requests: 20,
        ..Timings::default()
    };
    let (outcome, _) = default_plan("8 too little traffic", "s8", 3, t, Hooks::default(), 20).await;
    assert_ne!(
        outcome.status.phase,
        Some(Phase::RolledBack),
        "no data never fails"
    );
    assert!(
        !outcome.promoted && outcome.max_weight <= 10,
        "no data never promotes (max weight {})",
        outcome.max_weight
    );
    let verdicts: Vec<Verdict> = outcome
        .timeline
        .rows
        .iter()
        .flat_map(|r| &r.records)
        .filter(|r| r.tier != Tier::Advisory)
        .map(|r| r.verdict)
        .collect();
    assert!(verdicts.contains(&Verdict::NoData), "{verdicts:?}");
    assert!(
        !verdicts.contains(&Verdict::Fail),
        "no-data never fails: {verdicts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s7_in_app_ranking_experiment_splits_users_and_compares_variants() {
    let t = Timings {
        window: "10s",
        min_requests: 10,
        max_hold: "30s",
        ..Timings::default()
    };
    let fr = driver::load_example(&example("ranking-experiment.yaml"), &t).expect("example loads");
    let canary = fr.spec.clone();
    let stable = FeedRolloutSpec {
        ranking_profile: None,
        ..fr.spec
    };
    let mut world = World::start(&setup("s7", 80)).await.expect("world");
    // Stop once both relative checks were judged in the same run at 25%.
    let stop = Box::new(|s: &FeedRolloutStatus| {
        s.weight == 25
            && s.analysis.as_ref().is_some_and(|a| {
                RELATIVE.iter().all(|n| {
                    a.records
                        .iter()
                        .any(|r| r.name == *n && matches!(r.verdict, Verdict::Pass | Verdict::Fail))
                })
            })
    });
    let hooks = Hooks {
        stop,
        ..Hooks::default()
    };
    let outcome = driver::run(&mut world, &stable, &canary, hooks, Duration::from_secs(90))
        .await
        .expect("run");
    report("7 in-app ranking experiment", &outcome);
    assert_eq!(outcome.status.weight, 25, "{:?}", outcome.status);

    // Share of users on the canary variant, and stability per user, measured over HTTP.
    let client = reqwest::Client::new();
    let base = world.stable.url();
    // A well-behaved client: a ranking shed with 503 `overloaded` (the debug build on a busy
    // machine) is sent again after its Retry-After, so every user gets an answer.
    let variant_of = |user: String| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            for _ in 0..30 {
                let response = client
                    .post(format!("{base}/v1/rank"))
                    .json(&json!({"user_id": user, "video_ids": ["v1"]}))
                    .send()
                    .await
                    .ok()?;
                if response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
                    let wait = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                        .unwrap_or(1);
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                    continue;
                }
                let body: serde_json::Value = response.json().await.ok()?;
                return body["variant"].as_str().map(str::to_owned);
            }
            None
        }
    };
    use futures::StreamExt;
    let users: Vec<String> = (0..4000).map(|i| format!("measure-{i}")).collect();
    let first: Vec<Option<String>> = futures::stream::iter(users.clone())
        .map(variant_of)
        .buffered(16)
        .collect()
        .await;
    let canary_share = first
        .iter()
        .filter(|v| v.as_deref() == Some("canary"))
        .count() as f64
        / users.len() as f64;
    println!("IN_APP_CANARY_SHARE {canary_share:.4}");
    let unanswered = first.iter().filter(|v| v.is_none()).count();
    assert_eq!(unanswered, 0, "users without a variant in the answer");
    assert!(
        (canary_share - 0.25).abs() <= 0.02,
        "canary share {canary_share}"
    );
    let again: Vec<Option<String>> = futures::stream::iter(users[..500].to_vec())
        .map(variant_of)
        .buffered(16)
        .collect()
        .await;
    assert_eq!(&first[..500], &again[..], "assignment is stable per user");

    // Variant-labelled completion and engagement reached Prometheus and the relative checks.
    for check in RELATIVE {
        let judged = outcome
            .timeline
            .records(check)
            .find(|r| matches!(r.verdict, Verdict::Pass | Verdict::Fail));
        let judged = judged.unwrap_or_else(|| {
            panic!(
                "{check} was never judged: {:#?}",
                outcome.timeline.records(check).last()
            )
        });
        assert!(
            judged.canary_value.is_some() && judged.stable_value.is_some(),
            "{judged:?}"
        );
        assert!(
            judged.query.contains("variant=\"canary\""),
            "{}",
            judged.query
        );
        assert!(
            judged
                .stable_query
                .as_deref()
                .is_some_and(|q| q.contains("variant=\"stable\"")),
            "{judged:?}"
        );
    }
}

const DEFAULT_PLAN: &str = "default-plan.yaml";
/// The relative checks of the ranking-experiment example.
const RELATIVE: [&str; 2] = ["completion-vs-stable", "engagement-vs-stable"];
