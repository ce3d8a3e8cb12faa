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
        "extract: {} rows into {} ({} rows of {} patients who opted out left out)",
        report.rows_written(),
        args.out.display(),
        report.rows_excluded(),
        report.refused_patients
    );
    for (table, t) in &report.tables {
        println!(
            "  {table:<22} {:>10} rows  {:>8} left out (opt-out)  {} segments",
            t.rows_written, t.rows_excluded_refused, t.segments
        );
    }
    Ok(())
}
