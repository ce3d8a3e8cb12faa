//! Acceptance tests on the Adult benchmark (read from ../shared, never copied) and the
//! independent re-check of every privacy claim from the released file.

mod checker;

use std::path::{Path, PathBuf};

use kiban_anonymize::{
    AnonymizeError, JobConfig, LDiversity, Metric, PrivacyModels, Report, SearchStrategy, run,
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

const EIGHT: [&str; 8] = [
    "sex",
    "age",
    "race",
    "marital-status",
    "education",
    "native-country",
    "workclass",
    "salary-class",
];

fn adult_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/adult")
}

fn job(out: &Path, qis: &[&str], k: usize, suppression: f64) -> JobConfig {
    let mut job = JobConfig::new(
        adult_dir().join("adult.csv"),
        out,
        qis.iter().map(|s| s.to_string()).collect(),
        PrivacyModels::k_anonymity(k, suppression),
    );
    job.hierarchy_dir = Some(adult_dir());
    job
}

/// Re-measures the release and asserts it agrees with the report.
fn assert_report_matches_release(report: &Report, release: &Path, qis: &[&str], sens: &[&str]) {
    let m = checker::measure(release, b';', qis, sens);
    assert_eq!(m.rows, report.records, "rows (suppressed rows kept)");
    assert_eq!(m.suppressed, report.suppressed_records, "suppressed");
    assert_eq!(m.classes, report.equivalence_classes, "classes");
    assert_eq!(m.k, report.k, "k");
    let histogram: Vec<(usize, usize)> = report
        .class_size_histogram
        .iter()
        .map(|b| (b.size, b.classes))
        .collect();
    assert_eq!(
        m.class_sizes.clone().into_iter().collect::<Vec<_>>(),
        histogram,
        "class sizes"
    );
    assert!((m.prosecutor_max - report.risk.prosecutor_max).abs() < 1e-12);
    assert!((m.prosecutor_mean - report.risk.prosecutor_mean).abs() < 1e-12);
    assert!((m.marketer - report.risk.marketer).abs() < 1e-9, "marketer");
    assert!((m.sample_uniques - report.risk.sample_uniques).abs() < 1e-12);
    // Records at risk and the risk distribution, from the measured class sizes.
    let at_risk: usize = m
        .class_sizes
        .iter()
        .filter(|(size, _)| 1.0 / **size as f64 > report.risk.threshold)
        .map(|(size, classes)| size * classes)
        .sum();
    assert_eq!(at_risk, report.risk.records_at_risk, "records at risk");
    let binned: usize = report
        .risk
        .records_by_prosecutor_risk
        .iter()
        .map(|b| b.records)
        .sum();
    assert_eq!(
        binned,
        m.rows - m.suppressed,
        "risk distribution covers every record"
    );
    assert_eq!(m.sensitive.len(), report.sensitive.len());
    for ((distinct, entropy_l, t), claimed) in m.sensitive.iter().zip(&report.sensitive) {
        assert_eq!(*distinct, claimed.distinct_l, "distinct ℓ");
        assert!((entropy_l - claimed.entropy_l).abs() < 1e-9, "entropy ℓ");
        assert!((t - claimed.t).abs() < 1e-9, "t");
    }
}

fn check_optimum(k: usize, suppression: f64, levels: [usize; 9], loss: f64) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("release.csv");
    let report = run(&job(&out, &ALL, k, suppression)).unwrap();
    assert_eq!(report.levels, levels, "k={k} suppression={suppression}");
    assert_eq!(report.search, SearchStrategy::Optimal);
    let relative = (report.information_loss - loss).abs() / loss;
    assert!(
        relative < 1e-9,
        "loss {} vs ARX {loss}",
        report.information_loss
    );
    assert!(report.k >= k);
    assert!(report.suppressed_records as f64 <= suppression * report.records as f64);
    assert_report_matches_release(&report, &out, &ALL, &[]);
}

#[test]
fn adult_k5_4_percent() {
    check_optimum(5, 0.04, [1, 0, 1, 1, 3, 2, 2, 0, 1], 255559.85455731067);
}

#[test]
fn adult_k100_4_percent() {
    check_optimum(100, 0.04, [1, 1, 1, 1, 3, 2, 2, 1, 1], 379417.3460570988);
}

