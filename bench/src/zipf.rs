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

/// Ranks set aside for a later phase, which an earlier phase's Zipf traffic must not request
/// (the session phase's users: what the predictive warm-up knows of them must come from the
/// session trace alone).
#[derive(Clone, Debug)]
pub struct SetAside {
    aside: Vec<bool>,
    /// Whether some rank is not set aside (otherwise [`SetAside::sample`] could not end).
    any_left: bool,
}

impl SetAside {
    /// `ranks` set aside among ranks `0..n` (ranks out of range are ignored).
    pub fn new(n: usize, ranks: &[usize]) -> Self {
        let mut aside = vec![false; n];
        for &r in ranks {
            if let Some(a) = aside.get_mut(r) {
                *a = true;
            }
        }
        let any_left = aside.iter().any(|a| !a);
        Self { aside, any_left }
    }

    /// Whether `rank` is set aside.
    pub fn contains(&self, rank: usize) -> bool {
        self.aside.get(rank).copied().unwrap_or(false)
    }

    /// A rank drawn from `z`, drawn again while it is set aside: `z` conditioned on the rank
    /// not being set aside (when every rank is, the first draw).
    pub fn sample<R: Rng + ?Sized>(&self, z: &Zipf, rng: &mut R) -> usize {
        loop {
            let rank = z.sample(rng);
            if !self.any_left || !self.contains(rank) {
                return rank;
            }
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

    #[test]
    fn ranks_set_aside_are_never_drawn_and_the_rest_keep_their_odds() {
        let z = Zipf::new(100, 1.0);
        let aside = SetAside::new(100, &[1, 50, 99, 1_000]);
        assert!(aside.contains(1) && aside.contains(99) && !aside.contains(0));
        assert!(!aside.contains(1_000), "out of range");
        let mut rng = StdRng::seed_from_u64(2);
        let mut counts = [0u32; 100];
        for _ in 0..200_000 {
            counts[aside.sample(&z, &mut rng)] += 1;
        }
        assert_eq!(counts[1] + counts[50] + counts[99], 0);
        // P(0) / P(2) = 3 in z, and still among the ranks left.
        let ratio = f64::from(counts[0]) / f64::from(counts[2]);
        assert!((2.8..3.2).contains(&ratio), "{ratio}");
        // Everything set aside: the draw is returned rather than looping forever.
        let all = SetAside::new(3, &[0, 1, 2]);
        assert!(all.sample(&Zipf::new(3, 1.0), &mut rng) < 3);
    }
}
