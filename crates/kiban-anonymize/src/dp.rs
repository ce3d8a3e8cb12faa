//! SafePub-style (ε, δ)-differential privacy (Bild, Kuhn, Prasser, PoPETs 2018).
//!
//! The mechanism: every record is sampled with probability β; the sample is generalized with
//! full-domain generalization and every class of fewer than k records is suppressed (removed).
//! By Li, Qardaji and Su (2012, "On sampling, anonymization, and differential privacy"), such a
//! "strongly safe" k-anonymization satisfies (ε_anon, δ)-differential privacy for
//! β = 1 − e^(−ε_anon) and δ = d(k, β, ε_anon) (see [`safe_delta`]); k is the smallest with
//! d ≤ δ ([`safe_k`]). The generalization is chosen privately with the exponential mechanism as
//! in SafePub's search: starting at the lattice top (everything generalized to `*`), each of
//! `steps` steps adds the direct specializations of the current node to a candidate set and
//! picks the next node from it; the output is then picked among the nodes visited. Each of the `steps + 1` picks uses
//! ε_search / (steps + 1), so the whole release is (ε_anon + ε_search, δ)-differentially private.
//!
//! Score: minus the summed per-record granularity loss of the sample (ARX's loss metric per
//! attribute, a suppressed record counting 1 per attribute). Adding or removing one record
//! changes it by at most k·q (q quasi-identifiers): the record's own loss (≤ q), plus, when its
//! class crosses the size k, the k − 1 other records between suppressed (q each) and released
//! (0..q each).

use std::collections::BTreeSet;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

use crate::engine::{Evaluation, FinestClasses};
use crate::error::{AnonymizeError, Result};
use crate::hierarchy::Hierarchy;
use crate::privacy::PrivacyModels;

/// The differential-privacy parameters of a SafePub-style release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DifferentialPrivacy {
    /// Total privacy budget ε (> `search_budget`).
    pub epsilon: f64,
    /// δ, in (0, 1).
    pub delta: f64,
    /// Part of ε spent on choosing the generalization (ε_search); default
    /// [`DEFAULT_SEARCH_BUDGET`], as in ARX's SafePub.
    #[serde(default = "default_search_budget")]
    pub search_budget: f64,
    /// Steps of the private search; default [`DEFAULT_SEARCH_STEPS`].
    #[serde(default = "default_search_steps")]
    pub steps: usize,
    /// Seed of the random sampling and selection (for reproducible runs); drawn from the
    /// operating system when absent.
    #[serde(default)]
    pub seed: Option<u64>,
}

/// Default ε_search of [`DifferentialPrivacy::search_budget`].
pub const DEFAULT_SEARCH_BUDGET: f64 = 0.1;

/// Default of [`DifferentialPrivacy::steps`].
pub const DEFAULT_SEARCH_STEPS: usize = 100;

fn default_search_budget() -> f64 {
    DEFAULT_SEARCH_BUDGET
}

fn default_search_steps() -> usize {
    DEFAULT_SEARCH_STEPS
}

impl DifferentialPrivacy {
    /// (ε, δ) with the default search budget and steps, seeded if `seed` is given.
    pub fn new(epsilon: f64, delta: f64, seed: Option<u64>) -> Self {
        DifferentialPrivacy {
            epsilon,
            delta,
            search_budget: DEFAULT_SEARCH_BUDGET,
            steps: DEFAULT_SEARCH_STEPS,
            seed,
        }
    }

    /// ε_anon = ε − ε_search, β = 1 − e^(−ε_anon) and the derived k.
    ///
    /// Errors: ε ≤ ε_search, ε_search ≤ 0, δ outside (0, 1), no steps.
    pub fn parameters(&self) -> Result<(f64, f64, usize)> {
        let invalid = |rule: &str| AnonymizeError::InvalidParameter(format!("(ε, δ)-DP: {rule}"));
        if !(self.search_budget > 0.0 && self.search_budget.is_finite()) {
            return Err(invalid("the search budget must be positive"));
        }
        if !(self.epsilon > self.search_budget && self.epsilon.is_finite()) {
            return Err(invalid("ε must exceed the search budget"));
        }
        if !(self.delta > 0.0 && self.delta < 1.0) {
            return Err(invalid("δ must be within (0, 1)"));
        }
        if self.steps == 0 {
            return Err(invalid("the search needs at least one step"));
        }
        let epsilon_anonymization = self.epsilon - self.search_budget;
        let beta = 1.0 - (-epsilon_anonymization).exp();
        let k = safe_k(self.delta, epsilon_anonymization, beta)?;
        Ok((epsilon_anonymization, beta, k))
    }
}

