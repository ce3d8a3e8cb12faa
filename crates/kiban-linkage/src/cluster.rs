//! Clustering of linked pairs into persons: union-find over the pairs, strongest first, under the
//! constraint that a provider holds at most one record per person ([`cluster`]), or, in
//! [`cluster_with_flows`], deciding each merge on the evidence of the two clusters and letting a
//! pair of one provider (a person registered twice) join its own two records.
//!
//! A reviewer's decisions ([`Constraints`]) bind the clustering: must-link pairs are joined
//! before any scored pair, and no merge ever puts the two records of a cannot-link pair into one
//! person ([`cluster_with_constraints`]).
//!
//! An incremental run joins new records onto existing persons without splitting or merging
//! them ([`cluster_onto_persons`]).

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
    /// (`f64::NEG_INFINITY` for records linked to nothing; `f64::INFINITY` for a record joined
    /// by a must-link decision).
    pub best_link_weight: Vec<f64>,
    /// Must-link pairs that joined two clusters (a pair already in one cluster is not counted).
    pub must_links_applied: u64,
    /// Must-link pairs refused: joining them would have put a cannot-link pair into one person.
    pub must_links_refused: u64,
    /// Merges of scored pairs refused because of a cannot-link pair across the two clusters.
    pub merges_refused_cannot_link: u64,
}

/// A reviewer's decisions on record pairs, as constraints on the clustering.
///
/// Must-link pairs are joined first, in the order given, whatever their providers (a reviewer
/// who judged two records of one provider the same person is followed: a person registered
/// twice). Cannot-link pairs win over must-link pairs: a must-link that would put a cannot-link
/// pair into one person, directly or through other must-links, is refused, and so is every
/// merge of scored pairs that would.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Constraints {
    /// Pairs of record indices judged the same person.
    pub must_link: Vec<(u32, u32)>,
    /// Pairs of record indices judged different persons.
    pub cannot_link: Vec<(u32, u32)>,
}

impl Constraints {
    /// Whether there are no constraints.
    pub fn is_empty(&self) -> bool {
        self.must_link.is_empty() && self.cannot_link.is_empty()
    }
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
        &Constraints::default(),
        None,
    )
    .0
}

/// Joins `pairs` into persons like [`cluster`], deciding each merge on the evidence of the two
/// clusters rather than of one pair: the pair's weight (its identity and household evidence,
/// which the other pairs between the clusters repeat) plus the mean of `flow(x, y)`, the
/// provider-pair evidence ([`crate::provider_pair`]), over every other record pair across the
/// two clusters (the other providers are one more observation of where the person went, whose
/// pairs are not independent of each other). Two clusters merge
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
    cluster_with_constraints(
        record_count,
        provider,
        pairs,
        threshold_weight,
        flow,
        &Constraints::default(),
    )
}

/// [`cluster_with_flows`] bound by a reviewer's decisions: the must-link pairs of `constraints`
/// are joined before any scored pair, and no merge puts a cannot-link pair into one person.
/// Pairs naming a record index beyond `record_count` are ignored.
pub fn cluster_with_constraints(
    record_count: usize,
    provider: &[u32],
    pairs: Vec<ScoredPair>,
    threshold_weight: f64,
    flow: impl Fn(u32, u32) -> f64,
    constraints: &Constraints,
) -> Clustering {
    join_pairs(
        record_count,
        provider,
        pairs,
        threshold_weight,
        flow,
        SameProvider::OwnPairOnly,
        constraints,
        None,
    )
    .0
}

/// What [`cluster_onto_persons`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusteringOntoPersons {
    /// The persons: every existing person whole, new records joined to one of them, to each
    /// other or alone.
    pub clustering: Clustering,
    /// Pairs whose merge would have joined two existing persons (through new records), with
    /// the score that would have merged them: for a reviewer to judge, never merged here.
    pub refused_joining_persons: Vec<ScoredPair>,
}

