//! FHIR R4 resources used by JP Core / JP-CLINS.
//!
//! The structs carry no `resourceType` field: the type is the Rust type, and
//! [`crate::Resource`] / [`crate::to_json_string`] write `resourceType` first.

use crate::datatypes::{
    Annotation, Attachment, CodeableConcept, Coding, ContactPoint, Dosage, Extension, HumanName,
    Identifier, Meta, NameRepresentation, Narrative, Period, Quantity, Range, Reference,
    ReferenceRange, fhir_struct,
};
use crate::resource::Resource;
use kiban_model::CodeSystem;
use std::borrow::Cow;

/// A FHIR resource type kiban models with its own struct.
pub trait FhirResource: serde::Serialize {
    /// The `resourceType` value.
    const RESOURCE_TYPE: &'static str;
}

/// Declares a resource struct: the common `DomainResource` elements, then the given ones.
macro_rules! fhir_resource {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $field:ident : $ty:ty,
            )*
        }
    ) => {
        fhir_struct! {
            @define true;
            $(#[$meta])*
            pub struct $name {
                /// Logical id of this resource.
                id: Option<Cow<'a, str>>,
                /// Metadata about the resource (profiles, last update).
                meta: Option<Meta<'a>>,
                /// Language of the resource content.
                language: Option<Cow<'a, str>>,
                /// Text summary of the resource, for human interpretation.
                text: Option<Narrative<'a>>,
                /// Additional content defined by implementations (e.g. JP Core extensions).
                extension: Vec<Extension<'a>>,
                $(
                    $(#[$fmeta])*
                    $field: $ty,
                )*
            }
        }

        impl FhirResource for $name<'_> {
            const RESOURCE_TYPE: &'static str = stringify!($name);
        }

        impl<'a> From<$name<'a>> for Resource<'a> {
            fn from(resource: $name<'a>) -> Resource<'a> {
                Resource::$name(Box::new(resource))
            }
        }
    };
}

fhir_resource! {
    /// Demographics of a person receiving care (`Patient`, JP Core `JP_Patient`).
    pub struct Patient {
        /// Identifiers: provider patient id, insurance member id, ...
        identifier: Vec<Identifier<'a>>,
        /// Whether this patient's record is in active use.
        active: Option<bool>,
        /// Names: in JP Core one kanji (IDE) and one kana (SYL) name.
        name: Vec<HumanName<'a>>,
        /// Contact details (phone, email).
        telecom: Vec<ContactPoint<'a>>,
        /// male | female | other | unknown.
        gender: Option<Cow<'a, str>>,
        /// Date of birth (FHIR date).
        birth_date: Option<Cow<'a, str>>,
        /// Indicates if the individual is deceased (`deceasedBoolean`).
        deceased_boolean: Option<bool>,
        /// Date and time of death (`deceasedDateTime`).
        deceased_date_time: Option<Cow<'a, str>>,
        /// Addresses.
        address: Vec<crate::datatypes::Address<'a>>,
        /// Marital (civil) status.
        marital_status: Option<CodeableConcept<'a>>,
        /// Whether the patient is part of a multiple birth (`multipleBirthBoolean`).
        multiple_birth_boolean: Option<bool>,
        /// Birth order in a multiple birth (`multipleBirthInteger`).
        multiple_birth_integer: Option<i64>,
        /// Patient's nominated primary care providers.
        general_practitioner: Vec<Reference<'a>>,
        /// Organization that is the custodian of the patient record.
        managing_organization: Option<Reference<'a>>,
    }
}

impl<'a> Patient<'a> {
    /// The first name with this JP Core representation (kanji = IDE, kana = SYL).
    pub fn name_in(&self, representation: NameRepresentation) -> Option<&HumanName<'a>> {
        self.name
            .iter()
            .find(|n| n.representation() == Some(representation))
    }

    /// The value of the first identifier with this system URI.
    pub fn identifier_value(&self, system: &str) -> Option<&str> {
        self.identifier
            .iter()
            .find(|i| i.system.as_deref() == Some(system))
            .and_then(|i| i.value.as_deref())
    }

    /// The JP-CLINS insurance member id (`保険者番号:記号:番号:枝番`), as written.
    pub fn insurance_member_id(&self) -> Option<&str> {
        self.identifier_value(CodeSystem::InsuranceMemberId.url())
    }
}

