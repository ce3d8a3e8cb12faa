//! Normalizing literal references (`Patient/123`, `urn:uuid:…`, absolute URLs) to a type and id.

/// How a literal reference is spelled.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReferenceKind {
    /// `Type/id` relative to the server base.
    Relative,
    /// `https://server/base/Type/id`, with the base kept.
    Absolute {
        /// The service base URL (without the trailing `/Type/id`).
        base: String,
    },
    /// `urn:uuid:…` or `urn:oid:…`, resolved against `Bundle.entry.fullUrl`.
    Urn,
    /// `#id`, a contained resource.
    Contained,
}

/// A literal reference split into its parts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReferenceTarget {
    /// How the reference was spelled.
    pub kind: ReferenceKind,
    /// The resource type, when the reference names one (not for URNs or contained ids).
    pub resource_type: Option<String>,
    /// The logical id; for URNs the uuid/oid without the `urn:uuid:` prefix.
    pub id: String,
    /// The `_history` version, if the reference is version specific.
    pub version: Option<String>,
}

fn is_resource_type(segment: &str) -> bool {
    segment
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_uppercase())
        && segment.chars().all(|c| c.is_ascii_alphanumeric())
}

fn is_id(segment: &str) -> bool {
    !segment.is_empty()
        && segment.len() <= 64
        && segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// Splits a literal reference into type and id.
///
/// ```
/// use kiban_fhir::reference::{parse_reference, ReferenceKind};
/// let r = parse_reference("Patient/123").unwrap();
/// assert_eq!((r.resource_type.as_deref(), r.id.as_str()), (Some("Patient"), "123"));
/// let r = parse_reference("urn:uuid:0f4c4f5e-6b0c-4bb7-9d3c-3f2d1a0b9c8e").unwrap();
/// assert_eq!(r.kind, ReferenceKind::Urn);
/// let r = parse_reference("https://example.jp/fhir/Observation/o1/_history/2").unwrap();
/// assert_eq!(r.version.as_deref(), Some("2"));
/// ```
pub fn parse_reference(reference: &str) -> Option<ReferenceTarget> {
    let reference = reference.trim();
    if let Some(id) = reference.strip_prefix('#') {
        return is_id(id).then(|| ReferenceTarget {
            kind: ReferenceKind::Contained,
            resource_type: None,
            id: id.to_owned(),
            version: None,
        });
    }
    for prefix in ["urn:uuid:", "urn:oid:"] {
        if let Some(id) = reference.strip_prefix(prefix) {
            return (!id.is_empty()).then(|| ReferenceTarget {
                kind: ReferenceKind::Urn,
                resource_type: None,
                id: id.to_owned(),
                version: None,
            });
        }
    }
    let (head, version) = match reference.split_once("/_history/") {
        Some((head, version)) if is_id(version) => (head, Some(version.to_owned())),
        Some(_) => return None,
        None => (reference, None),
    };
    let (before, id) = head.rsplit_once('/')?;
    if !is_id(id) {
        return None;
    }
    let (base, resource_type) = match before.rsplit_once('/') {
        Some((base, t)) => (Some(base), t),
        None => (None, before),
    };
    if !is_resource_type(resource_type) {
        return None;
    }
    let kind = match base {
        None => ReferenceKind::Relative,
        Some(base) if base.contains("://") => ReferenceKind::Absolute {
            base: base.to_owned(),
        },
        Some(_) => return None,
    };
    Some(ReferenceTarget {
        kind,
        resource_type: Some(resource_type.to_owned()),
        id: id.to_owned(),
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings() {
        let r = parse_reference("Patient/p-1").unwrap();
        assert_eq!(r.kind, ReferenceKind::Relative);
        let r = parse_reference("http://h.example/fhir/r4/Patient/p-1").unwrap();
        assert_eq!(
            r.kind,
            ReferenceKind::Absolute {
                base: "http://h.example/fhir/r4".into()
            }
        );
        assert_eq!(r.resource_type.as_deref(), Some("Patient"));
        assert_eq!(parse_reference("urn:oid:1.2.3").unwrap().id, "1.2.3");
        assert_eq!(
            parse_reference("#med1").unwrap().kind,
            ReferenceKind::Contained
        );
        assert!(parse_reference("patient/1").is_none());
        assert!(parse_reference("Patient/").is_none());
        assert!(parse_reference("just-text").is_none());
        assert!(parse_reference("a/b/Patient/1").is_none());
    }
}
