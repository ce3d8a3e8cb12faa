//! Every official HL7 FHIR R4 example (npm package `hl7.fhir.r4.examples` 4.0.1, CC0) goes
//! through kiban's real intake path ([`kiban_ingest::ingest_upload`], as the FHIR API calls it)
//! and ends taken, held for its patient's notification, or rejected with a reason: no crash,
//! no hang.
//!
//! The examples are not in the repository: `scripts/fetch-fhir-examples.sh DEST` downloads
//! them, and the test reads `KIBAN_FHIR_EXAMPLES_DIR` (DEST, or DEST/package). Without it the
//! test prints a note and passes, unless `KIBAN_REQUIRE_FHIR_EXAMPLES=1` (CI), where it fails.
//!
//! The package's `package.json` is npm's manifest, not an example: the 5,307 files npm counts
//! are 5,306 examples and the manifest.
//!
//! How the examples are sent: every Patient found in the package is notified first (long
//! enough ago), so the opt-out rule does not hold anything back and the check is about
//! parsing, validation and mapping. Each example is one upload. An example that refers to a
//! Patient example by `Patient/<id>` outside a Bundle of its own is sent as ndjson with that
//! Patient on the line before it, as a provider sends a patient with its data; the Patient
//! line's share of the counts is known from the Patient's own upload and taken off.
//!
//! Outcomes: taken, partly taken (batch/collection Bundles: the rest rejected with reasons),
//! held, rejected (every rejection with a reason), or the same upload as an earlier example
//! (`ig-r4.json` repeats `ImplementationGuide-fhir.json`; intake skips it by its SHA-256).
//! Most examples are rejected because kiban maps no table for their resource type
//! (terminology, conformance, financial resources, ...): that is a reason, not a failure. The
//! test asserts no crash, no hang, a reason for every rejection, counts that add up, and that
//! most examples of the types kiban maps are taken. `KIBAN_FHIR_EXAMPLES_ONLY=a,b` limits a
//! run to the files whose names contain `a` or `b`; `KIBAN_FHIR_EXAMPLES_DEBUG=1` prints each
//! intake report.
//!
//! A second test runs kiban-fhir alone (parse and validate) over every resource of every
//! example, and the JP-CLINS tests send the hand-made documents of `fixtures/jp_clins/`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiban_collection::{
    Collection, CollectionPolicy, FixedClock, NewProviderRegistration, NotificationMeans,
};
use kiban_ingest::{
    FileReport, IngestOptions, PATIENT_ID_SYSTEM_PREFIX, UploadBody, ingest_upload,
};
use kiban_metadata::Metadata;
use kiban_model::{ProviderId, ProviderKind};
use kiban_store::{KeyFile, Store};
use serde_json::Value;

/// Longest a single example may take through intake (a debug build on a small machine), plus
/// [`PER_MEGABYTE_LIMIT`] for each MiB of it: the package's largest Bundles are 2 to 35 MB.
const PER_EXAMPLE_LIMIT: Duration = Duration::from_secs(5);
/// Time allowed per MiB of an example, on top of [`PER_EXAMPLE_LIMIT`].
const PER_MEGABYTE_LIMIT: Duration = Duration::from_secs(2);
/// Longest the whole run may take.
const WHOLE_RUN_LIMIT: Duration = Duration::from_secs(30 * 60);
/// Resource types kiban maps to its tables (and Bundles of them).
const MAPPED_TYPES: &[&str] = &[
    "Patient",
    "Encounter",
    "Condition",
    "Observation",
    "MedicationRequest",
    "MedicationDispense",
    "AllergyIntolerance",
    "Procedure",
    "DocumentReference",
    "Composition",
];
/// Share of the mapped-type examples that must be taken.
const MAPPED_TAKEN_SHARE: f64 = 0.75;

