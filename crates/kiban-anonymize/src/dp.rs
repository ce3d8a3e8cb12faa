//! SafePub-style (ε, δ)-differential privacy (Bild, Kuhn, Prasser, "SafePub: A Truthful Data
//! Anonymization Algorithm With Strong Privacy Guarantees", PoPETs 2018(1):67–87).
//!
//! What is implemented, with the paper's (and its reference implementation's, ARX) formulas:
//!
//! * **Random sampling and strong k-anonymity** (SafePub §3, after Li, Qardaji and Su 2012,
//!   "On sampling, anonymization, and differential privacy", Theorem 5): every record is drawn
//!   with probability β; the sample is generalized with one full-domain generalization and
//!   every class of fewer than k records is removed. This is (ε_anon, δ)-differentially private
//!   for any ε_anon ≥ −ln(1 − β) and δ = d(k, β, ε_anon) with
//!   d(k, β, ε) = max_{n ≥ n_m} Σ_{j > γn}^{n} f(j; n, β), f the binomial probability,
//!   γ = (e^ε − 1 + β) / e^ε and n_m = ⌈k/γ − 1⌉ ([`safe_delta`]).
//! * **Parameters** (SafePub §4.1): ε = ε_anon + ε_search; β = 1 − e^(−ε_anon), the largest
//!   sampling probability ε_anon allows; k the smallest integer with d(k, β, ε_anon) ≤ δ
//!   ([`safe_k`]).
//! * **Search** (SafePub §4.2, Algorithm 1): starting at the lattice top, each of `steps` steps
//!   adds the direct specializations of the current pivot to the candidates, removes the pivot
//!   and draws the next pivot with the exponential mechanism (McSherry and Talwar 2007):
//!   Pr[g] ∝ exp(ε_step · s(g) / 2) for a score s already divided by its sensitivity.
//!   SafePub's reference implementation then returns the best-scoring pivot, which uses the
//!   data outside the mechanism; here the output is drawn from the pivots with one more
//!   exponential mechanism instead, so each of the `steps + 1` draws spends
//!   ε_step = ε_search / (steps + 1) and the whole search is ε_search-differentially private by
//!   sequential composition.
//! * **Score** (SafePub §5, data granularity, as ARX's `MetricMDNMLoss.getScore`): over the
//!   whole input, a released value costs the share of the attribute's domain its generalization
//!   covers (leaves under the label / leaves), a suppressed value, and every value of a record
//!   not drawn into the sample, costs 1; s(g) = −(Σ over records and the q quasi-identifiers of
//!   the cost) / (q · max(1, k − 1)). Sensitivity of the sum: adding one record either leaves
//!   the sample unchanged (it costs q, not drawn) or adds a drawn record (cost in [0, q]) whose
//!   class may reach k and release k − 1 records that cost q each while suppressed (a change in
//!   [−(k − 1)q, 0]): the two have opposite signs, so the score changes by at most
//!   max(1, k − 1) · q.
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
    /// Sensitivity of the summed granularity cost, max(1, k − 1) times the quasi-identifiers;
    /// scores are divided by it.
    pub score_sensitivity: f64,
    /// SafePub score of the chosen generalization (the summed granularity cost of the input
    /// divided by [`Self::score_sensitivity`], negated: 0 is best).
    pub score: f64,
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
    /// SafePub score of `best`.
    pub score: f64,
    pub steps: usize,
    pub nodes_checked: usize,
    pub sensitivity: f64,
}