fhir_struct! {
    /// `Encounter.participant`.
    pub struct EncounterParticipant {
        /// Role of participant in encounter.
        #[serde(rename = "type")]
        type_: Vec<CodeableConcept<'a>>,
        /// Period of time during the encounter that the participant participated.
        period: Option<Period<'a>>,
        /// Persons involved in the encounter other than the patient.
        individual: Option<Reference<'a>>,
    }
}

fhir_struct! {
    /// `Encounter.diagnosis`.
    pub struct EncounterDiagnosis {
        /// The diagnosis or procedure relevant to the encounter.
        condition: Option<Reference<'a>>,
        /// Role that this diagnosis has within the encounter.
        #[serde(rename = "use")]
        use_: Option<CodeableConcept<'a>>,
        /// Ranking of the diagnosis (for each role type).
        rank: Option<u32>,
    }
}

fhir_struct! {
    /// `Encounter.hospitalization`.
    pub struct EncounterHospitalization {
        /// From where patient was admitted.
        admit_source: Option<CodeableConcept<'a>>,
        /// Category or kind of location after discharge.
        discharge_disposition: Option<CodeableConcept<'a>>,
    }
}

fhir_resource! {
    /// An interaction with a patient (`Encounter`, JP Core `JP_Encounter`).
    pub struct Encounter {
        /// Identifiers by which this encounter is known.
        identifier: Vec<Identifier<'a>>,
        /// planned | arrived | triaged | in-progress | onleave | finished | cancelled | entered-in-error | unknown.
        status: Option<Cow<'a, str>>,
        /// Classification of the encounter (v3 ActCode: AMB, IMP, EMER, HH).
        #[serde(rename = "class")]
        class_: Option<Coding<'a>>,
        /// Specific type of encounter.
        #[serde(rename = "type")]
        type_: Vec<CodeableConcept<'a>>,
        /// Specific type of service (e.g. department).
        service_type: Option<CodeableConcept<'a>>,
        /// Indicates the urgency of the encounter.
        priority: Option<CodeableConcept<'a>>,
        /// The patient present at the encounter.
        subject: Option<Reference<'a>>,
        /// List of participants involved in the encounter.
        participant: Vec<EncounterParticipant<'a>>,
        /// The start and end time of the encounter.
        period: Option<Period<'a>>,
        /// Quantity of time the encounter lasted (Duration).
        length: Option<Quantity<'a>>,
        /// Coded reason the encounter takes place.
        reason_code: Vec<CodeableConcept<'a>>,
        /// Reason the encounter takes place (reference).
        reason_reference: Vec<Reference<'a>>,
        /// The list of diagnosis relevant to this encounter.
        diagnosis: Vec<EncounterDiagnosis<'a>>,
        /// Details about the admission to a healthcare service.
        hospitalization: Option<EncounterHospitalization<'a>>,
        /// The organization responsible for this encounter.
        service_provider: Option<Reference<'a>>,
    }
}

/// URL of the JP Core extension carrying a MEDIS modifier placed after the disease name
/// (e.g. `8002` 「の疑い」).
pub const DISEASE_POSTFIX_MODIFIER_EXTENSION_URL: &str =
    "http://jpfhir.jp/fhir/core/Extension/StructureDefinition/JP_Condition_DiseasePostfixModifier";
/// URL of the JP Core extension carrying a MEDIS modifier placed before the disease name.
pub const DISEASE_PREFIX_MODIFIER_EXTENSION_URL: &str =
    "http://jpfhir.jp/fhir/core/Extension/StructureDefinition/JP_Condition_DiseasePrefixModifier";
/// MEDIS modifier exchange code of 「の疑い」 (suspected).
pub const MEDIS_SUSPECTED_MODIFIER: &str = "8002";
/// The FHIR condition verification-status code system.
pub const CONDITION_VERIFICATION_SYSTEM: &str =
    "http://terminology.hl7.org/CodeSystem/condition-ver-status";
/// The FHIR condition clinical-status code system.
pub const CONDITION_CLINICAL_SYSTEM: &str =
    "http://terminology.hl7.org/CodeSystem/condition-clinical";

