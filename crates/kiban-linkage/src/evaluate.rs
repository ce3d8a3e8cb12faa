//! Evaluation of a linkage against a ground truth: pairwise and cluster precision and recall.
//!
//! Both sides are assignments `record_id → person_id` (CSV files with those two columns, extra
//! columns ignored). A record missing from the prediction counts as a person of its own.

use rustc_hash::FxHashMap;
use std::path::{Path, PathBuf};

/// Why an assignment file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    /// The file could not be read or parsed.
    #[error("{path}: line {line}: cannot read assignment CSV")]
    Read {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when unknown).
        line: u64,
    },
    /// The header lacks a column.
    #[error("{path}: header: missing column `{column}`")]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column.
        column: &'static str,
    },
}

/// Pairwise and cluster quality of a linkage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Records evaluated (those of the truth).
    pub records: u64,
    /// Pairs of records in one true person.
    pub true_pairs: u64,
    /// Pairs of records in one predicted person.
    pub predicted_pairs: u64,
    /// Pairs in both.
    pub correct_pairs: u64,
    /// correct / predicted (1 when nothing was predicted).
    pub pairwise_precision: f64,
    /// correct / true (1 when there is nothing to find).
    pub pairwise_recall: f64,
    /// True persons.
    pub true_clusters: u64,
    /// Predicted persons.
    pub predicted_clusters: u64,
    /// Predicted persons whose records are exactly one true person's.
    pub exact_clusters: u64,
    /// exact / predicted.
    pub cluster_precision: f64,
    /// exact / true.
    pub cluster_recall: f64,
}

fn pairs(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

/// Evaluates `predicted` against `truth` (both `record_id → person_id`) over the truth's records.
pub fn evaluate(
    truth: &FxHashMap<Box<str>, Box<str>>,
    predicted: &FxHashMap<Box<str>, Box<str>>,
) -> Evaluation {
    let mut true_size: FxHashMap<&str, u64> = FxHashMap::default();
    let mut predicted_size: FxHashMap<(bool, &str), u64> = FxHashMap::default();
    let mut both: FxHashMap<(&str, (bool, &str)), u64> = FxHashMap::default();
    for (record, person) in truth {
        // A record absent from the prediction is alone: key it by its record id.
        let predicted_person = predicted
            .get(record)
            .map_or((false, record.as_ref()), |p| (true, p.as_ref()));
        *true_size.entry(person).or_default() += 1;
        *predicted_size.entry(predicted_person).or_default() += 1;
        *both.entry((person, predicted_person)).or_default() += 1;
    }
    let true_pairs: u64 = true_size.values().map(|&n| pairs(n)).sum();
    let predicted_pairs: u64 = predicted_size.values().map(|&n| pairs(n)).sum();
    let correct_pairs: u64 = both.values().map(|&n| pairs(n)).sum();
    let exact_clusters = both
        .iter()
        .filter(|((t, p), n)| true_size[t] == **n && predicted_size[p] == **n)
        .count() as u64;
    Evaluation {
        records: truth.len() as u64,
        true_pairs,
        predicted_pairs,
        correct_pairs,
        pairwise_precision: ratio(correct_pairs, predicted_pairs),
        pairwise_recall: ratio(correct_pairs, true_pairs),
        true_clusters: true_size.len() as u64,
        predicted_clusters: predicted_size.len() as u64,
        exact_clusters,
        cluster_precision: ratio(exact_clusters, predicted_size.len() as u64),
        cluster_recall: ratio(exact_clusters, true_size.len() as u64),
    }
}

/// The assigned person of each record id, in order; "" for a record the assignment lacks.
pub fn person_of_each_record<'a>(
    record_ids: &[Box<str>],
    assignment: &'a FxHashMap<Box<str>, Box<str>>,
) -> Vec<&'a str> {
    record_ids
        .iter()
        .map(|id| assignment.get(id).map_or("", |p| p.as_ref()))
        .collect()
}

/// Reads `record_id,person_id` (more columns allowed) into an assignment.
pub fn read_assignment(path: &Path) -> Result<FxHashMap<Box<str>, Box<str>>, EvaluateError> {
    let read_error = |line: u64| EvaluateError::Read {
        path: path.to_owned(),
        line,
    };
    let mut reader = csv::Reader::from_path(path).map_err(|_| read_error(0))?;
    let headers = reader.headers().map_err(|_| read_error(1))?.clone();
    let column = |name: &'static str| {
        headers
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}') == name)
            .ok_or(EvaluateError::MissingColumn {
                path: path.to_owned(),
                column: name,
            })
    };
    let (record_at, person_at) = (column("record_id")?, column("person_id")?);
    let mut out = FxHashMap::default();
    for row in reader.records() {
        let row = row.map_err(|e| read_error(e.position().map_or(0, |p| p.line())))?;
        let line = row.position().map_or(0, |p| p.line());
        let (Some(record), Some(person)) = (row.get(record_at), row.get(person_at)) else {
            return Err(read_error(line));
        };
        out.insert(record.into(), person.into());
    }
    Ok(out)
}

/// Evaluates the links file `links` against the truth file `truth`.
pub fn evaluate_files(links: &Path, truth: &Path) -> Result<Evaluation, EvaluateError> {
    Ok(evaluate(&read_assignment(truth)?, &read_assignment(links)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(pairs: &[(&str, &str)]) -> FxHashMap<Box<str>, Box<str>> {
        pairs
            .iter()
            .map(|(r, p)| ((*r).into(), (*p).into()))
            .collect()
    }

    #[test]
    fn pairwise_and_cluster_scores() {
        // Truth: {a,b,c}, {d}. Prediction: {a,b}, {c,d}.
        let truth = assignment(&[("a", "1"), ("b", "1"), ("c", "1"), ("d", "2")]);
        let predicted = assignment(&[("a", "x"), ("b", "x"), ("c", "y"), ("d", "y")]);
        let e = evaluate(&truth, &predicted);
        assert_eq!(
            (e.true_pairs, e.predicted_pairs, e.correct_pairs),
            (3, 2, 1)
        );
        assert!((e.pairwise_precision - 0.5).abs() < 1e-12);
        assert!((e.pairwise_recall - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(e.exact_clusters, 0);
        let perfect = evaluate(&truth, &truth);
        assert_eq!(perfect.exact_clusters, 2);
        assert_eq!(perfect.cluster_precision, 1.0);
        assert_eq!(perfect.pairwise_recall, 1.0);
    }

    #[test]
    fn missing_predictions_are_singletons() {
        let truth = assignment(&[("a", "1"), ("b", "1"), ("c", "2")]);
        let predicted = assignment(&[("a", "x")]);
        let e = evaluate(&truth, &predicted);
        assert_eq!(e.predicted_pairs, 0);
        assert_eq!(e.exact_clusters, 1);
        assert_eq!(e.predicted_clusters, 3);
    }
}
