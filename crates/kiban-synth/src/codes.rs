//! Code tables: diseases (MEDIS exchange code + ICD-10), drugs (YJ), laboratory tests (JLAC10),
//! procedures (receipt codes), allergens and document types.
//!
//! ICD-10 codes are real. MEDIS exchange codes, YJ codes, receipt codes and several JLAC10 codes
//! are plausible stand-ins with the right shape (4 characters, 12 characters, 9 digits,
//! 17 digits); the checkup items use the JLAC10 codes of the 特定健診 standard.

/// A disease as a provider codes it.
#[derive(Debug, Clone, Copy)]
pub struct Disease {
    /// MEDIS disease-name exchange code (4 characters).
    pub medis: &'static str,
    /// ICD-10 code.
    pub icd10: &'static str,
    /// Standard disease name (標準病名).
    pub name: &'static str,
}

macro_rules! disease {
    ($medis:literal, $icd:literal, $name:literal) => {
        Disease {
            medis: $medis,
            icd10: $icd,
            name: $name,
        }
    };
}

/// 2型糖尿病.
pub const TYPE2_DIABETES: Disease = disease!("KQAT", "E11.9", "2型糖尿病");
/// 糖尿病性腎症 (a complication).
pub const DIABETIC_NEPHROPATHY: Disease = disease!("PDJ4", "E11.2", "糖尿病性腎症");
/// 本態性高血圧症.
pub const HYPERTENSION: Disease = disease!("8833", "I10", "本態性高血圧症");
/// 脂質異常症.
pub const DYSLIPIDEMIA: Disease = disease!("K5P2", "E78.5", "脂質異常症");
/// 高尿酸血症.
pub const HYPERURICEMIA: Disease = disease!("JLM3", "E79.0", "高尿酸血症");
/// 慢性歯周炎.
pub const PERIODONTITIS: Disease = disease!("V3QK", "K05.3", "慢性歯周炎");
/// う蝕.
pub const DENTAL_CARIES: Disease = disease!("V0L1", "K02.9", "う蝕");
/// 乳癌.
pub const BREAST_CANCER: Disease = disease!("J1RG", "C50.9", "乳癌");
/// 肺癌.
pub const LUNG_CANCER: Disease = disease!("F5QV", "C34.9", "肺癌");
/// 慢性心不全.
pub const HEART_FAILURE: Disease = disease!("T2AC", "I50.9", "慢性心不全");
/// B型慢性肝炎.
pub const HEPATITIS_B: Disease = disease!("QHRT", "B18.1", "B型慢性肝炎");
/// C型慢性肝炎.
pub const HEPATITIS_C: Disease = disease!("NF8L", "B18.2", "C型慢性肝炎");
/// HIV感染症.
pub const HIV_INFECTION: Disease = disease!("E4KG", "B24", "HIV感染症");
/// 薬物性肝障害 (adverse event).
pub const DRUG_INDUCED_LIVER_INJURY: Disease = disease!("S7MA", "K71.9", "薬物性肝障害");
/// 薬疹 (adverse event).
pub const DRUG_ERUPTION: Disease = disease!("PT9C", "L27.0", "薬疹");
/// 薬剤性心筋症 (adverse event of trastuzumab).
pub const DRUG_CARDIOMYOPATHY: Disease = disease!("HD6R", "I42.7", "薬剤性心筋症");

/// Acute, self-limited conditions seen at clinics.
pub const ACUTE_DISEASES: &[Disease] = &[
    disease!("DN5A", "J06.9", "急性上気道炎"),
    disease!("R2VF", "J20.9", "急性気管支炎"),
    disease!("G1BJ", "A09", "感染性胃腸炎"),
    disease!("LAB5", "M54.5", "腰痛症"),
    disease!("CVA4", "N30.0", "急性膀胱炎"),
    disease!("H6JF", "H10.9", "結膜炎"),
    disease!("M0CM", "J30.4", "アレルギー性鼻炎"),
    disease!("U4P2", "L30.9", "湿疹"),
];

/// A rare disease with its prevalence.
#[derive(Debug, Clone, Copy)]
pub struct RareDisease {
    /// The disease codes.
    pub disease: Disease,
    /// Prevalence per 10,000 persons (all below 1).
    pub per_10000: f64,
    /// The drug used for it, if any.
    pub drug: Option<Drug>,
}

