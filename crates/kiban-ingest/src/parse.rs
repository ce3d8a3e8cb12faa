//! Phase A of a chunk, run in parallel over lines: JSON parsing, FHIR parsing, structural
//! validation and mapping to rows. Nothing here depends on other lines.

use crate::content_digest::content_digest;
use crate::lines::{LineContent, SourceLine};
use crate::mapping::{self, MapContext, Row, SubjectNeed};
use kiban_fhir::{Bundle, BundleEntry, Resource, ValidationIssue, parse_reference};
use kiban_store::Store;
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Domain of the keyed digest that identifies a resource: provider, type, source id.
pub(crate) const RESOURCE_DIGEST_DOMAIN: &str = "resource";
/// Domain of the keyed digest of a resource's content: provider, type, source id and the
/// SHA-256 of its canonical JSON. Held next to the identity digest, it tells a re-sent copy
/// (duplicate) from a changed resource under the same id (conflicting version).
pub(crate) const CONTENT_DIGEST_DOMAIN: &str = "resource-content";
/// Validation issues quoted in one reason; the rest are counted.
const ISSUES_IN_REASON: usize = 5;

/// How the entries of a line are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineMode {
    /// One resource on the line.
    Single,
    /// A transaction or document Bundle: all entries or none.
    AllOrNothing,
    /// A batch, collection or searchset Bundle: entry by entry.
    PerEntry,
}

/// A resource ready to be accepted, once its subject is resolved and it is not a duplicate.
#[derive(Debug, Clone)]
pub(crate) struct PreparedEntry {
    pub resource_type: String,
    /// The resource's logical id, when it has one.
    pub logical_id: Option<String>,
    pub identity_digest: [u8; 16],
    pub content_digest: [u8; 16],
    pub subject: SubjectNeed,
    /// The patient key of a Patient resource.
    pub own_patient_key: Option<String>,
    pub rows: Vec<Row>,
}

/// One resource of a line (the line's resource, or one Bundle entry).
#[derive(Debug, Clone)]
pub(crate) struct ParsedEntry {
    /// Index in `Bundle.entry` (0 for a single resource).
    pub index: usize,
    pub full_url: Option<String>,
    pub resource_type: Option<String>,
    pub outcome: Result<PreparedEntry, String>,
}

/// A line after phase A.
#[derive(Debug, Clone)]
pub(crate) struct ParsedLine {
    pub number: u64,
    pub bytes: u64,
    pub mode: LineMode,
    /// Whether the line holds a Bundle (entry originals are then taken from `entry[i]`).
    pub is_bundle: bool,
    /// Why the whole line is rejected (every entry with it), if it is.
    pub line_failure: Option<(Option<String>, String)>,
    pub entries: Vec<ParsedEntry>,
    /// The line itself, kept for the quarantine.
    pub content: LineContent,
}

/// What phase A makes of a line's text: a [`ParsedLine`] without the line. Why apart: the
/// resources read from the text borrow their strings from it, so the line is moved into the
/// [`ParsedLine`] only once they are gone.
struct LineOutcome {
    mode: LineMode,
    is_bundle: bool,
    line_failure: Option<(Option<String>, String)>,
    entries: Vec<ParsedEntry>,
}

impl LineOutcome {
    fn failed(resource_type: Option<String>, reason: String) -> Self {
        LineOutcome {
            mode: LineMode::Single,
            is_bundle: false,
            line_failure: Some((resource_type, reason)),
            entries: Vec::new(),
        }
    }

    /// One resource alone on its line.
    fn single(entry: ParsedEntry) -> Self {
        LineOutcome {
            mode: LineMode::Single,
            is_bundle: false,
            line_failure: None,
            entries: vec![entry],
        }
    }

    fn with_line(self, number: u64, bytes: u64, content: LineContent) -> ParsedLine {
        ParsedLine {
            number,
            bytes,
            mode: self.mode,
            is_bundle: self.is_bundle,
            line_failure: self.line_failure,
            entries: self.entries,
            content,
        }
    }
}

impl ParsedLine {
    /// Whether the line is blank (nothing to accept or reject).
    pub(crate) fn is_blank(&self) -> bool {
        self.line_failure.is_none() && self.entries.is_empty()
    }
}

