//! A complete anonymization job, as read from a TOML/JSON job file or built by the CLI.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::age::{AgeAtEventSpec, DerivedAge};
use crate::anonymize::{
    Aggregation, AttributeRoles, Report, Settings, anonymize_private, anonymize_with_population,
    write_report_json,
};
use crate::data::Dataset;
use crate::dp::DifferentialPrivacy;
use crate::error::{AnonymizeError, Result};
use crate::hierarchy::{Hierarchy, HierarchySpec};
use crate::html::write_report_html;
use crate::metric::Metric;
use crate::privacy::PrivacyModels;
use crate::privacy::TDistance;
use crate::risk::DEFAULT_SAMPLING_FRACTION;
use crate::search::SearchConfig;
use crate::types::AttributeType;

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
    /// Input file: Parquet if its name ends in `.parquet`, otherwise delimited text with a
    /// header row.
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
    /// Declared column types (`age = "integer"`, `grade = "ordinal:low|mid|high"`); columns
    /// not named are strings (delimited input) or typed from the Arrow schema (Parquet).
    #[serde(default)]
    pub types: BTreeMap<String, AttributeType>,
    /// Population table (delimited with `separator`, or Parquet) for k-map and the journalist
    /// risk: the quasi-identifier columns and optionally a `count` column.
    #[serde(default)]
    pub population: Option<PathBuf>,
    /// Numeric quasi-identifiers released as their class's mean or median
    /// (`age = "mean"`), see [`crate::Anonymization::microaggregate`].
    #[serde(default)]
    pub microaggregation: BTreeMap<String, Aggregation>,
    /// Streaming mode (two passes over the input, the rows never held in memory): `true`,
    /// `false`, or absent to stream when the input has more than
    /// [`Self::streaming_row_threshold`] rows (estimated, see [`JobConfig::streams`]).
    #[serde(default)]
    pub streaming: Option<bool>,
    /// Rows above which an input is streamed when [`Self::streaming`] is absent; default
    /// [`DEFAULT_STREAMING_ROW_THRESHOLD`].
    #[serde(default = "default_streaming_row_threshold")]
    pub streaming_row_threshold: u64,
    /// SafePub-style (ε, δ)-differential privacy instead of `privacy`'s models (see
    /// [`crate::anonymize_private`]); TOML `[differential_privacy]` with `epsilon`, `delta`
    /// and optionally `search_budget`, `steps`, `seed`.
    #[serde(default)]
    pub differential_privacy: Option<DifferentialPrivacy>,
}

/// Default of [`JobConfig::streaming_row_threshold`]: inputs of more rows are streamed.
pub const DEFAULT_STREAMING_ROW_THRESHOLD: u64 = 1_000_000;

