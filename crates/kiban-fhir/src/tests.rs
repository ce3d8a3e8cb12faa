//! Parse, round-trip and validation tests on JP Core-style examples.

use super::*;
use kiban_model::CodeSystem;
use serde_json::{Value, json};

fn patient_json() -> Value {
    json!({
        "resourceType": "Patient",
        "id": "jp-patient-1",
        "meta": {"profile": ["http://jpfhir.jp/fhir/core/StructureDefinition/JP_Patient"]},
        "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">患者</div>"},
        "identifier": [
            {"system": "urn:oid:1.2.392.100495.20.3.51.11311234567", "value": "00012345"},
            {"system": "http://jpfhir.jp/fhir/clins/Idsystem/JP_Insurance_memberID",
             "value": "０６１３００１２:１２３:４５６:０１"}
        ],
        "active": true,
        "name": [
            {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation", "valueCode": "IDE"}],
             "use": "official", "text": "髙橋 花子", "family": "髙橋", "given": ["花子"]},
            {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation", "valueCode": "SYL"}],
             "use": "official", "text": "タカハシ ハナコ", "family": "タカハシ", "given": ["ハナコ"]}
        ],
        "telecom": [{"system": "phone", "value": "03-1234-5678", "use": "home"}],
        "gender": "female",
        "birthDate": "1970-04-01",
        "address": [{"use": "home", "text": "東京都新宿区西新宿2丁目8-1", "line": ["西新宿2丁目8-1"],
                     "city": "新宿区", "state": "東京都", "postalCode": "163-8001", "country": "JP"}],
        "_birthDate": {"extension": [{"url": "http://example.org/x", "valueString": "kept"}]},
        "contact": [{"name": {"family": "髙橋"}}]
    })
}

fn condition_json() -> Value {
    json!({
        "resourceType": "Condition",
        "id": "cond-1",
        "extension": [{
            "url": "http://jpfhir.jp/fhir/core/Extension/StructureDefinition/JP_Condition_DiseasePostfixModifier",
            "valueCodeableConcept": {"coding": [{"system": "http://medis.or.jp/CodeSystem/master-disease-modifier-exCode", "code": "8002", "display": "の疑い"}]}
        }],
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "provisional"}]},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "encounter-diagnosis"}]}],
        "code": {"coding": [
            {"system": "urn:oid:1.2.392.200119.4.101.6", "code": "KQAT", "display": "2型糖尿病"},
            {"system": "http://jpfhir.jp/fhir/core/mhlw/CodeSystem/ICD10-2013-full", "code": "E11.9"}
        ], "text": "2型糖尿病の疑い"},
        "subject": {"reference": "Patient/jp-patient-1"},
        "onsetDateTime": "2019-06",
        "recordedDate": "2019-06-12T10:00:00+09:00"
    })
}

fn observation_json() -> Value {
    json!({
        "resourceType": "Observation",
        "id": "obs-1",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
        "code": {"coding": [{"system": "urn:oid:1.2.392.200119.4.504", "code": "3D046000001906202", "display": "HbA1c(NGSP)"}]},
        "subject": {"reference": "urn:uuid:4b9e1c3a-2d6f-4e8a-9b1c-0a2b3c4d5e6f"},
        "effectiveDateTime": "2024-05-01T09:30:00+09:00",
        "valueQuantity": {"value": 7.4, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"},
        "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "H"}]}],
        "referenceRange": [{"low": {"value": 4.6, "unit": "%"}, "high": {"value": 6.2, "unit": "%"}}]
    })
}

fn round_trip(value: Value) -> Resource<'static> {
    let resource = Resource::from_json_value(value.clone()).expect("parses");
    assert_eq!(
        resource.to_json_value(),
        value,
        "round trip must be faithful"
    );
    let text = resource.to_json_string();
    assert!(text.starts_with(&format!(
        "{{\"resourceType\":\"{}\"",
        resource.resource_type()
    )));
    assert_eq!(Resource::from_json_str(&text).expect("re-parses"), resource);
    resource
}

