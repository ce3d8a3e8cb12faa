//! Incremental linkage: a new intake links to the existing persons without relinking
//! everything.
//!
//! A full run ([`crate::link::link_records_with`]) learns the model; [`LearnedModel`] keeps what
//! it learned that is not identity data (the Fellegi–Sunter m and u per field and level, the
//! prior as expected matches, household co-movement, namesake density, the regional and
//! within-household corrections, the patient flows between providers by provider id) as JSON
//! ([`LearnedModel::to_json`], [`LearnedModel::from_json`]). Tables derived from identity values
//! (name frequencies, households, identity groups) are never kept: an incremental run
//! recomputes them from the records in one pass.
//!
//! [`link_new_records`] then links the records that have no person yet: the candidate pairs come
//! from the same blocking ([`crate::blocking::BlockIndex`]), but only the pairs with at least
//! one new record are enumerated ([`crate::blocking::BlockIndex::fold_pairs_touching`]),
//! compared and weighed, with the learned model. Clustering
//! ([`crate::cluster::cluster_onto_persons`]) keeps every existing person whole; new records
//! join an existing person or each other under the rules of the full run (strongest first, one
//! record per provider and person, a reviewer's decisions honoured), or form new persons. A new
//! record joins at most one existing person; a pair that would have joined two existing persons
//! goes to clerical review instead ([`IncrementalLinkage::review`]).
//!
//! ```no_run
//! use kiban_linkage::cluster::Constraints;
//! use kiban_linkage::incremental::{LearnedModel, link_new_records};
//! use kiban_linkage::link::{LinkOptions, link_records};
//! use kiban_linkage::records::load_identity_csv;
//! use std::path::Path;
//!
//! let options = LinkOptions::default();
//! let first = load_identity_csv(Path::new("first.csv"))?;
//! let full = link_records(&first, &options);
//! let kept = LearnedModel::from_report(&full.report, &first).to_json();
//!
//! // Later: the first records (with their persons) and the new ones, in one file.
//! let both = load_identity_csv(Path::new("both.csv"))?;
//! let existing: Vec<Option<u32>> = (0..both.records.len())
//!     .map(|r| full.person.get(r).copied())
//!     .collect();
//! let learned = LearnedModel::from_json(&kept)?;
//! let run = link_new_records(&both, &existing, &learned, &options, &Constraints::default())?;
//! println!("{} new records, {} joined existing persons", run.report.new_records, run.report.joined_existing);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::blocking::BlockIndex;
use crate::cluster::{Constraints, ScoredPair, cluster_onto_persons};
use crate::household::{CoMove, CoMoveEvidence, Households, shares_no_household};
use crate::identity_group::{GROUP_LEVELS, GroupSizeEvidence, IdentityGroups};
use crate::link::{
    CLUSTER_EVIDENCE_MARGIN, KeptPair, LinkOptions, LinkReport, NameFrequencies, ReviewCandidate,
    SHARED_HOUSEHOLD, cross_provider_pairs, probability_weight, review_candidates, review_evidence,
};
use crate::model::{
    FIELD_COUNT, FIELDS, FamilyNameResidence, FieldParameters, ModelParameters, WithinHousehold,
    compare_records, probability_of_weight,
};
use crate::provider_pair::ProviderPairEvidence;
use crate::records::LoadedRecords;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// The version of the [`LearnedModel`] format. A model of another version is not used: the
/// next run is a full one, which learns a new model.
pub const LEARNED_MODEL_FORMAT: u32 = 1;

/// Corrections in bits are kept within this (beyond, a pair is settled whatever the rest): JSON
/// has no infinity.
const ADJUSTMENT_LIMIT: f64 = 1_000.0;

