//! Persons (名寄せ, R-L2): the person each patient record belongs to, the linkage runs that
//! assigned them, and the history of every change, so that merges and splits are auditable and
//! the latest run can be undone.
//!
//! Records are named by provider and keyed patient key only; person ids are opaque. A run
//! writes only the records whose person changed (or that are new), each with the person it had
//! before, in one transaction.

use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};

use crate::{BATCH, Metadata, MetadataError, Result, now};

/// The person of one patient record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PersonLink {
    /// Provider of the record.
    pub provider_id: String,
    /// The store's keyed patient key of the record.
    pub patient_key: String,
    /// Opaque person id.
    pub person_id: String,
    /// Posterior probability of the record's strongest link in its person (1 for a person of
    /// one record).
    pub match_probability: f64,
}

/// What one linkage run did (counts only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkageRun {
    /// Run id.
    pub id: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it was recorded (RFC 3339).
    pub finished_at: String,
    /// Records linked.
    pub records: i64,
    /// Persons after the run.
    pub persons: i64,
    /// Persons created by the run.
    pub new_persons: i64,
    /// Earlier persons merged into another one.
    pub merged_persons: i64,
    /// Earlier persons whose records were split across several persons.
    pub split_persons: i64,
    /// Records whose person changed (new records included).
    pub changed_records: i64,
    /// When the run was reverted, if it was.
    pub reverted_at: Option<String>,
}

/// One record's change of person in a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PersonLinkChange {
    /// Run that made the change.
    pub run_id: String,
    /// The record's provider.
    pub provider_id: String,
    /// The record's keyed patient key.
    pub patient_key: String,
    /// The person before the run (`None` for a record seen for the first time).
    pub previous_person_id: Option<String>,
    /// The person after the run.
    pub person_id: String,
}

/// What a full linkage run learned, kept for incremental runs: parameters only (JSON), never
/// identity data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkageModel {
    /// The run that learned it.
    pub run_id: String,
    /// The format version of `parameters`.
    pub format: i64,
    /// When it was recorded (RFC 3339).
    pub created_at: String,
    /// The parameters as JSON.
    pub parameters: String,
}

const RUN_COLUMNS: &str = "id, started_at, finished_at, records, persons, new_persons, merged_persons, split_persons, changed_records, reverted_at";

fn run_from_row(r: &sqlx::any::AnyRow) -> Result<LinkageRun> {
    Ok(LinkageRun {
        id: r.try_get("id")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        records: r.try_get("records")?,
        persons: r.try_get("persons")?,
        new_persons: r.try_get("new_persons")?,
        merged_persons: r.try_get("merged_persons")?,
        split_persons: r.try_get("split_persons")?,
        changed_records: r.try_get("changed_records")?,
        reverted_at: r.try_get("reverted_at")?,
    })
}

