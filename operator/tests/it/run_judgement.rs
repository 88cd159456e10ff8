//! The pure judgement of a recorded analysis run (`brain::judge_run`): table tests of each rule
//! and property tests over random counters, verdicts and phases.

use crate::support::brain as support;
use crate::support::generators;

use feedroll_crds::{
    AnalysisRun, CheckRecord, CheckState, PauseReason, Phase, ResolvedCheck, SequentialEvidence,
    Tier, Verdict,
};
use feedroll_operator::brain::{RunDecision, RunFacts, judge_run};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use proptest::prelude::*;
use support::at;

/// The checks every case judges, in spec order.
fn checks() -> Vec<ResolvedCheck> {
    support::spec(
        r#"
analysis:
  defaultChecks: false
  checks:
    - {name: rb, preset: errorRate, max: 0.01, tier: rollback, consecutiveFailuresAllowed: 0}
    - {name: blk, preset: errorRate, max: 0.01, tier: blocking, consecutiveFailuresAllowed: 1, maxHold: 60s}
    - {name: ps, preset: errorRate, max: 0.01, tier: pause, consecutiveFailuresAllowed: 0}
    - {name: adv, preset: errorRate, max: 0.01, tier: advisory, maxHold: 60s}
    - {name: np, preset: errorRate, max: 0.01, tier: blocking, onNoData: pause, maxHold: 60s}
"#,
    )
    .resolved_analysis()
    .expect("a valid analysis")
    .checks
}

/// A record of `name` with `verdict` (value 0.02 when it failed).
fn record(name: &str, verdict: Verdict) -> CheckRecord {
    CheckRecord {
        name: name.to_owned(),
        verdict,
        value: (verdict == Verdict::Fail).then_some(0.02),
        threshold: "<= 0.01".to_owned(),
        reason: format!("{name} said {}", verdict.as_str()),
        ..CheckRecord::default()
    }
}

/// A sequential record still gathering evidence (no data, but judged counts).
fn gathering(name: &str) -> CheckRecord {
    CheckRecord {
        evidence: Some(SequentialEvidence {
            judged: true,
            ..SequentialEvidence::default()
        }),
        ..record(name, Verdict::NoData)
    }
}

/// Counters: failures in a row, and holding since second `s`.
fn state(name: &str, failures: i32, holding_since: Option<i64>) -> CheckState {
    CheckState {
        name: name.to_owned(),
        consecutive_failures: failures,
        holding_since: holding_since.map(|s| Time(at(s))),
    }
}

/// One case: the run's records, the counters, the phase and the second of the decision.
struct Case {
    run: Vec<CheckRecord>,
    states: Vec<CheckState>,
    phase: Phase,
    now: i64,
    overdue: bool,
}

impl Case {
    fn new(phase: Phase) -> Self {
        Self {
            run: Vec::new(),
            states: Vec::new(),
            phase,
            now: 0,
            overdue: false,
        }
    }

    fn judge(&self, checks: &[ResolvedCheck]) -> RunDecision {
        let run = AnalysisRun {
            at: Some(Time(at(self.now))),
            fast: false,
            records: self.run.clone(),
        };
        judge_run(&RunFacts {
            checks,
            run: &run,
            states: &self.states,
            records: &self.run,
            phase: Some(self.phase),
            evidence_overdue: self.overdue,
            now: at(self.now),
        })
    }
}

fn pause(reason: PauseReason, message: &str) -> RunDecision {
    RunDecision::Pause {
        reason,
        message: message.to_owned(),
    }
}

