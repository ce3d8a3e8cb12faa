//! Structural validation against the base FHIR R4 specification.
//!
//! Checks required elements and cardinalities, required value sets (status codes, gender, ...),
//! primitive formats (id, code, date, dateTime, instant, uri) and the invariants of the modelled
//! resources (e.g. `bdl-3`, `bdl-11`, `con-4`, `obs-3`, `per-1`, `ext-1`). Issues name the FHIR
//! path and the rule, never the offending value.

use crate::datatypes::{
    Address, Annotation, Attachment, CodeableConcept, Coding, ContactPoint, Dosage, Extension,
    HumanName, Identifier, Meta, Narrative, Period, Quantity, Range, Reference, ReferenceRange,
    XHTML_NAMESPACE,
};
use crate::datetime::{parse_date, parse_date_time, parse_instant};
use crate::resource::Resource;
use crate::resources::{
    ALLERGY_CLINICAL_SYSTEM, ALLERGY_VERIFICATION_SYSTEM, AllergyIntolerance, Bundle,
    CONDITION_CLINICAL_SYSTEM, CONDITION_VERIFICATION_SYSTEM, Composition, CompositionSection,
    Condition, DocumentReference, Encounter, MedicationDispense, MedicationRequest, Observation,
    Organization, Patient, Practitioner, Procedure,
};
use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

/// One violation of a base FHIR R4 rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationIssue {
    /// FHIR path of the element, e.g. `Bundle.entry[3].resource.code.coding[0].system`.
    pub path: String,
    /// The rule violated, in words (with the invariant key where the spec has one).
    pub rule: String,
}

impl fmt::Display for ValidationIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.rule)
    }
}

/// Validates a resource (recursively for Bundles) against the base R4 structural rules.
///
/// ```
/// use kiban_fhir::{Resource, validate};
/// let r = Resource::from_json_str(r#"{"resourceType":"Observation","status":"final"}"#).unwrap();
/// let issues = validate(&r);
/// assert!(issues.iter().any(|i| i.path == "Observation.code"));
/// ```
pub fn validate(resource: &Resource) -> Vec<ValidationIssue> {
    let mut v = Validator::default();
    v.resource(&Path::root(resource.resource_type()), resource);
    v.issues
}

const GENDER: &[&str] = &["male", "female", "other", "unknown"];
const NAME_USE: &[&str] = &[
    "usual",
    "official",
    "temp",
    "nickname",
    "anonymous",
    "old",
    "maiden",
];
const IDENTIFIER_USE: &[&str] = &["usual", "official", "temp", "secondary", "old"];
const ADDRESS_USE: &[&str] = &["home", "work", "temp", "old", "billing"];
const ADDRESS_TYPE: &[&str] = &["postal", "physical", "both"];
const CONTACT_SYSTEM: &[&str] = &["phone", "fax", "email", "pager", "url", "sms", "other"];
const CONTACT_USE: &[&str] = &["home", "work", "temp", "old", "mobile"];
const QUANTITY_COMPARATOR: &[&str] = &["<", "<=", ">=", ">"];
const NARRATIVE_STATUS: &[&str] = &["generated", "extensions", "additional", "empty"];
const ENCOUNTER_STATUS: &[&str] = &[
    "planned",
    "arrived",
    "triaged",
    "in-progress",
    "onleave",
    "finished",
    "cancelled",
    "entered-in-error",
    "unknown",
];
const CONDITION_CLINICAL: &[&str] = &[
    "active",
    "recurrence",
    "relapse",
    "inactive",
    "remission",
    "resolved",
];
const CONDITION_VERIFICATION: &[&str] = &[
    "unconfirmed",
    "provisional",
    "differential",
    "confirmed",
    "refuted",
    "entered-in-error",
];
const MEDICATION_REQUEST_STATUS: &[&str] = &[
    "active",
    "on-hold",
    "cancelled",
    "completed",
    "entered-in-error",
    "stopped",
    "draft",
    "unknown",
];
const MEDICATION_REQUEST_INTENT: &[&str] = &[
    "proposal",
    "plan",
    "order",
    "original-order",
    "reflex-order",
    "filler-order",
    "instance-order",
    "option",
];
const REQUEST_PRIORITY: &[&str] = &["routine", "urgent", "asap", "stat"];
const MEDICATION_DISPENSE_STATUS: &[&str] = &[
    "preparation",
    "in-progress",
    "cancelled",
    "on-hold",
    "completed",
    "entered-in-error",
    "stopped",
    "declined",
    "unknown",
];
const OBSERVATION_STATUS: &[&str] = &[
    "registered",
    "preliminary",
    "final",
    "amended",
    "corrected",
    "cancelled",
    "entered-in-error",
    "unknown",
];
const ALLERGY_TYPE: &[&str] = &["allergy", "intolerance"];
const ALLERGY_CATEGORY: &[&str] = &["food", "medication", "environment", "biologic"];
const ALLERGY_CRITICALITY: &[&str] = &["low", "high", "unable-to-assess"];
const ALLERGY_CLINICAL: &[&str] = &["active", "inactive", "resolved"];
const ALLERGY_VERIFICATION: &[&str] = &["unconfirmed", "confirmed", "refuted", "entered-in-error"];
const REACTION_SEVERITY: &[&str] = &["mild", "moderate", "severe"];
const PROCEDURE_STATUS: &[&str] = &[
    "preparation",
    "in-progress",
    "not-done",
    "on-hold",
    "stopped",
    "completed",
    "entered-in-error",
    "unknown",
];
const COMPOSITION_STATUS: &[&str] = &["preliminary", "final", "amended", "entered-in-error"];
const COMPOSITION_ATTESTATION_MODE: &[&str] = &["personal", "professional", "legal", "official"];
const SECTION_MODE: &[&str] = &["working", "snapshot", "changes"];
const DOCUMENT_REFERENCE_STATUS: &[&str] = &["current", "superseded", "entered-in-error"];
const BUNDLE_TYPE: &[&str] = &[
    "document",
    "message",
    "transaction",
    "transaction-response",
    "batch",
    "batch-response",
    "history",
    "searchset",
    "collection",
];
const HTTP_VERB: &[&str] = &["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"];
const TIMING_UNIT: &[&str] = &["s", "min", "h", "d", "wk", "mo", "a"];

#[derive(Default)]
struct Validator {
    issues: Vec<ValidationIssue>,
}

/// The FHIR path of the element being checked, as a chain of its parents on the stack.
/// Why: every element visited needs its path in case it has an issue, but nearly none has
/// one; the text (e.g. `Bundle.entry[3].resource.code`) is written only for an issue.
#[derive(Clone, Copy)]
struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    element: &'a str,
    index: Option<usize>,
}

impl<'a> Path<'a> {
    /// The path of a resource: its type.
    fn root(resource_type: &'a str) -> Self {
        Path {
            parent: None,
            element: resource_type,
            index: None,
        }
    }

    /// `self.element`, or `self.element[i]`.
    fn child(&'a self, element: &'a str, index: Option<usize>) -> Path<'a> {
        Path {
            parent: Some(self),
            element,
            index,
        }
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(parent) = self.parent {
            write!(f, "{parent}.")?;
        }
        f.write_str(self.element)?;
        if let Some(i) = self.index {
            write!(f, "[{i}]")?;
        }
        Ok(())
    }
}

impl From<&Path<'_>> for String {
    fn from(path: &Path<'_>) -> String {
        path.to_string()
    }
}

fn join(path: &Path<'_>, element: &str) -> String {
    format!("{path}.{element}")
}

fn index(path: &Path<'_>, element: &str, i: usize) -> String {
    format!("{path}.{element}[{i}]")
}

