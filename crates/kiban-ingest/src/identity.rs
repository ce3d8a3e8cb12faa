//! Patient identity: the provider's patient id and the identity row of a FHIR `Patient`.

use crate::text::{NameScript, name_script, nfkc_trim};
use kiban_fhir::{HumanName, Identifier, NameRepresentation, Patient};
use kiban_model::CodeSystem;

/// OID prefix of JP Core provider patient ids: `urn:oid:1.2.392.100495.20.3.51.1` followed by
/// the 10-digit medical institution code.
pub const PATIENT_ID_SYSTEM_PREFIX: &str = "urn:oid:1.2.392.100495.20.3.51.1";

/// The v2-0203 identifier type system, whose code `MR` marks a medical record number.
const IDENTIFIER_TYPE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";

/// Whether an identifier is the provider's own patient id (JP Core system or type `MR`).
pub(crate) fn is_provider_patient_identifier(identifier: &Identifier) -> bool {
    let by_system = identifier
        .system
        .as_deref()
        .is_some_and(|s| s.starts_with(PATIENT_ID_SYSTEM_PREFIX));
    let by_type = identifier.type_.as_ref().is_some_and(|t| {
        t.coding.iter().any(|c| {
            c.code.as_deref() == Some("MR")
                && c.system
                    .as_deref()
                    .is_none_or(|s| s == IDENTIFIER_TYPE_SYSTEM)
        })
    });
    by_system || by_type
}

fn is_insurance_identifier(identifier: &Identifier) -> bool {
    identifier.system.as_deref() == Some(CodeSystem::InsuranceMemberId.url())
}

/// The provider patient id of a Patient, NFKC-normalized and trimmed: the JP Core patient id
/// identifier, else the first identifier that is not the insurance member id, else the logical
/// id. `None` when the Patient has none of them.
pub(crate) fn provider_patient_id(patient: &Patient) -> Option<String> {
    let value = |i: &Identifier| i.value.as_deref().map(nfkc_trim).filter(|v| !v.is_empty());
    patient
        .identifier
        .iter()
        .filter(|i| is_provider_patient_identifier(i))
        .find_map(value)
        .or_else(|| {
            patient
                .identifier
                .iter()
                .filter(|i| !is_insurance_identifier(i))
                .find_map(value)
        })
        .or_else(|| {
            patient
                .id
                .as_deref()
                .map(nfkc_trim)
                .filter(|v| !v.is_empty())
        })
}

/// The provider patient id named by a `Reference.identifier`, when it is one.
pub(crate) fn patient_id_of_reference_identifier(identifier: &Identifier) -> Option<String> {
    if !is_provider_patient_identifier(identifier) {
        return None;
    }
    identifier
        .value
        .as_deref()
        .map(nfkc_trim)
        .filter(|v| !v.is_empty())
}

/// One name as written: `text`, else family and given names separated by a space.
fn name_text(name: &HumanName) -> Option<String> {
    if let Some(text) = name
        .text
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        return Some(text.to_owned());
    }
    let parts: Vec<&str> = name
        .family
        .iter()
        .map(|part| &**part)
        .chain(name.given.iter().map(|part| &**part))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// The kanji and kana names: by the JP Core representation extension (IDE = kanji, SYL =
/// kana), otherwise by the script the name is written in.
pub(crate) fn kanji_and_kana(patient: &Patient) -> (Option<String>, Option<String>) {
    let mut kanji = patient
        .name_in(NameRepresentation::Ideographic)
        .and_then(name_text);
    let mut kana = patient
        .name_in(NameRepresentation::Syllabic)
        .and_then(name_text);
    for name in patient.name.iter().filter(|n| n.representation().is_none()) {
        let Some(text) = name_text(name) else {
            continue;
        };
        match name_script(&text) {
            NameScript::Kanji if kanji.is_none() => kanji = Some(text),
            NameScript::Kana if kana.is_none() => kana = Some(text),
            _ => {}
        }
    }
    (kanji, kana)
}

/// The insurance member id `保険者番号:記号:番号:枝番`, NFKC-normalized, split into its four
/// parts (absent or empty parts are `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct InsuranceCard {
    pub insurer_number: Option<String>,
    pub symbol: Option<String>,
    pub number: Option<String>,
    pub branch: Option<String>,
}

pub(crate) fn insurance_card(member_id: &str) -> InsuranceCard {
    let normalized = nfkc_trim(member_id);
    let mut parts = normalized
        .split(':')
        .map(|p| Some(p.trim().to_owned()).filter(|p| !p.is_empty()));
    InsuranceCard {
        insurer_number: parts.next().flatten(),
        symbol: parts.next().flatten(),
        number: parts.next().flatten(),
        branch: parts.next().flatten(),
    }
}