#[test]
fn adult_k5_no_suppression() {
    check_optimum(5, 0.0, [1, 2, 1, 1, 3, 2, 2, 1, 1], 407289.5388925293);
}

#[test]
fn adult_k100_no_suppression() {
    check_optimum(100, 0.0, [0, 4, 1, 1, 3, 2, 2, 1, 1], 453196.8932458743);
}

#[test]
fn adult_eight_qis_entropy_with_sensitive_occupation() {
    for k in [5, 10] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("release.csv");
        let mut job = job(&out, &EIGHT, k, 0.0);
        job.sensitive = vec!["occupation".into()];
        let report = run(&job).unwrap();
        assert_eq!(report.levels, vec![1, 1, 1, 1, 3, 2, 2, 1], "k={k}");
        assert_eq!(report.equivalence_classes, 30);
        assert_report_matches_release(&report, &out, &EIGHT, &["occupation"]);
    }
}

#[test]
fn adult_eight_qis_loss_metric_k5_5_percent() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("release.csv");
    let mut job = job(&out, &EIGHT, 5, 0.05);
    job.sensitive = vec!["occupation".into()];
    job.metric = Metric::Loss;
    let report = run(&job).unwrap();
    assert_report_matches_release(&report, &out, &EIGHT, &["occupation"]);
    assert!(report.k >= 5);
    assert!(report.suppressed_records <= 1508);
    // ARX (loss metric, its default aggregation): [0,3,0,0,2,1,1,0], 1,346 suppressed,
    // 397 classes. kiban averages the per-attribute losses arithmetically.
    assert_eq!(report.levels, vec![0, 3, 0, 0, 2, 1, 1, 0]);
    assert_eq!(report.suppressed_records, 1346);
    assert_eq!(report.equivalence_classes, 397);
}

#[test]
fn l_diversity_and_t_closeness_claims_hold_on_the_release() {
    let models = [
        (Some(LDiversity::Distinct { l: 3 }), None),
        (Some(LDiversity::Entropy { l: 2.5 }), None),
        (Some(LDiversity::Recursive { c: 4.0, l: 3 }), None),
        (None, Some(0.3)),
    ];
    for (l, t) in models {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("release.csv");
        let mut job = job(&out, &EIGHT, 5, 0.04);
        job.sensitive = vec!["occupation".into()];
        job.privacy.l_diversity = l;
        job.privacy.t_closeness = t;
        let report = run(&job).unwrap();
        assert_report_matches_release(&report, &out, &EIGHT, &["occupation"]);
        match l {
            Some(LDiversity::Distinct { l }) | Some(LDiversity::Recursive { l, .. }) => {
                assert!(report.l.unwrap() >= l as f64)
            }
            Some(LDiversity::Entropy { l }) => assert!(report.l.unwrap() >= l - 1e-9),
            None => assert!(report.l.is_none()),
        }
        if let Some(t) = t {
            assert!(report.t.unwrap() <= t + 1e-12);
        }
        assert!(report.suppressed_records as f64 <= 0.04 * report.records as f64);
    }
}

#[test]
fn heuristic_search_gives_an_acceptable_release() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("release.csv");
    let mut job = job(&out, &ALL, 5, 0.04);
    job.search.max_optimal_nodes = 0;
    job.search.heuristic_time_limit_ms = 20_000;
    let report = run(&job).unwrap();
    assert_eq!(report.search, SearchStrategy::Heuristic);
    assert!(report.k >= 5);
    assert!(report.suppressed_records <= 1206);
    // Never better than the optimum.
    assert!(report.information_loss >= 255559.85455731067 * (1.0 - 1e-9));
    assert_report_matches_release(&report, &out, &ALL, &[]);
}

#[test]
fn every_metric_gives_a_valid_release_on_the_subset() {
    for metric in [
        Metric::Entropy,
        Metric::Loss,
        Metric::Discernibility,
        Metric::Aecs,
        Metric::Height,
        Metric::Precision,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("release.csv");
        let mut job = job(&out, &EIGHT, 3, 0.02);
        job.input = adult_dir().join("adult_subset.csv");
        job.metric = metric;
        let report = run(&job).unwrap();
        assert!(report.k >= 3, "{metric:?}");
        assert_report_matches_release(&report, &out, &EIGHT, &[]);
        let json = serde_json::to_value(&report).unwrap();
        assert!(json["levels"].is_array() && json["information_loss"].is_number());
    }
}

