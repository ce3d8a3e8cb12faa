//! Blocking: several strict rules, each putting records that share a key into a block; the
//! candidate pairs are the union over rules of the pairs inside blocks, deduplicated. Pairs of two
//! records of the same provider are not candidates (a provider holds at most one record per
//! person). Blocks larger than a cap are skipped and reported.

use crate::records::{LinkRecord, StringPool};
use chrono::Datelike;
use rayon::prelude::*;
use std::hash::{Hash, Hasher};

/// A blocking rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockingRule {
    /// Birth date and the first two characters of the kana name.
    BirthDateKanaPrefix,
    /// Birth date and the first character of the kanji name.
    BirthDateKanjiPrefix,
    /// Birth date and the kanji given name (a changed family name still blocks).
    BirthDateGivenName,
    /// Birth year, month and day as an unordered pair, and the first kana character (day and
    /// month swapped still block).
    BirthYearUnorderedDayMonthKanaInitial,
    /// Insurance card: insurer, symbol and number (the household's card).
    InsuranceCard,
    /// Kanji name and postal code.
    KanjiNamePostalCode,
    /// Kana name and postal code.
    KanaNamePostalCode,
    /// Kanji name, birth month and day (a wrong year or era still blocks).
    KanjiNameBirthMonthDay,
    /// Kanji name and birth year (a wrong month or day still blocks).
    KanjiNameBirthYear,
    /// Birth date and postal code (names typed differently still block).
    BirthDatePostalCode,
}

/// All rules, in the order they run.
pub const BLOCKING_RULES: [BlockingRule; 10] = [
    BlockingRule::BirthDateKanaPrefix,
    BlockingRule::BirthDateKanjiPrefix,
    BlockingRule::BirthDateGivenName,
    BlockingRule::BirthYearUnorderedDayMonthKanaInitial,
    BlockingRule::InsuranceCard,
    BlockingRule::KanjiNamePostalCode,
    BlockingRule::KanaNamePostalCode,
    BlockingRule::KanjiNameBirthMonthDay,
    BlockingRule::KanjiNameBirthYear,
    BlockingRule::BirthDatePostalCode,
];

impl BlockingRule {
    /// The rule's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            BlockingRule::BirthDateKanaPrefix => "birth_date+kana_prefix",
            BlockingRule::BirthDateKanjiPrefix => "birth_date+kanji_prefix",
            BlockingRule::BirthDateGivenName => "birth_date+kanji_given_name",
            BlockingRule::BirthYearUnorderedDayMonthKanaInitial => {
                "birth_year+unordered_month_day+kana_initial"
            }
            BlockingRule::InsuranceCard => "insurance_card",
            BlockingRule::KanjiNamePostalCode => "kanji_name+postal_code",
            BlockingRule::KanaNamePostalCode => "kana_name+postal_code",
            BlockingRule::KanjiNameBirthMonthDay => "kanji_name+birth_month_day",
            BlockingRule::KanjiNameBirthYear => "kanji_name+birth_year",
            BlockingRule::BirthDatePostalCode => "birth_date+postal_code",
        }
    }

    /// The blocking key of a record, `None` when a needed field is empty.
    pub fn key(self, pool: &StringPool, record: &LinkRecord) -> Option<u64> {
        let mut hasher = rustc_hash::FxHasher::default();
        (self as u8).hash(&mut hasher);
        let date = record.birth_date;
        let prefix = |id: u32, chars: usize| -> Option<&str> {
            let text = pool.get(id);
            if text.is_empty() {
                return None;
            }
            let end = text
                .char_indices()
                .nth(chars)
                .map_or(text.len(), |(at, _)| at);
            Some(&text[..end])
        };
        let nonzero = |id: u32| (id != 0).then_some(id);
        match self {
            BlockingRule::BirthDateKanaPrefix => {
                (date?, prefix(record.kana.key, 2)?).hash(&mut hasher)
            }
            BlockingRule::BirthDateKanjiPrefix => {
                (date?, prefix(record.kanji.key, 1)?).hash(&mut hasher)
            }
            BlockingRule::BirthDateGivenName => {
                (date?, nonzero(record.kanji.given)?).hash(&mut hasher)
            }
            BlockingRule::BirthYearUnorderedDayMonthKanaInitial => {
                let d = date?;
                let (low, high) = (d.month().min(d.day()), d.month().max(d.day()));
                (d.year(), low, high, prefix(record.kana.key, 1)?).hash(&mut hasher)
            }
            BlockingRule::InsuranceCard => {
                if !record.card.is_present() {
                    return None;
                }
                let c = &record.card;
                (c.insurer, c.symbol, c.number).hash(&mut hasher)
            }
            BlockingRule::KanjiNamePostalCode => {
                (nonzero(record.kanji.key)?, record.postal_code?).hash(&mut hasher)
            }
            BlockingRule::KanaNamePostalCode => {
                (nonzero(record.kana.key)?, record.postal_code?).hash(&mut hasher)
            }
            BlockingRule::KanjiNameBirthMonthDay => {
                let d = date?;
                (nonzero(record.kanji.key)?, d.month(), d.day()).hash(&mut hasher)
            }
            BlockingRule::KanjiNameBirthYear => {
                (nonzero(record.kanji.key)?, date?.year()).hash(&mut hasher)
            }
            BlockingRule::BirthDatePostalCode => (date?, record.postal_code?).hash(&mut hasher),
        }
        Some(hasher.finish())
    }
}