const INSURANCE_MEMBER_SYSTEM: &str = "http://jpfhir.jp/fhir/clins/Idsystem/JP_Insurance_memberID";
const IDENTIFIER_TYPE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";

/// The example directory, or `None` (after a note) when it is not configured and not required.
fn examples_dir() -> Option<PathBuf> {
    let required = std::env::var("KIBAN_REQUIRE_FHIR_EXAMPLES").is_ok_and(|v| v == "1");
    let Some(dir) = std::env::var_os("KIBAN_FHIR_EXAMPLES_DIR").map(PathBuf::from) else {
        assert!(
            !required,
            "KIBAN_REQUIRE_FHIR_EXAMPLES=1 but KIBAN_FHIR_EXAMPLES_DIR is not set: \
             run scripts/fetch-fhir-examples.sh DEST and set KIBAN_FHIR_EXAMPLES_DIR=DEST"
        );
        eprintln!(
            "NOTE: FHIR R4 examples test SKIPPED: set KIBAN_FHIR_EXAMPLES_DIR \
             (scripts/fetch-fhir-examples.sh DEST)"
        );
        return None;
    };
    let package = dir.join("package");
    Some(if package.is_dir() { package } else { dir })
}

/// The example files: every `*.json` but npm's manifest and hidden index files, by name.
fn example_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".json") && name != "package.json" && !name.starts_with('.')
        })
        .filter(|p| {
            // A diagnosis aid: KIBAN_FHIR_EXAMPLES_ONLY=a,b runs only the files whose names
            // contain one of the comma-separated parts.
            std::env::var("KIBAN_FHIR_EXAMPLES_ONLY").map_or(true, |only| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                only.split(',').any(|part| name.contains(part))
            })
        })
        .collect();
    files.sort();
    files
}

/// The provider patient id kiban derives from a Patient (see kiban-ingest's identity rule:
/// the JP Core patient id or a type-MR identifier, else the first identifier that is not the
/// insurance member id, else the logical id).
fn provider_patient_id(patient: &Value) -> Option<String> {
    let value = |i: &Value| {
        i["value"]
            .as_str()
            .map(kiban_collection::normalize_patient_id)
            .filter(|v| !v.is_empty())
    };
    let identifiers: Vec<&Value> = patient["identifier"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let is_provider_id = |i: &Value| {
        i["system"]
            .as_str()
            .is_some_and(|s| s.starts_with(PATIENT_ID_SYSTEM_PREFIX))
            || i["type"]["coding"].as_array().is_some_and(|codings| {
                codings.iter().any(|c| {
                    c["code"] == "MR"
                        && c["system"]
                            .as_str()
                            .is_none_or(|s| s == IDENTIFIER_TYPE_SYSTEM)
                })
            })
    };
    identifiers
        .iter()
        .filter(|i| is_provider_id(i))
        .find_map(|i| value(i))
        .or_else(|| {
            identifiers
                .iter()
                .filter(|i| i["system"].as_str() != Some(INSURANCE_MEMBER_SYSTEM))
                .find_map(|i| value(i))
        })
        .or_else(|| {
            patient["id"]
                .as_str()
                .map(kiban_collection::normalize_patient_id)
                .filter(|v| !v.is_empty())
        })
}

/// Every Patient resource in an example: itself, its Bundle entries, nested Bundles.
fn patients_in<'a>(resource: &'a Value, out: &mut Vec<&'a Value>) {
    match resource["resourceType"].as_str() {
        Some("Patient") => out.push(resource),
        Some("Bundle") => {
            for entry in resource["entry"].as_array().into_iter().flatten() {
                patients_in(&entry["resource"], out);
            }
        }
        _ => {}
    }
}

/// Ids of the Patients a resource refers to as `Patient/<id>` (anywhere in it).
fn referred_patient_ids(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::String(s) => {
            if let Some(id) = s.strip_prefix("Patient/")
                && !id.is_empty()
                && !id.contains('/')
            {
                out.insert(id.to_owned());
            }
        }
        Value::Array(items) => items.iter().for_each(|v| referred_patient_ids(v, out)),
        Value::Object(map) => map.values().for_each(|v| referred_patient_ids(v, out)),
        _ => {}
    }
}

