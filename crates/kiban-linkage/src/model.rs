//! The Fellegi–Sunter model: comparison vectors of record pairs, u-probabilities from random
//! record pairs, m-probabilities (and the match prior) from unsupervised EM over the candidate
//! pairs, match weights with a term-frequency adjustment on exact name matches.
//!
//! Four comparisons make the vector: the name (kanji and kana compared together, since a
//! person's kana reading follows from the kanji name: counted apart, one name would weigh twice),
//! the birth date, sex, and one
//! **household** comparison that folds the insurance card (保険者番号・記号・番号・枝番), the address
//! and the postal code together. A shared card and a shared address are one piece of evidence
//! (they both say "the same household"), not two; the same card with another branch number (枝番)
//! is a level of its own, which EM learns to be strong evidence of a different member of the
//! household (a twin, a sibling, a spouse).

use crate::compare::{
    DateLevel, compare_birth_dates, equal_with_unknown, jaro_winkler, levenshtein,
};
use crate::normalize::date::BirthDate;
use crate::normalize::text::UNKNOWN;
use crate::records::{LinkRecord, NameIds, StringPool};
use kiban_model::Sex;
use rayon::prelude::*;
use rustc_hash::FxHashMap;

/// Number of comparisons in a vector.
pub const FIELD_COUNT: usize = 4;

/// Bits per comparison level in a packed [`Pattern`].
const LEVEL_BITS: u32 = 4;

/// The level of a comparison that could not be made (a side is empty); it carries no weight.
pub const MISSING: u8 = 15;

/// A comparison vector packed 4 bits per field (field `f` at bits `4f..4f+4`).
pub type Pattern = u32;

/// The comparisons, in vector order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// Name: kanji (漢字氏名) and kana (カナ氏名) compared together.
    Name,
    /// Birth date.
    BirthDate,
    /// Sex.
    Sex,
    /// Household: insurance card with branch number, address and postal code together.
    Household,
}

/// The fields in vector order.
pub const FIELDS: [Field; FIELD_COUNT] =
    [Field::Name, Field::BirthDate, Field::Sex, Field::Household];

const NAME_LEVELS: [&str; 10] = [
    "kanji and kana exact",
    "kanji exact, kana missing",
    "kana exact, kanji missing",
    "kanji exact, kana differs",
    "kana exact, kanji within one edit or similar",
    "same given name, other family name",
    "same family name, other given name",
    "within one edit or similar",
    "kana exact, kanji different",
    "different",
];
const DATE_LEVELS: [&str; 7] = [
    "exact",
    "day and month swapped",
    "wrong era",
    "one digit differs (YYYYMMDD)",
    "one of year, month, day differs",
    "years within one",
    "different",
];
const SEX_LEVELS: [&str; 2] = ["same", "different"];
const HOUSEHOLD_LEVELS: [&str; 12] = [
    "same card, same branch",
    "same card, other branch",
    "same card (branch unknown), same residence",
    "same card (branch unknown), other residence",
    "same address",
    "nearly the same address",
    "same postal code",
    "same municipality",
    "same prefecture or postal area",
    "different",
    "same insurer (other card), same prefecture or postal area",
    "same insurer (other card), residence different",
];

impl Field {
    /// The field's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::BirthDate => "birth_date",
            Field::Sex => "sex",
            Field::Household => "household",
        }
    }

    /// Descriptions of the comparison levels, by level number.
    pub fn levels(self) -> &'static [&'static str] {
        match self {
            Field::Name => &NAME_LEVELS,
            Field::BirthDate => &DATE_LEVELS,
            Field::Sex => &SEX_LEVELS,
            Field::Household => &HOUSEHOLD_LEVELS,
        }
    }
}

/// The level of field `f` in a pattern ([`MISSING`] when not compared).
pub fn level_of(pattern: Pattern, field: usize) -> u8 {
    ((pattern >> (LEVEL_BITS * field as u32)) & 0xF) as u8
}

fn pack(levels: [u8; FIELD_COUNT]) -> Pattern {
    levels.iter().enumerate().fold(0, |p, (f, &l)| {
        p | (u32::from(l) << (LEVEL_BITS * f as u32))
    })
}

fn same_text(pool: &StringPool, a: u32, b: u32) -> bool {
    if a == b {
        return true;
    }
    let (x, y) = (pool.get(a), pool.get(b));
    (x.contains(UNKNOWN) || y.contains(UNKNOWN)) && equal_with_unknown(x, y)
}

fn within_one_edit(pool: &StringPool, a: u32, b: u32) -> bool {
    same_text(pool, a, b) || levenshtein(pool.get(a), pool.get(b)) <= 1
}

/// Compares two names: 0 exact, 1 typo, 2 same given name, 3 same family name, 4 similar,
/// 5 different, [`MISSING`].
pub fn name_level(pool: &StringPool, a: &NameIds, b: &NameIds) -> u8 {
    if a.key == 0 || b.key == 0 {
        return MISSING;
    }
    if same_text(pool, a.key, b.key) {
        return 0;
    }
    // The family / given split is known on both sides: compare the parts.
    let split_known = a.given != 0 && b.given != 0;
    if split_known {
        let family_same = same_text(pool, a.family, b.family);
        let given_same = same_text(pool, a.given, b.given);
        let family_close = family_same || within_one_edit(pool, a.family, b.family);
        let given_close = given_same || within_one_edit(pool, a.given, b.given);
        if family_close && given_close {
            return 1;
        }
        if given_same {
            return 2;
        }
        if family_same {
            return 3;
        }
    }
    let similarity = jaro_winkler(pool.get(a.key), pool.get(b.key));
    if !split_known && similarity >= 0.92 {
        1
    } else if similarity >= 0.8 {
        4
    } else {
        5
    }
}

/// The joint name level of a kanji level and a kana level (each of [`name_level`]).
pub fn joint_name_level(kanji: u8, kana: u8) -> u8 {
    let approximate = |l: u8| l == 1 || l == 4;
    match (kanji, kana) {
        (MISSING, MISSING) => MISSING,
        (0, 0) => 0,
        (0, MISSING) => 1,
        (MISSING, 0) => 2,
        (0, _) => 3,
        (k, 0) if approximate(k) => 4,
        (k, n) if k == 2 || n == 2 => 5,
        (k, n) if k == 3 || n == 3 => 6,
        (k, n) if approximate(k) || approximate(n) => 7,
        (_, 0) => 8,
        _ => 9,
    }
}

/// Compares two birth dates: the [`DateLevel`] order, with [`DateLevel::OneFieldDiffers`] split
/// into "one digit of YYYYMMDD differs" (a keystroke) and "a whole field differs"; [`MISSING`]
/// when a side has none.
pub fn date_level(a: &LinkRecord, b: &LinkRecord) -> u8 {
    let (Some(x), Some(y)) = (a.birth_date, b.birth_date) else {
        return MISSING;
    };
    let level = compare_birth_dates(
        &BirthDate {
            date: x,
            typed_era: None,
        },
        &BirthDate {
            date: y,
            typed_era: None,
        },
    );
    match level {
        DateLevel::Exact => 0,
        DateLevel::DayMonthSwapped => 1,
        DateLevel::WrongEra => 2,
        DateLevel::OneFieldDiffers => {
            use chrono::Datelike;
            let number =
                |d: chrono::NaiveDate| d.year().unsigned_abs() * 10_000 + d.month() * 100 + d.day();
            let (mut p, mut q) = (number(x), number(y));
            let mut differing = 0;
            while p > 0 || q > 0 {
                differing += usize::from(p % 10 != q % 10);
                p /= 10;
                q /= 10;
            }
            if differing == 1 { 3 } else { 4 }
        }
        DateLevel::YearWithinOne => 5,
        DateLevel::Different => 6,
    }
}

