//! The whole linkage: load, block, fit the model, score, cluster, write.
//!
//! Memory grows with the records, not with the candidate pairs (which grow with the square of
//! the namesakes): the candidates are generated block by block and streamed
//! ([`crate::blocking::BlockIndex`]); what the model learns from all of them is summed on the
//! way, and only the pairs that can matter one by one are kept ([`score_candidates`]).

use crate::blocking::{BlockIndex, RuleReport, TrainingRule, training_sample};
use crate::cluster::{Constraints, ScoredPair, cluster_with_constraints};
use crate::household::{CoMove, CoMoveEvidence, Households, shares_no_household};
use crate::identity_group::{GroupSizeEvidence, IdentityGroups};
use crate::model::{
    CohortNameFrequencies, EmSession, EmSettings, FIELD_COUNT, FIELDS, FamilyNameResidence, Field,
    FieldParameters, ModelParameters, Pattern, TermFrequencies, WithinHousehold, compare_records,
    condition_on_shared_card, count_patterns, estimate_u_random, estimate_u_within_cohorts, fit_em,
    fit_em_anchored, level_of, posteriors, probability_of_weight, starting_m,
};
use crate::provider_pair::ProviderPairEvidence;
use crate::records::{
    LinkRecord, LoadError, LoadedRecords, UnlinkableRow, UnusableValues, load_identity_csv,
};
use rayon::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Settings of a linkage run.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkOptions {
    /// Pairs whose match probability is at least this are linked.
    pub match_threshold: f64,
    /// Blocks with more records than this are skipped (and reported).
    pub max_block_size: usize,
    /// Random record pairs sampled to estimate the u-probabilities.
    pub random_pairs: usize,
    /// EM iteration cap.
    pub max_em_iterations: usize,
    /// EM stops when no parameter moves more than this.
    pub em_tolerance: f64,
    /// Pairs sampled per EM training session.
    pub training_pairs: usize,
    /// Seed of the random pair sampling.
    pub seed: u64,
    /// Pairs whose final match probability lies in this band (both ends included) go to
    /// clerical review ([`Linkage::review`]); `None` proposes none. The lower end should not be
    /// below the probability of the clustering cut (the match threshold less 8 bits: 0.009 at
    /// the default threshold), under which pairs are not kept. The default band,
    /// [`DEFAULT_REVIEW_BAND`], is explained there.
    pub review_band: Option<(f64, f64)>,
    /// At most this many pairs are proposed, the most uncertain (probability nearest one half)
    /// first: the review list stays small however many records are linked.
    pub review_limit: usize,
    /// The memory budget of the pairs kept one by one while the candidates stream past for
    /// being near the clustering cut (about 32 bytes each), beyond those every step needs
    /// (exact agreement, one identity group, households that moved together: they grow with
    /// the matches). Near the budget the bar of the pairs kept for being
    /// near the clustering cut is raised and the weaker ones are let go; the second pass over
    /// the candidates finds any of them the learned model lifts over the cut after all, so the
    /// persons do not depend on it ([`score_candidates`]). Candidate pairs of namesakes grow
    /// with the square of the records: without a budget, 10 million records kept more pairs
    /// than 24 GiB hold.
    pub max_kept_pairs: usize,
    /// The memory budget of the pairs under the match threshold that the second pass over the
    /// candidates finds over the clustering cut ([`score_candidates`]), about 32 bytes each.
    /// Such pairs join two clusters only when the rest of the clusters vouch for them. Near the
    /// budget the clustering floor is raised above the cut, the weakest are let go, and at the
    /// end every pair under the floor is left out of clustering alike
    /// ([`ScoredCandidates::cluster_floor`]); pairs at or above the match threshold are always
    /// kept. At 10 million records the pairs over the cut number in the hundreds of millions
    /// (namesakes grow with the square of the records); the acceptance runs (250k and 1M
    /// records) stay under the default.
    pub max_weak_pairs: usize,
}

/// The default match threshold: two records are linked when a match is more likely than not.
///
/// The model's probabilities are calibrated (measured against the truth of synthetic
/// populations, `examples/link_diagnose.rs`), so the even odds decide each pair the way that
/// is wrong least often; the uncertain pairs around it go to clerical review
/// ([`DEFAULT_REVIEW_BAND`]). At 1M records (`kiban synth --persons 686000 --seed 13`), 0.5
/// against 0.7: pairwise precision 0.9961 against 0.9982, recall 0.9939 against 0.9875,
/// cluster precision 0.9935 against 0.9888 (a person split in two costs two inexact clusters).
pub const DEFAULT_MATCH_THRESHOLD: f64 = 0.5;

/// The default band of clerical review: match probability from 0.2 to 0.98.
///
/// Measured on the synthetic population of 248,770 records (`kiban synth --persons 171000
/// --seed 11`, default options; `cargo run --release -p kiban-linkage --example review_band --
/// 171000 11 DIR`): 3,281 pairs lie in this band, 2,642 of them true matches, and 447 of them
/// are decided wrongly by the match threshold alone (26 matches left apart, 421 non-matches
/// joined). Outside the band the pairs are nearly all settled: 92,858 pairs at 0.98 or above
/// hold 9 non-matches, and the 696 pairs from 0.02 to 0.2 hold 22 matches. The band so holds
/// 94 % of the pairs the threshold gets wrong between 0.02 and 1, in a queue of about three
/// thousand pairs per quarter million records. Candidate pairs of namesakes grow faster than
/// the records, so larger runs queue more; [`DEFAULT_REVIEW_LIMIT`] caps the list.
pub const DEFAULT_REVIEW_BAND: (f64, f64) = (0.2, 0.98);

/// The default cap of the review list ([`LinkOptions::review_limit`]).
pub const DEFAULT_REVIEW_LIMIT: usize = 100_000;

/// The default budget of pairs kept near the cut while streaming
/// ([`LinkOptions::max_kept_pairs`]): 2^25 pairs, about 1 GiB. The runs of the acceptance
/// (250k and 1M records) stay well under it.
pub const DEFAULT_MAX_KEPT_PAIRS: usize = 1 << 25;

/// The default budget of pairs under the match threshold found over the clustering cut by the
/// second pass ([`LinkOptions::max_weak_pairs`]): 2^26 pairs, about 2 GiB.
pub const DEFAULT_MAX_WEAK_PAIRS: usize = 1 << 26;

/// The name of the evidence entry that holds a reviewed pair's weight beyond its field levels
/// ([`ReviewCandidate::evidence`]).
pub const ADJUSTMENTS_EVIDENCE: &str = "adjustments";

impl Default for LinkOptions {
    fn default() -> Self {
        LinkOptions {
            match_threshold: DEFAULT_MATCH_THRESHOLD,
            max_block_size: 1_000,
            random_pairs: 1_000_000,
            max_em_iterations: 500,
            em_tolerance: 1e-7,
            training_pairs: 2_000_000,
            seed: 0x6b69_6261_6e00,
            review_band: Some(DEFAULT_REVIEW_BAND),
            review_limit: DEFAULT_REVIEW_LIMIT,
            max_kept_pairs: DEFAULT_MAX_KEPT_PAIRS,
            max_weak_pairs: DEFAULT_MAX_WEAK_PAIRS,
        }
    }
}

/// Why a linkage run failed. Messages name files, lines and columns, never values.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The input could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The output could not be written.
    #[error("{path}: cannot write: {source}")]
    Write {
        /// The output file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// What a linkage run did.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkReport {
    /// Records read.
    pub records: u64,
    /// Records that took part in linkage.
    pub linkable_records: u64,
    /// Rows that could not be linked (each is a person of its own in the output).
    pub unlinkable: Vec<UnlinkableRow>,
    /// Present but unusable values, treated as missing.
    pub unusable_values: UnusableValues,
    /// What each blocking rule produced.
    pub blocking: Vec<RuleReport>,
    /// Distinct candidate pairs compared.
    pub pairs_compared: u64,
    /// Distinct comparison vectors among them.
    pub distinct_patterns: u64,
    /// The fitted model (m and u per level, λ, EM iterations).
    pub model: ModelParameters,
    /// The learned weight of household co-movement ([`crate::household`]).
    pub co_move: CoMoveEvidence,
    /// Candidate pairs sharing no household whose households moved together.
    pub co_moved_pairs: u64,
    /// The learned weight of namesake density ([`crate::identity_group`]).
    pub group_size: GroupSizeEvidence,
    /// The learned weight of the pair of providers ([`crate::provider_pair`]).
    pub provider_pairs: ProviderPairEvidence,
    /// The regional correction of residence levels for pairs sharing a family name.
    pub residence: FamilyNameResidence,
    /// The correction of name and birth-date levels for pairs of one household.
    pub within_household: WithinHousehold,
    /// The prior in bits of a pair of one identity at one provider.
    pub same_provider_prior: f64,
    /// Pairs kept near the cut while streaming and let go again within
    /// [`LinkOptions::max_kept_pairs`] (the second pass finds those that matter).
    pub pairs_let_go: u64,
    /// The match probability from which every candidate pair went to clustering: that of the
    /// clustering cut, or higher when the pairs over the cut exceeded
    /// [`LinkOptions::max_weak_pairs`] ([`ScoredCandidates::cluster_floor`]).
    pub cluster_floor_probability: f64,
    /// Pairs over the clustering cut left out under the raised floor.
    pub weak_pairs_let_go: u64,
    /// Signs that the trained model is not of the matches
    /// ([`ModelParameters::implausible_fields`]); empty when it is plausible.
    pub model_warnings: Vec<String>,
    /// Pairs at or above the match threshold.
    pub pairs_above_threshold: u64,
    /// Merges made.
    pub merges: u64,
    /// Merges refused because a provider would have held two records of one person.
    pub merges_refused_same_provider: u64,
    /// Persons in the output.
    pub persons: u64,
    /// Pairs whose match probability lies in the review band (before the cap and without the
    /// pairs a reviewer already decided).
    pub review_pairs_in_band: u64,
    /// A reviewer's same-person decisions that joined two clusters.
    pub must_links_applied: u64,
    /// Same-person decisions refused: they would have put a different-persons pair into one
    /// person.
    pub must_links_refused: u64,
    /// Merges refused because a reviewer judged two of their records different persons.
    pub merges_refused_cannot_link: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// The result of linking loaded records.
#[derive(Debug, Clone, PartialEq)]
pub struct Linkage {
    /// Person number of each record (0-based).
    pub person: Vec<u32>,
    /// Per record: for a linked record the probability of the strongest link that put it in its
    /// person (with the evidence of the clusters it joined); for a record linked to nothing, 1 minus the probability of its strongest
    /// candidate pair (how sure it is a person of its own); `None` for unlinkable rows.
    pub match_probability: Vec<Option<f64>>,
    /// The pairs for clerical review: match probability in [`LinkOptions::review_band`], most
    /// uncertain first, at most [`LinkOptions::review_limit`], pairs with a reviewer's decision
    /// left out.
    pub review: Vec<ReviewCandidate>,
    /// The report (its `elapsed` covers linkage only, not loading).
    pub report: LinkReport,
}

/// A pair of records for clerical review: its match probability and why.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewCandidate {
    /// First record index (the smaller).
    pub a: u32,
    /// Second record index.
    pub b: u32,
    /// The pair's match probability (from its own weight, prior included).
    pub match_probability: f64,
    /// The pair's match weight in bits, prior included.
    pub weight: f64,
    /// Per compared field ([`FIELDS`] order), its comparison level and that level's weight, then
    /// one entry [`ADJUSTMENTS_EVIDENCE`] with the rest of the weight (term frequency of the
    /// name, regional and within-household corrections, household co-movement, namesake
    /// density, the pair of providers and the prior). The weights sum to `weight`.
    pub evidence: Vec<FieldEvidence>,
}