/// Joins new records onto existing persons (an incremental run): the records of each existing
/// person (`existing[r]`, the person number of record `r`, `None` for a new record) are one
/// cluster from the start and are never split; then `pairs` (each with at least one new record)
/// are joined like [`cluster_with_constraints`] (strongest first, the two clusters' evidence,
/// one record per provider and person, cannot-link honoured), except that no scored pair joins
/// two clusters that both hold an existing person's records: a new record joins at most one
/// existing person, its strongest. A reviewer's must-link pairs are followed first, as in a full
/// run. `existing` shorter than `record_count` leaves the records beyond it new.
pub fn cluster_onto_persons(
    record_count: usize,
    provider: &[u32],
    existing: &[Option<u32>],
    pairs: Vec<ScoredPair>,
    threshold_weight: f64,
    flow: impl Fn(u32, u32) -> f64,
    constraints: &Constraints,
) -> ClusteringOntoPersons {
    let (clustering, refused_joining_persons) = join_pairs(
        record_count,
        provider,
        pairs,
        threshold_weight,
        flow,
        SameProvider::OwnPairOnly,
        constraints,
        Some(existing),
    );
    ClusteringOntoPersons {
        clustering,
        refused_joining_persons,
    }
}

/// Whether two records of one provider may be in one person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SameProvider {
    /// Never.
    Never,
    /// Only the two records of the pair being merged (a person registered twice).
    OwnPairOnly,
}

/// Whether a cannot-link pair has one record in the cluster of root `small` and the other in the
/// cluster of root `other`. Only the records of `small`'s cluster are looked up: a handful.
fn kept_apart(
    apart: &rustc_hash::FxHashMap<u32, Vec<u32>>,
    parent: &mut [u32],
    next: &[u32],
    small: u32,
    other: u32,
) -> bool {
    if apart.is_empty() {
        return false;
    }
    members(next, small).any(|x| {
        apart
            .get(&x)
            .is_some_and(|ys| ys.iter().any(|&y| find(parent, y) == other))
    })
}

/// The clusters being built: union-find with each root's list of records.
struct Clusters {
    parent: Vec<u32>,
    /// The records of each root's cluster (a handful: one per provider at most, but for
    /// must-links) as a list from the root: the next record of each, and each root's last.
    next: Vec<u32>,
    last: Vec<u32>,
    size: Vec<u32>,
    /// Per root: whether the cluster holds a record of an existing person.
    anchored: Vec<bool>,
}

impl Clusters {
    fn new(record_count: usize) -> Clusters {
        Clusters {
            parent: (0..record_count as u32).collect(),
            next: vec![NO_RECORD; record_count],
            last: (0..record_count as u32).collect(),
            size: vec![1; record_count],
            anchored: vec![false; record_count],
        }
    }

    fn find(&mut self, x: u32) -> u32 {
        find(&mut self.parent, x)
    }

    /// The two roots, the smaller cluster's first.
    fn by_size(&self, ra: u32, rb: u32) -> (u32, u32) {
        if self.size[ra as usize] >= self.size[rb as usize] {
            (rb, ra)
        } else {
            (ra, rb)
        }
    }

    /// Whether a cannot-link pair lies across the clusters of roots `ra` and `rb`.
    fn kept_apart(
        &mut self,
        apart: &rustc_hash::FxHashMap<u32, Vec<u32>>,
        ra: u32,
        rb: u32,
    ) -> bool {
        let (small, big) = self.by_size(ra, rb);
        kept_apart(apart, &mut self.parent, &self.next, small, big)
    }

    /// Joins the clusters of roots `ra` and `rb` (distinct).
    fn join(&mut self, ra: u32, rb: u32) {
        let (small, big) = self.by_size(ra, rb);
        self.next[self.last[big as usize] as usize] = small;
        self.last[big as usize] = self.last[small as usize];
        self.size[big as usize] += self.size[small as usize];
        self.anchored[big as usize] |= self.anchored[small as usize];
        self.parent[small as usize] = big;
    }
}