/// Compares sex: 0 same, 1 different, [`MISSING`] when unknown on a side.
pub fn sex_level(a: &LinkRecord, b: &LinkRecord) -> u8 {
    let known = |s: Sex| matches!(s, Sex::Male | Sex::Female);
    if !known(a.sex) || !known(b.sex) {
        MISSING
    } else if a.sex == b.sex {
        0
    } else {
        1
    }
}

/// Residence levels, before they are folded with the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Residence {
    Same,
    Near,
    SamePostalCode,
    SameMunicipality,
    SameRegion,
    Different,
    Missing,
}

fn residence(pool: &StringPool, a: &LinkRecord, b: &LinkRecord) -> Residence {
    let (x, y) = (&a.address, &b.address);
    let postal_same = a.postal_code.is_some() && a.postal_code == b.postal_code;
    let postal_area = match (a.postal_code, b.postal_code) {
        (Some(p), Some(q)) => p / 10_000 == q / 10_000,
        _ => false,
    };
    if x.key != 0 && y.key != 0 {
        if same_text(pool, x.key, y.key) {
            return Residence::Same;
        }
        let same_municipality = x.municipality != 0 && x.municipality == y.municipality;
        let compatible_prefecture =
            x.prefecture == 0 || y.prefecture == 0 || x.prefecture == y.prefecture;
        if same_municipality && compatible_prefecture {
            if levenshtein(pool.get(x.rest), pool.get(y.rest)) <= 2 {
                return Residence::Near;
            }
            return if postal_same {
                Residence::SamePostalCode
            } else {
                Residence::SameMunicipality
            };
        }
        if postal_same {
            return Residence::SamePostalCode;
        }
        if (x.prefecture != 0 && x.prefecture == y.prefecture) || postal_area {
            return Residence::SameRegion;
        }
        return Residence::Different;
    }
    match (a.postal_code, b.postal_code) {
        (Some(_), Some(_)) if postal_same => Residence::SamePostalCode,
        (Some(_), Some(_)) if postal_area => Residence::SameRegion,
        (Some(_), Some(_)) => Residence::Different,
        _ => Residence::Missing,
    }
}

/// Compares the household evidence (card, branch, address, postal code) as one comparison; the
/// levels are those of [`Field::Household`]'s [`Field::levels`], [`MISSING`] when nothing can be
/// compared.
pub fn household_level(pool: &StringPool, a: &LinkRecord, b: &LinkRecord) -> u8 {
    let residence = residence(pool, a, b);
    let same_card = a.card.is_present()
        && b.card.is_present()
        && a.card.insurer == b.card.insurer
        && a.card.symbol == b.card.symbol
        && a.card.number == b.card.number;
    let same_insurer =
        a.card.is_present() && b.card.is_present() && a.card.insurer == b.card.insurer;
    if same_card {
        return match (a.card.branch, b.card.branch) {
            (Some(x), Some(y)) if x == y => 0,
            (Some(_), Some(_)) => 1,
            _ if residence <= Residence::Near => 2,
            _ => 3,
        };
    }
    match residence {
        Residence::Same => 4,
        Residence::Near => 5,
        Residence::SamePostalCode => 6,
        Residence::SameMunicipality => 7,
        // The same insurer on two cards: the same employer's or municipality's scheme, which a
        // person who moved may have kept; evidence only where the residence says little.
        Residence::SameRegion if same_insurer => 10,
        Residence::Different if same_insurer => 11,
        Residence::SameRegion => 8,
        Residence::Different => 9,
        Residence::Missing => MISSING,
    }
}

/// The comparison vector of two records.
pub fn compare_records(pool: &StringPool, a: &LinkRecord, b: &LinkRecord) -> Pattern {
    pack([
        joint_name_level(
            name_level(pool, &a.kanji, &b.kanji),
            name_level(pool, &a.kana, &b.kana),
        ),
        date_level(a, b),
        sex_level(a, b),
        household_level(pool, a, b),
    ])
}

/// m- and u-probabilities of one field, by level.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldParameters {
    /// The field.
    pub field: Field,
    /// P(level | match), from EM.
    pub m: Vec<f64>,
    /// P(level | non-match), from random record pairs.
    pub u: Vec<f64>,
    /// The EM sessions whose m-estimates were averaged for this field.
    pub trained_by: Vec<&'static str>,
}

impl FieldParameters {
    /// The match weight log2(m/u) of a level (0 for [`MISSING`]).
    pub fn weight(&self, level: u8) -> f64 {
        match (
            self.m.get(usize::from(level)),
            self.u.get(usize::from(level)),
        ) {
            (Some(m), Some(u)) => (m / u).log2(),
            _ => 0.0,
        }
    }
}

/// One EM training session: the pairs of one training blocking rule, the fields it blocks on left
/// out of the model (their agreement there is forced by blocking, not evidence).
#[derive(Debug, Clone, PartialEq)]
pub struct EmSession {
    /// The session's name (its training rule).
    pub name: &'static str,
    /// Pairs in the rule's blocks (estimated from the sample when sampled).
    pub pairs: f64,
    /// Pairs sampled and fed to EM.
    pub sampled_pairs: u64,
    /// Estimated share of matches among the session's pairs.
    pub match_share: f64,
    /// EM iterations run.
    pub iterations: usize,
    /// Whether EM converged before the iteration cap.
    pub converged: bool,
}

/// The fitted model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelParameters {
    /// Prior probability that two random records (of different providers) match (λ).
    pub match_prior: f64,
    /// Expected matching pairs among all pairs of records.
    pub expected_matching_pairs: f64,
    /// Per-field parameters, in [`FIELDS`] order.
    pub fields: Vec<FieldParameters>,
    /// The EM sessions.
    pub sessions: Vec<EmSession>,
    /// Random record pairs sampled for the u-probabilities.
    pub random_pairs: u64,
}

impl ModelParameters {
    /// Sum of the per-field weights of a pattern, without the prior.
    pub fn pattern_weight(&self, pattern: Pattern) -> f64 {
        self.fields
            .iter()
            .enumerate()
            .map(|(f, p)| p.weight(level_of(pattern, f)))
            .sum()
    }

    /// The prior log-odds log2(λ / (1 − λ)).
    pub fn prior_weight(&self) -> f64 {
        (self.match_prior / (1.0 - self.match_prior)).log2()
    }

    /// Signs that EM settled on a class other than the matches: in identity data typed by
    /// providers most records of one person agree exactly on the name and on the birth date,
    /// so a class in which fewer than [`PLAUSIBLE_EXACT_SHARE`] do is another one (namesakes of
    /// a birth year, when the training blocks hold too few matches). One message per field,
    /// with the share; empty when the model is plausible.
    pub fn implausible_fields(&self) -> Vec<String> {
        self.fields
            .iter()
            .filter(|f| matches!(f.field, Field::Name | Field::BirthDate))
            .filter_map(|f| {
                let exact = f.m.first().copied().unwrap_or(0.0);
                (exact < PLAUSIBLE_EXACT_SHARE).then(|| {
                    format!(
                        "EM found only {:.1} % of matches agreeing exactly on {} (trained by {}): \
                         it settled on another class than the matches, and the links are not \
                         trustworthy",
                        exact * 100.0,
                        f.field.name(),
                        f.trained_by.join(", ")
                    )
                })
            })
            .collect()
    }
}

