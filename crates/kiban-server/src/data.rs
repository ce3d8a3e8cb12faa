//! What the portal and the API show, read from the metadata store. Pages and the JSON API share
//! these functions so both always report the same numbers.

use kiban_metadata::{Intake, Metadata, MetadataError, Provider, QuarantineListing, TableCount};
use kiban_model::ClinicalTable;
use serde::Serialize;

/// Name of the table holding one row per patient record (identity data, per provider).
pub const IDENTITY_TABLE: &str = "identity";

/// Most intakes listed at once on the intake log.
pub const INTAKE_LOG_LIMIT: i64 = 200;
/// Intakes on the dashboard.
pub const DASHBOARD_INTAKES: i64 = 10;
/// Most quarantine entries listed at once.
pub const QUARANTINE_LIMIT: i64 = 1000;

/// Headline counts of the dashboard (`GET /api/v1/summary`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Registered providers.
    pub providers: i64,
    /// Rows of the identity table: patient records, per provider (not yet linked across them).
    pub patient_records: i64,
    /// Rows over all clinical tables.
    pub clinical_records: i64,
    /// Intakes over all providers.
    pub intakes: i64,
    /// Resources rejected into the quarantine over all intakes.
    pub quarantined_resources: i64,
    /// Label of the data directory the server reads.
    pub data_dir: String,
}

/// Rows held in one table, with its labels (`GET /api/v1/tables`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TableSummary {
    /// Table name (`identity`, `conditions`, ...).
    pub table_name: String,
    /// Japanese label.
    pub label_ja: String,
    /// English label.
    pub label_en: String,
    /// Whether it is a clinical table (everything but identity).
    pub clinical: bool,
    /// Rows over all committed segments.
    pub rows: i64,
    /// Committed segments.
    pub segments: i64,
    /// Bytes on disk.
    pub bytes: i64,
}

impl TableSummary {
    /// Labels a table count of the metadata store.
    pub fn from_count(count: TableCount) -> Self {
        let (label_ja, label_en, clinical) = match ClinicalTable::from_name(&count.table_name) {
            Some(table) => (table.label_ja(), table.label_en(), true),
            None if count.table_name == IDENTITY_TABLE => {
                ("患者レコード", "Patient records", false)
            }
            // A table this version does not know: show its name rather than hide its rows.
            None => (count.table_name.as_str(), count.table_name.as_str(), false),
        };
        Self {
            label_ja: label_ja.to_owned(),
            label_en: label_en.to_owned(),
            table_name: count.table_name,
            clinical,
            rows: count.rows,
            segments: count.segments,
            bytes: count.bytes,
        }
    }
}

/// Items of one category in an acquisition record.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ItemCount {
    /// Category (FHIR resource type).
    pub category: String,
    /// Items received.
    pub count: i64,
}

/// One intake with its item counts by category: the acquisition record of Art. 33
/// (`GET /api/v1/intakes`, `GET /api/v1/intakes/{id}`).
#[derive(Debug, Clone, Serialize)]
pub struct IntakeRecord {
    /// The intake.
    #[serde(flatten)]
    pub intake: Intake,
    /// Item counts by category.
    pub item_counts: Vec<ItemCount>,
}

/// Everything the dashboard shows, read in one go.
#[derive(Debug, Clone)]
pub struct Dashboard {
    /// Headline counts.
    pub summary: Summary,
    /// Providers with their totals.
    pub providers: Vec<Provider>,
    /// Rows per table, identity first, then clinical tables in the model's order.
    pub tables: Vec<TableSummary>,
    /// The latest intakes.
    pub latest_intakes: Vec<Intake>,
}

/// Rows per table, identity first, then the clinical tables in the model's order, then any
/// other table by name.
pub async fn tables(meta: &Metadata) -> Result<Vec<TableSummary>, MetadataError> {
    let mut tables: Vec<TableSummary> = meta
        .table_counts()
        .await?
        .into_iter()
        .map(TableSummary::from_count)
        .collect();
    tables.sort_by_key(|t| (table_order(&t.table_name), t.table_name.clone()));
    Ok(tables)
}