/// What phase A needs besides the line.
pub(crate) struct ParseContext<'a> {
    pub store: &'a Store,
    pub provider_id: &'a str,
    pub intake_id: &'a str,
    pub max_line_bytes: usize,
}

/// Removes the ` at line L column C` suffix serde_json appends (the column is reported apart).
fn json_error_message(e: &serde_json::Error) -> String {
    let message = e.to_string();
    match message.find(" at line ") {
        Some(pos) => message[..pos].to_owned(),
        None => message,
    }
}

fn join_issues<'a>(issues: impl Iterator<Item = &'a ValidationIssue>) -> String {
    let issues: Vec<&ValidationIssue> = issues.collect();
    let mut reason = issues
        .iter()
        .take(ISSUES_IN_REASON)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join("; ");
    if issues.len() > ISSUES_IN_REASON {
        reason.push_str(&format!(
            "; and {} more issues",
            issues.len() - ISSUES_IN_REASON
        ));
    }
    reason
}

/// Whether a `resourceType` looks like a FHIR type name (so it may be echoed in reasons and
/// the quarantine index without carrying arbitrary input).
fn is_type_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_uppercase())
        && name.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Phase A for one line.
pub(crate) fn parse_line(line: SourceLine, ctx: &ParseContext<'_>) -> ParsedLine {
    let SourceLine {
        number,
        bytes,
        content,
    } = line;
    let outcome = match &content {
        LineContent::Text(text) => parse_text(text, ctx),
        LineContent::Oversized { length, .. } => {
            let reason = format!(
                "line of {length} bytes exceeds the limit of {} bytes",
                ctx.max_line_bytes
            );
            LineOutcome::failed(None, reason)
        }
        LineContent::NotUtf8(_) => LineOutcome::failed(None, "line is not valid UTF-8".to_owned()),
    };
    outcome.with_line(number, bytes, content)
}

/// Phase A for the text of a line.
fn parse_text(text: &str, ctx: &ParseContext<'_>) -> LineOutcome {
    if text.trim().is_empty() {
        return LineOutcome {
            mode: LineMode::Single,
            is_bundle: false,
            line_failure: None,
            entries: Vec::new(),
        };
    }
    // Fast path: the line read straight into typed resources, their strings borrowed from
    // the text. Anything it does not take (an error anywhere, an odd resourceType) goes the
    // tree way below, which reports errors entry by entry with their element paths.
    match serde_json::from_str::<Resource<'_>>(text) {
        Ok(Resource::Bundle(mut bundle)) => {
            let entries = std::mem::take(&mut bundle.entry);
            let mode = line_mode(bundle.type_.as_deref());
            let raw = entries
                .into_iter()
                .enumerate()
                .map(|(index, entry)| typed_entry(index, entry, mode))
                .collect();
            let bundle_type = bundle.type_.as_deref().map(str::to_owned);
            return finish_bundle(bundle_type, Ok(*bundle), raw, mode, ctx);
        }
        Ok(resource) if is_type_name(resource.resource_type()) => {
            let resource_type = resource.resource_type().to_owned();
            return LineOutcome::single(prepare_single(Ok(resource), resource_type, ctx));
        }
        _ => {}
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let reason = format!(
                "invalid JSON at column {}: {}",
                e.column(),
                json_error_message(&e)
            );
            return LineOutcome::failed(None, reason);
        }
    };
    let Value::Object(object) = value else {
        return LineOutcome::failed(None, "not a JSON object".to_owned());
    };
    let resource_type = match object.get("resourceType") {
        Some(Value::String(t)) if is_type_name(t) => t.clone(),
        Some(Value::String(_)) => {
            return LineOutcome::failed(
                None,
                "resourceType: not a FHIR resource type name".to_owned(),
            );
        }
        _ => {
            return LineOutcome::failed(None, "resourceType: missing or not a string".to_owned());
        }
    };
    if resource_type == "Bundle" {
        parse_bundle(object, ctx)
    } else {
        let parsed = if mapping::is_supported(&resource_type) {
            Resource::from_json_value(Value::Object(object)).map_err(|e| e.to_string())
        } else {
            Err(String::new())
        };
        LineOutcome::single(prepare_single(parsed, resource_type, ctx))
    }
}