fhir_resource! {
    /// A clinical condition, problem or diagnosis (`Condition`, JP Core `JP_Condition`).
    pub struct Condition {
        /// External ids for this condition.
        identifier: Vec<Identifier<'a>>,
        /// active | recurrence | relapse | inactive | remission | resolved.
        clinical_status: Option<CodeableConcept<'a>>,
        /// unconfirmed | provisional | differential | confirmed | refuted | entered-in-error.
        verification_status: Option<CodeableConcept<'a>>,
        /// problem-list-item | encounter-diagnosis.
        category: Vec<CodeableConcept<'a>>,
        /// Subjective severity of condition.
        severity: Option<CodeableConcept<'a>>,
        /// Identification of the condition (MEDIS exchange code, ICD-10, text).
        code: Option<CodeableConcept<'a>>,
        /// Anatomical location, if relevant.
        body_site: Vec<CodeableConcept<'a>>,
        /// Who has the condition (required).
        subject: Option<Reference<'a>>,
        /// Encounter created as part of.
        encounter: Option<Reference<'a>>,
        /// Estimated or actual date of onset (`onsetDateTime`).
        onset_date_time: Option<Cow<'a, str>>,
        /// Onset as an age (`onsetAge`).
        onset_age: Option<Quantity<'a>>,
        /// Onset as a period (`onsetPeriod`).
        onset_period: Option<Period<'a>>,
        /// Onset as text (`onsetString`).
        onset_string: Option<Cow<'a, str>>,
        /// When in resolution/remission (`abatementDateTime`).
        abatement_date_time: Option<Cow<'a, str>>,
        /// Abatement as text (`abatementString`).
        abatement_string: Option<Cow<'a, str>>,
        /// Date record was first recorded.
        recorded_date: Option<Cow<'a, str>>,
        /// Who recorded the condition.
        recorder: Option<Reference<'a>>,
        /// Person who asserts this condition.
        asserter: Option<Reference<'a>>,
        /// Additional information about the condition.
        note: Vec<Annotation<'a>>,
    }
}

impl<'a> Condition<'a> {
    /// Whether the condition is only suspected: verification status `unconfirmed`/`provisional`
    /// or a MEDIS 「の疑い」 modifier on the condition or its code.
    pub fn is_suspected(&self) -> bool {
        let by_status = self.verification_status.as_ref().is_some_and(|v| {
            v.has_code(CONDITION_VERIFICATION_SYSTEM, "unconfirmed")
                || v.has_code(CONDITION_VERIFICATION_SYSTEM, "provisional")
        });
        by_status || self.extension.iter().any(is_suspected_modifier)
    }

    /// MEDIS modifier codes attached by the JP Core prefix/postfix modifier extensions.
    pub fn modifier_codes(&self) -> Vec<&str> {
        self.extension
            .iter()
            .filter(|e| {
                matches!(
                    e.url.as_deref(),
                    Some(DISEASE_POSTFIX_MODIFIER_EXTENSION_URL)
                        | Some(DISEASE_PREFIX_MODIFIER_EXTENSION_URL)
                )
            })
            .filter_map(|e| e.value_codeable_concept.as_ref())
            .filter_map(|c| c.code_in(CodeSystem::MedisModifier))
            .collect()
    }
}

fn is_suspected_modifier(extension: &Extension) -> bool {
    let is_modifier = matches!(
        extension.url.as_deref(),
        Some(DISEASE_POSTFIX_MODIFIER_EXTENSION_URL) | Some(DISEASE_PREFIX_MODIFIER_EXTENSION_URL)
    );
    is_modifier
        && extension
            .value_codeable_concept
            .as_ref()
            .and_then(|c| c.code_in(CodeSystem::MedisModifier))
            == Some(MEDIS_SUSPECTED_MODIFIER)
}

fhir_struct! {
    /// `MedicationRequest.dispenseRequest`.
    pub struct DispenseRequest {
        /// Time period supply is authorized for.
        validity_period: Option<Period<'a>>,
        /// Number of refills authorized.
        number_of_repeats_allowed: Option<u32>,
        /// Amount of medication to supply per dispense.
        quantity: Option<Quantity<'a>>,
        /// Number of days supply per dispense (Duration).
        expected_supply_duration: Option<Quantity<'a>>,
    }
}

