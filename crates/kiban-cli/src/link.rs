//! `kiban link`: links identity records of many providers into persons (名寄せ), from the
//! CSV form shared with other linkage tools, and scores the result against a truth file.

use anyhow::{Context, Result, bail};
use kiban_linkage::keys::{ProjectKey, write_keys_csv};
use kiban_linkage::link::{LinkOptions, link_csv};
use kiban_linkage::records::load_identity_csv;
use std::path::Path;

use crate::LinkArgs;

/// Runs `kiban link`.
pub async fn run(args: LinkArgs) -> Result<()> {
    let defaults = LinkOptions::default();
    let options = LinkOptions {
        match_threshold: args.threshold,
        review_band: if args.no_review {
            None
        } else {
            args.review_band.or(defaults.review_band)
        },
        ..defaults
    };
    if let Some(data_dir) = &args.data {
        return crate::link_store::run(
            data_dir,
            args.key_file.as_deref(),
            &options,
            args.revert,
            args.full,
        )
        .await;
    }
    let (Some(csv), Some(out)) = (&args.csv, &args.out) else {
        bail!("give --csv RECORDS --out LINKS, or --data DATA_DIR to link a store in place");
    };
    // A bad project key fails before any work is done.
    let project_key = args
        .project_key
        .as_deref()
        .map(ProjectKey::read)
        .transpose()?;
    let report =
        link_csv(csv, out, &options).with_context(|| format!("linkage of {}", csv.display()))?;
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
            out.display()
        );
        for row in report.unlinkable.iter().take(20) {
            println!("    line {}: {}", row.line, row.reason.describe());
        }
    }
    println!("  links: {}", out.display());
    if let (Some(keys_out), Some(key)) = (&args.keys_out, &project_key) {
        write_linkage_keys(csv, keys_out, key)?;
    }
    if let Some(truth) = &args.truth {
        let score = kiban_linkage::evaluate::evaluate_files(out, truth)
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

/// Parses `--review-band LOW:HIGH`: two probabilities, the lower first.
pub(crate) fn parse_review_band(text: &str) -> Result<(f64, f64), String> {
    let (low, high) = text
        .split_once(':')
        .ok_or_else(|| "expected LOW:HIGH, two probabilities such as 0.2:0.98".to_owned())?;
    let probability = |s: &str| {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|p| (0.0..=1.0).contains(p))
            .ok_or_else(|| format!("{s:?} is not a probability in [0, 1]"))
    };
    let (low, high) = (probability(low)?, probability(high)?);
    if low > high {
        return Err("the lower end of the band is above the upper end".to_owned());
    }
    Ok((low, high))
}

/// Writes the linkage keys of every record of `csv` under the project key.
fn write_linkage_keys(csv: &Path, keys_out: &Path, key: &ProjectKey) -> Result<()> {
    let loaded = load_identity_csv(csv).with_context(|| format!("loading {}", csv.display()))?;
    let rows = write_keys_csv(&loaded, key, keys_out)?;
    println!("  linkage keys: {} ({rows} records)", keys_out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_review_band;

    #[test]
    fn a_review_band_is_two_ordered_probabilities() {
        assert_eq!(parse_review_band("0.2:0.98"), Ok((0.2, 0.98)));
        assert_eq!(parse_review_band(" 0 : 1 "), Ok((0.0, 1.0)));
        assert!(parse_review_band("0.9:0.2").is_err());
        assert!(parse_review_band("0.2").is_err());
        assert!(parse_review_band("0.2:1.5").is_err());
        assert!(parse_review_band("a:0.5").is_err());
    }
}
