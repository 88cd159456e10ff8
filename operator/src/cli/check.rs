//! `feedroll-operator check FILE --prometheus URL [--output json]`: validate a FeedRollout file
//! (schema + CEL, line-precise) and evaluate its checks against Prometheus now.
//!
//! Exit codes: 0 when the file is valid and no blocking, rollback or pause-tier check fails
//! (advisory failures, no data and Prometheus errors are reported but do not fail); 1 when one
//! of those checks fails; 2 when the file is invalid or cannot be read.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use feedroll_crds::{CheckRecord, Tier, Verdict};
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;
use thiserror::Error;

use crate::analysis::{AnalysisEngine, AnalysisError, Target};
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
    /// The process exit code.
    pub exit_code: u8,
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
                exit_code: 2,
            });
        }
    };
    let prometheus = args
        .prometheus
        .clone()
        .unwrap_or_else(|| analysis.prometheus.clone());
    let engine = AnalysisEngine::new(&prometheus, analysis.timeout)?;
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
        writeln!(out, "    query:  {}", record.query)?;
        if let Some(q) = &record.stable_query {
            writeln!(out, "    stable: {q}")?;
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

fn path_prefix(p: &Problem) -> String {
    if p.path.is_empty() {
        String::new()
    } else {
        format!("{}: ", p.path)
    }
}