fhir_resource! {
    /// A prescription (`MedicationRequest`, JP Core `JP_MedicationRequest`).
    pub struct MedicationRequest {
        /// External ids for this request.
        identifier: Vec<Identifier<'a>>,
        /// active | on-hold | cancelled | completed | entered-in-error | stopped | draft | unknown.
        status: Option<Cow<'a, str>>,
        /// proposal | plan | order | original-order | reflex-order | filler-order | instance-order | option.
        intent: Option<Cow<'a, str>>,
        /// Type of medication usage (inpatient, outpatient, ...).
        category: Vec<CodeableConcept<'a>>,
        /// routine | urgent | asap | stat.
        priority: Option<Cow<'a, str>>,
        /// Medication to be taken, coded (`medicationCodeableConcept`: YJ, HOT9, ...).
        medication_codeable_concept: Option<CodeableConcept<'a>>,
        /// Medication to be taken, by reference (`medicationReference`).
        medication_reference: Option<Reference<'a>>,
        /// Who the medication request is for (required).
        subject: Option<Reference<'a>>,
        /// Encounter created as part of.
        encounter: Option<Reference<'a>>,
        /// When request was initially authored.
        authored_on: Option<Cow<'a, str>>,
        /// Who/What requested the request.
        requester: Option<Reference<'a>>,
        /// Reason or indication for ordering the medication.
        reason_code: Vec<CodeableConcept<'a>>,
        /// Condition or observation that supports why the prescription is being written.
        reason_reference: Vec<Reference<'a>>,
        /// Information about the prescription.
        note: Vec<Annotation<'a>>,
        /// How the medication should be taken.
        dosage_instruction: Vec<Dosage<'a>>,
        /// Medication supply authorization.
        dispense_request: Option<DispenseRequest<'a>>,
    }
}

fhir_resource! {
    /// Dispensing of a medication (`MedicationDispense`, JP Core `JP_MedicationDispense`).
    pub struct MedicationDispense {
        /// External identifier.
        identifier: Vec<Identifier<'a>>,
        /// preparation | in-progress | cancelled | on-hold | completed | entered-in-error | stopped | declined | unknown.
        status: Option<Cow<'a, str>>,
        /// Type of medication dispense.
        category: Option<CodeableConcept<'a>>,
        /// What medication was supplied (`medicationCodeableConcept`).
        medication_codeable_concept: Option<CodeableConcept<'a>>,
        /// What medication was supplied (`medicationReference`).
        medication_reference: Option<Reference<'a>>,
        /// Who the dispense is for.
        subject: Option<Reference<'a>>,
        /// Encounter / episode associated with event.
        context: Option<Reference<'a>>,
        /// Medication order that authorizes the dispense.
        authorizing_prescription: Vec<Reference<'a>>,
        /// Trial fill, partial fill, emergency fill, etc.
        #[serde(rename = "type")]
        type_: Option<CodeableConcept<'a>>,
        /// Amount dispensed.
        quantity: Option<Quantity<'a>>,
        /// Amount of medication expressed as a timing amount.
        days_supply: Option<Quantity<'a>>,
        /// When product was packaged and reviewed.
        when_prepared: Option<Cow<'a, str>>,
        /// When product was given out.
        when_handed_over: Option<Cow<'a, str>>,
        /// Information about the dispense.
        note: Vec<Annotation<'a>>,
        /// How the medication is to be used by the patient.
        dosage_instruction: Vec<Dosage<'a>>,
    }
}

fhir_struct! {
    /// `Observation.component`.
    pub struct ObservationComponent {
        /// Type of component observation (code / type).
        code: Option<CodeableConcept<'a>>,
        /// Actual component result (`valueQuantity`).
        value_quantity: Option<Quantity<'a>>,
        /// Actual component result (`valueCodeableConcept`).
        value_codeable_concept: Option<CodeableConcept<'a>>,
        /// Actual component result (`valueString`).
        value_string: Option<Cow<'a, str>>,
        /// Why the component result is missing.
        data_absent_reason: Option<CodeableConcept<'a>>,
        /// High, low, normal, etc.
        interpretation: Vec<CodeableConcept<'a>>,
        /// Provides guide for interpretation of component result.
        reference_range: Vec<ReferenceRange<'a>>,
    }
}

/// The FHIR observation-category code system.
pub const OBSERVATION_CATEGORY_SYSTEM: &str =
    "http://terminology.hl7.org/CodeSystem/observation-category";
/// The FHIR v3 ObservationInterpretation code system (H, L, N, POS, NEG, ...).
pub const OBSERVATION_INTERPRETATION_SYSTEM: &str =
    "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";

