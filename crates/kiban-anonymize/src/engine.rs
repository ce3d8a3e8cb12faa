//! Finest equivalence classes and their roll-up to a generalization (lattice node).
//!
//! The rows are grouped once by all quasi-identifier codes at level 0; every node is then
//! evaluated by mapping each finest class through the hierarchies and re-grouping the classes,
//! never by re-reading the rows.

use std::hash::Hash;

use rustc_hash::FxHashMap;

use crate::hierarchy::Hierarchy;
use crate::privacy::{GroundDistance, PrivacyModels};

/// Histogram of one sensitive attribute per finest class (CSR layout).
#[derive(Debug, Clone)]
pub(crate) struct SensitiveHistograms {
    /// `offsets[c]..offsets[c+1]` index the entries of class c.
    offsets: Vec<u32>,
    values: Vec<u32>,
    counts: Vec<u32>,
    /// Relative frequency of each value in the whole data set (for t-closeness).
    pub overall: Vec<f64>,
    /// Ground distance of t-closeness.
    ground: GroundDistance,
}

/// The finest equivalence classes of the data (all quasi-identifiers at level 0).
#[derive(Debug, Clone)]
pub(crate) struct FinestClasses {
    qi_count: usize,
    /// Leaf codes, class-major: `codes[c * qi_count + j]`.
    codes: Vec<u32>,
    /// Records per class.
    pub sizes: Vec<u32>,
    /// Class of every row.
    pub row_class: Vec<u32>,
    /// Per sensitive attribute.
    sensitive: Vec<SensitiveHistograms>,
    /// Bit offset of each quasi-identifier in a packed key (None if they do not fit in 64 bits).
    shifts: Option<Vec<u32>>,
    /// Records in the data.
    pub records: usize,
    /// Population table (for k-map and journalist risk), as leaf-code tuples with counts.
    population: Option<PopulationClasses>,
    /// With a research subset (δ-presence): records per class over all rows.
    presence_sizes: Option<Vec<u32>>,
}

/// Distinct quasi-identifier tuples of a population table with their counts.
#[derive(Debug, Clone, Default)]
pub(crate) struct PopulationClasses {
    /// Leaf codes, tuple-major.
    pub codes: Vec<u32>,
    /// Population members per tuple.
    pub counts: Vec<u64>,
}

/// Key of a generalized tuple: packed when the codes fit in 64 bits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum TupleKey {
    Packed(u64),
    Wide(Box<[u32]>),
}

/// Groups `n` items by a key; returns the group of each item and the first item of each group.
fn group_by<K: Hash + Eq>(n: usize, key: impl Fn(usize) -> K) -> (Vec<u32>, Vec<u32>) {
    let mut index: FxHashMap<K, u32> = FxHashMap::default();
    index.reserve(n.min(1 << 16));
    let mut group_of = Vec::with_capacity(n);
    let mut first = Vec::new();
    for item in 0..n {
        let next = first.len() as u32;
        let group = *index.entry(key(item)).or_insert_with(|| {
            first.push(item as u32);
            next
        });
        group_of.push(group);
    }
    (group_of, first)
}

/// Bit offset of each quasi-identifier's leaf code in a packed key, if they fit in 64 bits.
fn packing_shifts(hierarchies: &[Hierarchy]) -> Option<Vec<u32>> {
    let mut shift = 0u32;
    let mut shifts = Vec::with_capacity(hierarchies.len());
    for h in hierarchies {
        shifts.push(shift);
        shift += bits_for(h.leaf_count());
    }
    (shift <= 64).then_some(shifts)
}

impl SensitiveHistograms {
    /// Builds the CSR histograms from `(class << 32 | value, records)` pairs sorted by key;
    /// equal keys are summed. `records` is the total the overall frequencies are shares of.
    fn from_sorted(
        class_count: usize,
        domain: usize,
        records: usize,
        pairs: impl Iterator<Item = (u64, u32)>,
    ) -> Self {
        let mut hist = SensitiveHistograms {
            offsets: vec![0; class_count + 1],
            values: Vec::new(),
            counts: Vec::new(),
            overall: vec![0.0; domain],
            ground: GroundDistance::Equal,
        };
        let mut pairs = pairs.peekable();
        while let Some((key, mut n)) = pairs.next() {
            while let Some(&(_, more)) = pairs.peek().filter(|p| p.0 == key) {
                n += more;
                pairs.next();
            }
            let class = (key >> 32) as usize;
            let value = (key & 0xffff_ffff) as u32;
            hist.values.push(value);
            hist.counts.push(n);
            hist.offsets[class + 1] = hist.values.len() as u32;
            hist.overall[value as usize] += f64::from(n);
        }
        // Classes are non-empty, but keep offsets monotone regardless.
        for c in 0..class_count {
            if hist.offsets[c + 1] < hist.offsets[c] {
                hist.offsets[c + 1] = hist.offsets[c];
            }
        }
        for f in &mut hist.overall {
            *f /= records.max(1) as f64;
        }
        hist
    }
}

