//! SafePub-style (ε, δ)-differential privacy on Adult: the release is k-anonymous for the
//! derived k (recomputed from the released file alone), and k follows Li, Qardaji and Su's
//! bound, recomputed here independently of the crate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use kiban_anonymize::{
    AnonymizeError, DifferentialPrivacy, JobConfig, PrivacyModels, SearchStrategy, run,
};

const ALL: [&str; 9] = [
    "sex",
    "age",
    "race",
    "marital-status",
    "education",
    "native-country",
    "workclass",
    "occupation",
    "salary-class",
];

fn adult_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/adult")
}

fn job(out: &Path, epsilon: f64, delta: f64, seed: u64) -> JobConfig {
    let mut job = JobConfig::new(
        adult_dir().join("adult.csv"),
        out,
        ALL.iter().map(|s| s.to_string()).collect(),
        PrivacyModels::k_anonymity(2, 0.0),
    );
    job.hierarchy_dir = Some(adult_dir());
    // SafePub's defaults: ε_search = 0.1 over 100 steps.
    job.differential_privacy = Some(DifferentialPrivacy::new(epsilon, delta, Some(seed)));
    job
}

/// ln n! for n = 0..=max.
fn ln_factorials(max: usize) -> Vec<f64> {
    let mut table = vec![0.0; max + 1];
    for n in 1..=max {
        table[n] = table[n - 1] + (n as f64).ln();
    }
    table
}

/// δ of Li, Qardaji, Su (2012), Theorem 5, each binomial term from log-factorials.
fn independent_delta(k: usize, epsilon: f64, beta: f64) -> f64 {
    let gamma = (epsilon.exp() - 1.0 + beta) / epsilon.exp();
    let c = gamma * (gamma / beta).ln() - (gamma - beta);
    let n_m = ((k as f64 / gamma) - 1.0).ceil().max(1.0) as usize;
    // Up to where e^(−n c) is negligible against any δ of interest.
    let n_max = n_m + (60.0 / c) as usize;
    let lf = ln_factorials(n_max);
    let mut worst: f64 = 0.0;
    for n in n_m..=n_max {
        let first = (gamma * n as f64).floor() as usize + 1;
        let tail: f64 = (first..=n)
            .map(|j| {
                (lf[n] - lf[j] - lf[n - j]
                    + j as f64 * beta.ln()
                    + (n - j) as f64 * (1.0 - beta).ln())
                .exp()
            })
            .sum();
        worst = worst.max(tail);
    }
    worst
}

#[test]
fn adult_release_is_k_anonymous_for_the_derived_k() {
    let dir = tempfile::tempdir().unwrap();
    let (epsilon, delta) = (2.0, 1e-5);
    let out = dir.path().join("dp.csv");
    let report = run(&job(&out, epsilon, delta, 7)).unwrap();
    let dp = report.differential_privacy.clone().unwrap();
    assert_eq!(report.search, SearchStrategy::DifferentiallyPrivate);

    // The budget split and β as SafePub: ε_anon = ε − ε_search, β = 1 − e^(−ε_anon).
    let epsilon_anonymization = epsilon - 0.1;
    assert!((dp.epsilon_anonymization - epsilon_anonymization).abs() < 1e-12);
    let beta = 1.0 - (-epsilon_anonymization).exp();
    assert!((dp.beta - beta).abs() < 1e-12);
    // k is the smallest with δ(k) ≤ δ (δ(k) decreases in k).
    assert!(independent_delta(dp.k, epsilon_anonymization, beta) <= delta);
    assert!(independent_delta(dp.k - 1, epsilon_anonymization, beta) > delta);
    assert_eq!(report.privacy.k, dp.k);

    // The sample: about β of the records (within 6 standard deviations).
    let n = 30_162.0;
    let sd = (n * beta * (1.0 - beta)).sqrt();
    assert!((dp.sampled_records as f64 - n * beta).abs() < 6.0 * sd);
    assert_eq!(report.records, dp.sampled_records);

    // From the released file alone: every released tuple occurs at least k times, no `*` row.
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap().split(';').count(), 9);
    let mut classes: HashMap<&str, usize> = HashMap::new();
    for line in lines {
        assert!(!line.contains('*') || line.split(';').any(|v| v != "*"));
        *classes.entry(line).or_insert(0) += 1;
    }
    let released: usize = classes.values().sum();
    assert_eq!(released, dp.sampled_records - report.suppressed_records);
    let smallest = classes.values().copied().min().unwrap();
    assert!(smallest >= dp.k, "a class of {smallest} < k = {}", dp.k);
    assert_eq!(smallest, report.k);
    assert_eq!(classes.len(), report.equivalence_classes);

    // Seeded: the same seed gives the same release; another seed another sample.
    let again = dir.path().join("again.csv");
    let second = run(&job(&again, epsilon, delta, 7)).unwrap();
    assert_eq!(std::fs::read(&again).unwrap(), text.as_bytes());
    assert_eq!(second.levels, report.levels);
    let other = run(&job(&dir.path().join("other.csv"), epsilon, delta, 8)).unwrap();
    assert_ne!(
        other.differential_privacy.unwrap().sampled_records,
        dp.sampled_records
    );
}

