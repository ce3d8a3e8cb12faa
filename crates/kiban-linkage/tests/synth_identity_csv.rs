//! Every field of kiban-synth's identity CSV reads back through the normalizers.

use kiban_linkage::normalize::address::{normalize_address, normalize_postal_code};
use kiban_linkage::normalize::date::parse_birth_date;
use kiban_linkage::normalize::insurance::{normalize_branch, validate_insurer_number};
use kiban_linkage::normalize::name::{normalize_kana_name, normalize_kanji_name};
use kiban_linkage::normalize::sex::parse_sex;
use kiban_synth::{SynthConfig, write_identity_csv};

#[test]
fn synth_identity_records_normalize_without_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = SynthConfig {
        persons: 400,
        seed: 7,
        ..SynthConfig::default()
    };
    let summary = write_identity_csv(&config, dir.path(), &|_| {}).unwrap();
    let mut reader = csv::Reader::from_path(&summary.records_path).unwrap();
    let mut rows = 0;
    let mut era_typed = 0;
    for record in reader.records() {
        let r = record.unwrap();
        rows += 1;
        assert!(!normalize_kanji_name(&r[3]).key.is_empty());
        if !r[4].is_empty() {
            assert!(!normalize_kana_name(&r[4]).key.is_empty());
        }
        parse_sex(&r[5]).unwrap();
        let date = parse_birth_date(&r[6]).unwrap_or_else(|e| panic!("row {rows}: {e}"));
        era_typed += usize::from(date.typed_era.is_some());
        normalize_postal_code(&r[7]).unwrap();
        let address = normalize_address(&r[8]);
        assert!(address.prefecture.is_some(), "row {rows}: prefecture");
        assert!(address.municipality.is_some(), "row {rows}: municipality");
        if !r[9].is_empty() {
            validate_insurer_number(&r[9]).unwrap_or_else(|e| panic!("row {rows}: {e}"));
            normalize_branch(&r[12]).unwrap();
        }
    }
    assert_eq!(rows as u64, summary.records);
    assert!(era_typed > 0 && era_typed < rows);
}
