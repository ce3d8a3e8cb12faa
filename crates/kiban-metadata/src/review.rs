//! Clerical review of person linkage (名寄せ, R-L2): record pairs a linkage run could not decide
//! (match probability in the uncertain band) wait here for a staff member to judge them the
//! same person or different persons; the next run honours the decisions as must-link and
//! cannot-link constraints ([`Metadata::review_decisions`]).
//!
//! Records are named by provider and keyed patient key only, and the evidence holds per
//! compared field the comparison level and its weight, never a value: the identity values are
//! read from the encrypted store by whoever shows the pair.
//!
//! A pair is kept once (its two records in a fixed order), whichever run proposed it: a later
//! run proposing an open pair again updates its run, probability and evidence, and a decided
//! pair stays decided. A full run replaces the queue ([`Metadata::replace_open_review_pairs`]):
//! the open pairs it no longer proposes are closed as superseded (kept, with the run that
//! superseded them, for the audit trail; listed by [`Metadata::superseded_review_pairs`]), and a
//! superseded pair a later run proposes again is open again.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{BATCH, Metadata, MetadataError, Result, now};

/// One patient record as the review knows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReviewRecord {
    /// Provider of the record.
    pub provider_id: String,
    /// The store's keyed patient key of the record.
    pub patient_key: String,
}

/// How one field compared in a pair: its comparison level and the weight that level carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewEvidence {
    /// Field name (`name_kanji`, `birth_date`, ...).
    pub field: String,
    /// Label of the comparison level (`exact`, `kana variant`, `differs`, `missing`, ...).
    pub level: String,
    /// log2 of the level's m/u ratio: positive for agreement, negative for disagreement.
    pub weight_bits: f64,
}

/// A pair proposed for review by a linkage run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewReviewPair {
    /// One record.
    pub left: ReviewRecord,
    /// The other record.
    pub right: ReviewRecord,
    /// The run's posterior probability that they are the same person.
    pub match_probability: f64,
    /// Per compared field, its level and weight.
    pub evidence: Vec<ReviewEvidence>,
}

/// Where a pair's review stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewStatus {
    /// Waiting for a reviewer.
    Open,
    /// Judged the same person (must-link).
    SamePerson,
    /// Judged different persons (cannot-link).
    DifferentPersons,
}

impl ReviewStatus {
    /// The stable code stored in the database.
    pub fn code(self) -> &'static str {
        match self {
            ReviewStatus::Open => "open",
            ReviewStatus::SamePerson => "same_person",
            ReviewStatus::DifferentPersons => "different_persons",
        }
    }

    fn parse(code: &str) -> Result<Self> {
        match code {
            "open" => Ok(ReviewStatus::Open),
            "same_person" => Ok(ReviewStatus::SamePerson),
            "different_persons" => Ok(ReviewStatus::DifferentPersons),
            other => Err(MetadataError::Invalid {
                what: "review status",
                detail: other.to_owned(),
            }),
        }
    }
}

/// A reviewer's judgement of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    /// The two records are the same person.
    SamePerson,
    /// The two records are different persons.
    DifferentPersons,
}

impl ReviewDecision {
    /// The stable code (`same_person`, `different_persons`).
    pub fn code(self) -> &'static str {
        self.status().code()
    }

    /// The decision of a code.
    pub fn from_code(code: &str) -> Option<Self> {
        match code.trim() {
            "same_person" => Some(ReviewDecision::SamePerson),
            "different_persons" => Some(ReviewDecision::DifferentPersons),
            _ => None,
        }
    }

    /// The status a pair gets with this decision.
    pub fn status(self) -> ReviewStatus {
        match self {
            ReviewDecision::SamePerson => ReviewStatus::SamePerson,
            ReviewDecision::DifferentPersons => ReviewStatus::DifferentPersons,
        }
    }
}

/// A pair under review, as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReviewPair {
    /// Pair id.
    pub id: i64,
    /// The latest run that proposed it.
    pub run_id: String,
    /// One record (the smaller by provider, then patient key).
    pub left: ReviewRecord,
    /// The other record.
    pub right: ReviewRecord,
    /// Posterior probability of the latest proposing run.
    pub match_probability: f64,
    /// Per compared field, its level and weight.
    pub evidence: Vec<ReviewEvidence>,
    /// Where the review stands.
    pub status: ReviewStatus,
    /// Staff id of the reviewer who decided it.
    pub decided_by: Option<String>,
    /// When it was decided (RFC 3339).
    pub decided_at: Option<String>,
    /// The reviewer's note.
    pub note: Option<String>,
    /// When it was first proposed (RFC 3339).
    pub created_at: String,
}

