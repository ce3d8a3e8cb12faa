//! Re-identification risk estimates computed from the sizes of the released equivalence classes.
//!
//! * Prosecutor, journalist and marketer risk (El Emam's definitions).
//! * Sample uniqueness and population-uniqueness estimates from the class-size frequencies of
//!   the sample: Zayatz (1991), Pitman (Hoshino 2001), SNB (Chen & McNulty 1998) and Dankar et
//!   al.'s (2012) decision rule among them, as in ARX's `RiskModelPopulationUniqueness`.
//!
//! Two deliberate differences from ARX, both to follow the published definitions where ARX's
//! code departs from them: the SNB class-size-2 equation divides by `(1 − (1−f)(1−β))^(α+2)`
//! (ARX's objective multiplies while its Jacobian divides), and Shlosser's estimate of the number
//! of non-empty population classes uses `(1−f)^i·((1+f)^i − 1)` as in Haas et al. (1995).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Default sampling fraction: the share of the population that the input data represents.
///
/// A release from one operator of medical data usually covers a small share of the population
/// at risk; 1 % is a conservative middle ground (Dankar's rule then uses Pitman's model).
pub const DEFAULT_SAMPLING_FRACTION: f64 = 0.01;

/// Upper edges of the bins of [`RiskSummary::records_by_prosecutor_risk`].
pub const PROSECUTOR_RISK_BIN_EDGES: [f64; 9] =
    [0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 1.0 / 3.0, 0.5, 1.0];

/// A statistical model of population uniqueness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UniquenessModel {
    /// Pitman's sampling formula (Hoshino 2001).
    Pitman,
    /// Zayatz (1991), hypergeometric conditional uniqueness.
    Zayatz,
    /// Slide negative binomial (Chen & McNulty 1998).
    Snb,
}

/// Estimated share of the population that is unique on the released quasi-identifiers.
///
/// Each estimate is `estimated population uniques / population size`; `None` when the model's
/// equations have no valid solution for these class sizes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PopulationUniqueness {
    /// Share of the population that the input data is (configured).
    pub sampling_fraction: f64,
    /// Population size: input records / sampling fraction.
    pub population_size: f64,
    /// Zayatz's estimate.
    pub zayatz: Option<f64>,
    /// Pitman's estimate.
    pub pitman: Option<f64>,
    /// SNB estimate.
    pub snb: Option<f64>,
    /// Dankar et al.'s decision rule: Pitman if the sampling fraction is at most 0.1 (Zayatz if
    /// Pitman has no solution), else the smaller of Zayatz and SNB (Zayatz if SNB has none).
    /// 0 when the release has no sample uniques.
    pub dankar: Option<f64>,
    /// Model chosen by Dankar's rule; `None` when there are no sample uniques.
    pub dankar_model: Option<UniquenessModel>,
}

/// Released records whose prosecutor risk falls in `(previous edge, up_to]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RiskBin {
    /// Upper edge of the bin (inclusive).
    pub up_to: f64,
    /// Released records in the bin.
    pub records: usize,
}

/// Re-identification risk of the released records (prosecutor model: 1 / class size).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RiskSummary {
    /// Highest prosecutor risk of a released record.
    pub prosecutor_max: f64,
    /// Mean prosecutor risk over released records.
    pub prosecutor_mean: f64,
    /// Threshold used for `records_at_risk`.
    pub threshold: f64,
    /// Released records whose risk exceeds the threshold.
    pub records_at_risk: usize,
    /// Highest journalist risk of a released record.
    pub journalist_max: f64,
    /// Mean journalist risk over released records.
    pub journalist_mean: f64,
    /// How the journalist risk was obtained.
    pub journalist_basis: String,
    /// Marketer risk (prosecutor scenario): released classes / released records, the expected
    /// share of records re-identified by an attacker who links every record.
    pub marketer: f64,
    /// Share of released records that are alone in their class.
    pub sample_uniques: f64,
    /// Population-uniqueness estimates.
    pub population_uniqueness: PopulationUniqueness,
    /// Released records by prosecutor risk, in the bins of [`PROSECUTOR_RISK_BIN_EDGES`].
    pub records_by_prosecutor_risk: Vec<RiskBin>,
}

