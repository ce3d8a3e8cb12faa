//! Blocking: several strict rules, each putting records that share a key into a block; the
//! candidate pairs are the union over rules of the pairs inside blocks, deduplicated. Pairs of two
//! records of the same provider are not candidates (a provider holds at most one record per
//! person). Blocks larger than a cap are skipped and reported.
//!
//! [`BlockIndex`] generates the candidates block by block without storing them: a pair that
//! several rules find comes from the first of them only (a later rule skips a pair whose records
//! share a block of an earlier rule), so each pair comes once without a set of the pairs seen.
//!
//! ```
//! use kiban_linkage::blocking::BlockIndex;
//! use kiban_linkage::records::load_identity_reader;
//! use std::path::Path;
//!
//! let csv = "record_id,hospital_id,hospital_patient_id,name_kanji,name_kana,sex,birth_date,\
//! postal_code,address,insurer_number,insured_symbol,insured_number,insured_branch\n\
//! r1,h1,p1,山田　太郎,ヤマダ　タロウ,1,1980-01-02,1000001,東京都千代田区1-1,,,,\n\
//! r2,h2,p9,山田　太郎,ヤマダ　タロウ,1,1980-01-02,1000001,東京都千代田区1-1,,,,\n";
//! let loaded = load_identity_reader(Path::new("example.csv"), csv.as_bytes())?;
//! let linkable = [0, 1];
//! let index = BlockIndex::new(&loaded.pool, &loaded.records, &linkable, 1_000);
//! // Every rule blocks the two records together; the pair comes once.
//! let pairs = index.fold_pairs(
//!     &loaded.records,
//!     Vec::new,
//!     |pairs: &mut Vec<(u32, u32)>, a, b| pairs.push((a, b)),
//!     |mut x, y| {
//!         x.extend(y);
//!         x
//!     },
//! );
//! assert_eq!(pairs, vec![(0, 1)]);
//! # Ok::<(), kiban_linkage::records::LoadError>(())
//! ```

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

/// Generates the candidate pairs among `linkable` record indexes, all at once and sorted. Its
/// memory grows with the candidate pairs: a linkage run streams them with [`BlockIndex`]
/// instead; this is for small inputs, tests and diagnostics.
pub fn candidate_pairs(
    pool: &StringPool,
    records: &[LinkRecord],
    linkable: &[u32],
    max_block_size: usize,
) -> Candidates {
    let index = BlockIndex::new(pool, records, linkable, max_block_size);
    let mut pairs = index.fold_pairs(
        records,
        Vec::new,
        |out: &mut Vec<(u32, u32)>, a, b| out.push((a, b)),
        |mut x, y| {
            x.extend(y);
            x
        },
    );
    pairs.par_sort_unstable();
    Candidates {
        pairs,
        rules: index.rules().to_vec(),
    }
}

/// Number of blocking rules.
pub const RULE_COUNT: usize = BLOCKING_RULES.len();

/// The block number of a record under a rule where it is in no block that generates pairs (no
/// key, a block of one, or a block over the size cap).
const NO_BLOCK: u32 = u32::MAX;

/// The blocks of every rule, as each record's block number per rule: the candidate pairs are
/// generated block by block without being stored ([`BlockIndex::fold_pairs`]). A pair found by
/// several rules is generated by the first of them only: a later rule skips a pair when the two
/// records share a generating block of an earlier rule, so each candidate pair comes once
/// without a set of the pairs seen. Memory: one `u32` per record and rule.
#[derive(Debug, Clone)]
pub struct BlockIndex {
    block_of: Vec<[u32; RULE_COUNT]>,
    block_counts: [u32; RULE_COUNT],
    rules: Vec<RuleReport>,
}

