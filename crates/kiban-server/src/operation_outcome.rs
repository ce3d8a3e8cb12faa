//! FHIR `OperationOutcome` responses of the intake API.
//!
//! Every answer of `/fhir` other than the CapabilityStatement is an OperationOutcome: a list of
//! issues, each with a severity, an issue-type code and a diagnostic text. Diagnostics name the
//! rule, path, line or entry, never a submitted value or the bearer token.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Media type of FHIR JSON.
pub const FHIR_JSON: &str = "application/fhir+json";

/// How serious an issue is (FHIR `issue-severity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The request failed, or a resource of it was not taken.
    Error,
    /// Taken, with something the sender should look at.
    Warning,
    /// For the sender's information.
    Information,
}

/// The kind of an issue (a subset of FHIR `issue-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IssueType {
    /// Content invalid against the specification or a profile.
    Invalid,
    /// Structural problem (not JSON, not a resource).
    Structure,
    /// A processing rule was broken.
    Processing,
    /// Not allowed (an opt-out refusal).
    Forbidden,
    /// Authentication needed or failed.
    Login,
    /// Too many requests or too large.
    TooCostly,
    /// Not supported by this server.
    NotSupported,
    /// Two requests conflict (an idempotency key reused with another body).
    Conflict,
    /// An unexpected internal error.
    Exception,
    /// For information only.
    Informational,
}

/// One issue of an [`OperationOutcome`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    /// Severity.
    pub severity: Severity,
    /// Issue type.
    pub code: IssueType,
    /// Human-readable explanation (a rule and a path, never a value).
    pub diagnostics: String,
    /// FHIRPath expressions of the elements concerned, e.g. `Bundle.entry[3]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expression: Vec<String>,
    /// Locations in the submitted body, e.g. `line 12` of an ndjson upload.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub location: Vec<String>,
}

impl Issue {
    /// An issue without expression or location.
    pub fn new(severity: Severity, code: IssueType, diagnostics: impl Into<String>) -> Self {
        Issue {
            severity,
            code,
            diagnostics: diagnostics.into(),
            expression: Vec::new(),
            location: Vec::new(),
        }
    }

    /// The same issue pointing at `expression`.
    pub fn at(mut self, expression: impl Into<String>) -> Self {
        self.expression.push(expression.into());
        self
    }

    /// The same issue located at `location`.
    pub fn located(mut self, location: impl Into<String>) -> Self {
        self.location.push(location.into());
        self
    }
}

/// A FHIR `OperationOutcome` resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OperationOutcome {
    #[serde(rename = "resourceType")]
    resource_type: ResourceTypeTag,
    /// The issues, most important first.
    pub issue: Vec<Issue>,
}

/// Serializes as the constant `"OperationOutcome"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ResourceTypeTag;

impl Serialize for ResourceTypeTag {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("OperationOutcome")
    }
}

impl OperationOutcome {
    /// An outcome of the given issues.
    pub fn new(issue: Vec<Issue>) -> Self {
        OperationOutcome {
            resource_type: ResourceTypeTag,
            issue,
        }
    }

    /// An outcome of one error issue.
    pub fn error(code: IssueType, diagnostics: impl Into<String>) -> Self {
        Self::new(vec![Issue::new(Severity::Error, code, diagnostics)])
    }

    /// The outcome as JSON text.
    pub fn to_json(&self) -> String {
        // Serializing plain strings and enums cannot fail; an empty outcome is the safe answer
        // should it ever.
        serde_json::to_string(self)
            .unwrap_or_else(|_| r#"{"resourceType":"OperationOutcome","issue":[]}"#.to_owned())
    }

    /// The outcome as a response with `status`.
    pub fn into_response_with(self, status: StatusCode) -> Response {
        fhir_json_response(status, self.to_json())
    }
}

/// A response of FHIR JSON text with `status`.
pub fn fhir_json_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fhir+json; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_a_fhir_operation_outcome() {
        let outcome = OperationOutcome::new(vec![
            Issue::new(
                Severity::Error,
                IssueType::Invalid,
                "Condition.code: required",
            )
            .at("Bundle.entry[3]")
            .located("line 2"),
            Issue::new(Severity::Information, IssueType::Informational, "ok"),
        ]);
        let json: serde_json::Value = serde_json::from_str(&outcome.to_json()).unwrap();
        assert_eq!(json["resourceType"], "OperationOutcome");
        assert_eq!(json["issue"][0]["severity"], "error");
        assert_eq!(json["issue"][0]["code"], "invalid");
        assert_eq!(json["issue"][0]["expression"][0], "Bundle.entry[3]");
        assert_eq!(json["issue"][0]["location"][0], "line 2");
        assert_eq!(json["issue"][1]["code"], "informational");
        assert!(json["issue"][1].get("expression").is_none());
    }

    #[test]
    fn issue_type_codes_are_fhir_codes() {
        let code = serde_json::to_value(IssueType::TooCostly).unwrap();
        assert_eq!(code, "too-costly");
        let code = serde_json::to_value(IssueType::NotSupported).unwrap();
        assert_eq!(code, "not-supported");
    }
}