fhir_resource! {
    /// A measurement or assertion (`Observation`, JP Core `JP_Observation_LabResult`).
    pub struct Observation {
        /// Business identifier for observation.
        identifier: Vec<Identifier<'a>>,
        /// Fulfills plan, proposal or order.
        based_on: Vec<Reference<'a>>,
        /// registered | preliminary | final | amended | corrected | cancelled | entered-in-error | unknown.
        status: Option<Cow<'a, str>>,
        /// Classification of type of observation (laboratory, vital-signs, ...).
        category: Vec<CodeableConcept<'a>>,
        /// Type of observation (JLAC10, LOINC, ...) (required).
        code: Option<CodeableConcept<'a>>,
        /// Who and/or what the observation is about.
        subject: Option<Reference<'a>>,
        /// Healthcare event during which this observation is made.
        encounter: Option<Reference<'a>>,
        /// Clinically relevant time (`effectiveDateTime`).
        effective_date_time: Option<Cow<'a, str>>,
        /// Clinically relevant period (`effectivePeriod`).
        effective_period: Option<Period<'a>>,
        /// Date/Time this version was made available (instant).
        issued: Option<Cow<'a, str>>,
        /// Who is responsible for the observation.
        performer: Vec<Reference<'a>>,
        /// Actual result (`valueQuantity`).
        value_quantity: Option<Quantity<'a>>,
        /// Actual result (`valueCodeableConcept`).
        value_codeable_concept: Option<CodeableConcept<'a>>,
        /// Actual result (`valueString`).
        value_string: Option<Cow<'a, str>>,
        /// Actual result (`valueBoolean`).
        value_boolean: Option<bool>,
        /// Actual result (`valueInteger`).
        value_integer: Option<i64>,
        /// Actual result (`valueRange`).
        value_range: Option<Range<'a>>,
        /// Why the result is missing.
        data_absent_reason: Option<CodeableConcept<'a>>,
        /// High, low, normal, etc.
        interpretation: Vec<CodeableConcept<'a>>,
        /// Comments about the observation.
        note: Vec<Annotation<'a>>,
        /// Observed body part.
        body_site: Option<CodeableConcept<'a>>,
        /// How it was done.
        method: Option<CodeableConcept<'a>>,
        /// Specimen used for this observation.
        specimen: Option<Reference<'a>>,
        /// Provides guide for interpretation.
        reference_range: Vec<ReferenceRange<'a>>,
        /// Related resource that belongs to the observation group.
        has_member: Vec<Reference<'a>>,
        /// Component results.
        component: Vec<ObservationComponent<'a>>,
    }
}

impl<'a> Observation<'a> {
    /// JSON names of the `value[x]` elements present (modelled or kept in `extra`).
    pub fn value_elements(&self) -> Vec<String> {
        let modelled = [
            ("valueQuantity", self.value_quantity.is_some()),
            (
                "valueCodeableConcept",
                self.value_codeable_concept.is_some(),
            ),
            ("valueString", self.value_string.is_some()),
            ("valueBoolean", self.value_boolean.is_some()),
            ("valueInteger", self.value_integer.is_some()),
            ("valueRange", self.value_range.is_some()),
        ];
        let mut names: Vec<String> = modelled
            .iter()
            .filter(|(_, p)| *p)
            .map(|(n, _)| (*n).to_owned())
            .collect();
        names.extend(
            self.extra
                .keys()
                .filter(|k| k.starts_with("value") && k.len() > 5)
                .cloned(),
        );
        names
    }
}

fhir_struct! {
    /// `AllergyIntolerance.reaction`.
    pub struct AllergyReaction {
        /// Specific substance or pharmaceutical product considered to be responsible for event.
        substance: Option<CodeableConcept<'a>>,
        /// Clinical symptoms/signs associated with the event (required).
        manifestation: Vec<CodeableConcept<'a>>,
        /// Description of the event as a whole.
        description: Option<Cow<'a, str>>,
        /// Date(/time) when manifestations showed.
        onset: Option<Cow<'a, str>>,
        /// mild | moderate | severe.
        severity: Option<Cow<'a, str>>,
    }
}

/// The FHIR allergy-intolerance clinical-status code system.
pub const ALLERGY_CLINICAL_SYSTEM: &str =
    "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical";
/// The FHIR allergy-intolerance verification-status code system.
pub const ALLERGY_VERIFICATION_SYSTEM: &str =
    "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification";