/// Rare diseases (指定難病 and others), each at a prevalence below 1/10,000.
pub const RARE_DISEASES: &[RareDisease] = &[
    RareDisease {
        disease: disease!("B6T5", "G12.2", "筋萎縮性側索硬化症"),
        per_10000: 0.8,
        drug: Some(RILUZOLE),
    },
    RareDisease {
        disease: disease!("FL22", "E75.2", "ファブリー病"),
        per_10000: 0.3,
        drug: Some(AGALSIDASE),
    },
    RareDisease {
        disease: disease!("K6M8", "G10", "ハンチントン病"),
        per_10000: 0.1,
        drug: None,
    },
    RareDisease {
        disease: disease!("PSJ6", "E74.0", "ポンペ病"),
        per_10000: 0.05,
        drug: None,
    },
    RareDisease {
        disease: disease!("A9JQ", "D47.7", "キャッスルマン病"),
        per_10000: 0.2,
        drug: None,
    },
];

/// MEDIS modifier exchange code of 「の疑い」.
pub const SUSPECTED_MODIFIER: &str = "8002";

/// A drug as prescribed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Drug {
    /// YJ code (12 characters).
    pub yj: &'static str,
    /// Product name.
    pub name: &'static str,
    /// Dose per administration.
    pub dose: f64,
    /// Unit of the dose (display).
    pub unit: &'static str,
    /// UCUM-ish unit code.
    pub unit_code: &'static str,
    /// Times per day (0 for injections given at visits).
    pub times_per_day: u32,
    /// JAMI 用法 code and its text.
    pub usage: (&'static str, &'static str),
    /// Route: HL7 v2 table 0162 code and Japanese display.
    pub route: (&'static str, &'static str),
}

const ORAL: (&str, &str) = ("PO", "口");
const SUBCUTANEOUS: (&str, &str) = ("SC", "皮下");
const INTRAVENOUS: (&str, &str) = ("IV", "静脈内");
const ONCE_MORNING: (&str, &str) = ("1013044400000000", "1日1回朝食後");
const TWICE: (&str, &str) = ("1022044400000000", "1日2回朝夕食後");
const THREE_TIMES: (&str, &str) = ("1033044400000000", "1日3回毎食後");
const BEDTIME: (&str, &str) = ("1011000400000000", "1日1回就寝前");
const AT_VISIT: (&str, &str) = ("3000000000000000", "外来にて投与");

macro_rules! drug {
    ($name:ident, $yj:literal, $label:literal, $dose:literal, $unit:literal, $code:literal, $times:literal, $usage:expr, $route:expr) => {
        #[doc = $label]
        pub const $name: Drug = Drug {
            yj: $yj,
            name: $label,
            dose: $dose,
            unit: $unit,
            unit_code: $code,
            times_per_day: $times,
            usage: $usage,
            route: $route,
        };
    };
}

