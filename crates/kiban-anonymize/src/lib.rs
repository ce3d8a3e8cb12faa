//! Anonymization engine of kiban (匿名加工): optimal full-domain generalization under
//! k-anonymity, ℓ-diversity, t-closeness (equal, ordered or hierarchical distance), k-map and
//! δ-presence with record suppression, ARX-compatible utility metrics, optional
//! microaggregation, a risk report, and an atomically written release.
//!
//! Principal types:
//! * [`Hierarchy`] — a validated generalization hierarchy, imported from ARX CSV
//!   ([`Hierarchy::read_arx`]) or built ([`HierarchySpec`]: intervals, dates, masking,
//!   groupings, ICD-10 code → 3-character category → WHO 2019 block → chapter
//!   ([`HierarchySpec::Icd10`], levels chosen with [`Icd10Spec`]), and age at an event
//!   derived from a birth date and an event date ([`AgeAtEventSpec`],
//!   [`Dataset::derive_age_at_event`]): exact age → 5-year → 10-year band, `90+` top-coded).
//! * [`Dataset`] — a delimited ([`Dataset::read_delimited`]) or Parquet
//!   ([`Dataset::read_parquet`], read batch by batch) file in dictionary-encoded columns, each
//!   with an [`AttributeType`] (string, integer, decimal, date, ordinal, code) declared with
//!   [`Dataset::set_types`] or inferred from the Arrow schema. Values are validated at load;
//!   errors name file, line, column and type rule, never the value. Missing values (`""`, `?`,
//!   `NULL`) are valid in every type and stay their own value. Interval builders need an
//!   integer or decimal column, the date builder a date column.
//! * [`PrivacyModels`] (k, suppression limit, [`LDiversity`], t-closeness with a
//!   [`TDistance`], k-map against a population table, [`DeltaPresence`]), [`Metric`] (incl.
//!   [`Metric::KlDivergence`]), [`SearchConfig`] — what to protect and what to optimize;
//!   [`SearchConfig::local_recoding`] releases the records the optimum suppresses with a
//!   coarser generalization instead (ARX's iterated global recoding, [`LocalRecodingReport`]).
//! * [`anonymize`] / [`anonymize_with_population`] → [`Anonymization`] (report,
//!   [`Anonymization::microaggregate`], [`Anonymization::write_release`]).
//! * [`JobConfig`] + [`run`] — the whole job (what `kiban anonymize` calls), returning a
//!   [`Report`]; [`write_report_json`] and [`write_report_html`] write it. Large inputs are
//!   streamed ([`JobConfig::streaming`], [`JobConfig::streaming_row_threshold`], default
//!   [`DEFAULT_STREAMING_ROW_THRESHOLD`] rows): two passes over the file, memory bounded by the
//!   finest classes and the dictionaries, not by the rows; same report and release. TOML keys added for
//!   the models above: `[types]`, `population`, `[microaggregation]`, and in `[privacy]`
//!   `t_distance`, `k_map`, `[privacy.delta_presence]`.
//! * [`DifferentialPrivacy`] + [`anonymize_private`] — SafePub-style (ε, δ)-differential
//!   privacy: random sampling with β = 1 − e^(−ε_anon), k from (ε_anon, δ, β) ([`safe_k`]),
//!   the generalization chosen by the exponential mechanism over SafePub's granularity score
//!   (sensitivity [`score_sensitivity`]); TOML `[differential_privacy]`.
//! * [`RiskSummary`] — prosecutor, journalist (from the population table when one is given)
//!   and marketer risk, sample uniques and population-uniqueness estimates (Zayatz, Pitman,
//!   SNB, Dankar's rule).
//!
//! How it works: the rows (or, streaming, the records of the first pass) are grouped once into their finest equivalence classes (all
//! quasi-identifiers at level 0, with counts and sensitive-value histograms); every node of the
//! lattice of level vectors is evaluated as a roll-up of those classes; monotonicity prunes the
//! lattice (predictive tagging) and probes run in parallel with rayon. With δ-presence, which
//! is not monotone, every node of the lattice is evaluated instead; the KL divergence has no
//! useful lower bound, so all acceptable nodes are evaluated for it.
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::path::Path;
//! use kiban_anonymize::{
//!     AttributeRoles, Dataset, Hierarchy, HierarchySpec, IntervalSpec, Metric, PrivacyModels,
//!     SearchConfig, Settings, anonymize,
//! };
//!
//! let text = "age;sex\n31;F\n33;F\n34;F\n47;M\n45;M\n44;M\n";
//! let data = Dataset::from_reader(Path::new("example.csv"), text.as_bytes(), b';')?;
//! let ages = data.column(data.column_index("age")?);
//! let age = Hierarchy::build(
//!     "age",
//!     &HierarchySpec::Intervals(IntervalSpec { bottom: 0, top: 90, widths: vec![10, 30] }),
//!     ages.dictionary.iter().map(String::as_str),
//! )?;
//! let sex = Hierarchy::from_rows("sex", vec![
//!     vec!["F".into(), "*".into()],
//!     vec!["M".into(), "*".into()],
//! ])?;
//! let roles = AttributeRoles {
//!     quasi_identifiers: vec!["age".into(), "sex".into()],
//!     ..Default::default()
//! };
//! let settings = Settings {
//!     models: PrivacyModels::k_anonymity(3, 0.0),
//!     metric: Metric::Entropy,
//!     search: SearchConfig::default(),
//!     risk_threshold: 0.2,
//!     sampling_fraction: kiban_anonymize::DEFAULT_SAMPLING_FRACTION,
//! };
//! let hierarchies = BTreeMap::from([("age".to_string(), age), ("sex".to_string(), sex)]);
//! let result = anonymize(&data, &roles, hierarchies, &settings)?;
//! assert_eq!(result.report().levels, vec![1, 0]);
//! assert_eq!(result.report().k, 3);
//! # Ok::<(), kiban_anonymize::AnonymizeError>(())
//! ```
#![warn(missing_docs)]

