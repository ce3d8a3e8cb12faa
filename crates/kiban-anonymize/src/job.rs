//! A complete anonymization job, as read from a TOML/JSON job file or built by the CLI.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::anonymize::{AttributeRoles, Report, Settings, anonymize, write_report_json};
use crate::data::Dataset;
use crate::error::{AnonymizeError, Result};
use crate::hierarchy::{Hierarchy, HierarchySpec};
use crate::html::write_report_html;
use crate::metric::Metric;
use crate::privacy::PrivacyModels;
use crate::risk::DEFAULT_SAMPLING_FRACTION;
use crate::search::SearchConfig;

/// Where the hierarchy of one quasi-identifier comes from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum HierarchySource {
    /// An ARX-format CSV file.
    File {
        /// Path of the file.
        file: PathBuf,
    },
    /// Built from the column's values.
    Built(HierarchySpec),
}

/// A job: input, roles, hierarchies, privacy models, metric and outputs.
///
/// Hierarchies are taken from `hierarchies` first, then from `hierarchy_dir`, where the file of
/// column `c` is `<input stem>_hierarchy_<c>.csv` or else the only file named
/// `*_hierarchy_<c>.csv`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    /// Delimited input file with a header row.
    pub input: PathBuf,
    /// Field separator of the input, the hierarchy files and the release.
    #[serde(default = "default_separator")]
    pub separator: char,
    /// Release file to write.
    pub output: PathBuf,
    /// JSON report file to write, if any.
    #[serde(default)]
    pub report: Option<PathBuf>,
    /// Quasi-identifying columns, in the order of the level vector.
    pub quasi_identifiers: Vec<String>,
    /// Sensitive columns.
    #[serde(default)]
    pub sensitive: Vec<String>,
    /// Identifying columns (dropped).
    #[serde(default)]
    pub identifying: Vec<String>,
    /// Directory of ARX hierarchy files.
    #[serde(default)]
    pub hierarchy_dir: Option<PathBuf>,
    /// Per-column hierarchy sources, overriding `hierarchy_dir`.
    #[serde(default)]
    pub hierarchies: BTreeMap<String, HierarchySource>,
    /// Privacy models.
    pub privacy: PrivacyModels,
    /// Metric to optimize.
    #[serde(default)]
    pub metric: Metric,
    /// Search settings.
    #[serde(default)]
    pub search: SearchConfig,
    /// Drop suppressed records instead of releasing them as `*` rows.
    #[serde(default)]
    pub drop_suppressed: bool,
    /// Prosecutor risk above which a record counts as at risk.
    #[serde(default = "default_risk_threshold")]
    pub risk_threshold: f64,
    /// Share of the population that the input is, in `(0, 1]`, for the population-uniqueness
    /// estimates; default [`DEFAULT_SAMPLING_FRACTION`] (1 %).
    #[serde(default = "default_sampling_fraction")]
    pub sampling_fraction: f64,
    /// HTML report file to write, if any (bilingual, self-contained, with SVG plots).
    #[serde(default)]
    pub report_html: Option<PathBuf>,
}

fn default_sampling_fraction() -> f64 {
    DEFAULT_SAMPLING_FRACTION
}

fn default_separator() -> char {
    ';'
}

fn default_risk_threshold() -> f64 {
    0.2
}

impl JobConfig {
    /// A k-anonymity job with defaults (separator `;`, entropy metric, keep suppressed rows).
    pub fn new(
        input: impl Into<PathBuf>,
        output: impl Into<PathBuf>,
        quasi_identifiers: Vec<String>,
        privacy: PrivacyModels,
    ) -> Self {
        JobConfig {
            input: input.into(),
            separator: default_separator(),
            output: output.into(),
            report: None,
            quasi_identifiers,
            sensitive: Vec::new(),
            identifying: Vec::new(),
            hierarchy_dir: None,
            hierarchies: BTreeMap::new(),
            privacy,
            metric: Metric::default(),
            search: SearchConfig::default(),
            drop_suppressed: false,
            risk_threshold: default_risk_threshold(),
            sampling_fraction: default_sampling_fraction(),
            report_html: None,
        }
    }