/// What a differentially private release achieves, as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DifferentialPrivacyAchieved {
    /// Total ε.
    pub epsilon: f64,
    /// δ.
    pub delta: f64,
    /// ε spent on the sampling and k-anonymization.
    pub epsilon_anonymization: f64,
    /// ε spent on choosing the generalization.
    pub epsilon_search: f64,
    /// Sampling probability of each record.
    pub beta: f64,
    /// k derived from (ε_anon, δ, β); every released class has at least k records.
    pub k: usize,
    /// Steps of the private search that were taken (fewer if the lattice ran out).
    pub steps: usize,
    /// Records drawn into the sample (the report's `records`).
    pub sampled_records: usize,
    /// Records of the input.
    pub input_records: usize,
    /// Sensitivity of the score (k times the quasi-identifiers).
    pub score_sensitivity: f64,
    /// Seed used, if one was given.
    pub seed: Option<u64>,
}

/// Σ_{i=j}^{n} C(n, i) β^i (1−β)^(n−i): the upper tail of the binomial distribution.
fn binomial_tail(j: usize, n: usize, beta: f64) -> f64 {
    if j > n {
        return 0.0;
    }
    // ln C(n, j) as a sum, then the pmf by its ratio recurrence.
    let ln_choose: f64 = (1..=j)
        .map(|t| ((n - j + t) as f64).ln() - (t as f64).ln())
        .sum();
    let ratio = beta / (1.0 - beta);
    let mut pmf = (ln_choose + j as f64 * beta.ln() + (n - j) as f64 * (1.0 - beta).ln()).exp();
    let mut sum = 0.0;
    for i in j..=n {
        sum += pmf;
        pmf *= (n - i) as f64 / (i + 1) as f64 * ratio;
    }
    sum.min(1.0)
}

/// δ of a strongly safe k-anonymization with sampling probability `beta` at `epsilon`
/// (Li, Qardaji, Su 2012, Theorem 5; computed as ARX does):
/// d = max_{n ≥ n_m} Σ_{j > γn}^{n} f(j; n, β), γ = (e^ε − 1 + β) / e^ε, n_m = ⌈k/γ − 1⌉, the
/// maximum taken until the Chernoff bound e^(−n·c), c = γ ln(γ/β) − (γ − β), falls below it.
pub fn safe_delta(k: usize, epsilon: f64, beta: f64) -> f64 {
    let power = epsilon.exp();
    let gamma = (power - 1.0 + beta) / power;
    let c = gamma * (gamma / beta).ln() - (gamma - beta);
    let n_m = ((k as f64) / gamma - 1.0).ceil().max(1.0) as usize;
    let mut delta = f64::MIN_POSITIVE;
    let mut n = n_m;
    loop {
        let first = (n as f64 * gamma).floor() as usize + 1;
        delta = delta.max(binomial_tail(first, n, beta));
        let bound = (-(n as f64) * c).exp();
        if delta >= bound {
            return delta;
        }
        n += 1;
    }
}

/// The smallest k whose [`safe_delta`] is at most `delta`.
///
/// Errors: `beta` not in (0, 1), or no k up to 2^24 is enough.
pub fn safe_k(delta: f64, epsilon: f64, beta: f64) -> Result<usize> {
    if !(beta > 0.0 && beta < 1.0) || epsilon < -(1.0 - beta).ln() - 1e-12 {
        return Err(AnonymizeError::InvalidParameter(
            "(ε, δ)-DP: β must be within (0, 1) and ε at least −ln(1 − β)".into(),
        ));
    }
    // d decreases with k: double, then bisect.
    let mut high = 1usize;
    while safe_delta(high, epsilon, beta) > delta {
        high *= 2;
        if high > 1 << 24 {
            return Err(AnonymizeError::InvalidParameter(
                "(ε, δ)-DP: δ is too small for any k".into(),
            ));
        }
    }
    let mut low = high / 2;
    // Invariant: d(high) ≤ δ and (low = 0 or d(low) > δ).
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if safe_delta(middle, epsilon, beta) <= delta {
            high = middle;
        } else {
            low = middle;
        }
    }
    Ok(high)
}

/// A seeded (or OS-seeded) cryptographic random generator.
pub(crate) fn generator(seed: Option<u64>) -> Result<ChaCha20Rng> {
    match seed {
        Some(seed) => Ok(ChaCha20Rng::seed_from_u64(seed)),
        None => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| {
                AnonymizeError::InvalidParameter(format!("no operating-system randomness: {e}"))
            })?;
            Ok(ChaCha20Rng::from_seed(bytes))
        }
    }
}

/// Draws each of `rows` records with probability `beta`.
pub(crate) fn sample(rows: usize, beta: f64, rng: &mut ChaCha20Rng) -> Vec<bool> {
    (0..rows).map(|_| rng.random::<f64>() < beta).collect()
}

/// The outcome of the private search.
pub(crate) struct PrivateChoice {
    pub best: Evaluation,
    pub steps: usize,
    pub nodes_checked: usize,
    pub sensitivity: f64,
}