/// The share of matches agreeing exactly on the name and on the birth date below which the
/// trained model is reported implausible ([`ModelParameters::implausible_fields`]). Measured on
/// the synthetic populations: 0.93 and 0.99 at 1M records; 0.11 and 0.015 where EM failed.
pub const PLAUSIBLE_EXACT_SHARE: f64 = 0.5;

/// The probability of a match from a total weight (prior included).
pub fn probability_of_weight(weight: f64) -> f64 {
    1.0 / (1.0 + (-weight).exp2())
}

fn level_count(field: Field) -> usize {
    field.levels().len()
}

/// SplitMix64, a small deterministic generator for sampling pairs.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Estimates u-probabilities from `samples` random pairs of the given records (indexes into
/// `records`); returns per field the level shares and the number of pairs sampled.
pub fn estimate_u_random(
    pool: &StringPool,
    records: &[LinkRecord],
    linkable: &[u32],
    samples: usize,
    seed: u64,
) -> (Vec<Vec<f64>>, u64) {
    let groups = [linkable.to_vec()];
    estimate_u_in_groups(pool, records, &groups, samples, seed)
}

/// Estimates u-probabilities from random pairs of records born in the same cohort (five birth
/// years): the non-matches of a block on the birth date are such pairs, and given names follow
/// fashion, so that two people born the same year share a given name far more often than two
/// random people. EM over a birth-date block measures the other fields against these.
///
/// Sex is measured conditionally on the name level as well ([`SexGivenName`]): given names are
/// mostly one sex's, so two people of one cohort sharing a given name share their sex far more
/// often than half the time.
pub fn estimate_u_within_cohorts(
    pool: &StringPool,
    records: &[LinkRecord],
    linkable: &[u32],
    samples: usize,
    seed: u64,
) -> CohortNonMatches {
    use chrono::Datelike;
    let mut by_cohort: FxHashMap<i32, Vec<u32>> = FxHashMap::default();
    for &i in linkable {
        if let Some(date) = records[i as usize].birth_date {
            by_cohort
                .entry(date.year().div_euclid(COHORT_YEARS))
                .or_default()
                .push(i);
        }
    }
    let mut groups: Vec<Vec<u32>> = by_cohort.into_values().filter(|g| g.len() >= 2).collect();
    groups.sort_unstable();
    let counts = count_levels_in_groups(pool, records, &groups, samples, seed);
    let u = counts.shares();
    CohortNonMatches {
        sex_given_name: SexGivenName::from_counts(&counts.name_sex, &u[Field::Sex as usize]),
        u,
        sampled_pairs: counts.sampled_pairs,
    }
}

/// The comparison levels of random pairs of one birth cohort: the non-matches of a block on
/// the birth date ([`estimate_u_within_cohorts`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CohortNonMatches {
    /// u per field and level.
    pub u: Vec<Vec<f64>>,
    /// The sex level conditioned on the name level.
    pub sex_given_name: SexGivenName,
    /// Random pairs sampled.
    pub sampled_pairs: u64,
}

/// P(sex level | name level) among non-matches.
///
/// Fields of a comparison vector are taken as independent given the match status, but among
/// non-matches the name and sex are not: a shared given name nearly always means a shared sex.
/// Under independence, the surplus of same-sex pairs among the namesakes of a training block
/// looks like evidence of a second class, and where matches are few (large blocks: they grow
/// with the square of the population, matches with the population) EM settles on that class
/// instead of the matches. Used in EM only; scoring keeps the factorized u.
#[derive(Debug, Clone, PartialEq)]
pub struct SexGivenName {
    /// Per name level, the shares of the sex levels (same, different).
    pub shares: Vec<Vec<f64>>,
}

/// Pseudo-pairs, spread by the sex levels' overall shares, added to each name level's counts:
/// a level seen in few random pairs keeps close to the overall sex split.
const SEX_GIVEN_NAME_PRIOR_PAIRS: f64 = 20.0;

impl SexGivenName {
    /// The conditional shares from counts of (name level, sex level) among random pairs,
    /// smoothed towards `u_sex` (the sex levels' shares over all pairs).
    pub fn from_counts(name_sex: &[Vec<u64>], u_sex: &[f64]) -> SexGivenName {
        let shares = name_sex
            .iter()
            .map(|row| {
                let n: u64 = row.iter().sum();
                row.iter()
                    .zip(u_sex)
                    .map(|(&c, &u)| {
                        (c as f64 + SEX_GIVEN_NAME_PRIOR_PAIRS * u)
                            / (n as f64 + SEX_GIVEN_NAME_PRIOR_PAIRS)
                    })
                    .collect()
            })
            .collect();
        SexGivenName { shares }
    }

    /// P(sex level | name level), when both were compared.
    pub fn share(&self, name_level: u8, sex_level: u8) -> Option<f64> {
        self.shares
            .get(usize::from(name_level))?
            .get(usize::from(sex_level))
            .copied()
    }
}

/// The household levels where no card and no address is shared: where people live relative
/// to each other (nearly the same address down to different residence, insurer compared).
pub const RESIDENCE_LEVELS: std::ops::RangeInclusive<usize> = 5..=11;

/// Regional correction of the household weight for pairs that share the family name.
///
/// Family names are regional (many 比嘉 in Okinawa, 佐藤 in Tohoku): two different people who
/// share a family name live in the same prefecture more often than two random people, so where
/// the names agree, living nearby is weaker evidence of a match than random pairs say. The u of
/// the [`RESIDENCE_LEVELS`] is measured among random pairs of one family name, rescaled to the
/// mass random pairs give those levels (shared cards and addresses within a family name are
/// households, not namesakes, and keep their u).
#[derive(Debug, Clone, PartialEq)]
pub struct FamilyNameResidence {
    /// Per household level: log2(u among random pairs / u among pairs of one family name),
    /// 0 outside [`RESIDENCE_LEVELS`].
    pub adjustment: Vec<f64>,
    /// Random pairs of one family name sampled.
    pub sampled_pairs: u64,
}

impl FamilyNameResidence {
    /// Measures the correction on `samples` random pairs of records sharing a kanji family
    /// name, against `u_random` (the u of random pairs).
    pub fn estimate(
        pool: &StringPool,
        records: &[LinkRecord],
        linkable: &[u32],
        u_random: &[Vec<f64>],
        samples: usize,
        seed: u64,
    ) -> FamilyNameResidence {
        let household = Field::Household as usize;
        let levels = level_count(Field::Household);
        let mut by_family: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
        for &i in linkable {
            let name = &records[i as usize].kanji;
            if name.family != 0 && name.given != 0 {
                by_family.entry(name.family).or_default().push(i);
            }
        }
        let mut groups: Vec<Vec<u32>> = by_family.into_values().filter(|g| g.len() >= 2).collect();
        groups.sort_unstable();
        let (u_family, sampled_pairs) =
            estimate_u_in_groups(pool, records, &groups, samples, seed ^ 0x6661_6d69_6c79);
        let mass = |u: &[f64]| RESIDENCE_LEVELS.map(|l| u[l]).sum::<f64>();
        let (random_mass, family_mass) = (mass(&u_random[household]), mass(&u_family[household]));
        let adjustment = (0..levels)
            .map(|l| {
                if !RESIDENCE_LEVELS.contains(&l) || sampled_pairs == 0 || family_mass <= 0.0 {
                    return 0.0;
                }
                let conditional = u_family[household][l] / family_mass * random_mass;
                (u_random[household][l] / conditional).log2()
            })
            .collect();
        FamilyNameResidence {
            adjustment,
            sampled_pairs,
        }
    }