/// What happened to one example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// Every resource taken (or already held: the same content sent before).
    Taken,
    /// Some entries of a batch or collection taken, others rejected with their reasons.
    PartlyTaken,
    /// Valid, waiting for its patient's notification.
    Held,
    /// Nothing taken; every rejection has a reason.
    Rejected,
    /// The very same upload as an earlier example (`ig-r4.json` is a copy of
    /// `ImplementationGuide-fhir.json`): intake recognizes the body by its SHA-256 and skips it,
    /// answering with the earlier intake.
    SameAsEarlier,
}

/// One example's counts, without the share of a Patient line sent before it.
#[derive(Debug, Default, Clone)]
struct Counts {
    taken: u64,
    held: u64,
    refused: u64,
    rejected: Vec<(Option<String>, String)>,
}

fn counts_of(report: &FileReport, example_line: u64, before: &Counts) -> Counts {
    Counts {
        taken: (report.resources_accepted + report.resources_duplicate)
            .saturating_sub(before.taken),
        held: report.resources_held.saturating_sub(before.held),
        refused: report.resources_refused.saturating_sub(before.refused),
        rejected: report
            .rejections
            .iter()
            .filter(|r| r.line == example_line)
            .map(|r| (r.resource_type.clone(), r.reason.clone()))
            .collect(),
    }
}

/// A reason without its variable parts (indexes, counts), to group reasons.
fn reason_category(reason: &str) -> String {
    let mut out = String::new();
    let mut last_digit = false;
    for c in reason.chars() {
        if c.is_ascii_digit() {
            if !last_digit {
                out.push('N');
            }
            last_digit = true;
        } else {
            out.push(c);
            last_digit = false;
        }
    }
    // "Bundle.entry[N].resource: " prefixes say where, not why.
    let trimmed = out
        .strip_prefix("Bundle.entry[N].resource: ")
        .unwrap_or(&out)
        .to_owned();
    // "X: resource type not supported" and "resource type X not supported": one category.
    if trimmed.contains("not supported for intake") {
        return "resource type not supported for intake (kiban maps no table for it)".to_owned();
    }
    trimmed.chars().take(110).collect()
}

/// Whether an example is a resource of a mapped type, or a Bundle of only such resources.
fn is_mapped_example(resource: &Value) -> bool {
    match resource["resourceType"].as_str() {
        Some("Bundle") => {
            let entries = resource["entry"].as_array();
            entries.is_some_and(|e| !e.is_empty())
                && entries.into_iter().flatten().all(|e| {
                    e["resource"]["resourceType"]
                        .as_str()
                        .is_some_and(|t| MAPPED_TYPES.contains(&t))
                })
        }
        Some(t) => MAPPED_TYPES.contains(&t),
        None => false,
    }
}

struct Intake {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    collection: Collection,
    provider: ProviderId,
    options: IngestOptions,
}

impl Intake {
    async fn new() -> Intake {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyFile::generate(&dir.path().join("keys/master.key")).unwrap();
        let data = dir.path().join("data");
        let store = Arc::new(Store::open(&data, Arc::new(keys)).unwrap());
        let meta = Metadata::open_in_dir(&data).await.unwrap();
        let collection = Collection::new(
            meta,
            store.clone(),
            Arc::new(FixedClock::on_date("2026-06-01".parse().unwrap())),
            CollectionPolicy::default(),
        );
        let (provider, _token) = collection
            .add_provider(
                &NewProviderRegistration::new("FHIR例示病院", ProviderKind::GeneralHospital),
                "test",
            )
            .await
            .unwrap();
        Intake {
            _dir: dir,
            store,
            collection,
            provider,
            options: IngestOptions::default(),
        }
    }