/// The source id of a resource: its logical id, else the id in its `fullUrl`, else a digest
/// of its content (so an id-less resource re-sent unchanged is still recognized).
fn source_id_of(resource: &Resource, full_url: Option<&str>, content: &[u8; 32]) -> String {
    if let Some(id) = resource.id().map(str::trim).filter(|id| !id.is_empty()) {
        return id.to_owned();
    }
    if let Some(target) = full_url.and_then(parse_reference) {
        return target.id;
    }
    format!("sha256-{}", hex::encode(&content[..16]))
}

/// A resource alone on its line, parsed (or not) by the caller.
fn prepare_single(
    parsed: Result<Resource, String>,
    resource_type: String,
    ctx: &ParseContext<'_>,
) -> ParsedEntry {
    let mut entry = ParsedEntry {
        index: 0,
        full_url: None,
        resource_type: Some(resource_type.clone()),
        outcome: Err(String::new()),
    };
    if !mapping::is_supported(&resource_type) {
        entry.outcome = Err(format!(
            "{resource_type}: resource type not supported for intake"
        ));
        return entry;
    }
    let resource = match parsed {
        Ok(r) => r,
        Err(reason) => {
            entry.outcome = Err(reason);
            return entry;
        }
    };
    let issues = kiban_fhir::validate(&resource);
    if !issues.is_empty() {
        entry.outcome = Err(join_issues(issues.iter()));
        return entry;
    }
    let content = content_digest(&resource);
    let source_id = source_id_of(&resource, None, &content);
    entry.outcome = prepare(&resource, source_id, &content, &HashMap::new(), ctx);
    entry
}

/// Maps a valid resource and computes its digests.
fn prepare(
    resource: &Resource,
    source_id: String,
    content: &[u8; 32],
    source_ids: &HashMap<String, String>,
    ctx: &ParseContext<'_>,
) -> Result<PreparedEntry, String> {
    let map_ctx = MapContext {
        provider_id: ctx.provider_id,
        intake_id: ctx.intake_id,
        source_ids,
    };
    let mapped = mapping::map_resource(resource, &source_id, &map_ctx)?;
    let resource_type = resource.resource_type().to_owned();
    let provider = ctx.provider_id.as_bytes();
    let identity_digest = ctx.store.keyed_digest(
        RESOURCE_DIGEST_DOMAIN,
        &[provider, resource_type.as_bytes(), source_id.as_bytes()],
    );
    let content_digest = ctx.store.keyed_digest(
        CONTENT_DIGEST_DOMAIN,
        &[
            provider,
            resource_type.as_bytes(),
            source_id.as_bytes(),
            content,
        ],
    );
    let own_patient_key = match &mapped.subject {
        SubjectNeed::OwnPatient {
            provider_patient_id,
        } => Some(
            ctx.store
                .patient_key(ctx.provider_id, provider_patient_id)
                .0,
        ),
        _ => None,
    };
    Ok(PreparedEntry {
        resource_type,
        logical_id: resource.id().map(str::to_owned),
        identity_digest,
        content_digest,
        subject: mapped.subject,
        own_patient_key,
        rows: mapped.rows,
    })
}

/// In a document, an Encounter without a subject is about the document's subject (the
/// Composition's, which `bdl-11` puts first): JP-CLINS documents leave it out there.
fn inherit_document_subject(bundle: &mut Bundle) {
    let subject = match bundle.entry.first().and_then(|e| e.resource.as_ref()) {
        Some(Resource::Composition(composition)) => composition.subject.clone(),
        _ => None,
    };
    let Some(subject) = subject else {
        return;
    };
    for entry in &mut bundle.entry {
        if let Some(Resource::Encounter(encounter)) = entry.resource.as_mut()
            && encounter.subject.is_none()
        {
            encounter.subject = Some(subject.clone());
        }
    }
}

