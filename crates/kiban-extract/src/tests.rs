//! Extraction over a real intake: a synthetic population ingested under a fixed clock.

use super::*;
use kiban_collection::{CollectionPolicy, FixedClock, RefusalChannel, RefusalRequest, Requester};
use kiban_ingest::{IngestOptions, UploadBody, ingest_dir_with, ingest_upload};
use kiban_metadata::Metadata;
use kiban_store::KeyFile;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::HashMap;
use tempfile::TempDir;

const PROVIDER: &str = "prov-001";

struct Env {
    _keys: TempDir,
    _data: TempDir,
    input: TempDir,
    store: Arc<Store>,
    collection: Collection,
}

/// 150 persons, ingested on a day when every notice is old enough.
async fn ingested() -> Env {
    let keys = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let input = tempfile::tempdir().unwrap();
    let config = kiban_synth::SynthConfig {
        persons: 150,
        seed: 7,
        ..kiban_synth::SynthConfig::default()
    };
    kiban_synth::generate(&config, input.path(), &|_| {}).unwrap();
    let key_file = KeyFile::generate(&keys.path().join("master.key")).unwrap();
    let store = Arc::new(Store::open(data.path(), Arc::new(key_file)).unwrap());
    let meta = Metadata::open_in_dir(data.path()).await.unwrap();
    let clock = Arc::new(FixedClock::on_date(
        chrono::NaiveDate::from_ymd_opt(2030, 1, 10).unwrap(),
    ));
    let collection = Collection::new(meta, store.clone(), clock, CollectionPolicy::default());
    let report = ingest_dir_with(
        store.clone(),
        &collection,
        input.path(),
        &IngestOptions::default(),
        &|_| {},
    )
    .await
    .unwrap();
    assert!(report.resources_accepted > 0);
    Env {
        _keys: keys,
        _data: data,
        input,
        store,
        collection,
    }
}

/// Rows per (provider, patient key) in every Parquet file of an extraction, read back with
/// the plain Parquet reader (not the extraction's code).
fn rows_by_patient(dir: &Path) -> HashMap<(String, String), u64> {
    let mut counts = HashMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("parquet") {
            continue;
        }
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let providers = batch
                .column_by_name("provider_id")
                .unwrap()
                .as_string::<i32>();
            let patients = batch
                .column_by_name("patient_key")
                .unwrap()
                .as_string::<i32>();
            for row in 0..batch.num_rows() {
                *counts
                    .entry((
                        providers.value(row).to_owned(),
                        patients.value(row).to_owned(),
                    ))
                    .or_insert(0) += 1;
            }
        }
    }
    counts
}

/// The first patient of `prov-001` who has not refused in the synthetic registers.
fn a_patient_who_did_not_refuse(input: &Path) -> String {
    let refusals =
        std::fs::read_to_string(input.join(PROVIDER).join("refusals.csv")).unwrap_or_default();
    let notifications =
        std::fs::read_to_string(input.join(PROVIDER).join("notifications.csv")).unwrap();
    notifications
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .find(|id| !refusals.lines().any(|r| r.starts_with(&format!("{id},"))))
        .unwrap()
        .to_owned()
}

