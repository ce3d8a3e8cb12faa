//! `kiban link --data DATA_DIR`: links the store's identity records in place (名寄せ, R-L2).
//!
//! The identity rows are decrypted into memory only (never a file), linked with the same model
//! as `kiban link --csv`, and every record's person is written to the metadata store. Person ids
//! are stable across runs: a person keeps its id when records join it, and every change is
//! kept in the history so that the latest run can be reverted (`--revert`). `kiban extract`
//! then adds the person to every clinical row, and `kiban deidentify` keys its pseudonyms on it.
//!
//! Runs are incremental when they can be: a full run keeps what it learned (the Fellegi–Sunter
//! parameters and the other learned evidence, never identity data) in the metadata store, and
//! the next run with records that have no person yet links only those onto the existing persons
//! with it ([`kiban_linkage::incremental`]): only candidate pairs with a new record are
//! weighed, existing persons are never split, and a pair that would merge two of them goes to
//! clerical review. `--full` relinks everything and learns the model again; so does a run with
//! no new records, with no usable model, or after review decisions made since the latest run
//! (they may merge or split existing persons).
//!
//! Clerical review closes the loop: the pairs whose match probability lies in the review band
//! are queued in the metadata store for staff to judge (the review pages of `kiban serve`), and
//! every run first reads the decisions made so far and honours them (same person: must-link;
//! different persons: cannot-link). Records are named there by provider and keyed patient key,
//! with the level and weight of each compared field, never an identity value. A pair already
//! open takes the latest run's probability and evidence; a full run's list is the queue, so an
//! open pair it no longer proposes is closed as superseded (kept for the audit trail).

use anyhow::{Context, Result};
use kiban_collection::Collection;
use kiban_linkage::cluster::Constraints;
use kiban_linkage::history::assign_stable_person_ids;
use kiban_linkage::incremental::{
    IncrementalReport, LEARNED_MODEL_FORMAT, LearnedModel, link_new_records,
};
use kiban_linkage::link::{LinkOptions, ReviewCandidate, link_records_with};
use kiban_linkage::records::load_identity_reader;
use kiban_metadata::{
    LinkageRun, Metadata, NewReviewPair, PersonLink, ReviewDecision, ReviewEvidence, ReviewRecord,
};
use kiban_model::{IdentityRow, TableRow};
use kiban_store::Store;
use std::collections::HashMap;
use std::path::Path;
use zeroize::Zeroizing;

use crate::keys::open_existing_store;
use crate::lock::IntakeLock;

