//! The anonymization run: encode, search, report, release.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::age::DerivedAge;
use crate::data::{AttributeRole, Dataset};
use crate::dp::{DifferentialPrivacy, DifferentialPrivacyAchieved};
use crate::engine::{Evaluation, FinestClasses, PopulationClasses};
use crate::error::{AnonymizeError, Result};
use crate::hierarchy::{Hierarchy, SUPPRESSED};
use crate::local::{LocalProblem, LocalRecodingReport, Recoding};
use crate::metric::{Metric, MetricTables};
use crate::privacy::{
    GroundDistance, LDiversity, PrivacyModels, TDistance, entropy, equal_distance_emd,
};
use crate::risk::RiskSummary;
use crate::search::{Problem, SearchConfig, SearchStrategy, search};
use crate::types::AttributeType;

/// Roles of the columns of a data set; columns not named are insensitive.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttributeRoles {
    /// Quasi-identifiers, in the order of the level vector.
    pub quasi_identifiers: Vec<String>,
    /// Sensitive attributes.
    pub sensitive: Vec<String>,
    /// Direct identifiers (dropped from the release).
    pub identifying: Vec<String>,
}

/// Everything but the data and hierarchies that an anonymization needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Privacy models and suppression limit.
    pub models: PrivacyModels,
    /// Utility metric to optimize.
    pub metric: Metric,
    /// Search settings.
    pub search: SearchConfig,
    /// Prosecutor risk above which a record counts as "at risk" in the report.
    pub risk_threshold: f64,
    /// Share of the population that the input data is, in `(0, 1]`, for the
    /// population-uniqueness estimates (see [`crate::DEFAULT_SAMPLING_FRACTION`]).
    pub sampling_fraction: f64,
}

/// Number of released records per class size.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassSizeBin {
    /// Class size.
    pub size: usize,
    /// Number of released classes of this size.
    pub classes: usize,
}

/// Achieved protection of one sensitive attribute over the released classes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SensitiveAchieved {
    /// Column name.
    pub column: String,
    /// Smallest number of distinct values in a released class (distinct ℓ).
    pub distinct_l: usize,
    /// Smallest `exp(entropy)` of a released class (entropy ℓ).
    pub entropy_l: f64,
    /// Largest equal-distance EMD of a released class to the overall distribution (t).
    pub t: f64,
    /// Largest ordered-distance EMD of a released class, if the column has an ordered type
    /// (integer, decimal, date, ordinal).
    pub t_ordered: Option<f64>,
    /// Largest hierarchical-distance EMD of a released class, if the column has a hierarchy
    /// (given for hierarchical-distance t-closeness).
    pub t_hierarchical: Option<f64>,
}

/// What was done and what the release achieves. Every privacy figure is measured on the release.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Quasi-identifiers in level-vector order.
    pub quasi_identifiers: Vec<String>,
    /// Chosen generalization level per quasi-identifier.
    pub levels: Vec<usize>,
    /// Value of the metric for the chosen levels.
    pub information_loss: f64,
    /// The metric optimized.
    pub metric: Metric,
    /// Its ARX name.
    pub metric_name: String,
    /// Search used.
    pub search: SearchStrategy,
    /// Nodes of the generalization lattice.
    pub lattice_size: u64,
    /// Nodes whose classes were actually computed.
    pub nodes_checked: usize,
    /// Records in the input (with δ-presence: in the research subset, the records released).
    pub records: usize,
    /// Records suppressed (all quasi-identifiers `*`).
    pub suppressed_records: usize,
    /// Smallest released class (achieved k); 0 if everything was suppressed.
    pub k: usize,
    /// Achieved ℓ (per the configured variant, minimum over sensitive attributes), if ℓ-diversity
    /// is configured.
    pub l: Option<f64>,
    /// Achieved t (maximum over sensitive attributes, with the configured ground distance
    /// [`Report::t_distance`]), if t-closeness is configured.
    pub t: Option<f64>,
    /// Ground distance of [`Report::t`], if t-closeness is configured.
    pub t_distance: Option<TDistance>,
    /// Achieved protection per sensitive attribute.
    pub sensitive: Vec<SensitiveAchieved>,
    /// Released equivalence classes (suppressed records not counted).
    pub equivalence_classes: usize,
    /// Released classes by size.
    pub class_size_histogram: Vec<ClassSizeBin>,
    /// Re-identification risk.
    pub risk: RiskSummary,
    /// Finest equivalence classes of the input.
    pub finest_classes: usize,
    /// Wall time of encoding, search and report, in milliseconds.
    pub elapsed_ms: f64,
    /// The privacy models that were required (the targets the achieved figures answer).
    pub privacy: PrivacyModels,
    /// Achieved k of k-map: the smallest population count of a released class's generalized
    /// quasi-identifiers, if a population table was given.
    pub k_map: Option<u64>,
    /// Members of the population table, if one was given.
    pub population_records: Option<u64>,
    /// With δ-presence: the smallest and largest share of research-subset records in a
    /// released class (over all input records of the class).
    pub delta_presence: Option<[f64; 2]>,
    /// With δ-presence: input records (the public population), of which `records` are the
    /// research subset.
    pub presence_records: Option<usize>,
    /// Quasi-identifiers released as a per-class aggregate instead of a hierarchy label.
    pub microaggregation: Vec<Microaggregated>,
    /// With (ε, δ)-differential privacy: its parameters, the derived k and the sample.
    pub differential_privacy: Option<DifferentialPrivacyAchieved>,
    /// Columns derived before the anonymization (age at an event), with their rule.
    pub derived_ages: Vec<DerivedAge>,
    /// With local recoding ([`SearchConfig::local_recoding`]): what it did. `levels` and
    /// `information_loss` are then those of the global optimum it started from; every other
    /// figure is measured on the release.
    pub local_recoding: Option<LocalRecodingReport>,
}

