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
    /// t-closeness (equal-distance EMD) applied to every sensitive attribute.
    #[serde(default)]
    pub t_closeness: Option<f64>,
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

    /// Checks ℓ-diversity and t-closeness on one class histogram (`counts` of the values present,
    /// `values` their codes), given the overall relative frequencies of the attribute.
    pub(crate) fn sensitive_ok(&self, values: &[u32], counts: &[u32], overall: &[f64]) -> bool {
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
            && equal_distance_emd(values, counts, overall) > t + 1e-12
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
        assert!(m.sensitive_ok(&[0, 1], &[5, 1], &[0.5, 0.5]));
        assert!(!m.sensitive_ok(&[0], &[6], &[0.5, 0.5]));
        m.l_diversity = Some(LDiversity::Entropy { l: 2.0 });
        assert!(m.sensitive_ok(&[0, 1], &[3, 3], &[0.5, 0.5]));
        assert!(!m.sensitive_ok(&[0, 1], &[5, 1], &[0.5, 0.5]));
        m.l_diversity = Some(LDiversity::Recursive { c: 3.0, l: 2 });
        // r1 = 5 < 3 · 2 = 6
        assert!(m.sensitive_ok(&[0, 1, 2], &[5, 1, 1], &[0.3, 0.3, 0.4]));
        // r1 = 7 ≥ 3 · 2
        assert!(!m.sensitive_ok(&[0, 1, 2], &[7, 1, 1], &[0.3, 0.3, 0.4]));
    }

    #[test]
    fn t_closeness_equal_distance() {
        let overall = [0.5, 0.25, 0.25];
        // class all value 0: 0.5 * (0.5 + 0.25 + 0.25)
        assert!((equal_distance_emd(&[0], &[4], &overall) - 0.5).abs() < 1e-12);
        assert!(equal_distance_emd(&[0, 1, 2], &[2, 1, 1], &overall).abs() < 1e-12);
        let mut m = PrivacyModels::k_anonymity(1, 0.0);
        m.t_closeness = Some(0.4);
        assert!(!m.sensitive_ok(&[0], &[4], &overall));
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
}
