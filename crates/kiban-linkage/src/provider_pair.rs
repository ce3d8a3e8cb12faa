//! Patient flows between providers: which two providers a pair's records come from, as evidence.
//!
//! A person's records are at providers the person can reach: hospitals of one region, a clinic
//! and the pharmacies around it. Some pairs of providers share many patients, others none. Two
//! namesakes are two independent persons, so the providers of their records are two independent
//! draws. Comparing the provider pair is one more comparison of the Fellegi–Sunter model: u of a
//! provider pair is its share among random pairs of records of different providers (from the
//! providers' record counts, exactly), m its share among matches, learned by EM over the
//! candidate pairs with the rest of the model fixed (each pair's weight is its prior).
//!
//! ```
//! use kiban_linkage::provider_pair::ProviderPairEvidence;
//!
//! // Providers 1 and 2 share patients; 1 and 3 do not, though they are as large.
//! let providers = [1, 2, 3, 1, 2, 3];
//! let pairs: Vec<(u32, u32)> = vec![(0, 1), (3, 4), (0, 4), (1, 3), (0, 2), (3, 5)];
//! let evidence = [30.0, 30.0, 30.0, 30.0, -30.0, -30.0];
//! let learned = ProviderPairEvidence::learn(
//!     &providers,
//!     0..6,
//!     pairs.iter().copied().zip(evidence.iter().copied()),
//! );
//! assert!(learned.weight(1, 2) > 0.0);
//! assert!(learned.weight(1, 3) < 0.0);
//! ```

use rayon::prelude::*;
use rustc_hash::FxHashMap;

/// EM iterations of [`ProviderPairEvidence::learn`].
const EM_ITERATIONS: usize = 100;

/// Pairs whose weight is beyond this (in bits, either way) are sure matches or sure non-matches
/// whatever their providers: they are counted once, not iterated over.
const SETTLED_WEIGHT: f64 = 30.0;

/// Limit in bits of a provider pair's weight: a provider pair no match was seen at is very
/// rare for a match, not impossible.
const WEIGHT_LIMIT: f64 = 10.0;

/// The learned weight of each provider pair.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProviderPairEvidence {
    /// Share of each provider among the records.
    share: FxHashMap<u32, f64>,
    /// Σ share²: the chance that two random records are of one provider.
    same_provider: f64,
    /// Expected matches per provider pair (smaller provider first).
    matches: FxHashMap<(u32, u32), f64>,
    /// Expected matches in all.
    pub expected_matches: f64,
    /// Provider pairs a match could be at (pairs of distinct providers).
    pub provider_pairs: u64,
}

fn ordered(a: u32, b: u32) -> (u32, u32) {
    (a.min(b), a.max(b))
}

impl ProviderPairEvidence {
    /// Learns the weights: `provider` gives each record's provider, `linkable` the records that
    /// take part, `pairs` the candidate pairs (records of different providers) with each pair's
    /// weight in bits from the rest of the model, prior included.
    pub fn learn(
        provider: &[u32],
        linkable: impl Iterator<Item = u32>,
        pairs: impl Iterator<Item = ((u32, u32), f64)>,
    ) -> ProviderPairEvidence {
        ProviderPairEvidence::learn_counted(
            linkable.map(|r| provider[r as usize]),
            pairs.map(|((a, b), w)| ((provider[a as usize], provider[b as usize]), w, 1.0)),
        )
    }