/// Issue 3's acceptance: after a refusal, new bundles for that person are refused, and the
/// data taken before the refusal is absent from an extracted dataset.
#[tokio::test]
async fn a_refusal_removes_earlier_data_from_extractions_and_refuses_new_data() {
    let env = ingested().await;
    let patient_id = a_patient_who_did_not_refuse(env.input.path());
    let key = env.store.patient_key(PROVIDER, &patient_id);
    let probe = (PROVIDER.to_owned(), key.0.clone());

    let out = tempfile::tempdir().unwrap();
    let before_dir = out.path().join("before");
    let before = extract_dataset(
        &env.store,
        &env.collection,
        &before_dir,
        &ExtractOptions::default(),
    )
    .await
    .unwrap();
    let rows_before = rows_by_patient(&before_dir);
    let patient_rows = rows_before.get(&probe).copied().unwrap_or(0);
    assert!(patient_rows > 0, "the patient's data was taken");
    assert_eq!(
        rows_before.values().sum::<u64>(),
        before.rows_written(),
        "the report counts what the files hold"
    );

    env.collection
        .refuse(&RefusalRequest {
            provider: ProviderId(PROVIDER.to_owned()),
            provider_patient_id: patient_id.clone(),
            refused_on: chrono::NaiveDate::from_ymd_opt(2030, 1, 10).unwrap(),
            requester: Requester::Patient,
            channel: RefusalChannel::Phone,
            actor: "staff:test".to_owned(),
        })
        .await
        .unwrap();

    let after_dir = out.path().join("after");
    let after = extract_dataset(
        &env.store,
        &env.collection,
        &after_dir,
        &ExtractOptions::default(),
    )
    .await
    .unwrap();
    let rows_after = rows_by_patient(&after_dir);
    assert!(!rows_after.contains_key(&probe), "earlier data is absent");
    assert_eq!(after.refused_patients, before.refused_patients + 1);
    assert_eq!(
        after.rows_excluded(),
        before.rows_excluded() + patient_rows,
        "exactly that patient's rows are left out"
    );
    assert_eq!(after.rows_written(), before.rows_written() - patient_rows);
    for (who, rows) in &rows_before {
        if who != &probe {
            assert_eq!(
                rows_after.get(who),
                Some(rows),
                "other patients are untouched"
            );
        }
    }

    // A new upload with that person's bundle is refused and nothing of it is kept.
    let bundles =
        std::fs::read_to_string(env.input.path().join(PROVIDER).join("bundles.ndjson")).unwrap();
    let line = bundles
        .lines()
        .find(|l| l.contains(&format!("\"{patient_id}\"")))
        .unwrap();
    let upload = ingest_upload(
        env.store.clone(),
        &env.collection,
        PROVIDER,
        "resent",
        UploadBody::Ndjson(format!("{line}\n").into_bytes()),
        &IngestOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(upload.resources_accepted, 0);
    assert!(upload.resources_refused > 0);
}

#[tokio::test]
async fn provider_and_table_choices_are_honoured() {
    let env = ingested().await;
    let out = tempfile::tempdir().unwrap();
    let options = ExtractOptions {
        tables: vec!["conditions".to_owned(), "encounters".to_owned()],
        providers: vec![PROVIDER.to_owned()],
    };
    let report = extract_dataset(&env.store, &env.collection, out.path(), &options)
        .await
        .unwrap();
    assert_eq!(
        report.tables.keys().cloned().collect::<Vec<_>>(),
        vec!["conditions".to_owned(), "encounters".to_owned()]
    );
    let rows = rows_by_patient(out.path());
    assert!(!rows.is_empty());
    assert!(rows.keys().all(|(provider, _)| provider == PROVIDER));
    assert!(report.tables.values().any(|t| t.rows_excluded_provider > 0));
    let files: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(files.iter().all(|f| !f.contains("identity")), "{files:?}");
}

#[tokio::test]
async fn bad_requests_are_refused_before_anything_is_written() {
    let env = ingested().await;
    let out = tempfile::tempdir().unwrap();
    let unknown = ExtractOptions {
        tables: vec!["identity".to_owned()],
        providers: vec![],
    };
    let err = extract_dataset(&env.store, &env.collection, &out.path().join("x"), &unknown)
        .await
        .unwrap_err();
    assert!(matches!(err, ExtractError::UnknownTable { .. }), "{err}");
    assert!(err.to_string().contains("conditions"));
    assert!(!out.path().join("x").exists());

    std::fs::write(out.path().join("keep.txt"), "x").unwrap();
    let err = extract_dataset(
        &env.store,
        &env.collection,
        out.path(),
        &ExtractOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ExtractError::OutputNotEmpty(_)));
    assert_eq!(
        std::fs::read_to_string(out.path().join("keep.txt")).unwrap(),
        "x"
    );
}