/// How one field compared in a reviewed pair. Levels and weights only, never a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FieldEvidence {
    /// The field's name ([`Field::name`]) or [`ADJUSTMENTS_EVIDENCE`].
    pub field: &'static str,
    /// The comparison level's description ([`Field::levels`]; `missing` when a side is empty).
    pub level: &'static str,
    /// The weight in bits this contributes to the pair's match weight.
    pub weight_bits: f64,
}

/// The evidence of a pair with comparison vector `pattern` and total weight `weight`: each
/// field's level and weight, and the rest of the weight as [`ADJUSTMENTS_EVIDENCE`].
pub fn review_evidence(
    model: &ModelParameters,
    pattern: Pattern,
    weight: f64,
) -> Vec<FieldEvidence> {
    let mut evidence: Vec<FieldEvidence> = FIELDS
        .iter()
        .enumerate()
        .map(|(f, field)| {
            let level = level_of(pattern, f);
            FieldEvidence {
                field: field.name(),
                level: field
                    .levels()
                    .get(usize::from(level))
                    .copied()
                    .unwrap_or("missing"),
                weight_bits: model
                    .fields
                    .get(f)
                    .map_or(0.0, |parameters| parameters.weight(level)),
            }
        })
        .collect();
    let fields: f64 = evidence.iter().map(|e| e.weight_bits).sum();
    evidence.push(FieldEvidence {
        field: ADJUSTMENTS_EVIDENCE,
        level: "term frequency, household, namesakes, providers, prior",
        weight_bits: weight - fields,
    });
    evidence
}

/// A candidate pair kept past the stream of candidates ([`score_candidates`]), with its final
/// weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeptPair {
    /// First record index (the smaller).
    pub a: u32,
    /// Second record index.
    pub b: u32,
    /// The comparison vector.
    pub pattern: Pattern,
    /// How the two households moved, for a pair sharing no household.
    pub co_move: Option<CoMove>,
    /// The identity group's level when both records are of one identity group
    /// ([`crate::identity_group`]).
    pub group: Option<u8>,
    /// The match weight in bits, prior included (while streaming: the evidence of the comparison
    /// vector alone).
    pub weight: f64,
}

impl KeptPair {
    /// The pair's class of household evidence: its [`CoMove`] level, or 3 when the records
    /// share a household.
    pub(crate) fn household_class(&self) -> usize {
        self.co_move.map_or(SHARED_HOUSEHOLD, CoMove::index)
    }
}

/// The household class of pairs sharing a household (the three others are [`CoMove::ALL`]).
pub(crate) const SHARED_HOUSEHOLD: usize = 3;
/// Household classes: the three co-movement levels and a shared household.
const HOUSEHOLD_CLASSES: usize = 4;

/// The scored candidate pairs of a run. Candidate pairs are streamed, never stored all at once:
/// what the later steps learn from all of them is summed on the way (counts per provider pair,
/// household class and a fine bin of weight), and only the pairs that can matter one by one are
/// kept: those that may reach clustering, and those every step needs individually (exact
/// agreement on the identity, one identity group, households that moved together).
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredCandidates {
    /// What each blocking rule produced.
    pub rules: Vec<RuleReport>,
    /// Distinct candidate pairs compared.
    pub pairs_compared: u64,
    /// The kept pairs with their final weights.
    pub pairs: Vec<KeptPair>,
    /// Per record, an upper bound of the weight in bits of its candidate pairs that were not kept
    /// (`f64::NEG_INFINITY` when none): their strongest evidence with the strongest provider
    /// pair of the record's provider. Such pairs are far below the match threshold; a record
    /// linked to nothing reports its probability of being a person of its own from it.
    pub strongest_dropped: Vec<f64>,
    /// Distinct comparison vectors.
    pub distinct_patterns: u64,
    /// Pairs kept near the cut and let go again to stay within
    /// [`LinkOptions::max_kept_pairs`].
    pub pairs_let_go: u64,
    /// The weight in bits from which every candidate pair is in [`ScoredCandidates::pairs`]:
    /// the clustering cut (the match threshold less 8 bits), or above it when the pairs over the
    /// cut exceeded [`LinkOptions::max_weak_pairs`]. Pairs under a raised floor are left out
    /// (their weight then counts in [`ScoredCandidates::strongest_dropped`]).
    pub cluster_floor: f64,
    /// Pairs over the clustering cut let go under the raised floor.
    pub weak_pairs_let_go: u64,
    /// The fitted model.
    pub model: ModelParameters,
    /// The learned weight of household co-movement.
    pub co_move: CoMoveEvidence,
    /// The regional correction of residence levels for pairs sharing a family name.
    pub residence: FamilyNameResidence,
    /// Pairs whose households moved together.
    pub co_moved_pairs: u64,
    /// The learned weight of namesake density.
    pub group_size: GroupSizeEvidence,
    /// The learned weight of the pair of providers.
    pub provider_pairs: ProviderPairEvidence,
    /// Pairs of records of one identity (name, birth date, sex) at one provider, which blocking
    /// leaves out: a person registered twice, or namesakes.
    pub same_provider_pairs: Vec<(u32, u32)>,
    /// Their match weights in bits, their own prior included.
    pub same_provider_weights: Vec<f64>,
    /// The correction of name and birth-date levels for pairs of one household.
    pub within_household: WithinHousehold,
    /// The prior in bits of a pair of one identity at one provider.
    pub same_provider_prior: f64,
}

/// Pairs this far (in bits) below the match threshold still go to clustering: the other records
/// of their two clusters may vouch for them ([`cluster_with_flows`]).
pub(crate) const CLUSTER_EVIDENCE_MARGIN: f64 = 8.0;

/// While streaming, a pair is kept when its evidence and the first estimate of the prior come
/// within this many bits of the clustering cut: room for the evidence learned later (provider
/// pair, household co-movement) and the refined prior. A pair left out that the learned model
/// would have lifted over the cut is found by a second pass ([`score_candidates`]).
const KEEP_MARGIN: f64 = 6.0;

/// Bits added to a bound computed from evidence kept as `f32` (about 2^-24 of it: far less
/// than this at any weight a pair can have).
const F32_ROUNDING_ROOM: f64 = 1e-3;

/// Bins per bit of the weight sums that stand for the streamed pairs in EM. A bin's pairs count
/// at their mean weight: within 1/16 bit the posterior is near linear in the weight.
const BINS_PER_BIT: f64 = 16.0;

/// Units per bit of the fixed-point sums of weight within a bin: integer sums do not depend on
/// the order the threads add in, so a run is reproducible.
const SUM_UNITS_PER_BIT: f64 = 4_294_967_296.0;

/// Streamed evidence is binned within these bits (beyond, a pair is a sure match or non-match
/// whatever the rest of the model says).
const BINNED_WEIGHT_LIMIT: f64 = 1_000.0;

/// The bin of a weight and its offset within the bin in fixed point.
fn bin_of(weight: f64) -> (i32, u64) {
    let w = if weight.is_nan() {
        0.0
    } else {
        weight.clamp(-BINNED_WEIGHT_LIMIT, BINNED_WEIGHT_LIMIT)
    };
    let bin = (w * BINS_PER_BIT).floor();
    let offset = ((w - bin / BINS_PER_BIT) * SUM_UNITS_PER_BIT).round() as u64;
    (bin as i32, offset)
}

/// The mean weight of `count` pairs of bin `bin` whose offsets sum to `offsets`.
fn bin_mean(bin: i32, count: u64, offsets: u64) -> f64 {
    f64::from(bin) / BINS_PER_BIT + offsets as f64 / count.max(1) as f64 / SUM_UNITS_PER_BIT
}

/// The weight in bits of a match probability.
pub(crate) fn probability_weight(probability: f64) -> f64 {
    (probability / (1.0 - probability)).log2()
}