    /// The correction in bits of a pair: applies when the kanji names agree exactly.
    pub fn of(&self, pattern: Pattern) -> f64 {
        match level_of(pattern, Field::Name as usize) {
            0 | 1 | 3 => self
                .adjustment
                .get(usize::from(level_of(pattern, Field::Household as usize)))
                .copied()
                .unwrap_or(0.0),
            _ => 0.0,
        }
    }
}

/// Name levels where part of the name agrees (the given name, or the family name).
const PARTIAL_NAME_LEVELS: [usize; 2] = [5, 6];

/// Household levels of records of one household (a card without branch numbers, an address).
const SHARED_HOUSEHOLD_LEVELS: std::ops::RangeInclusive<u8> = 2..=4;

/// Correction of the name and birth-date weights for pairs of one household.
///
/// Members of a household share their family name, and twins their birth date too: among two
/// different people at one address, "same family name, other given name" is the rule, not the
/// exception it is among random pairs, and the same birth date is the twin rate, not one day in
/// tens of thousands. Twins (one address, one birth date, one family name) would otherwise look
/// like one person. The u of the partial name levels and of an exact birth date is measured
/// among random pairs of one household (one card or one address).
#[derive(Debug, Clone, PartialEq)]
pub struct WithinHousehold {
    /// Per name level: log2(u among random pairs / u among pairs of one household), 0 outside
    /// the partial name levels.
    pub name_adjustment: Vec<f64>,
    /// The same for an exact birth date.
    pub exact_date_adjustment: f64,
    /// Random pairs of one household sampled.
    pub sampled_pairs: u64,
}

impl WithinHousehold {
    /// Measures the correction on `samples` random pairs within the `households` (groups of
    /// record indexes), against `u_random` (the u of random pairs).
    pub fn estimate(
        pool: &StringPool,
        records: &[LinkRecord],
        households: &[Vec<u32>],
        u_random: &[Vec<f64>],
        samples: usize,
        seed: u64,
    ) -> WithinHousehold {
        let (name, date) = (Field::Name as usize, Field::BirthDate as usize);
        let (u_household, sampled_pairs) =
            estimate_u_in_groups(pool, records, households, samples, seed ^ 0x0068_6f75_7365);
        let ratio = |f: usize, l: usize| {
            (u_random[f][l] / u_household[f][l])
                .log2()
                .clamp(-TF_LIMIT, TF_LIMIT)
        };
        let name_adjustment = (0..level_count(Field::Name))
            .map(|l| {
                if PARTIAL_NAME_LEVELS.contains(&l) && sampled_pairs > 0 {
                    ratio(name, l)
                } else {
                    0.0
                }
            })
            .collect();
        let exact_date_adjustment = if sampled_pairs > 0 {
            // Only ever a correction downwards: one household's people share birth dates more
            // often than random people, never less.
            ratio(date, 0).min(0.0)
        } else {
            0.0
        };
        WithinHousehold {
            name_adjustment,
            exact_date_adjustment,
            sampled_pairs,
        }
    }

    /// The correction in bits of a pair: applies when the records share a household (a card
    /// without branch numbers, an address) and agree only partly on the name.
    pub fn of(&self, pattern: Pattern) -> f64 {
        if !SHARED_HOUSEHOLD_LEVELS.contains(&level_of(pattern, Field::Household as usize)) {
            return 0.0;
        }
        let name_level = usize::from(level_of(pattern, Field::Name as usize));
        if !PARTIAL_NAME_LEVELS.contains(&name_level) {
            return 0.0;
        }
        let date = if level_of(pattern, Field::BirthDate as usize) == 0 {
            self.exact_date_adjustment
        } else {
            0.0
        };
        self.name_adjustment.get(name_level).copied().unwrap_or(0.0) + date
    }
}

/// u-probabilities from random pairs of records of one group, groups drawn in proportion to
/// their records.
pub fn estimate_u_in_groups(
    pool: &StringPool,
    records: &[LinkRecord],
    groups: &[Vec<u32>],
    samples: usize,
    seed: u64,
) -> (Vec<Vec<f64>>, u64) {
    let counts = count_levels_in_groups(pool, records, groups, samples, seed);
    (counts.shares(), counts.sampled_pairs)
}

/// Level counts of random pairs within groups.
struct GroupLevelCounts {
    /// Per field and level.
    per_field: Vec<Vec<u64>>,
    /// Per name level and sex level, both compared.
    name_sex: Vec<Vec<u64>>,
    /// Pairs sampled (0 when no group has two records).
    sampled_pairs: u64,
}

impl GroupLevelCounts {
    fn empty() -> GroupLevelCounts {
        GroupLevelCounts {
            per_field: FIELDS.iter().map(|f| vec![0; level_count(*f)]).collect(),
            name_sex: vec![vec![0; level_count(Field::Sex)]; level_count(Field::Name)],
            sampled_pairs: 0,
        }
    }

    fn add(&mut self, pattern: Pattern) {
        for (f, c) in self.per_field.iter_mut().enumerate() {
            let level = level_of(pattern, f);
            if level != MISSING {
                c[usize::from(level)] += 1;
            }
        }
        let name = usize::from(level_of(pattern, Field::Name as usize));
        let sex = usize::from(level_of(pattern, Field::Sex as usize));
        if let Some(cell) = self.name_sex.get_mut(name).and_then(|row| row.get_mut(sex)) {
            *cell += 1;
        }
    }

    fn merge(mut self, other: GroupLevelCounts) -> GroupLevelCounts {
        let add = |a: &mut Vec<Vec<u64>>, b: Vec<Vec<u64>>| {
            for (x, y) in a.iter_mut().zip(b) {
                for (x, y) in x.iter_mut().zip(y) {
                    *x += y;
                }
            }
        };
        add(&mut self.per_field, other.per_field);
        add(&mut self.name_sex, other.name_sex);
        self.sampled_pairs += other.sampled_pairs;
        self
    }

    /// The level shares per field; uniform when nothing was sampled.
    fn shares(&self) -> Vec<Vec<f64>> {
        if self.sampled_pairs == 0 {
            return FIELDS
                .iter()
                .map(|f| vec![1.0 / level_count(*f) as f64; level_count(*f)])
                .collect();
        }
        // Half a pair of pseudo-count per level: a level never seen among random pairs (a
        // shared card, say) is rare, not impossible.
        self.per_field
            .iter()
            .map(|c| {
                let sum: u64 = c.iter().sum();
                c.iter()
                    .map(|&x| (x as f64 + 0.5) / (sum as f64 + 0.5 * c.len() as f64))
                    .collect()
            })
            .collect()
    }
}

/// Compares `samples` random pairs of records of one group, groups drawn in proportion to
/// their records.
fn count_levels_in_groups(
    pool: &StringPool,
    records: &[LinkRecord],
    groups: &[Vec<u32>],
    samples: usize,
    seed: u64,
) -> GroupLevelCounts {
    let groups: Vec<&Vec<u32>> = groups.iter().filter(|g| g.len() >= 2).collect();
    // Group of each sampled first record: cumulative sizes.
    let mut cumulative = Vec::with_capacity(groups.len());
    let mut total_records = 0u64;
    for g in &groups {
        total_records += g.len() as u64;
        cumulative.push(total_records);
    }
    if total_records < 2 {
        return GroupLevelCounts::empty();
    }
    let chunks = 64usize;
    let per_chunk = samples.div_ceil(chunks);
    (0..chunks)
        .into_par_iter()
        .map(|chunk| {
            let mut state = seed ^ (chunk as u64).wrapping_mul(0xA24B_AED4_963E_E407);
            let mut counts = GroupLevelCounts::empty();
            for _ in 0..per_chunk {
                let at = splitmix(&mut state) % total_records;
                let g = cumulative.partition_point(|&c| c <= at);
                let group = groups[g];
                let n = group.len() as u64;
                let i = at - (cumulative[g] - n);
                let mut j = splitmix(&mut state) % (n - 1);
                if j >= i {
                    j += 1;
                }
                let a = &records[group[i as usize] as usize];
                let b = &records[group[j as usize] as usize];
                counts.add(compare_records(pool, a, b));
            }
            counts.sampled_pairs = per_chunk as u64;
            counts
        })
        .reduce(GroupLevelCounts::empty, GroupLevelCounts::merge)
}