impl Metadata {
    /// Every record's person.
    pub async fn person_links(&self) -> Result<Vec<PersonLink>> {
        let rows = sqlx::query(
            "SELECT provider_id, patient_key, person_id, match_probability FROM person_links
             ORDER BY provider_id, patient_key",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PersonLink {
                    provider_id: r.try_get("provider_id")?,
                    patient_key: r.try_get("patient_key")?,
                    person_id: r.try_get("person_id")?,
                    match_probability: r.try_get("match_probability")?,
                })
            })
            .collect()
    }

    /// Records a linkage run: the run, then every changed link with the person it replaces,
    /// in one transaction. `changed` holds only records whose person differs from the one held
    /// (or that are new); `run.changed_records` must be its length.
    pub async fn record_linkage_run(&self, run: &LinkageRun, changed: &[PersonLink]) -> Result<()> {
        self.record_run(run, changed, None).await
    }

    /// Records a full linkage run like [`Metadata::record_linkage_run`] together with the
    /// model it learned (`format` and `parameters` as JSON), in one transaction.
    pub async fn record_linkage_run_with_model(
        &self,
        run: &LinkageRun,
        changed: &[PersonLink],
        format: i64,
        parameters: &str,
    ) -> Result<()> {
        self.record_run(run, changed, Some((format, parameters)))
            .await
    }

    /// The model of the latest linkage run that learned one and is not reverted.
    pub async fn latest_linkage_model(&self) -> Result<Option<LinkageModel>> {
        let row = sqlx::query(
            "SELECT m.run_id, m.format, m.created_at, m.parameters
             FROM linkage_models m JOIN linkage_runs r ON r.id = m.run_id
             WHERE r.reverted_at IS NULL
             ORDER BY r.finished_at DESC, r.id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(LinkageModel {
                run_id: r.try_get("run_id")?,
                format: r.try_get("format")?,
                created_at: r.try_get("created_at")?,
                parameters: r.try_get("parameters")?,
            })
        })
        .transpose()
    }

    /// The latest linkage run that is not reverted.
    pub async fn latest_linkage_run(&self) -> Result<Option<LinkageRun>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM linkage_runs WHERE reverted_at IS NULL
             ORDER BY finished_at DESC, id DESC LIMIT 1"
        )))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    async fn record_run(
        &self,
        run: &LinkageRun,
        changed: &[PersonLink],
        model: Option<(i64, &str)>,
    ) -> Result<()> {
        check_run(run, changed.len())?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO linkage_runs ({RUN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)"
        )))
        .bind(&run.id)
        .bind(&run.started_at)
        .bind(&run.finished_at)
        .bind(run.records)
        .bind(run.persons)
        .bind(run.new_persons)
        .bind(run.merged_persons)
        .bind(run.split_persons)
        .bind(run.changed_records)
        .execute(&mut *tx)
        .await?;
        for batch in changed.chunks(BATCH) {
            // History first: the person each record had before this run.
            let sql = format!(
                "INSERT INTO person_link_history (run_id, provider_id, patient_key, previous_person_id, previous_probability, previous_run_id, person_id)
                 SELECT v.run_id, v.provider_id, v.patient_key, l.person_id, l.match_probability, l.run_id, v.person_id
                 FROM (VALUES {}) AS v (run_id, provider_id, patient_key, person_id)
                 LEFT JOIN person_links l ON l.provider_id = v.provider_id AND l.patient_key = v.patient_key",
                self.bulk_rows(batch.len(), 4)
            );
            let sql = if self.sqlite {
                // SQLite names VALUES columns column1..columnN.
                sql.replace("AS v (run_id, provider_id, patient_key, person_id)", "AS v")
                    .replace("v.run_id", "v.column1")
                    .replace("v.provider_id", "v.column2")
                    .replace("v.patient_key", "v.column3")
                    .replace("v.person_id", "v.column4")
            } else {
                sql
            };
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for link in batch {
                q = q
                    .bind(run.id.clone())
                    .bind(link.provider_id.clone())
                    .bind(link.patient_key.clone())
                    .bind(link.person_id.clone());
            }
            q.execute(&mut *tx).await?;

            let sql = format!(
                "INSERT INTO person_links (provider_id, patient_key, person_id, match_probability, run_id) VALUES {}
                 ON CONFLICT (provider_id, patient_key) DO UPDATE SET person_id = excluded.person_id,
                    match_probability = excluded.match_probability, run_id = excluded.run_id",
                self.bulk_rows(batch.len(), 5)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for link in batch {
                q = q
                    .bind(link.provider_id.clone())
                    .bind(link.patient_key.clone())
                    .bind(link.person_id.clone())
                    .bind(link.match_probability)
                    .bind(run.id.clone());
            }
            q.execute(&mut *tx).await?;
        }
        if let Some((format, parameters)) = model {
            sqlx::query(
                "INSERT INTO linkage_models (run_id, format, created_at, parameters)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(&run.id)
            .bind(format)
            .bind(now())
            .bind(parameters)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Linkage runs, newest first.
    pub async fn linkage_runs(&self, limit: i64) -> Result<Vec<LinkageRun>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM linkage_runs ORDER BY finished_at DESC, id DESC LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_from_row).collect()
    }

    /// The changes of person of one record, oldest first.
    pub async fn person_link_history(
        &self,
        provider_id: &str,
        patient_key: &str,
    ) -> Result<Vec<PersonLinkChange>> {
        let rows = sqlx::query(
            "SELECT h.run_id, h.provider_id, h.patient_key, h.previous_person_id, h.person_id
             FROM person_link_history h JOIN linkage_runs r ON r.id = h.run_id
             WHERE h.provider_id = $1 AND h.patient_key = $2 AND r.reverted_at IS NULL
             ORDER BY r.finished_at, r.id",
        )
        .bind(provider_id)
        .bind(patient_key)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PersonLinkChange {
                    run_id: r.try_get("run_id")?,
                    provider_id: r.try_get("provider_id")?,
                    patient_key: r.try_get("patient_key")?,
                    previous_person_id: r.try_get("previous_person_id")?,
                    person_id: r.try_get("person_id")?,
                })
            })
            .collect()
    }

    /// Undoes the latest run that is not yet reverted: every record it changed gets back the
    /// person (and probability and run) it had before; records it saw first lose their link;
    /// the clerical review pairs it closed as superseded are open again (pairs it proposed stay
    /// open: they are uncertain pairs of records still in the store).
    /// Returns the run undone, `None` when there is none.
    pub async fn revert_latest_linkage_run(&self) -> Result<Option<LinkageRun>> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM linkage_runs WHERE reverted_at IS NULL
             ORDER BY finished_at DESC, id DESC LIMIT 1"
        )))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut run = run_from_row(&row)?;
        sqlx::query(
            "DELETE FROM person_links WHERE run_id = $1 AND EXISTS (
                SELECT 1 FROM person_link_history h WHERE h.run_id = $1
                  AND h.provider_id = person_links.provider_id
                  AND h.patient_key = person_links.patient_key
                  AND h.previous_person_id IS NULL)",
        )
        .bind(&run.id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE person_links SET
                person_id = (SELECT h.previous_person_id FROM person_link_history h
                    WHERE h.run_id = $1 AND h.provider_id = person_links.provider_id
                      AND h.patient_key = person_links.patient_key),
                match_probability = (SELECT h.previous_probability FROM person_link_history h
                    WHERE h.run_id = $1 AND h.provider_id = person_links.provider_id
                      AND h.patient_key = person_links.patient_key),
                run_id = (SELECT h.previous_run_id FROM person_link_history h
                    WHERE h.run_id = $1 AND h.provider_id = person_links.provider_id
                      AND h.patient_key = person_links.patient_key)
             WHERE run_id = $1",
        )
        .bind(&run.id)
        .execute(&mut *tx)
        .await?;
        // The clerical review pairs the run closed as superseded are waiting again: the links
        // they were proposed against are back.
        sqlx::query(
            "UPDATE linkage_review_pairs SET status = 'open', superseded_by_run = NULL,
                 superseded_at = NULL
             WHERE status = 'superseded' AND superseded_by_run = $1",
        )
        .bind(&run.id)
        .execute(&mut *tx)
        .await?;
        let reverted_at = now();
        sqlx::query("UPDATE linkage_runs SET reverted_at = $1 WHERE id = $2")
            .bind(&reverted_at)
            .bind(&run.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        run.reverted_at = Some(reverted_at);
        Ok(Some(run))
    }
}

