//! Mapping validated FHIR resources to rows of kiban's tables.
//!
//! Each function returns the rows one resource yields (a Patient yields an identity row and,
//! when deceased, a death row) with an empty `patient_key`, filled in once the resource's
//! subject is resolved. Failures are reasons naming the FHIR path and rule, never a value.

use crate::identity;
use crate::markers::{self, InfectionResult};
use crate::text::xhtml_to_text;
use base64::Engine;
use chrono::{DateTime, NaiveDate, Utc};
use kiban_fhir::{
    AllergyIntolerance, CodeableConcept, Composition, CompositionSection, Condition,
    DocumentReference, Dosage, Encounter, FhirDateTime, IntoStatic, MedicationDispense,
    MedicationRequest, Observation, Patient, Procedure, Quantity, Reference, Resource, parse_date,
    parse_date_time, profiles,
};
use kiban_model::{
    AllergyCategory, AllergyRow, CodeSystem, ConditionRow, DeathRow, DocumentKind, DocumentRow,
    EncounterClass, EncounterRow, IdentityRow, InfectionRow, LabObservationRow,
    MedicationDispenseRow, MedicationRequestRow, ProcedureRow, RowCommon, Sex,
};
use std::borrow::Cow;
use std::collections::HashMap;

/// LOINC system URL.
const LOINC: &str = "http://loinc.org";
/// LOINC code of a referral note (診療情報提供書).
pub const LOINC_REFERRAL_NOTE: &str = "57133-1";
/// LOINC code of a discharge summary (退院時サマリー).
pub const LOINC_DISCHARGE_SUMMARY: &str = "18842-5";
/// LOINC code kiban reads as a health-checkup report (健康診断結果報告書): 53576-5
/// "Personal health monitoring report".
pub const LOINC_CHECKUP_REPORT: &str = "53576-5";

/// One row of any table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Row {
    Identity(IdentityRow),
    Encounter(EncounterRow),
    Condition(ConditionRow),
    MedicationRequest(MedicationRequestRow),
    MedicationDispense(MedicationDispenseRow),
    LabObservation(LabObservationRow),
    Allergy(AllergyRow),
    Infection(InfectionRow),
    Procedure(ProcedureRow),
    Document(DocumentRow),
    Death(DeathRow),
}

impl Row {
    /// The position of the row's table in [`crate::chunk`]'s per-table vectors (0..11, in
    /// the order of the variants).
    pub(crate) fn table_slot(&self) -> usize {
        match self {
            Row::Identity(_) => 0,
            Row::Encounter(_) => 1,
            Row::Condition(_) => 2,
            Row::MedicationRequest(_) => 3,
            Row::MedicationDispense(_) => 4,
            Row::LabObservation(_) => 5,
            Row::Allergy(_) => 6,
            Row::Infection(_) => 7,
            Row::Procedure(_) => 8,
            Row::Document(_) => 9,
            Row::Death(_) => 10,
        }
    }

    pub(crate) fn common_mut(&mut self) -> &mut RowCommon {
        match self {
            Row::Identity(r) => &mut r.common,
            Row::Encounter(r) => &mut r.common,
            Row::Condition(r) => &mut r.common,
            Row::MedicationRequest(r) => &mut r.common,
            Row::MedicationDispense(r) => &mut r.common,
            Row::LabObservation(r) => &mut r.common,
            Row::Allergy(r) => &mut r.common,
            Row::Infection(r) => &mut r.common,
            Row::Procedure(r) => &mut r.common,
            Row::Document(r) => &mut r.common,
            Row::Death(r) => &mut r.common,
        }
    }
}

/// Who a resource is about, as far as the resource alone tells.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SubjectNeed {
    /// Not about a patient (Organization, Practitioner).
    Nobody,
    /// The resource is the Patient itself.
    OwnPatient {
        /// The provider's patient id.
        provider_patient_id: String,
    },
    /// A clinical resource: its subject (or patient) reference, to resolve.
    Reference {
        /// FHIR path of the reference element, for reasons.
        path: &'static str,
        /// The reference.
        reference: Reference<'static>,
    },
}

/// What a resource maps to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Mapped {
    pub subject: SubjectNeed,
    pub rows: Vec<Row>,
}

/// What mapping needs besides the resource.
pub(crate) struct MapContext<'a> {
    pub provider_id: &'a str,
    pub intake_id: &'a str,
    /// `fullUrl` → source id of the entries of the same Bundle, to turn `urn:uuid:`
    /// references (e.g. a Condition's encounter) into source ids.
    pub source_ids: &'a HashMap<String, String>,
}