/// Counts the distinct comparison vectors of the candidate pairs.
pub fn count_patterns(patterns: &[Pattern]) -> Vec<(Pattern, u64)> {
    let map = patterns
        .par_chunks(1 << 16)
        .map(|chunk| {
            let mut m: FxHashMap<Pattern, u64> = FxHashMap::default();
            for &p in chunk {
                *m.entry(p).or_default() += 1;
            }
            m
        })
        .reduce(FxHashMap::default, |mut a, b| {
            for (k, v) in b {
                *a.entry(k).or_default() += v;
            }
            a
        });
    let mut counts: Vec<(Pattern, u64)> = map.into_iter().collect();
    counts.sort_unstable();
    counts
}

/// Starting m-probabilities: agreement likely for a match, disagreement rare.
fn prior_m(field: Field) -> Vec<f64> {
    let raw: &[f64] = match field {
        Field::Name => &[0.8, 0.05, 0.02, 0.03, 0.02, 0.01, 0.01, 0.03, 0.01, 0.02],
        Field::BirthDate => &[0.92, 0.01, 0.01, 0.02, 0.02, 0.01, 0.01],
        Field::Sex => &[0.97, 0.03],
        Field::Household => &[
            0.2, 0.01, 0.1, 0.05, 0.2, 0.05, 0.05, 0.1, 0.1, 0.14, 0.01, 0.01,
        ],
    };
    let sum: f64 = raw.iter().sum();
    raw.iter().map(|x| x / sum).collect()
}

/// EM settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmSettings {
    /// Iteration cap.
    pub max_iterations: usize,
    /// Stop when no parameter moves more than this.
    pub tolerance: f64,
}

/// What one EM run found.
#[derive(Debug, Clone, PartialEq)]
pub struct EmFit {
    /// Share of matches among the pairs.
    pub match_share: f64,
    /// m per field and level (the starting values for fields not used).
    pub m: Vec<Vec<f64>>,
    /// Iterations run.
    pub iterations: usize,
    /// Whether the parameters converged before the cap.
    pub converged: bool,
}

/// The posterior match probability of each pattern under a fit (fields not used left out).
pub fn posteriors(
    counts: &[(Pattern, u64)],
    fit: &EmFit,
    u: &[Vec<f64>],
    used: [bool; FIELD_COUNT],
) -> Vec<f64> {
    counts
        .iter()
        .map(|&(pattern, _)| {
            let mut log_ratio = (fit.match_share / (1.0 - fit.match_share)).log2();
            for f in (0..FIELD_COUNT).filter(|f| used[*f]) {
                let l = usize::from(level_of(pattern, f));
                if let (Some(mf), Some(uf)) = (fit.m[f].get(l), u[f].get(l)) {
                    log_ratio += (mf / uf).log2();
                }
            }
            probability_of_weight(log_ratio)
        })
        .collect()
}

/// The household level "same card, other branch number".
pub const OTHER_BRANCH: usize = 1;

/// Household levels that mean "the same insurance card" (with or without branch numbers).
pub const SHARED_CARD_LEVELS: std::ops::Range<usize> = 0..4;

/// Makes the shared-card levels of the household comparison household-aware.
///
/// Random pairs almost never share a card, so against random pairs any shared card looks like
/// strong evidence, another branch number included. But the non-matches that share a card are
/// the household's other members, and among them another branch number is the rule. So the
/// probability of each shared-card level is split into P(shared card) (from the main estimates)
/// times P(level | shared card), the latter learned separately for matches and non-matches from
/// the posterior-weighted pairs of the same-card training session (`card_counts` with their
/// `card_posteriors`).
///
/// The level "same card, other branch" is scored within the household only: its m and u are
/// P(other branch | shared card) for matches and non-matches. Sharing the card is household
/// evidence that cannot tell the household's members apart (it is not evidence for the pair
/// being one person), so it is not counted on top of the branch evidence; the branch comparison
/// is what tells members apart. (Its m and u therefore do not sum to one with the other levels.)
pub fn condition_on_shared_card(
    household: &mut FieldParameters,
    card_counts: &[(Pattern, u64)],
    card_posteriors: &[f64],
) {
    let field = Field::Household as usize;
    let n = SHARED_CARD_LEVELS.len();
    let (mut matches, mut non_matches) = (vec![0.0; n], vec![0.0; n]);
    for (&(pattern, count), &p) in card_counts.iter().zip(card_posteriors) {
        let level = usize::from(level_of(pattern, field));
        if SHARED_CARD_LEVELS.contains(&level) {
            matches[level] += p * count as f64;
            non_matches[level] += (1.0 - p) * count as f64;
        }
    }
    let share = |acc: &[f64]| -> Vec<f64> {
        let sum: f64 = acc.iter().sum::<f64>() + 0.5 * acc.len() as f64;
        acc.iter().map(|x| (x + 0.5) / sum).collect()
    };
    let (within_m, within_u) = (share(&matches), share(&non_matches));
    let m_card: f64 = household.m[SHARED_CARD_LEVELS].iter().sum();
    let u_card: f64 = household.u[SHARED_CARD_LEVELS].iter().sum();
    for level in SHARED_CARD_LEVELS {
        household.m[level] = m_card * within_m[level];
        household.u[level] = u_card * within_u[level];
    }
    household.m[OTHER_BRANCH] = within_m[OTHER_BRANCH];
    household.u[OTHER_BRANCH] = within_u[OTHER_BRANCH];
}

/// Starting m-probabilities of every field.
pub fn starting_m() -> Vec<Vec<f64>> {
    FIELDS.iter().map(|f| prior_m(*f)).collect()
}

/// Fits the match share and the m-probabilities of the `used` fields by EM over pattern counts,
/// u fixed (from random pairs). Fields not used are left out of the likelihood.
pub fn fit_em(
    counts: &[(Pattern, u64)],
    u: &[Vec<f64>],
    used: [bool; FIELD_COUNT],
    settings: EmSettings,
) -> EmFit {
    fit_em_anchored(counts, u, None, used, used, starting_m(), settings)
}