#[test]
fn patient_with_kanji_kana_and_insurance_member_id() {
    let Resource::Patient(p) = round_trip(patient_json()) else {
        panic!("expected Patient");
    };
    let kanji = p.name_in(NameRepresentation::Ideographic).unwrap();
    let kana = p.name_in(NameRepresentation::Syllabic).unwrap();
    assert_eq!(kanji.family.as_deref(), Some("髙橋"));
    assert_eq!(kana.given_joined(), "ハナコ");
    assert_eq!(
        p.insurance_member_id(),
        Some("０６１３００１２:１２３:４５６:０１")
    );
    assert!(p.extra.contains_key("_birthDate") && p.extra.contains_key("contact"));
    assert_eq!(
        parse_date(p.birth_date.as_deref().unwrap())
            .unwrap()
            .full()
            .unwrap()
            .to_string(),
        "1970-04-01"
    );
    let issues = validate(&Resource::Patient(p));
    assert!(issues.is_empty(), "{issues:?}");
}

#[test]
fn condition_with_medis_icd10_and_suspected_modifier() {
    let Resource::Condition(c) = round_trip(condition_json()) else {
        panic!("expected Condition");
    };
    let code = c.code.as_ref().unwrap();
    assert_eq!(code.code_in(CodeSystem::MedisDisease), Some("KQAT"));
    assert_eq!(code.code_in(CodeSystem::Icd10), Some("E11.9"));
    assert!(code.coding_in(CodeSystem::Jlac10).is_none());
    assert!(c.is_suspected());
    assert_eq!(c.modifier_codes(), vec!["8002"]);
    let target = c.subject.as_ref().unwrap().target().unwrap();
    assert_eq!(target.resource_type.as_deref(), Some("Patient"));
    assert_eq!(target.id, "jp-patient-1");
    let issues = validate(&Resource::Condition(c));
    assert!(issues.is_empty(), "{issues:?}");
}

#[test]
fn observation_with_jlac10_and_reference_range() {
    let Resource::Observation(o) = round_trip(observation_json()) else {
        panic!("expected Observation");
    };
    assert_eq!(
        o.code.as_ref().unwrap().code_in(CodeSystem::Jlac10),
        Some("3D046000001906202")
    );
    assert_eq!(o.value_quantity.as_ref().unwrap().value, Some(7.4));
    assert_eq!(o.reference_range[0].high.as_ref().unwrap().value, Some(6.2));
    let issues = validate(&Resource::Observation(o));
    assert!(issues.is_empty(), "{issues:?}");
}

#[test]
fn bundle_round_trip_and_validation() {
    let mut patient = patient_json();
    patient.as_object_mut().unwrap().remove("id");
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:4b9e1c3a-2d6f-4e8a-9b1c-0a2b3c4d5e6f", "resource": patient,
             "request": {"method": "POST", "url": "Patient"}},
            {"fullUrl": "urn:uuid:5b9e1c3a-2d6f-4e8a-9b1c-0a2b3c4d5e6f", "resource": observation_json(),
             "request": {"method": "POST", "url": "Observation"}},
            {"fullUrl": "urn:uuid:6b9e1c3a-2d6f-4e8a-9b1c-0a2b3c4d5e6f",
             "resource": {"resourceType": "Specimen", "id": "s1", "type": {"text": "血液"}},
             "request": {"method": "POST", "url": "Specimen"}}
        ]
    });
    let Resource::Bundle(b) = round_trip(bundle) else {
        panic!("expected Bundle");
    };
    assert!(matches!(b.entry[2].resource, Some(Resource::Other { .. })));
    let obs = b.entry[1].resource.as_ref().unwrap();
    let Resource::Observation(o) = obs else {
        panic!("expected Observation");
    };
    let subject = o.subject.as_ref().unwrap().reference.as_deref().unwrap();
    assert!(matches!(
        b.resolve(subject).and_then(|e| e.resource.as_ref()),
        Some(Resource::Patient(_))
    ));
    let issues = validate(&Resource::Bundle(b));
    assert!(issues.is_empty(), "{issues:?}");
}

