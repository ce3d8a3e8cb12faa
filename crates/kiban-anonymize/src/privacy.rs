//! Privacy models and their check on one equivalence class.

use serde::{Deserialize, Serialize};

use crate::error::{AnonymizeError, Result};

/// The privacy models a release must satisfy.
///
/// Every equivalence class that fails any model is suppressed whole (all its quasi-identifiers
/// become `*`), as ARX does; a transformation is acceptable when at most
/// `floor(max_suppression × records)` records are suppressed. Suppressed classes do not count
/// against the models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyModels {
    /// k of k-anonymity (every released class has at least k records).
    pub k: usize,
    /// Largest fraction of records that may be suppressed, in `[0, 1]`.
    #[serde(default)]
    pub max_suppression: f64,
    /// ℓ-diversity applied to every sensitive attribute.
    #[serde(default)]
    pub l_diversity: Option<LDiversity>,
    /// t-closeness applied to every sensitive attribute, with the ground distance
    /// [`Self::t_distance`].
    #[serde(default)]
    pub t_closeness: Option<f64>,
    /// Ground distance of the earth mover's distance of t-closeness (default: equal).
    #[serde(default)]
    pub t_distance: TDistance,
    /// k of k-map: the generalized quasi-identifiers of every released class occur at least
    /// `k_map` times in the population table (generalized with the same hierarchies).
    /// Needs a population table.
    #[serde(default)]
    pub k_map: Option<usize>,
    /// δ-presence of a research subset within the input (the public population).
    #[serde(default)]
    pub delta_presence: Option<DeltaPresence>,
}

/// δ-presence (Nergiz et al.; ARX's `DPresence`): the input is the public population, the
/// records whose `subset_column` is true (`true`/`1`/`yes`) are the research subset. Every
/// class (over the whole population) holding subset records must satisfy
/// `delta_min ≤ |subset ∩ class| / |class| ≤ delta_max`. Only subset records are released
/// (the flag column is dropped); k-anonymity, ℓ-diversity, t-closeness, the suppression limit
/// and the metrics apply to the subset.
///
/// δ-presence is not monotone under suppression, so the optimal search evaluates every node
/// instead of tagging generalizations of acceptable nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeltaPresence {
    /// Smallest allowed share of subset records in a class, in `[0, 1]`.
    pub delta_min: f64,
    /// Largest allowed share of subset records in a class, in `[delta_min, 1]`.
    pub delta_max: f64,
    /// Column flagging the research subset.
    pub subset_column: String,
}

/// Ground distance between sensitive values in the earth mover's distance of t-closeness
/// (as ARX's `EqualDistanceTCloseness`, `OrderedDistanceTCloseness` and
/// `HierarchicalDistanceTCloseness`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TDistance {
    /// Every two distinct values are at distance 1: EMD = half the L1 distance.
    #[default]
    Equal,
    /// Values of an ordered type (integer, decimal, date, ordinal) at distance
    /// `|rank(a) − rank(b)| / (m − 1)` over the m distinct values of the data:
    /// EMD = `Σ_i |Σ_{j≤i} (p_j − q_j)| / (m − 1)`.
    Ordered,
    /// Distance `level(lowest common ancestor) / (height − 1)` in the sensitive attribute's
    /// hierarchy (Li et al. 2007), computed bottom-up from the positive and negative extras.
    Hierarchical,
}

impl TDistance {
    /// Name used in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            TDistance::Equal => "equal",
            TDistance::Ordered => "ordered",
            TDistance::Hierarchical => "hierarchical",
        }
    }
}

