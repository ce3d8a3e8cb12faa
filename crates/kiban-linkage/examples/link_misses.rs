//! Tabulates missed and false links by comparison vector and household co-movement (levels
//! only, never values): `cargo run -p kiban-linkage --example link_misses -- workdir`.

mod common;

use kiban_linkage::evaluate::person_of_each_record;
use kiban_linkage::link::{LinkOptions, score_candidates};
use kiban_linkage::model::{FIELD_COUNT, level_of};
use std::collections::BTreeMap;

/// Error kind, comparison levels, co-moved (`None` outside the no-household pairs).
type Row = (
    &'static str,
    [u8; FIELD_COUNT],
    Option<kiban_linkage::household::CoMove>,
);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (loaded, truth) = common::records_with_truth()?;
    let person: Vec<&str> = person_of_each_record(&loaded.record_ids, &truth);
    let linkable: Vec<u32> = loaded.linkable_indexes();
    let options = LinkOptions::default();
    let scored = score_candidates(&loaded, &linkable, &options);
    let threshold = (options.match_threshold / (1.0 - options.match_threshold)).log2();
    let mut table: BTreeMap<Row, (u64, f64)> = BTreeMap::new();
    // The ambiguous band: exact name and birth date, no shared household.
    let mut band: BTreeMap<(u8, bool, i64), (u64, u64)> = BTreeMap::new();
    // The kept pairs: every pair near or above the threshold, and every pair agreeing exactly
    // on the identity (pairs far below the threshold are not kept by the streamed scoring).
    for pair in &scored.pairs {
        let (a, b) = (pair.a, pair.b);
        let is_match = person[a as usize] == person[b as usize];
        let w = pair.weight;
        let p = pair.pattern;
        if level_of(p, 0) == 0 && level_of(p, 1) == 0 && (5..=11).contains(&level_of(p, 3)) {
            let e = band
                .entry((
                    level_of(p, 3),
                    pair.co_move == Some(kiban_linkage::household::CoMove::Together),
                    (w.floor() as i64).clamp(-6, 12),
                ))
                .or_default();
            if is_match {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
        let kind = match (is_match, w >= threshold) {
            (true, false) => "missed",
            (false, true) => "false link",
            _ => continue,
        };
        let levels = std::array::from_fn(|f| level_of(p, f));
        let e = table.entry((kind, levels, pair.co_move)).or_default();
        e.0 += 1;
        e.1 += w;
    }
    println!(
        "co-move m {:.4?} u {:?}",
        scored.co_move.m, scored.co_move.u
    );
    let household = &scored.model.fields[3];
    for (l, name) in household.field.levels().iter().enumerate() {
        println!(
            "household {l:>2} {name:58} m {:.5} w {:+.2} family-name correction {:+.2}",
            household.m[l],
            household.weight(l as u8),
            scored.residence.adjustment[l]
        );
    }
    println!(
        "band: household level, co-moved, weight bucket: matches, non-matches, observed, model"
    );
    for ((l, c, w), (m, n)) in &band {
        println!(
            "  {l:>2} {c:5} {w:>3}: {m:>6} {n:>6} observed {:.3} model {:.3}",
            *m as f64 / (*m + *n) as f64,
            1.0 / (1.0 + (-(*w as f64 + 0.5)).exp2())
        );
    }
    let mut rows: Vec<_> = table.into_iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1.0));
    for ((kind, levels, c), (n, w)) in rows.iter().take(40) {
        println!(
            "{kind:10} {levels:?} co-moved {c:?} {n:>6} mean weight {:+.2}",
            w / *n as f64
        );
    }
    Ok(())
}