/// The prior of a match among `all_pairs` pairs of which those with `evidence` (in bits,
/// without a prior) are the candidates: EM with the evidence fixed and only the number of
/// matches free, each candidate's posterior summed (the matches outside the candidates are
/// few: the candidates are all the pairs that agree exactly on the identity).
fn candidate_prior(evidence: &[f64], all_pairs: f64) -> f64 {
    if evidence.is_empty() || all_pairs < 1.0 {
        return 1e-12;
    }
    let mut matches: f64 = 1.0;
    for _ in 0..200 {
        let prior = probability_weight((matches / all_pairs).clamp(1e-12, 0.5));
        let next = evidence
            .iter()
            .map(|w| probability_of_weight(w + prior))
            .sum::<f64>()
            .max(1.0);
        let moved = (next - matches).abs() / matches;
        matches = next;
        if moved < 1e-9 {
            break;
        }
    }
    (matches / all_pairs).clamp(1e-12, 0.5)
}

/// Pairs of linkable records of one provider.
fn same_provider_pairs_count(loaded: &LoadedRecords, linkable: &[u32]) -> f64 {
    let mut per_provider: rustc_hash::FxHashMap<u32, f64> = rustc_hash::FxHashMap::default();
    for &i in linkable {
        *per_provider
            .entry(loaded.records[i as usize].hospital)
            .or_default() += 1.0;
    }
    per_provider.values().map(|c| c * (c - 1.0) / 2.0).sum()
}

/// A weight sum of streamed pairs: the provider pair (smaller provider first), the household
/// class and the weight's bin.
type BinKey = (u32, u32, u8, i32);

/// What one worker sums while the candidate pairs stream past.
#[derive(Default)]
struct StreamTotals {
    compared: u64,
    co_moved: u64,
    patterns: rustc_hash::FxHashSet<Pattern>,
    /// Pairs and the sum of their evidence per bin.
    bins: rustc_hash::FxHashMap<BinKey, (u64, u64)>,
    /// The strongest evidence of a pair not kept, per provider pair and household class.
    dropped: rustc_hash::FxHashMap<(u32, u32, u8), f64>,
    kept: Vec<KeptPair>,
    /// Kept pairs that no step needs one by one (kept for being near the cut).
    near_cut: usize,
    /// Pairs let go when the bar was raised.
    evicted: u64,
}

impl StreamTotals {
    fn merge(mut self, mut other: StreamTotals) -> StreamTotals {
        // The larger vector of kept pairs receives the smaller.
        if self.kept.len() < other.kept.len() {
            std::mem::swap(&mut self.kept, &mut other.kept);
        }
        self.kept.append(&mut other.kept);
        self.compared += other.compared;
        self.co_moved += other.co_moved;
        self.evicted += other.evicted;
        self.patterns.extend(other.patterns);
        for (key, (n, sum)) in other.bins {
            let e = self.bins.entry(key).or_default();
            e.0 += n;
            e.1 += sum;
        }
        for (key, w) in other.dropped {
            let e = self.dropped.entry(key).or_insert(f64::NEG_INFINITY);
            *e = e.max(w);
        }
        self
    }
}