/// How a numeric quasi-identifier is microaggregated in the release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// Arithmetic mean of the class's values.
    Mean,
    /// Median of the class's values (mean of the two middle values for an even count).
    Median,
}

/// One microaggregated quasi-identifier, as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Microaggregated {
    /// Column name.
    pub column: String,
    /// Aggregate released for every record of a class.
    pub function: Aggregation,
    /// Mean squared difference between the released aggregate and the original value, over
    /// released records with a value.
    pub mean_squared_error: f64,
}

/// A finished anonymization: the report plus what is needed to write the release.
#[derive(Debug)]
pub struct Anonymization<'a> {
    dataset: &'a Dataset,
    hierarchies: Vec<Hierarchy>,
    roles: Vec<AttributeRole>,
    qi_columns: Vec<usize>,
    qi_codes: Vec<Vec<u32>>,
    classes: FinestClasses,
    best: Evaluation,
    report: Report,
    /// Research-subset flag per row (δ-presence): only flagged rows are released.
    subset: Option<Vec<bool>>,
    /// Per quasi-identifier (level-vector order): the released aggregate of every group, if
    /// the attribute is microaggregated.
    aggregates: Vec<Option<Vec<String>>>,
    /// Suppressed records are never released (differential privacy).
    always_drop_suppressed: bool,
    /// With local recoding: the level vector of every finest class.
    recoding: Option<Recoding>,
}

/// Assigns roles to the columns of `dataset`, checking names and conflicts.
pub(crate) fn column_roles(
    dataset: &Dataset,
    roles: &AttributeRoles,
) -> Result<Vec<AttributeRole>> {
    let mut assigned = vec![AttributeRole::Insensitive; dataset.header().len()];
    let mut seen = vec![false; dataset.header().len()];
    for (names, role) in [
        (&roles.quasi_identifiers, AttributeRole::QuasiIdentifying),
        (&roles.sensitive, AttributeRole::Sensitive),
        (&roles.identifying, AttributeRole::Identifying),
    ] {
        for name in names {
            let index = dataset.column_index(name)?;
            if seen[index] {
                return Err(AnonymizeError::ConflictingRoles {
                    column: name.clone(),
                });
            }
            seen[index] = true;
            assigned[index] = role;
        }
    }
    Ok(assigned)
}

/// Name of the optional column of a population table that gives the members per row.
pub const POPULATION_COUNT_COLUMN: &str = "count";

/// Anonymizes `dataset`: `hierarchies` maps every quasi-identifier to its hierarchy (and, for
/// hierarchical-distance t-closeness, every sensitive attribute to its hierarchy).
pub fn anonymize<'a>(
    dataset: &'a Dataset,
    roles: &AttributeRoles,
    hierarchies: BTreeMap<String, Hierarchy>,
    settings: &Settings,
) -> Result<Anonymization<'a>> {
    anonymize_with_population(dataset, roles, hierarchies, settings, None)
}

/// As [`anonymize`], with a population table for k-map and the journalist risk.
///
/// The population table has every quasi-identifier as a column and optionally a
/// [`POPULATION_COUNT_COLUMN`] (`count`) with the members per row; without it every row is one
/// member. Its values are generalized with the same hierarchies (they must cover them).
pub fn anonymize_with_population<'a>(
    dataset: &'a Dataset,
    roles: &AttributeRoles,
    mut hierarchies: BTreeMap<String, Hierarchy>,
    settings: &Settings,
    population: Option<&Dataset>,
) -> Result<Anonymization<'a>> {
    let started = Instant::now();
    if roles.quasi_identifiers.is_empty() {
        return Err(AnonymizeError::NoQuasiIdentifiers);
    }
    let mut column_roles = column_roles(dataset, roles)?;
    let subset = match &settings.models.delta_presence {
        Some(presence) => {
            let index = dataset.column_index(&presence.subset_column)?;
            if column_roles[index] != AttributeRole::Insensitive {
                return Err(AnonymizeError::ConflictingRoles {
                    column: presence.subset_column.clone(),
                });
            }
            // The flag is constant in the release: drop it.
            column_roles[index] = AttributeRole::Identifying;
            Some(subset_flags(dataset, &presence.subset_column, index)?)
        }
        None => None,
    };
    let records = subset
        .as_ref()
        .map_or(dataset.row_count(), |s| s.iter().filter(|&&f| f).count());
    if records == 0 {
        return Err(AnonymizeError::EmptyData {
            path: dataset.source().to_path_buf(),
        });
    }
    check_settings(settings, roles, records, population.is_some())?;
    let (qi_columns, ordered, to_leaf) = qi_hierarchies(dataset, roles, &mut hierarchies)?;
    let qi_codes: Vec<Vec<u32>> = qi_columns
        .iter()
        .zip(&to_leaf)
        .map(|(&index, to_leaf)| {
            dataset
                .column(index)
                .codes
                .iter()
                .map(|&c| to_leaf[c as usize])
                .collect()
        })
        .collect();
    let sensitive_columns: Vec<usize> = roles
        .sensitive
        .iter()
        .map(|n| dataset.column_index(n))
        .collect::<Result<_>>()?;
    let sensitive_codes: Vec<(&[u32], usize)> = sensitive_columns
        .iter()
        .map(|&i| {
            let c = dataset.column(i);
            (c.codes.as_slice(), c.dictionary.len())
        })
        .collect();
    let classes =
        FinestClasses::build_with_subset(&ordered, &qi_codes, &sensitive_codes, subset.as_deref());
    let searched = search_classes(
        dataset,
        roles,
        settings,
        Encoding {
            hierarchies: ordered,
            remaining: hierarchies,
            classes,
        },
        population,
        started,
    )?;
    Ok(Anonymization {
        dataset,
        hierarchies: searched.hierarchies,
        roles: column_roles,
        qi_columns,
        qi_codes,
        classes: searched.classes,
        best: searched.best,
        report: searched.report,
        subset,
        aggregates: vec![None; roles.quasi_identifiers.len()],
        always_drop_suppressed: false,
        recoding: searched.recoding,
    })
}

