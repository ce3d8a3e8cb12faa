//! Diagnoses a linkage against its truth file: the comparison patterns of wrongly linked and
//! missed pairs (levels only, never values).
//!
//! `cargo run --release -p kiban-linkage --example link_diagnose -- workdir`

mod common;

use kiban_linkage::blocking::candidate_pairs;
use kiban_linkage::evaluate::person_of_each_record;
use kiban_linkage::link::{LinkOptions, NameFrequencies, estimate_matching_pairs, train_model};
use kiban_linkage::model::{FIELD_COUNT, compare_records, level_of};
use rustc_hash::FxHashMap;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (loaded, truth) = common::records_with_truth()?;
    let person: Vec<&str> = person_of_each_record(&loaded.record_ids, &truth);
    let records = &loaded.records;
    let pool = &loaded.pool;
    let linkable: Vec<u32> = loaded.linkable_indexes();
    let options = LinkOptions::default();
    let candidates = candidate_pairs(pool, records, &linkable, options.max_block_size);
    let mut model = train_model(&loaded, &linkable, &options);
    let frequencies = NameFrequencies::new(records, &linkable);
    let threshold = (options.match_threshold / (1.0 - options.match_threshold)).log2();
    // The prior as link_records refines it, on the pairs agreeing exactly.
    let patterns: Vec<u32> = candidates
        .pairs
        .iter()
        .map(|&(a, b)| compare_records(pool, &records[a as usize], &records[b as usize]))
        .collect();
    let evidence: Vec<f64> = candidates
        .pairs
        .iter()
        .zip(&patterns)
        .map(|(&(a, b), &p)| {
            let (x, y) = (&records[a as usize], &records[b as usize]);
            model.pattern_weight(p) + frequencies.adjustment(p, x, y)
        })
        .collect();
    let mut per_provider: FxHashMap<u32, f64> = FxHashMap::default();
    for &i in &linkable {
        *per_provider
            .entry(records[i as usize].hospital)
            .or_default() += 1.0;
    }
    let n = linkable.len() as f64;
    let all_pairs = (n * n - per_provider.values().map(|c| c * c).sum::<f64>()) / 2.0;
    let matches = estimate_matching_pairs(&model, &patterns, &evidence, all_pairs);
    model.match_prior = matches / all_pairs;
    let prior = model.prior_weight();
    let mut false_links: FxHashMap<[u8; FIELD_COUNT], u64> = FxHashMap::default();
    let mut missed: FxHashMap<[u8; FIELD_COUNT], u64> = FxHashMap::default();
    let mut true_in_candidates = 0u64;
    let mut band: std::collections::BTreeMap<(bool, bool, bool, bool, u8), u64> =
        Default::default();
    let mut calibration: std::collections::BTreeMap<i64, (u64, u64)> = Default::default();
    for &(a, b) in &candidates.pairs {
        let (x, y) = (&records[a as usize], &records[b as usize]);
        let pattern = compare_records(pool, x, y);
        let w = prior + model.pattern_weight(pattern) + frequencies.adjustment(pattern, x, y);
        if level_of(pattern, 0) == 0 && level_of(pattern, 1) == 0 {
            let bucket = (w.round() as i64).clamp(-10, 30);
            if (0..7).contains(&bucket) {
                let both = x.card.is_present() && y.card.is_present();
                let key = (
                    person[a as usize] == person[b as usize],
                    both,
                    both && x.card.insurer == y.card.insurer,
                    x.card.branch.is_some() && y.card.branch.is_some(),
                    level_of(pattern, 3),
                );
                *band.entry(key).or_insert(0u64) += 1;
            }
            let e = calibration.entry(bucket).or_insert((0u64, 0u64));
            if person[a as usize] == person[b as usize] {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
        let levels = std::array::from_fn(|f| level_of(pattern, f));
        let is_match = person[a as usize] == person[b as usize];
        true_in_candidates += u64::from(is_match);
        if is_match && w < threshold {
            *missed.entry(levels).or_default() += 1;
        } else if !is_match && w >= threshold {
            *false_links.entry(levels).or_default() += 1;
        }
    }
    println!("prior {:.3e}", model.match_prior);
    println!("true pairs among candidates {true_in_candidates}");
    for (name, table) in [("false links", false_links), ("missed", missed)] {
        let total: u64 = table.values().sum();
        println!("{name}: {total}");
        let mut rows: Vec<_> = table.into_iter().collect();
        rows.sort_by_key(|row| std::cmp::Reverse(row.1));
        for (levels, n) in rows.iter().take(25) {
            let w: f64 = model
                .fields
                .iter()
                .zip(levels)
                .map(|(f, &l)| f.weight(l))
                .sum();
            println!("  {levels:?} {n:>7} weight {:+.2}", w + prior);
        }
    }
    println!(
        "calibration of exact name and date pairs: weight, matches, non-matches, expected share"
    );
    for (w, (m, n)) in &calibration {
        println!(
            "  {w:>4} {m:>8} {n:>8} observed {:.3} model {:.3}",
            *m as f64 / (*m + *n) as f64,
            1.0 / (1.0 + (-(*w as f64)).exp2())
        );
    }
    println!("band (match, both cards, same insurer, both branches, household): count");
    for (k, n) in &band {
        println!("  {k:?} {n}");
    }
    for field in &model.fields {
        for (l, name) in field.field.levels().iter().enumerate() {
            println!(
                "{:10} {l} {:48} m {:.5} u {:.6} w {:+.2}",
                field.field.name(),
                name,
                field.m[l],
                field.u[l],
                field.weight(l as u8)
            );
        }
    }
    Ok(())
}