fn is_fhir_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// FHIR `code`: no leading/trailing whitespace, no runs of whitespace, not empty.
fn is_fhir_code(s: &str) -> bool {
    if s.is_empty() {
        return false;
    }
    if !s.is_ascii() {
        return s.trim() == s
            && !s.contains("  ")
            && !s.chars().any(|c| c.is_whitespace() && c != ' ');
    }
    // One pass over the bytes (codes are nearly always ASCII). ASCII whitespace for
    // `char::is_whitespace` is the space and \t..=\r.
    let bytes = s.as_bytes();
    if bytes[0] == b' ' || bytes[bytes.len() - 1] == b' ' {
        return false;
    }
    let mut after_space = false;
    for &b in bytes {
        match b {
            b' ' if after_space => return false,
            b' ' => after_space = true,
            b'\t'..=b'\r' => return false,
            _ => after_space = false,
        }
    }
    true
}

/// FHIR `uri`: not empty, no whitespace.
fn is_fhir_uri(s: &str) -> bool {
    // Nearly every URI is ASCII: scan its bytes (ASCII whitespace is space and \t..=\r, as
    // for `char::is_whitespace`) and decode characters only when there are others.
    if s.is_empty() {
        return false;
    }
    for (i, &b) in s.as_bytes().iter().enumerate() {
        if b >= 0x80 {
            // Not ASCII from here: decode the rest as characters.
            return !s[i..].chars().any(char::is_whitespace);
        }
        if matches!(b, b' ' | b'\t'..=b'\r') {
            return false;
        }
    }
    true
}

/// FHIR `string`: not empty after trimming.
fn is_fhir_string(s: &str) -> bool {
    // Blank means all whitespace: the first non-whitespace character settles it.
    !s.trim_start().is_empty()
}

impl Validator {
    fn issue(&mut self, path: impl Into<String>, rule: impl Into<String>) {
        self.issues.push(ValidationIssue {
            path: path.into(),
            rule: rule.into(),
        });
    }

    fn required(&mut self, path: &Path<'_>, element: &str, present: bool) {
        if !present {
            self.issue(join(path, element), "required element is missing (min 1)");
        }
    }

    fn at_most_one(&mut self, path: &Path<'_>, choice: &str, present: &[bool]) {
        if present.iter().filter(|p| **p).count() > 1 {
            self.issue(
                join(path, choice),
                "only one of the choice types may be present (max 1)",
            );
        }
    }

    fn code_in(
        &mut self,
        path: &Path<'_>,
        element: &str,
        value: Option<&Cow<'_, str>>,
        allowed: &[&str],
    ) {
        if let Some(v) = value
            && !allowed.contains(&&**v)
        {
            self.issue(
                join(path, element),
                format!(
                    "code is not in the required value set ({})",
                    allowed.join(" | ")
                ),
            );
        }
    }

    fn required_code(
        &mut self,
        path: &Path<'_>,
        element: &str,
        value: Option<&Cow<'_, str>>,
        allowed: &[&str],
    ) {
        self.required(path, element, value.is_some());
        self.code_in(path, element, value, allowed);
    }

    fn string(&mut self, path: &Path<'_>, element: &str, value: Option<&Cow<'_, str>>) {
        if let Some(v) = value
            && !is_fhir_string(v)
        {
            self.issue(join(path, element), "string must not be empty or blank");
        }
    }

    fn code(&mut self, path: &Path<'_>, element: &str, value: Option<&Cow<'_, str>>) {
        if let Some(v) = value
            && !is_fhir_code(v)
        {
            self.issue(
                join(path, element),
                "code must be non-empty without leading, trailing or repeated whitespace",
            );
        }
    }

    fn uri(&mut self, path: &Path<'_>, element: &str, value: Option<&Cow<'_, str>>) {
        if let Some(v) = value
            && !is_fhir_uri(v)
        {
            self.issue(
                join(path, element),
                "uri must be non-empty without whitespace",
            );
        }
    }

    fn date(&mut self, path: &Path<'_>, element: &str, value: Option<&Cow<'_, str>>) {
        if let Some(v) = value
            && let Err(e) = parse_date(v)
        {
            self.issue(join(path, element), e.to_string());
        }
    }

    fn date_time(&mut self, path: &Path<'_>, element: &str, value: Option<&Cow<'_, str>>) {
        if let Some(v) = value
            && let Err(e) = parse_date_time(v)
        {
            self.issue(join(path, element), e.to_string());
        }
    }

    fn instant(&mut self, path: &Path<'_>, element: &str, value: Option<&Cow<'_, str>>) {
        if let Some(v) = value
            && let Err(e) = parse_instant(v)
        {
            self.issue(join(path, element), e.to_string());
        }
    }