fn bits_for(cardinality: usize) -> u32 {
    (usize::BITS - cardinality.saturating_sub(1).leading_zeros()).max(1)
}

impl FinestClasses {
    /// Groups the rows. `qi_codes[j][row]` are leaf codes; `sensitive_codes[s][row]` with the
    /// attribute's dictionary size.
    #[cfg(test)]
    pub fn build(
        hierarchies: &[Hierarchy],
        qi_codes: &[Vec<u32>],
        sensitive_codes: &[(&[u32], usize)],
    ) -> Self {
        Self::build_with_subset(hierarchies, qi_codes, sensitive_codes, None)
    }

    /// As [`Self::build`]; with `subset`, only rows flagged true count in the class sizes,
    /// the sensitive histograms and `records`, and the class sizes over all rows are kept for
    /// δ-presence.
    pub fn build_with_subset(
        hierarchies: &[Hierarchy],
        qi_codes: &[Vec<u32>],
        sensitive_codes: &[(&[u32], usize)],
        subset: Option<&[bool]>,
    ) -> Self {
        let qi_count = qi_codes.len();
        let rows = qi_codes.first().map_or(0, Vec::len);
        let shifts = packing_shifts(hierarchies);
        let (row_class, first_rows) = match &shifts {
            Some(shifts) => group_by(rows, |row| {
                qi_codes
                    .iter()
                    .zip(shifts)
                    .fold(0u64, |key, (col, &s)| key | (u64::from(col[row]) << s))
            }),
            None => group_by(rows, |row| {
                qi_codes.iter().map(|col| col[row]).collect::<Box<[u32]>>()
            }),
        };
        let class_count = first_rows.len();
        let mut codes = Vec::with_capacity(class_count * qi_count);
        for &row in &first_rows {
            codes.extend(qi_codes.iter().map(|col| col[row as usize]));
        }
        let mut sizes = vec![0u32; class_count];
        let in_subset = |row: usize| subset.is_none_or(|s| s[row]);
        for (row, &c) in row_class.iter().enumerate() {
            if in_subset(row) {
                sizes[c as usize] += 1;
            }
        }
        let presence_sizes = subset.map(|_| {
            let mut all = vec![0u32; class_count];
            for &c in &row_class {
                all[c as usize] += 1;
            }
            all
        });
        let subset_records = sizes.iter().map(|&n| n as usize).sum::<usize>();
        let sensitive = sensitive_codes
            .iter()
            .map(|&(values, domain)| {
                let mut pairs: Vec<u64> = row_class
                    .iter()
                    .zip(values)
                    .enumerate()
                    .filter(|(row, _)| in_subset(*row))
                    .map(|(_, (&c, &v))| (u64::from(c) << 32) | u64::from(v))
                    .collect();
                pairs.sort_unstable();
                SensitiveHistograms::from_sorted(
                    class_count,
                    domain,
                    subset_records,
                    pairs.into_iter().map(|key| (key, 1)),
                )
            })
            .collect();
        FinestClasses {
            qi_count,
            codes,
            sizes,
            row_class,
            sensitive,
            shifts,
            records: subset_records,
            population: None,
            presence_sizes,
        }
    }

    /// The finest classes counted elsewhere (the streaming first pass): `codes` are leaf codes,
    /// class-major; `sensitive[s]` holds `(class << 32 | value code, records)` pairs sorted by
    /// key (a key may repeat; repeats are summed) with the attribute's dictionary size. No
    /// per-row class is kept, so δ-presence and microaggregation are not available on them.
    pub fn from_counts(
        hierarchies: &[Hierarchy],
        codes: Vec<u32>,
        sizes: Vec<u32>,
        sensitive: Vec<(Vec<(u64, u32)>, usize)>,
    ) -> Self {
        let qi_count = hierarchies.len();
        let records = sizes.iter().map(|&n| n as usize).sum::<usize>();
        let class_count = sizes.len();
        let sensitive = sensitive
            .into_iter()
            .map(|(pairs, domain)| {
                SensitiveHistograms::from_sorted(class_count, domain, records, pairs.into_iter())
            })
            .collect();
        FinestClasses {
            qi_count,
            codes,
            sizes,
            row_class: Vec::new(),
            sensitive,
            shifts: packing_shifts(hierarchies),
            records,
            population: None,
            presence_sizes: None,
        }
    }