/// Prepared ground distance of one sensitive attribute.
#[derive(Debug, Clone, Default)]
pub(crate) enum GroundDistance {
    /// See [`TDistance::Equal`].
    #[default]
    Equal,
    /// See [`TDistance::Ordered`]; `rank[value code]` in `0..ranked.len()`, `ranked[r]` the
    /// overall frequency of the value of rank r.
    Ordered { rank: Vec<u32>, ranked: Vec<f64> },
    /// See [`TDistance::Hierarchical`]; `leaf[value code]`, `parents[level][code at level]` =
    /// code at level + 1, `overall_leaf[leaf]` the overall frequency of each leaf.
    Hierarchical {
        leaf: Vec<u32>,
        parents: Vec<Vec<u32>>,
        overall_leaf: Vec<f64>,
    },
}

impl GroundDistance {
    /// Ordered ground distance from the rank of every value code and the overall frequencies.
    pub(crate) fn ordered(rank: Vec<u32>, overall: &[f64]) -> Self {
        let mut ranked = vec![0.0; rank.len()];
        for (v, &r) in rank.iter().enumerate() {
            ranked[r as usize] += overall.get(v).copied().unwrap_or(0.0);
        }
        GroundDistance::Ordered { rank, ranked }
    }

    /// Hierarchical ground distance: `leaf[value code]` in `hierarchy`.
    pub(crate) fn hierarchical(
        hierarchy: &crate::hierarchy::Hierarchy,
        leaf: Vec<u32>,
        overall: &[f64],
    ) -> Self {
        let mut parents = Vec::with_capacity(hierarchy.height().saturating_sub(1));
        for level in 0..hierarchy.height().saturating_sub(1) {
            let mut parent = vec![0u32; hierarchy.cardinality(level)];
            for l in 0..hierarchy.leaf_count() as u32 {
                parent[hierarchy.generalize(l, level) as usize] =
                    hierarchy.generalize(l, level + 1);
            }
            parents.push(parent);
        }
        let mut overall_leaf = vec![0.0; hierarchy.leaf_count()];
        for (v, &l) in leaf.iter().enumerate() {
            overall_leaf[l as usize] += overall.get(v).copied().unwrap_or(0.0);
        }
        GroundDistance::Hierarchical {
            leaf,
            parents,
            overall_leaf,
        }
    }

    /// EMD between a class histogram (`values` codes with `counts`) and the overall relative
    /// frequencies `overall` (by value code).
    pub(crate) fn emd(&self, values: &[u32], counts: &[u32], overall: &[f64]) -> f64 {
        match self {
            GroundDistance::Equal => equal_distance_emd(values, counts, overall),
            GroundDistance::Ordered { rank, ranked } => {
                let m = ranked.len();
                if m <= 1 {
                    return 0.0;
                }
                let total: f64 = counts.iter().map(|&c| f64::from(c)).sum();
                let mut difference: Vec<f64> = ranked.iter().map(|q| -q).collect();
                for (&v, &c) in values.iter().zip(counts) {
                    difference[rank[v as usize] as usize] += f64::from(c) / total;
                }
                let mut cumulative = 0.0;
                let mut sum = 0.0;
                for d in &difference[..m - 1] {
                    cumulative += d;
                    sum += cumulative.abs();
                }
                sum / (m - 1) as f64
            }
            GroundDistance::Hierarchical {
                leaf,
                parents,
                overall_leaf,
            } => {
                let height = parents.len();
                if height == 0 {
                    return 0.0;
                }
                let total: f64 = counts.iter().map(|&c| f64::from(c)).sum();
                let mut extra: Vec<f64> = overall_leaf.iter().map(|q| -q).collect();
                for (&v, &c) in values.iter().zip(counts) {
                    extra[leaf[v as usize] as usize] += f64::from(c) / total;
                }
                let mut cost = 0.0;
                for (level, parent) in parents.iter().enumerate() {
                    let nodes = parent.iter().map(|&p| p as usize + 1).max().unwrap_or(0);
                    let mut positive = vec![0.0; nodes];
                    let mut negative = vec![0.0; nodes];
                    let mut next = vec![0.0; nodes];
                    for (child, &e) in extra.iter().enumerate() {
                        let p = parent[child] as usize;
                        if e > 0.0 {
                            positive[p] += e;
                        } else {
                            negative[p] -= e;
                        }
                        next[p] += e;
                    }
                    let weight = (level + 1) as f64 / height as f64;
                    cost += weight
                        * positive
                            .iter()
                            .zip(&negative)
                            .map(|(p, n)| p.min(*n))
                            .sum::<f64>();
                    extra = next;
                }
                cost
            }
        }
    }
}