/// `f32` bits ordered like the numbers, for an atomic maximum.
fn ordered_bits(x: f32) -> u32 {
    let bits = x.to_bits();
    if bits & 0x8000_0000 != 0 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

fn from_ordered_bits(bits: u32) -> f32 {
    f32::from_bits(if bits & 0x8000_0000 != 0 {
        bits & 0x7FFF_FFFF
    } else {
        !bits
    })
}

/// Whether every step needs the pair one by one, whatever its weight: the prior's estimate
/// (exact agreement), namesake density (one identity group) and household co-movement.
fn needed_by_every_step(pair: &KeptPair) -> bool {
    agrees_exactly(pair.pattern) || pair.group.is_some() || pair.co_move == Some(CoMove::Together)
}

/// A bar of weight in bits that only rises, shared by all workers: the evidence (without the
/// prior) of the pairs kept for being near the cut while streaming, which starts at the margin
/// below the cut, and the clustering floor of the second pass, which starts at the cut.
struct KeepBar(AtomicU64);

impl KeepBar {
    fn new(bits: f64) -> KeepBar {
        KeepBar(AtomicU64::new(bits.to_bits()))
    }

    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    /// Raises the bar to `bits` unless it is higher already; returns the bar.
    fn raise(&self, bits: f64) -> f64 {
        let mut current = self.0.load(Ordering::Relaxed);
        loop {
            if f64::from_bits(current) >= bits {
                return f64::from_bits(current);
            }
            match self.0.compare_exchange_weak(
                current,
                bits.to_bits(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return bits,
                Err(seen) => current = seen,
            }
        }
    }
}

/// Lets go of the kept pairs under `bar` that no step needs one by one, noting each as a pair
/// not kept (the strongest per provider pair and household class, and per record).
fn evict_below(
    totals: &mut StreamTotals,
    bar: f64,
    records: &[LinkRecord],
    dropped_by_record: &[[AtomicU32; HOUSEHOLD_CLASSES - 1]],
) {
    let StreamTotals {
        kept,
        dropped,
        evicted,
        ..
    } = totals;
    kept.retain(|pair| {
        if pair.weight >= bar || needed_by_every_step(pair) {
            return true;
        }
        let class = pair.household_class();
        let (x, y) = (
            records[pair.a as usize].hospital,
            records[pair.b as usize].hospital,
        );
        let strongest = dropped
            .entry((x.min(y), x.max(y), class as u8))
            .or_insert(f64::NEG_INFINITY);
        *strongest = strongest.max(pair.weight);
        let bits = ordered_bits(pair.weight as f32);
        dropped_by_record[pair.a as usize][class - 1].fetch_max(bits, Ordering::Relaxed);
        dropped_by_record[pair.b as usize][class - 1].fetch_max(bits, Ordering::Relaxed);
        *evicted += 1;
        false
    });
}

/// Keeps a worker's pairs kept for being near the cut within its budget: raises the shared bar
/// to their median weight and lets go of those under it.
fn keep_within_budget(
    totals: &mut StreamTotals,
    bar: &KeepBar,
    records: &[LinkRecord],
    dropped_by_record: &[[AtomicU32; HOUSEHOLD_CLASSES - 1]],
) {
    let mut weights: Vec<f64> = totals
        .kept
        .iter()
        .filter(|p| !needed_by_every_step(p))
        .map(|p| p.weight)
        .collect();
    if !weights.is_empty() {
        let middle = weights.len() / 2;
        let (_, median, _) = weights.select_nth_unstable_by(middle, f64::total_cmp);
        // Strictly above the median, so that ties at the median go too.
        let raised = bar.raise(median.next_up());
        drop(weights);
        evict_below(totals, raised, records, dropped_by_record);
    }
    totals.near_cut = totals
        .kept
        .iter()
        .filter(|p| !needed_by_every_step(p))
        .count();
}

/// What one worker of the second pass collects: the pairs the learned model lifts over the
/// clustering floor ([`LinkOptions::max_weak_pairs`]).
#[derive(Default)]
struct LiftedPairs {
    pairs: Vec<KeptPair>,
    /// Collected pairs under the match threshold.
    weak: usize,
    /// Pairs let go when the floor was raised.
    let_go: u64,
    /// Pairs compared again (the others were ruled out by their records' bounds).
    compared: u64,
}

impl LiftedPairs {
    /// Collects `pair` (its final weight) if it reaches the shared `floor`; near the worker's
    /// `budget` of weak pairs, raises the floor to their median and lets go of those under it.
    fn collect(&mut self, pair: KeptPair, floor: &KeepBar, threshold: f64, budget: usize) {
        if pair.weight < floor.get() {
            return;
        }
        self.weak += usize::from(pair.weight < threshold);
        self.pairs.push(pair);
        if self.weak >= budget {
            let mut weak: Vec<f64> = self
                .pairs
                .iter()
                .map(|p| p.weight)
                .filter(|&w| w < threshold)
                .collect();
            let middle = weak.len() / 2;
            let (_, median, _) = weak.select_nth_unstable_by(middle, f64::total_cmp);
            // Strictly above the median, so that ties at the median go too.
            let raised = floor.raise(median.next_up());
            drop(weak);
            self.let_go_below(raised, threshold);
        }
    }

    /// Lets go of the pairs under `floor`.
    fn let_go_below(&mut self, floor: f64, threshold: f64) {
        let before = self.pairs.len();
        self.pairs.retain(|p| p.weight >= floor);
        self.let_go += (before - self.pairs.len()) as u64;
        self.weak = self.pairs.iter().filter(|p| p.weight < threshold).count();
    }

    fn merge(mut self, mut other: LiftedPairs) -> LiftedPairs {
        // The larger vector receives the smaller.
        if self.pairs.len() < other.pairs.len() {
            std::mem::swap(&mut self.pairs, &mut other.pairs);
        }
        self.pairs.append(&mut other.pairs);
        self.weak += other.weak;
        self.let_go += other.let_go;
        self.compared += other.compared;
        self
    }
}

/// Blocks, fits the model and weighs every candidate pair of the `linkable` records, streaming
/// the candidates ([`BlockIndex::fold_pairs`]): memory grows with the records and the kept
/// pairs, not with all candidate pairs.
///
/// One pass compares every candidate pair and sums, per provider pair, household class and fine
/// bin of weight, how many pairs there are and their weight: the prior, household co-movement
/// and provider flows are learned by EM on these sums as they were on the pairs. Kept one by one
/// are the pairs that agree exactly on the identity (the prior's estimate), of one identity group
/// (namesake density), whose households moved together, and those whose evidence comes near the
/// clustering cut. When the learned model lifts a provider pair and household class of pairs
/// left out over the cut after all, a second pass collects them: clustering sees every pair it
/// would see with all pairs in memory.
///
/// The pairs kept for being near the cut stay within [`LinkOptions::max_kept_pairs`]: near the
/// budget the bar is raised (shared by the workers) and the weaker pairs are let go as if never
/// kept, which the second pass makes good. Only the bound of a lone record's strongest pair left
/// out ([`ScoredCandidates::strongest_dropped`]) may then depend on when the bar rose.
pub fn score_candidates(
    loaded: &LoadedRecords,
    linkable: &[u32],
    options: &LinkOptions,
) -> ScoredCandidates {
    score_streamed(loaded, linkable, options, KEEP_MARGIN)
}

/// [`score_candidates`] keeping the pairs within `keep_margin` bits of the clustering cut.
fn score_streamed(
    loaded: &LoadedRecords,
    linkable: &[u32],
    options: &LinkOptions,
    keep_margin: f64,
) -> ScoredCandidates {
    let records = &loaded.records;
    let pool = &loaded.pool;
    let started = Instant::now();
    let mut model = train_model(loaded, linkable, options);
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "linkage: model trained"
    );
    let name_frequencies = NameFrequencies::new(records, linkable);
    let households = Households::new(records, linkable);
    let u_random: Vec<Vec<f64>> = model.fields.iter().map(|f| f.u.clone()).collect();
    let residence = FamilyNameResidence::estimate(
        pool,
        records,
        linkable,
        &u_random,
        options.random_pairs,
        options.seed,
    );
    let within_household = WithinHousehold::estimate(
        pool,
        records,
        &households.groups(),
        &u_random,
        options.random_pairs,
        options.seed,
    );
    let identity_groups = IdentityGroups::new(records, linkable);
    // The evidence of each pair, without the prior.
    let pair_evidence = |model: &ModelParameters, (a, b): (u32, u32), pattern: Pattern| {
        let (x, y) = (&records[a as usize], &records[b as usize]);
        model.pattern_weight(pattern)
            + name_frequencies.adjustment(pattern, x, y)
            + residence.of(pattern)
            + within_household.of(pattern)
    };
    let threshold_weight = probability_weight(options.match_threshold);
    let cut = threshold_weight - CLUSTER_EVIDENCE_MARGIN;
    let first_keep_floor = cut - keep_margin - model.prior_weight();
    let keep_bar = KeepBar::new(first_keep_floor);
    let threads = rayon::current_num_threads().max(1);
    let worker_budget = (options.max_kept_pairs / threads).max(1);
    let providers_of = |a: u32, b: u32| {
        let (x, y) = (records[a as usize].hospital, records[b as usize].hospital);
        (x.min(y), x.max(y))
    };
    // One streamed pair: its comparison, and whether it is kept one by one.
    let compare_pair = |model: &ModelParameters, a: u32, b: u32, keep_floor: f64| {
        let pattern = compare_records(pool, &records[a as usize], &records[b as usize]);
        let evidence = pair_evidence(model, (a, b), pattern);
        let co_move = shares_no_household(pattern).then(|| households.co_move(pool, records, a, b));
        let group = identity_groups.level(a, b);
        let pair = KeptPair {
            a,
            b,
            pattern,
            co_move,
            group,
            weight: evidence,
        };
        let kept = evidence >= keep_floor || needed_by_every_step(&pair);
        (pair, kept)
    };
    let block_index = BlockIndex::new(pool, records, linkable, options.max_block_size);
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "linkage: blocks indexed"
    );
    // Per record and household class of the pairs left out (moved-together pairs are all
    // kept): the strongest evidence.
    let no_pair = ordered_bits(f32::NEG_INFINITY);
    let dropped_by_record: Vec<[AtomicU32; HOUSEHOLD_CLASSES - 1]> = (0..records.len())
        .map(|_| std::array::from_fn(|_| AtomicU32::new(no_pair)))
        .collect();
    let totals = block_index.fold_pairs(
        records,
        StreamTotals::default,
        |totals: &mut StreamTotals, a, b| {
            let (pair, kept) = compare_pair(&model, a, b, keep_bar.get());
            let class = pair.household_class();
            let (pa, pb) = providers_of(a, b);
            totals.compared += 1;
            totals.co_moved += u64::from(pair.co_move == Some(CoMove::Together));
            totals.patterns.insert(pair.pattern);
            let (bin, offset) = bin_of(pair.weight);
            let sums = totals.bins.entry((pa, pb, class as u8, bin)).or_default();
            sums.0 += 1;
            sums.1 += offset;
            if kept {
                if !needed_by_every_step(&pair) {
                    totals.near_cut += 1;
                }
                totals.kept.push(pair);
                if totals.near_cut >= worker_budget {
                    keep_within_budget(totals, &keep_bar, records, &dropped_by_record);
                }
            } else {
                let strongest = totals
                    .dropped
                    .entry((pa, pb, class as u8))
                    .or_insert(f64::NEG_INFINITY);
                *strongest = strongest.max(pair.weight);
                let bits = ordered_bits(pair.weight as f32);
                dropped_by_record[a as usize][class - 1].fetch_max(bits, Ordering::Relaxed);
                dropped_by_record[b as usize][class - 1].fetch_max(bits, Ordering::Relaxed);
            }
        },
        StreamTotals::merge,
    );
    // One bar for all: the pairs a worker kept under the bar another raised go too, so that
    // the second pass below knows exactly which pairs were let go.
    let mut totals = totals;
    let keep_floor = keep_bar.get();
    if keep_floor > first_keep_floor {
        evict_below(&mut totals, keep_floor, records, &dropped_by_record);
        totals.kept.shrink_to_fit();
    }
    let StreamTotals {
        compared: pairs_compared,
        co_moved: co_moved_pairs,
        patterns: distinct,
        bins,
        dropped,
        kept: mut pairs,
        evicted: evicted_pairs,
        ..
    } = totals;
    let distinct_patterns = distinct.len() as u64;
    drop(distinct);
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        pairs_compared,
        kept_pairs = pairs.len(),
        evicted_pairs,
        keep_floor,
        weight_bins = bins.len(),
        "linkage: candidate pairs streamed"
    );
    // A fixed order: sums over the pairs do not depend on the threads' interleaving.
    pairs.par_sort_unstable_by_key(|p| (p.a, p.b));
    let all_pairs = cross_provider_pairs(loaded, linkable);
    // The prior from the pairs that agree exactly (all kept).
    let refine_prior = |model: &mut ModelParameters, pairs: &[KeptPair]| {
        let (patterns, evidence): (Vec<Pattern>, Vec<f64>) = pairs
            .iter()
            .filter(|p| agrees_exactly(p.pattern))
            .map(|p| (p.pattern, p.weight))
            .unzip();
        let expected = estimate_matching_pairs(model, &patterns, &evidence, all_pairs);
        model.expected_matching_pairs = expected;
        model.match_prior = (expected / all_pairs).clamp(1e-12, 0.5);
    };
    refine_prior(&mut model, &pairs);
    // Household co-movement, on the sums of the pairs that share no household.
    let prior = model.prior_weight();
    let mut co_move_sums: rustc_hash::FxHashMap<(u8, i32), (u64, u64)> =
        rustc_hash::FxHashMap::default();
    for (&(_, _, class, bin), &(n, sum)) in &bins {
        if usize::from(class) != SHARED_HOUSEHOLD {
            let e = co_move_sums.entry((class, bin)).or_default();
            e.0 += n;
            e.1 += sum;
        }
    }
    let mut co_move_groups: Vec<(f64, CoMove, f64)> = co_move_sums
        .into_iter()
        .map(|((class, bin), (n, offsets))| {
            (
                bin_mean(bin, n, offsets) + prior,
                CoMove::ALL[usize::from(class)],
                n as f64,
            )
        })
        .collect();
    co_move_groups.sort_unstable_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
    let mut co_move = CoMoveEvidence::from_random_pairs(
        &households,
        pool,
        records,
        linkable,
        options.random_pairs,
        options.seed,
    );
    co_move.fit(&co_move_groups);
    drop(co_move_groups);
    let class_weight = |class: usize| {
        if class == SHARED_HOUSEHOLD {
            0.0
        } else {
            co_move.weight(CoMove::ALL[class])
        }
    };
    for pair in &mut pairs {
        pair.weight += class_weight(pair.household_class());
    }
    refine_prior(&mut model, &pairs);
    let prior = model.prior_weight();
    pairs.par_iter_mut().for_each(|p| p.weight += prior);
    // Patient flows between providers, with the rest of the evidence as each pair's prior.
    let mut bin_keys: Vec<&BinKey> = bins.keys().collect();
    bin_keys.sort_unstable();
    let provider_pairs = ProviderPairEvidence::learn_counted(
        linkable.iter().map(|&i| records[i as usize].hospital),
        bin_keys.into_iter().map(|key| {
            let (pa, pb, class, bin) = *key;
            let (n, offsets) = bins[key];
            (
                (pa, pb),
                bin_mean(bin, n, offsets) + class_weight(usize::from(class)) + prior,
                n as f64,
            )
        }),
    );
    drop(bins);
    let provider_of: Vec<u32> = records.iter().map(|r| r.hospital).collect();
    pairs.par_iter_mut().for_each(|p| {
        p.weight += provider_pairs.weight(provider_of[p.a as usize], provider_of[p.b as usize]);
    });
    drop(provider_of);
    // Namesake density, on the pairs of one identity group (all kept), with the rest of the
    // evidence (prior included) as each pair's prior.
    let (grouped_evidence, grouped_levels): (Vec<f64>, Vec<u8>) = pairs
        .iter()
        .filter_map(|p| p.group.map(|l| (p.weight, l)))
        .unzip();
    let group_size = GroupSizeEvidence::learn(&grouped_evidence, &grouped_levels);
    drop((grouped_evidence, grouped_levels));
    for pair in &mut pairs {
        if let Some(l) = pair.group {
            pair.weight += group_size.weight(l);
        }
    }
    // The pairs left out: if the learned model could lift some over the cut, a second pass
    // finds them (pairs left out are of no identity group: their weight is complete).
    let lifted = |(pa, pb, class): (u32, u32, u8), evidence: f64| {
        evidence + class_weight(usize::from(class)) + prior + provider_pairs.weight(pa, pb)
    };
    let second_pass = dropped
        .iter()
        .any(|(&key, &evidence)| lifted(key, evidence) >= cut);
    let cluster_floor = KeepBar::new(cut);
    let mut weak_pairs_let_go = 0;
    if second_pass {
        let weak_budget = (options.max_weak_pairs / threads).max(1);
        // Per record, a bound of its pairs left out once lifted, without the provider pair:
        // a pair whose two records' bounds cannot reach the floor is not compared again. Most
        // records' pairs left out are far below it, and comparing is most of the pass's cost.
        let left_out_bound: Vec<f64> = dropped_by_record
            .par_iter()
            .map(|classes| {
                classes
                    .iter()
                    .enumerate()
                    .map(|(class, slot)| {
                        let evidence = f64::from(from_ordered_bits(slot.load(Ordering::Relaxed)));
                        evidence + class_weight(class + 1)
                    })
                    .fold(f64::NEG_INFINITY, f64::max)
                    // The evidence was kept as f32: room for its rounding.
                    + prior
                    + F32_ROUNDING_ROOM
            })
            .collect();
        let found = block_index.fold_pairs(
            records,
            LiftedPairs::default,
            |found: &mut LiftedPairs, a, b| {
                let (pa, pb) = providers_of(a, b);
                let bound = left_out_bound[a as usize].min(left_out_bound[b as usize])
                    + provider_pairs.weight(pa, pb);
                if bound < cluster_floor.get() {
                    return;
                }
                found.compared += 1;
                let (mut pair, kept) = compare_pair(&model, a, b, keep_floor);
                if !kept {
                    pair.weight = lifted((pa, pb, pair.household_class() as u8), pair.weight);
                    found.collect(pair, &cluster_floor, threshold_weight, weak_budget);
                }
            },
            LiftedPairs::merge,
        );
        // One floor for all: the pairs a worker collected under the floor another raised go too.
        let mut found = found;
        found.let_go_below(cluster_floor.get(), threshold_weight);
        let LiftedPairs {
            pairs: mut found,
            let_go,
            compared: compared_again,
            ..
        } = found;
        weak_pairs_let_go = let_go;
        found.par_sort_unstable_by_key(|p| (p.a, p.b));
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            lifted_pairs = found.len(),
            compared_again,
            weak_pairs_let_go,
            cluster_floor = cluster_floor.get(),
            "linkage: second pass over the candidates"
        );
        pairs.extend(found);
    }
    let cluster_floor = cluster_floor.get();
    let rules = block_index.rules().to_vec();
    drop(block_index);
    // A record's pairs left out are weighed with the strongest provider pair of its provider:
    // an upper bound (which provider each pair was at is not kept).
    let mut strongest_flow: rustc_hash::FxHashMap<u32, f64> = rustc_hash::FxHashMap::default();
    for &i in linkable {
        strongest_flow
            .entry(records[i as usize].hospital)
            .or_insert(0.0);
    }
    let providers: Vec<u32> = strongest_flow.keys().copied().collect();
    for (&p, strongest) in strongest_flow.iter_mut() {
        *strongest = providers
            .iter()
            .filter(|&&q| q != p)
            .map(|&q| provider_pairs.weight(p, q))
            .fold(f64::NEG_INFINITY, f64::max);
    }
    let mut strongest_dropped: Vec<f64> = dropped_by_record
        .into_par_iter()
        .enumerate()
        .map(|(r, classes)| {
            let evidence = classes
                .iter()
                .enumerate()
                .map(|(class, slot)| {
                    let evidence = f64::from(from_ordered_bits(slot.load(Ordering::Relaxed)));
                    evidence + class_weight(class + 1)
                })
                .fold(f64::NEG_INFINITY, f64::max);
            let flow = strongest_flow
                .get(&records[r].hospital)
                .copied()
                .unwrap_or(0.0);
            evidence + prior + flow
        })
        .collect();
    // Under a raised floor, the pairs of the first pass are left out alike: clustering sees
    // every pair from the floor up and none under it, and each pair left out still bounds its
    // records' strongest pair left out.
    if cluster_floor > cut {
        pairs.retain(|p| {
            if p.weight >= cluster_floor {
                return true;
            }
            for r in [p.a, p.b] {
                let slot = &mut strongest_dropped[r as usize];
                *slot = slot.max(p.weight);
            }
            false
        });
    }
    // Records of one identity at one provider: a person registered twice, or namesakes. Their
    // prior is their own: the matches among all pairs of one provider.
    let same_provider_pairs = identity_groups.same_provider_pairs().to_vec();
    drop(identity_groups);
    let same_provider_evidence: Vec<f64> = same_provider_pairs
        .par_iter()
        .map(|&(a, b)| {
            let pattern = compare_records(pool, &records[a as usize], &records[b as usize]);
            pair_evidence(&model, (a, b), pattern)
        })
        .collect();
    let same_provider_prior = probability_weight(candidate_prior(
        &same_provider_evidence,
        same_provider_pairs_count(loaded, linkable),
    ));
    let same_provider_weights: Vec<f64> = same_provider_evidence
        .iter()
        .map(|w| w + same_provider_prior)
        .collect();
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        kept_pairs = pairs.len(),
        same_provider_pairs = same_provider_pairs.len(),
        "linkage: candidates scored"
    );
    ScoredCandidates {
        rules,
        pairs_compared,
        pairs,
        strongest_dropped,
        distinct_patterns,
        pairs_let_go: evicted_pairs,
        cluster_floor,
        weak_pairs_let_go,
        model,
        co_move,
        residence,
        co_moved_pairs,
        group_size,
        provider_pairs,
        same_provider_pairs,
        same_provider_weights,
        within_household,
        same_provider_prior,
    }
}