    /// Forgets the class sizes over all rows kept for δ-presence (when the subset is a sample,
    /// not a research subset).
    pub fn forget_presence(&mut self) {
        self.presence_sizes = None;
    }

    /// Sets the population table (tuples of leaf codes, one per `qi_count` codes).
    pub fn set_population(&mut self, population: PopulationClasses) {
        self.population = Some(population);
    }

    /// With a research subset: the share of subset records in each group
    /// (`sizes[g]` subset records among all records of group g); `None` without a subset.
    pub fn presence_shares(&self, class_group: &[u32], sizes: &[u32]) -> Option<Vec<f64>> {
        let presence = self.presence_sizes.as_ref()?;
        let mut all = vec![0u64; sizes.len()];
        for (c, &g) in class_group.iter().enumerate() {
            all[g as usize] += u64::from(presence[c]);
        }
        Some(
            sizes
                .iter()
                .zip(&all)
                .map(|(&n, &a)| if a == 0 { 0.0 } else { f64::from(n) / a as f64 })
                .collect(),
        )
    }

    /// Members of the population table, if one is set.
    pub fn population_records(&self) -> Option<u64> {
        self.population.as_ref().map(|p| p.counts.iter().sum())
    }

    fn tuple_key(&self, leaves: &[u32], maps: &[&[u32]]) -> TupleKey {
        match &self.shifts {
            Some(shifts) => TupleKey::Packed(
                leaves
                    .iter()
                    .zip(maps)
                    .zip(shifts)
                    .fold(0u64, |key, ((&leaf, map), &s)| {
                        key | (u64::from(map[leaf as usize]) << s)
                    }),
            ),
            None => TupleKey::Wide(
                leaves
                    .iter()
                    .zip(maps)
                    .map(|(&leaf, map)| map[leaf as usize])
                    .collect(),
            ),
        }
    }

    /// Population members in each group of `eval` (its generalized tuple counted in the
    /// population generalized to the same levels); `None` without a population table.
    pub fn population_counts(
        &self,
        hierarchies: &[Hierarchy],
        levels: &[usize],
        first_class: &[u32],
    ) -> Option<Vec<u64>> {
        let population = self.population.as_ref()?;
        let maps: Vec<&[u32]> = hierarchies
            .iter()
            .zip(levels)
            .map(|(h, &l)| h.level_map(l))
            .collect();
        let mut counts: FxHashMap<TupleKey, u64> = FxHashMap::default();
        for (t, &n) in population.counts.iter().enumerate() {
            let leaves = &population.codes[t * self.qi_count..(t + 1) * self.qi_count];
            *counts.entry(self.tuple_key(leaves, &maps)).or_insert(0) += n;
        }
        Some(
            first_class
                .iter()
                .map(|&c| {
                    let key = self.tuple_key(self.codes(c as usize), &maps);
                    counts.get(&key).copied().unwrap_or(0)
                })
                .collect(),
        )
    }

    /// Number of finest classes.
    pub fn len(&self) -> usize {
        self.sizes.len()
    }

    /// Leaf codes of class `c`.
    pub fn codes(&self, c: usize) -> &[u32] {
        &self.codes[c * self.qi_count..(c + 1) * self.qi_count]
    }

    /// Records per leaf value of quasi-identifier `j`.
    pub fn leaf_counts(&self, j: usize, leaves: usize) -> Vec<u64> {
        let mut counts = vec![0u64; leaves];
        for c in 0..self.len() {
            counts[self.codes(c)[j] as usize] += u64::from(self.sizes[c]);
        }
        counts
    }

    /// The finest classes as a group table at level 0 (leaf codes).
    pub fn as_table(&self) -> GroupTable {
        GroupTable {
            levels: vec![0; self.qi_count],
            codes: self.codes.clone(),
            sizes: self.sizes.clone(),
        }
    }

