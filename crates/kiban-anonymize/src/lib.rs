//! Anonymization engine of kiban (匿名加工): optimal full-domain generalization under
//! k-anonymity, ℓ-diversity and t-closeness with record suppression, ARX-compatible utility
//! metrics, a risk report, and an atomically written release.
//!
//! Principal types:
//! * [`Hierarchy`] — a validated generalization hierarchy, imported from ARX CSV
//!   ([`Hierarchy::read_arx`]) or built ([`HierarchySpec`]: intervals, dates, masking, groupings).
//! * [`Dataset`] — a delimited file read into dictionary-encoded columns.
//! * [`PrivacyModels`], [`Metric`], [`SearchConfig`] — what to protect and what to optimize.
//! * [`anonymize`] → [`Anonymization`] (report + [`Anonymization::write_release`]).
//! * [`JobConfig`] + [`run`] — the whole job (what `kiban anonymize` calls), returning a
//!   [`Report`]; [`write_report_json`] and [`write_report_html`] write it.
//! * [`RiskSummary`] — prosecutor, journalist and marketer risk, sample uniques and
//!   population-uniqueness estimates (Zayatz, Pitman, SNB, Dankar's rule).
//!
//! How it works: the rows are grouped once into their finest equivalence classes (all
//! quasi-identifiers at level 0, with counts and sensitive-value histograms); every node of the
//! lattice of level vectors is evaluated as a roll-up of those classes; monotonicity prunes the
//! lattice (predictive tagging) and probes run in parallel with rayon.
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

mod anonymize;
mod data;
mod engine;
mod error;
mod hierarchy;
mod html;
mod job;
mod metric;
mod privacy;
mod risk;
mod search;

pub use anonymize::{
    Anonymization, AttributeRoles, ClassSizeBin, Report, SensitiveAchieved, Settings, anonymize,
    write_report_json,
};
pub use data::{AttributeRole, Dataset, EncodedColumn};
pub use error::{AnonymizeError, MAX_LISTED_MISSING_VALUES, Result};
pub use hierarchy::{GroupingSpec, Hierarchy, HierarchySpec, IntervalSpec, MaskSpec, SUPPRESSED};
pub use html::{render_report_html, write_report_html};
pub use job::{HierarchySource, JobConfig, arx_hierarchy_path, run, run_on};
pub use metric::Metric;
pub use privacy::{LDiversity, PrivacyModels};
pub use risk::{
    DEFAULT_SAMPLING_FRACTION, JOURNALIST_WITHOUT_POPULATION, PROSECUTOR_RISK_BIN_EDGES,
    PopulationUniqueness, RiskBin, RiskSummary, UniquenessModel, pitman_uniques,
    population_uniqueness, shlosser_classes, snb_uniques, zayatz_uniques,
};
pub use search::{SearchConfig, SearchStrategy};
