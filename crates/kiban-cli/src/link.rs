//! `kiban link`: links identity records of many providers into persons (名寄せ), from the
//! CSV form shared with other linkage tools, and scores the result against a truth file.

use anyhow::{Context, Result};
use kiban_linkage::link::{LinkOptions, link_csv};

use crate::LinkArgs;

/// Runs `kiban link`.
pub fn run(args: LinkArgs) -> Result<()> {
    let options = LinkOptions {
        match_threshold: args.threshold,
        ..LinkOptions::default()
    };
    let report = link_csv(&args.csv, &args.out, &options)
        .with_context(|| format!("linkage of {}", args.csv.display()))?;
    println!(
        "link: {} records -> {} persons in {:.1} s ({} pairs compared, {} links above {}, {} merges refused: one record per provider and person)",
        report.records,
        report.persons,
        report.elapsed.as_secs_f64(),
        report.pairs_compared,
        report.pairs_above_threshold,
        args.threshold,
        report.merges_refused_same_provider
    );
    if !report.unlinkable.is_empty() {
        println!(
            "  {} rows could not be linked (each is its own person in {}):",
            report.unlinkable.len(),
            args.out.display()
        );
        for row in report.unlinkable.iter().take(20) {
            println!("    line {}: {}", row.line, row.reason.describe());
        }
    }
    println!("  links: {}", args.out.display());
    if let Some(truth) = &args.truth {
        let score = kiban_linkage::evaluate::evaluate_files(&args.out, truth)
            .with_context(|| format!("scoring against {}", truth.display()))?;
        println!(
            "  against {}: pairwise precision {:.4}, recall {:.4}; cluster precision {:.4}, recall {:.4}",
            truth.display(),
            score.pairwise_precision,
            score.pairwise_recall,
            score.cluster_precision,
            score.cluster_recall
        );
    }
    Ok(())
}
