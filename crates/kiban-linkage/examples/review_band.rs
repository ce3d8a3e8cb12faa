//! How many pairs a review band would queue, and how many of them are true matches: links a
//! synthetic population with every kept pair proposed and counts them by match probability
//! against the generator's truth. The evidence for [`kiban_linkage::link::DEFAULT_REVIEW_BAND`].
//!
//! `cargo run --release -p kiban-linkage --example review_band -- 171000 11 WORKDIR`

use kiban_linkage::evaluate::read_assignment;
use kiban_linkage::link::{DEFAULT_REVIEW_BAND, LinkOptions, link_records};
use kiban_linkage::records::load_identity_csv;
use kiban_synth::{SynthConfig, write_identity_csv};

/// Upper ends of the probability buckets counted.
const BUCKETS: [f64; 15] = [
    0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0,
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let persons: u64 = args.get(1).map_or(Ok(20_000), |a| a.parse())?;
    let seed: u64 = args.get(2).map_or(Ok(42), |a| a.parse())?;
    let keep = args.get(3).map(std::path::PathBuf::from);
    let temp = tempfile::tempdir()?;
    let dir = keep.clone().unwrap_or_else(|| temp.path().to_owned());
    let records_path = dir.join("identity_records.csv");
    let truth_path = dir.join("identity_truth.csv");
    if !(keep.is_some() && records_path.exists() && truth_path.exists()) {
        let config = SynthConfig {
            persons,
            seed,
            ..SynthConfig::default()
        };
        write_identity_csv(&config, &dir, &|_| {})?;
    }
    let loaded = load_identity_csv(&records_path)?;
    let truth = read_assignment(&truth_path)?;
    let options = LinkOptions {
        review_band: Some((0.0, 1.0)),
        review_limit: usize::MAX,
        ..LinkOptions::default()
    };
    let linkage = link_records(&loaded, &options);
    let same = |a: u32, b: u32| {
        let person = |r: u32| truth.get(&loaded.record_ids[r as usize]);
        person(a).is_some() && person(a) == person(b)
    };
    let mut counts = [(0u64, 0u64); BUCKETS.len()];
    let (mut band, mut band_true) = (0u64, 0u64);
    for pair in &linkage.review {
        let p = pair.match_probability;
        let bucket = BUCKETS
            .iter()
            .position(|&upper| p < upper)
            .unwrap_or(BUCKETS.len() - 1);
        let is_match = same(pair.a, pair.b);
        counts[bucket].0 += 1;
        counts[bucket].1 += u64::from(is_match);
        if (DEFAULT_REVIEW_BAND.0..=DEFAULT_REVIEW_BAND.1).contains(&p) {
            band += 1;
            band_true += u64::from(is_match);
        }
    }
    println!("records {}", loaded.records.len());
    println!("probability below | pairs | true matches | share");
    for (upper, (n, t)) in BUCKETS.iter().zip(counts) {
        println!(
            "{upper:>6} | {n:>8} | {t:>8} | {:.3}",
            t as f64 / n.max(1) as f64
        );
    }
    println!(
        "default band {:?}: {band} pairs, {band_true} true matches ({:.3})",
        DEFAULT_REVIEW_BAND,
        band_true as f64 / band.max(1) as f64
    );
    Ok(())
}