drug!(
    METFORMIN,
    "3962002F1024",
    "メトホルミン塩酸塩錠250mg",
    1.0,
    "錠",
    "{tbl}",
    2,
    TWICE,
    ORAL
);
drug!(
    SITAGLIPTIN,
    "3969010F2024",
    "シタグリプチン錠50mg",
    1.0,
    "錠",
    "{tbl}",
    1,
    ONCE_MORNING,
    ORAL
);
drug!(
    LINAGLIPTIN,
    "3969014F1025",
    "リナグリプチン錠5mg",
    1.0,
    "錠",
    "{tbl}",
    1,
    ONCE_MORNING,
    ORAL
);
drug!(
    EMPAGLIFLOZIN,
    "3969019F1022",
    "エンパグリフロジン錠10mg",
    1.0,
    "錠",
    "{tbl}",
    1,
    ONCE_MORNING,
    ORAL
);
drug!(
    INSULIN_GLARGINE,
    "2492415G2027",
    "インスリン グラルギン注ソロスター",
    10.0,
    "単位",
    "[iU]",
    1,
    BEDTIME,
    SUBCUTANEOUS
);
drug!(
    AMLODIPINE,
    "2171022F2020",
    "アムロジピン錠5mg",
    1.0,
    "錠",
    "{tbl}",
    1,
    ONCE_MORNING,
    ORAL
);
drug!(
    OLMESARTAN,
    "2149044F2029",
    "オルメサルタン錠20mg",
    1.0,
    "錠",
    "{tbl}",
    1,
    ONCE_MORNING,
    ORAL
);
drug!(
    TELMISARTAN,
    "2149042F2021",
    "テルミサルタン錠40mg",
    1.0,
    "錠",
    "{tbl}",
    1,
    ONCE_MORNING,
    ORAL
);
drug!(
    ROSUVASTATIN,
    "2189017F1022",
    "ロスバスタチン錠2.5mg",
    1.0,
    "錠",
    "{tbl}",
    1,
    ONCE_MORNING,
    ORAL
);
drug!(
    ATORVASTATIN,
    "2189015F2020",
    "アトルバスタチン錠10mg",
    1.0,
    "錠",
    "{tbl}",
    1,
    ONCE_MORNING,
    ORAL
);
drug!(
    PITAVASTATIN,
    "2189016F1021",
    "ピタバスタチンカルシウム錠2mg",
    1.0,
    "錠",
    "{tbl}",
    1,
    ONCE_MORNING,
    ORAL
);
drug!(
    ALLOPURINOL,
    "3943001F1026",
    "アロプリノール錠100mg",
    1.0,
    "錠",
    "{tbl}",
    2,
    TWICE,
    ORAL
);
drug!(
    FEBUXOSTAT,
    "3949003F2023",
    "フェブキソスタット錠20mg",
    1.0,
    "錠",
    "{tbl}",
    1,
    ONCE_MORNING,
    ORAL
);
drug!(
    TAMOXIFEN,
    "4291003F2028",
    "タモキシフェン錠20mg",
    1.0,
    "錠",
    "{tbl}",
    1,
    ONCE_MORNING,
    ORAL
);
drug!(
    LETROZOLE,
    "4291015F1024",
    "レトロゾール錠2.5mg",
    1.0,
    "錠",
    "{tbl}",
    1,
    ONCE_MORNING,
    ORAL
);
drug!(
    TRASTUZUMAB,
    "4291406D1027",
    "トラスツズマブ点滴静注用150mg",
    150.0,
    "mg",
    "mg",
    0,
    AT_VISIT,
    INTRAVENOUS
);
drug!(
    PERTUZUMAB,
    "4291427A1020",
    "ペルツズマブ点滴静注420mg",
    420.0,
    "mg",
    "mg",
    0,
    AT_VISIT,
    INTRAVENOUS
);
drug!(
    PACLITAXEL,
    "4240404A1029",
    "パクリタキセル注100mg",
    100.0,
    "mg",
    "mg",
    0,
    AT_VISIT,
    INTRAVENOUS
);
drug!(
    OSIMERTINIB,
    "4291045F2024",
    "オシメルチニブ錠80mg",
    1.0,
    "錠",
    "{tbl}",
    1,
    ONCE_MORNING,
    ORAL
);
drug!(
    PEMBROLIZUMAB,
    "4291435A2023",
    "ペムブロリズマブ点滴静注100mg",
    200.0,
    "mg",
    "mg",
    0,
    AT_VISIT,
    INTRAVENOUS
);
drug!(
    CARBOPLATIN,
    "4291403A1026",
    "カルボプラチン点滴静注液450mg",
    450.0,
    "mg",
    "mg",
    0,
    AT_VISIT,
    INTRAVENOUS
);
drug!(
    FUROSEMIDE,
    "2139005F1029",
    "フロセミド錠20mg",
    1.0,
    "錠",
    "{tbl}",
    1,
    ONCE_MORNING,
    ORAL
);
drug!(
    CARVEDILOL,
    "2149032F3026",
    "カルベジロール錠2.5mg",
    1.0,
    "錠",
    "{tbl}",
    2,
    TWICE,
    ORAL
);
drug!(
    SACUBITRIL_VALSARTAN,
    "2190040F2020",
    "サクビトリルバルサルタン錠100mg",
    1.0,
    "錠",
    "{tbl}",
    2,
    TWICE,
    ORAL
);
drug!(
    SPIRONOLACTONE,
    "2133001F1027",
    "スピロノラクトン錠25mg",
    1.0,
    "錠",
    "{tbl}",
    1,
    ONCE_MORNING,
    ORAL
);
drug!(
    ENTECAVIR,
    "6250029F1026",
    "エンテカビル錠0.5mg",
    1.0,
    "錠",
    "{tbl}",
    1,
    BEDTIME,
    ORAL
);
drug!(
    SOFOSBUVIR_VELPATASVIR,
    "6250116F1021",
    "ソホスブビル・ベルパタスビル配合錠",
    1.0,
    "錠",
    "{tbl}",
    1,
    ONCE_MORNING,
    ORAL
);
drug!(
    BICTEGRAVIR_COMBINATION,
    "6250128F1022",
    "ビクテグラビル・エムトリシタビン・テノホビル配合錠",
    1.0,
    "錠",
    "{tbl}",
    1,
    ONCE_MORNING,
    ORAL
);
drug!(
    RILUZOLE,
    "1190012F1027",
    "リルゾール錠50mg",
    1.0,
    "錠",
    "{tbl}",
    2,
    TWICE,
    ORAL
);
drug!(
    AGALSIDASE,
    "3959406D1020",
    "アガルシダーゼ ベータ点滴静注用35mg",
    35.0,
    "mg",
    "mg",
    0,
    AT_VISIT,
    INTRAVENOUS
);
drug!(
    AMOXICILLIN,
    "6131001M1210",
    "アモキシシリンカプセル250mg",
    1.0,
    "カプセル",
    "{cap}",
    3,
    THREE_TIMES,
    ORAL
);
drug!(
    LOXOPROFEN,
    "1149019F1560",
    "ロキソプロフェンナトリウム錠60mg",
    1.0,
    "錠",
    "{tbl}",
    3,
    THREE_TIMES,
    ORAL
);
drug!(
    ACETAMINOPHEN,
    "1141007F1063",
    "アセトアミノフェン錠200mg",
    2.0,
    "錠",
    "{tbl}",
    3,
    THREE_TIMES,
    ORAL
);
drug!(
    CARBOCISTEINE,
    "2239001F1572",
    "カルボシステイン錠500mg",
    1.0,
    "錠",
    "{tbl}",
    3,
    THREE_TIMES,
    ORAL
);