#[test]
fn each_rule_decides_as_documented() {
    use PauseReason::{CheckFailed, HoldExpired, NoData};
    use Phase::{Paused, Progressing, Promoting};
    let checks = checks();
    let pass_all = || ["rb", "blk", "ps", "adv", "np"].map(|n| record(n, Verdict::Pass));
    let table: Vec<(&str, Case, RunDecision)> = vec![
        (
            "all passing, no counters",
            Case {
                run: pass_all().to_vec(),
                ..Case::new(Progressing)
            },
            RunDecision::Continue,
        ),
        (
            "a roll-back-tier failure rolls back, even while paused",
            Case {
                run: vec![record("rb", Verdict::Fail)],
                states: vec![state("rb", 1, None)],
                ..Case::new(Paused)
            },
            RunDecision::RollBack(
                "rb failed 1 time(s) in a row (rollback tier, 0 allowed)".to_owned(),
            ),
        ),
        (
            "blocking failures up to the limit are tolerated",
            Case {
                run: vec![record("blk", Verdict::Fail)],
                states: vec![state("blk", 1, None)],
                ..Case::new(Progressing)
            },
            RunDecision::Continue,
        ),
        (
            "blocking failures past the limit roll back, listed in spec order",
            Case {
                run: vec![record("blk", Verdict::Fail), record("rb", Verdict::Fail)],
                states: vec![state("blk", 2, None), state("rb", 1, None)],
                ..Case::new(Progressing)
            },
            RunDecision::RollBack(
                "rb failed 1 time(s) in a row (rollback tier, 0 allowed); \
                 blk failed 2 time(s) in a row (blocking tier, 1 allowed)"
                    .to_owned(),
            ),
        ),
        (
            "blocking failures past the limit do not roll back a promotion",
            Case {
                run: vec![record("blk", Verdict::Fail)],
                states: vec![state("blk", 2, None)],
                ..Case::new(Promoting)
            },
            RunDecision::Continue,
        ),
        (
            "nor a paused rollout (a human looks)",
            Case {
                run: vec![record("blk", Verdict::Fail)],
                states: vec![state("blk", 2, None)],
                ..Case::new(Paused)
            },
            RunDecision::Continue,
        ),
        (
            "a roll-back-tier failure rolls back a promotion",
            Case {
                run: vec![record("rb", Verdict::Fail), record("blk", Verdict::Fail)],
                states: vec![state("rb", 1, None), state("blk", 2, None)],
                ..Case::new(Promoting)
            },
            RunDecision::RollBack(
                "rb failed 1 time(s) in a row (rollback tier, 0 allowed)".to_owned(),
            ),
        ),
        (
            "roll back wins over a pause-tier failure",
            Case {
                run: vec![record("ps", Verdict::Fail), record("rb", Verdict::Fail)],
                states: vec![state("ps", 1, None), state("rb", 1, None)],
                ..Case::new(Progressing)
            },
            RunDecision::RollBack(
                "rb failed 1 time(s) in a row (rollback tier, 0 allowed)".to_owned(),
            ),
        ),
        (
            "a pause-tier failure pauses, quoting the latest record",
            Case {
                run: vec![record("ps", Verdict::Fail)],
                states: vec![state("ps", 1, None)],
                ..Case::new(Progressing)
            },
            pause(
                CheckFailed,
                "paused for a human: ps failed (value 0.020000 outside <= 0.01)",
            ),
        ),
        (
            "a pause-tier failure without a record says so",
            Case {
                states: vec![state("ps", 1, None)],
                ..Case::new(Progressing)
            },
            pause(CheckFailed, "paused for a human: ps failed (no record)"),
        ),
        (
            "a pause-tier failure while already paused changes nothing",
            Case {
                run: vec![record("ps", Verdict::Fail)],
                states: vec![state("ps", 1, None)],
                ..Case::new(Paused)
            },
            RunDecision::Continue,
        ),
        (
            "no data under onNoData: pause pauses at once",
            Case {
                run: vec![record("np", Verdict::NoData)],
                states: vec![state("np", 0, Some(0))],
                ..Case::new(Progressing)
            },
            pause(
                NoData,
                "paused for a human: np has no-data (np said no-data)",
            ),
        ),
        (
            "no data during a promotion does not pause",
            Case {
                run: vec![record("np", Verdict::NoData)],
                states: vec![state("np", 0, Some(0))],
                ..Case::new(Promoting)
            },
            RunDecision::Continue,
        ),
        (
            "evidence still being gathered is not missing data",
            Case {
                run: vec![gathering("np")],
                ..Case::new(Progressing)
            },
            RunDecision::Continue,
        ),
        (
            "evidence past the untilConfident max is missing data",
            Case {
                run: vec![gathering("np")],
                overdue: true,
                ..Case::new(Progressing)
            },
            pause(
                NoData,
                "paused for a human: np has no-data (np said no-data)",
            ),
        ),
        (
            "a hold shorter than maxHold goes on",
            Case {
                run: vec![record("blk", Verdict::Error)],
                states: vec![state("blk", 0, Some(0))],
                now: 59,
                ..Case::new(Progressing)
            },
            RunDecision::Continue,
        ),
        (
            "a hold of maxHold pauses",
            Case {
                run: vec![record("blk", Verdict::Error)],
                states: vec![state("blk", 0, Some(0))],
                now: 60,
                ..Case::new(Progressing)
            },
            pause(
                HoldExpired,
                "paused for a human: blk has had error for longer than maxHold 60s (blk said error)",
            ),
        ),
        (
            "an old hold of a check this run did not evaluate waits for its record",
            Case {
                run: vec![record("rb", Verdict::Pass)],
                states: vec![state("blk", 0, Some(0))],
                now: 600,
                ..Case::new(Progressing)
            },
            RunDecision::Continue,
        ),
        (
            "advisory checks decide nothing",
            Case {
                run: vec![record("adv", Verdict::NoData)],
                states: vec![state("adv", 9, Some(0))],
                now: 600,
                ..Case::new(Progressing)
            },
            RunDecision::Continue,
        ),
    ];
    for (what, case, want) in table {
        assert_eq!(case.judge(&checks), want, "{what}");
    }
}

