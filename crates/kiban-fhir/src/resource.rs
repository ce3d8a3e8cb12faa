//! The [`Resource`] enum: parse any resource by its `resourceType`, serialize it back with
//! `resourceType` first.

use crate::datatypes::JsonKey;
use crate::resources::{
    AllergyIntolerance, Bundle, Composition, Condition, DocumentReference, Encounter, FhirResource,
    MedicationDispense, MedicationRequest, Observation, Organization, Patient, Practitioner,
    Procedure,
};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// Any FHIR resource: typed when kiban models its type, otherwise kept as JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource<'a> {
    /// `Patient`.
    Patient(Box<Patient<'a>>),
    /// `Encounter`.
    Encounter(Box<Encounter<'a>>),
    /// `Condition`.
    Condition(Box<Condition<'a>>),
    /// `MedicationRequest`.
    MedicationRequest(Box<MedicationRequest<'a>>),
    /// `MedicationDispense`.
    MedicationDispense(Box<MedicationDispense<'a>>),
    /// `Observation`.
    Observation(Box<Observation<'a>>),
    /// `AllergyIntolerance`.
    AllergyIntolerance(Box<AllergyIntolerance<'a>>),
    /// `Procedure`.
    Procedure(Box<Procedure<'a>>),
    /// `Composition`.
    Composition(Box<Composition<'a>>),
    /// `DocumentReference`.
    DocumentReference(Box<DocumentReference<'a>>),
    /// `Organization`.
    Organization(Box<Organization<'a>>),
    /// `Practitioner`.
    Practitioner(Box<Practitioner<'a>>),
    /// `Bundle`.
    Bundle(Box<Bundle<'a>>),
    /// A resource type kiban does not model, kept verbatim.
    Other {
        /// Its `resourceType`.
        resource_type: String,
        /// The whole JSON object, `resourceType` included.
        json: Map<String, Value>,
    },
}

/// Why a JSON text or value could not be read as a FHIR resource.
///
/// Messages name the resource type, the JSON path and the rule, never the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The text is not JSON.
    #[error("not valid JSON at line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What was wrong (value-free).
        message: String,
    },
    /// The JSON is not an object.
    #[error("a FHIR resource must be a JSON object")]
    NotAnObject,
    /// `resourceType` is missing or not a string.
    #[error("missing or non-string resourceType")]
    MissingResourceType,
    /// An element does not have the expected shape.
    #[error("{resource_type} at {path}: {message}")]
    Element {
        /// The resource type being read.
        resource_type: String,
        /// JSON path of the element, e.g. `entry[2].resource.code.coding[0].code`.
        path: String,
        /// What was wrong (value-free).
        message: String,
    },
}

impl<'a> Resource<'a> {
    /// The `resourceType` of this resource.
    pub fn resource_type(&self) -> &str {
        match self {
            Resource::Patient(_) => Patient::RESOURCE_TYPE,
            Resource::Encounter(_) => Encounter::RESOURCE_TYPE,
            Resource::Condition(_) => Condition::RESOURCE_TYPE,
            Resource::MedicationRequest(_) => MedicationRequest::RESOURCE_TYPE,
            Resource::MedicationDispense(_) => MedicationDispense::RESOURCE_TYPE,
            Resource::Observation(_) => Observation::RESOURCE_TYPE,
            Resource::AllergyIntolerance(_) => AllergyIntolerance::RESOURCE_TYPE,
            Resource::Procedure(_) => Procedure::RESOURCE_TYPE,
            Resource::Composition(_) => Composition::RESOURCE_TYPE,
            Resource::DocumentReference(_) => DocumentReference::RESOURCE_TYPE,
            Resource::Organization(_) => Organization::RESOURCE_TYPE,
            Resource::Practitioner(_) => Practitioner::RESOURCE_TYPE,
            Resource::Bundle(_) => Bundle::RESOURCE_TYPE,
            Resource::Other { resource_type, .. } => resource_type,
        }
    }

    /// The logical id of this resource, if any.
    pub fn id(&self) -> Option<&str> {
        match self {
            Resource::Patient(r) => r.id.as_deref(),
            Resource::Encounter(r) => r.id.as_deref(),
            Resource::Condition(r) => r.id.as_deref(),
            Resource::MedicationRequest(r) => r.id.as_deref(),
            Resource::MedicationDispense(r) => r.id.as_deref(),
            Resource::Observation(r) => r.id.as_deref(),
            Resource::AllergyIntolerance(r) => r.id.as_deref(),
            Resource::Procedure(r) => r.id.as_deref(),
            Resource::Composition(r) => r.id.as_deref(),
            Resource::DocumentReference(r) => r.id.as_deref(),
            Resource::Organization(r) => r.id.as_deref(),
            Resource::Practitioner(r) => r.id.as_deref(),
            Resource::Bundle(r) => r.id.as_deref(),
            Resource::Other { json, .. } => json.get("id").and_then(Value::as_str),
        }
    }

    /// Parses a JSON text holding one resource.
    ///
    /// The text is read straight into the typed structs (no intermediate JSON tree) when
    /// `resourceType` is the first key of every resource in it, as FHIR servers write it;
    /// anything else, and every error, goes through [`Resource::from_json_value`], which
    /// accepts any key order and reports errors with the element path.
    pub fn from_json_str(text: &'a str) -> Result<Resource<'a>, ParseError> {
        if let Ok(resource) = serde_json::from_str::<Resource<'a>>(text) {
            return Ok(resource);
        }
        let value: Value = serde_json::from_str(text).map_err(|e| ParseError::Syntax {
            line: e.line(),
            column: e.column(),
            message: redact_serde_message(&e.to_string()),
        })?;
        Resource::from_json_value(value)
    }

    /// Reads a JSON value as a resource, dispatching on `resourceType`.
    pub fn from_json_value(value: Value) -> Result<Resource<'a>, ParseError> {
        let Value::Object(mut object) = value else {
            return Err(ParseError::NotAnObject);
        };
        let resource_type = match object.get("resourceType") {
            Some(Value::String(t)) => t.clone(),
            _ => return Err(ParseError::MissingResourceType),
        };
        object.remove("resourceType");
        let mut track = serde_path_to_error::Track::new();
        let tracked = serde_path_to_error::Deserializer::new(Value::Object(object), &mut track);
        typed_by_name(&resource_type, tracked).map_err(|e| ParseError::Element {
            path: track.path().to_string(),
            message: redact_serde_message(&e.to_string()),
            resource_type,
        })
    }

    /// Serializes to a compact JSON line with `resourceType` first.
    pub fn to_json_string(&self) -> String {
        // Serializing kiban's own structs into a String cannot fail: no maps with non-string keys.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Serializes into a writer (compact JSON, `resourceType` first).
    pub fn write_json<W: std::io::Write>(&self, writer: W) -> Result<(), serde_json::Error> {
        serde_json::to_writer(writer, self)
    }

    /// Converts to a JSON value.
    pub fn to_json_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

const MODELLED_TYPES: &[&str] = &[
    "Patient",
    "Encounter",
    "Condition",
    "MedicationRequest",
    "MedicationDispense",
    "Observation",
    "AllergyIntolerance",
    "Procedure",
    "Composition",
    "DocumentReference",
    "Organization",
    "Practitioner",
    "Bundle",
];

/// Whether kiban models `resource_type` with a typed struct.
pub fn is_modelled(resource_type: &str) -> bool {
    MODELLED_TYPES.contains(&resource_type)
}

/// Reads the elements of a resource whose `resourceType` is already known (and consumed).
fn typed_by_name<'de: 'a, 'a, D: Deserializer<'de>>(
    resource_type: &str,
    elements: D,
) -> Result<Resource<'a>, D::Error> {
    fn typed<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        elements: D,
    ) -> Result<Box<T>, D::Error> {
        T::deserialize(elements).map(Box::new)
    }
    Ok(match resource_type {
        "Patient" => Resource::Patient(typed(elements)?),
        "Encounter" => Resource::Encounter(typed(elements)?),
        "Condition" => Resource::Condition(typed(elements)?),
        "MedicationRequest" => Resource::MedicationRequest(typed(elements)?),
        "MedicationDispense" => Resource::MedicationDispense(typed(elements)?),
        "Observation" => Resource::Observation(typed(elements)?),
        "AllergyIntolerance" => Resource::AllergyIntolerance(typed(elements)?),
        "Procedure" => Resource::Procedure(typed(elements)?),
        "Composition" => Resource::Composition(typed(elements)?),
        "DocumentReference" => Resource::DocumentReference(typed(elements)?),
        "Organization" => Resource::Organization(typed(elements)?),
        "Practitioner" => Resource::Practitioner(typed(elements)?),
        "Bundle" => Resource::Bundle(typed(elements)?),
        _ => {
            let object = Map::<String, Value>::deserialize(elements)?;
            let mut json = Map::with_capacity(object.len() + 1);
            json.insert(
                "resourceType".to_owned(),
                Value::String(resource_type.to_owned()),
            );
            json.extend(object);
            Resource::Other {
                resource_type: resource_type.to_owned(),
                json,
            }
        }
    })
}

/// Removes values quoted by serde from an error message (`invalid type: string "…"`), so
/// identity data never reaches a log.
pub(crate) fn redact_serde_message(message: &str) -> String {
    // serde writes values after "invalid type: " / "invalid value: " up to ", expected".
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some(pos) = rest.find(", expected")
        {
            let kind = rest[..pos].split_whitespace().next().unwrap_or("value");
            let kind = if kind.starts_with('"') || kind.starts_with('`') {
                "value"
            } else {
                kind
            };
            return format!("{prefix}{kind}{}", &rest[pos..]);
        }
    }
    let mut out = String::with_capacity(message.len());
    let mut in_quote = false;
    for ch in message.chars() {
        if ch == '"' {
            if !in_quote {
                out.push_str("\"…\"");
            }
            in_quote = !in_quote;
        } else if !in_quote {
            out.push(ch);
        }
    }
    out
}

#[derive(Serialize)]
struct Tagged<'a, T: Serialize> {
    #[serde(rename = "resourceType")]
    resource_type: &'a str,
    #[serde(flatten)]
    resource: &'a T,
}

fn tagged<S: Serializer, T: FhirResource>(resource: &T, serializer: S) -> Result<S::Ok, S::Error> {
    Tagged {
        resource_type: T::RESOURCE_TYPE,
        resource,
    }
    .serialize(serializer)
}

/// Serializes a typed resource with `resourceType` first.
pub fn to_json_string<T: FhirResource>(resource: &T) -> String {
    serde_json::to_string(&Tagged {
        resource_type: T::RESOURCE_TYPE,
        resource,
    })
    .unwrap_or_default()
}

impl Serialize for Resource<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Resource::Patient(r) => tagged(r.as_ref(), serializer),
            Resource::Encounter(r) => tagged(r.as_ref(), serializer),
            Resource::Condition(r) => tagged(r.as_ref(), serializer),
            Resource::MedicationRequest(r) => tagged(r.as_ref(), serializer),
            Resource::MedicationDispense(r) => tagged(r.as_ref(), serializer),
            Resource::Observation(r) => tagged(r.as_ref(), serializer),
            Resource::AllergyIntolerance(r) => tagged(r.as_ref(), serializer),
            Resource::Procedure(r) => tagged(r.as_ref(), serializer),
            Resource::Composition(r) => tagged(r.as_ref(), serializer),
            Resource::DocumentReference(r) => tagged(r.as_ref(), serializer),
            Resource::Organization(r) => tagged(r.as_ref(), serializer),
            Resource::Practitioner(r) => tagged(r.as_ref(), serializer),
            Resource::Bundle(r) => tagged(r.as_ref(), serializer),
            Resource::Other {
                resource_type,
                json,
            } => {
                let mut map = serializer.serialize_map(Some(json.len()))?;
                map.serialize_entry("resourceType", resource_type)?;
                for (key, value) in json.iter().filter(|(k, _)| *k != "resourceType") {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Resource<'a> {
    /// Reads a resource object. When `resourceType` is its first key (as FHIR servers write
    /// it), the rest is read straight into the typed struct; otherwise the object is gathered
    /// first and dispatched once its `resourceType` is known.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ResourceVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for ResourceVisitor<'a> {
            type Value = Resource<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a FHIR resource (a JSON object with resourceType)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Resource<'a>, A::Error> {
                use serde::de::Error;
                let Some(first) = map.next_key::<JsonKey<'de>>()? else {
                    return Err(A::Error::custom(ParseError::MissingResourceType));
                };
                if first.0 == "resourceType" {
                    let resource_type = map.next_value::<JsonKey<'de>>()?;
                    return typed_by_name(
                        &resource_type.0,
                        serde::de::value::MapAccessDeserializer::new(map),
                    );
                }
                let mut object = Map::new();
                let value: Value = map.next_value()?;
                object.insert(first.0.into_owned(), value);
                while let Some((key, value)) = map.next_entry::<String, Value>()? {
                    object.insert(key, value);
                }
                Resource::from_json_value(Value::Object(object)).map_err(A::Error::custom)
            }
        }
        deserializer.deserialize_map(ResourceVisitor(std::marker::PhantomData))
    }
}

impl<'de: 'a, 'a> crate::datatypes::Element<'de> for Option<Resource<'a>> {
    fn deserialize_element<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Deserialize::deserialize(deserializer)
    }
}

impl crate::datatypes::IntoStatic for Resource<'_> {
    type Static = Resource<'static>;
    fn into_static(self) -> Resource<'static> {
        match self {
            Resource::Patient(r) => Resource::Patient(r.into_static()),
            Resource::Encounter(r) => Resource::Encounter(r.into_static()),
            Resource::Condition(r) => Resource::Condition(r.into_static()),
            Resource::MedicationRequest(r) => Resource::MedicationRequest(r.into_static()),
            Resource::MedicationDispense(r) => Resource::MedicationDispense(r.into_static()),
            Resource::Observation(r) => Resource::Observation(r.into_static()),
            Resource::AllergyIntolerance(r) => Resource::AllergyIntolerance(r.into_static()),
            Resource::Procedure(r) => Resource::Procedure(r.into_static()),
            Resource::Composition(r) => Resource::Composition(r.into_static()),
            Resource::DocumentReference(r) => Resource::DocumentReference(r.into_static()),
            Resource::Organization(r) => Resource::Organization(r.into_static()),
            Resource::Practitioner(r) => Resource::Practitioner(r.into_static()),
            Resource::Bundle(r) => Resource::Bundle(r.into_static()),
            Resource::Other {
                resource_type,
                json,
            } => Resource::Other {
                resource_type,
                json,
            },
        }
    }
}