/// The prepared form of a carried resource: recognised on re-delivery like any other, no rows.
fn carried_entry(
    carried: CarriedResource,
    full_url: Option<&str>,
    ctx: &ParseContext<'_>,
) -> PreparedEntry {
    let source_id = carried
        .logical_id
        .clone()
        .or_else(|| full_url.and_then(parse_reference).map(|target| target.id))
        .unwrap_or_else(|| hex::encode(&carried.content[..16]));
    let provider = ctx.provider_id.as_bytes();
    let type_bytes = carried.resource_type.as_bytes();
    PreparedEntry {
        identity_digest: ctx.store.keyed_digest(
            RESOURCE_DIGEST_DOMAIN,
            &[provider, type_bytes, source_id.as_bytes()],
        ),
        content_digest: ctx.store.keyed_digest(
            CONTENT_DIGEST_DOMAIN,
            &[provider, type_bytes, source_id.as_bytes(), &carried.content],
        ),
        resource_type: carried.resource_type,
        logical_id: carried.logical_id,
        subject: SubjectNeed::Nobody,
        own_patient_key: None,
        rows: Vec::new(),
    }
}

/// An entry of a Bundle between parsing and mapping.
struct RawEntry<'a> {
    full_url: Option<String>,
    resource_type: Option<String>,
    content: [u8; 32],
    parsed: Result<Resource<'a>, String>,
    shell: Option<BundleEntry<'a>>,
    /// A well-formed resource of a type kiban does not map, carried by an all-or-nothing
    /// Bundle (e.g. `Coverage` or `PractitionerRole` in a JP-CLINS document).
    carried: Option<CarriedResource>,
}

/// A resource kiban takes with its Bundle without mapping it to rows. Why: a document or
/// transaction is taken whole or not at all, and real clinical documents carry resources
/// beyond kiban's model; refusing the whole document for them would lose its clinical content.
#[derive(Debug, Clone)]
struct CarriedResource {
    resource_type: String,
    logical_id: Option<String>,
    content: [u8; 32],
}

/// The carried form of an unmapped resource, if it is well-formed: a JSON object whose `id`,
/// when present, is a FHIR id.
fn carried_resource(resource_type: &str, resource: &Value) -> Option<CarriedResource> {
    let object = resource.as_object()?;
    let logical_id = match object.get("id") {
        None => None,
        Some(Value::String(id)) if is_fhir_id(id) => Some(id.clone()),
        Some(_) => return None,
    };
    // serde_json's map is ordered by key, so the bytes are canonical for the content digest.
    let bytes = serde_json::to_vec(resource).ok()?;
    Some(CarriedResource {
        resource_type: resource_type.to_owned(),
        logical_id,
        content: Sha256::digest(&bytes).into(),
    })
}

fn is_fhir_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fn read_entry(index: usize, value: Value, mode: LineMode) -> RawEntry<'static> {
    let mut raw = RawEntry {
        full_url: None,
        resource_type: None,
        content: [0; 32],
        parsed: Err(String::new()),
        shell: None,
        carried: None,
    };
    let Value::Object(mut object) = value else {
        raw.parsed = Err(format!("Bundle.entry[{index}]: not a JSON object"));
        return raw;
    };
    let resource = object.remove("resource");
    raw.full_url = object
        .get("fullUrl")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let shell = match BundleEntry::deserialize(Value::Object(object)) {
        Ok(s) => s,
        Err(_) => {
            raw.parsed = Err(format!(
                "Bundle.entry[{index}]: entry elements (fullUrl, request, ...) do not have the FHIR shape"
            ));
            return raw;
        }
    };
    let Some(resource) = resource else {
        raw.parsed = Err(format!(
            "Bundle.entry[{index}].resource: required for intake (missing)"
        ));
        raw.shell = Some(shell);
        return raw;
    };
    raw.resource_type = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .filter(|t| is_type_name(t))
        .map(str::to_owned);
    if mode != LineMode::PerEntry
        && let Some(method) = shell.request.as_ref().and_then(|r| r.method.as_deref())
        && !matches!(method, "POST" | "PUT")
    {
        raw.parsed = Err(format!(
            "Bundle.entry[{index}].request.method: only POST and PUT are accepted by the file intake (updates and deletions come with the intake API)"
        ));
        raw.shell = Some(shell);
        return raw;
    }
    raw.parsed = match raw.resource_type.as_deref() {
        None => Err(format!(
            "Bundle.entry[{index}].resource.resourceType: missing, not a string, or not a FHIR resource type name"
        )),
        Some(t) if !mapping::is_supported(t) => {
            if mode == LineMode::AllOrNothing {
                raw.carried = carried_resource(t, &resource);
            }
            Err(format!(
                "Bundle.entry[{index}].resource: resource type {t} not supported for intake"
            ))
        }
        Some(_) => Resource::from_json_value(resource)
            .map_err(|e| format!("Bundle.entry[{index}].resource: {e}")),
    };
    if let Ok(resource) = &raw.parsed {
        raw.content = content_digest(resource);
    }
    raw.shell = Some(shell);
    raw
}