    async fn notify(&self, provider_patient_id: &str) {
        self.collection
            .record_notification(
                &self.provider,
                provider_patient_id,
                "2026-01-05".parse().unwrap(),
                NotificationMeans::Letter,
                "test",
            )
            .await
            .unwrap();
    }

    /// One upload, bounded in time: `Err` names a crash or a hang.
    async fn upload(&self, source_name: &str, body: UploadBody) -> Result<FileReport, String> {
        let size = match &body {
            UploadBody::Document(bytes) | UploadBody::Ndjson(bytes) => bytes.len(),
        };
        let upload = ingest_upload(
            self.store.clone(),
            &self.collection,
            self.provider.as_str(),
            source_name,
            body,
            &self.options,
        );
        let megabytes = u32::try_from(size / (1024 * 1024)).unwrap_or(u32::MAX);
        let limit = PER_EXAMPLE_LIMIT + PER_MEGABYTE_LIMIT * megabytes;
        match tokio::time::timeout(limit, upload).await {
            Ok(Ok(report)) => Ok(report),
            Ok(Err(error)) => Err(format!("intake failed: {error}")),
            Err(_) => Err(format!("no answer within {limit:?} (hang)")),
        }
    }
}

/// One example through intake.
struct Sent {
    outcome: Result<(Outcome, Counts), String>,
}

fn classify(counts: Counts) -> Result<(Outcome, Counts), String> {
    if let Some((_, reason)) = counts.rejected.iter().find(|(_, r)| r.trim().is_empty()) {
        return Err(format!("a rejection without a reason ({reason:?})"));
    }
    let kept = counts.taken + counts.held + counts.refused;
    let outcome = match (kept > 0, counts.rejected.is_empty()) {
        (true, true) if counts.held > 0 => Outcome::Held,
        (true, true) => Outcome::Taken,
        (true, false) => Outcome::PartlyTaken,
        (false, false) => Outcome::Rejected,
        (false, true) => {
            return Err("neither taken, held nor rejected: the example vanished".to_owned());
        }
    };
    Ok((outcome, counts))
}