impl BlockIndex {
    /// Blocks the `linkable` records under every rule of [`BLOCKING_RULES`]; blocks of more than
    /// `max_block_size` records generate no pairs (they are reported).
    pub fn new(
        pool: &StringPool,
        records: &[LinkRecord],
        linkable: &[u32],
        max_block_size: usize,
    ) -> BlockIndex {
        let mut block_of = vec![[NO_BLOCK; RULE_COUNT]; records.len()];
        let mut block_counts = [0u32; RULE_COUNT];
        let mut rules = Vec::with_capacity(RULE_COUNT);
        for (r, rule) in BLOCKING_RULES.into_iter().enumerate() {
            let mut keyed: Vec<(u64, u32)> = linkable
                .par_iter()
                .filter_map(|&i| rule.key(pool, &records[i as usize]).map(|k| (k, i)))
                .collect();
            keyed.par_sort_unstable();
            let mut report = RuleReport {
                rule,
                blocks: 0,
                pairs: 0,
                oversized_blocks: 0,
                records_in_oversized_blocks: 0,
            };
            let mut blocks = 0u32;
            let mut providers: Vec<u32> = Vec::new();
            for block in keyed.chunk_by(|a, b| a.0 == b.0) {
                if block.len() < 2 {
                    continue;
                }
                report.blocks += 1;
                if block.len() > max_block_size {
                    report.oversized_blocks += 1;
                    report.records_in_oversized_blocks += block.len() as u64;
                    continue;
                }
                // Pairs of different providers: all pairs less those within one provider.
                providers.clear();
                providers.extend(block.iter().map(|&(_, i)| records[i as usize].hospital));
                providers.sort_unstable();
                let n = block.len() as u64;
                let same: u64 = providers
                    .chunk_by(|a, b| a == b)
                    .map(|c| (c.len() as u64) * (c.len() as u64 - 1) / 2)
                    .sum();
                report.pairs += n * (n - 1) / 2 - same;
                for &(_, i) in block {
                    block_of[i as usize][r] = blocks;
                }
                blocks += 1;
            }
            block_counts[r] = blocks;
            rules.push(report);
        }
        BlockIndex {
            block_of,
            block_counts,
            rules,
        }
    }

    /// What each rule produced (its pairs counted before deduplication across rules).
    pub fn rules(&self) -> &[RuleReport] {
        &self.rules
    }

    /// Whether the pair of records `i` and `j` is generated by an earlier rule than `rule`.
    fn found_before(&self, i: u32, j: u32, rule: usize) -> bool {
        let (x, y) = (&self.block_of[i as usize], &self.block_of[j as usize]);
        (0..rule).any(|r| x[r] != NO_BLOCK && x[r] == y[r])
    }

    /// Folds every candidate pair `(a, b)` (`a < b`, records of different providers, each pair
    /// once) into accumulators on all cores: `init` makes an accumulator (one per worker
    /// thread), `visit` adds a pair, `merge` joins two. The pairs come block by block, in no
    /// fixed order.
    pub fn fold_pairs<A: Send>(
        &self,
        records: &[LinkRecord],
        init: impl Fn() -> A + Sync + Send,
        visit: impl Fn(&mut A, u32, u32) + Sync + Send,
        merge: impl Fn(A, A) -> A,
    ) -> A {
        let slots = worker_slots();
        for rule in 0..RULE_COUNT {
            let blocks = self.block_counts[rule] as usize;
            if blocks == 0 {
                continue;
            }
            // The records of each block, contiguous (a counting sort by block number).
            let mut start = vec![0u32; blocks + 1];
            for ids in &self.block_of {
                if ids[rule] != NO_BLOCK {
                    start[ids[rule] as usize + 1] += 1;
                }
            }
            for b in 0..blocks {
                start[b + 1] += start[b];
            }
            let mut fill = start.clone();
            let mut members = vec![0u32; start[blocks] as usize];
            for (i, ids) in self.block_of.iter().enumerate() {
                if ids[rule] != NO_BLOCK {
                    let slot = &mut fill[ids[rule] as usize];
                    members[*slot as usize] = i as u32;
                    *slot += 1;
                }
            }
            drop(fill);
            let whole_block = |b: usize| (start[b + 1] - start[b]) as usize;
            self.visit_blocks(
                records,
                rule,
                &members,
                &start,
                whole_block,
                &slots,
                &init,
                &visit,
            );
        }
        merge_slots(slots, init, merge)
    }