/// Links the store of `data_dir` in place, or reverts the latest run.
pub async fn run(
    data_dir: &Path,
    key_file: Option<&Path>,
    options: &LinkOptions,
    revert: bool,
    full: bool,
) -> Result<()> {
    let opened = open_existing_store(data_dir, key_file).await?;
    // One writer of person links at a time, and never while data is being taken in.
    let _lock = IntakeLock::acquire(data_dir)?;
    let (store, meta, collection) = (&opened.store, &opened.meta, &opened.collection);
    if revert {
        let undone = meta.revert_latest_linkage_run().await;
        meta.close().await;
        match undone? {
            Some(run) => println!(
                "link: run {} reverted ({} records get back the person they had before; the review pairs it superseded are open again)",
                run.id, run.changed_records
            ),
            None => println!("link: no linkage run to revert"),
        }
        return Ok(());
    }
    let linked = link_in_place_with(store, meta, collection, options, full).await;
    meta.close().await;
    match linked? {
        None => println!("link: the store holds no identity records yet"),
        Some((run, outcome)) => {
            println!(
                "link: {} identity records -> {} persons (run {}): {} new persons, {} merged, {} split, {} records changed person",
                run.records,
                run.persons,
                run.id,
                run.new_persons,
                run.merged_persons,
                run.split_persons,
                run.changed_records
            );
            match &outcome.run_kind {
                RunKind::Full {
                    reason,
                    pairs_compared,
                    model_warnings,
                } => {
                    println!(
                        "  full relink ({reason}): {pairs_compared} candidate pairs compared; the learned model is kept for incremental runs"
                    );
                    for warning in model_warnings {
                        println!(
                            "  WARNING: {warning} / 警告: 学習したモデルが一致の集団を捉えていません（リンク結果は信頼できません）"
                        );
                    }
                }
                RunKind::Incremental(r) => println!(
                    "  incremental: {} new records, {} joined existing persons, {} new persons, pairs scored {} (the candidate pairs with a new record, the only ones enumerated); {} merges of existing persons proposed for review instead",
                    r.new_records,
                    r.joined_existing,
                    r.new_persons,
                    r.pairs_scored,
                    r.existing_persons_kept_apart
                ),
            }
            if outcome.unlinkable > 0 {
                println!(
                    "  {} records cannot be linked (no name, or neither birth date nor card): each is a person of its own",
                    outcome.unlinkable
                );
            }
            let d = &outcome.decisions;
            println!(
                "  review decisions honoured: {} same person ({} joined persons, {} refused: they contradict a different-persons decision), {} different persons ({} merges refused); {} skipped (records no longer in the store)",
                d.same_person,
                d.must_links_applied,
                d.must_links_refused,
                d.different_persons,
                d.merges_refused_cannot_link,
                d.skipped
            );
            match options.review_band {
                Some((low, high)) => println!(
                    "  clerical review: {} pairs with match probability in [{low}, {high}] ({} queued, at most {}; pairs already decided stay decided; {} open pairs no longer proposed closed as superseded)",
                    outcome.review_in_band,
                    outcome.review_queued,
                    options.review_limit,
                    outcome.review_superseded
                ),
                None => println!("  clerical review: no pairs queued (--no-review)"),
            }
        }
    }
    Ok(())
}

/// Whether a run relinked everything or linked new records only.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RunKind {
    /// Every record relinked and the model learned again.
    Full {
        /// Why the run was full.
        reason: String,
        /// Candidate pairs compared.
        pairs_compared: u64,
        /// Signs that the learned model is not of the matches (empty when plausible).
        model_warnings: Vec<String>,
    },
    /// New records linked onto the existing persons with the kept model.
    Incremental(IncrementalReport),
}

/// What a linkage in place did besides the run's own figures.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InPlaceOutcome {
    /// Full or incremental, with its figures.
    pub run_kind: RunKind,
    /// Records that cannot be linked (each a person of its own).
    pub unlinkable: usize,
    /// The review decisions honoured.
    pub decisions: DecisionsHonoured,
    /// Pairs whose match probability lies in the review band.
    pub review_in_band: u64,
    /// Pairs proposed to the review queue (at most the review limit).
    pub review_queued: u64,
    /// Open pairs of earlier runs a full run no longer proposed, closed as superseded.
    pub review_superseded: u64,
}

/// How the review decisions bound a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DecisionsHonoured {
    /// Same-person decisions passed to linkage.
    pub same_person: u64,
    /// Different-persons decisions passed to linkage.
    pub different_persons: u64,
    /// Decisions whose records are no longer in the store (or refused their data).
    pub skipped: u64,
    /// Same-person decisions that joined two persons.
    pub must_links_applied: u64,
    /// Same-person decisions refused: they contradict a different-persons decision.
    pub must_links_refused: u64,
    /// Merges the different-persons decisions refused.
    pub merges_refused_cannot_link: u64,
}

/// Links the identity records of an open store, bound by the review decisions so far, records
/// the run and queues its uncertain pairs for review; `None` when there are no identity
/// records. Incremental when it can be ([`link_in_place_with`]).
pub(crate) async fn link_in_place(
    store: &Store,
    meta: &Metadata,
    collection: &Collection,
    options: &LinkOptions,
) -> Result<Option<(LinkageRun, InPlaceOutcome)>> {
    link_in_place_with(store, meta, collection, options, false).await
}

/// How a run links: everything, or the new records onto the existing persons.
enum Plan {
    Full(String),
    Incremental(Box<LearnedModel>),
}

