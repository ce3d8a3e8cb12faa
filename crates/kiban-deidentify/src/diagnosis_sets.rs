//! The diagnosis set as a set-valued quasi-identifier: k^m-anonymity (Terrovitis, Mamoulis
//! and Kalnis, "Privacy-preserving anonymization of set-valued data", VLDB 2008).
//!
//! An attacker who knows up to `m` of a person's diagnosis categories must find, for every
//! combination of at most `m` released items, at least `k` persons holding it. The rule is
//! reached in two steps:
//!
//! 1. **Global generalization** (the Apriori-based anonymization, AA): for i = 1..=m, the
//!    i-item combinations are counted; for each one held by fewer than `k` persons the
//!    cheapest raise of one of its items up the ICD-10 hierarchy (3-character category →
//!    WHO block → chapter, a cut: every category under the raised node is released as it)
//!    that makes it common is applied, when its loss is no more than that of suppressing the
//!    combination in the persons holding it. Counts are redone after every round.
//! 2. **Local suppression** of what remains: in each person holding a rare combination, the
//!    combination's least common item is removed, until no combination of at most `m` items
//!    is held by fewer than `k` persons.
//!
//! Loss is the normalized certainty penalty (NCP): an item kept as given costs 0, an item
//! released as a node covering `c` of the `n` distinct input items costs `c / n`, a removed
//! item costs 1; the report gives the mean over all item occurrences.
//!
//! State: the item sets themselves (interned), one list of holders per distinct item and the
//! counts of combinations of at most `m` items; no per-person copy beyond that.

use std::collections::{BTreeMap, HashMap};

use kiban_anonymize::{Hierarchy, HierarchySpec, Icd10Level, Icd10Spec};
use serde::{Deserialize, Serialize};

use crate::DeidentifyError;

/// Largest `m` accepted: the combinations counted grow as (items per person)^m.
pub const MAX_KNOWN_DIAGNOSES: usize = 4;

/// Separator of the items of a released diagnosis set.
const SEPARATOR: char = ';';

/// The k^m rule of the diagnosis set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagnosisSetOptions {
    /// Every released combination of at most `m` items is held by at least this many
    /// persons (the person table's k; default 5).
    pub k: usize,
    /// The number of diagnosis categories the attacker is assumed to know (default: the
    /// attack's [`crate::AttackerErrorModel::known_diagnoses`], 2; at most
    /// [`MAX_KNOWN_DIAGNOSES`]).
    pub m: usize,
}

impl Default for DiagnosisSetOptions {
    fn default() -> Self {
        Self {
            k: 5,
            m: crate::AttackerErrorModel::default().known_diagnoses,
        }
    }
}

impl DiagnosisSetOptions {
    pub(crate) fn validate(&self) -> Result<(), DeidentifyError> {
        if self.k == 0 {
            return Err(DeidentifyError::InvalidOption {
                option: "diagnosis_sets.k",
                reason: "must be at least 1".to_owned(),
            });
        }
        if self.m == 0 || self.m > MAX_KNOWN_DIAGNOSES {
            return Err(DeidentifyError::InvalidOption {
                option: "diagnosis_sets.m",
                reason: format!("must lie in 1..={MAX_KNOWN_DIAGNOSES}"),
            });
        }
        Ok(())
    }
}

/// What the k^m rule did: the rule, the generalizations (ICD-10 hierarchy rules, not person
/// data) and counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiagnosisSetReport {
    /// The rule applied.
    pub rule: String,
    /// k: the least number of persons holding any released combination.
    pub k: usize,
    /// m: the largest combination the attacker is assumed to know.
    pub m: usize,
    /// Persons (sets) processed.
    pub persons: u64,
    /// Distinct items in the input.
    pub distinct_items: u64,
    /// Distinct items in the output.
    pub released_items: u64,
    /// Item occurrences (person, item) in the input.
    pub item_occurrences: u64,
    /// Input items released as their WHO block, as `category → block`.
    pub generalized_to_block: Vec<String>,
    /// Input items released as their chapter, as `item → chapter`.
    pub generalized_to_chapter: Vec<String>,
    /// Item occurrences removed by local suppression.
    pub items_suppressed: u64,
    /// Persons who lost at least one item.
    pub persons_with_suppression: u64,
    /// Mean normalized certainty penalty over the input's item occurrences (0: nothing
    /// changed, 1: everything removed).
    pub loss: f64,
}

/// Applies the k^m rule to diagnosis sets given as `;`-joined items (empty: no items), in
/// place; each set is rewritten sorted. Items are ICD-10 3-character categories, blocks
/// (`E10-E14`) or chapters (`IV E00-E90`); any other item can only be kept or removed.
pub fn protect_diagnosis_sets(
    sets: &mut [String],
    options: &DiagnosisSetOptions,
) -> Result<DiagnosisSetReport, DeidentifyError> {
    protect_diagnosis_sets_with_plan(sets, options).map(|(report, _)| report)
}