/// What one rule produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleReport {
    /// The rule.
    pub rule: BlockingRule,
    /// Blocks with at least two records.
    pub blocks: u64,
    /// Pairs generated (before deduplication across rules).
    pub pairs: u64,
    /// Blocks skipped because they held more records than the cap.
    pub oversized_blocks: u64,
    /// Records in the skipped blocks.
    pub records_in_oversized_blocks: u64,
}

/// The candidate pairs and what each rule contributed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidates {
    /// Pairs `(i, j)` of record indexes with `i < j`, sorted, without duplicates.
    pub pairs: Vec<(u32, u32)>,
    /// Per rule.
    pub rules: Vec<RuleReport>,
}

/// Generates the candidate pairs among `linkable` record indexes.
pub fn candidate_pairs(
    pool: &StringPool,
    records: &[LinkRecord],
    linkable: &[u32],
    max_block_size: usize,
) -> Candidates {
    let mut all: Vec<u64> = Vec::new();
    let mut reports = Vec::new();
    for rule in BLOCKING_RULES {
        let mut keyed: Vec<(u64, u32)> = linkable
            .par_iter()
            .filter_map(|&i| rule.key(pool, &records[i as usize]).map(|k| (k, i)))
            .collect();
        keyed.par_sort_unstable();
        let mut blocks: Vec<&[(u64, u32)]> = keyed
            .chunk_by(|a, b| a.0 == b.0)
            .filter(|block| block.len() >= 2)
            .collect();
        let mut report = RuleReport {
            rule,
            blocks: blocks.len() as u64,
            pairs: 0,
            oversized_blocks: 0,
            records_in_oversized_blocks: 0,
        };
        blocks.retain(|block| {
            if block.len() > max_block_size {
                report.oversized_blocks += 1;
                report.records_in_oversized_blocks += block.len() as u64;
                false
            } else {
                true
            }
        });
        let pairs: Vec<u64> = blocks
            .par_iter()
            .flat_map_iter(|block| {
                let mut out = Vec::new();
                for (x, &(_, i)) in block.iter().enumerate() {
                    for &(_, j) in &block[x + 1..] {
                        if records[i as usize].hospital != records[j as usize].hospital {
                            let (a, b) = (i.min(j), i.max(j));
                            out.push((u64::from(a) << 32) | u64::from(b));
                        }
                    }
                }
                out
            })
            .collect();
        report.pairs = pairs.len() as u64;
        all.extend(pairs);
        // Deduplicate as we go so that memory holds unique pairs plus one rule's output.
        all.par_sort_unstable();
        all.dedup();
        reports.push(report);
    }
    Candidates {
        pairs: all
            .into_iter()
            .map(|p| ((p >> 32) as u32, p as u32))
            .collect(),
        rules: reports,
    }
}