fhir_resource! {
    /// An allergy or intolerance (`AllergyIntolerance`, JP Core `JP_AllergyIntolerance`).
    pub struct AllergyIntolerance {
        /// External ids for this item.
        identifier: Vec<Identifier<'a>>,
        /// active | inactive | resolved.
        clinical_status: Option<CodeableConcept<'a>>,
        /// unconfirmed | confirmed | refuted | entered-in-error.
        verification_status: Option<CodeableConcept<'a>>,
        /// allergy | intolerance.
        #[serde(rename = "type")]
        type_: Option<Cow<'a, str>>,
        /// food | medication | environment | biologic.
        category: Vec<Cow<'a, str>>,
        /// low | high | unable-to-assess.
        criticality: Option<Cow<'a, str>>,
        /// Code that identifies the allergy or intolerance.
        code: Option<CodeableConcept<'a>>,
        /// Who the sensitivity is for (required).
        patient: Option<Reference<'a>>,
        /// Encounter when the allergy or intolerance was asserted.
        encounter: Option<Reference<'a>>,
        /// When allergy or intolerance was identified (`onsetDateTime`).
        onset_date_time: Option<Cow<'a, str>>,
        /// Date first version of the resource instance was recorded.
        recorded_date: Option<Cow<'a, str>>,
        /// Who recorded the sensitivity.
        recorder: Option<Reference<'a>>,
        /// Source of the information about the allergy.
        asserter: Option<Reference<'a>>,
        /// Date(/time) of last known occurrence of a reaction.
        last_occurrence: Option<Cow<'a, str>>,
        /// Additional text not captured in other fields.
        note: Vec<Annotation<'a>>,
        /// Adverse reaction events linked to exposure to substance.
        reaction: Vec<AllergyReaction<'a>>,
    }
}

fhir_resource! {
    /// An action performed on a patient (`Procedure`, JP Core `JP_Procedure`).
    pub struct Procedure {
        /// External identifiers for this procedure.
        identifier: Vec<Identifier<'a>>,
        /// preparation | in-progress | not-done | on-hold | stopped | completed | entered-in-error | unknown.
        status: Option<Cow<'a, str>>,
        /// Classification of the procedure.
        category: Option<CodeableConcept<'a>>,
        /// Identification of the procedure (receipt procedure code, ...).
        code: Option<CodeableConcept<'a>>,
        /// Who the procedure was performed on (required).
        subject: Option<Reference<'a>>,
        /// Encounter created as part of.
        encounter: Option<Reference<'a>>,
        /// When the procedure was performed (`performedDateTime`).
        performed_date_time: Option<Cow<'a, str>>,
        /// When the procedure was performed (`performedPeriod`).
        performed_period: Option<Period<'a>>,
        /// Who recorded the procedure.
        recorder: Option<Reference<'a>>,
        /// Coded reason procedure performed.
        reason_code: Vec<CodeableConcept<'a>>,
        /// The justification that the procedure was performed.
        reason_reference: Vec<Reference<'a>>,
        /// Target body sites.
        body_site: Vec<CodeableConcept<'a>>,
        /// The result of procedure.
        outcome: Option<CodeableConcept<'a>>,
        /// Additional information about the procedure.
        note: Vec<Annotation<'a>>,
    }
}

fhir_struct! {
    /// `Composition.section`: a section of a document, with its narrative.
    pub struct CompositionSection {
        /// Label for section (e.g. for ToC).
        title: Option<Cow<'a, str>>,
        /// Classification of section (recommended).
        code: Option<CodeableConcept<'a>>,
        /// Who and/or what authored the section.
        author: Vec<Reference<'a>>,
        /// Who/what the section is about, when it is not about the subject of composition.
        focus: Option<Reference<'a>>,
        /// Text summary of the section, for human interpretation.
        text: Option<Narrative<'a>>,
        /// working | snapshot | changes.
        mode: Option<Cow<'a, str>>,
        /// Order of section entries.
        ordered_by: Option<CodeableConcept<'a>>,
        /// A reference to data that supports this section.
        entry: Vec<Reference<'a>>,
        /// Why the section is empty.
        empty_reason: Option<CodeableConcept<'a>>,
        /// Nested sections.
        section: Vec<CompositionSection<'a>>,
    }
}

fhir_struct! {
    /// `Composition.attester`.
    pub struct CompositionAttester {
        /// personal | professional | legal | official.
        mode: Option<Cow<'a, str>>,
        /// When the composition was attested.
        time: Option<Cow<'a, str>>,
        /// Who attested the composition.
        party: Option<Reference<'a>>,
    }
}