/// [`fit_em`] with starting m-probabilities `m_start`, of which the `used` fields enter the
/// likelihood and only the `estimated` ones are re-estimated (the others stay fixed: they anchor
/// the match class, e.g. to what another session learned). With `sex_given_name`, the
/// non-matches' sex is taken conditionally on their name level rather than from `u`.
pub fn fit_em_anchored(
    counts: &[(Pattern, u64)],
    u: &[Vec<f64>],
    sex_given_name: Option<&SexGivenName>,
    used: [bool; FIELD_COUNT],
    estimated: [bool; FIELD_COUNT],
    m_start: Vec<Vec<f64>>,
    settings: EmSettings,
) -> EmFit {
    let mut m = m_start;
    let mut share: f64 = 0.1;
    let mut iterations = 0;
    let mut converged = false;
    let total: f64 = counts.iter().map(|(_, c)| *c as f64).sum();
    while iterations < settings.max_iterations && total > 0.0 {
        iterations += 1;
        let mut m_acc: Vec<Vec<f64>> = m.iter().map(|v| vec![0.0; v.len()]).collect();
        let mut matches = 0.0;
        for &(pattern, count) in counts {
            let mut log_ratio = (share / (1.0 - share)).log2();
            for f in (0..FIELD_COUNT).filter(|f| used[*f]) {
                let l = usize::from(level_of(pattern, f));
                let uf = match sex_given_name {
                    Some(conditional) if f == Field::Sex as usize && used[Field::Name as usize] => {
                        conditional
                            .share(level_of(pattern, Field::Name as usize), l as u8)
                            .or_else(|| u[f].get(l).copied())
                    }
                    _ => u[f].get(l).copied(),
                };
                if let (Some(mf), Some(uf)) = (m[f].get(l), uf) {
                    log_ratio += (mf / uf).log2();
                }
            }
            let posterior = probability_of_weight(log_ratio);
            let c = count as f64;
            matches += posterior * c;
            for f in (0..FIELD_COUNT).filter(|f| used[*f]) {
                let l = usize::from(level_of(pattern, f));
                if l < m_acc[f].len() {
                    m_acc[f][l] += posterior * c;
                }
            }
        }
        let new_m: Vec<Vec<f64>> = m_acc
            .iter()
            .zip(&m)
            .zip(estimated)
            .map(|((acc, old), estimated)| {
                if !estimated {
                    return old.clone();
                }
                // A small pseudo-count keeps every level possible (no infinite weights).
                let sum: f64 = acc.iter().sum::<f64>() + 0.01 * acc.len() as f64;
                acc.iter().map(|x| (x + 0.01) / sum).collect()
            })
            .collect();
        let new_share = (matches / total).clamp(1e-12, 1.0 - 1e-9);
        let mut change = ((new_share - share) / share.max(1e-6)).abs();
        for (old, new) in m.iter().zip(&new_m) {
            for (a, b) in old.iter().zip(new) {
                change = change.max((a - b).abs());
            }
        }
        m = new_m;
        share = new_share;
        if change < settings.tolerance {
            converged = true;
            break;
        }
    }
    EmFit {
        match_share: share,
        m,
        iterations,
        converged,
    }
}

/// Term frequencies of name keys: how much rarer (or commoner) a name is than the average name
/// two random records share.
#[derive(Debug, Clone)]
pub struct TermFrequencies {
    counts: FxHashMap<u32, u32>,
    records: f64,
    /// Σ f², the chance that two random records share a name.
    mean_agreement: f64,
}

/// Bound on a term-frequency adjustment, in bits (a name seen once cannot outweigh the rest).
const TF_LIMIT: f64 = 8.0;

impl TermFrequencies {
    /// Counts the given name keys (0 = empty, not counted).
    pub fn new(keys: impl Iterator<Item = u32>) -> TermFrequencies {
        let mut counts: FxHashMap<u32, u32> = FxHashMap::default();
        let mut records = 0u64;
        for key in keys.filter(|k| *k != 0) {
            *counts.entry(key).or_default() += 1;
            records += 1;
        }
        let n = records.max(1) as f64;
        let mean_agreement = counts
            .values()
            .map(|&c| (f64::from(c) / n).powi(2))
            .sum::<f64>();
        TermFrequencies {
            counts,
            records: n,
            mean_agreement,
        }
    }

    /// The adjustment in bits for an exact match on these keys: log2(Σf² / f(name)), using the
    /// commoner of the two keys (they differ only under the unknown wildcard).
    pub fn adjustment(&self, a: u32, b: u32) -> f64 {
        let count = |k: u32| self.counts.get(&k).copied().unwrap_or(1).max(1);
        let f = f64::from(count(a).max(count(b))) / self.records;
        if self.mean_agreement <= 0.0 {
            return 0.0;
        }
        (self.mean_agreement / f).log2().clamp(-TF_LIMIT, TF_LIMIT)
    }
}

/// Birth years per cohort of [`CohortNameFrequencies`]: given names go in and out of fashion
/// over a few years.
const COHORT_YEARS: i32 = 5;

/// Records of a sex and cohort below which its given-name frequencies are not trusted and the
/// population-wide frequency of the whole name is used instead.
const MIN_COHORT_RECORDS: u32 = 200;

/// Frequencies of kanji names within a birth cohort and sex.
///
/// Given names follow fashion (and are mostly one sex's): two people born the same year share a
/// given name far more often than two random people. When a pair agrees on the name *and* on the
/// birth date, the chance that two different people agree on both is P(same date) × P(same name |
/// born then, same sex), not P(same date) × P(same name): a name common in its cohort is weaker
/// evidence than its population-wide frequency says. The name's frequency in the cohort is
/// estimated as the family name's population-wide frequency times the given name's frequency among
/// the records of that sex and cohort (family names do not follow fashion).
#[derive(Debug, Clone)]
pub struct CohortNameFrequencies {
    family: FxHashMap<u32, u32>,
    named_records: f64,
    given: FxHashMap<(u32, i32, u8), u32>,
    cohort_records: FxHashMap<(i32, u8), u32>,
    /// Σ f² of whole kanji names: the chance that two random records share a name.
    mean_agreement: f64,
    /// Σ f² of given names: the chance that two random records share a given name.
    given_mean_agreement: f64,
}

fn cohort_of(record: &LinkRecord) -> Option<(i32, u8)> {
    use chrono::Datelike;
    let sex = match record.sex {
        Sex::Male => 1,
        Sex::Female => 2,
        _ => return None,
    };
    Some((record.birth_date?.year().div_euclid(COHORT_YEARS), sex))
}

impl CohortNameFrequencies {
    /// Counts the kanji names of the given records.
    pub fn new<'a>(records: impl Iterator<Item = &'a LinkRecord>) -> CohortNameFrequencies {
        let mut family: FxHashMap<u32, u32> = FxHashMap::default();
        let mut whole: FxHashMap<u32, u32> = FxHashMap::default();
        let mut given: FxHashMap<(u32, i32, u8), u32> = FxHashMap::default();
        let mut given_anywhere: FxHashMap<u32, u32> = FxHashMap::default();
        let mut cohort_records: FxHashMap<(i32, u8), u32> = FxHashMap::default();
        let mut named = 0u64;
        for record in records {
            let name = &record.kanji;
            if name.key == 0 {
                continue;
            }
            *whole.entry(name.key).or_default() += 1;
            if name.given == 0 || name.family == 0 {
                continue;
            }
            named += 1;
            *family.entry(name.family).or_default() += 1;
            *given_anywhere.entry(name.given).or_default() += 1;
            if let Some((cohort, sex)) = cohort_of(record) {
                *given.entry((name.given, cohort, sex)).or_default() += 1;
                *cohort_records.entry((cohort, sex)).or_default() += 1;
            }
        }
        let total = whole.values().map(|&c| f64::from(c)).sum::<f64>().max(1.0);
        let mean_agreement = whole
            .values()
            .map(|&c| (f64::from(c) / total).powi(2))
            .sum();
        let named_total = named.max(1) as f64;
        let given_mean_agreement = given_anywhere
            .values()
            .map(|&c| (f64::from(c) / named_total).powi(2))
            .sum();
        CohortNameFrequencies {
            family,
            given_mean_agreement,
            named_records: named.max(1) as f64,
            given,
            cohort_records,
            mean_agreement,
        }
    }

    /// The adjustment in bits for two records that agree on the kanji name and were born in the
    /// same cohort: log2(Σf² / f(name | cohort, sex)); `None` when the records are of different
    /// cohorts or sexes, the name split is unknown or the cohort is too small to say.
    pub fn adjustment(&self, a: &LinkRecord, b: &LinkRecord) -> Option<f64> {
        let cohort = cohort_of(a)?;
        if cohort_of(b)? != cohort || a.kanji.given == 0 || a.kanji.family == 0 {
            return None;
        }
        let in_cohort = *self.cohort_records.get(&cohort)?;
        if in_cohort < MIN_COHORT_RECORDS || self.mean_agreement <= 0.0 {
            return None;
        }
        let count = |map_count: Option<&u32>| f64::from(map_count.copied().unwrap_or(1).max(1));
        let given = count(self.given.get(&(a.kanji.given, cohort.0, cohort.1)))
            .max(count(self.given.get(&(b.kanji.given, cohort.0, cohort.1))));
        let family =
            count(self.family.get(&a.kanji.family)).max(count(self.family.get(&b.kanji.family)));
        let f = (family / self.named_records) * (given / f64::from(in_cohort));
        Some((self.mean_agreement / f).log2().clamp(-TF_LIMIT, TF_LIMIT))
    }
}

