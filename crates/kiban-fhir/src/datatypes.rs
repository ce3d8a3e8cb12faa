//! FHIR R4 general-purpose data types used by JP Core / JP-CLINS.
//!
//! Every struct keeps the elements kiban does not model in `extra`, so a parse followed by a
//! serialization loses nothing.

use kiban_model::{CodeSystem, canonical_code_system};
use std::borrow::Cow;

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
/// Every struct borrows its strings from the JSON text it was read from (`'a`): a string
/// without escapes is a slice of the input, so reading a resource allocates only for its
/// vectors, boxes and escaped strings. Structs built in code hold owned strings (`'static`).
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
        pub struct $name<'a> {
            $(
                $(#[$fmeta])*
                #[serde(skip_serializing_if = "crate::datatypes::Absent::is_absent")]
                pub $field: $ty,
            )*
            /// Elements kiban does not model (including `_element` primitive extensions), kept verbatim.
            #[serde(flatten)]
            pub extra: serde_json::Map<String, serde_json::Value>,
        }

        impl<'de: 'a, 'a> serde::Deserialize<'de> for $name<'a> {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct ElementVisitor<'a>(std::marker::PhantomData<&'a ()>);
                impl<'de: 'a, 'a> serde::de::Visitor<'de> for ElementVisitor<'a> {
                    type Value = $name<'a>;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(concat!("a FHIR ", stringify!($name), " object"))
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<$name<'a>, A::Error> {
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
                                    out.$field = map.next_value_seed(
                                        $crate::datatypes::ElementSeed::<$ty>::new(),
                                    )?;
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
                deserializer.deserialize_map(ElementVisitor(std::marker::PhantomData))
            }
        }

        impl<'a> $crate::datatypes::IntoStatic for $name<'a> {
            type Static = $name<'static>;
            fn into_static(self) -> $name<'static> {
                $name {
                    $($field: $crate::datatypes::IntoStatic::into_static(self.$field),)*
                    extra: self.extra,
                }
            }
        }

        impl<'de: 'a, 'a> $crate::datatypes::Element<'de> for Option<$name<'a>> {
            fn deserialize_element<D: serde::Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Self, D::Error> {
                serde::Deserialize::deserialize(deserializer)
            }
        }

        impl<'de: 'a, 'a> $crate::datatypes::Element<'de> for Option<Box<$name<'a>>> {
            fn deserialize_element<D: serde::Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Self, D::Error> {
                serde::Deserialize::deserialize(deserializer)
            }
        }

        impl<'de: 'a, 'a> $crate::datatypes::Element<'de> for Vec<$name<'a>> {
            fn deserialize_element<D: serde::Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Self, D::Error> {
                serde::Deserialize::deserialize(deserializer)
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
pub(crate) struct JsonKey<'de>(pub Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for JsonKey<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_str(StrVisitor("an element name"))
            .map(JsonKey)
    }
}

/// A string value, borrowed from the input when it has no escapes.
struct BorrowedStr<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for BorrowedStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // "a string" is what serde's own `String` expects: error messages stay the same.
        deserializer
            .deserialize_string(StrVisitor("a string"))
            .map(BorrowedStr)
    }
}

/// Reads a string, borrowing it from the input when the deserializer can lend it.
struct StrVisitor(&'static str);

impl<'de> serde::de::Visitor<'de> for StrVisitor {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        // As serde's `String` does: bytes are taken when they are UTF-8.
        match std::str::from_utf8(v) {
            Ok(s) => Ok(Cow::Owned(s.to_owned())),
            Err(_) => Err(E::invalid_value(serde::de::Unexpected::Bytes(v), &self)),
        }
    }
    fn visit_borrowed_bytes<E: serde::de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
        match std::str::from_utf8(v) {
            Ok(s) => Ok(Cow::Borrowed(s)),
            Err(_) => Err(E::invalid_value(serde::de::Unexpected::Bytes(v), &self)),
        }
    }
    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
        match String::from_utf8(v) {
            Ok(s) => Ok(Cow::Owned(s)),
            Err(e) => Err(E::invalid_value(
                serde::de::Unexpected::Bytes(&e.into_bytes()),
                &self,
            )),
        }
    }
}

