//! FHIR R4 general-purpose data types used by JP Core / JP-CLINS.
//!
//! Every struct keeps the elements kiban does not model in `extra`, so a parse followed by a
//! serialization loses nothing.

use kiban_model::{CodeSystem, canonical_code_system};

/// Whether an optional element is absent and must be left out of the JSON.
///
/// FHIR forbids empty objects, empty arrays and `null`, so absent elements are skipped.
pub trait Absent {
    /// True when the element carries nothing and is not serialized.
    fn is_absent(&self) -> bool;
}

impl<T> Absent for Option<T> {
    fn is_absent(&self) -> bool {
        self.is_none()
    }
}

impl<T> Absent for Vec<T> {
    fn is_absent(&self) -> bool {
        self.is_empty()
    }
}

/// Declares a FHIR element struct: camelCase names, absent elements skipped, unknown elements kept.
///
/// Deserialization is written out here rather than derived: serde's `flatten` (which would keep
/// unknown elements) buffers every object into an intermediate tree first, which made parsing
/// several times slower. The visitor below reads each key once, fills the modelled element it
/// names (`birth_date` ↔ `birthDate`, `type_` ↔ `type`) and keeps any other element verbatim.
/// A `resourceType` key is skipped when `$skip_resource_type` is true (resources: the type is the
/// Rust type) and kept in `extra` otherwise.
macro_rules! fhir_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $field:ident : $ty:ty,
            )*
        }
    ) => {
        $crate::datatypes::fhir_struct!(@define false; $(#[$meta])* pub struct $name { $($(#[$fmeta])* $field: $ty,)* });
    };
    (
        @define $skip_resource_type:expr;
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $field:ident : $ty:ty,
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            $(
                $(#[$fmeta])*
                #[serde(skip_serializing_if = "crate::datatypes::Absent::is_absent")]
                pub $field: $ty,
            )*
            /// Elements kiban does not model (including `_element` primitive extensions), kept verbatim.
            #[serde(flatten)]
            pub extra: serde_json::Map<String, serde_json::Value>,
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct ElementVisitor;
                impl<'de> serde::de::Visitor<'de> for ElementVisitor {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(concat!("a FHIR ", stringify!($name), " object"))
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<$name, A::Error> {
                        let mut out = $name::default();
                        while let Some(key) = map.next_key::<$crate::datatypes::JsonKey<'de>>()? {
                            let key = key.0;
                            $(
                                if key == const { $crate::datatypes::json_name!($field) } {
                                    if !$crate::datatypes::Absent::is_absent(&out.$field) {
                                        return Err(serde::de::Error::duplicate_field(
                                            const { $crate::datatypes::json_name!($field) },
                                        ));
                                    }
                                    out.$field = map.next_value()?;
                                    continue;
                                }
                            )*
                            if $skip_resource_type && key == "resourceType" {
                                map.next_value::<serde::de::IgnoredAny>()?;
                                continue;
                            }
                            let value: serde_json::Value = map.next_value()?;
                            out.extra.insert(key.into_owned(), value);
                        }
                        Ok(out)
                    }
                }
                deserializer.deserialize_map(ElementVisitor)
            }
        }
    };
}
pub(crate) use fhir_struct;

/// The JSON name of a Rust field name: lower camel case, a trailing `_` (for `type_`, `use_`,
/// `class_`, which are Rust keywords) dropped. Evaluated at compile time.
macro_rules! json_name {
    ($field:ident) => {{
        const SNAKE: &str = stringify!($field);
        const LEN: usize = $crate::datatypes::camel_len(SNAKE);
        const BYTES: [u8; LEN] = $crate::datatypes::camel_bytes::<LEN>(SNAKE);
        match std::str::from_utf8(&BYTES) {
            Ok(name) => name,
            Err(_) => panic!("field names are ASCII"),
        }
    }};
}
pub(crate) use json_name;

/// Length of the camelCase form of an ASCII snake_case name.
pub(crate) const fn camel_len(snake: &str) -> usize {
    let bytes = snake.as_bytes();
    let mut i = 0;
    let mut len = 0;
    while i < bytes.len() {
        if bytes[i] != b'_' {
            len += 1;
        }
        i += 1;
    }
    len
}