impl CohortNameFrequencies {
    /// The adjustment in bits for two records of the same cohort and sex that share the kanji
    /// given name but not the family name (a marriage changes the family name only):
    /// log2(Σf² / f(given name | cohort, sex)), Σf² the chance that two random records share a
    /// given name. `None` when the given names differ or are unknown, the records are of
    /// different cohorts or sexes, or the cohort is too small to say.
    pub fn given_name_adjustment(&self, a: &LinkRecord, b: &LinkRecord) -> Option<f64> {
        let cohort = cohort_of(a)?;
        if cohort_of(b)? != cohort || a.kanji.given == 0 || a.kanji.given != b.kanji.given {
            return None;
        }
        let in_cohort = *self.cohort_records.get(&cohort)?;
        if in_cohort < MIN_COHORT_RECORDS || self.given_mean_agreement <= 0.0 {
            return None;
        }
        let given = f64::from(
            self.given
                .get(&(a.kanji.given, cohort.0, cohort.1))
                .copied()
                .unwrap_or(1)
                .max(1),
        );
        let f = given / f64::from(in_cohort);
        Some(
            (self.given_mean_agreement / f)
                .log2()
                .clamp(-TF_LIMIT, TF_LIMIT),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_pack_and_unpack() {
        let p = pack([3, MISSING, 1, 9]);
        assert_eq!(level_of(p, 0), 3);
        assert_eq!(level_of(p, 1), MISSING);
        assert_eq!(level_of(p, 2), 1);
        assert_eq!(level_of(p, 3), 9);
    }

    #[test]
    fn kanji_and_kana_make_one_name_comparison() {
        assert_eq!(joint_name_level(0, 0), 0);
        assert_eq!(joint_name_level(0, MISSING), 1);
        assert_eq!(joint_name_level(1, 0), 4);
        assert_eq!(joint_name_level(3, 3), 6);
        assert_eq!(joint_name_level(5, 0), 8);
        assert_eq!(joint_name_level(5, 5), 9);
        assert_eq!(joint_name_level(MISSING, MISSING), MISSING);
    }

    #[test]
    fn common_names_weigh_less_than_rare_ones() {
        // Key 1 is common (佐藤花子-like), 2..=101 appear once each.
        let keys = std::iter::repeat_n(1u32, 100).chain(2..=101);
        let tf = TermFrequencies::new(keys);
        assert!(tf.adjustment(1, 1) < 0.0);
        assert!(tf.adjustment(50, 50) > 0.0);
    }

    #[test]
    fn em_separates_matches_from_non_matches() {
        // Matches agree on everything, non-matches disagree on names and household.
        let agree = pack([0, 0, 0, 0]);
        let disagree = pack([9, 0, 0, 9]);
        let counts = vec![(agree, 1_000), (disagree, 9_000)];
        let u: Vec<Vec<f64>> = FIELDS
            .iter()
            .map(|f| {
                // Random pairs mostly land on the last ("different") level.
                let n = level_count(*f);
                // The household's "different" level is followed by the same-insurer ones.
                let different = if *f == Field::Household { 9 } else { n - 1 };
                (0..n)
                    .map(|l| match l {
                        0 => 0.01,
                        l if l == different => 0.98,
                        _ => 0.01 / (n - 2).max(1) as f64,
                    })
                    .collect()
            })
            .collect();
        let mut used = [true; FIELD_COUNT];
        used[1] = false; // the blocked field
        used[2] = false; // sex agrees on both patterns: no information here
        let fit = fit_em(
            &counts,
            &u,
            used,
            EmSettings {
                max_iterations: 200,
                tolerance: 1e-9,
            },
        );
        assert!((fit.match_share - 0.1).abs() < 0.01, "{}", fit.match_share);
        assert!(fit.m[0][0] > 0.99, "{:?}", fit.m[0]);
        assert!(fit.m[3][0] > 0.99, "{:?}", fit.m[3]);
        assert_eq!(fit.m[1], starting_m()[1]);
    }

    fn person(given: u32, year: i32, sex: Sex) -> LinkRecord {
        LinkRecord {
            hospital: 1,
            kanji: NameIds {
                key: 1000 + given,
                family: 7,
                given,
            },
            kana: NameIds::default(),
            birth_date: chrono::NaiveDate::from_ymd_opt(year, 4, 1),
            sex,
            postal_code: None,
            address: Default::default(),
            card: Default::default(),
        }
    }

    /// Few matches among many namesakes of one sex: under independence their surplus of
    /// same-sex pairs is taken for matches; with sex conditioned on the name level it is not.
    #[test]
    fn sex_conditioned_on_the_name_keeps_namesakes_out_of_the_match_class() {
        let (name, sex, household) = (
            Field::Name as usize,
            Field::Sex as usize,
            Field::Household as usize,
        );
        let at = |n: u8, s: u8, h: u8| pack([n, MISSING, s, h]);
        // 100 matches, mostly of one household; 99,900 non-matches of which 5 % share the
        // given name (and the sex).
        let counts = vec![
            (at(0, 0, 0), 60),
            (at(0, 0, 8), 20),
            (at(0, 0, 9), 15),
            (at(3, 0, 0), 4),
            (at(0, 1, 0), 1),
            (at(5, 0, 8), 999),
            (at(5, 0, 9), 3_996),
            (at(9, 0, 8), 9_490),
            (at(9, 0, 9), 37_962),
            (at(9, 1, 8), 9_491),
            (at(9, 1, 9), 37_962),
        ];
        let mut u: Vec<Vec<f64>> = FIELDS.iter().map(|f| vec![1e-5; level_count(*f)]).collect();
        u[name][5] = 0.05;
        u[name][9] = 0.95 - 8e-5;
        u[sex] = vec![0.5, 0.5];
        u[household][8] = 0.2;
        u[household][9] = 0.8 - 1e-4;
        let mut name_sex = vec![vec![500u64, 500]; level_count(Field::Name)];
        name_sex[5] = vec![1_000, 2];
        let conditional = SexGivenName::from_counts(&name_sex, &u[sex]);
        assert!(conditional.share(5, 0).unwrap() > 0.98);
        assert!((conditional.share(9, 1).unwrap() - 0.5).abs() < 1e-9);
        let used = [true, false, true, true];
        let settings = EmSettings {
            max_iterations: 500,
            tolerance: 1e-10,
        };
        let fit = |c: Option<&SexGivenName>| {
            fit_em_anchored(&counts, &u, c, used, used, starting_m(), settings)
        };
        let (with, without) = (fit(Some(&conditional)), fit(None));
        assert!(
            (with.match_share - 0.001).abs() < 0.0002,
            "{}",
            with.match_share
        );
        assert!(with.m[name][0] > 0.9, "{:?}", with.m[name]);
        // The control: without the conditional, the namesakes' surplus joins the matches.
        assert!(without.match_share > 0.01, "{}", without.match_share);
        assert!(without.m[name][0] < 0.5, "{:?}", without.m[name]);
    }

    #[test]
    fn a_name_in_fashion_in_its_cohort_weighs_less() {
        // Given name 1 is the fashion of the 1990 cohort; 2..=300 are rare there.
        let mut records: Vec<LinkRecord> = (0..300).map(|_| person(1, 1990, Sex::Female)).collect();
        records.extend((2..=300).map(|g| person(g, 1990, Sex::Female)));
        // In 1960 the fashion was another.
        records.extend((0..300).map(|g| person(1000 + g, 1960, Sex::Female)));
        let tf = CohortNameFrequencies::new(records.iter());
        let common = tf.adjustment(&records[0], &records[1]).unwrap();
        let rare = tf.adjustment(&records[300], &records[300]).unwrap();
        assert!(common < rare, "{common} {rare}");
        // Records of different cohorts or sexes fall back to the population-wide frequency.
        assert_eq!(tf.adjustment(&records[0], &records[700]), None);
        assert_eq!(
            tf.adjustment(&records[0], &person(1, 1990, Sex::Male)),
            None
        );
    }

    #[test]
    fn a_regional_family_name_weighs_living_nearby_less() {
        // Two family names, each living in its own prefecture: people sharing a family name
        // share a prefecture far more often than random people do.
        let mut pool = StringPool::new();
        let mut records = Vec::new();
        for (family, prefecture) in [("比嘉", "沖縄県"), ("佐藤", "秋田県")] {
            let family_id = pool.intern(family);
            let prefecture_id = pool.intern(prefecture);
            for k in 0..50 {
                let given = pool.intern(&format!("g{k}"));
                let mut r = person(given, 1960 + k, Sex::Female);
                r.kanji = NameIds {
                    key: pool.intern(&format!("{family}{k}")),
                    family: family_id,
                    given,
                };
                r.address = crate::records::AddressIds {
                    key: pool.intern(&format!("{prefecture}{family}{k}")),
                    prefecture: prefecture_id,
                    municipality: pool.intern(&format!("m{family}{k}")),
                    rest: 0,
                };
                records.push(r);
            }
        }
        let linkable: Vec<u32> = (0..records.len() as u32).collect();
        let (u, _) = estimate_u_random(&pool, &records, &linkable, 20_000, 3);
        let residence = FamilyNameResidence::estimate(&pool, &records, &linkable, &u, 20_000, 3);
        // Same prefecture (8) is weaker evidence, a different one (9) less of a penalty.
        assert!(residence.adjustment[8] < -0.5, "{:?}", residence.adjustment);
        assert!(residence.adjustment[9] > 0.5, "{:?}", residence.adjustment);
        assert_eq!(residence.adjustment[0], 0.0);
        let exact_name = pack([0, 0, 0, 8]);
        assert_eq!(residence.of(exact_name), residence.adjustment[8]);
        assert_eq!(residence.of(pack([9, 0, 0, 8])), 0.0);
    }

    #[test]
    fn a_given_name_in_fashion_weighs_less_under_another_family_name() {
        // Given name 1 is the fashion of the 1990 cohort; 2..=300 are rare there.
        let mut records: Vec<LinkRecord> = (0..300).map(|_| person(1, 1990, Sex::Female)).collect();
        records.extend((2..=300).map(|g| person(g, 1990, Sex::Female)));
        let tf = CohortNameFrequencies::new(records.iter());
        let mut married = records[0];
        married.kanji.family = 8;
        let common = tf.given_name_adjustment(&records[0], &married).unwrap();
        let mut rare_married = records[350];
        rare_married.kanji.family = 8;
        let rare = tf
            .given_name_adjustment(&records[350], &rare_married)
            .unwrap();
        assert!(common < 0.0 && rare > common, "{common} {rare}");
        // Different given names: no adjustment.
        assert_eq!(tf.given_name_adjustment(&records[0], &records[350]), None);
    }

    #[test]
    fn twins_of_one_household_are_not_taken_for_one_person() {
        // Households of four: one family name, two twins sharing a birth date.
        let mut pool = StringPool::new();
        let mut records = Vec::new();
        let mut households = Vec::new();
        for h in 0..60u32 {
            let family = pool.intern(&format!("f{h}"));
            let mut members = Vec::new();
            for (k, year) in [(0u32, 1950), (1, 1952), (2, 1980), (3, 1980)] {
                let given = pool.intern(["太郎", "花子", "美咲", "健"][k as usize]);
                let mut r = person(given, year, Sex::Female);
                r.kanji = NameIds {
                    key: pool.intern(&format!("f{h}{}", pool.get(given))),
                    family,
                    given,
                };
                r.birth_date = chrono::NaiveDate::from_ymd_opt(year, 1 + h % 12, 1 + k.min(2));
                members.push(records.len() as u32);
                records.push(r);
            }
            households.push(members);
        }
        let linkable: Vec<u32> = (0..records.len() as u32).collect();
        let (u, _) = estimate_u_random(&pool, &records, &linkable, 20_000, 5);
        let within = WithinHousehold::estimate(&pool, &records, &households, &u, 20_000, 5);
        assert!(
            within.name_adjustment[6] < -3.0,
            "{:?}",
            within.name_adjustment
        );
        assert!(
            within.exact_date_adjustment < -2.0,
            "{}",
            within.exact_date_adjustment
        );
        // Twins at one address: both corrections; the same pair elsewhere: none.
        let twins = pack([6, 0, 0, 4]);
        assert!(within.of(twins) < within.name_adjustment[6] - 2.0);
        assert_eq!(within.of(pack([6, 0, 0, 9])), 0.0);
        assert_eq!(within.of(pack([0, 0, 0, 4])), 0.0);
    }

    #[test]
    fn cohort_pairs_share_given_names_more_than_random_pairs() {
        let mut pool = StringPool::new();
        let family = pool.intern("山田");
        let mut records = Vec::new();
        for (year, given) in [(1950, "和子"), (2000, "美咲")] {
            let given = pool.intern(given);
            let key = pool.intern(&format!("{}{}", pool.get(family), pool.get(given)));
            for day in 1..=28 {
                let mut r = person(given, year, Sex::Female);
                r.kanji = NameIds { key, family, given };
                r.birth_date = chrono::NaiveDate::from_ymd_opt(year, 1, day);
                records.push(r);
            }
        }
        let linkable: Vec<u32> = (0..records.len() as u32).collect();
        let (random, _) = estimate_u_random(&pool, &records, &linkable, 20_000, 1);
        let cohort = estimate_u_within_cohorts(&pool, &records, &linkable, 20_000, 1).u;
        // Within a cohort everyone shares the (kanji) name; across the population half the pairs do.
        assert!(cohort[0][1] > 0.99, "{:?}", cohort[0]);
        assert!((random[0][1] - 0.5).abs() < 0.05, "{:?}", random[0]);
    }
}
