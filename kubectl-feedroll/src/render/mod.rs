//! Rendering for people: pure functions from the CRD types (and the time now) to text. Tables
//! are aligned like kubectl's (columns three spaces apart); colours only when the caller's
//! [`Palette`] says so (a terminal without `NO_COLOR`).

mod list;
mod status;
mod timeline;

pub use list::list;
pub use status::status;
pub use timeline::timeline;

use std::io::Write as _;

use anstyle::{AnsiColor, Style};
use feedroll_crds::history::Decision;
use feedroll_crds::{Phase, Verdict};
use k8s_openapi::jiff::{Timestamp, tz::TimeZone};

/// Whether to colour, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Palette {
    /// Emit ANSI colours.
    pub color: bool,
}

/// What a coloured word means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tone {
    Good,
    Busy,
    Warn,
    Bad,
}

impl Palette {
    /// No colours (pipes, files, `NO_COLOR`).
    pub const PLAIN: Palette = Palette { color: false };

    fn paint(self, text: &str, tone: Tone) -> String {
        if !self.color {
            return text.to_owned();
        }
        let colour = match tone {
            Tone::Good => AnsiColor::Green,
            Tone::Busy => AnsiColor::Cyan,
            Tone::Warn => AnsiColor::Yellow,
            Tone::Bad => AnsiColor::Red,
        };
        let style = Style::new().fg_color(Some(colour.into()));
        format!("{style}{text}{style:#}")
    }

    fn phase(self, phase: Option<Phase>) -> String {
        let Some(phase) = phase else {
            return "-".to_owned();
        };
        let tone = match phase {
            Phase::Succeeded => Tone::Good,
            Phase::Progressing | Phase::Promoting => Tone::Busy,
            Phase::Paused => Tone::Warn,
            Phase::RolledBack | Phase::Aborted | Phase::Failed => Tone::Bad,
        };
        self.paint(phase.as_str(), tone)
    }

    fn verdict(self, verdict: Verdict) -> String {
        let tone = match verdict {
            Verdict::Pass => Tone::Good,
            Verdict::Fail => Tone::Bad,
            Verdict::NoData | Verdict::Error => Tone::Warn,
        };
        self.paint(verdict.as_str(), tone)
    }

    fn decision(self, decision: Decision) -> String {
        let tone = match decision {
            Decision::Promoted | Decision::Resumed => Tone::Good,
            Decision::Started
            | Decision::StepAdvanced
            | Decision::Promoting
            | Decision::Retried
            | Decision::Reverted => Tone::Busy,
            Decision::Paused | Decision::CommandIgnored => Tone::Warn,
            Decision::RolledBack | Decision::Aborted | Decision::Failed => Tone::Bad,
        };
        self.paint(decision.as_str(), tone)
    }
}

/// Rows aligned in columns three spaces apart (ANSI colours do not count towards widths).
fn table(rows: &[Vec<String>], indent: &str) -> String {
    let mut tw = tabwriter::TabWriter::new(Vec::new()).padding(3).ansi(true);
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| c.replace(['\t', '\n'], " ")).collect();
        // Writing to a Vec cannot fail.
        let _ = writeln!(tw, "{indent}{}", cells.join("\t"));
    }
    let bytes = tw.into_inner().unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// kubectl's ages: `45s`, `12m`, `5h`, `3d`.
fn age(since: Timestamp, now: Timestamp) -> String {
    let secs = now.duration_since(since).as_secs().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// A step's duration as written in specs: `15m`, `1h30m`, `45s`, `1h0m5s`.
fn duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, 0) => format!("{h}h{m}m"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

/// A time as `2026-12-01 03:12:05` (UTC).
fn clock(t: Timestamp) -> String {
    t.to_zoned(TimeZone::UTC)
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// A check value: up to 6 decimals, trailing zeros dropped; `-` without data.
fn value(v: Option<f64>) -> String {
    match v {
        None => "-".to_owned(),
        Some(v) if v.is_finite() => {
            let text = format!("{v:.6}");
            let text = text.trim_end_matches('0').trim_end_matches('.');
            text.to_owned()
        }
        Some(v) => v.to_string(),
    }
}

/// `3/7` for step index 2 of 7; `-` without a step.
fn step_of(index: Option<i32>, steps: Option<usize>) -> String {
    match (index, steps) {
        (Some(i), Some(n)) => format!("{}/{n}", (i + 1).min(i32::try_from(n).unwrap_or(i32::MAX))),
        (Some(i), None) => format!("{}", i + 1),
        (None, _) => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_ages_and_steps_read_like_kubectl() {
        assert_eq!(value(Some(0.005)), "0.005");
        assert_eq!(value(Some(12.0)), "12");
        assert_eq!(value(None), "-");
        let t0 = Timestamp::from_second(1_800_000_000).unwrap();
        let later = |s: i64| Timestamp::from_second(1_800_000_000 + s).unwrap();
        assert_eq!(age(t0, later(45)), "45s");
        assert_eq!(age(t0, later(600)), "10m");
        assert_eq!(age(t0, later(5 * 3600)), "5h");
        assert_eq!(age(t0, later(3 * 86_400)), "3d");
        let d = std::time::Duration::from_secs;
        assert_eq!(duration(d(900)), "15m");
        assert_eq!(duration(d(5400)), "1h30m");
        assert_eq!(duration(d(45)), "45s");
        assert_eq!(duration(d(3605)), "1h0m5s");
        // All steps done: the index is one past the last step.
        assert_eq!(step_of(Some(4), Some(4)), "4/4");
        assert_eq!(step_of(Some(0), Some(4)), "1/4");
    }

    #[test]
    fn colours_only_when_asked() {
        assert_eq!(Palette::PLAIN.phase(Some(Phase::RolledBack)), "RolledBack");
        let coloured = Palette { color: true }.phase(Some(Phase::RolledBack));
        assert!(coloured.starts_with("\u{1b}[31m"), "{coloured:?}");
        assert!(coloured.contains("RolledBack"));
    }
}
