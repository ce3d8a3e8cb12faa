//! Household co-movement: the evidence that tells a person who moved from a namesake.
//!
//! Two records that agree on the name and the birth date but on nothing of the household (card,
//! address) are either one person who moved (new address, often a new insurer) or two namesakes
//! (a common name, the same birthday). Their own fields cannot tell these apart. Their
//! households can: a family moves together, so when another member of the first record's
//! household (a record sharing its card or its address, of another person) agrees exactly on
//! name, birth date and sex with a member of the second record's household, the whole household
//! moved. Two namesakes' spouses or children are almost never namesakes too. Conversely, when
//! both records have other household members and none of them is in both households, the
//! household did not move together: weaker, but evidence against.
//!
//! [`Households::co_move`] gives the level ([`CoMove`]); [`CoMoveEvidence`] learns each level's
//! m by EM over the candidate pairs sharing no household (the rest of the model fixed) and u
//! from random pairs of records, and weighs it like any other comparison of the Fellegi–Sunter
//! model.
//!
//! ```
//! use kiban_linkage::household::{CoMove, CoMoveEvidence};
//!
//! let learned = CoMoveEvidence {
//!     m: [0.2, 0.1, 0.7],
//!     u: [1e-6, 0.4, 0.6],
//!     expected_matches: 1_000.0,
//!     random_pairs: 1_000_000,
//! };
//! assert!(learned.weight(CoMove::Together) > 17.0);
//! assert!(learned.weight(CoMove::Apart) < -1.0);
//! ```

use crate::model::{MISSING, Pattern, compare_records, level_of, name_level, sex_level};
use crate::records::{LinkRecord, StringPool};
use rayon::prelude::*;
use rustc_hash::FxHashMap;

/// Household groups (a card, an address) larger than this are not households (a care home, an
/// address without its building number) and are left out.
const MAX_HOUSEHOLD_RECORDS: usize = 24;

/// The household levels of [`crate::model::Field::Household`] under which two records share no
/// household (neither a card nor an address): the pairs where co-movement is evidence.
pub fn shares_no_household(pattern: Pattern) -> bool {
    let household = level_of(pattern, crate::model::Field::Household as usize);
    (5..=11).contains(&household) || household == MISSING
}

/// The records of each card (insurer, symbol, number) and each address.
#[derive(Debug, Clone, Default)]
pub struct Households {
    by_card: FxHashMap<(u32, u32, u32), Vec<u32>>,
    by_address: FxHashMap<u32, Vec<u32>>,
}

impl Households {
    /// Indexes the `linkable` records by card and by address.
    pub fn new(records: &[LinkRecord], linkable: &[u32]) -> Households {
        let mut households = Households::default();
        for &i in linkable {
            let r = &records[i as usize];
            if r.card.is_present() {
                households
                    .by_card
                    .entry((r.card.insurer, r.card.symbol, r.card.number))
                    .or_default()
                    .push(i);
            }
            if r.address.key != 0 {
                households
                    .by_address
                    .entry(r.address.key)
                    .or_default()
                    .push(i);
            }
        }
        households
            .by_card
            .retain(|_, v| v.len() <= MAX_HOUSEHOLD_RECORDS);
        households
            .by_address
            .retain(|_, v| v.len() <= MAX_HOUSEHOLD_RECORDS);
        households
    }

    /// The households (records of one card, records of one address) with two records or more.
    pub fn groups(&self) -> Vec<Vec<u32>> {
        let mut groups: Vec<Vec<u32>> = self
            .by_card
            .values()
            .chain(self.by_address.values())
            .filter(|g| g.len() >= 2)
            .cloned()
            .collect();
        // A fixed order: sampling from them is reproducible.
        groups.sort_unstable();
        groups
    }

