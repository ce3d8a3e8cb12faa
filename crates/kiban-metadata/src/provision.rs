//! What a provider may read of its own data (Art. 32 provision record, R-C5 quarantine) and the
//! notification basis of each intake (R-C4, Art. 33).
//!
//! Every read here is scoped to one provider: a provider's portal and API never see another
//! provider's intakes or quarantine. The notification basis is kept per intake and patient
//! (keyed patient key only), so recording it once per committed chunk is idempotent even when
//! an intake is resumed or a chunk retried; it is read back as a summary per notification means.

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};

use crate::collection::parse_date;
use crate::{
    BATCH, INTAKE_SELECT, Intake, Metadata, MetadataError, Notification, NotificationMeans,
    QuarantineEntry, Result, intake_from_row,
};

/// The notice one patient's data of an intake was taken under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IntakePatientBasis {
    /// The patient's key (the store's keyed digest, never a provider patient id).
    pub patient_key: String,
    /// Day of the patient's (first) notice.
    pub notified_on: NaiveDate,
    /// How the notice was given.
    pub means: NotificationMeans,
}

/// The notification basis of an intake for one means: how many patients were taken under a
/// notice given this way, and the span of their notice days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotificationBasisSummary {
    /// How the notices were given.
    pub means: NotificationMeans,
    /// Patients taken under such a notice.
    pub patients: i64,
    /// Earliest notice day among them.
    pub earliest_notified_on: NaiveDate,
    /// Latest notice day among them.
    pub latest_notified_on: NaiveDate,
}

/// A quarantined entry of a provider, as listed to that provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderQuarantineEntry {
    /// Intake that rejected it.
    pub intake_id: String,
    /// Source name of the intake.
    pub source: String,
    /// When the entry was quarantined (RFC 3339).
    pub received_at: String,
    /// The entry (line, index, resource type, reason, blob).
    pub entry: QuarantineEntry,
}

