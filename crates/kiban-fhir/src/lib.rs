//! Typed HL7 FHIR R4 resources for what JP Core / JP-CLINS uses: parse, validate, serialize.
//!
//! - [`datatypes`]: `Coding`, `CodeableConcept`, `Identifier`, `HumanName` (with the JP Core
//!   kanji/kana name-representation extension), `Address`, `Reference`, `Quantity`, `Dosage`, ...
//! - [`resources`]: `Patient`, `Encounter`, `Condition`, `MedicationRequest`,
//!   `MedicationDispense`, `Observation`, `AllergyIntolerance`, `Procedure`, `Composition`,
//!   `DocumentReference`, `Organization`, `Practitioner`, `Bundle`.
//! - [`Resource`]: any resource, parsed by `resourceType` (unknown types kept as JSON in
//!   [`Resource::Other`]), serialized back with `resourceType` first.
//! - [`validate()`]: the base R4 structural rules (required elements, value sets, formats,
//!   invariants); issues name the FHIR path and rule, never the value.
//! - [`datetime`]: FHIR `date` / `dateTime` / `instant` into chrono types (partial dates allowed).
//! - [`reference`]: literal references (`Patient/1`, `urn:uuid:…`, absolute URLs) into type and id.
//!
//! Every struct keeps the elements kiban does not model in an `extra` map, so a parse followed
//! by a serialization is faithful.
//!
//! Strings are `Cow<'a, str>`: read from a JSON text ([`Resource::from_json_str`]), a string
//! without escapes borrows from the text, so parsing allocates little; built in code or read
//! from a [`serde_json::Value`], strings are owned (`'static`). [`IntoStatic`] turns a borrowing
//! value into an owning one to keep it after its text.
//!
//! ```
//! use kiban_fhir::{Resource, validate};
//! use kiban_fhir::datatypes::NameRepresentation;
//! use kiban_model::CodeSystem;
//!
//! let json = r#"{"resourceType":"Patient","id":"p1","gender":"female",
//!   "name":[{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation",
//!            "valueCode":"SYL"}],"family":"ヤマダ","given":["ハナコ"]}],
//!   "identifier":[{"system":"http://jpfhir.jp/fhir/clins/Idsystem/JP_Insurance_memberID",
//!                  "value":"06130017:記号:番号:01"}]}"#;
//! let Resource::Patient(patient) = Resource::from_json_str(json)? else { unreachable!() };
//! assert!(patient.name_in(NameRepresentation::Syllabic).is_some());
//! assert!(patient.insurance_member_id().is_some());
//! assert!(validate(&Resource::Patient(patient.clone())).is_empty());
//! let text = Resource::Patient(patient).to_json_string();
//! assert!(text.starts_with(r#"{"resourceType":"Patient""#));
//! # let _ = CodeSystem::Icd10;
//! # Ok::<(), kiban_fhir::ParseError>(())
//! ```

#![warn(missing_docs)]

pub mod datatypes;
pub mod datetime;
pub mod profiles;
pub mod reference;
mod resource;
pub mod resources;
mod validate;

pub use datatypes::{
    Address, Annotation, Attachment, CodeableConcept, Coding, ContactPoint, Dosage, DoseAndRate,
    Extension, HumanName, Identifier, IntoStatic, Meta, NameRepresentation, Narrative, Period,
    Quantity, Range, Reference, ReferenceRange, Timing, TimingRepeat,
};
pub use datetime::{DateError, FhirDate, FhirDateTime, parse_date, parse_date_time, parse_instant};
pub use reference::{ReferenceKind, ReferenceTarget, parse_reference};
pub use resource::{ParseError, Resource, is_modelled, to_json_string};
pub use resources::*;
pub use validate::{ValidationIssue, validate};

#[cfg(test)]
mod tests;