/// Union-find over `pairs`, strongest first, after the must-link pairs of `constraints`: a
/// merge happens when the pair's weight plus the mean `flow` of the other record pairs across the
/// two clusters reaches `threshold_weight`, the provider rule allows it and no cannot-link pair
/// lies across the two clusters. With `existing` persons, their records are joined first and
/// scored merges of two clusters holding existing records are refused and returned.
#[allow(clippy::too_many_arguments)]
fn join_pairs(
    record_count: usize,
    provider: &[u32],
    mut pairs: Vec<ScoredPair>,
    threshold_weight: f64,
    flow: impl Fn(u32, u32) -> f64,
    same_provider: SameProvider,
    constraints: &Constraints,
    existing: Option<&[Option<u32>]>,
) -> (Clustering, Vec<ScoredPair>) {
    pairs.sort_unstable_by(|x, y| {
        y.weight
            .total_cmp(&x.weight)
            .then(x.a.cmp(&y.a))
            .then(x.b.cmp(&y.b))
    });
    let in_range = |&&(a, b): &&(u32, u32)| {
        a != b && (a as usize) < record_count && (b as usize) < record_count
    };
    // Per record, the records it must stay apart from (both directions).
    let mut apart: rustc_hash::FxHashMap<u32, Vec<u32>> = rustc_hash::FxHashMap::default();
    for &(a, b) in constraints.cannot_link.iter().filter(in_range) {
        apart.entry(a).or_default().push(b);
        apart.entry(b).or_default().push(a);
    }
    let mut clusters = Clusters::new(record_count);
    let mut best = vec![f64::NEG_INFINITY; record_count];
    // Existing persons stay whole: their records are one cluster before anything else.
    let mut refused_joining_persons = Vec::new();
    if let Some(existing) = existing {
        let mut first_of_person: rustc_hash::FxHashMap<u32, u32> = rustc_hash::FxHashMap::default();
        for (r, person) in existing.iter().enumerate().take(record_count) {
            let Some(person) = *person else { continue };
            let r = r as u32;
            clusters.anchored[r as usize] = true;
            let first = *first_of_person.entry(person).or_insert(r);
            let (ra, rb) = (clusters.find(first), clusters.find(r));
            if ra != rb {
                clusters.join(ra, rb);
            }
        }
    }
    let (mut must_links_applied, mut must_links_refused) = (0u64, 0u64);
    // A reviewer's same-person decisions come first, whatever the providers and the scores.
    for &(a, b) in constraints.must_link.iter().filter(in_range) {
        let (ra, rb) = (clusters.find(a), clusters.find(b));
        if ra != rb {
            if clusters.kept_apart(&apart, ra, rb) {
                must_links_refused += 1;
                continue;
            }
            clusters.join(ra, rb);
            must_links_applied += 1;
        }
        best[a as usize] = f64::INFINITY;
        best[b as usize] = f64::INFINITY;
    }
    let (mut merges, mut refused, mut refused_cannot_link) = (0u64, 0u64, 0u64);
    for pair in pairs {
        let (ra, rb) = (clusters.find(pair.a), clusters.find(pair.b));
        if ra != rb {
            let next = &clusters.next;
            // A pair of one provider (a person registered twice) may join its own two records,
            // and no other two of one provider.
            let clash = members(next, ra).any(|x| {
                members(next, rb).any(|y| {
                    provider[x as usize] == provider[y as usize]
                        && (same_provider == SameProvider::Never
                            || ((x, y) != (pair.a, pair.b) && (y, x) != (pair.a, pair.b)))
                })
            });
            if clash {
                refused += 1;
                continue;
            }
            // The other records' providers are one more observation of where the person
            // went, not one per record pair: their flows are strongly correlated (a region's
            // providers), and summing them let clusters of namesakes grow by chaining, each
            // merge adding more flows (at 10 million records, clusters of up to 20 namesakes).
            let (others, count) = members(next, ra)
                .flat_map(|x| members(next, rb).map(move |y| (x, y)))
                .filter(|&(x, y)| (x, y) != (pair.a, pair.b) && (y, x) != (pair.a, pair.b))
                .map(|(x, y)| flow(provider[x as usize], provider[y as usize]))
                .fold((0.0, 0u32), |(sum, n), f| (sum + f, n + 1));
            let score = pair.weight
                + if count == 0 {
                    0.0
                } else {
                    others / f64::from(count)
                };
            if score < threshold_weight {
                continue;
            }
            if clusters.anchored[ra as usize] && clusters.anchored[rb as usize] {
                refused_joining_persons.push(ScoredPair {
                    weight: score,
                    ..pair
                });
                continue;
            }
            if clusters.kept_apart(&apart, ra, rb) {
                refused_cannot_link += 1;
                continue;
            }
            clusters.join(ra, rb);
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
    let Clusters { mut parent, .. } = clusters;
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
    let clustering = Clustering {
        person,
        persons,
        merges,
        merges_refused_same_provider: refused,
        best_link_weight: best,
        must_links_applied,
        must_links_refused,
        merges_refused_cannot_link: refused_cannot_link,
    };
    (clustering, refused_joining_persons)
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
    fn other_providers_vouch_once_so_namesakes_do_not_chain_onto_a_person() {
        // Records 0, 1, 2 (providers 1, 2, 3) are one person. Records 3..=6 (providers 4..=7)
        // are namesakes, each weakly paired with record 0; every provider pair shares patients.
        // One observation of the other providers lifts a weak pair by one flow, whatever the
        // cluster's size: summing a flow per record pair joined every namesake, each merge
        // lifting the next more.
        let providers = [1, 2, 3, 4, 5, 6, 7];
        let mut pairs = vec![pair(0, 1, 20.0), pair(1, 2, 20.0)];
        pairs.extend((3..=6).map(|r| pair(0, r, -2.0)));
        let c = cluster_with_flows(7, &providers, pairs, 1.0, |_, _| 1.5);
        assert_eq!(c.person[0], c.person[2]);
        for r in 3..=6 {
            assert_ne!(c.person[r], c.person[0], "record {r}");
        }
        assert_eq!(c.persons, 5);
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

    #[test]
    fn a_must_link_joins_records_that_the_scores_leave_apart() {
        // Records 0 and 1 (providers 1, 2) have a pair below the threshold; 2 and 3 (providers
        // 3, 1) none; 0 and 4 are one provider's.
        let providers = [1, 2, 3, 1, 1];
        let pairs = vec![pair(0, 1, -3.0)];
        let alone = cluster_with_flows(5, &providers, pairs.clone(), 1.0, |_, _| 0.0);
        assert_eq!(alone.persons, 5);
        let constraints = Constraints {
            must_link: vec![(0, 1), (2, 3), (0, 4), (1, 0), (7, 0)],
            cannot_link: Vec::new(),
        };
        let c = cluster_with_constraints(5, &providers, pairs, 1.0, |_, _| 0.0, &constraints);
        assert_eq!(c.person[0], c.person[1]);
        assert_eq!(c.person[2], c.person[3]);
        // Forced even for two records of one provider.
        assert_eq!(c.person[0], c.person[4]);
        assert_eq!(c.persons, 2);
        assert_eq!((c.must_links_applied, c.must_links_refused), (3, 0));
        assert_eq!(c.best_link_weight[1], f64::INFINITY);
    }

    #[test]
    fn a_cannot_link_keeps_apart_what_the_scores_would_join() {
        // 0 and 1 would join on their pair; 2 joins 1 and would bring 0 in through it.
        let providers = [1, 2, 3, 4];
        let pairs = vec![pair(0, 1, 20.0), pair(1, 2, 15.0), pair(2, 3, 12.0)];
        let joined = cluster_with_flows(4, &providers, pairs.clone(), 1.0, |_, _| 0.0);
        assert_eq!(joined.persons, 1);
        let constraints = Constraints {
            must_link: Vec::new(),
            cannot_link: vec![(2, 0)],
        };
        let c = cluster_with_constraints(4, &providers, pairs, 1.0, |_, _| 0.0, &constraints);
        assert_eq!(c.person[0], c.person[1]);
        // 2 cannot join 0's cluster through 1, but 3 may join 2.
        assert_ne!(c.person[1], c.person[2]);
        assert_eq!(c.person[2], c.person[3]);
        assert_eq!(c.merges_refused_cannot_link, 1);
        assert_eq!(c.persons, 2);
    }

    #[test]
    fn a_cannot_link_wins_over_must_links_that_chain_around_it() {
        let providers = [1, 2, 3];
        let constraints = Constraints {
            must_link: vec![(0, 1), (1, 2)],
            cannot_link: vec![(0, 2)],
        };
        let c = cluster_with_constraints(3, &providers, Vec::new(), 1.0, |_, _| 0.0, &constraints);
        assert_eq!(c.person[0], c.person[1]);
        assert_ne!(c.person[1], c.person[2]);
        assert_eq!((c.must_links_applied, c.must_links_refused), (1, 1));
    }

    /// Records 0 and 1 are existing person 0 (providers 1 and 2), record 2 existing person 1
    /// (provider 3); records 3.. are new.
    fn onto(
        provider: &[u32],
        existing: &[Option<u32>],
        pairs: Vec<ScoredPair>,
        constraints: &Constraints,
    ) -> ClusteringOntoPersons {
        cluster_onto_persons(
            provider.len(),
            provider,
            existing,
            pairs,
            0.0,
            |_, _| 0.0,
            constraints,
        )
    }

    #[test]
    fn a_new_record_joins_its_existing_person() {
        let provider = [1, 2, 3, 4];
        let existing = [Some(0), Some(0), Some(1), None];
        let run = onto(
            &provider,
            &existing,
            vec![pair(0, 3, 12.0)],
            &Constraints::default(),
        );
        let person = &run.clustering.person;
        assert_eq!(person[3], person[0]);
        assert_eq!(person[1], person[0]);
        assert_ne!(person[2], person[0]);
        assert_eq!(run.clustering.merges, 1);
        assert!(run.refused_joining_persons.is_empty());
    }

    #[test]
    fn a_new_record_of_a_provider_the_person_has_already_stays_apart() {
        // Record 3 is of provider 2, like record 1 of person 0.
        let provider = [1, 2, 3, 2];
        let existing = [Some(0), Some(0), Some(1), None];
        let run = onto(
            &provider,
            &existing,
            vec![pair(0, 3, 12.0)],
            &Constraints::default(),
        );
        let person = &run.clustering.person;
        assert_ne!(person[3], person[0]);
        assert_eq!(run.clustering.merges_refused_same_provider, 1);
        assert_eq!(run.clustering.persons, 3);
    }

    #[test]
    fn existing_persons_are_never_split_nor_joined_by_scores() {
        // Person 0 has no scored pair at all; new record 3 matches both persons, person 1
        // more strongly: it joins person 1 only, and the pair to person 0 is proposed.
        let provider = [1, 2, 3, 4];
        let existing = [Some(0), Some(0), Some(1), None];
        let run = onto(
            &provider,
            &existing,
            vec![pair(2, 3, 20.0), pair(1, 3, 15.0)],
            &Constraints::default(),
        );
        let person = &run.clustering.person;
        assert_eq!(person[0], person[1]);
        assert_eq!(person[3], person[2]);
        assert_ne!(person[0], person[2]);
        assert_eq!(run.refused_joining_persons.len(), 1);
        assert_eq!(
            (
                run.refused_joining_persons[0].a,
                run.refused_joining_persons[0].b
            ),
            (1, 3)
        );
        // Without existing persons the same pairs would join everything.
        let free = cluster_with_constraints(
            4,
            &provider,
            vec![pair(2, 3, 20.0), pair(1, 3, 15.0)],
            0.0,
            |_, _| 0.0,
            &Constraints::default(),
        );
        assert_eq!(free.persons, 2);
    }

    #[test]
    fn new_records_form_persons_among_themselves_and_cannot_links_hold() {
        let provider = [1, 2, 3, 4, 5, 6];
        let existing = [Some(0), Some(0), Some(1), None, None, None];
        let constraints = Constraints {
            must_link: Vec::new(),
            cannot_link: vec![(0, 5)],
        };
        let run = onto(
            &provider,
            &existing,
            vec![pair(3, 4, 9.0), pair(0, 5, 30.0)],
            &constraints,
        );
        let person = &run.clustering.person;
        assert_eq!(person[3], person[4]);
        assert_ne!(person[5], person[0]);
        assert_eq!(run.clustering.merges_refused_cannot_link, 1);
        assert_eq!(run.clustering.persons, 4);
    }
}
