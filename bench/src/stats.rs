//! Latency summaries from raw samples (microseconds; every sample kept, sorted once).

use serde::{Deserialize, Serialize};

/// Throughput and latency of one phase.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Requests answered 2xx in the measured window.
    pub ok: u64,
    /// Requests answered otherwise, or failed, in the measured window.
    pub errors: u64,
    /// Measured window, seconds.
    pub seconds: f64,
    /// `ok / seconds`.
    pub rps: f64,
    /// Latency percentiles and mean over every measured request, milliseconds.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

/// The `q`-quantile (0..=1) of sorted samples (nearest rank).
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Summarises latency samples (µs) of `ok` successful and `errors` failed requests over `seconds`.
pub fn summarize(mut micros: Vec<u64>, ok: u64, errors: u64, seconds: f64) -> Summary {
    micros.sort_unstable();
    let ms = |us: u64| us as f64 / 1000.0;
    let mean = if micros.is_empty() {
        0.0
    } else {
        micros.iter().sum::<u64>() as f64 / micros.len() as f64 / 1000.0
    };
    Summary {
        ok,
        errors,
        seconds,
        rps: if seconds > 0.0 {
            ok as f64 / seconds
        } else {
            0.0
        },
        p50_ms: ms(quantile(&micros, 0.50)),
        p95_ms: ms(quantile(&micros, 0.95)),
        p99_ms: ms(quantile(&micros, 0.99)),
        max_ms: ms(micros.last().copied().unwrap_or(0)),
        mean_ms: mean,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), 50);
        assert_eq!(quantile(&v, 0.99), 99);
        assert_eq!(quantile(&v, 1.0), 100);
        assert_eq!(quantile(&[], 0.5), 0);
    }

    #[test]
    fn summary_counts_rate() {
        let s = summarize(vec![3000, 1000, 2000], 3, 1, 2.0);
        assert_eq!(s.rps, 1.5);
        assert_eq!(s.p50_ms, 2.0);
        assert_eq!(s.max_ms, 3.0);
        assert_eq!(s.errors, 1);
    }
}
