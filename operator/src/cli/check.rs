//! `feedroll-operator check FILE --prometheus URL [--output json]`: validate a FeedRollout file
//! (schema + CEL, line-precise) and evaluate its checks against Prometheus now.
//!
//! Exit codes: 0 when the file is valid and no blocking, rollback or pause-tier check fails
//! (advisory failures, no data and Prometheus errors — 401, TLS — are reported but do not
//! fail); 1 when one of those checks fails; 2 when the file is invalid or cannot be read, or a
//! flag value is unusable (unreadable file, CA that is not PEM, header without `=`).
//!
//! Credentials come from flags (`--prometheus-username` with `--prometheus-password-file`, or
//! `--prometheus-bearer-token-file`; `--prometheus-header NAME=VALUE`, repeatable;
//! `--prometheus-ca-file` or `--prometheus-insecure-skip-verify`), the same settings as
//! `spec.analysis.prometheus`. `check` reads no Secrets: the file's own credential settings are
//! not used (a warning says so when it has some).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use feedroll_crds::{CheckRecord, SequentialEvidence, Tier, Verdict};
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;
use thiserror::Error;

use crate::analysis::connection::{
    Credentials, Sensitive, Verify, header_name, header_text, pem_bundle,
};
use crate::analysis::{AnalysisEngine, AnalysisError, PrometheusConnection, Target};
use crate::validate::{Problem, validate_text};

/// Arguments of `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// FeedRollout YAML file.
    pub file: PathBuf,
    /// Prometheus base URL (default: `spec.analysis.prometheus.address`).
    #[arg(long, env = "FEEDROLL_PROMETHEUS")]
    pub prometheus: Option<String>,
    /// Value of the `namespace` label to select (default: `metadata.namespace`, else `default`).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Leave the `namespace` matcher out of the queries (Prometheus without that label).
    #[arg(long, conflicts_with = "namespace")]
    pub no_namespace: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Basic-auth user name (with `--prometheus-password-file`).
    #[arg(long, requires = "prometheus_password_file")]
    pub prometheus_username: Option<String>,
    /// File holding the basic-auth password (surrounding whitespace is trimmed).
    #[arg(long, requires = "prometheus_username")]
    pub prometheus_password_file: Option<PathBuf>,
    /// File holding a bearer token (surrounding whitespace is trimmed).
    #[arg(long, conflicts_with = "prometheus_username")]
    pub prometheus_bearer_token_file: Option<PathBuf>,
    /// PEM bundle of the CAs that sign Prometheus' certificate (replaces the system roots).
    #[arg(long)]
    pub prometheus_ca_file: Option<PathBuf>,
    /// Extra request header, `NAME=VALUE` (repeatable).
    // Parsed after clap, whose own error would print the whole (possibly secret) argument.
    #[arg(long = "prometheus-header", value_name = "NAME=VALUE")]
    pub prometheus_headers: Vec<String>,
    /// Accept any certificate from Prometheus (tests only).
    #[arg(long, conflicts_with = "prometheus_ca_file")]
    pub prometheus_insecure_skip_verify: bool,
}

/// Parses `NAME=VALUE` into a valid header name and value.
pub fn parse_header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        // Never echo the argument: it may hold the value of a secret header.
        .ok_or_else(|| "expected NAME=VALUE (the value was not printed)".to_owned())?;
    let name = header_name(name.trim()).map_err(|e| e.to_string())?;
    if name.eq_ignore_ascii_case("authorization") {
        return Err(
            "use --prometheus-bearer-token-file or --prometheus-username for Authorization"
                .to_owned(),
        );
    }
    let value = header_text(value.as_bytes(), &format!("the value of header {name}"))
        .map_err(|e| e.to_string())?;
    Ok((name, value))
}

