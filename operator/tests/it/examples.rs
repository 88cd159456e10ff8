//! Every example in `examples/` passes the schema and the CEL rules; every file in
//! `examples/invalid/` is rejected with the message (and line) its header expects.

use std::path::{Path, PathBuf};

use feedroll_operator::brain::{Observations, decide};
use feedroll_operator::validate::validate_text;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn examples_are_valid_and_drive_the_brain() {
    let files = yaml_files(&examples_dir());
    let names: Vec<_> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "default-plan.yaml",
        "gateway-api.yaml",
        "ranking-experiment.yaml",
        "custom-promql.yaml",
        "prometheus-auth.yaml",
    ] {
        assert!(names.contains(&want.to_owned()), "missing example {want}");
    }
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let rollout = validate_text(&text).unwrap_or_else(|problems| {
            panic!(
                "{}: {}",
                file.display(),
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        });
        let obs = Observations {
            revision: "r1".into(),
            ..Default::default()
        };
        let t = decide(
            &rollout.spec,
            &Default::default(),
            &obs,
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        );
        assert_eq!(
            t.status.phase,
            Some(feedroll_crds::Phase::Promoting),
            "{}",
            file.display()
        );
    }
}

#[test]
fn invalid_examples_are_rejected_with_their_expected_message() {
    let files = yaml_files(&examples_dir().join("invalid"));
    assert!(files.len() >= 10, "only {} invalid examples", files.len());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let expect = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{}: no '# expect: <message>' line", file.display()));
        let line: Option<usize> = text
            .lines()
            .find_map(|l| l.strip_prefix("# line: "))
            .map(|l| l.trim().parse().unwrap());
        let Err(problems) = validate_text(&text) else {
            panic!("{} was accepted", file.display())
        };
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let hit = problems
            .iter()
            .find(|p| p.to_string().contains(expect))
            .unwrap_or_else(|| panic!("{}: expected {expect:?}, got {shown:?}", file.display()));
        if let Some(line) = line {
            assert_eq!(hit.line, Some(line), "{}: {shown:?}", file.display());
        }
        assert!(hit.line.is_some(), "{}: no line for {hit}", file.display());
    }
}