/// Everything random about one check: its verdict in the run (if it ran), failures in a row
/// and since when it holds.
type CheckGen = (Option<Verdict>, i32, Option<i64>);

fn case() -> impl Strategy<Value = (Vec<CheckGen>, Phase, i64, bool)> {
    let check = (
        prop::option::weighted(0.8, generators::verdict(3, 2)),
        0..4i32,
        prop::option::weighted(0.4, 0..200i64),
    );
    let phase = prop_oneof![
        Just(Phase::Progressing),
        Just(Phase::Paused),
        Just(Phase::Promoting),
        Just(Phase::RolledBack),
    ];
    (
        prop::collection::vec(check, 5),
        phase,
        0..300i64,
        any::<bool>(),
    )
}

fn build(
    checks: &[ResolvedCheck],
    gens: &[CheckGen],
    phase: Phase,
    now: i64,
    overdue: bool,
) -> Case {
    let mut case = Case {
        now,
        overdue,
        ..Case::new(phase)
    };
    for (check, (verdict, failures, since)) in checks.iter().zip(gens) {
        if let Some(v) = verdict {
            case.run.push(record(&check.name, *v));
        }
        case.states.push(state(&check.name, *failures, *since));
    }
    case
}

/// Which failures count, per tier and phase: what the state machine's counters and the
/// judgement both follow.
#[test]
fn only_roll_back_tier_failures_count_outside_progressing() {
    use feedroll_operator::brain::failure_counts;
    for tier in [Tier::Rollback, Tier::Blocking, Tier::Pause, Tier::Advisory] {
        assert!(failure_counts(tier, Some(Phase::Progressing)), "{tier:?}");
        for phase in [Phase::Paused, Phase::Promoting] {
            assert_eq!(
                failure_counts(tier, Some(phase)),
                tier == Tier::Rollback,
                "{tier:?} in {phase:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Rolls back exactly when a roll-back-tier check (in any phase) or a blocking check (while
    /// `Progressing`) failed past its limit; never pauses outside `Progressing`.
    #[test]
    fn rolls_back_exactly_past_the_limits_and_pauses_only_while_progressing(
        (gens, phase, now, overdue) in case()
    ) {
        let checks = checks();
        let case = build(&checks, &gens, phase, now, overdue);
        let breached = checks.iter().zip(&gens).any(|(c, (_, failures, _))| {
            (c.tier == Tier::Rollback || (c.tier == Tier::Blocking && phase == Phase::Progressing))
                && *failures > c.consecutive_failures_allowed
        });
        let decision = case.judge(&checks);
        prop_assert_eq!(matches!(decision, RunDecision::RollBack(_)), breached, "{:?}", decision);
        if phase != Phase::Progressing {
            prop_assert!(!matches!(decision, RunDecision::Pause { .. }), "{:?}", decision);
        }
    }

    /// The advisory check's verdict and counters never change the decision.
    #[test]
    fn advisory_checks_never_decide(
        (gens, phase, now, overdue) in case(),
        advisory in (prop::option::of(generators::verdict(1, 1)), 0..9i32, prop::option::of(0..300i64)),
    ) {
        let checks = checks();
        let adv = checks.iter().position(|c| c.tier == Tier::Advisory).expect("adv");
        let mut other = gens.clone();
        other[adv] = advisory;
        prop_assert_eq!(
            build(&checks, &gens, phase, now, overdue).judge(&checks),
            build(&checks, &other, phase, now, overdue).judge(&checks)
        );
    }

    /// With no counter past its limit and no missing data in the run, the rollout goes on.
    #[test]
    fn goes_on_without_failures_or_missing_data(
        (gens, phase, now, overdue) in case()
    ) {
        let checks = checks();
        let clean: Vec<CheckGen> = gens
            .iter()
            .zip(&checks)
            .map(|((verdict, failures, since), c)| {
                let verdict = verdict.filter(|v| matches!(v, Verdict::Pass | Verdict::Fail));
                (verdict, (*failures).min(c.consecutive_failures_allowed), *since)
            })
            .collect();
        prop_assert_eq!(
            build(&checks, &clean, phase, now, overdue).judge(&checks),
            RunDecision::Continue
        );
    }
}
