//! Row types of kiban's tables and their Arrow schemas.
//!
//! Column order in Arrow is: the four [`RowCommon`] columns, then the table's own fields in
//! declaration order. `docs/data-model.md` describes every column.

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema, SchemaRef};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, OnceLock};

use crate::{ColumnValue, ModelError};

/// Columns every row of every table carries.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RowCommon {
    /// Provider that sent the row (`provider_id`).
    pub provider_id: String,
    /// Intake (acquisition) the row came from (`intake_id`).
    pub intake_id: String,
    /// Opaque key of the patient record at the provider (`patient_key`).
    pub patient_key: String,
    /// Logical id of the source FHIR resource at the provider (`source_id`).
    pub source_id: String,
}

impl RowCommon {
    /// Builds the common columns.
    pub fn new(provider_id: &str, intake_id: &str, patient_key: &str, source_id: &str) -> Self {
        Self {
            provider_id: provider_id.to_owned(),
            intake_id: intake_id.to_owned(),
            patient_key: patient_key.to_owned(),
            source_id: source_id.to_owned(),
        }
    }
}

/// A row type stored as one table.
pub trait TableRow: Sized + Clone + Send + Sync + 'static {
    /// The table name (also the directory name in the store).
    const TABLE: &'static str;
    /// The table's Arrow schema (shared, built once).
    fn schema() -> SchemaRef;
    /// Converts rows to one record batch.
    fn to_record_batch(rows: &[Self]) -> Result<RecordBatch, ModelError>;
    /// Reads rows back from a record batch of this table's schema.
    fn from_record_batch(batch: &RecordBatch) -> Result<Vec<Self>, ModelError>;
    /// The common columns of this row.
    fn common(&self) -> &RowCommon;
}

fn column<'a>(
    batch: &'a RecordBatch,
    table: &'static str,
    name: &'static str,
) -> Result<&'a ArrayRef, ModelError> {
    batch.column_by_name(name).ok_or(ModelError::MissingColumn {
        table,
        column: name,
    })
}