/// How an element of a FHIR struct is read: strings borrowed from the input (serde's own
/// `Cow<str>` would always copy them), everything else as serde reads it.
pub trait Element<'de>: Sized {
    /// Reads the element's value.
    fn deserialize_element<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error>;
}

impl<'de: 'a, 'a> Element<'de> for Option<Cow<'a, str>> {
    fn deserialize_element<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value: Option<BorrowedStr<'a>> = serde::Deserialize::deserialize(deserializer)?;
        Ok(value.map(|s| s.0))
    }
}

impl<'de: 'a, 'a> Element<'de> for Vec<Cow<'a, str>> {
    fn deserialize_element<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let values: Vec<BorrowedStr<'a>> = serde::Deserialize::deserialize(deserializer)?;
        Ok(values.into_iter().map(|s| s.0).collect())
    }
}

/// Elements read as serde reads them (numbers, booleans).
macro_rules! plain_elements {
    ($($ty:ty),*) => {
        $(
            impl<'de> Element<'de> for $ty {
                fn deserialize_element<D: serde::Deserializer<'de>>(
                    deserializer: D,
                ) -> Result<Self, D::Error> {
                    serde::Deserialize::deserialize(deserializer)
                }
            }
        )*
    };
}
plain_elements!(
    Option<bool>,
    Option<i64>,
    Option<u32>,
    Option<u64>,
    Option<f64>
);

/// Conversion of a value that may borrow from its JSON text into one that owns all its strings
/// (`'static`), to keep it after the text is gone.
pub trait IntoStatic {
    /// The owning form.
    type Static: 'static;
    /// Copies every borrowed string; owned strings are moved, not copied.
    fn into_static(self) -> Self::Static;
}

impl IntoStatic for Cow<'_, str> {
    type Static = Cow<'static, str>;
    fn into_static(self) -> Cow<'static, str> {
        Cow::Owned(self.into_owned())
    }
}

impl<T: IntoStatic> IntoStatic for Option<T> {
    type Static = Option<T::Static>;
    fn into_static(self) -> Self::Static {
        self.map(T::into_static)
    }
}

impl<T: IntoStatic> IntoStatic for Vec<T> {
    type Static = Vec<T::Static>;
    fn into_static(self) -> Self::Static {
        self.into_iter().map(T::into_static).collect()
    }
}

impl<T: IntoStatic> IntoStatic for Box<T> {
    type Static = Box<T::Static>;
    fn into_static(self) -> Self::Static {
        Box::new((*self).into_static())
    }
}

/// Values that hold no borrowed text.
macro_rules! static_values {
    ($($ty:ty),*) => {
        $(
            impl IntoStatic for $ty {
                type Static = $ty;
                fn into_static(self) -> $ty {
                    self
                }
            }
        )*
    };
}
static_values!(bool, i64, u32, u64, f64);

/// The seed that reads one element of type `T` (see [`Element`]).
pub(crate) struct ElementSeed<T>(std::marker::PhantomData<T>);

impl<T> ElementSeed<T> {
    pub(crate) fn new() -> Self {
        ElementSeed(std::marker::PhantomData)
    }
}

impl<'de, T: Element<'de>> serde::de::DeserializeSeed<'de> for ElementSeed<T> {
    type Value = T;
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        T::deserialize_element(deserializer)
    }
}

/// URL of the ISO 21090 name-representation extension used by JP Core on `HumanName`.
pub const NAME_REPRESENTATION_EXTENSION_URL: &str =
    "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation";