/// Why a kept model or an incremental run was refused. Messages name the part, never a value.
#[derive(Debug, thiserror::Error)]
pub enum IncrementalError {
    /// The kept model is not valid JSON of this format.
    #[error("learned linkage model: {0}")]
    Json(#[from] serde_json::Error),
    /// The kept model is of another format version.
    #[error("learned linkage model: format {found}, this version reads format {expected}")]
    Format {
        /// The model's format.
        found: u32,
        /// The format this version reads.
        expected: u32,
    },
    /// A part of the kept model does not fit the comparison levels of this version.
    #[error("learned linkage model: {part} does not fit this version's comparison levels")]
    Shape {
        /// The part of the model.
        part: &'static str,
    },
    /// The existing persons are not given one per record.
    #[error("{given} existing persons given for {records} records")]
    RecordCount {
        /// Entries given.
        given: usize,
        /// Records loaded.
        records: usize,
    },
}

/// The m and u of one field's comparison levels ([`FIELDS`] order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearnedField {
    /// The field's name ([`crate::model::Field::name`]).
    pub field: String,
    /// P(level | match) per level.
    pub m: Vec<f64>,
    /// P(level | non-match) per level.
    pub u: Vec<f64>,
}

/// The m and u of the levels of one learned comparison beyond the fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearnedLevels {
    /// P(level | match) per level.
    pub m: Vec<f64>,
    /// P(level | non-match) per level.
    pub u: Vec<f64>,
}

/// One provider's share of the records the model learned from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderShare {
    /// The provider id.
    pub provider: String,
    /// Its share of the linkable records.
    pub share: f64,
}

/// The expected matches at one pair of providers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderPairMatches {
    /// One provider id.
    pub a: String,
    /// The other.
    pub b: String,
    /// Expected matches among its candidate pairs.
    pub expected_matches: f64,
}

/// What a full linkage run learned, kept for incremental runs. Parameters only: no identity
/// value, nor anything keyed by one, is in it (providers are named by their id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearnedModel {
    /// The format version ([`LEARNED_MODEL_FORMAT`]).
    pub format: u32,
    /// Linkable records of the run that learned it (the prior grows with the records).
    pub linkable_records: u64,
    /// Expected matching pairs among all pairs of that run.
    pub expected_matching_pairs: f64,
    /// m and u per field and level.
    pub fields: Vec<LearnedField>,
    /// Household co-movement ([`CoMove::ALL`] levels).
    pub co_move: LearnedLevels,
    /// Namesake density ([`crate::identity_group`] levels).
    pub group_size: LearnedLevels,
    /// Regional correction of household levels for pairs sharing a family name (bits).
    pub residence_adjustment: Vec<f64>,
    /// Correction of name levels for pairs of one household (bits).
    pub within_household_name_adjustment: Vec<f64>,
    /// Correction of an exact birth date for pairs of one household (bits).
    pub within_household_exact_date_adjustment: f64,
    /// Each provider's share of the records.
    pub provider_shares: Vec<ProviderShare>,
    /// Expected matches per provider pair.
    pub provider_pair_matches: Vec<ProviderPairMatches>,
    /// Expected matches over all provider pairs.
    pub provider_expected_matches: f64,
    /// Provider pairs a match could be at.
    pub provider_pairs: u64,
    /// The prior in bits of a pair of one identity at one provider.
    pub same_provider_prior: f64,
}

fn bounded(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(-ADJUSTMENT_LIMIT, ADJUSTMENT_LIMIT)
    }
}

impl LearnedModel {
    /// What the full run of `report` learned; `loaded` are the records it linked (for the
    /// provider ids).
    pub fn from_report(report: &LinkReport, loaded: &LoadedRecords) -> LearnedModel {
        let provider = |id: u32| loaded.pool.get(id).to_owned();
        let shares = report.provider_pairs.shares();
        let matches = report.provider_pairs.matches_by_provider_pair();
        LearnedModel {
            format: LEARNED_MODEL_FORMAT,
            linkable_records: report.linkable_records,
            expected_matching_pairs: report.model.expected_matching_pairs,
            fields: report
                .model
                .fields
                .iter()
                .map(|f| LearnedField {
                    field: f.field.name().to_owned(),
                    m: f.m.clone(),
                    u: f.u.clone(),
                })
                .collect(),
            co_move: LearnedLevels {
                m: report.co_move.m.to_vec(),
                u: report.co_move.u.to_vec(),
            },
            group_size: LearnedLevels {
                m: report.group_size.m.to_vec(),
                u: report.group_size.u.to_vec(),
            },
            residence_adjustment: report
                .residence
                .adjustment
                .iter()
                .map(|&x| bounded(x))
                .collect(),
            within_household_name_adjustment: report
                .within_household
                .name_adjustment
                .iter()
                .map(|&x| bounded(x))
                .collect(),
            within_household_exact_date_adjustment: bounded(
                report.within_household.exact_date_adjustment,
            ),
            provider_shares: shares
                .into_iter()
                .map(|(p, share)| ProviderShare {
                    provider: provider(p),
                    share,
                })
                .collect(),
            provider_pair_matches: matches
                .into_iter()
                .map(|((a, b), expected_matches)| ProviderPairMatches {
                    a: provider(a),
                    b: provider(b),
                    expected_matches,
                })
                .collect(),
            provider_expected_matches: report.provider_pairs.expected_matches,
            provider_pairs: report.provider_pairs.provider_pairs,
            same_provider_prior: bounded(report.same_provider_prior),
        }
    }

