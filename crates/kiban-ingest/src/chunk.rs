//! Phase B of a chunk, run in line order: resolving subjects, refusing duplicates and
//! conflicting versions, the all-or-nothing rule of transaction and document Bundles, then
//! writing the chunk's segments and quarantine blob and assembling its commit.

use crate::identity;
use crate::lines::LineContent;
use crate::mapping::{Row, SubjectNeed};
use crate::parse::{LineMode, ParsedEntry, ParsedLine, PreparedEntry};
use base64::Engine;
use chrono::NaiveDate;
use kiban_collection::Eligibility;
use kiban_fhir::{Reference, ReferenceKind, parse_reference};
use kiban_metadata::{ChunkCommit, HeldLineRecord, QuarantineEntry, SegmentRecord};
use kiban_model::{
    AllergyRow, ConditionRow, DeathRow, DocumentRow, EncounterRow, IdentityRow, InfectionRow,
    LabObservationRow, MedicationDispenseRow, MedicationRequestRow, ProcedureRow, TableRow,
};
use kiban_store::{BlobArea, SegmentFile, Store, StoreError};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Format tag of a quarantine blob.
pub const QUARANTINE_FORMAT: &str = "kiban-quarantine/1";

/// State carried from chunk to chunk within one file.
#[derive(Debug, Default)]
pub(crate) struct FileState {
    /// Logical id → patient key of the Patients accepted (or already held) earlier in the
    /// file, so `Patient/<id>` references of later lines resolve. Bounded by the provider's
    /// number of patients.
    pub patients: HashMap<String, String>,
}

/// Rows of one chunk, per table.
#[derive(Debug, Default)]
pub(crate) struct TableRows {
    identity: Vec<IdentityRow>,
    encounters: Vec<EncounterRow>,
    conditions: Vec<ConditionRow>,
    medication_requests: Vec<MedicationRequestRow>,
    medication_dispenses: Vec<MedicationDispenseRow>,
    lab_observations: Vec<LabObservationRow>,
    allergies: Vec<AllergyRow>,
    infections: Vec<InfectionRow>,
    procedures: Vec<ProcedureRow>,
    documents: Vec<DocumentRow>,
    deaths: Vec<DeathRow>,
}

fn write_table<R: TableRow>(
    store: &Store,
    name: &str,
    rows: &[R],
    out: &mut Vec<SegmentFile>,
) -> Result<(), StoreError> {
    if !rows.is_empty() {
        out.push(store.write_segment(name, rows)?);
    }
    Ok(())
}

impl TableRows {
    /// Makes room for `rows` (an upper bound of what will be pushed), so the tables' vectors
    /// do not grow by copying their rows again and again.
    fn reserve<'r>(&mut self, rows: impl Iterator<Item = &'r Row>) {
        let mut counts = [0usize; 11];
        for row in rows {
            counts[row.table_slot()] += 1;
        }
        self.identity.reserve(counts[0]);
        self.encounters.reserve(counts[1]);
        self.conditions.reserve(counts[2]);
        self.medication_requests.reserve(counts[3]);
        self.medication_dispenses.reserve(counts[4]);
        self.lab_observations.reserve(counts[5]);
        self.allergies.reserve(counts[6]);
        self.infections.reserve(counts[7]);
        self.procedures.reserve(counts[8]);
        self.documents.reserve(counts[9]);
        self.deaths.reserve(counts[10]);
    }

    fn push(&mut self, row: Row) {
        match row {
            Row::Identity(r) => self.identity.push(r),
            Row::Encounter(r) => self.encounters.push(r),
            Row::Condition(r) => self.conditions.push(r),
            Row::MedicationRequest(r) => self.medication_requests.push(r),
            Row::MedicationDispense(r) => self.medication_dispenses.push(r),
            Row::LabObservation(r) => self.lab_observations.push(r),
            Row::Allergy(r) => self.allergies.push(r),
            Row::Infection(r) => self.infections.push(r),
            Row::Procedure(r) => self.procedures.push(r),
            Row::Document(r) => self.documents.push(r),
            Row::Death(r) => self.deaths.push(r),
        }
    }

    /// Writes one segment per table that has rows, all named `name`.
    fn write(&self, store: &Store, name: &str) -> Result<Vec<SegmentFile>, StoreError> {
        let mut out = Vec::new();
        write_table(store, name, &self.identity, &mut out)?;
        write_table(store, name, &self.encounters, &mut out)?;
        write_table(store, name, &self.conditions, &mut out)?;
        write_table(store, name, &self.medication_requests, &mut out)?;
        write_table(store, name, &self.medication_dispenses, &mut out)?;
        write_table(store, name, &self.lab_observations, &mut out)?;
        write_table(store, name, &self.allergies, &mut out)?;
        write_table(store, name, &self.infections, &mut out)?;
        write_table(store, name, &self.procedures, &mut out)?;
        write_table(store, name, &self.documents, &mut out)?;
        write_table(store, name, &self.deaths, &mut out)?;
        Ok(out)
    }
}