    /// Folds the candidate pairs with at least one new record (`is_new[r]`, one entry per
    /// record) as [`BlockIndex::fold_pairs`] does: exactly the pairs of `fold_pairs` that touch
    /// a new record, each once, from the same first rule. A block without a new record is not
    /// visited, and inside a block the pairs of two existing records are not enumerated: the
    /// work grows with the new records' pairs, not with all pairs. An `is_new` shorter than the
    /// records counts the missing ones as existing.
    pub fn fold_pairs_touching<A: Send>(
        &self,
        records: &[LinkRecord],
        is_new: &[bool],
        init: impl Fn() -> A + Sync + Send,
        visit: impl Fn(&mut A, u32, u32) + Sync + Send,
        merge: impl Fn(A, A) -> A,
    ) -> A {
        let new = |i: usize| is_new.get(i).copied().unwrap_or(false);
        let slots = worker_slots();
        for rule in 0..RULE_COUNT {
            let blocks = self.block_counts[rule] as usize;
            if blocks == 0 {
                continue;
            }
            // The blocks holding a new record, numbered densely.
            let mut touched = vec![NO_BLOCK; blocks];
            let mut touched_blocks = 0u32;
            for (i, ids) in self.block_of.iter().enumerate() {
                let b = ids[rule];
                if b != NO_BLOCK && new(i) && touched[b as usize] == NO_BLOCK {
                    touched[b as usize] = touched_blocks;
                    touched_blocks += 1;
                }
            }
            let touched_blocks = touched_blocks as usize;
            if touched_blocks == 0 {
                continue;
            }
            // The members of each touched block, contiguous, its new records first.
            let mut start = vec![0u32; touched_blocks + 1];
            let mut new_members = vec![0u32; touched_blocks];
            for (i, ids) in self.block_of.iter().enumerate() {
                let b = ids[rule];
                if b != NO_BLOCK && touched[b as usize] != NO_BLOCK {
                    let t = touched[b as usize] as usize;
                    start[t + 1] += 1;
                    if new(i) {
                        new_members[t] += 1;
                    }
                }
            }
            for t in 0..touched_blocks {
                start[t + 1] += start[t];
            }
            let mut fill = start.clone();
            let mut members = vec![0u32; start[touched_blocks] as usize];
            for wanted_new in [true, false] {
                for (i, ids) in self.block_of.iter().enumerate() {
                    let b = ids[rule];
                    if b != NO_BLOCK && touched[b as usize] != NO_BLOCK && new(i) == wanted_new {
                        let slot = &mut fill[touched[b as usize] as usize];
                        members[*slot as usize] = i as u32;
                        *slot += 1;
                    }
                }
            }
            drop(fill);
            drop(touched);
            // A pair with a new record has its first record among the block's new ones.
            let new_first = |t: usize| new_members[t] as usize;
            self.visit_blocks(
                records, rule, &members, &start, new_first, &slots, &init, &visit,
            );
        }
        merge_slots(slots, init, merge)
    }

