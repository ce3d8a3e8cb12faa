//! End-to-end tests of the intake against a real store and metadata database.

use super::*;
use kiban_collection::{Collection, CollectionPolicy, SystemClock};
use kiban_metadata::QuarantineListing;
use kiban_model::{
    AllergyRow, ConditionRow, DeathRow, DocumentRow, EncounterRow, IdentityRow, InfectionRow,
    LabObservationRow, MedicationDispenseRow, MedicationRequestRow, ProcedureRow, TableRow,
};
use kiban_store::KeyFile;
use serde_json::{Value, json};
use std::fmt::Debug;
use tempfile::TempDir;

const PROVIDER: &str = "prov-001";
const JP_PATIENT_SYSTEM: &str = "urn:oid:1.2.392.100495.20.3.51.11312345678";
const SECRET_NAME: &str = "髙橋 花子";

struct Env {
    _keys: TempDir,
    data: TempDir,
    store: Arc<Store>,
    meta: Metadata,
}

async fn env() -> Env {
    let keys = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let key_file = KeyFile::generate(&keys.path().join("master.key")).unwrap();
    let store = Arc::new(Store::open(data.path(), Arc::new(key_file)).unwrap());
    let meta = Metadata::open_in_dir(data.path()).await.unwrap();
    Env {
        _keys: keys,
        data,
        store,
        meta,
    }
}

fn no_progress() -> impl Fn(IngestProgress) + Send + Sync {
    |_| {}
}

fn urn(n: u32) -> String {
    format!("urn:uuid:00000000-0000-4000-8000-{n:012}")
}

fn post(full_url: &str, resource: Value) -> Value {
    let kind = resource["resourceType"].clone();
    json!({"fullUrl": full_url, "resource": resource, "request": {"method": "POST", "url": kind}})
}

fn patient(id: &str, number: &str, kanji: &str, kana: &str, deceased: Option<&str>) -> Value {
    let mut p = json!({
        "resourceType": "Patient",
        "id": id,
        "identifier": [
            {"system": JP_PATIENT_SYSTEM, "value": number},
            {"system": "http://jpfhir.jp/fhir/clins/Idsystem/JP_Insurance_memberID",
             "value": "０６１３００１７:記号:１２３:01"}
        ],
        "name": [
            {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation", "valueCode": "IDE"}],
             "use": "official", "text": kanji},
            {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation", "valueCode": "SYL"}],
             "use": "official", "text": kana}
        ],
        "gender": "female",
        "birthDate": "1948-02-29",
        "address": [{"use": "home", "postalCode": "100-0001", "text": "東京都千代田区千代田1-1"}],
        "telecom": [{"system": "phone", "value": "03-0000-0000"}]
    });
    if let Some(when) = deceased {
        p["deceasedDateTime"] = json!(when);
    }
    p
}

fn coded(system: &str, code: &str, display: &str) -> Value {
    json!({"coding": [{"system": system, "code": code, "display": display}], "text": display})
}