/// One rejected entry, with what the quarantine blob keeps of it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct QuarantineRecord {
    pub line: u64,
    pub entry_index: u64,
    pub resource_type: Option<String>,
    pub reason: String,
    /// The original JSON text (of the entry for Bundle entries, else of the line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original: Option<String>,
    /// The original bytes, base64, when they are not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_base64: Option<String>,
    /// Whether only the beginning of an oversized line is kept.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub original_truncated: bool,
}

#[derive(Serialize)]
struct QuarantineBlob<'a> {
    format: &'static str,
    intake_id: &'a str,
    source: &'a str,
    chunk_index: i64,
    entries: &'a [QuarantineRecord],
}

/// What phase B decided for a chunk.
#[derive(Debug, Default)]
pub(crate) struct ChunkOutcome {
    pub rows: TableRows,
    pub quarantine: Vec<QuarantineRecord>,
    pub lines: u64,
    pub bytes: u64,
    pub accepted: u64,
    pub duplicate: u64,
    pub versions: Vec<([u8; 16], [u8; 16])>,
    pub item_counts: BTreeMap<String, i64>,
    /// Lines held until their patients may be taken.
    pub held: Vec<HeldRecord>,
    /// Resources refused because their patients opted out (nothing of them is kept).
    pub refused: Vec<RefusedRecord>,
    /// Patients of whom at least one resource was taken (their notification basis goes into
    /// the acquisition record, R-C4).
    pub taken_patients: BTreeSet<String>,
}

/// A line held until its patients may be taken.
#[derive(Debug)]
pub(crate) struct HeldRecord {
    pub line: u64,
    pub text: String,
    pub eligible_on: Option<NaiveDate>,
    pub patient_keys: Vec<String>,
    /// Entry index and resource type of each resource of the line.
    pub entries: Vec<(u64, Option<String>)>,
}

/// A resource refused because its patient opted out.
#[derive(Debug, Clone)]
pub(crate) struct RefusedRecord {
    pub line: u64,
    pub entry_index: u64,
    pub resource_type: Option<String>,
}

impl RefusedRecord {
    /// The reason reported to the sender.
    pub(crate) fn reason(&self) -> &'static str {
        REFUSED_REASON
    }
}

/// Everything phase B reads besides the lines.
pub(crate) struct DecideContext<'a> {
    pub store: &'a Store,
    pub provider_id: &'a str,
    /// Digests of this chunk already held in the metadata store.
    pub known: &'a HashMap<[u8; 16], [u8; 16]>,
}

#[derive(Debug, Clone, PartialEq)]
enum Decision {
    Accept(String),
    Duplicate(String),
    Reject(String),
}

/// Lookups into the entries of one line, so resolving every subject of a large Bundle stays
/// linear.
struct LineIndex<'a> {
    by_full_url: HashMap<&'a str, &'a ParsedEntry>,
    patients_by_id: HashMap<&'a str, &'a ParsedEntry>,
}

impl<'a> LineIndex<'a> {
    fn new(line: &'a ParsedLine) -> Self {
        let mut by_full_url = HashMap::new();
        let mut patients_by_id = HashMap::new();
        for entry in &line.entries {
            if let Some(url) = entry.full_url.as_deref() {
                by_full_url.entry(url).or_insert(entry);
            }
            if let Ok(prepared) = &entry.outcome
                && prepared.own_patient_key.is_some()
                && let Some(id) = prepared.logical_id.as_deref()
            {
                patients_by_id.entry(id).or_insert(entry);
            }
        }
        Self {
            by_full_url,
            patients_by_id,
        }
    }
}