/// A decided pair, as the next linkage run honours it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewDecisionRecord {
    /// Pair id.
    pub pair_id: i64,
    /// One record.
    pub left: ReviewRecord,
    /// The other record.
    pub right: ReviewRecord,
    /// Same person (must-link) or different persons (cannot-link).
    pub decision: ReviewDecision,
    /// Staff id of the reviewer.
    pub decided_by: String,
    /// When (RFC 3339).
    pub decided_at: String,
}

/// An open pair a later full run no longer proposed, closed undecided.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SupersededReviewPair {
    /// Pair id.
    pub id: i64,
    /// The latest run that proposed it.
    pub run_id: String,
    /// One record.
    pub left: ReviewRecord,
    /// The other record.
    pub right: ReviewRecord,
    /// Posterior probability of the latest proposing run.
    pub match_probability: f64,
    /// The full run that no longer proposed it.
    pub superseded_by_run: String,
    /// When it was superseded (RFC 3339).
    pub superseded_at: String,
    /// When it was first proposed (RFC 3339).
    pub created_at: String,
}

/// What replacing the review queue with a run's pairs did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReviewQueueReplaced {
    /// Pairs added, updated or opened again (decided pairs are left as they are).
    pub proposed: u64,
    /// Open pairs the run did not propose, closed as superseded.
    pub superseded: u64,
}

/// The status code of an open pair no longer proposed ([`SupersededReviewPair`]). Not a
/// [`ReviewStatus`]: such a pair is neither waiting nor decided, and is left out of the queue,
/// of [`Metadata::review_pair`] and of the decisions.
const SUPERSEDED: &str = "superseded";

/// Longest note kept with a decision, in characters.
pub const REVIEW_NOTE_MAX_CHARS: usize = 1000;

const PAIR_COLUMNS: &str = "id, run_id, left_provider_id, left_patient_key, right_provider_id, \
     right_patient_key, match_probability, evidence_json, status, decided_by, decided_at, note, \
     created_at";

/// The two records of a review pair's row.
fn records_of_row(r: &AnyRow) -> Result<(ReviewRecord, ReviewRecord)> {
    Ok((
        ReviewRecord {
            provider_id: r.try_get("left_provider_id")?,
            patient_key: r.try_get("left_patient_key")?,
        },
        ReviewRecord {
            provider_id: r.try_get("right_provider_id")?,
            patient_key: r.try_get("right_patient_key")?,
        },
    ))
}

fn pair_from_row(r: &AnyRow) -> Result<ReviewPair> {
    let evidence: String = r.try_get("evidence_json")?;
    let evidence = serde_json::from_str(&evidence).map_err(|e| MetadataError::Invalid {
        what: "review evidence",
        detail: e.to_string(),
    })?;
    let status: String = r.try_get("status")?;
    let (left, right) = records_of_row(r)?;
    Ok(ReviewPair {
        id: r.try_get("id")?,
        run_id: r.try_get("run_id")?,
        left,
        right,
        match_probability: r.try_get("match_probability")?,
        evidence,
        status: ReviewStatus::parse(&status)?,
        decided_by: r.try_get("decided_by")?,
        decided_at: r.try_get("decided_at")?,
        note: r.try_get("note")?,
        created_at: r.try_get("created_at")?,
    })
}

fn invalid(detail: &str) -> MetadataError {
    MetadataError::Invalid {
        what: "review pair",
        detail: detail.to_owned(),
    }
}

