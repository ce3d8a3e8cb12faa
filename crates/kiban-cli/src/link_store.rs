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
                "link: run {id} reverted ({changed} records get back the person they had before; the review pairs it superseded are open again) / 名寄せ: 実行 {id} を取り消しました（{changed}件の記録が以前の人に戻り、この実行で置き換えられた確認待ちの組は再び未判定になります）",
                id = run.id,
                changed = run.changed_records
            ),
            None => println!("link: no linkage run to revert / 名寄せ: 取り消す実行はありません"),
        }
        return Ok(());
    }
    let linked = link_in_place_with(store, meta, collection, options, full).await;
    meta.close().await;
    match linked? {
        None => println!(
            "link: the store holds no identity records yet / 名寄せ: ストアに識別情報の記録はまだありません"
        ),
        Some((run, outcome)) => {
            println!(
                "link: {records} identity records -> {persons} persons (run {id}): {new} new persons, {merged} merged, {split} split, {changed} records changed person / 名寄せ: 識別情報の記録 {records}件 → {persons}人（実行 {id}）: 新規 {new}人、統合 {merged}、分割 {split}、別の人に移った記録 {changed}件",
                records = run.records,
                persons = run.persons,
                id = run.id,
                new = run.new_persons,
                merged = run.merged_persons,
                split = run.split_persons,
                changed = run.changed_records
            );
            match &outcome.run_kind {
                RunKind::Full {
                    reason,
                    pairs_compared,
                    model_warnings,
                } => {
                    println!(
                        "  full relink ({}): {pairs_compared} candidate pairs compared; the learned model is kept for incremental runs / 全件の名寄せ（{}）: 候補の組 {pairs_compared}件を比較、学習したモデルは差分の名寄せのために保存しました",
                        reason.english(),
                        reason.japanese()
                    );
                    for warning in model_warnings {
                        println!(
                            "  WARNING: {warning} / 警告: 学習したモデルが一致の集団を捉えていません（リンク結果は信頼できません）"
                        );
                    }
                }
                RunKind::Incremental(r) => println!(
                    "  incremental: {new_records} new records, {joined} joined existing persons, {new_persons} new persons, pairs scored {scored} (the candidate pairs with a new record, the only ones enumerated); {kept_apart} merges of existing persons proposed for review instead / 差分の名寄せ: 新しい記録 {new_records}件、既存の人に結合 {joined}件、新規 {new_persons}人、評価した組 {scored}（新しい記録を含む候補の組のみ）、既存の人どうしの統合 {kept_apart}件は確認待ちに回しました",
                    new_records = r.new_records,
                    joined = r.joined_existing,
                    new_persons = r.new_persons,
                    scored = r.pairs_scored,
                    kept_apart = r.existing_persons_kept_apart
                ),
            }
            if outcome.unlinkable > 0 {
                println!(
                    "  {count} records cannot be linked (no name, or neither birth date nor card): each is a person of its own / 名寄せできない記録 {count}件（氏名なし、または生年月日も保険証もなし）: それぞれを1人として扱います",
                    count = outcome.unlinkable
                );
            }
            let d = &outcome.decisions;
            println!(
                "  review decisions honoured: {same} same person ({applied} joined persons, {refused} refused: they contradict a different-persons decision), {different} different persons ({cannot} merges refused); {skipped} skipped (records no longer in the store) / 確認結果を反映: 同一人物 {same}件（結合 {applied}件、別人の判定と矛盾するため拒否 {refused}件）、別人 {different}件（統合の拒否 {cannot}件）、省略 {skipped}件（ストアにない記録）",
                same = d.same_person,
                applied = d.must_links_applied,
                refused = d.must_links_refused,
                different = d.different_persons,
                cannot = d.merges_refused_cannot_link,
                skipped = d.skipped
            );
            match options.review_band {
                Some((low, high)) => println!(
                    "  clerical review: {in_band} pairs with match probability in [{low}, {high}] ({queued} queued, at most {limit}; pairs already decided stay decided; {superseded} open pairs no longer proposed closed as superseded) / 確認待ち: 一致確率が [{low}, {high}] の組 {in_band}件（確認待ちに追加 {queued}件、上限 {limit}。判定済みの組はそのまま。提案されなくなった未判定の組 {superseded}件は置き換え済みとして閉じました）",
                    in_band = outcome.review_in_band,
                    queued = outcome.review_queued,
                    limit = options.review_limit,
                    superseded = outcome.review_superseded
                ),
                None => println!(
                    "  clerical review: no pairs queued (--no-review) / 確認待ち: 追加した組はありません（--no-review）"
                ),
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
        reason: FullRelinkReason,
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

/// Why a run relinked everything instead of linking the new records only.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FullRelinkReason {
    /// `--full` was given.
    Asked,
    /// No run has learned a model yet.
    NoModel,
    /// The kept model is of another format than this version reads.
    ModelFormat(i64),
    /// The kept model cannot be read (the reader's message, which names no record).
    ModelUnusable(String),
    /// Every record already has a person.
    NoNewRecords,
    /// A review decision may merge or split existing persons.
    NewDecisions,
}

impl FullRelinkReason {
    /// The reason in English.
    fn english(&self) -> String {
        match self {
            Self::Asked => "--full".to_owned(),
            Self::NoModel => "no learned model yet".to_owned(),
            Self::ModelFormat(format) => format!(
                "the learned model is of format {format}, this version reads {LEARNED_MODEL_FORMAT}"
            ),
            Self::ModelUnusable(e) => format!("the learned model is not usable: {e}"),
            Self::NoNewRecords => "no new records".to_owned(),
            Self::NewDecisions => "review decisions were made since the latest run".to_owned(),
        }
    }

    /// The reason in Japanese.
    fn japanese(&self) -> String {
        match self {
            Self::Asked => "--full".to_owned(),
            Self::NoModel => "学習したモデルがまだありません".to_owned(),
            Self::ModelFormat(format) => format!(
                "学習したモデルの形式は {format} で、このバージョンが読む形式は {LEARNED_MODEL_FORMAT} です"
            ),
            Self::ModelUnusable(_) => "学習したモデルを利用できません".to_owned(),
            Self::NoNewRecords => "新しい記録はありません".to_owned(),
            Self::NewDecisions => "前回の実行の後に確認結果が登録されました".to_owned(),
        }
    }
}

/// How a run links: everything, or the new records onto the existing persons.
enum Plan {
    Full(FullRelinkReason),
    Incremental(Box<LearnedModel>),
}

/// Incremental when a kept model is usable, some records have no person, and no review
/// decision was made since the latest run (it may merge or split existing persons, which only
/// a full run does); full otherwise or when `full` is asked.
async fn plan(meta: &Metadata, full: bool, new_records: usize) -> Result<Plan> {
    if full {
        return Ok(Plan::Full(FullRelinkReason::Asked));
    }
    let Some(kept) = meta.latest_linkage_model().await? else {
        return Ok(Plan::Full(FullRelinkReason::NoModel));
    };
    if kept.format != i64::from(LEARNED_MODEL_FORMAT) {
        return Ok(Plan::Full(FullRelinkReason::ModelFormat(kept.format)));
    }
    let learned = match LearnedModel::from_json(&kept.parameters) {
        Ok(learned) => learned,
        Err(e) => return Ok(Plan::Full(FullRelinkReason::ModelUnusable(e.to_string()))),
    };
    if new_records == 0 {
        return Ok(Plan::Full(FullRelinkReason::NoNewRecords));
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
            return Ok(Plan::Full(FullRelinkReason::NewDecisions));
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

#[cfg(test)]
mod tests {
    use super::FullRelinkReason;

    #[test]
    fn every_full_relink_reason_reads_in_english_and_japanese() {
        let reasons = [
            FullRelinkReason::Asked,
            FullRelinkReason::NoModel,
            FullRelinkReason::ModelFormat(0),
            FullRelinkReason::ModelUnusable("bad JSON".into()),
            FullRelinkReason::NoNewRecords,
            FullRelinkReason::NewDecisions,
        ];
        for reason in &reasons {
            assert!(reason.english().is_ascii(), "{reason:?}");
            assert!(!reason.japanese().is_empty(), "{reason:?}");
        }
        // The English wording is what operators and tests grep for.
        assert_eq!(FullRelinkReason::Asked.english(), "--full");
        assert_eq!(FullRelinkReason::NoModel.english(), "no learned model yet");
        assert!(
            FullRelinkReason::NewDecisions
                .japanese()
                .contains("確認結果")
        );
    }
}
