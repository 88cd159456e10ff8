//! The key-isolation phase's arithmetic (issue 14: "a flood from one key does not slow another
//! key's requests"): the victim key's latency alone and beside a flood from another key over its
//! limit, the flood's refusals (429) and what they cost the server. No I/O here; the loadgen
//! drives the phases and hands the outcomes in.

use serde::Serialize;

use crate::driver::Outcome;
use crate::stats::Summary;

/// HTTP status of a request refused by a rate limit (`rate_limited`).
pub const TOO_MANY_REQUESTS: u16 = 429;

/// The victim's p99 beside the flood may be at most this multiple of its p99 alone (noise).
pub const MAX_P99_RATIO: f64 = 1.5;

/// Refusals must be cheap: their p99, milliseconds, stays under this.
pub const MAX_REFUSED_P99_MS: f64 = 50.0;

/// CPU a process used over a wall-clock window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct CpuWindow {
    /// CPU seconds (user + system) used in the window.
    pub cpu_secs: f64,
    /// Length of the window, seconds.
    pub wall_secs: f64,
}

impl CpuWindow {
    /// CPU seconds per wall second (0 for an empty window).
    fn rate(self) -> f64 {
        if self.wall_secs > 0.0 {
            self.cpu_secs / self.wall_secs
        } else {
            0.0
        }
    }
}

/// What the key-isolation phase measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Isolation {
    /// The victim's requests with nobody else sending (the baseline of the same run).
    pub victim_alone: Summary,
    /// The victim's requests while the flooder floods.
    pub victim_flooded: Summary,
    /// `victim_flooded.p99_ms / victim_alone.p99_ms` (1 = unchanged).
    pub p99_ratio: f64,
    /// The flooder's offered rate, req/s.
    pub flood_rate: f64,
    /// The flooder's limit (requests/s in the keys file).
    pub flood_limit: f64,
    /// The flooder's requests refused with 429, latency from their due time.
    pub refused: Summary,
    /// Share of the flooder's measured requests refused with 429.
    pub refused_share: f64,
    /// The flooder's measured requests answered 2xx (within its limit).
    pub flood_admitted: u64,
    /// The flooder's measured requests neither 2xx nor 429 (no answer, other statuses).
    pub flood_other: u64,
    /// Extra server CPU per flood request (µs): the server's CPU rate beside the flood minus its
    /// rate with the victim alone, over the flood's request rate. `None` without a flood.
    pub server_cpu_us_per_flood_req: Option<f64>,
}

impl Isolation {
    /// Whether the victim's p99 stayed within noise ([`MAX_P99_RATIO`]) and it lost no request.
    pub fn victim_unaffected(&self) -> bool {
        self.p99_ratio > 0.0 && self.p99_ratio <= MAX_P99_RATIO && self.victim_flooded.errors == 0
    }

    /// Whether the flood was refused at all, and cheaply ([`MAX_REFUSED_P99_MS`]).
    pub fn refusals_cheap(&self) -> bool {
        self.refused.errors > 0 && self.refused.p99_ms < MAX_REFUSED_P99_MS
    }
}

/// The flood's setting: offered rate and the flooder key's limit.
#[derive(Clone, Copy, Debug)]
pub struct Flood {
    /// Offered rate, req/s.
    pub rate: f64,
    /// The flooder key's requests per second.
    pub limit: f64,
}

/// Server CPU per flood request, µs: `(flooded rate − alone rate) / flood req/s`, at least 0.
pub fn cpu_per_flood_request(
    alone: CpuWindow,
    flooded: CpuWindow,
    flood_requests: u64,
) -> Option<f64> {
    if flood_requests == 0 || flooded.wall_secs <= 0.0 {
        return None;
    }
    let extra = (flooded.rate() - alone.rate()).max(0.0);
    Some(extra * 1e6 / (flood_requests as f64 / flooded.wall_secs))
}

