//! Synthesizes a population with kiban-synth, links its identity CSV and prints precision,
//! recall, wall time and peak memory.
//!
//! `cargo run --release -p kiban-linkage --example link_bench -- 250000 [seed] [workdir]`

use kiban_linkage::evaluate::evaluate_files;
use kiban_linkage::link::{LinkOptions, link_csv};
use kiban_synth::{SynthConfig, write_identity_csv};
use std::time::Instant;

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    // Usage: link_bench [persons] [seed] [workdir, kept and reused]
    let persons: u64 = args.get(1).map_or(Ok(20_000), |a| a.parse())?;
    let seed: u64 = args.get(2).map_or(Ok(42), |a| a.parse())?;
    let keep = args.get(3).map(std::path::PathBuf::from);
    let temp = tempfile::tempdir()?;
    let dir = keep.clone().unwrap_or_else(|| temp.path().to_owned());
    let config = SynthConfig {
        persons,
        seed,
        ..SynthConfig::default()
    };
    let started = Instant::now();
    // A work directory that already holds the records of this size is reused.
    let records_path = dir.join("identity_records.csv");
    let truth_path = dir.join("identity_truth.csv");
    if !(keep.is_some() && records_path.exists() && truth_path.exists()) {
        write_identity_csv(&config, &dir, &|_| {})?;
    }
    let synth_time = started.elapsed();
    let before_link = peak_rss_kib().unwrap_or(0);
    let links = dir.join("links.csv");
    let started = Instant::now();
    let mut options = LinkOptions::default();
    if let Some(t) = std::env::var_os("LINK_BENCH_THRESHOLD") {
        options.match_threshold = t.to_str().unwrap_or("0.9").parse()?;
    }
    let report = link_csv(&records_path, &links, &options)?;
    let link_time = started.elapsed();
    let evaluation = evaluate_files(&links, &truth_path)?;
    println!("persons            {persons}");
    println!("records            {}", report.records);
    println!("synth time         {:.1} s", synth_time.as_secs_f64());
    println!("link time          {:.1} s", link_time.as_secs_f64());
    println!("pairs compared     {}", report.pairs_compared);
    println!("persons found      {}", report.persons);
    println!(
        "prior              {:.3e} (expected matching pairs {:.0})",
        report.model.match_prior, report.model.expected_matching_pairs
    );
    for session in &report.model.sessions {
        println!(
            "em session {:30} pairs {:>10.0} sampled {:>9} match share {:.4} iterations {} converged {}",
            session.name,
            session.pairs,
            session.sampled_pairs,
            session.match_share,
            session.iterations,
            session.converged
        );
    }
    println!(
        "co-move            m {:.4?} (of {:.0} matches) u {:?} (of {} random pairs); {} candidate pairs co-moved",
        report.co_move.m,
        report.co_move.expected_matches,
        report.co_move.u,
        report.co_move.random_pairs,
        report.co_moved_pairs
    );
    println!(
        "identity groups    m {:.4?} u {:.4?} (of {} pairs, {:.0} matches)",
        report.group_size.m,
        report.group_size.u,
        report.group_size.pairs,
        report.group_size.expected_matches
    );
    println!(
        "provider pairs     {:.0} expected matches over {} provider pairs",
        report.provider_pairs.expected_matches, report.provider_pairs.provider_pairs
    );
    println!("unlinkable rows    {}", report.unlinkable.len());
    println!("merges refused     {}", report.merges_refused_same_provider);
    for rule in &report.blocking {
        println!(
            "rule {:45} blocks {:>9} pairs {:>10} oversized {}",
            rule.rule.name(),
            rule.blocks,
            rule.pairs,
            rule.oversized_blocks
        );
    }
    if std::env::var_os("LINK_BENCH_MODEL").is_some() {
        for field in &report.model.fields {
            for (l, name) in field.field.levels().iter().enumerate() {
                println!(
                    "{:10} {:48} m {:.5} u {:.6} w {:+.2}",
                    field.field.name(),
                    name,
                    field.m[l],
                    field.u[l],
                    field.weight(l as u8)
                );
            }
        }
    }
    println!(
        "true pairs         {} (predicted {}, correct {})",
        evaluation.true_pairs, evaluation.predicted_pairs, evaluation.correct_pairs
    );
    println!(
        "pairwise precision {:.5} recall {:.5}",
        evaluation.pairwise_precision, evaluation.pairwise_recall
    );
    println!(
        "cluster  precision {:.5} recall {:.5}",
        evaluation.cluster_precision, evaluation.cluster_recall
    );
    println!(
        "peak RSS           {:.1} MiB (before linking {:.1} MiB)",
        peak_rss_kib().unwrap_or(0) as f64 / 1024.0,
        before_link as f64 / 1024.0
    );
    Ok(())
}
