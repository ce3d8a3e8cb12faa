//! Independent checker: recomputes the privacy claims of a report from the released file alone.
//!
//! Written without any of the engine's code: plain string grouping of the released rows.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Privacy properties measured on a released file.
#[derive(Debug)]
pub struct Measured {
    pub rows: usize,
    pub suppressed: usize,
    pub classes: usize,
    pub k: usize,
    pub class_sizes: BTreeMap<usize, usize>,
    /// Per sensitive column: (min distinct, min exp(entropy), max equal-distance EMD).
    pub sensitive: Vec<(usize, f64, f64)>,
    pub prosecutor_max: f64,
    pub prosecutor_mean: f64,
    /// Marketer risk: expected share of released records re-identified when an attacker links
    /// every released record to one of its class at random (Σ over records of 1/|class|,
    /// divided by the released records).
    pub marketer: f64,
    /// Share of released records alone in their class.
    pub sample_uniques: f64,
}

/// Reads `release` (`separator`-delimited, header) and measures it. Rows whose quasi-identifiers
/// are all `*` are the suppressed ones.
pub fn measure(release: &Path, separator: u8, qis: &[&str], sensitive: &[&str]) -> Measured {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(separator)
        .from_path(release)
        .unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let position = |name: &str| header.iter().position(|h| h == name).unwrap();
    let qi_positions: Vec<usize> = qis.iter().map(|q| position(q)).collect();
    let sensitive_positions: Vec<usize> = sensitive.iter().map(|s| position(s)).collect();
    let mut groups: HashMap<Vec<String>, Vec<Vec<String>>> = HashMap::new();
    let mut overall: Vec<HashMap<String, usize>> = vec![HashMap::new(); sensitive.len()];
    let mut rows = 0;
    let mut suppressed = 0;
    for record in reader.records() {
        let record = record.unwrap();
        rows += 1;
        let key: Vec<String> = qi_positions
            .iter()
            .map(|&i| record[i].to_string())
            .collect();
        let values: Vec<String> = sensitive_positions
            .iter()
            .map(|&i| record[i].to_string())
            .collect();
        for (s, v) in values.iter().enumerate() {
            *overall[s].entry(v.clone()).or_default() += 1;
        }
        if key.iter().all(|v| v == "*") {
            suppressed += 1;
        } else {
            groups.entry(key).or_default().push(values);
        }
    }
    let mut class_sizes = BTreeMap::new();
    for members in groups.values() {
        *class_sizes.entry(members.len()).or_insert(0) += 1;
    }
    let k = groups.values().map(Vec::len).min().unwrap_or(0);
    let released = rows - suppressed;
    // Summed per record, not per class, so that it is a different computation from the
    // engine's classes / records.
    let expected_matches: f64 = groups
        .values()
        .flat_map(|members| std::iter::repeat_n(1.0 / members.len() as f64, members.len()))
        .sum();
    let alone = groups.values().filter(|m| m.len() == 1).count();
    let sensitive_measures = (0..sensitive.len())
        .map(|s| {
            let total: usize = overall[s].values().sum();
            let mut min_distinct = usize::MAX;
            let mut min_entropy_l = f64::INFINITY;
            let mut max_t: f64 = 0.0;
            for members in groups.values() {
                let mut counts: HashMap<&str, usize> = HashMap::new();
                for m in members {
                    *counts.entry(m[s].as_str()).or_default() += 1;
                }
                min_distinct = min_distinct.min(counts.len());
                let n = members.len() as f64;
                let h: f64 = counts
                    .values()
                    .map(|&c| {
                        let p = c as f64 / n;
                        -p * p.ln()
                    })
                    .sum();
                min_entropy_l = min_entropy_l.min(h.exp());
                let mut l1 = 0.0;
                for (value, &c) in &overall[s] {
                    let q = c as f64 / total as f64;
                    let p = counts.get(value.as_str()).copied().unwrap_or(0) as f64 / n;
                    l1 += (p - q).abs();
                }
                max_t = max_t.max(l1 / 2.0);
            }
            (min_distinct, min_entropy_l, max_t)
        })
        .collect();
    Measured {
        rows,
        suppressed,
        classes: groups.len(),
        k,
        class_sizes,
        sensitive: sensitive_measures,
        prosecutor_max: if k > 0 { 1.0 / k as f64 } else { 0.0 },
        prosecutor_mean: if released > 0 {
            groups.len() as f64 / released as f64
        } else {
            0.0
        },
        marketer: if released > 0 {
            expected_matches / released as f64
        } else {
            0.0
        },
        sample_uniques: if released > 0 {
            alone as f64 / released as f64
        } else {
            0.0
        },
    }
}