fhir_struct! {
    /// An extension (`Extension`): a URL and one `value[x]` or nested extensions.
    pub struct Extension {
        /// Identifies the meaning of the extension (required).
        url: Option<Cow<'a, str>>,
        /// Nested extensions (complex extension).
        extension: Vec<Extension<'a>>,
        /// `valueCode`.
        value_code: Option<Cow<'a, str>>,
        /// `valueString`.
        value_string: Option<Cow<'a, str>>,
        /// `valueBoolean`.
        value_boolean: Option<bool>,
        /// `valueInteger`.
        value_integer: Option<i64>,
        /// `valueDecimal`.
        value_decimal: Option<f64>,
        /// `valueDate`.
        value_date: Option<Cow<'a, str>>,
        /// `valueDateTime`.
        value_date_time: Option<Cow<'a, str>>,
        /// `valueUri`.
        value_uri: Option<Cow<'a, str>>,
        /// `valueCoding`.
        value_coding: Option<Coding<'a>>,
        /// `valueCodeableConcept`.
        value_codeable_concept: Option<CodeableConcept<'a>>,
        /// `valueIdentifier`.
        value_identifier: Option<Identifier<'a>>,
        /// `valueReference`.
        value_reference: Option<Reference<'a>>,
        /// `valuePeriod`.
        value_period: Option<Period<'a>>,
        /// `valueQuantity`.
        value_quantity: Option<Quantity<'a>>,
    }
}

impl<'a> Extension<'a> {
    /// A simple extension carrying a `valueCode`.
    pub fn code(url: &str, code: &str) -> Self {
        Extension {
            url: Some(Cow::Owned(url.to_owned())),
            value_code: Some(Cow::Owned(code.to_owned())),
            ..Default::default()
        }
    }

    /// A simple extension carrying a `valueCodeableConcept`.
    pub fn codeable_concept(url: &str, concept: CodeableConcept<'a>) -> Self {
        Extension {
            url: Some(Cow::Owned(url.to_owned())),
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
        system: Option<Cow<'a, str>>,
        /// Version of the system.
        version: Option<Cow<'a, str>>,
        /// Symbol in syntax defined by the system.
        code: Option<Cow<'a, str>>,
        /// Representation defined by the system.
        display: Option<Cow<'a, str>>,
        /// If this coding was chosen directly by the user.
        user_selected: Option<bool>,
    }
}

impl<'a> Coding<'a> {
    /// A coding in a recognized system, written with its canonical URL.
    pub fn new(system: CodeSystem, code: &str, display: &str) -> Self {
        Self::with_system(system.url(), code, display)
    }

    /// A coding in an arbitrary system URI.
    pub fn with_system(system: &str, code: &str, display: &str) -> Self {
        Coding {
            system: Some(Cow::Owned(system.to_owned())),
            code: Some(Cow::Owned(code.to_owned())),
            display: (!display.is_empty()).then(|| Cow::Owned(display.to_owned())),
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
        coding: Vec<Coding<'a>>,
        /// Plain-text representation of the concept.
        text: Option<Cow<'a, str>>,
    }
}

impl<'a> CodeableConcept<'a> {
    /// A concept with one coding.
    pub fn from_coding(coding: Coding<'a>) -> Self {
        CodeableConcept {
            coding: vec![coding],
            ..Default::default()
        }
    }

    /// A concept with several codings and an optional text.
    pub fn from_codings(coding: Vec<Coding<'a>>, text: Option<&str>) -> Self {
        CodeableConcept {
            coding,
            text: text.map(|text| Cow::Owned(text.to_owned())),
            ..Default::default()
        }
    }

    /// A concept with one coding in an arbitrary system URI.
    pub fn simple(system: &str, code: &str, display: &str) -> Self {
        Self::from_coding(Coding::with_system(system, code, display))
    }

    /// The first coding in `system`, matching its URL and OID spellings.
    pub fn coding_in(&self, system: CodeSystem) -> Option<&Coding<'a>> {
        self.coding.iter().find(|c| c.is_in(system))
    }

    /// All codings in `system`, matching its URL and OID spellings.
    pub fn codings_in(&self, system: CodeSystem) -> impl Iterator<Item = &Coding<'a>> {
        self.coding.iter().filter(move |c| c.is_in(system))
    }

    /// The code of the first coding in `system`.
    pub fn code_in(&self, system: CodeSystem) -> Option<&str> {
        self.coding_in(system).and_then(|c| c.code.as_deref())
    }