/// Releases `dataset` under SafePub-style (ε, δ)-differential privacy (see
/// [`DifferentialPrivacy`]): a random sample, generalized by a privately chosen node, classes
/// of fewer than the derived k records suppressed and never released. `settings.models` and
/// `settings.search` are not used (k comes from (ε, δ)); `settings.metric` is reported.
///
/// Every released column must be a quasi-identifier (other columns must be declared
/// identifying, and are dropped): the guarantee covers the released tuples as a whole.
///
/// Errors: invalid (ε, δ), a sensitive or insensitive column, an empty sample, or those of
/// [`anonymize`].
pub fn anonymize_private<'a>(
    dataset: &'a Dataset,
    roles: &AttributeRoles,
    mut hierarchies: BTreeMap<String, Hierarchy>,
    settings: &Settings,
    privacy: &DifferentialPrivacy,
) -> Result<Anonymization<'a>> {
    let started = Instant::now();
    if roles.quasi_identifiers.is_empty() {
        return Err(AnonymizeError::NoQuasiIdentifiers);
    }
    let column_roles = column_roles(dataset, roles)?;
    if let Some(other) = column_roles
        .iter()
        .position(|r| matches!(r, AttributeRole::Sensitive | AttributeRole::Insensitive))
    {
        return Err(AnonymizeError::InvalidParameter(format!(
            "(ε, δ)-DP releases quasi-identifiers only: declare column `{}` a quasi-identifier \
             or identifying (dropped)",
            dataset.header()[other]
        )));
    }
    let (epsilon_anonymization, beta, k) = privacy.parameters()?;
    let mut rng = crate::dp::generator(privacy.seed)?;
    let sample = crate::dp::sample(dataset.row_count(), beta, &mut rng);
    let sampled = sample.iter().filter(|&&s| s).count();
    if sampled == 0 {
        return Err(AnonymizeError::EmptyData {
            path: dataset.source().to_path_buf(),
        });
    }
    let mut effective = settings.clone();
    effective.models = PrivacyModels::k_anonymity(k, 1.0);
    if !(settings.sampling_fraction > 0.0 && settings.sampling_fraction <= 1.0) {
        return Err(AnonymizeError::InvalidParameter(
            "sampling_fraction must be within (0, 1]".into(),
        ));
    }
    let (qi_columns, ordered, to_leaf) = qi_hierarchies(dataset, roles, &mut hierarchies)?;
    let qi_codes: Vec<Vec<u32>> = qi_columns
        .iter()
        .zip(&to_leaf)
        .map(|(&index, to_leaf)| {
            dataset
                .column(index)
                .codes
                .iter()
                .map(|&c| to_leaf[c as usize])
                .collect()
        })
        .collect();
    let mut classes = FinestClasses::build_with_subset(&ordered, &qi_codes, &[], Some(&sample));
    classes.forget_presence();
    let choice = crate::dp::private_search(
        &ordered,
        &classes,
        dataset.row_count(),
        k,
        privacy.search_budget,
        privacy.steps,
        &mut rng,
    );
    let tables = MetricTables::new(&ordered, &classes);
    let information_loss = tables.value(settings.metric, &ordered, &classes, &choice.best);
    let lattice_size = ordered
        .iter()
        .map(|h| h.height() as u64)
        .fold(1u64, u64::saturating_mul);
    let mut report = build_report(
        roles,
        &effective,
        Encoded {
            classes: &classes,
            hierarchies: &ordered,
            grounds: &[],
        },
        &choice.best,
        ReportSearch {
            information_loss,
            strategy: SearchStrategy::DifferentiallyPrivate,
            lattice_size,
            nodes_checked: choice.nodes_checked,
            started,
        },
    );
    report.differential_privacy = Some(DifferentialPrivacyAchieved {
        epsilon: privacy.epsilon,
        delta: privacy.delta,
        epsilon_anonymization,
        epsilon_search: privacy.search_budget,
        beta,
        k,
        steps: choice.steps,
        sampled_records: sampled,
        input_records: dataset.row_count(),
        score_sensitivity: choice.sensitivity,
        score: choice.score,
        seed: privacy.seed,
    });
    Ok(Anonymization {
        dataset,
        hierarchies: ordered,
        roles: column_roles,
        qi_columns,
        qi_codes,
        classes,
        best: choice.best,
        report,
        subset: Some(sample),
        aggregates: vec![None; roles.quasi_identifiers.len()],
        always_drop_suppressed: true,
        recoding: None,
    })
}

/// Checks the settings against the data once the records are counted.
pub(crate) fn check_settings(
    settings: &Settings,
    roles: &AttributeRoles,
    records: usize,
    has_population: bool,
) -> Result<()> {
    settings.models.validate(records, roles.sensitive.len())?;
    if settings.search.local_recoding
        && (settings.models.k_map.is_some() || settings.models.delta_presence.is_some())
    {
        return Err(AnonymizeError::InvalidParameter(
            "local recoding is not combined with k-map or δ-presence (population-level models)"
                .into(),
        ));
    }
    if settings.models.k_map.is_some() && !has_population {
        return Err(AnonymizeError::InvalidParameter(
            "k-map needs a population table".into(),
        ));
    }
    if !(settings.sampling_fraction > 0.0 && settings.sampling_fraction <= 1.0) {
        return Err(AnonymizeError::InvalidParameter(
            "sampling_fraction must be within (0, 1]".into(),
        ));
    }
    Ok(())
}

