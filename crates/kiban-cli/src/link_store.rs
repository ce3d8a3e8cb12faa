//! `kiban link --data DATA_DIR`: links the store's identity records in place (名寄せ, R-L2).
//!
//! The identity rows are decrypted into memory only (never a file), linked with the same model
//! as `kiban link --csv`, and every record's person is written to the metadata store. Person ids
//! are stable across runs: a person keeps its id when records join it, and every change is
//! kept in the history so that the latest run can be reverted (`--revert`). `kiban extract`
//! then adds the person to every clinical row, and `kiban deidentify` keys its pseudonyms on it.

use anyhow::{Context, Result};
use kiban_collection::Collection;
use kiban_linkage::history::assign_stable_person_ids;
use kiban_linkage::link::{LinkOptions, link_records};
use kiban_linkage::records::load_identity_reader;
use kiban_metadata::{LinkageRun, Metadata, PersonLink};
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
        Some((run, unlinkable)) => {
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
            if unlinkable > 0 {
                println!(
                    "  {unlinkable} records cannot be linked (no name, or neither birth date nor card): each is a person of its own"
                );
            }
        }
    }
    Ok(())
}

/// Links the identity records of an open store and records the run; `None` when there are
/// no identity records. Returns the run and the number of records that cannot be linked.
pub(crate) async fn link_in_place(
    store: &Store,
    meta: &Metadata,
    collection: &Collection,
    options: &LinkOptions,
) -> Result<Option<(LinkageRun, usize)>> {
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
    let linkage = link_records(&loaded, options);

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
    Ok(Some((run, loaded.unlinkable.len())))
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
