//! Choosing a backend: round-robin over a Service's endpoints (per connection, as kube-proxy
//! in IPVS `rr` mode) and smooth weighted round-robin over an HTTPRoute's backends (per
//! request). Pure and deterministic.

/// Smooth weighted round-robin (nginx's): over any `sum(weights)` consecutive picks, backend
/// `i` is picked exactly `weights[i]` times, and picks are spread out (weights 90/10 give one
/// canary request in every ten, not ten in a row). Weight-0 backends are never picked.
#[derive(Debug, Clone, Default)]
pub struct SmoothWeighted {
    weights: Vec<u32>,
    current: Vec<i64>,
}

impl SmoothWeighted {
    /// A picker over `weights` (index = backend).
    pub fn new(weights: Vec<u32>) -> Self {
        let current = vec![0; weights.len()];
        Self { weights, current }
    }

    /// The weights it picks by.
    pub fn weights(&self) -> &[u32] {
        &self.weights
    }

    /// The next backend's index; `None` when every weight is 0 (Gateway API: answer 500).
    pub fn pick(&mut self) -> Option<usize> {
        let total: i64 = self.weights.iter().map(|w| i64::from(*w)).sum();
        if total == 0 {
            return None;
        }
        let mut best: Option<usize> = None;
        for (i, w) in self.weights.iter().enumerate() {
            self.current[i] += i64::from(*w);
            if *w > 0 && best.is_none_or(|b| self.current[i] > self.current[b]) {
                best = Some(i);
            }
        }
        if let Some(b) = best {
            self.current[b] -= total;
        }
        best
    }
}

/// Round-robin over a list that may change between picks.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: std::sync::atomic::AtomicUsize,
}

impl RoundRobin {
    /// The next of `len` items (`None` when there are none).
    pub fn pick(&self, len: usize) -> Option<usize> {
        if len == 0 {
            return None;
        }
        Some(self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % len)
    }
}