/// Per quasi-identifier in level-vector order: column index, hierarchy, and the map from the
/// column's dictionary codes to the hierarchy's leaf codes.
pub(crate) type QiHierarchies = (Vec<usize>, Vec<Hierarchy>, Vec<Vec<u32>>);

/// The quasi-identifiers' columns and hierarchies (taken out of `hierarchies`), in level-vector
/// order, each with the map from the column's dictionary codes to the hierarchy's leaf codes.
///
/// Errors: a missing hierarchy, or one that does not cover every value of its column.
pub(crate) fn qi_hierarchies(
    dataset: &Dataset,
    roles: &AttributeRoles,
    hierarchies: &mut BTreeMap<String, Hierarchy>,
) -> Result<QiHierarchies> {
    let mut qi_columns = Vec::new();
    let mut ordered = Vec::new();
    let mut to_leaves = Vec::new();
    for name in &roles.quasi_identifiers {
        let index = dataset.column_index(name)?;
        let hierarchy =
            hierarchies
                .remove(name)
                .ok_or_else(|| AnonymizeError::MissingHierarchy {
                    column: name.clone(),
                })?;
        let column = dataset.column(index);
        hierarchy.check_covers(name, column.dictionary.iter().map(String::as_str))?;
        // Translate the column dictionary to hierarchy leaf codes once.
        to_leaves.push(
            column
                .dictionary
                .iter()
                .map(|v| hierarchy.leaf_code(v).unwrap_or(0))
                .collect(),
        );
        qi_columns.push(index);
        ordered.push(hierarchy);
    }
    Ok((qi_columns, ordered, to_leaves))
}

/// The encoded input of a search: finest classes and the hierarchies.
pub(crate) struct Encoding {
    /// Quasi-identifier hierarchies in level-vector order.
    pub hierarchies: Vec<Hierarchy>,
    /// Hierarchies not used for quasi-identifiers (sensitive attributes').
    pub remaining: BTreeMap<String, Hierarchy>,
    /// The finest equivalence classes.
    pub classes: FinestClasses,
}

/// The outcome of a search: what a release is written from.
pub(crate) struct Searched {
    /// Quasi-identifier hierarchies in level-vector order.
    pub hierarchies: Vec<Hierarchy>,
    /// The finest equivalence classes.
    pub classes: FinestClasses,
    /// The chosen node (with local recoding: the released classes).
    pub best: Evaluation,
    /// The report.
    pub report: Report,
    /// With local recoding: the level vector of every finest class.
    pub recoding: Option<Recoding>,
}

/// Searches the lattice over the finest classes and measures the report; `dataset` gives the
/// sensitive columns' dictionaries and types (for the t-closeness ground distances).
pub(crate) fn search_classes(
    dataset: &Dataset,
    roles: &AttributeRoles,
    settings: &Settings,
    encoding: Encoding,
    population: Option<&Dataset>,
    started: Instant,
) -> Result<Searched> {
    let Encoding {
        hierarchies: ordered,
        remaining: mut hierarchies,
        mut classes,
    } = encoding;
    if let Some(population) = population {
        classes.set_population(population_classes(
            population,
            &roles.quasi_identifiers,
            &ordered,
        )?);
    }
    let grounds = sensitive_grounds(dataset, roles, &mut hierarchies, &settings.models, &classes)?;
    if settings.models.t_closeness.is_some() {
        for (s, g) in grounds.iter().enumerate() {
            let chosen = match settings.models.t_distance {
                TDistance::Equal => GroundDistance::Equal,
                TDistance::Ordered => g.ordered.clone().unwrap_or_default(),
                TDistance::Hierarchical => g.hierarchical.clone().unwrap_or_default(),
            };
            classes.set_ground_distance(s, chosen);
        }
    }
    let tables = MetricTables::new(&ordered, &classes);
    let problem = Problem::new(
        &ordered,
        &classes,
        &settings.models,
        settings.metric,
        &tables,
        settings.models.suppression_budget(classes.records),
    );
    let outcome = search(&problem, &settings.search)?;
    let mut best = outcome.best;
    let mut recoding = None;
    let mut local_report = None;
    if settings.search.local_recoding {
        let (recoded, report) = crate::local::recode(
            &LocalProblem {
                hierarchies: &ordered,
                classes: &classes,
                models: &settings.models,
                metric: settings.metric,
                search: &settings.search,
            },
            &best,
        )?;
        if let Some((recoded, release)) = recoded {
            recoding = Some(recoded);
            best = release;
        }
        local_report = Some(report);
    }
    let mut report = build_report(
        roles,
        settings,
        Encoded {
            classes: &classes,
            hierarchies: &ordered,
            grounds: &grounds,
        },
        &best,
        ReportSearch {
            information_loss: outcome.information_loss,
            strategy: outcome.strategy,
            lattice_size: u64::try_from(outcome.lattice_size).unwrap_or(u64::MAX),
            nodes_checked: outcome.nodes_checked,
            started,
        },
    );
    report.local_recoding = local_report;
    Ok(Searched {
        hierarchies: ordered,
        classes,
        best,
        report,
        recoding,
    })
}