/// Note stored in [`RiskSummary::journalist_basis`] when no population table is given.
pub const JOURNALIST_WITHOUT_POPULATION: &str = "no population table given: journalist risk equals prosecutor risk (the release is taken as its own population)";

impl RiskSummary {
    /// Computes every risk figure from the released class sizes (`size → number of classes`).
    ///
    /// `records` is the number of input records (suppressed included), from which the
    /// population size is derived as `records / sampling_fraction`.
    pub fn from_class_sizes(
        histogram: &BTreeMap<usize, usize>,
        records: usize,
        sampling_fraction: f64,
        threshold: f64,
    ) -> RiskSummary {
        let released: usize = histogram.iter().map(|(s, c)| s * c).sum();
        let classes: usize = histogram.values().sum();
        let k = histogram.keys().next().copied().unwrap_or(0);
        let prosecutor_max = if k > 0 { 1.0 / k as f64 } else { 0.0 };
        let prosecutor_mean = share(classes, released);
        let records_at_risk = histogram
            .iter()
            .filter(|(s, _)| 1.0 / **s as f64 > threshold)
            .map(|(s, c)| s * c)
            .sum();
        let mut bins: Vec<RiskBin> = PROSECUTOR_RISK_BIN_EDGES
            .iter()
            .map(|&up_to| RiskBin { up_to, records: 0 })
            .collect();
        for (&size, &count) in histogram {
            let risk = 1.0 / size as f64;
            // Small tolerance so that 1/3 lands in the bin whose edge is 1/3.
            if let Some(bin) = bins.iter_mut().find(|b| risk <= b.up_to + 1e-12) {
                bin.records += size * count;
            }
        }
        let population_size = records as f64 / sampling_fraction;
        RiskSummary {
            prosecutor_max,
            prosecutor_mean,
            threshold,
            records_at_risk,
            journalist_max: prosecutor_max,
            journalist_mean: prosecutor_mean,
            journalist_basis: JOURNALIST_WITHOUT_POPULATION.to_string(),
            marketer: share(classes, released),
            sample_uniques: share(histogram.get(&1).copied().unwrap_or(0), released),
            population_uniqueness: population_uniqueness(
                histogram,
                population_size,
                sampling_fraction,
            ),
            records_by_prosecutor_risk: bins,
        }
    }
}

