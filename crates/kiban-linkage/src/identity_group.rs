//! Namesake density: how many records share a pair's exact identity, as evidence.
//!
//! Two records that agree exactly on the kanji name, the birth date and sex are one person who
//! moved or two namesakes. The model's term-frequency adjustment estimates how common the name
//! is in the cohort; the data say more directly how crowded this exact identity is. The records
//! sharing it form an identity group: when only the pair itself holds it, nobody else is around
//! to be a namesake; when the group is larger, or holds two records of one provider (which can
//! never be one person), it holds several persons and a pair inside it is more likely two of
//! them. Namesakes grow with the square of the population, so the group sizes of namesake pairs
//! grow with it too; the evidence is learned on each data set.
//!
//! [`IdentityGroups`] gives each pair's level ([`IdentityGroups::level`]);
//! [`GroupSizeEvidence::learn`] learns m and u of each level by EM over the candidate pairs of
//! one group, with each pair's weight from the rest of the model as its fixed prior (the level
//! is conditionally independent of the other comparisons given the match status).
//!
//! ```
//! use kiban_linkage::identity_group::GroupSizeEvidence;
//!
//! // Pairs alone in their group (level 0) at moderate weights are mostly matches; pairs in
//! // crowded groups (level 6) mostly not.
//! let mut weights = Vec::new();
//! let mut levels = Vec::new();
//! for w in [-2.0, 0.0, 2.0] {
//!     weights.extend([w; 90]);
//!     levels.extend([0u8; 90]);
//!     weights.extend([w; 10]);
//!     levels.extend([6u8; 10]);
//! }
//! weights.extend([30.0; 300]);
//! levels.extend([0u8; 300]);
//! weights.extend([-20.0; 300]);
//! levels.extend([6u8; 300]);
//! let learned = GroupSizeEvidence::learn(&weights, &levels);
//! assert!(learned.weight(0) > 0.0);
//! assert!(learned.weight(6) < 0.0);
//! ```

use crate::records::LinkRecord;
use chrono::NaiveDate;
use kiban_model::Sex;
use rayon::prelude::*;
use rustc_hash::FxHashMap;

/// Levels of [`IdentityGroups::level`]: group of 2 records; of 3 at distinct providers; of 3
/// with a provider holding two records; of 4 distinct; of 4 with a provider twice; of 5 or more
/// distinct; of 5 or more with a provider twice.
pub const GROUP_LEVELS: usize = 7;

/// EM iterations of [`GroupSizeEvidence::learn`].
const EM_ITERATIONS: usize = 200;

/// Limit in bits of a level's weight: the levels are coarse, and a level seen on few pairs
/// should not decide alone.
const WEIGHT_LIMIT: f64 = 8.0;

/// The identity groups (records sharing kanji name, birth date and sex) of the linkable records.
#[derive(Debug, Clone, Default)]
pub struct IdentityGroups {
    /// Group number of each record (`u32::MAX` outside groups of two or more).
    group_of_record: Vec<u32>,
    /// Level of each group.
    level_of_group: Vec<u8>,
    /// Pairs of records of one group at one provider.
    same_provider: Vec<(u32, u32)>,
}

type IdentityKey = (u32, NaiveDate, u8);

fn identity_key(record: &LinkRecord) -> Option<IdentityKey> {
    let sex = match record.sex {
        Sex::Male => 1,
        Sex::Female => 2,
        _ => return None,
    };
    if record.kanji.key == 0 {
        return None;
    }
    Some((record.kanji.key, record.birth_date?, sex))
}

/// The level of a group of `size` records, `crowded` when a provider holds two of them.
fn group_level(size: usize, crowded: bool) -> u8 {
    match (size, crowded) {
        (0..=2, _) => 0,
        (3, false) => 1,
        (3, true) => 2,
        (4, false) => 3,
        (4, true) => 4,
        (_, false) => 5,
        (_, true) => 6,
    }
}