/// The blocking rules of the EM training sessions: each blocks on one field only, so that the
/// other fields of its non-matching pairs behave as among random pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrainingRule {
    /// The same birth date: trains the names, sex and household.
    BirthDate,
    /// The same kanji name: trains the birth date, sex and household.
    KanjiName,
    /// The same insurance card (insurer, symbol, number): the household's members; trains how
    /// branch numbers and residence differ within a household, for matches and non-matches.
    InsuranceCard,
}

impl TrainingRule {
    /// The rule's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            TrainingRule::BirthDate => "training: same birth date",
            TrainingRule::KanjiName => "training: same kanji name",
            TrainingRule::InsuranceCard => "training: same insurance card",
        }
    }

    fn key(self, record: &LinkRecord) -> Option<u64> {
        // Blocks of one rule only: the rule is not hashed in.
        let mut hasher = rustc_hash::FxHasher::default();
        match self {
            TrainingRule::BirthDate => record.birth_date?.hash(&mut hasher),
            TrainingRule::KanjiName => (record.kanji.key != 0)
                .then_some(record.kanji.key)?
                .hash(&mut hasher),
            TrainingRule::InsuranceCard => {
                let c = &record.card;
                c.is_present()
                    .then_some((c.insurer, c.symbol, c.number))?
                    .hash(&mut hasher)
            }
        }
        Some(hasher.finish())
    }
}

/// A deterministic sample of the pairs of a training rule's blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingSample {
    /// Record pairs of the sampled blocks (records of different providers).
    pub pairs: Vec<(u32, u32)>,
    /// Estimated pairs over all blocks (sampled pairs divided by the sampled share).
    pub estimated_pairs: f64,
}

/// Samples whole blocks of `rule` (blocks over `max_block_size` records skipped) so that about
/// `max_pairs` pairs are kept.
pub fn training_sample(
    records: &[LinkRecord],
    linkable: &[u32],
    rule: TrainingRule,
    max_block_size: usize,
    max_pairs: usize,
) -> TrainingSample {
    let mut keyed: Vec<(u64, u32)> = linkable
        .par_iter()
        .filter_map(|&i| rule.key(&records[i as usize]).map(|k| (k, i)))
        .collect();
    keyed.par_sort_unstable();
    let blocks: Vec<&[(u64, u32)]> = keyed
        .chunk_by(|a, b| a.0 == b.0)
        .filter(|block| block.len() >= 2 && block.len() <= max_block_size)
        .collect();
    let all_pairs: f64 = blocks
        .iter()
        .map(|b| (b.len() * (b.len() - 1) / 2) as f64)
        .sum();
    let share = if all_pairs <= max_pairs as f64 {
        1.0
    } else {
        max_pairs as f64 / all_pairs
    };
    // Blocks are kept by a hash of their key: deterministic, and independent of block content.
    let cut = (share * f64::from(u32::MAX)) as u64;
    let pairs: Vec<(u32, u32)> = blocks
        .par_iter()
        .filter(|block| share >= 1.0 || mix(block[0].0) & 0xFFFF_FFFF <= cut)
        .flat_map_iter(|block| {
            let mut out = Vec::new();
            for (x, &(_, i)) in block.iter().enumerate() {
                for &(_, j) in &block[x + 1..] {
                    if records[i as usize].hospital != records[j as usize].hospital {
                        out.push((i.min(j), i.max(j)));
                    }
                }
            }
            out
        })
        .collect();
    TrainingSample {
        estimated_pairs: pairs.len() as f64 / share,
        pairs,
    }
}

/// SplitMix64's finalizer: spreads a key's bits so that its low bits sample fairly.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}
