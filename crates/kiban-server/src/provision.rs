//! What a provider may read of its own data, shared by the token API under `/fhir` and the
//! provider portal pages under `/provider`:
//!
//! - the **provision record** (Art. 32) as CSV: one row per intake of the provider (see
//!   [`PROVISION_RECORD_COLUMNS`]); items by category and the notification basis are each one
//!   cell (`Condition=3; Patient=2`, `letter: 2 patients, notified 2026-01-10..2026-02-01`), so
//!   the file has exactly one row per acquisition record;
//! - its **quarantine** (R-C5), a page at a time, and the original content of one quarantined
//!   entry, decrypted from the store, so the provider can fix and resend it.
//!
//! Every read is scoped to the signed-in provider in the query itself: an entry id of another
//! provider is simply not found.

use std::collections::HashMap;

use kiban_metadata::{Intake, Metadata, MetadataError, NotificationBasisSummary};
use kiban_model::ProviderId;
use serde::{Deserialize, Serialize};

use crate::CollectionState;

/// Columns of the provision record CSV, in order.
pub(crate) const PROVISION_RECORD_COLUMNS: &[&str] = &[
    "intake_id",
    "received_at",
    "finished_at",
    "source",
    "status",
    "resources_accepted",
    "resources_duplicate",
    "resources_held",
    "resources_refused",
    "resources_quarantined",
    "items_by_category",
    "payload_sha256",
    "notification_basis",
];

/// Acquisition records put in one provision record (far above what a provider sends).
const PROVISION_RECORD_LIMIT: i64 = 1_000_000;

/// Largest quarantine page.
pub(crate) const QUARANTINE_PAGE_MAX: i64 = 500;
/// Quarantine page size when none is asked for.
pub(crate) const QUARANTINE_PAGE_DEFAULT: i64 = 100;

/// Why a provider's read failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProvisionError {
    /// The metadata database failed.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// The quarantine blob could not be read or decrypted.
    #[error("quarantine blob {path}: {reason}")]
    Blob {
        /// Path of the blob.
        path: String,
        /// What went wrong (never its content).
        reason: String,
    },
}