/// SafePub's private search over the lattice of `hierarchies` on the sampled `classes` drawn
/// from `input_records` records.
pub(crate) fn private_search(
    hierarchies: &[Hierarchy],
    classes: &FinestClasses,
    input_records: usize,
    k: usize,
    epsilon_search: f64,
    steps: usize,
    rng: &mut ChaCha20Rng,
) -> PrivateChoice {
    let models = PrivacyModels::k_anonymity(k, 1.0);
    let q = hierarchies.len();
    let sensitivity = score_sensitivity(k, q);
    let epsilon_step = epsilon_search / (steps + 1) as f64;
    let not_sampled = input_records.saturating_sub(classes.records);
    let share = domain_shares(hierarchies);
    let mut checked = 0usize;
    let mut evaluate = |levels: &[usize]| -> (f64, Evaluation) {
        checked += 1;
        let eval = classes.evaluate(hierarchies, levels, &models);
        let cost = granularity_cost(&share, hierarchies, classes, &eval, not_sampled);
        (-cost / sensitivity, eval)
    };
    // The exponential mechanism on scores already divided by the sensitivity.
    let pick = |scores: &[f64], rng: &mut ChaCha20Rng| -> usize {
        let top = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let weights: Vec<f64> = scores
            .iter()
            .map(|&s| (epsilon_step * (s - top) / 2.0).exp())
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
    let (_, score, best) = visited.swap_remove(chosen);
    PrivateChoice {
        best,
        score,
        steps: taken,
        nodes_checked: checked,
        sensitivity,
    }
}

/// Per quasi-identifier, level and label: the share of the domain the label covers.
fn domain_shares(hierarchies: &[Hierarchy]) -> Vec<Vec<Vec<f64>>> {
    hierarchies
        .iter()
        .map(|h| {
            let leaves = h.leaf_count().max(1) as f64;
            (0..h.height())
                .map(|level| {
                    h.leaves_per_label(level)
                        .iter()
                        .map(|&n| f64::from(n) / leaves)
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// SafePub's summed granularity cost of a node: the domain share of every released value,
/// 1 for every value of a suppressed record and of the `not_sampled` records.
fn granularity_cost(
    share: &[Vec<Vec<f64>>],
    hierarchies: &[Hierarchy],
    classes: &FinestClasses,
    eval: &Evaluation,
    not_sampled: usize,
) -> f64 {
    let q = hierarchies.len();
    let mut cost = (eval.suppressed_records + not_sampled) as f64 * q as f64;
    for (g, (&size, &kept)) in eval.sizes.iter().zip(&eval.kept).enumerate() {
        if kept {
            let leaves = classes.codes(eval.first_class[g] as usize);
            let record: f64 = (0..q)
                .map(|j| {
                    let level = eval.levels[j];
                    share[j][level][hierarchies[j].generalize(leaves[j], level) as usize]
                })
                .sum();
            cost += f64::from(size) * record;
        }
    }
    cost
}

/// Sensitivity of SafePub's granularity score summed over `q` quasi-identifiers with the
/// derived `k`: max(1, k − 1) · q (see the module documentation).
pub fn score_sensitivity(k: usize, q: usize) -> f64 {
    (k.saturating_sub(1).max(1) * q) as f64
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

    /// Li, Qardaji, Su / SafePub by hand for ε = ln 2 and β = 1 − e^(−ln 2) = 1/2: γ =
    /// (2 − 1 + 1/2) / 2 = 3/4, and d(k) = max over n ≥ ⌈4k/3 − 1⌉ of P[Bin(n, 1/2) > 3n/4]:
    /// the tails are n = 1: 1/2, 2: 1/4, 3: 1/8, 4: 1/16, 5: P[X ≥ 4] = 6/32, 6: P[X ≥ 5] = 7/64,
    /// 7: P[X ≥ 6] = 8/128, 8: P[X ≥ 7] = 9/256, 9: P[X ≥ 7] = 46/512, then smaller (n = 13:
    /// 378/8192). So d(1) = 1/2 (n ≥ 1), d(2) = 1/4 (n ≥ 2), d(3) = 6/32 (n ≥ 3), d(4) = 6/32
    /// (n ≥ 5), d(5) = 7/64 (n ≥ 6), d(6) = 46/512 (n ≥ 7); the derived k for δ = 0.2, 0.15 and
    /// 0.1 is 3, 5 and 6.
    #[test]
    fn derived_k_matches_the_formula_computed_by_hand() {
        let epsilon = std::f64::consts::LN_2;
        assert_eq!(
            epsilon.exp(),
            2.0,
            "the hand computation needs e^ε = 2 exactly"
        );
        let beta = 1.0 - (-epsilon).exp();
        assert_eq!(beta, 0.5);
        let by_hand = [
            (1, 0.5),
            (2, 0.25),
            (3, 6.0 / 32.0),
            (4, 6.0 / 32.0),
            (5, 7.0 / 64.0),
            (6, 46.0 / 512.0),
        ];
        for (k, delta) in by_hand {
            let computed = safe_delta(k, epsilon, beta);
            assert!(
                (computed - delta).abs() < 1e-12,
                "d({k}) = {computed}, by hand {delta}"
            );
        }
        assert_eq!(safe_k(0.2, epsilon, beta).unwrap(), 3);
        assert_eq!(safe_k(0.15, epsilon, beta).unwrap(), 5);
        assert_eq!(safe_k(0.1, epsilon, beta).unwrap(), 6);
        // The job's parameters: ε_anon = ε − ε_search and β = 1 − e^(−ε_anon).
        let dp = DifferentialPrivacy {
            search_budget: 0.5,
            ..DifferentialPrivacy::new(1.5, 0.1, None)
        };
        let (epsilon_anonymization, beta, k) = dp.parameters().unwrap();
        assert_eq!(epsilon_anonymization, 1.0);
        assert!((beta - (1.0 - (-1.0f64).exp())).abs() < 1e-15);
        assert_eq!(k, safe_k(0.1, 1.0, beta).unwrap());
    }

    /// Adding one record changes the summed granularity cost by at most max(1, k − 1) · q,
    /// whether it is drawn into the sample or not (the other records' draws kept).
    #[test]
    fn score_sensitivity_bounds_the_change_of_one_record() {
        let age = Hierarchy::from_rows(
            "age",
            ["30", "31", "40", "41"]
                .iter()
                .map(|v| vec![v.to_string(), format!("{}x", &v[..1]), "*".to_string()])
                .collect(),
        )
        .unwrap();
        let sex = Hierarchy::from_rows(
            "sex",
            vec![vec!["F".into(), "*".into()], vec!["M".into(), "*".into()]],
        )
        .unwrap();
        let hierarchies = vec![age, sex];
        let share = domain_shares(&hierarchies);
        // Leaf codes of the records (age, sex); all drawn except the last two.
        let base: Vec<(u32, u32)> = vec![(0, 0), (1, 0), (0, 0), (2, 1), (3, 1), (2, 1), (1, 1)];
        for k in 1..=4 {
            let models = PrivacyModels::k_anonymity(k, 1.0);
            let cost = |records: &[(u32, u32)], not_sampled: usize, levels: &[usize]| {
                let codes = vec![
                    records.iter().map(|r| r.0).collect::<Vec<_>>(),
                    records.iter().map(|r| r.1).collect::<Vec<_>>(),
                ];
                let classes = FinestClasses::build(&hierarchies, &codes, &[]);
                let eval = classes.evaluate(&hierarchies, levels, &models);
                granularity_cost(&share, &hierarchies, &classes, &eval, not_sampled)
            };
            let bound = score_sensitivity(k, 2);
            for levels in [[0, 0], [1, 0], [0, 1], [1, 1], [2, 0], [2, 1]] {
                let before = cost(&base, 2, &levels);
                for extra in [(0, 0), (1, 1), (2, 0), (3, 1)] {
                    let mut drawn = base.clone();
                    drawn.push(extra);
                    let change = (cost(&drawn, 2, &levels) - before).abs();
                    assert!(
                        change <= bound + 1e-9,
                        "k {k} {levels:?}: {change} > {bound}"
                    );
                    let change = (cost(&base, 3, &levels) - before).abs();
                    assert!(change <= bound + 1e-9);
                }
            }
        }
        assert_eq!(score_sensitivity(1, 9), 9.0);
        assert_eq!(score_sensitivity(6, 9), 45.0);
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
