//! Zipf-distributed ranks by inverse CDF (exact, any exponent).

use rand::Rng;

/// Zipf distribution over ranks `0..n`: P(rank k) ∝ 1 / (k + 1)^s.
#[derive(Clone, Debug)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// The distribution over `n ≥ 1` ranks with exponent `s`.
    pub fn new(n: usize, s: f64) -> Self {
        let n = n.max(1);
        let mut cdf = Vec::with_capacity(n);
        let mut acc = 0.0;
        for k in 1..=n {
            acc += 1.0 / (k as f64).powf(s);
            cdf.push(acc);
        }
        for c in &mut cdf {
            *c /= acc;
        }
        Self { cdf }
    }

    /// Draws a rank in `0..n`.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        let u: f64 = rng.random();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }

    /// Probability of rank `k`.
    pub fn probability(&self, k: usize) -> f64 {
        match k {
            0 => self.cdf[0],
            k if k < self.cdf.len() => self.cdf[k] - self.cdf[k - 1],
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn rank_zero_is_most_likely_and_samples_stay_in_range() {
        let z = Zipf::new(1000, 1.0);
        assert!(z.probability(0) > z.probability(1));
        let mut rng = StdRng::seed_from_u64(1);
        let mut zeros = 0;
        for _ in 0..10_000 {
            let k = z.sample(&mut rng);
            assert!(k < 1000);
            zeros += usize::from(k == 0);
        }
        // P(0) = 1 / H(1000) ≈ 0.134.
        assert!((1_000..1_700).contains(&zeros), "{zeros}");
    }
}