fhir_resource! {
    /// The first resource of a document Bundle (`Composition`): 診療情報提供書, 退院時サマリー,
    /// 健康診断結果報告書.
    pub struct Composition {
        /// Version-independent identifier for the Composition.
        identifier: Option<Identifier<'a>>,
        /// preliminary | final | amended | entered-in-error.
        status: Option<Cow<'a, str>>,
        /// Kind of composition (LOINC 57133-1 referral note, 18842-5 discharge summary, ...).
        #[serde(rename = "type")]
        type_: Option<CodeableConcept<'a>>,
        /// Categorization of Composition.
        category: Vec<CodeableConcept<'a>>,
        /// Who and/or what the composition is about.
        subject: Option<Reference<'a>>,
        /// Context of the Composition.
        encounter: Option<Reference<'a>>,
        /// Composition editing time (required).
        date: Option<Cow<'a, str>>,
        /// Who and/or what authored the composition (1..*).
        author: Vec<Reference<'a>>,
        /// Human readable name/title (required).
        title: Option<Cow<'a, str>>,
        /// As defined by affinity domain.
        confidentiality: Option<Cow<'a, str>>,
        /// Attests to accuracy of composition.
        attester: Vec<CompositionAttester<'a>>,
        /// Organization which maintains the composition.
        custodian: Option<Reference<'a>>,
        /// Composition is broken into sections.
        section: Vec<CompositionSection<'a>>,
    }
}

fhir_struct! {
    /// `DocumentReference.content`.
    pub struct DocumentReferenceContent {
        /// Where to access the document (required).
        attachment: Option<Attachment<'a>>,
        /// Format/content rules for the document.
        format: Option<Coding<'a>>,
    }
}

fhir_struct! {
    /// `DocumentReference.context`.
    pub struct DocumentReferenceContext {
        /// Context of the document content.
        encounter: Vec<Reference<'a>>,
        /// Main clinical acts documented.
        event: Vec<CodeableConcept<'a>>,
        /// Time of service that is being documented.
        period: Option<Period<'a>>,
        /// Kind of facility where patient was seen.
        facility_type: Option<CodeableConcept<'a>>,
        /// Additional details about where the content was created (e.g. clinical specialty).
        practice_setting: Option<CodeableConcept<'a>>,
        /// Patient demographics from source.
        source_patient_info: Option<Reference<'a>>,
        /// Related identifiers or resources.
        related: Vec<Reference<'a>>,
    }
}

fhir_resource! {
    /// A reference to a document (`DocumentReference`).
    pub struct DocumentReference {
        /// Master Version Specific Identifier.
        master_identifier: Option<Identifier<'a>>,
        /// Other identifiers for the document.
        identifier: Vec<Identifier<'a>>,
        /// current | superseded | entered-in-error.
        status: Option<Cow<'a, str>>,
        /// preliminary | final | amended | entered-in-error.
        doc_status: Option<Cow<'a, str>>,
        /// Kind of document (LOINC if possible).
        #[serde(rename = "type")]
        type_: Option<CodeableConcept<'a>>,
        /// Categorization of document.
        category: Vec<CodeableConcept<'a>>,
        /// Who/what is the subject of the document.
        subject: Option<Reference<'a>>,
        /// When this document reference was created (instant).
        date: Option<Cow<'a, str>>,
        /// Who and/or what authored the document.
        author: Vec<Reference<'a>>,
        /// Who/what authenticated the document.
        authenticator: Option<Reference<'a>>,
        /// Organization which maintains the document.
        custodian: Option<Reference<'a>>,
        /// Human-readable description.
        description: Option<Cow<'a, str>>,
        /// Document security-tags.
        security_label: Vec<CodeableConcept<'a>>,
        /// Document referenced (1..*).
        content: Vec<DocumentReferenceContent<'a>>,
        /// Clinical context of document.
        context: Option<DocumentReferenceContext<'a>>,
    }
}

fhir_resource! {
    /// A provider organization (`Organization`, JP Core `JP_Organization`).
    pub struct Organization {
        /// Identifies this organization across multiple systems (e.g. 医療機関コード).
        identifier: Vec<Identifier<'a>>,
        /// Whether the organization's record is still in active use.
        active: Option<bool>,
        /// Kind of organization.
        #[serde(rename = "type")]
        type_: Vec<CodeableConcept<'a>>,
        /// Name used for the organization.
        name: Option<Cow<'a, str>>,
        /// A list of alternate names.
        alias: Vec<Cow<'a, str>>,
        /// A contact detail for the organization.
        telecom: Vec<ContactPoint<'a>>,
        /// An address for the organization.
        address: Vec<crate::datatypes::Address<'a>>,
        /// The organization of which this organization forms a part.
        part_of: Option<Reference<'a>>,
    }
}