fn share(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Population-uniqueness estimates for a sample with class sizes `histogram` drawn from a
/// population of `population_size` records (`sampling_fraction` is reported as given).
pub fn population_uniqueness(
    histogram: &BTreeMap<usize, usize>,
    population_size: f64,
    sampling_fraction: f64,
) -> PopulationUniqueness {
    let sample: usize = histogram.iter().map(|(s, c)| s * c).sum();
    let uniques = histogram.get(&1).copied().unwrap_or(0);
    let mut result = PopulationUniqueness {
        sampling_fraction,
        population_size,
        zayatz: Some(0.0),
        pitman: Some(0.0),
        snb: Some(0.0),
        dankar: Some(0.0),
        dankar_model: None,
    };
    let enough_population = population_size.is_finite() && population_size >= sample as f64;
    if uniques == 0 || sample == 0 || !enough_population {
        return result;
    }
    // The released records are a sample of this fraction of the population.
    let fraction = sample as f64 / population_size;
    let as_share = |n: Option<f64>| n.map(|n| n / population_size);
    let zayatz = zayatz_uniques(histogram, population_size).filter(|v| valid(*v));
    let pitman = pitman_uniques(histogram, population_size).filter(|v| valid(*v));
    let snb = snb_uniques(histogram, fraction).filter(|v| valid(*v));
    result.zayatz = as_share(zayatz);
    result.pitman = as_share(pitman);
    result.snb = as_share(snb);
    let (dankar, model) = if fraction <= 0.1 {
        match pitman {
            Some(p) => (Some(p), UniquenessModel::Pitman),
            None => (zayatz, UniquenessModel::Zayatz),
        }
    } else {
        match (snb, zayatz) {
            (Some(s), Some(z)) if z < s => (Some(z), UniquenessModel::Zayatz),
            (Some(s), _) => (Some(s), UniquenessModel::Snb),
            (None, z) => (z, UniquenessModel::Zayatz),
        }
    };
    result.dankar = as_share(dankar);
    result.dankar_model = Some(model);
    result
}

fn valid(estimate: f64) -> bool {
    estimate.is_finite() && estimate > 0.0
}

/// Hypergeometric probability that a population class of `class_size` records contributes
/// exactly one record to a sample of `sample` records drawn from `population` records:
/// `K·C(N−K, n−1)/C(N, n) = K·(n/N)·Π_{j=1}^{K−1} (N−n−j+1)/(N−j)`.
fn hypergeometric_one(population: f64, class_size: usize, sample: f64) -> f64 {
    let mut p = class_size as f64 * sample / population;
    for j in 1..class_size {
        let j = j as f64;
        let factor = (population - sample - j + 1.0) / (population - j);
        if factor <= 0.0 {
            return 0.0;
        }
        p *= factor;
    }
    p
}

/// Zayatz's estimate of the number of population uniques (ARX's `ModelZayatz`): the share of
/// sample uniques that are population uniques, with the sample class sizes standing in for the
/// population ones, scaled up by the sampling fraction.
pub fn zayatz_uniques(histogram: &BTreeMap<usize, usize>, population_size: f64) -> Option<f64> {
    let sample: usize = histogram.iter().map(|(s, c)| s * c).sum();
    let c1 = histogram.get(&1).copied().unwrap_or(0) as f64;
    let population = population_size.round();
    if sample == 0 || population < sample as f64 {
        return None;
    }
    let n = sample as f64;
    let classes: usize = histogram.values().sum();
    let u = classes as f64;
    let total: f64 = histogram
        .iter()
        .map(|(&size, &count)| count as f64 / u * hypergeometric_one(population, size, n))
        .sum();
    if total <= 0.0 {
        return None;
    }
    let conditional = c1 / u * hypergeometric_one(population, 1, n) / total;
    Some(c1 * conditional / (n / population))
}

/// Pitman's estimate of the number of population uniques (Hoshino 2001, ARX's `ModelPitman`):
/// the maximum-likelihood (θ, α) of Pitman's sampling formula for the sample's class sizes,
/// then `Γ(θ+1)/Γ(θ+α) · N^α`.
pub fn pitman_uniques(histogram: &BTreeMap<usize, usize>, population_size: f64) -> Option<f64> {
    let (theta, alpha) = pitman_parameters(histogram)?;
    let uniques =
        (ln_gamma(theta + 1.0) - ln_gamma(theta + alpha)).exp() * population_size.powf(alpha);
    (uniques.is_finite() && (0.0..=population_size).contains(&uniques)).then_some(uniques)
}

/// The likelihood equations of Pitman's formula and their Jacobian at (θ, α), in closed form
/// with digamma/trigamma so that the cost is per distinct class size, not per record.
fn pitman_equations(
    histogram: &BTreeMap<usize, usize>,
    n: f64,
    u: f64,
    t: f64,
    a: f64,
) -> ([f64; 2], [[f64; 2]; 2]) {
    // Σ_{i=1}^{u−1} 1/(θ+iα) and Σ 1/(θ+iα)²: closed form for α > 0, plain sums otherwise
    // (digamma of the negative θ/α would need the reflection formula).
    let (o1, d1) = if a > 0.0 {
        let x = t / a;
        (
            (digamma(x + u) - digamma(x + 1.0)) / a,
            (trigamma(x + 1.0) - trigamma(x + u)) / (a * a),
        )
    } else {
        let classes = u as usize;
        (1..classes).fold((0.0, 0.0), |(o, d), i| {
            let v = 1.0 / (t + i as f64 * a);
            (o + v, d + v * v)
        })
    };
    // Σ_{i=1}^{n−1} 1/(θ+i) and Σ 1/(θ+i)²
    let o2 = digamma(t + n) - digamma(t + 1.0);
    let d2 = trigamma(t + 1.0) - trigamma(t + n);
    // Σ i/(θ+iα), Σ i/(θ+iα)², Σ i²/(θ+iα)²
    let o3 = ((u - 1.0) - t * o1) / a;
    let d5 = (o1 - t * d1) / a;
    let d3 = ((u - 1.0) - 2.0 * t * o1 + t * t * d1) / (a * a);
    // Σ over classes of size k ≥ 2 of Σ_{j=1}^{k−1} 1/(j−α) and its derivative
    let (mut o4, mut d4) = (0.0, 0.0);
    for (&size, &count) in histogram {
        if size >= 2 {
            let k = size as f64;
            o4 += count as f64 * (digamma(k - a) - digamma(1.0 - a));
            d4 += count as f64 * (trigamma(1.0 - a) - trigamma(k - a));
        }
    }
    ([o1 - o2, o3 - o4], [[d2 - d1, -d5], [-d5, -d3 - d4]])
}

/// Maximum-likelihood (θ, α) of Pitman's sampling formula, by damped Newton–Raphson from
/// ARX's moment-based starting point.
fn pitman_parameters(histogram: &BTreeMap<usize, usize>) -> Option<(f64, f64)> {
    let n: f64 = histogram.iter().map(|(s, c)| (s * c) as f64).sum();
    let u: f64 = histogram.values().sum::<usize>() as f64;
    let c1 = histogram.get(&1).copied().unwrap_or(0) as f64;
    let c2 = match histogram.get(&2).copied().unwrap_or(0) {
        0 => 1.0,
        c => c as f64,
    };
    if u < 2.0 || c1 == 0.0 {
        return None;
    }
    let c = c1 * (c1 - 1.0) / c2;
    let mut t = (n * u * c - c1 * (n - 1.0) * (2.0 * u + c)) / (2.0 * c1 * u + c1 * c - n * c);
    let mut a = (t * (c1 - n) + (n - 1.0) * c1) / (n * u);
    if !a.is_finite() || a >= 1.0 || a == 0.0 {
        a = 0.5;
    }
    if !t.is_finite() || t <= -a || t + (u - 1.0) * a <= 0.0 {
        (t, a) = (1.0, 0.5);
    }
    // Pitman's formula needs 0 ≤ α < 1 and θ > −α, or α < 0 with θ + iα > 0 for every class
    // index i < u; like ARX, α = 0 is excluded (the estimate degenerates).
    let inside =
        |t: f64, a: f64| a < 1.0 && a != 0.0 && t > -a && t + (u - 1.0) * a > 0.0 && t.is_finite();
    newton_2d(
        |t, a| pitman_equations(histogram, n, u, t, a),
        (t, a),
        inside,
    )
}

/// Damped Newton–Raphson for two equations: halves the step until it stays inside the domain
/// and does not increase the residual. Converged when both residuals are below 1e-10 (relative
/// to the size of the terms) or the step is negligible with small residuals.
fn newton_2d(
    equations: impl Fn(f64, f64) -> ([f64; 2], [[f64; 2]; 2]),
    start: (f64, f64),
    inside: impl Fn(f64, f64) -> bool,
) -> Option<(f64, f64)> {
    let (mut x, mut y) = start;
    let norm = |f: [f64; 2]| f[0].abs().max(f[1].abs());
    let (mut f, mut j) = equations(x, y);
    for _ in 0..500 {
        if !norm(f).is_finite() {
            return None;
        }
        if norm(f) < 1e-10 {
            return Some((x, y));
        }
        let det = j[0][0] * j[1][1] - j[0][1] * j[1][0];
        if det == 0.0 || !det.is_finite() {
            return None;
        }
        let dx = (f[0] * j[1][1] - f[1] * j[0][1]) / det;
        let dy = (j[0][0] * f[1] - j[1][0] * f[0]) / det;
        let mut step = 1.0;
        let mut accepted = false;
        while step > 1e-12 {
            let (nx, ny) = (x - step * dx, y - step * dy);
            if inside(nx, ny) {
                let (nf, nj) = equations(nx, ny);
                if norm(nf).is_finite() && norm(nf) < norm(f) {
                    (x, y, f, j) = (nx, ny, nf, nj);
                    accepted = true;
                    break;
                }
            }
            step /= 2.0;
        }
        if !accepted {
            return (norm(f) < 1e-7).then_some((x, y));
        }
    }
    (norm(f) < 1e-7).then_some((x, y))
}

/// Shlosser's estimate of the number of non-empty population classes (Haas et al. 1995, the
/// estimator ARX uses for SNB), for a sample that is fraction `f` of the population.
pub fn shlosser_classes(histogram: &BTreeMap<usize, usize>, f: f64) -> f64 {
    let (mut a, mut b, mut c, mut d) = (0.0, 0.0, 0.0, 0.0);
    let f2 = f * f;
    for (&size, &count) in histogram {
        let i = size as f64;
        let count = count as f64;
        a += i * f2 * (1.0 - f2).powf(i - 1.0) * count;
        // (1−f)^i·((1+f)^i − 1), written so that (1+f)^i cannot overflow.
        b += ((1.0 - f2).powf(i) - (1.0 - f).powf(i)) * count;
        c += (1.0 - f).powf(i) * count;
        d += i * f * (1.0 - f).powf(i - 1.0) * count;
    }
    let u: f64 = histogram.values().sum::<usize>() as f64;
    let c1 = histogram.get(&1).copied().unwrap_or(0) as f64;
    if b == 0.0 || d == 0.0 {
        return u;
    }
    u + c1 * (a / b) * (c / d) * (c / d)
}

/// Expected numbers of sample classes of size 1 and 2 under the SNB model with `classes`
/// population classes, sampling fraction `f` and parameters (α, β).
fn snb_expected(classes: f64, f: f64, alpha: f64, beta: f64) -> [f64; 2] {
    let dv = (1.0 - f) * (1.0 - beta);
    let w = 1.0 - dv;
    let one = classes * f * (beta / w).powf(alpha) * (alpha * dv / w + 1.0);
    let two = classes * alpha * beta.powf(alpha) * f * f * (1.0 - beta) / 2.0 / w.powf(alpha + 2.0)
        * (2.0 - (1.0 - alpha) * dv);
    [one, two]
}

/// SNB estimate of the number of population uniques (Chen & McNulty 1998): population class
/// sizes follow a shifted negative binomial NB(α, β); (α, β) are fitted to the observed
/// numbers of sample classes of size 1 and 2, and the estimate is `K · β^α` with K from
/// [`shlosser_classes`].
pub fn snb_uniques(histogram: &BTreeMap<usize, usize>, f: f64) -> Option<f64> {
    let c1 = histogram.get(&1).copied().unwrap_or(0) as f64;
    let c2 = histogram.get(&2).copied().unwrap_or(0) as f64;
    if c1 == 0.0 || !(f > 0.0 && f <= 1.0) {
        return None;
    }
    let classes = shlosser_classes(histogram, f);
    // Residuals scaled by the observed counts so that the tolerance is relative.
    let scale = [c1.max(1.0), c2.max(1.0)];
    let equations = |a: f64, b: f64| {
        let residual = |a: f64, b: f64| {
            let e = snb_expected(classes, f, a, b);
            [(e[0] - c1) / scale[0], (e[1] - c2) / scale[1]]
        };
        let r = residual(a, b);
        // Central differences: the closed-form Jacobian is long and error-prone.
        let (ha, hb) = (1e-7 * a.abs().max(1e-3), 1e-7 * b.abs().max(1e-6));
        let (ra1, ra0) = (residual(a + ha, b), residual(a - ha, b));
        let (rb1, rb0) = (residual(a, b + hb), residual(a, b - hb));
        let jacobian = [
            [
                (ra1[0] - ra0[0]) / (2.0 * ha),
                (rb1[0] - rb0[0]) / (2.0 * hb),
            ],
            [
                (ra1[1] - ra0[1]) / (2.0 * ha),
                (rb1[1] - rb0[1]) / (2.0 * hb),
            ],
        ];
        (r, jacobian)
    };
    let inside = |a: f64, b: f64| a > 1e-9 && b > 1e-12 && b < 1.0 - 1e-12;
    for alpha in [0.1, 0.5, 1.0, 2.0, 5.0] {
        for beta in [0.001, 0.01, 0.1, 0.3, 0.6, 0.9] {
            if let Some((a, b)) = newton_2d(equations, (alpha, beta), inside) {
                let uniques = classes * b.powf(a);
                if uniques.is_finite() && uniques > 0.0 {
                    return Some(uniques);
                }
            }
        }
    }
    None
}

/// ln Γ(x) for x > 0: recurrence up to x ≥ 15, then Stirling's series.
pub(crate) fn ln_gamma(x: f64) -> f64 {
    let mut x = x;
    let mut shift = 0.0;
    while x < 15.0 {
        shift += x.ln();
        x += 1.0;
    }
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    let series = inv
        * (1.0 / 12.0
            - inv2
                * (1.0 / 360.0
                    - inv2 * (1.0 / 1260.0 - inv2 * (1.0 / 1680.0 - inv2 * (1.0 / 1188.0)))));
    (x - 0.5) * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI).ln() + series - shift
}