/// Incremental when a kept model is usable, some records have no person, and no review
/// decision was made since the latest run (it may merge or split existing persons, which only
/// a full run does); full otherwise or when `full` is asked.
async fn plan(meta: &Metadata, full: bool, new_records: usize) -> Result<Plan> {
    if full {
        return Ok(Plan::Full("--full".into()));
    }
    let Some(kept) = meta.latest_linkage_model().await? else {
        return Ok(Plan::Full("no learned model yet".into()));
    };
    if kept.format != i64::from(LEARNED_MODEL_FORMAT) {
        return Ok(Plan::Full(format!(
            "the learned model is of format {}, this version reads {LEARNED_MODEL_FORMAT}",
            kept.format
        )));
    }
    let learned = match LearnedModel::from_json(&kept.parameters) {
        Ok(learned) => learned,
        Err(e) => return Ok(Plan::Full(format!("the learned model is not usable: {e}"))),
    };
    if new_records == 0 {
        return Ok(Plan::Full("no new records".into()));
    }
    if let Some(latest) = meta.latest_linkage_run().await? {
        let at = |text: &str| chrono::DateTime::parse_from_rfc3339(text).ok();
        let finished = at(&latest.finished_at);
        let newer =
            meta.review_decisions()
                .await?
                .iter()
                .any(|d| match (at(&d.decided_at), finished) {
                    (Some(decided), Some(finished)) => decided > finished,
                    _ => true,
                });
        if newer {
            return Ok(Plan::Full(
                "review decisions were made since the latest run".into(),
            ));
        }
    }
    Ok(Plan::Incremental(Box::new(learned)))
}

