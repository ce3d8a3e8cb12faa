//! `kiban link --data DATA_DIR`: links the store's identity records in place (名寄せ, R-L2).
//!
//! The identity rows are decrypted into memory only (never a file), linked with the same model
//! as `kiban link --csv`, and every record's person is written to the metadata store. Person ids
//! are stable across runs: a person keeps its id when records join it, and every change is
//! kept in the history so that the latest run can be reverted (`--revert`). `kiban extract`
//! then adds the person to every clinical row, and `kiban deidentify` keys its pseudonyms on it.
//!
//! Clerical review closes the loop: the pairs whose match probability lies in the review band
//! are queued in the metadata store for staff to judge (the review pages of `kiban serve`), and
//! every run first reads the decisions made so far and honours them (same person: must-link;
//! different persons: cannot-link). Records are named there by provider and keyed patient key,
//! with the level and weight of each compared field, never an identity value.

use anyhow::{Context, Result};
use kiban_collection::Collection;
use kiban_linkage::cluster::Constraints;
use kiban_linkage::history::assign_stable_person_ids;
use kiban_linkage::link::{LinkOptions, Linkage, link_records_with};
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
                "link: run {} reverted ({} records get back the person they had before)",
                run.id, run.changed_records
            ),
            None => println!("link: no linkage run to revert"),
        }
        return Ok(());
    }
    let linked = link_in_place(store, meta, collection, options).await;
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
                    "  clerical review: {} pairs with match probability in [{low}, {high}] ({} queued, at most {}; pairs already decided stay decided)",
                    outcome.review_in_band, outcome.review_queued, options.review_limit
                ),
                None => println!("  clerical review: no pairs queued (--no-review)"),
            }
        }
    }
    Ok(())
}

/// What a linkage in place did besides the run's own figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct InPlaceOutcome {
    /// Records that cannot be linked (each a person of its own).
    pub unlinkable: usize,
    /// The review decisions honoured.
    pub decisions: DecisionsHonoured,
    /// Pairs whose match probability lies in the review band.
    pub review_in_band: u64,
    /// Pairs proposed to the review queue (at most the review limit).
    pub review_queued: u64,
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
/// records.
pub(crate) async fn link_in_place(
    store: &Store,
    meta: &Metadata,
    collection: &Collection,
    options: &LinkOptions,
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
    let linkage = link_records_with(&loaded, options, &constraints);
    drop(constraints);
    decisions.must_links_applied = linkage.report.must_links_applied;
    decisions.must_links_refused = linkage.report.must_links_refused;
    decisions.merges_refused_cannot_link = linkage.report.merges_refused_cannot_link;

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
    let run = LinkageRun {
        id: format!("link-{}", started_at.format("%Y%m%dT%H%M%S%.6fZ")),
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
    meta.record_linkage_run(&run, &changed).await?;
    // The run is recorded: its uncertain pairs may name it.
    let proposed = review_pairs(&linkage, &records);
    if !proposed.is_empty() {
        meta.insert_review_pairs(&run.id, &proposed)
            .await
            .context("queueing pairs for clerical review")?;
    }
    Ok(Some((
        run,
        InPlaceOutcome {
            unlinkable: loaded.unlinkable.len(),
            decisions,
            review_in_band: linkage.report.review_pairs_in_band,
            review_queued: proposed.len() as u64,
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

/// The run's pairs for review, named by provider and keyed patient key.
fn review_pairs(
    linkage: &Linkage,
    records: &[((String, String), IdentityRow)],
) -> Vec<NewReviewPair> {
    let record = |i: u32| {
        let ((provider_id, patient_key), _) = &records[i as usize];
        ReviewRecord {
            provider_id: provider_id.clone(),
            patient_key: patient_key.clone(),
        }
    };
    linkage
        .review
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