    /// The model as JSON.
    pub fn to_json(&self) -> String {
        // Only numbers, strings and vectors of them: serialization cannot fail, and the
        // non-finite numbers JSON cannot hold were bounded when the model was made.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A model from [`LearnedModel::to_json`], checked against this version's format and
    /// comparison levels.
    pub fn from_json(text: &str) -> Result<LearnedModel, IncrementalError> {
        let model: LearnedModel = serde_json::from_str(text)?;
        model.check()?;
        Ok(model)
    }

    /// Checks the format version and that every part has the levels of this version.
    pub fn check(&self) -> Result<(), IncrementalError> {
        if self.format != LEARNED_MODEL_FORMAT {
            return Err(IncrementalError::Format {
                found: self.format,
                expected: LEARNED_MODEL_FORMAT,
            });
        }
        let shape = |ok: bool, part: &'static str| {
            if ok {
                Ok(())
            } else {
                Err(IncrementalError::Shape { part })
            }
        };
        shape(self.fields.len() == FIELD_COUNT, "fields")?;
        for (kept, field) in self.fields.iter().zip(FIELDS) {
            let levels = field.levels().len();
            shape(
                kept.field == field.name() && kept.m.len() == levels && kept.u.len() == levels,
                "field levels",
            )?;
        }
        shape(
            self.co_move.m.len() == CoMove::ALL.len() && self.co_move.u.len() == CoMove::ALL.len(),
            "household co-movement",
        )?;
        shape(
            self.group_size.m.len() == GROUP_LEVELS && self.group_size.u.len() == GROUP_LEVELS,
            "namesake density",
        )?;
        let household_levels = crate::model::Field::Household.levels().len();
        shape(
            self.residence_adjustment.len() == household_levels,
            "residence correction",
        )?;
        shape(
            self.within_household_name_adjustment.len() == crate::model::Field::Name.levels().len(),
            "within-household correction",
        )?;
        Ok(())
    }

    /// The Fellegi–Sunter model with the prior of `linkable_records` records among
    /// `all_pairs` pairs of records of different providers: the expected matches grow with the
    /// records, the pairs with their square.
    fn model_parameters(&self, linkable_records: usize, all_pairs: f64) -> ModelParameters {
        let expected = self.expected_matching_pairs * linkable_records as f64
            / self.linkable_records.max(1) as f64;
        ModelParameters {
            match_prior: (expected / all_pairs).clamp(1e-12, 0.5),
            expected_matching_pairs: expected,
            fields: self
                .fields
                .iter()
                .zip(FIELDS)
                .map(|(kept, field)| FieldParameters {
                    field,
                    m: kept.m.clone(),
                    u: kept.u.clone(),
                    trained_by: Vec::new(),
                })
                .collect(),
            sessions: Vec::new(),
            random_pairs: 0,
        }
    }
}