macro_rules! table_row {
    ($(#[$doc:meta])* $row:ident = $table:literal { $($(#[$fdoc:meta])* $field:ident : $ty:ty,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
        pub struct $row {
            /// Columns every row carries.
            pub common: RowCommon,
            $($(#[$fdoc])* pub $field: $ty,)*
        }

        impl TableRow for $row {
            const TABLE: &'static str = $table;

            fn schema() -> SchemaRef {
                static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
                SCHEMA
                    .get_or_init(|| {
                        Arc::new(Schema::new(vec![
                            Field::new("provider_id", <String as ColumnValue>::data_type(), false),
                            Field::new("intake_id", <String as ColumnValue>::data_type(), false),
                            Field::new("patient_key", <String as ColumnValue>::data_type(), false),
                            Field::new("source_id", <String as ColumnValue>::data_type(), false),
                            $(Field::new(
                                stringify!($field),
                                <$ty as ColumnValue>::data_type(),
                                <$ty as ColumnValue>::nullable(),
                            ),)*
                        ]))
                    })
                    .clone()
            }

            fn to_record_batch(rows: &[Self]) -> Result<RecordBatch, ModelError> {
                let columns: Vec<ArrayRef> = vec![
                    <String as ColumnValue>::build(rows.iter().map(|r| &r.common.provider_id)),
                    <String as ColumnValue>::build(rows.iter().map(|r| &r.common.intake_id)),
                    <String as ColumnValue>::build(rows.iter().map(|r| &r.common.patient_key)),
                    <String as ColumnValue>::build(rows.iter().map(|r| &r.common.source_id)),
                    $(<$ty as ColumnValue>::build(rows.iter().map(|r| &r.$field)),)*
                ];
                Ok(RecordBatch::try_new(Self::schema(), columns)?)
            }

            fn from_record_batch(batch: &RecordBatch) -> Result<Vec<Self>, ModelError> {
                let t = $table;
                let mut provider_id = <String as ColumnValue>::read(column(batch, t, "provider_id")?.as_ref(), t, "provider_id")?.into_iter();
                let mut intake_id = <String as ColumnValue>::read(column(batch, t, "intake_id")?.as_ref(), t, "intake_id")?.into_iter();
                let mut patient_key = <String as ColumnValue>::read(column(batch, t, "patient_key")?.as_ref(), t, "patient_key")?.into_iter();
                let mut source_id = <String as ColumnValue>::read(column(batch, t, "source_id")?.as_ref(), t, "source_id")?.into_iter();
                $(let mut $field = <$ty as ColumnValue>::read(
                    column(batch, t, stringify!($field))?.as_ref(), t, stringify!($field))?.into_iter();)*
                let mut rows = Vec::with_capacity(batch.num_rows());
                for _ in 0..batch.num_rows() {
                    rows.push($row {
                        common: RowCommon {
                            provider_id: provider_id.next().unwrap_or_default(),
                            intake_id: intake_id.next().unwrap_or_default(),
                            patient_key: patient_key.next().unwrap_or_default(),
                            source_id: source_id.next().unwrap_or_default(),
                        },
                        $($field: $field.next().unwrap_or_default(),)*
                    });
                }
                Ok(rows)
            }

            fn common(&self) -> &RowCommon {
                &self.common
            }
        }
    };
}

table_row!(
    /// Identity of one patient record as one provider holds it (kept in the identity store only).
    IdentityRow = "identity" {
        /// The provider's own patient id (患者ID).
        provider_patient_id: String,
        /// Name in kanji (漢字氏名), as recorded.
        name_kanji: Option<String>,
        /// Name in kana (カナ氏名), as recorded.
        name_kana: Option<String>,
        /// Birth date.
        birth_date: Option<NaiveDate>,
        /// Administrative sex code ([`crate::Sex::code`]).
        sex: String,
        /// Postal code (郵便番号).
        postal_code: Option<String>,
        /// Address (住所), as recorded.
        address: Option<String>,
        /// Phone number.
        phone: Option<String>,
        /// Insurer number (保険者番号).
        insurer_number: Option<String>,
        /// Insurance card symbol (記号).
        insured_symbol: Option<String>,
        /// Insurance card number (番号).
        insured_number: Option<String>,
        /// Insurance card branch number (枝番).
        insured_branch: Option<String>,
    }
);

table_row!(
    /// An encounter: outpatient visit, admission, emergency, home visit or checkup.
    EncounterRow = "encounters" {
        /// Encounter class code ([`crate::EncounterClass::code`]).
        class: String,
        /// FHIR status (planned, in-progress, finished, ...).
        status: String,
        /// Start of the encounter.
        start: Option<DateTime<Utc>>,
        /// End of the encounter.
        end: Option<DateTime<Utc>>,
        /// Department code (診療科コード).
        department_code: Option<String>,
        /// Department name.
        department_name: Option<String>,
    }
);

table_row!(
    /// A diagnosis (傷病名).
    ConditionRow = "conditions" {
        /// ICD-10 code.
        icd10: Option<String>,
        /// MEDIS standard disease-name exchange code.
        medis_code: Option<String>,
        /// Disease name as written.
        name: Option<String>,
        /// Suspected diagnosis (疑い).
        suspected: bool,
        /// Clinical status (active, resolved, ...).
        clinical_status: Option<String>,
        /// Onset date.
        onset_date: Option<NaiveDate>,
        /// End (abatement) date.
        abatement_date: Option<NaiveDate>,
        /// Date recorded.
        recorded_date: Option<NaiveDate>,
        /// Source id of the encounter, when given.
        encounter_id: Option<String>,
    }
);

table_row!(
    /// A prescription (処方オーダ), FHIR MedicationRequest.
    MedicationRequestRow = "medication_requests" {
        /// YJ code.
        yj_code: Option<String>,
        /// HOT9 code.
        hot_code: Option<String>,
        /// Drug name.
        name: Option<String>,
        /// Dose per administration.
        dose: Option<f64>,
        /// Dose unit (錠, mg, mL, ...).
        dose_unit: Option<String>,
        /// Frequency / timing (用法), code or text.
        frequency: Option<String>,
        /// Route (経口, 皮下, ...).
        route: Option<String>,
        /// Days supplied (日数).
        days: Option<i32>,
        /// Date authored (or dispensed).
        date: Option<NaiveDate>,
        /// FHIR status.
        status: Option<String>,
    }
);

table_row!(
    /// A dispense (調剤), FHIR MedicationDispense.
    MedicationDispenseRow = "medication_dispenses" {
        /// YJ code.
        yj_code: Option<String>,
        /// HOT9 code.
        hot_code: Option<String>,
        /// Drug name.
        name: Option<String>,
        /// Dose per administration.
        dose: Option<f64>,
        /// Dose unit.
        dose_unit: Option<String>,
        /// Frequency / timing (用法), code or text.
        frequency: Option<String>,
        /// Route.
        route: Option<String>,
        /// Days supplied.
        days: Option<i32>,
        /// Date handed over.
        date: Option<NaiveDate>,
        /// FHIR status.
        status: Option<String>,
    }
);

table_row!(
    /// A laboratory result (検体検査結果).
    LabObservationRow = "lab_observations" {
        /// JLAC10 code.
        jlac10: Option<String>,
        /// Test name.
        name: Option<String>,
        /// Numeric value.
        value: Option<f64>,
        /// Value as text when not numeric (e.g. "(+)").
        value_text: Option<String>,
        /// Unit (UCUM or Japanese).
        unit: Option<String>,
        /// Reference range low.
        reference_low: Option<f64>,
        /// Reference range high.
        reference_high: Option<f64>,
        /// Abnormal flag (H, L, N, A, ...).
        abnormal_flag: Option<String>,
        /// When the specimen was taken / result effective.
        effective: Option<DateTime<Utc>>,
        /// FHIR status.
        status: Option<String>,
    }
);

table_row!(
    /// An allergy or intolerance (薬剤アレルギー・その他アレルギー).
    AllergyRow = "allergies" {
        /// Category code ([`crate::AllergyCategory::code`]).
        category: String,
        /// Substance code.
        code: Option<String>,
        /// Code system of the substance code.
        code_system: Option<String>,
        /// Substance name.
        name: Option<String>,
        /// Criticality (low, high, unable-to-assess).
        criticality: Option<String>,
        /// Clinical status.
        clinical_status: Option<String>,
        /// Date recorded.
        recorded_date: Option<NaiveDate>,
    }
);

table_row!(
    /// An infection marker result (感染症情報: HBs antigen, HCV antibody, syphilis, HIV, ...).
    InfectionRow = "infections" {
        /// Test code (JLAC10).
        code: Option<String>,
        /// Code system.
        code_system: Option<String>,
        /// Test name.
        name: Option<String>,
        /// Result: positive, negative, or the text given.
        result: Option<String>,
        /// When effective.
        effective: Option<DateTime<Utc>>,
    }
);

table_row!(
    /// A procedure (手術・処置).
    ProcedureRow = "procedures" {
        /// Procedure code.
        code: Option<String>,
        /// Code system.
        code_system: Option<String>,
        /// Procedure name.
        name: Option<String>,
        /// When performed.
        performed: Option<DateTime<Utc>>,
        /// FHIR status.
        status: Option<String>,
    }
);

table_row!(
    /// A clinical document with its free text (referral letter, discharge summary, checkup report).
    DocumentRow = "documents" {
        /// Document kind code ([`crate::DocumentKind::code`]).
        kind: String,
        /// Title.
        title: Option<String>,
        /// Document date.
        date: Option<DateTime<Utc>>,
        /// Free text of the document (narrative of all sections).
        text: Option<String>,
    }
);

table_row!(
    /// A death (死亡).
    DeathRow = "deaths" {
        /// Date of death.
        death_date: Option<NaiveDate>,
        /// Cause of death (ICD-10), when known.
        cause_icd10: Option<String>,
    }
);

/// The clinical tables (everything but identity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClinicalTable {
    /// [`EncounterRow`].
    Encounters,
    /// [`ConditionRow`].
    Conditions,
    /// [`MedicationRequestRow`].
    MedicationRequests,
    /// [`MedicationDispenseRow`].
    MedicationDispenses,
    /// [`LabObservationRow`].
    LabObservations,
    /// [`AllergyRow`].
    Allergies,
    /// [`InfectionRow`].
    Infections,
    /// [`ProcedureRow`].
    Procedures,
    /// [`DocumentRow`].
    Documents,
    /// [`DeathRow`].
    Deaths,
}

impl ClinicalTable {
    /// Every clinical table.
    pub const ALL: &'static [ClinicalTable] = &[
        ClinicalTable::Encounters,
        ClinicalTable::Conditions,
        ClinicalTable::MedicationRequests,
        ClinicalTable::MedicationDispenses,
        ClinicalTable::LabObservations,
        ClinicalTable::Allergies,
        ClinicalTable::Infections,
        ClinicalTable::Procedures,
        ClinicalTable::Documents,
        ClinicalTable::Deaths,
    ];

    /// The table name.
    pub fn name(self) -> &'static str {
        match self {
            ClinicalTable::Encounters => EncounterRow::TABLE,
            ClinicalTable::Conditions => ConditionRow::TABLE,
            ClinicalTable::MedicationRequests => MedicationRequestRow::TABLE,
            ClinicalTable::MedicationDispenses => MedicationDispenseRow::TABLE,
            ClinicalTable::LabObservations => LabObservationRow::TABLE,
            ClinicalTable::Allergies => AllergyRow::TABLE,
            ClinicalTable::Infections => InfectionRow::TABLE,
            ClinicalTable::Procedures => ProcedureRow::TABLE,
            ClinicalTable::Documents => DocumentRow::TABLE,
            ClinicalTable::Deaths => DeathRow::TABLE,
        }
    }

    /// Parses a table name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| t.name() == name)
    }

    /// The table's Arrow schema.
    pub fn schema(self) -> SchemaRef {
        match self {
            ClinicalTable::Encounters => EncounterRow::schema(),
            ClinicalTable::Conditions => ConditionRow::schema(),
            ClinicalTable::MedicationRequests => MedicationRequestRow::schema(),
            ClinicalTable::MedicationDispenses => MedicationDispenseRow::schema(),
            ClinicalTable::LabObservations => LabObservationRow::schema(),
            ClinicalTable::Allergies => AllergyRow::schema(),
            ClinicalTable::Infections => InfectionRow::schema(),
            ClinicalTable::Procedures => ProcedureRow::schema(),
            ClinicalTable::Documents => DocumentRow::schema(),
            ClinicalTable::Deaths => DeathRow::schema(),
        }
    }

    /// Japanese label.
    pub fn label_ja(self) -> &'static str {
        match self {
            ClinicalTable::Encounters => "受診",
            ClinicalTable::Conditions => "傷病名",
            ClinicalTable::MedicationRequests => "処方",
            ClinicalTable::MedicationDispenses => "調剤",
            ClinicalTable::LabObservations => "検体検査",
            ClinicalTable::Allergies => "アレルギー",
            ClinicalTable::Infections => "感染症",
            ClinicalTable::Procedures => "処置・手術",
            ClinicalTable::Documents => "文書",
            ClinicalTable::Deaths => "死亡",
        }
    }

    /// English label.
    pub fn label_en(self) -> &'static str {
        match self {
            ClinicalTable::Encounters => "Encounters",
            ClinicalTable::Conditions => "Conditions",
            ClinicalTable::MedicationRequests => "Medication requests",
            ClinicalTable::MedicationDispenses => "Medication dispenses",
            ClinicalTable::LabObservations => "Lab observations",
            ClinicalTable::Allergies => "Allergies",
            ClinicalTable::Infections => "Infections",
            ClinicalTable::Procedures => "Procedures",
            ClinicalTable::Documents => "Documents",
            ClinicalTable::Deaths => "Deaths",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_round_trips_through_arrow() {
        let common = RowCommon::new("p", "i", "k", "s");
        let lab = LabObservationRow {
            common: common.clone(),
            jlac10: Some("3D046000001920402".into()),
            value: Some(7.2),
            effective: DateTime::from_timestamp(1_700_000_000, 0),
            ..Default::default()
        };
        let batch =
            LabObservationRow::to_record_batch(&[lab.clone(), LabObservationRow::default()])
                .unwrap();
        assert_eq!(
            LabObservationRow::from_record_batch(&batch).unwrap()[0],
            lab
        );
        let id = IdentityRow {
            common,
            birth_date: NaiveDate::from_ymd_opt(1948, 2, 29),
            name_kanji: Some("髙橋 花子".into()),
            ..Default::default()
        };
        let batch = IdentityRow::to_record_batch(std::slice::from_ref(&id)).unwrap();
        assert_eq!(IdentityRow::from_record_batch(&batch).unwrap(), vec![id]);
        for t in ClinicalTable::ALL {
            assert_eq!(ClinicalTable::from_name(t.name()), Some(*t));
            assert_eq!(t.schema().field(0).name(), "provider_id");
        }
    }

    #[test]
    fn a_batch_of_another_table_is_an_error_not_a_panic() {
        let batch = DeathRow::to_record_batch(&[DeathRow::default()]).unwrap();
        let err = ConditionRow::from_record_batch(&batch).unwrap_err();
        assert!(err.to_string().contains("icd10"), "{err}");
    }
}