#[test]
fn every_official_fhir_r4_example_is_taken_or_rejected_with_a_reason() {
    let Some(dir) = examples_dir() else {
        return;
    };
    let files = example_files(&dir);
    assert!(
        !files.is_empty(),
        "no example JSON files in {}",
        dir.display()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let started = Instant::now();
        let intake = Intake::new().await;

        // Read every example; notify every patient found.
        let mut examples: Vec<(String, Vec<u8>, Option<Value>)> = Vec::new();
        let mut patient_examples: HashMap<String, usize> = HashMap::new();
        let mut notified = BTreeSet::new();
        for path in &files {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let bytes = std::fs::read(path).unwrap();
            let json: Option<Value> = serde_json::from_slice(&bytes).ok();
            if let Some(json) = &json {
                let mut patients = Vec::new();
                patients_in(json, &mut patients);
                for patient in patients {
                    if let Some(id) = provider_patient_id(patient)
                        && notified.insert(id.clone())
                    {
                        intake.notify(&id).await;
                    }
                }
                if json["resourceType"] == "Patient"
                    && let Some(id) = json["id"].as_str()
                {
                    patient_examples.insert(id.to_owned(), examples.len());
                }
            }
            examples.push((name, bytes, json));
        }

        // Patients first, so the examples referring to them find them taken.
        let mut order: Vec<usize> = patient_examples.values().copied().collect();
        order.sort_unstable();
        let patient_set: BTreeSet<usize> = order.iter().copied().collect();
        order.extend((0..examples.len()).filter(|i| !patient_set.contains(i)));

        let mut sent: Vec<Option<Sent>> = (0..examples.len()).map(|_| None).collect();
        let mut slowest = (Duration::ZERO, String::new());
        for index in order {
            assert!(
                started.elapsed() < WHOLE_RUN_LIMIT,
                "the whole run took longer than {WHOLE_RUN_LIMIT:?}"
            );
            let (name, bytes, json) = &examples[index];
            // The Patient examples this one refers to from outside any Bundle of its own.
            let mut before: Vec<usize> = Vec::new();
            if let Some(json) = json
                && json["resourceType"] != "Patient"
            {
                let mut ids = BTreeSet::new();
                referred_patient_ids(json, &mut ids);
                let mut own = Vec::new();
                patients_in(json, &mut own);
                let own_ids: BTreeSet<&str> = own.iter().filter_map(|p| p["id"].as_str()).collect();
                before = ids
                    .iter()
                    .filter(|id| !own_ids.contains(id.as_str()))
                    .filter_map(|id| patient_examples.get(id).copied())
                    .collect();
            }
            let one_started = Instant::now();
            let result = if before.is_empty() {
                intake
                    .upload(name, UploadBody::Document(bytes.clone()))
                    .await
                    .and_then(|report| {
                        if std::env::var_os("KIBAN_FHIR_EXAMPLES_DEBUG").is_some() {
                            println!("{name}: {report:?}");
                        }
                        if report.skipped {
                            Ok((Outcome::SameAsEarlier, Counts::default()))
                        } else {
                            classify(counts_of(&report, 1, &Counts::default()))
                        }
                    })
            } else {
                // ndjson: the referred Patients (compact, one a line), then the example.
                let mut body = Vec::new();
                let mut share = Counts::default();
                for &p in &before {
                    let patient: Value = examples[p].2.clone().unwrap();
                    body.extend_from_slice(serde_json::to_string(&patient).unwrap().as_bytes());
                    body.push(b'\n');
                    // Taken before: now a duplicate (counted as taken); held stays held.
                    match sent[p].as_ref().map(|s| &s.outcome) {
                        Some(Ok((Outcome::Taken, _))) => share.taken += 1,
                        Some(Ok((Outcome::Held, _))) => share.held += 1,
                        _ => {}
                    }
                }
                let compact = json
                    .as_ref()
                    .map(|j| serde_json::to_string(j).unwrap())
                    .unwrap();
                body.extend_from_slice(compact.as_bytes());
                body.push(b'\n');
                let line = before.len() as u64 + 1;
                intake
                    .upload(name, UploadBody::Ndjson(body))
                    .await
                    .and_then(|report| {
                        if report.skipped {
                            Ok((Outcome::SameAsEarlier, Counts::default()))
                        } else {
                            classify(counts_of(&report, line, &share))
                        }
                    })
            };
            let took = one_started.elapsed();
            if took > slowest.0 {
                slowest = (took, name.clone());
            }
            sent[index] = Some(Sent { outcome: result });
        }
        let total_time = started.elapsed();

        // Summary.
        let mut by_outcome: BTreeMap<Outcome, u64> = BTreeMap::new();
        let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
        let mut by_type: BTreeMap<String, BTreeMap<Outcome, u64>> = BTreeMap::new();
        let mut failures = Vec::new();
        let mut mapped = (0u64, 0u64);
        let mut mapped_rejections = Vec::new();
        let mut bundle_notes = Vec::new();
        for ((name, _, json), sent) in examples.iter().zip(&sent) {
            let sent = sent.as_ref().expect("every example was sent");
            let resource_type = json
                .as_ref()
                .and_then(|j| j["resourceType"].as_str())
                .unwrap_or("(unreadable)")
                .to_owned();
            match &sent.outcome {
                Err(failure) => failures.push(format!("{name}: {failure}")),
                Ok((outcome, counts)) => {
                    *by_outcome.entry(*outcome).or_default() += 1;
                    *by_type
                        .entry(resource_type.clone())
                        .or_default()
                        .entry(*outcome)
                        .or_default() += 1;
                    for (_, reason) in &counts.rejected {
                        *by_reason.entry(reason_category(reason)).or_default() += 1;
                    }
                    if *outcome != Outcome::Taken && resource_type == "Bundle" {
                        bundle_notes.push(format!(
                            "{name} ({}, {:?}): {}",
                            json.as_ref()
                                .and_then(|j| j["type"].as_str())
                                .unwrap_or("?"),
                            outcome,
                            counts
                                .rejected
                                .first()
                                .map(|(t, r)| format!("[{}] {r}", t.as_deref().unwrap_or("?")))
                                .unwrap_or_default()
                        ));
                    }
                    if json.as_ref().is_some_and(is_mapped_example) {
                        mapped.0 += 1;
                        if *outcome == Outcome::Rejected {
                            mapped_rejections.push(format!(
                                "{name}: {}",
                                counts
                                    .rejected
                                    .iter()
                                    .map(|(t, r)| format!("[{}] {r}", t.as_deref().unwrap_or("?")))
                                    .collect::<Vec<_>>()
                                    .join(" | ")
                            ));
                        } else {
                            mapped.1 += 1;
                        }
                    }
                }
            }
        }
        println!(
            "FHIR R4 examples: {} files through intake in {:.1} s (slowest {:?}: {})",
            examples.len(),
            total_time.as_secs_f64(),
            slowest.0,
            slowest.1
        );
        println!("outcome          examples");
        for (outcome, n) in &by_outcome {
            println!("{:<16} {n:>8}", format!("{outcome:?}"));
        }
        println!("{:<16} {:>8}", "crash/hang", failures.len());
        println!("\nrejected resources by reason (digits as N)");
        let mut reasons: Vec<_> = by_reason.iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (reason, n) in reasons {
            println!("{n:>7}  {reason}");
        }
        println!("\nby resource type: taken / partly / held / rejected");
        for (resource_type, outcomes) in &by_type {
            let n = |o| outcomes.get(&o).copied().unwrap_or(0);
            println!(
                "{resource_type:<34} {:>5} {:>5} {:>5} {:>5}",
                n(Outcome::Taken),
                n(Outcome::PartlyTaken),
                n(Outcome::Held),
                n(Outcome::Rejected)
            );
        }
        println!(
            "\nexamples of mapped types (and Bundles of them): {} of {} taken or held",
            mapped.1, mapped.0
        );
        for rejection in &mapped_rejections {
            println!("  rejected: {rejection}");
        }
        println!("\nBundles not taken whole (first reason):");
        for note in &bundle_notes {
            println!("  {note}");
        }

        assert!(
            failures.is_empty(),
            "{} examples crashed or hung:\n{}",
            failures.len(),
            failures.join("\n")
        );
        let counted: u64 = by_outcome.values().sum();
        assert_eq!(
            counted,
            examples.len() as u64,
            "every example ends taken, held or rejected"
        );
        let filtered = std::env::var_os("KIBAN_FHIR_EXAMPLES_ONLY").is_some();
        assert!(
            filtered || (mapped.0 > 0 && mapped.1 as f64 >= MAPPED_TAKEN_SHARE * mapped.0 as f64),
            "only {} of {} examples of mapped types were taken",
            mapped.1,
            mapped.0
        );
    });
}

