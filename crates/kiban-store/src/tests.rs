//! Behaviour of the store as a whole: round trips, nothing in plaintext, keys, tampering,
//! crash leftovers.

use std::collections::HashSet;
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{NaiveDate, TimeZone, Utc};
use kiban_model::{ConditionRow, DocumentRow, IdentityRow, RowCommon, TableRow};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::{BlobArea, KeyFile, Store, StoreError};

const KANJI_NAME: &str = "髙橋花子";
const KANA_NAME: &str = "タカハシハナコ";
const INSURER_NUMBER: &str = "06139999";
const PATIENT_ID: &str = "PT-7781234";
const ADDRESS: &str = "東京都千代田区霞が関1-2-2";
const PHONE: &str = "03-5253-1111";

struct Fixture {
    _base: tempfile::TempDir,
    key_path: PathBuf,
    data_dir: PathBuf,
    store: Store,
}

fn fixture() -> Fixture {
    let base = tempfile::tempdir().unwrap();
    let key_path = base.path().join("keys/master.key");
    let data_dir = base.path().join("data");
    let keys = KeyFile::generate(&key_path).unwrap();
    let store = Store::open(&data_dir, Arc::new(keys)).unwrap();
    Fixture {
        _base: base,
        key_path,
        data_dir,
        store,
    }
}

fn reopen(f: &Fixture) -> Result<Store, StoreError> {
    Store::open(&f.data_dir, Arc::new(KeyFile::load(&f.key_path).unwrap()))
}

fn identity_row(store: &Store) -> IdentityRow {
    let patient = store.patient_key("prov-001", PATIENT_ID);
    IdentityRow {
        common: RowCommon::new("prov-001", "intake-1", patient.as_str(), "pat-1"),
        provider_patient_id: PATIENT_ID.into(),
        name_kanji: Some(KANJI_NAME.into()),
        name_kana: Some(KANA_NAME.into()),
        birth_date: NaiveDate::from_ymd_opt(1961, 4, 2),
        sex: "female".into(),
        postal_code: Some("100-8916".into()),
        address: Some(ADDRESS.into()),
        phone: Some(PHONE.into()),
        insurer_number: Some(INSURER_NUMBER.into()),
        insured_symbol: Some("記号１２".into()),
        insured_number: Some("3344556".into()),
        insured_branch: Some("01".into()),
    }
}

fn condition_rows(store: &Store, n: usize) -> Vec<ConditionRow> {
    let patient = store.patient_key("prov-001", PATIENT_ID);
    (0..n)
        .map(|i| ConditionRow {
            common: RowCommon::new("prov-001", "intake-1", patient.as_str(), &format!("c-{i}")),
            icd10: Some("E11.9".into()),
            medis_code: Some("ND6F".into()),
            name: Some("2型糖尿病".into()),
            suspected: i % 2 == 0,
            clinical_status: Some("active".into()),
            onset_date: NaiveDate::from_ymd_opt(2020, 1, 1 + (i % 28) as u32),
            abatement_date: None,
            recorded_date: NaiveDate::from_ymd_opt(2021, 3, 3),
            encounter_id: Some(format!("enc-{i}")),
        })
        .collect()
}

fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(all_files(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn identity_and_clinical_rows_round_trip() {
    let f = fixture();
    let identity = vec![identity_row(&f.store)];
    let segment = f.store.write_segment("intake-1-0000", &identity).unwrap();
    assert_eq!(segment.table, "identity");
    assert_eq!(segment.relative_path, "identity/intake-1-0000.parquet");
    assert_eq!(segment.rows, 1);
    assert_eq!(
        segment.bytes,
        fs::metadata(f.data_dir.join(&segment.relative_path))
            .unwrap()
            .len()
    );
    assert_eq!(
        f.store
            .read_segment::<IdentityRow>(&segment.relative_path)
            .unwrap(),
        identity
    );

    let conditions = condition_rows(&f.store, 500);
    let segment = f.store.write_segment("intake-1-0001", &conditions).unwrap();
    assert_eq!(
        segment.relative_path,
        "clinical/conditions/intake-1-0001.parquet"
    );
    assert_eq!(segment.rows, 500);
    assert_eq!(
        f.store
            .read_segment::<ConditionRow>(&segment.relative_path)
            .unwrap(),
        conditions
    );
    let batches = f
        .store
        .read_segment_batches(&segment.relative_path)
        .unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 500);
    assert_eq!(
        batches[0].schema().fields(),
        ConditionRow::schema().fields()
    );

    // Readable again after reopening with the same key file.
    let store = reopen(&f).unwrap();
    assert_eq!(
        store
            .read_segment::<ConditionRow>(&segment.relative_path)
            .unwrap(),
        conditions
    );
    // Asking for the wrong row type is refused before decoding.
    assert!(matches!(
        store.read_segment::<IdentityRow>(&segment.relative_path),
        Err(StoreError::TableMismatch { .. })
    ));
    // Nothing left in tmp/.
    assert_eq!(fs::read_dir(f.data_dir.join("tmp")).unwrap().count(), 0);
}

#[test]
fn retried_write_replaces_the_same_file() {
    let f = fixture();
    let first = f
        .store
        .write_segment("intake-2-0000", &condition_rows(&f.store, 3))
        .unwrap();
    let rows = condition_rows(&f.store, 5);
    let second = f.store.write_segment("intake-2-0000", &rows).unwrap();
    assert_eq!(first.relative_path, second.relative_path);
    assert_eq!(f.store.segment_files_on_disk().unwrap().len(), 1);
    assert_eq!(
        f.store
            .read_segment::<ConditionRow>(&second.relative_path)
            .unwrap(),
        rows
    );
}

#[test]
fn no_identity_data_in_plaintext_anywhere_under_the_data_dir() {
    let f = fixture();
    let identity = identity_row(&f.store);
    f.store
        .write_segment("intake-1-0000", std::slice::from_ref(&identity))
        .unwrap();
    // Identity text that leaked into a clinical free-text field is encrypted all the same.
    let document = DocumentRow {
        common: identity.common.clone(),
        kind: "discharge_summary".into(),
        title: Some(format!("{KANJI_NAME}様 退院時サマリー")),
        date: Some(Utc.with_ymd_and_hms(2024, 5, 1, 9, 0, 0).unwrap()),
        text: Some(format!("{KANA_NAME} 保険者番号 {INSURER_NUMBER} {ADDRESS}")),
    };
    f.store.write_segment("intake-1-0001", &[document]).unwrap();
    let quarantined = format!(
        "{{\"resourceType\":\"Patient\",\"name\":\"{KANJI_NAME}\",\"kana\":\"{KANA_NAME}\",\"insurer\":\"{INSURER_NUMBER}\",\"id\":\"{PATIENT_ID}\"}}"
    );
    f.store
        .write_blob(
            BlobArea::Quarantine,
            "intake-1-bad-0000",
            quarantined.as_bytes(),
        )
        .unwrap();
    let master_key_text = fs::read_to_string(&f.key_path).unwrap();
    let master_key_hex = master_key_text
        .lines()
        .find_map(|l| l.strip_prefix("key "))
        .unwrap()
        .to_owned();

    let secrets = [
        KANJI_NAME,
        KANA_NAME,
        INSURER_NUMBER,
        PATIENT_ID,
        ADDRESS,
        PHONE,
        "3344556",
        "高橋", // also no partial name
        &master_key_hex,
    ];
    let files = all_files(&f.data_dir);
    assert!(
        files.len() >= 3 + 14,
        "expected data files and keyring files"
    );
    for file in &files {
        let bytes = fs::read(file).unwrap();
        for secret in secrets {
            assert!(
                !contains(&bytes, secret.as_bytes()),
                "{} contains a secret in plaintext",
                file.display()
            );
        }
        let name = file.to_string_lossy();
        if name.ends_with(".parquet") {
            // Encrypted footer: PARE at both ends, never the plaintext-footer PAR1.
            assert_eq!(&bytes[..4], b"PARE", "{name}");
            assert_eq!(&bytes[bytes.len() - 4..], b"PARE", "{name}");
        }
        assert!(!bytes.starts_with(b"PAR1"), "{name} is plaintext Parquet");
    }
    // The scan itself works: the same rows as plain Parquet do expose the secrets.
    let mut plain = Vec::new();
    let props = WriterProperties::builder()
        .set_compression(Compression::UNCOMPRESSED)
        .build();
    let batch = IdentityRow::to_record_batch(&[identity]).unwrap();
    let mut writer = ArrowWriter::try_new(&mut plain, batch.schema(), Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    assert!(contains(&plain, KANJI_NAME.as_bytes()));
    assert!(contains(&plain, INSURER_NUMBER.as_bytes()));
}

#[test]
fn wrong_master_key_is_a_clear_error() {
    let f = fixture();
    let other_path = f._base.path().join("other.key");
    let other = KeyFile::generate(&other_path).unwrap();
    let expected_id = KeyFile::load(&f.key_path).unwrap();
    let err = Store::open(&f.data_dir, Arc::new(other)).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, StoreError::KeyMismatch { .. }), "{message}");
    assert!(
        message.contains("master key does not match this data directory"),
        "{message}"
    );
    assert!(message.contains(crate::KeyProvider::key_id(&expected_id)));

    // Same key id but different key bytes (an edited key file): unwrapping fails clearly.
    let text = fs::read_to_string(&f.key_path).unwrap();
    let id_line = text.lines().find(|l| l.starts_with("id ")).unwrap();
    let forged_path = f._base.path().join("forged.key");
    let fresh = KeyFile::generate(&forged_path).unwrap();
    let fresh_text = fs::read_to_string(&forged_path).unwrap();
    let key_line = fresh_text.lines().find(|l| l.starts_with("key ")).unwrap();
    fs::write(
        &forged_path,
        format!("kiban-master-key v1\n{id_line}\n{key_line}\n"),
    )
    .unwrap();
    drop(fresh);
    let err = Store::open(&f.data_dir, Arc::new(KeyFile::load(&forged_path).unwrap())).unwrap_err();
    assert!(matches!(err, StoreError::UnwrapFailed { .. }), "{err}");
}