#[test]
fn suppressed_rows_can_be_dropped_and_report_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("release.csv");
    let mut job = job(&out, &ALL, 5, 0.04);
    job.drop_suppressed = true;
    job.report = Some(dir.path().join("report.json"));
    let report = run(&job).unwrap();
    let m = checker::measure(&out, b';', &ALL, &[]);
    assert_eq!(m.rows, report.records - report.suppressed_records);
    assert_eq!(m.suppressed, 0);
    assert_eq!(m.k, report.k);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(
        json["levels"],
        serde_json::json!([1, 0, 1, 1, 3, 2, 2, 0, 1])
    );
    assert_eq!(json["suppressed_records"], report.suppressed_records);
}

// ---- bad input: a clear error and no release ----

fn no_output_left(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains("release"))
        .collect();
    assert!(left.is_empty(), "partial output left: {left:?}");
}

fn small_job(dir: &Path, data: &str, hierarchy_age: &str) -> JobConfig {
    std::fs::write(dir.join("small.csv"), data).unwrap();
    std::fs::write(dir.join("small_hierarchy_age.csv"), hierarchy_age).unwrap();
    std::fs::write(dir.join("small_hierarchy_sex.csv"), "F;*\nM;*\n").unwrap();
    let mut job = JobConfig::new(
        dir.join("small.csv"),
        dir.join("release.csv"),
        vec!["age".into(), "sex".into()],
        PrivacyModels::k_anonymity(2, 0.0),
    );
    job.hierarchy_dir = Some(dir.to_path_buf());
    job
}

const AGES: &str = "30;30-39;*\n31;30-39;*\n40;40-49;*\n41;40-49;*\n";

#[test]
fn unknown_column_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = small_job(dir.path(), "age;sex\n30;F\n31;F\n", AGES);
    job.quasi_identifiers.push("zip".into());
    let e = run(&job).unwrap_err();
    assert!(matches!(e, AnonymizeError::UnknownColumn { ref column } if column == "zip"));
    no_output_left(dir.path());
}

#[test]
fn k_larger_than_data_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = small_job(dir.path(), "age;sex\n30;F\n31;F\n", AGES);
    job.privacy.k = 3;
    let e = run(&job).unwrap_err();
    assert!(matches!(
        e,
        AnonymizeError::KLargerThanData { k: 3, records: 2 }
    ));
    no_output_left(dir.path());
}

#[test]
fn empty_data_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let job = small_job(dir.path(), "age;sex\n", AGES);
    assert!(matches!(
        run(&job).unwrap_err(),
        AnonymizeError::EmptyData { .. }
    ));
    no_output_left(dir.path());
}

#[test]
fn ragged_row_is_an_error_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let job = small_job(dir.path(), "age;sex\n30;F\n31\n40;M\n", AGES);
    let e = run(&job).unwrap_err();
    assert!(
        matches!(e, AnonymizeError::RaggedRow { line: 3, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("line 3"));
    no_output_left(dir.path());
}

#[test]
fn hierarchy_gap_lists_the_missing_values() {
    let dir = tempfile::tempdir().unwrap();
    let job = small_job(dir.path(), "age;sex\n30;F\n52;F\n57;M\n52;M\n", AGES);
    let e = run(&job).unwrap_err();
    match &e {
        AnonymizeError::ValuesMissingFromHierarchy {
            column,
            count,
            listed,
        } => {
            assert_eq!(column, "age");
            assert_eq!(*count, 2);
            assert_eq!(listed, &vec!["52".to_string(), "57".to_string()]);
        }
        other => panic!("unexpected {other}"),
    }
    no_output_left(dir.path());
}

#[test]
fn inconsistent_hierarchy_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let job = small_job(
        dir.path(),
        "age;sex\n30;F\n31;F\n",
        "30;30-39;*\n31;30-39;X\n",
    );
    let e = run(&job).unwrap_err();
    assert!(matches!(e, AnonymizeError::InvalidHierarchy { .. }), "{e}");
    no_output_left(dir.path());
}