/// A transaction Bundle of one patient with one resource of every clinical kind.
fn patient_bundle(n: u32, deceased: bool) -> Value {
    let p = urn(n * 100);
    let enc = urn(n * 100 + 1);
    let entries = vec![
        post(
            &p,
            patient(
                &format!("pat-{n}"),
                &format!("{n:08}"),
                SECRET_NAME,
                "タカハシ ハナコ",
                deceased.then_some("2024-03-01T10:00:00+09:00"),
            ),
        ),
        post(
            &enc,
            json!({
                "resourceType": "Encounter", "id": format!("enc-{n}"), "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                "serviceType": coded("urn:oid:1.2.392.200250.2.2.2", "01", "内科"),
                "subject": {"reference": p},
                "period": {"start": "2024-01-10T09:00:00+09:00", "end": "2024-01-10T09:30:00+09:00"}
            }),
        ),
        post(
            &urn(n * 100 + 2),
            json!({
                "resourceType": "Condition", "id": format!("cond-{n}"),
                "extension": [{"url": "http://jpfhir.jp/fhir/core/Extension/StructureDefinition/JP_Condition_DiseasePostfixModifier",
                               "valueCodeableConcept": coded("http://medis.or.jp/CodeSystem/master-disease-modifier-exCode", "8002", "の疑い")}],
                "clinicalStatus": coded("http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "active"),
                "code": {"coding": [
                    {"system": "http://medis.or.jp/CodeSystem/master-disease-exCode", "code": "ND6F", "display": "2型糖尿病"},
                    {"system": "http://jpfhir.jp/fhir/core/mhlw/CodeSystem/ICD10-2013-full", "code": "E11.9"}],
                    "text": "2型糖尿病"},
                "subject": {"reference": p}, "encounter": {"reference": enc},
                "onsetDateTime": "2023-12-01", "recordedDate": "2024-01-10"
            }),
        ),
        post(
            &urn(n * 100 + 3),
            json!({
                "resourceType": "MedicationRequest", "id": format!("mr-{n}"), "status": "active", "intent": "order",
                "medicationCodeableConcept": coded("http://capstandard.jp/iyaku.info/CodeSystem/YJ-code", "3969007F1024", "メトホルミン錠250mg"),
                "subject": {"reference": p}, "authoredOn": "2024-01-10",
                "dosageInstruction": [{"text": "1日2回朝夕食後",
                    "timing": {"code": coded("urn:oid:1.2.392.200250.2.2.20", "1013044400000000", "1日2回朝夕食後")},
                    "route": coded("http://jpfhir.jp/fhir/core/CodeSystem/JP_RouteCode", "PO", "経口"),
                    "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "錠"}}]}],
                "dispenseRequest": {"expectedSupplyDuration": {"value": 28, "unit": "日", "system": "http://unitsofmeasure.org", "code": "d"}}
            }),
        ),
        post(
            &urn(n * 100 + 4),
            json!({
                "resourceType": "MedicationDispense", "id": format!("md-{n}"), "status": "completed",
                "medicationCodeableConcept": coded("http://capstandard.jp/iyaku.info/CodeSystem/YJ-code", "3969007F1024", "メトホルミン錠250mg"),
                "subject": {"reference": p}, "whenHandedOver": "2024-01-10T12:00:00+09:00",
                "daysSupply": {"value": 28, "unit": "日"}
            }),
        ),
        post(
            &urn(n * 100 + 5),
            json!({
                "resourceType": "Observation", "id": format!("lab-{n}"), "status": "final",
                "category": [coded("http://terminology.hl7.org/CodeSystem/observation-category", "laboratory", "Laboratory")],
                "code": coded("http://medis.or.jp/CodeSystem/master-JLAC10-17digits", "3D046000001906202", "HbA1c(NGSP)"),
                "subject": {"reference": p}, "effectiveDateTime": "2024-01-10T09:10:00+09:00",
                "valueQuantity": {"value": 7.2, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"},
                "interpretation": [coded("http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "H", "High")],
                "referenceRange": [{"low": {"value": 4.9}, "high": {"value": 6.0}}]
            }),
        ),
        post(
            &urn(n * 100 + 6),
            json!({
                "resourceType": "Observation", "id": format!("inf-{n}"), "status": "final",
                "code": coded("urn:oid:1.2.392.200119.4.504", "5F016141002227101", "HBs抗原"),
                "subject": {"reference": p}, "effectiveDateTime": "2024-01-10",
                "valueCodeableConcept": coded("http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "NEG", "陰性")
            }),
        ),
        post(
            &urn(n * 100 + 7),
            json!({
                "resourceType": "AllergyIntolerance", "id": format!("alg-{n}"),
                "clinicalStatus": coded("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active", "active"),
                "category": ["food"], "criticality": "high",
                "code": coded("http://jpfhir.jp/fhir/core/CodeSystem/JFAGY-food-allergen", "J7F1811", "そば"),
                "patient": {"reference": p}, "recordedDate": "2020-05-01"
            }),
        ),
        post(
            &urn(n * 100 + 8),
            json!({
                "resourceType": "Procedure", "id": format!("proc-{n}"), "status": "completed",
                "code": coded("http://jpfhir.jp/fhir/core/mhlw/CodeSystem/MedicalPractice", "302000110", "歯周基本治療"),
                "subject": {"reference": p}, "performedDateTime": "2024-01-10T10:00:00+09:00"
            }),
        ),
    ];
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

/// A referral-letter document Bundle about an existing patient (the Patient re-sent as is).
fn referral_document(n: u32) -> Value {
    let p = urn(900 + n);
    let doctor = urn(950 + n);
    json!({
        "resourceType": "Bundle", "type": "document",
        "identifier": {"system": "http://example.jp/documents", "value": format!("doc-{n}")},
        "timestamp": "2024-02-01T10:00:00+09:00",
        "entry": [
            {"fullUrl": urn(990 + n), "resource": {
                "resourceType": "Composition", "id": format!("comp-{n}"), "status": "final",
                "type": coded("http://loinc.org", "57133-1", "診療情報提供書"),
                "subject": {"reference": p}, "date": "2024-02-01T10:00:00+09:00",
                "author": [{"reference": doctor}], "title": "診療情報提供書",
                "section": [
                    {"title": "紹介目的", "text": {"status": "generated",
                        "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>糖尿病の精査 &amp; 加療</p></div>"}},
                    {"title": "現病歴", "text": {"status": "generated",
                        "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">HbA1c &lt; 8</div>"}}
                ]}},
            {"fullUrl": p, "resource": patient(&format!("pat-{n}"), &format!("{n:08}"), SECRET_NAME, "タカハシ ハナコ", None)},
            {"fullUrl": doctor, "resource": {"resourceType": "Practitioner", "id": format!("dr-{n}"),
                "name": [{"text": "医師 一郎"}]}}
        ]
    })
}

fn ndjson(lines: &[String]) -> String {
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

fn write_intake_dir(dir: &Path, lines: &[String]) {
    std::fs::write(
        dir.join(PROVIDERS_FILE),
        r#"[{"id":"prov-001","name":"東都大学病院","name_en":"Toto University Hospital","kind":"university_hospital"}]"#,
    )
    .unwrap();
    let provider = dir.join(PROVIDER);
    std::fs::create_dir_all(&provider).unwrap();
    std::fs::write(provider.join("bundles.ndjson"), ndjson(lines)).unwrap();
    // Every fixture patient (numbers 00000001..) was notified long ago, so it is eligible.
    let mut notifications = String::from("provider_patient_id,notified_on,means\n");
    for n in (1..=20).chain([77]) {
        notifications.push_str(&format!("{n:08},2025-01-10,letter\n"));
    }
    std::fs::write(provider.join("notifications.csv"), notifications).unwrap();
    std::fs::create_dir_all(dir.join("truth")).unwrap();
    std::fs::write(dir.join("truth").join("persons.json"), "{}").unwrap();
}

fn clean_lines() -> Vec<String> {
    vec![
        patient_bundle(1, false).to_string(),
        patient_bundle(2, true).to_string(),
        referral_document(1).to_string(),
        // A bulk-style single resource referring to a Patient of an earlier line.
        json!({"resourceType": "Condition", "id": "cond-late",
               "code": coded("http://jpfhir.jp/fhir/core/mhlw/CodeSystem/ICD10-2013-full", "I10", "本態性高血圧"),
               "verificationStatus": coded("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed", "confirmed"),
               "subject": {"reference": "Patient/pat-1"}})
        .to_string(),
        // A reference by identifier to a patient the file never sent.
        json!({"resourceType": "Observation", "id": "lab-by-identifier", "status": "final",
               "code": coded("http://medis.or.jp/CodeSystem/master-JLAC10-17digits", "3D010000001926101", "空腹時血糖"),
               "subject": {"identifier": {"system": JP_PATIENT_SYSTEM, "value": "00000077"}},
               "valueQuantity": {"value": 101, "unit": "mg/dL"}})
        .to_string(),
    ]
}

async fn rows<R: TableRow>(env: &Env) -> Vec<R> {
    let mut out = Vec::new();
    for segment in env.meta.segments(R::TABLE).await.unwrap() {
        out.extend(env.store.read_segment::<R>(&segment.path).unwrap());
    }
    out
}

async fn quarantine(env: &Env) -> Vec<QuarantineListing> {
    let mut q = env.meta.quarantine(Some(PROVIDER), 1000).await.unwrap();
    q.sort_by_key(|l| (l.entry.line, l.entry.entry_index));
    q
}

fn sorted<T: Debug>(mut items: Vec<T>) -> Vec<String> {
    let mut out: Vec<String> = items.drain(..).map(|i| format!("{i:?}")).collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_clean_directory_maps_every_table() {
    let env = env().await;
    let input = tempfile::tempdir().unwrap();
    write_intake_dir(input.path(), &clean_lines());
    let seen = std::sync::Mutex::new(Vec::new());
    let progress = |p: IngestProgress| seen.lock().unwrap().push(p);
    let report = ingest_dir(
        env.store.clone(),
        &env.meta,
        input.path(),
        &IngestOptions::default(),
        &progress,
    )
    .await
    .unwrap();
    assert_eq!(report.providers, 1);
    assert_eq!(report.intakes, 1);
    assert_eq!(report.lines, 5);
    assert_eq!(report.resources_rejected, 0, "{:?}", quarantine(&env).await);
    // 2 × 9 resources, document: Composition + Practitioner (+ the Patient again, a duplicate),
    // and the two single resources.
    assert_eq!(report.resources_accepted, 18 + 2 + 2);
    assert_eq!(report.resources_duplicate, 1);
    let expected: BTreeMap<String, u64> = [
        ("identity", 2),
        ("deaths", 1),
        ("encounters", 2),
        ("conditions", 3),
        ("medication_requests", 2),
        ("medication_dispenses", 2),
        ("lab_observations", 3),
        ("infections", 2),
        ("allergies", 2),
        ("procedures", 2),
        ("documents", 1),
    ]
    .into_iter()
    .map(|(t, n)| (t.to_owned(), n))
    .collect();
    assert_eq!(report.rows_per_table, expected);
    let last = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.bytes_done, last.bytes_total);
    assert_eq!(last.source, "prov-001/bundles.ndjson");

    let identity: Vec<IdentityRow> = rows(&env).await;
    let first = identity
        .iter()
        .find(|r| r.common.source_id == "pat-1")
        .unwrap();
    assert_eq!(first.provider_patient_id, "00000001");
    assert_eq!(first.name_kanji.as_deref(), Some(SECRET_NAME));
    assert_eq!(first.name_kana.as_deref(), Some("タカハシ ハナコ"));
    assert_eq!(first.birth_date.unwrap().to_string(), "1948-02-29");
    assert_eq!(first.sex, "female");
    assert_eq!(first.insurer_number.as_deref(), Some("06130017"));
    assert_eq!(first.insured_number.as_deref(), Some("123"));
    assert_eq!(first.address.as_deref(), Some("東京都千代田区千代田1-1"));
    let key = env.store.patient_key(PROVIDER, "00000001").0;
    assert_eq!(first.common.patient_key, key);

    let conditions: Vec<ConditionRow> = rows(&env).await;
    let c1 = conditions
        .iter()
        .find(|c| c.common.source_id == "cond-1")
        .unwrap();
    assert_eq!(c1.common.patient_key, key);
    assert!(c1.suspected);
    assert_eq!(c1.icd10.as_deref(), Some("E11.9"));
    assert_eq!(c1.medis_code.as_deref(), Some("ND6F"));
    assert_eq!(c1.encounter_id.as_deref(), Some("enc-1"));
    assert_eq!(c1.onset_date.unwrap().to_string(), "2023-12-01");
    let late = conditions
        .iter()
        .find(|c| c.common.source_id == "cond-late")
        .unwrap();
    assert_eq!(
        late.common.patient_key, key,
        "Patient/<id> of an earlier line"
    );
    assert!(!late.suspected);

    let encounters: Vec<EncounterRow> = rows(&env).await;
    assert!(encounters.iter().all(|e| e.class == "outpatient"));
    assert_eq!(encounters[0].department_name.as_deref(), Some("内科"));
    let requests: Vec<MedicationRequestRow> = rows(&env).await;
    assert_eq!(requests[0].yj_code.as_deref(), Some("3969007F1024"));
    assert_eq!(requests[0].days, Some(28));
    assert_eq!(requests[0].dose, Some(1.0));
    assert_eq!(requests[0].frequency.as_deref(), Some("1013044400000000"));
    assert_eq!(requests[0].route.as_deref(), Some("経口"));
    let dispenses: Vec<MedicationDispenseRow> = rows(&env).await;
    assert_eq!(dispenses[0].days, Some(28));
    let labs: Vec<LabObservationRow> = rows(&env).await;
    let hba1c = labs.iter().find(|l| l.common.source_id == "lab-1").unwrap();
    assert_eq!(hba1c.value, Some(7.2));
    assert_eq!(hba1c.reference_high, Some(6.0));
    assert_eq!(hba1c.abnormal_flag.as_deref(), Some("H"));
    let by_identifier = labs
        .iter()
        .find(|l| l.common.source_id == "lab-by-identifier")
        .unwrap();
    assert_eq!(
        by_identifier.common.patient_key,
        env.store.patient_key(PROVIDER, "00000077").0
    );
    let infections: Vec<InfectionRow> = rows(&env).await;
    assert!(
        infections
            .iter()
            .all(|i| i.result.as_deref() == Some("negative"))
    );
    assert_eq!(infections[0].code.as_deref(), Some("5F016141002227101"));
    let allergies: Vec<AllergyRow> = rows(&env).await;
    assert_eq!(allergies[0].category, "food");
    let procedures: Vec<ProcedureRow> = rows(&env).await;
    assert_eq!(procedures[0].code.as_deref(), Some("302000110"));
    let deaths: Vec<DeathRow> = rows(&env).await;
    assert_eq!(deaths[0].death_date.unwrap().to_string(), "2024-03-01");
    assert_eq!(
        deaths[0].common.patient_key,
        env.store.patient_key(PROVIDER, "00000002").0
    );
    let documents: Vec<DocumentRow> = rows(&env).await;
    assert_eq!(documents[0].kind, "referral_letter");
    assert_eq!(
        documents[0].text.as_deref(),
        Some("紹介目的\n糖尿病の精査 & 加療\n\n現病歴\nHbA1c < 8")
    );
    assert_eq!(documents[0].common.patient_key, key);

    let intake = env.meta.intake(&report.files[0].intake_id).await.unwrap();
    assert_eq!(intake.status, IntakeStatus::Completed);
    let items = env.meta.intake_item_counts(&intake.id).await.unwrap();
    assert!(items.contains(&("Practitioner".to_owned(), 1)));
    assert!(items.contains(&("Observation".to_owned(), 5)));
}

#[tokio::test]
async fn malformed_lines_are_quarantined_with_line_and_reason() {
    let env = env().await;
    let input = tempfile::tempdir().unwrap();
    let long_text = "あ".repeat(3000);
    let lines = vec![
        patient_bundle(1, false).to_string(),                    // 1 ok
        r#"{"resourceType":"Patient","id":"broken""#.to_owned(), // 2 JSON
        json!({"id": "x", "status": "final"}).to_string(),       // 3 type
        json!({"resourceType": "Observation", "id": "no-status",                       // 4 rule
               "code": coded("http://loinc.org", "1-8", "x"),
               "subject": {"reference": "Patient/pat-1"}})
        .to_string(),
        json!({"resourceType": "Condition", "id": "orphan",                            // 5 subject
               "code": {"text": SECRET_NAME},
               "subject": {"reference": "Patient/nobody"}})
        .to_string(),
        json!({"resourceType": "Observation", "id": "big", "status": "final",          // 6 size
               "code": {"text": long_text}, "subject": {"reference": "Patient/pat-1"}})
        .to_string(),
        json!({"resourceType": "Basic", "id": "b1"}).to_string(), // 7 type
        "[1, 2]".to_owned(),                                      // 8 shape
        String::new(),                                            // 9 blank
        json!({"resourceType": "Condition", "id": "bad-date",                          // 10 date
               "code": {"text": "x"}, "onsetDateTime": "2024-13-45",
               "subject": {"reference": "Patient/pat-1"}})
        .to_string(),
        json!({"resourceType": "Condition", "id": "cond-ok",                           // 11 ok
               "code": {"text": "x"}, "subject": {"reference": "Patient/pat-1"}})
        .to_string(),
        json!({ "resourceType": SECRET_NAME }).to_string(), // 12 type name
    ];
    write_intake_dir(input.path(), &lines);
    let options = IngestOptions {
        lines_per_chunk: 4,
        max_line_bytes: 8000,
    };
    let report = ingest_dir(
        env.store.clone(),
        &env.meta,
        input.path(),
        &options,
        &no_progress(),
    )
    .await
    .unwrap();
    assert_eq!(report.lines, 12);
    assert_eq!(report.resources_accepted, 9 + 1);
    assert_eq!(report.resources_rejected, 9);
    let q = quarantine(&env).await;
    let summary: Vec<(i64, Option<&str>, &str)> = q
        .iter()
        .map(|l| {
            (
                l.entry.line,
                l.entry.resource_type.as_deref(),
                l.entry.reason.as_str(),
            )
        })
        .collect();
    let lines_rejected: Vec<i64> = summary.iter().map(|s| s.0).collect();
    assert_eq!(
        lines_rejected,
        vec![2, 3, 4, 5, 6, 7, 8, 10, 12],
        "{summary:?}"
    );
    let reason = |line: i64| summary.iter().find(|s| s.0 == line).unwrap().2;
    assert!(
        reason(2).starts_with("invalid JSON at column"),
        "{}",
        reason(2)
    );
    assert!(reason(3).contains("resourceType"), "{}", reason(3));
    assert!(reason(4).contains("Observation.status"), "{}", reason(4));
    assert!(reason(5).contains("Condition.subject"), "{}", reason(5));
    assert!(
        reason(6).contains("exceeds the limit of 8000 bytes"),
        "{}",
        reason(6)
    );
    assert!(
        reason(7).contains("Basic") && reason(7).contains("not supported"),
        "{}",
        reason(7)
    );
    assert_eq!(reason(8), "not a JSON object");
    assert!(reason(10).contains("onsetDateTime"), "{}", reason(10));
    assert_eq!(reason(12), "resourceType: not a FHIR resource type name");
    assert_eq!(summary[2].1, Some("Observation"));
    for listing in &q {
        assert!(!listing.entry.reason.contains(SECRET_NAME));
        assert!(
            !listing
                .entry
                .resource_type
                .as_deref()
                .unwrap_or("")
                .contains(SECRET_NAME)
        );
        assert!(!listing.entry.reason.contains("2024-13-45"));
        assert_eq!(listing.source, "prov-001/bundles.ndjson");
    }
    // The originals are in the encrypted blobs, one per chunk with rejections.
    let blob_path = &q
        .iter()
        .find(|l| l.entry.line == 5)
        .unwrap()
        .entry
        .blob_path;
    let blob: Value = serde_json::from_slice(&env.store.read_blob(blob_path).unwrap()).unwrap();
    assert_eq!(blob["format"], QUARANTINE_FORMAT);
    let entry = blob["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["line"] == 5)
        .unwrap();
    assert_eq!(entry["original"].as_str().unwrap(), lines[4]);
    let raw = std::fs::read(env.data.path().join(blob_path)).unwrap();
    assert!(
        !String::from_utf8_lossy(&raw).contains("orphan"),
        "blobs are encrypted"
    );
    let big = q.iter().find(|l| l.entry.line == 6).unwrap();
    let blob: Value =
        serde_json::from_slice(&env.store.read_blob(&big.entry.blob_path).unwrap()).unwrap();
    let entry = blob["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["line"] == 6)
        .unwrap();
    assert_eq!(entry["original_truncated"], true);

    let conditions: Vec<ConditionRow> = rows(&env).await;
    assert!(conditions.iter().any(|c| c.common.source_id == "cond-ok"));
}

#[tokio::test]
async fn a_transaction_with_one_bad_entry_is_rejected_whole() {
    let env = env().await;
    let input = tempfile::tempdir().unwrap();
    let mut transaction = patient_bundle(1, false);
    transaction["entry"][5]["resource"]
        .as_object_mut()
        .unwrap()
        .remove("status");
    let mut collection = patient_bundle(2, false);
    collection["type"] = json!("collection");
    for entry in collection["entry"].as_array_mut().unwrap() {
        entry.as_object_mut().unwrap().remove("request");
    }
    collection["entry"][5]["resource"]
        .as_object_mut()
        .unwrap()
        .remove("status");
    let mut document = referral_document(3);
    document.as_object_mut().unwrap().remove("identifier");
    write_intake_dir(
        input.path(),
        &[
            transaction.to_string(),
            collection.to_string(),
            document.to_string(),
        ],
    );
    let report = ingest_dir(
        env.store.clone(),
        &env.meta,
        input.path(),
        &IngestOptions::default(),
        &no_progress(),
    )
    .await
    .unwrap();
    assert_eq!(report.resources_accepted, 8, "{:?}", quarantine(&env).await);
    assert_eq!(report.resources_rejected, 9 + 1 + 3);
    let q = quarantine(&env).await;
    let line1: Vec<&QuarantineListing> = q.iter().filter(|l| l.entry.line == 1).collect();
    assert_eq!(line1.len(), 9);
    for l in &line1 {
        if l.entry.entry_index == 5 {
            assert!(
                l.entry.reason.contains("Bundle.entry[5].resource.status"),
                "{}",
                l.entry.reason
            );
        } else {
            assert_eq!(l.entry.reason, "rejected with its bundle: entry 5 invalid");
        }
    }
    let line2: Vec<&QuarantineListing> = q.iter().filter(|l| l.entry.line == 2).collect();
    assert_eq!(line2.len(), 1);
    assert_eq!(line2[0].entry.entry_index, 5);
    let identity: Vec<IdentityRow> = rows(&env).await;
    assert_eq!(identity.len(), 1);
    assert_eq!(identity[0].common.source_id, "pat-2");
    let line3: Vec<&QuarantineListing> = q.iter().filter(|l| l.entry.line == 3).collect();
    assert_eq!(
        line3.len(),
        3,
        "a Bundle-level violation rejects every entry"
    );
    assert!(line3.iter().all(|l| l.entry.reason.contains("bdl-9")));
}

#[tokio::test]
async fn a_second_run_adds_nothing() {
    let env = env().await;
    let input = tempfile::tempdir().unwrap();
    write_intake_dir(input.path(), &clean_lines());
    let first = ingest_dir(
        env.store.clone(),
        &env.meta,
        input.path(),
        &IngestOptions::default(),
        &no_progress(),
    )
    .await
    .unwrap();
    let before = env.meta.table_counts().await.unwrap();
    let again = ingest_dir(
        env.store.clone(),
        &env.meta,
        input.path(),
        &IngestOptions::default(),
        &no_progress(),
    )
    .await
    .unwrap();
    assert_eq!(again.files_skipped, 1);
    assert_eq!(again.intakes, 0);
    assert!(again.files[0].skipped);
    assert_eq!(again.resources_accepted, 0);
    // The same resources in another file (other bytes: one more blank line) are duplicates.
    let copy = input.path().join(PROVIDER).join("copy.ndjson");
    std::fs::write(&copy, format!("{}\n", ndjson(&clean_lines()))).unwrap();
    let third = ingest_dir(
        env.store.clone(),
        &env.meta,
        input.path(),
        &IngestOptions::default(),
        &no_progress(),
    )
    .await
    .unwrap();
    assert_eq!(third.intakes, 1);
    assert_eq!(third.resources_accepted, 0);
    assert_eq!(
        third.resources_duplicate,
        first.resources_accepted + first.resources_duplicate
    );
    assert!(third.rows_per_table.is_empty());
    let after = env.meta.table_counts().await.unwrap();
    let rows = |c: &[kiban_metadata::TableCount]| {
        c.iter()
            .map(|t| (t.table_name.clone(), t.rows))
            .collect::<Vec<_>>()
    };
    assert_eq!(rows(&before), rows(&after));
}

#[tokio::test]
async fn a_changed_resource_under_the_same_id_is_a_conflicting_version() {
    let env = env().await;
    let input = tempfile::tempdir().unwrap();
    let mut changed = patient_bundle(1, false);
    changed["entry"][2]["resource"]["recordedDate"] = json!("2024-02-02");
    write_intake_dir(
        input.path(),
        &[patient_bundle(1, false).to_string(), changed.to_string()],
    );
    let report = ingest_dir(
        env.store.clone(),
        &env.meta,
        input.path(),
        &IngestOptions::default(),
        &no_progress(),
    )
    .await
    .unwrap();
    assert_eq!(report.resources_accepted, 9);
    assert_eq!(
        report.resources_rejected, 9,
        "the changed transaction is rejected whole"
    );
    let q = quarantine(&env).await;
    let conflict = q.iter().find(|l| l.entry.entry_index == 2).unwrap();
    assert!(
        conflict.entry.reason.contains("conflicting version"),
        "{}",
        conflict.entry.reason
    );
}

/// Rows of every table with the patient key left out (keys differ between stores).
async fn contents_without_keys(env: &Env) -> Vec<String> {
    fn strip<R: TableRow + Debug>(rows: Vec<R>, blank: fn(&mut R)) -> Vec<String> {
        sorted(
            rows.into_iter()
                .map(|mut r| {
                    blank(&mut r);
                    r
                })
                .collect(),
        )
    }
    let mut all = Vec::new();
    all.extend(strip(rows::<IdentityRow>(env).await, |r| {
        r.common.patient_key.clear()
    }));
    all.extend(strip(rows::<ConditionRow>(env).await, |r| {
        r.common.patient_key.clear()
    }));
    all.extend(strip(rows::<EncounterRow>(env).await, |r| {
        r.common.patient_key.clear()
    }));
    all.extend(strip(rows::<LabObservationRow>(env).await, |r| {
        r.common.patient_key.clear()
    }));
    all.extend(strip(rows::<InfectionRow>(env).await, |r| {
        r.common.patient_key.clear()
    }));
    all.extend(strip(rows::<DocumentRow>(env).await, |r| {
        r.common.patient_key.clear()
    }));
    all.extend(strip(rows::<DeathRow>(env).await, |r| {
        r.common.patient_key.clear()
    }));
    all.extend(strip(rows::<MedicationRequestRow>(env).await, |r| {
        r.common.patient_key.clear()
    }));
    all.extend(strip(rows::<MedicationDispenseRow>(env).await, |r| {
        r.common.patient_key.clear()
    }));
    all.extend(strip(rows::<AllergyRow>(env).await, |r| {
        r.common.patient_key.clear()
    }));
    all.extend(strip(rows::<ProcedureRow>(env).await, |r| {
        r.common.patient_key.clear()
    }));
    all
}

#[tokio::test]
async fn a_killed_intake_resumes_to_the_result_of_one_clean_run() {
    let mut lines = clean_lines();
    lines.insert(1, "{not json".to_owned());
    let options = IngestOptions {
        lines_per_chunk: 2,
        max_line_bytes: 1 << 20,
    };
    // The clean run.
    let clean = env().await;
    let input = tempfile::tempdir().unwrap();
    write_intake_dir(input.path(), &lines);
    let clean_report = ingest_dir(
        clean.store.clone(),
        &clean.meta,
        input.path(),
        &options,
        &no_progress(),
    )
    .await
    .unwrap();

    // The killed run: one chunk committed, the next one written but not committed.
    let killed = env().await;
    for provider in providers::read_providers(&input.path().join(PROVIDERS_FILE)).unwrap() {
        killed.meta.upsert_provider(&provider).await.unwrap();
    }
    let path = input.path().join(PROVIDER).join("bundles.ndjson");
    let totals = ProgressTotals {
        bytes_before: 0,
        bytes_total: 0,
    };
    let collection = Collection::new(
        killed.meta.clone(),
        killed.store.clone(),
        Arc::new(SystemClock),
        CollectionPolicy::default(),
    );
    import_registers(&collection, input.path(), PROVIDER)
        .await
        .unwrap();
    let partial = ingest_file_with(
        killed.store.clone(),
        &collection,
        PROVIDER,
        Source::File(path.clone()),
        "prov-001/bundles.ndjson",
        &options,
        &no_progress(),
        totals,
        Some(1),
    )
    .await
    .unwrap();
    assert_eq!(partial.chunks, 1);
    let orphan_name = format!("{}-{:06}", partial.intake_id, 1);
    killed
        .store
        .write_segment(&orphan_name, &[ConditionRow::default()])
        .unwrap();
    killed
        .store
        .write_blob(kiban_store::BlobArea::Quarantine, &orphan_name, b"partial")
        .unwrap();
    // A leftover of another, abandoned chunk name.
    killed
        .store
        .write_segment("stale-000009", &[DeathRow::default()])
        .unwrap();

    let resumed = ingest_dir(
        killed.store.clone(),
        &killed.meta,
        input.path(),
        &options,
        &no_progress(),
    )
    .await
    .unwrap();
    assert_eq!(resumed.orphans_removed, 3);
    assert_eq!(resumed.files[0].resumed_after_line, 2);
    let intake = killed.meta.intake(&partial.intake_id).await.unwrap();
    let clean_intake = clean
        .meta
        .intake(&clean_report.files[0].intake_id)
        .await
        .unwrap();
    assert_eq!(intake.id, clean_intake.id);
    assert_eq!(intake.status, IntakeStatus::Completed);
    assert_eq!(intake.chunks_committed, clean_intake.chunks_committed);
    assert_eq!(intake.lines_read, clean_intake.lines_read);
    assert_eq!(intake.bytes_read, clean_intake.bytes_read);
    assert_eq!(intake.resources_accepted, clean_intake.resources_accepted);
    assert_eq!(intake.resources_duplicate, clean_intake.resources_duplicate);
    assert_eq!(intake.resources_rejected, clean_intake.resources_rejected);
    assert_eq!(
        contents_without_keys(&killed).await,
        contents_without_keys(&clean).await
    );
    let on_disk = killed.store.segment_files_on_disk().unwrap();
    let committed = killed.meta.committed_paths().await.unwrap();
    assert!(on_disk.iter().all(|p| committed.contains(p)));
    // The Condition that names Patient/pat-1 (line 5, after the resume point) found its patient.
    let conditions: Vec<ConditionRow> = rows(&killed).await;
    let late = conditions
        .iter()
        .find(|c| c.common.source_id == "cond-late")
        .unwrap();
    assert_eq!(
        late.common.patient_key,
        killed.store.patient_key(PROVIDER, "00000001").0
    );
}

#[tokio::test]
async fn layout_errors_name_the_file_or_directory() {
    let env = env().await;
    let input = tempfile::tempdir().unwrap();
    write_intake_dir(input.path(), &clean_lines());
    std::fs::create_dir_all(input.path().join("prov-999")).unwrap();
    let err = ingest_dir(
        env.store.clone(),
        &env.meta,
        input.path(),
        &IngestOptions::default(),
        &no_progress(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, IngestError::UnknownProviderDirectory { .. }));
    assert!(err.to_string().contains("prov-999"), "{err}");
    assert!(
        env.meta.providers().await.unwrap().is_empty(),
        "nothing registered"
    );

    std::fs::write(input.path().join(PROVIDERS_FILE), "[{").unwrap();
    let err = ingest_dir(
        env.store.clone(),
        &env.meta,
        input.path(),
        &IngestOptions::default(),
        &no_progress(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("providers.json"), "{err}");
}

#[tokio::test]
async fn a_generated_population_ingests_without_rejections() {
    let env = env().await;
    let input = tempfile::tempdir().unwrap();
    let config = kiban_synth::SynthConfig {
        persons: 50,
        ..kiban_synth::SynthConfig::default()
    };
    let summary = kiban_synth::generate(&config, input.path(), &|_| {}).unwrap();
    let options = IngestOptions {
        lines_per_chunk: 7,
        ..IngestOptions::default()
    };
    let report = ingest_dir(
        env.store.clone(),
        &env.meta,
        input.path(),
        &options,
        &no_progress(),
    )
    .await
    .unwrap();
    let q = quarantine(&env).await;
    assert_eq!(report.resources_rejected, 0, "{:?}", &q[..q.len().min(5)]);
    let written: u64 = summary.resources.values().sum();
    assert_eq!(
        report.resources_accepted + report.resources_duplicate,
        written,
        "every resource written is accepted, or a duplicate (copies in documents)"
    );
    assert_eq!(
        report.rows_per_table.get("identity"),
        Some(&summary.patient_records)
    );
    assert_eq!(report.lines, summary.bundles);
    let again = ingest_dir(
        env.store.clone(),
        &env.meta,
        input.path(),
        &options,
        &no_progress(),
    )
    .await
    .unwrap();
    assert_eq!(again.intakes, 0);
    assert_eq!(again.resources_accepted, 0);
}

/// R-C1 and R-C2 with a controllable clock: a patient notified 10 days ago is held and taken
/// once a month has passed; a patient who refused is never taken.
#[tokio::test]
async fn recent_notifications_hold_and_refusals_refuse() {
    use kiban_collection::FixedClock;
    let env = env().await;
    let input = tempfile::tempdir().unwrap();
    let lines = vec![
        patient_bundle(1, false).to_string(),
        patient_bundle(2, false).to_string(),
    ];
    write_intake_dir(input.path(), &lines);
    let provider_dir = input.path().join(PROVIDER);
    // Patient 1 notified 10 days before "today"; patient 2 notified long ago but refused.
    std::fs::write(
        provider_dir.join("notifications.csv"),
        "provider_patient_id,notified_on,means\n00000001,2026-11-11,letter\n00000002,2025-01-10,poster\n",
    )
    .unwrap();
    std::fs::write(
        provider_dir.join("refusals.csv"),
        "provider_patient_id,refused_on,by\n00000002,2026-11-01,patient\n",
    )
    .unwrap();
    let clock = Arc::new(FixedClock::on_date(
        chrono::NaiveDate::from_ymd_opt(2026, 11, 21).unwrap(),
    ));
    let collection = Collection::new(
        env.meta.clone(),
        env.store.clone(),
        clock.clone(),
        CollectionPolicy::default(),
    );
    let report = ingest_dir_with(
        env.store.clone(),
        &collection,
        input.path(),
        &IngestOptions::default(),
        &no_progress(),
    )
    .await
    .unwrap();
    assert_eq!(report.resources_accepted, 0);
    let file = &report.files[0];
    assert_eq!(file.resources_held, 9);
    assert_eq!(file.resources_refused, 9);
    assert!(
        file.held
            .iter()
            .all(|h| h.eligible_on == chrono::NaiveDate::from_ymd_opt(2026, 12, 11))
    );
    assert!(rows::<IdentityRow>(&env).await.is_empty());
    assert!(
        quarantine(&env).await.is_empty(),
        "refused data is not kept"
    );
    // The held line is encrypted at rest like everything else.
    let held = env.meta.held_lines(10).await.unwrap();
    assert_eq!(held.len(), 1);
    let raw = std::fs::read(env.data.path().join(&held[0].record.blob_path)).unwrap();
    assert!(
        !raw.windows(SECRET_NAME.len())
            .any(|w| w == SECRET_NAME.as_bytes())
    );

    // Still within the month: nothing moves.
    clock.advance_days(19);
    let release = release_held(env.store.clone(), &collection, &IngestOptions::default())
        .await
        .unwrap();
    assert_eq!((release.lines_released, release.lines_still_held), (0, 1));

    // A month after the notification: taken, and the blob is gone.
    clock.advance_days(1);
    let release = release_held(env.store.clone(), &collection, &IngestOptions::default())
        .await
        .unwrap();
    assert_eq!(release.lines_released, 1);
    assert_eq!(release.intakes[0].resources_accepted, 9);
    // The acquisition record names the notice under which the patient's data was taken.
    let basis = env
        .meta
        .intake_notification_basis(&release.intakes[0].intake_id)
        .await
        .unwrap();
    assert_eq!(basis.len(), 1, "{basis:?}");
    assert_eq!(basis[0].means, kiban_collection::NotificationMeans::Letter);
    assert_eq!(basis[0].patients, 1);
    assert_eq!(
        basis[0].earliest_notified_on,
        chrono::NaiveDate::from_ymd_opt(2026, 11, 11).unwrap()
    );
    assert_eq!(rows::<IdentityRow>(&env).await.len(), 1);
    assert!(env.meta.held_lines(10).await.unwrap().is_empty());
    assert!(!env.data.path().join(&held[0].record.blob_path).exists());

    // Re-running the release and the intake changes nothing.
    let again = release_held(env.store.clone(), &collection, &IngestOptions::default())
        .await
        .unwrap();
    assert_eq!(again, ReleaseReport::default());
}

/// JP-CLINS habits: the document's Encounter leaves out its subject (it is the Composition's),
/// and the document carries resources kiban has no table for (Coverage). The document is taken
/// whole: the Encounter lands under the document's patient, the Coverage is carried.
#[tokio::test]
async fn a_document_encounter_takes_the_document_subject_and_unmapped_entries_are_carried() {
    let env = env().await;
    let input = tempfile::tempdir().unwrap();
    let mut document = referral_document(4);
    let patient_url = document["entry"][1]["fullUrl"].clone();
    let entries = document["entry"].as_array_mut().unwrap();
    entries.push(json!({"fullUrl": urn(980), "resource": {
        "resourceType": "Encounter", "id": "enc-doc-4", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "period": {"start": "2024-01-20", "end": "2024-01-20"}}}));
    entries.push(json!({"fullUrl": urn(981), "resource": {
        "resourceType": "Coverage", "id": "cov-4", "status": "active",
        "beneficiary": {"reference": patient_url},
        "payor": [{"display": "全国健康保険協会"}]}}));
    write_intake_dir(input.path(), &[document.to_string()]);
    let report = ingest_dir(
        env.store.clone(),
        &env.meta,
        input.path(),
        &IngestOptions::default(),
        &no_progress(),
    )
    .await
    .unwrap();
    assert_eq!(report.resources_rejected, 0, "{:?}", quarantine(&env).await);
    assert_eq!(report.resources_accepted, 5);
    let identity: Vec<IdentityRow> = rows(&env).await;
    let encounters: Vec<EncounterRow> = rows(&env).await;
    assert_eq!(encounters.len(), 1);
    assert_eq!(
        encounters[0].common.patient_key,
        identity[0].common.patient_key
    );
}