mod age;
mod anonymize;
mod data;
mod dp;
mod engine;
mod error;
mod hierarchy;
mod html;
mod icd10;
mod job;
mod local;
mod metric;
mod privacy;
mod risk;
mod search;
mod stream;
mod types;

pub use age::{AgeAtEventSpec, DEFAULT_AGE_TOP, DerivedAge, age_at};
pub use anonymize::{
    Aggregation, Anonymization, AttributeRoles, ClassSizeBin, JOURNALIST_WITH_POPULATION,
    Microaggregated, POPULATION_COUNT_COLUMN, Report, SensitiveAchieved, Settings, anonymize,
    anonymize_private, anonymize_with_population, write_report_json,
};
pub use data::{AttributeRole, Dataset, EncodedColumn};
pub use dp::{
    DEFAULT_SEARCH_BUDGET, DEFAULT_SEARCH_STEPS, DifferentialPrivacy, DifferentialPrivacyAchieved,
    safe_delta, safe_k, score_sensitivity,
};
pub use error::{AnonymizeError, MAX_LISTED_MISSING_VALUES, Result};
pub use hierarchy::{
    GroupingSpec, Hierarchy, HierarchySpec, Icd10Level, Icd10Spec, IntervalSpec, MaskSpec,
    SUPPRESSED,
};
pub use html::{render_report_html, write_report_html};
pub use job::{
    DEFAULT_STREAMING_ROW_THRESHOLD, HierarchySource, JobConfig, arx_hierarchy_path, run, run_on,
};
pub use local::{LOCAL_RECODING_METHOD, LocalRecodingReport, LocalRecodingStep};
pub use metric::Metric;
pub use privacy::{DeltaPresence, LDiversity, PrivacyModels, TDistance};
pub use risk::{
    DEFAULT_SAMPLING_FRACTION, JOURNALIST_WITHOUT_POPULATION, PROSECUTOR_RISK_BIN_EDGES,
    PopulationUniqueness, RiskBin, RiskSummary, UniquenessModel, pitman_uniques,
    population_uniqueness, shlosser_classes, snb_uniques, zayatz_uniques,
};
pub use search::{DEFAULT_MAX_LOCAL_RECODING_ITERATIONS, SearchConfig, SearchStrategy};
pub use types::{AttributeType, MISSING_VALUES, UnknownAttributeType, is_missing};
