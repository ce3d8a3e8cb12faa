//! Domain types and Arrow schemas of kiban's data.
//!
//! kiban keeps two kinds of data apart (R-L4 in `SYSTEM.md`):
//!
//! - **identity**: one [`IdentityRow`] per patient record *as a provider holds it* (name in
//!   kanji and kana, birth date, sex, address, insurance card, the provider's own patient id);
//! - **clinical**: the tables of [`ClinicalTable`] (encounters, conditions, medication requests
//!   and dispenses, lab observations, allergies, infections, procedures, documents, deaths).
//!
//! The two meet only through the opaque [`PatientKey`]: a keyed hash of the provider and its
//! patient id, computed by the store, that reveals nothing by itself. Every clinical row also
//! carries the provider and the intake it came from.
//!
//! Each table is a plain Rust row type implementing [`TableRow`], which gives its Arrow schema
//! and converts rows to and from Arrow `RecordBatch`es:
//!
//! ```
//! use kiban_model::{ConditionRow, RowCommon, TableRow};
//!
//! let row = ConditionRow {
//!     common: RowCommon::new("prov-001", "intake-1", "pk-1", "cond-1"),
//!     icd10: Some("E11.9".into()),
//!     medis_code: Some("ND6F".into()),
//!     name: Some("2型糖尿病".into()),
//!     suspected: false,
//!     ..Default::default()
//! };
//! let batch = ConditionRow::to_record_batch(std::slice::from_ref(&row)).unwrap();
//! assert_eq!(batch.num_rows(), 1);
//! assert_eq!(ConditionRow::from_record_batch(&batch).unwrap(), vec![row]);
//! ```

mod codes;
mod column;
mod domain;
mod regions;
mod tables;

pub use codes::{CodeSystem, canonical_code_system};
pub use column::ColumnValue;
pub use domain::{
    AllergyCategory, DocumentKind, EncounterClass, IntakeId, PatientKey, ProviderId, ProviderKind,
    Sex,
};
pub use regions::{
    PREFECTURES, REGIONAL_BLOCKS, block_prefectures, prefecture_code, regional_block,
};
pub use tables::{
    AllergyRow, ClinicalTable, ConditionRow, DeathRow, DocumentRow, EncounterRow, IdentityRow,
    InfectionRow, LabObservationRow, MedicationDispenseRow, MedicationRequestRow, ProcedureRow,
    RowCommon, TableRow,
};

/// Errors raised when converting between rows and Arrow data.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The record batch does not have a column the table requires.
    #[error("table {table}: column {column} is missing")]
    MissingColumn {
        /// Table name.
        table: &'static str,
        /// Column name.
        column: &'static str,
    },
    /// A column has an unexpected Arrow type.
    #[error("table {table}: column {column} has type {found}, expected {expected}")]
    WrongType {
        /// Table name.
        table: &'static str,
        /// Column name.
        column: &'static str,
        /// Type found.
        found: String,
        /// Type expected.
        expected: String,
    },
    /// A non-nullable column holds a null.
    #[error("table {table}: column {column} row {row} is null but the column is required")]
    UnexpectedNull {
        /// Table name.
        table: &'static str,
        /// Column name.
        column: &'static str,
        /// Row index.
        row: usize,
    },
    /// Arrow refused to build a batch.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}