/// Combines the victim alone, the victim beside the flood and the flood itself.
pub fn isolation(
    alone: &Outcome,
    flooded: &Outcome,
    flood_out: &Outcome,
    flood: Flood,
    cpu: (CpuWindow, CpuWindow),
) -> Isolation {
    let refused = flood_out
        .by_status
        .get(&TOO_MANY_REQUESTS)
        .cloned()
        .unwrap_or_default();
    let measured = flood_out.summary.ok + flood_out.summary.errors;
    let admitted = flood_out.summary.ok;
    Isolation {
        victim_alone: alone.summary.clone(),
        victim_flooded: flooded.summary.clone(),
        p99_ratio: if alone.summary.p99_ms > 0.0 {
            flooded.summary.p99_ms / alone.summary.p99_ms
        } else {
            0.0
        },
        flood_rate: flood.rate,
        flood_limit: flood.limit,
        refused_share: refused.errors as f64 / measured.max(1) as f64,
        flood_admitted: admitted,
        flood_other: measured.saturating_sub(admitted + refused.errors),
        refused,
        server_cpu_us_per_flood_req: cpu_per_flood_request(cpu.0, cpu.1, flood_out.sent),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::stats::summarize;

    fn outcome(samples: &[(u64, u16)], sent: u64) -> Outcome {
        let micros: Vec<u64> = samples.iter().map(|s| s.0).collect();
        let ok = samples.iter().filter(|s| s.1 == 200).count() as u64;
        let errors = samples.len() as u64 - ok;
        let mut by_status: BTreeMap<u16, Vec<u64>> = BTreeMap::new();
        for (us, st) in samples {
            by_status.entry(*st).or_default().push(*us);
        }
        Outcome {
            summary: summarize(micros, ok, errors, 1.0),
            body_bytes: 0,
            sent,
            by_status: by_status
                .into_iter()
                .map(|(st, v)| {
                    let n = v.len() as u64;
                    let (ok, err) = if st == 200 { (n, 0) } else { (0, n) };
                    (st, summarize(v, ok, err, 1.0))
                })
                .collect(),
        }
    }

    const FLOOD: Flood = Flood {
        rate: 1000.0,
        limit: 50.0,
    };

    #[test]
    fn splits_the_flood_and_compares_the_victim() {
        let alone = outcome(&[(1000, 200), (2000, 200)], 2);
        let flooded = outcome(&[(1000, 200), (3000, 200)], 2);
        let flood = outcome(
            &[(500, 429), (700, 429), (900, 429), (400, 200), (9000, 0)],
            4,
        );
        let cpu = (CpuWindow::default(), CpuWindow::default());
        let i = isolation(&alone, &flooded, &flood, FLOOD, cpu);
        assert_eq!(i.p99_ratio, 1.5);
        assert!(i.victim_unaffected(), "1.5× is still within noise");
        assert_eq!(i.refused.errors, 3);
        assert_eq!(i.refused.p99_ms, 0.9);
        assert_eq!(i.refused_share, 0.6);
        assert_eq!((i.flood_admitted, i.flood_other), (1, 1));
        assert!(i.refusals_cheap());
    }

    #[test]
    fn a_slowed_or_failing_victim_and_no_refusal_fail_the_goals() {
        let alone = outcome(&[(1000, 200)], 1);
        let slowed = outcome(&[(1600, 200)], 1);
        let failing = outcome(&[(1000, 200), (1000, 503)], 2);
        let never_refused = outcome(&[(400, 200)], 1);
        let cpu = (CpuWindow::default(), CpuWindow::default());
        let i = isolation(&alone, &slowed, &never_refused, FLOOD, cpu);
        assert!(!i.victim_unaffected(), "1.6× the p99 alone");
        assert!(!i.refusals_cheap(), "a flood nobody refused");
        let i = isolation(&alone, &failing, &never_refused, FLOOD, cpu);
        assert!(!i.victim_unaffected(), "a victim request failed");
        let slow_refusals = outcome(&[(60_000, 429)], 1);
        assert!(!isolation(&alone, &alone, &slow_refusals, FLOOD, cpu).refusals_cheap());
        let empty = Outcome::default();
        assert!(!isolation(&empty, &empty, &empty, FLOOD, cpu).victim_unaffected());
    }

    #[test]
    fn flood_cpu_is_the_extra_rate_over_the_flood_rate() {
        let alone = CpuWindow {
            cpu_secs: 0.5,
            wall_secs: 10.0,
        };
        // 0.25 CPU-s/s more while 1,000 flood requests/s arrive: 200 µs each.
        let flooded = CpuWindow {
            cpu_secs: 3.0,
            wall_secs: 12.0,
        };
        let per = cpu_per_flood_request(alone, flooded, 12_000).expect("a flood");
        assert!((per - 200.0).abs() < 1e-9, "{per}");
        assert_eq!(cpu_per_flood_request(flooded, alone, 10_000), Some(0.0));
        assert_eq!(cpu_per_flood_request(alone, flooded, 0), None);
    }
}