/// Research-subset flags of the rows: `true`/`1`/`yes` in, `false`/`0`/`no`/missing out
/// (case-insensitive).
fn subset_flags(dataset: &Dataset, name: &str, index: usize) -> Result<Vec<bool>> {
    let verdict = |v: &str| match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        other if crate::types::is_missing(other) || other == "null" => Some(false),
        _ => None,
    };
    dataset.check_values(name, "a subset flag (true/false, 1/0, yes/no)", |v| {
        verdict(v).is_some()
    })?;
    let column = dataset.column(index);
    let in_subset: Vec<bool> = column
        .dictionary
        .iter()
        .map(|v| verdict(v) == Some(true))
        .collect();
    Ok(column
        .codes
        .iter()
        .map(|&c| in_subset[c as usize])
        .collect())
}

/// Encodes a population table with the quasi-identifiers' hierarchies.
fn population_classes(
    population: &Dataset,
    quasi_identifiers: &[String],
    hierarchies: &[Hierarchy],
) -> Result<PopulationClasses> {
    let invalid = |rule: String| AnonymizeError::InvalidPopulation {
        path: population.source().to_path_buf(),
        rule,
    };
    let mut leaf_columns = Vec::with_capacity(quasi_identifiers.len());
    for (name, hierarchy) in quasi_identifiers.iter().zip(hierarchies) {
        let index = population
            .column_index(name)
            .map_err(|_| invalid(format!("no column `{name}` (a quasi-identifier)")))?;
        let column = population.column(index);
        hierarchy.check_covers(name, column.dictionary.iter().map(String::as_str))?;
        let to_leaf: Vec<u32> = column
            .dictionary
            .iter()
            .map(|v| hierarchy.leaf_code(v).unwrap_or(0))
            .collect();
        leaf_columns.push((column, to_leaf));
    }
    let counts_per_code: Option<(&[u32], Vec<u64>)> =
        match population.column_index(POPULATION_COUNT_COLUMN) {
            Ok(index) => {
                population.validate_column(POPULATION_COUNT_COLUMN, &AttributeType::Integer)?;
                let column = population.column(index);
                let parsed = column
                    .dictionary
                    .iter()
                    .map(|v| v.parse::<u64>().ok())
                    .collect::<Option<Vec<u64>>>()
                    .ok_or_else(|| {
                        invalid(format!(
                            "column `{POPULATION_COUNT_COLUMN}` must hold non-negative integers"
                        ))
                    })?;
                Some((column.codes.as_slice(), parsed))
            }
            Err(_) => None,
        };
    let mut index: rustc_hash::FxHashMap<Box<[u32]>, usize> = Default::default();
    let mut classes = PopulationClasses::default();
    let mut tuple = vec![0u32; leaf_columns.len()];
    for row in 0..population.row_count() {
        for (slot, (column, to_leaf)) in tuple.iter_mut().zip(&leaf_columns) {
            *slot = to_leaf[column.codes[row] as usize];
        }
        let members = counts_per_code
            .as_ref()
            .map_or(1, |(codes, counts)| counts[codes[row] as usize]);
        let next = classes.counts.len();
        let t = *index.entry(tuple.as_slice().into()).or_insert(next);
        if t == next {
            classes.codes.extend_from_slice(&tuple);
            classes.counts.push(0);
        }
        classes.counts[t] += members;
    }
    Ok(classes)
}

/// The ordered and hierarchical ground distances available for one sensitive attribute.
struct SensitiveGrounds {
    ordered: Option<GroundDistance>,
    hierarchical: Option<GroundDistance>,
}

/// Prepares the ground distances of every sensitive attribute; the configured one must exist
/// (an ordered type for ordered distance, a hierarchy for hierarchical distance).
fn sensitive_grounds(
    dataset: &Dataset,
    roles: &AttributeRoles,
    hierarchies: &mut BTreeMap<String, Hierarchy>,
    models: &PrivacyModels,
    classes: &FinestClasses,
) -> Result<Vec<SensitiveGrounds>> {
    let distance = models.t_closeness.map(|_| models.t_distance);
    let mut grounds = Vec::with_capacity(roles.sensitive.len());
    for (s, name) in roles.sensitive.iter().enumerate() {
        let index = dataset.column_index(name)?;
        let column = dataset.column(index);
        let kind = dataset.attribute_type(index);
        let overall = classes.overall(s);
        let ordered = if kind.is_ordered() {
            let mut by_order: Vec<u32> = (0..column.dictionary.len() as u32).collect();
            by_order.sort_by(|&a, &b| {
                kind.compare(
                    &column.dictionary[a as usize],
                    &column.dictionary[b as usize],
                )
            });
            let mut rank = vec![0u32; by_order.len()];
            for (r, &code) in by_order.iter().enumerate() {
                rank[code as usize] = r as u32;
            }
            Some(GroundDistance::ordered(rank, overall))
        } else if distance == Some(TDistance::Ordered) {
            return Err(AnonymizeError::TypeMismatch {
                column: name.clone(),
                declared: kind.to_string(),
                usage: "ordered-distance t-closeness".into(),
                required: "integer, decimal, date or ordinal".into(),
            });
        } else {
            None
        };
        let hierarchical = match hierarchies.remove(name) {
            Some(h) => {
                h.check_covers(name, column.dictionary.iter().map(String::as_str))?;
                let leaf: Vec<u32> = column
                    .dictionary
                    .iter()
                    .map(|v| h.leaf_code(v).unwrap_or(0))
                    .collect();
                Some(GroundDistance::hierarchical(&h, leaf, overall))
            }
            None if distance == Some(TDistance::Hierarchical) => {
                return Err(AnonymizeError::MissingHierarchy {
                    column: name.clone(),
                });
            }
            None => None,
        };
        grounds.push(SensitiveGrounds {
            ordered,
            hierarchical,
        });
    }
    Ok(grounds)
}