/// A laboratory test with its units and JCCLS common reference range.
#[derive(Debug, Clone, Copy)]
pub struct LabTest {
    /// JLAC10 17-digit code.
    pub jlac10: &'static str,
    /// Japanese name.
    pub name: &'static str,
    /// Display unit.
    pub unit: &'static str,
    /// UCUM unit code.
    pub ucum: &'static str,
    /// Reference range (male): low, high; `None` when one-sided.
    pub male: (Option<f64>, Option<f64>),
    /// Reference range (female).
    pub female: (Option<f64>, Option<f64>),
    /// Decimal places reported.
    pub decimals: u32,
}

macro_rules! lab {
    ($name:ident, $code:literal, $label:literal, $unit:literal, $ucum:literal, $m:expr, $f:expr, $dec:literal) => {
        #[doc = $label]
        pub const $name: LabTest = LabTest {
            jlac10: $code,
            name: $label,
            unit: $unit,
            ucum: $ucum,
            male: $m,
            female: $f,
            decimals: $dec,
        };
    };
}

lab!(
    HBA1C,
    "3D046000001906202",
    "HbA1c(NGSP)",
    "%",
    "%",
    (Some(4.9), Some(6.0)),
    (Some(4.9), Some(6.0)),
    1
);
lab!(
    GLUCOSE,
    "3D010000001926101",
    "空腹時血糖",
    "mg/dL",
    "mg/dL",
    (Some(73.0), Some(109.0)),
    (Some(73.0), Some(109.0)),
    0
);
lab!(
    AST,
    "3B035000002327201",
    "AST(GOT)",
    "U/L",
    "U/L",
    (Some(13.0), Some(30.0)),
    (Some(13.0), Some(30.0)),
    0
);
lab!(
    ALT,
    "3B045000002327201",
    "ALT(GPT)",
    "U/L",
    "U/L",
    (Some(10.0), Some(42.0)),
    (Some(7.0), Some(23.0)),
    0
);
lab!(
    GGT,
    "3B090000002327101",
    "γ-GT",
    "U/L",
    "U/L",
    (Some(13.0), Some(64.0)),
    (Some(9.0), Some(32.0)),
    0
);
lab!(
    LDL,
    "3F077000002327101",
    "LDLコレステロール",
    "mg/dL",
    "mg/dL",
    (Some(65.0), Some(163.0)),
    (Some(65.0), Some(163.0)),
    0
);
lab!(
    HDL,
    "3F070000002327101",
    "HDLコレステロール",
    "mg/dL",
    "mg/dL",
    (Some(38.0), Some(90.0)),
    (Some(48.0), Some(103.0)),
    0
);
lab!(
    TRIGLYCERIDE,
    "3F015000002327101",
    "中性脂肪",
    "mg/dL",
    "mg/dL",
    (Some(40.0), Some(234.0)),
    (Some(30.0), Some(117.0)),
    0
);
lab!(
    CREATININE,
    "3C015000002327101",
    "クレアチニン",
    "mg/dL",
    "mg/dL",
    (Some(0.65), Some(1.07)),
    (Some(0.46), Some(0.79)),
    2
);
lab!(
    EGFR,
    "8A065000002391901",
    "eGFR",
    "mL/min/1.73m2",
    "mL/min/{1.73_m2}",
    (Some(60.0), None),
    (Some(60.0), None),
    1
);
lab!(
    URIC_ACID,
    "3C020000002327101",
    "尿酸",
    "mg/dL",
    "mg/dL",
    (Some(3.7), Some(7.8)),
    (Some(2.6), Some(5.5)),
    1
);
lab!(
    BNP,
    "4Z250000002306001",
    "BNP",
    "pg/mL",
    "pg/mL",
    (None, Some(18.4)),
    (None, Some(18.4)),
    1
);
lab!(
    HEMOGLOBIN,
    "2A030000001930101",
    "ヘモグロビン",
    "g/dL",
    "g/dL",
    (Some(13.7), Some(16.8)),
    (Some(11.6), Some(14.8)),
    1
);
lab!(
    SYSTOLIC_BP,
    "9A751000000000001",
    "収縮期血圧",
    "mmHg",
    "mm[Hg]",
    (None, Some(129.0)),
    (None, Some(129.0)),
    0
);
lab!(
    DIASTOLIC_BP,
    "9A761000000000001",
    "拡張期血圧",
    "mmHg",
    "mm[Hg]",
    (None, Some(84.0)),
    (None, Some(84.0)),
    0
);
lab!(
    HEIGHT,
    "9N001000000000001",
    "身長",
    "cm",
    "cm",
    (None, None),
    (None, None),
    1
);
lab!(
    WEIGHT,
    "9N006000000000001",
    "体重",
    "kg",
    "kg",
    (None, None),
    (None, None),
    1
);
lab!(
    BMI,
    "9N011000000000001",
    "BMI",
    "kg/m2",
    "kg/m2",
    (Some(18.5), Some(24.9)),
    (Some(18.5), Some(24.9)),
    1
);