impl MapContext<'_> {
    fn common(&self, source_id: &str) -> RowCommon {
        RowCommon::new(self.provider_id, self.intake_id, "", source_id)
    }

    /// The source id a reference designates: the target entry's id when it is in the same
    /// Bundle, else the id part of the reference.
    fn referenced_source_id(&self, reference: Option<&Reference>) -> Option<String> {
        let literal = reference?.reference.as_deref()?;
        if let Some(id) = self.source_ids.get(literal) {
            return Some(id.clone());
        }
        kiban_fhir::parse_reference(literal).map(|t| t.id)
    }
}

/// Resource types accepted by the intake, and whether they need a patient.
pub(crate) fn is_supported(resource_type: &str) -> bool {
    matches!(
        resource_type,
        "Patient"
            | "Encounter"
            | "Condition"
            | "MedicationRequest"
            | "MedicationDispense"
            | "Observation"
            | "AllergyIntolerance"
            | "Procedure"
            | "Composition"
            | "DocumentReference"
            | "Organization"
            | "Practitioner"
    )
}

/// Maps one resource (already structurally valid) to rows.
pub(crate) fn map_resource(
    resource: &Resource,
    source_id: &str,
    ctx: &MapContext<'_>,
) -> Result<Mapped, String> {
    let common = ctx.common(source_id);
    match resource {
        Resource::Patient(p) => map_patient(p, common),
        Resource::Encounter(r) => with_subject(
            "Encounter.subject",
            r.subject.as_ref(),
            vec![Row::Encounter(map_encounter(r, common)?)],
        ),
        Resource::Condition(r) => with_subject(
            "Condition.subject",
            r.subject.as_ref(),
            vec![Row::Condition(map_condition(r, common, ctx)?)],
        ),
        Resource::MedicationRequest(r) => with_subject(
            "MedicationRequest.subject",
            r.subject.as_ref(),
            vec![Row::MedicationRequest(map_medication_request(r, common)?)],
        ),
        Resource::MedicationDispense(r) => with_subject(
            "MedicationDispense.subject",
            r.subject.as_ref(),
            vec![Row::MedicationDispense(map_medication_dispense(r, common)?)],
        ),
        Resource::Observation(r) => with_subject(
            "Observation.subject",
            r.subject.as_ref(),
            vec![map_observation(r, common)?],
        ),
        Resource::AllergyIntolerance(r) => with_subject(
            "AllergyIntolerance.patient",
            r.patient.as_ref(),
            vec![Row::Allergy(map_allergy(r, common)?)],
        ),
        Resource::Procedure(r) => with_subject(
            "Procedure.subject",
            r.subject.as_ref(),
            vec![Row::Procedure(map_procedure(r, common)?)],
        ),
        Resource::Composition(r) => with_subject(
            "Composition.subject",
            r.subject.as_ref(),
            vec![Row::Document(map_composition(r, common)?)],
        ),
        Resource::DocumentReference(r) => with_subject(
            "DocumentReference.subject",
            r.subject.as_ref(),
            vec![Row::Document(map_document_reference(r, common)?)],
        ),
        Resource::Organization(_) | Resource::Practitioner(_) => Ok(Mapped {
            subject: SubjectNeed::Nobody,
            rows: Vec::new(),
        }),
        other => Err(format!(
            "{}: resource type not supported for intake",
            other.resource_type()
        )),
    }
}

fn with_subject(
    path: &'static str,
    reference: Option<&Reference>,
    rows: Vec<Row>,
) -> Result<Mapped, String> {
    let reference = reference
        .ok_or_else(|| format!("{path}: required to link the resource to a patient (missing)"))?;
    Ok(Mapped {
        subject: SubjectNeed::Reference {
            path,
            reference: reference.clone().into_static(),
        },
        rows,
    })
}

// ----- dates -----

fn date_time_of(path: &str, value: Option<&Cow<'_, str>>) -> Result<Option<FhirDateTime>, String> {
    value
        .map(|v| parse_date_time(v).map_err(|e| format!("{path}: {e}")))
        .transpose()
}

/// A FHIR dateTime as a calendar date (in its own timezone).
fn date_of(path: &str, value: Option<&Cow<'_, str>>) -> Result<Option<NaiveDate>, String> {
    Ok(date_time_of(path, value)?.map(FhirDateTime::date))
}

/// A FHIR dateTime as an instant; a date without a time is taken as midnight UTC of that
/// date, so the calendar date survives.
fn instant_of(path: &str, value: Option<&Cow<'_, str>>) -> Result<Option<DateTime<Utc>>, String> {
    Ok(date_time_of(path, value)?.map(|t| match t {
        FhirDateTime::DateTime(dt) => dt.with_timezone(&Utc),
        FhirDateTime::Date(d) => d.earliest().and_time(chrono::NaiveTime::MIN).and_utc(),
    }))
}

