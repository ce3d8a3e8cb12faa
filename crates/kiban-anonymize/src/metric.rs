//! Utility (information loss) metrics; lower is better for all of them.

use serde::{Deserialize, Serialize};

use crate::engine::{Evaluation, FinestClasses};
use crate::hierarchy::Hierarchy;

/// Information-loss metric used to pick the optimum among acceptable transformations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// ARX's non-uniform entropy with precomputed entropy (`MetricMDNUEntropyPrecomputed`):
    /// `Σ_j Σ_v −n(v) · log2(n(v) / n(g_j(v)))` over the original values v of every
    /// quasi-identifier j, with counts over the whole input. It depends on the levels only:
    /// suppressed records are charged like released ones, exactly as in ARX.
    #[default]
    Entropy,
    /// ARX's "Loss": per attribute, the share of the domain covered by each released value
    /// (suppressed records count 1), normalized to `[0, 1]` as ARX does, averaged over the
    /// quasi-identifiers (arithmetic mean).
    Loss,
    /// Discernibility: `Σ |class|²` over released classes plus `records` per suppressed record.
    Discernibility,
    /// Average equivalence class size: records / classes, all suppressed records forming one
    /// class (they are indistinguishable `*` rows in the release).
    Aecs,
    /// Sum of the generalization levels.
    Height,
    /// Precision: mean over quasi-identifiers and records of `level / max level`, suppressed
    /// records counting 1.
    Precision,
    /// Kullback–Leibler divergence of the release from the input (ARX's KL-divergence metric):
    /// `Σ_t P(t) · ln(P(t) / Q(t))` over the distinct original quasi-identifier tuples t, where
    /// P is their frequency in the input and Q spreads the frequency of t's released class
    /// uniformly over the leaves its generalized values cover (the product over attributes of
    /// the leaves under each label); suppressed records form one class covering every leaf.
    /// It is not monotone in the levels, so the search uses no lower bound for it (every
    /// acceptable node is evaluated in the optimal search).
    KlDivergence,
}

impl Metric {
    /// ARX's name of the metric.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Entropy => "Non-uniform entropy (precomputed)",
            Metric::Loss => "Loss",
            Metric::Discernibility => "Discernibility",
            Metric::Aecs => "Average equivalence class size",
            Metric::Height => "Height",
            Metric::Precision => "Precision",
            Metric::KlDivergence => "KL-Divergence",
        }
    }

    /// Whether the value depends on the levels only (not on which classes are suppressed).
    pub(crate) fn level_only(self) -> bool {
        matches!(self, Metric::Entropy | Metric::Height)
    }
}

/// Per-attribute, per-level tables precomputed once from the finest classes.
pub(crate) struct MetricTables {
    /// `entropy[j][level]`.
    entropy: Vec<Vec<f64>>,
    /// `loss_bound[j][level]`: normalized loss if nothing were suppressed.
    loss_bound: Vec<Vec<f64>>,
    /// `shares[j][level][code]`: leaves under the label / leaves of the hierarchy.
    shares: Vec<Vec<Vec<f64>>>,
    /// `ln_leaves[j][level][code]`: natural log of the leaves under the label.
    ln_leaves: Vec<Vec<Vec<f64>>>,
    records: f64,
}

fn log2(x: f64) -> f64 {
    x.ln() / std::f64::consts::LN_2
}

impl MetricTables {
    pub fn new(hierarchies: &[Hierarchy], classes: &FinestClasses) -> Self {
        let records = classes.records as f64;
        let mut entropy = Vec::new();
        let mut loss_bound = Vec::new();
        let mut shares = Vec::new();
        let mut ln_leaves = Vec::new();
        for (j, h) in hierarchies.iter().enumerate() {
            ln_leaves.push(
                (0..h.height())
                    .map(|level| {
                        h.leaves_per_label(level)
                            .iter()
                            .map(|&n| f64::from(n.max(1)).ln())
                            .collect()
                    })
                    .collect(),
            );
            let leaf_counts = classes.leaf_counts(j, h.leaf_count());
            let mut entropy_j = Vec::with_capacity(h.height());
            let mut bound_j = Vec::with_capacity(h.height());
            let mut shares_j = Vec::with_capacity(h.height());
            for level in 0..h.height() {
                let map = h.level_map(level);
                let mut label_counts = vec![0u64; h.cardinality(level)];
                for (leaf, &n) in leaf_counts.iter().enumerate() {
                    label_counts[map[leaf] as usize] += n;
                }
                let mut value = 0.0;
                for (leaf, &n) in leaf_counts.iter().enumerate() {
                    if n > 0 {
                        let a = n as f64;
                        let b = label_counts[map[leaf] as usize] as f64;
                        value += a * log2(a / b);
                    }
                }
                entropy_j.push(if value == 0.0 { 0.0 } else { -value });
                let domain = h.leaf_count() as f64;
                let share: Vec<f64> = h
                    .leaves_per_label(level)
                    .iter()
                    .map(|&n| f64::from(n) / domain)
                    .collect();
                let raw: f64 = leaf_counts
                    .iter()
                    .enumerate()
                    .map(|(leaf, &n)| n as f64 * share[map[leaf] as usize])
                    .sum();
                bound_j.push(normalize_loss(raw, records, domain));
                shares_j.push(share);
            }
            entropy.push(entropy_j);
            loss_bound.push(bound_j);
            shares.push(shares_j);
        }
        MetricTables {
            entropy,
            loss_bound,
            shares,
            ln_leaves,
            records,
        }
    }