    /// Visits on all cores the pairs of rule `rule`'s blocks (block `b`'s records are
    /// `members[start[b]..start[b + 1]]`) whose first record is among the block's first
    /// `leading(b)` members: records of different providers, not generated by an earlier rule.
    #[allow(clippy::too_many_arguments)]
    fn visit_blocks<A: Send>(
        &self,
        records: &[LinkRecord],
        rule: usize,
        members: &[u32],
        start: &[u32],
        leading: impl Fn(usize) -> usize + Sync,
        slots: &[std::sync::Mutex<Option<A>>],
        init: &(impl Fn() -> A + Sync),
        visit: &(impl Fn(&mut A, u32, u32) + Sync),
    ) {
        (0..start.len() - 1).into_par_iter().for_each(|b| {
            let block = &members[start[b] as usize..start[b + 1] as usize];
            let slot = rayon::current_thread_index().unwrap_or(0) % slots.len();
            let mut guard = match slots[slot].lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            let acc = guard.get_or_insert_with(init);
            for (x, &i) in block[..leading(b)].iter().enumerate() {
                for &j in &block[x + 1..] {
                    if records[i as usize].hospital != records[j as usize].hospital
                        && !self.found_before(i, j, rule)
                    {
                        visit(acc, i.min(j), i.max(j));
                    }
                }
            }
        });
    }
}

/// One accumulator per worker thread, kept across rules: each block locks its own thread's
/// accumulator, never another's.
fn worker_slots<A>() -> Vec<std::sync::Mutex<Option<A>>> {
    (0..rayon::current_num_threads().max(1))
        .map(|_| std::sync::Mutex::new(None))
        .collect()
}

