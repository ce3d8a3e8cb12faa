//! Domain enumerations and identifiers shared by every part of kiban.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }
    };
}

id_type!(
    /// Identifier of a provider (医療情報取扱事業者) in kiban, e.g. `prov-0001`.
    ProviderId
);
id_type!(
    /// Identifier of one intake (one acquisition, Art. 33) in kiban.
    IntakeId
);
id_type!(
    /// Opaque key of one patient record at one provider: a keyed hash computed by the store.
    /// It joins clinical rows to their identity row without revealing the identity.
    PatientKey
);

macro_rules! code_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $code:literal, $ja:literal, $en:literal;)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The stable code stored in data and used in URLs.
            pub fn code(self) -> &'static str {
                match self { $($name::$variant => $code,)+ }
            }

            /// Japanese label for screens.
            pub fn label_ja(self) -> &'static str {
                match self { $($name::$variant => $ja,)+ }
            }

            /// English label for screens.
            pub fn label_en(self) -> &'static str {
                match self { $($name::$variant => $en,)+ }
            }

            /// Parses the stable code.
            pub fn from_code(code: &str) -> Option<Self> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.code())
            }
        }
    };
}

code_enum!(
    /// Kind of provider (医療情報取扱事業者).
    ProviderKind {
        /// University hospital (大学病院).
        UniversityHospital = "university_hospital", "大学病院", "University hospital";
        /// General hospital (一般病院).
        GeneralHospital = "general_hospital", "一般病院", "General hospital";
        /// Clinic (診療所).
        Clinic = "clinic", "診療所", "Clinic";
        /// Dental clinic (歯科診療所).
        DentalClinic = "dental_clinic", "歯科診療所", "Dental clinic";
        /// Care facility (介護施設).
        CareFacility = "care_facility", "介護施設", "Care facility";
        /// Municipality, e.g. sending health checkups (市区町村).
        Municipality = "municipality", "市区町村", "Municipality";
        /// Health insurer (保険者).
        Insurer = "insurer", "保険者", "Insurer";
        /// School (学校).
        School = "school", "学校", "School";
    }
);

code_enum!(
    /// Administrative sex, as FHIR `AdministrativeGender`.
    Sex {
        /// 男性.
        Male = "male", "男性", "Male";
        /// 女性.
        Female = "female", "女性", "Female";
        /// その他.
        Other = "other", "その他", "Other";
        /// 不明.
        Unknown = "unknown", "不明", "Unknown";
    }
);

impl Sex {
    /// The Japanese administrative code (1 = male, 2 = female, 9 = other/unknown).
    pub fn jp_code(self) -> u8 {
        match self {
            Sex::Male => 1,
            Sex::Female => 2,
            Sex::Other | Sex::Unknown => 9,
        }
    }
}

code_enum!(
    /// Class of an encounter (FHIR v3 ActCode).
    EncounterClass {
        /// Outpatient visit (外来), ActCode `AMB`.
        Outpatient = "outpatient", "外来", "Outpatient";
        /// Inpatient stay (入院), ActCode `IMP`.
        Inpatient = "inpatient", "入院", "Inpatient";
        /// Emergency (救急), ActCode `EMER`.
        Emergency = "emergency", "救急", "Emergency";
        /// Home visit (在宅), ActCode `HH`.
        Home = "home", "在宅", "Home";
        /// Health checkup (健診).
        Checkup = "checkup", "健診", "Health checkup";
    }
);

impl EncounterClass {
    /// The v3 ActCode used in FHIR `Encounter.class`.
    pub fn act_code(self) -> &'static str {
        match self {
            EncounterClass::Outpatient | EncounterClass::Checkup => "AMB",
            EncounterClass::Inpatient => "IMP",
            EncounterClass::Emergency => "EMER",
            EncounterClass::Home => "HH",
        }
    }
}

code_enum!(
    /// Kind of clinical document ("3 documents" of the electronic medical record sharing service).
    DocumentKind {
        /// 診療情報提供書.
        ReferralLetter = "referral_letter", "診療情報提供書", "Referral letter";
        /// 退院時サマリー.
        DischargeSummary = "discharge_summary", "退院時サマリー", "Discharge summary";
        /// 健康診断結果報告書.
        CheckupReport = "checkup_report", "健康診断結果報告書", "Health-checkup report";
        /// Another document.
        Other = "other", "その他文書", "Other document";
    }
);

code_enum!(
    /// Category of an allergy or intolerance.
    AllergyCategory {
        /// 薬剤アレルギー.
        Medication = "medication", "薬剤", "Drug";
        /// 食物アレルギー.
        Food = "food", "食物", "Food";
        /// 環境 (pollen, dust, ...).
        Environment = "environment", "環境", "Environment";
        /// 生物 (insects, ...).
        Biologic = "biologic", "生物", "Biologic";
    }
);
