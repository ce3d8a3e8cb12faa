//! Search over the generalization lattice (vectors of levels, one per quasi-identifier).
//!
//! * **Optimal** (lattices up to [`SearchConfig::max_optimal_nodes`]): every node is classified
//!   as acceptable or not with predictive tagging — an acceptable node makes all its
//!   generalizations acceptable, an unacceptable one makes all its specializations unacceptable —
//!   by Flash-style searches along upward paths: the lowest untagged node starts a path that is
//!   extended upwards through untagged nodes, then the path is cut by a k-ary search whose probes
//!   are evaluated in parallel. The metric is then minimized over the acceptable nodes (exactly,
//!   for level-only metrics; with lower-bound pruning and parallel evaluation for the others).
//! * **Heuristic** (larger lattices): greedy ascent from the bottom node, taking the best
//!   acceptable successor (or, if none, the successor suppressing the fewest records), then
//!   greedy descent to better acceptable specializations, all within a time limit. If the limit
//!   runs out before an acceptable node is reached, the top node is used.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::engine::{Evaluation, FinestClasses, GroupTable, Transitions};
use crate::error::{AnonymizeError, Result};
use crate::hierarchy::Hierarchy;
use crate::metric::{Metric, MetricTables};
use crate::privacy::PrivacyModels;

/// Search settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    /// Lattices with at most this many nodes are searched optimally; larger ones heuristically.
    #[serde(default = "default_max_optimal_nodes")]
    pub max_optimal_nodes: usize,
    /// Time limit of the heuristic search, in milliseconds.
    #[serde(default = "default_heuristic_time_limit_ms")]
    pub heuristic_time_limit_ms: u64,
    /// Local recoding: the records the optimum suppresses are anonymized again on their own,
    /// iteratively, and released with the coarser generalization found for them instead of
    /// being suppressed (ARX's iterated global recoding; see [`crate::LocalRecodingReport`]).
    /// Not with k-map or δ-presence.
    #[serde(default)]
    pub local_recoding: bool,
    /// Largest number of local-recoding iterations.
    #[serde(default = "default_max_local_recoding_iterations")]
    pub max_local_recoding_iterations: usize,
}

/// Default of [`SearchConfig::max_local_recoding_iterations`].
pub const DEFAULT_MAX_LOCAL_RECODING_ITERATIONS: usize = 100;

fn default_max_local_recoding_iterations() -> usize {
    DEFAULT_MAX_LOCAL_RECODING_ITERATIONS
}

fn default_max_optimal_nodes() -> usize {
    1_000_000
}

fn default_heuristic_time_limit_ms() -> u64 {
    30_000
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            max_optimal_nodes: default_max_optimal_nodes(),
            heuristic_time_limit_ms: default_heuristic_time_limit_ms(),
            local_recoding: false,
            max_local_recoding_iterations: DEFAULT_MAX_LOCAL_RECODING_ITERATIONS,
        }
    }
}

/// Which search produced the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchStrategy {
    /// Whole lattice classified; the result is the optimum.
    Optimal,
    /// Greedy search within a time limit; the result is acceptable but maybe not optimal.
    Heuristic,
    /// SafePub's private search (exponential mechanism); see [`crate::DifferentialPrivacy`].
    DifferentiallyPrivate,
}

/// Result of a search.
pub(crate) struct SearchOutcome {
    pub best: Evaluation,
    pub information_loss: f64,
    pub strategy: SearchStrategy,
    pub lattice_size: u128,
    pub nodes_checked: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tag {
    Unknown,
    Acceptable,
    Unacceptable,
}

/// Everything a search needs.
pub(crate) struct Problem<'a> {
    pub hierarchies: &'a [Hierarchy],
    pub classes: &'a FinestClasses,
    pub models: &'a PrivacyModels,
    pub metric: Metric,
    pub tables: &'a MetricTables,
    pub budget: usize,
    pub checked: AtomicUsize,
    /// The finest classes as a roll-up source.
    pub finest: GroupTable,
    /// Level-to-level maps for roll-ups.
    pub transitions: Transitions,
}