    /// The other members of record `r`'s household: records sharing its card or its address that
    /// are not the same identity (name and birth date) as `r`.
    pub fn mates(&self, pool: &StringPool, records: &[LinkRecord], r: u32) -> Vec<u32> {
        let record = &records[r as usize];
        let mut mates: Vec<u32> = Vec::new();
        let card = record
            .card
            .is_present()
            .then(|| {
                self.by_card
                    .get(&(record.card.insurer, record.card.symbol, record.card.number))
            })
            .flatten();
        let address = (record.address.key != 0)
            .then(|| self.by_address.get(&record.address.key))
            .flatten();
        for group in [card, address].into_iter().flatten() {
            for &m in group {
                if m != r
                    && !mates.contains(&m)
                    && !same_identity(pool, record, &records[m as usize])
                {
                    mates.push(m);
                }
            }
        }
        mates
    }

    /// Whether a member of `a`'s household and a member of `b`'s household (two other records)
    /// agree on name, birth date and sex (the household moved together), or both households
    /// have other members and none agree, or a side has no other member.
    pub fn co_move(&self, pool: &StringPool, records: &[LinkRecord], a: u32, b: u32) -> CoMove {
        let mates_a = self.mates(pool, records, a);
        let mates_b = if mates_a.is_empty() {
            Vec::new()
        } else {
            self.mates(pool, records, b)
        };
        let mates_a: Vec<u32> = mates_a.into_iter().filter(|&x| x != b).collect();
        let mates_b: Vec<u32> = mates_b.into_iter().filter(|&y| y != a).collect();
        if mates_a.is_empty() || mates_b.is_empty() {
            return CoMove::NoMates;
        }
        let together = mates_a.iter().any(|&x| {
            mates_b
                .iter()
                .any(|&y| y != x && same_identity(pool, &records[x as usize], &records[y as usize]))
        });
        if together {
            CoMove::Together
        } else {
            CoMove::Apart
        }
    }
}

/// How the households of two records sharing no household compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CoMove {
    /// Another member of each household is one person: the household moved together.
    Together,
    /// Both households have other members, and none of them is in both.
    Apart,
    /// A record has no other household member in the data: nothing to compare.
    NoMates,
}

impl CoMove {
    /// The levels in [`CoMoveEvidence`] order.
    pub const ALL: [CoMove; 3] = [CoMove::Together, CoMove::Apart, CoMove::NoMates];

    /// The level's position in [`CoMove::ALL`].
    pub fn index(self) -> usize {
        match self {
            CoMove::Together => 0,
            CoMove::Apart => 1,
            CoMove::NoMates => 2,
        }
    }
}

/// The same person by what identifies a person: the name (kanji, or kana where a kanji name is
/// missing) exactly, the birth date, and sex not different.
fn same_identity(pool: &StringPool, a: &LinkRecord, b: &LinkRecord) -> bool {
    if a.birth_date.is_none() || a.birth_date != b.birth_date || sex_level(a, b) == 1 {
        return false;
    }
    match name_level(pool, &a.kanji, &b.kanji) {
        0 => true,
        MISSING => name_level(pool, &a.kana, &b.kana) == 0,
        _ => false,
    }
}

/// The learned weight of household co-movement.
#[derive(Debug, Clone, PartialEq)]
pub struct CoMoveEvidence {
    /// P(level | match sharing no household) per [`CoMove::ALL`] level, by EM.
    pub m: [f64; 3],
    /// P(level | non-match) per level, from random record pairs sharing no household.
    pub u: [f64; 3],
    /// Expected matches among the candidate pairs sharing no household (EM's last E-step).
    pub expected_matches: f64,
    /// Random pairs (of different providers, sharing no household) that u was measured on.
    pub random_pairs: u64,
}

/// EM iterations of [`CoMoveEvidence::learn`] (two free parameters: it converges in a few).
const EM_ITERATIONS: usize = 100;