    /// Rolls the finest classes up to `levels` and checks the privacy models on every class.
    pub fn evaluate(
        &self,
        hierarchies: &[Hierarchy],
        levels: &[usize],
        models: &PrivacyModels,
    ) -> Evaluation {
        let maps: Vec<&[u32]> = hierarchies
            .iter()
            .zip(levels)
            .map(|(h, &l)| h.level_map(l))
            .collect();
        let (class_group, first_class) = match &self.shifts {
            Some(shifts) => group_by(self.len(), |c| {
                self.codes(c)
                    .iter()
                    .zip(&maps)
                    .zip(shifts)
                    .fold(0u64, |key, ((&leaf, map), &s)| {
                        key | (u64::from(map[leaf as usize]) << s)
                    })
            }),
            None => group_by(self.len(), |c| {
                self.codes(c)
                    .iter()
                    .zip(&maps)
                    .map(|(&leaf, map)| map[leaf as usize])
                    .collect::<Box<[u32]>>()
            }),
        };
        let groups = first_class.len();
        let mut sizes = vec![0u32; groups];
        for (c, &g) in class_group.iter().enumerate() {
            sizes[g as usize] += self.sizes[c];
        }
        let k = models.k as u32;
        let mut kept: Vec<bool> = sizes.iter().map(|&s| s >= k).collect();
        if let Some(k_map) = models.k_map {
            // Without a population table no class can be shown to be k-mapped.
            let population = self
                .population_counts(hierarchies, levels, &first_class)
                .unwrap_or_else(|| vec![0; groups]);
            for (keep, &n) in kept.iter_mut().zip(&population) {
                *keep &= n >= k_map as u64;
            }
        }
        if let (Some(presence), Some(shares)) = (
            &models.delta_presence,
            self.presence_shares(&class_group, &sizes),
        ) {
            for (keep, share) in kept.iter_mut().zip(shares) {
                *keep &= share >= presence.delta_min - 1e-12 && share <= presence.delta_max + 1e-12;
            }
        }
        if models.needs_sensitive() {
            for hist in &self.sensitive {
                let verdicts = self.sensitive_verdicts(hist, &class_group, groups, models);
                for (keep, ok) in kept.iter_mut().zip(verdicts) {
                    *keep &= ok;
                }
            }
        }
        let suppressed_records = sizes
            .iter()
            .zip(&kept)
            .filter(|(_, k)| !**k)
            .map(|(&s, _)| s as usize)
            .sum();
        Evaluation {
            levels: levels.to_vec(),
            class_group,
            first_class,
            sizes,
            kept,
            suppressed_records,
        }
    }

    /// ℓ/t verdict per group for one sensitive attribute.
    fn sensitive_verdicts(
        &self,
        hist: &SensitiveHistograms,
        class_group: &[u32],
        groups: usize,
        models: &PrivacyModels,
    ) -> Vec<bool> {
        let mut pairs: Vec<(u64, u32)> = Vec::with_capacity(hist.values.len());
        for (c, &g) in class_group.iter().enumerate() {
            let range = hist.offsets[c] as usize..hist.offsets[c + 1] as usize;
            for (&v, &n) in hist.values[range.clone()].iter().zip(&hist.counts[range]) {
                pairs.push(((u64::from(g) << 32) | u64::from(v), n));
            }
        }
        pairs.sort_unstable_by_key(|p| p.0);
        let mut verdicts = vec![true; groups];
        let (mut values, mut counts) = (Vec::new(), Vec::new());
        let mut i = 0;
        while i < pairs.len() {
            let group = (pairs[i].0 >> 32) as usize;
            values.clear();
            counts.clear();
            while i < pairs.len() && (pairs[i].0 >> 32) as usize == group {
                let key = pairs[i].0;
                let mut n = 0;
                while i < pairs.len() && pairs[i].0 == key {
                    n += pairs[i].1;
                    i += 1;
                }
                values.push((key & 0xffff_ffff) as u32);
                counts.push(n);
            }
            verdicts[group] = models.sensitive_ok(&values, &counts, &hist.overall, &hist.ground);
        }
        verdicts
    }

    /// Per-group sensitive histograms `(values, counts)` of attribute `s` (for the report).
    pub fn group_histograms(&self, s: usize, eval: &Evaluation) -> Vec<Vec<(u32, u32)>> {
        let hist = &self.sensitive[s];
        let mut per_group: Vec<FxHashMap<u32, u32>> = vec![FxHashMap::default(); eval.sizes.len()];
        for (c, &g) in eval.class_group.iter().enumerate() {
            let range = hist.offsets[c] as usize..hist.offsets[c + 1] as usize;
            for (&v, &n) in hist.values[range.clone()].iter().zip(&hist.counts[range]) {
                *per_group[g as usize].entry(v).or_insert(0) += n;
            }
        }
        per_group
            .into_iter()
            .map(|m| {
                let mut v: Vec<(u32, u32)> = m.into_iter().collect();
                v.sort_unstable();
                v
            })
            .collect()
    }