/// The workers' accumulators joined (`init` when no block had a pair).
fn merge_slots<A>(
    slots: Vec<std::sync::Mutex<Option<A>>>,
    init: impl Fn() -> A,
    merge: impl Fn(A, A) -> A,
) -> A {
    slots
        .into_iter()
        .filter_map(|slot| match slot.into_inner() {
            Ok(acc) => acc,
            Err(poisoned) => poisoned.into_inner(),
        })
        .reduce(merge)
        .unwrap_or_else(init)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{LoadedRecords, load_identity_csv};
    use std::collections::BTreeSet;

    fn synth_records(persons: u64) -> LoadedRecords {
        let dir = tempfile::tempdir().unwrap();
        let config = kiban_synth::SynthConfig {
            persons,
            seed: 5,
            ..kiban_synth::SynthConfig::default()
        };
        let summary = kiban_synth::write_identity_csv(&config, dir.path(), &|_| {}).unwrap();
        load_identity_csv(&summary.records_path).unwrap()
    }

    /// The candidate pairs by definition: per rule, every pair of records of different
    /// providers in a block within the cap; their union.
    fn union_of_rules(
        loaded: &LoadedRecords,
        linkable: &[u32],
        max_block_size: usize,
    ) -> (BTreeSet<(u32, u32)>, Vec<u64>) {
        let mut union = BTreeSet::new();
        let mut per_rule = Vec::new();
        for rule in BLOCKING_RULES {
            let mut blocks: std::collections::HashMap<u64, Vec<u32>> = Default::default();
            for &i in linkable {
                if let Some(k) = rule.key(&loaded.pool, &loaded.records[i as usize]) {
                    blocks.entry(k).or_default().push(i);
                }
            }
            let mut generated = 0;
            for block in blocks.values().filter(|b| b.len() <= max_block_size) {
                for (x, &i) in block.iter().enumerate() {
                    for &j in &block[x + 1..] {
                        let (ri, rj) = (&loaded.records[i as usize], &loaded.records[j as usize]);
                        if ri.hospital != rj.hospital {
                            generated += 1;
                            union.insert((i.min(j), i.max(j)));
                        }
                    }
                }
            }
            per_rule.push(generated);
        }
        (union, per_rule)
    }

    #[test]
    fn streamed_candidates_are_the_union_of_the_rules_each_pair_once() {
        let loaded = synth_records(3_000);
        let linkable: Vec<u32> = loaded.linkable_indexes();
        // A small cap makes some blocks oversized: their pairs must still come from later rules.
        for max_block_size in [1_000, 3] {
            let (union, per_rule) = union_of_rules(&loaded, &linkable, max_block_size);
            let index = BlockIndex::new(&loaded.pool, &loaded.records, &linkable, max_block_size);
            let mut streamed = index.fold_pairs(
                &loaded.records,
                Vec::new,
                |out: &mut Vec<(u32, u32)>, a, b| out.push((a, b)),
                |mut x, y| {
                    x.extend(y);
                    x
                },
            );
            let count = streamed.len();
            streamed.sort_unstable();
            streamed.dedup();
            assert_eq!(
                streamed.len(),
                count,
                "a pair came twice (cap {max_block_size})"
            );
            assert!(streamed.iter().all(|&(a, b)| a < b));
            let streamed: BTreeSet<(u32, u32)> = streamed.into_iter().collect();
            assert!(union.len() > 1_000, "{}", union.len());
            assert_eq!(streamed, union, "cap {max_block_size}");
            let reported: Vec<u64> = index.rules().iter().map(|r| r.pairs).collect();
            assert_eq!(reported, per_rule);
            if max_block_size == 3 {
                assert!(index.rules().iter().any(|r| r.oversized_blocks > 0));
            }
            let collected =
                candidate_pairs(&loaded.pool, &loaded.records, &linkable, max_block_size);
            assert_eq!(collected.pairs.len(), union.len());
            assert!(collected.pairs.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn a_pair_of_an_earlier_rule_is_skipped_by_later_rules() {
        let loaded = synth_records(300);
        let linkable: Vec<u32> = loaded.linkable_indexes();
        let index = BlockIndex::new(&loaded.pool, &loaded.records, &linkable, 1_000);
        let generated: u64 = index.rules().iter().map(|r| r.pairs).sum();
        let streamed = index.fold_pairs(&loaded.records, || 0u64, |n, _, _| *n += 1, |x, y| x + y);
        // Rules overlap (a true match agrees on most keys), so deduplication must drop pairs.
        assert!(streamed < generated, "{streamed} of {generated}");
        let (union, _) = union_of_rules(&loaded, &linkable, 1_000);
        assert_eq!(streamed, union.len() as u64);
    }

    #[test]
    fn pairs_touching_new_records_are_the_candidate_pairs_with_a_new_record() {
        let loaded = synth_records(3_000);
        let linkable: Vec<u32> = loaded.linkable_indexes();
        let collect = |mut x: Vec<(u32, u32)>, y: Vec<(u32, u32)>| {
            x.extend(y);
            x
        };
        let push = |out: &mut Vec<(u32, u32)>, a: u32, b: u32| out.push((a, b));
        let n = loaded.records.len();
        for max_block_size in [1_000, 3] {
            let index = BlockIndex::new(&loaded.pool, &loaded.records, &linkable, max_block_size);
            let mut all = index.fold_pairs(&loaded.records, Vec::new, push, collect);
            all.sort_unstable();
            // New-record sets: a few random shares (a fixed-seed generator), none and all.
            let mut state = 0x2545_F491_4F6C_DD1Du64;
            let mut next = move || {
                state = mix(state.wrapping_add(0x9E37_79B9_7F4A_7C15));
                state
            };
            let mut sets: Vec<Vec<bool>> = [2u64, 10, 50]
                .iter()
                .map(|&percent| (0..n).map(|_| next() % 100 < percent).collect())
                .collect();
            sets.push(vec![false; n]);
            sets.push(vec![true; n]);
            for is_new in &sets {
                let expected: Vec<(u32, u32)> = all
                    .iter()
                    .copied()
                    .filter(|&(a, b)| is_new[a as usize] || is_new[b as usize])
                    .collect();
                let mut touching =
                    index.fold_pairs_touching(&loaded.records, is_new, Vec::new, push, collect);
                let count = touching.len();
                touching.sort_unstable();
                touching.dedup();
                assert_eq!(touching.len(), count, "a pair came twice");
                assert_eq!(touching, expected, "cap {max_block_size}");
            }
            let some_new = sets[1].iter().filter(|x| **x).count();
            assert!(some_new > 0);
            assert!(all.len() > 1_000);
        }
    }
}