/// [`link_in_place`], relinking everything when `full`.
pub(crate) async fn link_in_place_with(
    store: &Store,
    meta: &Metadata,
    collection: &Collection,
    options: &LinkOptions,
    full: bool,
) -> Result<Option<(LinkageRun, InPlaceOutcome)>> {
    let started_at = chrono::Utc::now();
    // The latest identity row of every record, refused patients left out.
    let refused = collection.refused_patient_keys().await?;
    let mut latest: HashMap<(String, String), IdentityRow> = HashMap::new();
    for segment in meta.segments(IdentityRow::TABLE).await? {
        let rows: Vec<IdentityRow> = store
            .read_segment(&segment.path)
            .with_context(|| format!("identity segment {}", segment.path))?;
        for row in rows {
            let key = (
                row.common.provider_id.clone(),
                row.common.patient_key.clone(),
            );
            if !refused.contains(&(
                kiban_model::ProviderId(key.0.clone()),
                kiban_model::PatientKey(key.1.clone()),
            )) {
                latest.insert(key, row);
            }
        }
    }
    let mut records: Vec<((String, String), IdentityRow)> = latest.into_iter().collect();
    records.sort_by(|a, b| a.0.cmp(&b.0));
    if records.is_empty() {
        return Ok(None);
    }

    let csv = identity_csv(&records).context("identity records in memory")?;
    let loaded = load_identity_reader(Path::new("(identity store)"), csv.as_slice())
        .context("identity records")?;
    drop(csv);
    let (constraints, mut decisions) = review_constraints(meta, &records).await?;
    let previous_links: HashMap<(String, String), String> = meta
        .person_links()
        .await?
        .into_iter()
        .map(|l| ((l.provider_id, l.patient_key), l.person_id))
        .collect();
    let previous: Vec<Option<String>> = records
        .iter()
        .map(|(key, _)| previous_links.get(key).cloned())
        .collect();
    drop(previous_links);
    let new_records = previous.iter().filter(|p| p.is_none()).count();
    let linked = match plan(meta, full, new_records).await? {
        Plan::Full(reason) => {
            let linkage = link_records_with(&loaded, options, &constraints);
            let learned = LearnedModel::from_report(&linkage.report, &loaded);
            let r = &linkage.report;
            Linked {
                run_kind: RunKind::Full {
                    reason,
                    pairs_compared: r.pairs_compared,
                    model_warnings: r.model_warnings.clone(),
                },
                must_links: (r.must_links_applied, r.must_links_refused),
                merges_refused_cannot_link: r.merges_refused_cannot_link,
                review_in_band: r.review_pairs_in_band,
                person: linkage.person,
                match_probability: linkage.match_probability,
                review: linkage.review,
                learned: Some(learned),
            }
        }
        Plan::Incremental(learned) => {
            // Existing persons by number: the records of one person id are one person.
            let mut number_of: HashMap<&str, u32> = HashMap::new();
            let existing: Vec<Option<u32>> = previous
                .iter()
                .map(|p| {
                    p.as_deref().map(|id| {
                        let next = number_of.len() as u32;
                        *number_of.entry(id).or_insert(next)
                    })
                })
                .collect();
            drop(number_of);
            let linkage = link_new_records(&loaded, &existing, &learned, options, &constraints)
                .context("incremental linkage")?;
            let r = &linkage.report;
            Linked {
                must_links: (r.must_links_applied, r.must_links_refused),
                merges_refused_cannot_link: r.merges_refused_cannot_link,
                review_in_band: r.review_pairs_in_band,
                run_kind: RunKind::Incremental(linkage.report),
                person: linkage.person,
                match_probability: linkage.match_probability,
                review: linkage.review,
                learned: None,
            }
        }
    };
    drop(constraints);
    decisions.must_links_applied = linked.must_links.0;
    decisions.must_links_refused = linked.must_links.1;
    decisions.merges_refused_cannot_link = linked.merges_refused_cannot_link;
    let linkage = &linked;
    let assignment = assign_stable_person_ids(&linkage.person, &previous, new_person_id);
    let changed: Vec<PersonLink> = assignment
        .changed
        .iter()
        .map(|&i| PersonLink {
            provider_id: records[i].0.0.clone(),
            patient_key: records[i].0.1.clone(),
            person_id: assignment.person_ids[i].clone(),
            match_probability: linkage.match_probability[i].unwrap_or(1.0),
        })
        .collect();
    let kind = match linked.run_kind {
        RunKind::Full { .. } => "",
        RunKind::Incremental(_) => "incremental-",
    };
    let run = LinkageRun {
        id: format!("link-{kind}{}", started_at.format("%Y%m%dT%H%M%S%.6fZ")),
        started_at: started_at.to_rfc3339(),
        finished_at: chrono::Utc::now().to_rfc3339(),
        records: records.len() as i64,
        persons: assignment.persons as i64,
        new_persons: assignment.new_persons as i64,
        merged_persons: assignment.merged_persons as i64,
        split_persons: assignment.split_persons as i64,
        changed_records: changed.len() as i64,
        reverted_at: None,
    };
    match &linked.learned {
        // A full run keeps what it learned, with the run: reverting the run drops it.
        Some(learned) => {
            meta.record_linkage_run_with_model(
                &run,
                &changed,
                i64::from(LEARNED_MODEL_FORMAT),
                &learned.to_json(),
            )
            .await?
        }
        None => meta.record_linkage_run(&run, &changed).await?,
    }
    // The run is recorded: its uncertain pairs may name it. A full run with a review band
    // weighed every pair, so its list is the queue: open pairs it no longer proposes (out of
    // the band now, or beyond the cap) are closed as superseded. An incremental run weighs
    // only pairs with a new record: it adds to the queue and closes nothing.
    let proposed = review_pairs(&linked.review, &records);
    let full_with_review =
        matches!(linked.run_kind, RunKind::Full { .. }) && options.review_band.is_some();
    let mut review_superseded = 0;
    if full_with_review {
        review_superseded = meta
            .replace_open_review_pairs(&run.id, &proposed)
            .await
            .context("queueing pairs for clerical review")?
            .superseded;
    } else if !proposed.is_empty() {
        meta.insert_review_pairs(&run.id, &proposed)
            .await
            .context("queueing pairs for clerical review")?;
    }
    Ok(Some((
        run,
        InPlaceOutcome {
            run_kind: linked.run_kind,
            unlinkable: loaded.unlinkable.len(),
            decisions,
            review_in_band: linked.review_in_band,
            review_queued: proposed.len() as u64,
            review_superseded,
        },
    )))
}

