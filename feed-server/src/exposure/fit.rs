//! A small, deterministic logistic regression with non-negative coefficients: what the tuner
//! fits the signal weights with.
//!
//! Model: `P(y) = σ(b + Σⱼ βⱼ·zⱼ)` on standardised features `zⱼ = (xⱼ − meanⱼ) / sdⱼ` (without
//! the intercept `b` and the centring when [`FitSettings::intercept`] is off), fitted by
//! minimising the mean cross-entropy (labels may be fractional, e.g. a watch ratio) plus
//! `l2/2 · ‖β‖²`, subject to `βⱼ ≥ 0`: a ranking weight must never reward a signal for being
//! low. Accelerated projected gradient descent (FISTA) with the step `1/L`, where
//! `L = (1 + active features)/4 + l2` bounds the loss's curvature on standardised features; a
//! fixed number of iterations at most, no randomness: the same data gives the same weights.
//! A feature that does not vary gets weight 0 (the data says nothing about it). The weights are
//! returned on the original scale, `wⱼ = βⱼ / sdⱼ`: ranking by `Σ wⱼ·xⱼ` is ranking by the model's
//! probability.

/// Fitting knobs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FitSettings {
    /// L2 penalty on the standardised coefficients.
    pub l2: f64,
    /// Most gradient steps.
    pub max_iterations: usize,
    /// Stop when no coefficient moves more than this in a step.
    pub tolerance: f64,
    /// Fit an intercept (off for pairwise rows, whose model is symmetric: `P(a beats b) =
    /// 1 − P(b beats a)`).
    pub intercept: bool,
}

impl Default for FitSettings {
    fn default() -> Self {
        Self {
            l2: 1e-3,
            max_iterations: 150,
            tolerance: 1e-6,
            intercept: true,
        }
    }
}

/// A fitted model.
#[derive(Clone, Debug, PartialEq)]
pub struct Fit<const D: usize> {
    /// Non-negative weight of each feature, on the features' own scale.
    pub weights: [f64; D],
    /// Intercept on the standardised scale (ranking ignores it).
    pub intercept: f64,
    /// Gradient steps taken.
    pub iterations: usize,
}

/// A feature whose standard deviation is below this counts as constant (weight 0): the signals
/// are in [0, 1], and a spread this small would only buy a huge, meaningless weight.
pub const MIN_SD: f64 = 1e-6;

fn sigmoid(t: f64) -> f64 {
    1.0 / (1.0 + (-t).exp())
}