/// The hand-made JP-CLINS documents of `fixtures/jp_clins/` (JP Core profiles, Japanese text,
/// JP extensions, `urn:uuid:` references, Composition first).
const JP_CLINS_DOCUMENTS: &[(&str, &str)] = &[
    (
        "ereferral.json",
        include_str!("fixtures/jp_clins/ereferral.json"),
    ),
    (
        "discharge_summary.json",
        include_str!("fixtures/jp_clins/discharge_summary.json"),
    ),
    (
        "checkup_report.json",
        include_str!("fixtures/jp_clins/checkup_report.json"),
    ),
];

/// Sends JP-CLINS documents to a fresh intake with their patients notified; returns each
/// document's report.
fn send_jp_clins(documents: &[(&str, Value)]) -> Vec<FileReport> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let intake = Intake::new().await;
        let mut reports = Vec::new();
        for (name, document) in documents {
            let mut patients = Vec::new();
            patients_in(document, &mut patients);
            assert_eq!(patients.len(), 1, "{name}: one patient");
            intake
                .notify(&provider_patient_id(patients[0]).unwrap())
                .await;
            let body = serde_json::to_vec(document).unwrap();
            let report = intake
                .upload(name, UploadBody::Document(body))
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            reports.push(report);
        }
        reports
    })
}