    /// Learns the weights like [`ProviderPairEvidence::learn`] from counted groups of pairs:
    /// `record_providers` gives the provider of each record that takes part, `groups` each group
    /// of candidate pairs as its two providers, the weight in bits its pairs share (the rest of
    /// the model, prior included) and how many pairs it holds. A linkage run sums its candidate
    /// pairs into such groups (fine bins of weight per provider pair) as it streams them.
    pub fn learn_counted(
        record_providers: impl Iterator<Item = u32>,
        groups: impl Iterator<Item = ((u32, u32), f64, f64)>,
    ) -> ProviderPairEvidence {
        let mut counts: FxHashMap<u32, f64> = FxHashMap::default();
        let mut total = 0.0;
        for p in record_providers {
            *counts.entry(p).or_default() += 1.0;
            total += 1.0;
        }
        let total = f64::max(total, 1.0);
        let share: FxHashMap<u32, f64> = counts.into_iter().map(|(p, c)| (p, c / total)).collect();
        let same_provider = share.values().map(|s| s * s).sum();
        let n = share.len() as u64;
        let mut model = ProviderPairEvidence {
            share,
            same_provider,
            matches: FxHashMap::default(),
            expected_matches: 0.0,
            provider_pairs: (n * n.saturating_sub(1) / 2).max(1),
        };
        // Dense numbers of the provider pairs seen; settled pairs are counted once.
        let mut level_of: FxHashMap<(u32, u32), u32> = FxHashMap::default();
        let mut levels: Vec<(u32, u32)> = Vec::new();
        let mut settled: Vec<f64> = Vec::new();
        let mut open: Vec<(u32, f32, f32)> = Vec::new();
        for ((a, b), w, count) in groups {
            let key = ordered(a, b);
            if key.0 == key.1 {
                continue;
            }
            let level = *level_of.entry(key).or_insert_with(|| {
                levels.push(key);
                settled.push(0.0);
                levels.len() as u32 - 1
            });
            if w >= SETTLED_WEIGHT {
                settled[level as usize] += count;
            } else if w > -SETTLED_WEIGHT {
                open.push((level, w as f32, count as f32));
            }
        }
        drop(level_of);
        let mut weights: Vec<f64> = vec![0.0; levels.len()];
        for _ in 0..EM_ITERATIONS {
            let found = open
                .par_iter()
                .fold(
                    || vec![0.0; levels.len()],
                    |mut acc, &(l, w, count)| {
                        acc[l as usize] += f64::from(count)
                            * crate::model::probability_of_weight(
                                f64::from(w) + weights[l as usize],
                            );
                        acc
                    },
                )
                .reduce(
                    || vec![0.0; levels.len()],
                    |mut x, y| {
                        x.iter_mut().zip(&y).for_each(|(a, b)| *a += b);
                        x
                    },
                );
            model.matches = levels
                .iter()
                .zip(found.iter().zip(&settled))
                .map(|(&key, (f, s))| (key, f + s))
                .collect();
            model.expected_matches = model.matches.values().sum();
            let next: Vec<f64> = levels.iter().map(|&(a, b)| model.weight(a, b)).collect();
            let moved = next
                .iter()
                .zip(&weights)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max);
            weights = next;
            if moved < 1e-4 {
                break;
            }
        }
        model
    }

    /// Each provider's share of the records, sorted by provider (to keep the evidence between
    /// runs, with [`ProviderPairEvidence::matches_by_provider_pair`]).
    pub fn shares(&self) -> Vec<(u32, f64)> {
        let mut shares: Vec<(u32, f64)> = self.share.iter().map(|(&p, &s)| (p, s)).collect();
        shares.sort_unstable_by_key(|s| s.0);
        shares
    }

    /// The expected matches per provider pair (smaller provider first), sorted.
    pub fn matches_by_provider_pair(&self) -> Vec<((u32, u32), f64)> {
        let mut matches: Vec<((u32, u32), f64)> =
            self.matches.iter().map(|(&k, &m)| (k, m)).collect();
        matches.sort_unstable_by_key(|m| m.0);
        matches
    }

    /// The evidence from figures kept by [`ProviderPairEvidence::shares`] and
    /// [`ProviderPairEvidence::matches_by_provider_pair`] (with its
    /// `expected_matches` and `provider_pairs`): the weights are those of the run that learned
    /// them. A provider not among `shares` weighs 0 with any other.
    pub fn from_learned(
        shares: impl IntoIterator<Item = (u32, f64)>,
        matches: impl IntoIterator<Item = ((u32, u32), f64)>,
        expected_matches: f64,
        provider_pairs: u64,
    ) -> ProviderPairEvidence {
        let share: FxHashMap<u32, f64> = shares.into_iter().collect();
        let same_provider = share.values().map(|s| s * s).sum();
        ProviderPairEvidence {
            share,
            same_provider,
            matches: matches
                .into_iter()
                .map(|((a, b), m)| (ordered(a, b), m))
                .collect(),
            expected_matches,
            provider_pairs: provider_pairs.max(1),
        }
    }

    /// The weight in bits of a pair of records at providers `a` and `b` (0 for one provider or
    /// a provider not seen).
    pub fn weight(&self, a: u32, b: u32) -> f64 {
        let (Some(sa), Some(sb)) = (self.share.get(&a), self.share.get(&b)) else {
            return 0.0;
        };
        if a == b || self.same_provider >= 1.0 {
            return 0.0;
        }
        let u = 2.0 * sa * sb / (1.0 - self.same_provider);
        // Half a pseudo-count per provider pair: a pair never seen is rare, not impossible.
        let found = self.matches.get(&ordered(a, b)).copied().unwrap_or(0.0);
        let m = (found + 0.5) / (self.expected_matches + 0.5 * self.provider_pairs as f64);
        (m / u).log2().clamp(-WEIGHT_LIMIT, WEIGHT_LIMIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_that_share_patients_weigh_for_a_match() {
        // Four providers of equal size; every sure match is at 1–2 or 3–4.
        let provider: Vec<u32> = (0..400).map(|r| 1 + r % 4).collect();
        let mut pairs = Vec::new();
        let mut evidence = Vec::new();
        for k in 0..100u32 {
            let base = 4 * k;
            pairs.push((base, base + 1));
            evidence.push(40.0);
            pairs.push((base + 2, base + 3));
            evidence.push(40.0);
            // A doubtful pair at 1–3.
            pairs.push((base, base + 2));
            evidence.push(-5.0);
        }
        let learned = ProviderPairEvidence::learn(
            &provider,
            0..400,
            pairs.iter().copied().zip(evidence.iter().copied()),
        );
        assert!(learned.weight(1, 2) > 1.0, "{learned:?}");
        assert!(learned.weight(2, 1) > 1.0);
        assert!(learned.weight(1, 3) < -1.0);
        assert!(learned.weight(2, 4) < -1.0);
        assert_eq!(learned.weight(1, 1), 0.0);
        assert_eq!(learned.weight(1, 9), 0.0);
        assert!(learned.expected_matches >= 200.0);
    }

    #[test]
    fn counted_groups_learn_like_the_pairs_they_stand_for() {
        let provider: Vec<u32> = (0..400).map(|r| 1 + r % 4).collect();
        let mut pairs = Vec::new();
        for k in 0..100u32 {
            let base = 4 * k;
            pairs.push(((base, base + 1), 40.0));
            pairs.push(((base + 2, base + 3), 12.0));
            pairs.push(((base, base + 2), -5.0));
        }
        let one_by_one = ProviderPairEvidence::learn(&provider, 0..400, pairs.iter().copied());
        let counted = ProviderPairEvidence::learn_counted(
            provider.iter().copied(),
            [
                ((1, 2), 40.0, 100.0),
                ((3, 4), 12.0, 100.0),
                ((1, 3), -5.0, 100.0),
            ]
            .into_iter(),
        );
        for (a, b) in [(1, 2), (3, 4), (1, 3), (2, 4)] {
            assert!(
                (one_by_one.weight(a, b) - counted.weight(a, b)).abs() < 1e-4,
                "{a}-{b}: {} {}",
                one_by_one.weight(a, b),
                counted.weight(a, b)
            );
        }
        assert!((one_by_one.expected_matches - counted.expected_matches).abs() < 1e-3);
    }
}