/// Checks a run's counts before it is recorded.
fn check_run(run: &LinkageRun, changed: usize) -> Result<()> {
    if run.changed_records != changed as i64 {
        return Err(MetadataError::Invalid {
            what: "linkage run",
            detail: format!(
                "changed_records is {} but {changed} changed links were given",
                run.changed_records
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn link(key: &str, person: &str) -> PersonLink {
        PersonLink {
            provider_id: "prov-001".into(),
            patient_key: key.into(),
            person_id: person.into(),
            match_probability: 0.9,
        }
    }

    fn run(id: &str, at: &str, changed: usize) -> LinkageRun {
        LinkageRun {
            id: id.into(),
            started_at: at.into(),
            finished_at: at.into(),
            records: 3,
            persons: 2,
            new_persons: 0,
            merged_persons: 0,
            split_persons: 0,
            changed_records: changed as i64,
            reverted_at: None,
        }
    }

    #[tokio::test]
    async fn runs_change_links_keep_history_and_revert() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Metadata::open_in_dir(dir.path()).await.unwrap();
        check_person_links(meta).await;
    }

    /// Also run on PostgreSQL by `collection::tests::postgres_registers_behave_the_same`.
    pub(crate) async fn check_person_links(meta: Metadata) {
        let first = vec![link("a", "P1"), link("b", "P1"), link("c", "P2")];
        assert!(meta.latest_linkage_model().await.unwrap().is_none());
        meta.record_linkage_run_with_model(
            &run("r1", "2026-01-01T00:00:00Z", 3),
            &first,
            1,
            r#"{"m":[0.9]}"#,
        )
        .await
        .unwrap();
        // The second run splits b off P1 and merges it with c.
        let second = vec![link("b", "P2")];
        meta.record_linkage_run(&run("r2", "2026-01-02T00:00:00Z", 1), &second)
            .await
            .unwrap();
        let persons = |links: Vec<PersonLink>| -> Vec<(String, String)> {
            links
                .into_iter()
                .map(|l| (l.patient_key, l.person_id))
                .collect()
        };
        assert_eq!(
            persons(meta.person_links().await.unwrap()),
            vec![
                ("a".into(), "P1".into()),
                ("b".into(), "P2".into()),
                ("c".into(), "P2".into())
            ]
        );
        // The second run learned nothing: the first run's model is the latest.
        let model = meta.latest_linkage_model().await.unwrap().unwrap();
        assert_eq!(
            (
                model.run_id.as_str(),
                model.format,
                model.parameters.as_str()
            ),
            ("r1", 1, r#"{"m":[0.9]}"#)
        );
        assert_eq!(meta.latest_linkage_run().await.unwrap().unwrap().id, "r2");
        let history = meta.person_link_history("prov-001", "b").await.unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[0].previous_person_id, None);
        assert_eq!(history[1].previous_person_id.as_deref(), Some("P1"));
        assert_eq!(history[1].person_id, "P2");

        let undone = meta.revert_latest_linkage_run().await.unwrap().unwrap();
        assert_eq!(undone.id, "r2");
        assert_eq!(
            persons(meta.person_links().await.unwrap()),
            vec![
                ("a".into(), "P1".into()),
                ("b".into(), "P1".into()),
                ("c".into(), "P2".into())
            ]
        );
        assert_eq!(meta.latest_linkage_run().await.unwrap().unwrap().id, "r1");
        let undone = meta.revert_latest_linkage_run().await.unwrap().unwrap();
        assert_eq!(undone.id, "r1");
        assert!(meta.person_links().await.unwrap().is_empty());
        // A reverted run's model is not used.
        assert!(meta.latest_linkage_model().await.unwrap().is_none());
        assert!(meta.latest_linkage_run().await.unwrap().is_none());
        assert!(meta.revert_latest_linkage_run().await.unwrap().is_none());
        let runs = meta.linkage_runs(10).await.unwrap();
        assert_eq!(runs.len(), 2);
        assert!(runs.iter().all(|r| r.reverted_at.is_some()));
    }
}