fn assert_taken_whole(name: &str, document: &Value, report: &FileReport) {
    let entries = document["entry"].as_array().unwrap().len() as u64;
    assert!(
        report.rejections.is_empty(),
        "{name}: rejected: {:#?}",
        report.rejections
    );
    assert_eq!(report.resources_held, 0, "{name}: nothing held");
    assert_eq!(report.resources_refused, 0, "{name}: nothing refused");
    assert_eq!(
        report.resources_accepted, entries,
        "{name}: every entry taken"
    );
    assert_eq!(
        report
            .rows_per_table
            .get(<kiban_model::DocumentRow as kiban_model::TableRow>::TABLE),
        Some(&1),
        "{name}: the Composition is stored as a document: {:?}",
        report.rows_per_table
    );
}

#[test]
fn hand_made_jp_clins_documents_are_taken_whole() {
    let documents: Vec<(&str, Value)> = JP_CLINS_DOCUMENTS
        .iter()
        .map(|(name, text)| (*name, serde_json::from_str(text).unwrap()))
        .collect();
    for (name, document) in &documents {
        assert_eq!(document["type"], "document", "{name}");
        assert_eq!(
            document["entry"][0]["resource"]["resourceType"], "Composition",
            "{name}: Composition first"
        );
    }
    let reports = send_jp_clins(&documents);
    for ((name, document), report) in documents.iter().zip(&reports) {
        assert_taken_whole(name, document, report);
    }
}

/// JP-CLINS document Bundles also carry the patient's insurance (`Coverage`, slices
/// `healthInsurancePublic` / `publicPayment`) and the author's `PractitionerRole`. kiban has
/// no table for them, but the document must still be taken (its other entries stored).
#[test]
fn a_jp_clins_document_with_coverage_and_practitioner_role_is_taken() {
    let mut document: Value = serde_json::from_str(JP_CLINS_DOCUMENTS[0].1).unwrap();
    let patient = document["entry"][1]["fullUrl"].clone();
    let author = document["entry"][3]["fullUrl"].clone();
    let issuer = document["entry"][4]["fullUrl"].clone();
    let entries = document["entry"].as_array_mut().unwrap();
    entries.push(serde_json::json!({
        "fullUrl": "urn:uuid:6f1c2a4e-0d3b-4c5a-9e7f-000000000090",
        "resource": {
            "resourceType": "Coverage",
            "meta": {"profile": ["http://jpfhir.jp/fhir/core/StructureDefinition/JP_Coverage"]},
            "extension": [{
                "url": "http://jpfhir.jp/fhir/core/Extension/StructureDefinition/JP_Coverage_InsuredPersonSymbol",
                "valueString": "ケンポ"
            }],
            "status": "active",
            "type": {"coding": [{"system": "http://jpfhir.jp/fhir/core/CodeSystem/JP_InsuranceCategory", "code": "1", "display": "社保"}]},
            "subscriberId": "１２３",
            "beneficiary": {"reference": patient},
            "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship", "code": "self"}]},
            "payor": [{"identifier": {"system": "urn:oid:1.2.392.100495.20.3.61", "value": "06139999"}, "display": "健康保険組合"}]
        }
    }));
    entries.push(serde_json::json!({
        "fullUrl": "urn:uuid:6f1c2a4e-0d3b-4c5a-9e7f-000000000091",
        "resource": {
            "resourceType": "PractitionerRole",
            "practitioner": {"reference": author},
            "organization": {"reference": issuer},
            "code": [{"coding": [{"system": "urn:oid:1.2.392.100495.20.2.31", "code": "1", "display": "医師"}]}]
        }
    }));
    let documents = vec![("ereferral-with-coverage.json", document)];
    let reports = send_jp_clins(&documents);
    assert!(
        reports[0].rejections.is_empty(),
        "rejected: {:#?}",
        reports[0].rejections
    );
    assert!(reports[0].resources_accepted >= 16);
}

