//! Local recoding by iterated global recoding, as ARX implements it (`ARXResult.optimizeIterative`
//! and `optimizeIterativeFast`; described in Prasser, Eicher, Spengler, Bild, Kuhn: "Flexible
//! data anonymization using ARX — Current status and challenges ahead", Software: Practice and
//! Experience 50(7), 2020). ARX's GUI sets the suppression limit to 1 − 1/n for n iterations;
//! here the configured limit is used in every iteration, so the release never suppresses more
//! than the global optimum does.
//!
//! After the optimal full-domain generalization is found, the records it suppresses are
//! anonymized again on their own: the same search (same privacy models, same suppression limit
//! relative to the records left, same metric) over the lattice, whose optimum for these records
//! is usually a coarser generalization. The records that this node releases are released with
//! it; the records it suppresses are anonymized again, and so on, until no record is left, an
//! iteration releases nothing new, no node satisfies the models, or the iteration limit is
//! reached. Each record is thus released with the level vector of the iteration that released
//! it, and the release is no longer a full-domain generalization.
//!
//! Why the models still hold: each iteration's released classes satisfy k-anonymity,
//! ℓ-diversity and t-closeness on their own (t against the whole data set's distribution).
//! Records of different iterations can end up with the same released labels (`90+` is the
//! label of several age levels); such classes merge, and a union of k-anonymous classes is
//! k-anonymous, of distinct- or entropy-ℓ-diverse classes ℓ-diverse (entropy is concave), of
//! t-close classes t-close (the EMD is convex in the class distribution). Every merged class
//! is nevertheless checked again; one that fails (possible with recursive (c,ℓ)-diversity) is
//! suppressed, and if that suppressed more records than the global optimum did, local
//! recoding is abandoned. A node at the top of every hierarchy releases only `*`, which is
//! what suppression releases: records it would release stay suppressed. k-map and
//! δ-presence are population-level models and are not combined with local recoding.

use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::engine::{Evaluation, FinestClasses};
use crate::error::{AnonymizeError, Result};
use crate::hierarchy::{Hierarchy, SUPPRESSED};
use crate::metric::{Metric, MetricTables};
use crate::privacy::PrivacyModels;
use crate::search::{Problem, SearchConfig, search};

/// Marks a finest class that stays suppressed in [`Recoding::class_node`].
pub(crate) const STAYS_SUPPRESSED: u32 = u32::MAX;

/// Which level vector releases each finest class.
#[derive(Debug, Clone)]
pub(crate) struct Recoding {
    /// Level vectors: the global optimum first, then one per iteration that released records.
    pub nodes: Vec<Vec<usize>>,
    /// Per finest class: index into `nodes`, or [`STAYS_SUPPRESSED`].
    pub class_node: Vec<u32>,
}

impl Recoding {
    /// The level vector of finest class `class` (the global one for a suppressed class,
    /// which is released as `*` anyway).
    pub fn levels(&self, class: usize) -> &[usize] {
        match self.class_node[class] {
            STAYS_SUPPRESSED => &self.nodes[0],
            node => &self.nodes[node as usize],
        }
    }
}

/// One iteration of local recoding, as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocalRecodingStep {
    /// The level vector found for the records still suppressed.
    pub levels: Vec<usize>,
    /// Records released with it instead of being suppressed.
    pub records_recoded: usize,
    /// Records still suppressed after it.
    pub records_left: usize,
}

/// What local recoding did, as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocalRecodingReport {
    /// The method, in words, with its reference.
    pub method: String,
    /// Records the global optimum suppresses.
    pub suppressed_by_global: usize,
    /// Records released by a coarser generalization instead of being suppressed.
    pub records_recoded: usize,
    /// Records suppressed in the release.
    pub suppressed_after: usize,
    /// The iterations that released records, in order.
    pub steps: Vec<LocalRecodingStep>,
    /// Why the iterations stopped.
    pub stopped_because: String,
    /// Whether local recoding was abandoned (a merged class failed the models and more
    /// records than the global optimum's would have been suppressed); the release is then
    /// the global optimum's.
    pub abandoned: bool,
}

/// The method as written into the report.
pub const LOCAL_RECODING_METHOD: &str = "ARX-style local recoding by iterated global recoding \
(ARX's optimizeIterative; Prasser et al., Software: Practice and Experience 2020): the records suppressed by the \
optimum are anonymized again on their own with the same models, suppression limit and metric, \
and those released by that node keep its (coarser) generalization; repeated on the records \
still suppressed";

/// Everything local recoding needs.
pub(crate) struct LocalProblem<'a> {
    pub hierarchies: &'a [Hierarchy],
    pub classes: &'a FinestClasses,
    pub models: &'a PrivacyModels,
    pub metric: Metric,
    pub search: &'a SearchConfig,
}