/// Variants of ℓ-diversity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "variant")]
pub enum LDiversity {
    /// At least `l` distinct sensitive values per class.
    Distinct {
        /// Minimum number of distinct values.
        l: usize,
    },
    /// Entropy of the sensitive values per class at least `log(l)`.
    Entropy {
        /// ℓ (the class entropy must reach log ℓ).
        l: f64,
    },
    /// Recursive (c,ℓ)-diversity: `r1 < c · (r_ℓ + … + r_m)` for counts sorted descending.
    Recursive {
        /// The constant c.
        c: f64,
        /// ℓ.
        l: usize,
    },
}

impl PrivacyModels {
    /// Plain k-anonymity with a suppression limit.
    pub fn k_anonymity(k: usize, max_suppression: f64) -> Self {
        PrivacyModels {
            k,
            max_suppression,
            l_diversity: None,
            t_closeness: None,
            t_distance: TDistance::Equal,
            k_map: None,
            delta_presence: None,
        }
    }

    /// Checks parameter ranges against the data size and the presence of sensitive columns.
    pub fn validate(&self, records: usize, sensitive_columns: usize) -> Result<()> {
        if self.k == 0 {
            return Err(AnonymizeError::InvalidParameter(
                "k must be at least 1".into(),
            ));
        }
        if self.k > records {
            return Err(AnonymizeError::KLargerThanData { k: self.k, records });
        }
        if !(0.0..=1.0).contains(&self.max_suppression) {
            return Err(AnonymizeError::InvalidParameter(
                "max_suppression must be within [0, 1]".into(),
            ));
        }
        if let Some(l) = self.l_diversity {
            if sensitive_columns == 0 {
                return Err(AnonymizeError::NoSensitiveAttribute {
                    model: "ℓ-diversity",
                });
            }
            let ok = match l {
                LDiversity::Distinct { l } => l >= 1,
                LDiversity::Entropy { l } => l >= 1.0,
                LDiversity::Recursive { c, l } => l >= 2 && c > 0.0,
            };
            if !ok {
                return Err(AnonymizeError::InvalidParameter(
                    "ℓ must be at least 1 (2 for recursive) and c positive".into(),
                ));
            }
        }
        if let Some(d) = &self.delta_presence
            && !(0.0 <= d.delta_min && d.delta_min <= d.delta_max && d.delta_max <= 1.0)
        {
            return Err(AnonymizeError::InvalidParameter(
                "δ-presence needs 0 ≤ delta_min ≤ delta_max ≤ 1".into(),
            ));
        }
        if self.k_map == Some(0) {
            return Err(AnonymizeError::InvalidParameter(
                "k of k-map must be at least 1".into(),
            ));
        }
        if let Some(t) = self.t_closeness {
            if sensitive_columns == 0 {
                return Err(AnonymizeError::NoSensitiveAttribute {
                    model: "t-closeness",
                });
            }
            if !(0.0..=1.0).contains(&t) {
                return Err(AnonymizeError::InvalidParameter(
                    "t must be within [0, 1]".into(),
                ));
            }
        }
        Ok(())
    }

    /// Largest number of records that may be suppressed in a data set of `records`.
    pub fn suppression_budget(&self, records: usize) -> usize {
        (self.max_suppression * records as f64 + 1e-9).floor() as usize
    }

    /// Whether the models need per-class sensitive histograms.
    pub(crate) fn needs_sensitive(&self) -> bool {
        self.l_diversity.is_some() || self.t_closeness.is_some()
    }