    /// `path.element` or `path.element[i]`.
    fn child_path<'p>(&self, path: &'p Path<'p>, element: &'p str, i: Option<usize>) -> Path<'p> {
        path.child(element, i)
    }

    fn each<T>(
        &mut self,
        path: &Path<'_>,
        element: &str,
        items: &[T],
        f: fn(&mut Self, &Path<'_>, &T),
    ) {
        for (i, item) in items.iter().enumerate() {
            let child = path.child(element, Some(i));
            f(self, &child, item);
        }
    }

    fn opt<T>(
        &mut self,
        path: &Path<'_>,
        element: &str,
        item: Option<&T>,
        f: fn(&mut Self, &Path<'_>, &T),
    ) {
        if let Some(item) = item {
            let child = path.child(element, None);
            f(self, &child, item);
        }
    }

    // ----- data types -----

    fn extension(&mut self, path: &Path<'_>, e: &Extension) {
        match e.url.as_deref() {
            None => self.issue(join(path, "url"), "required element is missing (min 1)"),
            Some(u) if !is_fhir_uri(u) => self.issue(
                join(path, "url"),
                "uri must be non-empty without whitespace",
            ),
            Some(_) => {}
        }
        let values = e.value_elements();
        if values.len() > 1 {
            self.issue(
                join(path, "value[x]"),
                "only one of the choice types may be present (max 1)",
            );
        }
        if !values.is_empty() && !e.extension.is_empty() {
            self.issue(
                path,
                "ext-1: must have either extensions or value[x], not both",
            );
        }
        if values.is_empty() && e.extension.is_empty() {
            self.issue(
                path,
                "ele-1: an extension must have a value or nested extensions",
            );
        }
        self.code(path, "valueCode", e.value_code.as_ref());
        self.date(path, "valueDate", e.value_date.as_ref());
        self.date_time(path, "valueDateTime", e.value_date_time.as_ref());
        self.opt(path, "valueCoding", e.value_coding.as_ref(), Self::coding);
        self.opt(
            path,
            "valueCodeableConcept",
            e.value_codeable_concept.as_ref(),
            Self::codeable_concept,
        );
        self.opt(
            path,
            "valueIdentifier",
            e.value_identifier.as_ref(),
            Self::identifier,
        );
        self.opt(
            path,
            "valueReference",
            e.value_reference.as_ref(),
            Self::reference,
        );
        self.opt(path, "valuePeriod", e.value_period.as_ref(), Self::period);
        self.opt(
            path,
            "valueQuantity",
            e.value_quantity.as_ref(),
            Self::quantity,
        );
        self.each(path, "extension", &e.extension, Self::extension);
    }

    fn coding(&mut self, path: &Path<'_>, c: &Coding) {
        self.uri(path, "system", c.system.as_ref());
        self.code(path, "code", c.code.as_ref());
        self.string(path, "display", c.display.as_ref());
        // A code without its system is valid R4 (Coding.system is 0..1 with no invariant):
        // the official examples send such codings (e.g. Observation-example-genetics-2), so it
        // is not rejected here; kiban keeps the code and its text, uninterpreted.
    }

    fn codeable_concept(&mut self, path: &Path<'_>, c: &CodeableConcept) {
        self.each(path, "coding", &c.coding, Self::coding);
        self.string(path, "text", c.text.as_ref());
        if c.coding.is_empty() && c.text.is_none() && c.extra.is_empty() {
            self.issue(path, "ele-1: element must have a value or children");
        }
    }

    fn identifier(&mut self, path: &Path<'_>, i: &Identifier) {
        self.code_in(path, "use", i.use_.as_ref(), IDENTIFIER_USE);
        self.opt(path, "type", i.type_.as_ref(), Self::codeable_concept);
        self.uri(path, "system", i.system.as_ref());
        self.string(path, "value", i.value.as_ref());
        self.opt(path, "period", i.period.as_ref(), Self::period);
        self.opt(path, "assigner", i.assigner.as_deref(), Self::reference);
    }

    fn human_name(&mut self, path: &Path<'_>, n: &HumanName) {
        self.each(path, "extension", &n.extension, Self::extension);
        self.code_in(path, "use", n.use_.as_ref(), NAME_USE);
        self.string(path, "text", n.text.as_ref());
        self.string(path, "family", n.family.as_ref());
        for (i, g) in n.given.iter().enumerate() {
            if !is_fhir_string(g) {
                self.issue(index(path, "given", i), "string must not be empty or blank");
            }
        }
        self.opt(path, "period", n.period.as_ref(), Self::period);
    }

    fn address(&mut self, path: &Path<'_>, a: &Address) {
        self.each(path, "extension", &a.extension, Self::extension);
        self.code_in(path, "use", a.use_.as_ref(), ADDRESS_USE);
        self.code_in(path, "type", a.type_.as_ref(), ADDRESS_TYPE);
        for (i, l) in a.line.iter().enumerate() {
            if !is_fhir_string(l) {
                self.issue(index(path, "line", i), "string must not be empty or blank");
            }
        }
        self.string(path, "city", a.city.as_ref());
        self.string(path, "state", a.state.as_ref());
        self.string(path, "postalCode", a.postal_code.as_ref());
        self.opt(path, "period", a.period.as_ref(), Self::period);
    }

    fn contact_point(&mut self, path: &Path<'_>, c: &ContactPoint) {
        self.code_in(path, "system", c.system.as_ref(), CONTACT_SYSTEM);
        self.code_in(path, "use", c.use_.as_ref(), CONTACT_USE);
        if c.value.is_some() && c.system.is_none() {
            self.issue(path, "cpt-2: a system is required if a value is provided");
        }
        self.string(path, "value", c.value.as_ref());
        if c.rank == Some(0) {
            self.issue(join(path, "rank"), "positiveInt must be 1 or more");
        }
        self.opt(path, "period", c.period.as_ref(), Self::period);
    }

    fn reference(&mut self, path: &Path<'_>, r: &Reference) {
        self.string(path, "reference", r.reference.as_ref());
        if let Some(reference) = r.reference.as_deref()
            && reference.starts_with('#')
            && reference.len() == 1
        {
            self.issue(
                join(path, "reference"),
                "ref-1: a contained reference needs an id",
            );
        }
        self.uri(path, "type", r.type_.as_ref());
        self.opt(
            path,
            "identifier",
            r.identifier.as_deref(),
            Self::identifier,
        );
        self.string(path, "display", r.display.as_ref());
    }

    fn period(&mut self, path: &Path<'_>, p: &Period) {
        self.date_time(path, "start", p.start.as_ref());
        self.date_time(path, "end", p.end.as_ref());
        if let (Some(s), Some(e)) = (p.start.as_deref(), p.end.as_deref())
            && let (Ok(s), Ok(e)) = (parse_date_time(s), parse_date_time(e))
        {
            let earlier = match (s, e) {
                (
                    crate::datetime::FhirDateTime::DateTime(s),
                    crate::datetime::FhirDateTime::DateTime(e),
                ) => e < s,
                _ => e.date() < s.date(),
            };
            if earlier {
                self.issue(
                    path,
                    "per-1: if present, start shall have a lower value than end",
                );
            }
        }
    }

    fn quantity(&mut self, path: &Path<'_>, q: &Quantity) {
        self.code_in(
            path,
            "comparator",
            q.comparator.as_ref(),
            QUANTITY_COMPARATOR,
        );
        self.uri(path, "system", q.system.as_ref());
        self.code(path, "code", q.code.as_ref());
        if q.code.is_some() && q.system.is_none() {
            self.issue(
                path,
                "qty-3: if a code for the unit is present, the system shall also be present",
            );
        }
        if let Some(v) = q.value
            && !v.is_finite()
        {
            self.issue(join(path, "value"), "decimal must be a finite number");
        }
    }

    fn range(&mut self, path: &Path<'_>, r: &Range) {
        self.opt(path, "low", r.low.as_ref(), Self::quantity);
        self.opt(path, "high", r.high.as_ref(), Self::quantity);
        if let (Some(l), Some(h)) = (
            r.low.as_ref().and_then(|q| q.value),
            r.high.as_ref().and_then(|q| q.value),
        ) && l > h
        {
            self.issue(
                path,
                "rng-2: if present, low shall have a lower value than high",
            );
        }
    }

    fn reference_range(&mut self, path: &Path<'_>, r: &ReferenceRange) {
        if r.low.is_none() && r.high.is_none() && r.text.is_none() {
            self.issue(path, "obs-3: must have at least a low or a high or text");
        }
        self.opt(path, "low", r.low.as_ref(), Self::quantity);
        self.opt(path, "high", r.high.as_ref(), Self::quantity);
        self.opt(path, "type", r.type_.as_ref(), Self::codeable_concept);
        self.each(path, "appliesTo", &r.applies_to, Self::codeable_concept);
        self.opt(path, "age", r.age.as_ref(), Self::range);
    }

    fn dosage(&mut self, path: &Path<'_>, d: &Dosage) {
        self.each(path, "extension", &d.extension, Self::extension);
        self.string(path, "text", d.text.as_ref());
        self.each(
            path,
            "additionalInstruction",
            &d.additional_instruction,
            Self::codeable_concept,
        );
        if let Some(t) = &d.timing {
            let tp = self.child_path(path, "timing", None);
            for (i, e) in t.event.iter().enumerate() {
                if let Err(err) = parse_date_time(e) {
                    self.issue(index(&tp, "event", i), err.to_string());
                }
            }
            self.opt(&tp, "code", t.code.as_ref(), Self::codeable_concept);
            if let Some(r) = &t.repeat {
                let rp = self.child_path(&tp, "repeat", None);
                self.code_in(&rp, "periodUnit", r.period_unit.as_ref(), TIMING_UNIT);
                self.opt(
                    &rp,
                    "boundsDuration",
                    r.bounds_duration.as_ref(),
                    Self::quantity,
                );
                self.opt(&rp, "boundsPeriod", r.bounds_period.as_ref(), Self::period);
                if r.period.is_some() != r.period_unit.is_some() && r.period.is_some() {
                    self.issue(
                        &rp,
                        "tim-1: if there's a period, there needs to be period units",
                    );
                }
                if r.period.is_some_and(|p| p < 0.0) {
                    self.issue(&rp, "tim-6: period SHALL be a non-negative value");
                }
            }
        }
        self.opt(path, "site", d.site.as_ref(), Self::codeable_concept);
        self.opt(path, "route", d.route.as_ref(), Self::codeable_concept);
        self.opt(path, "method", d.method.as_ref(), Self::codeable_concept);
        for (i, dr) in d.dose_and_rate.iter().enumerate() {
            let drp = self.child_path(path, "doseAndRate", Some(i));
            self.opt(&drp, "type", dr.type_.as_ref(), Self::codeable_concept);
            self.at_most_one(
                &drp,
                "dose[x]",
                &[dr.dose_quantity.is_some(), dr.dose_range.is_some()],
            );
            self.opt(
                &drp,
                "doseQuantity",
                dr.dose_quantity.as_ref(),
                Self::quantity,
            );
            self.opt(&drp, "doseRange", dr.dose_range.as_ref(), Self::range);
            self.opt(
                &drp,
                "rateQuantity",
                dr.rate_quantity.as_ref(),
                Self::quantity,
            );
        }
    }

    fn annotation(&mut self, path: &Path<'_>, a: &Annotation) {
        self.required(path, "text", a.text.is_some());
        self.string(path, "text", a.text.as_ref());
        self.at_most_one(
            path,
            "author[x]",
            &[a.author_reference.is_some(), a.author_string.is_some()],
        );
        self.date_time(path, "time", a.time.as_ref());
    }

    fn narrative(&mut self, path: &Path<'_>, n: &Narrative) {
        self.required_code(path, "status", n.status.as_ref(), NARRATIVE_STATUS);
        self.required(path, "div", n.div.is_some());
        if let Some(div) = n.div.as_deref() {
            let well_formed = div.starts_with("<div") && div.trim_end().ends_with("</div>");
            if !well_formed || !div.contains(XHTML_NAMESPACE) {
                self.issue(
                    join(path, "div"),
                    "txt-1: the narrative must be an XHTML div element in the XHTML namespace",
                );
            }
            let inner_text_present = div.split('>').skip(1).any(|chunk| {
                chunk
                    .split('<')
                    .next()
                    .is_some_and(|t| !t.trim().is_empty())
            });
            if !inner_text_present && !div.contains("<img") {
                self.issue(
                    join(path, "div"),
                    "txt-2: the narrative SHALL have some non-whitespace content",
                );
            }
        }
    }

    fn attachment(&mut self, path: &Path<'_>, a: &Attachment) {
        if a.data.is_some() && a.content_type.is_none() {
            self.issue(
                path,
                "att-1: if the Attachment has data, it SHALL have a contentType",
            );
        }
        self.code(path, "contentType", a.content_type.as_ref());
        self.code(path, "language", a.language.as_ref());
        self.date_time(path, "creation", a.creation.as_ref());
    }

    fn meta(&mut self, path: &Path<'_>, m: &Meta) {
        self.instant(path, "lastUpdated", m.last_updated.as_ref());
        for (i, p) in m.profile.iter().enumerate() {
            if !is_fhir_uri(p) {
                self.issue(
                    index(path, "profile", i),
                    "canonical must be non-empty without whitespace",
                );
            }
        }
        self.each(path, "security", &m.security, Self::coding);
        self.each(path, "tag", &m.tag, Self::coding);
    }

    fn domain(
        &mut self,
        path: &Path<'_>,
        id: Option<&Cow<'_, str>>,
        meta: Option<&Meta>,
        text: Option<&Narrative>,
        extension: &[Extension],
    ) {
        if let Some(id) = id
            && !is_fhir_id(id)
        {
            self.issue(
                join(path, "id"),
                "id must be 1-64 characters of A-Z, a-z, 0-9, '-' and '.'",
            );
        }
        self.opt(path, "meta", meta, Self::meta);
        self.opt(path, "text", text, Self::narrative);
        self.each(path, "extension", extension, Self::extension);
    }

    // ----- resources -----

    fn resource(&mut self, path: &Path<'_>, resource: &Resource) {
        match resource {
            Resource::Patient(r) => self.patient(path, r),
            Resource::Encounter(r) => self.encounter(path, r),
            Resource::Condition(r) => self.condition(path, r),
            Resource::MedicationRequest(r) => self.medication_request(path, r),
            Resource::MedicationDispense(r) => self.medication_dispense(path, r),
            Resource::Observation(r) => self.observation(path, r),
            Resource::AllergyIntolerance(r) => self.allergy(path, r),
            Resource::Procedure(r) => self.procedure(path, r),
            Resource::Composition(r) => self.composition(path, r),
            Resource::DocumentReference(r) => self.document_reference(path, r),
            Resource::Organization(r) => self.organization(path, r),
            Resource::Practitioner(r) => self.practitioner(path, r),
            Resource::Bundle(r) => self.bundle(path, r),
            Resource::Other { json, .. } => {
                if let Some(id) = json.get("id")
                    && !id.as_str().is_some_and(is_fhir_id)
                {
                    self.issue(
                        join(path, "id"),
                        "id must be 1-64 characters of A-Z, a-z, 0-9, '-' and '.'",
                    );
                }
            }
        }
    }

    fn patient(&mut self, path: &Path<'_>, r: &Patient) {
        self.domain(
            path,
            r.id.as_ref(),
            r.meta.as_ref(),
            r.text.as_ref(),
            &r.extension,
        );
        self.each(path, "identifier", &r.identifier, Self::identifier);
        self.each(path, "name", &r.name, Self::human_name);
        self.each(path, "telecom", &r.telecom, Self::contact_point);
        self.code_in(path, "gender", r.gender.as_ref(), GENDER);
        self.date(path, "birthDate", r.birth_date.as_ref());
        self.at_most_one(
            path,
            "deceased[x]",
            &[r.deceased_boolean.is_some(), r.deceased_date_time.is_some()],
        );
        self.date_time(path, "deceasedDateTime", r.deceased_date_time.as_ref());
        self.each(path, "address", &r.address, Self::address);
        self.opt(
            path,
            "maritalStatus",
            r.marital_status.as_ref(),
            Self::codeable_concept,
        );
        self.at_most_one(
            path,
            "multipleBirth[x]",
            &[
                r.multiple_birth_boolean.is_some(),
                r.multiple_birth_integer.is_some(),
            ],
        );
        self.each(
            path,
            "generalPractitioner",
            &r.general_practitioner,
            Self::reference,
        );
        self.opt(
            path,
            "managingOrganization",
            r.managing_organization.as_ref(),
            Self::reference,
        );
    }

    fn encounter(&mut self, path: &Path<'_>, r: &Encounter) {
        self.domain(
            path,
            r.id.as_ref(),
            r.meta.as_ref(),
            r.text.as_ref(),
            &r.extension,
        );
        self.each(path, "identifier", &r.identifier, Self::identifier);
        self.required_code(path, "status", r.status.as_ref(), ENCOUNTER_STATUS);
        self.required(path, "class", r.class_.is_some());
        self.opt(path, "class", r.class_.as_ref(), Self::coding);
        self.each(path, "type", &r.type_, Self::codeable_concept);
        self.opt(
            path,
            "serviceType",
            r.service_type.as_ref(),
            Self::codeable_concept,
        );
        self.opt(path, "subject", r.subject.as_ref(), Self::reference);
        for (i, p) in r.participant.iter().enumerate() {
            let pp = self.child_path(path, "participant", Some(i));
            self.each(&pp, "type", &p.type_, Self::codeable_concept);
            self.opt(&pp, "period", p.period.as_ref(), Self::period);
            self.opt(&pp, "individual", p.individual.as_ref(), Self::reference);
        }
        self.opt(path, "period", r.period.as_ref(), Self::period);
        self.opt(path, "length", r.length.as_ref(), Self::quantity);
        self.each(path, "reasonCode", &r.reason_code, Self::codeable_concept);
        self.each(
            path,
            "reasonReference",
            &r.reason_reference,
            Self::reference,
        );
        for (i, d) in r.diagnosis.iter().enumerate() {
            let dp = self.child_path(path, "diagnosis", Some(i));
            self.required(&dp, "condition", d.condition.is_some());
            self.opt(&dp, "condition", d.condition.as_ref(), Self::reference);
            self.opt(&dp, "use", d.use_.as_ref(), Self::codeable_concept);
            if d.rank == Some(0) {
                self.issue(join(&dp, "rank"), "positiveInt must be 1 or more");
            }
        }
        if let Some(h) = &r.hospitalization {
            let hp = self.child_path(path, "hospitalization", None);
            self.opt(
                &hp,
                "admitSource",
                h.admit_source.as_ref(),
                Self::codeable_concept,
            );
            self.opt(
                &hp,
                "dischargeDisposition",
                h.discharge_disposition.as_ref(),
                Self::codeable_concept,
            );
        }
        self.opt(
            path,
            "serviceProvider",
            r.service_provider.as_ref(),
            Self::reference,
        );
    }

    fn status_coding(
        &mut self,
        path: &Path<'_>,
        element: &str,
        concept: Option<&CodeableConcept>,
        system: &str,
        allowed: &[&str],
    ) -> Option<String> {
        let concept = concept?;
        let p = path.child(element, None);
        self.codeable_concept(&p, concept);
        let mut found = None;
        for (i, c) in concept.coding.iter().enumerate() {
            if c.system.as_deref() == Some(system) {
                match c.code.as_deref() {
                    Some(code) if allowed.contains(&code) => found = Some(code.to_owned()),
                    _ => self.issue(
                        format!("{p}.coding[{i}].code"),
                        format!(
                            "code is not in the required value set ({})",
                            allowed.join(" | ")
                        ),
                    ),
                }
            }
        }
        if found.is_none() {
            self.issue(
                &p,
                format!("required binding: needs a coding from {system}"),
            );
        }
        found
    }

    fn condition(&mut self, path: &Path<'_>, r: &Condition) {
        self.domain(
            path,
            r.id.as_ref(),
            r.meta.as_ref(),
            r.text.as_ref(),
            &r.extension,
        );
        self.each(path, "identifier", &r.identifier, Self::identifier);
        let clinical = self.status_coding(
            path,
            "clinicalStatus",
            r.clinical_status.as_ref(),
            CONDITION_CLINICAL_SYSTEM,
            CONDITION_CLINICAL,
        );
        let verification = self.status_coding(
            path,
            "verificationStatus",
            r.verification_status.as_ref(),
            CONDITION_VERIFICATION_SYSTEM,
            CONDITION_VERIFICATION,
        );
        let has_abatement = r.abatement_date_time.is_some() || r.abatement_string.is_some();
        if has_abatement
            && let Some(c) = clinical.as_deref()
            && !matches!(c, "inactive" | "resolved" | "remission")
        {
            self.issue(
                join(path, "clinicalStatus"),
                "con-4: if condition is abated, then clinicalStatus must be inactive, resolved or remission",
            );
        }
        if verification.as_deref() == Some("entered-in-error") && r.clinical_status.is_some() {
            self.issue(
                join(path, "clinicalStatus"),
                "con-5: clinicalStatus SHALL NOT be present if verificationStatus is entered-in-error",
            );
        }
        if verification.as_deref() != Some("entered-in-error") && r.clinical_status.is_none() {
            let problem_list = r.category.iter().any(|c| {
                c.has_code(
                    "http://terminology.hl7.org/CodeSystem/condition-category",
                    "problem-list-item",
                )
            });
            if problem_list {
                self.issue(
                    join(path, "clinicalStatus"),
                    "con-3: clinicalStatus SHALL be present for a problem-list item",
                );
            }
        }
        self.each(path, "category", &r.category, Self::codeable_concept);
        self.opt(
            path,
            "severity",
            r.severity.as_ref(),
            Self::codeable_concept,
        );
        self.opt(path, "code", r.code.as_ref(), Self::codeable_concept);
        self.each(path, "bodySite", &r.body_site, Self::codeable_concept);
        self.required(path, "subject", r.subject.is_some());
        self.opt(path, "subject", r.subject.as_ref(), Self::reference);
        self.opt(path, "encounter", r.encounter.as_ref(), Self::reference);
        self.at_most_one(
            path,
            "onset[x]",
            &[
                r.onset_date_time.is_some(),
                r.onset_age.is_some(),
                r.onset_period.is_some(),
                r.onset_string.is_some(),
            ],
        );
        self.date_time(path, "onsetDateTime", r.onset_date_time.as_ref());
        self.opt(path, "onsetAge", r.onset_age.as_ref(), Self::quantity);
        self.opt(path, "onsetPeriod", r.onset_period.as_ref(), Self::period);
        self.at_most_one(
            path,
            "abatement[x]",
            &[
                r.abatement_date_time.is_some(),
                r.abatement_string.is_some(),
            ],
        );
        self.date_time(path, "abatementDateTime", r.abatement_date_time.as_ref());
        self.date_time(path, "recordedDate", r.recorded_date.as_ref());
        self.opt(path, "recorder", r.recorder.as_ref(), Self::reference);
        self.opt(path, "asserter", r.asserter.as_ref(), Self::reference);
        self.each(path, "note", &r.note, Self::annotation);
    }

    fn medication_request(&mut self, path: &Path<'_>, r: &MedicationRequest) {
        self.domain(
            path,
            r.id.as_ref(),
            r.meta.as_ref(),
            r.text.as_ref(),
            &r.extension,
        );
        self.each(path, "identifier", &r.identifier, Self::identifier);
        self.required_code(path, "status", r.status.as_ref(), MEDICATION_REQUEST_STATUS);
        self.required_code(path, "intent", r.intent.as_ref(), MEDICATION_REQUEST_INTENT);
        self.each(path, "category", &r.category, Self::codeable_concept);
        self.code_in(path, "priority", r.priority.as_ref(), REQUEST_PRIORITY);
        let meds = [
            r.medication_codeable_concept.is_some(),
            r.medication_reference.is_some(),
        ];
        self.required(path, "medication[x]", meds.iter().any(|m| *m));
        self.at_most_one(path, "medication[x]", &meds);
        self.opt(
            path,
            "medicationCodeableConcept",
            r.medication_codeable_concept.as_ref(),
            Self::codeable_concept,
        );
        self.opt(
            path,
            "medicationReference",
            r.medication_reference.as_ref(),
            Self::reference,
        );
        self.required(path, "subject", r.subject.is_some());
        self.opt(path, "subject", r.subject.as_ref(), Self::reference);
        self.opt(path, "encounter", r.encounter.as_ref(), Self::reference);
        self.date_time(path, "authoredOn", r.authored_on.as_ref());
        self.opt(path, "requester", r.requester.as_ref(), Self::reference);
        self.each(path, "reasonCode", &r.reason_code, Self::codeable_concept);
        self.each(
            path,
            "reasonReference",
            &r.reason_reference,
            Self::reference,
        );
        self.each(path, "note", &r.note, Self::annotation);
        self.each(
            path,
            "dosageInstruction",
            &r.dosage_instruction,
            Self::dosage,
        );
        if let Some(d) = &r.dispense_request {
            let dp = self.child_path(path, "dispenseRequest", None);
            self.opt(
                &dp,
                "validityPeriod",
                d.validity_period.as_ref(),
                Self::period,
            );
            self.opt(&dp, "quantity", d.quantity.as_ref(), Self::quantity);
            self.opt(
                &dp,
                "expectedSupplyDuration",
                d.expected_supply_duration.as_ref(),
                Self::quantity,
            );
        }
    }

    fn medication_dispense(&mut self, path: &Path<'_>, r: &MedicationDispense) {
        self.domain(
            path,
            r.id.as_ref(),
            r.meta.as_ref(),
            r.text.as_ref(),
            &r.extension,
        );
        self.each(path, "identifier", &r.identifier, Self::identifier);
        self.required_code(
            path,
            "status",
            r.status.as_ref(),
            MEDICATION_DISPENSE_STATUS,
        );
        self.opt(
            path,
            "category",
            r.category.as_ref(),
            Self::codeable_concept,
        );
        let meds = [
            r.medication_codeable_concept.is_some(),
            r.medication_reference.is_some(),
        ];
        self.required(path, "medication[x]", meds.iter().any(|m| *m));
        self.at_most_one(path, "medication[x]", &meds);
        self.opt(
            path,
            "medicationCodeableConcept",
            r.medication_codeable_concept.as_ref(),
            Self::codeable_concept,
        );
        self.opt(
            path,
            "medicationReference",
            r.medication_reference.as_ref(),
            Self::reference,
        );
        self.opt(path, "subject", r.subject.as_ref(), Self::reference);
        self.opt(path, "context", r.context.as_ref(), Self::reference);
        self.each(
            path,
            "authorizingPrescription",
            &r.authorizing_prescription,
            Self::reference,
        );
        self.opt(path, "type", r.type_.as_ref(), Self::codeable_concept);
        self.opt(path, "quantity", r.quantity.as_ref(), Self::quantity);
        self.opt(path, "daysSupply", r.days_supply.as_ref(), Self::quantity);
        self.date_time(path, "whenPrepared", r.when_prepared.as_ref());
        self.date_time(path, "whenHandedOver", r.when_handed_over.as_ref());
        if let (Some(p), Some(h)) = (r.when_prepared.as_deref(), r.when_handed_over.as_deref())
            && let (Ok(p), Ok(h)) = (parse_date_time(p), parse_date_time(h))
            && h.date() < p.date()
        {
            self.issue(path, "mdd-1: whenHandedOver cannot be before whenPrepared");
        }
        self.each(path, "note", &r.note, Self::annotation);
        self.each(
            path,
            "dosageInstruction",
            &r.dosage_instruction,
            Self::dosage,
        );
    }

    fn observation(&mut self, path: &Path<'_>, r: &Observation) {
        self.domain(
            path,
            r.id.as_ref(),
            r.meta.as_ref(),
            r.text.as_ref(),
            &r.extension,
        );
        self.each(path, "identifier", &r.identifier, Self::identifier);
        self.each(path, "basedOn", &r.based_on, Self::reference);
        self.required_code(path, "status", r.status.as_ref(), OBSERVATION_STATUS);
        self.each(path, "category", &r.category, Self::codeable_concept);
        self.required(path, "code", r.code.is_some());
        self.opt(path, "code", r.code.as_ref(), Self::codeable_concept);
        self.opt(path, "subject", r.subject.as_ref(), Self::reference);
        self.opt(path, "encounter", r.encounter.as_ref(), Self::reference);
        self.at_most_one(
            path,
            "effective[x]",
            &[
                r.effective_date_time.is_some(),
                r.effective_period.is_some(),
            ],
        );
        self.date_time(path, "effectiveDateTime", r.effective_date_time.as_ref());
        self.opt(
            path,
            "effectivePeriod",
            r.effective_period.as_ref(),
            Self::period,
        );
        self.instant(path, "issued", r.issued.as_ref());
        self.each(path, "performer", &r.performer, Self::reference);
        let values = r.value_elements();
        if values.len() > 1 {
            self.issue(
                join(path, "value[x]"),
                "only one of the choice types may be present (max 1)",
            );
        }
        self.opt(
            path,
            "valueQuantity",
            r.value_quantity.as_ref(),
            Self::quantity,
        );
        self.opt(
            path,
            "valueCodeableConcept",
            r.value_codeable_concept.as_ref(),
            Self::codeable_concept,
        );
        self.string(path, "valueString", r.value_string.as_ref());
        self.opt(path, "valueRange", r.value_range.as_ref(), Self::range);
        if r.data_absent_reason.is_some() && !values.is_empty() {
            self.issue(
                join(path, "dataAbsentReason"),
                "obs-6: dataAbsentReason SHALL only be present if Observation.value[x] is not present",
            );
        }
        self.opt(
            path,
            "dataAbsentReason",
            r.data_absent_reason.as_ref(),
            Self::codeable_concept,
        );
        self.each(
            path,
            "interpretation",
            &r.interpretation,
            Self::codeable_concept,
        );
        self.each(path, "note", &r.note, Self::annotation);
        self.opt(
            path,
            "bodySite",
            r.body_site.as_ref(),
            Self::codeable_concept,
        );
        self.opt(path, "method", r.method.as_ref(), Self::codeable_concept);
        self.opt(path, "specimen", r.specimen.as_ref(), Self::reference);
        self.each(
            path,
            "referenceRange",
            &r.reference_range,
            Self::reference_range,
        );
        self.each(path, "hasMember", &r.has_member, Self::reference);
        for (i, c) in r.component.iter().enumerate() {
            let cp = self.child_path(path, "component", Some(i));
            self.required(&cp, "code", c.code.is_some());
            self.opt(&cp, "code", c.code.as_ref(), Self::codeable_concept);
            let values = [
                c.value_quantity.is_some(),
                c.value_codeable_concept.is_some(),
                c.value_string.is_some(),
            ];
            self.at_most_one(&cp, "value[x]", &values);
            if c.data_absent_reason.is_some() && values.iter().any(|v| *v) {
                self.issue(
                    join(&cp, "dataAbsentReason"),
                    "obs-6: dataAbsentReason SHALL only be present if value[x] is not present",
                );
            }
            self.opt(
                &cp,
                "valueQuantity",
                c.value_quantity.as_ref(),
                Self::quantity,
            );
            self.opt(
                &cp,
                "valueCodeableConcept",
                c.value_codeable_concept.as_ref(),
                Self::codeable_concept,
            );
            self.each(
                &cp,
                "interpretation",
                &c.interpretation,
                Self::codeable_concept,
            );
            self.each(
                &cp,
                "referenceRange",
                &c.reference_range,
                Self::reference_range,
            );
        }
    }

    fn allergy(&mut self, path: &Path<'_>, r: &AllergyIntolerance) {
        self.domain(
            path,
            r.id.as_ref(),
            r.meta.as_ref(),
            r.text.as_ref(),
            &r.extension,
        );
        self.each(path, "identifier", &r.identifier, Self::identifier);
        let clinical = self.status_coding(
            path,
            "clinicalStatus",
            r.clinical_status.as_ref(),
            ALLERGY_CLINICAL_SYSTEM,
            ALLERGY_CLINICAL,
        );
        let verification = self.status_coding(
            path,
            "verificationStatus",
            r.verification_status.as_ref(),
            ALLERGY_VERIFICATION_SYSTEM,
            ALLERGY_VERIFICATION,
        );
        let in_error = verification.as_deref() == Some("entered-in-error");
        if !in_error && r.clinical_status.is_none() {
            self.issue(
                join(path, "clinicalStatus"),
                "ait-1: clinicalStatus SHALL be present if verificationStatus is not entered-in-error",
            );
        }
        if in_error && clinical.is_some() {
            self.issue(
                join(path, "clinicalStatus"),
                "ait-2: clinicalStatus SHALL NOT be present if verificationStatus is entered-in-error",
            );
        }
        self.code_in(path, "type", r.type_.as_ref(), ALLERGY_TYPE);
        for (i, c) in r.category.iter().enumerate() {
            if !ALLERGY_CATEGORY.contains(&&**c) {
                self.issue(
                    index(path, "category", i),
                    format!(
                        "code is not in the required value set ({})",
                        ALLERGY_CATEGORY.join(" | ")
                    ),
                );
            }
        }
        self.code_in(
            path,
            "criticality",
            r.criticality.as_ref(),
            ALLERGY_CRITICALITY,
        );
        self.opt(path, "code", r.code.as_ref(), Self::codeable_concept);
        self.required(path, "patient", r.patient.is_some());
        self.opt(path, "patient", r.patient.as_ref(), Self::reference);
        self.opt(path, "encounter", r.encounter.as_ref(), Self::reference);
        self.date_time(path, "onsetDateTime", r.onset_date_time.as_ref());
        self.date_time(path, "recordedDate", r.recorded_date.as_ref());
        self.opt(path, "recorder", r.recorder.as_ref(), Self::reference);
        self.opt(path, "asserter", r.asserter.as_ref(), Self::reference);
        self.date_time(path, "lastOccurrence", r.last_occurrence.as_ref());
        self.each(path, "note", &r.note, Self::annotation);
        for (i, reaction) in r.reaction.iter().enumerate() {
            let rp = self.child_path(path, "reaction", Some(i));
            self.opt(
                &rp,
                "substance",
                reaction.substance.as_ref(),
                Self::codeable_concept,
            );
            self.required(&rp, "manifestation", !reaction.manifestation.is_empty());
            self.each(
                &rp,
                "manifestation",
                &reaction.manifestation,
                Self::codeable_concept,
            );
            self.date_time(&rp, "onset", reaction.onset.as_ref());
            self.code_in(
                &rp,
                "severity",
                reaction.severity.as_ref(),
                REACTION_SEVERITY,
            );
        }
    }

    fn procedure(&mut self, path: &Path<'_>, r: &Procedure) {
        self.domain(
            path,
            r.id.as_ref(),
            r.meta.as_ref(),
            r.text.as_ref(),
            &r.extension,
        );
        self.each(path, "identifier", &r.identifier, Self::identifier);
        self.required_code(path, "status", r.status.as_ref(), PROCEDURE_STATUS);
        self.opt(
            path,
            "category",
            r.category.as_ref(),
            Self::codeable_concept,
        );
        self.opt(path, "code", r.code.as_ref(), Self::codeable_concept);
        self.required(path, "subject", r.subject.is_some());
        self.opt(path, "subject", r.subject.as_ref(), Self::reference);
        self.opt(path, "encounter", r.encounter.as_ref(), Self::reference);
        self.at_most_one(
            path,
            "performed[x]",
            &[
                r.performed_date_time.is_some(),
                r.performed_period.is_some(),
            ],
        );
        self.date_time(path, "performedDateTime", r.performed_date_time.as_ref());
        self.opt(
            path,
            "performedPeriod",
            r.performed_period.as_ref(),
            Self::period,
        );
        self.opt(path, "recorder", r.recorder.as_ref(), Self::reference);
        self.each(path, "reasonCode", &r.reason_code, Self::codeable_concept);
        self.each(
            path,
            "reasonReference",
            &r.reason_reference,
            Self::reference,
        );
        self.each(path, "bodySite", &r.body_site, Self::codeable_concept);
        self.opt(path, "outcome", r.outcome.as_ref(), Self::codeable_concept);
        self.each(path, "note", &r.note, Self::annotation);
    }

    fn section(&mut self, path: &Path<'_>, s: &CompositionSection) {
        self.string(path, "title", s.title.as_ref());
        self.opt(path, "code", s.code.as_ref(), Self::codeable_concept);
        self.each(path, "author", &s.author, Self::reference);
        self.opt(path, "focus", s.focus.as_ref(), Self::reference);
        self.opt(path, "text", s.text.as_ref(), Self::narrative);
        self.code_in(path, "mode", s.mode.as_ref(), SECTION_MODE);
        self.opt(
            path,
            "orderedBy",
            s.ordered_by.as_ref(),
            Self::codeable_concept,
        );
        self.each(path, "entry", &s.entry, Self::reference);
        self.opt(
            path,
            "emptyReason",
            s.empty_reason.as_ref(),
            Self::codeable_concept,
        );
        if s.text.is_none() && s.entry.is_empty() && s.section.is_empty() {
            self.issue(
                path,
                "cmp-1: a section must contain at least one of text, entries, or sub-sections",
            );
        }
        if s.empty_reason.is_some() && !s.entry.is_empty() {
            self.issue(
                path,
                "cmp-2: a section can only have an emptyReason if it is empty",
            );
        }
        self.each(path, "section", &s.section, Self::section);
    }

    fn composition(&mut self, path: &Path<'_>, r: &Composition) {
        self.domain(
            path,
            r.id.as_ref(),
            r.meta.as_ref(),
            r.text.as_ref(),
            &r.extension,
        );
        self.opt(path, "identifier", r.identifier.as_ref(), Self::identifier);
        self.required_code(path, "status", r.status.as_ref(), COMPOSITION_STATUS);
        self.required(path, "type", r.type_.is_some());
        self.opt(path, "type", r.type_.as_ref(), Self::codeable_concept);
        self.each(path, "category", &r.category, Self::codeable_concept);
        self.opt(path, "subject", r.subject.as_ref(), Self::reference);
        self.opt(path, "encounter", r.encounter.as_ref(), Self::reference);
        self.required(path, "date", r.date.is_some());
        self.date_time(path, "date", r.date.as_ref());
        self.required(path, "author", !r.author.is_empty());
        self.each(path, "author", &r.author, Self::reference);
        self.required(path, "title", r.title.is_some());
        self.string(path, "title", r.title.as_ref());
        self.code(path, "confidentiality", r.confidentiality.as_ref());
        for (i, a) in r.attester.iter().enumerate() {
            let ap = self.child_path(path, "attester", Some(i));
            self.required_code(&ap, "mode", a.mode.as_ref(), COMPOSITION_ATTESTATION_MODE);
            self.date_time(&ap, "time", a.time.as_ref());
            self.opt(&ap, "party", a.party.as_ref(), Self::reference);
        }
        self.opt(path, "custodian", r.custodian.as_ref(), Self::reference);
        self.each(path, "section", &r.section, Self::section);
    }

    fn document_reference(&mut self, path: &Path<'_>, r: &DocumentReference) {
        self.domain(
            path,
            r.id.as_ref(),
            r.meta.as_ref(),
            r.text.as_ref(),
            &r.extension,
        );
        self.opt(
            path,
            "masterIdentifier",
            r.master_identifier.as_ref(),
            Self::identifier,
        );
        self.each(path, "identifier", &r.identifier, Self::identifier);
        self.required_code(path, "status", r.status.as_ref(), DOCUMENT_REFERENCE_STATUS);
        self.code_in(path, "docStatus", r.doc_status.as_ref(), COMPOSITION_STATUS);
        self.opt(path, "type", r.type_.as_ref(), Self::codeable_concept);
        self.each(path, "category", &r.category, Self::codeable_concept);
        self.opt(path, "subject", r.subject.as_ref(), Self::reference);
        self.instant(path, "date", r.date.as_ref());
        self.each(path, "author", &r.author, Self::reference);
        self.opt(
            path,
            "authenticator",
            r.authenticator.as_ref(),
            Self::reference,
        );
        self.opt(path, "custodian", r.custodian.as_ref(), Self::reference);
        self.each(
            path,
            "securityLabel",
            &r.security_label,
            Self::codeable_concept,
        );
        self.required(path, "content", !r.content.is_empty());
        for (i, c) in r.content.iter().enumerate() {
            let cp = self.child_path(path, "content", Some(i));
            self.required(&cp, "attachment", c.attachment.is_some());
            self.opt(&cp, "attachment", c.attachment.as_ref(), Self::attachment);
            self.opt(&cp, "format", c.format.as_ref(), Self::coding);
        }
        if let Some(c) = &r.context {
            let cp = self.child_path(path, "context", None);
            self.each(&cp, "encounter", &c.encounter, Self::reference);
            self.each(&cp, "event", &c.event, Self::codeable_concept);
            self.opt(&cp, "period", c.period.as_ref(), Self::period);
            self.opt(
                &cp,
                "facilityType",
                c.facility_type.as_ref(),
                Self::codeable_concept,
            );
            self.opt(
                &cp,
                "practiceSetting",
                c.practice_setting.as_ref(),
                Self::codeable_concept,
            );
            self.opt(
                &cp,
                "sourcePatientInfo",
                c.source_patient_info.as_ref(),
                Self::reference,
            );
            self.each(&cp, "related", &c.related, Self::reference);
        }
    }

    fn organization(&mut self, path: &Path<'_>, r: &Organization) {
        self.domain(
            path,
            r.id.as_ref(),
            r.meta.as_ref(),
            r.text.as_ref(),
            &r.extension,
        );
        self.each(path, "identifier", &r.identifier, Self::identifier);
        self.each(path, "type", &r.type_, Self::codeable_concept);
        self.string(path, "name", r.name.as_ref());
        if r.name.is_none() && r.identifier.is_empty() {
            self.issue(
                path,
                "org-1: the organization SHALL at least have a name or an identifier",
            );
        }
        self.each(path, "telecom", &r.telecom, Self::contact_point);
        for (i, a) in r.address.iter().enumerate() {
            let ap = self.child_path(path, "address", Some(i));
            if a.use_.as_deref() == Some("home") {
                self.issue(
                    &ap,
                    "org-2: an address of an organization can never be of use 'home'",
                );
            }
            self.address(&ap, a);
        }
        self.opt(path, "partOf", r.part_of.as_ref(), Self::reference);
    }

    fn practitioner(&mut self, path: &Path<'_>, r: &Practitioner) {
        self.domain(
            path,
            r.id.as_ref(),
            r.meta.as_ref(),
            r.text.as_ref(),
            &r.extension,
        );
        self.each(path, "identifier", &r.identifier, Self::identifier);
        self.each(path, "name", &r.name, Self::human_name);
        self.each(path, "telecom", &r.telecom, Self::contact_point);
        self.each(path, "address", &r.address, Self::address);
        self.code_in(path, "gender", r.gender.as_ref(), GENDER);
        self.date(path, "birthDate", r.birth_date.as_ref());
    }

    fn bundle(&mut self, path: &Path<'_>, r: &Bundle) {
        self.domain(path, r.id.as_ref(), r.meta.as_ref(), None, &[]);
        self.opt(path, "identifier", r.identifier.as_ref(), Self::identifier);
        self.required_code(path, "type", r.type_.as_ref(), BUNDLE_TYPE);
        self.instant(path, "timestamp", r.timestamp.as_ref());
        let kind = r.type_.as_deref().unwrap_or("");
        if r.total.is_some() && !matches!(kind, "searchset" | "history") {
            self.issue(
                join(path, "total"),
                "bdl-1: total only when a search or history",
            );
        }
        if kind == "document" {
            let identified = r
                .identifier
                .as_ref()
                .is_some_and(|i| i.system.is_some() && i.value.is_some());
            if !identified {
                self.issue(
                    join(path, "identifier"),
                    "bdl-9: a document must have an identifier with a system and a value",
                );
            }
            if r.timestamp.is_none() {
                self.issue(
                    join(path, "timestamp"),
                    "bdl-10: a document must have a date",
                );
            }
            let first_is_composition = r
                .entry
                .first()
                .and_then(|e| e.resource.as_ref())
                .is_some_and(|res| matches!(res, Resource::Composition(_)));
            if !first_is_composition {
                self.issue(
                    join(path, "entry[0]"),
                    "bdl-11: a document must have a Composition as the first resource",
                );
            }
        }
        if kind == "message" {
            let first_is_header = r
                .entry
                .first()
                .and_then(|e| e.resource.as_ref())
                .is_some_and(|res| res.resource_type() == "MessageHeader");
            if !first_is_header {
                self.issue(
                    join(path, "entry[0]"),
                    "bdl-12: a message must have a MessageHeader as the first resource",
                );
            }
        }
        let needs_request = matches!(kind, "batch" | "transaction" | "history");
        let mut full_urls = HashSet::new();
        for (i, e) in r.entry.iter().enumerate() {
            let ep = self.child_path(path, "entry", Some(i));
            if let Some(url) = e.full_url.as_deref() {
                if !is_fhir_uri(url) {
                    self.issue(
                        join(&ep, "fullUrl"),
                        "uri must be non-empty without whitespace",
                    );
                }
                if url.contains("/_history/") {
                    self.issue(
                        join(&ep, "fullUrl"),
                        "bdl-8: fullUrl cannot be a version specific reference",
                    );
                }
                let version = e
                    .resource
                    .as_ref()
                    .and_then(resource_meta_version)
                    .unwrap_or_default();
                if !full_urls.insert((url, version)) {
                    self.issue(
                        join(&ep, "fullUrl"),
                        "bdl-7: fullUrl must be unique in a bundle, or else entries with the same fullUrl must have different meta.versionId",
                    );
                }
            }
            let has_response = e.extra.contains_key("response");
            if e.resource.is_none() && e.request.is_none() && !has_response {
                self.issue(
                    &ep,
                    "bdl-5: must be a resource unless there's a request or response",
                );
            }
            if e.extra.contains_key("search") && kind != "searchset" {
                self.issue(
                    join(&ep, "search"),
                    "bdl-2: entry.search only when a search",
                );
            }
            if needs_request && e.request.is_none() {
                self.issue(
                    join(&ep, "request"),
                    "bdl-3: entry.request mandatory for batch/transaction/history",
                );
            }
            if !needs_request && e.request.is_some() {
                self.issue(
                    join(&ep, "request"),
                    "bdl-3: entry.request allowed only for batch/transaction/history",
                );
            }
            if has_response
                && !matches!(kind, "batch-response" | "transaction-response" | "history")
            {
                self.issue(
                    join(&ep, "response"),
                    "bdl-4: entry.response only for batch-response/transaction-response/history",
                );
            }
            if let Some(req) = &e.request {
                let rp = self.child_path(&ep, "request", None);
                self.required_code(&rp, "method", req.method.as_ref(), HTTP_VERB);
                self.required(&rp, "url", req.url.is_some());
                self.uri(&rp, "url", req.url.as_ref());
            }
            if let Some(res) = &e.resource {
                let res_path = self.child_path(&ep, "resource", None);
                // Within a bundle the path keeps the entry position, and type-specific paths
                // continue from it (e.g. Bundle.entry[1].resource.status).
                self.resource(&res_path, res);
            }
        }
    }
}

fn resource_meta_version(resource: &Resource) -> Option<String> {
    let meta = match resource {
        Resource::Patient(r) => r.meta.as_ref(),
        Resource::Encounter(r) => r.meta.as_ref(),
        Resource::Condition(r) => r.meta.as_ref(),
        Resource::MedicationRequest(r) => r.meta.as_ref(),
        Resource::MedicationDispense(r) => r.meta.as_ref(),
        Resource::Observation(r) => r.meta.as_ref(),
        Resource::AllergyIntolerance(r) => r.meta.as_ref(),
        Resource::Procedure(r) => r.meta.as_ref(),
        Resource::Composition(r) => r.meta.as_ref(),
        Resource::DocumentReference(r) => r.meta.as_ref(),
        Resource::Organization(r) => r.meta.as_ref(),
        Resource::Practitioner(r) => r.meta.as_ref(),
        Resource::Bundle(r) => r.meta.as_ref(),
        Resource::Other { json, .. } => {
            return json
                .get("meta")
                .and_then(|m| m.get("versionId"))
                .and_then(|v| v.as_str())
                .map(str::to_owned);
        }
    };
    meta.and_then(|m| m.version_id.as_deref().map(str::to_owned))
}

#[cfg(test)]
mod primitive_tests {
    use super::*;

    /// The single-pass checks agree with their definitions by characters.
    #[test]
    fn fast_primitive_checks_agree_with_their_definitions() {
        let samples = [
            "",
            " ",
            "a",
            "a b",
            "a  b",
            " a",
            "a ",
            "\ta",
            "a\tb",
            "a\nb",
            "a\u{b}b",
            "a\u{c}",
            "abc-12.3",
            "http://x/y",
            "http://x/ y",
            "urn:uuid:1",
            "あ",
            "あ い",
            "あ  い",
            " あ",
            "あ\u{3000}",
            "x\u{a0}y",
            "\u{85}",
            "日本\tx",
            "a\u{1f}b",
            "  ",
        ];
        for s in samples {
            let code = !s.is_empty()
                && s.trim() == s
                && !s.contains("  ")
                && !s.chars().any(|c| c.is_whitespace() && c != ' ');
            assert_eq!(is_fhir_code(s), code, "code {s:?}");
            let uri = !s.is_empty() && !s.chars().any(char::is_whitespace);
            assert_eq!(is_fhir_uri(s), uri, "uri {s:?}");
            assert_eq!(is_fhir_string(s), !s.trim().is_empty(), "string {s:?}");
        }
    }

    /// Paths are written out only for issues, and as before (`parent.element[i]`).
    #[test]
    fn issue_paths_are_written_in_full() {
        let r = Resource::from_json_str(
            r#"{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:a","resource":{"resourceType":"Condition","id":"c","code":{"coding":[{"system":"a b","code":"x"}]},"subject":{"reference":"Patient/p"}}}]}"#,
        )
        .unwrap();
        let paths: Vec<String> = validate(&r).into_iter().map(|i| i.path).collect();
        assert!(
            paths.contains(&"Bundle.entry[0].resource.code.coding[0].system".to_owned()),
            "{paths:?}"
        );
    }
}