/// Links loaded records.
pub fn link_records(loaded: &LoadedRecords, options: &LinkOptions) -> Linkage {
    link_records_with(loaded, options, &Constraints::default())
}

/// Links loaded records bound by a reviewer's decisions (record indices of `loaded`): the
/// must-link pairs of `constraints` are one person and the cannot-link pairs never are
/// ([`cluster_with_constraints`]). Pairs with a decision are not proposed for review again.
pub fn link_records_with(
    loaded: &LoadedRecords,
    options: &LinkOptions,
    constraints: &Constraints,
) -> Linkage {
    let started = Instant::now();
    let records = &loaded.records;
    let linkable: Vec<u32> = loaded.linkable_indexes();
    let ScoredCandidates {
        rules,
        pairs_compared,
        pairs,
        strongest_dropped: mut best_candidate,
        distinct_patterns,
        model,
        co_move,
        co_moved_pairs,
        group_size,
        provider_pairs,
        same_provider_pairs,
        same_provider_weights,
        residence,
        within_household,
        same_provider_prior,
        pairs_let_go,
        cluster_floor,
        weak_pairs_let_go,
        ..
    } = score_candidates(loaded, &linkable, options);
    // The strongest candidate weight per record, for the records that end up alone.
    for pair in &pairs {
        for r in [pair.a, pair.b] {
            let slot = &mut best_candidate[r as usize];
            *slot = slot.max(pair.weight);
        }
    }
    let threshold_weight = probability_weight(options.match_threshold);
    let (review, review_pairs_in_band) = review_candidates(
        loaded,
        &model,
        &pairs,
        &same_provider_pairs,
        &same_provider_weights,
        options,
        constraints,
    );
    let mut accepted: Vec<ScoredPair> = pairs
        .iter()
        .filter(|p| p.weight >= threshold_weight - CLUSTER_EVIDENCE_MARGIN)
        .map(|p| ScoredPair {
            a: p.a,
            b: p.b,
            weight: p.weight,
        })
        .collect();
    drop(pairs);
    accepted.extend(
        same_provider_pairs
            .iter()
            .zip(&same_provider_weights)
            .filter(|(_, w)| **w >= threshold_weight)
            .map(|(&(a, b), &weight)| ScoredPair { a, b, weight }),
    );
    let pairs_above_threshold = accepted
        .iter()
        .filter(|p| p.weight >= threshold_weight)
        .count() as u64;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        review_pairs = review.len(),
        accepted_pairs = accepted.len(),
        "linkage: pairs for clustering chosen"
    );
    let providers: Vec<u32> = records.iter().map(|r| r.hospital).collect();
    let clustering = cluster_with_constraints(
        records.len(),
        &providers,
        accepted,
        threshold_weight,
        |x, y| provider_pairs.weight(x, y),
        constraints,
    );
    let match_probability = (0..records.len())
        .map(|r| {
            if !loaded.linkable[r] {
                None
            } else if clustering.best_link_weight[r] > f64::NEG_INFINITY {
                // A must-link decision weighs +∞: probability 1.
                Some(probability_of_weight(clustering.best_link_weight[r]))
            } else if best_candidate[r].is_finite() {
                Some(1.0 - probability_of_weight(best_candidate[r]))
            } else {
                Some(1.0)
            }
        })
        .collect();
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        persons = clustering.persons,
        "linkage: clustered"
    );
    let model_warnings = model.implausible_fields();
    let report = LinkReport {
        records: records.len() as u64,
        linkable_records: linkable.len() as u64,
        unlinkable: loaded.unlinkable.clone(),
        unusable_values: loaded.unusable.clone(),
        blocking: rules,
        pairs_compared,
        distinct_patterns,
        model,
        co_move,
        co_moved_pairs,
        group_size,
        provider_pairs,
        residence,
        within_household,
        same_provider_prior,
        pairs_let_go,
        cluster_floor_probability: probability_of_weight(cluster_floor),
        weak_pairs_let_go,
        model_warnings,
        pairs_above_threshold,
        merges: clustering.merges,
        merges_refused_same_provider: clustering.merges_refused_same_provider,
        persons: u64::from(clustering.persons),
        review_pairs_in_band,
        must_links_applied: clustering.must_links_applied,
        must_links_refused: clustering.must_links_refused,
        merges_refused_cannot_link: clustering.merges_refused_cannot_link,
        elapsed: started.elapsed(),
    };
    Linkage {
        person: clustering.person,
        match_probability,
        review,
        report,
    }
}