/// [`protect_diagnosis_sets`], also returning, per set (in the order of `sets`), how each of
/// its input items is released: the decisions other tables of the release must follow so a
/// join on the person cannot read back what the rule removed.
pub fn protect_diagnosis_sets_with_plan(
    sets: &mut [String],
    options: &DiagnosisSetOptions,
) -> Result<(DiagnosisSetReport, Vec<PersonDiagnosisPlan>), DeidentifyError> {
    let input: Vec<Vec<&str>> = sets
        .iter()
        .map(|s| {
            s.split(SEPARATOR)
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .collect()
        })
        .collect();
    let mut plan = DiagnosisSetPlan::new(&input, options)?;
    let released: Vec<String> = (0..input.len())
        .map(|person| plan.released_set(person).join(";"))
        .collect();
    let plans: Vec<PersonDiagnosisPlan> = (0..input.len())
        .map(|person| plan.person_plan(person))
        .collect();
    for (set, new) in sets.iter_mut().zip(released) {
        *set = new;
    }
    Ok((std::mem::take(&mut plan.report), plans))
}

/// How one person's diagnosis items are released: each input item (a category, or a block
/// or chapter given as input) maps to the item it is released as (itself, its WHO block or
/// its chapter), or to `None` when the rule suppressed it for this person.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonDiagnosisPlan {
    items: BTreeMap<String, Option<String>>,
}

impl PersonDiagnosisPlan {
    /// A plan releasing every item as given.
    pub fn unchanged<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Self {
        Self {
            items: items
                .into_iter()
                .map(|item| {
                    let item = item.as_ref().trim().to_owned();
                    (item.clone(), Some(item))
                })
                .filter(|(item, _)| !item.is_empty())
                .collect(),
        }
    }

    /// A plan from `(input item, released item or None when suppressed)` pairs.
    pub(crate) fn from_items(items: impl IntoIterator<Item = (String, Option<String>)>) -> Self {
        Self {
            items: items.into_iter().collect(),
        }
    }

    /// How `item` is released: `None` when it is not an input item of the person,
    /// `Some(None)` when suppressed, `Some(Some(released))` otherwise.
    pub fn released(&self, item: &str) -> Option<Option<&str>> {
        self.items.get(item).map(Option::as_deref)
    }

    /// Every input item and how it is released, in item order.
    pub fn items(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.items.iter().map(|(k, v)| (k.as_str(), v.as_deref()))
    }

    /// The released set: distinct released items, sorted.
    pub fn released_set(&self) -> Vec<&str> {
        let set: std::collections::BTreeSet<&str> =
            self.items.values().filter_map(|v| v.as_deref()).collect();
        set.into_iter().collect()
    }

    /// This plan followed by `later`, a plan made over this plan's released items: an item
    /// suppressed by either, or released as something `later` does not know, is suppressed.
    pub fn then(&self, later: &PersonDiagnosisPlan) -> PersonDiagnosisPlan {
        Self {
            items: self
                .items
                .iter()
                .map(|(item, released)| {
                    let last = released
                        .as_deref()
                        .and_then(|r| later.released(r).flatten())
                        .map(str::to_owned);
                    (item.clone(), last)
                })
                .collect(),
        }
    }
}

/// The diagnosis-set plans of a release, per person pseudonym (the `person` column): what
/// the conditions table must follow to agree with `persons.csv`. A person absent from it is
/// withheld (e.g. their row was suppressed from the person table).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DiagnosisRecoding {
    persons: HashMap<String, PersonDiagnosisPlan>,
}

impl std::fmt::Debug for DiagnosisRecoding {
    // Counts only: the plans are per-person release data.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiagnosisRecoding")
            .field("persons", &self.persons.len())
            .finish_non_exhaustive()
    }
}

impl DiagnosisRecoding {
    /// An empty recoding (every person withheld).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the plan of a person.
    pub fn insert(&mut self, person: impl Into<String>, plan: PersonDiagnosisPlan) {
        self.persons.insert(person.into(), plan);
    }

    /// The plan of a person; `None` when the person is withheld.
    pub fn person(&self, person: &str) -> Option<&PersonDiagnosisPlan> {
        self.persons.get(person)
    }

    /// Persons with a plan.
    pub fn len(&self) -> usize {
        self.persons.len()
    }

    /// Whether no person has a plan.
    pub fn is_empty(&self) -> bool {
        self.persons.is_empty()
    }