    /// The first coding with exactly this system URI (for systems kiban does not alias).
    pub fn coding_with_system(&self, system: &str) -> Option<&Coding<'a>> {
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
        use_: Option<Cow<'a, str>>,
        /// Description of the identifier.
        #[serde(rename = "type")]
        type_: Option<CodeableConcept<'a>>,
        /// The namespace of the value (URI).
        system: Option<Cow<'a, str>>,
        /// The value that is unique.
        value: Option<Cow<'a, str>>,
        /// Time period when the id is valid.
        period: Option<Period<'a>>,
        /// Organization that issued the id.
        assigner: Option<Box<Reference<'a>>>,
    }
}

impl<'a> Identifier<'a> {
    /// An identifier with a system and value.
    pub fn new(system: &str, value: &str) -> Self {
        Identifier {
            system: Some(Cow::Owned(system.to_owned())),
            value: Some(Cow::Owned(value.to_owned())),
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
        extension: Vec<Extension<'a>>,
        /// usual | official | temp | nickname | anonymous | old | maiden.
        #[serde(rename = "use")]
        use_: Option<Cow<'a, str>>,
        /// Full text representation, e.g. `山田 太郎`.
        text: Option<Cow<'a, str>>,
        /// Family name (surname).
        family: Option<Cow<'a, str>>,
        /// Given names.
        given: Vec<Cow<'a, str>>,
        /// Parts that come before the name.
        prefix: Vec<Cow<'a, str>>,
        /// Parts that come after the name.
        suffix: Vec<Cow<'a, str>>,
        /// Time period when the name was in use.
        period: Option<Period<'a>>,
    }
}

impl<'a> HumanName<'a> {
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
            use_: Some(Cow::Owned("official".to_owned())),
            text: Some(Cow::Owned(format!("{family} {given}"))),
            family: Some(Cow::Owned(family.to_owned())),
            given: vec![Cow::Owned(given.to_owned())],
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
        extension: Vec<Extension<'a>>,
        /// home | work | temp | old | billing.
        #[serde(rename = "use")]
        use_: Option<Cow<'a, str>>,
        /// postal | physical | both.
        #[serde(rename = "type")]
        type_: Option<Cow<'a, str>>,
        /// Text representation of the address.
        text: Option<Cow<'a, str>>,
        /// Street name, number, building (in Japan: 町名・丁目・番地・号).
        line: Vec<Cow<'a, str>>,
        /// City / municipality (市区町村).
        city: Option<Cow<'a, str>>,
        /// District.
        district: Option<Cow<'a, str>>,
        /// Prefecture (都道府県).
        state: Option<Cow<'a, str>>,
        /// Postal code (郵便番号).
        postal_code: Option<Cow<'a, str>>,
        /// Country (ISO 3166 code), e.g. `JP`.
        country: Option<Cow<'a, str>>,
        /// Time period when the address was in use.
        period: Option<Period<'a>>,
    }
}

fhir_struct! {
    /// Contact details (`ContactPoint`), e.g. a phone number.
    pub struct ContactPoint {
        /// phone | fax | email | pager | url | sms | other.
        system: Option<Cow<'a, str>>,
        /// The actual contact point details.
        value: Option<Cow<'a, str>>,
        /// home | work | temp | old | mobile.
        #[serde(rename = "use")]
        use_: Option<Cow<'a, str>>,
        /// Preferred order of use (1 = highest).
        rank: Option<u32>,
        /// Time period when the contact point was in use.
        period: Option<Period<'a>>,
    }
}

fhir_struct! {
    /// A reference from one resource to another (`Reference`).
    pub struct Reference {
        /// Literal reference: relative, internal (`#id`), `urn:uuid:` or absolute URL.
        reference: Option<Cow<'a, str>>,
        /// Type the reference refers to.
        #[serde(rename = "type")]
        type_: Option<Cow<'a, str>>,
        /// Logical reference, when the literal reference is not known.
        identifier: Option<Box<Identifier<'a>>>,
        /// Text alternative for the resource.
        display: Option<Cow<'a, str>>,
    }
}