impl<'a> Problem<'a> {
    /// Prepares a search problem.
    pub fn new(
        hierarchies: &'a [Hierarchy],
        classes: &'a FinestClasses,
        models: &'a PrivacyModels,
        metric: Metric,
        tables: &'a MetricTables,
        budget: usize,
    ) -> Self {
        Problem {
            hierarchies,
            classes,
            models,
            metric,
            tables,
            budget,
            checked: AtomicUsize::new(0),
            finest: classes.as_table(),
            transitions: Transitions::new(hierarchies),
        }
    }
}

impl Problem<'_> {
    fn heights(&self) -> Vec<usize> {
        self.hierarchies.iter().map(Hierarchy::height).collect()
    }

    fn evaluate(&self, levels: &[usize]) -> Evaluation {
        self.checked.fetch_add(1, Ordering::Relaxed);
        self.classes.evaluate(self.hierarchies, levels, self.models)
    }

    /// Whether the node at `levels` satisfies the models within the suppression budget.
    fn check(&self, levels: &[usize]) -> bool {
        self.checked.fetch_add(1, Ordering::Relaxed);
        let table = self.finest.roll_up(&self.transitions, levels);
        let k_acceptable = table.records_below(self.models.k as u32) <= self.budget;
        if k_acceptable && self.models.needs_class_checks() {
            // ℓ-diversity / t-closeness / k-map can only add suppression: check them only when
            // k-anonymity alone is within the budget.
            let eval = self.classes.evaluate(self.hierarchies, levels, self.models);
            self.acceptable(&eval)
        } else {
            k_acceptable
        }
    }

    fn acceptable(&self, eval: &Evaluation) -> bool {
        eval.suppressed_records <= self.budget
    }

    fn value(&self, eval: &Evaluation) -> f64 {
        self.tables
            .value(self.metric, self.hierarchies, self.classes, eval)
    }
}

/// Runs the optimal or the heuristic search depending on the lattice size.
pub(crate) fn search(problem: &Problem<'_>, config: &SearchConfig) -> Result<SearchOutcome> {
    let heights = problem.heights();
    let lattice_size: u128 = heights.iter().map(|&h| h as u128).product();
    let top: Vec<usize> = heights.iter().map(|h| h - 1).collect();
    let top_eval = problem.evaluate(&top);
    if !problem.acceptable(&top_eval) {
        return Err(AnonymizeError::NoSolution);
    }
    let (best, information_loss, strategy) = if lattice_size <= config.max_optimal_nodes as u128 {
        let (best, loss) = if problem.models.is_monotone() {
            optimal(problem, &heights, lattice_size as usize)
        } else {
            exhaustive(problem, &heights, lattice_size as usize)
        };
        (best, loss, SearchStrategy::Optimal)
    } else {
        let deadline = Instant::now() + Duration::from_millis(config.heuristic_time_limit_ms);
        let (best, loss) = heuristic(problem, &heights, top_eval, deadline);
        (best, loss, SearchStrategy::Heuristic)
    };
    Ok(SearchOutcome {
        best,
        information_loss,
        strategy,
        lattice_size,
        nodes_checked: problem.checked.load(Ordering::Relaxed),
    })
}

struct Lattice {
    heights: Vec<usize>,
    strides: Vec<usize>,
}

impl Lattice {
    fn new(heights: &[usize]) -> Self {
        let mut strides = vec![1; heights.len()];
        for j in (0..heights.len().saturating_sub(1)).rev() {
            strides[j] = strides[j + 1] * heights[j + 1];
        }
        Lattice {
            heights: heights.to_vec(),
            strides,
        }
    }

    fn levels(&self, mut node: usize) -> Vec<usize> {
        self.strides
            .iter()
            .map(|&s| {
                let l = node / s;
                node %= s;
                l
            })
            .collect()
    }

    fn level(&self, node: usize, j: usize) -> usize {
        (node / self.strides[j]) % self.heights[j]
    }