/// Every resource of a modelled type in an example: itself and its Bundle entries, nested.
fn modelled_resources<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    if let Some(t) = value["resourceType"].as_str()
        && kiban_fhir::is_modelled(t)
        && t != "Bundle"
    {
        out.push(value);
    }
    for entry in value["entry"].as_array().into_iter().flatten() {
        modelled_resources(&entry["resource"], out);
    }
}

/// kiban-fhir alone on every example: parsing any resource (modelled or kept as JSON) and
/// validating it never panics and stays fast, and no resource of a type kiban-fhir models is
/// refused as unparseable or invalid (what base R4 allows, kiban-fhir takes).
#[test]
fn kiban_fhir_parses_and_validates_every_official_example() {
    let Some(dir) = examples_dir() else {
        return;
    };
    let files = example_files(&dir);
    let started = Instant::now();
    let mut parsed = 0u64;
    let mut modelled = 0u64;
    let mut problems = Vec::new();
    let mut slowest = (Duration::ZERO, String::new());
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(path).unwrap();
        let one = Instant::now();
        let outcome = std::panic::catch_unwind(|| {
            let mut found = Vec::new();
            let whole = kiban_fhir::Resource::from_json_str(&text).map(|r| {
                let _ = kiban_fhir::validate(&r);
            });
            let value: Value = serde_json::from_str(&text).unwrap();
            let mut resources = Vec::new();
            modelled_resources(&value, &mut resources);
            let count = resources.len() as u64;
            for resource in resources {
                let kind = resource["resourceType"].as_str().unwrap_or("?").to_owned();
                match kiban_fhir::Resource::from_json_value(resource.clone()) {
                    Err(error) => found.push(format!("{kind}: does not parse: {error}")),
                    Ok(r) => {
                        for issue in kiban_fhir::validate(&r) {
                            found.push(format!("{kind}: {issue}"));
                        }
                    }
                }
            }
            (whole.is_ok(), count, found)
        });
        let took = one.elapsed();
        if took > slowest.0 {
            slowest = (took, name.clone());
        }
        match outcome {
            Err(_) => problems.push(format!("{name}: PANIC in kiban-fhir")),
            Ok((whole_ok, count, found)) => {
                parsed += u64::from(whole_ok);
                modelled += count;
                problems.extend(found.into_iter().map(|f| format!("{name}: {f}")));
            }
        }
        let megabytes = u32::try_from(text.len() / (1024 * 1024)).unwrap_or(u32::MAX);
        assert!(
            took < PER_EXAMPLE_LIMIT + PER_MEGABYTE_LIMIT * megabytes,
            "{name}: kiban-fhir took {took:?}"
        );
    }
    println!(
        "kiban-fhir: {} examples, {parsed} parsed whole, {modelled} resources of modelled types \
         validated in {:.1} s (slowest {:?}: {})",
        files.len(),
        started.elapsed().as_secs_f64(),
        slowest.0,
        slowest.1
    );
    for problem in &problems {
        println!("  {problem}");
    }
    assert!(
        problems.is_empty(),
        "{} resources of modelled types refused by kiban-fhir",
        problems.len()
    );
}