/// The pairs for clerical review among the kept pairs and the same-provider pairs, and how many
/// lay in the band before the cap ([`Linkage::review`]).
pub(crate) fn review_candidates(
    loaded: &LoadedRecords,
    model: &ModelParameters,
    pairs: &[KeptPair],
    same_provider_pairs: &[(u32, u32)],
    same_provider_weights: &[f64],
    options: &LinkOptions,
    constraints: &Constraints,
) -> (Vec<ReviewCandidate>, u64) {
    let Some((low, high)) = options.review_band else {
        return (Vec::new(), 0);
    };
    // A band upside down or not a number proposes nothing.
    if options.review_limit == 0 || low.partial_cmp(&high).is_none_or(|o| o.is_gt()) {
        return (Vec::new(), 0);
    }
    let (low, high) = (probability_weight(low), probability_weight(high));
    let ordered = |a: u32, b: u32| (a.min(b), a.max(b));
    let decided: rustc_hash::FxHashSet<(u32, u32)> = constraints
        .must_link
        .iter()
        .chain(&constraints.cannot_link)
        .map(|&(a, b)| ordered(a, b))
        .collect();
    let in_band = |a: u32, b: u32, weight: f64| {
        (low..=high).contains(&weight) && !decided.contains(&ordered(a, b))
    };
    // (a, b, weight, pattern if known): the same-provider pairs' patterns are compared again
    // for the few in the band.
    let mut found: Vec<(u32, u32, f64, Option<Pattern>)> = pairs
        .iter()
        .filter(|p| in_band(p.a, p.b, p.weight))
        .map(|p| (p.a, p.b, p.weight, Some(p.pattern)))
        .collect();
    found.extend(
        same_provider_pairs
            .iter()
            .zip(same_provider_weights)
            .filter(|((a, b), w)| in_band(*a, *b, **w))
            .map(|(&(a, b), &w)| (a.min(b), a.max(b), w, None)),
    );
    let in_band_count = found.len() as u64;
    // Most uncertain first: the weight nearest 0 bits is the probability nearest one half.
    let uncertainty = |x: &(u32, u32, f64, Option<Pattern>),
                       y: &(u32, u32, f64, Option<Pattern>)| {
        x.2.abs()
            .total_cmp(&y.2.abs())
            .then(x.0.cmp(&y.0))
            .then(x.1.cmp(&y.1))
    };
    if found.len() > options.review_limit {
        found.select_nth_unstable_by(options.review_limit, uncertainty);
        found.truncate(options.review_limit);
    }
    found.sort_unstable_by(uncertainty);
    let records = &loaded.records;
    let review = found
        .into_iter()
        .map(|(a, b, weight, pattern)| {
            let pattern = pattern.unwrap_or_else(|| {
                compare_records(&loaded.pool, &records[a as usize], &records[b as usize])
            });
            ReviewCandidate {
                a,
                b,
                match_probability: probability_of_weight(weight),
                weight,
                evidence: review_evidence(model, pattern, weight),
            }
        })
        .collect();
    (review, in_band_count)
}

/// The term-frequency adjustment of exact name matches: 佐藤 and 鈴木 are weak evidence, rare
/// names strong.
#[derive(Debug, Clone)]
pub struct NameFrequencies {
    kanji: TermFrequencies,
    kana: TermFrequencies,
    cohort: CohortNameFrequencies,
}

impl NameFrequencies {
    /// Counts the names of the `linkable` records.
    pub fn new(records: &[LinkRecord], linkable: &[u32]) -> NameFrequencies {
        NameFrequencies {
            kanji: TermFrequencies::new(linkable.iter().map(|&i| records[i as usize].kanji.key)),
            kana: TermFrequencies::new(linkable.iter().map(|&i| records[i as usize].kana.key)),
            cohort: CohortNameFrequencies::new(linkable.iter().map(|&i| &records[i as usize])),
        }
    }

    /// The adjustment in bits of a pair with comparison vector `pattern`: an exact kanji name
    /// weighs by how common it is (among people of the pair's cohort and sex when the birth dates
    /// agree too), an exact kana name alone by how common its reading is, a shared given name
    /// under another family name by how common the given name is in the cohort when the birth
    /// dates agree; 0 otherwise.
    pub fn adjustment(&self, pattern: Pattern, x: &LinkRecord, y: &LinkRecord) -> f64 {
        match level_of(pattern, Field::Name as usize) {
            0 | 1 | 3 => {
                let cohort = match level_of(pattern, Field::BirthDate as usize) {
                    0 | 1 | 3 => self.cohort.adjustment(x, y),
                    _ => None,
                };
                cohort.unwrap_or_else(|| self.kanji.adjustment(x.kanji.key, y.kanji.key))
            }
            2 => self.kana.adjustment(x.kana.key, y.kana.key),
            // The same given name under another family name (a marriage): how common the given
            // name is among people born then, when the birth dates agree.
            5 => match level_of(pattern, Field::BirthDate as usize) {
                0 | 1 | 3 => self.cohort.given_name_adjustment(x, y).unwrap_or(0.0),
                _ => 0.0,
            },
            _ => 0.0,
        }
    }
}

/// Fits the model: u from random pairs, then one EM session per training rule, each leaving out
/// the fields its rule blocks on; m of a field is the mean over the sessions that estimated it.
/// The birth-date session measures the other fields against random pairs of one birth cohort
/// ([`estimate_u_within_cohorts`]), the non-matches of its blocks. The prior λ here follows
/// from the birth-date session: its matches, divided by the share of matches that agree on the
/// birth date (m of an exact date, from the name session), are all the matches; [`link_records`]
/// refines it on the candidate pairs with [`estimate_matching_pairs`].
pub fn train_model(
    loaded: &LoadedRecords,
    linkable: &[u32],
    options: &LinkOptions,
) -> ModelParameters {
    let records = &loaded.records;
    let pool = &loaded.pool;
    let (u, random_pairs) =
        estimate_u_random(pool, records, linkable, options.random_pairs, options.seed);
    let settings = EmSettings {
        max_iterations: options.max_em_iterations,
        tolerance: options.em_tolerance,
    };
    // Session 1 blocks on the birth date and learns name, sex and household. Session 2 blocks on
    // the kanji name and learns the birth date, with the household's m from session 1 held fixed
    // to anchor the match class (with two free fields EM may settle on another split). Sex is
    // left out of session 2: given names are mostly one sex's, so people sharing a name share
    // their sex far more often than random pairs do.
    let sessions_spec = [
        (
            TrainingRule::BirthDate,
            [true, false, true, true],
            [true, false, true, true],
        ),
        (
            TrainingRule::KanjiName,
            [false, true, false, true],
            [false, true, false, false],
        ),
    ];
    let mut m_sum: Vec<Vec<f64>> = starting_m().iter().map(|v| vec![0.0; v.len()]).collect();
    let mut trained_by: Vec<Vec<&'static str>> = vec![Vec::new(); FIELD_COUNT];
    let mut sessions = Vec::new();
    let mut m_learned = starting_m();
    // The birth-date session measures the other fields against pairs of the same cohort.
    let cohort =
        estimate_u_within_cohorts(pool, records, linkable, options.random_pairs, options.seed);
    for (rule, used, estimated) in sessions_spec {
        let (session_u, sex_given_name) = if rule == TrainingRule::BirthDate {
            (&cohort.u, Some(&cohort.sex_given_name))
        } else {
            (&u, None)
        };
        let sample = training_sample(
            records,
            linkable,
            rule,
            options.max_block_size,
            options.training_pairs,
        );
        let patterns: Vec<u32> = sample
            .pairs
            .par_iter()
            .map(|&(a, b)| compare_records(pool, &records[a as usize], &records[b as usize]))
            .collect();
        let fit = fit_em_anchored(
            &count_patterns(&patterns),
            session_u,
            sex_given_name,
            used,
            estimated,
            m_learned.clone(),
            settings,
        );
        for f in (0..FIELD_COUNT).filter(|f| estimated[*f]) {
            for (sum, m) in m_sum[f].iter_mut().zip(&fit.m[f]) {
                *sum += m;
            }
            m_learned[f].clone_from(&fit.m[f]);
            trained_by[f].push(rule.name());
        }
        sessions.push(EmSession {
            name: rule.name(),
            pairs: sample.estimated_pairs,
            sampled_pairs: sample.pairs.len() as u64,
            match_share: fit.match_share,
            iterations: fit.iterations,
            converged: fit.converged,
        });
    }
    let mut fields: Vec<FieldParameters> = FIELDS
        .iter()
        .enumerate()
        .map(|(f, field)| {
            let n = trained_by[f].len().max(1) as f64;
            FieldParameters {
                field: *field,
                m: m_sum[f].iter().map(|x| x / n).collect(),
                u: u[f].clone(),
                trained_by: trained_by[f].clone(),
            }
        })
        .collect();
    // The household session: how branch numbers and residence differ within a card's household.
    let card_used = [true, true, true, false];
    let sample = training_sample(
        records,
        linkable,
        TrainingRule::InsuranceCard,
        options.max_block_size,
        options.training_pairs,
    );
    let patterns: Vec<u32> = sample
        .pairs
        .par_iter()
        .map(|&(a, b)| compare_records(pool, &records[a as usize], &records[b as usize]))
        .collect();
    let card_counts = count_patterns(&patterns);
    let fit = fit_em(&card_counts, &u, card_used, settings);
    let card_posteriors = posteriors(&card_counts, &fit, &u, card_used);
    condition_on_shared_card(
        &mut fields[Field::Household as usize],
        &card_counts,
        &card_posteriors,
    );
    sessions.push(EmSession {
        name: TrainingRule::InsuranceCard.name(),
        pairs: sample.estimated_pairs,
        sampled_pairs: sample.pairs.len() as u64,
        match_share: fit.match_share,
        iterations: fit.iterations,
        converged: fit.converged,
    });
    let date_exact = fields[Field::BirthDate as usize].m[0].max(1e-3);
    let same_date_matches = sessions.first().map_or(0.0, |s| s.match_share * s.pairs);
    let expected_matching_pairs = same_date_matches / date_exact;
    let match_prior =
        (expected_matching_pairs / cross_provider_pairs(loaded, linkable)).clamp(1e-12, 0.5);
    ModelParameters {
        match_prior,
        expected_matching_pairs,
        fields,
        sessions,
        random_pairs,
    }
}