fhir_resource! {
    /// A health-care professional (`Practitioner`, JP Core `JP_Practitioner`).
    pub struct Practitioner {
        /// An identifier for the person as this agent.
        identifier: Vec<Identifier<'a>>,
        /// Whether this practitioner's record is in active use.
        active: Option<bool>,
        /// The name(s) associated with the practitioner.
        name: Vec<HumanName<'a>>,
        /// A contact detail for the practitioner.
        telecom: Vec<ContactPoint<'a>>,
        /// Address(es) of the practitioner.
        address: Vec<crate::datatypes::Address<'a>>,
        /// male | female | other | unknown.
        gender: Option<Cow<'a, str>>,
        /// The date on which the practitioner was born.
        birth_date: Option<Cow<'a, str>>,
    }
}

fhir_struct! {
    /// `Bundle.entry.request`: how a transaction/batch entry is to be processed.
    pub struct BundleEntryRequest {
        /// GET | HEAD | POST | PUT | DELETE | PATCH (required).
        method: Option<Cow<'a, str>>,
        /// URL for HTTP equivalent of this entry (required).
        url: Option<Cow<'a, str>>,
        /// For managing update contention.
        if_match: Option<Cow<'a, str>>,
        /// For conditional creates.
        if_none_exist: Option<Cow<'a, str>>,
    }
}

fhir_struct! {
    /// `Bundle.entry`.
    pub struct BundleEntry {
        /// URI for resource (absolute URL or `urn:uuid:`).
        full_url: Option<Cow<'a, str>>,
        /// A resource in the bundle.
        resource: Option<Resource<'a>>,
        /// Additional execution information (transaction/batch/history).
        request: Option<BundleEntryRequest<'a>>,
    }
}

impl<'a> BundleEntry<'a> {
    /// A transaction entry that POSTs `resource` under a `urn:uuid:` full URL.
    pub fn post(full_url: String, resource: Resource<'a>) -> Self {
        let url = resource.resource_type().to_owned();
        BundleEntry {
            full_url: Some(Cow::Owned(full_url)),
            resource: Some(resource),
            request: Some(BundleEntryRequest {
                method: Some(Cow::Borrowed("POST")),
                url: Some(Cow::Owned(url)),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A document/collection entry (no request).
    pub fn document(full_url: String, resource: Resource<'a>) -> Self {
        BundleEntry {
            full_url: Some(Cow::Owned(full_url)),
            resource: Some(resource),
            ..Default::default()
        }
    }
}

fhir_struct! {
    /// A container for a collection of resources (`Bundle`).
    pub struct Bundle {
        /// Logical id of this bundle.
        id: Option<Cow<'a, str>>,
        /// Metadata about the bundle.
        meta: Option<Meta<'a>>,
        /// Persistent identifier for the bundle (required for documents).
        identifier: Option<Identifier<'a>>,
        /// document | message | transaction | transaction-response | batch | batch-response | history | searchset | collection.
        #[serde(rename = "type")]
        type_: Option<Cow<'a, str>>,
        /// When the bundle was assembled (instant).
        timestamp: Option<Cow<'a, str>>,
        /// If search, the total number of matches.
        total: Option<u64>,
        /// Entries in the bundle.
        entry: Vec<BundleEntry<'a>>,
    }
}

impl FhirResource for Bundle<'_> {
    const RESOURCE_TYPE: &'static str = "Bundle";
}

impl<'a> From<Bundle<'a>> for Resource<'a> {
    fn from(bundle: Bundle<'a>) -> Resource<'a> {
        Resource::Bundle(Box::new(bundle))
    }
}

impl<'a> Bundle<'a> {
    /// The entry whose `fullUrl` equals `reference` (how `urn:uuid:` references resolve).
    pub fn resolve(&self, reference: &str) -> Option<&BundleEntry<'a>> {
        self.entry
            .iter()
            .find(|e| e.full_url.as_deref() == Some(reference))
    }

    /// The resources of the entries, in order.
    pub fn resources(&self) -> impl Iterator<Item = &Resource<'a>> {
        self.entry.iter().filter_map(|e| e.resource.as_ref())
    }
}