/// What an incremental run did.
#[derive(Debug, Clone, PartialEq)]
pub struct IncrementalReport {
    /// Records in all.
    pub records: u64,
    /// Records without a person before the run.
    pub new_records: u64,
    /// New records that took part in linkage.
    pub new_linkable_records: u64,
    /// Candidate pairs the blocking enumerated: only those with at least one new record
    /// (the pairs of two existing records are never enumerated).
    pub candidate_pairs: u64,
    /// Candidate pairs with at least one new record: compared and weighed (all enumerated).
    pub pairs_scored: u64,
    /// Scored pairs at or above the match threshold.
    pub pairs_above_threshold: u64,
    /// New records that joined an existing person.
    pub joined_existing: u64,
    /// Persons made of new records only.
    pub new_persons: u64,
    /// Persons after the run.
    pub persons: u64,
    /// Merges made.
    pub merges: u64,
    /// Merges refused because a provider would have held two records of one person.
    pub merges_refused_same_provider: u64,
    /// Merges refused because a reviewer judged two of their records different persons.
    pub merges_refused_cannot_link: u64,
    /// A reviewer's same-person decisions that joined two clusters.
    pub must_links_applied: u64,
    /// Same-person decisions refused (they contradict a different-persons decision).
    pub must_links_refused: u64,
    /// Merges refused because they would have joined two existing persons (proposed for
    /// review instead).
    pub existing_persons_kept_apart: u64,
    /// Pairs with a new record whose match probability lies in the review band.
    pub review_pairs_in_band: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// The result of an incremental run.
#[derive(Debug, Clone, PartialEq)]
pub struct IncrementalLinkage {
    /// Person number of each record (0-based, numbered by first record): every existing person
    /// is one number, whole.
    pub person: Vec<u32>,
    /// Per new record, as [`crate::link::Linkage::match_probability`]; `None` for unlinkable
    /// rows and for existing records (their probability is not weighed again).
    pub match_probability: Vec<Option<f64>>,
    /// The pairs for clerical review: the pairs with a new record in the review band, most
    /// uncertain first, then the pairs that would have joined two existing persons.
    pub review: Vec<ReviewCandidate>,
    /// The report.
    pub report: IncrementalReport,
}

/// What one worker sums while the candidate pairs stream past.
#[derive(Default)]
struct Scored {
    candidates: u64,
    scored: u64,
    kept: Vec<KeptPair>,
    /// The strongest weight of each new record's pairs.
    strongest: FxHashMap<u32, f64>,
}

impl Scored {
    fn merge(mut self, mut other: Scored) -> Scored {
        if self.kept.len() < other.kept.len() {
            std::mem::swap(&mut self.kept, &mut other.kept);
        }
        self.kept.append(&mut other.kept);
        self.candidates += other.candidates;
        self.scored += other.scored;
        for (r, w) in other.strongest {
            let e = self.strongest.entry(r).or_insert(f64::NEG_INFINITY);
            *e = e.max(w);
        }
        self
    }
}

/// Links the records without a person (`existing[r]` is `None`) onto the existing persons
/// (`existing[r]`, a person number per record: records of one number are one person) with the
/// `learned` model, bound by a reviewer's decisions (`constraints`, record indices). Only
/// candidate pairs with at least one new record are compared. Existing persons are never split
/// nor merged with each other by scores (a reviewer's same-person decision still joins them);
/// see the [module documentation](self).
pub fn link_new_records(
    loaded: &LoadedRecords,
    existing: &[Option<u32>],
    learned: &LearnedModel,
    options: &LinkOptions,
    constraints: &Constraints,
) -> Result<IncrementalLinkage, IncrementalError> {
    let started = Instant::now();
    learned.check()?;
    let records = &loaded.records;
    let pool = &loaded.pool;
    if existing.len() != records.len() {
        return Err(IncrementalError::RecordCount {
            given: existing.len(),
            records: records.len(),
        });
    }
    let is_new: Vec<bool> = existing.iter().map(Option::is_none).collect();
    let linkable: Vec<u32> = loaded.linkable_indexes();
    let all_pairs = cross_provider_pairs(loaded, &linkable);
    let model = learned.model_parameters(linkable.len(), all_pairs);
    let prior = model.prior_weight();
    // Tables of identity values: recomputed from the records, never kept.
    let name_frequencies = NameFrequencies::new(records, &linkable);
    let households = Households::new(records, &linkable);
    let identity_groups = IdentityGroups::new(records, &linkable);
    // The learned evidence, with providers by this run's ids.
    let residence = FamilyNameResidence {
        adjustment: learned.residence_adjustment.clone(),
        sampled_pairs: 0,
    };
    let within_household = WithinHousehold {
        name_adjustment: learned.within_household_name_adjustment.clone(),
        exact_date_adjustment: learned.within_household_exact_date_adjustment,
        sampled_pairs: 0,
    };
    let array3 = |v: &[f64]| [v[0], v[1], v[2]];
    let co_move = CoMoveEvidence {
        m: array3(&learned.co_move.m),
        u: array3(&learned.co_move.u),
        expected_matches: 0.0,
        random_pairs: 0,
    };
    let mut group_size = GroupSizeEvidence::default();
    group_size.m.copy_from_slice(&learned.group_size.m);
    group_size.u.copy_from_slice(&learned.group_size.u);
    let provider_ids: FxHashMap<&str, u32> = records
        .iter()
        .map(|r| (pool.get(r.hospital), r.hospital))
        .collect();
    let id_of = |name: &str| provider_ids.get(name).copied();
    let provider_pairs = ProviderPairEvidence::from_learned(
        learned
            .provider_shares
            .iter()
            .filter_map(|s| Some((id_of(&s.provider)?, s.share))),
        learned
            .provider_pair_matches
            .iter()
            .filter_map(|p| Some(((id_of(&p.a)?, id_of(&p.b)?), p.expected_matches))),
        learned.provider_expected_matches,
        learned.provider_pairs,
    );
    let class_weight = |class: usize| {
        if class == SHARED_HOUSEHOLD {
            0.0
        } else {
            co_move.weight(CoMove::ALL[class])
        }
    };
    let pair_evidence = |a: u32, b: u32| {
        let (x, y) = (&records[a as usize], &records[b as usize]);
        let pattern = compare_records(pool, x, y);
        let evidence = model.pattern_weight(pattern)
            + name_frequencies.adjustment(pattern, x, y)
            + residence.of(pattern)
            + within_household.of(pattern);
        (pattern, evidence)
    };
    let threshold_weight = probability_weight(options.match_threshold);
    let cut = threshold_weight - CLUSTER_EVIDENCE_MARGIN;
    // Pairs down to the review band's lower end are kept too: they may be proposed.
    let keep_floor = match options.review_band {
        Some((low, _)) if low > 0.0 => cut.min(probability_weight(low)),
        _ => cut,
    };
    let block_index = BlockIndex::new(pool, records, &linkable, options.max_block_size);
    // Only the pairs with a new record are enumerated: blocks of existing records only, and
    // the pairs of two existing records inside a block, are skipped.
    let scored = block_index.fold_pairs_touching(
        records,
        &is_new,
        Scored::default,
        |acc: &mut Scored, a, b| {
            acc.candidates += 1;
            acc.scored += 1;
            let (pattern, evidence) = pair_evidence(a, b);
            let co_move =
                shares_no_household(pattern).then(|| households.co_move(pool, records, a, b));
            let group = identity_groups.level(a, b);
            let mut pair = KeptPair {
                a,
                b,
                pattern,
                co_move,
                group,
                weight: evidence,
            };
            pair.weight += class_weight(pair.household_class())
                + prior
                + provider_pairs.weight(records[a as usize].hospital, records[b as usize].hospital)
                + group.map_or(0.0, |l| group_size.weight(l));
            for r in [a, b] {
                if is_new[r as usize] {
                    let e = acc.strongest.entry(r).or_insert(f64::NEG_INFINITY);
                    *e = e.max(pair.weight);
                }
            }
            if pair.weight >= keep_floor {
                acc.kept.push(pair);
            }
        },
        Scored::merge,
    );
    drop(block_index);
    let Scored {
        candidates,
        scored: pairs_scored,
        mut kept,
        strongest,
    } = scored;
    // A fixed order: the result does not depend on the threads' interleaving.
    kept.sort_unstable_by_key(|p| (p.a, p.b));
    // Records of one identity at one provider (a person registered twice), with a new record.
    let same_provider_pairs: Vec<(u32, u32)> = identity_groups
        .same_provider_pairs()
        .iter()
        .copied()
        .filter(|&(a, b)| is_new[a as usize] || is_new[b as usize])
        .collect();
    let same_provider_weights: Vec<f64> = same_provider_pairs
        .iter()
        .map(|&(a, b)| pair_evidence(a, b).1 + learned.same_provider_prior)
        .collect();
    let (mut review, review_pairs_in_band) = review_candidates(
        loaded,
        &model,
        &kept,
        &same_provider_pairs,
        &same_provider_weights,
        options,
        constraints,
    );
    let mut accepted: Vec<ScoredPair> = kept
        .iter()
        .filter(|p| p.weight >= cut)
        .map(|p| ScoredPair {
            a: p.a,
            b: p.b,
            weight: p.weight,
        })
        .collect();
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
    let providers: Vec<u32> = records.iter().map(|r| r.hospital).collect();
    let onto = cluster_onto_persons(
        records.len(),
        &providers,
        existing,
        accepted,
        threshold_weight,
        |x, y| provider_pairs.weight(x, y),
        constraints,
    );
    let clustering = onto.clustering;
    // Merges of existing persons are a reviewer's to make.
    if options.review_band.is_some() {
        let ordered = |a: u32, b: u32| (a.min(b), a.max(b));
        let mut proposed: FxHashSet<(u32, u32)> =
            review.iter().map(|p| ordered(p.a, p.b)).collect();
        proposed.extend(
            constraints
                .must_link
                .iter()
                .chain(&constraints.cannot_link)
                .map(|&(a, b)| ordered(a, b)),
        );
        for pair in &onto.refused_joining_persons {
            let (a, b) = ordered(pair.a, pair.b);
            if !proposed.insert((a, b)) {
                continue;
            }
            let (pattern, weight) = match kept.binary_search_by_key(&(a, b), |p| (p.a, p.b)) {
                Ok(i) => (kept[i].pattern, kept[i].weight),
                Err(_) => {
                    let (pattern, evidence) = pair_evidence(a, b);
                    (pattern, evidence + learned.same_provider_prior)
                }
            };
            review.push(ReviewCandidate {
                a,
                b,
                match_probability: probability_of_weight(weight),
                weight,
                evidence: review_evidence(&model, pattern, weight),
            });
        }
        review.truncate(options.review_limit);
    }
    // Which clusters hold an existing person's records.
    let mut anchored = vec![false; clustering.persons as usize];
    for (r, person) in clustering.person.iter().enumerate() {
        if existing[r].is_some() {
            anchored[*person as usize] = true;
        }
    }
    let joined_existing = (0..records.len())
        .filter(|&r| is_new[r] && anchored[clustering.person[r] as usize])
        .count() as u64;
    let mut new_person_seen = vec![false; clustering.persons as usize];
    let mut new_persons = 0u64;
    for (r, &person) in clustering.person.iter().enumerate() {
        if is_new[r] && !anchored[person as usize] && !new_person_seen[person as usize] {
            new_person_seen[person as usize] = true;
            new_persons += 1;
        }
    }
    let match_probability = (0..records.len())
        .map(|r| {
            if !is_new[r] || !loaded.linkable[r] {
                None
            } else if clustering.best_link_weight[r] > f64::NEG_INFINITY {
                Some(probability_of_weight(clustering.best_link_weight[r]))
            } else {
                match strongest.get(&(r as u32)) {
                    Some(w) if w.is_finite() => Some(1.0 - probability_of_weight(*w)),
                    _ => Some(1.0),
                }
            }
        })
        .collect();
    let report = IncrementalReport {
        records: records.len() as u64,
        new_records: is_new.iter().filter(|n| **n).count() as u64,
        new_linkable_records: linkable.iter().filter(|&&r| is_new[r as usize]).count() as u64,
        candidate_pairs: candidates,
        pairs_scored,
        pairs_above_threshold,
        joined_existing,
        new_persons,
        persons: u64::from(clustering.persons),
        merges: clustering.merges,
        merges_refused_same_provider: clustering.merges_refused_same_provider,
        merges_refused_cannot_link: clustering.merges_refused_cannot_link,
        must_links_applied: clustering.must_links_applied,
        must_links_refused: clustering.must_links_refused,
        existing_persons_kept_apart: onto.refused_joining_persons.len() as u64,
        review_pairs_in_band,
        elapsed: started.elapsed(),
    };
    Ok(IncrementalLinkage {
        person: clustering.person,
        match_probability,
        review,
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::{evaluate, read_assignment};
    use crate::link::{link_records, person_id as link_person_id};
    use crate::records::load_identity_csv;

    fn options() -> LinkOptions {
        LinkOptions {
            random_pairs: 200_000,
            training_pairs: 500_000,
            ..LinkOptions::default()
        }
    }

    #[test]
    fn new_records_link_onto_the_persons_of_a_full_run_nearly_as_a_full_relink_would() {
        let dir = tempfile::tempdir().unwrap();
        let config = kiban_synth::SynthConfig {
            persons: 3_000,
            seed: 31,
            ..kiban_synth::SynthConfig::default()
        };
        let summary = kiban_synth::write_identity_csv(&config, dir.path(), &|_| {}).unwrap();
        // Two intakes: four records in five first, the rest later.
        let text = std::fs::read_to_string(&summary.records_path).unwrap();
        let mut lines = text.lines();
        let header = lines.next().unwrap();
        let rows: Vec<&str> = lines.collect();
        let part = |first: bool| -> Vec<&str> {
            rows.iter()
                .enumerate()
                .filter(|(i, _)| (i % 5 != 0) == first)
                .map(|(_, row)| *row)
                .collect()
        };
        let (first_rows, later_rows) = (part(true), part(false));
        let write = |name: &str, parts: &[&[&str]]| {
            let path = dir.path().join(name);
            let mut out = format!("{header}\n");
            for part in parts {
                for row in part.iter() {
                    out.push_str(row);
                    out.push('\n');
                }
            }
            std::fs::write(&path, out).unwrap();
            path
        };
        let first = load_identity_csv(&write("first.csv", &[first_rows.as_slice()])).unwrap();
        let both = load_identity_csv(&write(
            "both.csv",
            &[first_rows.as_slice(), later_rows.as_slice()],
        ))
        .unwrap();
        let n_first = first.records.len();
        assert_eq!(&both.record_ids[..n_first], &first.record_ids[..]);

        let options = options();
        let first_run = link_records(&first, &options);
        let kept = LearnedModel::from_report(&first_run.report, &first).to_json();
        assert!(
            !kept.contains("山") && !kept.contains("田"),
            "no identity value"
        );
        let learned = LearnedModel::from_json(&kept).unwrap();
        let existing: Vec<Option<u32>> = (0..both.records.len())
            .map(|r| first_run.person.get(r).copied())
            .collect();
        let incremental = link_new_records(
            &both,
            &existing,
            &learned,
            &options,
            &Constraints::default(),
        )
        .unwrap();
        let full = link_records(&both, &options);

        // The persons of the first run are kept whole and apart.
        let mut now_of: FxHashMap<u32, u32> = FxHashMap::default();
        let mut then_of: FxHashMap<u32, u32> = FxHashMap::default();
        for (r, &then) in first_run.person.iter().enumerate() {
            let now = incremental.person[r];
            assert_eq!(
                *now_of.entry(then).or_insert(now),
                now,
                "a person was split"
            );
            assert_eq!(
                *then_of.entry(now).or_insert(then),
                then,
                "persons were merged"
            );
        }
        let report = &incremental.report;
        assert_eq!(report.new_records as usize, later_rows.len());
        assert!(
            report.joined_existing > 0 && report.new_persons > 0,
            "{report:?}"
        );
        assert!(
            report.joined_existing + report.new_persons <= report.new_records,
            "{report:?}"
        );
        // Only pairs with a new record were weighed: far fewer than a full relink.
        assert!(report.pairs_scored > 0);
        assert!(
            (report.pairs_scored as f64) < 0.5 * full.report.pairs_compared as f64,
            "{} of {}",
            report.pairs_scored,
            full.report.pairs_compared
        );
        // Only the pairs with a new record were enumerated: exactly those of the full blocking.
        assert_eq!(report.candidate_pairs, report.pairs_scored);
        let linkable: Vec<u32> = both.linkable_indexes();
        let index = BlockIndex::new(&both.pool, &both.records, &linkable, options.max_block_size);
        let with_new = index.fold_pairs(
            &both.records,
            || 0u64,
            |n, a, b| *n += u64::from(a as usize >= n_first || b as usize >= n_first),
            |x, y| x + y,
        );
        assert_eq!(report.candidate_pairs, with_new);

        // Nearly as good as a full relink, against the truth.
        let truth = read_assignment(&summary.truth_path).unwrap();
        let assignment = |person: &[u32]| -> FxHashMap<Box<str>, Box<str>> {
            both.record_ids
                .iter()
                .zip(person)
                .map(|(id, &p)| (id.clone(), link_person_id(p).into()))
                .collect()
        };
        let full_score = evaluate(&truth, &assignment(&full.person));
        let incremental_score = evaluate(&truth, &assignment(&incremental.person));
        println!(
            "incremental: precision {:.4} recall {:.4}, {} pairs scored; full: precision {:.4} recall {:.4}, {} pairs compared",
            incremental_score.pairwise_precision,
            incremental_score.pairwise_recall,
            report.pairs_scored,
            full_score.pairwise_precision,
            full_score.pairwise_recall,
            full.report.pairs_compared
        );
        assert!(
            incremental_score.pairwise_precision
                >= (full_score.pairwise_precision - 0.01).min(0.99),
            "{incremental_score:?} against {full_score:?}"
        );
        assert!(
            incremental_score.pairwise_recall >= (full_score.pairwise_recall - 0.02).min(0.97),
            "{incremental_score:?} against {full_score:?}"
        );
        // Every new record has a probability; existing ones are not weighed again.
        for r in 0..both.records.len() {
            assert_eq!(
                incremental.match_probability[r].is_some(),
                r >= n_first && both.linkable[r],
                "{r}"
            );
        }
        // Nothing new: nothing scored, nothing changed.
        let again: Vec<Option<u32>> = incremental.person.iter().map(|&p| Some(p)).collect();
        let rerun =
            link_new_records(&both, &again, &learned, &options, &Constraints::default()).unwrap();
        assert_eq!(rerun.report.pairs_scored, 0);
        assert_eq!(rerun.report.candidate_pairs, 0);
        assert_eq!(rerun.person, incremental.person);
    }

    #[test]
    fn a_kept_model_of_another_shape_or_format_is_refused() {
        let model = LearnedModel {
            format: LEARNED_MODEL_FORMAT,
            linkable_records: 10,
            expected_matching_pairs: 2.0,
            fields: FIELDS
                .iter()
                .map(|f| LearnedField {
                    field: f.name().to_owned(),
                    m: vec![0.5; f.levels().len()],
                    u: vec![0.5; f.levels().len()],
                })
                .collect(),
            co_move: LearnedLevels {
                m: vec![0.3; 3],
                u: vec![0.3; 3],
            },
            group_size: LearnedLevels {
                m: vec![0.1; GROUP_LEVELS],
                u: vec![0.1; GROUP_LEVELS],
            },
            residence_adjustment: vec![0.0; crate::model::Field::Household.levels().len()],
            within_household_name_adjustment: vec![0.0; crate::model::Field::Name.levels().len()],
            within_household_exact_date_adjustment: -3.0,
            provider_shares: vec![ProviderShare {
                provider: "prov-001".into(),
                share: 1.0,
            }],
            provider_pair_matches: Vec::new(),
            provider_expected_matches: 0.0,
            provider_pairs: 1,
            same_provider_prior: -20.0,
        };
        let back = LearnedModel::from_json(&model.to_json()).unwrap();
        assert_eq!(back.fields, model.fields);
        let other_format = LearnedModel {
            format: LEARNED_MODEL_FORMAT + 1,
            ..model.clone()
        };
        assert!(matches!(
            LearnedModel::from_json(&other_format.to_json()),
            Err(IncrementalError::Format { .. })
        ));
        let mut fewer_levels = model.clone();
        fewer_levels.fields[0].m.pop();
        assert!(matches!(
            LearnedModel::from_json(&fewer_levels.to_json()),
            Err(IncrementalError::Shape { .. })
        ));
        assert!(matches!(
            LearnedModel::from_json("{"),
            Err(IncrementalError::Json(_))
        ));
    }
}