    fn successors(&self, node: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.heights.len())
            .filter(move |&j| self.level(node, j) + 1 < self.heights[j])
            .map(move |j| node + self.strides[j])
    }

    /// Tags `node` and everything above (or below) it, stopping at nodes already tagged.
    fn tag_closure(&self, tags: &mut [Tag], node: usize, tag: Tag) {
        if tags[node] != Tag::Unknown {
            return;
        }
        tags[node] = tag;
        let mut stack = vec![node];
        while let Some(n) = stack.pop() {
            for j in 0..self.heights.len() {
                let level = self.level(n, j);
                let m = if tag == Tag::Acceptable {
                    if level + 1 >= self.heights[j] {
                        continue;
                    }
                    n + self.strides[j]
                } else {
                    if level == 0 {
                        continue;
                    }
                    n - self.strides[j]
                };
                if tags[m] == Tag::Unknown {
                    tags[m] = tag;
                    stack.push(m);
                }
            }
        }
    }
}

/// Classifies the nodes of an upward path from `start` (through untagged nodes accepted by
/// `within`, each step to the successor of smallest `rank`) by a parallel k-ary search, tagging
/// closures. Returns the probed nodes found acceptable.
fn classify_path(
    problem: &Problem<'_>,
    lattice: &Lattice,
    tags: &mut [Tag],
    start: usize,
    within: &dyn Fn(usize) -> bool,
    rank: &dyn Fn(usize) -> f64,
) -> Vec<usize> {
    let probes = rayon::current_num_threads().max(1);
    let mut path = vec![start];
    let mut current = start;
    while let Some(next) = lattice
        .successors(current)
        .filter(|&m| tags[m] == Tag::Unknown && within(m))
        .min_by(|&a, &b| rank(a).total_cmp(&rank(b)).then(a.cmp(&b)))
    {
        path.push(next);
        current = next;
    }
    let mut accepted = Vec::new();
    // Untagged nodes of the path form one contiguous run (monotonicity along the path).
    while let Some(lo) = path.iter().position(|&n| tags[n] == Tag::Unknown) {
        let hi = path
            .iter()
            .rposition(|&n| tags[n] == Tag::Unknown)
            .unwrap_or(lo);
        let span = hi - lo + 1;
        let count = probes.min(span);
        let mut points: Vec<usize> = (0..count)
            .map(|i| lo + (span * (i + 1)) / (count + 1))
            .map(|p| p.min(hi))
            .collect();
        points.dedup();
        points.retain(|&p| tags[path[p]] == Tag::Unknown);
        if points.is_empty() {
            points.push(lo);
        }
        let verdicts: Vec<(usize, bool)> = points
            .par_iter()
            .map(|&p| (p, problem.check(&lattice.levels(path[p]))))
            .collect();
        for (p, ok) in verdicts {
            let tag = if ok {
                accepted.push(path[p]);
                Tag::Acceptable
            } else {
                Tag::Unacceptable
            };
            lattice.tag_closure(tags, path[p], tag);
        }
    }
    accepted
}

/// Level-only monotone metrics: visit nodes by increasing metric; the first acceptable one is
/// the optimum. Paths only run through nodes cheaper than the best acceptable node found so far.
fn optimal_level_only(problem: &Problem<'_>, heights: &[usize], size: usize) -> (Evaluation, f64) {
    let lattice = Lattice::new(heights);
    let mut tags = vec![Tag::Unknown; size];
    let bounds: Vec<f64> = (0..size)
        .map(|n| {
            problem
                .tables
                .lower_bound(problem.metric, &lattice.levels(n), heights)
        })
        .collect();
    let heights_of: Vec<usize> = (0..size)
        .map(|n| lattice.levels(n).iter().sum::<usize>())
        .collect();
    let key = |n: usize| (bounds[n], heights_of[n], n);
    let before = |a: usize, b: usize| {
        let (ka, kb) = (key(a), key(b));
        ka.0.total_cmp(&kb.0)
            .then(ka.1.cmp(&kb.1))
            .then(ka.2.cmp(&kb.2))
            == std::cmp::Ordering::Less
    };
    let mut order: Vec<usize> = (0..size).collect();
    order.sort_by(|&a, &b| {
        let (ka, kb) = (key(a), key(b));
        ka.0.total_cmp(&kb.0)
            .then(ka.1.cmp(&kb.1))
            .then(ka.2.cmp(&kb.2))
    });
    // The top node is acceptable (checked by the caller).
    let mut best = size - 1;
    for &node in &order {
        if !before(node, best) {
            break;
        }
        if tags[node] == Tag::Unknown {
            let accepted = classify_path(problem, &lattice, &mut tags, node, &|_| true, &|m| {
                bounds[m]
            });
            for a in accepted {
                if before(a, best) {
                    best = a;
                }
            }
        }
        if tags[node] == Tag::Acceptable {
            best = node;
            break;
        }
    }
    let eval = problem.evaluate(&lattice.levels(best));
    let value = problem.value(&eval);
    (eval, value)
}