/// The camelCase form of an ASCII snake_case name (`N` from [`camel_len`]).
pub(crate) const fn camel_bytes<const N: usize>(snake: &str) -> [u8; N] {
    let bytes = snake.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    let mut o = 0;
    let mut upper_next = false;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'_' {
            upper_next = true;
        } else {
            out[o] = if upper_next {
                b.to_ascii_uppercase()
            } else {
                b
            };
            upper_next = false;
            o += 1;
        }
        i += 1;
    }
    out
}

/// An object key, borrowed from the input when it has no escapes (no allocation per key).
pub(crate) struct JsonKey<'de>(pub std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for JsonKey<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> serde::de::Visitor<'de> for KeyVisitor {
            type Value = JsonKey<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an element name")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(JsonKey(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(JsonKey(std::borrow::Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(JsonKey(std::borrow::Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// URL of the ISO 21090 name-representation extension used by JP Core on `HumanName`.
pub const NAME_REPRESENTATION_EXTENSION_URL: &str =
    "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation";

fhir_struct! {
    /// An extension (`Extension`): a URL and one `value[x]` or nested extensions.
    pub struct Extension {
        /// Identifies the meaning of the extension (required).
        url: Option<String>,
        /// Nested extensions (complex extension).
        extension: Vec<Extension>,
        /// `valueCode`.
        value_code: Option<String>,
        /// `valueString`.
        value_string: Option<String>,
        /// `valueBoolean`.
        value_boolean: Option<bool>,
        /// `valueInteger`.
        value_integer: Option<i64>,
        /// `valueDecimal`.
        value_decimal: Option<f64>,
        /// `valueDate`.
        value_date: Option<String>,
        /// `valueDateTime`.
        value_date_time: Option<String>,
        /// `valueUri`.
        value_uri: Option<String>,
        /// `valueCoding`.
        value_coding: Option<Coding>,
        /// `valueCodeableConcept`.
        value_codeable_concept: Option<CodeableConcept>,
        /// `valueIdentifier`.
        value_identifier: Option<Identifier>,
        /// `valueReference`.
        value_reference: Option<Reference>,
        /// `valuePeriod`.
        value_period: Option<Period>,
        /// `valueQuantity`.
        value_quantity: Option<Quantity>,
    }
}

impl Extension {
    /// A simple extension carrying a `valueCode`.
    pub fn code(url: &str, code: &str) -> Self {
        Extension {
            url: Some(url.to_owned()),
            value_code: Some(code.to_owned()),
            ..Default::default()
        }
    }

    /// A simple extension carrying a `valueCodeableConcept`.
    pub fn codeable_concept(url: &str, concept: CodeableConcept) -> Self {
        Extension {
            url: Some(url.to_owned()),
            value_codeable_concept: Some(concept),
            ..Default::default()
        }
    }

    /// JSON names of the `value[x]` elements present (modelled or kept in `extra`).
    pub fn value_elements(&self) -> Vec<String> {
        let mut names = Vec::new();
        let modelled = [
            ("valueCode", self.value_code.is_some()),
            ("valueString", self.value_string.is_some()),
            ("valueBoolean", self.value_boolean.is_some()),
            ("valueInteger", self.value_integer.is_some()),
            ("valueDecimal", self.value_decimal.is_some()),
            ("valueDate", self.value_date.is_some()),
            ("valueDateTime", self.value_date_time.is_some()),
            ("valueUri", self.value_uri.is_some()),
            ("valueCoding", self.value_coding.is_some()),
            (
                "valueCodeableConcept",
                self.value_codeable_concept.is_some(),
            ),
            ("valueIdentifier", self.value_identifier.is_some()),
            ("valueReference", self.value_reference.is_some()),
            ("valuePeriod", self.value_period.is_some()),
            ("valueQuantity", self.value_quantity.is_some()),
        ];
        names.extend(
            modelled
                .iter()
                .filter(|(_, present)| *present)
                .map(|(name, _)| (*name).to_owned()),
        );
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
    /// A reference to a code defined by a terminology system (`Coding`).
    pub struct Coding {
        /// Identity of the terminology system (URI).
        system: Option<String>,
        /// Version of the system.
        version: Option<String>,
        /// Symbol in syntax defined by the system.
        code: Option<String>,
        /// Representation defined by the system.
        display: Option<String>,
        /// If this coding was chosen directly by the user.
        user_selected: Option<bool>,
    }
}

impl Coding {
    /// A coding in a recognized system, written with its canonical URL.
    pub fn new(system: CodeSystem, code: &str, display: &str) -> Self {
        Self::with_system(system.url(), code, display)
    }

