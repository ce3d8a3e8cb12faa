//! Code systems used by JP Core / JP-CLINS, with the URL ⇄ OID aliases seen in real documents.

/// A code system kiban recognizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodeSystem {
    /// ICD-10 (2013, MHLW edition).
    Icd10,
    /// MEDIS standard disease-name exchange code (病名交換用コード).
    MedisDisease,
    /// MEDIS modifier exchange code (修飾語交換用コード), e.g. the suspected-flag modifier.
    MedisModifier,
    /// YJ drug code (個別医薬品コード).
    Yj,
    /// HOT9 drug code.
    Hot9,
    /// JLAC10 17-digit laboratory code.
    Jlac10,
    /// JAMI standard dosage (用法) code.
    JamiDosage,
    /// Department code (SS-MIX2 診療科).
    Department,
    /// Receipt computer procedure code (診療行為コード).
    ProcedureReceipt,
    /// Insured person member id (JP-CLINS `保険者番号:記号:番号:枝番`).
    InsuranceMemberId,
}

impl CodeSystem {
    /// Every recognized system.
    pub const ALL: &'static [CodeSystem] = &[
        CodeSystem::Icd10,
        CodeSystem::MedisDisease,
        CodeSystem::MedisModifier,
        CodeSystem::Yj,
        CodeSystem::Hot9,
        CodeSystem::Jlac10,
        CodeSystem::JamiDosage,
        CodeSystem::Department,
        CodeSystem::ProcedureReceipt,
        CodeSystem::InsuranceMemberId,
    ];

    /// The canonical URL kiban writes.
    pub fn url(self) -> &'static str {
        match self {
            CodeSystem::Icd10 => "http://jpfhir.jp/fhir/core/mhlw/CodeSystem/ICD10-2013-full",
            CodeSystem::MedisDisease => "http://medis.or.jp/CodeSystem/master-disease-exCode",
            CodeSystem::MedisModifier => {
                "http://medis.or.jp/CodeSystem/master-disease-modifier-exCode"
            }
            CodeSystem::Yj => "http://capstandard.jp/iyaku.info/CodeSystem/YJ-code",
            CodeSystem::Hot9 => "http://medis.or.jp/CodeSystem/master-HOT9",
            CodeSystem::Jlac10 => "http://medis.or.jp/CodeSystem/master-JLAC10-17digits",
            CodeSystem::JamiDosage => "urn:oid:1.2.392.200250.2.2.20",
            CodeSystem::Department => "urn:oid:1.2.392.200250.2.2.2",
            CodeSystem::ProcedureReceipt => {
                "http://jpfhir.jp/fhir/core/mhlw/CodeSystem/MedicalPractice"
            }
            CodeSystem::InsuranceMemberId => {
                "http://jpfhir.jp/fhir/clins/Idsystem/JP_Insurance_memberID"
            }
        }
    }

    /// Other spellings of the same system (OIDs, older URLs).
    pub fn aliases(self) -> &'static [&'static str] {
        match self {
            CodeSystem::Icd10 => &[
                "http://hl7.org/fhir/sid/icd-10",
                "urn:oid:1.2.392.200119.4.101.1",
                "http://jpfhir.jp/fhir/core/CodeSystem/ICD10-2013-full",
            ],
            CodeSystem::MedisDisease => &["urn:oid:1.2.392.200119.4.101.6"],
            CodeSystem::MedisModifier => &["urn:oid:1.2.392.200119.4.201.5"],
            CodeSystem::Yj => &["urn:oid:1.2.392.100495.20.1.73"],
            CodeSystem::Hot9 => &["urn:oid:1.2.392.200119.4.403.1"],
            CodeSystem::Jlac10 => &[
                "urn:oid:1.2.392.200119.4.504",
                "http://jpfhir.jp/fhir/core/CodeSystem/JP_JLAC10",
            ],
            CodeSystem::JamiDosage => &["http://jami.jp/CodeSystem/MedicationUsage"],
            CodeSystem::Department => &["http://jpfhir.jp/fhir/core/CodeSystem/departmentCode"],
            CodeSystem::ProcedureReceipt => &["urn:oid:1.2.392.100495.20.2.31"],
            CodeSystem::InsuranceMemberId => &[],
        }
    }
}

/// Maps a system URL or OID, in any of its known spellings, to the recognized system.
///
/// ```
/// use kiban_model::{canonical_code_system, CodeSystem};
/// assert_eq!(canonical_code_system("urn:oid:1.2.392.200119.4.504"), Some(CodeSystem::Jlac10));
/// assert_eq!(canonical_code_system("http://example.org/x"), None);
/// ```
pub fn canonical_code_system(system: &str) -> Option<CodeSystem> {
    let system = system.trim();
    CodeSystem::ALL
        .iter()
        .copied()
        .find(|cs| cs.url() == system || cs.aliases().contains(&system))
}