struct ReportSearch {
    information_loss: f64,
    strategy: SearchStrategy,
    lattice_size: u64,
    nodes_checked: usize,
    started: Instant,
}

/// The encoded data a report is measured on.
struct Encoded<'x> {
    classes: &'x FinestClasses,
    hierarchies: &'x [Hierarchy],
    grounds: &'x [SensitiveGrounds],
}

fn build_report(
    roles: &AttributeRoles,
    settings: &Settings,
    encoded: Encoded<'_>,
    best: &Evaluation,
    search: ReportSearch,
) -> Report {
    let Encoded {
        classes,
        hierarchies,
        grounds,
    } = encoded;
    let kept_sizes: Vec<usize> = best
        .sizes
        .iter()
        .zip(&best.kept)
        .filter(|(_, k)| **k)
        .map(|(&s, _)| s as usize)
        .collect();
    let mut histogram: BTreeMap<usize, usize> = BTreeMap::new();
    for &s in &kept_sizes {
        *histogram.entry(s).or_insert(0) += 1;
    }
    let k = kept_sizes.iter().copied().min().unwrap_or(0);
    let mut risk = RiskSummary::from_class_sizes(
        &histogram,
        classes.records,
        settings.sampling_fraction,
        settings.risk_threshold,
    );
    let population_counts = classes.population_counts(hierarchies, &best.levels, &best.first_class);
    let shares = classes.presence_shares(&best.class_group, &best.sizes);
    let presence_records = shares.as_ref().map(|_| classes.row_class.len());
    let delta_presence = shares.map(|shares| {
        let kept: Vec<f64> = shares
            .iter()
            .zip(&best.kept)
            .filter(|(_, k)| **k)
            .map(|(&d, _)| d)
            .collect();
        if kept.is_empty() {
            [0.0, 0.0]
        } else {
            [
                kept.iter().copied().fold(f64::INFINITY, f64::min),
                kept.iter().copied().fold(0.0, f64::max),
            ]
        }
    });
    let mut k_map = None;
    if let Some(counts) = &population_counts {
        // Journalist risk of a record: 1 / members of its class in the population (at least the
        // class itself, should the population table not contain the sample).
        let (mut max, mut sum, mut released) = (0.0f64, 0.0, 0usize);
        for ((&size, &kept), &members) in best.sizes.iter().zip(&best.kept).zip(counts) {
            if kept {
                let risk = 1.0 / (members.max(u64::from(size)) as f64);
                max = max.max(risk);
                sum += risk * f64::from(size);
                released += size as usize;
                k_map = Some(k_map.map_or(members, |m: u64| m.min(members)));
            }
        }
        risk.journalist_max = max;
        risk.journalist_mean = if released == 0 {
            0.0
        } else {
            sum / released as f64
        };
        risk.journalist_basis = JOURNALIST_WITH_POPULATION.to_string();
    }
    let sensitive: Vec<SensitiveAchieved> = roles
        .sensitive
        .iter()
        .enumerate()
        .map(|(s, column)| {
            let per_group = classes.group_histograms(s, best);
            let overall = classes.overall(s);
            let ground = &grounds[s];
            let mut achieved = SensitiveAchieved {
                column: column.clone(),
                distinct_l: usize::MAX,
                entropy_l: f64::INFINITY,
                t: 0.0,
                t_ordered: ground.ordered.as_ref().map(|_| 0.0),
                t_hierarchical: ground.hierarchical.as_ref().map(|_| 0.0),
            };
            for (g, hist) in per_group.iter().enumerate() {
                if !best.kept[g] {
                    continue;
                }
                let values: Vec<u32> = hist.iter().map(|p| p.0).collect();
                let counts: Vec<u32> = hist.iter().map(|p| p.1).collect();
                achieved.distinct_l = achieved.distinct_l.min(counts.len());
                achieved.entropy_l = achieved.entropy_l.min(entropy(&counts).exp());
                achieved.t = achieved
                    .t
                    .max(equal_distance_emd(&values, &counts, overall));
                for (slot, g) in [
                    (&mut achieved.t_ordered, &ground.ordered),
                    (&mut achieved.t_hierarchical, &ground.hierarchical),
                ] {
                    if let (Some(t), Some(g)) = (slot.as_mut(), g) {
                        *t = t.max(g.emd(&values, &counts, overall));
                    }
                }
            }
            if kept_sizes.is_empty() {
                achieved.distinct_l = 0;
                achieved.entropy_l = 0.0;
            }
            achieved
        })
        .collect();
    let l = settings.models.l_diversity.map(|model| {
        sensitive
            .iter()
            .map(|a| match model {
                LDiversity::Entropy { .. } => a.entropy_l,
                LDiversity::Distinct { .. } | LDiversity::Recursive { .. } => a.distinct_l as f64,
            })
            .fold(f64::INFINITY, f64::min)
    });
    let t_distance = settings
        .models
        .t_closeness
        .map(|_| settings.models.t_distance);
    let t = t_distance.map(|distance| {
        sensitive
            .iter()
            .map(|a| match distance {
                TDistance::Equal => a.t,
                TDistance::Ordered => a.t_ordered.unwrap_or(0.0),
                TDistance::Hierarchical => a.t_hierarchical.unwrap_or(0.0),
            })
            .fold(0.0, f64::max)
    });
    Report {
        quasi_identifiers: roles.quasi_identifiers.clone(),
        levels: best.levels.clone(),
        information_loss: search.information_loss,
        metric: settings.metric,
        metric_name: settings.metric.name().to_string(),
        search: search.strategy,
        lattice_size: search.lattice_size,
        nodes_checked: search.nodes_checked,
        records: classes.records,
        suppressed_records: best.suppressed_records,
        k,
        l,
        t,
        t_distance,
        sensitive,
        equivalence_classes: kept_sizes.len(),
        class_size_histogram: histogram
            .into_iter()
            .map(|(size, classes)| ClassSizeBin { size, classes })
            .collect(),
        risk,
        finest_classes: classes.len(),
        elapsed_ms: search.started.elapsed().as_secs_f64() * 1000.0,
        privacy: settings.models.clone(),
        k_map,
        population_records: classes.population_records(),
        delta_presence,
        presence_records,
        microaggregation: Vec::new(),
        differential_privacy: None,
        derived_ages: Vec::new(),
        local_recoding: None,
    }
}