impl Metadata {
    /// Proposes pairs of run `run_id` for review, in one transaction. A pair already open gets
    /// this run's probability and evidence; a decided pair is left as decided. Returns the
    /// pairs added or updated. Refuses a pair of one record with itself and a probability
    /// outside [0, 1].
    pub async fn insert_review_pairs(&self, run_id: &str, pairs: &[NewReviewPair]) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let changed = self.upsert_review_pairs(&mut tx, run_id, pairs).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Makes the open queue the pairs of full run `run_id`, in one transaction: the pairs are
    /// proposed as by [`Metadata::insert_review_pairs`] (a superseded pair proposed again is
    /// open again), and every open pair the run did not propose is closed as superseded by it
    /// (kept, never deleted). Decided pairs are untouched.
    pub async fn replace_open_review_pairs(
        &self,
        run_id: &str,
        pairs: &[NewReviewPair],
    ) -> Result<ReviewQueueReplaced> {
        let mut tx = self.pool.begin().await?;
        let proposed = self.upsert_review_pairs(&mut tx, run_id, pairs).await?;
        // Every pair the run proposed (and left open) now names it: the others are stale.
        let superseded = sqlx::query(
            "UPDATE linkage_review_pairs SET status = $1, superseded_by_run = $2,
                 superseded_at = $3
             WHERE status = 'open' AND run_id <> $2",
        )
        .bind(SUPERSEDED)
        .bind(run_id)
        .bind(now())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(ReviewQueueReplaced {
            proposed,
            superseded,
        })
    }