// ----- codes -----

/// The concept's text, else the display of its first coding that has one.
fn concept_name(concept: Option<&CodeableConcept>) -> Option<String> {
    let concept = concept?;
    concept
        .text
        .as_deref()
        .or_else(|| concept.coding.iter().find_map(|c| c.display.as_deref()))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

fn code_in(concept: Option<&CodeableConcept>, system: CodeSystem) -> Option<String> {
    concept?.code_in(system).map(str::to_owned)
}

/// The first coding with a code as (code, system), the system canonicalized when known.
fn first_code(concept: Option<&CodeableConcept>) -> Option<(String, Option<String>)> {
    concept?.coding.iter().find_map(|c| {
        let code = c.code.as_deref()?.to_owned();
        let system = c
            .code_system()
            .map(|s| s.url().to_owned())
            .or_else(|| c.system.as_deref().map(str::to_owned));
        Some((code, system))
    })
}

fn first_coding_code(concept: Option<&CodeableConcept>) -> Option<String> {
    concept?
        .coding
        .iter()
        .find_map(|c| c.code.as_deref().map(str::to_owned))
}

// ----- Patient -----

fn map_patient(p: &Patient, common: RowCommon) -> Result<Mapped, String> {
    let provider_patient_id = identity::provider_patient_id(p).ok_or_else(|| {
        "Patient.identifier: no provider patient id (identifier or id) to key the patient"
            .to_owned()
    })?;
    let (name_kanji, name_kana) = identity::kanji_and_kana(p);
    let birth_date = p
        .birth_date
        .as_deref()
        .map(|d| parse_date(d).map_err(|e| format!("Patient.birthDate: {e}")))
        .transpose()?
        .and_then(|d| d.full());
    let sex = p
        .gender
        .as_deref()
        .and_then(Sex::from_code)
        .unwrap_or(Sex::Unknown);
    let (postal_code, address) = identity::postal_code_and_address(p);
    let card = p
        .insurance_member_id()
        .map(identity::insurance_card)
        .unwrap_or_default();
    let mut rows = vec![Row::Identity(IdentityRow {
        common: common.clone(),
        provider_patient_id: provider_patient_id.clone(),
        name_kanji,
        name_kana,
        birth_date,
        sex: sex.code().to_owned(),
        postal_code,
        address,
        phone: identity::phone(p),
        insurer_number: card.insurer_number,
        insured_symbol: card.symbol,
        insured_number: card.number,
        insured_branch: card.branch,
    })];
    let death_date = date_of("Patient.deceasedDateTime", p.deceased_date_time.as_ref())?;
    if death_date.is_some() || p.deceased_boolean == Some(true) {
        rows.push(Row::Death(DeathRow {
            common,
            death_date,
            cause_icd10: None,
        }));
    }
    Ok(Mapped {
        subject: SubjectNeed::OwnPatient {
            provider_patient_id,
        },
        rows,
    })
}

// ----- Encounter -----

/// Encounter classes by v3 ActCode; `None` for codes kiban does not file.
fn encounter_class(act_code: &str) -> Option<EncounterClass> {
    match act_code {
        "AMB" | "VR" => Some(EncounterClass::Outpatient),
        "IMP" | "ACUTE" | "NONAC" | "SS" | "OBSENC" => Some(EncounterClass::Inpatient),
        "EMER" => Some(EncounterClass::Emergency),
        "HH" => Some(EncounterClass::Home),
        _ => None,
    }
}

/// Whether an encounter is a health checkup: a type or service type coded or named as one
/// (`checkup`, 健診, 健康診断, 健康診査, 検診).
fn is_checkup(r: &Encounter) -> bool {
    let concepts = r.type_.iter().chain(r.service_type.iter());
    concepts.into_iter().any(|c| {
        let words = [c.text.as_deref()]
            .into_iter()
            .chain(c.coding.iter().map(|x| x.display.as_deref()))
            .chain(c.coding.iter().map(|x| x.code.as_deref()))
            .flatten();
        words.into_iter().any(|w| {
            let lower = w.to_ascii_lowercase();
            lower.contains("checkup")
                || w.contains("健診")
                || w.contains("健康診断")
                || w.contains("健康診査")
                || w.contains("検診")
        })
    })
}

fn map_encounter(r: &Encounter, common: RowCommon) -> Result<EncounterRow, String> {
    let act_code = r
        .class_
        .as_ref()
        .and_then(|c| c.code.as_deref())
        .ok_or_else(|| "Encounter.class: required element is missing".to_owned())?;
    let class = if is_checkup(r) {
        EncounterClass::Checkup
    } else {
        encounter_class(act_code).ok_or_else(|| {
            "Encounter.class: code not one kiban files (AMB, VR, IMP, ACUTE, NONAC, SS, OBSENC, EMER, HH)"
                .to_owned()
        })?
    };
    let period = r.period.as_ref();
    let department = r.service_type.as_ref();
    Ok(EncounterRow {
        common,
        class: class.code().to_owned(),
        status: r.status.as_deref().unwrap_or("unknown").to_owned(),
        start: instant_of(
            "Encounter.period.start",
            period.and_then(|p| p.start.as_ref()),
        )?,
        end: instant_of("Encounter.period.end", period.and_then(|p| p.end.as_ref()))?,
        department_code: code_in(department, CodeSystem::Department)
            .or_else(|| first_coding_code(department)),
        department_name: concept_name(department),
    })
}

// ----- Condition -----

fn map_condition(
    r: &Condition,
    common: RowCommon,
    ctx: &MapContext<'_>,
) -> Result<ConditionRow, String> {
    let code = r.code.as_ref();
    let onset = match r.onset_date_time.as_ref() {
        Some(v) => date_of("Condition.onsetDateTime", Some(v))?,
        None => date_of(
            "Condition.onsetPeriod.start",
            r.onset_period.as_ref().and_then(|p| p.start.as_ref()),
        )?,
    };
    Ok(ConditionRow {
        common,
        icd10: code_in(code, CodeSystem::Icd10),
        medis_code: code_in(code, CodeSystem::MedisDisease),
        name: concept_name(code),
        suspected: r.is_suspected(),
        clinical_status: first_coding_code(r.clinical_status.as_ref()),
        onset_date: onset,
        abatement_date: date_of(
            "Condition.abatementDateTime",
            r.abatement_date_time.as_ref(),
        )?,
        recorded_date: date_of("Condition.recordedDate", r.recorded_date.as_ref())?,
        encounter_id: ctx.referenced_source_id(r.encounter.as_ref()),
    })
}

// ----- medications -----

/// Dose, unit, frequency and route of the first dosage instruction.
struct DosageParts {
    dose: Option<f64>,
    dose_unit: Option<String>,
    frequency: Option<String>,
    route: Option<String>,
}

fn quantity_unit(q: &Quantity) -> Option<String> {
    q.unit.as_deref().or(q.code.as_deref()).map(str::to_owned)
}

fn dosage_parts(dosages: &[Dosage]) -> DosageParts {
    let Some(d) = dosages.first() else {
        return DosageParts {
            dose: None,
            dose_unit: None,
            frequency: None,
            route: None,
        };
    };
    let dose = d
        .dose_and_rate
        .iter()
        .find_map(|r| r.dose_quantity.as_ref());
    let timing_code = d.timing.as_ref().and_then(|t| t.code.as_ref());
    let frequency = code_in(timing_code, CodeSystem::JamiDosage)
        .or_else(|| first_coding_code(timing_code))
        .or_else(|| concept_name(timing_code))
        .or_else(|| d.text.as_deref().map(str::to_owned));
    DosageParts {
        dose: dose.and_then(|q| q.value),
        dose_unit: dose.and_then(quantity_unit),
        frequency,
        route: concept_name(d.route.as_ref()).or_else(|| first_coding_code(d.route.as_ref())),
    }
}

/// Whole days of a Duration quantity (days, or weeks converted).
fn days_of(q: Option<&Quantity>) -> Option<i32> {
    let q = q?;
    let value = q.value?;
    let factor = match q.code.as_deref().or(q.unit.as_deref()) {
        Some("wk") | Some("週") => 7.0,
        _ => 1.0,
    };
    let days = (value * factor).round();
    (days.is_finite() && days >= 0.0 && days <= f64::from(i32::MAX)).then_some(days as i32)
}

fn map_medication_request(
    r: &MedicationRequest,
    common: RowCommon,
) -> Result<MedicationRequestRow, String> {
    let medication = r.medication_codeable_concept.as_ref();
    let dosage = dosage_parts(&r.dosage_instruction);
    Ok(MedicationRequestRow {
        common,
        yj_code: code_in(medication, CodeSystem::Yj),
        hot_code: code_in(medication, CodeSystem::Hot9),
        name: concept_name(medication).or_else(|| {
            r.medication_reference
                .as_ref()
                .and_then(|m| m.display.as_deref().map(str::to_owned))
        }),
        dose: dosage.dose,
        dose_unit: dosage.dose_unit,
        frequency: dosage.frequency,
        route: dosage.route,
        days: days_of(
            r.dispense_request
                .as_ref()
                .and_then(|d| d.expected_supply_duration.as_ref()),
        ),
        date: date_of("MedicationRequest.authoredOn", r.authored_on.as_ref())?,
        status: r.status.as_deref().map(str::to_owned),
    })
}

fn map_medication_dispense(
    r: &MedicationDispense,
    common: RowCommon,
) -> Result<MedicationDispenseRow, String> {
    let medication = r.medication_codeable_concept.as_ref();
    let dosage = dosage_parts(&r.dosage_instruction);
    let date = match r.when_handed_over.as_ref() {
        Some(v) => date_of("MedicationDispense.whenHandedOver", Some(v))?,
        None => date_of("MedicationDispense.whenPrepared", r.when_prepared.as_ref())?,
    };
    Ok(MedicationDispenseRow {
        common,
        yj_code: code_in(medication, CodeSystem::Yj),
        hot_code: code_in(medication, CodeSystem::Hot9),
        name: concept_name(medication).or_else(|| {
            r.medication_reference
                .as_ref()
                .and_then(|m| m.display.as_deref().map(str::to_owned))
        }),
        dose: dosage.dose,
        dose_unit: dosage.dose_unit,
        frequency: dosage.frequency,
        route: dosage.route,
        days: days_of(r.days_supply.as_ref()),
        date,
        status: r.status.as_deref().map(str::to_owned),
    })
}

// ----- Observation -----

fn observation_effective(r: &Observation) -> Result<Option<DateTime<Utc>>, String> {
    if let Some(v) = r.effective_date_time.as_ref() {
        return instant_of("Observation.effectiveDateTime", Some(v));
    }
    if let Some(start) = r.effective_period.as_ref().and_then(|p| p.start.as_ref()) {
        return instant_of("Observation.effectivePeriod.start", Some(start));
    }
    instant_of("Observation.issued", r.issued.as_ref())
}

/// A non-numeric result as text.
fn observation_value_text(r: &Observation) -> Option<String> {
    if let Some(s) = r.value_string.as_deref() {
        return Some(s.to_owned());
    }
    if let Some(c) = r.value_codeable_concept.as_ref() {
        return concept_name(Some(c)).or_else(|| first_coding_code(Some(c)));
    }
    if let Some(b) = r.value_boolean {
        return Some(b.to_string());
    }
    r.value_range.as_ref().map(|range| {
        let bound = |q: Option<&Quantity>| {
            q.and_then(|q| q.value)
                .map(|v| v.to_string())
                .unwrap_or_default()
        };
        format!(
            "{}-{}",
            bound(range.low.as_ref()),
            bound(range.high.as_ref())
        )
    })
}

fn map_observation(r: &Observation, common: RowCommon) -> Result<Row, String> {
    let code = r.code.as_ref();
    let jlac10 = code_in(code, CodeSystem::Jlac10);
    let effective = observation_effective(r)?;
    let interpretation = r
        .interpretation
        .first()
        .and_then(|c| first_coding_code(Some(c)));
    if let Some(marker) = jlac10.as_deref().and_then(markers::infection_marker) {
        let result = markers::infection_result(
            interpretation.as_deref(),
            r.value_codeable_concept.as_ref(),
            observation_value_text(r).as_deref(),
        );
        let result = match result {
            InfectionResult::Positive => Some("positive".to_owned()),
            InfectionResult::Negative => Some("negative".to_owned()),
            InfectionResult::AsWritten(text) => Some(text),
            InfectionResult::Unknown => r.value_quantity.as_ref().and_then(|q| {
                q.value.map(|v| match quantity_unit(q) {
                    Some(unit) => format!("{v} {unit}"),
                    None => v.to_string(),
                })
            }),
        };
        return Ok(Row::Infection(InfectionRow {
            common,
            code: jlac10.clone(),
            code_system: Some(CodeSystem::Jlac10.url().to_owned()),
            name: concept_name(code).or_else(|| Some(marker.name_ja.to_owned())),
            result,
            effective,
        }));
    }
    let range = r.reference_range.first();
    let value = r
        .value_quantity
        .as_ref()
        .and_then(|q| q.value)
        .or(r.value_integer.map(|i| i as f64));
    Ok(Row::LabObservation(LabObservationRow {
        common,
        jlac10,
        name: concept_name(code),
        value,
        value_text: if value.is_some() {
            None
        } else {
            observation_value_text(r)
        },
        unit: r.value_quantity.as_ref().and_then(quantity_unit),
        reference_low: range.and_then(|g| g.low.as_ref()).and_then(|q| q.value),
        reference_high: range.and_then(|g| g.high.as_ref()).and_then(|q| q.value),
        abnormal_flag: interpretation,
        effective,
        status: r.status.as_deref().map(str::to_owned),
    }))
}

// ----- AllergyIntolerance, Procedure -----

fn map_allergy(r: &AllergyIntolerance, common: RowCommon) -> Result<AllergyRow, String> {
    let code = r.code.as_ref();
    let drug_coded = code.is_some_and(|c| {
        c.coding_in(CodeSystem::Yj).is_some() || c.coding_in(CodeSystem::Hot9).is_some()
    });
    let category = r
        .category
        .iter()
        .find_map(|c| AllergyCategory::from_code(c))
        .or(drug_coded.then_some(AllergyCategory::Medication))
        .ok_or_else(|| {
            "AllergyIntolerance.category: required by kiban to file the allergy (missing, and the substance is not drug-coded)"
                .to_owned()
        })?;
    let (code_value, code_system) = first_code(code).unzip();
    Ok(AllergyRow {
        common,
        category: category.code().to_owned(),
        code: code_value,
        code_system: code_system.flatten(),
        name: concept_name(code),
        criticality: r.criticality.as_deref().map(str::to_owned),
        clinical_status: first_coding_code(r.clinical_status.as_ref()),
        recorded_date: date_of("AllergyIntolerance.recordedDate", r.recorded_date.as_ref())?,
    })
}

fn map_procedure(r: &Procedure, common: RowCommon) -> Result<ProcedureRow, String> {
    let code = r.code.as_ref();
    let (code_value, code_system) =
        match code.and_then(|c| c.coding_in(CodeSystem::ProcedureReceipt)) {
            Some(c) => (
                c.code.as_deref().map(str::to_owned),
                Some(CodeSystem::ProcedureReceipt.url().to_owned()),
            ),
            None => {
                let (v, s) = first_code(code).unzip();
                (v, s.flatten())
            }
        };
    let performed = match r.performed_date_time.as_ref() {
        Some(v) => instant_of("Procedure.performedDateTime", Some(v))?,
        None => instant_of(
            "Procedure.performedPeriod.start",
            r.performed_period.as_ref().and_then(|p| p.start.as_ref()),
        )?,
    };
    Ok(ProcedureRow {
        common,
        code: code_value,
        code_system,
        name: concept_name(code),
        performed,
        status: r.status.as_deref().map(str::to_owned),
    })
}

// ----- documents -----

/// The kind of a document from its type code (LOINC) or, failing that, its profile.
/// JP-CLINS's document type code system (LOINC codes: 57133-1, 18842-5, 53576-5, ...).
const JP_CLINS_DOCUMENT_TYPE_CODES: &str = "http://jpfhir.jp/fhir/Common/CodeSystem/doc-typecodes";

fn document_kind(
    type_: Option<&CodeableConcept>,
    profiles_declared: &[Cow<'_, str>],
) -> DocumentKind {
    if let Some(t) = type_ {
        for coding in &t.coding {
            let code = coding.code.as_deref().unwrap_or("");
            // JP-CLINS codes document types with the same LOINC codes under its own system.
            let loinc = matches!(
                coding.system.as_deref(),
                Some(LOINC) | Some(JP_CLINS_DOCUMENT_TYPE_CODES)
            );
            if loinc && code == LOINC_REFERRAL_NOTE {
                return DocumentKind::ReferralLetter;
            }
            if loinc && code == LOINC_DISCHARGE_SUMMARY {
                return DocumentKind::DischargeSummary;
            }
            if loinc && code == LOINC_CHECKUP_REPORT {
                return DocumentKind::CheckupReport;
            }
        }
    }
    for profile in profiles_declared {
        match &**profile {
            profiles::JP_COMPOSITION_EREFERRAL => return DocumentKind::ReferralLetter,
            profiles::JP_COMPOSITION_EDISCHARGE_SUMMARY => return DocumentKind::DischargeSummary,
            profiles::JP_COMPOSITION_ECHECKUP => return DocumentKind::CheckupReport,
            _ => {}
        }
    }
    DocumentKind::Other
}

fn section_text(section: &CompositionSection, out: &mut Vec<String>) {
    let mut block = Vec::new();
    if let Some(title) = section
        .title
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        block.push(title.to_owned());
    }
    if let Some(div) = section.text.as_ref().and_then(|n| n.div.as_deref()) {
        let text = xhtml_to_text(div);
        if !text.is_empty() {
            block.push(text);
        }
    }
    if !block.is_empty() {
        out.push(block.join("\n"));
    }
    for nested in &section.section {
        section_text(nested, out);
    }
}

fn map_composition(r: &Composition, common: RowCommon) -> Result<DocumentRow, String> {
    let mut blocks = Vec::new();
    for section in &r.section {
        section_text(section, &mut blocks);
    }
    let declared = r.meta.as_ref().map(|m| m.profile.as_slice()).unwrap_or(&[]);
    Ok(DocumentRow {
        common,
        kind: document_kind(r.type_.as_ref(), declared).code().to_owned(),
        title: r.title.as_deref().map(str::to_owned),
        date: instant_of("Composition.date", r.date.as_ref())?,
        text: (!blocks.is_empty()).then(|| blocks.join("\n\n")),
    })
}

fn map_document_reference(r: &DocumentReference, common: RowCommon) -> Result<DocumentRow, String> {
    let mut text = None;
    for (i, content) in r.content.iter().enumerate() {
        let Some(attachment) = content.attachment.as_ref() else {
            continue;
        };
        let is_plain = attachment
            .content_type
            .as_deref()
            .is_some_and(|t| t.trim().to_ascii_lowercase().starts_with("text/plain"));
        let Some(data) = attachment.data.as_deref().filter(|_| is_plain) else {
            continue;
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|_| {
                format!("DocumentReference.content[{i}].attachment.data: not valid base64")
            })?;
        let decoded = String::from_utf8(bytes).map_err(|_| {
            format!(
                "DocumentReference.content[{i}].attachment.data: text/plain content is not UTF-8"
            )
        })?;
        text = Some(decoded);
        break;
    }
    let declared = r.meta.as_ref().map(|m| m.profile.as_slice()).unwrap_or(&[]);
    let title = r
        .description
        .as_deref()
        .or_else(|| {
            r.content
                .iter()
                .find_map(|c| c.attachment.as_ref().and_then(|a| a.title.as_deref()))
        })
        .map(str::to_owned);
    Ok(DocumentRow {
        common,
        kind: document_kind(r.type_.as_ref(), declared).code().to_owned(),
        title,
        date: instant_of("DocumentReference.date", r.date.as_ref())?,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(json: &str) -> Result<Mapped, String> {
        let resource = Resource::from_json_str(json).unwrap();
        let source_ids = HashMap::from([("urn:uuid:e1".to_owned(), "enc-9".to_owned())]);
        let ctx = MapContext {
            provider_id: "prov-001",
            intake_id: "intake-1",
            source_ids: &source_ids,
        };
        map_resource(&resource, "src-1", &ctx)
    }

    fn single_row(json: &str) -> Row {
        let mut mapped = map(json).unwrap();
        assert_eq!(mapped.rows.len(), 1);
        mapped.rows.remove(0)
    }

    #[test]
    fn checkup_encounters_are_recognized_by_service_type() {
        let row = single_row(
            r#"{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},
               "serviceType":{"text":"健康診査"},"subject":{"reference":"Patient/p"},
               "period":{"start":"2024-04-01"}}"#,
        );
        let Row::Encounter(e) = row else { panic!() };
        assert_eq!(e.class, "checkup");
        assert_eq!(e.start.unwrap().to_rfc3339(), "2024-04-01T00:00:00+00:00");
        let err = map(
            r#"{"resourceType":"Encounter","status":"finished","class":{"code":"XYZ"},
               "subject":{"reference":"Patient/p"}}"#,
        )
        .unwrap_err();
        assert!(err.starts_with("Encounter.class"), "{err}");
    }

    #[test]
    fn clinical_resources_need_a_subject() {
        let err = map(r#"{"resourceType":"Procedure","status":"completed"}"#).unwrap_err();
        assert!(err.starts_with("Procedure.subject"), "{err}");
        let mapped = map(r#"{"resourceType":"Organization","name":"x"}"#).unwrap();
        assert_eq!(mapped.subject, SubjectNeed::Nobody);
        assert!(mapped.rows.is_empty());
    }

    #[test]
    fn document_references_keep_their_plain_text() {
        let row = single_row(
            r#"{"resourceType":"DocumentReference","status":"current",
               "type":{"coding":[{"system":"http://loinc.org","code":"18842-5"}]},
               "subject":{"reference":"Patient/p"},"date":"2024-05-01T10:00:00+09:00",
               "content":[{"attachment":{"contentType":"application/pdf","data":"AAAA"}},
                          {"attachment":{"contentType":"text/plain; charset=utf-8","data":"6YCA6Zmi5pmC44K144Oe44Oq44O8"}}]}"#,
        );
        let Row::Document(d) = row else { panic!() };
        assert_eq!(d.kind, "discharge_summary");
        assert_eq!(d.text.as_deref(), Some("退院時サマリー"));
        assert_eq!(d.date.unwrap().to_rfc3339(), "2024-05-01T01:00:00+00:00");
    }

    #[test]
    fn conditions_medications_and_allergies() {
        let Row::Condition(c) = single_row(
            r#"{"resourceType":"Condition","subject":{"reference":"Patient/p"},
               "verificationStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-ver-status","code":"provisional"}]},
               "encounter":{"reference":"urn:uuid:e1"},"code":{"coding":[{"system":"urn:oid:1.2.392.200119.4.101.6","code":"ABCD","display":"病名"}]}}"#,
        ) else {
            panic!()
        };
        assert!(c.suspected);
        assert_eq!(c.medis_code.as_deref(), Some("ABCD"));
        assert_eq!(c.name.as_deref(), Some("病名"));
        assert_eq!(c.encounter_id.as_deref(), Some("enc-9"));
        let Row::MedicationDispense(d) = single_row(
            r#"{"resourceType":"MedicationDispense","status":"completed","subject":{"reference":"Patient/p"},
               "medicationCodeableConcept":{"coding":[{"system":"http://medis.or.jp/CodeSystem/master-HOT9","code":"123456789"}]},
               "daysSupply":{"value":2,"code":"wk"},"whenPrepared":"2024-01-02",
               "dosageInstruction":[{"text":"頓用","doseAndRate":[{"doseQuantity":{"value":0.5,"code":"{tbl}"}}]}]}"#,
        ) else {
            panic!()
        };
        assert_eq!(d.hot_code.as_deref(), Some("123456789"));
        assert_eq!(d.days, Some(14));
        assert_eq!(d.frequency.as_deref(), Some("頓用"));
        assert_eq!(d.dose_unit.as_deref(), Some("{tbl}"));
        assert_eq!(d.date.unwrap().to_string(), "2024-01-02");
        let Row::Allergy(a) = single_row(
            r#"{"resourceType":"AllergyIntolerance","patient":{"reference":"Patient/p"},
               "code":{"coding":[{"system":"urn:oid:1.2.392.100495.20.1.73","code":"1149019F1560"}]}}"#,
        ) else {
            panic!()
        };
        assert_eq!(a.category, "medication");
        assert_eq!(a.code_system.as_deref(), Some(CodeSystem::Yj.url()));
        let err = map(
            r#"{"resourceType":"AllergyIntolerance","patient":{"reference":"Patient/p"},"code":{"text":"花粉"}}"#,
        )
        .unwrap_err();
        assert!(err.starts_with("AllergyIntolerance.category"), "{err}");
    }

    #[test]
    fn a_deceased_patient_yields_a_death_row() {
        let mapped = map(
            r#"{"resourceType":"Patient","id":"p1","deceasedBoolean":true,"gender":"male","birthDate":"1950-04"}"#,
        )
        .unwrap();
        assert_eq!(mapped.rows.len(), 2);
        let Row::Identity(i) = &mapped.rows[0] else {
            panic!()
        };
        assert_eq!(i.sex, "male");
        assert_eq!(i.birth_date, None, "a partial birth date is not invented");
        let Row::Death(d) = &mapped.rows[1] else {
            panic!()
        };
        assert_eq!(d.death_date, None);
    }
}

#[cfg(test)]
mod document_kind_tests {
    use super::*;

    fn type_coded(system: &str, code: &str) -> CodeableConcept<'static> {
        let value = serde_json::json!({"coding": [{"system": system, "code": code}]});
        serde::Deserialize::deserialize(value).unwrap()
    }

    #[test]
    fn jp_clins_document_type_codes_name_the_kind_like_loinc() {
        for system in [LOINC, JP_CLINS_DOCUMENT_TYPE_CODES] {
            let kind = |code| document_kind(Some(&type_coded(system, code)), &[]);
            assert_eq!(kind(LOINC_REFERRAL_NOTE), DocumentKind::ReferralLetter);
            assert_eq!(
                kind(LOINC_DISCHARGE_SUMMARY),
                DocumentKind::DischargeSummary
            );
            assert_eq!(kind(LOINC_CHECKUP_REPORT), DocumentKind::CheckupReport);
        }
        let other = type_coded("http://example.org/local-codes", LOINC_REFERRAL_NOTE);
        assert_eq!(document_kind(Some(&other), &[]), DocumentKind::Other);
    }
}