/// Whether a comparison vector agrees exactly on the name (kanji and kana), the birth date and
/// does not disagree on sex: the pairs of [`estimate_matching_pairs`].
fn agrees_exactly(pattern: Pattern) -> bool {
    level_of(pattern, Field::Name as usize) == 0
        && level_of(pattern, Field::BirthDate as usize) == 0
        && level_of(pattern, Field::Sex as usize) != 1
}

/// Estimates the number of matching pairs among all pairs from the candidate pairs that agree
/// exactly on name, birth date and sex (every blocking rule on the birth date finds them, so
/// they are all among the candidates).
///
/// Their matches are counted by EM with the m- and u-probabilities fixed and only the number of
/// matches free: each pair's posterior under the current estimate, summed; the sum divided by
/// the share of all matches that agree so exactly (recall, from the m-probabilities) is the next
/// estimate of all matches. Counting the pairs themselves (a deterministic rule) would count
/// namesakes as matches, and namesakes grow with the square of the population while matches
/// grow with it. `evidence` is each candidate's weight without the prior, `all_pairs` the number
/// of pairs of records of different providers; the model's own estimate is the starting point.
pub fn estimate_matching_pairs(
    model: &ModelParameters,
    patterns: &[Pattern],
    evidence: &[f64],
    all_pairs: f64,
) -> f64 {
    let start = model.expected_matching_pairs;
    let field = |f: Field| &model.fields[f as usize];
    let recall = field(Field::Name).m[0]
        * field(Field::BirthDate).m[0]
        * (1.0 - field(Field::Sex).m.get(1).copied().unwrap_or(0.0));
    let exact: Vec<f64> = patterns
        .iter()
        .zip(evidence)
        .filter(|(p, _)| agrees_exactly(**p))
        .map(|(_, w)| *w)
        .collect();
    if exact.is_empty() || recall <= 0.0 || all_pairs < 2.0 {
        return start;
    }
    let mut matches = start.max(1.0);
    for _ in 0..100 {
        let prior = matches / all_pairs;
        let prior_weight = (prior / (1.0 - prior)).log2();
        let found: f64 = exact
            .par_iter()
            .map(|w| probability_of_weight(w + prior_weight))
            .sum();
        let next = (found / recall).clamp(1.0, all_pairs * 0.5);
        let moved = (next - matches).abs() / matches;
        matches = next;
        if moved < 1e-6 {
            break;
        }
    }
    matches
}

/// Pairs of linkable records of different providers.
pub(crate) fn cross_provider_pairs(loaded: &LoadedRecords, linkable: &[u32]) -> f64 {
    let mut per_provider: rustc_hash::FxHashMap<u32, f64> = rustc_hash::FxHashMap::default();
    for &i in linkable {
        *per_provider
            .entry(loaded.records[i as usize].hospital)
            .or_default() += 1.0;
    }
    let n = linkable.len() as f64;
    let same: f64 = per_provider.values().map(|c| c * c).sum();
    ((n * n - same) / 2.0).max(1.0)
}

/// The output's person id of a person number.
pub fn person_id(person: u32) -> String {
    format!("P{person:09}")
}

/// Links the identity CSV `input` (header of [`crate::records::IDENTITY_COLUMNS`]) and writes
/// `output` with the header `record_id,person_id,match_probability`. The output is written to a
/// temporary file beside it and renamed: it is never left partial. Unlinkable rows are persons of
/// their own with an empty `match_probability`.
pub fn link_csv(
    input: &Path,
    output: &Path,
    options: &LinkOptions,
) -> Result<LinkReport, LinkError> {
    let started = Instant::now();
    let loaded = load_identity_csv(input)?;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        records = loaded.records.len(),
        "linkage: records loaded"
    );
    let linkage = link_records(&loaded, options);
    write_links(output, &loaded, &linkage)?;
    let mut report = linkage.report;
    report.elapsed = started.elapsed();
    Ok(report)
}