#[test]
fn tampered_files_give_errors_not_panics() {
    let f = fixture();
    let rows = condition_rows(&f.store, 50);
    let segment = f.store.write_segment("intake-1-0000", &rows).unwrap();
    let path = f.data_dir.join(&segment.relative_path);
    let original = fs::read(&path).unwrap();
    let step = (original.len() / 401).max(1);
    let mut offsets: Vec<usize> = (0..original.len()).step_by(step).collect();
    offsets.extend([
        original.len() - 1,
        original.len() - 5,
        original.len() - 8,
        4,
        5,
    ]);
    for offset in offsets {
        let mut tampered = original.clone();
        tampered[offset] ^= 0x5a;
        fs::write(&path, &tampered).unwrap();
        let result = catch_unwind(AssertUnwindSafe(|| {
            f.store.read_segment::<ConditionRow>(&segment.relative_path)
        }));
        match result {
            // A few framing bytes (the leading magic, module length prefixes that the reader
            // recomputes from authenticated headers) carry no data; changing them must not
            // change what is read.
            Ok(Ok(read)) => assert_eq!(read, rows, "tampering at byte {offset} changed data"),
            Ok(Err(_)) => {}
            Err(_) => panic!("tampering at byte {offset} made the reader panic"),
        }
    }
    // Truncation too.
    fs::write(&path, &original[..original.len() / 2]).unwrap();
    assert!(
        f.store
            .read_segment::<ConditionRow>(&segment.relative_path)
            .is_err()
    );
    fs::write(&path, &original).unwrap();
    assert!(
        f.store
            .read_segment::<ConditionRow>(&segment.relative_path)
            .is_ok()
    );

    let blob = f
        .store
        .write_blob(
            BlobArea::Quarantine,
            "bad-1",
            b"{\"resourceType\":\"Patient\"}",
        )
        .unwrap();
    let blob_path = f.data_dir.join(&blob);
    let original = fs::read(&blob_path).unwrap();
    for offset in 0..original.len() {
        let mut tampered = original.clone();
        tampered[offset] ^= 0x01;
        fs::write(&blob_path, &tampered).unwrap();
        assert!(f.store.read_blob(&blob).is_err(), "blob byte {offset}");
    }
    fs::write(&blob_path, &original[..10]).unwrap();
    assert!(matches!(
        f.store.read_blob(&blob),
        Err(StoreError::BlobFormat { .. })
    ));
}

