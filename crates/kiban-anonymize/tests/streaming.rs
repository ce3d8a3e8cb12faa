//! The streaming mode gives the same report (all but the wall time) and the same release, byte
//! for byte, as the in-memory path, on Adult and on a typed Parquet input.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::collections::BTreeMap;

use kiban_anonymize::{
    Aggregation, AnonymizeError, GroupingSpec, HierarchySource, HierarchySpec, IntervalSpec,
    JobConfig, LDiversity, Metric, PrivacyModels, TDistance, run,
};

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

fn adult_job(dir: &Path, name: &str, qis: &[&str], privacy: PrivacyModels) -> JobConfig {
    let mut job = JobConfig::new(
        adult_dir().join("adult.csv"),
        dir.join(format!("{name}.csv")),
        qis.iter().map(|s| s.to_string()).collect(),
        privacy,
    );
    job.hierarchy_dir = Some(adult_dir());
    job
}

/// Runs `job` in memory and streaming; asserts equal reports and releases; returns the report
/// JSON.
fn assert_same_both_ways(job: &JobConfig) -> serde_json::Value {
    let mut outcomes = Vec::new();
    for streaming in [false, true] {
        let mut job = job.clone();
        job.streaming = Some(streaming);
        let stem = job
            .output
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let suffix = if streaming { "streamed" } else { "memory" };
        job.output = job.output.with_file_name(format!("{stem}.{suffix}.csv"));
        job.report = Some(job.output.with_extension("json"));
        let report = run(&job).unwrap();
        let mut json = serde_json::to_value(&report).unwrap();
        json.as_object_mut().unwrap().remove("elapsed_ms");
        let written: serde_json::Value =
            serde_json::from_slice(&std::fs::read(job.report.as_ref().unwrap()).unwrap()).unwrap();
        assert_eq!(written["levels"], json["levels"]);
        outcomes.push((json, std::fs::read(&job.output).unwrap()));
    }
    let (memory, streamed) = (&outcomes[0], &outcomes[1]);
    assert_eq!(memory.0, streamed.0, "reports differ");
    assert!(memory.1 == streamed.1, "releases differ");
    memory.0.clone()
}

#[test]
fn adult_k_anonymity_with_and_without_suppression_is_the_same_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let mut all = EIGHT.to_vec();
    all.insert(7, "occupation");
    let report = assert_same_both_ways(&adult_job(
        dir.path(),
        "k5",
        &all,
        PrivacyModels::k_anonymity(5, 0.0),
    ));
    assert_eq!(
        report["levels"],
        serde_json::json!([1, 2, 1, 1, 3, 2, 2, 1, 1])
    );
    let report = assert_same_both_ways(&adult_job(
        dir.path(),
        "k5s4",
        &all,
        PrivacyModels::k_anonymity(5, 0.04),
    ));
    assert_eq!(
        report["levels"],
        serde_json::json!([1, 0, 1, 1, 3, 2, 2, 0, 1])
    );
    assert!(report["suppressed_records"].as_u64().unwrap() > 0);
    let mut dropped = adult_job(
        dir.path(),
        "loss",
        &EIGHT,
        PrivacyModels::k_anonymity(5, 0.05),
    );
    dropped.metric = Metric::Loss;
    dropped.drop_suppressed = true;
    let report = assert_same_both_ways(&dropped);
    assert_eq!(report["suppressed_records"], 1346);
}

#[test]
fn adult_with_a_sensitive_attribute_is_the_same_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let mut privacy = PrivacyModels::k_anonymity(5, 0.02);
    privacy.l_diversity = Some(LDiversity::Distinct { l: 3 });
    privacy.t_closeness = Some(0.3);
    privacy.t_distance = TDistance::Equal;
    let mut job = adult_job(dir.path(), "lt", &EIGHT[..6], privacy);
    job.sensitive = vec!["occupation".into()];
    job.identifying = vec!["workclass".into()];
    let report = assert_same_both_ways(&job);
    assert!(report["l"].as_f64().unwrap() >= 3.0);
    assert!(report["t"].as_f64().unwrap() <= 0.3 + 1e-9);
}

#[test]
fn typed_parquet_input_is_the_same_streamed() {
    use arrow_array::{Int32Array, RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    let dir = tempfile::tempdir().unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("age", DataType::Int32, false),
        Field::new("sex", DataType::Utf8, true),
        Field::new("disease", DataType::Utf8, false),
    ]));
    let input = dir.path().join("people.parquet");
    let mut writer = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&input).unwrap(),
        Arc::clone(&schema),
        None,
    )
    .unwrap();
    for chunk in 0..3 {
        let n = 1000;
        let ages: Vec<i32> = (0..n).map(|i| 20 + (i * 7 + chunk * 3) % 60).collect();
        let sexes: Vec<Option<&str>> = (0..n)
            .map(|i| match i % 7 {
                0 => None,
                1 | 3 | 5 => Some("F"),
                _ => Some("M"),
            })
            .collect();
        let diseases: Vec<String> = (0..n).map(|i| format!("d{}", (i * 13) % 9)).collect();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int32Array::from(ages)),
                Arc::new(StringArray::from(sexes)),
                Arc::new(StringArray::from(diseases)),
            ],
        )
        .unwrap();
        writer.write(&batch).unwrap();
    }
    writer.close().unwrap();
    let mut job = JobConfig::new(
        &input,
        dir.path().join("people.csv"),
        vec!["age".into(), "sex".into()],
        PrivacyModels::k_anonymity(10, 0.01),
    );
    job.privacy.l_diversity = Some(LDiversity::Distinct { l: 2 });
    job.sensitive = vec!["disease".into()];
    job.types.insert("disease".into(), "code".parse().unwrap());
    job.hierarchies.insert(
        "age".into(),
        HierarchySource::Built(HierarchySpec::Intervals(IntervalSpec {
            bottom: 0,
            top: 100,
            widths: vec![5, 20],
        })),
    );
    job.hierarchies.insert(
        "sex".into(),
        HierarchySource::Built(HierarchySpec::Grouping(GroupingSpec {
            levels: vec![BTreeMap::from([
                ("known".to_string(), vec!["F".to_string(), "M".to_string()]),
                ("unknown".to_string(), vec![String::new()]),
            ])],
        })),
    );
    let report = assert_same_both_ways(&job);
    assert_eq!(report["records"], 3000);
}

#[test]
fn features_that_need_the_rows_refuse_to_stream() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = adult_job(dir.path(), "m", &EIGHT, PrivacyModels::k_anonymity(5, 0.0));
    job.streaming = Some(true);
    job.microaggregation.insert("age".into(), Aggregation::Mean);
    assert!(matches!(
        run(&job),
        Err(AnonymizeError::NotStreamable { .. })
    ));
    assert!(!job.output.exists());
    // Without an explicit choice, such a job is not streamed whatever its size.
    job.streaming = None;
    job.streaming_row_threshold = 0;
    assert!(!job.streams().unwrap());
    job.microaggregation.clear();
    assert!(job.streams().unwrap());
    // Adult has 30,162 rows; the estimate from the line length is close to that.
    job.streaming_row_threshold = 25_000;
    assert!(job.streams().unwrap());
    job.streaming_row_threshold = 36_000;
    assert!(!job.streams().unwrap());
}