fn write_links(output: &Path, loaded: &LoadedRecords, linkage: &Linkage) -> Result<(), LinkError> {
    let write_error = |source: std::io::Error| LinkError::Write {
        path: output.to_owned(),
        source,
    };
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let temp = tempfile::NamedTempFile::new_in(dir).map_err(write_error)?;
    {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, temp.as_file());
        let mut writer = csv::WriterBuilder::new().from_writer(&mut out);
        let csv_error = |e: csv::Error| write_error(std::io::Error::other(e));
        writer
            .write_record(["record_id", "person_id", "match_probability"])
            .map_err(csv_error)?;
        for (r, id) in loaded.record_ids.iter().enumerate() {
            let probability = linkage.match_probability[r]
                .map(|p| format!("{p:.6}"))
                .unwrap_or_default();
            writer
                .write_record([id.as_ref(), &person_id(linkage.person[r]), &probability])
                .map_err(csv_error)?;
        }
        writer.flush().map_err(write_error)?;
        drop(writer);
        out.flush().map_err(write_error)?;
    }
    temp.as_file().sync_all().map_err(write_error)?;
    temp.persist(output).map_err(|e| write_error(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(m_name: f64, m_date: f64) -> ModelParameters {
        let field = |field: Field, m: Vec<f64>| FieldParameters {
            field,
            u: vec![1.0 / m.len() as f64; m.len()],
            m,
            trained_by: Vec::new(),
        };
        ModelParameters {
            match_prior: 1e-3,
            expected_matching_pairs: 5_000.0,
            fields: vec![
                field(Field::Name, vec![m_name, 1.0 - m_name]),
                field(Field::BirthDate, vec![m_date, 1.0 - m_date]),
                field(Field::Sex, vec![1.0, 0.0]),
                field(Field::Household, vec![0.5, 0.5]),
            ],
            sessions: Vec::new(),
            random_pairs: 0,
        }
    }

    #[test]
    fn a_model_whose_matches_rarely_agree_exactly_is_reported_implausible() {
        assert!(model(0.93, 0.99).implausible_fields().is_empty());
        // Where EM settled on namesakes of a birth year (10 million records).
        let warnings = model(0.11, 0.015).implausible_fields();
        assert_eq!(warnings.len(), 2);
        assert!(warnings[0].contains("name") && warnings[0].contains("11.0 %"));
        assert!(warnings[1].contains("birth_date"));
    }

    #[test]
    fn matching_pairs_are_counted_on_exact_agreement_without_namesakes() {
        // Name and date agree exactly on 80 % of matching pairs. 800 such pairs carry strong
        // evidence (matches); 2 000 namesakes carry little, so they do not count.
        let model = model(0.9, 0.9 / 1.0125);
        let exact: Pattern = 0;
        let other: Pattern = 1 | (1 << 4);
        let mut patterns = vec![exact; 2_800];
        let mut evidence = vec![40.0; 800];
        evidence.extend(vec![2.0; 2_000]);
        patterns.extend(vec![other; 100]);
        evidence.extend(vec![40.0; 100]);
        let matches = estimate_matching_pairs(&model, &patterns, &evidence, 1e9);
        assert!((matches - 1_000.0).abs() < 5.0, "{matches}");
    }

    #[test]
    fn ordered_bits_keep_the_order_of_the_numbers() {
        let values = [
            f32::NEG_INFINITY,
            -40.5,
            -1.0,
            -0.0,
            0.0,
            1e-3,
            7.25,
            f32::INFINITY,
        ];
        for w in values.windows(2) {
            assert!(
                ordered_bits(w[0]) <= ordered_bits(w[1]),
                "{} {}",
                w[0],
                w[1]
            );
        }
        for v in values {
            assert_eq!(from_ordered_bits(ordered_bits(v)), v);
        }
    }

    #[test]
    fn clustering_sees_the_same_pairs_whatever_is_kept_while_streaming() {
        let dir = tempfile::tempdir().unwrap();
        let config = kiban_synth::SynthConfig {
            persons: 3_000,
            seed: 21,
            ..kiban_synth::SynthConfig::default()
        };
        let summary = kiban_synth::write_identity_csv(&config, dir.path(), &|_| {}).unwrap();
        let loaded = crate::records::load_identity_csv(&summary.records_path).unwrap();
        let linkable: Vec<u32> = loaded.linkable_indexes();
        let options = LinkOptions::default();
        let cut = probability_weight(options.match_threshold) - CLUSTER_EVIDENCE_MARGIN;
        let eligible = |scored: &ScoredCandidates| {
            let mut pairs: Vec<(u32, u32, f64)> = scored
                .pairs
                .iter()
                .filter(|p| p.weight >= cut)
                .map(|p| (p.a, p.b, p.weight))
                .collect();
            pairs.sort_by_key(|p| (p.0, p.1));
            pairs
        };
        // The same pairs with the same weights.
        let assert_same = |x: &[(u32, u32, f64)], y: &[(u32, u32, f64)]| {
            assert_eq!(x.len(), y.len());
            for (p, q) in x.iter().zip(y) {
                assert_eq!((p.0, p.1), (q.0, q.1));
                assert!((p.2 - q.2).abs() < 1e-6, "{p:?} {q:?}");
            }
        };
        // A record's bound on its pairs left out is above each of those pairs' weights.
        let assert_left_out_bounded = |all: &ScoredCandidates, scored: &ScoredCandidates| {
            let kept: rustc_hash::FxHashSet<(u32, u32)> =
                scored.pairs.iter().map(|p| (p.a, p.b)).collect();
            for p in all.pairs.iter().filter(|p| !kept.contains(&(p.a, p.b))) {
                for r in [p.a, p.b] {
                    assert!(
                        scored.strongest_dropped[r as usize] >= p.weight - 1e-4,
                        "{p:?}"
                    );
                }
            }
        };
        // Everything kept: as if all pairs were in memory.
        let all = score_streamed(&loaded, &linkable, &options, 1_000.0);
        assert_eq!(all.pairs.len() as u64, all.pairs_compared);
        // Almost nothing kept beyond what every step needs: the second pass finds the rest.
        let few = score_streamed(&loaded, &linkable, &options, -1_000.0);
        assert!(few.pairs.len() < all.pairs.len());
        assert_eq!(few.pairs_compared, all.pairs_compared);
        // The same model up to the order of parallel sums.
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * x.abs().max(1.0);
        assert!(close(few.model.match_prior, all.model.match_prior));
        assert_eq!(few.model.fields, all.model.fields);
        for l in 0..3 {
            assert!(close(few.co_move.m[l], all.co_move.m[l]));
        }
        for (a, b) in [(0, 1), (1, 2), (0, 2)] {
            let provider = |r: u32| loaded.records[r as usize].hospital;
            let (pa, pb) = (provider(linkable[a]), provider(linkable[b * 7]));
            assert!(close(
                few.provider_pairs.weight(pa, pb),
                all.provider_pairs.weight(pa, pb)
            ));
        }
        let (x, y) = (eligible(&all), eligible(&few));
        assert!(x.len() > 1_000, "{}", x.len());
        assert_same(&x, &y);
        // The default margin gives the same persons as keeping everything.
        let default = score_candidates(&loaded, &linkable, &options);
        assert_eq!(eligible(&default).len(), x.len());
        // A budget far below the pairs near the cut (one pair per worker, so that the bar
        // rises however the blocks fall to the workers): the weaker pairs go, and the second
        // pass brings back every pair clustering needs, with the same weight.
        let tight = score_candidates(
            &loaded,
            &linkable,
            &LinkOptions {
                max_kept_pairs: 1,
                ..options.clone()
            },
        );
        assert!(tight.pairs_let_go > 0);
        assert_eq!(default.pairs_let_go, 0);
        let z = eligible(&tight);
        assert_same(&x, &z);
        assert_eq!(default.weak_pairs_let_go, 0);
        assert_eq!(default.cluster_floor, cut);
        // With few pairs kept while streaming (the second pass then finds most of those over
        // the cut) and a budget of weak pairs far below them: the floor rises, and clustering
        // sees exactly the pairs from the raised floor up, with the same weights; every pair
        // left out still bounds its records' strongest pair left out.
        let threshold = probability_weight(options.match_threshold);
        let weak_over_cut = x.iter().filter(|p| p.2 < threshold).count();
        assert!(weak_over_cut >= 8, "{weak_over_cut}");
        // A quarter of them: whatever the blocks fall to the workers, one worker reaches its
        // share of the budget.
        let weak = score_candidates(
            &loaded,
            &linkable,
            &LinkOptions {
                max_kept_pairs: 1,
                max_weak_pairs: weak_over_cut / 4,
                ..options.clone()
            },
        );
        assert!(weak.cluster_floor > cut, "{}", weak.cluster_floor);
        assert!(weak.weak_pairs_let_go > 0);
        let over_floor: Vec<(u32, u32, f64)> = x
            .iter()
            .copied()
            .filter(|p| p.2 >= weak.cluster_floor)
            .collect();
        assert!(over_floor.iter().filter(|p| p.2 >= threshold).count() > 100);
        assert!(over_floor.len() < x.len());
        assert!(weak.pairs.iter().all(|p| p.weight >= weak.cluster_floor));
        assert_same(&over_floor, &eligible(&weak));
        assert_left_out_bounded(&all, &weak);
        let tight_kept: rustc_hash::FxHashSet<(u32, u32)> =
            tight.pairs.iter().map(|p| (p.a, p.b)).collect();
        assert_eq!(tight_kept.len(), tight.pairs.len(), "a pair kept twice");
        assert_left_out_bounded(&all, &tight);
        assert_left_out_bounded(&all, &few);
    }

    #[test]
    fn a_bin_stands_for_its_pairs_at_their_mean_weight() {
        let weights = [-12.31, -12.30, -12.29];
        let bins: Vec<(i32, u64)> = weights.iter().map(|&w| bin_of(w)).collect();
        assert!(bins.iter().all(|b| b.0 == bins[0].0));
        let offsets: u64 = bins.iter().map(|b| b.1).sum();
        assert!((bin_mean(bins[0].0, 3, offsets) - (-12.30)).abs() < 1e-9);
        assert_eq!(
            bin_of(f64::NEG_INFINITY).0,
            (-BINNED_WEIGHT_LIMIT * BINS_PER_BIT) as i32
        );
        assert_eq!(bin_of(f64::NAN), (0, 0));
    }

    #[test]
    fn review_evidence_names_each_field_level_and_sums_to_the_weight() {
        let model = model(0.9, 0.8);
        // Name exact, birth date differs, sex not compared, household level 0.
        let pattern: Pattern = (1 << 4) | (u32::from(crate::model::MISSING) << 8);
        let weight = -3.25;
        let evidence = review_evidence(&model, pattern, weight);
        let fields: Vec<&str> = evidence.iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "name",
                "birth_date",
                "sex",
                "household",
                ADJUSTMENTS_EVIDENCE
            ]
        );
        assert_eq!(evidence[0].level, Field::Name.levels()[0]);
        assert_eq!(evidence[1].level, Field::BirthDate.levels()[1]);
        assert_eq!(
            (evidence[2].level, evidence[2].weight_bits),
            ("missing", 0.0)
        );
        assert!((evidence[0].weight_bits - (0.9f64 / 0.5).log2()).abs() < 1e-12);
        let sum: f64 = evidence.iter().map(|e| e.weight_bits).sum();
        assert!((sum - weight).abs() < 1e-9);
    }

    #[test]
    fn review_decisions_bind_the_linkage_and_uncertain_pairs_are_proposed() {
        let dir = tempfile::tempdir().unwrap();
        let config = kiban_synth::SynthConfig {
            persons: 1_500,
            seed: 17,
            ..kiban_synth::SynthConfig::default()
        };
        let summary = kiban_synth::write_identity_csv(&config, dir.path(), &|_| {}).unwrap();
        let loaded = crate::records::load_identity_csv(&summary.records_path).unwrap();
        let options = LinkOptions {
            random_pairs: 200_000,
            training_pairs: 500_000,
            review_band: Some((0.01, 0.999)),
            ..LinkOptions::default()
        };
        let free = link_records(&loaded, &options);
        assert!(!free.review.is_empty());
        assert_eq!(free.review.len() as u64, free.report.review_pairs_in_band);
        for pair in &free.review {
            assert!(pair.a < pair.b);
            assert!((0.01..=0.999).contains(&pair.match_probability), "{pair:?}");
            let sum: f64 = pair.evidence.iter().map(|e| e.weight_bits).sum();
            assert!((sum - pair.weight).abs() < 1e-6, "{pair:?}");
            assert_eq!(pair.evidence.len(), FIELD_COUNT + 1);
        }
        // Most uncertain first.
        for w in free.review.windows(2) {
            assert!(w[0].weight.abs() <= w[1].weight.abs());
        }
        // A pair the run left apart, and a pair it joined.
        let hospital = |r: u32| loaded.records[r as usize].hospital;
        let apart = (1..loaded.records.len() as u32)
            .find(|&r| free.person[r as usize] != free.person[0] && hospital(r) != hospital(0))
            .map(|r| (0, r))
            .expect("two persons at two providers");
        let mut first_of_person = rustc_hash::FxHashMap::default();
        let joined = (0..loaded.records.len() as u32)
            .find_map(|r| {
                let first = *first_of_person.entry(free.person[r as usize]).or_insert(r);
                (first != r).then_some((first, r))
            })
            .expect("two records of one person");
        let constraints = Constraints {
            must_link: vec![apart],
            cannot_link: vec![(joined.1, joined.0)],
        };
        let bound = link_records_with(&loaded, &options, &constraints);
        assert_eq!(
            bound.person[apart.0 as usize],
            bound.person[apart.1 as usize]
        );
        assert_ne!(
            bound.person[joined.0 as usize],
            bound.person[joined.1 as usize]
        );
        assert_eq!(bound.report.must_links_applied, 1);
        assert_eq!(bound.match_probability[apart.0 as usize], Some(1.0));
        // Decided pairs are not proposed again.
        let in_review = |review: &[ReviewCandidate], (a, b): (u32, u32)| {
            review.iter().any(|p| (p.a, p.b) == (a, b))
        };
        let decided_in_review = usize::from(in_review(&free.review, joined))
            + usize::from(in_review(&free.review, apart));
        assert_eq!(bound.review.len() + decided_in_review, free.review.len());
        assert!(!in_review(&bound.review, apart));
        assert!(!in_review(&bound.review, joined));
        // No band: nothing proposed.
        let none = link_records(
            &loaded,
            &LinkOptions {
                review_band: None,
                ..options.clone()
            },
        );
        assert!(none.review.is_empty());
        assert_eq!(none.person, free.person);
    }
}