/// The notification basis of an intake in one line: `letter: 2 patients, notified
/// 2026-01-10..2026-02-01; poster: 1 patient, notified 2025-12-24`.
pub(crate) fn basis_summary(basis: &[NotificationBasisSummary]) -> String {
    basis
        .iter()
        .map(|b| {
            let patients = if b.patients == 1 {
                "1 patient".to_owned()
            } else {
                format!("{} patients", b.patients)
            };
            let span = if b.earliest_notified_on == b.latest_notified_on {
                b.earliest_notified_on.to_string()
            } else {
                format!("{}..{}", b.earliest_notified_on, b.latest_notified_on)
            };
            format!("{}: {patients}, notified {span}", b.means)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Item counts in one cell: `Condition=3; Patient=2`.
pub(crate) fn items_summary(items: &[(String, i64)]) -> String {
    items
        .iter()
        .map(|(category, count)| format!("{category}={count}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A provider's intakes with their item counts and notification basis.
pub(crate) struct ProvisionRows {
    pub intakes: Vec<Intake>,
    pub items: HashMap<String, Vec<(String, i64)>>,
    pub basis: HashMap<String, Vec<NotificationBasisSummary>>,
}

/// Reads the acquisition records of one provider, the most recent first.
pub(crate) async fn provision_rows(
    meta: &Metadata,
    provider: &ProviderId,
    limit: i64,
) -> Result<ProvisionRows, MetadataError> {
    Ok(ProvisionRows {
        intakes: meta.provider_intakes(provider.as_str(), limit).await?,
        items: meta.provider_item_counts(provider.as_str()).await?,
        basis: meta.provider_notification_basis(provider.as_str()).await?,
    })
}

/// A text cell made safe for spreadsheets: a cell starting with `=`, `+`, `-`, `@` or a
/// control character would be read as a formula, so it gets a leading `'`.
fn text_cell(value: &str) -> String {
    match value.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r' | '\n') => format!("'{value}"),
        _ => value.to_owned(),
    }
}

/// The provision record of one provider as CSV (UTF-8, header row, CRLF line ends as
/// RFC 4180 asks).
pub(crate) async fn provision_record_csv(
    meta: &Metadata,
    provider: &ProviderId,
) -> Result<String, MetadataError> {
    let rows = provision_rows(meta, provider, PROVISION_RECORD_LIMIT).await?;
    let mut out = String::new();
    let mut push_row = |cells: &[String]| {
        let line = cells
            .iter()
            .map(|c| csv_field(c))
            .collect::<Vec<_>>()
            .join(",");
        out.push_str(&line);
        out.push_str("\r\n");
    };
    push_row(
        &PROVISION_RECORD_COLUMNS
            .iter()
            .map(|c| (*c).to_owned())
            .collect::<Vec<_>>(),
    );
    for intake in &rows.intakes {
        let items = rows.items.get(&intake.id).map(Vec::as_slice).unwrap_or(&[]);
        let basis = rows.basis.get(&intake.id).map(Vec::as_slice).unwrap_or(&[]);
        push_row(&[
            intake.id.clone(),
            intake.started_at.clone(),
            intake.finished_at.clone().unwrap_or_default(),
            text_cell(&intake.source),
            intake.status.code().to_owned(),
            intake.resources_accepted.to_string(),
            intake.resources_duplicate.to_string(),
            intake.resources_held.to_string(),
            intake.resources_refused.to_string(),
            intake.resources_rejected.to_string(),
            items_summary(items),
            intake.source_sha256.clone(),
            basis_summary(basis),
        ]);
    }
    Ok(out)
}

/// A CSV download of a provider's provision record.
pub(crate) fn csv_response(provider: &ProviderId, csv: String) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    use axum::response::IntoResponse;
    let safe_id: String = provider
        .as_str()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let disposition = format!("attachment; filename=\"provision-record-{safe_id}.csv\"");
    let mut response = csv.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// One CSV field, quoted when it holds a comma, quote or line break (RFC 4180).
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// The public id of a quarantined entry: `<intake id>.<line>.<entry index>`.
pub(crate) fn entry_id(intake_id: &str, line: i64, entry_index: i64) -> String {
    format!("{intake_id}.{line}.{entry_index}")
}

/// Splits an entry id into intake id, line and entry index.
pub(crate) fn parse_entry_id(id: &str) -> Option<(&str, i64, i64)> {
    let mut parts = id.rsplitn(3, '.');
    let entry_index = parts.next()?.parse().ok()?;
    let line = parts.next()?.parse().ok()?;
    let intake_id = parts.next().filter(|i| !i.is_empty())?;
    Some((intake_id, line, entry_index))
}

/// A quarantined entry as listed to its provider.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct QuarantineItem {
    /// Id to fetch the original content with.
    pub entry_id: String,
    pub intake_id: String,
    pub source: String,
    pub line: i64,
    pub entry_index: i64,
    pub resource_type: Option<String>,
    /// The element concerned (the part of the reason before `: `), when the reason names one.
    pub field_path: Option<String>,
    /// The rule broken (the whole reason: field path and rule, never a value).
    pub reason: String,
    pub received_at: String,
}

/// One page of a provider's quarantine.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct QuarantinePage {
    pub total: i64,
    pub count: i64,
    pub offset: i64,
    pub entries: Vec<QuarantineItem>,
}

/// The field path a reason starts with (`Observation.status: required` →
/// `Observation.status`), when it looks like one.
fn field_path_of(reason: &str) -> Option<String> {
    let (head, _) = reason.split_once(": ")?;
    let looks_like_path = !head.is_empty()
        && head.len() <= 200
        && head
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '[' | ']' | '_' | '-'));
    looks_like_path.then(|| head.to_owned())
}

/// One page of a provider's quarantine (`count` capped at [`QUARANTINE_PAGE_MAX`]).
pub(crate) async fn quarantine_page(
    meta: &Metadata,
    provider: &ProviderId,
    count: i64,
    offset: i64,
) -> Result<QuarantinePage, MetadataError> {
    let count = count.clamp(1, QUARANTINE_PAGE_MAX);
    let offset = offset.max(0);
    let total = meta.provider_quarantine_count(provider.as_str()).await?;
    let entries = meta
        .provider_quarantine(provider.as_str(), count, offset)
        .await?
        .into_iter()
        .map(|q| QuarantineItem {
            entry_id: entry_id(&q.intake_id, q.entry.line, q.entry.entry_index),
            field_path: field_path_of(&q.entry.reason),
            intake_id: q.intake_id,
            source: q.source,
            line: q.entry.line,
            entry_index: q.entry.entry_index,
            resource_type: q.entry.resource_type,
            reason: q.entry.reason,
            received_at: q.received_at,
        })
        .collect();
    Ok(QuarantinePage {
        total,
        count,
        offset,
        entries,
    })
}

/// One entry of a quarantine blob, as kiban-ingest writes it (`kiban-quarantine/1`).
#[derive(Deserialize)]
struct BlobEntry {
    line: i64,
    entry_index: i64,
    #[serde(default)]
    original: Option<String>,
    #[serde(default)]
    original_base64: Option<String>,
    #[serde(default)]
    original_truncated: bool,
}

#[derive(Deserialize)]
struct Blob {
    entries: Vec<BlobEntry>,
}

/// The original content of one quarantined entry, for its provider only.
#[derive(Serialize)]
pub(crate) struct QuarantinedOriginal {
    #[serde(flatten)]
    pub item: QuarantineItem,
    /// The rejected JSON text (of the Bundle entry, or of the line).
    pub original: Option<String>,
    /// The rejected bytes, base64, when they were not UTF-8.
    pub original_base64: Option<String>,
    /// Only the beginning of an oversized line was kept.
    pub original_truncated: bool,
}

/// The original content of quarantined entry `id` of `provider`, decrypted from the store;
/// `None` when there is no such entry of this provider.
pub(crate) async fn quarantined_original(
    collection: &CollectionState,
    provider: &ProviderId,
    id: &str,
) -> Result<Option<QuarantinedOriginal>, ProvisionError> {
    let Some((intake_id, line, entry_index)) = parse_entry_id(id) else {
        return Ok(None);
    };
    let meta = collection.collection.metadata();
    let Some(found) = meta
        .provider_quarantine_entry(provider.as_str(), intake_id, line, entry_index)
        .await?
    else {
        return Ok(None);
    };
    let store = collection.store.clone();
    let path = found.entry.blob_path.clone();
    let blob_error = |reason: String| ProvisionError::Blob {
        path: found.entry.blob_path.clone(),
        reason,
    };
    let blob: Blob = tokio::task::spawn_blocking(move || {
        let bytes = store.read_blob(&path).map_err(|e| e.to_string())?;
        // The reason names the JSON position, never content.
        serde_json::from_slice::<Blob>(&bytes).map_err(|e| format!("not a quarantine blob ({e})"))
    })
    .await
    .map_err(|e| blob_error(format!("reading stopped ({e})")))?
    .map_err(blob_error)?;
    let Some(original) = blob
        .entries
        .into_iter()
        .find(|e| e.line == line && e.entry_index == entry_index)
    else {
        return Err(ProvisionError::Blob {
            path: found.entry.blob_path,
            reason: "the indexed entry is missing from its blob".to_owned(),
        });
    };
    Ok(Some(QuarantinedOriginal {
        item: QuarantineItem {
            entry_id: entry_id(&found.intake_id, line, entry_index),
            field_path: field_path_of(&found.entry.reason),
            intake_id: found.intake_id,
            source: found.source,
            line,
            entry_index,
            resource_type: found.entry.resource_type,
            reason: found.entry.reason,
            received_at: found.received_at,
        },
        original: original.original,
        original_base64: original.original_base64,
        original_truncated: original.original_truncated,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiban_metadata::NotificationMeans;

    #[test]
    fn entry_ids_round_trip() {
        let id = entry_id("prov-001-0123456789abcdef", 12, 3);
        assert_eq!(id, "prov-001-0123456789abcdef.12.3");
        assert_eq!(
            parse_entry_id(&id),
            Some(("prov-001-0123456789abcdef", 12, 3))
        );
        assert_eq!(parse_entry_id("12.3"), None);
        assert_eq!(parse_entry_id("x.a.3"), None);
        assert_eq!(parse_entry_id(""), None);
    }

    #[test]
    fn cells_are_quoted_and_formulas_neutralized() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(text_cell("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(text_cell("prov-001/api/fhir"), "prov-001/api/fhir");
    }

    #[test]
    fn summaries_read_well() {
        let basis = [
            NotificationBasisSummary {
                means: NotificationMeans::Letter,
                patients: 2,
                earliest_notified_on: "2026-01-10".parse().unwrap(),
                latest_notified_on: "2026-02-01".parse().unwrap(),
            },
            NotificationBasisSummary {
                means: NotificationMeans::Poster,
                patients: 1,
                earliest_notified_on: "2025-12-24".parse().unwrap(),
                latest_notified_on: "2025-12-24".parse().unwrap(),
            },
        ];
        assert_eq!(
            basis_summary(&basis),
            "letter: 2 patients, notified 2026-01-10..2026-02-01; poster: 1 patient, notified 2025-12-24"
        );
        assert_eq!(
            items_summary(&[("Condition".into(), 3), ("Patient".into(), 2)]),
            "Condition=3; Patient=2"
        );
        assert_eq!(
            field_path_of("Observation.status: required element missing").as_deref(),
            Some("Observation.status")
        );
        assert_eq!(field_path_of("line is not valid JSON"), None);
    }
}
