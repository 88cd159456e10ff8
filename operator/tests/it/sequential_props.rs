//! The sequential statistics over thousands of seeded simulated rollouts (pure, in memory):
//! looked at every interval over the whole step, a canary equal to stable fails at most
//! `alpha` of the time, a canary worse by `minEffect` passes at most `alpha` of the time and
//! fails at least 80% of the time within the trials `operator/README.md` states; no verdict is
//! ever given below the minimum counts.

use feedroll_crds::{Direction, SequentialTest, SideCounts};
use feedroll_operator::analysis::sequential::{
    Decision, MIN_TRIALS, assess, trials_for_power, trials_to_decide,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Binomial, Distribution};

/// One kind of rollout: stable's share, the canary's share of traffic, the test.
struct Scenario {
    name: &'static str,
    p: f64,
    canary_fraction: f64,
    test: SequentialTest,
}

fn scenarios() -> [Scenario; 3] {
    [
        // Error rate 1% at 10% canary traffic; a canary at 2% is twice as bad.
        Scenario {
            name: "error rate 1%, 10% canary",
            p: 0.01,
            canary_fraction: 0.10,
            test: SequentialTest {
                alpha: 0.05,
                min_effect: 0.01,
                direction: Direction::HigherIsWorse,
            },
        },
        // Completion 30% in-app at 25%: two points less completion matters.
        Scenario {
            name: "completion 30%, 25% canary",
            p: 0.30,
            canary_fraction: 0.25,
            test: SequentialTest {
                alpha: 0.05,
                min_effect: 0.02,
                direction: Direction::LowerIsWorse,
            },
        },
        // A rare event: 0.2% errors, 0.2 points, alpha 0.01.
        Scenario {
            name: "error rate 0.2%, 10% canary, alpha 0.01",
            p: 0.002,
            canary_fraction: 0.10,
            test: SequentialTest {
                alpha: 0.01,
                min_effect: 0.002,
                direction: Direction::HigherIsWorse,
            },
        },
    ]
}

/// The README's table: scenario name → trials (canary + stable) for 80% detection.
const DOCUMENTED: [(&str, u64); 3] = [
    ("error rate 1%, 10% canary", 21_019),
    ("completion 30%, 25% canary", 42_038),
    ("error rate 0.2%, 10% canary, alpha 0.01", 134_670),
];

const RUNS: u64 = 2_000;
/// Looks per step (one per analysis interval).
const LOOKS: u64 = 60;

/// How a simulated step ended: the first decision, or none.
fn simulate(s: &Scenario, canary_p: f64, total_trials: u64, seed: u64) -> Option<Decision> {
    let mut rng = StdRng::seed_from_u64(seed);
    let per_look = total_trials.div_ceil(LOOKS);
    let canary_per_look = ((per_look as f64) * s.canary_fraction).round() as u64;
    let stable_per_look = per_look - canary_per_look;
    let (mut canary, mut stable) = (SideCounts::default(), SideCounts::default());
    let draw = |rng: &mut StdRng, n: u64, p: f64| Binomial::new(n, p).map_or(0, |b| b.sample(rng));
    for _ in 0..LOOKS {
        canary.events += draw(&mut rng, canary_per_look, canary_p);
        canary.trials += canary_per_look;
        stable.events += draw(&mut rng, stable_per_look, s.p);
        stable.trials += stable_per_look;
        let a = assess(&s.test, canary, stable, 0);
        if canary.trials < MIN_TRIALS || stable.trials < MIN_TRIALS {
            assert_eq!(
                a.decision,
                Decision::TooFew,
                "{}: verdict below the minimum",
                s.name
            );
            assert!(!a.evidence.judged);
        }
        match a.decision {
            Decision::Pass | Decision::Fail => return Some(a.decision),
            Decision::Undecided | Decision::TooFew => {}
        }
    }
    None
}

fn worse_share(s: &Scenario) -> f64 {
    match s.test.direction {
        Direction::HigherIsWorse => s.p + s.test.min_effect,
        Direction::LowerIsWorse => s.p - s.test.min_effect,
    }
}

fn rate(s: &Scenario, canary_p: f64, trials: u64, want: Decision, salt: u64) -> f64 {
    let hits = (0..RUNS)
        .filter(|seed| simulate(s, canary_p, trials, seed * 7919 + salt) == Some(want))
        .count();
    hits as f64 / RUNS as f64
}

#[test]
fn the_documented_trials_are_what_the_planner_says() {
    let planned: Vec<(&str, u64)> = scenarios()
        .iter()
        .map(|s| (s.name, trials_for_power(s.p, s.canary_fraction, &s.test)))
        .collect();
    assert_eq!(
        planned, DOCUMENTED,
        "update operator/README.md and DOCUMENTED"
    );
}

#[test]
fn an_identical_canary_fails_at_most_alpha_of_the_time_looked_at_every_interval() {
    for s in scenarios() {
        // A long step: four times the trials of the detection plan, looked at 60 times.
        let trials = 4 * trials_for_power(s.p, s.canary_fraction, &s.test);
        let false_alarms = rate(&s, s.p, trials, Decision::Fail, 1);
        println!(
            "{}: {false_alarms} false alarms over {trials} trials",
            s.name
        );
        assert!(
            false_alarms <= s.test.alpha,
            "{}: {false_alarms} false alarms > alpha {}",
            s.name,
            s.test.alpha
        );
    }
}

#[test]
fn an_identical_canary_passes_within_the_planned_trials() {
    for s in scenarios() {
        let trials = 2 * trials_to_decide(s.p, s.canary_fraction, &s.test);
        let passes = rate(&s, s.p, trials, Decision::Pass, 2);
        println!("{}: {passes} passed within {trials} trials", s.name);
        assert!(passes >= 0.8, "{}: only {passes} passed", s.name);
    }
}

#[test]
fn a_canary_worse_by_min_effect_fails_at_least_80_percent_and_passes_at_most_alpha() {
    for s in scenarios() {
        let trials = trials_for_power(s.p, s.canary_fraction, &s.test);
        let canary_p = worse_share(&s);
        let detected = rate(&s, canary_p, trials, Decision::Fail, 3);
        println!("{}: {detected} detected within {trials} trials", s.name);
        assert!(detected >= 0.8, "{}: detected only {detected}", s.name);
        let passed = rate(&s, canary_p, 4 * trials, Decision::Pass, 4);
        assert!(
            passed <= s.test.alpha,
            "{}: passed {passed} > alpha {}",
            s.name,
            s.test.alpha
        );
    }
}