#[test]
fn missing_hierarchy_and_conflicting_roles_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = small_job(dir.path(), "age;sex;note\n30;F;a\n31;F;b\n", AGES);
    job.quasi_identifiers.push("note".into());
    assert!(matches!(
        run(&job).unwrap_err(),
        AnonymizeError::MissingHierarchy { .. }
    ));
    job.quasi_identifiers.pop();
    job.sensitive = vec!["age".into()];
    assert!(matches!(
        run(&job).unwrap_err(),
        AnonymizeError::ConflictingRoles { .. }
    ));
    no_output_left(dir.path());
}

#[test]
fn job_file_deserializes() {
    let job: JobConfig = serde_json::from_value(serde_json::json!({
        "input": "adult.csv",
        "output": "release.csv",
        "quasi_identifiers": ["age", "sex", "zip", "icd"],
        "sensitive": ["occupation"],
        "hierarchy_dir": "hierarchies",
        "hierarchies": {
            "age": {"kind": "intervals", "bottom": 20, "top": 90, "widths": [5, 10]},
            "zip": {"kind": "mask", "masked_characters": 3},
            "icd": {"kind": "mask", "cut_at": ".", "masked_characters": 2},
            "sex": {"file": "sex.csv"}
        },
        "privacy": {"k": 5, "max_suppression": 0.04, "l_diversity": {"variant": "entropy", "l": 2.0}},
        "metric": "loss"
    }))
    .unwrap();
    assert_eq!(job.separator, ';');
    assert_eq!(job.metric, Metric::Loss);
    assert_eq!(job.hierarchies.len(), 4);
    assert_eq!(
        job.privacy.l_diversity,
        Some(LDiversity::Entropy { l: 2.0 })
    );
}

#[test]
fn identifying_columns_are_dropped_and_built_hierarchies_work() {
    let dir = tempfile::tempdir().unwrap();
    let data = "name;age;sex;dx\nA;31;F;E11.9\nB;33;F;E11.2\nC;35;F;E10\nD;47;M;I10\nE;45;M;I11.0\nF;44;M;I10\n";
    std::fs::write(dir.path().join("people.csv"), data).unwrap();
    let job: JobConfig = serde_json::from_value(serde_json::json!({
        "input": dir.path().join("people.csv"),
        "output": dir.path().join("release.csv"),
        "quasi_identifiers": ["age", "sex", "dx"],
        "identifying": ["name"],
        "hierarchies": {
            "age": {"kind": "intervals", "bottom": 0, "top": 90, "widths": [5, 10]},
            "sex": {"kind": "grouping", "levels": []},
            "dx": {"kind": "mask", "cut_at": ".", "masked_characters": 2}
        },
        "privacy": {"k": 3}
    }))
    .unwrap();
    let report = run(&job).unwrap();
    let text = std::fs::read_to_string(dir.path().join("release.csv")).unwrap();
    assert!(text.starts_with("age;sex;dx\n"), "{text}");
    assert!(!text.contains('A') || !text.lines().any(|l| l.starts_with("A;")));
    assert_eq!(report.k, 3);
    let m = checker::measure(
        &dir.path().join("release.csv"),
        b';',
        &["age", "sex", "dx"],
        &[],
    );
    assert_eq!(m.k, report.k);
    assert_eq!(m.classes, report.equivalence_classes);
}

// ---- risk estimates and the HTML report ----

#[test]
fn adult_risk_report_has_population_estimates() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("release.csv");
    // k = 1 leaves sample uniques, so that every estimator has something to estimate.
    let mut job = job(&out, &EIGHT, 1, 0.0);
    job.sampling_fraction = 0.05;
    let report = run(&job).unwrap();
    assert_report_matches_release(&report, &out, &EIGHT, &[]);
    let risk = &report.risk;
    assert!(risk.sample_uniques > 0.0);
    let population = &risk.population_uniqueness;
    assert_eq!(population.sampling_fraction, 0.05);
    assert!((population.population_size - report.records as f64 / 0.05).abs() < 1e-6);
    // Population uniques cannot exceed the sample uniques scaled to the population.
    let bound = risk.sample_uniques * (report.records - report.suppressed_records) as f64
        / population.population_size
        / 0.05;
    for estimate in [population.zayatz, population.dankar] {
        let e = estimate.expect("estimate available");
        assert!(e > 0.0 && e <= bound * (1.0 + 1e-9), "{e} vs {bound}");
    }
    assert_eq!(
        population.dankar_model,
        Some(if population.pitman.is_some_and(|p| p > 0.0) {
            kiban_anonymize::UniquenessModel::Pitman
        } else {
            kiban_anonymize::UniquenessModel::Zayatz
        })
    );
    assert_eq!(risk.journalist_max, risk.prosecutor_max);
}