    /// Whether a node's classes must be evaluated one by one (beyond their sizes).
    pub(crate) fn needs_class_checks(&self) -> bool {
        self.needs_sensitive() || self.k_map.is_some() || self.delta_presence.is_some()
    }

    /// Whether acceptability is monotone along generalization, so that the search may tag
    /// all generalizations of an acceptable node (false with δ-presence).
    pub(crate) fn is_monotone(&self) -> bool {
        self.delta_presence.is_none()
    }

    /// Checks ℓ-diversity and t-closeness on one class histogram (`counts` of the values present,
    /// `values` their codes), given the overall relative frequencies of the attribute.
    pub(crate) fn sensitive_ok(
        &self,
        values: &[u32],
        counts: &[u32],
        overall: &[f64],
        ground: &GroundDistance,
    ) -> bool {
        if let Some(model) = self.l_diversity {
            let ok = match model {
                LDiversity::Distinct { l } => counts.len() >= l,
                LDiversity::Entropy { l } => entropy(counts) >= l.ln() - 1e-12,
                LDiversity::Recursive { c, l } => recursive_ok(counts, c, l),
            };
            if !ok {
                return false;
            }
        }
        if let Some(t) = self.t_closeness
            && ground.emd(values, counts, overall) > t + 1e-12
        {
            return false;
        }
        true
    }
}

/// Shannon entropy (natural log) of a histogram.
pub(crate) fn entropy(counts: &[u32]) -> f64 {
    let total: f64 = counts.iter().map(|&c| f64::from(c)).sum();
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / total;
            -p * p.ln()
        })
        .sum()
}

fn recursive_ok(counts: &[u32], c: f64, l: usize) -> bool {
    if counts.len() < l {
        return false;
    }
    let mut sorted: Vec<u32> = counts.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let tail: f64 = sorted[l - 1..].iter().map(|&x| f64::from(x)).sum();
    f64::from(sorted[0]) < c * tail
}