fn default_streaming_row_threshold() -> u64 {
    DEFAULT_STREAMING_ROW_THRESHOLD
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
            types: BTreeMap::new(),
            population: None,
            microaggregation: BTreeMap::new(),
            streaming: None,
            streaming_row_threshold: DEFAULT_STREAMING_ROW_THRESHOLD,
            differential_privacy: None,
        }
    }

    /// Whether [`run`] streams the input: as [`Self::streaming`] says, or when absent, if the
    /// input has more rows than [`Self::streaming_row_threshold`] and uses no feature that
    /// needs the rows in memory (δ-presence, microaggregation, differential privacy, a
    /// derived age-at-event column). The row count of a Parquet file
    /// is exact (from its metadata); that of a large delimited file is estimated from the
    /// length of its first lines.
    ///
    /// Errors: the input cannot be opened.
    pub fn streams(&self) -> Result<bool> {
        if let Some(streaming) = self.streaming {
            return Ok(streaming);
        }
        if self.privacy.delta_presence.is_some()
            || !self.microaggregation.is_empty()
            || self.differential_privacy.is_some()
            || self.derived_ages().next().is_some()
        {
            return Ok(false);
        }
        Ok(crate::stream::estimated_rows(&self.input)? > self.streaming_row_threshold)
    }

    /// The roles of the columns. The birth-date column of an age-at-event derivation is
    /// identifying (dropped) unless it is given a role.
    pub(crate) fn roles(&self) -> AttributeRoles {
        let mut identifying = self.identifying.clone();
        for (_, spec) in self.derived_ages() {
            let birth = &spec.birth_date;
            let has_role = self
                .quasi_identifiers
                .iter()
                .chain(&self.sensitive)
                .chain(&identifying)
                .any(|c| c == birth);
            if !has_role {
                identifying.push(birth.clone());
            }
        }
        AttributeRoles {
            quasi_identifiers: self.quasi_identifiers.clone(),
            sensitive: self.sensitive.clone(),
            identifying,
        }
    }

    /// The settings of the anonymization.
    pub(crate) fn settings(&self) -> Settings {
        Settings {
            models: self.privacy.clone(),
            metric: self.metric,
            search: self.search.clone(),
            risk_threshold: self.risk_threshold,
            sampling_fraction: self.sampling_fraction,
        }
    }

    /// Reads the input (by extension, see [`Dataset::read`]), applies [`Self::types`] and
    /// adds the derived columns: every hierarchy of kind `age_at_event` given for a column that
    /// is not in the input adds that column ([`Dataset::derive_age_at_event`]).
    pub fn load_dataset(&self) -> Result<Dataset> {
        let mut dataset = Dataset::read(&self.input, self.separator_byte()?)?;
        dataset.set_types(&self.types)?;
        for (column, spec) in self.derived_ages() {
            if dataset.column_index(column).is_err() {
                dataset.derive_age_at_event(column, spec)?;
            }
        }
        Ok(dataset)
    }

    /// The age-at-event hierarchies: (derived column, specification).
    pub(crate) fn derived_ages(&self) -> impl Iterator<Item = (&String, &AgeAtEventSpec)> {
        self.hierarchies
            .iter()
            .filter_map(|(column, source)| match source {
                HierarchySource::Built(HierarchySpec::AgeAtEvent(spec)) => Some((column, spec)),
                _ => None,
            })
    }

    /// Checks that a built hierarchy fits the type of its column: intervals need an integer or
    /// decimal column, dates a date column. An undeclared text column is validated as the
    /// builder's type instead (so a bad value is named by line).
    fn check_builder_type(
        &self,
        dataset: &Dataset,
        column: &str,
        index: usize,
        spec: &HierarchySpec,
    ) -> Result<()> {
        let (usage, required, accepted): (&str, &str, &[AttributeType]) = match spec {
            HierarchySpec::Intervals(_) => (
                "the intervals hierarchy builder",
                "integer or decimal",
                &[AttributeType::Integer, AttributeType::Decimal],
            ),
            HierarchySpec::Dates => (
                "the dates hierarchy builder",
                "date",
                &[AttributeType::Date],
            ),
            HierarchySpec::Mask(_)
            | HierarchySpec::Grouping(_)
            | HierarchySpec::Icd10
            | HierarchySpec::Icd10Levels(_)
            | HierarchySpec::AgeAtEvent(_) => {
                return Ok(());
            }
        };
        let actual = dataset.attribute_type(index);
        if accepted.contains(actual) {
            return Ok(());
        }
        let declared_string = self.types.get(column) == Some(&AttributeType::String);
        if *actual == AttributeType::String && !declared_string {
            return dataset.validate_column(column, &accepted[accepted.len() - 1]);
        }
        Err(AnonymizeError::TypeMismatch {
            column: column.to_string(),
            declared: actual.to_string(),
            usage: usage.to_string(),
            required: required.to_string(),
        })
    }

    pub(crate) fn separator_byte(&self) -> Result<u8> {
        u8::try_from(self.separator)
            .ok()
            .filter(u8::is_ascii)
            .ok_or_else(|| AnonymizeError::InvalidParameter("separator must be ASCII".into()))
    }

    /// Loads the hierarchy of every quasi-identifier (and of the sensitive attributes for
    /// hierarchical-distance t-closeness).
    pub fn load_hierarchies(&self, dataset: &Dataset) -> Result<BTreeMap<String, Hierarchy>> {
        self.load_hierarchies_covering(dataset, None)
    }

    /// As [`Self::load_hierarchies`]; built hierarchies also cover the quasi-identifier values
    /// of `population` (so that a population table can be generalized with them).
    pub fn load_hierarchies_covering(
        &self,
        dataset: &Dataset,
        population: Option<&Dataset>,
    ) -> Result<BTreeMap<String, Hierarchy>> {
        let separator = self.separator_byte()?;
        let mut loaded = BTreeMap::new();
        // Sensitive attributes need a hierarchy only for hierarchical-distance t-closeness.
        let sensitive: &[String] = if self.privacy.t_closeness.is_some()
            && self.privacy.t_distance == TDistance::Hierarchical
        {
            &self.sensitive
        } else {
            &[]
        };
        for column in self.quasi_identifiers.iter().chain(sensitive) {
            let index = dataset.column_index(column)?;
            let hierarchy = match self.hierarchies.get(column) {
                Some(HierarchySource::File { file }) => {
                    Hierarchy::read_arx(column, file, separator)?
                }
                Some(HierarchySource::Built(spec)) => {
                    self.check_builder_type(dataset, column, index, spec)?;
                    let own = dataset.column(index).dictionary.iter();
                    let from_population = population
                        .and_then(|p| p.column_index(column).ok().map(|i| p.column(i)))
                        .into_iter()
                        .flat_map(|c| c.dictionary.iter());
                    Hierarchy::build(column, spec, own.chain(from_population).map(String::as_str))?
                }
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
///
/// When [`JobConfig::streams`], the input is read twice and never held: the first pass counts
/// the finest equivalence classes, the second writes the release; report and release are the
/// same as in memory (only `elapsed_ms` differs).
pub fn run(job: &JobConfig) -> Result<Report> {
    if job.streams()? {
        let report = crate::stream::run_streaming(job)?;
        write_reports(job, &report)?;
        return Ok(report);
    }
    let dataset = job.load_dataset()?;
    run_on(job, &dataset)
}

fn write_reports(job: &JobConfig, report: &Report) -> Result<()> {
    if let Some(path) = &job.report {
        write_report_json(report, path)?;
    }
    if let Some(path) = &job.report_html {
        write_report_html(report, path)?;
    }
    Ok(())
}

/// As [`run`], on data already read (with [`JobConfig::load_dataset`], so that the declared
/// types are applied).
pub fn run_on(job: &JobConfig, dataset: &Dataset) -> Result<Report> {
    let separator = job.separator_byte()?;
    let population = match &job.population {
        Some(path) => Some(Dataset::read(path, separator)?),
        None => None,
    };
    let hierarchies = job.load_hierarchies_covering(dataset, population.as_ref())?;
    let roles = job.roles();
    let settings = job.settings();
    let result = match &job.differential_privacy {
        Some(privacy) => {
            if population.is_some() {
                return Err(AnonymizeError::InvalidParameter(
                    "(ε, δ)-DP does not use a population table".into(),
                ));
            }
            anonymize_private(dataset, &roles, hierarchies, &settings, privacy)?
        }
        None => {
            anonymize_with_population(dataset, &roles, hierarchies, &settings, population.as_ref())?
        }
    };
    let mut result = result;
    for (column, function) in &job.microaggregation {
        result.microaggregate(column, *function)?;
    }
    for (column, spec) in job.derived_ages() {
        result.report_derived_age(DerivedAge::measure(dataset, column, spec)?);
    }
    result.write_release(&job.output, separator, job.drop_suppressed)?;
    let report = result.report().clone();
    write_reports(job, &report)?;
    Ok(report)
}

/// Path helper for tests and callers: the conventional ARX hierarchy file of `column`.
pub fn arx_hierarchy_path(directory: &Path, dataset_name: &str, column: &str) -> PathBuf {
    directory.join(format!("{dataset_name}_hierarchy_{column}.csv"))
}
