//! Stable person ids across linkage runs: a new run's clusters take over the ids of the
//! persons they continue, so a person keeps its id when records are added, and merges and
//! splits are named as such (the history of every change is kept by the caller).

use rustc_hash::FxHashMap;

/// The person ids a run assigns, with what changed against the previous assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StableAssignment {
    /// Person id of every record, in record order.
    pub person_ids: Vec<String>,
    /// Records whose person id differs from the previous one (new records included).
    pub changed: Vec<usize>,
    /// Persons created by this run.
    pub new_persons: usize,
    /// Previous persons whose id no cluster took over: their records joined other persons.
    pub merged_persons: usize,
    /// Previous persons whose records are now in several persons.
    pub split_persons: usize,
    /// Persons after the run.
    pub persons: usize,
}

/// Gives every cluster a person id: the previous id held by most of its records, unless a
/// cluster holding more of that person's records took it already (then, or when its records
/// had none, a new id from `new_id`). Ties go to the smaller id and then the earlier cluster,
/// so the result does not depend on hash order.
///
/// `cluster_of[i]` is the cluster of record `i`; `previous[i]` its person id before the run.
///
/// ```
/// use kiban_linkage::history::assign_stable_person_ids;
///
/// let previous = vec![Some("P1".to_string()), Some("P1".to_string()), None];
/// // Records 0 and 2 are one person now; record 1 is split off.
/// let mut next = 0;
/// let run = assign_stable_person_ids(&[0, 1, 0], &previous, || {
///     next += 1;
///     format!("N{next}")
/// });
/// assert_eq!(run.person_ids, vec!["P1", "N1", "P1"]);
/// assert_eq!((run.split_persons, run.new_persons, run.changed), (1, 1, vec![1, 2]));
/// ```
pub fn assign_stable_person_ids(
    cluster_of: &[u32],
    previous: &[Option<String>],
    mut new_id: impl FnMut() -> String,
) -> StableAssignment {
    assert_eq!(
        cluster_of.len(),
        previous.len(),
        "one previous id (or None) per record"
    );
    let clusters = cluster_of
        .iter()
        .map(|&c| c as usize + 1)
        .max()
        .unwrap_or(0);
    // Votes: (cluster, previous id) → records.
    let mut votes: FxHashMap<(u32, &str), usize> = FxHashMap::default();
    // Clusters each previous person's records are in now.
    let mut spread: FxHashMap<&str, Vec<u32>> = FxHashMap::default();
    for (record, cluster) in cluster_of.iter().enumerate() {
        if let Some(id) = previous[record].as_deref() {
            *votes.entry((*cluster, id)).or_insert(0) += 1;
            let clusters = spread.entry(id).or_default();
            if !clusters.contains(cluster) {
                clusters.push(*cluster);
            }
        }
    }
    let mut candidates: Vec<((u32, &str), usize)> = votes.into_iter().collect();
    candidates.sort_by(|((ca, ia), na), ((cb, ib), nb)| {
        nb.cmp(na).then_with(|| ia.cmp(ib)).then_with(|| ca.cmp(cb))
    });
    let mut id_of_cluster: Vec<Option<String>> = vec![None; clusters];
    let mut taken: FxHashMap<&str, u32> = FxHashMap::default();
    for ((cluster, id), _) in candidates {
        if id_of_cluster[cluster as usize].is_none() && !taken.contains_key(id) {
            id_of_cluster[cluster as usize] = Some(id.to_owned());
            taken.insert(id, cluster);
        }
    }
    let used: Vec<bool> = {
        let mut used = vec![false; clusters];
        for &c in cluster_of {
            used[c as usize] = true;
        }
        used
    };
    let mut new_persons = 0;
    for (cluster, id) in id_of_cluster.iter_mut().enumerate() {
        if id.is_none() && used[cluster] {
            *id = Some(new_id());
            new_persons += 1;
        }
    }
    let person_ids: Vec<String> = cluster_of
        .iter()
        .map(|&c| id_of_cluster[c as usize].clone().unwrap_or_default())
        .collect();
    let changed = person_ids
        .iter()
        .zip(previous)
        .enumerate()
        .filter(|(_, (now, before))| before.as_deref() != Some(now.as_str()))
        .map(|(record, _)| record)
        .collect();
    let merged_persons = spread.keys().filter(|id| !taken.contains_key(*id)).count();
    let split_persons = spread
        .values()
        .filter(|clusters| clusters.len() > 1)
        .count();
    StableAssignment {
        person_ids,
        changed,
        new_persons,
        merged_persons,
        split_persons,
        persons: used.iter().filter(|u| **u).count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(values: &[Option<&str>]) -> Vec<Option<String>> {
        values.iter().map(|v| v.map(str::to_owned)).collect()
    }

    fn counter() -> impl FnMut() -> String {
        let mut next = 0;
        move || {
            next += 1;
            format!("N{next}")
        }
    }

    #[test]
    fn a_rerun_on_the_same_records_changes_nothing() {
        let previous = ids(&[Some("A"), Some("A"), Some("B")]);
        let run = assign_stable_person_ids(&[1, 1, 0], &previous, counter());
        assert_eq!(run.person_ids, vec!["A", "A", "B"]);
        assert!(run.changed.is_empty());
        assert_eq!(
            (run.new_persons, run.merged_persons, run.split_persons),
            (0, 0, 0)
        );
    }

    #[test]
    fn new_records_join_their_person_and_merges_keep_the_larger_id() {
        // A (2 records) and B (1) are one person now; record 3 is new and joins them.
        let previous = ids(&[Some("A"), Some("A"), Some("B"), None, None]);
        let run = assign_stable_person_ids(&[0, 0, 0, 0, 1], &previous, counter());
        assert_eq!(run.person_ids, vec!["A", "A", "A", "A", "N1"]);
        assert_eq!(run.changed, vec![2, 3, 4]);
        assert_eq!(
            (run.new_persons, run.merged_persons, run.split_persons),
            (1, 1, 0)
        );
        assert_eq!(run.persons, 2);
    }

    #[test]
    fn a_split_keeps_the_id_with_the_larger_part() {
        let previous = ids(&[Some("A"), Some("A"), Some("A")]);
        let run = assign_stable_person_ids(&[0, 1, 1], &previous, counter());
        assert_eq!(run.person_ids, vec!["N1", "A", "A"]);
        assert_eq!(run.changed, vec![0]);
        assert_eq!((run.new_persons, run.split_persons), (1, 1));
    }
}