/// Runs local recoding from the global optimum `global`; returns the recoding, the
/// evaluation of the release (groups = distinct released label tuples) and the report.
pub(crate) fn recode(
    problem: &LocalProblem<'_>,
    global: &Evaluation,
) -> Result<(Option<(Recoding, Evaluation)>, LocalRecodingReport)> {
    let LocalProblem {
        hierarchies,
        classes,
        models,
        metric,
        search: config,
    } = *problem;
    let mut class_node: Vec<u32> = global
        .class_group
        .iter()
        .map(|&g| {
            if global.kept[g as usize] {
                0
            } else {
                STAYS_SUPPRESSED
            }
        })
        .collect();
    let mut nodes = vec![global.levels.clone()];
    let mut steps = Vec::new();
    let top: Vec<usize> = hierarchies.iter().map(|h| h.height() - 1).collect();
    let mut stopped_because = "no record is suppressed".to_string();
    for iteration in 0.. {
        let remaining: Vec<u32> = (0..class_node.len() as u32)
            .filter(|&c| class_node[c as usize] == STAYS_SUPPRESSED)
            .collect();
        if remaining.is_empty() {
            stopped_because = "no record is suppressed".into();
            break;
        }
        if iteration >= config.max_local_recoding_iterations {
            stopped_because = "the iteration limit was reached".into();
            break;
        }
        let subset = classes.restricted(&remaining);
        if subset.records < models.k {
            stopped_because = "fewer records are left than k".into();
            break;
        }
        let tables = MetricTables::new(hierarchies, &subset);
        let sub_problem = Problem::new(
            hierarchies,
            &subset,
            models,
            metric,
            &tables,
            models.suppression_budget(subset.records),
        );
        let found = match search(&sub_problem, config) {
            Ok(found) => found.best,
            Err(AnonymizeError::NoSolution) => {
                stopped_because = "no generalization of the records left satisfies the models within the suppression limit".into();
                break;
            }
            Err(other) => return Err(other),
        };
        if found.levels == top {
            stopped_because =
                "only the most general node (all `*`) releases the records left".into();
            break;
        }
        let node = nodes.len() as u32;
        let mut recoded = 0usize;
        for (s, &c) in remaining.iter().enumerate() {
            if found.kept[found.class_group[s] as usize] {
                class_node[c as usize] = node;
                recoded += classes.sizes[c as usize] as usize;
            }
        }
        if recoded == 0 {
            stopped_because = "an iteration released no record".into();
            break;
        }
        let left = subset.records - recoded;
        nodes.push(found.levels.clone());
        steps.push(LocalRecodingStep {
            levels: found.levels,
            records_recoded: recoded,
            records_left: left,
        });
    }
    let recoding = Recoding { nodes, class_node };
    let release = released_groups(hierarchies, classes, models, &recoding, &global.levels);
    let abandoned = release.suppressed_records > global.suppressed_records;
    let suppressed_after = if abandoned {
        global.suppressed_records
    } else {
        release.suppressed_records
    };
    let report = LocalRecodingReport {
        method: LOCAL_RECODING_METHOD.to_string(),
        suppressed_by_global: global.suppressed_records,
        records_recoded: global.suppressed_records - suppressed_after,
        suppressed_after,
        steps,
        stopped_because,
        abandoned,
    };
    if abandoned {
        return Ok((None, report));
    }
    Ok((Some((recoding, release)), report))
}

/// The released classes: finest classes grouped by their released label strings (what a
/// reader of the release sees), checked against the models. Suppressed classes, and classes
/// released as `*` in every quasi-identifier, form the suppressed group.
fn released_groups(
    hierarchies: &[Hierarchy],
    classes: &FinestClasses,
    models: &PrivacyModels,
    recoding: &Recoding,
    global_levels: &[usize],
) -> Evaluation {
    let mut label_ids: Vec<FxHashMap<&str, u32>> = vec![FxHashMap::default(); hierarchies.len()];
    let mut index: FxHashMap<Box<[u32]>, u32> = FxHashMap::default();
    let mut class_group = Vec::with_capacity(classes.len());
    let mut first_class = Vec::new();
    let mut suppressed_group: Option<u32> = None;
    let mut key = vec![0u32; hierarchies.len()];
    for c in 0..classes.len() {
        let released = recoding.class_node[c] != STAYS_SUPPRESSED;
        let mut all_stars = true;
        if released {
            let levels = recoding.levels(c);
            for (j, h) in hierarchies.iter().enumerate() {
                let label = h.label(levels[j], h.generalize(classes.codes(c)[j], levels[j]));
                all_stars &= label == SUPPRESSED;
                let next = label_ids[j].len() as u32;
                key[j] = *label_ids[j].entry(label).or_insert(next);
            }
        }
        let group = if !released || all_stars {
            *suppressed_group.get_or_insert_with(|| {
                first_class.push(c as u32);
                first_class.len() as u32 - 1
            })
        } else {
            let next = first_class.len() as u32;
            let group = *index.entry(key.as_slice().into()).or_insert(next);
            if group == next {
                first_class.push(c as u32);
            }
            group
        };
        class_group.push(group);
    }
    let (sizes, mut kept) = classes.group_verdicts(&class_group, first_class.len(), models);
    if let Some(g) = suppressed_group {
        kept[g as usize] = false;
    }
    let suppressed_records = sizes
        .iter()
        .zip(&kept)
        .filter(|(_, k)| !**k)
        .map(|(&n, _)| n as usize)
        .sum();
    Evaluation {
        levels: global_levels.to_vec(),
        class_group,
        first_class,
        sizes,
        kept,
        suppressed_records,
    }
}