/// The connection the flags describe, to `address` with `timeout`.
pub fn flag_connection(
    args: &CheckArgs,
    address: &str,
    timeout: Duration,
) -> Result<PrometheusConnection, CheckError> {
    let secret = |flag: &'static str, path: &Path| -> Result<Sensitive, CheckError> {
        let bytes = read_flag_file(flag, path)?;
        let origin = format!("{flag} {}", path.display());
        let text = header_text(&bytes, &origin).map_err(|e| CheckError::Flag(e.to_string()))?;
        if text.is_empty() {
            return Err(CheckError::Flag(format!("{origin}: the file is empty")));
        }
        Ok(Sensitive::new(text))
    };
    let credentials = match (
        &args.prometheus_username,
        &args.prometheus_password_file,
        &args.prometheus_bearer_token_file,
    ) {
        (Some(user), Some(password), _) => Credentials::Basic {
            username: Sensitive::new(user.clone()),
            password: secret("--prometheus-password-file", password)?,
        },
        (_, _, Some(token)) => Credentials::Authorization {
            scheme: "Bearer".to_owned(),
            credentials: secret("--prometheus-bearer-token-file", token)?,
        },
        _ => Credentials::None,
    };
    let verify = match &args.prometheus_ca_file {
        _ if args.prometheus_insecure_skip_verify => Verify::Skip,
        Some(path) => {
            let bytes = read_flag_file("--prometheus-ca-file", path)?;
            let origin = format!("--prometheus-ca-file {}", path.display());
            Verify::CaBundle(
                pem_bundle(&bytes, &origin).map_err(|e| CheckError::Flag(e.to_string()))?,
            )
        }
        None => Verify::SystemRoots,
    };
    let headers = args
        .prometheus_headers
        .iter()
        .map(|h| {
            parse_header(h)
                .map(|(n, v)| (n, Sensitive::new(v)))
                .map_err(|e| CheckError::Flag(format!("--prometheus-header: {e}")))
        })
        .collect::<Result<_, _>>()?;
    Ok(PrometheusConnection {
        credentials,
        headers,
        verify,
        ..PrometheusConnection::plain(address, timeout)
    })
}

fn read_flag_file(flag: &'static str, path: &Path) -> Result<Vec<u8>, CheckError> {
    std::fs::read(path).map_err(|e| CheckError::Flag(format!("{flag} {}: {e}", path.display())))
}

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A table for humans.
    Table,
    /// JSON for CI.
    Json,
}

/// Why `check` could not do its job (an invalid file or failing checks are results, not errors).
#[derive(Debug, Error)]
pub enum CheckError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The Prometheus client cannot be built.
    #[error(transparent)]
    Engine(#[from] AnalysisError),
    /// A flag value cannot be used.
    #[error("{0}")]
    Flag(String),
    /// Output could not be written.
    #[error("cannot write the report: {0}")]
    Output(String),
}

/// What `check --output json` prints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The file checked.
    pub file: String,
    /// Whether it passed validation.
    pub valid: bool,
    /// Validation problems (when invalid).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
    /// The FeedRollout's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<String>,
    /// The Prometheus queried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<String>,
    /// One record per check.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckRecord>,
    /// Names of the blocking, rollback and pause-tier checks that failed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
    /// The replay gate (`strategy.replayGate`): its settings, and its last result when the
    /// file holds a status (e.g. `kubectl get fr -o yaml`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replay_gate: Vec<String>,
    /// The process exit code.
    pub exit_code: u8,
}

/// The replay gate's lines: its settings, then the status' result, if any.
fn replay_gate_lines(rollout: &feedroll_crds::FeedRollout) -> Vec<String> {
    let Some(gate) = rollout
        .spec
        .resolved_plan()
        .ok()
        .and_then(|p| p.strategy.replay_gate)
    else {
        return Vec::new();
    };
    let mut lines = vec![format!(
        "before the first step: replay the last {}s of exposures on a stable pod; roll back when GAUC(finish) drops beyond {} or NDCG@10(watch) beyond {} with confidence",
        gate.window.as_secs(),
        gate.max_drop_gauc_finish,
        gate.max_drop_ndcg_watch
    )];
    if let Some(result) = rollout.status.as_ref().and_then(|s| s.replay_gate.as_ref()) {
        lines.extend(result.summary_lines());
    }
    lines
}

/// Whether a failing record fails `check` (every tier but advisory).
pub fn fails_the_check(record: &CheckRecord) -> bool {
    record.verdict == Verdict::Fail && record.tier != Tier::Advisory
}

/// Runs `check`, writing the report to `out`; returns the exit code.
pub async fn run(args: &CheckArgs, out: &mut dyn Write) -> Result<u8, CheckError> {
    let report = evaluate(args).await?;
    write_report(&report, args.output, out).map_err(|e| CheckError::Output(e.to_string()))?;
    Ok(report.exit_code)
}