#[test]
fn non_quasi_identifier_columns_and_bad_parameters_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dp.csv");
    let mut partial = job(&out, 2.0, 1e-5, 1);
    partial.quasi_identifiers.truncate(8);
    let e = run(&partial).unwrap_err();
    assert!(e.to_string().contains("salary-class"), "{e}");
    partial.identifying = vec!["salary-class".into()];
    run(&partial).unwrap();
    assert!(out.exists());
    std::fs::remove_file(&out).unwrap();
    for (epsilon, delta) in [(0.1, 1e-5), (2.0, 0.0), (2.0, 1.0)] {
        assert!(matches!(
            run(&job(&out, epsilon, delta, 1)),
            Err(AnonymizeError::InvalidParameter(_))
        ));
    }
    let mut streamed = job(&out, 2.0, 1e-5, 1);
    streamed.streaming = Some(true);
    assert!(matches!(
        run(&streamed),
        Err(AnonymizeError::NotStreamable { .. })
    ));
    assert!(!out.exists());
}

#[test]
fn html_report_shows_the_differential_privacy_parameters_and_the_choice() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = job(&dir.path().join("dp.csv"), 2.0, 1e-5, 11);
    let html_path = dir.path().join("report.html");
    job.report_html = Some(html_path.clone());
    let json_path = dir.path().join("report.json");
    job.report = Some(json_path.clone());
    let report = run(&job).unwrap();
    let dp = report.differential_privacy.clone().unwrap();
    let html = std::fs::read_to_string(&html_path).unwrap();
    let section = &html[html
        .find("<h2>差分プライバシー (SafePub) / Differential privacy (SafePub)</h2>")
        .expect("a DP section")..];
    for expected in [
        format!("<td class=\"num\">{}</td>", dp.epsilon),
        format!("<td class=\"num\">{:e}</td>", dp.delta),
        format!("<td class=\"num\">{:.6}</td>", dp.beta),
        format!("<td class=\"num\">{}</td>", dp.k),
        format!("<td class=\"num\">{:.6}</td>", dp.score),
        format!("sex={}, age={}", report.levels[0], report.levels[1]),
    ] {
        assert!(section.contains(&expected), "{expected} missing");
    }
    // The score is SafePub's: minus the granularity cost of the input over its sensitivity,
    // so within [−(input records)·q / sensitivity, 0].
    assert_eq!(dp.score_sensitivity, ((dp.k - 1).max(1) * ALL.len()) as f64);
    let worst = -((dp.input_records * ALL.len()) as f64) / dp.score_sensitivity;
    assert!(dp.score < 0.0 && dp.score >= worst, "{}", dp.score);
    let json = std::fs::read_to_string(&json_path).unwrap();
    assert!(json.contains("\"score\""), "{json}");
}