/// Digamma ψ(x) for x > 0.
fn digamma(x: f64) -> f64 {
    let mut x = x;
    let mut shift = 0.0;
    while x < 10.0 {
        shift -= 1.0 / x;
        x += 1.0;
    }
    let inv2 = 1.0 / (x * x);
    let series = inv2
        * (1.0 / 12.0
            - inv2
                * (1.0 / 120.0
                    - inv2 * (1.0 / 252.0 - inv2 * (1.0 / 240.0 - inv2 * (1.0 / 132.0)))));
    x.ln() - 0.5 / x - series + shift
}

/// Trigamma ψ₁(x) for x > 0.
fn trigamma(x: f64) -> f64 {
    let mut x = x;
    let mut shift = 0.0;
    while x < 10.0 {
        shift += 1.0 / (x * x);
        x += 1.0;
    }
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    let series = inv
        + inv2 / 2.0
        + inv
            * inv2
            * (1.0 / 6.0
                - inv2
                    * (1.0 / 30.0 - inv2 * (1.0 / 42.0 - inv2 * (1.0 / 30.0 - inv2 * 5.0 / 66.0))));
    series + shift
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(pairs: &[(usize, usize)]) -> BTreeMap<usize, usize> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn special_functions_match_known_values() {
        // Γ(1) = Γ(2) = 1, Γ(0.5) = √π, Γ(10) = 9!.
        assert!(ln_gamma(1.0).abs() < 1e-13);
        assert!(ln_gamma(2.0).abs() < 1e-13);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-13);
        assert!((ln_gamma(10.0) - 362880f64.ln()).abs() < 1e-12);
        // ψ(1) = −γ, ψ(0.5) = −γ − 2 ln 2; ψ₁(1) = π²/6, ψ₁(0.5) = π²/2.
        let euler = 0.577_215_664_901_532_9;
        assert!((digamma(1.0) + euler).abs() < 1e-13);
        assert!((digamma(0.5) + euler + 2.0 * 2f64.ln()).abs() < 1e-13);
        let pi2 = std::f64::consts::PI * std::f64::consts::PI;
        assert!((trigamma(1.0) - pi2 / 6.0).abs() < 1e-12);
        assert!((trigamma(0.5) - pi2 / 2.0).abs() < 1e-12);
    }

    #[test]
    fn prosecutor_journalist_marketer_and_sample_uniques_by_hand() {
        // Classes: two of size 1, one of size 2, one of size 5 → 9 records, 4 classes.
        let h = hist(&[(1, 2), (2, 1), (5, 1)]);
        let r = RiskSummary::from_class_sizes(&h, 10, 0.5, 0.2);
        assert_eq!(r.prosecutor_max, 1.0);
        assert!((r.prosecutor_mean - 4.0 / 9.0).abs() < 1e-15);
        assert!((r.marketer - 4.0 / 9.0).abs() < 1e-15);
        assert_eq!(r.journalist_max, r.prosecutor_max);
        assert_eq!(r.journalist_basis, JOURNALIST_WITHOUT_POPULATION);
        assert!((r.sample_uniques - 2.0 / 9.0).abs() < 1e-15);
        // Risk 1 and 1/2 exceed 0.2; 1/5 does not.
        assert_eq!(r.records_at_risk, 4);
        let bins: Vec<(f64, usize)> = r
            .records_by_prosecutor_risk
            .iter()
            .map(|b| (b.up_to, b.records))
            .filter(|b| b.1 > 0)
            .collect();
        assert_eq!(bins, vec![(0.2, 5), (0.5, 2), (1.0, 2)]);
        assert_eq!(r.population_uniqueness.population_size, 20.0);
    }

    #[test]
    fn hypergeometric_single_draw_by_hand() {
        // N = 10, n = 4, K = 3: P(X=1) = C(3,1)·C(7,3)/C(10,4) = 3·35/210 = 0.5.
        assert!((hypergeometric_one(10.0, 3, 4.0) - 0.5).abs() < 1e-15);
        // K = 1: n/N.
        assert!((hypergeometric_one(10.0, 1, 4.0) - 0.4).abs() < 1e-15);
    }

    #[test]
    fn zayatz_by_hand() {
        // Sample: c1 = 2, c2 = 1 (n = 4, u = 3), population N = 8.
        // P1(1) = 4/8 = 0.5; P1(2) = 2·C(6,3)/C(8,4) = 2·20/70 = 4/7.
        // conditional = (2/3 · 0.5) / (2/3 · 0.5 + 1/3 · 4/7) = (1/3) / (1/3 + 4/21) = 7/11.
        // uniques = c1 · 7/11 / (4/8) = 28/11 (scipy.stats.hypergeom agrees: 2.5454545).
        let z = zayatz_uniques(&hist(&[(1, 2), (2, 1)]), 8.0).unwrap();
        assert!((z - 28.0 / 11.0).abs() < 1e-12, "{z}");
        // A larger case, against scipy.stats.hypergeom: 18.318160800813104.
        let z = zayatz_uniques(&hist(&[(1, 6), (2, 3), (3, 2), (5, 1)]), 230.0).unwrap();
        assert!((z - 18.318160800813104).abs() < 1e-9, "{z}");
        // The whole population sampled: every sample unique is a population unique.
        let all = zayatz_uniques(&hist(&[(1, 3), (4, 2)]), 11.0).unwrap();
        assert!((all - 3.0).abs() < 1e-12);
    }

    /// The likelihood equations written as plain sums, independent of the closed forms.
    fn pitman_residuals(h: &BTreeMap<usize, usize>, t: f64, a: f64) -> [f64; 2] {
        let n: usize = h.iter().map(|(s, c)| s * c).sum();
        let u: usize = h.values().sum();
        let o1: f64 = (1..u).map(|i| 1.0 / (t + i as f64 * a)).sum();
        let o2: f64 = (1..n).map(|i| 1.0 / (t + i as f64)).sum();
        let o3: f64 = (1..u).map(|i| i as f64 / (t + i as f64 * a)).sum();
        let o4: f64 = h
            .iter()
            .filter(|(s, _)| **s > 1)
            .map(|(&s, &c)| c as f64 * (1..s).map(|j| 1.0 / (j as f64 - a)).sum::<f64>())
            .sum();
        [o1 - o2, o3 - o4]
    }

    #[test]
    fn pitman_matches_an_independent_solution() {
        // Reference: scipy.optimize.fsolve on the plain-sum equations, then
        // exp(gammaln(θ+1) − gammaln(θ+α))·N^α: θ = 77.17514462, α = −0.73690481,
        // 19.903451289768554 uniques for N = 480 and 3.6477375276735824 for N = 4800.
        let h = hist(&[(1, 20), (2, 5), (3, 2), (4, 1)]);
        let (t, a) = pitman_parameters(&h).unwrap();
        assert!(
            (t - 77.17514462).abs() < 1e-6 && (a + 0.73690481).abs() < 1e-6,
            "{t} {a}"
        );
        let r = pitman_residuals(&h, t, a);
        assert!(r[0].abs() < 1e-9 && r[1].abs() < 1e-9);
        let p = pitman_uniques(&h, 480.0).unwrap();
        assert!((p - 19.903451289768554).abs() < 1e-6, "{p}");
        let p = pitman_uniques(&h, 4800.0).unwrap();
        assert!((p - 3.6477375276735824).abs() < 1e-6, "{p}");
    }

    #[test]
    fn pitman_closed_forms_agree_with_the_sums_for_positive_alpha() {
        let h = hist(&[(1, 20), (2, 5), (3, 2), (4, 1)]);
        for (t, a) in [(2.0, 0.3), (10.0, 0.7), (0.5, 0.1)] {
            let (closed, _) = pitman_equations(&h, 40.0, 28.0, t, a);
            let sums = pitman_residuals(&h, t, a);
            assert!((closed[0] - sums[0]).abs() < 1e-11, "{t} {a}");
            assert!((closed[1] - sums[1]).abs() < 1e-11, "{t} {a}");
        }
    }

    #[test]
    fn snb_matches_an_independent_solution() {
        // Reference (scipy): Shlosser K = 59.910806770123486 for f = 0.3; fsolve on the two
        // SNB equations gives α = 0.40720349, β = 0.23244066 and K·β^α = 33.07236409912494.
        let h = hist(&[(1, 20), (2, 5), (3, 2), (4, 1)]);
        let k = shlosser_classes(&h, 0.3);
        assert!((k - 59.910806770123486).abs() < 1e-9, "{k}");
        let uniques = snb_uniques(&h, 0.3).unwrap();
        assert!((uniques - 33.07236409912494).abs() < 1e-6, "{uniques}");
    }

    #[test]
    fn no_sample_uniques_means_no_population_uniques() {
        let p = population_uniqueness(&hist(&[(2, 3), (4, 1)]), 100.0, 0.1);
        assert_eq!(p.dankar, Some(0.0));
        assert_eq!(p.dankar_model, None);
        assert_eq!(p.pitman, Some(0.0));
    }

    #[test]
    fn dankar_rule_picks_by_sampling_fraction() {
        let h = hist(&[(1, 20), (2, 5), (3, 2), (4, 1)]);
        let small = population_uniqueness(&h, 4800.0, 0.01);
        assert_eq!(small.dankar_model, Some(UniquenessModel::Pitman));
        assert_eq!(small.dankar, small.pitman);
        let large = population_uniqueness(&h, 80.0, 0.5);
        let z = large.zayatz.unwrap();
        match large.snb {
            Some(s) if z >= s => assert_eq!(large.dankar, Some(s)),
            _ => assert_eq!(large.dankar, Some(z)),
        }
        assert_ne!(large.dankar_model, Some(UniquenessModel::Pitman));
    }
}
