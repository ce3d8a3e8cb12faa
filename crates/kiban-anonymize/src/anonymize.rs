//! The anonymization run: encode, search, report, release.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::data::{AttributeRole, Dataset};
use crate::engine::{Evaluation, FinestClasses};
use crate::error::{AnonymizeError, Result};
use crate::hierarchy::{Hierarchy, SUPPRESSED};
use crate::metric::{Metric, MetricTables};
use crate::privacy::{LDiversity, PrivacyModels, entropy, equal_distance_emd};
use crate::risk::RiskSummary;
use crate::search::{Problem, SearchConfig, SearchStrategy, search};

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
    /// Records in the input.
    pub records: usize,
    /// Records suppressed (all quasi-identifiers `*`).
    pub suppressed_records: usize,
    /// Smallest released class (achieved k); 0 if everything was suppressed.
    pub k: usize,
    /// Achieved ℓ (per the configured variant, minimum over sensitive attributes), if ℓ-diversity
    /// is configured.
    pub l: Option<f64>,
    /// Achieved t (maximum over sensitive attributes), if t-closeness is configured.
    pub t: Option<f64>,
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
}

/// Assigns roles to the columns of `dataset`, checking names and conflicts.
fn column_roles(dataset: &Dataset, roles: &AttributeRoles) -> Result<Vec<AttributeRole>> {
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

/// Anonymizes `dataset`: `hierarchies` maps every quasi-identifier to its hierarchy.
pub fn anonymize<'a>(
    dataset: &'a Dataset,
    roles: &AttributeRoles,
    mut hierarchies: BTreeMap<String, Hierarchy>,
    settings: &Settings,
) -> Result<Anonymization<'a>> {
    let started = Instant::now();
    if roles.quasi_identifiers.is_empty() {
        return Err(AnonymizeError::NoQuasiIdentifiers);
    }
    let column_roles = column_roles(dataset, roles)?;
    settings
        .models
        .validate(dataset.row_count(), roles.sensitive.len())?;
    if !(settings.sampling_fraction > 0.0 && settings.sampling_fraction <= 1.0) {
        return Err(AnonymizeError::InvalidParameter(
            "sampling_fraction must be within (0, 1]".into(),
        ));
    }
    let mut qi_columns = Vec::new();
    let mut ordered = Vec::new();
    let mut qi_codes = Vec::new();
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
        // Translate the column dictionary to hierarchy leaf codes once, then map every row.
        let to_leaf: Vec<u32> = column
            .dictionary
            .iter()
            .map(|v| hierarchy.leaf_code(v).unwrap_or(0))
            .collect();
        qi_codes.push(
            column
                .codes
                .iter()
                .map(|&c| to_leaf[c as usize])
                .collect::<Vec<u32>>(),
        );
        qi_columns.push(index);
        ordered.push(hierarchy);
    }
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
    let classes = FinestClasses::build(&ordered, &qi_codes, &sensitive_codes);
    let tables = MetricTables::new(&ordered, &classes);
    let problem = Problem::new(
        &ordered,
        &classes,
        &settings.models,
        settings.metric,
        &tables,
        settings.models.suppression_budget(dataset.row_count()),
    );
    let outcome = search(&problem, &settings.search)?;
    let report = build_report(
        dataset,
        roles,
        settings,
        &classes,
        &outcome.best,
        ReportSearch {
            information_loss: outcome.information_loss,
            strategy: outcome.strategy,
            lattice_size: u64::try_from(outcome.lattice_size).unwrap_or(u64::MAX),
            nodes_checked: outcome.nodes_checked,
            started,
        },
    );
    Ok(Anonymization {
        dataset,
        hierarchies: ordered,
        roles: column_roles,
        qi_columns,
        qi_codes,
        classes,
        best: outcome.best,
        report,
    })
}

struct ReportSearch {
    information_loss: f64,
    strategy: SearchStrategy,
    lattice_size: u64,
    nodes_checked: usize,
    started: Instant,
}

fn build_report(
    dataset: &Dataset,
    roles: &AttributeRoles,
    settings: &Settings,
    classes: &FinestClasses,
    best: &Evaluation,
    search: ReportSearch,
) -> Report {
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
    let risk = RiskSummary::from_class_sizes(
        &histogram,
        dataset.row_count(),
        settings.sampling_fraction,
        settings.risk_threshold,
    );
    let sensitive: Vec<SensitiveAchieved> = roles
        .sensitive
        .iter()
        .enumerate()
        .map(|(s, column)| {
            let per_group = classes.group_histograms(s, best);
            let overall = classes.overall(s);
            let mut achieved = SensitiveAchieved {
                column: column.clone(),
                distinct_l: usize::MAX,
                entropy_l: f64::INFINITY,
                t: 0.0,
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
    let t = settings
        .models
        .t_closeness
        .map(|_| sensitive.iter().map(|a| a.t).fold(0.0, f64::max));
    Report {
        quasi_identifiers: roles.quasi_identifiers.clone(),
        levels: best.levels.clone(),
        information_loss: search.information_loss,
        metric: settings.metric,
        metric_name: settings.metric.name().to_string(),
        search: search.strategy,
        lattice_size: search.lattice_size,
        nodes_checked: search.nodes_checked,
        records: dataset.row_count(),
        suppressed_records: best.suppressed_records,
        k,
        l,
        t,
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
    }
}

impl Anonymization<'_> {
    /// The report of this anonymization.
    pub fn report(&self) -> &Report {
        &self.report
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
            let class = self.classes.row_class[row] as usize;
            let group = self.best.class_group[class] as usize;
            let kept = self.best.kept[group];
            if !kept && drop_suppressed {
                continue;
            }
            fields.clear();
            for (column, role) in self.roles.iter().enumerate() {
                match role {
                    AttributeRole::Identifying => {}
                    AttributeRole::QuasiIdentifying => {
                        let j = qi_position[column];
                        if kept {
                            let h = &self.hierarchies[j];
                            let level = self.best.levels[j];
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
