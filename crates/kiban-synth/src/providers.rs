//! The providers (医療情報取扱事業者) and how each records identity.

use crate::names;
use kiban_model::ProviderKind;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// How a provider writes the kana reading of names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KanaStyle {
    /// Full-width katakana (the norm).
    FullKatakana,
    /// Half-width katakana (older systems).
    HalfKatakana,
    /// Hiragana.
    Hiragana,
}

/// One synthetic provider.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Position in the provider list.
    pub index: usize,
    /// Stable id, `prov-001`.
    pub id: String,
    /// Japanese name.
    pub name: String,
    /// English name.
    pub name_en: String,
    /// Kind of provider.
    pub kind: ProviderKind,
    /// 10-digit facility number (医療機関コード-like).
    pub facility_number: String,
    /// System URI of its patient ids.
    pub patient_id_system: String,
    /// Whether its system can store register variants (外字) such as 髙 and 﨑.
    pub stores_variants: bool,
    /// How it writes kana.
    pub kana_style: KanaStyle,
    /// Whether it writes the insurance member id in full-width digits.
    pub full_width_member_id: bool,
    /// Whether its postal codes omit the hyphen.
    pub postal_without_hyphen: bool,
    /// Share of records without a kana name.
    pub missing_kana_rate: f64,
    /// Probability that identity is refreshed at each visit (else kept from registration).
    pub updates_identity: f64,
    /// Date from which it provides data (opt-out notifications start then).
    pub joined_on: chrono::NaiveDate,
    /// Width of its patient ids.
    pub patient_id_width: usize,
    /// Offset that makes its patient ids differ from other providers'.
    pub patient_id_offset: u64,
    /// Fixed resource id of its Organization resource.
    pub organization_uuid: String,
    /// Its physicians: (resource uuid, kanji family name, kanji given name).
    pub physicians: Vec<(String, String, String)>,
}

/// The `providers.json` entry.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderListing<'a> {
    /// Stable id.
    pub id: &'a str,
    /// Japanese name.
    pub name: &'a str,
    /// English name.
    pub name_en: &'a str,
    /// `ProviderKind::code()`.
    pub kind: &'static str,
}

impl Provider {
    /// Its `providers.json` entry.
    pub fn listing(&self) -> ProviderListing<'_> {
        ProviderListing {
            id: &self.id,
            name: &self.name,
            name_en: &self.name_en,
            kind: self.kind.code(),
        }
    }

    /// The provider patient id of a patient record (`serial` 0 for the main record,
    /// 1 for a duplicate registration). A bijection, so ids never collide.
    pub fn patient_id(&self, person_index: u64, serial: u64) -> String {
        const MODULUS: u64 = 1_000_000_000;
        // 3^18 is coprime with 10^9, so x ↦ x·A + B (mod 10^9) is a permutation.
        const MULTIPLIER: u64 = 387_420_489;
        let x = (person_index + serial * (MODULUS / 2)) % MODULUS;
        let permuted = (x * MULTIPLIER + self.patient_id_offset) % MODULUS;
        format!("{permuted:0width$}", width = self.patient_id_width)
    }
}

/// Default number of providers for a population size: 12 for 20,000 persons, growing slowly.
pub fn default_provider_count(persons: u64) -> usize {
    let n = persons.max(100) as f64;
    (6.0 + 3.0 * (n / 100.0).log10()).floor().max(6.0) as usize
}

const BASE_KINDS: &[ProviderKind] = &[
    ProviderKind::UniversityHospital,
    ProviderKind::Municipality,
    ProviderKind::DentalClinic,
    ProviderKind::GeneralHospital,
    ProviderKind::Clinic,
    ProviderKind::GeneralHospital,
    ProviderKind::Clinic,
    ProviderKind::Clinic,
    ProviderKind::GeneralHospital,
    ProviderKind::Clinic,
    ProviderKind::Clinic,
    ProviderKind::Clinic,
];
const LATER_KINDS: &[ProviderKind] = &[
    ProviderKind::Clinic,
    ProviderKind::Clinic,
    ProviderKind::GeneralHospital,
    ProviderKind::DentalClinic,
    ProviderKind::Clinic,
];

const PLACES: &[(&str, &str)] = &[
    ("港北", "Kohoku"),
    ("青葉", "Aoba"),
    ("日吉", "Hiyoshi"),
    ("綱島", "Tsunashima"),
    ("新横浜", "Shin-Yokohama"),
    ("大倉山", "Okurayama"),
    ("菊名", "Kikuna"),
    ("あざみ野", "Azamino"),
    ("たまプラーザ", "Tama-Plaza"),
    ("戸塚", "Totsuka"),
    ("武蔵小杉", "Musashi-Kosugi"),
    ("元町", "Motomachi"),
];

