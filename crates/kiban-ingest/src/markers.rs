//! Infection markers (感染症情報): JLAC10 analyte codes whose results go to the `infections`
//! table rather than `lab_observations`.
//!
//! JLAC10 codes are 17 characters; the first 5 are the analyte (測定物), which is what makes a
//! test an infection marker whatever the specimen, method or result type that follow.

use kiban_fhir::CodeableConcept;

/// One infection-marker analyte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InfectionMarker {
    /// JLAC10 analyte code (first 5 characters of the 17-character code).
    pub analyte: &'static str,
    /// Japanese name.
    pub name_ja: &'static str,
    /// English name.
    pub name_en: &'static str,
}

/// The infection markers kiban files in `infections`, keyed on the JLAC10 analyte code.
pub const INFECTION_MARKERS: &[InfectionMarker] = &[
    InfectionMarker {
        analyte: "5F016",
        name_ja: "HBs抗原",
        name_en: "Hepatitis B surface antigen",
    },
    InfectionMarker {
        analyte: "5F360",
        name_ja: "HCV抗体",
        name_en: "Hepatitis C virus antibody",
    },
    InfectionMarker {
        analyte: "5E071",
        name_ja: "梅毒血清反応",
        name_en: "Syphilis serology",
    },
    InfectionMarker {
        analyte: "5F420",
        name_ja: "HIV-1,2抗原・抗体",
        name_en: "HIV-1/2 antigen and antibody",
    },
];

/// The infection marker of a JLAC10 code, if it is one.
pub fn infection_marker(jlac10: &str) -> Option<&'static InfectionMarker> {
    let analyte = jlac10.trim().get(..5)?;
    INFECTION_MARKERS
        .iter()
        .find(|m| m.analyte.eq_ignore_ascii_case(analyte))
}

/// The result of an infection-marker test, normalized when it says positive or negative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InfectionResult {
    Positive,
    Negative,
    AsWritten(String),
    Unknown,
}

/// Coded results meaning positive: v3 ObservationInterpretation and SNOMED CT.
const POSITIVE_CODES: &[&str] = &["POS", "DET", "10828004", "260373001"];
/// Coded results meaning negative.
const NEGATIVE_CODES: &[&str] = &["NEG", "ND", "260385009", "260415000"];

fn from_code(code: &str) -> Option<InfectionResult> {
    if POSITIVE_CODES.contains(&code) {
        Some(InfectionResult::Positive)
    } else if NEGATIVE_CODES.contains(&code) {
        Some(InfectionResult::Negative)
    } else {
        None
    }
}

fn from_text(text: &str) -> InfectionResult {
    let t: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let t = t
        .replace('（', "(")
        .replace('）', ")")
        .replace('－', "-")
        .replace('＋', "+");
    match t.as_str() {
        "陽性" | "(+)" | "+" | "positive" | "Positive" | "POS" => InfectionResult::Positive,
        "陰性" | "(-)" | "-" | "negative" | "Negative" | "NEG" => InfectionResult::Negative,
        _ => InfectionResult::AsWritten(text.trim().to_owned()),
    }
}

/// Reads the result from the interpretation code, a coded value, or a textual value.
pub(crate) fn infection_result(
    interpretation: Option<&str>,
    coded_value: Option<&CodeableConcept>,
    text_value: Option<&str>,
) -> InfectionResult {
    if let Some(result) = coded_value
        .into_iter()
        .flat_map(|c| c.coding.iter())
        .filter_map(|c| c.code.as_deref())
        .find_map(from_code)
    {
        return result;
    }
    if let Some(text) = text_value.filter(|t| !t.trim().is_empty()) {
        let result = from_text(text);
        if !matches!(result, InfectionResult::AsWritten(_)) || interpretation.is_none() {
            return result;
        }
    }
    if let Some(result) = interpretation.and_then(from_code) {
        return result;
    }
    match text_value.filter(|t| !t.trim().is_empty()) {
        Some(text) => InfectionResult::AsWritten(text.trim().to_owned()),
        None => InfectionResult::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_by_analyte() {
        assert_eq!(
            infection_marker("5F016141002301101").unwrap().name_ja,
            "HBs抗原"
        );
        assert_eq!(infection_marker("5f360").unwrap().analyte, "5F360");
        assert!(infection_marker("3D010000001926101").is_none());
        assert!(infection_marker("5F0").is_none());
    }

    #[test]
    fn results_are_normalized() {
        assert_eq!(
            infection_result(None, None, Some("陰性")),
            InfectionResult::Negative
        );
        assert_eq!(
            infection_result(None, None, Some("（＋）")),
            InfectionResult::Positive
        );
        assert_eq!(
            infection_result(Some("POS"), None, None),
            InfectionResult::Positive
        );
        assert_eq!(
            infection_result(Some("NEG"), None, Some("0.02")),
            InfectionResult::Negative
        );
        assert_eq!(
            infection_result(None, None, Some("判定保留")),
            InfectionResult::AsWritten("判定保留".into())
        );
        assert_eq!(infection_result(None, None, None), InfectionResult::Unknown);
    }
}