impl CoMoveEvidence {
    /// Learns u from `random_pairs` random pairs of the `linkable` records that share no
    /// household, and m by EM over the candidate pairs sharing no household: `evidence` is each
    /// pair's weight with the prior and without co-movement, `levels` its [`CoMove`]. With the
    /// rest of the model fixed, m of a level is the posterior-weighted share of its pairs.
    #[allow(clippy::too_many_arguments)]
    pub fn learn(
        households: &Households,
        pool: &StringPool,
        records: &[LinkRecord],
        linkable: &[u32],
        evidence: &[f64],
        levels: &[CoMove],
        random_pairs: usize,
        seed: u64,
    ) -> CoMoveEvidence {
        let groups: Vec<(f64, CoMove, f64)> = evidence
            .iter()
            .zip(levels)
            .map(|(&w, &l)| (w, l, 1.0))
            .collect();
        let mut model = CoMoveEvidence::from_random_pairs(
            households,
            pool,
            records,
            linkable,
            random_pairs,
            seed,
        );
        model.fit(&groups);
        model
    }

    /// The model before EM: u from `random_pairs` random pairs of the `linkable` records that
    /// share no household, m at its starting point.
    pub fn from_random_pairs(
        households: &Households,
        pool: &StringPool,
        records: &[LinkRecord],
        linkable: &[u32],
        random_pairs: usize,
        seed: u64,
    ) -> CoMoveEvidence {
        let n = linkable.len() as u64;
        let counts = if n < 2 {
            [0u64; 3]
        } else {
            (0..random_pairs as u64)
                .into_par_iter()
                .map(|k| {
                    let mut counts = [0u64; 3];
                    let mut state = seed ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    let a = linkable[(splitmix(&mut state) % n) as usize];
                    let b = linkable[(splitmix(&mut state) % n) as usize];
                    let (x, y) = (&records[a as usize], &records[b as usize]);
                    if a != b
                        && x.hospital != y.hospital
                        && shares_no_household(compare_records(pool, x, y))
                    {
                        counts[households.co_move(pool, records, a, b).index()] += 1;
                    }
                    counts
                })
                .reduce(|| [0; 3], |p, q| [p[0] + q[0], p[1] + q[1], p[2] + q[2]])
        };
        let sampled: u64 = counts.iter().sum();
        // Half a pseudo-count: a level never seen is rare, not impossible.
        let u = counts.map(|c| (c as f64 + 0.5) / (sampled as f64 + 1.5));
        CoMoveEvidence {
            m: [0.1, 0.3, 0.6],
            u,
            expected_matches: 0.0,
            random_pairs: sampled,
        }
    }