impl<'a> Reference<'a> {
    /// A literal reference.
    pub fn to(reference: &str) -> Self {
        Reference {
            reference: Some(Cow::Owned(reference.to_owned())),
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
        start: Option<Cow<'a, str>>,
        /// End time with inclusive boundary, if not ongoing.
        end: Option<Cow<'a, str>>,
    }
}

impl<'a> Period<'a> {
    /// A period from `start` to an optional `end`.
    pub fn new(start: &str, end: Option<&str>) -> Self {
        Period {
            start: Some(Cow::Owned(start.to_owned())),
            end: end.map(|end| Cow::Owned(end.to_owned())),
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
        comparator: Option<Cow<'a, str>>,
        /// Unit representation.
        unit: Option<Cow<'a, str>>,
        /// System that defines the coded unit form (UCUM: `http://unitsofmeasure.org`).
        system: Option<Cow<'a, str>>,
        /// Coded form of the unit.
        code: Option<Cow<'a, str>>,
    }
}

/// The UCUM system URI.
pub const UCUM: &str = "http://unitsofmeasure.org";

impl<'a> Quantity<'a> {
    /// A UCUM quantity whose display unit is `unit` and coded unit `ucum_code`.
    pub fn ucum(value: f64, unit: &str, ucum_code: &str) -> Self {
        Quantity {
            value: Some(value),
            unit: Some(Cow::Owned(unit.to_owned())),
            system: Some(Cow::Owned(UCUM.to_owned())),
            code: Some(Cow::Owned(ucum_code.to_owned())),
            ..Default::default()
        }
    }
}

fhir_struct! {
    /// A set of ordered quantities (`Range`).
    pub struct Range {
        /// Low limit.
        low: Option<Quantity<'a>>,
        /// High limit.
        high: Option<Quantity<'a>>,
    }
}

fhir_struct! {
    /// `Observation.referenceRange`: the normal range for interpreting a result.
    pub struct ReferenceRange {
        /// Low range, if relevant.
        low: Option<Quantity<'a>>,
        /// High range, if relevant.
        high: Option<Quantity<'a>>,
        /// Reference range qualifier.
        #[serde(rename = "type")]
        type_: Option<CodeableConcept<'a>>,
        /// Reference range population.
        applies_to: Vec<CodeableConcept<'a>>,
        /// Applicable age range, if relevant.
        age: Option<Range<'a>>,
        /// Text based reference range.
        text: Option<Cow<'a, str>>,
    }
}

fhir_struct! {
    /// `Timing.repeat`: when the event is to occur.
    pub struct TimingRepeat {
        /// Length/range of lengths, or (start and/or end) limits (`boundsDuration`).
        bounds_duration: Option<Quantity<'a>>,
        /// Bounds as a period (`boundsPeriod`).
        bounds_period: Option<Period<'a>>,
        /// Number of times to repeat.
        count: Option<u32>,
        /// Event occurs frequency times per period.
        frequency: Option<u32>,
        /// Event occurs frequency times per period.
        period: Option<f64>,
        /// s | min | h | d | wk | mo | a.
        period_unit: Option<Cow<'a, str>>,
        /// Code for time period of occurrence (e.g. `PCM`, `HS`).
        when: Vec<Cow<'a, str>>,
    }
}

fhir_struct! {
    /// When an event is to occur (`Timing`).
    pub struct Timing {
        /// When the event occurs.
        event: Vec<Cow<'a, str>>,
        /// When the event is to occur.
        repeat: Option<TimingRepeat<'a>>,
        /// Timing abbreviation, e.g. a JAMI 用法 code.
        code: Option<CodeableConcept<'a>>,
    }
}

fhir_struct! {
    /// `Dosage.doseAndRate`: amount of medication administered.
    pub struct DoseAndRate {
        /// The kind of dose or rate specified.
        #[serde(rename = "type")]
        type_: Option<CodeableConcept<'a>>,
        /// Amount of medication per dose.
        dose_quantity: Option<Quantity<'a>>,
        /// Amount of medication per dose, as a range.
        dose_range: Option<Range<'a>>,
        /// Amount of medication per unit of time.
        rate_quantity: Option<Quantity<'a>>,
    }
}

fhir_struct! {
    /// How a medication is to be taken (`Dosage`).
    pub struct Dosage {
        /// Extensions (JP Core uses some for daily dose and usage duration).
        extension: Vec<Extension<'a>>,
        /// The order of the dosage instructions.
        sequence: Option<i64>,
        /// Free text dosage instructions, e.g. `1日1回朝食後`.
        text: Option<Cow<'a, str>>,
        /// Supplemental instruction.
        additional_instruction: Vec<CodeableConcept<'a>>,
        /// Patient or consumer oriented instructions.
        patient_instruction: Option<Cow<'a, str>>,
        /// When medication should be administered.
        timing: Option<Timing<'a>>,
        /// Take "as needed" (`asNeededBoolean`).
        as_needed_boolean: Option<bool>,
        /// Body site to administer to.
        site: Option<CodeableConcept<'a>>,
        /// How the drug should enter the body.
        route: Option<CodeableConcept<'a>>,
        /// Technique for administering the medication.
        method: Option<CodeableConcept<'a>>,
        /// Amount of medication administered.
        dose_and_rate: Vec<DoseAndRate<'a>>,
    }
}

fhir_struct! {
    /// A text note with attribution (`Annotation`).
    pub struct Annotation {
        /// Individual responsible for the annotation (`authorReference`).
        author_reference: Option<Reference<'a>>,
        /// Individual responsible for the annotation (`authorString`).
        author_string: Option<Cow<'a, str>>,
        /// When the annotation was made.
        time: Option<Cow<'a, str>>,
        /// The annotation - text content (markdown).
        text: Option<Cow<'a, str>>,
    }
}

fhir_struct! {
    /// Human-readable summary of a resource (`Narrative`).
    pub struct Narrative {
        /// generated | extensions | additional | empty.
        status: Option<Cow<'a, str>>,
        /// Limited XHTML content (`<div xmlns="http://www.w3.org/1999/xhtml">…</div>`).
        div: Option<Cow<'a, str>>,
    }
}

/// The XHTML namespace required on `Narrative.div`.
pub const XHTML_NAMESPACE: &str = "http://www.w3.org/1999/xhtml";

impl<'a> Narrative<'a> {
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
            status: Some(Cow::Owned("generated".to_owned())),
            div: Some(Cow::Owned(div)),
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
        content_type: Option<Cow<'a, str>>,
        /// Human language of the content (BCP-47).
        language: Option<Cow<'a, str>>,
        /// Data inline, base64ed.
        data: Option<Cow<'a, str>>,
        /// URI where the data can be found.
        url: Option<Cow<'a, str>>,
        /// Number of bytes of content (if url provided).
        size: Option<u64>,
        /// Hash of the data (sha-1, base64ed).
        hash: Option<Cow<'a, str>>,
        /// Label to display in place of the data.
        title: Option<Cow<'a, str>>,
        /// Date attachment was first created.
        creation: Option<Cow<'a, str>>,
    }
}

fhir_struct! {
    /// Metadata about a resource (`Meta`).
    pub struct Meta {
        /// Version specific identifier.
        version_id: Option<Cow<'a, str>>,
        /// When the resource version last changed (instant).
        last_updated: Option<Cow<'a, str>>,
        /// Identifies where the resource comes from.
        source: Option<Cow<'a, str>>,
        /// Profiles this resource claims to conform to.
        profile: Vec<Cow<'a, str>>,
        /// Security labels applied to this resource.
        security: Vec<Coding<'a>>,
        /// Tags applied to this resource.
        tag: Vec<Coding<'a>>,
    }
}

impl<'a> Meta<'a> {
    /// A meta element declaring one profile.
    pub fn profile(url: &str) -> Self {
        Meta {
            profile: vec![Cow::Owned(url.to_owned())],
            ..Default::default()
        }
    }
}