/// Validates and evaluates, without printing.
pub async fn evaluate(args: &CheckArgs) -> Result<Report, CheckError> {
    let file = args.file.display().to_string();
    let text = std::fs::read_to_string(&args.file).map_err(|source| CheckError::Read {
        path: args.file.clone(),
        source,
    })?;
    let rollout = match validate_text(&text) {
        Ok(r) => r,
        Err(problems) => {
            return Ok(Report {
                file,
                valid: false,
                problems,
                rollout: None,
                prometheus: None,
                checks: Vec::new(),
                failed: Vec::new(),
                replay_gate: Vec::new(),
                exit_code: 2,
            });
        }
    };
    // validate_text resolved the analysis already; a failure here would be a bug, reported as such.
    let analysis = match rollout.spec.resolved_analysis() {
        Ok(a) => a,
        Err(e) => {
            return Ok(Report {
                file,
                valid: false,
                problems: vec![Problem {
                    path: String::new(),
                    line: None,
                    message: e.to_string(),
                }],
                rollout: None,
                prometheus: None,
                checks: Vec::new(),
                failed: Vec::new(),
                replay_gate: Vec::new(),
                exit_code: 2,
            });
        }
    };
    let prometheus = args
        .prometheus
        .clone()
        .unwrap_or_else(|| analysis.prometheus.clone());
    if !analysis.access.is_empty() {
        tracing::warn!(
            "spec.analysis.prometheus has credential or TLS settings; check reads no Secrets and uses only the --prometheus-* flags"
        );
    }
    let connection = flag_connection(args, &prometheus, analysis.timeout)?;
    let engine = AnalysisEngine::connect(&connection)?;
    let name = rollout.metadata.name.clone().unwrap_or_default();
    let namespace = if args.no_namespace {
        None
    } else {
        Some(
            args.namespace
                .clone()
                .or_else(|| rollout.metadata.namespace.clone())
                .unwrap_or_else(|| "default".to_owned()),
        )
    };
    let target = Target {
        namespace,
        rollout: name.clone(),
        traffic: rollout.spec.traffic_mode(),
    };
    let run = engine
        .evaluate(&target, &analysis.checks, false, Timestamp::now())
        .await;
    let failed: Vec<String> = run
        .records
        .iter()
        .filter(|r| fails_the_check(r))
        .map(|r| r.name.clone())
        .collect();
    Ok(Report {
        file,
        valid: true,
        problems: Vec::new(),
        rollout: Some(name),
        prometheus: Some(prometheus),
        exit_code: if failed.is_empty() { 0 } else { 1 },
        checks: run.records,
        failed,
        replay_gate: replay_gate_lines(&rollout),
    })
}

/// Prints a report as a table or JSON.
pub fn write_report(
    report: &Report,
    format: OutputFormat,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    if format == OutputFormat::Json {
        let text = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
        return writeln!(out, "{text}");
    }
    if !report.valid {
        writeln!(out, "{}: invalid FeedRollout", report.file)?;
        for p in &report.problems {
            match p.line {
                Some(line) => writeln!(
                    out,
                    "{}:{line}: {}{}",
                    report.file,
                    path_prefix(p),
                    p.message
                )?,
                None => writeln!(out, "{}: {}{}", report.file, path_prefix(p), p.message)?,
            }
        }
        return Ok(());
    }
    writeln!(
        out,
        "{}: valid; FeedRollout {} against {}",
        report.file,
        report.rollout.as_deref().unwrap_or(""),
        report.prometheus.as_deref().unwrap_or("")
    )?;
    let rows: Vec<[String; 5]> = report
        .checks
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.tier.as_str().to_owned(),
                r.verdict.as_str().to_owned(),
                r.value
                    .map_or_else(|| "-".to_owned(), |v| format!("{v:.6}")),
                r.threshold.clone(),
            ]
        })
        .collect();
    let header = ["CHECK", "TIER", "VERDICT", "VALUE", "THRESHOLD"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 5]| -> String {
        cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    writeln!(out, "{}", line(header))?;
    for (row, record) in rows.iter().zip(&report.checks) {
        writeln!(
            out,
            "{}",
            line([&row[0], &row[1], &row[2], &row[3], &row[4]])
        )?;
        writeln!(out, "    reason: {}", record.reason)?;
        if let Some(e) = &record.evidence {
            for l in evidence_lines(e, record.verdict) {
                writeln!(out, "    {l}")?;
            }
        }
        writeln!(out, "    query:  {}", record.query)?;
        if let Some(q) = &record.stable_query {
            writeln!(out, "    stable: {q}")?;
        }
    }
    if let Some((first, rest)) = report.replay_gate.split_first() {
        writeln!(out, "replay gate: {first}")?;
        for l in rest {
            writeln!(out, "    {l}")?;
        }
    }
    if report.failed.is_empty() {
        writeln!(
            out,
            "result: no blocking, rollback or pause-tier check fails"
        )?;
    } else {
        writeln!(out, "result: failing: {}", report.failed.join(", "))?;
    }
    Ok(())
}