    /// Every person and plan, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &PersonDiagnosisPlan)> {
        self.persons.iter().map(|(p, plan)| (p.as_str(), plan))
    }

    /// This recoding followed by `later` (made over this one's released sets, e.g. by
    /// [`crate::ReleasedPersonTable::protect_diagnoses_with_plan`]): persons `later` lacks are
    /// withheld.
    pub fn then(&self, later: &DiagnosisRecoding) -> DiagnosisRecoding {
        Self {
            persons: self
                .persons
                .iter()
                .filter_map(|(person, plan)| {
                    later
                        .person(person)
                        .map(|next| (person.clone(), plan.then(next)))
                })
                .collect(),
        }
    }
}

/// Whether a released diagnosis item covers a 3-character category: the category itself, or
/// the ICD-10 block (`E10-E14`) or chapter (`IV E00-E90`) holding it.
pub fn diagnosis_covers(released: &str, category: &str) -> bool {
    let released = released.trim();
    if released == category {
        return true;
    }
    match node_kind(released) {
        NodeKind::Block(first, last) | NodeKind::Chapter(first, last) => {
            is_category(category) && first <= category && category <= last
        }
        NodeKind::Category | NodeKind::Other => false,
    }
}

/// The shape of an item or hierarchy node label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeKind<'a> {
    Category,
    /// A block `E10-E14`: first and last category.
    Block(&'a str, &'a str),
    /// A chapter `IV E00-E90`: first and last category.
    Chapter(&'a str, &'a str),
    Other,
}

fn is_category(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.len() == 3
        && bytes[0].is_ascii_uppercase()
        && bytes[1].is_ascii_digit()
        && bytes[2].is_ascii_digit()
}

fn category_range(value: &str) -> Option<(&str, &str)> {
    let (first, last) = value.split_once('-')?;
    (is_category(first) && is_category(last) && first <= last).then_some((first, last))
}

fn node_kind(value: &str) -> NodeKind<'_> {
    if is_category(value) {
        return NodeKind::Category;
    }
    if let Some((first, last)) = category_range(value) {
        return NodeKind::Block(first, last);
    }
    if let Some((numeral, range)) = value.split_once(' ')
        && !numeral.is_empty()
        && numeral.chars().all(|c| matches!(c, 'I' | 'V' | 'X'))
        && let Some((first, last)) = category_range(range)
    {
        return NodeKind::Chapter(first, last);
    }
    NodeKind::Other
}

/// Block and chapter of a category, through the ICD-10 hierarchy of `kiban-anonymize`
/// (a category outside every block has its chapter only; outside every chapter, neither).
fn icd10_ancestors(category: &str) -> Vec<String> {
    let spec = |levels: Vec<Icd10Level>| HierarchySpec::Icd10Levels(Icd10Spec { levels });
    let labels = |levels: Vec<Icd10Level>| -> Option<Vec<String>> {
        let count = levels.len();
        let hierarchy = Hierarchy::build("diagnoses", &spec(levels), [category]).ok()?;
        let leaf = hierarchy.leaf_code(category)?;
        Some(
            (1..=count)
                .map(|level| {
                    hierarchy
                        .label(level, hierarchy.generalize(leaf, level))
                        .to_owned()
                })
                .collect(),
        )
    };
    labels(vec![Icd10Level::Block, Icd10Level::Chapter])
        .or_else(|| labels(vec![Icd10Level::Chapter]))
        .unwrap_or_default()
}

/// One node of the item hierarchy: an input item, a block or a chapter.
struct Node {
    label: String,
    parent: Option<usize>,
    /// Distinct input items under (or at) the node.
    items_below: usize,
    /// Whether the node is an input item (kept as given: no loss).
    is_input: bool,
    /// Whether the item is fixed: released as given, never generalized nor suppressed (the
    /// diagnosis items of a combined item set, which `persons.csv` already releases).
    fixed: bool,
}

/// Combination of at most [`MAX_KNOWN_DIAGNOSES`] node ids, sorted, padded with `NONE`.
type Combination = [u32; MAX_KNOWN_DIAGNOSES];
const NONE: u32 = u32::MAX;

/// The decisions of the k^m rule over a list of item sets.
pub(crate) struct DiagnosisSetPlan {
    nodes: Vec<Node>,
    /// Per person: the input items (node ids of input items).
    sets: Vec<Vec<u32>>,
    /// Per input item: the node it is released as.
    released: Vec<u32>,
    /// Per person: released nodes removed by local suppression.
    suppressed: Vec<Vec<u32>>,
    /// Rare combinations made of fixed items only, which the rule cannot repair (counted
    /// at the end).
    unrepairable: u64,
    report: DiagnosisSetReport,
}

