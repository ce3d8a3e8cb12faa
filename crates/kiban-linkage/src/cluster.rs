//! Clustering of linked pairs into persons: union-find over the pairs, strongest first, under the
//! constraint that a provider holds at most one record per person ([`cluster`]), or, in
//! [`cluster_with_flows`], deciding each merge on the evidence of the two clusters and letting a
//! pair of one provider (a person registered twice) join its own two records.

/// A scored pair of records.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredPair {
    /// First record index.
    pub a: u32,
    /// Second record index.
    pub b: u32,
    /// Match weight (bits, prior included).
    pub weight: f64,
}

/// The persons found.
#[derive(Debug, Clone, PartialEq)]
pub struct Clustering {
    /// Person number of each record (0-based, numbered by first record).
    pub person: Vec<u32>,
    /// Number of persons.
    pub persons: u32,
    /// Pairs that joined two clusters.
    pub merges: u64,
    /// Pairs whose merge was refused: it would have put two records of one provider into one person.
    pub merges_refused_same_provider: u64,
    /// The strongest weight of a pair that joined or confirmed each record's cluster
    /// (`f64::NEG_INFINITY` for records linked to nothing).
    pub best_link_weight: Vec<f64>,
}

/// The end of a cluster's list of records.
const NO_RECORD: u32 = u32::MAX;

/// The records of the cluster whose root is `root`: the list from the root by `next`.
fn members(next: &[u32], root: u32) -> impl Iterator<Item = u32> + '_ {
    std::iter::successors(Some(root), move |&r| {
        Some(next[r as usize]).filter(|&n| n != NO_RECORD)
    })
}

fn find(parent: &mut [u32], mut x: u32) -> u32 {
    while parent[x as usize] != x {
        let up = parent[parent[x as usize] as usize];
        parent[x as usize] = up;
        x = up;
    }
    x
}

/// Joins `pairs` (all above the match threshold) into persons, strongest first, refusing a merge
/// that would give one provider two records of the person. `provider` gives each record's
/// provider.
pub fn cluster(record_count: usize, provider: &[u32], pairs: Vec<ScoredPair>) -> Clustering {
    join_pairs(
        record_count,
        provider,
        pairs,
        f64::NEG_INFINITY,
        |_, _| 0.0,
        SameProvider::Never,
    )
}

/// Joins `pairs` into persons like [`cluster`], deciding each merge on the evidence of the two
/// clusters rather than of one pair: the pair's weight (its identity and household evidence,
/// which the other pairs between the clusters repeat) plus `flow(x, y)`, the provider-pair
/// evidence ([`crate::provider_pair`]), of every other record pair across the two clusters (each
/// pair of providers is a separate observation of where the person went). Two clusters merge
/// when that sum reaches `threshold_weight`, so `pairs` may hold pairs below the threshold that
/// the clusters' other records vouch for, and a pair above it is refused when the clusters'
/// other providers are ones a person is not seen to use together.
pub fn cluster_with_flows(
    record_count: usize,
    provider: &[u32],
    pairs: Vec<ScoredPair>,
    threshold_weight: f64,
    flow: impl Fn(u32, u32) -> f64,
) -> Clustering {
    join_pairs(
        record_count,
        provider,
        pairs,
        threshold_weight,
        flow,
        SameProvider::OwnPairOnly,
    )
}

/// Whether two records of one provider may be in one person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SameProvider {
    /// Never.
    Never,
    /// Only the two records of the pair being merged (a person registered twice).
    OwnPairOnly,
}