    /// The classes `members` only, in that order (codes, sizes, sensitive histograms); the
    /// overall sensitive distributions and ground distances stay those of `self`, so that
    /// t-closeness is still measured against the whole data set. No rows, population or
    /// research subset.
    pub fn restricted(&self, members: &[u32]) -> FinestClasses {
        let mut codes = Vec::with_capacity(members.len() * self.qi_count);
        let mut sizes = Vec::with_capacity(members.len());
        for &c in members {
            codes.extend_from_slice(self.codes(c as usize));
            sizes.push(self.sizes[c as usize]);
        }
        let sensitive = self
            .sensitive
            .iter()
            .map(|hist| {
                let mut offsets = Vec::with_capacity(members.len() + 1);
                offsets.push(0u32);
                let (mut values, mut counts) = (Vec::new(), Vec::new());
                for &c in members {
                    let range =
                        hist.offsets[c as usize] as usize..hist.offsets[c as usize + 1] as usize;
                    values.extend_from_slice(&hist.values[range.clone()]);
                    counts.extend_from_slice(&hist.counts[range]);
                    offsets.push(values.len() as u32);
                }
                SensitiveHistograms {
                    offsets,
                    values,
                    counts,
                    overall: hist.overall.clone(),
                    ground: hist.ground.clone(),
                }
            })
            .collect();
        FinestClasses {
            qi_count: self.qi_count,
            codes,
            records: sizes.iter().map(|&n| n as usize).sum(),
            sizes,
            row_class: Vec::new(),
            sensitive,
            shifts: self.shifts.clone(),
            population: None,
            presence_sizes: None,
        }
    }

    /// Records per group and whether each group satisfies k-anonymity, ℓ-diversity and
    /// t-closeness, for any grouping of the finest classes (`class_group[c]` < `groups`).
    /// k-map and δ-presence are not checked.
    pub fn group_verdicts(
        &self,
        class_group: &[u32],
        groups: usize,
        models: &PrivacyModels,
    ) -> (Vec<u32>, Vec<bool>) {
        let mut sizes = vec![0u32; groups];
        for (c, &g) in class_group.iter().enumerate() {
            sizes[g as usize] += self.sizes[c];
        }
        let mut kept: Vec<bool> = sizes.iter().map(|&s| s >= models.k as u32).collect();
        if models.needs_sensitive() {
            for hist in &self.sensitive {
                let verdicts = self.sensitive_verdicts(hist, class_group, groups, models);
                for (keep, ok) in kept.iter_mut().zip(verdicts) {
                    *keep &= ok;
                }
            }
        }
        (sizes, kept)
    }

    /// Sets the ground distance of t-closeness for sensitive attribute `s`.
    pub fn set_ground_distance(&mut self, s: usize, ground: GroundDistance) {
        self.sensitive[s].ground = ground;
    }

    /// Overall relative frequencies of sensitive attribute `s`.
    pub fn overall(&self, s: usize) -> &[f64] {
        &self.sensitive[s].overall
    }
}

/// The equivalence classes of one lattice node and the privacy verdict on each.
#[derive(Debug, Clone)]
pub(crate) struct Evaluation {
    /// The node.
    pub levels: Vec<usize>,
    /// Group (equivalence class of the node) of every finest class.
    pub class_group: Vec<u32>,
    /// A finest class of each group (to read its generalized codes).
    pub first_class: Vec<u32>,
    /// Records per group.
    pub sizes: Vec<u32>,
    /// Whether the group is released (false: suppressed).
    pub kept: Vec<bool>,
    /// Records in suppressed groups.
    pub suppressed_records: usize,
}

/// Equivalence classes (codes and sizes) of one node, the source of further roll-ups.
#[derive(Debug, Clone)]
pub(crate) struct GroupTable {
    /// The node.
    pub levels: Vec<usize>,
    /// Codes at `levels`, group-major.
    pub codes: Vec<u32>,
    /// Records per group.
    pub sizes: Vec<u32>,
}

impl GroupTable {
    /// Number of groups.
    pub fn len(&self) -> usize {
        self.sizes.len()
    }