impl DiagnosisSetPlan {
    /// Plans the rule over `sets` (one list of items per person).
    pub(crate) fn new<S: AsRef<str>>(
        sets: &[Vec<S>],
        options: &DiagnosisSetOptions,
    ) -> Result<Self, DeidentifyError> {
        Self::new_with_fixed(sets, options, |_| false)
    }

    /// [`DiagnosisSetPlan::new`], with the items `fixed` selects released as given: they
    /// count in every combination but are never generalized nor suppressed, so a rare
    /// combination is repaired through its other items only.
    pub(crate) fn new_with_fixed<S: AsRef<str>>(
        sets: &[Vec<S>],
        options: &DiagnosisSetOptions,
        fixed: impl Fn(&str) -> bool,
    ) -> Result<Self, DeidentifyError> {
        options.validate()?;
        let mut nodes: Vec<Node> = Vec::new();
        let mut index: HashMap<String, u32> = HashMap::new();
        let mut interned: Vec<Vec<u32>> = Vec::with_capacity(sets.len());
        for set in sets {
            let mut ids: Vec<u32> = set
                .iter()
                .map(|item| {
                    let item = item.as_ref();
                    *index.entry(item.to_owned()).or_insert_with(|| {
                        nodes.push(Node {
                            label: item.to_owned(),
                            parent: None,
                            items_below: 1,
                            is_input: true,
                            fixed: fixed(item),
                        });
                        (nodes.len() - 1) as u32
                    })
                })
                .collect();
            ids.sort_unstable();
            ids.dedup();
            interned.push(ids);
        }
        let inputs = nodes.len();
        // Parents: a category's block and chapter, a block's chapter; the coarser item of a
        // kind-prefixed item (`crate::clinical_items`). Fixed items have none.
        for item in 0..inputs {
            if nodes[item].fixed {
                continue;
            }
            let label = nodes[item].label.clone();
            let chain: Vec<String> = match crate::clinical_items::coarser_item(&label) {
                Some(coarser) => coarser.into_iter().collect(),
                None => match node_kind(&label) {
                    NodeKind::Category => icd10_ancestors(&label),
                    NodeKind::Block(first, _) => icd10_ancestors(first)
                        .into_iter()
                        .filter(|a| matches!(node_kind(a), NodeKind::Chapter(..)))
                        .collect(),
                    NodeKind::Chapter(..) | NodeKind::Other => Vec::new(),
                },
            };
            let mut child = item;
            for ancestor in chain {
                let id = *index.entry(ancestor.clone()).or_insert_with(|| {
                    nodes.push(Node {
                        label: ancestor,
                        parent: None,
                        items_below: 0,
                        is_input: false,
                        fixed: false,
                    });
                    (nodes.len() - 1) as u32
                }) as usize;
                if id == child {
                    continue;
                }
                nodes[child].parent = Some(id);
                child = id;
            }
        }
        for item in 0..inputs {
            let mut at = nodes[item].parent;
            while let Some(node) = at {
                nodes[node].items_below += 1;
                at = nodes[node].parent;
            }
        }
        // Occurrences the rule may change: fixed items are not counted.
        let occurrences: u64 = interned
            .iter()
            .flatten()
            .filter(|&&item| !nodes[item as usize].fixed)
            .count() as u64;
        let distinct = nodes[..inputs].iter().filter(|n| !n.fixed).count();
        let mut plan = Self {
            released: (0..inputs as u32).collect(),
            suppressed: vec![Vec::new(); interned.len()],
            unrepairable: 0,
            sets: interned,
            nodes,
            report: DiagnosisSetReport {
                rule: format!(
                    "k^m-anonymity of the diagnosis set (Terrovitis et al. 2008): every \
                     combination of at most {m} released items is held by at least {k} persons; \
                     Apriori-based global generalization up the ICD-10 hierarchy (3-character \
                     category → WHO block → chapter) where cheaper than suppression, then local \
                     suppression of the least common item of each remaining rare combination; \
                     loss = mean normalized certainty penalty",
                    m = options.m,
                    k = options.k
                ),
                k: options.k,
                m: options.m,
                persons: sets.len() as u64,
                distinct_items: distinct as u64,
                item_occurrences: occurrences,
                ..DiagnosisSetReport::default()
            },
        };
        plan.generalize(options);
        plan.suppress(options);
        plan.finish_report();
        Ok(plan)
    }

    /// Items held by each input item's holders (persons), in person order.
    fn holders(&self) -> Vec<Vec<u32>> {
        let mut holders = vec![Vec::new(); self.released.len()];
        for (person, set) in self.sets.iter().enumerate() {
            for &item in set {
                holders[item as usize].push(person as u32);
            }
        }
        holders
    }