/// The evidence of a sequential check: its counts, the interval of canary − stable, and the
/// trials (and time, at the traffic in the window) a decision still needs.
fn evidence_lines(e: &SequentialEvidence, verdict: Verdict) -> Vec<String> {
    let mut lines = vec![format!(
        "counts: canary {}/{}, stable {}/{} (events/trials in the window)",
        e.canary.events, e.canary.trials, e.stable.events, e.stable.trials
    )];
    if let (Some(est), Some(lo), Some(hi)) = (e.estimate, e.lower, e.upper) {
        lines.push(format!(
            "interval: canary − stable = {est:.5} in [{lo:.5}, {hi:.5}]"
        ));
    }
    if verdict == Verdict::NoData {
        lines.push(match (e.trials_needed, e.seconds_left) {
            (Some(n), Some(s)) => {
                format!("needed: ~{n} more trials, ~{s}s at the traffic in the window")
            }
            (Some(n), None) => format!("needed: ~{n} more trials (no traffic yet)"),
            (None, _) => "needed: more trials than can be estimated".to_owned(),
        });
    }
    lines
}

fn path_prefix(p: &Problem) -> String {
    if p.path.is_empty() {
        String::new()
    } else {
        format!("{}: ", p.path)
    }
}

#[cfg(test)]
mod tests {
    use feedroll_crds::SideCounts;

    use super::*;

    fn report(record: CheckRecord) -> String {
        let report = Report {
            file: "f.yaml".into(),
            valid: true,
            problems: Vec::new(),
            rollout: Some("feed".into()),
            prometheus: Some("http://p".into()),
            checks: vec![record],
            failed: Vec::new(),
            replay_gate: Vec::new(),
            exit_code: 0,
        };
        let mut out = Vec::new();
        write_report(&report, OutputFormat::Table, &mut out).expect("writes");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn sequential_checks_print_their_interval_and_the_trials_still_needed() {
        let evidence = SequentialEvidence {
            canary: SideCounts {
                events: 12,
                trials: 1_000,
            },
            stable: SideCounts {
                events: 95,
                trials: 9_000,
            },
            judged: true,
            estimate: Some(0.00144),
            lower: Some(-0.0098),
            upper: Some(0.0131),
            trials_needed: Some(20_000),
            seconds_left: Some(1_200),
        };
        let undecided = CheckRecord {
            name: "errors".into(),
            verdict: Verdict::NoData,
            evidence: Some(evidence.clone()),
            ..CheckRecord::default()
        };
        let text = report(undecided.clone());
        assert!(
            text.contains("counts: canary 12/1000, stable 95/9000")
                && text.contains("interval: canary − stable = 0.00144 in [-0.00980, 0.01310]")
                && text.contains("needed: ~20000 more trials, ~1200s at the traffic in the window"),
            "{text}"
        );
        let decided = CheckRecord {
            verdict: Verdict::Pass,
            ..undecided
        };
        let text = report(decided);
        assert!(
            text.contains("interval:") && !text.contains("needed:"),
            "{text}"
        );
        let plain = report(CheckRecord {
            name: "p95".into(),
            verdict: Verdict::Pass,
            ..CheckRecord::default()
        });
        assert!(!plain.contains("interval:"), "{plain}");
    }

    #[test]
    fn the_replay_gate_settings_and_its_last_result_are_shown() {
        let rollout: feedroll_crds::FeedRollout = serde_yaml::from_str(
            r#"
apiVersion: feedroll.dev/v1alpha1
kind: FeedRollout
metadata: {name: feed}
spec:
  template: {spec: {containers: [{name: f, image: f}]}}
  rankingProfile: {name: c}
  strategy:
    traffic: {inApp: {}}
    replayGate: {window: 2h, maxDrop: {gaucFinish: 0.01}}
status:
  replayGate: {revision: r2, verdict: Regression, reason: canary worse, exposures: 900}
"#,
        )
        .expect("parses");
        let lines = replay_gate_lines(&rollout);
        assert!(
            lines[0].contains("last 7200s") && lines[0].contains("beyond 0.01"),
            "{lines:?}"
        );
        assert_eq!(
            lines[1],
            "Regression for revision r2, 900 exposures: canary worse"
        );
        let mut plain = rollout.clone();
        plain.spec.strategy = None;
        assert!(replay_gate_lines(&plain).is_empty());
    }
}