/// An infection marker (qualitative), with its JLAC10 code.
#[derive(Debug, Clone, Copy)]
pub struct InfectionMarker {
    /// JLAC10 17-digit code.
    pub jlac10: &'static str,
    /// Japanese name.
    pub name: &'static str,
}

/// HBs抗原.
pub const HBS_ANTIGEN: InfectionMarker = InfectionMarker {
    jlac10: "5F016141002227101",
    name: "HBs抗原",
};
/// HCV抗体.
pub const HCV_ANTIBODY: InfectionMarker = InfectionMarker {
    jlac10: "5F360149002227101",
    name: "HCV抗体",
};
/// 梅毒TP抗体.
pub const SYPHILIS_TP: InfectionMarker = InfectionMarker {
    jlac10: "5E071143002227101",
    name: "梅毒TP抗体",
};
/// HIV抗原・抗体.
pub const HIV_ANTIBODY: InfectionMarker = InfectionMarker {
    jlac10: "5F420150002227101",
    name: "HIV-1,2抗原・抗体",
};

/// LOINC codes of the breast-cancer receptor status observations (ER, PgR, HER2).
pub const BREAST_RECEPTORS: [(&str, &str); 3] = [
    ("16112-5", "エストロゲン受容体(ER)"),
    ("16113-3", "プロゲステロン受容体(PgR)"),
    ("48676-1", "HER2"),
];

/// A procedure (receipt procedure code, 9 digits).
#[derive(Debug, Clone, Copy)]
pub struct ProcedureCode {
    /// 診療行為コード.
    pub code: &'static str,
    /// Japanese name.
    pub name: &'static str,
}

/// 歯周基本治療(スケーリング).
pub const SCALING: ProcedureCode = ProcedureCode {
    code: "302000110",
    name: "歯周基本治療(スケーリング)",
};
/// 歯周病検査.
pub const PERIODONTAL_EXAM: ProcedureCode = ProcedureCode {
    code: "301000210",
    name: "歯周病検査",
};
/// う蝕処置.
pub const CARIES_TREATMENT: ProcedureCode = ProcedureCode {
    code: "303000510",
    name: "う蝕処置",
};
/// 乳腺悪性腫瘍手術.
pub const BREAST_SURGERY: ProcedureCode = ProcedureCode {
    code: "150147310",
    name: "乳腺悪性腫瘍手術(乳房部分切除術)",
};
/// 肺悪性腫瘍手術.
pub const LUNG_SURGERY: ProcedureCode = ProcedureCode {
    code: "150155610",
    name: "肺悪性腫瘍手術(肺葉切除)",
};
/// 心臓超音波検査.
pub const ECHOCARDIOGRAPHY: ProcedureCode = ProcedureCode {
    code: "160072110",
    name: "経胸壁心エコー法",
};
/// 外来化学療法.
pub const OUTPATIENT_CHEMOTHERAPY: ProcedureCode = ProcedureCode {
    code: "113004710",
    name: "外来化学療法",
};