    /// A coding in an arbitrary system URI.
    pub fn with_system(system: &str, code: &str, display: &str) -> Self {
        Coding {
            system: Some(system.to_owned()),
            code: Some(code.to_owned()),
            display: (!display.is_empty()).then(|| display.to_owned()),
            ..Default::default()
        }
    }

    /// The recognized code system of this coding, whichever URL or OID spelling it uses.
    pub fn code_system(&self) -> Option<CodeSystem> {
        self.system.as_deref().and_then(canonical_code_system)
    }

    /// Whether this coding belongs to `system` (any spelling).
    pub fn is_in(&self, system: CodeSystem) -> bool {
        self.code_system() == Some(system)
    }

    /// Whether this coding has exactly this system URI and code.
    pub fn matches(&self, system: &str, code: &str) -> bool {
        self.system.as_deref() == Some(system) && self.code.as_deref() == Some(code)
    }
}

fhir_struct! {
    /// A concept defined by codings and/or text (`CodeableConcept`).
    pub struct CodeableConcept {
        /// Codes defined by terminology systems.
        coding: Vec<Coding>,
        /// Plain-text representation of the concept.
        text: Option<String>,
    }
}

impl CodeableConcept {
    /// A concept with one coding.
    pub fn from_coding(coding: Coding) -> Self {
        CodeableConcept {
            coding: vec![coding],
            ..Default::default()
        }
    }

    /// A concept with several codings and an optional text.
    pub fn from_codings(coding: Vec<Coding>, text: Option<&str>) -> Self {
        CodeableConcept {
            coding,
            text: text.map(str::to_owned),
            ..Default::default()
        }
    }

    /// A concept with one coding in an arbitrary system URI.
    pub fn simple(system: &str, code: &str, display: &str) -> Self {
        Self::from_coding(Coding::with_system(system, code, display))
    }

    /// The first coding in `system`, matching its URL and OID spellings.
    pub fn coding_in(&self, system: CodeSystem) -> Option<&Coding> {
        self.coding.iter().find(|c| c.is_in(system))
    }

    /// All codings in `system`, matching its URL and OID spellings.
    pub fn codings_in(&self, system: CodeSystem) -> impl Iterator<Item = &Coding> {
        self.coding.iter().filter(move |c| c.is_in(system))
    }

    /// The code of the first coding in `system`.
    pub fn code_in(&self, system: CodeSystem) -> Option<&str> {
        self.coding_in(system).and_then(|c| c.code.as_deref())
    }

    /// The first coding with exactly this system URI (for systems kiban does not alias).
    pub fn coding_with_system(&self, system: &str) -> Option<&Coding> {
        self.coding
            .iter()
            .find(|c| c.system.as_deref() == Some(system))
    }

    /// Whether any coding has this system URI and code.
    pub fn has_code(&self, system: &str, code: &str) -> bool {
        self.coding.iter().any(|c| c.matches(system, code))
    }
}

fhir_struct! {
    /// An identifier (`Identifier`), e.g. a provider patient id or an insurance member id.
    pub struct Identifier {
        /// usual | official | temp | secondary | old.
        #[serde(rename = "use")]
        use_: Option<String>,
        /// Description of the identifier.
        #[serde(rename = "type")]
        type_: Option<CodeableConcept>,
        /// The namespace of the value (URI).
        system: Option<String>,
        /// The value that is unique.
        value: Option<String>,
        /// Time period when the id is valid.
        period: Option<Period>,
        /// Organization that issued the id.
        assigner: Option<Box<Reference>>,
    }
}

impl Identifier {
    /// An identifier with a system and value.
    pub fn new(system: &str, value: &str) -> Self {
        Identifier {
            system: Some(system.to_owned()),
            value: Some(value.to_owned()),
            ..Default::default()
        }
    }
}

/// The JP Core name representation (ISO 21090 `EN.representation`) of a `HumanName`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameRepresentation {
    /// `IDE`: ideographic, i.e. kanji (漢字).
    Ideographic,
    /// `SYL`: syllabic, i.e. kana (カナ).
    Syllabic,
    /// `ABC`: alphabetic.
    Alphabetic,
}

impl NameRepresentation {
    /// The `valueCode` of the extension.
    pub fn code(self) -> &'static str {
        match self {
            NameRepresentation::Ideographic => "IDE",
            NameRepresentation::Syllabic => "SYL",
            NameRepresentation::Alphabetic => "ABC",
        }
    }