fn names_for(kind: ProviderKind, ordinal: usize) -> (String, String) {
    let (place, place_en) = PLACES[ordinal % PLACES.len()];
    let round = ordinal / PLACES.len();
    let suffix = if round == 0 {
        String::new()
    } else {
        format!("第{}", round + 1)
    };
    let suffix_en = if round == 0 {
        String::new()
    } else {
        format!(" {}", round + 1)
    };
    match kind {
        ProviderKind::UniversityHospital => (
            format!("横浜みなと大学{suffix}附属病院"),
            format!("Yokohama Minato University Hospital{suffix_en}"),
        ),
        ProviderKind::GeneralHospital => (
            format!("{place}中央総合病院{suffix}"),
            format!("{place_en} Central General Hospital{suffix_en}"),
        ),
        ProviderKind::Clinic => (
            format!("{place}内科クリニック{suffix}"),
            format!("{place_en} Internal Medicine Clinic{suffix_en}"),
        ),
        ProviderKind::DentalClinic => (
            format!("{place}歯科医院{suffix}"),
            format!("{place_en} Dental Clinic{suffix_en}"),
        ),
        ProviderKind::Municipality => (
            format!("横浜市健康福祉局{suffix}"),
            format!("City of Yokohama Health and Social Welfare Bureau{suffix_en}"),
        ),
        other => (
            format!("{place}{}", other.label_ja()),
            format!("{place_en} {}", other.label_en()),
        ),
    }
}

/// A v4-format UUID from the RNG.
pub fn uuid(rng: &mut ChaCha8Rng) -> String {
    let mut b: [u8; 16] = rng.random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[0],
        b[1],
        b[2],
        b[3],
        b[4],
        b[5],
        b[6],
        b[7],
        b[8],
        b[9],
        b[10],
        b[11],
        b[12],
        b[13],
        b[14],
        b[15]
    )
}

/// Builds the provider list deterministically from the seed.
pub fn build_providers(count: usize, seed: u64) -> Vec<Provider> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5052_4f56_4944_4552);
    let mut ordinals = std::collections::HashMap::new();
    (0..count)
        .map(|index| {
            let kind = if index < BASE_KINDS.len() {
                BASE_KINDS[index]
            } else {
                LATER_KINDS[(index - BASE_KINDS.len()) % LATER_KINDS.len()]
            };
            let ordinal = ordinals.entry(kind.code()).or_insert(0usize);
            let (name, name_en) = names_for(kind, *ordinal + index);
            *ordinal += 1;
            let table = match kind {
                ProviderKind::DentalClinic => 3,
                ProviderKind::Municipality => 9,
                _ => 1,
            };
            let facility_number = format!("14{table}{:07}", rng.random_range(0..10_000_000u32));
            let hospital = matches!(
                kind,
                ProviderKind::UniversityHospital | ProviderKind::GeneralHospital
            );
            let kana_style = match (kind, rng.random_range(0..10)) {
                (ProviderKind::Municipality, _) => KanaStyle::FullKatakana,
                (_, 0..2) => KanaStyle::HalfKatakana,
                (_, 2) => KanaStyle::Hiragana,
                _ => KanaStyle::FullKatakana,
            };
            let physicians = (0..3)
                .map(|_| {
                    let (family, _) = names::surname(&mut rng);
                    let male = rng.random_bool(0.7);
                    let (given, _) = names::given_name(&mut rng, male, 1975);
                    (uuid(&mut rng), family, given)
                })
                .collect();
            Provider {
                index,
                id: format!("prov-{:03}", index + 1),
                name,
                name_en,
                kind,
                patient_id_system: format!("urn:oid:1.2.392.100495.20.3.51.1{facility_number}"),
                facility_number,
                stores_variants: hospital || rng.random_bool(0.4),
                kana_style,
                full_width_member_id: rng.random_bool(0.3),
                postal_without_hyphen: rng.random_bool(0.25),
                missing_kana_rate: match kind {
                    ProviderKind::Municipality => 0.0,
                    ProviderKind::Clinic | ProviderKind::DentalClinic => 0.04,
                    _ => 0.01,
                },
                updates_identity: if kind == ProviderKind::Municipality {
                    1.0
                } else {
                    rng.random_range(0.4..0.9)
                },
                joined_on: chrono::NaiveDate::from_ymd_opt(2024, 4, 1)
                    .unwrap_or_default()
                    .checked_add_days(chrono::Days::new(rng.random_range(0..540)))
                    .unwrap_or_default(),
                patient_id_width: if rng.random_bool(0.5) { 10 } else { 9 },
                patient_id_offset: rng.random_range(0..1_000_000_000),
                organization_uuid: uuid(&mut rng),
                physicians,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_counts_grow_slowly() {
        assert_eq!(default_provider_count(20_000), 12);
        assert!(default_provider_count(1_000) >= 6);
        assert!(default_provider_count(10_000_000) <= 24);
    }

    #[test]
    fn patient_ids_are_unique_and_kinds_are_mixed() {
        let providers = build_providers(12, 42);
        let kinds: std::collections::HashSet<_> = providers.iter().map(|p| p.kind).collect();
        assert!(kinds.contains(&ProviderKind::Municipality));
        assert!(kinds.contains(&ProviderKind::DentalClinic));
        let p = &providers[0];
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000 {
            assert!(seen.insert(p.patient_id(i, 0)));
            assert!(seen.insert(p.patient_id(i, 1)));
        }
        let uuid = &p.organization_uuid;
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
    }
}