/// Union-find over `pairs`, strongest first: a merge happens when the pair's weight plus the
/// `flow` of every other record pair across the two clusters reaches `threshold_weight` and the
/// provider rule allows it.
fn join_pairs(
    record_count: usize,
    provider: &[u32],
    mut pairs: Vec<ScoredPair>,
    threshold_weight: f64,
    flow: impl Fn(u32, u32) -> f64,
    same_provider: SameProvider,
) -> Clustering {
    pairs.sort_unstable_by(|x, y| {
        y.weight
            .total_cmp(&x.weight)
            .then(x.a.cmp(&y.a))
            .then(x.b.cmp(&y.b))
    });
    let mut parent: Vec<u32> = (0..record_count as u32).collect();
    // The records of each root's cluster (a handful: one per provider at most) as a list from
    // the root: the next record of each, and each root's last record.
    let mut next = vec![NO_RECORD; record_count];
    let mut last: Vec<u32> = (0..record_count as u32).collect();
    let mut size = vec![1u32; record_count];
    let mut best = vec![f64::NEG_INFINITY; record_count];
    let (mut merges, mut refused) = (0u64, 0u64);
    for pair in pairs {
        let (ra, rb) = (find(&mut parent, pair.a), find(&mut parent, pair.b));
        if ra != rb {
            // A pair of one provider (a person registered twice) may join its own two records,
            // and no other two of one provider.
            let clash = members(&next, ra).any(|x| {
                members(&next, rb).any(|y| {
                    provider[x as usize] == provider[y as usize]
                        && (same_provider == SameProvider::Never
                            || ((x, y) != (pair.a, pair.b) && (y, x) != (pair.a, pair.b)))
                })
            });
            if clash {
                refused += 1;
                continue;
            }
            let others: f64 = members(&next, ra)
                .flat_map(|x| members(&next, rb).map(move |y| (x, y)))
                .filter(|&(x, y)| (x, y) != (pair.a, pair.b) && (y, x) != (pair.a, pair.b))
                .map(|(x, y)| flow(provider[x as usize], provider[y as usize]))
                .sum();
            let score = pair.weight + others;
            if score < threshold_weight {
                continue;
            }
            let (big, small) = if size[ra as usize] >= size[rb as usize] {
                (ra, rb)
            } else {
                (rb, ra)
            };
            next[last[big as usize] as usize] = small;
            last[big as usize] = last[small as usize];
            size[big as usize] += size[small as usize];
            parent[small as usize] = big;
            merges += 1;
            for r in [pair.a, pair.b] {
                let slot = &mut best[r as usize];
                *slot = slot.max(score);
            }
        } else if pair.weight >= threshold_weight {
            // A pair inside one cluster confirms it; below the threshold it does not vouch.
            for r in [pair.a, pair.b] {
                let slot = &mut best[r as usize];
                *slot = slot.max(pair.weight);
            }
        }
    }
    drop((next, last, size));
    let mut person = vec![u32::MAX; record_count];
    let mut number_of_root = vec![u32::MAX; record_count];
    let mut persons = 0u32;
    for r in 0..record_count as u32 {
        let root = find(&mut parent, r) as usize;
        if number_of_root[root] == u32::MAX {
            number_of_root[root] = persons;
            persons += 1;
        }
        person[r as usize] = number_of_root[root];
    }
    Clustering {
        person,
        persons,
        merges,
        merges_refused_same_provider: refused,
        best_link_weight: best,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_holds_at_most_one_record_per_person() {
        // Records 0 and 2 come from provider 7; 1 from provider 8.
        let pairs = vec![
            ScoredPair {
                a: 0,
                b: 1,
                weight: 20.0,
            },
            ScoredPair {
                a: 1,
                b: 2,
                weight: 10.0,
            },
        ];
        let c = cluster(3, &[7, 8, 7], pairs);
        assert_eq!(c.person[0], c.person[1]);
        assert_ne!(c.person[1], c.person[2]);
        assert_eq!(c.merges_refused_same_provider, 1);
        assert_eq!(c.persons, 2);
    }

    #[test]
    fn the_strongest_pair_wins() {
        let pairs = vec![
            ScoredPair {
                a: 1,
                b: 2,
                weight: 5.0,
            },
            ScoredPair {
                a: 0,
                b: 2,
                weight: 30.0,
            },
        ];
        let c = cluster(3, &[1, 1, 2], pairs);
        assert_eq!(c.person[0], c.person[2]);
        assert_ne!(c.person[1], c.person[2]);
        assert_eq!(c.best_link_weight[1], f64::NEG_INFINITY);
    }

    fn pair(a: u32, b: u32, weight: f64) -> ScoredPair {
        ScoredPair { a, b, weight }
    }

    #[test]
    fn the_other_records_providers_decide_a_merge() {
        // Records 0 (provider 1) and 1 (provider 2) are one person. Record 2 (provider 3) is
        // linked to 0 just below the threshold: provider 3 shares patients with 2, so the
        // cluster's other record vouches for the merge.
        let providers = [1, 2, 3];
        let pairs = vec![pair(0, 1, 20.0), pair(0, 2, 0.5)];
        let flows = |x: u32, y: u32| {
            if (x.min(y), x.max(y)) == (2, 3) {
                1.0
            } else {
                0.0
            }
        };
        let c = cluster_with_flows(3, &providers, pairs.clone(), 1.0, flows);
        assert_eq!(c.person[0], c.person[2]);
        assert!((c.best_link_weight[2] - 1.5).abs() < 1e-9);
        // Providers 2 and 3 never share a patient: a pair above the threshold is refused.
        let never = |x: u32, y: u32| {
            if (x.min(y), x.max(y)) == (2, 3) {
                -10.0
            } else {
                0.0
            }
        };
        let pairs = vec![pair(0, 1, 20.0), pair(0, 2, 5.0)];
        let c = cluster_with_flows(3, &providers, pairs, 1.0, never);
        assert_ne!(c.person[0], c.person[2]);
        assert_eq!(c.persons, 2);
    }

    #[test]
    fn a_person_registered_twice_at_one_provider_is_joined_by_that_pair_only() {
        // Records 0 and 1 are one provider's, 2 another's; 3 is a third record of provider 1.
        let providers = [1, 1, 2, 1];
        let pairs = vec![pair(0, 1, 15.0), pair(1, 2, 12.0), pair(2, 3, 10.0)];
        let c = cluster_with_flows(4, &providers, pairs, 1.0, |_, _| 0.0);
        assert_eq!(c.person[0], c.person[1]);
        assert_eq!(c.person[1], c.person[2]);
        assert_ne!(c.person[2], c.person[3]);
        assert_eq!(c.merges_refused_same_provider, 1);
    }
}