#[test]
fn sampling_fraction_out_of_range_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = small_job(dir.path(), "age;sex\n30;F\n31;F\n", AGES);
    job.sampling_fraction = 0.0;
    assert!(matches!(
        run(&job).unwrap_err(),
        AnonymizeError::InvalidParameter(_)
    ));
    no_output_left(dir.path());
}

/// Every `<` of the page opens a tag, a comment or the doctype: none comes from data.
fn assert_markup_only(html: &str) {
    for (i, _) in html.match_indices('<') {
        let next = html[i + 1..].chars().next().unwrap();
        assert!(
            next.is_ascii_alphabetic() || next == '/' || next == '!',
            "stray '<' at {i}: {}",
            &html[i..(i + 40).min(html.len())]
        );
    }
}

#[test]
fn html_report_is_self_contained_and_escapes_data() {
    let dir = tempfile::tempdir().unwrap();
    // A hostile column name: it reaches the page through the quasi-identifier list.
    let data = "a<g>e&;sex\n30;F\n31;F\n40;M\n41;M\n";
    std::fs::write(dir.path().join("small.csv"), data).unwrap();
    std::fs::write(dir.path().join("small_hierarchy_sex.csv"), "F;*\nM;*\n").unwrap();
    std::fs::write(dir.path().join("ages.csv"), AGES).unwrap();
    let mut job = JobConfig::new(
        dir.path().join("small.csv"),
        dir.path().join("release.csv"),
        vec!["a<g>e&".into(), "sex".into()],
        PrivacyModels::k_anonymity(2, 0.0),
    );
    job.hierarchy_dir = Some(dir.path().to_path_buf());
    job.hierarchies.insert(
        "a<g>e&".into(),
        kiban_anonymize::HierarchySource::File {
            file: dir.path().join("ages.csv"),
        },
    );
    let html_path = dir.path().join("report.html");
    job.report_html = Some(html_path.clone());
    let report = run(&job).unwrap();
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
    assert!(html.contains("a&lt;g&gt;e&amp;") && !html.contains("a<g>e"));
    assert_markup_only(&html);
    // Self-contained: no script, no external reference.
    assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("<link"));
    assert!(!html.contains("http://") || html.matches("http://").count() == 2); // SVG namespaces
    assert_eq!(html.matches("<svg").count(), 2);
    assert_eq!(html.matches("</svg>").count(), 2);
    // Bilingual headings and the figures of the report.
    for text in [
        "情報損失 / Information loss",
        "削除レコード数 / Suppressed records",
        "マーケターリスク / Marketer risk",
        "母集団一意（Dankar） / Population uniques (Dankar)",
        "k-匿名性 / k-anonymity",
        "✓ 充足 / holds",
    ] {
        assert!(html.contains(text), "missing {text}");
    }
    assert!(html.contains(&report.information_loss.to_string()));
    assert_eq!(report.levels, vec![1, 0]);
    assert!(html.contains("<td class=\"num\">1</td>"));
    // One bar per class size (all classes have 2 records) and per risk bin.
    assert_eq!(
        html.matches("<rect").count(),
        1 + kiban_anonymize::PROSECUTOR_RISK_BIN_EDGES.len()
    );
}

#[test]
fn html_report_is_not_written_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = small_job(dir.path(), "age;sex\n30;F\n31;F\n", AGES);
    job.privacy.k = 3;
    job.report_html = Some(dir.path().join("release.html"));
    assert!(run(&job).is_err());
    no_output_left(dir.path());
    // A failing write (the target is a directory) leaves neither the page nor a temporary file.
    let job = small_job(dir.path(), "age;sex\n30;F\n31;F\n", AGES);
    let report = run(&job).unwrap();
    let target = dir.path().join("report.html");
    std::fs::create_dir(&target).unwrap();
    assert!(kiban_anonymize::write_report_html(&report, &target).is_err());
    let partial: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(partial.is_empty(), "{partial:?}");
}