/// Note stored in [`RiskSummary::journalist_basis`] when a population table is given.
pub const JOURNALIST_WITH_POPULATION: &str = "population table given: journalist risk of a record is 1 / the population members of its released class (at least the class size)";

impl Anonymization<'_> {
    /// The report of this anonymization.
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// Records a derived age-at-event column in the report (see
    /// [`Dataset::derive_age_at_event`]).
    pub fn report_derived_age(&mut self, derived: DerivedAge) {
        self.report
            .derived_ages
            .retain(|d| d.column != derived.column);
        self.report.derived_ages.push(derived);
    }

    /// Releases the numeric quasi-identifier `column` as the mean or median of each released
    /// class (ARX-style microaggregation) instead of its hierarchy label; the classes, and so
    /// every privacy figure of the report, are unchanged. Missing values are left out of the
    /// aggregate and released as the aggregate too; a class with no value keeps its label.
    ///
    /// Errors: `column` is not a quasi-identifier, or not of type integer or decimal.
    pub fn microaggregate(&mut self, column: &str, function: Aggregation) -> Result<()> {
        let Some(j) = self
            .report
            .quasi_identifiers
            .iter()
            .position(|q| q == column)
        else {
            return Err(AnonymizeError::InvalidParameter(format!(
                "microaggregation of `{column}`: not a quasi-identifier"
            )));
        };
        let index = self.qi_columns[j];
        let kind = self.dataset.attribute_type(index);
        if !matches!(kind, AttributeType::Integer | AttributeType::Decimal) {
            return Err(AnonymizeError::TypeMismatch {
                column: column.to_string(),
                declared: kind.to_string(),
                usage: "microaggregation".into(),
                required: "integer or decimal".into(),
            });
        }
        let values = self.dataset.column(index);
        let numbers: Vec<Option<f64>> = values
            .dictionary
            .iter()
            .map(|v| v.parse::<f64>().ok().filter(|x| x.is_finite()))
            .collect();
        let groups = self.best.sizes.len();
        let mut members: Vec<Vec<f64>> = vec![Vec::new(); groups];
        for row in 0..self.dataset.row_count() {
            if self.subset.as_ref().is_some_and(|s| !s[row]) {
                continue;
            }
            let group = self.best.class_group[self.classes.row_class[row] as usize] as usize;
            if let (true, Some(x)) = (self.best.kept[group], numbers[values.codes[row] as usize]) {
                members[group].push(x);
            }
        }
        let mut squared_error = 0.0;
        let mut counted = 0usize;
        let released: Vec<String> = members
            .iter_mut()
            .map(|xs| {
                if xs.is_empty() {
                    return String::new();
                }
                let aggregate = match function {
                    Aggregation::Mean => xs.iter().sum::<f64>() / xs.len() as f64,
                    Aggregation::Median => {
                        xs.sort_by(f64::total_cmp);
                        let middle = xs.len() / 2;
                        if xs.len() % 2 == 1 {
                            xs[middle]
                        } else {
                            (xs[middle - 1] + xs[middle]) / 2.0
                        }
                    }
                };
                squared_error += xs.iter().map(|x| (x - aggregate).powi(2)).sum::<f64>();
                counted += xs.len();
                format_aggregate(aggregate)
            })
            .collect();
        self.aggregates[j] = Some(released);
        self.report.microaggregation.retain(|m| m.column != column);
        self.report.microaggregation.push(Microaggregated {
            column: column.to_string(),
            function,
            mean_squared_error: if counted == 0 {
                0.0
            } else {
                squared_error / counted as f64
            },
        });
        Ok(())
    }

    /// Header of the release: the input header without identifying columns.
    pub fn release_header(&self) -> Vec<&str> {
        self.dataset
            .header()
            .iter()
            .zip(&self.roles)
            .filter(|(_, r)| **r != AttributeRole::Identifying)
            .map(|(h, _)| h.as_str())
            .collect()
    }

    /// Calls `emit` with the released fields of every row, in input order.
    ///
    /// Suppressed rows have `*` for every quasi-identifier; with `drop_suppressed` they are
    /// skipped instead.
    pub fn for_each_released_row<E>(
        &self,
        drop_suppressed: bool,
        mut emit: impl FnMut(&[&str]) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let header_len = self.dataset.header().len();
        // Position of each column among the quasi-identifiers.
        let mut qi_position = vec![usize::MAX; header_len];
        for (j, &c) in self.qi_columns.iter().enumerate() {
            qi_position[c] = j;
        }
        let mut fields: Vec<&str> = Vec::with_capacity(header_len);
        for row in 0..self.dataset.row_count() {
            if self.subset.as_ref().is_some_and(|s| !s[row]) {
                continue;
            }
            let class = self.classes.row_class[row] as usize;
            let group = self.best.class_group[class] as usize;
            let kept = self.best.kept[group];
            if !kept && (drop_suppressed || self.always_drop_suppressed) {
                continue;
            }
            fields.clear();
            for (column, role) in self.roles.iter().enumerate() {
                match role {
                    AttributeRole::Identifying => {}
                    AttributeRole::QuasiIdentifying => {
                        let j = qi_position[column];
                        let aggregate = self.aggregates[j]
                            .as_ref()
                            .map(|a| a[group].as_str())
                            .filter(|a| !a.is_empty());
                        if let (true, Some(aggregate)) = (kept, aggregate) {
                            fields.push(aggregate);
                        } else if kept {
                            let h = &self.hierarchies[j];
                            let level = match &self.recoding {
                                Some(recoding) => recoding.levels(class)[j],
                                None => self.best.levels[j],
                            };
                            let leaf = self.qi_codes[j][row];
                            fields.push(h.label(level, h.generalize(leaf, level)));
                        } else {
                            fields.push(SUPPRESSED);
                        }
                    }
                    AttributeRole::Sensitive | AttributeRole::Insensitive => {
                        let c = self.dataset.column(column);
                        fields.push(&c.dictionary[c.codes[row] as usize]);
                    }
                }
            }
            emit(&fields)?;
        }
        Ok(())
    }

    /// Writes the release to `path` atomically: a temporary file in the same directory is
    /// written, flushed and renamed, so no partial release is ever left behind.
    pub fn write_release(&self, path: &Path, separator: u8, drop_suppressed: bool) -> Result<()> {
        write_atomically(path, |file| {
            let mut writer = csv::WriterBuilder::new()
                .delimiter(separator)
                .from_writer(std::io::BufWriter::with_capacity(1 << 20, file));
            writer.write_record(self.release_header())?;
            self.for_each_released_row(drop_suppressed, |fields| writer.write_record(fields))?;
            let inner = writer
                .into_inner()
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let file = inner.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            Ok(())
        })
    }
}

