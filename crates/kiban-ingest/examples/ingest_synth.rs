//! Generates a synthetic population and ingests it into a fresh data directory, printing the
//! intake report and the time taken: `cargo run -p kiban-ingest --example ingest_synth -- 2000`.

use kiban_ingest::{IngestOptions, ingest_dir};
use kiban_metadata::Metadata;
use kiban_store::{KeyFile, Store};
use std::sync::Arc;
use std::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let persons: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(2000);
    let work = tempfile::tempdir()?;
    let input = work.path().join("input");
    let data = work.path().join("data");
    let config = kiban_synth::SynthConfig {
        persons,
        ..kiban_synth::SynthConfig::default()
    };
    let started = Instant::now();
    let summary = kiban_synth::generate(&config, &input, &|_| {})?;
    println!(
        "generated {} persons, {} bundles, {} bytes in {:.1?}",
        summary.persons,
        summary.bundles,
        summary.bytes_written,
        started.elapsed()
    );
    let keys = KeyFile::generate(&work.path().join("keys/master.key"))?;
    let store = Arc::new(Store::open(&data, Arc::new(keys))?);
    let meta = Metadata::open_in_dir(&data).await?;
    let started = Instant::now();
    let report = ingest_dir(store, &meta, &input, &IngestOptions::default(), &|_| {}).await?;
    println!("ingested in {:.1?}", started.elapsed());
    println!(
        "lines {} accepted {} duplicate {} rejected {}",
        report.lines,
        report.resources_accepted,
        report.resources_duplicate,
        report.resources_rejected
    );
    for (table, rows) in &report.rows_per_table {
        println!("  {table:<22} {rows}");
    }
    for listing in meta.quarantine(None, 10).await? {
        println!(
            "  rejected {} line {} entry {}: {}",
            listing.source, listing.entry.line, listing.entry.entry_index, listing.entry.reason
        );
    }
    Ok(())
}