/// The home address (else the first) as postal code and text (`text`, else the parts joined
/// in Japanese order: prefecture, city, district, lines).
pub(crate) fn postal_code_and_address(patient: &Patient) -> (Option<String>, Option<String>) {
    let Some(address) = patient
        .address
        .iter()
        .find(|a| a.use_.as_deref() == Some("home"))
        .or_else(|| patient.address.first())
    else {
        return (None, None);
    };
    let postal = address
        .postal_code
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned);
    let text = address
        .text
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .or_else(|| {
            let joined: String = address
                .state
                .iter()
                .chain(address.city.iter())
                .chain(address.district.iter())
                .chain(address.line.iter())
                .map(|s| s.trim())
                .collect();
            (!joined.is_empty()).then_some(joined)
        });
    (postal, text)
}

/// The first phone number.
pub(crate) fn phone(patient: &Patient) -> Option<String> {
    patient
        .telecom
        .iter()
        .filter(|t| t.system.as_deref() == Some("phone"))
        .find_map(|t| t.value.as_deref().map(str::trim).filter(|v| !v.is_empty()))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiban_fhir::Resource;

    fn patient(json: &str) -> Patient<'_> {
        match Resource::from_json_str(json).unwrap() {
            Resource::Patient(p) => *p,
            other => panic!("not a patient: {other:?}"),
        }
    }

    #[test]
    fn provider_patient_id_prefers_the_jp_core_system() {
        let p = patient(
            r#"{"resourceType":"Patient","id":"x1","identifier":[
              {"system":"http://jpfhir.jp/fhir/clins/Idsystem/JP_Insurance_memberID","value":"1:2:3:4"},
              {"system":"http://example.org/other","value":"OTHER"},
              {"system":"urn:oid:1.2.392.100495.20.3.51.11312345678","value":"００１２３"}]}"#,
        );
        assert_eq!(provider_patient_id(&p).as_deref(), Some("00123"));
        let p = patient(
            r#"{"resourceType":"Patient","id":"x1","identifier":[
              {"system":"http://jpfhir.jp/fhir/clins/Idsystem/JP_Insurance_memberID","value":"1:2:3:4"},
              {"system":"http://example.org/other","value":"OTHER"}]}"#,
        );
        assert_eq!(provider_patient_id(&p).as_deref(), Some("OTHER"));
        let p = patient(r#"{"resourceType":"Patient","id":"x1"}"#);
        assert_eq!(provider_patient_id(&p).as_deref(), Some("x1"));
        let p = patient(
            r#"{"resourceType":"Patient","identifier":[{"type":{"coding":[{"system":
              "http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}]},"value":"M9"}]}"#,
        );
        assert_eq!(provider_patient_id(&p).as_deref(), Some("M9"));
    }

    #[test]
    fn names_by_extension_or_script() {
        let p = patient(
            r#"{"resourceType":"Patient","name":[
              {"family":"ヤマダ","given":["ハナコ"]},
              {"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation","valueCode":"IDE"}],
               "text":"山田 花子"}]}"#,
        );
        let (kanji, kana) = kanji_and_kana(&p);
        assert_eq!(kanji.as_deref(), Some("山田 花子"));
        assert_eq!(kana.as_deref(), Some("ヤマダ ハナコ"));
    }

    #[test]
    fn insurance_card_is_normalized_and_split() {
        let card = insurance_card("０６１３００１７:記号１::０１");
        assert_eq!(card.insurer_number.as_deref(), Some("06130017"));
        assert_eq!(card.symbol.as_deref(), Some("記号1"));
        assert_eq!(card.number, None);
        assert_eq!(card.branch.as_deref(), Some("01"));
    }

    #[test]
    fn address_parts_are_joined() {
        let p = patient(
            r#"{"resourceType":"Patient","address":[{"postalCode":"100-0001","state":"東京都",
              "city":"千代田区","line":["千代田1-1"]}],"telecom":[{"system":"email","value":"a@b"},
              {"system":"phone","value":"03-0000-0000"}]}"#,
        );
        let (postal, address) = postal_code_and_address(&p);
        assert_eq!(postal.as_deref(), Some("100-0001"));
        assert_eq!(address.as_deref(), Some("東京都千代田区千代田1-1"));
        assert_eq!(phone(&p).as_deref(), Some("03-0000-0000"));
    }
}