/// Earth mover's distance with equal ground distances: half the L1 distance between the class
/// distribution and the overall distribution.
pub(crate) fn equal_distance_emd(values: &[u32], counts: &[u32], overall: &[f64]) -> f64 {
    let total: f64 = counts.iter().map(|&c| f64::from(c)).sum();
    let mut covered = 0.0;
    let mut distance = 0.0;
    for (&v, &c) in values.iter().zip(counts) {
        let q = overall[v as usize];
        covered += q;
        distance += (f64::from(c) / total - q).abs();
    }
    // Values absent from the class contribute their overall frequency.
    0.5 * (distance + (1.0 - covered).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l_diversity_variants() {
        let mut m = PrivacyModels::k_anonymity(2, 0.0);
        m.l_diversity = Some(LDiversity::Distinct { l: 2 });
        assert!(m.sensitive_ok(&[0, 1], &[5, 1], &[0.5, 0.5], &GroundDistance::Equal));
        assert!(!m.sensitive_ok(&[0], &[6], &[0.5, 0.5], &GroundDistance::Equal));
        m.l_diversity = Some(LDiversity::Entropy { l: 2.0 });
        assert!(m.sensitive_ok(&[0, 1], &[3, 3], &[0.5, 0.5], &GroundDistance::Equal));
        assert!(!m.sensitive_ok(&[0, 1], &[5, 1], &[0.5, 0.5], &GroundDistance::Equal));
        m.l_diversity = Some(LDiversity::Recursive { c: 3.0, l: 2 });
        // r1 = 5 < 3 · 2 = 6
        assert!(m.sensitive_ok(
            &[0, 1, 2],
            &[5, 1, 1],
            &[0.3, 0.3, 0.4],
            &GroundDistance::Equal
        ));
        // r1 = 7 ≥ 3 · 2
        assert!(!m.sensitive_ok(
            &[0, 1, 2],
            &[7, 1, 1],
            &[0.3, 0.3, 0.4],
            &GroundDistance::Equal
        ));
    }

    #[test]
    fn t_closeness_equal_distance() {
        let overall = [0.5, 0.25, 0.25];
        // class all value 0: 0.5 * (0.5 + 0.25 + 0.25)
        assert!((equal_distance_emd(&[0], &[4], &overall) - 0.5).abs() < 1e-12);
        assert!(equal_distance_emd(&[0, 1, 2], &[2, 1, 1], &overall).abs() < 1e-12);
        let mut m = PrivacyModels::k_anonymity(1, 0.0);
        m.t_closeness = Some(0.4);
        assert!(!m.sensitive_ok(&[0], &[4], &overall, &GroundDistance::Equal));
    }

    #[test]
    fn validation() {
        let m = PrivacyModels::k_anonymity(10, 0.0);
        assert!(matches!(
            m.validate(5, 0),
            Err(AnonymizeError::KLargerThanData { k: 10, records: 5 })
        ));
        assert!(PrivacyModels::k_anonymity(0, 0.0).validate(5, 0).is_err());
        assert!(PrivacyModels::k_anonymity(2, 1.5).validate(5, 0).is_err());
        let mut m = PrivacyModels::k_anonymity(2, 0.0);
        m.t_closeness = Some(0.2);
        assert!(matches!(
            m.validate(5, 0),
            Err(AnonymizeError::NoSensitiveAttribute { .. })
        ));
        assert_eq!(
            PrivacyModels::k_anonymity(2, 0.04).suppression_budget(30162),
            1206
        );
    }

    #[test]
    fn ordered_emd_matches_li_et_al() {
        // Li et al. 2007 example: salaries 3k..11k, overall uniform over 9 values; the class
        // {3k, 4k, 5k} has ordered distance 0.375, {6k, 8k, 11k} 0.167.
        let overall = vec![1.0 / 9.0; 9];
        let ground = GroundDistance::ordered((0..9).collect(), &overall);
        let low = ground.emd(&[0, 1, 2], &[1, 1, 1], &overall);
        assert!((low - 0.375).abs() < 1e-9, "{low}");
        let spread = ground.emd(&[3, 5, 8], &[1, 1, 1], &overall);
        assert!((spread - 1.0 / 6.0).abs() < 1e-9, "{spread}");
        assert!(
            ground
                .emd(&(0..9).collect::<Vec<_>>(), &[1; 9], &overall)
                .abs()
                < 1e-12
        );
    }

    #[test]
    fn hierarchical_emd_matches_li_et_al() {
        // Two groups of three leaves under `*` (height 3): a class all in one group of a
        // uniform overall distribution moves 1/2 of the mass across the root (cost 1/2) plus
        // within-group corrections.
        let h = crate::hierarchy::Hierarchy::from_rows(
            "dx",
            ["a", "b", "c"]
                .iter()
                .map(|v| vec![v.to_string(), "abc".into(), "*".into()])
                .chain(
                    ["d", "e", "f"]
                        .iter()
                        .map(|v| vec![v.to_string(), "def".into(), "*".into()]),
                )
                .collect(),
        )
        .unwrap();
        let overall = vec![1.0 / 6.0; 6];
        let ground = GroundDistance::hierarchical(&h, (0..6).collect(), &overall);
        // Class {a, b, c} uniform: all of group def's mass (1/2) moves across the root.
        let d = ground.emd(&[0, 1, 2], &[1, 1, 1], &overall);
        assert!((d - 0.5).abs() < 1e-9, "{d}");
        // Class all `a`: 1/2 across the root (weight 1) + 1/3 within abc (weight 1/2).
        let d = ground.emd(&[0], &[3], &overall);
        assert!((d - (0.5 + 1.0 / 6.0)).abs() < 1e-9, "{d}");
        assert!(ground.emd(&[0, 1, 2, 3, 4, 5], &[1; 6], &overall).abs() < 1e-12);
    }
}
