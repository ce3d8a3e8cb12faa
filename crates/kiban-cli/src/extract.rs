//! `kiban extract`: clinical tables out of the store, without the data of patients who opted
//! out, as the input of anonymization and analysis.

use anyhow::{Context, Result, bail};
use kiban_collection::{Collection, CollectionPolicy, SystemClock};
use kiban_extract::{ExtractOptions, extract_dataset};
use kiban_metadata::Metadata;
use kiban_store::Store;
use std::sync::Arc;

use crate::ExtractArgs;
use crate::keys::existing_master_key;

/// Runs `kiban extract`.
pub async fn run(args: ExtractArgs) -> Result<()> {
    let data_dir = &args.store.data_dir;
    if !data_dir.join(kiban_metadata::SQLITE_FILE).exists() {
        bail!(
            "{} is not a kiban data directory (no {}); run `kiban ingest` first",
            data_dir.display(),
            kiban_metadata::SQLITE_FILE
        );
    }
    let Some((keys, _)) = existing_master_key(data_dir, args.store.keys.key_file.as_deref())?
    else {
        bail!(
            "no master key found for {} (give --key-file or KIBAN_KEY_FILE): the store cannot be read without it",
            data_dir.display()
        );
    };
    let store = Arc::new(
        Store::open(data_dir, keys)
            .with_context(|| format!("encrypted store in {}", data_dir.display()))?,
    );
    let meta = Metadata::open_in_dir(data_dir)
        .await
        .with_context(|| format!("metadata store in {}", data_dir.display()))?;
    let collection = Collection::new(
        meta.clone(),
        store.clone(),
        Arc::new(SystemClock),
        CollectionPolicy::default(),
    );
    let options = ExtractOptions {
        tables: args.tables.clone(),
        providers: args.providers.clone(),
    };
    let report = extract_dataset(&store, &collection, &args.out, &options)
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
