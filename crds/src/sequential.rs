//! Sequential comparisons (`compare.mode: sequential`) and evidence-driven pause steps
//! (`pause.untilConfident`): their resolved form and the spec checks that mirror the CEL rules.
//!
//! The statistics themselves live in the operator (`analysis::sequential`); this module only
//! says what a valid sequential check is.

use crate::ApiError;
use crate::analysis::{Check, CompareMode, Direction, Tier};
use crate::defaults::CheckSource;

/// Default `compare.alpha` of sequential checks.
pub const DEFAULT_ALPHA: f64 = 0.05;

/// The always-valid test a sequential check runs on the counts of the step so far.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SequentialTest {
    /// Chance over the whole step of a false `fail` (canary no worse) or a false `pass`
    /// (canary worse by `min_effect`).
    pub alpha: f64,
    /// The smallest worsening that matters, a difference of shares (0.01 = one point).
    pub min_effect: f64,
    /// Which way is worse.
    pub direction: Direction,
}

/// The sequential test of check `c` (at field path `at`, measuring `source`), `None` when it
/// does not compare sequentially; the CEL rules of `Check` and `Comparison`, again in code.
pub(crate) fn resolve(
    at: &str,
    c: &Check,
    source: &CheckSource,
    tier: Tier,
) -> Result<Option<SequentialTest>, ApiError> {
    let Some(cmp) = &c.compare else {
        return Ok(None);
    };
    let field = format!("{at}.compare");
    if cmp.mode != CompareMode::Sequential {
        if cmp.alpha.is_some() || cmp.min_effect.is_some() || cmp.direction.is_some() {
            return Err(ApiError::invalid(
                field,
                "alpha, minEffect and direction apply only to mode sequential",
            ));
        }
        return Ok(None);
    }
    if c.min.is_some() || c.max.is_some() {
        return Err(ApiError::invalid(
            at,
            "a sequential check is judged by compare.minEffect: remove min and max",
        ));
    }
    if tier == Tier::Rollback {
        return Err(ApiError::invalid(
            format!("{at}.tier"),
            "a sequential check cannot be on the rollback tier: it judges the counts of the whole step, not a short window",
        ));
    }
    let alpha = cmp.alpha.unwrap_or(DEFAULT_ALPHA);
    if !(alpha > 0.0 && alpha <= 0.5) {
        return Err(ApiError::invalid(
            format!("{field}.alpha"),
            "alpha must be in (0, 0.5], e.g. 0.05",
        ));
    }
    let Some(min_effect) = cmp.min_effect else {
        return Err(ApiError::invalid(
            field,
            "mode sequential needs minEffect: the smallest worsening (canary - stable, in the metric's units) that matters",
        ));
    };
    if !(min_effect > 0.0 && min_effect < 1.0) {
        return Err(ApiError::invalid(
            format!("{field}.minEffect"),
            "minEffect must be in (0, 1): a difference of two shares, e.g. 0.01 for one point",
        ));
    }
    let natural = match source {
        CheckSource::Preset { preset, .. } => match preset.sequential_direction() {
            Some(d) => Some(d),
            None => {
                return Err(ApiError::invalid(
                    format!("{at}.preset"),
                    format!(
                        "compare.mode sequential needs counts of events per trial: preset {} is not one (use errorRate, availability, completionRate, engagementRate, longTailShare, or counts; compare {} with mode ratio or difference and a threshold)",
                        preset.as_str(),
                        preset.as_str()
                    ),
                ));
            }
        },
        CheckSource::Counts { .. } => None,
        CheckSource::Query(_) => {
            return Err(ApiError::invalid(
                format!("{at}.query"),
                "compare.mode sequential needs counts of events per trial: give counts (numerator and denominator) instead of query",
            ));
        }
    };
    let Some(direction) = cmp.direction.or(natural) else {
        return Err(ApiError::invalid(
            format!("{field}.direction"),
            "a check with counts needs compare: {mode: sequential, minEffect, direction}",
        ));
    };
    Ok(Some(SequentialTest {
        alpha,
        min_effect,
        direction,
    }))
}