    fn separator_byte(&self) -> Result<u8> {
        u8::try_from(self.separator)
            .ok()
            .filter(u8::is_ascii)
            .ok_or_else(|| AnonymizeError::InvalidParameter("separator must be ASCII".into()))
    }

    /// Loads the hierarchy of every quasi-identifier.
    pub fn load_hierarchies(&self, dataset: &Dataset) -> Result<BTreeMap<String, Hierarchy>> {
        let separator = self.separator_byte()?;
        let mut loaded = BTreeMap::new();
        for column in &self.quasi_identifiers {
            let index = dataset.column_index(column)?;
            let hierarchy = match self.hierarchies.get(column) {
                Some(HierarchySource::File { file }) => {
                    Hierarchy::read_arx(column, file, separator)?
                }
                Some(HierarchySource::Built(spec)) => Hierarchy::build(
                    column,
                    spec,
                    dataset.column(index).dictionary.iter().map(String::as_str),
                )?,
                None => {
                    let file = self.find_hierarchy_file(column)?;
                    Hierarchy::read_arx(column, &file, separator)?
                }
            };
            loaded.insert(column.clone(), hierarchy);
        }
        Ok(loaded)
    }

    fn find_hierarchy_file(&self, column: &str) -> Result<PathBuf> {
        let missing = || AnonymizeError::MissingHierarchy {
            column: column.to_string(),
        };
        let directory = self.hierarchy_dir.as_deref().ok_or_else(missing)?;
        let suffix = format!("_hierarchy_{column}.csv");
        if let Some(stem) = self.input.file_stem() {
            let exact = directory.join(format!("{}{suffix}", stem.to_string_lossy()));
            if exact.is_file() {
                return Ok(exact);
            }
        }
        let entries = std::fs::read_dir(directory).map_err(|source| AnonymizeError::Io {
            path: directory.to_path_buf(),
            source,
        })?;
        let matches: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().ends_with(&suffix))
            })
            .collect();
        match matches.as_slice() {
            [only] => Ok(only.clone()),
            _ => Err(missing()),
        }
    }
}

/// Runs a job: reads the input, anonymizes, writes the release (and the JSON and HTML reports
/// if configured) atomically, and returns the report. Nothing is written if any step fails.
pub fn run(job: &JobConfig) -> Result<Report> {
    let separator = job.separator_byte()?;
    let dataset = Dataset::read_delimited(&job.input, separator)?;
    run_on(job, &dataset)
}

/// As [`run`], on data already read.
pub fn run_on(job: &JobConfig, dataset: &Dataset) -> Result<Report> {
    let separator = job.separator_byte()?;
    let hierarchies = job.load_hierarchies(dataset)?;
    let roles = AttributeRoles {
        quasi_identifiers: job.quasi_identifiers.clone(),
        sensitive: job.sensitive.clone(),
        identifying: job.identifying.clone(),
    };
    let settings = Settings {
        models: job.privacy.clone(),
        metric: job.metric,
        search: job.search.clone(),
        risk_threshold: job.risk_threshold,
        sampling_fraction: job.sampling_fraction,
    };
    let result = anonymize(dataset, &roles, hierarchies, &settings)?;
    result.write_release(&job.output, separator, job.drop_suppressed)?;
    let report = result.report().clone();
    if let Some(path) = &job.report {
        write_report_json(&report, path)?;
    }
    if let Some(path) = &job.report_html {
        write_report_html(&report, path)?;
    }
    Ok(report)
}

/// Path helper for tests and callers: the conventional ARX hierarchy file of `column`.
pub fn arx_hierarchy_path(directory: &Path, dataset_name: &str, column: &str) -> PathBuf {
    directory.join(format!("{dataset_name}_hierarchy_{column}.csv"))
}