/// An entry of a Bundle the fast path read whole: the same checks as [`read_entry`].
fn typed_entry(index: usize, mut entry: BundleEntry<'_>, mode: LineMode) -> RawEntry<'_> {
    let resource = entry.resource.take();
    let mut raw = RawEntry {
        full_url: entry.full_url.as_deref().map(str::to_owned),
        resource_type: resource
            .as_ref()
            .map(Resource::resource_type)
            .filter(|t| is_type_name(t))
            .map(str::to_owned),
        content: [0; 32],
        parsed: Err(String::new()),
        shell: None,
        carried: None,
    };
    raw.parsed = match resource {
        None => Err(format!(
            "Bundle.entry[{index}].resource: required for intake (missing)"
        )),
        Some(_)
            if mode != LineMode::PerEntry
                && entry
                    .request
                    .as_ref()
                    .and_then(|r| r.method.as_deref())
                    .is_some_and(|method| !matches!(method, "POST" | "PUT")) =>
        {
            Err(format!(
                "Bundle.entry[{index}].request.method: only POST and PUT are accepted by the file intake (updates and deletions come with the intake API)"
            ))
        }
        Some(resource) => match raw.resource_type.as_deref() {
            None => Err(format!(
                "Bundle.entry[{index}].resource.resourceType: missing, not a string, or not a FHIR resource type name"
            )),
            Some(t) if !mapping::is_supported(t) => {
                if mode == LineMode::AllOrNothing
                    && let Resource::Other { json, .. } = resource
                {
                    raw.carried = carried_resource(t, &Value::Object(json));
                }
                Err(format!(
                    "Bundle.entry[{index}].resource: resource type {t} not supported for intake"
                ))
            }
            Some(_) => {
                raw.content = content_digest(&resource);
                Ok(resource)
            }
        },
    };
    raw.shell = Some(entry);
    raw
}

/// How the entries of a Bundle of this type are accepted.
fn line_mode(bundle_type: Option<&str>) -> LineMode {
    match bundle_type {
        Some("batch") | Some("collection") | Some("searchset") => LineMode::PerEntry,
        _ => LineMode::AllOrNothing,
    }
}

/// The entry index an issue path of a validated Bundle points into (`Bundle.entry[3]...`).
fn issue_entry_index(path: &str) -> Option<usize> {
    let rest = path.strip_prefix("Bundle.entry[")?;
    let end = rest.find(']')?;
    rest[..end].parse().ok()
}

fn parse_bundle(mut object: Map<String, Value>, ctx: &ParseContext<'_>) -> LineOutcome {
    let entries_value = object.remove("entry");
    let bundle_type = object
        .get("type")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let entry_values = match entries_value {
        None => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return LineOutcome::failed(
                Some("Bundle".to_owned()),
                "Bundle.entry: not an array".to_owned(),
            );
        }
    };
    let mode = line_mode(bundle_type.as_deref());
    let raw: Vec<RawEntry> = entry_values
        .into_iter()
        .enumerate()
        .map(|(i, v)| read_entry(i, v, mode))
        .collect();
    let bundle = match Resource::from_json_value(Value::Object(object)) {
        Ok(Resource::Bundle(b)) => Ok(*b),
        Ok(_) => Err("Bundle: not read as a Bundle".to_owned()),
        Err(e) => Err(e.to_string()),
    };
    finish_bundle(bundle_type, bundle, raw, mode, ctx)
}