/// Class-dependent metrics: visit nodes by increasing lower bound, classify them lazily, and
/// evaluate acceptable ones (in parallel batches) until the bound exceeds the best value found.
fn optimal(problem: &Problem<'_>, heights: &[usize], size: usize) -> (Evaluation, f64) {
    if problem.metric.level_only() {
        return optimal_level_only(problem, heights, size);
    }
    let lattice = Lattice::new(heights);
    let mut tags = vec![Tag::Unknown; size];
    let bounds: Vec<f64> = (0..size)
        .map(|n| {
            problem
                .tables
                .lower_bound(problem.metric, &lattice.levels(n), heights)
        })
        .collect();
    let heights_of: Vec<usize> = (0..size)
        .map(|n| lattice.levels(n).iter().sum::<usize>())
        .collect();
    let mut order: Vec<usize> = (0..size).collect();
    order.sort_by(|&a, &b| {
        bounds[a]
            .total_cmp(&bounds[b])
            .then(heights_of[a].cmp(&heights_of[b]))
            .then(a.cmp(&b))
    });
    type Best = Option<((f64, usize, usize), Evaluation)>;
    let better = |a: (f64, usize, usize), b: (f64, usize, usize)| {
        a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)) == std::cmp::Ordering::Less
    };
    let flush = |pending: &mut Vec<usize>, best: &mut Best| {
        let evaluated: Vec<((f64, usize, usize), Evaluation)> = pending
            .par_iter()
            .map(|&n| {
                let eval = problem.evaluate(&lattice.levels(n));
                ((problem.value(&eval), heights_of[n], n), eval)
            })
            .collect();
        pending.clear();
        for (k, eval) in evaluated {
            if best.as_ref().is_none_or(|(b, _)| better(k, *b)) {
                *best = Some((k, eval));
            }
        }
    };
    let batch = 4 * rayon::current_num_threads().max(1);
    let mut best: Best = None;
    let mut pending = Vec::with_capacity(batch);
    for &node in &order {
        if let Some((b, _)) = &best
            && bounds[node] > b.0
        {
            break;
        }
        if tags[node] == Tag::Unknown {
            classify_path(problem, &lattice, &mut tags, node, &|_| true, &|m| {
                bounds[m]
            });
        }
        if tags[node] == Tag::Acceptable {
            pending.push(node);
            if pending.len() >= batch {
                flush(&mut pending, &mut best);
            }
        }
    }
    flush(&mut pending, &mut best);
    match best {
        Some((k, eval)) => (eval, k.0),
        None => {
            // Unreachable in practice: the top node is acceptable (checked by the caller).
            let eval = problem.evaluate(&lattice.levels(size - 1));
            let value = problem.value(&eval);
            (eval, value)
        }
    }
}