fn table_order(name: &str) -> usize {
    if name == IDENTITY_TABLE {
        return 0;
    }
    ClinicalTable::ALL
        .iter()
        .position(|t| t.name() == name)
        .map_or(usize::MAX, |p| p + 1)
}

fn summarize(providers: &[Provider], tables: &[TableSummary], data_dir: &str) -> Summary {
    Summary {
        providers: providers.len() as i64,
        patient_records: tables
            .iter()
            .filter(|t| t.table_name == IDENTITY_TABLE)
            .map(|t| t.rows)
            .sum(),
        clinical_records: tables.iter().filter(|t| t.clinical).map(|t| t.rows).sum(),
        intakes: providers.iter().map(|p| p.intakes).sum(),
        quarantined_resources: providers.iter().map(|p| p.resources_rejected).sum(),
        data_dir: data_dir.to_owned(),
    }
}

/// The headline counts.
pub async fn summary(meta: &Metadata, data_dir: &str) -> Result<Summary, MetadataError> {
    let providers = meta.providers().await?;
    let tables = tables(meta).await?;
    Ok(summarize(&providers, &tables, data_dir))
}

/// Everything the dashboard shows.
pub async fn dashboard(meta: &Metadata, data_dir: &str) -> Result<Dashboard, MetadataError> {
    let providers = meta.providers().await?;
    let tables = tables(meta).await?;
    let latest_intakes = meta.intake_log(DASHBOARD_INTAKES).await?;
    Ok(Dashboard {
        summary: summarize(&providers, &tables, data_dir),
        providers,
        tables,
        latest_intakes,
    })
}

/// Adds the item counts to an intake.
pub async fn intake_record(meta: &Metadata, intake: Intake) -> Result<IntakeRecord, MetadataError> {
    let item_counts = meta
        .intake_item_counts(&intake.id)
        .await?
        .into_iter()
        .map(|(category, count)| ItemCount { category, count })
        .collect();
    Ok(IntakeRecord {
        intake,
        item_counts,
    })
}

/// The latest intakes with their item counts, newest first.
pub async fn intake_records(
    meta: &Metadata,
    limit: i64,
) -> Result<Vec<IntakeRecord>, MetadataError> {
    let mut records = Vec::new();
    for intake in meta.intake_log(limit).await? {
        records.push(intake_record(meta, intake).await?);
    }
    Ok(records)
}

/// One intake with its item counts; [`MetadataError::NotFound`] when there is none.
pub async fn intake(meta: &Metadata, intake_id: &str) -> Result<IntakeRecord, MetadataError> {
    let intake = meta.intake(intake_id).await?;
    intake_record(meta, intake).await
}

/// Quarantined entries, newest intakes first, optionally of one provider.
pub async fn quarantine(
    meta: &Metadata,
    provider_id: Option<&str>,
    limit: i64,
) -> Result<Vec<QuarantineListing>, MetadataError> {
    meta.quarantine(provider_id, limit).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(name: &str, rows: i64) -> TableCount {
        TableCount {
            table_name: name.into(),
            rows,
            segments: 1,
            bytes: 10,
        }
    }

    #[test]
    fn labels_identity_clinical_and_unknown_tables() {
        let identity = TableSummary::from_count(count("identity", 3));
        assert_eq!(identity.label_ja, "患者レコード");
        assert_eq!(identity.label_en, "Patient records");
        assert!(!identity.clinical);
        let conditions = TableSummary::from_count(count(ClinicalTable::Conditions.name(), 5));
        assert_eq!(conditions.label_ja, ClinicalTable::Conditions.label_ja());
        assert!(conditions.clinical);
        let other = TableSummary::from_count(count("something_new", 1));
        assert_eq!(other.label_en, "something_new");
        assert!(!other.clinical);
    }

    #[test]
    fn summary_separates_patient_and_clinical_records() {
        let tables: Vec<TableSummary> = [
            count("identity", 3),
            count(ClinicalTable::Conditions.name(), 5),
            count(ClinicalTable::Encounters.name(), 7),
            count("something_new", 100),
        ]
        .into_iter()
        .map(TableSummary::from_count)
        .collect();
        let summary = summarize(&[], &tables, "data");
        assert_eq!(summary.patient_records, 3);
        assert_eq!(summary.clinical_records, 12);
        assert_eq!(summary.providers, 0);
    }
}