/// Fits `labels` (each in [0, 1]) on `rows`; an empty input gives all-zero weights.
pub fn fit_non_negative_logistic<const D: usize>(
    rows: &[[f64; D]],
    labels: &[f64],
    settings: FitSettings,
) -> Fit<D> {
    let n = rows.len().min(labels.len());
    let mut fit = Fit {
        weights: [0.0; D],
        intercept: 0.0,
        iterations: 0,
    };
    if n == 0 {
        return fit;
    }
    let nf = n as f64;
    let mut mean = [0.0; D];
    if settings.intercept {
        for r in &rows[..n] {
            for j in 0..D {
                mean[j] += r[j] / nf;
            }
        }
    }
    let mut sd = [0.0; D];
    for r in &rows[..n] {
        for j in 0..D {
            sd[j] += (r[j] - mean[j]).powi(2) / nf;
        }
    }
    let active: [bool; D] = std::array::from_fn(|j| sd[j].sqrt() > MIN_SD);
    for (s, a) in sd.iter_mut().zip(active) {
        *s = if a { s.sqrt() } else { 1.0 };
    }
    let z: Vec<[f64; D]> = rows[..n]
        .iter()
        .map(|r| {
            std::array::from_fn(|j| {
                if active[j] {
                    (r[j] - mean[j]) / sd[j]
                } else {
                    0.0
                }
            })
        })
        .collect();
    let y: Vec<f64> = labels[..n].iter().map(|v| v.clamp(0.0, 1.0)).collect();

    let lipschitz = (1.0 + active.iter().filter(|a| **a).count() as f64) / 4.0 + settings.l2;
    let step = 1.0 / lipschitz;
    // x = (intercept, β); v = the extrapolated point.
    let mut x = vec![0.0; 1 + D];
    let mut v = x.clone();
    let mut t = 1.0_f64;
    for it in 0..settings.max_iterations {
        let mut grad = vec![0.0; 1 + D];
        for (zi, yi) in z.iter().zip(&y) {
            let eta = v[0] + (0..D).map(|j| v[1 + j] * zi[j]).sum::<f64>();
            let r = (sigmoid(eta) - yi) / nf;
            grad[0] += r;
            for j in 0..D {
                grad[1 + j] += r * zi[j];
            }
        }
        let mut next = vec![0.0; 1 + D];
        next[0] = if settings.intercept {
            v[0] - step * grad[0]
        } else {
            0.0
        };
        for j in 0..D {
            let g = grad[1 + j] + settings.l2 * v[1 + j];
            next[1 + j] = if active[j] {
                (v[1 + j] - step * g).max(0.0)
            } else {
                0.0
            };
        }
        let t_next = (1.0 + (1.0 + 4.0 * t * t).sqrt()) / 2.0;
        let momentum = (t - 1.0) / t_next;
        let moved = next
            .iter()
            .zip(&x)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        v = next
            .iter()
            .zip(&x)
            .map(|(a, b)| a + momentum * (a - b))
            .collect();
        for j in 0..D {
            v[1 + j] = v[1 + j].max(0.0);
        }
        x = next;
        t = t_next;
        fit.iterations = it + 1;
        if moved < settings.tolerance {
            break;
        }
    }
    fit.intercept = x[0];
    fit.weights = std::array::from_fn(|j| x[1 + j] / sd[j]);
    fit
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// Rows of three features in [0, 1]; labels drawn from `σ(−1 + 3·x0 − 2·x1)`; x2 is noise.
    fn data(n: usize, seed: u64) -> (Vec<[f64; 3]>, Vec<f64>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let rows: Vec<[f64; 3]> = (0..n)
            .map(|_| [rng.random(), rng.random(), rng.random()])
            .collect();
        let labels = rows
            .iter()
            .map(|r| {
                let p = sigmoid(-1.0 + 3.0 * r[0] - 2.0 * r[1]);
                if rng.random::<f64>() < p { 1.0 } else { 0.0 }
            })
            .collect();
        (rows, labels)
    }

    #[test]
    fn recovers_a_positive_effect_and_clamps_a_negative_one_at_zero() {
        let (rows, labels) = data(5_000, 1);
        let fit = fit_non_negative_logistic(&rows, &labels, FitSettings::default());
        assert!(fit.weights[0] > 2.0 && fit.weights[0] < 4.0, "{fit:?}");
        assert_eq!(
            fit.weights[1], 0.0,
            "a harmful signal gets no weight: {fit:?}"
        );
        assert!(fit.weights[2] < 0.3, "noise gets little: {fit:?}");
        assert!(fit.weights.iter().all(|w| *w >= 0.0));
    }

    #[test]
    fn without_the_constraint_binding_it_finds_the_true_coefficients() {
        let mut rng = StdRng::seed_from_u64(2);
        let rows: Vec<[f64; 2]> = (0..20_000).map(|_| [rng.random(), rng.random()]).collect();
        // Soft labels: the probability itself.
        let labels: Vec<f64> = rows
            .iter()
            .map(|r| sigmoid(-2.0 + 2.0 * r[0] + 1.0 * r[1]))
            .collect();
        let settings = FitSettings {
            l2: 0.0,
            max_iterations: 5_000,
            tolerance: 1e-10,
            intercept: true,
        };
        let fit = fit_non_negative_logistic(&rows, &labels, settings);
        assert!((fit.weights[0] - 2.0).abs() < 0.05, "{fit:?}");
        assert!((fit.weights[1] - 1.0).abs() < 0.05, "{fit:?}");
    }

    #[test]
    fn is_deterministic_and_ignores_constant_features() {
        let (mut rows, labels) = data(2_000, 3);
        for r in &mut rows {
            r[2] = 0.5;
        }
        let a = fit_non_negative_logistic(&rows, &labels, FitSettings::default());
        let b = fit_non_negative_logistic(&rows, &labels, FitSettings::default());
        assert_eq!(a, b);
        assert_eq!(a.weights[2], 0.0);
        let empty = fit_non_negative_logistic::<3>(&[], &[], FitSettings::default());
        assert_eq!(empty.weights, [0.0; 3]);
    }
}