    /// Parses the `valueCode` of the extension.
    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "IDE" => Some(NameRepresentation::Ideographic),
            "SYL" => Some(NameRepresentation::Syllabic),
            "ABC" => Some(NameRepresentation::Alphabetic),
            _ => None,
        }
    }
}

fhir_struct! {
    /// A person's name (`HumanName`); JP Core carries kanji and kana as two names told apart
    /// by the name-representation extension.
    pub struct HumanName {
        /// Extensions, e.g. the name-representation extension.
        extension: Vec<Extension>,
        /// usual | official | temp | nickname | anonymous | old | maiden.
        #[serde(rename = "use")]
        use_: Option<String>,
        /// Full text representation, e.g. `山田 太郎`.
        text: Option<String>,
        /// Family name (surname).
        family: Option<String>,
        /// Given names.
        given: Vec<String>,
        /// Parts that come before the name.
        prefix: Vec<String>,
        /// Parts that come after the name.
        suffix: Vec<String>,
        /// Time period when the name was in use.
        period: Option<Period>,
    }
}

impl HumanName {
    /// A name in the given representation, with `text` = `family given` (JP Core style).
    pub fn with_representation(
        representation: NameRepresentation,
        family: &str,
        given: &str,
    ) -> Self {
        HumanName {
            extension: vec![Extension::code(
                NAME_REPRESENTATION_EXTENSION_URL,
                representation.code(),
            )],
            use_: Some("official".to_owned()),
            text: Some(format!("{family} {given}")),
            family: Some(family.to_owned()),
            given: vec![given.to_owned()],
            ..Default::default()
        }
    }

    /// The representation declared by the name-representation extension, if any.
    pub fn representation(&self) -> Option<NameRepresentation> {
        self.extension
            .iter()
            .find(|e| e.url.as_deref() == Some(NAME_REPRESENTATION_EXTENSION_URL))
            .and_then(|e| e.value_code.as_deref())
            .and_then(NameRepresentation::from_code)
    }

    /// Given names joined with a space.
    pub fn given_joined(&self) -> String {
        self.given.join(" ")
    }
}

fhir_struct! {
    /// A postal address (`Address`).
    pub struct Address {
        /// Extensions.
        extension: Vec<Extension>,
        /// home | work | temp | old | billing.
        #[serde(rename = "use")]
        use_: Option<String>,
        /// postal | physical | both.
        #[serde(rename = "type")]
        type_: Option<String>,
        /// Text representation of the address.
        text: Option<String>,
        /// Street name, number, building (in Japan: 町名・丁目・番地・号).
        line: Vec<String>,
        /// City / municipality (市区町村).
        city: Option<String>,
        /// District.
        district: Option<String>,
        /// Prefecture (都道府県).
        state: Option<String>,
        /// Postal code (郵便番号).
        postal_code: Option<String>,
        /// Country (ISO 3166 code), e.g. `JP`.
        country: Option<String>,
        /// Time period when the address was in use.
        period: Option<Period>,
    }
}

fhir_struct! {
    /// Contact details (`ContactPoint`), e.g. a phone number.
    pub struct ContactPoint {
        /// phone | fax | email | pager | url | sms | other.
        system: Option<String>,
        /// The actual contact point details.
        value: Option<String>,
        /// home | work | temp | old | mobile.
        #[serde(rename = "use")]
        use_: Option<String>,
        /// Preferred order of use (1 = highest).
        rank: Option<u32>,
        /// Time period when the contact point was in use.
        period: Option<Period>,
    }
}