/// The part of a Bundle's phase A shared by both parse paths: the Bundle (without its
/// entries) and its entries read one by one.
fn finish_bundle<'a>(
    bundle_type: Option<String>,
    bundle: Result<Bundle<'a>, String>,
    raw: Vec<RawEntry<'a>>,
    mode: LineMode,
    ctx: &ParseContext<'_>,
) -> LineOutcome {
    let mut parsed_line = LineOutcome {
        mode,
        is_bundle: true,
        line_failure: None,
        entries: raw
            .iter()
            .enumerate()
            .map(|(index, r)| ParsedEntry {
                index,
                full_url: r.full_url.clone(),
                resource_type: r.resource_type.clone(),
                outcome: Err(String::new()),
            })
            .collect(),
    };
    let bundle_failure = |reason: String| Some((Some("Bundle".to_owned()), reason));
    match bundle_type.as_deref() {
        None => {
            parsed_line.line_failure =
                bundle_failure("Bundle.type: required element is missing (min 1)".to_owned());
            return parsed_line;
        }
        Some("transaction" | "document" | "batch" | "collection" | "searchset") => {}
        Some(_) => {
            parsed_line.line_failure = bundle_failure(
                "Bundle.type: not accepted by the file intake (transaction, document, batch, collection, searchset)"
                    .to_owned(),
            );
            return parsed_line;
        }
    }
    let mut bundle = match bundle {
        Ok(bundle) => bundle,
        Err(reason) => {
            parsed_line.line_failure = bundle_failure(reason);
            return parsed_line;
        }
    };
    // Validate the Bundle with the entries that parsed, keeping indices aligned.
    let mut outcomes: Vec<Result<(), String>> = Vec::with_capacity(raw.len());
    let mut contents = Vec::with_capacity(raw.len());
    let mut carried = Vec::with_capacity(raw.len());
    bundle.entry = raw
        .into_iter()
        .map(|r| {
            contents.push(r.content);
            carried.push(r.carried);
            let mut shell = r.shell.unwrap_or_default();
            match r.parsed {
                Ok(resource) => {
                    shell.resource = Some(resource);
                    outcomes.push(Ok(()));
                }
                Err(reason) => outcomes.push(Err(reason)),
            }
            shell
        })
        .collect();
    let validated = Resource::Bundle(Box::new(bundle));
    let issues = kiban_fhir::validate(&validated);
    let Resource::Bundle(mut bundle) = validated else {
        unreachable!("constructed as a Bundle just above")
    };
    if bundle_type.as_deref() == Some("document") {
        inherit_document_subject(&mut bundle);
    }
    let (entry_issues, bundle_issues): (Vec<_>, Vec<_>) = issues
        .iter()
        .partition(|i| issue_entry_index(&i.path).is_some());
    if !bundle_issues.is_empty() {
        parsed_line.line_failure = bundle_failure(join_issues(bundle_issues.into_iter()));
        return parsed_line;
    }
    for (i, outcome) in outcomes.iter_mut().enumerate() {
        if outcome.is_ok() {
            let mine: Vec<&ValidationIssue> = entry_issues
                .iter()
                .copied()
                .filter(|issue| issue_entry_index(&issue.path) == Some(i))
                .collect();
            if !mine.is_empty() {
                *outcome = Err(join_issues(mine.into_iter()));
            }
        }
    }
    let source_ids: HashMap<String, String> = bundle
        .entry
        .iter()
        .zip(contents.iter())
        .filter_map(|(e, content)| {
            let full_url = e.full_url.as_deref()?.to_owned();
            let resource = e.resource.as_ref()?;
            let id = source_id_of(resource, Some(&full_url), content);
            Some((full_url, id))
        })
        .collect();
    for (i, (entry, outcome)) in bundle.entry.iter().zip(outcomes).enumerate() {
        let parsed = &mut parsed_line.entries[i];
        parsed.outcome = match (outcome, entry.resource.as_ref(), carried[i].take()) {
            (Err(_), _, Some(carried)) => {
                Ok(carried_entry(carried, entry.full_url.as_deref(), ctx))
            }
            (Err(reason), _, None) => Err(reason),
            (Ok(()), None, _) => Err(format!("Bundle.entry[{i}].resource: missing")),
            (Ok(()), Some(resource), _) => {
                let source_id = source_id_of(resource, entry.full_url.as_deref(), &contents[i]);
                prepare(resource, source_id, &contents[i], &source_ids, ctx)
                    .map_err(|reason| format!("Bundle.entry[{i}].resource: {reason}"))
            }
        };
    }
    parsed_line
}