    /// EM for m over counted groups of candidate pairs sharing no household: each group is the
    /// weight its pairs share (prior included, co-movement excluded), their [`CoMove`] and how
    /// many pairs it holds. A linkage run sums its candidate pairs into such groups (fine bins
    /// of weight) as it streams them.
    pub fn fit(&mut self, groups: &[(f64, CoMove, f64)]) {
        for _ in 0..EM_ITERATIONS {
            let acc = groups
                .par_iter()
                .map(|&(w, l, count)| {
                    let mut acc = [0.0; 3];
                    acc[l.index()] =
                        count * crate::model::probability_of_weight(w + self.weight(l));
                    acc
                })
                .reduce(|| [0.0; 3], |p, q| [p[0] + q[0], p[1] + q[1], p[2] + q[2]]);
            let matches: f64 = acc.iter().sum();
            let m = acc.map(|a| (a + 0.5) / (matches + 1.5));
            let moved = m
                .iter()
                .zip(&self.m)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max);
            self.m = m;
            self.expected_matches = matches;
            if moved < 1e-7 {
                break;
            }
        }
    }

    /// The weight in bits of a level.
    pub fn weight(&self, level: CoMove) -> f64 {
        (self.m[level.index()] / self.u[level.index()]).log2()
    }
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{AddressIds, CardIds, NameIds};
    use kiban_model::Sex;

    fn record(
        pool: &mut StringPool,
        name: &str,
        day: u32,
        address: &str,
        card: &str,
    ) -> LinkRecord {
        let key = pool.intern(name);
        LinkRecord {
            hospital: pool.intern(&format!("h-{address}-{name}")),
            kanji: NameIds {
                key,
                family: 0,
                given: 0,
            },
            kana: NameIds::default(),
            birth_date: chrono::NaiveDate::from_ymd_opt(1970, 5, day),
            sex: Sex::Female,
            postal_code: None,
            address: AddressIds {
                key: pool.intern(address),
                ..AddressIds::default()
            },
            card: CardIds {
                insurer: pool.intern("01130012"),
                symbol: 0,
                number: pool.intern(card),
                branch: None,
            },
        }
    }

    #[test]
    fn a_household_that_moved_together_is_recognized_and_namesakes_are_not() {
        let mut pool = StringPool::new();
        let records = vec![
            // Person A and her husband at the old address, then both at the new one.
            record(&mut pool, "山田花子", 1, "old", "1"),
            record(&mut pool, "山田太郎", 9, "old", "1"),
            record(&mut pool, "山田花子", 1, "new", "2"),
            record(&mut pool, "山田太郎", 9, "new", "2"),
            // A namesake of A, living with someone else.
            record(&mut pool, "山田花子", 1, "elsewhere", "3"),
            record(&mut pool, "山田次郎", 3, "elsewhere", "3"),
        ];
        let linkable: Vec<u32> = (0..records.len() as u32).collect();
        let households = Households::new(&records, &linkable);
        assert_eq!(households.mates(&pool, &records, 0), vec![1]);
        assert_eq!(households.co_move(&pool, &records, 0, 2), CoMove::Together);
        assert_eq!(households.co_move(&pool, &records, 0, 4), CoMove::Apart);
        assert_eq!(households.co_move(&pool, &records, 2, 4), CoMove::Apart);
        let mut single = records.clone();
        single.push(record(&mut pool, "山田花子", 1, "alone", "4"));
        let households = Households::new(&single, &(0..single.len() as u32).collect::<Vec<_>>());
        assert_eq!(households.co_move(&pool, &single, 0, 6), CoMove::NoMates);
    }

    #[test]
    fn co_movement_weighs_by_its_learned_rates() {
        let evidence = CoMoveEvidence {
            m: [0.2, 0.2, 0.6],
            u: [1e-6, 0.4, 0.6],
            expected_matches: 100.0,
            random_pairs: 1_000_000,
        };
        assert!(evidence.weight(CoMove::Together) > 17.0);
        assert!(evidence.weight(CoMove::Apart) < -0.5);
        assert_eq!(evidence.weight(CoMove::NoMates), 0.0);
    }

    #[test]
    fn counted_groups_fit_like_the_pairs_they_stand_for() {
        let u = [0.001, 0.5, 0.499];
        let start = CoMoveEvidence {
            m: [0.1, 0.3, 0.6],
            u,
            expected_matches: 0.0,
            random_pairs: 1_000,
        };
        let mut pairs = Vec::new();
        for _ in 0..300 {
            pairs.push((8.0, CoMove::Together, 1.0));
        }
        for _ in 0..500 {
            pairs.push((-2.0, CoMove::Apart, 1.0));
            pairs.push((3.0, CoMove::NoMates, 1.0));
        }
        let mut one_by_one = start.clone();
        one_by_one.fit(&pairs);
        let mut counted = start;
        counted.fit(&[
            (8.0, CoMove::Together, 300.0),
            (-2.0, CoMove::Apart, 500.0),
            (3.0, CoMove::NoMates, 500.0),
        ]);
        for l in 0..3 {
            assert!(
                (one_by_one.m[l] - counted.m[l]).abs() < 1e-9,
                "{one_by_one:?} {counted:?}"
            );
        }
        assert!((one_by_one.expected_matches - counted.expected_matches).abs() < 1e-6);
        assert!(counted.weight(CoMove::Together) > 5.0);
    }
}