fhir_struct! {
    /// A reference from one resource to another (`Reference`).
    pub struct Reference {
        /// Literal reference: relative, internal (`#id`), `urn:uuid:` or absolute URL.
        reference: Option<String>,
        /// Type the reference refers to.
        #[serde(rename = "type")]
        type_: Option<String>,
        /// Logical reference, when the literal reference is not known.
        identifier: Option<Box<Identifier>>,
        /// Text alternative for the resource.
        display: Option<String>,
    }
}

impl Reference {
    /// A literal reference.
    pub fn to(reference: &str) -> Self {
        Reference {
            reference: Some(reference.to_owned()),
            ..Default::default()
        }
    }

    /// The literal reference split into its type and id.
    pub fn target(&self) -> Option<crate::reference::ReferenceTarget> {
        self.reference
            .as_deref()
            .and_then(crate::reference::parse_reference)
    }
}

fhir_struct! {
    /// A time period (`Period`).
    pub struct Period {
        /// Starting time with inclusive boundary.
        start: Option<String>,
        /// End time with inclusive boundary, if not ongoing.
        end: Option<String>,
    }
}

impl Period {
    /// A period from `start` to an optional `end`.
    pub fn new(start: &str, end: Option<&str>) -> Self {
        Period {
            start: Some(start.to_owned()),
            end: end.map(str::to_owned),
            ..Default::default()
        }
    }
}

fhir_struct! {
    /// A measured amount (`Quantity`, also used for `Duration`, `Age`, `SimpleQuantity`).
    pub struct Quantity {
        /// Numerical value.
        value: Option<f64>,
        /// < | <= | >= | > (how to understand the value).
        comparator: Option<String>,
        /// Unit representation.
        unit: Option<String>,
        /// System that defines the coded unit form (UCUM: `http://unitsofmeasure.org`).
        system: Option<String>,
        /// Coded form of the unit.
        code: Option<String>,
    }
}

/// The UCUM system URI.
pub const UCUM: &str = "http://unitsofmeasure.org";

impl Quantity {
    /// A UCUM quantity whose display unit is `unit` and coded unit `ucum_code`.
    pub fn ucum(value: f64, unit: &str, ucum_code: &str) -> Self {
        Quantity {
            value: Some(value),
            unit: Some(unit.to_owned()),
            system: Some(UCUM.to_owned()),
            code: Some(ucum_code.to_owned()),
            ..Default::default()
        }
    }
}

fhir_struct! {
    /// A set of ordered quantities (`Range`).
    pub struct Range {
        /// Low limit.
        low: Option<Quantity>,
        /// High limit.
        high: Option<Quantity>,
    }
}

fhir_struct! {
    /// `Observation.referenceRange`: the normal range for interpreting a result.
    pub struct ReferenceRange {
        /// Low range, if relevant.
        low: Option<Quantity>,
        /// High range, if relevant.
        high: Option<Quantity>,
        /// Reference range qualifier.
        #[serde(rename = "type")]
        type_: Option<CodeableConcept>,
        /// Reference range population.
        applies_to: Vec<CodeableConcept>,
        /// Applicable age range, if relevant.
        age: Option<Range>,
        /// Text based reference range.
        text: Option<String>,
    }
}

fhir_struct! {
    /// `Timing.repeat`: when the event is to occur.
    pub struct TimingRepeat {
        /// Length/range of lengths, or (start and/or end) limits (`boundsDuration`).
        bounds_duration: Option<Quantity>,
        /// Bounds as a period (`boundsPeriod`).
        bounds_period: Option<Period>,
        /// Number of times to repeat.
        count: Option<u32>,
        /// Event occurs frequency times per period.
        frequency: Option<u32>,
        /// Event occurs frequency times per period.
        period: Option<f64>,
        /// s | min | h | d | wk | mo | a.
        period_unit: Option<String>,
        /// Code for time period of occurrence (e.g. `PCM`, `HS`).
        when: Vec<String>,
    }
}

fhir_struct! {
    /// When an event is to occur (`Timing`).
    pub struct Timing {
        /// When the event occurs.
        event: Vec<String>,
        /// When the event is to occur.
        repeat: Option<TimingRepeat>,
        /// Timing abbreviation, e.g. a JAMI 用法 code.
        code: Option<CodeableConcept>,
    }
}

