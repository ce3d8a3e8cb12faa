//! The whole linkage: load, block, fit the model, score, cluster, write.

use crate::blocking::{Candidates, RuleReport, TrainingRule, candidate_pairs, training_sample};
use crate::cluster::{ScoredPair, cluster_with_flows};
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
}

impl Default for LinkOptions {
    fn default() -> Self {
        LinkOptions {
            match_threshold: 0.7,
            max_block_size: 1_000,
            random_pairs: 1_000_000,
            max_em_iterations: 500,
            em_tolerance: 1e-7,
            training_pairs: 2_000_000,
            seed: 0x6b69_6261_6e00,
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
    /// Pairs at or above the match threshold.
    pub pairs_above_threshold: u64,
    /// Merges made.
    pub merges: u64,
    /// Merges refused because a provider would have held two records of one person.
    pub merges_refused_same_provider: u64,
    /// Persons in the output.
    pub persons: u64,
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
    /// The report (its `elapsed` covers linkage only, not loading).
    pub report: LinkReport,
}

/// The candidate pairs of a run with their comparison vectors and final weights.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredCandidates {
    /// The candidate pairs and what each blocking rule produced.
    pub candidates: Candidates,
    /// The comparison vector of each pair.
    pub patterns: Vec<Pattern>,
    /// The match weight of each pair in bits, prior included.
    pub weights: Vec<f64>,
    /// Indexes (into the pairs) of the pairs sharing no household.
    pub no_household: Vec<usize>,
    /// Whether each of those pairs' households moved together.
    pub co_moved: Vec<CoMove>,
    /// Distinct comparison vectors.
    pub distinct_patterns: u64,
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
}

/// Pairs this far (in bits) below the match threshold still go to clustering: the other records
/// of their two clusters may vouch for them ([`cluster_with_flows`]).
const CLUSTER_EVIDENCE_MARGIN: f64 = 8.0;

/// The weight in bits of a match probability.
fn probability_weight(probability: f64) -> f64 {
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

/// Blocks, fits the model and weighs every candidate pair of the `linkable` records.
pub fn score_candidates(
    loaded: &LoadedRecords,
    linkable: &[u32],
    options: &LinkOptions,
) -> ScoredCandidates {
    let records = &loaded.records;
    let pool = &loaded.pool;
    let candidates = candidate_pairs(pool, records, linkable, options.max_block_size);
    let patterns: Vec<u32> = candidates
        .pairs
        .par_iter()
        .map(|&(a, b)| compare_records(pool, &records[a as usize], &records[b as usize]))
        .collect();
    let distinct_patterns = count_patterns(&patterns).len() as u64;
    let mut model = train_model(loaded, linkable, options);
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
    // The evidence of each pair, without the prior.
    let pair_evidence = |model: &ModelParameters, (a, b): (u32, u32), pattern: Pattern| {
        let (x, y) = (&records[a as usize], &records[b as usize]);
        model.pattern_weight(pattern)
            + name_frequencies.adjustment(pattern, x, y)
            + residence.of(pattern)
            + within_household.of(pattern)
    };
    let mut weights: Vec<f64> = candidates
        .pairs
        .par_iter()
        .zip(&patterns)
        .map(|(&pair, &pattern)| pair_evidence(&model, pair, pattern))
        .collect();
    let all_pairs = cross_provider_pairs(loaded, linkable);
    let expected_matching_pairs = estimate_matching_pairs(&model, &patterns, &weights, all_pairs);
    model.expected_matching_pairs = expected_matching_pairs;
    model.match_prior = (expected_matching_pairs / all_pairs).clamp(1e-12, 0.5);
    // Household co-movement, on the pairs that share no household.
    let no_household: Vec<usize> = patterns
        .iter()
        .enumerate()
        .filter(|(_, p)| shares_no_household(**p))
        .map(|(k, _)| k)
        .collect();
    let co_moved: Vec<CoMove> = no_household
        .par_iter()
        .map(|&k| {
            let (a, b) = candidates.pairs[k];
            households.co_move(pool, records, a, b)
        })
        .collect();
    let prior = model.prior_weight();
    let no_household_evidence: Vec<f64> =
        no_household.iter().map(|&k| weights[k] + prior).collect();
    let co_move = CoMoveEvidence::learn(
        &households,
        pool,
        records,
        linkable,
        &no_household_evidence,
        &co_moved,
        options.random_pairs,
        options.seed,
    );
    drop(no_household_evidence);
    for (&k, &c) in no_household.iter().zip(&co_moved) {
        weights[k] += co_move.weight(c);
    }
    let co_moved_pairs = co_moved.iter().filter(|c| **c == CoMove::Together).count() as u64;
    let co_moved_flags = co_moved;
    let expected_matching_pairs = estimate_matching_pairs(&model, &patterns, &weights, all_pairs);
    model.expected_matching_pairs = expected_matching_pairs;
    model.match_prior = (expected_matching_pairs / all_pairs).clamp(1e-12, 0.5);
    let prior = model.prior_weight();
    weights.par_iter_mut().for_each(|w| *w += prior);
    // Patient flows between providers, with the rest of the evidence as each pair's prior.
    let provider_of: Vec<u32> = records.iter().map(|r| r.hospital).collect();
    let provider_pairs = ProviderPairEvidence::learn(
        &provider_of,
        linkable.iter().copied(),
        candidates
            .pairs
            .iter()
            .copied()
            .zip(weights.iter().copied()),
    );
    weights
        .par_iter_mut()
        .zip(&candidates.pairs)
        .for_each(|(w, &(a, b))| {
            *w += provider_pairs.weight(provider_of[a as usize], provider_of[b as usize]);
        });
    drop(provider_of);
    // Namesake density, on the pairs of one identity group, with the rest of the evidence
    // (prior included) as each pair's prior.
    let identity_groups = IdentityGroups::new(records, linkable);
    // Records of one identity at one provider: a person registered twice, or namesakes. Their
    // prior is their own: the matches among all pairs of one provider.
    let same_provider_pairs = identity_groups.same_provider_pairs().to_vec();
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
    let grouped: Vec<(usize, u8)> = candidates
        .pairs
        .iter()
        .enumerate()
        .filter_map(|(k, &(a, b))| identity_groups.level(a, b).map(|l| (k, l)))
        .collect();
    drop(identity_groups);
    let grouped_evidence: Vec<f64> = grouped.iter().map(|&(k, _)| weights[k]).collect();
    let grouped_levels: Vec<u8> = grouped.iter().map(|&(_, l)| l).collect();
    let group_size = GroupSizeEvidence::learn(&grouped_evidence, &grouped_levels);
    for &(k, l) in &grouped {
        weights[k] += group_size.weight(l);
    }
    ScoredCandidates {
        candidates,
        patterns,
        weights,
        no_household,
        co_moved: co_moved_flags,
        distinct_patterns,
        model,
        co_move,
        residence,
        co_moved_pairs,
        group_size,
        provider_pairs,
        same_provider_pairs,
        same_provider_weights,
    }
}

/// Links loaded records.
pub fn link_records(loaded: &LoadedRecords, options: &LinkOptions) -> Linkage {
    let started = Instant::now();
    let records = &loaded.records;
    let linkable: Vec<u32> = (0..records.len() as u32)
        .filter(|&i| loaded.linkable[i as usize])
        .collect();
    let ScoredCandidates {
        candidates,
        weights,
        distinct_patterns,
        model,
        co_move,
        co_moved_pairs,
        group_size,
        provider_pairs,
        same_provider_pairs,
        same_provider_weights,
        ..
    } = score_candidates(loaded, &linkable, options);
    // The strongest candidate weight per record, for the records that end up alone.
    let mut best_candidate = vec![f64::NEG_INFINITY; records.len()];
    for (&(a, b), &w) in candidates.pairs.iter().zip(&weights) {
        for r in [a, b] {
            let slot = &mut best_candidate[r as usize];
            *slot = slot.max(w);
        }
    }
    let threshold_weight = (options.match_threshold / (1.0 - options.match_threshold)).log2();
    let accepted: Vec<ScoredPair> = candidates
        .pairs
        .iter()
        .zip(&weights)
        .filter(|(_, w)| **w >= threshold_weight - CLUSTER_EVIDENCE_MARGIN)
        .map(|(&(a, b), &weight)| ScoredPair { a, b, weight })
        .collect();
    let mut accepted = accepted;
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
    let pairs_compared = candidates.pairs.len() as u64;
    drop(weights);
    let providers: Vec<u32> = records.iter().map(|r| r.hospital).collect();
    let clustering = cluster_with_flows(
        records.len(),
        &providers,
        accepted,
        threshold_weight,
        |x, y| provider_pairs.weight(x, y),
    );
    let match_probability = (0..records.len())
        .map(|r| {
            if !loaded.linkable[r] {
                None
            } else if clustering.best_link_weight[r].is_finite() {
                Some(probability_of_weight(clustering.best_link_weight[r]))
            } else if best_candidate[r].is_finite() {
                Some(1.0 - probability_of_weight(best_candidate[r]))
            } else {
                Some(1.0)
            }
        })
        .collect();
    let report = LinkReport {
        records: records.len() as u64,
        linkable_records: linkable.len() as u64,
        unlinkable: loaded.unlinkable.clone(),
        unusable_values: loaded.unusable.clone(),
        blocking: candidates.rules,
        pairs_compared,
        distinct_patterns,
        model,
        co_move,
        co_moved_pairs,
        group_size,
        provider_pairs,
        pairs_above_threshold,
        merges: clustering.merges,
        merges_refused_same_provider: clustering.merges_refused_same_provider,
        persons: u64::from(clustering.persons),
        elapsed: started.elapsed(),
    };
    Linkage {
        person: clustering.person,
        match_probability,
        report,
    }
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
    let (u_cohort, _) =
        estimate_u_within_cohorts(pool, records, linkable, options.random_pairs, options.seed);
    for (rule, used, estimated) in sessions_spec {
        let session_u = if rule == TrainingRule::BirthDate {
            &u_cohort
        } else {
            &u
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
fn cross_provider_pairs(loaded: &LoadedRecords, linkable: &[u32]) -> f64 {
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
}