/// SafePub's private search over the lattice of `hierarchies` on the sampled `classes`.
pub(crate) fn private_search(
    hierarchies: &[Hierarchy],
    classes: &FinestClasses,
    k: usize,
    epsilon_search: f64,
    steps: usize,
    rng: &mut ChaCha20Rng,
) -> PrivateChoice {
    let models = PrivacyModels::k_anonymity(k, 1.0);
    let q = hierarchies.len();
    let sensitivity = (k * q) as f64;
    let epsilon_step = epsilon_search / (steps + 1) as f64;
    // Loss of each generalized value: (leaves under it − 1) / (leaves − 1).
    let loss: Vec<Vec<Vec<f64>>> = hierarchies
        .iter()
        .map(|h| {
            let leaves = h.leaf_count();
            (0..h.height())
                .map(|level| {
                    let mut under = vec![0usize; h.cardinality(level)];
                    for leaf in 0..leaves as u32 {
                        under[h.generalize(leaf, level) as usize] += 1;
                    }
                    under
                        .iter()
                        .map(|&n| {
                            if leaves <= 1 {
                                1.0
                            } else {
                                (n - 1) as f64 / (leaves - 1) as f64
                            }
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    let mut checked = 0usize;
    let mut evaluate = |levels: &[usize]| -> (f64, Evaluation) {
        checked += 1;
        let eval = classes.evaluate(hierarchies, levels, &models);
        let mut total = eval.suppressed_records as f64 * q as f64;
        for (g, (&size, &kept)) in eval.sizes.iter().zip(&eval.kept).enumerate() {
            if kept {
                let leaves = classes.codes(eval.first_class[g] as usize);
                let record: f64 = (0..q)
                    .map(|j| {
                        let level = levels[j];
                        loss[j][level][hierarchies[j].generalize(leaves[j], level) as usize]
                    })
                    .sum();
                total += f64::from(size) * record;
            }
        }
        (-total, eval)
    };
    let pick = |scores: &[f64], rng: &mut ChaCha20Rng| -> usize {
        let top = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let weights: Vec<f64> = scores
            .iter()
            .map(|&s| (epsilon_step * (s - top) / (2.0 * sensitivity)).exp())
            .collect();
        let mut u = rng.random::<f64>() * weights.iter().sum::<f64>();
        for (i, &w) in weights.iter().enumerate() {
            if u < w {
                return i;
            }
            u -= w;
        }
        weights.len() - 1
    };
    let top: Vec<usize> = hierarchies.iter().map(|h| h.height() - 1).collect();
    let (top_score, top_eval) = evaluate(&top);
    let mut visited: Vec<(Vec<usize>, f64, Evaluation)> = vec![(top, top_score, top_eval)];
    let mut seen: BTreeSet<Vec<usize>> = BTreeSet::new();
    seen.insert(visited[0].0.clone());
    let mut candidates: Vec<(Vec<usize>, f64, Evaluation)> = Vec::new();
    let mut taken = 0usize;
    for _ in 0..steps {
        let pivot = visited[visited.len() - 1].0.clone();
        for j in 0..q {
            if pivot[j] > 0 {
                let mut next = pivot.clone();
                next[j] -= 1;
                if seen.insert(next.clone()) {
                    let (score, eval) = evaluate(&next);
                    candidates.push((next, score, eval));
                }
            }
        }
        if candidates.is_empty() {
            break;
        }
        let scores: Vec<f64> = candidates.iter().map(|c| c.1).collect();
        let chosen = pick(&scores, rng);
        visited.push(candidates.swap_remove(chosen));
        taken += 1;
    }
    let scores: Vec<f64> = visited.iter().map(|c| c.1).collect();
    let chosen = pick(&scores, rng);
    let best = visited.swap_remove(chosen).2;
    PrivateChoice {
        best,
        steps: taken,
        nodes_checked: checked,
        sensitivity,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomial_tail_matches_small_cases() {
        // n = 3, β = 0.5: P(X ≥ 2) = 4/8.
        assert!((binomial_tail(2, 3, 0.5) - 0.5).abs() < 1e-12);
        assert!((binomial_tail(0, 5, 0.3) - 1.0).abs() < 1e-12);
        assert_eq!(binomial_tail(6, 5, 0.3), 0.0);
    }

    #[test]
    fn k_grows_as_delta_shrinks_and_parameters_are_checked() {
        let dp = DifferentialPrivacy::new(2.0, 1e-5, Some(1));
        let (epsilon_anonymization, beta, k) = dp.parameters().unwrap();
        assert!((epsilon_anonymization - 1.9).abs() < 1e-12);
        assert!((beta - (1.0 - (-1.9f64).exp())).abs() < 1e-12);
        assert!(safe_delta(k, epsilon_anonymization, beta) <= 1e-5);
        assert!(safe_delta(k - 1, epsilon_anonymization, beta) > 1e-5);
        let looser = DifferentialPrivacy::new(2.0, 1e-3, None)
            .parameters()
            .unwrap()
            .2;
        assert!(looser < k);
        assert!(
            DifferentialPrivacy::new(0.05, 1e-5, None)
                .parameters()
                .is_err()
        );
        assert!(
            DifferentialPrivacy::new(1.0, 1.5, None)
                .parameters()
                .is_err()
        );
    }
}