/// The patient key a clinical resource's subject designates.
fn resolve_subject(
    path: &str,
    reference: &Reference,
    index: &LineIndex<'_>,
    state: &FileState,
    ctx: &DecideContext<'_>,
) -> Result<String, String> {
    let entry_key = |entry: &ParsedEntry| -> Result<String, String> {
        match &entry.outcome {
            Ok(PreparedEntry {
                own_patient_key: Some(key),
                ..
            }) => Ok(key.clone()),
            Ok(_) => Err(format!(
                "{path}: refers to Bundle.entry[{}], which is not a Patient",
                entry.index
            )),
            Err(_) => Err(format!(
                "{path}: refers to Bundle.entry[{}], which is invalid",
                entry.index
            )),
        }
    };
    if let Some(literal) = reference.reference.as_deref().map(str::trim) {
        if let Some(entry) = index.by_full_url.get(literal) {
            return entry_key(entry);
        }
        let target = parse_reference(literal)
            .ok_or_else(|| format!("{path}.reference: not a reference kiban can resolve"))?;
        return match target.kind {
            ReferenceKind::Urn => Err(format!(
                "{path}.reference: matches no fullUrl of the Bundle"
            )),
            ReferenceKind::Contained => Err(format!(
                "{path}.reference: a contained patient is not accepted"
            )),
            ReferenceKind::Relative | ReferenceKind::Absolute { .. } => {
                if target.resource_type.as_deref() != Some("Patient") {
                    return Err(format!("{path}.reference: does not refer to a Patient"));
                }
                if let Some(entry) = index.patients_by_id.get(target.id.as_str()) {
                    return entry_key(entry);
                }
                state.patients.get(&target.id).cloned().ok_or_else(|| {
                    format!(
                        "{path}.reference: refers to a Patient that is neither in the Bundle nor accepted earlier in the file"
                    )
                })
            }
        };
    }
    if let Some(identifier) = reference.identifier.as_deref() {
        let id = identity::patient_id_of_reference_identifier(identifier).ok_or_else(|| {
            format!("{path}.identifier: not the provider's patient id (JP Core patient id system or type MR)")
        })?;
        return Ok(ctx.store.patient_key(ctx.provider_id, &id).0);
    }
    Err(format!(
        "{path}: has neither a reference nor an identifier to find the patient"
    ))
}

/// The original JSON texts of a line's entries, for the quarantine (the line is parsed again
/// once, only when something in it is rejected).
struct Originals<'a> {
    number: u64,
    content: &'a LineContent,
    entries: Option<Vec<Value>>,
}

impl<'a> Originals<'a> {
    fn new(line: &'a ParsedLine) -> Self {
        Self::of(line.number, &line.content, line.is_bundle)
    }

    /// From the parts of a line, so that its entries can be moved out meanwhile.
    fn of(number: u64, content: &'a LineContent, is_bundle: bool) -> Self {
        let entries =
            match (content, is_bundle) {
                (LineContent::Text(text), true) => serde_json::from_str::<Value>(text)
                    .ok()
                    .and_then(|mut v| match v.get_mut("entry").map(Value::take) {
                        Some(Value::Array(items)) => Some(items),
                        _ => None,
                    }),
                _ => None,
            };
        Self {
            number,
            content,
            entries,
        }
    }

    /// A quarantine record of entry `entry_index` (or of the whole line).
    fn record(
        &self,
        entry_index: usize,
        resource_type: Option<String>,
        reason: String,
    ) -> QuarantineRecord {
        let mut record = QuarantineRecord {
            line: self.number,
            entry_index: entry_index as u64,
            resource_type,
            reason,
            original: None,
            original_base64: None,
            original_truncated: false,
        };
        match self.content {
            LineContent::Text(text) => {
                let entry_text = self
                    .entries
                    .as_ref()
                    .and_then(|items| items.get(entry_index))
                    .map(Value::to_string);
                record.original = Some(entry_text.unwrap_or_else(|| text.clone()));
            }
            LineContent::Oversized { prefix, .. } => {
                record.original = Some(String::from_utf8_lossy(prefix).into_owned());
                record.original_truncated = true;
            }
            LineContent::NotUtf8(bytes) => {
                record.original_base64 =
                    Some(base64::engine::general_purpose::STANDARD.encode(bytes));
            }
        }
        record
    }
}

fn conflict_reason(resource_type: &str) -> String {
    format!(
        "{resource_type}: conflicting version: a resource with this id was already accepted with different content (updates come with the intake API)"
    )
}

/// A line after the first half of phase B: each entry's tentative decision (with its
/// patient key), before the patients' eligibility is applied.
#[derive(Debug)]
pub(crate) struct DecidedLine {
    line: ParsedLine,
    decisions: Vec<Decision>,
}