#[test]
fn a_file_copied_to_another_path_does_not_decrypt() {
    let f = fixture();
    let segment = f
        .store
        .write_segment("intake-1-0000", &condition_rows(&f.store, 10))
        .unwrap();
    let copy = "clinical/conditions/intake-9-0000.parquet";
    fs::copy(
        f.data_dir.join(&segment.relative_path),
        f.data_dir.join(copy),
    )
    .unwrap();
    let err = f.store.read_segment::<ConditionRow>(copy).unwrap_err();
    assert!(matches!(err, StoreError::ParquetRead { .. }), "{err}");
    // Into another table (another key) as well.
    let other_table = "clinical/encounters/intake-1-0000.parquet";
    fs::copy(
        f.data_dir.join(&segment.relative_path),
        f.data_dir.join(other_table),
    )
    .unwrap();
    assert!(f.store.read_segment_batches(other_table).is_err());

    let blob = f
        .store
        .write_blob(BlobArea::Quarantine, "bad-1", b"payload")
        .unwrap();
    let moved = "quarantine/bad-2.enc";
    fs::copy(f.data_dir.join(&blob), f.data_dir.join(moved)).unwrap();
    assert!(matches!(
        f.store.read_blob(moved),
        Err(StoreError::Decrypt { .. })
    ));
    assert_eq!(&f.store.read_blob(&blob).unwrap()[..], b"payload");
}