/// Non-monotone privacy models: every node is evaluated (in parallel); the optimum is the
/// acceptable node of least metric (then least height, then index).
fn exhaustive(problem: &Problem<'_>, heights: &[usize], size: usize) -> (Evaluation, f64) {
    let lattice = Lattice::new(heights);
    let best = (0..size)
        .into_par_iter()
        .filter_map(|n| {
            let levels = lattice.levels(n);
            // k-anonymity alone over the budget rules the node out without a full evaluation.
            let table = problem.finest.roll_up(&problem.transitions, &levels);
            if table.records_below(problem.models.k as u32) > problem.budget {
                return None;
            }
            let eval = problem.evaluate(&levels);
            problem
                .acceptable(&eval)
                .then(|| (problem.value(&eval), levels.iter().sum::<usize>(), n))
        })
        .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    // The top node is acceptable (checked by the caller), so `best` exists.
    let node = best.map_or(size - 1, |b| b.2);
    let eval = problem.evaluate(&lattice.levels(node));
    let value = problem.value(&eval);
    (eval, value)
}

fn heuristic(
    problem: &Problem<'_>,
    heights: &[usize],
    top: Evaluation,
    deadline: Instant,
) -> (Evaluation, f64) {
    let neighbours = |levels: &[usize], up: bool| -> Vec<Vec<usize>> {
        (0..levels.len())
            .filter(|&j| {
                if up {
                    levels[j] + 1 < heights[j]
                } else {
                    levels[j] > 0
                }
            })
            .map(|j| {
                let mut next = levels.to_vec();
                if up {
                    next[j] += 1;
                } else {
                    next[j] -= 1;
                }
                next
            })
            .collect()
    };
    let scored = |nodes: Vec<Vec<usize>>| -> Vec<(bool, usize, f64, Evaluation)> {
        nodes
            .par_iter()
            .map(|levels| {
                let eval = problem.evaluate(levels);
                let ok = problem.acceptable(&eval);
                let value = problem.value(&eval);
                (ok, eval.suppressed_records, value, eval)
            })
            .collect()
    };
    // Ascent.
    let mut current = problem.evaluate(&vec![0; heights.len()]);
    while !problem.acceptable(&current) {
        if Instant::now() >= deadline {
            let value = problem.value(&top);
            return (top, value);
        }
        let candidates = scored(neighbours(&current.levels, true));
        let pick = candidates.into_iter().min_by(|a, b| {
            (!a.0).cmp(&!b.0).then(if a.0 {
                a.2.total_cmp(&b.2)
            } else {
                a.1.cmp(&b.1).then(a.2.total_cmp(&b.2))
            })
        });
        match pick {
            Some((_, _, _, eval)) => current = eval,
            None => {
                let value = problem.value(&top);
                return (top, value);
            }
        }
    }
    // Descent: move to the best acceptable specialization while it improves the metric.
    let mut value = problem.value(&current);
    while Instant::now() < deadline {
        let better = scored(neighbours(&current.levels, false))
            .into_iter()
            .filter(|c| c.0 && c.2 < value)
            .min_by(|a, b| a.2.total_cmp(&b.2));
        match better {
            Some((_, _, v, eval)) => {
                value = v;
                current = eval;
            }
            None => break,
        }
    }
    (current, value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hierarchy::{HierarchySpec, IntervalSpec, MaskSpec};
    use crate::privacy::LDiversity;

    /// Deterministic pseudo-random data: (age, zip, sex, diagnosis) codes per row.
    fn synthetic(rows: usize) -> (Vec<Hierarchy>, Vec<Vec<u32>>, Vec<u32>) {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |m: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % m
        };
        let ages: Vec<String> = (0..rows).map(|_| (18 + next(70)).to_string()).collect();
        let zips: Vec<String> = (0..rows)
            .map(|_| format!("10{}{}", next(4), next(10)))
            .collect();
        let sexes: Vec<String> = (0..rows)
            .map(|_| ["F", "M"][next(2) as usize].to_string())
            .collect();
        let dx: Vec<u32> = (0..rows).map(|_| next(6) as u32).collect();
        let age_h = Hierarchy::build(
            "age",
            &HierarchySpec::Intervals(IntervalSpec {
                bottom: 20,
                top: 80,
                widths: vec![5, 10, 20],
            }),
            ages.iter().map(String::as_str),
        )
        .unwrap();
        let zip_h = Hierarchy::build(
            "zip",
            &HierarchySpec::Mask(MaskSpec {
                cut_at: None,
                masked_characters: 3,
            }),
            zips.iter().map(String::as_str),
        )
        .unwrap();
        let sex_h = Hierarchy::from_rows(
            "sex",
            vec![vec!["F".into(), "*".into()], vec!["M".into(), "*".into()]],
        )
        .unwrap();
        let codes = vec![
            ages.iter().map(|v| age_h.leaf_code(v).unwrap()).collect(),
            zips.iter().map(|v| zip_h.leaf_code(v).unwrap()).collect(),
            sexes.iter().map(|v| sex_h.leaf_code(v).unwrap()).collect(),
        ];
        (vec![age_h, zip_h, sex_h], codes, dx)
    }

    #[test]
    fn optimal_search_equals_exhaustive_enumeration() {
        let (hierarchies, codes, dx) = synthetic(600);
        let classes = FinestClasses::build(&hierarchies, &codes, &[(&dx, 6)]);
        let tables = MetricTables::new(&hierarchies, &classes);
        let heights: Vec<usize> = hierarchies.iter().map(Hierarchy::height).collect();
        let lattice = Lattice::new(&heights);
        let size: usize = heights.iter().product();
        let mut model_sets = vec![
            PrivacyModels::k_anonymity(3, 0.0),
            PrivacyModels::k_anonymity(5, 0.05),
            PrivacyModels::k_anonymity(10, 0.1),
        ];
        let mut diverse = PrivacyModels::k_anonymity(3, 0.05);
        diverse.l_diversity = Some(LDiversity::Distinct { l: 3 });
        model_sets.push(diverse);
        let mut close = PrivacyModels::k_anonymity(2, 0.05);
        close.t_closeness = Some(0.35);
        model_sets.push(close);
        for models in &model_sets {
            for metric in [
                Metric::Entropy,
                Metric::Loss,
                Metric::Discernibility,
                Metric::Aecs,
                Metric::Height,
                Metric::Precision,
                Metric::KlDivergence,
            ] {
                let problem = Problem::new(
                    &hierarchies,
                    &classes,
                    models,
                    metric,
                    &tables,
                    models.suppression_budget(600),
                );
                let expected = (0..size)
                    .filter_map(|n| {
                        let eval = problem.evaluate(&lattice.levels(n));
                        problem.acceptable(&eval).then(|| problem.value(&eval))
                    })
                    .fold(f64::INFINITY, f64::min);
                let outcome = search(&problem, &SearchConfig::default()).unwrap();
                assert!(problem.acceptable(&outcome.best), "{metric:?} {models:?}");
                assert!(
                    (outcome.information_loss - expected).abs() <= 1e-9 * expected.abs().max(1.0),
                    "{metric:?} {models:?}: {} vs exhaustive {expected}",
                    outcome.information_loss
                );
                let heuristic = search(
                    &problem,
                    &SearchConfig {
                        max_optimal_nodes: 0,
                        heuristic_time_limit_ms: 10_000,
                        ..SearchConfig::default()
                    },
                )
                .unwrap();
                assert_eq!(heuristic.strategy, SearchStrategy::Heuristic);
                assert!(problem.acceptable(&heuristic.best));
                assert!(heuristic.information_loss >= expected - 1e-9);
            }
        }
    }

    #[test]
    fn no_solution_when_top_fails_l_diversity() {
        let (hierarchies, codes, _) = synthetic(50);
        let constant = vec![0u32; 50];
        let classes = FinestClasses::build(&hierarchies, &codes, &[(&constant, 1)]);
        let tables = MetricTables::new(&hierarchies, &classes);
        let mut models = PrivacyModels::k_anonymity(2, 0.0);
        models.l_diversity = Some(LDiversity::Distinct { l: 2 });
        let problem = Problem::new(&hierarchies, &classes, &models, Metric::Entropy, &tables, 0);
        assert!(matches!(
            search(&problem, &SearchConfig::default()),
            Err(AnonymizeError::NoSolution)
        ));
    }
}
