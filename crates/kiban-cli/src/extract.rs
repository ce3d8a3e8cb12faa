//! `kiban extract`: clinical tables out of the store, without the data of patients who opted
//! out, as the input of anonymization and analysis.

use anyhow::{Context, Result};
use kiban_extract::{ExtractOptions, extract_dataset};

use crate::ExtractArgs;
use crate::keys::open_existing_store;

/// Runs `kiban extract`.
pub async fn run(args: ExtractArgs) -> Result<()> {
    let opened =
        open_existing_store(&args.store.data_dir, args.store.keys.key_file.as_deref()).await?;
    let (store, meta, collection) = (&opened.store, &opened.meta, &opened.collection);
    let options = ExtractOptions {
        tables: args.tables.clone(),
        providers: args.providers.clone(),
    };
    let report = extract_dataset(store, collection, &args.out, &options)
        .await
        .with_context(|| format!("extraction into {}", args.out.display()))?;
    meta.close().await;
    println!(
        "extract: {rows} rows into {out} ({excluded} rows of {refused} patients who opted out left out) / 抽出: {rows}行 → {out}（提供停止した患者 {refused}人の {excluded}行を除外）",
        rows = report.rows_written(),
        out = args.out.display(),
        excluded = report.rows_excluded(),
        refused = report.refused_patients
    );
    for (table, t) in &report.tables {
        println!(
            "  {table:<22} {rows:>10} rows  {excluded:>8} left out (opt-out)  {segments} segments / {rows}行、提供停止で除外 {excluded}行、セグメント {segments}",
            rows = t.rows_written,
            excluded = t.rows_excluded_refused,
            segments = t.segments
        );
    }
    Ok(())
}
