//! Canonical URLs of the JP Core / JP-CLINS profiles kiban writes in `meta.profile`.

/// JP Core Patient.
pub const JP_PATIENT: &str = "http://jpfhir.jp/fhir/core/StructureDefinition/JP_Patient";
/// JP Core Encounter.
pub const JP_ENCOUNTER: &str = "http://jpfhir.jp/fhir/core/StructureDefinition/JP_Encounter";
/// JP Core Condition.
pub const JP_CONDITION: &str = "http://jpfhir.jp/fhir/core/StructureDefinition/JP_Condition";
/// JP Core MedicationRequest.
pub const JP_MEDICATION_REQUEST: &str =
    "http://jpfhir.jp/fhir/core/StructureDefinition/JP_MedicationRequest";
/// JP Core MedicationDispense.
pub const JP_MEDICATION_DISPENSE: &str =
    "http://jpfhir.jp/fhir/core/StructureDefinition/JP_MedicationDispense";
/// JP Core laboratory-result Observation.
pub const JP_OBSERVATION_LAB_RESULT: &str =
    "http://jpfhir.jp/fhir/core/StructureDefinition/JP_Observation_LabResult";
/// JP Core AllergyIntolerance.
pub const JP_ALLERGY_INTOLERANCE: &str =
    "http://jpfhir.jp/fhir/core/StructureDefinition/JP_AllergyIntolerance";
/// JP Core Procedure.
pub const JP_PROCEDURE: &str = "http://jpfhir.jp/fhir/core/StructureDefinition/JP_Procedure";
/// JP Core Organization.
pub const JP_ORGANIZATION: &str = "http://jpfhir.jp/fhir/core/StructureDefinition/JP_Organization";
/// JP Core Practitioner.
pub const JP_PRACTITIONER: &str = "http://jpfhir.jp/fhir/core/StructureDefinition/JP_Practitioner";
/// JP-CLINS 診療情報提供書 (referral letter) Composition.
pub const JP_COMPOSITION_EREFERRAL: &str =
    "http://jpfhir.jp/fhir/eReferral/StructureDefinition/JP_Composition_eReferral";
/// JP-CLINS 退院時サマリー (discharge summary) Composition.
pub const JP_COMPOSITION_EDISCHARGE_SUMMARY: &str =
    "http://jpfhir.jp/fhir/eDischargeSummary/StructureDefinition/JP_Composition_eDischargeSummary";
/// JP 健康診断結果報告書 (health-checkup report) Composition.
pub const JP_COMPOSITION_ECHECKUP: &str =
    "http://jpfhir.jp/fhir/eCheckup/StructureDefinition/JP_Composition_eCheckupGeneral";
/// JP-CLINS 診療情報提供書 document Bundle.
pub const JP_BUNDLE_EREFERRAL: &str =
    "http://jpfhir.jp/fhir/eReferral/StructureDefinition/JP_Bundle_eReferral";
/// JP-CLINS 退院時サマリー document Bundle.
pub const JP_BUNDLE_EDISCHARGE_SUMMARY: &str =
    "http://jpfhir.jp/fhir/eDischargeSummary/StructureDefinition/JP_Bundle_eDischargeSummary";
/// JP 健康診断結果報告書 document Bundle.
pub const JP_BUNDLE_ECHECKUP: &str =
    "http://jpfhir.jp/fhir/eCheckup/StructureDefinition/JP_Bundle_eCheckupReport";