    /// Exact value for level-only metrics, a lower bound for the others.
    pub fn lower_bound(&self, metric: Metric, levels: &[usize], heights: &[usize]) -> f64 {
        match metric {
            Metric::Entropy => levels
                .iter()
                .enumerate()
                .map(|(j, &l)| self.entropy[j][l])
                .sum(),
            Metric::Height => levels.iter().sum::<usize>() as f64,
            Metric::Loss => {
                levels
                    .iter()
                    .enumerate()
                    .map(|(j, &l)| self.loss_bound[j][l])
                    .sum::<f64>()
                    / levels.len() as f64
            }
            Metric::Precision => {
                levels
                    .iter()
                    .zip(heights)
                    .map(|(&l, &h)| level_fraction(l, h))
                    .sum::<f64>()
                    / levels.len() as f64
            }
            Metric::Discernibility | Metric::Aecs | Metric::KlDivergence => 0.0,
        }
    }

    /// The metric of an evaluated node.
    pub fn value(
        &self,
        metric: Metric,
        hierarchies: &[Hierarchy],
        classes: &FinestClasses,
        eval: &Evaluation,
    ) -> f64 {
        let heights: Vec<usize> = hierarchies.iter().map(Hierarchy::height).collect();
        let suppressed = eval.suppressed_records as f64;
        match metric {
            Metric::Entropy | Metric::Height => self.lower_bound(metric, &eval.levels, &heights),
            Metric::Discernibility => {
                let kept: f64 = eval
                    .sizes
                    .iter()
                    .zip(&eval.kept)
                    .filter(|(_, k)| **k)
                    .map(|(&s, _)| f64::from(s) * f64::from(s))
                    .sum();
                kept + suppressed * self.records
            }
            Metric::Aecs => {
                let mut classes_released = eval.kept.iter().filter(|k| **k).count();
                if eval.suppressed_records > 0 {
                    classes_released += 1;
                }
                self.records / classes_released as f64
            }
            Metric::Precision => {
                let kept = self.records - suppressed;
                eval.levels
                    .iter()
                    .zip(&heights)
                    .map(|(&l, &h)| (kept * level_fraction(l, h) + suppressed) / self.records)
                    .sum::<f64>()
                    / eval.levels.len() as f64
            }
            Metric::KlDivergence => {
                // ln of the leaves covered by each released group, and by the suppressed `*`.
                let ln_area: Vec<f64> = eval
                    .first_class
                    .iter()
                    .map(|&first| {
                        let codes = classes.codes(first as usize);
                        hierarchies
                            .iter()
                            .enumerate()
                            .map(|(j, h)| {
                                let level = eval.levels[j];
                                let code = h.level_map(level)[codes[j] as usize];
                                self.ln_leaves[j][level][code as usize]
                            })
                            .sum()
                    })
                    .collect();
                let ln_everything: f64 = hierarchies
                    .iter()
                    .map(|h| (h.leaf_count().max(1) as f64).ln())
                    .sum();
                let mut divergence = 0.0;
                for (c, &g) in eval.class_group.iter().enumerate() {
                    let n = f64::from(classes.sizes[c]);
                    if n == 0.0 {
                        // A tuple only outside the research subset carries no probability.
                        continue;
                    }
                    let g = g as usize;
                    // P / Q = (n / N) / ((|class| / N) / area) = n · area / |class|.
                    let (class_size, ln_area) = if eval.kept[g] {
                        (f64::from(eval.sizes[g]), ln_area[g])
                    } else {
                        (suppressed, ln_everything)
                    };
                    divergence += n / self.records * (n.ln() + ln_area - class_size.ln());
                }
                divergence.max(0.0)
            }
            Metric::Loss => {
                let mut total = 0.0;
                for (j, h) in hierarchies.iter().enumerate() {
                    let level = eval.levels[j];
                    let map = h.level_map(level);
                    let share = &self.shares[j][level];
                    let mut raw = suppressed;
                    for (g, &first) in eval.first_class.iter().enumerate() {
                        if eval.kept[g] {
                            let leaf = classes.codes(first as usize)[j];
                            raw += f64::from(eval.sizes[g]) * share[map[leaf as usize] as usize];
                        }
                    }
                    total += normalize_loss(raw, self.records, h.leaf_count() as f64);
                }
                total / hierarchies.len() as f64
            }
        }
    }
}

fn level_fraction(level: usize, height: usize) -> f64 {
    if height <= 1 {
        0.0
    } else {
        level as f64 / (height - 1) as f64
    }
}

/// ARX's normalization of the loss aggregate: `(raw − N/|domain|) / (N − N/|domain|)`.
fn normalize_loss(raw: f64, records: f64, domain: f64) -> f64 {
    let min = records / domain;
    let span = records - min;
    if span <= 0.0 {
        0.0
    } else {
        ((raw - min) / span).max(0.0)
    }
}
