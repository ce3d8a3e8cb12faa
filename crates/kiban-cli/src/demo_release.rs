//! The demo's "governed data out" step: the store's persons linked in place, an extraction
//! without the refused patients, and an anonymized release that passed its re-identification
//! test, each as a user would make them with `kiban link --data`, `kiban extract` and
//! `kiban deidentify`.

use anyhow::{Context, Result};
use kiban_collection::Collection;
use kiban_extract::{ExtractOptions, extract_dataset};
use kiban_linkage::link::LinkOptions;
use kiban_metadata::Metadata;
use kiban_store::{KeyProvider, Store};
use std::path::Path;
use std::sync::Arc;

use crate::deidentify::{DeidentifyArgs, DeidentifyKind, ProviderChoice};

/// Project the demo's release is made for.
pub const DEMO_PROJECT: &str = "demo-project";

/// Links, extracts and releases into `dir/extract` and `dir/release-anonymized` (both made
/// afresh on every run: they are outputs, the store is the record).
pub async fn run(
    store: &Arc<Store>,
    meta: &Metadata,
    collection: &Collection,
    keys: &dyn KeyProvider,
    dir: &Path,
    key_file: Option<&Path>,
) -> Result<()> {
    match crate::link_store::link_in_place(store, meta, collection, &LinkOptions::default())
        .await
        .context("linkage of the store")?
    {
        Some((run, outcome)) => println!(
            "  persons: {records} identity records of all providers linked into {persons} persons ({new} new, {changed} records changed person); {queued} uncertain pairs wait for clerical review (/staff/review) / 名寄せ: 全医療機関の識別情報の記録 {records}件を {persons}人に名寄せ（新規 {new}人、別の人に移った記録 {changed}件）、判定のつかない {queued}組が確認待ち（/staff/review）",
            records = run.records,
            persons = run.persons,
            new = run.new_persons,
            changed = run.changed_records,
            queued = outcome.review_queued
        ),
        None => {
            println!("  persons: no identity records yet / 名寄せ: 識別情報の記録はまだありません")
        }
    }

    let extract_dir = dir.join("extract");
    let release_dir = dir.join("release-anonymized");
    let report_path = dir.join("release-anonymized.report.json");
    for old in [&extract_dir, &release_dir] {
        if old.exists() {
            std::fs::remove_dir_all(old)
                .with_context(|| format!("cannot clear the previous output {}", old.display()))?;
        }
    }
    let extracted = extract_dataset(store, collection, &extract_dir, &ExtractOptions::default())
        .await
        .with_context(|| format!("extraction into {}", extract_dir.display()))?;
    println!(
        "  extract: {rows} rows -> {out} ({excluded} rows of {refused} patients who opted out left out) / 抽出: {rows}行 → {out}（提供停止した患者 {refused}人の {excluded}行を除外）",
        rows = extracted.rows_written(),
        out = extract_dir.display(),
        excluded = extracted.rows_excluded(),
        refused = extracted.refused_patients
    );

    let args = DeidentifyArgs {
        store: crate::StoreArgs {
            data_dir: store.data_dir().to_owned(),
            keys: crate::KeyArgs {
                key_file: key_file.map(Path::to_path_buf),
            },
        },
        extract: extract_dir,
        out: release_dir.clone(),
        project: DEMO_PROJECT.to_owned(),
        kind: DeidentifyKind::Anonymized,
        provider: ProviderChoice::Pseudonymize,
        max_date_shift_days: 30,
        free_text: crate::deidentify::FreeTextChoice::Drop,
        min_persons: 10,
        k: 5,
        max_suppression: 0.05,
        max_reidentification: None,
        attacker_knowledge: vec![
            crate::deidentify::KnowledgeChoice::Demographics,
            crate::deidentify::KnowledgeChoice::Visits,
            crate::deidentify::KnowledgeChoice::Diagnoses,
        ],
        attacker_model: None,
        diagnosis_m: None,
        without_encounters: false,
        report: Some(report_path),
    };
    let released = crate::deidentify::release(store, meta, collection, keys, &args).await;
    // Too few persons for k with exact visit counts is the population's limit, not a fault:
    // the demo says so and goes on to serve what it has (nothing of a release is written).
    if let Err(e) = &released
        && e.chain().any(|cause| {
            matches!(
                cause.downcast_ref::<kiban_anonymize::AnonymizeError>(),
                Some(kiban_anonymize::AnonymizeError::NoSolution)
            )
        })
    {
        println!(
            "  release: not made: too few persons for k = {k} within {suppression} % suppression (exact visit counts); run the demo with more persons (default 20,000) / 匿名加工データは作成されませんでした: 削除 {suppression} % 以内で k = {k} を満たすには対象者が少なすぎます（受診回数は正確な値）。より多くの人数でデモを実行してください（既定 20,000人）",
            k = args.k,
            suppression = args.max_suppression * 100.0
        );
        return Ok(());
    }
    let (report, report_path) = released.context("anonymized release")?;
    println!(
        "  release: anonymized data for project {DEMO_PROJECT} -> {out} ({persons} persons; rare codes recoded, dates shifted, free text removed) / 匿名加工データ: プロジェクト {DEMO_PROJECT} → {out}（{persons}人、まれなコードを再符号化、日付をずらし、自由記述を削除）",
        out = release_dir.display(),
        persons = report.release.persons
    );
    if let Some(table) = &report.person_table {
        println!(
            "  person table: k = {k} over [{qi}] at levels {levels:?}, {suppressed} suppressed; re-identification test {share:.4} (limit {limit:.4}) / 個人表: k = {k}（対象 [{qi}]、一般化レベル {levels:?}）、{suppressed}人を削除、再識別テスト {share:.4}（上限 {limit:.4}）",
            k = table.anonymization.k,
            qi = table.anonymization.quasi_identifiers.join(", "),
            levels = table.anonymization.levels,
            suppressed = table.anonymization.suppressed_records,
            share = report.reidentification.share,
            limit = report.reidentification.max_share
        );
    }
    println!(
        "  report: {path} / レポート: {path}",
        path = report_path.display()
    );
    Ok(())
}