/// An allergen as recorded in AllergyIntolerance.code.
#[derive(Debug, Clone, Copy)]
pub struct Allergen {
    /// Code system URI.
    pub system: &'static str,
    /// Code.
    pub code: &'static str,
    /// Japanese name.
    pub name: &'static str,
    /// Share of the population with this allergy.
    pub prevalence: f64,
    /// Typical manifestation.
    pub manifestation: &'static str,
}

/// YJ system for drug allergens.
const YJ: &str = "http://capstandard.jp/iyaku.info/CodeSystem/YJ-code";
/// JFAGY food-allergen code system (JP Core).
const JFAGY: &str = "http://jpfhir.jp/fhir/core/CodeSystem/JP_JfagyFoodAllergen_CS";

/// Drug allergens.
pub const DRUG_ALLERGENS: &[Allergen] = &[
    Allergen {
        system: YJ,
        code: "6131001M1210",
        name: "ペニシリン系抗菌薬",
        prevalence: 0.02,
        manifestation: "蕁麻疹",
    },
    Allergen {
        system: YJ,
        code: "6132005C1052",
        name: "セフェム系抗菌薬",
        prevalence: 0.006,
        manifestation: "皮疹",
    },
    Allergen {
        system: YJ,
        code: "1149019F1560",
        name: "ロキソプロフェン(NSAIDs)",
        prevalence: 0.01,
        manifestation: "喘息発作",
    },
    Allergen {
        system: YJ,
        code: "7219412G1030",
        name: "ヨード造影剤",
        prevalence: 0.005,
        manifestation: "嘔気・蕁麻疹",
    },
];

/// Food allergens.
pub const FOOD_ALLERGENS: &[Allergen] = &[
    Allergen {
        system: JFAGY,
        code: "J7F7111",
        name: "鶏卵",
        prevalence: 0.01,
        manifestation: "蕁麻疹",
    },
    Allergen {
        system: JFAGY,
        code: "J7F7211",
        name: "牛乳",
        prevalence: 0.006,
        manifestation: "腹痛",
    },
    Allergen {
        system: JFAGY,
        code: "J7F1111",
        name: "小麦",
        prevalence: 0.004,
        manifestation: "蕁麻疹",
    },
    Allergen {
        system: JFAGY,
        code: "J7F6111",
        name: "えび",
        prevalence: 0.01,
        manifestation: "口腔内違和感",
    },
    Allergen {
        system: JFAGY,
        code: "J7F1811",
        name: "そば",
        prevalence: 0.003,
        manifestation: "アナフィラキシー",
    },
    Allergen {
        system: JFAGY,
        code: "J7F2411",
        name: "落花生",
        prevalence: 0.003,
        manifestation: "アナフィラキシー",
    },
];

/// LOINC system URI.
pub const LOINC: &str = "http://loinc.org";
/// LOINC 57133-1 Referral note (診療情報提供書).
pub const LOINC_REFERRAL: (&str, &str) = ("57133-1", "診療情報提供書");
/// LOINC 18842-5 Discharge summary (退院時サマリー).
pub const LOINC_DISCHARGE: (&str, &str) = ("18842-5", "退院時サマリー");
/// LOINC 53576-5 Personal health monitoring report (健康診断結果報告書).
pub const LOINC_CHECKUP: (&str, &str) = ("53576-5", "健康診断結果報告書");

/// SS-MIX2 department codes (診療科).
pub const DEPARTMENTS: &[(&str, &str)] = &[
    ("01", "内科"),
    ("09", "外科"),
    ("04", "循環器内科"),
    ("06", "消化器内科"),
    ("03", "呼吸器内科"),
    ("27", "乳腺外科"),
    ("07", "脳神経内科"),
    ("40", "歯科"),
];

/// Kind of clinical document written as a FHIR document Bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    /// 診療情報提供書.
    Referral,
    /// 退院時サマリー.
    Discharge,
    /// 健康診断結果報告書.
    Checkup,
}