impl Metadata {
    /// Records the notification basis of patients whose data `intake_id` took. A patient
    /// already recorded for this intake is left as is, so calling this once per committed chunk
    /// (with that chunk's patients) is safe to retry. Returns the rows newly recorded.
    pub async fn record_intake_notification_basis(
        &self,
        intake_id: &str,
        basis: &[IntakePatientBasis],
    ) -> Result<u64> {
        let mut recorded = 0;
        let mut tx = self.pool.begin().await?;
        for batch in basis.chunks(BATCH) {
            let sql = format!(
                "INSERT INTO intake_notification_basis (intake_id, patient_key, means, notified_on)
                 VALUES {} ON CONFLICT (intake_id, patient_key) DO NOTHING",
                self.bulk_rows(batch.len(), 4)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for b in batch {
                q = q
                    .bind(intake_id.to_owned())
                    .bind(b.patient_key.clone())
                    .bind(b.means.code())
                    .bind(b.notified_on.format("%Y-%m-%d").to_string());
            }
            recorded += q.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(recorded)
    }

    /// The notification basis of one intake, one summary per means (by means code).
    pub async fn intake_notification_basis(
        &self,
        intake_id: &str,
    ) -> Result<Vec<NotificationBasisSummary>> {
        let rows = sqlx::query(
            "SELECT intake_id, means, COUNT(*) AS patients, MIN(notified_on) AS earliest,
                    MAX(notified_on) AS latest
             FROM intake_notification_basis WHERE intake_id = $1
             GROUP BY intake_id, means ORDER BY means",
        )
        .bind(intake_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(basis_rows(&rows)?
            .into_iter()
            .map(|(_, summary)| summary)
            .collect())
    }

    /// The notification basis of every intake of a provider, by intake id.
    pub async fn provider_notification_basis(
        &self,
        provider_id: &str,
    ) -> Result<HashMap<String, Vec<NotificationBasisSummary>>> {
        let rows = sqlx::query(
            "SELECT b.intake_id, b.means, COUNT(*) AS patients, MIN(b.notified_on) AS earliest,
                    MAX(b.notified_on) AS latest
             FROM intake_notification_basis b JOIN intakes i ON b.intake_id = i.id
             WHERE i.provider_id = $1
             GROUP BY b.intake_id, b.means ORDER BY b.intake_id, b.means",
        )
        .bind(provider_id)
        .fetch_all(&self.pool)
        .await?;
        let mut by_intake: HashMap<String, Vec<NotificationBasisSummary>> = HashMap::new();
        for (intake_id, summary) in basis_rows(&rows)? {
            by_intake.entry(intake_id).or_default().push(summary);
        }
        Ok(by_intake)
    }

    /// The recorded notifications of many patients of one provider, by patient key (patients
    /// without a notification are absent): one query per 400 patients.
    pub async fn notifications_of(
        &self,
        provider_id: &str,
        patient_keys: &[&str],
    ) -> Result<HashMap<String, Notification>> {
        let mut found = HashMap::new();
        for batch in patient_keys.chunks(BATCH) {
            let sql = format!(
                "SELECT provider_id, patient_key, notified_on, means, recorded_at, recorded_by
                 FROM notifications WHERE provider_id = {}",
                // One row of 1 + n placeholders, split after the first: `($1) AND ... IN ($2, ..)`.
                self.bulk_rows(1, batch.len() + 1)
                    .replacen(", ", ") AND patient_key IN (", 1)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(provider_id.to_owned());
            for key in batch {
                q = q.bind((*key).to_owned());
            }
            for r in q.fetch_all(&self.pool).await? {
                let notified_on: String = r.try_get("notified_on")?;
                let means: String = r.try_get("means")?;
                let notification = Notification {
                    provider_id: r.try_get("provider_id")?,
                    patient_key: r.try_get("patient_key")?,
                    notified_on: parse_date("notification date", &notified_on)?,
                    means: NotificationMeans::parse_stored(&means)?,
                    recorded_at: r.try_get("recorded_at")?,
                    recorded_by: r.try_get("recorded_by")?,
                };
                found.insert(notification.patient_key.clone(), notification);
            }
        }
        Ok(found)
    }

    /// The intakes of one provider, the most recent first, at most `limit`.
    pub async fn provider_intakes(&self, provider_id: &str, limit: i64) -> Result<Vec<Intake>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "{INTAKE_SELECT} WHERE provider_id = $1 ORDER BY started_at DESC, id LIMIT $2"
        )))
        .bind(provider_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(intake_from_row).collect()
    }

    /// Item counts by category of every intake of one provider, by intake id.
    pub async fn provider_item_counts(
        &self,
        provider_id: &str,
    ) -> Result<HashMap<String, Vec<(String, i64)>>> {
        let rows = sqlx::query(
            "SELECT c.intake_id, c.category, c.item_count
             FROM intake_item_counts c JOIN intakes i ON c.intake_id = i.id
             WHERE i.provider_id = $1 ORDER BY c.intake_id, c.category",
        )
        .bind(provider_id)
        .fetch_all(&self.pool)
        .await?;
        let mut by_intake: HashMap<String, Vec<(String, i64)>> = HashMap::new();
        for r in &rows {
            by_intake
                .entry(r.try_get("intake_id")?)
                .or_default()
                .push((r.try_get("category")?, r.try_get("item_count")?));
        }
        Ok(by_intake)
    }

    /// One page of a provider's quarantine, the most recently quarantined first.
    pub async fn provider_quarantine(
        &self,
        provider_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<ProviderQuarantineEntry>> {
        let rows = sqlx::query(
            "SELECT q.intake_id, i.source, q.created_at, q.line, q.entry_index, q.resource_type,
                    q.reason, q.blob_path
             FROM quarantine_entries q JOIN intakes i ON q.intake_id = i.id
             WHERE i.provider_id = $1
             ORDER BY q.created_at DESC, q.intake_id, q.line, q.entry_index LIMIT $2 OFFSET $3",
        )
        .bind(provider_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(quarantine_row).collect()
    }

    /// How many entries a provider has in the quarantine.
    pub async fn provider_quarantine_count(&self, provider_id: &str) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS entries FROM quarantine_entries q JOIN intakes i
             ON q.intake_id = i.id WHERE i.provider_id = $1",
        )
        .bind(provider_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("entries")?)
    }

    /// One quarantined entry of a provider, or `None` when it does not exist or belongs to
    /// another provider (the two are not told apart).
    pub async fn provider_quarantine_entry(
        &self,
        provider_id: &str,
        intake_id: &str,
        line: i64,
        entry_index: i64,
    ) -> Result<Option<ProviderQuarantineEntry>> {
        let row = sqlx::query(
            "SELECT q.intake_id, i.source, q.created_at, q.line, q.entry_index, q.resource_type,
                    q.reason, q.blob_path
             FROM quarantine_entries q JOIN intakes i ON q.intake_id = i.id
             WHERE i.provider_id = $1 AND q.intake_id = $2 AND q.line = $3
               AND q.entry_index = $4",
        )
        .bind(provider_id)
        .bind(intake_id)
        .bind(line)
        .bind(entry_index)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(quarantine_row).transpose()
    }
}

fn quarantine_row(r: &sqlx::any::AnyRow) -> Result<ProviderQuarantineEntry> {
    Ok(ProviderQuarantineEntry {
        intake_id: r.try_get("intake_id")?,
        source: r.try_get("source")?,
        received_at: r.try_get("created_at")?,
        entry: QuarantineEntry {
            line: r.try_get("line")?,
            entry_index: r.try_get("entry_index")?,
            resource_type: r.try_get("resource_type")?,
            reason: r.try_get("reason")?,
            blob_path: r.try_get("blob_path")?,
        },
    })
}

fn basis_rows(rows: &[sqlx::any::AnyRow]) -> Result<Vec<(String, NotificationBasisSummary)>> {
    rows.iter()
        .map(|r| {
            let means: String = r.try_get("means")?;
            let earliest: String = r.try_get("earliest")?;
            let latest: String = r.try_get("latest")?;
            Ok((
                r.try_get("intake_id")?,
                NotificationBasisSummary {
                    means: NotificationMeans::parse_stored(&means)?,
                    patients: r.try_get("patients")?,
                    earliest_notified_on: parse_date("notification date", &earliest)?,
                    latest_notified_on: parse_date("notification date", &latest)?,
                },
            ))
        })
        .collect::<std::result::Result<_, MetadataError>>()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{ChunkCommit, NewProvider};
    use kiban_model::ProviderKind;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn quarantined(line: i64) -> QuarantineEntry {
        QuarantineEntry {
            line,
            entry_index: 0,
            resource_type: Some("Observation".into()),
            reason: "Observation.status: required element missing".into(),
            blob_path: format!("quarantine/q-{line}.bin"),
        }
    }

    /// Two providers with one intake each; also run on PostgreSQL by
    /// `collection::tests::postgres_registers_behave_the_same`.
    pub(crate) async fn check_provider_reads_are_scoped_and_basis_is_summarized(meta: &Metadata) {
        for id in ["prov-001", "prov-002"] {
            meta.upsert_provider(&NewProvider {
                id: id.into(),
                name: format!("病院 {id}"),
                name_en: None,
                kind: ProviderKind::GeneralHospital,
            })
            .await
            .unwrap();
        }
        let mine = meta
            .begin_intake("prov-001", "prov-001/api/fhir", &"a1".repeat(32))
            .await
            .unwrap();
        let theirs = meta
            .begin_intake("prov-002", "prov-002/api/fhir", &"b2".repeat(32))
            .await
            .unwrap();
        for (intake, lines) in [(&mine, vec![1, 2, 3]), (&theirs, vec![7])] {
            let chunk = ChunkCommit {
                chunk_index: 0,
                resources_accepted: 5,
                quarantine: lines.into_iter().map(quarantined).collect(),
                item_counts: vec![("Condition".into(), 3), ("Patient".into(), 2)],
                ..ChunkCommit::default()
            };
            meta.commit_chunk(&intake.id, &chunk).await.unwrap();
        }

        let basis = |key: &str, on: &str, means| IntakePatientBasis {
            patient_key: key.into(),
            notified_on: date(on),
            means,
        };
        let first = [
            basis("k1", "2026-01-10", NotificationMeans::Letter),
            basis("k2", "2026-02-01", NotificationMeans::Letter),
        ];
        assert_eq!(
            meta.record_intake_notification_basis(&mine.id, &first)
                .await
                .unwrap(),
            2
        );
        // A retried chunk and a later chunk with one patient again: each patient counts once.
        let second = [
            basis("k2", "2026-02-01", NotificationMeans::Letter),
            basis("k3", "2025-12-24", NotificationMeans::Poster),
        ];
        assert_eq!(
            meta.record_intake_notification_basis(&mine.id, &second)
                .await
                .unwrap(),
            1
        );
        let summary = meta.intake_notification_basis(&mine.id).await.unwrap();
        assert_eq!(
            summary,
            vec![
                NotificationBasisSummary {
                    means: NotificationMeans::Letter,
                    patients: 2,
                    earliest_notified_on: date("2026-01-10"),
                    latest_notified_on: date("2026-02-01"),
                },
                NotificationBasisSummary {
                    means: NotificationMeans::Poster,
                    patients: 1,
                    earliest_notified_on: date("2025-12-24"),
                    latest_notified_on: date("2025-12-24"),
                },
            ]
        );
        let by_intake = meta.provider_notification_basis("prov-001").await.unwrap();
        assert_eq!(by_intake.len(), 1);
        assert_eq!(by_intake[&mine.id], summary);
        assert!(
            meta.provider_notification_basis("prov-002")
                .await
                .unwrap()
                .is_empty()
        );

        let intakes = meta.provider_intakes("prov-001", 100).await.unwrap();
        assert_eq!(intakes.len(), 1);
        assert_eq!(intakes[0].id, mine.id);
        let counts = meta.provider_item_counts("prov-001").await.unwrap();
        assert_eq!(
            counts[&mine.id],
            vec![("Condition".to_owned(), 3), ("Patient".to_owned(), 2)]
        );
        assert!(!counts.contains_key(&theirs.id));

        assert_eq!(meta.provider_quarantine_count("prov-001").await.unwrap(), 3);
        let page1 = meta.provider_quarantine("prov-001", 2, 0).await.unwrap();
        let page2 = meta.provider_quarantine("prov-001", 2, 2).await.unwrap();
        assert_eq!((page1.len(), page2.len()), (2, 1));
        let mut lines: Vec<i64> = page1.iter().chain(&page2).map(|e| e.entry.line).collect();
        lines.sort();
        assert_eq!(lines, vec![1, 2, 3]);
        assert!(
            page1
                .iter()
                .chain(&page2)
                .all(|e| e.intake_id == mine.id && !e.received_at.is_empty())
        );
        let one = meta
            .provider_quarantine_entry("prov-001", &mine.id, 2, 0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(one.entry.blob_path, "quarantine/q-2.bin");
        assert_eq!(one.source, "prov-001/api/fhir");
        // Another provider's entry is not found, whoever asks for it by id.
        assert!(
            meta.provider_quarantine_entry("prov-001", &theirs.id, 7, 0)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            meta.provider_quarantine_entry("prov-002", &theirs.id, 7, 0)
                .await
                .unwrap()
                .is_some()
        );
    }

    pub(crate) async fn check_notifications_are_read_in_batches(meta: &Metadata) {
        use crate::NotificationRecord;
        let records: Vec<NotificationRecord> = (0..450)
            .map(|i| NotificationRecord {
                provider_id: "prov-001".into(),
                patient_key: format!("key-{i:04}"),
                notified_on: date("2026-01-05"),
                means: if i % 2 == 0 {
                    NotificationMeans::Letter
                } else {
                    NotificationMeans::Web
                },
                recorded_by: "test".into(),
            })
            .collect();
        meta.record_notifications(
            &records,
            &crate::NewCollectionEvent {
                actor: "test".into(),
                action: "notifications.imported".into(),
                provider_id: Some("prov-001".into()),
                subject_digest: None,
                detail: String::new(),
            },
        )
        .await
        .unwrap();
        let mut keys: Vec<String> = (0..450).map(|i| format!("key-{i:04}")).collect();
        keys.push("key-unknown".into());
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let found = meta.notifications_of("prov-001", &refs).await.unwrap();
        assert_eq!(found.len(), 450);
        assert_eq!(found["key-0001"].means, NotificationMeans::Web);
        assert_eq!(found["key-0002"].notified_on, date("2026-01-05"));
        assert!(!found.contains_key("key-unknown"));
        assert!(
            meta.notifications_of("prov-002", &refs)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn provider_reads_are_scoped_and_basis_is_summarized() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Metadata::open_in_dir(dir.path()).await.unwrap();
        check_provider_reads_are_scoped_and_basis_is_summarized(&meta).await;
    }

    #[tokio::test]
    async fn notifications_are_read_in_batches() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Metadata::open_in_dir(dir.path()).await.unwrap();
        meta.upsert_provider(&NewProvider {
            id: "prov-001".into(),
            name: "東都大学病院".into(),
            name_en: None,
            kind: ProviderKind::UniversityHospital,
        })
        .await
        .unwrap();
        check_notifications_are_read_in_batches(&meta).await;
    }
}