impl DecidedLine {
    /// Patient keys this line would be stored under.
    fn patient_keys(&self) -> impl Iterator<Item = &str> {
        self.decisions.iter().filter_map(|d| match d {
            Decision::Accept(key) | Decision::Duplicate(key) if !key.is_empty() => {
                Some(key.as_str())
            }
            _ => None,
        })
    }
}

/// A set of keyed digests. Why not the default SipHash: the digests are keyed MACs, already
/// uniform and not choosable by a sender, so their first eight bytes are a good hash as they
/// are; hashing them again was a visible part of deciding a chunk.
type DigestSet = HashSet<[u8; 16], BuildHasherDefault<DigestHasher>>;

/// Hasher of [`DigestSet`]: the first eight bytes of the digest (the length prefix is ignored).
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(word);
    }

    fn write_usize(&mut self, _length_prefix: usize) {}
}

/// Every distinct patient key of a decided chunk (what the eligibility check is asked).
pub(crate) fn chunk_patient_keys(decided: &[DecidedLine]) -> Vec<String> {
    let mut keys: Vec<String> = decided
        .iter()
        .flat_map(|l| l.patient_keys().map(str::to_owned))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// First half of phase B over the lines of a chunk, in order: subjects, duplicates,
/// conflicting versions.
pub(crate) fn decide_chunk(
    lines: Vec<ParsedLine>,
    state: &mut FileState,
    ctx: &DecideContext<'_>,
) -> Vec<DecidedLine> {
    let mut decided = Vec::with_capacity(lines.len());
    let mut chunk_identities: DigestSet = DigestSet::default();
    let mut chunk_contents: DigestSet = DigestSet::default();
    // Emptied for each line rather than made anew (they keep their room).
    let mut line_identities: DigestSet = DigestSet::default();
    let mut line_contents: DigestSet = DigestSet::default();
    for line in lines {
        if line.is_blank() || line.line_failure.is_some() {
            decided.push(DecidedLine {
                line,
                decisions: Vec::new(),
            });
            continue;
        }
        // Tentative decisions, with the line's own acceptances overlaid on the chunk's.
        line_identities.clear();
        line_contents.clear();
        let mut decisions = Vec::with_capacity(line.entries.len());
        let index = LineIndex::new(&line);
        for entry in &line.entries {
            let decision = match &entry.outcome {
                Err(reason) => Decision::Reject(reason.clone()),
                Ok(prepared) => {
                    let key = match &prepared.subject {
                        SubjectNeed::Nobody => Ok(String::new()),
                        SubjectNeed::OwnPatient { .. } => {
                            Ok(prepared.own_patient_key.clone().unwrap_or_default())
                        }
                        SubjectNeed::Reference { path, reference } => {
                            let path = if line.is_bundle {
                                format!(
                                    "Bundle.entry[{}].resource.{}",
                                    entry.index,
                                    after_type(path)
                                )
                            } else {
                                (*path).to_owned()
                            };
                            resolve_subject(&path, reference, &index, state, ctx)
                        }
                    };
                    match key {
                        Err(reason) => Decision::Reject(reason),
                        Ok(key) => {
                            let held = ctx.known.get(&prepared.identity_digest);
                            let held_identity = held.is_some()
                                || chunk_identities.contains(&prepared.identity_digest)
                                || line_identities.contains(&prepared.identity_digest);
                            let held_content = held == Some(&prepared.content_digest)
                                || chunk_contents.contains(&prepared.content_digest)
                                || line_contents.contains(&prepared.content_digest);
                            if !held_identity {
                                line_identities.insert(prepared.identity_digest);
                                line_contents.insert(prepared.content_digest);
                                Decision::Accept(key)
                            } else if held_content {
                                Decision::Duplicate(key)
                            } else {
                                Decision::Reject(conflict_reason(&prepared.resource_type))
                            }
                        }
                    }
                }
            };
            decisions.push(decision);
        }
        let rejected_whole = line.mode == LineMode::AllOrNothing
            && decisions.iter().any(|d| matches!(d, Decision::Reject(_)));
        for (decision, entry) in decisions.iter().zip(&line.entries) {
            match (decision, &entry.outcome) {
                (Decision::Accept(key) | Decision::Duplicate(key), Ok(prepared))
                    if !rejected_whole =>
                {
                    remember_patient(state, prepared, key);
                    if matches!(decision, Decision::Accept(_)) {
                        chunk_identities.insert(prepared.identity_digest);
                        chunk_contents.insert(prepared.content_digest);
                    }
                }
                _ => {}
            }
        }
        drop(index);
        decided.push(DecidedLine { line, decisions });
    }
    decided
}

/// Lines and bytes of a decided chunk (for a replayed chunk, which is not applied).
pub(crate) fn decided_size(decided: &[DecidedLine]) -> (u64, u64) {
    (
        decided.len() as u64,
        decided.iter().map(|d| d.line.bytes).sum(),
    )
}

/// Why a refused patient's resources are not taken (no identity, no receipt number).
const REFUSED_REASON: &str =
    "not taken: the patient has opted out (R-C2); nothing of this resource is kept";

/// Second half of phase B: applies the patients' eligibility (R-C1, R-C2) and the
/// all-or-nothing rule, and gathers rows, quarantine records and held lines.
///
/// A line with a refused patient is refused whole (its Bundle is that patient's); a line
/// with a patient not yet eligible is held whole, to be read again when it is; otherwise the
/// decisions stand.
pub(crate) fn apply_eligibility(
    decided: Vec<DecidedLine>,
    eligibility: &HashMap<String, Eligibility>,
) -> ChunkOutcome {
    let mut out = ChunkOutcome::default();
    out.rows.reserve(
        decided
            .iter()
            .flat_map(|d| &d.line.entries)
            .filter_map(|e| e.outcome.as_ref().ok())
            .flat_map(|prepared| &prepared.rows),
    );
    for DecidedLine {
        mut line,
        decisions,
    } in decided
    {
        out.lines += 1;
        out.bytes += line.bytes;
        if line.is_blank() {
            continue;
        }
        if let Some((resource_type, reason)) = &line.line_failure {
            let originals = Originals::new(&line);
            if line.entries.is_empty() {
                out.quarantine
                    .push(originals.record(0, resource_type.clone(), reason.clone()));
            }
            for entry in &line.entries {
                let resource_type = entry.resource_type.clone().or(resource_type.clone());
                out.quarantine
                    .push(originals.record(entry.index, resource_type, reason.clone()));
            }
            continue;
        }
        // The strictest state of the line's patients decides for the line.
        let mut refused = false;
        let mut held: Option<Option<NaiveDate>> = None;
        let mut line_keys: Vec<String> = Vec::new();
        for decision in &decisions {
            if let Decision::Accept(key) | Decision::Duplicate(key) = decision
                && !key.is_empty()
            {
                if !line_keys.contains(key) {
                    line_keys.push(key.clone());
                }
                match eligibility.get(key) {
                    Some(Eligibility::Eligible { .. }) => {}
                    Some(Eligibility::Refused { .. }) => refused = true,
                    // The latest date wins; an unknown date (no notification) wins over all.
                    Some(Eligibility::Held { until }) => {
                        held = Some(match (held, until) {
                            (Some(None), _) | (_, None) => None,
                            (Some(Some(earlier)), Some(until)) => Some(earlier.max(*until)),
                            (None, Some(until)) => Some(*until),
                        });
                    }
                    // Not asked (cannot happen: every key is asked): hold, never take.
                    None => held = Some(None),
                }
            }
        }
        if refused {
            for entry in &line.entries {
                out.refused.push(RefusedRecord {
                    line: line.number,
                    entry_index: entry.index as u64,
                    resource_type: entry.resource_type.clone(),
                });
            }
            continue;
        }
        if let (Some(eligible_on), LineContent::Text(text)) = (held, &line.content) {
            out.held.push(HeldRecord {
                line: line.number,
                text: text.clone(),
                eligible_on,
                patient_keys: line_keys,
                entries: line
                    .entries
                    .iter()
                    .map(|e| (e.index as u64, e.resource_type.clone()))
                    .collect(),
            });
            continue;
        }
        let first_failure = decisions
            .iter()
            .zip(&line.entries)
            .find(|(d, _)| matches!(d, Decision::Reject(_)))
            .map(|(_, e)| e.index);
        // The entries are moved out (their mapped rows are taken, not copied).
        let entries = std::mem::take(&mut line.entries);
        let originals =
            first_failure.map(|_| Originals::of(line.number, &line.content, line.is_bundle));
        if line.mode == LineMode::AllOrNothing
            && let (Some(failed), Some(originals)) = (first_failure, originals.as_ref())
        {
            for (decision, entry) in decisions.iter().zip(&entries) {
                let reason = match decision {
                    Decision::Reject(reason) => reason.clone(),
                    _ => format!("rejected with its bundle: entry {failed} invalid"),
                };
                out.quarantine.push(originals.record(
                    entry.index,
                    entry.resource_type.clone(),
                    reason,
                ));
            }
            continue;
        }
        for (decision, entry) in decisions.into_iter().zip(entries) {
            match decision {
                Decision::Reject(reason) => {
                    if let Some(originals) = originals.as_ref() {
                        out.quarantine.push(originals.record(
                            entry.index,
                            entry.resource_type.clone(),
                            reason,
                        ));
                    }
                }
                Decision::Duplicate(_) => out.duplicate += 1,
                Decision::Accept(key) => {
                    let Ok(prepared) = entry.outcome else {
                        continue;
                    };
                    out.accepted += 1;
                    if !key.is_empty() && !out.taken_patients.contains(&key) {
                        out.taken_patients.insert(key.clone());
                    }
                    out.versions
                        .push((prepared.identity_digest, prepared.content_digest));
                    match out.item_counts.get_mut(&prepared.resource_type) {
                        Some(count) => *count += 1,
                        None => {
                            out.item_counts.insert(prepared.resource_type, 1);
                        }
                    }
                    for mut row in prepared.rows {
                        row.common_mut().patient_key.clone_from(&key);
                        out.rows.push(row);
                    }
                }
            }
        }
    }
    out
}

/// `Condition.subject` → `subject`.
fn after_type(path: &str) -> &str {
    path.split_once('.').map(|(_, rest)| rest).unwrap_or(path)
}

fn remember_patient(state: &mut FileState, prepared: &PreparedEntry, key: &str) {
    if prepared.own_patient_key.is_some()
        && let Some(id) = prepared.logical_id.as_deref()
    {
        state.patients.insert(id.to_owned(), key.to_owned());
    }
}

/// Writes the chunk's segments and quarantine blob and assembles its commit.
pub(crate) fn write_chunk(
    store: &Store,
    intake_id: &str,
    source: &str,
    chunk_index: i64,
    outcome: &ChunkOutcome,
) -> Result<(ChunkCommit, Vec<SegmentFile>), StoreError> {
    let name = format!("{intake_id}-{chunk_index:06}");
    let segments = outcome.rows.write(store, &name)?;
    let mut quarantine = Vec::with_capacity(outcome.quarantine.len());
    if !outcome.quarantine.is_empty() {
        let blob = QuarantineBlob {
            format: QUARANTINE_FORMAT,
            intake_id,
            source,
            chunk_index,
            entries: &outcome.quarantine,
        };
        // Serializing plain strings and numbers cannot fail.
        let bytes = serde_json::to_vec(&blob).unwrap_or_default();
        let blob_path = store.write_blob(BlobArea::Quarantine, &name, &bytes)?;
        for record in &outcome.quarantine {
            quarantine.push(QuarantineEntry {
                line: record.line as i64,
                entry_index: record.entry_index as i64,
                resource_type: record.resource_type.clone(),
                reason: record.reason.clone(),
                blob_path: blob_path.clone(),
            });
        }
    }
    let mut held_lines = Vec::with_capacity(outcome.held.len());
    for held in &outcome.held {
        // One blob per line, so a line taken or refused later is deleted on its own.
        let blob_path = store.write_blob(
            BlobArea::Held,
            &format!("{name}-{:08}", held.line),
            held.text.as_bytes(),
        )?;
        held_lines.push(HeldLineRecord {
            blob_path,
            line: held.line as i64,
            resource_count: held.entries.len() as i64,
            patient_keys: held.patient_keys.clone(),
            eligible_on: held.eligible_on.map(|d| d.format("%Y-%m-%d").to_string()),
        });
    }
    let commit = ChunkCommit {
        chunk_index,
        lines_read: outcome.lines as i64,
        bytes_read: outcome.bytes as i64,
        resources_accepted: outcome.accepted as i64,
        resources_duplicate: outcome.duplicate as i64,
        segments: segments
            .iter()
            .map(|s| SegmentRecord {
                path: s.relative_path.clone(),
                table_name: s.table.clone(),
                rows: s.rows as i64,
                bytes: s.bytes as i64,
            })
            .collect(),
        quarantine,
        resource_versions: outcome.versions.clone(),
        held_lines,
        resources_held: outcome.held.iter().map(|h| h.entries.len() as i64).sum(),
        resources_refused: outcome.refused.len() as i64,
        item_counts: outcome
            .item_counts
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
    };
    Ok((commit, segments))
}