impl IdentityGroups {
    /// Groups the `linkable` records by identity.
    pub fn new(records: &[LinkRecord], linkable: &[u32]) -> IdentityGroups {
        let mut by_identity: FxHashMap<IdentityKey, Vec<u32>> = FxHashMap::default();
        for &i in linkable {
            if let Some(key) = identity_key(&records[i as usize]) {
                by_identity.entry(key).or_default().push(i);
            }
        }
        let mut group_of_record = vec![u32::MAX; records.len()];
        let mut level_of_group = Vec::new();
        let mut same_provider = Vec::new();
        for members in by_identity.values().filter(|g| g.len() >= 2) {
            let mut providers: Vec<u32> = members
                .iter()
                .map(|&i| records[i as usize].hospital)
                .collect();
            providers.sort_unstable();
            providers.dedup();
            for (k, &i) in members.iter().enumerate() {
                group_of_record[i as usize] = level_of_group.len() as u32;
                for &j in &members[k + 1..] {
                    if records[i as usize].hospital == records[j as usize].hospital {
                        same_provider.push((i.min(j), i.max(j)));
                    }
                }
            }
            level_of_group.push(group_level(members.len(), providers.len() < members.len()));
        }
        same_provider.sort_unstable();
        IdentityGroups {
            group_of_record,
            level_of_group,
            same_provider,
        }
    }

    /// The pairs of records of one identity group at one provider: a person registered twice,
    /// or two namesakes of one provider (blocking leaves same-provider pairs out).
    pub fn same_provider_pairs(&self) -> &[(u32, u32)] {
        &self.same_provider
    }

    /// The level of a pair: its group's level when both records are of one identity group,
    /// `None` otherwise.
    pub fn level(&self, a: u32, b: u32) -> Option<u8> {
        let group = *self.group_of_record.get(a as usize)?;
        if group == u32::MAX || self.group_of_record.get(b as usize) != Some(&group) {
            return None;
        }
        self.level_of_group.get(group as usize).copied()
    }
}

/// The learned weight of the identity group's level.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSizeEvidence {
    /// P(level | match, both records in one group) per level.
    pub m: [f64; GROUP_LEVELS],
    /// P(level | non-match, both records in one group) per level.
    pub u: [f64; GROUP_LEVELS],
    /// Expected matches among the pairs it was learned on.
    pub expected_matches: f64,
    /// Pairs it was learned on.
    pub pairs: u64,
}

impl Default for GroupSizeEvidence {
    fn default() -> Self {
        let uniform = 1.0 / GROUP_LEVELS as f64;
        GroupSizeEvidence {
            m: [uniform; GROUP_LEVELS],
            u: [uniform; GROUP_LEVELS],
            expected_matches: 0.0,
            pairs: 0,
        }
    }
}