    /// The released nodes of a person, sorted, without suppressed ones.
    fn released_nodes(&self, person: usize) -> Vec<u32> {
        let mut nodes: Vec<u32> = self.sets[person]
            .iter()
            .map(|&item| self.released[item as usize])
            .filter(|node| !self.suppressed[person].contains(node))
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }

    /// The released set of a person: labels sorted.
    pub(crate) fn released_set(&self, person: usize) -> Vec<&str> {
        let mut labels: Vec<&str> = self
            .released_nodes(person)
            .into_iter()
            .map(|node| self.nodes[node as usize].label.as_str())
            .collect();
        labels.sort_unstable();
        labels
    }

    /// Rare combinations of fixed items only, left as they were (none when the fixed items
    /// already satisfy the rule among these persons).
    pub(crate) fn unrepairable_combinations(&self) -> u64 {
        self.unrepairable
    }

    /// The report of the rule.
    pub(crate) fn report(&self) -> &DiagnosisSetReport {
        &self.report
    }

    /// Input items released as a coarser node, as `(item, node)`, in item order.
    pub(crate) fn generalizations(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .released
            .iter()
            .enumerate()
            .filter(|&(item, &node)| node as usize != item)
            .map(|(item, &node)| {
                (
                    self.nodes[item].label.clone(),
                    self.nodes[node as usize].label.clone(),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// How each input item of a person is released.
    pub(crate) fn person_plan(&self, person: usize) -> PersonDiagnosisPlan {
        PersonDiagnosisPlan {
            items: self.sets[person]
                .iter()
                .map(|&item| {
                    let node = self.released[item as usize];
                    let released = (!self.suppressed[person].contains(&node))
                        .then(|| self.nodes[node as usize].label.clone());
                    (self.nodes[item as usize].label.clone(), released)
                })
                .collect(),
        }
    }

    /// Counts of the released combinations of exactly `size` items.
    fn count(&self, size: usize) -> HashMap<Combination, u32> {
        let mut counts: HashMap<Combination, u32> = HashMap::new();
        let mut combination = [NONE; MAX_KNOWN_DIAGNOSES];
        for person in 0..self.sets.len() {
            let nodes = self.released_nodes(person);
            for_each_combination(&nodes, size, &mut combination, 0, 0, &mut |c| {
                *counts.entry(*c).or_default() += 1;
            });
        }
        counts
    }

    /// Normalized certainty penalty of releasing as `node`.
    fn penalty(&self, node: u32) -> f64 {
        let node = &self.nodes[node as usize];
        if node.is_input {
            0.0
        } else {
            node.items_below as f64 / self.released.len().max(1) as f64
        }
    }

    fn ancestors(&self, node: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let mut at = self.nodes[node as usize].parent;
        while let Some(n) = at {
            out.push(n as u32);
            at = self.nodes[n].parent;
        }
        out
    }

    /// Whether `node` lies under (or is) `ancestor`.
    fn is_under(&self, node: u32, ancestor: u32) -> bool {
        node == ancestor || self.ancestors(node).contains(&ancestor)
    }

    /// Global generalization, level by level (AA).
    fn generalize(&mut self, options: &DiagnosisSetOptions) {
        let holders = self.holders();
        for size in 1..=options.m {
            loop {
                let counts = self.count(size);
                let mut rare: Vec<(u32, Combination)> = counts
                    .into_iter()
                    .filter(|(_, n)| (*n as usize) < options.k)
                    .map(|(c, n)| (n, c))
                    .collect();
                rare.sort_unstable();
                let mut raised = false;
                let mut touched: Vec<u32> = Vec::new();
                for (support, combination) in rare {
                    let items: Vec<u32> =
                        combination.iter().copied().filter(|&n| n != NONE).collect();
                    // Counts are stale once a node under this combination moved.
                    if items
                        .iter()
                        .any(|&n| touched.iter().any(|&t| self.is_under(n, t)))
                    {
                        continue;
                    }
                    let suppression_loss = f64::from(support);
                    let mut best: Option<(f64, u32)> = None;
                    for &item in &items {
                        for ancestor in self.ancestors(item) {
                            let loss = self.raise_loss(ancestor, &holders);
                            if best.is_some_and(|(b, _)| b <= loss) || loss > suppression_loss {
                                continue;
                            }
                            let raised_items: Vec<u32> = items
                                .iter()
                                .map(|&n| if n == item { ancestor } else { n })
                                .collect();
                            if self.support_if_raised(&raised_items, ancestor, &holders)
                                >= options.k
                            {
                                best = Some((loss, ancestor));
                            }
                        }
                    }
                    if let Some((_, ancestor)) = best {
                        self.raise(ancestor);
                        touched.push(ancestor);
                        raised = true;
                    }
                }
                if !raised {
                    break;
                }
            }
        }
    }

    /// Loss added by releasing every input item under `ancestor` as it.
    fn raise_loss(&self, ancestor: u32, holders: &[Vec<u32>]) -> f64 {
        let target = self.penalty(ancestor);
        (0..self.released.len())
            .filter(|&item| self.is_under(self.released[item], ancestor))
            .map(|item| holders[item].len() as f64 * (target - self.penalty(self.released[item])))
            .sum()
    }

    /// Persons holding every node of `items` were `ancestor` released for all below it.
    fn support_if_raised(&self, items: &[u32], ancestor: u32, holders: &[Vec<u32>]) -> usize {
        let map = |item: usize| {
            let node = self.released[item];
            if self.is_under(node, ancestor) {
                ancestor
            } else {
                node
            }
        };
        // Candidates: the holders of the input items released as the first wanted node.
        let first = items[0];
        let mut candidates: Vec<u32> = (0..self.released.len())
            .filter(|&item| map(item) == first)
            .flat_map(|item| holders[item].iter().copied())
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        candidates
            .into_iter()
            .filter(|&person| {
                items.iter().all(|&wanted| {
                    self.sets[person as usize]
                        .iter()
                        .any(|&item| map(item as usize) == wanted)
                })
            })
            .count()
    }

    fn raise(&mut self, ancestor: u32) {
        for item in 0..self.released.len() {
            if self.is_under(self.released[item], ancestor) {
                self.released[item] = ancestor;
            }
        }
    }

    /// Local suppression until every combination of at most m items is common.
    fn suppress(&mut self, options: &DiagnosisSetOptions) {
        loop {
            let singles = self.count(1);
            let mut rare: Vec<(usize, u32, Combination)> = Vec::new();
            for size in 1..=options.m {
                let counts = if size == 1 {
                    singles.clone()
                } else {
                    self.count(size)
                };
                rare.extend(
                    counts
                        .into_iter()
                        .filter(|(_, n)| (*n as usize) < options.k)
                        .map(|(c, n)| (size, n, c)),
                );
            }
            // A combination of fixed items only cannot be repaired here: counted, left.
            let (repairable, unrepairable): (Vec<_>, Vec<_>) =
                rare.into_iter().partition(|(_, _, combination)| {
                    combination
                        .iter()
                        .any(|&n| n != NONE && !self.nodes[n as usize].fixed)
                });
            self.unrepairable = unrepairable.len() as u64;
            let mut rare = repairable;
            if rare.is_empty() {
                return;
            }
            rare.sort_unstable();
            for (_, _, combination) in rare {
                let items: Vec<u32> = combination.iter().copied().filter(|&n| n != NONE).collect();
                // The least common item goes: it is the likeliest to be rare elsewhere too.
                let Some(&victim) = items
                    .iter()
                    .filter(|&&n| !self.nodes[n as usize].fixed)
                    .min_by_key(|&&n| {
                        let mut key = [NONE; MAX_KNOWN_DIAGNOSES];
                        key[0] = n;
                        (singles.get(&key).copied().unwrap_or(0), n)
                    })
                else {
                    continue;
                };
                for person in 0..self.sets.len() {
                    let nodes = self.released_nodes(person);
                    if items.iter().all(|n| nodes.binary_search(n).is_ok()) {
                        self.suppressed[person].push(victim);
                    }
                }
            }
        }
    }

    fn finish_report(&mut self) {
        let mut to_block = BTreeMap::new();
        let mut to_chapter = BTreeMap::new();
        for (item, &node) in self.released.iter().enumerate() {
            if node as usize == item {
                continue;
            }
            let from = self.nodes[item].label.clone();
            let to = self.nodes[node as usize].label.clone();
            match node_kind(&to) {
                NodeKind::Block(..) => to_block.insert(from, to),
                _ => to_chapter.insert(from, to),
            };
        }
        let rule = |(from, to): (String, String)| format!("{from} → {to}");
        self.report.generalized_to_block = to_block.into_iter().map(rule).collect();
        self.report.generalized_to_chapter = to_chapter.into_iter().map(rule).collect();
        let mut loss = 0.0;
        let mut released = std::collections::BTreeSet::new();
        for person in 0..self.sets.len() {
            let suppressed = &self.suppressed[person];
            if !suppressed.is_empty() {
                self.report.persons_with_suppression += 1;
            }
            for &item in &self.sets[person] {
                if self.nodes[item as usize].fixed {
                    continue;
                }
                let node = self.released[item as usize];
                if suppressed.contains(&node) {
                    self.report.items_suppressed += 1;
                    loss += 1.0;
                } else {
                    loss += self.penalty(node);
                    released.insert(node);
                }
            }
        }
        self.report.released_items = released.len() as u64;
        self.report.loss = if self.report.item_occurrences == 0 {
            0.0
        } else {
            loss / self.report.item_occurrences as f64
        };
    }
}

/// Calls `f` with every combination of `size` elements of the sorted `nodes`.
fn for_each_combination(
    nodes: &[u32],
    size: usize,
    combination: &mut Combination,
    depth: usize,
    start: usize,
    f: &mut impl FnMut(&Combination),
) {
    if depth == size {
        f(combination);
        return;
    }
    for at in start..nodes.len() {
        if nodes.len() - at < size - depth {
            break;
        }
        combination[depth] = nodes[at];
        for_each_combination(nodes, size, combination, depth + 1, at + 1, f);
    }
    combination[depth] = NONE;
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Support of every released combination of at most m items, recomputed naively.
    fn min_support(sets: &[String], m: usize) -> usize {
        min_support_of(
            sets.iter()
                .map(|set| set.split(';').filter(|s| !s.is_empty()).collect()),
            m,
        )
    }

    /// The smallest number of sets holding a combination of at most m of their items (each
    /// set's items taken once), counted naively over every combination.
    pub(crate) fn min_support_of<'a>(
        sets: impl IntoIterator<Item = Vec<&'a str>>,
        m: usize,
    ) -> usize {
        let mut counts: BTreeMap<Vec<&str>, usize> = BTreeMap::new();
        for mut items in sets {
            items.sort_unstable();
            items.dedup();
            let n = items.len();
            for mask in 1u32..(1 << n) {
                if mask.count_ones() as usize <= m {
                    let subset: Vec<&str> = (0..n)
                        .filter(|i| mask & (1 << i) != 0)
                        .map(|i| items[i])
                        .collect();
                    *counts.entry(subset).or_default() += 1;
                }
            }
        }
        counts.values().copied().min().unwrap_or(usize::MAX)
    }

    #[test]
    fn covers_blocks_and_chapters() {
        assert!(diagnosis_covers("E11", "E11"));
        assert!(diagnosis_covers("E10-E14", "E11"));
        assert!(!diagnosis_covers("E10-E14", "E15"));
        assert!(diagnosis_covers("IV E00-E90", "E11"));
        assert!(!diagnosis_covers("IV E00-E90", "I10"));
        assert!(!diagnosis_covers("E12", "E11"));
        assert_eq!(
            icd10_ancestors("E11"),
            vec!["E10-E14".to_owned(), "IV E00-E90".to_owned()]
        );
        assert_eq!(icd10_ancestors("C27"), vec!["II C00-D48".to_owned()]);
    }

    #[test]
    fn a_rare_pair_is_generalized_to_its_block_when_siblings_make_it_common() {
        // E10 and E11 are common alone; the pair (E10, I10) is held by two persons only, and
        // raising E10 to E10-E14 makes (E10-E14, I10) common at less loss than removing two
        // items (the block covers 2 of 33 distinct items: 13 occurrences × 2/33).
        let mut sets: Vec<String> = Vec::new();
        sets.extend(std::iter::repeat_n("E11;I10".to_owned(), 6));
        sets.extend(std::iter::repeat_n("E10".to_owned(), 5));
        sets.extend(std::iter::repeat_n("E10;I10".to_owned(), 2));
        sets.extend(std::iter::repeat_n("I10".to_owned(), 5));
        for filler in 10..40 {
            sets.extend(std::iter::repeat_n(format!("M{filler}"), 5));
        }
        let options = DiagnosisSetOptions { k: 5, m: 2 };
        let report = protect_diagnosis_sets(&mut sets, &options).unwrap();
        assert!(min_support(&sets, 2) >= 5, "{sets:?}");
        assert_eq!(report.items_suppressed, 0);
        assert!(
            report
                .generalized_to_block
                .iter()
                .any(|r| r.starts_with("E1") && r.ends_with("E10-E14"))
        );
        assert!(report.loss > 0.0 && report.loss < 1.0);
        assert!(
            sets.iter()
                .all(|s| !s.contains("E10;") && !s.contains("E11"))
        );
    }

    #[test]
    fn rare_combinations_without_a_cheap_generalization_are_suppressed() {
        // A-chapter and J-chapter items never share a block: the rare pair is suppressed.
        let mut sets: Vec<String> = Vec::new();
        sets.extend(std::iter::repeat_n("J45".to_owned(), 20));
        sets.extend(std::iter::repeat_n("A09".to_owned(), 20));
        sets.push("A09;J45".to_owned());
        let options = DiagnosisSetOptions { k: 5, m: 2 };
        let report = protect_diagnosis_sets(&mut sets, &options).unwrap();
        assert!(min_support(&sets, 2) >= 5, "{sets:?}");
        assert_eq!(report.items_suppressed, 1);
        assert_eq!(report.persons_with_suppression, 1);
        assert!(report.generalized_to_block.is_empty());
        assert!(report.generalized_to_chapter.is_empty());
    }

    #[test]
    fn random_sets_end_k_m_anonymous_for_each_m() {
        use rand::{RngExt, SeedableRng};
        let categories = [
            "E10", "E11", "E14", "E78", "I10", "I11", "I20", "I21", "J45", "J44", "K21", "K29",
            "M54", "N18", "C50", "C27", "F32", "G47", "XYZ",
        ];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let original: Vec<String> = (0..300)
            .map(|_| {
                let n = rng.random_range(0..6);
                let mut set: Vec<&str> = (0..n)
                    .map(|_| categories[rng.random_range(0..categories.len())])
                    .collect();
                set.sort_unstable();
                set.dedup();
                set.join(";")
            })
            .collect();
        for m in 1..=3 {
            let mut sets = original.clone();
            let options = DiagnosisSetOptions { k: 5, m };
            let report = protect_diagnosis_sets(&mut sets, &options).unwrap();
            assert!(min_support(&sets, m) >= 5, "m={m}");
            assert_eq!(report.persons, 300);
            // Applying the rule again changes nothing.
            let mut again = sets.clone();
            let (second, plans) = protect_diagnosis_sets_with_plan(&mut again, &options).unwrap();
            assert_eq!(again, sets);
            assert_eq!(second.items_suppressed, 0);
            assert!(
                plans
                    .iter()
                    .zip(&sets)
                    .all(|(p, s)| p.released_set().join(";") == *s)
            );
        }
    }

    #[test]
    fn each_persons_plan_gives_its_released_set_and_plans_compose() {
        let mut sets: Vec<String> = Vec::new();
        sets.extend(std::iter::repeat_n("E11;I10".to_owned(), 6));
        sets.extend(std::iter::repeat_n("E10".to_owned(), 5));
        sets.extend(std::iter::repeat_n("E10;I10".to_owned(), 2));
        sets.extend(std::iter::repeat_n("J45".to_owned(), 20));
        sets.push("A09;J45".to_owned());
        sets.extend(std::iter::repeat_n("A09".to_owned(), 20));
        let input = sets.clone();
        let options = DiagnosisSetOptions { k: 5, m: 2 };
        let (_, plans) = protect_diagnosis_sets_with_plan(&mut sets, &options).unwrap();
        for ((plan, released), given) in plans.iter().zip(&sets).zip(&input) {
            assert_eq!(plan.released_set().join(";"), *released);
            let items: Vec<&str> = plan.items().map(|(item, _)| item).collect();
            assert_eq!(items.join(";"), *given);
            for (item, to) in plan.items() {
                if let Some(to) = to {
                    assert!(to == item || diagnosis_covers(to, item), "{item} → {to}");
                }
            }
        }
        // The A09;J45 person lost one item.
        let lone = &plans[33];
        assert_eq!(lone.items().filter(|(_, to)| to.is_none()).count(), 1);
        // Composition: a later plan suppressing what the first released suppresses the input.
        let first = PersonDiagnosisPlan::unchanged(["E10", "I10"]);
        let mut later_items = BTreeMap::new();
        later_items.insert("E10".to_owned(), Some("E10-E14".to_owned()));
        later_items.insert("I10".to_owned(), None);
        let later = PersonDiagnosisPlan { items: later_items };
        let both = first.then(&later);
        assert_eq!(both.released("E10"), Some(Some("E10-E14")));
        assert_eq!(both.released("I10"), Some(None));
        assert_eq!(both.released("J45"), None);
        let mut recoding = DiagnosisRecoding::new();
        recoding.insert("P1", first.clone());
        recoding.insert("P2", first);
        let mut later_recoding = DiagnosisRecoding::new();
        later_recoding.insert("P1", later);
        let composed = recoding.then(&later_recoding);
        assert_eq!(composed.len(), 1);
        assert!(composed.person("P2").is_none());
        assert!(!format!("{composed:?}").contains("P1"));
    }

    #[test]
    fn options_are_checked() {
        let mut sets = vec!["E11".to_owned()];
        for options in [
            DiagnosisSetOptions { k: 0, m: 2 },
            DiagnosisSetOptions { k: 5, m: 0 },
            DiagnosisSetOptions { k: 5, m: 5 },
        ] {
            assert!(protect_diagnosis_sets(&mut sets, &options).is_err());
        }
    }
}
