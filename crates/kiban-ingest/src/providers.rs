//! `providers.json`: the providers of an intake root.

use crate::IngestError;
use kiban_metadata::NewProvider;
use kiban_model::ProviderKind;
use serde::Deserialize;
use std::path::Path;

/// File name of the provider list at the root of an intake directory.
pub const PROVIDERS_FILE: &str = "providers.json";

#[derive(Deserialize)]
struct ProviderEntry {
    id: String,
    name: String,
    #[serde(default)]
    name_en: Option<String>,
    kind: String,
}

/// Whether a provider id can name files of the store (`A-Z a-z 0-9 _ -`, at most 64).
fn is_valid_provider_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Reads and checks `providers.json`; errors name the file, the entry and the field.
pub fn read_providers(path: &Path) -> Result<Vec<NewProvider>, IngestError> {
    let bytes = std::fs::read(path).map_err(|source| IngestError::Io {
        path: path.to_owned(),
        action: "read",
        source,
    })?;
    let invalid = |reason: String| IngestError::Providers {
        path: path.to_owned(),
        reason,
    };
    let entries: Vec<ProviderEntry> = serde_json::from_slice(&bytes).map_err(|e| {
        invalid(format!(
            "not an array of {{\"id\", \"name\", \"name_en\", \"kind\"}} objects (line {}, column {}: {:?})",
            e.line(),
            e.column(),
            e.classify()
        ))
    })?;
    let mut providers = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        if !is_valid_provider_id(&entry.id) {
            return Err(invalid(format!(
                "entry {i}: id must be 1-64 characters of A-Z, a-z, 0-9, _ and -"
            )));
        }
        if entry.name.trim().is_empty() {
            return Err(invalid(format!("entry {i}: name is empty")));
        }
        let kind = ProviderKind::from_code(&entry.kind).ok_or_else(|| {
            let codes: Vec<&str> = ProviderKind::ALL.iter().map(|k| k.code()).collect();
            invalid(format!(
                "entry {i}: kind is not one of {}",
                codes.join(", ")
            ))
        })?;
        if providers.iter().any(|p: &NewProvider| p.id == entry.id) {
            return Err(invalid(format!("entry {i}: id is listed twice")));
        }
        providers.push(NewProvider {
            id: entry.id,
            name: entry.name,
            name_en: entry.name_en.filter(|n| !n.trim().is_empty()),
            kind,
        });
    }
    Ok(providers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PROVIDERS_FILE);
        std::fs::write(
            &path,
            r#"[{"id":"prov-001","name":"東都大学病院","name_en":"Toto","kind":"university_hospital"}]"#,
        )
        .unwrap();
        let providers = read_providers(&path).unwrap();
        assert_eq!(providers[0].kind, ProviderKind::UniversityHospital);

        std::fs::write(&path, r#"[{"id":"prov-001","name":"x","kind":"castle"}]"#).unwrap();
        let err = read_providers(&path).unwrap_err().to_string();
        assert!(
            err.contains("providers.json") && err.contains("entry 0"),
            "{err}"
        );

        std::fs::write(&path, r#"{"id":"prov-001"}"#).unwrap();
        let err = read_providers(&path).unwrap_err().to_string();
        assert!(
            err.contains("providers.json") && err.contains("line 1"),
            "{err}"
        );

        std::fs::write(&path, r#"[{"id":"prov/001","name":"x","kind":"clinic"}]"#).unwrap();
        assert!(read_providers(&path).is_err());
    }
}