fhir_struct! {
    /// `Dosage.doseAndRate`: amount of medication administered.
    pub struct DoseAndRate {
        /// The kind of dose or rate specified.
        #[serde(rename = "type")]
        type_: Option<CodeableConcept>,
        /// Amount of medication per dose.
        dose_quantity: Option<Quantity>,
        /// Amount of medication per dose, as a range.
        dose_range: Option<Range>,
        /// Amount of medication per unit of time.
        rate_quantity: Option<Quantity>,
    }
}

fhir_struct! {
    /// How a medication is to be taken (`Dosage`).
    pub struct Dosage {
        /// Extensions (JP Core uses some for daily dose and usage duration).
        extension: Vec<Extension>,
        /// The order of the dosage instructions.
        sequence: Option<i64>,
        /// Free text dosage instructions, e.g. `1日1回朝食後`.
        text: Option<String>,
        /// Supplemental instruction.
        additional_instruction: Vec<CodeableConcept>,
        /// Patient or consumer oriented instructions.
        patient_instruction: Option<String>,
        /// When medication should be administered.
        timing: Option<Timing>,
        /// Take "as needed" (`asNeededBoolean`).
        as_needed_boolean: Option<bool>,
        /// Body site to administer to.
        site: Option<CodeableConcept>,
        /// How the drug should enter the body.
        route: Option<CodeableConcept>,
        /// Technique for administering the medication.
        method: Option<CodeableConcept>,
        /// Amount of medication administered.
        dose_and_rate: Vec<DoseAndRate>,
    }
}

fhir_struct! {
    /// A text note with attribution (`Annotation`).
    pub struct Annotation {
        /// Individual responsible for the annotation (`authorReference`).
        author_reference: Option<Reference>,
        /// Individual responsible for the annotation (`authorString`).
        author_string: Option<String>,
        /// When the annotation was made.
        time: Option<String>,
        /// The annotation - text content (markdown).
        text: Option<String>,
    }
}

fhir_struct! {
    /// Human-readable summary of a resource (`Narrative`).
    pub struct Narrative {
        /// generated | extensions | additional | empty.
        status: Option<String>,
        /// Limited XHTML content (`<div xmlns="http://www.w3.org/1999/xhtml">…</div>`).
        div: Option<String>,
    }
}

/// The XHTML namespace required on `Narrative.div`.
pub const XHTML_NAMESPACE: &str = "http://www.w3.org/1999/xhtml";

impl Narrative {
    /// A `generated` narrative whose div holds `text` escaped as XHTML, one paragraph per line.
    pub fn from_text(text: &str) -> Self {
        let mut div = format!("<div xmlns=\"{XHTML_NAMESPACE}\">");
        for line in text.lines() {
            div.push_str("<p>");
            div.push_str(&escape_xml(line));
            div.push_str("</p>");
        }
        div.push_str("</div>");
        Narrative {
            status: Some("generated".to_owned()),
            div: Some(div),
            ..Default::default()
        }
    }
}

/// Escapes the five XML special characters.
pub fn escape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fhir_struct! {
    /// Content in a format defined elsewhere (`Attachment`).
    pub struct Attachment {
        /// Mime type of the content.
        content_type: Option<String>,
        /// Human language of the content (BCP-47).
        language: Option<String>,
        /// Data inline, base64ed.
        data: Option<String>,
        /// URI where the data can be found.
        url: Option<String>,
        /// Number of bytes of content (if url provided).
        size: Option<u64>,
        /// Hash of the data (sha-1, base64ed).
        hash: Option<String>,
        /// Label to display in place of the data.
        title: Option<String>,
        /// Date attachment was first created.
        creation: Option<String>,
    }
}

fhir_struct! {
    /// Metadata about a resource (`Meta`).
    pub struct Meta {
        /// Version specific identifier.
        version_id: Option<String>,
        /// When the resource version last changed (instant).
        last_updated: Option<String>,
        /// Identifies where the resource comes from.
        source: Option<String>,
        /// Profiles this resource claims to conform to.
        profile: Vec<String>,
        /// Security labels applied to this resource.
        security: Vec<Coding>,
        /// Tags applied to this resource.
        tag: Vec<Coding>,
    }
}

impl Meta {
    /// A meta element declaring one profile.
    pub fn profile(url: &str) -> Self {
        Meta {
            profile: vec![url.to_owned()],
            ..Default::default()
        }
    }
}