impl GroupSizeEvidence {
    /// Learns m and u by EM over pairs of one identity group: `evidence` is each pair's weight in
    /// bits from the rest of the model, prior included (held fixed: it is the pair's prior), and
    /// `levels` its group level. Each pair's posterior under the current m and u counts towards
    /// m of its level, the rest towards u.
    pub fn learn(evidence: &[f64], levels: &[u8]) -> GroupSizeEvidence {
        let mut model = GroupSizeEvidence {
            pairs: evidence.len() as u64,
            ..GroupSizeEvidence::default()
        };
        if evidence.is_empty() {
            return model;
        }
        type Sums = ([f64; GROUP_LEVELS], [f64; GROUP_LEVELS]);
        let add = |mut p: Sums, q: Sums| {
            for l in 0..GROUP_LEVELS {
                p.0[l] += q.0[l];
                p.1[l] += q.1[l];
            }
            p
        };
        for _ in 0..EM_ITERATIONS {
            let (matched, unmatched) = evidence
                .par_iter()
                .zip(levels)
                .map(|(w, &l)| {
                    let l = usize::from(l).min(GROUP_LEVELS - 1);
                    let mut sums: Sums = ([0.0; GROUP_LEVELS], [0.0; GROUP_LEVELS]);
                    let p = crate::model::probability_of_weight(w + model.weight(l as u8));
                    sums.0[l] = p;
                    sums.1[l] = 1.0 - p;
                    sums
                })
                .reduce(|| ([0.0; GROUP_LEVELS], [0.0; GROUP_LEVELS]), add);
            let matches: f64 = matched.iter().sum();
            let non_matches: f64 = unmatched.iter().sum();
            // Half a pseudo-count: a level never seen is rare, not impossible.
            let share = |x: f64, total: f64| (x + 0.5) / (total + 0.5 * GROUP_LEVELS as f64);
            let m = matched.map(|x| share(x, matches));
            let u = unmatched.map(|x| share(x, non_matches));
            let moved = m
                .iter()
                .zip(&model.m)
                .chain(u.iter().zip(&model.u))
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max);
            model.m = m;
            model.u = u;
            model.expected_matches = matches;
            if moved < 1e-8 {
                break;
            }
        }
        model
    }

    /// The weight in bits of a level.
    pub fn weight(&self, level: u8) -> f64 {
        let l = usize::from(level).min(GROUP_LEVELS - 1);
        (self.m[l] / self.u[l])
            .log2()
            .clamp(-WEIGHT_LIMIT, WEIGHT_LIMIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{NameIds, StringPool};

    fn record(pool: &mut StringPool, name: &str, day: u32, provider: &str) -> LinkRecord {
        LinkRecord {
            hospital: pool.intern(provider),
            kanji: NameIds {
                key: pool.intern(name),
                family: 0,
                given: 0,
            },
            kana: NameIds::default(),
            birth_date: NaiveDate::from_ymd_opt(1970, 5, day),
            sex: Sex::Female,
            postal_code: None,
            address: Default::default(),
            card: Default::default(),
        }
    }

    #[test]
    fn groups_are_by_name_birth_date_and_sex_with_their_crowding() {
        let mut pool = StringPool::new();
        let records = vec![
            record(&mut pool, "山田花子", 1, "a"),
            record(&mut pool, "山田花子", 1, "b"),
            record(&mut pool, "山田花子", 2, "c"),
            record(&mut pool, "佐藤花子", 1, "a"),
            record(&mut pool, "佐藤花子", 1, "b"),
            record(&mut pool, "佐藤花子", 1, "b"),
            record(&mut pool, "鈴木花子", 1, "a"),
        ];
        let linkable: Vec<u32> = (0..records.len() as u32).collect();
        let groups = IdentityGroups::new(&records, &linkable);
        assert_eq!(groups.level(0, 1), Some(0));
        assert_eq!(groups.level(0, 2), None);
        assert_eq!(groups.level(3, 4), Some(2));
        assert_eq!(groups.level(0, 3), None);
        assert_eq!(groups.level(6, 6), None);
        assert_eq!(groups.same_provider_pairs(), &[(4, 5)]);
    }

    #[test]
    fn crowded_groups_weigh_against_a_match() {
        // At each moderate weight, pairs alone in their group are matches 9 times in 10 while
        // pairs of crowded groups are not; the sure pairs anchor both classes.
        let mut evidence = Vec::new();
        let mut levels = Vec::new();
        for w in [-1.0, 0.0, 1.0] {
            evidence.extend([w; 200]);
            levels.extend([0u8; 200]);
            evidence.extend([w; 200]);
            levels.extend([5u8; 200]);
        }
        evidence.extend([30.0; 1_000]);
        levels.extend([0u8; 900]);
        levels.extend([5u8; 100]);
        evidence.extend([-30.0; 1_000]);
        levels.extend([0u8; 100]);
        levels.extend([5u8; 900]);
        let learned = GroupSizeEvidence::learn(&evidence, &levels);
        assert!(learned.weight(0) > 1.0, "{learned:?}");
        assert!(learned.weight(5) < -1.0, "{learned:?}");
        assert!(learned.expected_matches > 1_000.0);
    }
}