/// An aggregate as released: at most 6 decimals, trailing zeros removed.
fn format_aggregate(x: f64) -> String {
    let text = format!("{x:.6}");
    let trimmed = text.trim_end_matches('0').trim_end_matches('.');
    if trimmed == "-0" {
        "0".to_string()
    } else {
        trimmed.to_string()
    }
}

/// Writes `path` through a temporary sibling file and a rename.
pub(crate) fn write_atomically(
    path: &Path,
    write: impl FnOnce(std::fs::File) -> std::result::Result<(), Box<dyn std::error::Error>>,
) -> Result<()> {
    let directory = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "release".to_string());
    let temporary = directory.join(format!(".{name}.{}.partial", std::process::id()));
    let io_error = |source: std::io::Error| AnonymizeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::create(&temporary).map_err(io_error)?;
    if let Err(error) = write(file) {
        let _ = std::fs::remove_file(&temporary);
        return Err(io_error(std::io::Error::other(error.to_string())));
    }
    std::fs::rename(&temporary, path).map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        io_error(e)
    })
}

/// Serializes `report` as pretty JSON to `path`, atomically.
pub fn write_report_json(report: &Report, path: &Path) -> Result<()> {
    write_atomically(path, |file| {
        let mut out = std::io::BufWriter::new(file);
        serde_json::to_writer_pretty(&mut out, report)?;
        out.write_all(b"\n")?;
        out.flush()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::SearchConfig;

    #[test]
    fn median_microaggregation_and_aggregate_format() {
        assert_eq!(format_aggregate(31.0), "31");
        assert_eq!(format_aggregate(31.25), "31.25");
        assert_eq!(format_aggregate(-0.0000001), "0");
        let text = "age;sex\n30;F\n31;F\n39;F\n40;M\n44;M\n45;M\n47;M\n";
        let mut data = Dataset::from_reader(Path::new("t.csv"), text.as_bytes(), b';').unwrap();
        data.set_types(&BTreeMap::from([(
            "age".to_string(),
            AttributeType::Integer,
        )]))
        .unwrap();
        let bands = |v: &str| {
            let n: u32 = v.parse().unwrap();
            vec![v.to_string(), format!("{}0s", n / 10), "*".to_string()]
        };
        let ages = ["30", "31", "39", "40", "44", "45", "47"];
        let age = Hierarchy::from_rows("age", ages.iter().map(|v| bands(v)).collect()).unwrap();
        let sex = Hierarchy::from_rows(
            "sex",
            vec![vec!["F".into(), "*".into()], vec!["M".into(), "*".into()]],
        )
        .unwrap();
        let roles = AttributeRoles {
            quasi_identifiers: vec!["age".into(), "sex".into()],
            ..Default::default()
        };
        let settings = Settings {
            models: PrivacyModels::k_anonymity(3, 0.0),
            metric: Metric::Entropy,
            search: SearchConfig::default(),
            risk_threshold: 0.5,
            sampling_fraction: 0.5,
        };
        let hierarchies = BTreeMap::from([("age".to_string(), age), ("sex".to_string(), sex)]);
        let mut result = anonymize(&data, &roles, hierarchies, &settings).unwrap();
        assert_eq!(result.report().levels, vec![1, 0]);
        result.microaggregate("age", Aggregation::Median).unwrap();
        let mut rows = Vec::new();
        result
            .for_each_released_row(false, |f| {
                rows.push(f.join(";"));
                Ok::<(), ()>(())
            })
            .unwrap();
        // 30s: median of 30, 31, 39; 40s: mean of the middle pair 44 and 45.
        assert_eq!(rows[..3], ["31;F", "31;F", "31;F"]);
        assert_eq!(rows[3..], ["44.5;M", "44.5;M", "44.5;M", "44.5;M"]);
        let m = &result.report().microaggregation[0];
        assert_eq!(m.function, Aggregation::Median);
        assert!(matches!(
            result.microaggregate("sex", Aggregation::Mean),
            Err(AnonymizeError::TypeMismatch { .. })
        ));
    }
}