/// The review decisions so far as constraints on the record indices of `records` (sorted by
/// provider and patient key); decisions whose records are gone are skipped.
async fn review_constraints(
    meta: &Metadata,
    records: &[((String, String), IdentityRow)],
) -> Result<(Constraints, DecisionsHonoured)> {
    let index_of = |record: &ReviewRecord| {
        records
            .binary_search_by(|((provider, key), _)| {
                (provider.as_str(), key.as_str())
                    .cmp(&(record.provider_id.as_str(), record.patient_key.as_str()))
            })
            .ok()
            .and_then(|i| u32::try_from(i).ok())
    };
    let mut constraints = Constraints::default();
    let mut honoured = DecisionsHonoured::default();
    for decision in meta.review_decisions().await? {
        let (Some(a), Some(b)) = (index_of(&decision.left), index_of(&decision.right)) else {
            honoured.skipped += 1;
            continue;
        };
        match decision.decision {
            ReviewDecision::SamePerson => {
                constraints.must_link.push((a, b));
                honoured.same_person += 1;
            }
            ReviewDecision::DifferentPersons => {
                constraints.cannot_link.push((a, b));
                honoured.different_persons += 1;
            }
        }
    }
    Ok((constraints, honoured))
}

/// What the full or incremental linkage of a run gave.
struct Linked {
    run_kind: RunKind,
    /// Must-links applied and refused.
    must_links: (u64, u64),
    merges_refused_cannot_link: u64,
    review_in_band: u64,
    person: Vec<u32>,
    match_probability: Vec<Option<f64>>,
    review: Vec<ReviewCandidate>,
    /// What a full run learned, to keep.
    learned: Option<LearnedModel>,
}

/// The run's pairs for review, named by provider and keyed patient key.
fn review_pairs(
    review: &[ReviewCandidate],
    records: &[((String, String), IdentityRow)],
) -> Vec<NewReviewPair> {
    let record = |i: u32| {
        let ((provider_id, patient_key), _) = &records[i as usize];
        ReviewRecord {
            provider_id: provider_id.clone(),
            patient_key: patient_key.clone(),
        }
    };
    review
        .iter()
        .map(|pair| NewReviewPair {
            left: record(pair.a),
            right: record(pair.b),
            // Clamped: the store refuses a probability a rounding put outside [0, 1].
            match_probability: pair.match_probability.clamp(0.0, 1.0),
            evidence: pair
                .evidence
                .iter()
                .map(|e| ReviewEvidence {
                    field: e.field.to_owned(),
                    level: e.level.to_owned(),
                    weight_bits: e.weight_bits,
                })
                .collect(),
        })
        .collect()
}

/// A fresh opaque person id.
fn new_person_id() -> String {
    let mut bytes = [0u8; 12];
    // The operating system's generator; a failure here is not recoverable anyway.
    getrandom::fill(&mut bytes).unwrap_or_else(|_| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes.copy_from_slice(&nanos.to_le_bytes()[..12]);
    });
    format!("psn-{}", hex::encode(bytes))
}

/// The records in the CSV form of `kiban link --csv`, in memory (zeroed when dropped).
fn identity_csv(records: &[((String, String), IdentityRow)]) -> Result<Zeroizing<Vec<u8>>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(kiban_linkage::records::IDENTITY_COLUMNS)?;
    for (index, ((provider, patient_key), row)) in records.iter().enumerate() {
        let birth = row.birth_date.map(|d| d.to_string()).unwrap_or_default();
        let sex = match row.sex.as_str() {
            "male" => "1",
            "female" => "2",
            _ => "",
        };
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        writer.write_record([
            index.to_string(),
            provider.clone(),
            patient_key.clone(),
            text(&row.name_kanji),
            text(&row.name_kana),
            sex.to_owned(),
            birth,
            text(&row.postal_code),
            text(&row.address),
            text(&row.insurer_number),
            text(&row.insured_symbol),
            text(&row.insured_number),
            text(&row.insured_branch),
        ])?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| anyhow::anyhow!("identity records in memory: {}", e.error()))?;
    Ok(Zeroizing::new(bytes))
}