    /// Rolls this table up to `levels` (each at least this table's level) through `transitions`.
    pub fn roll_up(&self, transitions: &Transitions, levels: &[usize]) -> GroupTable {
        let qi = levels.len();
        let maps: Vec<&[u32]> = (0..qi)
            .map(|j| transitions.map(j, self.levels[j], levels[j]))
            .collect();
        let cards: Vec<usize> = (0..qi)
            .map(|j| transitions.cardinality(j, levels[j]))
            .collect();
        let mut out = GroupTable {
            levels: levels.to_vec(),
            codes: Vec::new(),
            sizes: Vec::new(),
        };
        let mut buffer = vec![0u32; qi];
        let generalize = |c: usize, buffer: &mut [u32]| {
            let row = &self.codes[c * qi..(c + 1) * qi];
            for ((slot, &code), map) in buffer.iter_mut().zip(row).zip(&maps) {
                *slot = map[code as usize];
            }
        };
        let mut domain: usize = 1;
        let mut radix = Vec::with_capacity(qi);
        for &card in &cards {
            radix.push(domain);
            domain = domain.saturating_mul(card);
        }
        // Dense slots (no hashing) when the node's domain is small; hashing otherwise.
        if domain <= 4 * self.len() + 4096 {
            let mut slot = vec![u32::MAX; domain];
            for c in 0..self.len() {
                generalize(c, &mut buffer);
                let key: usize = buffer
                    .iter()
                    .zip(&radix)
                    .map(|(&g, &r)| g as usize * r)
                    .sum();
                out.add(&mut slot[key], &buffer, self.sizes[c]);
            }
        } else {
            let mut shifts = Vec::with_capacity(qi);
            let mut shift = 0u32;
            for &card in &cards {
                shifts.push(shift);
                shift += bits_for(card);
            }
            if shift <= 64 {
                let mut index: FxHashMap<u64, u32> = FxHashMap::default();
                for c in 0..self.len() {
                    generalize(c, &mut buffer);
                    let key = buffer
                        .iter()
                        .zip(&shifts)
                        .fold(0u64, |key, (&g, &s)| key | (u64::from(g) << s));
                    out.add(index.entry(key).or_insert(u32::MAX), &buffer, self.sizes[c]);
                }
            } else {
                let mut index: FxHashMap<Box<[u32]>, u32> = FxHashMap::default();
                for c in 0..self.len() {
                    generalize(c, &mut buffer);
                    let key: Box<[u32]> = buffer.as_slice().into();
                    out.add(index.entry(key).or_insert(u32::MAX), &buffer, self.sizes[c]);
                }
            }
        }
        out
    }

    fn add(&mut self, slot: &mut u32, codes: &[u32], size: u32) {
        if *slot == u32::MAX {
            *slot = self.sizes.len() as u32;
            self.sizes.push(size);
            self.codes.extend_from_slice(codes);
        } else {
            self.sizes[*slot as usize] += size;
        }
    }

    /// Records in groups smaller than `k`.
    pub fn records_below(&self, k: u32) -> usize {
        self.sizes
            .iter()
            .filter(|&&n| n < k)
            .map(|&n| n as usize)
            .sum()
    }
}

/// Level-to-level code maps of every hierarchy: `maps[j][from][to - from][code at from]`.
#[derive(Debug, Clone)]
pub(crate) struct Transitions {
    maps: Vec<Vec<Vec<Vec<u32>>>>,
    cardinalities: Vec<Vec<usize>>,
}

impl Transitions {
    pub fn new(hierarchies: &[Hierarchy]) -> Self {
        let maps = hierarchies
            .iter()
            .map(|h| {
                (0..h.height())
                    .map(|from| {
                        (from..h.height())
                            .map(|to| {
                                let mut map = vec![0u32; h.cardinality(from)];
                                for leaf in 0..h.leaf_count() as u32 {
                                    map[h.generalize(leaf, from) as usize] = h.generalize(leaf, to);
                                }
                                map
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let cardinalities = hierarchies
            .iter()
            .map(|h| (0..h.height()).map(|l| h.cardinality(l)).collect())
            .collect();
        Transitions {
            maps,
            cardinalities,
        }
    }

    fn map(&self, j: usize, from: usize, to: usize) -> &[u32] {
        &self.maps[j][from][to - from]
    }

    fn cardinality(&self, j: usize, level: usize) -> usize {
        self.cardinalities[j][level]
    }
}