#[test]
fn open_clears_tmp_and_remove_uncommitted_deletes_orphans() {
    let f = fixture();
    let committed = f
        .store
        .write_segment("intake-1-0000", &condition_rows(&f.store, 2))
        .unwrap();
    let orphan = f
        .store
        .write_segment("intake-1-0001", &[identity_row(&f.store)])
        .unwrap();
    let orphan_blob = f
        .store
        .write_blob(BlobArea::Quarantine, "intake-1-bad-0", b"x")
        .unwrap();
    // Leftovers of a killed writer.
    fs::write(f.data_dir.join("tmp/abc.tmp"), b"partial").unwrap();
    fs::create_dir(f.data_dir.join("tmp/nested")).unwrap();
    fs::write(f.data_dir.join("tmp/nested/x"), b"partial").unwrap();
    // Files that are not data files are left alone by the scan.
    fs::write(f.data_dir.join("clinical/conditions/README"), b"note").unwrap();

    let store = reopen(&f).unwrap();
    assert_eq!(fs::read_dir(f.data_dir.join("tmp")).unwrap().count(), 0);

    let mut on_disk = store.segment_files_on_disk().unwrap();
    on_disk.sort();
    let mut expected = vec![
        committed.relative_path.clone(),
        orphan.relative_path.clone(),
        orphan_blob.clone(),
    ];
    expected.sort();
    assert_eq!(on_disk, expected);

    let committed_set = HashSet::from([committed.relative_path.clone()]);
    assert_eq!(store.remove_uncommitted(&committed_set).unwrap(), 2);
    assert_eq!(
        store.segment_files_on_disk().unwrap(),
        vec![committed.relative_path.clone()]
    );
    assert!(f.data_dir.join("clinical/conditions/README").exists());
    assert_eq!(store.remove_uncommitted(&committed_set).unwrap(), 0);
    assert_eq!(
        store
            .read_segment::<ConditionRow>(&committed.relative_path)
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn key_file_inside_data_dir_is_refused() {
    let base = tempfile::tempdir().unwrap();
    let data_dir = base.path().join("data");
    let keys = KeyFile::generate(&data_dir.join("keyring/master.key")).unwrap();
    let err = Store::open(&data_dir, Arc::new(keys)).unwrap_err();
    assert!(matches!(err, StoreError::KeyInsideDataDir { .. }), "{err}");
}

#[test]
fn layout_is_created() {
    let f = fixture();
    for dir in [
        "clinical/conditions",
        "clinical/encounters",
        "clinical/deaths",
        "identity",
        "quarantine",
        "keyring",
        "tmp",
    ] {
        assert!(f.data_dir.join(dir).is_dir(), "{dir}");
    }
    for dataset in ["store", "index", "identity", "quarantine", "conditions"] {
        assert!(
            f.data_dir.join(format!("keyring/{dataset}.json")).is_file(),
            "{dataset}"
        );
    }
}

#[test]
fn patient_keys_and_digests_are_stable_keyed_and_unambiguous() {
    let f = fixture();
    let key = f.store.patient_key("prov-001", PATIENT_ID);
    assert_eq!(key.as_str().len(), 32);
    assert!(!key.as_str().contains(PATIENT_ID));
    assert_ne!(key, f.store.patient_key("prov-002", PATIENT_ID));
    assert_ne!(key, f.store.patient_key("prov-001", "PT-7781235"));
    // Length prefixes: shifting a boundary changes the digest.
    assert_ne!(
        f.store.patient_key("prov-00", "1PT"),
        f.store.patient_key("prov-001", "PT")
    );
    assert_ne!(
        f.store.keyed_digest("d", &[b"ab", b"c"]),
        f.store.keyed_digest("d", &[b"a", b"bc"])
    );
    assert_ne!(
        f.store.keyed_digest("d1", &[b"x"]),
        f.store.keyed_digest("d2", &[b"x"])
    );
    // Stable across reopenings.
    let store = reopen(&f).unwrap();
    assert_eq!(store.patient_key("prov-001", PATIENT_ID), key);
    // Another store (another index key) gives another key.
    let other = fixture();
    assert_ne!(other.store.patient_key("prov-001", PATIENT_ID), key);
}

#[test]
fn names_and_paths_are_validated() {
    let f = fixture();
    let rows = condition_rows(&f.store, 1);
    for bad in ["", "../x", "a/b", "a.b", "名前", "a b"] {
        assert!(
            matches!(
                f.store.write_segment(bad, &rows),
                Err(StoreError::InvalidName { .. })
            ),
            "{bad:?}"
        );
        assert!(f.store.write_blob(BlobArea::Quarantine, bad, b"x").is_err());
    }
    for bad in [
        "/etc/passwd",
        "../data/identity/x.parquet",
        "clinical/../identity/x.parquet",
        "clinical/unknown/x.parquet",
        "identity/x.enc",
        "quarantine/x.parquet",
        "keyring/index.json",
        "tmp/x.parquet",
    ] {
        assert!(
            matches!(
                f.store.read_segment_batches(bad),
                Err(StoreError::InvalidPath { .. })
            ),
            "{bad}"
        );
        assert!(f.store.read_blob(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_missing_keyring_file_with_existing_data_is_an_error() {
    let f = fixture();
    f.store
        .write_segment("intake-1-0000", &condition_rows(&f.store, 1))
        .unwrap();
    fs::remove_file(f.data_dir.join("keyring/conditions.json")).unwrap();
    let err = reopen(&f).unwrap_err();
    assert!(matches!(err, StoreError::Keyring { .. }), "{err}");
    // Without data, a missing key is simply created.
    fs::remove_file(f.data_dir.join("keyring/deaths.json")).unwrap();
    fs::remove_file(f.data_dir.join("clinical/conditions/intake-1-0000.parquet")).unwrap();
    reopen(&f).unwrap();
    assert!(f.data_dir.join("keyring/deaths.json").is_file());
}

#[test]
fn empty_segments_round_trip() {
    let f = fixture();
    let segment = f.store.write_segment::<ConditionRow>("empty", &[]).unwrap();
    assert_eq!(segment.rows, 0);
    assert!(
        f.store
            .read_segment::<ConditionRow>(&segment.relative_path)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn store_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();
    let f = fixture();
    let store = Arc::new(f.store);
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let rows = condition_rows(&store, 10 + i);
                let segment = store
                    .write_segment(&format!("intake-1-{i:04}"), &rows)
                    .unwrap();
                assert_eq!(
                    store
                        .read_segment::<ConditionRow>(&segment.relative_path)
                        .unwrap(),
                    rows
                );
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    assert_eq!(store.segment_files_on_disk().unwrap().len(), 4);
}