    /// Pairs closed as superseded, most recently superseded first, `limit` from `offset`.
    pub async fn superseded_review_pairs(
        &self,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<SupersededReviewPair>> {
        let rows = sqlx::query(
            "SELECT id, run_id, left_provider_id, left_patient_key, right_provider_id,
                 right_patient_key, match_probability, superseded_by_run, superseded_at,
                 created_at
             FROM linkage_review_pairs WHERE status = $1
             ORDER BY superseded_at DESC, id LIMIT $2 OFFSET $3",
        )
        .bind(SUPERSEDED)
        .bind(limit.max(0))
        .bind(offset.max(0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let (left, right) = records_of_row(r)?;
                Ok(SupersededReviewPair {
                    id: r.try_get("id")?,
                    run_id: r.try_get("run_id")?,
                    left,
                    right,
                    match_probability: r.try_get("match_probability")?,
                    superseded_by_run: r
                        .try_get::<Option<String>, _>("superseded_by_run")?
                        .unwrap_or_default(),
                    superseded_at: r
                        .try_get::<Option<String>, _>("superseded_at")?
                        .unwrap_or_default(),
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Proposes `pairs` of run `run_id` within `tx`: the rows added or updated.
    async fn upsert_review_pairs(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        run_id: &str,
        pairs: &[NewReviewPair],
    ) -> Result<u64> {
        let mut rows = Vec::with_capacity(pairs.len());
        for pair in pairs {
            if pair.left == pair.right {
                return Err(invalid("a record paired with itself"));
            }
            if !(0.0..=1.0).contains(&pair.match_probability) {
                return Err(invalid("match probability outside [0, 1]"));
            }
            let evidence = serde_json::to_string(&pair.evidence)
                .map_err(|e| invalid(&format!("evidence not serializable: {e}")))?;
            let (left, right) = if pair.left <= pair.right {
                (&pair.left, &pair.right)
            } else {
                (&pair.right, &pair.left)
            };
            rows.push((left, right, pair.match_probability, evidence));
        }
        let created_at = now();
        let mut changed = 0;
        for batch in rows.chunks(BATCH / 2) {
            let placeholders = self.bulk_rows(batch.len(), 9);
            let sql = format!(
                "INSERT INTO linkage_review_pairs (run_id, left_provider_id, left_patient_key,
                     right_provider_id, right_patient_key, match_probability, evidence_json,
                     status, created_at)
                 VALUES {placeholders}
                 ON CONFLICT (left_provider_id, left_patient_key, right_provider_id, right_patient_key)
                 DO UPDATE SET run_id = excluded.run_id,
                     match_probability = excluded.match_probability,
                     evidence_json = excluded.evidence_json,
                     status = excluded.status,
                     superseded_by_run = NULL,
                     superseded_at = NULL
                 WHERE linkage_review_pairs.status IN ('open', '{SUPERSEDED}')"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (left, right, probability, evidence) in batch {
                q = q
                    .bind(run_id.to_owned())
                    .bind(left.provider_id.clone())
                    .bind(left.patient_key.clone())
                    .bind(right.provider_id.clone())
                    .bind(right.patient_key.clone())
                    .bind(*probability)
                    .bind(evidence.clone())
                    .bind(ReviewStatus::Open.code())
                    .bind(created_at.clone());
            }
            changed += q.execute(&mut **tx).await?.rows_affected();
        }
        Ok(changed)
    }

    /// Open pairs, most uncertain first (probability nearest one half), `limit` from `offset`.
    pub async fn open_review_pairs(&self, limit: i64, offset: i64) -> Result<Vec<ReviewPair>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PAIR_COLUMNS} FROM linkage_review_pairs WHERE status = 'open'
             ORDER BY ABS(match_probability - 0.5), id LIMIT $1 OFFSET $2"
        )))
        .bind(limit.max(0))
        .bind(offset.max(0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(pair_from_row).collect()
    }

    /// How many pairs wait for review.
    pub async fn open_review_pair_count(&self) -> Result<i64> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM linkage_review_pairs WHERE status = 'open'")
                .fetch_one(&self.pool)
                .await?;
        Ok(row.try_get("n")?)
    }

    /// One pair, open or decided; `None` for a superseded pair (no longer proposed).
    pub async fn review_pair(&self, id: i64) -> Result<Option<ReviewPair>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PAIR_COLUMNS} FROM linkage_review_pairs WHERE id = $1 AND status <> $2"
        )))
        .bind(id)
        .bind(SUPERSEDED)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(pair_from_row).transpose()
    }

    /// Records a reviewer's decision on an open pair. [`MetadataError::NotFound`] for an
    /// unknown or superseded pair, [`MetadataError::Conflict`] for one already decided (a decision is not
    /// overwritten silently). The note is trimmed and cut to [`REVIEW_NOTE_MAX_CHARS`].
    pub async fn decide_review_pair(
        &self,
        id: i64,
        decision: ReviewDecision,
        staff_id: &str,
        note: Option<&str>,
    ) -> Result<ReviewPair> {
        let note = note
            .map(|n| {
                n.trim()
                    .chars()
                    .take(REVIEW_NOTE_MAX_CHARS)
                    .collect::<String>()
            })
            .filter(|n| !n.is_empty());
        let done = sqlx::query(
            "UPDATE linkage_review_pairs SET status = $2, decided_by = $3, decided_at = $4, note = $5
             WHERE id = $1 AND status = 'open'",
        )
        .bind(id)
        .bind(decision.status().code())
        .bind(staff_id)
        .bind(now())
        .bind(note)
        .execute(&self.pool)
        .await?;
        let pair = self
            .review_pair(id)
            .await?
            .ok_or_else(|| MetadataError::NotFound {
                what: "review pair",
                id: id.to_string(),
            })?;
        if done.rows_affected() == 0 {
            return Err(MetadataError::Conflict {
                what: "review pair already decided",
                id: id.to_string(),
            });
        }
        Ok(pair)
    }

    /// Every decided pair, oldest decision first: the must-link and cannot-link constraints
    /// the next linkage run honours.
    pub async fn review_decisions(&self) -> Result<Vec<ReviewDecisionRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PAIR_COLUMNS} FROM linkage_review_pairs WHERE status IN ($1, $2)
             ORDER BY decided_at, id"
        )))
        .bind(ReviewStatus::SamePerson.code())
        .bind(ReviewStatus::DifferentPersons.code())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let pair = pair_from_row(r)?;
                let decision = match pair.status {
                    ReviewStatus::SamePerson => ReviewDecision::SamePerson,
                    ReviewStatus::DifferentPersons => ReviewDecision::DifferentPersons,
                    ReviewStatus::Open => return Err(invalid("open pair among decisions")),
                };
                Ok(ReviewDecisionRecord {
                    pair_id: pair.id,
                    left: pair.left,
                    right: pair.right,
                    decision,
                    decided_by: pair.decided_by.unwrap_or_default(),
                    decided_at: pair.decided_at.unwrap_or_default(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{LinkageRun, NewStaffAccount, StaffRole};

    fn record(provider: &str, key: &str) -> ReviewRecord {
        ReviewRecord {
            provider_id: provider.into(),
            patient_key: key.into(),
        }
    }

    fn pair(a: ReviewRecord, b: ReviewRecord, p: f64) -> NewReviewPair {
        NewReviewPair {
            left: a,
            right: b,
            match_probability: p,
            evidence: vec![
                ReviewEvidence {
                    field: "name_kanji".into(),
                    level: "variant".into(),
                    weight_bits: 3.5,
                },
                ReviewEvidence {
                    field: "birth_date".into(),
                    level: "differs".into(),
                    weight_bits: -6.25,
                },
            ],
        }
    }

    async fn run(meta: &Metadata, id: &str) {
        let run = LinkageRun {
            id: id.into(),
            started_at: now(),
            finished_at: now(),
            records: 4,
            persons: 4,
            new_persons: 4,
            merged_persons: 0,
            split_persons: 0,
            changed_records: 0,
            reverted_at: None,
        };
        meta.record_linkage_run(&run, &[]).await.unwrap();
    }

    #[tokio::test]
    async fn pairs_are_proposed_listed_and_decided_once() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Metadata::open_in_dir(dir.path()).await.unwrap();
        check_review_pairs(&meta).await;
    }

    /// Also run on PostgreSQL (`collection::tests`).
    pub(crate) async fn check_review_pairs(meta: &Metadata) {
        let meta = meta.clone();
        run(&meta, "link-1").await;
        meta.add_staff_account(&NewStaffAccount {
            id: "staff-1".into(),
            login: "reviewer".into(),
            display_name: "確認 花子".into(),
            roles: vec![StaffRole::LinkageReviewer],
            password_hash: "x".into(),
            totp_secret_sealed: "y".into(),
        })
        .await
        .unwrap();
        let (a, b, c) = (
            record("prov-002", "k-a"),
            record("prov-001", "k-b"),
            record("prov-003", "k-c"),
        );
        let proposed = vec![
            pair(a.clone(), b.clone(), 0.9),
            pair(b.clone(), c.clone(), 0.55),
            pair(a.clone(), c.clone(), 0.2),
        ];
        assert_eq!(
            meta.insert_review_pairs("link-1", &proposed).await.unwrap(),
            3
        );
        assert_eq!(meta.open_review_pair_count().await.unwrap(), 3);
        let open = meta.open_review_pairs(10, 0).await.unwrap();
        let order: Vec<f64> = open.iter().map(|p| p.match_probability).collect();
        assert_eq!(order, vec![0.55, 0.2, 0.9]);
        // Records are kept in a fixed order.
        let first = open.iter().find(|p| p.match_probability == 0.9).unwrap();
        assert_eq!(first.left, b);
        assert_eq!(first.right, a);
        assert_eq!(first.evidence[1].weight_bits, -6.25);
        assert_eq!(
            meta.open_review_pairs(1, 1).await.unwrap()[0].match_probability,
            0.2
        );

        let decided = meta
            .decide_review_pair(
                open[0].id,
                ReviewDecision::SamePerson,
                "staff-1",
                Some("  同一人物 "),
            )
            .await
            .unwrap();
        assert_eq!(decided.status, ReviewStatus::SamePerson);
        assert_eq!(decided.note.as_deref(), Some("同一人物"));
        assert_eq!(decided.decided_by.as_deref(), Some("staff-1"));
        assert!(matches!(
            meta.decide_review_pair(
                open[0].id,
                ReviewDecision::DifferentPersons,
                "staff-1",
                None
            )
            .await,
            Err(MetadataError::Conflict { .. })
        ));
        assert!(matches!(
            meta.decide_review_pair(9999, ReviewDecision::SamePerson, "staff-1", None)
                .await,
            Err(MetadataError::NotFound { .. })
        ));

        // A later run proposing the same pairs (either order) updates open ones only.
        run(&meta, "link-2").await;
        let again = vec![
            pair(c.clone(), b.clone(), 0.6),
            pair(c.clone(), a.clone(), 0.3),
        ];
        assert_eq!(meta.insert_review_pairs("link-2", &again).await.unwrap(), 1);
        let open = meta.open_review_pairs(10, 0).await.unwrap();
        assert_eq!(open.len(), 2);
        let ac = open.iter().find(|p| p.left == a && p.right == c).unwrap();
        assert_eq!((ac.run_id.as_str(), ac.match_probability), ("link-2", 0.3));
        let ab = open.iter().find(|p| p.left == b && p.right == a).unwrap();
        assert_eq!((ab.run_id.as_str(), ab.match_probability), ("link-1", 0.9));
        let decisions = meta.review_decisions().await.unwrap();
        assert_eq!(decisions.len(), 1);
        assert_eq!(decisions[0].decision, ReviewDecision::SamePerson);
        assert_eq!((&decisions[0].left, &decisions[0].right), (&b, &c));

        // A full run replaces the queue: the open pair it proposes again takes its
        // probability, evidence and run; the open pair it no longer proposes is closed as
        // superseded (kept); the decided pair stays decided.
        run(&meta, "link-3").await;
        let d = record("prov-004", "k-d");
        let mut newer = pair(b.clone(), a.clone(), 0.45);
        newer.evidence[1].level = "transposed".into();
        newer.evidence[1].weight_bits = 1.5;
        let replaced = meta
            .replace_open_review_pairs(
                "link-3",
                &[
                    newer,
                    pair(b.clone(), c.clone(), 0.5),
                    pair(a.clone(), d.clone(), 0.7),
                ],
            )
            .await
            .unwrap();
        assert_eq!(
            replaced,
            ReviewQueueReplaced {
                proposed: 2,
                superseded: 1
            }
        );
        let open = meta.open_review_pairs(10, 0).await.unwrap();
        assert_eq!(open.len(), 2);
        let ab = open.iter().find(|p| p.left == b && p.right == a).unwrap();
        assert_eq!((ab.run_id.as_str(), ab.match_probability), ("link-3", 0.45));
        assert_eq!(ab.evidence[1].level, "transposed");
        assert_eq!(ab.evidence[1].weight_bits, 1.5);
        assert!(open.iter().any(|p| p.left == a && p.right == d));
        let superseded = meta.superseded_review_pairs(10, 0).await.unwrap();
        assert_eq!(superseded.len(), 1);
        let stale = &superseded[0];
        assert_eq!((&stale.left, &stale.right), (&a, &c));
        assert_eq!(
            (stale.run_id.as_str(), stale.superseded_by_run.as_str()),
            ("link-2", "link-3")
        );
        assert_eq!(stale.match_probability, 0.3);
        assert!(!stale.superseded_at.is_empty());
        // Out of the queue and the decisions; it cannot be decided.
        assert_eq!(meta.open_review_pair_count().await.unwrap(), 2);
        assert!(meta.review_pair(stale.id).await.unwrap().is_none());
        assert!(matches!(
            meta.decide_review_pair(stale.id, ReviewDecision::SamePerson, "staff-1", None)
                .await,
            Err(MetadataError::NotFound { .. })
        ));
        let decisions = meta.review_decisions().await.unwrap();
        assert_eq!(decisions.len(), 1);
        assert_eq!(decisions[0].decision, ReviewDecision::SamePerson);
        // Proposed again by a later run: open again, superseded no more.
        run(&meta, "link-4").await;
        let replaced = meta
            .replace_open_review_pairs("link-4", &[pair(a.clone(), c.clone(), 0.35)])
            .await
            .unwrap();
        assert_eq!(
            replaced,
            ReviewQueueReplaced {
                proposed: 1,
                superseded: 2
            }
        );
        let open = meta.open_review_pairs(10, 0).await.unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!((&open[0].left, &open[0].right), (&a, &c));
        assert_eq!(
            (
                open[0].run_id.as_str(),
                open[0].match_probability,
                open[0].id
            ),
            ("link-4", 0.35, stale.id)
        );
        let superseded = meta.superseded_review_pairs(10, 0).await.unwrap();
        assert_eq!(superseded.len(), 2);
        assert!(superseded.iter().all(|p| p.superseded_by_run == "link-4"));
        assert_eq!(meta.review_decisions().await.unwrap().len(), 1);
        // Reverting that run opens again the pairs it superseded; the decided pair stays
        // decided.
        let undone = meta.revert_latest_linkage_run().await.unwrap().unwrap();
        assert_eq!(undone.id, "link-4");
        assert!(
            meta.superseded_review_pairs(10, 0)
                .await
                .unwrap()
                .is_empty()
        );
        let open = meta.open_review_pairs(10, 0).await.unwrap();
        assert_eq!(open.len(), 3);
        assert!(open.iter().any(|p| p.left == b && p.right == a));
        assert!(open.iter().any(|p| p.left == a && p.right == d));
        assert_eq!(meta.review_decisions().await.unwrap().len(), 1);

        assert!(
            meta.insert_review_pairs("link-2", &[pair(a.clone(), a.clone(), 0.5)])
                .await
                .is_err()
        );
        assert!(
            meta.insert_review_pairs("link-2", &[pair(a.clone(), b.clone(), 1.5)])
                .await
                .is_err()
        );
    }
}