#[test]
fn unknown_resource_types_go_to_other() {
    let r =
        Resource::from_json_str(r#"{"id":"m1","resourceType":"Medication","code":{"text":"x"}}"#)
            .unwrap();
    match &r {
        Resource::Other {
            resource_type,
            json,
        } => {
            assert_eq!(resource_type, "Medication");
            assert_eq!(json["code"]["text"], "x");
        }
        other => panic!("expected Other, got {}", other.resource_type()),
    }
    assert_eq!(r.id(), Some("m1"));
    assert!(
        r.to_json_string()
            .starts_with(r#"{"resourceType":"Medication""#)
    );
}

#[test]
fn parse_errors_name_the_path_not_the_value() {
    let mut p = patient_json();
    p["name"][1]["family"] = json!(12345);
    p["birthDate"] = json!("1970-04-01");
    let err = Resource::from_json_value(p).unwrap_err();
    let message = err.to_string();
    match &err {
        ParseError::Element { path, .. } => assert_eq!(path, "name[1].family"),
        other => panic!("unexpected {other:?}"),
    }
    assert!(!message.contains("12345"), "{message}");

    let mut p = patient_json();
    p["gender"] = json!({"secret": "タカハシ"});
    let message = Resource::from_json_value(p).unwrap_err().to_string();
    assert!(!message.contains("タカハシ"), "{message}");

    let mut b = json!({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": patient_json()}]});
    b["entry"][0]["resource"]["active"] = json!("yes-髙橋");
    let message = Resource::from_json_value(b).unwrap_err().to_string();
    assert!(message.contains("entry[0].resource"), "{message}");
    assert!(message.contains("active"), "{message}");
    assert!(!message.contains("髙橋"), "{message}");

    assert_eq!(
        Resource::from_json_str(r#"{"id":"x"}"#),
        Err(ParseError::MissingResourceType)
    );
    assert_eq!(Resource::from_json_str("[]"), Err(ParseError::NotAnObject));
    assert!(matches!(
        Resource::from_json_str("{\"resourceType\": \"Patient\", 髙橋}"),
        Err(ParseError::Syntax { .. })
    ));
}

fn paths(issues: &[ValidationIssue]) -> Vec<&str> {
    issues.iter().map(|i| i.path.as_str()).collect()
}

#[test]
fn validation_catches_missing_required_elements() {
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({"resourceType": "Observation"}),
            vec!["Observation.status", "Observation.code"],
        ),
        (
            json!({"resourceType": "Condition"}),
            vec!["Condition.subject"],
        ),
        (
            json!({"resourceType": "MedicationRequest"}),
            vec![
                "MedicationRequest.status",
                "MedicationRequest.intent",
                "MedicationRequest.medication[x]",
                "MedicationRequest.subject",
            ],
        ),
        (
            json!({"resourceType": "Encounter"}),
            vec!["Encounter.status", "Encounter.class"],
        ),
        (
            json!({"resourceType": "AllergyIntolerance"}),
            vec!["AllergyIntolerance.patient"],
        ),
        (
            json!({"resourceType": "Procedure"}),
            vec!["Procedure.status", "Procedure.subject"],
        ),
        (
            json!({"resourceType": "Composition"}),
            vec![
                "Composition.status",
                "Composition.type",
                "Composition.date",
                "Composition.author",
                "Composition.title",
            ],
        ),
        (
            json!({"resourceType": "DocumentReference"}),
            vec!["DocumentReference.status", "DocumentReference.content"],
        ),
        (json!({"resourceType": "Bundle"}), vec!["Bundle.type"]),
        (
            json!({"resourceType": "MedicationDispense"}),
            vec![
                "MedicationDispense.status",
                "MedicationDispense.medication[x]",
            ],
        ),
    ];
    for (value, expected) in cases {
        let r = Resource::from_json_value(value).unwrap();
        let issues = validate(&r);
        for path in expected {
            assert!(
                paths(&issues).contains(&path),
                "{path} missing from {issues:?}"
            );
        }
    }
}

#[test]
fn validation_checks_value_sets_formats_and_invariants() {
    let mut p = patient_json();
    p["gender"] = json!("F");
    p["birthDate"] = json!("1970/04/01");
    p["name"][0]["use"] = json!("kanji");
    let issues = validate(&Resource::from_json_value(p).unwrap());
    let ps = paths(&issues);
    assert!(ps.contains(&"Patient.gender"));
    assert!(ps.contains(&"Patient.birthDate"));
    assert!(ps.contains(&"Patient.name[0].use"));
    for issue in &issues {
        assert!(!issue.rule.contains("1970") && !issue.rule.contains("F\""));
    }

    let mut o = observation_json();
    o["status"] = json!("done");
    o["effectiveDateTime"] = json!("2024-05-01T09:30:00");
    o["referenceRange"] = json!([{"type": {"text": "normal"}}]);
    o["dataAbsentReason"] = json!({"text": "x"});
    let issues = validate(&Resource::from_json_value(o).unwrap());
    let ps = paths(&issues);
    assert!(ps.contains(&"Observation.status"));
    assert!(ps.contains(&"Observation.effectiveDateTime"));
    assert!(ps.contains(&"Observation.referenceRange[0]"));
    assert!(ps.contains(&"Observation.dataAbsentReason"));

    let mut c = condition_json();
    c["abatementDateTime"] = json!("2020-01-01");
    let issues = validate(&Resource::from_json_value(c).unwrap());
    assert!(
        issues.iter().any(|i| i.rule.starts_with("con-4")),
        "{issues:?}"
    );

    let doc = json!({"resourceType": "Bundle", "type": "document",
        "entry": [{"fullUrl": "urn:uuid:a", "resource": patient_json()},
                  {"fullUrl": "urn:uuid:a", "resource": observation_json(),
                   "request": {"method": "POST", "url": "Observation"}}]});
    let issues = validate(&Resource::from_json_value(doc).unwrap());
    for rule in ["bdl-9", "bdl-10", "bdl-11", "bdl-7", "bdl-3"] {
        assert!(
            issues
                .iter()
                .any(|i| i.rule.starts_with(&format!("{rule}:"))),
            "{rule} in {issues:?}"
        );
    }

    let tx = json!({"resourceType": "Bundle", "type": "transaction",
        "entry": [{"fullUrl": "urn:uuid:b", "resource": {"resourceType": "Observation", "code": {"text": "x"}}}]});
    let issues = validate(&Resource::from_json_value(tx).unwrap());
    let ps = paths(&issues);
    assert!(ps.contains(&"Bundle.entry[0].request"));
    assert!(ps.contains(&"Bundle.entry[0].resource.status"));
}

#[test]
fn builders_produce_valid_jp_core_names_and_codes() {
    let name = HumanName::with_representation(NameRepresentation::Ideographic, "渡邊", "一郎");
    assert_eq!(name.representation(), Some(NameRepresentation::Ideographic));
    let coding = Coding::new(CodeSystem::Yj, "3969007F1020", "ジャヌビア錠50mg");
    assert!(coding.is_in(CodeSystem::Yj));
    let mut aliased = coding.clone();
    aliased.system = Some("urn:oid:1.2.392.100495.20.1.73".into());
    assert!(aliased.is_in(CodeSystem::Yj));
    let narrative = Narrative::from_text("山田様 <ご紹介>\n二行目");
    assert!(narrative.div.as_deref().unwrap().contains("&lt;ご紹介&gt;"));
    let patient = Patient {
        name: vec![name],
        gender: Some("male".into()),
        text: Some(narrative),
        ..Default::default()
    };
    let text = to_json_string(&patient);
    assert!(
        text.starts_with(r#"{"resourceType":"Patient","text""#),
        "{text}"
    );
    assert!(validate(&Resource::from(patient)).is_empty());
}

/// The streaming parse (typed structs read straight from text) and the tree parse
/// (`from_json_value`) must agree, whatever the key order.
#[test]
fn streaming_and_tree_parses_agree() {
    for value in [patient_json(), condition_json()] {
        let tree = Resource::from_json_value(value.clone()).unwrap();
        // serde_json::Value objects are sorted by key, so resourceType is not first here.
        let sorted_text = serde_json::to_string(&value).unwrap();
        assert!(!sorted_text.starts_with("{\"resourceType\""));
        assert_eq!(Resource::from_json_str(&sorted_text).unwrap(), tree);
        // resourceType first: the streaming path.
        let streamed_text = tree.to_json_string();
        assert!(streamed_text.starts_with("{\"resourceType\""));
        let streamed: Resource = serde_json::from_str(&streamed_text).unwrap();
        assert_eq!(streamed, tree);
    }
}

#[test]
fn unknown_elements_and_primitive_extensions_are_kept() {
    let text = patient_json().to_string();
    let Resource::Patient(patient) = Resource::from_json_str(&text).unwrap() else {
        panic!("a Patient")
    };
    assert!(patient.extra.contains_key("_birthDate"));
    assert!(patient.extra.contains_key("contact"));
    assert!(!patient.extra.contains_key("resourceType"));
    assert_eq!(patient.birth_date.as_deref(), Some("1970-04-01"));
}

#[test]
fn element_errors_name_the_path_on_either_path() {
    let text = r#"{"resourceType":"Patient","id":"p","birthDate":["not","a","string"]}"#;
    let err = Resource::from_json_str(text).unwrap_err().to_string();
    assert!(err.contains("birthDate"), "{err}");
    let text = r#"{"resourceType":"Patient","gender":"female","gender":"male"}"#;
    // A duplicated element is not silently merged by the streaming path; the tree path keeps
    // the last value as JSON parsers do.
    let parsed = Resource::from_json_str(text).unwrap();
    let Resource::Patient(patient) = parsed else {
        panic!("a Patient")
    };
    assert_eq!(patient.gender.as_deref(), Some("male"));
}

#[test]
fn json_names_follow_fhir_spelling() {
    assert_eq!(crate::datatypes::json_name!(birth_date), "birthDate");
    assert_eq!(crate::datatypes::json_name!(type_), "type");
    assert_eq!(
        crate::datatypes::json_name!(deceased_date_time),
        "deceasedDateTime"
    );
    assert_eq!(crate::datatypes::json_name!(id), "id");
}

#[test]
fn a_coding_without_a_system_is_valid_r4() {
    // Coding.system is 0..1 with no invariant: the official R4 examples send codes alone
    // (Observation-example-genetics-2), and a base-R4-valid resource must not be refused.
    let mut value = observation_json();
    value["code"] = json!({"coding": [{"code": "LA6668-3", "display": "Pathogenic"}]});
    let resource = round_trip(value);
    assert!(validate(&resource).is_empty(), "{:?}", validate(&resource));
    // A system that is not a URI is still an error.
    let mut value = observation_json();
    value["code"] = json!({"coding": [{"system": "not a uri", "code": "x"}]});
    let issues = validate(&Resource::from_json_value(value).unwrap());
    assert!(
        issues.iter().any(|i| i.path.ends_with("coding[0].system")),
        "{issues:?}"
    );
}

#[test]
fn strings_without_escapes_are_borrowed_from_the_text() {
    use std::borrow::Cow;
    let text = r#"{"resourceType":"Patient","id":"p1","gender":"female","name":[{"family":"山田","given":["太郎","A\"B"]}],"address":[{"line":["西新宿\n2丁目"]}]}"#;
    let Resource::Patient(patient) = Resource::from_json_str(text).unwrap() else {
        panic!("a Patient")
    };
    assert!(matches!(patient.id, Some(Cow::Borrowed("p1"))));
    assert!(matches!(patient.gender, Some(Cow::Borrowed("female"))));
    let name = &patient.name[0];
    assert!(matches!(name.family, Some(Cow::Borrowed("山田"))));
    assert!(matches!(name.given[0], Cow::Borrowed("太郎")));
    // An escape cannot be a slice of the text: that string is owned, with the escape decoded.
    assert!(matches!(&name.given[1], Cow::Owned(s) if s == "A\"B"));
    assert!(matches!(&patient.address[0].line[0], Cow::Owned(s) if s == "西新宿\n2丁目"));
    // Serialization writes the same JSON whichever way a string is held.
    let owned = Resource::Patient(patient.clone()).into_static();
    assert_eq!(owned, Resource::Patient(patient.clone()));
    let Resource::Patient(owned_patient) = &owned else {
        panic!("a Patient")
    };
    assert!(matches!(owned_patient.id, Some(Cow::Owned(_))));
    assert_eq!(
        owned.to_json_string(),
        Resource::Patient(patient).to_json_string()
    );
}

#[test]
fn type_errors_read_as_serde_reports_them_for_strings() {
    // The messages are those serde gives for `String` ("expected a string", "a sequence"),
    // with the value left out.
    let text = r#"{"resourceType":"Patient","gender":5}"#;
    let err = Resource::from_json_str(text).unwrap_err().to_string();
    assert_eq!(
        err,
        "Patient at gender: invalid type: integer, expected a string"
    );
    let text = r#"{"resourceType":"Patient","name":[{"given":"solo"}]}"#;
    let err = Resource::from_json_str(text).unwrap_err().to_string();
    assert_eq!(
        err,
        "Patient at name[0].given: invalid type: string, expected a sequence"
    );
}

#[test]
fn a_resource_built_from_a_value_owns_its_strings() {
    use std::borrow::Cow;
    let resource: Resource<'static> = Resource::from_json_value(patient_json()).unwrap();
    let Resource::Patient(patient) = resource else {
        panic!("a Patient")
    };
    assert!(matches!(patient.id, Some(Cow::Owned(_))));
}
