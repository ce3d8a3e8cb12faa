//! Times the Adult benchmark end to end (read, encode, search, write):
//! `cargo run --release -p kiban-anonymize --example adult -- [k] [max-suppression] [metric] [input]`.
//!
//! Measured on the 2-core development machine (release build), all 9 attributes as
//! quasi-identifiers, entropy metric: see the anonymization section of `BENCHMARKS.md`.

use std::time::Instant;

use kiban_anonymize::{JobConfig, Metric, PrivacyModels, run};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let k: usize = args.next().map_or(Ok(5), |a| a.parse())?;
    let suppression: f64 = args.next().map_or(Ok(0.0), |a| a.parse())?;
    let metric = match args.next().as_deref() {
        Some("loss") => Metric::Loss,
        Some("discernibility") => Metric::Discernibility,
        Some("aecs") => Metric::Aecs,
        Some("height") => Metric::Height,
        Some("precision") => Metric::Precision,
        Some("kl-divergence") => Metric::KlDivergence,
        _ => Metric::Entropy,
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/adult");
    let out = std::env::temp_dir().join(format!("kiban-adult-release-{}.csv", std::process::id()));
    let qis = [
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
    // Optional fourth argument: another input with Adult's columns (e.g. Adult repeated 10×).
    let input = args
        .next()
        .map_or_else(|| dir.join("adult.csv"), std::path::PathBuf::from);
    let mut job = JobConfig::new(
        input,
        &out,
        qis.iter().map(|s| s.to_string()).collect(),
        PrivacyModels::k_anonymity(k, suppression),
    );
    job.hierarchy_dir = Some(dir);
    job.metric = metric;
    let started = Instant::now();
    let report = run(&job)?;
    let elapsed = started.elapsed();
    std::fs::remove_file(&out)?;
    println!(
        "k={k} suppression={suppression} finest={} engine={:.1}ms levels={:?} loss={} suppressed={} classes={} checked={} of {} nodes; end-to-end {:.1} ms",
        report.finest_classes,
        report.elapsed_ms,
        report.levels,
        report.information_loss,
        report.suppressed_records,
        report.equivalence_classes,
        report.nodes_checked,
        report.lattice_size,
        elapsed.as_secs_f64() * 1000.0
    );
    Ok(())
}
